//! Team compositions: immutable per `team/name@version`, like definitions.
//!
//! A row holds the whole `PublishedComposition` as JSON. Versions are
//! ordered in Rust with [`semver::Version`], as in the catalog: a composition
//! has few versions, and pre-release precedence is easy to get wrong in SQL.

use async_trait::async_trait;
use nestor_core::{CompositionStore, Error, PublishOutcome, PublishedComposition, Result};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use semver::Version;

use super::{Context, SqliteStore};

fn parse_version(team: &str, name: &str, version: &str) -> Result<Version> {
    Version::parse(version)
        .map_err(|e| Error::storage(format!("bad stored version {team}/{name}@{version}"), e))
}

fn parse_record(json: &str) -> Result<PublishedComposition> {
    serde_json::from_str(json).ctx("in a stored composition")
}

fn insert_composition(tx: &Transaction<'_>, new: &PublishedComposition) -> Result<PublishOutcome> {
    let m = &new.composition.metadata;
    let version = m.version.to_string();
    // The immediate transaction holds the write lock, so nobody can insert
    // this version between the check and the insert.
    let existing: Option<String> = tx
        .prepare_cached(
            "SELECT content_hash FROM compositions WHERE team = ?1 AND name = ?2 AND version = ?3",
        )
        .and_then(|mut s| {
            s.query_row([&m.team, &m.name, &version], |r| r.get(0))
                .optional()
        })
        .ctx("checking for an existing composition")?;
    match existing {
        Some(hash) if hash == new.content_hash => return Ok(PublishOutcome::Unchanged),
        Some(_) => {
            return Err(Error::VersionImmutable {
                name: format!("{}/{}", m.team, m.name),
                version,
            })
        }
        None => {}
    }
    let record = serde_json::to_string(new).ctx("serialising a composition")?;
    tx.prepare_cached(
        "INSERT INTO compositions (team, name, version, content_hash, record) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![m.team, m.name, version, new.content_hash, record]))
    .ctx("inserting a composition")?;
    Ok(PublishOutcome::Created)
}

fn get_composition(
    conn: &Connection,
    team: &str,
    name: &str,
    version: &str,
) -> Result<Option<PublishedComposition>> {
    let json: Option<String> = conn
        .prepare_cached(
            "SELECT record FROM compositions WHERE team = ?1 AND name = ?2 AND version = ?3",
        )
        .and_then(|mut s| s.query_row([team, name, version], |r| r.get(0)).optional())
        .ctx("reading a composition")?;
    json.as_deref().map(parse_record).transpose()
}

fn composition_versions(conn: &Connection, team: &str, name: &str) -> Result<Vec<Version>> {
    let texts = conn
        .prepare_cached("SELECT version FROM compositions WHERE team = ?1 AND name = ?2")
        .and_then(|mut s| {
            s.query_map([team, name], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx("reading composition versions")?;
    let mut versions = texts
        .iter()
        .map(|v| parse_version(team, name, v))
        .collect::<Result<Vec<_>>>()?;
    versions.sort_by(|a, b| b.cmp(a));
    Ok(versions)
}

/// The newest version of every `(team, name)`, ordered by team then name.
/// The first query reads only keys; records are parsed for the winners only.
fn list_compositions(conn: &Connection, team: Option<&str>) -> Result<Vec<PublishedComposition>> {
    let rows = conn
        .prepare_cached(
            "SELECT id, team, name, version FROM compositions \
             WHERE ?1 IS NULL OR team = ?1 ORDER BY team, name",
        )
        .and_then(|mut s| {
            s.query_map([team], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx("listing compositions")?;
    // Rows arrive grouped by (team, name); keep the greatest version of each.
    let mut newest: Vec<(i64, String, String, Version)> = Vec::new();
    for (id, team, name, version) in rows {
        let version = parse_version(&team, &name, &version)?;
        match newest.last_mut() {
            Some(last) if last.1 == team && last.2 == name => {
                if version > last.3 {
                    *last = (id, team, name, version);
                }
            }
            _ => newest.push((id, team, name, version)),
        }
    }
    let mut stmt = conn
        .prepare_cached("SELECT record FROM compositions WHERE id = ?1")
        .ctx("reading a composition")?;
    newest
        .into_iter()
        .map(|(id, ..)| {
            let json: String = stmt
                .query_row([id], |r| r.get(0))
                .ctx("reading a composition")?;
            parse_record(&json)
        })
        .collect()
}

#[async_trait]
impl CompositionStore for SqliteStore {
    async fn insert_composition(
        &self,
        composition: PublishedComposition,
    ) -> Result<PublishOutcome> {
        self.write(move |tx, _| insert_composition(tx, &composition))
            .await
    }

    async fn get_composition(
        &self,
        team: &str,
        name: &str,
        version: &Version,
    ) -> Result<Option<PublishedComposition>> {
        let (team, name, version) = (team.to_string(), name.to_string(), version.to_string());
        self.read(move |conn, _| get_composition(conn, &team, &name, &version))
            .await
    }

    async fn composition_versions(&self, team: &str, name: &str) -> Result<Vec<Version>> {
        let (team, name) = (team.to_string(), name.to_string());
        self.read(move |conn, _| composition_versions(conn, &team, &name))
            .await
    }

    async fn list_compositions(&self, team: Option<&str>) -> Result<Vec<PublishedComposition>> {
        let team = team.map(str::to_string);
        self.read(move |conn, _| list_compositions(conn, team.as_deref()))
            .await
    }
}
