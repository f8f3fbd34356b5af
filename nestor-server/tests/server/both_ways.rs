//! Every CLI command that works both ways, run twice with the same
//! arguments: embedded on a data folder of its own, and with `--server`
//! against a real `nestor serve` (a subprocess on 127.0.0.1) over another
//! data folder that goes through the same history — the same sync, the
//! same publishes, the same applies, in the same order. Stdout, stderr and
//! the exit code must be equal byte for byte, errors included.
//!
//! Only what must differ between two stores is normalised (see
//! [`normal`]): the time each one recorded, how long a sync took, the
//! GitOps commits each one made (their hashes include commit times), and
//! who an event names as its writer (`cli` embedded, `api:` and the
//! token's name on a server). Anything else that differs is a bug in one of the two ways.
//!
//! Not here, because they are local by nature or refuse `--server`:
//! `serve`, `generate`, `migrate` (asserted refused below), `engines
//! inspect`, `schema`, `completions`, `man`. `catalog validate` and
//! `catalog diff` read only files and ignore `--server`; they are run both
//! ways anyway, to show that they do. `composition list --all` has no
//! server route (the server lists one team's compositions at a time); its
//! refusal is asserted below.

use std::path::PathBuf;
use std::sync::OnceLock;

use regex::Regex;

use super::remote::{nestor, Served};
use super::root;

/// One run: exit code, stdout, stderr.
type Run = (i32, String, String);

/// The embedded side's folder and the server that has the same history.
struct Both {
    served: Served,
    /// The embedded CLI's working folder: its `nestor.yaml`, its store
    /// (`.nestor`) and its GitOps repository.
    local: tempfile::TempDir,
    /// The files both ways read: definitions, compositions, deployment files.
    files: tempfile::TempDir,
}

impl Both {
    /// `nestor serve` with the configuration the embedded side reads, and
    /// the embedded store synced like the server's start-up sync.
    async fn start() -> Both {
        let local = tempfile::tempdir().unwrap();
        let config = local.path().join("nestor.yaml");
        std::fs::write(
            &config,
            format!(
                "catalog:\n  sources:\n    - name: examples\n      url: {}\ndefaults:\n  team: alpha\n  environment: staging\n",
                root().join("examples/catalog").display()
            ),
        )
        .unwrap();
        let served = Served::start(&["--config", config.to_str().unwrap()]);
        let both = Both {
            served,
            local,
            files: tempfile::tempdir().unwrap(),
        };
        // The server synced `examples` when it started; so does the
        // embedded store, once, before anything is compared.
        let first = nestor(both.local.path(), &["catalog", "sync", "examples"]).await;
        assert_eq!(first.0, 0, "{}", first.2);
        both
    }

    /// A file of the shared ones, written from `text`.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.files.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Runs `args` embedded and against the server; both runs, normalised.
    async fn both(&self, args: &[&str]) -> (Run, Run) {
        let embedded = nestor(self.local.path(), args).await;
        let remote = nestor(self.local.path(), &self.served.args(args)).await;
        (normal_run(embedded), normal_run(remote))
    }

    /// Runs `args` both ways and asserts the same exit code, stdout and
    /// stderr; answers the (normalised) run.
    async fn same(&self, args: &[&str]) -> Run {
        let (embedded, remote) = self.both(args).await;
        assert!(
            remote == embedded,
            "`nestor {}` differs with --server and embedded:\n{}",
            args.join(" "),
            difference(&remote, &embedded)
        );
        embedded
    }

    /// [`Both::same`], and the command succeeds.
    async fn ok(&self, args: &[&str]) -> Run {
        let run = self.same(args).await;
        assert_eq!(run.0, 0, "`nestor {}`: {}", args.join(" "), run.2);
        run
    }

    /// [`Both::same`], and the command fails with `code` first on stderr.
    async fn fails(&self, args: &[&str], code: &str) -> Run {
        let run = self.same(args).await;
        assert_eq!(run.0, 1, "`nestor {}`: {}", args.join(" "), run.1);
        let prefix = format!("error[{code}]");
        assert!(
            run.2.starts_with(&prefix),
            "`nestor {}` must fail with {code}: {}",
            args.join(" "),
            run.2
        );
        run
    }
}

