//! The audit trail through the API: every write the issue lists —
//! publish, yank, sync trigger and run, composition publish, deploy,
//! rollback, promote, delete — is read back from `GET /api/v1/audit` with
//! the token's name and roles, the request id, the client's address and
//! the outcome (the classified changes for a definition); only an admin
//! token reads the trail, filtered and paged.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::{code, definition, eventually, Body, Setup, TestServer};

/// Sends `method path` as `token` with a request id of our own.
async fn traced(
    s: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    id: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = s
        .client
        .request(method, format!("{}{path}", s.url))
        .bearer_auth(token)
        .header("x-request-id", id);
    match body {
        Some(Value::String(yaml)) => {
            req = req.header("content-type", "application/yaml").body(yaml)
        }
        Some(b) => req = req.json(&b),
        None => {}
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The trail for `query`, as admin.
async fn trail(s: &TestServer, query: &str) -> Vec<Value> {
    let (status, page) = s.get_as(&format!("/api/v1/audit{query}"), "admin").await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// The one record of `action` on `subject`.
async fn record(s: &TestServer, action: &str, subject: &str) -> Value {
    let found = trail(s, &format!("?action={action}&subject={subject}")).await;
    assert_eq!(found.len(), 1, "{action} {subject}: {found:#?}");
    found[0].clone()
}

fn assert_actor(r: &Value, name: &str, role: &str, request_id: &str) {
    assert_eq!(r["actor"]["name"], name, "{r}");
    assert_eq!(r["actor"]["roles"], json!([role]), "{r}");
    assert_eq!(r["actor"]["request_id"], request_id, "{r}");
    assert_eq!(
        r["actor"]["client"], "127.0.0.1",
        "the client's address: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_in_the_trail_with_who_asked_and_from_where() {
    let s = TestServer::with(Setup {
        engines: true,
        ..Setup::default()
    })
    .await;

    // Catalog writes as the platform token.
    let first = definition("cache", "1.0.0", "a cache", &[]);
    // 1.1.0 adds an output: an additive change.
    let second = definition("cache", "1.1.0", "a cache", &[]).replace(
        "    - {name: id, type: string}\n",
        "    - {name: id, type: string}\n    - {name: url, type: string}\n",
    );
    for (yaml, id) in [(first, "pub-1"), (second, "pub-2")] {
        let (status, body) = traced(
            &s,
            Method::POST,
            "/api/v1/resources",
            "platform",
            id,
            Some(Value::String(yaml)),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let published = record(&s, "resource.publish", "cache:1.1.0").await;
    assert_actor(&published, "platform", "platform", "pub-2");
    assert_eq!(published["outcome"], "succeeded");
    assert!(
        published["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["kind"] == "additive")),
        "the classified changes: {published}"
    );
    let (status, _) = traced(
        &s,
        Method::POST,
        "/api/v1/resources/cache/1.0.0/yank",
        "platform",
        "yank-1",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_actor(
        &record(&s, "resource.yank", "cache:1.0.0").await,
        "platform",
        "platform",
        "yank-1",
    );
    // A refused publish is in the trail too, with its code.
    let changed = definition("cache", "1.1.0", "changed", &[]);
    let (status, _) = traced(
        &s,
        Method::POST,
        "/api/v1/resources",
        "platform",
        "pub-3",
        Some(Value::String(changed)),
    )
    .await;
    assert_eq!(status, 409);
    let failed = trail(&s, "?action=resource.publish&subject=cache:1.1.0").await;
    assert_eq!(failed[0]["outcome"], "failed", "{failed:#?}");
    assert_eq!(failed[0]["error"], "VERSION_IMMUTABLE");

    // A sync run inside the request, and one asked for in the background.
    let (status, _) = traced(
        &s,
        Method::POST,
        "/api/v1/sync?source=examples&wait=true",
        "platform",
        "sync-1",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let syncs = trail(&s, "?action=catalog.sync&actor=platform").await;
    assert_actor(&syncs[0], "platform", "platform", "sync-1");
    let (status, _) = traced(&s, Method::POST, "/api/v1/sync", "platform", "sync-2", None).await;
    assert_eq!(status, 202);
    assert_actor(
        &record(&s, "catalog.trigger", "examples").await,
        "platform",
        "platform",
        "sync-2",
    );
    let background = eventually(Duration::from_secs(30), || async {
        let runs = trail(&s, "?action=catalog.sync&actor=server").await;
        (!runs.is_empty()).then_some(runs)
    })
    .await;
    assert_eq!(background[0]["subject"], "examples");

    // Team writes as alpha: composition, deploy, promote, rollback, delete.
    let web_app =
        std::fs::read_to_string(super::root().join("examples/compositions/alpha/web-app.yaml"))
            .unwrap();
    let (status, _) = s
        .post(
            "/api/v1/teams/alpha/compositions",
            "alpha",
            Body::Yaml(web_app),
        )
        .await;
    assert_eq!(status, 201);
    let composition = trail(&s, "?action=composition.publish").await;
    assert_eq!(
        composition[0]["subject"], "alpha/web-app:1.0.0",
        "{composition:#?}"
    );
    assert_eq!(composition[0]["actor"]["name"], "alpha");
    let request = json!({"composition": "web-app", "environment": "staging", "name": "checkout", "params": {"size": "small", "image": "registry.example.com/checkout:1.0.0"}});
    let (status, created) = traced(
        &s,
        Method::POST,
        "/api/v1/teams/alpha/deploy",
        "alpha",
        "deploy-1",
        Some(request),
    )
    .await;
    assert!(status == 202 || status == 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_actor(
        &record(&s, "deployment.apply", &id).await,
        "alpha",
        "team:alpha",
        "deploy-1",
    );
    eventually(Duration::from_secs(60), || async {
        let (_, d) = s
            .get_as(&format!("/api/v1/deployments/{id}"), "alpha")
            .await;
        (d["status"] == "succeeded").then_some(())
    })
    .await;
    let promote = json!({"team": "alpha", "name": "checkout", "from": "staging", "to": "prod"});
    let (status, promoted) = traced(
        &s,
        Method::POST,
        "/api/v1/deployments/promote",
        "alpha",
        "promote-1",
        Some(promote),
    )
    .await;
    assert_eq!(status, 200, "{promoted}");
    assert_actor(
        &record(&s, "deployment.promote", "alpha.staging.checkout -> prod").await,
        "alpha",
        "team:alpha",
        "promote-1",
    );
    let prod = promoted["id"].as_str().unwrap().to_string();
    let (status, rolled) = traced(
        &s,
        Method::POST,
        &format!("/api/v1/deployments/{prod}/rollback"),
        "alpha",
        "rollback-1",
        None,
    )
    .await;
    // Revision 1 has nothing to roll back to: refused, and recorded so.
    assert_eq!(status, 400, "{rolled}");
    let refused = record(&s, "deployment.rollback", &prod).await;
    assert_eq!(
        (refused["outcome"].as_str(), refused["error"].as_str()),
        (Some("failed"), Some("BAD_REQUEST"))
    );
    assert_actor(&refused, "alpha", "team:alpha", "rollback-1");
    let (status, deleted) = traced(
        &s,
        Method::DELETE,
        &format!("/api/v1/deployments/{id}"),
        "alpha",
        "delete-1",
        None,
    )
    .await;
    assert_eq!(status, 200, "{deleted}");
    assert_actor(
        &record(&s, "deployment.delete", &id).await,
        "alpha",
        "team:alpha",
        "delete-1",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_reads_the_trail_filtered_and_paged() {
    let s = TestServer::start().await;
    for i in 0..5 {
        let yaml = definition("paged", &format!("1.{i}.0"), "paged", &[]);
        let (status, body) = s
            .post("/api/v1/resources", "platform", Body::Yaml(yaml))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(s.get("/api/v1/audit").await.0, 401);
    for token in ["reader", "platform", "alpha"] {
        let (status, body) = s.get_as("/api/v1/audit", token).await;
        assert_eq!(
            (status.as_u16(), code(&body)),
            (403, "FORBIDDEN"),
            "{token}"
        );
    }

    // Page by two through the five publishes: each once, newest first.
    let mut subjects = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut path = "/api/v1/audit?action=resource.*&actor=platform&limit=2".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = s.get_as(&path, "admin").await;
        assert_eq!(status, 200, "{page}");
        for r in page["items"].as_array().unwrap() {
            subjects.push(r["subject"].as_str().unwrap().to_string());
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..5).rev().map(|i| format!("paged:1.{i}.0")).collect();
    assert_eq!(subjects, expected);

    // A time window: RFC 3339 and seconds alike.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        trail(&s, &format!("?actor=platform&since={}", now - 3600))
            .await
            .len(),
        5
    );
    assert!(trail(&s, "?actor=platform&until=2000-01-01T00:00:00Z")
        .await
        .is_empty());
    assert!(trail(&s, "?actor=nobody").await.is_empty());

    for bad in [
        "?cursor=nonsense",
        "?limit=0",
        "?limit=1001",
        "?since=yesterday",
        "?colour=red",
    ] {
        let (status, body) = s.get_as(&format!("/api/v1/audit{bad}"), "admin").await;
        assert_eq!(
            (status.as_u16(), code(&body)),
            (400, "BAD_REQUEST"),
            "{bad}: {body}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_for_who_asked_is_in_the_trail_as_denied() {
    let s = TestServer::start().await;
    let yaml = definition("refused", "1.0.0", "not allowed", &[]);
    let (status, _) = traced(
        &s,
        Method::POST,
        "/api/v1/resources",
        "reader",
        "denied-1",
        Some(Value::String(yaml)),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = s
        .send(
            Method::DELETE,
            "/api/v1/deployments/someone-elses",
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
    // A read refused is not a write: not in the trail.
    assert_eq!(s.get_as("/api/v1/audit", "alpha").await.0, 403);

    let denied = trail(&s, "?action=resource.publish&actor=reader").await;
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(denied[0]["error"], "FORBIDDEN");
    assert_eq!(denied[0]["subject"], "/api/v1/resources");
    assert_actor(&denied[0], "reader", "reader", "denied-1");
    let anonymous = trail(&s, "?action=deployment.delete&actor=anonymous").await;
    assert_eq!(
        (anonymous.len(), anonymous[0]["error"].as_str()),
        (1, Some("UNAUTHORIZED")),
        "{anonymous:#?}"
    );
    assert_eq!(anonymous[0]["subject"], "/api/v1/deployments/someone-elses");
    assert!(trail(&s, "?actor=alpha").await.is_empty());
    s.stop().await;
}

/// Runs the nestor binary in `dir` (isolated from the caller's
/// `NESTOR_*`), bounded; exit code, stdout, stderr.
async fn nestor(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nestor"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("NESTOR_") {
            cmd.env_remove(key);
        }
    }
    let run = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("nestor finishes within 120 s")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nestor_audit_reads_the_trail_embedded_and_from_a_server() {
    let s = TestServer::start().await;
    for i in 0..3 {
        let yaml = definition("cli-audit", &format!("1.{i}.0"), "x", &[]);
        let (status, body) = s
            .post("/api/v1/resources", "platform", Body::Yaml(yaml))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let dir = tempfile::tempdir().unwrap();
    let remote = |args: &[&str], token: &str| {
        let mut all = vec!["--server", s.url.as_str(), "--token"];
        all.push(token);
        all.extend_from_slice(args);
        all.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            nestor(&dir, &refs).await
        }
    };

    // Two of the three publishes, then the cursor to the third.
    let (code, out, err) = run(remote(
        &["audit", "--actor", "platform", "--limit", "2", "-o", "json"],
        "admin",
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(page["items"][0]["subject"], "cli-audit:1.2.0");
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    assert!(err.contains(&format!("--cursor {cursor}")), "{err}");
    let (code, out, err) = run(remote(
        &["audit", "--actor", "platform", "--cursor", &cursor],
        "admin",
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("TIME "), "{out}");
    assert!(
        out.contains("platform")
            && out.contains("resource.publish")
            && out.contains("cli-audit:1.0.0"),
        "{out}"
    );
    assert!(!out.contains("cli-audit:1.2.0"), "{out}");
    let (code, _, err) = run(remote(&["audit"], "reader")).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error[FORBIDDEN]"), "{err}");
    let (code, _, err) = run(remote(&["audit", "--since", "yesterday"], "admin")).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error[BAD_REQUEST]") && err.contains("--since"),
        "{err}"
    );

    // Embedded: the local store's trail, written as `local`.
    let file = dir.path().join("def.yaml");
    std::fs::write(&file, definition("local-audit", "1.0.0", "x", &[])).unwrap();
    let file = file.to_str().unwrap().to_string();
    let (code, _, err) = run(vec!["catalog".into(), "publish".into(), file]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(vec!["audit".into(), "-o".into(), "json".into()]).await;
    assert_eq!(code, 0, "{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["items"][0]["actor"]["name"], "local", "{out}");
    assert_eq!(page["items"][0]["subject"], "local-audit:1.0.0", "{out}");
    s.stop().await;
}
