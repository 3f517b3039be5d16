//! The `sink` block of a `Connector`: records from Kafka topics into one
//! outside system.
//!
//! Data model: `topics` are read by one consumer group per Connector (its
//! replicas share the partitions); records are decoded per `spec.format`,
//! passed through `spec.transforms`, gathered into batches (`batch`) and
//! written by exactly one typed target block (`opensearch`, `postgres` or
//! `http`). Offsets are committed only after the target acknowledged a batch.

pub mod http;
pub mod opensearch;
pub mod postgres;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::SecretKeyRef;

pub use self::http::HttpSink;
pub use self::opensearch::OpenSearchSink;
pub use self::postgres::PostgresSink;

/// Where a sink connector reads from and writes to: exactly one target block is set.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("[has(self.opensearch), has(self.postgres), has(self.http)].filter(x, x).size() == 1").message("spec.sink must set exactly one of opensearch, postgres or http").reason(Reason::FieldValueInvalid))]
pub struct SinkSpec {
    /// Topics to read (at least one).
    #[schemars(length(min = 1, max = 1000))]
    pub topics: Vec<String>,
    /// Consumer group of the connector's workers. Absent:
    /// `tributary-<namespace>-<name>` (`tributary-<name>` standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249))]
    pub group_id: Option<String>,
    /// Where a partition without a committed offset starts: `Earliest`
    /// (default: every record still in the topic) or `Latest` (only new ones).
    #[serde(default)]
    pub start_from: StartFrom,
    /// How records are gathered into writes.
    #[serde(default)]
    pub batch: BatchSpec,
    /// An OpenSearch or Elasticsearch index, through the `_bulk` API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opensearch: Option<OpenSearchSink>,
    /// A PostgreSQL table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSink>,
    /// An HTTP endpoint (webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSink>,
}

/// TLS to an HTTPS target (OpenSearch, a webhook). All material comes from
/// Secrets, as PEM. Absent: the system trust store, no client certificate.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.clientCertSecretRef) == has(self.clientKeySecretRef)").message("tls.clientCertSecretRef and tls.clientKeySecretRef must be set together"))]
#[x_kube(validation = Rule::new("!(has(self.caSecretRef) && has(self.insecureSkipVerify) && self.insecureSkipVerify)").message("tls.caSecretRef and tls.insecureSkipVerify are mutually exclusive"))]
pub struct SinkTls {
    /// PEM CA bundle the server's certificate may chain to, trusted beside
    /// the system trust store (e.g. a cluster's own CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// PEM client certificate for mutual TLS (requires `clientKeySecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret_ref: Option<SecretKeyRef>,
    /// PEM private key of the client certificate, PKCS#8 (`BEGIN PRIVATE
    /// KEY`; requires `clientCertSecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_secret_ref: Option<SecretKeyRef>,
    /// Accept any server certificate. For development only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Where a partition without a committed offset starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StartFrom {
    /// The oldest record still in the partition.
    #[default]
    Earliest,
    /// Records written after the connector started.
    Latest,
}

/// Batching: a batch is written when any limit is reached.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchSpec {
    /// Most records in one write. Default 1000.
    #[serde(default = "default_max_records")]
    #[schemars(range(min = 1, max = 100_000))]
    pub max_records: u32,
    /// Most bytes (of decoded values) in one write. Default 5 MiB.
    #[serde(default = "default_max_bytes")]
    #[schemars(range(min = 1024, max = 104_857_600))]
    pub max_bytes: u32,
    /// Milliseconds a partial batch waits for more records. Default 100.
    #[serde(default = "default_linger_ms")]
    #[schemars(range(min = 0, max = 60_000))]
    pub linger_ms: u32,
    /// Writes in flight at once. Default 2.
    #[serde(default = "default_max_in_flight")]
    #[schemars(range(min = 1, max = 64))]
    pub max_in_flight: u32,
}

impl Default for BatchSpec {
    fn default() -> Self {
        Self {
            max_records: default_max_records(),
            max_bytes: default_max_bytes(),
            linger_ms: default_linger_ms(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

fn default_max_records() -> u32 {
    1000
}
fn default_max_bytes() -> u32 {
    5 * 1024 * 1024
}
fn default_linger_ms() -> u32 {
    100
}
fn default_max_in_flight() -> u32 {
    2
}
