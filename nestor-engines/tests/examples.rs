//! The example compositions deployed end to end, and the GitOps repository
//! checked as a cluster would read it.
//!
//! The example catalog (`examples/catalog/resources`) is synced into a real
//! SQLite file, the example compositions (`examples/compositions`) are
//! published, and alpha/web-app, beta/data-pipeline and gamma/platform-stack
//! (all four bundled engines, outputs crossing engines) are applied through
//! the `Nestor` facade with the real bundled components into a real git
//! repository. Then, on the committed tree:
//! - every object the team Applications sync validates against its real
//!   schema: Workspace (provider-terraform), Program and Stack (Pulumi
//!   operator), Application and AppProject (Argo CD 3.6.0), the Crossplane
//!   claims against the CRDs Crossplane generates from `examples/crossplane`'s
//!   XRDs, built-in kinds with `kubernetes-validate --strict`; a kind with no
//!   schema fails;
//! - every object's `argocd.argoproj.io/sync-wave` is its resource's wave;
//! - no file but a Terraform JSON module contains `${module.`;
//! - every `secretKeyRef` names a Secret and key some producer in the
//!   repository writes, in the namespace the consumer reads it from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use nestor_core::{Deployment, DeploymentRequest, Nestor, SourceConfig};
use nestor_storage::{FolderSource, GitOpsConfig, GitOpsExecutor, SqliteStore};
use serde_json::{json, Value};

use crate::support::{checkers, data_dir, registry};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Env {
    nestor: Nestor,
    repo: tempfile::TempDir,
    _db: tempfile::TempDir,
}

/// The example catalog synced into SQLite, the example compositions
/// published, a GitOps repository.
async fn env() -> Env {
    let db = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(db.path().join("nestor.db")).unwrap());
    let repo = tempfile::tempdir().unwrap();
    let executor = GitOpsExecutor::open(GitOpsConfig::local(repo.path())).unwrap();
    let nestor = Nestor::builder()
        .store(store)
        .engines(Arc::new(registry().clone()))
        .executor(Arc::new(executor))
        .build()
        .unwrap();
    let source: SourceConfig = serde_json::from_value(json!({
        "name": "examples",
        "url": root().join("examples/catalog/resources").to_str().unwrap(),
    }))
    .unwrap();
    let report = nestor.sync(&FolderSource::new(source)).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for team in ["alpha", "beta", "gamma"] {
        let folder = root().join("examples/compositions").join(team);
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let composition = nestor_core::parse_composition_yaml(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            nestor
                .publish_composition(composition, None, "test")
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    Env {
        nestor,
        repo,
        _db: db,
    }
}

async fn deploy(e: &Env, team: &str, composition: &str, params: Value) -> Deployment {
    let request: DeploymentRequest = serde_json::from_value(json!({
        "team": team, "environment": "dev", "name": composition,
        "composition": composition, "params": params,
    }))
    .unwrap();
    let deployment = e.nestor.apply(&request, None).await.unwrap();
    assert_eq!(
        deployment.status.as_str(),
        "succeeded",
        "{team}/{composition}: {:?}",
        deployment.error
    );
    deployment
}

/// Every file of the repository's head: path → content.
fn committed(repo: &Path) -> BTreeMap<String, String> {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["ls-tree", "-r", "--name-only", "HEAD"])
        .lines()
        .map(|path| (path.to_string(), git(&["show", &format!("HEAD:{path}")])))
        .collect()
}

/// Whether the team Application applies the file (the core's rule, which
/// its include/exclude globs are tested against).
fn is_manifest(path: &str) -> bool {
    nestor_core::is_manifest_file(path)
}

