//! The SQLite store: Nestor's embedded default (docs/src/operator/storage.md) — one file, WAL,
//! versioned migrations, and a read cache callers never see.
//!
//! # Layout
//! - `mod.rs`: [`SqliteStore`], its connections and the blocking bridge.
//! - `schema`: connection settings and the ordered list of migrations.
//! - `catalog`: `CatalogReader`, `CatalogWriter` and `CatalogSearch`.
//! - `events`: `EventLog` and `SyncStore`.
//! - `compositions`: `CompositionStore`.
//! - `deployments`: `DeploymentStore`: revisions, their content,
//!   idempotency keys and leases.
//! - `cache`: the content-addressed definition cache.
//!
//! # Design decisions
//! - **Connections.** One writer connection behind a mutex, plus a pool of
//!   reader connections opened on demand (at most `MAX_IDLE_READERS` are
//!   kept). WAL lets readers run beside the writer, so a slow publish never
//!   stalls `get_version`. Serialising writers in-process costs nothing:
//!   SQLite allows one writer per file anyway. An in-memory database has a
//!   single connection that serves reads too (each in-memory connection is
//!   its own database).
//! - **Several processes on one file** (a server and a CLI, two CLIs) are
//!   expected. Every write is one `BEGIN IMMEDIATE` transaction, so the file
//!   lock is taken before the read half of a read-check-write (immutability,
//!   the latest pointer), and `busy_timeout` makes a second writer wait
//!   instead of failing. Of concurrent publishers of one name@version, in one
//!   process or several, exactly one sees `Created`.
//! - **Blocking work** runs on tokio's blocking pool (`spawn_blocking`), never
//!   on the async workers. [`SqliteStore::open`] and [`SqliteStore::migrate`]
//!   are synchronous: they run once at start-up or in `nestor migrate`. The
//!   one exception is the cache's change probe (below): a `pread` of 96
//!   bytes of the WAL index and, after a commit, an index seek on a
//!   connection whose `busy_timeout` is zero, so it fails instead of
//!   waiting for a lock. Both cost microseconds, less than the hop to the
//!   blocking pool they save.
//! - **Migrations** are an ordered list of SQL scripts; `PRAGMA user_version`
//!   is the number applied. They run inside one immediate transaction, so two
//!   processes opening a fresh file cannot both apply them. A file whose
//!   version is newer than this build knows is refused with
//!   `STORAGE_UNAVAILABLE` naming both versions, rather than misread.
//! - **Semver order** is decided in Rust with [`semver::Version`]: a name has
//!   few versions, and pre-release precedence (`rc.10` > `rc.9`) is easy to
//!   get wrong in SQL. The integer major/minor/patch columns are for ad-hoc
//!   queries, never trusted for order alone.
//! - **Latest pointer.** `names.latest_id` holds each name's latest version,
//!   recomputed with `nestor_core::select_latest` in the same transaction as
//!   every insert and yank, so `latest` is one indexed lookup and
//!   `list_latest` is one range scan over `names`. Provider, category,
//!   resource type and `q` are pre-filtered in SQL; `ListFilter::matches`
//!   stays the rule and is applied to every row in Rust.
//! - **Foreign keys** are on for every connection, except in the
//!   catalog's version writes, which keep them themselves (`publish.rs`):
//!   a new name's row is written once, after its versions, where a
//!   checked (or deferred) insert order would cost a second write or a
//!   scan per version.
//! - **Events of a version** keep its definition by reference to its row
//!   (`events.rs`), so a cold sync writes each definition once.
//! - **Compositions and deployments** are stored whole, as JSON, beside
//!   copies of the fields that are unique keys, filters or sort keys. Their
//!   conditional writes (immutable `team/name@version`, a revision number
//!   taken once, idempotency keys, the deployment's `generation` as an
//!   optimistic lock) are read-check-write inside one `BEGIN IMMEDIATE`
//!   transaction, so they hold across processes as the catalog's do. They
//!   are not cached: a deployment changes, and reads of it are rare next
//!   to catalog reads.
//! - **Leases** (which replica runs a deployment) are rows of `leases`,
//!   written only by statements conditional on the stored epoch (and, for
//!   a claim, the expiry) whose changed-row count decides the outcome, in
//!   a `BEGIN IMMEDIATE` transaction like every write: of replicas racing
//!   for one lease, in one process or several, one wins. Never cached.
//! - **Cache** (`cache.rs`). Parsing a definition's JSON is the expensive
//!   part of a row read, and a definition is immutable, so parsed
//!   definitions are cached by content hash and never invalidated. On top,
//!   the records `latest` and `get_version` return are cached whole by
//!   name, so a hit costs no trip to the blocking pool and no query: before
//!   trusting them, the change probe reads the WAL-index header, which
//!   every commit rewrites; only if it moved does a probe connection that
//!   never waits ask for the names whose `names.change_seq` moved since it
//!   last looked — every catalog write, by any process on the file, sets
//!   it in its own transaction — and drop those entries. A write committed by
//!   another process before a read starts is thus seen by that read, as
//!   without a cache; the bound is zero, not "eventually". Should the probe
//!   fail (it would have to wait for a lock), the read goes to SQL. Lists
//!   and search read SQL and take definitions from the content cache. The
//!   in-memory database, whose one connection is also the writer, caches
//!   only definitions.
//! - **Readers.** At most `MAX_READERS` reads run at once, each on a pooled
//!   connection: more would not run faster on a small machine, and a read
//!   beyond the pool would open (and parse the schema of) a new connection.
//! - **Durability.** `synchronous = NORMAL`, the usual WAL setting: a commit
//!   survives a crash of the process; only a power loss may drop the last
//!   commits, never corrupt the file.
//! - **Pages.** A new file gets 16 KiB pages (`schema::PAGE_SIZE`): a
//!   version's row is 1.5–2.5 KiB, two to a default 4 KiB page, so a batch
//!   split a page for nearly every row. A file made before keeps its own.
//! - **Checkpoints.** SQLite's automatic checkpoint (inside the commit that
//!   takes the WAL past 1,000 pages) stays for ordinary writes; a batch of
//!   256 versions or more commits without it, and a passive checkpoint
//!   follows on the blocking pool while the caller goes on
//!   (`checkpoint.rs`: in a cold sync it was most of the commit).
//! - **Errors.** Every rusqlite and JSON error becomes
//!   `Error::StorageUnavailable` with a short message saying what was being
//!   done; the SQLite detail stays in the error's source for the log.

