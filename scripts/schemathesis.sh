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
# It first validates the served document with openapi-spec-validator.
# scripts/schemathesis.toml says where a request inside the document may
# still be refused (rules against the catalog a schema cannot state).
# Not part of CI (minutes of requests); run it after changing a handler or
# openapi.rs. schemathesis and openapi-spec-validator are installed from
# PyPI into a virtualenv of their own under ~/.cache/nestor/tools. Exits
# non-zero when either reports anything; the last line gives the figures
# SECURITY.md records (requests, checks, failures).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nestor/target}"
TOOLS="${NESTOR_TOOLS_DIR:-$HOME/.cache/nestor/tools}"
VENV="$TOOLS/schemathesis-venv"
max_examples="${1:-25}"

if [ ! -x "$VENV/bin/schemathesis" ] || [ ! -x "$VENV/bin/openapi-spec-validator" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check schemathesis openapi-spec-validator
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

# The document itself first: a valid OpenAPI 3.1 document (unique
# operationIds, resolvable references, well-formed schemas).
curl -sf "http://127.0.0.1:$port/api/v1/openapi.json" > "$work/openapi.json"
"$VENV/bin/openapi-spec-validator" "$work/openapi.json"

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
  --report ndjson --report-dir "$work/report" \
  --no-color 2>&1 | tee "$work/report.txt"
status=${PIPESTATUS[0]}
set -e
# The figures SECURITY.md records: requests sent and checks run.
"$VENV/bin/python" - "$work"/report/*.ndjson <<'PY'
import json, sys
requests = checks = failed = 0
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8"):
        event = json.loads(line)
        if "ScenarioFinished" not in event:
            continue
        recorder = event["ScenarioFinished"].get("recorder") or {}
        requests += len(recorder.get("interactions") or {})
        for items in (recorder.get("checks") or {}).values():
            checks += len(items)
            failed += sum(1 for c in items if str(c.get("status")).lower() == "failure")
print(f"schemathesis: {requests} requests, {checks} checks, {failed} failed")
PY
echo "schemathesis: exit $status (max $max_examples examples per operation; /api/v1/events, a stream, excluded)"
exit "$status"
