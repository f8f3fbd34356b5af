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

/// One resource to render on its own (`nestor render`, `POST /api/v1/render`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RenderResourceRequest {
    /// `NAME`, `NAME:VERSION` or `NAME:REQUIREMENT`.
    pub catalog_ref: String,
    /// The engine (default: the definition's first supported engine that
    /// is loaded, as in a deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The resource's inputs.
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
    /// The team it is rendered for (templates see it).
    pub team: String,
    /// The environment it is rendered for (templates see it).
    pub environment: String,
}

/// What one resource renders to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// Renders the request's `catalog_ref` with its `engine` (default: the
    /// first supported engine that is loaded, as in a deployment) and
    /// `config` as its inputs, as the resource of a deployment named after
    /// the definition, for its `team` in its `environment`.
    pub async fn render_resource(
        &self,
        request: &RenderResourceRequest,
    ) -> Result<RenderedResource> {
        let RenderResourceRequest {
            catalog_ref,
            engine,
            config,
            team,
            environment,
        } = request;
        super::request::check_key_names(&[
            ("team", team.as_str()),
            ("environment", environment.as_str()),
        ])?;
        let name = crate::versioning::CatalogRef::parse(catalog_ref)
            .map_err(crate::error::Error::bad_request)?
            .name;
        let resource = CompositionResource {
            name: name.clone(),
            catalog_ref: catalog_ref.clone(),
            engine: engine.clone(),
            config: config.clone(),
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
            team: team.clone(),
            environment: environment.clone(),
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
