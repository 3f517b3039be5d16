//! Health, readiness and Prometheus metrics of the worker, served on
//! `/healthz`, `/readyz` and `/metrics`.
//!
//! Liveness fails only when the connector failed for good (so Kubernetes
//! restarts it); readiness is true once the source is connected and
//! producing. Metric names follow Prometheus conventions with the
//! `tributary_worker_` prefix; labels are bounded (no per-key values).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::delivery::DeliveryCounters;

/// Counters of a sink connector (shared with the metrics).
#[derive(Clone, Debug, Default)]
pub struct SinkCounters {
    /// Records the target acknowledged.
    pub records: Counter,
    /// Key + value bytes of the records written.
    pub bytes: Counter,
    /// Writes (batches) the target acknowledged.
    pub batches: Counter,
    /// Retried writes.
    pub retries: Counter,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: Counter,
    /// Bad records (undecodable or refused by the target).
    pub bad_records: Counter,
}

/// Counters of a stream (SQL query) worker (shared with the metrics).
#[derive(Clone, Debug, Default)]
pub struct StreamCounters {
    /// Input records processed.
    pub records_in: Counter,
    /// Result records produced to the output topic.
    pub records_out: Counter,
    /// Records dropped because their window had closed (event time beyond the grace period).
    pub late_records: Counter,
    /// Records skipped because they could not be decoded or an expression failed on them.
    pub bad_records: Counter,
    /// Commits (transactions under exactly-once).
    pub commits: Counter,
    /// Records (upserts and tombstones) read from the tables of stream-table joins.
    pub table_updates: Counter,
}

impl StreamCounters {
    /// New counters, registered in `registry`.
    fn registered(registry: &mut Registry) -> Self {
        let stream = Self::default();
        for (name, help, counter) in [
            (
                "stream_records_in",
                "Input records a stream processed",
                &stream.records_in,
            ),
            (
                "stream_records_out",
                "Result records a stream produced",
                &stream.records_out,
            ),
            (
                "stream_late_records",
                "Records a stream dropped because their window had closed (beyond the grace period)",
                &stream.late_records,
            ),
            (
                "stream_bad_records",
                "Records a stream skipped: undecodable, or an expression failed on them",
                &stream.bad_records,
            ),
            (
                "stream_commits",
                "Commits (transactions under exactly-once) of a stream",
                &stream.commits,
            ),
            (
                "stream_table_updates",
                "Records (upserts and tombstones) a stream read from the tables it joins",
                &stream.table_updates,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        stream
    }
}

/// The worker's metrics and health flags.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    /// Records and bytes sent to / acknowledged by Kafka.
    pub delivery: DeliveryCounters,
    /// Rows read by snapshots.
    pub snapshot_rows: Counter,
    /// Errors (failed deliveries, source errors).
    pub errors: Counter,
    /// WAL bytes retained by the replication slot.
    pub lag_bytes: Gauge,
    /// Milliseconds between the last transaction's commit and its processing.
    pub lag_millis: Gauge,
    /// Sink connectors' counters.
    pub sink: SinkCounters,
    /// Streams' counters.
    pub stream: StreamCounters,
    ready: AtomicBool,
    failed: AtomicBool,
    state: std::sync::Mutex<String>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tributary_worker");
        let delivery = DeliveryCounters::default();
        let snapshot_rows = Counter::default();
        let errors = Counter::default();
        let lag_bytes = Gauge::default();
        let lag_millis = Gauge::default();
        registry.register(
            "records_acknowledged",
            "Records Kafka acknowledged",
            delivery.records.clone(),
        );
        registry.register(
            "bytes_sent",
            "Key and value bytes handed to Kafka",
            delivery.bytes.clone(),
        );
        registry.register("snapshot_rows", "Rows read by snapshots", snapshot_rows.clone());
        registry.register("errors", "Errors of the source or of deliveries", errors.clone());
        registry.register(
            "source_lag_bytes",
            "WAL bytes the replication slot retains",
            lag_bytes.clone(),
        );
        registry.register(
            "source_lag_milliseconds",
            "Time between the last transaction's commit and its processing",
            lag_millis.clone(),
        );
        let sink = SinkCounters::default();
        for (name, help, counter) in [
            (
                "sink_records_written",
                "Records the sink's target acknowledged",
                &sink.records,
            ),
            (
                "sink_bytes_written",
                "Key and value bytes the sink wrote",
                &sink.bytes,
            ),
            (
                "sink_batches_written",
                "Writes the sink's target acknowledged",
                &sink.batches,
            ),
            (
                "sink_retries",
                "Sink writes retried after a transient failure",
                &sink.retries,
            ),
            (
                "sink_dead_lettered",
                "Records sent to the dead-letter topic",
                &sink.dead_lettered,
            ),
            (
                "sink_bad_records",
                "Records undecodable or refused by the target",
                &sink.bad_records,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        let stream = StreamCounters::registered(&mut registry);
        Self {
            registry,
            sink,
            stream,
            delivery,
            snapshot_rows,
            errors,
            lag_bytes,
            lag_millis,
            ready: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            state: std::sync::Mutex::new("Starting".to_owned()),
        }
    }
}

impl Telemetry {
    /// Sets the state name reported in status (`Snapshotting`, `Streaming` …)
    /// and marks the worker ready.
    pub fn set_state(&self, state: &str) {
        if let Ok(mut current) = self.state.lock() {
            state.clone_into(&mut current);
        }
        self.ready.store(true, Ordering::Relaxed);
    }

    /// The current state name.
    pub fn state(&self) -> String {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Marks the worker failed: liveness turns false.
    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
        self.ready.store(false, Ordering::Relaxed);
        self.set_state_only("Failed");
    }

    /// Sets the state name without touching readiness.
    pub fn set_state_only(&self, state: &str) {
        if let Ok(mut current) = self.state.lock() {
            state.clone_into(&mut current);
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves the endpoints on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, telemetry: Arc<Telemetry>) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/healthz",
            get(|State(t): State<Arc<Telemetry>>| async move {
                if t.failed.load(Ordering::Relaxed) {
                    (StatusCode::SERVICE_UNAVAILABLE, "failed")
                } else {
                    (StatusCode::OK, "ok")
                }
            }),
        )
        .route(
            "/readyz",
            get(|State(t): State<Arc<Telemetry>>| async move {
                if t.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(t): State<Arc<Telemetry>>| async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    t.render(),
                )
            }),
        )
        .with_state(telemetry);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
