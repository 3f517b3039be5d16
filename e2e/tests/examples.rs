//! The manifests in deploy/examples are what users copy first: every
//! document of every file applies cleanly against the real apiserver with
//! the CRDs installed (server-side dry run: schema, CEL rules, defaults —
//! nothing is stored), and every Stream's query passes the operator's own
//! planner (what it checks at reconcile before any worker starts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use support::{Harness, yaml_documents};
use tributary_api::Stream;

#[tokio::test]
async fn every_example_applies_with_a_server_side_dry_run_and_its_sql_plans() {
    let harness = Harness::new("e2e-examples").await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut kinds = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for document in yaml_documents(&text) {
            let value: serde_yaml::Value = serde_yaml::from_str(&document).unwrap();
            let kind = value["kind"].as_str().unwrap().to_owned();
            let name = value["metadata"]["name"].as_str().unwrap().to_owned();
            let what = format!("{}: {kind}/{name}", file.display());
            harness
                .dry_run_apply(&document)
                .await
                .unwrap_or_else(|e| panic!("{what} is refused: {e}"));
            if kind == "Stream" {
                let stream: Stream = serde_yaml::from_str(&document).unwrap();
                tributary_operator::controller::stream::lineage(&stream)
                    .unwrap_or_else(|f| panic!("{what}: {}: {}", f.reason, f.message));
            }
            kinds.push(kind);
        }
    }
    // The two example pipelines are here: the ratings system with its
    // Streams, and the bike store's CDC source and search sink.
    for kind in ["KafkaCluster", "Topic", "Schema", "Connector", "Stream"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {files:?}");
    }
    assert!(kinds.iter().filter(|k| *k == "Stream").count() >= 2, "{kinds:?}");
    // Dry runs store nothing.
    let streams: kube::Api<Stream> = harness.api();
    assert!(
        streams
            .list(&kube::api::ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    harness.cleanup().await;
}
