//! The in-memory store: the reference implementation of the storage traits,
//! used by tests and by programs that embed Nestor without persistence.
//! Its audit log is in `audit`.

mod audit;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use nestor_core::{
    check_quotas, lease_lost, search_score, CatalogReader, CatalogSearch, CatalogWriter,
    CompositionStore, CreateOutcome, Deployment, DeploymentFilter, DeploymentKey, DeploymentStore,
    Error, Event, EventLog, Lease, ListFilter, NewEvent, Page, PageRequest, PublishOutcome,
    PublishedComposition, PublishedVersion, Quota, Result, RevisionContent, SearchHit,
    SerializedEvent, Shared, SourceState, SyncReport, SyncStore, Timestamp, VersionSummary,
    VersionWrite,
};
use semver::Version;

/// A store that keeps everything in memory; cloning it is not sharing it
/// (wrap it in an `Arc`).
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// name → version → record; BTreeMaps give name order for listing and
    /// semver order for history without sorting on read. Reads hand out
    /// the record itself; a yank replaces it.
    versions: BTreeMap<String, BTreeMap<Version, Shared<PublishedVersion>>>,
    events: Vec<Logged>,
    /// Survives pruning so sequences never repeat.
    last_sequence: u64,
    source_states: HashMap<String, SourceState>,
    reports: BTreeMap<String, SyncReport>,
    /// (team, name) → version → composition.
    compositions: BTreeMap<(String, String), BTreeMap<Version, PublishedComposition>>,
    deployments: HashMap<String, (Deployment, RevisionContent)>,
    /// Which id holds each revision of a deployment.
    revisions: HashMap<DeploymentKey, BTreeMap<u64, String>>,
    /// Idempotency key → (request hash, deployment id).
    idempotency: HashMap<String, (String, String)>,
    /// Deployment id → its lease.
    leases: BTreeMap<String, Lease>,
    /// The audit trail, oldest first.
    audit: Vec<nestor_core::AuditRecord>,
    /// Ids given so far (survives pruning so ids never repeat).
    audit_count: u64,
}

/// An event as the log keeps it: its data as JSON text, which a batch
/// has serialised already, parsed only when the event is read (as SQLite
/// does: a cold sync appends thousands of events nobody may read, and
/// parsing each one's data back was most of its batch's time).
#[derive(Clone)]
struct Logged {
    id: u64,
    event: SerializedEvent,
}

impl Logged {
    /// The event as readers get it.
    fn into_event(self) -> Result<Event> {
        Ok(Event::from_new(self.id, self.event.into_new()?))
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every
        // mutation is a single insert), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Inserts `version` unless it exists (immutability, docs/src/reference/versioning.md).
    fn insert(&mut self, version: PublishedVersion) -> Result<PublishOutcome> {
        let slot = self.versions.entry(version.name().to_string()).or_default();
        match slot.get(version.version()) {
            Some(existing) if existing.content_hash == version.content_hash => {
                Ok(PublishOutcome::Unchanged)
            }
            Some(_) => Err(Error::VersionImmutable {
                name: version.name().to_string(),
                version: version.version().to_string(),
            }),
            None => {
                slot.insert(version.version().clone(), Shared::new(version));
                Ok(PublishOutcome::Created)
            }
        }
    }

    fn latest_of(&self, name: &str) -> Option<&Shared<PublishedVersion>> {
        let versions = self.versions.get(name)?;
        let summaries: Vec<VersionSummary> = versions.values().map(|v| v.summary()).collect();
        nestor_core::select_latest(&summaries).and_then(|v| versions.get(&v))
    }
}

#[async_trait]
impl CatalogReader for MemoryStore {
    async fn get_version(
        &self,
        name: &str,
        version: &Version,
    ) -> Result<Option<Shared<PublishedVersion>>> {
        Ok(self
            .lock()
            .versions
            .get(name)
            .and_then(|v| v.get(version))
            .cloned())
    }

