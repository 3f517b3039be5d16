//! Building blocks shared by every Tributary resource: references to other
//! objects, policies, and the status shape (kstatus conditions).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Names the `KafkaCluster` (in the same namespace) a resource belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Name of a `KafkaCluster` in this resource's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Points at one key of a Secret in the resource's namespace. Secret values
/// are only ever read from Secrets; they never appear in specs, ConfigMaps,
/// status, Events or logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

impl SecretKeyRef {
    /// The environment variable a worker reads this value from:
    /// `TRIBUTARY_SECRET_<NAME>_<KEY>`, upper-cased, every character other
    /// than a letter or digit replaced by `_`. The operator sets it from the
    /// Secret (`valueFrom.secretKeyRef`); in standalone mode the user does.
    pub fn env_var(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!("TRIBUTARY_SECRET_{}_{}", clean(&self.name), clean(&self.key))
    }
}

/// What happens to the Kafka-side object when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the topic or subject together with the resource.
    Delete,
    /// Leave the topic or subject in place (the default: deleting a manifest,
    /// a namespace or an Argo CD application never deletes data).
    #[default]
    Retain,
}

/// What to do when the Kafka-side object was changed outside Tributary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DriftPolicy {
    /// Put the declared state back (the default).
    #[default]
    Enforce,
    /// Leave Kafka alone and list the differences in `status.drift`.
    Report,
}

/// Condition types every Tributary resource reports (kstatus-compatible, so
/// Argo CD, Flux and `kubectl wait` understand them).
pub mod condition_type {
    /// The declared state is in effect.
    pub const READY: &str = "Ready";
    /// The operator is working towards the declared state.
    pub const RECONCILING: &str = "Reconciling";
    /// The operator cannot make progress until the spec (or something it
    /// references) changes.
    pub const STALLED: &str = "Stalled";
}

/// The kstatus view of a resource, from which its three conditions follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Everything declared is in effect.
    Ready {
        /// Machine-readable reason, e.g. `TopicReady`.
        reason: String,
        /// Human-readable summary.
        message: String,
    },
    /// Work is in progress or a transient failure is being retried.
    Progressing {
        /// Machine-readable reason, e.g. `ClusterUnreachable`.
        reason: String,
        /// Human-readable detail, e.g. the broker's error.
        message: String,
    },
    /// The spec cannot be satisfied as written; waiting for a change.
    Stalled {
        /// Machine-readable reason, e.g. `TopicNameConflict`.
        reason: String,
        /// Human-readable detail naming the offending field.
        message: String,
    },
}

impl Health {
    /// The three conditions this health implies, merged into `previous` so an
    /// unchanged condition keeps its `lastTransitionTime` (no status churn).
    pub fn conditions(&self, previous: &[Condition], generation: Option<i64>, now: &Time) -> Vec<Condition> {
        let (ready, reconciling, stalled, reason, message) = match self {
            Health::Ready { reason, message } => ("True", "False", "False", reason, message),
            Health::Progressing { reason, message } => ("False", "True", "False", reason, message),
            Health::Stalled { reason, message } => ("False", "False", "True", reason, message),
        };
        [
            (condition_type::READY, ready),
            (condition_type::RECONCILING, reconciling),
            (condition_type::STALLED, stalled),
        ]
        .into_iter()
        .map(|(type_, status)| {
            let next = Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.clone(),
                message: if status == "True" || type_ == condition_type::READY {
                    message.clone()
                } else {
                    String::new()
                },
                observed_generation: generation,
                last_transition_time: now.clone(),
            };
            match previous.iter().find(|c| c.type_ == type_) {
                Some(old) if old.status == next.status => Condition {
                    last_transition_time: old.last_transition_time.clone(),
                    ..next
                },
                _ => next,
            }
        })
        .collect()
    }
}

/// A resource with the shared status shape: kstatus conditions and the
/// generation they describe.
pub trait HasConditions {
    /// The status conditions (empty before the first reconcile).
    fn conditions(&self) -> &[Condition];
    /// `status.observedGeneration`.
    fn observed_generation(&self) -> Option<i64>;
    /// `metadata.generation`.
    fn generation(&self) -> Option<i64>;

