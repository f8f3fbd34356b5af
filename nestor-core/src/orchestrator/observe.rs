//! After the commit: what the deployment says of the cluster.
//!
//! Without an observer, a committed deployment is `succeeded` with
//! `cluster.state: not_observed` and a message saying plainly that it was
//! committed and that nothing looked at the cluster. With one (Argo CD),
//! it stays `applying` while the observer is asked, on a schedule that
//! backs off, how the cluster is doing with the commit:
//! - the cluster must report a revision that holds the commit (the commit
//!   or a later one: `Executor::contains`) and the live state synced;
//! - each resource's health is the worst of its objects' (objects are read
//!   from its manifest files, `manifests::objects`), with the message of
//!   the object that decided it;
//! - every resource healthy → `succeeded`; an object degraded or a failed
//!   sync at the commit → `failed` naming the resource and the message;
//!   not healthy when the timeout (counted from the commit, stored in
//!   `cluster.since`, so a replica taking over keeps the same deadline)
//!   runs out, or the observer unreachable too many times in a row →
//!   `failed` with what was last seen.
//!
//! Each change of what is seen is saved and appended as an event; the run
//! holds its lease meanwhile, so a replica that dies while waiting is taken
//! over like any other run (the executor finds its commit, and observing
//! starts again).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Orchestrator;
use crate::error::Result;
use crate::manifests::{objects, ObjectRef};
use crate::model::Artifact;
use crate::model::{
    ClusterState, ClusterStatus, Deployment, DeploymentStatus, EventType, Health, ResourceHealth,
    ResourceStatus,
};
use crate::observer::{Observation, ObserveError, ObserveTarget, Observer};

/// What one look decided.
enum Verdict {
    /// Keep looking; whether the cluster has synced the commit yet.
    Waiting { at_commit: bool },
    /// Over: the state, and per failing resource its message.
    Done(ClusterState),
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

impl Orchestrator {
    /// Observes the cluster after each commit with `observer` (Argo CD):
    /// a deployment stays `applying` until the cluster reports it synced
    /// and healthy. Without one, deployments say they are committed and
    /// not observed.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Called once a deployment's files are committed and its resources all
    /// rendered (`d.status` is `succeeded`): records that nothing observes
    /// the cluster, or waits for the observer's verdict.
    pub(super) async fn after_commit(
        &self,
        d: &mut Deployment,
        artifacts: &BTreeMap<String, Vec<Artifact>>,
    ) -> Result<()> {
        let commit = d.commit.clone().unwrap_or_default();
        let Some(observer) = self.observer.clone() else {
            let what = if d.unchanged {
                format!(
                    "no changes: the files were already committed at {}",
                    short(&commit)
                )
            } else {
                format!("committed at {}", short(&commit))
            };
            d.cluster = Some(ClusterStatus {
                observer: None,
                state: ClusterState::NotObserved,
                message: format!(
                    "{what}; nothing observes the cluster (no `argocd:` in the configuration), so whether it took effect is not known"
                ),
                since: self.clock.now(),
                revision: None,
            });
            return Ok(());
        };
        self.observe(observer.as_ref(), d, artifacts, &commit).await
    }

