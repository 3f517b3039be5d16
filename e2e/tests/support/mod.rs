//! Harness for controller tests on the real control plane: installs the
//! CRDs, gives each test its own namespace and `KafkaCluster`, and runs the
//! operator's controllers in-process, scoped to that namespace, so tests run
//! in parallel without seeing each other's objects.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use kube::{Api, Client, Config, Resource, ResourceExt};
use tokio::task::JoinHandle;
use tributary_api::common::find_condition;
use tributary_operator::context::{Context, Settings};
use tributary_operator::metrics::Metrics;
use tributary_testkit::{Endpoints, eventually, unique_name};

/// How long a test waits for the operator to converge.
pub const CONVERGE: Duration = Duration::from_mins(1);

/// A client for the local control plane's admin kubeconfig.
pub async fn client() -> Client {
    client_as(None).await
}

/// A client that impersonates `service_account` (`namespace`, `name`).
pub async fn client_as_service_account(namespace: &str, name: &str) -> Client {
    client_as(Some((namespace, name))).await
}

async fn client_as(service_account: Option<(&str, &str)>) -> Client {
    let endpoints = Endpoints::from_env();
    let mut kubeconfig = Kubeconfig::read_from(&endpoints.kubeconfig).unwrap_or_else(|e| {
        panic!(
            "admin kubeconfig {} unreadable: {e}",
            endpoints.kubeconfig.display()
        )
    });
    if let Some((namespace, name)) = service_account {
        for named in &mut kubeconfig.auth_infos {
            if let Some(auth) = named.auth_info.as_mut() {
                auth.impersonate = Some(format!("system:serviceaccount:{namespace}:{name}"));
                auth.impersonate_groups = Some(vec![
                    "system:serviceaccounts".to_owned(),
                    format!("system:serviceaccounts:{namespace}"),
                    "system:authenticated".to_owned(),
                ]);
            }
        }
    }
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.connect_timeout = Some(Duration::from_secs(5));
    Client::try_from(config).unwrap()
}

/// Applies the generated CRDs from `crds/` and waits until they are served.
pub async fn install_crds(client: &Client) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("tributary-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {}: {e}", path.display()));
        eventually("CRD established", CONVERGE, || async {
            let current = crds.get(&crd.name_any()).await?;
            let established = current
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            Ok(established.then_some(()))
        })
        .await
        .unwrap();
    }
}

/// One test's world: a namespace, a `KafkaCluster` named `main` pointing at
/// the local Kafka and registry, and (when started) the operator.
pub struct Harness {
    pub client: Client,
    pub namespace: String,
    pub endpoints: Endpoints,
    operator: Option<(tokio::sync::watch::Sender<bool>, JoinHandle<()>)>,
}

