//! YAML files → canonical resource definitions (SPEC §1).
//!
//! Parsing is done on a generic value tree rather than with
//! `#[serde(deny_unknown_fields)]` so that every problem of a document is
//! reported at once, each with its field path, instead of stopping at the
//! first. Aliases (camelCase keys, `ComponentDefinition`, `spec.engines`,
//! `spec.inputs`, classification under `spec`) are normalised here and
//! nowhere else.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, FieldError};
use crate::model::*;
use crate::validate::validate_definition;
use crate::versioning::parse_version;

/// Largest file the parser reads; definitions are small, and a bigger file
/// is almost certainly not one (or an attack).
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// A document of a multi-document YAML file, before interpretation.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDocument {
    /// Index in the file, from 0.
    pub index: usize,
    /// Line of its first line in the file, from 1.
    pub line: usize,
    /// The document's text.
    pub text: String,
    /// The parsed tree, or the YAML error.
    pub value: Result<Value, FieldError>,
}

/// What one document turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A valid resource definition.
    Definition(Box<ResourceDefinition>),
    /// A Nestor composition (`composer.nestor.io/v1`), left to the composer.
    Composition(Value),
    /// A document that is not Nestor's: skipped with a warning, never an error.
    Foreign {
        /// Its apiVersion, if any.
        api_version: String,
        /// Its kind, if any.
        kind: String,
    },
    /// A document that is Nestor's but invalid; every problem is listed.
    Invalid(Vec<FieldError>),
}

/// A document with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct LocatedDocument {
    /// Index in the file, from 0.
    pub index: usize,
    /// Line of its first line, from 1.
    pub line: usize,
    /// What it is.
    pub document: Document,
}

/// Splits a YAML file into documents on `---` / `...` markers, keeping
/// each one's first line so errors can point into the file.
pub fn split_documents(text: &str) -> Vec<RawDocument> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    let flush = |current: &mut String, start: usize, docs: &mut Vec<RawDocument>| {
        if current.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
        }) {
            let value = parse_yaml_value(current).map_err(|m| FieldError::new("", m));
            docs.push(RawDocument { index: docs.len(), line: start, text: std::mem::take(current), value });
        }
        current.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let is_start = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_start || line == "..." {
            flush(&mut current, start, &mut docs);
            start = i + 2;
            if let Some(rest) = line.strip_prefix("---").filter(|r| !r.trim().is_empty()) {
                // `--- {inline: doc}` starts the document on the marker line.
                current.push_str(rest.trim_start());
                current.push('\n');
                start = i + 1;
            }
            continue;
        }
        if current.is_empty() && line.trim().is_empty() {
            start = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    flush(&mut current, start, &mut docs);
    docs
}

/// Parses one YAML document into a JSON value tree. The YAML library refuses
/// alias bombs (repetition limit) and deep nesting (recursion limit) with an
/// error instead of exhausting memory or stack.
pub fn parse_yaml_value(text: &str) -> Result<Value, String> {
    serde_yaml::from_str::<Value>(text).map_err(|e| format!("invalid YAML: {e}"))
}

/// Parses a whole file's bytes: size and encoding checks, then every document.
pub fn parse_file(bytes: &[u8]) -> Result<Vec<LocatedDocument>, FieldError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(FieldError::new(
            "",
            format!("file is {} bytes, larger than the {} byte limit for catalog files", bytes.len(), MAX_FILE_BYTES),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| FieldError::new("", format!("file is not valid UTF-8 (at byte {})", e.valid_up_to())))?;
    Ok(split_documents(text)
        .into_iter()
        .map(|raw| {
            let document = match &raw.value {
                Err(e) => Document::Invalid(vec![e.clone()]),
                Ok(value) => {
                    let mut doc = interpret(value);
                    if let Document::Invalid(errors) = &mut doc {
                        locate_lines(&raw.text, raw.line, errors);
                    }
                    doc
                }
            };
            LocatedDocument { index: raw.index, line: raw.line, document }
        })
        .collect())
}

/// Decides what a parsed document is and, for definitions, parses and
/// validates it (everything that needs no store).
pub fn interpret(value: &Value) -> Document {
    let Some(map) = value.as_object() else {
        return Document::Invalid(vec![FieldError::new("", "a document must be a mapping")]);
    };
    let api = map.get("apiVersion").or_else(|| map.get("api_version")).and_then(Value::as_str).unwrap_or("");
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    match api {
        DEFINITION_API_VERSION => match parse_definition(value) {
            Ok(def) => Document::Definition(Box::new(def)),
            Err(errors) => Document::Invalid(errors),
        },
        "composer.nestor.io/v1" => Document::Composition(value.clone()),
        _ => Document::Foreign { api_version: api.to_string(), kind: kind.to_string() },
    }
}