mod audit;
mod cache;
mod catalog;
mod checkpoint;
mod compositions;
mod deployments;
mod events;
mod publish;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use nestor_core::{Error, Result};
use rusqlite::{Connection, Transaction, TransactionBehavior};

use cache::{ChangeProbe, HeaderWatch, NameCache, VersionCache};

/// How many reads run at once, each on its own pooled connection.
const MAX_READERS: usize = 4;

/// How many published versions (parsed definitions) the read cache holds
/// at most.
const CACHE_ENTRIES: usize = 16_384;

/// How many names the cache of `latest` and `get_version` records holds.
const NAME_CACHE_ENTRIES: usize = 8_192;

/// The SQLite store. Cloning it is cheap and shares connections and cache.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

/// Everything the clones of one store share.
struct Shared {
    /// The database file readers open; `None` for an in-memory database,
    /// whose only connection is the writer.
    path: Option<PathBuf>,
    /// The one connection that writes; the mutex serialises this process's
    /// writers so they queue here rather than spin on the file lock.
    writer: Mutex<Connection>,
    /// Reader connections waiting for reuse; opening one costs more than a
    /// point read.
    idle_readers: Mutex<Vec<Connection>>,
    /// One permit per concurrent read, so the pool never runs dry.
    readers: Arc<tokio::sync::Semaphore>,
    /// Published versions by content hash.
    cache: VersionCache,
    /// `latest` and `get_version` records by name, trusted after a probe.
    names: NameCache,
    /// Checks for catalog changes before `names` is trusted; `None` for an
    /// in-memory database.
    probe: Option<(Arc<HeaderWatch>, Mutex<ChangeProbe>)>,
    /// Checkpoints after large batches (`checkpoint.rs`); `None` for an
    /// in-memory database.
    checkpoints: Option<Arc<checkpoint::Checkpointer>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The schema version this build writes and understands.
    pub const SCHEMA_VERSION: u32 = schema::SCHEMA_VERSION;

