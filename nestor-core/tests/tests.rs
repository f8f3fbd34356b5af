//! Integration tests of nestor-core: one binary, one module per topic.

mod flow;
mod hostile;
mod parse;
mod versioning;
