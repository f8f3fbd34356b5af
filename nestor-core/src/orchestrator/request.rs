//! The request understood: a deployment request checked, its composition
//! resolved and its parameters defaulted ([`Spec`]), the names it will take
//! checked, its resources resolved against the catalog, and the draft
//! deployment and revision content recorded from them.

use super::*;

/// What to deploy, after the request was understood: the resources with
/// their (template) configs, the parameters with defaults, the edges.
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub(super) key: DeploymentKey,
    pub(super) composition: Option<String>,
    pub(super) params: BTreeMap<String, serde_json::Value>,
    pub(super) resources: Vec<CompositionResource>,
    pub(super) edges: Vec<Edge>,
    pub(super) labels: BTreeMap<String, String>,
    /// Field path prefix for errors about resources.
    pub(super) base: &'static str,
}

impl Orchestrator {
    /// The request understood, with every name it will take outside Nestor
    /// checked (`naming::check_names`) before anything is resolved or rendered.
    pub(super) async fn spec(&self, request: &DeploymentRequest) -> Result<Spec> {
        let spec = self.parse_spec(request).await?;
        check_spec_names(&spec)?;
        Ok(spec)
    }

    pub(super) async fn parse_spec(&self, request: &DeploymentRequest) -> Result<Spec> {
        check_key_names(&[
            ("team", &request.team),
            ("environment", &request.environment),
            ("name", &request.name),
        ])?;
        let mut errors = Vec::new();
        let key = DeploymentKey {
            team: request.team.clone(),
            environment: request.environment.clone(),
            name: request.name.clone(),
        };
        match (&request.composition, request.resources.is_empty()) {
            (Some(_), false) => Err(Error::bad_request(
                "give either a composition with params, or resources, not both",
            )),
            (None, true) => Err(Error::bad_request(
                "nothing to deploy: give a composition or resources",
            )),
            (Some(name), true) => {
                let spec = VersionSpec::parse(request.composition_version.as_deref().unwrap_or(""))
                    .map_err(|e| Error::invalid("composition_version", e))?;
                let published = self
                    .store
                    .resolve_composition(&request.team, name, &spec)
                    .await?;
                let c = published.composition;
                let params = resolve_params(&c.spec.parameters, &request.params)?;
                Ok(Spec {
                    key,
                    composition: Some(c.subject()),
                    params,
                    resources: c.spec.resources,
                    edges: c.spec.dependencies,
                    labels: request.labels.clone(),
                    base: "spec.resources",
                })
            }
            (None, false) => {
                if !request.params.is_empty() {
                    return Err(Error::invalid(
                        "params",
                        "params need a composition; resources take literal config",
                    ));
                }
                let mut edges = Vec::new();
                for (i, text) in request.dependencies.iter().enumerate() {
                    match Edge::parse(text) {
                        Some(e) => edges.push(e),
                        None => errors.push(FieldError::new(
                            format!("dependencies[{i}]"),
                            format!("{text:?} is not an edge: write \"from -> to\""),
                        )),
                    }
                }
                errors.extend(check_resources(
                    &request.resources,
                    &BTreeSet::new(),
                    "resources",
                ));
                if !errors.is_empty() {
                    return Err(Error::Validation { errors });
                }
                Ok(Spec {
                    key,
                    composition: None,
                    params: BTreeMap::new(),
                    resources: request.resources.clone(),
                    edges,
                    labels: request.labels.clone(),
                    base: "resources",
                })
            }
        }
    }

    pub(super) async fn resolve(&self, spec: &Spec) -> Result<Resolved> {
        let loaded = self.engines.engine_names();
        resolve_resources(
            self.store.as_ref(),
            &spec.resources,
            &spec.edges,
            spec.base,
            Some(&loaded),
        )
        .await
    }

