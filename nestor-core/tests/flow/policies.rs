//! Rego policies through the facade: refused at definition and composition
//! publish, at plan and at apply; warnings in plans, in the recorded
//! deployment and in its events; scopes and their precedence; a file that
//! does not compile; `test_*` rules.

use nestor_core::*;
use serde_json::json;

use super::support::*;
use super::{request, web_app_source};

fn file(name: &str, scope: PolicyScope, text: &str) -> PolicyFile {
    PolicyFile {
        origin: PolicyOrigin {
            file: name.into(),
            source: Some("platform".into()),
            commit: Some("c0ffee".into()),
        },
        scope,
        text: text.into(),
    }
}

fn team(t: &str) -> PolicyScope {
    PolicyScope {
        team: Some(t.into()),
        environment: None,
    }
}

fn env(e: &str) -> PolicyScope {
    PolicyScope {
        team: None,
        environment: Some(e.into()),
    }
}

fn policies(files: Vec<PolicyFile>) -> Policies {
    let policies = Policies::none();
    let problems = policies.set_layer("config", files);
    assert!(problems.is_empty(), "{problems:?}");
    policies
}

const DESCRIBED: &str = r#"package nestor.definition

deny contains msg if {
    input.metadata.description == ""
    msg := sprintf("%s needs a description", [input.metadata.name])
}
"#;

const LABELLED: &str = r#"package nestor.deployment

deny_cost_center contains msg if {
    not input.labels["cost-center"]
    msg := sprintf("%s/%s needs a cost-center label", [input.team, input.name])
}

warn contains msg if {
    some r in input.resources
    r.engine == "terraform"
    r.inputs.size == "small"
    msg := sprintf("%s is small", [r.name])
}
"#;

fn violations(e: &Error) -> Vec<(String, String, String)> {
    assert_eq!(e.code(), ErrorCode::PolicyViolation, "{e}");
    let Error::PolicyViolation { violations, .. } = e else {
        unreachable!()
    };
    violations
        .iter()
        .map(|v| (v.policy.clone(), v.rule.clone(), v.message.clone()))
        .collect()
}

#[tokio::test]
async fn a_definition_policy_refuses_at_publish_and_in_a_sync() {
    let (nestor, _) = nestor_with(policies(vec![file(
        "policies/described.rego",
        PolicyScope::global(),
        DESCRIBED,
    )]));
    let bare = parse_definition_yaml(&definition("bare", "1.0.0", "", "[]")).unwrap();
    let e = nestor.publish(bare, "test").await.unwrap_err();
    assert_eq!(
        violations(&e),
        vec![(
            "policies/described.rego".into(),
            "deny".into(),
            "bare needs a description".into()
        )]
    );
    assert_eq!(e.code().http_status(), 422);
    let good = parse_definition_yaml(&definition("good", "1.0.0", "fine", "[]")).unwrap();
    nestor.publish(good, "test").await.unwrap();

    // A sync reports the refused document and publishes the rest.
    let source = MapSource::new("catalog");
    source.set("a.yaml", Some(&definition("alone", "1.0.0", "", "[]")));
    source.set("b.yaml", Some(&definition("other", "1.0.0", "ok", "[]")));
    let report = nestor.sync(&source).await.unwrap();
    assert_eq!(report.published, vec!["other:1.0.0".to_string()]);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].errors[0]
        .message
        .contains("alone needs a description"));
}

#[tokio::test]
async fn a_team_composition_policy_refuses_that_team_only() {
    let compositions = file(
        "policies/teams/alpha/no-helm.rego",
        team("alpha"),
        r#"package nestor.composition

deny contains msg if {
    some r in input.resolved
    r.engine == "helm"
    msg := sprintf("%s: helm is not allowed for %s", [r.name, input.metadata.team])
}
"#,
    );
    let (nestor, _) = nestor_with(policies(vec![compositions]));
    let source = web_app_source();
    // Beta's copy of the same composition is not covered.
    source.set(
        "teams/beta.yaml",
        Some(&super::WEB_APP.replace("team: alpha", "team: beta")),
    );
    let report = nestor.sync(&source).await.unwrap();
    assert!(
        report.published.contains(&"beta/web-app:1.0.0".to_string()),
        "{report:?}"
    );
    assert!(!report.published.iter().any(|p| p.starts_with("alpha/")));
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0].errors[0]
            .message
            .contains("app: helm is not allowed for alpha"),
        "{:?}",
        report.errors
    );
}

