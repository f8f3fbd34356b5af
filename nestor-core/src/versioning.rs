//! The version rules (docs/src/reference/versioning.md): parsing, requirements, latest, change
//! classification and the bump a set of changes requires.

use std::cmp::Ordering;
use std::fmt;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{Change, ChangeKind};
use crate::model::{Input, ResourceDefinition, Validation, VersionSummary};

/// Parses a SemVer 2.0 version; a leading `v` is accepted and dropped.
pub fn parse_version(text: &str) -> Result<Version, String> {
    let trimmed = text.trim();
    let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
    Version::parse(bare)
        .map_err(|e| format!("invalid version {text:?}: {e} (expected SemVer such as 1.2.0)"))
}

/// Which version of a name a reference asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    /// No version given: the latest (docs/src/reference/versioning.md).
    Latest,
    /// A bare full version: exactly that one, yanked or not.
    Exact(Version),
    /// A Cargo requirement: the greatest non-yanked match.
    Req(VersionReq),
}

impl VersionSpec {
    /// Parses the version part of a catalog reference: empty or `latest` →
    /// latest, a bare full version → exact, anything else → a Cargo requirement.
    pub fn parse(text: &str) -> Result<VersionSpec, String> {
        let text = text.trim();
        if text.is_empty() || text == "latest" {
            return Ok(VersionSpec::Latest);
        }
        if let Ok(v) = parse_version(text) {
            return Ok(VersionSpec::Exact(v));
        }
        VersionReq::parse(text)
            .map(VersionSpec::Req)
            .map_err(|e| format!("invalid version requirement {text:?}: {e}"))
    }

    /// Whether a (non-yanked) version satisfies the spec, ignoring "latest".
    pub fn matches(&self, version: &Version) -> bool {
        match self {
            VersionSpec::Latest => true,
            VersionSpec::Exact(v) => v == version,
            VersionSpec::Req(r) => r.matches(version),
        }
    }
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSpec::Latest => f.write_str("latest"),
            VersionSpec::Exact(v) => write!(f, "{v}"),
            VersionSpec::Req(r) => write!(f, "{r}"),
        }
    }
}

/// A parsed `NAME[:VERSION|:REQUIREMENT]` catalog reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRef {
    /// The definition's name.
    pub name: String,
    /// Which version.
    pub version: VersionSpec,
}

impl CatalogRef {
    /// Parses `aws-rds-mysql`, `aws-rds-mysql:1.2.0` or `aws-rds-mysql:^1.2`.
    pub fn parse(text: &str) -> Result<CatalogRef, String> {
        let (name, version) = match text.split_once(':') {
            Some((n, v)) => (n.trim(), v),
            None => (text.trim(), ""),
        };
        if name.is_empty() {
            return Err(format!(
                "invalid catalog reference {text:?}: the name is empty"
            ));
        }
        Ok(CatalogRef {
            name: name.to_string(),
            version: VersionSpec::parse(version)?,
        })
    }
}

impl fmt::Display for CatalogRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            VersionSpec::Latest => f.write_str(&self.name),
            v => write!(f, "{}:{v}", self.name),
        }
    }
}

/// The latest of a name's versions: the greatest that is neither yanked nor
/// a pre-release; pre-releases count only when nothing else exists.
pub fn select_latest(versions: &[VersionSummary]) -> Option<Version> {
    let live = versions.iter().filter(|v| !v.yanked).map(|v| &v.version);
    let best_release = live.clone().filter(|v| v.pre.is_empty()).max();
    best_release.or_else(|| live.max()).cloned()
}

/// The version a spec picks among a name's versions. Exact versions are
/// found even when yanked (existing deployments keep resolving);
/// requirements and latest never pick a yanked one.
pub fn select_matching(versions: &[VersionSummary], spec: &VersionSpec) -> Option<Version> {
    match spec {
        VersionSpec::Latest => select_latest(versions),
        VersionSpec::Exact(v) => versions
            .iter()
            .find(|s| &s.version == v)
            .map(|s| s.version.clone()),
        VersionSpec::Req(r) => versions
            .iter()
            .filter(|s| !s.yanked && r.matches(&s.version))
            .map(|s| s.version.clone())
            .max(),
    }
}

