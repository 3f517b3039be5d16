//! Streams: a `Stream` resource's SQL query run over Kafka topics.
//!
//! [`config`] checks the manifest and plans its query with `tributary_sql`;
//! [`run`] creates the topics the query needs and runs the engine
//! (`engine`: decode, filter, project or aggregate through the repartition
//! topic, windows, changelog-backed state, commits or transactions) on a
//! dedicated thread, while the async side serves metrics and reports status.

pub mod config;
mod engine;
mod join;
mod kafka;
pub mod output;
mod positions;
mod prune;
mod state;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_walstream::CancellationToken;
use rdkafka::consumer::Consumer;
use tributary_api::connector::TopicCreation;
use tributary_kafka::KafkaAdmin;
use tributary_sql::{Join, JoinInput};

use self::config::StreamConfig;
use self::engine::{Engine, InputSetup, Setup, TableInput};
use self::output::OutputEncoders;
use self::prune::Fields;
use crate::delivery::{self, PipelineSettings, TopicCreator};
use crate::format::decode::Deserializer;
use crate::runner::{Outcome, RunSettings};
use crate::state_topic::{StateTopic, WorkerStatus};
use crate::telemetry::{self, Telemetry};

/// Why a stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A Kafka client failed (producing, committing, a transaction).
    #[error("kafka: {0}")]
    Kafka(String),
    /// A topic the stream needs is missing or could not be created.
    #[error("topic {topic}: {message}")]
    Topic {
        /// Topic.
        topic: String,
        /// Why.
        message: String,
    },
    /// The changelog holds state this worker cannot read.
    #[error("state: {0}")]
    State(String),
    /// The status topic or the HTTP endpoint failed to start.
    #[error("{0}")]
    Setup(String),
    /// The output schema could not be prepared (registered, for Avro).
    #[error("output topic {topic}: {source}")]
    OutputSchema {
        /// Topic.
        topic: String,
        /// Why.
        source: crate::format::FormatError,
    },
}

/// Runs the stream until `shutdown`; a fatal error stops it (the process
/// exits non-zero and is restarted; state and offsets resume from Kafka).
///
/// A stop commits what was processed (the open transaction under
/// exactly-once) and leaves the group, so a later run — after a pause, or in
/// another process — continues from exactly those offsets and the state the
/// changelog holds for them.
pub async fn run(
    config: &StreamConfig,
    settings: &RunSettings,
    shutdown: CancellationToken,
) -> Result<Outcome, StreamError> {
    let telemetry = settings.telemetry.clone().unwrap_or_default();
    if let Some(addr) = settings.http_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| StreamError::Setup(format!("listening on {addr}: {e}")))?;
        drop(listener); // bound once to report a clear error early
        let served = Arc::clone(&telemetry);
        tokio::spawn(async move {
            if let Err(error) = telemetry::serve(addr, served).await {
                tracing::error!(%error, "telemetry endpoint stopped");
            }
        });
    }
    let setup = Arc::new(prepare(config).await?);
    let status_producer = delivery::producer(&config.kafka, &PipelineSettings::default())
        .map_err(|e| StreamError::Setup(e.to_string()))?;
    let status = StateTopic::new(config.kafka.clone(), &settings.status_topic);
    status
        .ensure()
        .await
        .map_err(|e| StreamError::Setup(e.to_string()))?;

    let client_id = format!(
        "tributary-{}-{}",
        config.id.replace('/', "-"),
        settings.worker_name
    );
    // One transactional id per worker instance: a restarted instance (same
    // pod or host name) fences its predecessor and aborts its open transaction.
    let transactional_id = format!("{}-{}", config.group_id, settings.worker_name);
    let (producer, delivery_state) = kafka::producer(
        &config.kafka,
        &client_id,
        setup.exactly_once.then_some(transactional_id.as_str()),
        telemetry.delivery.records.clone(),
    )?;
    let engine = Engine::new(
        Arc::clone(&setup),
        producer,
        Arc::clone(&delivery_state),
        telemetry.stream.clone(),
        tokio::runtime::Handle::current(),
    );
    let engine = Arc::new(Mutex::new(engine));
    let commit_interval = Duration::from_millis(u64::from(
        config
            .spec()
            .commit_interval_ms
            .unwrap_or(if setup.exactly_once { 100 } else { 1000 }),
    ));
    let (commit_clock, commit_ticker) = CommitClock::start(commit_interval, &shutdown);
    let worker = {
        let engine = Arc::clone(&engine);
        let kafka = config.kafka.clone();
        let group_id = config.group_id.clone();
        let shutdown = shutdown.clone();
        let telemetry = Arc::clone(&telemetry);
        tokio::task::spawn_blocking(move || {
            run_engine(
                &engine,
                &kafka,
                &group_id,
                &client_id,
                commit_clock,
                &shutdown,
                &telemetry,
            )
        })
    };
    let reporter = tokio::spawn(report_status(
        status.clone(),
        status_producer.clone(),
        Arc::clone(&telemetry),
        Arc::clone(&delivery_state),
        config.id.clone(),
        settings.clone(),
        shutdown.clone(),
    ));
    let result = match worker.await {
        Ok(result) => result,
        Err(e) => Err(StreamError::Setup(format!("the stream thread ended: {e}"))),
    };
    reporter.abort();
    commit_ticker.abort();
    let (state, last_error) = match &result {
        Ok(()) => ("Stopped", None),
        Err(error) => {
            telemetry.set_failed();
            ("Failed", Some(config.kafka.redact(&error.to_string())))
        }
    };
    let final_status = status_of(&delivery_state, settings, state, last_error);
    if let Err(error) = status.write(&status_producer, &config.id, &final_status).await {
        tracing::warn!(%error, "could not write the final status");
    }
    result.map(|()| Outcome::Stopped)
}

