//! The GitOps repository as Argo CD sees it: names that keep teams apart,
//! the Application's include/exclude globs under Argo CD's own matching,
//! the AppProject, names too long to commit, and applies that change
//! nothing. Real git repositories (git2), the orchestrator over the memory
//! store with the in-process engines of the `orchestrator` module, and the
//! real Argo CD CRDs (tests/data/argocd, vendored) through the jsonschema
//! checker when it is installed.

use std::path::Path;

use nestor_core::*;
use serde_json::{json, Value};

use crate::orchestrator::{commits, env};

fn tree_files(repo: &Path) -> std::collections::BTreeMap<String, git2::Oid> {
    let repo = git2::Repository::open(repo).unwrap();
    let tree = repo.head().unwrap().peel_to_tree().unwrap();
    let mut out = std::collections::BTreeMap::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            out.insert(format!("{dir}{}", entry.name().unwrap()), entry.id());
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    out
}

fn read(repo: &Path, path: &str) -> Option<String> {
    let repo = git2::Repository::open(repo).unwrap();
    let tree = repo.head().ok()?.peel_to_tree().ok()?;
    let entry = tree.get_path(Path::new(path)).ok()?;
    let blob = repo.find_blob(entry.id()).ok()?;
    Some(String::from_utf8_lossy(blob.content()).into_owned())
}

fn yaml(repo: &Path, path: &str) -> Value {
    serde_yaml::from_str(&read(repo, path).unwrap_or_else(|| panic!("{path} is committed")))
        .unwrap()
}

fn request(team: &str, environment: &str, resources: Value) -> DeploymentRequest {
    serde_json::from_value(json!({
        "team": team, "environment": environment, "name": "checkout", "resources": resources
    }))
    .unwrap()
}

fn two_resources() -> Value {
    json!([
        {"name": "db", "catalog_ref": "database", "engine": "terraform", "config": {"size": "small"}},
        {"name": "cache", "catalog_ref": "cache", "engine": "helm"}
    ])
}

/// Argo CD's glob matching of `directory.include`/`exclude`, written from
/// gobwas/glob's documented syntax as Argo CD calls it
/// (reposerver/repository/repository.go: `glob.Match(exclude, relPath)`,
/// util/glob: `glob.Compile(pattern)` with no separators): `{a,b}` is any
/// of its alternatives, `*` and `**` match any run of characters — `/`
/// included, since no separator is given — `?` one character, `[...]` /
/// `[!...]` a class, `\` escapes; the whole path must match.
fn argo_glob(pattern: &str, path: &str) -> bool {
    expand(pattern).iter().any(|p| {
        let p: Vec<char> = p.chars().collect();
        let t: Vec<char> = path.chars().collect();
        wild(&p, &t)
    })
}

fn expand(pattern: &str) -> Vec<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let Some(open) = chars.iter().position(|c| *c == '{') else {
        return vec![pattern.to_string()];
    };
    let (mut depth, mut close, mut cuts) = (0, open, vec![open]);
    for (i, c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = i;
                    break;
                }
            }
            ',' if depth == 1 => cuts.push(i),
            _ => {}
        }
    }
    cuts.push(close);
    let head: String = chars[..open].iter().collect();
    let tail: String = chars[close + 1..].iter().collect();
    cuts.windows(2)
        .flat_map(|w| {
            let alt: String = chars[w[0] + 1..w[1]].iter().collect();
            expand(&format!("{head}{alt}{tail}"))
        })
        .collect()
}

fn wild(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => {
            let rest = if p.get(1) == Some(&'*') {
                &p[2..]
            } else {
                &p[1..]
            };
            (0..=t.len()).any(|i| wild(rest, &t[i..]))
        }
        Some('?') => !t.is_empty() && wild(&p[1..], &t[1..]),
        Some('[') => {
            let Some(end) = p.iter().position(|c| *c == ']') else {
                return false;
            };
            let (negated, class) = match p.get(1) {
                Some('!') => (true, &p[2..end]),
                _ => (false, &p[1..end]),
            };
            let Some(c) = t.first() else { return false };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != negated && wild(&p[end + 1..], &t[1..])
        }
        Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && wild(&p[2..], &t[1..]),
        Some(c) => t.first() == Some(c) && wild(&p[1..], &t[1..]),
    }
}

