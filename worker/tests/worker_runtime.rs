//! The worker process itself: datagen into Kafka, status in the compacted
//! status topic, and the HTTP endpoints (real Kafka and Postgres).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::{Scenario, read_topic};

const WAIT: Duration = Duration::from_mins(1);

#[tokio::test(flavor = "multi_thread")]
async fn datagen_writes_max_records_and_reports_completion() {
    let scenario = Scenario::new("datagen").await;
    let topic = format!("{}-ratings", scenario.prefix);
    let yaml = format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: {}\nspec:\n  source:\n    datagen:\n      dataset: Ratings\n      topic: {topic}\n      maxRecords: 5000\n      seed: 42\n  format:\n    key: json\n    value: json\n",
        scenario.database
    );
    let mut worker = scenario.start_worker(&yaml);
    assert!(worker.wait(WAIT), "{}", worker.log_text());
    let records = read_topic(&scenario.endpoints.kafka_bootstrap, &topic, 5000, WAIT).await;
    assert_eq!(records.len(), 5000);
    assert_eq!(records[4999].key_payload()["rating_id"], 4999);
    let ratings = records
        .iter()
        .map(|r| r.envelope()["rating"].as_u64().unwrap())
        .collect::<Vec<_>>();
    assert!(ratings.iter().all(|r| (1..=5).contains(r)));
    assert!(
        ratings.iter().any(|r| *r < 3),
        "low ratings exist for the alerting demo"
    );

    // The last status record says the run completed, with the count.
    let statuses = support::read_to_end(&scenario.endpoints.kafka_bootstrap, &scenario.status_topic).await;
    let last = statuses
        .iter()
        .rev()
        .find(|r| r.key == Some(serde_json::Value::String(scenario.database.clone())))
        .unwrap_or_else(|| panic!("no status for {}: {statuses:#?}", scenario.database));
    assert_eq!(last.envelope()["state"], "Completed", "{statuses:#?}");
    assert_eq!(last.envelope()["records"], 5000);
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_are_served() {
    let scenario = Scenario::new("cdc-http").await;
    let db = scenario.db().await;
    db.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);")
        .await
        .unwrap();
    let port = 18_500 + u16::try_from(std::process::id() % 400).unwrap();
    let mut worker = scenario.start_worker_with(
        &scenario.connector_yaml("", "json"),
        &["--http-addr", &format!("127.0.0.1:{port}")],
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    tributary_testkit::eventually("ready", WAIT, || async {
        let response = http.get(format!("{base}/readyz")).send().await?;
        Ok(response.status().is_success().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", worker.log_text()));
    assert!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    read_topic(&scenario.endpoints.kafka_bootstrap, &scenario.topic("t"), 2, WAIT).await;
    let metrics = tributary_testkit::eventually("metrics after the snapshot", WAIT, || async {
        let text = http.get(format!("{base}/metrics")).send().await?.text().await?;
        Ok(text
            .contains("tributary_worker_snapshot_rows_total 2")
            .then_some(text))
    })
    .await
    .unwrap();
    assert!(
        metrics.contains("tributary_worker_records_acknowledged_total"),
        "{metrics}"
    );
    assert!(metrics.contains("tributary_worker_source_lag_bytes"), "{metrics}");
    assert!(worker.running());
    worker.kill9();
    scenario.cleanup().await;
}
