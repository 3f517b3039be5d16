//! The sink tests' shared scaffolding: a topic and names per test, the worker
//! binary running a `spec.sink` Connector (the sink-worker helper), producing
//! records, reading topics back with their headers, the connector's status and
//! committed offsets, a TCP proxy that cuts a target off, and the scenarios
//! every sink must pass (kill -9, two workers with one killed), generic over
//! the target through [`Target`].

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

use super::{Worker, start_worker};

/// How long records may take to arrive.
pub const WAIT: Duration = Duration::from_mins(2);
/// How long a graceful stop may take.
pub const STOP: Duration = Duration::from_mins(1);

/// Key and value bytes of one record to produce (`None`: null).
pub type Produced = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Topic, connector name, status topic and files of one test.
pub struct SinkFixture {
    pub endpoints: Endpoints,
    /// Connector name (also the prefix of every name below).
    pub name: String,
    /// The topic the sink reads.
    pub topic: String,
    pub status_topic: String,
    pub dir: PathBuf,
}

impl SinkFixture {
    /// Names for a test and its input topic with `partitions` partitions.
    pub async fn new(prefix: &str, partitions: i32) -> Self {
        let endpoints = Endpoints::from_env();
        let name = unique_name(prefix);
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let fixture = Self {
            topic: format!("{name}-ratings"),
            status_topic: format!("{name}-status"),
            name,
            dir,
            endpoints,
        };
        fixture.create_topic(&fixture.topic, partitions).await;
        fixture
    }

