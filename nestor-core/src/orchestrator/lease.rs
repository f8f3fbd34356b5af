//! Leases: deployments survive the loss of the replica running them.
//!
//! Every revision runs under a lease in the store ([`Lease`]): claimed
//! before the revision is recorded, renewed by a heartbeat every third of
//! its time to live, released when the run ends. A runner that stops — its
//! process killed, its machine gone — stops renewing; once the lease has
//! expired, any replica may claim it (the store grants one claim) and
//! [`Orchestrator::resume`] the deployment at the first wave whose
//! artifacts are not yet stored. Each wave's outputs and artifacts are
//! saved as it finishes, so the waves before are not rendered again, and
//! the executor's apply is idempotent per revision (the GitOps executor
//! finds its own commit), so a runner that died after committing does not
//! commit twice.
//!
//! A runner that was only paused past its lease and wakes up after another
//! replica took over is fenced three ways: its next heartbeat fails and
//! drops the run; a save conflicting with a write it did not expect fails
//! (see `Orchestrator::save`); and its commit, if it gets that far, finds
//! the revision already committed.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};

use super::{pinned_requests, Orchestrator, Rendered, Spec};
use crate::engine::RenderOutput;
use crate::error::{Error, Result};
use crate::model::{Deployment, DeploymentStatus, EventType, Lease, ResourceStatus};
use crate::store::DeploymentFilter;

/// Who this runner is and how long its leases last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// This runner's id, unique among replicas sharing a store.
    pub owner: String,
    /// How long a lease lasts without a heartbeat; another replica takes a
    /// deployment over at most this long after its runner stopped (plus its
    /// scan interval).
    pub ttl: Duration,
}

impl LeaseSettings {
    /// The default time to live: 30 s.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

    /// Settings for `owner` with the default time to live.
    pub fn new(owner: impl Into<String>) -> Self {
        LeaseSettings {
            owner: owner.into(),
            ttl: Self::DEFAULT_TTL,
        }
    }

    /// How often a held lease is renewed: a third of its time to live, so
    /// two heartbeats may fail before it lapses.
    pub fn heartbeat(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(10))
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2)
    }
}

impl Default for LeaseSettings {
    /// A process-unique owner (`nestor-{pid}-{nanos}`), 30 s.
    fn default() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Self::new(format!("nestor-{}-{nanos:08x}", std::process::id()))
    }
}

/// What [`Orchestrator::scan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseScan {
    /// Deployments to resume (see [`Orchestrator::orphans`]).
    pub orphans: Vec<String>,
    /// How long until the earliest live lease expires, if any is live.
    pub next_expiry: Option<Duration>,
}

impl Orchestrator {
    /// Claims the lease on `id` for this runner.
    pub(super) async fn claim(&self, id: &str) -> Result<Option<Lease>> {
        self.store
            .claim_lease(
                id,
                &self.leases.owner,
                self.clock.now_millis(),
                self.leases.ttl_ms(),
            )
            .await
    }

