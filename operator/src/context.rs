//! State shared by every reconcile: the API client, Events, metrics and the
//! per-object retry counters behind exponential backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};

use crate::metrics::Metrics;

/// Tunables of the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a healthy object is re-checked (drift detection, reachability).
    pub resync: Duration,
    /// Timeout of one Kafka or registry request.
    pub request_timeout: Duration,
    /// First retry delay after a transient failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Watch only this namespace (namespaced install); `None` watches all.
    pub namespace: Option<String>,
    /// Reconciles in flight per controller: bounds memory and the load put on
    /// Kafka and the registry during a burst (e.g. a Git sync of 1,000 Topics).
    pub concurrency: u16,
    /// Worker image of Connectors and Streams whose `spec.template` names none.
    pub worker_image: String,
    /// The compacted topic workers report their status to.
    pub status_topic: String,
    /// How often a running Connector or Stream is re-observed (lag, throughput).
    pub status_interval: Duration,
}

/// The worker image released with this operator.
pub fn default_worker_image() -> String {
    format!(
        "ghcr.io/tributary-dev/tributary-worker:{}",
        env!("CARGO_PKG_VERSION")
    )
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_mins(1),
            request_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_mins(5),
            namespace: None,
            concurrency: 16,
            worker_image: default_worker_image(),
            status_topic: tributary_kafka::DEFAULT_STATUS_TOPIC.to_owned(),
            status_interval: Duration::from_secs(15),
        }
    }
}

/// Shared by all reconciles of all controllers.
#[derive(Clone)]
pub struct Context {
    /// Kubernetes client.
    pub client: kube::Client,
    /// Publishes Kubernetes Events on the reconciled objects.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Tunables.
    pub settings: Settings,
    /// Kafka admin clients per KafkaCluster.
    pub admins: Arc<crate::cluster::AdminCache>,
    /// Status-topic tails and throughput samples of Connectors and Streams.
    pub workloads: Arc<crate::controller::workload::WorkloadState>,
    failures: Arc<Mutex<HashMap<String, u32>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for the given client.
    pub fn new(client: kube::Client, metrics: Arc<Metrics>, settings: Settings) -> Self {
        let reporter = Reporter {
            controller: crate::FIELD_MANAGER.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            admins: Arc::default(),
            workloads: Arc::default(),
            failures: Arc::default(),
        }
    }

    /// An API for the watched resources of kind `K`: one namespace or all.
    pub fn watched_api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.settings.namespace {
            Some(namespace) => kube::Api::namespaced(self.client.clone(), namespace),
            None => kube::Api::all(self.client.clone()),
        }
    }

    /// Records one more consecutive failure of `key` and returns the delay
    /// before the next attempt: `min_backoff * 2^(n-1)`, capped, with ±10% jitter
    /// so many failing objects do not retry in lockstep.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let attempts = {
            let mut failures = self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = failures.entry(key.to_owned()).or_insert(0);
            *entry = entry.saturating_add(1);
            *entry
        };
        backoff_delay(
            attempts,
            self.settings.min_backoff,
            self.settings.max_backoff,
            jitter_seed(key),
        )
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// Exponential backoff for the `attempts`-th consecutive failure.
pub fn backoff_delay(attempts: u32, min: Duration, max: Duration, seed: u64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(20);
    let base = min.saturating_mul(1 << exponent).min(max);
    // Deterministic jitter in [-10%, +10%] derived from the seed.
    let permille = i64::try_from(seed % 201).unwrap_or(0) - 100;
    let millis = i64::try_from(base.as_millis()).unwrap_or(i64::MAX);
    let jittered = millis
        .saturating_add(millis.saturating_mul(permille) / 1000)
        .max(0);
    Duration::from_millis(u64::try_from(jittered).unwrap_or(0)).min(max)
}

fn jitter_seed(key: &str) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    key.bytes()
        .fold(nanos, |acc, b| acc.rotate_left(5) ^ u64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let min = Duration::from_secs(1);
        let max = Duration::from_mins(1);
        // seed 100 → zero jitter
        assert_eq!(backoff_delay(1, min, max, 100), Duration::from_secs(1));
        assert_eq!(backoff_delay(2, min, max, 100), Duration::from_secs(2));
        assert_eq!(backoff_delay(5, min, max, 100), Duration::from_secs(16));
        assert_eq!(backoff_delay(30, min, max, 100), max);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let min = Duration::from_secs(10);
        let max = Duration::from_mins(10);
        for seed in 0..500 {
            let delay = backoff_delay(1, min, max, seed);
            assert!(
                delay >= Duration::from_secs(9) && delay <= Duration::from_secs(11),
                "{delay:?}"
            );
        }
    }
}
