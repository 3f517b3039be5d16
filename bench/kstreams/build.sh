#!/usr/bin/env bash
# Builds the Kafka Streams peer of make bench-stream: resolves kafka-streams
# (Maven Central) into the shared Maven cache, compiles StreamsBench.java and
# prints the directory to run it from (java -cp "$DIR/libs/*:$DIR/classes").
# Keyed by the pom and the source, so a change builds a new directory.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${TRIBUTARY_CACHE:-$HOME/.cache/tributary}"
KEY="$(cat "$HERE/pom.xml" "$HERE/src/main/java/dev/tributary/bench/StreamsBench.java" "$HERE/build.sh" | sha256sum | cut -c1-12)"
DIR="$CACHE/kstreams-bench-$KEY"
if [[ ! -f "$DIR/.complete" ]]; then
  rm -rf "$DIR"
  mvn -q -B -f "$HERE/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$DIR/libs" >&2
  mkdir -p "$DIR/classes"
  javac -d "$DIR/classes" -cp "$DIR/libs/*" "$HERE/src/main/java/dev/tributary/bench/StreamsBench.java" >&2
  touch "$DIR/.complete"
fi
echo "$DIR"
