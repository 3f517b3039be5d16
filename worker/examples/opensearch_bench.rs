//! OpenSearch sink benchmark, side by side in one run on the same Kafka and
//! OpenSearch node, in alternating rounds (raw, sink, raw, sink, …), each
//! into a fresh index:
//!
//! - a raw `_bulk` loader: the same documents, pre-serialised as NDJSON bodies
//!   of 1,000 `index` actions, posted with 2 requests in flight — the node's
//!   limit for this shape of write;
//! - `tributary-worker` (release build) as its own process, reading the same
//!   records from a Kafka topic (4 partitions, JSON, produced once) with the
//!   same batch shape: 1,000 records per `_bulk`, 2 in flight (its defaults),
//!   a new consumer group each round.
//!
//! Both are timed the same way, by acknowledged writes, without touching
//! the index while they run: the loader from its first request to its last
//! answer; the sink from its first offset commit to the commit of the last
//! record (the group's committed offsets, polled every 50 ms), counting the
//! records committed in between (so start-up, the group join and the first
//! batch are excluded). Each round then checks the index holds all N
//! documents. Reported: every round, the medians, and the median ratio.
//! Peak RSS is the worker's `VmHWM`, the largest over its rounds.
//!
//! Run with `make bench-sink-opensearch` (needs `make infra-kafka
//! infra-opensearch`). Args: `[RECORDS] [ROUNDS]` (default 200,000 and 3).

// A benchmark program: it prints, fails loudly, and reads top to bottom as one script.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::too_many_lines,
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
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

/// Posts `records` documents into `index` through `_bulk`; returns the
/// seconds from the first request to the last answer.
async fn raw_round(http: &reqwest::Client, base: &str, index: &str, records: usize) -> f64 {
    let bodies: Vec<Vec<u8>> = (0..records)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|ids| {
            let mut body = Vec::new();
            for id in ids {
                serde_json::to_writer(
                    &mut body,
                    &json!({"index": {"_index": index, "_id": id.to_string()}}),
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
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(count(http, base, index).await, records as u64);
    seconds
}

/// Records of `topic` (4 partitions) committed by `group`.
fn committed(consumer: &BaseConsumer, topic: &str) -> i64 {
    let mut list = TopicPartitionList::new();
    for partition in 0..4 {
        list.add_partition(topic, partition);
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .map_or(0, |list| {
            list.elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(n) => n,
                    _ => 0,
                })
                .sum()
        })
}

struct SinkRound {
    seconds: f64,
    /// Records committed between the first commit and the last.
    timed_records: i64,
    peak_rss_kib: u64,
}

/// Runs the release worker on `topic` into index `name`-lowercased; times
/// it by its offset commits.
async fn sink_round(
    endpoints: &Endpoints,
    http: &reqwest::Client,
    dir: &std::path::Path,
    name: &str,
    topic: &str,
    records: usize,
) -> SinkRound {
    let base = &endpoints.opensearch_url;
    let index = name.to_lowercase();
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: {name}\nspec:\n  format:\n    key: json\n    value: json\n  sink:\n    topics: [{topic}]\n    batch:\n      maxRecords: {BATCH}\n      maxInFlight: {IN_FLIGHT}\n    opensearch:\n      url: {base}\n      index: {index}\n"
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
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &endpoints.kafka_bootstrap)
        .set("group.id", format!("tributary-{name}"))
        .create()
        .unwrap();
    let mut first: Option<(Instant, i64)> = None;
    let deadline = Instant::now() + Duration::from_mins(20);
    let mut peak_rss_kib = 0_u64;
    let last = loop {
        let done = committed(&consumer, topic);
        let now = Instant::now();
        if done > 0 && first.is_none() {
            first = Some((now, done));
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", worker.id())) {
            for line in status.lines() {
                if let Some(kib) = line.strip_prefix("VmHWM:") {
                    peak_rss_kib = kib.trim().trim_end_matches(" kB").parse().unwrap_or(0);
                }
            }
        }
        if done >= records as i64 {
            break now;
        }
        assert!(Instant::now() < deadline, "sink stuck at {done} records");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (start, at_start) = first.unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
    assert_eq!(count(http, base, &index).await, records as u64);
    SinkRound {
        seconds: (last - start).as_secs_f64(),
        timed_records: records as i64 - at_start,
        peak_rss_kib,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let records: usize = args
        .next()
        .map_or(200_000, |n| n.parse().expect("RECORDS is a number"));
    let rounds: usize = args.next().map_or(3, |n| n.parse().expect("ROUNDS is a number"));
    let endpoints = Endpoints::from_env();
    let base = endpoints.opensearch_url.clone();
    let http = reqwest::Client::new();
    let name = unique_name("os-bench");
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();

    // The records, once, for every sink round.
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

    println!("| round | raw `_bulk` loader | tributary-worker sink | sink / raw | worker peak RSS |");
    println!("|---|---|---|---|---|");
    let (mut raw_rates, mut sink_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut peak_rss_kib = 0;
    for round in 1..=rounds {
        let raw_index = format!("{name}-raw-{round}");
        let raw_seconds = raw_round(&http, &base, &raw_index, records).await;
        let raw_rate = records as f64 / raw_seconds;
        let sink_name = format!("{name}-sink-{round}");
        let sink = sink_round(&endpoints, &http, &dir, &sink_name, &topic, records).await;
        let sink_rate = sink.timed_records as f64 / sink.seconds;
        for index in [raw_index, sink_name.to_lowercase()] {
            let _ = http.delete(format!("{base}/{index}")).send().await;
        }
        println!(
            "| {round} | {raw_seconds:.1} s, {raw_rate:.0} docs/s | {:.1} s for {} records, {sink_rate:.0} docs/s | {:.0} % | {:.1} MiB |",
            sink.seconds,
            sink.timed_records,
            100.0 * sink_rate / raw_rate,
            sink.peak_rss_kib as f64 / 1024.0
        );
        raw_rates.push(raw_rate);
        sink_rates.push(sink_rate);
        ratios.push(sink_rate / raw_rate);
        peak_rss_kib = peak_rss_kib.max(sink.peak_rss_kib);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = admin.delete_topics(&[&topic], &AdminOptions::new()).await;
    println!(
        "| **median** of {rounds} ({records} documents, ~230 bytes of JSON, {BATCH} per `_bulk`, {IN_FLIGHT} in flight) | {:.0} docs/s | {:.0} docs/s | **{:.0} %** | {:.1} MiB (max) |",
        median(&mut raw_rates),
        median(&mut sink_rates),
        100.0 * median(&mut ratios),
        peak_rss_kib as f64 / 1024.0
    );
}