/// The first line where two runs part, for the failure message.
fn difference(remote: &Run, embedded: &Run) -> String {
    if remote.0 != embedded.0 {
        return format!(
            "exit code {} with --server, {} embedded",
            remote.0, embedded.0
        );
    }
    for (stream, r, e) in [
        ("stdout", &remote.1, &embedded.1),
        ("stderr", &remote.2, &embedded.2),
    ] {
        if r == e {
            continue;
        }
        let (rl, el): (Vec<&str>, Vec<&str>) = (r.lines().collect(), e.lines().collect());
        let at = (0..rl.len().max(el.len()))
            .find(|&i| rl.get(i) != el.get(i))
            .unwrap_or(0);
        return format!(
            "{stream} line {}:\n  --server: {:?}\n  embedded: {:?}",
            at + 1,
            rl.get(at),
            el.get(at)
        );
    }
    String::new()
}

fn normal_run((code, out, err): Run) -> Run {
    (code, normal(&out), normal(&err))
}

/// `text` with what must differ between two stores replaced by a marker:
/// RFC 3339 times and Unix times in JSON and YAML (`*_at`, `since`,
/// `timestamp`: each store records its own
/// clock), a sync's duration, GitOps commit hashes (each store commits at
/// its own time), and an event's writer (`cli` embedded, `api:dev` — the
/// token's name — on the server).
fn normal(text: &str) -> String {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>"),
            (
                r#""(\w+_at|timestamp|duration_ms|time|since)": ?-?\d+"#,
                r#""$1": <n>"#,
            ),
            (r"\b(\w+_at|timestamp|duration_ms|since): -?\d+", "$1: <n>"),
            (r"in \d+ ms", "in <n> ms"),
            (r"\b[0-9a-f]{40}\b", "<commit>"),
            (
                r"(commit |commit: |committed at )[0-9a-f]{7,12}\b",
                "${1}<commit>",
            ),
            (r"(?m)  (cli|api:dev)$", "  <writer>"),
            (r#""source": ?"(cli|api:dev)""#, r#""source": "<writer>""#),
        ]
        .into_iter()
        .map(|(pattern, with)| (Regex::new(pattern).unwrap(), with))
        .collect()
    });
    let mut out = text.to_string();
    for (pattern, with) in rules {
        out = pattern.replace_all(&out, *with).into_owned();
    }
    out
}

