//! The controllers, one module per kind, and what they share: the error
//! shape, the mapping of outcomes to kstatus health, and the loop that runs
//! them all until shutdown.

pub mod connector;
pub mod kafka_cluster;
pub mod schema;
pub mod stream;
pub mod topic;
pub mod workload;

use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer;
use kube::{Resource, ResourceExt};
use tributary_api::Health;

use crate::context::Context;

/// A shutdown signal every controller can await.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Runs every controller until `shutdown` resolves.
pub async fn run_all(context: Context, shutdown: Shutdown) {
    tokio::join!(
        kafka_cluster::run(context.clone(), shutdown.clone()),
        topic::run(context.clone(), shutdown.clone()),
        schema::run(context.clone(), shutdown.clone()),
        workload::run::<tributary_api::Connector>(context.clone(), shutdown.clone()),
        workload::run::<tributary_api::Stream>(context, shutdown),
    );
}

/// What went wrong in a reconcile, classified for status and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Condition reason, e.g. `KafkaUnreachable`.
    pub reason: String,
    /// Human-readable message naming the field or quoting the remote error.
    pub message: String,
    /// Retry with backoff (true) or wait for a spec change (false → Stalled).
    pub transient: bool,
}

impl Failure {
    /// A failure that retries with backoff.
    pub fn transient(reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.to_owned(),
            message: message.into(),
            transient: true,
        }
    }

    /// A failure that waits for a change of the spec.
    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.to_owned(),
            message: message.into(),
            transient: false,
        }
    }

    /// The kstatus health this failure implies.
    pub fn health(&self) -> Health {
        if self.transient {
            Health::Progressing {
                reason: self.reason.clone(),
                message: self.message.clone(),
            }
        } else {
            Health::Stalled {
                reason: self.reason.clone(),
                message: self.message.clone(),
            }
        }
    }
}

impl From<crate::cluster::ClusterError> for Failure {
    fn from(error: crate::cluster::ClusterError) -> Self {
        Self {
            reason: error.reason().to_owned(),
            message: error.to_string(),
            transient: error.is_transient(),
        }
    }
}

impl From<tributary_kafka::AdminError> for Failure {
    fn from(error: tributary_kafka::AdminError) -> Self {
        let reason = if error.is_transient() {
            "KafkaUnreachable"
        } else {
            "KafkaRefused"
        };
        Self {
            reason: reason.to_owned(),
            message: error.to_string(),
            transient: error.is_transient(),
        }
    }
}

impl From<tributary_registry::RegistryError> for Failure {
    fn from(error: tributary_registry::RegistryError) -> Self {
        use tributary_registry::RegistryError;
        let reason = match &error {
            RegistryError::Unreachable(_) => "RegistryUnreachable",
            RegistryError::InvalidSchema(_) => "InvalidSchema",
            RegistryError::Incompatible(_) => "IncompatibleSchema",
            RegistryError::Unauthorized(_) => "RegistryUnauthorized",
            _ => "RegistryError",
        };
        Self {
            reason: reason.to_owned(),
            message: format!("schema registry: {error}"),
            transient: error.is_transient(),
        }
    }
}

impl From<Failure> for ReconcileError {
    fn from(failure: Failure) -> Self {
        ReconcileError::Transient {
            reason: failure.reason,
            message: failure.message,
        }
    }
}

/// The error a reconcile returns to the controller runtime (which then calls
/// `error_policy`): only transient failures and API errors end up here.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A transient failure already written to status.
    #[error("{reason}: {message}")]
    Transient {
        /// Condition reason.
        reason: String,
        /// Message.
        message: String,
    },
    /// Reading or writing Kubernetes objects failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl ReconcileError {
    /// Short label for metrics.
    pub fn reason(&self) -> &str {
        match self {
            ReconcileError::Transient { reason, .. } => reason,
            ReconcileError::Kube(_) => "KubernetesApiError",
            ReconcileError::Finalizer(_) => "FinalizerError",
        }
    }
}

/// Flattens the finalizer helper's error into ours.
pub fn from_finalizer(error: finalizer::Error<ReconcileError>) -> ReconcileError {
    match error {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => ReconcileError::Kube(e),
        other => ReconcileError::Finalizer(other.to_string()),
    }
}

