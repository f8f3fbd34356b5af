//! The read cache, invisible in the traits.
//!
//! Only what can never change is cached without asking DynamoDB:
//! - a version's content (definition, hash, publish time, origin), keyed by
//!   name and version: name@version is immutable, so an entry is never stale;
//!   the mutable `yanked` flag is always read from DynamoDB and laid over it;
//! - a deployment id's `(team, environment, name, revision)`, fixed at
//!   creation.
//!
//! The one cache of mutable state is the search snapshot (see `search.rs`):
//! the latest version of every name, kept current by tailing the event log.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use nestor_core::{DeploymentKey, PublishedVersion, Shared};
use semver::Version;

/// Entries kept per map before it is emptied and refilled; a crude bound
/// that keeps memory predictable without an LRU dependency.
const MAX_ENTRIES: usize = 20_000;

/// Immutable entries, safe to share between every caller of one store.
#[derive(Default)]
pub(crate) struct ImmutableCache {
    contents: Mutex<HashMap<(String, Version), Shared<PublishedVersion>>>,
    deployment_ids: Mutex<HashMap<String, (DeploymentKey, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every mutation is a single insert or clear: a poisoned map is whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, value);
}

impl ImmutableCache {
    /// The content of name@version if it was read before and its hash is
    /// `hash` (when given).
    pub fn content(
        &self,
        name: &str,
        version: &Version,
        hash: Option<&str>,
    ) -> Option<Shared<PublishedVersion>> {
        let found = lock(&self.contents)
            .get(&(name.to_string(), version.clone()))
            .cloned()?;
        match hash {
            Some(h) if h != found.content_hash => None,
            _ => Some(found),
        }
    }

    /// Remembers name@version's content.
    pub fn put_content(&self, version: Shared<PublishedVersion>) {
        let key = (version.name().to_string(), version.version().clone());
        bounded_insert(&mut lock(&self.contents), key, version);
    }

    /// Where a deployment id lives.
    pub fn deployment_id(&self, id: &str) -> Option<(DeploymentKey, u64)> {
        lock(&self.deployment_ids).get(id).cloned()
    }

    /// Remembers where a deployment id lives.
    pub fn put_deployment_id(&self, id: &str, key: DeploymentKey, revision: u64) {
        bounded_insert(
            &mut lock(&self.deployment_ids),
            id.to_string(),
            (key, revision),
        );
    }
}
