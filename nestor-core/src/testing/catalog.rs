//! The catalog store: publishing, immutability, version order, pre-releases and
//! yanks, requirements, bump rules, dependencies and batch publishes.

use std::sync::Arc;

use crate::*;

use super::{definition, publish, service, v};

/// Publish, read back by exact version, and `latest` moves forward.
pub async fn publish_get_and_latest(store: Arc<dyn CatalogStore>) {
    assert_eq!(
        publish(&store, definition("db", "1.0.0")).await,
        PublishOutcome::Created
    );
    let got = store
        .get_version("db", &v("1.0.0"))
        .await
        .unwrap()
        .expect("published version is readable");
    assert_eq!(got.definition, definition("db", "1.0.0"));
    assert!(!got.yanked);
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.0.0")
    );

    let mut next = definition("db", "1.1.0");
    next.metadata.description = "now with more".into();
    publish(&store, next).await;
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.1.0")
    );
    assert!(store
        .get_version("db", &v("9.9.9"))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_version("nope", &v("1.0.0"))
        .await
        .unwrap()
        .is_none());
    assert!(store.latest("nope").await.unwrap().is_none());
    let err = store
        .resolve("nope", &VersionSpec::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceNotFound);
    let err = store
        .resolve("db", &VersionSpec::Exact(v("3.0.0")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionNotFound);
}

/// Same content is a no-op; other content is `VERSION_IMMUTABLE`, at the
/// service and at the store.
pub async fn immutability(store: Arc<dyn CatalogStore>) {
    publish(&store, definition("db", "1.0.0")).await;
    assert_eq!(
        publish(&store, definition("db", "1.0.0")).await,
        PublishOutcome::Unchanged
    );

    let mut changed = definition("db", "1.0.0");
    changed.metadata.description = "sneaky edit".into();
    let err = service(&store)
        .publish(changed.clone(), None, "test")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionImmutable);
    let err = store
        .insert_version(PublishedVersion::new(changed, 0, None))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::VersionImmutable,
        "the store itself enforces immutability"
    );
    assert_eq!(
        store
            .get_version("db", &v("1.0.0"))
            .await
            .unwrap()
            .unwrap()
            .definition
            .metadata
            .description,
        "Test definition db",
        "the original content is kept"
    );
}

/// Version history is ordered by semver, not by string, pre-releases
/// included.
pub async fn versions_newest_first_by_semver(store: Arc<dyn CatalogStore>) {
    for version in ["1.2.0", "1.10.0", "1.9.0", "1.9.1", "0.9.0"] {
        store
            .insert_version(PublishedVersion::new(definition("db", version), 0, None))
            .await
            .unwrap();
    }
    let order: Vec<String> = store
        .versions("db")
        .await
        .unwrap()
        .iter()
        .map(|s| s.version.to_string())
        .collect();
    assert_eq!(order, ["1.10.0", "1.9.1", "1.9.0", "1.2.0", "0.9.0"]);
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.10.0")
    );
    assert!(store.versions("nope").await.unwrap().is_empty());

    // Pre-releases by SemVer precedence: numeric identifiers as numbers,
    // a release above its own pre-releases.
    for version in [
        "2.0.0-rc.9",
        "2.0.0",
        "2.0.0-beta",
        "2.0.0-rc.10",
        "10.0.0-alpha",
        "2.0.0-rc.9.1",
    ] {
        store
            .insert_version(PublishedVersion::new(definition("pre", version), 0, None))
            .await
            .unwrap();
    }
    let order: Vec<String> = store
        .versions("pre")
        .await
        .unwrap()
        .iter()
        .map(|s| s.version.to_string())
        .collect();
    assert_eq!(
        order,
        [
            "10.0.0-alpha",
            "2.0.0",
            "2.0.0-rc.10",
            "2.0.0-rc.9.1",
            "2.0.0-rc.9",
            "2.0.0-beta"
        ]
    );
    assert_eq!(
        store.latest("pre").await.unwrap().unwrap().version(),
        &v("2.0.0"),
        "a release beats a newer pre-release"
    );
}

