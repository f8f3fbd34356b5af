//! The SQLite store's WAL under a large batch: its commit leaves the
//! checkpoint to the background, and the checkpoint does happen.

use std::time::{Duration, Instant};

use nestor_core::testing::definition;
use nestor_core::{CatalogReader, CatalogWriter, PublishedVersion, VersionWrite};
use nestor_storage::SqliteStore;

fn write(name: &str, version: &str) -> VersionWrite {
    let v = PublishedVersion::new(definition(name, version), 1_700_000_000, None);
    VersionWrite::new(v, "test", 0).unwrap()
}

/// A cold-sync-sized batch: once it returns, every version reads back,
/// and within a bounded wait its pages have been copied from the WAL into
/// the database file (the checkpoint the commit no longer runs itself);
/// small writes after it keep working and reading back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_checkpointed_after_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nestor.db");
    let store = SqliteStore::open(&path).unwrap();
    let empty = std::fs::metadata(&path).unwrap().len();
    let names: Vec<String> = (0..1500).map(|i| format!("res-{i:04}")).collect();
    let batch = names.iter().map(|n| write(n, "1.0.0")).collect();
    for outcome in store.insert_versions(batch).await.unwrap() {
        outcome.unwrap();
    }
    for name in names.iter().step_by(97) {
        assert!(store.latest(name).await.unwrap().is_some(), "{name}");
    }
    let wal = dir.path().join("nestor.db-wal");
    let wal_len = std::fs::metadata(&wal).unwrap().len();
    assert!(
        wal_len > 1 << 20,
        "the batch went through the WAL ({wal_len} bytes)"
    );
    // The database file holds the batch once the checkpoint has run.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let len = std::fs::metadata(&path).unwrap().len();
        if len > empty + wal_len / 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint within 30 s: the database file is {len} bytes, the WAL {wal_len}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A raw connection reading only the file sees every row.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = raw
        .query_row("SELECT count(*) FROM versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1500);
    // Small writes afterwards commit as before.
    let more = vec![write("res-0000", "1.1.0")];
    for outcome in store.insert_versions(more).await.unwrap() {
        outcome.unwrap();
    }
    let latest = store.latest("res-0000").await.unwrap().unwrap();
    assert_eq!(latest.version().to_string(), "1.1.0");
}
