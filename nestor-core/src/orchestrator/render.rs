//! Rendering waves: each wave's resources through their engines in
//! parallel, templates over the outputs of the waves before, failures
//! skipping dependents, and wirings the consumer cannot resolve refused.

use super::*;

impl Orchestrator {
    /// Renders every wave in order, each wave's resources in parallel. A
    /// failed resource skips its dependents; independent ones carry on.
    /// Resources `seed` already rendered (or failed) are not rendered again,
    /// so a resumed deployment starts at the first wave not yet done.
    /// With `persist` (the revision's content), statuses, outputs and
    /// artifacts are saved after each wave and a cancel seen in the store
    /// stops before the next wave.
    ///
    /// Resources the direct executor runs are applied as soon as their
    /// wave is rendered (with `persist`), and their real outputs are what
    /// the next wave sees; a plan (`read_direct`) reads the outputs of
    /// their last apply instead.
    pub(super) async fn render_waves(
        &self,
        spec: &Spec,
        resolved: &Resolved,
        d: &mut Deployment,
        mut persist: Option<&mut RevisionContent>,
        seed: Rendered,
        read_direct: bool,
    ) -> Result<Rendered> {
        let mut rendered = seed;
        if persist.is_some() {
            self.refresh_applied(d, &mut rendered).await?;
        }
        let mut ctx = TemplateContext {
            params: spec.params.clone(),
            resources: rendered
                .outputs
                .iter()
                .map(|(name, out)| {
                    let outputs = template_outputs(name, out);
                    (name.clone(), ResourceOutputs { outputs })
                })
                .collect(),
            team: spec.key.team.clone(),
            environment: spec.key.environment.clone(),
            deployment: spec.key.name.clone(),
            budget: TemplateBudget::new(self.template_limits),
        };
        let mut waves_run = 0;
        for (index, wave) in resolved.waves.iter().enumerate() {
            let runnable: Vec<&String> = wave
                .iter()
                .filter(|n| {
                    !rendered.problems.contains_key(*n) && !rendered.outputs.contains_key(*n)
                })
                .collect();
            // A resumed run may have rendered a direct resource, not applied it.
            let unapplied = wave.iter().any(|n| {
                persist.is_some()
                    && self.is_direct(&spec.key, resolved, n)
                    && !rendered.applied.contains(n)
                    && !rendered.problems.contains_key(n)
            });
            if runnable.is_empty() && !unapplied {
                continue;
            }
            if waves_run > 0 && !self.wave_delay.is_zero() && persist.is_some() {
                tokio::time::sleep(self.wave_delay).await;
            }
            waves_run += 1;
            if persist.is_some() && self.cancelled(d).await? {
                rendered.cancel_unrendered(resolved.waves.iter().flatten());
                return Ok(rendered);
            }
            if persist.is_some() {
                tracing::debug!(deployment = %d.id, wave = index + 1, "rendering wave");
                for name in &runnable {
                    if let Some(r) = d.resource_mut(name) {
                        r.status = ResourceStatus::Rendering;
                    }
                }
                self.save(d).await?;
                self.emit(EventType::DeploymentUpdated, d).await?;
            }
            let wave_number = index as u32 + 1;
            let jobs = runnable.iter().map(|name| {
                let pinned = resolved.get(name).expect("wave names are resources");
                self.render_one(pinned, &ctx, d.revision, wave_number, resolved, &rendered)
            });
            let results = join_all(jobs).await;
            if persist.is_none() && ctx.budget.is_exhausted() {
                // A plan past its template budget is refused as a whole.
                return Err(Error::invalid("", ctx.budget.exhausted_message()));
            }
            for (name, result) in runnable.into_iter().zip(results) {
                match result {
                    Ok(out) => {
                        ctx.resources.insert(
                            name.clone(),
                            ResourceOutputs {
                                outputs: template_outputs(name, &out),
                            },
                        );
                        if let Some(r) = d.resource_mut(name) {
                            r.outputs = stored_outputs(&out);
                        }
                        rendered.outputs.insert(name.clone(), out);
                    }
                    Err(failure) => {
                        let why = match failure {
                            RenderFailure::Other(e) => error_text(&e),
                            RenderFailure::Wiring(errors) => {
                                let why = error_text(&Error::Validation {
                                    errors: errors.clone(),
                                });
                                rendered.wiring.extend(errors);
                                why
                            }
                        };
                        rendered
                            .problems
                            .insert(name.clone(), (ResourceStatus::Failed, why));
                        for dependent in resolved.graph.dependents_of(name) {
                            rendered.problems.entry(dependent).or_insert((
                                ResourceStatus::Skipped,
                                format!("skipped: {name} failed"),
                            ));
                        }
                    }
                }
            }
            if let Some(content) = persist.as_deref_mut() {
                for (name, (status, why)) in &rendered.problems {
                    if let Some(r) = d.resource_mut(name) {
                        r.status = *status;
                        r.error = Some(why.clone());
                    }
                }
                // Outputs first, then artifacts: a resource counts as
                // rendered on resume only once its artifacts are stored.
                self.save(d).await?;
                content.artifacts = Self::artifacts_of(&rendered);
                self.store.save_revision_content(&d.id, content).await?;
                self.emit(EventType::DeploymentUpdated, d).await?;
            }
            let direct: Vec<String> = wave
                .iter()
                .filter(|n| {
                    self.is_direct(&spec.key, resolved, n)
                        && rendered.outputs.contains_key(*n)
                        && !rendered.applied.contains(*n)
                        && !rendered.problems.contains_key(*n)
                })
                .cloned()
                .collect();
            if direct.is_empty() {
                continue;
            }
            if persist.is_some() {
                self.apply_direct_wave(d, &direct, resolved, &mut rendered, &mut ctx)
                    .await;
                for (name, (status, why)) in &rendered.problems {
                    if let Some(r) = d.resource_mut(name) {
                        r.status = *status;
                        r.error = Some(why.clone());
                    }
                }
                self.save(d).await?;
                self.emit(EventType::DeploymentUpdated, d).await?;
            } else if read_direct {
                self.plan_outputs(d, &direct, &mut rendered, &mut ctx)
                    .await?;
            }
        }
        Ok(rendered)
    }

