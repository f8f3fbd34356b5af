//! The SQLite store runs the whole conformance suite on a real file, then
//! what only a file can get wrong: persistence, migrations, WAL, and two
//! handles on one file behaving like two processes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use std::collections::BTreeMap;

use nestor_core::testing::{definition, Fixture};
use nestor_core::{
    Artifact, CatalogReader, CatalogWriter, CompositionStore, CreateOutcome, Deployment,
    DeploymentFilter, DeploymentKey, DeploymentStatus, DeploymentStore, ErrorCode, EventLog,
    EventType, ListFilter, NewEvent, PageRequest, PublishOutcome, PublishedComposition,
    PublishedVersion, RevisionContent, SourceState, SyncStore,
};
use nestor_storage::SqliteStore;
use semver::Version;
use tempfile::TempDir;

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // A parent that does not exist yet: `open` creates it.
    let store = SqliteStore::open(dir.path().join("data").join("nestor.db")).unwrap();
    Fixture::with_guard(Arc::new(store), dir)
}

nestor_core::store_conformance_tests!(fresh());

/// The in-memory variant (one connection) passes the suite too.
mod in_memory {
    use super::*;

    nestor_core::store_conformance_tests!(async {
        Fixture::new(Arc::new(SqliteStore::open_in_memory().unwrap()))
    });
}

fn db_file() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nestor.db");
    (dir, path)
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn published(name: &str, version: &str) -> PublishedVersion {
    PublishedVersion::new(definition(name, version), 1_700_000_000, None)
}

fn event(subject: &str, timestamp: i64) -> NewEvent {
    NewEvent {
        event_type: EventType::ResourceCreated,
        source: "test".into(),
        subject: subject.into(),
        timestamp,
        data: serde_json::json!({"subject": subject}),
    }
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test]
async fn data_persists_across_reopen() {
    let (_dir, path) = db_file();
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .insert_version(published("db", "1.0.0"))
            .await
            .unwrap();
        store
            .insert_version(published("db", "1.1.0"))
            .await
            .unwrap();
        store.set_yanked("db", &v("1.1.0"), true).await.unwrap();
        store.append(event("db:1.0.0", 1)).await.unwrap();
        let state = SourceState {
            source: "platform".into(),
            head: Some("abc".into()),
            ..Default::default()
        };
        store.save_source_state(&state).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let got = store
        .get_version("db", &v("1.0.0"))
        .await
        .unwrap()
        .expect("persisted");
    assert_eq!(got, published("db", "1.0.0"));
    assert!(
        store
            .get_version("db", &v("1.1.0"))
            .await
            .unwrap()
            .unwrap()
            .yanked,
        "the yank persisted"
    );
    assert_eq!(
        store.latest("db").await.unwrap().unwrap().version(),
        &v("1.0.0")
    );
    assert_eq!(
        store.read_after(0, 10).await.unwrap()[0].subject,
        "db:1.0.0"
    );
    assert_eq!(
        store
            .source_state("platform")
            .await
            .unwrap()
            .unwrap()
            .head
            .as_deref(),
        Some("abc")
    );
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let (_dir, path) = db_file();
    let first = SqliteStore::open(&path).unwrap();
    assert_eq!(first.migrate().unwrap(), SqliteStore::SCHEMA_VERSION);
    first
        .insert_version(published("db", "1.0.0"))
        .await
        .unwrap();
    let second = SqliteStore::open(&path).unwrap();
    assert_eq!(second.migrate().unwrap(), SqliteStore::SCHEMA_VERSION);
    assert_eq!(
        second.migrate().unwrap(),
        SqliteStore::SCHEMA_VERSION,
        "migrating twice changes nothing"
    );
    assert!(
        second
            .get_version("db", &v("1.0.0"))
            .await
            .unwrap()
            .is_some(),
        "data survives re-migration"
    );
    let version: u32 = raw(&path)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SqliteStore::SCHEMA_VERSION);
}

#[tokio::test]
async fn a_newer_schema_is_refused_by_name() {
    let (_dir, path) = db_file();
    drop(SqliteStore::open(&path).unwrap());
    raw(&path).pragma_update(None, "user_version", 99).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.code(), ErrorCode::StorageUnavailable);
    assert!(
        err.to_string().contains("99"),
        "the error names the schema version: {err}"
    );
}

