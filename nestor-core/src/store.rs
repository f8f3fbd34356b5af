//! The storage traits, split by use (docs/src/operator/storage.md).
//!
//! A store implements all of them; code asks only for what it uses. The
//! rules that decide *what* is returned (which version is latest, which one a
//! requirement picks, how search ranks) live in the core and are shared by
//! every backend through default methods, so backends agree by construction.
//! Backends only enforce what must be atomic: immutability of
//! name@version and strictly increasing event sequences.

use std::collections::BTreeMap;

use async_trait::async_trait;
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::model::{
    Deployment, DeploymentKey, DeploymentStatus, Event, EventType, Lease, NewEvent, PublishOutcome,
    PublishedComposition, PublishedVersion, RevisionContent, SerializedEvent, Shared, SourceState,
    SyncReport, Timestamp, VersionSummary,
};
use crate::versioning::{self, VersionSpec};

/// Reads the catalog.
///
/// Records come back as [`Shared`] values: the store's own copy (from its
/// cache, say), never a deep copy per read, with its JSON written once for
/// every reader that sends it on.
#[async_trait]
pub trait CatalogReader: Send + Sync {
    /// Exactly name@version, yanked or not.
    async fn get_version(
        &self,
        name: &str,
        version: &Version,
    ) -> Result<Option<Shared<PublishedVersion>>>;

    /// Every version of a name, newest first by semver.
    async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>>;

    /// [`CatalogReader::versions`] of many names at once (names without
    /// versions map to an empty list). Backends override it with one query;
    /// batch publishing (a cold sync) leans on it.
    async fn versions_many(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<VersionSummary>>> {
        let mut out = std::collections::HashMap::with_capacity(names.len());
        for name in names {
            out.insert(name.clone(), self.versions(name).await?);
        }
        Ok(out)
    }

    /// The latest version of each name that passes `filter`, ordered by name,
    /// one page at a time. The cursor is the last name of the previous page,
    /// so paging is stable under concurrent inserts.
    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> Result<Page<Shared<PublishedVersion>>>;

    /// The latest version of a name (docs/src/reference/versioning.md): the greatest neither yanked nor
    /// pre-release; pre-releases count only when nothing else exists.
    async fn latest(&self, name: &str) -> Result<Option<Shared<PublishedVersion>>> {
        let versions = self.versions(name).await?;
        match versioning::select_latest(&versions) {
            Some(v) => self.get_version(name, &v).await,
            None => Ok(None),
        }
    }

    /// Resolves a version spec (exact, requirement or latest) to a published
    /// version, or a not-found error saying which part was missing.
    async fn resolve(&self, name: &str, spec: &VersionSpec) -> Result<Shared<PublishedVersion>> {
        let not_found = || Error::VersionNotFound {
            name: name.into(),
            version: spec.to_string(),
        };
        match spec {
            // One lookup on the common path; the history is read only to
            // tell "no such name" from "nothing eligible".
            VersionSpec::Latest => match self.latest(name).await? {
                Some(found) => Ok(found),
                None if self.versions(name).await?.is_empty() => {
                    Err(Error::ResourceNotFound { name: name.into() })
                }
                None => Err(not_found()),
            },
            VersionSpec::Exact(v) => match self.get_version(name, v).await? {
                Some(found) => Ok(found),
                None if self.versions(name).await?.is_empty() => {
                    Err(Error::ResourceNotFound { name: name.into() })
                }
                None => Err(not_found()),
            },
            _ => {
                let versions = self.versions(name).await?;
                if versions.is_empty() {
                    return Err(Error::ResourceNotFound { name: name.into() });
                }
                let chosen = versioning::select_matching(&versions, spec).ok_or_else(not_found)?;
                self.get_version(name, &chosen).await?.ok_or_else(not_found)
            }
        }
    }
}

/// Writes the catalog. Callers validate first (see `CatalogService`); the
/// store only makes the write atomic.
#[async_trait]
pub trait CatalogWriter: Send + Sync {
    /// Inserts name@version unless it exists. Same content hash → `Unchanged`;
    /// other content → [`Error::VersionImmutable`]. Of concurrent publishers
    /// of one name@version exactly one gets `Created`.
    async fn insert_version(&self, version: PublishedVersion) -> Result<PublishOutcome>;

