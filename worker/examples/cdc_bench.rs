//! CDC benchmark: Postgres → Kafka with the Debezium envelope, side by side in
//! one run on the same Postgres and Kafka:
//!
//! - `pg_recvlogical` decoding the same WAL with the same plugin (pgoutput) to
//!   /dev/null: the physical limit (one walsender decodes on one core);
//! - `tributary-worker` (release build) as its own process;
//! - Kafka Connect standalone + Debezium's Postgres connector.
//!
//! Throughput: one slot and publication per consumer are created first, then
//! N rows (default 1,000,000) are inserted in transactions of 1,000
//! (pgbench-like rows); then each consumer in turn drains the same backlog
//! alone. Rows/s = N / (broker time of the last record − broker time of the
//! first): the topics are created with `message.timestamp.type=LogAppendTime`,
//! so a record's timestamp is when the broker appended it (acks=all on one
//! broker: when it was acknowledged). Start-up is excluded; `pg_recvlogical` is
//! timed as a process (connect to `--endpos`).
//!
//! Latency: with the consumer caught up, a paced writer commits 100-row
//! transactions every 10 ms (10,000 rows/s) for `LATENCY_SECONDS` (default
//! 20); per record, latency = broker append time − `source.ts_ms` (the
//! transaction's commit time in Postgres), both from the same clock.
//!
//! Peak RSS: `VmHWM` of the worker's and of the Connect JVM's process.
//!
//! Run with `make bench-cdc` (needs `make infra-postgres infra-kafka
//! infra-connect`). Args: `[ROWS] [LATENCY_SECONDS] [--no-debezium]`; the
//! last skips Kafka Connect + Debezium (minutes per run) while iterating on
//! the worker, and prints the worker's CPU seconds for the drain instead.

// A benchmark program: it prints, fails loudly, and reads top to bottom as one script.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::too_many_lines,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_postgres::{Client, NoTls};
use tributary_testkit::{Endpoints, unique_name};
use tributary_worker::source::postgres::HEARTBEAT_PREFIX;

const TX_ROWS: u64 = 1_000;
const LATENCY_TX_ROWS: u64 = 100;
const LATENCY_TICK: Duration = Duration::from_millis(10);
const CONNECT_HEAP: &str = "-Xmx1g";

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("Postgres at {url}: {e}"));
    tokio::spawn(connection);
    client
}

fn url_part(url: &str, key: &str) -> String {
    url.split_whitespace()
        .find_map(|p| p.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_owned()
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

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("cdc-bench"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// High watermark of partition 0 of `topic` (0 while it does not exist).
fn high_watermark(consumer: &BaseConsumer, topic: &str) -> i64 {
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(5))
        .map_or(0, |(_, high)| high)
}

/// Broker timestamp of the record at `offset` of partition 0.
fn timestamp_at(consumer: &BaseConsumer, topic: &str, offset: i64) -> i64 {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            return message.timestamp().to_millis().unwrap();
        }
        assert!(Instant::now() < deadline, "{topic}@{offset}: nothing to read");
    }
}

/// Per record from `from` to the end: broker append time − `source.ts_ms`.
fn latencies(consumer: &BaseConsumer, topic: &str, from: i64, to: i64) -> Vec<i64> {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(from))
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::with_capacity(usize::try_from(to - from).unwrap());
    let deadline = Instant::now() + Duration::from_mins(5);
    while out.len() < usize::try_from(to - from).unwrap() {
        assert!(Instant::now() < deadline, "{topic}: timed out reading latencies");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.unwrap();
        let Some(payload) = message.payload() else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_slice(payload).unwrap();
        let envelope = value.get("payload").unwrap_or(&value);
        let committed = envelope["source"]["ts_ms"].as_i64().unwrap();
        out.push(message.timestamp().to_millis().unwrap() - committed);
    }
    out.sort_unstable();
    out
}

