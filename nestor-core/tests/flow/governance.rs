//! Governance end to end: policies synced from a source (versioned,
//! reported, restored by a process that did not sync), team quotas at
//! apply, the teams view, asking the policies without deploying, and the
//! example policies of examples/policies against real inputs.

use std::sync::Arc;

use nestor_core::*;
use nestor_storage::MemoryStore;
use serde_json::json;

use super::support::*;
use super::{request, web_app_source};

const LABELS: &str = r#"package nestor.deployment.labels

deny contains msg if {
    not input.labels["cost-center"]
    msg := sprintf("%s/%s needs a cost-center label", [input.team, input.name])
}
"#;

const BETA_ONLY: &str = r#"package nestor.deployment.frozen

deny contains "the team is frozen" if true
"#;

fn denials(e: &Error) -> Vec<(String, String, Option<String>)> {
    let Error::PolicyViolation { violations, .. } = e else {
        panic!("expected POLICY_VIOLATION, got {e}");
    };
    violations
        .iter()
        .map(|v| (v.policy.clone(), v.message.clone(), v.source.clone()))
        .collect()
}

#[tokio::test]
async fn policies_of_a_source_are_synced_reported_and_enforced_by_every_process() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (nestor, _) = nestor_over(store.clone(), Policies::none(), vec![]);
    let source = web_app_source();
    source.set("policies/labels.rego", Some(LABELS));
    source.set("policies/teams/beta/frozen.rego", Some(BETA_ONLY));
    source.set(
        "policies/broken.rego",
        Some("package nestor.deployment\n\ndeny contains if {\n"),
    );
    source.set(
        "policies/labels_test.rego",
        Some("package x\n\ntest_nothing if false\n"),
    );
    let report = nestor.sync(&source).await.unwrap();
    assert_eq!(
        report.policies,
        vec!["policies/labels.rego", "policies/teams/beta/frozen.rego"],
        "tests are not enforced, the broken file is reported instead"
    );
    let broken: Vec<&DocumentError> = report
        .errors
        .iter()
        .filter(|e| e.file == "policies/broken.rego")
        .collect();
    assert_eq!(broken.len(), 1, "{:?}", report.errors);
    assert_eq!(broken[0].code, "VALIDATION_FAILED");
    assert!(
        !report.published.is_empty(),
        "the definitions still publish"
    );

    let unlabelled = request(json!({}));
    let e = nestor.plan(&unlabelled).await.unwrap_err();
    assert_eq!(
        denials(&e),
        vec![(
            "policies/labels.rego".into(),
            "alpha/checkout needs a cost-center label".into(),
            Some("catalog".into())
        )],
        "beta's folder scopes its policy to beta"
    );

    // Another process over the same store, which never synced, enforces
    // the same policies from its first plan.
    let (other, _) = nestor_over(store.clone(), Policies::none(), vec![]);
    assert_eq!(
        other.plan(&unlabelled).await.unwrap_err().code(),
        ErrorCode::PolicyViolation
    );

    // A new commit without the policy lifts it.
    source.set("policies/labels.rego", None);
    let report = nestor.sync(&source).await.unwrap();
    assert_eq!(report.policies, vec!["policies/teams/beta/frozen.rego"]);
    nestor.plan(&unlabelled).await.unwrap();
    // The other process adopts it at its own sync of the same head.
    other.sync(&source).await.unwrap();
    other.plan(&unlabelled).await.unwrap();
}

