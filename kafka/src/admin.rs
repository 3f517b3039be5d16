//! Topic administration: what the operator needs to reconcile `Topic`
//! resources and to report a `KafkaCluster`'s health.
//!
//! # Data model
//!
//! A topic as Kafka sees it is an [`ObservedTopic`]: its partition count and
//! replication factor (from cluster metadata) and two views of its
//! configuration (from `DescribeConfigs`):
//!
//! - `overrides`: the *dynamic topic-level* configs only (config source
//!   `DYNAMIC_TOPIC_CONFIG`) — what `CreateTopics` configs,
//!   `kafka-configs --alter` or [`KafkaAdmin::set_topic_overrides`] set on the
//!   topic. This is the part of a topic's configuration a `Topic` resource
//!   declares and drift detection compares.
//! - `configs`: every config's effective value, including broker and
//!   built-in defaults.
//!
//! [`KafkaAdmin::set_topic_overrides`] makes a map the *complete* set of
//! overrides: keys absent from it revert to the broker default. It uses the
//! (non-incremental) `AlterConfigs` API, which has exactly these
//! replace-everything semantics; rdkafka 0.39 has no
//! `IncrementalAlterConfigs`.
//!
//! # Errors and time limits
//!
//! Every call is bounded by the timeout given to [`KafkaAdmin::new`] (one
//! deadline per call, shared by the requests it makes). Failures are
//! [`AdminError`]s; [`AdminError::is_transient`] tells the caller whether to
//! retry with backoff or wait for a spec change.
//!
//! rdkafka 0.39 reports per-topic results as bare error codes, without the
//! broker's error message, and drops per-resource `AlterConfigs` errors
//! entirely. This module therefore (a) names the offending config itself, by
//! validating each requested config alone with a validate-only
//! `CreateTopics`, and (b) verifies `set_topic_overrides` by reading the
//! configs back. Messages carry the librdkafka error code and its description
//! (e.g. `InvalidConfig (Broker: Configuration is invalid)`), never a secret:
//! broker error texts are scrubbed of the connection's credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication, TopicResult,
};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::time::Instant;
use tributary_api::common::is_secret_property;

use crate::connection::KafkaConnection;

/// Name of the topic validate-only `CreateTopics` requests use to check one
/// config value at a time. Never created.
const PROBE_TOPIC: &str = "tributary-config-probe";

/// How many distinct broker errors an `Unreachable` message quotes.
const MAX_BROKER_ERRORS: usize = 3;

/// Broker errors older than this are not quoted any more.
const BROKER_ERROR_MAX_AGE: Duration = Duration::from_mins(1);

/// Pause between reads while waiting for a change to show.
const VERIFY_INTERVAL: Duration = Duration::from_millis(200);

/// Why an admin operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The client could not be created from the connection's properties
    /// (an unknown or invalid client property, unusable TLS material).
    #[error("invalid Kafka client configuration: {0}")]
    Client(String),
    /// No broker could be reached; carries the brokers' error text
    /// (connection refused, name resolution, TLS or SASL failures …).
    #[error("Kafka unreachable: {0}")]
    Unreachable(String),
    /// Brokers are connected but did not answer within the timeout.
    #[error("Kafka did not answer in time: {0}")]
    TimedOut(String),
    /// `create_topic` for a topic that exists already.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// The topic does not exist (e.g. deleted concurrently).
    #[error("topic {0} does not exist")]
    TopicNotFound(String),
    /// Kafka refused the request as written: invalid config value, invalid
    /// partition count or replication factor, policy violation, missing ACLs.
    #[error("Kafka refused: {0}")]
    Refused(String),
    /// Kafka accepted the request but the change did not show up when read
    /// back within the timeout.
    #[error("Kafka did not apply the change: {0}")]
    NotApplied(String),
    /// Any other error reported by Kafka or librdkafka (leader elections,
    /// controller moves, throttling …).
    #[error("Kafka error: {0}")]
    Kafka(String),
}

impl AdminError {
    /// True for errors worth retrying with backoff (unreachable brokers,
    /// timeouts, a topic that vanished, transient broker states); false for
    /// refusals that need a change to the spec (or to the cluster's ACLs and
    /// policies) and for [`AdminError::TopicExists`].
    pub fn is_transient(&self) -> bool {
        match self {
            AdminError::Unreachable(_)
            | AdminError::TimedOut(_)
            | AdminError::TopicNotFound(_)
            | AdminError::NotApplied(_)
            | AdminError::Kafka(_) => true,
            AdminError::Client(_) | AdminError::TopicExists(_) | AdminError::Refused(_) => false,
        }
    }
}

