//! The store conformance suite (feature `testing`).
//!
//! Every store runs every case here, through [`store_conformance_tests!`],
//! so memory, SQLite and DynamoDB behave identically. Each case takes a fresh
//! store and panics with a message saying what a user would see go wrong.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use semver::Version;
use serde_json::json;

use crate::*;

/// A fresh store for one case, with whatever must live as long as it (a
/// temporary directory, a table prefix to drop...).
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn CatalogStore>,
    /// Dropped after the case.
    pub guard: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    /// A fixture with nothing to keep alive.
    pub fn new(store: Arc<dyn CatalogStore>) -> Self {
        Fixture {
            store,
            guard: Box::new(()),
        }
    }

    /// A fixture keeping `guard` alive.
    pub fn with_guard(store: Arc<dyn CatalogStore>, guard: impl Any + Send + Sync) -> Self {
        Fixture {
            store,
            guard: Box::new(guard),
        }
    }
}

/// Generates one `#[tokio::test]` per conformance case. `$make` is an
/// expression evaluating to a future of a [`Fixture`].
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@cases $make;
            publish_get_and_latest, immutability, versions_newest_first_by_semver, prerelease_and_yank_rules,
            requirements_use_cargo_semantics, list_filters_and_pagination, pagination_is_stable_under_inserts,
            search_ranking, event_log_sequences, concurrent_publishers_one_wins, concurrent_event_appends,
            bump_rules_enforced, dependencies_must_resolve, events_for_catalog_changes, sync_state_and_reports,
            batch_publish_applies_every_rule, serialized_events_read_back_as_values,
            concurrent_first_publishes_announce_one_creation);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $make.await;
                $crate::testing::$case(fixture.store.clone()).await;
                drop(fixture);
            }
        )*
    };
}

/// A valid definition for tests: `name@version` with one required input
/// `size` and one output `endpoint`.
pub fn definition(name: &str, version: &str) -> ResourceDefinition {
    let yaml = format!(
        r#"
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata:
  name: {name}
  version: "{version}"
  provider: aws
  category: database
  resource_type: mysql
  description: "Test definition {name}"
  labels: {{tier: data}}
spec:
  supported_engines: [terraform, crossplane]
  required_inputs:
    - name: size
      type: string
  outputs:
    - name: endpoint
      type: string
"#
    );
    parse_definition_yaml(&yaml).expect("test definition is valid")
}

fn v(s: &str) -> Version {
    s.parse().expect("test version")
}

fn service(store: &Arc<dyn CatalogStore>) -> CatalogService {
    CatalogService::new(store.clone())
}

async fn publish(store: &Arc<dyn CatalogStore>, def: ResourceDefinition) -> PublishOutcome {
    service(store)
        .publish(def, None, "test")
        .await
        .expect("publish succeeds")
        .outcome
}

/// Publish, read back by exact version, and `latest` moves forward.
pub async fn publish_get_and_latest(store: Arc<dyn CatalogStore>) {
    assert_eq!(
        publish(&store, definition("db", "1.0.0")).await,
        PublishOutcome::Created
    );
    let got = store
        .get_version("db", &v("1.0.0"))
        .await
        .unwrap()
        .expect("published version is readable");
    assert_eq!(got.definition, definition("db", "1.0.0"));
    assert!(!got.yanked);
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.0.0")
    );

    let mut next = definition("db", "1.1.0");
    next.metadata.description = "now with more".into();
    publish(&store, next).await;
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.1.0")
    );
    assert!(store
        .get_version("db", &v("9.9.9"))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_version("nope", &v("1.0.0"))
        .await
        .unwrap()
        .is_none());
    assert!(store.latest("nope").await.unwrap().is_none());
    let err = store
        .resolve("nope", &VersionSpec::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceNotFound);
    let err = store
        .resolve("db", &VersionSpec::Exact(v("3.0.0")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionNotFound);
}

/// Same content is a no-op; other content is `VERSION_IMMUTABLE`, at the
/// service and at the store.
pub async fn immutability(store: Arc<dyn CatalogStore>) {
    publish(&store, definition("db", "1.0.0")).await;
    assert_eq!(
        publish(&store, definition("db", "1.0.0")).await,
        PublishOutcome::Unchanged
    );

    let mut changed = definition("db", "1.0.0");
    changed.metadata.description = "sneaky edit".into();
    let err = service(&store)
        .publish(changed.clone(), None, "test")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionImmutable);
    let err = store
        .insert_version(PublishedVersion::new(changed, 0, None))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::VersionImmutable,
        "the store itself enforces immutability"
    );
    assert_eq!(
        store
            .get_version("db", &v("1.0.0"))
            .await
            .unwrap()
            .unwrap()
            .definition
            .metadata
            .description,
        "Test definition db",
        "the original content is kept"
    );
}

