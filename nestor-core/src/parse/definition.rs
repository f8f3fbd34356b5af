//! Resource definitions: value tree → canonical [`ResourceDefinition`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::{join, single_document, type_name, Keys, Parser};
use crate::error::{Error, FieldError};
use crate::model::*;
use crate::validate::validate_definition;
use crate::versioning::parse_version;

/// Parses and statically validates a definition from YAML text (one document).
pub fn parse_definition_yaml(text: &str) -> Result<ResourceDefinition, Error> {
    let value = single_document(text)?;
    parse_definition(&value).map_err(|errors| Error::Validation { errors })
}

/// Parses a definition from a value tree, normalising aliases, then runs the
/// static validity rules. Every problem is returned at once.
pub fn parse_definition(value: &Value) -> Result<ResourceDefinition, Vec<FieldError>> {
    let mut p = Parser::default();
    let def = p.definition(value);
    let mut errors = p.errors;
    if let Some(def) = def {
        for e in validate_definition(&def) {
            // A field that failed to parse is reported once, not again by
            // the rules that ran on its placeholder.
            if !errors
                .iter()
                .any(|p| !p.field.is_empty() && e.field.starts_with(&p.field))
            {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            return Ok(def);
        }
    }
    Err(errors)
}

impl Parser {
    fn definition(&mut self, value: &Value) -> Option<ResourceDefinition> {
        let top = self.keys(Some(value), "")?;
        self.unknown(&top, &["api_version", "kind", "metadata", "spec"]);
        let kind = self.string(&top, "kind", true);
        if !kind.is_empty() && kind != DEFINITION_KIND && kind != "ComponentDefinition" {
            self.err(
                "kind",
                format!("must be {DEFINITION_KIND} (or ComponentDefinition), found {kind:?}"),
            );
        }
        let mut meta = match self.keys(top.entries.get("metadata").map(|(_, v)| *v), "metadata") {
            Some(m) => m,
            None => {
                if !top.entries.contains_key("metadata") {
                    self.err("metadata", "is required");
                }
                Keys {
                    path: "metadata".into(),
                    entries: Default::default(),
                }
            }
        };
        let mut spec = match self.keys(top.entries.get("spec").map(|(_, v)| *v), "spec") {
            Some(s) => s,
            None => {
                if !top.entries.contains_key("spec") {
                    self.err("spec", "is required");
                }
                Keys {
                    path: "spec".into(),
                    entries: Default::default(),
                }
            }
        };
        // Classification may be written under spec; it belongs to metadata.
        for key in ["provider", "category", "resource_type"] {
            if let Some(entry) = spec.entries.remove(key) {
                match meta.entries.get(key) {
                    Some((_, v)) if v != &entry.1 => {
                        self.err(
                            format!("spec.{key}"),
                            format!("differs from metadata.{key}"),
                        );
                    }
                    Some(_) => {}
                    None => meta.entries.insert_if_absent(key.into(), entry),
                }
            }
        }
        let metadata = self.metadata(&meta);
        let spec = self.spec(&mut spec);
        Some(ResourceDefinition {
            api_version: DEFINITION_API_VERSION.to_string(),
            kind: DEFINITION_KIND.to_string(),
            metadata,
            spec,
        })
    }

    fn metadata(&mut self, m: &Keys<'_>) -> Metadata {
        self.unknown(
            m,
            &[
                "name",
                "version",
                "provider",
                "category",
                "resource_type",
                "description",
                "maintainers",
                "labels",
                "annotations",
                "maturity",
                "support_level",
                "deprecated",
                "deprecation_message",
            ],
        );
        let version = match m.entries.get("version") {
            None | Some((_, Value::Null)) => {
                self.err("metadata.version", "is required");
                semver::Version::new(0, 0, 0)
            }
            Some((_, Value::String(s))) => parse_version(s).unwrap_or_else(|e| {
                self.err("metadata.version", e);
                semver::Version::new(0, 0, 0)
            }),
            Some((_, other)) => {
                self.err(
                    "metadata.version",
                    format!("must be a quoted string such as \"1.2.0\", found {other}"),
                );
                semver::Version::new(0, 0, 0)
            }
        };
        let maturity = match self.string(m, "maturity", false).as_str() {
            "" | "alpha" => Maturity::Alpha,
            "beta" => Maturity::Beta,
            "stable" => Maturity::Stable,
            other => {
                self.err(
                    "metadata.maturity",
                    format!("must be alpha, beta or stable, found {other:?}"),
                );
                Maturity::Alpha
            }
        };
        let support_level = match self.string(m, "support_level", false).as_str() {
            "" | "community" => SupportLevel::Community,
            "supported" => SupportLevel::Supported,
            other => {
                self.err(
                    "metadata.support_level",
                    format!("must be community or supported, found {other:?}"),
                );
                SupportLevel::Community
            }
        };
        Metadata {
            name: self.string(m, "name", true),
            version,
            provider: self.string(m, "provider", true),
            category: self.string(m, "category", true),
            resource_type: self.string(m, "resource_type", true),
            description: self.string(m, "description", false),
            maintainers: self.string_list(m, "maintainers"),
            labels: self.string_map(m, "labels"),
            annotations: self.string_map(m, "annotations"),
            maturity,
            support_level,
            deprecated: self.boolean(m, "deprecated"),
            deprecation_message: self.string(m, "deprecation_message", false),
        }
    }

    fn spec(&mut self, s: &mut Keys<'_>) -> DefinitionSpec {
        self.alias(s, "engines", "supported_engines");
        self.alias(s, "deployment_engines", "supported_engines");
        self.unknown(
            s,
            &[
                "supported_engines",
                "required_inputs",
                "optional_inputs",
                "inputs",
                "outputs",
                "dependencies",
                "engine_configs",
            ],
        );
        let mut required: Vec<Input> = self
            .list(s, "required_inputs")
            .into_iter()
            .filter_map(|(p, v)| self.input(v, &p, false).map(|i| i.0))
            .collect();
        let mut optional: Vec<Input> = self
            .list(s, "optional_inputs")
            .into_iter()
            .filter_map(|(p, v)| self.input(v, &p, false).map(|i| i.0))
            .collect();
        for (path, v) in self.list(s, "inputs") {
            if let Some((input, is_required)) = self.input(v, &path, true) {
                if is_required {
                    required.push(input)
                } else {
                    optional.push(input)
                }
            }
        }
        let outputs = self
            .list(s, "outputs")
            .into_iter()
            .filter_map(|(p, v)| self.output(v, &p))
            .collect();
        let dependencies = self
            .list(s, "dependencies")
            .into_iter()
            .filter_map(|(p, v)| self.dependency(v, &p))
            .collect();
        let engine_configs = match s.entries.get("engine_configs") {
            None | Some((_, Value::Null)) => BTreeMap::new(),
            Some((_, Value::Object(map))) => {
                map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            Some((_, other)) => {
                self.err(
                    "spec.engine_configs",
                    format!(
                        "must be a mapping of engine → configuration, found {}",
                        type_name(other)
                    ),
                );
                BTreeMap::new()
            }
        };
        if !s.entries.contains_key("supported_engines") {
            self.err(
                "spec.supported_engines",
                "is required (a non-empty list of engines)",
            );
        }
        DefinitionSpec {
            supported_engines: self.string_list(s, "supported_engines"),
            required_inputs: required,
            optional_inputs: optional,
            outputs,
            dependencies,
            engine_configs,
        }
    }

    /// An input; with `allow_required`, the `spec.inputs` form whose
    /// `required: true|false` decides the list (default: required unless a
    /// default is given).
    fn input(&mut self, value: &Value, path: &str, allow_required: bool) -> Option<(Input, bool)> {
        let k = self.keys(Some(value), path)?;
        let mut allowed = vec![
            "name",
            "type",
            "description",
            "sensitive",
            "default",
            "validation",
        ];
        if allow_required {
            allowed.push("required");
        }
        self.unknown(&k, &allowed);
        let type_text = self.string(&k, "type", true);
        let value_type = match ValueType::parse(&type_text) {
            Some(t) => t,
            None => {
                if !type_text.is_empty() {
                    self.err(join(path, "type"), format!("unknown type {type_text:?}: use string, integer, number, boolean, array or object"));
                }
                ValueType::String
            }
        };
        let default = k
            .entries
            .get("default")
            .map(|(_, v)| (*v).clone())
            .filter(|v| !v.is_null());
        let required = match k.entries.get("required") {
            Some((_, Value::Bool(b))) => *b,
            Some((_, other)) => {
                self.err(
                    join(path, "required"),
                    format!("must be true or false, found {}", type_name(other)),
                );
                false
            }
            None => default.is_none(),
        };
        let validation = self.validation(
            k.entries.get("validation").map(|(_, v)| *v),
            &join(path, "validation"),
        );
        let input = Input {
            name: self.string(&k, "name", true),
            value_type,
            description: self.string(&k, "description", false),
            sensitive: self.boolean(&k, "sensitive"),
            default,
            validation,
        };
        Some((input, required))
    }

    pub(super) fn validation(&mut self, value: Option<&Value>, path: &str) -> Validation {
        let Some(k) = self.keys(value.filter(|v| !v.is_null()), path) else {
            return Validation::default();
        };
        self.unknown(
            &k,
            &["pattern", "min_length", "max_length", "min", "max", "enum"],
        );
        let mut number = |key: &str| -> Option<serde_json::Number> {
            match k.entries.get(key) {
                None | Some((_, Value::Null)) => None,
                Some((_, Value::Number(n))) => Some(n.clone()),
                Some((_, other)) => {
                    self.err(
                        join(path, key),
                        format!("must be a number, found {}", type_name(other)),
                    );
                    None
                }
            }
        };
        let (min, max) = (number("min"), number("max"));
        let mut length = |key: &str| -> Option<u64> {
            match k.entries.get(key) {
                None | Some((_, Value::Null)) => None,
                Some((_, v)) => v.as_u64().or_else(|| {
                    self.err(
                        join(path, key),
                        format!("must be a non-negative integer, found {v}"),
                    );
                    None
                }),
            }
        };
        let (min_length, max_length) = (length("min_length"), length("max_length"));
        let allowed = match k.entries.get("enum") {
            None | Some((_, Value::Null)) => None,
            Some((_, Value::Array(items))) => Some(items.clone()),
            Some((_, other)) => {
                self.err(
                    join(path, "enum"),
                    format!("must be a list of values, found {}", type_name(other)),
                );
                None
            }
        };
        let pattern = k
            .entries
            .contains_key("pattern")
            .then(|| self.string(&k, "pattern", false));
        Validation {
            pattern,
            min_length,
            max_length,
            min,
            max,
            allowed,
        }
    }

    fn output(&mut self, value: &Value, path: &str) -> Option<Output> {
        let k = self.keys(Some(value), path)?;
        self.unknown(&k, &["name", "type", "description", "sensitive"]);
        let type_text = self.string(&k, "type", false);
        let value_type = if type_text.is_empty() {
            ValueType::String
        } else {
            ValueType::parse(&type_text).unwrap_or_else(|| {
                self.err(join(path, "type"), format!("unknown type {type_text:?}: use string, integer, number, boolean, array or object"));
                ValueType::String
            })
        };
        Some(Output {
            name: self.string(&k, "name", true),
            value_type,
            description: self.string(&k, "description", false),
            sensitive: self.boolean(&k, "sensitive"),
        })
    }

    fn dependency(&mut self, value: &Value, path: &str) -> Option<Dependency> {
        let k = self.keys(Some(value), path)?;
        self.unknown(&k, &["name", "version"]);
        let version = match self.string(&k, "version", false) {
            v if v.is_empty() => "*".to_string(),
            v => v,
        };
        Some(Dependency {
            name: self.string(&k, "name", true),
            version,
        })
    }
}
