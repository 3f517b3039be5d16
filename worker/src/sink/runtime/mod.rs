//! The sink runtime: Kafka → decode → batches → writer, committing offsets
//! only after the target acknowledged every earlier record of a partition.
//!
//! ```text
//!  consumer (group) ──recv──► Buffers (per partition, bounded in bytes)
//!     ▲  pause/resume             │ take(): count, bytes, linger;
//!     │  (backpressure)           │ a partition in ≤ 1 write at a time
//!     │                           ▼
//!     │                 write task (≤ maxInFlight, one writer each):
//!     │                   decode (format) → transforms → writer.write (retries: backoff
//!     │                   + jitter, Retry-After) → bad records to the
//!     │                   dead-letter topic (tolerance All) or stop (None)
//!     │                           │ BatchDone
//!     └──── commit (next offsets of the batch's partitions, still ours) ◄┘
//! ```
//!
//! Memory: librdkafka prefetches at most ~8 MiB plus one fetch answer of
//! up to 8 MiB ([`consumer::ConsumerSettings`]); the buffers hold at most
//! `batch.maxBytes × (maxInFlight + 1)` before every partition is paused
//! (resumed below half); each write holds one batch three times at most
//! (raw bytes, decoded records, the request or COPY body). So the bound is
//! about `16 MiB + maxBytes × (maxInFlight + 1) + 4 × maxBytes × maxInFlight`
//! above the process's own size, whatever the target's state
//! (`sink_opensearch.rs` asserts it with OpenSearch down for a minute).
//!
//! Delivery is at-least-once: after a crash or a rebalance, records after
//! the last commit are written again (idempotent by document id or key).
//! The group rebalances cooperatively (`cooperative-sticky`): a worker
//! joining or leaving moves only the partitions that change owner, and the
//! others keep being written meanwhile. Each revoke bumps a generation and
//! notes it for the revoked partitions: a write started before its
//! partitions were revoked is not committed, and its retries give up (the
//! next owner reads those records again).

pub mod buffer;
pub mod consumer;
pub mod dead_letter;
pub mod retry;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pg_walstream::CancellationToken;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::task::JoinSet;
use tributary_api::connector::{ErrorTolerance, FormatSpec};
use tributary_kafka::KafkaConnection;
use tributary_registry::RegistryClient;

use self::buffer::{Buffers, Limits, Partition, RawRecord};
use self::consumer::{ConsumerSettings, GroupContext, RebalanceEvent};
use self::dead_letter::{DeadLetterTopic, Failure, Stage};
use self::retry::Backoff;
use crate::config::SinkConfig;
use crate::delivery::DeliveryError;
use crate::format::decode::{DecodeError, Deserializers};
use crate::record::{Header, Record};
use crate::sink::{ConnectSchemas, SinkError, Writer};
use crate::telemetry::Telemetry;