#[tokio::test]
async fn a_deployment_policy_refuses_plan_and_apply_and_warns() {
    let (nestor, executor) = nestor_with(policies(vec![file(
        "policies/labels.rego",
        PolicyScope::global(),
        LABELLED,
    )]));
    nestor.sync(&web_app_source()).await.unwrap();
    let unlabelled = request(json!({}));
    let e = nestor.plan(&unlabelled).await.unwrap_err();
    assert_eq!(
        violations(&e),
        vec![(
            "policies/labels.rego".into(),
            "deny_cost_center".into(),
            "alpha/checkout needs a cost-center label".into()
        )]
    );
    let e = nestor.apply(&unlabelled, None).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PolicyViolation);
    // Nothing was recorded, nothing committed.
    assert!(nestor
        .deployments(&DeploymentFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(executor.applied.lock().unwrap().is_empty());

    let mut labelled = request(json!({}));
    labelled.labels.insert("cost-center".into(), "cc-42".into());
    let plan = nestor.plan(&labelled).await.unwrap();
    let warned: Vec<String> = plan.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warned, vec!["policies/labels.rego (warn): db is small"]);
    let deployed = nestor.apply(&labelled, None).await.unwrap();
    assert_eq!(deployed.status, DeploymentStatus::Succeeded);
    assert_eq!(deployed.policy_warnings, plan.warnings);
    let events = nestor.events_after(0, 1000).await.unwrap();
    let started = events
        .iter()
        .find(|e| e.event_type == EventType::DeploymentStarted)
        .expect("a started event");
    assert_eq!(
        started.data["policy_warnings"][0]["message"],
        json!("db is small")
    );
    // A larger size has nothing to warn about.
    let mut large = labelled.clone();
    large.params.insert("size".into(), json!("large"));
    assert!(nestor.plan(&large).await.unwrap().warnings.is_empty());
}

/// What a deployment policy reads of each resource: the pinned reference,
/// the definition document, and the final inputs (templates rendered,
/// defaults applied, an input wired from an output as written).
const SHOW_INPUTS: &str = r#"package nestor.deployment.show

warn contains msg if {
    some r in input.resources
    msg := sprintf("%s %s %s %s %s", [
        r.name, r.catalog_ref, r.engine, r.definition.metadata.name, json.marshal(r.inputs),
    ])
}

warn contains msg if {
    msg := sprintf("%s/%s/%s %s", [input.team, input.environment, input.name, json.marshal(input.params)])
}
"#;

#[tokio::test]
async fn a_deployment_policy_reads_the_documented_input() {
    let (nestor, _) = nestor_with(policies(vec![file(
        "policies/show.rego",
        PolicyScope::global(),
        SHOW_INPUTS,
    )]));
    nestor.sync(&web_app_source()).await.unwrap();
    let plan = nestor
        .plan(&request(json!({"size": "large"})))
        .await
        .unwrap();
    let shown: Vec<&str> = plan.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(
        shown,
        vec![
            r#"alpha/staging/checkout {"size":"large"}"#,
            r#"app app:1.0.0 helm app {"env":{"DB":"{{ resources.db.outputs.endpoint }}"},"size":"small"}"#,
            r#"db database:1.0.0 terraform database {"env":{},"size":"large"}"#,
        ]
    );
}

