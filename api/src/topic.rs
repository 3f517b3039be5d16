//! `Topic`: a Kafka topic declared in Git. The operator creates it, grows its
//! partitions, keeps its configs as declared (or reports drift), and deletes
//! it only when `deletionPolicy: Delete` says so.
//!
//! Data model: `spec` is the desired topic; `status` is what Kafka reports
//! (id, partitions, replication factor, the values of the declared configs)
//! plus `drift`, the declared settings Kafka currently disagrees with.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::common::{ClusterRef, DeletionPolicy, DriftPolicy, Properties};

/// A Kafka topic.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    shortname = "kt",
    category = "tributary",
    doc = "A Kafka topic managed by Tributary.",
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
    printcolumn(
        name = "Topic",
        type_ = "string",
        json_path = ".status.topicName",
        priority = 1
    ),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".status.partitions"),
    printcolumn(name = "RF", type_ = "integer", json_path = ".status.replicationFactor"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.partitions >= oldSelf.partitions").message("spec.partitions cannot decrease: Kafka cannot remove partitions").reason(Reason::FieldValueInvalid).field_path(".partitions"))]
#[x_kube(validation = Rule::new("has(self.replicationFactor) == has(oldSelf.replicationFactor) && (!has(self.replicationFactor) || self.replicationFactor == oldSelf.replicationFactor)").message("spec.replicationFactor cannot be changed (reassigning replicas is not supported yet)").reason(Reason::FieldValueForbidden).field_path(".replicationFactor"))]
#[x_kube(validation = Rule::new("has(self.topicName) == has(oldSelf.topicName) && (!has(self.topicName) || self.topicName == oldSelf.topicName)").message("spec.topicName is immutable: create a new Topic instead").reason(Reason::FieldValueForbidden).field_path(".topicName"))]
#[x_kube(validation = Rule::new("has(self.clusterRef) == has(oldSelf.clusterRef) && (!has(self.clusterRef) || self.clusterRef.name == oldSelf.clusterRef.name)").message("spec.clusterRef is immutable").reason(Reason::FieldValueForbidden).field_path(".clusterRef"))]
pub struct TopicSpec {
    /// The `KafkaCluster` holding the topic. Absent: the namespace's only KafkaCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,

    /// Name of the topic in Kafka. Absent: `metadata.name`. Immutable.
    /// Letters, digits, `.`, `_` and `-`, at most 249 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 249))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._-]{1,249}$') && self != '.' && self != '..'").message("spec.topicName must be 1-249 characters of letters, digits, '.', '_' and '-', and not '.' or '..'"))]
    pub topic_name: Option<String>,

    /// Number of partitions. May grow, never shrink.
    #[schemars(range(min = 1, max = 100_000))]
    pub partitions: i32,

    /// Replicas per partition. Absent: the broker's `default.replication.factor`.
    /// Cannot be changed after creation yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32767))]
    pub replication_factor: Option<i32>,

    /// Topic configs (e.g. `retention.ms: "604800000"`, `cleanup.policy: compact`).
    /// Values are strings, as in Kafka. Configs not listed keep the broker default.
    #[serde(default, skip_serializing_if = "Properties::is_empty")]
    #[schemars(schema_with = "crate::common::properties_schema")]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[a-z][a-z0-9.]*$'))").message("spec.configs keys are Kafka topic config names such as retention.ms"))]
    pub configs: Properties,

    /// `Retain` (default) keeps the topic and its data when this resource is
    /// deleted; `Delete` deletes the topic too.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Enforce` (default) reverts changes made outside Tributary; `Report`
    /// only lists them in `status.drift` and leaves Kafka untouched.
    #[serde(default)]
    pub drift_policy: DriftPolicy,
}

impl Topic {
    /// The topic's name in Kafka: `spec.topicName`, else `metadata.name`.
    pub fn kafka_name(&self) -> Option<&str> {
        self.spec.topic_name.as_deref().or(self.metadata.name.as_deref())
    }
}

/// One declared setting that Kafka currently disagrees with.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// What differs: `partitions`, `replicationFactor` or `configs.<name>`.
    pub field: String,
    /// The declared value (`<default>`: no override declared).
    pub desired: String,
    /// The value Kafka reports: `<value> (default)` when no override is set and
    /// the broker default applies (`<default>` when Kafka does not say which).
    pub observed: String,
}

/// Observed state of a `Topic`.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// `Ready`, `Reconciling` and `Stalled` (kstatus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The topic's name in Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Partitions Kafka reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replication factor Kafka reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// Current values of the declared configs, as Kafka reports them.
    #[serde(default, skip_serializing_if = "Properties::is_empty")]
    pub configs: Properties,
    /// Declared settings Kafka disagrees with. With `driftPolicy: Enforce`
    /// this is empty once the operator has put them back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
}

crate::common::impl_has_conditions!(Topic);

#[cfg(test)]
mod tests {
    use kube::core::cel::validate_cel_update;
    use serde_json::json;

    use super::*;

    /// CEL rules of the spec as the apiserver runs them on update, checked here
    /// without an apiserver (the e2e tests check the real one).
    fn update(old: serde_json::Value, new: serde_json::Value) -> Result<(), String> {
        let old = Topic::new("t", serde_json::from_value(old).unwrap());
        let new = Topic::new("t", serde_json::from_value(new).unwrap());
        validate_cel_update(&new, &old).map_err(|e| e.to_string())
    }

    #[test]
    fn partitions_may_grow_but_not_shrink() {
        assert!(update(json!({"partitions": 3}), json!({"partitions": 6})).is_ok());
        let error = update(json!({"partitions": 3}), json!({"partitions": 2})).unwrap_err();
        assert!(error.contains("spec.partitions cannot decrease"), "{error}");
    }

    #[test]
    fn replication_factor_and_topic_name_are_immutable() {
        let error = update(
            json!({"partitions": 1, "replicationFactor": 1}),
            json!({"partitions": 1, "replicationFactor": 3}),
        )
        .unwrap_err();
        assert!(
            error.contains("spec.replicationFactor cannot be changed"),
            "{error}"
        );
        let error = update(
            json!({"partitions": 1, "topicName": "a"}),
            json!({"partitions": 1, "topicName": "b"}),
        )
        .unwrap_err();
        assert!(error.contains("spec.topicName is immutable"), "{error}");
    }

    #[test]
    fn kafka_name_defaults_to_metadata_name() {
        let topic = Topic::new(
            "orders",
            TopicSpec {
                partitions: 1,
                ..TopicSpec::default()
            },
        );
        assert_eq!(topic.kafka_name(), Some("orders"));
        let renamed = Topic::new(
            "orders",
            TopicSpec {
                partitions: 1,
                topic_name: Some("shop.orders".into()),
                ..TopicSpec::default()
            },
        );
        assert_eq!(renamed.kafka_name(), Some("shop.orders"));
    }
}
