//! The audit trail in SQLite: one row per record (the entry as JSON, the
//! filtered fields as indexed columns). Ids come from AUTOINCREMENT, so
//! they increase across every process sharing the file and are never
//! reused after pruning.

use async_trait::async_trait;
use nestor_core::{audit_id, AuditEntry, AuditLog, AuditQuery, AuditRecord, Result, Timestamp};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter};

use super::{Context, SqliteStore};

/// The WHERE clause and its parameters for `query` (`?n` numbered).
fn filter(query: &AuditQuery) -> (String, Vec<SqlValue>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let mut add = |clause: &str, value: SqlValue| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(actor) = &query.actor {
        add("actor = ?", SqlValue::Text(actor.clone()));
    }
    if let Some(subject) = &query.subject {
        add("subject = ?", SqlValue::Text(subject.clone()));
    }
    match query.action.as_deref().map(|a| (a, a.strip_suffix(".*"))) {
        Some((_, Some(area))) => {
            // `area.` as a prefix, compared without LIKE's wildcards.
            let prefix = format!("{area}.");
            let len = prefix.chars().count() as i64;
            add(
                &format!("substr(action, 1, {len}) = ?"),
                SqlValue::Text(prefix),
            );
        }
        Some((action, None)) => add("action = ?", SqlValue::Text(action.to_string())),
        None => {}
    }
    if let Some(since) = query.since {
        add("timestamp >= ?", SqlValue::Integer(since));
    }
    if let Some(until) = query.until {
        add("timestamp < ?", SqlValue::Integer(until));
    }
    if let Some(after) = &query.after {
        // Ids are the rows' AUTOINCREMENT numbers, zero-padded.
        let id = after.id.parse::<i64>().unwrap_or(i64::MAX);
        values.push(SqlValue::Integer(after.timestamp));
        values.push(SqlValue::Integer(id));
        let (t, i) = (values.len() - 1, values.len());
        clauses.push(format!(
            "(timestamp < ?{t} OR (timestamp = ?{t} AND id < ?{i}))"
        ));
    }
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (clause, values)
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record_audit(&self, entry: AuditEntry) -> Result<AuditRecord> {
        let json = serde_json::to_string(&entry).ctx("serialising an audit entry")?;
        self.write(move |tx, _| {
            tx.prepare_cached(
                "INSERT INTO audit (timestamp, actor, action, subject, entry) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    entry.timestamp,
                    entry.actor.name,
                    entry.action,
                    entry.subject,
                    json
                ])
            })
            .ctx("recording an audit entry")?;
            Ok(AuditRecord {
                id: audit_id(tx.last_insert_rowid().unsigned_abs()),
                entry,
            })
        })
        .await
    }

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let limit = query.effective_limit()? as i64;
        let (clause, mut values) = filter(query);
        values.push(SqlValue::Integer(limit));
        let sql = format!(
            "SELECT id, entry FROM audit {clause} ORDER BY timestamp DESC, id DESC LIMIT ?{}",
            values.len()
        );
        self.read(move |conn, _| {
            let rows = conn
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(params_from_iter(values), |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .ctx("reading the audit trail")?;
            rows.into_iter()
                .map(|(id, json)| {
                    let entry: AuditEntry =
                        serde_json::from_str(&json).ctx("in a stored audit entry")?;
                    Ok(AuditRecord {
                        id: audit_id(id.unsigned_abs()),
                        entry,
                    })
                })
                .collect()
        })
        .await
    }

    async fn prune_audit_before(&self, before: Timestamp) -> Result<u64> {
        self.write(move |tx, _| {
            let n = tx
                .execute("DELETE FROM audit WHERE timestamp < ?1", params![before])
                .ctx("pruning the audit trail")?;
            Ok(n as u64)
        })
        .await
    }
}
