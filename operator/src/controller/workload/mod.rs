//! What the Connector and Stream controllers share: a resource that runs as
//! a Deployment of `tributary-worker`s.
//!
//! One reconcile: **read** (KafkaCluster, referenced Secrets' versions,
//! declared Topics) → **validate** (pure, per kind: e.g. the Stream's SQL) →
//! **build** the ConfigMap, ServiceAccount and Deployment (pure,
//! [`build`]) → **apply** them with server-side apply and prune children no
//! longer wanted → **observe** (Deployment, pods, the workers' reports from
//! the status topic, consumer-group lag through the Kafka Admin API) →
//! **status** ([`observe`]), written only when it changed.
//!
//! A CDC Connector whose source asks for it (`slotDeletionPolicy: Delete`)
//! carries a finalizer, and its deletion stops the worker and drops the
//! replication slot first ([`cleanup`]). While such a source is Stopped,
//! no worker reports the WAL its slot retains, so the operator reads it from
//! Postgres itself ([`slot`]), at most once per status interval.
//!
//! A `spec.offsetReset` with a `requestId` other than the one in
//! `status.offsetReset` is applied within one reconcile's apply step: the
//! Deployment is applied at zero replicas; once no worker pod is left and
//! the consumer group is empty, the group's offsets are committed
//! ([`tributary_kafka::reset_group_offsets`]) and the Deployment is applied
//! as usual. Until then the reconcile reports `ResettingOffsets` and retries.

pub mod build;
pub mod cleanup;
pub mod observe;
pub mod secrets;
pub mod slot;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tributary_api::connector::PostgresSource;
use tributary_api::workload::{AppliedOffsetReset, OffsetReset, OffsetResetTarget};
use tributary_api::{
    ClusterRef, DesiredState, HasConditions, Health, KafkaCluster, Lineage, PodTemplate, Topic,
    WorkloadStatus,
};
use tributary_kafka::{KafkaConnection, StatusTail};

use tributary_worker::config::SecretResolver;

use self::build::{Children, WorkloadInput};
use self::observe::{Observation, PodFacts};
use super::{Failure, ReconcileError, Shutdown};
use crate::cluster::{self, SecretValues};
use crate::context::Context;

/// The condition saying whether what a workload depends on is ready.
pub const DEPENDENCIES_READY: &str = "DependenciesReady";

/// A resource the operator runs as workers: what differs between Connectors
/// and Streams, so that one controller ([`run`]) and one reconcile serve both.
pub trait Workload:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + HasConditions
    + Send
    + Sync
    + 'static
{
    /// The kind, `Connector` or `Stream` (as [`Resource::kind`], but
    /// `'static` for the pure builders).
    const KIND: &'static str;
    /// `app.kubernetes.io/component` of the children, and the controller's
    /// name in metrics and logs.
    const COMPONENT: &'static str;
    /// `spec.clusterRef`.
    fn cluster_ref(&self) -> Option<&ClusterRef>;
    /// `spec.state`.
    fn desired_state(&self) -> DesiredState;
    /// `spec.replicas`.
    fn replicas(&self) -> i32;
    /// `spec.template`.
    fn template(&self) -> Option<&PodTemplate>;
    /// The current status, if any.
    fn workload_status(&self) -> Option<&WorkloadStatus>;
    /// Replace workers instead of rolling them (never two at once).
    fn recreate(&self) -> bool;
    /// The consumer group whose lag is reported (`None` for sources).
    fn consumer_group(&self) -> Option<String>;
    /// Checks what the apiserver cannot (e.g. SQL) and returns the topics
    /// read and written; an error is a Stalled reason and message.
    fn validate(&self) -> Result<Lineage, Failure>;
    /// Checks the worker config exactly as the worker will when it starts
    /// (with the referenced Secrets' values), so a bad config is Stalled
    /// with the field named before any pod crash-loops on it.
    fn validate_worker_config(&self, secrets: &SecretResolver) -> Result<(), Failure>;
    /// The Postgres CDC source whose replication slot the workers hold.
    fn cdc_source(&self) -> Option<&PostgresSource>;
    /// `spec.offsetReset`.
    fn offset_reset(&self) -> Option<&OffsetReset>;
}

