//! The services end to end through [`nestor_core::Nestor`] over the memory
//! store: a source synced (definitions and compositions), a composition
//! planned and applied wave by wave with outputs flowing, a rollback. The
//! parts around the core are in-memory ones (see `support`).

mod governance;
mod policies;
mod secrets;
mod support;

use nestor_core::*;
use serde_json::json;
use support::*;

pub(crate) const WEB_APP: &str = r#"apiVersion: composer.nestor.io/v1
kind: Composition
metadata: {name: web-app, team: alpha, version: "1.0.0"}
spec:
  parameters:
    - {name: size, type: string, default: small}
  resources:
    - name: db
      type: database:^1
      engine: terraform
      config: {size: "{{ params.size }}"}
    - name: app
      type: app:^1
      engine: helm
      config:
        env: {DB: "{{ resources.db.outputs.endpoint }}"}
"#;

/// A source holding the database and app definitions and alpha's web-app.
pub(crate) fn web_app_source() -> MapSource {
    let source = MapSource::new("catalog");
    let db = definition(
        "database",
        "1.0.0",
        "a database",
        "[{name: endpoint, type: string}]",
    );
    source.set("db.yaml", Some(&db));
    source.set(
        "app.yaml",
        Some(&definition("app", "1.0.0", "an app", "[]")),
    );
    source.set("teams/alpha.yaml", Some(WEB_APP));
    source
}

pub(crate) fn request(params: serde_json::Value) -> DeploymentRequest {
    serde_json::from_value(json!({
        "team": "alpha", "environment": "staging", "name": "checkout",
        "composition": "web-app", "params": params,
    }))
    .unwrap()
}

