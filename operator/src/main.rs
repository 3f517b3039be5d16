//! `tributary-operator`: runs Tributary's controllers against the Kubernetes
//! API, behind a leader-election Lease, with metrics and health endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use futures::FutureExt;
use tributary_operator::context::{Context, Settings};
use tributary_operator::metrics::{self, Metrics};
use tributary_operator::{controller, leader};

/// Command line of the operator.
#[derive(Debug, Parser)]
#[command(name = "tributary-operator", version, about)]
struct Args {
    /// Address of the `/metrics`, `/healthz` and `/readyz` endpoints.
    #[arg(long, env = "TRIBUTARY_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Take part in leader election, so only one replica reconciles at a time.
    #[arg(long, env = "TRIBUTARY_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the leader-election Lease (normally the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Identity in the Lease (normally the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds between re-checks of healthy resources (drift detection).
    #[arg(long, env = "TRIBUTARY_RESYNC_SECONDS", default_value_t = 60)]
    resync_seconds: u64,
    /// Timeout of one request to Kafka or the schema registry, in seconds.
    #[arg(long, env = "TRIBUTARY_REQUEST_TIMEOUT_SECONDS", default_value_t = 10)]
    request_timeout_seconds: u64,
    /// Watch only this namespace (for a namespaced install); default: all namespaces.
    #[arg(long, env = "TRIBUTARY_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Reconciles in flight per controller.
    #[arg(long, env = "TRIBUTARY_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
    /// Worker image of Connectors and Streams that name none in `spec.template.image`.
    #[arg(long, env = "TRIBUTARY_WORKER_IMAGE", default_value_t = tributary_operator::context::default_worker_image())]
    worker_image: String,
    /// The compacted topic workers report their status to.
    #[arg(long, env = "TRIBUTARY_STATUS_TOPIC", default_value = tributary_kafka::DEFAULT_STATUS_TOPIC)]
    status_topic: String,
    /// Seconds between observations of a running Connector or Stream (lag, throughput).
    #[arg(long, env = "TRIBUTARY_STATUS_INTERVAL_SECONDS", default_value_t = 15)]
    status_interval_seconds: u64,
    /// Log as JSON lines (for log collectors) instead of human-readable text.
    #[arg(long, env = "TRIBUTARY_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(args.log_json);

    // Reads KUBECONFIG, ~/.kube/config or the in-cluster service account.
    let client = kube::Client::try_default()
        .await
        .context("building the Kubernetes client")?;
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    };
    let server = tokio::spawn(metrics::serve(metrics.clone(), args.metrics_addr, stopped));
    // Ready once connected: a standby replica is healthy too, and must not
    // block a Deployment's rollout while it waits for the lease.
    metrics.set_ready(true);

    // SIGTERM (Kubernetes) or Ctrl-C: stop gracefully.
    let signal_tx = stop_tx.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        let _ = signal_tx.send(true);
    });

    let leadership = if args.leader_election {
        let identity = args.identity.clone().unwrap_or_else(default_identity);
        let mut stop_rx = stop_rx.clone();
        tokio::select! {
            acquired = leader::acquire(client.clone(), &args.lease_namespace, &identity) => {
                Some(acquired.context("joining leader election")?)
            }
            _ = stop_rx.wait_for(|stop| *stop) => None,
        }
    } else {
        None
    };
    if *stop_rx.borrow() {
        return Ok(());
    }
    metrics.set_leader(true);

    // Losing the lease stops the controllers like a shutdown does.
    let lost_watch = leadership.as_ref().map(|leadership| {
        let lost = leadership.lost();
        let lost_tx = stop_tx.clone();
        tokio::spawn(async move {
            lost.await;
            tracing::warn!("lost leadership; stopping controllers");
            let _ = lost_tx.send(true);
        })
    });

    let settings = Settings {
        resync: Duration::from_secs(args.resync_seconds),
        request_timeout: Duration::from_secs(args.request_timeout_seconds),
        namespace: args.watch_namespace.clone(),
        concurrency: args.concurrency,
        worker_image: args.worker_image.clone(),
        status_topic: args.status_topic.clone(),
        status_interval: Duration::from_secs(args.status_interval_seconds.max(1)),
        ..Settings::default()
    };
    let context = Context::new(client, metrics.clone(), settings);
    let shutdown = {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
        .boxed()
        .shared()
    };
    tracing::info!(api_group = tributary_api::GROUP, "controllers starting");
    controller::run_all(context, shutdown).await;
    tracing::info!("controllers stopped");

    metrics.set_ready(false);
    metrics.set_leader(false);
    if let Some(watch) = lost_watch {
        watch.abort();
    }
    if let Some(leadership) = leadership {
        // Releasing lets a standby take over at once instead of after the
        // lease expires; do not hang shutdown on it.
        if tokio::time::timeout(Duration::from_secs(5), leadership.release())
            .await
            .is_err()
        {
            tracing::warn!("releasing the lease timed out; a standby takes over when it expires");
        }
    }
    let _ = stop_tx.send(true);
    server
        .await
        .context("metrics server task")?
        .context("metrics server")?;
    Ok(())
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".to_owned());
    format!("{host}-{}", std::process::id())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
