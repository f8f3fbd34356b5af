#!/usr/bin/env bash
# Run with: bash benches/server/run.sh
# Builds the harness in release mode and runs every scenario on loopback.
# Bounded: each load phase runs a fixed number of seconds; the whole run
# takes a few minutes. Prints the figures recorded in benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nestor/target}"
cargo build --release -p nestor-bench-server
exec "$CARGO_TARGET_DIR/release/nestor-bench-server" "$@"
