#!/usr/bin/env bash
# The main job (`make demo`): brings up the local infrastructure, installs
# Tributary with Helm on the local control plane, runs the pods of kwok's
# fake node as real processes (the e2e kubelet harness), applies the ratings
# pipeline (deploy/examples/ratings-pipeline.yaml: a generator, an OpenSearch
# sink, and two Streams — alerts for ratings below 3 and per-region counts per
# minute) and shows data flowing, a few alerts and `kubectl get tributary`
# with lag. Idempotent; `make demo-down` stops it.
#
#   bash scripts/demo.sh up | down
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/infra/lib.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TRIBUTARY_CACHE/cargo-target}"
export KUBECONFIG="$TRIBUTARY_RUN/kubeconfig"
export PATH="$TRIBUTARY_BIN:$PATH"
SYSTEM_NS=tributary-system
DEMO_NS=ratings
KUBELET_PID="$PID_DIR/demo-kubelet.pid"
OPENSEARCH=http://127.0.0.1:19200
INDEX=demo.ratings
ALERTS=demo.rating-alerts
COUNTS=demo.ratings-per-region

step() { printf '\n=== %s\n' "$*"; }

# Prints up to <count> committed records of <topic> from its beginning,
# waiting at most <timeout ms> (default 30 s) for them.
consume() {
  local topic=$1 count=$2 timeout=${3:-30000}
  "$(bash scripts/infra/kafka.sh home)/kafka-run-class" org.apache.kafka.tools.consumer.ConsoleConsumer \
    --bootstrap-server "$TRIBUTARY_HOST:$KAFKA_PORT" --topic "$topic" --from-beginning --isolation-level read_committed \
    --max-messages "$count" --timeout-ms "$timeout" 2>/dev/null | sed 's/^/  /' || true
}

kubelet_running() { [[ -f $KUBELET_PID ]] && kill -0 "$(cat "$KUBELET_PID")" 2>/dev/null; }

up() {
  step "local infrastructure: Kafka, OpenSearch, Kubernetes control plane, Helm"
  make --no-print-directory prereqs infra-kafka infra-opensearch infra-k8s infra-helm

  step "building tributary-operator, tributary-worker and the kubelet harness"
  cargo build -q -p tributary-operator -p tributary-worker -p tributary-e2e --bin tributary-kubelet

  step "helm upgrade --install tributary charts/tributary -n $SYSTEM_NS"
  # Helm installs CRDs on the first install only; apply them so an upgrade gets the current ones.
  kubectl apply --server-side --force-conflicts -f charts/tributary/crds/ >/dev/null
  helm upgrade --install tributary charts/tributary --namespace "$SYSTEM_NS" --create-namespace
  kubectl create namespace "$DEMO_NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

  step "running the pods of kwok-node-0 as processes (log: $LOG_DIR/demo-kubelet.log)"
  if ! kubelet_running; then
    nohup "$CARGO_TARGET_DIR/debug/tributary-kubelet" --namespace "$SYSTEM_NS" --namespace "$DEMO_NS" \
      >"$LOG_DIR/demo-kubelet.log" 2>&1 &
    echo $! >"$KUBELET_PID"
  fi
  kubectl rollout status deployment/tributary-operator -n "$SYSTEM_NS" --timeout=180s

  step "kubectl apply -n $DEMO_NS -f deploy/examples/ratings-pipeline.yaml"
  kubectl apply -n "$DEMO_NS" -f deploy/examples/ratings-pipeline.yaml
  kubectl wait -n "$DEMO_NS" --for=condition=Ready topic,connector,stream --all --timeout=300s

  step "documents arriving in OpenSearch index $INDEX"
  local count=0
  for _ in $(seq 60); do
    count=$(curl -fsS "$OPENSEARCH/$INDEX/_count" 2>/dev/null | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
    [[ ${count:-0} -gt 0 ]] && break
    sleep 2
  done
  [[ ${count:-0} -gt 0 ]] || die "no documents reached $INDEX; see $LOG_DIR/demo-kubelet.log and kubectl get tributary -n $DEMO_NS -o yaml"
  sleep 20 # one more status round, so the LAG column and throughput are fresh
  curl -fsS -XPOST "$OPENSEARCH/$INDEX/_refresh" >/dev/null
  echo "$(curl -fsS "$OPENSEARCH/$INDEX/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p') documents in $INDEX; one of them:"
  curl -fsS "$OPENSEARCH/$INDEX/_search?size=1" | sed -n 's/.*"_source":\({[^}]*}\).*/  \1/p'

  step "a few alerts (ratings below 3) from the Stream rating-alerts, topic $ALERTS"
  consume "$ALERTS" 3

  step "ratings per region per minute from the Stream ratings-per-region, topic $COUNTS"
  echo "(a minute's row is written once the minute is over, plus 10 s grace)"
  consume "$COUNTS" 6 90000

  step "kubectl get tributary -n $DEMO_NS"
  kubectl get tributary -n "$DEMO_NS"
  echo
  kubectl get connector ratings-search -n "$DEMO_NS" \
    -o jsonpath='ratings-search: {.status.recordsPerSecond} records/s, lag {.status.lag.summary}, {.status.replicas}/{.status.desiredReplicas} workers{"\n"}'
  cat <<EOT

The pipeline keeps running. Try:
  export KUBECONFIG=$KUBECONFIG PATH=$TRIBUTARY_BIN:\$PATH
  kubectl get tributary -n $DEMO_NS -w
  kubectl patch connector ratings-generator -n $DEMO_NS --type merge -p '{"spec":{"state":"Stopped"}}'   # lag drains to 0
  kubectl patch stream rating-alerts -n $DEMO_NS --type merge -p '{"spec":{"state":"Paused"}}'   # no alerts until Running
Stop everything the demo started: make demo-down
EOT
}

down() {
  if kubelet_running; then
    kubectl delete namespace "$DEMO_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    helm uninstall tributary --namespace "$SYSTEM_NS" >/dev/null 2>&1 || true
    kill "$(cat "$KUBELET_PID")" 2>/dev/null || true
    rm -f "$KUBELET_PID"
    log "demo stopped (the local services keep running: make infra-down stops them)"
  else
    helm uninstall tributary --namespace "$SYSTEM_NS" >/dev/null 2>&1 || true
    kubectl delete namespace "$DEMO_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    log "demo was not running"
  fi
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down" ;;
esac
