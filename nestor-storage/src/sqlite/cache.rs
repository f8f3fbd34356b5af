//! The definition cache: parsed definitions by content hash.
//!
//! Content-addressed, so it never needs invalidating: a hash names one
//! immutable definition (the hash covers name and version too), and whatever
//! can change (yanked, which version is latest) is read from SQL on every
//! call. Eviction keeps two generations: hits in the old one are promoted,
//! and when the new one is full the old one is dropped — most of LRU's
//! benefit with two hash maps and no per-hit bookkeeping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nestor_core::ResourceDefinition;

use super::lock;

/// Parsed definitions by content hash, at most `capacity` of them.
pub(super) struct DefinitionCache {
    generations: Mutex<Generations>,
    /// Size of one generation: half the capacity.
    generation_size: usize,
}

#[derive(Default)]
struct Generations {
    /// Inserted or hit since the last rotation.
    young: HashMap<String, Arc<ResourceDefinition>>,
    /// The previous generation; dropped at the next rotation.
    old: HashMap<String, Arc<ResourceDefinition>>,
}

impl DefinitionCache {
    /// A cache holding at most `capacity` definitions.
    pub(super) fn new(capacity: usize) -> Self {
        DefinitionCache {
            generations: Mutex::default(),
            generation_size: (capacity / 2).max(1),
        }
    }

    /// The definition with this content hash, if cached.
    pub(super) fn get(&self, content_hash: &str) -> Option<Arc<ResourceDefinition>> {
        let mut g = lock(&self.generations);
        if let Some(found) = g.young.get(content_hash) {
            return Some(found.clone());
        }
        let (hash, found) = g.old.remove_entry(content_hash)?;
        self.put(&mut g, hash, found.clone());
        Some(found)
    }

    /// Caches a definition under its content hash.
    pub(super) fn insert(&self, content_hash: String, definition: Arc<ResourceDefinition>) {
        let mut g = lock(&self.generations);
        self.put(&mut g, content_hash, definition);
    }

    fn put(&self, g: &mut Generations, hash: String, definition: Arc<ResourceDefinition>) {
        if g.young.len() >= self.generation_size && !g.young.contains_key(&hash) {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(hash, definition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str) -> Arc<ResourceDefinition> {
        Arc::new(nestor_core::testing::definition(
            &format!("db-{name}"),
            "1.0.0",
        ))
    }

    #[test]
    fn keeps_recently_used_entries_and_bounds_its_size() {
        let cache = DefinitionCache::new(4);
        for name in ["a", "b"] {
            cache.insert(name.into(), def(name));
        }
        cache.insert("c".into(), def("c")); // rotates: a, b are old
        assert!(
            cache.get("a").is_some(),
            "an old entry is still served and promoted"
        );
        cache.insert("d".into(), def("d")); // rotates: c, a are old; b dropped
        assert!(cache.get("b").is_none());
        assert_eq!(cache.get("a").unwrap().metadata.name, "db-a");
        let g = lock(&cache.generations);
        assert!(g.young.len() + g.old.len() <= 4);
    }
}