    /// Opens (creating it and its parent directories if needed) the database
    /// file at `path`, switches it to WAL and applies pending migrations.
    /// New directories are mode 0700; the file and its `-wal` and `-shm`
    /// are 0600 (tightened when an older version left them wider).
    /// Blocking: call it at start-up, or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::private::create_private_dir(parent).map_err(|e| {
                Error::storage(
                    format!("cannot create the directory {}", parent.display()),
                    e,
                )
            })?;
        }
        crate::private::ensure_private_file(path).map_err(|e| {
            Error::storage(
                format!("cannot create the SQLite database {}", path.display()),
                e,
            )
        })?;
        let mut writer = Connection::open(path).map_err(|e| {
            Error::storage(
                format!("cannot open the SQLite database {}", path.display()),
                e,
            )
        })?;
        schema::configure_writer(&writer, true)?;
        schema::migrate(&mut writer)?;
        let probe = ChangeProbe::open(path)?;
        // One reader is opened now, its schema read: a file readers cannot
        // open fails here, and the first read (a sync's source state, a
        // server's first request) does not wait for a connection (in a
        // cold sync's timers that first read took 4-6 ms, now ~0-4 ms).
        let reader = schema::open_reader(path)?;
        reader
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .ctx("reading the schema")?;
        let store = Self::from_writer(writer, Some((path.to_path_buf(), probe)));
        lock(&store.shared.idle_readers).push(reader);
        Ok(store)
    }

    /// A private, empty database in memory, gone when the store is dropped.
    /// For tests and tools; it behaves like a file except that it has one
    /// connection, so reads wait for writes.
    pub fn open_in_memory() -> Result<Self> {
        let mut writer = Connection::open_in_memory()
            .map_err(|e| Error::storage("cannot open an in-memory SQLite database", e))?;
        schema::configure_writer(&writer, false)?;
        schema::migrate(&mut writer)?;
        Ok(Self::from_writer(writer, None))
    }

    /// A store on `writer`; `file` is the database file readers open and the
    /// probe on it, `None` for an in-memory database.
    fn from_writer(writer: Connection, file: Option<(PathBuf, ChangeProbe)>) -> Self {
        let (path, probe) = file.unzip();
        let checkpoints = path.clone().map(checkpoint::Checkpointer::new);
        SqliteStore {
            shared: Arc::new(Shared {
                checkpoints,
                path,
                writer: Mutex::new(writer),
                idle_readers: Mutex::new(Vec::new()),
                readers: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
                cache: VersionCache::new(CACHE_ENTRIES),
                names: NameCache::new(NAME_CACHE_ENTRIES),
                probe: probe.map(|p| (p.watch(), Mutex::new(p))),
            }),
        }
    }

    /// Applies pending migrations and returns the schema version, which is
    /// [`Self::SCHEMA_VERSION`]. Idempotent; `open` already ran it, so this
    /// is for `nestor migrate` to report. Blocking.
    pub fn migrate(&self) -> Result<u32> {
        schema::migrate(&mut lock(&self.shared.writer))
    }

    /// Runs `read` on a reader connection, on the blocking pool.
    async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &VersionCache) -> Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        // A permit is held until the read ends, even if this future is
        // dropped: the blocking task owns it.
        let permit = shared
            .readers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("the SQLite reader pool was closed"))?;
        blocking(move || {
            let _permit = permit;
            shared.with_reader(|conn| read(conn, &shared.cache))
        })
        .await
    }

    /// Brings the name cache up to date with the file and returns the epoch
    /// to tag fills with, or `None` when it must not be used (an in-memory
    /// database, or a probe that failed: the caller reads SQL).
    fn fresh_names(&self) -> Option<u64> {
        let (watch, probe) = self.shared.probe.as_ref()?;
        if watch.unchanged() {
            return Some(self.shared.names.epoch());
        }
        match lock(probe).check(&self.shared.names) {
            Ok(()) => Some(self.shared.names.epoch()),
            Err(e) => {
                tracing::debug!(error = %e, "the catalog change probe failed; reading SQL");
                None
            }
        }
    }

    /// Runs `write` in one `BEGIN IMMEDIATE` transaction on the writer, on
    /// the blocking pool; commits if it returns `Ok`, rolls back otherwise.
    async fn write<T, F>(&self, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &VersionCache) -> Result<T> + Send + 'static,
    {
        self.write_with(Write::default(), write).await
    }

    /// [`Self::write`] as `how` says ([`Write`]: a large batch's
    /// checkpoint, foreign keys the write keeps itself).
    async fn write_with<T, F>(&self, how: Write, write: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &VersionCache) -> Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        let deferred = how.large && shared.checkpoints.is_some();
        let value = blocking(move || {
            let mut conn = lock(&shared.writer);
            if deferred {
                checkpoint::set_automatic(&conn, false)
                    .ctx("suspending the automatic checkpoint")?;
            }
            if how.keeps_references {
                set_foreign_keys(&conn, false)?;
            }
            let written = transact(&mut conn, &shared.cache, write);
            // The write is done (or rolled back) either way: a failure to
            // restore a setting is logged, not made the write's.
            if how.keeps_references {
                if let Err(e) = set_foreign_keys(&conn, true) {
                    tracing::warn!(error = %e, "cannot turn SQLite's foreign key checks back on");
                }
            }
            if deferred {
                if let Err(e) = checkpoint::set_automatic(&conn, true) {
                    tracing::warn!(error = %e, "cannot restore SQLite's automatic checkpoint");
                }
            }
            written
        })
        .await;
        if let (true, Some(checkpoints)) = (value.is_ok() && deferred, &self.shared.checkpoints) {
            checkpoints.start();
        }
        value
    }
}