/// Waits until `topic` holds `count` records; returns (first, last) broker times.
fn drain_window(
    bootstrap: &str,
    topic: &str,
    count: i64,
    timeout: Duration,
    alive: &mut dyn FnMut() -> bool,
) -> (i64, i64) {
    let consumer = consumer(bootstrap);
    let deadline = Instant::now() + timeout;
    let mut last_print = Instant::now();
    loop {
        let high = high_watermark(&consumer, topic);
        if high >= count {
            break;
        }
        assert!(
            alive(),
            "{topic}: the consumer process exited ({high} of {count} records)"
        );
        assert!(
            Instant::now() < deadline,
            "{topic}: {high} of {count} records after {timeout:?}"
        );
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!("  … {topic}: {high} of {count}");
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    (
        timestamp_at(&consumer, topic, 0),
        timestamp_at(&consumer, topic, count - 1),
    )
}

/// Creates `topics` with broker-side timestamps, so a record's timestamp is
/// when Kafka appended (acknowledged) it.
async fn create_topics(bootstrap: &str, topics: &[String]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            NewTopic::new(t, 1, TopicReplication::Fixed(1)).set("message.timestamp.type", "LogAppendTime")
        })
        .collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await.unwrap() {
        result.unwrap_or_else(|(topic, e)| panic!("creating {topic}: {e}"));
    }
}

/// Inserts `rows` pgbench-like rows into `table` starting at id `first`, in
/// transactions of `TX_ROWS`.
async fn load(db: &Client, table: &str, first: u64, rows: u64) {
    let mut id = first;
    while id < first + rows {
        let last = (id + TX_ROWS - 1).min(first + rows - 1);
        db.batch_execute(&format!(
            "INSERT INTO {table} SELECT g, g % 100, 0, repeat('x', 84) FROM generate_series({id}, {last}) g"
        ))
        .await
        .unwrap();
        id = last + 1;
    }
}

/// Commits `LATENCY_TX_ROWS` rows every `LATENCY_TICK` for `seconds`; returns
/// the rows written and the achieved rate.
async fn paced_load(db: &Client, table: &str, seconds: u64) -> (u64, f64) {
    let mut tick = tokio::time::interval(LATENCY_TICK);
    let started = Instant::now();
    let mut id = 1;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let last = id + LATENCY_TX_ROWS - 1;
        db.batch_execute(&format!(
            "INSERT INTO {table} SELECT g, g % 100, 0, repeat('x', 84) FROM generate_series({id}, {last}) g"
        ))
        .await
        .unwrap();
        id = last + 1;
    }
    let rows = id - 1;
    (rows, rows as f64 / started.elapsed().as_secs_f64())
}

struct Process {
    child: Child,
}

impl Process {
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command, log: &Path) -> Process {
    let out = std::fs::File::create(log).unwrap();
    let child = command
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    Process { child }
}

fn worker_binary() -> PathBuf {
    // This example runs from <target>/release/examples/; the worker is next door.
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("tributary-worker");
    assert!(
        binary.exists(),
        "{} missing: cargo build --release -p tributary-worker",
        binary.display()
    );
    binary
}

struct Row {
    name: &'static str,
    rows_per_s: f64,
    p50: Option<i64>,
    p99: Option<i64>,
    rss: Option<f64>,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let latency_seconds: u64 = args.next().map_or(20, |a| a.parse().unwrap());
    let with_debezium = args.next().is_none_or(|a| a != "--no-debezium");
    let endpoints = Endpoints::from_env();
    let bootstrap = endpoints.kafka_bootstrap.clone();
    let id = unique_name("cdcbench").replace('-', "_");
    let dir = std::env::temp_dir().join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let (host, port) = (
        url_part(&endpoints.postgres, "host"),
        url_part(&endpoints.postgres, "port"),
    );