    /// Runs `work` while renewing `lease`, then releases it. If a renewal
    /// finds the lease taken by another replica, `work` is dropped at its
    /// next await and the run ends with [`Error::Conflict`]. Errors reaching
    /// the store are retried at the next heartbeat: the lease lapses only
    /// if they outlast it, and then another replica resumes the deployment.
    pub(super) async fn leased<T>(
        &self,
        lease: Lease,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let held = std::sync::Mutex::new(lease.clone());
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.leases.heartbeat()).await;
                let current = held
                    .lock()
                    .map(|l| l.clone())
                    .unwrap_or_else(|e| e.into_inner().clone());
                match self
                    .store
                    .renew_lease(&current, self.clock.now_millis(), self.leases.ttl_ms())
                    .await
                {
                    Ok(renewed) => {
                        if let Ok(mut l) = held.lock() {
                            *l = renewed;
                        }
                    }
                    Err(e @ Error::Conflict { .. }) => return e,
                    Err(e) => tracing::warn!(
                        deployment = %current.deployment_id,
                        error = %e,
                        "could not renew the deployment's lease; retrying"
                    ),
                }
            }
        };
        let outcome = match select(std::pin::pin!(work), std::pin::pin!(heartbeat)).await {
            Either::Left((result, _)) => result,
            Either::Right((lost, _)) => {
                tracing::warn!(
                    deployment = %lease.deployment_id,
                    owner = %lease.owner,
                    "lost the deployment's lease to another replica; stopped running it"
                );
                return Err(lost);
            }
        };
        let last = held.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.store.release_lease(&last).await {
            // It lapses by itself; nothing is lost.
            tracing::warn!(deployment = %last.deployment_id, error = %e, "could not release a lease");
        }
        outcome
    }

    /// Deployments another runner abandoned: those whose lease has expired,
    /// and with `unleased`, unfinished deployments that have no lease at all
    /// (recorded by a version of Nestor without leases). A server calls this
    /// periodically and [`Orchestrator::resume`]s each.
    pub async fn orphans(&self, unleased: bool) -> Result<Vec<String>> {
        Ok(self.scan(unleased).await?.orphans)
    }

    /// [`Orchestrator::orphans`], and when the earliest live lease expires,
    /// so a scanner can wake right then and take a deployment over as soon
    /// as its runner's lease lapses.
    pub async fn scan(&self, unleased: bool) -> Result<LeaseScan> {
        let now = self.clock.now_millis();
        let leases = self.store.leases().await?;
        let next_expiry = leases
            .iter()
            .filter(|l| !l.is_expired(now))
            .map(|l| Duration::from_millis((l.expires_at_ms - now).unsigned_abs()))
            .min();
        let mut ids: BTreeSet<String> = leases
            .iter()
            .filter(|l| l.is_expired(now))
            .map(|l| l.deployment_id.clone())
            .collect();
        if unleased {
            let leased: BTreeSet<&str> = leases.iter().map(|l| l.deployment_id.as_str()).collect();
            for status in [
                DeploymentStatus::Pending,
                DeploymentStatus::Planning,
                DeploymentStatus::Applying,
            ] {
                let filter = DeploymentFilter {
                    status: Some(status),
                    ..Default::default()
                };
                for d in self.store.list_deployments(&filter).await? {
                    if !leased.contains(d.id.as_str()) {
                        ids.insert(d.id);
                    }
                }
            }
        }
        Ok(LeaseScan {
            orphans: ids.into_iter().collect(),
            next_expiry,
        })
    }

    /// Takes over deployment `id` if its lease is free (expired, released
    /// or never claimed) and runs it to the end from the first wave not yet
    /// rendered. `None` when another runner holds the lease. A deployment
    /// that turns out to be finished is returned as it is; a claim on a
    /// revision that was never recorded (its creator died in between) is
    /// released.
    pub async fn resume(&self, id: &str) -> Result<Option<Deployment>> {
        let Some(lease) = self.claim(id).await? else {
            return Ok(None);
        };
        let (owner, epoch) = (lease.owner.clone(), lease.epoch);
        self.leased(lease, async {
            let Some(mut d) = self.store.get_deployment(id).await? else {
                return Ok(None);
            };
            let content = self.store.revision_content(id).await?.unwrap_or_default();
            // Cancelled while its runner was gone: finish the record the
            // way the runner would have (rendered resources stay
            // `rendering`, the others become `cancelled`).
            if d.status == DeploymentStatus::Cancelled
                && d.resources.iter().any(|r| {
                    matches!(r.status, ResourceStatus::Pending | ResourceStatus::Rendering)
                        && !content.artifacts.contains_key(&r.name)
                })
            {
                let mut rendered = seed_from(&d, &content);
                rendered.cancel_unrendered(d.resources.iter().map(|r| &r.name));
                Self::finish_statuses(&mut d, &rendered, false);
                self.save_final(&mut d).await?;
                return Ok(Some(d));
            }
            if d.status.is_final() {
                return Ok(Some(d));
            }
            if d.rollback_of.is_some() {
                tracing::info!(deployment = %id, %owner, epoch, "resuming a restore: committing it");
                self.commit_restored(&mut d, &content).await?;
                return Ok(Some(d));
            }
            let spec = Spec {
                key: d.key(),
                composition: d.composition.clone(),
                params: d.params.clone(),
                resources: pinned_requests(&content),
                edges: content.edges.clone(),
                labels: d.labels.clone(),
                base: "resources",
            };
            let resolved = match self.resolve(&spec).await {
                Ok(r) => r,
                Err(e) => {
                    // This replica cannot run it (an engine it lacks, a
                    // definition gone): end it with the reason.
                    d.status = DeploymentStatus::Failed;
                    d.error = Some(format!("could not resume: [{}] {e}", e.code()));
                    self.save(&mut d).await?;
                    self.emit(EventType::DeploymentFailed, &d).await?;
                    return Ok(Some(d));
                }
            };
            let mut seed = seed_from(&d, &content);
            seed.applied = d
                .resources
                .iter()
                .filter(|r| {
                    r.status == ResourceStatus::Applied
                        && self.direct_for(&d.environment, &r.engine).is_some()
                })
                .map(|r| r.name.clone())
                .collect();
            let first = resolved
                .waves
                .iter()
                .position(|w| {
                    w.iter().any(|n| {
                        let undone = !seed.outputs.contains_key(n)
                            || (self.is_direct(&spec.key, &resolved, n) && !seed.applied.contains(n));
                        undone && !seed.problems.contains_key(n)
                    })
                })
                .map_or(resolved.waves.len(), |i| i + 1);
            tracing::info!(
                deployment = %id,
                %owner,
                epoch,
                "resuming deployment at wave {first} of {}",
                resolved.waves.len()
            );
            self.run(&spec, &resolved, &mut d, content, seed).await?;
            Ok(Some(d))
        })
        .await
    }
}

/// What a stored deployment had rendered: resources whose artifacts are in
/// the revision's content (with the outputs saved on the deployment), and
/// those that failed or were skipped.
fn seed_from(d: &Deployment, content: &crate::model::RevisionContent) -> Rendered {
    let mut seed = Rendered::default();
    for r in &d.resources {
        if let Some(artifacts) = content.artifacts.get(&r.name) {
            seed.outputs.insert(
                r.name.clone(),
                RenderOutput {
                    artifacts: artifacts.clone(),
                    outputs: r
                        .outputs
                        .iter()
                        .map(|(k, v)| (k.clone(), crate::engine::Reach::from_json(v.clone())))
                        .collect(),
                },
            );
        } else if matches!(r.status, ResourceStatus::Failed | ResourceStatus::Skipped) {
            let why = r.error.clone().unwrap_or_default();
            seed.problems.insert(r.name.clone(), (r.status, why));
        }
    }
    seed
}
