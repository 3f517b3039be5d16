//! The client against the local registry (`make infra-up`: Apicurio
//! Registry's Confluent-compatible API on 127.0.0.1:18081). These tests fail,
//! never skip, when it is down.
//!
//! Where Apicurio answers differently from Confluent (see
//! scripts/infra/registry.sh) the tests assert only what both guarantee.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::json;
use tributary_registry::{
    Compatibility, RegistryClient, RegistryError, SchemaDefinition, SchemaReference, SchemaType,
};
use tributary_testkit::{Endpoints, unique_name};

/// Every compatibility level the API knows.
const LEVELS: [&str; 7] = [
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
];

fn client() -> RegistryClient {
    let endpoints = Endpoints::from_env();
    RegistryClient::new(&endpoints.registry_url, None, None, Duration::from_secs(10)).unwrap()
}

/// A client after checking the registry answers, so a stopped registry fails
/// every test with one clear message.
async fn live_client() -> RegistryClient {
    let client = client();
    if let Err(error) = client.subjects().await {
        panic!(
            "the local schema registry at {} does not answer (start it with `make infra-up`): {error}",
            client.base_url()
        );
    }
    client
}

fn rating_v1() -> SchemaDefinition {
    SchemaDefinition::avro(
        json!({
            "type": "record",
            "name": "Rating",
            "namespace": "dev.tributary.test",
            "fields": [
                {"name": "customer_id", "type": "long"},
                {"name": "rating", "type": "int"}
            ]
        })
        .to_string(),
    )
}

fn rating_v2() -> SchemaDefinition {
    SchemaDefinition::avro(
        json!({
            "type": "record",
            "name": "Rating",
            "namespace": "dev.tributary.test",
            "fields": [
                {"name": "customer_id", "type": "long"},
                {"name": "rating", "type": "int"},
                {"name": "comment", "type": ["null", "string"], "default": null}
            ]
        })
        .to_string(),
    )
}

#[tokio::test]
async fn register_then_lookup_finds_the_same_version() {
    let registry = live_client().await;
    let subject = unique_name("reg-lookup-value");
    // A field name unique to this test, so the schema id is new, not shared.
    let schema = SchemaDefinition::avro(
        json!({"type": "record", "name": "Unique", "fields": [{"name": subject.replace('-', "_"), "type": "string"}]})
            .to_string(),
    );

    let registered = registry.register(&subject, &schema).await.unwrap();
    assert_eq!(registered.subject, subject);
    assert_eq!(registered.version, 1);
    assert!(registered.id > 0, "{registered:?}");
    assert_eq!(registered.schema.schema_type, SchemaType::Avro);

    let found = registry
        .lookup(&subject, &schema)
        .await
        .unwrap()
        .expect("lookup finds the schema");
    assert_eq!((found.id, found.version), (registered.id, registered.version));
    assert_eq!(found.subject, subject);

    let by_id = registry.schema_by_id(registered.id).await.unwrap();
    assert_eq!(by_id.schema_type, SchemaType::Avro);
    let stored: serde_json::Value = serde_json::from_str(&by_id.schema).unwrap();
    let sent: serde_json::Value = serde_json::from_str(&schema.schema).unwrap();
    assert_eq!(stored, sent);

    assert!(registry.subjects().await.unwrap().contains(&subject));
    registry.delete_subject(&subject, true).await.unwrap();
}

#[tokio::test]
async fn re_registering_the_same_schema_is_idempotent() {
    let registry = live_client().await;
    let subject = unique_name("reg-idempotent-value");

    let first = registry.register(&subject, &rating_v1()).await.unwrap();
    let again = registry.register(&subject, &rating_v1()).await.unwrap();
    assert_eq!((again.id, again.version), (first.id, first.version));
    assert_eq!(again.version, 1);

    registry.delete_subject(&subject, true).await.unwrap();
}

