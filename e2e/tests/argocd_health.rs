//! The Argo CD health check `deploy/argocd/health.lua`, run by a real Lua 5.1
//! interpreter (Argo CD's gopher-lua implements 5.1) with only the libraries
//! Argo CD opens, on realistic Tributary objects as the API server returns
//! them; and `deploy/argocd/argocd-cm.yaml` carrying that script for every kind.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaOptions, LuaSerdeExt, StdLib};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script() -> String {
    std::fs::read_to_string(repo().join("deploy/argocd/health.lua")).unwrap()
}

/// Runs the health script on `object` (YAML) and returns (status, message).
fn health(object: &str) -> (String, String) {
    // Argo CD's sandbox: base, table, string, math; no os, io or debug.
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )
    .unwrap();
    let object: Value = serde_yaml::from_str(object).unwrap();
    // JSON null is nil in Argo CD's conversion, not a sentinel value.
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua.to_value_with(&object, options).unwrap();
    lua.globals().set("obj", obj).unwrap();
    let result: mlua::Table = lua
        .load(script())
        .set_name("health.lua")
        .eval()
        .unwrap_or_else(|e| panic!("health.lua failed: {e}"));
    let status: String = result.get("status").unwrap();
    let message: Option<String> = result.get("message").unwrap();
    (status, message.unwrap_or_default())
}

/// A resource of `kind` at `generation` with `spec` (YAML lines, indented two
/// spaces) and `status` (YAML lines, indented two spaces; empty: none yet).
fn object(kind: &str, generation: i64, spec: &str, status: &str) -> String {
    let mut text = format!(
        "apiVersion: tributary.dev/v1alpha1
kind: {kind}
metadata:
  name: ratings-search
  namespace: pipelines
  uid: 6f1c2d1e-8a41-4c55-9a63-2b1f0c7d9e10
  resourceVersion: \"48213\"
  generation: {generation}
  creationTimestamp: \"2026-12-02T09:00:00Z\"
  finalizers: [tributary.dev/cleanup]
  labels:
    app.kubernetes.io/instance: ratings
spec:
{spec}
"
    );
    if !status.is_empty() {
        text.push_str("status:\n");
        text.push_str(status);
        text.push('\n');
    }
    text
}

const SINK_SPEC: &str = "  clusterRef:
    name: main
  sink:
    opensearch:
      url: http://opensearch:9200
      topics: [ratings]";

/// kstatus conditions as the operator writes them, observed at `observed`.
fn conditions(
    observed: i64,
    ready: (&str, &str, &str),
    reconciling: &str,
    stalled: (&str, &str, &str),
) -> String {
    let condition = |type_: &str, (status, reason, message): (&str, &str, &str)| {
        format!(
            "  - type: {type_}
    status: \"{status}\"
    reason: {reason}
    message: \"{message}\"
    observedGeneration: {observed}
    lastTransitionTime: \"2026-12-02T09:01:00Z\""
        )
    };
    let reconciling = if reconciling == "True" {
        ("True", "Progressing", "Rolling out 2 workers")
    } else {
        ("False", "Idle", "")
    };
    format!(
        "  observedGeneration: {observed}
  conditions:
{}
{}
{}",
        condition("Ready", ready),
        condition("Reconciling", reconciling),
        condition("Stalled", stalled),
    )
}

const NOT_STALLED: (&str, &str, &str) = ("False", "Healthy", "");

