//! Runs one configured connector: state topics, telemetry and either the
//! source (with its Kafka pipeline) or the sink runtime, until the source
//! completes, the connector fails or a stop is requested.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pg_walstream::CancellationToken;

use crate::config::{Role, SinkConfig, Source, WorkerConfig};
use crate::delivery::{self, DeliveryError, Pipeline, PipelineSettings, TopicCreator};
use crate::format::Serializers;
use crate::sink::runtime::dead_letter::DeadLetterTopic;
use crate::sink::runtime::{self as sink_runtime, SinkRun, SinkRunError};
use crate::source::{RunContext, datagen, postgres};
use crate::state_topic::{StateTopic, StateTopicError, WorkerStatus};
use crate::telemetry::{self, Telemetry};

/// Settings of the process (not of the connector).
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Compacted topic of source offsets.
    pub offsets_topic: String,
    /// Compacted topic of worker status.
    pub status_topic: String,
    /// Where `/healthz`, `/readyz` and `/metrics` listen (`None`: not served).
    pub http_addr: Option<SocketAddr>,
    /// Interval of status records.
    pub status_interval: Duration,
    /// Name of this worker instance in status records.
    pub worker_name: String,
    /// Telemetry shared across runs of one process (a paused and resumed
    /// connector keeps its endpoint and counters); `None`: a fresh one.
    pub telemetry: Option<Arc<Telemetry>>,
}

