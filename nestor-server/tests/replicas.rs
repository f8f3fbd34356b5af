//! Several real `nestor serve` processes on one DynamoDB (issue 6, docs/src/reference/events.md
//! and §10): a publish through one replica reaches an SSE stream on the
//! other within a second with the same event id, a deployment started on
//! one is visible with its status on the other, and a DynamoDB outage
//! answers `503 STORAGE_UNAVAILABLE` without killing the server, which
//! resumes by itself once DynamoDB is back. A deployment whose replica is
//! killed (SIGKILL) between two waves is finished by the other within the
//! lease time, each resource committed exactly once; on SQLite a restarted
//! single server does the same, and a graceful shutdown lets a running
//! deployment finish.
//!
//! The DynamoDB server is AWS DynamoDB Local, started by
//! `.ci/dynamodb.sh start` (`NESTOR_TEST_DYNAMODB_ENDPOINT`,
//! `NESTOR_DYNAMODB_LOCAL_DIR`). Without it the cases say they are skipped
//! and pass, except under `CI=true`, where they fail.
//!
//! Every process the tests start is killed by a guard on drop, and every
//! wait is bounded.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::{definition, root, Frame, SseClient};

/// Tokens the replicas accept; the token is its name.
const TOKENS: [(&str, &str); 3] = [
    ("admin", "admin"),
    ("platform", "platform"),
    ("alpha", "team:alpha"),
];

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `name`'s value, or `None` after saying why the case is skipped (a
/// panic under CI, which must never skip).
fn required_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if in_ci() => panic!("CI=true but {name} is not set: CI must run the DynamoDB tests"),
        _ => {
            eprintln!("skipped: {name} is not set (run: eval \"$(.ci/dynamodb.sh start)\")");
            None
        }
    }
}

/// A table prefix no other case or earlier run uses.
fn unique_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "r{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A `nestor.yaml` on DynamoDB with the test tokens, written into `dir`.
fn write_config(dir: &Path, endpoint: &str, prefix: &str) -> PathBuf {
    write_config_with(dir, &dynamo_section(endpoint, prefix))
}

fn dynamo_section(endpoint: &str, prefix: &str) -> String {
    format!(
        "storage:\n  type: dynamodb\n  dynamodb:\n    table_prefix: \"{prefix}\"\n    region: us-east-1\n    endpoint_url: \"{endpoint}\"\n"
    )
}

/// Fresh tables on `endpoint` for a `nestor.yaml` in `work` (DynamoDB
/// plus `more` sections), migrated and holding the example catalog; the
/// guard drops the tables.
async fn dynamo_with_catalog(work: &Path, endpoint: &str, more: &str) -> (PathBuf, DropTables) {
    let prefix = unique_prefix();
    let config = write_config_with(
        work,
        &format!("{}{more}", dynamo_section(endpoint, &prefix)),
    );
    let tables = DropTables(nestor_storage::DynamoConfig {
        table_prefix: prefix,
        region: "us-east-1".into(),
        endpoint_url: Some(endpoint.into()),
    });
    migrate(work, &config, Duration::from_secs(60)).await;
    sync_examples(work, &config).await;
    (config, tables)
}

