//! The Helm chart `charts/tributary`: `helm lint`, what `helm template` renders
//! (kinds, the hardened pod, RBAC rules exactly the operator's needs, cluster
//! and namespaced scope), `values.schema.json` refusing bad values with the
//! key's name, the plain manifests in `deploy/operator/` matching the chart,
//! and `helm install` / `helm uninstall` on the real control plane with the
//! installed RBAC checked through the API server's own authorizer.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tributary_testkit::{Endpoints, eventually, unique_name};

/// Kubernetes version `helm template` and `helm lint` assume without a cluster.
const KUBE_VERSION: &str = "1.33.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> String {
    repo().join("charts/tributary").display().to_string()
}

fn run_helm(args: &[&str]) -> Output {
    let endpoints = Endpoints::from_env();
    let helm = endpoints.tool("helm");
    Command::new(&helm)
        .args(args)
        .env("KUBECONFIG", &endpoints.kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run `make infra-helm`)", helm.display()))
}

fn helm(args: &[&str]) -> String {
    let output = run_helm(args);
    assert!(
        output.status.success(),
        "helm {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// helm's error output for a command that must fail.
fn helm_error(args: &[&str]) -> String {
    let output = run_helm(args);
    assert!(
        !output.status.success(),
        "helm {args:?} should have failed but rendered:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).unwrap()
}

/// `helm template` of the chart as release `tributary` in `namespace`, one
/// JSON value per object.
fn render(namespace: &str, set: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "tributary",
        &chart,
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
    ];
    for value in set {
        args.extend(["--set", value]);
    }
    parse_documents(&helm(&args))
}

fn parse_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .filter(|object: &Value| !object.is_null())
        .collect()
}

fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", names(objects)))
}

fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{} {}", o["kind"], o["metadata"]["name"]))
        .collect()
}

/// RBAC rules flattened to `group resource verb [resourceName]`, so a rule set
/// compares as a set regardless of how rules are grouped.
fn permissions(rules: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().unwrap() {
        let list = |key: &str| -> Vec<String> {
            rule[key].as_array().map_or_else(Vec::new, |values| {
                values.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
            })
        };
        let names = list("resourceNames");
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    if names.is_empty() {
                        out.insert(format!("{group} {resource} {verb}"));
                    }
                    for name in &names {
                        out.insert(format!("{group} {resource} {verb} {name}"));
                    }
                }
            }
        }
    }
    out
}

fn expand(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for group in groups {
        for resource in resources {
            for verb in verbs {
                out.push(format!("{group} {resource} {verb}"));
            }
        }
    }
    out
}

/// The operator's needs (contract "Operator RBAC needs"), nothing more.
fn operator_permissions() -> BTreeSet<String> {
    let kinds = ["kafkaclusters", "topics", "schemas", "connectors", "streams"];
    let status: Vec<String> = kinds.iter().map(|k| format!("{k}/status")).collect();
    let finalizers: Vec<String> = kinds.iter().map(|k| format!("{k}/finalizers")).collect();
    let status: Vec<&str> = status.iter().map(String::as_str).collect();
    let finalizers: Vec<&str> = finalizers.iter().map(String::as_str).collect();
    let read = ["get", "list", "watch"];
    let manage = ["get", "list", "watch", "create", "patch", "update", "delete"];
    let mut out = BTreeSet::new();
    out.extend(expand(
        &["tributary.dev"],
        &kinds,
        &["get", "list", "watch", "patch", "update"],
    ));
    out.extend(expand(&["tributary.dev"], &status, &["get", "patch", "update"]));
    out.extend(expand(&["tributary.dev"], &finalizers, &["update"]));
    out.extend(expand(&[""], &["configmaps", "serviceaccounts"], &manage));
    out.extend(expand(&["apps"], &["deployments"], &manage));
    // Secrets: one by name, never listed or watched (a list would hand the
    // operator every credential in the namespace).
    out.extend(expand(&[""], &["secrets"], &["get"]));
    out.extend(expand(&[""], &["pods"], &read));
    out.extend(expand(&["", "events.k8s.io"], &["events"], &["create", "patch"]));
    out
}

fn lease_permissions() -> BTreeSet<String> {
    let lease = tributary_operator::leader::LEASE_NAME;
    let mut out: BTreeSet<String> = ["create"]
        .iter()
        .map(|verb| format!("coordination.k8s.io leases {verb}"))
        .collect();
    for verb in ["get", "update", "patch"] {
        out.insert(format!("coordination.k8s.io leases {verb} {lease}"));
    }
    out
}

fn container(objects: &[Value]) -> &Value {
    let deployment = find(objects, "Deployment", "tributary-operator");
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name} in {:#}", container["env"]))
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn app_version() -> String {
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("charts/tributary/Chart.yaml")).unwrap())
            .unwrap();
    chart["appVersion"].as_str().unwrap().to_owned()
}