/// The example definition the test's own files are made from.
fn queue(name: &str, version: &str) -> String {
    let path = root().join("examples/catalog/resources/aws/aws-sqs-queue/1.1.0.yaml");
    std::fs::read_to_string(path)
        .unwrap()
        .replace("name: aws-sqs-queue", &format!("name: {name}"))
        .replace("version: \"1.1.0\"", &format!("version: \"{version}\""))
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_prints_the_same_embedded_and_against_a_server() {
    let b = Both::start().await;
    catalog(&b).await;
    compositions(&b).await;
    deployments(&b).await;
    engines_render_and_events(&b).await;
    refusals(&b).await;
}

/// Sync, browse, publish (with every kind of refusal), yank, validate, diff.
async fn catalog(b: &Both) {
    let sync = b.ok(&["catalog", "sync", "examples"]).await;
    assert!(sync.1.starts_with("synced examples"), "{}", sync.1);
    b.ok(&["-o", "json", "catalog", "sync", "examples"]).await;
    b.fails(&["catalog", "sync", "nope"], "NOT_FOUND").await;
    for args in [
        vec!["catalog", "list"],
        vec!["catalog", "list", "--provider", "aws", "--limit", "3"],
        vec!["-o", "json", "catalog", "list", "--limit", "2"],
        vec!["-o", "yaml", "catalog", "list", "--category", "database"],
        vec!["catalog", "list", "--label", "tier=storage"],
        vec!["catalog", "get", "aws-rds-mysql"],
        vec!["catalog", "get", "aws-rds-mysql:^1.1"],
        vec!["catalog", "get", "aws-rds-mysql:1.0.0"],
        vec!["-o", "json", "catalog", "get", "vpc-setup"],
        vec!["catalog", "versions", "aws-rds-mysql"],
        vec!["-o", "json", "catalog", "versions", "k8s-deployment"],
        vec!["catalog", "search", "redis"],
        vec![
            "catalog",
            "search",
            "mysql",
            "--provider",
            "aws",
            "--limit",
            "2",
        ],
    ] {
        b.ok(&args).await;
    }
    b.fails(&["catalog", "get", "nope"], "RESOURCE_NOT_FOUND")
        .await;
    b.fails(
        &["catalog", "get", "aws-rds-mysql:9.9.9"],
        "VERSION_NOT_FOUND",
    )
    .await;
    b.fails(&["catalog", "get", "Not A Name!"], "BAD_REQUEST")
        .await;
    b.fails(&["catalog", "versions", "nope"], "RESOURCE_NOT_FOUND")
        .await;
    b.fails(&["catalog", "list", "--limit", "0"], "BAD_REQUEST")
        .await;

    let good = b.file("good/queue.yaml", &queue("both-ways-queue", "1.0.0"));
    let created = b.ok(&["catalog", "publish", &good]).await;
    assert!(created.1.contains("created"), "{}", created.1);
    let unchanged = b.ok(&["-o", "json", "catalog", "publish", &good]).await;
    assert!(unchanged.1.contains("unchanged"), "{}", unchanged.1);

    // Refusals are reported per definition; the command fails.
    let breaking = b.file(
        "bad/breaking.yaml",
        &queue("both-ways-queue", "1.0.1").replace("provider: aws", "provider: gcp"),
    );
    let immutable = b.file(
        "bad/immutable.yaml",
        &queue("both-ways-queue", "1.0.0").replace("Encrypted AWS SQS", "Another SQS"),
    );
    let dependency = b.file(
        "bad/dependency.yaml",
        &queue("both-ways-dependent", "1.0.0").replace(
            "  dependencies: []",
            "  dependencies:\n    - name: no-such-definition\n      version: \"^1\"",
        ),
    );
    let invalid = b.file(
        "bad/invalid.yaml",
        &queue("both-ways-invalid", "1.0.0").replace("required_inputs:", "requried_inputs:"),
    );
    for (file, code) in [
        (&breaking, "BREAKING_CHANGE"),
        (&immutable, "VERSION_IMMUTABLE"),
        (&dependency, "DEPENDENCY_NOT_FOUND"),
    ] {
        let refused = b.same(&["catalog", "publish", file]).await;
        assert_eq!(refused.0, 1, "{file}: {}", refused.1);
        assert!(refused.1.contains(code), "{file}: {}", refused.1);
        b.same(&["-o", "json", "catalog", "publish", file]).await;
    }
    let refused = b.same(&["catalog", "publish", &invalid]).await;
    assert_eq!(refused.0, 1);
    assert!(refused.1.contains("requried_inputs"), "{}", refused.1);
    // A folder: the good one is unchanged, each bad one refused.
    let folder = path(b.files.path().join("bad"));
    b.same(&["catalog", "publish", &folder, &good]).await;
    let nothing = b
        .fails(&["catalog", "publish", "/no/such/file.yaml"], "BAD_REQUEST")
        .await;
    assert!(nothing.2.contains("no such file"), "{}", nothing.2);

    for args in [
        vec!["catalog", "yank", "both-ways-queue", "1.0.0"],
        vec!["catalog", "yank", "both-ways-queue", "1.0.0"],
        vec!["catalog", "unyank", "both-ways-queue", "1.0.0"],
        vec!["catalog", "yank", "--undo", "both-ways-queue", "1.0.0"],
        vec!["-o", "json", "catalog", "yank", "both-ways-queue", "1.0.0"],
        vec!["catalog", "unyank", "both-ways-queue", "1.0.0"],
    ] {
        b.ok(&args).await;
    }
    b.fails(
        &["catalog", "yank", "both-ways-queue", "9.0.0"],
        "VERSION_NOT_FOUND",
    )
    .await;
    b.fails(
        &["catalog", "yank", "both-ways-queue", "one"],
        "BAD_REQUEST",
    )
    .await;

    // Local by nature: the same files, the same verdicts.
    let examples = path(root().join("examples/catalog"));
    b.ok(&["catalog", "validate", &examples]).await;
    let validated = b.same(&["catalog", "validate", &folder, &good]).await;
    assert_eq!(validated.0, 1);
    b.same(&["-o", "json", "catalog", "validate", &folder])
        .await;
    let mysql = root().join("examples/catalog/resources/aws/aws-rds-mysql");
    b.ok(&[
        "catalog",
        "diff",
        &path(mysql.join("1.0.0.yaml")),
        &path(mysql.join("1.1.0.yaml")),
    ])
    .await;
    let too_small = b.same(&["catalog", "diff", &good, &breaking]).await;
    assert_eq!(too_small.0, 1, "{}", too_small.1);
}

/// Validate, publish, list and get team compositions.
async fn compositions(b: &Both) {
    let examples = path(root().join("examples/compositions"));
    let valid = b.ok(&["composition", "validate", &examples]).await;
    assert!(valid.1.contains("valid"), "{}", valid.1);
    b.ok(&["-o", "json", "composition", "validate", &examples])
        .await;
    let web_app =
        std::fs::read_to_string(root().join("examples/compositions/alpha/web-app.yaml")).unwrap();
    let broken = b.file(
        "compositions/broken.yaml",
        &web_app
            .replace("name: web-app", "name: broken-app")
            .replace("aws-rds-mysql:^1.2", "aws-rds-mysql:^7"),
    );
    let refused = b.same(&["composition", "validate", &broken]).await;
    assert_eq!(refused.0, 1, "{}", refused.1);
    let created = b.ok(&["composition", "publish", &examples]).await;
    assert!(created.1.contains("created"), "{}", created.1);
    b.ok(&["composition", "publish", &examples]).await;
    b.same(&["composition", "publish", &broken]).await;
    for args in [
        vec!["composition", "list"],
        vec!["--team", "beta", "composition", "list"],
        vec!["-o", "json", "composition", "list"],
        vec!["composition", "get", "web-app"],
        vec!["composition", "get", "web-app:^1"],
        vec!["-o", "json", "composition", "get", "web-app:1.0.0"],
    ] {
        b.ok(&args).await;
    }
    b.fails(&["composition", "get", "nope"], "COMPOSITION_NOT_FOUND")
        .await;
    b.fails(
        &["composition", "get", "web-app:^9"],
        "COMPOSITION_NOT_FOUND",
    )
    .await;
}

/// Plan, apply, status, logs, drift, rollback, promote, graph.
async fn deployments(b: &Both) {
    let file = b.file(
        "deploy/nestor.deploy.yaml",
        "apiVersion: deploy.nestor.io/v1\nkind: DeploymentSet\ndeployments:\n  - team: alpha\n    environment: staging\n    name: checkout\n    composition: web-app\n    composition_version: \"*\"\n    params: {size: small, image: \"registry.example.com/checkout:1.0.0\"}\n",
    );
    let bad = b.file(
        "deploy/bad.yaml",
        "apiVersion: deploy.nestor.io/v1\nkind: DeploymentSet\ndeployments:\n  - team: alpha\n    environment: staging\n    name: checkout\n    compositon: web-app\n",
    );
    let unknown = b.file(
        "deploy/unknown.yaml",
        "apiVersion: deploy.nestor.io/v1\nkind: DeploymentSet\ndeployments:\n  - team: alpha\n    environment: staging\n    name: shop\n    composition: no-such-composition\n",
    );
    let plan = b.ok(&["plan", &file]).await;
    assert!(plan.1.contains("alpha/staging/checkout"), "{}", plan.1);
    b.ok(&["-o", "json", "plan", &file]).await;
    b.ok(&["plan", &file, "--env", "qa"]).await;
    b.fails(&["plan", &bad], "BAD_REQUEST").await;
    b.fails(&["plan", &unknown], "COMPOSITION_NOT_FOUND").await;
    b.fails(&["plan", "/no/such/nestor.deploy.yaml"], "BAD_REQUEST")
        .await;

    // Off a terminal without --yes nothing is applied, either way.
    let refused = b.same(&["apply", &file]).await;
    assert!(refused.2.contains("--yes"), "{}", refused.2);
    let applied = b.ok(&["apply", &file, "--yes", "--wait"]).await;
    assert!(
        applied.1.contains("alpha.staging.checkout.r1")
            && applied.1.contains("revision 1: succeeded"),
        "{}",
        applied.1
    );
    assert!(
        ["database", "cache", "app"]
            .iter()
            .all(|r| applied.2.contains(&format!("  {r} "))),
        "each resource's progress is printed: {}",
        applied.2
    );
    b.ok(&["-q", "apply", &file, "--yes", "--wait"]).await;
    b.ok(&["-o", "json", "apply", &file, "--yes", "--wait"])
        .await;

    for args in [
        vec!["status"],
        vec!["status", "--env", "staging"],
        vec!["status", "alpha.staging.checkout.r1"],
        vec!["-o", "json", "status", "alpha.staging.checkout.r2"],
        vec!["status", "alpha.staging.checkout.r1", "--logs"],
        vec!["drift", "alpha.staging.checkout.r3"],
    ] {
        b.ok(&args).await;
    }
    b.fails(&["status", "nope"], "DEPLOYMENT_NOT_FOUND").await;
    b.fails(&["status", "nope", "--logs"], "DEPLOYMENT_NOT_FOUND")
        .await;

    let rolled = b
        .ok(&["rollback", "alpha.staging.checkout.r3", "--to", "1"])
        .await;
    assert!(rolled.1.contains("revision 4"), "{}", rolled.1);
    b.ok(&["rollback", "alpha.staging.checkout.r4"]).await;
    b.fails(&["rollback", "alpha.staging.checkout.r1"], "BAD_REQUEST")
        .await;
    b.fails(
        &["rollback", "alpha.staging.checkout.r5", "--to", "99"],
        "BAD_REQUEST",
    )
    .await;
    b.fails(&["rollback", "nope"], "DEPLOYMENT_NOT_FOUND").await;

    b.ok(&["promote", "staging", "prod", "--name", "checkout"])
        .await;
    b.ok(&["promote", "staging", "qa"]).await;
    b.fails(&["promote", "nowhere", "prod"], "DEPLOYMENT_NOT_FOUND")
        .await;
    for args in [
        vec!["graph"],
        vec!["graph", "--format", "dot"],
        vec!["-o", "json", "graph", "--env", "prod"],
        vec!["--team", "beta", "graph"],
    ] {
        b.ok(&args).await;
    }
    b.fails(&["graph", "--format", "svg"], "BAD_REQUEST").await;
}

/// Engines, rendering one resource, and the event log.
async fn engines_render_and_events(b: &Both) {
    b.ok(&["engines", "list"]).await;
    b.ok(&["-o", "json", "engines", "list"]).await;
    let rendered = b
        .ok(&[
            "render",
            "aws-s3-bucket",
            "--set",
            "bucket_name=both-ways-logs",
        ])
        .await;
    assert!(rendered.1.contains("both-ways-logs"), "{}", rendered.1);
    b.ok(&[
        "-o",
        "json",
        "render",
        "aws-s3-bucket:1.4.0",
        "--engine",
        "crossplane",
        "--set",
        "bucket_name=both-ways-logs",
        "--set",
        "versioning_enabled=false",
    ])
    .await;
    b.ok(&[
        "--team",
        "beta",
        "render",
        "k8s-namespace",
        "--set",
        "name=shop",
    ])
    .await;
    b.fails(&["render", "aws-s3-bucket"], "VALIDATION_FAILED")
        .await;
    b.fails(&["render", "nope"], "VALIDATION_FAILED").await;
    b.fails(
        &[
            "render",
            "aws-s3-bucket",
            "--engine",
            "pulumi",
            "--set",
            "bucket_name=x1y",
        ],
        "VALIDATION_FAILED",
    )
    .await;
    b.fails(
        &["render", "aws-s3-bucket", "--set", "novalue"],
        "VALIDATION_FAILED",
    )
    .await;

    for args in [
        vec!["events", "--since", "0", "--count", "5"],
        vec![
            "events",
            "--since",
            "0",
            "--types",
            "deployment.*",
            "--count",
            "4",
        ],
        vec![
            "events",
            "--since",
            "0",
            "--filter",
            "name:both-ways-queue",
            "--count",
            "3",
        ],
        vec![
            "-o",
            "json",
            "events",
            "--since",
            "0",
            "--types",
            "resource.yanked",
            "--count",
            "1",
        ],
    ] {
        b.ok(&args).await;
    }
    b.fails(&["events", "--filter", "colour:blue"], "BAD_REQUEST")
        .await;
}

/// What one way refuses, it says with a code.
async fn refusals(b: &Both) {
    let (embedded, remote) = b.both(&["composition", "list", "--all"]).await;
    assert_eq!(embedded.0, 0, "{}", embedded.2);
    assert_eq!(remote.0, 1);
    assert!(
        remote.2.starts_with("error[BAD_REQUEST]") && remote.2.contains("--team"),
        "{}",
        remote.2
    );
    let (_, migrate) = b.both(&["migrate"]).await;
    assert!(migrate.2.starts_with("error[BAD_REQUEST]"), "{}", migrate.2);
    let (_, drift) = b.both(&["drift"]).await;
    assert!(drift.2.starts_with("error[BAD_REQUEST]"), "{}", drift.2);
}
