//! Catalog reads: list filters, pagination (stable under inserts) and search
//! ranking.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::*;

use super::{definition, v};

async fn seed_catalog(store: &Arc<dyn CatalogStore>, count: usize) {
    for i in 0..count {
        let mut def = definition(&format!("res-{i:03}"), "1.0.0");
        def.metadata.provider = ["aws", "gcp", "k8s"][i % 3].into();
        def.metadata.category = if i % 2 == 0 {
            "database".into()
        } else {
            "cache".into()
        };
        if i % 5 == 0 {
            def.metadata.labels.insert("team".into(), "core".into());
            def.spec.supported_engines = vec!["helm".into()];
        }
        store
            .insert_version(PublishedVersion::new(def, 0, None))
            .await
            .unwrap();
    }
}

async fn all_pages(
    store: &Arc<dyn CatalogStore>,
    filter: &ListFilter,
    limit: usize,
) -> Vec<String> {
    let mut names = Vec::new();
    let mut page = PageRequest::first(limit);
    for _ in 0..1000 {
        let got = store.list_latest(filter, &page).await.unwrap();
        assert!(got.items.len() <= limit, "a page never exceeds its limit");
        names.extend(got.items.iter().map(|v| v.name().to_string()));
        match got.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return names,
        }
    }
    panic!("pagination did not end");
}

/// Filters select by provider, category, engine and label; pages cover
/// every match once, in name order, and only latest versions are listed.
pub async fn list_filters_and_pagination(store: Arc<dyn CatalogStore>) {
    seed_catalog(&store, 30).await;
    let mut newer = definition("res-000", "1.1.0");
    newer.metadata.provider = "aws".into();
    newer.metadata.labels.insert("team".into(), "core".into());
    newer.spec.supported_engines = vec!["helm".into()];
    store
        .insert_version(PublishedVersion::new(newer, 0, None))
        .await
        .unwrap();

    let everything = all_pages(&store, &ListFilter::default(), 7).await;
    let expected: Vec<String> = (0..30).map(|i| format!("res-{i:03}")).collect();
    assert_eq!(everything, expected, "every name once, in name order");
    let first = store
        .list_latest(&ListFilter::default(), &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(
        first.items[0].version(),
        &v("1.1.0"),
        "only the latest version of a name is listed"
    );

    let aws = ListFilter {
        provider: Some("aws".into()),
        ..Default::default()
    };
    assert_eq!(all_pages(&store, &aws, 4).await.len(), 10);
    let aws_db = ListFilter {
        provider: Some("aws".into()),
        category: Some("database".into()),
        ..Default::default()
    };
    assert_eq!(all_pages(&store, &aws_db, 50).await.len(), 5);
    let helm = ListFilter {
        engine: Some("helm".into()),
        ..Default::default()
    };
    assert_eq!(all_pages(&store, &helm, 50).await.len(), 6);
    let labelled = ListFilter {
        labels: BTreeMap::from([("team".into(), "core".into())]),
        ..Default::default()
    };
    assert_eq!(all_pages(&store, &labelled, 2).await.len(), 6);
    let q = ListFilter {
        q: Some("RES-02".into()),
        ..Default::default()
    };
    assert_eq!(all_pages(&store, &q, 50).await.len(), 10);
    let none = ListFilter {
        provider: Some("azure".into()),
        ..Default::default()
    };
    let empty = store
        .list_latest(&none, &PageRequest::default())
        .await
        .unwrap();
    assert!(empty.items.is_empty() && empty.next_cursor.is_none());
}

/// Names inserted while a client pages never make it see a name twice or
/// miss one that existed when it started.
pub async fn pagination_is_stable_under_inserts(store: Arc<dyn CatalogStore>) {
    seed_catalog(&store, 20).await;
    let filter = ListFilter::default();
    let mut seen = Vec::new();
    let mut page = PageRequest::first(5);
    let mut round = 0;
    loop {
        let got = store.list_latest(&filter, &page).await.unwrap();
        seen.extend(got.items.iter().map(|v| v.name().to_string()));
        // Insert one name before the cursor and one after, every page.
        for name in [format!("aaa-{round}"), format!("res-{:03}x", 5 * round + 7)] {
            store
                .insert_version(PublishedVersion::new(definition(&name, "1.0.0"), 0, None))
                .await
                .unwrap();
        }
        round += 1;
        match got.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
        assert!(round < 100, "pagination ends");
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no name is returned twice");
    for i in 0..20 {
        assert!(
            seen.contains(&format!("res-{i:03}")),
            "res-{i:03} existed at the start and was returned"
        );
    }
}

/// Exact name beats prefix beats description; every term must match.
pub async fn search_ranking(store: Arc<dyn CatalogStore>) {
    let mut exact = definition("mysql", "1.0.0");
    exact.metadata.description = "plain".into();
    let mut prefix = definition("mysql-ha", "1.0.0");
    prefix.metadata.description = "replicated".into();
    let mut mention = definition("warehouse", "1.0.0");
    mention.metadata.description = "Stores orders in mysql".into();
    mention.metadata.resource_type = "warehouse".into();
    let mut unrelated = definition("bucket", "1.0.0");
    unrelated.metadata.description = "object storage".into();
    unrelated.metadata.resource_type = "s3".into();
    unrelated.metadata.category = "storage".into();
    for def in [unrelated, mention, prefix, exact] {
        store
            .insert_version(PublishedVersion::new(def, 0, None))
            .await
            .unwrap();
    }
    let hits = store
        .search("mysql", &ListFilter::default(), 10)
        .await
        .unwrap();
    let names: Vec<&str> = hits.iter().map(|h| h.version.name()).collect();
    assert_eq!(names, ["mysql", "mysql-ha", "warehouse"]);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let both = store
        .search("mysql replicated", &ListFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(both.len(), 1, "every term must match");
    assert_eq!(
        store
            .search("mysql", &ListFilter::default(), 1)
            .await
            .unwrap()
            .len(),
        1,
        "limit applies"
    );
    let gcp = ListFilter {
        provider: Some("gcp".into()),
        ..Default::default()
    };
    assert!(
        store.search("mysql", &gcp, 10).await.unwrap().is_empty(),
        "filters apply to search"
    );
}
