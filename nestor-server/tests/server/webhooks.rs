//! Git webhooks against a real repository: valid, missing and wrong
//! signatures (GitHub and GitLab), source matching by URL and by name.

use std::path::Path;
use std::time::Duration;

use nestor_core::SourceConfig;
use nestor_server::server::hmac_sha256_hex;
use serde_json::{json, Value};

use super::{code, definition, eventually, root, Setup, TestServer};

/// A git repository holding `files`, committed on `main`.
fn repo_with(dir: &Path, files: &[(&str, String)]) -> git2::Repository {
    let repo =
        git2::Repository::init_opts(dir, git2::RepositoryInitOptions::new().initial_head("main"))
            .unwrap();
    commit(&repo, files, "initial");
    repo
}

fn commit(repo: &git2::Repository, files: &[(&str, String)], message: &str) {
    let workdir = repo.workdir().unwrap().to_path_buf();
    let mut index = repo.index().unwrap();
    for (path, text) in files {
        let full = workdir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, text).unwrap();
        index.add_path(Path::new(path)).unwrap();
    }
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@localhost").unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap();
}

async fn post_hook(
    s: &TestServer,
    query: &str,
    headers: &[(&str, String)],
    body: &Value,
) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut req = s
        .client
        .post(format!("{}/webhooks/git{query}", s.url))
        .header("content-type", "application/json")
        .body(bytes);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn versions_of(s: &TestServer, name: &str) -> usize {
    let (status, body) = s.get(&format!("/api/v1/resources/{name}/versions")).await;
    if status == 404 {
        0
    } else {
        body.as_array().unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_checked_and_valid_pushes_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("catalog");
    let repo = repo_with(
        &repo_dir,
        &[(
            "defs/hooked.yaml",
            definition("hooked", "1.0.0", "by webhook", &[]),
        )],
    );
    let url = repo_dir.display().to_string();
    let mut setup = Setup {
        catalog: false,
        ..Setup::default()
    };
    let mut source = SourceConfig::new("hooked-src", url.clone());
    source.webhook_secret = Some("s3cret".into());
    setup.config.catalog.sources.push(source);
    let s = TestServer::with(setup).await;
    let payload = json!({"ref": "refs/heads/main", "repository": {"clone_url": url, "html_url": "https://example.invalid/x"}});
    let body = serde_json::to_vec(&payload).unwrap();

    // Missing and wrong signatures: 401, nothing synced.
    let (status, err) = post_hook(&s, "", &[], &payload).await;
    assert_eq!((status, code(&err)), (401, "UNAUTHORIZED"), "{err}");
    let wrong = format!("sha256={}", hmac_sha256_hex(b"not-the-secret", &body));
    let (status, _) = post_hook(&s, "", &[("x-hub-signature-256", wrong)], &payload).await;
    assert_eq!(status, 401);
    let (status, _) = post_hook(
        &s,
        "",
        &[("x-hub-signature-256", "sha256=zz".into())],
        &payload,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post_hook(&s, "", &[("x-gitlab-token", "nope".into())], &payload).await;
    assert_eq!(status, 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(versions_of(&s, "hooked").await, 0);
    assert_eq!(
        s.get("/api/v1/status").await.1["syncs"],
        json!([]),
        "no sync ran"
    );

    // A valid GitHub signature: 202 at once, the sync runs in the background.
    let good = format!("sha256={}", hmac_sha256_hex(b"s3cret", &body));
    let (status, accepted) = post_hook(&s, "", &[("x-hub-signature-256", good)], &payload).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["accepted"], json!(["hooked-src"]));
    eventually(Duration::from_secs(20), || async {
        (versions_of(&s, "hooked").await == 1).then_some(())
    })
    .await;

    // A new commit, announced GitLab-style, matched by ?source=.
    commit(
        &repo,
        &[(
            "defs/hooked-2.yaml",
            definition("hooked", "1.1.0", "by webhook", &[]),
        )],
        "second",
    );
    let gitlab = json!({"object_kind": "push", "ref": "refs/heads/main", "project": {"git_http_url": "https://gitlab.invalid/p.git"}});
    let (status, _) = post_hook(
        &s,
        "?source=hooked-src",
        &[("x-gitlab-token", "s3cret".into())],
        &gitlab,
    )
    .await;
    assert_eq!(status, 202);
    eventually(Duration::from_secs(20), || async {
        (versions_of(&s, "hooked").await == 2).then_some(())
    })
    .await;

    // GitHub's default content type: a form whose `payload` is the JSON,
    // signed over the form as sent (issue 10.7).
    commit(
        &repo,
        &[(
            "defs/hooked-3.yaml",
            definition("hooked", "1.2.0", "by form", &[]),
        )],
        "third",
    );
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish();
    let resp = s
        .client
        .post(format!("{}/webhooks/git", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "x-hub-signature-256",
            format!("sha256={}", hmac_sha256_hex(b"s3cret", form.as_bytes())),
        )
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        202,
        "{}",
        resp.text().await.unwrap()
    );
    eventually(Duration::from_secs(20), || async {
        (versions_of(&s, "hooked").await == 3).then_some(())
    })
    .await;
    // Gitea/Forgejo and Gogs sign with a bare hex HMAC in their own header (10.8).
    for (i, header) in ["x-gitea-signature", "x-gogs-signature"]
        .into_iter()
        .enumerate()
    {
        let version = format!("1.{}.0", 3 + i);
        commit(
            &repo,
            &[(
                &format!("defs/hooked-{version}.yaml"),
                definition("hooked", &version, "x", &[]),
            )],
            "more",
        );
        let wrong = hmac_sha256_hex(b"not-it", &body);
        assert_eq!(post_hook(&s, "", &[(header, wrong)], &payload).await.0, 401);
        let sig = hmac_sha256_hex(b"s3cret", &body);
        let (status, b) = post_hook(&s, "", &[(header, sig)], &payload).await;
        assert_eq!(status, 202, "{header}: {b}");
        eventually(Duration::from_secs(20), || async {
            (versions_of(&s, "hooked").await == 4 + i).then_some(())
        })
        .await;
    }

    // Another branch is acknowledged but not synced; unknown repositories are 404.
    let other = json!({"ref": "refs/heads/feature", "repository": {"clone_url": url}});
    let sig = format!(
        "sha256={}",
        hmac_sha256_hex(b"s3cret", &serde_json::to_vec(&other).unwrap())
    );
    let (status, body) = post_hook(&s, "", &[("x-hub-signature-256", sig)], &other).await;
    assert_eq!((status, body["accepted"].clone()), (202, json!([])));
    let (status, body) = post_hook(
        &s,
        "",
        &[("x-gitea-signature", "00".into())],
        &json!({"repository": {"clone_url": "https://nowhere.invalid/r.git"}}),
    )
    .await;
    assert_eq!((status, code(&body)), (404, "NOT_FOUND"), "{body}");
    // Unsigned, when every source wants a signature: 401 without reading on.
    let (status, body) = post_hook(&s, "", &[], &json!({})).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHORIZED"), "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_during_a_sync_coalesce() {
    let mut setup = Setup {
        catalog: false,
        ..Setup::default()
    };
    setup.config.catalog.sources.push(SourceConfig::new(
        "examples",
        root().join("examples/catalog").display().to_string(),
    ));
    let s = TestServer::with(setup).await;
    let payload = json!({});
    let calls = (0..10).map(|_| post_hook(&s, "?source=examples", &[], &payload));
    for (status, _) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 202);
    }
    eventually(Duration::from_secs(30), || async {
        (versions_of(&s, "aws-rds-mysql").await == 4).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = s.metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("nestor_sync_duration_seconds_count{source=\"examples\"}"))
        .unwrap();
    let runs: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        (1..=2).contains(&runs),
        "ten triggers during one sync make at most one follow-up, got {runs} runs"
    );

    // POST /api/v1/sync needs the platform role.
    let (status, _) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/sync?source=examples",
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/sync?source=examples",
            Some("alpha"),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/sync?source=examples",
            Some("platform"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let (status, body) = s
        .send(
            reqwest::Method::POST,
            "/api/v1/sync?source=nope",
            Some("platform"),
            None,
        )
        .await;
    assert_eq!((status.as_u16(), code(&body)), (404, "NOT_FOUND"));
    s.stop().await;
}
