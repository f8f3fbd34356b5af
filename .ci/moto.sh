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

TOOLS="${NESTOR_TOOLS_DIR:-$HOME/.cache/nestor/tools}"
REQUIREMENT="moto[server]==5.2.1"
VENV="$TOOLS/moto"
RUN="$TOOLS/moto/run"
PIDFILE="$RUN/pid"
PORTFILE="$RUN/port"
LOG="$RUN/server.log"
WAIT_SECONDS="${NESTOR_MOTO_WAIT:-60}"

log() { echo "moto.sh: $*" >&2; }

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

running_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'moto_server'; then
    echo "$pid"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

print_exports() {
  echo "export NESTOR_TEST_S3_ENDPOINT=http://127.0.0.1:$(cat "$PORTFILE")"
}

start() {
  install
  mkdir -p "$RUN"
  if [ -n "$(running_pid)" ] && answers "$(cat "$PORTFILE")"; then
    log "reusing the server on port $(cat "$PORTFILE") (pid $(running_pid))"
    print_exports
    return 0
  fi
  stop
  local port pid
  port="$(free_port)"
  log "starting moto on 127.0.0.1:$port"
  (exec setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG" 2>&1 </dev/null) &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$port" >"$PORTFILE"
  local waited=0
  until answers "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "moto exited; its log:"
      cat "$LOG" >&2
      exit 1
    fi
    if [ "$waited" -ge $((WAIT_SECONDS * 4)) ]; then
      log "moto did not answer within ${WAIT_SECONDS}s; its log:"
      cat "$LOG" >&2
      stop
      exit 1
    fi
    sleep 0.25
    waited=$((waited + 1))
  done
  log "moto answers on port $port (pid $pid)"
  print_exports
}

stop() {
  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ]; then
    log "stopping moto (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

case "${1:-start}" in
  install) install; echo "$VENV/bin/moto_server" ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac
