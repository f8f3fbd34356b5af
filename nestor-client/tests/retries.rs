//! Retries and transport failures, against a scripted HTTP server on
//! 127.0.0.1 (built here with axum: a real Nestor server cannot be told to
//! answer 503 twice and then 200). Its answers use the API's error body.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use nestor_client::Client;
use nestor_core::{DeploymentRequest, ErrorCode};

/// Answers its script in order, then repeats the last answer; records the
/// headers of every request.
#[derive(Clone)]
struct Scripted {
    answers: Arc<Vec<(u16, &'static str, &'static str)>>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

async fn answer(State(s): State<Scripted>, request: Request) -> Response {
    let n = {
        let mut seen = s.seen.lock().unwrap();
        seen.push(request.headers().clone());
        seen.len() - 1
    };
    let (status, content_type, body) = s.answers[n.min(s.answers.len() - 1)];
    let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
    resp.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    if status == 429 {
        resp.headers_mut()
            .insert("retry-after", "1".parse().unwrap());
    }
    resp
}

const JSON: &str = "application/json";
const UNAVAILABLE: (u16, &str, &str) = (
    503,
    JSON,
    r#"{"error":{"code":"STORAGE_UNAVAILABLE","message":"the store is unavailable; try again later","details":{},"trace_id":"t1"}}"#,
);
const STATUS: (u16, &str, &str) = (
    200,
    JSON,
    r#"{"versions":3,"last_event":7,"engines":0,"sources":["examples"],"syncs":[]}"#,
);

/// Serves `answers` on 127.0.0.1; answers the URL and the recorded headers.
async fn scripted(
    answers: Vec<(u16, &'static str, &'static str)>,
) -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let s = Scripted {
        answers: Arc::new(answers),
        seen: Arc::default(),
    };
    let seen = s.seen.clone();
    let app = axum::Router::new().fallback(answer).with_state(s);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn quick(url: &str) -> nestor_client::ClientBuilder {
    Client::builder(url).backoff(Duration::from_millis(10), Duration::from_millis(50))
}

#[tokio::test]
async fn a_read_answered_503_twice_then_200_succeeds_on_the_third_try() {
    let (url, seen) = scripted(vec![UNAVAILABLE, UNAVAILABLE, STATUS]).await;
    let status = quick(&url).build().unwrap().status().await.unwrap();
    assert_eq!((status.versions, status.last_event), (Some(3), 7));
    assert_eq!(status.sources, ["examples"]);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn retries_stop_at_the_limit_with_the_servers_error() {
    let (url, seen) = scripted(vec![UNAVAILABLE]).await;
    let err = quick(&url)
        .retries(2)
        .build()
        .unwrap()
        .status()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    assert_eq!(
        err.to_string(),
        "storage unavailable: the store is unavailable; try again later"
    );
    assert_eq!(seen.lock().unwrap().len(), 3, "one try and two retries");

    let (url, seen) = scripted(vec![UNAVAILABLE, STATUS]).await;
    let err = quick(&url)
        .retries(0)
        .build()
        .unwrap()
        .status()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    assert_eq!(seen.lock().unwrap().len(), 1, "retries(0) sends once");
}

#[tokio::test]
async fn an_apply_is_retried_with_one_idempotency_key() {
    let conflict = (
        409,
        JSON,
        r#"{"error":{"code":"CONFLICT","message":"conflict: Idempotency-Key reused with another request","details":{},"trace_id":"t2"}}"#,
    );
    let (url, seen) = scripted(vec![UNAVAILABLE, UNAVAILABLE, conflict]).await;
    let client = quick(&url).build().unwrap();
    let request = DeploymentRequest {
        team: "alpha".into(),
        environment: "staging".into(),
        name: "web".into(),
        ..DeploymentRequest::default()
    };
    let err = client.apply(&request).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert_eq!(
        err.to_string(),
        "conflict: Idempotency-Key reused with another request"
    );
    let keys: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|h| h["idempotency-key"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| *k == keys[0] && k.len() == 32),
        "{keys:?}"
    );

    // A second apply gets a key of its own; a caller's key is sent as given.
    seen.lock().unwrap().clear();
    client.apply(&request).await.unwrap_err();
    client
        .apply_with_key(&request, "deploy-42")
        .await
        .unwrap_err();
    let seen = seen.lock().unwrap();
    assert_ne!(seen[0]["idempotency-key"], keys[0].as_str());
    assert_eq!(seen.last().unwrap()["idempotency-key"], "deploy-42");
}

#[tokio::test]
async fn calls_that_must_not_repeat_are_sent_once() {
    for call in ["rollback", "promote", "delete", "sync"] {
        let (url, seen) = scripted(vec![UNAVAILABLE, STATUS]).await;
        let client = quick(&url).build().unwrap();
        let result = match call {
            "rollback" => client
                .rollback("alpha.staging.web.r2", None)
                .await
                .map(drop),
            "promote" => client
                .promote("alpha", "web", "staging", "prod")
                .await
                .map(drop),
            "delete" => client
                .delete_deployment("alpha.staging.web.r2")
                .await
                .map(drop),
            _ => client.trigger_sync(None).await.map(drop),
        };
        assert_eq!(
            result.unwrap_err().code(),
            ErrorCode::StorageUnavailable,
            "{call}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1, "{call} is sent once");
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let limited = (
        429,
        JSON,
        r#"{"error":{"code":"RATE_LIMITED","message":"rate limited","details":{},"trace_id":"t3"}}"#,
    );
    let (url, seen) = scripted(vec![limited, STATUS]).await;
    let client = Client::builder(&url)
        .backoff(Duration::from_millis(10), Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(client.last_event().await.unwrap(), 7);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited Retry-After: 1"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);

    let (url, _) = scripted(vec![limited]).await;
    let err = quick(&url)
        .retries(1)
        .build()
        .unwrap()
        .status()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
}

#[tokio::test]
async fn answers_that_are_not_the_api_map_by_status() {
    let gateway = (502, "text/html", "<html><body>Bad Gateway</body></html>");
    let (url, seen) = scripted(vec![gateway]).await;
    let err = quick(&url)
        .retries(1)
        .build()
        .unwrap()
        .status()
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    assert!(err.to_string().contains("502 Bad Gateway"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 2, "a 502 is retried");

    let (url, _) = scripted(vec![(401, "text/plain", "login required")]).await;
    let err = quick(&url).build().unwrap().status().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    assert!(err.to_string().ends_with("login required"), "{err}");

    let (url, _) = scripted(vec![(200, JSON, r#"{"unexpected": true}"#)]).await;
    let err = quick(&url).build().unwrap().status().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InternalError);
}

#[tokio::test]
async fn an_unreachable_server_is_storage_unavailable_after_the_retries() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = quick(&format!("http://127.0.0.1:{port}")).build().unwrap();
    let started = Instant::now();
    let err = client.latest("aws-vpc").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the transport error is kept"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_bad_url_or_certificate_is_refused_by_build() {
    for url in ["ftp://example.com", "not a url", "mailto:x@example.com"] {
        let err = Client::builder(url).build().unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest, "{url}");
    }
    let err = Client::builder("https://example.com")
        .ca_cert("not a certificate")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
}
