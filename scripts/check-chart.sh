#!/usr/bin/env bash
# Checks the Helm chart deploy/helm/nestor the way CI does:
#   - `helm lint --strict` with the default values and with every option on;
#   - the manifests `helm template` renders pass `kubernetes-validate
#     --strict` (built-in kinds against Kubernetes' own schemas; the
#     ServiceMonitor, a CRD kubernetes-validate has no schema for, is
#     checked for its fields by hand below);
#   - the nestor.yaml the chart renders passes the configuration's JSON
#     Schema (docs/src/schemas/config.schema.json);
#   - replicaCount > 1 is refused unless storage is DynamoDB.
# Needs helm and kubernetes-validate: `eval "$(.ci/engine-checkers.sh)"`
# installs them (NESTOR_HELM, NESTOR_PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."

HELM="${NESTOR_HELM:-$(command -v helm || true)}"
PYTHON="${NESTOR_PYTHON:-python3}"
VALIDATE="$(dirname "$PYTHON")/kubernetes-validate"
[ -x "$HELM" ] || { echo "check-chart: helm not found (eval \"\$(.ci/engine-checkers.sh)\")" >&2; exit 1; }
[ -x "$VALIDATE" ] || VALIDATE="$(command -v kubernetes-validate || true)"
[ -x "$VALIDATE" ] || { echo "check-chart: kubernetes-validate not found" >&2; exit 1; }

chart=deploy/helm/nestor
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat > "$work/full.yaml" <<'VALUES'
replicaCount: 3
config:
  storage:
    type: dynamodb
    dynamodb: {table_prefix: nestor, region: eu-west-1}
  catalog:
    sources:
      - {name: platform, url: "https://git.example.com/platform/catalog.git", path: resources/, webhook_secret: "${GIT_WEBHOOK_SECRET}"}
  argocd: {server: "https://argocd.example.com", token: "${ARGOCD_AUTH_TOKEN}"}
tokens:
  - {name: ci, token: "s3cr3t-ci-token", roles: [platform]}
  - {name: alpha, token: "s3cr3t-alpha-token", roles: ["team:alpha"]}
env:
  - name: GIT_WEBHOOK_SECRET
    valueFrom: {secretKeyRef: {name: nestor-webhooks, key: secret}}
serviceAccount:
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/nestor"}
persistence: {enabled: true, size: 2Gi}
serviceMonitor: {enabled: true}
VALUES

passed=0
failed=0
check() {
  local what="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $what"
  else failed=$((failed + 1)); echo "FAILED: $what" >&2; fi
}

for values in default full; do
  args=()
  [ "$values" = full ] && args=(-f "$work/full.yaml")
  check "helm lint --strict ($values values)" "$HELM" lint --strict "$chart" "${args[@]}"
  "$HELM" template nestor "$chart" --namespace nestor "${args[@]}" > "$work/$values.rendered.yaml"
  "$PYTHON" - "$work/$values.rendered.yaml" "$work/$values" <<'PY'
import sys, yaml, json
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
builtin = [d for d in docs if d["kind"] != "ServiceMonitor"]
with open(sys.argv[2] + ".builtin.yaml", "w") as f:
    yaml.safe_dump_all(builtin, f)
monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
for m in monitors:
    assert m["apiVersion"] == "monitoring.coreos.com/v1", m["apiVersion"]
    ep = m["spec"]["endpoints"][0]
    assert ep["port"] == "http" and ep["path"] == "/metrics", ep
config = [d for d in docs if d["kind"] == "ConfigMap"][0]["data"]["nestor.yaml"]
with open(sys.argv[2] + ".nestor.json", "w") as f:
    json.dump(yaml.safe_load(config), f)
print(f"{len(docs)} objects: " + ", ".join(sorted(d['kind'] for d in docs)))
PY
  check "kubernetes-validate --strict ($values values)" "$VALIDATE" --strict "$work/$values.builtin.yaml"
  check "rendered nestor.yaml matches config.schema.json ($values values)" \
    "$PYTHON" -m jsonschema -i "$work/$values.nestor.json" docs/src/schemas/config.schema.json
done

refuses() {
  ! "$HELM" template nestor "$chart" --set replicaCount=2 > "$work/refused.txt" 2>&1 &&
    grep -q "needs config.storage.type: dynamodb" "$work/refused.txt"
}
check "replicaCount 2 on SQLite is refused" refuses

echo "check-chart: $passed passed, $failed failed"
[ "$failed" = 0 ]
