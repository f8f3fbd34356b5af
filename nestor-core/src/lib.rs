//! # nestor-core
//!
//! The domain and the rules of Nestor, with no I/O: no database, no HTTP, no
//! git and no wasmtime. Storage backends, engine hosts and front-ends depend
//! on this crate and plug in through its traits.
//!
//! # Layout
//! - `model`: plain data — resource definitions in their canonical form,
//!   published versions, sources, sync reports, events.
//! - `parse`: YAML documents → canonical definitions. Every alias of SPEC §1
//!   is normalised here, and nowhere else.
//! - `validate`: the validity rules of SPEC §1; every violation at once, each
//!   with a field path.
//! - `versioning`: SPEC §2 — change classification, required bumps, latest,
//!   requirement matching.
//! - `store`: the storage traits, split by use; `source`: what a catalog
//!   source (git repository, folder) offers; `engine`: the engine trait.
//! - `catalog` and `sync`: the services (publish, yank, sync) written against
//!   those traits, shared by the library user, the CLI and the server.
//! - `search`: the ranking every store uses.
//! - `testing` (feature `testing`): the conformance suite every store runs.
//!
//! # Design decisions
//! - Rules live here and are *called* by backends (through default trait
//!   methods such as [`CatalogReader::latest`]), so the memory, SQLite and
//!   DynamoDB stores cannot disagree on what "latest" means.
//! - Validation happens before any write; stores enforce only what must be
//!   atomic (immutability, event sequence).
//! - The core has no clock: timestamps are passed in by callers.
//! - One error type, [`Error`], whose [`Error::code`] is the SPEC §12 code.
#![deny(missing_docs)]

mod annotations;
mod catalog;
mod composer;
mod config_util;
mod engine;
mod error;
mod executor;
mod graph;
mod model;
mod orchestrator;
mod parse;
mod search;
mod source;
mod store;
mod sync;
mod template;
mod validate;
mod versioning;

#[cfg(feature = "testing")]
pub mod testing;

pub use annotations::*;
pub use catalog::*;
pub use composer::*;
pub use config_util::parse_duration;
pub use engine::*;
pub use error::*;
pub use executor::*;
pub use graph::*;
pub use model::*;
pub use orchestrator::*;
pub use parse::*;
pub use search::*;
pub use source::*;
pub use store::*;
pub use sync::*;
pub use template::*;
pub use validate::*;
pub use versioning::*;