/// Workloads' memory between reconciles: the operator's tail of each
/// cluster's status topic, and the last throughput sample per resource.
#[derive(Default)]
pub struct WorkloadState {
    tails: Mutex<HashMap<String, (KafkaConnection, Arc<StatusTail>)>>,
    samples: Mutex<HashMap<String, Sample>>,
    slot_readings: Mutex<HashMap<String, (Instant, SlotReading)>>,
    /// The last offset-reset request applied per resource (`status_key`).
    applied_resets: Mutex<HashMap<String, String>>,
}

/// The WAL a replication slot retains as the operator last read it: bytes
/// (`None`: no such slot), or why it could not be read.
type SlotReading = Result<Option<i64>, String>;

impl Debug for WorkloadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadState").finish_non_exhaustive()
    }
}

impl WorkloadState {
    fn tail(&self, cluster_key: &str, connection: &KafkaConnection, topic: &str) -> Option<Arc<StatusTail>> {
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, tail)) = tails.get(cluster_key)
            && cached == connection
        {
            return Some(Arc::clone(tail));
        }
        match StatusTail::start(connection, topic) {
            Ok(tail) => {
                let tail = Arc::new(tail);
                tails.insert(cluster_key.to_owned(), (connection.clone(), Arc::clone(&tail)));
                Some(tail)
            }
            Err(error) => {
                tracing::warn!(cluster = cluster_key, %error, "cannot follow the status topic");
                None
            }
        }
    }

    /// Records per second between the previous sample of `key` and `total`
    /// now. Samples closer than [`RATE_WINDOW`] keep the last rate (events
    /// can trigger reconciles in quick succession); `None` until two samples
    /// exist or after the counter went back (a worker restarted).
    fn rate(&self, key: &str, total: i64) -> Option<u64> {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sample) = samples.get_mut(key) else {
            samples.insert(
                key.to_owned(),
                Sample {
                    at: now,
                    total,
                    rate: None,
                },
            );
            return None;
        };
        let elapsed = now.duration_since(sample.at);
        if elapsed < RATE_WINDOW && total >= sample.total {
            return sample.rate;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rate = (total >= sample.total)
            .then(|| ((total - sample.total) as f64 / elapsed.as_secs_f64()).round() as u64);
        *sample = Sample { at: now, total, rate };
        rate
    }
}

impl WorkloadState {
    /// The WAL retained by the slot of `pg` (resource `key` in `namespace`),
    /// read from Postgres unless a reading younger than `max_age` exists:
    /// reconciles triggered by events in quick succession do not each open
    /// a database connection.
    async fn slot_reading(
        &self,
        client: &kube::Client,
        key: &str,
        namespace: &str,
        pg: &PostgresSource,
        max_age: Duration,
    ) -> SlotReading {
        let now = Instant::now();
        {
            let readings = self.slot_readings.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, reading)) = readings.get(key)
                && now.duration_since(*at) < max_age
            {
                return reading.clone();
            }
        }
        let reading = match slot::connect(client, namespace, pg).await {
            Ok(db) => slot::retained_wal_bytes(&db, &pg.slot_name).await,
            Err(error) => Err(error),
        }
        .map_err(|e| e.to_string());
        if let Err(error) = &reading {
            tracing::warn!(resource = key, slot = %pg.slot_name, %error, "cannot read the WAL the slot retains");
        }
        self.slot_readings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), (now, reading.clone()));
        reading
    }
}

/// Shortest time between two throughput samples.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// One throughput sample.
struct Sample {
    at: Instant,
    total: i64,
    rate: Option<u64>,
}

