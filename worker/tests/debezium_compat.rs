//! Our CDC output next to Debezium's: the same schema and the same changes,
//! captured once by `tributary-worker` and once by Kafka Connect + Debezium's
//! Postgres connector (each with its own slot, publication and topic prefix),
//! compared record by record, field by field, in the JSON-with-schema format
//! (so the Connect schemas are compared too).
//!
//! Only what must differ between two captures is normalised ([`NORMALISED`]);
//! every other difference must be one of [`DOCUMENTED`], which is the list in
//! docs/debezium-compatibility.md. A new difference fails the test, and so
//! does a documented one that went away (so the page stays true).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value};
use support::debezium::Debezium;
use support::fixtures::{BIKE_STORE, BIKE_STORE_CHANGES, TYPED_ROW, TYPED_TABLE};
use support::{Record, Scenario, read_to_end, read_topic};

/// Connect start-up plus both snapshots on a busy two-core machine.
const WAIT: Duration = Duration::from_mins(3);

/// Fields that differ between any two captures of the same changes (times,
/// WAL positions, transaction ids, the connector's name and version); their
/// values are not compared.
const NORMALISED: &[&str] = &[
    "value.payload.ts_ms",
    "value.payload.ts_us",
    "value.payload.ts_ns",
    "value.payload.source.ts_ms",
    "value.payload.source.ts_us",
    "value.payload.source.ts_ns",
    "value.payload.source.lsn",
    "value.payload.source.txId",
    "value.payload.source.sequence",
    "value.payload.source.version",
];

/// Documented differences (docs/debezium-compatibility.md), as the paths
/// where our records differ from Debezium's.
const DOCUMENTED: &[&str] = &[];

/// Records per table after the snapshot and after the changes.
const TABLES: &[(&str, usize, usize)] = &[
    ("customers", 2, 4),
    ("products", 2, 3),
    ("orders", 1, 1),
    ("order_items", 2, 7),
    // r; then u, d, tombstone, c, t.
    ("typed", 1, 6),
];

/// Changes to `typed` after the snapshot: every mapped type through the
/// stream (update, delete, insert), then a truncate.
const TYPED_CHANGES: &str = "
UPDATE typed SET label = 'bell', big = big + 1;
DELETE FROM typed;
";

#[tokio::test(flavor = "multi_thread")]
async fn envelopes_match_debezium_field_by_field() {
    let scenario = Scenario::new("compat").await;
    let db = scenario.db().await;
    for sql in [BIKE_STORE, TYPED_TABLE, TYPED_ROW] {
        db.batch_execute(sql).await.unwrap();
    }
    // Debezium skips truncates by default; ours are compared with its events.
    let mut debezium = Debezium::start(&scenario, "skipped.operations=none");
    let mut worker = scenario.start_worker(&scenario.connector_yaml("", "json-with-schema"));
    let bootstrap = scenario.endpoints.kafka_bootstrap.clone();

    // Both snapshots first, so the changes below are streamed by both.
    for (table, snapshot, _) in TABLES {
        for (who, topic) in [
            ("tributary", scenario.topic(table)),
            ("debezium", debezium.topic(table)),
        ] {
            let records = read_topic(&bootstrap, &topic, *snapshot, WAIT).await;
            assert!(
                records.len() >= *snapshot,
                "{who}: {table} snapshot incomplete ({} records)\nworker:\n{}\nconnect:\n{}",
                records.len(),
                worker.log_text(),
                tail(&debezium.log_text()),
            );
        }
    }
    for sql in [BIKE_STORE_CHANGES, TYPED_CHANGES, TYPED_ROW, "TRUNCATE typed"] {
        db.batch_execute(sql).await.unwrap();
    }

    let mut found: BTreeMap<String, (Value, Value)> = BTreeMap::new();
    for (table, _, total) in TABLES {
        let ours = read_all(&bootstrap, &scenario.topic(table), *total).await;
        let theirs = read_all(&bootstrap, &debezium.topic(table), *total).await;
        assert_eq!(
            (ours.len(), theirs.len()),
            (*total, *total),
            "{table}: record counts (ours, Debezium's)\nours: {ours:#?}\ntheirs: {theirs:#?}\nconnect:\n{}",
            tail(&debezium.log_text())
        );
        for (index, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let a = normalise(a, &scenario.prefix);
            let b = normalise(b, &debezium.prefix);
            let mut differences = Vec::new();
            diff("key", a.key.as_ref(), b.key.as_ref(), &mut differences);
            diff("value", a.value.as_ref(), b.value.as_ref(), &mut differences);
            for (path, ours, theirs) in differences {
                if NORMALISED.contains(&path.as_str()) {
                    continue;
                }
                found
                    .entry(path)
                    .or_insert_with(|| (ours, Value::String(format!("{theirs} ({table} record {index})"))));
            }
        }
    }

    let documented: BTreeSet<&str> = DOCUMENTED.iter().copied().collect();
    let undocumented: Vec<_> = found
        .iter()
        .filter(|(path, _)| !documented.contains(path.as_str()))
        .map(|(path, (ours, theirs))| format!("{path}: ours {ours}, Debezium {theirs}"))
        .collect();
    let gone: Vec<_> = documented
        .iter()
        .filter(|path| !found.contains_key(**path))
        .collect();
    assert!(
        undocumented.is_empty() && gone.is_empty(),
        "undocumented differences:\n  {}\ndocumented differences not seen: {gone:?}",
        undocumented.join("\n  ")
    );
    assert!(worker.running(), "{}", worker.log_text());
    assert!(debezium.running(), "{}", tail(&debezium.log_text()));
    drop(debezium);
    drop(worker);
    scenario.cleanup().await;
}

