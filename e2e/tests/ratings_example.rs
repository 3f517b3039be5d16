//! deploy/examples/ratings-pipeline.yaml as a user applies it, on the real
//! control plane with every worker a real process (the kubelet harness) and
//! the operator's controllers in-process (as `connector_pipeline.rs` runs
//! them): generated ratings reach OpenSearch, the alerts Stream writes every
//! rating below 3 once, the report Stream writes per-region counts of
//! 1-minute windows equal to the input's, and every resource turns Ready.
//!
//! Then the lifecycle, on the alerts Stream (exactly-once): Paused keeps the
//! process and moves nothing (no output, no committed offset), Running goes
//! on; `kill -9` of its worker shows as a restart and the harness restarts
//! it; a spec edit rolls its pod. After the generator stops, lag falls to 0
//! and the outputs are checked record by record against the input: nothing
//! lost, nothing twice.
//!
//! Topics are renamed from `demo.` to a prefix of this test's own, so tests
//! and a running `make demo` never share them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;
use support::{
    Harness, committed_in, config_hash, documents, json_values_in, records_in, refreshed_documents,
    yaml_documents,
};
use tributary_api::{Connector, HasConditions, KafkaCluster, Stream, Topic};
use tributary_e2e::kubelet::{Kubelet, ProcessInfo};
use tributary_testkit::{eventually, unique_name};

const EXAMPLE: &str = include_str!("../../deploy/examples/ratings-pipeline.yaml");
/// Long enough for the first 1-minute window to close (its end + 10 s grace).
const WAIT: Duration = Duration::from_mins(3);
const ALERTS: &str = "rating-alerts";
const COUNTS: &str = "ratings-per-region";

/// The example's documents in file order as (`<kind>/<name>`, YAML), with
/// this test's topic prefix and the local endpoints.
fn example(prefix: &str, harness: &Harness) -> Vec<(String, String)> {
    assert!(EXAMPLE.contains("demo.ratings") && EXAMPLE.contains("127.0.0.1:19092"));
    let text = EXAMPLE
        .replace("demo.", &format!("{prefix}."))
        .replace("127.0.0.1:19092", &harness.endpoints.kafka_bootstrap)
        .replace("http://127.0.0.1:19200", &harness.endpoints.opensearch_url);
    yaml_documents(&text)
        .into_iter()
        .map(|document| {
            let value: serde_yaml::Value = serde_yaml::from_str(&document).unwrap();
            let kind = value["kind"].as_str().unwrap();
            let name = value["metadata"]["name"].as_str().unwrap();
            (format!("{kind}/{name}"), document)
        })
        .collect()
}

