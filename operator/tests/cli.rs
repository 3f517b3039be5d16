//! The operator's command line as the chart and the manifests use it: every
//! flag they pass exists, and each has its environment variable. (It also
//! makes `cargo test` build the `tributary-operator` binary that the e2e
//! kubelet harness runs from the chart's Deployment.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn help_lists_the_flags_and_environment_variables_the_chart_sets() {
    let output = Command::new(env!("CARGO_BIN_EXE_tributary-operator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, env) in [
        ("--metrics-addr", "TRIBUTARY_METRICS_ADDR"),
        ("--leader-election", "TRIBUTARY_LEADER_ELECTION"),
        ("--watch-namespace", "TRIBUTARY_WATCH_NAMESPACE"),
        ("--worker-image", "TRIBUTARY_WORKER_IMAGE"),
        ("--status-topic", "TRIBUTARY_STATUS_TOPIC"),
        ("--status-interval-seconds", "TRIBUTARY_STATUS_INTERVAL_SECONDS"),
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
        assert!(help.contains(env), "{env} missing from:\n{help}");
    }
}

#[test]
fn an_unknown_flag_is_refused_with_its_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_tributary-operator"))
        .arg("--metrics-adr=0.0.0.0:1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("--metrics-adr"), "{error}");
}
