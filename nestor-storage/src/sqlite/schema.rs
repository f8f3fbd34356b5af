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
const MIGRATIONS: &[&str] = &[V1_CATALOG_EVENTS_SYNC];

/// The schema version this build writes and understands.
pub(super) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1: the catalog, the event log and sync bookkeeping.
const V1_CATALOG_EVENTS_SYNC: &str = r#"
-- One row per name; latest_id points at its latest version (SPEC §2), NULL
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

/// Settings of the writer connection. `file` is false for an in-memory
/// database, which has no journal to switch to WAL.
pub(super) fn configure_writer(conn: &Connection, file: bool) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx("setting busy_timeout")?;
    if file {
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

/// Opens a reader connection on an existing database file.
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ctx("opening a reader connection")?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx("setting busy_timeout")?;
    // Read-write flags (so the WAL index can be set up) but no writes.
    conn.execute_batch("PRAGMA query_only = ON;")
        .ctx("configuring a reader connection")?;
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