/// `document` with `field: value` set under `spec`.
fn with_spec(document: &str, field: &str, value: &str) -> String {
    let mut object: serde_yaml::Value = serde_yaml::from_str(document).unwrap();
    object["spec"][field] = serde_yaml::from_str(value).unwrap();
    serde_yaml::to_string(&object).unwrap()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// One test's running example.
struct Example {
    harness: Harness,
    kubelet: Kubelet,
    documents: Vec<(String, String)>,
    input: String,
    alerts: String,
    counts: String,
}

impl Example {
    /// The example's document `<kind>/<name>`.
    fn document(&self, key: &str) -> &str {
        self.documents
            .iter()
            .find_map(|(k, document)| (k == key).then_some(document.as_str()))
            .unwrap_or_else(|| panic!("no {key} in the example"))
    }

    fn bootstrap(&self) -> String {
        self.harness.endpoints.kafka_bootstrap.clone()
    }

    async fn values(&self, topic: &str) -> Vec<Value> {
        let (bootstrap, topic) = (self.bootstrap(), topic.to_owned());
        blocking(move || json_values_in(&bootstrap, &topic)).await
    }

    async fn committed(&self, stream: &str) -> i64 {
        let group = format!("tributary-{}-{stream}", self.harness.namespace);
        let (bootstrap, input) = (self.bootstrap(), self.input.clone());
        blocking(move || committed_in(&bootstrap, &group, &input)).await
    }

    async fn apply(&self, name: &str, document: &str) {
        self.harness
            .apply(document)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    /// The processes of the alerts Stream's workers.
    fn alert_processes(&self) -> Vec<ProcessInfo> {
        self.kubelet
            .processes()
            .into_iter()
            .filter(|p| p.pod.starts_with("rating-alerts-stream"))
            .collect()
    }

    fn alert_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.alert_processes().iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        pids
    }

    async fn wait(&self, what: &str, check: impl AsyncFn() -> bool) {
        let check = &check;
        eventually(what, WAIT, move || async move { Ok(check().await.then_some(())) })
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.kubelet.all_logs()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ratings_example_runs_and_its_streams_survive_pause_kill_and_edit() {
    let mut harness = Harness::new("e2e-ratings").await;
    harness.start_operator();
    let kubelet = harness.start_kubelet().await;
    let prefix = unique_name("r").replace('-', "");
    let documents = example(&prefix, &harness);
    let x = Example {
        input: format!("{prefix}.ratings"),
        alerts: format!("{prefix}.rating-alerts"),
        counts: format!("{prefix}.ratings-per-region"),
        harness,
        kubelet,
        documents,
    };
    assert_eq!(x.documents.len(), 8, "{:?}", x.documents);
    for (name, document) in &x.documents {
        x.apply(name, document).await;
    }

    assert_flowing(&x).await;
    assert_every_resource_ready(&x).await;
    assert_pause_moves_nothing(&x).await;
    assert_kill_9_restarts(&x).await;
    assert_edit_rolls(&x).await;
    assert_drained_and_exact(&x).await;

    x.kubelet.shutdown().await;
    x.harness.cleanup().await;
}

/// Documents in OpenSearch, alerts of ratings below 3, per-region windows.
async fn assert_flowing(x: &Example) {
    let opensearch = &x.harness.endpoints.opensearch_url;
    x.wait("documents in OpenSearch", async || {
        documents(opensearch, &x.input).await > 0
    })
    .await;
    x.wait("alerts", async || !x.values(&x.alerts).await.is_empty())
        .await;
    let alerts = x.values(&x.alerts).await;
    assert!(
        alerts.iter().all(|a| a["rating"].as_i64().is_some_and(|r| r < 3)),
        "{alerts:?}"
    );
    // EMIT FINAL: the first row once a minute of event time is over (+10 s grace).
    x.wait("per-region windows", async || {
        !x.values(&x.counts).await.is_empty()
    })
    .await;
    for row in x.values(&x.counts).await {
        let (start, end) = (row["window_start"].as_i64(), row["window_end"].as_i64());
        assert_eq!(end.unwrap() - start.unwrap(), 60_000, "{row}");
        assert_eq!(start.unwrap() % 60_000, 0, "{row}");
        assert!(
            row["region"].is_string() && row["ratings"].as_i64() > Some(0),
            "{row}"
        );
    }
}

async fn assert_every_resource_ready(x: &Example) {
    let h = &x.harness;
    h.wait_ready::<KafkaCluster>("main").await;
    for topic in ["ratings", ALERTS, COUNTS] {
        h.wait_ready::<Topic>(topic).await;
    }
    for connector in ["ratings-generator", "ratings-search"] {
        h.wait_ready::<Connector>(connector).await;
    }
    for stream in [ALERTS, COUNTS] {
        let ready = h.wait_ready::<Stream>(stream).await;
        let status = ready.status.unwrap();
        assert_eq!(status.topics.unwrap().reads, vec![x.input.clone()]);
        assert!(status.lag.is_some(), "{stream}: lag in status");
    }
}

/// Paused: Ready with reason Paused, the same process, no output, no commit.
async fn assert_pause_moves_nothing(x: &Example) {
    let document = x.document(&format!("Stream/{ALERTS}"));
    let pids = x.alert_pids();
    assert!(!pids.is_empty());
    x.apply(ALERTS, &with_spec(document, "state", "Paused")).await;
    x.harness
        .wait_for::<Stream>(ALERTS, "Ready: Paused", |s| {
            s.is_ready()
                && s.status.as_ref().is_some_and(|st| {
                    st.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.reason == "Paused")
                })
        })
        .await;
    let (alerts, committed) = (x.values(&x.alerts).await.len(), x.committed(ALERTS).await);
    let produced = records_in_input(x).await;
    // Ratings keep coming (50/s) while nothing moves.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(records_in_input(x).await > produced + 100);
    assert_eq!(x.values(&x.alerts).await.len(), alerts, "no alert while paused");
    assert_eq!(
        x.committed(ALERTS).await,
        committed,
        "no offset moved while paused"
    );
    assert_eq!(x.alert_pids(), pids, "pausing keeps the worker process");

    x.apply(ALERTS, document).await;
    x.wait("alerts resume", async || x.values(&x.alerts).await.len() > alerts)
        .await;
    x.harness.wait_ready::<Stream>(ALERTS).await;
}

async fn records_in_input(x: &Example) -> i64 {
    let (bootstrap, input) = (x.bootstrap(), x.input.clone());
    blocking(move || records_in(&bootstrap, &input)).await
}

/// kill -9 of the worker: a restart in status, the same pod's process again.
async fn assert_kill_9_restarts(x: &Example) {
    let victim = x.alert_processes().into_iter().next().unwrap();
    x.kubelet.kill(&x.harness.namespace, &victim.pod).unwrap();
    x.harness
        .wait_for::<Stream>(ALERTS, "restart counted", |s| {
            s.status.as_ref().is_some_and(|st| st.restarts >= 1)
        })
        .await;
    x.wait("the worker runs again", async || {
        x.kubelet
            .processes()
            .iter()
            .any(|p| p.pod == victim.pod && p.pid != victim.pid && p.ready)
    })
    .await;
    let alerts = x.values(&x.alerts).await.len();
    x.wait("alerts after the restart", async || {
        x.values(&x.alerts).await.len() > alerts
    })
    .await;
}

/// A spec edit changes the config hash: a new pod replaces the old one.
async fn assert_edit_rolls(x: &Example) {
    let deployments: kube::Api<Deployment> = x.harness.api();
    let before = config_hash(&deployments.get("rating-alerts-stream").await.unwrap());
    let old_pods: Vec<String> = x.alert_processes().into_iter().map(|p| p.pod).collect();
    let document = x.document(&format!("Stream/{ALERTS}"));
    x.apply(ALERTS, &with_spec(document, "commitIntervalMs", "200"))
        .await;
    x.wait("a new pod's process replaces the old one", async || {
        let alerts = x.alert_processes();
        !alerts.is_empty() && alerts.iter().all(|p| !old_pods.contains(&p.pod) && p.ready)
    })
    .await;
    let after = config_hash(&deployments.get("rating-alerts-stream").await.unwrap());
    assert_ne!(after, before, "the config hash changed");
    x.harness.wait_ready::<Stream>(ALERTS).await;
}

/// The generator stops; lag falls to 0; every rating is a document, every
/// rating below 3 exactly one alert, every window's count the input's.
async fn assert_drained_and_exact(x: &Example) {
    let generator = x.document("Connector/ratings-generator");
    x.apply("ratings-generator", &with_spec(generator, "state", "Stopped"))
        .await;
    x.harness
        .wait_for::<Connector>("ratings-generator", "Stopped", |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.desired_replicas == 0 && s.replicas == 0)
        })
        .await;
    let lag_zero = |status: Option<&tributary_api::WorkloadStatus>| {
        status
            .and_then(|s| s.lag.as_ref())
            .is_some_and(|l| l.records == Some(0))
    };
    x.harness
        .wait_for::<Connector>("ratings-search", "lag 0 and Ready", |c| {
            lag_zero(c.status.as_ref()) && c.is_ready()
        })
        .await;
    for stream in [ALERTS, COUNTS] {
        x.harness
            .wait_for::<Stream>(stream, "lag 0 and Ready", |s| {
                lag_zero(s.status.as_ref()) && s.is_ready()
            })
            .await;
    }

    let ratings = x.values(&x.input).await;
    let produced = i64::try_from(ratings.len()).unwrap();
    assert_eq!(produced, records_in_input(x).await);
    let opensearch = &x.harness.endpoints.opensearch_url;
    x.wait("every rating is a document", async || {
        refreshed_documents(opensearch, &x.input).await == produced
    })
    .await;

    let ids = |values: &[Value]| {
        let mut ids: Vec<i64> = values.iter().map(|v| v["rating_id"].as_i64().unwrap()).collect();
        ids.sort_unstable();
        ids
    };
    let low: Vec<Value> = ratings
        .iter()
        .filter(|r| r["rating"].as_i64().unwrap() < 3)
        .cloned()
        .collect();
    let alerts = x.values(&x.alerts).await;
    assert_eq!(
        ids(&alerts),
        ids(&low),
        "each rating below 3 is one alert, across pause, kill -9 and a roll"
    );

    let mut expected: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for rating in &ratings {
        let ts = rating["ts"].as_i64().unwrap();
        let region = rating["region"].as_str().unwrap().to_owned();
        *expected.entry((region, ts - ts.rem_euclid(60_000))).or_default() += 1;
    }
    let rows = x.values(&x.counts).await;
    let mut seen = std::collections::BTreeSet::new();
    for row in &rows {
        let key = (
            row["region"].as_str().unwrap().to_owned(),
            row["window_start"].as_i64().unwrap(),
        );
        assert_eq!(
            Some(&row["ratings"].as_i64().unwrap()),
            expected.get(&key),
            "{row}"
        );
        assert!(seen.insert(key), "one row per region and window: {row}");
    }
    assert!(!rows.is_empty());
}
