//! Sync state: a source's last seen head and files, and the sync reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::*;

/// Source state and sync reports round-trip.
pub async fn sync_state_and_reports(store: Arc<dyn CatalogStore>) {
    assert!(store.source_state("platform").await.unwrap().is_none());
    let state = SourceState {
        source: "platform".into(),
        head: Some("abc123".into()),
        files: BTreeMap::from([("a.yaml".into(), vec!["db:1.0.0".into()])]),
        // Policy files are kept whole with the state (a sync recompiles
        // the source's set from them).
        policies: BTreeMap::from([(
            "policies/labels.rego".into(),
            StoredPolicy {
                text: "package nestor.deployment\n".into(),
                commit: Some("abc123".into()),
                scope: PolicyScope {
                    team: Some("alpha".into()),
                    environment: None,
                },
            },
        )]),
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
        policies: vec!["policies/labels.rego".into()],
    };
    store.record_sync(&report("platform", "a")).await.unwrap();
    store.record_sync(&report("platform", "b")).await.unwrap();
    store.record_sync(&report("team", "c")).await.unwrap();
    let mut last = store.last_syncs().await.unwrap();
    last.sort_by(|a, b| a.source.cmp(&b.source));
    assert_eq!(last.len(), 2, "one report per source");
    assert_eq!(last[0], report("platform", "b"));
}