fn objects(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[tokio::test]
async fn the_example_compositions_deploy_as_a_cluster_applies_them() {
    let e = env().await;
    let web = deploy(
        &e,
        "alpha",
        "web-app",
        json!({"image": "registry.example.com/shop:1.4.2"}),
    )
    .await;
    let pipeline = deploy(
        &e,
        "beta",
        "data-pipeline",
        json!({"image": "registry.example.com/etl:0.9.0"}),
    )
    .await;
    let stack = deploy(
        &e,
        "gamma",
        "platform-stack",
        json!({
            "api_image": "registry.example.com/api:2.3.0",
            "worker_image": "registry.example.com/worker:2.3.0",
            "vpc_id": "vpc-0a1b2c3d4e5f60718",
            "subnet_ids": ["subnet-0a1b2c3d", "subnet-4e5f6071"],
        }),
    )
    .await;
    assert_eq!(
        stack.waves,
        [
            vec!["cache", "database", "reports"],
            vec!["api"],
            vec!["worker"]
        ],
        "the stack's order"
    );
    let engines: BTreeSet<&str> = stack.resources.iter().map(|r| r.engine.as_str()).collect();
    assert_eq!(
        engines,
        BTreeSet::from(["crossplane", "helm", "pulumi", "terraform"])
    );
    let files = committed(e.repo.path());

    // Sync waves: every object of a resource carries its wave; the Argo CD
    // objects Nestor writes outside resources carry none (wave 0, first).
    let mut waves = BTreeMap::new();
    for d in [&web, &pipeline, &stack] {
        for (i, wave) in d.waves.iter().enumerate() {
            for resource in wave {
                let folder = format!("{}/{}/{}/{resource}/", d.team, d.environment, d.name);
                waves.insert(folder, (i + 1).to_string());
            }
        }
    }
    let mut manifests = Vec::new();
    for (path, text) in files.iter().filter(|(p, _)| is_manifest(p)) {
        let expected = waves
            .iter()
            .find(|(folder, _)| path.starts_with(folder.as_str()))
            .map(|(_, wave)| wave.clone());
        assert!(
            expected.is_some() || path.starts_with("argocd/"),
            "{path} belongs to no resource"
        );
        for object in objects(text) {
            let wave = &object["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"];
            match &expected {
                Some(w) => assert_eq!(wave, &json!(w), "{path}"),
                None => assert!(wave.is_null(), "{path}: {wave}"),
            }
            manifests.push((path.clone(), object));
        }
    }
    for team in ["alpha", "beta", "gamma"] {
        for path in [
            format!("argocd/{team}--dev.yaml"),
            format!("argocd/projects/{team}.yaml"),
        ] {
            assert!(files.contains_key(&path), "{path} is not committed");
        }
    }

    // Isolation the cluster enforces: every object of a team's folder is
    // admitted by the team's AppProject — namespaced objects in its
    // destinations, Helm child Applications in its source namespaces,
    // cluster-scoped Workspaces by its named whitelist.
    for (path, object) in manifests.iter().filter(|(p, _)| !p.starts_with("argocd/")) {
        let team = path.split('/').next().unwrap();
        let project = objects(&files[&format!("argocd/projects/{team}.yaml")]).remove(0);
        let spec = &project["spec"];
        let admitted = |list: &Value, field: &str, value: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .any(|entry| glob(entry[field].as_str().unwrap_or_default(), value))
        };
        let kind = object["kind"].as_str().unwrap();
        if kind == "Workspace" {
            let whitelist = &spec["clusterResourceWhitelist"];
            let name = object["metadata"]["name"].as_str().unwrap();
            assert!(admitted(whitelist, "name", name), "{path}: {name}");
            continue;
        }
        let namespace = object["metadata"]["namespace"].as_str().unwrap();
        assert!(
            admitted(&spec["destinations"], "namespace", namespace),
            "{path}: namespace {namespace} is outside {team}'s destinations"
        );
        if kind == "Application" {
            assert_eq!(
                object["spec"]["project"], project["metadata"]["name"],
                "{path}"
            );
            let sources = spec["sourceNamespaces"].as_array().unwrap();
            assert!(
                sources.iter().any(|p| glob(p.as_str().unwrap(), namespace)),
                "{path}: the child Application's namespace {namespace} is not a source namespace of {team}'s project"
            );
            let target = object["spec"]["destination"]["namespace"].as_str().unwrap();
            assert!(
                admitted(&spec["destinations"], "namespace", target),
                "{path}"
            );
        }
    }

    // Terraform's own references stay in Terraform's JSON: the main.tf.json
    // files, and the same module inline in the Workspace.
    for (path, text) in &files {
        if path.ends_with(".tf.json") {
            continue;
        }
        let mut rest = text.clone();
        if path.ends_with("/workspace.yaml") {
            let mut workspace = objects(text).remove(0);
            let module = workspace["spec"]["forProvider"]["module"].take();
            let main = path.replace("workspace.yaml", "main.tf.json");
            assert_eq!(module, json!(files[&main]), "{path} runs {main}");
            rest = workspace.to_string();
        }
        assert!(
            !rest.contains("${module."),
            "{path} holds a module reference"
        );
    }

    // Cross-engine values: each reference names what a producer writes.
    let written = written_secrets(&manifests);
    let mut resolved = Vec::new();
    for (path, object) in &manifests {
        let namespace = reading_namespace(object);
        let mut refs = Vec::new();
        secret_key_refs(object, &mut refs);
        for r in refs {
            let ns = r["namespace"].as_str().unwrap_or(&namespace).to_string();
            let name = r["name"].as_str().unwrap().to_string();
            let key = r["key"].as_str().unwrap().to_string();
            let keys = written
                .get(&(ns.clone(), name.clone()))
                .unwrap_or_else(|| panic!("{path}: no producer writes Secret {ns}/{name}"));
            assert!(
                keys.contains(&key),
                "{path}: Secret {ns}/{name} has no key {key} (it has {keys:?})"
            );
            resolved.push(format!("{path} -> {ns}/{name}:{key}"));
        }
    }
    for expected in [
        // alpha/web-app: Terraform → Crossplane.
        "alpha/dev/web-app/app/app.yaml -> alpha--dev/web-app--database-outputs:endpoint",
        // beta/data-pipeline: Terraform → Crossplane.
        "beta/dev/data-pipeline/worker/app.yaml -> beta--dev/data-pipeline--queue-outputs:queue_url",
        // gamma/platform-stack: Terraform → Helm, Crossplane → Helm, Pulumi → Crossplane.
        "gamma/dev/platform-stack/api/application.yaml -> gamma--dev/platform-stack--database-outputs:endpoint",
        "gamma/dev/platform-stack/api/application.yaml -> gamma--dev/platform-stack--cache-conn:endpoint",
        "gamma/dev/platform-stack/worker/app.yaml -> gamma--dev/platform-stack--reports-outputs:endpoint",
    ] {
        assert!(
            resolved.iter().any(|r| r == expected),
            "{expected} not among {resolved:#?}"
        );
    }
    // Helm → Crossplane: known at render time, a plain value.
    let worker = objects(&files["gamma/dev/platform-stack/worker/app.yaml"]).remove(0);
    assert_eq!(
        worker["spec"]["parameters"]["env"]["API_URL"],
        "http://platform-stack--api.gamma--dev.svc.cluster.local"
    );

    // Every object against its real schema.
    let Some(tools) = checkers("the_example_compositions_deploy_as_a_cluster_applies_them") else {
        return;
    };
    let committed: Vec<(String, String)> = files
        .iter()
        .filter(|(p, _)| is_manifest(p))
        .map(|(p, t)| (p.clone(), t.clone()))
        .collect();
    let (ok, out) = check_objects(&tools, &committed);
    assert!(ok, "{out}");
    let valid = out.lines().filter(|l| l.contains(": valid")).count();
    assert_eq!(valid, manifests.len(), "every object validated:\n{out}");
    for kind in [
        "Workspace",
        "Program",
        "Stack",
        "Application",
        "AppProject",
        "App",
        "RedisCluster",
    ] {
        assert!(
            out.contains(&format!(" {kind} ")),
            "no {kind} checked:\n{out}"
        );
    }

    // The check is worth something only if it rejects: a field the
    // Workspace CRD lacks, a parameter the XRD lacks, a kind nothing
    // describes, a built-in kind with a field Kubernetes lacks.
    let workspace = &files["gamma/dev/platform-stack/database/workspace.yaml"];
    let claim = &files["gamma/dev/platform-stack/cache/rediscluster.yaml"];
    for (bad, why) in [
        (
            workspace.replace("  forProvider:", "  forProvidr: {}\n  forProvider:"),
            "forProvidr",
        ),
        (
            claim.replace("    nodeType:", "    nodeTyp: x\n    nodeType:"),
            "nodeTyp",
        ),
        (
            claim.replace("cache.example.org/v1alpha1", "cache.example.org/v1"),
            "does not serve version v1",
        ),
        (
            "apiVersion: example.org/v1\nkind: Gadget\nmetadata: {name: g, namespace: n}\n".into(),
            "no schema for this kind",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\ndatum: {a: b}\n"
                .into(),
            "'datum' was unexpected",
        ),
    ] {
        let (ok, out) = check_objects(&tools, &[("bad.yaml".into(), bad)]);
        assert!(!ok && out.contains(why), "{why}: {out}");
    }
    // No engine writes a built-in kind today; one would go to kubernetes-validate.
    let config_map =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\ndata: {a: b}\n";
    let (ok, out) = check_objects(&tools, &[("cm.yaml".into(), config_map.into())]);
    assert!(
        ok && out.contains("valid (kubernetes-validate --strict)"),
        "{out}"
    );
}

