//! Connection settings and the versioned migrations.
//!
//! `PRAGMA user_version` is the number of migrations applied. A migration is
//! never edited once released: changes go in a new entry at the end of
//! [`MIGRATIONS`].

use std::path::Path;
use std::time::Duration;

use nestor_core::{Error, Result};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::Context;

/// How long a connection waits for another one (in this process or another)
/// to release the file lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations, in order; entry `i` takes the schema from version `i` to
/// `i + 1`.
const MIGRATIONS: &[&str] = &[
    V1_CATALOG_EVENTS_SYNC,
    V2_COMPOSITIONS_DEPLOYMENTS,
    V3_LEASES,
    V4_CATALOG_CHANGES,
    V5_AUDIT,
    V6_EVENTS_BY_VERSION,
];

/// The schema version this build writes and understands.
pub(super) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1: the catalog, the event log and sync bookkeeping.
const V1_CATALOG_EVENTS_SYNC: &str = r#"
-- One row per name; latest_id points at its latest version (docs/src/reference/versioning.md), NULL
-- when every version is yanked. Recomputed on every insert and yank.
CREATE TABLE names (
    name      TEXT PRIMARY KEY NOT NULL,
    latest_id INTEGER REFERENCES versions(id)
) WITHOUT ROWID;

-- One row per published name@version. The definition (canonical JSON) is
-- the last column so the columns before it are read without touching
-- overflow pages.
CREATE TABLE versions (
    id                INTEGER PRIMARY KEY,
    name              TEXT NOT NULL REFERENCES names(name),
    version           TEXT NOT NULL,
    major             INTEGER NOT NULL,
    minor             INTEGER NOT NULL,
    patch             INTEGER NOT NULL,
    pre               TEXT NOT NULL,
    content_hash      TEXT NOT NULL,
    published_at      INTEGER NOT NULL,
    yanked            INTEGER NOT NULL DEFAULT 0 CHECK (yanked IN (0, 1)),
    deprecated        INTEGER NOT NULL CHECK (deprecated IN (0, 1)),
    provider          TEXT NOT NULL,
    category          TEXT NOT NULL,
    resource_type     TEXT NOT NULL,
    -- Lower-cased name, type, category, provider, labels and description,
    -- one per line: a superset pre-filter for search terms and `q`.
    search_text       TEXT NOT NULL,
    origin_source     TEXT,
    origin_repository TEXT,
    origin_commit     TEXT,
    origin_path       TEXT,
    definition        TEXT NOT NULL,
    UNIQUE (name, version)
);

-- AUTOINCREMENT: ids are never reused, even after pruning deletes the
-- newest rows, so an SSE client's Last-Event-ID stays meaningful.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    source     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    timestamp  INTEGER NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX events_by_timestamp ON events (timestamp);

CREATE TABLE source_states (
    source TEXT PRIMARY KEY NOT NULL,
    state  TEXT NOT NULL
) WITHOUT ROWID;

