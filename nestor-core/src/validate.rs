//! The validity rules of definitions (docs/src/reference/formats.md) that need no store, and value checks
//! against an input's type and validation (used for defaults here and for
//! deployment inputs by the orchestrator).
//!
//! Every rule runs; every violation is returned with its field path.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use regex::Regex;
use serde_json::Value;

use crate::error::FieldError;
use crate::model::{ResourceDefinition, Validation, ValueType};
use crate::versioning::VersionSpec;

/// Compiles a user pattern, through a small cache: catalogs repeat the same
/// few patterns thousands of times, and compiling one costs far more than
/// matching it. The cache hands out shared handles: cloning a `Regex`
/// itself builds a new pool of search caches, which cost a sync more than
/// the matches it checks (perf, benches/README.md).
fn compile(pattern: &str) -> Result<Arc<Regex>, regex::Error> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(r);
    }
    let compiled = Arc::new(Regex::new(pattern)?);
    if let Ok(mut c) = cache.lock() {
        if c.len() >= 1024 {
            c.clear();
        }
        c.insert(pattern.to_string(), compiled.clone());
    }
    Ok(compiled)
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("static pattern compiles"))
}

/// DNS-1123 label: the rule for definition names, `^[a-z][a-z0-9-]{0,61}[a-z0-9]$`
/// (2 to 63 characters).
///
/// Written out over the bytes rather than as that regex: every request
/// naming a resource checks its name, and the regex's search (then run
/// twice per `GET /api/v1/resources/{name}`) was ~1,100 of its ~31,000
/// instructions (callgrind, benches/README.md). A unit test compares the
/// two.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-');
    match bytes {
        [first, middle @ .., last] => {
            bytes.len() <= 63
                && first.is_ascii_lowercase()
                && matches!(last, b'a'..=b'z' | b'0'..=b'9')
                && middle.iter().all(inner)
        }
        _ => false,
    }
}

/// A name given to look something up by (a resource, team, composition):
/// `BAD_REQUEST` unless it follows [`is_valid_name`], so `..`, `/` and
/// control characters never reach a store or a file path, and a lookup
/// answers the same wherever it is asked.
pub fn check_name(kind: &str, value: &str) -> crate::error::Result<()> {
    if is_valid_name(value) {
        Ok(())
    } else {
        Err(crate::error::Error::bad_request(format!(
            "{} is not a valid {kind} name (lowercase letters, digits and '-')",
            excerpt(value)
        )))
    }
}

/// Whether `s` is one byte passing `first` and then only bytes passing
/// `rest`: a `^[..][..]*$` rule written out over the bytes, as
/// [`is_valid_name`] is (every definition checks several; a unit test
/// compares each rule with its regex).
fn first_then(s: &str, first: impl Fn(u8) -> bool, rest: impl Fn(u8) -> bool) -> bool {
    match s.as_bytes() {
        [head, tail @ ..] => first(*head) && tail.iter().all(|b| rest(*b)),
        [] => false,
    }
}

/// `^[a-z0-9][a-z0-9_-]*$`: providers, categories, resource types.
fn is_classifier(s: &str) -> bool {
    first_then(
        s,
        |b| matches!(b, b'a'..=b'z' | b'0'..=b'9'),
        |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'),
    )
}

/// DNS-1123 subdomain: the rule for Kubernetes object names (a Secret's).
pub fn is_dns_subdomain(name: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    name.len() <= 253
        && re(
            &R,
            r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        )
        .is_match(name)
}

/// snake_case, `^[a-z][a-z0-9_]*$`: the rule for input and output names.
pub fn is_snake_case(s: &str) -> bool {
    first_then(
        s,
        |b| b.is_ascii_lowercase(),
        |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'),
    )
}

