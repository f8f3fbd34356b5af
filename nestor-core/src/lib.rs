//! # nestor-core
//!
//! The domain and the rules of Nestor, with no I/O: no database, no HTTP, no
//! git and no wasmtime. Storage backends, engine hosts and front-ends depend
//! on this crate and plug in through its traits.
//!
//! # Layout
//! - `facade`: [`Nestor`], the one service API every front-end stands on:
//!   built once over one store, it wires the services below and exposes
//!   every operation the CLI and the HTTP API offer.
//! - `model`: plain data — resource definitions in their canonical form,
//!   published versions, sources, sync reports, events, compositions,
//!   deployments and their revisions.
//! - `parse`: YAML documents → canonical definitions and compositions. Every
//!   alias of definitions and compositions is normalised here, and nowhere else.
//! - `validate`: the validity rules of definitions (docs/src/reference/formats.md) and value checks; every
//!   violation at once, each with a field path.
//! - `versioning`: the versioning rules (docs/src/reference/versioning.md) — change classification, required bumps, latest,
//!   requirement matching, catalog references.
//! - `store`: the storage traits, split by use; `source`: what a catalog
//!   source (git repository, folder) offers; `engine`: the engine trait and
//!   the provider the orchestrator looks engines up in; `executor`: what
//!   happens to rendered files (the GitOps executor implements it).
//! - `catalog` and `sync`: publishing (one or a batch), yanking, syncing a
//!   source; `composer`: publishing compositions after static validation.
//! - `template`: minijinja over params, outputs and context; `graph`:
//!   dependency graphs, named cycles, waves; `orchestrator`: plan, apply,
//!   rollback, delete, promote, the deployment graph view, and leases —
//!   every run holds one in the store, and a deployment whose runner
//!   stopped is resumed by another ([`Orchestrator::resume`]).
//! - `clock`: where services read the time ([`Clock`]; tests fix it).
//! - `cpu`: where CPU-bound work (a sync's parsing and serialising) runs:
//!   [`Offload`], tokio's blocking pool with feature `rt`, never an async
//!   worker and never a thread the core starts.
//! - `naming`: the names a deployment takes in a cluster, in Argo CD and
//!   in the GitOps repository, unambiguous across teams.
//! - `manifests`: which rendered files a cluster applies, the Kubernetes
//!   objects they hold, and the controller each object is for.
//! - `observer`: the trait of what looks at the cluster after a commit
//!   (Argo CD, in the `nestor-argocd` crate); the orchestrator keeps a
//!   deployment `applying` until it reports every object healthy.
//! - `annotations`: `//nestor:` comments and the deployment file.
//! - `audit`: the audit trail — [`Actor`], [`AuditRecord`], the
//!   [`AuditLog`] trait stores implement; the facade records every write.
//! - `policy`: Rego policies (conftest's `deny`, `violation`, `warn`)
//!   evaluated at definition and composition publish and at plan and
//!   apply, by scope (global, team, environment).
//! - `quota`: team quotas (deployments, resources, per category) and how
//!   usage is counted; stores enforce them atomically at apply.
//! - `search`: the ranking every store uses.
//! - `secret`: sensitive inputs by reference (`{secret_ref: ...}`), the one
//!   rule that refuses a literal; `redact`: the one mechanism that hides
//!   sensitive outputs (`"***"`) in records, events, logs and diffs.
//! - `testing` (feature `testing`): the conformance suites every store runs.
//!
//! # Design decisions
//! - Rules live here and are *called* by backends (through default trait
//!   methods such as [`CatalogReader::latest`]), so the memory, SQLite and
//!   DynamoDB stores cannot disagree on what "latest" means.
//! - Validation happens before any write; stores enforce only what must be
//!   atomic (immutability, event sequence, deployment generations, leases).
//! - Services read time through [`Clock`] ([`SystemClock`] by default), so
//!   tests can fix it; nothing else here touches the outside world. The
//!   core starts no runtime, but a deployment run uses tokio's timers
//!   (lease heartbeats, the pause between waves), so it must be polled
//!   inside a tokio runtime.
//! - Batches are first-class ([`CatalogService::publish_many`],
//!   [`CatalogWriter::insert_versions`], [`EventLog::append_many`],
//!   [`EventLog::append_serialized`] for events whose data is JSON text
//!   already): a sync of thousands of files costs a few store round trips,
//!   not thousands, and serialises each definition once.
//! - One error type, [`Error`], whose [`Error::code`] is the error code.
#![deny(missing_docs)]

mod annotations;
mod audit;
mod catalog;
mod clock;
mod composer;
mod config_util;
mod cpu;
mod engine;
mod error;
mod executor;
mod facade;
mod graph;
mod manifests;
mod model;
mod naming;
mod observer;
mod orchestrator;
mod parse;
mod policy;
mod quota;
mod redact;
mod search;
mod secret;
mod selector;
mod source;
mod store;
mod sync;
mod template;
mod validate;
mod versioning;

#[cfg(feature = "testing")]
pub mod testing;

pub use annotations::*;
pub use audit::*;
pub use catalog::*;
pub use clock::*;
pub use composer::*;
pub use config_util::parse_duration;
#[cfg(feature = "rt")]
pub use cpu::Blocking;
pub use cpu::{default_offload, Inline, Offload};
pub use engine::*;
pub use error::*;
pub use executor::*;
pub use facade::*;
pub use graph::*;
pub use manifests::*;
pub use model::*;
pub use naming::*;
pub use observer::*;
pub use orchestrator::*;
pub use parse::*;
pub use policy::*;
pub use quota::*;
pub use redact::*;
pub use search::*;
pub use secret::*;
pub use selector::EventSelector;
pub use source::*;
pub use store::*;
pub use sync::*;
pub use template::*;
pub use validate::*;
pub use versioning::*;