    /// Inserts many versions, each with [`CatalogWriter::insert_version`]'s
    /// rules and its own outcome, and appends the [`Announcement::events`]
    /// of every version it creates in the same atomic write: a crash never
    /// leaves a version without its events, and whether a version is the
    /// first of its name is decided by the write itself, so of concurrent
    /// first publishes of one name exactly one announces `resource.created`.
    /// A storage failure fails the whole call.
    async fn insert_versions(
        &self,
        writes: Vec<VersionWrite>,
    ) -> Result<Vec<Result<PublishOutcome>>>;

    /// Sets the yanked flag; returns whether it changed. Unknown name@version
    /// → [`Error::VersionNotFound`].
    async fn set_yanked(&self, name: &str, version: &Version, yanked: bool) -> Result<bool>;
}

/// A version to insert and what its publication announces, which the store
/// writes together ([`CatalogWriter::insert_versions`]).
#[derive(Debug, Clone)]
pub struct VersionWrite {
    /// The version.
    pub version: PublishedVersion,
    /// Its definition's canonical JSON, serialised once by the caller
    /// (stores that keep the definition as JSON text store these bytes).
    pub definition_json: Box<RawValue>,
    /// The events it appends if the store creates it.
    pub announcement: Announcement,
}

impl VersionWrite {
    /// `version` published by `actor` at `timestamp`, serialised here (the
    /// catalog service builds its writes from JSON it serialised already).
    pub fn new(version: PublishedVersion, actor: &str, timestamp: Timestamp) -> Result<Self> {
        let serialise =
            |e: serde_json::Error| Error::internal(format!("serialising a version: {e}"));
        let definition_json =
            serde_json::value::to_raw_value(&version.definition).map_err(serialise)?;
        let data = serde_json::value::to_raw_value(&version).map_err(serialise)?;
        Ok(VersionWrite {
            announcement: Announcement {
                subject: version.definition.subject(),
                actor: actor.to_string(),
                timestamp,
                data,
                deprecates: false,
            },
            version,
            definition_json,
        })
    }
}

/// The events a new version appends, built by the store once it knows
/// whether the version is the first of its name.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// `name:version`.
    pub subject: String,
    /// Who published: the events' source.
    pub actor: String,
    /// The events' timestamp.
    pub timestamp: Timestamp,
    /// The events' data: the version as JSON.
    pub data: Box<RawValue>,
    /// The version newly deprecates its name: `resource.deprecated` follows.
    pub deprecates: bool,
}

impl Announcement {
    /// The events of a created version: `resource.created` when
    /// `first_of_name` (the name had no version before this write — the
    /// store decides it inside the write), else `resource.updated`; then
    /// `resource.deprecated` when it deprecates the name.
    pub fn events(self, first_of_name: bool) -> Vec<SerializedEvent> {
        let kind = if first_of_name {
            EventType::ResourceCreated
        } else {
            EventType::ResourceUpdated
        };
        let timestamp = self.timestamp;
        let event = |event_type, data, source, subject| SerializedEvent {
            event_type,
            source,
            subject,
            timestamp,
            data,
        };
        if self.deprecates {
            vec![
                event(
                    kind,
                    self.data.clone(),
                    self.actor.clone(),
                    self.subject.clone(),
                ),
                event(
                    EventType::ResourceDeprecated,
                    self.data,
                    self.actor,
                    self.subject,
                ),
            ]
        } else {
            // The usual case moves everything: a cold sync announces
            // thousands.
            vec![event(kind, self.data, self.actor, self.subject)]
        }
    }
}

/// Full-text search over the latest versions.
#[async_trait]
pub trait CatalogSearch: Send + Sync {
    /// Ranked matches (best first) for `query` among the latest versions that
    /// pass `filter`, at most `limit`.
    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<Vec<SearchHit>>;
}

