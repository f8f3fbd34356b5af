//! Catalog sources and what a sync of one reports (docs/src/platform/git-sources.md).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// A configured catalog source: a git repository or a plain folder.
/// Unknown keys are refused, so a typo'd key fails the config parse (and
/// the published schema) instead of silently taking a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name, used in reports and `?source=`.
    pub name: String,
    /// Anything libgit2 clones (local paths included), or a plain directory.
    pub url: String,
    /// Branch to read (default `main`).
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Folder inside the repository to read (default: the whole tree).
    #[serde(default)]
    pub path: String,
    /// How often a server polls the source.
    #[serde(default = "default_poll", with = "duration_secs")]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub poll_interval: Duration,
    /// Shared secret for webhook signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

fn default_branch() -> String {
    "main".into()
}

fn default_poll() -> Duration {
    Duration::from_secs(60)
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::config_util::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl SourceConfig {
    /// A source reading the whole default branch of `url`.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        SourceConfig {
            name: name.into(),
            url: url.into(),
            branch: default_branch(),
            path: String::new(),
            poll_interval: default_poll(),
            webhook_secret: None,
        }
    }
}

/// One document that could not be published, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DocumentError {
    /// Path of the file inside the source.
    pub file: String,
    /// Index of the document in the file, from 0.
    pub document: usize,
    /// Line of the document's first line, from 1.
    pub line: usize,
    /// The error code of the failure (`VALIDATION_FAILED`,
    /// `VERSION_IMMUTABLE`, `BREAKING_CHANGE`...).
    pub code: String,
    /// Every problem found, each with a field path where one applies.
    pub errors: Vec<FieldError>,
    /// The team of a composition that failed (team-scoped: only callers
    /// who may see that team are shown it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// What one sync of one source did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SyncReport {
    /// The source's name.
    pub source: String,
    /// The head that was read (commit id, or folder fingerprint).
    pub commit: Option<String>,
    /// `name:version` of every version published by this sync.
    pub published: Vec<String>,
    /// How many documents were already published with the same content.
    pub unchanged: usize,
    /// `name:version` of every version this sync yanked.
    pub yanked: Vec<String>,
    /// Documents that were skipped.
    pub errors: Vec<DocumentError>,
    /// Wall time of the sync.
    pub duration_ms: u64,
    /// How many files were read and parsed (an unchanged head reads none, an
    /// incremental sync only what the diff names).
    pub files_read: usize,
    /// When the sync finished.
    pub finished_at: super::Timestamp,
    /// The source's policy files in force after the sync (a file that
    /// does not compile is in `errors` instead).
    #[serde(default)]
    pub policies: Vec<String>,
}

impl SyncReport {
    /// The report as a caller who sees only the teams `sees` accepts may
    /// read it: compositions of other teams (`team/name:version` subjects,
    /// and their documents' errors) are left out, so team names and
    /// composition names never leak through `/status` or `sync.completed`.
    pub fn visible_to(mut self, sees: impl Fn(&str) -> bool) -> SyncReport {
        let keep = |subject: &String| match subject.split_once('/') {
            Some((team, _)) => sees(team),
            None => true,
        };
        self.published.retain(keep);
        self.yanked.retain(keep);
        self.errors.retain(|e| e.team.as_deref().is_none_or(&sees));
        self
    }
}

/// What the sync service remembers of a source between syncs: the head it
/// last read and which versions each file published, so a later sync can
/// re-read only what changed and yank what vanished.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    /// The source's name.
    pub source: String,
    /// The head read last time.
    pub head: Option<String>,
    /// File path → `name:version` of the documents it held.
    pub files: BTreeMap<String, Vec<String>>,
    /// The source's policy files (`policies/**/*.rego`) as last read, by
    /// path: kept whole, because a policy set is compiled from all of its
    /// files and a later sync re-reads only the changed ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, StoredPolicy>,
}

/// One policy file of a source, as a sync read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// The Rego text.
    pub text: String,
    /// The commit it was read at; `None` for a plain folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Whom it applies to, from the folder it sits in.
    #[serde(default)]
    pub scope: crate::policy::PolicyScope,
}
