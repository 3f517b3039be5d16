//! Tributary's access to Kafka, shared by the operator and the worker.
//!
//! Two layers:
//!
//! - [`connection`]: a [`KafkaConnection`] is the set of librdkafka client
//!   properties a `KafkaCluster` spec stands for — bootstrap servers,
//!   `security.protocol`, TLS material and SASL credentials resolved from
//!   Secret references, plus the cluster's `clientProperties`. Producers,
//!   consumers and admin clients all start from
//!   [`KafkaConnection::client_config`].
//! - [`admin`]: a [`KafkaAdmin`] performs the cluster and topic operations the
//!   operator reconciles with (describe the cluster, describe / create / grow /
//!   reconfigure / delete a topic), each bounded by a timeout and failing with
//!   an [`AdminError`] that says whether retrying can help.
//!
//! ```text
//!  KafkaClusterSpec ──from_spec(secret resolver)──► KafkaConnection ──► ClientConfig
//!                                                        │
//!                                                        └──► KafkaAdmin ──► ClusterInfo
//!                                                                        └─► ObservedTopic
//! ```
//!
//! Beside them, [`status`] carries the documents workers report through the
//! `tributary-status` topic (and the operator's tail of it), [`lag`]
//! measures a consumer group's lag without joining it, and [`offsets`]
//! resets an empty group's committed offsets.
//!
//! Secret values never leave the properties map: `Debug` output and every
//! error message name fields and Secret references, not values.

pub mod admin;
pub mod connection;
pub mod lag;
pub mod offsets;
pub mod status;

pub use admin::{AdminError, ClusterInfo, KafkaAdmin, ObservedTopic};
pub use connection::{ConnectionError, KafkaConnection};
pub use lag::{GroupLag, LagError, group_lag};
pub use offsets::{ResetError, ResetTo, reset_group_offsets};
pub use status::{DEFAULT_STATUS_TOPIC, StatusTail, WorkerStatus};
