//! The Connector controller: runs each Connector as a Deployment of
//! `tributary-worker`s and reports their health, lag and throughput (see
//! [`super::workload`] for the reconcile shared with Streams).
//!
//! Connector specifics: a source runs one worker that is replaced, never
//! rolled (two workers on one replication slot would fight over it); a
//! sink's lag is its consumer group's; a CDC source's lag is the WAL its
//! slot retains, as its worker reports it.

use kube::ResourceExt;
use tributary_api::connector::PostgresSource;
use tributary_api::workload::{OffsetReset, default_group_id};
use tributary_api::{ClusterRef, Connector, DesiredState, Lineage, PodTemplate, WorkloadStatus};
use tributary_worker::config::SecretResolver;

use super::Failure;
use super::workload::Workload;

impl Workload for Connector {
    const KIND: &'static str = "Connector";
    const COMPONENT: &'static str = "connector";

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
        self.spec.source.is_some()
    }

    fn consumer_group(&self) -> Option<String> {
        let sink = self.spec.sink.as_ref()?;
        Some(
            sink.group_id
                .clone()
                .unwrap_or_else(|| default_group_id(self.namespace().as_deref(), &self.name_any())),
        )
    }

    fn validate(&self) -> Result<Lineage, Failure> {
        Ok(lineage(self))
    }

    fn validate_worker_config(&self, secrets: &SecretResolver) -> Result<(), Failure> {
        tributary_worker::config::validate_role(self, secrets)
            .map(drop)
            .map_err(|e| Failure::stalled("InvalidSpec", e.to_string()))
    }

    fn offset_reset(&self) -> Option<&OffsetReset> {
        self.spec.offset_reset.as_ref()
    }

    fn cdc_source(&self) -> Option<&PostgresSource> {
        self.spec.source.as_ref()?.postgres.as_ref()
    }
}

/// Topics a connector reads and writes, as far as the spec names them.
pub fn lineage(connector: &Connector) -> Lineage {
    let spec = &connector.spec;
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    if let Some(source) = &spec.source {
        if let Some(pg) = &source.postgres {
            writes.push(format!("{}.<schema>.<table>", pg.topic_prefix));
        }
        if let Some(datagen) = &source.datagen {
            writes.push(datagen.topic.clone());
        }
    }
    if let Some(sink) = &spec.sink {
        reads.extend(sink.topics.iter().cloned());
    }
    if let Some(topic) = &spec.errors.dead_letter_topic {
        writes.push(topic.clone());
    }
    Lineage { reads, writes }
}
