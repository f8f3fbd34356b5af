//! Integration tests of nestor-storage: one binary, one module per topic.

#[cfg(feature = "dynamodb")]
mod dynamodb;
mod facade;
#[cfg(feature = "git")]
mod gitops;
mod memory;
mod orchestrator;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_wal;
mod sync;
mod takeover;