    /// Renders one resource: its templates over the outputs of the waves
    /// before, the references among them typed, the context with its wave
    /// and names; a reference its engine refuses is a wiring failure.
    pub(super) async fn render_one(
        &self,
        pinned: &PinnedResource,
        ctx: &TemplateContext,
        revision: u64,
        wave: u32,
        resolved: &Resolved,
        rendered: &Rendered,
    ) -> Result<RenderOutput, RenderFailure> {
        let def = &pinned.definition.definition;
        let name = &pinned.resource.name;
        let mut inputs = render_inputs(&pinned.resource, def, ctx).map_err(RenderFailure::Other)?;
        let producers: BTreeMap<&str, Producer<'_>> = rendered
            .outputs
            .iter()
            .filter_map(|(producer, output)| {
                let p = resolved.get(producer)?;
                Some((
                    producer.as_str(),
                    Producer {
                        engine: &p.engine,
                        definition: &p.definition.definition,
                        output,
                    },
                ))
            })
            .collect();
        let mut references = wiring::extract(name, &pinned.engine, &mut inputs, &producers)
            .map_err(RenderFailure::Wiring)?;
        let context = RenderContext::for_resource(
            &ctx.team,
            &ctx.environment,
            &ctx.deployment,
            name,
            revision,
            wave,
        );
        let (secrets, external) = secrets::secret_references(def, &mut inputs, &context);
        references.extend(secrets);
        let engine = self.engines.engine(&pinned.engine).ok_or_else(|| {
            RenderFailure::Other(Error::EngineNotFound {
                name: pinned.engine.clone(),
            })
        })?;
        let request = RenderRequest {
            resource: name.clone(),
            definition: def.clone(),
            inputs,
            references,
            engine_config: def
                .spec
                .engine_configs
                .get(&pinned.engine)
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            context,
        };
        match engine.render(&request).await {
            Ok(mut out) => {
                out.artifacts.extend(external);
                // A sensitive output's literal never reaches a record or a
                // template: it crosses resources only as a reference.
                for output in def.spec.outputs.iter().filter(|o| o.sensitive) {
                    if let Some(reach) = out.outputs.get_mut(&output.name) {
                        crate::redact::redact_reach(reach);
                    }
                }
                Ok(out)
            }
            Err(Error::Validation { errors }) => {
                let (refused, errors) =
                    wiring::explain_refusals(name, &pinned.engine, &request.references, errors);
                Err(if refused {
                    RenderFailure::Wiring(errors)
                } else {
                    RenderFailure::Other(Error::Validation { errors })
                })
            }
            Err(e) => Err(RenderFailure::Other(e)),
        }
    }

    /// Refuses a request one of whose resources wires in an output its
    /// engine cannot resolve, before anything is recorded: the waves are
    /// rendered in memory (only when some output crosses resources) and
    /// every refusal is returned as `VALIDATION_FAILED`.
    pub(super) async fn check_wiring(&self, spec: &Spec, resolved: &Resolved) -> Result<()> {
        let wired = spec.resources.iter().any(|r| {
            r.config
                .values()
                .any(|v| !crate::template::references(v).outputs.is_empty())
        });
        if !wired {
            return Ok(());
        }
        let mut draft = self.draft(spec, resolved, 0);
        let rendered = self
            .render_waves(spec, resolved, &mut draft, None, Rendered::default(), false)
            .await?;
        if rendered.wiring.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation {
                errors: rendered.wiring,
            })
        }
    }
}
