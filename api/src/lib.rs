//! Tributary's Kubernetes API: the custom resources users write and the
//! operator and worker both read.
//!
//! Every resource lives in the API group `tributary.dev`, version `v1alpha1`,
//! is namespaced, and belongs to the `tributary` category so
//! `kubectl get tributary` lists them all. Each has a `clusterRef` naming a
//! [`KafkaCluster`] (default: the namespace's only one) and a status with
//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`) and
//! `observedGeneration`, plus the facts observed for its kind.
//!
//! ```text
//!  KafkaCluster ◄── clusterRef ── Topic   (a Kafka topic)
//!       ▲      ◄── clusterRef ── Schema  (a registry subject)
//!       ├─────────── clusterRef ── Connector (Postgres CDC or datagen → Kafka)
//!       └─────────── clusterRef ── Stream    (SQL over topics → a topic)
//! ```

// kube's `printcolumn(...)` attributes repeat their keys by design.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod connector;
pub mod crd;
pub mod kafka_cluster;
pub mod schema;
pub mod sink;
pub mod stream;
pub mod topic;
pub mod transform;
pub mod workload;

pub use common::{ClusterRef, DeletionPolicy, DriftPolicy, HasConditions, Health, SecretKeyRef};
pub use connector::{Connector, ConnectorSpec, ConnectorStatus};
pub use kafka_cluster::{KafkaCluster, KafkaClusterSpec, KafkaClusterStatus};
pub use schema::{Schema, SchemaSpec, SchemaStatus};
pub use stream::{Stream, StreamSpec, StreamStatus};
pub use topic::{Topic, TopicSpec, TopicStatus};
pub use workload::{DesiredState, Lag, Lineage, PodTemplate, WorkloadStatus};

/// The API group of every Tributary resource.
pub const GROUP: &str = "tributary.dev";

/// The API version served for every Tributary resource.
pub const VERSION: &str = "v1alpha1";

/// The `kubectl get <category>` name that lists every Tributary resource.
pub const CATEGORY: &str = "tributary";

/// `apiVersion` as written in manifests.
pub fn api_version() -> String {
    format!("{GROUP}/{VERSION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_joins_group_and_version() {
        assert_eq!(api_version(), "tributary.dev/v1alpha1");
    }
}
