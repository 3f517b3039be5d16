//! `tributary-worker`: the process that runs one connector or stream.

use clap::Parser;

/// Command line of the worker.
#[derive(Debug, Parser)]
#[command(name = "tributary-worker", version, about)]
struct Args {
    /// Log as JSON lines (for log collectors) instead of human-readable text.
    #[arg(long, env = "TRIBUTARY_LOG_JSON")]
    log_json: bool,
}

fn main() {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    tracing::info!(api_version = %tributary_api::api_version(), "tributary-worker");
}