/// Version history is ordered by semver, not by string.
pub async fn versions_newest_first_by_semver(store: Arc<dyn CatalogStore>) {
    for version in ["1.2.0", "1.10.0", "1.9.0", "1.9.1", "0.9.0"] {
        store
            .insert_version(PublishedVersion::new(definition("db", version), 0, None))
            .await
            .unwrap();
    }
    let order: Vec<String> = store
        .versions("db")
        .await
        .unwrap()
        .iter()
        .map(|s| s.version.to_string())
        .collect();
    assert_eq!(order, ["1.10.0", "1.9.1", "1.9.0", "1.2.0", "0.9.0"]);
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.10.0")
    );
    assert!(store.versions("nope").await.unwrap().is_empty());
}

/// Pre-releases count for latest only when nothing else exists; yanked
/// versions are never latest but stay readable by exact version.
pub async fn prerelease_and_yank_rules(store: Arc<dyn CatalogStore>) {
    store
        .insert_version(PublishedVersion::new(
            definition("db", "2.0.0-rc.1"),
            0,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("2.0.0-rc.1"),
        "only a pre-release exists"
    );
    store
        .insert_version(PublishedVersion::new(definition("db", "1.0.0"), 0, None))
        .await
        .unwrap();
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.0.0"),
        "a release beats a pre-release"
    );

    assert!(store.set_yanked("db", &v("1.0.0"), true).await.unwrap());
    assert!(
        !store.set_yanked("db", &v("1.0.0"), true).await.unwrap(),
        "yanking twice changes nothing"
    );
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("2.0.0-rc.1")
    );
    let exact = store
        .resolve("db", &VersionSpec::Exact(v("1.0.0")))
        .await
        .unwrap();
    assert!(
        exact.yanked,
        "a yanked version stays readable by exact version"
    );
    let err = store
        .resolve("db", &VersionSpec::parse("^1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::VersionNotFound,
        "a requirement never picks a yanked version"
    );
    assert!(store
        .versions("db")
        .await
        .unwrap()
        .iter()
        .any(|s| s.yanked && s.version == v("1.0.0")));

    store
        .set_yanked("db", &v("2.0.0-rc.1"), true)
        .await
        .unwrap();
    assert!(
        store.latest("db").await.unwrap().is_none(),
        "everything yanked: no latest"
    );
    assert_eq!(
        store
            .set_yanked("db", &v("5.0.0"), true)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::VersionNotFound
    );
}

/// Requirements pick the greatest matching version with Cargo's meaning.
pub async fn requirements_use_cargo_semantics(store: Arc<dyn CatalogStore>) {
    for version in ["1.2.0", "1.3.5", "1.10.0", "2.0.0", "2.1.0-beta.1"] {
        store
            .insert_version(PublishedVersion::new(definition("db", version), 0, None))
            .await
            .unwrap();
    }
    let pick = |req: &'static str| {
        let store = store.clone();
        async move {
            store
                .resolve("db", &VersionSpec::parse(req).unwrap())
                .await
                .map(|p| p.version().to_string())
        }
    };
    assert_eq!(pick("^1.2").await.unwrap(), "1.10.0");
    assert_eq!(pick("~1.3.0").await.unwrap(), "1.3.5");
    assert_eq!(pick(">=1, <2").await.unwrap(), "1.10.0");
    assert_eq!(pick("*").await.unwrap(), "2.0.0");
    assert_eq!(
        pick("1.2.0").await.unwrap(),
        "1.2.0",
        "a bare full version is exact"
    );
    assert_eq!(
        pick("^3").await.unwrap_err().code(),
        ErrorCode::VersionNotFound
    );
}

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

fn event(i: usize) -> NewEvent {
    NewEvent {
        event_type: EventType::ResourceCreated,
        source: "test".into(),
        subject: format!("e-{i}"),
        timestamp: i as Timestamp,
        data: json!({"i": i}),
    }
}