/// Writes `manifests` (path, text) into a folder and runs the checker's
/// `objects` command over them with the vendored CRDs and the example
/// XRDs; answers whether it accepted, and its output.
fn check_objects(
    tools: &crate::support::Checkers,
    manifests: &[(String, String)],
) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (path, text) in manifests {
        let target = dir.path().join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, text).unwrap();
        paths.push(target.to_str().unwrap().to_string());
    }
    let argocd = root().join("nestor-storage/tests/data/argocd");
    let crds = data_dir().join("crds");
    let list = json!({
        "crds": [
            crds.join("tf.upbound.io_workspaces.yaml"),
            crds.join("pulumi.com_programs.yaml"),
            crds.join("pulumi.com_stacks.yaml"),
            argocd.join("application-crd.yaml"),
            argocd.join("appproject-crd.yaml"),
        ],
        "xrds": [root().join("examples/crossplane/xrds.yaml")],
        "manifests": paths,
    });
    let list_path = dir.path().join("objects.json");
    std::fs::write(&list_path, list.to_string()).unwrap();
    let output = Command::new(&tools.python)
        .arg(data_dir().join("checkers/check.py"))
        .args(["objects", list_path.to_str().unwrap()])
        .output()
        .expect("the checker runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The namespace a consumer reads a Secret from when its reference names
/// none: a Helm child Application's release namespace, else the object's.
fn reading_namespace(object: &Value) -> String {
    let field = if object["kind"] == "Application" {
        &object["spec"]["destination"]["namespace"]
    } else {
        &object["metadata"]["namespace"]
    };
    field.as_str().unwrap_or_default().to_string()
}

/// Every `secretKeyRef` map inside `value`.
fn secret_key_refs<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "secretKeyRef" {
                    out.push(v);
                } else {
                    secret_key_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| secret_key_refs(v, out)),
        _ => {}
    }
}

