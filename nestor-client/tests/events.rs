//! The event stream: filters and types against a real server; duplicates,
//! `event: resync`, silent and closed connections against a scripted SSE
//! server (a real one never misbehaves on cue).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::StreamExt;
use nestor_client::{Client, EventQuery, EventStream};
use nestor_core::{ErrorCode, Event, EventType};

use crate::support::{definition, Server};

async fn next(stream: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("an event within 30 s")
        .expect("the stream goes on")
        .expect("an event")
}

async fn quiet(stream: &mut EventStream, wait: Duration) -> bool {
    tokio::time::timeout(wait, stream.next()).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_from_now_yields_what_its_filters_and_types_select() {
    let s = Server::start().await;
    let platform = s.client(Some("platform"));
    let mut stream = s
        .client(None)
        .events(
            EventQuery::new()
                .types("resource.*")
                .filter("name", "client-ev-a"),
        )
        .await
        .unwrap();
    let start = stream.position();
    assert!(
        start > 0,
        "from now: the example catalog's events are behind"
    );
    for (name, version) in [
        ("client-ev-a", "1.0.0"),
        ("client-ev-b", "1.0.0"),
        ("client-ev-a", "1.1.0"),
    ] {
        platform
            .publish(&definition(name, version, "x"))
            .await
            .unwrap();
    }
    let first = next(&mut stream).await;
    assert_eq!(
        (first.event_type, first.subject.as_str()),
        (EventType::ResourceCreated, "client-ev-a:1.0.0")
    );
    assert!(first.id > start);
    assert_eq!(first.data["definition"]["metadata"]["name"], "client-ev-a");
    let second = next(&mut stream).await;
    assert_eq!(
        (second.event_type, second.subject.as_str()),
        (EventType::ResourceUpdated, "client-ev-a:1.1.0")
    );
    assert_eq!(stream.position(), second.id);
    platform
        .yank("client-ev-a", &semver::Version::new(1, 1, 0))
        .await
        .unwrap();
    assert_eq!(
        next(&mut stream).await.event_type,
        EventType::ResourceYanked
    );
    assert!(quiet(&mut stream, Duration::from_millis(300)).await);

    // Only yanks, from the start of the log.
    let mut yanks = s
        .client(None)
        .events(
            EventQuery::new()
                .since(0)
                .event_type(EventType::ResourceYanked),
        )
        .await
        .unwrap();
    assert_eq!(next(&mut yanks).await.subject, "client-ev-a:1.1.0");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_zero_replays_the_log_in_order() {
    let s = Server::start().await;
    let mut stream = s
        .client(None)
        .events(EventQuery::new().since(0).types("resource.created"))
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Ok(item) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
        events.push(item.unwrap().unwrap());
    }
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    let names: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e.subject.split(':').next().unwrap())
        .collect();
    assert_eq!(names.len(), events.len(), "one resource.created per name");
    assert!(
        names.contains("aws-rds-mysql") && names.len() > 5,
        "{names:?}"
    );
    let status = s.client(None).status().await.unwrap();
    assert!(stream.position() <= status.last_event);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_query_or_token_fails_at_once() {
    let s = Server::start().await;
    for query in [
        EventQuery::new().types("nothing.*"),
        EventQuery::new().filter("colour", "red"),
    ] {
        let err = s.client(None).events(query).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest, "{err}");
    }
    let err = s
        .client(Some("not-a-token"))
        .events(EventQuery::new().since(0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    s.stop().await;
}

#[tokio::test]
async fn a_server_that_is_gone_ends_the_stream_after_the_reconnect_limit() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::builder(format!("http://127.0.0.1:{port}"))
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .build()
        .unwrap();
    // From now: the position cannot be known, so opening fails.
    let err = client.events(EventQuery::new()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    // From a known position: it tries, then gives up with the cause.
    let mut stream = client
        .events(EventQuery::new().since(3).reconnect_limit(2))
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    assert!(stream.next().await.is_none(), "an error ends the stream");
    assert_eq!(stream.position(), 3);
}

/// One SSE body per connection, in order; the last one never ends.
#[derive(Clone)]
struct Script {
    bodies: Arc<Vec<String>>,
    last_event_ids: Arc<Mutex<Vec<String>>>,
}

async fn serve_script(State(s): State<Script>, request: Request) -> Response {
    let n = {
        let mut seen = s.last_event_ids.lock().unwrap();
        seen.push(
            request
                .headers()
                .get("last-event-id")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
        );
        seen.len() - 1
    };
    let text = s.bodies[n.min(s.bodies.len() - 1)].clone();
    let last = n + 1 >= s.bodies.len();
    let body = if last {
        let chunk =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(text) });
        Body::from_stream(chunk.chain(futures_util::stream::pending()))
    } else {
        Body::from(text)
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

fn frame(id: u64) -> String {
    format!(
        "id: {id}\nevent: resource.updated\ndata: {{\"id\":{id},\"type\":\"resource.updated\",\"source\":\"test\",\"subject\":\"thing:1.0.{id}\",\"timestamp\":0,\"data\":{{}}}}\n\n"
    )
}

#[tokio::test]
async fn resync_duplicates_silence_and_closed_streams_lose_and_repeat_nothing() {
    let bodies = vec![
        // 1: three events, then the server says the client was too slow,
        // having examined up to 5.
        format!(
            "{}{}{}event: resync\nid: 5\ndata: {{\"last_event_id\":5,\"missed\":2}}\n\n",
            frame(1),
            frame(2),
            frame(3)
        ),
        // 2: a replay that repeats what was examined, then the body ends.
        format!(
            ": heartbeat\n\n{}{}{}{}",
            frame(4),
            frame(5),
            frame(6),
            frame(7)
        ),
        // 3: a connection that goes silent: no event, no heartbeat.
        String::new(),
        // 4: repeats 7, sends 8, stays open.
        format!("{}{}", frame(7), frame(8)),
    ];
    let script = Script {
        bodies: Arc::new(bodies),
        last_event_ids: Arc::default(),
    };
    let seen = script.last_event_ids.clone();
    let app = axum::Router::new()
        .fallback(serve_script)
        .with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::builder(&url)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();
    let mut stream = client
        .events(
            EventQuery::new()
                .since(0)
                .idle_timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(next(&mut stream).await.id);
    }
    assert_eq!(ids, [1, 2, 3, 6, 7, 8]);
    assert!(quiet(&mut stream, Duration::from_millis(200)).await);
    assert_eq!(
        *seen.lock().unwrap(),
        ["0", "5", "7", "7"],
        "each connection resumes after the last event yielded (or examined, after a resync)"
    );
}
