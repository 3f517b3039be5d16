//! `tributary-worker`: the process that runs one connector or stream.
//!
//! `tributary-worker run -f connector.yaml` runs a `Connector` manifest
//! without Kubernetes (standalone mode); the operator runs the same command
//! with the manifest mounted from a ConfigMap. `drop-slot` removes the
//! replication slot (and optionally the publication) of a Postgres source.
//! A sink connector that stops on a bad record (`spec.errors.tolerance:
//! None`) or a fatal target error exits non-zero, its error in the status.
//! Connectors and streams alike follow `spec.state` in their config files
//! live ([`lifecycle`]): Paused stops the run and keeps the process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use pg_walstream::CancellationToken;
use std::sync::Arc;
use tributary_worker::config::{self, LoadOptions, Role, SecretResolver, Source};
use tributary_worker::delivery::{self, PipelineSettings};

use tributary_api::DesiredState;
use tributary_worker::lifecycle;
use tributary_worker::runner::{self, Outcome, RunSettings};
use tributary_worker::source::postgres;
use tributary_worker::state_topic::{DEFAULT_OFFSETS_TOPIC, DEFAULT_STATUS_TOPIC, StateTopic};
use tributary_worker::stream;
use tributary_worker::telemetry::{self, Telemetry};

// jemalloc for the whole process, librdkafka's C code included (see the
// workspace Cargo.toml): records cross threads, and glibc's arena locks
// turned every cross-thread free into contention.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Command line of the worker.
#[derive(Debug, Parser)]
#[command(name = "tributary-worker", version, about)]
struct Args {
    /// Log as JSON lines (for log collectors) instead of human-readable text.
    #[arg(long, global = true, env = "TRIBUTARY_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where the connector's configuration comes from.
#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// YAML file(s) holding one `Connector` and, optionally, the `KafkaCluster` it uses.
    #[arg(
        short = 'f',
        long = "file",
        required = true,
        env = "TRIBUTARY_CONFIG",
        value_delimiter = ','
    )]
    files: Vec<PathBuf>,
    /// Plaintext Kafka brokers, when no KafkaCluster manifest is given.
    #[arg(long, env = "TRIBUTARY_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,
    /// Confluent-compatible schema registry, when no KafkaCluster manifest names one.
    #[arg(long, env = "TRIBUTARY_SCHEMA_REGISTRY_URL")]
    schema_registry_url: Option<String>,
    /// Directory with secret values as `<secret name>/<key>` files (checked after
    /// the `TRIBUTARY_SECRET_<NAME>_<KEY>` environment variables).
    #[arg(long, env = "TRIBUTARY_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            files: self.files.clone(),
            bootstrap_servers: self.bootstrap_servers.clone(),
            schema_registry_url: self.schema_registry_url.clone(),
            secrets: SecretResolver {
                dir: self.secrets_dir.clone(),
                ..SecretResolver::default()
            },
        }
    }

    fn load(&self) -> anyhow::Result<config::WorkerConfig> {
        Ok(config::load(&self.options())?)
    }

    /// The `Stream` in the files, if they hold one (else they hold a Connector).
    fn load_stream(&self) -> anyhow::Result<Option<stream::config::StreamConfig>> {
        Ok(stream::config::load(&self.options())?)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the connector until stopped (SIGTERM/SIGINT) or finished.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Compacted topic holding source offsets.
        #[arg(long, env = "TRIBUTARY_OFFSETS_TOPIC", default_value = DEFAULT_OFFSETS_TOPIC)]
        offsets_topic: String,
        /// Compacted topic holding worker status.
        #[arg(long, env = "TRIBUTARY_STATUS_TOPIC", default_value = DEFAULT_STATUS_TOPIC)]
        status_topic: String,
        /// Address of /healthz, /readyz and /metrics; `off` disables them.
        #[arg(long, env = "TRIBUTARY_HTTP_ADDR", default_value = "0.0.0.0:8080")]
        http_addr: String,
        /// Seconds between status records.
        #[arg(long, env = "TRIBUTARY_STATUS_INTERVAL_SECONDS", default_value_t = 10)]
        status_interval_seconds: u64,
    },
    /// Check the configuration and exit (0 when valid); for a Stream, print its query plan.
    Validate {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Drop the replication slot of a Postgres source, so it stops retaining WAL.
    /// Forgets the connector's offsets too, so the next run starts afresh
    /// (with a new snapshot under snapshotMode Initial).
    DropSlot {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also drop the publication.
        #[arg(long)]
        publication: bool,
        /// Compacted topic holding source offsets.
        #[arg(long, env = "TRIBUTARY_OFFSETS_TOPIC", default_value = DEFAULT_OFFSETS_TOPIC)]
        offsets_topic: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(args.command)) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "tributary-worker failed");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            config,
            offsets_topic,
            status_topic,
            http_addr,
            status_interval_seconds,
        } => {
            let stream = config.load_stream()?;
            let http_addr: Option<SocketAddr> = match http_addr.as_str() {
                "off" => None,
                addr => Some(
                    addr.parse()
                        .with_context(|| format!("--http-addr {addr}: expected host:port or off"))?,
                ),
            };
            let settings = RunSettings {
                offsets_topic,
                status_topic,
                http_addr,
                status_interval: Duration::from_secs(status_interval_seconds.max(1)),
                worker_name: std::env::var("HOSTNAME").unwrap_or_else(|_| "standalone".to_owned()),
                telemetry: None,
            };
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            if let Some(stream) = stream {
                tracing::info!(stream = %stream.id, version = tributary_worker::VERSION, "starting");
                run_following_state(&config, stream, settings, shutdown).await?;
                return Ok(ExitCode::SUCCESS);
            }
            let loaded = config.load()?;
            tracing::info!(connector = %loaded.id, version = tributary_worker::VERSION, "starting");
            // Boxed: the connector run is a large future (clippy::large_futures).
            Box::pin(run_following_state(&config, loaded, settings, shutdown)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { config } => {
            if let Some(stream) = config.load_stream()? {
                tracing::info!(stream = %stream.id, output = %stream.output_topic, "configuration is valid");
                #[allow(clippy::print_stdout)] // the plan is validate's output for a stream
                {
                    print!("{}", stream.plan.explain());
                }
                return Ok(ExitCode::SUCCESS);
            }
            let config = config.load()?;
            tracing::info!(connector = %config.id, "configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Command::DropSlot {
            config,
            publication,
            offsets_topic,
        } => {
            let config = config.load()?;
            let Role::Source(Source::Postgres(pg)) = &config.role else {
                anyhow::bail!(
                    "drop-slot: spec.source.postgres is not set; only Postgres sources have a slot"
                );
            };
            let client = postgres::connect(pg).await?;
            let done = postgres::setup::drop_slot(&client, pg, publication).await?;
            if done.is_empty() {
                tracing::info!(slot = %pg.spec.slot_name, "nothing to drop");
            }
            for line in done {
                tracing::info!("{line}");
            }
            let producer = delivery::producer(&config.kafka, &PipelineSettings::default())?;
            StateTopic::new(config.kafka.clone(), &offsets_topic)
                .clear(&producer, &config.id)
                .await?;
            tracing::info!(connector = %config.id, topic = %offsets_topic, "offsets cleared");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `run` runs between pauses: a connector or a stream.
trait Workload {
    /// Runs until `stop` is cancelled or the work is done.
    async fn run(&self, settings: &RunSettings, stop: CancellationToken) -> anyhow::Result<Outcome>;
    /// Writes `state` to the status topic (no run is writing it then).
    async fn report_state(&self, settings: &RunSettings, telemetry: &Telemetry, state: &str);
    /// Reads the config files again: the resource may have changed while paused.
    fn reload(args: &ConfigArgs) -> anyhow::Result<Self>
    where
        Self: Sized;
}

impl Workload for config::WorkerConfig {
    async fn run(&self, settings: &RunSettings, stop: CancellationToken) -> anyhow::Result<Outcome> {
        Ok(Box::pin(runner::run(self, settings, stop)).await?)
    }

    async fn report_state(&self, settings: &RunSettings, _: &Telemetry, state: &str) {
        runner::report_state(self, settings, state).await;
    }

    fn reload(args: &ConfigArgs) -> anyhow::Result<Self> {
        args.load()
    }
}

impl Workload for stream::config::StreamConfig {
    async fn run(&self, settings: &RunSettings, stop: CancellationToken) -> anyhow::Result<Outcome> {
        Ok(stream::run(self, settings, stop).await?)
    }

    async fn report_state(&self, settings: &RunSettings, telemetry: &Telemetry, state: &str) {
        stream::report_state(self, settings, telemetry, state).await;
    }

    fn reload(args: &ConfigArgs) -> anyhow::Result<Self> {
        args.load_stream()?
            .context("the config files no longer hold a Stream")
    }
}

/// Runs a connector or stream until stopped or completed, following
/// `spec.state` in its config files: not `Running` → the run stops
/// (everything acknowledged is committed; a stream's open transaction too)
/// and the worker waits, still serving its health endpoint, until `Running`
/// again, then reloads the config and runs again from the committed offsets.
async fn run_following_state<W: Workload>(
    args: &ConfigArgs,
    mut workload: W,
    settings: RunSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let telemetry = Arc::new(Telemetry::default());
    if let Some(addr) = settings.http_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        drop(listener); // bound once to report a clear error early
        let served = Arc::clone(&telemetry);
        tokio::spawn(async move {
            if let Err(error) = telemetry::serve(addr, served).await {
                tracing::error!(%error, "telemetry endpoint stopped");
            }
        });
    }
    let settings = RunSettings {
        http_addr: None,
        telemetry: Some(Arc::clone(&telemetry)),
        ..settings
    };
    let mut desired = lifecycle::follow(args.files.clone(), STATE_POLL);
    loop {
        if *desired.borrow() != DesiredState::Running {
            telemetry.set_state("Paused");
            workload.report_state(&settings, &telemetry, "Paused").await;
            tracing::info!("paused (spec.state)");
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                changed = desired.wait_for(|s| *s == DesiredState::Running) => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
            }
            tracing::info!("resuming (spec.state: Running)");
            workload = W::reload(args)?;
            continue;
        }
        let run = shutdown.child_token();
        let pause = {
            let (run, mut desired) = (run.clone(), desired.clone());
            tokio::spawn(async move {
                if desired.wait_for(|s| *s != DesiredState::Running).await.is_ok() {
                    run.cancel();
                }
            })
        };
        let outcome = workload.run(&settings, run).await;
        pause.abort();
        match outcome? {
            Outcome::Completed => {
                tracing::info!("completed");
                return Ok(());
            }
            Outcome::Stopped if shutdown.is_cancelled() => {
                tracing::info!("stopped");
                return Ok(());
            }
            Outcome::Stopped => {} // paused: loop
        }
    }
}

/// How often `spec.state` is re-read from the mounted config.
const STATE_POLL: Duration = Duration::from_secs(2);

async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("stop requested");
    shutdown.cancel();
}
