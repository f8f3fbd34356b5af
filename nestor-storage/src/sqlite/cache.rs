//! The read caches: published versions by content hash, and the records
//! `latest` and `get_version` return, by name, kept exact by the catalog
//! change sequence. Both hold [`Shared`] values, the very ones the traits
//! hand out: a hit is a reference count, never a copy, and the JSON a
//! reader writes of a record once is there for the next reader.
//!
//! # Versions by content hash
//! A hash names one row (the hash covers name and version too), whose
//! definition never changes. Everything that reads a version row (lists,
//! search, cache misses) takes the version from here instead of decoding
//! the definition's JSON again, as long as the row's other fields (its
//! `yanked` flag) are those of the cached version; otherwise the row's
//! fields are laid over a copy of the cached definition, which replaces
//! the entry.
//!
//! # Records by name
//! [`NameCache`] holds, per name, the record `latest` returned (including
//! "none") and the records `get_version` returned, the same values as the
//! content cache, so a cached name costs little memory. Records carry
//! mutable state (which version is latest, `yanked`), so they
//! are only trusted after [`ChangeProbe::check`] has brought the cache up to
//! date with the file:
//! - every catalog write (insert or yank, by any process on the file) sets
//!   `names.change_seq` of the name it touched to one more than the
//!   greatest in the table, in its own transaction. Writers hold the file
//!   lock, so sequences appear in commit order with no gaps below the
//!   greatest: "every change up to N" is a well-defined point;
//! - before a cached record is used, the probe checks whether anything was
//!   committed to the file since its last check: SQLite rewrites the
//!   WAL-index header at the start of the `-shm` file (a change counter,
//!   the last frame, checksums) on every commit, before any reader can see
//!   it, so the probe reads those 96 bytes (one `pread`, no lock) and
//!   compares them with what it read before its last check. Only when they
//!   differ (or there is no WAL index to read) does it ask SQLite for the
//!   names with `change_seq` above the greatest it has applied (one index
//!   seek, on a connection of its own that never waits for a lock) and
//!   drop their entries, or everything when too many changed. Either way
//!   the answer is current as of the probe, so a write committed by
//!   another process before a read starts is always seen by that read,
//!   exactly as without the cache;
//! - a miss reads SQL and stores the result tagged with the cache's epoch,
//!   taken after the probe; every invalidation bumps the epoch, and a
//!   result whose epoch is no longer current is returned but not stored
//!   (it may predate the change that bumped it).
//!
//! Why the `-shm` header rather than `PRAGMA data_version`, SQLite's
//! documented signal: the pragma is a statement that opens and ends a read
//! transaction (two shared-memory lock calls) on every cached read. Measured
//! against the `pread` on the store's own layout (a writer, four idle
//! readers and the probe's connection on one WAL file, 200,000 calls, five
//! runs, benches/README.md): 8.9–12.0 µs a call against 2.0–2.4 µs, about
//! 8 µs more per `GET /resources/{name}`, whose whole budget at the
//! benchmark's goal is ~30 µs of CPU. The cost of keeping the header: it
//! is SQLite's file format (documented as the WAL-index format, stable
//! since 3.7.0, but not an API), so a SQLite that stopped rewriting it on
//! commit would leave the cache stale. SQLite is bundled (rusqlite's
//! `bundled` feature), never the system's, and the test
//! `the_wal_header_changes_with_every_commit_and_only_then` fails on any
//! upgrade that breaks the assumption; a torn or missing header (its two
//! copies differ, no `-shm` file, no `pread`) asks SQL instead.
//!
//! Why a sequence written with the data rather than the event log's ids:
//! events are appended by the catalog service in a transaction of their
//! own after the write, so a writer that stops between the two, or code
//! that writes through the store directly, would leave the event log
//! silent and the cache stale for good. `change_seq` commits or rolls back
//! with the change it announces.
//!
//! # Eviction
//! Both caches keep two generations of at most half their capacity each:
//! hits in the old one are promoted, and when the young one is full the
//! old one is dropped — most of LRU's benefit with two hash maps and no
//! per-hit bookkeeping.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use nestor_core::{PublishedVersion, Result, Shared};
use rusqlite::Connection;
use semver::Version;