-- The last report of each source.
CREATE TABLE sync_reports (
    source TEXT PRIMARY KEY NOT NULL,
    report TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Version 2: team compositions, deployments, their revision content and
/// idempotency keys. Whole objects are JSON; the other columns are copies of
/// their fields, kept for uniqueness, lookups and order.
const V2_COMPOSITIONS_DEPLOYMENTS: &str = r#"
-- One row per published team/name@version; `record` is the whole
-- PublishedComposition. Semver order is decided in Rust.
CREATE TABLE compositions (
    id           INTEGER PRIMARY KEY,
    team         TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    record       TEXT NOT NULL,
    UNIQUE (team, name, version)
);

-- One row per revision; `deployment` is the whole Deployment, and the
-- columns before it are copies of its fields. The unique key is what makes
-- two writers racing for one revision number collide.
CREATE TABLE deployments (
    id          TEXT PRIMARY KEY NOT NULL,
    team        TEXT NOT NULL,
    environment TEXT NOT NULL,
    name        TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    generation  INTEGER NOT NULL,
    deployment  TEXT NOT NULL,
    UNIQUE (team, environment, name, revision)
);
-- Exactly the order of list_deployments: newest first.
CREATE INDEX deployments_newest_first ON deployments (created_at DESC, revision DESC, id);

-- What each revision contains (rendered files can be large), apart from the
-- deployments so listing never reads it.
CREATE TABLE revision_contents (
    deployment_id TEXT PRIMARY KEY NOT NULL REFERENCES deployments(id),
    content       TEXT NOT NULL
);

-- Idempotency-Key → the request hash it was first used with and the
-- deployment that request created.
CREATE TABLE idempotency_keys (
    key           TEXT PRIMARY KEY NOT NULL,
    request_hash  TEXT NOT NULL,
    deployment_id TEXT NOT NULL REFERENCES deployments(id)
) WITHOUT ROWID;
"#;

/// Version 3: deployment leases, the claim a replica holds on running a
/// deployment (docs/src/operator/storage.md).
const V3_LEASES: &str = r#"
-- One row per claimed deployment; deleted on release. No foreign key to
-- deployments: a lease is claimed before the deployment's first revision
-- is recorded. Claims and renewals are conditional on `epoch` (and
-- `expires_at_ms`, milliseconds since the Unix epoch).
CREATE TABLE leases (
    deployment_id TEXT PRIMARY KEY NOT NULL,
    owner         TEXT NOT NULL,
    epoch         INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// Version 4: the catalog change sequence that keeps every handle's read
/// cache exact (see `cache.rs`), and copies of the latest version's filter
/// columns on `names`, so a filtered list scans the small `names` rows and
/// reads a version row only for the names that pass.
const V4_CATALOG_CHANGES: &str = r#"
-- Set to one more than the greatest in the table, in the transaction of
-- every insert and yank touching the name (writers hold the file lock, so
-- sequences are handed out in commit order and never skip back). A reader
-- asks for the names with change_seq above the greatest it has seen.
ALTER TABLE names ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX names_by_change_seq ON names (change_seq);

-- The latest version's provider, category and resource type (NULL when it
-- has none), kept with latest_id.
ALTER TABLE names ADD COLUMN provider TEXT;
ALTER TABLE names ADD COLUMN category TEXT;
ALTER TABLE names ADD COLUMN resource_type TEXT;
UPDATE names SET
    provider = (SELECT provider FROM versions WHERE id = names.latest_id),
    category = (SELECT category FROM versions WHERE id = names.latest_id),
    resource_type = (SELECT resource_type FROM versions WHERE id = names.latest_id);
"#;

/// Version 5: the audit trail, one row per audited write, the whole entry
/// as JSON beside the columns queries filter on.
const V5_AUDIT: &str = r#"
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    entry     TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (timestamp, id);
CREATE INDEX audit_by_actor ON audit (actor, timestamp);
CREATE INDEX audit_by_subject ON audit (subject, timestamp);
"#;

/// Version 6: a version's events keep its definition by reference. The
/// data of `resource.created`, `.updated` and `.deprecated` is the whole
/// version, whose definition (nine tenths of it) `versions.definition`
/// holds already: such a row keeps in `data` only the text after the
/// definition and points at the version's row, and a read puts the two
/// back together, byte for byte (`events.rs`). Rows written before, and
/// events that are not a version's, keep their whole data and no
/// `version_id`.
const V6_EVENTS_BY_VERSION: &str = r#"
-- When set, the event's data is '{"definition":' || versions.definition
-- || data of that row. Versions are never deleted.
ALTER TABLE events ADD COLUMN version_id INTEGER REFERENCES versions(id);
"#;

/// The page size of a new database file, in bytes. A version's row (its
/// definition's JSON and the columns beside it) is 1.5–2.5 KiB, so SQLite's
/// default 4 KiB page holds one or two and a batch splits a page for
/// nearly every row; 16 KiB pages hold about eight. Measured on a cold
/// sync of 10,000 definitions: the SQLite transaction ~15 ms shorter, the
/// file 25.1 → 19.8 MiB, point reads unchanged (benches/README.md).
/// A file created before keeps its page size (WAL cannot change it).
pub(super) const PAGE_SIZE: u32 = 16 * 1024;

/// Settings of the writer connection. `file` is false for an in-memory
/// database, which has no journal to switch to WAL.
pub(super) fn configure_writer(conn: &Connection, file: bool) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx("setting busy_timeout")?;
    stable_plans(conn)?;
    if file {
        // Only a file without a page yet takes it: before the switch to WAL,
        // which writes the first.
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};"))
            .ctx("setting the page size")?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .ctx("switching to WAL")?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Some file systems (network mounts) cannot do WAL; SQLite keeps
            // working in rollback mode, with readers waiting for writers.
            tracing::warn!(mode, "SQLite could not switch to WAL journal mode");
        }
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .ctx("configuring the connection")
}