#[tokio::test]
async fn wal_mode_is_on() {
    let (_dir, path) = db_file();
    let _store = SqliteStore::open(&path).unwrap();
    let mode: String = raw(&path)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
}

/// A new file has 16 KiB pages (a version's row fits several to a page);
/// a file made with SQLite's default 4 KiB pages keeps them and works.
#[tokio::test]
async fn new_files_have_large_pages_and_old_ones_keep_theirs() {
    let page_size = |path: &Path| -> i64 {
        raw(path)
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    };
    let (_dir, path) = db_file();
    let store = SqliteStore::open(&path).unwrap();
    store
        .insert_version(published("db", "1.0.0"))
        .await
        .unwrap();
    assert_eq!(page_size(&path), 16 * 1024);

    let (_old_dir, old) = db_file();
    raw(&old)
        .execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (x); DROP TABLE t;")
        .unwrap();
    let store = SqliteStore::open(&old).unwrap();
    store
        .insert_version(published("db", "1.0.0"))
        .await
        .unwrap();
    assert_eq!(page_size(&old), 4096);
    let read = store.get_version("db", &v("1.0.0")).await.unwrap();
    assert!(read.is_some(), "the old file is read and written as before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_see_each_others_writes() {
    let (_dir, path) = db_file();
    let cli = SqliteStore::open(&path).unwrap();
    let server = SqliteStore::open(&path).unwrap();

    cli.insert_version(published("db", "1.0.0")).await.unwrap();
    let seen = server
        .get_version("db", &v("1.0.0"))
        .await
        .unwrap()
        .expect("a publish through one is visible");
    assert!(!seen.yanked);
    assert_eq!(
        server.latest("db").await.unwrap().unwrap().version(),
        &v("1.0.0")
    );

    // The server has 1.0.0 cached now; a yank elsewhere must still show.
    cli.insert_version(published("db", "1.1.0")).await.unwrap();
    assert_eq!(
        server.latest("db").await.unwrap().unwrap().version(),
        &v("1.1.0")
    );
    cli.set_yanked("db", &v("1.1.0"), true).await.unwrap();
    cli.set_yanked("db", &v("1.0.0"), true).await.unwrap();
    assert!(
        server
            .get_version("db", &v("1.0.0"))
            .await
            .unwrap()
            .unwrap()
            .yanked,
        "the cache does not hide a yank"
    );
    assert!(server.latest("db").await.unwrap().is_none());
    let listed = server
        .list_latest(&ListFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert!(
        listed.items.is_empty(),
        "a name with every version yanked is not listed"
    );

    // Immutability holds across handles.
    let mut other = definition("db", "1.0.0");
    other.metadata.description = "other content".into();
    let err = server
        .insert_version(PublishedVersion::new(other, 0, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionImmutable);

    // Event ids interleave without repeating.
    let mut ids = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 { &cli } else { &server };
        ids.push(store.append(event("x", i)).await.unwrap().id);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing across handles: {ids:?}"
    );
    assert_eq!(server.last_sequence().await.unwrap(), ids[9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_on_two_handles_one_wins() {
    let (_dir, path) = db_file();
    let handles = [
        Arc::new(SqliteStore::open(&path).unwrap()),
        Arc::new(SqliteStore::open(&path).unwrap()),
    ];
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = handles[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut def = definition("raced", "1.0.0");
            def.metadata.description = format!("writer {i}");
            store
                .insert_version(PublishedVersion::new(def, 0, None))
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(PublishOutcome::Created) => created += 1,
            Err(e) => assert_eq!(e.code(), ErrorCode::VersionImmutable, "{e}"),
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
}

/// Reads `latest` and `get_version` twice, so the second answer comes from
/// the name cache, and returns the latest version.
async fn read_twice(store: &SqliteStore, name: &str, exact: &str) -> Option<Version> {
    for _ in 0..2 {
        store.get_version(name, &v(exact)).await.unwrap();
        store.latest(name).await.unwrap();
    }
    store
        .latest(name)
        .await
        .unwrap()
        .map(|p| p.version().clone())
}

/// The server's cache must follow the CLI's writes on the same file at
/// once (the change probe runs before every cached read), through the
/// catalog service or straight through the store, which appends no event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_cache_follows_another_handles_publishes_yanks_and_deprecations() {
    let (_dir, path) = db_file();
    let cli = Arc::new(SqliteStore::open(&path).unwrap());
    let server = SqliteStore::open(&path).unwrap();
    let catalog = nestor_core::CatalogService::new(cli.clone());

    assert_eq!(read_twice(&server, "db", "1.0.0").await, None);
    catalog
        .publish(definition("db", "1.0.0"), None, "cli")
        .await
        .unwrap();
    assert_eq!(
        read_twice(&server, "db", "1.0.0").await,
        Some(v("1.0.0")),
        "a cached \"no version\" is dropped"
    );

    catalog
        .publish(definition("db", "1.1.0"), None, "cli")
        .await
        .unwrap();
    assert_eq!(read_twice(&server, "db", "1.1.0").await, Some(v("1.1.0")));

    // A yank through the service: latest falls back, the exact read shows it.
    catalog
        .set_yanked("db", &v("1.1.0"), true, "cli")
        .await
        .unwrap();
    let exact = server.get_version("db", &v("1.1.0")).await.unwrap();
    assert!(exact.unwrap().yanked, "the cached record is not served");
    assert_eq!(read_twice(&server, "db", "1.1.0").await, Some(v("1.0.0")));

    // An unyank straight through the store: no event is appended.
    let events = cli.last_sequence().await.unwrap();
    cli.set_yanked("db", &v("1.1.0"), false).await.unwrap();
    assert_eq!(cli.last_sequence().await.unwrap(), events);
    assert!(
        !server
            .get_version("db", &v("1.1.0"))
            .await
            .unwrap()
            .unwrap()
            .yanked
    );
    assert_eq!(read_twice(&server, "db", "1.1.0").await, Some(v("1.1.0")));

    // A deprecation is a new version: latest is that version, deprecated.
    let mut deprecated = definition("db", "1.2.0");
    deprecated.metadata.deprecated = true;
    deprecated.metadata.deprecation_message = "use db2".into();
    cli.insert_version(PublishedVersion::new(deprecated, 1, None))
        .await
        .unwrap();
    let latest = server.latest("db").await.unwrap().unwrap();
    assert_eq!(latest.version(), &v("1.2.0"));
    assert!(latest.definition.metadata.deprecated);
    assert_eq!(read_twice(&server, "db", "1.2.0").await, Some(v("1.2.0")));

    // Everything yanked: no latest, and resolve says which part is missing.
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        cli.set_yanked("db", &v(version), true).await.unwrap();
    }
    assert_eq!(server.latest("db").await.unwrap(), None);
    let err = server
        .resolve("db", &nestor_core::VersionSpec::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionNotFound);
}

/// More changed names than the probe drops one by one (a sync by another
/// process): the whole name cache goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_sized_change_by_another_handle_is_seen_for_every_name() {
    let (_dir, path) = db_file();
    let cli = SqliteStore::open(&path).unwrap();
    let server = SqliteStore::open(&path).unwrap();
    let names: Vec<String> = (0..200).map(|i| format!("res-{i:03}")).collect();
    let write = |v| nestor_core::VersionWrite::new(v, "test", 0).unwrap();
    let first: Vec<_> = names
        .iter()
        .step_by(2)
        .map(|n| write(published(n, "1.0.0")))
        .collect();
    cli.insert_versions(first).await.unwrap();
    for name in &names {
        read_twice(&server, name, "1.0.0").await;
    }
    let second: Vec<_> = names.iter().map(|n| write(published(n, "1.1.0"))).collect();
    cli.insert_versions(second).await.unwrap();
    for name in &names {
        assert_eq!(
            read_twice(&server, name, "1.1.0").await,
            Some(v("1.1.0")),
            "{name}"
        );
    }
    // Then a handful: dropped by name.
    for name in names.iter().take(3) {
        cli.set_yanked(name, &v("1.1.0"), true).await.unwrap();
    }
    for (i, name) in names.iter().enumerate() {
        let want = match i {
            0 | 2 => Some(v("1.0.0")),
            1 => None,
            _ => Some(v("1.1.0")),
        };
        assert_eq!(
            server
                .latest(name)
                .await
                .unwrap()
                .map(|p| p.version().clone()),
            want,
            "{name}"
        );
    }
}

/// A filtered list reads the provider, category and type of each name's
/// latest version from copies on `names`; they follow publishes and yanks
/// that move latest to a version with other values.
#[tokio::test]
async fn list_filters_follow_the_latest_version_of_each_name() {
    let (_dir, path) = db_file();
    let store = SqliteStore::open(&path).unwrap();
    let mut moved = definition("db", "2.0.0");
    moved.metadata.provider = "gcp".into();
    moved.metadata.category = "cache".into();
    moved.metadata.resource_type = "redis".into();
    store
        .insert_version(published("db", "1.0.0"))
        .await
        .unwrap();
    store
        .insert_version(PublishedVersion::new(moved, 1, None))
        .await
        .unwrap();
    store
        .insert_version(published("other", "1.0.0"))
        .await
        .unwrap();
    let names = |filter: ListFilter| {
        let store = &store;
        async move {
            store
                .list_latest(&filter, &PageRequest::first(10))
                .await
                .unwrap()
                .items
                .iter()
                .map(|p| format!("{}@{}", p.name(), p.version()))
                .collect::<Vec<_>>()
        }
    };
    let gcp = ListFilter {
        provider: Some("gcp".into()),
        ..Default::default()
    };
    let aws_db = ListFilter {
        provider: Some("aws".into()),
        category: Some("database".into()),
        resource_type: Some("mysql".into()),
        ..Default::default()
    };
    assert_eq!(names(gcp.clone()).await, ["db@2.0.0"]);
    assert_eq!(names(aws_db.clone()).await, ["other@1.0.0"]);

    store.set_yanked("db", &v("2.0.0"), true).await.unwrap();
    assert!(names(gcp.clone()).await.is_empty());
    assert_eq!(names(aws_db.clone()).await, ["db@1.0.0", "other@1.0.0"]);

    store.set_yanked("db", &v("1.0.0"), true).await.unwrap();
    assert_eq!(names(aws_db.clone()).await, ["other@1.0.0"]);
    store.set_yanked("db", &v("2.0.0"), false).await.unwrap();
    assert_eq!(names(gcp).await, ["db@2.0.0"]);
    assert_eq!(names(aws_db).await, ["other@1.0.0"]);
}

/// Readers filling the cache while another handle publishes must never
/// leave an older answer behind: once a publish returns, every read sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_racing_another_handles_publishes_never_keep_a_stale_latest() {
    let (_dir, path) = db_file();
    let cli = SqliteStore::open(&path).unwrap();
    let server = Arc::new(SqliteStore::open(&path).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (server, stop) = (server.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                server.latest("raced").await.unwrap();
                reads += 1;
                // A cache hit never waits; let a failing test shut down.
                tokio::task::yield_now().await;
            }
            reads
        }));
    }
    for patch in 0..150 {
        let version = format!("1.0.{patch}");
        cli.insert_version(published("raced", &version))
            .await
            .unwrap();
        for _ in 0..3 {
            let latest = server.latest("raced").await.unwrap().unwrap();
            assert_eq!(latest.version(), &v(&version), "after publishing {version}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0, "every reader ran");
    }
}

#[tokio::test]
async fn event_ids_keep_increasing_across_reopen_and_prune() {
    let (_dir, path) = db_file();
    let last = {
        let store = SqliteStore::open(&path).unwrap();
        for i in 0..3 {
            store.append(event("a", i)).await.unwrap();
        }
        assert_eq!(
            store.prune_before(i64::MAX).await.unwrap(),
            3,
            "prune everything"
        );
        assert_eq!(
            store.last_sequence().await.unwrap(),
            3,
            "the last sequence survives pruning"
        );
        store.last_sequence().await.unwrap()
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.last_sequence().await.unwrap(), last, "and reopening");
    let next = store.append(event("b", 10)).await.unwrap();
    assert!(next.id > last, "no id is reused: {} after {last}", next.id);
    assert_eq!(store.read_after(0, 10).await.unwrap().len(), 1);
}

/// A version's events keep its definition once: their rows hold what
/// follows the definition and point at the version's row, and read back
/// as the whole version, as published, even after a yank changes the row;
/// an event row holding its whole data (as every row of a file written
/// before schema version 6) reads as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versions_events_keep_its_definition_once() {
    use nestor_core::CatalogService;

    let (_dir, path) = db_file();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let svc = CatalogService::new(store.clone());
    let mut def = definition("db", "1.0.0");
    def.metadata.deprecated = true;
    svc.publish(def, None, "api").await.unwrap();
    let as_published = serde_json::json!(store
        .get_version("db", &v("1.0.0"))
        .await
        .unwrap()
        .unwrap()
        .into_inner());
    svc.set_yanked("db", &v("1.0.0"), true, "api")
        .await
        .unwrap();
    // A row as a build before schema version 6 wrote it.
    let whole = serde_json::to_string(&as_published).unwrap();
    raw(&path)
        .execute(
            "INSERT INTO events (event_type, source, subject, timestamp, data) \
             VALUES ('resource.updated', 'old', 'db:1.0.0', 1, ?1)",
            [&whole],
        )
        .unwrap();

    let rows: Vec<(String, usize, Option<i64>)> = raw(&path)
        .prepare("SELECT event_type, length(data), version_id FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let by_reference: Vec<&str> = rows
        .iter()
        .filter(|(_, _, id)| id.is_some())
        .map(|(kind, _, _)| kind.as_str())
        .collect();
    assert_eq!(by_reference, ["resource.created", "resource.deprecated"]);
    for (kind, len, id) in &rows[..2] {
        assert!(
            id.is_some() && *len < whole.len() / 3,
            "{kind} keeps {len} of {} bytes",
            whole.len()
        );
    }

    let events = store.read_after(0, 10).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "resource.created",
            "resource.deprecated",
            "resource.yanked",
            "resource.updated"
        ]
    );
    for e in [&events[0], &events[1], &events[3]] {
        assert_eq!(
            e.data,
            as_published,
            "{} reads as published",
            e.event_type.as_str()
        );
    }
    assert_eq!(events[0].data["yanked"], false, "as it was when published");
}

