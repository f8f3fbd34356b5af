//! Code annotations (docs/src/reference/cli.md) and the deployment file they generate
//! (docs/src/reference/formats.md).
//!
//! An annotation is a comment line whose text starts with `nestor:` —
//! `//nestor:web-app size=small replicas=3 environment=staging`, and the
//! same after `#`, `--` or `/*`. Words are `key=value`; values are typed
//! like `--set` values: integers, booleans, else strings (quotes allowed
//! for spaces). `name=` and `environment=` are reserved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, FieldError, Result};
use crate::model::DeploymentRequest;

/// The `apiVersion` of deployment files.
pub const DEPLOY_API_VERSION: &str = "deploy.nestor.io/v1";

/// `nestor.deploy.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeploymentSet {
    /// Always [`DEPLOY_API_VERSION`].
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `DeploymentSet`.
    pub kind: String,
    /// The deployments, in file order.
    pub deployments: Vec<DeploymentEntry>,
}

/// One deployment of a deployment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeploymentEntry {
    /// The owning team.
    pub team: String,
    /// Target environment.
    pub environment: String,
    /// The deployment's name.
    pub name: String,
    /// The team composition to deploy.
    pub composition: String,
    /// Which versions of it (a requirement; `*` for any).
    #[serde(default = "any_version")]
    pub composition_version: String,
    /// Composition parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// Where the annotation was (`app/main.go:2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn any_version() -> String {
    "*".into()
}

impl DeploymentSet {
    /// A set of deployments.
    pub fn new(deployments: Vec<DeploymentEntry>) -> Self {
        DeploymentSet {
            api_version: DEPLOY_API_VERSION.into(),
            kind: "DeploymentSet".into(),
            deployments,
        }
    }

    /// Parses a deployment file; an unknown key or wrong kind is an error.
    pub fn parse(text: &str) -> Result<DeploymentSet> {
        let value = crate::parse::parse_yaml_value(text).map_err(Error::bad_request)?;
        let set: DeploymentSet = serde_json::from_value(value)
            .map_err(|e| Error::bad_request(format!("invalid deployment file: {e}")))?;
        if set.api_version != DEPLOY_API_VERSION || set.kind != "DeploymentSet" {
            return Err(Error::bad_request(format!(
                "expected apiVersion {DEPLOY_API_VERSION} and kind DeploymentSet, found {} {}",
                set.api_version, set.kind
            )));
        }
        Ok(set)
    }
}

impl DeploymentEntry {
    /// The request that deploys this entry; `environment`, when given,
    /// overrides the entry's (`nestor plan --env`).
    pub fn into_request(self, environment: Option<&str>) -> DeploymentRequest {
        DeploymentRequest {
            team: self.team,
            environment: environment.map_or(self.environment, str::to_string),
            name: self.name,
            composition: Some(self.composition),
            composition_version: Some(self.composition_version),
            params: self.params,
            ..Default::default()
        }
    }
}

/// Where an annotation was found and what its deployment defaults to:
/// what [`Annotation::entry`] needs besides the annotation.
#[derive(Debug, Clone, Copy)]
pub struct AnnotationContext<'a> {
    /// The team every deployment of the scan belongs to.
    pub team: &'a str,
    /// Overrides every annotation's `environment=` (`nestor generate --env`).
    pub environment: Option<&'a str>,
    /// The environment of an annotation that names none.
    pub default_environment: &'a str,
}

impl Annotation {
    /// The deployment this annotation asks for, as `nestor generate`
    /// writes it: named by `name=` (default: `folder`, the name of the
    /// annotated file's folder, else the composition), in the context's
    /// environment, else `environment=`, else the default one; every other
    /// word is a parameter. `file` is the annotated file's path as the
    /// entry's `source` names it.
    pub fn entry(
        &self,
        context: AnnotationContext<'_>,
        folder: Option<&str>,
        file: &str,
    ) -> DeploymentEntry {
        let mut params = self.values.clone();
        let name = match params.remove("name") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => folder.map_or_else(|| self.composition.clone(), str::to_string),
        };
        let named = params
            .remove("environment")
            .and_then(|v| v.as_str().map(str::to_string));
        let environment = context
            .environment
            .map(str::to_string)
            .or(named)
            .unwrap_or_else(|| context.default_environment.to_string());
        DeploymentEntry {
            team: context.team.to_string(),
            environment,
            name,
            composition: self.composition.clone(),
            composition_version: any_version(),
            params,
            source: Some(format!("{file}:{}", self.line)),
        }
    }
}

/// Types a `key=value` value: integers, booleans, else a string (surrounding
/// quotes removed).
pub fn typed_value(text: &str) -> Value {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    match t {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return Value::String(t[1..t.len() - 1].to_string());
        }
    }
    Value::String(t.to_string())
}

/// Parses `key=value` words into typed values; errors name the bad word.
pub fn parse_assignments<'a>(
    words: impl IntoIterator<Item = &'a str>,
) -> std::result::Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("{word:?} is not key=value"))?;
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("{key:?} is not a valid key"));
        }
        if out.insert(key.to_string(), typed_value(value)).is_some() {
            return Err(format!("{key:?} is given twice"));
        }
    }
    Ok(out)
}