/// The key workers report under: `<namespace>/<name>`.
pub fn status_key<K: Workload>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The worker config file: the KafkaCluster and the resource, as manifests
/// without server-side fields. The second value is the same with
/// `spec.state` and `spec.offsetReset` left out (the part whose change
/// restarts workers).
pub fn config_files<K: Workload>(obj: &K, cluster: &KafkaCluster) -> Result<(String, String), Failure> {
    let manifest =
        |api_version: String, kind: String, name: String, namespace: String, spec: serde_json::Value| {
            serde_json::json!({
                "apiVersion": api_version,
                "kind": kind,
                "metadata": { "name": name, "namespace": namespace },
                "spec": spec,
            })
        };
    let invalid = |e: &dyn std::fmt::Display| {
        Failure::stalled("InvalidSpec", format!("cannot render the worker config: {e}"))
    };
    let namespace = obj.namespace().unwrap_or_default();
    let spec = serde_json::to_value(obj).map_err(|e| invalid(&e))?["spec"].clone();
    let cluster_doc = manifest(
        KafkaCluster::api_version(&()).into_owned(),
        KafkaCluster::kind(&()).into_owned(),
        cluster.name_any(),
        namespace.clone(),
        serde_json::to_value(&cluster.spec).map_err(|e| invalid(&e))?,
    );
    let render = |spec: serde_json::Value| -> Result<String, Failure> {
        let own = manifest(
            K::api_version(&()).into_owned(),
            K::kind(&()).into_owned(),
            obj.name_any(),
            namespace.clone(),
            spec,
        );
        Ok(format!(
            "{}---\n{}",
            serde_yaml::to_string(&cluster_doc).map_err(|e| invalid(&e))?,
            serde_yaml::to_string(&own).map_err(|e| invalid(&e))?
        ))
    };
    let full = render(spec.clone())?;
    let mut without_state = spec;
    if let Some(map) = without_state.as_object_mut() {
        // Workers follow the state live; an offset reset stops and starts
        // them anyway.
        map.remove("state");
        map.remove("offsetReset");
    }
    Ok((full, render(without_state)?))
}

/// Runs the controller of kind `K` until `shutdown`: it watches the
/// resources, the worker Deployments they own (by component label) and the
/// KafkaClusters they use.
pub async fn run<K: Workload>(context: Context, shutdown: Shutdown) {
    let resources: Api<K> = context.watched_api();
    let clusters: Api<KafkaCluster> = context.watched_api();
    let deployments: Api<Deployment> = context.watched_api();
    let controller = Controller::new(resources, watcher::Config::default());
    let store = controller.store();
    let reconciles = controller
        .owns(
            deployments,
            watcher::Config::default().labels(&format!("app.kubernetes.io/component={}", K::COMPONENT)),
        )
        .watches(clusters, watcher::Config::default(), move |cluster| {
            super::users_of(&store, &cluster, K::cluster_ref)
        })
        .with_config(super::runtime_config(&context))
        .graceful_shutdown_on(shutdown)
        .run(reconcile_one::<K>, error_policy::<K>, Arc::new(context));
    super::drain(K::COMPONENT, reconciles).await;
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
fn error_policy<K: Workload>(obj: Arc<K>, error: &ReconcileError, context: Arc<Context>) -> Action {
    super::error_policy(&*obj, error, &context)
}

async fn reconcile_one<K: Workload>(obj: Arc<K>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let api: Api<K> = Api::namespaced(context.client.clone(), &obj.namespace().unwrap_or_default());
    let result = reconcile(&*obj, &api, &context).await;
    super::record(&context, K::COMPONENT, &result, started);
    result
}

/// Reconciles one workload; `api` is the namespaced API of its kind.
pub async fn reconcile<K: Workload>(
    obj: &K,
    api: &Api<K>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    if obj.meta().deletion_timestamp.is_some() {
        return cleanup::on_deletion(obj, api, context).await;
    }
    cleanup::ensure_finalizer(obj, api).await?;
    let previous = obj.workload_status().cloned().unwrap_or_default();
    // Boxed: reading, building and applying every child (twice around an
    // offset reset) is a large future (clippy::large_futures).
    let (mut status, health, dependencies) = match Box::pin(sync(obj, context)).await {
        Ok(Synced {
            status,
            health,
            dependencies,
        }) => (status, health, dependencies),
        Err((failure, dependencies)) => (
            WorkloadStatus {
                topics: previous.topics.clone(),
                replicas: previous.replicas,
                desired_replicas: previous.desired_replicas,
                selector: previous.selector.clone(),
                offset_reset: previous.offset_reset.clone(),
                ..WorkloadStatus::default()
            },
            failure.health(),
            dependencies,
        ),
    };
    let now = crate::status::now();
    let mut conditions = health.conditions(&previous.conditions, obj.meta().generation, &now);
    conditions.push(dependencies_condition(
        &previous,
        &dependencies,
        obj.meta().generation,
        &now,
    ));
    status.conditions = conditions;
    status.observed_generation = obj.meta().generation;
    crate::status::apply(api, obj, obj.workload_status(), &status).await?;
    match super::next_action(context, obj, &health) {
        // A running workload is re-observed often: lag and throughput move;
        // so does the WAL a stopped CDC source's slot retains.
        Ok(_) if obj.desired_state() != DesiredState::Stopped || obj.cdc_source().is_some() => {
            Ok(Action::requeue(context.settings.status_interval))
        }
        other => other,
    }
}

/// Writes `health` as the conditions of the current status, keeping the
/// rest (used while a deleted workload is being cleaned up).
async fn write_health<K: Workload>(obj: &K, api: &Api<K>, health: &Health) -> Result<(), kube::Error> {
    let previous = obj.workload_status().cloned().unwrap_or_default();
    let now = crate::status::now();
    let mut conditions = health.conditions(&previous.conditions, obj.meta().generation, &now);
    conditions
        .extend(tributary_api::common::find_condition(&previous.conditions, DEPENDENCIES_READY).cloned());
    let status = WorkloadStatus {
        conditions,
        ..previous
    };
    crate::status::apply(api, obj, obj.workload_status(), &status).await
}

fn dependencies_condition(
    previous: &WorkloadStatus,
    dependencies: &Result<(), String>,
    generation: Option<i64>,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let (status, reason, message) = match dependencies {
        Ok(()) => ("True", "DependenciesReady", String::new()),
        Err(message) => ("False", "DependenciesNotReady", message.clone()),
    };
    let old = tributary_api::common::find_condition(&previous.conditions, DEPENDENCIES_READY);
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: DEPENDENCIES_READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: old
            .filter(|c| c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone()),
    }
}

