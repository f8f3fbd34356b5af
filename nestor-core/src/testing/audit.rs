//! The audit trail suite: every store keeps each record as written, reads
//! them newest first through every filter, and prunes only what retention
//! says.

use std::sync::Arc;

use crate::*;

fn entry(t: Timestamp, actor: &str, action: &str, subject: &str) -> AuditEntry {
    AuditEntry {
        timestamp: t,
        actor: Actor {
            name: actor.into(),
            roles: vec!["platform".into()],
            request_id: Some(format!("req-{t}")),
            client: Some("127.0.0.1:40000".into()),
        },
        action: action.into(),
        subject: subject.into(),
        outcome: AuditOutcome::Succeeded,
        error: None,
        changes: vec![],
    }
}

fn subjects(records: &[AuditRecord]) -> Vec<&str> {
    records.iter().map(|r| r.entry.subject.as_str()).collect()
}

/// Records read back whole, newest first, through each filter and limit.
pub async fn audit_records_filter_and_order(store: Arc<dyn Store>) {
    let mut failed = entry(300, "ci", "resource.publish", "db:2.0.0");
    failed.outcome = AuditOutcome::Failed;
    failed.error = Some("BREAKING_CHANGE".into());
    failed.changes = vec![Change {
        kind: ChangeKind::Breaking,
        field: "spec.required_inputs".into(),
        message: "required input added".into(),
    }];
    let written = vec![
        entry(100, "ci", "resource.publish", "db:1.0.0"),
        entry(200, "alice", "deployment.apply", "alpha.dev.web.r1"),
        failed.clone(),
        entry(300, "alice", "deployment.rollback", "alpha.dev.web.r1"),
        entry(400, "bob", "resource.yank", "db:1.0.0"),
    ];
    let mut ids = Vec::new();
    for e in written {
        ids.push(store.record_audit(e).await.expect("record").id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, ids,
        "ids are unique and increase in recording order"
    );

    let all = store.audit_records(&AuditQuery::default()).await.unwrap();
    assert_eq!(
        subjects(&all),
        [
            "db:1.0.0",
            "alpha.dev.web.r1",
            "db:2.0.0",
            "alpha.dev.web.r1",
            "db:1.0.0"
        ],
        "newest first; the same second in reverse recording order"
    );
    let stored_failure = all.iter().find(|r| r.entry.subject == "db:2.0.0").unwrap();
    assert_eq!(
        stored_failure.entry, failed,
        "a record reads back whole: actor, roles, request id, client, outcome, error, changes"
    );

    let q = |f: fn(&mut AuditQuery)| {
        let mut query = AuditQuery::default();
        f(&mut query);
        query
    };
    let by_actor = store
        .audit_records(&q(|q| q.actor = Some("alice".into())))
        .await
        .unwrap();
    assert_eq!(by_actor.len(), 2);
    assert!(by_actor.iter().all(|r| r.entry.actor.name == "alice"));
    let by_subject = store
        .audit_records(&q(|q| q.subject = Some("db:1.0.0".into())))
        .await
        .unwrap();
    assert_eq!(
        by_subject
            .iter()
            .map(|r| r.entry.action.as_str())
            .collect::<Vec<_>>(),
        ["resource.yank", "resource.publish"]
    );
    let area = store
        .audit_records(&q(|q| q.action = Some("deployment.*".into())))
        .await
        .unwrap();
    assert_eq!(area.len(), 2, "an area matches each of its actions");
    let exact = store
        .audit_records(&q(|q| q.action = Some("resource.publish".into())))
        .await
        .unwrap();
    assert_eq!(subjects(&exact), ["db:2.0.0", "db:1.0.0"]);
    let window = store
        .audit_records(&q(|q| {
            q.since = Some(200);
            q.until = Some(400)
        }))
        .await
        .unwrap();
    assert_eq!(window.len(), 3, "since is inclusive, until exclusive");
    let limited = store
        .audit_records(&q(|q| q.limit = Some(2)))
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].entry.timestamp, 400);
    let err = store
        .audit_records(&q(|q| q.limit = Some(AuditQuery::MAX_LIMIT + 1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
}

/// Concurrent writers lose no record and never share an id.
pub async fn concurrent_audit_records_all_kept(store: Arc<dyn Store>) {
    let writers = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .record_audit(entry(1000 + i % 3, &format!("w{i}"), "catalog.sync", "src"))
                .await
                .expect("record")
        })
    });
    let mut ids = Vec::new();
    for w in writers {
        ids.push(w.await.unwrap().id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16, "every concurrent record has its own id");
    let read = store
        .audit_records(&AuditQuery {
            action: Some("catalog.sync".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(read.len(), 16);
}

/// Retention removes records older than its cut-off, and only those.
pub async fn audit_retention_prunes_only_older_records(store: Arc<dyn Store>) {
    // Periods apart, as a year of records would be.
    let day = 24 * 3600;
    for (i, t) in [10 * day, 100 * day, 200 * day, 390 * day]
        .iter()
        .enumerate()
    {
        store
            .record_audit(entry(*t, "ci", "resource.publish", &format!("d:{i}.0.0")))
            .await
            .unwrap();
    }
    let removed = store.prune_audit_before(150 * day).await.unwrap();
    assert_eq!(removed, 2);
    let left = store.audit_records(&AuditQuery::default()).await.unwrap();
    assert_eq!(subjects(&left), ["d:3.0.0", "d:2.0.0"]);
    let next = store
        .record_audit(entry(391 * day, "ci", "resource.publish", "d:4.0.0"))
        .await
        .unwrap();
    assert!(
        left.iter().all(|r| r.id < next.id),
        "ids are never reused after pruning"
    );
}

/// Pages follow each other without a gap or a repeat, records of one
/// second included, and a position keeps the other filters.
pub async fn audit_pages_follow_their_position(store: Arc<dyn Store>) {
    for i in 0..7 {
        // Three records share each second but the last.
        let e = entry(500 + i / 3, "ci", "resource.publish", &format!("p:{i}.0.0"));
        store.record_audit(e).await.unwrap();
    }
    store
        .record_audit(entry(501, "bob", "resource.yank", "other:1.0.0"))
        .await
        .unwrap();
    let mut query = AuditQuery {
        actor: Some("ci".into()),
        limit: Some(2),
        ..Default::default()
    };
    let mut seen = Vec::new();
    for _ in 0..10 {
        let page = store.audit_records(&query).await.unwrap();
        let Some(last) = page.last() else { break };
        query.after = Some(AuditPosition::of(last));
        seen.extend(page.iter().map(|r| r.entry.subject.clone()));
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("p:{i}.0.0")).collect();
    assert_eq!(seen, expected, "every record once, newest first");
}
