#!/usr/bin/env bash
# Entry point for the local test infrastructure; `make infra-*` calls this.
# Usage: infra.sh up|down|status|install [SERVICE...]
#        infra.sh running            (prints the services running now)
# Services, in start order: postgres kafka registry opensearch k8s helm connect
# (helm and connect are tools: "up" installs them, there is nothing to stop)
source "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"
ALL=(postgres kafka registry opensearch k8s helm connect)

cmd="${1:-}"; shift || true
services=("$@"); (( ${#services[@]} )) || services=("${ALL[@]}")
for s in "${services[@]}"; do
  [[ " ${ALL[*]} " == *" $s "* ]] || die "unknown service '$s'; known: ${ALL[*]}"
done

# helm is a tool, not a daemon: "up" installs it and there is nothing to stop.
run() {
  local service="$1" action="$2"
  if [[ "$service" == helm ]]; then
    case "$action" in
      start|install) bash "$HERE/helm.sh" install ;;
      status) [[ -x "$TRIBUTARY_BIN/helm" ]] && echo "helm: $("$TRIBUTARY_BIN/helm" version --short)" || echo "helm: not installed" ;;
      stop) ;;
    esac
    return
  fi
  bash "$HERE/$service.sh" "$action"
}

case "$cmd" in
  up)
    for s in "${services[@]}"; do run "$s" start; done
    log "up: ${services[*]} (logs in $LOG_DIR, endpoints in $TRIBUTARY_RUN/env.sh)" ;;
  install)
    for s in "${services[@]}"; do run "$s" install; done ;;
  down)
    for (( i=${#services[@]}-1; i>=0; i-- )); do run "${services[$i]}" stop; done ;;
  status)
    for s in "${services[@]}"; do run "$s" status; done ;;
  running)
    for s in "${services[@]}"; do
      [[ "$s" == helm ]] && continue
      # Capture first: grep -q closing a pipe early would fail under pipefail.
      grep -q ': running' <<<"$(bash "$HERE/$s.sh" status 2>/dev/null)" && echo "$s"
    done
    true ;;
  *) die "usage: infra.sh up|down|status|install|running [SERVICE...]" ;;
esac