#[test]
#[allow(clippy::too_many_lines)] // one table of cases
fn health_follows_the_kstatus_conditions() {
    let ready = ("True", "WorkersReady", "2/2 workers ready, lag 0 records");
    let stalled = (
        "True",
        "InvalidSpec",
        "spec.sink.opensearch.url: scheme must be http or https, got ftp",
    );
    let cases: Vec<(&str, String, (&str, &str))> = vec![
        (
            "no status yet",
            object("Connector", 1, SINK_SPEC, ""),
            ("Progressing", "Waiting for the operator to report status"),
        ),
        (
            "ready for the current generation",
            object(
                "Connector",
                3,
                SINK_SPEC,
                &conditions(3, ready, "False", NOT_STALLED),
            ),
            ("Healthy", "2/2 workers ready, lag 0 records"),
        ),
        (
            "ready, but for an older generation",
            object(
                "Connector",
                4,
                SINK_SPEC,
                &conditions(3, ready, "False", NOT_STALLED),
            ),
            ("Progressing", "Waiting for the operator to observe generation 4"),
        ),
        (
            "reconciling",
            object(
                "Stream",
                2,
                "  sql: SELECT * FROM ratings",
                &conditions(2, ("False", "Progressing", "Rolling out"), "True", NOT_STALLED),
            ),
            ("Progressing", "Rolling out 2 workers"),
        ),
        (
            "stalled",
            object(
                "Connector",
                5,
                SINK_SPEC,
                &conditions(5, ("False", "InvalidSpec", "see Stalled"), "False", stalled),
            ),
            (
                "Degraded",
                "spec.sink.opensearch.url: scheme must be http or https, got ftp",
            ),
        ),
        (
            "stalled with an empty message: the reason",
            object(
                "Topic",
                1,
                "  partitions: 3",
                &conditions(
                    1,
                    ("False", "TopicNameConflict", ""),
                    "False",
                    ("True", "TopicNameConflict", ""),
                ),
            ),
            ("Degraded", "TopicNameConflict"),
        ),
        (
            "paused and observed",
            object(
                "Connector",
                6,
                &format!("{SINK_SPEC}\n  state: Paused"),
                &conditions(6, ready, "False", NOT_STALLED),
            ),
            ("Suspended", "spec.state is Paused"),
        ),
        (
            "stopped and observed",
            object(
                "Stream",
                7,
                "  sql: SELECT * FROM ratings\n  state: Stopped",
                &conditions(7, ("False", "Stopped", "scaled to zero"), "False", NOT_STALLED),
            ),
            ("Suspended", "spec.state is Stopped"),
        ),
        (
            "paused but not yet observed",
            object(
                "Connector",
                7,
                &format!("{SINK_SPEC}\n  state: Paused"),
                &conditions(6, ready, "False", NOT_STALLED),
            ),
            ("Progressing", "Waiting for the operator to observe generation 7"),
        ),
        (
            "paused but stalled: the error wins",
            object(
                "Connector",
                8,
                &format!("{SINK_SPEC}\n  state: Paused"),
                &conditions(8, ("False", "InvalidSpec", "x"), "False", stalled),
            ),
            (
                "Degraded",
                "spec.sink.opensearch.url: scheme must be http or https, got ftp",
            ),
        ),
        (
            "running state is not suspended",
            object(
                "Connector",
                2,
                &format!("{SINK_SPEC}\n  state: Running"),
                &conditions(2, ready, "False", NOT_STALLED),
            ),
            ("Healthy", "2/2 workers ready, lag 0 records"),
        ),
        (
            "not ready, neither reconciling nor stalled",
            object(
                "KafkaCluster",
                1,
                "  bootstrapServers: [kafka:9092]",
                &conditions(
                    1,
                    ("False", "BrokersUnreachable", "no broker answered"),
                    "False",
                    NOT_STALLED,
                ),
            ),
            ("Progressing", "no broker answered"),
        ),
        (
            "ready kafka cluster",
            object(
                "KafkaCluster",
                1,
                "  bootstrapServers: [kafka:9092]",
                &conditions(1, ("True", "Connected", "3 brokers"), "False", NOT_STALLED),
            ),
            ("Healthy", "3 brokers"),
        ),
    ];
    for (name, object, (status, message)) in cases {
        assert_eq!(
            health(&object),
            (status.to_owned(), message.to_owned()),
            "case {name:?}:\n{object}"
        );
    }
}

#[test]
fn observed_generation_falls_back_to_the_ready_condition() {
    let without_top_level = |generation: i64| {
        object(
            "Schema",
            generation,
            "  subject: ratings-value",
            "  conditions:
  - type: Ready
    status: \"True\"
    reason: SchemaRegistered
    message: version 3
    observedGeneration: 2
    lastTransitionTime: \"2026-12-02T09:01:00Z\"",
        )
    };
    assert_eq!(
        health(&without_top_level(2)),
        ("Healthy".to_owned(), "version 3".to_owned())
    );
    assert_eq!(health(&without_top_level(3)).0, "Progressing");
}

#[test]
fn status_with_nulls_and_no_conditions_is_progressing() {
    let object = object(
        "Connector",
        1,
        SINK_SPEC,
        "  observedGeneration: 1\n  conditions: null\n  lag: null",
    );
    assert_eq!(
        health(&object),
        (
            "Progressing".to_owned(),
            "Waiting for the Ready condition".to_owned()
        )
    );
}

#[test]
fn argocd_cm_carries_the_script_for_every_kind() {
    let output = Command::new("bash")
        .arg(repo().join("deploy/argocd/generate.sh"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cm: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("deploy/argocd/argocd-cm.yaml")).unwrap())
            .unwrap();
    let script = script();
    let mut kinds: Vec<String> = tributary_api::crd::all()
        .into_iter()
        .map(|(_, crd)| crd.spec.names.kind)
        .collect();
    // Streams' CRD is being added; the check is there for it already.
    if !kinds.iter().any(|k| k == "Stream") {
        kinds.push("Stream".to_owned());
    }
    for kind in kinds {
        let key = format!("resource.customizations.health.tributary.dev_{kind}");
        assert_eq!(
            cm["data"][&key].as_str(),
            Some(script.as_str()),
            "{key} in argocd-cm.yaml"
        );
    }
}
