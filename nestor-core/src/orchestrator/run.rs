//! Running a revision: record it under a lease (apply, start), render its
//! waves, commit through the executor, observe, and record the outcome;
//! every state change a conditional write with its event.

use super::*;

/// A deployment recorded by [`Orchestrator::start`], to be finished by
/// [`Orchestrator::finish`].
pub struct Started {
    /// The recorded deployment (`pending`), or for an idempotent repeat the
    /// one the first request created.
    pub deployment: Deployment,
    /// What is left to do; `None` for an idempotent repeat.
    pub(super) run: Option<Box<Run>>,
}

impl Started {
    /// Whether this call recorded a new revision (false: an idempotent
    /// repeat of an earlier request).
    pub fn is_new(&self) -> bool {
        self.run.is_some()
    }
}

/// The resolved request a started deployment still has to run, and the
/// lease under which it runs.
pub(super) struct Run {
    pub(super) spec: Spec,
    pub(super) resolved: Resolved,
    pub(super) content: RevisionContent,
    pub(super) lease: Lease,
}

/// The outcome of rendering every wave (or, when resuming, of the waves
/// rendered before).
#[derive(Default)]
pub(super) struct Rendered {
    pub(super) outputs: BTreeMap<String, RenderOutput>,
    /// Resource → why it failed, was skipped or cancelled.
    pub(super) problems: BTreeMap<String, (ResourceStatus, String)>,
    /// Wirings a consumer cannot resolve (also among `problems`): a plan
    /// or an apply refuses the whole request with these.
    pub(super) wiring: Vec<FieldError>,
    /// Resources the direct executor applied in this revision.
    pub(super) applied: BTreeSet<String>,
    /// Sensitive outputs of applied direct resources by the Secret key
    /// standing for them, for the direct executor only (never recorded).
    pub(super) secrets: crate::executor::RunSecrets,
}

/// Why one resource did not render.
pub(super) enum RenderFailure {
    /// Its inputs wire in outputs it cannot resolve.
    Wiring(Vec<FieldError>),
    /// Anything else.
    Other(Error),
}

/// What [`Orchestrator::record`] did.
pub(super) enum Recorded {
    /// A new revision, with the lease to run it.
    New(Deployment, Lease),
    /// An idempotent repeat: the deployment the first request created.
    Existing(Deployment),
}

impl Rendered {
    /// Marks every resource of `names` not rendered (and not already
    /// failed or skipped) as cancelled.
    pub(super) fn cancel_unrendered<'a>(&mut self, names: impl Iterator<Item = &'a String>) {
        for name in names.filter(|n| !self.outputs.contains_key(*n)) {
            self.problems
                .entry(name.clone())
                .or_insert((ResourceStatus::Cancelled, "deployment cancelled".into()));
        }
    }
}

impl Orchestrator {
    /// Applies a request: records revision n+1, renders wave by wave, commits
    /// through the executor, and returns the finished deployment. With an
    /// idempotency key, the same key and request return the deployment the
    /// first call created and apply nothing; another request is a conflict.
    pub async fn apply(
        &self,
        request: &DeploymentRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Deployment> {
        if request.dry_run {
            return Ok(self.plan(request).await?.deployment);
        }
        let started = self.start(request, idempotency_key).await?;
        self.finish(started).await
    }

    /// The first half of [`Orchestrator::apply`]: validates the request,
    /// records revision n+1 (`pending`) and appends `deployment.started`,
    /// so a server can answer with the recorded deployment at once and run
    /// [`Orchestrator::finish`] in the background. Every request error
    /// surfaces here, before anything is recorded.
    pub async fn start(
        &self,
        request: &DeploymentRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Started> {
        let spec = self.spec(request).await?;
        let resolved = self.resolve(&spec).await?;
        self.check_wiring(&spec, &resolved).await?;
        self.check_secrets(&spec, &resolved)?;
        let warnings = self.check_policies(&spec, &resolved).await?;
        let request_hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(
                serde_json::to_vec(request).map_err(|e| Error::internal(e.to_string()))?,
            ))
        };
        let content = Self::content(&resolved);
        // Keys are the team's own: another team using the same key neither
        // sees nor blocks this one's deployment (issue 11).
        let scoped_key = idempotency_key.map(|k| format!("{}/{k}", request.team));
        let recorded = self
            .record(
                &spec.key,
                &content,
                scoped_key.as_deref().map(|k| (k, request_hash.as_str())),
                |revision| {
                    let mut d = self.draft(&spec, &resolved, revision);
                    d.policy_warnings = warnings.clone();
                    d
                },
            )
            .await?;
        Ok(match recorded {
            Recorded::New(deployment, lease) => Started {
                deployment,
                run: Some(Box::new(Run {
                    spec,
                    resolved,
                    content,
                    lease,
                })),
            },
            Recorded::Existing(deployment) => Started {
                deployment,
                run: None,
            },
        })
    }

