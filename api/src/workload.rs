//! What `Connector` and `Stream` share as workloads the operator runs: the
//! desired run state, the number of workers, pod overrides, and the status
//! the operator observes (workers, lag, throughput, lineage).
//!
//! Data model: one resource → one Deployment of `replicas` workers (CDC
//! sources are fixed at one). `state` says whether they run (`Running`),
//! stay up but move nothing (`Paused`), or are scaled to zero (`Stopped`).
//! Status is observed without network access to the pods: worker state from
//! the `tributary-status` topic, lag from consumer-group offsets against the
//! partitions' high watermarks (Kafka Admin API), restarts from the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation whose change restarts a resource's workers (a rolling restart,
/// like `kubectl rollout restart`): `kubectl annotate connector x
/// tributary.dev/restartedAt="$(date -u +%FT%TZ)" --overwrite`.
pub const RESTART_ANNOTATION: &str = "tributary.dev/restartedAt";

/// Whether the workers move records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DesiredState {
    /// Workers run and move records.
    #[default]
    Running,
    /// Workers stay up (keeping their partitions and state) but stop
    /// consuming and producing until the state is `Running` again.
    Paused,
    /// Workers are scaled to zero. Offsets, the CDC slot and state topics
    /// stay, so `Running` continues where it stopped.
    Stopped,
}

/// A request to move the consumer group's committed offsets, applied once
/// per new `requestId`: the operator stops the workers, waits until the
/// group has no member, commits the new offsets through Kafka, records
/// `status.offsetReset`, and lets the workers run again (from the new
/// offsets).
///
/// Why declarative: Strimzi (0.44+) changes a `KafkaConnector`'s offsets
/// imperatively, in steps: set `spec.state: stopped`, then annotate
/// `strimzi.io/connector-offsets=reset` (or `alter`, with the offsets in a
/// ConfigMap named by `spec.alterOffsets`); the operator acts once and
/// removes the annotation, then the state is set back. The annotation is
/// not something to keep in Git (a sync that puts it back resets again),
/// and nothing records which request ran. Here one spec field is the whole
/// request: the operator does the stop, the reset and the restart itself, a
/// new `requestId` is a new reset while re-applying the same manifest is
/// not, and `status.offsetReset` says which request was applied and when.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.to == 'Timestamp' ? has(self.timestamp) : !has(self.timestamp)").message("offsetReset.timestamp is required with to: Timestamp, and only allowed with it").reason(Reason::FieldValueInvalid).field_path(".timestamp"))]
pub struct OffsetReset {
    /// Identifies the request: a reset is applied once for each new value
    /// (e.g. a date or a ticket number), never again for the same one.
    #[schemars(length(min = 1, max = 128))]
    pub request_id: String,
    /// `Earliest` (replay everything retained), `Latest` (skip everything
    /// not yet consumed) or `Timestamp` (from the first record at or after
    /// `timestamp`).
    pub to: OffsetResetTarget,
    /// RFC 3339 time for `to: Timestamp`, e.g. `2026-12-02T15:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$')").message("offsetReset.timestamp must be an RFC 3339 time, e.g. 2026-12-02T15:00:00Z"))]
    pub timestamp: Option<String>,
}

/// Where an offset reset moves the consumer group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OffsetResetTarget {
    /// The first retained record of every partition.
    Earliest,
    /// The end of every partition.
    Latest,
    /// The first record at or after `timestamp` (the end where there is none).
    Timestamp,
}

/// The offset reset last applied (`status.offsetReset`).
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedOffsetReset {
    /// `spec.offsetReset.requestId` of the applied request.
    pub request_id: String,
    /// When the offsets were committed.
    pub applied_at: Time,
    /// Partitions whose committed offset was set.
    pub partitions: i32,
}

