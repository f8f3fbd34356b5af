//! End to end in embedded mode, on real parts: the example catalog synced
//! into SQLite, the example compositions, the annotated example apps, the
//! bundled WebAssembly engines, and a GitOps repository checked with git2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// A folder with nestor.yaml (GitOps repo inside), the example apps
    /// copied in, the example catalog synced and the compositions published.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("nestor.yaml"),
            "gitops: {repo: ./gitops}\ndefaults: {team: alpha, environment: dev}\n",
        )
        .unwrap();
        copy_dir(&root().join("examples/apps"), &dir.path().join("apps"));
        let w = Workspace { dir };
        w.ok(&[
            "catalog",
            "sync",
            root().join("examples/catalog").to_str().unwrap(),
        ]);
        w.ok(&[
            "composition",
            "publish",
            root().join("examples/compositions").to_str().unwrap(),
        ]);
        w
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_nestor"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("NESTOR_SERVER")
            .env_remove("NESTOR_DATA_DIR")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "nestor {args:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn gitops(&self) -> git2::Repository {
        git2::Repository::open(self.dir.path().join("gitops")).unwrap()
    }

    fn file(&self, path: &str) -> Option<String> {
        let repo = self.gitops();
        let tree = repo.head().ok()?.peel_to_tree().ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        let blob = repo.find_blob(entry.id()).ok()?;
        let text = String::from_utf8_lossy(blob.content()).into_owned();
        Some(text)
    }

    /// Commits on the GitOps branch; 0 before the first apply creates
    /// the repository (a plan opens no repository).
    fn commit_count(&self) -> usize {
        let Ok(repo) = git2::Repository::open(self.dir.path().join("gitops")) else {
            return 0;
        };
        let mut walk = repo.revwalk().unwrap();
        walk.push_head().map(|_| walk.count()).unwrap_or(0)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn generate_plan_apply_change_rollback_promote() {
    let w = Workspace::new();
    let set = w.json(&["generate", "apps"]);
    let names: Vec<&str> = set["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["checkout", "storefront"],
        "names from the folder and from name="
    );
    assert_eq!(
        set["deployments"][0]["params"]["replicas"], 3,
        "annotation values are typed"
    );
    assert_eq!(set["deployments"][0]["source"], "checkout/main.go:3");
    let file = "apps/nestor.deploy.yaml";

    let plans = w.json(&["plan", file]);
    for p in plans.as_array().unwrap() {
        let added: Vec<&str> = p["diff"]["added"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(
            added,
            ["app", "cache", "database"],
            "the first plan adds everything"
        );
    }
    assert_eq!(w.commit_count(), 0, "plan applies nothing");
    // Plans show each resource's wave, controller and where its outputs
    // will be found (issue 13.7), in JSON and in the table.
    let database = &plans[0]["resources"][1];
    assert_eq!(
        (
            &database["name"],
            &database["wave"],
            &database["controller"]
        ),
        (&json!("database"), &json!(1), &json!("provider-terraform")),
        "{}",
        plans[0]["resources"]
    );
    let table = w.ok(&["plan", file]);
    for line in [
        "  wave 1: cache (helm) applied by helm (argo-cd child application)\n",
        "  wave 1: database (terraform) applied by provider-terraform\n",
        "      endpoint: Secret alpha--staging/checkout--database-outputs key endpoint\n",
        "  wave 2: app (crossplane) applied by crossplane\n",
    ] {
        assert!(table.contains(line), "{line}\n{table}");
    }
    assert_eq!(w.commit_count(), 0, "plan applies nothing");

    let applied = w.json(&["apply", file, "--yes"]);
    for d in applied.as_array().unwrap() {
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(d["revision"], 1);
    }
    assert_eq!(w.commit_count(), 2, "one commit per deployment applied");
    let tf: Value = serde_json::from_str(
        &w.file("alpha/staging/checkout/database/main.tf.json")
            .expect("terraform module"),
    )
    .unwrap();
    assert!(tf["module"].is_object(), "{tf}");
    assert!(
        w.file("alpha/staging/checkout/cache/values.yaml").is_some(),
        "helm values"
    );
    let repo = w.gitops();
    let tree = repo.head().unwrap().peel_to_tree().unwrap();
    assert!(
        tree.get_path(Path::new("alpha/staging/checkout/app"))
            .is_ok(),
        "the crossplane claim is committed"
    );
    drop(tree);
    let argo = w
        .file("argocd/alpha--staging.yaml")
        .expect("Argo CD Application");
    assert!(argo.contains("kind: Application") && argo.contains("path: alpha/staging"));

    // Change one param and plan again: only the database changes.
    let text = std::fs::read_to_string(w.dir.path().join(file)).unwrap();
    std::fs::write(
        w.dir.path().join(file),
        text.replacen("size: small", "size: large", 1),
    )
    .unwrap();
    let plans = w.json(&["plan", file]);
    let checkout = &plans.as_array().unwrap()[0];
    assert_eq!(checkout["diff"]["base_revision"], 1);
    let changed: Vec<&str> = checkout["diff"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        changed.contains(&"database") && checkout["diff"]["added"].as_array().unwrap().is_empty(),
        "{checkout}"
    );
    let storefront = &plans.as_array().unwrap()[1];
    assert!(
        storefront["diff"]["changed"].as_array().unwrap().is_empty(),
        "untouched deployments do not change"
    );
    let before = w
        .file("alpha/staging/checkout/database/main.tf.json")
        .unwrap();

    let applied = w.json(&["apply", file, "--yes"]);
    let checkout = &applied.as_array().unwrap()[0];
    assert_eq!(checkout["revision"], 2);
    assert!(w
        .file("alpha/staging/checkout/database/main.tf.json")
        .unwrap()
        .contains("db.r5.large"));

    let id = checkout["id"].as_str().unwrap();
    let rolled = w.json(&["rollback", id, "--to", "1"]);
    assert_eq!(rolled["revision"], 3);
    assert_eq!(
        w.file("alpha/staging/checkout/database/main.tf.json")
            .unwrap(),
        before,
        "revision 1's files are back"
    );
    let log = w.gitops();
    let head = log.head().unwrap().peel_to_commit().unwrap();
    assert!(
        head.message()
            .unwrap()
            .starts_with("nestor: alpha/staging/checkout revision 3"),
        "{:?}",
        head.message()
    );

    let promoted = w.json(&["promote", "staging", "production", "--name", "checkout"]);
    assert_eq!(promoted[0]["status"], "succeeded", "{promoted}");
    assert!(w.file("argocd/alpha--production.yaml").is_some());
    let prod = w
        .file("alpha/production/checkout/database/main.tf.json")
        .unwrap();
    assert!(
        prod.contains("db.t3.micro"),
        "production gets what succeeded last in staging (revision 3 = revision 1)"
    );

    let status = w.json(&["status", "--env", "staging"]);
    assert!(status.as_array().unwrap().len() >= 4);
    let dot = w.ok(&["graph", "--format", "dot"]);
    assert!(
        dot.starts_with("digraph nestor") && dot.contains("checkout/database"),
        "{dot}"
    );
}

#[test]
fn engines_render_and_bad_annotations() {
    let w = Workspace::new();
    let engines = w.json(&["engines", "list"]);
    let names: Vec<&str> = engines
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for e in ["crossplane", "helm", "pulumi", "terraform"] {
        assert!(names.contains(&e), "{names:?}");
    }
    let out = w.json(&[
        "render",
        "aws-rds-mysql:1.2.0",
        "--engine",
        "terraform",
        "--set",
        "instance_class=db.t3.micro",
        "--set",
        "allocated_storage=50",
    ]);
    assert_eq!(out["engine"], "terraform");
    assert_eq!(out["artifacts"][0]["path"], "main.tf.json");
    assert!(
        out["artifacts"][0]["content"]
            .as_str()
            .unwrap()
            .contains("\"allocated_storage\": 50"),
        "typed --set values"
    );
    let bad = w.run(&[
        "render",
        "aws-rds-mysql:1.2.0",
        "--set",
        "instance_class=m5",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("VALIDATION_FAILED"));

    std::fs::write(
        w.dir.path().join("apps/checkout/broken.go"),
        "package main\n\n// nestor:web-app size\n",
    )
    .unwrap();
    let out = w.run(&["generate", "apps"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checkout/broken.go:3: malformed annotation"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `generate` reads source files only, so a CI job that exports
/// `NESTOR_SERVER` for the other commands can still run it (nothing
/// listens on the address: nothing must be asked of it).
#[test]
fn generate_runs_with_a_server_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("examples/apps"), &dir.path().join("apps"));
    let out = Command::new(env!("CARGO_BIN_EXE_nestor"))
        .args(["generate", "apps", "--team", "alpha"])
        .current_dir(dir.path())
        .env("NESTOR_SERVER", "http://127.0.0.1:9")
        .env_remove("NESTOR_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(dir.path().join("apps/nestor.deploy.yaml")).unwrap();
    assert!(written.contains("composition: web-app"), "{written}");
}
