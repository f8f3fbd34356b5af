//! Integration tests of nestor-core: one binary, one module per topic.

mod parse;
mod versioning;
