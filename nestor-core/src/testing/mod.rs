//! The store conformance suite (feature `testing`).
//!
//! Every store runs every case here, through [`store_conformance_tests!`],
//! so memory, SQLite and DynamoDB behave identically. Each case takes a fresh
//! store and panics with a message saying what a user would see go wrong.
//!
//! One file per suite (catalog writes, catalog listing and search, the event
//! log, sync state, compositions, deployments, leases, the audit trail, team
//! quotas); one fixture type,
//! [`Fixture`], a full [`Store`] for every case.
//!
//! To add a case: write `pub async fn my_case(store: Arc<dyn Store>)` (or
//! `Arc<dyn CatalogStore>` when the catalog half is all it needs) in its
//! suite's file, and add its name to that suite's list in
//! [`store_conformance_tests!`]. To add a suite: a new file here, a `pub mod`
//! line below, and a `suite: [cases]` line in the macro. Every store's test
//! file then runs it without a change.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use semver::Version;

use crate::*;

pub mod audit;
pub mod catalog;
pub mod compositions;
pub mod deployments;
pub mod events;
pub mod leases;
pub mod listing;
pub mod quotas;
pub mod sync_state;

/// A fresh store for one case, with whatever must live as long as it (a
/// temporary directory, a table prefix to drop...).
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Dropped after the case.
    pub guard: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    /// A fixture with nothing to keep alive.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Fixture {
            store,
            guard: Box::new(()),
        }
    }

    /// A fixture keeping `guard` alive.
    pub fn with_guard(store: Arc<dyn Store>, guard: impl Any + Send + Sync) -> Self {
        Fixture {
            store,
            guard: Box::new(guard),
        }
    }
}

/// Generates every conformance case as a `#[tokio::test]`, one module per
/// suite (`catalog::immutability`, `leases::concurrent_claims_one_wins`...).
/// `$make` is an expression evaluating to a future of a [`Fixture`]; it is
/// evaluated inside each suite's module, which sees the caller's items.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@suites $make;
            catalog: [publish_get_and_latest, immutability, versions_newest_first_by_semver,
                prerelease_and_yank_rules, requirements_use_cargo_semantics, concurrent_publishers_one_wins,
                bump_rules_enforced, dependencies_must_resolve, batch_publish_applies_every_rule],
            listing: [list_filters_and_pagination, pagination_is_stable_under_inserts, search_ranking],
            events: [event_log_sequences, concurrent_event_appends, serialized_events_read_back_as_values,
                events_for_catalog_changes, concurrent_first_publishes_announce_one_creation],
            sync_state: [sync_state_and_reports],
            compositions: [compositions_are_versioned_per_team],
            deployments: [deployment_revisions_and_conflicts, idempotency_keys, concurrent_updates_one_wins,
                deployment_listing_filters],
            leases: [leases_are_exclusive_until_they_expire, lost_leases_cannot_be_renewed_or_released,
                concurrent_claims_one_wins],
            audit: [audit_records_filter_and_order, concurrent_audit_records_all_kept,
                audit_retention_prunes_only_older_records, audit_pages_follow_their_position],
            quotas: [concurrent_applies_fill_a_quota_exactly,
                usage_counts_latest_revisions_and_deletions_free_it, environment_and_category_quotas],
        );
    };
    (@suites $make:expr; $($suite:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $suite {
                #[allow(unused_imports)]
                use super::*;

                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        let fixture: $crate::testing::Fixture = $make.await;
                        $crate::testing::$suite::$case(fixture.store.clone()).await;
                        drop(fixture);
                    }
                )*
            }
        )*
    };
}

/// A valid definition for tests: `name@version` with one required input
/// `size` and one output `endpoint`.
pub fn definition(name: &str, version: &str) -> ResourceDefinition {
    let yaml = format!(
        r#"
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata:
  name: {name}
  version: "{version}"
  provider: aws
  category: database
  resource_type: mysql
  description: "Test definition {name}"
  labels: {{tier: data}}
spec:
  supported_engines: [terraform, crossplane]
  required_inputs:
    - name: size
      type: string
  outputs:
    - name: endpoint
      type: string
"#
    );
    parse_definition_yaml(&yaml).expect("test definition is valid")
}

/// A composition of `team` for tests: `name@version` with one resource
/// `db` (`db:^1`, no config), described as `"{team}'s {name}"`.
pub fn composition(team: &str, name: &str, version: &str) -> Composition {
    Composition {
        api_version: COMPOSITION_API_VERSION.into(),
        kind: COMPOSITION_KIND.into(),
        metadata: CompositionMetadata {
            name: name.into(),
            team: team.into(),
            version: v(version),
        },
        spec: CompositionSpec {
            description: format!("{team}'s {name}"),
            parameters: vec![],
            resources: vec![CompositionResource {
                name: "db".into(),
                catalog_ref: "db:^1".into(),
                engine: None,
                config: BTreeMap::new(),
                depends_on: vec![],
            }],
            dependencies: vec![],
        },
    }
}

/// `composition` as a store holds it, published at `published_at`.
pub fn published(composition: Composition, published_at: Timestamp) -> PublishedComposition {
    PublishedComposition {
        content_hash: composition.content_hash(),
        composition,
        published_at,
        origin: None,
    }
}

pub(crate) fn v(s: &str) -> Version {
    s.parse().expect("test version")
}

pub(crate) fn service(store: &Arc<dyn CatalogStore>) -> CatalogService {
    CatalogService::new(store.clone())
}

pub(crate) async fn publish(
    store: &Arc<dyn CatalogStore>,
    def: ResourceDefinition,
) -> PublishOutcome {
    service(store)
        .publish(def, None, "test")
        .await
        .expect("publish succeeds")
        .outcome
}

/// A pending deployment `alpha/{env}/checkout` at `revision`, with one
/// resource `db` (`db:1.0.0` on terraform), for store tests.
pub fn deployment(id: &str, env: &str, revision: u64, created_at: Timestamp) -> Deployment {
    Deployment {
        id: id.into(),
        team: "alpha".into(),
        environment: env.into(),
        name: "checkout".into(),
        revision,
        status: DeploymentStatus::Pending,
        created_at,
        updated_at: created_at,
        waves: vec![vec!["db".into()]],
        resources: vec![DeployedResource {
            name: "db".into(),
            catalog_ref: "db:1.0.0".into(),
            engine: "terraform".into(),
            category: "database".into(),
            status: ResourceStatus::Pending,
            outputs: BTreeMap::new(),
            artifacts: vec![],
            error: None,
            health: None,
        }],
        error: None,
        composition: None,
        params: BTreeMap::new(),
        labels: BTreeMap::new(),
        commit: None,
        rollback_of: None,
        unchanged: false,
        cluster: None,
        generation: 0,
        policy_warnings: vec![],
    }
}
