//! One binding module per supported `nestor:engine` ABI version, and the
//! version-independent view the host works with.
//!
//! The WIT of a released version is frozen in
//! `plugins/nestor-engine-sdk/wit/v<version>/`. Each module generates its
//! bindings from its folder and converts its types to and from the host's
//! ([`Answer`], [`Refusal`]); the loader picks the module by the version in
//! the component's export name (`nestor:engine/engine-api@<version>`).
//!
//! What an older guest lacks is filled in here, never in the guest: a
//! 0.1.0 plugin gets the references inside its inputs in the 0.1.0 JSON
//! shapes (`{"secretKeyRef": ...}`, `{"stackReference", "output"}`), its
//! outputs are read by [`nestor_core::Reach::from_json`], and it has no
//! `validate` (its configs are accepted as before).

use std::collections::BTreeMap;

use nestor_core::{Artifact, EngineInfo, Reach, RenderRequest};
use serde_json::{json, Value};
use wasmtime::component::InstancePre;
use wasmtime::Store;

use crate::sandbox::StoreState;

pub(crate) mod v0_1_0;
pub(crate) mod v0_2_0;

/// The ABI versions this host loads, newest first.
pub const SUPPORTED_ABI_VERSIONS: &[&str] = &["0.2.0", "0.1.0"];

/// The interface every plugin exports, without its version.
pub(crate) const ENGINE_INTERFACE: &str = "nestor:engine/engine-api";

/// What a render answered, in the host's terms.
pub(crate) struct Answer {
    /// The files.
    pub artifacts: Vec<Artifact>,
    /// Output name → its reach as JSON text (checked by `output::validate`).
    pub outputs: Vec<(String, String)>,
}

/// Why a plugin refused a render, case by case (the WIT `engine-error`).
pub(crate) enum Refusal {
    /// `invalid-config`.
    InvalidConfig(String),
    /// `invalid-input`.
    InvalidInput(String),
    /// `unsupported`.
    Unsupported(String),
    /// `internal`.
    Internal(String),
    /// `config-problems`: (field inside the engine config, message).
    ConfigProblems(Vec<(String, String)>),
    /// `refused-references`: (input, path, reason).
    RefusedReferences(Vec<(String, Vec<String>, String)>),
}

/// A linked plugin of some ABI version, ready to instantiate.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_1(v0_1_0::PluginPre<StoreState>),
    V0_2(v0_2_0::PluginPre<StoreState>),
}

/// An instance of a plugin.
pub(crate) enum Instance {
    V0_1(v0_1_0::Plugin),
    V0_2(v0_2_0::Plugin),
}

impl Pre {
    /// The bindings of `version` over a linked component.
    pub(crate) fn new(version: &str, pre: InstancePre<StoreState>) -> wasmtime::Result<Pre> {
        match version {
            "0.1.0" => Ok(Pre::V0_1(v0_1_0::PluginPre::new(pre)?)),
            _ => Ok(Pre::V0_2(v0_2_0::PluginPre::new(pre)?)),
        }
    }

    /// A fresh instance in `store`.
    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<StoreState>,
    ) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(pre) => Instance::V0_1(pre.instantiate_async(store).await?),
            Pre::V0_2(pre) => Instance::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

impl Instance {
    /// `info()`.
    pub(crate) async fn info(&self, store: &mut Store<StoreState>) -> wasmtime::Result<EngineInfo> {
        match self {
            Instance::V0_1(p) => v0_1_0::info(p, store).await,
            Instance::V0_2(p) => v0_2_0::info(p, store).await,
        }
    }

    /// `render()`; the outer error is a trap, the inner one the plugin's refusal.
    pub(crate) async fn render(
        &self,
        store: &mut Store<StoreState>,
        request: &RenderRequest,
    ) -> wasmtime::Result<Result<Answer, Refusal>> {
        match self {
            Instance::V0_1(p) => v0_1_0::render(p, store, request).await,
            Instance::V0_2(p) => v0_2_0::render(p, store, request).await,
        }
    }

    /// `validate()`: (field, message) per problem; nothing for 0.1.0.
    pub(crate) async fn validate(
        &self,
        store: &mut Store<StoreState>,
        definition: &str,
        config: &str,
    ) -> wasmtime::Result<Vec<(String, String)>> {
        match self {
            Instance::V0_1(_) => Ok(Vec::new()),
            Instance::V0_2(p) => v0_2_0::validate(p, store, definition, config).await,
        }
    }
}

/// JSON text of `value`.
pub(crate) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The inputs as a 0.1.0 engine (or a version-1 native library) saw
/// references: each replaced by its 0.1.0 JSON shape.
pub(crate) fn legacy_inputs(request: &RenderRequest) -> BTreeMap<String, Value> {
    let mut inputs = request.inputs.clone();
    for reference in &request.references {
        let Some(slot) = inputs
            .get_mut(&reference.input)
            .and_then(|v| pointer_mut(v, &reference.path))
        else {
            continue;
        };
        *slot = legacy_reach(&reference.reach);
    }
    inputs
}

fn legacy_reach(reach: &Reach) -> Value {
    if let Some(s) = &reach.secret_key_ref {
        return json!({"secretKeyRef": {"name": s.name, "key": s.key, "namespace": s.namespace}});
    }
    if let Some(s) = &reach.stack_output {
        return json!({"stackReference": s.stack, "output": s.output});
    }
    reach.value.clone().unwrap_or(Value::Null)
}

fn pointer_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut current = value;
    for part in path {
        current = match current {
            Value::Object(map) => map.get_mut(part)?,
            Value::Array(items) => items.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The error a refusal is, by error code: `internal` is the plugin's own
/// failure (`ENGINE_FAILED`); every other case is something the request or
/// the definition can fix (`VALIDATION_FAILED`), with fields naming it:
/// `spec.engine_configs.<engine>[.<key>]` for a config,
/// `resources.<resource>.config` for an input, the reference's
/// [`nestor_core::InputReference::field`] for a refused reference (the
/// orchestrator names both resources from it).
pub(crate) fn refusal_error(
    engine: &str,
    label: &str,
    resource: &str,
    refusal: Refusal,
) -> nestor_core::Error {
    use nestor_core::{field_path, Error, FieldError};
    let said = |what: &str, m: &str| format!("engine {engine} ({label}) {what}: {m}");
    let config_field = format!("spec.engine_configs.{engine}");
    let errors = match refusal {
        Refusal::Internal(m) => {
            return Error::EngineFailed {
                engine: engine.to_string(),
                message: format!("{label} failed: internal error: {m}"),
            }
        }
        Refusal::InvalidConfig(m) => vec![FieldError::new(
            config_field,
            said("refuses its engine config", &m),
        )],
        Refusal::InvalidInput(m) => vec![FieldError::new(
            format!("resources.{resource}.config"),
            said("cannot express an input", &m),
        )],
        Refusal::Unsupported(m) => vec![FieldError::new(
            format!("resources.{resource}.engine"),
            said("does not support the request", &m),
        )],
        Refusal::ConfigProblems(problems) => problems
            .into_iter()
            .map(|(field, m)| {
                let field = if field.is_empty() {
                    config_field.clone()
                } else {
                    format!("{config_field}.{field}")
                };
                FieldError::new(field, said("refuses its engine config", &m))
            })
            .collect(),
        Refusal::RefusedReferences(refused) => refused
            .into_iter()
            .map(|(input, path, reason)| FieldError::new(field_path(&input, &path), reason))
            .collect(),
    };
    Error::Validation { errors }
}
