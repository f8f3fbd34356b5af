//! The catalog: `CatalogReader` and `CatalogWriter` on the catalog table.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use nestor_core::{
    select_latest, Announcement, CatalogReader, CatalogWriter, Error, ListFilter, Page,
    PageRequest, PublishOutcome, PublishedVersion, Result, Shared, VersionSummary, VersionWrite,
};
use semver::Version;

use super::client::{
    backoff, cancel_codes, contention, request_token, unavailable, MAX_WRITE_ROUNDS,
};
use super::codec::{decode_body, encode_body, n, s, version_key, Item, ItemExt};
use super::events::event_item;
use super::tables::{build_error, BY_NAME_INDEX};
use super::DynamoStore;

/// Sort key of the per-name item.
const NAME_SK: &str = "NAME";
/// `list_pk` of every name item that has a latest version (the sparse GSI's
/// one partition).
const LIST_PK: &str = "LATEST";
/// Items a list query evaluates per round trip.
const LIST_BATCH: i32 = 100;

fn head_sk(v: &Version) -> String {
    format!("V#{}", version_key(v))
}

fn body_sk(v: &Version) -> String {
    format!("B#{}", version_key(v))
}

fn key(name: &str, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(name)), ("sk".to_string(), s(sk))])
}

/// A version's head item: the small, mutable part.
struct Head {
    summary: VersionSummary,
    hash: String,
}

impl Head {
    fn from_item(item: &Item) -> Result<Head> {
        let version: Version = item
            .str_attr("version")?
            .parse()
            .map_err(|e| Error::internal(format!("stored version is not semver: {e}")))?;
        Ok(Head {
            summary: VersionSummary {
                version,
                published_at: item.i64_or_zero("published_at"),
                yanked: item.bool_attr("yanked"),
                deprecated: item.bool_attr("deprecated"),
                git_commit: item.opt_str("git_commit").map(str::to_string),
            },
            hash: item.str_attr("hash")?.to_string(),
        })
    }
}

/// What the name item said when it was read: the optimistic-concurrency
/// revision every catalog write of the name must bump.
struct NameState {
    /// `None` when the name has no item yet.
    rev: Option<u64>,
    latest: Option<Version>,
}

impl NameState {
    fn from_item(item: Option<&Item>) -> Result<NameState> {
        let Some(item) = item else {
            return Ok(NameState {
                rev: None,
                latest: None,
            });
        };
        let latest = match item.opt_str("latest") {
            Some(v) => Some(
                v.parse()
                    .map_err(|e| Error::internal(format!("stored latest is not semver: {e}")))?,
            ),
            None => None,
        };
        Ok(NameState {
            rev: Some(item.u64_attr("rev")?),
            latest,
        })
    }
}

