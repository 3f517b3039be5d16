//! Setting a consumer group's committed offsets, as `kafka-consumer-groups
//! --reset-offsets --execute` does: only while the group has no member (a
//! running member would overwrite the offsets with its own next commit), to
//! the earliest or latest offset of each partition or the first offset at
//! or after a time.
//!
//! The offsets are committed by a client that uses the group id without
//! joining it (`OffsetCommit` outside any generation, which the broker
//! accepts for an empty group), so nothing rebalances.

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::connection::KafkaConnection;

/// Where a reset moves the committed offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTo {
    /// The first retained record of each partition (low watermark).
    Earliest,
    /// The end of each partition (high watermark): skip what is there.
    Latest,
    /// The first record with a timestamp at or after this many milliseconds
    /// since the epoch (the end of the partition when there is none).
    Timestamp(i64),
}

/// Resetting offsets failed or cannot happen yet.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// The group still has members; they must stop first.
    #[error("consumer group {group} still has {members} members; offsets are reset once it is empty")]
    GroupNotEmpty {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },
    /// Talking to Kafka failed.
    #[error("consumer group {group}: {message}")]
    Kafka {
        /// The group.
        group: String,
        /// What failed (librdkafka's message, credentials scrubbed).
        message: String,
    },
}

/// Commits `to` as `group`'s offsets on every partition of `topics` (missing
/// topics are skipped) and returns the partitions reset. Blocking: call it
/// from a blocking thread.
pub fn reset_group_offsets(
    kafka: &KafkaConnection,
    group: &str,
    topics: &[String],
    to: ResetTo,
    timeout: Duration,
) -> Result<usize, ResetError> {
    let error = |e: &rdkafka::error::KafkaError| ResetError::Kafka {
        group: group.to_owned(),
        message: kafka.redact(&e.to_string()),
    };
    let consumer = crate::lag::group_client(kafka, group).map_err(|e| error(&e))?;
    let groups = consumer
        .fetch_group_list(Some(group), timeout)
        .map_err(|e| error(&e))?;
    let members = groups
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .map(|g| g.members().len())
        .sum::<usize>();
    if members > 0 {
        return Err(ResetError::GroupNotEmpty {
            group: group.to_owned(),
            members,
        });
    }
    let partitions =
        crate::lag::partitions_with_watermarks(&consumer, topics, timeout).map_err(|e| error(&e))?;
    if partitions.is_empty() {
        return Ok(0);
    }
    let mut offsets = TopicPartitionList::new();
    match to {
        ResetTo::Earliest | ResetTo::Latest => {
            for (topic, partition, low, high) in &partitions {
                let offset = if to == ResetTo::Earliest { *low } else { *high };
                offsets
                    .add_partition_offset(topic, *partition, Offset::Offset(offset))
                    .map_err(|e| error(&e))?;
            }
        }
        ResetTo::Timestamp(millis) => {
            let mut query = TopicPartitionList::new();
            for (topic, partition, _, _) in &partitions {
                query
                    .add_partition_offset(topic, *partition, Offset::Offset(millis))
                    .map_err(|e| error(&e))?;
            }
            let found = consumer
                .offsets_for_times(query, timeout)
                .map_err(|e| error(&e))?;
            for (topic, partition, _, high) in &partitions {
                // No record at or after the time: the end of the partition.
                let offset = match found.find_partition(topic, *partition).map(|p| p.offset()) {
                    Some(Offset::Offset(offset)) => offset,
                    _ => *high,
                };
                offsets
                    .add_partition_offset(topic, *partition, Offset::Offset(offset))
                    .map_err(|e| error(&e))?;
            }
        }
    }
    consumer
        .commit(&offsets, CommitMode::Sync)
        .map_err(|e| error(&e))?;
    tracing::info!(
        group,
        partitions = partitions.len(),
        ?to,
        "consumer group offsets reset"
    );
    Ok(partitions.len())
}
