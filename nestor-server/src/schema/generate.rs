//! Generating the schemas (feature `schema`, used by
//! `cargo run -p xtask --features schemas -- docs`).
//!
//! Each schema starts from the canonical types (schemars derives in
//! `nestor-core` and [`crate::Config`]), so a field added to a type shows up
//! here without anyone editing a schema by hand. The parser accepts more
//! spellings than the canonical form (camelCase keys, `ComponentDefinition`,
//! `spec.engines`, `spec.inputs`, `catalogRef`, edges written `a -> b`...);
//! [`schema`] adds those aliases afterwards, so an editor accepts what
//! Nestor accepts and rejects a typo'd key, as the parser does. What a
//! schema cannot say (a default matching its input's type, dependencies
//! that exist) stays with `nestor catalog validate`.

use schemars::{generate::SchemaSettings, JsonSchema};
use serde_json::{json, Map, Value};

use super::SchemaKind;

/// The JSON Schema (draft 2020-12) of `kind`, aliases included.
pub fn generate(kind: SchemaKind) -> Value {
    let mut root = match kind {
        SchemaKind::Definition => root_schema::<nestor_core::ResourceDefinition>(),
        SchemaKind::Composition => root_schema::<nestor_core::Composition>(),
        SchemaKind::Deployment => root_schema::<nestor_core::DeploymentSet>(),
        SchemaKind::Config => root_schema::<crate::Config>(),
        SchemaKind::DeploymentRequest => root_schema::<nestor_core::DeploymentRequest>(),
    };
    close_objects(&mut root);
    match kind {
        SchemaKind::Definition => definition_aliases(&mut root),
        SchemaKind::Composition => composition_aliases(&mut root),
        SchemaKind::Deployment => {
            pin(&mut root, "apiVersion", &["deploy.nestor.io/v1"]);
            pin(&mut root, "kind", &["DeploymentSet"]);
        }
        // Read by serde as written: canonical keys only.
        SchemaKind::DeploymentRequest | SchemaKind::Config => {}
    }
    if matches!(kind, SchemaKind::Definition | SchemaKind::Composition) {
        add_camel_case(&mut root);
    }
    root
}

fn root_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// Every object with declared properties refuses other keys, as the parser
/// does; free-form maps (labels, engine configs, defaults) declare none and
/// stay open.
fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Every `snake_case` property gains its camelCase spelling; a required one
/// is satisfied by either.
fn add_camel_case(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                let aliases: Vec<(String, Value)> = props
                    .iter()
                    .filter(|(k, _)| k.contains('_'))
                    .map(|(k, v)| (nestor_core::camel_case(k), v.clone()))
                    .collect();
                for (k, v) in aliases {
                    props.entry(k).or_insert(v);
                }
                let required: Vec<String> = map
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| {
                        r.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let (plain, snake): (Vec<_>, Vec<_>) =
                    required.into_iter().partition(|k| !k.contains('_'));
                if !snake.is_empty() {
                    map.insert("required".into(), json!(plain));
                    let all_of: Vec<Value> = snake
                        .iter()
                        .map(|k| json!({"anyOf": [{"required": [k]}, {"required": [nestor_core::camel_case(k)]}]}))
                        .collect();
                    push_all_of(map, all_of);
                }
            }
            map.values_mut().for_each(add_camel_case);
        }
        Value::Array(items) => items.iter_mut().for_each(add_camel_case),
        _ => {}
    }
}

fn push_all_of(map: &mut Map<String, Value>, extra: Vec<Value>) {
    let all_of = map.entry("allOf").or_insert_with(|| json!([]));
    if let Value::Array(items) = all_of {
        items.extend(extra);
    }
}

/// The object schema named `name` in `$defs` (or the root for `None`).
fn def<'a>(root: &'a mut Value, name: Option<&str>) -> &'a mut Map<String, Value> {
    let target = match name {
        None => root,
        Some(n) => &mut root["$defs"][n],
    };
    if !target.is_object() {
        *target = json!({});
    }
    target.as_object_mut().expect("just made an object")
}

fn props<'a>(root: &'a mut Value, name: Option<&str>) -> &'a mut Map<String, Value> {
    let d = def(root, name);
    if !d.get("properties").is_some_and(Value::is_object) {
        d.insert("properties".into(), json!({}));
    }
    d.get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("just made an object")
}

fn unrequire(root: &mut Value, name: Option<&str>, keys: &[&str]) {
    if let Some(Value::Array(req)) = def(root, name).get_mut("required") {
        req.retain(|k| !keys.iter().any(|x| k == x));
    }
}

