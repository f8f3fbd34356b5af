//! Resolution: pin every catalog reference, check resources against their
//! definitions (engine, config keys, required inputs, literal values, output
//! references) and build the graph. Shared by the composer (on publish) and
//! the orchestrator (on every deployment), so a composition that publishes
//! cleanly fails a deployment only on what a deployment adds: parameters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, FieldError, Result};
use crate::graph::DependencyGraph;
use crate::model::*;
use crate::store::CatalogReader;
use crate::template::{is_template, references};
use crate::validate::check_value;
use crate::versioning::CatalogRef;

/// A resource pinned to an exact definition version, with its engine.
#[derive(Debug, Clone)]
pub struct PinnedResource {
    /// The resource as requested.
    pub resource: CompositionResource,
    /// The exact definition it uses, as the catalog handed it out.
    pub definition: Shared<PublishedVersion>,
    /// The engine chosen for it.
    pub engine: String,
    /// The config keys whose values name another resource's output
    /// (`{{ resources.db.outputs.endpoint }}`), found once here: they are
    /// rendered only once that resource has, and the policy input shows
    /// them as written.
    pub wired: BTreeSet<String>,
}

/// Resources pinned, checked and ordered.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// In request order (shared: a large plan's policy input is built
    /// from them on the CPU pool).
    pub resources: Arc<[PinnedResource]>,
    /// Explicit, `depends_on` and implicit (output reference) edges.
    pub edges: Vec<Edge>,
    /// Waves of resource names.
    pub waves: Vec<Vec<String>>,
    /// The graph, for failure propagation.
    pub graph: DependencyGraph,
}

impl Resolved {
    /// The resource called `name`.
    pub fn get(&self, name: &str) -> Option<&PinnedResource> {
        self.resources.iter().find(|r| r.resource.name == name)
    }
}

/// Whether a config value holds template syntax somewhere.
pub(super) fn contains_template(v: &Value) -> bool {
    match v {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(contains_template),
        Value::Object(map) => map.values().any(contains_template),
        _ => false,
    }
}

