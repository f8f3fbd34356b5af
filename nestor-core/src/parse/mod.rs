//! YAML files → canonical documents: resource definitions (docs/src/reference/formats.md) and
//! compositions (docs/src/product/compositions.md).
//!
//! Parsing is done on a generic value tree rather than with
//! `#[serde(deny_unknown_fields)]` so that every problem of a document is
//! reported at once, each with its field path, instead of stopping at the
//! first. Aliases (camelCase keys, `ComponentDefinition`, `spec.engines`,
//! `spec.inputs`, classification under `spec`) are normalised here and
//! nowhere else.

mod composition;
mod definition;
mod limits;
mod lines;
mod yaml_value;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::FieldError;
use crate::model::*;

pub use composition::{
    check_composition, check_resources, parse_composition, parse_composition_yaml,
};
pub use definition::{parse_definition, parse_definition_yaml};
pub use limits::MAX_DEPTH;
pub use lines::locate_lines;

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
    /// A Nestor composition (`composer.nestor.io/v1`) that passed the
    /// checks needing no catalog.
    Composition(Box<Composition>),
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
    /// For a composition, its team, read even when the rest of it does not
    /// parse, so its errors are shown only to who may see that team:
    /// `metadata.team`, or `""` (a team no team token holds) when the team
    /// cannot be read. `None` for every other document.
    pub team: Option<String>,
}

/// Splits a YAML file into documents on `---` / `...` markers, keeping
/// each one's first line so errors can point into the file.
pub fn split_documents(text: &str) -> Vec<RawDocument> {
    let mut docs = Vec::new();
    if let Some((start, body)) = unmarked(text) {
        if has_content(body) {
            let mut text = String::with_capacity(body.len() + 1);
            text.push_str(body);
            if !body.ends_with('\n') {
                text.push('\n');
            }
            let value = parse_yaml_value(&text).map_err(|m| FieldError::new("", m));
            docs.push(RawDocument {
                index: 0,
                line: start,
                text,
                value,
            });
        }
        return docs;
    }
    split_lines(text)
}

/// [`split_documents`] a line at a time, for any text.
fn split_lines(text: &str) -> Vec<RawDocument> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    let flush = |current: &mut String, start: usize, docs: &mut Vec<RawDocument>| {
        if has_content(current) {
            let value = parse_yaml_value(current).map_err(|m| FieldError::new("", m));
            docs.push(RawDocument {
                index: docs.len(),
                line: start,
                text: std::mem::take(current),
                value,
            });
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

/// Whether a document's text holds anything but blank lines, comments and
/// directives.
fn has_content(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
    })
}

/// For a text without document markers (most files hold one document)
/// and without carriage returns, what [`split_documents`]' line loop would
/// gather, without copying it a line at a time: the line its first
/// non-blank line is, and the text from there. `None` for any other text
/// (a `---` or `...` at the start of a line, even one that is no marker,
/// takes the loop).
fn unmarked(text: &str) -> Option<(usize, &str)> {
    let marked = ["---", "..."].iter().any(|m| text.starts_with(m))
        || ["\n---", "\n..."].iter().any(|m| text.contains(m));
    if marked || text.contains('\r') {
        return None;
    }
    let (mut start, mut rest) = (1, text);
    while let Some((line, after)) = rest.split_once('\n') {
        if !line.trim().is_empty() {
            break;
        }
        start += 1;
        rest = after;
    }
    Some((start, rest))
}

/// The value tree of a text that must hold exactly one YAML document (an
/// API request body, a `catalog diff` argument).
pub fn single_document(text: &str) -> Result<Value, crate::error::Error> {
    use crate::error::Error;
    let docs = split_documents(text);
    let [doc] = docs.as_slice() else {
        return Err(Error::bad_request(format!(
            "expected one YAML document, found {}",
            docs.len()
        )));
    };
    doc.value.clone().map_err(|e| Error::bad_request(e.message))
}