#[tokio::test]
async fn a_sync_publishes_definitions_and_compositions_and_yanks_only_what_vanished() {
    let (nestor, _) = nestor();
    let source = MapSource::new("catalog");
    source.set(
        "db.yaml",
        Some(&definition(
            "database",
            "1.0.0",
            "a database",
            "[{name: endpoint, type: string}]",
        )),
    );
    source.set(
        "app.yaml",
        Some(&definition("app", "1.0.0", "an app", "[]")),
    );
    source.set(
        "cache.yaml",
        Some(&definition("cache", "1.0.0", "a cache", "[]")),
    );
    source.set("teams/alpha.yaml", Some(WEB_APP));
    let first = nestor.sync(&source).await.unwrap();
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let mut published = first.published.clone();
    published.sort();
    assert_eq!(
        published,
        [
            "alpha/web-app:1.0.0",
            "app:1.0.0",
            "cache:1.0.0",
            "database:1.0.0"
        ]
    );
    assert_eq!(nestor.compositions(Some("alpha")).await.unwrap().len(), 1);

    // An in-place edit is refused and keeps its version; a deleted file's
    // version is yanked.
    source.set(
        "db.yaml",
        Some(&definition(
            "database",
            "1.0.0",
            "a typo fixed",
            "[{name: endpoint, type: string}]",
        )),
    );
    source.set("cache.yaml", None);
    let second = nestor.sync(&source).await.unwrap();
    assert_eq!(second.yanked, ["cache:1.0.0"]);
    assert_eq!(second.errors.len(), 1, "{:?}", second.errors);
    assert_eq!(
        (
            second.errors[0].file.as_str(),
            second.errors[0].code.as_str()
        ),
        ("db.yaml", "VERSION_IMMUTABLE")
    );
    let db = nestor.get("database", &VersionSpec::Latest).await.unwrap();
    assert_eq!(
        (db.yanked, db.definition.metadata.description.as_str()),
        (false, "a database")
    );
    let cache = nestor.get("cache", &VersionSpec::Latest).await;
    assert_eq!(cache.unwrap_err().code(), ErrorCode::VersionNotFound);

    // The head did not move: nothing is read again.
    let third = nestor.sync(&source).await.unwrap();
    assert_eq!(
        (third.files_read, third.published.len(), third.yanked.len()),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_sync_spread_over_the_cores_reports_each_file_once() {
    let (nestor, _) = nestor();
    let source = MapSource::new("catalog");
    for i in 0..600 {
        let name = format!("res-{i:03}");
        source.set(
            &format!("{name}.yaml"),
            Some(&definition(&name, "1.0.0", "many", "[]")),
        );
    }
    // One broken file among them reports its own name and nothing else.
    source.set("res-300.yaml", Some("apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\nmetadata: {name: res-300}\n"));
    let report = nestor.sync(&source).await.unwrap();
    assert_eq!(report.published.len(), 599);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].file, "res-300.yaml");
    let (mut listed, mut cursor) = (0, None);
    for _ in 0..10 {
        let page = PageRequest {
            limit: PageRequest::MAX_LIMIT,
            cursor,
        };
        let page = nestor.list(&ListFilter::default(), &page).await.unwrap();
        listed += page.items.len();
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(listed, 599);
}

#[tokio::test]
async fn an_apply_renders_wave_by_wave_with_outputs_flowing_and_rolls_back() {
    let (nestor, executor) = nestor();
    nestor.sync(&web_app_source()).await.unwrap();

    let plan = nestor.plan(&request(json!({}))).await.unwrap();
    assert_eq!(
        plan.deployment.waves,
        [vec!["db".to_string()], vec!["app".to_string()]]
    );
    assert_eq!(plan.diff.added, ["app", "db"]);
    assert!(
        executor.applied.lock().unwrap().is_empty(),
        "a plan applies nothing"
    );

    let first = nestor.apply(&request(json!({})), None).await.unwrap();
    assert_eq!(
        (first.revision, first.status),
        (1, DeploymentStatus::Succeeded),
        "{:?}",
        first.error
    );
    {
        let applied = executor.applied.lock().unwrap();
        assert_eq!(applied.len(), 1, "one commit per apply");
        let app = &applied[0].files["app"][0];
        assert_eq!(
            field(app, "inputs.env.DB"),
            "ref://db/endpoint",
            "db's output reached app"
        );
        let db_wave = field(&applied[0].files["db"][0], "wave");
        assert_eq!(
            (db_wave, field(app, "wave")),
            (json!(1), json!(2)),
            "waves count from 1"
        );
        assert_eq!(
            (
                applied[0].target.revision,
                applied[0].target.key.team.as_str()
            ),
            (1, "alpha")
        );
    }

    let second = nestor
        .apply(&request(json!({"size": "large"})), None)
        .await
        .unwrap();
    assert_eq!(second.revision, 2);
    let back = nestor.rollback(&second.id, Some(1)).await.unwrap();
    assert_eq!(
        (back.revision, back.rollback_of, back.status),
        (3, Some(1), DeploymentStatus::Succeeded)
    );
    let applied = executor.applied.lock().unwrap();
    let sizes: Vec<_> = applied
        .iter()
        .map(|a| field(&a.files["db"][0], "inputs.size"))
        .collect();
    assert_eq!(
        sizes,
        ["small", "large", "small"],
        "the rollback re-applied revision 1's files"
    );
}

#[tokio::test]
async fn an_apply_with_an_unknown_parameter_is_refused_before_anything_is_applied() {
    let (nestor, executor) = nestor();
    nestor.sync(&web_app_source()).await.unwrap();
    let refused = nestor
        .apply(&request(json!({"sise": "large"})), None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::ValidationFailed, "{refused}");
    assert!(
        refused.to_string().contains("sise")
            || format!("{:?}", refused.field_errors()).contains("sise"),
        "{refused}"
    );
    assert!(executor.applied.lock().unwrap().is_empty());
    let listed = nestor
        .deployments(&DeploymentFilter::default())
        .await
        .unwrap();
    assert!(listed.is_empty(), "a refused request records no deployment");
}