/// Sequences strictly increase, reads are ordered and bounded, pruning
/// never lets a sequence repeat.
pub async fn event_log_sequences(store: Arc<dyn CatalogStore>) {
    assert_eq!(store.last_sequence().await.unwrap(), 0);
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(store.append(event(i)).await.unwrap().id);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {ids:?}"
    );
    let after = store.read_after(ids[9], 5).await.unwrap();
    assert_eq!(
        after.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[10..15].to_vec()
    );
    assert_eq!(after[0].subject, "e-10");
    assert_eq!(after[0].data, json!({"i": 10}));
    assert_eq!(store.last_sequence().await.unwrap(), ids[49]);
    assert!(store.read_after(ids[49], 10).await.unwrap().is_empty());

    assert_eq!(store.prune_before(20).await.unwrap(), 20);
    let remaining = store.read_after(0, 100).await.unwrap();
    assert_eq!(remaining.len(), 30);
    assert_eq!(remaining[0].subject, "e-20");
    let next = store.append(event(99)).await.unwrap();
    assert!(next.id > ids[49], "sequences never repeat after pruning");
}

/// Of 16 concurrent publishers of one name@version with different content,
/// exactly one wins; with the same content, one creates and the rest see
/// `unchanged`.
pub async fn concurrent_publishers_one_wins(store: Arc<dyn CatalogStore>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut def = definition("raced", "1.0.0");
            def.metadata.description = format!("writer {i}");
            store
                .insert_version(PublishedVersion::new(def, 0, None))
                .await
        }));
    }
    let mut created = 0;
    let mut immutable = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(PublishOutcome::Created) => created += 1,
            Err(e) if e.code() == ErrorCode::VersionImmutable => immutable += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((created, immutable), (1, 15));

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            service(&store)
                .publish(definition("same", "1.0.0"), None, "t")
                .await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(
            t.await
                .unwrap()
                .expect("same content never conflicts")
                .outcome,
        );
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == PublishOutcome::Created)
            .count(),
        1
    );
}

/// Of 32 concurrent first publishes of one name (each its own version),
/// every one is created, and exactly one announces `resource.created`:
/// whether a version is the first of its name is decided by the write.
pub async fn concurrent_first_publishes_announce_one_creation(store: Arc<dyn CatalogStore>) {
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            service(&store)
                .publish(definition("fresh", &format!("1.0.{i}")), None, "t")
                .await
        }));
    }
    for t in tasks {
        let result = t.await.unwrap().expect("distinct versions never conflict");
        assert_eq!(result.outcome, PublishOutcome::Created);
    }
    let events = store.read_after(0, 1000).await.unwrap();
    let count = |kind: EventType| events.iter().filter(|e| e.event_type == kind).count();
    assert_eq!(count(EventType::ResourceCreated), 1, "{events:?}");
    assert_eq!(count(EventType::ResourceUpdated), 31);
}

/// Appends from 8 concurrent tasks get distinct, strictly increasing ids.
pub async fn concurrent_event_appends(store: Arc<dyn CatalogStore>) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                ids.push(store.append(event(t * 100 + i)).await.unwrap().id);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let ids = t.await.unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "each writer sees increasing ids"
        );
        all.extend(ids);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 200, "no id is handed out twice");
    let read = store.read_after(0, 1000).await.unwrap();
    assert_eq!(read.len(), 200);
    assert!(read.windows(2).all(|w| w[0].id < w[1].id));
}

