//! Postgres sink benchmark: rows per second of the `PostgresWriter` (upsert
//! by record key, batches of 1,000 as the sink runtime cuts them; COPY into
//! a staging table + one merge statement per batch) next to a raw `COPY` of
//! the same rows into an empty table (the physical limit of loading one
//! table) and next to the design the writer used first, one
//! `INSERT … SELECT … FROM json_populate_recordset($1) ON CONFLICT DO UPDATE`
//! per batch. All in one run, in a throwaway database of its own.
//!
//! The writer also runs on the same rows as Debezium `json-with-schema`
//! change events (a decimal and a timestamp typed by their Connect schema,
//! converted on the way), into a table of its own.
//!
//! The writer and the JSON design run twice over the same N keys: into an
//! empty table (every row new) and again with changed values (every row an
//! update). Records are built outside the timed parts (the runtime hands
//! them over decoded); turning them into COPY text or JSON is timed.
//!
//! Run with `make bench-sink-postgres`, or `cargo run --release -q -p
//! tributary-worker --example postgres_sink_bench -- [N]` (default 200,000)
//! after `make infra-postgres`.

// A benchmark program: it prints, fails loudly, and reads top to bottom as one script.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap,
    clippy::too_many_lines
)]

use std::fmt::Write as _;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};
use tributary_api::sink::postgres::PostgresSink;
use tributary_testkit::{Endpoints, unique_name};
use tributary_worker::config::SecretResolver;
use tributary_worker::record::Record;
use tributary_worker::sink::postgres::{PostgresSinkConfig, PostgresWriter};
use tributary_worker::sink::{ConnectSchemas, SinkWriter};

const BATCH: usize = 1000;
const COLUMNS: &str = "id, user_id, product_id, stars, region, comment, score, created_ms";
const TABLE: &str = "(id bigint PRIMARY KEY, user_id bigint, product_id bigint, stars bigint, region text, \
                     comment text, score double precision, created_ms bigint)";

fn value(id: usize, version: usize) -> Value {
    let region = ["eu", "us", "apac"][id % 3];
    json!({
        "id": id,
        "user_id": id % 50_000,
        "product_id": id % 1_000,
        "stars": (id + version) % 5 + 1,
        "region": region,
        "comment": format!("rating {id} version {version}: solid bike, good brakes"),
        "score": (id % 1000) as f64 / 10.0 + version as f64,
        "created_ms": 1_700_000_000_000_i64 + id as i64,
    })
}

fn records(start: usize, end: usize, version: usize) -> Vec<Record> {
    (start..end)
        .map(|id| Record {
            topic: "bench.public.ratings".into(),
            partition: 0,
            offset: id as i64,
            timestamp_ms: None,
            key: Some(json!({"id": id})),
            value: Some(value(id, version)),
            headers: Vec::new(),
        })
        .collect()
}

/// The Connect schema of the Debezium-typed records: `score` a
/// `Decimal(8,1)`, `created` an `io.debezium.time.Timestamp`.
fn typed_schemas() -> ConnectSchemas {
    let field = |name: &str, type_: &str| json!({"field": name, "type": type_, "optional": true});
    let after = json!({"type": "struct", "optional": true, "fields": [
        field("id", "int64"), field("user_id", "int64"), field("product_id", "int64"),
        field("stars", "int32"), field("region", "string"), field("comment", "string"),
        {"field": "score", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "1", "connect.decimal.precision": "8"}},
        {"field": "created", "type": "int64", "optional": true, "name": "io.debezium.time.Timestamp"}]});
    ConnectSchemas {
        key: Some(Arc::new(
            json!({"type": "struct", "fields": [field("id", "int64")]}),
        )),
        value: Some(Arc::new(json!({"type": "struct", "fields": [
            {"field": "before", "type": "struct", "optional": true, "fields": after["fields"]},
            {"field": "after", "type": "struct", "optional": true, "fields": after["fields"]},
            field("op", "string"), field("ts_ms", "int64")]}))),
    }
}

