#!/usr/bin/env bash
# A real Kubernetes control plane without containers: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler as local processes, plus kwok,
# which plays the kubelet for one fake Node so scheduled pods become Running.
# Everything listens on loopback only.
# Usage: k8s.sh install|start|stop|status
#
# Versions are pinned by the wrapper modules in scripts/infra/go/{etcd,k8s}
# (their go.mod files are the single source of truth) and by KWOK_VERSION.
# Binaries are built once into $TRIBUTARY_BIN and reused by every clone.
source "$(dirname "$0")/lib.sh"

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
GO_DIR="$(dirname "$SELF")/go"
KWOK_VERSION=v0.7.0

# Pinned module versions, read from the committed wrapper go.mod files.
mod_version() { # mod_version GO_MOD MODULE
  awk -v m="$2" '$0 !~ /=>/ { for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v/) { print $(i + 1); exit } }' "$1"
}
ETCD_VERSION="$(mod_version "$GO_DIR/etcd/go.mod" go.etcd.io/etcd/server/v3)"
K8S_VERSION="$(mod_version "$GO_DIR/k8s/go.mod" k8s.io/kubernetes)"
[[ -n "$ETCD_VERSION" && -n "$K8S_VERSION" ]] || die "cannot read pinned versions from $GO_DIR/*/go.mod"

# Non-default loopback ports for the components' own secure (health) ports,
# so they never collide with a developer's real cluster (10257/10259).
KCM_PORT="${TRIBUTARY_KCM_PORT:-12257}"
SCHEDULER_PORT="${TRIBUTARY_SCHEDULER_PORT:-12259}"
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.1/16 # kwok hands out pod IPs from here
NODE_NAME=kwok-node-0

K8S_DIR="$DATA_DIR/k8s"
PKI="$K8S_DIR/pki"
ETCD_DATA="$DATA_DIR/etcd"
APISERVER_URL="https://$TRIBUTARY_HOST:$APISERVER_PORT"
# Control-plane daemons in start order; stop walks it backwards.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# ---------------------------------------------------------------- install ---

# has_version BIN PATTERN: $TRIBUTARY_BIN/BIN exists and its version output matches.
has_version() {
  [[ -x "$TRIBUTARY_BIN/$1" ]] || return 1
  local out
  case "$1" in
    kubectl) out="$("$TRIBUTARY_BIN/kubectl" version --client 2>/dev/null)" ;;
    *) out="$("$TRIBUTARY_BIN/$1" --version 2>/dev/null)" ;;
  esac
  grep -qF -- "$2" <<<"$out"
}

# Builds read the committed go.mod/go.sum and must never rewrite them.
go_build_env() {
  export GOFLAGS=-mod=readonly CGO_ENABLED=0
}

