//! # nestor-storage
//!
//! Everything Nestor persists or reads as a source of truth: the stores
//! behind the `nestor-core` storage traits, the catalog sources, and the
//! GitOps repository deployments are committed to.
//!
//! # Layout
//! - `memory`: [`MemoryStore`], for tests and embedding; always available.
//! - `walk`: [`walk_files`], the one directory walker every reader of local
//!   files uses (hidden entries skipped, links not followed, sorted).
//! - `private`: [`create_private_dir`] (0700) and [`ensure_private_file`]
//!   (0600): the modes of everything a store or the executor creates.
//! - `sqlite` (feature `sqlite`, default): [`SqliteStore`], the embedded
//!   default — one file, WAL, versioned migrations, a read cache callers
//!   never see.
//! - `dynamodb` (feature `dynamodb`): `DynamoStore`, for several server
//!   replicas sharing one catalog — conditional writes, a global event
//!   counter, tables made by `migrate` (design in its module docs).
//! - `git` (feature `git`, default): [`GitSource`] and [`FolderSource`], the
//!   `CatalogSource`s read by the sync service, and [`GitOpsExecutor`], the
//!   default `Executor` (one commit per apply, Argo CD Applications).
//!
//! # Design decisions
//! Every store passes the conformance suites of `nestor_core::testing` in
//! full (catalog, compositions, deployments), so they are interchangeable. The rules (latest, requirement
//! matching, search ranking) come from the core; a store only makes writes
//! atomic and reads fast.
#![deny(missing_docs)]

mod memory;
pub use memory::MemoryStore;

mod walk;
pub use walk::{walk_files, WalkedFile};

mod private;
pub use private::{create_private_dir, ensure_private_file};

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
pub use gitops::{FolderChange, GitOpsConfig, GitOpsExecutor, ARGOCD_EXCLUDE, ARGOCD_INCLUDE};
