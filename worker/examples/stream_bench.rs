//! Stream benchmark, side by side in one run on the same Kafka: the
//! `tributary-worker` (release build) running a `Stream`, and a Kafka Streams
//! 4.3 application (bench/kstreams, built with Maven and javac) doing the
//! same, each as its own process reading the same input topic with a group of
//! its own:
//!
//! - `filter`: Debezium rating envelopes → alerts for rating < 3 with three
//!   projected columns (one JSON parse and one JSON write per record, both);
//! - `count`: ratings per region per 1-minute tumbling window (10 s grace),
//!   final results only (`EMIT FINAL` / `suppress(untilWindowCloses)`),
//!   through a repartition topic in both.
//!
//! At-least-once for both, commits every second. Timing: from the first
//! commit of input offsets by the group to the moment the input is fully
//! committed and the output complete (polled every 100 ms), counting the input
//! records committed in between, so start-up and the group join are
//! excluded; the total from process start is printed too. Peak RSS is the
//! process's `VmHWM` (the JVM's whole process for Kafka Streams).
//!
//! Per core: the CPU time (user + system, all threads: for the JVM its JIT
//! and garbage collector too) each process used over the same steady
//! window, from `/proc/PID/stat`, and the events processed per CPU-second.
//! Wall-clock rates on a shared or virtual machine move with whatever else
//! runs (CPU steal); CPU time per event moves far less.
//!
//! Run with `make bench-stream`. Args: `[RECORDS]` (default 5,000,000: at
//! 1M the worker's steady window is about a second, the same length as the
//! commit interval the timing depends on). `TRIBUTARY_WORKER_BIN` runs
//! another build of the worker (to compare two commits in one run).

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

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use tributary_testkit::{Endpoints, unique_name};

/// One input partition: the worker merges input partitions into its
/// repartition topic in arrival order, so a backlog read partition by
/// partition is out of event-time order by more than the 10 s grace (Kafka
/// Streams orders a task's partitions by timestamp); with one partition both
/// compute the same exact counts.
const PARTITIONS: i32 = 1;
const REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];
/// 2026-12-02T00:00:00Z.
const T0: i64 = 1_796_169_600_000;
/// Event time between ratings.
const STEP_MS: i64 = 10;

