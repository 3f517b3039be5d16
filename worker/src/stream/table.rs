//! A table input of a stream-table join, held whole by every worker (Kafka
//! Streams' `GlobalKTable`, not a co-partitioned `KTable`).
//!
//! Data model: the table topic is keyed and compacted; its latest value per
//! key is the current row and a null value (tombstone) deletes the key. The
//! worker keeps `join key → row` in memory, where the join key is the
//! decoded record key (or one field of a JSON key, `c.ROWKEY.id`) in a
//! canonical JSON encoding (object fields sorted), so a stream row's
//! `ON` expression, evaluated and encoded the same way, finds it.
//!
//! Why whole and not co-partitioned: a co-partitioned table requires the
//! stream to be repartitioned onto the table topic's partitions, which only
//! works when the stream side can reproduce the table producer's key bytes
//! and partitioner exactly — unknowable for a topic written by Debezium, a
//! JVM client or librdkafka's default partitioner, and wrong silently when
//! they differ. Read whole, the table needs no repartition of the stream,
//! works with any key encoding, and is unaffected by rebalances. The price
//! is memory (the whole table on every worker), bounded by
//! `spec.inputs[].maxTableBytes`.
//!
//! Restore: the compacted topic is its own changelog. On start the worker
//! reads every partition from the beginning to its end as of then (committed
//! records only) before it processes any stream record, then keeps following
//! the topic between polls of the stream's consumer; a table update applies
//! to the stream records processed after it is read (processing order, not
//! event time, as in Kafka Streams' global tables).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tributary_api::connector::Format;
use tributary_kafka::KafkaConnection;
use tributary_sql::Row as _;

use super::StreamError;
use super::engine::{InputSetup, decode};
use super::kafka::RestoreCallbacks;
use crate::telemetry::StreamCounters;

/// Default of `spec.inputs[].maxTableBytes`.
pub(crate) const DEFAULT_MAX_TABLE_BYTES: u64 = 256 * 1024 * 1024;

/// Accounting overhead per row on top of its key and value bytes (map entry,
/// `Arc`, allocation headers): a row is never counted as free.
const ROW_OVERHEAD: usize = 64;

/// One current row.
#[derive(Debug)]
struct Row {
    value: Arc<Value>,
    /// Bytes counted against the limit.
    bytes: usize,
}