/// A root property limited to these values.
fn pin(root: &mut Value, key: &str, values: &[&str]) {
    let p = props(root, None);
    let description = p.get(key).and_then(|v| v.get("description")).cloned();
    let mut schema = json!({"type": "string", "enum": values});
    if let Some(d) = description {
        schema["description"] = d;
    }
    p.insert(key.into(), schema);
}

fn definition_aliases(root: &mut Value) {
    pin(root, "apiVersion", &["catalog.nestor.io/v1"]);
    pin(root, "kind", &["ResourceDefinition", "ComponentDefinition"]);
    // provider, category and resource_type may sit under `spec` instead.
    let classification = ["provider", "category", "resource_type"];
    unrequire(root, Some("Metadata"), &classification);
    let metadata_props = props(root, Some("Metadata")).clone();
    let spec = props(root, Some("DefinitionSpec"));
    for key in classification {
        if let Some(s) = metadata_props.get(key) {
            spec.insert(key.into(), s.clone());
        }
    }
    let engines = spec.get("supported_engines").cloned().unwrap_or(json!({}));
    spec.insert("engines".into(), engines.clone());
    spec.insert("deployment_engines".into(), engines);
    // `spec.inputs`: inputs with `required: true|false`, split on read.
    let mut input = def(root, Some("Input")).clone();
    if let Some(Value::Object(p)) = input.get_mut("properties") {
        p.insert("required".into(), json!({"type": "boolean"}));
    }
    root["$defs"]["InputWithRequired"] = Value::Object(input);
    props(root, Some("DefinitionSpec")).insert(
        "inputs".into(),
        json!({"type": "array", "items": {"$ref": "#/$defs/InputWithRequired"}}),
    );
    unrequire(root, Some("DefinitionSpec"), &["supported_engines"]);
    push_all_of(
        def(root, Some("DefinitionSpec")),
        vec![json!({"anyOf": [
            {"required": ["supported_engines"]}, {"required": ["supportedEngines"]},
            {"required": ["engines"]}, {"required": ["deployment_engines"]},
            {"required": ["deploymentEngines"]}
        ]})],
    );
}

fn composition_aliases(root: &mut Value) {
    pin(root, "apiVersion", &["composer.nestor.io/v1"]);
    pin(root, "kind", &["Composition", "ComposedResource"]);
    unrequire(root, Some("CompositionMetadata"), &["version"]);
    composition_resource_aliases(root);
    edge_as_string_or_object(root);
}

/// `catalog_ref` may be spelled `type` (or `catalogRef`, added with the
/// other camelCase spellings).
fn composition_resource_aliases(root: &mut Value) {
    let resource = props(root, Some("CompositionResource"));
    let catalog_ref = resource.get("catalog_ref").cloned().unwrap_or(json!({}));
    resource.insert("type".into(), catalog_ref);
    unrequire(root, Some("CompositionResource"), &["catalog_ref"]);
    push_all_of(
        def(root, Some("CompositionResource")),
        vec![json!({"anyOf": [
            {"required": ["catalog_ref"]}, {"required": ["catalogRef"]}, {"required": ["type"]}
        ]})],
    );
}

fn edge_as_string_or_object(root: &mut Value) {
    // An edge is `{from, to}` or a string `a -> b` (`a → b`).
    let edge = def(root, Some("Edge")).clone();
    root["$defs"]["Edge"] = json!({
        "description": edge.get("description").cloned().unwrap_or(Value::Null),
        "anyOf": [
            {"type": "string", "pattern": "^\\s*\\S.*(->|→).*\\S\\s*$"},
            edge,
        ]
    });
    if root["$defs"]["Edge"]["description"].is_null() {
        if let Some(m) = root["$defs"]["Edge"].as_object_mut() {
            m.remove("description");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_schema_closes_objects_and_names_the_aliases() {
        let s = generate(SchemaKind::Definition);
        let spec = &s["$defs"]["DefinitionSpec"];
        assert_eq!(spec["additionalProperties"], json!(false));
        for key in [
            "supported_engines",
            "supportedEngines",
            "engines",
            "inputs",
            "resourceType",
        ] {
            assert!(spec["properties"].get(key).is_some(), "{key} missing");
        }
        assert_eq!(
            s["properties"]["kind"]["enum"],
            json!(["ResourceDefinition", "ComponentDefinition"])
        );
    }
}
