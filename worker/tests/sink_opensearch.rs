//! The OpenSearch sink against real Kafka and OpenSearch, with the worker
//! binary as a process (so it can be killed with SIGKILL): upserts and
//! deletes, poison records to the dead-letter topic, tolerance None,
//! OpenSearch unreachable for a while, kill -9, and two workers sharing a
//! consumer group.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tributary_testkit::{Endpoints, unique_name};

use support::{Worker, start_worker};

const WAIT: Duration = Duration::from_mins(2);
/// How long a graceful stop may take.
const STOP: Duration = Duration::from_mins(1);

/// Key and value bytes of one record to produce (`None`: null).
type Produced = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Topic, index, group and files of one test.
struct Fixture {
    endpoints: Endpoints,
    name: String,
    topic: String,
    status_topic: String,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Fixture {
    async fn new(prefix: &str, partitions: i32) -> Self {
        let endpoints = Endpoints::from_env();
        let name = unique_name(prefix);
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let fixture = Self {
            topic: format!("{name}-ratings"),
            status_topic: format!("{name}-status"),
            name,
            dir,
            http: reqwest::Client::new(),
            endpoints,
        };
        fixture.create_topic(&fixture.topic, partitions).await;
        fixture
    }

    /// The index the sink writes (the topic, lower-cased).
    fn index(&self) -> String {
        self.topic.to_lowercase()
    }

    async fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.endpoints.kafka_bootstrap)
            .create()
            .unwrap();
        let result = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .unwrap();
        assert!(result.iter().all(Result::is_ok), "{result:?}");
    }

    /// A Connector manifest with `sink_extra` under `spec.sink` (4 spaces)
    /// and `spec_extra` under `spec` (2 spaces).
    fn yaml(&self, url: &str, sink_extra: &str, spec_extra: &str) -> String {
        format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: {name}\nspec:\n  format:\n    key: json\n    value: json\n  sink:\n    topics: [{topic}]\n    batch:\n      maxRecords: 100\n      lingerMs: 50\n{sink_extra}    opensearch:\n      url: {url}\n{spec_extra}",
            name = self.name,
            topic = self.topic,
        )
    }

    fn start(&self, yaml: &str) -> Worker {
        start_worker(
            &self.dir,
            yaml,
            &[
                "--bootstrap-servers",
                &self.endpoints.kafka_bootstrap,
                "--status-topic",
                &self.status_topic,
                "--status-interval-seconds",
                "1",
                "--http-addr",
                "off",
            ],
            &[("HOSTNAME", &unique_name("w"))],
        )
    }

    async fn produce(&self, topic: &str, records: &[Produced]) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.endpoints.kafka_bootstrap)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let sends = records.iter().map(|(key, value)| {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic);
            if let Some(key) = key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = value {
                record = record.payload(value.as_slice());
            }
            producer.send(record, Duration::from_secs(30))
        });
        for result in futures::future::join_all(sends).await {
            result.unwrap();
        }
    }

    /// Every document of the index, by id.
    async fn documents(&self) -> BTreeMap<String, Value> {
        let base = &self.endpoints.opensearch_url;
        let index = self.index();
        let _ = self.http.post(format!("{base}/{index}/_refresh")).send().await;
        let answer: Value = self
            .http
            .get(format!("{base}/{index}/_search?size=10000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["hits"]["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .map(|h| (h["_id"].as_str().unwrap().to_owned(), h["_source"].clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Documents in the index (0 before it exists).
    async fn count(&self) -> u64 {
        let base = &self.endpoints.opensearch_url;
        let index = self.index();
        let _ = self.http.post(format!("{base}/{index}/_refresh")).send().await;
        let answer: Value = self
            .http
            .get(format!("{base}/{index}/_count"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["count"].as_u64().unwrap_or(0)
    }

    /// Waits until the index holds `expected` documents; returns them
    /// (when there are at most 10,000, a search's limit).
    async fn wait_for_documents(&self, expected: u64, worker: &mut Worker) -> BTreeMap<String, Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let count = self.count().await;
            if count == expected {
                return if expected <= 10_000 {
                    self.documents().await
                } else {
                    BTreeMap::new()
                };
            }
            assert!(
                Instant::now() < deadline,
                "{count} documents, expected {expected}; log:\n{}",
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The latest status record of this connector.
    async fn status(&self) -> Option<Value> {
        read_all(&self.endpoints.kafka_bootstrap, &self.status_topic)
            .await
            .into_iter()
            .rev()
            .find(|r| r.key.as_deref() == Some(self.name.as_bytes()))
            .and_then(|r| r.value)
            .map(|v| serde_json::from_slice(&v).unwrap())
    }

    /// The group's committed offset of partition `partition` of the topic.
    fn committed(&self, partition: i32) -> Option<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.endpoints.kafka_bootstrap)
            .set("group.id", format!("tributary-{}", self.name))
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic, partition);
        let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
        match committed.elements()[0].offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One record read back with its headers.
#[derive(Debug)]
struct Read {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: BTreeMap<String, String>,
}

/// Everything in `topic` up to its current end.
async fn read_all(bootstrap: &str, topic: &str) -> Vec<Read> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", unique_name("sink-test"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let Ok(metadata) = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)) else {
            return Vec::new();
        };
        let mut list = TopicPartitionList::new();
        let mut remaining = 0;
        for partition in metadata
            .topics()
            .iter()
            .flat_map(rdkafka::metadata::MetadataTopic::partitions)
        {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition.id(), Duration::from_secs(10))
                .unwrap();
            remaining += high - low;
            list.add_partition_offset(&topic, partition.id(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&list).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while remaining > 0 && Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message.unwrap();
                remaining -= 1;
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Read {
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
        }
        out
    })
    .await
    .unwrap()
}

#[allow(clippy::unnecessary_wraps)] // reads as the record's Some(bytes)
fn json_bytes(value: &Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(value).unwrap())
}

/// A Debezium change event of the ratings table.
fn event(op: &str, id: u32, rating: Option<u32>) -> Produced {
    let row = |r: Option<u32>| r.map_or(Value::Null, |r| json!({"id": id, "rating": r, "region": "eu"}));
    let (before, after) = match op {
        "d" => (json!({"id": id}), Value::Null),
        _ => (Value::Null, row(rating)),
    };
    (
        json_bytes(&json!({"id": id})),
        json_bytes(&json!({"before": before, "after": after, "op": op, "ts_ms": 1,
            "source": {"connector": "postgresql", "table": "ratings"}})),
    )
}

/// Plain JSON `{"id", "rating"}` records keyed by the id (as a number).
fn plain(ids: std::ops::Range<u32>) -> Vec<Produced> {
    ids.map(|id| {
        (
            json_bytes(&json!(id)),
            json_bytes(&json!({"id": id, "rating": id % 5 + 1})),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_replace_and_deletes_remove_documents() {
    let fx = Fixture::new("os-upsert", 3).await;
    let mut worker = fx.start(&fx.yaml(&fx.endpoints.opensearch_url, "", ""));
    let mut events = Vec::new();
    for id in 1..=30 {
        events.push(event("c", id, Some(1)));
    }
    for id in 1..=30 {
        events.push(event("u", id, Some(id % 5 + 1)));
    }
    for id in 1..=10 {
        events.push(event("d", id, None));
        events.push((json_bytes(&json!({"id": id})), None)); // Debezium's tombstone
    }
    fx.produce(&fx.topic, &events).await;
    let documents = fx.wait_for_documents(20, &mut worker).await;
    let expected: BTreeMap<String, Value> = (11..=30)
        .map(|id| {
            (
                format!("{{\"id\":{id}}}"),
                json!({"id": id, "rating": id % 5 + 1, "region": "eu"}),
            )
        })
        .collect();
    assert_eq!(
        documents, expected,
        "the after rows of the last update, deletes gone"
    );

    // A delete, then the same id written again: present with the new row.
    fx.produce(&fx.topic, &[event("d", 11, None), event("c", 11, Some(5))])
        .await;
    let deadline = Instant::now() + WAIT;
    while fx.documents().await.get("{\"id\":11}") != Some(&json!({"id": 11, "rating": 5, "region": "eu"})) {
        assert!(Instant::now() < deadline, "{}", worker.log_text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        worker.stop_within(STOP),
        "graceful stop; log:\n{}",
        worker.log_text()
    );
    let status = fx.status().await.unwrap();
    assert_eq!(status["state"], "Stopped", "{status}");
    assert!(status["records"].as_u64().unwrap() >= 82, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_merges_fields_and_a_fixed_index_with_offset_ids() {
    let fx = Fixture::new("os-merge", 1).await;
    let index = format!("{}-merged", fx.name);
    let sink = format!(
        "    opensearch:\n      url: {}\n      index: {index}\n      writeMode: Upsert\n",
        fx.endpoints.opensearch_url
    );
    let yaml = fx.yaml(&fx.endpoints.opensearch_url, "", "").replace(
        &format!("    opensearch:\n      url: {}\n", fx.endpoints.opensearch_url),
        &sink,
    );
    let mut worker = fx.start(&yaml);
    fx.produce(
        &fx.topic,
        &[
            (json_bytes(&json!("a")), json_bytes(&json!({"name": "Ann"}))),
            (json_bytes(&json!("a")), json_bytes(&json!({"rating": 4}))),
        ],
    )
    .await;
    let url = format!("{}/{index}/_doc/a", fx.endpoints.opensearch_url);
    let deadline = Instant::now() + WAIT;
    loop {
        let answer: Value = fx.http.get(&url).send().await.unwrap().json().await.unwrap();
        if answer["_source"] == json!({"name": "Ann", "rating": 4}) {
            break;
        }
        assert!(Instant::now() < deadline, "{answer}\n{}", worker.log_text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(worker.stop_within(STOP));
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_records_go_to_the_dead_letter_topic_with_context_headers() {
    let fx = Fixture::new("os-dlq", 1).await;
    // `rating` is an integer: a string there is a mapping error for that document only.
    let created = fx
        .http
        .put(format!("{}/{}", fx.endpoints.opensearch_url, fx.index()))
        .json(&json!({"mappings": {"properties": {"rating": {"type": "integer"}}}}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());
    let dlq = format!("{}-dlq", fx.name);
    let errors = format!("  errors:\n    tolerance: All\n    deadLetterTopic: {dlq}\n");
    let mut worker = fx.start(&fx.yaml(&fx.endpoints.opensearch_url, "", &errors));
    fx.produce(
        &fx.topic,
        &[
            (json_bytes(&json!(1)), json_bytes(&json!({"rating": 5}))),
            (
                json_bytes(&json!(2)),
                json_bytes(&json!({"rating": "not a number"})),
            ),
            (json_bytes(&json!(3)), Some(b"{not json".to_vec())),
            (json_bytes(&json!(4)), json_bytes(&json!({"rating": 1}))),
        ],
    )
    .await;
    let documents = fx.wait_for_documents(2, &mut worker).await;
    assert_eq!(documents.keys().collect::<Vec<_>>(), vec!["1", "4"]);
    let deadline = Instant::now() + WAIT;
    let dead = loop {
        let dead = read_all(&fx.endpoints.kafka_bootstrap, &dlq).await;
        if dead.len() >= 2 {
            break dead;
        }
        assert!(Instant::now() < deadline, "{}", worker.log_text());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(dead.len(), 2, "{dead:#?}");
    let mapping = &dead[0];
    assert_eq!(mapping.key.as_deref(), Some(b"2".as_slice()));
    assert_eq!(
        mapping.value.as_deref(),
        Some(br#"{"rating":"not a number"}"#.as_slice()),
        "the original bytes"
    );
    let h = &mapping.headers;
    assert_eq!(h["__connect.errors.topic"], fx.topic);
    assert_eq!(h["__connect.errors.partition"], "0");
    assert_eq!(h["__connect.errors.offset"], "1");
    assert_eq!(h["__connect.errors.connector.name"], fx.name);
    assert_eq!(h["__connect.errors.stage"], "TASK_PUT");
    assert_eq!(h["__connect.errors.class.name"], "tributary.sink.opensearch");
    assert_eq!(
        h["__connect.errors.exception.class.name"],
        "mapper_parsing_exception"
    );
    assert!(
        h["__connect.errors.exception.message"].contains("rating"),
        "{h:?}"
    );
    let undecodable = &dead[1].headers;
    assert_eq!(undecodable["__connect.errors.offset"], "2");
    assert_eq!(undecodable["__connect.errors.stage"], "VALUE_CONVERTER");
    assert_eq!(
        undecodable["__connect.errors.exception.class.name"],
        "json_parse_error"
    );
    assert!(worker.stop_within(STOP));
    assert_eq!(fx.committed(0), Some(4), "everything handled is committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn tolerance_none_stops_at_a_bad_record_and_commits_nothing_past_it() {
    let fx = Fixture::new("os-none", 1).await;
    let mut records = plain(0..5);
    records.push((json_bytes(&json!(5)), Some(b"{not json".to_vec())));
    records.extend(plain(6..10));
    fx.produce(&fx.topic, &records).await;
    let mut worker = fx.start(&fx.yaml(&fx.endpoints.opensearch_url, "", ""));
    assert!(!worker.wait(WAIT), "exits non-zero; log:\n{}", worker.log_text());
    let log = worker.log_text();
    assert!(log.contains(&format!("bad record at {}/0@5", fx.topic)), "{log}");
    let documents = fx.documents().await;
    assert_eq!(
        documents.keys().cloned().collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4"],
        "nothing after the bad record is written"
    );
    assert_eq!(fx.committed(0), Some(5), "the bad record is read again next time");
    let status = fx.status().await.unwrap();
    assert_eq!(status["state"], "Failed");
    let error = status["lastError"].as_str().unwrap();
    assert!(
        error.contains("@5 (VALUE_CONVERTER, json_parse_error)"),
        "{error}"
    );
}

/// A TCP proxy to OpenSearch that can be cut and restored on the same port.
struct Proxy {
    port: u16,
    target: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Self {
            port,
            target: target.to_owned(),
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = Arc::new(self.target.clone());
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = Arc::clone(&target);
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target.as_str()).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the port and every open connection (aborting the task drops them all).
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn opensearch_unreachable_for_a_while_loses_nothing() {
    let fx = Fixture::new("os-down", 2).await;
    let target = fx
        .endpoints
        .opensearch_url
        .trim_start_matches("http://")
        .to_owned();
    let mut proxy = Proxy::start(&target).await;
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let retry = "  errors:\n    retry:\n      initialDelayMs: 100\n      maxDelayMs: 1000\n";
    let mut worker = fx.start(&fx.yaml(&url, "", retry));
    fx.produce(&fx.topic, &plain(0..200)).await;
    fx.wait_for_documents(200, &mut worker).await;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    fx.produce(&fx.topic, &plain(200..1000)).await;
    // The worker keeps retrying and says so in its status.
    let deadline = Instant::now() + WAIT;
    loop {
        if fx.status().await.is_some_and(|s| s["state"] == "Retrying") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never Retrying; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(fx.documents().await.len(), 200, "nothing written while cut off");
    proxy.restore().await;
    let documents = fx.wait_for_documents(1000, &mut worker).await;
    assert_eq!(documents["999"], json!({"id": 999, "rating": 5}));
    assert!(worker.stop_within(STOP));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_loses_nothing() {
    let fx = Fixture::new("os-kill", 3).await;
    fx.produce(&fx.topic, &plain(0..20_000)).await;
    let yaml = fx.yaml(&fx.endpoints.opensearch_url, "", "");
    let mut worker = fx.start(&yaml);
    let deadline = Instant::now() + WAIT;
    while fx.count().await < 1000 {
        assert!(Instant::now() < deadline, "{}", worker.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill9();
    let before = fx.count().await;
    assert!(before < 20_000, "killed mid-stream ({before} documents)");
    let mut restarted = fx.start(&yaml);
    fx.wait_for_documents(20_000, &mut restarted).await;
    assert!(restarted.stop_within(STOP));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_partitions_and_one_takes_over_from_a_killed_one() {
    let fx = Fixture::new("os-group", 4).await;
    let yaml = fx.yaml(&fx.endpoints.opensearch_url, "", "");
    let mut first = fx.start(&yaml);
    let mut second = fx.start(&yaml);
    fx.produce(&fx.topic, &plain(0..2000)).await;
    fx.wait_for_documents(2000, &mut first).await;
    // Both took part: each was assigned a non-empty share at some point.
    let assigned = |worker: &Worker| {
        worker
            .log_text()
            .lines()
            .filter(|l| l.contains("partitions assigned"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + WAIT;
    while !(assigned(&first).iter().any(|l| l.contains(&fx.topic))
        && assigned(&second).iter().any(|l| l.contains(&fx.topic)))
    {
        assert!(
            Instant::now() < deadline,
            "first:\n{}\nsecond:\n{}",
            first.log_text(),
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    first.kill9();
    fx.produce(&fx.topic, &plain(2000..4000)).await;
    fx.wait_for_documents(4000, &mut second).await;
    let last = assigned(&second).pop().unwrap();
    for partition in 0..4 {
        assert!(
            last.contains(&format!("\"{}\", {partition})", fx.topic)),
            "the survivor owns every partition: {last}"
        );
    }
    assert!(second.stop_within(STOP));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_low_rating_chain_unwraps_filters_and_marks_debezium_events() {
    let fx = Fixture::new("os-chain", 1).await;
    let transforms = "  transforms:\n    - unwrap: {}\n    - filter: {expression: rating < 3}\n    - insertField: {field: alert, value: low-rating}\n";
    let mut worker = fx.start(&fx.yaml(&fx.endpoints.opensearch_url, "", transforms));
    fx.produce(
        &fx.topic,
        &[
            event("c", 1, Some(1)),
            event("c", 2, Some(5)),
            event("u", 1, Some(2)),
            event("c", 3, Some(2)),
            event("c", 4, Some(4)),
        ],
    )
    .await;
    let documents = fx.wait_for_documents(2, &mut worker).await;
    let low = |id: u32| json!({"id": id, "rating": 2, "region": "eu", "alert": "low-rating"});
    assert_eq!(
        documents,
        BTreeMap::from([
            ("{\"id\":1}".to_owned(), low(1)),
            ("{\"id\":3}".to_owned(), low(3)),
        ])
    );
    assert!(worker.stop_within(STOP));
    assert_eq!(fx.committed(0), Some(5), "filtered records count as done");
}