/// Turns on the query planner stability guarantee. Without it SQLite marks
/// a cached statement whose plan might depend on a bound value (a `LIMIT ?`,
/// a range with statistics) to be prepared again at every new binding,
/// which costs more than the point reads those statements make.
fn stable_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .ctx("enabling the query planner stability guarantee")?;
    Ok(())
}

/// Opens a reader connection on an existing database file.
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ctx("opening a reader connection")?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx("setting busy_timeout")?;
    stable_plans(&conn)?;
    // Read-write flags (so the WAL index can be set up) but no writes.
    conn.execute_batch("PRAGMA query_only = ON;")
        .ctx("configuring a reader connection")?;
    Ok(conn)
}

/// Opens the connection that checks for catalog changes before the cache is
/// trusted. It never waits: `busy_timeout` is zero, so a lock it would have
/// to wait for is an error, and the caller falls back to a plain read.
pub(super) fn open_probe(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ctx("opening the change probe")?;
    conn.busy_timeout(Duration::ZERO)
        .ctx("setting busy_timeout")?;
    stable_plans(&conn)?;
    conn.execute_batch("PRAGMA query_only = ON;")
        .ctx("configuring the change probe")?;
    Ok(conn)
}

/// Brings the schema to [`SCHEMA_VERSION`] and returns it. Idempotent; a
/// newer schema than this build knows is refused.
pub(super) fn migrate(conn: &mut Connection) -> Result<u32> {
    // The common case, an up-to-date file, needs no write lock.
    if user_version(conn)? == i64::from(SCHEMA_VERSION) {
        return Ok(SCHEMA_VERSION);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("starting the migration transaction")?;
    // Read again under the lock: another process may have migrated meanwhile.
    let current = user_version(&tx)?;
    if current > i64::from(SCHEMA_VERSION) {
        return Err(Error::StorageUnavailable {
            message: format!(
                "the database has schema version {current}, newer than the {SCHEMA_VERSION} this \
                 build of Nestor knows; upgrade Nestor"
            ),
            source: None,
        });
    }
    let applied = usize::try_from(current).unwrap_or(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql)
            .ctx(&format!("applying migration {}", index + 1))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .ctx("recording the schema version")?;
    tx.commit().ctx("committing the migrations")?;
    tracing::info!(
        from = current,
        to = SCHEMA_VERSION,
        "migrated the SQLite schema"
    );
    Ok(SCHEMA_VERSION)
}

fn user_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .ctx("reading the schema version")
}

#[cfg(test)]
mod tests {
    use nestor_core::testing::definition;
    use nestor_core::{
        CatalogReader, CatalogWriter, CompositionStore, DeploymentFilter, DeploymentStore,
        EventLog, EventType, NewEvent, PublishedVersion, Shared, SourceState, SyncStore,
    };

    use super::super::SqliteStore;
    use super::*;

