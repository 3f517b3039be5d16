//! Schema registry smoke test: register an Avro schema under a subject through
//! the Confluent REST API and read it back, as the operator's Schema controller will.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{Value, json};
use tributary_testkit::{Endpoints, unique_name};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[tokio::test]
async fn register_and_read_back_a_subject() {
    let endpoints = Endpoints::from_env();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let subject = unique_name("smoke-ratings-value");
    let schema = json!({
        "type": "record",
        "name": "Rating",
        "namespace": "dev.tributary.smoke",
        "fields": [
            {"name": "customer_id", "type": "long"},
            {"name": "product_id", "type": "long"},
            {"name": "rating", "type": "int"}
        ]
    });

    let registered: Value = http
        .post(format!("{}/subjects/{subject}/versions", endpoints.registry_url))
        .header("Content-Type", CONTENT_TYPE)
        .json(&json!({"schemaType": "AVRO", "schema": schema.to_string()}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("schema registry at {} unreachable: {e}", endpoints.registry_url))
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {registered}"));

    let latest: Value = http
        .get(format!(
            "{}/subjects/{subject}/versions/latest",
            endpoints.registry_url
        ))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["subject"], json!(subject));
    assert_eq!(latest["version"], json!(1));
    assert_eq!(latest["id"], json!(id));
    let stored: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(stored["name"], json!("Rating"));
    assert_eq!(stored["fields"].as_array().unwrap().len(), 3);

    let subjects: Vec<String> = http
        .get(format!("{}/subjects", endpoints.registry_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(subjects.contains(&subject), "{subject} missing from {subjects:?}");

    http.delete(format!("{}/subjects/{subject}", endpoints.registry_url))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}
