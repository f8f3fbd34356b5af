//! The CLI against a real `nestor serve` subprocess on 127.0.0.1: every
//! command that works with `--server` prints what it prints embedded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::root;

/// A `nestor serve --dev` subprocess, killed when dropped.
pub(super) struct Served {
    child: Child,
    url: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts `nestor serve --dev` in a fresh folder with `extra` flags and
    /// waits (bounded) for its address and token.
    pub(super) fn start(extra: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--dev"];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_nestor"))
            .args(&args)
            .current_dir(dir.path())
            .env_remove("NESTOR_SERVER")
            .env_remove("NESTOR_TOKEN")
            .env_remove("NESTOR_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut served = Served {
            child,
            url: String::new(),
            token: String::new(),
            _dir: dir,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        served.url = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .expect("nestor serve prints where it listens");
            if let Some(rest) = line.strip_prefix("nestor listening on ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        served.token = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("nestor serve --dev prints a token");
            if line.trim_start().starts_with("nst_") {
                break line.trim().to_string();
            }
        };
        served
    }

    /// `--server URL --token TOKEN` followed by `args`.
    pub(super) fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut out = vec![
            "--server",
            self.url.as_str(),
            "--token",
            self.token.as_str(),
        ];
        out.extend_from_slice(args);
        out
    }
}

/// Runs the nestor binary in `dir`, bounded by a timeout.
pub(super) async fn nestor(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let run = tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_nestor"))
            .args(&args)
            .current_dir(&dir)
            .env_remove("NESTOR_SERVER")
            .env_remove("NESTOR_TOKEN")
            .env_remove("NESTOR_DATA_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    });
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the nestor command finishes within 120 s")
        .unwrap()
}

/// The first YAML file below `dir`, in path order.
fn first_yaml(dir: &Path) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries.into_iter().find_map(|p| {
        if p.is_dir() {
            first_yaml(&p)
        } else {
            p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml")
                .then_some(p)
        }
    })
}

