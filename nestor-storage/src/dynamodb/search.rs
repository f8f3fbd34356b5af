//! Search over the latest versions, from a per-replica snapshot kept
//! current by tailing the event log.
//!
//! Ranking needs every latest version that passes the filter, which is the
//! whole `by_name` index: too much to read per query. Each store handle
//! keeps a snapshot of it (name → latest version) and, before answering,
//! reads the event counter (one small consistent read). New `resource.*`
//! events name what changed; those names are re-read from their name items
//! with strongly consistent reads, so a replica sees another's publish or
//! yank as soon as its event is appended (the catalog service appends one
//! right after every change). Its own writes mark their names for re-read
//! directly, so a write made without an event is still seen by the replica
//! that made it.
//!
//! Sequences come from a counter, so an event can be handed out and not
//! yet written while a later one is: the snapshot only advances past a
//! missing sequence after [`GAP_GRACE`], long enough for an in-flight
//! append to land, short enough that an append that died leaves no lasting
//! hole. As a backstop the snapshot is rebuilt from the index every
//! [`REBUILD_AFTER`], or when more than [`MAX_TAIL`] events arrived since
//! it was last brought up to date.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nestor_core::{
    rank_hits, search_score, CatalogSearch, EventLog, EventType, ListFilter, PublishedVersion,
    Result, SearchHit, Shared,
};

use super::client::unavailable;
use super::codec::s;
use super::tables::BY_NAME_INDEX;
use super::DynamoStore;

/// How long a missing sequence may hold the snapshot back.
const GAP_GRACE: Duration = Duration::from_secs(5);
/// The snapshot is rebuilt from scratch this often.
const REBUILD_AFTER: Duration = Duration::from_secs(60);
/// More new events than this since the last refresh → rebuild instead.
const MAX_TAIL: u64 = 1000;
/// After a rebuild, events this far back are re-applied with consistent
/// reads, covering writes the (eventually consistent) index had not shown.
const REPLAY_AFTER_REBUILD: u64 = 64;

#[derive(Default)]
pub(crate) struct SearchCache {
    /// Serialises refreshes, so two never apply reads out of order.
    refresh: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    snapshot: Option<Snapshot>,
    /// Names this handle wrote since the last refresh.
    dirty: BTreeSet<String>,
}

struct Snapshot {
    /// Every event up to this sequence has been applied.
    seq: u64,
    by_name: BTreeMap<String, Shared<PublishedVersion>>,
    built_at: Instant,
    /// The first missing sequence and when it was first seen missing.
    gap: Option<(u64, Instant)>,
}

impl SearchCache {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DynamoStore {
    /// Marks a name this handle changed, for the next search to re-read.
    pub(super) fn snapshot_note(&self, name: &str) {
        self.search.state().dirty.insert(name.to_string());
    }

    async fn refresh_snapshot(&self) -> Result<()> {
        let _serial = self.search.refresh.lock().await;
        let last = self.last_sequence().await?;
        let stale = match &self.search.state().snapshot {
            None => true,
            // A counter below the snapshot means the tables were recreated.
            Some(snap) => {
                snap.built_at.elapsed() > REBUILD_AFTER
                    || last.saturating_sub(snap.seq) > MAX_TAIL
                    || last < snap.seq
            }
        };
        if stale {
            let by_name = self.read_whole_index().await?;
            let mut state = self.search.state();
            state.dirty.clear();
            state.snapshot = Some(Snapshot {
                seq: last.saturating_sub(REPLAY_AFTER_REBUILD),
                by_name,
                built_at: Instant::now(),
                gap: None,
            });
        }
        let (seq, gap, mut names) = {
            let mut state = self.search.state();
            let dirty = std::mem::take(&mut state.dirty);
            let Some(snap) = state.snapshot.as_ref() else {
                return Ok(());
            };
            (snap.seq, snap.gap, dirty)
        };
        let mut settled = seq;
        let mut new_gap = None;
        if last > seq {
            let events = self.read_after(seq, (last - seq) as usize).await?;
            let expired = |missing: u64| {
                gap.is_some_and(|(at, since)| at == missing && since.elapsed() > GAP_GRACE)
            };
            let mut holding = false;
            for event in &events {
                if matches!(
                    event.event_type,
                    EventType::ResourceCreated
                        | EventType::ResourceUpdated
                        | EventType::ResourceYanked
                        | EventType::ResourceDeprecated
                ) {
                    let name = event.subject.split(':').next().unwrap_or_default();
                    names.insert(name.to_string());
                }
                if holding {
                    continue;
                }
                if event.id == settled + 1 || expired(settled + 1) {
                    settled = event.id;
                } else {
                    holding = true;
                }
            }
            if !holding && settled < last && expired(settled + 1) {
                settled = last;
            }
            if settled < last {
                let since = gap
                    .filter(|(at, _)| *at == settled + 1)
                    .map_or_else(Instant::now, |(_, t)| t);
                new_gap = Some((settled + 1, since));
            }
        }
        let mut updates = Vec::new();
        for name in &names {
            let latest = match self.name_item_for_search(name).await? {
                Some(item) => self.latest_from_name_item(&item)?,
                None => None,
            };
            updates.push((name.clone(), latest));
        }
        let mut state = self.search.state();
        let Some(snap) = state.snapshot.as_mut() else {
            return Ok(());
        };
        for (name, latest) in updates {
            match latest {
                Some(v) => snap.by_name.insert(name, v),
                None => snap.by_name.remove(&name),
            };
        }
        snap.seq = settled;
        snap.gap = new_gap;
        Ok(())
    }

    async fn name_item_for_search(&self, name: &str) -> Result<Option<super::codec::Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.catalog)
            .key("pk", s(name))
            .key("sk", s("NAME"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(out.item)
    }

    async fn read_whole_index(&self) -> Result<BTreeMap<String, Shared<PublishedVersion>>> {
        let mut by_name = BTreeMap::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.catalog)
                .index_name(BY_NAME_INDEX)
                .key_condition_expression("list_pk = :l")
                .expression_attribute_values(":l", s("LATEST"))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            for item in out.items() {
                if let Some(latest) = self.latest_from_name_item(item)? {
                    by_name.insert(latest.name().to_string(), latest);
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(by_name);
            }
        }
    }
}

#[async_trait]
impl CatalogSearch for DynamoStore {
    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        self.refresh_snapshot().await?;
        let state = self.search.state();
        let Some(snap) = state.snapshot.as_ref() else {
            return Ok(Vec::new());
        };
        let mut hits: Vec<SearchHit> = snap
            .by_name
            .values()
            .filter(|v| filter.matches(v))
            .filter_map(|v| {
                let score = search_score(&v.definition, query);
                (score > 0).then(|| SearchHit {
                    score,
                    version: v.clone(),
                })
            })
            .collect();
        rank_hits(&mut hits);
        hits.truncate(limit);
        Ok(hits)
    }
}