use super::{lock, read, write, Context};

/// At most this many changed names are dropped one by one; more, and the
/// probe empties the whole name cache instead (a sync, say).
const MAX_NAMED_CHANGES: usize = 64;

/// A map of at most twice `generation_size` entries, in two generations.
struct Generations<V> {
    /// Inserted or hit since the last rotation.
    young: HashMap<String, V>,
    /// The previous generation; dropped at the next rotation.
    old: HashMap<String, V>,
    generation_size: usize,
}

impl<V> Generations<V> {
    fn new(capacity: usize) -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            generation_size: (capacity / 2).max(1),
        }
    }

    /// The entry for `key`, promoted to the young generation if it was old.
    fn get(&mut self, key: &str) -> Option<&mut V> {
        if !self.young.contains_key(key) {
            let (key, value) = self.old.remove_entry(key)?;
            self.put(key, value);
        }
        self.young.get_mut(key)
    }

    /// The entry for `key`, created empty if missing.
    fn entry(&mut self, key: &str) -> &mut V
    where
        V: Default,
    {
        if self.get(key).is_none() {
            self.put(key.to_string(), V::default());
        }
        self.young.get_mut(key).expect("just inserted")
    }

    fn put(&mut self, key: String, value: V) {
        if self.young.len() >= self.generation_size && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }

    fn remove(&mut self, key: &str) {
        self.young.remove(key);
        self.old.remove(key);
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// Published versions by content hash, at most `capacity` of them: the
/// parsed definition is the expensive part of a row, and a content hash
/// names one row (name and version are hashed too).
pub(super) struct VersionCache {
    generations: Mutex<Generations<Shared<PublishedVersion>>>,
}

impl VersionCache {
    /// A cache holding at most `capacity` versions.
    pub(super) fn new(capacity: usize) -> Self {
        VersionCache {
            generations: Mutex::new(Generations::new(capacity)),
        }
    }

    /// The version with this content hash, if cached.
    pub(super) fn get(&self, content_hash: &str) -> Option<Shared<PublishedVersion>> {
        lock(&self.generations).get(content_hash).cloned()
    }

    /// Caches a version under its content hash.
    pub(super) fn insert(&self, version: Shared<PublishedVersion>) {
        lock(&self.generations).put(version.content_hash.clone(), version);
    }
}

/// What is cached for one name.
#[derive(Default)]
struct NameEntry {
    /// What `latest` returned (`Some(None)`: no eligible version), if cached.
    latest: Option<Option<Shared<PublishedVersion>>>,
    /// What `get_version` returned, by version; misses are not cached.
    exact: HashMap<Version, Shared<PublishedVersion>>,
}

/// The records `latest` and `get_version` return, by name, at most
/// `capacity` names. Only trusted right after [`ChangeProbe::check`].
///
/// Hits in the young generation take a read lock, so the server's
/// workers read one hot name side by side; a hit in the old generation
/// (a promotion) and every fill or invalidation take the write lock.
pub(super) struct NameCache {
    /// Bumped by every invalidation, always under the write lock; a fill
    /// tagged with an older epoch is not stored.
    epoch: AtomicU64,
    entries: RwLock<Generations<NameEntry>>,
}

impl NameCache {
    /// A cache of at most `capacity` names.
    pub(super) fn new(capacity: usize) -> Self {
        NameCache {
            epoch: AtomicU64::new(0),
            entries: RwLock::new(Generations::new(capacity)),
        }
    }

    /// The current epoch: take it before reading SQL, pass it to a fill.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// What `pick` finds in `name`'s entry, under a read lock when the
    /// name is young, else under the write lock, promoting it.
    fn find<T>(&self, name: &str, pick: impl Fn(&NameEntry) -> Option<T>) -> Option<T> {
        if let Some(entry) = read(&self.entries).young.get(name) {
            return pick(entry);
        }
        pick(write(&self.entries).get(name)?)
    }

    /// The cached `latest` of `name`: `None` if not cached, `Some(None)` if
    /// it has no eligible version.
    pub(super) fn latest(&self, name: &str) -> Option<Option<Shared<PublishedVersion>>> {
        self.find(name, |e| e.latest.clone())
    }

    /// The cached `get_version` of name@version.
    pub(super) fn exact(&self, name: &str, version: &Version) -> Option<Shared<PublishedVersion>> {
        self.find(name, |e| e.exact.get(version).cloned())
    }

    /// Stores what `latest` read from SQL, unless an invalidation happened
    /// since `epoch` was taken.
    pub(super) fn fill_latest(
        &self,
        epoch: u64,
        name: &str,
        found: Option<Shared<PublishedVersion>>,
    ) {
        let mut entries = write(&self.entries);
        if self.epoch() == epoch {
            entries.entry(name).latest = Some(found);
        }
    }

    /// Stores what `get_version` read from SQL for `name`, unless an
    /// invalidation happened since `epoch` was taken.
    pub(super) fn fill_exact(&self, epoch: u64, name: &str, found: Shared<PublishedVersion>) {
        let mut entries = write(&self.entries);
        if self.epoch() == epoch {
            let version = found.version().clone();
            entries.entry(name).exact.insert(version, found);
        }
    }

    /// Drops what is cached for `names`.
    fn invalidate(&self, names: &[String]) {
        let mut entries = write(&self.entries);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for name in names {
            entries.remove(name);
        }
    }

    /// Drops everything.
    fn clear(&self) {
        let mut entries = write(&self.entries);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }
}

/// The WAL-index header as of the probe's last successful check, readable
/// without the probe's lock: the server's workers compare the `-shm` file's
/// header with it side by side, and only a changed header takes the lock
/// (one global mutex per cached read was most of the probe's cost under
/// load, benches/server).
///
/// The header is kept as six words. [`ChangeProbe::check`] disarms the
/// watch before it asks SQL and stores the header it read before asking
/// after the cache is current (Release), then arms it. A reader that
/// compares while the words are being rewritten can only find all six
/// equal to the file's header once every word that changed has been
/// stored, which happens after the check it announces; its Acquire load of
/// such a word makes that check's invalidations visible to it.
pub(super) struct HeaderWatch {
    /// The database's `-shm` file (the WAL index), once it could be opened.
    shm: OnceLock<std::fs::File>,
    shm_path: PathBuf,
    words: [AtomicU64; WAL_HEADER_BYTES / 8],
    armed: AtomicBool,
}

impl HeaderWatch {
    fn new(shm_path: PathBuf) -> Self {
        HeaderWatch {
            shm: OnceLock::new(),
            shm_path,
            words: Default::default(),
            armed: AtomicBool::new(false),
        }
    }

    /// Whether nothing was committed since the last check: the `-shm`
    /// header is the one that check stored. False whenever unsure.
    pub(super) fn unchanged(&self) -> bool {
        if !self.armed.load(Ordering::Acquire) {
            return false;
        }
        let Some(header) = self.header() else {
            return false;
        };
        header
            .chunks_exact(8)
            .zip(&self.words)
            .all(|(bytes, word)| {
                let bytes: [u8; 8] = bytes.try_into().expect("chunks of 8");
                word.load(Ordering::Acquire) == u64::from_ne_bytes(bytes)
            })
    }

    /// The WAL-index header, if the `-shm` file is open and its two copies
    /// agree (they differ while a commit is writing them).
    fn header(&self) -> Option<[u8; WAL_HEADER_BYTES]> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            let mut both = [0u8; 2 * WAL_HEADER_BYTES];
            self.shm.get()?.read_exact_at(&mut both, 0).ok()?;
            let (first, second) = both.split_at(WAL_HEADER_BYTES);
            if first != second {
                return None;
            }
            first.try_into().ok()
        }
        #[cfg(not(unix))]
        {
            None
        }
    }

    fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
    }

    fn arm(&self, header: &[u8; WAL_HEADER_BYTES]) {
        for (bytes, word) in header.chunks_exact(8).zip(&self.words) {
            let bytes: [u8; 8] = bytes.try_into().expect("chunks of 8");
            word.store(u64::from_ne_bytes(bytes), Ordering::Release);
        }
        self.armed.store(true, Ordering::Release);
    }

    fn open_shm(&self) {
        if self.shm.get().is_none() {
            if let Ok(file) = std::fs::File::open(&self.shm_path) {
                let _ = self.shm.set(file);
            }
        }
    }
}

