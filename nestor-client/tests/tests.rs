//! nestor-client against a real server on 127.0.0.1: every call's answer
//! and its errors with their real codes, retries, the event stream, and a
//! stream that outlives a killed server.

mod support;

mod catalog;
mod deployments;
mod events;
mod restart;
mod retries;