/// A breaking change needs a major bump; the error lists the changes and
/// the smallest valid version; nothing is written.
pub async fn bump_rules_enforced(store: Arc<dyn CatalogStore>) {
    publish(&store, definition("db", "1.0.0")).await;
    let mut breaking = definition("db", "1.1.0");
    breaking.spec.required_inputs.push(Input {
        name: "region".into(),
        value_type: ValueType::String,
        description: String::new(),
        sensitive: false,
        default: None,
        validation: Validation::default(),
    });
    let err = service(&store)
        .publish(breaking.clone(), None, "t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BreakingChange);
    assert_eq!(err.details()["minimum_version"], "2.0.0");
    assert_eq!(err.details()["changes"][0]["kind"], "breaking");
    assert!(
        store
            .get_version("db", &v("1.1.0"))
            .await
            .unwrap()
            .is_none(),
        "nothing written"
    );

    breaking.metadata.version = v("2.0.0");
    assert_eq!(publish(&store, breaking).await, PublishOutcome::Created);

    let mut cosmetic = definition("db", "1.0.1");
    cosmetic.metadata.description = "typo fixed".into();
    assert_eq!(
        publish(&store, cosmetic).await,
        PublishOutcome::Created,
        "a backport patch compares with 1.0.0"
    );
}

/// Dependencies must name a published, non-yanked matching version.
pub async fn dependencies_must_resolve(store: Arc<dyn CatalogStore>) {
    let mut app = definition("app", "1.0.0");
    app.spec.dependencies.push(Dependency {
        name: "network".into(),
        version: "^1.5".into(),
    });
    let err = service(&store)
        .publish(app.clone(), None, "t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DependencyNotFound);
    assert_eq!(err.field_errors()[0].field, "spec.dependencies[0].name");

    publish(&store, definition("network", "1.4.0")).await;
    let err = service(&store)
        .publish(app.clone(), None, "t")
        .await
        .unwrap_err();
    assert_eq!(
        err.field_errors()[0].field,
        "spec.dependencies[0].version",
        "1.4.0 does not match ^1.5"
    );

    publish(&store, definition("network", "1.5.2")).await;
    assert_eq!(publish(&store, app.clone()).await, PublishOutcome::Created);

    service(&store)
        .set_yanked("network", &v("1.5.2"), true, "t")
        .await
        .unwrap();
    let mut app2 = app;
    app2.metadata.version = v("1.0.1");
    assert_eq!(
        service(&store)
            .publish(app2, None, "t")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::DependencyNotFound,
        "a yanked version does not satisfy a dependency"
    );
}

/// Publishing and yanking append the SPEC §8 events with the full object.
pub async fn events_for_catalog_changes(store: Arc<dyn CatalogStore>) {
    let svc = service(&store);
    svc.publish(definition("db", "1.0.0"), None, "api")
        .await
        .unwrap();
    svc.publish(definition("db", "1.0.0"), None, "api")
        .await
        .unwrap();
    let mut next = definition("db", "1.0.1");
    next.metadata.deprecated = true;
    next.metadata.deprecation_message = "use db2".into();
    svc.publish(next, None, "api").await.unwrap();
    svc.set_yanked("db", &v("1.0.0"), true, "api")
        .await
        .unwrap();
    let events = store.read_after(0, 100).await.unwrap();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event_type.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("resource.created", "db:1.0.0"),
            ("resource.updated", "db:1.0.1"),
            ("resource.deprecated", "db:1.0.1"),
            ("resource.yanked", "db:1.0.0"),
        ],
        "an unchanged publish appends nothing"
    );
    assert_eq!(events[0].data["definition"]["metadata"]["name"], "db");
    assert_eq!(events[0].source, "api");
    let mut published = store
        .get_version("db", &v("1.0.0"))
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    published.yanked = false;
    assert_eq!(
        events[0].data,
        json!(published),
        "the data is the version as published"
    );
}

/// Events appended with their data already serialised read back exactly
/// as the same events appended as values, in one sequence with the others.
pub async fn serialized_events_read_back_as_values(store: Arc<dyn CatalogStore>) {
    let data = json!({
        "name": "db", "n": -3, "big": u64::MAX, "ratio": 0.1, "ok": true, "none": null,
        "text": "\"quoted\" ünïcode ✓", "list": [1, {"z": 1, "a": [2.5e-8]}], "empty": {}
    });
    let first = store.append(event(0)).await.unwrap().id;
    let serialized = |i: usize| {
        SerializedEvent::new(
            EventType::ResourceUpdated,
            "test",
            format!("s-{i}"),
            i as Timestamp,
            &data,
        )
        .unwrap()
    };
    assert!(store.append_serialized(vec![]).await.unwrap().is_empty());
    let ids = store
        .append_serialized((1..4).map(serialized).collect())
        .await
        .unwrap();
    let last = store.append(event(4)).await.unwrap().id;
    assert_eq!(ids.len(), 3);
    assert!(
        std::iter::once(first)
            .chain(ids.iter().copied())
            .chain([last])
            .collect::<Vec<_>>()
            .windows(2)
            .all(|w| w[0] < w[1]),
        "one strictly increasing sequence: {first} {ids:?} {last}"
    );
    let read = store.read_after(first, 10).await.unwrap();
    assert_eq!(read.len(), 4);
    for (i, e) in read[..3].iter().enumerate() {
        let expected = serialized(i + 1).into_new().unwrap();
        assert_eq!(e.id, ids[i]);
        assert_eq!(
            (
                e.event_type,
                e.source.as_str(),
                e.subject.as_str(),
                e.timestamp
            ),
            (
                EventType::ResourceUpdated,
                "test",
                format!("s-{}", i + 1).as_str(),
                (i + 1) as Timestamp
            )
        );
        assert_eq!(e.data, expected.data);
        assert_eq!(e.data, data, "the same value as appending it as a value");
    }
    assert_eq!(read[3].subject, "e-4");
}

