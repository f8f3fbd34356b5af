//! Team quotas on DynamoDB: usage counters updated in the very transaction
//! that writes a revision, so the check and the write are one step.
//!
//! Items in the meta table, one partition per team (`pk = Q#team`):
//! - `sk = H#environment/name`: a deployment's head — its latest revision
//!   (`rev`) and that revision's share (`body`, a [`Usage`]);
//! - `sk = U#environment` and `sk = U#*`: the team's usage in one
//!   environment and in all — numbers `deployments`, `resources` and
//!   `c_<category>`.
//!
//! Creating a revision puts the deployment's head, conditional on the head
//! read before (no other revision of it was written meanwhile), and adds
//! the difference between the new share and the old one to both counters,
//! each conditional on every growing limit of the quotas counting it
//! staying within its maximum. A head that moved is another round; a
//! counter that refused is `QUOTA_EXCEEDED`, with the usage read back.
//! Counters exist from the first revision written with them: a deployment
//! recorded before counts from its next revision on.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use nestor_core::{Deployment, Error, Limit, Quota, Result, Usage};

use super::client::unavailable;
use super::codec::{decode_body, encode_body, n, s, Item, ItemExt};
use super::tables::build_error;
use super::DynamoStore;

/// What a revision's write adds to the quota items: the items, and the
/// place of each in the transaction's order after `first`.
pub(super) struct QuotaWrite {
    /// The head put, then one update per counter that changes.
    pub items: Vec<TransactWriteItem>,
    /// The counters updated, in `items` order after the head: sort key and
    /// the quotas whose limits it checks.
    counters: Vec<(String, Vec<Quota>)>,
    /// The new share minus the old, per limit.
    delta: BTreeMap<String, i64>,
}

impl QuotaWrite {
    /// Whether the item at `index` (in `items`) is a counter.
    pub fn is_counter(&self, index: usize) -> bool {
        index >= 1 && index <= self.counters.len()
    }
}

fn partition(team: &str) -> String {
    format!("Q#{team}")
}

/// The counter attribute of a limit.
fn attribute(limit: &Limit) -> String {
    match limit {
        Limit::Deployments => "deployments".into(),
        Limit::Resources => "resources".into(),
        Limit::Category(c) => format!("c_{c}"),
    }
}

/// Every counted quantity of `usage` by attribute.
fn quantities(usage: &Usage) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::from([
        ("deployments".to_string(), usage.deployments as i64),
        ("resources".to_string(), usage.resources as i64),
    ]);
    for (c, k) in &usage.per_category {
        out.insert(format!("c_{c}"), *k as i64);
    }
    out
}

impl DynamoStore {
    /// The quota items of writing `d`: `None` when a later revision of it
    /// is already its head (an older revision's share is not live).
    pub(super) async fn quota_write(
        &self,
        d: &Deployment,
        quotas: &[Quota],
    ) -> Result<Option<QuotaWrite>> {
        let (pk, head_sk) = (
            partition(&d.team),
            format!("H#{}/{}", d.environment, d.name),
        );
        let head = self.meta_item(&pk, &head_sk).await?;
        let (old, condition) = match &head {
            Some(item) => {
                let rev = item.u64_attr("rev")?;
                if rev >= d.revision {
                    return Ok(None);
                }
                let old: Usage = decode_body("quota head", item.attr("body")?)?;
                (old, ("#rev = :prev", Some(rev)))
            }
            None => (Usage::default(), ("attribute_not_exists(pk)", None)),
        };
        let share = Usage::of(d);
        let (was, will) = (quantities(&old), quantities(&share));
        let mut delta = BTreeMap::new();
        for name in was.keys().chain(will.keys()) {
            let change = will.get(name).unwrap_or(&0) - was.get(name).unwrap_or(&0);
            if change != 0 {
                delta.insert(name.clone(), change);
            }
        }
        let mut item = Item::new();
        item.insert("pk".into(), s(&pk));
        item.insert("sk".into(), s(&head_sk));
        item.insert("rev".into(), n(d.revision));
        item.insert("body".into(), encode_body("quota head", &share)?);
        let mut put = Put::builder()
            .table_name(&self.tables.meta)
            .set_item(Some(item))
            .condition_expression(condition.0);
        if let Some(prev) = condition.1 {
            put = put
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_values(":prev", n(prev));
        }
        let mut write = QuotaWrite {
            items: vec![TransactWriteItem::builder()
                .put(put.build().map_err(build_error)?)
                .build()],
            counters: Vec::new(),
            delta,
        };
        if write.delta.is_empty() {
            return Ok(Some(write));
        }
        for environment in [Some(d.environment.as_str()), None] {
            let counting: Vec<Quota> = quotas
                .iter()
                .filter(|q| q.covers(&d.team, &d.environment))
                .filter(|q| q.environment.as_deref() == environment)
                .cloned()
                .collect();
            let sk = format!("U#{}", environment.unwrap_or("*"));
            write
                .items
                .push(self.counter_update(&pk, &sk, &write.delta, &counting)?);
            write.counters.push((sk, counting));
        }
        Ok(Some(write))
    }