/// `nestor catalog sync examples/catalog` with `config`.
async fn sync_examples(work: &Path, config: &Path) {
    let catalog = root().join("examples/catalog");
    let (status, out) = run_nestor(
        work,
        config,
        &["catalog", "sync", catalog.to_str().unwrap()],
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(status, 0, "catalog sync: {out}");
}

/// A `nestor.yaml` with the test tokens and `sections` (YAML), written
/// into `dir`.
pub(crate) fn write_config_with(dir: &Path, sections: &str) -> PathBuf {
    let mut tokens = String::new();
    for (name, role) in TOKENS {
        tokens.push_str(&format!(
            "    - {{name: {name}, sha256: \"{}\", roles: [\"{role}\"]}}\n",
            nestor_server::server::hash_token(name)
        ));
    }
    let text = format!("{sections}auth:\n  tokens:\n{tokens}sse:\n  heartbeat: 1s\n");
    let path = dir.join("nestor.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `nestor` command in `dir` with `config`, isolated from the caller's
/// `NESTOR_*` environment.
pub(crate) fn nestor_command(dir: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nestor"));
    cmd.current_dir(dir)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(dir.join(".nestor"));
    for (key, _) in std::env::vars() {
        if key.starts_with("NESTOR_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Kills a child process when dropped.
pub(crate) struct Killed(Option<Child>);

impl Killed {
    pub(crate) fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `nestor <args>` to completion (killed after `limit`); returns the
/// exit code and the combined output.
pub(crate) async fn run_nestor(
    dir: &Path,
    config: &Path,
    args: &[&str],
    limit: Duration,
) -> (i32, String) {
    let out_path = dir.join(format!("cmd-{}.log", unique_prefix()));
    let out = File::create(&out_path).unwrap();
    let child = nestor_command(dir, config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut guard = Killed(Some(child));
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = guard.child().try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "nestor {args:?} did not finish within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(guard);
    (code, std::fs::read_to_string(&out_path).unwrap_or_default())
}

/// `nestor migrate`, retried while DynamoDB is not up yet (bounded).
async fn migrate(dir: &Path, config: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (code, out) = run_nestor(dir, config, &["migrate"], Duration::from_secs(60)).await;
        if code == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nestor migrate failed for {limit:?}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One `nestor serve` process, killed on drop.
pub(crate) struct Replica {
    name: &'static str,
    pub(crate) url: String,
    pub(crate) process: Killed,
    /// Its stderr, printed when a case fails.
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Starts `nestor serve --listen 127.0.0.1:0` in a fresh folder and
    /// waits until it prints its address and `/health` answers.
    pub(crate) async fn start(
        name: &'static str,
        config: &Path,
        client: &reqwest::Client,
    ) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let child = nestor_command(dir.path(), config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("NESTOR_LOG", "warn,nestor_core::orchestrator=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut process = Killed(Some(child));
        let stdout = process.child().stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let deadline = started + Duration::from_secs(120);
        let url = loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = tokio::task::block_in_place(|| rx.recv_timeout(wait));
            match line {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("nestor listening on ") {
                        break rest.split_whitespace().next().unwrap().to_string();
                    }
                }
                Err(e) => panic!(
                    "replica {name} did not print its address ({e}); stderr:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        };
        let replica = Replica {
            name,
            url,
            process,
            log,
            _dir: dir,
        };
        let health = Instant::now() + Duration::from_secs(30);
        loop {
            match client.get(format!("{}/health", replica.url)).send().await {
                Ok(r) if r.status() == 200 => break,
                other => {
                    assert!(
                        Instant::now() < health,
                        "replica {name}: /health did not answer: {other:?}\n{}",
                        replica.stderr()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        eprintln!(
            "replica {name} serves {} (ready in {:?})",
            replica.url,
            started.elapsed()
        );
        replica
    }

    /// Its `--data-dir` (which `nestor serve` creates).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self._dir.path().join(".nestor")
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    fn alive(&mut self) -> bool {
        self.process.child().try_wait().unwrap().is_none()
    }

    pub(crate) fn pid(&mut self) -> u32 {
        self.process.child().id()
    }
}

/// Sends a request; returns the status and the body (JSON, else a string).
async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<(&'static str, String)>,
) -> (u16, Value) {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((content_type, text)) = body {
        req = req.header("content-type", content_type).body(text);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) async fn get(
    client: &reqwest::Client,
    r: &Replica,
    path: &str,
    token: &str,
) -> (u16, Value) {
    send(
        client,
        reqwest::Method::GET,
        format!("{}{path}", r.url),
        Some(token),
        None,
    )
    .await
}

pub(crate) async fn post_yaml(
    client: &reqwest::Client,
    r: &Replica,
    path: &str,
    token: &str,
    yaml: String,
) -> (u16, Value) {
    send(
        client,
        reqwest::Method::POST,
        format!("{}{path}", r.url),
        Some(token),
        Some(("application/yaml", yaml)),
    )
    .await
}

pub(crate) async fn post_json(
    client: &reqwest::Client,
    r: &Replica,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    send(
        client,
        reqwest::Method::POST,
        format!("{}{path}", r.url),
        Some(token),
        Some(("application/json", body.to_string())),
    )
    .await
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no code>")
}

/// An SSE stream on one replica, read with the server tests' reader.
struct Sse(SseClient);

impl Sse {
    async fn connect(client: &reqwest::Client, r: &Replica, query: &str) -> Sse {
        let resp = client
            .get(format!("{}/api/v1/events{query}", r.url))
            .bearer_auth("admin")
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "SSE on replica {}", r.name);
        Sse(SseClient::from_response(resp))
    }

    /// The next event (comments skipped); `None` after `wait` or at the end.
    async fn next(&mut self, wait: Duration) -> Option<Frame> {
        self.0.next(wait).await
    }

    /// The first frame whose subject is `subject`, within `wait`.
    async fn find(&mut self, subject: &str, wait: Duration) -> Option<(Frame, Instant)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next(left).await?;
            if frame.data["subject"] == subject {
                return Some((frame, Instant::now()));
            }
        }
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Deletes the case's tables when dropped (best effort, never panics).
struct DropTables(nestor_storage::DynamoConfig);

impl Drop for DropTables {
    fn drop(&mut self) {
        let config = self.0.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let store = nestor_storage::DynamoStore::connect(config).await.ok()?;
                store.delete_tables().await.ok()
            })
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_events_and_deployments() {
    let Some(endpoint) = required_env("NESTOR_TEST_DYNAMODB_ENDPOINT") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (config, _tables) = dynamo_with_catalog(work.path(), &endpoint, "").await;

    let client = client();
    let a = Replica::start("A", &config, &client).await;
    let b = Replica::start("B", &config, &client).await;
    for r in [&a, &b] {
        let (status, body) = get(&client, r, "/ready", "admin").await;
        assert_eq!(status, 200, "replica {} /ready: {body}", r.name);
    }

    // Publishes through one replica reach SSE streams on both, with one id.
    let mut on_a = Sse::connect(&client, &a, "?types=resource.*").await;
    let mut on_b = Sse::connect(&client, &b, "?types=resource.*").await;
    let mut latencies = Vec::new();
    for round in 0..6 {
        let (from, other_name, from_name) = if round % 2 == 0 {
            (&a, "B", "A")
        } else {
            (&b, "A", "B")
        };
        let name = format!("replicated-{round}");
        let subject = format!("{name}:1.0.0");
        let sent = Instant::now();
        let (status, body) = post_yaml(
            &client,
            from,
            "/api/v1/resources",
            "platform",
            definition(&name, "1.0.0", "published on one replica", &[]),
        )
        .await;
        let answered = Instant::now();
        assert_eq!(status, 201, "publish on {from_name}: {body}");
        let (on_from, on_other) = if from_name == "A" {
            (&mut on_a, &mut on_b)
        } else {
            (&mut on_b, &mut on_a)
        };
        // Both streams read at once, so each arrival time is its own.
        let (other, own) = tokio::join!(
            on_other.find(&subject, Duration::from_secs(5)),
            on_from.find(&subject, Duration::from_secs(5))
        );
        let (other_frame, seen_other) = other.unwrap_or_else(|| {
            panic!("{subject} published on {from_name} never reached the other replica's stream")
        });
        let (own_frame, seen_own) =
            own.unwrap_or_else(|| panic!("{subject} never reached {from_name}'s own stream"));
        assert_eq!(other_frame.event, "resource.created");
        assert_eq!(own_frame.event, "resource.created");
        assert!(own_frame.id.is_some(), "{own_frame:?}");
        assert_eq!(
            own_frame.id, other_frame.id,
            "one event id on both replicas"
        );
        assert_eq!(own_frame.data["id"], other_frame.data["id"]);
        let after_answer = seen_other.saturating_duration_since(answered);
        let after_send = seen_other.duration_since(sent);
        let after_own = seen_other.saturating_duration_since(seen_own);
        let own_after_answer = seen_own.saturating_duration_since(answered);
        eprintln!(
            "{subject}: id {:?}; publish on {from_name} answered in {:?}; on {}'s stream {after_answer:?} after the answer ({after_send:?} after the request, {after_own:?} after {from_name}'s own stream, which had it {own_after_answer:?} after the answer)",
            own_frame.id,
            answered.duration_since(sent),
            other_name
        );
        assert!(
            after_answer <= Duration::from_secs(1),
            "{subject} reached {other_name} {after_answer:?} after the publish on {from_name} answered"
        );
        latencies.push(after_answer);
    }
    latencies.sort();
    eprintln!(
        "publish answered → SSE on the other replica: min {:?}, median {:?}, max {:?}",
        latencies[0],
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // Reads on either replica agree.
    for r in [&a, &b] {
        let (status, body) = get(&client, r, "/api/v1/resources/replicated-0", "admin").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["definition"]["metadata"]["version"], "1.0.0");
    }
    // The same name@version with other content, through the other replica:
    // immutable.
    let (status, body) = post_yaml(
        &client,
        &b,
        "/api/v1/resources",
        "platform",
        definition("replicated-0", "1.0.0", "other content", &[]),
    )
    .await;
    assert_eq!((status, code(&body)), (409, "VERSION_IMMUTABLE"), "{body}");

    // A deployment started on A is visible with its status on B.
    let web_app =
        std::fs::read_to_string(root().join("examples/compositions/alpha/web-app.yaml")).unwrap();
    let (status, body) = post_yaml(
        &client,
        &a,
        "/api/v1/teams/alpha/compositions",
        "alpha",
        web_app,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut deploys_on_b = Sse::connect(&client, &b, "?types=deployment.*").await;
    let (status, created) = post_json(
        &client,
        &a,
        "/api/v1/teams/alpha/deploy",
        "alpha",
        json!({"composition": "web-app", "environment": "staging", "name": "checkout",
               "params": {"size": "small", "image": "registry.example.com/checkout:1.0.0"}}),
    )
    .await;
    assert!(status == 202 || status == 201, "{status} {created}");
    let id = created["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    let path = format!("/api/v1/deployments/{id}");
    let (first_status, first) = get(&client, &b, &path, "alpha").await;
    eprintln!(
        "deployment {id}: on B right after A answered {}: {first_status} {}",
        created["status"], first["status"]
    );
    let deadline = started + Duration::from_secs(120);
    let on_b = loop {
        let (status, body) = get(&client, &b, &path, "alpha").await;
        if status == 200 && matches!(body["status"].as_str(), Some("succeeded" | "failed")) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "deployment {id} not finished on B: {status} {body}\nA:\n{}",
            a.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "deployment {id}: {} on B {:?} after A accepted it",
        on_b["status"],
        started.elapsed()
    );
    let (status, on_a) = get(&client, &a, &path, "alpha").await;
    assert_eq!(status, 200, "{on_a}");
    assert_eq!(on_b["status"], "succeeded", "{on_b}");
    assert_eq!(on_a["status"], on_b["status"]);
    assert_eq!(on_a["resources"], on_b["resources"]);
    let mut events = Vec::new();
    while let Some(f) = deploys_on_b.next(Duration::from_secs(5)).await {
        if f.data["data"]["id"] == id.as_str() {
            events.push(f.event.clone());
            if f.event == "deployment.completed" || f.event == "deployment.failed" {
                break;
            }
        }
    }
    assert_eq!(
        events.last().map(String::as_str),
        Some("deployment.completed"),
        "B's stream followed A's deployment: {events:?}"
    );
    let (status, listed) = get(&client, &b, "/api/v1/deployments?team=alpha", "alpha").await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == id.as_str()),
        "{listed}"
    );

    drop(on_a);
    drop(on_b);
    drop(deploys_on_b);
    let (mut a, mut b) = (a, b);
    assert!(a.alive() && b.alive(), "both replicas are still running");
}

/// A private DynamoDB Local on a fixed port; killed on drop.
struct PrivateDynamo {
    dir: PathBuf,
    port: u16,
    process: Killed,
}

impl PrivateDynamo {
    fn start(dir: PathBuf) -> PrivateDynamo {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = PrivateDynamo {
            dir,
            port,
            process: Killed(None),
        };
        server.restart();
        server
    }

    fn restart(&mut self) {
        let child = Command::new("java")
            .current_dir(&self.dir)
            .args([
                "-Xmx256m",
                "-Djava.library.path=./DynamoDBLocal_lib",
                "-jar",
                "DynamoDBLocal.jar",
                "-inMemory",
                "-sharedDb",
                "-port",
                &self.port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java starts DynamoDB Local");
        self.process = Killed(Some(child));
    }

    fn stop(&mut self) {
        self.process = Killed(None);
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Asserts `503` with a `STORAGE_UNAVAILABLE` body; prints how long it took.
fn unavailable(what: &str, (status, body): (u16, Value), took: Duration) {
    assert_eq!(
        (status, code(&body)),
        (503, "STORAGE_UNAVAILABLE"),
        "{what} during the outage: {body}"
    );
    assert!(took < Duration::from_secs(25), "{what} took {took:?}");
    eprintln!("during the outage, {what}: 503 STORAGE_UNAVAILABLE in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dynamodb_outage_is_503_and_the_server_resumes_by_itself() {
    if required_env("NESTOR_TEST_DYNAMODB_ENDPOINT").is_none() {
        return;
    }
    let Some(local_dir) = required_env("NESTOR_DYNAMODB_LOCAL_DIR") else {
        return;
    };
    let mut dynamo = PrivateDynamo::start(PathBuf::from(local_dir));
    let work = tempfile::tempdir().unwrap();
    let config = write_config(work.path(), &dynamo.endpoint(), &unique_prefix());
    migrate(work.path(), &config, Duration::from_secs(90)).await;

    let client = client();
    let mut server = Replica::start("solo", &config, &client).await;
    let pid = server.pid();
    let (status, body) = post_yaml(
        &client,
        &server,
        "/api/v1/resources",
        "platform",
        definition("outage-db", "1.0.0", "before the outage", &[]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = get(&client, &server, "/api/v1/resources/outage-db", "admin").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&client, &server, "/ready", "admin").await;
    assert_eq!(status, 200, "{body}");

    dynamo.stop();
    // Reads of mutable state (latest, versions, lists): the store caches
    // only immutable content by name@version, which it may rightly serve
    // during an outage.
    let start = Instant::now();
    let answer = get(&client, &server, "/api/v1/resources/outage-db", "admin").await;
    unavailable("a catalog read (latest)", answer, start.elapsed());
    let start = Instant::now();
    let answer = get(
        &client,
        &server,
        "/api/v1/resources/outage-db/versions",
        "admin",
    )
    .await;
    unavailable("a catalog read (versions)", answer, start.elapsed());
    let start = Instant::now();
    let answer = get(&client, &server, "/api/v1/resources?limit=5", "admin").await;
    unavailable("a catalog list", answer, start.elapsed());
    let start = Instant::now();
    let answer = post_yaml(
        &client,
        &server,
        "/api/v1/resources",
        "platform",
        definition("outage-db", "1.1.0", "during the outage", &[]),
    )
    .await;
    unavailable("a publish", answer, start.elapsed());
    let start = Instant::now();
    let answer = get(&client, &server, "/ready", "admin").await;
    unavailable("/ready", answer, start.elapsed());
    let (status, _) = get(&client, &server, "/health", "admin").await;
    assert_eq!(status, 200, "the process answers /health during the outage");
    assert!(server.alive(), "nestor survived the outage");
    let stderr = server.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");

    dynamo.restart();
    let down_at = Instant::now();
    // In memory, DynamoDB Local lost its tables: make them again.
    migrate(work.path(), &config, Duration::from_secs(90)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(&client, &server, "/ready", "admin").await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after DynamoDB came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = post_yaml(
        &client,
        &server,
        "/api/v1/resources",
        "platform",
        definition("outage-db", "1.1.0", "after the outage", &[]),
    )
    .await;
    assert_eq!(status, 201, "publish after recovery: {body}");
    let (status, body) = get(&client, &server, "/api/v1/resources/outage-db", "admin").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["definition"]["metadata"]["version"], "1.1.0");
    let (status, body) = get(&client, &server, "/api/v1/resources?limit=5", "admin").await;
    assert_eq!(status, 200, "{body}");
    eprintln!(
        "recovered {:?} after DynamoDB Local restarted (including migrate)",
        down_at.elapsed()
    );
    assert!(server.alive(), "no restart of nestor");
    assert_eq!(server.pid(), pid);
    let stderr = server.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Lease time and wave delay of the takeover cases: the delay holds the
/// runner between the two waves of `web-app` long enough to kill it there.
const LEASE: Duration = Duration::from_secs(2);
const WAVE_DELAY: &str = "3s";

/// `deployments:` and `gitops:` sections sharing one GitOps repository.
fn takeover_sections(gitops: &Path) -> String {
    format!(
        "gitops:\n  repo: \"{}\"\ndeployments:\n  lease: {}ms\n  wave_delay: {WAVE_DELAY}\n",
        gitops.display(),
        LEASE.as_millis()
    )
}

/// Publishes `web-app` through `r` and deploys it; returns the id.
async fn deploy_web_app(client: &reqwest::Client, r: &Replica) -> String {
    let web_app =
        std::fs::read_to_string(root().join("examples/compositions/alpha/web-app.yaml")).unwrap();
    let (status, body) = post_yaml(
        client,
        r,
        "/api/v1/teams/alpha/compositions",
        "alpha",
        web_app,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, created) = post_json(
        client,
        r,
        "/api/v1/teams/alpha/deploy",
        "alpha",
        json!({"composition": "web-app", "environment": "staging", "name": "checkout",
               "params": {"size": "small", "image": "registry.example.com/checkout:1.0.0"}}),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// Waits (polling `observer`) until the first wave of `id` is rendered
/// and stored while the second has not started: the runner is in the
/// pause between the waves.
async fn until_between_waves(client: &reqwest::Client, observer: &Replica, id: &str) {
    let path = format!("/api/v1/deployments/{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, d) = get(client, observer, &path, "alpha").await;
        let resource = |name: &str| {
            d["resources"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["name"] == name))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let first_wave_done = ["database", "cache"].iter().all(|name| {
            resource(name)["outputs"]
                .as_object()
                .is_some_and(|o| !o.is_empty())
        });
        if status == 200 && first_wave_done {
            assert_eq!(resource("app")["status"], "pending", "{d}");
            // Its artifacts are stored right after the outputs.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deployment {id} never finished its first wave: {status} {d}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `id` is finished on `r`; returns it and when it was seen.
async fn until_finished(client: &reqwest::Client, r: &Replica, id: &str) -> (Value, Instant) {
    let path = format!("/api/v1/deployments/{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, d) = get(client, r, &path, "alpha").await;
        if status == 200 && matches!(d["status"].as_str(), Some("succeeded" | "failed")) {
            return (d, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "deployment {id} not finished on {}: {status} {d}\n{}",
            r.name,
            r.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each of web-app's three resources appears in exactly one commit, and
/// that commit is the deployment's.
fn assert_applied_once(gitops: &Path, id: &str, d: &Value) {
    let key = nestor_core::DeploymentKey {
        team: "alpha".into(),
        environment: "staging".into(),
        name: "checkout".into(),
    };
    let history = nestor_storage::GitOpsExecutor::open(nestor_storage::GitOpsConfig::local(gitops))
        .unwrap()
        .history(&key, 100)
        .unwrap();
    assert_eq!(history.len(), 1, "one commit in all: {history:#?}");
    let change = &history[0];
    assert!(change.message.contains(id), "{}", change.message);
    for resource in ["database", "cache", "app"] {
        let prefix = format!("alpha/staging/checkout/{resource}/");
        assert!(
            change.paths.iter().any(|p| p.starts_with(&prefix)),
            "{resource} was committed: {:?}",
            change.paths
        );
    }
    assert_eq!(d["commit"], change.commit.as_str(), "{d}");
    for r in d["resources"].as_array().unwrap() {
        assert_eq!(r["status"], "applied", "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_whose_replica_is_killed_is_finished_by_the_other() {
    let Some(endpoint) = required_env("NESTOR_TEST_DYNAMODB_ENDPOINT") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let gitops = work.path().join("gitops");
    let (config, _tables) =
        dynamo_with_catalog(work.path(), &endpoint, &takeover_sections(&gitops)).await;
    let client = client();
    let mut a = Replica::start("A", &config, &client).await;
    let b = Replica::start("B", &config, &client).await;

    let id = deploy_web_app(&client, &a).await;
    until_between_waves(&client, &b, &id).await;
    let pid = a.pid();
    a.process.child().kill().unwrap(); // SIGKILL: no shutdown, no lease release
    a.process.child().wait().unwrap();
    let killed = Instant::now();
    eprintln!("killed replica A (pid {pid}) between the waves of {id}");

    let (d, seen) = until_finished(&client, &b, &id).await;
    let took = seen - killed;
    eprintln!("replica B finished {id} {took:?} after A was killed (lease {LEASE:?})");
    assert_eq!(d["status"], "succeeded", "{d}\nB:\n{}", b.stderr());
    // The lease lapses at most LEASE after A's last heartbeat, B's scanner
    // wakes as it lapses and renders only the last wave; the slack is for
    // a loaded 2-core machine.
    assert!(
        took <= LEASE + Duration::from_secs(1),
        "B took {took:?} to finish (lease {LEASE:?})"
    );
    assert!(
        b.stderr().contains("resuming deployment at wave 2 of 2"),
        "B resumed at the wave A had not rendered:\n{}",
        b.stderr()
    );
    assert_applied_once(&gitops, &id, &d);
    let metrics = client
        .get(format!("{}/metrics", b.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("nestor_deployments_taken_over_total 1\n"),
        "{metrics}"
    );
}

/// A `nestor.yaml` in `work` on one SQLite file, with the takeover
/// sections, holding the example catalog.
async fn sqlite_with_catalog(work: &Path, gitops: &Path) -> PathBuf {
    let storage = format!(
        "storage:\n  type: sqlite\n  sqlite:\n    path: \"{}\"\n",
        work.join("nestor.db").display()
    );
    let config = write_config_with(work, &format!("{storage}{}", takeover_sections(gitops)));
    sync_examples(work, &config).await;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_sqlite_replica_killed_mid_deployment_finishes_it_after_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let gitops = work.path().join("gitops");
    let config = sqlite_with_catalog(work.path(), &gitops).await;
    let client = client();
    let mut first = Replica::start("first", &config, &client).await;
    let id = deploy_web_app(&client, &first).await;
    until_between_waves(&client, &first, &id).await;
    first.process.child().kill().unwrap();
    first.process.child().wait().unwrap();

    let second = Replica::start("second", &config, &client).await;
    let (d, _) = until_finished(&client, &second, &id).await;
    assert_eq!(d["status"], "succeeded", "{d}\n{}", second.stderr());
    assert!(
        second
            .stderr()
            .contains("resuming deployment at wave 2 of 2"),
        "{}",
        second.stderr()
    );
    assert_applied_once(&gitops, &id, &d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_shutdown_lets_a_running_deployment_finish() {
    let work = tempfile::tempdir().unwrap();
    let gitops = work.path().join("gitops");
    let config = sqlite_with_catalog(work.path(), &gitops).await;
    let client = client();
    let mut server = Replica::start("server", &config, &client).await;
    let id = deploy_web_app(&client, &server).await;
    until_between_waves(&client, &server, &id).await;
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = server.process.child().try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}\n{}", server.stderr());

    // The run finished before the process ended: a new server finds it
    // done and resumes nothing.
    let after = Replica::start("after", &config, &client).await;
    let (status, d) = get(
        &client,
        &after,
        &format!("/api/v1/deployments/{id}"),
        "alpha",
    )
    .await;
    assert_eq!(
        (status, d["status"].as_str()),
        (200, Some("succeeded")),
        "{d}"
    );
    assert_applied_once(&gitops, &id, &d);
    assert!(!after.stderr().contains("resuming"), "{}", after.stderr());
}
