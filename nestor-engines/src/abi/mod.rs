//! One binding module per supported `nestor:engine` ABI version.
//!
//! The WIT of a released version is frozen in
//! `plugins/nestor-engine-sdk/wit/v<version>/`. Supporting a new version
//! means a sibling module generated from its folder, a conversion of its
//! types into the newest ones, and a branch in [`crate::WasmHost`]'s loader
//! that picks the module by the version in the component's export name
//! (`nestor:engine/engine-api@<version>`).

pub(crate) mod v0_1_0;

/// The ABI versions this host loads, newest first.
pub const SUPPORTED_ABI_VERSIONS: &[&str] = &["0.1.0"];

/// The interface every plugin exports, without its version.
pub(crate) const ENGINE_INTERFACE: &str = "nestor:engine/engine-api";