#[test]
fn the_glob_matcher_agrees_with_argo_cds_own_cases() {
    // reposerver/repository/repository_test.go TestFindResources, over
    // testdata/app-include-exclude: deployment.yaml, subdir/deploymentSub.yaml.
    let files = ["deployment.yaml", "subdir/deploymentSub.yaml"];
    let hits = |p: &str| files.iter().filter(|f| argo_glob(p, f)).count();
    assert_eq!(hits("subdir/deploymentSub.yaml"), 1);
    assert_eq!(hits("*.yaml"), 2, "`*` crosses `/` without separators");
    assert_eq!(hits("**/*.yaml"), 1, "`**/` needs a `/`");
    assert_eq!(hits("nothing.yaml"), 0);
    // getPotentiallyValidManifestFile cases: `excluded.*`, brace lists.
    assert!(argo_glob("excluded.*", "excluded.json"));
    assert!(argo_glob("{*.yaml.sealed,*.yaml}", "secret.yaml.sealed"));
    assert!(!argo_glob("*.yaml", "secret.yaml.sealed"));
    // The exclude Nestor used to write matched no nested file (issue 10.10).
    let old = "{values.yaml,Pulumi.yaml,Pulumi.*.yaml}";
    assert!(!argo_glob(old, "checkout/db/Pulumi.yaml"));
    assert!(!argo_glob(old, "checkout/cache/values.yaml"));
}

#[tokio::test]
async fn the_application_syncs_every_manifest_and_leaves_out_the_rest() {
    let e = env().await;
    let d = e
        .orchestrator
        .apply(&request("alpha", "dev", two_resources()), None)
        .await
        .unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    let app = yaml(e.repo.path(), "argocd/alpha--dev.yaml");
    let dir = &app["spec"]["source"]["directory"];
    let (include, exclude) = (
        dir["include"].as_str().unwrap(),
        dir["exclude"].as_str().unwrap(),
    );
    assert_eq!(dir["recurse"], true);
    let synced = |path: &str| !argo_glob(exclude, path) && argo_glob(include, path);
    // Paths relative to the Application's path (alpha/dev), as Argo CD
    // matches them, for every file kind the bundled engines write.
    for file in [
        "application.yaml",
        "workspace.yaml",
        "program.yaml",
        "stack.yaml",
        "postgresqlinstance.yaml",
        "my-values.yaml",
        "values.yaml",
        "Pulumi.yaml",
        "Pulumi.alpha--dev.yaml",
        "main.tf.json",
        "README.md",
        "templates/values.yaml",
    ] {
        let path = format!("checkout/db/{file}");
        assert_eq!(
            synced(&path),
            is_manifest_file(file),
            "{path}: what Argo CD syncs must be what the core calls a manifest"
        );
    }
    assert!(synced("checkout/db/workspace.yaml"));
    assert!(!synced("checkout/db/Pulumi.yaml") && !synced("checkout/cache/values.yaml"));
}

#[tokio::test]
async fn teams_whose_dashed_names_meet_never_touch_each_other() {
    let e = env().await;
    let a = e
        .orchestrator
        .apply(&request("alpha", "x-dev", two_resources()), None)
        .await
        .unwrap();
    assert_eq!(a.status, DeploymentStatus::Succeeded, "{:?}", a.error);
    let before = tree_files(e.repo.path());
    let b = e
        .orchestrator
        .apply(&request("alpha-x", "dev", two_resources()), None)
        .await
        .unwrap();
    assert_eq!(b.status, DeploymentStatus::Succeeded, "{:?}", b.error);
    let after = tree_files(e.repo.path());
    for (path, id) in &before {
        assert_eq!(
            after.get(path),
            Some(id),
            "{path} was touched by team alpha-x"
        );
    }
    let added: Vec<&String> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(
        added.iter().all(|p| p.starts_with("alpha-x/dev/")
            || *p == "argocd/alpha-x--dev.yaml"
            || *p == "argocd/projects/alpha-x.yaml"),
        "{added:?}"
    );

    let app_a = yaml(e.repo.path(), "argocd/alpha--x-dev.yaml");
    let app_b = yaml(e.repo.path(), "argocd/alpha-x--dev.yaml");
    assert_ne!(app_a["metadata"]["name"], app_b["metadata"]["name"]);
    let ns_a = app_a["spec"]["destination"]["namespace"].as_str().unwrap();
    let ns_b = app_b["spec"]["destination"]["namespace"].as_str().unwrap();
    assert_eq!((ns_a, ns_b), ("alpha--x-dev", "alpha-x--dev"));
    assert_eq!(app_a["spec"]["project"], "nestor-alpha");
    assert_eq!(app_b["spec"]["project"], "nestor-alpha-x");

    // Each AppProject admits only its team's namespaces, under Argo CD's
    // glob matching of destinations.
    for (team, own, other) in [("alpha", ns_a, ns_b), ("alpha-x", ns_b, ns_a)] {
        let project = yaml(e.repo.path(), &format!("argocd/projects/{team}.yaml"));
        assert_eq!(project["metadata"]["name"], format!("nestor-{team}"));
        let destinations = project["spec"]["destinations"].as_array().unwrap();
        let admits = |ns: &str| {
            destinations
                .iter()
                .any(|d| argo_glob(d["namespace"].as_str().unwrap(), ns))
        };
        assert!(admits(own), "{team} reaches {own}");
        assert!(!admits(other), "{team} must not reach {other}");
        assert!(!admits("argocd") && !admits("kube-system"));
        let allowed = project["spec"]["clusterResourceWhitelist"]
            .as_array()
            .unwrap();
        assert!(allowed
            .iter()
            .all(|r| argo_glob(r["name"].as_str().unwrap(), own)
                && !argo_glob(r["name"].as_str().unwrap(), other)));
    }
}