    let admin = connect(&endpoints.postgres).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {id}"))
        .await
        .unwrap();
    let ours_prefix = format!("{}-ours", id.replace('_', "-"));
    let dbz_prefix = format!("{}-dbz", id.replace('_', "-"));
    let topic = |prefix: &str, table: &str| format!("{prefix}.public.{table}");
    let _cleanup = Cleanup {
        postgres: endpoints.postgres.clone(),
        database: id.clone(),
        bootstrap: bootstrap.clone(),
        // Several GB of records: not left behind for a day of retention.
        topics: vec![
            topic(&ours_prefix, "bench"),
            topic(&ours_prefix, "lat_ours"),
            topic(&dbz_prefix, "bench"),
            topic(&dbz_prefix, "lat_dbz"),
            format!("{ours_prefix}-offsets"),
            format!("{ours_prefix}-status"),
            format!("__debezium-heartbeat.{ours_prefix}"),
        ],
    };
    let db_url = format!("host={host} port={port} user=postgres dbname={id}");
    let db = connect(&db_url).await;
    // pgbench_accounts-like rows; one table for the throughput backlog and
    // one per consumer for the latency phase (so one's paced load is not in
    // the other's publication).
    let recv = format!("{id}_recv");
    let ours = format!("{id}_ours");
    let dbz = format!("{id}_dbz");
    db.batch_execute(&format!(
        "CREATE TABLE bench (id bigint PRIMARY KEY, bid int NOT NULL, balance int NOT NULL, filler text);
         CREATE TABLE lat_ours (LIKE bench INCLUDING ALL);
         CREATE TABLE lat_dbz (LIKE bench INCLUDING ALL);
         CREATE PUBLICATION {recv} FOR TABLE bench;
         CREATE PUBLICATION {ours} FOR TABLE bench, lat_ours;
         CREATE PUBLICATION {dbz} FOR TABLE bench, lat_dbz;"
    ))
    .await
    .unwrap();
    for slot in [&recv, &ours, &dbz] {
        db.execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[slot],
        )
        .await
        .unwrap();
    }
    create_topics(
        &bootstrap,
        &[
            topic(&ours_prefix, "bench"),
            topic(&ours_prefix, "lat_ours"),
            topic(&dbz_prefix, "bench"),
            topic(&dbz_prefix, "lat_dbz"),
        ],
    )
    .await;

    println!(
        "CDC benchmark: {rows} rows (transactions of {TX_ROWS}), then {latency_seconds} s at 10,000 rows/s"
    );
    let started = Instant::now();
    load(&db, "bench", 1, rows).await;
    let load_s = started.elapsed().as_secs_f64();
    let end_lsn: String = db
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let wal_bytes: i64 = db
        .query_one(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1",
            &[&recv],
        )
        .await
        .unwrap()
        .get(0);
    println!(
        "  loaded in {load_s:.1} s ({:.0} rows/s); {:.0} MiB of WAL per slot",
        rows as f64 / load_s,
        wal_bytes as f64 / 1_048_576.0
    );
    let mut results = Vec::new();

    // (a) pg_recvlogical: the same plugin and WAL, output discarded.
    let started = Instant::now();
    let status = Command::new("pg_recvlogical")
        .args([
            "-d",
            &db_url,
            "-S",
            &recv,
            "--start",
            "--endpos",
            &end_lsn,
            "-f",
            "/dev/null",
        ])
        .args([
            "-o",
            "proto_version=1",
            "-o",
            &format!("publication_names={recv}"),
        ])
        .args(["--no-loop"])
        .status()
        .unwrap();
    assert!(status.success(), "pg_recvlogical failed: {status}");
    let recv_s = started.elapsed().as_secs_f64();
    results.push(Row {
        name: "pg_recvlogical (pgoutput, raw decode)",
        rows_per_s: rows as f64 / recv_s,
        p50: None,
        p99: None,
        rss: None,
    });
    println!("  pg_recvlogical: {recv_s:.1} s");

    // (b) tributary-worker, release build.
    let manifest = format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: {ours}\nspec:\n  source:\n    postgres:\n      host: {host}\n      port: {port}\n      database: {id}\n      user: postgres\n      topicPrefix: {ours_prefix}\n      slotName: {ours}\n      publicationName: {ours}\n      publicationAutocreate: Disabled\n      snapshotMode: NoData\n  format:\n    key: json-with-schema\n    value: json-with-schema\n"
    );
    let manifest_path = dir.join("connector.yaml");
    std::fs::write(&manifest_path, manifest).unwrap();
    let mut command = Command::new(worker_binary());
    command
        .args(["run", "-f"])
        .arg(&manifest_path)
        .args(["--bootstrap-servers", &bootstrap, "--http-addr", "off"])
        .args(["--offsets-topic", &format!("{ours_prefix}-offsets")])
        .args(["--status-topic", &format!("{ours_prefix}-status")])
        .env("RUST_LOG", "warn");
    let mut worker = spawn(command, &dir.join("worker.log"));
    let (first, last) = drain_window(
        &bootstrap,
        &topic(&ours_prefix, "bench"),
        rows as i64,
        Duration::from_mins(20),
        &mut || worker.alive(),
    );
    let ours_rate = rows as f64 / ((last - first).max(1) as f64 / 1000.0);
    let ours_rss = peak_rss_mib(worker.child.id());
    println!(
        "  tributary-worker: {:.1} s, peak RSS {ours_rss:.1} MiB, {:.2} CPU s since start",
        (last - first) as f64 / 1000.0,
        cpu_seconds(worker.child.id())
    );
    let (ours_p50, ours_p99) = latency_phase(
        &db,
        &bootstrap,
        "lat_ours",
        &topic(&ours_prefix, "lat_ours"),
        latency_seconds,
        &mut || worker.alive(),
    )
    .await;
    let ours_rss_after = peak_rss_mib(worker.child.id());
    worker.stop();
    results.push(Row {
        name: "tributary-worker (release)",
        rows_per_s: ours_rate,
        p50: Some(ours_p50),
        p99: Some(ours_p99),
        rss: Some(ours_rss.max(ours_rss_after)),
    });

    if !with_debezium {
        print_table(&results, None);
        return;
    }

    // (c) Kafka Connect + Debezium, defaults plus what the shared setup needs:
    // topic creation (the broker creates none by itself; Debezium writes
    // logical decoding messages to `<prefix>.message`) and ignoring our
    // worker's heartbeat messages in the same database.
    let tool = endpoints.tool("connect-standalone");
    assert!(tool.exists(), "{} missing: make infra-connect", tool.display());
    std::fs::write(
        dir.join("worker.properties"),
        format!(
            "bootstrap.servers={bootstrap}\nkey.converter=org.apache.kafka.connect.json.JsonConverter\nvalue.converter=org.apache.kafka.connect.json.JsonConverter\noffset.storage.file.filename={}\noffset.flush.interval.ms=1000\nlisteners=http://127.0.0.1:0\n",
            dir.join("connect.offsets").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("connector.properties"),
        format!(
            "name={dbz}\nconnector.class=io.debezium.connector.postgresql.PostgresConnector\ntasks.max=1\ndatabase.hostname={host}\ndatabase.port={port}\ndatabase.user=postgres\ndatabase.dbname={id}\ntopic.prefix={dbz_prefix}\nplugin.name=pgoutput\nslot.name={dbz}\npublication.name={dbz}\npublication.autocreate.mode=disabled\nsnapshot.mode=no_data\ntopic.creation.default.replication.factor=1\ntopic.creation.default.partitions=1\nmessage.prefix.exclude.list={HEARTBEAT_PREFIX}\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(tool);
    command
        .arg(dir.join("worker.properties"))
        .arg(dir.join("connector.properties"))
        .env("CONNECT_HEAP_OPTS", CONNECT_HEAP)
        .env("CONNECT_LOG_LEVEL", "WARN");
    let mut connect = spawn(command, &dir.join("connect.log"));
    let (first, last) = drain_window(
        &bootstrap,
        &topic(&dbz_prefix, "bench"),
        rows as i64,
        Duration::from_mins(30),
        &mut || connect.alive(),
    );
    let dbz_rate = rows as f64 / ((last - first).max(1) as f64 / 1000.0);
    let dbz_rss = peak_rss_mib(connect.child.id());
    println!(
        "  Connect + Debezium: {:.1} s, peak RSS {dbz_rss:.1} MiB",
        (last - first) as f64 / 1000.0
    );
    let (dbz_p50, dbz_p99) = latency_phase(
        &db,
        &bootstrap,
        "lat_dbz",
        &topic(&dbz_prefix, "lat_dbz"),
        latency_seconds,
        &mut || connect.alive(),
    )
    .await;
    let dbz_rss_after = peak_rss_mib(connect.child.id());
    connect.stop();
    results.push(Row {
        name: "Kafka Connect + Debezium",
        rows_per_s: dbz_rate,
        p50: Some(dbz_p50),
        p99: Some(dbz_p99),
        rss: Some(dbz_rss.max(dbz_rss_after)),
    });

    let dbz_rate = results[2].rows_per_s;
    print_table(&results, Some(dbz_rate));
}

/// The results as a Markdown table (ratios to Debezium when it ran).
fn print_table(results: &[Row], dbz_rate: Option<f64>) {
    let recv_rate = results[0].rows_per_s;
    println!();
    println!(
        "| consumer | rows/s | vs pg_recvlogical | vs Debezium | commit→Kafka p50 / p99 at 10k rows/s | peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    for row in results {
        let latency = match (row.p50, row.p99) {
            (Some(p50), Some(p99)) => format!("{p50} ms / {p99} ms"),
            _ => "—".into(),
        };
        let rss = row.rss.map_or_else(|| "—".into(), |r| format!("{r:.1} MiB"));
        let vs_dbz = dbz_rate.map_or_else(|| "—".into(), |d| format!("{:.2}×", row.rows_per_s / d));
        println!(
            "| {} | {:.0} | {:.0} % | {vs_dbz} | {latency} | {rss} |",
            row.name,
            row.rows_per_s,
            100.0 * row.rows_per_s / recv_rate,
        );
    }
}

/// User + system CPU seconds of process `pid` so far (from /proc; 100 ticks/s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Drops the benchmark's slots, database and topics, also when it fails
/// half way (a forgotten slot would hold WAL forever).
struct Cleanup {
    postgres: String,
    database: String,
    bootstrap: String,
    topics: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (postgres, database) = (self.postgres.clone(), self.database.clone());
        let (bootstrap, topics) = (self.bootstrap.clone(), self.topics.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok((admin, connection)) = tokio_postgres::connect(&postgres, NoTls).await else {
                    return;
                };
                tokio::spawn(connection);
                let _ = admin
                    .execute(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
                        &[&database],
                    )
                    .await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                    .await;
                if let Ok(kafka) = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .create::<AdminClient<DefaultClientContext>>()
                {
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    let _ = kafka.delete_topics(&names, &AdminOptions::new()).await;
                }
            });
        })
        .join();
    }
}

/// The latency phase for one consumer that has drained the backlog: one
/// warm-up row (so the consumer is known to be streaming), then the paced
/// load; returns p50 and p99 in ms.
async fn latency_phase(
    db: &Client,
    bootstrap: &str,
    table: &str,
    topic: &str,
    seconds: u64,
    alive: &mut dyn FnMut() -> bool,
) -> (i64, i64) {
    db.batch_execute(&format!("INSERT INTO {table} VALUES (0, 0, 0, 'warm-up')"))
        .await
        .unwrap();
    drain_window(bootstrap, topic, 1, Duration::from_mins(5), alive);
    let (written, rate) = paced_load(db, table, seconds).await;
    let total = i64::try_from(written).unwrap() + 1;
    drain_window(bootstrap, topic, total, Duration::from_mins(5), alive);
    let consumer = consumer(bootstrap);
    let sorted = latencies(&consumer, topic, 1, total);
    let (p50, p99) = (percentile(&sorted, 0.50), percentile(&sorted, 0.99));
    println!(
        "  {table}: {written} rows at {rate:.0} rows/s; commit→Kafka p50 {p50} ms, p99 {p99} ms, max {} ms",
        sorted.last().copied().unwrap_or_default()
    );
    (p50, p99)
}