/// Parses one YAML document into a JSON value tree. Text larger than
/// [`MAX_FILE_BYTES`], or with enough flow brackets to nest flow
/// collections deeper than [`MAX_DEPTH`], is refused before the YAML
/// library scans it if it does nest that deep (the `limits` module says
/// why); any other collection deeper than that is refused as the tree is
/// built. The library itself refuses alias bombs (repetition limit).
pub fn parse_yaml_value(text: &str) -> Result<Value, String> {
    if text.len() > MAX_FILE_BYTES {
        return Err(format!(
            "invalid YAML: the document is {} bytes, larger than the {MAX_FILE_BYTES} byte limit",
            text.len()
        ));
    }
    let nesting = || limits::check_nesting(text).map_err(|e| format!("invalid YAML: {e}"));
    if limits::may_nest_flow_deeply(text) {
        nesting()?;
    }
    serde_yaml::from_str::<yaml_value::YamlValue>(text)
        .map(|v| v.0)
        .map_err(|e| {
            // A document too deep says so, at the line the scan names,
            // whatever else is wrong with it (as when the scan runs first).
            nesting()
                .err()
                .unwrap_or_else(|| format!("invalid YAML: {e}"))
        })
}

/// Parses a whole file's bytes: size and encoding checks, then every document.
pub fn parse_file(bytes: &[u8]) -> Result<Vec<LocatedDocument>, FieldError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(FieldError::new(
            "",
            format!(
                "file is {} bytes, larger than the {} byte limit for catalog files",
                bytes.len(),
                MAX_FILE_BYTES
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FieldError::new(
            "",
            format!("file is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })?;
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
            LocatedDocument {
                index: raw.index,
                line: raw.line,
                team: composition_team(&raw),
                document,
            }
        })
        .collect())
}

/// [`LocatedDocument::team`]: whether a document is a composition is its
/// `apiVersion`; a document that is not even YAML is taken for one when it
/// names the composition API anywhere.
fn composition_team(raw: &RawDocument) -> Option<String> {
    let Ok(value) = &raw.value else {
        return raw.text.contains(COMPOSITION_API_VERSION).then(String::new);
    };
    let api = value
        .get("apiVersion")
        .or_else(|| value.get("api_version"))
        .and_then(Value::as_str);
    (api == Some(COMPOSITION_API_VERSION)).then(|| {
        value
            .pointer("/metadata/team")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    })
}

/// Decides what a parsed document is and, for definitions, parses and
/// validates it (everything that needs no store).
pub fn interpret(value: &Value) -> Document {
    let Some(map) = value.as_object() else {
        return Document::Invalid(vec![FieldError::new("", "a document must be a mapping")]);
    };
    let api = map
        .get("apiVersion")
        .or_else(|| map.get("api_version"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    match api {
        DEFINITION_API_VERSION => match parse_definition(value) {
            Ok(def) => Document::Definition(Box::new(def)),
            Err(errors) => Document::Invalid(errors),
        },
        COMPOSITION_API_VERSION => match parse_composition(value) {
            Ok(c) => Document::Composition(Box::new(c)),
            Err(errors) => Document::Invalid(errors),
        },
        _ => Document::Foreign {
            api_version: api.to_string(),
            kind: kind.to_string(),
        },
    }
}

/// Converts `snake_case` to `camelCase`: the other spelling of every key
/// the parser accepts (the schemas list both, errors are located by both).
///
/// ```
/// assert_eq!(nestor_core::camel_case("resource_type"), "resourceType");
/// assert_eq!(nestor_core::camel_case("min_length"), "minLength");
/// assert_eq!(nestor_core::camel_case("name"), "name");
/// ```
pub fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
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

/// Converts `camelCase` to `snake_case`; snake_case passes through.
fn snake(key: &str) -> Cow<'_, str> {
    // Most keys are snake_case already: those are borrowed, not copied.
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(key);
    }
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
    Cow::Owned(out)
}

/// A mapping whose keys were normalised to snake_case, remembering the
/// spelling each came from so errors can quote it. It borrows the values
/// from the document's tree: nothing is copied until a field is read.
pub(crate) struct Keys<'v> {
    path: String,
    entries: Entries<'v>,
}