/// Pins and checks `resources` (field paths start at `base`); `loaded` is the
/// engines available, used to pick a default engine and to refuse one that
/// is not loaded (`None` when unknown, e.g. offline validation).
pub async fn resolve_resources(
    catalog: &dyn CatalogReader,
    resources: &[CompositionResource],
    explicit: &[Edge],
    base: &str,
    loaded: Option<&[String]>,
) -> Result<Resolved> {
    let mut errors = Vec::new();
    let mut pinned = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let path = format!("{base}[{i}]");
        let reference = match CatalogRef::parse(&r.catalog_ref) {
            Ok(c) => c,
            Err(e) => {
                errors.push(FieldError::new(format!("{path}.catalog_ref"), e));
                continue;
            }
        };
        let definition = match catalog.resolve(&reference.name, &reference.version).await {
            Ok(d) => d,
            Err(e @ (Error::ResourceNotFound { .. } | Error::VersionNotFound { .. })) => {
                errors.push(FieldError::new(
                    format!("{path}.catalog_ref"),
                    format!("{:?} does not resolve: {e}", r.catalog_ref),
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        let supported = &definition.definition.spec.supported_engines;
        let engine = match &r.engine {
            Some(e) if !supported.contains(e) => {
                errors.push(FieldError::new(
                    format!("{path}.engine"),
                    format!(
                        "{} does not support engine {e:?} (supported: {})",
                        definition.definition.subject(),
                        supported.join(", ")
                    ),
                ));
                continue;
            }
            Some(e) => e.clone(),
            None => match loaded {
                Some(loaded) => match supported.iter().find(|s| loaded.contains(s)) {
                    Some(e) => e.clone(),
                    None => {
                        errors.push(FieldError::new(
                            format!("{path}.engine"),
                            format!(
                                "none of the engines of {} is loaded (supported: {})",
                                definition.definition.subject(),
                                supported.join(", ")
                            ),
                        ));
                        continue;
                    }
                },
                None => supported[0].clone(),
            },
        };
        errors.extend(check_config(r, &definition.definition, &path));
        pinned.push(PinnedResource {
            resource: r.clone(),
            definition,
            engine,
            wired: BTreeSet::new(),
        });
    }

    // Output references must name outputs the referenced definition has.
    let by_name: BTreeMap<&str, &PinnedResource> = pinned
        .iter()
        .map(|p| (p.resource.name.as_str(), p))
        .collect();
    let mut edges: BTreeSet<Edge> = explicit.iter().cloned().collect();
    let mut wired = vec![BTreeSet::new(); resources.len()];
    for (i, r) in resources.iter().enumerate() {
        for dep in &r.depends_on {
            edges.insert(Edge {
                from: dep.clone(),
                to: r.name.clone(),
            });
        }
        for (key, value) in &r.config {
            let refs = references(value);
            if !refs.outputs.is_empty() {
                wired[i].insert(key.clone());
            }
            for (res, out) in &refs.outputs {
                edges.insert(Edge {
                    from: res.clone(),
                    to: r.name.clone(),
                });
                if let Some(target) = by_name.get(res.as_str()) {
                    let outputs = &target.definition.definition.spec.outputs;
                    if !outputs.iter().any(|o| &o.name == out) {
                        let known: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
                        errors.push(FieldError::new(
                            format!("{base}[{i}].config.{key}"),
                            format!(
                                "{res:?} has no output {out:?} (outputs: {})",
                                if known.is_empty() {
                                    "none".into()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        ));
                    }
                }
            }
            for res in &refs.resources {
                edges.insert(Edge {
                    from: res.clone(),
                    to: r.name.clone(),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Validation { errors });
    }
    // Without errors every resource was pinned, in request order.
    for (p, keys) in pinned.iter_mut().zip(wired) {
        p.wired = keys;
    }
    let edges: Vec<Edge> = edges.into_iter().collect();
    let graph = DependencyGraph::new(resources.iter().map(|r| r.name.as_str()), &edges)?;
    let waves = graph.waves()?;
    Ok(Resolved {
        resources: pinned.into(),
        edges,
        waves,
        graph,
    })
}

/// Config keys are inputs, required inputs are set, literal values fit.
fn check_config(r: &CompositionResource, def: &ResourceDefinition, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let known: Vec<&str> = def.inputs().map(|(i, _)| i.name.as_str()).collect();
    for (key, value) in &r.config {
        let field = format!("{path}.config.{key}");
        let Some((input, _)) = def.input(key) else {
            errors.push(FieldError::new(
                field,
                format!(
                    "{key:?} is not an input of {} (inputs: {})",
                    def.subject(),
                    known.join(", ")
                ),
            ));
            continue;
        };
        if !contains_template(value) {
            errors.extend(check_value(
                input.value_type,
                &input.validation,
                value,
                &field,
                input.sensitive,
            ));
        } else if !matches!(value, Value::String(_)) && !input.value_type.matches(value) {
            errors.push(FieldError::new(
                field,
                format!("expected {}", input.value_type),
            ));
        }
    }
    for input in &def.spec.required_inputs {
        if !r.config.contains_key(&input.name) {
            errors.push(FieldError::new(
                format!("{path}.config"),
                format!(
                    "required input {:?} of {} is not set",
                    input.name,
                    def.subject()
                ),
            ));
        }
    }
    errors
}

/// Applies parameter defaults and checks given values: unknown names,
/// missing required ones, types and validation.
pub fn resolve_params(
    declared: &[Parameter],
    given: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>> {
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    for key in given.keys() {
        if !declared.iter().any(|p| &p.name == key) {
            let known: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
            errors.push(FieldError::new(
                format!("params.{key}"),
                format!(
                    "unknown parameter (parameters: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    for p in declared {
        match given.get(&p.name).or(p.default.as_ref()) {
            Some(v) => {
                errors.extend(check_value(
                    p.value_type,
                    &p.validation,
                    v,
                    &format!("params.{}", p.name),
                    p.sensitive,
                ));
                out.insert(p.name.clone(), v.clone());
            }
            None => errors.push(FieldError::new(format!("params.{}", p.name), "is required")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Validation { errors })
    }
}

/// Renders a resource's config with the template context, applies input
/// defaults and checks every value against its input.
pub fn render_inputs(
    r: &CompositionResource,
    def: &ResourceDefinition,
    ctx: &crate::template::TemplateContext,
) -> Result<BTreeMap<String, Value>> {
    render_config(r, def, ctx, Wired::Render)
}

/// What [`render_config`] does with a value wired from an output.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wired<'a> {
    /// Renders it (with the outputs in the context).
    Render,
    /// Keeps it as written, unrendered: what the policy input shows of it
    /// before the outputs exist; the keys that are wired (their
    /// templates name an output) are known, not scanned again.
    AsWritten(&'a BTreeSet<String>),
}

/// [`render_inputs`], with the values wired from outputs rendered or kept
/// as written.
pub(super) fn render_config(
    r: &CompositionResource,
    def: &ResourceDefinition,
    ctx: &crate::template::TemplateContext,
    wired: Wired<'_>,
) -> Result<BTreeMap<String, Value>> {
    let mut errors = Vec::new();
    let mut inputs = BTreeMap::new();
    for (key, value) in &r.config {
        let field = format!("resources.{}.config.{key}", r.name);
        // An output is a reference the tool resolves (a module output, a
        // secret key ref...), whose shape is the engine's: a value built
        // from one is not checked against the type.
        let (from_outputs, as_written) = match wired {
            Wired::Render => (!references(value).outputs.is_empty(), false),
            Wired::AsWritten(keys) => {
                let wired = keys.contains(key);
                (wired, wired)
            }
        };
        let rendered = if as_written {
            Ok(value.clone())
        } else {
            crate::template::render_value(value, ctx)
        };
        match rendered {
            Ok(v) => {
                if let Some((input, _)) = def.input(key) {
                    if !from_outputs {
                        errors.extend(check_value(
                            input.value_type,
                            &input.validation,
                            &v,
                            &field,
                            input.sensitive,
                        ));
                    }
                } else {
                    errors.push(FieldError::new(
                        &field,
                        format!("{key:?} is not an input of {}", def.subject()),
                    ));
                }
                inputs.insert(key.clone(), v);
            }
            Err(e) => errors.push(FieldError::new(field, format!("template failed: {e}"))),
        }
    }
    for (input, required) in def.inputs() {
        if inputs.contains_key(&input.name) {
            continue;
        }
        match (&input.default, required) {
            (Some(d), _) => {
                inputs.insert(input.name.clone(), d.clone());
            }
            (None, true) => errors.push(FieldError::new(
                format!("resources.{}.config", r.name),
                format!("required input {:?} is not set", input.name),
            )),
            (None, false) => {}
        }
    }
    if errors.is_empty() {
        Ok(inputs)
    } else {
        Err(Error::Validation { errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateContext;
    use serde_json::json;

    const DEFINITION: &str = r#"apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: thing, version: "1.0.0", provider: aws, category: database, resource_type: thing}
spec:
  supported_engines: [terraform]
  required_inputs:
    - {name: size, type: string, validation: {enum: [small, large]}}
  optional_inputs:
    - {name: replicas, type: integer, default: 1, validation: {min: 1, max: 100}}
    - {name: class, type: string, default: db.r6g.large}
    - {name: upstream, type: string, default: ""}
    - {name: env, type: object, default: {A: "1"}}
    - {name: note, type: string}
"#;

    fn resource(config: serde_json::Value) -> CompositionResource {
        CompositionResource {
            name: "r".into(),
            catalog_ref: "thing:^1".into(),
            engine: None,
            config: serde_json::from_value(config).unwrap(),
            depends_on: vec![],
        }
    }

    /// What the policy input shows of a config with nothing to render
    /// (`ResourceInputs::AsWritten`; policy::input tests that): its values
    /// and the defaults of the inputs it leaves out.
    fn config_with_defaults(
        r: &CompositionResource,
        def: &ResourceDefinition,
    ) -> BTreeMap<String, Value> {
        let mut inputs = r.config.clone();
        for (input, _) in def.inputs() {
            if let (Some(d), false) = (&input.default, inputs.contains_key(&input.name)) {
                inputs.insert(input.name.clone(), d.clone());
            }
        }
        inputs
    }

    /// Once the resolve has checked a config (`check_config`: no unknown
    /// key, no required input left out, every literal fits), rendering
    /// one with nothing to render only adds the defaults.
    #[test]
    fn a_config_that_renders_nothing_gets_what_rendering_it_gives() {
        let def = crate::parse::parse_definition_yaml(DEFINITION).unwrap();
        let wired_env = json!({"DB": "{{ resources.db.outputs.endpoint }}"});
        let configs = [
            json!({"size": "small"}),
            json!({"size": "large", "replicas": 7, "class": "db.t4g.micro", "note": "n"}),
            json!({"size": "small", "upstream": "{{ resources.db.outputs.endpoint }}"}),
            json!({"size": "small", "env": wired_env, "replicas": 100}),
        ];
        let ctx = TemplateContext::default();
        for config in configs {
            let r = resource(config);
            assert!(check_config(&r, &def, "resources[0]").is_empty());
            let wired: BTreeSet<String> = r
                .config
                .iter()
                .filter(|(_, v)| !references(v).outputs.is_empty())
                .map(|(k, _)| k.clone())
                .collect();
            let rendered = render_config(&r, &def, &ctx, Wired::AsWritten(&wired)).unwrap();
            assert_eq!(config_with_defaults(&r, &def), rendered, "{:?}", r.config);
        }
    }
}
