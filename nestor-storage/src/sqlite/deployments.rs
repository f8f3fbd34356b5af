//! Deployments, their revision content, idempotency keys and leases.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction, so its checks (revision
//! number free, idempotency key unused, generation unchanged) and its writes
//! happen under the file's write lock: of two writers, in this process or
//! another, the second sees the first one's row and gets `CONFLICT`.
//!
//! The `deployment` column holds the whole `Deployment` as JSON and is the
//! truth; `team`, `environment`, `name`, `revision`, `status`, `created_at`
//! and `generation` are copies written in the same statement, there for
//! uniqueness, filters and order.
//!
//! Leases are rows of `leases`, changed only by statements conditional on
//! the row's `epoch` (and, for a claim, its expiry) whose changed-row count
//! says whether they won; inside the write transaction that makes a claim,
//! renewal or release atomic across processes too.

use async_trait::async_trait;
use nestor_core::{
    check_quotas, lease_lost, CreateOutcome, Deployment, DeploymentFilter, DeploymentKey,
    DeploymentStore, Error, Lease, Quota, Result, RevisionContent,
};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};

use super::{Context, SqliteStore};

/// A `u64` as an SQLite integer; beyond `i64::MAX` it cannot be stored.
fn int(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n)
        .map_err(|_| Error::bad_request(format!("{what} {n} is larger than the store can hold")))
}

fn parse_deployment(json: &str) -> Result<Deployment> {
    serde_json::from_str(json).ctx("in a stored deployment")
}

/// Whether an SQLite error is a violated `UNIQUE` (or other) constraint.
fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn get_deployment(conn: &Connection, id: &str) -> Result<Option<Deployment>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT deployment FROM deployments WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .ctx("reading a deployment")?;
    json.as_deref().map(parse_deployment).transpose()
}

/// The latest revision of each deployment of `team`.
fn latest_of_team(tx: &Transaction<'_>, team: &str) -> Result<Vec<Deployment>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT deployment FROM deployments d WHERE team = ?1 AND revision = \
             (SELECT MAX(revision) FROM deployments x WHERE x.team = d.team \
              AND x.environment = d.environment AND x.name = d.name)",
        )
        .ctx("counting a team's usage")?;
    let rows = stmt
        .query_map([team], |r| r.get::<_, String>(0))
        .ctx("counting a team's usage")?;
    let mut latest = Vec::new();
    for json in rows {
        let json = json.ctx("counting a team's usage")?;
        latest.push(serde_json::from_str(&json).ctx("in a stored deployment")?);
    }
    Ok(latest)
}

fn create_deployment(
    tx: &Transaction<'_>,
    d: &Deployment,
    content: &RevisionContent,
    idempotency: Option<(&str, &str)>,
    quotas: &[Quota],
) -> Result<CreateOutcome> {
    if let Some((key, hash)) = idempotency {
        let seen: Option<(String, String)> = tx
            .prepare_cached(
                "SELECT request_hash, deployment_id FROM idempotency_keys WHERE key = ?1",
            )
            .and_then(|mut s| {
                s.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .ctx("reading an idempotency key")?;
        if let Some((seen_hash, id)) = seen {
            if seen_hash != hash {
                return Err(Error::Conflict {
                    message: format!("idempotency key {key:?} was used with another request"),
                });
            }
            let existing = get_deployment(tx, &id)?.ok_or_else(|| {
                Error::internal(format!(
                    "idempotency key {key:?} names deployment {id}, which is missing"
                ))
            })?;
            return Ok(CreateOutcome::Existing(Box::new(existing)));
        }
    }
    let (revision, generation) = (
        int(d.revision, "revision")?,
        int(d.generation, "generation")?,
    );
    let taken: Option<String> = tx
        .prepare_cached(
            "SELECT id FROM deployments WHERE id = ?1 \
             OR (team = ?2 AND environment = ?3 AND name = ?4 AND revision = ?5) LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(
                params![d.id, d.team, d.environment, d.name, revision],
                |r| r.get(0),
            )
            .optional()
        })
        .ctx("checking for an existing revision")?;
    if let Some(taken) = taken {
        let message = if taken == d.id {
            format!("deployment id {} already exists", d.id)
        } else {
            format!("{} revision {} already exists", d.key(), d.revision)
        };
        return Err(Error::Conflict { message });
    }
    // In the write transaction: no other write sees the usage in between.
    if quotas.iter().any(|q| q.covers(&d.team, &d.environment)) {
        check_quotas(quotas, d, &latest_of_team(tx, &d.team)?)?;
    }
    let json = serde_json::to_string(d).ctx("serialising a deployment")?;
    tx.prepare_cached(
        "INSERT INTO deployments \
         (id, team, environment, name, revision, status, created_at, generation, deployment) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            d.id,
            d.team,
            d.environment,
            d.name,
            revision,
            d.status.as_str(),
            d.created_at,
            generation,
            json,
        ])
    })
    .ctx("inserting a deployment")?;
    save_revision_content(tx, &d.id, content)?;
    if let Some((key, hash)) = idempotency {
        tx.prepare_cached(
            "INSERT INTO idempotency_keys (key, request_hash, deployment_id) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute([key, hash, &d.id]))
        .ctx("recording an idempotency key")?;
    }
    Ok(CreateOutcome::Created)
}

