//! Templates in composition configs (SPEC §4): Jinja expressions (minijinja)
//! over `params`, `resources.R.outputs.O`, `team`, `environment` and
//! `deployment`.
//!
//! - A string that is one lone expression (`"{{ params.replicas }}"`) keeps
//!   the expression's type: an integer stays an integer.
//! - Anything else renders to a string.
//! - Go-template habits are accepted: `{{ .params.size }}`.
//! - Undefined variables are errors (strict mode), and every evaluation has
//!   a fuel budget so a hostile template cannot loop forever.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use regex::Regex;
use serde::Serialize;
use serde_json::{Map, Value};

/// Fuel for one evaluation; ample for real configs, fatal for runaway loops.
const FUEL: u64 = 100_000;

/// The variables a template sees.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TemplateContext {
    /// Composition parameters after defaults.
    pub params: BTreeMap<String, Value>,
    /// `resources.NAME.outputs.OUTPUT` of resources already rendered.
    pub resources: BTreeMap<String, ResourceOutputs>,
    /// The deploying team.
    pub team: String,
    /// The target environment.
    pub environment: String,
    /// The deployment's name.
    pub deployment: String,
}

/// The outputs of one rendered resource, as templates see them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResourceOutputs {
    /// Output name → value.
    pub outputs: BTreeMap<String, Value>,
}

/// What a value's templates refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// `params.X` names.
    pub params: BTreeSet<String>,
    /// `(resource, output)` pairs of `resources.R.outputs.O`.
    pub outputs: BTreeSet<(String, String)>,
    /// Resources referred to without a specific output (`resources.R`).
    pub resources: BTreeSet<String>,
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env
    })
}

/// `{{ .params.x }}` → `{{ params.x }}`: a dot that starts a path after an
/// opening delimiter, a space or an opening bracket.
fn strip_go_dots(text: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(\{\{-?|[\s(\[,])\.(params|resources|team|environment|deployment)\b")
            .expect("static regex")
    });
    re.replace_all(text, "$1$2").into_owned()
}

/// The expression inside a string that is exactly one `{{ … }}`.
fn lone_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| {
        inner
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim()
    })
}

/// Whether a string holds template syntax.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Renders every template inside `value` (strings, recursively in arrays
/// and objects). Errors name the problem in the template.
pub fn render_value(value: &Value, ctx: &TemplateContext) -> Result<Value, String> {
    match value {
        Value::String(s) if is_template(s) => render_string(s, ctx),
        Value::Array(items) => items
            .iter()
            .map(|v| render_value(v, ctx))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), render_value(v, ctx)?)))
            .collect::<Result<Map<String, Value>, String>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

