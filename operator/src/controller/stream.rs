//! The Stream controller: checks a Stream's SQL with the same planner the
//! worker runs (an invalid query is Stalled with its line and column, before
//! any pod starts), then runs it as a Deployment of `tributary-worker`s
//! sharing a consumer group (see [`super::workload`]), with the group's lag
//! and the query's topics in status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tributary_api::workload::default_group_id;
use tributary_api::{ClusterRef, DesiredState, KafkaCluster, Lineage, PodTemplate, Stream, WorkloadStatus};
use tributary_sql::PlanOptions;

use super::workload::{self, Workload};
use super::{Failure, ReconcileError, Shutdown};
use crate::context::Context;

const CONTROLLER: &str = "stream";

impl Workload for Stream {
    fn cluster_ref(&self) -> Option<&ClusterRef> {
        self.spec.cluster_ref.as_ref()
    }

    fn desired_state(&self) -> DesiredState {
        self.spec.state
    }

    fn replicas(&self) -> i32 {
        self.spec.replicas
    }

    fn template(&self) -> Option<&PodTemplate> {
        self.spec.template.as_ref()
    }

    fn workload_status(&self) -> Option<&WorkloadStatus> {
        self.status.as_ref()
    }

    fn recreate(&self) -> bool {
        false
    }

    fn consumer_group(&self) -> Option<String> {
        Some(
            self.spec
                .group_id
                .clone()
                .unwrap_or_else(|| default_group_id(self.namespace().as_deref(), &self.name_any())),
        )
    }

    fn validate(&self) -> Result<Lineage, Failure> {
        lineage(self)
    }
}

/// Plans the query and returns the topics it reads and writes; an invalid
/// query is a Stalled `InvalidSql` naming line and column.
pub fn lineage(stream: &Stream) -> Result<Lineage, Failure> {
    let options = PlanOptions {
        timestamp_fields: stream
            .spec
            .inputs
            .iter()
            .filter_map(|i| i.timestamp_field.clone().map(|f| (i.topic.clone(), f)))
            .collect::<BTreeMap<_, _>>(),
    };
    let plan = tributary_sql::parse_and_plan(&stream.spec.sql, &options)
        .map_err(|e| Failure::stalled("InvalidSql", format!("spec.sql: {e}")))?;
    let output = match (plan.output_topic(), stream.spec.output.topic.as_deref()) {
        (Some(sql), Some(spec)) if sql != spec => {
            return Err(Failure::stalled(
                "InvalidSpec",
                format!(
                    "spec.output.topic {spec:?} differs from the query's INSERT INTO {sql:?}; set one of them"
                ),
            ));
        }
        (Some(topic), _) | (None, Some(topic)) => topic.to_owned(),
        (None, None) => {
            return Err(Failure::stalled(
                "InvalidSpec",
                "spec.output.topic is not set and the query has no INSERT INTO <topic>",
            ));
        }
    };
    Ok(Lineage {
        reads: plan.input_topics(),
        writes: vec![output],
    })
}

/// Runs the Stream controller until `shutdown`.
pub async fn run(context: Context, shutdown: Shutdown) {
    let streams: Api<Stream> = context.watched_api();
    let clusters: Api<KafkaCluster> = context.watched_api();
    let deployments: Api<Deployment> = context.watched_api();
    let controller = Controller::new(streams, watcher::Config::default());
    let store = controller.store();
    let reconciles = controller
        .owns(
            deployments,
            watcher::Config::default().labels("app.kubernetes.io/component=stream"),
        )
        .watches(clusters, watcher::Config::default(), move |cluster| {
            super::users_of(&store, &cluster, |s: &Stream| s.spec.cluster_ref.as_ref())
        })
        .with_config(super::runtime_config(&context))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(context));
    super::drain(CONTROLLER, reconciles).await;
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
fn error_policy(stream: Arc<Stream>, error: &ReconcileError, context: Arc<Context>) -> Action {
    super::error_policy(&*stream, error, &context)
}

async fn reconcile(stream: Arc<Stream>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let api: Api<Stream> = Api::namespaced(context.client.clone(), &stream.namespace().unwrap_or_default());
    let result = workload::reconcile(&*stream, &api, &context).await;
    super::record(&context, CONTROLLER, &result, started);
    result
}
