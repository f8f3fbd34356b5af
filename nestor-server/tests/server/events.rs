//! The event stream: replay with Last-Event-ID, filters, a slow client
//! told to resync while a fast one keeps up, and a client that stops
//! reading cut off without slowing anyone.

use std::time::Duration;

use nestor_core::{EventType, NewEvent};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{definition, Body, Setup, SseClient, TestServer};

const WAIT: Duration = Duration::from_secs(10);

async fn publish(s: &TestServer, name: &str, version: &str) {
    let (status, body) = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Yaml(definition(name, version, "evented", &[])),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_last_event_id_gets_exactly_the_missed_events() {
    let s = TestServer::start().await;
    let mut first = SseClient::connect(&s, "?types=resource.*", None, None).await;
    publish(&s, "ev-one", "1.0.0").await;
    publish(&s, "ev-one", "1.1.0").await;
    let a = first.next(WAIT).await.unwrap();
    let b = first.next(WAIT).await.unwrap();
    assert_eq!(
        (a.event.as_str(), a.data["subject"].as_str().unwrap()),
        ("resource.created", "ev-one:1.0.0")
    );
    assert_eq!(
        (b.event.as_str(), b.data["subject"].as_str().unwrap()),
        ("resource.updated", "ev-one:1.1.0")
    );
    assert!(b.id.unwrap() > a.id.unwrap());
    assert_eq!(b.data["id"], b.id.unwrap());
    assert_eq!(
        b.data["data"]["definition"]["metadata"]["name"], "ev-one",
        "data carries the full object"
    );
    let last_seen = b.id.unwrap();
    drop(first);

    // Missed while disconnected.
    let mut missed = Vec::new();
    for (name, version) in [
        ("ev-two", "1.0.0"),
        ("ev-one", "1.2.0"),
        ("ev-two", "1.0.1"),
    ] {
        publish(&s, name, version).await;
        missed.push(format!("{name}:{version}"));
    }
    let mut again = SseClient::connect(&s, "?types=resource.*", Some(last_seen), None).await;
    let mut got = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let f = again.next(WAIT).await.unwrap();
        got.push(f.data["subject"].as_str().unwrap().to_string());
        ids.push(f.id.unwrap());
    }
    assert_eq!(got, missed);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Nothing else was queued; a live event follows.
    publish(&s, "ev-three", "1.0.0").await;
    let live = again.next(WAIT).await.unwrap();
    assert_eq!(live.data["subject"], "ev-three:1.0.0");

    // ?since= works like Last-Event-ID; filters narrow the stream.
    let mut since = SseClient::connect(
        &s,
        &format!("?since={last_seen}&filter=name:ev-two"),
        None,
        None,
    )
    .await;
    assert_eq!(
        since.next(WAIT).await.unwrap().data["subject"],
        "ev-two:1.0.0"
    );
    assert_eq!(
        since.next(WAIT).await.unwrap().data["subject"],
        "ev-two:1.0.1"
    );
    assert!(
        since.next(Duration::from_millis(400)).await.is_none(),
        "only matching events"
    );
    let mut provider = SseClient::connect(
        &s,
        "?since=0&filter=provider:gcp&filter=category:cache",
        None,
        None,
    )
    .await;
    let f = provider.next(WAIT).await.unwrap();
    assert_eq!(f.data["data"]["definition"]["metadata"]["provider"], "gcp");
    assert_eq!(
        f.data["data"]["definition"]["metadata"]["category"],
        "cache"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_gets_resync_while_a_fast_one_keeps_up() {
    let mut setup = Setup {
        catalog: false,
        ..Setup::default()
    };
    setup.config.sse.client_buffer = 16;
    let s = TestServer::with(setup).await;
    let start = s.store.last_sequence().await.unwrap();
    let mut fast = SseClient::connect(&s, "", None, None).await;
    let mut slow = SseClient::connect(&s, "", None, None).await;
    const N: usize = 3000;
    let blob = "x".repeat(8 * 1024);
    let store = s.store.clone();
    let hub = s.state.events().clone();
    let writer = tokio::spawn(async move {
        for i in 0..N {
            store
                .append(NewEvent {
                    event_type: EventType::SyncCompleted,
                    source: "load".into(),
                    subject: format!("load-{i}"),
                    timestamp: 0,
                    data: json!({"blob": blob}),
                })
                .await
                .unwrap();
            hub.wake();
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut ids = Vec::with_capacity(N);
    while ids.len() < N {
        let f = fast
            .next(Duration::from_secs(30))
            .await
            .expect("the fast client keeps receiving");
        assert_eq!(
            f.event, "sync.completed",
            "the fast client is never told to resync"
        );
        ids.push(f.id.unwrap());
    }
    writer.await.unwrap();
    assert_eq!(ids, (start + 1..=start + N as u64).collect::<Vec<_>>());

    // The slow client has not been read for a while: its connection stalled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The slow client, reading only now, finds a resync and the end of its stream.
    let mut count = 0;
    let last = loop {
        match slow.next(Duration::from_secs(30)).await {
            Some(f) if f.event == "resync" => break f.data["last_event_id"].as_u64().unwrap(),
            Some(f) => {
                count += 1;
                assert!(count < N, "the slow client should have been cut off");
                let _ = f;
            }
            None => panic!("stream ended without resync"),
        }
    };
    assert!(
        slow.next(Duration::from_secs(5)).await.is_none(),
        "the stream closes after resync"
    );
    // Reconnecting from where it was loses nothing.
    let mut resumed = SseClient::connect(&s, "", Some(last), None).await;
    let mut next = last + 1;
    while next <= start + N as u64 {
        let f = resumed.next(Duration::from_secs(30)).await.unwrap();
        assert_eq!(f.id, Some(next));
        next += 1;
    }
    s.stop().await;
}

/// Appends `n` events of 8 KiB each, waking the hub after each.
fn load(s: &TestServer, n: usize) -> tokio::task::JoinHandle<()> {
    let blob = "x".repeat(8 * 1024);
    let store = s.store.clone();
    let hub = s.state.events().clone();
    tokio::spawn(async move {
        for i in 0..n {
            store
                .append(NewEvent {
                    event_type: EventType::SyncCompleted,
                    source: "load".into(),
                    subject: format!("load-{i}"),
                    timestamp: 0,
                    data: json!({"blob": blob}),
                })
                .await
                .unwrap();
            hub.wake();
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_slows_nobody() {
    let mut setup = Setup {
        catalog: false,
        ..Setup::default()
    };
    setup.config.sse.client_buffer = 16;
    setup.config.server.write_timeout = "1s".into();
    let s = TestServer::with(setup).await;
    let start = s.store.last_sequence().await.unwrap();
    // A client with a small receive window that reads its answer's head
    // and then nothing more.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let mut stalled = socket
        .connect(s.url.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    stalled
        .write_all(b"GET /api/v1/events HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 512];
    let n = stalled.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    let mut fast = SseClient::connect(&s, "", None, None).await;
    assert_eq!(s.state.metrics().sse_connections(), 2);

    const N: usize = 3000;
    let started = std::time::Instant::now();
    let writer = load(&s, N);
    for expected in start + 1..=start + N as u64 {
        let f = fast
            .next(Duration::from_secs(30))
            .await
            .expect("the fast client keeps receiving");
        assert_eq!(f.id, Some(expected));
    }
    writer.await.unwrap();
    let everyone = started.elapsed();
    // The stalled stream is dropped once its socket took nothing for 1 s.
    super::eventually(Duration::from_secs(5), || async {
        (s.state.metrics().sse_connections() == 1).then_some(())
    })
    .await;
    // What it was sent ends (the connection is closed), and reconnecting
    // from the last event it received whole loses nothing.
    let mut got = Vec::new();
    let read_all = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the stalled connection is closed");
    let text = String::from_utf8_lossy(&got);
    let ids: Vec<u64> = text
        .split("id: ")
        .skip(1)
        .filter_map(|rest| rest.split('\n').next()?.trim().parse().ok())
        .collect();
    assert!(
        ids.len() < N,
        "the stalled client was not sent everything ({} of {N})",
        ids.len()
    );
    let last_whole = ids.iter().rev().nth(1).copied().unwrap_or(start);
    let mut resumed = SseClient::connect(&s, "", Some(last_whole), None).await;
    for expected in last_whole + 1..=start + N as u64 {
        let f = resumed.next(Duration::from_secs(30)).await.unwrap();
        assert_eq!(f.id, Some(expected));
    }
    eprintln!("{N} events reached the fast client in {everyone:?} beside a stalled one");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_streams_and_heartbeats_flow() {
    let s = TestServer::start().await;
    let client = s.client.clone();
    let url = format!("{}/api/v1/events", s.url);
    let mut resp = client.get(url).send().await.unwrap();
    // A heartbeat comment arrives within the configured 1 s.
    let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&chunk).starts_with(':'),
        "{chunk:?}"
    );
    let stop = tokio::spawn(s.stop());
    // The stream ends: chunks run out within the shutdown bound.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = resp.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "SSE stream did not end on shutdown");
    stop.await.unwrap();
}
