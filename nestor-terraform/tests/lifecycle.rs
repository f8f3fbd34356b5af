//! A Terraform deployment's life after its first apply: destroy when a
//! revision-1 deployment is deleted, rollback applying the earlier
//! configuration, and drift made outside Nestor, detected and reconciled.

use nestor_core::*;
use serde_json::json;

use crate::support::*;

fn producer(name: &str, value: &str) -> DeploymentRequest {
    request(
        name,
        json!([{"name": "net", "catalog_ref": "tf-producer", "engine": "terraform", "config": {"name": value}}]),
    )
}

#[tokio::test]
async fn deleting_revision_one_destroys_what_terraform_made() {
    let Some(binary) = terraform("destroy") else {
        return;
    };
    let w = world(binary, None).await;
    let d = w.nestor.apply(&producer("gone", "a"), None).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{d:#?}");
    let ws = w.workspace("gone", "net");
    assert_eq!(state(&ws)["resources"].as_array().unwrap().len(), 1);

    let removed = w.nestor.delete(&d.id).await.unwrap();
    assert_eq!(removed.status, DeploymentStatus::Succeeded, "{removed:#?}");
    assert!(removed.resources.is_empty());
    assert_eq!(state(&ws)["resources"], json!([]), "destroy left resources");
    assert_eq!(
        w.nestor.deployment(&d.id).await.unwrap().status,
        DeploymentStatus::RolledBack
    );
    let log = std::fs::read_to_string(ws.join("logs/r2.log")).unwrap();
    assert!(log.contains("terraform destroy"), "{log}");
    assert!(log.contains("Destroy complete"), "{log}");
}

#[tokio::test]
async fn a_rollback_applies_the_earlier_configuration() {
    let Some(binary) = terraform("rollback") else {
        return;
    };
    let w = world(binary, None).await;
    let first = w
        .nestor
        .apply(&two_waves("rolled", "a"), None)
        .await
        .unwrap();
    let second = w
        .nestor
        .apply(&two_waves("rolled", "b"), None)
        .await
        .unwrap();
    assert_eq!(second.status, DeploymentStatus::Succeeded, "{second:#?}");
    assert_eq!(
        resource(&second, "app").outputs["echo"],
        json!({"value": "consumer of b-real"})
    );

    let back = w.nestor.rollback(&second.id, None).await.unwrap();
    assert_eq!(back.status, DeploymentStatus::Succeeded, "{back:#?}");
    assert_eq!(back.revision, 3);
    assert_eq!(back.rollback_of, Some(first.revision));
    assert_eq!(
        resource(&back, "net").outputs["id"],
        json!({"value": "a-real"})
    );
    assert_eq!(
        resource(&back, "app").outputs["echo"],
        json!({"value": "consumer of a-real"})
    );
    // Terraform's state holds revision 1's values again.
    let state = state(&w.workspace("rolled", "app"));
    assert_eq!(
        state["resources"][0]["instances"][0]["attributes"]["output"]["value"],
        "consumer of a-real"
    );
    assert_eq!(
        w.nestor.deployment(&second.id).await.unwrap().status,
        DeploymentStatus::RolledBack
    );
}

#[tokio::test]
async fn drift_outside_nestor_is_detected_then_reconciled_by_a_new_apply() {
    let Some(binary) = terraform("drift") else {
        return;
    };
    let w = world(binary, None).await;
    let d = w
        .nestor
        .apply(&producer("drifty", "a"), None)
        .await
        .unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{d:#?}");
    // Nothing drifted yet.
    let reports = w.nestor.drift(None).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].resources.is_empty(), "{reports:?}");

    // Someone changes the state's inputs behind Nestor's back.
    let ws = w.workspace("drifty", "net");
    let mut tampered = state(&ws);
    tampered["serial"] = json!(tampered["serial"].as_u64().unwrap() + 1);
    // terraform_data keeps its input as a typed value.
    tampered["resources"][0]["instances"][0]["attributes"]["input"]["value"] =
        json!("changed by hand");
    std::fs::write(
        ws.join("terraform.tfstate"),
        serde_json::to_string(&tampered).unwrap(),
    )
    .unwrap();

    let reports = w.nestor.drift(Some(&d.id)).await.unwrap();
    assert_eq!(reports[0].status, DeploymentStatus::Drifted);
    assert_eq!(reports[0].resources.len(), 1);
    let addresses = &reports[0].resources[0].addresses;
    assert!(
        addresses
            .iter()
            .any(|a| a.contains("module.net.terraform_data.x")),
        "{addresses:?}"
    );
    assert_eq!(
        w.nestor.deployment(&d.id).await.unwrap().status,
        DeploymentStatus::Drifted
    );
    let events = w.nestor.store().read_after(0, 10_000).await.unwrap();
    let drifted: Vec<&Event> = events
        .iter()
        .filter(|e| e.event_type == EventType::DeploymentDrifted)
        .collect();
    assert_eq!(drifted.len(), 1, "one event per drift found");
    assert_eq!(drifted[0].data["drift"][0]["resource"], "net");
    // Checking again finds it still drifted, with no second event.
    w.nestor.drift(None).await.unwrap_or_default();
    let again = w.nestor.store().read_after(0, 10_000).await.unwrap();
    assert_eq!(
        again
            .iter()
            .filter(|e| e.event_type == EventType::DeploymentDrifted)
            .count(),
        1
    );

    // Re-applying reconciles: a new revision, and no drift left.
    let fixed = w
        .nestor
        .apply(&producer("drifty", "a"), None)
        .await
        .unwrap();
    assert_eq!(fixed.status, DeploymentStatus::Succeeded, "{fixed:#?}");
    let state = state(&ws);
    assert_eq!(
        state["resources"][0]["instances"][0]["attributes"]["input"]["value"],
        "a-real"
    );
    let reports = w.nestor.drift(Some(&fixed.id)).await.unwrap();
    assert!(reports[0].resources.is_empty(), "{reports:?}");
    assert_eq!(reports[0].status, DeploymentStatus::Succeeded);
}
