//! Operator benchmark: applies N `Topic` resources (default 1000) to the real
//! control plane with the release operator running as its own process, and
//! prints how long until every Topic is Ready, apply→Ready latency
//! percentiles for the burst and for single applies with N present, the
//! operator's reconcile p99 (from its own histogram) and its peak RSS.
//!
//! Run with `make bench-operator` (builds the release operator first).

// A benchmark program: it prints, fails loudly, and reads top to bottom as one script.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::too_many_lines,
    clippy::manual_assert,
    clippy::cast_precision_loss
)]

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, ResourceExt};
use tokio::sync::Mutex;
use tributary_api::Topic;
use tributary_testkit::{Endpoints, unique_name};

const METRICS_ADDR: &str = "127.0.0.1:18090";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn is_ready(topic: &Topic) -> bool {
    topic.status.as_ref().is_some_and(|s| {
        s.observed_generation == topic.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// p99 of the operator's reconcile histogram (upper bound of the bucket).
fn reconcile_p99(metrics: &str) -> String {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in metrics.lines() {
        if line.starts_with("tributary_operator_reconcile_duration_seconds_bucket{")
            && line.contains("controller=\"topic\"")
            && let Some(rest) = line.split("le=\"").nth(1)
        {
            let (le, rest) = rest.split_once('"').unwrap();
            let count = rest.rsplit(' ').next().unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            buckets.push((le, count.trim().parse().unwrap()));
        }
    }
    let Some(&(_, total)) = buckets.last() else {
        return "n/a".into();
    };
    let target = total * 0.99;
    let le = buckets
        .iter()
        .find(|(_, c)| *c >= target)
        .map_or(f64::INFINITY, |(le, _)| *le);
    format!("≤ {:.0} ms over {total} reconciles", le * 1000.0)
}

async fn client(endpoints: &Endpoints) -> Client {
    let kubeconfig = Kubeconfig::read_from(&endpoints.kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// Creates `count` topics directly with the Admin API, 16 in flight, then deletes them.
async fn raw_creates(endpoints: &Endpoints, count: usize) -> Duration {
    use tributary_kafka::{KafkaAdmin, KafkaConnection};
    let admin = Arc::new(
        KafkaAdmin::new(
            &KafkaConnection::plaintext(&endpoints.kafka_bootstrap),
            Duration::from_secs(30),
        )
        .unwrap(),
    );
    let prefix = unique_name("raw");
    let configs: std::collections::BTreeMap<String, String> =
        [("retention.ms".to_owned(), "3600000".to_owned())].into();
    let started = Instant::now();
    futures::stream::iter(0..count)
        .for_each_concurrent(16, |i| {
            let (admin, name, configs) = (admin.clone(), format!("{prefix}-{i:04}"), configs.clone());
            async move { admin.create_topic(&name, 1, None, &configs).await.unwrap() }
        })
        .await;
    let took = started.elapsed();
    futures::stream::iter(0..count)
        .for_each_concurrent(16, |i| {
            let (admin, name) = (admin.clone(), format!("{prefix}-{i:04}"));
            async move { admin.delete_topic(&name).await.unwrap() }
        })
        .await;
    took
}

/// Applies crds/ (the control plane may have been restarted empty).
async fn install_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    for entry in std::fs::read_dir(dir).unwrap() {
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("tributary-bench").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // let the new APIs be served
}

fn start_operator(endpoints: &Endpoints, namespace: &str) -> Child {
    let binary = std::env::var("TRIBUTARY_OPERATOR_BIN").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR")));
        format!("{target}/release/tributary-operator")
    });
    Command::new(&binary)
        .env("KUBECONFIG", &endpoints.kubeconfig)
        .env("RUST_LOG", "warn")
        .args([
            "--leader-election",
            "false",
            "--watch-namespace",
            namespace,
            "--metrics-addr",
            METRICS_ADDR,
        ])
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting {binary}: {e} (build it with cargo build --release -p tributary-operator)")
        })
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let endpoints = Endpoints::from_env();
    let client = client(&endpoints).await;
    install_crds(&client).await;
    let namespace = unique_name("bench");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some(namespace.clone());
    namespaces.create(&PostParams::default(), &ns).await.unwrap();
    let apply = PatchParams::apply("tributary-bench").force();
    let clusters: Api<tributary_api::KafkaCluster> = Api::namespaced(client.clone(), &namespace);
    let cluster: tributary_api::KafkaCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "tributary.dev/v1alpha1", "kind": "KafkaCluster", "metadata": {"name": "main"},
        "spec": {"bootstrapServers": [endpoints.kafka_bootstrap]}
    }))
    .unwrap();
    clusters
        .patch("main", &apply, &Patch::Apply(&cluster))
        .await
        .unwrap();

    // The physical limit: the same creates straight through the Admin API.
    let raw = raw_creates(&endpoints, count).await;

    let mut operator = start_operator(&endpoints, &namespace);
    let topics: Api<Topic> = Api::namespaced(client.clone(), &namespace);
    let prefix = unique_name("bench");

    // Watch for Ready transitions; remember when each Topic was applied.
    let applied: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    let watcher_task = {
        let (topics, applied, latencies) = (topics.clone(), applied.clone(), latencies.clone());
        tokio::spawn(async move {
            let mut stream = watcher(topics, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Ok(Some(topic)) = stream.try_next().await {
                if is_ready(&topic) {
                    let name = topic.name_any();
                    let mut latencies = latencies.lock().await;
                    if !latencies.contains_key(&name)
                        && let Some(at) = applied.lock().await.get(&name)
                    {
                        latencies.insert(name, at.elapsed());
                    }
                }
            }
        })
    };

    let topic_manifest = |name: &str| -> Topic {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tributary.dev/v1alpha1", "kind": "Topic", "metadata": {"name": name},
            "spec": {"topicName": format!("{prefix}-{name}"), "partitions": 1, "deletionPolicy": "Delete",
                     "configs": {"retention.ms": "3600000"}}
        }))
        .unwrap()
    };

    // Phase 1: a burst of `count` applies, 16 in flight.
    let started = Instant::now();
    futures::stream::iter(0..count)
        .for_each_concurrent(16, |i| {
            let (topics, applied, apply, manifest) = (
                topics.clone(),
                applied.clone(),
                apply.clone(),
                topic_manifest(&format!("t{i:04}")),
            );
            async move {
                let name = manifest.name_any();
                applied.lock().await.insert(name.clone(), Instant::now());
                topics
                    .patch(&name, &apply, &Patch::Apply(&manifest))
                    .await
                    .unwrap();
            }
        })
        .await;
    let applied_in = started.elapsed();
    loop {
        if latencies.lock().await.len() >= count {
            break;
        }
        if started.elapsed() > Duration::from_mins(15) {
            panic!(
                "only {} of {count} Topics Ready after 15 minutes",
                latencies.lock().await.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_ready = started.elapsed();
    let mut burst: Vec<Duration> = latencies.lock().await.values().copied().collect();
    burst.sort();

    // Phase 2: with `count` Topics present, 30 single applies one after another.
    let mut single = Vec::new();
    for i in 0..30 {
        let name = format!("s{i:04}");
        applied.lock().await.insert(name.clone(), Instant::now());
        topics
            .patch(&name, &apply, &Patch::Apply(&topic_manifest(&name)))
            .await
            .unwrap();
        let at = Instant::now();
        loop {
            if let Some(latency) = latencies.lock().await.get(&name) {
                single.push(*latency);
                break;
            }
            assert!(
                at.elapsed() < Duration::from_mins(2),
                "{name} not Ready within 2 minutes"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    single.sort();

    let metrics = reqwest::get(format!("http://{METRICS_ADDR}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rss = peak_rss_mib(operator.id());
    let ready_topics = topics
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|t| is_ready(t))
        .count();

    println!("operator benchmark: {count} Topic resources on a real kube-apiserver + Kafka (release build)");
    println!(
        "  burst: {count} applies (16 in flight) sent in {:.1} s; all Ready after {:.1} s ({:.0} Topics/s)",
        applied_in.as_secs_f64(),
        all_ready.as_secs_f64(),
        count as f64 / all_ready.as_secs_f64()
    );
    println!(
        "  limit: {count} creates straight through the Admin API (16 in flight): {:.1} s ({:.0} topics/s); \
         the operator's burst reaches {:.0}% of that rate",
        raw.as_secs_f64(),
        count as f64 / raw.as_secs_f64(),
        100.0 * raw.as_secs_f64() / all_ready.as_secs_f64()
    );
    println!(
        "  burst apply→Ready latency: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&burst, 0.5).as_secs_f64() * 1e3,
        percentile(&burst, 0.99).as_secs_f64() * 1e3,
        burst.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  single apply→Ready with {count} present (30 samples): p50 {:.0} ms, p99 {:.0} ms (target ≤ 1000 ms)",
        percentile(&single, 0.5).as_secs_f64() * 1e3,
        percentile(&single, 0.99).as_secs_f64() * 1e3
    );
    println!("  operator reconcile duration p99: {}", reconcile_p99(&metrics));
    println!("  operator peak RSS: {rss:.1} MiB (target ≤ 50 MiB); Ready now: {ready_topics}");

    // Clean up: deleting the Topics deletes the Kafka topics (deletionPolicy Delete).
    topics
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    let at = Instant::now();
    while !topics
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
        && at.elapsed() < Duration::from_mins(5)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    watcher_task.abort();
    let _ = operator.kill();
    let _ = operator.wait();
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .unwrap();
}
