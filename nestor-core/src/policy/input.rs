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
//! pinned definition's document once however many resources pin it: the
//! engine's values share their contents, so 10,000 resources over 100
//! definitions hold 100 definition documents, not 10,000. A pinned
//! version's document never changes (its content is immutable), so
//! [`DefinitionDocuments`] keeps it from one input to the next.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::documents::{DeclaredInput, Pinned};
use super::DefinitionDocuments;
use crate::error::{Error, Result};
use crate::model::{Composition, PublishedVersion};

/// A resource's final inputs: templates rendered, defaults applied. An
/// input wired from another resource's output keeps the template as
/// written (`{{ resources.db.outputs.endpoint }}`): its value exists only
/// once that resource has rendered.
#[derive(Debug, Clone)]
pub enum ResourceInputs<'a> {
    /// None: a composition's input lists no inputs.
    Absent,
    /// The values rendered.
    Rendered(Cow<'a, BTreeMap<String, Value>>),
    /// A config with nothing to render, as written: its final inputs are
    /// its values and the pinned definition's defaults of the inputs it
    /// leaves out (converted once per definition, and shared).
    AsWritten(&'a BTreeMap<String, Value>),
}

/// One resource of a deployment (or a composition) as policies see it.
#[derive(Debug, Clone)]
pub struct PolicyResource<'a> {
    /// Its name in the deployment.
    pub name: &'a str,
    /// The engine that renders it.
    pub engine: &'a str,
    /// Its final inputs (`inputs`).
    pub inputs: ResourceInputs<'a>,
    /// The exact version it pins: policies read its reference
    /// (`catalog_ref`, `name:version`) and its canonical document.
    pub pinned: &'a PublishedVersion,
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
pub(super) struct Keys {
    made: HashMap<String, regorus::Value>,
}

impl Keys {
    pub(super) fn key(&mut self, name: &str) -> regorus::Value {
        if let Some(made) = self.made.get(name) {
            return made.clone();
        }
        let made = regorus::Value::from(name);
        self.made.insert(name.to_string(), made.clone());
        made
    }

    /// The engine's value of a JSON value, converted in place (no serde
    /// round trip): the same values `regorus::Value::deserialize` makes.
    pub(super) fn json(&mut self, v: &Value) -> regorus::Value {
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

    /// The engine's object of `(key, JSON value)` pairs, in key order
    /// (inserted one by one: collecting would sort them again).
    fn map<'a>(&mut self, fields: impl Iterator<Item = (&'a String, &'a Value)>) -> regorus::Value {
        let mut map = BTreeMap::new();
        for (k, v) in fields {
            map.insert(self.key(k), self.json(v));
        }
        regorus::Value::from(map)
    }

    /// The final inputs of `config` written against `declared` (sorted by
    /// name): its values, and the default of every declared input it
    /// leaves out. The keys and defaults are the definition's, shared.
    fn as_written(
        &mut self,
        config: &BTreeMap<String, Value>,
        declared: &[DeclaredInput],
    ) -> regorus::Value {
        let mut map = BTreeMap::new();
        let mut given = config.iter().peekable();
        for d in declared {
            // A key no input declares (never after a resolve) stays.
            while let Some((k, v)) = given.next_if(|(k, _)| k.as_str() < d.name.as_str()) {
                map.insert(self.key(k), self.json(v));
            }
            match given.next_if(|(k, _)| k.as_str() == d.name.as_str()) {
                Some((_, v)) => {
                    map.insert(d.key.clone(), self.json(v));
                }
                None => {
                    if let Some(default) = &d.default {
                        map.insert(d.key.clone(), default.clone());
                    }
                }
            }
        }
        for (k, v) in given {
            map.insert(self.key(k), self.json(v));
        }
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

/// Makes the items of a `resources` (or `resolved`) array one by one:
/// each pinned version's reference and document taken once from the
/// [`DefinitionDocuments`] and shared, and the keys made once.
pub(super) struct Items<'d> {
    keys: Keys,
    /// `name`, `catalog_ref`, `engine`, `definition`, `inputs`.
    fields: [regorus::Value; 5],
    /// By address: resources pinning one version share its record.
    pinned: HashMap<*const PublishedVersion, Pinned>,
    documents: &'d DefinitionDocuments,
}

impl<'d> Items<'d> {
    pub(super) fn new(documents: &'d DefinitionDocuments) -> Self {
        let mut keys = Keys::default();
        let fields = ["name", "catalog_ref", "engine", "definition", "inputs"].map(|k| keys.key(k));
        Items {
            keys,
            fields,
            pinned: HashMap::new(),
            documents,
        }
    }

    /// The item of `r`.
    pub(super) fn item(&mut self, r: &PolicyResource<'_>) -> Result<regorus::Value> {
        let p = match self.pinned.get(&std::ptr::from_ref(r.pinned)) {
            Some(p) => p.clone(),
            None => {
                let p = self.documents.get(r.pinned)?;
                self.pinned.insert(r.pinned, p.clone());
                p
            }
        };
        let [name, catalog_ref, engine, definition, inputs] = &self.fields;
        let keys = &mut self.keys;
        let mut fields = BTreeMap::new();
        fields.insert(name.clone(), regorus::Value::from(r.name));
        fields.insert(catalog_ref.clone(), p.reference);
        fields.insert(engine.clone(), keys.key(r.engine));
        fields.insert(definition.clone(), p.document);
        let given = match &r.inputs {
            ResourceInputs::Absent => None,
            ResourceInputs::Rendered(values) => Some(keys.map(values.iter())),
            ResourceInputs::AsWritten(config) => Some(keys.as_written(config, &p.declared)),
        };
        if let Some(given) = given {
            fields.insert(inputs.clone(), given);
        }
        Ok(regorus::Value::from(fields))
    }
}

/// The `resources` (or `resolved`) array of `resources`.
fn resources(
    resources: &[PolicyResource<'_>],
    documents: &DefinitionDocuments,
) -> Result<regorus::Value> {
    let mut items = Items::new(documents);
    let made: Result<Vec<regorus::Value>> = resources.iter().map(|r| items.item(r)).collect();
    Ok(regorus::Value::from(made?))
}

/// What a `nestor.deployment` input says besides its resources.
#[derive(Debug, Clone, Copy)]
pub struct DeploymentFields<'a> {
    /// `team`.
    pub team: &'a str,
    /// `environment`.
    pub environment: &'a str,
    /// `name`: the deployment's.
    pub name: &'a str,
    /// `labels`.
    pub labels: &'a BTreeMap<String, String>,
    /// `composition`: the pinned composition it comes from, if any.
    pub composition: Option<&'a str>,
    /// `params`.
    pub params: &'a BTreeMap<String, Value>,
}

/// The input of `nestor.deployment`; the definition documents are taken
/// from (and kept in) `documents`.
pub fn deployment_input(
    fields: &DeploymentFields<'_>,
    resources: &[PolicyResource<'_>],
    documents: &DefinitionDocuments,
) -> Result<PolicyInput> {
    let items = self::resources(resources, documents)?;
    deployment_document(fields, items, resources.len())
}

/// The `nestor.deployment` document of `fields` and the `resources` array
/// `items` (of `count` resources).
pub(super) fn deployment_document(
    fields: &DeploymentFields<'_>,
    items: regorus::Value,
    count: usize,
) -> Result<PolicyInput> {
    let value = object([
        ("team", regorus::Value::from(fields.team)),
        ("environment", regorus::Value::from(fields.environment)),
        ("name", regorus::Value::from(fields.name)),
        ("labels", value(fields.labels)?),
        ("composition", value(&fields.composition)?),
        ("params", Keys::default().map(fields.params.iter())),
        ("resources", items),
    ]);
    Ok(PolicyInput {
        value,
        resources: count,
    })
}

/// The input of `nestor.composition`; the definition documents are taken
/// from (and kept in) `documents`.
pub fn composition_input(
    composition: &Composition,
    resolved: &[PolicyResource<'_>],
    documents: &DefinitionDocuments,
) -> Result<PolicyInput> {
    let mut doc = value(composition)?;
    if let Ok(map) = doc.as_object_mut() {
        map.insert(
            regorus::Value::from("resolved"),
            resources(resolved, documents)?,
        );
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

    fn pinned() -> PublishedVersion {
        PublishedVersion::new(parse_definition_yaml(DEFINITION).unwrap(), 0, None)
    }

    fn resource<'a>(name: &'a str, pinned: &'a PublishedVersion, n: i64) -> PolicyResource<'a> {
        PolicyResource {
            name,
            engine: "terraform",
            inputs: ResourceInputs::Rendered(Cow::Owned(BTreeMap::from([
                ("size".to_string(), json!("small")),
                ("replicas".to_string(), json!(n)),
                ("ratio".to_string(), json!(0.5)),
                (
                    "upstream".to_string(),
                    json!("{{ resources.db.outputs.endpoint }}"),
                ),
                ("tags".to_string(), json!({"a": [1, null, true]})),
            ]))),
            pinned,
        }
    }

    #[test]
    fn the_deployment_input_is_the_documented_document() {
        let def = pinned();
        let labels = BTreeMap::from([("cost-center".to_string(), "cc-1".to_string())]);
        let params = BTreeMap::from([("size".to_string(), json!("large"))]);
        let resources = vec![resource("db", &def, 1), resource("replica", &def, 2)];
        for composition in [None, Some("alpha/web-app:1.0.0")] {
            let fields = DeploymentFields {
                team: "alpha",
                environment: "production",
                name: "checkout",
                labels: &labels,
                composition,
                params: &params,
            };
            let built =
                deployment_input(&fields, &resources, &DefinitionDocuments::default()).unwrap();
            let expected = json!({
                "team": "alpha",
                "environment": "production",
                "name": "checkout",
                "labels": labels,
                "composition": composition,
                "params": params,
                "resources": resources.iter().map(|r| json!({
                    "name": r.name,
                    "catalog_ref": r.pinned.definition.subject(),
                    "engine": r.engine,
                    "inputs": match &r.inputs {
                        ResourceInputs::Rendered(values) => json!(values),
                        other => panic!("{other:?}"),
                    },
                    "definition": serde_json::to_value(&r.pinned.definition).unwrap(),
                })).collect::<Vec<_>>(),
            });
            assert_eq!(built.value(), &as_json_was(expected.clone()));
            assert_eq!(built.to_json(), expected);
            assert_eq!(built.resources(), 2);
        }
    }

    #[test]
    fn resources_pinning_one_version_share_its_document_across_inputs() {
        let def = pinned();
        // Another record of the same content (as another store read
        // would give) shares the document too.
        let again = pinned();
        let documents = DefinitionDocuments::default();
        let resources = vec![resource("db", &def, 1), resource("replica", &again, 2)];
        let first = self::resources(&resources, &documents).unwrap();
        let second = self::resources(&resources[..1], &documents).unwrap();
        let definition = |built: &regorus::Value, i: usize| match &built[i]["definition"] {
            regorus::Value::Object(o) => o.clone(),
            other => panic!("not an object: {other:?}"),
        };
        assert!(std::sync::Arc::ptr_eq(
            &definition(&first, 0),
            &definition(&first, 1)
        ));
        assert!(std::sync::Arc::ptr_eq(
            &definition(&first, 0),
            &definition(&second, 0)
        ));
        let fresh = self::resources(&resources, &DefinitionDocuments::default()).unwrap();
        assert!(!std::sync::Arc::ptr_eq(
            &definition(&first, 0),
            &definition(&fresh, 0)
        ));
        assert_eq!(first, fresh);
    }

    #[test]
    fn a_config_as_written_reads_as_its_values_with_the_defaults() {
        let def = pinned();
        let config: BTreeMap<String, Value> = serde_json::from_value(json!({
            "a_key_no_input_declares": 1,
            "replicas": 3,
            "size": "small",
            "upstream": "{{ resources.db.outputs.endpoint }}",
            "zz_another": [true],
        }))
        .unwrap();
        let mut with_defaults = config.clone();
        with_defaults.insert("ratio".into(), json!(0.25));
        with_defaults.insert("tags".into(), json!({}));
        let documents = DefinitionDocuments::default();
        let mut written = resource("db", &def, 1);
        written.inputs = ResourceInputs::AsWritten(&config);
        let mut rendered = resource("db", &def, 1);
        rendered.inputs = ResourceInputs::Rendered(Cow::Owned(with_defaults));
        for _ in 0..2 {
            let built = self::resources(&[written.clone()], &documents).unwrap();
            let expected = self::resources(&[rendered.clone()], &documents).unwrap();
            assert_eq!(built, expected);
        }
        let bare: BTreeMap<String, Value> = BTreeMap::new();
        written.inputs = ResourceInputs::AsWritten(&bare);
        let built = self::resources(&[written], &documents).unwrap();
        let shown = serde_json::to_value(&built[0]["inputs"]).unwrap();
        let defaults = json!({"ratio": 0.25, "replicas": 1, "tags": {}, "upstream": ""});
        assert_eq!(shown, defaults);
    }

    #[test]
    fn a_changed_definition_is_not_read_from_the_kept_document() {
        let documents = DefinitionDocuments::default();
        let old = pinned();
        let mut changed = parse_definition_yaml(DEFINITION).unwrap();
        changed.metadata.maturity = crate::model::Maturity::Beta;
        let new = PublishedVersion::new(changed, 0, None);
        let seen = |p: &PublishedVersion| {
            let built = self::resources(&[resource("db", p, 1)], &documents).unwrap();
            serde_json::to_value(&built[0]["definition"]).unwrap()
        };
        assert_eq!(seen(&old), serde_json::to_value(&old.definition).unwrap());
        assert_eq!(seen(&new), serde_json::to_value(&new.definition).unwrap());
        assert_ne!(seen(&old), seen(&new));
    }

    #[test]
    fn the_composition_input_is_the_documented_document() {
        let composition = parse_composition_yaml(COMPOSITION).unwrap();
        let pinned = pinned();
        let def = &pinned.definition;
        let mut resolved = vec![resource("database", &pinned, 1)];
        resolved[0].inputs = ResourceInputs::Absent;
        let documents = DefinitionDocuments::default();
        let built = composition_input(&composition, &resolved, &documents).unwrap();
        let mut expected = serde_json::to_value(&composition).unwrap();
        expected["resolved"] = json!([{
            "name": "database",
            "catalog_ref": def.subject(),
            "engine": "terraform",
            "definition": serde_json::to_value(def).unwrap(),
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