struct Synced {
    status: WorkloadStatus,
    health: Health,
    dependencies: Result<(), String>,
}

type SyncError = (Failure, Result<(), String>);

async fn sync<K: Workload>(obj: &K, context: &Context) -> Result<Synced, SyncError> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let kind = K::KIND;

    // read
    let cluster = cluster::resolve(&context.client, &namespace, obj.cluster_ref())
        .await
        .map_err(|e| {
            let failure = Failure::from(e);
            let message = failure.message.clone();
            (failure, Err(message))
        })?;
    // validate (pure)
    let lineage = obj.validate().map_err(|f| (f, Ok(())))?;
    let refs = secrets::references(obj, &cluster);
    let read_secrets = secrets::read(&context.client, &namespace, &refs)
        .await
        .map_err(|f| {
            let message = f.message.clone();
            (f, Err(message))
        })?;
    obj.validate_worker_config(&SecretResolver::from_values(read_secrets.values))
        .map_err(|f| (f, Ok(())))?;
    let dependencies = dependencies(context, &cluster, &namespace, &lineage).await;

    // build (pure)
    let (config_yaml, config_for_hash) =
        config_files(obj, &cluster).map_err(|f| (f, dependencies.clone()))?;
    let desired_replicas = if obj.desired_state() == DesiredState::Stopped {
        0
    } else {
        obj.replicas()
    };
    let input = WorkloadInput {
        kind,
        name: name.clone(),
        namespace: namespace.clone(),
        uid: obj.uid().unwrap_or_default(),
        api_version: K::api_version(&()).into_owned(),
        config_yaml,
        config_for_hash,
        secret_refs: refs.into_iter().map(|(_, r)| r).collect(),
        secret_versions: read_secrets.versions,
        replicas: desired_replicas,
        template: obj.template().cloned(),
        default_image: context.settings.worker_image.clone(),
        recreate: obj.recreate(),
        restarted_at: obj
            .annotations()
            .get(tributary_api::workload::RESTART_ANNOTATION)
            .cloned(),
    };
    let children = build::build(&input);

    // apply (after an offset reset, when one is pending)
    let applied_reset = match pending_offset_reset(obj, context) {
        Some(reset) => Some(
            stop_and_reset(obj, context, &cluster, &lineage.reads, &input, reset)
                .await
                .map_err(|f| (f, dependencies.clone()))?,
        ),
        None => obj.workload_status().and_then(|s| s.offset_reset.clone()),
    };
    let deployment = apply_children(context, &namespace, &children)
        .await
        .map_err(|e| {
            (
                Failure::transient("KubernetesApiError", e.to_string()),
                dependencies.clone(),
            )
        })?;
    prune(
        context,
        &namespace,
        kind,
        &input.uid,
        &build::child_name(kind, &name),
    )
    .await
    .map_err(|e| {
        (
            Failure::transient("KubernetesApiError", e.to_string()),
            dependencies.clone(),
        )
    })?;

    // observe
    let observation = observe(obj, context, &cluster, deployment, lineage, desired_replicas)
        .await
        .map_err(|f| (f, dependencies.clone()))?;
    Ok(Synced {
        status: WorkloadStatus {
            offset_reset: applied_reset,
            ..observe::status(&observation)
        },
        health: observe::health(&observation),
        dependencies,
    })
}