/// Key of an object for backoff bookkeeping.
pub fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// The retry delay after a failed reconcile: exponential per object.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: &K,
    error: &ReconcileError,
    context: &Context,
) -> Action {
    let delay = context.next_backoff(&object_key(obj));
    tracing::warn!(
        kind = %K::kind(&()),
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        %error,
        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Publishes an Event on `obj`; failures to publish are logged, never fatal.
pub async fn publish_event<K: Resource<DynamicType = ()>>(
    context: &Context,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(error) = context.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(%error, reason, "could not publish event");
    }
}

/// Among resources claiming the same external object (a Kafka topic, a
/// registry subject), the first one (oldest, then by name) owns it. Returns
/// `namespace/name` of the owner when that is not `me`.
pub fn earlier_claimant<K, Key>(me: &K, all: &[std::sync::Arc<K>], key: impl Fn(&K) -> Key) -> Option<String>
where
    K: Resource<DynamicType = ()>,
    Key: PartialEq,
{
    let mine = key(me);
    let rank = |r: &K| (r.meta().creation_timestamp.clone().map(|ts| ts.0), r.name_any());
    all.iter()
        .filter(|other| other.uid() != me.uid() && key(other) == mine)
        .filter(|other| rank(other) < rank(me))
        .min_by_key(|other| rank(other))
        .map(|owner| format!("{}/{}", owner.namespace().unwrap_or_default(), owner.name_any()))
}

/// Drives a controller's output stream to the end, logging reconciles that
/// did not complete (their errors already reached `error_policy`).
pub async fn drain<T, E: std::fmt::Display>(
    controller: &'static str,
    stream: impl futures::Stream<Item = Result<T, E>>,
) {
    use futures::StreamExt;
    stream
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(controller, %error, "reconcile did not complete");
            }
        })
        .await;
}

/// The runtime configuration every controller uses.
pub fn runtime_config(context: &Context) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(context.settings.concurrency)
}

/// Counts one reconcile in the metrics.
pub fn record(
    context: &Context,
    controller: &'static str,
    result: &Result<Action, ReconcileError>,
    started: std::time::Instant,
) {
    let (outcome, reason) = match result {
        Ok(_) => ("success", None),
        Err(error) => ("error", Some(error.reason())),
    };
    context
        .metrics
        .observe(controller, outcome, reason, started.elapsed());
}

/// What follows a reconcile whose outcome (already written to status) is
/// `health`: resync when Ready, a slow re-check when Stalled, backoff (through
/// `error_policy`) when Progressing.
pub fn next_action<K: Resource<DynamicType = ()>>(
    context: &Context,
    obj: &K,
    health: &Health,
) -> Result<Action, ReconcileError> {
    match health {
        Health::Ready { .. } => {
            context.reset_backoff(&object_key(obj));
            Ok(Action::requeue(context.settings.resync))
        }
        Health::Stalled { reason, message } => {
            tracing::info!(kind = %K::kind(&()), name = %obj.name_any(), reason, message, "stalled");
            Ok(Action::requeue(STALLED_RECHECK))
        }
        Health::Progressing { reason, message } => Err(ReconcileError::Transient {
            reason: reason.clone(),
            message: message.clone(),
        }),
    }
}

/// The objects in `store` that use the KafkaCluster `cluster`: same namespace,
/// and `clusterRef` naming it or absent (the namespace's only cluster).
pub fn users_of<K>(
    store: &kube::runtime::reflector::Store<K>,
    cluster: &tributary_api::KafkaCluster,
    cluster_ref: impl Fn(&K) -> Option<&tributary_api::ClusterRef>,
) -> Vec<kube::runtime::reflector::ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let namespace = cluster.namespace();
    let name = cluster.name_any();
    store
        .state()
        .iter()
        .filter(|o| o.namespace() == namespace)
        .filter(|o| cluster_ref(o).is_none_or(|r| r.name == name))
        .map(|o| kube::runtime::reflector::ObjectRef::from_obj(&**o))
        .collect()
}

/// How long a Stalled object waits before a re-check anyway: a conflict or a
/// missing dependency can disappear without a change to this object.
pub const STALLED_RECHECK: Duration = Duration::from_secs(30);
