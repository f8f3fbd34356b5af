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
//!
//! The documents are built directly as the engine's values, and each
//! pinned definition's document once per input however many resources
//! pin it: the engine's values share their contents, so 10,000 resources
//! over 100 definitions hold 100 definition documents, not 10,000.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{Composition, ResourceDefinition};

/// One resource of a deployment (or a composition) as policies see it.
#[derive(Debug, Clone)]
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
    pub inputs: Option<BTreeMap<String, Value>>,
    /// The canonical definition document it pins.
    pub definition: &'a ResourceDefinition,
}

/// An input document in the engine's values, ready to be handed to every
/// policy of a hook (cloning it is cheap: its contents are shared).
#[derive(Debug, Clone)]
pub struct PolicyInput {
    value: regorus::Value,
    /// How many resources it lists (how much evaluating it costs).
    resources: usize,
}

impl PolicyInput {
    /// The input document of anything serialisable (a definition at
    /// publish, a document written by hand).
    pub fn of<T: Serialize + ?Sized>(document: &T) -> Result<PolicyInput> {
        Ok(PolicyInput {
            value: value(document)?,
            resources: 1,
        })
    }

    /// The document as JSON, as a policy author reads it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.value).unwrap_or(Value::Null)
    }

    /// The engine's value.
    pub(super) fn value(&self) -> &regorus::Value {
        &self.value
    }

    /// How many resources it lists (1 for a definition).
    pub(super) fn resources(&self) -> usize {
        self.resources
    }
}

/// The engine's value of `x`, through its JSON form.
fn value<T: Serialize + ?Sized>(x: &T) -> Result<regorus::Value> {
    let json = serde_json::to_value(x).map_err(|e| Error::internal(e.to_string()))?;
    regorus::Value::deserialize(json).map_err(|e| Error::internal(e.to_string()))
}

/// Strings made once per input, object keys and engine names: 10,000
/// resources share one `"name"`, one of each of their inputs' names and
/// one `"terraform"` instead of allocating each.
#[derive(Default)]
struct Keys {
    made: HashMap<String, regorus::Value>,
}

impl Keys {
    fn key(&mut self, name: &str) -> regorus::Value {
        if let Some(made) = self.made.get(name) {
            return made.clone();
        }
        let made = regorus::Value::from(name);
        self.made.insert(name.to_string(), made.clone());
        made
    }

    /// The engine's value of a JSON value, converted in place (no serde
    /// round trip): the same values `regorus::Value::deserialize` makes.
    fn json(&mut self, v: &Value) -> regorus::Value {
        match v {
            Value::Null => regorus::Value::Null,
            Value::Bool(b) => regorus::Value::Bool(*b),
            // As serde reads a JSON number: unsigned, else signed, else
            // a (finite) float.
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => regorus::Value::from(u),
                (None, Some(i)) => regorus::Value::from(i),
                (None, None) => n
                    .as_f64()
                    .map_or(regorus::Value::Null, regorus::Value::from),
            },
            Value::String(s) => regorus::Value::from(s.as_str()),
            Value::Array(items) => {
                regorus::Value::from(items.iter().map(|i| self.json(i)).collect::<Vec<_>>())
            }
            Value::Object(map) => self.map(map.iter()),
        }
    }

    /// The engine's object of `(key, JSON value)` pairs.
    fn map<'a>(&mut self, fields: impl Iterator<Item = (&'a String, &'a Value)>) -> regorus::Value {
        let map: BTreeMap<regorus::Value, regorus::Value> =
            fields.map(|(k, v)| (self.key(k), self.json(v))).collect();
        regorus::Value::from(map)
    }
}

