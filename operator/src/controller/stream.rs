//! The Stream controller: checks a Stream's SQL with the same planner the
//! worker runs (an invalid query is Stalled with its line and column, before
//! any pod starts), then runs it as a Deployment of `tributary-worker`s
//! sharing a consumer group (see [`super::workload`]), with the group's lag
//! and the query's topics in status.

use std::collections::BTreeMap;

use kube::ResourceExt;
use tributary_api::connector::PostgresSource;
use tributary_api::workload::default_group_id;
use tributary_api::{ClusterRef, DesiredState, Lineage, PodTemplate, Stream, WorkloadStatus};
use tributary_sql::PlanOptions;

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

    fn cdc_source(&self) -> Option<&PostgresSource> {
        None
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