/// A batch publish gives each definition the result a single publish
/// would, sees earlier items of the batch, and writes nothing refused.
pub async fn batch_publish_applies_every_rule(store: Arc<dyn CatalogStore>) {
    publish(&store, definition("db", "1.0.0")).await;
    let mut app = definition("app", "1.0.0");
    app.spec.dependencies.push(Dependency {
        name: "net".into(),
        version: "^1".into(),
    });
    let mut conflicting = definition("db", "1.0.0");
    conflicting.metadata.description = "other content".into();
    let mut breaking = definition("net", "1.1.0");
    breaking.spec.outputs.clear();
    let items = vec![
        (definition("net", "1.0.0"), None),
        (app, None),
        (definition("db", "1.0.0"), None),
        (conflicting, None),
        (breaking, None),
        (definition("db", "1.0.1"), None),
    ];
    let results = service(&store).publish_many(items, "sync").await.unwrap();
    let summary: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(p) => format!("{:?}", p.outcome),
            Err(e) => e.code().to_string(),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "Created",
            "Created",
            "Unchanged",
            "VERSION_IMMUTABLE",
            "BREAKING_CHANGE",
            "Created"
        ],
        "a dependency published earlier in the batch counts; each item keeps its own outcome"
    );
    assert!(
        store
            .get_version("net", &v("1.1.0"))
            .await
            .unwrap()
            .is_none(),
        "refused items are not written"
    );
    let events: Vec<(String, String)> = store
        .read_after(1, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type.as_str().to_string(), e.subject))
        .collect();
    let expected = [
        ("resource.created", "net:1.0.0"),
        ("resource.created", "app:1.0.0"),
        ("resource.updated", "db:1.0.1"),
    ];
    assert_eq!(
        events,
        expected.map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(store
        .versions_many(&["db".into(), "ghost".into()])
        .await
        .unwrap()["ghost"]
        .is_empty());
}

/// Source state and sync reports round-trip.
pub async fn sync_state_and_reports(store: Arc<dyn CatalogStore>) {
    assert!(store.source_state("platform").await.unwrap().is_none());
    let state = SourceState {
        source: "platform".into(),
        head: Some("abc123".into()),
        files: BTreeMap::from([("a.yaml".into(), vec!["db:1.0.0".into()])]),
    };
    store.save_source_state(&state).await.unwrap();
    assert_eq!(
        store.source_state("platform").await.unwrap(),
        Some(state.clone())
    );
    let updated = SourceState {
        head: Some("def456".into()),
        ..state
    };
    store.save_source_state(&updated).await.unwrap();
    assert_eq!(
        store
            .source_state("platform")
            .await
            .unwrap()
            .unwrap()
            .head
            .as_deref(),
        Some("def456")
    );

    let report = |source: &str, commit: &str| SyncReport {
        source: source.into(),
        commit: Some(commit.into()),
        published: vec!["db:1.0.0".into()],
        unchanged: 2,
        yanked: vec![],
        errors: vec![DocumentError {
            file: "bad.yaml".into(),
            document: 1,
            line: 12,
            code: "VALIDATION_FAILED".into(),
            errors: vec![FieldError::new("metadata.name", "bad")],
            team: None,
        }],
        duration_ms: 5,
        files_read: 3,
        finished_at: 1000,
    };
    store.record_sync(&report("platform", "a")).await.unwrap();
    store.record_sync(&report("platform", "b")).await.unwrap();
    store.record_sync(&report("team", "c")).await.unwrap();
    let mut last = store.last_syncs().await.unwrap();
    last.sort_by(|a, b| a.source.cmp(&b.source));
    assert_eq!(last.len(), 2, "one report per source");
    assert_eq!(last[0], report("platform", "b"));
}

/// A fresh full store (catalog, compositions, deployments) for one case.
pub struct StoreFixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Dropped after the case.
    pub guard: Box<dyn Any + Send + Sync>,
}

impl StoreFixture {
    /// A fixture with nothing to keep alive.
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreFixture {
            store,
            guard: Box::new(()),
        }
    }

    /// A fixture keeping `guard` alive.
    pub fn with_guard(store: Arc<dyn Store>, guard: impl Any + Send + Sync) -> Self {
        StoreFixture {
            store,
            guard: Box::new(guard),
        }
    }
}

/// Generates one `#[tokio::test]` per composition and deployment case.
/// `$make` evaluates to a future of a [`StoreFixture`].
#[macro_export]
macro_rules! deployment_store_conformance_tests {
    ($make:expr) => {
        $crate::deployment_store_conformance_tests!(@cases $make;
            compositions_are_versioned_per_team, deployment_revisions_and_conflicts, idempotency_keys,
            concurrent_updates_one_wins, deployment_listing_filters, leases_are_exclusive_until_they_expire,
            lost_leases_cannot_be_renewed_or_released, concurrent_claims_one_wins);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $make.await;
                $crate::testing::$case(fixture.store.clone()).await;
                drop(fixture);
            }
        )*
    };
}

