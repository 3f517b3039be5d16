//! Topic controller on the real control plane, Kafka and registry: apply YAML,
//! then assert on Kafka's state (read with the Admin API and changed behind the
//! operator's back with Kafka's own `kafka-configs` tool) and on status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{CONVERGE, Harness, condition, kafka_tool};
use tributary_api::{KafkaCluster, Topic};
use tributary_kafka::{KafkaAdmin, KafkaConnection, ObservedTopic};
use tributary_testkit::{eventually, unique_name};

fn admin(harness: &Harness) -> KafkaAdmin {
    KafkaAdmin::new(
        &KafkaConnection::plaintext(&harness.endpoints.kafka_bootstrap),
        Duration::from_secs(10),
    )
    .unwrap()
}

/// Removes a Kafka topic a test left behind on purpose (Retain) or created.
async fn drop_kafka_topic(name: &str) {
    let bootstrap = tributary_testkit::Endpoints::from_env().kafka_bootstrap;
    let admin = KafkaAdmin::new(&KafkaConnection::plaintext(&bootstrap), Duration::from_secs(10)).unwrap();
    admin.delete_topic(name).await.unwrap();
}

async fn kafka_topic(harness: &Harness, name: &str) -> Option<ObservedTopic> {
    admin(harness).describe_topic(name).await.unwrap()
}

fn topic_yaml(name: &str, kafka_name: &str, extra: &str) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: {name}\nspec:\n  topicName: {kafka_name}\n{extra}"
    )
}

async fn wait_ready(harness: &Harness, name: &str) -> Topic {
    harness.wait_ready::<Topic>(name).await
}

fn alter_config(bootstrap: &str, topic: &str, config: &str) {
    kafka_tool(
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            bootstrap,
            "--entity-type",
            "topics",
            "--entity-name",
            topic,
            "--alter",
            "--add-config",
            config,
        ],
    );
}

#[tokio::test]
async fn creates_grows_and_reconfigures_a_topic() {
    let mut harness = Harness::new("e2e-topic-create").await;
    harness.start_operator();
    let kafka_name = unique_name("orders");
    harness
        .apply(&topic_yaml("orders", &kafka_name, "  partitions: 3\n  replicationFactor: 1\n  configs:\n    retention.ms: \"3600000\"\n    cleanup.policy: delete\n"))
        .await
        .unwrap();

    let topic = wait_ready(&harness, "orders").await;
    let status = topic.status.unwrap();
    assert_eq!(status.partitions, Some(3));
    assert_eq!(status.replication_factor, Some(1));
    assert_eq!(status.topic_name.as_deref(), Some(kafka_name.as_str()));
    assert_eq!(
        status.configs.get("retention.ms").map(String::as_str),
        Some("3600000")
    );
    assert!(status.drift.is_empty());
    let (_, reason, _) = condition(Some(&status.conditions), "Ready").unwrap();
    assert_eq!(reason, "TopicReady");
    let observed = kafka_topic(&harness, &kafka_name).await.unwrap();
    assert_eq!(observed.partitions, 3);
    assert_eq!(
        observed.overrides.get("retention.ms").map(String::as_str),
        Some("3600000")
    );

    // Grow partitions, change one config and drop another.
    harness
        .apply(&topic_yaml(
            "orders",
            &kafka_name,
            "  partitions: 5\n  replicationFactor: 1\n  configs:\n    retention.ms: \"7200000\"\n",
        ))
        .await
        .unwrap();
    let topic = wait_ready(&harness, "orders").await;
    assert_eq!(topic.status.as_ref().unwrap().partitions, Some(5));
    let observed = kafka_topic(&harness, &kafka_name).await.unwrap();
    assert_eq!(observed.partitions, 5);
    assert_eq!(
        observed.overrides.get("retention.ms").map(String::as_str),
        Some("7200000")
    );
    assert!(
        !observed.overrides.contains_key("cleanup.policy"),
        "{:?}",
        observed.overrides
    );
    let events = harness.event_reasons("orders").await;
    assert!(events.contains(&"TopicCreated".to_owned()), "{events:?}");
    assert!(events.contains(&"PartitionsIncreased".to_owned()), "{events:?}");

    harness.cleanup().await;
    drop_kafka_topic(&kafka_name).await;
}

