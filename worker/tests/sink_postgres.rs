//! The Postgres sink against the real Postgres (`make infra-postgres`), one
//! throwaway database per test: the writer driven through the `SinkWriter`
//! trait, and the worker binary end to end from Kafka (Debezium events,
//! poison records to the dead-letter topic, kill -9, two workers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls};
use tributary_api::sink::postgres::{InsertMode, PostgresSink, PrimaryKeyMode};
use tributary_testkit::{Endpoints, unique_name};
use tributary_worker::config::SecretResolver;
use tributary_worker::record::Record;
use tributary_worker::sink::postgres::{PostgresSinkConfig, PostgresWriter};
use tributary_worker::sink::{SinkError, SinkWriter};

use support::Scenario;
use support::fixtures::{TYPED_ROW, TYPED_TABLE};
use support::sink::{DeadLetter, STOP, SinkFixture, Target, WAIT, json_bytes};

/// A database of its own, dropped at the end.
struct Db {
    endpoints: Endpoints,
    name: String,
}

impl Db {
    async fn new() -> Self {
        let endpoints = Endpoints::from_env();
        let name = unique_name("sinkpg").replace('-', "_");
        connect(&endpoints.postgres)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("Postgres at {} unusable: {e}", endpoints.postgres));
        Self { endpoints, name }
    }

    async fn client(&self) -> Client {
        connect(&format!("{} dbname={}", self.base(), self.name)).await
    }

    fn base(&self) -> String {
        self.endpoints
            .postgres
            .split_whitespace()
            .filter(|p| !p.starts_with("dbname="))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn spec(&self) -> PostgresSink {
        let part = |key: &str| {
            self.endpoints
                .postgres
                .split_whitespace()
                .find_map(|p| p.strip_prefix(key).map(str::to_owned))
                .unwrap()
        };
        PostgresSink {
            host: part("host="),
            port: part("port=").parse().unwrap(),
            database: self.name.clone(),
            user: part("user="),
            ..PostgresSink::default()
        }
    }

    async fn writer(&self, spec: PostgresSink) -> PostgresWriter {
        let config = PostgresSinkConfig::new(spec, &SecretResolver::default()).unwrap();
        PostgresWriter::connect(config).await.unwrap()
    }

    /// Rows of `sql` as JSON objects.
    async fn rows(&self, sql: &str) -> Vec<Value> {
        let client = self.client().await;
        let query = format!("SELECT coalesce(json_agg(q), '[]')::text FROM ({sql}) q");
        let text: String = client.query_one(&query, &[]).await.unwrap().get(0);
        serde_json::from_str::<Vec<Value>>(&text).unwrap()
    }

    /// `column: type nullable` of `table`, in column order.
    async fn columns(&self, table: &str) -> Vec<String> {
        self.rows(&format!(
            "SELECT column_name || ': ' || data_type || CASE WHEN is_nullable = 'YES' THEN ' null' ELSE '' END AS c \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
        ))
        .await
        .into_iter()
        .map(|r| r["c"].as_str().unwrap().to_owned())
        .collect()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let (postgres, name) = (self.endpoints.postgres.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = connect(&postgres).await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(connection);
    client
}

fn record(topic: &str, key: Value, value: Option<Value>) -> Record {
    Record {
        topic: topic.to_owned(),
        partition: 0,
        offset: 0,
        timestamp_ms: None,
        key: (!key.is_null()).then_some(key),
        value,
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn auto_creates_the_table_and_upserts_replace_rows() {
    let db = Db::new().await;
    let mut writer = db.writer(db.spec()).await;
    let topic = "shop.public.products";
    let batch = [
        record(
            topic,
            json!({"id": 1}),
            Some(
                json!({"id": 1, "name": "bell", "price": 9.5, "stock": 3, "active": true, "tags": {"c": "red"}}),
            ),
        ),
        record(
            topic,
            json!({"id": 2}),
            Some(json!({"id": 2, "name": "lamp", "price": 20, "stock": 0, "active": false, "tags": null})),
        ),
    ];
    let outcome = writer.write(&batch).await.unwrap();
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    assert_eq!(
        db.columns("products").await,
        [
            "id: bigint",
            "name: text null",
            "price: double precision null",
            "stock: bigint null",
            "active: boolean null",
            "tags: jsonb null"
        ]
    );
    let key = db
        .rows(
            "SELECT a.attname AS k FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
             AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'products'::regclass AND i.indisprimary",
        )
        .await;
    assert_eq!(key, [json!({"k": "id"})]);

    let update = [record(
        topic,
        json!({"id": 1}),
        Some(
            json!({"id": 1, "name": "bell", "price": 11.25, "stock": 2, "active": true, "tags": {"c": "blue"}}),
        ),
    )];
    assert!(writer.write(&update).await.unwrap().rejected.is_empty());
    // Replaying the same batch (at-least-once redelivery) changes nothing.
    assert!(writer.write(&update).await.unwrap().rejected.is_empty());
    assert_eq!(
        db.rows("SELECT * FROM products ORDER BY id").await,
        [
            json!({"id": 1, "name": "bell", "price": 11.25, "stock": 2, "active": true, "tags": {"c": "blue"}}),
            json!({"id": 2, "name": "lamp", "price": 20, "stock": 0, "active": false, "tags": null}),
        ]
    );
}

#[tokio::test]
async fn tombstones_and_debezium_deletes_remove_rows_and_the_last_change_of_a_key_wins() {
    let db = Db::new().await;
    let mut writer = db.writer(db.spec()).await;
    let t = "cdc.public.ratings";
    let row = |id: i64, stars: i64| json!({"id": id, "stars": stars});
    let envelope = |op: &str, before: Value, after: Value| json!({"before": before, "after": after, "op": op, "source": {"table": "ratings"}, "ts_ms": 1});
    let first = [
        record(t, json!({"id": 1}), Some(envelope("r", Value::Null, row(1, 5)))),
        record(t, json!({"id": 2}), Some(envelope("c", Value::Null, row(2, 4)))),
        record(t, json!({"id": 3}), Some(envelope("c", Value::Null, row(3, 3)))),
        record(t, json!({"id": 4}), Some(envelope("c", Value::Null, row(4, 2)))),
    ];
    assert!(writer.write(&first).await.unwrap().rejected.is_empty());
    let second = [
        // Debezium delete, then its tombstone.
        record(t, json!({"id": 1}), Some(envelope("d", row(1, 5), Value::Null))),
        record(t, json!({"id": 1}), None),
        // Plain tombstone.
        record(t, json!({"id": 2}), None),
        // Upsert then delete in one batch: deleted.
        record(t, json!({"id": 3}), Some(envelope("u", row(3, 3), row(3, 1)))),
        record(t, json!({"id": 3}), None),
        // Delete then upsert in one batch: written.
        record(t, json!({"id": 4}), None),
        record(t, json!({"id": 4}), Some(envelope("c", Value::Null, row(4, 5)))),
        // Two upserts: the last wins.
        record(t, json!({"id": 5}), Some(envelope("c", Value::Null, row(5, 1)))),
        record(t, json!({"id": 5}), Some(envelope("u", row(5, 1), row(5, 2)))),
        // Deleting a row that does not exist is no error.
        record(t, json!({"id": 99}), None),
    ];
    let outcome = writer.write(&second).await.unwrap();
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    assert_eq!(
        db.rows("SELECT * FROM ratings ORDER BY id").await,
        [row(4, 5), row(5, 2)]
    );
}

#[tokio::test]
async fn deletes_before_the_table_exists_create_nothing() {
    let db = Db::new().await;
    let mut writer = db.writer(db.spec()).await;
    let outcome = writer
        .write(&[record("gone", json!({"id": 1}), None)])
        .await
        .unwrap();
    assert!(outcome.rejected.is_empty());
    assert!(db.columns("gone").await.is_empty());
}

#[tokio::test]
async fn a_new_field_adds_a_nullable_column() {
    let db = Db::new().await;
    let mut writer = db.writer(db.spec()).await;
    let t = "customers";
    writer
        .write(&[record(t, json!({"id": 1}), Some(json!({"id": 1, "name": "Ann"})))])
        .await
        .unwrap();
    let outcome = writer
        .write(&[
            record(
                t,
                json!({"id": 2}),
                Some(json!({"id": 2, "name": "Bo", "vip": true, "score": 1})),
            ),
            record(
                t,
                json!({"id": 3}),
                Some(json!({"id": 3, "name": "Cy", "score": 2.5})),
            ),
        ])
        .await
        .unwrap();
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    assert_eq!(
        db.columns(t).await,
        [
            "id: bigint",
            "name: text null",
            "vip: boolean null",
            "score: double precision null"
        ]
    );
    assert_eq!(
        db.rows("SELECT * FROM customers ORDER BY id").await,
        [
            json!({"id": 1, "name": "Ann", "vip": null, "score": null}),
            json!({"id": 2, "name": "Bo", "vip": true, "score": 1}),
            json!({"id": 3, "name": "Cy", "vip": null, "score": 2.5}),
        ]
    );
    // An upsert leaves columns its record does not carry alone.
    writer
        .write(&[record(t, json!({"id": 2}), Some(json!({"id": 2, "name": "Bob"})))])
        .await
        .unwrap();
    assert_eq!(
        db.rows("SELECT * FROM customers WHERE id = 2").await,
        [json!({"id": 2, "name": "Bob", "vip": true, "score": 1})]
    );
}

#[tokio::test]
async fn without_auto_evolve_records_with_unknown_fields_are_rejected() {
    let db = Db::new().await;
    let mut writer = db
        .writer(PostgresSink {
            auto_evolve: false,
            ..db.spec()
        })
        .await;
    writer
        .write(&[record("t", json!({"id": 1}), Some(json!({"id": 1, "a": 1})))])
        .await
        .unwrap();
    let outcome = writer
        .write(&[
            record("t", json!({"id": 2}), Some(json!({"id": 2, "a": 2}))),
            record("t", json!({"id": 3}), Some(json!({"id": 3, "b": 3}))),
        ])
        .await
        .unwrap();
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].index, 1);
    assert_eq!(outcome.rejected[0].class, "unknown_column");
    assert!(outcome.rejected[0].message.contains("\"b\""), "{outcome:?}");
    assert_eq!(
        db.rows("SELECT id FROM t ORDER BY id").await,
        [json!({"id": 1}), json!({"id": 2})]
    );
}

#[tokio::test]
async fn composite_keys_from_the_record_key_and_from_the_value() {
    let db = Db::new().await;
    let mut writer = db.writer(db.spec()).await;
    let t = "order_items";
    let item = |order: i64, line: i64, qty: i64| {
        record(
            t,
            json!({"order_id": order, "line": line}),
            Some(json!({"order_id": order, "line": line, "qty": qty})),
        )
    };
    writer
        .write(&[item(1, 1, 2), item(1, 2, 1), item(2, 1, 7)])
        .await
        .unwrap();
    writer.write(&[item(1, 2, 9)]).await.unwrap();
    writer
        .write(&[record(t, json!({"order_id": 2, "line": 1}), None)])
        .await
        .unwrap();
    assert_eq!(
        db.rows("SELECT * FROM order_items ORDER BY order_id, line").await,
        [
            json!({"order_id": 1, "line": 1, "qty": 2}),
            json!({"order_id": 1, "line": 2, "qty": 9})
        ]
    );

    // Keys from value fields (a reporting table keyed by region and day).
    let mut by_value = db
        .writer(PostgresSink {
            primary_key_mode: PrimaryKeyMode::RecordValue,
            primary_key_fields: vec!["region".into(), "day".into()],
            delete_enabled: false,
            table: "counts".into(),
            ..db.spec()
        })
        .await;
    let count = |region: &str, day: &str, n: i64| {
        record(
            "x",
            Value::Null,
            Some(json!({"region": region, "day": day, "n": n})),
        )
    };
    by_value
        .write(&[count("eu", "2026-01-01", 1), count("us", "2026-01-01", 4)])
        .await
        .unwrap();
    by_value.write(&[count("eu", "2026-01-01", 3)]).await.unwrap();
    assert_eq!(
        db.rows("SELECT region, n FROM counts ORDER BY region").await,
        [json!({"region": "eu", "n": 3}), json!({"region": "us", "n": 4})]
    );
}

#[tokio::test]
async fn a_constraint_violation_rejects_only_the_bad_records() {
    let db = Db::new().await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE reviews (id bigint PRIMARY KEY, stars int NOT NULL CHECK (stars BETWEEN 1 AND 5), \
             body text, created date)",
        )
        .await
        .unwrap();
    let mut writer = db.writer(db.spec()).await;
    let review = |id: i64, stars: Value, created: &str| {
        record(
            "reviews",
            json!({"id": id}),
            Some(json!({"id": id, "stars": stars, "body": format!("review {id}"), "created": created})),
        )
    };
    let mut batch: Vec<Record> = (1..=20).map(|id| review(id, json!(4), "2026-12-01")).collect();
    batch[3] = review(4, json!(9), "2026-12-01"); // CHECK violation
    batch[11] = review(12, json!(3), "not a date"); // invalid input for the column type
    batch[17] = review(18, Value::Null, "2026-12-01"); // NOT NULL violation
    let outcome = writer.write(&batch).await.unwrap();
    let rejected: Vec<(usize, &str)> = outcome
        .rejected
        .iter()
        .map(|r| (r.index, r.class.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [(3, "23514"), (11, "22007"), (17, "23502")],
        "{outcome:?}"
    );
    assert!(
        outcome.rejected[0].message.contains("reviews_stars_check"),
        "{outcome:?}"
    );
    let ids: Vec<i64> = db
        .rows("SELECT id FROM reviews ORDER BY id")
        .await
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=20).filter(|id| ![4, 12, 18].contains(id)).collect();
    assert_eq!(ids, expected);

    // Insert mode: an existing key is a rejected record, the rest is written.
    let mut inserter = db
        .writer(PostgresSink {
            insert_mode: InsertMode::Insert,
            ..db.spec()
        })
        .await;
    let outcome = inserter
        .write(&[
            review(1, json!(5), "2026-12-02"),
            review(30, json!(5), "2026-12-02"),
        ])
        .await
        .unwrap();
    assert_eq!(outcome.rejected.len(), 1, "{outcome:?}");
    assert_eq!(
        (outcome.rejected[0].index, outcome.rejected[0].class.as_str()),
        (0, "23505")
    );
    assert_eq!(
        db.rows("SELECT id, stars FROM reviews WHERE id IN (1, 30) ORDER BY id")
            .await,
        [json!({"id": 1, "stars": 4}), json!({"id": 30, "stars": 5})]
    );
}

#[tokio::test]
async fn update_mode_changes_existing_rows_only() {
    let db = Db::new().await;
    db.client()
        .await
        .batch_execute("CREATE TABLE stock (sku text PRIMARY KEY, qty bigint)")
        .await
        .unwrap();
    db.client()
        .await
        .batch_execute("INSERT INTO stock VALUES ('a', 1)")
        .await
        .unwrap();
    let mut writer = db
        .writer(PostgresSink {
            insert_mode: InsertMode::Update,
            primary_key_fields: vec!["sku".into()],
            ..db.spec()
        })
        .await;
    let outcome = writer
        .write(&[
            record("stock", json!("a"), Some(json!({"qty": 5}))),
            record("stock", json!("b"), Some(json!({"qty": 6}))),
        ])
        .await
        .unwrap();
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    assert_eq!(
        db.rows("SELECT * FROM stock").await,
        [json!({"sku": "a", "qty": 5})]
    );
}

#[tokio::test]
async fn records_that_are_not_rows_are_rejected_before_the_database() {
    let db = Db::new().await;
    let mut writer = db.writer(db.spec()).await;
    let outcome = writer
        .write(&[
            record("t", json!({"id": 1}), Some(json!({"id": 1, "v": "ok"}))),
            record("t", Value::Null, Some(json!({"v": "no key"}))),
            record("t", json!({"id": 3}), Some(json!("a string"))),
        ])
        .await
        .unwrap();
    let rejected: Vec<usize> = outcome.rejected.iter().map(|r| r.index).collect();
    assert_eq!(rejected, [1, 2]);
    assert!(outcome.rejected.iter().all(|r| r.class == "invalid_record"));
    assert_eq!(db.rows("SELECT * FROM t").await, [json!({"id": 1, "v": "ok"})]);
}

#[tokio::test]
async fn a_missing_table_without_auto_create_and_a_missing_database_are_fatal() {
    let db = Db::new().await;
    let mut writer = db
        .writer(PostgresSink {
            auto_create: false,
            ..db.spec()
        })
        .await;
    let error = writer
        .write(&[record("t", json!({"id": 1}), Some(json!({"id": 1})))])
        .await
        .unwrap_err();
    let SinkError::Fatal { message } = error else {
        panic!("fatal expected: {error:?}")
    };
    assert!(message.contains("\"public\".\"t\" does not exist"), "{message}");
    assert!(message.contains("spec.sink.postgres.autoCreate"), "{message}");

    let config = PostgresSinkConfig::new(
        PostgresSink {
            database: format!("{}_absent", db.name),
            ..db.spec()
        },
        &SecretResolver::default(),
    )
    .unwrap();
    let error = PostgresWriter::connect(config).await.unwrap_err();
    assert!(matches!(error, SinkError::Fatal { .. }), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_retryable() {
    let db = Db::new().await;
    let config = PostgresSinkConfig::new(
        PostgresSink {
            port: 1, // nothing listens there
            ..db.spec()
        },
        &SecretResolver::default(),
    )
    .unwrap();
    let mut writer = PostgresWriter::new(config);
    let error = writer
        .write(&[record("t", json!({"id": 1}), Some(json!({"id": 1})))])
        .await
        .unwrap_err();
    assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
}

#[tokio::test]
async fn a_cut_connection_is_retryable_and_the_next_write_reconnects() {
    let db = Db::new().await;
    let mut writer = db.writer(db.spec()).await;
    let t = "events";
    writer
        .write(&[record(t, json!({"id": 1}), Some(json!({"id": 1})))])
        .await
        .unwrap();
    db.client()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'tributary-sink'",
            &[],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let batch = [record(t, json!({"id": 2}), Some(json!({"id": 2})))];
    // The first attempt may notice the cut (retryable) or find the
    // connection already known to be closed and reconnect at once.
    if let Err(error) = writer.write(&batch).await {
        assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
        writer.write(&batch).await.unwrap();
    }
    assert_eq!(
        db.rows("SELECT id FROM events ORDER BY id").await,
        [json!({"id": 1}), json!({"id": 2})]
    );
}

#[tokio::test]
async fn awkward_text_and_json_values_arrive_unchanged() {
    let db = Db::new().await;
    let mut writer = db.writer(db.spec()).await;
    let value = json!({
        "id": 1,
        "note": "tab\there, newline\nthere, back\\slash, \\N, quote \" and ünïcödé",
        "doc": {"text": "line\nbreak\t\\", "list": [1, 2.5, null, true]},
        "huge": 18_446_744_073_709_551_615_u64,
    });
    let outcome = writer
        .write(&[record("odd", json!({"id": 1}), Some(value.clone()))])
        .await
        .unwrap();
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    assert_eq!(
        db.columns("odd").await,
        [
            "id: bigint",
            "note: text null",
            "doc: jsonb null",
            "huge: numeric null"
        ]
    );
    let rows = db.rows("SELECT id, note, doc, huge::text AS huge FROM odd").await;
    assert_eq!(rows[0]["note"], value["note"]);
    assert_eq!(rows[0]["doc"], value["doc"]);
    assert_eq!(rows[0]["huge"], "18446744073709551615");
}

#[tokio::test]
async fn an_unchanged_toast_column_keeps_its_value() {
    let db = Db::new().await;
    let mut writer = db.writer(db.spec()).await;
    let t = "cdc.public.docs";
    let change = |op: &str, body: &str| json!({"before": null, "after": {"id": 1, "title": op, "body": body}, "op": op, "source": {}});
    writer
        .write(&[record(t, json!({"id": 1}), Some(change("c", "a long text")))])
        .await
        .unwrap();
    let outcome = writer
        .write(&[record(
            t,
            json!({"id": 1}),
            Some(change("u", "__debezium_unavailable_value")),
        )])
        .await
        .unwrap();
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    assert_eq!(
        db.rows("SELECT * FROM docs").await,
        [json!({"id": 1, "title": "u", "body": "a long text"})]
    );
}

/// The scenario's database as a sink target: table `ratings`, keyed by
/// `id` (the record key is the id as a plain number).
struct PgTarget<'a> {
    db: &'a Db,
}

impl Target for PgTarget<'_> {
    fn block(&self) -> String {
        let spec = self.db.spec();
        format!(
            "    postgres:\n      host: {}\n      port: {}\n      database: {}\n      user: {}\n      table: ratings\n      primaryKeyFields: [id]\n",
            spec.host, spec.port, spec.database, spec.user
        )
    }

    async fn delivered(&self) -> u64 {
        if self.db.columns("ratings").await.is_empty() {
            return 0;
        }
        let rows = self.db.rows("SELECT count(*) AS n FROM ratings").await;
        rows[0]["n"].as_u64().unwrap()
    }
}

/// End to end: Debezium change events in a Kafka topic, the worker binary
/// running a `spec.sink.postgres` Connector, the table it keeps.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_keeps_a_table_from_debezium_events_in_kafka() {
    let db = Db::new().await;
    let fx = SinkFixture::new("pg-sink-e2e", 2).await;
    let event = |op: &str, id: u32, stars: u32| {
        let row = json!({"id": id, "stars": stars, "comment": format!("bike {id}")});
        let (before, after) = if op == "d" {
            (row, Value::Null)
        } else {
            (Value::Null, row)
        };
        let value =
            json!({"before": before, "after": after, "op": op, "ts_ms": 1, "source": {"table": "ratings"}});
        (json_bytes(&json!({"id": id})), json_bytes(&value))
    };
    let mut records = Vec::new();
    records.extend((1..=40).map(|id| event("c", id, 1)));
    records.extend((1..=40).map(|id| event("u", id, id % 5 + 1)));
    for id in 1..=10 {
        records.push(event("d", id, 0));
        records.push((json_bytes(&json!({"id": id})), None)); // Debezium's tombstone
    }
    fx.produce(&fx.topic, &records).await;
    let spec = db.spec();
    let block = format!(
        "    postgres:\n      host: {}\n      port: {}\n      database: {}\n      user: {}\n      table: ratings\n",
        spec.host, spec.port, spec.database, spec.user
    );
    let mut worker = fx.start(&fx.yaml(&block, "", ""));
    let expected: Vec<Value> = (11..=40)
        .map(|id| json!({"id": id, "stars": id % 5 + 1, "comment": format!("bike {id}")}))
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = if db.columns("ratings").await.is_empty() {
            Vec::new()
        } else {
            db.rows("SELECT id, stars, comment FROM ratings ORDER BY id")
                .await
        };
        if rows == expected {
            break;
        }
        // On failure, dropping the worker kills it.
        assert!(
            Instant::now() <= deadline && worker.running(),
            "table not as expected ({} rows); worker log:\n{}",
            rows.len(),
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(worker.stop_within(STOP), "{}", worker.log_text());
}

/// Records the database refuses (a CHECK constraint), records that cannot be
/// rows and bytes that are not JSON go to the dead-letter topic with their
/// context; the rest of the batch is written and everything is committed.
#[tokio::test(flavor = "multi_thread")]
async fn poison_records_go_to_the_dead_letter_topic_with_context_headers() {
    let db = Db::new().await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE ratings (id bigint PRIMARY KEY, rating int CHECK (rating BETWEEN 1 AND 5))",
        )
        .await
        .unwrap();
    let fx = SinkFixture::new("pg-dlq", 1).await;
    let (mut worker, dlq) = fx.start_with_dead_letters(&PgTarget { db: &db }.block());
    fx.produce(
        &fx.topic,
        &[
            (json_bytes(&json!(1)), json_bytes(&json!({"id": 1, "rating": 5}))),
            (json_bytes(&json!(2)), json_bytes(&json!({"id": 2, "rating": 9}))),
            (json_bytes(&json!(3)), Some(b"{not json".to_vec())),
            (json_bytes(&json!(4)), json_bytes(&json!(["not", "a", "row"]))),
            (json_bytes(&json!(5)), json_bytes(&json!({"id": 5, "rating": 1}))),
        ],
    )
    .await;
    let dead = fx.wait_for_topic(&dlq, 3, &worker).await;
    assert_eq!(dead.len(), 3, "{dead:#?}");
    assert_eq!(dead[0].key.as_deref(), Some(b"2".as_slice()));
    assert_eq!(
        dead[0].value.as_deref(),
        Some(br#"{"id":2,"rating":9}"#.as_slice()),
        "the original bytes"
    );
    let sink = |offset, class| DeadLetter {
        partition: 0,
        offset,
        stage: "TASK_PUT",
        component: "tributary.sink.postgres",
        class,
    };
    sink(1, "23514").assert(&fx, &dead[0], "ratings_rating_check");
    DeadLetter::not_json(2).assert(&fx, &dead[1], "JSON");
    sink(3, "invalid_record").assert(&fx, &dead[2], "must be a JSON object");
    assert!(worker.stop_within(STOP), "{}", worker.log_text());
    assert_eq!(
        db.rows("SELECT id, rating FROM ratings ORDER BY id").await,
        [json!({"id": 1, "rating": 5}), json!({"id": 5, "rating": 1})]
    );
    assert_eq!(fx.committed(0), Some(5), "everything handled is committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_loses_nothing() {
    let db = Db::new().await;
    let fx = SinkFixture::new("pg-kill", 3).await;
    support::sink::kill_9_mid_stream_loses_nothing(&fx, &PgTarget { db: &db }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_partitions_and_one_takes_over_from_a_killed_one() {
    let db = Db::new().await;
    let fx = SinkFixture::new("pg-group", 4).await;
    support::sink::two_workers_share_and_one_takes_over(&fx, &PgTarget { db: &db }).await;
}

/// Round trip of every column type Debezium maps: the worker's CDC source
/// captures a row as Debezium's `json-with-schema`, a second worker's
/// Postgres sink writes it into another schema of the same database. The
/// Connect schemas give the created table the source's column types (enum
/// and varchar become text: Connect names no more) and every value arrives
/// unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn json_with_schema_debezium_types_survive_a_round_trip() {
    let scenario = Scenario::new("pg-sink-typed").await;
    let db = scenario.db().await;
    db.batch_execute(TYPED_TABLE).await.unwrap();
    db.batch_execute(TYPED_ROW).await.unwrap();
    db.batch_execute("CREATE SCHEMA replica").await.unwrap();
    let mut source = scenario.start_worker(&scenario.connector_yaml("", "json-with-schema"));
    let fx = SinkFixture::reading("pg-sink-typed", &scenario.topic("typed"));
    let (host, port) = (
        db_param(&scenario.endpoints.postgres, "host"),
        db_param(&scenario.endpoints.postgres, "port"),
    );
    let block = format!(
        "    postgres:\n      host: {host}\n      port: {port}\n      database: {}\n      user: postgres\n      schema: replica\n      table: typed\n",
        scenario.database
    );
    let yaml = fx.yaml(&block, "", "").replace(
        "key: json\n    value: json\n",
        "key: json-with-schema\n    value: json-with-schema\n",
    );
    let mut sink = fx.start(&yaml);
    let columns = |schema: &'static str| {
        let db = &db;
        async move {
            db.query(
                "SELECT a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&format!("{schema}.typed")],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
        }
    };
    let rows = |schema: &'static str| {
        let db = &db;
        async move {
            let exists: bool = db
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[&format!("{schema}.typed")],
                )
                .await
                .unwrap()
                .get(0);
            if !exists {
                return Vec::new();
            }
            db.query(&format!("SELECT row_to_json(t)::text FROM {schema}.typed t"), &[])
                .await
                .unwrap()
                .iter()
                .map(|r| serde_json::from_str::<Value>(&r.get::<_, String>(0)).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let deadline = Instant::now() + WAIT;
    while rows("replica").await.is_empty() {
        assert!(
            Instant::now() < deadline && sink.running(),
            "nothing arrived; sink log:\n{}\nsource log:\n{}",
            sink.log_text(),
            source.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        columns("replica").await,
        [
            "id uuid",
            "flag boolean",
            "small smallint",
            "big bigint",
            "ratio double precision",
            "amount numeric(12,3)",
            "free numeric",
            "day date",
            "at timestamp without time zone",
            "at_us timestamp without time zone",
            "at_tz timestamp with time zone",
            "clock time without time zone",
            "doc jsonb",
            "raw bytea",
            "feeling text",
            "scores integer[]",
            "label text",
        ]
    );
    assert_eq!(rows("replica").await, rows("public").await);
    // Deletes reach the replica through the uuid key.
    db.batch_execute("DELETE FROM public.typed").await.unwrap();
    let deadline = Instant::now() + WAIT;
    while !rows("replica").await.is_empty() {
        assert!(Instant::now() < deadline, "{}", sink.log_text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(sink.stop_within(STOP), "{}", sink.log_text());
    source.kill9();
    drop(source);
    scenario.cleanup().await;
}

fn db_param(url: &str, key: &str) -> String {
    url.split_whitespace()
        .find_map(|p| p.strip_prefix(&format!("{key}=")))
        .unwrap()
        .to_owned()
}
