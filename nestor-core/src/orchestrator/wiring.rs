//! Outputs that cross resources: how a producer's output reaches a
//! consumer's input as a typed [`InputReference`], and how a wiring the
//! consumer cannot resolve becomes `VALIDATION_FAILED` naming both sides.
//!
//! Templates see an output known at render time as its value, so it can be
//! embedded in text like any other value. Every other output (a Secret key,
//! a stack output) is seen as a marker string; after the templates ran,
//! a string that is exactly a marker becomes a reference at that place in
//! the input, and a string that merely contains one is refused: a
//! reference is only ever a whole value, because no consumer's tool can
//! splice a Secret's content into the middle of a string.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::engine::{field_path, InputReference, Reach, RenderOutput};
use crate::error::FieldError;
use crate::model::ResourceDefinition;

const OPEN: &str = "\u{27ea}nestor-ref:";
const CLOSE: char = '\u{27eb}';

/// What a template sees for output `output` of `resource`.
pub(crate) fn template_value(resource: &str, output: &str, reach: &Reach) -> Value {
    match &reach.value {
        Some(v) if !crate::redact::is_redacted(v) => v.clone(),
        _ => Value::String(format!("{OPEN}{resource}:{output}{CLOSE}")),
    }
}

/// The template view of a rendered resource's outputs.
pub(crate) fn template_outputs(resource: &str, out: &RenderOutput) -> BTreeMap<String, Value> {
    out.outputs
        .iter()
        .map(|(name, reach)| (name.clone(), template_value(resource, name, reach)))
        .collect()
}

/// The stored (readable) form of a render's outputs.
pub(crate) fn stored_outputs(out: &RenderOutput) -> BTreeMap<String, Value> {
    out.outputs
        .iter()
        .map(|(name, reach)| {
            let value = serde_json::to_value(reach).unwrap_or(Value::Null);
            (name.clone(), value)
        })
        .collect()
}

/// A producer as the consumer's references need it.
pub(crate) struct Producer<'a> {
    /// Its engine.
    pub engine: &'a str,
    /// Its definition (output types and sensitivity).
    pub definition: &'a ResourceDefinition,
    /// What it rendered.
    pub output: &'a RenderOutput,
}

/// Replaces every marker in `inputs` (the consumer's rendered inputs) by
/// the producer output's reach as JSON and returns the references; or the
/// wirings that cannot be made, with fields under
/// `resources.<consumer>.config`.
pub(crate) fn extract(
    consumer: &str,
    consumer_engine: &str,
    inputs: &mut BTreeMap<String, Value>,
    producers: &BTreeMap<&str, Producer<'_>>,
) -> Result<Vec<InputReference>, Vec<FieldError>> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (input, value) in inputs.iter_mut() {
        let mut path = Vec::new();
        walk(value, &mut path, &mut |path, value| {
            let Value::String(text) = value else { return };
            if !text.to_lowercase().contains(&OPEN.to_lowercase()) {
                return;
            }
            let field = format!("resources.{consumer}.config.{}", field_path(input, path));
            let Some((producer, output)) = parse_marker(text) else {
                errors.push(FieldError::new(
                    field,
                    embedded_message(consumer, consumer_engine, text, producers),
                ));
                return;
            };
            let Some(p) = producers.get(producer.as_str()) else {
                errors.push(FieldError::new(
                    field,
                    format!("{producer:?} has not rendered: its outputs are unknown"),
                ));
                return;
            };
            let reach = p.output.outputs.get(&output).cloned().unwrap_or_default();
            if !reach.is_reachable() {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "{consumer} ({consumer_engine}) cannot use output {output} of {producer} ({}): {}",
                        p.engine,
                        if reach.internal.is_some() {
                            format!("it is {}", reach.describe())
                        } else if reach.value.as_ref().is_some_and(crate::redact::is_redacted) {
                            "it is sensitive and its engine gives it only as a value, \
                             which never leaves the producer (a sensitive output crosses resources only as a Secret key or a stack output)"
                                .to_string()
                        } else {
                            "the engine gave no way to reach it".to_string()
                        }
                    ),
                ));
                return;
            }
            let spec = p.definition.spec.outputs.iter().find(|o| o.name == output);
            let reach = reach.without_value();
            *value = serde_json::to_value(&reach).unwrap_or(Value::Null);
            found.push(InputReference {
                input: input.clone(),
                path: path.to_vec(),
                producer: producer.clone(),
                producer_engine: p.engine.to_string(),
                output: output.clone(),
                output_type: spec.map_or("string", |o| o.value_type.as_str()).to_string(),
                sensitive: spec.is_some_and(|o| o.sensitive),
                reach,
            });
        });
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// `(producer, output)` of a string that is exactly one marker.
fn parse_marker(text: &str) -> Option<(String, String)> {
    let inner = text.strip_prefix(OPEN)?.strip_suffix(CLOSE)?;
    let (producer, output) = inner.split_once(':')?;
    (!producer.is_empty() && !output.contains(':') && !output.contains(CLOSE))
        .then(|| (producer.to_string(), output.to_string()))
}

