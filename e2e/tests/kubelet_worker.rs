//! The kubelet harness runs a Deployment of `tributary-worker` made by the
//! test (not the operator): config from a mounted ConfigMap, Kafka's address
//! from a Secret, records really reach Kafka; `kill -9` is a crash the pod
//! status shows and the restart recovers; a ConfigMap edit reaches the
//! mounted file; scaling to zero stops the process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use support::{Harness, records_in};
use tributary_e2e::kubelet::{Kubelet, KubeletConfig, ProcessInfo};
use tributary_testkit::{eventually, unique_name};

const WAIT: Duration = Duration::from_mins(1);

fn connector(topic: &str, rate: u32) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: ratings-gen\nspec:\n  source:\n    datagen:\n      dataset: Ratings\n      topic: {topic}\n      recordsPerSecond: {rate}\n  format:\n    key: json\n    value: json\n"
    )
}

async fn wait_records(bootstrap: &str, topic: &str, above: i64, kubelet: &Kubelet) -> i64 {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    eventually(&format!("more than {above} records in {topic}"), WAIT, || {
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        async move {
            let count = tokio::task::spawn_blocking(move || records_in(&bootstrap, &topic)).await?;
            Ok((count > above).then_some(count))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()))
}

async fn one_process(kubelet: &Kubelet, namespace: &str, not_pid: Option<u32>) -> ProcessInfo {
    eventually("the worker process runs", WAIT, || async {
        Ok(kubelet
            .processes()
            .into_iter()
            .find(|p| p.namespace == namespace && Some(p.pid) != not_pid))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()))
}

/// The container's status once it shows one restart after a SIGKILL.
async fn wait_restarted(pods: &Api<Pod>, pod: &str, kubelet: &Kubelet) -> ContainerStatus {
    eventually("restartCount 1 with lastState exit code 137", WAIT, || async {
        let pod = pods.get(pod).await?;
        let container = pod
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|c| c.into_iter().next());
        Ok(container.filter(|c| {
            c.restart_count == 1
                && c.last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 137)
                && c.state.as_ref().is_some_and(|s| s.running.is_some())
        }))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()))
}

/// A Secret with Kafka's address, a ConfigMap with the connector, and a
/// Deployment running the worker image with both.
async fn deploy_worker(harness: &Harness, topic: &str) {
    let bootstrap = &harness.endpoints.kafka_bootstrap;
    harness
        .apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kafka\nstringData:\n  bootstrap: {bootstrap}\n"
        ))
        .await
        .unwrap();
    let config_map = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "worker-config"},
        "data": {"config.yaml": connector(topic, 20)},
    });
    harness.apply(&config_map.to_string()).await.unwrap();
    harness
        .apply(
            r"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ratings-gen
spec:
  replicas: 1
  selector: {matchLabels: {app: ratings-gen}}
  template:
    metadata:
      labels: {app: ratings-gen}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: worker
        image: ghcr.io/tributary-dev/tributary-worker:0.1.0
        args: [run, -f, /etc/tributary/config.yaml, --bootstrap-servers, $(KAFKA_BOOTSTRAP)]
        env:
        - name: KAFKA_BOOTSTRAP
          valueFrom: {secretKeyRef: {name: kafka, key: bootstrap}}
        - name: TRIBUTARY_HTTP_ADDR
          value: 0.0.0.0:8080
        - name: RUST_LOG
          value: info,librdkafka=warn
        readinessProbe:
          httpGet: {path: /readyz, port: 8080}
        volumeMounts:
        - {name: config, mountPath: /etc/tributary}
      volumes:
      - name: config
        configMap: {name: worker-config}
",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_deployment_moves_data_survives_kill_9_follows_its_configmap_and_scales_to_zero() {
    let harness = Harness::new("e2e-kubelet-worker").await;
    let ns = harness.namespace.clone();
    let kubelet = Kubelet::start(
        harness.client.clone(),
        KubeletConfig::for_namespaces([ns.clone()]).fast(),
    )
    .await
    .unwrap();
    let topic = unique_name("kubelet-ratings");
    let bootstrap = harness.endpoints.kafka_bootstrap.clone();

    deploy_worker(&harness, &topic).await;

    // Data flows, the pod is Ready through its probe, the endpoint is on the mapped port.
    let first = one_process(&kubelet, &ns, None).await;
    let produced = wait_records(&bootstrap, &topic, 10, &kubelet).await;
    let deployments: Api<Deployment> = harness.api();
    eventually("Deployment ready", WAIT, || async {
        let d = deployments.get("ratings-gen").await?;
        Ok((d.status.and_then(|s| s.ready_replicas) == Some(1)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", first.ports[&8080]))
        .await
        .unwrap();
    assert!(health.status().is_success(), "{health:?}");
    // The mount is private to the process.
    let inside = first.path("/etc/tributary/config.yaml");
    assert!(std::fs::read_to_string(&inside).unwrap().contains(&topic));
    assert!(
        !Path::new("/etc/tributary/config.yaml").exists(),
        "host sees no mount"
    );

    // kill -9: the status counts the restart, the process runs again, data flows on.
    assert_eq!(kubelet.kill(&ns, &first.pod).unwrap(), 1);
    let pods: Api<Pod> = harness.api();
    let status = wait_restarted(&pods, &first.pod, &kubelet).await;
    assert_eq!(status.name, "worker");
    let second = one_process(&kubelet, &ns, Some(first.pid)).await;
    assert_eq!(second.pod, first.pod, "restarted in place, not rescheduled");
    assert_eq!(second.restart_count, 1);
    wait_records(&bootstrap, &topic, produced + 10, &kubelet).await;

    // A ConfigMap edit reaches the mounted file (kubelet's ..data swap).
    let edited = connector(&format!("{topic}-edited"), 20);
    let config_maps: Api<ConfigMap> = harness.api();
    config_maps
        .patch(
            "worker-config",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"config.yaml": edited}})),
        )
        .await
        .unwrap();
    let inside = second.path("/etc/tributary/config.yaml");
    eventually(
        "the edit is in the mounted file",
        Duration::from_secs(15),
        || async {
            Ok(std::fs::read_to_string(&inside)?
                .contains("-edited")
                .then_some(()))
        },
    )
    .await
    .unwrap();

    // Scale to zero: SIGTERM, the worker stops gracefully, no process is left.
    deployments
        .patch(
            "ratings-gen",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    eventually("no process left", WAIT, || async {
        let gone = kubelet.processes().iter().all(|p| p.namespace != ns)
            && !Path::new("/proc").join(second.pid.to_string()).exists();
        Ok(gone.then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    let log = kubelet.logs(&ns, &second.pod);
    assert!(log.contains("exited: code 0"), "graceful stop on SIGTERM:\n{log}");
    let left = pods.list(&ListParams::default()).await.unwrap();
    assert!(
        left.items.is_empty(),
        "{:?}",
        left.items.iter().map(ResourceExt::name_any).collect::<Vec<_>>()
    );

    drop(kubelet);
    harness.cleanup().await;
}
