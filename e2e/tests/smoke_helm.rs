//! Helm smoke test: the Helm binary built by `scripts/infra/helm.sh` runs and
//! renders a chart.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use tributary_testkit::Endpoints;

fn helm(args: &[&str]) -> String {
    let helm = Endpoints::from_env().tool("helm");
    let output = Command::new(&helm)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run `make infra-helm`)", helm.display()));
    assert!(
        output.status.success(),
        "helm {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn reports_a_v3_version() {
    let version = helm(&["version", "--short"]);
    assert!(version.starts_with("v3."), "unexpected helm version {version:?}");
}

#[test]
fn renders_a_trivial_chart() {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smoke-chart");
    let rendered = helm(&[
        "template",
        "demo",
        chart.to_str().unwrap(),
        "--set",
        "greeting=hi there",
        "--kube-version",
        "1.33.0",
    ]);
    assert!(rendered.contains("kind: ConfigMap"), "{rendered}");
    assert!(rendered.contains("name: demo-smoke"), "{rendered}");
    assert!(rendered.contains("greeting: \"hi there\""), "{rendered}");
}
