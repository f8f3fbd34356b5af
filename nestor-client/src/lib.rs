//! # nestor-client
//!
//! A typed async client for the HTTP API of `nestor serve`, and a
//! resumable stream of its events: what a Rust program — a processor
//! reacting to catalog changes, a portal, a CI step — uses to talk to a
//! Nestor server.
//!
//! ```no_run
//! # async fn demo() -> nestor_core::Result<()> {
//! use futures_util::StreamExt;
//! use nestor_client::{Client, EventQuery};
//!
//! let client = Client::builder("https://nestor.example.com")
//!     .token(std::env::var("NESTOR_TOKEN").unwrap_or_default())
//!     .build()?;
//! let mysql = client.latest("aws-rds-mysql").await?;
//! println!("{} {}", mysql.name(), mysql.version());
//!
//! let mut events = client.events(EventQuery::new().types("resource.*")).await?;
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{} {}", event.event_type.as_str(), event.subject);
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `client`: [`Client`] and [`ClientBuilder`] — TLS roots, token,
//!   timeouts — and the one path every call takes: send, retry, decode the
//!   answer or the error body.
//! - `retry`: which calls are retried, on which failures, and the backoff.
//! - `catalog`, `compositions`, `deployments`, `teams`, `audit`: one
//!   method per route of the API, grouped as the server groups them.
//! - `events`: [`EventStream`], the reconnecting SSE follower, and
//!   [`EventQuery`], its filters.
//! - `wire`: the few answers that are not a core type ([`ServerStatus`],
//!   [`EngineStatus`], [`ValidationReport`]...).
//!
//! # Design decisions
//! - **Core types in, core types out.** Every call takes and returns
//!   `nestor-core`'s types ([`nestor_core::PublishedVersion`],
//!   [`nestor_core::Deployment`], [`nestor_core::Plan`],
//!   [`nestor_core::GraphView`]...) and fails with [`nestor_core::Error`].
//!   The API's error body is decoded into the same variant, with the
//!   same code, fields and message a local call returns
//!   ([`nestor_core::Error::from_code`]), so code written against the
//!   library runs unchanged against a server; error codes never travel as
//!   strings. A server that cannot be reached, or drops the connection, is
//!   `STORAGE_UNAVAILABLE` (the store behind the API is unavailable), with
//!   the transport error as its source.
//! - **Retries only where a repeat is harmless.** Reads, the read-only
//!   POSTs (validate, plan), publishes (versions are immutable: a repeat is
//!   answered "unchanged"), yanks (a flag), and applies are retried on
//!   connection failures and on 429, 502, 503 and 504, with exponential
//!   backoff, jitter and the server's `Retry-After`. An apply always
//!   carries an `Idempotency-Key` — the caller's, or one made per call and
//!   kept across its retries — so the server applies it once however often
//!   it arrives. Sync triggers, rollbacks, promotions and deletes are sent
//!   once.
//! - **The event stream never loses or repeats an event.** It tracks the
//!   sequence of the last event it yielded and reconnects with
//!   `Last-Event-ID` after any drop, so the server replays what was missed
//!   from its store's log (which survives a restart); anything at or below
//!   that sequence is dropped. A stream "from now" first reads the log's
//!   end from `/status`, so even an event published before its first
//!   connection settled is not lost. `event: resync` reconnects at once;
//!   failures back off, bounded by the client's largest delay.
//! - **Small.** reqwest with rustls (ring) and the system's roots plus any
//!   extra CA ([`ClientBuilder::ca_cert`]); `eventsource-stream` parses SSE
//!   (the WHATWG rules: multi-line data, comments, ids) rather than a
//!   parser of our own; no server framework.
#![deny(missing_docs)]

mod audit;
mod catalog;
mod client;
mod compositions;
mod deployments;
mod events;
mod retry;
mod teams;
mod wire;

pub use client::{Client, ClientBuilder};
pub use events::{EventQuery, EventStream};
pub use nestor_core::TeamDeploy;
pub use wire::{
    DocumentReport, EngineStatus, Readiness, ServerStatus, ValidationReport, YankOutcome,
};
