//! `server.rate_limits`: a token over its bucket gets 429 `RATE_LIMITED`
//! with `Retry-After` while other callers go on; classes are separate;
//! nestor-client waits out `Retry-After` and succeeds.

use std::time::{Duration, Instant};

use nestor_server::{RateConfig, RateLimitsConfig};
use reqwest::Method;

use super::super::{code, Setup, TestServer};

fn limited(reads: Option<RateConfig>, writes: Option<RateConfig>) -> Setup {
    let mut setup = Setup::default();
    setup.config.server.rate_limits = Some(RateLimitsConfig {
        reads,
        writes,
        ..RateLimitsConfig::default()
    });
    setup
}

fn rate(per_second: u32, burst: u32) -> Option<RateConfig> {
    Some(RateConfig {
        per_second,
        burst: Some(burst),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_token_is_limited_while_another_is_not() {
    let s = TestServer::with(limited(rate(1, 5), None)).await;
    // 40 concurrent reads from `alpha`: the burst of 5 passes, the rest are 429.
    let flood = (0..40).map(|_| {
        let (client, url) = (s.client.clone(), s.url.clone());
        tokio::spawn(async move {
            client
                .get(format!("{url}/api/v1/resources"))
                .bearer_auth("alpha")
                .send()
                .await
                .unwrap()
        })
    });
    // Meanwhile `beta` reads at its own pace, within its own burst.
    let calm = async {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(s.get_as("/api/v1/resources", "beta").await.0.as_u16());
        }
        statuses
    };
    let (flooded, calm) = tokio::join!(futures_util::future::join_all(flood), calm);
    assert_eq!(calm, vec![200; 5], "another token is unaffected");
    let mut ok = 0;
    let mut limited = 0;
    for resp in flooded {
        let resp = resp.unwrap();
        match resp.status().as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                let after: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&after), "Retry-After {after}");
                assert!(resp.headers().contains_key("x-request-id"));
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(code(&body), "RATE_LIMITED");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // The bucket refills at 1/s: a slow run may let one or two more through.
    assert!((5..=8).contains(&ok), "{ok} passed");
    assert_eq!(ok + limited, 40);
    // Anonymous callers share their address's bucket, apart from the tokens'.
    assert_eq!(s.get("/api/v1/resources").await.0, 200);
    // Probes are never limited.
    for _ in 0..20 {
        assert_eq!(s.get_as("/health", "alpha").await.0, 200);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_have_separate_buckets_and_unlimited_classes_pass() {
    let s = TestServer::with(limited(None, rate(1, 1))).await;
    // Reads are not limited at all.
    for _ in 0..30 {
        assert_eq!(s.get_as("/api/v1/resources", "platform").await.0, 200);
    }
    // Writes: one, then 429 (whatever the handler would have said).
    let sync = || s.send(Method::POST, "/api/v1/sync", Some("platform"), None);
    assert_ne!(sync().await.0, 429);
    let (status, body) = sync().await;
    assert_eq!((status.as_u16(), code(&body)), (429, "RATE_LIMITED"));
    // An unknown token is 401 before any bucket is touched.
    let (status, _) = s
        .send(Method::POST, "/api/v1/sync", Some("nobody"), None)
        .await;
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nestor_client_waits_out_retry_after() {
    let s = TestServer::with(limited(rate(1, 1), None)).await;
    let client = nestor_client::Client::builder(&s.url)
        .token("reader")
        .build()
        .unwrap();
    let started = Instant::now();
    client.latest("aws-rds-postgres").await.unwrap();
    // The bucket is empty: the server answers 429 and the client retries
    // after `Retry-After` instead of failing.
    client.latest("aws-rds-postgres").await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // With retries off the caller sees the error and its code.
    let impatient = nestor_client::Client::builder(&s.url)
        .token("reader")
        .retries(0)
        .build()
        .unwrap();
    let err = impatient.latest("aws-rds-postgres").await.unwrap_err();
    assert_eq!(err.code(), nestor_core::ErrorCode::RateLimited, "{err}");
    s.stop().await;
}

#[test]
fn a_zero_rate_is_refused_at_start() {
    let err = super::identity_config::start_error(limited(rate(0, 1), None).config);
    assert!(err.contains("server.rate_limits.reads.per_second"), "{err}");
}