    /// Names for a test whose sink reads `topic`, an existing topic (or one
    /// a source creates).
    pub fn reading(prefix: &str, topic: &str) -> Self {
        let endpoints = Endpoints::from_env();
        let name = unique_name(prefix);
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            topic: topic.to_owned(),
            status_topic: format!("{name}-status"),
            name,
            dir,
            endpoints,
        }
    }

    pub async fn create_topic(&self, topic: &str, partitions: i32) {
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

    /// A JSON Connector manifest reading the fixture's topic (batches of at
    /// most 100 records, 50 ms linger) into `target` (the block under
    /// `spec.sink`, indented 4 spaces), with `sink_extra` under `spec.sink`
    /// (4 spaces) and `spec_extra` under `spec` (2 spaces).
    pub fn yaml(&self, target: &str, sink_extra: &str, spec_extra: &str) -> String {
        format!(
            "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: {name}\nspec:\n  format:\n    key: json\n    value: json\n  sink:\n    topics: [{topic}]\n    batch:\n      maxRecords: 100\n      lingerMs: 50\n{sink_extra}{target}{spec_extra}",
            name = self.name,
            topic = self.topic,
        )
    }

    /// Starts the worker binary on `yaml` (status every second, no HTTP
    /// endpoint, a host name of its own so two workers are two members).
    pub fn start(&self, yaml: &str) -> Worker {
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

    pub async fn produce(&self, topic: &str, records: &[Produced]) {
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

    /// Starts a worker writing to `target` (the block under `spec.sink`)
    /// with `spec.errors.tolerance: All` and a dead-letter topic; returns
    /// the worker and the topic.
    pub fn start_with_dead_letters(&self, target: &str) -> (Worker, String) {
        let dlq = format!("{}-dlq", self.name);
        let errors = format!("  errors:\n    tolerance: All\n    deadLetterTopic: {dlq}\n");
        (self.start(&self.yaml(target, "", &errors)), dlq)
    }

    /// The latest status record of this connector.
    pub async fn status(&self) -> Option<Value> {
        read_all(&self.endpoints.kafka_bootstrap, &self.status_topic)
            .await
            .into_iter()
            .rev()
            .find(|r| r.key.as_deref() == Some(self.name.as_bytes()))
            .and_then(|r| r.value)
            .map(|v| serde_json::from_slice(&v).unwrap())
    }

    /// Waits until the connector reports `state`.
    pub async fn wait_for_state(&self, state: &str, worker: &Worker) {
        let deadline = Instant::now() + WAIT;
        while !self.status().await.is_some_and(|s| s["state"] == state) {
            assert!(
                Instant::now() < deadline,
                "never {state}; log:\n{}",
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The group's committed offset of partition `partition` of the topic.
    pub fn committed(&self, partition: i32) -> Option<i64> {
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

    /// Waits until `topic` holds at least `expected` records; returns them all.
    pub async fn wait_for_topic(&self, topic: &str, expected: usize, worker: &Worker) -> Vec<Read> {
        let deadline = Instant::now() + WAIT;
        loop {
            let records = read_all(&self.endpoints.kafka_bootstrap, topic).await;
            if records.len() >= expected {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "{topic}: {} of {expected} records; log:\n{}",
                records.len(),
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for SinkFixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One record read back with its headers.
#[derive(Debug)]
pub struct Read {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

/// Everything in `topic` up to its current end (nothing if it does not exist).
pub async fn read_all(bootstrap: &str, topic: &str) -> Vec<Read> {
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

/// The dead-letter context a sink must attach to a record it could not
/// write, as Kafka Connect names it.
pub struct DeadLetter<'a> {
    pub partition: i32,
    pub offset: i64,
    pub stage: &'a str,
    /// `__connect.errors.class.name`: the component that failed.
    pub component: &'a str,
    /// `__connect.errors.exception.class.name`: the error's class.
    pub class: &'a str,
}

impl DeadLetter<'static> {
    /// The context of a value at partition 0 that is not JSON.
    pub fn not_json(offset: i64) -> Self {
        Self {
            partition: 0,
            offset,
            stage: "VALUE_CONVERTER",
            component: "tributary.format.json",
            class: "json_parse_error",
        }
    }
}

impl DeadLetter<'_> {
    /// Asserts `read` carries this context for the fixture's topic and
    /// connector, and a message containing `message_part`.
    pub fn assert(&self, fx: &SinkFixture, read: &Read, message_part: &str) {
        let h = &read.headers;
        assert_eq!(h["__connect.errors.topic"], fx.topic, "{h:?}");
        assert_eq!(
            h["__connect.errors.partition"],
            self.partition.to_string(),
            "{h:?}"
        );
        assert_eq!(h["__connect.errors.offset"], self.offset.to_string(), "{h:?}");
        assert_eq!(h["__connect.errors.connector.name"], fx.name, "{h:?}");
        assert_eq!(h["__connect.errors.stage"], self.stage, "{h:?}");
        assert_eq!(h["__connect.errors.class.name"], self.component, "{h:?}");
        assert_eq!(h["__connect.errors.exception.class.name"], self.class, "{h:?}");
        assert!(
            h["__connect.errors.exception.message"].contains(message_part),
            "{message_part:?} not in {h:?}"
        );
    }
}

#[allow(clippy::unnecessary_wraps)] // reads as the record's Some(bytes)
pub fn json_bytes(value: &Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(value).unwrap())
}

/// Plain JSON `{"id", "rating"}` records keyed by the id (as a number).
pub fn plain(ids: std::ops::Range<u32>) -> Vec<Produced> {
    ids.map(|id| {
        (
            json_bytes(&json!(id)),
            json_bytes(&json!({"id": id, "rating": id % 5 + 1})),
        )
    })
    .collect()
}

/// The system a sink writes to, as the scenarios below see it: the
/// `spec.sink` block that targets it and how many distinct records of
/// [`plain`] it holds.
pub trait Target {
    /// The target block under `spec.sink`, indented 4 spaces.
    fn block(&self) -> String;
    /// Distinct ids of [`plain`] records delivered so far.
    fn delivered(&self) -> impl Future<Output = u64> + Send;
}

/// Waits until `target` holds `expected` distinct records.
pub async fn wait_delivered(target: &impl Target, expected: u64, worker: &Worker) {
    let deadline = Instant::now() + WAIT;
    loop {
        let delivered = target.delivered().await;
        if delivered == expected {
            return;
        }
        assert!(
            delivered < expected,
            "{delivered} records delivered, more than the {expected} produced"
        );
        assert!(
            Instant::now() < deadline,
            "{delivered} of {expected} records delivered; log:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// 20,000 records; the worker is killed with SIGKILL once 1,000 arrived;
/// a new worker delivers every record (the killed one's uncommitted work
/// is read again: duplicates, never loss).
pub async fn kill_9_mid_stream_loses_nothing(fx: &SinkFixture, target: &impl Target) {
    fx.produce(&fx.topic, &plain(0..20_000)).await;
    let yaml = fx.yaml(&target.block(), "", "");
    let mut worker = fx.start(&yaml);
    let deadline = Instant::now() + WAIT;
    while target.delivered().await < 1000 {
        assert!(Instant::now() < deadline, "{}", worker.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill9();
    let before = target.delivered().await;
    assert!(before < 20_000, "killed mid-stream ({before} records delivered)");
    let mut restarted = fx.start(&yaml);
    wait_delivered(target, 20_000, &restarted).await;
    assert!(restarted.stop_within(STOP), "{}", restarted.log_text());
}

/// `partitions assigned` log lines of `worker`.
fn assignments(worker: &Worker) -> Vec<String> {
    worker
        .log_text()
        .lines()
        .filter(|l| l.contains("partitions assigned"))
        .map(str::to_owned)
        .collect()
}

/// The partitions of `topic` (0..4) `worker` owns by its log: assigned and
/// revoked incrementally (cooperative rebalancing); and the largest number
/// of them revoked at once.
fn owned(worker: &Worker, topic: &str) -> (Vec<i32>, usize) {
    let mut owned = std::collections::BTreeSet::new();
    let mut most_revoked = 0;
    for line in worker.log_text().lines() {
        let listed: Vec<i32> = (0..4)
            .filter(|p| line.contains(&format!("\"{topic}\", {p})")))
            .collect();
        if line.contains("partitions assigned") {
            owned.extend(listed);
        } else if line.contains("partitions revoked") {
            most_revoked = most_revoked.max(listed.len());
            for p in listed {
                owned.remove(&p);
            }
        }
    }
    (owned.into_iter().collect(), most_revoked)
}

/// Two workers of one connector share the topic's 4 partitions (the
/// fixture's topic must have 4): the second joins while the first owns all
/// of them and gets a share moved cooperatively (the first never gives up
/// all its partitions at once); then the first is killed with SIGKILL and
/// the second takes over every partition and delivers everything.
pub async fn two_workers_share_and_one_takes_over(fx: &SinkFixture, target: &impl Target) {
    let yaml = fx.yaml(&target.block(), "", "");
    let mut first = fx.start(&yaml);
    fx.produce(&fx.topic, &plain(0..1000)).await;
    wait_delivered(target, 1000, &first).await;
    // The second joins while the first owns all four partitions.
    let mut second = fx.start(&yaml);
    fx.produce(&fx.topic, &plain(1000..2000)).await;
    wait_delivered(target, 2000, &first).await;
    // Both took part: each was assigned a non-empty share at some point.
    let deadline = Instant::now() + WAIT;
    while !(assignments(&first).iter().any(|l| l.contains(&fx.topic))
        && assignments(&second).iter().any(|l| l.contains(&fx.topic)))
    {
        assert!(
            Instant::now() < deadline,
            "first:\n{}\nsecond:\n{}",
            first.log_text(),
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Each owns a share: revokes moved only partitions that changed owner.
    let deadline = Instant::now() + WAIT;
    let most_revoked = loop {
        let (mine, most_revoked) = owned(&first, &fx.topic);
        let (theirs, _) = owned(&second, &fx.topic);
        if mine.len() + theirs.len() == 4 && !mine.is_empty() && !theirs.is_empty() {
            break most_revoked;
        }
        assert!(Instant::now() < deadline, "{mine:?} + {theirs:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        most_revoked < 4,
        "a rebalance revoked every partition of the first worker (eager, not cooperative):\n{}",
        first.log_text()
    );
    first.kill9();
    fx.produce(&fx.topic, &plain(2000..4000)).await;
    wait_delivered(target, 4000, &second).await;
    let deadline = Instant::now() + WAIT;
    while owned(&second, &fx.topic).0 != [0, 1, 2, 3] {
        assert!(
            Instant::now() < deadline,
            "the survivor owns every partition:\n{}",
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(second.stop_within(STOP), "{}", second.log_text());
}

/// A TCP proxy to a target that can be cut and restored on the same port.
pub struct Proxy {
    pub port: u16,
    target: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Forwards a new loopback port to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
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
    pub fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    pub async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}