#[tokio::test]
async fn a_quota_refuses_the_apply_past_it_and_a_delete_frees_its_room() {
    let quota = Quota {
        team: "alpha".into(),
        environment: None,
        max_deployments: Some(1),
        max_resources: Some(10),
        max_per_category: Default::default(),
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (nestor, executor) = nestor_over(store, Policies::none(), vec![quota]);
    nestor.sync(&web_app_source()).await.unwrap();
    let first = nestor.apply(&request(json!({})), None).await.unwrap();
    let mut shop = request(json!({}));
    shop.name = "shop".into();
    let e = nestor.apply(&shop, None).await.unwrap_err();
    assert!(
        matches!(&e, Error::QuotaExceeded { limit, max: 1, usage: 2, .. } if limit == "max_deployments"),
        "{e}"
    );
    assert_eq!(executor.applied.lock().unwrap().len(), 1, "nothing applied");
    let shops = DeploymentFilter {
        name: Some("shop".into()),
        ..Default::default()
    };
    assert!(nestor.deployments(&shops).await.unwrap().is_empty());

    let team = nestor.team("alpha").await.unwrap();
    assert_eq!(team.deployments["staging"], vec!["checkout"]);
    assert_eq!(team.quotas[0].usage.deployments, 1);
    assert_eq!(team.quotas[0].usage.resources, 2);
    assert_eq!(team.compositions, vec!["web-app:1.0.0"]);

    // Deleting the deployment (its last revision holds nothing) frees it.
    nestor.delete(&first.id).await.unwrap();
    assert_eq!(
        nestor.team_quotas("alpha").await.unwrap()[0].usage,
        Usage::default()
    );
    nestor.apply(&shop, None).await.unwrap();
}

#[tokio::test]
async fn policies_answer_without_deploying_and_the_team_view_names_them() {
    let policies = Policies::none();
    let files = vec![PolicyFile {
        origin: PolicyOrigin {
            file: "labels.rego".into(),
            source: None,
            commit: None,
        },
        scope: PolicyScope::global(),
        text: LABELS.into(),
    }];
    assert!(policies.set_layer("config", files).is_empty());
    let (nestor, executor) = nestor_with(policies);
    nestor.sync(&web_app_source()).await.unwrap();
    let check = nestor
        .evaluate_policies(PolicySubject::Deployment(Box::new(request(json!({})))))
        .await
        .unwrap();
    assert!(!check.allowed);
    assert_eq!(check.subject, "alpha/staging/checkout");
    assert_eq!(
        check.denials[0].message,
        "alpha/checkout needs a cost-center label"
    );
    assert!(executor.applied.lock().unwrap().is_empty());
    assert!(nestor
        .deployments(&DeploymentFilter::default())
        .await
        .unwrap()
        .is_empty());
    let mut labelled = request(json!({}));
    labelled.labels.insert("cost-center".into(), "cc-1".into());
    let check = nestor
        .evaluate_policies(PolicySubject::Deployment(Box::new(labelled)))
        .await
        .unwrap();
    assert!(check.allowed && check.denials.is_empty());

    let teams = nestor.teams().await.unwrap();
    assert_eq!(teams.len(), 1);
    assert_eq!(teams[0].name, "alpha");
    assert_eq!(teams[0].policies.len(), 1);
    assert_eq!(teams[0].policies[0].file, "labels.rego");
    assert_eq!(teams[0].policies[0].hook, "deployment");
    assert_eq!(teams[0].policies[0].scope, "global");
}

/// The example policies of examples/policies: every test passes, and
/// loaded like a source's folder they judge a real deployment's input.
#[tokio::test]
async fn the_example_policies_pass_their_tests_and_judge_real_deployments() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/policies");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if is_rego_file(&name) {
            files.push(PolicyFile {
                origin: PolicyOrigin {
                    file: format!("policies/{name}"),
                    source: None,
                    commit: None,
                },
                scope: PolicyScope::global(),
                text: std::fs::read_to_string(&path).unwrap(),
            });
        }
    }
    files.sort_by(|a, b| a.origin.file.cmp(&b.origin.file));
    let report = run_policy_tests(&files);
    assert!(report.ok(), "{report:#?}");
    assert!(report.passed() >= 15, "{}", report.passed());

    let modules: Vec<PolicyFile> = files
        .into_iter()
        .filter(|f| is_policy_module(&f.origin.file))
        .collect();
    assert_eq!(modules.len(), 4);
    let policies = Policies::none();
    assert!(policies.set_layer("examples", modules).is_empty());
    let (nestor, _) = nestor_with(policies);
    nestor.sync(&web_app_source()).await.unwrap();
    let mut prod = request(json!({}));
    prod.environment = "production".into();
    prod.labels.insert("owner".into(), "alice".into());
    let e = nestor.plan(&prod).await.unwrap_err();
    let messages: Vec<String> = denials(&e).into_iter().map(|d| d.1).collect();
    assert!(
        messages.contains(&"alpha/checkout needs the label cost-center".to_string()),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("whose maturity is alpha: production needs stable definitions")),
        "{messages:?}"
    );
    // In staging, with both labels, nothing objects.
    let mut staging = request(json!({}));
    staging.labels.insert("owner".into(), "alice".into());
    staging.labels.insert("cost-center".into(), "cc-1".into());
    nestor.plan(&staging).await.unwrap();
}