/// The version a new one is compared with: the greatest published release
/// below it. Pre-releases are never predecessors, so `2.0.0-rc.1` does not
/// force `2.0.0` to be compared against a draft.
pub fn predecessor<'a>(
    existing: impl IntoIterator<Item = &'a Version>,
    new: &Version,
) -> Option<Version> {
    existing
        .into_iter()
        .filter(|v| v.pre.is_empty() && *v < new)
        .max()
        .cloned()
}

/// The smallest version that may follow `predecessor` given the strongest
/// change kind: breaking → next major (below 1.0.0: next minor), additive →
/// next minor (below 1.0.0: next patch), cosmetic → next patch.
pub fn minimum_version(predecessor: &Version, kind: ChangeKind) -> Version {
    let p = predecessor;
    let (major, minor, patch) = match (kind, p.major) {
        (ChangeKind::Breaking, 0) => (0, p.minor + 1, 0),
        (ChangeKind::Breaking, _) => (p.major + 1, 0, 0),
        (ChangeKind::Additive, 0) => (0, p.minor, p.patch + 1),
        (ChangeKind::Additive, _) => (p.major, p.minor + 1, 0),
        (ChangeKind::Cosmetic, _) => (p.major, p.minor, p.patch + 1),
    };
    Version::new(major, minor, patch)
}

/// The bump a set of changes requires (docs/src/reference/versioning.md), named as users say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bump {
    /// The next major (breaking, from 1.0.0 on).
    Major,
    /// The next minor (breaking below 1.0.0; additive from 1.0.0 on).
    Minor,
    /// The next patch (additive below 1.0.0; cosmetic).
    Patch,
}

impl Bump {
    /// How users say it, as it serialises: `major`, `minor`, `patch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bump::Major => "major",
            Bump::Minor => "minor",
            Bump::Patch => "patch",
        }
    }

    /// The bump `kind` requires over a predecessor of major version `major`.
    pub fn required(kind: ChangeKind, major: u64) -> Bump {
        match (kind, major) {
            (ChangeKind::Breaking, 0) | (ChangeKind::Additive, 1..) => Bump::Minor,
            (ChangeKind::Breaking, _) => Bump::Major,
            _ => Bump::Patch,
        }
    }
}

/// Two versions of a definition compared: what `nestor catalog diff`
/// shows and what a publish of `new` over `old` would decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The old version.
    pub old_version: String,
    /// The new version.
    pub new_version: String,
    /// Every classified change.
    pub changes: Vec<Change>,
    /// The bump the strongest change requires.
    pub required_bump: Bump,
    /// The smallest version that may follow the old one.
    pub minimum_version: String,
    /// Whether the new version is a large enough bump.
    pub ok: bool,
}

/// Compares `old` with `new` by the rules a publish applies.
pub fn compare(old: &ResourceDefinition, new: &ResourceDefinition) -> Comparison {
    let changes = classify_changes(old, new);
    let strongest = changes
        .iter()
        .map(|c| c.kind)
        .max()
        .unwrap_or(ChangeKind::Cosmetic);
    Comparison {
        old_version: old.metadata.version.to_string(),
        new_version: new.metadata.version.to_string(),
        required_bump: Bump::required(strongest, old.metadata.version.major),
        minimum_version: minimum_version(&old.metadata.version, strongest).to_string(),
        ok: check_bump(old, new).is_ok(),
        changes,
    }
}

/// Checks that `new`'s version is a large enough bump over `old`'s for the
/// changes between them. A pre-release is judged by its release numbers
/// (`2.0.0-rc.1` is a valid major bump). Returns the classified changes.
pub fn check_bump(old: &ResourceDefinition, new: &ResourceDefinition) -> Result<Vec<Change>> {
    let changes = classify_changes(old, new);
    let strongest = changes
        .iter()
        .map(|c| c.kind)
        .max()
        .unwrap_or(ChangeKind::Cosmetic);
    let minimum = minimum_version(&old.metadata.version, strongest);
    let new_v = &new.metadata.version;
    let release = Version::new(new_v.major, new_v.minor, new_v.patch);
    if release.cmp(&minimum) == Ordering::Less {
        return Err(Error::BreakingChange {
            name: new.metadata.name.clone(),
            version: new_v.to_string(),
            predecessor: old.metadata.version.to_string(),
            minimum_version: minimum.to_string(),
            changes,
        });
    }
    Ok(changes)
}

