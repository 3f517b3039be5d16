//! Consumer-group lag, read the way `kafka-consumer-groups --describe` does:
//! the group's committed offsets (`OffsetFetch`) against each partition's high
//! watermark. Nothing joins the group, so measuring never triggers a
//! rebalance of the workers.
//!
//! The lag in time is the age of the oldest record not yet committed: for
//! each lagging partition (at most [`MAX_AGED_PARTITIONS`], the most lagging
//! first) the record at the committed offset is fetched and its timestamp
//! compared with now.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::connection::KafkaConnection;

/// Partitions whose oldest uncommitted record is fetched to age the lag.
pub const MAX_AGED_PARTITIONS: usize = 16;

/// The lag of one consumer group over some topics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupLag {
    /// Records not yet committed, summed over partitions. A partition without
    /// a committed offset counts from its low watermark (everything retained).
    pub records: i64,
    /// Sum of the committed offsets (or low watermarks): grows by the records
    /// the group consumed, so two readings give its throughput.
    pub committed: i64,
    /// Age in seconds of the oldest uncommitted record; `None` without lag.
    pub seconds: Option<i64>,
    /// Partitions measured.
    pub partitions: usize,
}

/// Measuring lag failed.
#[derive(Debug, thiserror::Error)]
#[error("consumer group {group}: {message}")]
pub struct LagError {
    /// The group.
    pub group: String,
    /// What failed (librdkafka's message, credentials scrubbed).
    pub message: String,
}

/// Measures `group`'s lag over `topics` (missing topics count as empty).
/// Blocking: call it from a blocking thread.
pub fn group_lag(
    kafka: &KafkaConnection,
    group: &str,
    topics: &[String],
    timeout: Duration,
) -> Result<GroupLag, LagError> {
    let error = |e: &rdkafka::error::KafkaError| LagError {
        group: group.to_owned(),
        message: kafka.redact(&e.to_string()),
    };
    let consumer = group_client(kafka, group).map_err(|e| error(&e))?;
    let watermarks = partitions_with_watermarks(&consumer, topics, timeout).map_err(|e| error(&e))?;
    let mut partitions = TopicPartitionList::new();
    for (topic, partition, _, _) in &watermarks {
        partitions.add_partition(topic, *partition);
    }
    if watermarks.is_empty() {
        return Ok(GroupLag::default());
    }
    let committed = consumer
        .committed_offsets(partitions, timeout)
        .map_err(|e| error(&e))?;
    let mut lag = GroupLag {
        partitions: watermarks.len(),
        ..GroupLag::default()
    };
    let mut lagging = Vec::new();
    for (topic, partition, low, high) in watermarks {
        let position = match committed.find_partition(&topic, partition).map(|p| p.offset()) {
            Some(Offset::Offset(offset)) => offset.clamp(low, high),
            _ => low,
        };
        lag.records += high - position;
        lag.committed += position;
        if high > position {
            lagging.push((high - position, topic, partition, position));
        }
    }
    lagging.sort_by_key(|l| std::cmp::Reverse(l.0));
    lagging.truncate(MAX_AGED_PARTITIONS);
    lag.seconds = oldest_age_seconds(kafka, &lagging, timeout);
    Ok(lag)
}

/// A client using `group`'s id that never joins it (no subscription) and
/// never commits on its own: for reading and setting the group's offsets
/// without a rebalance.
pub(crate) fn group_client(
    kafka: &KafkaConnection,
    group: &str,
) -> Result<BaseConsumer, rdkafka::error::KafkaError> {
    kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
}

/// `(topic, partition, low, high)` of every partition of `topics`; missing
/// topics have none.
pub(crate) fn partitions_with_watermarks(
    consumer: &BaseConsumer,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<(String, i32, i64, i64)>, rdkafka::error::KafkaError> {
    let mut watermarks = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for found in metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
        {
            for partition in found.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
                watermarks.push((topic.clone(), partition.id(), low, high));
            }
        }
    }
    Ok(watermarks)
}

/// Age of the oldest record among `(lag, topic, partition, offset)`.
fn oldest_age_seconds(
    kafka: &KafkaConnection,
    lagging: &[(i64, String, i32, i64)],
    timeout: Duration,
) -> Option<i64> {
    if lagging.is_empty() {
        return None;
    }
    // A separate client without a group: assign() + poll never touches the
    // workers' group.
    let reader: BaseConsumer = kafka
        .client_config()
        .set("group.id", "tributary-lag-probe")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "1048576")
        .set("max.partition.fetch.bytes", "65536")
        .create()
        .ok()?;
    let mut assignment = TopicPartitionList::new();
    for (_, topic, partition, offset) in lagging {
        assignment
            .add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .ok()?;
    }
    reader.assign(&assignment).ok()?;
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    let mut oldest: Option<i64> = None;
    let mut pending: Vec<(String, i32)> = lagging.iter().map(|(_, t, p, _)| (t.clone(), *p)).collect();
    let deadline = std::time::Instant::now() + timeout;
    while !pending.is_empty() && std::time::Instant::now() < deadline {
        let Some(Ok(message)) = reader.poll(Duration::from_millis(200)) else {
            continue;
        };
        let key = (message.topic().to_owned(), message.partition());
        if let Some(index) = pending.iter().position(|p| *p == key) {
            pending.swap_remove(index);
            if let Some(ts) = message.timestamp().to_millis() {
                oldest = Some(oldest.map_or(ts, |o| o.min(ts)));
            }
        }
    }
    oldest.map(|ts| ((now_ms - ts) / 1000).max(0))
}
