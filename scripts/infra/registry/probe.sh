#!/usr/bin/env bash
# Manual check: does a Confluent-compatible schema registry enforce compatibility?
# Prints each request with the HTTP status and body it got. Against a registry
# that enforces it, the incompatible v2 gets {"is_compatible":false} and a 409
# (also under the global level alone, for the "g" subject), the compatible v2
# gets version 2. Subjects are suffixed per run and deleted permanently at the end.
# Usage: probe.sh [BASE_URL]   (default: $TRIBUTARY_REGISTRY_URL, else the local
#        registry of registry.sh, http://127.0.0.1:18081/apis/ccompat/v7)
set -u
B="${1:-${TRIBUTARY_REGISTRY_URL:-http://127.0.0.1:18081/apis/ccompat/v7}}"
RUN="probe-$$-$RANDOM"
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
CT='Content-Type: application/vnd.schemaregistry.v1+json'
V1='{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"long"}]}'
V2BAD='{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"long"},{"name":"email","type":"string"}]}'
V2OK='{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"long"},{"name":"nick","type":["null","string"],"default":null}]}'
ADDR='{"type":"record","name":"Address","namespace":"t","fields":[{"name":"city","type":"string"}]}'
WITHREF='{"type":"record","name":"Person","namespace":"t","fields":[{"name":"home","type":"t.Address"}]}'
body() { python3 -c 'import json,sys; print(json.dumps({"schema": sys.argv[1]}))' "$1"; }
body_ref() { # SCHEMA REF_NAME REF_SUBJECT
  python3 -c 'import json,sys; print(json.dumps({"schema": sys.argv[1], "references": [{"name": sys.argv[2], "subject": sys.argv[3], "version": 1}]}))' "$@"
}
req() { # METHOD PATH [DATA]
  local m="$1" p="$2"; shift 2
  echo "\$ $m $p${1:+ $1}"
  curl -s -o "$OUT" -w '%{http_code}' -X "$m" -H "$CT" "$B$p" ${1:+--data "$1"} | sed 's/^/HTTP /'; echo
  cat "$OUT"; echo; echo
}
S="$RUN-s" G="$RUN-g" A="$RUN-addr" P="$RUN-person"
req GET /config
# Compatibility from the global level only.
req POST "/subjects/$G/versions" "$(body "$V1")"
req POST "/subjects/$G/versions" "$(body "$V2BAD")"
# Compatibility set on the subject.
req POST "/subjects/$S/versions" "$(body "$V1")"
req PUT "/config/$S" '{"compatibility":"BACKWARD"}'
req GET "/config/$S"
req POST "/compatibility/subjects/$S/versions/latest" "$(body "$V2BAD")"
req POST "/compatibility/subjects/$S/versions/latest?verbose=true" "$(body "$V2BAD")"
req POST "/subjects/$S/versions" "$(body "$V2BAD")"
req POST "/compatibility/subjects/$S/versions/latest" "$(body "$V2OK")"
req POST "/subjects/$S/versions" "$(body "$V2OK")"
req GET "/subjects/$S/versions/latest"
req GET "/subjects/$S/versions"
# References.
req POST "/subjects/$A/versions" "$(body "$ADDR")"
req POST "/subjects/$P/versions" "$(body_ref "$WITHREF" t.Address "$A")"
req GET "/subjects/$P/versions/latest"
req GET "/subjects/$A/versions/1/referencedby"
# Deletes: soft, then permanent.
for subject in "$P" "$A" "$S" "$G"; do req DELETE "/subjects/$subject"; done
for subject in "$P" "$A" "$S" "$G"; do req DELETE "/subjects/$subject?permanent=true"; done
req GET "/subjects/$S/versions"