fn update_deployment(tx: &Transaction<'_>, d: &Deployment, expected: u64) -> Result<()> {
    let stored: Option<i64> = tx
        .prepare_cached("SELECT generation FROM deployments WHERE id = ?1")
        .and_then(|mut s| s.query_row([&d.id], |r| r.get(0)).optional())
        .ctx("reading a deployment's generation")?;
    let Some(stored) = stored else {
        return Err(Error::DeploymentNotFound { id: d.id.clone() });
    };
    if u64::try_from(stored).ok() != Some(expected) {
        return Err(Error::Conflict {
            message: format!(
                "deployment {} changed concurrently (generation {stored} ≠ {expected})",
                d.id
            ),
        });
    }
    let next = expected
        .checked_add(1)
        .ok_or_else(|| Error::bad_request("the deployment's generation overflowed"))?;
    let updated = Deployment {
        generation: next,
        ..d.clone()
    };
    let json = serde_json::to_string(&updated).ctx("serialising a deployment")?;
    let (revision, generation) = (int(d.revision, "revision")?, int(next, "generation")?);
    let result = tx
        .prepare_cached(
            "UPDATE deployments SET team = ?2, environment = ?3, name = ?4, revision = ?5, \
             status = ?6, created_at = ?7, generation = ?8, deployment = ?9 WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                d.id,
                d.team,
                d.environment,
                d.name,
                revision,
                d.status.as_str(),
                d.created_at,
                generation,
                json,
            ])
        });
    match result {
        Ok(_) => Ok(()),
        // Only reachable if the update moves the deployment onto a revision
        // another row holds.
        Err(e) if is_constraint(&e) => Err(Error::Conflict {
            message: format!("{} revision {} already exists", d.key(), d.revision),
        }),
        Err(e) => Err(e).ctx("updating a deployment"),
    }
}

fn save_revision_content(tx: &Transaction<'_>, id: &str, content: &RevisionContent) -> Result<()> {
    let json = serde_json::to_string(content).ctx("serialising revision content")?;
    let exists = tx
        .prepare_cached("SELECT 1 FROM deployments WHERE id = ?1")
        .and_then(|mut s| s.exists([id]))
        .ctx("reading a deployment")?;
    if !exists {
        return Err(Error::DeploymentNotFound { id: id.into() });
    }
    tx.prepare_cached(
        "INSERT INTO revision_contents (deployment_id, content) VALUES (?1, ?2) \
         ON CONFLICT (deployment_id) DO UPDATE SET content = excluded.content",
    )
    .and_then(|mut s| s.execute([id, &json]))
    .ctx("saving revision content")?;
    Ok(())
}

fn revision_content(conn: &Connection, id: &str) -> Result<Option<RevisionContent>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT content FROM revision_contents WHERE deployment_id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .ctx("reading revision content")?;
    json.map(|j| serde_json::from_str(&j).ctx("in stored revision content"))
        .transpose()
}

