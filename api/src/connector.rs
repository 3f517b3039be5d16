//! `Connector`: one source or sink that moves records between an outside
//! system and Kafka, run by one `tributary-worker`.
//!
//! Data model: `spec.source` holds exactly one typed block per connector type
//! (`postgres`, `datagen`), never a free-form map, so a typo is refused by the
//! apiserver instead of being ignored by the worker. `spec.format` says how
//! keys and values are serialised. Credentials are `SecretKeyRef`s: the worker
//! receives their values through its environment (see
//! [`crate::common::SecretKeyRef::env_var`]), never through the config.
//!
//! The same YAML runs without Kubernetes: `tributary-worker run -f
//! connector.yaml` (standalone mode).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ClusterRef, Properties, SecretKeyRef};
use crate::sink::SinkSpec;
use crate::transform::TransformSpec;
use crate::workload::{DesiredState, OffsetReset, PodTemplate, WorkloadStatus};

/// A source or sink connector.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "Connector",
    namespaced,
    status = "ConnectorStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    shortname = "kconn",
    category = "tributary",
    doc = "A connector run by Tributary: change data capture or generated data into Kafka, or records from Kafka into a search index, a database or a webhook.",
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
#[x_kube(validation = Rule::new("[has(self.source), has(self.sink)].filter(x, x).size() == 1").message("spec must set exactly one of source or sink").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!has(self.offsetReset) || has(self.sink)").message("spec.offsetReset applies to sink connectors only (a source keeps its position in the database or its own offsets)").reason(Reason::FieldValueInvalid).field_path(".offsetReset"))]
#[x_kube(validation = Rule::new("!has(self.source) || self.replicas <= 1").message("spec.replicas of a source connector must be 0 or 1: one worker reads the replication slot (or generates the sequence)").reason(Reason::FieldValueInvalid).field_path(".replicas"))]
pub struct ConnectorSpec {
    /// The `KafkaCluster` records are written to. Absent: the namespace's only KafkaCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,

    /// Where records come from: exactly one of `postgres` or `datagen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,

    /// Where records from Kafka go: topics read and exactly one target
    /// (`opensearch`, `postgres` or `http`). Exactly one of `source` or
    /// `sink` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<SinkSpec>,

    /// How record keys and values are serialised. Default: JSON with the
    /// Kafka Connect schema envelope for both, as Kafka Connect's default
    /// `JsonConverter` writes them.
    #[serde(default)]
    pub format: FormatSpec,

    /// How the topics this connector writes to are created when missing
    /// (Kafka Connect's `topic.creation.*`). Default: created with one
    /// partition and the broker's default replication factor.
    #[serde(default)]
    pub topic_creation: TopicCreation,

    /// Transforms applied in order to every record between decoding and the
    /// sink (Kafka Connect's single message transforms): filter, insert,
    /// rename, drop, keep or mask fields, extract, flatten, cast, route,
    /// value-to-key, Debezium unwrap, each optionally under a predicate. See
    /// docs/transforms.md. Applied by sinks (sources refuse a non-empty list
    /// for now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub transforms: Vec<TransformSpec>,

    /// What happens to a record that cannot be processed (undecodable,
    /// refused by the target) and how failed writes are retried (Kafka
    /// Connect's `errors.*`). Default: tolerance `None`, the connector stops
    /// at the first bad record.
    #[serde(default)]
    pub errors: ErrorHandling,

    /// `Running` (default), `Paused` (workers stay up, move nothing) or
    /// `Stopped` (scaled to zero; offsets and the CDC slot are kept).
    #[serde(default)]
    pub state: DesiredState,

    /// Workers sharing the input partitions (sinks). Sources run one worker
    /// (0 or 1). Default 1.
    #[serde(default = "crate::workload::default_replicas")]
    #[schemars(range(min = 0, max = 256))]
    pub replicas: i32,

    /// Overrides of the worker pods: image, resources, node selection,
    /// tolerations, affinity, labels, annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplate>,

    /// Replay or skip records (sinks): moves the consumer group's committed
    /// offsets over `sink.topics`, once per new `requestId`, with the
    /// workers stopped meanwhile. See [`OffsetReset`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset: Option<OffsetReset>,
}