/// `spec.offsetReset` when its `requestId` has not been applied yet: not
/// in `status.offsetReset`, nor in this operator's memory (a reconcile can
/// start from a cached object that predates the status write recording the
/// reset, and must not reset twice).
fn pending_offset_reset<'a, K: Workload>(obj: &'a K, context: &Context) -> Option<&'a OffsetReset> {
    let reset = obj.offset_reset()?;
    let in_status = obj
        .workload_status()
        .and_then(|s| s.offset_reset.as_ref())
        .is_some_and(|a| a.request_id == reset.request_id);
    let remembered = context
        .workloads
        .applied_resets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&status_key(obj))
        .is_some_and(|id| *id == reset.request_id);
    (!in_status && !remembered).then_some(reset)
}

/// Where `reset` moves the offsets; a timestamp that is not RFC 3339 (the
/// apiserver checks the shape, not e.g. the day of the month) is Stalled.
pub fn reset_target(reset: &OffsetReset) -> Result<tributary_kafka::ResetTo, Failure> {
    Ok(match reset.to {
        OffsetResetTarget::Earliest => tributary_kafka::ResetTo::Earliest,
        OffsetResetTarget::Latest => tributary_kafka::ResetTo::Latest,
        OffsetResetTarget::Timestamp => {
            let text = reset.timestamp.as_deref().unwrap_or_default();
            let at: k8s_openapi::jiff::Timestamp = text.parse().map_err(|e| {
                Failure::stalled(
                    "InvalidSpec",
                    format!("spec.offsetReset.timestamp {text:?} is not an RFC 3339 time: {e}"),
                )
            })?;
            tributary_kafka::ResetTo::Timestamp(at.as_millisecond())
        }
    })
}

/// Applies the children of `input` at zero replicas and commits the offsets
/// `reset` asks for, once the workers are gone and the group is empty; until
/// then a transient `ResettingOffsets` failure (the reconcile retries).
async fn stop_and_reset<K: Workload>(
    obj: &K,
    context: &Context,
    cluster: &KafkaCluster,
    topics: &[String],
    input: &WorkloadInput,
    reset: &OffsetReset,
) -> Result<AppliedOffsetReset, Failure> {
    let to = reset_target(reset)?;
    let stopped = build::build(&WorkloadInput {
        replicas: 0,
        ..input.clone()
    });
    apply_children(context, &input.namespace, &stopped)
        .await
        .map_err(|e| Failure::transient("KubernetesApiError", e.to_string()))?;
    let Some(group) = obj.consumer_group() else {
        return Err(Failure::stalled(
            "InvalidSpec",
            "spec.offsetReset: this resource has no consumer group",
        ));
    };
    let waiting = |message: String| Failure::transient("ResettingOffsets", message);
    let namespace = obj.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    let left = pods
        .list_metadata(&ListParams::default().labels(&build::selector_string(K::KIND, &obj.name_any())))
        .await
        .map_err(|e| Failure::transient("KubernetesApiError", e.to_string()))?
        .items
        .len();
    if left > 0 {
        return Err(waiting(format!(
            "offset reset {:?}: waiting for {left} workers to stop",
            reset.request_id
        )));
    }
    let secret_values = SecretValues::read(&context.client, cluster)
        .await
        .map_err(Failure::from)?;
    let connection = cluster::kafka_connection(cluster, &secret_values).map_err(Failure::from)?;
    let topics = topics.to_vec();
    let timeout = context.settings.request_timeout;
    let group_for_reset = group.clone();
    let result = tokio::task::spawn_blocking(move || {
        tributary_kafka::reset_group_offsets(&connection, &group_for_reset, &topics, to, timeout)
    })
    .await
    .map_err(|e| Failure::transient("ResettingOffsets", format!("offset reset task failed: {e}")))?;
    let partitions = match result {
        Ok(partitions) => partitions,
        Err(error @ tributary_kafka::ResetError::GroupNotEmpty { .. }) => {
            return Err(waiting(format!("offset reset {:?}: {error}", reset.request_id)));
        }
        Err(error) => return Err(Failure::transient("KafkaUnreachable", error.to_string())),
    };
    let message = format!(
        "consumer group {group} reset to {:?} on {partitions} partitions (request {:?})",
        reset.to, reset.request_id
    );
    tracing::info!(kind = K::KIND, %namespace, name = %obj.name_any(), %group, partitions, request = %reset.request_id, "offsets reset");
    context
        .workloads
        .applied_resets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(status_key(obj), reset.request_id.clone());
    super::publish_event(
        context,
        obj,
        kube::runtime::events::EventType::Normal,
        "OffsetsReset",
        message,
    )
    .await;
    Ok(AppliedOffsetReset {
        request_id: reset.request_id.clone(),
        applied_at: crate::status::now(),
        partitions: i32::try_from(partitions).unwrap_or(i32::MAX),
    })
}