#[tokio::test]
async fn out_of_band_changes_are_reverted_or_reported() {
    let mut harness = Harness::new("e2e-topic-drift").await;
    harness.start_operator();
    let enforced = unique_name("enforced");
    let reported = unique_name("reported");
    harness
        .apply(&topic_yaml(
            "enforced",
            &enforced,
            "  partitions: 1\n  configs:\n    retention.ms: \"3600000\"\n",
        ))
        .await
        .unwrap();
    harness
        .apply(&topic_yaml(
            "reported",
            &reported,
            "  partitions: 1\n  driftPolicy: Report\n  configs:\n    retention.ms: \"3600000\"\n",
        ))
        .await
        .unwrap();
    wait_ready(&harness, "enforced").await;
    wait_ready(&harness, "reported").await;

    // An administrator changes both topics with Kafka's own tool.
    let bootstrap = harness.endpoints.kafka_bootstrap.clone();
    alter_config(&bootstrap, &enforced, "retention.ms=1234");
    alter_config(&bootstrap, &reported, "retention.ms=1234");

    // Enforce: put back.
    eventually("enforced topic reverted", CONVERGE, || async {
        let observed = kafka_topic(&harness, &enforced).await.unwrap();
        Ok((observed.overrides.get("retention.ms").map(String::as_str) == Some("3600000")).then_some(()))
    })
    .await
    .unwrap();
    eventually("DriftReverted event", CONVERGE, || async {
        Ok(harness
            .event_reasons("enforced")
            .await
            .contains(&"DriftReverted".to_owned())
            .then_some(()))
    })
    .await
    .unwrap();

    // Report: listed in status, Kafka untouched.
    let topic = harness
        .wait_for::<Topic>("reported", "drift reported", |t| {
            t.status.as_ref().is_some_and(|s| !s.drift.is_empty())
        })
        .await;
    let status = topic.status.unwrap();
    assert_eq!(status.drift.len(), 1, "{:?}", status.drift);
    assert_eq!(status.drift[0].field, "configs.retention.ms");
    assert_eq!(status.drift[0].desired, "3600000");
    assert_eq!(status.drift[0].observed, "1234");
    let (ready, reason, message) = condition(Some(&status.conditions), "Ready").unwrap();
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "DriftReported"));
    assert!(message.contains("configs.retention.ms"), "{message}");
    tokio::time::sleep(Duration::from_secs(5)).await; // more than two resyncs
    let observed = kafka_topic(&harness, &reported).await.unwrap();
    assert_eq!(
        observed.overrides.get("retention.ms").map(String::as_str),
        Some("1234")
    );

    harness.cleanup().await;
    drop_kafka_topic(&enforced).await;
    drop_kafka_topic(&reported).await;
}

#[tokio::test]
async fn deletion_honours_the_deletion_policy() {
    let mut harness = Harness::new("e2e-topic-delete").await;
    harness.start_operator();
    let deleted = unique_name("deleted");
    let retained = unique_name("retained");
    harness
        .apply(&topic_yaml(
            "deleted",
            &deleted,
            "  partitions: 1\n  deletionPolicy: Delete\n",
        ))
        .await
        .unwrap();
    harness
        .apply(&topic_yaml("retained", &retained, "  partitions: 1\n"))
        .await
        .unwrap();
    wait_ready(&harness, "deleted").await;
    wait_ready(&harness, "retained").await;

    let topics = harness.api::<Topic>();
    topics.delete("deleted", &DeleteParams::default()).await.unwrap();
    topics.delete("retained", &DeleteParams::default()).await.unwrap();
    for name in ["deleted", "retained"] {
        eventually("Topic resource gone", CONVERGE, || async {
            Ok(topics.get_opt(name).await?.is_none().then_some(()))
        })
        .await
        .unwrap();
    }
    eventually("Kafka topic deleted", CONVERGE, || async {
        Ok(kafka_topic(&harness, &deleted).await.is_none().then_some(()))
    })
    .await
    .unwrap();
    assert!(
        kafka_topic(&harness, &retained).await.is_some(),
        "Retain must keep the topic"
    );

    harness.cleanup().await;
    drop_kafka_topic(&retained).await;
}