/// Why the sink stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkRunError {
    /// The consumer could not be created or subscribed.
    #[error("Kafka consumer: {0}")]
    Consumer(String),
    /// The target refused for good (credentials, configuration).
    #[error("{0}")]
    Target(String),
    /// A bad record with `spec.errors.tolerance: None`.
    #[error(
        "bad record at {topic}/{partition}@{offset} ({stage}, {class}): {message}; spec.errors.tolerance is None, so the connector stops (offsets are committed up to this record)"
    )]
    BadRecord {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// Stage.
        stage: &'static str,
        /// Error class.
        class: String,
        /// Message.
        message: String,
    },
    /// Retries of one write exceeded `spec.errors.retry.timeoutSeconds`.
    #[error("giving up after {attempts} retries (spec.errors.retry.timeoutSeconds): {message}")]
    RetriesExhausted {
        /// Retries made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// The dead-letter topic could not be written.
    #[error("dead-letter topic: {0}")]
    DeadLetter(#[from] DeliveryError),
}

/// Everything a sink runs with.
#[derive(Debug, Clone)]
pub struct SinkRun {
    /// The connector's id (`<namespace>/<name>`).
    pub id: String,
    /// The validated sink.
    pub config: SinkConfig,
    /// Key and value formats.
    pub formats: FormatSpec,
    /// Kafka.
    pub kafka: KafkaConnection,
    /// The registry (Avro).
    pub registry: Option<RegistryClient>,
    /// Where bad records go (tolerance All), if anywhere.
    pub dead_letter: Option<DeadLetterTopic>,
    /// Metrics and health.
    pub telemetry: Arc<Telemetry>,
    /// `client.id` of the consumer (the worker instance).
    pub client_id: String,
}

/// What a write task shares with the loop.
#[derive(Debug)]
struct Shared {
    run: SinkRun,
    deserializers: Deserializers,
    component: &'static str,
    /// Bumped on every revoke.
    epoch: AtomicU64,
    /// The generation at which each partition was last revoked.
    revoked: Mutex<HashMap<Partition, u64>>,
}

impl Shared {
    /// True when none of `partitions` was revoked since generation `epoch`
    /// (when a write on them started).
    fn still_owned(&self, partitions: &[Partition], epoch: u64) -> bool {
        let revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        partitions
            .iter()
            .all(|tp| revoked.get(tp).is_none_or(|at| *at <= epoch))
    }
}

/// A finished write task.
struct BatchDone {
    writer: Writer,
    epoch: u64,
    partitions: Vec<Partition>,
    /// Next offsets to commit.
    commits: Vec<(Partition, i64)>,
    records: u64,
    bytes: u64,
    result: Result<(), SinkRunError>,
}

/// Runs the sink until `shutdown` or a fatal error.
pub async fn run(run: SinkRun, shutdown: CancellationToken) -> Result<(), SinkRunError> {
    let config = &run.config;
    let batch = &config.spec.batch;
    let limits = Limits {
        max_records: batch.max_records as usize,
        max_bytes: batch.max_bytes as usize,
        linger: Duration::from_millis(u64::from(batch.linger_ms)),
    };
    let buffer_cap = limits.max_bytes * (batch.max_in_flight as usize + 1);
    let (mut pool, consumer, shared) = start(&run).await?;
    let acked = Arc::clone(&consumer.context().acked);
    run.telemetry.set_state("Running");

    let mut state = Loop {
        consumer: &consumer,
        acked: &acked,
        buffers: Buffers::default(),
        assigned: HashSet::new(),
        paused: false,
        telemetry: &run.telemetry,
    };
    let mut in_flight: JoinSet<BatchDone> = JoinSet::new();
    let mut failure: Option<SinkRunError> = None;
    while failure.is_none() && !shutdown.is_cancelled() {
        let linger = state.buffers.deadline(&limits).filter(|_| !pool.is_empty());
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = in_flight.join_next() => {
                match done {
                    Ok(done) => failure = state.finish(done, &shared, &mut pool),
                    Err(error) => failure = Some(SinkRunError::Target(format!("write task failed: {error}"))),
                }
            }
            message = consumer.recv() => {
                state.apply_rebalances(&shared);
                match message {
                    Ok(message) => {
                        let raw = raw_record(&message);
                        if state.assigned.contains(&raw.tp()) {
                            state.buffers.push(raw, Instant::now());
                        }
                    }
                    Err(error) => {
                        run.telemetry.errors.inc();
                        tracing::warn!(%error, "Kafka consumer error (librdkafka retries)");
                    }
                }
            }
            () = sleep_until(linger) => {}
        }
        state.apply_rebalances(&shared);
        while failure.is_none() && !pool.is_empty() {
            let Some(records) = state.buffers.take(&limits, Instant::now(), false) else {
                break;
            };
            let Some(writer) = pool.pop() else { break };
            let epoch = shared.epoch.load(Ordering::SeqCst);
            in_flight.spawn(write_batch(
                Arc::clone(&shared),
                writer,
                records,
                epoch,
                shutdown.clone(),
            ));
        }
        state.backpressure(buffer_cap);
    }
    // Stop taking records; let the writes in flight end (retries give up on
    // shutdown) and commit what they acknowledged.
    while let Some(done) = in_flight.join_next().await {
        if let Ok(done) = done
            && let Some(error) = state.finish(done, &shared, &mut pool)
            && failure.is_none()
        {
            failure = Some(error);
        }
    }
    state.commit_all_sync();
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The writers (one per write in flight), the subscribed consumer, and
/// what write tasks share.
async fn start(
    run: &SinkRun,
) -> Result<(Vec<Writer>, StreamConsumer<GroupContext>, Arc<Shared>), SinkRunError> {
    let config = &run.config;
    let mut pool = Vec::new();
    for _ in 0..config.spec.batch.max_in_flight {
        pool.push(
            Writer::connect(&config.target)
                .await
                .map_err(|e| SinkRunError::Target(e.to_string()))?,
        );
    }
    let settings = ConsumerSettings::new(
        config.group_id.clone(),
        config.spec.start_from,
        run.client_id.clone(),
    );
    let consumer =
        consumer::create(&run.kafka, &settings, GroupContext::default()).map_err(SinkRunError::Consumer)?;
    let topics: Vec<&str> = config.spec.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| SinkRunError::Consumer(e.to_string()))?;
    tracing::info!(group = %config.group_id, topics = ?config.spec.topics, "sink consuming");
    let shared = Arc::new(Shared {
        deserializers: Deserializers::new(&run.formats, run.registry.as_ref()),
        component: Writer::component(&config.target),
        epoch: AtomicU64::new(0),
        revoked: Mutex::default(),
        run: run.clone(),
    });
    Ok((pool, consumer, shared))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// The consumer loop's state.
struct Loop<'a> {
    consumer: &'a StreamConsumer<GroupContext>,
    acked: &'a consumer::Acked,
    buffers: Buffers,
    assigned: HashSet<Partition>,
    paused: bool,
    telemetry: &'a Telemetry,
}

