//! Helpers for the worker's integration tests: a throwaway database, the
//! worker binary as a real process (so it can be killed with SIGKILL), and
//! reading topics back from Kafka.

// Test helpers fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod avro;
pub mod debezium;
pub mod fixtures;
pub mod process;
pub mod sink;
pub mod stream;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio_postgres::{Client, NoTls};
use tributary_testkit::{Endpoints, unique_name};

pub use process::{Worker, start_worker};

/// One record read back: key and value as JSON (`None`: null / tombstone).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: Option<Value>,
    pub value: Option<Value>,
}

impl Record {
    /// `payload.op` or `op` of the value (`None` for a tombstone).
    pub fn op(&self) -> Option<&str> {
        let value = self.value.as_ref()?;
        value
            .get("payload")
            .unwrap_or(value)
            .get("op")
            .and_then(Value::as_str)
    }

    /// The envelope (without a Connect schema wrapper).
    pub fn envelope(&self) -> &Value {
        let value = self.value.as_ref().expect("not a tombstone");
        value.get("payload").unwrap_or(value)
    }

    /// The key payload.
    pub fn key_payload(&self) -> &Value {
        let key = self.key.as_ref().expect("record has a key");
        key.get("payload").unwrap_or(key)
    }
}

/// A database of its own, plus names no other test uses.
pub struct Scenario {
    pub endpoints: Endpoints,
    pub database: String,
    /// Slot and publication name.
    pub slot: String,
    /// Topic prefix.
    pub prefix: String,
    pub offsets_topic: String,
    pub status_topic: String,
    pub dir: PathBuf,
}

impl Scenario {
    pub async fn new(name: &str) -> Self {
        let endpoints = Endpoints::from_env();
        let id = unique_name(name).replace('-', "_");
        let admin = connect(&endpoints.postgres).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {id}"))
            .await
            .unwrap_or_else(|e| panic!("Postgres at {} unusable: {e}", endpoints.postgres));
        let dir = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            database: id.clone(),
            slot: id.clone(),
            prefix: id.replace('_', "-"),
            offsets_topic: format!("{}-offsets", id.replace('_', "-")),
            status_topic: format!("{}-status", id.replace('_', "-")),
            dir,
            endpoints,
        }
    }

    /// A session on the scenario's database.
    pub async fn db(&self) -> Client {
        connect(&format!(
            "{} dbname={}",
            base_url(&self.endpoints.postgres),
            self.database
        ))
        .await
    }

    /// A Connector manifest for this scenario's database, with extra
    /// `postgres:` fields (indented six spaces) and a format.
    pub fn connector_yaml(&self, postgres_extra: &str, format: &str) -> String {
        let (host, port) = host_port(&self.endpoints.postgres);
        format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: {db}\nspec:\n  source:\n    postgres:\n      host: {host}\n      port: {port}\n      database: {db}\n      user: postgres\n      topicPrefix: {prefix}\n      slotName: {slot}\n      publicationName: {slot}\n{postgres_extra}  format:\n    key: {format}\n    value: {format}\n",
            db = self.database,
            prefix = self.prefix,
            slot = self.slot,
        )
    }

    /// Starts the worker on `yaml`.
    pub fn start_worker(&self, yaml: &str) -> Worker {
        self.start_worker_with(yaml, &["--http-addr", "off"])
    }

    /// Starts the worker on `yaml` with extra arguments.
    pub fn start_worker_with(&self, yaml: &str, extra: &[&str]) -> Worker {
        let mut args = vec![
            "--bootstrap-servers",
            &self.endpoints.kafka_bootstrap,
            "--offsets-topic",
            &self.offsets_topic,
            "--status-topic",
            &self.status_topic,
            "--schema-registry-url",
            &self.endpoints.registry_url,
            "--status-interval-seconds",
            "1",
        ];
        args.extend_from_slice(extra);
        start_worker(
            &self.dir,
            yaml,
            &args,
            &[("RUST_LOG", "info,pg_walstream=warn,librdkafka=warn")],
        )
    }

    /// Runs a worker subcommand to completion; returns (success, log).
    pub fn worker_command(&self, args: &[&str], yaml: &str) -> (bool, String) {
        let config = self.dir.join("command.yaml");
        std::fs::write(&config, yaml).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_tributary-worker"))
            .args(args)
            .arg("-f")
            .arg(&config)
            .args(["--bootstrap-servers", &self.endpoints.kafka_bootstrap])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// The topic of `table` in schema `public`.
    pub fn topic(&self, table: &str) -> String {
        format!("{}.public.{table}", self.prefix)
    }

    /// `confirmed_flush_lsn` of the scenario's slot, as a number.
    pub async fn confirmed_flush(&self) -> Option<u64> {
        let db = self.db().await;
        let row = db
            .query_opt(
                "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .unwrap();
        row.and_then(|r| r.get::<_, Option<i64>>(0))
            .map(|v| u64::try_from(v).unwrap())
    }

    /// Drops the slot, publication and database (also done on drop, so a
    /// failing test leaves no slot retaining WAL behind).
    pub async fn cleanup(&self) {
        drop_leftovers(&self.endpoints.postgres, &self.slot, &self.database).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn drop_leftovers(postgres: &str, slot: &str, database: &str) {
    let Ok((admin, connection)) = tokio_postgres::connect(postgres, NoTls).await else {
        return;
    };
    tokio::spawn(connection);
    // Every slot on the scenario's database too (a peer such as Debezium has its own).
    let _ = admin
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
             WHERE slot_name = $1 OR (database = $2 AND NOT active)",
            &[&slot, &database],
        )
        .await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await;
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // Workers are declared after their scenario, so they are gone by now.
        let (postgres, slot, database) = (
            self.endpoints.postgres.clone(),
            self.slot.clone(),
            self.database.clone(),
        );
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(drop_leftovers(&postgres, &slot, &database));
            }
        })
        .join();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("Postgres at {url} unreachable: {e}"));
    tokio::spawn(connection);
    client
}