/// One annotation found in a source file.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// The composition it names.
    pub composition: String,
    /// Its `key=value` words, typed (reserved keys included).
    pub values: BTreeMap<String, Value>,
    /// Line number, from 1.
    pub line: usize,
}

/// Splits a line into words, keeping quoted spans together.
fn words(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (None, c) if c.is_whitespace() => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            (_, c) => current.push(c),
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// Finds the annotations of one file's text. A malformed one is an error
/// naming its line (the caller adds the file).
pub fn scan_annotations(text: &str) -> std::result::Result<Vec<Annotation>, FieldError> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let Some(rest) = ["//", "#", "--", "/*"]
            .iter()
            .find_map(|p| t.strip_prefix(p))
        else {
            continue;
        };
        let Some(body) = rest.trim_start().strip_prefix("nestor:") else {
            continue;
        };
        let body = body.trim().trim_end_matches("*/").trim();
        let bad = |m: String| FieldError {
            field: String::new(),
            message: m,
            line: Some(i + 1),
        };
        let parts = words(body).map_err(|e| bad(format!("malformed annotation: {e}")))?;
        let Some((composition, assignments)) = parts.split_first() else {
            return Err(bad(
                "malformed annotation: no composition named after \"nestor:\"".into(),
            ));
        };
        if composition.contains('=') || !crate::validate::is_valid_name(composition) {
            return Err(bad(format!(
                "malformed annotation: {composition:?} is not a composition name"
            )));
        }
        let values = parse_assignments(assignments.iter().map(String::as_str))
            .map_err(|e| bad(format!("malformed annotation: {e}")))?;
        found.push(Annotation {
            composition: composition.clone(),
            values,
            line: i + 1,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotations_in_every_comment_style() {
        let text = "package main\n//nestor:web-app size=small replicas=3 environment=staging\n# nestor:data-pipeline name=etl enabled=true\n-- nestor:web-app image=\"registry.example.com/a b:1\"\n/* nestor:web-app size=large */\nlet x = 1; // not nestor:web-app\n";
        let found = scan_annotations(text).unwrap();
        assert_eq!(found.len(), 4);
        assert_eq!(found[0].composition, "web-app");
        assert_eq!(found[0].values["replicas"], json!(3));
        assert_eq!(found[0].values["environment"], json!("staging"));
        assert_eq!(found[0].line, 2);
        assert_eq!(found[1].values["enabled"], json!(true));
        assert_eq!(
            found[2].values["image"],
            json!("registry.example.com/a b:1")
        );
        assert_eq!(found[3].values["size"], json!("large"));
    }

    #[test]
    fn an_annotation_becomes_the_deployment_it_names() {
        let text = "//nestor:web-app name=shop environment=staging replicas=3\n# nestor:web-app size=small\n";
        let found = scan_annotations(text).unwrap();
        let context = AnnotationContext {
            team: "alpha",
            environment: None,
            default_environment: "dev",
        };
        let named = found[0].entry(context, Some("app"), "app/main.go");
        assert_eq!(
            (named.name.as_str(), named.environment.as_str()),
            ("shop", "staging")
        );
        assert_eq!(
            named.params,
            BTreeMap::from([("replicas".into(), json!(3))])
        );
        assert_eq!(named.source.as_deref(), Some("app/main.go:1"));
        let plain = found[1].entry(context, Some("app"), "app/main.go");
        assert_eq!(
            (plain.name.as_str(), plain.environment.as_str()),
            ("app", "dev"),
            "the folder names it, the default environment holds"
        );
        assert_eq!(found[1].entry(context, None, "main.go").name, "web-app");
        let forced = AnnotationContext {
            environment: Some("prod"),
            ..context
        };
        let entry = found[0].entry(forced, None, "main.go");
        assert_eq!(entry.environment, "prod", "--env beats environment=");
        assert!(!entry.params.contains_key("environment"));
        let request = entry.into_request(Some("qa"));
        assert_eq!(
            (request.environment.as_str(), request.composition.as_deref()),
            ("qa", Some("web-app"))
        );
        assert_eq!(request.composition_version.as_deref(), Some("*"));
    }

    #[test]
    fn malformed_annotations_name_their_line() {
        for (text, line) in [
            ("\n\n// nestor:web-app size", 3),
            ("# nestor:", 1),
            ("// nestor:web-app a=\"open", 1),
            ("// nestor:Web_App", 1),
            ("// nestor:x-y a=1 a=2", 1),
        ] {
            let err = scan_annotations(text).unwrap_err();
            assert_eq!(err.line, Some(line), "{text:?}");
            assert!(
                err.message.starts_with("malformed annotation"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn deployment_files_round_trip() {
        let set = DeploymentSet::new(vec![DeploymentEntry {
            team: "alpha".into(),
            environment: "staging".into(),
            name: "checkout".into(),
            composition: "web-stack".into(),
            composition_version: "*".into(),
            params: BTreeMap::from([("replicas".into(), json!(4))]),
            source: Some("app/main.go:2".into()),
        }]);
        let yaml = serde_yaml::to_string(&set).unwrap();
        assert_eq!(DeploymentSet::parse(&yaml).unwrap(), set);
        assert!(DeploymentSet::parse("apiVersion: x\nkind: y\ndeployments: []").is_err());
        assert_eq!(typed_value("'quoted'"), json!("quoted"));
        assert_eq!(typed_value("-5"), json!(-5));
    }
}
