//! nestor-engines' integration tests: the real bundled components and test
//! guests (built from `plugins/` by the build script), and the artifacts
//! checked by the real tools (`.ci/engine-checkers.sh` installs them).

mod support;

mod abi;
mod bundled;
mod cache;
mod checkers;
mod examples;
mod inspect;
mod native;
mod reload;
mod sandbox;
mod wiring;
