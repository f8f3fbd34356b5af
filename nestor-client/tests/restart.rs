//! The must-show: `nestor serve` killed mid-stream and started again on the
//! same SQLite file and port; the stream yields every event exactly once.

use std::time::Duration;

use futures_util::StreamExt;
use nestor_client::EventQuery;
use nestor_core::EventType;

use crate::support::{client, definition, server_process_main, ServerProcess};

/// Not a test: the `nestor serve` child process of the restart test (this
/// binary started again with `--exact restart::server_process --ignored`).
/// A plain test: `nestor` starts its own runtime.
#[test]
#[ignore = "the server process the restart test starts; returns at once when run by hand"]
fn server_process() {
    server_process_main();
}

async fn next(stream: &mut nestor_client::EventStream) -> nestor_core::Event {
    tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("an event within 30 s")
        .expect("the stream goes on")
        .expect("an event, not an error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_across_a_killed_and_restarted_server_yields_every_event_once() {
    const BEFORE: usize = 5;
    const AFTER: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let first = ServerProcess::start(dir.path(), "127.0.0.1:0");
    let addr = first.addr().to_string();
    let platform = client(&first.url, Some("platform"));
    let mut stream = platform
        .events(EventQuery::new().types("resource.*"))
        .await
        .unwrap();
    let mut subjects = Vec::new();
    for i in 0..BEFORE {
        let def = definition(&format!("restart-{i}"), "1.0.0", "before the restart");
        platform.publish(&def).await.unwrap();
    }
    for _ in 0..BEFORE {
        let e = next(&mut stream).await;
        assert_eq!(e.event_type, EventType::ResourceCreated);
        subjects.push(e.subject);
    }
    let before_kill = stream.position();

    first.kill();
    // While the server is gone the stream yields nothing: no error, no end.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), stream.next())
            .await
            .is_err(),
        "nothing while the server is down"
    );

    let second = ServerProcess::start(dir.path(), &addr);
    assert_eq!(second.addr(), addr);
    for i in 0..AFTER {
        let def = definition(&format!("restart-{i}"), "1.1.0", "after the restart");
        platform.publish(&def).await.unwrap();
    }
    for _ in 0..AFTER {
        let e = next(&mut stream).await;
        assert_eq!(e.event_type, EventType::ResourceUpdated);
        assert!(e.id > before_kill);
        subjects.push(e.subject);
    }
    // Nothing more: no event repeated by the replay after the reconnect.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), stream.next())
            .await
            .is_err(),
        "no event beyond the {} published",
        BEFORE + AFTER
    );
    let expected: Vec<String> = (0..BEFORE)
        .map(|i| format!("restart-{i}:1.0.0"))
        .chain((0..AFTER).map(|i| format!("restart-{i}:1.1.0")))
        .collect();
    assert_eq!(subjects, expected);
    drop(second);
}
