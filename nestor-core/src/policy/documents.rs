//! [`DefinitionDocuments`]: what policies read of a pinned version,
//! converted to the engine's values once per version rather than once per
//! input. A version's content never changes, and the content hash names
//! it: the same hash is the same document.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::input::Keys;
use crate::error::{Error, Result};
use crate::model::PublishedVersion;

/// How many versions [`DefinitionDocuments`] keeps before it starts over
/// (a few thousand documents of a few kilobytes each).
const KEPT: usize = 4096;

/// The `catalog_ref` and `definition` values of pinned versions (and their
/// inputs' keys and defaults), by content hash, shared by every input built
/// with it; clones share it. Converting a definition's document costs
/// about 130,000 instructions (benches/README.md, "Policies"): once per
/// version, not once per plan.
#[derive(Clone, Default)]
pub struct DefinitionDocuments {
    kept: Arc<Mutex<HashMap<String, Pinned>>>,
}

/// A pinned version as policies see it.
#[derive(Clone)]
pub(super) struct Pinned {
    /// `name:version`.
    pub(super) reference: regorus::Value,
    /// The canonical definition document.
    pub(super) document: regorus::Value,
    /// Its inputs, sorted by name.
    pub(super) declared: Arc<[DeclaredInput]>,
}

/// One input a definition declares: its key and default as the engine's
/// values, shared by every resource that pins the definition.
pub(super) struct DeclaredInput {
    pub(super) name: String,
    pub(super) key: regorus::Value,
    pub(super) default: Option<regorus::Value>,
}

impl DefinitionDocuments {
    /// `pinned` as policies see it, converted on first use.
    pub(super) fn get(&self, pinned: &PublishedVersion) -> Result<Pinned> {
        let lock = || self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = lock().get(&pinned.content_hash) {
            return Ok(kept.clone());
        }
        // Converted outside the lock; two first users make equal values.
        let made = convert(pinned)?;
        let mut kept = lock();
        if kept.len() >= KEPT {
            kept.clear();
        }
        kept.insert(pinned.content_hash.clone(), made.clone());
        Ok(made)
    }
}

fn convert(pinned: &PublishedVersion) -> Result<Pinned> {
    let def = &pinned.definition;
    let json = serde_json::to_value(def).map_err(|e| Error::internal(e.to_string()))?;
    let mut keys = Keys::default();
    // A name declared twice keeps its first declaration, as rendering
    // does (required inputs first).
    let mut declared = BTreeMap::new();
    for (input, _) in def.inputs() {
        declared.entry(input.name.as_str()).or_insert(input);
    }
    let declared = declared
        .into_iter()
        .map(|(name, input)| DeclaredInput {
            name: name.to_string(),
            key: keys.key(name),
            default: input.default.as_ref().map(|d| keys.json(d)),
        })
        .collect();
    Ok(Pinned {
        reference: regorus::Value::from(def.subject().as_str()),
        document: keys.json(&json),
        declared,
    })
}

impl std::fmt::Debug for DefinitionDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.kept.lock().map_or(0, |k| k.len());
        f.debug_struct("DefinitionDocuments")
            .field("kept", &kept)
            .finish()
    }
}