/// Pre-releases count for latest only when nothing else exists; yanked
/// versions are never latest but stay readable by exact version.
pub async fn prerelease_and_yank_rules(store: Arc<dyn CatalogStore>) {
    store
        .insert_version(PublishedVersion::new(
            definition("db", "2.0.0-rc.1"),
            0,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("2.0.0-rc.1"),
        "only a pre-release exists"
    );
    store
        .insert_version(PublishedVersion::new(definition("db", "1.0.0"), 0, None))
        .await
        .unwrap();
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.0.0"),
        "a release beats a pre-release"
    );

    assert!(store.set_yanked("db", &v("1.0.0"), true).await.unwrap());
    assert!(
        !store.set_yanked("db", &v("1.0.0"), true).await.unwrap(),
        "yanking twice changes nothing"
    );
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("2.0.0-rc.1")
    );
    let exact = store
        .resolve("db", &VersionSpec::Exact(v("1.0.0")))
        .await
        .unwrap();
    assert!(
        exact.yanked,
        "a yanked version stays readable by exact version"
    );
    let err = store
        .resolve("db", &VersionSpec::parse("^1").unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::VersionNotFound,
        "a requirement never picks a yanked version"
    );
    assert!(store
        .versions("db")
        .await
        .unwrap()
        .iter()
        .any(|s| s.yanked && s.version == v("1.0.0")));

    store
        .set_yanked("db", &v("2.0.0-rc.1"), true)
        .await
        .unwrap();
    assert!(
        store.latest("db").await.unwrap().is_none(),
        "everything yanked: no latest"
    );
    assert_eq!(
        store
            .set_yanked("db", &v("5.0.0"), true)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::VersionNotFound
    );
}

/// Requirements pick the greatest matching version with Cargo's meaning.
pub async fn requirements_use_cargo_semantics(store: Arc<dyn CatalogStore>) {
    for version in ["1.2.0", "1.3.5", "1.10.0", "2.0.0", "2.1.0-beta.1"] {
        store
            .insert_version(PublishedVersion::new(definition("db", version), 0, None))
            .await
            .unwrap();
    }
    let pick = |req: &'static str| {
        let store = store.clone();
        async move {
            store
                .resolve("db", &VersionSpec::parse(req).unwrap())
                .await
                .map(|p| p.version().to_string())
        }
    };
    assert_eq!(pick("^1.2").await.unwrap(), "1.10.0");
    assert_eq!(pick("~1.3.0").await.unwrap(), "1.3.5");
    assert_eq!(pick(">=1, <2").await.unwrap(), "1.10.0");
    assert_eq!(pick("*").await.unwrap(), "2.0.0");
    assert_eq!(
        pick("1.2.0").await.unwrap(),
        "1.2.0",
        "a bare full version is exact"
    );
    assert_eq!(
        pick("^3").await.unwrap_err().code(),
        ErrorCode::VersionNotFound
    );
}

/// Of 16 concurrent publishers of one name@version with different content,
/// exactly one wins; with the same content, one creates and the rest see
/// `unchanged`.
pub async fn concurrent_publishers_one_wins(store: Arc<dyn CatalogStore>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut def = definition("raced", "1.0.0");
            def.metadata.description = format!("writer {i}");
            store
                .insert_version(PublishedVersion::new(def, 0, None))
                .await
        }));
    }
    let mut created = 0;
    let mut immutable = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(PublishOutcome::Created) => created += 1,
            Err(e) if e.code() == ErrorCode::VersionImmutable => immutable += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((created, immutable), (1, 15));

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            service(&store)
                .publish(definition("same", "1.0.0"), None, "t")
                .await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(
            t.await
                .unwrap()
                .expect("same content never conflicts")
                .outcome,
        );
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == PublishOutcome::Created)
            .count(),
        1
    );
}