/// Every static rule of definitions (docs/src/reference/formats.md) (all but dependency existence, which needs
/// the store and is checked by the catalog service).
pub fn validate_definition(def: &ResourceDefinition) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut err = |field: String, message: String| errors.push(FieldError::new(field, message));
    let m = &def.metadata;

    if !is_valid_name(&m.name) {
        err(
            "metadata.name".into(),
            format!("{} is not a valid name: lowercase letters, digits and '-', starting with a letter, 2 to 63 characters", excerpt(&m.name)),
        );
    }
    for (field, value) in [
        ("provider", &m.provider),
        ("category", &m.category),
        ("resource_type", &m.resource_type),
    ] {
        if !is_classifier(value) {
            err(
                format!("metadata.{field}"),
                format!("{} must match ^[a-z0-9][a-z0-9_-]*$", excerpt(value)),
            );
        }
    }

    let mut seen = HashSet::new();
    for (list, inputs) in [
        ("required_inputs", &def.spec.required_inputs),
        ("optional_inputs", &def.spec.optional_inputs),
    ] {
        for (i, input) in inputs.iter().enumerate() {
            let path = format!("spec.{list}[{i}]");
            if !is_snake_case(&input.name) {
                err(
                    format!("{path}.name"),
                    format!(
                        "{} must be snake_case (^[a-z][a-z0-9_]*$)",
                        excerpt(&input.name)
                    ),
                );
            }
            if !seen.insert(input.name.as_str()) {
                err(
                    format!("{path}.name"),
                    format!("input {} is declared twice", excerpt(&input.name)),
                );
            }
            for e in validation_fits(
                input.value_type,
                &input.validation,
                &format!("{path}.validation"),
            ) {
                errors_push(&mut err, e);
            }
            match (&input.default, list) {
                (Some(_), "required_inputs") => err(
                    format!("{path}.default"),
                    "a required input cannot have a default; make it optional".into(),
                ),
                (Some(default), _) => {
                    for e in check_value(
                        input.value_type,
                        &input.validation,
                        default,
                        &format!("{path}.default"),
                        input.sensitive,
                    ) {
                        errors_push(&mut err, e);
                    }
                }
                (None, _) => {}
            }
        }
    }

    let mut outputs = HashSet::new();
    for (i, output) in def.spec.outputs.iter().enumerate() {
        if !is_snake_case(&output.name) {
            err(
                format!("spec.outputs[{i}].name"),
                format!(
                    "{} must be snake_case (^[a-z][a-z0-9_]*$)",
                    excerpt(&output.name)
                ),
            );
        }
        if !outputs.insert(output.name.as_str()) {
            err(
                format!("spec.outputs[{i}].name"),
                format!("output {} is declared twice", excerpt(&output.name)),
            );
        }
    }

    if def.spec.supported_engines.is_empty() {
        err(
            "spec.supported_engines".into(),
            "must list at least one engine".into(),
        );
    }
    for key in def.spec.engine_configs.keys() {
        if !def.spec.supported_engines.contains(key) {
            err(
                format!("spec.engine_configs.{key}"),
                format!(
                    "{key:?} is not a supported engine (supported: {})",
                    def.spec.supported_engines.join(", ")
                ),
            );
        }
    }

    for (i, dep) in def.spec.dependencies.iter().enumerate() {
        if dep.name == m.name {
            err(
                format!("spec.dependencies[{i}].name"),
                "a definition cannot depend on itself".into(),
            );
        }
        if !is_valid_name(&dep.name) {
            err(
                format!("spec.dependencies[{i}].name"),
                format!("{} is not a valid definition name", excerpt(&dep.name)),
            );
        }
        if let Err(e) = VersionSpec::parse(&dep.version) {
            err(format!("spec.dependencies[{i}].version"), e);
        }
    }
    errors
}

fn errors_push(err: &mut impl FnMut(String, String), e: FieldError) {
    err(e.field, e.message)
}