/// Many topics with the same value schema registered at once (an operator
/// reconciling a batch of Schema resources): every registration succeeds and
/// they share one id. (Apicurio's in-memory store failed this with 409s, 500s
/// and 20-30 s lock waits, hence its PostgreSQL storage in scripts/infra.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_schema_under_many_subjects_all_succeed() {
    let registry = live_client().await;
    // A schema text no other test registers, so every registration races to
    // create its content.
    let schema = SchemaDefinition::avro(
        json!({"type": "record", "name": "Race", "namespace": "dev.tributary.test",
               "doc": unique_name("race"), "fields": [{"name": "id", "type": "long"}]})
        .to_string(),
    );
    let subjects: Vec<String> = (0..16).map(|_| unique_name("reg-race-value")).collect();
    let registrations = subjects.iter().map(|subject| {
        let (registry, schema) = (registry.clone(), schema.clone());
        let subject = subject.clone();
        tokio::spawn(async move { registry.register(&subject, &schema).await })
    });
    let mut ids = Vec::new();
    for registration in registrations.collect::<Vec<_>>() {
        let registered = registration.await.unwrap().unwrap();
        assert_eq!(registered.version, 1);
        ids.push(registered.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one schema text, one id: {ids:?}");
    for subject in &subjects {
        registry.delete_subject(subject, true).await.unwrap();
    }
}

#[tokio::test]
async fn a_second_schema_becomes_version_2_and_the_latest() {
    let registry = live_client().await;
    let subject = unique_name("reg-evolve-value");

    let first = registry.register(&subject, &rating_v1()).await.unwrap();
    registry
        .check_compatibility(&subject, &rating_v2())
        .await
        .unwrap();
    let second = registry.register(&subject, &rating_v2()).await.unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(second.version, 2);
    assert_ne!(first.id, second.id);

    let latest = registry
        .latest(&subject)
        .await
        .unwrap()
        .expect("subject has versions");
    assert_eq!((latest.id, latest.version), (second.id, 2));
    assert_eq!(latest.subject, subject);
    let stored: serde_json::Value = serde_json::from_str(&latest.schema.schema).unwrap();
    assert_eq!(stored["fields"].as_array().unwrap().len(), 3);

    // The first version is still found by content.
    let old = registry.lookup(&subject, &rating_v1()).await.unwrap().unwrap();
    assert_eq!((old.id, old.version), (first.id, 1));

    registry.delete_subject(&subject, true).await.unwrap();
}

#[tokio::test]
async fn check_compatibility_of_a_new_subject_is_ok() {
    let registry = live_client().await;
    let subject = unique_name("reg-compat-new-value");
    registry
        .check_compatibility(&subject, &rating_v1())
        .await
        .unwrap();
}

#[tokio::test]
async fn references_to_another_subject() {
    let registry = live_client().await;
    let customer_subject = unique_name("reg-ref-customer");
    let order_subject = unique_name("reg-ref-order-value");

    let customer = SchemaDefinition::avro(
        json!({
            "type": "record",
            "name": "Customer",
            "namespace": "dev.tributary.test",
            "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]
        })
        .to_string(),
    );
    let customer_registered = registry.register(&customer_subject, &customer).await.unwrap();
    assert_eq!(customer_registered.version, 1);

    let order = SchemaDefinition {
        schema_type: SchemaType::Avro,
        schema: json!({
            "type": "record",
            "name": "Order",
            "namespace": "dev.tributary.test",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "customer", "type": "dev.tributary.test.Customer"}
            ]
        })
        .to_string(),
        references: vec![SchemaReference {
            name: "dev.tributary.test.Customer".into(),
            subject: customer_subject.clone(),
            version: 1,
        }],
    };
    let order_registered = registry.register(&order_subject, &order).await.unwrap();
    assert_eq!(order_registered.version, 1);
    assert_eq!(order_registered.schema.references, order.references);

    let latest = registry.latest(&order_subject).await.unwrap().unwrap();
    assert_eq!(latest.schema.references, order.references);
    let by_id = registry.schema_by_id(order_registered.id).await.unwrap();
    assert_eq!(by_id.references, order.references);

    // A reference to a version that does not exist is refused as invalid.
    let dangling = SchemaDefinition {
        references: vec![SchemaReference {
            version: 9,
            ..order.references[0].clone()
        }],
        ..order.clone()
    };
    let error = registry
        .register(&unique_name("reg-ref-dangling"), &dangling)
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::InvalidSchema(_)), "{error:?}");

    // Referencing subject first: the registry protects referenced versions.
    registry.delete_subject(&order_subject, true).await.unwrap();
    registry.delete_subject(&customer_subject, true).await.unwrap();
}

#[tokio::test]
async fn set_compatibility_is_read_back() {
    let registry = live_client().await;
    let subject = unique_name("reg-config-value");
    registry.register(&subject, &rating_v1()).await.unwrap();

    let inherited = registry.compatibility(&subject).await.unwrap();
    assert!(LEVELS.contains(&inherited.as_str()), "{inherited}");

    for level in [
        Compatibility::FullTransitive,
        Compatibility::None,
        Compatibility::Forward,
    ] {
        registry.set_compatibility(&subject, level).await.unwrap();
        assert_eq!(registry.compatibility(&subject).await.unwrap(), level.as_str());
    }

    // A subject without a level of its own (not even existing) reads the global one.
    let global = registry
        .compatibility(&unique_name("reg-config-other"))
        .await
        .unwrap();
    assert!(LEVELS.contains(&global.as_str()), "{global}");

    registry.delete_subject(&subject, true).await.unwrap();
}

