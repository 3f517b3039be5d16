//! Tributary's operator: one controller per resource kind.
//!
//! Every controller follows the same pipeline, so each step can be tested at
//! the lowest tier that covers it:
//!
//! 1. **read** — all I/O that gathers the world: the object, its
//!    `KafkaCluster`, referenced Secrets, what Kafka or the registry reports
//!    ([`cluster`] resolves connections);
//! 2. **validate** — pure: the spec against facts only known at runtime;
//! 3. **plan** — pure: desired vs observed → a list of actions plus drift
//!    ([`controller::topic::plan`], [`controller::schema::plan`]);
//! 4. **act** — executes the actions against Kafka or the registry;
//! 5. **status** — kstatus conditions and observed facts, written with
//!    server-side apply only when they changed ([`status`]).
//!
//! Invalid specs end as `Stalled` and wait for a change; transient failures
//! set `Reconciling` and retry with exponential backoff.

pub mod cluster;
pub mod context;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod status;

/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "tributary-operator";
