//! Integration tests of the nestor binary: one binary, one module per topic.
mod cli;
mod deploy;
mod replicas;
mod server;
mod terraform;
