//! Catalog calls against a real server with the example catalog: each
//! answer, and each refusal decoded into the core error with its code.

use nestor_core::{Error, ErrorCode, ListFilter, PageRequest, PublishOutcome, VersionSpec};

use crate::support::{client, definition, definition_yaml, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_reads() {
    let s = Server::start().await;
    let c = s.client(None);

    let aws = ListFilter {
        provider: Some("aws".into()),
        ..ListFilter::default()
    };
    let first = c.list_latest(&aws, &PageRequest::first(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first
        .items
        .iter()
        .all(|v| v.definition.metadata.provider == "aws"));
    let mut page = PageRequest::first(2);
    page.cursor = first.next_cursor.clone();
    let second = c.list_latest(&aws, &page).await.unwrap();
    assert!(!second.items.is_empty());
    assert!(second.items.iter().all(|v| !first.items.contains(v)));
    let q = ListFilter {
        q: Some("mysql".into()),
        ..ListFilter::default()
    };
    let found = c.list_latest(&q, &PageRequest::default()).await.unwrap();
    assert!(found.items.iter().any(|v| v.name() == "aws-rds-mysql"));

    let latest = c.latest("aws-rds-mysql").await.unwrap();
    assert_eq!(latest.version().to_string(), "2.0.0");
    let same = c
        .resolve("aws-rds-mysql", &VersionSpec::Latest)
        .await
        .unwrap();
    assert_eq!(same, latest);
    let req = c
        .resolve("aws-rds-mysql", &VersionSpec::parse("^1.1").unwrap())
        .await
        .unwrap();
    assert_eq!(req.version().major, 1);
    let exact = c
        .resolve("aws-rds-mysql", &VersionSpec::parse("1.0.0").unwrap())
        .await
        .unwrap();
    assert_eq!(exact.version().to_string(), "1.0.0");

    let versions = c.versions("aws-rds-mysql").await.unwrap();
    assert_eq!(versions[0].version.to_string(), "2.0.0");
    assert!(versions.windows(2).all(|w| w[0].version > w[1].version));

    let hits = c.search("redis", &ListFilter::default(), 5).await.unwrap();
    assert!(hits[0].version.name().contains("redis"), "{hits:?}");

    let status = c.status().await.unwrap();
    // The count is taken in the background: absent until it is. On a
    // fresh store it is every version the sync published.
    let synced = status.syncs[0].published.len() as u64;
    assert!(synced > 0, "{status:?}");
    assert!(status.versions.is_none_or(|n| n == synced), "{status:?}");
    assert_eq!(status.sources, ["examples"]);
    assert_eq!(status.syncs[0].source, "examples");
    assert_eq!(c.last_event().await.unwrap(), status.last_event);
    assert!(status.last_event > 0);

    c.health().await.unwrap();
    let ready = c.ready().await.unwrap();
    assert!(
        !ready.ready && ready.store && ready.engines == 0,
        "{ready:?}"
    );
    assert!(c.openapi().await.unwrap()["paths"]["/api/v1/events"].is_object());
    assert!(c
        .metrics()
        .await
        .unwrap()
        .contains("nestor_http_requests_total"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_read_errors_carry_their_codes() {
    let s = Server::start().await;
    let c = s.client(None);
    match c.latest("no-such-thing").await.unwrap_err() {
        Error::ResourceNotFound { name } => assert_eq!(name, "no-such-thing"),
        other => panic!("{other:?}"),
    }
    let err = c.versions("no-such-thing").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceNotFound);
    match c
        .resolve("aws-rds-mysql", &VersionSpec::parse("^9").unwrap())
        .await
        .unwrap_err()
    {
        Error::VersionNotFound { name, version } => {
            assert_eq!((name.as_str(), version.as_str()), ("aws-rds-mysql", "^9"))
        }
        other => panic!("{other:?}"),
    }
    // A name the server refuses to look up: BAD_REQUEST with its message.
    let err = c.latest("Not_A_Name").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
    assert!(
        err.to_string().starts_with("bad request: \"Not_A_Name\""),
        "{err}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_yank_validate_and_sync() {
    let s = Server::start().await;
    let platform = s.client(Some("platform"));

    let def = definition("client-thing", "1.0.0", "first");
    let created = platform.publish(&def).await.unwrap();
    assert_eq!(created.outcome, PublishOutcome::Created);
    assert_eq!(created.version.definition, def);
    let again = platform.publish(&def).await.unwrap();
    assert_eq!(again.outcome, PublishOutcome::Unchanged);
    assert_eq!(
        platform.latest("client-thing").await.unwrap(),
        created.version
    );

    // 409: the same version with other content.
    let edited = definition("client-thing", "1.0.0", "edited in place");
    match platform.publish(&edited).await.unwrap_err() {
        Error::VersionImmutable { name, version } => {
            assert_eq!((name.as_str(), version.as_str()), ("client-thing", "1.0.0"))
        }
        other => panic!("{other:?}"),
    }

    // 422 with every field error, from YAML as a user wrote it.
    let broken = definition_yaml("client-broken", "1.0.0", "x")
        .replace("  provider: test\n", "")
        .replace("supported_engines: [terraform]", "supported_engines: []");
    let results = platform.publish_yaml(&broken).await.unwrap();
    let err = results.into_iter().next().unwrap().unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed);
    let fields: Vec<String> = err.field_errors().into_iter().map(|f| f.field).collect();
    assert!(
        fields.iter().any(|f| f == "metadata.provider"),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("spec.supported_engines")),
        "{fields:?}"
    );
    assert!(err.field_errors().iter().all(|f| !f.message.is_empty()));

    // A batch: one result per definition, in the order given.
    let batch = [
        definition("client-thing", "1.1.0", "second"),
        edited,
        definition("client-other", "0.1.0", "new"),
    ];
    let results = platform.publish_many(&batch).await.unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].as_ref().unwrap().outcome,
        PublishOutcome::Created
    );
    assert_eq!(
        results[1].as_ref().unwrap_err().code(),
        ErrorCode::VersionImmutable
    );
    assert_eq!(results[2].as_ref().unwrap().version.name(), "client-other");

    // Yank and unyank.
    let v = semver::Version::new(1, 1, 0);
    let yanked = platform.yank("client-thing", &v).await.unwrap();
    assert!(yanked.changed && yanked.version.yanked);
    assert!(!platform.yank("client-thing", &v).await.unwrap().changed);
    assert_eq!(
        platform
            .latest("client-thing")
            .await
            .unwrap()
            .version()
            .to_string(),
        "1.0.0"
    );
    assert!(
        !platform
            .unyank("client-thing", &v)
            .await
            .unwrap()
            .version
            .yanked
    );
    let err = platform
        .yank("client-thing", &semver::Version::new(9, 0, 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionNotFound);

    // Validate writes nothing and reports per document.
    let docs = format!(
        "{}---\n{}",
        definition_yaml("client-valid", "1.0.0", "ok"),
        broken
    );
    let report = platform.validate_yaml(&docs).await.unwrap();
    assert!(!report.valid);
    assert_eq!(report.documents.len(), 2);
    assert!(report.documents[0].errors.is_empty());
    assert_eq!(report.documents[0].name, "client-valid:1.0.0");
    assert!(!report.documents[1].errors.is_empty());
    let err = platform.latest("client-valid").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceNotFound);
    let json = serde_json::to_value(definition("client-valid", "1.0.0", "ok")).unwrap();
    assert!(platform.validate_json(&json).await.unwrap().valid);

    // Sync: in the background, or waiting for the report.
    assert_eq!(platform.trigger_sync(None).await.unwrap(), ["examples"]);
    let report = platform.sync("examples").await.unwrap();
    assert_eq!(report.source, "examples");
    assert!(report.errors.is_empty());
    let err = platform.sync("nowhere").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_token_with_the_role() {
    let s = Server::start().await;
    let def = definition("client-denied", "1.0.0", "x");
    match s.client(None).publish(&def).await.unwrap_err() {
        Error::Unauthorized { message } => assert!(!message.is_empty()),
        other => panic!("{other:?}"),
    }
    let err = client(&s.url, Some("not-a-token"))
        .latest("aws-rds-mysql")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    let err = s.client(Some("reader")).publish(&def).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    let err = s
        .client(Some("alpha"))
        .trigger_sync(Some("examples"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    // The refusal reads like a local one: code, message and nothing else.
    assert!(err.to_string().starts_with("forbidden: "), "{err}");
    s.stop().await;
}
