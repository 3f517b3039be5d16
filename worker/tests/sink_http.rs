//! The HTTP webhook sink against a real HTTP receiver (axum, in the test):
//! the writer driven through the `SinkWriter` trait, and the worker binary
//! end to end from Kafka (retries, refused records to the dead-letter
//! topic, kill -9, two workers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeSet, VecDeque};
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
use tributary_api::sink::SinkTls;
use tributary_api::sink::http::{HttpHeader, HttpMethod, HttpMode, HttpPayload, HttpSink};
use tributary_testkit::unique_name;
use tributary_worker::config::SecretResolver;
use tributary_worker::record::Record;
use tributary_worker::sink::http::{HttpSinkConfig, HttpWriter};
use tributary_worker::sink::{SinkError, SinkWriter};

use support::sink::{DeadLetter, STOP, SinkFixture, Target, json_bytes, plain, wait_delivered};

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
    /// `id`s of the records in requests answered 2xx.
    accepted: Arc<Mutex<BTreeSet<i64>>>,
}

impl Receiver {
    /// Serves on a free loopback port; answers from `script`, then 200.
    async fn start(script: Vec<Answer>) -> (Self, SocketAddr) {
        let receiver = Self {
            script: Arc::new(Mutex::new(script.into())),
            ..Self::default()
        };
        let app = Router::new().fallback(handle).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, addr)
    }

    /// Serves HTTPS with `identity` on a free loopback port; answers 200.
    async fn start_https(identity: native_tls::Identity) -> (Self, SocketAddr) {
        let receiver = Self::default();
        let app = Router::new().fallback(handle).with_state(receiver.clone());
        let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
        let listener = TlsListener {
            tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: acceptor.into(),
        };
        let addr = listener.tcp.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// TCP + TLS handshake, as axum's listener (a failed handshake — a client
/// refusing our certificate — is skipped).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_native_tls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_native_tls::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A private CA and two certificates it signed, made with the `openssl`
/// command in `dir`: the server's (for 127.0.0.1) and a client's. Returns
/// the CA's PEM and the server identity.
fn private_pki(dir: &std::path::Path) -> (String, native_tls::Identity) {
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=tributary test CA",
    ]);
    for name in ["server", "client"] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ]);
    }
    let read = |file: &str| std::fs::read(dir.join(file)).unwrap();
    let identity = native_tls::Identity::from_pkcs8(&read("server.pem"), &read("server.key")).unwrap();
    (String::from_utf8(read("ca.pem")).unwrap(), identity)
}

async fn handle(
    State(receiver): State<Receiver>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let records = body.as_array().cloned().unwrap_or_else(|| vec![body.clone()]);
    receiver.seen.lock().unwrap().push(Seen {
        method,
        headers,
        body,
    });
    // A record marked poison is refused, as a webhook refuses invalid input.
    let scripted = receiver.script.lock().unwrap().pop_front();
    let Answer(status, extra, text, delay) = if records.iter().any(|r| r["poison"] == true) {
        Answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            "poison refused",
            Duration::ZERO,
        )
    } else {
        scripted.unwrap_or_else(ok)
    };
    if status.is_success() {
        let ids = records.iter().filter_map(|r| r["id"].as_i64());
        receiver.accepted.lock().unwrap().extend(ids);
    }
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
        ..SecretResolver::default()
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

