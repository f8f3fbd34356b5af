//! `nestor serve` as a subprocess: the README's first command.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::root;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nestor_serve_with_the_example_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nestor"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dev",
            "--catalog",
            root().join("examples/catalog").to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .env_remove("NESTOR_SERVER")
        .env_remove("NESTOR_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("nestor serve prints where it listens");
        lines.push(line.clone());
        if let Some(rest) = line.strip_prefix("nestor listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let token_line = loop {
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        if line.trim_start().starts_with("nst_") {
            break line.trim().to_string();
        }
    };
    let saved = std::fs::read_to_string(dir.path().join(".nestor/token")).unwrap();
    assert_eq!(saved, token_line);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(".nestor/token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .get(format!("{url}/api/v1/resources/aws-rds-mysql"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["definition"]["metadata"]["version"], "2.0.0");
    let ready = client.get(format!("{url}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "bundled engines are loaded");
    let sync = client
        .post(format!("{url}/api/v1/sync"))
        .bearer_auth(&token_line)
        .send()
        .await
        .unwrap();
    assert_eq!(sync.status(), 202);
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs the nestor binary in `dir` (blocking, so off the runtime's workers).
async fn nestor(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_nestor"))
            .args(&args)
            .current_dir(&dir)
            .env_remove("NESTOR_SERVER")
            .env_remove("NESTOR_TOKEN")
            .env_remove("NESTOR_DATA_DIR")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_against_a_server_prints_what_it_prints_embedded() {
    let s = super::TestServer::start().await;
    let local = tempfile::tempdir().unwrap();
    let catalog = root().join("examples/catalog");
    let (code, _, err) = nestor(
        local.path(),
        &["catalog", "sync", catalog.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    for args in [
        vec!["catalog", "list"],
        vec!["catalog", "list", "--provider", "aws", "--limit", "3"],
        vec!["catalog", "get", "aws-rds-mysql"],
        vec!["catalog", "get", "aws-rds-mysql:^1.1"],
        vec!["catalog", "search", "redis"],
    ] {
        let embedded = nestor(local.path(), &args).await;
        let mut remote_args = vec!["--server", s.url.as_str()];
        remote_args.extend(args.iter().copied());
        let remote = nestor(local.path(), &remote_args).await;
        assert_eq!(embedded.0, 0, "{args:?}: {}", embedded.2);
        assert_eq!(remote, embedded, "{args:?}");
    }
    // Errors print their code the same way too.
    let embedded = nestor(local.path(), &["catalog", "get", "aws-rds-mysql:9.9.9"]).await;
    let remote = nestor(
        local.path(),
        &["--server", &s.url, "catalog", "get", "aws-rds-mysql:9.9.9"],
    )
    .await;
    assert_eq!(remote.0, 1);
    assert!(
        remote.2.starts_with("error[VERSION_NOT_FOUND]"),
        "{}",
        remote.2
    );
    assert_eq!(remote, embedded);

    // Writes need the token; the answer is the same line.
    let denied = nestor(
        local.path(),
        &[
            "--server",
            &s.url,
            "catalog",
            "yank",
            "aws-rds-mysql",
            "1.0.0",
        ],
    )
    .await;
    assert_eq!(denied.0, 1);
    assert!(denied.2.starts_with("error[UNAUTHORIZED]"), "{}", denied.2);
    let yanked = nestor(
        local.path(),
        &[
            "--server",
            &s.url,
            "--token",
            "platform",
            "catalog",
            "yank",
            "aws-rds-mysql",
            "1.0.0",
        ],
    )
    .await;
    assert_eq!(
        (yanked.0, yanked.1.as_str()),
        (0, "aws-rds-mysql@1.0.0 yanked\n"),
        "{}",
        yanked.2
    );

    // The event stream, replayed and filtered.
    let events = nestor(
        local.path(),
        &[
            "--server",
            &s.url,
            "events",
            "--since",
            "0",
            "--types",
            "resource.yanked",
            "--count",
            "1",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(events.0, 0, "{}", events.2);
    let e: serde_json::Value = serde_json::from_str(events.1.trim()).unwrap();
    assert_eq!(
        (e["type"].as_str(), e["subject"].as_str()),
        (Some("resource.yanked"), Some("aws-rds-mysql:1.0.0"))
    );
    let embedded_events = nestor(
        local.path(),
        &[
            "events",
            "--since",
            "0",
            "--filter",
            "name:vpc-setup",
            "--count",
            "2",
        ],
    )
    .await;
    let remote_events = nestor(
        local.path(),
        &[
            "--server",
            &s.url,
            "events",
            "--since",
            "0",
            "--filter",
            "name:vpc-setup",
            "--count",
            "2",
        ],
    )
    .await;
    assert_eq!(embedded_events.0, 0, "{}", embedded_events.2);
    let strip = |text: &str| {
        text.lines()
            .map(|l| l.split("  ").skip(1).take(2).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&remote_events.1).len(), 2);
    assert_eq!(strip(&remote_events.1), strip(&embedded_events.1));

    // Status is team-scoped on the server.
    let status = nestor(
        local.path(),
        &[
            "--server", &s.url, "--token", "alpha", "--team", "alpha", "status",
        ],
    )
    .await;
    assert_eq!(status.0, 0, "{}", status.2);
    let refused = nestor(
        local.path(),
        &[
            "--server", &s.url, "--token", "beta", "--team", "alpha", "status",
        ],
    )
    .await;
    assert!(refused.2.starts_with("error[FORBIDDEN]"), "{}", refused.2);
    // A command the server refuses for this token says why, with a code.
    let render = nestor(
        local.path(),
        &[
            "--server",
            &s.url,
            "--token",
            "beta",
            "--team",
            "alpha",
            "render",
            "aws-s3-bucket",
        ],
    )
    .await;
    assert_eq!(render.0, 1);
    assert!(render.2.starts_with("error[FORBIDDEN]"), "{}", render.2);
    s.stop().await;
}