    /// Adds `delta` to counter `sk`, conditional on every growing limit of
    /// `quotas` staying within its maximum.
    fn counter_update(
        &self,
        pk: &str,
        sk: &str,
        delta: &BTreeMap<String, i64>,
        quotas: &[Quota],
    ) -> Result<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(&self.tables.meta)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .expression_attribute_values(":zero", n(0));
        let mut sets = Vec::new();
        let mut slots = BTreeMap::new();
        for (i, (name, change)) in delta.iter().enumerate() {
            sets.push(format!("#a{i} = if_not_exists(#a{i}, :zero) + :d{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":d{i}"), n(change));
            slots.insert(name.clone(), (i, *change));
        }
        let mut conditions = Vec::new();
        for (q, quota) in quotas.iter().enumerate() {
            for (limit, max) in quota.limits() {
                let Some(&(i, change)) = slots.get(&attribute(&limit)) else {
                    continue;
                };
                if change <= 0 {
                    continue;
                }
                // No arithmetic in conditions: the room left before the
                // write, computed here (negative: it cannot fit at all).
                // A counter not written yet holds 0; negative room never fits.
                let room = max as i64 - change;
                let value = format!(":l{q}_{i}");
                conditions.push(if room >= 0 {
                    format!("(attribute_not_exists(#a{i}) OR #a{i} <= {value})")
                } else {
                    format!("#a{i} <= {value}")
                });
                update = update.expression_attribute_values(value, n(room));
            }
        }
        update = update.update_expression(format!("SET {}", sets.join(", ")));
        if !conditions.is_empty() {
            update = update.condition_expression(conditions.join(" AND "));
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(build_error)?)
            .build())
    }

    /// Why counter `index` of `write` refused: `QUOTA_EXCEEDED` for the
    /// first limit the write would pass, read from the counter as it is
    /// now; `None` when it fits now (the counter moved: another round).
    pub(super) async fn quota_refusal(
        &self,
        d: &Deployment,
        write: &QuotaWrite,
        index: usize,
    ) -> Result<Option<Error>> {
        let Some((sk, quotas)) = write.counters.get(index - 1) else {
            return Ok(None);
        };
        let item = self.meta_item(&partition(&d.team), sk).await?;
        let current = |name: &str| -> i64 {
            item.as_ref()
                .and_then(|i| i.get(name))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        for quota in quotas {
            for (limit, max) in quota.limits() {
                let name = attribute(&limit);
                let change = write.delta.get(&name).copied().unwrap_or(0);
                let usage = current(&name) + change;
                if change > 0 && usage > max as i64 {
                    return Ok(Some(quota.exceeded(&limit, max, usage.max(0) as u64)));
                }
            }
        }
        Ok(None)
    }

    async fn meta_item(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.meta)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(out.item)
    }
}
