#!/usr/bin/env bash
# A bounded schemathesis run against a real `nestor serve` (SQLite in a
# temporary folder, the bundled engines, the example catalog synced, an
# admin token): every operation of /api/v1/openapi.json is called with
# generated requests, and every answer is checked against the document
# (`--checks all`: status codes, content types, headers, response schemas,
# and that the server refuses what the document excludes).
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]      # default 25 per operation
#
# Not part of CI (minutes of requests); run it after changing a handler or
# openapi.rs. schemathesis is installed from PyPI into a virtualenv of its
# own under ~/.cache/nestor/tools. Exits non-zero when schemathesis reports
# anything.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nestor/target}"
TOOLS="${NESTOR_TOOLS_DIR:-$HOME/.cache/nestor/tools}"
VENV="$TOOLS/schemathesis-venv"
max_examples="${1:-25}"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check schemathesis
fi

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

token="schemathesis-admin-token"
hash="$(printf %s "$token" | sha256sum | cut -d' ' -f1)"
port=$((20000 + RANDOM % 20000))
cat > "$work/nestor.yaml" <<YAML
server: {listen: "127.0.0.1:$port"}
storage: {type: sqlite, sqlite: {path: "$work/nestor.db"}}
gitops: {repo: "$work/gitops"}
auth:
  anonymous_read: true
  tokens: [{name: schemathesis, sha256: "$hash", roles: [admin]}]
YAML

cargo build -q -p nestor-server
"$CARGO_TARGET_DIR/debug/nestor" --config "$work/nestor.yaml" --data-dir "$work" \
  serve --catalog examples/catalog > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 1
done
curl -sf "http://127.0.0.1:$port/ready" >/dev/null || { cat "$work/serve.log" >&2; exit 1; }

set +e
cd "$work" # schemathesis keeps a .schemathesis/ folder where it runs
"$VENV/bin/schemathesis" --config-file "$repo/scripts/schemathesis.toml" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --checks all \
  --generation-database none \
  --max-examples "$max_examples" \
  --header "Authorization: Bearer $token" \
  --exclude-path /api/v1/events \
  --request-timeout 10 \
  --workers 1 \
  --no-color 2>&1 | tee "$work/report.txt"
status=${PIPESTATUS[0]}
set -e
echo "schemathesis: exit $status (max $max_examples examples per operation; /api/v1/events, a stream, excluded)"
exit "$status"