build_etcd() {
  has_version etcd "etcd Version: ${ETCD_VERSION#v}" && return 0
  log "building etcd $ETCD_VERSION (first time only; ~2 min)"
  local started=$SECONDS out="$TRIBUTARY_CACHE/build/etcd"
  mkdir -p "$out"
  (cd "$GO_DIR/etcd" && go_build_env &&
    go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" -o "$out/etcd" .)
  mv -f "$out/etcd" "$TRIBUTARY_BIN/etcd"
  log "etcd built in $((SECONDS - started))s"
}

build_k8s() {
  local b stale=0
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    has_version "$b" "Kubernetes $K8S_VERSION" || stale=1
  done
  has_version kubectl "Client Version: $K8S_VERSION" || stale=1
  ((stale)) || return 0
  log "building Kubernetes $K8S_VERSION (first time only; 10-30 min on 2 cores)"
  local started=$SECONDS out="$TRIBUTARY_CACHE/build/k8s" minor major ldflags pkg build_date
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  # The release time recorded by the module proxy: a reproducible build date.
  build_date="$(cd "$GO_DIR/k8s" && GOFLAGS=-mod=readonly go list -m \
    -f '{{with .Time}}{{.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
  # Without these the binaries report v0.0.0-master, which breaks version
  # checks in kubectl, Helm (kubeVersion) and client libraries.
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}"
  done
  mkdir -p "$out"
  (cd "$GO_DIR/k8s" && go_build_env &&
    go build -trimpath -ldflags "$ldflags" -o "$out/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    mv -f "$out/$b" "$TRIBUTARY_BIN/$b"
  done
  log "Kubernetes built in $((SECONDS - started))s"
}

build_kwok() {
  has_version kwok "version $KWOK_VERSION " && return 0
  log "building kwok $KWOK_VERSION"
  local started=$SECONDS
  # 'go install pkg@version' ignores the clone's modules; -mod must be unset.
  GOFLAGS='' CGO_ENABLED=0 GOBIN="$TRIBUTARY_BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  log "kwok built in $((SECONDS - started))s"
}

install_locked() {
  command -v go >/dev/null || die "go is required to build the control plane"
  apt_install openssl curl
  build_etcd
  build_k8s
  build_kwok
}

# Parallel callers (CI steps, several clones) build once; the rest wait.
install() { with_lock k8s bash "$SELF" __install_locked; }

# ------------------------------------------------------------------ start ---

# gen_pki: CA, apiserver serving cert, admin client cert, service-account key
# pair, and the front-proxy (request-header) CA and client cert. Generated once
# and kept, so kubeconfigs handed out stay valid.
PKI_FILES=(ca.crt ca.key apiserver.crt apiserver.key admin.crt admin.key sa.key sa.pub
  front-proxy-ca.crt front-proxy-client.crt front-proxy-client.key)
pki_complete() {
  local f
  for f in "${PKI_FILES[@]}"; do [[ -f "$PKI/$f" ]] || return 1; done
}
gen_pki() {
  log "generating certificates in $PKI"
  local tmp="$PKI.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (
    cd "$tmp"
    # new_ca NAME CN: self-signed CA certificate and key.
    new_ca() {
      openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.crt" -days 3650 -sha256 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    }
    # sign NAME SUBJECT EXTENSIONS [CA]: key + certificate signed by CA (default ca).
    sign() {
      local ca="${4:-ca}"
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
      openssl x509 -req -in "$1.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial -out "$1.crt" -days 3650 \
        -sha256 -extfile <(printf '%s\n' "$3")
      rm -f "$1.csr"
    }
    new_ca ca tributary-k8s-ca
    # 10.96.0.1 is the in-cluster "kubernetes" service IP (first of SERVICE_CIDR).
    sign apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
      "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")"
    # O=system:masters: full cluster-admin without any RBAC objects.
    sign admin "/O=system:masters/CN=tributary-admin" "$(printf '%s\n' \
      "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth")"
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    # Request-header authentication: without it controller-manager and scheduler
    # log errors about the missing requestheader CA forever, and aggregated API
    # servers could not be used.
    new_ca front-proxy-ca tributary-k8s-front-proxy-ca
    sign front-proxy-client "/CN=front-proxy-client" "$(printf '%s\n' \
      "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth")" \
      front-proxy-ca
  ) >>"$LOG_DIR/k8s-pki.log" 2>&1 || die "certificate generation failed; see $LOG_DIR/k8s-pki.log"
  chmod 600 "$tmp"/*.key
  rm -rf "$PKI" && mv "$tmp" "$PKI"
}

write_kubeconfig() {
  local tmp="$KUBECONFIG_PATH.tmp"
  cat >"$tmp" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: tributary
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: tributary-admin
  user:
    client-certificate-data: $(base64 -w0 "$PKI/admin.crt")
    client-key-data: $(base64 -w0 "$PKI/admin.key")
contexts:
- name: tributary
  context:
    cluster: tributary
    user: tributary-admin
    namespace: default
current-context: tributary
KUBECONFIG
  chmod 600 "$tmp"
  mv "$tmp" "$KUBECONFIG_PATH"
}

kubectl() { "$TRIBUTARY_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

etcd_ready() { http_ok "http://$TRIBUTARY_HOST:$ETCD_PORT/health"; }
apiserver_ready() {
  curl -fsS -o /dev/null --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$APISERVER_URL/readyz"
}
# /healthz is served without authentication by both components.
secure_healthz() { curl -fsSk -o /dev/null --max-time 2 "https://$TRIBUTARY_HOST:$1/healthz"; }
node_ready() {
  [[ "$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
default_sa_exists() { kubectl -n default get serviceaccount default; }

# free_port NAME PORT: refuse to start when a foreign process holds the port.
free_port() {
  port_open "$2" && die "port $2 needed by $1 is already in use by another process"
  return 0
}

start_etcd() {
  # A fresh, empty cluster on every cold start: tests get a clean API, and no
  # migration between versions is ever needed. The data stays on disk after
  # stop for post-mortems and is wiped here.
  free_port etcd "$ETCD_PORT"; free_port etcd "$ETCD_PEER_PORT"
  rm -rf "$ETCD_DATA"
  mkdir -p "$ETCD_DATA"
  local peer="http://$TRIBUTARY_HOST:$ETCD_PEER_PORT" client="http://$TRIBUTARY_HOST:$ETCD_PORT"
  # --unsafe-no-fsync: throwaway data, and fsync latency dominates on CI disks.
  start_daemon etcd "$TRIBUTARY_BIN/etcd" --name tributary --data-dir "$ETCD_DATA" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "tributary=$peer" --initial-cluster-state new \
    --unsafe-no-fsync --log-level warn
  wait_until etcd 60 etcd_ready
}

start_apiserver() {
  free_port kube-apiserver "$APISERVER_PORT"
  # --endpoint-reconciler-type=none: the "kubernetes" Endpoints object may not
  # hold a loopback address, and nothing in-cluster needs to reach the API.
  start_daemon kube-apiserver "$TRIBUTARY_BIN/kube-apiserver" \
    --bind-address="$TRIBUTARY_HOST" --advertise-address="$TRIBUTARY_HOST" --secure-port="$APISERVER_PORT" \
    --etcd-servers="http://$TRIBUTARY_HOST:$ETCD_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=RBAC \
    --allow-privileged=true \
    --endpoint-reconciler-type=none \
    --profiling=false
  wait_until kube-apiserver 120 apiserver_ready
}

start_controller_manager() {
  free_port kube-controller-manager "$KCM_PORT"
  start_daemon kube-controller-manager "$TRIBUTARY_BIN/kube-controller-manager" \
    --kubeconfig="$KUBECONFIG_PATH" \
    --authentication-kubeconfig="$KUBECONFIG_PATH" --authorization-kubeconfig="$KUBECONFIG_PATH" \
    --bind-address="$TRIBUTARY_HOST" --secure-port="$KCM_PORT" \
    --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --use-service-account-credentials=false \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --profiling=false
  wait_until kube-controller-manager 60 secure_healthz "$KCM_PORT"
}

start_scheduler() {
  free_port kube-scheduler "$SCHEDULER_PORT"
  start_daemon kube-scheduler "$TRIBUTARY_BIN/kube-scheduler" \
    --kubeconfig="$KUBECONFIG_PATH" \
    --authentication-kubeconfig="$KUBECONFIG_PATH" --authorization-kubeconfig="$KUBECONFIG_PATH" \
    --bind-address="$TRIBUTARY_HOST" --secure-port="$SCHEDULER_PORT" \
    --leader-elect=false \
    --profiling=false
  wait_until kube-scheduler 60 secure_healthz "$SCHEDULER_PORT"
}

start_kwok() {
  mkdir -p "$K8S_DIR/kwok"
  # KWOK_WORKDIR keeps kwok away from ~/.kwok (whose kwok.yaml it would load).
  # No --server-address/--node-port: kwok then serves nothing (no port).
  # Stages: kwok's built-in "fast" node and pod stages, pinned by KWOK_VERSION
  # (nodes become Ready, scheduled pods Running, deleted pods go away).
  start_daemon kwok env KWOK_WORKDIR="$K8S_DIR/kwok" "$TRIBUTARY_BIN/kwok" \
    --kubeconfig="$KUBECONFIG_PATH" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 \
    --cidr="$POD_CIDR" --node-ip="$TRIBUTARY_HOST"
}

# The fake node has no taint: it is the cluster's only node, so every pod the
# operator creates should land there without kwok-specific tolerations.
create_node() {
  kubectl apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: fake
    kubeProxyVersion: fake
NODE
}

start_locked() {
  install_locked
  mkdir -p "$K8S_DIR"
  # New certificates invalidate whatever runs with the old ones.
  if ! pki_complete; then
    stop
    gen_pki
  fi
  write_kubeconfig
  # etcd gone means the cluster state is gone: restart everything on a fresh one.
  if ! pid_alive etcd; then
    local i
    for ((i = ${#COMPONENTS[@]} - 1; i > 0; i--)); do stop_daemon "${COMPONENTS[i]}"; done
    start_etcd
  fi
  pid_alive kube-apiserver || start_apiserver
  pid_alive kube-controller-manager || start_controller_manager
  pid_alive kube-scheduler || start_scheduler
  pid_alive kwok || start_kwok
  wait_until kube-apiserver 60 apiserver_ready
  wait_until kwok 60 create_node
  wait_until kwok 90 node_ready
  # Pods are rejected until the controller-manager created the default ServiceAccount.
  wait_until kube-controller-manager 90 default_sa_exists
  log "Kubernetes $K8S_VERSION ready at $APISERVER_URL (kubeconfig: $KUBECONFIG_PATH)"
}

# Same lock as install, but taken with flock -o: with_lock's flock would leave
# the lock's file descriptor open in every daemon started under it, so the
# lock would stay held until the control plane stops and the next start
# would hang.
start() {
  mkdir -p "$TRIBUTARY_CACHE/locks"
  flock -o "$TRIBUTARY_CACHE/locks/k8s.lock" bash "$SELF" __start_locked
}

# ------------------------------------------------------------------- stop ---

stop() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_daemon "${COMPONENTS[i]}"; done
}

# Printed with a single write: callers pipe this into 'grep -q' under pipefail,
# and line-by-line output would die of SIGPIPE once grep has its match.
status() {
  local c out=""
  for c in "${COMPONENTS[@]}"; do
    if pid_alive "$c"; then out+="$c: running (pid $(cat "$PID_DIR/$c.pid"))"$'\n'; else out+="$c: stopped"$'\n'; fi
  done
  if pid_alive kube-apiserver && apiserver_ready; then
    out+="kube-apiserver: ready at $APISERVER_URL, kubeconfig $KUBECONFIG_PATH"$'\n'
    out+="$(kubectl get nodes --no-headers 2>/dev/null | sed 's/^/node: /' || true)"$'\n'
  fi
  printf '%s' "$out"
}

case "${1:-}" in
  install | start | stop | status) "$1" ;;
  __install_locked) install_locked ;;
  __start_locked) start_locked ;;
  *) die "usage: k8s.sh install|start|stop|status" ;;
esac