/// Whether each validation key fits the type, patterns compile, bounds are
/// ordered and enum values have the type.
pub fn validation_fits(value_type: ValueType, v: &Validation, path: &str) -> Vec<FieldError> {
    use ValueType::*;
    let mut errors = Vec::new();
    let mut misfit = |key: &str, fits: &[ValueType]| {
        let names: Vec<&str> = fits.iter().map(|t| t.as_str()).collect();
        errors.push(FieldError::new(
            format!("{path}.{key}"),
            format!(
                "{key} does not apply to type {value_type} (only to {})",
                names.join(", ")
            ),
        ));
    };
    if v.pattern.is_some() && value_type != String {
        misfit("pattern", &[String]);
    }
    for (key, set) in [
        ("min_length", v.min_length.is_some()),
        ("max_length", v.max_length.is_some()),
    ] {
        if set && !matches!(value_type, String | Array) {
            misfit(key, &[String, Array]);
        }
    }
    for (key, set) in [("min", v.min.is_some()), ("max", v.max.is_some())] {
        if set && !matches!(value_type, Integer | Number) {
            misfit(key, &[Integer, Number]);
        }
    }
    if v.allowed.is_some() && matches!(value_type, Array | Object) {
        misfit("enum", &[String, Integer, Number, Boolean]);
    }
    if let Some(p) = &v.pattern {
        if let Err(e) = compile(p) {
            errors.push(FieldError::new(
                format!("{path}.pattern"),
                format!("pattern does not compile: {}", last_line(&e.to_string())),
            ));
        }
    }
    if let (Some(min), Some(max)) = (
        v.min.as_ref().and_then(|n| n.as_f64()),
        v.max.as_ref().and_then(|n| n.as_f64()),
    ) {
        if min > max {
            errors.push(FieldError::new(
                format!("{path}.min"),
                format!("min {min} is greater than max {max}"),
            ));
        }
    }
    if let (Some(min), Some(max)) = (v.min_length, v.max_length) {
        if min > max {
            errors.push(FieldError::new(
                format!("{path}.min_length"),
                format!("min_length {min} is greater than max_length {max}"),
            ));
        }
    }
    if value_type == Integer {
        for (key, n) in [("min", &v.min), ("max", &v.max)] {
            if n.as_ref().is_some_and(|n| !(n.is_i64() || n.is_u64())) {
                errors.push(FieldError::new(
                    format!("{path}.{key}"),
                    format!("{key} must be a whole number for an integer input"),
                ));
            }
        }
    }
    if let Some(values) = &v.allowed {
        if values.is_empty() {
            errors.push(FieldError::new(
                format!("{path}.enum"),
                "enum must list at least one value",
            ));
        }
        for (i, value) in values.iter().enumerate() {
            if !matches!(value_type, Array | Object) && !value_type.matches(value) {
                errors.push(FieldError::new(
                    format!("{path}.enum[{i}]"),
                    format!("{value} is not of type {value_type}"),
                ));
            }
        }
    }
    errors
}

fn last_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// How many bytes of a value an error message quotes at most.
pub const ECHO_LIMIT: usize = 64;

/// `text` for an error message: whole when short, else its first
/// [`ECHO_LIMIT`] bytes (cut at a character boundary) and its length, so a
/// 900 KB value never becomes a 1.8 MB error body.
pub fn excerpt(text: &str) -> String {
    if text.len() <= ECHO_LIMIT {
        return format!("{text:?}");
    }
    let mut end = ECHO_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..end], text.len())
}

