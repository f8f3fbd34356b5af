//! Reloading access without a restart: a real configuration file on disk,
//! re-read by the running server (on demand, by the file watch, and on
//! SIGHUP to a real `nestor serve`): tokens, rate limits and sources take
//! their new values, a bad file changes nothing, open event streams go on.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nestor_server::server::{self, ConfigSource};
use reqwest::StatusCode;

use super::{code, definition, eventually, Body, Setup, SseClient, TestServer};

const WAIT: Duration = Duration::from_secs(20);

/// A configuration file of a test server: a memory store, and tokens whose
/// secret is their name.
fn config_text(tokens: &[(&str, &str)], extra: &str) -> String {
    let mut text =
        String::from("storage: {type: memory}\nsse: {heartbeat: 1s}\nauth:\n  tokens:\n");
    for (name, role) in tokens {
        text.push_str(&format!(
            "    - {{name: {name}, sha256: \"{}\", roles: [\"{role}\"]}}\n",
            server::hash_token(name)
        ));
    }
    text + extra
}

/// A server started from `text` written at `path`, and what reloads it.
async fn serve_file(path: &Path, text: &str, catalog: bool) -> (TestServer, ConfigSource) {
    std::fs::write(path, text).unwrap();
    serve_from(ConfigSource::new(Some(path.to_path_buf()), []), catalog).await
}

/// A server started from what `source` loads.
async fn serve_from(source: ConfigSource, catalog: bool) -> (TestServer, ConfigSource) {
    let setup = Setup {
        config: source.load().unwrap(),
        catalog,
        ..Setup::default()
    };
    (TestServer::with(setup).await, source)
}