/// Brings a [`NameCache`] up to date with the catalog change sequence; see
/// the module docs.
pub(super) struct ChangeProbe {
    /// Its own connection, which never waits for a lock.
    conn: Connection,
    /// Every change up to this sequence has been applied to the cache;
    /// `None` until the first check.
    applied: Option<i64>,
    /// The header the last successful check stored, shared with readers.
    watch: Arc<HeaderWatch>,
    /// The WAL-index header as read just before the last check that
    /// succeeded.
    checked_header: Option<[u8; WAL_HEADER_BYTES]>,
}

/// One copy of the WAL-index header at the start of the `-shm` file (the
/// `WalIndexHdr` of SQLite's WAL format: change counter, last frame, page
/// count, salts, checksums). Every commit rewrites it, second copy first.
const WAL_HEADER_BYTES: usize = 48;

impl ChangeProbe {
    /// A probe of the database file at `path`.
    pub(super) fn open(path: &Path) -> Result<Self> {
        let mut shm_path = path.as_os_str().to_owned();
        shm_path.push("-shm");
        Ok(ChangeProbe {
            conn: super::schema::open_probe(path)?,
            applied: None,
            watch: Arc::new(HeaderWatch::new(shm_path.into())),
            checked_header: None,
        })
    }

    /// The lock-free part readers ask first.
    pub(super) fn watch(&self) -> Arc<HeaderWatch> {
        self.watch.clone()
    }

