//! Kafka smoke test: a produce/consume round trip through rdkafka, the client
//! the worker and operator use, against the local KRaft broker.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tributary_testkit::{Endpoints, unique_name};

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        // Fail within seconds when the broker is down, not after librdkafka's minutes.
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("message.timeout.ms", "15000");
    config
}

#[tokio::test]
async fn produce_and_consume_round_trip() {
    let endpoints = Endpoints::from_env();
    let topic = unique_name("smoke-kafka");

    let admin: AdminClient<DefaultClientContext> = config(&endpoints.kafka_bootstrap).create().unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(15)));
    let created = admin
        .create_topics(&[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))], &options)
        .await
        .unwrap_or_else(|e| panic!("Kafka at {} unreachable: {e}", endpoints.kafka_bootstrap));
    assert!(created.iter().all(Result::is_ok), "create topic: {created:?}");

    let producer: FutureProducer = config(&endpoints.kafka_bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let sent: Vec<String> = (0..20).map(|i| format!("value-{i}")).collect();
    for (i, value) in sent.iter().enumerate() {
        let key = format!("key-{i}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(value),
                Duration::from_secs(15),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }

    let consumer: StreamConsumer = config(&endpoints.kafka_bootstrap)
        .set("group.id", unique_name("smoke-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {} records consumed in 30s",
                    received.len(),
                    sent.len()
                )
            })
            .unwrap();
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
        assert_eq!(
            key.strip_prefix("key-"),
            value.strip_prefix("value-"),
            "key and value travel together"
        );
        received.push(value);
    }
    received.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(received, expected);

    admin.delete_topics(&[&topic], &options).await.unwrap();
}
