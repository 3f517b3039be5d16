//! `tributary-kubelet`: the e2e kubelet harness as a long-running process,
//! for the demo (`make demo`) and for trying manifests by hand on the local
//! control plane. Runs the pods scheduled on kwok's fake nodes in the given
//! namespaces as real processes until SIGTERM or Ctrl-C.
//!
//! ```sh
//! KUBECONFIG=~/.cache/tributary/run/kubeconfig \
//!   cargo run -p tributary-e2e --bin tributary-kubelet -- --namespace tributary-system --namespace demo
//! ```

use std::process::ExitCode;

use tributary_e2e::kubelet::{Kubelet, KubeletConfig};

fn namespaces() -> Result<Vec<String>, String> {
    let mut args = std::env::args().skip(1);
    let mut namespaces = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--namespace" | "-n" => namespaces.push(args.next().ok_or("--namespace needs a value")?),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: tributary-kubelet --namespace <ns>..."
                ));
            }
        }
    }
    if namespaces.is_empty() {
        return Err(
            "name at least one --namespace: pods elsewhere (other tests) are not this process's".to_owned(),
        );
    }
    Ok(namespaces)
}

async fn run(namespaces: Vec<String>) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("Kubernetes client (KUBECONFIG): {e}"))?;
    let config = KubeletConfig::for_namespaces(namespaces.clone()).fast();
    let kubelet = Kubelet::start(client, config)
        .await
        .map_err(|e| format!("starting the kubelet harness: {e}"))?;
    tracing::info!(?namespaces, "running pods of kwok nodes as processes");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping every process it started");
    kubelet.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match namespaces() {
        Ok(namespaces) => run(namespaces).await,
        Err(message) => Err(message),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}
