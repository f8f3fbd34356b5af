//! The `nestor` binary run as a subprocess, embedded mode, on the example
//! catalog and on git repositories made by the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn examples() -> PathBuf {
    repo_root().join("examples/catalog")
}

/// Runs `nestor ARGS` with its data dir in `data`, from a clean directory
/// so no stray nestor.yaml is picked up.
fn nestor(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nestor"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .current_dir(data)
        .env_remove("NESTOR_SERVER")
        .env_remove("NESTOR_DATA_DIR")
        .output()
        .expect("the nestor binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn json(o: Output) -> Value {
    serde_json::from_str(&ok(o)).expect("-o json prints JSON")
}

#[test]
fn the_example_catalog_validates_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let out = nestor(
        tmp.path(),
        &["catalog", "validate", examples().to_str().unwrap()],
    );
    ok(out);
}

#[test]
fn validate_prints_file_line_field_message_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    let good =
        std::fs::read_to_string(examples().join("resources/aws/aws-rds-mysql/1.2.0.yaml")).unwrap();
    std::fs::write(
        &bad,
        good.replace("  optional_inputs:", "  optoinal_inputs:")
            .replace("name: aws-rds-mysql", "name: Bad_Name"),
    )
    .unwrap();
    let out = nestor(tmp.path(), &["catalog", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("optoinal_inputs"))
        .expect("the typo is reported");
    let expected_line = good
        .lines()
        .position(|l| l.starts_with("  optional_inputs:"))
        .unwrap()
        + 1;
    assert_eq!(line, format!("{}:{expected_line}: spec.optoinal_inputs: unknown key \"optoinal_inputs\" (did you mean \"optional_inputs\"?)", bad.display()));
    assert!(
        text.contains(": metadata.name: \"Bad_Name\" is not a valid name"),
        "{text}"
    );
}

