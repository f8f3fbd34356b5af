//! The DynamoDB store: several `nestor serve` replicas sharing one catalog,
//! one event log and one set of deployments (docs/src/operator/storage.md).
//!
//! # Tables
//! Six tables under a configurable prefix `P`, all on-demand
//! (`PAY_PER_REQUEST`), created by [`DynamoStore::migrate`]:
//!
//! | table | partition key | sort key | items |
//! |---|---|---|---|
//! | `P-catalog` | `pk` = name | `sk` | `V#<vkey>` version head, `B#<vkey>` version body, `NAME` name item |
//! | `P-events` | `bucket` (N) = seq / 1000 | `seq` (N) | one event |
//! | `P-meta` | `pk` | `sk` | event counter, sync state and reports, team registries |
//! | `P-compositions` | `pk` = team | `sk` = `name#<vkey>` | one composition version |
//! | `P-deployments` | `pk` | `sk` | revisions, id items, content, idempotency keys (see `deployments.rs`) |
//! | `P-leases` | `deployment_id` | — | one lease: `owner`, `epoch` (N), `expires_at_ms` (N) (see `leases.rs`) |
//!
//! Indexes: `P-catalog.by_name` (hash `list_pk`, range `pk`) and
//! `P-deployments.by_team` (hash `team`, range `created`), both projecting
//! every attribute.
//!
//! # The catalog table, by query pattern
//! - **get name@version**: `GetItem` of the head `(name, V#<vkey>)` — small,
//!   holds the mutable `yanked` flag, always read strongly consistent — and
//!   of the body `(name, B#<vkey>)`, the immutable content, which the cache
//!   usually already holds. Heads and bodies are separate items so that
//!   listing a name's versions reads a few hundred bytes per version, not
//!   whole definitions (DynamoDB bills a read by item size, whatever the
//!   projection).
//! - **versions of a name, newest first by semver**: `Query pk = name AND
//!   begins_with(sk, "V#")` backwards. `<vkey>` encodes semver precedence in
//!   byte order (zero-padded major/minor/patch, a release marker that sorts
//!   after pre-releases, numeric pre-release identifiers by length then
//!   digits; see `codec::version_key`), so `1.10.0` sorts above `1.9.0`.
//! - **latest of a name**: the `NAME` item holds the latest version's
//!   number, hash, filter fields and a copy of its body. Every insert and
//!   yank rewrites it in the *same* `TransactWriteItems` as the version
//!   write, computed with the core's `select_latest` over the strongly
//!   consistent history, and conditional on the item's `rev` being the one
//!   read before the history: two writers of one name can never both commit
//!   a latest computed from the same history, so no update is lost. The
//!   loser re-reads and retries (bounded, with jittered backoff). `latest`
//!   is one consistent `GetItem`.
//! - **immutability**: the head and body puts carry
//!   `attribute_not_exists(pk)`; of concurrent publishers of one
//!   name@version exactly one transaction commits, the others find the head
//!   on their next round and get `Unchanged` (same hash) or
//!   `VERSION_IMMUTABLE`.
//! - **list by name with a cursor**: the sparse GSI `by_name` holds exactly
//!   the name items that have a latest version (`list_pk = "LATEST"`), sorted
//!   by name. A page is `Query list_pk = "LATEST" AND pk > :cursor`, so a
//!   cursor is just the last name and pages stay stable under inserts. A Scan
//!   would read the whole table (every version and body) for every page and
//!   return it unordered; the index reads only name items, in order. The one
//!   index partition takes a write per catalog change, far below a
//!   partition's 1,000 writes/s for a catalog. Provider, category and
//!   resource type are `FilterExpression`s on copied attributes; engine,
//!   labels and `q` are applied in Rust (`ListFilter::matches`, the rule),
//!   fetching further index pages until the page is full. GSIs are
//!   eventually consistent: a new latest shows in lists after the index
//!   catches up (typically milliseconds).
//! - **search**: ranked in Rust with the core's `search_score`/`rank_hits`
//!   over a per-replica snapshot of the index, kept current by tailing the
//!   event log (see `search.rs`).
//!
//! # Leases
//! Which replica runs a deployment (docs/src/operator/storage.md). One item per claimed
//! deployment in `P-leases`, written only by conditional single-item
//! requests: a claim is a consistent `GetItem` then a `PutItem` conditional
//! on `attribute_not_exists(deployment_id)` (no lease yet, epoch 1) or on
//! `epoch = :old AND expires_at_ms <= :now` (the read lease had expired;
//! epoch + 1), and a failed condition is a lost claim (`None`); a renewal
//! is an `UpdateItem` and a release a `DeleteItem`, both conditional on
//! the holder's `owner` and `epoch` (a failed renewal is `CONFLICT`, a
//! failed release a no-op). `leases` is a paginated consistent Scan,
//! sorted by id in Rust: the table holds a few small items, one per
//! running deployment. Leases are never cached. An expired item stays
//! until it is claimed again or released.
//!
//! # The event log
//! `append` increments the counter item (`UpdateItem ADD n 1`, returning the
//! new value) — atomic across every replica — then puts the event under that
//! sequence with `attribute_not_exists`. Sequences are strictly increasing
//! and never reused (pruning never touches the counter); a replica that dies
//! between the two writes leaves a gap, which readers tolerate. Events live
//! in partitions of 1,000 sequences, so `read_after` is a `Query bucket = b
//! AND seq > after` on one or two partitions; pruning deletes old events
//! bucket by bucket and raises a low-water mark so readers skip emptied
//! buckets. The counter is one item, so appends across all replicas are
//! bounded by one item's write rate (about 1,000 a second) — ample for
//! catalog, sync and deployment events.
//!
//! # Cache
//! Inside the store, invisible in the traits (`cache.rs`): immutable content
//! is cached by name@version (never stale); mutable state (`yanked`, latest,
//! deployment status) is always read from DynamoDB with strongly consistent
//! reads, except for the search snapshot, which learns of other replicas'
//! writes from the event log within a second.
//!
//! # Large items
//! DynamoDB items hold at most 400 KB, and definition files may be 4 MiB.
//! JSON bodies over 4 KiB are stored deflated (definitions are repetitive
//! text and typically shrink 5–10×); one whose compressed form still exceeds
//! 350 KB is refused with `BAD_REQUEST` saying so, before anything is
//! written. The same holds for events, compositions and revision content.
//!
//! # Failures
//! The SDK retries throttling, 5xx and connection errors (standard mode,
//! exponential backoff with jitter, 4 attempts; 2 s to connect, 4 s per
//! attempt, 10 s per call at most, so a partitioned or hung server costs a
//! caller 10 s, a refused connection far less); what still fails is
//! `STORAGE_UNAVAILABLE` with the SDK error as source. Lost races inside
//! the store's own read-check-write loops (a cancelled transaction) are
//! retried up to 40 rounds with jittered backoff, then reported the same
//! way. Transactions carry a `ClientRequestToken`, so when the SDK resends
//! one whose answer was lost, DynamoDB reports the earlier commit instead
//! of failing its conditions; an event put that meets its own earlier
//! attempt is recognised as such. Single conditional puts cannot tell their
//! own lost answer from another writer: a composition then reads back as
//! `Unchanged`, a deployment update as `CONFLICT` (the caller re-reads).
//! Nothing panics; a call made after the server is back simply works (the
//! client reconnects), with no manual step.
//!
//! # Multi-replica groundwork
//! Everything a replica needs from another is in DynamoDB: the event log
//! (`read_after` with a shared, gap-tolerant sequence) is the SSE source and
//! the invalidation feed; deployment updates are conditional on their
//! generation, and leases (claim, heartbeat, takeover) are conditional on
//! their epoch.

