//! The audit trail in DynamoDB, in the meta table (no new table for
//! `migrate` to create): records are partitioned by 30-day period
//! (`pk = audit#<period>`), sorted by `sk = <timestamp>#<id>`, so a query
//! reads the periods of its window newest first and stops at its limit.
//! Ids come from a counter item (`UpdateItem ADD`), unique across
//! replicas; the counter also remembers the oldest period still holding
//! records, where reads and pruning stop.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use nestor_core::{
    audit_id, AuditEntry, AuditLog, AuditQuery, AuditRecord, Error, Result, Timestamp,
};

use super::client::unavailable;
use super::codec::{decode_body, encode_body, n, s, Item, ItemExt};
use super::DynamoStore;

/// Seconds per partition of the trail.
const PERIOD: i64 = 30 * 24 * 3600;

fn period(timestamp: Timestamp) -> i64 {
    timestamp.div_euclid(PERIOD)
}

fn counter_key() -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), s("counter")),
        ("sk".to_string(), s("audit")),
    ])
}

/// The sort key: timestamps shifted to be non-negative and zero-padded,
/// so text order is time order.
fn sort_key(timestamp: Timestamp, id: &str) -> String {
    format!("{:020}#{id}", (timestamp as i128 + i64::MAX as i128 + 1))
}

impl DynamoStore {
    /// The oldest and newest periods holding records, `None` when empty.
    async fn audit_periods(&self) -> Result<Option<(i64, i64)>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.meta)
            .set_key(Some(counter_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let number = |key: &str| {
            item.get(key)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        Ok(number("low_period").zip(number("high_period")))
    }

    /// Records of one period passing `query`, newest first, appended to
    /// `into` until it holds `limit`.
    async fn period_records(
        &self,
        p: i64,
        query: &AuditQuery,
        limit: usize,
        into: &mut Vec<AuditRecord>,
    ) -> Result<()> {
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.meta)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(format!("audit#{p}")))
                .scan_index_forward(false)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            for item in out.items() {
                let record = record_from_item(item)?;
                if query.admits(&record) {
                    into.push(record);
                    if into.len() >= limit {
                        return Ok(());
                    }
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(());
            }
        }
    }
}

fn record_from_item(item: &Item) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: item.str_attr("id")?.to_string(),
        entry: decode_body("an audit entry", item.attr("entry")?)?,
    })
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record_audit(&self, entry: AuditEntry) -> Result<AuditRecord> {
        let p = period(entry.timestamp);
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.meta)
            .set_key(Some(counter_key()))
            .update_expression(
                "ADD n :one SET low_period = if_not_exists(low_period, :p), high_period = if_not_exists(high_period, :p)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":p", n(p))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| unavailable("UpdateItem", e))?;
        let attrs = out.attributes.unwrap_or_default();
        let number = |key: &str| {
            attrs
                .get(key)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        let seq = number("n")
            .ok_or_else(|| Error::internal("audit counter update returned no number"))?;
        // Periods only widen; a lost race here is repaired by the next record.
        let (low, high) = (
            number("low_period").unwrap_or(p),
            number("high_period").unwrap_or(p),
        );
        if p < low || p > high {
            self.client
                .update_item()
                .table_name(&self.tables.meta)
                .set_key(Some(counter_key()))
                .update_expression("SET low_period = :low, high_period = :high")
                .expression_attribute_values(":low", n(low.min(p)))
                .expression_attribute_values(":high", n(high.max(p)))
                .send()
                .await
                .map_err(|e| unavailable("UpdateItem", e))?;
        }
        let record = AuditRecord {
            id: audit_id(seq.unsigned_abs()),
            entry,
        };
        let item = HashMap::from([
            ("pk".to_string(), s(format!("audit#{p}"))),
            (
                "sk".to_string(),
                s(sort_key(record.entry.timestamp, &record.id)),
            ),
            ("id".to_string(), s(&record.id)),
            ("ts".to_string(), n(record.entry.timestamp)),
            (
                "entry".to_string(),
                encode_body("an audit entry", &record.entry)?,
            ),
        ]);
        self.client
            .put_item()
            .table_name(&self.tables.meta)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", e))?;
        Ok(record)
    }

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let limit = query.effective_limit()?;
        let Some((low, high)) = self.audit_periods().await? else {
            return Ok(vec![]);
        };
        let newest = query
            .until
            .map_or(high, |t| period(t.saturating_sub(1)).min(high));
        let newest = query
            .after
            .as_ref()
            .map_or(newest, |a| period(a.timestamp).min(newest));
        let oldest = query.since.map_or(low, |t| period(t).max(low));
        let mut found = Vec::new();
        let mut p = newest;
        while p >= oldest && found.len() < limit {
            self.period_records(p, query, limit, &mut found).await?;
            p -= 1;
        }
        Ok(found)
    }

    async fn prune_audit_before(&self, before: Timestamp) -> Result<u64> {
        let Some((low, high)) = self.audit_periods().await? else {
            return Ok(0);
        };
        let mut deleted = 0u64;
        let last = period(before).min(high);
        for p in low..=last {
            let old = AuditQuery {
                until: Some(before),
                ..AuditQuery::default()
            };
            let mut records = Vec::new();
            self.period_records(p, &old, usize::MAX, &mut records)
                .await?;
            for r in &records {
                self.client
                    .delete_item()
                    .table_name(&self.tables.meta)
                    .key("pk", s(format!("audit#{p}")))
                    .key("sk", s(sort_key(r.entry.timestamp, &r.id)))
                    .send()
                    .await
                    .map_err(|e| unavailable("DeleteItem", e))?;
                deleted += 1;
            }
        }
        let new_low = period(before).min(high);
        if new_low > low {
            self.client
                .update_item()
                .table_name(&self.tables.meta)
                .set_key(Some(counter_key()))
                .update_expression("SET low_period = :low")
                .condition_expression("low_period < :low")
                .expression_attribute_values(":low", n(new_low))
                .send()
                .await
                .ok();
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_like_time_even_before_the_epoch() {
        let keys: Vec<String> = [-5, 0, 7, 1_700_000_000]
            .iter()
            .map(|t| sort_key(*t, "00000000000000000001"))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(period(-1), -1);
    }
}