/// Debezium change events (`c`, then `u`) of the same rows, as
/// json-with-schema decodes them: the envelope's payload.
fn typed_records(start: usize, end: usize, version: usize) -> Vec<Record> {
    (start..end)
        .map(|id| {
            let mut row = value(id, version);
            let score = row["score"].as_f64().unwrap();
            #[allow(clippy::cast_possible_truncation)] // tenths of at most ~1,100
            let unscaled = (score * 10.0).round() as i64;
            row["score"] = json!(BASE64.encode(num_bigint::BigInt::from(unscaled).to_signed_bytes_be()));
            row["created"] = row["created_ms"].take();
            row.as_object_mut().unwrap().remove("created_ms");
            let op = if version == 0 { "c" } else { "u" };
            Record {
                topic: "bench.public.typed_ratings".into(),
                partition: 0,
                offset: id as i64,
                timestamp_ms: None,
                key: Some(json!({"id": id})),
                value: Some(json!({"before": null, "after": row, "op": op, "ts_ms": 1})),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// COPY text format of the records' values (no value needs escaping here;
/// a real writer would also escape `\\`, tab and newline).
fn copy_text(records: &[Record]) -> Vec<u8> {
    let mut out = String::new();
    for record in records {
        let v = record.value.as_ref().unwrap();
        for (i, c) in COLUMNS.split(", ").enumerate() {
            if i > 0 {
                out.push('\t');
            }
            match &v[c] {
                Value::String(s) => out.push_str(s),
                other => write!(out, "{other}").unwrap(),
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn rate(rows: usize, seconds: f64) -> String {
    format!("{:>9.0} rows/s  ({seconds:.2} s)", rows as f64 / seconds)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(200_000, |a| a.parse().expect("N: a number of rows"));
    let endpoints = Endpoints::from_env();
    let part = |key: &str| {
        endpoints
            .postgres
            .split_whitespace()
            .find_map(|p| p.strip_prefix(key).map(str::to_owned))
            .unwrap()
    };
    let database = unique_name("sinkbench").replace('-', "_");
    let admin = connect(&endpoints.postgres).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    let url = format!(
        "host={} port={} user={} dbname={database}",
        part("host="),
        part("port="),
        part("user=")
    );
    let db = connect(&url).await;
    let version = db
        .query_one("SHOW server_version", &[])
        .await
        .unwrap()
        .get::<_, String>(0);
    println!(
        "Postgres sink benchmark: {n} rows, batches of {BATCH}, Postgres {version}, database {database}"
    );

    // 1. The writer: auto-created table, then every key again (updates).
    let spec = PostgresSink {
        host: part("host="),
        port: part("port=").parse().unwrap(),
        database: database.clone(),
        user: part("user="),
        ..PostgresSink::default()
    };
    let config = PostgresSinkConfig::new(spec, &SecretResolver::default()).unwrap();
    let mut writer = PostgresWriter::connect(config).await.unwrap();
    let mut writer_secs = [0.0; 2];
    for (phase, secs) in writer_secs.iter_mut().enumerate() {
        for start in (0..n).step_by(BATCH) {
            let batch = records(start, (start + BATCH).min(n), phase);
            let t = Instant::now();
            let outcome = writer.write(&batch).await.unwrap();
            *secs += t.elapsed().as_secs_f64();
            assert!(outcome.rejected.is_empty(), "{outcome:?}");
        }
    }
    // 1b. The writer on Debezium json-with-schema: columns typed and values
    // converted from the Connect schema (numeric(8,1), timestamp).
    let schemas = vec![typed_schemas(); BATCH];
    let mut typed_secs = [0.0; 2];
    for (phase, secs) in typed_secs.iter_mut().enumerate() {
        for start in (0..n).step_by(BATCH) {
            let batch = typed_records(start, (start + BATCH).min(n), phase);
            let t = Instant::now();
            let outcome = writer.write_typed(&batch, &schemas).await.unwrap();
            *secs += t.elapsed().as_secs_f64();
            assert!(outcome.rejected.is_empty(), "{outcome:?}");
        }
    }
    let typed_columns: String = db
        .query_one(
            "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attname) FROM pg_attribute \
             WHERE attrelid = 'typed_ratings'::regclass AND attname IN ('score', 'created')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(typed_columns, "timestamp without time zone,numeric(8,1)");
    let writer_rss = peak_rss_mib();
    let count: i64 = db
        .query_one("SELECT count(*) FROM ratings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, n as i64);

    // 2. The limit: one COPY stream into an empty table.
    db.batch_execute(&format!("CREATE TABLE raw_copy {TABLE}"))
        .await
        .unwrap();
    let mut copy_secs = 0.0;
    {
        let t = Instant::now();
        let sink = db
            .copy_in::<_, Cursor<Vec<u8>>>(&format!("COPY raw_copy ({COLUMNS}) FROM STDIN"))
            .await
            .unwrap();
        let mut sink = Box::pin(sink);
        copy_secs += t.elapsed().as_secs_f64();
        for start in (0..n).step_by(BATCH) {
            let batch = records(start, (start + BATCH).min(n), 0);
            let t = Instant::now();
            sink.send(Cursor::new(copy_text(&batch))).await.unwrap();
            copy_secs += t.elapsed().as_secs_f64();
        }
        let t = Instant::now();
        sink.as_mut().finish().await.unwrap();
        copy_secs += t.elapsed().as_secs_f64();
    }

    // 2b. The limit at this batch size: COPY of each batch into an empty
    // table, one transaction (so one WAL flush) per batch, as the writer
    // must commit before offsets are.
    db.batch_execute(&format!("CREATE TABLE batch_copy {TABLE}"))
        .await
        .unwrap();
    let mut batch_copy_secs = 0.0;
    for start in (0..n).step_by(BATCH) {
        let batch = records(start, (start + BATCH).min(n), 0);
        let t = Instant::now();
        let sink = db
            .copy_in::<_, Cursor<Vec<u8>>>(&format!("COPY batch_copy ({COLUMNS}) FROM STDIN"))
            .await
            .unwrap();
        let mut sink = Box::pin(sink);
        sink.send(Cursor::new(copy_text(&batch))).await.unwrap();
        sink.as_mut().finish().await.unwrap();
        batch_copy_secs += t.elapsed().as_secs_f64();
    }

    // 3. The earlier design: rows as one JSON parameter per batch.
    db.batch_execute(&format!("CREATE TABLE json_rows {TABLE}"))
        .await
        .unwrap();
    let upsert = format!(
        "INSERT INTO json_rows ({COLUMNS}) SELECT {COLUMNS} FROM json_populate_recordset(NULL::json_rows, $1::text::json) \
         ON CONFLICT (id) DO UPDATE SET {}",
        COLUMNS
            .split(", ")
            .skip(1)
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut json_secs = [0.0; 2];
    for (phase, secs) in json_secs.iter_mut().enumerate() {
        for start in (0..n).step_by(BATCH) {
            let batch = records(start, (start + BATCH).min(n), phase);
            let t = Instant::now();
            let rows: Vec<&Value> = batch.iter().filter_map(|r| r.value.as_ref()).collect();
            let json = serde_json::to_string(&rows).unwrap();
            db.batch_execute("BEGIN").await.unwrap();
            db.execute_typed(&upsert, &[(&json, Type::TEXT)]).await.unwrap();
            db.batch_execute("COMMIT").await.unwrap();
            *secs += t.elapsed().as_secs_f64();
        }
    }

    // 4. The writer's design, hand-written: COPY each batch into a staging
    // table, then merge.
    db.batch_execute(&format!(
        "CREATE TABLE staged {TABLE}; CREATE TEMP TABLE staging (LIKE staged) ON COMMIT DELETE ROWS"
    ))
    .await
    .unwrap();
    let merge = upsert
        .replace("json_rows", "staged")
        .replace("json_populate_recordset(NULL::staged, $1::text::json)", "staging");
    assert!(merge.contains("FROM staging"), "{merge}");
    let mut staged_secs = [0.0; 2];
    for (phase, secs) in staged_secs.iter_mut().enumerate() {
        for start in (0..n).step_by(BATCH) {
            let batch = records(start, (start + BATCH).min(n), phase);
            let t = Instant::now();
            db.batch_execute("BEGIN").await.unwrap();
            let sink = db
                .copy_in::<_, Cursor<Vec<u8>>>(&format!("COPY staging ({COLUMNS}) FROM STDIN"))
                .await
                .unwrap();
            let mut sink = Box::pin(sink);
            sink.send(Cursor::new(copy_text(&batch))).await.unwrap();
            sink.as_mut().finish().await.unwrap();
            db.batch_execute(&merge).await.unwrap();
            db.batch_execute("COMMIT").await.unwrap();
            *secs += t.elapsed().as_secs_f64();
        }
    }

    println!();
    println!(
        "{:<60} {}",
        "raw COPY, one stream, empty table (the limit)",
        rate(n, copy_secs)
    );
    println!(
        "{:<60} {}",
        format!("raw COPY, a commit per {BATCH} rows, empty table"),
        rate(n, batch_copy_secs)
    );
    for (phase, label) in ["new rows", "every row updated"].iter().enumerate() {
        for (design, secs) in [
            ("PostgresWriter upsert", writer_secs[phase]),
            ("PostgresWriter, Debezium json-with-schema", typed_secs[phase]),
            ("json_populate_recordset upsert", json_secs[phase]),
            ("staging COPY + merge upsert", staged_secs[phase]),
        ] {
            println!(
                "{:<60} {}  = {:.0} % of COPY, {:.0} % of COPY per batch",
                format!("{design}, {label}"),
                rate(n, secs),
                100.0 * copy_secs / secs,
                100.0 * batch_copy_secs / secs
            );
        }
    }
    println!("peak RSS of this process through the writer phases: {writer_rss:.1} MiB");

    drop(writer);
    drop(db);
    admin
        .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .await
        .unwrap();
}
