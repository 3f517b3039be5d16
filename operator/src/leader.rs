//! Leader election through a `coordination.k8s.io` Lease, so two operator
//! replicas never reconcile at once. A replica that loses the lease stops its
//! controllers and exits; its Deployment restarts it as a standby.

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Lease name shared by every replica.
pub const LEASE_NAME: &str = "tributary-operator-leader";

/// Holds the lease while alive; dropping it releases the lease.
#[derive(Debug)]
pub struct Leadership {
    changes: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// Waits until this replica (`identity`) holds the lease in `namespace`.
pub async fn acquire(
    client: kube::Client,
    namespace: &str,
    identity: &str,
) -> Result<Leadership, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_field_manager(crate::FIELD_MANAGER)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut changes, task) = manager.watch().await;
    tracing::info!(lease = LEASE_NAME, namespace, identity, "waiting for leadership");
    while !*changes.borrow_and_update() {
        if changes.changed().await.is_err() {
            break;
        }
    }
    tracing::info!(lease = LEASE_NAME, identity, "acquired leadership");
    Ok(Leadership { changes, task })
}

impl Leadership {
    /// A future that resolves when the lease is lost.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut changes = self.changes.clone();
        async move {
            // An error means the lease task ended: leadership is gone too.
            let _ = changes.wait_for(|leader| !*leader).await;
        }
    }

    /// Gives the lease up so a standby takes over at once.
    pub async fn release(self) {
        drop(self.changes);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("released leadership"),
            Ok(Err(error)) => tracing::warn!(%error, "releasing the lease failed"),
            Err(error) => tracing::warn!(%error, "lease task failed"),
        }
    }
}
