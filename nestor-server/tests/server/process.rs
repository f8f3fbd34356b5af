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