/// What the cluster metadata says about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Kafka's cluster id (absent for very old brokers).
    pub cluster_id: Option<String>,
    /// Number of brokers in the metadata.
    pub brokers: i32,
}

/// A topic as Kafka reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replicas per partition (the largest replica set of any partition).
    pub replication_factor: i32,
    /// Dynamic topic-level overrides only (config source
    /// `DYNAMIC_TOPIC_CONFIG`), e.g. set at creation or by `kafka-configs --alter`.
    pub overrides: BTreeMap<String, String>,
    /// Every config's effective value (overrides, broker and built-in defaults).
    pub configs: BTreeMap<String, String>,
}

/// Admin operations on one Kafka cluster.
///
/// Holds two librdkafka clients with the same properties: an `AdminClient`
/// for the admin requests, and a small idle producer that serves the
/// metadata requests (cluster id, brokers, partitions) and — being polled by
/// its own thread — receives librdkafka's connection errors, which rdkafka's
/// `AdminClient` never delivers. Those errors are what
/// [`AdminError::Unreachable`] quotes.
pub struct KafkaAdmin {
    client: AdminClient<DefaultClientContext>,
    monitor: Arc<ThreadedProducer<MonitorContext>>,
    connection: KafkaConnection,
    timeout: Duration,
}

impl fmt::Debug for KafkaAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaAdmin")
            .field("bootstrap_servers", &self.connection.bootstrap_servers())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaAdmin {
    /// An admin client for `connection`; every call is bounded by `timeout`.
    ///
    /// Fails only when the properties are unusable; the clients then start
    /// connecting in the background. Meant to be kept and reused for the
    /// cluster (each `KafkaAdmin` holds two librdkafka clients and their
    /// threads); dropping it briefly blocks while those threads stop.
    pub fn new(connection: &KafkaConnection, timeout: Duration) -> Result<Self, AdminError> {
        let mut config = connection.client_config();
        // Both clients are producers to librdkafka, whose default would let a
        // metadata request for a missing topic create it on brokers with
        // auto.create.topics.enable.
        config.set("allow.auto.create.topics", "false");
        let monitor: ThreadedProducer<MonitorContext> = config
            .create_with_context(MonitorContext::default())
            .map_err(|error| AdminError::Client(client_error(connection, &error)))?;
        // rdkafka's AdminClient never serves its main queue, where librdkafka
        // queues log lines (errors included): without this they would pile
        // up for the client's lifetime. The monitor logs the same events.
        config.set_log_level(RDKafkaLogLevel::Emerg);
        let client: AdminClient<DefaultClientContext> = config
            .create()
            .map_err(|error| AdminError::Client(client_error(connection, &error)))?;
        Ok(Self {
            client,
            monitor: Arc::new(monitor),
            connection: connection.clone(),
            timeout,
        })
    }

    /// The timeout bounding each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Cluster id and number of brokers, from the cluster metadata.
    ///
    /// Fails with [`AdminError::Unreachable`], carrying the brokers' error
    /// text, when no broker answers within the timeout.
    pub async fn describe_cluster(&self) -> Result<ClusterInfo, AdminError> {
        let deadline = self.deadline();
        let what = "describe cluster";
        let info = self
            .metadata(what, None, deadline, move |client, timeout| {
                let started = std::time::Instant::now();
                let metadata = client.fetch_metadata(None, timeout)?;
                let brokers = i32::try_from(metadata.brokers().len()).unwrap_or(i32::MAX);
                // Cached by the metadata request above, so normally immediate.
                let rest = timeout
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(1));
                let cluster_id = client.fetch_cluster_id(rest);
                Ok(ClusterInfo { cluster_id, brokers })
            })
            .await?;
        self.context().clear();
        Ok(info)
    }

    /// The topic's partitions, replication factor and configs; `None` when it
    /// does not exist.
    pub async fn describe_topic(&self, name: &str) -> Result<Option<ObservedTopic>, AdminError> {
        let deadline = self.deadline();
        let Some(shape) = self.topic_shape(name, deadline).await? else {
            return Ok(None);
        };
        let (overrides, configs) = self.topic_configs(name, deadline).await?;
        self.context().clear();
        Ok(Some(ObservedTopic {
            name: name.to_owned(),
            partitions: shape.partitions,
            replication_factor: shape.replication_factor,
            overrides,
            configs,
        }))
    }

    /// Creates a topic with `partitions` partitions, `replication_factor`
    /// replicas each (`None`: the broker's `default.replication.factor`) and
    /// `configs` as its topic-level overrides.
    ///
    /// Fails with [`AdminError::TopicExists`] if it exists already, and with
    /// [`AdminError::Refused`] naming the config when a config value is invalid.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: Option<i32>,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        let deadline = self.deadline();
        let what = format!("create topic {name}");
        // -1: the broker's default replication factor (CreateTopics v4, Kafka >= 2.4).
        let replication = TopicReplication::Fixed(replication_factor.unwrap_or(-1));
        let topic = configs.iter().fold(
            NewTopic::new(name, partitions, replication),
            |topic, (key, value)| topic.set(key, value),
        );
        let options = deadline.options();
        let results = self
            .call(
                &what,
                Some(name),
                deadline,
                self.client.create_topics([&topic], &options),
            )
            .await?;
        match first_result(results) {
            Ok(()) => {
                tracing::info!(
                    topic = name,
                    partitions,
                    ?replication_factor,
                    "created Kafka topic"
                );
                self.await_metadata(name, deadline, |shape| shape.is_some()).await;
                self.context().clear();
                Ok(())
            }
            Err(RDKafkaErrorCode::InvalidConfig) => {
                let culprits = self.invalid_configs(name, configs, deadline).await;
                Err(AdminError::Refused(refused_configs(&what, &culprits, configs)))
            }
            Err(code) => Err(self.code_error(&what, Some(name), code)),
        }
    }

    /// Grows the topic to `total` partitions. Succeeds without change when it
    /// has exactly `total` already; Kafka cannot shrink a topic, so a smaller
    /// `total` is [`AdminError::Refused`].
    pub async fn create_partitions(&self, name: &str, total: i32) -> Result<(), AdminError> {
        let deadline = self.deadline();
        let what = format!("grow topic {name} to {total} partitions");
        let Ok(count) = usize::try_from(total) else {
            return Err(AdminError::Refused(format!(
                "{what}: a partition count must be positive"
            )));
        };
        let partitions = NewPartitions::new(name, count);
        let options = deadline.options();
        let results = self
            .call(
                &what,
                Some(name),
                deadline,
                self.client.create_partitions([&partitions], &options),
            )
            .await?;
        match first_result(results) {
            Ok(()) => {
                tracing::info!(topic = name, partitions = total, "grew Kafka topic");
                self.await_metadata(name, deadline, |shape| {
                    shape.is_some_and(|s| s.partitions >= total)
                })
                .await;
                self.context().clear();
                Ok(())
            }
            Err(RDKafkaErrorCode::InvalidPartitions) => {
                // Kafka says "Topic already has N partitions" only in the
                // message rdkafka drops: look the count up.
                match self.topic_shape(name, deadline).await {
                    Ok(Some(shape)) if shape.partitions == total => {
                        self.context().clear();
                        Ok(())
                    }
                    Ok(Some(shape)) if shape.partitions > total => Err(AdminError::Refused(format!(
                        "{what}: it has {} partitions and Kafka cannot remove partitions",
                        shape.partitions
                    ))),
                    _ => Err(self.code_error(&what, Some(name), RDKafkaErrorCode::InvalidPartitions)),
                }
            }
            Err(code) => Err(self.code_error(&what, Some(name), code)),
        }
    }

    /// Makes `overrides` the *complete* set of the topic's dynamic
    /// topic-level configs: keys in it are set, every other override is
    /// removed (reverting to the broker default).
    ///
    /// This is `AlterConfigs` (not incremental) by design. Since rdkafka 0.39
    /// does not report its per-topic result, the configs are read back until
    /// they match: a config Kafka rejects is reported as
    /// [`AdminError::Refused`] naming it, a change that does not show up in
    /// time as [`AdminError::NotApplied`].
    pub async fn set_topic_overrides(
        &self,
        name: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        let deadline = self.deadline();
        let what = format!("set configs of topic {name}");
        let alter = overrides.iter().fold(
            AlterConfig::new(ResourceSpecifier::Topic(name)),
            |alter, (key, value)| alter.set(key, value),
        );
        let options = deadline.options();
        let results = self
            .call(
                &what,
                Some(name),
                deadline,
                self.client.alter_configs([&alter], &options),
            )
            .await?;
        if let Some(Err((_, code))) = results.into_iter().next() {
            return Err(match code {
                RDKafkaErrorCode::InvalidConfig => {
                    let culprits = self.invalid_configs(PROBE_TOPIC, overrides, deadline).await;
                    AdminError::Refused(refused_configs(&what, &culprits, overrides))
                }
                code => self.code_error(&what, Some(name), code),
            });
        }

        // Read back until the change shows (brokers apply config changes from
        // the metadata log asynchronously). At the first mismatch, check
        // whether Kafka refuses one of the values: then waiting is pointless.
        let mut checked = false;
        loop {
            let (observed, configs) = self.topic_configs(name, deadline).await?;
            if observed == *overrides {
                tracing::info!(topic = name, ?overrides, "set Kafka topic config overrides");
                self.context().clear();
                return Ok(());
            }
            if configs.is_empty() && self.topic_shape(name, deadline).await?.is_none() {
                return Err(AdminError::TopicNotFound(name.to_owned()));
            }
            if !checked {
                checked = true;
                let pending: BTreeMap<String, String> = overrides
                    .iter()
                    .filter(|(key, value)| observed.get(*key) != Some(*value))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect();
                let culprits = self.invalid_configs(PROBE_TOPIC, &pending, deadline).await;
                if !culprits.is_empty() {
                    return Err(AdminError::Refused(refused_configs(&what, &culprits, overrides)));
                }
            }
            if deadline.remaining() <= VERIFY_INTERVAL {
                return Err(AdminError::NotApplied(format!(
                    "{what}: after AlterConfigs the topic's overrides are still {}, wanted {} \
                     (rdkafka does not report why: check the ACLs for AlterConfigs on the topic \
                     and the brokers' alter.config.policy)",
                    render(&observed),
                    render(overrides)
                )));
            }
            tokio::time::sleep(VERIFY_INTERVAL).await;
        }
    }

    /// Deletes the topic; succeeds if it does not exist.
    pub async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        let deadline = self.deadline();
        let what = format!("delete topic {name}");
        let options = deadline.options();
        let results = self
            .call(
                &what,
                Some(name),
                deadline,
                self.client.delete_topics(&[name], &options),
            )
            .await?;
        match first_result(results) {
            Ok(()) => {
                tracing::info!(topic = name, "deleted Kafka topic");
                self.await_metadata(name, deadline, |shape| shape.is_none()).await;
                self.context().clear();
                Ok(())
            }
            Err(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                self.context().clear();
                Ok(())
            }
            Err(code) => Err(self.code_error(&what, Some(name), code)),
        }
    }

    fn context(&self) -> &MonitorContext {
        self.monitor.client().context()
    }

    fn deadline(&self) -> Deadline {
        Deadline(Instant::now() + self.timeout)
    }

    /// Awaits an rdkafka admin future within the deadline.
    async fn call<T>(
        &self,
        what: &str,
        topic: Option<&str>,
        deadline: Deadline,
        request: impl Future<Output = KafkaResult<T>>,
    ) -> Result<T, AdminError> {
        match tokio::time::timeout_at(deadline.0, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.kafka_error(what, topic, error)),
            Err(_elapsed) => Err(self.timed_out(what)),
        }
    }

    /// Runs a blocking metadata request on the monitor client, on the
    /// blocking pool, with the time left until the deadline. While no broker
    /// can be reached, it is retried until the deadline, so a broker that
    /// restarts is waited for and an unreachable one is reported with the
    /// errors librdkafka gave meanwhile.
    async fn metadata<T: Send + 'static>(
        &self,
        what: &str,
        topic: Option<&str>,
        deadline: Deadline,
        request: impl Fn(&Client<MonitorContext>, Duration) -> KafkaResult<T> + Send + 'static,
    ) -> Result<T, AdminError> {
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            return Err(self.timed_out(what));
        }
        let monitor = Arc::clone(&self.monitor);
        let handle = tokio::task::spawn_blocking(move || {
            let until = std::time::Instant::now() + remaining;
            loop {
                let left = until.saturating_duration_since(std::time::Instant::now());
                match request(monitor.client(), left.max(Duration::from_millis(1))) {
                    Err(KafkaError::MetadataFetch(code))
                        if is_connectivity(code) && left > VERIFY_INTERVAL * 2 =>
                    {
                        std::thread::sleep(VERIFY_INTERVAL);
                    }
                    result => return result,
                }
            }
        });
        match tokio::time::timeout_at(deadline.0, handle).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(self.kafka_error(what, topic, error)),
            Ok(Err(join_error)) => Err(AdminError::Kafka(format!("{what}: {join_error}"))),
            Err(_elapsed) => Err(self.timed_out(what)),
        }
    }

    /// Partition count and replication factor from the metadata; `None` when
    /// the topic does not exist.
    async fn topic_shape(&self, name: &str, deadline: Deadline) -> Result<Option<TopicShape>, AdminError> {
        let what = format!("describe topic {name}");
        let topic = name.to_owned();
        self.metadata(&what, Some(name), deadline, move |client, timeout| {
            let metadata = client.fetch_metadata(Some(&topic), timeout)?;
            let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
                return Ok(None);
            };
            match found.error().map(RDKafkaErrorCode::from) {
                None => {}
                Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                    return Ok(None);
                }
                Some(code) => return Err(KafkaError::MetadataFetch(code)),
            }
            let partitions = found.partitions();
            let replication_factor = partitions.iter().map(|p| p.replicas().len()).max().unwrap_or(0);
            Ok(Some(TopicShape {
                partitions: i32::try_from(partitions.len()).unwrap_or(i32::MAX),
                replication_factor: i32::try_from(replication_factor).unwrap_or(i32::MAX),
            }))
        })
        .await
    }

    /// Waits until the metadata shows what a successful change promised, so
    /// that a `describe_topic` right after sees it (brokers apply changes
    /// from the metadata log asynchronously). Best effort: gives up quietly
    /// at the deadline, since the change itself succeeded.
    async fn await_metadata(
        &self,
        name: &str,
        deadline: Deadline,
        done: impl Fn(Option<TopicShape>) -> bool,
    ) {
        loop {
            if let Ok(shape) = self.topic_shape(name, deadline).await
                && done(shape)
            {
                return;
            }
            if deadline.remaining() <= VERIFY_INTERVAL {
                tracing::debug!(topic = name, "change not yet visible in the metadata");
                return;
            }
            tokio::time::sleep(VERIFY_INTERVAL / 2).await;
        }
    }

    /// `(overrides, effective configs)` of a topic. Both are empty when the
    /// topic does not exist (rdkafka drops the per-resource error).
    async fn topic_configs(
        &self,
        name: &str,
        deadline: Deadline,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), AdminError> {
        let what = format!("describe configs of topic {name}");
        let options = deadline.options();
        let resource = ResourceSpecifier::Topic(name);
        let results = self
            .call(
                &what,
                Some(name),
                deadline,
                self.client.describe_configs([&resource], &options),
            )
            .await?;
        let mut overrides = BTreeMap::new();
        let mut configs = BTreeMap::new();
        match results.into_iter().next() {
            Some(Ok(resource)) => {
                for entry in resource.entries {
                    let Some(value) = entry.value else { continue };
                    if entry.source == ConfigSource::DynamicTopic {
                        overrides.insert(entry.name.clone(), value.clone());
                    }
                    configs.insert(entry.name, value);
                }
            }
            Some(Err(code)) => return Err(self.code_error(&what, Some(name), code)),
            None => {}
        }
        Ok((overrides, configs))
    }

    /// The configs of `configs` Kafka refuses, found by validating them (all
    /// together, then each alone) in validate-only `CreateTopics` requests
    /// for `topic` (which must not exist). Best effort: empty when the check
    /// itself fails or runs out of time.
    async fn invalid_configs(
        &self,
        topic: &str,
        configs: &BTreeMap<String, String>,
        deadline: Deadline,
    ) -> Vec<(String, String, RDKafkaErrorCode)> {
        if configs.is_empty()
            || self
                .validate_configs(topic, configs.iter(), deadline)
                .await
                .is_none()
        {
            return Vec::new();
        }
        let mut culprits = Vec::new();
        for (key, value) in configs {
            if let Some(code) = self.validate_configs(topic, [(key, value)], deadline).await {
                culprits.push((key.clone(), value.clone(), code));
            }
        }
        culprits
    }

    /// Validates `configs` as those of a new topic named `topic`: `Some`
    /// with the code when Kafka reports an invalid config, `None` otherwise
    /// (valid, or the check failed for another reason).
    async fn validate_configs<'a>(
        &self,
        topic: &str,
        configs: impl IntoIterator<Item = (&'a String, &'a String)>,
        deadline: Deadline,
    ) -> Option<RDKafkaErrorCode> {
        if deadline.remaining().is_zero() {
            return None;
        }
        let probe = configs.into_iter().fold(
            NewTopic::new(topic, -1, TopicReplication::Fixed(-1)),
            |probe, (key, value)| probe.set(key, value),
        );
        let options = deadline.options().validate_only(true);
        match tokio::time::timeout_at(deadline.0, self.client.create_topics([&probe], &options)).await {
            Ok(Ok(results)) => match first_result(results) {
                Err(code @ RDKafkaErrorCode::InvalidConfig) => Some(code),
                _ => None,
            },
            _ => None,
        }
    }

    /// The error for a Kafka error code returned by `what`.
    fn code_error(&self, what: &str, topic: Option<&str>, code: RDKafkaErrorCode) -> AdminError {
        use RDKafkaErrorCode as C;
        match (code, topic) {
            (C::TopicAlreadyExists, Some(topic)) => AdminError::TopicExists(topic.to_owned()),
            (C::UnknownTopicOrPartition | C::UnknownTopic, Some(topic)) => {
                AdminError::TopicNotFound(topic.to_owned())
            }
            (code, _) if is_connectivity(code) => {
                AdminError::Unreachable(self.with_broker_errors(&format!("{what}: {code}")))
            }
            (C::OperationTimedOut | C::RequestTimedOut | C::TimedOutQueue, _) => self.timed_out(what),
            (
                C::InvalidConfig
                | C::InvalidPartitions
                | C::InvalidReplicationFactor
                | C::InvalidReplicaAssignment
                | C::PolicyViolation
                | C::InvalidTopic
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TopicDeletionDisabled
                | C::InvalidRequest
                | C::UnsupportedVersion
                | C::UnsupportedFeature
                | C::InvalidArgument
                | C::TopicAlreadyExists
                | C::UnknownTopicOrPartition
                | C::UnknownTopic,
                _,
            ) => AdminError::Refused(format!("{what}: {code}")),
            _ => AdminError::Kafka(format!("{what}: {code}")),
        }
    }

    fn kafka_error(&self, what: &str, topic: Option<&str>, error: KafkaError) -> AdminError {
        match error {
            KafkaError::AdminOp(code) | KafkaError::MetadataFetch(code) => self.code_error(what, topic, code),
            KafkaError::AdminOpCreation(message) => {
                AdminError::Refused(format!("{what}: {}", self.connection.redact(&message)))
            }
            KafkaError::Nul(_) => {
                AdminError::Refused(format!("{what}: names and values must not contain NUL"))
            }
            KafkaError::Canceled => AdminError::Kafka(format!("{what}: the admin client shut down")),
            other => match other.rdkafka_error_code() {
                Some(code) => self.code_error(what, topic, code),
                None => AdminError::Kafka(self.connection.redact(&format!("{what}: {other}"))),
            },
        }
    }

    /// No answer before the deadline: unreachable if the brokers reported
    /// errors meanwhile, otherwise just slow.
    fn timed_out(&self, what: &str) -> AdminError {
        let message = format!("{what}: no answer within {:?}", self.timeout);
        if self.context().errors().is_empty() {
            AdminError::TimedOut(message)
        } else {
            AdminError::Unreachable(self.with_broker_errors(&message))
        }
    }

    /// `message` followed by the brokers' recent errors, secrets scrubbed.
    fn with_broker_errors(&self, message: &str) -> String {
        let errors = self.context().errors();
        let text = if errors.is_empty() {
            message.to_owned()
        } else {
            format!("{message}: {}", errors.join("; "))
        };
        self.connection.redact(&text)
    }
}