    /// A catalog row as a version-1 build wrote it (the catalog code of this
    /// build writes columns added later).
    fn insert_v1_version(tx: &rusqlite::Transaction<'_>, version: &str, yanked: bool) -> i64 {
        let published = PublishedVersion::new(definition("db", version), 1, None);
        let def = &published.definition;
        let v = &def.metadata.version;
        tx.execute("INSERT OR IGNORE INTO names (name) VALUES ('db')", [])
            .unwrap();
        tx.execute(
            "INSERT INTO versions (name, version, major, minor, patch, pre, content_hash, \
             published_at, yanked, deprecated, provider, category, resource_type, search_text, \
             definition) VALUES ('db', ?1, ?2, ?3, ?4, '', ?5, 1, ?6, 0, ?7, ?8, ?9, 'db', ?10)",
            rusqlite::params![
                version,
                v.major as i64,
                v.minor as i64,
                v.patch as i64,
                published.content_hash,
                yanked,
                def.metadata.provider,
                def.metadata.category,
                def.metadata.resource_type,
                serde_json::to_string(def).unwrap(),
            ],
        )
        .unwrap();
        tx.last_insert_rowid()
    }

    /// A file as a version-1 build left it: only migration 1 applied, with
    /// catalog rows, an event and a source state.
    async fn version_1_file(path: &Path) {
        let mut conn = Connection::open(path).unwrap();
        configure_writer(&conn, true).unwrap();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        tx.execute_batch(MIGRATIONS[0]).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        let v100 = insert_v1_version(&tx, "1.0.0", false);
        insert_v1_version(&tx, "1.1.0", true);
        tx.execute("UPDATE names SET latest_id = ?1 WHERE name = 'db'", [v100])
            .unwrap();
        tx.commit().unwrap();
        // The event log and sync tables are as version 1 made them.
        let store = SqliteStore::from_writer(conn, None);
        store
            .append(NewEvent {
                event_type: EventType::ResourceCreated,
                source: "test".into(),
                subject: "db:1.0.0".into(),
                timestamp: 1,
                data: serde_json::json!({}),
            })
            .await
            .unwrap();
        let state = SourceState {
            source: "platform".into(),
            head: Some("abc".into()),
            ..Default::default()
        };
        store.save_source_state(&state).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_file_upgrades_keeping_its_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nestor.db");
        version_1_file(&path).await;
        assert_eq!(user_version(&Connection::open(&path).unwrap()).unwrap(), 1);

        let store = SqliteStore::open(&path).unwrap();
        let on_disk = user_version(&Connection::open(&path).unwrap()).unwrap();
        assert_eq!(on_disk, i64::from(SCHEMA_VERSION));
        assert_eq!(SCHEMA_VERSION, 6);

        let v100 = "1.0.0".parse().unwrap();
        let got = store.get_version("db", &v100).await.unwrap();
        assert_eq!(
            got.map(Shared::into_inner),
            Some(PublishedVersion::new(definition("db", "1.0.0"), 1, None))
        );
        let history = store.versions("db").await.unwrap();
        assert_eq!(history.len(), 2);
        assert!(history[0].yanked, "1.1.0 is still yanked");
        let latest = store.latest("db").await.unwrap().unwrap();
        assert_eq!(latest.version(), &v100, "the latest pointer survived");
        assert_eq!(store.read_after(0, 10).await.unwrap().len(), 1);
        let state = store.source_state("platform").await.unwrap().unwrap();
        assert_eq!(state.head.as_deref(), Some("abc"));

        // The new tables are there and empty.
        assert!(store.list_compositions(None).await.unwrap().is_empty());
        let all = DeploymentFilter::default();
        assert!(store.list_deployments(&all).await.unwrap().is_empty());
        assert!(store.leases().await.unwrap().is_empty());
        let lease = store.claim_lease("d1", "replica-a", 0, 100).await.unwrap();
        assert_eq!(lease.map(|l| l.epoch), Some(1), "the leases table works");

        // The latest version's filter columns were copied onto its name.
        let aws = nestor_core::ListFilter {
            provider: Some("aws".into()),
            category: Some("database".into()),
            ..Default::default()
        };
        let page = nestor_core::PageRequest::first(10);
        let listed = store.list_latest(&aws, &page).await.unwrap().items;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].version(), &v100);

        // The catalog change sequence works on upgraded rows: a yank through
        // another handle is seen by this one's cache.
        assert_eq!(store.latest("db").await.unwrap().unwrap().version(), &v100);
        let other = SqliteStore::open(&path).unwrap();
        other.set_yanked("db", &v100, true).await.unwrap();
        assert!(store.latest("db").await.unwrap().is_none());
    }
}
