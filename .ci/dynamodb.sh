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

SCRIPT="$(basename "$0")"
SERVICE="DynamoDB Local"
MATCH="DynamoDBLocal.jar"

TOOLS="${NESTOR_TOOLS_DIR:-$HOME/.cache/nestor/tools}"
PACKAGE="amplify-dynamodb-simulator"
VERSION="2.9.30"
DIR="$TOOLS/dynamodb-local/$VERSION"
RUN="$TOOLS/dynamodb-local/run"
PIDFILE="$RUN/pid"
PORTFILE="$RUN/port"
LOG="$RUN/server.log"
WAIT_SECONDS="${NESTOR_DYNAMODB_WAIT:-60}"

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

print_exports() {
  echo "export NESTOR_TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:$(cat "$PORTFILE")"
  echo "export NESTOR_DYNAMODB_LOCAL_DIR='$DIR'"
  echo "export NESTOR_DYNAMODB_PIDFILE='$PIDFILE'"
}

# -Djava.library.path for SQLite's native library; run from its folder as
# AWS documents. setsid detaches it from this script's process group.
launch() {
  (cd "$DIR" && exec setsid java -Xmx512m -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
      -inMemory -sharedDb -port "$1" >"$LOG" 2>&1 </dev/null) &
}

INSTALLED="$DIR"
# shellcheck source=.ci/service.sh
source "$(dirname "$0")/service.sh"
service_main "$@"
