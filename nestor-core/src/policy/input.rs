//! The input documents policies evaluate. Their names are a contract with
//! policy authors (docs/src/platform/policies.md lists them): fields may
//! be added, never renamed.
//!
//! - `nestor.definition`: the canonical definition document,
//!   `{apiVersion, kind, metadata, spec}` (the definition serialised).
//! - `nestor.composition`: the canonical composition document with
//!   `resolved`, what each resource pins to:
//!   `[{name, catalog_ref, engine, definition}]`.
//! - `nestor.deployment`: `{team, environment, name, labels, composition,
//!   params, resources: [{name, catalog_ref, engine, inputs, definition}]}`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use crate::model::{Composition, ResourceDefinition};

/// One resource of a deployment (or a composition) as policies see it.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResource<'a> {
    /// Its name in the deployment.
    pub name: &'a str,
    /// The pinned reference, `name:exact-version`.
    pub catalog_ref: String,
    /// The engine that renders it.
    pub engine: &'a str,
    /// The final inputs: templates rendered, defaults applied. An input
    /// wired from another resource's output keeps the template as written
    /// (`{{ resources.db.outputs.endpoint }}`): its value exists only once
    /// that resource has rendered. Absent in a composition's input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<BTreeMap<String, Value>>,
    /// The canonical definition document it pins.
    pub definition: &'a ResourceDefinition,
}

/// The input of `nestor.deployment`.
#[allow(clippy::too_many_arguments)]
pub fn deployment_input(
    team: &str,
    environment: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    composition: Option<&str>,
    params: &BTreeMap<String, Value>,
    resources: &[PolicyResource<'_>],
) -> Value {
    json!({
        "team": team,
        "environment": environment,
        "name": name,
        "labels": labels,
        "composition": composition,
        "params": params,
        "resources": resources,
    })
}

/// The input of `nestor.composition`.
pub fn composition_input(composition: &Composition, resolved: &[PolicyResource<'_>]) -> Value {
    let mut doc = serde_json::to_value(composition).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut doc {
        map.insert("resolved".into(), json!(resolved));
    }
    doc
}
