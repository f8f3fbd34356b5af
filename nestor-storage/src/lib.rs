//! # nestor-storage
//!
//! Everything Nestor persists or reads as a source of truth: the stores
//! behind the `nestor-core` storage traits, and the catalog sources.
//!
//! # Layout
//! - `memory`: [`MemoryStore`], for tests and embedding; always available.
//! - `sqlite` (feature `sqlite`, default): [`SqliteStore`], the embedded
//!   default — one file, WAL, versioned migrations, a read cache callers
//!   never see.
//! - `git` (feature `git`, default): [`GitSource`] and [`FolderSource`], the
//!   `CatalogSource`s read by the sync service.
//!
//! # Design decisions
//! Every store passes the conformance suite of `nestor_core::testing` in
//! full, so they are interchangeable. The rules (latest, requirement
//! matching, search ranking) come from the core; a store only makes writes
//! atomic and reads fast.
#![deny(missing_docs)]

mod memory;
pub use memory::MemoryStore;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(feature = "dynamodb")]
mod dynamodb;
#[cfg(feature = "dynamodb")]
pub use dynamodb::{DynamoConfig, DynamoStore};

#[cfg(feature = "git")]
mod git;
#[cfg(feature = "git")]
mod gitops;
#[cfg(feature = "git")]
pub use git::{open_source, FolderSource, GitSource};
#[cfg(feature = "git")]
pub use gitops::{GitOpsConfig, GitOpsExecutor};