/// Observes what runs: pods, the workers' latest report, consumer-group lag.
async fn observe<K: Workload>(
    obj: &K,
    context: &Context,
    cluster: &KafkaCluster,
    deployment: Deployment,
    lineage: Lineage,
    desired_replicas: i32,
) -> Result<Observation, Failure> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let kind = K::KIND;
    let selector = build::selector_string(kind, &name);
    let pods: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    let pods = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Failure::transient("KubernetesApiError", e.to_string()))?;
    let secret_values = SecretValues::read(&context.client, cluster)
        .await
        .map_err(Failure::from)?;
    let connection = cluster::kafka_connection(cluster, &secret_values).map_err(Failure::from)?;
    let cluster_key = format!("{namespace}/{}", cluster.name_any());
    let key = status_key(obj);
    let worker = context
        .workloads
        .tail(&cluster_key, &connection, &context.settings.status_topic)
        .and_then(|tail| tail.get(&key));
    let group_lag = match obj.consumer_group() {
        Some(group) => {
            measure_lag(
                &connection,
                group,
                lineage.reads.clone(),
                context.settings.request_timeout,
            )
            .await
        }
        None => None,
    };
    let rate_total = match (&group_lag, &worker) {
        (Some(lag), _) => Some(lag.committed),
        (None, Some(worker)) => i64::try_from(worker.records).ok(),
        (None, None) => None,
    };
    // No worker runs to report what the slot retains: read it.
    let slot_reading = match obj.cdc_source() {
        Some(pg) if obj.desired_state() == DesiredState::Stopped => Some(
            context
                .workloads
                .slot_reading(
                    &context.client,
                    &format!("{kind}/{key}"),
                    &namespace,
                    pg,
                    context.settings.status_interval,
                )
                .await,
        ),
        _ => None,
    };
    Ok(Observation {
        desired: obj.desired_state(),
        desired_replicas,
        deployment: Some(deployment),
        pods: pods.items.iter().map(PodFacts::of).collect(),
        worker,
        group_lag,
        records_per_second: rate_total
            .and_then(|total| context.workloads.rate(&format!("{kind}/{key}"), total)),
        lineage,
        selector,
        slot_wal_bytes: slot_reading.as_ref().and_then(|r| r.clone().ok().flatten()),
        slot_error: slot_reading.and_then(Result::err),
    })
}

async fn measure_lag(
    connection: &KafkaConnection,
    group: String,
    topics: Vec<String>,
    timeout: Duration,
) -> Option<tributary_kafka::GroupLag> {
    let connection = connection.clone();
    let measured = tokio::task::spawn_blocking(move || {
        tributary_kafka::group_lag(&connection, &group, &topics, timeout)
    })
    .await;
    match measured {
        Ok(Ok(lag)) => Some(lag),
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not measure consumer-group lag");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "lag measurement panicked");
            None
        }
    }
}

/// `DependenciesReady`: the KafkaCluster is Ready, and so is every Topic
/// declared (in this namespace) for a topic the workload uses.
async fn dependencies(
    context: &Context,
    cluster: &KafkaCluster,
    namespace: &str,
    lineage: &Lineage,
) -> Result<(), String> {
    if !cluster.is_ready() {
        return Err(format!("KafkaCluster {} is not Ready", cluster.name_any()));
    }
    let topics: Api<Topic> = Api::namespaced(context.client.clone(), namespace);
    let declared = topics
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing Topics: {e}"))?;
    let used: Vec<&String> = lineage.reads.iter().chain(&lineage.writes).collect();
    let mut waiting: Vec<String> = declared
        .items
        .iter()
        .filter(|t| t.kafka_name().is_some_and(|n| used.iter().any(|u| *u == n)))
        .filter(|t| !t.is_ready())
        .map(ResourceExt::name_any)
        .collect();
    waiting.sort();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(format!("Topic {} not Ready", waiting.join(", ")))
    }
}

