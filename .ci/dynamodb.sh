#!/usr/bin/env bash
# AWS DynamoDB Local for the DynamoDB store's tests and benchmark.
#
#   eval "$(.ci/dynamodb.sh start)"   # install if needed, start, print exports
#   .ci/dynamodb.sh stop              # stop the server `start` started
#   .ci/dynamodb.sh install           # install only; prints the folder
#
# DynamoDB Local ships inside the npm package amplify-dynamodb-simulator
# (package/emulator/DynamoDBLocal.jar and DynamoDBLocal_lib). It is
# installed once into $NESTOR_TOOLS_DIR (default ~/.cache/nestor/tools),
# never into the clone, and runs in memory on 127.0.0.1 on a free port with
# -sharedDb (one database whatever the credentials and region).
#
# `start` is idempotent: a server it started that still answers is reused.
# It prints, on stdout only:
#   export NESTOR_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT
#   export NESTOR_DYNAMODB_LOCAL_DIR=...   (the tests start private servers for fault tests)
#   export NESTOR_DYNAMODB_PIDFILE=...
# Progress goes to stderr.
set -euo pipefail

TOOLS="${NESTOR_TOOLS_DIR:-$HOME/.cache/nestor/tools}"
PACKAGE="amplify-dynamodb-simulator"
VERSION="2.9.30"
DIR="$TOOLS/dynamodb-local/$VERSION"
RUN="$TOOLS/dynamodb-local/run"
PIDFILE="$RUN/pid"
PORTFILE="$RUN/port"
LOG="$RUN/server.log"
WAIT_SECONDS="${NESTOR_DYNAMODB_WAIT:-60}"

log() { echo "dynamodb.sh: $*" >&2; }

install() {
  if [ -f "$DIR/DynamoDBLocal.jar" ] && [ -d "$DIR/DynamoDBLocal_lib" ]; then
    return 0
  fi
  if ! command -v java >/dev/null 2>&1; then
    log "java is missing; installing a headless JRE from Debian"
    (apt-get update -qq && apt-get install -y -qq default-jre-headless) >&2
  fi
  log "installing DynamoDB Local from $PACKAGE@$VERSION into $DIR"
  local work
  work="$(mktemp -d)"
  (cd "$work" && npm pack "$PACKAGE@$VERSION" --silent >/dev/null 2>&1)
  tar -xzf "$work"/*.tgz -C "$work"
  if [ ! -f "$work/package/emulator/DynamoDBLocal.jar" ]; then
    log "$PACKAGE@$VERSION has no package/emulator/DynamoDBLocal.jar"
    rm -rf "$work"
    exit 1
  fi
  mkdir -p "$(dirname "$DIR")"
  rm -rf "$DIR.partial"
  mv "$work/package/emulator" "$DIR.partial"
  mv "$DIR.partial" "$DIR"
  rm -rf "$work"
}

answers() {
  curl -s -m 2 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$1/" \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=nestor/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
    -d '{}' 2>/dev/null | grep -q '^200$'
}

running_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  # Only a live process that is still our DynamoDB Local (a pid file left
  # from an earlier boot may name a reused pid).
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'DynamoDBLocal.jar'; then
    echo "$pid"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

print_exports() {
  echo "export NESTOR_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:$(cat "$PORTFILE")"
  echo "export NESTOR_DYNAMODB_LOCAL_DIR='$DIR'"
  echo "export NESTOR_DYNAMODB_PIDFILE='$PIDFILE'"
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
  log "starting DynamoDB Local on 127.0.0.1:$port"
  # -Djava.library.path for SQLite's native library; run from its folder
  # as AWS documents. setsid detaches it from this script's process group.
  (cd "$DIR" && exec setsid java -Xmx512m -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
      -inMemory -sharedDb -port "$port" >"$LOG" 2>&1 </dev/null) &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$port" >"$PORTFILE"
  local waited=0
  until answers "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "DynamoDB Local exited; its log:"
      cat "$LOG" >&2
      exit 1
    fi
    if [ "$waited" -ge $((WAIT_SECONDS * 4)) ]; then
      log "DynamoDB Local did not answer within ${WAIT_SECONDS}s; its log:"
      cat "$LOG" >&2
      stop
      exit 1
    fi
    sleep 0.25
    waited=$((waited + 1))
  done
  log "DynamoDB Local answers on port $port (pid $pid)"
  print_exports
}

stop() {
  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ]; then
    log "stopping DynamoDB Local (pid $pid)"
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
  install) install; echo "$DIR" ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac
