//! The connector's Kafka consumer: one consumer group per Connector, offsets
//! committed by the runtime only (never automatically), librdkafka's
//! buffers lowered, and rebalances reported to the runtime.
//!
//! Partitions are assigned with the `cooperative-sticky` strategy: a
//! rebalance revokes and assigns only the partitions that change owner
//! (incrementally), so a worker joining or leaving does not stop the others'
//! writes. Every member of a group must use it; workers of an earlier
//! version (eager `range,roundrobin`) cannot share a group with these, so a
//! rolling upgrade joins once the old pods are gone.
//!
//! On a revoke (inside librdkafka's rebalance callback, before the
//! partitions move) the offsets already acknowledged by the target are
//! committed synchronously, so the next owner starts right after them; the
//! runtime then drops what it buffered for those partitions and ignores the
//! outcome of writes still in flight for them (their records are read again
//! by the next owner: duplicates, never loss).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tributary_api::sink::StartFrom;
use tributary_kafka::KafkaConnection;

/// A change of the partitions this worker owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// These partitions were taken away.
    Revoked(Vec<(String, i32)>),
    /// These partitions were given.
    Assigned(Vec<(String, i32)>),
}

/// Offsets acknowledged by the target (the next offset to read), per partition.
pub type Acked = Arc<Mutex<HashMap<(String, i32), i64>>>;

/// Rebalance callbacks: commit on revoke, report both ways.
#[derive(Debug, Default)]
pub struct GroupContext {
    /// Events for the runtime, drained after each poll.
    pub events: Mutex<Vec<RebalanceEvent>>,
    /// Acknowledged offsets, committed on revoke.
    pub acked: Acked,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let partitions = partitions(list);
        let mut commit = TopicPartitionList::new();
        if let Ok(mut acked) = self.acked.lock() {
            for tp in &partitions {
                if let Some(offset) = acked.remove(tp) {
                    let _ = commit.add_partition_offset(&tp.0, tp.1, Offset::Offset(offset));
                }
            }
        }
        if commit.count() > 0 {
            if let Err(error) = consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(%error, "committing on revoke failed; the next owner repeats some records");
            } else {
                tracing::info!(
                    partitions = commit.count(),
                    "committed acknowledged offsets of revoked partitions"
                );
            }
        }
        tracing::info!(revoked = ?partitions, "partitions revoked");
        if let Ok(mut events) = self.events.lock() {
            events.push(RebalanceEvent::Revoked(partitions));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = partitions(list);
            tracing::info!(assigned = ?partitions, "partitions assigned");
            if let Ok(mut events) = self.events.lock() {
                events.push(RebalanceEvent::Assigned(partitions));
            }
        }
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// librdkafka consumer settings of a sink.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Consumer group.
    pub group_id: String,
    /// `auto.offset.reset`.
    pub start_from: StartFrom,
    /// `client.id`.
    pub client_id: String,
    /// `queued.max.messages.kbytes`: prefetched records held by librdkafka.
    pub queue_max_kbytes: u32,
    /// `fetch.max.bytes`: one fetch answer.
    pub fetch_max_bytes: u32,
    /// `session.timeout.ms`: how soon a dead worker's partitions move.
    pub session_timeout_ms: u32,
}

impl ConsumerSettings {
    /// The defaults: about 8 MiB prefetched at most (librdkafka's default is
    /// 64 MiB, plus 50 MiB fetches), and a 10 s session like Kafka Connect's
    /// workers, so partitions of a killed worker move within seconds.
    pub fn new(group_id: String, start_from: StartFrom, client_id: String) -> Self {
        Self {
            group_id,
            start_from,
            client_id,
            queue_max_kbytes: 8 * 1024,
            fetch_max_bytes: 8 * 1024 * 1024,
            session_timeout_ms: 10_000,
        }
    }
}

/// Creates the consumer (not yet subscribed).
pub fn create(
    kafka: &KafkaConnection,
    settings: &ConsumerSettings,
    context: GroupContext,
) -> Result<StreamConsumer<GroupContext>, String> {
    kafka
        .consumer_config(settings.queue_max_kbytes)
        .set("group.id", &settings.group_id)
        .set("client.id", &settings.client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match settings.start_from {
                StartFrom::Earliest => "earliest",
                StartFrom::Latest => "latest",
            },
        )
        .set("enable.partition.eof", "false")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("queued.min.messages", "10000")
        .set("fetch.max.bytes", settings.fetch_max_bytes.to_string())
        .set("max.partition.fetch.bytes", "1048576")
        .set(
            "receive.message.max.bytes",
            (settings.fetch_max_bytes + 1024 * 1024).to_string(),
        )
        .set("session.timeout.ms", settings.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout_ms / 3).to_string(),
        )
        .create_with_context(context)
        .map_err(|e| kafka.redact(&e.to_string()))
}
