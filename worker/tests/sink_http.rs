//! The HTTP webhook writer against a real HTTP receiver (axum, in the test),
//! driven through the `SinkWriter` trait.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tributary_api::SecretKeyRef;
use tributary_api::sink::http::{HttpHeader, HttpMethod, HttpMode, HttpPayload, HttpSink};
use tributary_testkit::unique_name;
use tributary_worker::config::SecretResolver;
use tributary_worker::record::Record;
use tributary_worker::sink::http::{HttpSinkConfig, HttpWriter};
use tributary_worker::sink::{SinkError, SinkWriter};

use support::start_worker;

/// How long the end-to-end worker may take to stop gracefully.
const STOP: Duration = Duration::from_mins(1);

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    headers: HeaderMap,
    body: Value,
}

/// A scripted answer: status, extra headers, body, delay.
#[derive(Clone)]
struct Answer(StatusCode, Vec<(&'static str, String)>, &'static str, Duration);

fn ok() -> Answer {
    Answer(StatusCode::OK, Vec::new(), "", Duration::ZERO)
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    /// Serves on a free loopback port; answers from `script`, then 200.
    async fn start(script: Vec<Answer>) -> (Self, SocketAddr) {
        let receiver = Self {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
        };
        let app = Router::new().fallback(handle).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle(
    State(receiver): State<Receiver>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    receiver.seen.lock().unwrap().push(Seen {
        method,
        headers,
        body,
    });
    let Answer(status, extra, text, delay) = receiver.script.lock().unwrap().pop_front().unwrap_or_else(ok);
    tokio::time::sleep(delay).await;
    let mut response = (status, text).into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

fn spec(addr: SocketAddr) -> HttpSink {
    HttpSink {
        url: format!("http://{addr}/hooks/ratings"),
        ..HttpSink::default()
    }
}

fn writer(spec: HttpSink) -> HttpWriter {
    HttpWriter::new(HttpSinkConfig::new(spec, &SecretResolver::default()).unwrap()).unwrap()
}

fn record(offset: i64, value: Option<Value>) -> Record {
    Record {
        topic: "ratings".into(),
        partition: 2,
        offset,
        timestamp_ms: Some(1_700_000_000_000 + offset),
        key: Some(json!({"id": offset})),
        value,
        headers: Vec::new(),
    }
}

fn rating(offset: i64) -> Record {
    record(offset, Some(json!({"id": offset, "stars": 2})))
}

#[tokio::test]
async fn a_batch_arrives_as_one_json_array_of_values() {
    let (receiver, addr) = Receiver::start(Vec::new()).await;
    let mut writer = writer(spec(addr));
    let outcome = writer
        .write(&[rating(1), record(2, None), rating(3)])
        .await
        .unwrap();
    assert!(outcome.rejected.is_empty());
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].headers["content-type"], "application/json");
    // The tombstone is skipped with payload Value.
    assert_eq!(
        seen[0].body,
        json!([{"id": 1, "stars": 2}, {"id": 3, "stars": 2}])
    );
    // A batch of tombstones only sends nothing.
    writer.write(&[record(4, None)]).await.unwrap();
    assert_eq!(receiver.seen().len(), 1);
}

#[tokio::test]
async fn single_mode_sends_one_request_per_record_with_its_coordinates() {
    let (receiver, addr) = Receiver::start(Vec::new()).await;
    let mut writer = writer(HttpSink {
        method: HttpMethod::Put,
        mode: HttpMode::Single,
        payload: HttpPayload::Record,
        ..spec(addr)
    });
    writer.write(&[rating(7), record(8, None)]).await.unwrap();
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.method == Method::PUT));
    assert_eq!(
        seen[0].body,
        json!({"topic": "ratings", "partition": 2, "offset": 7, "timestampMs": 1_700_000_000_007_i64,
               "key": {"id": 7}, "value": {"id": 7, "stars": 2}})
    );
    assert_eq!(seen[1].body["value"], Value::Null);
    assert_eq!(seen[1].body["offset"], 8);
}