    /// Drops from `cache` every name changed since the last check; on `Ok`
    /// the cache is current as of this call. An error (a lock it would have
    /// to wait for, say) leaves the probe where it was, so the next check
    /// catches up; the caller reads SQL instead.
    ///
    /// Nearly free when nothing was committed since the last check: the
    /// WAL-index header is read (one `pread` of the `-shm` file, no lock)
    /// and compared with the one read before that check. Every commit, by
    /// any process, rewrites the header (its change counter at least)
    /// before readers can see the commit, so an unchanged header means no
    /// commit since. Otherwise, or without a WAL index, SQL is asked.
    pub(super) fn check(&mut self, cache: &NameCache) -> Result<()> {
        let header = self.wal_header();
        if header.is_some() && header == self.checked_header {
            return Ok(());
        }
        self.watch.disarm();
        self.checked_header = None;
        self.check_sql(cache)?;
        // Read before the SQL check: a commit after that read changes it.
        self.checked_header = header;
        if let Some(header) = &header {
            self.watch.arm(header);
        }
        self.watch.open_shm();
        Ok(())
    }

    /// The WAL-index header, if the `-shm` file is open and its two copies
    /// agree.
    fn wal_header(&self) -> Option<[u8; WAL_HEADER_BYTES]> {
        self.watch.header()
    }

