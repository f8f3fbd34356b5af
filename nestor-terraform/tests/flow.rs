//! Applying through Terraform: real outputs between waves, sensitive
//! outputs kept out of the record, failures with Terraform's diagnostics,
//! and Terraform's own plan in `nestor plan`.

use nestor_core::*;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn wave_one_real_output_arrives_in_wave_two_and_secrets_stay_out() {
    let Some(binary) = terraform("two_waves") else {
        return;
    };
    let w = world(binary, None).await;
    let d = w
        .nestor
        .apply(&two_waves("stack", "alpha"), None)
        .await
        .unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{d:#?}");
    assert_eq!(
        d.waves,
        vec![vec!["net".to_string()], vec!["app".to_string()]]
    );

    // "alpha-real" exists only once Terraform applied wave 1.
    let net = resource(&d, "net");
    assert_eq!(net.status, ResourceStatus::Applied);
    assert_eq!(net.outputs["id"], json!({"value": "alpha-real"}));
    let app = resource(&d, "app");
    assert_eq!(
        app.outputs["echo"],
        json!({"value": "consumer of alpha-real"})
    );
    // The sensitive token reached the consumer (its length is 12) ...
    assert_eq!(app.outputs["token_length"], json!({"value": 12}));
    // ... but is recorded as the Secret key standing for it.
    assert!(
        net.outputs["token"].get("secret_key_ref").is_some(),
        "{:?}",
        net.outputs
    );

    // Wave 2 was rendered with the real value.
    let content = w
        .nestor
        .store()
        .revision_content(&d.id)
        .await
        .unwrap()
        .unwrap();
    assert!(content.artifacts["app"][0].content.contains("alpha-real"));

    // The secret is nowhere: not in the record, the events, the logs, the
    // rendered files or the GitOps repository.
    let logs = w.nestor.logs(&d.id).await.unwrap();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs[0].text.contains("terraform apply"), "{}", logs[0].text);
    assert!(logs[0].text.contains("Apply complete"), "{}", logs[0].text);
    let record = serde_json::to_string(&w.nestor.deployment(&d.id).await.unwrap()).unwrap();
    let texts = [
        record,
        all_events(&w.nestor).await,
        serde_json::to_string(&logs).unwrap(),
        serde_json::to_string(&content).unwrap(),
    ];
    for text in &texts {
        assert!(!text.contains("s3cr3t"), "the secret leaked: {text}");
    }
    // State is local, under the data dir; nothing of it was committed.
    let state = state(&w.workspace("stack", "net"));
    assert_eq!(
        state["resources"][0]["instances"][0]["attributes"]["output"]["value"],
        "alpha-real"
    );
    let committed = walk(&w.repo());
    assert!(
        committed.iter().all(|p| !p.contains("stack")),
        "{committed:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if p.is_dir() {
                found.extend(walk(&p));
            } else {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn a_failing_module_fails_with_its_diagnostics_and_skips_dependents() {
    let Some(binary) = terraform("failing") else {
        return;
    };
    let w = world(binary, None).await;
    let request = request(
        "broken",
        json!([
            {"name": "bad", "catalog_ref": "tf-failing", "engine": "terraform", "config": {"name": "x"}},
            {"name": "app", "catalog_ref": "tf-consumer", "engine": "terraform", "config": {
                "upstream": "{{ resources.bad.outputs.id }}", "token": "t"
            }},
            {"name": "fine", "catalog_ref": "tf-producer", "engine": "terraform", "config": {"name": "ok"}}
        ]),
    );
    let d = w.nestor.apply(&request, None).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Failed);
    let bad = resource(&d, "bad");
    assert_eq!(bad.status, ResourceStatus::Failed);
    let why = bad.error.as_deref().unwrap();
    assert!(why.starts_with("[ENGINE_FAILED]"), "{why}");
    assert!(why.contains("the failing module refuses x"), "{why}");
    assert_eq!(resource(&d, "app").status, ResourceStatus::Skipped);
    // An independent resource of the same wave still applied.
    assert_eq!(resource(&d, "fine").status, ResourceStatus::Applied);
    assert!(d.error.as_deref().unwrap().contains("refuses x"));
    let logs = w.nestor.logs(&d.id).await.unwrap();
    let bad_log = logs.iter().find(|l| l.resource == "bad").unwrap();
    assert!(
        bad_log.text.contains("the failing module refuses x"),
        "{}",
        bad_log.text
    );
    assert!(bad_log.text.contains("# exit 1"), "{}", bad_log.text);
}

#[tokio::test]
async fn nestor_plan_shows_terraforms_own_plan() {
    let Some(binary) = terraform("plan") else {
        return;
    };
    let w = world(binary, None).await;
    let first = w.nestor.plan(&two_waves("planned", "one")).await.unwrap();
    let net = first.resources.iter().find(|r| r.name == "net").unwrap();
    let plan = net.tool_plan.as_ref().unwrap();
    assert_eq!((plan.add, plan.change, plan.destroy), (1, 0, 0), "{plan:?}");
    assert!(
        plan.changes
            .iter()
            .any(|c| c.ends_with("terraform_data.x (create)")),
        "{plan:?}"
    );
    // A plan writes no state.
    assert!(!w
        .workspace("planned", "net")
        .join("terraform.tfstate")
        .exists());

    w.nestor
        .apply(&two_waves("planned", "one"), None)
        .await
        .unwrap();
    let second = w.nestor.plan(&two_waves("planned", "two")).await.unwrap();
    let net = second.resources.iter().find(|r| r.name == "net").unwrap();
    let plan = net.tool_plan.as_ref().unwrap();
    assert_eq!((plan.add, plan.change, plan.destroy), (0, 1, 0), "{plan:?}");
    assert!(
        plan.changes
            .iter()
            .any(|c| c.ends_with("terraform_data.x (update)")),
        "{plan:?}"
    );
    // The consumer is planned against the producer's current outputs.
    let app = second.resources.iter().find(|r| r.name == "app").unwrap();
    let plan = app.tool_plan.as_ref().unwrap();
    assert!(plan.error.is_none(), "{plan:?}");
    assert_eq!((plan.add, plan.change, plan.destroy), (0, 0, 0), "{plan:?}");
}
