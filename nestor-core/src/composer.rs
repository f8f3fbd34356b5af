//! The composer service: publishes team compositions after full static
//! validation against the catalog (docs/src/product/compositions.md), immutably, with an event.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::model::*;
use crate::orchestrator::resolve_resources;
use crate::parse::check_composition;
use crate::policy::{
    composition_input, DefinitionDocuments, Policies, PolicyHook, PolicyResource, PolicyVerdict,
    ResourceInputs,
};
use crate::store::Store;
use crate::versioning::VersionSpec;

/// What publishing a composition did.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CompositionPublished {
    /// Created or unchanged.
    pub outcome: PublishOutcome,
    /// The stored composition.
    pub composition: PublishedComposition,
    /// Resource names grouped in the waves a deployment would run.
    pub waves: Vec<Vec<String>>,
}

/// Validates and publishes compositions.
#[derive(Clone)]
pub struct Composer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// The `nestor.composition` policies every new version must pass.
    policies: Policies,
    /// The definition documents of their inputs, kept from one to the next.
    documents: DefinitionDocuments,
}

impl Composer {
    /// A composer over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Composer {
            store,
            clock: Arc::new(SystemClock),
            policies: Policies::none(),
            documents: DefinitionDocuments::default(),
        }
    }

    /// Has every composition checked pass the `nestor.composition`
    /// policies covering its team (`POLICY_VIOLATION` otherwise).
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Every static check of a composition (docs/src/product/compositions.md): catalog references resolve, engines
    /// are supported, config keys are inputs, required inputs are set,
    /// literal values are valid, referenced params/resources/outputs exist,
    /// and the graph has no cycle. Returns the waves.
    pub async fn validate(&self, c: &Composition) -> Result<Vec<Vec<String>>> {
        let (waves, verdict) = self.judge(c).await?;
        verdict.into_result(&c.subject())?;
        Ok(waves)
    }

    /// What the `nestor.composition` policies covering its team say about
    /// `c`, nothing written; `c` must pass the static checks first.
    pub async fn evaluate_policies(&self, c: &Composition) -> Result<PolicyVerdict> {
        Ok(self.judge(c).await?.1)
    }

    /// The static checks, then the policies: the waves and the verdict.
    async fn judge(&self, c: &Composition) -> Result<(Vec<Vec<String>>, PolicyVerdict)> {
        let errors = check_composition(c);
        if !errors.is_empty() {
            return Err(Error::Validation { errors });
        }
        let resolved = resolve_resources(
            self.store.as_ref(),
            &c.spec.resources,
            &c.spec.dependencies,
            "spec.resources",
            None,
        )
        .await?;
        let set = self.policies.current();
        let team = Some(c.metadata.team.as_str());
        let mut verdict = PolicyVerdict::default();
        if set.applies(PolicyHook::Composition, team, None) {
            let resources: Vec<PolicyResource<'_>> = resolved
                .resources
                .iter()
                .map(|p| PolicyResource {
                    name: &p.resource.name,
                    engine: &p.engine,
                    inputs: ResourceInputs::Absent,
                    pinned: &p.definition,
                })
                .collect();
            let input = composition_input(c, &resources, &self.documents)?;
            verdict = set.evaluate(PolicyHook::Composition, team, None, &input);
        }
        Ok((resolved.waves, verdict))
    }

    /// Validates and publishes; the same content again is `unchanged`,
    /// other content under a published version is `VERSION_IMMUTABLE`.
    pub async fn publish(
        &self,
        c: Composition,
        origin: Option<Origin>,
        actor: &str,
    ) -> Result<CompositionPublished> {
        let m = c.metadata.clone();
        let hash = c.content_hash();
        if let Some(existing) = self
            .store
            .get_composition(&m.team, &m.name, &m.version)
            .await?
        {
            if existing.content_hash == hash {
                let waves = self
                    .validate(&existing.composition)
                    .await
                    .unwrap_or_default();
                return Ok(CompositionPublished {
                    outcome: PublishOutcome::Unchanged,
                    composition: existing,
                    waves,
                });
            }
            return Err(Error::VersionImmutable {
                name: format!("{}/{}", m.team, m.name),
                version: m.version.to_string(),
            });
        }
        let waves = self.validate(&c).await?;
        let first = self
            .store
            .composition_versions(&m.team, &m.name)
            .await?
            .is_empty();
        let published = PublishedComposition {
            composition: c,
            content_hash: hash,
            published_at: self.clock.now(),
            origin,
        };
        let outcome = self.store.insert_composition(published.clone()).await?;
        if outcome == PublishOutcome::Created {
            self.store
                .append(NewEvent {
                    event_type: if first {
                        EventType::CompositionCreated
                    } else {
                        EventType::CompositionUpdated
                    },
                    source: actor.into(),
                    subject: published.composition.subject(),
                    timestamp: self.clock.now(),
                    data: json!(published),
                })
                .await?;
        }
        Ok(CompositionPublished {
            outcome,
            composition: published,
            waves,
        })
    }

    /// One composition: `team/name` at a version spec.
    pub async fn get(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> Result<PublishedComposition> {
        self.store.resolve_composition(team, name, spec).await
    }
}