/// Overrides of the worker pods: everything else is set by the operator
/// (security context, probes, config mount, secrets as environment).
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplate {
    /// Worker image. Absent: the operator's default worker image (the one
    /// released with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`. Absent: Kubernetes' default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// CPU and memory requests and limits of the worker container. Absent:
    /// requests of 100m CPU and 128Mi memory, a memory limit of 512Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the worker pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the worker pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node and pod (anti-)affinity of the worker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Extra labels of the worker pods (the operator's own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations of the worker pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Priority class of the worker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
}

/// Image pull policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when missing on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// The observed state of a Connector's or Stream's workers.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// `Ready`, `Reconciling`, `Stalled` (kstatus) and `DependenciesReady`
    /// (the KafkaCluster, and the Topics and Schemas naming the topics used,
    /// are Ready).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Workers whose pods are ready (the scale subresource's replicas).
    #[serde(default)]
    pub replicas: i32,
    /// Workers wanted: `spec.replicas`, or 0 when Stopped.
    #[serde(default)]
    pub desired_replicas: i32,
    /// Label selector of the worker pods (for the scale subresource and
    /// autoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// What the workers report they are doing: `Starting`, `Snapshotting`,
    /// `Streaming`, `Paused`, `Retrying`, `Completed` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_state: Option<String>,
    /// How far behind the workers are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<Lag>,
    /// Records per second moved, averaged between two observations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_per_second: Option<u64>,
    /// Container restarts of the current worker pods.
    #[serde(default)]
    pub restarts: i32,
    /// The last error a worker reported (or why the pods do not start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Topics read and written (lineage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Lineage>,
    /// The last `spec.offsetReset` applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset: Option<AppliedOffsetReset>,
}

/// How far behind a workload is.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    /// Records in the input topics not yet committed by the consumer group
    /// (sinks and streams): the sum over partitions of high watermark minus
    /// committed offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<i64>,
    /// Age of the oldest record not yet committed (sinks and streams), or
    /// time since the last change seen from the database (CDC sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<i64>,
    /// WAL bytes the replication slot retains (CDC sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_bytes: Option<i64>,
    /// One-line summary for `kubectl get` (the LAG column).
    #[serde(default)]
    pub summary: String,
}

impl Lag {
    /// Fills `summary` from the figures: `"120 records, 3s"`, `"4 KiB WAL, 0s"`.
    #[must_use]
    pub fn summarised(mut self) -> Self {
        let mut parts = Vec::new();
        if let Some(records) = self.records {
            parts.push(format!("{records} records"));
        }
        if let Some(bytes) = self.wal_bytes {
            parts.push(format!("{} WAL", human_bytes(bytes)));
        }
        if let Some(seconds) = self.seconds {
            parts.push(format!("{seconds}s"));
        }
        self.summary = parts.join(", ");
        self
    }
}

fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024 * 1024 && unit + 1 < UNITS.len() {
        value /= 1024;
        unit += 1;
    }
    format!("{} {}", value / 1024, UNITS[unit])
}

/// Topics a workload reads and writes.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lineage {
    /// Topics read (sinks, streams).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// Topics written, or their pattern for CDC (`<topicPrefix>.<schema>.<table>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<String>,
}

/// The consumer group of a sink's or stream's workers when the spec names
/// none: `tributary-<namespace>-<name>` (`tributary-<name>` standalone).
pub fn default_group_id(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(namespace) => format!("tributary-{namespace}-{name}"),
        None => format!("tributary-{name}"),
    }
}

/// Default of `spec.replicas`.
pub fn default_replicas() -> i32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_summary_reads_like_kubectl_output() {
        let sink = Lag {
            records: Some(120),
            seconds: Some(3),
            ..Lag::default()
        }
        .summarised();
        assert_eq!(sink.summary, "120 records, 3s");
        let cdc = Lag {
            wal_bytes: Some(5 * 1024 * 1024 + 7),
            seconds: Some(0),
            ..Lag::default()
        }
        .summarised();
        assert_eq!(cdc.summary, "5 MiB WAL, 0s");
        assert_eq!(human_bytes(900), "900 B");
        assert_eq!(human_bytes(4096), "4 KiB");
    }
}