#[tokio::main]
async fn main() {
    let records: u64 = std::env::args().nth(1).map_or(5_000_000, |a| a.parse().unwrap());
    let endpoints = Endpoints::from_env();
    let bootstrap = endpoints.kafka_bootstrap.clone();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let build = Command::new("bash")
        .arg(root.join("bench/kstreams/build.sh"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "bench/kstreams/build.sh failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let kstreams_dir = String::from_utf8(build.stdout).unwrap().trim().to_owned();

    let name = unique_name("bench-stream");
    let input = format!("{name}-ratings");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    admin
        .create_topics(
            &[NewTopic::new(&input, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap();

    // The input: Debezium envelopes of ratings, event time in the record timestamp.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .unwrap();
    let mut alerts = 0u64;
    let mut windows = BTreeSet::new();
    let mut seed: u64 = 42;
    let started = Instant::now();
    for i in 0..records {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let region = REGIONS[usize::try_from(seed >> 61).unwrap() % REGIONS.len()];
        let rating = (seed >> 20) % 5 + 1;
        let ts = T0 + i64::try_from(i).unwrap() * STEP_MS;
        if rating < 3 {
            alerts += 1;
        }
        windows.insert((region, ts - ts.rem_euclid(60_000)));
        let value = format!(
            r#"{{"before":null,"after":{{"rating_id":{i},"customer_id":{c},"product_id":{p},"region":"{region}","rating":{rating},"comment":"rating {i}"}},"source":{{"version":"bench","connector":"postgresql","name":"shop","db":"shop","schema":"public","table":"ratings","lsn":{i}}},"op":"c","ts_ms":{ts}}}"#,
            c = i % 1000,
            p = i % 97
        );
        let key = format!(r#"{{"rating_id":{i}}}"#);
        send(&producer, &input, &key, &value, ts);
    }
    // One rating per region an hour later closes every window of the data.
    let end = T0 + i64::try_from(records).unwrap() * STEP_MS + 3_600_000;
    for region in REGIONS {
        let value = format!(r#"{{"after":{{"rating_id":0,"region":"{region}","rating":5}},"op":"c"}}"#);
        send(&producer, &input, "{}", &value, end);
    }
    producer.flush(Duration::from_mins(2)).unwrap();
    let total_input = records + REGIONS.len() as u64;
    println!(
        "input: {records} ratings (+{} closing records) on {PARTITIONS} partitions, produced in {:.1} s; {alerts} alerts, {} region-minute windows expected",
        REGIONS.len(),
        started.elapsed().as_secs_f64(),
        windows.len()
    );

    let mut rows = Vec::new();
    for (query, expected) in [("filter", alerts), ("count", windows.len() as u64)] {
        for engine in ["tributary", "kafka-streams"] {
            let run = format!("{name}-{query}-{engine}");
            let output = format!("{run}-out");
            admin
                .create_topics(
                    &[NewTopic::new(&output, PARTITIONS, TopicReplication::Fixed(1))],
                    &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
                )
                .await
                .unwrap();
            let (child, group) = match engine {
                "tributary" => start_worker(&root, &bootstrap, &run, &input, &output, query),
                _ => start_kstreams(&kstreams_dir, &bootstrap, &run, &input, &output, query),
            };
            let result = measure(child, &bootstrap, &group, &input, total_input, &output, expected);
            println!(
                "{query:>6} {engine:>13}: {:>9.0} events/s (steady), {:>9.0} events per CPU-second ({:.2} CPU s), {:>6.1} s from start, peak RSS {:>4} MiB",
                result.rate,
                result.per_cpu_second,
                result.cpu_seconds,
                result.total.as_secs_f64(),
                result.peak_rss_kib / 1024
            );
            rows.push((query, engine, result));
        }
    }
    println!();
    println!(
        "| query | engine | events/s (steady) | events per CPU-second | seconds from process start | peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    for (query, engine, r) in &rows {
        println!(
            "| {query} | {engine} | {:.0} | {:.0} | {:.1} | {} MiB |",
            r.rate,
            r.per_cpu_second,
            r.total.as_secs_f64(),
            r.peak_rss_kib / 1024
        );
    }
    for query in ["filter", "count"] {
        let of = |engine: &str| {
            rows.iter()
                .find(|(q, e, _)| *q == query && *e == engine)
                .map(|(_, _, r)| r)
                .unwrap()
        };
        let (ours, peer) = (of("tributary"), of("kafka-streams"));
        println!(
            "{query}: tributary / kafka-streams = {:.2}x events/s, {:.2}x events per CPU-second",
            ours.rate / peer.rate,
            ours.per_cpu_second / peer.per_cpu_second
        );
    }
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &str, value: &str, ts: i64) {
    let mut record = BaseRecord::to(topic).key(key).payload(value).timestamp(ts);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, returned)) => {
                record = returned;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn start_worker(
    root: &Path,
    bootstrap: &str,
    run: &str,
    input: &str,
    output: &str,
    query: &str,
) -> (Child, String) {
    let sql = match query {
        "filter" => format!(
            "INSERT INTO \"{output}\" SELECT after.rating_id AS id, after.rating AS rating, UPPER(after.region) AS region FROM \"{input}\" WHERE after.rating < 3"
        ),
        _ => format!(
            "INSERT INTO \"{output}\" SELECT after.region AS region, WINDOWSTART AS window_start, COUNT(*) AS ratings FROM \"{input}\" WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS) GROUP BY after.region EMIT FINAL"
        ),
    };
    let dir = std::env::temp_dir();
    let config = dir.join(format!("{run}.yaml"));
    std::fs::write(
        &config,
        format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Stream\nmetadata:\n  name: {run}\nspec:\n  sql: '{}'\n  topicCreation:\n    partitions: {PARTITIONS}\n",
            sql.replace('\'', "''")
        ),
    )
    .unwrap();
    // Another build (e.g. of an earlier commit, to compare) with TRIBUTARY_WORKER_BIN.
    let exe = std::env::var_os("TRIBUTARY_WORKER_BIN").map_or_else(
        || {
            std::env::current_exe()
                .unwrap()
                .parent()
                .and_then(Path::parent)
                .unwrap()
                .join("tributary-worker")
        },
        std::path::PathBuf::from,
    );
    let _ = root;
    let child = Command::new(&exe)
        .args(["run", "-f"])
        .arg(&config)
        .args(["--bootstrap-servers", bootstrap, "--http-addr", "off"])
        .env("RUST_LOG", "warn")
        .env("HOSTNAME", run)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (build it with cargo build --release)", exe.display()));
    (child, format!("tributary-{run}"))
}

fn start_kstreams(
    dir: &str,
    bootstrap: &str,
    run: &str,
    input: &str,
    output: &str,
    query: &str,
) -> (Child, String) {
    let state = std::env::temp_dir().join(format!("{run}-state"));
    let child = Command::new("java")
        .args([
            "-Xmx1g",
            "-cp",
            &format!("{dir}/libs/*:{dir}/classes"),
            "dev.tributary.bench.StreamsBench",
        ])
        .args([query, bootstrap, input, output, run])
        .arg(&state)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    (child, run.to_owned())
}

struct Measured {
    rate: f64,
    /// CPU time over the steady window.
    cpu_seconds: f64,
    per_cpu_second: f64,
    total: Duration,
    peak_rss_kib: u64,
}

fn measure(
    mut child: Child,
    bootstrap: &str,
    group: &str,
    input: &str,
    total_input: u64,
    output: &str,
    expected: u64,
) -> Measured {
    let started = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut first: Option<(Instant, u64, f64)> = None;
    let mut peak = 0;
    let deadline = started + Duration::from_mins(20);
    let done = loop {
        let committed = committed(&consumer, input);
        let now = Instant::now();
        if committed > 0 && first.is_none() {
            first = Some((now, committed, cpu_seconds(child.id())));
        }
        peak = peak.max(peak_rss_kib(child.id()));
        if committed >= total_input && output_records(&probe, output) >= expected {
            break (now, cpu_seconds(child.id()));
        }
        assert!(
            now < deadline,
            "{group}: {committed} of {total_input} committed after 20 min"
        );
        assert!(child.try_wait().unwrap().is_none(), "{group} exited early");
        std::thread::sleep(Duration::from_millis(100));
    };
    let got = output_records(&probe, output);
    assert_eq!(
        got, expected,
        "{group}: {got} output records, expected {expected}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let (done, cpu_at_done) = done;
    let (first_at, first_count, cpu_at_first) = first.unwrap();
    let seconds = done.duration_since(first_at).as_secs_f64().max(0.001);
    let cpu_seconds = (cpu_at_done - cpu_at_first).max(0.01);
    let events = (total_input - first_count) as f64;
    Measured {
        rate: events / seconds,
        cpu_seconds,
        per_cpu_second: events / cpu_seconds,
        total: done.duration_since(started),
        peak_rss_kib: peak,
    }
}

/// User + system CPU time of process `pid` so far, all threads (`/proc/PID/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    static TICKS_PER_SECOND: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks_per_second = *TICKS_PER_SECOND.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) and its `)`:
    // state is the first, utime the 12th and stime the 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / ticks_per_second
}

fn committed(consumer: &BaseConsumer, topic: &str) -> u64 {
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition(topic, p);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(10)) else {
        return 0;
    };
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => u64::try_from(o).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn output_records(probe: &BaseConsumer, topic: &str) -> u64 {
    let Ok(metadata) = probe.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return 0;
    };
    metadata
        .topics()
        .iter()
        .flat_map(rdkafka::metadata::MetadataTopic::partitions)
        .map(|p| {
            probe
                .fetch_watermarks(topic, p.id(), Duration::from_secs(5))
                .map_or(0, |(low, high)| u64::try_from(high - low).unwrap_or(0))
        })
        .sum()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