#[tokio::test]
async fn an_existing_topic_is_adopted_without_data_loss() {
    let mut harness = Harness::new("e2e-topic-adopt").await;
    let name = unique_name("legacy");
    admin(&harness)
        .create_topic(&name, 2, Some(1), &std::collections::BTreeMap::default())
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &harness.endpoints.kafka_bootstrap)
        .create()
        .unwrap();
    for i in 0..10 {
        let value = format!("record-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(&name).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    harness.start_operator();
    harness
        .apply(&topic_yaml(
            "legacy",
            &name,
            "  partitions: 4\n  configs:\n    retention.ms: \"86400000\"\n",
        ))
        .await
        .unwrap();
    wait_ready(&harness, "legacy").await;
    let observed = kafka_topic(&harness, &name).await.unwrap();
    assert_eq!(observed.partitions, 4);

    // Every record written before adoption is still there.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &harness.endpoints.kafka_bootstrap)
        .set("group.id", unique_name("adopt-check"))
        .create()
        .unwrap();
    let mut total = 0;
    for partition in 0..4 {
        let (low, high) = consumer
            .fetch_watermarks(&name, partition, Duration::from_secs(10))
            .unwrap();
        total += high - low;
    }
    assert_eq!(total, 10);

    harness.cleanup().await;
    drop_kafka_topic(&name).await;
}

#[tokio::test]
async fn a_second_topic_for_the_same_kafka_topic_is_stalled() {
    let mut harness = Harness::new("e2e-topic-conflict").await;
    harness.start_operator();
    let name = unique_name("shared");
    harness
        .apply(&topic_yaml("first", &name, "  partitions: 1\n"))
        .await
        .unwrap();
    wait_ready(&harness, "first").await;
    harness
        .apply(&topic_yaml("second", &name, "  partitions: 3\n"))
        .await
        .unwrap();
    let second = harness
        .wait_for::<Topic>("second", "Stalled", |t| {
            condition(t.status.as_ref().map(|s| s.conditions.as_slice()), "Stalled")
                .is_some_and(|(s, _, _)| s == "True")
        })
        .await;
    let (_, reason, message) = condition(Some(&second.status.unwrap().conditions), "Stalled").unwrap();
    assert_eq!(reason, "TopicNameConflict");
    assert!(
        message.contains(&format!("{}/first", harness.namespace)),
        "{message}"
    );
    // The first Topic's declaration still rules Kafka.
    assert_eq!(kafka_topic(&harness, &name).await.unwrap().partitions, 1);

    harness.cleanup().await;
    drop_kafka_topic(&name).await;
}

#[tokio::test]
async fn an_unreachable_cluster_is_reported_not_ready() {
    let mut harness = Harness::new("e2e-topic-unreachable").await;
    harness
        .apply("apiVersion: tributary.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: down\nspec:\n  bootstrapServers: [\"127.0.0.1:1\"]\n")
        .await
        .unwrap();
    harness.start_operator();
    harness
        .apply("apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: orphan\nspec:\n  clusterRef: {name: down}\n  partitions: 1\n")
        .await
        .unwrap();
    let topic = harness
        .wait_for::<Topic>("orphan", "Reconciling with the broker error", |t| {
            condition(t.status.as_ref().map(|s| s.conditions.as_slice()), "Reconciling")
                .is_some_and(|(s, _, _)| s == "True")
        })
        .await;
    let conditions = topic.status.unwrap().conditions;
    let (ready, reason, message) = condition(Some(&conditions), "Ready").unwrap();
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "KafkaUnreachable"));
    assert!(
        message.contains("127.0.0.1:1") || message.to_lowercase().contains("connect"),
        "{message}"
    );

    let down = harness
        .wait_for::<KafkaCluster>("down", "not ready", |c| {
            condition(c.status.as_ref().map(|s| s.conditions.as_slice()), "Ready")
                .is_some_and(|(s, _, _)| s == "False")
        })
        .await;
    let (_, reason, _) = condition(down.status.as_ref().map(|s| s.conditions.as_slice()), "Ready").unwrap();
    assert_eq!(reason, "KafkaUnreachable");

    // The healthy cluster reports its broker and registry.
    let main = harness
        .wait_for::<KafkaCluster>("main", "ready", |c| {
            condition(c.status.as_ref().map(|s| s.conditions.as_slice()), "Ready")
                .is_some_and(|(s, _, _)| s == "True")
        })
        .await;
    let status = main.status.unwrap();
    assert_eq!(status.brokers, Some(1));
    assert_eq!(status.registry_reachable, Some(true));
    assert!(status.cluster_id.is_some());

    harness.cleanup().await;
}

