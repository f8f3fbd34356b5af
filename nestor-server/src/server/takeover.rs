//! Takes over deployments other replicas abandoned (issue 6, SPEC §10).
//!
//! Every heartbeat interval (a third of the lease time) the server asks
//! the orchestrator which deployments have an expired lease and resumes
//! each in the background; the store grants the lease to one replica, so
//! each abandoned deployment is resumed once. The first scan after start
//! also picks up unfinished deployments that have no lease at all (recorded
//! before leases existed), so a restarted single replica on SQLite finishes
//! what it was running when it stopped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use nestor_core::Orchestrator;
use tokio::sync::watch;

/// Starts the scanner; it stops when `shutdown` turns true.
pub(super) fn start(orchestrator: Orchestrator, mut shutdown: watch::Receiver<bool>) {
    let every = orchestrator.lease_settings().heartbeat();
    // Deployments this replica is resuming now, so a slow resume is not
    // started twice by this replica (the store's claim stops the others).
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            match orchestrator.orphans(first).await {
                Ok(ids) => {
                    first = false;
                    for id in ids {
                        resume(&orchestrator, &running, id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not look for abandoned deployments"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    });
}

fn resume(orchestrator: &Orchestrator, running: &Arc<Mutex<HashSet<String>>>, id: String) {
    let fresh = running
        .lock()
        .map(|mut set| set.insert(id.clone()))
        .unwrap_or(false);
    if !fresh {
        return;
    }
    let (orchestrator, running) = (orchestrator.clone(), running.clone());
    tokio::spawn(async move {
        match orchestrator.resume(&id).await {
            Ok(Some(d)) => tracing::info!(
                deployment = %id,
                status = d.status.as_str(),
                "took over an abandoned deployment"
            ),
            Ok(None) => tracing::debug!(deployment = %id, "another replica took it over"),
            Err(e) => tracing::warn!(deployment = %id, error = %e, "resuming a deployment failed"),
        }
        if let Ok(mut set) = running.lock() {
            set.remove(&id);
        }
    });
}
