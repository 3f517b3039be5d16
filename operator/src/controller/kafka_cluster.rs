//! The KafkaCluster controller: checks that the brokers (and the schema
//! registry, when one is configured) answer, and reports broker count,
//! cluster id and registry reachability in status. Status changes only when
//! reachability changes, so a healthy cluster causes no writes.

use std::sync::Arc;
use std::time::Instant;

use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tributary_api::{Health, KafkaCluster, KafkaClusterStatus};

use super::{Failure, ReconcileError, Shutdown};
use crate::cluster::{self, SecretValues};
use crate::context::Context;

const CONTROLLER: &str = "kafkacluster";

/// Runs the KafkaCluster controller until `shutdown`.
pub async fn run(context: Context, shutdown: Shutdown) {
    let clusters: Api<KafkaCluster> = context.watched_api();
    let reconciles = Controller::new(clusters, watcher::Config::default())
        .with_config(super::runtime_config(&context))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(context));
    super::drain(CONTROLLER, reconciles).await;
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
fn error_policy(cluster: Arc<KafkaCluster>, error: &ReconcileError, context: Arc<Context>) -> Action {
    super::error_policy(&*cluster, error, &context)
}

/// What the probes found.
#[derive(Default)]
struct Probe {
    cluster_id: Option<String>,
    brokers: Option<i32>,
    registry_reachable: Option<bool>,
}

async fn reconcile(cluster: Arc<KafkaCluster>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let api: Api<KafkaCluster> =
        Api::namespaced(context.client.clone(), &cluster.namespace().unwrap_or_default());
    let mut probe = Probe::default();
    let health = match check(&cluster, &context, &mut probe).await {
        Ok(health) => health,
        Err(failure) => failure.health(),
    };
    let previous = cluster.status.clone().unwrap_or_default();
    let status = KafkaClusterStatus {
        conditions: health.conditions(
            &previous.conditions,
            cluster.metadata.generation,
            &crate::status::now(),
        ),
        observed_generation: cluster.metadata.generation,
        cluster_id: probe.cluster_id.or(previous.cluster_id),
        brokers: probe.brokers,
        registry_reachable: probe.registry_reachable,
    };
    crate::status::apply(&api, &*cluster, cluster.status.as_ref(), &status).await?;
    let result = super::next_action(&context, &*cluster, &health);
    super::record(&context, CONTROLLER, &result, started);
    result
}

async fn check(cluster: &KafkaCluster, context: &Context, probe: &mut Probe) -> Result<Health, Failure> {
    let secrets = SecretValues::read(&context.client, cluster)
        .await
        .map_err(Failure::from)?;
    let admin = cluster::kafka_admin(
        &context.admins,
        cluster,
        &secrets,
        context.settings.request_timeout,
    )
    .map_err(Failure::from)?;
    let info = admin.describe_cluster().await.map_err(|e| {
        Failure::transient(
            "KafkaUnreachable",
            format!("brokers {}: {e}", cluster.spec.bootstrap_servers.join(",")),
        )
    })?;
    probe.cluster_id.clone_from(&info.cluster_id);
    probe.brokers = Some(info.brokers);

    let registry = cluster::registry_client(cluster, &secrets, context.settings.request_timeout)
        .map_err(Failure::from)?;
    let registry_note = match registry {
        None => String::new(),
        Some(registry) => match registry.subjects().await {
            Ok(_) => {
                probe.registry_reachable = Some(true);
                "; schema registry reachable".to_owned()
            }
            Err(error) => {
                probe.registry_reachable = Some(false);
                return Err(Failure::transient(
                    "RegistryUnreachable",
                    format!(
                        "Kafka reachable ({} brokers) but the schema registry is not: {error}",
                        info.brokers
                    ),
                ));
            }
        },
    };
    Ok(Health::Ready {
        reason: "Connected".to_owned(),
        message: format!("{} broker(s){registry_note}", info.brokers),
    })
}