/// Partition count and replication factor of an existing topic.
#[derive(Debug, Clone, Copy)]
struct TopicShape {
    partitions: i32,
    replication_factor: i32,
}

/// The point in time a call must finish by.
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// Admin options bounded by the deadline. The broker-side operation
    /// timeout is shorter than the request timeout so the broker's answer
    /// (success or its own timeout) arrives before the client gives up.
    fn options(self) -> AdminOptions {
        let remaining = self.remaining().max(Duration::from_millis(1));
        AdminOptions::new()
            .request_timeout(Some(remaining))
            .operation_timeout(Some(remaining.mul_f64(0.8)))
    }
}

/// Context of the monitor client: records the errors librdkafka reports
/// outside any request (connection refused, name resolution, all brokers
/// down, TLS and SASL failures), so a failed call can say *why* the brokers
/// did not answer. Cleared after each successful call; entries older than
/// [`BROKER_ERROR_MAX_AGE`] are ignored.
#[derive(Debug, Default)]
struct MonitorContext {
    broker_errors: Mutex<Vec<(Instant, String)>>,
}

impl MonitorContext {
    fn errors(&self) -> Vec<String> {
        let errors = self.broker_errors.lock().unwrap_or_else(PoisonError::into_inner);
        errors
            .iter()
            .filter(|(at, _)| at.elapsed() <= BROKER_ERROR_MAX_AGE)
            .map(|(_, text)| text.clone())
            .collect()
    }