/// Every change from `old` to `new`, classified per the versioning rules (docs/src/reference/versioning.md).
pub fn classify_changes(old: &ResourceDefinition, new: &ResourceDefinition) -> Vec<Change> {
    let mut out = Changes::default();
    let (om, nm) = (&old.metadata, &new.metadata);
    for (field, a, b, kind) in [
        (
            "metadata.provider",
            &om.provider,
            &nm.provider,
            ChangeKind::Breaking,
        ),
        (
            "metadata.resource_type",
            &om.resource_type,
            &nm.resource_type,
            ChangeKind::Breaking,
        ),
        (
            "metadata.category",
            &om.category,
            &nm.category,
            ChangeKind::Cosmetic,
        ),
        (
            "metadata.description",
            &om.description,
            &nm.description,
            ChangeKind::Cosmetic,
        ),
    ] {
        if a != b {
            out.push(kind, field, format!("changed from {a:?} to {b:?}"));
        }
    }
    if om.deprecated != nm.deprecated || om.deprecation_message != nm.deprecation_message {
        out.push(
            ChangeKind::Cosmetic,
            "metadata.deprecated",
            "deprecation changed",
        );
    }
    if om.labels != nm.labels
        || om.annotations != nm.annotations
        || om.maintainers != nm.maintainers
    {
        out.push(
            ChangeKind::Cosmetic,
            "metadata",
            "labels, annotations or maintainers changed",
        );
    }
    if om.maturity != nm.maturity || om.support_level != nm.support_level {
        out.push(
            ChangeKind::Cosmetic,
            "metadata",
            "maturity or support level changed",
        );
    }

    classify_inputs(old, new, &mut out);
    classify_outputs(old, new, &mut out);

    for engine in &old.spec.supported_engines {
        if !new.spec.supported_engines.contains(engine) {
            out.push(
                ChangeKind::Breaking,
                "spec.supported_engines",
                format!("engine {engine:?} removed"),
            );
        }
    }
    for engine in &new.spec.supported_engines {
        if !old.spec.supported_engines.contains(engine) {
            out.push(
                ChangeKind::Additive,
                "spec.supported_engines",
                format!("engine {engine:?} added"),
            );
        }
    }
    if old.spec.engine_configs != new.spec.engine_configs {
        out.push(
            ChangeKind::Cosmetic,
            "spec.engine_configs",
            "engine configuration changed",
        );
    }
    if old.spec.dependencies != new.spec.dependencies {
        out.push(
            ChangeKind::Cosmetic,
            "spec.dependencies",
            "dependencies changed",
        );
    }
    out.0
}

#[derive(Default)]
struct Changes(Vec<Change>);

impl Changes {
    fn push(&mut self, kind: ChangeKind, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Change {
            kind,
            field: field.into(),
            message: message.into(),
        });
    }
}

fn input_field(def: &ResourceDefinition, name: &str) -> String {
    let (list, idx) = match def.spec.required_inputs.iter().position(|i| i.name == name) {
        Some(i) => ("required_inputs", i),
        None => (
            "optional_inputs",
            def.spec
                .optional_inputs
                .iter()
                .position(|i| i.name == name)
                .unwrap_or(0),
        ),
    };
    format!("spec.{list}[{idx}]")
}