/// Creates the output and internal topics and the per-input decoders.
async fn prepare(config: &StreamConfig) -> Result<Setup, StreamError> {
    let plan = config.plan.clone();
    let admin = KafkaAdmin::new(&config.kafka, Duration::from_secs(30))
        .map_err(|e| StreamError::Kafka(e.to_string()))?;
    let mut partitions = 1;
    for topic in plan.input_topics() {
        let observed = admin
            .describe_topic(&topic)
            .await
            .map_err(|e| StreamError::Topic {
                topic: topic.clone(),
                message: e.to_string(),
            })?
            .ok_or_else(|| StreamError::Topic {
                topic: topic.clone(),
                message: "the input topic does not exist".to_owned(),
            })?;
        partitions = partitions.max(observed.partitions);
    }
    let topic_error = |topic: &str| {
        let topic = topic.to_owned();
        move |e: delivery::DeliveryError| StreamError::Topic {
            topic,
            message: e.to_string(),
        }
    };
    let creation = &config.spec().topic_creation;
    TopicCreator::new(config.kafka.clone(), creation.clone())
        .ensure(&config.output_topic)
        .await
        .map_err(topic_error(&config.output_topic))?;
    let (repartition_topic, changelog_topic) = if plan.repartitions() {
        let repartition = config.repartition_topic();
        let changelog = config.changelog_topic();
        let internal = |configs: BTreeMap<String, String>| TopicCreation {
            enabled: true,
            partitions,
            replication_factor: creation.replication_factor,
            configs,
        };
        TopicCreator::new(config.kafka.clone(), internal(BTreeMap::new()))
            .ensure(&repartition)
            .await
            .map_err(topic_error(&repartition))?;
        let compacted = BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]);
        TopicCreator::new(config.kafka.clone(), internal(compacted))
            .ensure(&changelog)
            .await
            .map_err(topic_error(&changelog))?;
        (Some(repartition), Some(changelog))
    } else {
        (None, None)
    };
    let mut inputs = HashMap::new();
    for (index, source) in plan.sources.iter().enumerate() {
        let input = config.input(&source.topic);
        // A topic read twice (a self-join) is parsed whole.
        let fields = if plan.sources.iter().filter(|s| s.topic == source.topic).count() > 1 {
            Fields::whole()
        } else {
            Fields::of_input(&plan, index)
        };
        inputs.insert(
            source.topic.clone(),
            InputSetup {
                key: Deserializer::new(input.format.key, config.registry.clone()),
                value: Deserializer::new(input.format.value, config.registry.clone()),
                key_format: input.format.key,
                value_format: input.format.value,
                timestamp_field: source.timestamp_field.clone(),
                fields,
            },
        );
    }
    let output = OutputEncoders::prepare(
        &config.output,
        &config.spec().output,
        config.registry.as_ref(),
        &config.output_topic,
    )
    .await
    .map_err(|source| StreamError::OutputSchema {
        topic: config.output_topic.clone(),
        source,
    })?;
    let table = table_input(config, &plan);
    Ok(Setup {
        reads_row_key: engine::reads_row_key(&plan),
        output,
        table,
        group_names: engine::group_names(&plan),
        output_key: config.spec().output.key.clone(),
        output_topic: config.output_topic.clone(),
        exactly_once: config.exactly_once(),
        kafka: config.kafka.clone(),
        repartition_topic,
        changelog_topic,
        inputs,
        plan,
    })
}