    fn clear(&self) {
        self.broker_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl ClientContext for MonitorContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka reported an error");
        let text = if reason.is_empty() {
            error.to_string()
        } else {
            without_suppression_note(reason)
        };
        let mut errors = self.broker_errors.lock().unwrap_or_else(PoisonError::into_inner);
        // One entry per distinct error, ignoring librdkafka's timing detail.
        let key = |text: &str| text.split(" (after ").next().unwrap_or_default().to_owned();
        let new_key = key(&text);
        errors.retain(|(_, known)| key(known) != new_key);
        errors.push((Instant::now(), text));
        if errors.len() > MAX_BROKER_ERRORS {
            errors.remove(0);
        }
    }
}

/// The monitor never produces.
impl ProducerContext for MonitorContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, (): ()) {}
}

/// `reason` without librdkafka's `, N identical error(s) suppressed` note,
/// so repeats of one error are recognised as such.
fn without_suppression_note(reason: &str) -> String {
    const NOTE: &str = " identical error(s) suppressed";
    if let Some(end) = reason.find(NOTE)
        && let Some(comma) = reason[..end].rfind(", ")
        && reason[comma + 2..end].bytes().all(|b| b.is_ascii_digit())
    {
        return format!("{}{}", &reason[..comma], &reason[end + NOTE.len()..]);
    }
    reason.to_owned()
}

