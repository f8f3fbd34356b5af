//! The Terraform executor end to end: real Terraform, the bundled engines,
//! a SQLite store and a GitOps repository (see `support`).

mod backend;
mod flow;
mod lifecycle;
mod support;
