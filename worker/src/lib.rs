//! `tributary-worker`: runs one connector or stream. One folder per component.
//!
//! ```text
//!  config (YAML → WorkerConfig) ─► runner ─► source (postgres | datagen)
//!                                     │            │ records, checkpoints
//!                                     │            ▼
//!                                     │        delivery::Pipeline ─► Kafka
//!                                     ├─► state_topic (offsets, status in Kafka)
//!                                     └─► telemetry (/healthz, /readyz, /metrics)
//! ```

pub mod config;
pub mod debezium;
pub mod delivery;
pub mod format;
pub mod lifecycle;
pub mod record;
pub mod runner;
pub mod sink;
pub mod source;
pub mod state_topic;
pub mod stream;
pub mod telemetry;
pub mod transform;

/// `source.version` of every event: this worker's version.
pub const VERSION: &str = concat!("tributary-", env!("CARGO_PKG_VERSION"));

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}
