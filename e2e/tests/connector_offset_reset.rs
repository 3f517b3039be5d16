//! `spec.offsetReset` on the real control plane, with the sink worker as a
//! real process (kubelet harness), Kafka and Postgres: a sink writes N
//! records as N rows (plain INSERTs, no key, so a record delivered twice is
//! two rows); a reset to `Earliest` stops the worker, moves the group's
//! committed offsets back and starts it again, so the N records are
//! delivered again (2N rows), lag returns to 0 and `status.offsetReset`
//! names the request. Re-applying the same request does nothing more.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{Database, Harness, with_operator_and_kubelet};
use tokio_postgres::Client;
use tributary_api::Connector;
use tributary_e2e::kubelet::Kubelet;
use tributary_testkit::{eventually, unique_name};

const WAIT: Duration = Duration::from_mins(2);
const RECORDS: i64 = 50;

fn field<'a>(postgres: &'a str, key: &str) -> &'a str {
    postgres
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap()
}

fn sink_yaml(topic: &str, postgres: &str, database: &str, reset: &str) -> String {
    format!(
        r"
apiVersion: tributary.dev/v1alpha1
kind: Connector
metadata:
  name: rows
spec:
  sink:
    topics: [{topic}]
    batch: {{lingerMs: 20}}
    postgres:
      host: {host}
      port: {port}
      database: {database}
      user: postgres
      table: items
      insertMode: Insert
      primaryKeyMode: None
      deleteEnabled: false
  format: {{key: json, value: json}}
{reset}",
        host = field(postgres, "host"),
        port = field(postgres, "port"),
    )
}

async fn rows(db: &Client) -> i64 {
    match db.query_one("SELECT count(*) FROM items", &[]).await {
        Ok(row) => row.get(0),
        Err(_) => 0, // not created yet
    }
}

async fn wait_rows(db: &Client, expected: i64, kubelet: &Kubelet) {
    eventually(&format!("{expected} rows"), WAIT, || async {
        Ok((rows(db).await == expected).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
}

/// Waits until the sink is Ready with no lag.
async fn wait_caught_up(harness: &Harness) {
    harness
        .wait_for::<Connector>("rows", "lag 0 and Ready", |c| {
            tributary_api::HasConditions::is_ready(c)
                && c.status
                    .as_ref()
                    .and_then(|s| s.lag.as_ref())
                    .is_some_and(|l| l.records == Some(0))
        })
        .await;
}

/// Creates `topic` (one partition) and writes `RECORDS` JSON records
/// `{id, note}` to it.
async fn produce(bootstrap: &str, topic: &str) {
    tributary_kafka::KafkaAdmin::new(
        &tributary_kafka::KafkaConnection::plaintext(bootstrap),
        Duration::from_secs(10),
    )
    .unwrap()
    .create_topic(topic, 1, None, &std::collections::BTreeMap::new())
    .await
    .unwrap();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for id in 0..RECORDS {
        let value = serde_json::json!({"id": id, "note": format!("record {id}")}).to_string();
        producer
            .send(
                FutureRecord::<(), _>::to(topic).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn malformed_requests_are_refused_with_the_rules_message() {
    let harness = Harness::new("e2e-offset-reset-cel").await;
    let postgres = harness.endpoints.postgres.clone();
    let (topic, database) = ("t", "d");
    // The apiserver refuses a malformed request with the rule's message.
    for (bad, message) in [
        (
            "  offsetReset: {requestId: r, to: Timestamp}\n",
            "offsetReset.timestamp is required with to: Timestamp",
        ),
        (
            "  offsetReset: {requestId: r, to: Timestamp, timestamp: yesterday}\n",
            "offsetReset.timestamp must be an RFC 3339 time",
        ),
        (
            "  offsetReset: {requestId: r, to: Earliest, timestamp: '2026-12-02T15:00:00Z'}\n",
            "and only allowed with it",
        ),
    ] {
        let error = harness
            .apply(&sink_yaml(topic, &postgres, database, bad))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(message), "{error}");
    }
    let source_with_reset = "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: gen\nspec:\n  source:\n    datagen: {dataset: Ratings, topic: t}\n  offsetReset: {requestId: r, to: Earliest}\n";
    let error = harness.apply(source_with_reset).await.unwrap_err().to_string();
    assert!(
        error.contains("spec.offsetReset applies to sink connectors only"),
        "{error}"
    );

    // A well-formed one is accepted.
    let good = "  offsetReset: {requestId: r, to: Timestamp, timestamp: '2026-12-02T15:00:00+01:00'}\n";
    harness
        .apply(&sink_yaml(topic, &postgres, database, good))
        .await
        .unwrap();
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_to_earliest_delivers_the_records_again_once_per_request() {
    let (harness, kubelet) = with_operator_and_kubelet("e2e-offset-reset").await;
    let postgres = harness.endpoints.postgres.clone();
    let database = Database::new("e2e_reset", &postgres).await;
    let db = database.session().await;

    let topic = unique_name("e2e-reset");
    produce(&harness.endpoints.kafka_bootstrap, &topic).await;

    harness
        .apply(&sink_yaml(&topic, &postgres, &database.name, ""))
        .await
        .unwrap();
    wait_rows(&db, RECORDS, &kubelet).await;
    wait_caught_up(&harness).await;

    // Replay: every record is delivered again.
    let reset = "  offsetReset: {requestId: replay-1, to: Earliest}\n";
    harness
        .apply(&sink_yaml(&topic, &postgres, &database.name, reset))
        .await
        .unwrap();
    let replayed = harness
        .wait_for::<Connector>("rows", "offsetReset replay-1 applied", |c| {
            c.status
                .as_ref()
                .and_then(|s| s.offset_reset.as_ref())
                .is_some_and(|r| r.request_id == "replay-1")
        })
        .await;
    assert_eq!(replayed.status.unwrap().offset_reset.unwrap().partitions, 1);
    wait_rows(&db, 2 * RECORDS, &kubelet).await;
    wait_caught_up(&harness).await;
    assert!(
        harness
            .event_reasons("rows")
            .await
            .iter()
            .any(|r| r == "OffsetsReset"),
        "an Event records the reset"
    );

    // The same request again (e.g. a GitOps re-sync, another edit) is not a
    // new reset.
    let connectors = harness.api::<Connector>();
    connectors
        .patch(
            "rows",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"sink": {"batch": {"lingerMs": 30}}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(rows(&db).await, 2 * RECORDS, "no second replay");

    drop(kubelet);
    drop(db);
    database.drop().await;
    harness.cleanup().await;
}
