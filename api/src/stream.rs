//! `Stream`: a continuous SQL query over Kafka topics, run by one or more
//! `tributary-worker`s sharing a consumer group.
//!
//! Data model: `spec.sql` is the query in Tributary's SQL dialect
//! (docs/sql.md): one `SELECT` (optionally `INSERT INTO <topic> SELECT …`)
//! reading one topic, or a topic joined with a table topic or another stream,
//! with filters, projections, windowed aggregates and an `EMIT` clause. The
//! query names topics; everything about how bytes become rows and rows
//! become bytes sits next to it in the spec: per-input `inputs[]` (format,
//! the field holding event time), `output` (topic, key, format) and the
//! processing guarantee. The SQL is checked by `tributary_sql::parse_and_plan`
//! both by the operator (errors with line and column in the status) and by
//! the worker before it starts.
//!
//! The same YAML runs without Kubernetes: `tributary-worker run -f
//! stream.yaml` (standalone mode).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::ClusterRef;
use crate::connector::{Format, TopicCreation};
use crate::workload::{DesiredState, OffsetReset, PodTemplate, WorkloadStatus};

/// A continuous SQL query over Kafka topics.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "Stream",
    namespaced,
    status = "StreamStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    shortname = "kstream",
    category = "tributary",
    doc = "A continuous SQL query run by Tributary: filters, projections, windowed aggregates and joins over Kafka topics, written to an output topic.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Lag", type_ = "string", json_path = ".status.lag.summary"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamSpec {
    /// The `KafkaCluster` read from and written to. Absent: the namespace's only KafkaCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,

    /// The query, in Tributary's SQL dialect (docs/sql.md), e.g.
    /// `INSERT INTO alerts SELECT after.rating FROM ratings WHERE after.rating < 3`.
    /// An invalid query is reported with its line and column.
    #[schemars(length(min = 1, max = 65536))]
    pub sql: String,

    /// How each input topic is read. Topics the query names but this list
    /// does not are read as plain JSON with the Kafka record timestamp as
    /// event time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub inputs: Vec<StreamInput>,

    /// Where results go. `output.topic` may be left out when the query says
    /// `INSERT INTO <topic>`.
    #[serde(default)]
    pub output: StreamOutput,

    /// `AtLeastOnce` (default): after a crash, records since the last commit
    /// are processed again (duplicates in the output, aggregates may count
    /// them twice). `ExactlyOnce`: output, state changes and consumed
    /// offsets are committed in one Kafka transaction; readers using
    /// `isolation.level=read_committed` see every result exactly once.
    #[serde(default)]
    pub processing_guarantee: ProcessingGuarantee,

    /// Consumer group (and prefix of internal topics). Default
    /// `tributary-<namespace>-<name>` (`tributary-<name>` standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub group_id: Option<String>,

    /// Milliseconds between commits (transactions under `ExactlyOnce`).
    /// Default 100 for exactly-once, 1000 for at-least-once (Kafka Streams'
    /// `commit.interval.ms` defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 600_000))]
    pub commit_interval_ms: Option<u32>,

    /// How the output topic and internal topics (repartition, changelog) are
    /// created when missing. Internal topics get the partition count of the
    /// input topic.
    #[serde(default)]
    pub topic_creation: TopicCreation,

    /// `Running` (default), `Paused` (workers stay up, move nothing) or
    /// `Stopped` (scaled to zero; offsets and state topics are kept).
    #[serde(default)]
    pub state: DesiredState,

    /// Workers sharing the input partitions. Default 1.
    #[serde(default = "crate::workload::default_replicas")]
    #[schemars(range(min = 0, max = 256))]
    pub replicas: i32,

    /// Overrides of the worker pods: image, resources, node selection,
    /// tolerations, affinity, labels, annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplate>,

    /// Replay or skip input records: moves the consumer group's committed
    /// offsets over the query's input topics, once per new `requestId`,
    /// with the workers stopped meanwhile (see [`OffsetReset`]).
    ///
    /// Windowed and aggregate state is not reset: it is restored from the
    /// changelog topics as before, and the replayed records are aggregated
    /// again on top of it (a replayed count counts twice). To recompute from
    /// scratch, give the Stream a new `groupId` instead (new group, new
    /// internal topics) — with `offsetReset` only when the output may
    /// contain results of records seen twice. Offsets of internal
    /// (repartition) topics are not moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset: Option<OffsetReset>,
}

