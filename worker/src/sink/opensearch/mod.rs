//! The OpenSearch / Elasticsearch sink: one `_bulk` request per batch.
//!
//! Data model: see [`bulk`] for how records become bulk actions and how the
//! answer is classified. This module owns the HTTP side: a reqwest client
//! (one connection pool per writer), basic auth with the password from a
//! Secret, and the request-level answers:
//!
//! | answer | result |
//! |---|---|
//! | 200 | per item ([`bulk::classify`]) |
//! | connection refused, timeout, 429, 502/503/504, other 5xx | `Retryable` (honouring `Retry-After`) |
//! | 401 / 403 | `Fatal`: credentials refused |
//! | 413 | `Fatal`: lower `spec.sink.batch.maxBytes` |
//! | other 4xx | `Fatal`, with the start of the answer |
//!
//! reqwest rather than the `opensearch` crate: `_bulk` is one POST of
//! NDJSON whose answer we classify ourselves, reqwest is already in the
//! workspace (one TLS stack, OpenSSL), and the same client talks to
//! Elasticsearch, whose product check the `opensearch` crate trips over.

pub mod bulk;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use tributary_api::sink::OpenSearchSink;

use self::bulk::{BulkResponse, Verdict};
use crate::record::Record;
use crate::sink::tls::TlsMaterial;
use crate::sink::{SinkError, SinkWriter, WriteOutcome};

/// An OpenSearch sink with its password resolved.
#[derive(Clone)]
pub struct OpenSearchConfig {
    /// The spec as declared.
    pub spec: OpenSearchSink,
    /// The basic-auth password (never logged: `Debug` redacts it).
    pub password: Option<String>,
    /// `tls`, parsed.
    pub tls: TlsMaterial,
}

impl std::fmt::Debug for OpenSearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchConfig")
            .field("spec", &self.spec)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// Writes batches through `_bulk`.
#[derive(Clone, Debug)]
pub struct OpenSearchWriter {
    config: OpenSearchConfig,
    client: reqwest::Client,
    bulk_url: String,
}

impl OpenSearchWriter {
    /// A writer for `config`.
    pub fn new(config: OpenSearchConfig) -> Result<Self, SinkError> {
        let client = config
            .tls
            .apply(reqwest::Client::builder())
            .timeout(Duration::from_secs(u64::from(
                config.spec.request_timeout_seconds,
            )))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SinkError::Fatal {
                message: format!("spec.sink.opensearch: cannot build the HTTP client: {e}"),
            })?;
        let bulk_url = format!("{}/_bulk", config.spec.url.trim_end_matches('/'));
        Ok(Self {
            config,
            client,
            bulk_url,
        })
    }

    async fn send(&self, body: Vec<u8>) -> Result<BulkResponse, SinkError> {
        let mut request = self
            .client
            .post(&self.bulk_url)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        if let Some(auth) = &self.config.spec.basic_auth {
            request = request.basic_auth(&auth.username, self.config.password.as_deref());
        }
        let response = request.send().await.map_err(|e| SinkError::Retryable {
            // reqwest's message holds the URL, which never holds credentials (refused at load).
            message: format!("OpenSearch unreachable: {e}"),
            retry_after: None,
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.map_err(|e| SinkError::Retryable {
            message: format!("reading the _bulk answer: {e}"),
            retry_after: None,
        })?;
        let start = || text.chars().take(300).collect::<String>();
        match status {
            StatusCode::OK => serde_json::from_str(&text).map_err(|e| SinkError::Fatal {
                message: format!(
                    "spec.sink.opensearch.url: the _bulk answer is not what OpenSearch sends ({e}): {}",
                    start()
                ),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(SinkError::Fatal {
                message: format!(
                    "spec.sink.opensearch.basicAuth: OpenSearch refused the credentials (HTTP {})",
                    status.as_u16()
                ),
            }),
            StatusCode::PAYLOAD_TOO_LARGE => Err(SinkError::Fatal {
                message: "OpenSearch refused a _bulk request as too large (HTTP 413): lower spec.sink.batch.maxBytes below http.max_content_length".to_owned(),
            }),
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Err(SinkError::Retryable {
                message: format!("OpenSearch answered HTTP {}: {}", s.as_u16(), start()),
                retry_after,
            }),
            s => Err(SinkError::Fatal {
                message: format!("OpenSearch answered _bulk with HTTP {}: {}", s.as_u16(), start()),
            }),
        }
    }
}

impl SinkWriter for OpenSearchWriter {
    async fn write(&mut self, batch: &[Record]) -> Result<WriteOutcome, SinkError> {
        let mut request = bulk::build(&self.config.spec, batch);
        if request.actions.is_empty() {
            return Ok(WriteOutcome {
                rejected: request.rejected,
            });
        }
        let response = self.send(std::mem::take(&mut request.body)).await?;
        match bulk::classify(&request, &response) {
            Verdict::Done(rejected) => Ok(WriteOutcome { rejected }),
            Verdict::Retry(message) => Err(SinkError::Retryable {
                message,
                retry_after: None,
            }),
        }
    }
}