/// Why a string that holds a reference among other text is refused.
fn embedded_message(
    consumer: &str,
    consumer_engine: &str,
    text: &str,
    producers: &BTreeMap<&str, Producer<'_>>,
) -> String {
    let lower = text.to_lowercase();
    let named = lower
        .find(&OPEN.to_lowercase())
        .and_then(|at| {
            let rest = &text[at + OPEN.len()..];
            let end = rest.find(CLOSE)?;
            rest[..end].split_once(':')
        })
        .and_then(|(producer, output)| {
            let (name, p) = producers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(producer))?;
            let reach = p.output.outputs.iter().find_map(|(o, r)| {
                o.eq_ignore_ascii_case(output)
                    .then(|| (o.clone(), r.describe()))
            })?;
            Some(format!(
                "output {} of {name} ({}), found at {}",
                reach.0, p.engine, reach.1
            ))
        })
        .unwrap_or_else(|| "another resource's output".into());
    format!(
        "{consumer} ({consumer_engine}) cannot resolve {named} inside a longer string or an expression: \
         a reference is passed only as a whole value (\"{{{{ resources.R.outputs.O }}}}\" alone), \
         which the consumer's tool resolves at run time"
    )
}

fn walk(value: &mut Value, path: &mut Vec<String>, f: &mut impl FnMut(&[String], &mut Value)) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                walk(item, path, f);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                path.push(key.clone());
                walk(item, path, f);
                path.pop();
            }
        }
        other => f(path, other),
    }
}

/// Rewrites a consumer's refusal: every field error naming one of its
/// references becomes a wiring error naming the consumer, the input, the
/// producer's output and both engines; the others keep their text under
/// the consumer's config. Returns whether any reference was refused.
pub(crate) fn explain_refusals(
    consumer: &str,
    consumer_engine: &str,
    references: &[InputReference],
    errors: Vec<FieldError>,
) -> (bool, Vec<FieldError>) {
    let mut refused = false;
    let explained = errors
        .into_iter()
        .map(|e| match references.iter().find(|r| r.field() == e.field) {
            Some(r) => {
                refused = true;
                FieldError::new(
                    format!("resources.{consumer}.config.{}", r.field()),
                    format!(
                        "{consumer} ({consumer_engine}) cannot resolve input {} = output {} of {} ({}), found at {}: {}",
                        r.field(),
                        r.output,
                        r.producer,
                        r.producer_engine,
                        r.reach.describe(),
                        e.message
                    ),
                )
            }
            None => e,
        })
        .collect();
    (refused, explained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markers_round_trip_and_embedded_ones_are_found() {
        let reach = Reach::secret_key("s", "ns", "endpoint");
        let marker = template_value("db", "endpoint", &reach);
        assert_eq!(
            parse_marker(marker.as_str().unwrap()),
            Some(("db".into(), "endpoint".into()))
        );
        assert_eq!(
            template_value("cache", "host", &Reach::value("h")),
            json!("h")
        );
        let embedded = format!("mysql://{}:3306", marker.as_str().unwrap());
        assert!(parse_marker(&embedded).is_none());
    }
}