#[test]
fn diff_classifies_changes_and_the_required_bump() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = examples().join("resources/aws/aws-rds-mysql");
    let (v12, v20) = (dir.join("1.2.0.yaml"), dir.join("2.0.0.yaml"));
    let out = ok(nestor(
        tmp.path(),
        &[
            "catalog",
            "diff",
            v12.to_str().unwrap(),
            v20.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("breaking"), "{out}");
    assert!(
        out.contains("required bump: major (at least 2.0.0); 1.2.0 → 2.0.0: ok"),
        "{out}"
    );

    // The same breaking changes shipped as a minor release are refused.
    let sneaky = tmp.path().join("1.3.0.yaml");
    std::fs::write(
        &sneaky,
        std::fs::read_to_string(&v20)
            .unwrap()
            .replace("version: \"2.0.0\"", "version: \"1.3.0\""),
    )
    .unwrap();
    let out = nestor(
        tmp.path(),
        &[
            "catalog",
            "diff",
            v12.to_str().unwrap(),
            sneaky.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["minimum_version"], "2.0.0");
    assert!(v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["kind"] == "breaking"));
}

#[test]
fn sync_then_browse_the_example_catalog_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let report = json(nestor(
        data,
        &[
            "catalog",
            "sync",
            examples().to_str().unwrap(),
            "-o",
            "json",
        ],
    ));
    assert_eq!(report["errors"].as_array().unwrap().len(), 0, "{report}");
    let published = report["published"].as_array().unwrap().len();
    assert!(published >= 20, "{report}");
    assert!(
        data.join("nestor.db").exists(),
        "the embedded store is one SQLite file in --data-dir"
    );

    let again = json(nestor(
        data,
        &[
            "catalog",
            "sync",
            examples().to_str().unwrap(),
            "-o",
            "json",
        ],
    ));
    assert_eq!(
        (
            again["files_read"].as_u64(),
            again["published"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );

    let list = json(nestor(
        data,
        &["catalog", "list", "-o", "json", "--limit", "500"],
    ));
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["definition"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.len() >= 15 && names.windows(2).all(|w| w[0] < w[1]),
        "{names:?}"
    );
    let gcp = json(nestor(
        data,
        &["catalog", "list", "--provider", "gcp", "-o", "json"],
    ));
    assert!(gcp["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["definition"]["metadata"]["provider"] == "gcp"));
    let page = json(nestor(
        data,
        &["catalog", "list", "--limit", "5", "-o", "json"],
    ));
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a cursor for the next page")
        .to_string();
    let next = json(nestor(
        data,
        &[
            "catalog", "list", "--limit", "5", "--cursor", &cursor, "-o", "json",
        ],
    ));
    assert!(
        next["items"][0]["definition"]["metadata"]["name"]
            .as_str()
            .unwrap()
            > cursor.as_str()
    );

    let latest = json(nestor(
        data,
        &["catalog", "get", "aws-rds-mysql", "-o", "json"],
    ));
    assert_eq!(latest["definition"]["metadata"]["version"], "2.0.0");
    let caret = json(nestor(
        data,
        &["catalog", "get", "aws-rds-mysql:^1.1", "-o", "json"],
    ));
    assert_eq!(caret["definition"]["metadata"]["version"], "1.2.0");
    let table = ok(nestor(data, &["catalog", "get", "aws-rds-mysql:1.0.0"]));
    assert!(
        table.starts_with("aws-rds-mysql 1.0.0\n") && table.contains("instance_class"),
        "{table}"
    );

    let versions = json(nestor(
        data,
        &["catalog", "versions", "aws-rds-mysql", "-o", "json"],
    ));
    let order: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["2.0.0", "1.2.0", "1.1.0", "1.0.0"]);

    let hits = json(nestor(data, &["catalog", "search", "mysql", "-o", "json"]));
    assert_eq!(
        hits[0]["version"]["definition"]["metadata"]["name"],
        "aws-rds-mysql"
    );

    ok(nestor(data, &["catalog", "yank", "aws-rds-mysql", "2.0.0"]));
    let after = json(nestor(
        data,
        &["catalog", "get", "aws-rds-mysql", "-o", "json"],
    ));
    assert_eq!(
        after["definition"]["metadata"]["version"], "1.2.0",
        "a yanked version is never latest"
    );
    let exact = json(nestor(
        data,
        &["catalog", "get", "aws-rds-mysql:2.0.0", "-o", "json"],
    ));
    assert_eq!(exact["yanked"], true, "but stays readable exactly");

    let restored = json(nestor(
        data,
        &["catalog", "unyank", "aws-rds-mysql", "2.0.0", "-o", "json"],
    ));
    assert_eq!(restored["changed"], true, "{restored}");
    let after = json(nestor(
        data,
        &["catalog", "get", "aws-rds-mysql", "-o", "json"],
    ));
    assert_eq!(
        after["definition"]["metadata"]["version"], "2.0.0",
        "an unyanked version is latest again"
    );

    let missing = nestor(data, &["catalog", "get", "no-such-thing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("error[RESOURCE_NOT_FOUND]"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn publish_reports_each_outcome_and_refuses_changed_content() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let mysql = examples().join("resources/aws/aws-rds-mysql");
    let vpc = examples().join("resources/aws/vpc-setup");
    let out = json(nestor(
        data,
        &[
            "catalog",
            "publish",
            mysql.to_str().unwrap(),
            vpc.to_str().unwrap(),
            "-o",
            "json",
        ],
    ));
    let outcomes: Vec<(&str, &str)> = out["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["subject"].as_str().unwrap(),
                l["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes[..2],
        [
            ("vpc-setup:1.5.0", "created"),
            ("vpc-setup:1.6.0", "created")
        ],
        "dependencies go first"
    );
    assert_eq!(outcomes.len(), 6);

    let edited = tmp.path().join("edited.yaml");
    let text = std::fs::read_to_string(mysql.join("1.2.0.yaml")).unwrap();
    std::fs::write(
        &edited,
        text.replace("Days automated backups are kept", "Days backups are kept"),
    )
    .unwrap();
    let out = nestor(data, &["catalog", "publish", edited.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("VERSION_IMMUTABLE"),
        "{}",
        stdout(&out)
    );
    let same = ok(nestor(
        data,
        &[
            "catalog",
            "publish",
            mysql.join("1.2.0.yaml").to_str().unwrap(),
        ],
    ));
    assert!(same.contains("unchanged"), "{same}");
}

#[test]
fn usage_errors_exit_2_and_unknown_config_keys_stop_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out = nestor(tmp.path(), &["catalog", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(tmp.path().join("nestor.yaml"), "storage:\n  tpye: sqlite\n").unwrap();
    let out = nestor(tmp.path(), &["catalog", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tpye"), "{}", stderr(&out));
}

/// `storage.type: dynamodb` end to end through the CLI: migrate, sync,
/// read. Needs DynamoDB Local (`.ci/dynamodb.sh start`); CI never skips it.
#[test]
fn the_cli_works_on_dynamodb() {
    let Ok(endpoint) = std::env::var("NESTOR_TEST_DYNAMODB_ENDPOINT") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the DynamoDB tests: NESTOR_TEST_DYNAMODB_ENDPOINT is not set"
        );
        eprintln!("skipped: NESTOR_TEST_DYNAMODB_ENDPOINT is not set (run .ci/dynamodb.sh start)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let prefix = format!("cli{}", std::process::id());
    std::fs::write(
        tmp.path().join("nestor.yaml"),
        format!("storage:\n  type: dynamodb\n  dynamodb: {{table_prefix: {prefix}, endpoint_url: \"{endpoint}\"}}\n"),
    )
    .unwrap();
    let out = ok(nestor(tmp.path(), &["migrate"]));
    assert!(out.contains(&prefix), "{out}");
    ok(nestor(tmp.path(), &["migrate"]));
    let report = json(nestor(
        tmp.path(),
        &[
            "catalog",
            "sync",
            examples().to_str().unwrap(),
            "-o",
            "json",
        ],
    ));
    assert!(
        report["published"].as_array().unwrap().len() >= 20,
        "{report}"
    );
    let latest = json(nestor(
        tmp.path(),
        &["catalog", "get", "aws-rds-mysql", "-o", "json"],
    ));
    assert_eq!(latest["definition"]["metadata"]["version"], "2.0.0");
    assert!(
        !tmp.path().join(".nestor/nestor.db").exists(),
        "nothing went to SQLite"
    );
}

#[test]
fn policy_test_runs_the_test_rules_and_exits_1_on_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = repo_root().join("examples/policies");
    let out = ok(nestor(
        tmp.path(),
        &["policy", "test", examples.to_str().unwrap()],
    ));
    assert!(out.contains("15 passed, 0 failed"), "{out}");
    assert!(
        out.contains(
            "PASS  data.nestor.deployment.required_labels_test.test_a_missing_label_is_named"
        ),
        "{out}"
    );

    let broken = tmp.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("labels_test.rego"),
        "package labels_test\n\ntest_holds if true\n\ntest_fails if 1 == 2\n",
    )
    .unwrap();
    let o = nestor(
        tmp.path(),
        &["policy", "test", broken.to_str().unwrap(), "-o", "json"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["tests"].as_array().unwrap().len(), 2);
    assert_eq!(report["tests"][1]["test"], "data.labels_test.test_fails");
    assert_eq!(report["tests"][1]["passed"], false);
}

#[test]
fn policy_check_judges_a_file_with_the_configured_policies_and_team_show_lists_quotas() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("described.rego"),
        "package nestor.definition\n\ndeny contains msg if {\n    input.metadata.description == \"\"\n    msg := sprintf(\"%s needs a description\", [input.metadata.name])\n}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("nestor.yaml"),
        "policies:\n  - path: described.rego\nquotas:\n  - {team: alpha, environment: production, max_deployments: 3, max_per_category: {database: 2}}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("queue.yaml"),
        "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\nmetadata: {name: queue, version: \"1.0.0\", provider: aws, category: messaging, resource_type: sqs}\nspec:\n  supported_engines: [terraform]\n",
    )
    .unwrap();
    let o = nestor(tmp.path(), &["policy", "check", "queue.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "queue:1.0.0: denied\n  deny  described.rego (deny): queue needs a description\n"
    );
    let teams = json(nestor(tmp.path(), &["team", "list", "-o", "json"]));
    assert_eq!(teams[0]["name"], "alpha");
    assert_eq!(teams[0]["quotas"][0]["quota"]["max_deployments"], 3);
    let shown = ok(nestor(tmp.path(), &["team", "show", "alpha"]));
    assert!(
        shown.contains("  production: deployments 0/3, database 0/2\n"),
        "{shown}"
    );
}