/// A batch appends its events several rows per statement: across those
/// statements they keep the batch's order, with increasing ids, and the
/// next append continues after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_appends_its_events_in_order() {
    use nestor_core::CatalogService;

    let (_dir, path) = db_file();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let svc = CatalogService::new(store.clone());
    let items: Vec<_> = (0..150)
        .map(|i| (definition(&format!("res-{i:03}"), "1.0.0"), None))
        .collect();
    let results = svc.publish_many(items, "sync").await.unwrap();
    assert!(results.iter().all(|r| r.is_ok()));
    store.append(event("after", 1)).await.unwrap();

    let events = store.read_after(0, 1000).await.unwrap();
    let subjects: Vec<String> = events.iter().map(|e| e.subject.clone()).collect();
    let mut expected: Vec<String> = (0..150).map(|i| format!("res-{i:03}:1.0.0")).collect();
    expected.push("after".into());
    assert_eq!(subjects, expected);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert_eq!(store.last_sequence().await.unwrap(), events[150].id);
}

/// The suites' composition with a config, so persistence is checked for
/// every field.
fn composition(team: &str, name: &str, version: &str) -> PublishedComposition {
    let mut c = nestor_core::testing::composition(team, name, version);
    c.spec.resources[0].config = BTreeMap::from([("size".into(), serde_json::json!(20))]);
    nestor_core::testing::published(c, 1_700_000_000)
}

