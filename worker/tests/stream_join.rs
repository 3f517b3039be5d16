//! Joins end to end against the real Kafka: the worker binary runs a
//! `Stream` manifest joining a stream with a table (a keyed topic whose
//! latest value per key is the row) or with another stream within a time
//! bound; input events in, the exact expected output out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Worker;
use support::sink::{Read, SinkFixture, WAIT};
use support::stream::{StreamFixture, T0, free_addr, metric, sorted, values};
use tributary_testkit::unique_name;

/// `(key as text, value)` of output records, sorted, to compare as multisets.
fn keyed(records: &[Read]) -> Vec<(String, Value)> {
    let mut rows: Vec<(String, Value)> = records
        .iter()
        .map(|r| {
            (
                String::from_utf8(r.key.clone().unwrap_or_default()).unwrap(),
                serde_json::from_slice(r.value.as_deref().unwrap()).unwrap(),
            )
        })
        .collect();
    rows.sort_by_key(|(k, v)| (k.clone(), v.to_string()));
    rows
}

/// A log line without its terminal colour codes (`ESC[…m`).
fn strip_colors(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn sorted_keyed(mut rows: Vec<(&str, Value)>) -> Vec<(String, Value)> {
    rows.sort_by_key(|(k, v)| ((*k).to_owned(), v.to_string()));
    rows.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Waits until the worker's counter `name` reaches `at_least`.
async fn wait_metric(addr: &str, name: &str, at_least: u64, worker: &mut Worker) {
    let deadline = Instant::now() + WAIT;
    loop {
        if worker.running() && metric(addr, name).await >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline && worker.running(),
            "{name} never reached {at_least}; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn order(id: u32, customer: Option<&str>, amount: i64) -> Value {
    json!({"id": id, "customer_id": customer, "amount": amount, "ts": T0 + i64::from(id) * 1000})
}

fn customer(name: &str, region: &str) -> Value {
    json!({"name": name, "region": region})
}

/// Orders enriched with their customer: INNER and LEFT, with a table update,
/// a new customer and a tombstone between orders. A table update applies to
/// the orders processed after it.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
async fn stream_table_inner_and_left_follow_table_updates_and_tombstones() {
    let s = StreamFixture::new("join-table", 2).await;
    let customers = s.topic("customers", 3).await;
    s.produce_to(
        &customers,
        &[
            (Some("c1"), Some(customer("Ada", "eu"))),
            (Some("c2"), Some(customer("Bob", "us"))),
            (Some("c1"), Some(customer("Ada", "eu-west"))), // the latest row per key counts
        ],
    )
    .await;
    let table = format!("    - topic: {customers}\n      kind: Table\n");
    let query = |kind: &str, out: &str| {
        format!(
            "INSERT INTO \"{out}\"\nSELECT o.id AS order_id, o.amount AS amount, c.name AS customer, c.region AS region\nFROM {{in}} o\n{kind} JOIN \"{customers}\" c ON o.customer_id = c.ROWKEY"
        )
    };
    let inner_out = format!("{}-inner", s.output);
    let left_out = format!("{}-left", s.output);
    let (inner_http, left_http) = (free_addr(), free_addr());
    let mut inner = s.start(
        &s.yaml_with_inputs("inner", &query("INNER", &inner_out), &table, ""),
        &unique_name("w"),
        &inner_http,
    );
    let mut left = s.start(
        &s.yaml_with_inputs("left", &query("LEFT", &left_out), &table, ""),
        &unique_name("w"),
        &left_http,
    );
    s.produce(&[
        (Some("o1"), order(1, Some("c1"), 10)),
        (Some("o2"), order(2, Some("c2"), 20)),
        (Some("o3"), order(3, Some("c3"), 30)), // no such customer (yet)
        (Some("o4"), order(4, None, 40)),       // no customer at all
    ])
    .await;
    let row = |id: u32, amount: i64, name: Option<&str>, region: Option<&str>| json!({"order_id": id, "amount": amount, "customer": name, "region": region});
    let first_inner = vec![
        ("\"c1\"", row(1, 10, Some("Ada"), Some("eu-west"))),
        ("\"c2\"", row(2, 20, Some("Bob"), Some("us"))),
    ];
    let mut first_left = first_inner.clone();
    first_left.push(("\"c3\"", row(3, 30, None, None)));
    first_left.push(("null", row(4, 40, None, None)));
    assert_eq!(
        keyed(&s.wait_for(&inner_out, 2, &mut inner).await),
        sorted_keyed(first_inner.clone())
    );
    assert_eq!(
        keyed(&s.wait_for(&left_out, 4, &mut left).await),
        sorted_keyed(first_left.clone())
    );

    // Between orders: c1 moves, c2 is deleted (tombstone), c3 appears.
    s.produce_to(
        &customers,
        &[
            (Some("c1"), Some(customer("Ada", "uk"))),
            (Some("c2"), None),
            (Some("c3"), Some(customer("Cy", "apac"))),
        ],
    )
    .await;
    wait_metric(&inner_http, "stream_table_updates", 6, &mut inner).await;
    wait_metric(&left_http, "stream_table_updates", 6, &mut left).await;
    s.produce(&[
        (Some("o5"), order(5, Some("c1"), 50)),
        (Some("o6"), order(6, Some("c2"), 60)),
        (Some("o7"), order(7, Some("c3"), 70)),
    ])
    .await;
    let mut all_inner = first_inner;
    all_inner.push(("\"c1\"", row(5, 50, Some("Ada"), Some("uk"))));
    all_inner.push(("\"c3\"", row(7, 70, Some("Cy"), Some("apac"))));
    let mut all_left = first_left;
    all_left.push(("\"c1\"", row(5, 50, Some("Ada"), Some("uk"))));
    all_left.push(("\"c2\"", row(6, 60, None, None)));
    all_left.push(("\"c3\"", row(7, 70, Some("Cy"), Some("apac"))));
    assert_eq!(
        keyed(&s.wait_for(&inner_out, 4, &mut inner).await),
        sorted_keyed(all_inner)
    );
    assert_eq!(
        keyed(&s.wait_for(&left_out, 7, &mut left).await),
        sorted_keyed(all_left)
    );
    assert_eq!(metric(&inner_http, "stream_records_out").await, 4);
    assert!(inner.stop(), "graceful stop; log:\n{}", inner.log_text());
    assert!(left.stop(), "graceful stop; log:\n{}", left.log_text());
    // A restarted worker loads the table again (from the topic itself).
    assert!(left.log_text().contains("table loaded"), "{}", left.log_text());
}

fn shipment(id: u32, order: u32, carrier: &str, ts: i64) -> Value {
    json!({"id": id, "order_id": order, "carrier": carrier, "ts": ts})
}

/// Orders joined with their shipments within 5 s (grace 2 s), INNER and
/// LEFT: a pair 6 s apart does not match, unmatched orders of the LEFT join
/// are written once stream time passes their bound + grace, and an order
/// arriving more than the grace behind stream time is dropped and counted.
/// Both inputs are keyed by their own ids, not the order id they join on.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
async fn stream_stream_inner_and_left_within_a_bound_drop_late_events() {
    let s = StreamFixture::new("join-streams", 1).await;
    let shipments = s.topic("shipments", 1).await;
    let inputs = format!("    - topic: {shipments}\n      timestampField: ts\n");
    let query = |kind: &str, out: &str| {
        format!(
            "INSERT INTO \"{out}\"\nSELECT o.id AS order_id, o.ts AS ordered, s.carrier AS carrier, s.ts AS shipped\nFROM {{in}} o\n{kind} JOIN \"{shipments}\" s WITHIN 5 SECONDS GRACE PERIOD 2 SECONDS\nON o.id = s.order_id"
        )
    };
    let inner_out = format!("{}-inner", s.output);
    let left_out = format!("{}-left", s.output);
    let (inner_http, left_http) = (free_addr(), free_addr());
    let mut inner = s.start(
        &s.yaml_with_inputs("inner", &query("INNER", &inner_out), &inputs, ""),
        &unique_name("w"),
        &inner_http,
    );
    let mut left = s.start(
        &s.yaml_with_inputs("left", &query("LEFT", &left_out), &inputs, ""),
        &unique_name("w"),
        &left_http,
    );
    let second = 1000;
    // Each step is processed before the next is produced: the two topics'
    // records reach the join in the order of the steps.
    s.produce(&[
        (Some("o1"), json!({"id": 1, "ts": T0})),
        (Some("o2"), json!({"id": 2, "ts": T0 + second})),
        (Some("o3"), json!({"id": 3, "ts": T0 + 2 * second})), // never shipped
    ])
    .await;
    wait_metric(&inner_http, "stream_records_in", 3, &mut inner).await;
    wait_metric(&left_http, "stream_records_in", 3, &mut left).await;
    s.produce_to(
        &shipments,
        &[
            (Some("s1"), Some(shipment(1, 1, "ups", T0 + 3 * second))), // 3 s after o1: matches
            (Some("s2"), Some(shipment(2, 2, "dhl", T0 + 7 * second))), // 6 s after o2: out of bound
        ],
    )
    .await;
    wait_metric(&inner_http, "stream_records_in", 5, &mut inner).await;
    wait_metric(&left_http, "stream_records_in", 5, &mut left).await;
    // Stream time 20 s: every order's bound (+5 s) and grace (+2 s) passed.
    s.produce_to(
        &shipments,
        &[(Some("s3"), Some(shipment(3, 2, "fedex", T0 + 20 * second)))],
    )
    .await;
    wait_metric(&inner_http, "stream_records_in", 6, &mut inner).await;
    wait_metric(&left_http, "stream_records_in", 6, &mut left).await;
    // 10 s is more than the 2 s grace behind stream time: late.
    s.produce(&[(Some("o4"), json!({"id": 4, "ts": T0 + 10 * second}))])
        .await;
    wait_metric(&inner_http, "stream_late_records", 1, &mut inner).await;
    wait_metric(&left_http, "stream_late_records", 1, &mut left).await;
    let matched = (
        "1",
        json!({"order_id": 1, "ordered": T0, "carrier": "ups", "shipped": T0 + 3 * second}),
    );
    assert_eq!(
        keyed(&s.wait_for(&inner_out, 1, &mut inner).await),
        sorted_keyed(vec![matched.clone()])
    );
    assert_eq!(
        keyed(&s.wait_for(&left_out, 3, &mut left).await),
        sorted_keyed(vec![
            matched,
            (
                "2",
                json!({"order_id": 2, "ordered": T0 + second, "carrier": null, "shipped": null}),
            ),
            (
                "3",
                json!({"order_id": 3, "ordered": T0 + 2 * second, "carrier": null, "shipped": null}),
            ),
        ])
    );
    assert_eq!(metric(&inner_http, "stream_late_records").await, 1);
    assert_eq!(metric(&left_http, "stream_late_records").await, 1);
    assert!(inner.stop(), "graceful stop; log:\n{}", inner.log_text());
    assert!(left.stop(), "graceful stop; log:\n{}", left.log_text());
}

/// A stream-stream join over 3 partitions whose records are keyed by their
/// own ids (the join key is a value field): both inputs are repartitioned
/// by the order id. The worker is killed (-9) mid-way under exactly-once
/// and restarted: rows buffered before the kill are restored from the
/// changelog and meet their partners produced after it; the output equals
/// an uninterrupted run's and the pairs computed here.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
async fn stream_stream_join_repartitions_and_survives_kill_9_exactly_once() {
    let s = StreamFixture::new("join-eos", 3).await;
    let shipments = s.topic("shipments", 3).await;
    let inputs = format!("    - topic: {shipments}\n      timestampField: ts\n");
    let sql = format!(
        "INSERT INTO {{out}}\nSELECT o.id AS order_id, s.id AS shipment_id, s.ts - o.ts AS delay\nFROM {{in}} o\nJOIN \"{shipments}\" s WITHIN 5 SECONDS GRACE PERIOD 1 HOUR\nON o.id = s.order_id"
    );
    // Order i at T0 + i·100 ms; its shipment 2 s later, except every 7th
    // (none) and every 11th (12 s later: out of bound).
    let orders = |from: u32, to: u32| -> Vec<(String, Value)> {
        (from..to)
            .map(|i| (format!("o{i}"), json!({"id": i, "ts": T0 + i64::from(i) * 100})))
            .collect()
    };
    let ships = |from: u32, to: u32| -> Vec<(String, Value)> {
        (from..to)
            .filter(|i| i % 7 != 0)
            .map(|i| {
                let delay = if i % 11 == 0 { 12_000 } else { 2000 };
                (
                    format!("s{}", 10_000 + i),
                    shipment(10_000 + i, i, "ups", T0 + i64::from(i) * 100 + delay),
                )
            })
            .collect()
    };
    let produce = |topic: String, records: Vec<(String, Value)>| {
        let s = &s;
        async move {
            let borrowed: Vec<(Option<&str>, Option<Value>)> = records
                .iter()
                .map(|(k, v)| (Some(k.as_str()), Some(v.clone())))
                .collect();
            s.produce_to(&topic, &borrowed).await;
        }
    };
    let expected: Vec<Value> = (0..600u32)
        .filter(|i| i % 7 != 0 && i % 11 != 0)
        .map(|i| json!({"order_id": i, "shipment_id": 10_000 + i, "delay": 2000}))
        .collect();
    // Before the kill: orders 0..400, shipments of orders 0..200; the
    // orders 200..400 wait in the join's buffer for shipments after it.
    produce(s.input().to_owned(), orders(0, 400)).await;
    produce(shipments.clone(), ships(0, 200)).await;
    let host = unique_name("w");
    let yaml = s.yaml_with_inputs("eos", &sql, &inputs, "  processingGuarantee: ExactlyOnce\n");
    let mut worker = s.start(&yaml, &host, "off");
    // Kill it once the pairs of the first shipments are written (committed
    // with the buffered orders waiting for later shipments).
    let first_pairs = expected
        .iter()
        .filter(|r| r["order_id"].as_u64().unwrap() < 200)
        .count();
    s.wait_for_at_least(&s.output, first_pairs, &mut worker).await;
    worker.kill9();
    produce(s.input().to_owned(), orders(400, 600)).await;
    produce(shipments.clone(), ships(200, 600)).await;
    let mut restarted = s.start(&yaml, &host, "off");
    let interrupted = s.wait_for(&s.output, expected.len(), &mut restarted).await;
    // The restarted worker had buffered rows to restore.
    let log = restarted.log_text();
    let restored: u64 = log
        .lines()
        .filter(|l| l.contains("join state restored from the changelog"))
        .filter_map(|l| {
            strip_colors(l)
                .split(" rows=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(restored > 0, "no buffered rows restored; log:\n{log}");
    assert!(restarted.stop(), "graceful stop; log:\n{}", restarted.log_text());
    let interrupted = sorted(values(&interrupted));
    assert_eq!(interrupted, sorted(expected));

    // The same query, uninterrupted, into another topic.
    let reference = StreamFixture {
        fx: SinkFixture::reading("join-eos-ref", s.input()),
        output: format!("{}-ref", s.output),
    };
    let mut uninterrupted = reference.start(
        &reference.yaml_with_inputs("eos-ref", &sql, &inputs, "  processingGuarantee: ExactlyOnce\n"),
        &unique_name("w"),
        "off",
    );
    let reference_out = reference
        .wait_for(&reference.output, interrupted.len(), &mut uninterrupted)
        .await;
    assert!(uninterrupted.stop());
    assert_eq!(sorted(values(&reference_out)), interrupted);
    // Keys: the join key, whatever the inputs' keys were.
    let keys: Vec<Vec<u8>> = reference_out.iter().map(|r| r.key.clone().unwrap()).collect();
    assert!(keys.contains(&b"1".to_vec()), "{keys:?}");
}

/// Aggregates over a stream-table join: orders counted per customer region
/// and minute (the region comes from the table).
#[tokio::test(flavor = "multi_thread")]
async fn orders_per_customer_region_aggregate_over_a_stream_table_join() {
    let s = StreamFixture::new("join-agg", 1).await;
    let customers = s.topic("customers", 2).await;
    s.produce_to(
        &customers,
        &[
            (Some("c1"), Some(customer("Ada", "eu"))),
            (Some("c2"), Some(customer("Bob", "us"))),
            (Some("c4"), Some(customer("Di", "eu"))),
        ],
    )
    .await;
    s.produce(&[
        (Some("o1"), order(1, Some("c1"), 10)),
        (Some("o2"), order(2, Some("c2"), 20)),
        (Some("o3"), order(3, Some("c4"), 30)),
        (Some("o4"), order(4, Some("c9"), 40)), // unknown customer: not counted (inner join)
        // 998 s later, one per region: closes the first minute on each
        // repartition partition (stream time is per partition).
        (Some("o998"), order(998, Some("c1"), 1)),
        (Some("o999"), order(999, Some("c2"), 1)),
    ])
    .await;
    let sql = format!(
        "INSERT INTO {{out}}\nSELECT c.region AS region, WINDOWSTART AS window_start, COUNT(*) AS orders, SUM(o.amount) AS amount\nFROM {{in}} o JOIN \"{customers}\" c ON o.customer_id = c.ROWKEY\nWINDOW TUMBLING (SIZE 1 MINUTE)\nGROUP BY c.region\nEMIT FINAL"
    );
    let table = format!("    - topic: {customers}\n      kind: Table\n");
    let mut worker = s.start(
        &s.yaml_with_inputs("agg", &sql, &table, ""),
        &unique_name("w"),
        "off",
    );
    let out = s.wait_for(&s.output, 2, &mut worker).await;
    assert_eq!(
        sorted(values(&out)),
        sorted(vec![
            json!({"region": "eu", "window_start": T0, "orders": 2, "amount": 40}),
            json!({"region": "us", "window_start": T0, "orders": 1, "amount": 20}),
        ])
    );
    assert!(worker.stop(), "graceful stop; log:\n{}", worker.log_text());
}
