//! Streams end to end: a [`StreamFixture`] names one test's topics, writes
//! the Stream manifest and runs the worker binary on it; helpers read the
//! committed output back and query the worker's metrics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use tributary_testkit::unique_name;

use super::sink::{Read, SinkFixture, WAIT};
use super::{Worker, start_worker};

/// One test's topics and the worker(s) running its stream.
pub struct StreamFixture {
    pub fx: SinkFixture,
    pub output: String,
}

impl StreamFixture {
    /// An input topic with `partitions` partitions and an output topic name.
    pub async fn new(prefix: &str, partitions: i32) -> Self {
        let fx = SinkFixture::new(prefix, partitions).await;
        let output = format!("{}-out", fx.name);
        Self { fx, output }
    }

    pub fn input(&self) -> &str {
        &self.fx.topic
    }

    /// A Stream manifest named `<test name>-<name>` with `sql` (`{in}` and `{out}` replaced
    /// by the topics), event time from the value's `ts`, and `extra` under `spec`.
    pub fn yaml(&self, name: &str, sql: &str, extra: &str) -> String {
        self.yaml_with_inputs(name, sql, "", extra)
    }

    /// [`Self::yaml`] with more `spec.inputs` items (`    - topic: …` lines).
    pub fn yaml_with_inputs(&self, name: &str, sql: &str, inputs: &str, extra: &str) -> String {
        let sql = sql
            .replace("{in}", &format!("\"{}\"", self.input()))
            .replace("{out}", &format!("\"{}\"", self.output));
        let sql: String = sql.lines().fold(String::new(), |mut out, l| {
            out.push_str("    ");
            out.push_str(l);
            out.push('\n');
            out
        });
        format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Stream\nmetadata:\n  name: {prefix}-{name}\nspec:\n  sql: |\n{sql}  inputs:\n    - topic: {input}\n      timestampField: ts\n{inputs}{extra}",
            input = self.input(),
            prefix = self.fx.name,
        )
    }

    /// Starts the worker binary on `yaml` as host `host`, serving metrics on `http`.
    pub fn start(&self, yaml: &str, host: &str, http: &str) -> Worker {
        start_worker(
            &self.fx.dir,
            yaml,
            &[
                "--bootstrap-servers",
                &self.fx.endpoints.kafka_bootstrap,
                "--status-topic",
                &self.fx.status_topic,
                "--status-interval-seconds",
                "1",
                "--schema-registry-url",
                &self.fx.endpoints.registry_url,
                "--http-addr",
                http,
            ],
            &[
                ("HOSTNAME", host),
                (
                    "RUST_LOG",
                    &std::env::var("STREAM_TEST_LOG").unwrap_or_else(|_| "info,librdkafka=warn".to_owned()),
                ),
            ],
        )
    }

    /// Creates another topic of this test, `<test name>-<suffix>`.
    pub async fn topic(&self, suffix: &str, partitions: i32) -> String {
        let topic = format!("{}-{suffix}", self.fx.name);
        self.fx.create_topic(&topic, partitions).await;
        topic
    }

    /// Produces JSON values (`None`: a tombstone) with plain-text keys to `topic`.
    pub async fn produce_to(&self, topic: &str, events: &[(Option<&str>, Option<Value>)]) {
        let records: Vec<_> = events
            .iter()
            .map(|(key, value)| {
                (
                    key.map(|k| k.as_bytes().to_vec()),
                    value.as_ref().map(|v| serde_json::to_vec(v).unwrap()),
                )
            })
            .collect();
        self.fx.produce(topic, &records).await;
    }

    pub async fn produce(&self, events: &[(Option<&str>, Value)]) {
        let records: Vec<_> = events
            .iter()
            .map(|(key, value)| {
                (
                    key.map(|k| k.as_bytes().to_vec()),
                    Some(serde_json::to_vec(value).unwrap()),
                )
            })
            .collect();
        self.fx.produce(self.input(), &records).await;
    }

    /// Waits until `topic` holds at least `n` committed records.
    pub async fn wait_for_at_least(&self, topic: &str, n: usize, worker: &mut Worker) {
        let deadline = Instant::now() + WAIT;
        while read_all(&self.fx.endpoints.kafka_bootstrap, topic).await.len() < n {
            assert!(
                Instant::now() < deadline && worker.running(),
                "{topic} has fewer than {n} records; log:\n{}",
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `topic` holds `expected` records (`read_committed`) and
    /// stays there for a moment; returns them.
    pub async fn wait_for(&self, topic: &str, expected: usize, worker: &mut Worker) -> Vec<Read> {
        let deadline = Instant::now() + WAIT;
        loop {
            let records = read_all(&self.fx.endpoints.kafka_bootstrap, topic).await;
            if records.len() >= expected {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let again = read_all(&self.fx.endpoints.kafka_bootstrap, topic).await;
                assert_eq!(
                    again.len(),
                    expected,
                    "more records than expected in {topic}: {:?}",
                    values(&again)
                );
                return again;
            }
            assert!(
                Instant::now() < deadline && worker.running(),
                "{topic} has {} of {expected} records; log:\n{}",
                records.len(),
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Every committed record of `topic` (nothing if it does not exist). Reads
/// to the end of each partition as the broker reports it, since the high
/// watermark of a transactional topic counts commit markers no consumer sees.
pub async fn read_all(bootstrap: &str, topic: &str) -> Vec<Read> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", unique_name("stream-test"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        let Ok(metadata) = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)) else {
            return Vec::new();
        };
        let mut list = TopicPartitionList::new();
        for partition in metadata
            .topics()
            .iter()
            .flat_map(rdkafka::metadata::MetadataTopic::partitions)
        {
            list.add_partition_offset(&topic, partition.id(), Offset::Beginning)
                .unwrap();
        }
        let mut open = list.count();
        consumer.assign(&list).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while open > 0 && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => out.push(Read {
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers: BTreeMap::new(),
                }),
                Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        out
    })
    .await
    .unwrap()
}

pub fn values(records: &[Read]) -> Vec<Value> {
    records
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
        .collect()
}

/// Values sorted by their JSON text, to compare as multisets.
pub fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(ToString::to_string);
    rows
}

/// Offsets `group` committed on `topic`, summed over its `partitions`.
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum()
}

pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

pub async fn metric(addr: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("tributary_worker_{name}_total ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// A Debezium create event of a rating at event time `ts` (ms).
pub fn rating(id: u32, region: &str, stars: i64, ts: i64) -> Value {
    json!({
        "before": null,
        "after": {"rating_id": id, "region": region, "rating": stars, "comment": format!("c{id}")},
        "source": {"table": "ratings"},
        "op": "c",
        "ts": ts
    })
}

pub const MINUTE: i64 = 60_000;
/// 2026-12-02T00:00:00Z: windows in the tests start here.
pub const T0: i64 = 1_796_169_600_000;
