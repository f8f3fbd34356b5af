//! # nestor-server
//!
//! The `nestor` binary's library: configuration loading, wiring, and the
//! command line. It is thin on purpose: every command calls the same
//! `nestor-core` services a library user calls, over the stores of
//! `nestor-storage`.
//!
//! # Layout
//! - `config`: `nestor.yaml` (docs/src/reference/configuration.md) with `NESTOR_*` overrides.
//! - `cli`: the clap command line (docs/src/reference/cli.md); `cli::output` renders tables,
//!   JSON and YAML from one value per command.
//! - `server`: `nestor serve` — the axum HTTP API (docs/src/reference/http-api.md), the event
//!   stream (docs/src/reference/events.md), webhooks, auth and metrics; [`server::router`] and
//!   [`server::serve`] take their state and listener from the caller, so
//!   tests run the real server on `127.0.0.1:0`.
//!
//! # Design decisions
//! - `anyhow` lives here and only here; library errors stay typed and are
//!   printed with their error code (`error[VERSION_IMMUTABLE]: …`).
//! - Wiring is plain constructors: the configuration picks the store, the
//!   command builds the service it needs.
#![deny(missing_docs)]

mod cli;
mod config;
pub mod executors;
pub mod schema;
pub mod server;

pub use cli::{run, run_from, Cli, Format};
pub use config::*;