    /// Records revision n+1 of `key` (the deployment built by `draft(n)`)
    /// under a fresh lease and appends `deployment.started`. The lease is
    /// claimed before the revision is written, so no other replica can take
    /// a just-recorded revision for an abandoned one. Retries when another
    /// writer took revision n.
    pub(super) async fn record(
        &self,
        key: &DeploymentKey,
        content: &RevisionContent,
        idempotency: Option<(&str, &str)>,
        draft: impl Fn(u64) -> Deployment,
    ) -> Result<Recorded> {
        let mut floor = 0;
        for attempt in 0..16u64 {
            let revision = self.next_revision(key).await?.max(floor);
            let d = draft(revision);
            let Some(lease) = self.claim(&d.id).await? else {
                // Someone is recording this very revision right now.
                floor = revision + 1;
                continue;
            };
            match self
                .store
                .create_deployment_within(&d, content, idempotency, &self.quotas)
                .await
            {
                Ok(CreateOutcome::Created) => {
                    self.emit(EventType::DeploymentStarted, &d).await?;
                    return Ok(Recorded::New(d, lease));
                }
                Ok(CreateOutcome::Existing(existing)) => {
                    self.store.release_lease(&lease).await?;
                    return Ok(Recorded::Existing(*existing));
                }
                // Another apply of the same deployment took this revision number.
                Err(Error::Conflict { .. })
                    if idempotency.is_none()
                        || self.store.get_deployment(&d.id).await?.is_some() =>
                {
                    self.store.release_lease(&lease).await?;
                    floor = revision + 1;
                    tokio::time::sleep(Duration::from_millis(attempt * 5)).await;
                }
                Err(e) => {
                    self.store.release_lease(&lease).await?;
                    return Err(e);
                }
            }
        }
        Err(Error::Conflict {
            message: format!("{key} is being applied concurrently; try again"),
        })
    }

    /// The second half of [`Orchestrator::apply`]: renders, commits and
    /// records a started deployment; an idempotent repeat returns the
    /// deployment it names as stored.
    pub async fn finish(&self, started: Started) -> Result<Deployment> {
        let Started {
            mut deployment,
            run,
        } = started;
        match run {
            Some(run) => {
                let Run {
                    spec,
                    resolved,
                    content,
                    lease,
                } = *run;
                let seed = Rendered::default();
                self.leased(
                    lease,
                    self.run(&spec, &resolved, &mut deployment, content, seed),
                )
                .await?;
                Ok(deployment)
            }
            None => self.get(&deployment.id).await,
        }
    }

    /// Renders, commits and records one revision that is already stored,
    /// starting from what `seed` says was rendered before (resuming).
    pub(super) async fn run(
        &self,
        spec: &Spec,
        resolved: &Resolved,
        d: &mut Deployment,
        mut content: RevisionContent,
        seed: Rendered,
    ) -> Result<()> {
        if d.status == DeploymentStatus::Pending {
            d.status = DeploymentStatus::Planning;
            self.save(d).await?;
        }
        let rendered = self
            .render_waves(spec, resolved, d, Some(&mut content), seed, false)
            .await?;
        let artifacts = Self::artifacts_of(&rendered);
        if d.status == DeploymentStatus::Cancelled {
            Self::finish_statuses(d, &rendered, false);
            content.artifacts = artifacts;
            self.store.save_revision_content(&d.id, &content).await?;
            self.save(d).await?;
            return self.emit(EventType::DeploymentFailed, d).await;
        }
        d.status = DeploymentStatus::Applying;
        self.save(d).await?;
        let target = ApplyTarget {
            key: spec.key.clone(),
            revision: d.revision,
            deployment_id: d.id.clone(),
        };
        // Resources a tool ran directly are done; the rest go to GitOps.
        let gitops = self.gitops_artifacts(d, &artifacts);
        if !self.needs_gitops(d, &gitops).await? {
            // Every resource ran through the direct executor: no commit.
            Self::finish_statuses(d, &rendered, true);
            content.artifacts = artifacts;
            self.store.save_revision_content(&d.id, &content).await?;
            return self.save_final(d).await;
        }
        let applied = self.executor.apply(&target, &gitops).await;
        match applied {
            Ok(receipt) => {
                for r in &mut d.resources {
                    if let Some(paths) = receipt.paths.get(&r.name) {
                        r.artifacts = paths.clone();
                    }
                }
                d.commit = receipt.commit;
                d.unchanged = receipt.unchanged;
                Self::finish_statuses(d, &rendered, true);
                if d.status == DeploymentStatus::Succeeded {
                    self.after_commit(d, &gitops).await?;
                }
            }
            Err(e) => {
                Self::finish_statuses(d, &rendered, false);
                for r in d.resources.iter_mut().filter(|r| {
                    rendered.outputs.contains_key(&r.name) && !rendered.applied.contains(&r.name)
                }) {
                    r.status = ResourceStatus::Failed;
                    r.error = Some(format!("executor failed: {e}"));
                }
                d.status = DeploymentStatus::Failed;
                d.error = Some(Self::causes(d));
            }
        }
        content.artifacts = artifacts;
        self.store.save_revision_content(&d.id, &content).await?;
        self.save_final(d).await
    }