/// The Secrets the committed objects make their controllers write, with
/// their keys: a Workspace's connection secret (provider-terraform writes
/// every output of the module), a claim's connection secret (the XRD's
/// connection secret keys), a Secret a Pulumi program creates.
fn written_secrets(manifests: &[(String, Value)]) -> BTreeMap<(String, String), BTreeSet<String>> {
    let xrds =
        objects(&std::fs::read_to_string(root().join("examples/crossplane/xrds.yaml")).unwrap());
    let mut written = BTreeMap::new();
    for (path, object) in manifests {
        let spec = &object["spec"];
        let target = &spec["writeConnectionSecretToRef"];
        let kind = object["kind"].as_str().unwrap_or_default();
        if kind == "Workspace" {
            let module: Value =
                serde_json::from_str(spec["forProvider"]["module"].as_str().unwrap()).unwrap();
            let keys = module["output"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            written.insert(key(target, None), keys);
        } else if target.is_object() {
            let group = object["apiVersion"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            let xrd = xrds
                .iter()
                .find(|x| x["spec"]["group"] == group && x["spec"]["claimNames"]["kind"] == kind)
                .unwrap_or_else(|| panic!("{path}: no XRD offers claim {kind}"));
            let keys = xrd["spec"]["connectionSecretKeys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();
            written.insert(key(target, object["metadata"]["namespace"].as_str()), keys);
        } else if kind == "Program" {
            // A Program keeps its Pulumi YAML program at the top level.
            for resource in object["program"]["resources"].as_object().unwrap().values() {
                if resource["type"] == "kubernetes:core/v1:Secret" {
                    let properties = &resource["properties"];
                    let keys = properties["stringData"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .cloned()
                        .collect();
                    written.insert(key(&properties["metadata"], None), keys);
                }
            }
        }
    }
    written
}

/// Argo CD's glob for project fields: `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && glob(tail, &rest[i..]))
        }
    }
}

fn key(reference: &Value, namespace: Option<&str>) -> (String, String) {
    let ns = reference["namespace"].as_str().or(namespace).unwrap();
    (
        ns.to_string(),
        reference["name"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_plan_shows_each_resource_s_wave_controller_and_outputs() {
    let e = env().await;
    let request: DeploymentRequest = serde_json::from_value(json!({
        "team": "gamma", "environment": "dev", "name": "platform-stack",
        "composition": "platform-stack", "dry_run": true,
        "params": {
            "api_image": "registry.example.com/api:2.3.0",
            "worker_image": "registry.example.com/worker:2.3.0",
            "vpc_id": "vpc-0a1b2c3d4e5f60718",
            "subnet_ids": ["subnet-0a1b2c3d"],
        },
    }))
    .unwrap();
    let plan = e.nestor.plan(&request).await.unwrap();
    let shown: Vec<(&str, usize, &str)> = plan
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.wave, r.controller_name()))
        .collect();
    assert_eq!(
        shown,
        [
            ("cache", 1, "crossplane"),
            ("database", 1, "provider-terraform"),
            ("reports", 1, "pulumi-operator"),
            ("api", 2, "helm (argo-cd child application)"),
            ("worker", 3, "crossplane"),
        ]
    );
    let of = |name: &str| plan.resources.iter().find(|r| r.name == name).unwrap();
    assert_eq!(
        of("database").objects,
        ["Workspace/gamma--dev--platform-stack--database"]
    );
    assert!(of("database").output_locations().contains(
        &"endpoint: Secret gamma--dev/platform-stack--database-outputs key endpoint".to_string()
    ));
    assert!(of("cache").output_locations().contains(
        &"primary_endpoint: Secret gamma--dev/platform-stack--cache-conn key endpoint".to_string()
    ));
    let reports = of("reports").output_locations();
    assert!(
        reports.iter().any(|l| l.starts_with("endpoint: ")
            && l.contains("Secret gamma--dev/platform-stack--reports-outputs key endpoint")
            && l.contains("Pulumi stack")),
        "{reports:?}"
    );
    assert!(of("api").output_locations().contains(
        &"url: the value \"http://platform-stack--api.gamma--dev.svc.cluster.local\"".to_string()
    ));

    // The same through JSON, as POST /api/v1/plan and `nestor plan -o json` answer it.
    let json = serde_json::to_value(&plan).unwrap();
    let database = &json["resources"][1];
    assert_eq!(database["wave"], 1);
    assert_eq!(database["controller"], "provider-terraform");
    assert_eq!(
        database["outputs"]["endpoint"],
        json!({"secret_key_ref": {"name": "platform-stack--database-outputs", "namespace": "gamma--dev", "key": "endpoint"}})
    );
    assert_eq!(json["resources"][3]["controller"], "helm-child-application");
}

/// Issue 10.15: every example definition's module pin admits only releases
/// that have what the definition passes and reads. The facts are the
/// modules' own CHANGELOGs and interfaces at their tags
/// (examples/catalog/README.md, "Module pins").
#[test]
fn example_module_pins_admit_only_releases_with_what_they_use() {
    // (module source, argument or output, the first release that has it)
    const ARRIVED: &[(&str, &str, (u64, u64))] = &[
        (
            "terraform-aws-modules/rds/aws",
            "manage_master_user_password",
            (6, 0),
        ),
        (
            "terraform-aws-modules/rds/aws",
            "db_instance_master_user_secret_arn",
            (6, 1),
        ),
        (
            "terraform-aws-modules/elasticache/aws",
            "replication_group_port",
            (1, 8),
        ),
        (
            "terraform-aws-modules/s3-bucket/aws",
            "object_ownership",
            (2, 8),
        ),
        (
            "terraform-aws-modules/s3-bucket/aws",
            "control_object_ownership",
            (2, 8),
        ),
        (
            "terraform-aws-modules/s3-bucket/aws",
            "s3_bucket_id",
            (2, 0),
        ),
        ("terraform-aws-modules/sqs/aws", "queue_url", (4, 0)),
        ("terraform-aws-modules/sqs/aws", "queue_arn", (4, 0)),
        (
            "terraform-aws-modules/sqs/aws",
            "dead_letter_queue_arn",
            (4, 0),
        ),
        (
            "terraform-aws-modules/vpc/aws",
            "database_subnet_group_name",
            (2, 73),
        ),
        (
            "terraform-aws-modules/iam/aws//modules/iam-assumable-role",
            "iam_role_arn",
            (4, 0),
        ),
        (
            "terraform-aws-modules/iam/aws//modules/iam-assumable-role",
            "iam_role_name",
            (4, 0),
        ),
        (
            "terraform-google-modules/memorystore/google",
            "auth_string",
            (4, 3),
        ),
        (
            "terraform-google-modules/cloud-storage/google//modules/simple_bucket",
            "public_access_prevention",
            (4, 0),
        ),
        (
            "terraform-google-modules/cloud-storage/google//modules/simple_bucket",
            "url",
            (3, 3),
        ),
        (
            "terraform-google-modules/sql-db/google//modules/postgresql",
            "enable_default_db",
            (4, 4),
        ),
    ];
    let mut checked = 0;
    let mut stack = vec![root().join("examples/catalog/resources")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let def = nestor_core::parse_definition_yaml(&text).unwrap();
            let Some(tf) = def.spec.engine_configs.get("terraform") else {
                continue;
            };
            let source = tf["module_source"].as_str().unwrap_or_default();
            let used: Vec<&str> = tf["static_inputs"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys().map(String::as_str))
                .chain(
                    tf["output_map"]
                        .as_object()
                        .into_iter()
                        .flat_map(|m| m.values().filter_map(Value::as_str)),
                )
                .collect();
            for (module, name, since) in ARRIVED {
                if source != *module || !used.contains(name) {
                    continue;
                }
                let pin = tf["module_version"].as_str().unwrap_or_default();
                let lowest = lowest_admitted(pin)
                    .unwrap_or_else(|| panic!("{}: pin {pin:?} is not `~> X.Y`", path.display()));
                assert!(
                    lowest >= *since,
                    "{}: `{pin}` admits {}.{}, which has no {name} (since {}.{})",
                    path.display(),
                    lowest.0,
                    lowest.1,
                    since.0,
                    since.1
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 23,
        "every terraform definition was checked: {checked}"
    );
}

/// The lowest `major.minor` a `~> X.Y` (or `~> X.Y.Z`) constraint admits.
fn lowest_admitted(pin: &str) -> Option<(u64, u64)> {
    let version = pin.strip_prefix("~>")?.trim();
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??))
}
