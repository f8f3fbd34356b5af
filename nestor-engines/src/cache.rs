//! The on-disk cache of compiled components.
//!
//! Compiling a bundled engine takes a few hundred milliseconds; loading its
//! compiled form takes well under one. Entries are content-addressed:
//! `{sha256 of the wasm}-wasmtime{major}-{engine settings hash}.cwasm`,
//! so a changed plugin, a wasmtime upgrade or different compiler settings
//! never read a stale entry. Writes go to a temporary file renamed into
//! place, so a crash leaves no half-written entry.
//!
//! This module holds one of the crate's two `unsafe` blocks (the other is
//! the native loader): [`wasmtime::component::Component::deserialize_file`]
//! runs the machine code it is given, so it must only read files this cache
//! wrote. The directory is created owner-only (0700) and names are derived
//! from content; wasmtime additionally checks each file's header against
//! the running engine's version and settings. Whoever can write the cache
//! directory could run code in the host, the same trust as the plugins
//! directory itself.
#![allow(unsafe_code)]

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

/// The wasmtime major version this host is built against, part of every key.
const WASMTIME_MAJOR: &str = "48";

/// A directory of compiled components.
pub(crate) struct DiskCache {
    /// Where entries live.
    dir: PathBuf,
    /// Hash of the engine's compilation settings (and wasmtime's version),
    /// so one directory can serve differently configured hosts.
    settings: String,
}

impl DiskCache {
    /// Opens (creating) the cache at `dir`; `None` when it cannot be created.
    pub(crate) fn open(dir: &Path, engine: &wasmtime::Engine) -> Option<DiskCache> {
        if let Err(e) = create_private_dir(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "engine cache disabled: cannot create its directory");
            return None;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Some(DiskCache {
            dir: dir.to_path_buf(),
            settings: format!("{:016x}", hasher.finish()),
        })
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!(
            "{sha256}-wasmtime{WASMTIME_MAJOR}-{}.cwasm",
            self.settings
        ))
    }

    /// The cached component for this wasm, when there is a usable one.
    pub(crate) fn load(&self, engine: &wasmtime::Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was written by `store` below from
        // `Component::serialize` of a component this host compiled (see the
        // module docs for the trust model); wasmtime rejects files from
        // another version or configuration with an error, not UB.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding an unusable engine cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a freshly compiled component; failures only cost a recompile later.
    pub(crate) fn store(&self, sha256: &str, component: &Component) {
        let result = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let path = self.entry(sha256);
                let temp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&temp, bytes)
                    .and_then(|()| std::fs::rename(&temp, &path))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&temp);
                        e.to_string()
                    })
            });
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not write an engine cache entry");
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
