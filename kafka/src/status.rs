//! Worker status as it travels through Kafka, and the operator's view of it.
//!
//! Workers write a [`WorkerStatus`] document to the compacted
//! `tributary-status` topic, keyed `<namespace>/<name>` of their Connector or
//! Stream (`<name>` standalone), every few seconds and when they stop. The
//! latest record under a key is the truth, as in Kafka Connect's
//! `connect-status` topic.
//!
//! The operator follows the topic with a [`StatusTail`]: one background
//! consumer per Kafka cluster that keeps the latest document per key in
//! memory (bounded by the number of workloads), so reconciles read status
//! without any network access to worker pods.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::connection::KafkaConnection;

/// Default name of the status topic.
pub const DEFAULT_STATUS_TOPIC: &str = "tributary-status";

/// What a worker reports about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// `Starting`, `Snapshotting`, `Streaming`, `Paused`, `Retrying`,
    /// `Completed`, `Stopped` or `Failed`.
    pub state: String,
    /// The worker instance (pod name or host) that wrote this.
    pub worker: String,
    /// Records acknowledged by Kafka (sources) or by the target (sinks) since
    /// the worker started.
    pub records: u64,
    /// Key + value bytes sent since the worker started.
    pub bytes: u64,
    /// WAL bytes the slot retains (CDC sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    /// Milliseconds between the last commit seen and now (CDC sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_millis: Option<u64>,
    /// The last error, for a failed worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When this was written (RFC 3339).
    pub updated_at: String,
}

/// Following the status topic failed to start.
#[derive(Debug, thiserror::Error)]
#[error("following status topic {topic}: {message}")]
pub struct StatusTailError {
    /// The topic.
    pub topic: String,
    /// librdkafka's message.
    pub message: String,
}

/// The latest [`WorkerStatus`] per key of one status topic, kept current by
/// a background thread until the tail is dropped.
#[derive(Debug)]
pub struct StatusTail {
    latest: Arc<Mutex<HashMap<String, WorkerStatus>>>,
    stop: Arc<AtomicBool>,
}

/// How often the background consumer looks for new partitions of the topic
/// (e.g. it did not exist when the tail started).
const REASSIGN_INTERVAL: Duration = Duration::from_secs(10);

impl StatusTail {
    /// Starts following `topic` on `kafka` from its beginning.
    pub fn start(kafka: &KafkaConnection, topic: &str) -> Result<Self, StatusTailError> {
        let error = |e: &rdkafka::error::KafkaError| StatusTailError {
            topic: topic.to_owned(),
            message: kafka.redact(&e.to_string()),
        };
        // The group id is never joined or committed to: partitions are
        // assigned directly.
        let consumer: BaseConsumer = kafka
            .consumer_config(2048)
            .set("group.id", "tributary-operator-status")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(|e| error(&e))?;
        let latest = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_latest, thread_stop, topic) = (Arc::clone(&latest), Arc::clone(&stop), topic.to_owned());
        std::thread::Builder::new()
            .name("status-tail".to_owned())
            .spawn(move || follow(&consumer, &topic, &thread_latest, &thread_stop))
            .map_err(|e| StatusTailError {
                topic: String::new(),
                message: e.to_string(),
            })?;
        Ok(Self { latest, stop })
    }

    /// The latest status under `key`, if any was seen.
    pub fn get(&self, key: &str) -> Option<WorkerStatus> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }
}

impl Drop for StatusTail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn follow(
    consumer: &BaseConsumer,
    topic: &str,
    latest: &Mutex<HashMap<String, WorkerStatus>>,
    stop: &AtomicBool,
) {
    let mut assigned = 0usize;
    let mut checked: Option<std::time::Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if checked.is_none_or(|at| at.elapsed() >= REASSIGN_INTERVAL) {
            checked = Some(std::time::Instant::now());
            if let Some(count) = assign_new_partitions(consumer, topic, assigned) {
                assigned = count;
            }
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let Ok(message) = message else {
            continue; // librdkafka retries by itself; errors here are transient
        };
        let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        let mut map = latest.lock().unwrap_or_else(PoisonError::into_inner);
        match message.payload().map(serde_json::from_slice::<WorkerStatus>) {
            Some(Ok(status)) => {
                map.insert(key.to_owned(), status);
            }
            None => {
                map.remove(key); // tombstone: the workload was removed
            }
            Some(Err(error)) => {
                tracing::debug!(key, %error, "unreadable worker status skipped");
            }
        }
    }
}

/// Assigns every partition of `topic` from the beginning when there are more
/// than `assigned`; returns the new count.
fn assign_new_partitions(consumer: &BaseConsumer, topic: &str, assigned: usize) -> Option<usize> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| {
            t.partitions()
                .iter()
                .map(rdkafka::metadata::MetadataPartition::id)
        })
        .collect();
    if partitions.len() <= assigned {
        return None;
    }
    let mut list = TopicPartitionList::new();
    for partition in &partitions {
        list.add_partition_offset(topic, *partition, Offset::Beginning)
            .ok()?;
    }
    consumer.assign(&list).ok()?;
    Some(partitions.len())
}
