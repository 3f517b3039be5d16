//! The stream's Kafka clients: one consumer in the stream's group (input
//! and repartition topics, `read_committed`, offsets committed by the
//! engine only) and one producer (idempotent, `acks=all`; transactional
//! under exactly-once), plus a throwaway reader restoring state from the
//! changelog.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tributary_kafka::KafkaConnection;

use super::StreamError;
use super::engine::Engine;

/// Outcome of deliveries, written by librdkafka's delivery callback.
#[derive(Debug, Default)]
pub(crate) struct DeliveryState {
    /// Records acknowledged (the worker's `records_acknowledged` counter,
    /// which outlives a run: a paused and resumed stream keeps counting).
    pub acked: Counter,
    /// Records that failed for good.
    pub failed: AtomicU64,
    /// The first failure's message.
    pub first_error: Mutex<Option<String>>,
}

/// Producer callbacks: count acknowledgements and failures.
#[derive(Debug, Default)]
pub(crate) struct ProducerCallbacks {
    pub state: Arc<DeliveryState>,
}

impl ClientContext for ProducerCallbacks {}

impl ProducerContext for ProducerCallbacks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        match result {
            Ok(_) => {
                self.state.acked.inc();
            }
            Err((error, message)) => {
                self.state.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.state.first_error.lock()
                    && first.is_none()
                {
                    *first = Some(format!("topic {}: {error}", message.topic()));
                }
            }
        }
    }
}

/// The stream's producer.
pub(crate) type Producer = ThreadedProducer<ProducerCallbacks>;

/// Creates the producer; `transactional_id` makes it transactional.
pub(crate) fn producer(
    kafka: &KafkaConnection,
    client_id: &str,
    transactional_id: Option<&str>,
    acked: Counter,
) -> Result<(Producer, Arc<DeliveryState>), StreamError> {
    let state = Arc::new(DeliveryState {
        acked,
        ..DeliveryState::default()
    });
    let mut config = kafka.client_config();
    config
        .set("client.id", client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        // The Java client's partitioner: a repartitioned key lands where a
        // Kafka Streams application would put it too.
        .set("partitioner", "murmur2_random")
        // Bounded memory: at most 32 MiB waiting in the producer.
        .set("queue.buffering.max.kbytes", "32768")
        .set("queue.buffering.max.messages", "200000");
    if let Some(id) = transactional_id {
        config
            .set("transactional.id", id)
            .set("transaction.timeout.ms", "10000");
    }
    let producer = config
        .create_with_context(ProducerCallbacks {
            state: Arc::clone(&state),
        })
        .map_err(|e| StreamError::Kafka(kafka.redact(&e.to_string())))?;
    Ok((producer, state))
}

/// Hands one record to the producer, waiting while its queue is full.
pub(crate) fn send(
    producer: &Producer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    timestamp: i64,
) -> Result<(), StreamError> {
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).timestamp(timestamp);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(value) = value {
        record = record.payload(value);
    }
    // The clock is read only once the queue is full (not once per record).
    let mut full_since = None;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                if full_since.get_or_insert_with(Instant::now).elapsed() < Duration::from_mins(2) =>
            {
                record = returned;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((error, _)) => return Err(StreamError::Kafka(format!("producing to {topic}: {error}"))),
        }
    }
}

/// Consumer callbacks: on revoke the engine commits what it processed and
/// drops the state of the partitions leaving; on assign it restores the
/// state of the partitions arriving from the changelog.
pub(crate) struct GroupCallbacks {
    pub engine: Arc<Mutex<Engine>>,
    /// An error inside a callback (they cannot return one), fatal for the run.
    fatal: Mutex<Option<StreamError>>,
    /// Whether `fatal` holds an error: the engine loop checks this flag
    /// after every poll instead of taking the lock.
    failed: AtomicBool,
}

impl std::fmt::Debug for GroupCallbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCallbacks").finish_non_exhaustive()
    }
}