async fn status_as(s: &TestServer, token: &str) -> StatusCode {
    s.get_as("/api/v1/resources?limit=1", token).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_added_by_a_reload_works_and_a_removed_one_gets_401() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nestor.yaml");
    let (s, source) = serve_file(
        &path,
        &config_text(&[("admin", "admin"), ("alpha", "team:alpha")], ""),
        true,
    )
    .await;
    assert_eq!(status_as(&s, "alpha").await, 200);
    assert_eq!(status_as(&s, "gamma").await, 401);

    std::fs::write(
        &path,
        config_text(
            &[("admin", "admin"), ("gamma", "team:gamma")],
            "server: {listen: \"127.0.0.1:1\"}\n",
        ),
    )
    .unwrap();
    let report = s.state.reload(&source).unwrap();
    assert!(report.auth && !report.rate_limits, "{report:?}");
    assert_eq!(
        report.needs_restart,
        ["server.listen"],
        "logged, not applied"
    );
    assert_eq!(status_as(&s, "gamma").await, 200, "the new token works");
    let (status, body) = s.get_as("/api/v1/resources", "alpha").await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (401, "UNAUTHORIZED"),
        "the removed token is refused"
    );
    let (status, _) = s.get_as("/api/v1/teams/gamma/compositions", "gamma").await;
    assert_eq!(status, 200, "with the roles of the new file");
    // The `serve --catalog`-style source added ad hoc is not the file's: it stays.
    assert_eq!(s.state.syncs().names(), ["examples"]);
    // The token change is in the audit trail, as the server's own write.
    let trail = eventually(WAIT, || async {
        let (_, page) = s
            .get_as("/api/v1/audit?action=config.reload", "admin")
            .await;
        page["items"].as_array().filter(|i| !i.is_empty()).cloned()
    })
    .await;
    assert_eq!(
        (
            trail[0]["subject"].as_str(),
            trail[0]["actor"]["name"].as_str()
        ),
        (Some("auth"), Some("server")),
        "{trail:?}"
    );
    assert_eq!(trail[0]["outcome"], "succeeded");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_whole_and_the_old_access_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nestor.yaml");
    let (s, source) = serve_file(&path, &config_text(&[("alpha", "team:alpha")], ""), false).await;
    let gamma = config_text(&[("gamma", "reader")], "");
    let cases = [
        ("auth: [tokens".to_string(), "parsing"),
        (
            "storage: {type: memory}\nauth:\n  tokens:\n    - {name: gamma, sha256: nothex, roles: [reader]}\n".into(),
            "must be 64 hex digits",
        ),
        (config_text(&[("gamma", "emperor")], ""), "unknown role"),
        (format!("{gamma}server: {{rate_limits: {{reads: {{per_second: 0}}}}}}\n"), "reads"),
        (format!("{gamma}catalog:\n  sources:\n    - {{name: a, url: /x}}\n    - {{name: a, url: /y}}\n"), "used twice"),
        (format!("{gamma}unknown_key: 1\n"), "unknown_key"),
    ];
    for (text, why) in &cases {
        std::fs::write(&path, text).unwrap();
        let error = format!("{:#}", s.state.reload(&source).unwrap_err());
        assert!(error.contains(why), "{why:?} not in {error:?}");
        assert_eq!(
            status_as(&s, "alpha").await,
            200,
            "the old token still works after {why:?}"
        );
        assert_eq!(
            status_as(&s, "gamma").await,
            401,
            "nothing of a refused file applies ({why:?})"
        );
    }
    std::fs::remove_file(&path).unwrap();
    assert!(
        s.state.reload(&source).is_err(),
        "a missing file is refused too"
    );
    std::fs::write(&path, &gamma).unwrap();
    s.state.reload(&source).unwrap();
    assert_eq!(status_as(&s, "gamma").await, 200);

    let text = s.metrics().await;
    for line in [
        "nestor_config_reloads_total{outcome=\"refused\"} 7",
        "nestor_config_reloads_total{outcome=\"applied\"} 1",
    ] {
        assert!(text.contains(line), "metrics lack {line}:\n{text}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_reload_and_an_open_event_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nestor.yaml");
    let folder = dir.path().join("extra");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("a.yaml"),
        definition("reloaded-a", "1.0.0", "from a reload", &[]),
    )
    .unwrap();
    let base = config_text(&[("platform", "platform")], "");
    let (s, source) = serve_file(&path, &base, false).await;
    s.state.syncs().start_pollers();
    let mut stream = SseClient::connect(&s, "?types=resource.*", None, None).await;

    let with_source = |poll: &str| {
        format!("{base}catalog:\n  sources:\n    - {{name: extra, url: \"{}\", poll_interval: {poll}}}\n", folder.display())
    };
    std::fs::write(&path, with_source("1s")).unwrap();
    let report = s.state.reload(&source).unwrap();
    assert_eq!(report.sources.added, ["extra"], "{report:?}");
    let frame = stream
        .next(WAIT)
        .await
        .expect("the stream opened before the reload goes on");
    assert_eq!(
        (frame.event.as_str(), frame.data["subject"].as_str()),
        ("resource.created", Some("reloaded-a:1.0.0"))
    );
    assert_eq!(
        s.get("/api/v1/resources/reloaded-a").await.0,
        200,
        "the added source was synced"
    );

    // Its poller runs at the reloaded interval: a new file shows up.
    std::fs::write(
        folder.join("b.yaml"),
        definition("reloaded-b", "1.0.0", "polled", &[]),
    )
    .unwrap();
    let frame = stream
        .next(WAIT)
        .await
        .expect("polled within a few seconds");
    assert_eq!(frame.data["subject"], "reloaded-b:1.0.0");

    // A changed source restarts; an unchanged reload touches nothing.
    std::fs::write(&path, with_source("1h")).unwrap();
    assert_eq!(s.state.reload(&source).unwrap().sources.changed, ["extra"]);
    assert!(s.state.reload(&source).unwrap().sources.is_empty());

    // Removed: no more polls (what it published stays).
    std::fs::write(&path, &base).unwrap();
    assert_eq!(s.state.reload(&source).unwrap().sources.removed, ["extra"]);
    assert!(s.state.syncs().names().is_empty());
    let (status, _) = s
        .post(
            "/api/v1/sync?source=extra",
            "platform",
            Body::Raw("application/json", vec![]),
        )
        .await;
    assert_eq!(status, 404, "the removed source is unknown");
    assert_eq!(s.get("/api/v1/resources/reloaded-a").await.0, 200);

    // After all those reloads the stream still delivers.
    let (status, body) = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Yaml(definition("after-reloads", "1.0.0", "x", &[])),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let frame = stream.next(WAIT).await.expect("still streaming");
    assert_eq!(frame.data["subject"], "after-reloads:1.0.0");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_changed_by_a_reload_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nestor.yaml");
    let base = config_text(&[("alpha", "team:alpha"), ("beta", "team:beta")], "");
    let (s, source) = serve_file(&path, &base, false).await;
    for _ in 0..5 {
        assert_eq!(status_as(&s, "alpha").await, 200, "no limit yet");
    }
    let limited =
        format!("{base}server:\n  rate_limits:\n    reads: {{per_second: 1, burst: 2}}\n");
    std::fs::write(&path, &limited).unwrap();
    assert!(s.state.reload(&source).unwrap().rate_limits);
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(status_as(&s, "alpha").await.as_u16());
        }
        v
    };
    assert_eq!(statuses, [200, 200, 429], "the reloaded burst of 2");
    // A reload that leaves the limits as they are keeps the buckets.
    std::fs::write(&path, limited.replace("team:beta", "reader")).unwrap();
    let report = s.state.reload(&source).unwrap();
    assert!(report.auth && !report.rate_limits, "{report:?}");
    assert_eq!(
        status_as(&s, "alpha").await,
        429,
        "alpha's bucket is still empty"
    );
    assert_eq!(
        status_as(&s, "beta").await,
        200,
        "another token is unaffected"
    );
    std::fs::write(&path, &base).unwrap();
    s.state.reload(&source).unwrap();
    assert_eq!(status_as(&s, "alpha").await, 200, "limits removed");
    s.stop().await;
}

