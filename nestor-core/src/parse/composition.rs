//! Compositions: value tree → canonical [`Composition`], with the aliases of
//! the composition format (docs/src/product/compositions.md) (`ComposedResource`, `type`/`catalogRef`, `dependsOn`, `→`,
//! `{from, to}` edges) and every check that needs no catalog.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{join, single_document, type_name, Keys, Parser};
use crate::error::{Error, FieldError};
use crate::model::*;
use crate::template::{check_syntax, references};
use crate::validate::{check_value, is_snake_case, is_valid_name, validation_fits};
use crate::versioning::{parse_version, CatalogRef};

/// Parses one composition document from YAML text.
pub fn parse_composition_yaml(text: &str) -> Result<Composition, Error> {
    let value = single_document(text)?;
    parse_composition(&value).map_err(|errors| Error::Validation { errors })
}

/// Parses a composition and runs every check that needs no catalog: names,
/// parameters, template syntax, references to params and resources, edges.
/// (Cycles, catalog references, engines and inputs are checked by the
/// composer, which has the catalog.)
pub fn parse_composition(value: &Value) -> Result<Composition, Vec<FieldError>> {
    let mut p = Parser::default();
    let composition = p.composition(value);
    let mut errors = p.errors;
    if let Some(c) = &composition {
        let more: Vec<FieldError> = check_composition(c)
            .into_iter()
            .filter(|e| !errors.iter().any(|p| p.field == e.field))
            .collect();
        errors.extend(more);
    }
    match composition {
        Some(c) if errors.is_empty() => Ok(c),
        _ => Err(errors),
    }
}

impl Parser {
    fn composition(&mut self, value: &Value) -> Option<Composition> {
        let top = self.keys(Some(value), "")?;
        self.unknown(&top, &["api_version", "kind", "metadata", "spec"]);
        let kind = self.string(&top, "kind", true);
        if !kind.is_empty() && kind != COMPOSITION_KIND && kind != "ComposedResource" {
            self.err(
                "kind",
                format!("must be {COMPOSITION_KIND} (or ComposedResource), found {kind:?}"),
            );
        }
        let empty = |path: &str| Keys {
            path: path.into(),
            entries: Default::default(),
        };
        let meta = self
            .keys(top.entries.get("metadata").map(|(_, v)| *v), "metadata")
            .unwrap_or_else(|| empty("metadata"));
        let mut spec = self
            .keys(top.entries.get("spec").map(|(_, v)| *v), "spec")
            .unwrap_or_else(|| empty("spec"));
        if !top.entries.contains_key("spec") {
            self.err("spec", "is required");
        }
        // A description under metadata is accepted and moved to spec.
        let mut meta = meta;
        if let Some(d) = meta.entries.remove("description") {
            spec.entries.insert_if_absent("description".into(), d);
        }
        self.unknown(&meta, &["name", "team", "version"]);
        let version = match meta.entries.get("version") {
            None | Some((_, Value::Null)) => semver::Version::new(0, 1, 0),
            Some((_, Value::String(s))) => parse_version(s).unwrap_or_else(|e| {
                self.err("metadata.version", e);
                semver::Version::new(0, 1, 0)
            }),
            Some((_, other)) => {
                self.err(
                    "metadata.version",
                    format!("must be a quoted string such as \"1.0.0\", found {other}"),
                );
                semver::Version::new(0, 1, 0)
            }
        };
        let metadata = CompositionMetadata {
            name: self.string(&meta, "name", true),
            team: self.string(&meta, "team", true),
            version,
        };
        self.unknown(
            &spec,
            &["description", "parameters", "resources", "dependencies"],
        );
        let parameters = self
            .list(&spec, "parameters")
            .into_iter()
            .filter_map(|(path, v)| self.parameter(v, &path))
            .collect();
        let resources: Vec<CompositionResource> = self
            .list(&spec, "resources")
            .into_iter()
            .filter_map(|(path, v)| self.resource(v, &path))
            .collect();
        if !spec.entries.contains_key("resources") && top.entries.contains_key("spec") {
            self.err("spec.resources", "is required (a non-empty list)");
        }
        let dependencies = self
            .list(&spec, "dependencies")
            .into_iter()
            .filter_map(|(path, v)| self.edge(v, &path))
            .collect();
        Some(Composition {
            api_version: COMPOSITION_API_VERSION.into(),
            kind: COMPOSITION_KIND.into(),
            metadata,
            spec: CompositionSpec {
                description: self.string(&spec, "description", false),
                parameters,
                resources,
                dependencies,
            },
        })
    }

