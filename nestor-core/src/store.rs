//! The storage traits, split by use (SPEC §10).
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

use crate::error::{Error, Result};
use crate::model::{Event, NewEvent, PublishOutcome, PublishedVersion, SourceState, SyncReport, VersionSummary};
use crate::versioning::{self, VersionSpec};

/// Reads the catalog.
#[async_trait]
pub trait CatalogReader: Send + Sync {
    /// Exactly name@version, yanked or not.
    async fn get_version(&self, name: &str, version: &Version) -> Result<Option<PublishedVersion>>;

    /// Every version of a name, newest first by semver.
    async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>>;

    /// The latest version of each name that passes `filter`, ordered by name,
    /// one page at a time. The cursor is the last name of the previous page,
    /// so paging is stable under concurrent inserts.
    async fn list_latest(&self, filter: &ListFilter, page: &PageRequest) -> Result<Page<PublishedVersion>>;

    /// The latest version of a name (SPEC §2): the greatest neither yanked nor
    /// pre-release; pre-releases count only when nothing else exists.
    async fn latest(&self, name: &str) -> Result<Option<PublishedVersion>> {
        let versions = self.versions(name).await?;
        match versioning::select_latest(&versions) {
            Some(v) => self.get_version(name, &v).await,
            None => Ok(None),
        }
    }

    /// Resolves a version spec (exact, requirement or latest) to a published
    /// version, or a not-found error saying which part was missing.
    async fn resolve(&self, name: &str, spec: &VersionSpec) -> Result<PublishedVersion> {
        let not_found = || Error::VersionNotFound { name: name.into(), version: spec.to_string() };
        match spec {
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

    /// Sets the yanked flag; returns whether it changed. Unknown name@version
    /// → [`Error::VersionNotFound`].
    async fn set_yanked(&self, name: &str, version: &Version, yanked: bool) -> Result<bool>;
}

/// Full-text search over the latest versions.
#[async_trait]
pub trait CatalogSearch: Send + Sync {
    /// Ranked matches (best first) for `query` among the latest versions that
    /// pass `filter`, at most `limit`.
    async fn search(&self, query: &str, filter: &ListFilter, limit: usize) -> Result<Vec<SearchHit>>;
}

/// The append-only event log, source of truth for SSE, replay and cache
/// invalidation.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends an event and returns it with its sequence, strictly greater
    /// than every sequence handed out before (across replicas).
    async fn append(&self, event: NewEvent) -> Result<Event>;

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
pub trait CatalogStore: CatalogReader + CatalogWriter + CatalogSearch + EventLog + SyncStore {}

impl<T: CatalogReader + CatalogWriter + CatalogSearch + EventLog + SyncStore> CatalogStore for T {}

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
    /// Whether a version passes the filter. Backends may pre-filter in their
    /// query language, but this is the rule.
    pub fn matches(&self, version: &PublishedVersion) -> bool {
        let m = &version.definition.metadata;
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.provider, &m.provider)
            && eq(&self.category, &m.category)
            && eq(&self.resource_type, &m.resource_type)
            && self
                .engine
                .as_deref()
                .is_none_or(|e| version.definition.spec.supported_engines.iter().any(|s| s == e))
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

    /// A first page of `limit` items, clamped to 1..=500.
    pub fn first(limit: usize) -> Self {
        PageRequest { limit: limit.clamp(1, Self::MAX_LIMIT), cursor: None }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(Self::DEFAULT_LIMIT)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor for the next page, `None` on the last one.
    pub next_cursor: Option<String>,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The relevance score (higher is better).
    pub score: u32,
    /// The matching latest version.
    pub version: PublishedVersion,
}
