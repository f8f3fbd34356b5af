//! Checking an engine config against what the engine understands: every
//! key known (an unknown one is refused with the known keys and a "did you
//! mean"), required keys present, each value of the right type, and the
//! spellings users reach for accepted where they are unambiguous
//! (`chart_version` for `target_revision`).
//!
//! An engine describes its keys once, as a [`ConfigSpec`], and uses it
//! twice: in [`crate::Engine::validate`] (publish time) and at render,
//! through [`ConfigSpec::normalize`], so an accepted alias renders exactly
//! as its canonical key.

use serde_json::{Map, Value};

use crate::names::loose_key;
use crate::{Config, ConfigProblem, Definition};

/// What a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text; numbers and booleans are accepted and read as text (YAML
    /// writes `version: 1.2` as a number).
    Text,
    /// `true`/`false` (or the strings `"true"`, `"yes"`, ...).
    Bool,
    /// A map.
    Map,
    /// A list.
    List,
    /// Text or a map (a Terraform backend: `s3` or `{type, config}`).
    TextOrMap,
    /// Anything.
    Any,
}

impl Kind {
    fn fits(self, value: &Value) -> bool {
        match self {
            Kind::Text => matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)),
            Kind::Bool => match value {
                Value::Bool(_) => true,
                Value::String(s) => matches!(
                    s.to_ascii_lowercase().as_str(),
                    "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"
                ),
                _ => false,
            },
            Kind::Map => value.is_object(),
            Kind::List => value.is_array(),
            Kind::TextOrMap => value.is_string() || value.is_object(),
            Kind::Any => true,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Bool => "true or false",
            Kind::Map => "a map",
            Kind::List => "a list",
            Kind::TextOrMap => "a string or a map",
            Kind::Any => "any value",
        }
    }
}

/// One key an engine understands.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The canonical, snake_case name.
    pub name: &'static str,
    /// Its value's kind.
    pub kind: Kind,
    /// Whether it must be present.
    pub required: bool,
    /// Other spellings that mean exactly this key (`chart_version`).
    pub aliases: &'static [&'static str],
}

impl Key {
    /// An optional key.
    pub const fn optional(name: &'static str, kind: Kind) -> Key {
        Key {
            name,
            kind,
            required: false,
            aliases: &[],
        }
    }

    /// A required key.
    pub const fn required(name: &'static str, kind: Kind) -> Key {
        Key {
            name,
            kind,
            required: true,
            aliases: &[],
        }
    }

    /// The same key, also spelled `aliases`.
    pub const fn or(mut self, aliases: &'static [&'static str]) -> Key {
        self.aliases = aliases;
        self
    }

    fn spelled(&self, key: &str) -> bool {
        let wanted = loose_key(key);
        loose_key(self.name) == wanted || self.aliases.iter().any(|a| loose_key(a) == wanted)
    }
}

/// The keys of every bundled engine's config: `static_inputs`, `input_map`
/// and `output_map` (see [`crate::Request::arguments`]).
pub const COMMON_KEYS: [Key; 3] = [
    Key::optional("static_inputs", Kind::Map),
    Key::optional("input_map", Kind::Map),
    Key::optional("output_map", Kind::Map),
];

/// Every key an engine understands.
#[derive(Debug, Clone, Copy)]
pub struct ConfigSpec {
    /// The engine's name, for messages.
    pub engine: &'static str,
    /// Its keys (include [`COMMON_KEYS`] where they apply).
    pub keys: &'static [Key],
}

