//! Kubelet behaviour of the harness that operator tests rely on, with small
//! shell containers (image `tributary-worker`, so the harness runs them):
//! a crashing container backs off in `CrashLoopBackOff` with a growing
//! restart count; a missing Secret holds the container in
//! `CreateContainerConfigError` until the Secret exists; a `Recreate`
//! rollout starts the new pod only after the old process has stopped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use support::Harness;
use tributary_e2e::kubelet::{Kubelet, KubeletConfig};
use tributary_testkit::eventually;

const WAIT: Duration = Duration::from_mins(1);

async fn start(prefix: &str) -> (Harness, Kubelet) {
    let harness = Harness::new(prefix).await;
    let kubelet = Kubelet::start(
        harness.client.clone(),
        KubeletConfig::for_namespaces([harness.namespace.clone()]).fast(),
    )
    .await
    .unwrap();
    (harness, kubelet)
}

/// A Deployment `name` of one container running `script` with `sh`.
fn deployment(name: &str, script: &str, extra_container_yaml: &str, strategy: &str) -> String {
    format!(
        r"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  strategy: {{type: {strategy}}}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: main
        image: ghcr.io/tributary-dev/tributary-worker:test
        command: [sh, -c, {script:?}]
{extra_container_yaml}"
    )
}

/// The first container status of the only pod of Deployment `app` once `check` holds.
async fn wait_container(
    harness: &Harness,
    kubelet: &Kubelet,
    app: &str,
    what: &str,
    check: impl Fn(&ContainerStatus) -> bool,
) -> (String, ContainerStatus) {
    let pods: Api<Pod> = harness.api();
    let selector = format!("app={app}");
    eventually(what, WAIT, || async {
        let list = pods.list(&ListParams::default().labels(&selector)).await?;
        Ok(list.items.into_iter().find_map(|pod| {
            let name = pod.name_any();
            let status = pod.status?.container_statuses?.into_iter().next()?;
            check(&status).then_some((name, status))
        }))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()))
}

fn waiting_reason(status: &ContainerStatus) -> Option<&str> {
    status.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashing_container_backs_off_and_counts_restarts() {
    let (harness, kubelet) = start("e2e-kubelet-crash").await;
    harness
        .apply(&deployment(
            "crasher",
            "echo failing; exit 3",
            "",
            "RollingUpdate",
        ))
        .await
        .unwrap();
    // Restarts immediately once, then waits 1 s, 2 s (fast timings): the
    // third failure is seen in CrashLoopBackOff with the last exit code.
    let (pod, status) = wait_container(
        &harness,
        &kubelet,
        "crasher",
        "CrashLoopBackOff after 2 restarts",
        |s| s.restart_count >= 2 && waiting_reason(s) == Some("CrashLoopBackOff"),
    )
    .await;
    let last = status.last_state.and_then(|s| s.terminated).unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert!(!status.ready);
    let pods: Api<Pod> = harness.api();
    let ready = pods.get(&pod).await.unwrap().status.unwrap().conditions.unwrap();
    assert!(
        ready.iter().any(|c| c.type_ == "Ready" && c.status == "False"),
        "{ready:?}"
    );
    assert!(kubelet.logs(&harness.namespace, &pod).contains("failing"));
    drop(kubelet);
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_holds_the_container_until_it_exists() {
    let (harness, kubelet) = start("e2e-kubelet-secret").await;
    let env = "        env:\n        - name: PASSWORD\n          valueFrom: {secretKeyRef: {name: db, key: password}}\n";
    harness
        .apply(&deployment(
            "needs-secret",
            "echo \"got ${#PASSWORD} chars\"; sleep 600",
            env,
            "RollingUpdate",
        ))
        .await
        .unwrap();
    let (_, status) = wait_container(
        &harness,
        &kubelet,
        "needs-secret",
        "CreateContainerConfigError",
        |s| waiting_reason(s) == Some("CreateContainerConfigError"),
    )
    .await;
    let message = status.state.unwrap().waiting.unwrap().message.unwrap();
    assert_eq!(message, "secret \"db\" not found");
    assert!(kubelet.processes().is_empty());

    harness
        .apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: s3cret\n")
        .await
        .unwrap();
    let (pod, _) = wait_container(&harness, &kubelet, "needs-secret", "running and ready", |s| {
        s.ready && s.state.as_ref().is_some_and(|s| s.running.is_some())
    })
    .await;
    eventually("the value reached the process", WAIT, || async {
        Ok(kubelet
            .logs(&harness.namespace, &pod)
            .contains("got 6 chars")
            .then_some(()))
    })
    .await
    .unwrap();
    drop(kubelet);
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreate_rollout_starts_the_new_pod_after_the_old_process_stopped() {
    let (harness, kubelet) = start("e2e-kubelet-recreate").await;
    // SIGTERM reaches the shell's trap, which takes 2 s to stop.
    let script = "trap 'sleep 2; echo stopped; exit 0' TERM; echo started; while true; do sleep 0.2; done";
    harness
        .apply(&deployment("slow-stop", script, "", "Recreate"))
        .await
        .unwrap();
    let ns = harness.namespace.clone();
    let old = eventually("first pod runs", WAIT, || async {
        Ok(kubelet.processes().into_iter().next())
    })
    .await
    .unwrap();

    let deployments: Api<Deployment> = harness.api();
    let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"rollout": "2"}}}}});
    deployments
        .patch("slow-stop", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let new = eventually("the new revision runs", WAIT, || async {
        Ok(kubelet.processes().into_iter().find(|p| p.pod != old.pod))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    let old_log = kubelet.logs(&ns, &old.pod);
    let new_log = kubelet.logs(&ns, &new.pod);
    let stopped_at = old_log
        .lines()
        .find(|l| l.contains("container main exited"))
        .unwrap_or_else(|| panic!("old process stopped before the new one started:\n{old_log}"));
    let started_at = new_log
        .lines()
        .find(|l| l.contains("container main started"))
        .unwrap();
    // Lines read `--- kubelet <RFC 3339 time>: ...`.
    let time = |line: &str| -> Timestamp {
        line.split_whitespace()
            .nth(2)
            .unwrap()
            .trim_end_matches(':')
            .parse()
            .unwrap()
    };
    assert!(
        time(stopped_at) <= time(started_at),
        "old stopped {stopped_at}, new started {started_at}"
    );
    assert!(old_log.contains("stopped"), "graceful stop:\n{old_log}");

    // Dropping the harness leaves no process behind (killed, not restarted).
    drop(kubelet);
    let stat = format!("/proc/{}/stat", new.pid);
    eventually(
        "the process is gone after drop",
        Duration::from_secs(10),
        || async {
            let alive = std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z "));
            Ok((!alive).then_some(()))
        },
    )
    .await
    .unwrap();
    harness.cleanup().await;
}
