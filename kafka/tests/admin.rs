//! `KafkaAdmin` against the local KRaft broker (`scripts/infra/kafka.sh`),
//! cross-checked with Kafka's own `kafka-configs` tool. These tests fail,
//! never skip, when the broker is down.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tributary_kafka::{AdminError, KafkaAdmin, KafkaConnection, ObservedTopic};
use tributary_testkit::{Endpoints, eventually, unique_name};

const TIMEOUT: Duration = Duration::from_secs(20);

fn admin() -> KafkaAdmin {
    let endpoints = Endpoints::from_env();
    KafkaAdmin::new(&KafkaConnection::plaintext(&endpoints.kafka_bootstrap), TIMEOUT).unwrap()
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

async fn describe(admin: &KafkaAdmin, topic: &str) -> ObservedTopic {
    admin
        .describe_topic(topic)
        .await
        .unwrap_or_else(|e| panic!("describe {topic}: {e}"))
        .unwrap_or_else(|| panic!("topic {topic} does not exist"))
}

/// Runs Kafka's `kafka.admin.ConfigCommand` (`kafka-configs`) on `topic`.
async fn kafka_configs(topic: &str, args: &[&str]) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let home = tokio::process::Command::new("bash")
        .arg(root.join("scripts/infra/kafka.sh"))
        .arg("home")
        .output()
        .await
        .unwrap();
    assert!(
        home.status.success(),
        "kafka.sh home: {}",
        String::from_utf8_lossy(&home.stderr)
    );
    let home = PathBuf::from(String::from_utf8(home.stdout).unwrap().trim());
    let endpoints = Endpoints::from_env();
    let output = tokio::process::Command::new(home.join("kafka-run-class"))
        .arg("kafka.admin.ConfigCommand")
        .args(["--bootstrap-server", &endpoints.kafka_bootstrap])
        .args(["--entity-type", "topics", "--entity-name", topic])
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "kafka-configs {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The dynamic topic configs `kafka-configs --describe` lists:
/// lines `  key=value sensitive=false synonyms={…}`.
async fn kafka_configs_overrides(topic: &str) -> BTreeMap<String, String> {
    let output = kafka_configs(topic, &["--describe"]).await;
    output
        .lines()
        .filter(|line| line.starts_with("  "))
        .filter_map(|line| line.trim().split(' ').next()?.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[tokio::test]
async fn describe_cluster_reports_the_local_broker() {
    let info = admin().describe_cluster().await.unwrap();
    assert_eq!(info.brokers, 1);
    let cluster_id = info.cluster_id.expect("KRaft clusters have an id");
    assert!(!cluster_id.is_empty());
}

#[tokio::test]
async fn describe_missing_topic_is_none() {
    let admin = admin();
    assert_eq!(admin.describe_topic(&unique_name("missing")).await.unwrap(), None);
}

#[tokio::test]
async fn create_with_configs_then_describe() {
    let admin = admin();
    let topic = unique_name("admin-create");
    let overrides = configs(&[("cleanup.policy", "compact"), ("retention.ms", "3600000")]);
    admin.create_topic(&topic, 3, None, &overrides).await.unwrap();

    let observed = describe(&admin, &topic).await;
    assert_eq!(observed.name, topic);
    assert_eq!(observed.partitions, 3);
    assert_eq!(
        observed.replication_factor, 1,
        "broker default.replication.factor"
    );
    assert_eq!(observed.overrides, overrides);
    assert_eq!(
        observed.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert_eq!(
        observed.configs.get("retention.ms").map(String::as_str),
        Some("3600000")
    );
    assert!(
        observed.configs.contains_key("segment.bytes") && !observed.overrides.contains_key("segment.bytes"),
        "configs hold defaults too: {:?}",
        observed.configs
    );

    // An explicit replication factor.
    let explicit = unique_name("admin-create-rf");
    admin
        .create_topic(&explicit, 2, Some(1), &BTreeMap::new())
        .await
        .unwrap();
    let observed = describe(&admin, &explicit).await;
    assert_eq!((observed.partitions, observed.replication_factor), (2, 1));
    assert!(observed.overrides.is_empty(), "{:?}", observed.overrides);

    admin.delete_topic(&topic).await.unwrap();
    admin.delete_topic(&explicit).await.unwrap();
}

#[tokio::test]
async fn impossible_replication_factor_is_refused() {
    let admin = admin();
    let topic = unique_name("admin-rf");
    let error = admin
        .create_topic(&topic, 1, Some(3), &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AdminError::Refused(m) if m.contains("InvalidReplicationFactor")),
        "{error}"
    );
    assert!(!error.is_transient());
}

#[tokio::test]
async fn create_partitions_grows_the_topic() {
    let admin = admin();
    let topic = unique_name("admin-grow");
    admin
        .create_topic(&topic, 1, None, &BTreeMap::new())
        .await
        .unwrap();

    admin.create_partitions(&topic, 4).await.unwrap();
    let observed = describe(&admin, &topic).await;
    assert_eq!(observed.partitions, 4);

    // Already there: nothing to do.
    admin.create_partitions(&topic, 4).await.unwrap();

    // Kafka cannot shrink a topic: a spec problem, not worth retrying.
    let error = admin.create_partitions(&topic, 2).await.unwrap_err();
    assert!(
        matches!(&error, AdminError::Refused(m) if m.contains("has 4 partitions")),
        "{error}"
    );
    assert!(!error.is_transient());

    let error = admin
        .create_partitions(&unique_name("admin-grow-missing"), 2)
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::TopicNotFound(_)), "{error}");

    admin.delete_topic(&topic).await.unwrap();
}

#[tokio::test]
async fn set_topic_overrides_replaces_the_whole_set() {
    let admin = admin();
    let topic = unique_name("admin-alter");
    admin
        .create_topic(
            &topic,
            1,
            None,
            &configs(&[("retention.ms", "3600000"), ("segment.ms", "7200000")]),
        )
        .await
        .unwrap();

    // Change retention.ms, add max.message.bytes, drop segment.ms.
    let wanted = configs(&[("max.message.bytes", "2000000"), ("retention.ms", "7200000")]);
    admin.set_topic_overrides(&topic, &wanted).await.unwrap();

    let observed = describe(&admin, &topic).await;
    assert_eq!(observed.overrides, wanted);
    assert_eq!(
        observed.configs.get("segment.ms").map(String::as_str),
        Some("604800000"),
        "segment.ms reverts to the default"
    );
    assert_eq!(
        kafka_configs_overrides(&topic).await,
        wanted,
        "as Kafka's own tool sees it"
    );

    // The empty set removes every override.
    admin.set_topic_overrides(&topic, &BTreeMap::new()).await.unwrap();
    assert!(describe(&admin, &topic).await.overrides.is_empty());

    admin.delete_topic(&topic).await.unwrap();
}

#[tokio::test]
async fn out_of_band_override_shows_in_overrides() {
    let admin = admin();
    let topic = unique_name("admin-drift");
    admin
        .create_topic(&topic, 1, None, &configs(&[("cleanup.policy", "delete")]))
        .await
        .unwrap();

    kafka_configs(&topic, &["--alter", "--add-config", "retention.ms=1234"]).await;

    let overrides = eventually(
        "kafka-configs change visible",
        Duration::from_secs(15),
        || async {
            let observed = admin.describe_topic(&topic).await?.expect("topic exists");
            Ok(observed
                .overrides
                .contains_key("retention.ms")
                .then_some(observed.overrides))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        overrides,
        configs(&[("cleanup.policy", "delete"), ("retention.ms", "1234")])
    );

    admin.delete_topic(&topic).await.unwrap();
}

#[tokio::test]
async fn invalid_config_value_is_refused_naming_the_config() {
    let admin = admin();
    let topic = unique_name("admin-invalid");

    let error = admin
        .create_topic(
            &topic,
            1,
            None,
            &configs(&[("cleanup.policy", "bogus"), ("retention.ms", "1000")]),
        )
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, AdminError::Refused(_)), "{message}");
    assert!(!error.is_transient());
    assert!(
        message.contains("cleanup.policy") && message.contains("bogus"),
        "{message}"
    );
    assert!(message.contains("InvalidConfig"), "{message}");
    assert!(
        !message.contains("retention.ms"),
        "only the culprit is named: {message}"
    );
    assert_eq!(
        admin.describe_topic(&topic).await.unwrap(),
        None,
        "nothing was created"
    );

    // The same through AlterConfigs, on an existing topic: refused, unchanged.
    let valid = configs(&[("retention.ms", "3600000")]);
    admin.create_topic(&topic, 1, None, &valid).await.unwrap();
    let started = Instant::now();
    let error = admin
        .set_topic_overrides(
            &topic,
            &configs(&[("cleanup.policy", "bogus"), ("retention.ms", "1000")]),
        )
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, AdminError::Refused(_)), "{message}");
    assert!(!error.is_transient());
    assert!(
        message.contains("cleanup.policy") && message.contains("bogus"),
        "{message}"
    );
    assert!(
        started.elapsed() < TIMEOUT / 2,
        "refused without waiting out the timeout"
    );
    assert_eq!(
        describe(&admin, &topic).await.overrides,
        valid,
        "AlterConfigs is all or nothing"
    );

    admin.delete_topic(&topic).await.unwrap();
}

