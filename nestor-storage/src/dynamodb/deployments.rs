//! `DeploymentStore` on the deployments table.
//!
//! Items (partition key `pk`, sort key `sk`):
//! - `K#team/environment/name`, `R#<revision, 20 digits>`: a revision — the
//!   deployment's JSON, its `gen` (optimistic-concurrency generation), and
//!   the `team` / `created` attributes of the `by_team` index. One
//!   partition per deployment, so its revisions are one ordered Query.
//! - `D#id`, `ID`: where an id lives (team, environment, name, revision);
//!   immutable, so it is cached forever once read.
//! - `D#id`, `CONTENT`: the revision's content (pinned resources and
//!   rendered files), deflated when large.
//! - `I#key`, `I`: an idempotency key with its request hash and the id it
//!   created.
//!
//! A revision, its id item, its content and its idempotency key are written
//! in one transaction, each conditional on not existing, so of two writers
//! taking one revision number (or one key) exactly one commits. Updates put
//! the revision conditional on `gen` being the generation the writer read.
//!
//! Team quotas add a deployment head and usage counters to the same
//! transaction (see `quotas.rs`).
//!
//! Leases live in their own table (see `leases.rs`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use nestor_core::{
    CreateOutcome, Deployment, DeploymentFilter, DeploymentKey, DeploymentStore, Error, Lease,
    Quota, Result, RevisionContent,
};

use super::client::{
    backoff, cancel_codes, contention, request_token, unavailable, MAX_WRITE_ROUNDS,
};
use super::codec::{decode_body, encode_body, n, s, Item, ItemExt};
use super::tables::{build_error, BY_TEAM_INDEX};
use super::DynamoStore;

/// Meta partition registering every team with a deployment, so listing
/// across teams needs no Scan.
const TEAMS_PK: &str = "deployment_team";

fn deployment_pk(key: &DeploymentKey) -> String {
    format!("K#{}/{}/{}", key.team, key.environment, key.name)
}

fn revision_sk(revision: u64) -> String {
    format!("R#{revision:020}")
}

fn id_pk(id: &str) -> String {
    format!("D#{id}")
}

fn item_key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// `created_at` shifted to unsigned and zero-padded, then the id: sorts by
/// time (negative timestamps included), ties broken by id.
fn created_key(d: &Deployment) -> String {
    let shifted = (i128::from(d.created_at) - i128::from(i64::MIN)) as u128;
    format!("{shifted:020}#{}", d.id)
}

fn revision_item(d: &Deployment) -> Result<Item> {
    let mut item = item_key(deployment_pk(&d.key()), &revision_sk(d.revision));
    item.insert("id".into(), s(&d.id));
    item.insert("team".into(), s(&d.team));
    item.insert("created".into(), s(created_key(d)));
    item.insert("gen".into(), n(d.generation));
    item.insert("body".into(), encode_body("deployment", d)?);
    Ok(item)
}

fn deployment_from_item(item: &Item) -> Result<Deployment> {
    let mut d: Deployment = decode_body("deployment", item.attr("body")?)?;
    d.generation = item.u64_attr("gen")?;
    Ok(d)
}

fn put_item(table: &str, item: Item, condition: Option<&str>) -> Result<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(String::from));
    Ok(TransactWriteItem::builder()
        .put(put.build().map_err(build_error)?)
        .build())
}

fn conflict(message: String) -> Error {
    Error::Conflict { message }
}