/// Error codes meaning no broker could be talked to.
fn is_connectivity(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::Resolve
            | C::SSL
            | C::Authentication
            | C::SaslAuthenticationFailed
            | C::UnsupportedSASLMechanism
            | C::IllegalSASLState
            | C::NetworkException
            | C::BrokerNotAvailable
    )
}

/// The single result of a one-topic request.
fn first_result(results: Vec<TopicResult>) -> Result<(), RDKafkaErrorCode> {
    match results.into_iter().next() {
        Some(Ok(_)) | None => Ok(()),
        Some(Err((_, code))) => Err(code),
    }
}

/// The `Refused` message for invalid configs: the culprits when known,
/// otherwise the keys that were requested.
fn refused_configs(
    what: &str,
    culprits: &[(String, String, RDKafkaErrorCode)],
    requested: &BTreeMap<String, String>,
) -> String {
    if culprits.is_empty() {
        let keys: Vec<&str> = requested.keys().map(String::as_str).collect();
        format!(
            "{what}: {} (one of the configs {} is invalid)",
            RDKafkaErrorCode::InvalidConfig,
            keys.join(", ")
        )
    } else {
        let each: Vec<String> = culprits
            .iter()
            .map(|(key, value, code)| format!("invalid value {value:?} for config {key}: {code}"))
            .collect();
        format!("{what}: {}", each.join("; "))
    }
}

