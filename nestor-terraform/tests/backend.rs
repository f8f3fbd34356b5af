//! The s3 backend against moto's S3 server (`.ci/moto.sh start` exports
//! `NESTOR_TEST_S3_ENDPOINT`): state lives in the bucket, not in the
//! workspace, and plan, apply, drift and destroy all work through it.

use std::io::{Read, Write};
use std::net::TcpStream;

use nestor_core::*;
use serde_json::{json, Value};

use crate::support::*;

/// moto's endpoint, or `None` after saying why the case is skipped (a
/// failure under CI, which must run it).
fn endpoint() -> Option<String> {
    match std::env::var("NESTOR_TEST_S3_ENDPOINT") {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but NESTOR_TEST_S3_ENDPOINT is not set: run eval \"$(.ci/moto.sh start)\""
            )
        }
        _ => {
            eprintln!(
                "skipped: NESTOR_TEST_S3_ENDPOINT is not set (run: eval \"$(.ci/moto.sh start)\")"
            );
            None
        }
    }
}

/// One plain HTTP/1.1 request to moto; the status and the body. moto
/// checks no signature but refuses anonymous object reads, so the
/// request carries an AWS4 authorization header with a dummy signature.
fn http(endpoint: &str, method: &str, path: &str) -> (u16, String) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn state_in_an_s3_bucket_on_moto() {
    let Some(binary) = terraform("s3") else {
        return;
    };
    let Some(endpoint) = endpoint() else { return };
    let bucket = format!("nestor-state-{}", std::process::id());
    let (status, body) = http(&endpoint, "PUT", &format!("/{bucket}"));
    assert_eq!(status, 200, "creating the bucket: {body}");
    let backend = json!({"type": "s3", "config": {
        "bucket": bucket, "region": "us-east-1",
        "endpoints": {"s3": endpoint}, "use_path_style": true,
        "access_key": "test", "secret_key": "test",
        "skip_credentials_validation": true, "skip_requesting_account_id": true,
        "skip_metadata_api_check": true, "skip_region_validation": true
    }});
    let w = world(binary, Some(backend)).await;
    let request = request(
        "remote",
        json!([{"name": "net", "catalog_ref": "tf-producer", "engine": "terraform", "config": {"name": "s3"}}]),
    );
    let d = w.nestor.apply(&request, None).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{d:#?}");
    assert_eq!(
        resource(&d, "net").outputs["id"],
        json!({"value": "s3-real"})
    );
    // The state is in the bucket under the engine's default key, not in the workspace.
    let ws = w.workspace("remote", "net");
    assert!(!ws.join("terraform.tfstate").exists());
    let key = format!("/{bucket}/alpha/dev/remote/net.tfstate");
    let (status, body) = http(&endpoint, "GET", &key);
    assert_eq!(status, 200, "{body}");
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        state["resources"][0]["instances"][0]["attributes"]["output"]["value"],
        "s3-real"
    );

    // Terraform's plan reads the remote state too.
    let mut changed = request.clone();
    changed.resources[0]
        .config
        .insert("name".into(), json!("moved"));
    let plan = w.nestor.plan(&changed).await.unwrap();
    let tool = plan.resources[0].tool_plan.clone().unwrap();
    assert_eq!((tool.add, tool.change, tool.destroy), (0, 1, 0), "{tool:?}");

    // Destroy empties the remote state.
    w.nestor.delete(&d.id).await.unwrap();
    let (_, body) = http(&endpoint, "GET", &key);
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["resources"], json!([]), "{state}");
}