fn render_string(text: &str, ctx: &TemplateContext) -> Result<Value, String> {
    let text = strip_go_dots(text);
    let env = environment();
    let context = minijinja::Value::from(minijinja::value::Serde(ctx));
    if let Some(expr) = lone_expression(&text) {
        let compiled = env.compile_expression(expr).map_err(|e| describe(&e))?;
        let result = compiled.eval(context).map_err(|e| describe(&e))?;
        if result.is_undefined() {
            return Err(format!(
                "undefined value: `{expr}` names nothing that exists"
            ));
        }
        return serde_json::to_value(&result)
            .map_err(|e| format!("the expression's value cannot be used: {e}"));
    }
    env.render_str(&text, context)
        .map(Value::String)
        .map_err(|e| describe(&e))
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// Checks that every template in `value` parses; returns the first error.
pub fn check_syntax(value: &Value) -> Result<(), String> {
    let mut result = Ok(());
    walk_strings(value, &mut |s| {
        if result.is_ok() && is_template(s) {
            let text = strip_go_dots(s);
            let env = environment();
            result = match lone_expression(&text) {
                Some(expr) => env
                    .compile_expression(expr)
                    .map(|_| ())
                    .map_err(|e| describe(&e)),
                None => env
                    .template_from_str(&text)
                    .map(|_| ())
                    .map_err(|e| describe(&e)),
            };
        }
    });
    result
}

fn walk_strings(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

/// Finds the params, resources and outputs that templates in `value` use.
pub fn references(value: &Value) -> References {
    static PARAM: OnceLock<Regex> = OnceLock::new();
    static OUTPUT: OnceLock<Regex> = OnceLock::new();
    let param = PARAM.get_or_init(|| {
        Regex::new(r#"\bparams(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]+)['"]\s*\])"#)
            .expect("static")
    });
    let output = OUTPUT.get_or_init(|| {
        Regex::new(r#"\bresources(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]+)['"]\s*\])(?:\.outputs(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]+)['"]\s*\]))?"#)
            .expect("static")
    });
    let mut refs = References::default();
    walk_strings(value, &mut |s| {
        if !is_template(s) {
            return;
        }
        let s = strip_go_dots(s);
        for c in param.captures_iter(&s) {
            if let Some(m) = c.get(1).or_else(|| c.get(2)) {
                refs.params.insert(m.as_str().to_string());
            }
        }
        for c in output.captures_iter(&s) {
            let Some(resource) = c.get(1).or_else(|| c.get(2)) else {
                continue;
            };
            match c.get(3).or_else(|| c.get(4)) {
                Some(out) => {
                    refs.outputs
                        .insert((resource.as_str().to_string(), out.as_str().to_string()));
                }
                None => {
                    refs.resources.insert(resource.as_str().to_string());
                }
            }
        }
    });
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> TemplateContext {
        let mut c = TemplateContext {
            team: "alpha".into(),
            environment: "staging".into(),
            deployment: "checkout".into(),
            ..Default::default()
        };
        c.params.insert("size".into(), json!("small"));
        c.params.insert("replicas".into(), json!(3));
        c.resources.insert(
            "database".into(),
            ResourceOutputs {
                outputs: BTreeMap::from([("endpoint".to_string(), json!("db.internal:3306"))]),
            },
        );
        c
    }

    #[test]
    fn lone_expressions_keep_their_type() {
        assert_eq!(
            render_value(&json!("{{ params.replicas }}"), &ctx()).unwrap(),
            json!(3)
        );
        assert_eq!(
            render_value(&json!("{{ params.replicas * 2 }}"), &ctx()).unwrap(),
            json!(6)
        );
        assert_eq!(
            render_value(&json!("{{ params.replicas > 2 }}"), &ctx()).unwrap(),
            json!(true)
        );
        let lookup = "{{ {'small': 'db.t3.micro', 'large': 'db.r5.large'}[params.size] }}";
        assert_eq!(
            render_value(&json!(lookup), &ctx()).unwrap(),
            json!("db.t3.micro")
        );
    }

    #[test]
    fn mixed_text_renders_to_a_string_and_go_dots_are_accepted() {
        let v = json!({"env": {"DB_HOST": "{{ resources.database.outputs.endpoint }}"}, "name": "{{ team }}-{{ .params.size }}", "n": 5});
        assert_eq!(
            render_value(&v, &ctx()).unwrap(),
            json!({"env": {"DB_HOST": "db.internal:3306"}, "name": "alpha-small", "n": 5})
        );
        assert_eq!(
            render_value(&json!("{{ .environment }}"), &ctx()).unwrap(),
            json!("staging")
        );
    }

    #[test]
    fn undefined_names_and_runaway_loops_are_errors() {
        assert!(render_value(&json!("{{ params.nope }}"), &ctx()).is_err());
        assert!(render_value(&json!("{{ resources.cache.outputs.host }}"), &ctx()).is_err());
        let runaway =
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
        assert!(render_value(&json!(runaway), &ctx())
            .unwrap_err()
            .contains("fuel"));
        assert!(check_syntax(&json!("{{ params.size ")).is_err());
        assert!(check_syntax(&json!({"a": ["{{ params.size }}"]})).is_ok());
    }

    #[test]
    fn references_are_found() {
        let v = json!({"a": "{{ params.size }} {{ .params.replicas }}", "b": ["{{ resources.database.outputs.endpoint }}"], "c": "{{ resources['cache'].outputs['host'] }}", "d": "params.ignored"});
        let r = references(&v);
        assert_eq!(
            r.params,
            BTreeSet::from(["size".to_string(), "replicas".to_string()])
        );
        assert_eq!(
            r.outputs,
            BTreeSet::from([
                ("database".to_string(), "endpoint".to_string()),
                ("cache".to_string(), "host".to_string())
            ])
        );
    }
}
