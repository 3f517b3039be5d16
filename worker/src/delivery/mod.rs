//! Writing records to Kafka with acknowledgements tracked in order, so a
//! source confirms a position upstream only after Kafka has every record
//! before it.
//!
//! Data model: the source hands the [`Pipeline`] a sequence of entries:
//!
//! ```text
//!   record, record, checkpoint(A), record, checkpoint(B), …
//! ```
//!
//! Records go to librdkafka at once (idempotent producer, `acks=all`); their
//! delivery reports are awaited by one task in the same order. A checkpoint's
//! action (e.g. "confirm LSN A to Postgres") runs only when every record
//! queued before it is acknowledged. If a delivery fails for good, the
//! pipeline stops: no later checkpoint runs, and the error surfaces on the
//! next [`Pipeline::send`] or [`Pipeline::flush`].
//!
//! Memory is bounded twice: librdkafka's queue (`queue.buffering.max.kbytes`,
//! lowered from its 1 GiB default) and the count of entries waiting for their
//! report ([`PipelineSettings::max_in_flight`]).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use tokio::sync::{Mutex, mpsc, oneshot};
use tributary_kafka::KafkaConnection;

pub use self::topics::TopicCreator;

mod topics;

/// One record for Kafka. `value: None` is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutRecord {
    /// Topic.
    pub topic: String,
    /// Key bytes (`None`: null key).
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None`: tombstone).
    pub value: Option<Vec<u8>>,
}

impl OutRecord {
    /// Bytes of key and value, for throughput metrics.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// Why records could not be delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// The producer could not be created from the settings.
    #[error("creating the Kafka producer: {0}")]
    Create(String),
    /// Kafka refused or timed out a record.
    #[error("delivering to topic {topic}: {message}")]
    Failed {
        /// Topic of the record.
        topic: String,
        /// librdkafka's error.
        message: String,
    },
    /// The pipeline stopped after an earlier failure.
    #[error("the delivery pipeline has stopped: {0}")]
    Stopped(String),
}

/// Producer tuning; the defaults keep a worker under ~100 MB.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// librdkafka `queue.buffering.max.kbytes`.
    pub queue_max_kbytes: u32,
    /// librdkafka `linger.ms`.
    pub linger_ms: u32,
    /// librdkafka `compression.type`.
    pub compression: String,
    /// Entries (records and checkpoints) awaiting their report at most.
    pub max_in_flight: usize,
    /// librdkafka `message.timeout.ms`: how long a record may be retried
    /// before the pipeline fails.
    pub message_timeout: Duration,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            queue_max_kbytes: 16 * 1024,
            linger_ms: 5,
            compression: "lz4".to_owned(),
            max_in_flight: 50_000,
            message_timeout: Duration::from_mins(2),
        }
    }
}

/// A producer configured for no loss: idempotent, `acks=all`, bounded queue.
pub fn producer(
    kafka: &KafkaConnection,
    settings: &PipelineSettings,
) -> Result<FutureProducer, DeliveryError> {
    kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set(
            "queue.buffering.max.kbytes",
            settings.queue_max_kbytes.to_string(),
        )
        .set("queue.buffering.max.messages", "100000")
        .set("linger.ms", settings.linger_ms.to_string())
        .set("compression.type", &settings.compression)
        .set(
            "message.timeout.ms",
            settings.message_timeout.as_millis().to_string(),
        )
        .create()
        .map_err(|e| DeliveryError::Create(kafka.redact(&e.to_string())))
}

type Action = Box<dyn FnOnce() + Send>;

enum Entry {
    Delivery { topic: Arc<str>, report: DeliveryFuture },
    Checkpoint(Action),
}

/// Counters of what was sent and acknowledged (shared with the metrics).
#[derive(Clone, Debug, Default)]
pub struct DeliveryCounters {
    /// Records Kafka acknowledged.
    pub records: Counter,
    /// Key + value bytes of the records sent.
    pub bytes: Counter,
}

/// Records to Kafka, checkpoints after their acknowledgements. See the module docs.
#[derive(Clone)]
pub struct Pipeline {
    producer: FutureProducer,
    entries: mpsc::Sender<Entry>,
    failure: Arc<Mutex<Option<DeliveryError>>>,
    counters: DeliveryCounters,
    topics: TopicCreator,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Starts the acknowledgement task on the current runtime.
    pub fn start(
        producer: FutureProducer,
        topics: TopicCreator,
        settings: &PipelineSettings,
        counters: DeliveryCounters,
    ) -> Self {
        let (entries, mut pending) = mpsc::channel::<Entry>(settings.max_in_flight.max(1));
        let failure = Arc::new(Mutex::new(None));
        let task_failure = Arc::clone(&failure);
        let task_counters = counters.clone();
        tokio::spawn(async move {
            while let Some(entry) = pending.recv().await {
                match entry {
                    Entry::Delivery { topic, report } => {
                        let error = match report.await {
                            Ok(Ok(_)) => {
                                task_counters.records.inc();
                                continue;
                            }
                            Ok(Err((error, _))) => error.to_string(),
                            Err(_) => {
                                "the producer was dropped before the record was acknowledged".to_owned()
                            }
                        };
                        tracing::error!(%topic, %error, "delivery failed; no later position will be confirmed");
                        *task_failure.lock().await = Some(DeliveryError::Failed {
                            topic: topic.to_string(),
                            message: error,
                        });
                        // Dropping the receiver makes every later send fail.
                        return;
                    }
                    Entry::Checkpoint(action) => action(),
                }
            }
        });
        Self {
            producer,
            entries,
            failure,
            counters,
            topics,
        }
    }

    /// Sent and acknowledged counters.
    pub fn counters(&self) -> &DeliveryCounters {
        &self.counters
    }

    /// The underlying producer, e.g. for records outside the ordered stream.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Queues a record. Waits while librdkafka's queue or the in-flight
    /// window is full (backpressure), never longer.
    pub async fn send(&self, record: OutRecord) -> Result<(), DeliveryError> {
        self.topics.ensure(&record.topic).await?;
        let topic: Arc<str> = Arc::from(record.topic.as_str());
        self.counters.bytes.inc_by(record.size() as u64);
        let mut future = FutureRecord::to(&record.topic);
        if let Some(key) = &record.key {
            future = future.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            future = future.payload(value.as_slice());
        }
        let report = loop {
            match self.producer.send_result(future) {
                Ok(report) => break report,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    future = returned;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((error, _)) => {
                    return Err(DeliveryError::Failed {
                        topic: record.topic.clone(),
                        message: error.to_string(),
                    });
                }
            }
        };
        self.push(Entry::Delivery { topic, report }).await
    }

    /// Runs `action` once every record sent before it is acknowledged.
    pub async fn checkpoint(&self, action: impl FnOnce() + Send + 'static) -> Result<(), DeliveryError> {
        self.push(Entry::Checkpoint(Box::new(action))).await
    }

    /// Waits until every record sent so far is acknowledged.
    pub async fn flush(&self) -> Result<(), DeliveryError> {
        let (done, acknowledged) = oneshot::channel();
        self.checkpoint(move || {
            let _ = done.send(());
        })
        .await?;
        if acknowledged.await.is_ok() {
            Ok(())
        } else {
            Err(self.stopped().await)
        }
    }

    /// Flushes librdkafka's queue on shutdown (bounded wait).
    pub fn close(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(%error, "records still queued at shutdown");
        }
    }

    async fn push(&self, entry: Entry) -> Result<(), DeliveryError> {
        if self.entries.send(entry).await.is_err() {
            return Err(self.stopped().await);
        }
        Ok(())
    }

    async fn stopped(&self) -> DeliveryError {
        let failure = self.failure.lock().await.clone();
        DeliveryError::Stopped(failure.map_or_else(|| "stopped".to_owned(), |e| e.to_string()))
    }
}
