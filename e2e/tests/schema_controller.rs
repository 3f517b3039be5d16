//! Schema controller on the real control plane and a third-party schema
//! registry (Apicurio's Confluent-compatible API): register, evolve, refuse an
//! incompatible change without losing the registered version, references,
//! deletion per policy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kube::api::DeleteParams;
use support::{CONVERGE, Harness, condition};
use tributary_api::Schema;
use tributary_registry::RegistryClient;
use tributary_testkit::{Endpoints, eventually, unique_name};

fn registry(endpoints: &Endpoints) -> RegistryClient {
    RegistryClient::new(&endpoints.registry_url, None, None, Duration::from_secs(10)).unwrap()
}

fn avro_record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Rating","namespace":"shop","fields":[{fields}]}}"#)
}

fn schema_yaml(name: &str, subject: &str, schema: &str, extra: &str) -> String {
    let quoted = serde_json::to_string(schema).unwrap();
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Schema\nmetadata:\n  name: {name}\nspec:\n  subject: {subject}\n  schema: {quoted}\n{extra}"
    )
}

async fn wait_ready(harness: &Harness, name: &str) -> Schema {
    harness.wait_ready::<Schema>(name).await
}

const V1: &str = r#"{"name":"customer_id","type":"long"},{"name":"rating","type":"int"}"#;
const V2: &str = r#"{"name":"customer_id","type":"long"},{"name":"rating","type":"int"},{"name":"comment","type":["null","string"],"default":null}"#;
const INCOMPATIBLE: &str = r#"{"name":"customer_id","type":"long"},{"name":"rating","type":"int"},{"name":"region","type":"string"}"#;