#[tokio::test]
async fn invalid_changes_are_rejected_by_the_apiserver_with_the_cel_message() {
    let harness = Harness::new("e2e-topic-cel").await;
    harness
        .apply(&topic_yaml(
            "orders",
            "orders",
            "  partitions: 3\n  replicationFactor: 1\n",
        ))
        .await
        .unwrap();

    let error = harness
        .apply(&topic_yaml(
            "orders",
            "orders",
            "  partitions: 2\n  replicationFactor: 1\n",
        ))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("spec.partitions cannot decrease: Kafka cannot remove partitions"),
        "{error}"
    );
    let error = harness
        .apply(&topic_yaml(
            "orders",
            "orders",
            "  partitions: 3\n  replicationFactor: 3\n",
        ))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("spec.replicationFactor cannot be changed (reassigning replicas is not supported yet)"),
        "{error}"
    );
    let error = harness
        .apply(&topic_yaml(
            "orders",
            "renamed",
            "  partitions: 3\n  replicationFactor: 1\n",
        ))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("spec.topicName is immutable: create a new Topic instead"),
        "{error}"
    );
    let error = harness
        .apply(&topic_yaml("bad-name", "no/slashes", "  partitions: 1\n"))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("spec.topicName must be 1-249 characters"),
        "{error}"
    );
    let error = harness
        .apply("apiVersion: tributary.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: leaky\nspec:\n  bootstrapServers: [\"k:9092\"]\n  clientProperties:\n    sasl.password: hunter2\n")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("clientProperties must not carry credentials"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("hunter2") || error.to_string().contains("sasl.password"),
        "{error}"
    );

    harness.cleanup().await;
}

#[tokio::test]
async fn a_restarted_operator_converges() {
    let mut harness = Harness::new("e2e-topic-restart").await;
    harness.start_operator();
    let name = unique_name("restart");
    harness
        .apply(&topic_yaml("restart", &name, "  partitions: 1\n"))
        .await
        .unwrap();
    wait_ready(&harness, "restart").await;

    // Operator down; the spec changes meanwhile; operator back.
    harness.stop_operator().await;
    let topics = harness.api::<Topic>();
    let patch = serde_json::json!({"spec": {"partitions": 3, "configs": {"retention.ms": "600000"}}});
    topics
        .patch("restart", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        kafka_topic(&harness, &name).await.unwrap().partitions,
        1,
        "nothing acts while the operator is down"
    );
    harness.start_operator();

    let topic = wait_ready(&harness, "restart").await;
    assert_eq!(topic.status.unwrap().partitions, Some(3));
    let observed = kafka_topic(&harness, &name).await.unwrap();
    assert_eq!(observed.partitions, 3);
    assert_eq!(
        observed.overrides.get("retention.ms").map(String::as_str),
        Some("600000")
    );

    harness.cleanup().await;
    drop_kafka_topic(&name).await;
}