impl DynamoStore {
    /// Where deployment `id` lives, from the cache or its id item.
    async fn locate(&self, id: &str) -> Result<Option<(DeploymentKey, u64)>> {
        if let Some(hit) = self.cache.deployment_id(id) {
            return Ok(Some(hit));
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.deployments)
            .set_key(Some(item_key(id_pk(id), "ID")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let key = DeploymentKey {
            team: item.str_attr("k_team")?.to_string(),
            environment: item.str_attr("k_environment")?.to_string(),
            name: item.str_attr("k_name")?.to_string(),
        };
        let revision = item.u64_attr("revision")?;
        self.cache.put_deployment_id(id, key.clone(), revision);
        Ok(Some((key, revision)))
    }

    async fn idempotent_answer(&self, key: &str, hash: &str) -> Result<Option<CreateOutcome>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.deployments)
            .set_key(Some(item_key(format!("I#{key}"), "I")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        if item.str_attr("hash")? != hash {
            return Err(conflict(format!(
                "idempotency key {key:?} was used with another request"
            )));
        }
        let id = item.str_attr("id")?;
        let existing = self.get_deployment(id).await?.ok_or_else(|| {
            Error::internal(format!(
                "idempotency key {key:?} names missing deployment {id}"
            ))
        })?;
        Ok(Some(CreateOutcome::Existing(Box::new(existing))))
    }

    async fn deployment_teams(&self) -> Result<Vec<String>> {
        let items = self
            .query_all(|start| {
                self.client
                    .query()
                    .table_name(&self.tables.meta)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s(TEAMS_PK))
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
            })
            .await?;
        items
            .iter()
            .map(|i| i.str_attr("sk").map(str::to_string))
            .collect()
    }

    async fn query_all(
        &self,
        build: impl Fn(Option<Item>) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = build(start)
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            items.extend(out.items().iter().cloned());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

#[async_trait]
impl DeploymentStore for DynamoStore {
    async fn create_deployment_within(
        &self,
        d: &Deployment,
        content: &RevisionContent,
        idempotency: Option<(&str, &str)>,
        quotas: &[Quota],
    ) -> Result<CreateOutcome> {
        if let Some((key, hash)) = idempotency {
            if let Some(answer) = self.idempotent_answer(key, hash).await? {
                return Ok(answer);
            }
        }
        self.client
            .put_item()
            .table_name(&self.tables.meta)
            .item("pk", s(TEAMS_PK))
            .item("sk", s(&d.team))
            .send()
            .await
            .map_err(|e| unavailable("PutItem", e))?;
        let table = &self.tables.deployments;
        let not_exists = Some("attribute_not_exists(pk)");
        let mut id_item = item_key(id_pk(&d.id), "ID");
        id_item.insert("k_team".into(), s(&d.team));
        id_item.insert("k_environment".into(), s(&d.environment));
        id_item.insert("k_name".into(), s(&d.name));
        id_item.insert("revision".into(), n(d.revision));
        let mut content_item = item_key(id_pk(&d.id), "CONTENT");
        content_item.insert("body".into(), encode_body("revision content", content)?);
        let mut own = vec![
            put_item(table, revision_item(d)?, not_exists)?,
            put_item(table, id_item, not_exists)?,
            put_item(table, content_item, not_exists)?,
        ];
        if let Some((key, hash)) = idempotency {
            let mut idem = item_key(format!("I#{key}"), "I");
            idem.insert("hash".into(), s(hash));
            idem.insert("id".into(), s(&d.id));
            own.push(put_item(table, idem, not_exists)?);
        }
        for round in 0..MAX_WRITE_ROUNDS {
            // The quota items are read again each round: the head and the
            // counters may have moved.
            let quota = self.quota_write(d, quotas).await?;
            let mut items = own.clone();
            if let Some(q) = &quota {
                items.extend(q.items.iter().cloned());
            }
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .client_request_token(request_token())
                .send()
                .await;
            let codes = match sent {
                Ok(_) => {
                    self.cache.put_deployment_id(&d.id, d.key(), d.revision);
                    return Ok(CreateOutcome::Created);
                }
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                        cancel_codes(c.cancellation_reasons())
                            .into_iter()
                            .map(str::to_string)
                            .collect::<Vec<_>>()
                    }
                    _ => return Err(unavailable("TransactWriteItems", e)),
                },
            };
            let failed = |i: usize| codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed");
            if let Some((key, hash)) = idempotency.filter(|_| failed(3)) {
                if let Some(answer) = self.idempotent_answer(key, hash).await? {
                    return Ok(answer);
                }
            }
            if failed(0) || failed(1) || failed(2) {
                return Err(conflict(format!(
                    "{} revision {} already exists",
                    d.key(),
                    d.revision
                )));
            }
            if let Some(q) = &quota {
                for i in (0..q.items.len()).filter(|i| q.is_counter(*i)) {
                    if failed(own.len() + i) {
                        if let Some(refusal) = self.quota_refusal(d, q, i).await? {
                            return Err(refusal);
                        }
                    }
                }
            }
            backoff(round).await;
        }
        Err(contention("create deployment"))
    }

    async fn update_deployment(&self, d: &Deployment, expected: u64) -> Result<()> {
        let Some((key, revision)) = self.locate(&d.id).await? else {
            return Err(Error::DeploymentNotFound { id: d.id.clone() });
        };
        // The stored identity wins: an update never moves a revision.
        let stored = Deployment {
            team: key.team,
            environment: key.environment,
            name: key.name,
            revision,
            generation: expected + 1,
            ..d.clone()
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.deployments)
            .set_item(Some(revision_item(&stored)?))
            .condition_expression("gen = :expected")
            .expression_attribute_values(":expected", n(expected))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                // Also what a writer sees when the SDK retried a put whose
                // first attempt committed but whose answer was lost: it
                // cannot be told apart from a stale writer, so the caller
                // re-reads (and finds its own state) as after any conflict.
                Err(conflict(format!(
                    "deployment {} changed concurrently (generation ≠ {expected})",
                    d.id
                )))
            }
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    async fn save_revision_content(&self, id: &str, content: &RevisionContent) -> Result<()> {
        if self.locate(id).await?.is_none() {
            return Err(Error::DeploymentNotFound { id: id.into() });
        }
        self.client
            .put_item()
            .table_name(&self.tables.deployments)
            .set_item(Some(item_key(id_pk(id), "CONTENT")))
            .item("body", encode_body("revision content", content)?)
            .send()
            .await
            .map_err(|e| unavailable("PutItem", e))?;
        Ok(())
    }

    async fn get_deployment(&self, id: &str) -> Result<Option<Deployment>> {
        let Some((key, revision)) = self.locate(id).await? else {
            return Ok(None);
        };
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.deployments)
            .set_key(Some(item_key(deployment_pk(&key), &revision_sk(revision))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        out.item.as_ref().map(deployment_from_item).transpose()
    }

    async fn revision_content(&self, id: &str) -> Result<Option<RevisionContent>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.deployments)
            .set_key(Some(item_key(id_pk(id), "CONTENT")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        out.item
            .map(|item| decode_body("revision content", item.attr("body")?))
            .transpose()
    }

    /// Per team, the `by_team` index newest first (eventually consistent,
    /// like every GSI read); the other filters apply in Rust.
    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>> {
        let teams = match &filter.team {
            Some(t) => vec![t.clone()],
            None => self.deployment_teams().await?,
        };
        let mut out = Vec::new();
        for team in teams {
            let items = self
                .query_all(|start| {
                    self.client
                        .query()
                        .table_name(&self.tables.deployments)
                        .index_name(BY_TEAM_INDEX)
                        .key_condition_expression("team = :t")
                        .expression_attribute_values(":t", s(&team))
                        .scan_index_forward(false)
                        .set_exclusive_start_key(start)
                })
                .await?;
            for item in &items {
                let d = deployment_from_item(item)?;
                if filter.matches(&d) {
                    out.push(d);
                }
            }
        }
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.revision.cmp(&a.revision))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    async fn revisions(&self, key: &DeploymentKey) -> Result<Vec<Deployment>> {
        let items = self
            .query_all(|start| {
                self.client
                    .query()
                    .table_name(&self.tables.deployments)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :r)")
                    .expression_attribute_values(":pk", s(deployment_pk(key)))
                    .expression_attribute_values(":r", s("R#"))
                    .consistent_read(true)
                    .set_exclusive_start_key(start)
            })
            .await?;
        items.iter().map(deployment_from_item).collect()
    }

    async fn claim_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>> {
        self.claim_lease_item(id, owner, now_ms, ttl_ms).await
    }

    async fn renew_lease(&self, lease: &Lease, now_ms: i64, ttl_ms: i64) -> Result<Lease> {
        self.renew_lease_item(lease, now_ms, ttl_ms).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.release_lease_item(lease).await
    }

    async fn leases(&self) -> Result<Vec<Lease>> {
        self.lease_items().await
    }
}
