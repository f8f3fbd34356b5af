//! Write a Nestor engine plugin: implement [`Engine`], call [`export_engine!`],
//! build with `cargo build --target wasm32-wasip2 --release`.
//!
//! ```ignore
//! use nestor_engine_sdk::{export_engine, Engine, EngineError, EngineInfo, Rendered, Request};
//!
//! struct Hello;
//!
//! impl Engine for Hello {
//!     fn info() -> EngineInfo {
//!         EngineInfo::new("hello", env!("CARGO_PKG_VERSION"), "Says hello")
//!     }
//!     fn render(request: Request) -> Result<Rendered, EngineError> {
//!         let text = format!("hello {}\n", request.resource);
//!         Ok(Rendered::new().artifact("hello.txt", text, "text/plain"))
//!     }
//! }
//!
//! export_engine!(Hello);
//! ```
//!
//! Plugin authors never see the WIT (`wit/v0.2.0/engine.wit`, the
//! `nestor:engine@0.2.0` package; 0.1.0 stays frozen beside it for the
//! plugins built before): the macro generates the component export
//! on `wasm32`, and on every other target the versioned C ABI the host's
//! native loader speaks (JSON in, JSON out), so the very same crate can be a
//! `.wasm` plugin, a native shared library, or a plain Rust dependency.
//!
//! # Layout
//! - [`Request`], [`Definition`], [`Config`], [`Context`]: what the host asks;
//!   the free-form parts stay [`serde_json::Value`]s with lenient accessors
//!   (`module_source` and `moduleSource` both work).
//! - [`Reference`], [`Reach`]: another resource's output wired into an input,
//!   and where a value is found at run time (a Secret key, a stack output,
//!   a value known at render time).
//! - [`Rendered`], [`Artifact`], [`EngineError`], [`EngineInfo`]: what an
//!   engine answers.
//! - [`check`]: describing a config's keys once, to validate it (publish
//!   time) and to read it with its aliases (render time).
//! - [`yaml`]: a small YAML writer (engines emit Kubernetes and Pulumi
//!   files; a full YAML library would triple the component's size).
//! - [`names`]: identifiers for the tools' naming rules (DNS labels,
//!   Terraform identifiers, camelCase).
//! - `glue` (private): the bridges behind [`export_engine!`].
//!
//! # The native C ABI (version [`NATIVE_ABI_VERSION`])
//! `nestor_engine_native_abi_version() -> u32`, `nestor_engine_info() -> *mut c_char`
//! (JSON `{name, version, description}`), `nestor_engine_render(ptr, len) -> *mut c_char`
//! (request JSON in the shape of `nestor_core::RenderRequest`; answer
//! `{"ok": {artifacts, outputs}}` or `{"error": {kind, message}}`) and
//! `nestor_engine_validate(ptr, len) -> *mut c_char` (`{definition,
//! engine_config}` in, a list of `{field, message}` out; since version 2)
//! and `nestor_engine_free(*mut c_char)` for every string returned.
#![deny(missing_docs)]

// The generated WIT bindings name their runtime by this crate's path, which
// must also resolve inside the crate itself.
#[cfg(target_arch = "wasm32")]
extern crate self as nestor_engine_sdk;

pub mod check;
mod glue;
pub mod names;
mod types;
pub mod yaml;

pub use serde_json::{self, json, Value};
pub use types::{
    Artifact, Config, ConfigProblem, Context, Definition, EngineError, EngineInfo, OutputSpec,
    Reach, Reference, RefusedReference, Rendered, Request, SecretKeyRef, StackOutputRef,
};

/// Version of the native C ABI the [`export_engine!`] macro exports.
pub const NATIVE_ABI_VERSION: u32 = 2;

/// Version of the WIT package (`nestor:engine`) this SDK builds against.
pub const WIT_ABI_VERSION: &str = "0.2.0";

/// An engine: turns one resolved resource into one tool's native files.
///
/// Both methods are associated functions because a component instance is
/// created per call by the host: there is no state to keep between calls.
pub trait Engine {
    /// Name, version and description. Called often; keep it cheap.
    fn info() -> EngineInfo;

    /// Renders one resource. Must be deterministic.
    fn render(request: Request) -> Result<Rendered, EngineError>;

    /// Checks the engine config of a definition (publish and `nestor
    /// catalog validate` time): unknown keys, required keys, types. The
    /// default accepts everything; see [`check::ConfigSpec`].
    fn validate(definition: &Definition, config: &Config) -> Vec<ConfigProblem> {
        let _ = (definition, config);
        Vec::new()
    }
}

/// Exports an [`Engine`] implementation as the plugin's entry points.
///
/// Call it once, at the crate root, with the type implementing [`Engine`].
#[macro_export]
macro_rules! export_engine {
    ($engine:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct NestorEngineExport;
            impl $crate::__private::bindings::exports::nestor::engine::engine_api::Guest for NestorEngineExport {
                fn info() -> $crate::__private::bindings::nestor::engine::types::EngineInfo {
                    $crate::__private::wasm_info::<$engine>()
                }
                fn validate(
                    request: $crate::__private::bindings::nestor::engine::types::ValidateRequest,
                ) -> ::std::vec::Vec<$crate::__private::bindings::nestor::engine::types::ConfigProblem> {
                    $crate::__private::wasm_validate::<$engine>(request)
                }
                fn render(
                    request: $crate::__private::bindings::nestor::engine::types::RenderRequest,
                ) -> ::core::result::Result<
                    $crate::__private::bindings::nestor::engine::types::RenderOutput,
                    $crate::__private::bindings::nestor::engine::types::EngineError,
                > {
                    $crate::__private::wasm_render::<$engine>(request)
                }
            }
            $crate::__private::bindings::export!(NestorEngineExport with_types_in $crate::__private::bindings);
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            /// The native C ABI version this library speaks.
            #[unsafe(no_mangle)]
            pub extern "C" fn nestor_engine_native_abi_version() -> u32 {
                $crate::NATIVE_ABI_VERSION
            }
            /// `{name, version, description}` as NUL-terminated JSON; free with `nestor_engine_free`.
            #[unsafe(no_mangle)]
            pub extern "C" fn nestor_engine_info() -> *mut ::core::ffi::c_char {
                $crate::__private::native_info::<$engine>()
            }
            /// Renders the request JSON at `ptr..ptr+len`; free the answer with `nestor_engine_free`.
            ///
            /// # Safety
            /// `ptr` must point to `len` readable bytes.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn nestor_engine_render(ptr: *const u8, len: usize) -> *mut ::core::ffi::c_char {
                unsafe { $crate::__private::native_render::<$engine>(ptr, len) }
            }
            /// Checks `{definition, engine_config}` JSON at `ptr..ptr+len`; free the answer with `nestor_engine_free`.
            ///
            /// # Safety
            /// `ptr` must point to `len` readable bytes.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn nestor_engine_validate(ptr: *const u8, len: usize) -> *mut ::core::ffi::c_char {
                unsafe { $crate::__private::native_validate::<$engine>(ptr, len) }
            }
            /// Frees a string this library returned.
            ///
            /// # Safety
            /// `ptr` must come from this library and be freed once.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn nestor_engine_free(ptr: *mut ::core::ffi::c_char) {
                unsafe { $crate::__private::native_free(ptr) }
            }
        };
    };
}

/// What [`export_engine!`] expands to needs these; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::glue::*;
}
