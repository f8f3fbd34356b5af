//! The catalog's writes: versions inserted one by one or in a batch, yanks,
//! and the latest pointer of `names` kept in step in the same transaction.
//!
//! A batch (a cold sync: thousands of versions in one transaction) looks
//! up all its names in one statement, then costs, per version, an insert,
//! its events (appended after the versions, 64 rows per statement) and an
//! existence check for a name that existed before (a name the batch
//! creates has no version); the definition's JSON is the text the caller
//! serialised already ([`VersionWrite::definition_json`]), never serialised
//! again here. Each name the batch touched has its latest pointer written
//! once, after the last insert: a name the batch created gets its row then,
//! its latest chosen from what the batch inserted, without reading its
//! history back; a name that existed reads its history once. A large
//! batch commits without running the WAL checkpoint itself
//! (`checkpoint.rs`).

use std::collections::HashMap;

use async_trait::async_trait;
use nestor_core::{
    select_latest, CatalogWriter, Error, PublishOutcome, PublishedVersion, ResourceDefinition,
    Result, Shared, VersionSummary, VersionWrite,
};
use rusqlite::{params, CachedStatement, OptionalExtension, Statement, Transaction};
use semver::Version;

use super::cache::VersionCache;
use super::catalog::history;
use super::events::{insert_batch_events, BatchEvent};
use super::{Context, SqliteStore};

/// A version row an insert created: its id and the version, shared with
/// the read cache (its name's latest pointer needs both).
struct NewRow {
    id: i64,
    version: Shared<PublishedVersion>,
}

/// What [`insert_version`] did.
enum Inserted {
    Unchanged,
    /// The version's row id, and whether it is the first of its name.
    Created {
        first_of_name: bool,
        id: i64,
    },
}

impl Inserted {
    fn outcome(&self) -> PublishOutcome {
        match self {
            Inserted::Unchanged => PublishOutcome::Unchanged,
            Inserted::Created { .. } => PublishOutcome::Created,
        }
    }
}

/// What a transaction knows of a name it inserts versions of.
struct TouchedName {
    /// The name had a row (so versions) before this transaction.
    existed: bool,
    /// The versions this transaction inserted, in order.
    rows: Vec<NewRow>,
}

/// The names a transaction inserts versions of, in the order it first
/// touched them. A name the transaction creates gets its `names` row once,
/// at [`Touched::refresh`], already pointing at its latest version, where
/// inserting the bare name first and updating it after cost two writes.
/// Its versions go in first, so the transaction runs without SQLite's
/// foreign key checks (`Write::keeps_references`) and keeps them itself:
/// every name with a version gets its row before the commit. (Deferred
/// checks are no substitute: while a version waits for its name, SQLite
/// scans `names` for every later version.)
#[derive(Default)]
struct Touched {
    order: Vec<String>,
    names: HashMap<String, TouchedName>,
}

