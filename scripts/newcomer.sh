#!/usr/bin/env bash
# A newcomer's first hour, run as written: on a fresh clone of this
# repository (its committed HEAD), the README's first command (the server
# with the example catalog, asked over HTTP the way the README says), then
# every `sh` code block of the book's first tutorial
# (docs/src/product/tutorial.md), in order, in one shell. With --tests it
# also runs the README's second command, `cargo test --workspace` (CI runs
# that one anyway).
#
#   scripts/newcomer.sh [--tests]
#
# Build output goes to $CARGO_TARGET_DIR (default: a cache outside the
# clone), so only Nestor's own crates are rebuilt for the new path: about
# four minutes on the 2-core development machine (221 s on 2026-12-03),
# most of it that rebuild. Run nothing else on the same target folder
# meanwhile: a build waiting for its lock outlasts the server's start-up
# wait.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nestor/target}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { echo; echo "=== $*"; }

step "fresh clone of $(git -C "$repo" rev-parse --short HEAD)"
git clone --quiet "$repo" "$work/nestor"
cd "$work/nestor"

step "README, first command: the server with the example catalog"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build -q -p nestor-server
port=$((20000 + RANDOM % 20000))
cargo run -q -p nestor-server -- serve --catalog examples/catalog --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
  sleep 1
done
if ! curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then
  echo "newcomer: the server did not answer /ready within 120 s; its output:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
curl -sf "http://127.0.0.1:$port/api/v1/resources" > "$work/resources.json"
python3 - "$work/resources.json" <<'PY'
import json, sys
items = json.load(open(sys.argv[1]))["items"]
assert len(items) >= 10, f"only {len(items)} definitions listed"
print(f"GET /api/v1/resources: {len(items)} definitions")
PY
curl -sf -m 2 -N "http://127.0.0.1:$port/api/v1/events" > "$work/events.txt" || true
echo "GET /api/v1/events: $(grep -c '^event:' "$work/events.txt" || true) events replayed in 2 s"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
rm -rf .nestor gitops

step "the book's first tutorial, every sh block in order"
python3 - docs/src/product/tutorial.md > "$work/tutorial.sh" <<'PY'
import sys
blocks, block, inside = [], [], False
for line in open(sys.argv[1]):
    if line.startswith("```sh"):
        inside, block = True, []
    elif line.startswith("```") and inside:
        inside = False
        blocks.append("".join(block))
    elif inside:
        block.append(line)
print("shopt -s expand_aliases\nset -euo pipefail\nset -x")
for b in blocks:
    print(b)
PY
bash "$work/tutorial.sh"

if [ "${1:-}" = "--tests" ]; then
  step "README, second command"
  cargo test --workspace
fi
echo
echo "newcomer: the README's first command and the tutorial work as written"