/// Error handling, in Kafka Connect's vocabulary.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("!has(self.deadLetterTopic) || self.tolerance == 'All'").message("errors.deadLetterTopic needs errors.tolerance All (with None the connector stops at the first bad record)").reason(Reason::FieldValueInvalid).field_path(".deadLetterTopic"))]
pub struct ErrorHandling {
    /// `None` (default): a bad record stops the connector with the error in
    /// its status; nothing after it is committed. `All`: bad records go to
    /// `deadLetterTopic` (or are logged and skipped without one) and the
    /// pipeline goes on (`errors.tolerance`).
    #[serde(default)]
    pub tolerance: ErrorTolerance,
    /// Topic bad records are written to, with their original key, value and
    /// headers (`errors.deadletterqueue.topic.name`). Created when missing,
    /// per `spec.topicCreation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub dead_letter_topic: Option<String>,
    /// Add `__connect.errors.*` headers saying where the record came from and
    /// why it failed (`errors.deadletterqueue.context.headers.enable`).
    /// Default true.
    #[serde(default = "default_true")]
    pub context_headers: bool,
    /// Retries of writes that failed for a transient reason (target down,
    /// overloaded, timed out).
    #[serde(default)]
    pub retry: RetrySpec,
}

impl Default for ErrorHandling {
    fn default() -> Self {
        Self {
            tolerance: ErrorTolerance::None,
            dead_letter_topic: None,
            context_headers: true,
            retry: RetrySpec::default(),
        }
    }
}

/// `errors.tolerance`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ErrorTolerance {
    /// Stop at the first bad record.
    #[default]
    None,
    /// Skip bad records (to the dead-letter topic, when one is set).
    All,
}

/// Exponential backoff with full jitter between attempts of a failed write.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySpec {
    /// Longest pause before the first retry, in milliseconds. Default 500.
    #[serde(default = "default_initial_delay_ms")]
    #[schemars(range(min = 1, max = 600_000))]
    pub initial_delay_ms: u32,
    /// Longest pause between attempts, in milliseconds (the pause doubles up
    /// to it). Default 60000.
    #[serde(default = "default_max_delay_ms")]
    #[schemars(range(min = 1, max = 3_600_000))]
    pub max_delay_ms: u32,
    /// Give up (and stop the connector) after retrying one write this many
    /// seconds (`errors.retry.timeout`). Absent: retry until the target
    /// comes back; the connector's status says `Retrying` meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<u32>,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            initial_delay_ms: default_initial_delay_ms(),
            max_delay_ms: default_max_delay_ms(),
            timeout_seconds: None,
        }
    }
}

fn default_initial_delay_ms() -> u32 {
    500
}
fn default_max_delay_ms() -> u32 {
    60_000
}

/// Creation of missing output topics.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicCreation {
    /// Create a missing topic before writing to it. Default true. With
    /// false, a missing topic stops the connector with an error naming it
    /// (declare the topics as `Topic` resources instead).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Partitions of a created topic. Default 1.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 100_000))]
    pub partitions: i32,
    /// Replication factor of a created topic. Absent: the broker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32767))]
    pub replication_factor: Option<i32>,
    /// Topic configs of a created topic (e.g. `cleanup.policy: compact`).
    #[serde(default, skip_serializing_if = "Properties::is_empty")]
    #[schemars(schema_with = "crate::common::properties_schema")]
    pub configs: Properties,
}

