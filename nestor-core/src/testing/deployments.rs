//! Deployments: revisions, idempotency keys, optimistic updates and listing.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::*;

use super::deployment;

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