/// The conformance suite's deployment, with a composition and params so
/// persistence is checked for every field.
fn deployment(id: &str, revision: u64) -> Deployment {
    Deployment {
        composition: Some("alpha/web-app:1.0.0".into()),
        params: BTreeMap::from([("size".into(), serde_json::json!("small"))]),
        ..nestor_core::testing::deployment(id, "staging", revision, 100 + revision as i64)
    }
}

fn content(file: &str) -> RevisionContent {
    RevisionContent {
        artifacts: BTreeMap::from([(
            "db".to_string(),
            vec![Artifact {
                path: file.into(),
                content: "{}".into(),
                media_type: "application/json".into(),
            }],
        )]),
        ..Default::default()
    }
}

#[tokio::test]
async fn compositions_and_deployments_persist_across_reopen() {
    let (_dir, path) = db_file();
    let applied = {
        let store = SqliteStore::open(&path).unwrap();
        for version in ["1.0.0", "1.10.0", "1.9.0"] {
            let c = composition("alpha", "web-app", version);
            store.insert_composition(c).await.unwrap();
        }
        let first = deployment("d1", 1);
        let outcome = store
            .create_deployment(&first, &content("a.json"), Some(("key-1", "hash-a")))
            .await
            .unwrap();
        assert_eq!(outcome, CreateOutcome::Created);
        store
            .save_revision_content("d1", &content("b.json"))
            .await
            .unwrap();
        let mut applied = first.clone();
        applied.status = DeploymentStatus::Succeeded;
        applied.commit = Some("abc123".into());
        store.update_deployment(&applied, 0).await.unwrap();
        Deployment {
            generation: 1,
            ..applied
        }
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store
            .composition_versions("alpha", "web-app")
            .await
            .unwrap(),
        [v("1.10.0"), v("1.9.0"), v("1.0.0")]
    );
    assert_eq!(
        store
            .get_composition("alpha", "web-app", &v("1.9.0"))
            .await
            .unwrap(),
        Some(composition("alpha", "web-app", "1.9.0"))
    );
    let listed = store.list_compositions(Some("alpha")).await.unwrap();
    assert_eq!(listed, [composition("alpha", "web-app", "1.10.0")]);

    assert_eq!(store.get_deployment("d1").await.unwrap(), Some(applied));
    assert_eq!(
        store.revision_content("d1").await.unwrap(),
        Some(content("b.json"))
    );
    // The idempotency key survived too: the same request finds d1 ...
    let again = store
        .create_deployment(
            &deployment("d2", 2),
            &content("x"),
            Some(("key-1", "hash-a")),
        )
        .await
        .unwrap();
    assert!(matches!(again, CreateOutcome::Existing(d) if d.id == "d1"));
    // ... and another one under the key is refused.
    let err = store
        .create_deployment(
            &deployment("d2", 2),
            &content("x"),
            Some(("key-1", "hash-b")),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    // The stored generation is 1 now; 0 is stale even after reopening.
    let err = store
        .update_deployment(&deployment("d1", 1), 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_racing_update_deployment_one_wins() {
    let (_dir, path) = db_file();
    let handles = [
        Arc::new(SqliteStore::open(&path).unwrap()),
        Arc::new(SqliteStore::open(&path).unwrap()),
    ];
    handles[0]
        .create_deployment(&deployment("d1", 1), &RevisionContent::default(), None)
        .await
        .unwrap();
    let base = handles[1].get_deployment("d1").await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = handles[i % 2].clone();
        let mut d = base.clone();
        d.status = if i % 2 == 0 {
            DeploymentStatus::Cancelled
        } else {
            DeploymentStatus::Planning
        };
        d.error = Some(format!("writer {i}"));
        tasks.push(tokio::spawn(async move {
            store
                .update_deployment(&d, base.generation)
                .await
                .map(|()| d)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(d) => winners.push(d),
            Err(e) => assert_eq!(e.code(), ErrorCode::Conflict, "{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    for store in &handles {
        let stored = store.get_deployment("d1").await.unwrap().unwrap();
        assert_eq!(stored.generation, base.generation + 1);
        assert_eq!(
            stored.error, winners[0].error,
            "the winner's write is stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_racing_for_one_revision_one_wins() {
    let (_dir, path) = db_file();
    let handles = [
        Arc::new(SqliteStore::open(&path).unwrap()),
        Arc::new(SqliteStore::open(&path).unwrap()),
    ];
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = handles[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let d = deployment(&format!("d{i}"), 1);
            store
                .create_deployment(&d, &RevisionContent::default(), None)
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(CreateOutcome::Created) => created += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => assert_eq!(e.code(), ErrorCode::Conflict, "{e}"),
        }
    }
    assert_eq!(created, 1, "revision 1 is taken once");
    let key = DeploymentKey {
        team: "alpha".into(),
        environment: "staging".into(),
        name: "checkout".into(),
    };
    assert_eq!(handles[1].revisions(&key).await.unwrap().len(), 1);
    let all = handles[0]
        .list_deployments(&DeploymentFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

/// Two handles on one file claiming one lease — first with no record, then
/// once it has expired — behave like two processes: one claim wins each
/// time, and both handles see the winner's lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_racing_for_one_lease_one_wins() {
    let (_dir, path) = db_file();
    let handles = [
        Arc::new(SqliteStore::open(&path).unwrap()),
        Arc::new(SqliteStore::open(&path).unwrap()),
    ];
    for (now_ms, epoch) in [(0, 1), (1_000, 2)] {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = handles[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .claim_lease("d1", &format!("replica-{i}"), now_ms, 1_000)
                    .await
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            winners.extend(task.await.unwrap().unwrap());
        }
        assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
        assert_eq!(winners[0].epoch, epoch);
        for store in &handles {
            assert_eq!(store.leases().await.unwrap(), winners);
        }
    }
}

/// An ad-hoc timing of point reads with 10k definitions; run with
/// `cargo test -p nestor-storage --release sqlite::timing -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing, not a check; run by hand"]
async fn timing_point_reads_with_10k_definitions() {
    let (_dir, path) = db_file();
    let store = SqliteStore::open(&path).unwrap();
    let started = Instant::now();
    for i in 0..10_000 {
        store
            .insert_version(published(&format!("res-{i:05}"), "1.0.0"))
            .await
            .unwrap();
    }
    println!("inserted 10k definitions in {:?}", started.elapsed());

    let names: Vec<String> = (0..10_000)
        .map(|i| format!("res-{:05}", (i * 7919) % 10_000))
        .collect();
    let one = v("1.0.0");
    // Inserting cached every definition.
    let started = Instant::now();
    for name in &names {
        store.get_version(name, &one).await.unwrap().unwrap();
    }
    println!(
        "get_version (cached definition): {:?} per read",
        started.elapsed() / names.len() as u32
    );
    let started = Instant::now();
    for name in &names {
        store.latest(name).await.unwrap().unwrap();
    }
    println!(
        "latest (cached definition): {:?} per read",
        started.elapsed() / names.len() as u32
    );
    // 2,000 names fit the name cache: the second round is all hits.
    let hot = &names[..2_000];
    for (what, exact) in [("latest", false), ("get_version", true), ("latest", false)] {
        let started = Instant::now();
        for name in hot {
            if exact {
                store.get_version(name, &one).await.unwrap().unwrap();
            } else {
                store.latest(name).await.unwrap().unwrap();
            }
        }
        println!(
            "{what} (2,000 names, name cache hit after the first round): {:?} per read",
            started.elapsed() / hot.len() as u32
        );
    }
    let started = Instant::now();
    let page = store
        .list_latest(&ListFilter::default(), &PageRequest::first(50))
        .await
        .unwrap();
    println!("list_latest first page of 50: {:?}", started.elapsed());
    assert_eq!(page.items.len(), 50);

    // A fresh handle: every definition is parsed from SQL.
    let cold = SqliteStore::open(&path).unwrap();
    let started = Instant::now();
    for name in names.iter().take(2_000) {
        cold.get_version(name, &one).await.unwrap().unwrap();
    }
    println!(
        "get_version (uncached, parse JSON): {:?} per read",
        started.elapsed() / 2_000
    );
}

/// A sync whose write fails part way (here the events table refuses rows,
/// as a full disk or a crash would stop the write) leaves no version
/// without its event: the versions and their events are one transaction,
/// so the next sync publishes them again, announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_fails_writing_events_loses_no_event() {
    use nestor_core::{CatalogService, SourceConfig, SyncService};

    let (_dir, path) = db_file();
    let folder = tempfile::tempdir().unwrap();
    for i in 0..50 {
        let def = super::sync::def_yaml(&format!("res-{i:02}"), "1.0.0", "", "");
        std::fs::write(folder.path().join(format!("res-{i:02}.yaml")), def).unwrap();
    }
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let sync = SyncService::new(CatalogService::new(store.clone()));
    let config = SourceConfig::new("platform", folder.path().to_string_lossy());
    let cache = tempfile::tempdir().unwrap();

    let saboteur = rusqlite::Connection::open(&path).unwrap();
    saboteur
        .execute_batch(
            "CREATE TRIGGER no_events BEFORE INSERT ON events \
             BEGIN SELECT RAISE(FAIL, 'the disk is full'); END;",
        )
        .unwrap();
    let source = nestor_storage::open_source(config.clone(), cache.path());
    assert!(sync.sync(source.as_ref()).await.is_err());
    assert_eq!(
        store.latest("res-00").await.unwrap(),
        None,
        "nothing of the failed write is stored"
    );

    saboteur.execute_batch("DROP TRIGGER no_events;").unwrap();
    let source = nestor_storage::open_source(config, cache.path());
    let report = sync.sync(source.as_ref()).await.unwrap();
    assert_eq!(report.published.len(), 50, "{report:?}");
    let events = store.read_after(0, 1000).await.unwrap();
    let created: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e.event_type == EventType::ResourceCreated)
        .map(|e| e.subject.as_str())
        .collect();
    assert_eq!(
        created.len(),
        50,
        "every version announced once: {events:?}"
    );
}