impl Default for TopicCreation {
    fn default() -> Self {
        Self {
            enabled: true,
            partitions: 1,
            replication_factor: None,
            configs: Properties::new(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_partitions() -> i32 {
    1
}

/// The source of a connector: exactly one block is set.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("[has(self.postgres), has(self.datagen)].filter(x, x).size() == 1").message("spec.source must set exactly one of postgres or datagen").reason(Reason::FieldValueInvalid))]
pub struct SourceSpec {
    /// Change data capture from PostgreSQL through logical replication (pgoutput).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSource>,
    /// Synthetic records (ratings or orders) for demos and benchmarks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagen: Option<DatagenSource>,
}

/// Postgres change data capture, writing Debezium-compatible change events to
/// one topic per table, `<topicPrefix>.<schema>.<table>`.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresSource {
    /// Host name or address of the database server.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port of the database server. Default 5432.
    #[serde(default = "default_postgres_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Database to capture.
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
    /// User with the REPLICATION attribute (and SELECT on the captured tables
    /// for snapshots).
    #[schemars(length(min = 1, max = 63))]
    pub user: String,
    /// The user's password. Absent: no password (trust or peer auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretKeyRef>,
    /// Logical name of the database server: the first part of every topic
    /// name and `source.name` in each event (Debezium's `topic.prefix`).
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._-]+$')").message("topicPrefix may contain letters, digits, '.', '_' and '-'"))]
    pub topic_prefix: String,
    /// Replication slot to stream from; created when missing, dropped only
    /// as `slotDeletionPolicy` says (or by `tributary-worker drop-slot`).
    /// Default `tributary`.
    #[serde(default = "default_slot_name")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9_]+$')").message("slotName may contain lower-case letters, digits and '_' (a Postgres rule)"))]
    pub slot_name: String,
    /// Publication naming the captured tables. Default `tributary`.
    #[serde(default = "default_publication_name")]
    #[schemars(length(min = 1, max = 63))]
    pub publication_name: String,
    /// How the publication is created when missing: `AllTables` (default),
    /// `Filtered` (only the tables matched by `tableIncludeList`) or
    /// `Disabled` (it must exist already).
    #[serde(default)]
    pub publication_autocreate: PublicationAutocreate,
    /// Regular expressions matched against `<schema>.<table>`; only matching
    /// tables are captured. Empty: every table of the publication.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_include_list: Vec<String>,
    /// Regular expressions matched against `<schema>.<table>`; matching
    /// tables are not captured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_exclude_list: Vec<String>,
    /// When to read the tables' existing rows: `Initial` (default: once, when
    /// no snapshot has completed yet), `NoData` (never), `WhenNeeded` (also
    /// whenever the slot is missing) or `InitialOnly` (snapshot, then stop).
    #[serde(default)]
    pub snapshot_mode: SnapshotMode,
    /// Seconds between heartbeats: the worker writes a heartbeat into the WAL
    /// and confirms it, so an idle database does not retain WAL for the slot,
    /// and writes a record to `__debezium-heartbeat.<topicPrefix>`. 0 disables.
    /// Default 10.
    #[serde(default = "default_heartbeat_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub heartbeat_interval_seconds: u32,
    /// Signal table, `<schema>.<table>` with columns `id`, `type` and `data`
    /// (Debezium's `signal.data.collection`). Inserting a row of type
    /// `execute-snapshot` with data
    /// `{"data-collections": ["public.orders"], "type": "incremental"}`
    /// snapshots those tables in chunks while streaming continues. The table
    /// must be in the publication. Absent: signals are not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^.]+[.][^.]+$')").message("signalDataCollection must be <schema>.<table>"))]
    pub signal_data_collection: Option<String>,
    /// Rows per chunk of an incremental snapshot. Default 1024.
    #[serde(default = "default_chunk_size")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub incremental_snapshot_chunk_size: u32,
    /// Also write BEGIN/END events to `<topicPrefix>.transaction` and a
    /// `transaction` block in each event (Debezium's
    /// `provide.transaction.metadata`). Default false.
    #[serde(default)]
    pub provide_transaction_metadata: bool,
    /// What happens to the replication slot and the publication when the
    /// Connector is deleted: `Retain` (default) keeps both; `Delete` drops
    /// them.
    ///
    /// With `Delete` the Connector gets a finalizer. On deletion the
    /// operator first removes the worker and waits until no worker pod is
    /// left (so nothing holds the slot), then drops the slot and, unless
    /// `publicationAutocreate` is `Disabled` (then someone else made it),
    /// the publication; only then does the Connector go away. While the
    /// database cannot be reached the Connector stays, the reason is in its
    /// status and Events, and the operator retries with backoff.
    ///
    /// Why `Retain` by default, and why only on deletion: a dropped slot
    /// cannot be brought back, and changes made while it is missing are
    /// never captured. Debezium's `slot.drop.on.stop` (default false) drops
    /// the slot whenever the connector stops, which its documentation keeps
    /// for tests since every restart then loses the position; Strimzi's
    /// `deleteClaim` (default false) ties removing the data to deleting the
    /// resource. Tributary does as Strimzi: `state: Stopped` keeps the slot
    /// (`Running` continues where it stopped; meanwhile the status shows the
    /// WAL the slot retains), and only deleting the Connector with `Delete`
    /// drops it. With `Retain`, a deleted Connector's slot keeps retaining
    /// WAL until it is dropped (`tributary-worker drop-slot`, or
    /// `SELECT pg_drop_replication_slot('<slotName>')`).
    #[serde(default)]
    pub slot_deletion_policy: SlotDeletionPolicy,
}

/// What deleting a Connector does to its replication slot and publication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SlotDeletionPolicy {
    /// Keep them: a re-created Connector with the same slot continues from it.
    #[default]
    Retain,
    /// Drop them once the worker has stopped.
    Delete,
}

fn default_postgres_port() -> u16 {
    5432
}
fn default_slot_name() -> String {
    "tributary".to_owned()
}
fn default_publication_name() -> String {
    "tributary".to_owned()
}
fn default_chunk_size() -> u32 {
    1024
}
fn default_heartbeat_seconds() -> u32 {
    10
}

/// How the publication is created when it does not exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PublicationAutocreate {
    /// `CREATE PUBLICATION … FOR ALL TABLES`.
    #[default]
    AllTables,
    /// `CREATE PUBLICATION … FOR TABLE` the tables matched by the include list.
    Filtered,
    /// Never created: it must exist.
    Disabled,
}

