//! One resource rendered on its own (`nestor render`): the artifacts a
//! deployment of just that resource would produce, through the same
//! resolution (default engine, input checks, defaults) and the same render
//! path as every deployment, so the two can never disagree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Orchestrator;
use crate::error::Result;
use crate::model::Artifact;
use crate::model::CompositionResource;
use crate::orchestrator::resolve_resources;
use crate::template::TemplateContext;

/// What one resource renders to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedResource {
    /// The pinned definition (`name:version`).
    pub resource: String,
    /// The engine that rendered it.
    pub engine: String,
    /// Its files.
    pub artifacts: Vec<Artifact>,
    /// Its outputs: where each is found (see [`crate::Reach`]).
    pub outputs: BTreeMap<String, Value>,
}

impl Orchestrator {
    /// Renders `catalog_ref` (`NAME`, `NAME:VERSION`, `NAME:REQ`) with
    /// `engine` (default: the first supported engine that is loaded, as in
    /// a deployment) and `config` as its inputs, as the resource of a
    /// deployment named after the definition, for `team` in `environment`.
    pub async fn render_resource(
        &self,
        catalog_ref: &str,
        engine: Option<String>,
        config: BTreeMap<String, Value>,
        team: &str,
        environment: &str,
    ) -> Result<RenderedResource> {
        let name = crate::versioning::CatalogRef::parse(catalog_ref)
            .map_err(crate::error::Error::bad_request)?
            .name;
        let resource = CompositionResource {
            name: name.clone(),
            catalog_ref: catalog_ref.to_string(),
            engine,
            config,
            depends_on: vec![],
        };
        let loaded = self.engines.engine_names();
        let resolved = resolve_resources(
            self.store.as_ref(),
            std::slice::from_ref(&resource),
            &[],
            "resource",
            Some(&loaded),
        )
        .await?;
        let pinned = resolved
            .get(&name)
            .expect("the one resource resolved")
            .clone();
        let ctx = TemplateContext {
            team: team.to_string(),
            environment: environment.to_string(),
            deployment: name,
            ..Default::default()
        };
        let out = self
            .render_one(&pinned, &ctx, 0, 1, &resolved, &super::Rendered::default())
            .await
            .map_err(|failure| match failure {
                super::RenderFailure::Wiring(errors) => crate::error::Error::Validation { errors },
                super::RenderFailure::Other(e) => e,
            })?;
        let outputs = super::wiring::stored_outputs(&out);
        Ok(RenderedResource {
            resource: pinned.definition.definition.subject(),
            engine: pinned.engine,
            artifacts: out.artifacts,
            outputs,
        })
    }
}