#[tokio::test]
async fn unavailable_then_ok_is_retried_with_the_advised_delay() {
    let date = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(120))
        .unwrap();
    let http_date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&date)
        .unwrap();
    let (receiver, addr) = Receiver::start(vec![
        Answer(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![("retry-after", "2".into())],
            "down for maintenance",
            Duration::ZERO,
        ),
        Answer(
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", http_date)],
            "slow down",
            Duration::ZERO,
        ),
        Answer(StatusCode::BAD_GATEWAY, Vec::new(), "", Duration::ZERO),
    ])
    .await;
    let mut writer = writer(spec(addr));
    let batch = [rating(1), rating(2)];

    let error = writer.write(&batch).await.unwrap_err();
    let SinkError::Retryable { message, retry_after } = error else {
        panic!("retryable expected: {error:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(2)));
    assert!(
        message.contains("503") && message.contains("down for maintenance"),
        "{message}"
    );

    let Err(SinkError::Retryable { retry_after, .. }) = writer.write(&batch).await else {
        panic!("429 is retryable")
    };
    let after = retry_after.expect("an HTTP date is honoured");
    assert!(
        after > Duration::from_secs(100) && after <= Duration::from_mins(2),
        "{after:?}"
    );

    let Err(SinkError::Retryable {
        retry_after: None, ..
    }) = writer.write(&batch).await
    else {
        panic!("502 without Retry-After is retryable")
    };

    let outcome = writer.write(&batch).await.unwrap();
    assert!(outcome.rejected.is_empty());
    let seen = receiver.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter().all(|s| s.body == seen[0].body),
        "the same batch is resent"
    );
}

#[tokio::test]
async fn a_client_error_rejects_the_records_of_that_request() {
    let bad_request = || {
        Answer(
            StatusCode::BAD_REQUEST,
            Vec::new(),
            "field stars: must be 1-5",
            Duration::ZERO,
        )
    };
    let (receiver, addr) = Receiver::start(vec![bad_request(), ok(), bad_request()]).await;

    // Batch mode: the whole batch (except skipped tombstones) is rejected.
    let mut batch_writer = writer(spec(addr));
    let outcome = batch_writer
        .write(&[rating(1), record(2, None), rating(3)])
        .await
        .unwrap();
    let rejected: Vec<(usize, &str)> = outcome
        .rejected
        .iter()
        .map(|r| (r.index, r.class.as_str()))
        .collect();
    assert_eq!(rejected, [(0, "http_400"), (2, "http_400")]);
    assert!(
        outcome.rejected[0].message.contains("field stars: must be 1-5"),
        "{outcome:?}"
    );

    // Single mode: only the refused record.
    let mut single_writer = writer(HttpSink {
        mode: HttpMode::Single,
        ..spec(addr)
    });
    let outcome = single_writer
        .write(&[rating(4), rating(5), rating(6)])
        .await
        .unwrap();
    let rejected: Vec<usize> = outcome.rejected.iter().map(|r| r.index).collect();
    assert_eq!(rejected, [1]);
    assert_eq!(receiver.seen().len(), 4);
}

#[tokio::test]
async fn no_answer_is_retryable_and_errors_do_not_show_the_url() {
    // Nothing listens on port 1; the query string stands for a token.
    let mut refused = writer(HttpSink {
        url: "http://127.0.0.1:1/hook?token=tok-in-url".into(),
        ..HttpSink::default()
    });
    let error = refused.write(&[rating(1)]).await.unwrap_err();
    assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
    assert!(!error.to_string().contains("tok-in-url"), "{error}");

    let (_receiver, addr) = Receiver::start(vec![Answer(
        StatusCode::OK,
        Vec::new(),
        "",
        Duration::from_secs(3),
    )])
    .await;
    let mut slow = writer(HttpSink {
        timeout_seconds: 1,
        ..spec(addr)
    });
    let error = slow.write(&[rating(1)]).await.unwrap_err();
    assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
}