impl ConfigSpec {
    fn key(&self, spelled: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.spelled(spelled))
    }

    /// Every problem of `config`: unknown keys (with a suggestion), a key
    /// given twice under two spellings, required keys missing, wrong kinds;
    /// and, against `definition`, `input_map` keys that are not inputs and
    /// `output_map` keys that are not outputs.
    pub fn check(&self, config: &Config, definition: &Definition) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let map = match &config.0 {
            Value::Null => Map::new(),
            Value::Object(map) => map.clone(),
            other => {
                return vec![ConfigProblem::new(
                    "",
                    format!(
                        "the {} engine config must be a map, not {other}",
                        self.engine
                    ),
                )]
            }
        };
        let mut seen: Vec<(&'static str, &str)> = Vec::new();
        for (given, value) in &map {
            let Some(key) = self.key(given) else {
                problems.push(ConfigProblem::new(given, self.unknown(given)));
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(name, _)| *name == key.name) {
                problems.push(ConfigProblem::new(
                    given,
                    format!("`{given}` and `{first}` both set `{}`; keep one", key.name),
                ));
                continue;
            }
            seen.push((key.name, given));
            if !value.is_null() && !key.kind.fits(value) {
                problems.push(ConfigProblem::new(
                    given,
                    format!("`{given}` must be {}, not {value}", key.kind.describe()),
                ));
            }
        }
        for key in self.keys.iter().filter(|k| k.required) {
            let present = seen.iter().any(|(name, given)| {
                *name == key.name && !map.get(*given).is_none_or(Value::is_null)
            });
            if !present {
                problems.push(ConfigProblem::new(
                    key.name,
                    format!(
                        "`{}` is required in the {} engine config",
                        key.name, self.engine
                    ),
                ));
            }
        }
        problems.extend(check_maps(config, definition));
        problems
    }

    /// `config` with every key under its canonical name (`chart_version` →
    /// `target_revision`); unknown keys are kept as they are.
    pub fn normalize(&self, config: &Config) -> Config {
        let Value::Object(map) = &config.0 else {
            return config.clone();
        };
        let normalized = map
            .iter()
            .map(|(given, value)| {
                let name = self.key(given).map_or(given.as_str(), |k| k.name);
                (name.to_string(), value.clone())
            })
            .collect();
        Config(Value::Object(normalized))
    }

    fn unknown(&self, given: &str) -> String {
        let known: Vec<&str> = self.keys.iter().map(|k| k.name).collect();
        let mut message = format!("unknown key `{given}` in the {} engine config", self.engine);
        if let Some(best) = self.suggest(given) {
            message.push_str(&format!("; did you mean `{best}`?"));
        }
        message.push_str(&format!(" (known keys: {})", known.join(", ")));
        message
    }

    /// The known key `given` was most likely meant to be: the closest
    /// spelling by edit distance (at most a third of its length), else a
    /// key whose name the given one contains (`resource_type` → `type`).
    fn suggest(&self, given: &str) -> Option<&'static str> {
        let wanted = loose_key(given);
        let spellings = self.keys.iter().flat_map(|k| {
            std::iter::once(k.name)
                .chain(k.aliases.iter().copied())
                .map(move |s| (k.name, s))
        });
        let closest = spellings
            .clone()
            .map(|(name, s)| (edit_distance(&wanted, &loose_key(s)), name))
            .min_by_key(|(d, _)| *d)
            .filter(|(d, _)| *d <= wanted.len().max(3) / 3)
            .map(|(_, name)| name);
        closest.or_else(|| {
            spellings
                .filter(|(_, s)| loose_key(s).len() >= 3 && wanted.contains(&loose_key(s)))
                .max_by_key(|(_, s)| s.len())
                .map(|(name, _)| name)
        })
    }
}

/// `input_map` keys must be inputs of the definition, `output_map` keys
/// outputs, each mapped to a non-empty string.
pub fn check_maps(config: &Config, definition: &Definition) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let outputs: Vec<String> = definition.outputs().into_iter().map(|o| o.name).collect();
    let checks = [
        ("input_map", "input", definition.input_names()),
        ("output_map", "output", outputs),
    ];
    for (key, what, known) in checks {
        let Some(map) = config.object(key) else {
            continue;
        };
        for (name, target) in map {
            if !known.contains(name) {
                problems.push(ConfigProblem::new(
                    format!("{key}.{name}"),
                    format!(
                        "`{name}` is not an {what} of {} ({what}s: {})",
                        definition.name(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            } else if !matches!(target, Value::String(s) if !s.is_empty()) && !target.is_null() {
                problems.push(ConfigProblem::new(
                    format!("{key}.{name}"),
                    format!("must be a non-empty string, not {target}"),
                ));
            }
        }
    }
    problems
}

/// Edit distance counting a swap of two neighbours as one edit (optimal
/// string alignment): `chrat` is one edit from `chart`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPEC: ConfigSpec = ConfigSpec {
        engine: "helm",
        keys: &[
            Key::required("repo_url", Kind::Text),
            Key::optional("target_revision", Kind::Text).or(&["chart_version", "version"]),
            Key::optional("chart", Kind::Text),
            Key::optional("type", Kind::Text),
            Key::optional("automated", Kind::Bool),
        ],
    };

    fn def() -> Definition {
        Definition(
            json!({"metadata": {"name": "redis"}, "spec": {"optional_inputs": [{"name": "size", "type": "string"}], "outputs": [{"name": "host", "type": "string"}]}}),
        )
    }

    #[test]
    fn unknown_keys_get_a_suggestion_and_aliases_normalise() {
        let config = Config(
            json!({"repoURL": "https://x", "chart_version": "15.14.0", "chrat": "redis", "resource_type": "a:b:C", "automated": "maybe"}),
        );
        let problems = SPEC.check(&config, &def());
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        assert_eq!(problems.len(), 3, "{text:?}");
        assert!(text[0].starts_with("automated:"), "{text:?}");
        assert!(text[1].contains("did you mean `chart`?"), "{text:?}");
        assert!(
            text[2].contains("resource_type") && text[2].contains("did you mean `type`?"),
            "{text:?}"
        );
        let normalized = SPEC.normalize(&config);
        assert_eq!(
            normalized.str("target_revision").as_deref(),
            Some("15.14.0")
        );
    }

    #[test]
    fn required_keys_duplicates_and_maps_against_the_definition() {
        let config = Config(
            json!({"version": "1", "target_revision": "2", "input_map": {"sise": "x"}, "output_map": {"host": "h"}}),
        );
        const KEYS: [Key; 4] = [
            Key::required("repo_url", Kind::Text),
            Key::optional("target_revision", Kind::Text).or(&["version"]),
            COMMON_KEYS[1],
            COMMON_KEYS[2],
        ];
        let spec = ConfigSpec {
            engine: "helm",
            keys: &KEYS,
        };
        let problems = spec.check(&config, &def());
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["version", "repo_url", "input_map.sise"],
            "{problems:?}"
        );
        assert!(problems[2].message.contains("inputs: size"));
    }
}