/// The run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Kafka producer or delivery.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// Offsets or status topic.
    #[error(transparent)]
    State(#[from] StateTopicError),
    /// The datagen source.
    #[error(transparent)]
    Datagen(#[from] datagen::DatagenError),
    /// The Postgres source.
    #[error(transparent)]
    Postgres(#[from] postgres::PostgresError),
    /// The sink.
    #[error(transparent)]
    Sink(#[from] SinkRunError),
    /// The HTTP endpoint could not listen.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How the connector ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped on request.
    Stopped,
    /// The source has no more to do (datagen `maxRecords`, `InitialOnly`).
    Completed,
}

/// Runs `config` until `shutdown` is cancelled or the source ends.
pub async fn run(
    config: &WorkerConfig,
    settings: &RunSettings,
    shutdown: CancellationToken,
) -> Result<Outcome, RunError> {
    let telemetry = settings.telemetry.clone().unwrap_or_default();
    if let Some(addr) = settings.http_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Listen { addr, source })?;
        drop(listener); // bound once to report a clear error early
        let served = Arc::clone(&telemetry);
        tokio::spawn(async move {
            if let Err(error) = telemetry::serve(addr, served).await {
                tracing::error!(%error, "telemetry endpoint stopped");
            }
        });
    }
    let pipeline_settings = PipelineSettings::default();
    let producer = delivery::producer(&config.kafka, &pipeline_settings)?;
    let topics = TopicCreator::new(config.kafka.clone(), config.connector.spec.topic_creation.clone());
    let pipeline = Pipeline::start(
        producer,
        topics.clone(),
        &pipeline_settings,
        telemetry.delivery.clone(),
    );
    let status = StateTopic::new(config.kafka.clone(), &settings.status_topic);
    status.ensure().await?;
    let sink = matches!(config.role, Role::Sink(_));
    let reporter = tokio::spawn(report_status(
        status.clone(),
        pipeline.clone(),
        Arc::clone(&telemetry),
        config.id.clone(),
        settings.clone(),
        shutdown.clone(),
        sink,
    ));

    let result: Result<Outcome, RunError> = match &config.role {
        Role::Source(source) => {
            let offsets = StateTopic::new(config.kafka.clone(), &settings.offsets_topic);
            offsets.ensure().await?;
            let ctx = RunContext {
                id: config.id.clone(),
                serializers: Serializers::new(&config.connector.spec.format, config.registry.as_ref()),
                pipeline: pipeline.clone(),
                offsets,
                telemetry: Arc::clone(&telemetry),
            };
            run_source(&ctx, source, &shutdown).await
        }
        Role::Sink(sink) => {
            let run = sink_run(config, sink, &pipeline, topics, settings, &telemetry);
            sink_runtime::run(run, shutdown.clone())
                .await
                .map(|()| Outcome::Stopped)
                .map_err(RunError::from)
        }
    };
    reporter.abort();
    let (state, last_error) = match &result {
        Ok(Outcome::Stopped) => ("Stopped", None),
        Ok(Outcome::Completed) => ("Completed", None),
        Err(error) => {
            telemetry.set_failed();
            telemetry.errors.inc();
            ("Failed", Some(config.kafka.redact(&error.to_string())))
        }
    };
    let final_status = snapshot_status(&telemetry, settings, state, last_error, sink);
    if let Err(error) = status.write(pipeline.producer(), &config.id, &final_status).await {
        tracing::warn!(%error, "could not write the final status");
    }
    pipeline.close(Duration::from_secs(10));
    result
}

async fn run_source(
    ctx: &RunContext,
    source: &Source,
    shutdown: &CancellationToken,
) -> Result<Outcome, RunError> {
    match source {
        Source::Postgres(pg) => run_postgres(ctx, pg, shutdown).await,
        Source::Datagen(spec) => datagen::run(ctx, spec, shutdown.clone())
            .await
            .map(|sent| {
                tracing::info!(records = sent, "datagen finished");
                if shutdown.is_cancelled() {
                    Outcome::Stopped
                } else {
                    Outcome::Completed
                }
            })
            .map_err(RunError::from),
    }
}

/// The sink runtime's inputs; bad records go to the dead-letter topic
/// through the worker's producer (idempotent, `acks=all`).
fn sink_run(
    config: &WorkerConfig,
    sink: &SinkConfig,
    pipeline: &Pipeline,
    topics: TopicCreator,
    settings: &RunSettings,
    telemetry: &Arc<Telemetry>,
) -> SinkRun {
    let dead_letter = sink
        .errors
        .dead_letter_topic
        .as_ref()
        .map(|topic| DeadLetterTopic {
            topic: topic.clone(),
            context_headers: sink.errors.context_headers,
            connector: config.id.clone(),
            producer: pipeline.producer().clone(),
            topics,
        });
    SinkRun {
        id: config.id.clone(),
        config: sink.clone(),
        formats: config.connector.spec.format.clone(),
        kafka: config.kafka.clone(),
        registry: config.registry.clone(),
        dead_letter,
        telemetry: Arc::clone(telemetry),
        client_id: format!(
            "tributary-{}-{}",
            config.id.replace('/', "-"),
            settings.worker_name
        ),
    }
}

/// Longest pause between attempts after a transient source failure.
const MAX_RETRY_DELAY: Duration = Duration::from_mins(1);

/// Runs the Postgres source, starting it again after transient failures (the
/// database restarting, a connection cut) with exponential backoff. A
/// restart resumes from the slot, so nothing unconfirmed is lost.
async fn run_postgres(
    ctx: &RunContext,
    pg: &crate::config::PostgresConfig,
    shutdown: &CancellationToken,
) -> Result<Outcome, RunError> {
    let mut delay = Duration::from_secs(1);
    loop {
        let started = std::time::Instant::now();
        match postgres::run(ctx, pg, shutdown.clone()).await {
            Ok(postgres::Ending::Stopped) => return Ok(Outcome::Stopped),
            Ok(postgres::Ending::SnapshotCompleted) => return Ok(Outcome::Completed),
            Err(error) if error.is_transient() && !shutdown.is_cancelled() => {
                ctx.telemetry.errors.inc();
                if started.elapsed() > MAX_RETRY_DELAY {
                    delay = Duration::from_secs(1); // it ran fine for a while
                }
                tracing::warn!(%error, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "source failed; restarting it");
                ctx.telemetry.set_state_only("Retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(Outcome::Stopped),
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Writes `state` as this worker's status (best effort: a failure is
/// logged), e.g. `Paused` while `spec.state` holds it.
pub async fn report_state(config: &WorkerConfig, settings: &RunSettings, state: &str) {
    let telemetry = settings.telemetry.clone().unwrap_or_default();
    let status = snapshot_status(
        &telemetry,
        settings,
        state,
        None,
        matches!(config.role, Role::Sink(_)),
    );
    write_status_once(&config.kafka, &settings.status_topic, &config.id, &status).await;
}

/// Writes one status record outside a run (no producer of its own is up
/// then); a failure is logged: the next run reports again.
pub(crate) async fn write_status_once(
    kafka: &tributary_kafka::KafkaConnection,
    status_topic: &str,
    id: &str,
    status: &WorkerStatus,
) {
    let topic = StateTopic::new(kafka.clone(), status_topic);
    let written = match delivery::producer(kafka, &PipelineSettings::default()) {
        Ok(producer) => topic
            .write(&producer, id, status)
            .await
            .map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = written {
        tracing::warn!(%error, state = %status.state, "could not write status");
    }
}

fn snapshot_status(
    telemetry: &Telemetry,
    settings: &RunSettings,
    state: &str,
    last_error: Option<String>,
    sink: bool,
) -> WorkerStatus {
    let lag_bytes = u64::try_from(telemetry.lag_bytes.get()).ok().filter(|b| *b > 0);
    let (records, bytes) = if sink {
        (telemetry.sink.records.get(), telemetry.sink.bytes.get())
    } else {
        (telemetry.delivery.records.get(), telemetry.delivery.bytes.get())
    };
    WorkerStatus {
        state: state.to_owned(),
        worker: settings.worker_name.clone(),
        records,
        bytes,
        lag_bytes,
        lag_millis: u64::try_from(telemetry.lag_millis.get()).ok(),
        last_error,
        updated_at: jiff::Timestamp::now().to_string(),
    }
}

async fn report_status(
    topic: StateTopic,
    pipeline: Pipeline,
    telemetry: Arc<Telemetry>,
    id: String,
    settings: RunSettings,
    shutdown: CancellationToken,
    sink: bool,
) {
    let mut ticker = tokio::time::interval(settings.status_interval);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let status = snapshot_status(&telemetry, &settings, &telemetry.state(), None, sink);
        if let Err(error) = topic.write(pipeline.producer(), &id, &status).await {
            tracing::warn!(%error, "could not write status");
        }
    }
}