    fn parameter(&mut self, value: &Value, path: &str) -> Option<Parameter> {
        let k = self.keys(Some(value), path)?;
        self.unknown(
            &k,
            &[
                "name",
                "type",
                "description",
                "default",
                "validation",
                "required",
                "sensitive",
            ],
        );
        let type_text = self.string(&k, "type", false);
        let value_type = match type_text.as_str() {
            "" => ValueType::String,
            t => ValueType::parse(t).unwrap_or_else(|| {
                self.err(
                    join(path, "type"),
                    format!(
                        "unknown type {t:?}: use string, integer, number, boolean, array or object"
                    ),
                );
                ValueType::String
            }),
        };
        let mut default = k
            .entries
            .get("default")
            .map(|(_, v)| (*v).clone())
            .filter(|v| !v.is_null());
        if let Some((_, Value::Bool(true))) = k.entries.get("required") {
            if default.take().is_some() {
                self.err(
                    join(path, "default"),
                    "a required parameter cannot have a default",
                );
            }
        }
        let validation = self.validation(
            k.entries.get("validation").map(|(_, v)| *v),
            &join(path, "validation"),
        );
        Some(Parameter {
            name: self.string(&k, "name", true),
            value_type,
            description: self.string(&k, "description", false),
            default,
            validation,
            sensitive: self.boolean(&k, "sensitive"),
        })
    }