/// The table of a stream-table join and its memory limit.
fn table_input(config: &StreamConfig, plan: &tributary_sql::Plan) -> Option<TableInput> {
    match &plan.join {
        Some(Join {
            right: JoinInput::Table { key_path },
            ..
        }) => {
            let topic = plan.sources[1].topic.clone();
            let index = config.spec().inputs.iter().position(|i| i.topic == topic);
            let limit = index
                .and_then(|i| config.spec().inputs[i].max_table_bytes)
                .unwrap_or(table::DEFAULT_MAX_TABLE_BYTES);
            Some(TableInput {
                limit_field: index.map_or_else(
                    || "spec.inputs[].maxTableBytes".to_owned(),
                    |i| format!("spec.inputs[{i}].maxTableBytes"),
                ),
                topic,
                key_path: key_path.clone(),
                limit,
            })
        }
        _ => None,
    }
}

/// When the engine loop commits: `interval` after the previous commit
/// ended (a commit of a transaction takes a broker round trip, so timing
/// from its start would leave nearly nothing between commits).
///
/// The loop reads the clock only when a flag is raised, and a timer task
/// raises it ten times per interval, so a commit starts at most a tenth of
/// the interval late and a record costs one atomic read, not a clock read.
#[derive(Debug)]
struct CommitClock {
    interval: Duration,
    check: Arc<AtomicBool>,
    last: Instant,
}

impl CommitClock {
    /// Starts the timer task (it ends at `shutdown`).
    fn start(interval: Duration, shutdown: &CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let check = Arc::new(AtomicBool::new(false));
        let raise = Arc::clone(&check);
        let shutdown = shutdown.clone();
        let period = (interval / 10).max(Duration::from_millis(1));
        let ticker = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticker.tick() => raise.store(true, Ordering::Relaxed),
                }
            }
        });
        let clock = Self {
            interval,
            check,
            last: Instant::now(),
        };
        (clock, ticker)
    }

    /// Whether a commit is due now.
    fn due(&self) -> bool {
        self.check.swap(false, Ordering::Relaxed) && self.last.elapsed() >= self.interval
    }

    /// Notes that a commit just ended.
    fn committed(&mut self) {
        self.last = Instant::now();
    }
}