#[test]
fn lints_strictly_in_both_scopes() {
    let chart = chart();
    for extra in [&[][..], &["--set", "watch.scope=Namespace"][..]] {
        let mut args = vec!["lint", "--strict", &chart, "--kube-version", KUBE_VERSION];
        args.extend(extra);
        let output = helm(&args);
        assert!(output.contains("0 chart(s) failed"), "{output}");
    }
}

#[test]
fn default_values_render_a_hardened_operator_with_cluster_rbac() {
    let objects = render("tributary-system", &[]);
    assert_eq!(
        kinds(&objects),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
        .map(str::to_owned)
        .into(),
        "{:#?}",
        names(&objects)
    );

    let deployment = find(&objects, "Deployment", "tributary-operator");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "tributary-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = container(&objects);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true, "{security:#}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{security:#}");
    assert_eq!(security["runAsNonRoot"], true, "{security:#}");
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{security:#}");
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert!(
        container["resources"]["requests"]["memory"].is_string(),
        "{container:#}"
    );
    assert!(
        container["resources"]["limits"]["memory"].is_string(),
        "{container:#}"
    );

    // Probes on the metrics port; the operator listens there (env, so a local
    // pod runner can move it).
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["ports"][0]["name"], "metrics");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(env(container, "TRIBUTARY_METRICS_ADDR")["value"], "0.0.0.0:8080");

    // Images default to the chart's appVersion; the worker image is passed on.
    let version = app_version();
    assert_eq!(
        container["image"],
        format!("ghcr.io/tributary-dev/tributary-operator:{version}")
    );
    assert_eq!(
        env(container, "TRIBUTARY_WORKER_IMAGE")["value"],
        format!("ghcr.io/tributary-dev/tributary-worker:{version}")
    );
    // The Lease lives in the pod's namespace, named after the pod.
    assert_eq!(
        env(container, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env(container, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(args(container), ["--leader-election=true"]);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");

    let service = find(&objects, "Service", "tributary-operator-metrics");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"],
        "the Service selects the operator's pods"
    );

    // RBAC: exactly the operator's needs, cluster-wide; Leases only in its namespace.
    let role = find(&objects, "ClusterRole", "tributary-operator");
    assert_eq!(permissions(&role["rules"]), operator_permissions());
    let binding = find(&objects, "ClusterRoleBinding", "tributary-operator");
    assert_eq!(binding["roleRef"]["name"], "tributary-operator");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "tributary-operator", "namespace": "tributary-system"}])
    );
    let lease_role = find(&objects, "Role", "tributary-operator-leader-election");
    assert_eq!(lease_role["metadata"]["namespace"], "tributary-system");
    assert_eq!(permissions(&lease_role["rules"]), lease_permissions());
    let lease_binding = find(&objects, "RoleBinding", "tributary-operator-leader-election");
    assert_eq!(lease_binding["roleRef"]["kind"], "Role");
    assert_eq!(lease_binding["subjects"][0]["name"], "tributary-operator");
}

#[test]
fn namespaced_scope_renders_roles_only_and_watches_one_namespace() {
    let objects = render("team-a", &["watch.scope=Namespace"]);
    let found = kinds(&objects);
    assert!(
        !found.contains("ClusterRole") && !found.contains("ClusterRoleBinding"),
        "no cluster-wide permission in namespaced scope: {:#?}",
        names(&objects)
    );
    assert_eq!(
        args(container(&objects)),
        ["--leader-election=true", "--watch-namespace=team-a"]
    );
    let role = find(&objects, "Role", "tributary-operator");
    assert_eq!(role["metadata"]["namespace"], "team-a");
    assert_eq!(permissions(&role["rules"]), operator_permissions());

    // Watching another namespace than the release's: the Role and its binding
    // go there, the subject stays the release's ServiceAccount, the Lease
    // stays in the release's namespace.
    let objects = render("team-a", &["watch.scope=Namespace", "watch.namespace=pipelines"]);
    assert_eq!(
        args(container(&objects)),
        ["--leader-election=true", "--watch-namespace=pipelines"]
    );
    let role = find(&objects, "Role", "tributary-operator");
    assert_eq!(role["metadata"]["namespace"], "pipelines");
    let binding = find(&objects, "RoleBinding", "tributary-operator");
    assert_eq!(binding["metadata"]["namespace"], "pipelines");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "tributary-operator", "namespace": "team-a"}])
    );
    let lease_role = find(&objects, "Role", "tributary-operator-leader-election");
    assert_eq!(lease_role["metadata"]["namespace"], "team-a");
}