fn classify_inputs(old: &ResourceDefinition, new: &ResourceDefinition, out: &mut Changes) {
    for (input, was_required) in old.inputs() {
        let Some((now, is_required)) = new.input(&input.name) else {
            out.push(
                ChangeKind::Breaking,
                input_field(old, &input.name),
                format!("input {:?} removed", input.name),
            );
            continue;
        };
        let field = input_field(new, &input.name);
        if input.value_type != now.value_type {
            out.push(
                ChangeKind::Breaking,
                format!("{field}.type"),
                format!(
                    "input {:?} changed type from {} to {}",
                    input.name, input.value_type, now.value_type
                ),
            );
        }
        match (was_required, is_required) {
            (false, true) => out.push(
                ChangeKind::Breaking,
                &field,
                format!("input {:?} made required", input.name),
            ),
            (true, false) => out.push(
                ChangeKind::Additive,
                &field,
                format!("input {:?} made optional", input.name),
            ),
            _ => {}
        }
        if input.default != now.default {
            out.push(
                ChangeKind::Additive,
                format!("{field}.default"),
                format!("default of {:?} changed", input.name),
            );
        }
        if input.description != now.description || input.sensitive != now.sensitive {
            out.push(
                ChangeKind::Cosmetic,
                &field,
                format!("description or sensitivity of {:?} changed", input.name),
            );
        }
        classify_validation(input, now, &format!("{field}.validation"), out);
    }
    for (input, required) in new.inputs() {
        if old.input(&input.name).is_none() {
            let (kind, word) = if required {
                (ChangeKind::Breaking, "required")
            } else {
                (ChangeKind::Additive, "optional")
            };
            out.push(
                kind,
                input_field(new, &input.name),
                format!("{word} input {:?} added", input.name),
            );
        }
    }
}

fn num(n: &Option<serde_json::Number>) -> Option<f64> {
    n.as_ref().and_then(|n| n.as_f64())
}

/// Classifies a bound: `lower` bounds tighten when raised or added, upper
/// bounds when lowered or added.
fn bound_change(old: Option<f64>, new: Option<f64>, lower: bool) -> Option<ChangeKind> {
    match (old, new) {
        (None, None) => None,
        (None, Some(_)) => Some(ChangeKind::Breaking),
        (Some(_), None) => Some(ChangeKind::Additive),
        (Some(a), Some(b)) if a == b => None,
        (Some(a), Some(b)) => Some(if (b > a) == lower {
            ChangeKind::Breaking
        } else {
            ChangeKind::Additive
        }),
    }
}

fn classify_validation(old: &Input, new: &Input, field: &str, out: &mut Changes) {
    let (a, b): (&Validation, &Validation) = (&old.validation, &new.validation);
    match (&a.pattern, &b.pattern) {
        (None, Some(_)) => out.push(
            ChangeKind::Breaking,
            format!("{field}.pattern"),
            "pattern added",
        ),
        (Some(x), Some(y)) if x != y => out.push(
            ChangeKind::Breaking,
            format!("{field}.pattern"),
            "pattern changed",
        ),
        (Some(_), None) => out.push(
            ChangeKind::Additive,
            format!("{field}.pattern"),
            "pattern removed",
        ),
        _ => {}
    }
    let as_f = |n: Option<u64>| n.map(|n| n as f64);
    for (key, old_v, new_v, lower) in [
        ("min", num(&a.min), num(&b.min), true),
        ("max", num(&a.max), num(&b.max), false),
        ("min_length", as_f(a.min_length), as_f(b.min_length), true),
        ("max_length", as_f(a.max_length), as_f(b.max_length), false),
    ] {
        if let Some(kind) = bound_change(old_v, new_v, lower) {
            let verb = if kind == ChangeKind::Breaking {
                "tightened"
            } else {
                "loosened"
            };
            out.push(
                kind,
                format!("{field}.{key}"),
                format!("{key} {verb} on {:?}", new.name),
            );
        }
    }
    match (&a.allowed, &b.allowed) {
        (None, Some(_)) => out.push(ChangeKind::Breaking, format!("{field}.enum"), "enum added"),
        (Some(_), None) => out.push(
            ChangeKind::Additive,
            format!("{field}.enum"),
            "enum removed",
        ),
        (Some(x), Some(y)) => {
            let removed: Vec<&Value> = x.iter().filter(|v| !y.contains(v)).collect();
            if !removed.is_empty() {
                out.push(
                    ChangeKind::Breaking,
                    format!("{field}.enum"),
                    format!("enum values removed: {removed:?}"),
                );
            } else if y.iter().any(|v| !x.contains(v)) {
                out.push(
                    ChangeKind::Additive,
                    format!("{field}.enum"),
                    "enum values added",
                );
            }
        }
        (None, None) => {}
    }
}

