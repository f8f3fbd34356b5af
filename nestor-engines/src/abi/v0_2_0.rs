//! Bindings for `nestor:engine@0.2.0` and the conversions to the host's
//! types: references typed, the context with wave and names, outputs with
//! their reach, `validate`, and the typed errors.
#![allow(missing_docs)]

use nestor_core::{Artifact, EngineInfo, Reach, RenderRequest};
use serde_json::{Map, Value};
use wasmtime::Store;

use super::{json_text, Answer, Refusal};
use crate::sandbox::StoreState;

wasmtime::component::bindgen!({
    path: "../plugins/nestor-engine-sdk/wit/v0.2.0",
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

pub(crate) async fn validate(
    plugin: &Plugin,
    store: &mut Store<StoreState>,
    definition: &str,
    config: &str,
) -> wasmtime::Result<Vec<(String, String)>> {
    let request = wit::ValidateRequest {
        definition: definition.to_string(),
        engine_config: config.to_string(),
    };
    let problems = plugin
        .nestor_engine_engine_api()
        .call_validate(store, &request)
        .await?;
    Ok(problems.into_iter().map(|p| (p.field, p.message)).collect())
}

fn reach_to_wit(reach: &Reach) -> wit::Reach {
    wit::Reach {
        value: reach.value.as_ref().map(json_text),
        secret_key: reach.secret_key_ref.as_ref().map(|s| wit::SecretKeyRef {
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            key: s.key.clone(),
        }),
        stack_output: reach.stack_output.as_ref().map(|s| wit::StackOutputRef {
            stack: s.stack.clone(),
            output: s.output.clone(),
        }),
    }
}

/// The typed JSON text of a guest's reach (`{"value": ..., "secret_key_ref": ...}`);
/// a value that is not JSON makes the whole text invalid, which the output
/// checks report.
fn reach_text(reach: wit::Reach) -> String {
    let mut map = Map::new();
    if let Some(s) = reach.secret_key {
        map.insert(
            "secret_key_ref".into(),
            serde_json::json!({"name": s.name, "namespace": s.namespace, "key": s.key}),
        );
    }
    if let Some(s) = reach.stack_output {
        map.insert(
            "stack_output".into(),
            serde_json::json!({"stack": s.stack, "output": s.output}),
        );
    }
    let rest = Value::Object(map).to_string();
    match reach.value {
        Some(value) if rest == "{}" => format!("{{\"value\":{value}}}"),
        Some(value) => format!("{{\"value\":{value},{}", &rest[1..]),
        None => rest,
    }
}

pub(crate) async fn render(
    plugin: &Plugin,
    store: &mut Store<StoreState>,
    request: &RenderRequest,
) -> wasmtime::Result<Result<Answer, Refusal>> {
    let c = &request.context;
    let wit_request = wit::RenderRequest {
        resource: request.resource.clone(),
        definition: json_text(&request.definition),
        inputs: request
            .inputs
            .iter()
            .map(|(name, value)| wit::NamedValue {
                name: name.clone(),
                value: json_text(value),
            })
            .collect(),
        references: request
            .references
            .iter()
            .map(|r| wit::InputReference {
                input: r.input.clone(),
                path: r.path.clone(),
                producer: r.producer.clone(),
                producer_engine: r.producer_engine.clone(),
                output: r.output.clone(),
                output_type: r.output_type.clone(),
                sensitive: r.sensitive,
                reach: reach_to_wit(&r.reach),
            })
            .collect(),
        engine_config: json_text(&request.engine_config),
        context: wit::RenderContext {
            team: c.team.clone(),
            environment: c.environment.clone(),
            deployment: c.deployment.clone(),
            revision: c.revision,
            wave: c.wave,
            namespace: c.namespace.clone(),
            object_name: c.object_name.clone(),
            project: c.project.clone(),
        },
    };
    let answer = plugin
        .nestor_engine_engine_api()
        .call_render(store, &wit_request)
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
                .map(|o| (o.name, reach_text(o.reach)))
                .collect(),
        }),
        Err(e) => Err(match e {
            wit::EngineError::InvalidConfig(m) => Refusal::InvalidConfig(m),
            wit::EngineError::InvalidInput(m) => Refusal::InvalidInput(m),
            wit::EngineError::Unsupported(m) => Refusal::Unsupported(m),
            wit::EngineError::Internal(m) => Refusal::Internal(m),
            wit::EngineError::ConfigProblems(problems) => Refusal::ConfigProblems(
                problems.into_iter().map(|p| (p.field, p.message)).collect(),
            ),
            wit::EngineError::RefusedReferences(refused) => Refusal::RefusedReferences(
                refused
                    .into_iter()
                    .map(|r| (r.input, r.path, r.reason))
                    .collect(),
            ),
        }),
    })
}
