#!/usr/bin/env bash
# Apache Kafka 3.9 in KRaft mode (one combined broker+controller) from Maven
# Central jars. Data survives stop/start so fault tests can restart the broker.
# Usage: kafka.sh install|start|stop|status|reset
source "$(dirname "$0")/lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
KAFKA_VERSION=3.9.2
# Keyed by the pom and this script, so a change to either lays out a new home.
KAFKA_HOME="$TRIBUTARY_CACHE/kafka-$KAFKA_VERSION-$(cat "$HERE/kafka/pom.xml" "$HERE/kafka.sh" | sha256sum | cut -c1-12)"
KAFKA_DATA="$DATA_DIR/kafka"
KAFKA_CONF="$TRIBUTARY_RUN/kafka.properties"

install() { with_lock kafka bash "$HERE/kafka.sh" _install; }

_install() {
  [[ -f "$KAFKA_HOME/.complete" ]] && return 0
  log "resolving Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_HOME"
  rm -rf "$KAFKA_HOME"
  mvn -q -B -f "$HERE/kafka/pom.xml" -Dmaven.repo.local="$MAVEN_REPO" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs" \
    || die "could not resolve Kafka jars (Maven Central)"
  mkdir -p "$KAFKA_HOME/config"
  cat >"$KAFKA_HOME/config/log4j.properties" <<'L4J'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
L4J
  # Command-line tools print their results on stdout: keep their logs on stderr.
  cat >"$KAFKA_HOME/config/tools-log4j.properties" <<'L4J'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
L4J
  # kafka-run-class CLASS ARGS...: Kafka's tools (kafka.admin.ConfigCommand,
  # org.apache.kafka.tools.TopicCommand, ...ProducerPerformance) on the same jars.
  cat >"$KAFKA_HOME/kafka-run-class" <<RUN
#!/usr/bin/env bash
exec java \${KAFKA_HEAP_OPTS:--Xmx256m} -Dlog4j.configuration=file:\${KAFKA_LOG4J_CONFIG:-$KAFKA_HOME/config/tools-log4j.properties} \\
  -cp "$KAFKA_HOME/libs/*" "\$@"
RUN
  chmod +x "$KAFKA_HOME/kafka-run-class"
  touch "$KAFKA_HOME/.complete"
}

write_config() {
  cat >"$KAFKA_CONF" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$TRIBUTARY_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$TRIBUTARY_HOST:$KAFKA_PORT,CONTROLLER://$TRIBUTARY_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$TRIBUTARY_HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
min.insync.replicas=1
# Tests create and delete many consumer groups: no join delay.
group.initial.rebalance.delay.ms=0
# Topics come from Topic resources or explicit test setup, never by accident.
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=24
CONF
}

# Polling with a JVM tool costs seconds per try on two cores; the broker's own
# "started" line (after this start's offset in the log) plus the open port is enough.
LOG_START_LINE=0
ready() {
  port_open "$KAFKA_PORT" &&
    tail -n "+$((LOG_START_LINE + 1))" "$LOG_DIR/kafka.log" | grep -q 'Kafka Server started'
}

start() {
  install
  if pid_alive kafka; then log "kafka already running on $KAFKA_PORT"; return 0; fi
  write_config
  if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
    mkdir -p "$KAFKA_DATA"
    local cluster_id
    cluster_id="$("$KAFKA_HOME/kafka-run-class" kafka.tools.StorageTool random-uuid)"
    log "formatting KRaft storage (cluster id $cluster_id)"
    "$KAFKA_HOME/kafka-run-class" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONF" \
      >>"$LOG_DIR/kafka.log" 2>&1 || die "kafka storage format failed; see $LOG_DIR/kafka.log"
  fi
  LOG_START_LINE="$(wc -l <"$LOG_DIR/kafka.log" 2>/dev/null || echo 0)"
  KAFKA_LOG4J_CONFIG="$KAFKA_HOME/config/log4j.properties" KAFKA_HEAP_OPTS="-Xms512m -Xmx1g" start_daemon kafka "$KAFKA_HOME/kafka-run-class" kafka.Kafka "$KAFKA_CONF"
  wait_until kafka 90 ready
  log "kafka ready on $TRIBUTARY_HOST:$KAFKA_PORT"
}

stop() { stop_daemon kafka 60; }

# reset: stop and wipe the data directory (a fresh cluster on next start).
reset() { stop; rm -rf "$KAFKA_DATA"; }

status() { if pid_alive kafka; then echo "kafka: running on $TRIBUTARY_HOST:$KAFKA_PORT ($KAFKA_HOME)"; else echo "kafka: stopped"; fi; }

case "${1:-}" in
  _install) _install ;;
  reset) reset ;;
  home) echo "$KAFKA_HOME" ;;
  *) dispatch kafka.sh "$@" ;;
esac
