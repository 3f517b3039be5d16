//! What a user sees through `kubectl` on the real control plane: the field
//! documentation of `kubectl explain` comes from the Rust doc comments, and
//! `kubectl get tributary` lists every kind with its printer columns.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::Harness;
use tributary_api::{KafkaCluster, Schema, Topic};
use tributary_testkit::{eventually, unique_name};

fn kubectl(harness: &Harness, args: &[&str]) -> String {
    let output = run_kubectl(harness, args);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// kubectl's output, or `None` when it failed.
fn try_kubectl(harness: &Harness, args: &[&str]) -> Option<String> {
    let output = run_kubectl(harness, args);
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap())
}

fn run_kubectl(harness: &Harness, args: &[&str]) -> Output {
    let kubectl = harness.endpoints.tool("kubectl");
    Command::new(&kubectl)
        .args(args)
        .env("KUBECONFIG", &harness.endpoints.kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run `make infra-k8s`)", kubectl.display()))
}

/// The header line and the row starting with `name` of one table in `output`
/// (kubectl prints one table per kind, each with its own header).
fn table_row<'a>(output: &'a str, header_start: &str, name: &str) -> (&'a str, &'a str) {
    let mut header = None;
    for line in output.lines() {
        if line.starts_with(header_start) {
            header = Some(line);
        } else if line.starts_with(name)
            && let Some(header) = header
        {
            return (header, line);
        }
    }
    panic!("no row {name:?} under a header starting {header_start:?} in:\n{output}");
}

fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[tokio::test]
async fn explain_shows_the_field_docs() {
    let harness = Harness::new("e2e-kubectl-explain").await;

    // The apiserver publishes a CRD's OpenAPI (what explain reads) a moment
    // after the CRD is served.
    let spec = eventually("kubectl explain topic.spec", Duration::from_secs(30), || async {
        Ok(try_kubectl(&harness, &["explain", "topic.spec"]))
    })
    .await
    .unwrap();
    assert!(spec.contains("GROUP:      tributary.dev"), "{spec}");
    assert!(
        spec.contains("Number of partitions. May grow, never shrink."),
        "{spec}"
    );
    assert!(spec.contains("deletionPolicy"), "{spec}");
    let policy = kubectl(&harness, &["explain", "topic.spec.driftPolicy"]);
    assert!(
        policy.contains("`Enforce` (default) reverts changes made outside Tributary"),
        "{policy}"
    );
    let schema = kubectl(&harness, &["explain", "schema.spec"]);
    assert!(schema.contains("compatibility"), "{schema}");

    harness.cleanup().await;
}

#[tokio::test]
async fn get_tributary_lists_every_kind_with_its_columns() {
    let mut harness = Harness::new("e2e-kubectl-get").await;
    harness.start_operator();
    let kafka_name = unique_name("kubectl-topic");
    harness
        .apply(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: clicks\nspec:\n  topicName: {kafka_name}\n  partitions: 2\n  replicationFactor: 1\n  deletionPolicy: Delete\n"
        ))
        .await
        .unwrap();
    let subject = unique_name("kubectl-subject");
    harness
        .apply(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Schema\nmetadata:\n  name: click\nspec:\n  subject: {subject}\n  schemaType: AVRO\n  deletionPolicy: Delete\n  schema: '{{\"type\":\"record\",\"name\":\"Click\",\"fields\":[{{\"name\":\"id\",\"type\":\"long\"}}]}}'\n"
        ))
        .await
        .unwrap();
    harness.wait_ready::<KafkaCluster>("main").await;
    harness.wait_ready::<Topic>("clicks").await;
    harness.wait_ready::<Schema>("click").await;

    let output = kubectl(&harness, &["get", "tributary", "-n", &harness.namespace]);

    let (header, row) = table_row(&output, "NAME", "topic.tributary.dev/clicks");
    assert_eq!(
        columns(header),
        ["NAME", "READY", "STATUS", "PARTITIONS", "RF", "AGE"]
    );
    assert_eq!(
        columns(row)[..5],
        ["topic.tributary.dev/clicks", "True", "TopicReady", "2", "1"]
    );
    // The Kafka name is a wide column.
    let wide = kubectl(
        &harness,
        &["get", "topics", "-o", "wide", "-n", &harness.namespace],
    );
    let (header, row) = table_row(&wide, "NAME", "clicks");
    assert_eq!(
        columns(header),
        ["NAME", "READY", "STATUS", "TOPIC", "PARTITIONS", "RF", "AGE"]
    );
    assert_eq!(columns(row)[3], kafka_name, "{wide}");

    let (header, row) = table_row(&output, "NAME", "schema.tributary.dev/click");
    assert_eq!(
        columns(header),
        ["NAME", "READY", "STATUS", "SUBJECT", "VERSION", "AGE"]
    );
    let row = columns(row);
    assert_eq!(row[1], "True", "{output}");
    assert_eq!(row[3], subject, "{output}");
    assert_eq!(row[4], "1", "{output}");

    let (header, row) = table_row(&output, "NAME", "kafkacluster.tributary.dev/main");
    assert_eq!(
        columns(header),
        ["NAME", "READY", "STATUS", "BROKERS", "REGISTRY", "AGE"]
    );
    let row = columns(row);
    assert_eq!(row[1], "True", "{output}");
    assert_eq!(row[3], "1", "{output}");
    assert_eq!(row[4], "true", "{output}");

    harness.cleanup().await;
}
