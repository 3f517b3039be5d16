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

    /// Starts the kubelet harness for this namespace with test timings: the
    /// pods scheduled here run as processes.
    pub async fn start_kubelet(&self) -> tributary_e2e::kubelet::Kubelet {
        tributary_e2e::kubelet::Kubelet::start(
            self.client.clone(),
            tributary_e2e::kubelet::KubeletConfig::for_namespaces([self.namespace.clone()]).fast(),
        )
        .await
        .unwrap()
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
        self.apply_with(yaml, &PatchParams::apply("tributary-e2e").force())
            .await
    }

    /// Server-side applies one YAML document with `dryRun=All` and strict
    /// field validation: the apiserver checks it (schema, unknown fields, CEL
    /// rules, admission) and stores nothing.
    pub async fn dry_run_apply(&self, yaml: &str) -> Result<DynamicObject, kube::Error> {
        let params = PatchParams::apply("tributary-e2e")
            .force()
            .dry_run()
            .validation_strict();
        self.apply_with(yaml, &params).await
    }

    async fn apply_with(&self, yaml: &str, params: &PatchParams) -> Result<DynamicObject, kube::Error> {
        let object: DynamicObject = serde_yaml::from_str(yaml).unwrap();
        let api = self.dynamic_api(&object);
        api.patch(&object.name_any(), params, &Patch::Apply(&object))
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

/// The documents of a multi-document YAML text (comment-only documents
/// left out), each as YAML of its own.
pub fn yaml_documents(text: &str) -> Vec<String> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| <serde_yaml::Value as serde::Deserialize>::deserialize(document).unwrap())
        .filter(|value| !value.is_null())
        .map(|value| serde_yaml::to_string(&value).unwrap())
        .collect()
}

/// Documents in OpenSearch index `index` (0 while it does not exist).
pub async fn documents(opensearch: &str, index: &str) -> i64 {
    let url = format!("{opensearch}/{index}/_count");
    match reqwest::get(&url).await {
        Ok(response) if response.status().is_success() => response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["count"].as_i64())
            .unwrap_or(0),
        _ => 0,
    }
}

/// Documents in `index` after a refresh (everything written is counted).
pub async fn refreshed_documents(opensearch: &str, index: &str) -> i64 {
    let _ = reqwest::Client::new()
        .post(format!("{opensearch}/{index}/_refresh"))
        .send()
        .await;
    documents(opensearch, index).await
}

/// Every committed record value of `topic` as JSON, from the start of each
/// partition up to its high watermark when called (`read_committed`:
/// aborted transactions are skipped). A partition is done at its end or at
/// the first record from the watermark on: while a transactional producer
/// keeps a transaction open, librdkafka may not report the end. Blocking.
pub fn json_values_in(bootstrap: &str, topic: &str) -> Vec<serde_json::Value> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message as _;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("e2e-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return Vec::new();
    };
    let mut list = TopicPartitionList::new();
    let mut ends = std::collections::BTreeMap::new();
    for partition in metadata
        .topics()
        .iter()
        .flat_map(rdkafka::metadata::MetadataTopic::partitions)
    {
        list.add_partition_offset(topic, partition.id(), Offset::Beginning)
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
            .unwrap();
        ends.insert(partition.id(), high);
    }
    consumer.assign(&list).unwrap();
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    while !ends.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} took over 60 s"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let end = ends.get(&message.partition()).copied();
                if end.is_some_and(|end| message.offset() < end) {
                    values.push(
                        message
                            .payload()
                            .map_or(serde_json::Value::Null, |v| serde_json::from_slice(v).unwrap()),
                    );
                }
                // The watermark's last offset may be a commit marker, never delivered.
                if end.is_some_and(|end| message.offset() >= end - 1) {
                    ends.remove(&message.partition());
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
            }
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    values
}

/// Offsets consumer group `group` committed on `topic`, summed over its
/// partitions. Blocking.
pub fn committed_in(bootstrap: &str, group: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in metadata
        .topics()
        .iter()
        .flat_map(rdkafka::metadata::MetadataTopic::partitions)
    {
        list.add_partition(topic, partition.id());
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(offset) => offset,
            _ => 0,
        })
        .sum()
}

/// The config hash in a worker Deployment's pod template (a change rolls the pods).
pub fn config_hash(deployment: &k8s_openapi::api::apps::v1::Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()["tributary.dev/config-hash"]
        .clone()
}

/// A harness with the operator running and a kubelet running the pods of
/// its namespace as processes.
pub async fn with_operator_and_kubelet(prefix: &str) -> (Harness, tributary_e2e::kubelet::Kubelet) {
    let mut harness = Harness::new(prefix).await;
    harness.start_operator();
    let kubelet = tributary_e2e::kubelet::Kubelet::start(
        harness.client.clone(),
        tributary_e2e::kubelet::KubeletConfig::for_namespaces([harness.namespace.clone()]).fast(),
    )
    .await
    .unwrap();
    (harness, kubelet)
}

/// A Postgres database of the test's own on the local server.
pub struct Database {
    /// A session on the server's default database.
    pub admin: tokio_postgres::Client,
    /// The database's name (`<prefix>_<8 hex chars>`).
    pub name: String,
    /// Server host, for manifests.
    pub host: String,
    /// Server port, for manifests.
    pub port: String,
    server: String,
}

impl Database {
    /// Creates the database on the server of the libpq-style URL `postgres`.
    pub async fn new(prefix: &str, postgres: &str) -> Self {
        let name = unique_name(prefix).replace('-', "_");
        let admin = postgres_session(postgres).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("Postgres at {postgres} unusable: {e}"));
        let field = |key: &str| {
            postgres
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .unwrap()
                .to_owned()
        };
        let server: Vec<&str> = postgres
            .split_whitespace()
            .filter(|kv| !kv.starts_with("dbname="))
            .collect();
        Self {
            admin,
            host: field("host"),
            port: field("port"),
            server: server.join(" "),
            name,
        }
    }

    /// A session on this database.
    pub async fn session(&self) -> tokio_postgres::Client {
        postgres_session(&format!("{} dbname={}", self.server, self.name)).await
    }

    /// Drops the database, and first the replication slot named like it,
    /// which would otherwise keep it.
    pub async fn drop(self) {
        let _ = self
            .admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.name],
            )
            .await;
        let _ = self
            .admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await;
    }
}

async fn postgres_session(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("Postgres at {url}: {e}"));
    tokio::spawn(connection);
    client
}
