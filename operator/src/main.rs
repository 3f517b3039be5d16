//! `tributary-operator`: connects to the Kubernetes API and runs Tributary's
//! controllers until it is asked to stop.

use anyhow::Context as _;
use clap::Parser;

/// Command line of the operator.
#[derive(Debug, Parser)]
#[command(name = "tributary-operator", version, about)]
struct Args {
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
    let server = client
        .apiserver_version()
        .await
        .context("asking the API server for its version")?;
    tracing::info!(
        api_group = tributary_api::GROUP,
        server_version = %server.git_version,
        "operator connected"
    );

    tokio::signal::ctrl_c()
        .await
        .context("waiting for a shutdown signal")?;
    tracing::info!("shutting down");
    Ok(())
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
