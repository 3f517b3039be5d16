//! The kubelet harness runs `tributary-operator` from a Deployment with its
//! ServiceAccount: the process gets a `TokenRequest` token, the cluster CA and
//! its namespace at /var/run/secrets/kubernetes.io/serviceaccount and the
//! in-cluster environment, builds its client from them (no kubeconfig), and
//! reconciles a Topic under the permissions of deploy/operator/rbac.yaml
//! granted in its namespace only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::{Api, ResourceExt as _};
use serde_json::json;
use support::Harness;
use tributary_api::Topic;
use tributary_e2e::kubelet::{Kubelet, KubeletConfig, ProcessInfo};
use tributary_testkit::{eventually, unique_name};

const WAIT: Duration = Duration::from_mins(1);

/// `deploy/operator/rbac.yaml` as a namespaced install in the test's
/// namespace: its ServiceAccount, the rules of its `ClusterRole` as a Role, the
/// leader-election Role, and bindings of both.
async fn grant_operator_rbac(harness: &Harness) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/operator/rbac.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let ns = &harness.namespace;
    for document in serde_yaml::Deserializer::from_str(&text) {
        let object: DynamicObject = serde::Deserialize::deserialize(document).unwrap();
        let kind = object.types.as_ref().unwrap().kind.clone();
        let role_name = match kind.as_str() {
            "ServiceAccount" => {
                harness
                    .apply(&json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": object.name_any()}}).to_string())
                    .await
                    .unwrap();
                continue;
            }
            "ClusterRole" | "Role" => format!("{}-{}", object.name_any(), kind.to_lowercase()),
            _ => continue,
        };
        let role = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": role_name},
            "rules": object.data["rules"],
        });
        harness.apply(&role.to_string()).await.unwrap();
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": role_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": "tributary-operator", "namespace": ns}],
        });
        harness.apply(&binding.to_string()).await.unwrap();
    }
}

/// The operator's Deployment: its ServiceAccount, namespaced watch,
/// leader election in its namespace, a readiness probe.
async fn deploy_operator(harness: &Harness) {
    harness
        .apply(
            r"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tributary-operator
spec:
  replicas: 1
  selector: {matchLabels: {app: tributary-operator}}
  template:
    metadata:
      labels: {app: tributary-operator}
    spec:
      serviceAccountName: tributary-operator
      terminationGracePeriodSeconds: 10
      containers:
      - name: operator
        image: ghcr.io/tributary-dev/tributary-operator:0.1.0
        env:
        - name: TRIBUTARY_WATCH_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: TRIBUTARY_RESYNC_SECONDS
          value: '5'
        readinessProbe:
          httpGet: {path: /readyz, port: 8080}
",
        )
        .await
        .unwrap();
}

/// The process sees what kubelet mounts for its ServiceAccount, the token
/// is that account's, and nothing points it at the host's kubeconfig: its
/// client can only be the in-cluster one.
async fn assert_in_cluster_identity(harness: &Harness, kubelet: &Kubelet, process: &ProcessInfo) {
    let ns = &harness.namespace;
    // What kubelet mounts for the pod's ServiceAccount, seen from inside.
    let sa_dir = process.path("/var/run/secrets/kubernetes.io/serviceaccount");
    let namespace_file = sa_dir.join("namespace");
    let mounted = eventually("the service-account volume is mounted", WAIT, || async {
        Ok(std::fs::read_to_string(&namespace_file).ok())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    assert_eq!(&mounted, ns);
    assert!(
        std::fs::read_to_string(sa_dir.join("ca.crt"))
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    // The token is the ServiceAccount's, and nothing points the process at
    // the host's kubeconfig: its client can only be the in-cluster one.
    let token = std::fs::read_to_string(sa_dir.join("token")).unwrap();
    let review: TokenReview = Api::all(harness.client.clone())
        .create(
            &PostParams::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token),
                    ..TokenReviewSpec::default()
                },
                ..TokenReview::default()
            },
        )
        .await
        .unwrap();
    let user = review.status.and_then(|s| s.user).and_then(|u| u.username);
    assert_eq!(
        user,
        Some(format!("system:serviceaccount:{ns}:tributary-operator"))
    );
    let environ = std::fs::read(format!("/proc/{}/environ", process.pid)).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains("KUBERNETES_SERVICE_HOST=127.0.0.1\0"),
        "{environ}"
    );
    assert!(!environ.contains("KUBECONFIG"), "{environ}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_runs_in_cluster_with_its_service_account_token() {
    let harness = Harness::new("e2e-kubelet-operator").await;
    let ns = harness.namespace.clone();
    grant_operator_rbac(&harness).await;
    let kubelet = Kubelet::start(
        harness.client.clone(),
        KubeletConfig::for_namespaces([ns.clone()]).fast(),
    )
    .await
    .unwrap();
    deploy_operator(&harness).await;

    let process = eventually("the operator process runs", WAIT, || async {
        Ok(kubelet.processes().into_iter().find(|p| p.namespace == ns))
    })
    .await
    .unwrap();
    assert_in_cluster_identity(&harness, &kubelet, &process).await;

    // The operator reconciles under its own token: leader election in its
    // namespace, then a Topic (a real Kafka topic, status written back).
    let kafka_topic = unique_name("kubelet-op");
    harness
        .apply(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: orders\nspec:\n  topicName: {kafka_topic}\n  partitions: 2\n  deletionPolicy: Delete\n"
        ))
        .await
        .unwrap();
    let topics = harness.api::<Topic>();
    eventually(
        "Topic Ready, reconciled by the in-cluster operator",
        WAIT,
        || async {
            let topic = topics.get("orders").await?;
            Ok(tributary_api::HasConditions::is_ready(&topic).then_some(()))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    let deployments = harness.api::<Deployment>();
    eventually("operator Deployment ready", WAIT, || async {
        let d = deployments.get("tributary-operator").await?;
        Ok((d.status.and_then(|s| s.ready_replicas) == Some(1)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    let log = kubelet.logs(&ns, &process.pod);
    assert!(
        !log.contains("forbidden"),
        "the Role grants what the operator needs:\n{log}"
    );

    // Deleting the Topic removes its finalizer under the same token; then
    // the operator stops with its Deployment.
    topics.delete("orders", &DeleteParams::default()).await.unwrap();
    eventually("Topic deleted", WAIT, || async {
        Ok(topics.get_opt("orders").await?.is_none().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    deployments
        .patch(
            "tributary-operator",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    eventually("the operator process stopped", WAIT, || async {
        Ok(kubelet
            .processes()
            .iter()
            .all(|p| p.namespace != ns)
            .then_some(()))
    })
    .await
    .unwrap();

    drop(kubelet);
    harness.cleanup().await;
}
