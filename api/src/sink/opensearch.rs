//! The `opensearch` sink block: documents in an OpenSearch or Elasticsearch index.
//!
//! Data model (Kafka Connect's Elasticsearch sink): one record is one
//! document. Its id comes from the record key (`documentId: Key`; a string or
//! number as it is, an object or array as its canonical JSON — keys sorted,
//! no spaces) or from `<topic>+<partition>+<offset>` (`TopicPartitionOffset`,
//! also used when the key is null). The document is the record value — for
//! a Debezium change event the row after the change (`debeziumEnvelope:
//! Unwrap`, default), and a Debezium delete (`op: d`) or a tombstone removes
//! the document (`onTombstone: Delete`, default).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kafka_cluster::BasicAuth;

/// An OpenSearch or Elasticsearch cluster written through its `_bulk` API.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenSearchSink {
    /// Base URL of the cluster's REST API, e.g. `https://opensearch:9200`.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
    /// Index every document is written to. Absent: the record's topic,
    /// lower-cased (index names must be lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub index: Option<String>,
    /// Where the document id comes from: `Key` (default; a null key falls
    /// back to topic+partition+offset) or `TopicPartitionOffset`.
    #[serde(default)]
    pub document_id: DocumentId,
    /// `Insert` (default: the `index` operation, the document replaces any
    /// earlier one with its id) or `Upsert` (the `update` operation with
    /// `doc_as_upsert`: fields are merged into an existing document).
    #[serde(default)]
    pub write_mode: WriteMode,
    /// What a tombstone (null value) or a Debezium delete does: `Delete`
    /// (default: removes the document with the record's id), `Ignore`
    /// (skipped) or `Fail` (refused like a bad record: dead-letter topic or
    /// stop, per `spec.errors.tolerance`).
    #[serde(default)]
    pub on_tombstone: TombstoneBehavior,
    /// How Debezium change events (values with `op`, `before`, `after`,
    /// `source`) are written: `Unwrap` (default: the `after` row for
    /// c/u/r, a delete for d, nothing for t) or `AsIs` (the whole envelope
    /// as the document).
    #[serde(default)]
    pub debezium_envelope: DebeziumEnvelope,
    /// A top-level field of the document whose value is the shard routing
    /// key of the write. Absent: routing by document id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub routing_field: Option<String>,
    /// HTTP basic authentication; the password through a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Seconds one `_bulk` request may take before it is retried. Default 30.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub request_timeout_seconds: u32,
    /// TLS for an `https://` URL: a CA to trust, a client certificate,
    /// from Secrets. Absent: the system trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::SinkTls>,
}

fn default_timeout_seconds() -> u32 {
    30
}

/// Source of the document id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DocumentId {
    /// The record key (string or number as is, object as canonical JSON).
    #[default]
    Key,
    /// `<topic>+<partition>+<offset>`: every record is its own document.
    TopicPartitionOffset,
}

/// The bulk operation a record becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WriteMode {
    /// `index`: the whole document is replaced.
    #[default]
    Insert,
    /// `update` with `doc_as_upsert`: fields are merged.
    Upsert,
}

/// What a tombstone or a Debezium delete does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TombstoneBehavior {
    /// Delete the document with the record's id.
    #[default]
    Delete,
    /// Skip the record.
    Ignore,
    /// Refuse the record (dead-letter topic or stop).
    Fail,
}

/// How Debezium change events are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DebeziumEnvelope {
    /// The `after` row for c/u/r, a delete for d, nothing for t.
    #[default]
    Unwrap,
    /// The envelope as the document.
    AsIs,
}