impl Touched {
    /// Looks up every name of `writes` at once (one statement over a JSON
    /// list, where a batch of thousands would cost a query per name).
    fn of_batch(tx: &Transaction<'_>, writes: &[VersionWrite]) -> Result<Self> {
        let mut touched = Touched::default();
        for w in writes {
            let name = w.version.name();
            if !touched.names.contains_key(name) {
                touched.track(name, false);
            }
        }
        let list = serde_json::to_string(&touched.order).ctx("listing names")?;
        let existing = tx
            .prepare_cached("SELECT n.name FROM json_each(?1) j JOIN names n ON n.name = j.value")
            .and_then(|mut s| {
                s.query_map([list], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .ctx("looking up names")?;
        for name in existing {
            if let Some(t) = touched.names.get_mut(&name) {
                t.existed = true;
            }
        }
        Ok(touched)
    }

    /// The name as this transaction sees it, read from `names` the first
    /// time.
    fn name(&mut self, tx: &Transaction<'_>, name: &str) -> Result<&mut TouchedName> {
        if !self.names.contains_key(name) {
            let existed = tx
                .prepare_cached("SELECT 1 FROM names WHERE name = ?1")
                .and_then(|mut s| s.exists([name]))
                .ctx("looking up a name")?;
            self.track(name, existed);
        }
        Ok(self.names.get_mut(name).expect("tracked above"))
    }

    /// Starts tracking `name`, which had a row before this transaction if
    /// `existed`.
    fn track(&mut self, name: &str, existed: bool) {
        self.order.push(name.to_string());
        let rows = Vec::new();
        self.names
            .insert(name.to_string(), TouchedName { existed, rows });
    }

    /// Writes the latest pointer of every touched name, once each, and
    /// moves each name's `change_seq` past every other's.
    fn refresh(mut self, tx: &Transaction<'_>) -> Result<()> {
        let mut seq = next_change_seq(tx)?;
        let mut insert = tx.prepare_cached(INSERT_NAME).ctx("inserting a name")?;
        for name in &self.order {
            let Some(touched) = self.names.remove(name) else {
                continue;
            };
            if touched.rows.is_empty() {
                // Nothing of it was written: its row stays as it was.
                continue;
            }
            if touched.existed {
                refresh_latest(tx, name, seq)?;
            } else {
                insert_new_name(&mut insert, name, &touched.rows, seq)?;
            }
            seq += 1;
        }
        Ok(())
    }
}

/// One more than the greatest `change_seq`: writers hold the file lock, so
/// sequences appear in commit order (see the cache's module docs).
fn next_change_seq(tx: &Transaction<'_>) -> Result<i64> {
    tx.prepare_cached("SELECT coalesce(max(change_seq), 0) + 1 FROM names")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ctx("reading the catalog change sequence")
}

/// The `names` row of a name the transaction created.
const INSERT_NAME: &str =
    "INSERT INTO names (name, latest_id, provider, category, resource_type, change_seq) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Inserts ([`INSERT_NAME`]) the `names` row of a name whose only versions
/// are `rows` (this transaction created them), pointing at the latest of
/// them by the core rule.
fn insert_new_name(
    insert: &mut Statement<'_>,
    name: &str,
    rows: &[NewRow],
    seq: i64,
) -> Result<()> {
    let summaries: Vec<VersionSummary> = rows.iter().map(|r| r.version.summary()).collect();
    let latest = select_latest(&summaries)
        .and_then(|v| rows.iter().find(|r| r.version.version() == &v))
        .map(|r| (r.id, &r.version.definition.metadata));
    insert
        .execute(params![
            name,
            latest.map(|(id, _)| id),
            latest.map(|(_, m)| &m.provider),
            latest.map(|(_, m)| &m.category),
            latest.map(|(_, m)| &m.resource_type),
            seq,
        ])
        .ctx("inserting a name")?;
    Ok(())
}

/// Points `names.latest_id` at the latest version of `name` by the core
/// rule, reading its history, copies its filter columns beside it, and sets
/// the name's `change_seq` to `seq`, which tells every handle's name cache
/// to drop it.
fn refresh_latest(tx: &Transaction<'_>, name: &str, seq: i64) -> Result<()> {
    let history = history(tx, name)?;
    let summaries: Vec<VersionSummary> = history.iter().map(|(_, s)| s.clone()).collect();
    let latest = select_latest(&summaries).and_then(|v| {
        history
            .iter()
            .find(|(_, s)| s.version == v)
            .map(|(id, _)| *id)
    });
    tx.prepare_cached(
        "UPDATE names SET latest_id = ?2, \
         provider = (SELECT provider FROM versions WHERE id = ?2), \
         category = (SELECT category FROM versions WHERE id = ?2), \
         resource_type = (SELECT resource_type FROM versions WHERE id = ?2), \
         change_seq = ?3 WHERE name = ?1",
    )
    .and_then(|mut s| s.execute(params![name, latest, seq]))
    .ctx("updating the latest version")?;
    Ok(())
}

/// Lower-cased searchable fields, one per line. Every field is lower-cased on
/// its own, as `search_score` and `ListFilter::matches` do, so a term or `q`
/// that matches a field is a substring of this text.
fn search_text(def: &ResourceDefinition) -> String {
    let m = &def.metadata;
    let fields = [&m.name, &m.resource_type, &m.category, &m.provider]
        .into_iter()
        .chain(m.labels.iter().flat_map(|(k, v)| [k, v]))
        .chain([&m.description]);
    let mut text = String::with_capacity(256);
    for (i, field) in fields.enumerate() {
        if i > 0 {
            text.push('\n');
        }
        // `to_lowercase` of ASCII text is its ASCII lower case, made in
        // place a word at a time (a char at a time, it cost a cold sync of
        // 10,000 definitions ~8 ms), without a string of its own per field.
        if field.is_ascii() {
            let start = text.len();
            text.push_str(field);
            if let Some(copied) = text.get_mut(start..) {
                copied.make_ascii_lowercase();
            }
        } else {
            text.push_str(&field.to_lowercase());
        }
    }
    text
}

/// Inserts `new` unless it exists; `Created` says whether it was the first
/// version of its name (decided inside the transaction). The caller
/// refreshes the name's latest pointer ([`Touched::refresh`]).
/// `definition_json` is the definition's canonical JSON when the caller
/// has it already.
fn insert_version(
    tx: &Transaction<'_>,
    insert: &mut Statement<'_>,
    cache: &VersionCache,
    touched: &mut Touched,
    new: PublishedVersion,
    definition_json: Option<&str>,
) -> Result<Inserted> {
    let name = new.name();
    let version = new.version();
    let version_text = version.to_string();
    // A name without a row has no version but the ones this transaction
    // inserted, so the existence check is skipped for its first (every
    // name of a cold sync).
    let first_of_name = {
        let known = touched.name(tx, name)?;
        !known.existed && known.rows.is_empty()
    };
    let existing: Option<String> = if first_of_name {
        None
    } else {
        tx.prepare_cached("SELECT content_hash FROM versions WHERE name = ?1 AND version = ?2")
            .and_then(|mut s| s.query_row([name, &version_text], |r| r.get(0)).optional())
            .ctx("checking for an existing version")?
    };
    match existing {
        Some(hash) if hash == new.content_hash => return Ok(Inserted::Unchanged),
        Some(_) => {
            return Err(Error::VersionImmutable {
                name: name.to_string(),
                version: version_text,
            })
        }
        None => {}
    }
    let definition_json = match definition_json {
        Some(json) => std::borrow::Cow::Borrowed(json),
        None => serde_json::to_string(&new.definition)
            .ctx("serialising a definition")?
            .into(),
    };
    let m = &new.definition.metadata;
    let origin = new.origin.as_ref();
    // Beyond i64 the integer columns saturate; order is decided in Rust anyway.
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    insert
        .execute(params![
            name,
            version_text,
            int(version.major),
            int(version.minor),
            int(version.patch),
            version.pre.as_str(),
            new.content_hash,
            new.published_at,
            new.yanked,
            m.deprecated,
            m.provider,
            m.category,
            m.resource_type,
            search_text(&new.definition),
            origin.map(|o| &o.source),
            origin.map(|o| &o.git_repository),
            origin.and_then(|o| o.git_commit.as_ref()),
            origin.map(|o| &o.git_path),
            definition_json,
        ])
        .ctx("inserting a version")?;
    let id = tx.last_insert_rowid();
    // Harmless even if the commit fails: the cache is keyed by content.
    let version = Shared::new(new);
    cache.insert(version.clone());
    let known = touched.name(tx, version.name())?;
    known.rows.push(NewRow { id, version });
    Ok(Inserted::Created { first_of_name, id })
}

/// A version's row ([`insert_version`]); a batch prepares it once for all
/// its versions (looking a statement up in rusqlite's cache hashes its
/// text, per row).
const INSERT_VERSION: &str =
    "INSERT INTO versions (name, version, major, minor, patch, pre, content_hash, published_at, \
     yanked, deprecated, provider, category, resource_type, search_text, origin_source, \
     origin_repository, origin_commit, origin_path, definition) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

fn prepare_insert<'c>(tx: &'c Transaction<'_>) -> Result<CachedStatement<'c>> {
    tx.prepare_cached(INSERT_VERSION).ctx("inserting a version")
}

/// One version and its name's latest pointer.
fn insert_one(
    tx: &Transaction<'_>,
    cache: &VersionCache,
    version: PublishedVersion,
) -> Result<PublishOutcome> {
    let mut touched = Touched::default();
    let mut insert = prepare_insert(tx)?;
    let inserted = insert_version(tx, &mut insert, cache, &mut touched, version, None)?;
    drop(insert);
    touched.refresh(tx)?;
    Ok(inserted.outcome())
}

/// The batch: every version, then each created one's events in order,
/// then each touched name's latest pointer once.
fn insert_batch(
    tx: &Transaction<'_>,
    cache: &VersionCache,
    writes: Vec<VersionWrite>,
) -> Result<Vec<Result<PublishOutcome>>> {
    let mut out = Vec::with_capacity(writes.len());
    let mut touched = Touched::of_batch(tx, &writes)?;
    let mut events = Vec::with_capacity(writes.len());
    let mut insert = prepare_insert(tx)?;
    for w in writes {
        let json = Some(w.definition_json.get());
        let inserted = match insert_version(tx, &mut insert, cache, &mut touched, w.version, json) {
            Err(e @ Error::StorageUnavailable { .. }) => return Err(e),
            Err(e) => {
                out.push(Err(e));
                continue;
            }
            Ok(inserted) => inserted,
        };
        out.push(Ok(inserted.outcome()));
        if let Inserted::Created { first_of_name, id } = inserted {
            let json = w.definition_json.get();
            let announced = w.announcement.events(first_of_name).into_iter();
            events.extend(announced.map(|e| BatchEvent::of_version(e, id, json)));
        }
    }
    drop(insert);
    // In order, after the versions they name.
    insert_batch_events(tx, &events)?;
    touched.refresh(tx)?;
    Ok(out)
}

fn set_yanked(tx: &Transaction<'_>, name: &str, version: &str, yanked: bool) -> Result<bool> {
    let current: Option<(i64, bool)> = tx
        .prepare_cached("SELECT id, yanked FROM versions WHERE name = ?1 AND version = ?2")
        .and_then(|mut s| {
            s.query_row([name, version], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .ctx("reading a version")?;
    let Some((id, was)) = current else {
        return Err(Error::VersionNotFound {
            name: name.into(),
            version: version.into(),
        });
    };
    if was == yanked {
        return Ok(false);
    }
    tx.prepare_cached("UPDATE versions SET yanked = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id, yanked]))
        .ctx("yanking a version")?;
    refresh_latest(tx, name, next_change_seq(tx)?)?;
    Ok(true)
}

#[async_trait]
impl CatalogWriter for SqliteStore {
    async fn insert_version(&self, version: PublishedVersion) -> Result<PublishOutcome> {
        let how = super::Write {
            large: false,
            keeps_references: true,
        };
        self.write_with(how, move |tx, cache| insert_one(tx, cache, version))
            .await
    }

    /// One transaction for the whole batch, each created version's events
    /// inside it; a version refused for its content (immutability) is that
    /// item's error and does not roll back the others, a storage failure
    /// rolls back everything.
    async fn insert_versions(
        &self,
        writes: Vec<VersionWrite>,
    ) -> Result<Vec<Result<PublishOutcome>>> {
        let large = writes.len() >= super::checkpoint::LARGE_BATCH;
        let how = super::Write {
            large,
            keeps_references: true,
        };
        self.write_with(how, move |tx, cache| insert_batch(tx, cache, writes))
            .await
    }

    async fn set_yanked(&self, name: &str, version: &Version, yanked: bool) -> Result<bool> {
        let (name, version) = (name.to_string(), version.to_string());
        self.write(move |tx, _| set_yanked(tx, &name, &version, yanked))
            .await
    }
}

#[cfg(test)]
mod tests {
    /// The searchable text is each field lower-cased as `to_lowercase`
    /// does it, ASCII or not, one per line.
    #[test]
    fn search_text_lower_cases_each_field_as_to_lowercase_does() {
        let mut def = nestor_core::testing::definition("db", "1.0.0");
        def.metadata.description = "ΣΊΣΥΦΟΣ Straße DB".into();
        def.metadata.labels.insert("Tier".into(), "DATA".into());
        let m = &def.metadata;
        let mut expected = vec![
            m.name.to_lowercase(),
            m.resource_type.to_lowercase(),
            m.category.to_lowercase(),
            m.provider.to_lowercase(),
        ];
        for (k, v) in &m.labels {
            expected.extend([k.to_lowercase(), v.to_lowercase()]);
        }
        expected.push(m.description.to_lowercase());
        assert_eq!(super::search_text(&def), expected.join("\n"));
        assert!(super::search_text(&def).ends_with("σίσυφος straße db"));
    }
}
