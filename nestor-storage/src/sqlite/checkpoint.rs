//! WAL checkpoints of large writes, off the write path.
//!
//! SQLite checkpoints the WAL (copies its pages into the database file and
//! syncs both) inside the commit that takes the WAL past
//! `wal_autocheckpoint` pages (1,000 by default). For the ordinary small
//! writes that is a few pages now and then, and stays as it is. A cold sync
//! commits thousands of versions and their events at once (~40 MiB for
//! 10,000 definitions), and that commit then copied and synced all of it
//! before returning: measured on the development machine, the checkpoint
//! was most of the commit (benches/README.md, catalog). The caller of such
//! a batch needs the commit, not the copy: the data is durable in the WAL
//! (`synchronous = NORMAL`) and every reader sees it from there.
//!
//! So a large batch commits with the automatic checkpoint suspended, and a
//! passive checkpoint of the file then runs on the blocking pool, on a
//! connection of its own, while the caller goes on. Passive: it never
//! waits for a lock and never blocks a reader or a writer; if another
//! checkpoint holds the file, SQLite's own next automatic one catches up.
//! At most one runs at a time; the process may exit before it ends, and
//! SQLite then reads the pages from the WAL as it always does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// Versions in a batch from which its commit leaves the checkpoint to
/// [`Checkpointer`]: a few hundred versions with their events fill the
/// 1,000 pages after which SQLite would checkpoint inside the commit.
pub(super) const LARGE_BATCH: usize = 256;

/// SQLite's default `wal_autocheckpoint`, restored after a large commit.
const AUTOCHECKPOINT_PAGES: i64 = 1000;

/// Runs the checkpoints of one database file in the background.
pub(super) struct Checkpointer {
    path: PathBuf,
    /// Whether a checkpoint is running (at most one at a time).
    running: AtomicBool,
    /// The checkpoint's own connection, opened on first use.
    conn: Mutex<Option<Connection>>,
}

impl Checkpointer {
    pub(super) fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Checkpointer {
            path,
            running: AtomicBool::new(false),
            conn: Mutex::new(None),
        })
    }

    /// Starts a passive checkpoint on the blocking pool unless one is
    /// running; without a runtime it runs here.
    pub(super) fn start(self: &Arc<Self>) {
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || this.run());
            }
            Err(_) => this.run(),
        }
    }

    fn run(&self) {
        let mut conn = super::lock(&self.conn);
        if conn.is_none() {
            match Connection::open(&self.path) {
                Ok(c) => *conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a connection to checkpoint the WAL")
                }
            }
        }
        if let Some(c) = conn.as_ref() {
            let done = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
            match done {
                Ok((busy, frames, copied)) => {
                    tracing::debug!(
                        busy,
                        frames,
                        copied,
                        "checkpointed the WAL after a large write"
                    )
                }
                Err(e) => tracing::debug!(error = %e, "the WAL checkpoint did not run"),
            }
        }
        self.running.store(false, Ordering::Release);
    }
}

/// Suspends (`false`) or restores (`true`) the writer's automatic
/// checkpoint; the setting is the connection's, outside any transaction's.
pub(super) fn set_automatic(conn: &Connection, on: bool) -> rusqlite::Result<()> {
    let pages = if on { AUTOCHECKPOINT_PAGES } else { 0 };
    conn.pragma_update(None, "wal_autocheckpoint", pages)
}
