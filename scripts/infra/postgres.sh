#!/usr/bin/env bash
# PostgreSQL 15 from Debian's packages on a throwaway data directory with
# logical replication enabled (what CDC needs) on its own loopback port.
# Usage: postgres.sh install|start|stop|status
source "$(dirname "$0")/lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
PG_DATA="$DATA_DIR/postgres"
PG_SOCKET_DIR="$TRIBUTARY_RUN/pg-socket"
PG_LOG="$LOG_DIR/postgres.log"

# initdb and pg_ctl refuse to run as root: run them as the postgres user.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
  apt_install postgresql-15 postgresql-client-15
}

ready() { as_pg "$PG_BIN/pg_isready" -q -h "$TRIBUTARY_HOST" -p "$PG_PORT"; }

start() {
  install
  if ready; then log "postgres already running on $PG_PORT"; return 0; fi
  mkdir -p "$PG_SOCKET_DIR"
  touch "$PG_LOG"
  if [[ $(id -u) -eq 0 ]]; then chown postgres "$PG_SOCKET_DIR" "$PG_LOG" "$DATA_DIR"; chmod o+x "$TRIBUTARY_RUN" "$TRIBUTARY_CACHE" "$HOME" 2>/dev/null || true; fi
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    log "initdb $PG_DATA"
    mkdir -p "$PG_DATA"
    [[ $(id -u) -eq 0 ]] && chown postgres "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >>"$PG_LOG" 2>&1
    cat >>"$PG_DATA/postgresql.conf" <<CONF
# tributary test instance: loopback only, logical decoding for CDC
listen_addresses = '$TRIBUTARY_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 200
fsync = on
shared_buffers = 256MB
logging_collector = off
CONF
    # Replication connections over loopback need their own pg_hba line.
    echo "host replication all 127.0.0.1/32 trust" >>"$PG_DATA/pg_hba.conf"
  fi
  log "starting postgres (log: $PG_LOG)"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null \
    || { tail -n 30 "$PG_LOG" >&2; die "postgres failed to start; see $PG_LOG"; }
  wait_until postgres 60 ready
  log "postgres ready on $TRIBUTARY_HOST:$PG_PORT"
}

stop() {
  if [[ -f "$PG_DATA/postmaster.pid" ]]; then
    log "stopping postgres"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null || true
  fi
}

status() { if ready; then echo "postgres: running on $TRIBUTARY_HOST:$PG_PORT"; else echo "postgres: stopped"; fi; }

dispatch postgres.sh "$@"