/// Runs a query whose one column is a deployment's JSON.
fn query_deployments(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Vec<Deployment>> {
    let rows = conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(params), |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx("listing deployments")?;
    rows.iter().map(|json| parse_deployment(json)).collect()
}

fn list_deployments(conn: &Connection, filter: &DeploymentFilter) -> Result<Vec<Deployment>> {
    let mut sql = String::from("SELECT deployment FROM deployments WHERE 1");
    let mut params = Vec::new();
    let status = filter.status.map(|s| s.as_str().to_string());
    for (column, wanted) in [
        ("team", &filter.team),
        ("environment", &filter.environment),
        ("name", &filter.name),
        ("status", &status),
    ] {
        if let Some(wanted) = wanted {
            params.push(Value::Text(wanted.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", params.len()));
        }
    }
    sql.push_str(" ORDER BY created_at DESC, revision DESC, id");
    let mut found = query_deployments(conn, &sql, params)?;
    // The SQL filter is a pre-filter; `DeploymentFilter::matches` is the rule.
    found.retain(|d| filter.matches(d));
    Ok(found)
}

fn revisions(conn: &Connection, key: &DeploymentKey) -> Result<Vec<Deployment>> {
    let params = [&key.team, &key.environment, &key.name]
        .map(|s| Value::Text(s.clone()))
        .to_vec();
    query_deployments(
        conn,
        "SELECT deployment FROM deployments \
         WHERE team = ?1 AND environment = ?2 AND name = ?3 ORDER BY revision",
        params,
    )
}

/// A lease's expiry `ttl_ms` after `now_ms`.
fn expiry(now_ms: i64, ttl_ms: i64) -> i64 {
    now_ms.saturating_add(ttl_ms)
}

fn claim_lease(
    tx: &Transaction<'_>,
    id: &str,
    owner: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Option<Lease>> {
    let expires_at_ms = expiry(now_ms, ttl_ms);
    let inserted = tx
        .prepare_cached(
            "INSERT INTO leases (deployment_id, owner, epoch, expires_at_ms) \
             VALUES (?1, ?2, 1, ?3) ON CONFLICT (deployment_id) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![id, owner, expires_at_ms]))
        .ctx("claiming a lease")?;
    if inserted == 1 {
        return Ok(Some(Lease {
            deployment_id: id.into(),
            owner: owner.into(),
            epoch: 1,
            expires_at_ms,
        }));
    }
    let (epoch, stored_expiry): (i64, i64) = tx
        .prepare_cached("SELECT epoch, expires_at_ms FROM leases WHERE deployment_id = ?1")
        .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))))
        .ctx("reading a lease")?;
    if stored_expiry > now_ms {
        return Ok(None);
    }
    let next = epoch
        .checked_add(1)
        .ok_or_else(|| Error::internal(format!("the lease epoch of {id} overflowed")))?;
    let taken = tx
        .prepare_cached(
            "UPDATE leases SET owner = ?2, epoch = ?3, expires_at_ms = ?4 \
             WHERE deployment_id = ?1 AND epoch = ?5 AND expires_at_ms <= ?6",
        )
        .and_then(|mut s| s.execute(params![id, owner, next, expires_at_ms, epoch, now_ms]))
        .ctx("taking over a lease")?;
    if taken != 1 {
        return Ok(None);
    }
    Ok(Some(Lease {
        deployment_id: id.into(),
        owner: owner.into(),
        epoch: stored_epoch(id, next)?,
        expires_at_ms,
    }))
}

fn renew_lease(tx: &Transaction<'_>, lease: &Lease, now_ms: i64, ttl_ms: i64) -> Result<Lease> {
    let expires_at_ms = expiry(now_ms, ttl_ms);
    let Ok(epoch) = i64::try_from(lease.epoch) else {
        return Err(lease_lost(lease));
    };
    let renewed = tx
        .prepare_cached(
            "UPDATE leases SET expires_at_ms = ?4 \
             WHERE deployment_id = ?1 AND owner = ?2 AND epoch = ?3",
        )
        .and_then(|mut s| {
            s.execute(params![
                lease.deployment_id,
                lease.owner,
                epoch,
                expires_at_ms
            ])
        })
        .ctx("renewing a lease")?;
    if renewed != 1 {
        return Err(lease_lost(lease));
    }
    Ok(Lease {
        expires_at_ms,
        ..lease.clone()
    })
}

fn release_lease(tx: &Transaction<'_>, lease: &Lease) -> Result<()> {
    let Ok(epoch) = i64::try_from(lease.epoch) else {
        return Ok(());
    };
    tx.prepare_cached("DELETE FROM leases WHERE deployment_id = ?1 AND owner = ?2 AND epoch = ?3")
        .and_then(|mut s| s.execute(params![lease.deployment_id, lease.owner, epoch]))
        .ctx("releasing a lease")?;
    Ok(())
}

fn leases(conn: &Connection) -> Result<Vec<Lease>> {
    let rows = conn
        .prepare_cached(
            "SELECT deployment_id, owner, epoch, expires_at_ms FROM leases ORDER BY deployment_id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ctx("listing leases")?;
    rows.into_iter()
        .map(|(deployment_id, owner, epoch, expires_at_ms)| {
            let epoch = stored_epoch(&deployment_id, epoch)?;
            Ok(Lease {
                deployment_id,
                owner,
                epoch,
                expires_at_ms,
            })
        })
        .collect()
}

/// A stored lease epoch as a `u64`; only a hand-edited file has a negative
/// one.
fn stored_epoch(id: &str, epoch: i64) -> Result<u64> {
    u64::try_from(epoch)
        .map_err(|e| Error::storage(format!("the stored lease of {id} has a bad epoch"), e))
}

#[async_trait]
impl DeploymentStore for SqliteStore {
    async fn create_deployment_within(
        &self,
        deployment: &Deployment,
        content: &RevisionContent,
        idempotency: Option<(&str, &str)>,
        quotas: &[Quota],
    ) -> Result<CreateOutcome> {
        let (deployment, content) = (deployment.clone(), content.clone());
        let idempotency = idempotency.map(|(k, h)| (k.to_string(), h.to_string()));
        let quotas = quotas.to_vec();
        self.write(move |tx, _| {
            let idempotency = idempotency.as_ref().map(|(k, h)| (k.as_str(), h.as_str()));
            create_deployment(tx, &deployment, &content, idempotency, &quotas)
        })
        .await
    }

    async fn update_deployment(&self, deployment: &Deployment, expected: u64) -> Result<()> {
        let deployment = deployment.clone();
        self.write(move |tx, _| update_deployment(tx, &deployment, expected))
            .await
    }

    async fn save_revision_content(&self, id: &str, content: &RevisionContent) -> Result<()> {
        let (id, content) = (id.to_string(), content.clone());
        self.write(move |tx, _| save_revision_content(tx, &id, &content))
            .await
    }

    async fn get_deployment(&self, id: &str) -> Result<Option<Deployment>> {
        let id = id.to_string();
        self.read(move |conn, _| get_deployment(conn, &id)).await
    }

    async fn revision_content(&self, id: &str) -> Result<Option<RevisionContent>> {
        let id = id.to_string();
        self.read(move |conn, _| revision_content(conn, &id)).await
    }

    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>> {
        let filter = filter.clone();
        self.read(move |conn, _| list_deployments(conn, &filter))
            .await
    }

    async fn revisions(&self, key: &DeploymentKey) -> Result<Vec<Deployment>> {
        let key = key.clone();
        self.read(move |conn, _| revisions(conn, &key)).await
    }

    async fn claim_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.write(move |tx, _| claim_lease(tx, &id, &owner, now_ms, ttl_ms))
            .await
    }

    async fn renew_lease(&self, lease: &Lease, now_ms: i64, ttl_ms: i64) -> Result<Lease> {
        let lease = lease.clone();
        self.write(move |tx, _| renew_lease(tx, &lease, now_ms, ttl_ms))
            .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let lease = lease.clone();
        self.write(move |tx, _| release_lease(tx, &lease)).await
    }

    async fn leases(&self) -> Result<Vec<Lease>> {
        self.read(|conn, _| leases(conn)).await
    }
}
