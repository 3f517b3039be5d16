#!/usr/bin/env bash
# Single-node OpenSearch 2.x (the Elasticsearch-compatible sink target) assembled
# from Maven Central jars: scripts/infra/opensearch/ is a tiny Maven project whose
# main class starts an org.opensearch.node.Node with the netty4 HTTP/transport
# module as a classpath plugin. Plain HTTP, no security plugin, loopback only.
# Data survives stop/start.
# Usage: opensearch.sh install|start|stop|status
source "$(dirname "$0")/lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
OS_SRC="$HERE/opensearch"
OS_VERSION="$(sed -n 's:.*<opensearch.version>\(.*\)</opensearch.version>.*:\1:p' "$OS_SRC/pom.xml")"
# Keyed by the project's content, so editing the pom or the main class rebuilds.
OS_KEY="$(content_key "$OS_SRC")"
OS_HOME="$TRIBUTARY_CACHE/opensearch-$OS_VERSION-$OS_KEY"
OS_DATA="$DATA_DIR/opensearch"
OS_URL="http://$TRIBUTARY_HOST:$OPENSEARCH_PORT"

install() { with_lock opensearch bash "$HERE/opensearch.sh" _install; }

_install() {
  [[ -f "$OS_HOME/.complete" ]] && return 0
  log "building OpenSearch $OS_VERSION node from Maven Central jars into $OS_HOME"
  rm -rf "$OS_HOME"
  mvn -q -B -f "$OS_SRC/pom.xml" -Dmaven.repo.local="$MAVEN_REPO" -Dopensearch.build.dir="$OS_HOME/build" \
    package dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$OS_HOME/lib" \
    || die "could not build the OpenSearch node (Maven Central)"
  cp "$OS_HOME"/build/opensearch-node-*.jar "$OS_HOME/lib/"
  touch "$OS_HOME/.complete"
}

ready() { curl -fsS -o /dev/null --max-time 5 "$OS_URL/_cluster/health?wait_for_status=yellow&timeout=4s"; }

start() {
  install
  if pid_alive opensearch; then log "opensearch already running on $OPENSEARCH_PORT"; return 0; fi
  port_open "$OPENSEARCH_PORT" && die "port $OPENSEARCH_PORT is taken by another process (not ours: no live pid file)"
  mkdir -p "$OS_DATA/home" "$OS_DATA/data" "$OS_DATA/logs"
  # Heap pinned (the JVM would otherwise take a quarter of RAM). The -D flags are the
  # ones from OpenSearch's own jvm.options that matter outside its launcher.
  start_daemon opensearch java -Xms512m -Xmx512m -XX:+UseG1GC \
    -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djava.locale.providers=SPI,COMPAT \
    -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
    -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true \
    -Djava.io.tmpdir="$OS_DATA/home" \
    -cp "$OS_HOME/lib/*" dev.tributary.infra.opensearch.TributaryOpenSearch \
    "path.home=$OS_DATA/home" "path.data=$OS_DATA/data" "path.logs=$OS_DATA/logs" \
    "network.host=$TRIBUTARY_HOST" "http.port=$OPENSEARCH_PORT" "transport.port=$OPENSEARCH_TRANSPORT_PORT"
  wait_until opensearch 120 ready
  # One node holds no replicas: new indices default to none so they turn green. The
  # index creation path reads this from the cluster state, not from node settings.
  curl -fsS -o /dev/null --max-time 30 -X PUT "$OS_URL/_cluster/settings" -H 'content-type: application/json' \
    -d '{"persistent":{"cluster.default_number_of_replicas":0}}' \
    || die "opensearch: could not apply cluster settings; see $LOG_DIR/opensearch.log"
  log "opensearch ready on $OS_URL"
}

stop() { stop_daemon opensearch 60; }

status() { if pid_alive opensearch; then echo "opensearch: running on $OS_URL ($OS_HOME)"; else echo "opensearch: stopped"; fi; }

case "${1:-}" in
  _install) _install ;;
  *) dispatch opensearch.sh "$@" ;;
esac
