//! Small keyed documents in compacted Kafka topics: a connector's source
//! offsets (what it has durably done) and its status (what it is doing now).
//!
//! Like Kafka Connect's `connect-offsets` and `connect-status` topics, each
//! connector owns one key (`<namespace>/<name>`) and the latest record under
//! it is the truth. The operator reads the status topic with its own Kafka
//! client, so it never needs network access to worker pods, and a restarted
//! worker reads its offsets back from Kafka wherever it is scheduled.
//!
//! | topic (default) | value |
//! |---|---|
//! | `tributary-offsets` | [`SourceOffsets`] |
//! | `tributary-status` | [`WorkerStatus`] |

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tributary_kafka::{AdminError, KafkaAdmin, KafkaConnection};

/// Default name of the offsets topic.
pub const DEFAULT_OFFSETS_TOPIC: &str = "tributary-offsets";
/// Default name of the status topic (shared with the operator, which reads it).
pub use tributary_kafka::status::DEFAULT_STATUS_TOPIC;

/// What a source has durably completed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceOffsets {
    /// The replication slot the offsets belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// True once the initial snapshot was written to Kafka entirely.
    #[serde(default)]
    pub snapshot_completed: bool,
    /// LSN the snapshot was consistent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_lsn: Option<u64>,
    /// Records a datagen source has produced (so a restart continues the sequence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<u64>,
}

pub use tributary_kafka::status::WorkerStatus;

/// Reading or writing a state topic failed.
#[derive(Debug, thiserror::Error)]
pub enum StateTopicError {
    /// Creating or describing the topic failed.
    #[error("state topic {topic}: {source}")]
    Admin {
        /// Topic.
        topic: String,
        /// Why.
        #[source]
        source: AdminError,
    },
    /// Kafka client error.
    #[error("state topic {topic}: {message}")]
    Kafka {
        /// Topic.
        topic: String,
        /// librdkafka's message.
        message: String,
    },
    /// A stored value is not what this worker version understands.
    #[error("state topic {topic}, key {key}: unreadable value: {message}")]
    Corrupt {
        /// Topic.
        topic: String,
        /// Key.
        key: String,
        /// serde's message.
        message: String,
    },
}

/// One compacted topic of keyed JSON documents.
#[derive(Clone, Debug)]
pub struct StateTopic {
    kafka: KafkaConnection,
    topic: String,
}

impl StateTopic {
    /// The topic `topic` on `kafka`.
    pub fn new(kafka: KafkaConnection, topic: impl Into<String>) -> Self {
        Self {
            kafka,
            topic: topic.into(),
        }
    }

    /// Name of the topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Creates the topic (compacted, one partition) unless it exists.
    pub async fn ensure(&self) -> Result<(), StateTopicError> {
        let admin =
            KafkaAdmin::new(&self.kafka, Duration::from_secs(15)).map_err(|source| self.admin(source))?;
        if admin
            .describe_topic(&self.topic)
            .await
            .map_err(|s| self.admin(s))?
            .is_some()
        {
            return Ok(());
        }
        let configs = BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
        match admin.create_topic(&self.topic, 1, None, &configs).await {
            Ok(()) | Err(AdminError::TopicExists(_)) => Ok(()),
            Err(source) => Err(self.admin(source)),
        }
    }

    /// The latest value under `key`, reading the topic up to its end.
    pub async fn read<T: DeserializeOwned + Send + 'static>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StateTopicError> {
        let this = self.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || this.read_blocking(&key))
            .await
            .map_err(|e| StateTopicError::Kafka {
                topic: self.topic.clone(),
                message: e.to_string(),
            })?
    }

    fn read_blocking<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateTopicError> {
        let timeout = Duration::from_secs(15);
        let consumer: BaseConsumer = self
            .kafka
            .consumer_config(4096)
            .set("group.id", "tributary-state-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.max.bytes", "4194304")
            .create()
            .map_err(|e| self.kafka_error(&e))?;
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(|e| self.kafka_error(&e))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| {
                t.partitions()
                    .iter()
                    .map(rdkafka::metadata::MetadataPartition::id)
            })
            .collect();
        let mut ends = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, partition, timeout)
                .map_err(|e| self.kafka_error(&e))?;
            if high > low {
                ends.insert(partition, high);
                assignment
                    .add_partition_offset(&self.topic, partition, Offset::Offset(low))
                    .map_err(|e| self.kafka_error(&e))?;
            }
        }
        if ends.is_empty() {
            return Ok(None);
        }
        consumer.assign(&assignment).map_err(|e| self.kafka_error(&e))?;
        let mut latest: Option<Option<Vec<u8>>> = None;
        let deadline = std::time::Instant::now() + Duration::from_mins(1);
        while !ends.is_empty() {
            if std::time::Instant::now() > deadline {
                return Err(StateTopicError::Kafka {
                    topic: self.topic.clone(),
                    message: "timed out reading to the end of the topic".to_owned(),
                });
            }
            let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let message = message.map_err(|e| self.kafka_error(&e))?;
            if message.key() == Some(key.as_bytes()) {
                latest = Some(message.payload().map(<[u8]>::to_vec));
            }
            if ends
                .get(&message.partition())
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                ends.remove(&message.partition());
            }
        }
        match latest.flatten() {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StateTopicError::Corrupt {
                    topic: self.topic.clone(),
                    key: key.to_owned(),
                    message: e.to_string(),
                }),
        }
    }

    /// Writes `value` under `key` and waits until Kafka has it.
    pub async fn write<T: Serialize>(
        &self,
        producer: &FutureProducer,
        key: &str,
        value: &T,
    ) -> Result<(), StateTopicError> {
        let payload = serde_json::to_vec(value).map_err(|e| StateTopicError::Kafka {
            topic: self.topic.clone(),
            message: e.to_string(),
        })?;
        producer
            .send(
                FutureRecord::to(&self.topic).key(key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| self.kafka_error(&e))?;
        Ok(())
    }

    /// Removes `key` (a tombstone), e.g. when its connector is reset.
    pub async fn clear(&self, producer: &FutureProducer, key: &str) -> Result<(), StateTopicError> {
        producer
            .send(
                FutureRecord::<str, [u8]>::to(&self.topic).key(key),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| self.kafka_error(&e))?;
        Ok(())
    }

    fn admin(&self, source: AdminError) -> StateTopicError {
        StateTopicError::Admin {
            topic: self.topic.clone(),
            source,
        }
    }

    fn kafka_error(&self, error: &rdkafka::error::KafkaError) -> StateTopicError {
        StateTopicError::Kafka {
            topic: self.topic.clone(),
            message: error.to_string(),
        }
    }
}