fn classify_outputs(old: &ResourceDefinition, new: &ResourceDefinition, out: &mut Changes) {
    for (i, o) in old.spec.outputs.iter().enumerate() {
        match new.spec.outputs.iter().find(|n| n.name == o.name) {
            None => out.push(
                ChangeKind::Breaking,
                format!("spec.outputs[{i}]"),
                format!("output {:?} removed", o.name),
            ),
            Some(n) if n.value_type != o.value_type => out.push(
                ChangeKind::Breaking,
                format!("spec.outputs[{i}].type"),
                format!(
                    "output {:?} changed type from {} to {}",
                    o.name, o.value_type, n.value_type
                ),
            ),
            Some(n) if n != o => out.push(
                ChangeKind::Cosmetic,
                format!("spec.outputs[{i}]"),
                format!("output {:?} described differently", o.name),
            ),
            Some(_) => {}
        }
    }
    for (i, n) in new.spec.outputs.iter().enumerate() {
        if !old.spec.outputs.iter().any(|o| o.name == n.name) {
            out.push(
                ChangeKind::Additive,
                format!("spec.outputs[{i}]"),
                format!("output {:?} added", n.name),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(v: &str, yanked: bool) -> VersionSummary {
        VersionSummary {
            version: v.parse().unwrap(),
            published_at: 0,
            yanked,
            deprecated: false,
            git_commit: None,
        }
    }

    #[test]
    fn latest_skips_yanked_and_prereleases_unless_alone() {
        let vs = [
            summary("1.9.0", false),
            summary("1.10.0", true),
            summary("2.0.0-rc.1", false),
        ];
        assert_eq!(select_latest(&vs).unwrap().to_string(), "1.9.0");
        let only_pre = [summary("2.0.0-rc.1", false), summary("2.0.0-beta.1", false)];
        assert_eq!(select_latest(&only_pre).unwrap().to_string(), "2.0.0-rc.1");
        assert_eq!(select_latest(&[summary("1.0.0", true)]), None);
    }

    #[test]
    fn bare_version_in_a_reference_is_exact_and_requirements_are_cargo() {
        let r = CatalogRef::parse("aws-rds-mysql:1.2.0").unwrap();
        assert_eq!(r.version, VersionSpec::Exact("1.2.0".parse().unwrap()));
        let vs = [
            summary("1.2.0", true),
            summary("1.3.0", false),
            summary("1.10.0", false),
            summary("2.0.0", false),
        ];
        assert_eq!(
            select_matching(&vs, &r.version).unwrap().to_string(),
            "1.2.0",
            "exact finds yanked"
        );
        let caret = VersionSpec::parse("^1.2").unwrap();
        assert_eq!(select_matching(&vs, &caret).unwrap().to_string(), "1.10.0");
        let tilde = VersionSpec::parse("~1.2.0").unwrap();
        assert_eq!(
            select_matching(&vs, &tilde),
            None,
            "yanked is never chosen for a requirement"
        );
        let range = VersionSpec::parse(">=1, <2").unwrap();
        assert_eq!(select_matching(&vs, &range).unwrap().to_string(), "1.10.0");
        assert_eq!(
            VersionSpec::parse("v1.2.0").unwrap(),
            VersionSpec::Exact("1.2.0".parse().unwrap())
        );
        assert!(CatalogRef::parse(":1.0.0").is_err());
        assert!(VersionSpec::parse("^^1").is_err());
    }

    #[test]
    fn minimum_versions_follow_the_bump_table() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert_eq!(
            minimum_version(&v("1.2.3"), ChangeKind::Breaking),
            v("2.0.0")
        );
        assert_eq!(
            minimum_version(&v("0.3.1"), ChangeKind::Breaking),
            v("0.4.0")
        );
        assert_eq!(
            minimum_version(&v("1.2.3"), ChangeKind::Additive),
            v("1.3.0")
        );
        assert_eq!(
            minimum_version(&v("0.3.1"), ChangeKind::Additive),
            v("0.3.2")
        );
        assert_eq!(
            minimum_version(&v("1.2.3"), ChangeKind::Cosmetic),
            v("1.2.4")
        );
    }

    #[test]
    fn predecessor_is_the_greatest_release_below() {
        let vs: Vec<Version> = ["1.0.0", "1.2.0", "2.0.0-rc.1", "3.0.0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            predecessor(&vs, &"2.0.0".parse().unwrap())
                .unwrap()
                .to_string(),
            "1.2.0"
        );
        assert_eq!(predecessor(&vs, &"1.0.0".parse().unwrap()), None);
    }
}
