#!/usr/bin/env bash
# moto's server (a local AWS: S3 here) for the Terraform executor's s3
# backend test (nestor-terraform/tests).
#
#   eval "$(.ci/moto.sh start)"   # install if needed, start, print exports
#   .ci/moto.sh stop              # stop the server `start` started
#   .ci/moto.sh install           # install only; prints the moto_server path
#
# PyPI moto[server] is installed once into a private virtualenv under
# $NESTOR_TOOLS_DIR (default ~/.cache/nestor/tools), never into the clone,
# and runs in memory on 127.0.0.1 on a free port.
#
# `start` is idempotent: a server it started that still answers is reused.
# It prints, on stdout only:
#   export NESTOR_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
# Progress goes to stderr.
set -euo pipefail

SCRIPT="$(basename "$0")"
SERVICE="moto"
MATCH="moto_server"

TOOLS="${NESTOR_TOOLS_DIR:-$HOME/.cache/nestor/tools}"
REQUIREMENT="moto[server]==5.2.1"
VENV="$TOOLS/moto"
RUN="$TOOLS/moto/run"
PIDFILE="$RUN/pid"
PORTFILE="$RUN/port"
LOG="$RUN/server.log"
WAIT_SECONDS="${NESTOR_MOTO_WAIT:-60}"

install() {
  if [ "$(cat "$VENV/.nestor-requirement" 2>/dev/null)" = "$REQUIREMENT" ] && [ -x "$VENV/bin/moto_server" ]; then
    return 0
  fi
  if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
    log "python3 cannot create virtualenvs; install python3-venv and run again"
    exit 1
  fi
  log "installing $REQUIREMENT into $VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$REQUIREMENT" >&2
  echo "$REQUIREMENT" > "$VENV/.nestor-requirement"
}

answers() {
  curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/moto-api/data.json" 2>/dev/null | grep -q '^200$'
}

print_exports() {
  echo "export NESTOR_TEST_S3_ENDPOINT=http://127.0.0.1:$(cat "$PORTFILE")"
}

launch() {
  (exec setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$1" >"$LOG" 2>&1 </dev/null) &
}

INSTALLED="$VENV/bin/moto_server"
# shellcheck source=.ci/service.sh
source "$(dirname "$0")/service.sh"
service_main "$@"
