//! The catalog tables' reads: through the caches, the latest pointer of
//! `names` for `latest` and lists. The writes are in `publish.rs`.

use async_trait::async_trait;
use nestor_core::{
    search_score, CatalogReader, CatalogSearch, Error, ListFilter, Origin, Page, PageRequest,
    PublishedVersion, Result, SearchHit, Shared, VersionSummary,
};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use semver::Version;

use super::cache::VersionCache;
use super::{Context, SqliteStore};

/// The columns of a version row except the definition, prefixed `v.`, in
/// the order [`VersionRow::read`] expects.
const ROW_COLUMNS: &str = "v.id, v.content_hash, v.published_at, v.yanked, v.origin_source, \
                           v.origin_repository, v.origin_commit, v.origin_path, v.name";

/// A version row without its definition, which comes from the cache or a
/// second query.
struct VersionRow {
    id: i64,
    content_hash: String,
    published_at: i64,
    yanked: bool,
    origin: Option<Origin>,
    name: String,
}

impl VersionRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRow> {
        let origin_source: Option<String> = row.get(4)?;
        let origin = match origin_source {
            Some(source) => Some(Origin {
                source,
                git_repository: row.get(5)?,
                git_commit: row.get(6)?,
                git_path: row.get(7)?,
            }),
            None => None,
        };
        Ok(VersionRow {
            id: row.get(0)?,
            content_hash: row.get(1)?,
            published_at: row.get(2)?,
            yanked: row.get(3)?,
            origin,
            name: row.get(8)?,
        })
    }

    /// The version this row holds: the cached one when its fields are the
    /// row's, else the row around the cached definition (or around the
    /// definition parsed from the row), cached in its place.
    fn load(self, conn: &Connection, cache: &VersionCache) -> Result<Shared<PublishedVersion>> {
        let definition = match cache.get(&self.content_hash) {
            Some(found) if self.describes(&found) => return Ok(found),
            Some(found) => found.definition.clone(),
            None => {
                let json: String = conn
                    .prepare_cached("SELECT definition FROM versions WHERE id = ?1")
                    .and_then(|mut s| s.query_row([self.id], |r| r.get(0)))
                    .ctx("reading a definition")?;
                serde_json::from_str(&json).ctx("in a stored definition")?
            }
        };
        let version = Shared::new(PublishedVersion {
            definition,
            content_hash: self.content_hash,
            published_at: self.published_at,
            yanked: self.yanked,
            origin: self.origin,
        });
        cache.insert(version.clone());
        Ok(version)
    }

    /// Whether `version` has this row's fields (its content hash aside).
    fn describes(&self, version: &PublishedVersion) -> bool {
        version.yanked == self.yanked
            && version.published_at == self.published_at
            && version.origin == self.origin
    }
}

fn get_version(
    conn: &Connection,
    cache: &VersionCache,
    name: &str,
    version: &str,
) -> Result<Option<Shared<PublishedVersion>>> {
    let sql = format!("SELECT {ROW_COLUMNS} FROM versions v WHERE v.name = ?1 AND v.version = ?2");
    let row = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row([name, version], VersionRow::read).optional())
        .ctx("reading a version")?;
    row.map(|r| r.load(conn, cache)).transpose()
}

/// The columns of a history entry, in the order [`summary`] reads them (a
/// macro, so the queries are literals).
macro_rules! summary_columns {
    () => {
        "v.id, v.version, v.published_at, v.yanked, v.deprecated, v.origin_commit"
    };
}