fn catalog() -> PathBuf {
    root().join("examples/catalog")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_publish_and_sync_against_nestor_serve() {
    let served = Served::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let path = catalog();
    let path = path.to_str().unwrap();

    // A first publish creates, a second finds everything unchanged.
    for round in ["created", "unchanged"] {
        for format in ["table", "json"] {
            let embedded = nestor(local.path(), &["-o", format, "catalog", "publish", path]).await;
            let remote = nestor(
                local.path(),
                &served.args(&["-o", format, "catalog", "publish", path]),
            )
            .await;
            assert_eq!(embedded.0, 0, "{round} {format}: {}", embedded.2);
            assert_eq!(remote, embedded, "{round} {format}");
            if format == "table" {
                assert!(embedded.1.contains(round), "{}", embedded.1);
            }
        }
    }

    // A changed definition under a published version is refused per line.
    let edited = tempfile::tempdir().unwrap();
    let source = first_yaml(&catalog().join("resources")).expect("a definition file");
    let text = std::fs::read_to_string(&source).unwrap();
    let changed = text.replacen("description:", "description: changed", 1);
    assert_ne!(changed, text);
    let file = edited.path().join("changed.yaml");
    std::fs::write(&file, changed).unwrap();
    let file = file.to_str().unwrap();
    let embedded = nestor(local.path(), &["catalog", "publish", file]).await;
    let remote = nestor(local.path(), &served.args(&["catalog", "publish", file])).await;
    assert_eq!(embedded.0, 1, "{}", embedded.1);
    assert_eq!(remote, embedded);

    // Without the token the server's refusal stops the command.
    let denied = nestor(
        local.path(),
        &["--server", &served.url, "catalog", "publish", path],
    )
    .await;
    assert_eq!(denied.0, 1);
    assert!(denied.2.starts_with("error[UNAUTHORIZED]"), "{}", denied.2);

    // Sync: an ad-hoc path must be configured on the server.
    let adhoc = nestor(local.path(), &served.args(&["catalog", "sync", path])).await;
    assert_eq!(adhoc.0, 1);
    assert!(adhoc.2.contains("configured on the server"), "{}", adhoc.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_sync_of_a_configured_source_against_nestor_serve() {
    let path = catalog();
    let path = path.to_str().unwrap();
    let served = Served::start(&["--catalog", path]);
    let local = tempfile::tempdir().unwrap();
    let remote = nestor(
        local.path(),
        &served.args(&["-o", "json", "catalog", "sync", "catalog"]),
    )
    .await;
    assert_eq!(remote.0, 0, "{}", remote.2);
    let report: serde_json::Value = serde_json::from_str(&remote.1).unwrap();
    assert_eq!(report["source"], "catalog");
    assert_eq!(report["errors"], serde_json::json!([]));
    let table = nestor(local.path(), &served.args(&["catalog", "sync", "catalog"])).await;
    assert_eq!(table.0, 0, "{}", table.2);
    assert!(table.1.starts_with("synced catalog at "), "{}", table.1);
    let unknown = nestor(local.path(), &served.args(&["catalog", "sync", "nope"])).await;
    assert_eq!(unknown.0, 1);
    assert!(
        unknown.2.starts_with("error[NOT_FOUND]") && unknown.2.contains("no source named \"nope\""),
        "{}",
        unknown.2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compositions_against_nestor_serve() {
    let served = Served::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let catalog = catalog();
    let compositions = root().join("examples/compositions");
    let compositions = compositions.to_str().unwrap();
    let catalog = catalog.to_str().unwrap();
    let embedded = nestor(local.path(), &["catalog", "publish", catalog]).await;
    let remote = nestor(local.path(), &served.args(&["catalog", "publish", catalog])).await;
    assert_eq!(
        (embedded.0, remote.0),
        (0, 0),
        "{} {}",
        embedded.2,
        remote.2
    );

    for round in ["created", "unchanged"] {
        for format in ["table", "json"] {
            let args = ["-o", format, "composition", "publish", compositions];
            let embedded = nestor(local.path(), &args).await;
            let remote = nestor(local.path(), &served.args(&args)).await;
            assert_eq!(embedded.0, 0, "{round} {format}: {}", embedded.2);
            assert_eq!(remote, embedded, "{round} {format}");
            if format == "table" {
                assert!(embedded.1.contains(round), "{}", embedded.1);
            }
        }
    }

    let published_at = |text: &str| -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        fn strip(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    m.remove("published_at");
                    m.values_mut().for_each(strip);
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
                _ => {}
            }
        }
        strip(&mut v);
        v
    };
    for args in [
        vec!["--team", "alpha", "composition", "list"],
        vec!["--team", "beta", "composition", "list"],
        vec!["--team", "alpha", "composition", "get", "web-app"],
        vec!["--team", "alpha", "composition", "get", "web-app:^1"],
    ] {
        let embedded = nestor(local.path(), &args).await;
        let remote = nestor(local.path(), &served.args(&args)).await;
        assert_eq!(embedded.0, 0, "{args:?}: {}", embedded.2);
        assert_eq!(remote, embedded, "{args:?}");
        // JSON carries publish times, which differ between the two stores.
        let mut json = vec!["-o", "json"];
        json.extend_from_slice(&args);
        let embedded = nestor(local.path(), &json).await;
        let remote = nestor(local.path(), &served.args(&json)).await;
        assert_eq!((embedded.0, remote.0), (0, 0), "{json:?}: {}", remote.2);
        assert_eq!(
            published_at(&remote.1),
            published_at(&embedded.1),
            "{json:?}"
        );
    }
    let args = ["--team", "alpha", "composition", "get", "nope"];
    let embedded = nestor(local.path(), &args).await;
    let remote = nestor(local.path(), &served.args(&args)).await;
    assert_eq!(embedded.0, 1);
    assert!(
        remote.2.starts_with("error[COMPOSITION_NOT_FOUND]"),
        "{}",
        remote.2
    );
    assert_eq!(remote, embedded);
    let all = nestor(
        local.path(),
        &served.args(&["composition", "list", "--all"]),
    )
    .await;
    assert_eq!(all.0, 1);
    assert!(
        all.2.starts_with("error[BAD_REQUEST]") && all.2.contains("only on the local store"),
        "{}",
        all.2
    );
}

/// A deployment's output with what differs between two stores (ids,
/// commits) masked.
fn masked(text: &str, ids: &[&str]) -> String {
    let mut out = text.to_string();
    for id in ids {
        out = out.replace(id, "<id>");
    }
    out.lines()
        .map(|l| masked_commit(&masked_commit(l, " (commit ", 12), "committed at ", 12))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `line` with the `len` characters of commit hash after `marker` replaced by
/// `<c>`: two stores make two commits, everything else must be equal.
fn masked_commit(line: &str, marker: &str, len: usize) -> String {
    match line.find(marker) {
        Some(i) if line.len() >= i + marker.len() + len => format!(
            "{}{marker}<c>{}",
            &line[..i],
            &line[i + marker.len() + len..]
        ),
        _ => line.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_status_rollback_promote_against_nestor_serve() {
    let served = Served::start(&[]);
    let local = tempfile::tempdir().unwrap();
    let catalog = catalog();
    let compositions = root().join("examples/compositions");
    for args in [
        vec!["catalog", "publish", catalog.to_str().unwrap()],
        vec!["composition", "publish", compositions.to_str().unwrap()],
    ] {
        let embedded = nestor(local.path(), &args).await;
        let remote = nestor(local.path(), &served.args(&args)).await;
        assert_eq!(
            (embedded.0, remote.0),
            (0, 0),
            "{} {}",
            embedded.2,
            remote.2
        );
    }
    std::fs::write(
        local.path().join("nestor.deploy.yaml"),
        "apiVersion: deploy.nestor.io/v1\nkind: DeploymentSet\ndeployments:\n  - team: alpha\n    environment: staging\n    name: checkout\n    composition: web-app\n    composition_version: \"*\"\n    params: {size: small, image: \"registry.example.com/checkout:1.0.0\"}\n",
    )
    .unwrap();

    let embedded = nestor(local.path(), &["plan"]).await;
    let remote = nestor(local.path(), &served.args(&["plan"])).await;
    assert_eq!(embedded.0, 0, "{}", embedded.2);
    assert!(
        embedded.1.contains("alpha/staging/checkout"),
        "{}",
        embedded.1
    );
    assert_eq!(remote, embedded);

    // Without --yes off a terminal, nothing is applied either way.
    let refused = nestor(local.path(), &served.args(&["apply"])).await;
    assert_eq!(refused.0, 1);
    assert!(refused.2.contains("--yes"), "{}", refused.2);

    let embedded = nestor(local.path(), &["apply", "--yes"]).await;
    let remote = nestor(local.path(), &served.args(&["apply", "--yes", "--wait"])).await;
    assert_eq!(embedded.0, 0, "{}", embedded.2);
    assert_eq!(remote.0, 0, "{}", remote.2);
    let first = |out: &str| out.split_whitespace().next().unwrap().to_string();
    let (eid, rid) = (first(&embedded.1), first(&remote.1));
    assert!(
        embedded.1.contains("revision 1: succeeded"),
        "{}",
        embedded.1
    );
    assert_eq!(
        masked(&remote.1, &[&rid]),
        masked(&embedded.1, &[&eid]),
        "apply"
    );
    assert!(
        ["cache", "database", "app"]
            .iter()
            .all(|r| remote.2.contains(&format!("  {r} "))),
        "progress lines: {}\nembedded: {}",
        remote.2,
        embedded.2
    );

    // Without --wait the recorded deployment comes back at once.
    let started = nestor(
        local.path(),
        &served.args(&["-o", "json", "apply", "--yes"]),
    )
    .await;
    assert_eq!(started.0, 0, "{}", started.2);
    let started: serde_json::Value = serde_json::from_str(&started.1).unwrap();
    assert_eq!(started[0]["revision"], 2);

    for (args, ids) in [
        (vec!["status", eid.as_str()], vec![eid.as_str()]),
        (
            vec!["-o", "json", "status", eid.as_str()],
            vec![eid.as_str()],
        ),
    ] {
        let embedded = nestor(local.path(), &args).await;
        let remote_args: Vec<&str> = args
            .iter()
            .map(|a| if *a == eid { rid.as_str() } else { a })
            .collect();
        let remote = nestor(local.path(), &served.args(&remote_args)).await;
        assert_eq!((embedded.0, remote.0), (0, 0), "{}", remote.2);
        if args[0] == "status" {
            assert_eq!(
                masked(&remote.1, &[&rid]),
                masked(&embedded.1, &ids),
                "{args:?}"
            );
        } else {
            let (e, r): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(&embedded.1).unwrap(),
                serde_json::from_str(&remote.1).unwrap(),
            );
            assert_eq!(
                (&r["status"], &r["revision"]),
                (&e["status"], &e["revision"])
            );
            assert_eq!(
                r["resources"].as_array().unwrap().len(),
                e["resources"].as_array().unwrap().len()
            );
        }
    }
    let missing = nestor(local.path(), &served.args(&["status", "nope"])).await;
    let embedded_missing = nestor(local.path(), &["status", "nope"]).await;
    assert_eq!(missing.0, 1);
    assert!(
        missing.2.starts_with("error[DEPLOYMENT_NOT_FOUND]"),
        "{}",
        missing.2
    );
    assert_eq!(missing, embedded_missing);

    // The embedded store gets its second revision too, then both roll back.
    let again = nestor(local.path(), &["apply", "--yes"]).await;
    assert_eq!(again.0, 0, "{}", again.2);
    let embedded = nestor(local.path(), &["rollback", &eid, "--to", "1"]).await;
    let remote = nestor(local.path(), &served.args(&["rollback", &rid, "--to", "1"])).await;
    assert_eq!(embedded.0, 0, "{}", embedded.2);
    assert!(embedded.1.contains("revision 3"), "{}", embedded.1);
    assert_eq!(
        masked(&remote.1, &[&rid]),
        masked(&embedded.1, &[&eid]),
        "rollback"
    );
    assert_eq!(remote.0, embedded.0);

    let args = [
        "--team", "alpha", "promote", "staging", "prod", "--name", "checkout",
    ];
    let embedded = nestor(local.path(), &args).await;
    let remote = nestor(local.path(), &served.args(&args)).await;
    assert_eq!(embedded.0, 0, "{}", embedded.2);
    assert_eq!(remote.0, 0, "{}", remote.2);
    let (pe, pr) = (first(&embedded.1), first(&remote.1));
    assert_eq!(
        masked(&remote.1, &[&pr]),
        masked(&embedded.1, &[&pe]),
        "promote"
    );

    for args in [
        vec!["--team", "alpha", "graph"],
        vec!["--team", "alpha", "graph", "--format", "dot"],
        vec!["--team", "alpha", "-o", "json", "graph", "--env", "prod"],
    ] {
        let embedded = nestor(local.path(), &args).await;
        let remote = nestor(local.path(), &served.args(&args)).await;
        assert_eq!(embedded.0, 0, "{args:?}: {}", embedded.2);
        assert!(embedded.1.contains("alpha/"), "{args:?}: {}", embedded.1);
        assert_eq!(remote, embedded, "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_list_against_nestor_serve() {
    let served = Served::start(&[]);
    let local = tempfile::tempdir().unwrap();
    for args in [
        vec!["engines", "list"],
        vec!["-o", "json", "engines", "list"],
    ] {
        let embedded = nestor(local.path(), &args).await;
        let remote = nestor(local.path(), &served.args(&args)).await;
        assert_eq!(embedded.0, 0, "{args:?}: {}", embedded.2);
        assert!(embedded.1.contains("terraform"), "{}", embedded.1);
        assert_eq!(remote, embedded, "{args:?}");
    }
}
