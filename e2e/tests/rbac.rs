//! The operator runs under exactly the permissions of deploy/operator/rbac.yaml
//! (impersonating its ServiceAccount; the file is rendered from the Helm
//! chart), and those are least privilege: it reconciles Topics and Schemas,
//! writes status and Events, reads a Secret by name, but can never list or write them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, ResourceExt};
use support::{CONVERGE, Harness, client_as_service_account};
use tributary_api::{Connector, Schema, Topic};
use tributary_testkit::{eventually, unique_name};

/// Applies deploy/operator/rbac.yaml with its namespace replaced by the test's
/// and the cluster-scoped names made unique.
async fn apply_rbac(harness: &Harness) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/operator/rbac.yaml");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("tributary-system", &harness.namespace);
    for document in serde_yaml::Deserializer::from_str(&text) {
        let mut object: DynamicObject = serde::Deserialize::deserialize(document).unwrap();
        let types = object.types.clone().unwrap();
        let gvk = GroupVersionKind::try_from(&types).unwrap();
        let (resource, capabilities) = pinned_kind(&harness.client, &gvk).await.unwrap();
        let api: Api<DynamicObject> = if capabilities.scope == Scope::Namespaced {
            Api::namespaced_with(harness.client.clone(), &harness.namespace, &resource)
        } else {
            if types.kind == "ClusterRole" || types.kind == "ClusterRoleBinding" {
                object.metadata.name = Some(format!("{}-{}", object.name_any(), harness.namespace));
            }
            if types.kind == "ClusterRoleBinding" {
                object.data["roleRef"]["name"] =
                    serde_json::json!(format!("tributary-operator-{}", harness.namespace));
            }
            Api::all_with(harness.client.clone(), &resource)
        };
        api.patch(
            &object.name_any(),
            &PatchParams::apply("tributary-e2e").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {} {}: {e}", types.kind, object.name_any()));
    }
}

#[tokio::test]
async fn the_operator_works_with_least_privilege() {
    let mut harness = Harness::new("e2e-rbac").await;
    apply_rbac(&harness).await;
    let operator_client = client_as_service_account(&harness.namespace, "tributary-operator").await;

    // Least privilege: a Secret is read by name, never listed or written.
    let secrets: Api<Secret> = Api::namespaced(operator_client.clone(), &harness.namespace);
    let mut secret = Secret::default();
    secret.metadata.name = Some("stolen".to_owned());
    let denied = secrets.create(&PostParams::default(), &secret).await.unwrap_err();
    assert!(denied.to_string().contains("forbidden"), "{denied}");
    let denied = secrets.list(&ListParams::default()).await.unwrap_err();
    assert!(denied.to_string().contains("forbidden"), "{denied}");

    harness.start_operator_with(operator_client);
    let kafka_name = unique_name("rbac");
    let subject = unique_name("rbac-value");
    harness
        .apply(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: orders\nspec:\n  topicName: {kafka_name}\n  partitions: 1\n  deletionPolicy: Delete\n"
        ))
        .await
        .unwrap();
    harness
        .apply(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Schema\nmetadata:\n  name: orders-value\nspec:\n  subject: {subject}\n  deletionPolicy: Delete\n  schema: '\"string\"'\n"
        ))
        .await
        .unwrap();
    harness
        .apply(&format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: orders-hook\nspec:\n  sink:\n    topics: [{kafka_name}]\n    http: {{url: 'http://127.0.0.1:9/'}}\n"
        ))
        .await
        .unwrap();
    harness.wait_ready::<Topic>("orders").await;
    harness.wait_ready::<Schema>("orders-value").await;
    // Connector: its worker Deployment, ConfigMap and ServiceAccount are
    // applied and its status (pods, lag) observed under the same permissions.
    harness
        .wait_for::<Connector>("orders-hook", "observed with lag", |c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.lag.is_some() && s.observed_generation.is_some())
        })
        .await;
    let events = harness.event_reasons("orders").await;
    assert!(
        events.contains(&"TopicCreated".to_owned()),
        "Events are allowed: {events:?}"
    );

    // Finalizers are removed under the same permissions.
    let topics = harness.api::<Topic>();
    topics.delete("orders", &DeleteParams::default()).await.unwrap();
    eventually("Topic deleted", CONVERGE, || async {
        Ok(topics.get_opt("orders").await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    let schemas = harness.api::<Schema>();
    schemas
        .delete("orders-value", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Schema deleted", CONVERGE, || async {
        Ok(schemas.get_opt("orders-value").await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    harness.cleanup().await;
}
