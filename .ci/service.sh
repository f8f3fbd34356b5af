# Shared by the scripts that run a local server for the tests
# (.ci/dynamodb.sh, .ci/moto.sh): sourced, not run. The sourcing script sets
#   SERVICE (its name in messages), SCRIPT (its file name), RUN, PIDFILE,
#   PORTFILE, LOG, WAIT_SECONDS, MATCH (a string of the server's command line)
# and defines
#   install        install the server if needed
#   answers PORT   whether the server on PORT answers
#   launch PORT    start the server in the background on PORT (`exec setsid …`)
#   print_exports  the `export` lines `start` prints on stdout
# then calls `service_main "$@"` with its arguments (start|stop|install).

log() { echo "$SCRIPT: $*" >&2; }

# Only a live process that is still our server (a pid file left from an
# earlier boot may name a reused pid).
running_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$MATCH"; then
    echo "$pid"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Idempotent: a server `start` started that still answers is reused.
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
  log "starting $SERVICE on 127.0.0.1:$port"
  launch "$port"
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$port" >"$PORTFILE"
  local waited=0
  until answers "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$SERVICE exited; its log:"
      cat "$LOG" >&2
      exit 1
    fi
    if [ "$waited" -ge $((WAIT_SECONDS * 4)) ]; then
      log "$SERVICE did not answer within ${WAIT_SECONDS}s; its log:"
      cat "$LOG" >&2
      stop
      exit 1
    fi
    sleep 0.25
    waited=$((waited + 1))
  done
  log "$SERVICE answers on port $port (pid $pid)"
  print_exports
}

stop() {
  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ]; then
    log "stopping $SERVICE (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

# `install` prints $INSTALLED (what the sourcing script's install made).
service_main() {
  case "${1:-start}" in
    install) install; echo "$INSTALLED" ;;
    start) start ;;
    stop) stop ;;
    *) echo "usage: $SCRIPT start|stop|install" >&2; exit 2 ;;
  esac
}
