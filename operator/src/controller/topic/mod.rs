//! The Topic controller: keeps a Kafka topic as its `Topic` declares.
//!
//! read (cluster, Secrets, the topic in Kafka) → validate (name conflicts) →
//! [`plan`] (pure) → act (Admin API) → status. Deletion goes through a
//! finalizer that honours `deletionPolicy`.

pub mod plan;

use std::sync::Arc;
use std::time::Instant;

use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tributary_api::topic::{Topic, TopicStatus};
use tributary_api::{DeletionPolicy, DriftPolicy, Health, KafkaCluster};
use tributary_kafka::{KafkaAdmin, ObservedTopic};

use self::plan::{DesiredTopic, PlanOptions, TopicAction};
use super::{Failure, ReconcileError, Shutdown, publish_event};
use crate::cluster::{self, ClusterError, SecretValues};
use crate::context::Context;

/// Finalizer that lets the operator honour `deletionPolicy`.
pub const FINALIZER: &str = "tributary.dev/topic";
const CONTROLLER: &str = "topic";

struct TopicContext {
    context: Context,
    topics: Store<Topic>,
}

/// Runs the Topic controller until `shutdown`.
pub async fn run(context: Context, shutdown: Shutdown) {
    let topics: Api<Topic> = context.watched_api();
    let clusters: Api<KafkaCluster> = context.watched_api();
    let controller = Controller::new(topics, watcher::Config::default());
    let store = controller.store();
    let mapper_store = store.clone();
    let reconciles = controller
        // A KafkaCluster appearing or changing re-checks the Topics that use it.
        .watches(clusters, watcher::Config::default(), move |cluster| {
            super::users_of(&mapper_store, &cluster, |t: &Topic| t.spec.cluster_ref.as_ref())
        })
        .with_config(super::runtime_config(&context))
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            error_policy,
            Arc::new(TopicContext {
                context,
                topics: store,
            }),
        );
    super::drain(CONTROLLER, reconciles).await;
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
fn error_policy(topic: Arc<Topic>, error: &ReconcileError, ctx: Arc<TopicContext>) -> Action {
    super::error_policy(&*topic, error, &ctx.context)
}

async fn reconcile(topic: Arc<Topic>, ctx: Arc<TopicContext>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let namespace = topic.namespace().unwrap_or_default();
    let api: Api<Topic> = Api::namespaced(ctx.context.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            FinalizerEvent::Apply(topic) => apply(&api, &topic, &ctx).await,
            FinalizerEvent::Cleanup(topic) => cleanup(&topic, &ctx).await,
        }
    })
    .await
    .map_err(super::from_finalizer);
    super::record(&ctx.context, CONTROLLER, &result, started);
    result
}

/// What one reconcile found and did, before it is written to status.
struct Outcome {
    health: Health,
    observed: Option<ObservedTopic>,
    drift: Vec<tributary_api::topic::Drift>,
}

async fn apply(api: &Api<Topic>, topic: &Topic, ctx: &TopicContext) -> Result<Action, ReconcileError> {
    let outcome = match sync(topic, ctx).await {
        Ok(outcome) => outcome,
        Err(failure) => Outcome {
            health: failure.health(),
            observed: None,
            drift: topic.status.as_ref().map(|s| s.drift.clone()).unwrap_or_default(),
        },
    };
    write_status(api, topic, &outcome).await?;
    super::next_action(&ctx.context, topic, &outcome.health)
}

