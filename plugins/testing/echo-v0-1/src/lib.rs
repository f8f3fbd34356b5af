//! Test guest: an engine named `echo-v0-1` speaking `nestor:engine@0.1.0`,
//! built from the frozen WIT folder directly (as a plugin compiled before
//! 0.2.0 existed was), so the host's test can show 0.1.0 components keep
//! loading and rendering. It writes its request back as `request.json`
//! and answers outputs in the 0.1.0 shapes: a plain value, a secret
//! reference object and a Terraform-style internal reference.
#![deny(missing_docs)]

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../nestor-engine-sdk/wit/v0.1.0",
        world: "plugin",
    });

    use exports::nestor::engine::engine_api::Guest;
    use nestor::engine::types::{
        Artifact, EngineError, EngineInfo, NamedValue, RenderOutput, RenderRequest,
    };

    struct EchoV01;

    impl Guest for EchoV01 {
        fn info() -> EngineInfo {
            EngineInfo {
                name: "echo-v0-1".into(),
                version: "0.1.0".into(),
                description: "Echoes the request over ABI 0.1.0 (test guest)".into(),
            }
        }

        fn render(request: RenderRequest) -> Result<RenderOutput, EngineError> {
            let inputs: serde_json::Map<String, serde_json::Value> = request
                .inputs
                .iter()
                .map(|i| {
                    let value = serde_json::from_str(&i.value).unwrap_or(serde_json::Value::Null);
                    (i.name.clone(), value)
                })
                .collect();
            let body = serde_json::json!({
                "resource": request.resource,
                "inputs": inputs,
                "team": request.context.team,
                "environment": request.context.environment,
                "deployment": request.context.deployment,
                "revision": request.context.revision,
            });
            let conn = serde_json::json!({"secretKeyRef": {"name": "echo-conn", "key": "password", "namespace": request.context.team}});
            Ok(RenderOutput {
                artifacts: vec![Artifact {
                    path: "request.json".into(),
                    content: body.to_string(),
                    media_type: "application/json".into(),
                }],
                outputs: vec![
                    NamedValue {
                        name: "greeting".into(),
                        value: "\"hello\"".into(),
                    },
                    NamedValue {
                        name: "password".into(),
                        value: conn.to_string(),
                    },
                    NamedValue {
                        name: "internal".into(),
                        value: "\"${module.echo.id}\"".into(),
                    },
                ],
            })
        }
    }

    export!(EchoV01);
}