impl Loop<'_> {
    fn apply_rebalances(&mut self, shared: &Shared) {
        let events: Vec<RebalanceEvent> = self
            .consumer
            .context()
            .events
            .lock()
            .map(|mut events| std::mem::take(&mut *events))
            .unwrap_or_default();
        for event in events {
            match event {
                RebalanceEvent::Revoked(partitions) => {
                    let generation = shared.epoch.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut revoked = shared.revoked.lock().unwrap_or_else(PoisonError::into_inner);
                    for (topic, partition) in partitions {
                        let tp: Partition = (Arc::from(topic.as_str()), partition);
                        revoked.insert(tp.clone(), generation);
                        self.buffers.drop_partition(&tp);
                        self.assigned.remove(&tp);
                    }
                }
                RebalanceEvent::Assigned(partitions) => {
                    let mut list = TopicPartitionList::new();
                    for (topic, partition) in partitions {
                        list.add_partition(&topic, partition);
                        self.assigned.insert((Arc::from(topic.as_str()), partition));
                    }
                    if self.paused
                        && let Err(error) = self.consumer.pause(&list)
                    {
                        tracing::warn!(%error, "pausing newly assigned partitions failed");
                    }
                }
            }
        }
    }

    /// Pauses every partition while the buffers are full, resumes below half.
    fn backpressure(&mut self, cap: usize) {
        let bytes = self.buffers.bytes();
        let change = if !self.paused && bytes >= cap {
            Some(true)
        } else if self.paused && bytes < cap / 2 {
            Some(false)
        } else {
            None
        };
        let Some(pause) = change else { return };
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        match result {
            Ok(()) => {
                self.paused = pause;
                tracing::debug!(paused = pause, buffered_bytes = bytes, "backpressure");
            }
            Err(error) => tracing::warn!(%error, "pause/resume failed"),
        }
    }

    /// Takes a finished write: releases its partitions, commits its offsets
    /// if the partitions are still ours, returns its error.
    fn finish(&mut self, done: BatchDone, shared: &Shared, pool: &mut Vec<Writer>) -> Option<SinkRunError> {
        pool.push(done.writer);
        for tp in &done.partitions {
            self.buffers.release(tp);
        }
        self.telemetry.sink.records.inc_by(done.records);
        self.telemetry.sink.bytes.inc_by(done.bytes);
        if done.result.is_ok() && !done.commits.is_empty() {
            self.telemetry.sink.batches.inc();
            if self.telemetry.state() == "Retrying" {
                self.telemetry.set_state("Running");
            }
        }
        if shared.still_owned(&done.partitions, done.epoch) && !done.commits.is_empty() {
            let mut list = TopicPartitionList::new();
            if let Ok(mut acked) = self.acked.lock() {
                for ((topic, partition), offset) in &done.commits {
                    let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
                    acked.insert((topic.to_string(), *partition), *offset);
                }
            }
            let mode = if done.result.is_err() {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            if let Err(error) = self.consumer.commit(&list, mode) {
                tracing::warn!(%error, "offset commit failed; the next one covers it");
            }
        }
        done.result.err()
    }

    fn commit_all_sync(&self) {
        let mut list = TopicPartitionList::new();
        if let Ok(acked) = self.acked.lock() {
            for ((topic, partition), offset) in acked.iter() {
                if self.assigned.contains(&(Arc::from(topic.as_str()), *partition)) {
                    let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
                }
            }
        }
        if list.count() > 0
            && let Err(error) = self.consumer.commit(&list, CommitMode::Sync)
        {
            tracing::warn!(%error, "final offset commit failed");
        }
    }
}