/// One entry of [`Keys`]: the key as written and its value.
type Entry<'v> = (&'v str, &'v Value);

/// A mapping's entries by snake_case key, in key order (as a `BTreeMap`
/// iterates them, so errors come in the same order): a mapping of a
/// document has a handful of keys, and a sorted vector searched by halves
/// costs less to build and read than a tree's nodes.
#[derive(Default)]
pub(crate) struct Entries<'v>(Vec<(Cow<'v, str>, Entry<'v>)>);

impl<'v> Entries<'v> {
    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    /// The entry of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Entry<'v>> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    /// Whether `key` has an entry.
    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Takes out the entry of `key`.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry<'v>> {
        self.position(key).ok().map(|i| self.0.remove(i).1)
    }

    /// Sets the entry of `key`, unless it has one.
    pub(crate) fn insert_if_absent(&mut self, key: Cow<'v, str>, entry: Entry<'v>) {
        if let Err(i) = self.position(&key) {
            self.0.insert(i, (key, entry));
        }
    }

    /// Every entry, in key order.
    fn iter(&self) -> impl Iterator<Item = (&str, &Entry<'v>)> {
        self.0.iter().map(|(k, e)| (k.as_ref(), e))
    }
}

#[derive(Default)]
pub(crate) struct Parser {
    errors: Vec<FieldError>,
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        [path, ".", key].concat()
    }
}

/// `path[i]`, the path of a list's item.
fn item(path: &str, i: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(path.len() + 4);
    out.push_str(path);
    let _ = write!(out, "[{i}]");
    out
}

