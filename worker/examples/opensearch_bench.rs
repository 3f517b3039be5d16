//! OpenSearch sink benchmark, side by side in one run on the same Kafka and
//! OpenSearch node:
//!
//! - a raw `_bulk` loader: the same documents, pre-serialised as NDJSON bodies
//!   of 1,000 `index` actions, posted with 2 requests in flight (the sink's
//!   default `maxInFlight`) — the node's limit for this shape of write;
//! - `tributary-worker` (release build) as its own process, reading the same
//!   records from a Kafka topic (4 partitions, JSON) with its defaults
//!   (batches of 1,000 records / 5 MiB, 2 in flight).
//!
//! Docs/s = N / time until the index holds N documents (`_count` after
//! `_refresh`, polled every 100 ms); the sink is timed from the first
//! document indexed, so process start-up and the group join are excluded.
//! Peak RSS is the worker's `VmHWM`.
//!
//! Run with `make bench-sink-opensearch` (needs `make infra-kafka
//! infra-opensearch`). Args: `[RECORDS]` (default 200,000).

// A benchmark program: it prints, fails loudly, and reads top to bottom as one script.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::too_many_lines,
    clippy::cast_precision_loss
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use tributary_testkit::{Endpoints, unique_name};

const BATCH: usize = 1000;
const IN_FLIGHT: usize = 2;

fn document(id: usize) -> Value {
    let region = ["eu", "us", "apac"][id % 3];
    json!({
        "rating_id": id,
        "customer_id": id % 10_000,
        "product_id": id % 500,
        "region": region,
        "rating": id % 5 + 1,
        "comment": "a bike that rides well, fast delivery, would buy again",
        "ts": 1_764_000_000_000_u64 + id as u64,
    })
}

async fn count(http: &reqwest::Client, base: &str, index: &str) -> u64 {
    let _ = http.post(format!("{base}/{index}/_refresh")).send().await;
    let Ok(answer) = http.get(format!("{base}/{index}/_count")).send().await else {
        return 0;
    };
    answer
        .json::<Value>()
        .await
        .ok()
        .and_then(|v| v["count"].as_u64())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let records: usize = std::env::args()
        .nth(1)
        .map_or(200_000, |n| n.parse().expect("RECORDS is a number"));
    let endpoints = Endpoints::from_env();
    let base = endpoints.opensearch_url.clone();
    let http = reqwest::Client::new();
    let name = unique_name("os-bench");

    // 1. The raw loader.
    let raw_index = format!("{name}-raw");
    let bodies: Vec<Vec<u8>> = (0..records)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|ids| {
            let mut body = Vec::new();
            for id in ids {
                serde_json::to_writer(
                    &mut body,
                    &json!({"index": {"_index": raw_index, "_id": id.to_string()}}),
                )
                .unwrap();
                body.push(b'\n');
                serde_json::to_writer(&mut body, &document(*id)).unwrap();
                body.push(b'\n');
            }
            body
        })
        .collect();
    let started = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut bodies = bodies.into_iter();
    loop {
        while pending.len() < IN_FLIGHT {
            let Some(body) = bodies.next() else { break };
            let request = http
                .post(format!("{base}/_bulk"))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send();
            pending.push(request);
        }
        let Some(answer) = futures::StreamExt::next(&mut pending).await else {
            break;
        };
        let answer: Value = answer.unwrap().json().await.unwrap();
        assert_eq!(answer["errors"], false, "raw bulk failed");
    }
    let raw_seconds = started.elapsed().as_secs_f64();
    assert_eq!(count(&http, &base, &raw_index).await, records as u64);
    let raw_rate = records as f64 / raw_seconds;

    // 2. The sink: produce the records, then run the release worker.
    let topic = format!("{name}-ratings");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &endpoints.kafka_bootstrap)
        .create()
        .unwrap();
    admin
        .create_topics(
            &[NewTopic::new(&topic, 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &endpoints.kafka_bootstrap)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    for ids in (0..records).collect::<Vec<_>>().chunks(10_000) {
        let encoded: Vec<(String, Vec<u8>)> = ids
            .iter()
            .map(|id| (id.to_string(), serde_json::to_vec(&document(*id)).unwrap()))
            .collect();
        let sends: Vec<_> = encoded
            .iter()
            .map(|(key, value)| {
                producer.send(
                    FutureRecord::to(&topic).key(key).payload(value),
                    Duration::from_mins(1),
                )
            })
            .collect();
        for sent in futures::future::join_all(sends).await {
            sent.unwrap();
        }
    }
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("connector.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: {name}\nspec:\n  format:\n    key: json\n    value: json\n  sink:\n    topics: [{topic}]\n    opensearch:\n      url: {base}\n"
        ),
    )
    .unwrap();
    let worker_exe = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("tributary-worker");
    let mut worker = Command::new(&worker_exe)
        .args(["run", "-f"])
        .arg(&config)
        .args(["--bootstrap-servers", &endpoints.kafka_bootstrap])
        .args(["--http-addr", "off"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (build it with cargo build --release)",
                worker_exe.display()
            )
        });
    let sink_index = topic.to_lowercase();
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_mins(20);
    let mut peak_rss_kib = 0_u64;
    loop {
        let n = count(&http, &base, &sink_index).await;
        if n > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", worker.id())) {
            for line in status.lines() {
                if let Some(kib) = line.strip_prefix("VmHWM:") {
                    peak_rss_kib = kib.trim().trim_end_matches(" kB").parse().unwrap_or(0);
                }
            }
        }
        if n >= records as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "sink stuck at {n} documents");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sink_seconds = first.unwrap().elapsed().as_secs_f64();
    let sink_rate = records as f64 / sink_seconds;
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
    for index in [&raw_index, &sink_index] {
        let _ = http.delete(format!("{base}/{index}")).send().await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!("| measure | result |");
    println!("|---|---|");
    println!("| documents | {records} (JSON, ~230 bytes each) |");
    println!(
        "| raw `_bulk` loader, {BATCH}/request, {IN_FLIGHT} in flight (the limit) | {raw_seconds:.1} s, {raw_rate:.0} docs/s |"
    );
    println!(
        "| tributary-worker OpenSearch sink (Kafka → OpenSearch, defaults) | {sink_seconds:.1} s, {sink_rate:.0} docs/s: **{:.0} % of the limit** |",
        100.0 * sink_rate / raw_rate
    );
    println!("| worker peak RSS | {:.1} MiB |", peak_rss_kib as f64 / 1024.0);
}
