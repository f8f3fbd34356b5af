//! Templates in composition configs (docs/src/product/compositions.md): Jinja expressions (minijinja)
//! over `params`, `resources.R.outputs.O`, `team`, `environment` and
//! `deployment`.
//!
//! - A string that is one lone expression (`"{{ params.replicas }}"`) keeps
//!   the expression's type: an integer stays an integer.
//! - Anything else renders to a string.
//! - Go-template habits are accepted: `{{ .params.size }}`.
//! - Undefined variables are errors (strict mode).
//! - Every template of a request draws on one [`TemplateBudget`] (fuel,
//!   rendered bytes, longest string), so neither a runaway loop nor many
//!   templates that each stay within their own fuel can exhaust the
//!   process (the `budget` module says why).

mod budget;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use regex::Regex;
use serde::Serialize;
use serde_json::{Map, Value};

pub use budget::{TemplateBudget, TemplateLimits};

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
    /// What the request's templates may still cost; one per request, shared
    /// by every template it renders (clones share it).
    #[serde(skip)]
    pub budget: TemplateBudget,
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
        env.set_fuel(Some(TemplateLimits::default().fuel_per_template));
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
    let allowance = ctx.budget.next_fuel()?;
    let text = strip_go_dots(text);
    let expr = lone_expression(&text);
    // A lone expression is evaluated as `{% set %}`, so that the fuel it
    // used can be read from the state afterwards; compiling it alone
    // first proves it is one expression and nothing else.
    let source = expr.map(|e| format!("{{% set nestor_value__ = ({e}) %}}"));
    let mut env: Environment<'_> = environment().clone();
    env.set_fuel(Some(allowance.fuel));
    let context = minijinja::Value::from(minijinja::value::Serde(ctx));
    let evaluated = match (expr, &source) {
        (Some(expr), Some(source)) => env
            .compile_expression(expr)
            .map_err(Failure::from)
            .and_then(|_| eval_expression(&env, expr, source, context, allowance.output_bytes)),
        _ => render_text(&env, &text, context, allowance.output_bytes),
    };
    let (value, fuel) = match evaluated {
        Ok(done) => done,
        Err(Failure::Fuel) if allowance.request_bound => return Err(ctx.budget.exhaust_fuel()),
        Err(Failure::Fuel) => {
            ctx.budget.charge_fuel(allowance.fuel);
            return Err(format!(
                "the template ran out of fuel ({} steps): is it a runaway loop?",
                allowance.fuel
            ));
        }
        Err(Failure::Output) => {
            ctx.budget.charge_fuel(allowance.fuel);
            return Err(ctx.budget.exhaust_with(Some(format!(
                "a template renders more than {} bytes",
                allowance.output_bytes
            ))));
        }
        Err(Failure::Other(message)) => {
            ctx.budget.charge_fuel(1 + text.len() as u64 / 64);
            return Err(message);
        }
    };
    ctx.budget.charge_fuel(fuel);
    ctx.budget.charge_value(&value)?;
    Ok(value)
}

/// Why an evaluation failed.
enum Failure {
    /// It ran out of fuel.
    Fuel,
    /// It rendered more text than allowed.
    Output,
    /// Anything else, described.
    Other(String),
}

impl From<minijinja::Error> for Failure {
    fn from(e: minijinja::Error) -> Self {
        if e.kind() == ErrorKind::OutOfFuel {
            Failure::Fuel
        } else {
            Failure::Other(describe(&e))
        }
    }
}

/// A lone expression, keeping its type, from its `{% set %}` form.
fn eval_expression<'s>(
    env: &Environment<'s>,
    expr: &str,
    source: &'s str,
    context: minijinja::Value,
    output_bytes: u64,
) -> Result<(Value, u64), Failure> {
    let template = env.template_from_str(source)?;
    let captured = template.render_captured_to(context, Limited::new(output_bytes))?;
    let state = captured.state();
    let fuel = state.fuel_levels().map_or(0, |(used, _)| used);
    let result = state.lookup("nestor_value__").unwrap_or_default();
    if result.is_undefined() {
        return Err(Failure::Other(format!(
            "undefined value: `{expr}` names nothing that exists"
        )));
    }
    let value = serde_json::to_value(&result)
        .map_err(|e| Failure::Other(format!("the expression's value cannot be used: {e}")))?;
    Ok((value, fuel))
}

/// Text with templates in it, rendered to a string of at most `output_bytes`.
fn render_text<'s>(
    env: &Environment<'s>,
    text: &'s str,
    context: minijinja::Value,
    output_bytes: u64,
) -> Result<(Value, u64), Failure> {
    let template = env.template_from_str(text)?;
    let mut out = Limited::new(output_bytes);
    let captured = match template.render_captured_to(context, &mut out) {
        Ok(c) => c,
        Err(_) if out.overflowed => return Err(Failure::Output),
        Err(e) => return Err(e.into()),
    };
    let fuel = captured.state().fuel_levels().map_or(0, |(used, _)| used);
    let rendered = String::from_utf8(out.bytes)
        .map_err(|_| Failure::Other("the template rendered invalid UTF-8".into()))?;
    Ok((Value::String(rendered), fuel))
}

/// A writer that refuses to grow past a limit.
struct Limited {
    bytes: Vec<u8>,
    limit: u64,
    overflowed: bool,
}

impl Limited {
    fn new(limit: u64) -> Self {
        Limited {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        }
    }
}

impl std::io::Write for Limited {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.bytes.len() + buf.len()) as u64 > self.limit {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered text too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
