//! Bindings for `nestor:engine@0.1.0`, generated from the frozen WIT.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../plugins/nestor-engine-sdk/wit/v0.1.0",
    world: "plugin",
    exports: { default: async },
});

pub(crate) use nestor::engine::types::{EngineError, NamedValue, RenderContext, RenderRequest};