    async fn observe(
        &self,
        observer: &dyn Observer,
        d: &mut Deployment,
        artifacts: &BTreeMap<String, Vec<Artifact>>,
        commit: &str,
    ) -> Result<()> {
        let schedule = observer.schedule();
        let name = observer.name().to_string();
        let now = self.clock.now();
        let since = match &d.cluster {
            Some(c) if c.state == ClusterState::Waiting && c.observer.as_deref() == Some(&name) => {
                c.since
            }
            _ => now,
        };
        let elapsed = Duration::from_secs(u64::try_from(now - since).unwrap_or(0));
        let deadline = Instant::now() + schedule.timeout.saturating_sub(elapsed);
        let by_resource: Vec<(String, Vec<ObjectRef>)> = artifacts
            .iter()
            .map(|(resource, files)| (resource.clone(), objects(files)))
            .collect();
        d.status = DeploymentStatus::Applying;
        d.cluster = Some(ClusterStatus {
            observer: Some(name.clone()),
            state: ClusterState::Waiting,
            message: format!(
                "committed at {}; waiting for {name} to sync it and every object to be healthy",
                short(commit)
            ),
            since,
            revision: None,
        });
        self.save(d).await?;
        self.emit(EventType::DeploymentUpdated, d).await?;

        let mut target = ObserveTarget {
            key: d.key(),
            deployment_id: d.id.clone(),
            commit: commit.to_string(),
            objects: by_resource.iter().flat_map(|(_, o)| o.clone()).collect(),
            attempt: 0,
        };
        let mut pause = schedule.poll;
        let mut errors = 0;
        let mut seen_commit = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let before = (d.cluster.clone(), health_of(d));
            let look = match tokio::time::timeout(remaining, observer.observe(&target)).await {
                Ok(look) => look,
                Err(_) => Err(ObserveError::Transient(format!(
                    "{name} did not answer within the timeout"
                ))),
            };
            target.attempt += 1;
            let verdict = match look {
                Ok(seen) => {
                    errors = 0;
                    self.judge(d, &by_resource, &seen, commit, &name).await?
                }
                Err(ObserveError::Transient(why)) => {
                    errors += 1;
                    if errors >= schedule.max_errors {
                        fail_unreachable(d, &name, &format!("{why} ({errors} attempts in a row)"))
                    } else {
                        set_message(
                            d,
                            format!("could not ask {name} ({why}); trying again (attempt {errors} of {})", schedule.max_errors),
                        );
                        Verdict::Waiting {
                            at_commit: seen_commit,
                        }
                    }
                }
                Err(ObserveError::Permanent(why)) => fail_unreachable(d, &name, &why),
            };
            match verdict {
                Verdict::Done(state) => return self.conclude(d, state),
                Verdict::Waiting { at_commit } => seen_commit = at_commit,
            }
            if Instant::now() >= deadline {
                let timeout = humanize(schedule.timeout);
                timed_out(d, &name, commit, &timeout, seen_commit);
                return self.conclude(d, ClusterState::TimedOut);
            }
            if (d.cluster.clone(), health_of(d)) != before {
                pause = schedule.poll;
                self.save(d).await?;
                self.emit(EventType::DeploymentUpdated, d).await?;
            }
            let wait = pause.min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(wait).await;
            pause = (pause * 2).min(schedule.max_poll);
            if self.cancelled(d).await? {
                set_state(
                    d,
                    ClusterState::Cancelled,
                    format!(
                        "cancelled while waiting for {name}; the commit {} stays in the repository",
                        short(commit)
                    ),
                );
                return Ok(());
            }
        }
    }

    /// Sets the deployment's final status from `state` (saving is left to
    /// the caller, with the final event).
    fn conclude(&self, d: &mut Deployment, state: ClusterState) -> Result<()> {
        if state == ClusterState::Healthy {
            d.status = DeploymentStatus::Succeeded;
            d.error = None;
        } else {
            d.status = DeploymentStatus::Failed;
            let message = d
                .cluster
                .as_ref()
                .map(|c| c.message.clone())
                .unwrap_or_default();
            d.error = Some(message);
        }
        Ok(())
    }

