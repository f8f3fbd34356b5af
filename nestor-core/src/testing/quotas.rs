//! Team quotas at the store: the check and the write of a revision are
//! one atomic step; usage counts the latest revision of each deployment.

use std::sync::Arc;

use crate::*;

use super::deployment;

/// Revision `revision` of `team/env/name` with one resource per category.
fn app(team: &str, env: &str, name: &str, revision: u64, categories: &[&str]) -> Deployment {
    let mut d = deployment(
        &format!("{team}.{env}.{name}.r{revision}"),
        env,
        revision,
        revision as i64,
    );
    d.team = team.into();
    d.name = name.into();
    let template = d.resources[0].clone();
    d.resources = categories
        .iter()
        .enumerate()
        .map(|(i, c)| DeployedResource {
            name: format!("r{i}"),
            category: c.to_string(),
            ..template.clone()
        })
        .collect();
    d.waves = vec![d.resources.iter().map(|r| r.name.clone()).collect()];
    d
}

fn quota(team: &str) -> Quota {
    Quota {
        team: team.into(),
        environment: None,
        max_deployments: None,
        max_resources: None,
        max_per_category: Default::default(),
    }
}

async fn create(store: &Arc<dyn Store>, d: &Deployment, quotas: &[Quota]) -> Result<CreateOutcome> {
    store
        .create_deployment_within(d, &RevisionContent::default(), None, quotas)
        .await
}

/// The limit a refusal names, or a panic naming what happened instead.
fn refused(result: Result<CreateOutcome>) -> String {
    match result {
        Err(Error::QuotaExceeded { limit, .. }) => limit,
        other => panic!("expected QUOTA_EXCEEDED, got {other:?}"),
    }
}

/// 16 concurrent applies of new deployments against a quota of 5: exactly
/// 5 are recorded, the other 11 are `QUOTA_EXCEEDED` and left no trace.
pub async fn concurrent_applies_fill_a_quota_exactly(store: Arc<dyn Store>) {
    let quotas = vec![Quota {
        max_deployments: Some(5),
        ..quota("alpha")
    }];
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, quotas) = (store.clone(), quotas.clone());
            tokio::spawn(async move {
                let d = app("alpha", "dev", &format!("app-{i}"), 1, &["database"]);
                create(&store, &d, &quotas).await
            })
        })
        .collect();
    let (mut created, mut exceeded) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            Ok(CreateOutcome::Created) => created += 1,
            Err(e) if e.code() == ErrorCode::QuotaExceeded => exceeded += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((created, exceeded), (5, 11));
    let filter = DeploymentFilter {
        team: Some("alpha".into()),
        ..Default::default()
    };
    assert_eq!(store.list_deployments(&filter).await.unwrap().len(), 5);
}

/// A new revision replaces its predecessor's share; a revision without
/// resources (a deleted deployment) frees it; other teams are not counted.
pub async fn usage_counts_latest_revisions_and_deletions_free_it(store: Arc<dyn Store>) {
    let quotas = [Quota {
        max_deployments: Some(2),
        max_resources: Some(2),
        ..quota("alpha")
    }];
    let q = &quotas[..];
    create(&store, &app("alpha", "dev", "a", 1, &["db"]), q)
        .await
        .unwrap();
    create(&store, &app("alpha", "dev", "b", 1, &["db"]), q)
        .await
        .unwrap();
    let third = app("alpha", "dev", "c", 1, &["db"]);
    assert_eq!(refused(create(&store, &third, q).await), "max_deployments");
    assert!(store.get_deployment(&third.id).await.unwrap().is_none());
    // Redeploying a deployment needs no room for it twice.
    create(&store, &app("alpha", "dev", "a", 2, &["db"]), q)
        .await
        .unwrap();
    let bigger = app("alpha", "dev", "a", 3, &["db", "cache"]);
    assert_eq!(refused(create(&store, &bigger, q).await), "max_resources");
    // Deleting b (its latest revision holds nothing) frees its share.
    create(&store, &app("alpha", "dev", "b", 2, &[]), q)
        .await
        .unwrap();
    create(&store, &third, q).await.unwrap();
    // Another team's deployments count for nothing here.
    create(&store, &app("beta", "dev", "x", 1, &["db", "db", "db"]), q)
        .await
        .unwrap();
    let err = create(&store, &app("alpha", "dev", "d", 1, &["db"]), q)
        .await
        .unwrap_err();
    let Error::QuotaExceeded {
        team, max, usage, ..
    } = err
    else {
        panic!("expected QUOTA_EXCEEDED, got {err:?}");
    };
    assert_eq!((team.as_str(), max, usage), ("alpha", 2, 3));
}

/// A quota of one environment counts that environment only; a category
/// limit counts resources of that definition category.
pub async fn environment_and_category_quotas(store: Arc<dyn Store>) {
    let mut databases = quota("alpha");
    databases.environment = Some("production".into());
    databases.max_per_category.insert("database".into(), 1);
    let q = &[databases][..];
    create(
        &store,
        &app("alpha", "production", "a", 1, &["database"]),
        q,
    )
    .await
    .unwrap();
    let second = app("alpha", "production", "b", 1, &["database", "cache"]);
    let err = create(&store, &second, q).await.unwrap_err();
    assert!(
        matches!(&err, Error::QuotaExceeded { limit, environment: Some(e), max: 1, usage: 2, .. }
            if limit == "max_per_category.database" && e == "production"),
        "{err:?}"
    );
    create(&store, &app("alpha", "staging", "b", 1, &["database"]), q)
        .await
        .unwrap();
    create(&store, &app("alpha", "production", "b", 1, &["cache"]), q)
        .await
        .unwrap();
}
