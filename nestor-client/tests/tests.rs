//! nestor-client against a real server on 127.0.0.1: every call's answer
//! and its errors with their real codes, retries, the event stream, a
//! stream that outlives a killed server, and TLS with a private CA.

mod support;

mod catalog;
mod deployments;
mod events;
mod restart;
mod retries;
mod tls;
