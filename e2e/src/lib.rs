//! End-to-end tests of Tributary against the real control plane started by
//! `scripts/infra/k8s.sh` (etcd, kube-apiserver, controller-manager, scheduler
//! and kwok's fake nodes). The tests live in `tests/`; this crate has no code
//! of its own.