/// The append-only event log, source of truth for SSE, replay and cache
/// invalidation.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends an event and returns it with its sequence, strictly greater
    /// than every sequence handed out before (across replicas).
    async fn append(&self, event: NewEvent) -> Result<Event>;

    /// Appends events in order, with increasing sequences. Backends
    /// override it to append the batch at once.
    async fn append_many(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(self.append(e).await?);
        }
        Ok(out)
    }

    /// Appends events whose data is JSON text already, in order, with
    /// increasing sequences, and returns the sequences. Read back, each is
    /// the event [`SerializedEvent::into_new`] gives. The default parses the
    /// data and calls [`EventLog::append_many`]; backends that store JSON
    /// text override it to store the text as it is.
    async fn append_serialized(&self, events: Vec<SerializedEvent>) -> Result<Vec<u64>> {
        let events = events
            .into_iter()
            .map(SerializedEvent::into_new)
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .append_many(events)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect())
    }

    /// Events with sequence > `after`, oldest first, at most `limit`.
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Event>>;

    /// The greatest sequence so far (0 for an empty log).
    async fn last_sequence(&self) -> Result<u64>;

    /// Drops events older than `before` (retention); returns how many.
    async fn prune_before(&self, before: crate::model::Timestamp) -> Result<u64>;
}

/// What the sync service keeps between syncs.
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// The state of a source after its last sync.
    async fn source_state(&self, source: &str) -> Result<Option<SourceState>>;
    /// Replaces a source's state.
    async fn save_source_state(&self, state: &SourceState) -> Result<()>;
    /// Stores a sync report (the last one per source is kept).
    async fn record_sync(&self, report: &SyncReport) -> Result<()>;
    /// The last sync report of every source, by source name.
    async fn last_syncs(&self) -> Result<Vec<SyncReport>>;
}

/// Everything the catalog half of Nestor needs from a store.
pub trait CatalogStore:
    CatalogReader + CatalogWriter + CatalogSearch + EventLog + SyncStore
{
}

impl<T: CatalogReader + CatalogWriter + CatalogSearch + EventLog + SyncStore> CatalogStore for T {}

/// Everything Nestor needs from a store: the catalog, compositions,
/// deployments and the audit trail. (`Arc<dyn Store>` upcasts to
/// `Arc<dyn CatalogStore>` and `Arc<dyn AuditLog>`.)
pub trait Store:
    CatalogStore + CompositionStore + DeploymentStore + crate::audit::AuditLog
{
}

impl<T: CatalogStore + CompositionStore + DeploymentStore + crate::audit::AuditLog> Store for T {}

/// Filters of `GET /resources` and `/search`. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// Exact provider.
    pub provider: Option<String>,
    /// Exact category.
    pub category: Option<String>,
    /// Exact resource type.
    pub resource_type: Option<String>,
    /// A supported engine.
    pub engine: Option<String>,
    /// Every label must be present with this value.
    pub labels: BTreeMap<String, String>,
    /// Substring of name or description (case-insensitive).
    pub q: Option<String>,
}

impl ListFilter {
    /// Most `label` filters one listing may combine.
    pub const MAX_LABELS: usize = 16;

    /// Refuses filters no real listing needs and every store would choke
    /// on: a search query past [`crate::check_search_query`]'s bounds, more
    /// than [`ListFilter::MAX_LABELS`] labels, or a value longer than 256
    /// bytes. `BAD_REQUEST`.
    pub fn check(&self) -> Result<()> {
        if let Some(q) = &self.q {
            crate::search::check_search_query(q)?;
        }
        if self.labels.len() > Self::MAX_LABELS {
            return Err(Error::bad_request(format!(
                "{} label filters; at most {} are allowed",
                self.labels.len(),
                Self::MAX_LABELS
            )));
        }
        let values = [
            &self.provider,
            &self.category,
            &self.resource_type,
            &self.engine,
        ];
        let too_long = values
            .into_iter()
            .flatten()
            .chain(self.labels.keys().chain(self.labels.values()))
            .any(|v| v.len() > 256);
        if too_long {
            return Err(Error::bad_request(
                "a filter value is longer than 256 bytes",
            ));
        }
        Ok(())
    }