fn base_url(url: &str) -> String {
    url.split_whitespace()
        .filter(|part| !part.starts_with("dbname="))
        .collect::<Vec<_>>()
        .join(" ")
}

fn host_port(url: &str) -> (String, String) {
    let get = |key: &str| {
        url.split_whitespace()
            .find_map(|p| p.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .to_owned()
    };
    (get("host"), get("port"))
}

/// Reads `topic` from the beginning until at least `expected` records
/// arrived or `timeout` passed; returns what it read.
pub async fn read_topic(bootstrap: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_topic_blocking(&bootstrap, &topic, expected, timeout))
        .await
        .unwrap()
}

fn read_topic_blocking(bootstrap: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("worker-test"))
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    // The worker creates the topic; wait for it to appear.
    let partitions = loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .unwrap();
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .flat_map(|t| {
                t.partitions()
                    .iter()
                    .map(rdkafka::metadata::MetadataPartition::id)
            })
            .collect();
        if !partitions.is_empty() {
            break partitions;
        }
        if Instant::now() > deadline {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    while records.len() < expected && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            // JSON, else the raw text (the state topics key by plain name).
            let parse = |bytes: Option<&[u8]>| {
                bytes.map(|b| {
                    serde_json::from_slice(b)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
                })
            };
            records.push(Record {
                key: parse(message.key()),
                value: parse(message.payload()),
            });
        }
    }
    records
}

/// Raw key and value bytes of the first `expected` records of `topic`.
pub async fn read_raw(
    bootstrap: &str,
    topic: &str,
    expected: usize,
) -> Vec<(Option<Vec<u8>>, Option<Vec<u8>>)> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", unique_name("worker-test"))
            .create()
            .unwrap();
        let deadline = Instant::now() + Duration::from_mins(1);
        while consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(5))
            .map_or(true, |(_, high)| usize::try_from(high).unwrap() < expected)
        {
            assert!(
                Instant::now() < deadline,
                "{topic}: fewer than {expected} records"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let mut out = Vec::new();
        while out.len() < expected {
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message.unwrap();
                out.push((
                    message.key().map(<[u8]>::to_vec),
                    message.payload().map(<[u8]>::to_vec),
                ));
            }
            assert!(Instant::now() < deadline, "{topic}: timed out reading");
        }
        out
    })
    .await
    .unwrap()
}

/// Everything in partition 0 of `topic` up to its current end.
pub async fn read_to_end(bootstrap: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("worker-test"))
        .create()
        .unwrap();
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    read_topic(
        bootstrap,
        topic,
        usize::try_from(high).unwrap(),
        Duration::from_mins(1),
    )
    .await
}