/// Checks a value against a type and its validation; every violation is
/// returned with `path` as its field. A `sensitive` value must be a secret
/// reference ([`crate::check_sensitive`]: a literal is refused, never
/// quoted); any other is quoted cut to [`ECHO_LIMIT`] bytes.
pub fn check_value(
    value_type: ValueType,
    v: &Validation,
    value: &Value,
    path: &str,
    sensitive: bool,
) -> Vec<FieldError> {
    if sensitive {
        return crate::secret::check_sensitive(value, path)
            .into_iter()
            .collect();
    }
    let mut errors = Vec::new();
    let shown = |what: &str| -> String {
        if sensitive {
            format!("the {what} (sensitive, not shown)")
        } else {
            quote(value)
        }
    };
    if !value_type.matches(value) {
        let found = if sensitive {
            kind_of(value).to_string()
        } else {
            describe(value)
        };
        errors.push(FieldError::new(
            path,
            format!("expected {value_type}, found {found}"),
        ));
        return errors;
    }
    if let (Some(pattern), Some(s)) = (&v.pattern, value.as_str()) {
        // A pattern that does not compile is reported by `validation_fits`.
        if compile(pattern).is_ok_and(|r| !r.is_match(s)) {
            errors.push(FieldError::new(
                path,
                format!("{} does not match pattern {pattern:?}", shown("value")),
            ));
        }
    }
    let length = match value {
        Value::String(s) => Some(s.chars().count() as u64),
        Value::Array(a) => Some(a.len() as u64),
        _ => None,
    };
    if let Some(len) = length {
        let len_text = if sensitive {
            "the length (sensitive, not shown)".to_string()
        } else {
            format!("length {len}")
        };
        if let Some(min) = v.min_length.filter(|m| len < *m) {
            errors.push(FieldError::new(
                path,
                format!("{len_text} is below min_length {min}"),
            ));
        }
        if let Some(max) = v.max_length.filter(|m| len > *m) {
            errors.push(FieldError::new(
                path,
                format!("{len_text} is above max_length {max}"),
            ));
        }
    }
    if let Some(n) = value.as_f64().filter(|_| value.is_number()) {
        if let Some(min) = v.min.as_ref().and_then(|m| m.as_f64()).filter(|m| n < *m) {
            errors.push(FieldError::new(
                path,
                format!("{} is below min {min}", shown("number")),
            ));
        }
        if let Some(max) = v.max.as_ref().and_then(|m| m.as_f64()).filter(|m| n > *m) {
            errors.push(FieldError::new(
                path,
                format!("{} is above max {max}", shown("number")),
            ));
        }
    }
    if let Some(allowed) = &v.allowed {
        let equal = |a: &Value| {
            a == value || (a.is_number() && value.is_number() && a.as_f64() == value.as_f64())
        };
        if !allowed.iter().any(equal) {
            let list: Vec<String> = allowed.iter().map(quote).collect();
            errors.push(FieldError::new(
                path,
                format!("{} is not one of [{}]", shown("value"), list.join(", ")),
            ));
        }
    }
    errors
}

/// A value as an error message quotes it: strings cut by [`excerpt`],
/// containers by their size.
fn quote(v: &Value) -> String {
    match v {
        Value::String(s) => excerpt(s),
        Value::Array(a) => format!("a list of {} items", a.len()),
        Value::Object(m) => format!("a mapping of {} keys", m.len()),
        other => other.to_string(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if n.is_f64() => format!("number {n}"),
        Value::Number(n) => format!("integer {n}"),
        Value::String(s) => format!("string {}", excerpt(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string of up to 3 characters over an alphabet with each class
    /// of the byte rules (and a few outside them).
    fn short_strings() -> Vec<String> {
        let alphabet = [
            'a', 'q', 'z', '0', '9', '-', 'A', '_', '.', '/', ' ', '\n', 'é',
        ];
        let mut strings = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..3 {
            let next: Vec<String> = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(next.iter().cloned());
            last = next;
        }
        strings
    }

    /// The byte rule of [`is_valid_name`] against the regex it replaced,
    /// on [`short_strings`] and on lengths around the 63-character bound.
    #[test]
    fn names_follow_the_dns_label_regex() {
        let regex = Regex::new(r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$").unwrap();
        let mut names = short_strings();
        for len in 60..=66 {
            for (first, fill, end) in [
                ("a", "b", "c"),
                ("a", "-", "9"),
                ("a", "b", "-"),
                ("1", "b", "c"),
            ] {
                names.push(format!("{first}{}{end}", fill.repeat(len - 2)));
            }
        }
        assert!(names.len() > 2000);
        for name in &names {
            assert_eq!(is_valid_name(name), regex.is_match(name), "{name:?}");
        }
    }

    /// The byte rules of classifiers and snake_case names against the
    /// regexes they replaced.
    #[test]
    fn classifiers_and_snake_case_follow_their_regexes() {
        let classifier = Regex::new(r"^[a-z0-9][a-z0-9_-]*$").unwrap();
        let snake = Regex::new(r"^[a-z][a-z0-9_]*$").unwrap();
        let strings = short_strings();
        assert!(strings.iter().any(|s| is_classifier(s)));
        assert!(strings.iter().any(|s| is_snake_case(s)));
        for s in &strings {
            assert_eq!(is_classifier(s), classifier.is_match(s), "{s:?}");
            assert_eq!(is_snake_case(s), snake.is_match(s), "{s:?}");
        }
    }
}
