//! Postgres CDC against a real Postgres 15 (logical replication) and Kafka:
//! the bike-store schema snapshotted and streamed, as Debezium would write it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::avro::{decode_avro, field};
use support::fixtures::{BIKE_STORE, BIKE_STORE_CHANGES, TYPED_ROW, TYPED_TABLE};
use support::{Record, Scenario, read_topic};
use tributary_registry::RegistryClient;

const WAIT: Duration = Duration::from_mins(1);
const TRANSACTIONS: i32 = 40;
const ROWS: i32 = 500;

async fn records(scenario: &Scenario, table: &str, expected: usize) -> Vec<Record> {
    let records = read_topic(
        &scenario.endpoints.kafka_bootstrap,
        &scenario.topic(table),
        expected,
        WAIT,
    )
    .await;
    assert!(
        records.len() >= expected,
        "{table}: expected {expected} records, got {}: {records:#?}",
        records.len()
    );
    records
}

/// The bike store's existing rows as `op: r` records.
async fn assert_snapshot(scenario: &Scenario) {
    // Snapshot: one `r` per existing row, keyed by the primary key.
    let customers = records(scenario, "customers", 2).await;
    assert!(customers.iter().all(|r| r.op() == Some("r")), "{customers:#?}");
    assert_eq!(customers[0].key_payload(), &json!({"id": 1}));
    let ann = customers[0].envelope();
    assert_eq!(
        ann["after"],
        json!({"id": 1, "name": "Ann", "email": "ann@example.com"})
    );
    assert_eq!(ann["before"], Value::Null);
    assert_eq!(ann["source"]["connector"], "postgresql");
    assert_eq!(ann["source"]["db"], scenario.database);
    assert_eq!(ann["source"]["schema"], "public");
    assert_eq!(ann["source"]["table"], "customers");
    assert_eq!(ann["source"]["name"], scenario.prefix);
    let items = records(scenario, "order_items", 2).await;
    assert_eq!(items[1].key_payload(), &json!({"order_id": 1, "item_no": 2}));
    let products = records(scenario, "products", 2).await;
    // numeric(10,2) → Connect Decimal: base64 of the unscaled big-endian value (129999).
    assert_eq!(products[0].envelope()["after"]["price"], "AfvP");
    assert_eq!(
        products[0].envelope()["after"]["tags"],
        json!(["touring", "steel"])
    );
    let orders = records(scenario, "orders", 1).await;
    // date → days since the epoch.
    assert_eq!(orders[0].envelope()["after"]["ordered_on"], 19783);
    let markers: BTreeSet<String> = [&customers, &items, &products, &orders]
        .iter()
        .flat_map(|records| {
            records
                .iter()
                .map(|r| r.envelope()["source"]["snapshot"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(
        markers.contains("first") && markers.contains("last"),
        "{markers:?}"
    );
}

/// The changes made after the snapshot, as Debezium writes them.
async fn assert_streamed_changes(scenario: &Scenario) {
    let customers = records(scenario, "customers", 4).await;
    let inserted = &customers[2];
    assert_eq!(inserted.op(), Some("c"));
    assert_eq!(inserted.key_payload(), &json!({"id": 3}));
    assert_eq!(inserted.envelope()["source"]["snapshot"], "false");
    assert!(inserted.envelope()["source"]["txId"].as_i64().is_some());
    assert!(inserted.envelope()["source"]["lsn"].as_i64().is_some());
    let updated = &customers[3];
    assert_eq!(updated.op(), Some("u"));
    // REPLICA IDENTITY DEFAULT: no old row image.
    assert_eq!(updated.envelope()["before"], Value::Null);
    assert_eq!(updated.envelope()["after"]["email"], "bob@example.com");

    // delete → d + tombstone; key change → d, tombstone, c.
    let items = records(scenario, "order_items", 7).await;
    let streamed: Vec<(Option<&str>, Value)> = items[2..]
        .iter()
        .map(|r| (r.op(), r.key_payload().clone()))
        .collect();
    assert_eq!(
        streamed,
        vec![
            (Some("d"), json!({"order_id": 1, "item_no": 2})),
            (None, json!({"order_id": 1, "item_no": 2})),
            (Some("d"), json!({"order_id": 1, "item_no": 1})),
            (None, json!({"order_id": 1, "item_no": 1})),
            (Some("c"), json!({"order_id": 1, "item_no": 9})),
        ]
    );
    assert_eq!(
        items[2].envelope()["before"],
        json!({"order_id": 1, "item_no": 2, "product_id": null, "quantity": 0}),
        "REPLICA IDENTITY DEFAULT: the key columns only (NOT NULL ones as Debezium fills them: zero)"
    );

    let products = records(scenario, "products", 3).await;
    let repriced = products[2].envelope();
    assert_eq!(repriced["op"], "u");
    assert_eq!(
        repriced["before"]["price"], "AfvP",
        "REPLICA IDENTITY FULL: the whole old row"
    );
    assert_eq!(repriced["before"]["name"], "Trek 520");
}

#[tokio::test(flavor = "multi_thread")]
async fn bike_store_snapshot_then_streamed_changes() {
    let scenario = Scenario::new("cdc-bikes").await;
    let db = scenario.db().await;
    db.batch_execute(BIKE_STORE).await.unwrap();
    let yaml = scenario.connector_yaml("", "json");
    let mut worker = scenario.start_worker(&yaml);

    assert_snapshot(&scenario).await;

    // Streaming: insert, update, delete (+ tombstone), key change, REPLICA IDENTITY FULL.
    db.batch_execute(BIKE_STORE_CHANGES).await.unwrap();

    assert_streamed_changes(&scenario).await;

    // The slot is confirmed past the last change once Kafka has it.
    let db_lsn: i64 = db
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[])
        .await
        .unwrap()
        .get(0);
    let confirmed = tributary_testkit::eventually("slot confirmed", WAIT, || async {
        Ok(scenario
            .confirmed_flush()
            .await
            .filter(|lsn| *lsn >= u64::try_from(db_lsn).unwrap() - 1024))
    })
    .await;
    assert!(confirmed.is_ok(), "{confirmed:?}\n{}", worker.log_text());

    assert!(worker.stop(), "graceful stop:\n{}", worker.log_text());
    // Restart: nothing is snapshotted or streamed twice after a graceful stop.
    let mut again = scenario.start_worker(&yaml);
    db.batch_execute("INSERT INTO customers (name) VALUES ('Dee')")
        .await
        .unwrap();
    let customers = records(&scenario, "customers", 5).await;
    assert_eq!(customers[4].envelope()["after"]["name"], "Dee", "{customers:#?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = read_topic(
        &scenario.endpoints.kafka_bootstrap,
        &scenario.topic("customers"),
        6,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(all.len(), 5, "no duplicates after a graceful restart: {all:#?}");
    assert!(again.stop());

    // The explicit cleanup drops slot and publication.
    let (ok, log) = scenario.worker_command(
        &[
            "drop-slot",
            "--publication",
            "--offsets-topic",
            &scenario.offsets_topic,
        ],
        &yaml,
    );
    assert!(ok, "{log}");
    assert_eq!(scenario.confirmed_flush().await, None, "slot dropped");
    let publications: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_publication WHERE pubname = $1",
            &[&scenario.slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(publications, 0);
    // …and forgets the offsets, so a new run snapshots again.
    let offsets = support::read_to_end(&scenario.endpoints.kafka_bootstrap, &scenario.offsets_topic).await;
    let latest = offsets
        .iter()
        .rev()
        .find(|r| r.key == Some(Value::String(scenario.database.clone())))
        .unwrap();
    assert_eq!(latest.value, None, "{offsets:#?}");
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_streaming_loses_no_change() {
    let scenario = Scenario::new("cdc-kill").await;
    let db = scenario.db().await;
    db.batch_execute("CREATE TABLE events (id int PRIMARY KEY, payload text NOT NULL)")
        .await
        .unwrap();
    let yaml = scenario.connector_yaml("", "json");
    let mut worker = scenario.start_worker(&yaml);
    // Make sure the worker streams before the load starts.
    db.batch_execute("INSERT INTO events VALUES (0, 'warm-up')")
        .await
        .unwrap();
    records(&scenario, "events", 1).await;

    let writer = {
        let db = scenario.db().await;
        tokio::spawn(async move {
            for t in 0..TRANSACTIONS {
                let first = t * ROWS + 1;
                db.batch_execute(&format!(
                    "INSERT INTO events SELECT g, repeat('x', 100) FROM generate_series({first}, {}) g",
                    first + ROWS - 1
                ))
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    // Kill mid-stream, then restart while the writer continues.
    tokio::time::sleep(Duration::from_millis(400)).await;
    worker.kill9();
    let mut restarted = scenario.start_worker(&yaml);
    writer.await.unwrap();

    let total = usize::try_from(TRANSACTIONS * ROWS).unwrap() + 1;
    // Duplicates are allowed (the unconfirmed window is replayed), gaps are not:
    // re-read until every id is there or the time is up.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (records, missing) = loop {
        let records =
            support::read_to_end(&scenario.endpoints.kafka_bootstrap, &scenario.topic("events")).await;
        let ids: BTreeSet<i64> = records
            .iter()
            .map(|r| r.key_payload()["id"].as_i64().unwrap())
            .collect();
        let missing: Vec<i64> = (0..i64::try_from(total).unwrap())
            .filter(|id| !ids.contains(id))
            .take(10)
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break (records, missing);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        missing.is_empty(),
        "changes lost after kill -9 (first missing ids {missing:?}); {} records read\n{}",
        records.len(),
        restarted.log_text()
    );
    assert!(restarted.running(), "{}", restarted.log_text());
    restarted.kill9();
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alter_table_while_streaming_changes_the_schema_of_later_events() {
    let scenario = Scenario::new("cdc-alter").await;
    let db = scenario.db().await;
    db.batch_execute("CREATE TABLE ratings (id int PRIMARY KEY, rating int NOT NULL, comment text)")
        .await
        .unwrap();
    let mut worker = scenario.start_worker(&scenario.connector_yaml("", "json-with-schema"));
    db.batch_execute("INSERT INTO ratings VALUES (1, 5, 'great')")
        .await
        .unwrap();
    records(&scenario, "ratings", 1).await;

    db.batch_execute(
        "ALTER TABLE ratings ADD COLUMN region text;
         INSERT INTO ratings VALUES (2, 2, 'meh', 'north');
         ALTER TABLE ratings DROP COLUMN comment;
         INSERT INTO ratings VALUES (3, 4, 'south');",
    )
    .await
    .unwrap();
    let ratings = records(&scenario, "ratings", 3).await;
    let fields = |record: &Record| -> Vec<String> {
        let value = record.value.as_ref().unwrap();
        let after = value["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == "after")
            .unwrap()
            .clone();
        after["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(fields(&ratings[0]), ["id", "rating", "comment"]);
    assert_eq!(fields(&ratings[1]), ["id", "rating", "comment", "region"]);
    assert_eq!(ratings[1].envelope()["after"]["region"], "north");
    assert_eq!(fields(&ratings[2]), ["id", "rating", "region"]);
    assert_eq!(
        ratings[2].envelope()["after"],
        json!({"id": 3, "rating": 4, "region": "south"})
    );
    assert_eq!(
        ratings[2].value.as_ref().unwrap()["schema"]["name"],
        format!("{}.public.ratings.Envelope", scenario.prefix)
    );
    assert!(worker.running(), "{}", worker.log_text());
    worker.kill9();
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_advance_the_slot_of_an_idle_database() {
    let scenario = Scenario::new("cdc-idle").await;
    let db = scenario.db().await;
    db.batch_execute("CREATE TABLE quiet (id int PRIMARY KEY)")
        .await
        .unwrap();
    let mut worker =
        scenario.start_worker(&scenario.connector_yaml("      heartbeatIntervalSeconds: 1\n", "json"));
    db.batch_execute("INSERT INTO quiet VALUES (1)").await.unwrap();
    records(&scenario, "quiet", 1).await;

    // WAL written elsewhere (another database) while the captured tables stay idle.
    let other = support::connect(&scenario.endpoints.postgres).await;
    let table = format!("busy_{}", scenario.database);
    other
        .batch_execute(&format!(
            "CREATE TABLE {table} (n int); INSERT INTO {table} SELECT generate_series(1, 20000); DROP TABLE {table};"
        ))
        .await
        .unwrap();
    let written: i64 = other
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[])
        .await
        .unwrap()
        .get(0);
    let written = u64::try_from(written).unwrap();
    let advanced = tributary_testkit::eventually("slot past the other database's WAL", WAIT, || async {
        Ok(scenario.confirmed_flush().await.filter(|lsn| *lsn >= written))
    })
    .await;
    assert!(advanced.is_ok(), "{advanced:?}\n{}", worker.log_text());
    let heartbeats = read_topic(
        &scenario.endpoints.kafka_bootstrap,
        &format!("__debezium-heartbeat.{}", scenario.prefix),
        1,
        WAIT,
    )
    .await;
    assert_eq!(
        heartbeats[0].key_payload(),
        &json!({"serverName": scenario.prefix})
    );
    assert!(heartbeats[0].envelope()["ts_ms"].as_i64().unwrap() > 0);
    worker.kill9();
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_modes_initial_only_and_no_data() {
    let scenario = Scenario::new("cdc-modes").await;
    let db = scenario.db().await;
    db.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 3);",
    )
    .await
    .unwrap();

    // initial_only: snapshot, exit 0, leave no slot behind.
    let mut only =
        scenario.start_worker(&scenario.connector_yaml("      snapshotMode: InitialOnly\n", "json"));
    assert!(only.wait(WAIT), "{}", only.log_text());
    let items = records(&scenario, "items", 3).await;
    assert!(items.iter().all(|r| r.op() == Some("r")));
    assert_eq!(
        scenario.confirmed_flush().await,
        None,
        "InitialOnly creates no slot"
    );

    // no_data: stream only what changes after the slot exists.
    let no_data = scenario.connector_yaml("      snapshotMode: NoData\n", "json");
    let mut worker = scenario.start_worker(&no_data);
    tributary_testkit::eventually("slot created", WAIT, || async {
        Ok(scenario.confirmed_flush().await)
    })
    .await
    .unwrap();
    db.batch_execute("INSERT INTO items VALUES (4)").await.unwrap();
    let items = records(&scenario, "items", 4).await;
    assert_eq!(items[3].op(), Some("c"));
    assert_eq!(items[3].key_payload(), &json!({"id": 4}));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = read_topic(
        &scenario.endpoints.kafka_bootstrap,
        &scenario.topic("items"),
        5,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(all.len(), 4, "NoData reads no existing row: {all:#?}");
    worker.kill9();
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_fails_fast_naming_the_field() {
    let scenario = Scenario::new("cdc-bad").await;
    let yaml = scenario.connector_yaml("      tableIncludeList: ['public.(']\n", "json");
    let (ok, log) = scenario.worker_command(&["validate"], &yaml);
    assert!(!ok);
    assert!(
        log.contains("spec.source.postgres.tableIncludeList[0]: not a regular expression"),
        "{log}"
    );
    let missing_secret =
        scenario.connector_yaml("      password: {name: pg-secret, key: password}\n", "json");
    let (ok, log) = scenario.worker_command(&["validate"], &missing_secret);
    assert!(!ok);
    assert!(log.contains("spec.source.postgres.password"), "{log}");
    assert!(log.contains("TRIBUTARY_SECRET_PG_SECRET_PASSWORD"), "{log}");
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_records_carry_registered_schema_ids() {
    use apache_avro::types::Value as Avro;
    let scenario = Scenario::new("cdc-avro").await;
    let db = scenario.db().await;
    db.batch_execute(
        "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[]);
         INSERT INTO products VALUES (1, 'Trek 520', 1299.99, '{touring}');",
    )
    .await
    .unwrap();
    let mut worker = scenario.start_worker(&scenario.connector_yaml("", "avro"));
    // The snapshot first, so the update is streamed rather than snapshotted.
    support::read_raw(
        &scenario.endpoints.kafka_bootstrap,
        &scenario.topic("products"),
        1,
    )
    .await;
    db.batch_execute("UPDATE products SET price = 1199.00 WHERE id = 1")
        .await
        .unwrap();
    let raw = support::read_raw(
        &scenario.endpoints.kafka_bootstrap,
        &scenario.topic("products"),
        2,
    )
    .await;
    let registry = RegistryClient::new(
        &scenario.endpoints.registry_url,
        None,
        None,
        Duration::from_secs(30),
    )
    .unwrap();

    let key = decode_avro(&registry, raw[0].0.as_ref().unwrap()).await;
    assert_eq!(key, Avro::Record(vec![("id".into(), Avro::Int(1))]));
    let read = decode_avro(&registry, raw[0].1.as_ref().unwrap()).await;
    assert_eq!(field(&read, "op"), &Avro::String("r".into()));
    let after = field(&read, "after");
    assert_eq!(field(after, "name"), &Avro::String("Trek 520".into()));
    assert_eq!(
        field(after, "price"),
        &Avro::Decimal(apache_avro::Decimal::from(vec![0x01, 0xfb, 0xcf]))
    );
    assert_eq!(
        field(after, "tags"),
        &Avro::Array(vec![Avro::Union(1, Box::new(Avro::String("touring".into())))])
    );
    let updated = decode_avro(&registry, raw[1].1.as_ref().unwrap()).await;
    assert_eq!(field(&updated, "op"), &Avro::String("u".into()));
    assert_eq!(
        field(field(&updated, "source"), "table"),
        &Avro::String("products".into())
    );

    // Subjects follow the topic name strategy.
    let subjects = registry.subjects().await.unwrap();
    let topic = scenario.topic("products");
    assert!(subjects.contains(&format!("{topic}-key")), "{subjects:?}");
    assert!(subjects.contains(&format!("{topic}-value")), "{subjects:?}");
    assert!(worker.running(), "{}", worker.log_text());
    worker.kill9();
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn toast_truncate_and_transaction_metadata() {
    let scenario = Scenario::new("cdc-toast").await;
    let db = scenario.db().await;
    db.batch_execute(
        "CREATE TABLE docs (id int PRIMARY KEY, body text, views int NOT NULL DEFAULT 0);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;",
    )
    .await
    .unwrap();
    let mut worker = scenario.start_worker(&scenario.connector_yaml(
        "      provideTransactionMetadata: true\n      snapshotMode: NoData\n",
        "json",
    ));
    tributary_testkit::eventually("slot created", WAIT, || async {
        Ok(scenario.confirmed_flush().await)
    })
    .await
    .unwrap();
    // A value large enough to be stored out of line (TOAST), then an update
    // that leaves it alone: Postgres does not send it again.
    // One transaction per statement (a multi-statement string would be one).
    for statement in [
        "INSERT INTO docs VALUES (1, repeat('lorem ipsum ', 1000), 0)",
        "UPDATE docs SET views = 1 WHERE id = 1",
        "BEGIN; INSERT INTO docs VALUES (2, 'short', 0); INSERT INTO docs VALUES (3, 'short', 0); COMMIT;",
        "TRUNCATE docs",
    ] {
        db.batch_execute(statement).await.unwrap();
    }
    let docs = records(&scenario, "docs", 5).await;
    assert_eq!(
        docs[0].envelope()["after"]["body"].as_str().unwrap().len(),
        12_000
    );
    assert_eq!(docs[1].op(), Some("u"));
    assert_eq!(
        docs[1].envelope()["after"]["body"],
        "__debezium_unavailable_value"
    );
    assert_eq!(docs[1].envelope()["after"]["views"], 1);
    assert_eq!(docs[4].op(), Some("t"));
    assert_eq!(docs[4].key, None, "a truncate has no key");

    // Transaction metadata: BEGIN/END per transaction, the block in each event.
    let block = &docs[3].envelope()["transaction"];
    assert_eq!(block["total_order"], 2);
    assert_eq!(block["data_collection_order"], 2);
    let id = block["id"].as_str().unwrap().to_owned();
    assert_eq!(docs[2].envelope()["transaction"]["id"], id.as_str());
    let transactions = read_topic(
        &scenario.endpoints.kafka_bootstrap,
        &format!("{}.transaction", scenario.prefix),
        8,
        WAIT,
    )
    .await;
    let end = transactions
        .iter()
        .find(|r| r.envelope()["id"] == id.as_str() && r.envelope()["status"] == "END")
        .unwrap_or_else(|| panic!("no END for {id}: {transactions:#?}"));
    assert_eq!(end.envelope()["event_count"], 2);
    assert_eq!(
        end.envelope()["data_collections"],
        json!([{"data_collection": "public.docs", "event_count": 2}])
    );
    assert!(
        transactions
            .iter()
            .any(|r| r.envelope()["id"] == id.as_str() && r.envelope()["status"] == "BEGIN")
    );
    worker.kill9();
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_snapshot_on_a_signal_while_changes_stream() {
    let scenario = Scenario::new("cdc-incr").await;
    let db = scenario.db().await;
    db.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
         INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 3000) g;
         CREATE TABLE debezium_signal (id text PRIMARY KEY, type text NOT NULL, data text);",
    )
    .await
    .unwrap();
    let mut worker = scenario.start_worker(&scenario.connector_yaml(
        "      snapshotMode: NoData\n      signalDataCollection: public.debezium_signal\n      incrementalSnapshotChunkSize: 250\n      tableExcludeList: ['public.debezium_signal']\n",
        "json",
    ));
    tributary_testkit::eventually("slot created", WAIT, || async {
        Ok(scenario.confirmed_flush().await)
    })
    .await
    .unwrap();
    db.batch_execute(
        r#"INSERT INTO debezium_signal VALUES ('s1', 'execute-snapshot', '{"data-collections": ["public.accounts"], "type": "incremental"}')"#,
    )
    .await
    .unwrap();
    // Changes race the chunks: updates, deletes and inserts across the key range.
    for round in 0..30 {
        let id = round * 97 % 3000 + 1;
        db.batch_execute(&format!(
            "UPDATE accounts SET balance = balance + {round} WHERE id = {id};
             DELETE FROM accounts WHERE id = {};
             INSERT INTO accounts VALUES ({}, 7);",
            id + 1,
            3000 + round + 1
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The topic, compacted by key, equals the table.
    let rows = db.query("SELECT id, balance FROM accounts", &[]).await.unwrap();
    let expected: std::collections::BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), i64::from(r.get::<_, i32>(1))))
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    let (compacted, records) = loop {
        let records =
            support::read_to_end(&scenario.endpoints.kafka_bootstrap, &scenario.topic("accounts")).await;
        let mut compacted = std::collections::BTreeMap::new();
        for record in &records {
            let id = record.key_payload()["id"].as_i64().unwrap();
            match &record.value {
                None => {
                    compacted.remove(&id);
                }
                Some(_) if record.op() == Some("d") => {
                    compacted.remove(&id);
                }
                Some(_) => {
                    compacted.insert(id, record.envelope()["after"]["balance"].as_i64().unwrap());
                }
            }
        }
        if compacted == expected || tokio::time::Instant::now() > deadline {
            break (compacted, records);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let differing: Vec<_> = expected
        .iter()
        .filter(|(id, balance)| compacted.get(id) != Some(balance))
        .take(5)
        .collect();
    assert!(
        compacted == expected,
        "topic differs from the table ({} vs {} keys), e.g. {differing:?}\n{}",
        compacted.len(),
        expected.len(),
        worker.log_text()
    );
    let reads = records.iter().filter(|r| r.op() == Some("r")).count();
    assert!(reads >= 2900, "{reads} snapshot reads");
    assert!(
        records
            .iter()
            .filter(|r| r.op() == Some("r"))
            .all(|r| r.envelope()["source"]["snapshot"] == "incremental")
    );
    worker.kill9();
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn column_types_map_as_debezium_maps_them() {
    let scenario = Scenario::new("cdc-types").await;
    let db = scenario.db().await;
    db.batch_execute(TYPED_TABLE).await.unwrap();
    let mut worker =
        scenario.start_worker(&scenario.connector_yaml("      snapshotMode: NoData\n", "json-with-schema"));
    tributary_testkit::eventually("slot created", WAIT, || async {
        Ok(scenario.confirmed_flush().await)
    })
    .await
    .unwrap();
    db.batch_execute(TYPED_ROW).await.unwrap();
    let record = &records(&scenario, "typed", 1).await[0];
    let after = &record.envelope()["after"];
    assert_eq!(
        record.key_payload(),
        &json!({"id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"})
    );
    assert_eq!(after["flag"], true);
    assert_eq!(after["small"], -3);
    assert_eq!(after["big"], 9_007_199_254_740_993_i64);
    assert_eq!(after["ratio"], 0.5);
    // numeric(12,3) -12.345 → unscaled -12345 as big-endian two's complement (0xCF 0xC7).
    assert_eq!(after["amount"], "z8c=");
    assert_eq!(after["free"], json!({"scale": 5, "value": "BMsv"}));
    assert_eq!(after["day"], 19783);
    assert_eq!(after["at"], 1_709_294_400_123_i64, "timestamp(3): milliseconds");
    assert_eq!(
        after["at_us"], 1_709_294_400_123_456_i64,
        "timestamp: microseconds"
    );
    assert_eq!(after["at_tz"], "2024-03-01T12:00:00.000000Z");
    assert_eq!(
        after["clock"], 36_930_000_000_i64,
        "time: microseconds since midnight"
    );
    assert_eq!(after["doc"], r#"{"a": [1, 2]}"#);
    assert_eq!(after["raw"], "Af8=");
    assert_eq!(after["feeling"], "happy");
    assert_eq!(after["scores"], json!([1, null, 3]));
    assert_eq!(after["label"], "bike");

    // The schema names Debezium's logical types.
    let schema = &record.value.as_ref().unwrap()["schema"];
    let after_fields = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "after")
        .unwrap();
    let name_of = |field: &str| {
        after_fields["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == field)
            .unwrap()["name"]
            .clone()
    };
    assert_eq!(name_of("id"), "io.debezium.data.Uuid");
    assert_eq!(name_of("amount"), "org.apache.kafka.connect.data.Decimal");
    assert_eq!(name_of("at_tz"), "io.debezium.time.ZonedTimestamp");
    assert_eq!(name_of("doc"), "io.debezium.data.Json");
    assert_eq!(name_of("feeling"), "io.debezium.data.Enum");
    worker.kill9();
    scenario.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_replication_connection_is_resumed_without_loss() {
    let scenario = Scenario::new("cdc-cut").await;
    let db = scenario.db().await;
    db.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let mut worker = scenario.start_worker(&scenario.connector_yaml("      snapshotMode: NoData\n", "json"));
    tributary_testkit::eventually("slot created", WAIT, || async {
        Ok(scenario.confirmed_flush().await)
    })
    .await
    .unwrap();
    db.batch_execute("INSERT INTO t VALUES (1)").await.unwrap();
    records(&scenario, "t", 1).await;

    // The database ends the walsender (as a failover or restart would).
    let terminated: bool = db
        .query_one(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1",
            &[&scenario.slot],
        )
        .await
        .unwrap()
        .get(0);
    assert!(terminated);
    db.batch_execute("INSERT INTO t VALUES (2); INSERT INTO t VALUES (3);")
        .await
        .unwrap();
    // Unconfirmed changes are replayed (duplicates allowed); none is missing.
    let ids = tributary_testkit::eventually("all rows after the reconnect", WAIT, || async {
        let rows = support::read_to_end(&scenario.endpoints.kafka_bootstrap, &scenario.topic("t")).await;
        let ids: BTreeSet<i64> = rows
            .iter()
            .map(|r| r.key_payload()["id"].as_i64().unwrap())
            .collect();
        Ok((ids.len() == 3).then_some(ids))
    })
    .await;
    assert_eq!(ids.ok(), Some(BTreeSet::from([1, 2, 3])), "{}", worker.log_text());
    assert!(
        worker.running(),
        "the worker reconnects instead of exiting:\n{}",
        worker.log_text()
    );
    assert!(
        worker.log_text().contains("restarting it"),
        "{}",
        worker.log_text()
    );
    worker.kill9();
    scenario.cleanup().await;
}