#[test]
fn leader_election_is_required_for_several_replicas() {
    let objects = render("ops", &["leaderElection.enabled=false"]);
    assert_eq!(args(container(&objects)), ["--leader-election=false"]);
    let deployment = find(&objects, "Deployment", "tributary-operator");
    assert_eq!(
        deployment["spec"]["strategy"]["type"], "Recreate",
        "without a Lease two pods must never overlap"
    );
    assert!(
        !objects
            .iter()
            .any(|o| o["metadata"]["name"] == "tributary-operator-leader-election"),
        "no Lease permission when leader election is off: {:#?}",
        names(&objects)
    );

    let chart = chart();
    let error = helm_error(&[
        "template",
        "tributary",
        &chart,
        "--set",
        "replicaCount=2",
        "--set",
        "leaderElection.enabled=false",
    ]);
    assert!(
        error.contains("leaderElection.enabled must be true when replicaCount is 2"),
        "{error}"
    );
}

#[test]
fn values_schema_refuses_bad_values_naming_the_key() {
    let chart = chart();
    let template = |set: &str| helm_error(&["template", "tributary", &chart, "--set", set]);

    let error = template("watch.scope=Everything");
    assert!(error.contains("/watch/scope"), "{error}");
    assert!(
        error.contains("'Cluster'") && error.contains("'Namespace'"),
        "{error}"
    );

    let error = template("replicas=2");
    assert!(
        error.contains("additional properties 'replicas' not allowed"),
        "{error}"
    );

    let error = template("metrics.port=80");
    assert!(error.contains("/metrics/port"), "{error}");
    assert!(error.contains("minimum"), "{error}");

    let error = template("image.pullPolicy=Sometimes");
    assert!(error.contains("/image/pullPolicy"), "{error}");
    assert!(error.contains("'IfNotPresent'"), "{error}");
}

#[test]
fn service_monitor_is_optional_and_selects_the_metrics_service() {
    let objects = render("ops", &["metrics.serviceMonitor.enabled=true"]);
    let monitor = find(&objects, "ServiceMonitor", "tributary-operator");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let service = find(&objects, "Service", "tributary-operator-metrics");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor's selector {key} matches the Service"
        );
    }
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"], json!(["ops"]));
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let read_dir = |dir: &str| -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&path).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let chart = read_dir("charts/tributary/crds");
    let generated: Vec<(String, String)> = tributary_api::crd::all()
        .into_iter()
        .map(|(file, crd)| (file.to_owned(), tributary_api::crd::to_yaml(&crd).unwrap()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        chart.iter().map(|(f, _)| f).collect::<Vec<_>>(),
        generated.iter().map(|(f, _)| f).collect::<Vec<_>>(),
        "run `make crds`"
    );
    assert!(
        chart == generated,
        "charts/tributary/crds/ is stale: run `make crds`"
    );
}

#[test]
fn plain_manifests_match_the_chart() {
    let endpoints = Endpoints::from_env();
    let output = Command::new("bash")
        .arg(repo().join("deploy/operator/generate.sh"))
        .arg("--check")
        .env("HELM", endpoints.tool("helm"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "deploy/operator/ is stale (run `make deploy-manifests`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // And they are what the RBAC e2e test runs the controllers under.
    let rbac = parse_documents(&std::fs::read_to_string(repo().join("deploy/operator/rbac.yaml")).unwrap());
    let role = find(&rbac, "ClusterRole", "tributary-operator");
    assert_eq!(permissions(&role["rules"]), operator_permissions());
    let operator =
        parse_documents(&std::fs::read_to_string(repo().join("deploy/operator/operator.yaml")).unwrap());
    assert_eq!(
        kinds(&operator),
        ["Deployment", "Service"].map(str::to_owned).into()
    );
}

// ---- helm install on the real control plane --------------------------------

/// Whether the API server's authorizer lets `namespace/account` do `verb` on
/// `group/resource` in `in_namespace` (None: cluster-wide).
async fn allowed(
    client: &Client,
    (namespace, account): (&str, &str),
    verb: &str,
    group: &str,
    resource: &str,
    in_namespace: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_owned())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{namespace}:{account}")),
            groups: Some(vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource,
                namespace: in_namespace.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await.unwrap();
    answer.status.is_some_and(|s| s.allowed)
}

async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // The operator's pods meet the "restricted" Pod Security Standard: the
    // namespace enforces it, so a violation would keep its pod from being created.
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        }}
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
}

async fn delete_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
}

/// `helm install`s the chart. Its pod is created (so admission is checked)
/// but kept off the kwok node: no pod runner may start a cluster-wide operator
/// from it that would reconcile other tests' resources.
fn install(release: &str, namespace: &str, set: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "install",
        release,
        &chart,
        "--namespace",
        namespace,
        "--set",
        "nodeSelector.tributary\\.dev/e2e=never-scheduled",
    ];
    for value in set {
        args.extend(["--set", value]);
    }
    helm(&args)
}