fn composition(team: &str, name: &str, version: &str, description: &str) -> PublishedComposition {
    let c = Composition {
        api_version: COMPOSITION_API_VERSION.into(),
        kind: COMPOSITION_KIND.into(),
        metadata: CompositionMetadata {
            name: name.into(),
            team: team.into(),
            version: v(version),
        },
        spec: CompositionSpec {
            description: description.into(),
            parameters: vec![],
            resources: vec![CompositionResource {
                name: "db".into(),
                catalog_ref: "db:^1".into(),
                engine: None,
                config: BTreeMap::new(),
                depends_on: vec![],
            }],
            dependencies: vec![],
        },
    };
    PublishedComposition {
        content_hash: c.content_hash(),
        composition: c,
        published_at: 0,
        origin: None,
    }
}

/// Compositions are namespaced by team, versioned and immutable.
pub async fn compositions_are_versioned_per_team(store: Arc<dyn Store>) {
    for (team, version) in [
        ("alpha", "1.0.0"),
        ("alpha", "1.10.0"),
        ("alpha", "1.9.0"),
        ("beta", "0.1.0"),
    ] {
        let outcome = store
            .insert_composition(composition(team, "web-app", version, team))
            .await
            .unwrap();
        assert_eq!(outcome, PublishOutcome::Created);
    }
    assert_eq!(
        store
            .insert_composition(composition("alpha", "web-app", "1.0.0", "alpha"))
            .await
            .unwrap(),
        PublishOutcome::Unchanged
    );
    let err = store
        .insert_composition(composition("alpha", "web-app", "1.0.0", "changed"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionImmutable);
    let versions = store
        .composition_versions("alpha", "web-app")
        .await
        .unwrap();
    assert_eq!(versions, [v("1.10.0"), v("1.9.0"), v("1.0.0")]);
    let beta = store
        .resolve_composition("beta", "web-app", &VersionSpec::Latest)
        .await
        .unwrap();
    assert_eq!(
        beta.composition.spec.description, "beta",
        "alpha/web-app ≠ beta/web-app"
    );
    let picked = store
        .resolve_composition("alpha", "web-app", &VersionSpec::parse("~1.9").unwrap())
        .await
        .unwrap();
    assert_eq!(picked.composition.metadata.version, v("1.9.0"));
    let err = store
        .resolve_composition("gamma", "web-app", &VersionSpec::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CompositionNotFound);
    store
        .insert_composition(composition("alpha", "data-pipeline", "1.0.0", "x"))
        .await
        .unwrap();
    let alpha: Vec<String> = store
        .list_compositions(Some("alpha"))
        .await
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c.composition.metadata.name, c.composition.metadata.version
            )
        })
        .collect();
    assert_eq!(alpha, ["data-pipeline@1.0.0", "web-app@1.10.0"]);
    assert_eq!(store.list_compositions(None).await.unwrap().len(), 3);
}

/// A pending deployment `alpha/{env}/checkout` at `revision`, with one
/// resource `db` (`db:1.0.0` on terraform), for store tests.
pub fn deployment(id: &str, env: &str, revision: u64, created_at: Timestamp) -> Deployment {
    Deployment {
        id: id.into(),
        team: "alpha".into(),
        environment: env.into(),
        name: "checkout".into(),
        revision,
        status: DeploymentStatus::Pending,
        created_at,
        updated_at: created_at,
        waves: vec![vec!["db".into()]],
        resources: vec![DeployedResource {
            name: "db".into(),
            catalog_ref: "db:1.0.0".into(),
            engine: "terraform".into(),
            status: ResourceStatus::Pending,
            outputs: BTreeMap::new(),
            artifacts: vec![],
            error: None,
            health: None,
        }],
        error: None,
        composition: None,
        params: BTreeMap::new(),
        labels: BTreeMap::new(),
        commit: None,
        rollback_of: None,
        unchanged: false,
        cluster: None,
        generation: 0,
    }
}

