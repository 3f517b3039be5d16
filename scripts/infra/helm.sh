#!/usr/bin/env bash
# Helm v3, built from the Go module proxy into $TRIBUTARY_BIN (no release
# downloads on these machines). Built once, reused by every clone.
# Usage: helm.sh install
source "$(dirname "$0")/lib.sh"

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
HELM_VERSION=v3.19.5
# Kubernetes version 'helm template'/'lint' assume without a cluster. Helm's
# release builds derive it from their client-go (v0.34 -> 1.34); a plain
# 'go install' would leave the source default of 1.20.
HELM_KUBE_MAJOR=1
HELM_KUBE_MINOR=34

installed() {
  [[ -x "$TRIBUTARY_BIN/helm" ]] &&
    [[ "$("$TRIBUTARY_BIN/helm" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]
}

install_locked() {
  installed && return 0
  command -v go >/dev/null || die "go is required to build helm"
  log "building helm $HELM_VERSION (first time only; a few minutes)"
  local started=$SECONDS ldflags="-s -w"
  # 'go install' does not stamp Helm's version: without this, 'helm version'
  # reports the source default "v3.19" instead of the release.
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  local pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=$HELM_KUBE_MAJOR -X $pkg.k8sVersionMinor=$HELM_KUBE_MINOR"
  done
  # 'go install pkg@version' ignores any local module; lib.sh's -mod must go.
  GOFLAGS='' CGO_ENABLED=0 GOBIN="$TRIBUTARY_BIN" \
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  installed || die "helm $HELM_VERSION built but '$TRIBUTARY_BIN/helm version' disagrees"
  log "helm built in $((SECONDS - started))s"
}

# Parallel callers build once; the rest wait for the lock.
install() { with_lock helm bash "$SELF" __install_locked; }

case "${1:-}" in
  install) install ;;
  __install_locked) install_locked ;;
  *) die "usage: helm.sh install" ;;
esac