fn uninstall(release: &str, namespace: &str) {
    helm(&["uninstall", release, "--namespace", namespace]);
}

/// Waits until the Deployment's `ReplicaSet` created a pod: the API server
/// admitted the pod spec (Pod Security "restricted").
async fn wait_for_operator_pod(client: &Client, namespace: &str, release: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("app.kubernetes.io/instance={release},app.kubernetes.io/component=operator");
    eventually("operator pod created", Duration::from_mins(1), || async {
        let list = pods.list(&ListParams::default().labels(&selector)).await?;
        Ok((!list.items.is_empty()).then_some(()))
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn helm_install_cluster_scope_grants_exactly_the_operators_needs() {
    let client = support::client().await;
    let namespace = unique_name("e2e-helm");
    let release = unique_name("tributary");
    create_namespace(&client, &namespace).await;

    let notes = install(&release, &namespace, &[]);
    let name = format!("{release}-operator");
    assert!(
        notes.contains(&format!("rollout status deployment/{name}")),
        "NOTES.txt: {notes}"
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let deployment = deployments.get(&name).await.unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(name.as_str()));
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    accounts.get(&name).await.unwrap();
    Api::<ClusterRole>::all(client.clone()).get(&name).await.unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .get(&name)
        .await
        .unwrap();
    Api::<Role>::namespaced(client.clone(), &namespace)
        .get(&format!("{name}-leader-election"))
        .await
        .unwrap();
    wait_for_operator_pod(&client, &namespace, &release).await;

    // What the API server's authorizer says about the installed RBAC.
    let account = (namespace.as_str(), name.as_str());
    let elsewhere = Some("some-team");
    for (verb, group, resource) in [
        ("watch", "tributary.dev", "connectors"),
        ("patch", "tributary.dev", "streams/status"),
        ("update", "tributary.dev", "topics/finalizers"),
        ("create", "apps", "deployments"),
        ("delete", "", "configmaps"),
        ("create", "", "serviceaccounts"),
        ("get", "", "secrets"),
        ("watch", "", "pods"),
        ("create", "events.k8s.io", "events"),
    ] {
        assert!(
            allowed(&client, account, verb, group, resource, elsewhere).await,
            "{verb} {group}/{resource} in any namespace"
        );
    }
    for (verb, group, resource) in [
        ("create", "", "secrets"),
        ("update", "", "secrets"),
        ("list", "", "secrets"),
        ("watch", "", "secrets"),
        ("delete", "tributary.dev", "connectors"),
        ("create", "rbac.authorization.k8s.io", "rolebindings"),
        ("create", "", "pods"),
        ("update", "apiextensions.k8s.io", "customresourcedefinitions"),
        ("create", "coordination.k8s.io", "leases"),
    ] {
        assert!(
            !allowed(&client, account, verb, group, resource, elsewhere).await,
            "{verb} {group}/{resource} must be denied"
        );
    }
    assert!(
        allowed(
            &client,
            account,
            "create",
            "coordination.k8s.io",
            "leases",
            Some(&namespace)
        )
        .await
    );

    uninstall(&release, &namespace);
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&name)
            .await
            .unwrap()
            .is_none(),
        "uninstall removes the cluster-wide objects"
    );
    assert!(deployments.get_opt(&name).await.unwrap().is_none());
    delete_namespace(&client, &namespace).await;
}

#[tokio::test]
async fn helm_install_namespaced_scope_grants_nothing_outside_its_namespace() {
    let client = support::client().await;
    let namespace = unique_name("e2e-helm-ns");
    let release = unique_name("tributary");
    create_namespace(&client, &namespace).await;

    install(&release, &namespace, &["watch.scope=Namespace"]);
    let name = format!("{release}-operator");
    Api::<Role>::namespaced(client.clone(), &namespace)
        .get(&name)
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &namespace)
        .get(&name)
        .await
        .unwrap();
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&name)
            .await
            .unwrap()
            .is_none()
    );
    wait_for_operator_pod(&client, &namespace, &release).await;

    let account = (namespace.as_str(), name.as_str());
    for (verb, group, resource) in [
        ("list", "tributary.dev", "kafkaclusters"),
        ("patch", "tributary.dev", "connectors/status"),
        ("create", "apps", "deployments"),
        ("get", "", "secrets"),
    ] {
        assert!(
            allowed(&client, account, verb, group, resource, Some(&namespace)).await,
            "{verb} {group}/{resource} in its namespace"
        );
        assert!(
            !allowed(&client, account, verb, group, resource, Some("some-team")).await,
            "{verb} {group}/{resource} in another namespace must be denied"
        );
        assert!(
            !allowed(&client, account, verb, group, resource, None).await,
            "{verb} {group}/{resource} cluster-wide must be denied"
        );
    }

    uninstall(&release, &namespace);
    delete_namespace(&client, &namespace).await;
}