/// Revisions are unique per deployment; content round-trips.
pub async fn deployment_revisions_and_conflicts(store: Arc<dyn Store>) {
    let content = RevisionContent {
        artifacts: BTreeMap::from([(
            "db".to_string(),
            vec![Artifact {
                path: "main.tf.json".into(),
                content: "{}".into(),
                media_type: "application/json".into(),
            }],
        )]),
        ..Default::default()
    };
    store
        .create_deployment(&deployment("d1", "staging", 1, 10), &content, None)
        .await
        .unwrap();
    let err = store
        .create_deployment(&deployment("d2", "staging", 1, 11), &content, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::Conflict,
        "a revision number is taken once"
    );
    store
        .create_deployment(&deployment("d2", "staging", 2, 11), &content, None)
        .await
        .unwrap();
    store
        .create_deployment(&deployment("p1", "production", 1, 12), &content, None)
        .await
        .unwrap();

    assert_eq!(
        store.get_deployment("d1").await.unwrap().unwrap().revision,
        1
    );
    assert!(store.get_deployment("nope").await.unwrap().is_none());
    assert_eq!(
        store.revision_content("d1").await.unwrap().unwrap(),
        content
    );
    let mut more = content.clone();
    more.artifacts.insert("app".into(), vec![]);
    store.save_revision_content("d1", &more).await.unwrap();
    assert_eq!(store.revision_content("d1").await.unwrap().unwrap(), more);

    let key = DeploymentKey {
        team: "alpha".into(),
        environment: "staging".into(),
        name: "checkout".into(),
    };
    let revs: Vec<u64> = store
        .revisions(&key)
        .await
        .unwrap()
        .iter()
        .map(|d| d.revision)
        .collect();
    assert_eq!(revs, [1, 2]);
}

/// The same idempotency key and request returns the first deployment;
/// another request under the key is a conflict.
pub async fn idempotency_keys(store: Arc<dyn Store>) {
    let content = RevisionContent::default();
    let first = store
        .create_deployment(
            &deployment("d1", "staging", 1, 10),
            &content,
            Some(("key-1", "hash-a")),
        )
        .await
        .unwrap();
    assert_eq!(first, CreateOutcome::Created);
    let again = store
        .create_deployment(
            &deployment("d9", "staging", 2, 11),
            &content,
            Some(("key-1", "hash-a")),
        )
        .await
        .unwrap();
    match again {
        CreateOutcome::Existing(d) => assert_eq!(d.id, "d1"),
        other => panic!("expected the first deployment, got {other:?}"),
    }
    assert!(
        store.get_deployment("d9").await.unwrap().is_none(),
        "nothing is created twice"
    );
    let err = store
        .create_deployment(
            &deployment("d9", "staging", 2, 11),
            &content,
            Some(("key-1", "hash-b")),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
}

/// Of 16 writers updating from the same generation, exactly one wins.
pub async fn concurrent_updates_one_wins(store: Arc<dyn Store>) {
    store
        .create_deployment(
            &deployment("d1", "staging", 1, 10),
            &RevisionContent::default(),
            None,
        )
        .await
        .unwrap();
    let base = store.get_deployment("d1").await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        let mut d = base.clone();
        d.status = if i % 2 == 0 {
            DeploymentStatus::Cancelled
        } else {
            DeploymentStatus::Planning
        };
        d.error = Some(format!("writer {i}"));
        tasks.push(tokio::spawn(async move {
            store.update_deployment(&d, base.generation).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(e) => assert_eq!(e.code(), ErrorCode::Conflict),
        }
    }
    assert_eq!(wins, 1, "exactly one state transition wins");
    let stored = store.get_deployment("d1").await.unwrap().unwrap();
    assert_eq!(stored.generation, base.generation + 1);
    let mut next = stored.clone();
    next.status = DeploymentStatus::Succeeded;
    store
        .update_deployment(&next, stored.generation)
        .await
        .unwrap();
    let err = store
        .update_deployment(&next, stored.generation)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::Conflict,
        "a stale generation is refused"
    );
    let missing = deployment("ghost", "staging", 1, 0);
    assert_eq!(
        store
            .update_deployment(&missing, 0)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::DeploymentNotFound
    );
}

/// Listing filters by team, environment and status, newest first.
pub async fn deployment_listing_filters(store: Arc<dyn Store>) {
    let content = RevisionContent::default();
    store
        .create_deployment(&deployment("a", "staging", 1, 10), &content, None)
        .await
        .unwrap();
    store
        .create_deployment(&deployment("b", "staging", 2, 20), &content, None)
        .await
        .unwrap();
    store
        .create_deployment(&deployment("c", "production", 1, 30), &content, None)
        .await
        .unwrap();
    let mut beta = deployment("d", "staging", 1, 40);
    beta.team = "beta".into();
    store
        .create_deployment(&beta, &content, None)
        .await
        .unwrap();
    let mut done = store.get_deployment("b").await.unwrap().unwrap();
    done.status = DeploymentStatus::Succeeded;
    store
        .update_deployment(&done, done.generation)
        .await
        .unwrap();

    let ids = |list: Vec<Deployment>| list.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let all = DeploymentFilter::default();
    assert_eq!(
        ids(store.list_deployments(&all).await.unwrap()),
        ["d", "c", "b", "a"]
    );
    let alpha_staging = DeploymentFilter {
        team: Some("alpha".into()),
        environment: Some("staging".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_deployments(&alpha_staging).await.unwrap()),
        ["b", "a"]
    );
    let succeeded = DeploymentFilter {
        status: Some(DeploymentStatus::Succeeded),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_deployments(&succeeded).await.unwrap()),
        ["b"]
    );
}