/// Parses and statically validates a definition from YAML text (one document).
pub fn parse_definition_yaml(text: &str) -> Result<ResourceDefinition, Error> {
    let docs = split_documents(text);
    let [doc] = docs.as_slice() else {
        return Err(Error::bad_request(format!("expected one YAML document, found {}", docs.len())));
    };
    let value = doc.value.clone().map_err(|e| Error::bad_request(e.message))?;
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
            if !errors.iter().any(|p| !p.field.is_empty() && e.field.starts_with(&p.field)) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            return Ok(def);
        }
    }
    Err(errors)
}

/// Converts `camelCase` to `snake_case`; snake_case passes through.
fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A mapping whose keys were normalised to snake_case, remembering the
/// spelling each came from so errors can quote it.
struct Keys {
    path: String,
    entries: BTreeMap<String, (String, Value)>,
}

#[derive(Default)]
struct Parser {
    errors: Vec<FieldError>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Parser {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Normalises a mapping's keys; reports non-mappings and duplicates that
    /// differ only in spelling (`resourceType` and `resource_type`).
    fn keys(&mut self, value: Option<&Value>, path: &str) -> Option<Keys> {
        let value = value?;
        let Some(map) = value.as_object() else {
            self.err(path, "must be a mapping");
            return None;
        };
        let mut entries = BTreeMap::new();
        for (k, v) in map {
            let canonical = snake(k);
            if let Some((first, _)) = entries.get(&canonical) {
                self.err(join(path, &canonical), format!("given twice, as {first:?} and {k:?}"));
                continue;
            }
            entries.insert(canonical, (k.clone(), v.clone()));
        }
        Some(Keys { path: path.to_string(), entries })
    }

    /// Renames an alias to its canonical key inside `keys`.
    fn alias(&mut self, keys: &mut Keys, alias: &str, canonical: &str) {
        if let Some(entry) = keys.entries.remove(alias) {
            if keys.entries.contains_key(canonical) {
                self.err(join(&keys.path, canonical), format!("given twice, as {canonical:?} and its alias {alias:?}"));
            } else {
                keys.entries.insert(canonical.to_string(), entry);
            }
        }
    }

    /// Reports every key not in `allowed`.
    fn unknown(&mut self, keys: &Keys, allowed: &[&str]) {
        for (canonical, (original, _)) in &keys.entries {
            if !allowed.contains(&canonical.as_str()) {
                let hint = closest(canonical, allowed).map(|c| format!(" (did you mean {c:?}?)")).unwrap_or_default();
                self.err(join(&keys.path, original), format!("unknown key {original:?}{hint}"));
            }
        }
    }

    fn string(&mut self, keys: &Keys, key: &str, required: bool) -> String {
        match keys.entries.get(key) {
            None | Some((_, Value::Null)) => {
                if required {
                    self.err(join(&keys.path, key), "is required");
                }
                String::new()
            }
            Some((_, Value::String(s))) => s.clone(),
            Some((_, other)) => {
                self.err(join(&keys.path, key), format!("must be a string, found {}", type_name(other)));
                String::new()
            }
        }
    }

    fn boolean(&mut self, keys: &Keys, key: &str) -> bool {
        match keys.entries.get(key) {
            None | Some((_, Value::Null)) => false,
            Some((_, Value::Bool(b))) => *b,
            Some((_, other)) => {
                self.err(join(&keys.path, key), format!("must be true or false, found {}", type_name(other)));
                false
            }
        }
    }

    fn string_list(&mut self, keys: &Keys, key: &str) -> Vec<String> {
        let path = join(&keys.path, key);
        match keys.entries.get(key) {
            None | Some((_, Value::Null)) => Vec::new(),
            Some((_, Value::Array(items))) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    other => {
                        self.err(format!("{path}[{i}]"), format!("must be a string, found {}", type_name(other)));
                        None
                    }
                })
                .collect(),
            Some((_, other)) => {
                self.err(path, format!("must be a list of strings, found {}", type_name(other)));
                Vec::new()
            }
        }
    }

    fn string_map(&mut self, keys: &Keys, key: &str) -> BTreeMap<String, String> {
        let path = join(&keys.path, key);
        match keys.entries.get(key) {
            None | Some((_, Value::Null)) => BTreeMap::new(),
            Some((_, Value::Object(map))) => map
                .iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    Value::Number(n) => Some((k.clone(), n.to_string())),
                    Value::Bool(b) => Some((k.clone(), b.to_string())),
                    other => {
                        self.err(join(&path, k), format!("must be a string, found {}", type_name(other)));
                        None
                    }
                })
                .collect(),
            Some((_, other)) => {
                self.err(path, format!("must be a mapping of strings, found {}", type_name(other)));
                BTreeMap::new()
            }
        }
    }

    fn list<'v>(&mut self, keys: &'v Keys, key: &str) -> Vec<(String, &'v Value)> {
        let path = join(&keys.path, key);
        match keys.entries.get(key) {
            None | Some((_, Value::Null)) => Vec::new(),
            Some((_, Value::Array(items))) => {
                items.iter().enumerate().map(|(i, v)| (format!("{path}[{i}]"), v)).collect()
            }
            Some((_, other)) => {
                self.err(path, format!("must be a list, found {}", type_name(other)));
                Vec::new()
            }
        }
    }

    fn definition(&mut self, value: &Value) -> Option<ResourceDefinition> {
        let top = self.keys(Some(value), "")?;
        self.unknown(&top, &["api_version", "kind", "metadata", "spec"]);
        let kind = self.string(&top, "kind", true);
        if !kind.is_empty() && kind != DEFINITION_KIND && kind != "ComponentDefinition" {
            self.err("kind", format!("must be {DEFINITION_KIND} (or ComponentDefinition), found {kind:?}"));
        }
        let mut meta = match self.keys(top.entries.get("metadata").map(|(_, v)| v), "metadata") {
            Some(m) => m,
            None => {
                if !top.entries.contains_key("metadata") {
                    self.err("metadata", "is required");
                }
                Keys { path: "metadata".into(), entries: BTreeMap::new() }
            }
        };
        let mut spec = match self.keys(top.entries.get("spec").map(|(_, v)| v), "spec") {
            Some(s) => s,
            None => {
                if !top.entries.contains_key("spec") {
                    self.err("spec", "is required");
                }
                Keys { path: "spec".into(), entries: BTreeMap::new() }
            }
        };
        // Classification may be written under spec; it belongs to metadata.
        for key in ["provider", "category", "resource_type"] {
            if let Some(entry) = spec.entries.remove(key) {
                match meta.entries.get(key) {
                    Some((_, v)) if v != &entry.1 => {
                        self.err(format!("spec.{key}"), format!("differs from metadata.{key}"));
                    }
                    Some(_) => {}
                    None => {
                        meta.entries.insert(key.to_string(), entry);
                    }
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

    fn metadata(&mut self, m: &Keys) -> Metadata {
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
                self.err("metadata.version", format!("must be a quoted string such as \"1.2.0\", found {other}"));
                semver::Version::new(0, 0, 0)
            }
        };
        let maturity = match self.string(m, "maturity", false).as_str() {
            "" | "alpha" => Maturity::Alpha,
            "beta" => Maturity::Beta,
            "stable" => Maturity::Stable,
            other => {
                self.err("metadata.maturity", format!("must be alpha, beta or stable, found {other:?}"));
                Maturity::Alpha
            }
        };
        let support_level = match self.string(m, "support_level", false).as_str() {
            "" | "community" => SupportLevel::Community,
            "supported" => SupportLevel::Supported,
            other => {
                self.err("metadata.support_level", format!("must be community or supported, found {other:?}"));
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

    fn spec(&mut self, s: &mut Keys) -> Spec {
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
        let mut required: Vec<Input> =
            self.list(s, "required_inputs").into_iter().filter_map(|(p, v)| self.input(v, &p, false).map(|i| i.0)).collect();
        let mut optional: Vec<Input> =
            self.list(s, "optional_inputs").into_iter().filter_map(|(p, v)| self.input(v, &p, false).map(|i| i.0)).collect();
        for (path, v) in self.list(s, "inputs") {
            if let Some((input, is_required)) = self.input(v, &path, true) {
                if is_required { required.push(input) } else { optional.push(input) }
            }
        }
        let outputs = self.list(s, "outputs").into_iter().filter_map(|(p, v)| self.output(v, &p)).collect();
        let dependencies = self.list(s, "dependencies").into_iter().filter_map(|(p, v)| self.dependency(v, &p)).collect();
        let engine_configs = match s.entries.get("engine_configs") {
            None | Some((_, Value::Null)) => BTreeMap::new(),
            Some((_, Value::Object(map))) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some((_, other)) => {
                self.err("spec.engine_configs", format!("must be a mapping of engine → configuration, found {}", type_name(other)));
                BTreeMap::new()
            }
        };
        if !s.entries.contains_key("supported_engines") {
            self.err("spec.supported_engines", "is required (a non-empty list of engines)");
        }
        Spec {
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
        let mut allowed = vec!["name", "type", "description", "sensitive", "default", "validation"];
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
        let default = k.entries.get("default").map(|(_, v)| v.clone()).filter(|v| !v.is_null());
        let required = match k.entries.get("required") {
            Some((_, Value::Bool(b))) => *b,
            Some((_, other)) => {
                self.err(join(path, "required"), format!("must be true or false, found {}", type_name(other)));
                false
            }
            None => default.is_none(),
        };
        let validation = self.validation(k.entries.get("validation").map(|(_, v)| v), &join(path, "validation"));
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

    fn validation(&mut self, value: Option<&Value>, path: &str) -> Validation {
        let Some(k) = self.keys(value.filter(|v| !v.is_null()), path) else { return Validation::default() };
        self.unknown(&k, &["pattern", "min_length", "max_length", "min", "max", "enum"]);
        let mut number = |key: &str| -> Option<serde_json::Number> {
            match k.entries.get(key) {
                None | Some((_, Value::Null)) => None,
                Some((_, Value::Number(n))) => Some(n.clone()),
                Some((_, other)) => {
                    self.err(join(path, key), format!("must be a number, found {}", type_name(other)));
                    None
                }
            }
        };
        let (min, max) = (number("min"), number("max"));
        let mut length = |key: &str| -> Option<u64> {
            match k.entries.get(key) {
                None | Some((_, Value::Null)) => None,
                Some((_, v)) => v.as_u64().or_else(|| {
                    self.err(join(path, key), format!("must be a non-negative integer, found {v}"));
                    None
                }),
            }
        };
        let (min_length, max_length) = (length("min_length"), length("max_length"));
        let allowed = match k.entries.get("enum") {
            None | Some((_, Value::Null)) => None,
            Some((_, Value::Array(items))) => Some(items.clone()),
            Some((_, other)) => {
                self.err(join(path, "enum"), format!("must be a list of values, found {}", type_name(other)));
                None
            }
        };
        let pattern = k.entries.contains_key("pattern").then(|| self.string(&k, "pattern", false));
        Validation { pattern, min_length, max_length, min, max, allowed }
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
        Some(Dependency { name: self.string(&k, "name", true), version })
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The allowed key closest to a misspelled one, for "did you mean".
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .filter(|(d, a)| *d <= 3.max(a.len() / 4))
        .min()
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Fills in `line` for each error by finding its field path in the document
/// text: each key of the path is searched for below the previous one, and
/// list indices count `- ` items. Falls back to the document's first line.
pub fn locate_lines(text: &str, first_line: usize, errors: &mut [FieldError]) {
    let lines: Vec<&str> = text.lines().collect();
    for e in errors.iter_mut() {
        e.line = Some(first_line + locate(&lines, &e.field).unwrap_or(0));
    }
}

fn locate(lines: &[&str], field: &str) -> Option<usize> {
    let mut pos = 0usize;
    let mut found = None;
    let mut min_indent = 0usize;
    for segment in field.split('.').filter(|s| !s.is_empty()) {
        let (key, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        let camel = camel(key);
        let hit = lines.iter().enumerate().skip(pos).find(|(_, l)| {
            let indent = l.len() - l.trim_start().len();
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            indent >= min_indent
                && (t.starts_with(&format!("{key}:")) || t.starts_with(&format!("{camel}:")) || t.starts_with(&format!("\"{key}\":")))
        });
        let Some((i, l)) = hit else { return found };
        pos = i + 1;
        found = Some(i);
        min_indent = l.len() - l.trim_start().len();
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let n: usize = idx.parse().ok()?;
            let items: Vec<usize> = lines
                .iter()
                .enumerate()
                .skip(pos)
                .take_while(|(_, l)| l.trim().is_empty() || l.len() - l.trim_start().len() >= min_indent)
                .filter(|(_, l)| l.trim_start().starts_with("- ") || l.trim() == "-")
                .map(|(i, _)| i)
                .collect();
            let item_indent = items.first().map(|&i| lines[i].len() - lines[i].trim_start().len())?;
            let same_level: Vec<usize> =
                items.into_iter().filter(|&i| lines[i].len() - lines[i].trim_start().len() == item_indent).collect();
            let at = *same_level.get(n)?;
            found = Some(at);
            pos = at;
            min_indent = item_indent;
        }
    }
    found
}

fn camel(key: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