/// A table read whole, kept current.
pub(crate) struct Table {
    topic: String,
    /// `spec.inputs[<i>].maxTableBytes`, for the error when it is exceeded.
    limit_field: String,
    limit: u64,
    input: InputSetup,
    key_path: Vec<String>,
    consumer: BaseConsumer<RestoreCallbacks>,
    rows: HashMap<Vec<u8>, Row>,
    bytes: u64,
    counters: StreamCounters,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("topic", &self.topic)
            .field("rows", &self.rows.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// What [`Table::new`] needs.
pub(crate) struct TableSetup<'a> {
    pub kafka: &'a KafkaConnection,
    pub topic: &'a str,
    pub input: InputSetup,
    /// Path into a JSON key (`c.ROWKEY.id`), empty for the whole key.
    pub key_path: Vec<String>,
    pub limit: u64,
    pub limit_field: String,
    pub client_id: &'a str,
}

impl Table {
    /// A reader assigned every partition of the table topic from its start
    /// (no consumer group: every worker reads all of it).
    pub fn new(setup: TableSetup<'_>, counters: StreamCounters) -> Result<Self, StreamError> {
        let failed = |e: KafkaError| StreamError::Kafka(format!("reading table {}: {e}", setup.topic));
        let consumer: BaseConsumer<RestoreCallbacks> = setup
            .kafka
            // Bounded memory: at most 8 MiB prefetched.
            .consumer_config(8192)
            .set("group.id", format!("{}-table", setup.client_id))
            .set("client.id", format!("{}-table", setup.client_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("fetch.max.bytes", "4194304")
            // Follow updates promptly: they apply to the stream records after them.
            .set("fetch.wait.max.ms", "100")
            .create_with_context(RestoreCallbacks)
            .map_err(|e| StreamError::Kafka(setup.kafka.redact(&e.to_string())))?;
        let metadata = consumer
            .fetch_metadata(Some(setup.topic), Duration::from_secs(30))
            .map_err(failed)?;
        let mut list = TopicPartitionList::new();
        for partition in metadata
            .topics()
            .iter()
            .flat_map(rdkafka::metadata::MetadataTopic::partitions)
        {
            list.add_partition_offset(setup.topic, partition.id(), Offset::Beginning)
                .map_err(failed)?;
        }
        if list.count() == 0 {
            return Err(StreamError::Topic {
                topic: setup.topic.to_owned(),
                message: "the table topic has no partitions".to_owned(),
            });
        }
        consumer.assign(&list).map_err(failed)?;
        Ok(Self {
            topic: setup.topic.to_owned(),
            limit_field: setup.limit_field,
            limit: setup.limit,
            input: setup.input,
            key_path: setup.key_path,
            consumer,
            rows: HashMap::new(),
            bytes: 0,
            counters,
        })
    }

    /// Reads every partition to its end as of now: the table is complete
    /// before the first stream record is joined.
    pub fn bootstrap(&mut self, runtime: &tokio::runtime::Handle) -> Result<(), StreamError> {
        let started = Instant::now();
        let topic = self.topic.clone();
        let failed = |e: KafkaError| StreamError::Kafka(format!("reading table {topic}: {e}"));
        let assignment = self.consumer.assignment().map_err(failed)?;
        let mut open: HashMap<i32, i64> = HashMap::new();
        for element in assignment.elements() {
            let (low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, element.partition(), Duration::from_secs(30))
                .map_err(failed)?;
            if high > low {
                open.insert(element.partition(), high);
            }
        }
        let mut records = 0u64;
        let deadline = started + Duration::from_mins(10);
        while !open.is_empty() {
            if Instant::now() > deadline {
                return Err(StreamError::Kafka(format!(
                    "reading table {}: not at its end after 600 s ({} partitions left)",
                    self.topic,
                    open.len()
                )));
            }
            match self.consumer.poll(Duration::from_millis(500)) {
                Some(Ok(message)) => {
                    records += 1;
                    let (partition, offset) = (message.partition(), message.offset());
                    let (key, value) = (
                        message.key().map(<[u8]>::to_vec),
                        message.payload().map(<[u8]>::to_vec),
                    );
                    drop(message);
                    self.apply(runtime, key.as_deref(), value.as_deref())?;
                    // read_committed stops short of an open transaction and
                    // never shows commit markers: EOF also ends a partition.
                    if open.get(&partition).is_some_and(|high| offset + 1 >= *high) {
                        open.remove(&partition);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    open.remove(&partition);
                }
                Some(Err(error)) => return Err(failed(error)),
                None => {}
            }
        }
        tracing::info!(
            topic = %self.topic,
            records,
            rows = self.rows.len(),
            bytes = self.bytes,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "table loaded"
        );
        Ok(())
    }

    /// Applies the updates read since the last call (at most `max`, without waiting).
    pub fn follow(&mut self, runtime: &tokio::runtime::Handle, max: usize) -> Result<usize, StreamError> {
        let mut applied = 0;
        while applied < max {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(message)) => {
                    let (key, value) = (
                        message.key().map(<[u8]>::to_vec),
                        message.payload().map(<[u8]>::to_vec),
                    );
                    drop(message);
                    self.apply(runtime, key.as_deref(), value.as_deref())?;
                    applied += 1;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    return Err(StreamError::Kafka(format!(
                        "reading table {}: {error}",
                        self.topic
                    )));
                }
                None => break,
            }
        }
        Ok(applied)
    }

    /// The current row for a stream row's join key (`None`: no such key, or NULL).
    pub fn lookup(&self, key: &Value) -> Option<Arc<Value>> {
        if key.is_null() {
            return None;
        }
        self.rows.get(&canonical(key)).map(|row| Arc::clone(&row.value))
    }

    /// An upsert or (null value) a delete.
    fn apply(
        &mut self,
        runtime: &tokio::runtime::Handle,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(), StreamError> {
        self.counters.table_updates.inc();
        let Some(key_bytes) = key else {
            // A table row without a key can never be looked up.
            self.counters.bad_records.inc();
            return Ok(());
        };
        let decoded_key = match decode(runtime, &self.input.key, self.input.key_format, Some(key_bytes)) {
            Ok(key) => key.unwrap_or(Value::Null),
            // Keys are often plain text: take them as a string (as stream keys are).
            Err(_) => Value::String(String::from_utf8_lossy(key_bytes).into_owned()),
        };
        let join_key = self
            .key_path
            .iter()
            .try_fold(&decoded_key, |v, step| v.get(step))
            .filter(|v| !v.is_null());
        let Some(join_key) = join_key else {
            self.counters.bad_records.inc();
            tracing::debug!(topic = %self.topic, "table record without the join key field skipped");
            return Ok(());
        };
        let join_key = canonical(join_key);
        let row = match value {
            None => None,
            // JSON rows keep only the fields the query reads of the table.
            Some(bytes) if self.input.value_format == Format::Json => match self.input.fields.parse(bytes) {
                Ok(row) => Some(row.to_value()),
                Err(e) => {
                    self.counters.bad_records.inc();
                    tracing::debug!(topic = %self.topic, error = %e, "table record skipped");
                    return Ok(());
                }
            },
            Some(bytes) => match decode(runtime, &self.input.value, self.input.value_format, Some(bytes)) {
                Ok(row) => row,
                Err(why) => {
                    self.counters.bad_records.inc();
                    tracing::debug!(topic = %self.topic, error = why, "table record skipped");
                    return Ok(());
                }
            },
        };
        if let Some(old) = self.rows.remove(&join_key) {
            self.bytes -= old.bytes as u64;
        }
        if let Some(row) = row {
            let bytes = join_key.len() + value.map_or(0, <[u8]>::len) + ROW_OVERHEAD;
            self.bytes += bytes as u64;
            if self.bytes > self.limit {
                return Err(StreamError::State(format!(
                    "{}: table {} needs more than {} bytes in memory ({} rows); raise the limit or join a smaller table",
                    self.limit_field,
                    self.topic,
                    self.limit,
                    self.rows.len() + 1
                )));
            }
            self.rows.insert(
                join_key,
                Row {
                    value: Arc::new(row),
                    bytes,
                },
            );
        }
        Ok(())
    }
}

/// A join key as bytes: JSON with object fields sorted, so `{"b":1,"a":2}`
/// and `{"a":2,"b":1}` are one key.
pub(crate) fn canonical(value: &Value) -> Vec<u8> {
    if matches!(value, Value::Object(_) | Value::Array(_)) {
        let mut sorted = value.clone();
        sorted.sort_all_objects();
        serde_json::to_vec(&sorted).unwrap_or_default()
    } else {
        serde_json::to_vec(value).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_keys_ignore_field_order() {
        assert_eq!(
            canonical(&json!({"b": 1, "a": [{"y": 2, "x": 1}]})),
            canonical(&json!({"a": [{"x": 1, "y": 2}], "b": 1}))
        );
        assert_eq!(canonical(&json!("c1")), b"\"c1\"");
        assert_ne!(canonical(&json!(5)), canonical(&json!("5")));
    }
}
