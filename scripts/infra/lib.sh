# shellcheck shell=bash
# Shared helpers for the infrastructure scripts. Source it; do not run it.
#
# Layout (all outside the clone, so every clone and CI run reuses it):
#   $TRIBUTARY_CACHE            downloads and builds (jars, Go binaries), kept forever
#   $TRIBUTARY_RUN              runtime state of the local services
#     logs/<service>.log        one log per service, the first place to look
#     data/<service>/           data directories (Kafka's survive stop/start)
#     pids/<service>.pid        pid of the running process
#   $TRIBUTARY_RUN/env.sh       endpoints, sourceable by tests and humans
set -euo pipefail

TRIBUTARY_CACHE="${TRIBUTARY_CACHE:-$HOME/.cache/tributary}"
TRIBUTARY_RUN="${TRIBUTARY_RUN:-$TRIBUTARY_CACHE/run}"
TRIBUTARY_BIN="$TRIBUTARY_CACHE/bin"
LOG_DIR="$TRIBUTARY_RUN/logs"
DATA_DIR="$TRIBUTARY_RUN/data"
PID_DIR="$TRIBUTARY_RUN/pids"
mkdir -p "$TRIBUTARY_CACHE" "$TRIBUTARY_BIN" "$LOG_DIR" "$DATA_DIR" "$PID_DIR"

# Go builds share one module and build cache with every clone.
export GOMODCACHE="${GOMODCACHE:-$TRIBUTARY_CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$TRIBUTARY_CACHE/go/build}"
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:--mod=mod}"
# Maven's local repository, shared by every clone.
MAVEN_REPO="${MAVEN_REPO:-$TRIBUTARY_CACHE/m2}"

# Fixed, non-default loopback ports so a developer's own services never collide.
TRIBUTARY_HOST=127.0.0.1
PG_PORT="${TRIBUTARY_PG_PORT:-55432}"
KAFKA_PORT="${TRIBUTARY_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${TRIBUTARY_KAFKA_CONTROLLER_PORT:-19093}"
REGISTRY_PORT="${TRIBUTARY_REGISTRY_PORT:-18081}"
OPENSEARCH_PORT="${TRIBUTARY_OPENSEARCH_PORT:-19200}"
OPENSEARCH_TRANSPORT_PORT="${TRIBUTARY_OPENSEARCH_TRANSPORT_PORT:-19300}"
ETCD_PORT="${TRIBUTARY_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${TRIBUTARY_ETCD_PEER_PORT:-12380}"
APISERVER_PORT="${TRIBUTARY_APISERVER_PORT:-16443}"
KUBECONFIG_PATH="$TRIBUTARY_RUN/kubeconfig"

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

# pid_alive NAME: true when NAME's pid file points at a live process.
pid_alive() {
  local f="$PID_DIR/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_daemon NAME CMD...: run CMD detached with its output in logs/NAME.log.
start_daemon() {
  local name="$1"; shift
  log "starting $name (log: $LOG_DIR/$name.log)"
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/$name.pid"
}

# stop_daemon NAME [TIMEOUT]: SIGTERM, wait, then SIGKILL. Idempotent.
stop_daemon() {
  local name="$1" timeout="${2:-30}" pid
  [[ -f "$PID_DIR/$name.pid" ]] || return 0
  pid="$(cat "$PID_DIR/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null && (( waited < timeout * 10 )); do sleep 0.1; waited=$((waited + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop within ${timeout}s; killing"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PID_DIR/$name.pid"
}

# wait_until NAME TIMEOUT CMD...: poll CMD until it succeeds; fail naming the
# service and its log when the time runs out or the process died.
wait_until() {
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -f "$PID_DIR/$name.pid" ]] && ! pid_alive "$name"; then
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      die "$name exited before becoming ready; see $LOG_DIR/$name.log"
    fi
    if (( SECONDS >= deadline )); then
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      die "$name not ready after ${timeout}s; see $LOG_DIR/$name.log"
    fi
    sleep 0.5
  done
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/$TRIBUTARY_HOST/$1") 2>/dev/null; }

# http_ok URL: the URL answers 2xx.
http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

# apt_install PKG...: install Debian packages that are missing.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  (( ${#missing[@]} == 0 )) && return 0
  log "apt-get install ${missing[*]}"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# with_lock NAME CMD...: serialise installs of one component across parallel callers.
with_lock() {
  local name="$1"; shift
  mkdir -p "$TRIBUTARY_CACHE/locks"
  # -o: the lock is not inherited by daemons started under it.
  flock -o "$TRIBUTARY_CACHE/locks/$name.lock" "$@"
}

# content_key DIR: a short hash of a Maven project's pom.xml and src/, so an
# edit to either lays out a new build directory in the cache.
content_key() {
  (cd "$1" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
}

# write_env: endpoints for tests (read by the Rust test helpers and by humans).
write_env() {
  cat >"$TRIBUTARY_RUN/env.sh" <<ENV
export TRIBUTARY_PG_URL="host=$TRIBUTARY_HOST port=$PG_PORT user=postgres dbname=postgres"
export TRIBUTARY_KAFKA_BOOTSTRAP="$TRIBUTARY_HOST:$KAFKA_PORT"
export TRIBUTARY_REGISTRY_URL="http://$TRIBUTARY_HOST:$REGISTRY_PORT/apis/ccompat/v7"
export TRIBUTARY_OPENSEARCH_URL="http://$TRIBUTARY_HOST:$OPENSEARCH_PORT"
export TRIBUTARY_KUBECONFIG="$KUBECONFIG_PATH"
export TRIBUTARY_BIN="$TRIBUTARY_BIN"
ENV
}
write_env

# dispatch SCRIPT_NAME "$@": run the subcommand the user asked for.
dispatch() {
  local script="$1"; shift
  case "${1:-}" in
    install|start|stop|status) "$1" ;;
    *) die "usage: $script install|start|stop|status" ;;
  esac
}
