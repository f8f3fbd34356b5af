//! Hostile and malformed requests get a clear 4xx with a code, never a 500
//! or a crash: malformed JSON and YAML, an alias bomb, a 100 MB body, path
//! traversal, unknown query keys, a huge limit.

use reqwest::Method;
use serde_json::json;

use super::{code, Body, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_clear_4xx() {
    let s = TestServer::start().await;
    let check =
        |status: reqwest::StatusCode, body: &serde_json::Value, want: u16, want_code: &str| {
            assert_eq!((status.as_u16(), code(body)), (want, want_code), "{body}");
            assert!(body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        };

    let (st, b) = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Raw("application/json", b"{\"apiVersion\": ".to_vec()),
        )
        .await;
    check(st, &b, 400, "BAD_REQUEST");
    let (st, b) = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Yaml("metadata: [unclosed\n  - : :".into()),
        )
        .await;
    check(st, &b, 400, "BAD_REQUEST");
    let (st, b) = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Raw("application/json", vec![]),
        )
        .await;
    check(st, &b, 400, "BAD_REQUEST");
    let (st, b) = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Raw("application/json", vec![0xff, 0xfe, 0x00]),
        )
        .await;
    check(st, &b, 400, "BAD_REQUEST");

    // A billion laughs.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        bomb.push_str(&format!(
            "{i}: &{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    let (st, b) = s
        .post("/api/v1/resources", "platform", Body::Yaml(bomb.clone()))
        .await;
    check(st, &b, 400, "BAD_REQUEST");
    let (st, b) = s
        .post("/api/v1/validate", "platform", Body::Yaml(bomb))
        .await;
    check(st, &b, 400, "BAD_REQUEST");
    // Deep nesting.
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let (st, b) = s
        .post("/api/v1/resources", "platform", Body::Yaml(deep.clone()))
        .await;
    assert_eq!(st.as_u16() / 100, 4, "{b}");
    let (st, b) = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Raw("application/json", deep.into_bytes()),
        )
        .await;
    check(st, &b, 400, "BAD_REQUEST");

    // 100 MB: refused from Content-Length, before it is read.
    let big = vec![b'x'; 100 * 1024 * 1024];
    let resp = s
        .client
        .post(format!("{}/api/v1/resources", s.url))
        .bearer_auth("platform")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    match resp {
        Ok(resp) => {
            assert_eq!(resp.status().as_u16(), 413);
            assert_eq!(code(&resp.json().await.unwrap()), "PAYLOAD_TOO_LARGE");
        }
        // The server may close the connection while the client still sends.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    // A body without Content-Length (chunked) is cut at the limit too.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://"))
            .await
            .unwrap();
        let head = "POST /api/v1/resources HTTP/1.1\r\nhost: x\r\nauthorization: Bearer platform\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        tcp.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
        for _ in 0..40 {
            if tcp.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        let mut response = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut response))
            .await
            .unwrap()
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&response[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(text.contains("PAYLOAD_TOO_LARGE"), "{text}");
    }

    // Path traversal and odd names never reach the store.
    for path in [
        "/api/v1/resources/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/resources/a%00b/versions",
        "/api/v1/teams/..%2Falpha/compositions",
    ] {
        let (st, b) = s.get_as(path, "admin").await;
        check(st, &b, 400, "BAD_REQUEST");
    }
    // (The client normalises dot segments itself; the server sees what is left.)
    let (st, b) = s.get("/api/v1/resources/%2E%2E").await;
    assert_eq!(st.as_u16() / 100, 4, "{b}");
    let (st, b) = s.get("/api/v1/resources/../../etc/passwd").await;
    assert_eq!(st.as_u16() / 100, 4, "{b}");

    // Unknown query keys and huge limits.
    let (st, b) = s.get("/api/v1/resources?limt=5").await;
    check(st, &b, 400, "BAD_REQUEST");
    assert!(b["error"]["message"].as_str().unwrap().contains("limt"));
    let (st, b) = s
        .get("/api/v1/resources?limit=100000000000000000000000")
        .await;
    check(st, &b, 400, "BAD_REQUEST");
    let (st, b) = s.get("/api/v1/resources?limit=501").await;
    check(st, &b, 400, "BAD_REQUEST");
    let (st, b) = s.get("/api/v1/resources?limit=-1").await;
    check(st, &b, 400, "BAD_REQUEST");
    let (st, b) = s.get("/api/v1/events?filter=bogus:x").await;
    check(st, &b, 400, "BAD_REQUEST");
    let (st, b) = s.get("/api/v1/events?types=nothing.here").await;
    check(st, &b, 400, "BAD_REQUEST");
    let (st, b) = s
        .get("/api/v1/resources/aws-rds-mysql/not%20a%20version")
        .await;
    check(st, &b, 400, "BAD_REQUEST");

    // Unknown fields in a deployment request name their path.
    let (st, b) = s
        .post(
            "/api/v1/deployments",
            "admin",
            Body::Json(json!({"team": "alpha", "environment": "dev", "name": "x", "bogus": 1})),
        )
        .await;
    check(st, &b, 422, "VALIDATION_FAILED");
    let (st, b) = s.post("/api/v1/deployments", "admin", Body::Json(json!({"team": "Alpha!", "environment": "dev", "name": "x", "resources": [{"name": "q", "catalog_ref": "aws-sqs-queue"}]}))).await;
    check(st, &b, 422, "VALIDATION_FAILED");

    // Unknown routes and methods.
    let (st, b) = s.get("/api/v1/nothing").await;
    check(st, &b, 404, "NOT_FOUND");
    let (st, b) = s
        .send(Method::PUT, "/api/v1/resources", Some("admin"), None)
        .await;
    check(st, &b, 405, "METHOD_NOT_ALLOWED");
    // Headers past the limit: 431 with the error body.
    let resp = s
        .client
        .get(format!("{}/health", s.url))
        .header("x-filler", "f".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 431);
    let b: serde_json::Value = resp.json().await.unwrap();
    check(st_431(), &b, 431, "REQUEST_HEADER_FIELDS_TOO_LARGE");
    let (st, b) = s.send(Method::GET, "/api/v1/resources", None, None).await;
    assert_eq!(st, 200, "{b}");
    // The server is still fine.
    assert_eq!(s.get("/health").await.0, 200);
    s.stop().await;
}

fn st_431() -> reqwest::StatusCode {
    reqwest::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
}