#[tokio::test]
async fn malformed_json_schema_is_invalid() {
    let registry = live_client().await;
    let subject = unique_name("reg-invalid-value");
    let broken = SchemaDefinition {
        schema_type: SchemaType::Json,
        schema: r#"{"type": "object", "properties": "#.into(),
        references: Vec::new(),
    };
    let error = registry.register(&subject, &broken).await.unwrap_err();
    assert!(matches!(error, RegistryError::InvalidSchema(_)), "{error:?}");
    assert!(!error.is_transient());
    assert_eq!(registry.latest(&subject).await.unwrap(), None);
}

#[tokio::test]
async fn json_schema_round_trips_its_type() {
    let registry = live_client().await;
    let subject = unique_name("reg-json-value");
    let schema = SchemaDefinition {
        schema_type: SchemaType::Json,
        schema: json!({"type": "object", "properties": {"id": {"type": "integer"}}}).to_string(),
        references: Vec::new(),
    };
    let registered = registry.register(&subject, &schema).await.unwrap();
    let latest = registry.latest(&subject).await.unwrap().unwrap();
    assert_eq!(latest.schema.schema_type, SchemaType::Json);
    assert_eq!(
        registry.schema_by_id(registered.id).await.unwrap().schema_type,
        SchemaType::Json
    );
    registry.delete_subject(&subject, true).await.unwrap();
}

#[tokio::test]
async fn deleted_subject_has_no_latest_version() {
    let registry = live_client().await;
    let subject = unique_name("reg-delete-value");
    let registered = registry.register(&subject, &rating_v1()).await.unwrap();

    registry.delete_subject(&subject, false).await.unwrap();
    assert_eq!(registry.latest(&subject).await.unwrap(), None);
    assert!(!registry.subjects().await.unwrap().contains(&subject));
    // Soft-deleted: the id still resolves (serializers may hold it).
    registry.schema_by_id(registered.id).await.unwrap();

    // Deleting again, permanently, then once more: all fine.
    registry.delete_subject(&subject, true).await.unwrap();
    registry.delete_subject(&subject, true).await.unwrap();
    registry
        .delete_subject(&unique_name("reg-never-existed"), false)
        .await
        .unwrap();
    assert_eq!(registry.latest(&subject).await.unwrap(), None);
}

#[tokio::test]
async fn unknown_subject_and_id() {
    let registry = live_client().await;
    let subject = unique_name("reg-unknown-value");
    assert_eq!(registry.lookup(&subject, &rating_v1()).await.unwrap(), None);
    assert_eq!(registry.latest(&subject).await.unwrap(), None);
    let error = registry.schema_by_id(i64::from(i32::MAX)).await.unwrap_err();
    assert!(matches!(error, RegistryError::NotFound(_)), "{error:?}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_transient() {
    let registry = RegistryClient::new("http://127.0.0.1:1", None, None, Duration::from_secs(5)).unwrap();
    let error = registry.subjects().await.unwrap_err();
    assert!(matches!(error, RegistryError::Unreachable(_)), "{error:?}");
    assert!(error.is_transient());
    let error = registry.register("s", &rating_v1()).await.unwrap_err();
    assert!(matches!(error, RegistryError::Unreachable(_)), "{error:?}");
}

#[tokio::test]
async fn credentials_never_show_in_errors() {
    use tributary_registry::RegistryAuth;
    let auth = RegistryAuth {
        username: "tester".into(),
        password: "pa55-w0rd-xyz".into(),
    };
    let registry =
        RegistryClient::new("http://127.0.0.1:1", Some(auth), None, Duration::from_secs(5)).unwrap();
    let error = registry.subjects().await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains("pa55-w0rd-xyz"), "{text}");
    assert!(!text.contains("tester"), "{text}");
}

#[tokio::test]
async fn an_incompatible_schema_is_refused_and_the_old_version_stays() {
    let registry = live_client().await;
    let subject = unique_name("reg-compat-value");
    let v1 = registry.register(&subject, &rating_v1()).await.unwrap();
    registry
        .set_compatibility(&subject, Compatibility::Backward)
        .await
        .unwrap();

    // A new required field without a default breaks BACKWARD.
    let breaking = SchemaDefinition::avro(
        json!({"type": "record", "name": "Rating", "namespace": "dev.tributary.test", "fields": [
            {"name": "customer_id", "type": "long"}, {"name": "rating", "type": "int"},
            {"name": "region", "type": "string"}
        ]})
        .to_string(),
    );
    let checked = registry
        .check_compatibility(&subject, &breaking)
        .await
        .unwrap_err();
    assert!(matches!(checked, RegistryError::Incompatible(_)), "{checked:?}");
    let refused = registry.register(&subject, &breaking).await.unwrap_err();
    assert!(
        matches!(&refused, RegistryError::Incompatible(m) if m.contains("region")),
        "{refused:?}"
    );
    assert!(!refused.is_transient());
    let latest = registry.latest(&subject).await.unwrap().unwrap();
    assert_eq!((latest.id, latest.version), (v1.id, v1.version));
    registry.delete_subject(&subject, true).await.unwrap();
}