/// Points `link` at `target` the way Kubernetes updates a ConfigMap
/// volume: a new symlink renamed over the old one, in one step.
#[cfg(unix)]
fn swap_link(dir: &Path, target: &str, link: &str) {
    let tmp = dir.join(format!("{link}.tmp"));
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(link)).unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_style_symlink_swap_is_noticed_by_the_file_watch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (version, token) in [("..v1", "alpha"), ("..v2", "gamma")] {
        std::fs::create_dir(d.join(version)).unwrap();
        std::fs::write(
            d.join(version).join("nestor.yaml"),
            config_text(&[(token, "reader")], ""),
        )
        .unwrap();
    }
    swap_link(d, "..v1", "..data");
    std::os::unix::fs::symlink("..data/nestor.yaml", d.join("nestor.yaml")).unwrap();
    let (s, source) = serve_from(ConfigSource::new(Some(d.join("nestor.yaml")), []), false).await;
    let watch = s
        .state
        .watch_config(source, Some(Duration::from_millis(100)));
    assert_eq!(status_as(&s, "alpha").await, 200);
    swap_link(d, "..v2", "..data");
    eventually(WAIT, || async {
        (status_as(&s, "gamma").await == 200).then_some(())
    })
    .await;
    assert_eq!(status_as(&s, "alpha").await, 401);
    s.stop().await;
    tokio::time::timeout(WAIT, watch)
        .await
        .expect("the watch ends with the server")
        .unwrap();
}

/// A `nestor serve` child with its stderr lines collected.
struct Child {
    process: std::process::Child,
    url: String,
    /// The `--dev` admin token it printed.
    dev_token: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Child {
    fn start(dir: &Path, config: &Path) -> Child {
        let mut process = Command::new(env!("CARGO_BIN_EXE_nestor"))
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .current_dir(dir)
            .env_remove("NESTOR_SERVER")
            .env_remove("NESTOR_DATA_DIR")
            .env("NESTOR_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stderr, sink) = (process.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = process.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut url, mut dev_token) = (None, None);
        while url.is_none() || dev_token.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .expect("nestor serve prints where it listens and its dev token");
            if let Some(rest) = line.strip_prefix("nestor listening on ") {
                url = rest.split_whitespace().next().map(str::to_string);
            } else if line.trim_start().starts_with("nst_") {
                dev_token = Some(line.trim().to_string());
            }
        }
        Child {
            process,
            url: url.unwrap(),
            dev_token: dev_token.unwrap(),
            log,
        }
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.process.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for a log line containing `text` after the first `skip` lines.
    async fn logged(&self, skip: usize, text: &str) -> usize {
        eventually(WAIT, || async {
            let log = self.log.lock().unwrap();
            log.iter()
                .skip(skip)
                .position(|l| l.contains(text))
                .map(|i| skip + i + 1)
        })
        .await
    }

    async fn status(&self, token: &str) -> u16 {
        reqwest::Client::new()
            .get(format!("{}/api/v1/teams", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_running_nestor_serve() {
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("nestor.yaml");
    // The file watch is off: only the signal reloads.
    let watch_off = "server: {config_watch_interval: 0s}\n";
    std::fs::write(&config, config_text(&[("alpha", "reader")], watch_off)).unwrap();
    let child = Child::start(dir.path(), &config);
    assert_eq!(child.status("alpha").await, 200);
    assert_eq!(child.status("gamma").await, 401);

    std::fs::write(&config, config_text(&[("gamma", "reader")], watch_off)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        child.status("gamma").await,
        401,
        "no reload without the signal"
    );
    child.hangup();
    let seen = child.logged(0, "config reloaded: auth").await;
    assert_eq!(child.status("gamma").await, 200);
    assert_eq!(child.status("alpha").await, 401);
    assert_eq!(
        child.status(&child.dev_token).await,
        200,
        "the --dev token is laid over every reload"
    );

    std::fs::write(&config, "auth: {tokens: [{name: x, sha256: zz}]}\n").unwrap();
    child.hangup();
    child.logged(seen, "config reload refused").await;
    assert_eq!(
        child.status("gamma").await,
        200,
        "a refused reload keeps the running tokens"
    );
}
