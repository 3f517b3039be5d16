//! Runs the kubelet harness until Ctrl-C or SIGTERM, for demos and manual
//! checks: pods on kwok's nodes whose image names a workspace binary run as
//! local processes (see `tributary_e2e::kubelet`).
//!
//! ```sh
//! cargo run -p tributary-e2e --example kubelet              # all namespaces
//! cargo run -p tributary-e2e --example kubelet -- demo ns2  # only these
//! ```
//!
//! Each namespace must be served by one harness only: do not run this for
//! all namespaces while e2e tests (which start their own) run.

// A small program at the edge: errors end it with a message.
#![allow(clippy::print_stderr)]

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::signal::unix::{SignalKind, signal};
use tributary_e2e::kubelet::{Kubelet, KubeletConfig};
use tributary_testkit::Endpoints;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let endpoints = Endpoints::from_env();
    let kubeconfig = Kubeconfig::read_from(&endpoints.kubeconfig)
        .with_context(|| format!("reading {}", endpoints.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    let namespaces: Vec<String> = std::env::args().skip(1).collect();
    let kubelet = Kubelet::start(client, KubeletConfig::for_namespaces(namespaces)).await?;
    eprintln!(
        "kubelet harness running (Ctrl-C stops it and its processes); pod logs in {}",
        kubelet.config().work_dir.join("logs").display()
    );
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    kubelet.shutdown().await;
    Ok(())
}
