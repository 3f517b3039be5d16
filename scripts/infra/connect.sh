#!/usr/bin/env bash
# Kafka Connect (standalone worker) with the Debezium Postgres connector, from
# Maven Central jars: the peer our CDC output is compared with
# (worker/tests/debezium_compat.rs) and benchmarked against (make bench-cdc).
#
# A tool, not a service: each user starts its own worker with its own
# properties, so `install` only lays out the jars and writes
# $TRIBUTARY_BIN/connect-standalone, which runs
#   org.apache.kafka.connect.cli.ConnectStandalone WORKER.properties CONNECTOR.properties...
# on them with a bounded heap (CONNECT_HEAP_OPTS, default -Xmx512m) and log4j2
# logging to stdout (CONNECT_LOG_LEVEL, default INFO).
#
# Everything (connect-runtime, connect-json, Debezium, the Postgres JDBC driver)
# is on one class path: no plugin.path isolation is needed for one connector.
# Usage: connect.sh install|status|home
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
CONNECT_SRC="$HERE/connect"
DEBEZIUM_VERSION="$(sed -n 's:.*<debezium.version>\(.*\)</debezium.version>.*:\1:p' "$CONNECT_SRC/pom.xml")"
CONNECT_KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$CONNECT_SRC/pom.xml")"
# Keyed by the pom and this script, so a change to either lays out a new home.
CONNECT_KEY="$(cat "$CONNECT_SRC/pom.xml" "$HERE/connect.sh" | sha256sum | cut -c1-12)"
CONNECT_HOME="$TRIBUTARY_CACHE/connect-$CONNECT_KAFKA_VERSION-debezium-$DEBEZIUM_VERSION-$CONNECT_KEY"
WRAPPER="$TRIBUTARY_BIN/connect-standalone"

install() { with_lock connect bash "$HERE/connect.sh" _install; }

_install() {
  if [[ ! -f "$CONNECT_HOME/.complete" ]]; then
    log "resolving Kafka Connect $CONNECT_KAFKA_VERSION + Debezium $DEBEZIUM_VERSION jars from Maven Central into $CONNECT_HOME"
    rm -rf "$CONNECT_HOME"
    mvn -q -B -f "$CONNECT_SRC/pom.xml" -Dmaven.repo.local="$MAVEN_REPO" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$CONNECT_HOME/libs" \
      || die "could not resolve Kafka Connect / Debezium jars (Maven Central)"
    compgen -G "$CONNECT_HOME/libs/debezium-connector-postgres-*.jar" >/dev/null \
      || die "Debezium's Postgres connector is missing from $CONNECT_HOME/libs"
    mkdir -p "$CONNECT_HOME/config"
    cat >"$CONNECT_HOME/config/log4j2.properties" <<'L4J'
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${env:CONNECT_LOG_LEVEL:-INFO}
rootLogger.appenderRef.stdout.ref = STDOUT
# The REST server and the reflections scan are noisy and say nothing useful here.
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
logger.jetty.name = org.eclipse.jetty
logger.jetty.level = WARN
L4J
    touch "$CONNECT_HOME/.complete"
  fi
  # The wrapper names this home; rewritten when another home was current.
  local wrapper
  wrapper="$(cat <<RUN
#!/usr/bin/env bash
# Written by scripts/infra/connect.sh: Kafka Connect $CONNECT_KAFKA_VERSION standalone + Debezium $DEBEZIUM_VERSION.
exec java \${CONNECT_HEAP_OPTS:--Xmx512m} -Dlog4j2.configurationFile="$CONNECT_HOME/config/log4j2.properties" \\
  -cp "$CONNECT_HOME/libs/*" org.apache.kafka.connect.cli.ConnectStandalone "\$@"
RUN
)"
  if [[ ! -x "$WRAPPER" || "$(cat "$WRAPPER")" != "$wrapper" ]]; then
    printf '%s\n' "$wrapper" >"$WRAPPER.tmp" && chmod +x "$WRAPPER.tmp" && mv "$WRAPPER.tmp" "$WRAPPER"
    log "wrote $WRAPPER"
  fi
}

status() {
  if [[ -f "$CONNECT_HOME/.complete" && -x "$WRAPPER" ]]; then
    echo "connect: installed ($WRAPPER; Kafka Connect $CONNECT_KAFKA_VERSION, Debezium $DEBEZIUM_VERSION)"
  else
    echo "connect: not installed"
  fi
}

case "${1:-}" in
  install|start) install ;;
  stop) ;;
  _install) _install ;;
  status) status ;;
  home) echo "$CONNECT_HOME" ;;
  *) die "usage: connect.sh install|status|home" ;;
esac
