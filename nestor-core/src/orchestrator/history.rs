//! A deployment's history: rollback to an earlier revision's content,
//! delete, and promotion of a revision's pinned resources to another
//! environment.

use super::*;

impl Orchestrator {
    /// Rolls `id`'s deployment back: a new revision whose content equals
    /// revision `to` (default: the one before `id`), committed as a new
    /// commit; `id` becomes `rolled_back`.
    pub async fn rollback(&self, id: &str, to: Option<u64>) -> Result<Deployment> {
        let current = self.get(id).await?;
        if !current.status.is_final() {
            return Err(Error::Conflict {
                message: format!(
                    "deployment {id} is still {}; cancel it first",
                    current.status.as_str()
                ),
            });
        }
        let target_rev = match to {
            Some(r) => r,
            None if current.revision > 1 => current.revision - 1,
            None => {
                return Err(Error::bad_request(format!(
                    "{id} is revision 1: there is nothing to roll back to"
                )))
            }
        };
        let revisions = self.store.revisions(&current.key()).await?;
        let target = revisions
            .iter()
            .find(|d| d.revision == target_rev)
            .ok_or_else(|| {
                Error::bad_request(format!("{} has no revision {target_rev}", current.key()))
            })?;
        let content = self
            .store
            .revision_content(&target.id)
            .await?
            .unwrap_or_default();
        let mut restored = self.restore(target, content, Some(target_rev)).await?;
        let mut old = current;
        old.status = DeploymentStatus::RolledBack;
        self.save(&mut old).await?;
        self.emit(EventType::DeploymentUpdated, &old).await?;
        restored.generation = self.get(&restored.id).await?.generation;
        Ok(restored)
    }

    /// Records and commits a new revision with exactly `content`'s files.
    pub(super) async fn restore(
        &self,
        template: &Deployment,
        content: RevisionContent,
        rollback_of: Option<u64>,
    ) -> Result<Deployment> {
        let key = template.key();
        let draft = |revision: u64| {
            let now = self.clock.now();
            let mut d = Deployment {
                id: format!("{}.{}.{}.r{revision}", key.team, key.environment, key.name),
                revision,
                status: DeploymentStatus::Applying,
                created_at: now,
                updated_at: now,
                error: None,
                commit: None,
                rollback_of,
                unchanged: false,
                cluster: None,
                generation: 0,
                ..template.clone()
            };
            d.resources
                .retain(|r| content.artifacts.contains_key(&r.name));
            for r in &mut d.resources {
                r.health = None;
            }
            d
        };
        let Recorded::New(mut d, lease) = self.record(&key, &content, None, draft).await? else {
            return Err(Error::internal("a restore has no idempotency key"));
        };
        self.leased(lease, self.commit_restored(&mut d, &content))
            .await?;
        Ok(d)
    }

    /// Commits a recorded restore (rollback, or removal of revision 1) and
    /// records the outcome. Resources a tool runs directly are applied
    /// with the restored configuration first, in wave order, and those
    /// the restore drops are destroyed; the rest is one GitOps commit.
    pub(super) async fn commit_restored(
        &self,
        d: &mut Deployment,
        content: &RevisionContent,
    ) -> Result<()> {
        let target = ApplyTarget {
            key: d.key(),
            revision: d.revision,
            deployment_id: d.id.clone(),
        };
        let direct = match self.restore_direct(d, content).await {
            Ok(receipts) => receipts,
            Err(e) => {
                d.status = DeploymentStatus::Failed;
                d.error = Some(format!("executor failed: {}", error_text(&e)));
                return self.save_final(d).await;
            }
        };
        let gitops = self.gitops_artifacts(d, &content.artifacts);
        let applied = if self.needs_gitops(d, &gitops).await? {
            self.executor.apply(&target, &gitops).await
        } else {
            Ok(crate::executor::ApplyReceipt::default())
        };
        let committed = applied.as_ref().is_ok_and(|r| r.commit.is_some());
        match applied {
            Ok(receipt) => {
                d.commit = receipt.commit;
                d.unchanged = receipt.unchanged;
                for r in &mut d.resources {
                    r.status = ResourceStatus::Applied;
                    r.error = None;
                    match direct.get(&r.name) {
                        Some(run) => {
                            r.artifacts = vec![run.workspace.clone()];
                            for (k, o) in run.outputs.iter().filter(|(_, o)| !o.sensitive) {
                                r.outputs.insert(k.clone(), json!({ "value": o.value }));
                            }
                        }
                        None => {
                            r.artifacts = receipt.paths.get(&r.name).cloned().unwrap_or_default()
                        }
                    }
                }
                d.status = DeploymentStatus::Succeeded;
                if committed {
                    self.after_commit(d, &gitops).await?;
                }
            }
            Err(e) => {
                d.status = DeploymentStatus::Failed;
                d.error = Some(format!("executor failed: {e}"));
            }
        }
        self.save_final(d).await
    }