    pub(super) fn draft(&self, spec: &Spec, resolved: &Resolved, revision: u64) -> Deployment {
        let now = self.clock.now();
        let k = &spec.key;
        let resources = resolved
            .waves
            .iter()
            .flatten()
            .filter_map(|name| resolved.get(name))
            .map(|p| DeployedResource {
                name: p.resource.name.clone(),
                catalog_ref: p.definition.definition.subject(),
                engine: p.engine.clone(),
                category: p.definition.definition.metadata.category.clone(),
                status: ResourceStatus::Pending,
                outputs: BTreeMap::new(),
                artifacts: vec![],
                error: None,
                health: None,
            })
            .collect();
        Deployment {
            id: format!("{}.{}.{}.r{revision}", k.team, k.environment, k.name),
            team: k.team.clone(),
            environment: k.environment.clone(),
            name: k.name.clone(),
            revision,
            status: DeploymentStatus::Pending,
            created_at: now,
            updated_at: now,
            waves: resolved.waves.clone(),
            resources,
            error: None,
            composition: spec.composition.clone(),
            params: spec.params.clone(),
            labels: spec.labels.clone(),
            commit: None,
            rollback_of: None,
            unchanged: false,
            cluster: None,
            generation: 0,
            policy_warnings: vec![],
        }
    }

    pub(super) fn content(resolved: &Resolved) -> RevisionContent {
        RevisionContent {
            resources: resolved
                .resources
                .iter()
                .map(|p| ResolvedResource {
                    name: p.resource.name.clone(),
                    definition: p.definition.name().to_string(),
                    version: p.definition.version().clone(),
                    engine: p.engine.clone(),
                    config: p.resource.config.clone(),
                })
                .collect(),
            edges: resolved.edges.clone(),
            artifacts: BTreeMap::new(),
        }
    }

    pub(super) async fn next_revision(&self, key: &DeploymentKey) -> Result<u64> {
        Ok(self
            .store
            .revisions(key)
            .await?
            .last()
            .map_or(1, |d| d.revision + 1))
    }

    /// The artifacts of the last succeeded revision of `key`, if any.
    pub(super) async fn current(
        &self,
        key: &DeploymentKey,
    ) -> Result<(Option<u64>, BTreeMap<String, Vec<Artifact>>)> {
        let revisions = self.store.revisions(key).await?;
        match revisions
            .iter()
            .rev()
            .find(|d| d.status == DeploymentStatus::Succeeded)
        {
            Some(d) => {
                let content = self
                    .store
                    .revision_content(&d.id)
                    .await?
                    .unwrap_or_default();
                Ok((Some(d.revision), content.artifacts))
            }
            None => Ok((None, BTreeMap::new())),
        }
    }
}

/// Refuses a deployment whose names cannot all be used in the cluster, in
/// Argo CD and in the GitOps repository (`naming::check_names`), with the
/// fields named as in the request (`spec.resources[1].name` for a
/// composition's resource).
pub(super) fn check_spec_names(spec: &Spec) -> Result<()> {
    let errors: Vec<FieldError> =
        crate::naming::check_names(&spec.key, spec.resources.iter().map(|r| r.name.as_str()))
            .into_iter()
            .map(|mut e| {
                if let Some(rest) = e.field.strip_prefix("resources[") {
                    e.field = format!("{}[{rest}", spec.base);
                }
                e
            })
            .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation { errors })
    }
}

/// `VALIDATION_FAILED` naming every field of `fields` whose value is not a
/// name: a deployment's key, or the team and environment one resource
/// renders for (templates and artifact paths are made of them).
pub(super) fn check_key_names(fields: &[(&str, &str)]) -> Result<()> {
    let errors: Vec<FieldError> = fields
        .iter()
        .filter(|(_, value)| !is_valid_name(value))
        .map(|(field, value)| {
            FieldError::new(
                *field,
                format!(
                    "{} is not a valid {field} (lowercase letters, digits and '-')",
                    crate::validate::excerpt(value)
                ),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation { errors })
    }
}
