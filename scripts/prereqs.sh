#!/usr/bin/env bash
# Installs what building and testing Tributary needs on a Debian machine,
# idempotently: Debian packages, then the Rust toolchain's components. The
# services themselves are fetched and built by scripts/infra on first start.
set -euo pipefail
source "$(dirname "$0")/infra/lib.sh"

# Build deps of librdkafka (cmake build, OpenSSL, zlib), curl for readiness
# probes, openssl for the control plane's certificates, Java + Maven for Kafka
# and OpenSearch, Postgres 15 for CDC tests.
apt_install build-essential cmake pkg-config libssl-dev zlib1g-dev libcurl4-openssl-dev \
  curl openssl ca-certificates git util-linux \
  openjdk-17-jdk-headless maven \
  postgresql-15 postgresql-client-15

command -v go >/dev/null || die "Go (>= 1.24) is required to build etcd, Kubernetes, kwok, Helm and the schema registry"
command -v cargo >/dev/null || die "Rust (rustup) is required"
# rust-toolchain.toml pins the version; make sure it and its components are there.
(cd "$(dirname "$0")/.." && rustup show active-toolchain >/dev/null)
log "prerequisites present"