/// `{k=v, …}` for messages.
fn render(configs: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = configs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// A client-creation error without property values of credentials.
fn client_error(connection: &KafkaConnection, error: &KafkaError) -> String {
    let text = match error {
        KafkaError::ClientConfig(_, _, key, _) if is_secret_property(key) => {
            format!("client property {key}: invalid value")
        }
        KafkaError::ClientConfig(_, description, key, _) => format!("client property {key}: {description}"),
        other => other.to_string(),
    };
    connection.redact(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        for transient in [
            AdminError::Unreachable("x".into()),
            AdminError::TimedOut("x".into()),
            AdminError::TopicNotFound("x".into()),
            AdminError::NotApplied("x".into()),
            AdminError::Kafka("x".into()),
        ] {
            assert!(transient.is_transient(), "{transient:?}");
        }
        for permanent in [
            AdminError::Client("x".into()),
            AdminError::TopicExists("x".into()),
            AdminError::Refused("x".into()),
        ] {
            assert!(!permanent.is_transient(), "{permanent:?}");
        }
    }

    #[test]
    fn repeated_broker_errors_are_quoted_once() {
        let context = MonitorContext::default();
        let refused = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused";
        context.error(
            KafkaError::Canceled,
            &format!("{refused} (after 0ms in state CONNECT)"),
        );
        context.error(
            KafkaError::Canceled,
            &format!("{refused} (after 0ms in state CONNECT, 12 identical error(s) suppressed)"),
        );
        context.error(KafkaError::Canceled, "1/1 brokers are down");
        assert_eq!(
            context.errors(),
            [
                format!("{refused} (after 0ms in state CONNECT)"),
                "1/1 brokers are down".to_owned()
            ]
        );
        context.clear();
        assert!(context.errors().is_empty());
    }

    #[test]
    fn error_codes_are_classified() {
        let admin =
            KafkaAdmin::new(&KafkaConnection::plaintext("127.0.0.1:1"), Duration::from_secs(1)).unwrap();
        let error = |code| admin.code_error("op", Some("t"), code);
        assert_eq!(
            error(RDKafkaErrorCode::TopicAlreadyExists),
            AdminError::TopicExists("t".into())
        );
        assert_eq!(
            error(RDKafkaErrorCode::UnknownTopicOrPartition),
            AdminError::TopicNotFound("t".into())
        );
        assert!(
            matches!(error(RDKafkaErrorCode::InvalidConfig), AdminError::Refused(m) if m.contains("InvalidConfig"))
        );
        assert!(matches!(
            error(RDKafkaErrorCode::PolicyViolation),
            AdminError::Refused(_)
        ));
        assert!(matches!(
            error(RDKafkaErrorCode::InvalidReplicationFactor),
            AdminError::Refused(_)
        ));
        assert!(matches!(
            error(RDKafkaErrorCode::AllBrokersDown),
            AdminError::Unreachable(_)
        ));
        assert!(error(RDKafkaErrorCode::OperationTimedOut).is_transient());
        assert!(matches!(
            error(RDKafkaErrorCode::NotController),
            AdminError::Kafka(_)
        ));
    }

    #[test]
    fn broker_errors_are_scrubbed_of_secrets() {
        use tributary_api::kafka_cluster::KafkaSasl;
        use tributary_api::{KafkaClusterSpec, SecretKeyRef};

        let spec = KafkaClusterSpec {
            bootstrap_servers: vec!["127.0.0.1:1".into()],
            sasl: Some(KafkaSasl {
                username: "u".into(),
                password_secret_ref: SecretKeyRef {
                    name: "s".into(),
                    key: "k".into(),
                },
                ..KafkaSasl::default()
            }),
            ..KafkaClusterSpec::default()
        };
        let connection = KafkaConnection::from_spec(&spec, |_| Ok("p4ssw0rd-xyz".into())).unwrap();
        let admin = KafkaAdmin::new(&connection, Duration::from_secs(1)).unwrap();
        admin
            .context()
            .error(KafkaError::Canceled, "broker said p4ssw0rd-xyz is wrong");
        let message = admin.timed_out("op").to_string();
        assert!(!message.contains("p4ssw0rd-xyz"), "{message}");
        assert!(message.contains("broker said <redacted> is wrong"), "{message}");
        assert!(!format!("{admin:?}").contains("p4ssw0rd-xyz"));
    }

    #[test]
    fn unknown_client_properties_fail_creation_without_values() {
        let spec = tributary_api::KafkaClusterSpec {
            bootstrap_servers: vec!["127.0.0.1:1".into()],
            client_properties: [("no.such.property".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        };
        let connection = KafkaConnection::from_spec(&spec, |_| Err("unused".into())).unwrap();
        let error = KafkaAdmin::new(&connection, Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(&error, AdminError::Client(m) if m.contains("no.such.property")),
            "{error}"
        );
        assert!(!error.is_transient());
    }
}
