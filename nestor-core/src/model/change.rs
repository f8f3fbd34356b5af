//! What changed between two versions of a definition, classified as the versioning rules (docs/src/reference/versioning.md)
//! says (the versioning rules produce it; publish results, refusals and
//! diffs carry it).

use serde::{Deserialize, Serialize};

/// How a change between two versions of a definition is classified (docs/src/reference/versioning.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Neither breaks nor adds anything a user could use.
    Cosmetic,
    /// Adds something; old users are unaffected.
    Additive,
    /// May break existing users.
    Breaking,
}

impl ChangeKind {
    /// How users say it, as it serialises: `cosmetic`, `additive`, `breaking`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Cosmetic => "cosmetic",
            ChangeKind::Additive => "additive",
            ChangeKind::Breaking => "breaking",
        }
    }
}

/// One classified change between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Change {
    /// Its classification.
    pub kind: ChangeKind,
    /// The field path that changed.
    pub field: String,
    /// What changed, for a human.
    pub message: String,
}