/// A history entry from the [`summary_columns`] starting at column `at`.
fn summary(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<(i64, String, VersionSummaryRow)> {
    Ok((
        r.get(at)?,
        r.get(at + 1)?,
        (
            r.get(at + 2)?,
            r.get(at + 3)?,
            r.get(at + 4)?,
            r.get(at + 5)?,
        ),
    ))
}

/// published_at, yanked, deprecated, origin_commit.
type VersionSummaryRow = (i64, bool, bool, Option<String>);

/// The summary of a history row of `name`.
fn to_summary(
    name: &str,
    (id, version, (published_at, yanked, deprecated, git_commit)): (i64, String, VersionSummaryRow),
) -> Result<(i64, VersionSummary)> {
    let version = Version::parse(&version)
        .map_err(|e| Error::storage(format!("bad stored version {name}@{version}"), e))?;
    Ok((
        id,
        VersionSummary {
            version,
            published_at,
            yanked,
            deprecated,
            git_commit,
        },
    ))
}

/// A name's versions with their row ids, newest first by semver.
pub(super) fn history(conn: &Connection, name: &str) -> Result<Vec<(i64, VersionSummary)>> {
    let rows = conn
        .prepare_cached(concat!(
            "SELECT ",
            summary_columns!(),
            " FROM versions v WHERE v.name = ?1"
        ))
        .and_then(|mut stmt| {
            stmt.query_map([name], |r| summary(r, 0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx("reading a version history")?;
    let mut history = rows
        .into_iter()
        .map(|row| to_summary(name, row))
        .collect::<Result<Vec<_>>>()?;
    history.sort_by(|a, b| b.1.version.cmp(&a.1.version));
    Ok(history)
}

/// The histories of `names` ([`history`] each), in one statement: the
/// names go in as a JSON list, so thousands (a cold sync) cost one query
/// instead of one each, and a name without versions costs an index probe.
fn histories(
    conn: &Connection,
    names: Vec<String>,
) -> Result<std::collections::HashMap<String, Vec<VersionSummary>>> {
    let mut out: std::collections::HashMap<String, Vec<(i64, VersionSummary)>> =
        names.into_iter().map(|n| (n, Vec::new())).collect();
    // From the map's keys: a name asked for twice is read once.
    let list = serde_json::to_string(&out.keys().collect::<Vec<_>>()).ctx("listing names")?;
    let rows = conn
        .prepare_cached(concat!(
            "SELECT v.name, ",
            summary_columns!(),
            " FROM json_each(?1) j JOIN versions v ON v.name = j.value"
        ))
        .and_then(|mut stmt| {
            stmt.query_map([list], |r| Ok((r.get::<_, String>(0)?, summary(r, 1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx("reading version histories")?;
    for (name, row) in rows {
        let entry = to_summary(&name, row)?;
        if let Some(history) = out.get_mut(&name) {
            history.push(entry);
        }
    }
    Ok(out
        .into_iter()
        .map(|(name, mut history)| {
            history.sort_by(|a, b| b.1.version.cmp(&a.1.version));
            (name, history.into_iter().map(|(_, s)| s).collect())
        })
        .collect())
}

/// A query over the latest version of every name, with the filters SQL can
/// apply; `ListFilter::matches` is still applied to every row it returns.
struct LatestQuery {
    sql: String,
    params: Vec<Value>,
}

impl LatestQuery {
    /// `terms` must each appear (lower-cased) in the searchable text.
    fn new(filter: &ListFilter, terms: &[String]) -> Self {
        let mut q = LatestQuery {
            sql: format!(
                "SELECT {ROW_COLUMNS} FROM names n JOIN versions v ON v.id = n.latest_id WHERE 1"
            ),
            params: Vec::new(),
        };
        // The copies on `names`: a name that fails is skipped without
        // reading its version row.
        for (column, wanted) in [
            ("n.provider", &filter.provider),
            ("n.category", &filter.category),
            ("n.resource_type", &filter.resource_type),
        ] {
            if let Some(wanted) = wanted {
                q.condition(&format!("{column} = ?"), wanted.clone());
            }
        }
        let q_text = filter.q.as_deref().map(str::to_lowercase);
        for needle in terms.iter().cloned().chain(q_text) {
            q.condition("instr(v.search_text, ?) > 0", needle);
        }
        q
    }

    /// Adds `AND test`, whose one `?` is bound to `param`.
    fn condition(&mut self, test: &str, param: String) {
        self.params.push(Value::Text(param));
        let placeholder = format!("?{}", self.params.len());
        self.sql.push_str(" AND ");
        self.sql.push_str(&test.replace('?', &placeholder));
    }

    /// Rows with a name after `after`, in name order, at most `limit`.
    fn page(&self, conn: &Connection, after: &str, limit: usize) -> Result<Vec<VersionRow>> {
        let n = self.params.len();
        let sql = format!(
            "{} AND n.name > ?{} ORDER BY n.name LIMIT ?{}",
            self.sql,
            n + 1,
            n + 2
        );
        let mut params = self.params.clone();
        params.push(Value::Text(after.to_string()));
        params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        self.run(conn, &sql, params)
    }

    /// Every matching row.
    fn all(&self, conn: &Connection) -> Result<Vec<VersionRow>> {
        self.run(conn, &self.sql, self.params.clone())
    }

    fn run(&self, conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Vec<VersionRow>> {
        let mut stmt = conn.prepare_cached(sql).ctx("listing latest versions")?;
        stmt.query_map(params_from_iter(params), VersionRow::read)
            .and_then(|rows| rows.collect())
            .ctx("listing latest versions")
    }
}

fn list_latest(
    conn: &Connection,
    cache: &VersionCache,
    filter: &ListFilter,
    page: &PageRequest,
) -> Result<Page<Shared<PublishedVersion>>> {
    let query = LatestQuery::new(filter, &[]);
    // One match beyond the page tells whether there is a next page.
    let wanted = page.limit.saturating_add(1);
    let batch = wanted.clamp(32, 1024);
    let mut after = page.cursor.clone().unwrap_or_default();
    let mut items = Vec::new();
    'scan: loop {
        let rows = query.page(conn, &after, batch)?;
        let exhausted = rows.len() < batch;
        for row in rows {
            after.clone_from(&row.name);
            let version = row.load(conn, cache)?;
            if filter.matches(&version) {
                items.push(version);
                if items.len() == wanted {
                    break 'scan;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    let more = items.len() > page.limit;
    items.truncate(page.limit);
    let next_cursor = if more {
        items.last().map(|v| v.name().to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

fn search(
    conn: &Connection,
    cache: &VersionCache,
    query: &str,
    filter: &ListFilter,
    limit: usize,
) -> Result<Vec<SearchHit>> {
    let terms: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    if terms.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let mut hits = Vec::new();
    for row in LatestQuery::new(filter, &terms).all(conn)? {
        let version = row.load(conn, cache)?;
        if !filter.matches(&version) {
            continue;
        }
        let score = search_score(&version.definition, query);
        if score > 0 {
            hits.push(SearchHit { score, version });
        }
    }
    nestor_core::rank_hits(&mut hits);
    hits.truncate(limit);
    Ok(hits)
}

#[async_trait]
impl CatalogReader for SqliteStore {
    /// From the name cache when the change probe allows, else one query.
    async fn get_version(
        &self,
        name: &str,
        version: &Version,
    ) -> Result<Option<Shared<PublishedVersion>>> {
        let epoch = self.fresh_names();
        if epoch.is_some() {
            if let Some(hit) = self.shared.names.exact(name, version) {
                return Ok(Some(hit));
            }
        }
        let (owned_name, version_text) = (name.to_string(), version.to_string());
        let found = self
            .read(move |conn, cache| get_version(conn, cache, &owned_name, &version_text))
            .await?;
        if let (Some(epoch), Some(found)) = (epoch, &found) {
            self.shared.names.fill_exact(epoch, name, found.clone());
        }
        Ok(found)
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>> {
        let name = name.to_string();
        self.read(move |conn, _| Ok(history(conn, &name)?.into_iter().map(|(_, s)| s).collect()))
            .await
    }

    /// Every history on one reader connection, in one trip to the blocking
    /// pool and one statement: a cold sync asks for thousands.
    async fn versions_many(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<VersionSummary>>> {
        let names = names.to_vec();
        self.read(move |conn, _| histories(conn, names)).await
    }

    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> Result<Page<Shared<PublishedVersion>>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.read(move |conn, cache| list_latest(conn, cache, &filter, &page))
            .await
    }

    /// From the name cache when the change probe allows, else one lookup
    /// through the latest pointer, which every write keeps equal to what the
    /// default method would compute from `versions`.
    async fn latest(&self, name: &str) -> Result<Option<Shared<PublishedVersion>>> {
        let epoch = self.fresh_names();
        if epoch.is_some() {
            if let Some(hit) = self.shared.names.latest(name) {
                return Ok(hit);
            }
        }
        let owned_name = name.to_string();
        let found = self
            .read(move |conn, cache| {
                let sql = format!(
                    "SELECT {ROW_COLUMNS} FROM names n JOIN versions v ON v.id = n.latest_id \
                     WHERE n.name = ?1"
                );
                let row = conn
                    .prepare_cached(&sql)
                    .and_then(|mut s| s.query_row([&owned_name], VersionRow::read).optional())
                    .ctx("reading the latest version")?;
                row.map(|r| r.load(conn, cache)).transpose()
            })
            .await?;
        if let Some(epoch) = epoch {
            self.shared.names.fill_latest(epoch, name, found.clone());
        }
        Ok(found)
    }
}

#[async_trait]
impl CatalogSearch for SqliteStore {
    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        let (query, filter) = (query.to_string(), filter.clone());
        self.read(move |conn, cache| search(conn, cache, &query, &filter, limit))
            .await
    }
}