/// HTTPS to a webhook whose certificate a private CA signed: refused with
/// the system trust store alone (retryable, nothing sent), written with the
/// CA from a Secret (`tls.caSecretRef`, a client certificate beside it) or
/// with verification off; material that is not PEM is refused at load,
/// naming the field.
#[tokio::test]
async fn https_to_a_webhook_signed_by_a_private_ca() {
    let dir = std::env::temp_dir().join(unique_name("tributary-https"));
    std::fs::create_dir_all(dir.join("pki")).unwrap();
    let (ca, identity) = private_pki(&dir.join("pki"));
    let secret = |key: &str, text: &str| {
        std::fs::create_dir_all(dir.join("hook-tls")).unwrap();
        std::fs::write(dir.join("hook-tls").join(key), text).unwrap();
        Some(SecretKeyRef {
            name: "hook-tls".into(),
            key: key.into(),
        })
    };
    let read = |file: &str| std::fs::read_to_string(dir.join("pki").join(file)).unwrap();
    let resolver = SecretResolver {
        dir: Some(dir.clone()),
        ..SecretResolver::default()
    };
    let (receiver, addr) = Receiver::start_https(identity).await;
    let https = |tls: Option<SinkTls>| {
        HttpWriter::new(
            HttpSinkConfig::new(
                HttpSink {
                    url: format!("https://127.0.0.1:{}/hook", addr.port()),
                    tls,
                    ..HttpSink::default()
                },
                &resolver,
            )
            .unwrap(),
        )
        .unwrap()
    };

    let error = https(None).write(&[rating(1)]).await.unwrap_err();
    assert!(matches!(error, SinkError::Retryable { .. }), "{error:?}");
    assert!(receiver.seen().is_empty(), "nothing passes an unverified server");

    let trusted = SinkTls {
        ca_secret_ref: secret("ca", &ca),
        client_cert_secret_ref: secret("cert", &read("client.pem")),
        client_key_secret_ref: secret("key", &read("client.key")),
        ..SinkTls::default()
    };
    let outcome = https(Some(trusted)).write(&[rating(2)]).await.unwrap();
    assert!(outcome.rejected.is_empty());
    let insecure = SinkTls {
        insecure_skip_verify: true,
        ..SinkTls::default()
    };
    https(Some(insecure)).write(&[rating(3)]).await.unwrap();
    let ids: Vec<Value> = receiver.seen().iter().map(|s| s.body[0]["id"].clone()).collect();
    assert_eq!(ids, [json!(2), json!(3)]);

    let not_pem = SinkTls {
        ca_secret_ref: secret("garbage", "not a certificate"),
        ..SinkTls::default()
    };
    let error = HttpSinkConfig::new(
        HttpSink {
            url: "https://127.0.0.1:1/".into(),
            tls: Some(not_pem),
            ..HttpSink::default()
        },
        &resolver,
    )
    .unwrap_err()
    .to_string();
    assert!(error.starts_with("spec.sink.http.tls.caSecretRef: "), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The receiver as a sink target.
struct HttpTarget {
    receiver: Receiver,
    addr: SocketAddr,
    /// Extra fields of the `http` block (6 spaces).
    extra: &'static str,
}

impl HttpTarget {
    async fn start(script: Vec<Answer>, extra: &'static str) -> Self {
        let (receiver, addr) = Receiver::start(script).await;
        Self {
            receiver,
            addr,
            extra,
        }
    }
}

impl Target for HttpTarget {
    fn block(&self) -> String {
        format!(
            "    http:\n      url: http://{}/alerts\n{}",
            self.addr, self.extra
        )
    }

    async fn delivered(&self) -> u64 {
        self.receiver.accepted.lock().unwrap().len() as u64
    }
}

/// End to end: records in a Kafka topic, the worker binary running a
/// `spec.sink.http` Connector, the receiver getting every value (a 503 on
/// the way is retried by the runtime).
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_delivers_kafka_records_to_the_webhook() {
    let fx = SinkFixture::new("http-sink-e2e", 1).await;
    fx.produce(&fx.topic, &plain(0..30)).await;
    let target = HttpTarget::start(
        vec![Answer(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![("retry-after", "1".into())],
            "warming up",
            Duration::ZERO,
        )],
        "",
    )
    .await;
    let yaml = fx
        .yaml(&target.block(), "", "")
        .replace("maxRecords: 100", "maxRecords: 10");
    let mut worker = fx.start(&yaml);
    wait_delivered(&target, 30, &worker).await;
    let seen = target.receiver.seen();
    assert!(
        seen[1..].iter().any(|s| s.body == seen[0].body),
        "the batch refused with 503 is sent again"
    );
    assert!(
        seen[0].body.as_array().unwrap().len() <= 10,
        "batches of at most 10"
    );
    assert!(worker.stop_within(STOP), "{}", worker.log_text());
}

/// A record the webhook refuses (4xx) and bytes that are not JSON go to the
/// dead-letter topic with their context; the others are delivered and
/// everything is committed.
#[tokio::test(flavor = "multi_thread")]
async fn refused_records_go_to_the_dead_letter_topic_with_context_headers() {
    let fx = SinkFixture::new("http-dlq", 1).await;
    let target = HttpTarget::start(Vec::new(), "      mode: Single\n").await;
    let (mut worker, dlq) = fx.start_with_dead_letters(&target.block());
    fx.produce(
        &fx.topic,
        &[
            (json_bytes(&json!(1)), json_bytes(&json!({"id": 1}))),
            (
                json_bytes(&json!(2)),
                json_bytes(&json!({"id": 2, "poison": true})),
            ),
            (json_bytes(&json!(3)), Some(b"{not json".to_vec())),
            (json_bytes(&json!(4)), json_bytes(&json!({"id": 4}))),
        ],
    )
    .await;
    let dead = fx.wait_for_topic(&dlq, 2, &worker).await;
    assert_eq!(dead.len(), 2, "{dead:#?}");
    assert_eq!(
        dead[0].value.as_deref(),
        Some(br#"{"id":2,"poison":true}"#.as_slice()),
        "the original bytes"
    );
    DeadLetter {
        partition: 0,
        offset: 1,
        stage: "TASK_PUT",
        component: "tributary.sink.http",
        class: "http_422",
    }
    .assert(&fx, &dead[0], "poison refused");
    DeadLetter::not_json(2).assert(&fx, &dead[1], "JSON");
    wait_delivered(&target, 2, &worker).await;
    assert!(worker.stop_within(STOP), "{}", worker.log_text());
    assert_eq!(
        target
            .receiver
            .accepted
            .lock()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [1, 4]
    );
    assert_eq!(fx.committed(0), Some(4), "everything handled is committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_loses_nothing() {
    let fx = SinkFixture::new("http-kill", 3).await;
    let target = HttpTarget::start(Vec::new(), "").await;
    support::sink::kill_9_mid_stream_loses_nothing(&fx, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_partitions_and_one_takes_over_from_a_killed_one() {
    let fx = SinkFixture::new("http-group", 4).await;
    let target = HttpTarget::start(Vec::new(), "").await;
    support::sink::two_workers_share_and_one_takes_over(&fx, &target).await;
}
