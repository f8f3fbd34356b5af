//! Compositions: versioned per team, immutable, resolved by requirement.

use std::sync::Arc;

use crate::*;

use super::v;

fn composition(team: &str, name: &str, version: &str, description: &str) -> PublishedComposition {
    let mut c = super::composition(team, name, version);
    c.spec.description = description.into();
    super::published(c, 0)
}

/// Compositions are namespaced by team, versioned and immutable.
pub async fn compositions_are_versioned_per_team(store: Arc<dyn Store>) {
    for (team, version) in [
        ("alpha", "1.0.0"),
        ("alpha", "1.10.0"),
        ("alpha", "1.9.0"),
        ("beta", "0.1.0"),
    ] {
        let outcome = store
            .insert_composition(composition(team, "web-app", version, team))
            .await
            .unwrap();
        assert_eq!(outcome, PublishOutcome::Created);
    }
    assert_eq!(
        store
            .insert_composition(composition("alpha", "web-app", "1.0.0", "alpha"))
            .await
            .unwrap(),
        PublishOutcome::Unchanged
    );
    let err = store
        .insert_composition(composition("alpha", "web-app", "1.0.0", "changed"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionImmutable);
    let versions = store
        .composition_versions("alpha", "web-app")
        .await
        .unwrap();
    assert_eq!(versions, [v("1.10.0"), v("1.9.0"), v("1.0.0")]);
    let beta = store
        .resolve_composition("beta", "web-app", &VersionSpec::Latest)
        .await
        .unwrap();
    assert_eq!(
        beta.composition.spec.description, "beta",
        "alpha/web-app ≠ beta/web-app"
    );
    let picked = store
        .resolve_composition("alpha", "web-app", &VersionSpec::parse("~1.9").unwrap())
        .await
        .unwrap();
    assert_eq!(picked.composition.metadata.version, v("1.9.0"));
    let err = store
        .resolve_composition("gamma", "web-app", &VersionSpec::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CompositionNotFound);
    store
        .insert_composition(composition("alpha", "data-pipeline", "1.0.0", "x"))
        .await
        .unwrap();
    let alpha: Vec<String> = store
        .list_compositions(Some("alpha"))
        .await
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c.composition.metadata.name, c.composition.metadata.version
            )
        })
        .collect();
    assert_eq!(alpha, ["data-pipeline@1.0.0", "web-app@1.10.0"]);
    assert_eq!(store.list_compositions(None).await.unwrap().len(), 3);
}