/// How one input topic is read.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.maxTableBytes) || self.kind == 'Table'").message("maxTableBytes applies to inputs of kind Table").reason(Reason::FieldValueInvalid).field_path(".maxTableBytes"))]
pub struct StreamInput {
    /// The topic, as named in the query.
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,
    /// `Stream` (default): every record is an event. `Table`: a keyed,
    /// compacted topic (ksqlDB's TABLE) whose latest value per key is the
    /// current row and a null value (tombstone) deletes it; a query joins a
    /// table to its FROM stream with `ON <stream expression> = <table>.ROWKEY`.
    /// Every worker holds the whole table in memory (as Kafka Streams does
    /// for a global table).
    #[serde(default)]
    pub kind: StreamInputKind,
    /// Tables only: the most bytes of keys and values a worker holds for
    /// this table (default 256 MiB). A larger table stops the stream with an
    /// error naming this field instead of growing without bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024))]
    pub max_table_bytes: Option<u64>,
    /// Serialisation of keys and values. Default: plain JSON for both.
    #[serde(default = "json_formats")]
    pub format: StreamFormats,
    /// Dotted path of the value field holding event time (epoch milliseconds,
    /// or an RFC 3339 string), e.g. `after.created_at` or `ts_ms`. Absent: the
    /// Kafka record timestamp. Windows, grace and late events follow event
    /// time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000))]
    pub timestamp_field: Option<String>,
}

/// How an input topic is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StreamInputKind {
    /// Every record is an event.
    #[default]
    Stream,
    /// The latest value per key is the current row; a tombstone deletes it.
    Table,
}

/// Key and value formats of an input.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamFormats {
    /// Format of record keys. Default `json`.
    #[serde(default = "json")]
    pub key: Format,
    /// Format of record values. Default `json`.
    #[serde(default = "json")]
    pub value: Format,
}

impl Default for StreamFormats {
    fn default() -> Self {
        json_formats()
    }
}

fn json() -> Format {
    Format::Json
}

fn json_formats() -> StreamFormats {
    StreamFormats {
        key: Format::Json,
        value: Format::Json,
    }
}

/// The output topic, its key and its format.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamOutput {
    /// Topic results are written to. Required unless the query says
    /// `INSERT INTO <topic>`; when both are set they must agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub topic: Option<String>,
    /// Output columns forming the record key: one column gives its value as
    /// the key, several give a JSON object of them. Absent: the input record's
    /// key for queries without GROUP BY; the grouping columns (and the window
    /// start) for aggregates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub key: Vec<String>,
    /// Serialisation of keys and values. Default plain JSON.
    #[serde(default = "json_formats")]
    pub format: StreamFormats,
}

/// Delivery guarantee of a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ProcessingGuarantee {
    /// Offsets are committed after the output was acknowledged; a crash
    /// replays the records since the last commit.
    #[default]
    AtLeastOnce,
    /// Kafka transactions: output, state and consumed offsets commit together.
    ExactlyOnce,
}

/// Observed state of a `Stream`: see [`WorkloadStatus`].
pub type StreamStatus = WorkloadStatus;

crate::common::impl_has_conditions!(Stream);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_read_and_write_plain_json_at_least_once() {
        let spec: StreamSpec = serde_yaml::from_str("sql: SELECT * FROM ratings\n").unwrap();
        assert_eq!(spec.processing_guarantee, ProcessingGuarantee::AtLeastOnce);
        assert_eq!(spec.output.format.value, Format::Json);
        assert_eq!(spec.output.format.key, Format::Json);
        let input: StreamInput = serde_yaml::from_str("topic: ratings\n").unwrap();
        assert_eq!(input.format.value, Format::Json);
        assert_eq!(input.timestamp_field, None);
        assert_eq!(input.kind, StreamInputKind::Stream);
        let table: StreamInput =
            serde_yaml::from_str("topic: customers\nkind: Table\nmaxTableBytes: 1048576\n").unwrap();
        assert_eq!(table.kind, StreamInputKind::Table);
        assert_eq!(table.max_table_bytes, Some(1_048_576));
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let error = serde_yaml::from_str::<StreamSpec>("sql: SELECT 1 FROM t\nguarantee: ExactlyOnce\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `guarantee`"), "{error}");
    }
}