fn raw_record(message: &impl Message) -> RawRecord {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| Header {
                    name: h.key.to_owned(),
                    value: h.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    RawRecord {
        topic: Arc::from(message.topic()),
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// Decodes, writes (with retries) and dead-letters one batch.
async fn write_batch(
    shared: Arc<Shared>,
    mut writer: Writer,
    raw: Vec<RawRecord>,
    epoch: u64,
    shutdown: CancellationToken,
) -> BatchDone {
    let mut partitions: Vec<Partition> = raw.iter().map(RawRecord::tp).collect();
    partitions.sort();
    partitions.dedup();
    let outcome = process(&shared, &mut writer, &raw, &partitions, epoch, &shutdown).await;
    let mut done = BatchDone {
        writer,
        epoch,
        partitions,
        commits: Vec::new(),
        records: 0,
        bytes: 0,
        result: Ok(()),
    };
    match outcome {
        Processed::Abandoned => {}
        Processed::Failed(error) => done.result = Err(error),
        Processed::Written {
            failures,
            records,
            bytes,
        } => {
            done.records = records;
            done.bytes = bytes;
            match settle(&shared, &raw, failures).await {
                Ok((stops, error)) => {
                    done.commits = commits(&raw, &stops);
                    if let Some(error) = error {
                        done.result = Err(error);
                    }
                }
                Err(error) => done.result = Err(error),
            }
        }
    }
    done
}

enum Processed {
    /// Shutdown or a rebalance: nothing may be committed.
    Abandoned,
    /// Stop the connector.
    Failed(SinkRunError),
    /// The target acknowledged; `failures` (raw index, why) remain.
    Written {
        failures: Vec<(usize, Failure)>,
        records: u64,
        bytes: u64,
    },
}

/// The batch decoded: records for the writer, the raw index of each, the
/// records that failed to decode, and key + value bytes.
struct Decoded {
    records: Vec<Record>,
    /// The Connect schemas of each record (empty when no record has one).
    schemas: Vec<ConnectSchemas>,
    origins: Vec<usize>,
    failures: Vec<(usize, Failure)>,
    bytes: u64,
}

/// Decodes `raw`; `None` when the batch must be abandoned, `Err` to stop.
async fn decode_batch(
    shared: &Shared,
    raw: &[RawRecord],
    partitions: &[Partition],
    epoch: u64,
    shutdown: &CancellationToken,
    rng: &mut StdRng,
) -> Result<Option<Decoded>, SinkRunError> {
    let tolerance = shared.run.config.errors.tolerance;
    let mut stopped: HashSet<Partition> = HashSet::new();
    // The schemas describe records as read: once a transform may have
    // changed them they are dropped (the writer types columns from JSON).
    let keep_schemas = shared.run.config.transforms.is_empty();
    let mut out = Decoded {
        records: Vec::with_capacity(raw.len()),
        schemas: Vec::new(),
        origins: Vec::with_capacity(raw.len()),
        failures: Vec::new(),
        bytes: 0,
    };
    for (index, message) in raw.iter().enumerate() {
        if stopped.contains(&message.tp()) {
            continue; // tolerance None: nothing after a bad record is written
        }
        let mut backoff = Backoff::new(&shared.run.config.errors.retry);
        let decoded = loop {
            match decode(&shared.deserializers, message).await {
                Err((_, error)) if error.is_transient() => {
                    let Some(pause) = backoff.next(None, rng) else {
                        return Err(SinkRunError::RetriesExhausted {
                            attempts: backoff.attempts(),
                            message: error.to_string(),
                        });
                    };
                    tracing::warn!(%error, "schema registry unavailable; retrying");
                    if !pause_or_abandon(shared, partitions, epoch, shutdown, pause).await {
                        return Ok(None);
                    }
                }
                other => break other,
            }
        };
        let mut record_schemas = None;
        let decoded = decoded.map(|(record, schemas)| {
            if keep_schemas && (schemas.key.is_some() || schemas.value.is_some()) {
                record_schemas = Some(schemas);
            }
            record
        });
        let decoded = decoded.map_err(|(stage, error)| Failure {
            stage,
            component: format!("tributary.format.{}", format_name(&shared.run.formats, stage)),
            class: error.class().to_owned(),
            message: error.to_string(),
        });
        let transformed = decoded.and_then(|record| {
            shared
                .run
                .config
                .transforms
                .apply(record)
                .map_err(|error| Failure {
                    stage: Stage::Transformation,
                    component: format!("tributary.transform.{}", error.transform),
                    class: error.transform.to_owned(),
                    message: error.to_string(),
                })
        });
        match transformed {
            // Filtered out: nothing to write, its offset counts as done.
            Ok(None) => {}
            Ok(Some(record)) => {
                if let Some(schemas) = record_schemas {
                    // Aligned with the records: padded for those before the first.
                    out.schemas.resize(out.records.len(), ConnectSchemas::default());
                    out.schemas.push(schemas);
                }
                out.bytes += (message.key.as_ref().map_or(0, Vec::len)
                    + message.value.as_ref().map_or(0, Vec::len)) as u64;
                out.records.push(record);
                out.origins.push(index);
            }
            Err(failure) => {
                out.failures.push((index, failure));
                if tolerance == ErrorTolerance::None {
                    stopped.insert(message.tp());
                }
            }
        }
    }
    Ok(Some(out))
}

async fn process(
    shared: &Shared,
    writer: &mut Writer,
    raw: &[RawRecord],
    partitions: &[Partition],
    epoch: u64,
    shutdown: &CancellationToken,
) -> Processed {
    let mut rng = StdRng::seed_from_u64(jitter_seed());
    let Decoded {
        records,
        schemas,
        origins,
        mut failures,
        bytes,
    } = match decode_batch(shared, raw, partitions, epoch, shutdown, &mut rng).await {
        Ok(Some(decoded)) => decoded,
        Ok(None) => return Processed::Abandoned,
        Err(error) => return Processed::Failed(error),
    };
    let mut backoff = Backoff::new(&shared.run.config.errors.retry);
    let outcome = loop {
        if records.is_empty() {
            break crate::sink::WriteOutcome::default();
        }
        match writer.write_with_schemas(&records, &schemas).await {
            Ok(outcome) => break outcome,
            Err(SinkError::Fatal { message }) => return Processed::Failed(SinkRunError::Target(message)),
            Err(SinkError::Retryable { message, retry_after }) => {
                shared.run.telemetry.sink.retries.inc();
                shared.run.telemetry.set_state_only("Retrying");
                let Some(pause) = backoff.next(retry_after, &mut rng) else {
                    return Processed::Failed(SinkRunError::RetriesExhausted {
                        attempts: backoff.attempts(),
                        message,
                    });
                };
                tracing::warn!(
                    error = %message,
                    attempt = backoff.attempts(),
                    retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    records = records.len(),
                    "write failed; retrying"
                );
                if !pause_or_abandon(shared, partitions, epoch, shutdown, pause).await {
                    return Processed::Abandoned;
                }
            }
        }
    };
    let outcome_rejected = outcome.rejected.len().min(records.len());
    for rejected in outcome.rejected {
        if let Some(&index) = origins.get(rejected.index) {
            failures.push((
                index,
                Failure {
                    stage: Stage::TaskPut,
                    component: shared.component.to_owned(),
                    class: rejected.class,
                    message: rejected.message,
                },
            ));
        }
    }
    let written = records.len() - outcome_rejected;
    failures.sort_by_key(|(index, _)| *index);
    Processed::Written {
        failures,
        records: written as u64,
        bytes,
    }
}

/// Sleeps `pause`; false when the write must be abandoned meanwhile
/// (shutdown, or its partitions were revoked).
async fn pause_or_abandon(
    shared: &Shared,
    partitions: &[Partition],
    epoch: u64,
    shutdown: &CancellationToken,
    pause: Duration,
) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(pause) => shared.still_owned(partitions, epoch),
    }
}

fn jitter_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
}