    /// `DELETE /deployments/{id}`: cancels one in progress (no new wave
    /// starts); on a finished one rolls back to the previous revision, or
    /// for revision 1 removes its files.
    pub async fn delete(&self, id: &str) -> Result<Deployment> {
        let mut d = self.get(id).await?;
        for _ in 0..8 {
            if d.status.is_final() {
                break;
            }
            d.status = DeploymentStatus::Cancelled;
            d.updated_at = self.clock.now();
            match self.store.update_deployment(&d, d.generation).await {
                Ok(()) => {
                    d.generation += 1;
                    self.emit(EventType::DeploymentUpdated, &d).await?;
                    return Ok(d);
                }
                // The runner moved on meanwhile: cancel what it wrote.
                Err(Error::Conflict { .. }) => d = self.get(id).await?,
                Err(e) => return Err(e),
            }
        }
        if !d.status.is_final() {
            return Err(Error::Conflict {
                message: format!("deployment {id} keeps changing; try again"),
            });
        }
        if d.revision > 1 {
            return self.rollback(id, None).await;
        }
        let mut empty = d.clone();
        empty.resources.clear();
        let removed = self
            .restore(&empty, RevisionContent::default(), Some(0))
            .await?;
        d.status = DeploymentStatus::RolledBack;
        self.save(&mut d).await?;
        Ok(removed)
    }

    /// Deploys to `to` exactly the pinned versions, configs and params of
    /// the latest succeeded revision of `team/from/name`.
    pub async fn promote(
        &self,
        team: &str,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<Deployment> {
        let key = DeploymentKey {
            team: team.into(),
            environment: from.into(),
            name: name.into(),
        };
        let revisions = self.store.revisions(&key).await?;
        let source = revisions
            .iter()
            .rev()
            .find(|d| d.status == DeploymentStatus::Succeeded)
            .ok_or_else(|| Error::DeploymentNotFound {
                id: format!("{key} (no succeeded revision)"),
            })?;
        let content = self
            .store
            .revision_content(&source.id)
            .await?
            .unwrap_or_default();
        let resources = pinned_requests(&content);
        let spec = Spec {
            key: DeploymentKey {
                team: team.into(),
                environment: to.into(),
                name: name.into(),
            },
            composition: source.composition.clone(),
            params: source.params.clone(),
            resources,
            edges: content.edges.clone(),
            labels: source.labels.clone(),
            base: "resources",
        };
        if !is_valid_name(to) {
            return Err(Error::invalid(
                "to",
                format!("{to:?} is not a valid environment"),
            ));
        }
        check_spec_names(&spec)?;
        let resolved = self.resolve(&spec).await?;
        let content = Self::content(&resolved);
        let draft = |revision| self.draft(&spec, &resolved, revision);
        let Recorded::New(mut d, lease) = self.record(&spec.key, &content, None, draft).await?
        else {
            return Err(Error::internal("a promotion has no idempotency key"));
        };
        let seed = Rendered::default();
        self.leased(lease, self.run(&spec, &resolved, &mut d, content, seed))
            .await?;
        Ok(d)
    }
}

/// A revision's pinned resources as requests for exactly those versions,
/// engines and configs (promotion and resuming start from these).
pub(super) fn pinned_requests(content: &RevisionContent) -> Vec<CompositionResource> {
    content
        .resources
        .iter()
        .map(|r| CompositionResource {
            name: r.name.clone(),
            catalog_ref: CatalogRef {
                name: r.definition.clone(),
                version: VersionSpec::Exact(r.version.clone()),
            }
            .to_string(),
            engine: Some(r.engine.clone()),
            config: r.config.clone(),
            depends_on: vec![],
        })
        .collect()
}