    fn resource(&mut self, value: &Value, path: &str) -> Option<CompositionResource> {
        let mut k = self.keys(Some(value), path)?;
        self.alias(&mut k, "type", "catalog_ref");
        self.unknown(
            &k,
            &["name", "catalog_ref", "engine", "config", "depends_on"],
        );
        let config = match k.entries.get("config") {
            None | Some((_, Value::Null)) => Default::default(),
            Some((_, Value::Object(map))) => {
                map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            Some((_, other)) => {
                self.err(
                    join(path, "config"),
                    format!(
                        "must be a mapping of input → value, found {}",
                        type_name(other)
                    ),
                );
                Default::default()
            }
        };
        let engine = Some(self.string(&k, "engine", false)).filter(|e| !e.is_empty());
        Some(CompositionResource {
            name: self.string(&k, "name", true),
            catalog_ref: self.string(&k, "catalog_ref", true),
            engine,
            config,
            depends_on: self.string_list(&k, "depends_on"),
        })
    }

    fn edge(&mut self, value: &Value, path: &str) -> Option<Edge> {
        match value {
            Value::String(s) => Edge::parse(s).or_else(|| {
                self.err(path, format!("{s:?} is not an edge: write \"from -> to\""));
                None
            }),
            Value::Object(_) => {
                let k = self.keys(Some(value), path)?;
                self.unknown(&k, &["from", "to"]);
                Some(Edge {
                    from: self.string(&k, "from", true),
                    to: self.string(&k, "to", true),
                })
            }
            other => {
                self.err(
                    path,
                    format!(
                        "must be \"from -> to\" or {{from, to}}, found {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }
}

/// Resource names are used as template identifiers (`resources.NAME`) and
/// folder names in the GitOps repository.
fn is_resource_name(name: &str) -> bool {
    is_snake_case(name) || is_valid_name(name)
}

/// The checks of a composition that need no catalog.
pub fn check_composition(c: &Composition) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let m = &c.metadata;
    if !is_valid_name(&m.name) {
        errors.push(FieldError::new(
            "metadata.name",
            format!(
                "{:?} is not a valid name (lowercase letters, digits and '-')",
                m.name
            ),
        ));
    }
    if !is_valid_name(&m.team) {
        errors.push(FieldError::new(
            "metadata.team",
            format!(
                "{:?} is not a valid team name (lowercase letters, digits and '-')",
                m.team
            ),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, p) in c.spec.parameters.iter().enumerate() {
        let path = format!("spec.parameters[{i}]");
        if !is_snake_case(&p.name) {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!("{:?} must be snake_case", p.name),
            ));
        }
        if !names.insert(p.name.as_str()) {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!("parameter {:?} is declared twice", p.name),
            ));
        }
        errors.extend(validation_fits(
            p.value_type,
            &p.validation,
            &format!("{path}.validation"),
        ));
        if let Some(d) = &p.default {
            errors.extend(check_value(
                p.value_type,
                &p.validation,
                d,
                &format!("{path}.default"),
                p.sensitive,
            ));
        }
    }
    errors.extend(check_resources(&c.spec.resources, &names, "spec.resources"));
    let resource_names: BTreeSet<&str> = c.spec.resources.iter().map(|r| r.name.as_str()).collect();
    for (i, e) in c.spec.dependencies.iter().enumerate() {
        for end in [&e.from, &e.to] {
            if !resource_names.contains(end.as_str()) {
                errors.push(FieldError::new(
                    format!("spec.dependencies[{i}]"),
                    format!(
                        "{end:?} is not a resource of this composition (resources: {})",
                        join_names(&resource_names)
                    ),
                ));
            }
        }
    }
    errors
}

fn join_names(names: &BTreeSet<&str>) -> String {
    names.iter().copied().collect::<Vec<_>>().join(", ")
}

/// Checks resource names, references and template syntax; `params` are the
/// parameter names templates may use. Shared with direct deployment requests.
pub fn check_resources(
    resources: &[CompositionResource],
    params: &BTreeSet<&str>,
    base: &str,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if resources.is_empty() {
        errors.push(FieldError::new(base, "at least one resource is needed"));
    }
    let names: BTreeSet<&str> = resources.iter().map(|r| r.name.as_str()).collect();
    let mut seen = BTreeSet::new();
    for (i, r) in resources.iter().enumerate() {
        let path = format!("{base}[{i}]");
        if !is_resource_name(&r.name) {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!("{:?} is not a valid resource name (use snake_case)", r.name),
            ));
        } else if let Some(problem) = crate::naming::resource_name_problem(&r.name) {
            errors.push(FieldError::new(format!("{path}.name"), problem));
        }
        if !seen.insert(r.name.as_str()) {
            errors.push(FieldError::new(
                format!("{path}.name"),
                format!("resource {:?} is declared twice", r.name),
            ));
        }
        if let Err(e) = CatalogRef::parse(&r.catalog_ref) {
            errors.push(FieldError::new(format!("{path}.catalog_ref"), e));
        }
        for dep in &r.depends_on {
            if !names.contains(dep.as_str()) {
                errors.push(FieldError::new(
                    format!("{path}.depends_on"),
                    format!(
                        "{dep:?} is not a resource (resources: {})",
                        join_names(&names)
                    ),
                ));
            }
        }
        for (key, value) in &r.config {
            let field = format!("{path}.config.{key}");
            if let Err(e) = check_syntax(value) {
                errors.push(FieldError::new(
                    &field,
                    format!("template does not parse: {e}"),
                ));
                continue;
            }
            let refs = references(value);
            for p in &refs.params {
                if !params.contains(p.as_str()) {
                    let known = if params.is_empty() {
                        "none".into()
                    } else {
                        join_names(params)
                    };
                    errors.push(FieldError::new(
                        &field,
                        format!("unknown parameter {p:?} (parameters: {known})"),
                    ));
                }
            }
            for res in refs.outputs.iter().map(|(r, _)| r).chain(&refs.resources) {
                if !names.contains(res.as_str()) {
                    errors.push(FieldError::new(
                        &field,
                        format!(
                            "unknown resource {res:?} (resources: {})",
                            join_names(&names)
                        ),
                    ));
                } else if res == &r.name {
                    errors.push(FieldError::new(
                        &field,
                        "a resource cannot use its own outputs",
                    ));
                }
            }
        }
    }
    errors
}