/// Log lines written while the writer works (every level, every target).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_secret_header_is_sent_but_never_logged() {
    let secret = format!("Bearer {}", unique_name("token"));
    let name = unique_name("hook-secret");
    let dir = std::env::temp_dir().join(unique_name("tributary-http-secrets"));
    std::fs::create_dir_all(dir.join(&name)).unwrap();
    std::fs::write(dir.join(&name).join("token"), format!("{secret}\n")).unwrap();
    let resolver = SecretResolver {
        dir: Some(dir.clone()),
    };

    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (receiver, addr) = Receiver::start(vec![Answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        Vec::new(),
        "oops",
        Duration::ZERO,
    )])
    .await;
    let spec = HttpSink {
        headers: vec![
            HttpHeader {
                name: "Authorization".into(),
                value: None,
                secret_key_ref: Some(SecretKeyRef {
                    name: name.clone(),
                    key: "token".into(),
                }),
            },
            HttpHeader {
                name: "X-Pipeline".into(),
                value: Some("ratings".into()),
                secret_key_ref: None,
            },
        ],
        ..spec(addr)
    };
    let config = HttpSinkConfig::new(spec, &resolver).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    tracing::info!(config = ?config, "sink configured");
    let mut writer = HttpWriter::new(config).unwrap();
    tracing::info!(writer = ?writer, "writer built");
    let error = writer.write(&[rating(1)]).await.unwrap_err();
    tracing::warn!(%error, "write failed");
    writer.write(&[rating(1)]).await.unwrap();

    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].headers["authorization"], secret.as_str());
    assert_eq!(seen[1].headers["x-pipeline"], "ratings");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("webhook asked to retry"),
        "the writer logged: {text}"
    );
    assert!(text.contains("writer built"), "{text}");
    assert!(!text.contains(&secret), "the secret leaked into the logs: {text}");
    assert!(!error.to_string().contains(&secret));
}

/// End to end: records in a Kafka topic, the worker binary running a
/// `spec.sink.http` Connector, the receiver getting every value (a 503 on
/// the way is retried by the runtime).
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_delivers_kafka_records_to_the_webhook() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let endpoints = tributary_testkit::Endpoints::from_env();
    let name = unique_name("http-sink-e2e");
    let topic = format!("{name}-alerts");
    let bootstrap = endpoints.kafka_bootstrap.clone();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for id in 0..30 {
        let value = json!({"id": id, "stars": 1}).to_string();
        let key = id.to_string();
        producer
            .send(
                FutureRecord::<str, str>::to(&topic).key(&key).payload(&value),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }

    let (receiver, addr) = Receiver::start(vec![Answer(
        StatusCode::SERVICE_UNAVAILABLE,
        vec![("retry-after", "1".into())],
        "warming up",
        Duration::ZERO,
    )])
    .await;
    let yaml = format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: {name}\nspec:\n  format:\n    key: json\n    value: json\n  sink:\n    topics: [{topic}]\n    batch:\n      maxRecords: 10\n      lingerMs: 50\n    http:\n      url: http://{addr}/alerts\n"
    );
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let status_topic = format!("{name}-status");
    let mut worker = start_worker(
        &dir,
        &yaml,
        &[
            "--bootstrap-servers",
            &bootstrap,
            "--status-topic",
            &status_topic,
            "--http-addr",
            "off",
        ],
        &[],
    );
    let deadline = std::time::Instant::now() + Duration::from_mins(2);
    let arrived = loop {
        let mut ids: Vec<i64> = receiver
            .seen()
            .iter()
            .skip(1) // the refused first request is sent again
            .flat_map(|s| s.body.as_array().cloned().unwrap_or_default())
            .map(|v| v["id"].as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() == 30 {
            break ids;
        }
        // On failure, dropping the worker kills it.
        assert!(
            std::time::Instant::now() <= deadline && worker.running(),
            "{} of 30 records arrived; worker log:\n{}",
            ids.len(),
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(arrived, (0..30).collect::<Vec<i64>>());
    let seen = receiver.seen();
    assert!(
        seen[1..].iter().any(|s| s.body == seen[0].body),
        "the batch refused with 503 is sent again"
    );
    assert!(worker.stop_within(STOP), "{}", worker.log_text());
    let _ = std::fs::remove_dir_all(&dir);
}
