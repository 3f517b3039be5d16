//! Sources: where a connector's records come from. One folder each.

pub mod datagen;
pub mod postgres;

use std::sync::Arc;

use crate::delivery::Pipeline;
use crate::format::Serializers;
use crate::state_topic::StateTopic;
use crate::telemetry::Telemetry;

/// What every source runs with.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The connector's key in the offsets and status topics.
    pub id: String,
    /// Key and value serializers (formats, registry).
    pub serializers: Serializers,
    /// Records to Kafka, with ordered acknowledgements.
    pub pipeline: Pipeline,
    /// The offsets topic.
    pub offsets: StateTopic,
    /// Metrics and health.
    pub telemetry: Arc<Telemetry>,
}