impl GroupCallbacks {
    pub fn new(engine: Arc<Mutex<Engine>>) -> Self {
        Self {
            engine,
            fatal: Mutex::new(None),
            failed: AtomicBool::new(false),
        }
    }

    fn fail(&self, error: StreamError) {
        tracing::error!(%error, "rebalance handling failed");
        if let Ok(mut fatal) = self.fatal.lock()
            && fatal.is_none()
        {
            *fatal = Some(error);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// The error a callback failed with, if one did (taken once).
    pub fn take_failure(&self) -> Option<StreamError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        match self.fatal.lock() {
            Ok(mut fatal) => fatal.take(),
            Err(_) => Some(StreamError::State(
                "the rebalance error lock is poisoned".to_owned(),
            )),
        }
    }
}

impl ClientContext for GroupCallbacks {}

impl ConsumerContext for GroupCallbacks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = partitions(list);
            tracing::info!(revoked = ?partitions, "partitions revoked");
            let Ok(mut engine) = self.engine.lock() else {
                return;
            };
            match engine.commit(consumer) {
                Ok(()) => engine.revoke(&partitions),
                Err(error) => self.fail(error),
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = partitions(list);
            tracing::info!(assigned = ?partitions, "partitions assigned");
            let Ok(mut engine) = self.engine.lock() else {
                return;
            };
            if let Err(error) = engine.assign(&partitions) {
                self.fail(error);
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

/// The group consumer (subscribed by the caller).
pub(crate) fn consumer(
    kafka: &KafkaConnection,
    group_id: &str,
    client_id: &str,
    callbacks: GroupCallbacks,
) -> Result<BaseConsumer<GroupCallbacks>, StreamError> {
    // At most 16 MiB prefetched.
    kafka
        .consumer_config(16 * 1024)
        .set("group.id", group_id)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "8388608")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "3000")
        .create_with_context(callbacks)
        .map_err(|e| StreamError::Kafka(kafka.redact(&e.to_string())))
}

/// The callbacks of readers that read partitions to their end (changelog
/// restore, tables): the end of a partition is how they know they are done,
/// not an error worth logging.
pub(crate) struct RestoreCallbacks;

impl ClientContext for RestoreCallbacks {
    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition comes as a partition event or, from the
        // fetcher, as a global error with the same code.
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::error!(%error, reason, "changelog reader");
        }
    }
}

impl ConsumerContext for RestoreCallbacks {}

/// Reads one changelog partition from its start to its end (committed
/// records only), calling `apply` with each key and value.
pub(crate) fn read_partition(
    kafka: &KafkaConnection,
    topic: &str,
    partition: i32,
    mut apply: impl FnMut(&[u8], Option<&[u8]>),
) -> Result<u64, StreamError> {
    let failed = |e: KafkaError| StreamError::Kafka(format!("restoring from {topic}[{partition}]: {e}"));
    let consumer: BaseConsumer<RestoreCallbacks> = kafka
        .client_config()
        .set("group.id", "tributary-restore")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create_with_context(RestoreCallbacks)
        .map_err(|e| StreamError::Kafka(kafka.redact(&e.to_string())))?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(30))
        .map_err(failed)?;
    if high <= low {
        return Ok(0);
    }
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(failed)?;
    consumer.assign(&list).map_err(failed)?;
    let mut records = 0;
    let deadline = Instant::now() + Duration::from_mins(5);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                records += 1;
                if let Some(key) = message.key() {
                    apply(key, message.payload());
                }
                // read_committed stops short of an open transaction; the
                // end of the partition below is the last stable offset.
                if message.offset() + 1 >= high {
                    return Ok(records);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(records),
            Some(Err(error)) => return Err(failed(error)),
            None => {}
        }
    }
    Err(StreamError::Kafka(format!(
        "restoring from {topic}[{partition}]: not at its end after 300 s"
    )))
}
