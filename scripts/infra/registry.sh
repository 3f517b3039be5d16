#!/usr/bin/env bash
# A Confluent-compatible schema registry written by a third party, so that our
# client is tested against someone else's reading of the REST API, and one that
# enforces compatibility (409 on an incompatible registration).
#
# What it is: Apicurio Registry 2.4.2.Final (Red Hat, Apache-2.0), assembled from
# its released jars on Maven Central into a runnable Quarkus app by the Maven
# project in scripts/infra/registry/ (see its README.md for what the pom works
# around). Nothing of the registry is ours. Storage is Apicurio's production
# choice, PostgreSQL: the database $SR_DB in the local Postgres (postgres.sh),
# recreated at every start, so a restart empties the registry. (Its in-memory
# H2 store deadlocked when several subjects were registered at once.)
#
# Confluent-compatible API: http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7 (the
# URL in TRIBUTARY_REGISTRY_URL). Apicurio's own API is /apis/registry/v2.
# After start, the global compatibility is set to BACKWARD (Confluent's default).
#
# Known deviations from Confluent's registry (table in registry/README.md):
#   - incompatible registration: 409 as expected, but with "error_code": 0
#     (Confluent: 409); /compatibility answers also carry "reason": null
#   - soft delete of an already soft-deleted subject: 400, "error_code": 0
#     (Confluent: 404, 40404)
#   - reference to a missing subject/version: 404, 40402 (Confluent: 422, 42201)
#   - deleting a subject that another schema references is allowed (Confluent: 422)
#   - lookup (POST /subjects/{s}) ignores schemaType, still finds soft-deleted
#     versions, and its answer has no schemaType
#   - GET /config/{s}?defaultToGlobal=true answers NONE whatever the global level
#   - Apicurio's own global default compatibility is NONE (set to BACKWARD here)
#   - no /mode endpoint (404 "Operation not supported.")
# Usage: registry.sh install|start|stop|status
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
SR_SRC="$HERE/registry"
SR_VERSION="$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$SR_SRC/pom.xml")"
# Keyed by the project's content, so editing the pom or its sources rebuilds.
SR_KEY="$(content_key "$SR_SRC")"
SR_HOME="$TRIBUTARY_CACHE/apicurio-$SR_VERSION-$SR_KEY"
SR_JAR="$SR_HOME/build/apicurio-registry-runner-0.0.0-runner.jar"
SR_DATA="$DATA_DIR/registry"
SR_DB=tributary_registry
SR_URL="http://$TRIBUTARY_HOST:$REGISTRY_PORT/apis/ccompat/v7"

install() { with_lock registry bash "$HERE/registry.sh" _install; }

_install() {
  [[ -f "$SR_HOME/.complete" ]] && return 0
  log "building Apicurio Registry $SR_VERSION from Maven Central jars into $SR_HOME"
  rm -rf "$SR_HOME"
  # Quarkus "legacy-jar" packaging: build/<runner>.jar plus build/lib/.
  # db-kind is fixed at build time; the pom's application.properties says the
  # same, but Apicurio's own copy in its jar says h2, so the command line decides.
  mvn -B -q -f "$SR_SRC/pom.xml" -Dmaven.repo.local="$MAVEN_REPO" -Dapicurio.build.dir="$SR_HOME/build" \
    -Dquarkus.datasource.db-kind=postgresql -DskipTests package \
    || die "could not build Apicurio Registry (Maven Central)"
  [[ -f "$SR_JAR" ]] || die "Apicurio build produced no $SR_JAR"
  touch "$SR_HOME/.complete"
}

ready() { http_ok "$SR_URL/subjects"; }

start() {
  install
  if pid_alive registry; then log "registry already running on $REGISTRY_PORT"; return 0; fi
  port_open "$REGISTRY_PORT" && die "port $REGISTRY_PORT is taken by another process (not ours: no live pid file)"
  bash "$HERE/postgres.sh" start
  # A fresh registry at every start, as with Apicurio's in-memory store.
  PGOPTIONS="-c client_min_messages=warning" psql -q -h "$TRIBUTARY_HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $SR_DB WITH (FORCE)" -c "CREATE DATABASE $SR_DB" \
    || die "registry: could not create its database $SR_DB in postgres"
  # The data lives in Postgres; this only keeps the JVM's and Vert.x's scratch
  # files out of the caller's directory.
  rm -rf "$SR_DATA" && mkdir -p "$SR_DATA/tmp"
  cd "$SR_DATA" || die "cannot enter $SR_DATA"
  # Small heap, C1 only and a pool of 1 to 10 connections: starts in a few
  # seconds and stays near 230 MB RSS. (Apicurio's prod profile asks for 20-100.)
  start_daemon registry env REGISTRY_DATASOURCE_URL="jdbc:postgresql://$TRIBUTARY_HOST:$PG_PORT/$SR_DB" \
    REGISTRY_DATASOURCE_USERNAME=postgres REGISTRY_DATASOURCE_PASSWORD= \
    java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Djava.io.tmpdir="$SR_DATA/tmp" \
    -Dquarkus.http.host="$TRIBUTARY_HOST" -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.datasource.jdbc.min-size=1 -Dquarkus.datasource.jdbc.initial-size=1 \
    -Dquarkus.datasource.jdbc.max-size=10 \
    -jar "$SR_JAR"
  wait_until registry 120 ready
  curl -fsS -o /dev/null --max-time 10 -X PUT "$SR_URL/config" \
    -H 'Content-Type: application/vnd.schemaregistry.v1+json' -d '{"compatibility":"BACKWARD"}' \
    || die "registry: could not set the global compatibility to BACKWARD; see $LOG_DIR/registry.log"
  # The first registrations of a cold JVM take seconds each: register and
  # delete one schema so clients' first requests do not hit their timeouts.
  local ct='Content-Type: application/vnd.schemaregistry.v1+json'
  curl -fsS -o /dev/null --max-time 60 -X POST "$SR_URL/subjects/tributary-warmup/versions" -H "$ct" \
    -d '{"schema":"{\"type\":\"record\",\"name\":\"Warmup\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"}]}"}' \
    || die "registry: warm-up registration failed; see $LOG_DIR/registry.log"
  curl -fsS -o /dev/null --max-time 60 "$SR_URL/config/tributary-warmup" || true
  curl -fsS -o /dev/null --max-time 60 -X DELETE "$SR_URL/subjects/tributary-warmup" || true
  curl -fsS -o /dev/null --max-time 60 -X DELETE "$SR_URL/subjects/tributary-warmup?permanent=true" || true
  log "registry ready on $SR_URL (Apicurio $SR_VERSION, storage: postgres database $SR_DB, global compatibility BACKWARD)"
}

stop() { stop_daemon registry 30; }

status() { if pid_alive registry; then echo "registry: running on $SR_URL (Apicurio Registry $SR_VERSION)"; else echo "registry: stopped"; fi; }

case "${1:-}" in
  _install) _install ;;
  *) dispatch registry.sh "$@" ;;
esac
