//! The OpenSearch sink against real Kafka and OpenSearch, with the worker
//! binary as a process (so it can be killed with SIGKILL): upserts and
//! deletes, poison records to the dead-letter topic, tolerance None,
//! OpenSearch unreachable for a minute under load (memory cap), kill -9,
//! and two workers sharing a consumer group.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::Worker;
use support::sink::{DeadLetter, Produced, Proxy, STOP, SinkFixture, Target, WAIT, json_bytes, plain};

/// The OpenSearch node and the index a test's connector writes (the topic,
/// lower-cased).
struct OpenSearch {
    /// The node, for the test's own requests.
    base: String,
    /// The URL the connector is given (the node, or a proxy to it).
    sink_url: String,
    index: String,
    http: reqwest::Client,
}

impl OpenSearch {
    fn new(fx: &SinkFixture) -> Self {
        Self {
            base: fx.endpoints.opensearch_url.clone(),
            sink_url: fx.endpoints.opensearch_url.clone(),
            index: fx.topic.to_lowercase(),
            http: reqwest::Client::new(),
        }
    }

    /// The JSON answer to a GET of `path` (after the node's URL).
    async fn get(&self, path: &str) -> Value {
        let url = format!("{}/{path}", self.base);
        self.http.get(url).send().await.unwrap().json().await.unwrap()
    }

    /// Every document of the index, by id.
    async fn documents(&self) -> BTreeMap<String, Value> {
        let (base, index) = (&self.base, &self.index);
        let _ = self.http.post(format!("{base}/{index}/_refresh")).send().await;
        let answer = self.get(&format!("{index}/_search?size=10000")).await;
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
        let (base, index) = (&self.base, &self.index);
        let _ = self.http.post(format!("{base}/{index}/_refresh")).send().await;
        let answer = self.get(&format!("{index}/_count")).await;
        answer["count"].as_u64().unwrap_or(0)
    }

    /// Waits until the index holds `expected` documents; returns them.
    async fn wait_for_documents(&self, expected: u64, worker: &Worker) -> BTreeMap<String, Value> {
        support::sink::wait_delivered(self, expected, worker).await;
        self.documents().await
    }
}

impl Target for OpenSearch {
    fn block(&self) -> String {
        format!("    opensearch:\n      url: {}\n", self.sink_url)
    }

