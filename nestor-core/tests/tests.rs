//! Integration tests of nestor-core: one binary, one module per topic.

mod hostile;
mod parse;
mod versioning;
