//! HTTP webhook sink: records sent as JSON to one URL.
//!
//! Data model: a batch becomes one request with a JSON array (`mode: Batch`)
//! or one request per record, in order (`mode: Single`); each element is the
//! record value (`payload: Value`, tombstones skipped) or the record with its
//! coordinates (`payload: Record`). The status code decides:
//!
//! ```text
//!   2xx                      written
//!   408, 429, 5xx, no answer retry the batch (Retry-After honoured, in
//!                            seconds or as an HTTP date)
//!   any other (4xx, 3xx)     the records of that request are rejected
//!                            (dead-letter topic or stop, per spec.errors):
//!                            in Batch mode the whole batch
//! ```
//!
//! In `Single` mode a retry resends the records before the failed one too
//! (at-least-once: a receiver that must not see duplicates uses
//! `payload: Record` and deduplicates by topic, partition and offset).
//! Header values from Secrets are marked sensitive and never logged; errors
//! and logs name the host only, since webhook URLs often carry tokens.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use tributary_api::sink::http::{HttpMethod, HttpMode, HttpPayload, HttpSink};

use crate::config::secrets::{SecretError, SecretResolver};
use crate::record::Record;
use crate::sink::tls::{TlsError, TlsMaterial};
use crate::sink::{Rejected, SinkError, SinkWriter, WriteOutcome};

/// An HTTP sink block, validated, with its header secrets resolved.
#[derive(Clone)]
pub struct HttpSinkConfig {
    /// The block as declared.
    pub spec: HttpSink,
    url: Url,
    /// Every header to send (secret values marked sensitive).
    headers: HeaderMap,
    /// `tls`, parsed.
    tls: TlsMaterial,
}

impl std::fmt::Debug for HttpSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // HeaderMap's Debug prints "Sensitive" for secret values; the spec
        // holds only references.
        f.debug_struct("HttpSinkConfig")
            .field("spec", &self.spec)
            .field("headers", &self.headers)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// An HTTP sink block that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum HttpSinkError {
    /// A field breaks a rule.
    #[error("spec.sink.http.{field}: {message}")]
    Invalid {
        /// The field, e.g. `url` or `headers[0].name`.
        field: String,
        /// What is allowed.
        message: String,
    },
    /// A header Secret could not be resolved.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl HttpSinkConfig {
    /// Validates `spec` and resolves its header secrets.
    pub fn new(spec: HttpSink, secrets: &SecretResolver) -> Result<Self, HttpSinkError> {
        let invalid = |field: String, message: &str| HttpSinkError::Invalid {
            field,
            message: message.to_owned(),
        };
        let url = Url::parse(&spec.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| invalid("url".into(), "must be an absolute http:// or https:// URL"))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (i, header) in spec.headers.iter().enumerate() {
            let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
                invalid(
                    format!("headers[{i}].name"),
                    "must be an HTTP token (letters, digits and !#$%&*+.^_`|~-)",
                )
            })?;
            let value = match (&header.value, &header.secret_key_ref) {
                (Some(value), None) => HeaderValue::from_str(value).map_err(|_| {
                    invalid(
                        format!("headers[{i}].value"),
                        "must be visible ASCII (no control characters)",
                    )
                })?,
                (None, Some(reference)) => {
                    let field = format!("spec.sink.http.headers[{i}].secretKeyRef");
                    let secret = secrets.resolve(&field, reference)?;
                    let mut value = HeaderValue::from_str(&secret).map_err(|_| {
                        invalid(
                            format!("headers[{i}].secretKeyRef"),
                            "the Secret's value must be visible ASCII (no control characters or newline)",
                        )
                    })?;
                    value.set_sensitive(true);
                    value
                }
                _ => {
                    return Err(invalid(
                        format!("headers[{i}]"),
                        "set exactly one of value or secretKeyRef",
                    ));
                }
            };
            headers.append(name, value);
        }
        let tls =
            TlsMaterial::resolve("spec.sink.http.tls", spec.tls.as_ref(), secrets).map_err(|e| match e {
                TlsError::Secret(e) => HttpSinkError::Secret(e),
                TlsError::Invalid { field, message } => HttpSinkError::Invalid {
                    field: field.trim_start_matches("spec.sink.http.").to_owned(),
                    message,
                },
            })?;
        Ok(Self {
            spec,
            url,
            headers,
            tls,
        })
    }

    /// The host the records go to (safe to log, unlike the full URL).
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }
}

/// Sends batches to the webhook.
#[derive(Debug)]
pub struct HttpWriter {
    config: HttpSinkConfig,
    client: reqwest::Client,
}

/// The result of one request.
enum Answer {
    Written,
    Refused { class: String, message: String },
}