/// The consume-process-commit loop (blocking; on its own thread).
fn run_engine(
    engine: &Arc<Mutex<Engine>>,
    kafka: &tributary_kafka::KafkaConnection,
    group_id: &str,
    client_id: &str,
    mut commit_clock: CommitClock,
    shutdown: &CancellationToken,
    telemetry: &Telemetry,
) -> Result<(), StreamError> {
    let lock = || {
        engine
            .lock()
            .map_err(|_| StreamError::State("the engine lock is poisoned".to_owned()))
    };
    let (topics, follows_table) = {
        let mut engine = lock()?;
        engine.init_transactions()?;
        engine.load_table(client_id)?;
        (engine.subscriptions(), engine.has_table())
    };
    let callbacks = kafka::GroupCallbacks::new(Arc::clone(engine));
    let consumer = kafka::consumer(kafka, group_id, client_id, callbacks)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|e| StreamError::Kafka(format!("subscribing to {}: {e}", topics.join(", "))))?;
    tracing::info!(topics = %topics.join(", "), group = group_id, "stream running");
    telemetry.set_state("Running");
    let result = loop {
        if shutdown.is_cancelled() {
            break Ok(());
        }
        if follows_table && let Err(error) = lock().and_then(|mut engine| engine.follow_table()) {
            break Err(error);
        }
        // A record already fetched is taken without a timeout (which would
        // read the clock); only an empty queue is waited on.
        let polled = consumer
            .poll(Duration::ZERO)
            .or_else(|| consumer.poll(Duration::from_millis(100)));
        if let Some(error) = consumer.context().take_failure() {
            break Err(error);
        }
        match polled {
            Some(Ok(message)) => {
                let outcome = lock().and_then(|mut engine| engine.process(&message));
                if let Err(error) = outcome {
                    break Err(error);
                }
            }
            Some(Err(error)) => tracing::warn!(%error, "consumer error"),
            None => {}
        }
        if commit_clock.due() {
            if let Err(error) = lock().and_then(|mut engine| engine.commit(&consumer)) {
                break Err(error);
            }
            commit_clock.committed();
        }
    };
    if result.is_ok() {
        // Stopping: commit what was processed, then leave the group (the
        // revoke callback commits again, with nothing left to do).
        lock().and_then(|mut engine| engine.commit(&consumer))?;
        consumer.unsubscribe();
    }
    result
}

/// Writes `state` (e.g. `Paused`) as the stream's status between runs.
pub async fn report_state(config: &StreamConfig, settings: &RunSettings, telemetry: &Telemetry, state: &str) {
    let acked = kafka::DeliveryState {
        acked: telemetry.delivery.records.clone(),
        ..kafka::DeliveryState::default()
    };
    let status = status_of(&acked, settings, state, None);
    crate::runner::write_status_once(&config.kafka, &settings.status_topic, &config.id, &status).await;
}

fn status_of(
    delivery: &kafka::DeliveryState,
    settings: &RunSettings,
    state: &str,
    last_error: Option<String>,
) -> WorkerStatus {
    WorkerStatus {
        state: state.to_owned(),
        worker: settings.worker_name.clone(),
        records: delivery.acked.get(),
        bytes: 0,
        lag_bytes: None,
        lag_millis: None,
        last_error,
        updated_at: jiff::Timestamp::now().to_string(),
    }
}

async fn report_status(
    topic: StateTopic,
    producer: rdkafka::producer::FutureProducer,
    telemetry: Arc<Telemetry>,
    delivery: Arc<kafka::DeliveryState>,
    id: String,
    settings: RunSettings,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(settings.status_interval);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let status = status_of(&delivery, &settings, &telemetry.state(), None);
        if let Err(error) = topic.write(&producer, &id, &status).await {
            tracing::warn!(%error, "could not write status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction's commit takes a broker round trip: the next commit is
    /// due an interval after the last one ended, however often the flag is
    /// raised meanwhile (counting from its start committed after every record).
    #[test]
    fn commits_are_due_an_interval_after_the_last_one_ended() {
        let interval = Duration::from_millis(200);
        let mut clock = CommitClock {
            interval,
            check: Arc::new(AtomicBool::new(false)),
            last: Instant::now().checked_sub(interval).unwrap(),
        };
        assert!(!clock.due(), "no check requested yet");
        clock.check.store(true, Ordering::Relaxed);
        assert!(clock.due());
        clock.committed();
        clock.check.store(true, Ordering::Relaxed);
        assert!(!clock.due(), "the last commit just ended");
        std::thread::sleep(interval);
        assert!(!clock.due(), "the flag was taken by the earlier check");
        clock.check.store(true, Ordering::Relaxed);
        assert!(clock.due());
    }
}
