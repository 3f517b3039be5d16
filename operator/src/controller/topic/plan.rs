//! Pure planning for a Topic: compares the declared topic with what Kafka
//! reports and decides what to do. No I/O, so every case is a unit test.
//!
//! Drift is any declared setting Kafka disagrees with: fewer partitions, a
//! different replication factor, or topic-level config overrides that differ
//! from `spec.configs` (which is the complete set of overrides: an override
//! set with Kafka's tools on a key the spec does not list is drift too).

use std::collections::{BTreeMap, BTreeSet};

use tributary_api::DriftPolicy;
use tributary_api::topic::Drift;
use tributary_kafka::ObservedTopic;

/// The topic as declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTopic {
    /// Name in Kafka.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor; `None` = broker default.
    pub replication_factor: Option<i32>,
    /// The complete set of topic-level config overrides.
    pub configs: BTreeMap<String, String>,
}

/// One change to make in Kafka.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicAction {
    /// Create the topic as declared.
    Create,
    /// Grow to this many partitions.
    CreatePartitions(i32),
    /// Make the declared configs the topic's overrides.
    SetOverrides,
}

/// Why the declared topic cannot be reached by the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// Kafka has more partitions than declared; partitions cannot be removed.
    PartitionsBelowExisting {
        /// Declared.
        desired: i32,
        /// In Kafka.
        observed: i32,
    },
    /// Kafka's replication factor differs; changing it is not supported yet.
    ReplicationFactorMismatch {
        /// Declared.
        desired: i32,
        /// In Kafka.
        observed: i32,
    },
}

impl Blocker {
    /// Machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Blocker::PartitionsBelowExisting { .. } => "PartitionsBelowExisting",
            Blocker::ReplicationFactorMismatch { .. } => "ReplicationFactorMismatch",
        }
    }

    /// Message naming the field.
    pub fn message(&self, topic: &str) -> String {
        match self {
            Blocker::PartitionsBelowExisting { desired, observed } => format!(
                "spec.partitions is {desired} but topic {topic} already has {observed} partitions; \
                 Kafka cannot remove partitions: set spec.partitions to at least {observed}"
            ),
            Blocker::ReplicationFactorMismatch { desired, observed } => format!(
                "spec.replicationFactor is {desired} but topic {topic} has replication factor {observed}; \
                 changing it is not supported yet: set spec.replicationFactor to {observed} or remove it"
            ),
        }
    }
}

/// The outcome of planning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicPlan {
    /// Changes to make, in order.
    pub actions: Vec<TopicAction>,
    /// Declared settings Kafka disagrees with, before the actions run.
    pub drift: Vec<Drift>,
    /// Set when the declared state cannot be reached; no actions then.
    pub blocker: Option<Blocker>,
    /// The topic existed before (status said so) and is gone now.
    pub missing_after_existing: bool,
}

/// Inputs besides desired and observed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// Enforce or Report.
    pub drift_policy: DriftPolicy,
    /// The spec changed since the last reconcile (generation != observedGeneration):
    /// in Report mode the user's own changes are still applied.
    pub spec_changed: bool,
    /// Status shows the topic existed in an earlier reconcile.
    pub existed_before: bool,
}

/// Decides what to do about one topic.
pub fn plan(desired: &DesiredTopic, observed: Option<&ObservedTopic>, options: PlanOptions) -> TopicPlan {
    let apply = options.drift_policy == DriftPolicy::Enforce || options.spec_changed;
    let Some(observed) = observed else {
        let missing_after_existing = options.existed_before;
        let mut result = TopicPlan {
            missing_after_existing,
            ..TopicPlan::default()
        };
        if missing_after_existing {
            result.drift.push(Drift {
                field: "topic".to_owned(),
                desired: "present".to_owned(),
                observed: "absent".to_owned(),
            });
        }
        // A topic that never existed is created in either mode; one deleted
        // behind our back is recreated only under Enforce.
        if !missing_after_existing || apply {
            result.actions.push(TopicAction::Create);
        }
        return result;
    };

    let mut result = TopicPlan::default();
    if observed.partitions > desired.partitions {
        result.blocker = Some(Blocker::PartitionsBelowExisting {
            desired: desired.partitions,
            observed: observed.partitions,
        });
    }
    if let Some(rf) = desired.replication_factor
        && rf != observed.replication_factor
    {
        result.drift.push(Drift {
            field: "replicationFactor".to_owned(),
            desired: rf.to_string(),
            observed: observed.replication_factor.to_string(),
        });
        result.blocker.get_or_insert(Blocker::ReplicationFactorMismatch {
            desired: rf,
            observed: observed.replication_factor,
        });
    }
    if observed.partitions < desired.partitions {
        result.drift.push(Drift {
            field: "partitions".to_owned(),
            desired: desired.partitions.to_string(),
            observed: observed.partitions.to_string(),
        });
    }
    let config_drift = config_drift(&desired.configs, observed);
    let configs_differ = !config_drift.is_empty();
    result.drift.extend(config_drift);

    if result.blocker.is_some() || !apply {
        return result;
    }
    if observed.partitions < desired.partitions {
        result
            .actions
            .push(TopicAction::CreatePartitions(desired.partitions));
    }
    if configs_differ {
        result.actions.push(TopicAction::SetOverrides);
    }
    result
}

