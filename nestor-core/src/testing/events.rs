//! The event log: sequences, concurrent appends, pre-serialised events, and
//! the events (docs/src/reference/events.md) that catalog changes append.

use std::sync::Arc;

use serde_json::json;

use crate::*;

use super::{definition, service, v};

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

/// Publishing and yanking append their events (docs/src/reference/events.md) with the full object.
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
