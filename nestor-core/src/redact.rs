//! Redaction: the one mechanism that keeps a sensitive value out of what
//! Nestor records and shows (deployments in the store and the API, events,
//! logs, plan diffs). A redacted value is the string [`REDACTED`] (`"***"`).
//!
//! Two tools, for the two ways a secret can reach a record:
//! - by name: an output its definition marks `sensitive` (or a tool marks
//!   sensitive, as `terraform output -json` does) — [`redact_outputs`],
//!   [`redact_reach`], [`Redactor::outputs`] replace its value;
//! - by content: text that may quote a known secret (a tool's log, an
//!   error message, a diff) — a [`Redactor`] that has seen the sensitive
//!   values replaces every occurrence in text or JSON.
//!
//! A reference (a Secret key, a stack output) is where a secret is, not
//! the secret, and is never redacted.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::engine::Reach;
use crate::model::ResourceDefinition;

/// What a redacted value reads as.
pub const REDACTED: &str = "***";

/// Values shorter than this are not scrubbed from text: replacing every
/// `1` or `ok` in a log would hide everything and protect nothing.
pub const MIN_SCRUBBED_LEN: usize = 4;

/// Whether `value` is a redacted one.
pub fn is_redacted(value: &Value) -> bool {
    value.as_str() == Some(REDACTED)
}

/// A reach with its literal value (if any) redacted.
pub fn redact_reach(reach: &mut Reach) {
    if reach.value.is_some() {
        reach.value = Some(Value::String(REDACTED.into()));
    }
}

/// Stored outputs (name → reach as JSON) with the literal value of every
/// output `def` marks sensitive redacted; references are kept.
pub fn redact_outputs(def: &ResourceDefinition, outputs: &mut BTreeMap<String, Value>) {
    for output in def.spec.outputs.iter().filter(|o| o.sensitive) {
        if let Some(stored) = outputs.get_mut(&output.name) {
            redact_stored(stored);
        }
    }
}

/// One stored output redacted: `{"value": X, ...}` keeps its references
/// and loses X; any other literal becomes [`REDACTED`].
fn redact_stored(stored: &mut Value) {
    let mut reach = Reach::from_json(stored.clone());
    redact_reach(&mut reach);
    *stored = serde_json::to_value(&reach).unwrap_or(Value::String(REDACTED.into()));
}

/// Scrubs known sensitive values out of text and JSON.
///
/// ```
/// # use nestor_core::Redactor;
/// # use serde_json::json;
/// let mut r = Redactor::new();
/// r.learn(&json!("hunter2-password"));
/// assert_eq!(r.scrub("login with hunter2-password"), "login with ***");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// The values to hide, longest first (so a secret that contains
    /// another is replaced whole).
    needles: Vec<String>,
}

impl Redactor {
    /// A redactor that knows no value yet.
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Learns every scalar inside `value` (strings, and numbers as text)
    /// of at least [`MIN_SCRUBBED_LEN`] characters.
    pub fn learn(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.learn_text(s),
            Value::Number(n) => self.learn_text(&n.to_string()),
            Value::Array(items) => items.iter().for_each(|v| self.learn(v)),
            Value::Object(map) => map.values().for_each(|v| self.learn(v)),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn learn_text(&mut self, text: &str) {
        if text.chars().count() >= MIN_SCRUBBED_LEN && !self.needles.iter().any(|n| n == text) {
            self.needles.push(text.to_string());
            self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        }
    }

    /// Whether it knows no value (then scrubbing changes nothing).
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every known value replaced by [`REDACTED`].
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), REDACTED));
            }
        }
        out
    }

    /// `value` with every string scrubbed (keys included) in place.
    pub fn scrub_json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(clean) = self.scrub(s) {
                    *s = clean;
                }
            }
            Value::Number(n) if self.needles.contains(&n.to_string()) => {
                *value = Value::String(REDACTED.into());
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.scrub_json(&mut v);
                    map.insert(self.scrub(&key).into_owned(), v);
                }
            }
            _ => {}
        }
    }

    /// Outputs as a tool reports them, `(name, value, sensitive)` (say,
    /// `terraform output -json`'s `{name: {value, sensitive}}`): the values
    /// to record, each sensitive one [`REDACTED`], and a redactor that knows
    /// the sensitive values, for scrubbing the tool's logs.
    pub fn outputs<'a>(
        reported: impl IntoIterator<Item = (&'a str, &'a Value, bool)>,
    ) -> (BTreeMap<String, Value>, Redactor) {
        let mut redactor = Redactor::new();
        let mut values = BTreeMap::new();
        for (name, value, sensitive) in reported {
            if sensitive {
                redactor.learn(value);
                values.insert(name.to_string(), Value::String(REDACTED.into()));
            } else {
                values.insert(name.to_string(), value.clone());
            }
        }
        (values, redactor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_values_are_scrubbed_from_text_and_json_longest_first() {
        let reported = json!({
            "password": {"value": "correct-horse-battery", "sensitive": true},
            "token": {"value": "correct-horse", "sensitive": true},
            "endpoint": {"value": "db.internal", "sensitive": false},
        });
        let (values, r) = Redactor::outputs(reported.as_object().unwrap().iter().map(|(k, v)| {
            (
                k.as_str(),
                &v["value"],
                v["sensitive"].as_bool().unwrap_or(false),
            )
        }));
        assert_eq!(values["password"], REDACTED);
        assert_eq!(values["endpoint"], "db.internal");
        assert_eq!(
            r.scrub("pw=correct-horse-battery t=correct-horse host=db.internal"),
            "pw=*** t=*** host=db.internal"
        );
        let mut doc = json!({"log": ["x correct-horse y"], "correct-horse": 1});
        r.scrub_json(&mut doc);
        assert_eq!(doc, json!({"log": ["x *** y"], "***": 1}));
    }

    #[test]
    fn a_reference_is_kept_and_a_literal_redacted() {
        let mut reach = Reach::secret_key("s", "ns", "k");
        reach.value = Some(json!("plain"));
        redact_reach(&mut reach);
        assert_eq!(reach.value, Some(json!(REDACTED)));
        assert!(reach.secret_key_ref.is_some());
        let mut stored = json!("plain-literal");
        redact_stored(&mut stored);
        assert_eq!(stored, json!({"value": REDACTED}));
    }
}
