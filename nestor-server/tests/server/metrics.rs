//! `/metrics` as a scraper reads it: every metric of docs/src/reference/metrics.md, labels that
//! request data cannot grow, and an exposition Prometheus' own checker
//! (`promtool check metrics`) accepts.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;

use super::{SseClient, TestServer};

fn walk_yaml(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                walk_yaml(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "yaml"))
            }
        })
        .sum()
}

async fn scrape(s: &TestServer, accept: Option<&str>) -> (String, String) {
    let mut req = s.client.get(format!("{}/metrics", s.url));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    (content_type, resp.text().await.unwrap())
}

/// `promtool check metrics` on `text`: `None` when promtool is not
/// installed (and CI=true is not set), else its verdict and output.
fn promtool(text: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is missing under CI=true ({e}); .ci/run installs it (apt-get install prometheus)"
            );
            eprintln!("skipping the promtool check: promtool is not installed ({e}); apt-get install prometheus");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), report))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_bounded_and_pass_promtool() {
    let s = TestServer::start().await;
    // Traffic of every kind: found, not found, an unknown route, a
    // made-up method token (a client may send any), an event stream.
    assert_eq!(s.get("/api/v1/resources/aws-rds-mysql").await.0, 200);
    assert_eq!(s.get("/api/v1/resources/nope-nope").await.0, 404);
    assert_eq!(s.get("/no/such/route").await.0, 404);
    let odd = Method::from_bytes(b"FROBNICATE-a-very-long-made-up-method").unwrap();
    for _ in 0..3 {
        s.send(odd.clone(), "/api/v1/resources", None, None).await;
    }
    let mut sse = SseClient::connect(&s, "", None, None).await;
    let _ = sse.next(Duration::from_millis(50)).await;

    let (content_type, text) = scrape(&s, None).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for metric in [
        "# TYPE nestor_http_requests_total counter",
        "nestor_http_requests_total{route=\"/api/v1/resources/{name}\",method=\"GET\",status=\"200\"} 1",
        "nestor_http_requests_total{route=\"/api/v1/resources/{name}\",method=\"GET\",status=\"404\"} 1",
        "nestor_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "method=\"other\"",
        "# TYPE nestor_http_request_duration_seconds histogram",
        "nestor_http_request_duration_seconds_bucket{route=\"/api/v1/resources/{name}\",le=\"0.001\"}",
        "nestor_sync_duration_seconds_count{source=\"examples\"} 1",
        "nestor_sse_connections 1",
        // Deployments and renders (server::deploy shows those with samples).
        "nestor_deployments_taken_over_total 0",
    ] {
        assert!(text.contains(metric), "metrics lack {metric}:\n{text}");
    }
    // One version per file of the example catalog.
    let files = walk_yaml(&super::root().join("examples/catalog/resources"));
    assert!(
        text.contains(&format!("nestor_catalog_versions {files}\n")),
        "{files} versions expected:\n{text}"
    );
    assert!(
        !text.contains("FROBNICATE"),
        "a method token became a label:\n{text}"
    );
    assert!(
        !text.contains("no/such/route"),
        "a path became a label:\n{text}"
    );

    // Prometheus asks for OpenMetrics; it gets it, with its end marker.
    let (content_type, open) = scrape(
        &s,
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    )
    .await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("nestor_sse_connections 1"), "{open}");

    if let Some((ok, report)) = promtool(&text) {
        assert!(
            ok,
            "promtool check metrics refused the exposition:\n{report}\n{text}"
        );
    }
    drop(sse);
    s.stop().await;
}