/// Read → validate → plan → act. Returns what to report.
async fn sync(topic: &Topic, ctx: &TopicContext) -> Result<Outcome, Failure> {
    let name = topic.kafka_name().unwrap_or_default().to_owned();

    let (admin, observed) = read(topic, ctx, &name).await?;

    // plan
    let desired = DesiredTopic {
        name: name.clone(),
        partitions: topic.spec.partitions,
        replication_factor: topic.spec.replication_factor,
        configs: topic.spec.configs.clone(),
    };
    let options = plan_options(topic);
    let plan = plan::plan(&desired, observed.as_ref(), options);

    if let Some(outcome) = blocked(&plan, &name, observed.as_ref()) {
        return Ok(outcome);
    }

    // act
    for action in &plan.actions {
        act(&admin, &desired, action).await?;
        announce(ctx, topic, &desired, action, &plan, options).await;
    }
    let observed = if plan.actions.is_empty() {
        observed
    } else {
        admin.describe_topic(&name).await.map_err(Failure::from)?
    };
    let Some(now) = observed else {
        return Err(Failure::transient(
            "TopicNotVisible",
            format!("topic {name} was created but is not visible yet"),
        ));
    };

    // status: drift left after acting (empty under Enforce once applied)
    let remaining = plan::plan(
        &desired,
        Some(&now),
        PlanOptions {
            spec_changed: false,
            ..options
        },
    )
    .drift;
    let health = settled_health(&name, &now, &remaining);
    Ok(Outcome {
        health,
        observed: Some(now),
        drift: remaining,
    })
}

/// What the plan needs to know besides desired and observed state (pure).
///
/// The spec counts as changed only when status records an older generation.
/// Without a status (first reconcile, or a cached copy of the object that
/// predates the first status write) nothing says the user changed anything:
/// under `Report` an existing topic is then only reported, never modified.
/// (Treating a missing status as a change once let a stale cached object
/// revert an out-of-band change that `Report` had to leave alone.)
pub fn plan_options(topic: &Topic) -> PlanOptions {
    let status = topic.status.as_ref();
    PlanOptions {
        drift_policy: topic.spec.drift_policy,
        spec_changed: status
            .and_then(|s| s.observed_generation)
            .is_some_and(|observed| Some(observed) != topic.metadata.generation),
        existed_before: status.is_some_and(|s| s.partitions.is_some()),
    }
}

/// read (cluster, Secrets, the topic in Kafka) and validate (name conflicts).
async fn read(
    topic: &Topic,
    ctx: &TopicContext,
    name: &str,
) -> Result<(Arc<KafkaAdmin>, Option<ObservedTopic>), Failure> {
    let namespace = topic.namespace().unwrap_or_default();
    let cluster = cluster::resolve(&ctx.context.client, &namespace, topic.spec.cluster_ref.as_ref())
        .await
        .map_err(Failure::from)?;
    // One Topic per Kafka topic.
    if let Some(owner) = conflicting_owner(topic, &ctx.topics.state(), &cluster.name_any()) {
        return Err(Failure::stalled(
            "TopicNameConflict",
            format!(
                "Kafka topic {name} is already managed by Topic {owner}; \
                 delete one of them or set a different spec.topicName"
            ),
        ));
    }
    let secrets = SecretValues::read(&ctx.context.client, &cluster)
        .await
        .map_err(Failure::from)?;
    let admin = cluster::kafka_admin(
        &ctx.context.admins,
        &cluster,
        &secrets,
        ctx.context.settings.request_timeout,
    )
    .map_err(Failure::from)?;
    let observed = admin.describe_topic(name).await.map_err(Failure::from)?;
    Ok((admin, observed))
}

/// The Stalled outcome when the plan cannot proceed.
fn blocked(plan: &plan::TopicPlan, name: &str, observed: Option<&ObservedTopic>) -> Option<Outcome> {
    if let Some(blocker) = &plan.blocker {
        return Some(Outcome {
            health: Health::Stalled {
                reason: blocker.reason().to_owned(),
                message: blocker.message(name),
            },
            observed: observed.cloned(),
            drift: plan.drift.clone(),
        });
    }
    (plan.missing_after_existing && plan.actions.is_empty()).then(|| Outcome {
        health: Health::Stalled {
            reason: "TopicMissing".to_owned(),
            message: format!(
                "topic {name} was deleted outside Tributary; driftPolicy Report leaves it absent \
                 (set spec.driftPolicy to Enforce to recreate it)"
            ),
        },
        observed: None,
        drift: plan.drift.clone(),
    })
}