#[tokio::test]
async fn names_too_long_for_a_cluster_or_a_checkout_are_refused_before_anything_renders() {
    let e = env().await;
    let long = "r".repeat(300);
    let err = e
        .orchestrator
        .apply(
            &request(
                "alpha",
                "dev",
                json!([{"name": long, "catalog_ref": "cache", "engine": "helm"}]),
            ),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed, "{err}");
    assert_eq!(err.field_errors()[0].field, "resources[0].name", "{err}");
    assert!(err.to_string().contains("300 characters"), "{err}");
    let err = e
        .orchestrator
        .plan(&request("al--pha", "dev", two_resources()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed, "{err}");
    assert!(commits(e.repo.path()).is_empty(), "nothing is committed");
    assert!(e
        .store
        .list_deployments(&DeploymentFilter::default())
        .await
        .unwrap()
        .is_empty());

    let composition = format!(
        "apiVersion: composer.nestor.io/v1\nkind: Composition\nmetadata: {{name: long, team: alpha}}\nspec:\n  resources:\n    - {{name: {long}, type: cache}}\n"
    );
    // Refused as the composition is read, before it can be published.
    let err = parse_composition_yaml(&composition).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed);
    assert_eq!(err.field_errors()[0].field, "spec.resources[0].name");
}

#[tokio::test]
async fn an_apply_that_changes_nothing_says_so_and_commits_nothing() {
    let e = env().await;
    let first = e
        .orchestrator
        .apply(&request("alpha", "dev", two_resources()), None)
        .await
        .unwrap();
    assert!(!first.unchanged);
    let cluster = first.cluster.clone().unwrap();
    assert_eq!(cluster.state, ClusterState::NotObserved);
    assert!(
        cluster.message.contains("committed at") && cluster.message.contains("not known"),
        "{}",
        cluster.message
    );
    let again = e
        .orchestrator
        .apply(&request("alpha", "dev", two_resources()), None)
        .await
        .unwrap();
    assert_eq!(
        (again.revision, again.status, again.unchanged),
        (2, DeploymentStatus::Succeeded, true)
    );
    assert_eq!(
        again.commit, first.commit,
        "the commit already holding the files"
    );
    assert!(again.cluster.unwrap().message.starts_with("no changes"));
    assert_eq!(commits(e.repo.path()).len(), 1, "no empty commit");

    let changed = e
        .orchestrator
        .apply(
            &request("alpha", "dev", json!([{"name": "db", "catalog_ref": "database", "engine": "terraform", "config": {"size": "large"}}])),
            None,
        )
        .await
        .unwrap();
    assert!(!changed.unchanged);
    assert_eq!(commits(e.repo.path()).len(), 2);
    let back = e.orchestrator.rollback(&changed.id, Some(2)).await.unwrap();
    assert!(!back.unchanged, "a rollback to other files commits");
    assert_eq!(commits(e.repo.path()).len(), 3);
}

/// The vendored Argo CD CRDs and the shared checker (nestor-engines'
/// tests/data/checkers/check.py, strict like `kubectl --validate=strict`).
#[tokio::test]
async fn argo_cd_objects_validate_against_the_real_crds() {
    let Some(python) = checker_python() else {
        return;
    };
    let e = env().await;
    e.orchestrator
        .apply(&request("alpha", "dev", two_resources()), None)
        .await
        .unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/argocd");
    let check = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nestor-engines/tests/data/checkers/check.py");
    for (file, crd) in [
        ("argocd/alpha--dev.yaml", "application-crd.yaml"),
        ("argocd/projects/alpha.yaml", "appproject-crd.yaml"),
    ] {
        let out = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(out.path(), read(e.repo.path(), file).unwrap()).unwrap();
        let result = std::process::Command::new(&python)
            .arg(&check)
            .args([
                "crd",
                data.join(crd).to_str().unwrap(),
                out.path().to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "{file}: {}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
}

/// The checkers' python, or `None` (skipped, said on stderr) when they are
/// not installed; `.ci/engine-checkers.sh` installs them and then requires them.
fn checker_python() -> Option<std::path::PathBuf> {
    let python = std::env::var_os("NESTOR_PYTHON")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/nestor/tools/venv/bin/python"))
        })?;
    let ready = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", "import jsonschema, yaml"])
            .status()
            .is_ok_and(|s| s.success());
    if ready {
        return Some(python);
    }
    assert!(
        std::env::var("NESTOR_REQUIRE_CHECKERS").as_deref() != Ok("1"),
        "the jsonschema checker is required but {} cannot import it",
        python.display()
    );
    eprintln!("skipped: the jsonschema checker is not installed (.ci/engine-checkers.sh)");
    None
}