impl HttpWriter {
    /// A writer with its own connection pool.
    pub fn new(config: HttpSinkConfig) -> Result<Self, SinkError> {
        let client = config
            .tls
            .apply(reqwest::Client::builder())
            .default_headers(config.headers.clone())
            .timeout(Duration::from_secs(u64::from(config.spec.timeout_seconds)))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SinkError::Fatal {
                message: format!("HTTP client: {}", e.without_url()),
            })?;
        Ok(Self { config, client })
    }

    async fn write_batch(&self, batch: &[Record]) -> Result<WriteOutcome, SinkError> {
        let payload = self.config.spec.payload;
        let items: Vec<(usize, Value)> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, r)| element(payload, r).map(|v| (i, v)))
            .collect();
        let mut rejected = Vec::new();
        match self.config.spec.mode {
            HttpMode::Batch => {
                if items.is_empty() {
                    return Ok(WriteOutcome::default());
                }
                let indexes: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
                let body = Value::Array(items.into_iter().map(|(_, v)| v).collect());
                if let Answer::Refused { class, message } = self.send(&body, indexes.len()).await? {
                    rejected.extend(indexes.into_iter().map(|index| Rejected {
                        index,
                        class: class.clone(),
                        message: message.clone(),
                    }));
                }
            }
            HttpMode::Single => {
                for (index, body) in items {
                    if let Answer::Refused { class, message } = self.send(&body, 1).await? {
                        rejected.push(Rejected {
                            index,
                            class,
                            message,
                        });
                    }
                }
            }
        }
        Ok(WriteOutcome { rejected })
    }

    async fn send(&self, body: &Value, records: usize) -> Result<Answer, SinkError> {
        let method = match self.config.spec.method {
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
        };
        let bytes = serde_json::to_vec(body).map_err(|e| SinkError::Fatal {
            message: format!("encoding the request body: {e}"),
        })?;
        let host = self.config.host();
        let response = self
            .client
            .request(method, self.config.url.clone())
            .body(bytes)
            .send()
            .await
            .map_err(|e| SinkError::Retryable {
                message: format!("HTTP request to {host} failed: {}", e.without_url()),
                retry_after: None,
            })?;
        let status = response.status();
        if status.is_success() {
            tracing::debug!(host, status = status.as_u16(), records, "webhook accepted");
            return Ok(Answer::Written);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, jiff::Timestamp::now()));
        // The receiver's explanation, bounded: it goes into errors and
        // dead-letter headers.
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(500).collect();
        let message = format!("{host} answered HTTP {status}: {excerpt}");
        if retryable(status) {
            tracing::warn!(
                host,
                status = status.as_u16(),
                records,
                ?retry_after,
                "webhook asked to retry"
            );
            return Err(SinkError::Retryable { message, retry_after });
        }
        tracing::warn!(host, status = status.as_u16(), records, "webhook refused records");
        Ok(Answer::Refused {
            class: format!("http_{}", status.as_u16()),
            message,
        })
    }
}

impl SinkWriter for HttpWriter {
    fn write(&mut self, batch: &[Record]) -> impl Future<Output = Result<WriteOutcome, SinkError>> + Send {
        self.write_batch(batch)
    }
}

/// 408 Request Timeout, 429 Too Many Requests and every 5xx: the receiver
/// may take the same request later.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// The JSON for one record (`None`: skipped).
fn element(payload: HttpPayload, record: &Record) -> Option<Value> {
    match payload {
        HttpPayload::Value => record.value.clone(),
        HttpPayload::Record => Some(json!({
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestampMs": record.timestamp_ms,
            "key": record.key,
            "value": record.value,
        })),
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (RFC 9110's
/// IMF-fixdate, which RFC 2822 parsing covers) relative to `now`.
fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use tributary_api::SecretKeyRef;
    use tributary_api::sink::http::HttpHeader;

    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn statuses_that_are_retried() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 413, 422, 301] {
            assert!(!retryable(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn secret_headers_are_resolved_and_redacted() {
        let reference = SecretKeyRef {
            name: "hook-unit-test".into(),
            key: "token".into(),
        };
        let dir = std::env::temp_dir().join(format!("tributary-http-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("hook-unit-test")).unwrap();
        std::fs::write(dir.join("hook-unit-test").join("token"), "Bearer s3cr3t\n").unwrap();
        let spec = HttpSink {
            url: "https://hooks.example/p?token=abc".into(),
            headers: vec![
                HttpHeader {
                    name: "Authorization".into(),
                    value: None,
                    secret_key_ref: Some(reference),
                },
                HttpHeader {
                    name: "X-Source".into(),
                    value: Some("tributary".into()),
                    secret_key_ref: None,
                },
            ],
            ..HttpSink::default()
        };
        let config = HttpSinkConfig::new(
            spec,
            &SecretResolver {
                dir: Some(dir.clone()),
                ..SecretResolver::default()
            },
        )
        .unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        assert_eq!(config.headers["authorization"], "Bearer s3cr3t");
        assert!(config.headers["authorization"].is_sensitive());
        assert_eq!(config.host(), "hooks.example");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("tributary"), "{debug}");
    }

    #[test]
    fn bad_fields_are_named() {
        let spec = HttpSink {
            url: "hooks.example/p".into(),
            ..HttpSink::default()
        };
        let error = HttpSinkConfig::new(spec, &SecretResolver::default()).unwrap_err();
        assert!(error.to_string().starts_with("spec.sink.http.url: "), "{error}");
        let spec = HttpSink {
            url: "http://h".into(),
            headers: vec![HttpHeader {
                name: "Bad Name".into(),
                value: Some("x".into()),
                secret_key_ref: None,
            }],
            ..HttpSink::default()
        };
        let error = HttpSinkConfig::new(spec, &SecretResolver::default()).unwrap_err();
        assert!(
            error.to_string().starts_with("spec.sink.http.headers[0].name: "),
            "{error}"
        );
    }

    #[test]
    fn payloads() {
        let record = Record {
            topic: "t".into(),
            partition: 1,
            offset: 5,
            timestamp_ms: Some(9),
            key: Some(json!(1)),
            value: None,
            headers: Vec::new(),
        };
        assert_eq!(element(HttpPayload::Value, &record), None);
        assert_eq!(
            element(HttpPayload::Record, &record),
            Some(
                json!({"topic": "t", "partition": 1, "offset": 5, "timestampMs": 9, "key": 1, "value": null})
            )
        );
    }
}
