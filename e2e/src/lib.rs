//! End-to-end tests of Tributary against the real control plane started by
//! `scripts/infra/k8s.sh` (etcd, kube-apiserver, controller-manager, scheduler
//! and kwok's fake nodes), Kafka and the schema registry.
//!
//! The tests live in `tests/` (`support/` is their harness: CRDs, a namespace
//! per test, the operator's controllers in-process), the operator benchmark in
//! `examples/topic_bench.rs`. The library holds [`kubelet`], which runs the
//! pods scheduled on kwok's fake nodes as real processes.

pub mod kubelet;
