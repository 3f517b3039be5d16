//! The Stream controller: checks a Stream's SQL with the same planner the
//! worker runs (an invalid query is Stalled with its line and column, before
//! any pod starts), then runs it as a Deployment of `tributary-worker`s
//! sharing a consumer group (see [`super::workload`]), with the group's lag
//! and the query's topics in status.

use kube::ResourceExt;
use tributary_api::connector::PostgresSource;
use tributary_api::workload::{OffsetReset, default_group_id};
use tributary_api::{ClusterRef, DesiredState, Lineage, PodTemplate, Stream, WorkloadStatus};
use tributary_worker::config::{ConfigError, SecretResolver};

use super::Failure;
use super::workload::Workload;

impl Workload for Stream {
    const KIND: &'static str = "Stream";
    const COMPONENT: &'static str = "stream";

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

    fn validate_worker_config(&self, _secrets: &SecretResolver) -> Result<(), Failure> {
        // Everything, SQL included, was checked by `validate` (no secrets involved).
        Ok(())
    }

    fn offset_reset(&self) -> Option<&OffsetReset> {
        self.spec.offset_reset.as_ref()
    }

    fn cdc_source(&self) -> Option<&PostgresSource> {
        None
    }
}

/// Checks the stream as its workers will (the same planner and checks) and
/// returns the topics it reads and writes; an invalid query is a Stalled
/// `InvalidSql` naming line and column, any other bad field `InvalidSpec`.
pub fn lineage(stream: &Stream) -> Result<Lineage, Failure> {
    let checked = tributary_worker::stream::config::validate(stream).map_err(|error| {
        let reason = match &error {
            ConfigError::Invalid { field, .. } if field == "spec.sql" => "InvalidSql",
            _ => "InvalidSpec",
        };
        Failure::stalled(reason, error.to_string())
    })?;
    Ok(Lineage {
        reads: checked.plan.input_topics(),
        writes: vec![checked.output_topic],
    })
}
