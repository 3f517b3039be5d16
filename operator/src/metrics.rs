//! Prometheus metrics and the HTTP endpoints `/metrics`, `/healthz` and
//! `/readyz`. Labels are bounded: controller kind, result and error reason,
//! never object names.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of one reconcile outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `topic`, `schema` or `kafkacluster`.
    pub controller: &'static str,
    /// `success`, `stalled` or `error`.
    pub result: &'static str,
}

/// Labels of one failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `topic`, `schema` or `kafkacluster`.
    pub controller: &'static str,
    /// The condition reason, e.g. `KafkaUnreachable`.
    pub reason: String,
}

/// Labels of the duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `topic`, `schema` or `kafkacluster`.
    pub controller: &'static str,
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    ready: AtomicBool,
    leader: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tributary_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let durations = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "reconciles",
            "Reconciles by controller and result",
            reconciles.clone(),
        );
        registry.register(
            "failures",
            "Failed or stalled reconciles by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            durations.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            durations,
            ready: AtomicBool::new(false),
            leader: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Counts one reconcile and its duration.
    pub fn observe(
        &self,
        controller: &'static str,
        result: &'static str,
        reason: Option<&str>,
        took: Duration,
    ) {
        self.reconciles
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
        self.durations
            .get_or_create(&ControllerLabels { controller })
            .observe(took.as_secs_f64());
        if let Some(reason) = reason {
            self.failures
                .get_or_create(&FailureLabels {
                    controller,
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// Marks the process ready (`/readyz` answers 200).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Records whether this replica holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        let leader = u8::from(self.leader.load(Ordering::Relaxed));
        let out = out.trim_end_matches("# EOF\n").to_owned()
            + &format!(
                "# HELP tributary_operator_leader 1 when this replica holds the leader lease.\n\
                 # TYPE tributary_operator_leader gauge\ntributary_operator_leader {leader}\n# EOF\n"
            );
        Ok(out)
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve(
    metrics: Arc<Metrics>,
    address: std::net::SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "serving metrics and health endpoints");
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            String::from("encoding failed"),
        ),
    }
}

async fn ready_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_histogram_and_leader_gauge() {
        let metrics = Metrics::default();
        metrics.observe(
            "topic",
            "error",
            Some("KafkaUnreachable"),
            Duration::from_millis(20),
        );
        metrics.set_leader(true);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"tributary_operator_reconciles_total{controller="topic",result="error"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"tributary_operator_failures_total{controller="topic",reason="KafkaUnreachable"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("tributary_operator_reconcile_duration_seconds_count{controller=\"topic\"} 1"),
            "{text}"
        );
        assert!(text.contains("tributary_operator_leader 1\n# EOF\n"), "{text}");
    }
}