#[tokio::test]
async fn set_overrides_of_missing_topic_is_not_found() {
    let admin = admin();
    let error = admin
        .set_topic_overrides(
            &unique_name("admin-alter-missing"),
            &configs(&[("retention.ms", "1000")]),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::TopicNotFound(_)), "{error}");
}

#[tokio::test]
async fn create_existing_topic_is_topic_exists() {
    let admin = admin();
    let topic = unique_name("admin-exists");
    admin
        .create_topic(&topic, 1, None, &BTreeMap::new())
        .await
        .unwrap();
    let error = admin
        .create_topic(&topic, 1, None, &BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(error, AdminError::TopicExists(topic.clone()));
    assert_eq!(error.to_string(), format!("topic {topic} already exists"));
    assert!(!error.is_transient());
    admin.delete_topic(&topic).await.unwrap();
}

#[tokio::test]
async fn delete_then_describe_is_none() {
    let admin = admin();
    let topic = unique_name("admin-delete");
    admin
        .create_topic(&topic, 2, None, &BTreeMap::new())
        .await
        .unwrap();
    admin.delete_topic(&topic).await.unwrap();
    eventually("deleted topic gone", Duration::from_secs(15), || async {
        Ok(admin.describe_topic(&topic).await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    // Deleting what does not exist is fine.
    admin.delete_topic(&topic).await.unwrap();
}

#[tokio::test]
async fn unreachable_brokers_fail_within_the_timeout() {
    let timeout = Duration::from_secs(3);
    let admin = KafkaAdmin::new(&KafkaConnection::plaintext("127.0.0.1:1"), timeout).unwrap();

    let started = Instant::now();
    let error = admin.describe_cluster().await.unwrap_err();
    let elapsed = started.elapsed();
    let message = error.to_string();
    assert!(matches!(error, AdminError::Unreachable(_)), "{message}");
    assert!(error.is_transient());
    assert!(
        message.contains("127.0.0.1:1"),
        "carries the broker error text: {message}"
    );
    assert!(elapsed < timeout + Duration::from_secs(1), "took {elapsed:?}");

    let started = Instant::now();
    let error = admin
        .create_topic("never", 1, None, &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::Unreachable(_)), "{error}");
    assert!(
        started.elapsed() < timeout + Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}