    /// Updates `d` from one observation and says whether it is over.
    async fn judge(
        &self,
        d: &mut Deployment,
        by_resource: &[(String, Vec<ObjectRef>)],
        seen: &Observation,
        commit: &str,
        name: &str,
    ) -> Result<Verdict> {
        let at_commit = match &seen.revision {
            Some(rev) => self.executor.contains(rev, commit).await?,
            None => false,
        };
        if let Some(c) = d.cluster.as_mut() {
            c.revision = seen.revision.clone();
        }
        for (resource, objects) in by_resource {
            let health = resource_health(objects, seen);
            if let Some(r) = d.resource_mut(resource) {
                r.health = health;
            }
        }
        if let Some(failure) = &seen.sync_failure {
            let ours = match &failure.revision {
                Some(rev) => self.executor.contains(rev, commit).await?,
                None => at_commit,
            };
            if ours {
                let mut causes = Vec::new();
                for (object, message) in &failure.objects {
                    if let Some(resource) = owner(by_resource, object) {
                        let text = format!("{}: {message}", object.display());
                        mark_failed(d, &resource, Health::Degraded, &text);
                        causes.push(format!("{resource}: {text}"));
                    }
                }
                let detail = if causes.is_empty() {
                    failure.message.clone()
                } else {
                    format!("{} ({})", failure.message, causes.join("; "))
                };
                set_state(
                    d,
                    ClusterState::SyncFailed,
                    format!("{name} could not sync commit {}: {detail}", short(commit)),
                );
                return Ok(Verdict::Done(ClusterState::SyncFailed));
            }
        }
        if !at_commit {
            let reported = seen.revision.as_deref().map(short).unwrap_or("none yet");
            let mut message = format!(
                "waiting for {name} to sync commit {} (it reports revision {reported})",
                short(commit)
            );
            if let Some(note) = &seen.note {
                message.push_str(&format!("; {note}"));
            }
            set_message(d, message);
            return Ok(Verdict::Waiting { at_commit: false });
        }
        let degraded: Vec<(String, String)> = d
            .resources
            .iter()
            .filter_map(|r| match &r.health {
                Some(h) if h.status == Health::Degraded => {
                    Some((r.name.clone(), h.message.clone().unwrap_or_default()))
                }
                _ => None,
            })
            .collect();
        if !degraded.is_empty() {
            let mut causes = Vec::new();
            for (resource, message) in &degraded {
                mark_failed(d, resource, Health::Degraded, message);
                causes.push(format!("{resource} is Degraded: {message}"));
            }
            set_state(d, ClusterState::Degraded, causes.join("; "));
            return Ok(Verdict::Done(ClusterState::Degraded));
        }
        let waiting = not_healthy(d);
        if seen.synced && waiting.is_empty() {
            set_state(
                d,
                ClusterState::Healthy,
                format!(
                    "{name} synced commit {} and every object is healthy",
                    short(commit)
                ),
            );
            return Ok(Verdict::Done(ClusterState::Healthy));
        }
        let mut message = if seen.synced {
            format!(
                "synced at {}; waiting for {}",
                short(commit),
                waiting.join(", ")
            )
        } else {
            format!("{name} is syncing commit {}", short(commit))
        };
        if let Some(note) = &seen.note {
            message.push_str(&format!("; {note}"));
        }
        set_message(d, message);
        Ok(Verdict::Waiting { at_commit: true })
    }
}

/// Which resource an observed object belongs to.
fn owner(by_resource: &[(String, Vec<ObjectRef>)], object: &ObjectRef) -> Option<String> {
    by_resource
        .iter()
        .find(|(_, objects)| objects.iter().any(|o| same_object(o, object)))
        .map(|(name, _)| name.clone())
}

/// A manifest's object and a reported one are the same when group, kind
/// and name agree, and the namespace too if the manifest names one (the
/// Application's destination applies otherwise).
fn same_object(manifest: &ObjectRef, reported: &ObjectRef) -> bool {
    manifest.group == reported.group
        && manifest.kind == reported.kind
        && manifest.name == reported.name
        && manifest.namespace.as_ref().is_none_or(|ns| {
            reported
                .namespace
                .as_deref()
                .is_none_or(|r| r.is_empty() || r == ns)
        })
}

