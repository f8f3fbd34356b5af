//! Integration tests of nestor-storage: one binary, one module per topic.

mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;
mod sync;