/// Config keys whose override differs from the declared value.
fn config_drift(desired: &BTreeMap<String, String>, observed: &ObservedTopic) -> Vec<Drift> {
    let keys: BTreeSet<&String> = desired.keys().chain(observed.overrides.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let want = desired.get(key);
            let have = observed.overrides.get(key);
            (want != have).then(|| Drift {
                field: format!("configs.{key}"),
                desired: want.cloned().unwrap_or_else(|| "<default>".to_owned()),
                observed: have.cloned().unwrap_or_else(|| match observed.configs.get(key) {
                    Some(default) => format!("{default} (default)"),
                    None => "<default>".to_owned(),
                }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(partitions: i32, configs: &[(&str, &str)]) -> DesiredTopic {
        DesiredTopic {
            name: "orders".into(),
            partitions,
            replication_factor: Some(1),
            configs: configs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn observed(partitions: i32, overrides: &[(&str, &str)]) -> ObservedTopic {
        let overrides: BTreeMap<String, String> = overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut configs = overrides.clone();
        configs
            .entry("retention.ms".into())
            .or_insert_with(|| "604800000".into());
        ObservedTopic {
            name: "orders".into(),
            partitions,
            replication_factor: 1,
            overrides,
            configs,
        }
    }

    const ENFORCE: PlanOptions = PlanOptions {
        drift_policy: DriftPolicy::Enforce,
        spec_changed: false,
        existed_before: false,
    };
    const REPORT: PlanOptions = PlanOptions {
        drift_policy: DriftPolicy::Report,
        spec_changed: false,
        existed_before: true,
    };

    #[test]
    fn missing_topic_is_created() {
        let plan = plan(&desired(3, &[]), None, ENFORCE);
        assert_eq!(plan.actions, vec![TopicAction::Create]);
        assert!(plan.drift.is_empty());
    }

    #[test]
    fn in_sync_topic_needs_nothing() {
        let plan = plan(
            &desired(3, &[("retention.ms", "1000")]),
            Some(&observed(3, &[("retention.ms", "1000")])),
            ENFORCE,
        );
        assert_eq!(plan, TopicPlan::default());
    }

    #[test]
    fn partitions_grow_and_configs_are_set_together() {
        let plan = plan(
            &desired(6, &[("retention.ms", "1000")]),
            Some(&observed(3, &[])),
            ENFORCE,
        );
        assert_eq!(
            plan.actions,
            vec![TopicAction::CreatePartitions(6), TopicAction::SetOverrides]
        );
        assert_eq!(plan.drift.len(), 2);
        assert_eq!(
            plan.drift[1],
            Drift {
                field: "configs.retention.ms".into(),
                desired: "1000".into(),
                observed: "604800000 (default)".into()
            }
        );
    }

    #[test]
    fn out_of_band_override_is_reverted_under_enforce() {
        let plan = plan(
            &desired(3, &[]),
            Some(&observed(3, &[("segment.bytes", "1048576")])),
            ENFORCE,
        );
        assert_eq!(plan.actions, vec![TopicAction::SetOverrides]);
        assert_eq!(
            plan.drift,
            vec![Drift {
                field: "configs.segment.bytes".into(),
                desired: "<default>".into(),
                observed: "1048576".into()
            }]
        );
    }

    #[test]
    fn report_lists_drift_and_touches_nothing() {
        let plan = plan(
            &desired(3, &[("retention.ms", "1000")]),
            Some(&observed(3, &[("retention.ms", "5")])),
            REPORT,
        );
        assert!(plan.actions.is_empty());
        assert_eq!(plan.drift.len(), 1);
    }

    #[test]
    fn report_still_applies_the_users_own_spec_change() {
        let options = PlanOptions {
            spec_changed: true,
            ..REPORT
        };
        let plan = plan(&desired(4, &[]), Some(&observed(3, &[])), options);
        assert_eq!(plan.actions, vec![TopicAction::CreatePartitions(4)]);
    }

    #[test]
    fn shrinking_is_blocked_with_a_message_naming_the_field() {
        let plan = plan(&desired(2, &[]), Some(&observed(12, &[])), ENFORCE);
        assert!(plan.actions.is_empty());
        let blocker = plan.blocker.unwrap();
        assert_eq!(blocker.reason(), "PartitionsBelowExisting");
        assert!(
            blocker
                .message("orders")
                .starts_with("spec.partitions is 2 but topic orders already has 12")
        );
    }

    #[test]
    fn replication_factor_mismatch_is_blocked_and_reported() {
        let mut want = desired(3, &[]);
        want.replication_factor = Some(3);
        let plan = plan(&want, Some(&observed(3, &[])), ENFORCE);
        assert!(plan.actions.is_empty());
        assert_eq!(plan.blocker.unwrap().reason(), "ReplicationFactorMismatch");
        assert_eq!(plan.drift[0].field, "replicationFactor");
    }

    #[test]
    fn deleted_topic_is_recreated_only_under_enforce() {
        let enforce = plan(
            &desired(3, &[]),
            None,
            PlanOptions {
                existed_before: true,
                ..ENFORCE
            },
        );
        assert_eq!(enforce.actions, vec![TopicAction::Create]);
        assert!(enforce.missing_after_existing);

        let report = plan(&desired(3, &[]), None, REPORT);
        assert!(report.actions.is_empty());
        assert_eq!(report.drift[0].field, "topic");
    }
}