mod audit;
mod cache;
mod catalog;
mod client;
mod codec;
mod compositions;
mod deployments;
mod events;
mod leases;
mod quotas;
mod search;
mod sync;
mod tables;

use serde::{Deserialize, Serialize};

use nestor_core::Result;

/// Where the tables live (`storage.dynamodb` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoConfig {
    /// Prefix of every table name (`nestor` → `nestor-catalog`, ...), so
    /// several installations (or test cases) share one account.
    #[serde(default = "default_prefix")]
    pub table_prefix: String,
    /// The AWS region.
    #[serde(default = "default_region")]
    pub region: String,
    /// A DynamoDB-compatible endpoint (DynamoDB Local, moto) instead of AWS.
    /// On a loopback address, credentials default to dummy keys unless
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` are set.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

fn default_prefix() -> String {
    "nestor".into()
}

fn default_region() -> String {
    "us-east-1".into()
}

impl Default for DynamoConfig {
    fn default() -> Self {
        DynamoConfig {
            table_prefix: default_prefix(),
            region: default_region(),
            endpoint_url: None,
        }
    }
}

/// A store on DynamoDB, implementing every storage trait of `nestor-core`.
/// Cheap to share behind an `Arc`; each handle has its own cache, like a
/// replica.
pub struct DynamoStore {
    /// The SDK client (connection pool, retries, timeouts).
    client: aws_sdk_dynamodb::Client,
    /// The table names derived from the prefix.
    tables: tables::Tables,
    /// Immutable content and deployment locations.
    cache: cache::ImmutableCache,
    /// The search snapshot, kept current from the event log.
    search: search::SearchCache,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl DynamoStore {
    /// Builds a client for `config`. Makes no request: an unreachable
    /// endpoint shows on first use (or in [`DynamoStore::migrate`]) as
    /// `STORAGE_UNAVAILABLE`. An invalid table prefix is `BAD_REQUEST`.
    pub async fn connect(config: DynamoConfig) -> Result<Self> {
        let tables = tables::Tables::new(&config.table_prefix)?;
        let client = client::build_client(&config).await;
        Ok(DynamoStore {
            client,
            tables,
            cache: Default::default(),
            search: Default::default(),
        })
    }

    /// Creates the tables and indexes that are missing and waits until they
    /// are ACTIVE. Idempotent, and safe to run from several replicas at
    /// once; `nestor migrate` calls it.
    pub async fn migrate(&self) -> Result<()> {
        tables::migrate(&self.client, &self.tables).await
    }

    /// Deletes every table of this prefix — all data is lost. For tests and
    /// teardown of throwaway installations.
    pub async fn delete_tables(&self) -> Result<()> {
        tables::delete_all(&self.client, &self.tables).await
    }

    /// A cheap readiness probe: one strongly consistent read of the event
    /// counter. `Ok` means DynamoDB answers and the tables exist.
    pub async fn ping(&self) -> Result<()> {
        nestor_core::EventLog::last_sequence(self).await.map(|_| ())
    }
}