/// The worst health of `objects` as `seen` reports them; an object the
/// cluster does not report is `Missing`. `None` for a resource with no
/// Kubernetes object.
fn resource_health(objects: &[ObjectRef], seen: &Observation) -> Option<ResourceHealth> {
    let mut worst: Option<ResourceHealth> = None;
    for object in objects {
        let (health, message) = match seen.objects.iter().find(|o| same_object(object, &o.object)) {
            Some(o) => (o.health, o.message.clone()),
            None => (
                Health::Missing,
                Some("not reported by the cluster yet".into()),
            ),
        };
        if worst
            .as_ref()
            .is_none_or(|w| health.severity() > w.status.severity())
        {
            let message = match message {
                Some(m) if !m.is_empty() => Some(format!("{}: {m}", object.display())),
                _ if health != Health::Healthy => {
                    Some(format!("{} is {health:?}", object.display()))
                }
                _ => None,
            };
            worst = Some(ResourceHealth {
                status: health,
                message,
            });
        }
    }
    worst
}

fn health_of(d: &Deployment) -> Vec<Option<ResourceHealth>> {
    d.resources.iter().map(|r| r.health.clone()).collect()
}

/// Resources not yet healthy, as `name (Health: message)`.
fn not_healthy(d: &Deployment) -> Vec<String> {
    d.resources
        .iter()
        .filter_map(|r| match &r.health {
            Some(h) if h.status != Health::Healthy => Some(match &h.message {
                Some(m) => format!("{} ({:?}: {m})", r.name, h.status),
                None => format!("{} ({:?})", r.name, h.status),
            }),
            _ => None,
        })
        .collect()
}

fn mark_failed(d: &mut Deployment, resource: &str, health: Health, message: &str) {
    if let Some(r) = d.resource_mut(resource) {
        r.status = ResourceStatus::Failed;
        r.error = Some(message.to_string());
        r.health = Some(ResourceHealth {
            status: health,
            message: Some(message.to_string()),
        });
    }
}

fn set_message(d: &mut Deployment, message: String) {
    if let Some(c) = d.cluster.as_mut() {
        c.message = message;
    }
}

fn set_state(d: &mut Deployment, state: ClusterState, message: String) {
    if let Some(c) = d.cluster.as_mut() {
        c.state = state;
        c.message = message;
    }
}

fn fail_unreachable(d: &mut Deployment, name: &str, why: &str) -> Verdict {
    set_state(
        d,
        ClusterState::Unreachable,
        format!("could not ask {name} how the deployment is doing: {why}"),
    );
    Verdict::Done(ClusterState::Unreachable)
}

fn timed_out(d: &mut Deployment, name: &str, commit: &str, timeout: &str, synced: bool) {
    let last = d
        .cluster
        .as_ref()
        .map(|c| c.message.clone())
        .unwrap_or_default();
    if !synced {
        let message = format!(
            "not healthy within {timeout}: {name} never synced commit {} ({last})",
            short(commit)
        );
        set_state(d, ClusterState::TimedOut, message);
        return;
    }
    let waiting = not_healthy(d);
    let late: Vec<(String, ResourceHealth)> = d
        .resources
        .iter()
        .filter_map(|r| match &r.health {
            Some(h) if h.status != Health::Healthy => Some((r.name.clone(), h.clone())),
            _ => None,
        })
        .collect();
    for (resource, h) in late {
        let text = match &h.message {
            Some(m) => format!("not healthy within {timeout}: {:?} ({m})", h.status),
            None => format!("not healthy within {timeout}: {:?}", h.status),
        };
        mark_failed(d, &resource, h.status, &text);
    }
    let message = if waiting.is_empty() {
        format!("not healthy within {timeout}: {last}")
    } else {
        format!("not healthy within {timeout}: {}", waiting.join(", "))
    };
    set_state(d, ClusterState::TimedOut, message);
}

fn humanize(d: Duration) -> String {
    if d.as_secs() >= 60 && d.as_secs().is_multiple_of(60) {
        format!("{}m", d.as_secs() / 60)
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