/// A breaking change needs a major bump; the error lists the changes and
/// the smallest valid version; nothing is written.
pub async fn bump_rules_enforced(store: Arc<dyn CatalogStore>) {
    publish(&store, definition("db", "1.0.0")).await;
    let mut breaking = definition("db", "1.1.0");
    breaking.spec.required_inputs.push(Input {
        name: "region".into(),
        value_type: ValueType::String,
        description: String::new(),
        sensitive: false,
        default: None,
        validation: Validation::default(),
    });
    let err = service(&store)
        .publish(breaking.clone(), None, "t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BreakingChange);
    assert_eq!(err.details()["minimum_version"], "2.0.0");
    assert_eq!(err.details()["changes"][0]["kind"], "breaking");
    assert!(
        store
            .get_version("db", &v("1.1.0"))
            .await
            .unwrap()
            .is_none(),
        "nothing written"
    );

    breaking.metadata.version = v("2.0.0");
    assert_eq!(publish(&store, breaking).await, PublishOutcome::Created);

    let mut cosmetic = definition("db", "1.0.1");
    cosmetic.metadata.description = "typo fixed".into();
    assert_eq!(
        publish(&store, cosmetic).await,
        PublishOutcome::Created,
        "a backport patch compares with 1.0.0"
    );
}

/// Dependencies must name a published, non-yanked matching version.
pub async fn dependencies_must_resolve(store: Arc<dyn CatalogStore>) {
    let mut app = definition("app", "1.0.0");
    app.spec.dependencies.push(Dependency {
        name: "network".into(),
        version: "^1.5".into(),
    });
    let err = service(&store)
        .publish(app.clone(), None, "t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DependencyNotFound);
    assert_eq!(err.field_errors()[0].field, "spec.dependencies[0].name");

    publish(&store, definition("network", "1.4.0")).await;
    let err = service(&store)
        .publish(app.clone(), None, "t")
        .await
        .unwrap_err();
    assert_eq!(
        err.field_errors()[0].field,
        "spec.dependencies[0].version",
        "1.4.0 does not match ^1.5"
    );

    publish(&store, definition("network", "1.5.2")).await;
    assert_eq!(publish(&store, app.clone()).await, PublishOutcome::Created);

    service(&store)
        .set_yanked("network", &v("1.5.2"), true, "t")
        .await
        .unwrap();
    let mut app2 = app;
    app2.metadata.version = v("1.0.1");
    assert_eq!(
        service(&store)
            .publish(app2, None, "t")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::DependencyNotFound,
        "a yanked version does not satisfy a dependency"
    );
}

/// A batch publish gives each definition the result a single publish
/// would, sees earlier items of the batch, and writes nothing refused.
pub async fn batch_publish_applies_every_rule(store: Arc<dyn CatalogStore>) {
    publish(&store, definition("db", "1.0.0")).await;
    let mut app = definition("app", "1.0.0");
    app.spec.dependencies.push(Dependency {
        name: "net".into(),
        version: "^1".into(),
    });
    let mut conflicting = definition("db", "1.0.0");
    conflicting.metadata.description = "other content".into();
    let mut breaking = definition("net", "1.1.0");
    breaking.spec.outputs.clear();
    let items = vec![
        (definition("net", "1.0.0"), None),
        (app, None),
        (definition("db", "1.0.0"), None),
        (conflicting, None),
        (breaking, None),
        (definition("db", "1.0.1"), None),
    ];
    let results = service(&store).publish_many(items, "sync").await.unwrap();
    let summary: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(p) => format!("{:?}", p.outcome),
            Err(e) => e.code().to_string(),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "Created",
            "Created",
            "Unchanged",
            "VERSION_IMMUTABLE",
            "BREAKING_CHANGE",
            "Created"
        ],
        "a dependency published earlier in the batch counts; each item keeps its own outcome"
    );
    assert!(
        store
            .get_version("net", &v("1.1.0"))
            .await
            .unwrap()
            .is_none(),
        "refused items are not written"
    );
    let events: Vec<(String, String)> = store
        .read_after(1, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type.as_str().to_string(), e.subject))
        .collect();
    let expected = [
        ("resource.created", "net:1.0.0"),
        ("resource.created", "app:1.0.0"),
        ("resource.updated", "db:1.0.1"),
    ];
    assert_eq!(
        events,
        expected.map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(store
        .versions_many(&["db".into(), "ghost".into()])
        .await
        .unwrap()["ghost"]
        .is_empty());
}
