//! Test guest: a well-behaved engine named `echo` that writes its request
//! back as `request.json`. Its version is the crate's, so `echo` (1.0.0) and
//! `echo-v2` (2.0.0, same source) tell the hot-reload test which one served.
#![deny(missing_docs)]

use nestor_engine_sdk::{export_engine, json, Engine, EngineError, EngineInfo, Rendered, Request};

/// The engine.
pub struct Echo;

impl Engine for Echo {
    fn info() -> EngineInfo {
        EngineInfo::new(
            "echo",
            env!("CARGO_PKG_VERSION"),
            "Echoes the request (test guest)",
        )
    }

    fn render(request: Request) -> Result<Rendered, EngineError> {
        let body = json!({
            "resource": request.resource,
            "definition": request.definition.name(),
            "inputs": request.inputs,
            "engine_config": request.engine_config.0,
            "team": request.context.team,
            "environment": request.context.environment,
            "deployment": request.context.deployment,
            "revision": request.context.revision,
            "version": env!("CARGO_PKG_VERSION"),
        });
        Ok(Rendered::new()
            .artifact("request.json", body.to_string(), "application/json")
            .output("version", env!("CARGO_PKG_VERSION")))
    }
}

export_engine!(Echo);