async fn apply_children(
    context: &Context,
    namespace: &str,
    children: &Children,
) -> Result<Deployment, kube::Error> {
    let params = PatchParams::apply(crate::FIELD_MANAGER).force();
    let name = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.name.clone().unwrap_or_default()
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(context.client.clone(), namespace);
    config_maps
        .patch(
            &name(&children.config_map.metadata),
            &params,
            &Patch::Apply(with_type(&children.config_map)),
        )
        .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(context.client.clone(), namespace);
    accounts
        .patch(
            &name(&children.service_account.metadata),
            &params,
            &Patch::Apply(with_type(&children.service_account)),
        )
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(context.client.clone(), namespace);
    deployments
        .patch(
            &name(&children.deployment.metadata),
            &params,
            &Patch::Apply(with_type(&children.deployment)),
        )
        .await
}

/// The object with `apiVersion` and `kind` set, as server-side apply needs.
fn with_type<T: Resource<DynamicType = ()> + Serialize>(obj: &T) -> serde_json::Value {
    let mut value = serde_json::to_value(obj).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".to_owned(), T::api_version(&()).into_owned().into());
        map.insert("kind".to_owned(), T::kind(&()).into_owned().into());
    }
    value
}

/// Deletes children of this owner under another name (left by an earlier
/// naming scheme or a changed kind): they would run workers nobody declared.
async fn prune(
    context: &Context,
    namespace: &str,
    kind: &str,
    uid: &str,
    keep: &str,
) -> Result<(), kube::Error> {
    let selector = format!(
        "{}={uid},app.kubernetes.io/component={}",
        build::OWNER_UID_LABEL,
        kind.to_ascii_lowercase()
    );
    let params = ListParams::default().labels(&selector);
    let deployments: Api<Deployment> = Api::namespaced(context.client.clone(), namespace);
    for stale in deployments
        .list_metadata(&params)
        .await?
        .items
        .iter()
        .filter(|d| d.name_any() != keep)
    {
        deployments
            .delete(&stale.name_any(), &DeleteParams::background())
            .await?;
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(context.client.clone(), namespace);
    for stale in config_maps
        .list_metadata(&params)
        .await?
        .items
        .iter()
        .filter(|d| d.name_any() != keep)
    {
        config_maps
            .delete(&stale.name_any(), &DeleteParams::default())
            .await?;
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(context.client.clone(), namespace);
    for stale in accounts
        .list_metadata(&params)
        .await?
        .items
        .iter()
        .filter(|d| d.name_any() != keep)
    {
        accounts
            .delete(&stale.name_any(), &DeleteParams::default())
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tributary_api::{Connector, Stream};

    use super::*;

    fn consistent<K: Workload>() {
        assert_eq!(K::KIND, K::kind(&()));
        assert_eq!(K::COMPONENT, K::KIND.to_ascii_lowercase());
        // The children's component label is what the controller watches.
        assert_eq!(
            build::selector_labels(K::KIND, "x")
                .get("app.kubernetes.io/component")
                .map(String::as_str),
            Some(K::COMPONENT)
        );
    }

    #[test]
    fn an_offset_reset_target_is_read_from_the_request() {
        let request = |to: &str, timestamp: Option<&str>| OffsetReset {
            request_id: "r".to_owned(),
            to: serde_json::from_value(serde_json::json!(to)).unwrap(),
            timestamp: timestamp.map(str::to_owned),
        };
        assert_eq!(
            reset_target(&request("Earliest", None)).unwrap(),
            tributary_kafka::ResetTo::Earliest
        );
        assert_eq!(
            reset_target(&request("Timestamp", Some("2026-12-02T15:00:00+01:00"))).unwrap(),
            tributary_kafka::ResetTo::Timestamp(1_796_220_000_000)
        );
        // The apiserver checks the shape only; a 13th month is Stalled here.
        let invalid = reset_target(&request("Timestamp", Some("2026-13-02T15:00:00Z"))).unwrap_err();
        assert!(!invalid.transient);
        assert!(
            invalid
                .message
                .starts_with("spec.offsetReset.timestamp \"2026-13-02T15:00:00Z\""),
            "{}",
            invalid.message
        );
    }

    #[test]
    fn kind_constants_match_the_api_types_and_the_children_labels() {
        consistent::<Connector>();
        consistent::<Stream>();
    }
}