/// A lease is held by one owner until it expires — even its own owner
/// cannot claim it again — and claims of other deployments are independent.
pub async fn leases_are_exclusive_until_they_expire(store: Arc<dyn Store>) {
    assert!(store.leases().await.unwrap().is_empty());
    let a = store
        .claim_lease("d1", "replica-a", 1_000, 500)
        .await
        .unwrap()
        .expect("a fresh lease is free");
    assert_eq!(
        (a.owner.as_str(), a.epoch, a.expires_at_ms),
        ("replica-a", 1, 1_500)
    );
    for owner in ["replica-b", "replica-a"] {
        assert_eq!(
            store.claim_lease("d1", owner, 1_499, 500).await.unwrap(),
            None,
            "{owner} cannot claim a live lease"
        );
    }
    let other = store
        .claim_lease("d2", "replica-b", 1_000, 500)
        .await
        .unwrap()
        .expect("leases are per deployment");
    assert_eq!(store.leases().await.unwrap(), [a.clone(), other]);

    let renewed = store.renew_lease(&a, 1_400, 500).await.unwrap();
    assert_eq!((renewed.epoch, renewed.expires_at_ms), (1, 1_900));
    assert_eq!(
        store
            .claim_lease("d1", "replica-b", 1_600, 500)
            .await
            .unwrap(),
        None,
        "a renewed lease holds past its first expiry"
    );
    let b = store
        .claim_lease("d1", "replica-b", 1_900, 500)
        .await
        .unwrap()
        .expect("an expired lease can be taken over");
    assert_eq!(
        (b.owner.as_str(), b.epoch, b.expires_at_ms),
        ("replica-b", 2, 2_400)
    );
}

/// A holder that lost its lease can neither renew nor release it; the
/// holder's release frees it at once.
pub async fn lost_leases_cannot_be_renewed_or_released(store: Arc<dyn Store>) {
    let a = store
        .claim_lease("d1", "replica-a", 0, 100)
        .await
        .unwrap()
        .unwrap();
    let late = store.renew_lease(&a, 5_000, 100).await.unwrap();
    assert_eq!(
        late.expires_at_ms, 5_100,
        "an expired lease nobody claimed can still be renewed"
    );
    let b = store
        .claim_lease("d1", "replica-b", 6_000, 100)
        .await
        .unwrap()
        .unwrap();
    let err = store.renew_lease(&late, 6_001, 100).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict, "{err}");
    store.release_lease(&late).await.unwrap();
    assert_eq!(
        store.leases().await.unwrap(),
        std::slice::from_ref(&b),
        "a stale release leaves the new holder's lease alone"
    );
    store.release_lease(&b).await.unwrap();
    assert!(store.leases().await.unwrap().is_empty());
    let c = store
        .claim_lease("d1", "replica-c", 6_001, 100)
        .await
        .unwrap()
        .expect("a released lease is free at once");
    assert_eq!(c.owner, "replica-c");
    let err = store.renew_lease(&b, 6_002, 100).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
}

/// Of 16 replicas claiming one expired lease at once, exactly one wins.
pub async fn concurrent_claims_one_wins(store: Arc<dyn Store>) {
    store
        .claim_lease("d1", "replica-old", 0, 10)
        .await
        .unwrap()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_lease("d1", &format!("replica-{i}"), 1_000, 1_000)
                .await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(lease) = t.await.unwrap().unwrap() {
            winners.push(lease);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    assert_eq!(winners[0].epoch, 2);
    assert_eq!(store.leases().await.unwrap(), winners);
}

/// Sixteen claimers spread over several handles on one store (processes or
/// replicas), for a new lease and then for the same lease once expired:
/// one claim wins each time, and every handle sees the winner's lease.
pub async fn claims_across_handles_one_wins(handles: &[Arc<dyn Store>]) {
    for (now_ms, epoch) in [(0, 1), (1_000, 2)] {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = handles[i % handles.len()].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .claim_lease("d1", &format!("replica-{i}"), now_ms, 1_000)
                    .await
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            winners.extend(task.await.unwrap().unwrap());
        }
        assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
        assert_eq!(winners[0].epoch, epoch);
        for store in handles {
            assert_eq!(store.leases().await.unwrap(), winners);
        }
    }
}
