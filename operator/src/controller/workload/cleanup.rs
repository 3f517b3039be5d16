//! Deleting a Connector whose CDC source says `slotDeletionPolicy: Delete`.
//!
//! Such a Connector carries the finalizer [`SLOT_FINALIZER`] (added and
//! removed here as the policy changes). Once it is deleted the reconcile
//! goes through three steps, each re-entered until done, so a restart of
//! the operator at any point resumes where it stopped:
//!
//! ```text
//!  deletionTimestamp set ─► Deployment deleted, wait until no worker pod
//!        is left ─► connect to Postgres, drop slot (refused while a
//!        connection still holds it) and publication ─► finalizer removed
//! ```
//!
//! A failure (database unreachable, slot still held) keeps the finalizer;
//! status and a Warning Event say why, and the reconcile backs off.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tributary_api::Health;
use tributary_api::connector::SlotDeletionPolicy;

use super::{Workload, build, slot};
use crate::context::Context;
use crate::controller::ReconcileError;

/// Finalizer of Connectors whose slot is dropped on deletion.
pub const SLOT_FINALIZER: &str = "tributary.dev/replication-slot";

/// How often the reconcile looks again while the workers stop.
const STOP_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether `obj` asks for its slot to be dropped on deletion.
pub fn wants_finalizer<K: Workload>(obj: &K) -> bool {
    obj.cdc_source()
        .is_some_and(|pg| pg.slot_deletion_policy == SlotDeletionPolicy::Delete)
}

fn has_finalizer<K: Workload>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == SLOT_FINALIZER)
}

/// Adds or removes the finalizer as the policy says (before any worker
/// runs, so a slot is never created without it).
pub async fn ensure_finalizer<K: Workload>(obj: &K, api: &Api<K>) -> Result<(), kube::Error> {
    match (wants_finalizer(obj), has_finalizer(obj)) {
        (true, false) => {
            let mut finalizers = obj.finalizers().to_vec();
            finalizers.push(SLOT_FINALIZER.to_owned());
            set_finalizers(obj, api, finalizers).await
        }
        (false, true) => remove_finalizer(obj, api).await,
        _ => Ok(()),
    }
}

async fn remove_finalizer<K: Workload>(obj: &K, api: &Api<K>) -> Result<(), kube::Error> {
    let finalizers = obj
        .finalizers()
        .iter()
        .filter(|f| *f != SLOT_FINALIZER)
        .cloned()
        .collect();
    set_finalizers(obj, api, finalizers).await
}

/// Replaces the finalizer list; the resourceVersion makes a concurrent
/// change (another controller's finalizer) a conflict that is retried
/// instead of a lost update.
async fn set_finalizers<K: Workload>(
    obj: &K,
    api: &Api<K>,
    finalizers: Vec<String>,
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()},
    });
    api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The reconcile of a deleted workload.
pub async fn on_deletion<K: Workload>(
    obj: &K,
    api: &Api<K>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    if !has_finalizer(obj) {
        return Ok(Action::await_change());
    }
    let Some(pg) = obj.cdc_source().filter(|_| wants_finalizer(obj)) else {
        // The policy became Retain after the finalizer was added.
        remove_finalizer(obj, api).await?;
        return Ok(Action::await_change());
    };
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();

    // 1. No worker may hold the slot.
    let deployments: Api<Deployment> = Api::namespaced(context.client.clone(), &namespace);
    let child = build::child_name(K::KIND, &name);
    if deployments.get_opt(&child).await?.is_some() {
        deployments.delete(&child, &DeleteParams::background()).await?;
    }
    let pods: Api<Pod> = Api::namespaced(context.client.clone(), &namespace);
    let left = pods
        .list_metadata(&ListParams::default().labels(&build::selector_string(K::KIND, &name)))
        .await?
        .items
        .len();
    if left > 0 {
        let health = Health::Progressing {
            reason: "StoppingWorkers".to_owned(),
            message: format!(
                "deleting: waiting for {left} worker pods to stop before dropping replication slot {}",
                pg.slot_name
            ),
        };
        super::write_health(obj, api, &health).await?;
        return Ok(Action::requeue(STOP_POLL));
    }

    // 2. Drop the slot and the publication.
    let dropped = match slot::connect(&context.client, &namespace, pg).await {
        Ok(db) => slot::drop_slot_and_publication(&db, pg).await,
        Err(error) => Err(error),
    };
    match dropped {
        Ok(dropped) => {
            tracing::info!(%namespace, %name, ?dropped, "dropped the replication slot's objects");
            if !dropped.is_empty() {
                crate::controller::publish_event(
                    context,
                    obj,
                    EventType::Normal,
                    "SlotDropped",
                    format!("dropped {} (slotDeletionPolicy: Delete)", dropped.join(" and ")),
                )
                .await;
            }
            // 3. Let the Connector go.
            remove_finalizer(obj, api).await?;
            context.reset_backoff(&crate::controller::object_key(obj));
            Ok(Action::await_change())
        }
        Err(error) => {
            let message = format!(
                "deleting: cannot drop replication slot {} yet, retrying: {error}",
                pg.slot_name
            );
            let health = Health::Progressing {
                reason: "SlotCleanupFailed".to_owned(),
                message: message.clone(),
            };
            super::write_health(obj, api, &health).await?;
            crate::controller::publish_event(
                context,
                obj,
                EventType::Warning,
                "SlotCleanupFailed",
                message.clone(),
            )
            .await;
            Err(ReconcileError::Transient {
                reason: "SlotCleanupFailed".to_owned(),
                message,
            })
        }
    }
}