/// When the connector reads the existing rows of the captured tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SnapshotMode {
    /// Snapshot once, when no snapshot has completed for this connector.
    #[default]
    Initial,
    /// Never snapshot: stream changes from the slot only.
    NoData,
    /// Snapshot when none has completed or the slot is missing (WAL lost).
    WhenNeeded,
    /// Snapshot, then stop without streaming.
    InitialOnly,
}

/// Synthetic records for demos and benchmarks.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatagenSource {
    /// What to generate: `Ratings` (customer, product, region, rating 1-5) or
    /// `Orders` (customer, product, quantity, price).
    pub dataset: Dataset,
    /// Topic to write to.
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,
    /// Records per second. Absent: as fast as Kafka accepts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub records_per_second: Option<u32>,
    /// Stop after this many records. Absent: run until stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u64>,
    /// Number of distinct keys (customers for ratings, order ids wrap around). Default 1000.
    #[serde(default = "default_key_space")]
    #[schemars(range(min = 1))]
    pub key_space: u32,
    /// Seed of the generator, so runs can be repeated. Default 0.
    #[serde(default)]
    pub seed: u64,
}

fn default_key_space() -> u32 {
    1000
}

/// Datasets the datagen source produces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Dataset {
    /// Product ratings: `{rating_id, customer_id, product_id, region, rating, comment, ts}`.
    #[default]
    Ratings,
    /// Shop orders: `{order_id, customer_id, product_id, quantity, price, ts}`.
    Orders,
}

/// Serialisation of keys and values.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FormatSpec {
    /// Format of record keys. Default `json-with-schema`.
    #[serde(default)]
    pub key: Format,
    /// Format of record values. Default `json-with-schema`.
    #[serde(default)]
    pub value: Format,
}

/// A record serialisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Plain JSON.
    Json,
    /// JSON with the Kafka Connect envelope `{"schema": …, "payload": …}`.
    #[default]
    JsonWithSchema,
    /// Avro in the Confluent wire format; schemas are registered in the
    /// KafkaCluster's schema registry under `<topic>-key` / `<topic>-value`.
    Avro,
}

/// Observed state of a `Connector`: see [`WorkloadStatus`].
pub type ConnectorStatus = WorkloadStatus;

crate::common::impl_has_conditions!(Connector);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_debezium_where_it_has_one() {
        let spec: ConnectorSpec = serde_yaml::from_str(
            "source:\n  postgres:\n    host: db\n    database: shop\n    user: cdc\n    topicPrefix: shop\n",
        )
        .unwrap();
        let pg = spec.source.unwrap().postgres.unwrap();
        assert_eq!(pg.port, 5432);
        assert_eq!(pg.slot_name, "tributary");
        assert_eq!(pg.snapshot_mode, SnapshotMode::Initial);
        assert_eq!(pg.publication_autocreate, PublicationAutocreate::AllTables);
        assert_eq!(pg.heartbeat_interval_seconds, 10);
        assert_eq!(pg.slot_deletion_policy, SlotDeletionPolicy::Retain);
        assert_eq!(spec.format.value, Format::JsonWithSchema);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let error = serde_yaml::from_str::<ConnectorSpec>(
            "source:\n  postgres:\n    host: db\n    database: shop\n    user: cdc\n    topicPrefix: shop\n    slot: x\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("unknown field `slot`"), "{error}");
    }
}
