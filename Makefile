# Tributary developer entry points. `make help` lists them.
SHELL := /bin/bash
INFRA := scripts/infra/infra.sh
SERVICES := postgres kafka registry opensearch k8s helm connect

.PHONY: help demo demo-down prereqs infra-up infra-down infra-status test test-unit lint fmt crds crds-check chart-lint deploy-manifests images bench-operator bench-cdc bench-sink-opensearch bench-sink-postgres bench-stream \
	$(addprefix infra-,$(SERVICES)) $(addsuffix -down,$(addprefix infra-,$(SERVICES)))

help: ## List the targets
	@grep -E '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'
	@echo "infra-SERVICE   Start one service: $(SERVICES); infra-SERVICE-down stops it"

demo: ## The main job: local infrastructure, Tributary installed with Helm, the ratings pipeline running, kubectl get tributary with lag
	bash scripts/demo.sh up

demo-down: ## Stop what make demo started (the local services keep running)
	bash scripts/demo.sh down

prereqs: ## Install build prerequisites (Debian packages, Rust components)
	bash scripts/prereqs.sh

infra-up: ## Start all local services (Postgres, Kafka, registry, OpenSearch, Kubernetes, Helm, Kafka Connect + Debezium)
	bash $(INFRA) up

infra-down: ## Stop all local services
	bash $(INFRA) down

infra-status: ## Show which local services run
	bash $(INFRA) status

$(addprefix infra-,$(SERVICES)): infra-%: ## Start one service, e.g. make infra-kafka
	bash $(INFRA) up $*

$(addsuffix -down,$(addprefix infra-,$(SERVICES))): infra-%-down: ## Stop one service
	bash $(INFRA) down $*

test: prereqs infra-up ## Start the local services (running ones are reused) and run every test tier
	cargo test --workspace --all-targets

test-unit: ## Run only the pure unit tests (no services needed)
	cargo test --workspace --lib --bins

lint: crds-check ## rustfmt check, clippy with warnings as errors, CRD drift check
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

bench-operator: infra-kafka infra-k8s ## Benchmark: 1,000 Topics applied to the real control plane (release operator)
	cargo build --release -p tributary-operator
	cargo run --release -q -p tributary-e2e --example topic_bench -- 1000

bench-cdc: infra-postgres infra-kafka infra-connect ## Benchmark: CDC of 1M rows vs pg_recvlogical and Kafka Connect + Debezium (release worker)
	cargo build --release -p tributary-worker
	cargo run --release -q -p tributary-worker --example cdc_bench -- 1000000 20

bench-sink-opensearch: infra-kafka infra-opensearch ## Benchmark: OpenSearch sink docs/s vs a raw _bulk loader, peak RSS (release worker)
	cargo build --release -p tributary-worker
	cargo run --release -q -p tributary-worker --example opensearch_bench -- 200000

bench-sink-postgres: infra-postgres ## Benchmark: Postgres sink upsert rows/s vs raw COPY and the JSON-parameter design, peak RSS
	cargo run --release -q -p tributary-worker --example postgres_sink_bench -- 200000

bench-stream: infra-kafka ## Benchmark: Stream filter/project and tumbling count vs Kafka Streams 4.3 (events/s, peak RSS; release worker)
	cargo build --release -p tributary-worker
	cargo run --release -q -p tributary-worker --example stream_bench -- 5000000

# Every CRD goes to both directories: crds/ for kubectl users, the chart's crds/ for Helm.
CRD_DIRS := crds charts/tributary/crds
HELM ?= $(or $(TRIBUTARY_BIN),$(HOME)/.cache/tributary/bin)/helm

crds: ## Regenerate crds/ and charts/tributary/crds/ from the Rust types in api/
	cargo run -q -p tributary-api --bin crdgen -- $(CRD_DIRS)

crds-check: ## Fail when crds/ or charts/tributary/crds/ differs from the Rust types
	cargo run -q -p tributary-api --bin crdgen -- --check $(CRD_DIRS)

chart-lint: ## helm lint and helm template of charts/tributary (default and namespaced values)
	$(HELM) lint --strict charts/tributary
	$(HELM) lint --strict charts/tributary --set watch.scope=Namespace
	$(HELM) template tributary charts/tributary --kube-version 1.33.0 >/dev/null
	$(HELM) template tributary charts/tributary --kube-version 1.33.0 --set watch.scope=Namespace >/dev/null

VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
images: ## Build the worker and operator images with Docker (needs a Docker daemon; none on the project's machines)
	docker build --target worker -t ghcr.io/tributary-dev/tributary-worker:$(VERSION) .
	docker build --target operator -t ghcr.io/tributary-dev/tributary-operator:$(VERSION) .

deploy-manifests: ## Regenerate deploy/operator/ (plain manifests) and deploy/argocd/argocd-cm.yaml from the chart and health.lua
	HELM=$(HELM) bash deploy/operator/generate.sh
	bash deploy/argocd/generate.sh

fmt: ## Format the code
	cargo fmt --all