/// Every record of `topic`, once at least `expected` arrived (and whatever
/// else is there, so extra records show).
async fn read_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<Record> {
    read_topic(bootstrap, topic, expected, WAIT).await;
    // Anything either side writes after the last expected record has had time
    // to arrive while the other side was read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    read_to_end(bootstrap, topic).await
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The record with its topic prefix replaced by `PREFIX` (in schema names and
/// `source.name`) and each Connect struct schema's `fields` array turned into
/// an object keyed by field name, plus `field_order`, so a difference names
/// the field instead of an array index.
fn normalise(record: &Record, prefix: &str) -> Record {
    Record {
        key: record.key.as_ref().map(|v| normalise_value(v, prefix)),
        value: record.value.as_ref().map(|v| normalise_value(v, prefix)),
    }
}

fn normalise_value(value: &Value, prefix: &str) -> Value {
    match value {
        Value::String(s) if s == prefix => Value::String("PREFIX".into()),
        Value::String(s) => match s.strip_prefix(&format!("{prefix}.")) {
            Some(rest) => Value::String(format!("PREFIX.{rest}")),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| normalise_value(v, prefix)).collect()),
        Value::Object(object) => {
            let mut out = Map::new();
            for (key, item) in object {
                let named_fields = key == "fields"
                    && item
                        .as_array()
                        .is_some_and(|fs| fs.iter().all(|f| f.get("field").is_some_and(Value::is_string)));
                if named_fields {
                    let fields = item.as_array().unwrap();
                    let order: Vec<Value> = fields.iter().map(|f| f["field"].clone()).collect();
                    let by_name: Map<String, Value> = fields
                        .iter()
                        .map(|f| {
                            (
                                f["field"].as_str().unwrap().to_owned(),
                                normalise_value(f, prefix),
                            )
                        })
                        .collect();
                    out.insert("fields".into(), Value::Object(by_name));
                    out.insert("field_order".into(), Value::Array(order));
                } else {
                    out.insert(key.clone(), normalise_value(item, prefix));
                }
            }
            Value::Object(out)
        }
        _ => value.clone(),
    }
}

/// Appends `(path, ours, theirs)` for every leaf where `a` and `b` differ;
/// a field present on one side only is a difference at that field.
fn diff(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<(String, Value, Value)>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            // Connect's JsonConverter writes a payload in its schema's order.
            let (xs, ys): (Vec<&str>, Vec<&str>) = (
                x.keys().map(String::as_str).collect(),
                y.keys().map(String::as_str).collect(),
            );
            let same_set = xs.iter().collect::<BTreeSet<_>>() == ys.iter().collect::<BTreeSet<_>>();
            if same_set && xs != ys {
                out.push((
                    format!("{path}.<order>"),
                    Value::from(xs.clone()),
                    Value::from(ys.clone()),
                ));
            }
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                diff(&format!("{path}.{key}"), x.get(key), y.get(key), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push((
            path.to_owned(),
            a.cloned().unwrap_or(Value::String("<absent>".into())),
            b.cloned().unwrap_or(Value::String("<absent>".into())),
        )),
    }
}