    /// Whether a version passes the filter. Backends may pre-filter in their
    /// query language, but this is the rule.
    pub fn matches(&self, version: &PublishedVersion) -> bool {
        let m = &version.definition.metadata;
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.provider, &m.provider)
            && eq(&self.category, &m.category)
            && eq(&self.resource_type, &m.resource_type)
            && self.engine.as_deref().is_none_or(|e| {
                version
                    .definition
                    .spec
                    .supported_engines
                    .iter()
                    .any(|s| s == e)
            })
            && self.labels.iter().all(|(k, v)| m.labels.get(k) == Some(v))
            && self.q.as_deref().is_none_or(|q| {
                let q = q.to_lowercase();
                m.name.to_lowercase().contains(&q) || m.description.to_lowercase().contains(&q)
            })
    }
}

/// Which page to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Page size: default 50, at most 500.
    pub limit: usize,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest page size.
    pub const MAX_LIMIT: usize = 500;

    /// Refuses a cursor no listing gave out: a cursor is the last name of
    /// the previous page, so anything that is not a definition name is
    /// garbage, and answering it with some page would be a wrong page.
    pub fn check(&self) -> Result<()> {
        match &self.cursor {
            Some(c) if !crate::validate::is_valid_name(c) => Err(Error::bad_request(format!(
                "cursor {} is not one a listing gave out (use the next_cursor of the previous page)",
                crate::validate::excerpt(c)
            ))),
            _ => Ok(()),
        }
    }

    /// A first page of `limit` items, clamped to 1..=500.
    pub fn first(limit: usize) -> Self {
        PageRequest {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            cursor: None,
        }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(Self::DEFAULT_LIMIT)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor for the next page, `None` on the last one.
    pub next_cursor: Option<String>,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SearchHit {
    /// The relevance score (higher is better).
    pub score: u32,
    /// The matching latest version.
    pub version: Shared<PublishedVersion>,
}

/// Stores team compositions, immutable per `team/name@version`.
#[async_trait]
pub trait CompositionStore: Send + Sync {
    /// Inserts unless it exists: same content → `Unchanged`, other content →
    /// [`Error::VersionImmutable`]; of concurrent writers one creates.
    async fn insert_composition(&self, composition: PublishedComposition)
        -> Result<PublishOutcome>;

    /// Exactly `team/name@version`.
    async fn get_composition(
        &self,
        team: &str,
        name: &str,
        version: &Version,
    ) -> Result<Option<PublishedComposition>>;

    /// Every version of `team/name`, newest first by semver.
    async fn composition_versions(&self, team: &str, name: &str) -> Result<Vec<Version>>;

    /// The newest version of every composition of `team` (every team when
    /// `None`), ordered by team then name.
    async fn list_compositions(&self, team: Option<&str>) -> Result<Vec<PublishedComposition>>;

    /// Resolves a version spec for `team/name`.
    async fn resolve_composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> Result<PublishedComposition> {
        let not_found = || Error::CompositionNotFound {
            team: team.into(),
            name: name.into(),
        };
        let versions = self.composition_versions(team, name).await?;
        let chosen = match spec {
            VersionSpec::Exact(v) => versions.iter().find(|x| *x == v).cloned(),
            VersionSpec::Req(r) => versions.iter().filter(|v| r.matches(v)).max().cloned(),
            VersionSpec::Latest => versions
                .iter()
                .filter(|v| v.pre.is_empty())
                .max()
                .or_else(|| versions.iter().max())
                .cloned(),
        };
        let chosen = chosen.ok_or_else(not_found)?;
        self.get_composition(team, name, &chosen)
            .await?
            .ok_or_else(not_found)
    }
}

/// The [`Error::Conflict`] every store returns when `lease` is no longer
/// the stored one (another replica claimed it, or it was released).
pub fn lease_lost(lease: &Lease) -> Error {
    Error::Conflict {
        message: format!(
            "the lease on deployment {} (owner {}, epoch {}) is no longer held",
            lease.deployment_id, lease.owner, lease.epoch
        ),
    }
}

/// Which deployments to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentFilter {
    /// Only this team.
    pub team: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Only this deployment name.
    pub name: Option<String>,
    /// Only this status.
    pub status: Option<DeploymentStatus>,
}