#[tokio::test]
async fn scopes_add_rules_and_never_lift_a_global_denial() {
    let global = file(
        "policies/global.rego",
        PolicyScope::global(),
        r#"package nestor.deployment

deny contains "no deployment may be called checkout" if input.name == "checkout"
"#,
    );
    // A team policy in the same package that tries to empty the denials.
    let lifting = file(
        "policies/teams/alpha/lift.rego",
        team("alpha"),
        r#"package nestor.deployment

deny := set()
allow := true
"#,
    );
    let production = file(
        "policies/environments/production/strict.rego",
        env("production"),
        r#"package nestor.deployment

deny contains "production needs a change ticket" if not input.labels.ticket
"#,
    );
    let beta = file(
        "policies/teams/beta/beta.rego",
        team("beta"),
        r#"package nestor.deployment

deny contains "beta is frozen" if true
"#,
    );
    let (nestor, _) = nestor_with(policies(vec![global, lifting, production, beta]));
    nestor.sync(&web_app_source()).await.unwrap();
    let staging = request(json!({}));
    let e = nestor.plan(&staging).await.unwrap_err();
    assert_eq!(
        violations(&e),
        vec![(
            "policies/global.rego".into(),
            "deny".into(),
            "no deployment may be called checkout".into()
        )],
        "the team's empty deny lifts nothing, beta's policy is not alpha's"
    );
    let mut prod = request(json!({}));
    prod.environment = "production".into();
    prod.name = "shop".into();
    let e = nestor.plan(&prod).await.unwrap_err();
    assert_eq!(
        violations(&e)[0].2,
        "production needs a change ticket".to_string()
    );
    prod.labels.insert("ticket".into(), "CHG-1".into());
    nestor.plan(&prod).await.unwrap();
    let mut other = staging.clone();
    other.name = "shop".into();
    nestor.plan(&other).await.unwrap();
}

#[test]
fn a_file_that_does_not_compile_is_an_error_naming_it() {
    let broken = file(
        "policies/broken.rego",
        PolicyScope::global(),
        "package nestor.deployment\n\ndeny contains msg if {\n  msg := \n}\n",
    );
    let unknown = file(
        "policies/unknown.rego",
        PolicyScope::global(),
        "package nestor.deployment\n\ndeny contains msg if {\n  msg := no_such_function(input)\n}\n",
    );
    let good = file("policies/labels.rego", PolicyScope::global(), LABELLED);
    let e = match PolicySet::new(vec![broken.clone(), unknown.clone(), good.clone()]) {
        Err(e) => e,
        Ok(_) => panic!("broken files compiled"),
    };
    assert_eq!(e.code(), ErrorCode::ValidationFailed);
    let fields: Vec<String> = e.field_errors().into_iter().map(|f| f.field).collect();
    assert_eq!(
        fields,
        vec!["policies/broken.rego", "policies/unknown.rego"]
    );

    // A layer keeps the files that compile and reports the others.
    let policies = Policies::none();
    let problems = policies.set_layer("source:platform", vec![broken, good]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].origin.file, "policies/broken.rego");
    assert_eq!(policies.current().len(), 1);
}

#[test]
fn test_rules_run_like_opa_test() {
    let policy = file("labels.rego", PolicyScope::global(), LABELLED);
    let tests = file(
        "labels_test.rego",
        PolicyScope::global(),
        r#"package nestor.deployment_test

import data.nestor.deployment

test_unlabelled_is_denied if {
    count(deployment.deny_cost_center) == 1 with input as {"team": "a", "name": "b", "labels": {}, "resources": []}
}

test_labelled_passes if {
    count(deployment.deny_cost_center) == 0 with input as {"team": "a", "name": "b", "labels": {"cost-center": "x"}, "resources": []}
}

test_wrong if {
    count(deployment.deny_cost_center) == 5 with input as {"labels": {}}
}
"#,
    );
    let report = run_policy_tests(&[policy, tests]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let outcomes: Vec<(String, bool)> = report
        .tests
        .iter()
        .map(|t| (t.test.clone(), t.passed))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (
                "data.nestor.deployment_test.test_unlabelled_is_denied".into(),
                true
            ),
            (
                "data.nestor.deployment_test.test_labelled_passes".into(),
                true
            ),
            ("data.nestor.deployment_test.test_wrong".into(), false),
        ]
    );
    assert!(!report.ok());
}
