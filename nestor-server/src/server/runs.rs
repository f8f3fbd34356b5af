//! Deployment runs in the background: the ones this server started, and
//! the ones it took over from replicas that stopped (issue 6, docs/src/operator/storage.md).
//!
//! [`Runs`] tracks every run so a graceful shutdown lets them finish (for a
//! bounded time) instead of dropping them half-way; a run still going when
//! the time is up is dropped, its lease lapses, and another replica — or
//! this one restarted — resumes it.
//!
//! The takeover scanner asks the orchestrator which deployments have an
//! expired lease and resumes each, every heartbeat interval (a third of the
//! lease time) and also right when the earliest live lease expires, so a
//! deployment is taken over as soon as its runner's lease lapses — within
//! the lease time of the runner's death; the store grants the lease to one replica, so each
//! abandoned deployment is resumed once. The first scan after start also
//! picks up unfinished deployments that have no lease at all (recorded
//! before leases existed), so a restarted single replica on SQLite finishes
//! what it was running when it stopped.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nestor_core::{Nestor, Orchestrator};
use tokio::sync::watch;

use super::metrics::Metrics;

/// Counts the deployment runs in flight.
#[derive(Clone)]
pub struct Runs {
    count: Arc<watch::Sender<usize>>,
}

impl Default for Runs {
    fn default() -> Self {
        Runs {
            count: Arc::new(watch::channel(0).0),
        }
    }
}

impl Runs {
    /// Runs `work` in the background, counted until it ends.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.count.send_modify(|n| *n += 1);
        let count = self.count.clone();
        tokio::spawn(async move {
            // Counted down even if `work` panics.
            struct Done(Arc<watch::Sender<usize>>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.send_modify(|n| *n = n.saturating_sub(1));
                }
            }
            let _done = Done(count);
            work.await;
        });
    }

    /// How many runs are in flight.
    pub fn in_flight(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until no run is in flight, for at most `limit`; returns how
    /// many were still running.
    pub async fn drain(&self, limit: Duration) -> usize {
        let mut rx = self.count.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
        self.in_flight()
    }
}

/// Scans wake this long after a lease's expiry (clocks and the store's
/// write are not instantaneous).
const EXPIRY_MARGIN: Duration = Duration::from_millis(20);

/// Scans are at least this far apart.
const MIN_WAIT: Duration = Duration::from_millis(50);

/// Starts the takeover scanner; it stops when `shutdown` turns true.
pub(super) fn start_takeover(
    nestor: Nestor,
    runs: Runs,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = nestor.orchestrator().lease_settings().heartbeat();
    // Deployments this replica is resuming now, so a slow resume is not
    // started twice by this replica (the store's claim stops the others).
    let resuming: Arc<Mutex<HashSet<String>>> = Arc::default();
    tokio::spawn(async move {
        let orchestrator = nestor.orchestrator();
        let mut first = true;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut wait = every;
            match orchestrator.scan(first).await {
                Ok(scan) => {
                    first = false;
                    for id in scan.orphans {
                        resume(orchestrator, &runs, &metrics, &resuming, id);
                    }
                    // Wake as a live lease lapses (if its runner renews it
                    // meanwhile, the next scan finds nothing to do).
                    if let Some(next) = scan.next_expiry {
                        wait = wait.min(next + EXPIRY_MARGIN).max(MIN_WAIT);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not look for abandoned deployments"),
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Checks every succeeded deployment for drift every `every`
/// (`deployments.drift_interval`) until shutdown; a drifted one becomes
/// `drifted` with a `deployment.drifted` event (see `Nestor::drift`).
pub(super) fn start_drift_checks(
    nestor: Nestor,
    every: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            match nestor.drift(None).await {
                Ok(reports) => {
                    for r in reports.iter().filter(|r| !r.resources.is_empty()) {
                        tracing::warn!(deployment = %r.deployment, resources = r.resources.len(), "drift found");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "drift check failed"),
            }
        }
    });
}

fn resume(
    orchestrator: &Orchestrator,
    runs: &Runs,
    metrics: &Arc<Metrics>,
    resuming: &Arc<Mutex<HashSet<String>>>,
    id: String,
) {
    let fresh = resuming
        .lock()
        .map(|mut set| set.insert(id.clone()))
        .unwrap_or(false);
    if !fresh {
        return;
    }
    let (orchestrator, resuming) = (orchestrator.clone(), resuming.clone());
    let metrics = metrics.clone();
    runs.spawn(async move {
        match orchestrator.resume(&id).await {
            Ok(Some(d)) => {
                tracing::info!(
                    deployment = %id,
                    status = d.status.as_str(),
                    "took over an abandoned deployment"
                );
                metrics.deployment_taken_over();
                metrics.deployment_finished(d.status.as_str());
            }
            Ok(None) => tracing::debug!(deployment = %id, "another replica took it over"),
            Err(e) => tracing::warn!(deployment = %id, error = %e, "resuming a deployment failed"),
        }
        if let Ok(mut set) = resuming.lock() {
            set.remove(&id);
        }
    });
}