    /// The check itself: the names whose `change_seq` moved.
    fn check_sql(&mut self, cache: &NameCache) -> Result<()> {
        // A statement without parameters: SQLite may re-plan a statement
        // whose bound values could change the plan, which would cost more
        // than the probe itself on this path, taken by every cached read.
        let greatest = self.greatest()?;
        let Some(applied) = self.applied else {
            cache.clear();
            self.applied = Some(greatest);
            return Ok(());
        };
        if greatest == applied {
            return Ok(());
        }
        let changed: Vec<(String, i64)> = self
            .conn
            .prepare_cached(
                "SELECT name, change_seq FROM names WHERE change_seq > ?1 \
                 ORDER BY change_seq LIMIT ?2",
            )
            .and_then(|mut s| {
                s.query_map(
                    rusqlite::params![applied, MAX_NAMED_CHANGES as i64 + 1],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .collect()
            })
            .ctx("checking for catalog changes")?;
        match changed.last() {
            // Fewer than the greatest seen a moment ago: the file was
            // replaced under us. Trust nothing from before.
            None => {
                cache.clear();
                self.applied = Some(greatest);
            }
            Some(_) if changed.len() > MAX_NAMED_CHANGES => {
                // Read the new high-water mark before dropping anything, so
                // a fill that starts after the drop reads at least that much.
                let greatest = self.greatest()?;
                cache.clear();
                self.applied = Some(greatest);
            }
            Some(&(_, last)) => {
                let names: Vec<String> = changed.into_iter().map(|(name, _)| name).collect();
                cache.invalidate(&names);
                self.applied = Some(last);
            }
        }
        Ok(())
    }

    fn greatest(&self) -> Result<i64> {
        self.conn
            .prepare_cached("SELECT coalesce(max(change_seq), 0) FROM names")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .ctx("reading the catalog change sequence")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(name: &str) -> Shared<PublishedVersion> {
        let definition = nestor_core::testing::definition(&format!("db-{name}"), "1.0.0");
        Shared::new(PublishedVersion::new(definition, 0, None))
    }

    /// The probe's fast path rests on this: every commit rewrites the
    /// WAL-index header, and an idle file's header stays put.
    #[test]
    fn the_wal_header_changes_with_every_commit_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nestor.db");
        let mut writer = Connection::open(&path).unwrap();
        super::super::schema::configure_writer(&writer, true).unwrap();
        super::super::schema::migrate(&mut writer).unwrap();
        let mut probe = ChangeProbe::open(&path).unwrap();
        let cache = NameCache::new(8);
        probe.check(&cache).unwrap();
        probe.check(&cache).unwrap();
        let mut before = probe.wal_header().expect("the -shm file is read");
        assert_eq!(probe.checked_header, Some(before), "the fast path is armed");
        for i in 0..3 {
            writer
                .execute("INSERT INTO names (name) VALUES (?1)", [format!("n{i}")])
                .unwrap();
            let after = probe.wal_header().unwrap();
            assert_ne!(after, before, "commit {i} rewrote the header");
            assert_eq!(probe.wal_header().unwrap(), after, "and nothing else does");
            before = after;
        }
    }

    /// What the cache relies on end to end: a name cached by one handle is
    /// dropped after a commit through another handle on the same file.
    #[test]
    fn a_commit_elsewhere_drops_the_changed_name_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nestor.db");
        let mut writer = Connection::open(&path).unwrap();
        super::super::schema::configure_writer(&writer, true).unwrap();
        super::super::schema::migrate(&mut writer).unwrap();
        for name in ["a", "b"] {
            writer
                .execute("INSERT INTO names (name) VALUES (?1)", [name])
                .unwrap();
        }
        let mut probe = ChangeProbe::open(&path).unwrap();
        let cache = NameCache::new(8);
        probe.check(&cache).unwrap();
        let epoch = cache.epoch();
        cache.fill_latest(epoch, "a", Some(version("a")));
        cache.fill_latest(epoch, "b", Some(version("b")));
        probe.check(&cache).unwrap();
        assert!(cache.latest("a").is_some(), "nothing committed: kept");
        writer
            .execute(
                "UPDATE names SET change_seq = \
                 (SELECT coalesce(max(change_seq), 0) + 1 FROM names) WHERE name = 'a'",
                [],
            )
            .unwrap();
        probe.check(&cache).unwrap();
        assert!(cache.latest("a").is_none(), "the changed name is dropped");
        assert!(cache.latest("b").is_some(), "the other is kept");
    }

    #[test]
    fn keeps_recently_used_entries_and_bounds_its_size() {
        let cache = VersionCache::new(4);
        let [a, b, c, d] = ["a", "b", "c", "d"].map(version);
        cache.insert(a.clone());
        cache.insert(b.clone());
        cache.insert(c); // rotates: a, b are old
        assert!(
            cache.get(&a.content_hash).is_some(),
            "an old entry is still served and promoted"
        );
        cache.insert(d); // rotates: c, a are old; b dropped
        assert!(cache.get(&b.content_hash).is_none());
        let hit = cache.get(&a.content_hash).unwrap();
        assert!(Shared::ptr_eq(&hit, &a), "a hit is the cached value itself");
        assert!(lock(&cache.generations).len() <= 4);
    }
}
