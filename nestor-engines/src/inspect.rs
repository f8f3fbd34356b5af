//! `nestor engines inspect FILE.wasm`: what a component is, without
//! registering it.

use std::path::Path;

use nestor_core::{Error, Result};
use serde::Serialize;
use wasmtime::component::types::ComponentItem;

use crate::host::{abi_version, sha256_hex, WasmHost};
use crate::HostConfig;

/// What a component file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentInspection {
    /// The `nestor:engine` version it exports; `None` when it is not a
    /// Nestor engine plugin.
    pub abi_version: Option<String>,
    /// The engine name `info()` reports.
    pub name: Option<String>,
    /// The engine version `info()` reports.
    pub version: Option<String>,
    /// The description `info()` reports.
    pub description: Option<String>,
    /// Exported interfaces and functions (`nestor:engine/engine-api@0.1.0#render`).
    pub exports: Vec<String>,
    /// Imported interfaces (`wasi:cli/environment@0.2.x`).
    pub imports: Vec<String>,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Why it would not load as an engine, when it would not.
    pub load_error: Option<String>,
}

/// Inspects the component at `path` with a default host.
pub fn inspect_component(path: &Path) -> Result<ComponentInspection> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::bad_request(format!("cannot read {}: {e}", path.display())))?;
    let host = WasmHost::new(HostConfig::default())?;
    inspect_component_bytes(&host, &bytes, &path.display().to_string())
}

/// Inspects a component held in memory.
pub fn inspect_component_bytes(
    host: &WasmHost,
    bytes: &[u8],
    label: &str,
) -> Result<ComponentInspection> {
    let (component, _) = host
        .compile(bytes)
        .map_err(|e| Error::bad_request(format!("{label} {e}")))?;
    let engine = host.wasmtime_engine();
    let ty = component.component_type();
    let mut exports = Vec::new();
    for (name, item) in ty.exports(engine) {
        exports.push(name.to_string());
        if let ComponentItem::ComponentInstance(instance) = item.ty {
            exports.extend(instance.exports(engine).map(|(f, _)| format!("{name}#{f}")));
        }
    }
    let imports = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let mut inspection = ComponentInspection {
        abi_version: abi_version(engine, &component).ok(),
        name: None,
        version: None,
        description: None,
        exports,
        imports,
        sha256: sha256_hex(bytes),
        size_bytes: bytes.len() as u64,
        load_error: None,
    };
    match host.load(bytes, label) {
        Ok(loaded) => {
            let info = nestor_core::Engine::info(&loaded);
            inspection.name = Some(info.name);
            inspection.version = Some(info.version);
            inspection.description = Some(info.description);
        }
        Err(e) => inspection.load_error = Some(e.to_string()),
    }
    Ok(inspection)
}
