//! `Schema`: a subject in a Confluent-compatible schema registry, declared
//! next to the topics that use it. The operator registers the schema text as
//! the subject's newest version, sets the subject's compatibility level, and
//! reports the registry's id and version (or the registry's refusal).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ClusterRef, DeletionPolicy};

/// A schema registry subject.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "Schema",
    namespaced,
    status = "SchemaStatus",
    shortname = "ksc",
    category = "tributary",
    doc = "A schema registered under a subject in the KafkaCluster's schema registry.",
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
    printcolumn(name = "Subject", type_ = "string", json_path = ".status.subject"),
    printcolumn(name = "Version", type_ = "integer", json_path = ".status.version"),
    printcolumn(name = "ID", type_ = "integer", json_path = ".status.id", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.subject) == has(oldSelf.subject) && (!has(self.subject) || self.subject == oldSelf.subject)").message("spec.subject is immutable: create a new Schema instead").reason(Reason::FieldValueForbidden).field_path(".subject"))]
#[x_kube(validation = Rule::new("has(self.clusterRef) == has(oldSelf.clusterRef) && (!has(self.clusterRef) || self.clusterRef.name == oldSelf.clusterRef.name)").message("spec.clusterRef is immutable").reason(Reason::FieldValueForbidden).field_path(".clusterRef"))]
pub struct SchemaSpec {
    /// The `KafkaCluster` whose schema registry holds the subject. Absent: the
    /// namespace's only KafkaCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,

    /// Subject name, e.g. `ratings-value`. Absent: `metadata.name`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub subject: Option<String>,

    /// Schema language: `AVRO` (default), `JSON` or `PROTOBUF`.
    #[serde(default)]
    pub schema_type: SchemaType,

    /// The schema text (Avro JSON, JSON Schema, or a .proto file).
    #[schemars(length(min = 1, max = 1_048_576))]
    pub schema: String,

    /// Other subjects' schemas this schema refers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub references: Vec<SchemaReference>,

    /// Compatibility level for the subject. Absent: the registry's global level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<Compatibility>,

    /// `Retain` (default) keeps the subject's versions when this resource is
    /// deleted; `Delete` soft-deletes the subject (the registry can restore it).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

impl Schema {
    /// The registry subject: `spec.subject`, else `metadata.name`.
    pub fn subject(&self) -> Option<&str> {
        self.spec.subject.as_deref().or(self.metadata.name.as_deref())
    }
}

/// Schema languages of the Confluent registry API.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    /// Apache Avro (the default).
    #[default]
    Avro,
    /// JSON Schema.
    Json,
    /// Protocol Buffers.
    Protobuf,
}

impl SchemaType {
    /// The registry's `schemaType` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

/// A reference to a schema registered under another subject.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaReference {
    /// The name used in this schema: an Avro full name, a JSON Schema `$ref`
    /// URL or a .proto import path.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The referenced subject.
    #[schemars(length(min = 1))]
    pub subject: String,
    /// The referenced version of that subject.
    #[schemars(range(min = 1))]
    pub version: i32,
}

/// Compatibility levels of the Confluent registry API.
#[derive(JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// New schema can read data written with the previous version.
    Backward,
    /// New schema can read data written with every earlier version.
    BackwardTransitive,
    /// Previous version can read data written with the new schema.
    Forward,
    /// Every earlier version can read data written with the new schema.
    ForwardTransitive,
    /// Both backward and forward with the previous version.
    Full,
    /// Both backward and forward with every earlier version.
    FullTransitive,
    /// No checks.
    None,
}

impl Compatibility {
    /// The registry's `compatibility` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
            Compatibility::None => "NONE",
        }
    }
}

/// Observed state of a `Schema`.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaStatus {
    /// `Ready`, `Reconciling` and `Stalled` (kstatus). An incompatible change
    /// makes Ready False with the registry's message; the registered version
    /// stays in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The registry subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The registry's global schema id of the registered schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The subject version holding this schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The subject's effective compatibility level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<String>,
}

crate::common::impl_has_conditions!(Schema);