/// An object of the engine's values from `(key, value)` pairs.
fn object(fields: impl IntoIterator<Item = (&'static str, regorus::Value)>) -> regorus::Value {
    let map: BTreeMap<regorus::Value, regorus::Value> = fields
        .into_iter()
        .map(|(k, v)| (regorus::Value::from(k), v))
        .collect();
    regorus::Value::from(map)
}

/// The `resources` (or `resolved`) array: each pinned definition's
/// document converted once, keyed by the pinned reference
/// (`name:version`, what `catalog_ref` holds), and shared.
fn resources(resources: &[PolicyResource<'_>]) -> Result<regorus::Value> {
    let mut keys = Keys::default();
    let [name, catalog_ref, engine, definition, inputs] =
        ["name", "catalog_ref", "engine", "definition", "inputs"].map(|k| keys.key(k));
    let mut pinned: HashMap<&str, (regorus::Value, regorus::Value)> = HashMap::new();
    let mut items = Vec::with_capacity(resources.len());
    for r in resources {
        let (reference, document) = match pinned.get(r.catalog_ref.as_str()) {
            Some(p) => p.clone(),
            None => {
                let json = serde_json::to_value(r.definition)
                    .map_err(|e| Error::internal(e.to_string()))?;
                let p = (
                    regorus::Value::from(r.catalog_ref.as_str()),
                    keys.json(&json),
                );
                pinned.insert(&r.catalog_ref, p.clone());
                p
            }
        };
        let mut fields = BTreeMap::new();
        fields.insert(name.clone(), regorus::Value::from(r.name));
        fields.insert(catalog_ref.clone(), reference);
        fields.insert(engine.clone(), keys.key(r.engine));
        fields.insert(definition.clone(), document);
        if let Some(given) = &r.inputs {
            fields.insert(inputs.clone(), keys.map(given.iter()));
        }
        items.push(regorus::Value::from(fields));
    }
    Ok(regorus::Value::from(items))
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
) -> Result<PolicyInput> {
    let value = object([
        ("team", regorus::Value::from(team)),
        ("environment", regorus::Value::from(environment)),
        ("name", regorus::Value::from(name)),
        ("labels", value(labels)?),
        ("composition", value(&composition)?),
        ("params", Keys::default().map(params.iter())),
        ("resources", self::resources(resources)?),
    ]);
    Ok(PolicyInput {
        value,
        resources: resources.len(),
    })
}

/// The input of `nestor.composition`.
pub fn composition_input(
    composition: &Composition,
    resolved: &[PolicyResource<'_>],
) -> Result<PolicyInput> {
    let mut doc = value(composition)?;
    if let Ok(map) = doc.as_object_mut() {
        map.insert(regorus::Value::from("resolved"), resources(resolved)?);
    }
    Ok(PolicyInput {
        value: doc,
        resources: resolved.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_composition_yaml, parse_definition_yaml};
    use serde_json::json;

    const DEFINITION: &str = r#"apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: aws-rds-mysql, version: "1.2.0", provider: aws, category: database, resource_type: rds, maturity: stable, labels: {tier: data}}
spec:
  supported_engines: [terraform]
  required_inputs:
    - {name: size, type: string, validation: {enum: [small, large]}}
  optional_inputs:
    - {name: replicas, type: integer, default: 1, validation: {min: 1, max: 100}}
    - {name: ratio, type: number, default: 0.25}
    - {name: upstream, type: string, default: ""}
    - {name: tags, type: object, default: {}}
  outputs:
    - {name: endpoint, type: string}
  engine_configs:
    terraform: {module_source: "./modules/rds", module_version: "1.2.0", static_inputs: {block_public_acls: true}}
"#;
    const COMPOSITION: &str = r#"apiVersion: composer.nestor.io/v1
kind: Composition
metadata: {name: web-app, team: alpha, version: "1.0.0"}
spec:
  description: "a database"
  parameters:
    - {name: size, type: string, default: small, validation: {enum: [small, large]}}
  resources:
    - name: database
      catalog_ref: aws-rds-mysql:^1.2
      engine: terraform
      config: {size: "{{ params.size }}", replicas: 2}
"#;

    /// The document as policies saw it before the input was built in the
    /// engine's values: the whole JSON document, converted in one go.
    fn as_json_was(doc: Value) -> regorus::Value {
        regorus::Value::from(doc)
    }

    fn resource<'a>(name: &'a str, def: &'a ResourceDefinition, n: i64) -> PolicyResource<'a> {
        PolicyResource {
            name,
            catalog_ref: def.subject(),
            engine: "terraform",
            inputs: Some(BTreeMap::from([
                ("size".to_string(), json!("small")),
                ("replicas".to_string(), json!(n)),
                ("ratio".to_string(), json!(0.5)),
                (
                    "upstream".to_string(),
                    json!("{{ resources.db.outputs.endpoint }}"),
                ),
                ("tags".to_string(), json!({"a": [1, null, true]})),
            ])),
            definition: def,
        }
    }

    #[test]
    fn the_deployment_input_is_the_documented_document() {
        let def = parse_definition_yaml(DEFINITION).unwrap();
        let labels = BTreeMap::from([("cost-center".to_string(), "cc-1".to_string())]);
        let params = BTreeMap::from([("size".to_string(), json!("large"))]);
        let resources = vec![resource("db", &def, 1), resource("replica", &def, 2)];
        for composition in [None, Some("alpha/web-app:1.0.0")] {
            let built = deployment_input(
                "alpha",
                "production",
                "checkout",
                &labels,
                composition,
                &params,
                &resources,
            )
            .unwrap();
            let expected = json!({
                "team": "alpha",
                "environment": "production",
                "name": "checkout",
                "labels": labels,
                "composition": composition,
                "params": params,
                "resources": resources.iter().map(|r| json!({
                    "name": r.name,
                    "catalog_ref": r.catalog_ref,
                    "engine": r.engine,
                    "inputs": r.inputs,
                    "definition": serde_json::to_value(r.definition).unwrap(),
                })).collect::<Vec<_>>(),
            });
            assert_eq!(built.value(), &as_json_was(expected.clone()));
            assert_eq!(built.to_json(), expected);
            assert_eq!(built.resources(), 2);
        }
    }

    #[test]
    fn resources_pinning_one_version_share_its_document() {
        let def = parse_definition_yaml(DEFINITION).unwrap();
        let resources = vec![resource("db", &def, 1), resource("replica", &def, 2)];
        let built = self::resources(&resources).unwrap();
        let items = built.as_array().unwrap();
        let definition = |i: usize| match &items[i]["definition"] {
            regorus::Value::Object(o) => o.clone(),
            other => panic!("not an object: {other:?}"),
        };
        assert!(std::sync::Arc::ptr_eq(&definition(0), &definition(1)));
    }

    #[test]
    fn the_composition_input_is_the_documented_document() {
        let composition = parse_composition_yaml(COMPOSITION).unwrap();
        let def = parse_definition_yaml(DEFINITION).unwrap();
        let mut resolved = vec![resource("database", &def, 1)];
        resolved[0].inputs = None;
        let built = composition_input(&composition, &resolved).unwrap();
        let mut expected = serde_json::to_value(&composition).unwrap();
        expected["resolved"] = json!([{
            "name": "database",
            "catalog_ref": def.subject(),
            "engine": "terraform",
            "definition": serde_json::to_value(&def).unwrap(),
        }]);
        assert_eq!(built.value(), &as_json_was(expected));
    }

    #[test]
    fn a_definition_input_is_the_definition_serialised() {
        let def = parse_definition_yaml(DEFINITION).unwrap();
        let built = PolicyInput::of(&def).unwrap();
        assert_eq!(
            built.value(),
            &as_json_was(serde_json::to_value(&def).unwrap())
        );
    }
}
