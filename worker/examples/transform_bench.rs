//! Transform benchmark: records per second through the ratings system's
//! low-rating chain (unwrap with added fields → filter `rating < 3 and region
//! in [..]` → insertField → dropFields), next to decoding the same records
//! from JSON bytes (work the sink runtime does for every record anyway), on
//! one core.
//!
//! The input is N Debezium change events of `public.ratings` (70% creates,
//! 20% updates, 5% deletes each followed by its tombstone), generated up
//! front (a chunk of 10,000, cloned untimed before each phase) so only the
//! measured work is timed. A third figure passes the same records through an
//! empty chain and frees them: the cost every record has anyway, without
//! transforms. Decoding covers the values only (tombstones have none).
//!
//! Run with `cargo run --release -q -p tributary-worker --example
//! transform_bench -- [N]` (default 1,000,000). Needs no service.

// A benchmark program: it prints, fails loudly, and reads top to bottom as one script.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tributary_api::transform::TransformSpec;
use tributary_worker::record::Record;
use tributary_worker::transform::TransformChain;

const CHAIN: &str = r"
- unwrap:
    addFields: [op, source.ts_ms]
- filter:
    expression: rating < 3 and region in ['eu', 'us']
- insertField:
    field: alert
    value: low-rating
- dropFields:
    fields: [comment]
";

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("N"));
    let specs: Vec<TransformSpec> = serde_yaml::from_str(CHAIN).unwrap();
    let chain = TransformChain::new(&specs).unwrap();
    let empty = TransformChain::new(&[]).unwrap();

    // Work in chunks (cloned from one generated set, untimed) so each phase
    // runs on the same amount of warm, freshly allocated memory, in turn.
    let chunk = n.min(10_000);
    let template = events(chunk);
    let bytes: Vec<Vec<u8>> = template
        .iter()
        .filter_map(|r| r.value.as_ref().map(|v| serde_json::to_vec(v).unwrap()))
        .collect();
    let chunk_bytes: usize = bytes.iter().map(Vec::len).sum();
    let (mut decode, mut baseline, mut transform) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut done, mut kept) = (0usize, 0usize);
    while done < n {
        let start = Instant::now();
        for value in &bytes {
            let parsed: Value = serde_json::from_slice(value).unwrap();
            assert!(parsed.is_object());
        }
        decode += start.elapsed();

        let records = template.clone();
        let start = Instant::now();
        for record in records {
            assert!(empty.apply(record).unwrap().is_some());
        }
        baseline += start.elapsed();

        let records = template.clone();
        let start = Instant::now();
        for record in records {
            kept += usize::from(chain.apply(record).unwrap().is_some());
        }
        transform += start.elapsed();
        done += chunk;
    }

    let rate = |d: Duration| done as f64 / d.as_secs_f64();
    println!(
        "{done} records ({} MB of JSON values), {kept} kept by the chain",
        chunk_bytes * (done / chunk) / 1_000_000
    );
    println!(
        "decode JSON values:        {:>12.0} records/s ({:.2} s)",
        rate(decode),
        decode.as_secs_f64()
    );
    println!(
        "empty chain + free record: {:>12.0} records/s ({:.2} s)",
        rate(baseline),
        baseline.as_secs_f64()
    );
    println!(
        "low-rating transform chain:{:>12.0} records/s ({:.2} s)",
        rate(transform),
        transform.as_secs_f64()
    );
}

/// N change events with a deterministic mix of operations.
fn events(n: usize) -> Vec<Record> {
    let regions = ["eu", "us", "apac", "latam"];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift: a fixed, dependency-free sequence.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut records = Vec::with_capacity(n);
    let mut offset = 0i64;
    while records.len() < n {
        let roll = next() % 100;
        let id = i64::try_from(next() % 100_000).unwrap();
        let row = |rating: u64| {
            json!({"id": id, "customer_id": id % 977, "product_id": id % 89,
                   "region": regions[usize::try_from(id % 4).unwrap()], "rating": rating,
                   "comment": "delivered on time, packaging could be better"})
        };
        let rating = next() % 5 + 1;
        let (op, before, after) = match roll {
            0..70 => ("c", Value::Null, row(rating)),
            70..90 => ("u", row(next() % 5 + 1), row(rating)),
            _ => ("d", row(rating), Value::Null),
        };
        let record = Record {
            topic: "shop.public.ratings".into(),
            partition: i32::try_from(id % 6).unwrap(),
            offset,
            timestamp_ms: Some(1_700_000_000_000 + offset),
            key: Some(json!({ "id": id })),
            value: Some(json!({
                "before": before,
                "after": after,
                "source": {"version": "tributary-0.1.0", "connector": "postgresql", "name": "shop",
                           "ts_ms": 1_700_000_000_000_i64 + offset, "snapshot": "false", "db": "shop",
                           "sequence": "[\"24023928\",\"24023984\"]", "schema": "public", "table": "ratings",
                           "txId": 770 + offset, "lsn": 24_023_984 + offset, "xmin": null},
                "op": op,
                "ts_ms": 1_700_000_000_005_i64 + offset,
                "transaction": null
            })),
            headers: Vec::new(),
        };
        offset += 1;
        if op == "d" {
            let tombstone = Record {
                value: None,
                offset,
                ..record.clone()
            };
            offset += 1;
            records.push(record);
            records.push(tombstone);
        } else {
            records.push(record);
        }
    }
    records.truncate(n);
    records
}