/// How a write transaction runs.
#[derive(Debug, Clone, Copy, Default)]
struct Write {
    /// Leave the WAL checkpoint to the background (`checkpoint.rs`).
    large: bool,
    /// The write keeps every foreign key itself, so SQLite checks none
    /// while it runs (`publish.rs`: a batch writes a new name's row after
    /// its versions, which checked or deferred checks make cost a scan of
    /// `names` per version).
    keeps_references: bool,
}

/// `PRAGMA foreign_keys`, which SQLite ignores inside a transaction.
fn set_foreign_keys(conn: &Connection, on: bool) -> Result<()> {
    conn.pragma_update(None, "foreign_keys", on)
        .ctx("setting foreign key checks")
}

/// Runs `write` in one `BEGIN IMMEDIATE` transaction on `conn`; commits if
/// it returns `Ok`, rolls back otherwise.
fn transact<T>(
    conn: &mut Connection,
    cache: &VersionCache,
    write: impl FnOnce(&Transaction<'_>, &VersionCache) -> Result<T>,
) -> Result<T> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("starting a write transaction")?;
    let value = write(&tx, cache)?;
    tx.commit().ctx("committing a write transaction")?;
    Ok(value)
}

impl Shared {
    fn with_reader<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let Some(path) = &self.path else {
            return read(&lock(&self.writer));
        };
        let idle = lock(&self.idle_readers).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => schema::open_reader(path)?,
        };
        let result = read(&conn);
        let mut idle = lock(&self.idle_readers);
        if idle.len() < MAX_READERS {
            idle.push(conn);
        }
        result
    }
}

/// Runs blocking SQLite work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("a SQLite task did not finish: {e}")))?
}

/// Locks a mutex even if a panic poisoned it: a panicking writer's
/// transaction is rolled back when it unwinds, so the connection is sound.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A read lock, never poisoned: the guarded caches stay consistent.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// A write lock, never poisoned.
fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Turns a backend error into `STORAGE_UNAVAILABLE`, saying what was being
/// done and keeping the backend's detail as the source.
trait Context<T> {
    fn ctx(self, doing: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, doing: &str) -> Result<T> {
        self.map_err(|e| Error::storage(format!("SQLite failed {doing}"), e))
    }
}

impl<T> Context<T> for serde_json::Result<T> {
    fn ctx(self, doing: &str) -> Result<T> {
        self.map_err(|e| Error::storage(format!("bad JSON {doing}"), e))
    }
}