#[tokio::test]
async fn registers_evolves_and_refuses_an_incompatible_change() {
    let mut harness = Harness::new("e2e-schema").await;
    harness.start_operator();
    let subject = unique_name("ratings-value");
    let compat = "  compatibility: BACKWARD\n";

    harness
        .apply(&schema_yaml("ratings", &subject, &avro_record(V1), compat))
        .await
        .unwrap();
    let v1 = wait_ready(&harness, "ratings").await.status.unwrap();
    assert_eq!(v1.version, Some(1));
    assert_eq!(v1.compatibility.as_deref(), Some("BACKWARD"));
    assert_eq!(v1.subject.as_deref(), Some(subject.as_str()));
    let latest = registry(&harness.endpoints)
        .latest(&subject)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((latest.id, latest.version), (v1.id.unwrap(), 1));
    assert_eq!(
        registry(&harness.endpoints)
            .compatibility(&subject)
            .await
            .unwrap(),
        "BACKWARD"
    );

    // A compatible change (optional field with a default) becomes version 2.
    harness
        .apply(&schema_yaml("ratings", &subject, &avro_record(V2), compat))
        .await
        .unwrap();
    let v2 = wait_ready(&harness, "ratings").await.status.unwrap();
    assert_eq!(v2.version, Some(2));
    assert_ne!(v2.id, v1.id);

    // An incompatible change (a required field without default) is refused:
    // the registry keeps version 2 and the status says why.
    harness
        .apply(&schema_yaml(
            "ratings",
            &subject,
            &avro_record(INCOMPATIBLE),
            compat,
        ))
        .await
        .unwrap();
    let refused = harness
        .wait_for::<Schema>("ratings", "Stalled on the incompatible change", |s| {
            condition(s.status.as_ref().map(|s| s.conditions.as_slice()), "Stalled")
                .is_some_and(|(st, _, _)| st == "True")
        })
        .await;
    let status = refused.status.unwrap();
    let (ready, reason, message) = condition(Some(&status.conditions), "Ready").unwrap();
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "IncompatibleSchema"));
    assert!(message.contains("incompatible"), "{message}");
    assert!(
        message.contains("region"),
        "the registry's own message names the field: {message}"
    );
    assert_eq!(status.version, Some(2), "the registered version stays in place");
    let latest = registry(&harness.endpoints)
        .latest(&subject)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, 2);
    let events = harness.event_reasons("ratings").await;
    assert!(events.contains(&"IncompatibleSchema".to_owned()), "{events:?}");

    harness.cleanup().await;
    registry(&Endpoints::from_env())
        .delete_subject(&subject, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn references_and_deletion_policies() {
    let mut harness = Harness::new("e2e-schema-refs").await;
    harness.start_operator();
    let customer_subject = unique_name("customer");
    let order_subject = unique_name("order-value");
    let customer =
        r#"{"type":"record","name":"Customer","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;
    let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"customer","type":"shop.Customer"}]}"#;

    harness
        .apply(&schema_yaml("customer", &customer_subject, customer, ""))
        .await
        .unwrap();
    wait_ready(&harness, "customer").await;
    harness
        .apply(&schema_yaml(
            "order",
            &order_subject,
            order,
            &format!("  deletionPolicy: Delete\n  references:\n  - name: shop.Customer\n    subject: {customer_subject}\n    version: 1\n"),
        ))
        .await
        .unwrap();
    let status = wait_ready(&harness, "order").await.status.unwrap();
    assert_eq!(status.version, Some(1));
    let stored = registry(&harness.endpoints)
        .latest(&order_subject)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.schema.references.len(), 1);
    assert_eq!(stored.schema.references[0].subject, customer_subject);

    // Delete removes the subject; Retain (the default) keeps it.
    let schemas = harness.api::<Schema>();
    schemas.delete("order", &DeleteParams::default()).await.unwrap();
    eventually("order subject deleted", CONVERGE, || async {
        Ok(registry(&harness.endpoints)
            .latest(&order_subject)
            .await?
            .is_none()
            .then_some(()))
    })
    .await
    .unwrap();
    schemas
        .delete("customer", &DeleteParams::default())
        .await
        .unwrap();
    eventually("customer Schema gone", CONVERGE, || async {
        Ok(schemas.get_opt("customer").await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    assert!(
        registry(&harness.endpoints)
            .latest(&customer_subject)
            .await
            .unwrap()
            .is_some(),
        "Retain keeps the subject"
    );

    harness.cleanup().await;
    registry(&Endpoints::from_env())
        .delete_subject(&customer_subject, true)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cluster_without_registry_stalls_the_schema() {
    let mut harness = Harness::new("e2e-schema-noreg").await;
    harness
        .apply("apiVersion: tributary.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: plain\nspec:\n  bootstrapServers: [\"127.0.0.1:19092\"]\n")
        .await
        .unwrap();
    harness.start_operator();
    harness
        .apply(&schema_yaml(
            "lonely",
            &unique_name("lonely"),
            &avro_record(V1),
            "  clusterRef: {name: plain}\n",
        ))
        .await
        .unwrap();
    let schema = harness
        .wait_for::<Schema>("lonely", "Stalled", |s| {
            condition(s.status.as_ref().map(|s| s.conditions.as_slice()), "Stalled")
                .is_some_and(|(st, _, _)| st == "True")
        })
        .await;
    let (_, reason, message) =
        condition(schema.status.as_ref().map(|s| s.conditions.as_slice()), "Stalled").unwrap();
    assert_eq!(reason, "NoSchemaRegistry");
    assert!(message.contains("spec.schemaRegistry"), "{message}");
    harness.cleanup().await;
}

#[tokio::test]
async fn a_second_schema_for_the_same_subject_is_stalled() {
    let mut harness = Harness::new("e2e-schema-conflict").await;
    harness.start_operator();
    let subject = unique_name("shared-value");
    harness
        .apply(&schema_yaml("first", &subject, &avro_record(V1), ""))
        .await
        .unwrap();
    wait_ready(&harness, "first").await;
    harness
        .apply(&schema_yaml(
            "second",
            &subject,
            &avro_record(V2),
            "  deletionPolicy: Delete\n",
        ))
        .await
        .unwrap();
    let second = harness
        .wait_for::<Schema>("second", "Stalled", |s| {
            condition(s.status.as_ref().map(|s| s.conditions.as_slice()), "Stalled")
                .is_some_and(|(st, _, _)| st == "True")
        })
        .await;
    let (_, reason, message) =
        condition(second.status.as_ref().map(|s| s.conditions.as_slice()), "Stalled").unwrap();
    assert_eq!(reason, "SubjectConflict");
    assert!(
        message.contains(&format!("{}/first", harness.namespace)),
        "{message}"
    );
    assert_eq!(
        registry(&harness.endpoints)
            .latest(&subject)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );

    // Deleting the loser (deletionPolicy Delete) must not delete the owner's subject.
    harness
        .api::<Schema>()
        .delete("second", &DeleteParams::default())
        .await
        .unwrap();
    let schemas = harness.api::<Schema>();
    eventually("second Schema gone", CONVERGE, || async {
        Ok(schemas.get_opt("second").await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    assert!(
        registry(&harness.endpoints)
            .latest(&subject)
            .await
            .unwrap()
            .is_some()
    );

    harness.cleanup().await;
    registry(&Endpoints::from_env())
        .delete_subject(&subject, true)
        .await
        .unwrap();
}