/// Health once the actions ran: Ready, noting drift left under Report.
fn settled_health(name: &str, now: &ObservedTopic, remaining: &[tributary_api::topic::Drift]) -> Health {
    if remaining.is_empty() {
        return Health::Ready {
            reason: "TopicReady".to_owned(),
            message: format!(
                "topic {name}: {} partitions, replication factor {}",
                now.partitions, now.replication_factor
            ),
        };
    }
    let fields: Vec<&str> = remaining.iter().map(|d| d.field.as_str()).collect();
    Health::Ready {
        reason: "DriftReported".to_owned(),
        message: format!(
            "topic {name} differs from the spec in {}; driftPolicy Report leaves Kafka unchanged (see status.drift)",
            fields.join(", ")
        ),
    }
}

async fn act(admin: &KafkaAdmin, desired: &DesiredTopic, action: &TopicAction) -> Result<(), Failure> {
    let result = match action {
        TopicAction::Create => {
            admin
                .create_topic(
                    &desired.name,
                    desired.partitions,
                    desired.replication_factor,
                    &desired.configs,
                )
                .await
        }
        TopicAction::CreatePartitions(total) => admin.create_partitions(&desired.name, *total).await,
        TopicAction::SetOverrides => admin.set_topic_overrides(&desired.name, &desired.configs).await,
    };
    result.map_err(Failure::from)
}

async fn announce(
    ctx: &TopicContext,
    topic: &Topic,
    desired: &DesiredTopic,
    action: &TopicAction,
    plan: &plan::TopicPlan,
    options: PlanOptions,
) {
    let name = &desired.name;
    let reverting = options.drift_policy == DriftPolicy::Enforce && !options.spec_changed;
    let (type_, reason, note) = match action {
        TopicAction::Create if plan.missing_after_existing => (
            EventType::Warning,
            "TopicRecreated",
            format!(
                "topic {name} was deleted outside Tributary and has been recreated (driftPolicy Enforce)"
            ),
        ),
        TopicAction::Create => (
            EventType::Normal,
            "TopicCreated",
            format!("created topic {name} with {} partitions", desired.partitions),
        ),
        TopicAction::CreatePartitions(total) => (
            EventType::Normal,
            "PartitionsIncreased",
            format!("topic {name} now has {total} partitions"),
        ),
        TopicAction::SetOverrides if reverting => {
            let fields: Vec<&str> = plan
                .drift
                .iter()
                .filter(|d| d.field.starts_with("configs."))
                .map(|d| d.field.as_str())
                .collect();
            (
                EventType::Warning,
                "DriftReverted",
                format!(
                    "reverted out-of-band changes to topic {name}: {}",
                    fields.join(", ")
                ),
            )
        }
        TopicAction::SetOverrides => (
            EventType::Normal,
            "ConfigsUpdated",
            format!("updated configs of topic {name}"),
        ),
    };
    publish_event(&ctx.context, topic, type_, reason, note).await;
}

