//! The product as users meet it: `helm install` of charts/tributary (scoped to
//! one namespace), the operator running from the chart's Deployment as a real
//! process with the chart's ServiceAccount token and RBAC (the kubelet
//! harness), and a pipeline applied with the same YAML a user writes:
//! generated ratings reach OpenSearch, the Connectors turn Ready with lag in
//! status, and deleting one removes its workers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::DeleteParams;
use support::Harness;
use tributary_api::{Connector, HasConditions};
use tributary_e2e::kubelet::{Kubelet, KubeletConfig};
use tributary_testkit::{eventually, unique_name};

const WAIT: Duration = Duration::from_mins(2);

fn helm(harness: &Harness, args: &[&str]) {
    let output = Command::new(harness.endpoints.tool("helm"))
        .args(args)
        .env("KUBECONFIG", &harness.endpoints.kubeconfig)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn helm_installed_operator_runs_a_pipeline_in_its_namespace() {
    // No in-process operator: the one from the chart does the work.
    let harness = Harness::new("e2e-helm-pipe").await;
    let namespace = harness.namespace.clone();
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/tributary");
    helm(
        &harness,
        &[
            "install",
            "tributary",
            &chart.display().to_string(),
            "--namespace",
            &namespace,
            "--skip-crds",
            "--set",
            "watch.scope=Namespace",
            "--set",
            "operator.resyncSeconds=5",
        ],
    );
    let kubelet = Kubelet::start(
        harness.client.clone(),
        KubeletConfig::for_namespaces([namespace.clone()]).fast(),
    )
    .await
    .unwrap();

    let topic = unique_name("helm-ratings");
    let opensearch = harness.endpoints.opensearch_url.clone();
    harness
        .apply(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: generator\nspec:\n  source:\n    datagen: {{dataset: Ratings, topic: {topic}, recordsPerSecond: 100}}\n"
        ))
        .await
        .unwrap();
    harness
        .apply(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: search\nspec:\n  sink:\n    topics: [{topic}]\n    opensearch: {{url: '{opensearch}', documentId: TopicPartitionOffset}}\n"
        ))
        .await
        .unwrap();
    let count_url = format!("{opensearch}/{topic}/_count");
    eventually("documents in OpenSearch", WAIT, || async {
        let count = match reqwest::get(&count_url).await {
            Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await?["count"]
                .as_i64()
                .unwrap_or(0),
            _ => 0,
        };
        Ok((count > 0).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    let search = harness
        .wait_for::<Connector>("search", "Ready with lag", |c| {
            c.is_ready()
                && c.status
                    .as_ref()
                    .is_some_and(|s| s.lag.as_ref().is_some_and(|l| l.records.is_some()))
        })
        .await;
    assert_eq!(search.status.unwrap().topics.unwrap().reads, vec![topic.clone()]);
    let operator = kubelet
        .processes()
        .into_iter()
        .find(|p| p.pod.starts_with("tributary-operator"))
        .expect("the chart's operator runs as a process");
    assert!(operator.ready, "operator readiness probe passes");

    // Deleting a Connector removes its workers (owner references, garbage collection).
    let connectors: Api<Connector> = harness.api();
    connectors
        .delete("generator", &DeleteParams::default())
        .await
        .unwrap();
    let deployments: Api<Deployment> = harness.api();
    eventually("generator's Deployment gone", WAIT, || async {
        Ok(deployments
            .get_opt("generator-connector")
            .await?
            .is_none()
            .then_some(()))
    })
    .await
    .unwrap();
    eventually("generator's process stopped", WAIT, || async {
        Ok((!kubelet
            .processes()
            .iter()
            .any(|p| p.pod.starts_with("generator-connector")))
        .then_some(()))
    })
    .await
    .unwrap();

    helm(&harness, &["uninstall", "tributary", "--namespace", &namespace]);
    kubelet.shutdown().await;
    harness.cleanup().await;
}