fn format_name(formats: &FormatSpec, stage: Stage) -> String {
    let format = if stage == Stage::KeyConverter {
        formats.key
    } else {
        formats.value
    };
    serde_json::to_value(format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn decode(
    deserializers: &Deserializers,
    raw: &RawRecord,
) -> Result<(Record, ConnectSchemas), (Stage, DecodeError)> {
    let (key, key_schema) = deserializers
        .key
        .decode_with_schema(raw.key.as_deref())
        .await
        .map_err(|e| (Stage::KeyConverter, e))?;
    let (value, value_schema) = deserializers
        .value
        .decode_with_schema(raw.value.as_deref())
        .await
        .map_err(|e| (Stage::ValueConverter, e))?;
    let schemas = ConnectSchemas {
        key: key_schema,
        value: value_schema,
    };
    let record = Record {
        topic: raw.topic.to_string(),
        partition: raw.partition,
        offset: raw.offset,
        timestamp_ms: raw.timestamp_ms,
        key,
        value,
        headers: raw.headers.clone(),
    };
    Ok((record, schemas))
}

/// Dead-letters the bad records (tolerance All), or, with None, returns
/// where each partition must stop (its first bad record) and the error.
async fn settle(
    shared: &Shared,
    raw: &[RawRecord],
    failures: Vec<(usize, Failure)>,
) -> Result<(BTreeMap<Partition, i64>, Option<SinkRunError>), SinkRunError> {
    let telemetry = &shared.run.telemetry;
    let mut stops = BTreeMap::new();
    let mut error = None;
    for (index, failure) in failures {
        telemetry.sink.bad_records.inc();
        let record = &raw[index];
        if shared.run.config.errors.tolerance == ErrorTolerance::None {
            let stop = stops.entry(record.tp()).or_insert(record.offset);
            *stop = (*stop).min(record.offset);
            error.get_or_insert(SinkRunError::BadRecord {
                topic: record.topic.to_string(),
                partition: record.partition,
                offset: record.offset,
                stage: failure.stage.as_str(),
                class: failure.class,
                message: failure.message,
            });
            continue;
        }
        if let Some(dead_letter) = &shared.run.dead_letter {
            dead_letter.send(record, &failure).await?;
            telemetry.sink.dead_lettered.inc();
            tracing::warn!(
                topic = %record.topic, partition = record.partition, offset = record.offset,
                stage = failure.stage.as_str(), class = %failure.class, error = %failure.message,
                dead_letter_topic = %dead_letter.topic, "bad record sent to the dead-letter topic"
            );
        } else {
            tracing::warn!(
                topic = %record.topic, partition = record.partition, offset = record.offset,
                stage = failure.stage.as_str(), class = %failure.class, error = %failure.message,
                "bad record skipped (tolerance All, no dead-letter topic)"
            );
        }
    }
    Ok((stops, error))
}

/// Next offsets to commit per partition of `raw`: past its last record, or,
/// for a partition in `stops`, its first bad record (so nothing from it on
/// counts as done).
fn commits(raw: &[RawRecord], stops: &BTreeMap<Partition, i64>) -> Vec<(Partition, i64)> {
    let mut next: BTreeMap<Partition, i64> = BTreeMap::new();
    for record in raw {
        let tp = record.tp();
        let offset = stops.get(&tp).copied().unwrap_or(record.offset + 1);
        let entry = next.entry(tp).or_insert(offset);
        *entry = (*entry).max(offset);
    }
    next.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(partition: i32, offset: i64) -> RawRecord {
        RawRecord {
            topic: Arc::from("t"),
            partition,
            offset,
            timestamp_ms: None,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn commits_go_past_each_partitions_last_record_or_stop_at_the_bad_one() {
        let batch = [raw(0, 10), raw(1, 5), raw(0, 11), raw(1, 6), raw(0, 12)];
        let all = commits(&batch, &BTreeMap::new());
        assert_eq!(all, vec![((Arc::from("t"), 0), 13), ((Arc::from("t"), 1), 7)]);
        // Bad record 0@11: partition 0 commits up to it (11 is read again), partition 1 fully.
        let stopped = commits(&batch, &BTreeMap::from([((Arc::from("t"), 0), 11)]));
        assert_eq!(stopped, vec![((Arc::from("t"), 0), 11), ((Arc::from("t"), 1), 7)]);
    }
}