    /// Ready is True for the current generation: what `kubectl wait`,
    /// Argo CD and Flux look for.
    fn is_ready(&self) -> bool {
        self.observed_generation() == self.generation()
            && find_condition(self.conditions(), condition_type::READY).is_some_and(|c| c.status == "True")
    }
}

/// Implements [`HasConditions`] for a resource whose status has
/// `conditions` and `observed_generation`.
macro_rules! impl_has_conditions {
    ($kind:ty) => {
        impl $crate::common::HasConditions for $kind {
            fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
                self.status
                    .as_ref()
                    .map_or(&[], |s| s.conditions.as_slice())
            }
            fn observed_generation(&self) -> Option<i64> {
                self.status.as_ref().and_then(|s| s.observed_generation)
            }
            fn generation(&self) -> Option<i64> {
                self.metadata.generation
            }
        }
    };
}
pub(crate) use impl_has_conditions;

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Client properties that carry credentials: they must come from Secret
/// references, so they are refused in free-form property maps.
pub const SECRET_PROPERTY_MARKERS: &[&str] = &["password", "secret", "sasl.jaas", "ssl.key", "token"];

/// True when a property name looks like it carries a credential.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_PROPERTY_MARKERS.iter().any(|marker| key.contains(marker))
}

/// Free-form string properties (Kafka client or topic configs).
pub type Properties = BTreeMap<String, String>;

/// Schema of a [`Properties`] map, bounded so CEL rules over its keys stay
/// within the apiserver's cost budget.
pub fn properties_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 128,
        "additionalProperties": {"type": "string", "maxLength": 4096}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn ready_sets_three_kstatus_conditions() {
        let health = Health::Ready {
            reason: "TopicReady".into(),
            message: "topic orders exists".into(),
        };
        let conditions = health.conditions(&[], Some(3), &time(100));
        let ready = find_condition(&conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "TopicReady")
        );
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(
            find_condition(&conditions, "Reconciling").unwrap().status,
            "False"
        );
        assert_eq!(find_condition(&conditions, "Stalled").unwrap().status, "False");
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let first = Health::Progressing {
            reason: "Creating".into(),
            message: "creating".into(),
        }
        .conditions(&[], Some(1), &time(100));
        let second = Health::Progressing {
            reason: "ClusterUnreachable".into(),
            message: "timeout".into(),
        }
        .conditions(&first, Some(1), &time(200));
        let reconciling = find_condition(&second, "Reconciling").unwrap();
        assert_eq!(reconciling.last_transition_time, time(100));
        assert_eq!(reconciling.reason, "ClusterUnreachable");

        let third = Health::Stalled {
            reason: "Invalid".into(),
            message: "bad".into(),
        }
        .conditions(&second, Some(2), &time(300));
        assert_eq!(
            find_condition(&third, "Stalled").unwrap().last_transition_time,
            time(300)
        );
        assert_eq!(
            find_condition(&third, "Reconciling")
                .unwrap()
                .last_transition_time,
            time(300)
        );
        assert_eq!(
            find_condition(&third, "Ready").unwrap().last_transition_time,
            time(100)
        );
    }

    #[test]
    fn secret_env_var_is_a_valid_shell_name() {
        let reference = SecretKeyRef {
            name: "pg-credentials".into(),
            key: "password.txt".into(),
        };
        assert_eq!(
            reference.env_var(),
            "TRIBUTARY_SECRET_PG_CREDENTIALS_PASSWORD_TXT"
        );
    }

    #[test]
    fn credential_properties_are_recognised() {
        assert!(is_secret_property("sasl.password"));
        assert!(is_secret_property("ssl.key.password"));
        assert!(is_secret_property("SASL.JAAS.CONFIG"));
        assert!(!is_secret_property("compression.type"));
        assert!(!is_secret_property("client.id"));
    }
}
