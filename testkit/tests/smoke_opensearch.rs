//! OpenSearch smoke test: index a document and find it with a search, through
//! the same REST endpoints an Elasticsearch sink uses.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{Value, json};
use tributary_testkit::{Endpoints, unique_name};

#[tokio::test]
async fn index_and_search_a_document() {
    let endpoints = Endpoints::from_env();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let index = unique_name("smoke-ratings");
    let base = &endpoints.opensearch_url;

    http.put(format!("{base}/{index}/_doc/42?refresh=true"))
        .json(&json!({"customer_id": 7, "product_id": 42, "rating": 2, "comment": "wheel wobbles"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("OpenSearch at {base} unreachable: {e}"))
        .error_for_status()
        .unwrap();

    let found: Value = http
        .post(format!("{base}/{index}/_search"))
        .json(&json!({"query": {"match": {"comment": "wobbles"}}}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let hits = found["hits"]["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {found}"));
    assert_eq!(hits.len(), 1, "{found}");
    assert_eq!(hits[0]["_id"], json!("42"));
    assert_eq!(hits[0]["_source"]["rating"], json!(2));

    http.delete(format!("{base}/{index}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}
