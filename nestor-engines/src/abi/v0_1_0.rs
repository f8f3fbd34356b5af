//! Bindings for `nestor:engine@0.1.0`, generated from the frozen WIT, and
//! the conversions to the host's types: references are lowered to the
//! 0.1.0 JSON shapes, the context loses what 0.1.0 does not know.
#![allow(missing_docs)]

use nestor_core::{Artifact, EngineInfo, RenderRequest};
use wasmtime::Store;

use super::{json_text, legacy_inputs, Answer, Refusal};
use crate::sandbox::StoreState;

wasmtime::component::bindgen!({
    path: "../plugins/nestor-engine-sdk/wit/v0.1.0",
    world: "plugin",
    exports: { default: async },
});

use nestor::engine::types as wit;

pub(crate) async fn info(
    plugin: &Plugin,
    store: &mut Store<StoreState>,
) -> wasmtime::Result<EngineInfo> {
    let info = plugin.nestor_engine_engine_api().call_info(store).await?;
    Ok(EngineInfo {
        name: info.name,
        version: info.version,
        description: info.description,
    })
}

pub(crate) async fn render(
    plugin: &Plugin,
    store: &mut Store<StoreState>,
    request: &RenderRequest,
) -> wasmtime::Result<Result<Answer, Refusal>> {
    let c = &request.context;
    let request = wit::RenderRequest {
        resource: request.resource.clone(),
        definition: json_text(&request.definition),
        inputs: legacy_inputs(request)
            .iter()
            .map(|(name, value)| wit::NamedValue {
                name: name.clone(),
                value: json_text(value),
            })
            .collect(),
        engine_config: json_text(&request.engine_config),
        context: wit::RenderContext {
            team: c.team.clone(),
            environment: c.environment.clone(),
            deployment: c.deployment.clone(),
            revision: c.revision,
        },
    };
    let answer = plugin
        .nestor_engine_engine_api()
        .call_render(store, &request)
        .await?;
    Ok(match answer {
        Ok(output) => Ok(Answer {
            artifacts: output
                .artifacts
                .into_iter()
                .map(|a| Artifact {
                    path: a.path,
                    content: a.content,
                    media_type: a.media_type,
                })
                .collect(),
            outputs: output
                .outputs
                .into_iter()
                .map(|o| (o.name, o.value))
                .collect(),
        }),
        Err(e) => Err(match e {
            wit::EngineError::InvalidConfig(m) => Refusal::InvalidConfig(m),
            wit::EngineError::InvalidInput(m) => Refusal::InvalidInput(m),
            wit::EngineError::Unsupported(m) => Refusal::Unsupported(m),
            wit::EngineError::Internal(m) => Refusal::Internal(m),
        }),
    })
}