    async fn delivered(&self) -> u64 {
        self.count().await
    }
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

#[tokio::test(flavor = "multi_thread")]
async fn updates_replace_and_deletes_remove_documents() {
    let fx = SinkFixture::new("os-upsert", 3).await;
    let os = OpenSearch::new(&fx);
    let mut worker = fx.start(&fx.yaml(&os.block(), "", ""));
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
    let documents = os.wait_for_documents(20, &worker).await;
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
    while os.documents().await.get("{\"id\":11}") != Some(&json!({"id": 11, "rating": 5, "region": "eu"})) {
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
    let fx = SinkFixture::new("os-merge", 1).await;
    let os = OpenSearch::new(&fx);
    let index = format!("{}-merged", fx.name);
    let block = format!(
        "    opensearch:\n      url: {}\n      index: {index}\n      writeMode: Upsert\n",
        os.base
    );
    let mut worker = fx.start(&fx.yaml(&block, "", ""));
    fx.produce(
        &fx.topic,
        &[
            (json_bytes(&json!("a")), json_bytes(&json!({"name": "Ann"}))),
            (json_bytes(&json!("a")), json_bytes(&json!({"rating": 4}))),
        ],
    )
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = os.get(&format!("{index}/_doc/a")).await;
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
    let fx = SinkFixture::new("os-dlq", 1).await;
    let os = OpenSearch::new(&fx);
    // `rating` is an integer: a string there is a mapping error for that document only.
    let created = os
        .http
        .put(format!("{}/{}", os.base, os.index))
        .json(&json!({"mappings": {"properties": {"rating": {"type": "integer"}}}}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());
    let (mut worker, dlq) = fx.start_with_dead_letters(&os.block());
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
    let documents = os.wait_for_documents(2, &worker).await;
    assert_eq!(documents.keys().collect::<Vec<_>>(), vec!["1", "4"]);
    let dead = fx.wait_for_topic(&dlq, 2, &worker).await;
    assert_eq!(dead.len(), 2, "{dead:#?}");
    let mapping = &dead[0];
    assert_eq!(mapping.key.as_deref(), Some(b"2".as_slice()));
    assert_eq!(
        mapping.value.as_deref(),
        Some(br#"{"rating":"not a number"}"#.as_slice()),
        "the original bytes"
    );
    DeadLetter {
        partition: 0,
        offset: 1,
        stage: "TASK_PUT",
        component: "tributary.sink.opensearch",
        class: "mapper_parsing_exception",
    }
    .assert(&fx, mapping, "rating");
    DeadLetter::not_json(2).assert(&fx, &dead[1], "JSON");
    assert!(worker.stop_within(STOP));
    assert_eq!(fx.committed(0), Some(4), "everything handled is committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn tolerance_none_stops_at_a_bad_record_and_commits_nothing_past_it() {
    let fx = SinkFixture::new("os-none", 1).await;
    let os = OpenSearch::new(&fx);
    let mut records = plain(0..5);
    records.push((json_bytes(&json!(5)), Some(b"{not json".to_vec())));
    records.extend(plain(6..10));
    fx.produce(&fx.topic, &records).await;
    let mut worker = fx.start(&fx.yaml(&os.block(), "", ""));
    assert!(!worker.wait(WAIT), "exits non-zero; log:\n{}", worker.log_text());
    let log = worker.log_text();
    assert!(log.contains(&format!("bad record at {}/0@5", fx.topic)), "{log}");
    let documents = os.documents().await;
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

/// `{"id", "rating", "note"}` records of about 1.6 KB keyed by the id.
fn padded(ids: std::ops::Range<u32>) -> Vec<Produced> {
    let note = "n".repeat(1500);
    ids.map(|id| {
        (
            json_bytes(&json!(id)),
            json_bytes(&json!({"id": id, "rating": id % 5 + 1, "note": note})),
        )
    })
    .collect()
}

const MIB: u64 = 1024 * 1024;

/// OpenSearch cut off for 60 s while about 120 MB of records keep arriving:
/// the worker reports Retrying, writes nothing, holds its memory bound
/// (pausing its partitions), and after recovery every record is indexed.
#[tokio::test(flavor = "multi_thread")]
async fn opensearch_down_for_a_minute_under_load_loses_nothing_and_stays_within_its_memory_cap() {
    const BATCH_BYTES: u64 = MIB;
    const IN_FLIGHT: u64 = 2;
    // The bound follows from the configuration (module docs of the sink
    // runtime): librdkafka's prefetch (8 MiB queue + one 8 MiB fetch), the
    // buffers (batch.maxBytes × (maxInFlight + 1)), each write in flight
    // (its raw batch, the decoded records and the request body: 4 ×
    // maxBytes). The cap adds the process's own resident size once it has
    // joined the group (code, runtime, clients: ~33 MiB for a debug build)
    // and a fixed 16 MiB allowance (allocator slack, bulk answers).
    let bound = 16 * MIB + BATCH_BYTES * (IN_FLIGHT + 1) + IN_FLIGHT * 4 * BATCH_BYTES;
    let fx = SinkFixture::new("os-down", 2).await;
    let mut os = OpenSearch::new(&fx);
    let mut proxy = Proxy::start(os.base.trim_start_matches("http://")).await;
    os.sink_url = format!("http://127.0.0.1:{}", proxy.port);
    let yaml = fx
        .yaml(
            &os.block(),
            "",
            "  errors:\n    retry:\n      initialDelayMs: 100\n      maxDelayMs: 2000\n",
        )
        .replace(
            "      maxRecords: 100\n",
            &format!(
                "      maxRecords: 1000\n      maxBytes: {BATCH_BYTES}\n      maxInFlight: {IN_FLIGHT}\n"
            ),
        );
    let mut worker = fx.start(&yaml);
    let deadline = Instant::now() + WAIT;
    while !worker.log_text().contains("partitions assigned") {
        assert!(Instant::now() < deadline, "{}", worker.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle = worker.peak_rss_bytes();
    let cap = idle + bound + 16 * MIB;
    fx.produce(&fx.topic, &padded(0..1000)).await;
    os.wait_for_documents(1000, &worker).await;

    proxy.cut();
    let cut_at = Instant::now();
    // 60 s of records while cut off: 1,250 a second, 75,000 in all.
    let mut next = 1000;
    for second in 1..=60 {
        fx.produce(&fx.topic, &padded(next..next + 1250)).await;
        next += 1250;
        if second == 5 {
            let status = fx.status().await.unwrap();
            assert_eq!(status["state"], "Retrying", "{status}");
        }
        tokio::time::sleep_until((cut_at + Duration::from_secs(second)).into()).await;
    }
    assert_eq!(os.count().await, 1000, "nothing written while cut off");
    let peak_while_down = worker.peak_rss_bytes();
    proxy.restore().await;
    support::sink::wait_delivered(&os, u64::from(next), &worker).await;
    let last = os.get(&format!("{}/_doc/{}", os.index, next - 1)).await;
    assert_eq!(last["_source"]["id"], next - 1, "{last}");
    let peak = worker.peak_rss_bytes();
    assert!(worker.stop_within(STOP), "{}", worker.log_text());
    eprintln!(
        "produced {next} records ({} MiB); RSS {} MiB idle, peak {} MiB while down, {} MiB overall; cap {} MiB",
        u64::from(next) * 1600 / MIB,
        idle / MIB,
        peak_while_down / MIB,
        peak / MIB,
        cap / MIB
    );
    assert!(
        peak <= cap,
        "peak RSS {} MiB over the cap of {} MiB",
        peak / MIB,
        cap / MIB
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_loses_nothing() {
    let fx = SinkFixture::new("os-kill", 3).await;
    support::sink::kill_9_mid_stream_loses_nothing(&fx, &OpenSearch::new(&fx)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_partitions_and_one_takes_over_from_a_killed_one() {
    let fx = SinkFixture::new("os-group", 4).await;
    support::sink::two_workers_share_and_one_takes_over(&fx, &OpenSearch::new(&fx)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_low_rating_chain_unwraps_filters_and_marks_debezium_events() {
    let fx = SinkFixture::new("os-chain", 1).await;
    let os = OpenSearch::new(&fx);
    let transforms = "  transforms:\n    - unwrap: {}\n    - filter: {expression: rating < 3}\n    - insertField: {field: alert, value: low-rating}\n";
    let mut worker = fx.start(&fx.yaml(&os.block(), "", transforms));
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
    let documents = os.wait_for_documents(2, &worker).await;
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
