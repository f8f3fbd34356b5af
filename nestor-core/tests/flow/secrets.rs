//! Sensitive values end to end through the facade: a literal refused at
//! plan and apply before anything is recorded (by request params, by a
//! composition's template), a reference handed to the engine as a Secret
//! key, a sensitive output redacted, and every write in the audit trail
//! under the actor the front-end named.

use super::support::*;
use nestor_core::*;
use serde_json::json;

const SECRET: &str = "pa55-w0rd-never-shown";

const DATABASE: &str = r#"apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: database, version: "1.0.0", provider: aws, category: test, resource_type: database}
spec:
  supported_engines: [terraform]
  required_inputs:
    - {name: password, type: string, sensitive: true}
  outputs:
    - {name: endpoint, type: string}
    - {name: token, type: string, sensitive: true}
"#;

const COMPOSITION: &str = r#"apiVersion: composer.nestor.io/v1
kind: Composition
metadata: {name: secured, team: alpha, version: "1.0.0"}
spec:
  parameters:
    - {name: db_password, type: string, sensitive: true}
    - {name: label, type: string, default: x}
  resources:
    - name: db
      type: database:^1
      config: {password: "{{ params.db_password }}"}
"#;

/// The same resource fed from a plain parameter: a template can turn a
/// literal into a sensitive value, so it is checked after rendering.
const LEAKY: &str = r#"apiVersion: composer.nestor.io/v1
kind: Composition
metadata: {name: leaky, team: alpha, version: "1.0.0"}
spec:
  parameters:
    - {name: label, type: string}
  resources:
    - name: db
      type: database:^1
      config: {password: "{{ params.label }}"}
"#;

fn request(composition: &str, params: serde_json::Value) -> DeploymentRequest {
    serde_json::from_value(json!({
        "team": "alpha", "environment": "staging", "name": "checkout",
        "composition": composition, "params": params,
    }))
    .unwrap()
}

fn refused_without_echo(e: &Error) {
    assert_eq!(e.code(), ErrorCode::ValidationFailed, "{e}");
    let text = format!("{e} {:?}", e.details());
    assert!(text.contains("secret_ref"), "explains the form: {text}");
    assert!(!text.contains(SECRET), "echoed the secret: {text}");
}

#[tokio::test]
async fn a_literal_secret_is_refused_a_reference_reaches_the_engine_and_writes_are_audited() {
    let (nestor, executor) = nestor();
    let source = MapSource::new("catalog");
    source.set("db.yaml", Some(DATABASE));
    source.set("teams/alpha.yaml", Some(COMPOSITION));
    source.set("teams/leaky.yaml", Some(LEAKY));
    let report = nestor.sync(&source).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let ci = nestor.acting_as(
        Actor::new("ci", vec!["team:alpha".into()])
            .with_request_id("req-1")
            .with_client("127.0.0.1:5000"),
    );
    // A literal for a sensitive parameter, and a plain one reaching a
    // sensitive input: refused at plan and at apply, nothing recorded.
    for (composition, params) in [
        ("secured", json!({"db_password": SECRET})),
        ("leaky", json!({"label": SECRET})),
    ] {
        refused_without_echo(
            &ci.plan(&request(composition, params.clone()))
                .await
                .unwrap_err(),
        );
        refused_without_echo(
            &ci.apply(&request(composition, params), None)
                .await
                .unwrap_err(),
        );
    }
    assert!(nestor
        .deployments(&DeploymentFilter::default())
        .await
        .unwrap()
        .is_empty());
    let events = nestor.events_after(0, 1000).await.unwrap();
    assert!(!serde_json::to_string(&events).unwrap().contains(SECRET));

    // A reference: the engine gets the Secret key, and so does the record.
    let reference = json!({"secret_ref": {"name": "checkout-db", "key": "password"}});
    let deployed = ci
        .apply(&request("secured", json!({"db_password": reference})), None)
        .await
        .unwrap();
    assert_eq!(deployed.status, DeploymentStatus::Succeeded, "{deployed:?}");
    let applied = executor.applied.lock().unwrap().clone();
    let db = &applied[0].files["db"][0];
    assert_eq!(
        field(db, "inputs.password"),
        json!({"secret_key_ref": {"name": "checkout-db", "namespace": "alpha--staging", "key": "password"}})
    );
    // A sensitive output's literal is redacted where it is recorded.
    let find = |d: &Deployment| {
        d.resources
            .iter()
            .find(|r| r.name == "db")
            .cloned()
            .unwrap()
    };
    let db = find(&deployed);
    assert_eq!(db.outputs["token"], json!({"value": REDACTED}));
    assert_eq!(
        db.outputs["endpoint"],
        json!({"value": "ref://db/endpoint"})
    );
    let stored = nestor.deployment(&deployed.id).await.unwrap();
    assert_eq!(find(&stored).outputs["token"], json!({"value": REDACTED}));

    // The trail: the refusals and the apply under ci, the sync as local.
    let trail = nestor
        .audit(&AuditQuery {
            action: Some("deployment.*".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(trail.len(), 3, "{trail:#?}");
    let newest = &trail[0].entry;
    assert_eq!(
        (
            newest.actor.name.as_str(),
            newest.outcome,
            newest.subject.as_str()
        ),
        ("ci", AuditOutcome::Succeeded, deployed.id.as_str())
    );
    assert_eq!(newest.actor.request_id.as_deref(), Some("req-1"));
    assert_eq!(newest.actor.client.as_deref(), Some("127.0.0.1:5000"));
    assert!(trail[1..]
        .iter()
        .all(|r| r.entry.outcome == AuditOutcome::Failed
            && r.entry.error.as_deref() == Some("VALIDATION_FAILED")));
    let syncs = nestor
        .audit(&AuditQuery {
            action: Some("catalog.sync".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(syncs[0].entry.actor.name, "local");
    assert_eq!(syncs[0].entry.subject, "catalog");
}

#[tokio::test]
async fn a_published_definition_and_a_yank_are_audited_with_their_changes() {
    let (nestor, _) = nestor();
    let platform = nestor.acting_as(Actor::new("platform-bot", vec!["platform".into()]));
    let first = parse_definition_yaml(&definition("cache", "1.0.0", "a cache", "[]")).unwrap();
    platform.publish(first, "platform-bot").await.unwrap();
    let second = parse_definition_yaml(&definition(
        "cache",
        "1.1.0",
        "a cache",
        "[{name: host, type: string}]",
    ))
    .unwrap();
    platform.publish(second, "platform-bot").await.unwrap();
    platform
        .yank("cache", &"1.0.0".parse().unwrap(), true, "platform-bot")
        .await
        .unwrap();
    let trail = nestor
        .audit(&AuditQuery {
            actor: Some("platform-bot".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    let actions: Vec<(&str, &str)> = trail
        .iter()
        .map(|r| (r.entry.action.as_str(), r.entry.subject.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("resource.yank", "cache:1.0.0"),
            ("resource.publish", "cache:1.1.0"),
            ("resource.publish", "cache:1.0.0")
        ]
    );
    let changes = &trail[1].entry.changes;
    assert!(
        changes
            .iter()
            .any(|c| c.kind == ChangeKind::Additive && c.field.contains("outputs")),
        "the classified changes of the publish: {changes:?}"
    );
    assert_eq!(trail[1].entry.actor.roles, ["platform"]);
}