impl DynamoStore {
    async fn name_item(&self, name: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.catalog)
            .set_key(Some(key(name, NAME_SK.into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(out.item)
    }

    /// Every head of a name, strongly consistent, newest first by semver.
    async fn heads(&self, name: &str) -> Result<Vec<Head>> {
        let mut heads = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.catalog)
                .key_condition_expression("pk = :pk AND begins_with(sk, :v)")
                .expression_attribute_values(":pk", s(name))
                .expression_attribute_values(":v", s("V#"))
                .scan_index_forward(false)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            for item in out.items() {
                heads.push(Head::from_item(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        // The sort key already orders by precedence; this settles ties
        // between build metadata exactly as `semver` does.
        heads.sort_by(|a, b| b.summary.version.cmp(&a.summary.version));
        Ok(heads)
    }

    /// The immutable content of name@version (yanked unset), from the cache
    /// or the body item.
    pub(super) async fn content(
        &self,
        name: &str,
        version: &Version,
    ) -> Result<Option<Shared<PublishedVersion>>> {
        if let Some(hit) = self.cache.content(name, version, None) {
            return Ok(Some(hit));
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.catalog)
            .set_key(Some(key(name, body_sk(version))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let mut content: PublishedVersion = decode_body("definition", item.attr("body")?)?;
        content.yanked = false;
        let content = Shared::new(content);
        self.cache.put_content(content.clone());
        Ok(Some(content))
    }

    /// The latest version carried by a name item (read from the table or
    /// the GSI), decoding its body only when the cache lacks it.
    pub(super) fn latest_from_name_item(
        &self,
        item: &Item,
    ) -> Result<Option<Shared<PublishedVersion>>> {
        let (Some(version), Some(hash)) = (item.opt_str("latest"), item.opt_str("lhash")) else {
            return Ok(None);
        };
        let name = item.str_attr("pk")?;
        let version: Version = version
            .parse()
            .map_err(|e| Error::internal(format!("stored latest is not semver: {e}")))?;
        if let Some(hit) = self.cache.content(name, &version, Some(hash)) {
            return Ok(Some(hit));
        }
        let mut latest: PublishedVersion = decode_body("definition", item.attr("body")?)?;
        latest.yanked = false;
        let latest = Shared::new(latest);
        self.cache.put_content(latest.clone());
        Ok(Some(latest))
    }

    /// The name-item write of a transaction: the new latest under `rev + 1`,
    /// conditional on `rev` being what was read, so two writers of one name
    /// never both commit a latest computed from the same history. Also says
    /// whether the latest version changed.
    async fn name_write(
        &self,
        name: &str,
        state: &NameState,
        summaries: &[VersionSummary],
        candidate: Option<&PublishedVersion>,
    ) -> Result<(TransactWriteItem, bool)> {
        let next_rev = state.rev.map_or(1, |r| r + 1);
        let new_latest = select_latest(summaries);
        let condition = match state.rev {
            Some(rev) => ("rev = :rev", n(rev)),
            None => ("attribute_not_exists(pk)", n(0)),
        };
        if state.rev.is_some() && new_latest == state.latest {
            let update = Update::builder()
                .table_name(&self.tables.catalog)
                .set_key(Some(key(name, NAME_SK.into())))
                .update_expression("SET rev = :next")
                .condition_expression(condition.0)
                .expression_attribute_values(":rev", condition.1)
                .expression_attribute_values(":next", n(next_rev))
                .build()
                .map_err(build_error)?;
            return Ok((TransactWriteItem::builder().update(update).build(), false));
        }
        let mut item = key(name, NAME_SK.into());
        item.insert("rev".into(), n(next_rev));
        let latest = match &new_latest {
            None => None,
            Some(v) => match candidate.filter(|c| c.version() == v) {
                Some(c) => Some(Shared::new(PublishedVersion {
                    yanked: false,
                    ..c.clone()
                })),
                None => Some(self.content(name, v).await?.ok_or_else(|| {
                    Error::internal(format!("{name}@{v} has a head but no body"))
                })?),
            },
        };
        if let Some(latest) = &latest {
            let m = &latest.definition.metadata;
            item.insert("list_pk".into(), s(LIST_PK));
            item.insert("latest".into(), s(latest.version().to_string()));
            item.insert("lhash".into(), s(&latest.content_hash));
            item.insert("provider".into(), s(&m.provider));
            item.insert("category".into(), s(&m.category));
            item.insert("resource_type".into(), s(&m.resource_type));
            item.insert("body".into(), encode_body("definition", latest.as_ref())?);
        }
        let mut put = Put::builder()
            .table_name(&self.tables.catalog)
            .set_item(Some(item))
            .condition_expression(condition.0);
        if state.rev.is_some() {
            put = put.expression_attribute_values(":rev", condition.1);
        }
        let put = put.build().map_err(build_error)?;
        Ok((TransactWriteItem::builder().put(put).build(), true))
    }

    /// Runs one catalog transaction; `Ok(Err(codes))` when it was cancelled
    /// (a condition failed or another transaction interfered), with the
    /// per-item cancellation codes.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<std::result::Result<(), Vec<String>>> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(request_token())
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    Ok(Err(cancel_codes(c.cancellation_reasons())
                        .into_iter()
                        .map(str::to_string)
                        .collect()))
                }
                _ => Err(unavailable("TransactWriteItems", e)),
            },
        }
    }

    /// Inserts `version` unless it exists, in one transaction with the
    /// events of `announcement` when given. The transaction is conditional
    /// on the name item read in the same round, so "first of its name" (no
    /// version read) holds when it commits: of concurrent first publishes
    /// one commits as the first, the others retry and see it.
    async fn insert_one(
        &self,
        version: PublishedVersion,
        announcement: Option<Announcement>,
    ) -> Result<PublishOutcome> {
        let name = version.name().to_string();
        let body = encode_body(
            "definition",
            &PublishedVersion {
                yanked: false,
                ..version.clone()
            },
        )?;
        let summary = version.summary();
        for round in 0..MAX_WRITE_ROUNDS {
            let state = NameState::from_item(self.name_item(&name).await?.as_ref())?;
            let heads = self.heads(&name).await?;
            if let Some(existing) = heads
                .iter()
                .find(|h| &h.summary.version == version.version())
            {
                return same_or_immutable(&existing.hash, &version);
            }
            let mut summaries: Vec<VersionSummary> = heads.into_iter().map(|h| h.summary).collect();
            summaries.push(summary.clone());
            let (name_write, change) = self
                .name_write(&name, &state, &summaries, Some(&version))
                .await?;

            let mut head = key(&name, head_sk(version.version()));
            head.insert("version".into(), s(version.version().to_string()));
            head.insert("hash".into(), s(&version.content_hash));
            head.insert("published_at".into(), n(version.published_at));
            head.insert("yanked".into(), AttributeValue::Bool(version.yanked));
            head.insert(
                "deprecated".into(),
                AttributeValue::Bool(summary.deprecated),
            );
            if let Some(commit) = &summary.git_commit {
                head.insert("git_commit".into(), s(commit));
            }
            let mut body_item = key(&name, body_sk(version.version()));
            body_item.insert("body".into(), body.clone());
            let put = |item| {
                Put::builder()
                    .table_name(&self.tables.catalog)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map(|p| TransactWriteItem::builder().put(p).build())
                    .map_err(build_error)
            };
            let mut items = vec![put(head)?, put(body_item)?, name_write];
            if let Some(announcement) = &announcement {
                // Only the candidate: no version was read for the name.
                let first_of_name = summaries.len() == 1;
                items.extend(self.event_puts(announcement.clone(), first_of_name).await?);
            }
            match self.transact(items).await? {
                Ok(()) => {
                    self.cache.put_content(Shared::new(PublishedVersion {
                        yanked: false,
                        ..version.clone()
                    }));
                    self.note_latest(&name, change);
                    return Ok(PublishOutcome::Created);
                }
                // The head exists now: the next round compares hashes.
                Err(codes) if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") => {
                    continue
                }
                Err(_) => backoff(round).await,
            }
        }
        Err(contention("publish"))
    }

    /// The event puts of a version's transaction, under sequences handed
    /// out now (a cancelled transaction leaves them as a gap).
    async fn event_puts(
        &self,
        announcement: Announcement,
        first_of_name: bool,
    ) -> Result<Vec<TransactWriteItem>> {
        let events = announcement.events(first_of_name);
        let last = self.allocate_sequences(events.len() as u64).await?;
        let first_seq = last + 1 - events.len() as u64;
        events
            .into_iter()
            .zip(first_seq..)
            .map(|(e, seq)| {
                let data = encode_body("event data", &e.data)?;
                let item = event_item(seq, e.event_type, &e.source, &e.subject, e.timestamp, data);
                Put::builder()
                    .table_name(&self.tables.events)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(seq)")
                    .build()
                    .map(|p| TransactWriteItem::builder().put(p).build())
                    .map_err(build_error)
            })
            .collect()
    }

    /// Tells the search snapshot that this handle changed a name's latest.
    fn note_latest(&self, name: &str, latest_changed: bool) {
        if latest_changed {
            self.snapshot_note(name);
        }
    }
}

fn same_or_immutable(stored_hash: &str, version: &PublishedVersion) -> Result<PublishOutcome> {
    if stored_hash == version.content_hash {
        Ok(PublishOutcome::Unchanged)
    } else {
        Err(Error::VersionImmutable {
            name: version.name().to_string(),
            version: version.version().to_string(),
        })
    }
}

#[async_trait]
impl CatalogReader for DynamoStore {
    async fn get_version(
        &self,
        name: &str,
        version: &Version,
    ) -> Result<Option<Shared<PublishedVersion>>> {
        let head = self
            .client
            .get_item()
            .table_name(&self.tables.catalog)
            .set_key(Some(key(name, head_sk(version))))
            .consistent_read(true)
            .send();
        // The head (mutable: yanked) always comes from DynamoDB; the body
        // from the cache when it holds it, else fetched alongside the head.
        let (head, content) = match self.cache.content(name, version, None) {
            Some(hit) => (head.await, Some(hit)),
            None => {
                let (head, content) = tokio::join!(head, self.content(name, version));
                (head, content?)
            }
        };
        let Some(item) = head.map_err(|e| unavailable("GetItem", e))?.item else {
            return Ok(None);
        };
        let head = Head::from_item(&item)?;
        let content = content
            .ok_or_else(|| Error::internal(format!("{name}@{version} has a head but no body")))?;
        if head.summary.yanked == content.yanked {
            return Ok(Some(content));
        }
        Ok(Some(Shared::new(PublishedVersion {
            yanked: head.summary.yanked,
            ..PublishedVersion::clone(&content)
        })))
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>> {
        Ok(self
            .heads(name)
            .await?
            .into_iter()
            .map(|h| h.summary)
            .collect())
    }

    /// One strongly consistent read of the name item, which every write
    /// keeps current in the same transaction.
    async fn latest(&self, name: &str) -> Result<Option<Shared<PublishedVersion>>> {
        match self.name_item(name).await? {
            Some(item) => self.latest_from_name_item(&item),
            None => Ok(None),
        }
    }

    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> Result<Page<Shared<PublishedVersion>>> {
        let limit = page.limit.clamp(1, PageRequest::MAX_LIMIT);
        let mut items: Vec<Shared<PublishedVersion>> = Vec::new();
        let mut start = None;
        let (filter_expr, names, values) = list_filter_expression(filter);
        // Unfiltered, every item read is listed: read exactly one page (and
        // one more item, to know whether a next page exists). Filtered,
        // `Limit` counts items evaluated, so read in larger batches.
        let page_plus_one = limit as i32 + 1;
        let batch = if *filter == ListFilter::default() {
            page_plus_one
        } else {
            LIST_BATCH.max(page_plus_one)
        };
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.catalog)
                .index_name(BY_NAME_INDEX)
                .limit(batch)
                .set_exclusive_start_key(start.take())
                .expression_attribute_values(":l", s(LIST_PK));
            query = match &page.cursor {
                Some(cursor) => query
                    .key_condition_expression("list_pk = :l AND pk > :cursor")
                    .expression_attribute_values(":cursor", s(cursor)),
                None => query.key_condition_expression("list_pk = :l"),
            };
            if let Some(expr) = &filter_expr {
                query = query.filter_expression(expr);
                for (k, v) in &names {
                    query = query.expression_attribute_names(*k, *v);
                }
                for (k, v) in &values {
                    query = query.expression_attribute_values(*k, s(*v));
                }
            }
            let out = query.send().await.map_err(|e| unavailable("Query", e))?;
            for item in out.items() {
                if let Some(latest) = self.latest_from_name_item(item)? {
                    if filter.matches(&latest) {
                        items.push(latest);
                    }
                }
            }
            start = out.last_evaluated_key;
            if items.len() > limit || start.is_none() {
                break;
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(|v| v.name().to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

/// The exact-match filters DynamoDB can apply server-side; the rest (engine,
/// labels, `q`) are applied in Rust by `ListFilter::matches`.
type FilterParts<'a> = (
    Option<String>,
    Vec<(&'static str, &'static str)>,
    Vec<(&'static str, &'a str)>,
);

fn list_filter_expression(filter: &ListFilter) -> FilterParts<'_> {
    let mut clauses = Vec::new();
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (field, placeholder, value, want) in [
        ("provider", "#fp", ":fp", &filter.provider),
        ("category", "#fc", ":fc", &filter.category),
        ("resource_type", "#ft", ":ft", &filter.resource_type),
    ] {
        if let Some(want) = want {
            clauses.push(format!("{placeholder} = {value}"));
            names.push((placeholder, field));
            values.push((value, want.as_str()));
        }
    }
    let expr = (!clauses.is_empty()).then(|| clauses.join(" AND "));
    (expr, names, values)
}

#[async_trait]
impl CatalogWriter for DynamoStore {
    async fn insert_version(&self, version: PublishedVersion) -> Result<PublishOutcome> {
        self.insert_one(version, None).await
    }

    /// Each version in a transaction of its own (DynamoDB transactions are
    /// bounded), with its events inside it.
    async fn insert_versions(
        &self,
        writes: Vec<VersionWrite>,
    ) -> Result<Vec<Result<PublishOutcome>>> {
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(
                match self.insert_one(w.version, Some(w.announcement)).await {
                    Err(e @ (Error::StorageUnavailable { .. } | Error::Internal { .. })) => {
                        return Err(e)
                    }
                    other => other,
                },
            );
        }
        Ok(out)
    }

    async fn set_yanked(&self, name: &str, version: &Version, yanked: bool) -> Result<bool> {
        for round in 0..MAX_WRITE_ROUNDS {
            let state = NameState::from_item(self.name_item(name).await?.as_ref())?;
            let mut summaries: Vec<VersionSummary> = self
                .heads(name)
                .await?
                .into_iter()
                .map(|h| h.summary)
                .collect();
            let Some(target) = summaries.iter_mut().find(|s| &s.version == version) else {
                return Err(Error::VersionNotFound {
                    name: name.into(),
                    version: version.to_string(),
                });
            };
            if target.yanked == yanked {
                return Ok(false);
            }
            target.yanked = yanked;
            let (name_write, change) = self.name_write(name, &state, &summaries, None).await?;
            let head = Update::builder()
                .table_name(&self.tables.catalog)
                .set_key(Some(key(name, head_sk(version))))
                .update_expression("SET yanked = :y")
                .condition_expression("attribute_exists(pk) AND yanked = :was")
                .expression_attribute_values(":y", AttributeValue::Bool(yanked))
                .expression_attribute_values(":was", AttributeValue::Bool(!yanked))
                .build()
                .map_err(build_error)?;
            let head = TransactWriteItem::builder().update(head).build();
            match self.transact(vec![head, name_write]).await? {
                Ok(()) => {
                    self.note_latest(name, change);
                    return Ok(true);
                }
                Err(_) => backoff(round).await,
            }
        }
        Err(contention("yank"))
    }
}