impl Harness {
    pub async fn new(prefix: &str) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let namespace = unique_name(prefix);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(namespace.clone());
        namespaces.create(&PostParams::default(), &ns).await.unwrap();
        let endpoints = Endpoints::from_env();
        let harness = Self {
            client,
            namespace,
            endpoints,
            operator: None,
        };
        harness
            .apply(&format!(
                r"
apiVersion: tributary.dev/v1alpha1
kind: KafkaCluster
metadata:
  name: main
spec:
  bootstrapServers: [{kafka}]
  schemaRegistry:
    url: {registry}
",
                kafka = harness.endpoints.kafka_bootstrap,
                registry = harness.endpoints.registry_url,
            ))
            .await
            .unwrap();
        harness
    }

    /// Starts the controllers in-process, watching only this namespace.
    pub fn start_operator(&mut self) {
        let client = self.client.clone();
        self.start_operator_with(client);
    }

    /// Starts the controllers with another client (e.g. one impersonating the
    /// operator's ServiceAccount).
    pub fn start_operator_with(&mut self, client: Client) {
        assert!(self.operator.is_none(), "operator already running");
        let settings = Settings {
            resync: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            namespace: Some(self.namespace.clone()),
            ..Settings::default()
        };
        let context = Context::new(client, Arc::new(Metrics::default()), settings);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let task = tokio::spawn(tributary_operator::controller::run_all(context, shutdown));
        self.operator = Some((stop, task));
    }

    /// Stops the controllers gracefully (as on SIGTERM).
    pub async fn stop_operator(&mut self) {
        if let Some((stop, task)) = self.operator.take() {
            stop.send(true).unwrap();
            // In-flight reconciles finish first; each makes a few requests
            // bounded by the 5 s request timeout.
            tokio::time::timeout(Duration::from_mins(1), task)
                .await
                .expect("operator stops within 60s")
                .unwrap();
        }
    }

    /// Server-side applies one YAML document in this namespace.
    pub async fn apply(&self, yaml: &str) -> Result<DynamicObject, kube::Error> {
        let object: DynamicObject = serde_yaml::from_str(yaml).unwrap();
        let api = self.dynamic_api(&object);
        api.patch(
            &object.name_any(),
            &PatchParams::apply("tributary-e2e").force(),
            &Patch::Apply(&object),
        )
        .await
    }

    fn dynamic_api(&self, object: &DynamicObject) -> Api<DynamicObject> {
        let types = object.types.as_ref().unwrap();
        let (group, version) = types
            .api_version
            .split_once('/')
            .unwrap_or(("", &types.api_version));
        let resource = ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: types.api_version.clone(),
            kind: types.kind.clone(),
            plural: format!("{}s", types.kind.to_lowercase()),
        };
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }

    /// A typed API for kind `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Waits until `check` holds for the object `name` and returns it.
    pub async fn wait_for<K>(&self, name: &str, what: &str, check: impl Fn(&K) -> bool) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api = self.api::<K>();
        let last = std::sync::Mutex::new(None);
        let result = eventually(&format!("{name}: {what}"), CONVERGE, || async {
            let object = api.get(name).await?;
            let ok = check(&object);
            *last.lock().unwrap() = Some(format!("{object:?}"));
            Ok(ok.then_some(object))
        })
        .await;
        result.unwrap_or_else(|e| {
            panic!(
                "{e:#}\nlast seen: {}",
                last.lock().unwrap().clone().unwrap_or_default()
            )
        })
    }

    /// Waits until `name` is Ready for its current generation.
    pub async fn wait_ready<K>(&self, name: &str) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + tributary_api::HasConditions
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        self.wait_for::<K>(
            name,
            "Ready for its generation",
            tributary_api::HasConditions::is_ready,
        )
        .await
    }

    /// Event reasons recorded for the object `name`.
    pub async fn event_reasons(&self, name: &str) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> = self.api();
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .filter_map(|e| e.reason)
            .collect()
    }

    /// Stops the operator and deletes the namespace (finalizers first, so the
    /// namespace can go without an operator).
    pub async fn cleanup(mut self) {
        self.stop_operator().await;
        for plural in ["topics", "schemas"] {
            let resource = ApiResource {
                group: "tributary.dev".into(),
                version: "v1alpha1".into(),
                api_version: "tributary.dev/v1alpha1".into(),
                kind: String::new(),
                plural: plural.into(),
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
            if let Ok(list) = api.list(&ListParams::default()).await {
                for object in list.items {
                    let patch = serde_json::json!({"metadata": {"finalizers": null}});
                    let _ = api
                        .patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            }
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.namespace, &DeleteParams::default()).await;
    }
}

/// The status of condition `type_` in a status's conditions.
pub fn condition(
    status: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]>,
    type_: &str,
) -> Option<(String, String, String)> {
    status
        .and_then(|c| find_condition(c, type_))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Runs one of Kafka's own command-line tools (as an administrator would).
pub fn kafka_tool(main_class: &str, args: &[&str]) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let home = Command::new("bash")
        .arg(repo.join("scripts/infra/kafka.sh"))
        .arg("home")
        .output()
        .unwrap();
    let home = String::from_utf8(home.stdout).unwrap().trim().to_owned();
    let output = Command::new(Path::new(&home).join("kafka-run-class"))
        .arg(main_class)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{main_class} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Records in `topic`: the sum of its partitions' high watermarks (0 while
/// it does not exist). Blocking.
pub fn records_in(bootstrap: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return 0;
    };
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| i32::try_from(t.partitions().len()).unwrap());
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .map_or(0, |(_, high)| high)
        })
        .sum()
}
