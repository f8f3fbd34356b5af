//! Integration tests of nestor-storage: one binary, one module per topic.

mod memory;
mod sync;