async fn write_status(api: &Api<Topic>, topic: &Topic, outcome: &Outcome) -> Result<(), kube::Error> {
    let previous = topic.status.clone().unwrap_or_default();
    let mut status = TopicStatus {
        conditions: outcome.health.conditions(
            &previous.conditions,
            topic.metadata.generation,
            &crate::status::now(),
        ),
        observed_generation: topic.metadata.generation,
        drift: outcome.drift.clone(),
        ..previous.clone()
    };
    if let Some(observed) = &outcome.observed {
        status.topic_name = Some(observed.name.clone());
        status.partitions = Some(observed.partitions);
        status.replication_factor = Some(observed.replication_factor);
        // The declared keys and any override, with the values Kafka reports.
        status.configs = observed
            .configs
            .iter()
            .filter(|(k, _)| topic.spec.configs.contains_key(*k) || observed.overrides.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    crate::status::apply(api, topic, topic.status.as_ref(), &status).await
}

async fn cleanup(topic: &Topic, ctx: &TopicContext) -> Result<Action, ReconcileError> {
    let name = topic.kafka_name().unwrap_or_default().to_owned();
    if topic.spec.deletion_policy == DeletionPolicy::Retain {
        publish_event(
            &ctx.context,
            topic,
            EventType::Normal,
            "TopicRetained",
            format!("kept topic {name} (deletionPolicy Retain)"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let namespace = topic.namespace().unwrap_or_default();
    let cluster =
        match cluster::resolve(&ctx.context.client, &namespace, topic.spec.cluster_ref.as_ref()).await {
            Ok(cluster) => cluster,
            Err(ClusterError::NotFound { .. } | ClusterError::NoneInNamespace(_)) => {
                // Blocking deletion forever on a cluster that no longer exists
                // would wedge namespaces; say loudly that the topic was left.
                publish_event(
                    &ctx.context,
                    topic,
                    EventType::Warning,
                    "TopicNotDeleted",
                    format!("KafkaCluster is gone, so topic {name} could not be deleted"),
                )
                .await;
                return Ok(Action::await_change());
            }
            Err(error) => return Err(Failure::from(error).into()),
        };
    if let Some(owner) = conflicting_owner(topic, &ctx.topics.state(), &cluster.name_any()) {
        publish_event(
            &ctx.context,
            topic,
            EventType::Normal,
            "TopicRetained",
            format!("topic {name} belongs to Topic {owner}; not deleted"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let secrets = SecretValues::read(&ctx.context.client, &cluster)
        .await
        .map_err(|e| ReconcileError::from(Failure::from(e)))?;
    let admin = cluster::kafka_admin(
        &ctx.context.admins,
        &cluster,
        &secrets,
        ctx.context.settings.request_timeout,
    )
    .map_err(|e| ReconcileError::from(Failure::from(e)))?;
    admin
        .delete_topic(&name)
        .await
        .map_err(|e| ReconcileError::from(Failure::from(e)))?;
    publish_event(
        &ctx.context,
        topic,
        EventType::Normal,
        "TopicDeleted",
        format!("deleted topic {name} (deletionPolicy Delete)"),
    )
    .await;
    Ok(Action::await_change())
}

/// Another Topic that manages the same Kafka topic on the same cluster and
/// came first (older creation time, then name): `namespace/name` of it.
pub fn conflicting_owner(topic: &Topic, all: &[Arc<Topic>], cluster: &str) -> Option<String> {
    super::earlier_claimant(topic, all, |t: &Topic| {
        (
            t.namespace(),
            t.spec
                .cluster_ref
                .as_ref()
                .map_or(cluster, |r| r.name.as_str())
                .to_owned(),
            t.kafka_name().map(str::to_owned),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use tributary_api::topic::TopicSpec;

    fn topic(name: &str, uid: &str, created: i64, topic_name: Option<&str>) -> Arc<Topic> {
        let mut t = Topic::new(
            name,
            TopicSpec {
                partitions: 1,
                topic_name: topic_name.map(str::to_owned),
                ..TopicSpec::default()
            },
        );
        t.metadata.namespace = Some("team-a".into());
        t.metadata.uid = Some(uid.into());
        t.metadata.creation_timestamp =
            Some(Time(k8s_openapi::jiff::Timestamp::from_second(created).unwrap()));
        Arc::new(t)
    }

    #[test]
    fn the_older_topic_owns_the_kafka_topic() {
        let first = topic("orders", "1", 100, None);
        let second = topic("orders-copy", "2", 200, Some("orders"));
        let all = vec![first.clone(), second.clone()];
        assert_eq!(conflicting_owner(&first, &all, "main"), None);
        assert_eq!(
            conflicting_owner(&second, &all, "main").as_deref(),
            Some("team-a/orders")
        );
    }

    #[test]
    fn only_a_recorded_older_generation_counts_as_a_spec_change() {
        let mut reported = (*topic("t", "1", 100, None)).clone();
        reported.spec.drift_policy = DriftPolicy::Report;
        reported.metadata.generation = Some(2);
        assert!(
            !plan_options(&reported).spec_changed,
            "no status: nothing to compare"
        );
        reported.status = Some(TopicStatus {
            observed_generation: Some(1),
            ..TopicStatus::default()
        });
        assert!(plan_options(&reported).spec_changed);
        reported.status = Some(TopicStatus {
            observed_generation: Some(2),
            ..TopicStatus::default()
        });
        assert!(!plan_options(&reported).spec_changed);
    }

    #[test]
    fn different_kafka_names_do_not_conflict() {
        let a = topic("orders", "1", 100, None);
        let b = topic("payments", "2", 200, None);
        assert_eq!(conflicting_owner(&b, &[a, b.clone()], "main"), None);
    }
}