impl DeploymentFilter {
    /// Whether a deployment passes the filter.
    pub fn matches(&self, d: &Deployment) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.team, &d.team)
            && eq(&self.environment, &d.environment)
            && eq(&self.name, &d.name)
            && self.status.is_none_or(|s| s == d.status)
    }
}

/// What creating a deployment revision did.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// A new revision was recorded.
    Created,
    /// The idempotency key was seen before with the same request: here is
    /// the deployment it created.
    Existing(Box<Deployment>),
}

/// Stores deployments, their revisions and what each revision contains.
/// Every write is conditional, so two writers never both win.
#[async_trait]
pub trait DeploymentStore: Send + Sync {
    /// Records a new revision. Fails with [`Error::Conflict`] if
    /// `(team, environment, name, revision)` exists (another writer took that
    /// revision number). With an idempotency key: the same key and request
    /// hash returns [`CreateOutcome::Existing`]; the same key with another
    /// hash is [`Error::Conflict`].
    async fn create_deployment(
        &self,
        deployment: &Deployment,
        content: &RevisionContent,
        idempotency: Option<(&str, &str)>,
    ) -> Result<CreateOutcome> {
        self.create_deployment_within(deployment, content, idempotency, &[])
            .await
    }

    /// [`DeploymentStore::create_deployment`], refused with
    /// [`Error::QuotaExceeded`] (nothing written) when the revision would
    /// take its team past a limit of one of `quotas` that covers it
    /// ([`crate::check_quotas`] says what counts). The check and the write
    /// are one atomic step: of concurrent creates racing for the last
    /// room, exactly as many succeed as fit. With no quota it must still
    /// keep whatever the store counts usage with up to date.
    async fn create_deployment_within(
        &self,
        deployment: &Deployment,
        content: &RevisionContent,
        idempotency: Option<(&str, &str)>,
        quotas: &[crate::quota::Quota],
    ) -> Result<CreateOutcome>;

    /// Replaces a deployment if its stored `generation` is `expected`;
    /// the stored copy gets `expected + 1`. Otherwise [`Error::Conflict`].
    async fn update_deployment(&self, deployment: &Deployment, expected: u64) -> Result<()>;

    /// Replaces a revision's content (artifacts are known after rendering).
    async fn save_revision_content(&self, id: &str, content: &RevisionContent) -> Result<()>;

    /// One deployment by id.
    async fn get_deployment(&self, id: &str) -> Result<Option<Deployment>>;

    /// What a revision contains.
    async fn revision_content(&self, id: &str) -> Result<Option<RevisionContent>>;

    /// Deployments passing the filter, newest first (by creation, then id).
    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>>;

    /// Every revision of one deployment, oldest first.
    async fn revisions(&self, key: &DeploymentKey) -> Result<Vec<Deployment>>;

    /// Claims the lease on running deployment `id` for `owner` until
    /// `now_ms + ttl_ms`, if nobody holds it: no lease record exists (epoch
    /// 1), or the stored one expired at `now_ms` (its epoch + 1, whoever
    /// held it). `None` while another claim is unexpired — including one
    /// by `owner` itself, so a replica never runs a deployment twice. Of
    /// concurrent claimers, one wins. The deployment need not exist yet (the
    /// orchestrator claims before it records a revision).
    async fn claim_lease(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>>;

    /// Extends `lease` to `now_ms + ttl_ms` if the stored lease still has
    /// its owner and epoch (even if it expired meanwhile, as long as nobody
    /// claimed it). Otherwise [`Error::Conflict`]: the holder lost it and
    /// must stop.
    async fn renew_lease(&self, lease: &Lease, now_ms: i64, ttl_ms: i64) -> Result<Lease>;

    /// Deletes the lease record if `lease` still holds it (same owner and
    /// epoch); otherwise does nothing.
    async fn release_lease(&self, lease: &Lease) -> Result<()>;

    /// Every lease record, live or expired, by deployment id.
    async fn leases(&self) -> Result<Vec<Lease>>;
}
