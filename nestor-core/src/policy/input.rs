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

/// The engine's value of a JSON map, read in place (no JSON copy).
fn map_value(map: &BTreeMap<String, Value>) -> Result<regorus::Value> {
    let fields = map
        .iter()
        .map(|(k, v)| {
            let v = regorus::Value::deserialize(v).map_err(|e| Error::internal(e.to_string()))?;
            Ok((regorus::Value::from(k.as_str()), v))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    Ok(regorus::Value::from(fields))
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
/// document converted once, keyed by `name:version`, and shared.
fn resources(resources: &[PolicyResource<'_>]) -> Result<regorus::Value> {
    let mut definitions: HashMap<String, regorus::Value> = HashMap::new();
    let mut items = Vec::with_capacity(resources.len());
    for r in resources {
        let subject = r.definition.subject();
        let definition = match definitions.get(&subject) {
            Some(d) => d.clone(),
            None => {
                let d = value(r.definition)?;
                definitions.insert(subject, d.clone());
                d
            }
        };
        let mut fields = vec![
            ("name", regorus::Value::from(r.name)),
            ("catalog_ref", regorus::Value::from(r.catalog_ref.as_str())),
            ("engine", regorus::Value::from(r.engine)),
            ("definition", definition),
        ];
        if let Some(inputs) = &r.inputs {
            fields.push(("inputs", map_value(inputs)?));
        }
        items.push(object(fields));
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
        ("params", map_value(params)?),
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
