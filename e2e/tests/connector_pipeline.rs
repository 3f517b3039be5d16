//! A pipeline as users run it: Connectors applied to the real control plane,
//! the operator's Deployments run as real worker processes by the kubelet
//! harness, records flowing from a generator through Kafka into OpenSearch.
//! Asserts what status says along the way: Ready, lag (falling to 0 once the
//! generator stops), restarts after a worker is killed, and no record lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::{Harness, documents, records_in, refreshed_documents};
use tributary_api::Connector;
use tributary_e2e::kubelet::Kubelet;
use tributary_testkit::{eventually, unique_name};

const WAIT: Duration = Duration::from_mins(2);

fn source_yaml(topic: &str, state: &str) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: ratings-source\nspec:\n  state: {state}\n  source:\n    datagen: {{dataset: Ratings, topic: {topic}, recordsPerSecond: 200, keySpace: 50}}\n  topicCreation: {{partitions: 3}}\n"
    )
}

fn sink_yaml(topic: &str, opensearch: &str, state: &str) -> String {
    format!(
        r"
apiVersion: tributary.dev/v1alpha1
kind: Connector
metadata:
  name: ratings-search
spec:
  state: {state}
  replicas: 2
  sink:
    topics: [{topic}]
    batch: {{lingerMs: 50}}
    opensearch:
      url: {opensearch}
      documentId: TopicPartitionOffset
  errors: {{tolerance: All}}
"
    )
}

fn status_of(connector: &Connector) -> &tributary_api::WorkloadStatus {
    connector.status.as_ref().unwrap()
}

#[tokio::test]
async fn ratings_flow_into_opensearch_and_status_tells_the_truth() {
    let mut harness = Harness::new("e2e-pipe").await;
    harness.start_operator();
    let kubelet = harness.start_kubelet().await;
    let topic = unique_name("ratings");
    let opensearch = harness.endpoints.opensearch_url.clone();
    harness.apply(&source_yaml(&topic, "Running")).await.unwrap();
    harness
        .apply(&sink_yaml(&topic, &opensearch, "Running"))
        .await
        .unwrap();

    // Records arrive in OpenSearch; both connectors are Ready and streaming.
    eventually("documents in OpenSearch", WAIT, || async {
        Ok((documents(&opensearch, &topic).await > 100).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    for (name, working) in [("ratings-source", "Generating"), ("ratings-search", "Running")] {
        let connector = harness
            .wait_for::<Connector>(name, "Ready and working", |c| {
                c.status.as_ref().is_some_and(|s| {
                    s.worker_state.as_deref() == Some(working) && s.replicas == s.desired_replicas
                }) && tributary_api::HasConditions::is_ready(c)
            })
            .await;
        assert!(status_of(&connector).lag.is_some(), "{name}: lag reported");
    }
    harness
        .wait_for::<Connector>("ratings-search", "throughput reported", |c| {
            c.status
                .as_ref()
                .and_then(|s| s.records_per_second)
                .is_some_and(|r| r > 0)
        })
        .await;

    assert_pause_and_resume(&harness, &kubelet, &topic, &opensearch).await;

    // kill -9 a sink worker: the restart shows in status and nothing is lost.
    let victim = kubelet
        .processes()
        .into_iter()
        .find(|p| p.pod.starts_with("ratings-search-connector"))
        .unwrap();
    kubelet.kill(&harness.namespace, &victim.pod).unwrap();
    harness
        .wait_for::<Connector>("ratings-search", "restart counted", |c| {
            c.status.as_ref().is_some_and(|s| s.restarts >= 1)
        })
        .await;

    // Stop the generator: the sink drains, lag falls to 0, every record is a document.
    harness.apply(&source_yaml(&topic, "Stopped")).await.unwrap();
    harness
        .wait_for::<Connector>("ratings-source", "Stopped", |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.desired_replicas == 0 && s.replicas == 0)
        })
        .await;
    harness
        .wait_for::<Connector>("ratings-search", "lag 0 and Ready", |c| {
            c.status
                .as_ref()
                .and_then(|s| s.lag.as_ref())
                .is_some_and(|l| l.records == Some(0))
                && tributary_api::HasConditions::is_ready(c)
        })
        .await;
    let bootstrap = harness.endpoints.kafka_bootstrap.clone();
    let produced = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || records_in(&bootstrap, &topic))
            .await
            .unwrap()
    };
    assert!(produced > 100);
    eventually("every record is a document", WAIT, || async {
        Ok((refreshed_documents(&opensearch, &topic).await == produced).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nproduced {produced}\n{}", kubelet.all_logs()));
    kubelet.shutdown().await;
    harness.cleanup().await;
}

/// Paused: the same worker processes stay up and stop writing; Running resumes.
async fn assert_pause_and_resume(harness: &Harness, kubelet: &Kubelet, topic: &str, opensearch: &str) {
    let pids = |kubelet: &Kubelet| {
        let mut pids: Vec<u32> = kubelet
            .processes()
            .iter()
            .filter(|p| p.pod.starts_with("ratings-search-connector"))
            .map(|p| p.pid)
            .collect();
        pids.sort_unstable();
        pids
    };
    let before = pids(kubelet);
    harness
        .apply(&sink_yaml(topic, opensearch, "Paused"))
        .await
        .unwrap();
    harness
        .wait_for::<Connector>("ratings-search", "Ready: Paused", |c| {
            c.status.as_ref().is_some_and(|s| {
                s.observed_generation == c.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|x| x.type_ == "Ready" && x.status == "True" && x.reason == "Paused")
            })
        })
        .await;
    // Both workers' last batches land and become searchable first (each
    // worker reports on its own; the status shows the latest report).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let paused_at = refreshed_documents(opensearch, topic).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        refreshed_documents(opensearch, topic).await,
        paused_at,
        "nothing written while paused"
    );
    assert_eq!(pids(kubelet), before, "pausing keeps the worker processes");
    harness
        .apply(&sink_yaml(topic, opensearch, "Running"))
        .await
        .unwrap();
    eventually("writes resume", WAIT, || async {
        Ok((documents(opensearch, topic).await > paused_at).then_some(()))
    })
    .await
    .unwrap();
}
