# syntax=docker/dockerfile:1
# Tributary's two images from one build (the image's last path segment names the binary it runs):
#   docker build --target worker   -t ghcr.io/tributary-dev/tributary-worker:0.1.0 .
#   docker build --target operator -t ghcr.io/tributary-dev/tributary-operator:0.1.0 .
#
# Runtime: Debian 12 distroless "cc" as the non-root user 65532. The binaries link dynamically only to glibc,
# libgcc_s and OpenSSL 3 (libssl3/libcrypto3), all in that base, which also carries the CA certificates
# (/etc/ssl/certs). librdkafka (rdkafka's cmake-build feature), zstd and zlib are compiled in statically; no
# SASL/GSSAPI, so no libsasl2. No shell, no package manager.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
ARG RUST_VERSION
# cmake and a C/C++ compiler build librdkafka; libssl-dev for OpenSSL (librdkafka, kube, reqwest).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake make g++ pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
# The pinned toolchain is the image's own; this keeps rustup from fetching the components rust-toolchain.toml
# lists for development (rustfmt, clippy). zlib is built into the binary rather than needed at runtime.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    LIBZ_SYS_STATIC=1 \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tributary-worker -p tributary-operator \
 && mkdir -p /out \
 && cp target/release/tributary-worker target/release/tributary-operator /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS worker
COPY --from=builder /out/tributary-worker /usr/local/bin/tributary-worker
USER 65532:65532
# /metrics, /healthz, /readyz (TRIBUTARY_HTTP_ADDR)
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tributary-worker"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=builder /out/tributary-operator /usr/local/bin/tributary-operator
USER 65532:65532
# /metrics, /healthz, /readyz (TRIBUTARY_METRICS_ADDR)
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tributary-operator"]