    async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>> {
        let inner = self.lock();
        Ok(inner
            .versions
            .get(name)
            .map(|v| v.values().rev().map(|v| v.summary()).collect())
            .unwrap_or_default())
    }

    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> Result<Page<Shared<PublishedVersion>>> {
        let inner = self.lock();
        let start = match &page.cursor {
            Some(c) => std::ops::Bound::Excluded(c.clone()),
            None => std::ops::Bound::Unbounded,
        };
        let mut items = Vec::new();
        let mut more = false;
        for name in inner
            .versions
            .range::<String, _>((start, std::ops::Bound::Unbounded))
            .map(|(n, _)| n)
        {
            let Some(latest) = inner.latest_of(name) else {
                continue;
            };
            if !filter.matches(latest) {
                continue;
            }
            if items.len() == page.limit {
                more = true;
                break;
            }
            items.push(latest.clone());
        }
        let next_cursor = if more {
            items
                .last()
                .map(|v: &Shared<PublishedVersion>| v.name().to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

#[async_trait]
impl CatalogWriter for MemoryStore {
    async fn insert_version(&self, version: PublishedVersion) -> Result<PublishOutcome> {
        self.lock().insert(version)
    }

    /// Under one lock: each version and, when it is created, its events
    /// (their data kept as the text the caller serialised).
    async fn insert_versions(
        &self,
        writes: Vec<VersionWrite>,
    ) -> Result<Vec<Result<PublishOutcome>>> {
        let mut inner = self.lock();
        let mut out = Vec::with_capacity(writes.len());
        for write in writes {
            let first = inner
                .versions
                .get(write.version.name())
                .is_none_or(BTreeMap::is_empty);
            let outcome = inner.insert(write.version);
            if let Ok(PublishOutcome::Created) = outcome {
                for e in write.announcement.events(first) {
                    inner.last_sequence += 1;
                    let id = inner.last_sequence;
                    inner.events.push(Logged { id, event: e });
                }
            }
            out.push(outcome);
        }
        Ok(out)
    }

    async fn set_yanked(&self, name: &str, version: &Version, yanked: bool) -> Result<bool> {
        let mut inner = self.lock();
        let record = inner
            .versions
            .get_mut(name)
            .and_then(|v| v.get_mut(version))
            .ok_or_else(|| Error::VersionNotFound {
                name: name.into(),
                version: version.to_string(),
            })?;
        if record.yanked == yanked {
            return Ok(false);
        }
        *record = Shared::new(PublishedVersion {
            yanked,
            ..PublishedVersion::clone(record)
        });
        Ok(true)
    }
}

#[async_trait]
impl CatalogSearch for MemoryStore {
    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>> {
        let inner = self.lock();
        let mut hits: Vec<SearchHit> = inner
            .versions
            .keys()
            .filter_map(|name| inner.latest_of(name))
            .filter(|v| filter.matches(v))
            .filter_map(|v| {
                let score = search_score(&v.definition, query);
                (score > 0).then(|| SearchHit {
                    score,
                    version: v.clone(),
                })
            })
            .collect();
        nestor_core::rank_hits(&mut hits);
        hits.truncate(limit);
        Ok(hits)
    }
}

#[async_trait]
impl EventLog for MemoryStore {
    async fn append(&self, event: NewEvent) -> Result<Event> {
        let logged = SerializedEvent::new(
            event.event_type,
            event.source.clone(),
            event.subject.clone(),
            event.timestamp,
            &event.data,
        )
        .map_err(|e| Error::internal(format!("serialising an event's data: {e}")))?;
        let mut inner = self.lock();
        inner.last_sequence += 1;
        let id = inner.last_sequence;
        inner.events.push(Logged { id, event: logged });
        Ok(Event::from_new(id, event))
    }

    /// Keeps each event's data as the text given (parsed when read).
    async fn append_serialized(&self, events: Vec<SerializedEvent>) -> Result<Vec<u64>> {
        let mut inner = self.lock();
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            inner.last_sequence += 1;
            let id = inner.last_sequence;
            inner.events.push(Logged { id, event });
            ids.push(id);
        }
        Ok(ids)
    }

    /// Copies the events' text under the lock and parses it after.
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        let logged: Vec<Logged> = {
            let inner = self.lock();
            let start = inner.events.partition_point(|e| e.id <= after);
            inner.events[start..].iter().take(limit).cloned().collect()
        };
        logged.into_iter().map(Logged::into_event).collect()
    }

    async fn last_sequence(&self) -> Result<u64> {
        Ok(self.lock().last_sequence)
    }

    async fn prune_before(&self, before: Timestamp) -> Result<u64> {
        let mut inner = self.lock();
        let len = inner.events.len();
        inner.events.retain(|e| e.event.timestamp >= before);
        Ok((len - inner.events.len()) as u64)
    }
}

#[async_trait]
impl SyncStore for MemoryStore {
    async fn source_state(&self, source: &str) -> Result<Option<SourceState>> {
        Ok(self.lock().source_states.get(source).cloned())
    }

    async fn save_source_state(&self, state: &SourceState) -> Result<()> {
        self.lock()
            .source_states
            .insert(state.source.clone(), state.clone());
        Ok(())
    }

    async fn record_sync(&self, report: &SyncReport) -> Result<()> {
        self.lock()
            .reports
            .insert(report.source.clone(), report.clone());
        Ok(())
    }

    async fn last_syncs(&self) -> Result<Vec<SyncReport>> {
        Ok(self.lock().reports.values().cloned().collect())
    }
}

#[async_trait]
impl CompositionStore for MemoryStore {
    async fn insert_composition(&self, c: PublishedComposition) -> Result<PublishOutcome> {
        let mut inner = self.lock();
        let m = &c.composition.metadata;
        let slot = inner
            .compositions
            .entry((m.team.clone(), m.name.clone()))
            .or_default();
        match slot.get(&m.version) {
            Some(existing) if existing.content_hash == c.content_hash => {
                Ok(PublishOutcome::Unchanged)
            }
            Some(_) => Err(Error::VersionImmutable {
                name: format!("{}/{}", m.team, m.name),
                version: m.version.to_string(),
            }),
            None => {
                slot.insert(m.version.clone(), c);
                Ok(PublishOutcome::Created)
            }
        }
    }

    async fn get_composition(
        &self,
        team: &str,
        name: &str,
        version: &Version,
    ) -> Result<Option<PublishedComposition>> {
        let inner = self.lock();
        Ok(inner
            .compositions
            .get(&(team.to_string(), name.to_string()))
            .and_then(|v| v.get(version))
            .cloned())
    }

    async fn composition_versions(&self, team: &str, name: &str) -> Result<Vec<Version>> {
        let inner = self.lock();
        Ok(inner
            .compositions
            .get(&(team.to_string(), name.to_string()))
            .map(|v| v.keys().rev().cloned().collect())
            .unwrap_or_default())
    }

    async fn list_compositions(&self, team: Option<&str>) -> Result<Vec<PublishedComposition>> {
        let inner = self.lock();
        Ok(inner
            .compositions
            .iter()
            .filter(|((t, _), _)| team.is_none_or(|want| want == t))
            .filter_map(|(_, versions)| versions.values().next_back().cloned())
            .collect())
    }
}

#[async_trait]
impl DeploymentStore for MemoryStore {
    async fn create_deployment_within(
        &self,
        d: &Deployment,
        content: &RevisionContent,
        idempotency: Option<(&str, &str)>,
        quotas: &[Quota],
    ) -> Result<CreateOutcome> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some((key, hash)) = idempotency {
            if let Some((seen_hash, id)) = inner.idempotency.get(key) {
                return if seen_hash == hash {
                    let existing = inner.deployments.get(id).map(|(d, _)| d.clone());
                    existing
                        .map(|d| CreateOutcome::Existing(Box::new(d)))
                        .ok_or_else(|| Error::internal("idempotency key without deployment"))
                } else {
                    Err(Error::Conflict {
                        message: format!("idempotency key {key:?} was used with another request"),
                    })
                };
            }
        }
        let taken = inner
            .revisions
            .get(&d.key())
            .is_some_and(|r| r.contains_key(&d.revision));
        if taken || inner.deployments.contains_key(&d.id) {
            return Err(Error::Conflict {
                message: format!("{} revision {} already exists", d.key(), d.revision),
            });
        }
        // Under the lock: the check and the write are one step.
        let latest = inner
            .revisions
            .iter()
            .filter(|(key, _)| key.team == d.team)
            .filter_map(|(_, revisions)| revisions.values().next_back())
            .filter_map(|id| inner.deployments.get(id).map(|(d, _)| d));
        check_quotas(quotas, d, latest)?;
        let revisions = inner.revisions.entry(d.key()).or_default();
        revisions.insert(d.revision, d.id.clone());
        inner
            .deployments
            .insert(d.id.clone(), (d.clone(), content.clone()));
        if let Some((key, hash)) = idempotency {
            inner
                .idempotency
                .insert(key.to_string(), (hash.to_string(), d.id.clone()));
        }
        Ok(CreateOutcome::Created)
    }

    async fn update_deployment(&self, d: &Deployment, expected: u64) -> Result<()> {
        let mut inner = self.lock();
        let (stored, _) = inner
            .deployments
            .get_mut(&d.id)
            .ok_or_else(|| Error::DeploymentNotFound { id: d.id.clone() })?;
        if stored.generation != expected {
            return Err(Error::Conflict {
                message: format!(
                    "deployment {} changed concurrently (generation {} ≠ {expected})",
                    d.id, stored.generation
                ),
            });
        }
        *stored = Deployment {
            generation: expected + 1,
            ..d.clone()
        };
        Ok(())
    }

    async fn save_revision_content(&self, id: &str, content: &RevisionContent) -> Result<()> {
        let mut inner = self.lock();
        let (_, stored) = inner
            .deployments
            .get_mut(id)
            .ok_or_else(|| Error::DeploymentNotFound { id: id.into() })?;
        *stored = content.clone();
        Ok(())
    }

    async fn get_deployment(&self, id: &str) -> Result<Option<Deployment>> {
        Ok(self.lock().deployments.get(id).map(|(d, _)| d.clone()))
    }

    async fn revision_content(&self, id: &str) -> Result<Option<RevisionContent>> {
        Ok(self.lock().deployments.get(id).map(|(_, c)| c.clone()))
    }

    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>> {
        let inner = self.lock();
        let mut out: Vec<Deployment> = inner
            .deployments
            .values()
            .map(|(d, _)| d)
            .filter(|d| filter.matches(d))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.revision.cmp(&a.revision))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    async fn revisions(&self, key: &DeploymentKey) -> Result<Vec<Deployment>> {
        let inner = self.lock();
        Ok(inner
            .revisions
            .get(key)
            .map(|r| {
                r.values()
                    .filter_map(|id| inner.deployments.get(id).map(|(d, _)| d.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn claim_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>> {
        let mut inner = self.lock();
        let epoch = match inner.leases.get(id) {
            Some(held) if !held.is_expired(now_ms) => return Ok(None),
            Some(expired) => expired.epoch + 1,
            None => 1,
        };
        let lease = Lease {
            deployment_id: id.into(),
            owner: owner.into(),
            epoch,
            expires_at_ms: now_ms + ttl_ms,
        };
        inner.leases.insert(id.into(), lease.clone());
        Ok(Some(lease))
    }

    async fn renew_lease(&self, lease: &Lease, now_ms: i64, ttl_ms: i64) -> Result<Lease> {
        let mut inner = self.lock();
        match inner.leases.get_mut(&lease.deployment_id) {
            Some(held) if held.owner == lease.owner && held.epoch == lease.epoch => {
                held.expires_at_ms = now_ms + ttl_ms;
                Ok(held.clone())
            }
            _ => Err(lease_lost(lease)),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let mut inner = self.lock();
        if inner
            .leases
            .get(&lease.deployment_id)
            .is_some_and(|held| held.owner == lease.owner && held.epoch == lease.epoch)
        {
            inner.leases.remove(&lease.deployment_id);
        }
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<Lease>> {
        Ok(self.lock().leases.values().cloned().collect())
    }
}