impl Parser {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Normalises a mapping's keys; reports non-mappings and duplicates that
    /// differ only in spelling (`resourceType` and `resource_type`).
    fn keys<'v>(&mut self, value: Option<&'v Value>, path: &str) -> Option<Keys<'v>> {
        let value = value?;
        let Some(map) = value.as_object() else {
            self.err(path, "must be a mapping");
            return None;
        };
        let mut entries = Entries(Vec::with_capacity(map.len()));
        for (k, v) in map {
            let canonical = snake(k);
            if let Some((first, _)) = entries.get(&canonical) {
                self.err(
                    join(path, &canonical),
                    format!("given twice, as {first:?} and {k:?}"),
                );
                continue;
            }
            entries.insert_if_absent(canonical, (k.as_str(), v));
        }
        Some(Keys {
            path: path.to_string(),
            entries,
        })
    }

    /// Renames an alias to its canonical key inside `keys`.
    fn alias(&mut self, keys: &mut Keys<'_>, alias: &str, canonical: &str) {
        if let Some(entry) = keys.entries.remove(alias) {
            if keys.entries.contains_key(canonical) {
                self.err(
                    join(&keys.path, canonical),
                    format!("given twice, as {canonical:?} and its alias {alias:?}"),
                );
            } else {
                keys.entries
                    .insert_if_absent(Cow::Owned(canonical.to_string()), entry);
            }
        }
    }

    /// Reports every key not in `allowed` (a long key quoted cut short).
    fn unknown(&mut self, keys: &Keys<'_>, allowed: &[&str]) {
        for (canonical, (original, _)) in keys.entries.iter() {
            if !allowed.contains(&canonical) {
                let hint = closest(canonical, allowed)
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                let shown = crate::validate::excerpt(original);
                let field = if original.len() > crate::validate::ECHO_LIMIT {
                    join(&keys.path, shown.trim_matches('"'))
                } else {
                    join(&keys.path, original)
                };
                self.err(field, format!("unknown key {shown}{hint}"));
            }
        }
    }

    fn string(&mut self, keys: &Keys<'_>, key: &str, required: bool) -> String {
        match keys.entries.get(key) {
            None | Some((_, Value::Null)) => {
                if required {
                    self.err(join(&keys.path, key), "is required");
                }
                String::new()
            }
            Some((_, Value::String(s))) => s.clone(),
            Some((_, other)) => {
                self.err(
                    join(&keys.path, key),
                    format!("must be a string, found {}", type_name(other)),
                );
                String::new()
            }
        }
    }

    fn boolean(&mut self, keys: &Keys<'_>, key: &str) -> bool {
        match keys.entries.get(key) {
            None | Some((_, Value::Null)) => false,
            Some((_, Value::Bool(b))) => *b,
            Some((_, other)) => {
                self.err(
                    join(&keys.path, key),
                    format!("must be true or false, found {}", type_name(other)),
                );
                false
            }
        }
    }

    fn string_list(&mut self, keys: &Keys<'_>, key: &str) -> Vec<String> {
        let path = join(&keys.path, key);
        match keys.entries.get(key) {
            None | Some((_, Value::Null)) => Vec::new(),
            Some((_, Value::Array(items))) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    other => {
                        self.err(
                            item(&path, i),
                            format!("must be a string, found {}", type_name(other)),
                        );
                        None
                    }
                })
                .collect(),
            Some((_, other)) => {
                self.err(
                    path,
                    format!("must be a list of strings, found {}", type_name(other)),
                );
                Vec::new()
            }
        }
    }

    fn string_map(&mut self, keys: &Keys<'_>, key: &str) -> BTreeMap<String, String> {
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
                        self.err(
                            join(&path, k),
                            format!("must be a string, found {}", type_name(other)),
                        );
                        None
                    }
                })
                .collect(),
            Some((_, other)) => {
                self.err(
                    path,
                    format!("must be a mapping of strings, found {}", type_name(other)),
                );
                BTreeMap::new()
            }
        }
    }

    fn list<'v>(&mut self, keys: &Keys<'v>, key: &str) -> Vec<(String, &'v Value)> {
        let path = join(&keys.path, key);
        match keys.entries.get(key) {
            None | Some((_, Value::Null)) => Vec::new(),
            Some((_, Value::Array(items))) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (item(&path, i), v))
                .collect(),
            Some((_, other)) => {
                self.err(path, format!("must be a list, found {}", type_name(other)));
                Vec::new()
            }
        }
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
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
    if key.len() > 64 {
        return None; // nobody misspells a known key at that length
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A text without markers splits as the line loop splits it: the same
    /// text (line endings and blank lines included), first line and tree.
    #[test]
    fn an_unmarked_text_splits_as_the_line_loop_splits_it() {
        let texts = [
            "a: 1\nb: [x]\n",
            "a: 1",
            "\n\n  \t\na: 1\n\n\nb: 2\n\n",
            "# only a comment\n",
            "%YAML 1.2\n",
            "  \n\t\n",
            "",
            "\u{3000}\na: 1\n  \nb: |\n  text\n   \n",
            "# head\n\na: 1\n",
            "a: 1 --- 2\nb: x...\n",
            "a: [1,\n  2]\n",
        ];
        for text in texts {
            assert!(unmarked(text).is_some(), "{text:?}");
            assert_eq!(split_documents(text), split_lines(text), "{text:?}");
        }
        // Markers, even ones that are not, and carriage returns take the loop.
        for text in [
            "---\na: 1\n",
            "a: 1\n---\nb: 2\n",
            "a: 1\n...\n",
            "a: 1\r\n",
            "x: |\n---y\n",
        ] {
            assert!(unmarked(text).is_none(), "{text:?}");
        }
        let [doc] = split_documents("\n\n  \na: 1").try_into().unwrap();
        assert_eq!((doc.line, doc.text.as_str()), (4, "a: 1\n"));
    }
}