    /// Records a finished deployment and appends `deployment.completed` or
    /// `deployment.failed`.
    pub(super) async fn save_final(&self, d: &mut Deployment) -> Result<()> {
        self.save(d).await?;
        let kind = if d.status == DeploymentStatus::Succeeded {
            EventType::DeploymentCompleted
        } else {
            EventType::DeploymentFailed
        };
        self.emit(kind, d).await
    }

    /// Sets final resource statuses and the deployment's status and error.
    pub(super) fn finish_statuses(d: &mut Deployment, rendered: &Rendered, committed: bool) {
        for r in &mut d.resources {
            if let Some((status, why)) = rendered.problems.get(&r.name) {
                r.status = *status;
                r.error = Some(why.clone());
            } else if let Some(out) = rendered.outputs.get(&r.name) {
                r.outputs = stored_outputs(out);
                r.status = if committed || rendered.applied.contains(&r.name) {
                    ResourceStatus::Applied
                } else {
                    ResourceStatus::Rendering
                };
            }
        }
        if d.status == DeploymentStatus::Cancelled {
            d.error = Some("cancelled".into());
            return;
        }
        if rendered.problems.is_empty() {
            d.status = if committed {
                DeploymentStatus::Succeeded
            } else {
                d.status
            };
            d.error = None;
        } else {
            d.status = if committed {
                DeploymentStatus::Failed
            } else {
                d.status
            };
            d.error = Some(Self::causes(d));
        }
    }

    pub(super) fn causes(d: &Deployment) -> String {
        d.resources
            .iter()
            .filter(|r| r.status == ResourceStatus::Failed)
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.name)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether someone cancelled `d` in the store; adopts the stored generation.
    pub(super) async fn cancelled(&self, d: &mut Deployment) -> Result<bool> {
        let stored = self.get(&d.id).await?;
        if stored.status == DeploymentStatus::Cancelled {
            d.status = DeploymentStatus::Cancelled;
            d.generation = stored.generation;
            return Ok(true);
        }
        Ok(false)
    }

    /// Saves `d` conditionally. A concurrent cancel wins: its status is
    /// adopted and the save retried with our resource states. Any other
    /// concurrent write to an unfinished deployment can only come from
    /// another runner (this one lost its lease while paused): the save
    /// fails rather than overwrite that runner's progress.
    pub(super) async fn save(&self, d: &mut Deployment) -> Result<()> {
        for _ in 0..8 {
            d.updated_at = self.clock.now();
            match self.store.update_deployment(d, d.generation).await {
                Ok(()) => {
                    d.generation += 1;
                    return Ok(());
                }
                Err(Error::Conflict { .. }) => {
                    let stored = self.get(&d.id).await?;
                    if stored.status == DeploymentStatus::Cancelled {
                        if !d.status.is_final() {
                            d.status = DeploymentStatus::Cancelled;
                        }
                    } else if !stored.status.is_final() || !d.status.is_final() {
                        return Err(Error::Conflict {
                            message: format!("deployment {} is being run by another replica", d.id),
                        });
                    }
                    d.generation = stored.generation;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            message: format!("deployment {} keeps changing concurrently", d.id),
        })
    }

    pub(super) async fn emit(&self, event_type: EventType, d: &Deployment) -> Result<()> {
        self.store
            .append(NewEvent {
                event_type,
                source: "orchestrator".into(),
                subject: format!("{}@{}", d.key(), d.revision),
                timestamp: self.clock.now(),
                data: json!(d),
            })
            .await?;
        Ok(())
    }
}

pub(super) fn error_text(e: &Error) -> String {
    match e {
        Error::Validation { errors } => errors
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("; "),
        other => format!("[{}] {other}", other.code()),
    }
}
