//! Stream controller on the real control plane: the query is checked with
//! the worker's own planner before anything runs (an invalid query is
//! Stalled with its line and column, and no Deployment appears), a valid one
//! runs as a worker Deployment with the query's topics in status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use support::{CONVERGE, Harness, condition};
use tributary_api::Stream;
use tributary_testkit::eventually;

fn stream_yaml(name: &str, sql: &str) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Stream\nmetadata:\n  name: {name}\nspec:\n  sql: |\n    {}\n",
        sql.replace('\n', "\n    ")
    )
}

/// Waits until Stream `name` is Stalled for `reason`; returns the message.
async fn stalled_message(harness: &Harness, name: &str, reason: &str) -> String {
    let stream = harness
        .wait_for::<Stream>(name, &format!("Stalled: {reason}"), |s| {
            s.status.as_ref().is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.reason == reason)
            })
        })
        .await;
    condition(Some(&stream.status.unwrap().conditions), "Stalled")
        .unwrap()
        .2
}

#[tokio::test]
async fn invalid_sql_stalls_with_its_position_and_valid_sql_runs() {
    let mut harness = Harness::new("e2e-stream").await;
    harness.start_operator();

    harness
        .apply(&stream_yaml(
            "broken",
            "INSERT INTO alerts\nSELECT after.rating\nFROM ratings\nWHERE after.rating <",
        ))
        .await
        .unwrap();
    let message = stalled_message(&harness, "broken", "InvalidSql").await;
    assert!(message.starts_with("spec.sql: line 4, column"), "{message}");
    let deployments: Api<Deployment> = harness.api();
    assert!(deployments.get_opt("broken-stream").await.unwrap().is_none());

    // Checks beyond the SQL are the worker's too: Avro output needs typed columns.
    harness
        .apply(&format!(
            "{}  output:\n    format: {{value: avro}}\n",
            stream_yaml(
                "untyped",
                "INSERT INTO typed\nSELECT after.rating AS rating\nFROM ratings"
            )
        ))
        .await
        .unwrap();
    let message = stalled_message(&harness, "untyped", "InvalidSpec").await;
    assert!(
        message.starts_with("spec.output.format.value: avro: the type of column rating is only known from the data; write CAST(after.rating AS <type>) AS rating"),
        "{message}"
    );
    assert!(deployments.get_opt("untyped-stream").await.unwrap().is_none());

    harness
        .apply(&stream_yaml(
            "alerts",
            "INSERT INTO rating_alerts\nSELECT after.customer_id AS customer, after.rating AS rating\nFROM ratings\nWHERE after.rating < 3",
        ))
        .await
        .unwrap();
    eventually("stream deployment", CONVERGE, || async {
        Ok(deployments.get_opt("alerts-stream").await?)
    })
    .await
    .unwrap();
    let alerts = harness
        .wait_for::<Stream>("alerts", "lineage in status", |s| {
            s.status.as_ref().is_some_and(|st| st.topics.is_some())
        })
        .await;
    let topics = alerts.status.unwrap().topics.unwrap();
    assert_eq!(topics.reads, vec!["ratings"]);
    assert_eq!(topics.writes, vec!["rating_alerts"]);
    harness.cleanup().await;
}
