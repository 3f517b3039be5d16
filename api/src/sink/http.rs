//! The `http` sink block: records sent as JSON to an HTTP endpoint (webhook).
//!
//! Data model: with `mode: Batch` one request carries a JSON array with one
//! element per record of a batch; with `mode: Single` each record is its own
//! request. An element (or body) is the record value, or with
//! `payload: Record` an object with the record's coordinates, key and value.
//! The answer decides the fate of the records: 2xx written, 429 and 5xx (and
//! no answer) retried, any other status refused (dead-letter topic).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::SecretKeyRef;

/// An HTTP endpoint that receives records as JSON.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSink {
    /// URL the records are sent to (`http://` or `https://`).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#]+')").message("spec.sink.http.url must be an absolute http:// or https:// URL"))]
    pub url: String,
    /// HTTP method: `Post` (default) or `Put`.
    #[serde(default)]
    pub method: HttpMethod,
    /// `Batch` (default): one request per batch, a JSON array of records (a
    /// refusal, 4xx other than 429, refuses every record of the batch).
    /// `Single`: one request per record, in order (a refusal refuses that
    /// record only).
    #[serde(default)]
    pub mode: HttpMode,
    /// What represents a record: `Value` (default: the record value as
    /// is) or `Record` (`{"topic", "partition", "offset", "timestampMs",
    /// "key", "value"}`, so the receiver can deduplicate replays).
    /// Tombstones are skipped with `Value` and sent with `value: null`
    /// with `Record`.
    #[serde(default)]
    pub payload: HttpPayload,
    /// Extra request headers (e.g. `Authorization`), each with a literal
    /// `value` or a `secretKeyRef`. `Content-Type: application/json` is
    /// always sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub headers: Vec<HttpHeader>,
    /// Seconds one request may take before it is abandoned and retried.
    /// Default 30.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: u32,
    /// TLS for an `https://` URL: a CA to trust, a client certificate,
    /// from Secrets. Absent: the system trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::SinkTls>,
}

impl Default for HttpSink {
    fn default() -> Self {
        Self {
            url: String::new(),
            method: HttpMethod::default(),
            mode: HttpMode::default(),
            payload: HttpPayload::default(),
            headers: Vec::new(),
            timeout_seconds: default_timeout_seconds(),
            tls: None,
        }
    }
}

/// One request header: a literal value or one read from a Secret.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.value) != has(self.secretKeyRef)").message("a header sets exactly one of value or secretKeyRef").reason(Reason::FieldValueInvalid))]
pub struct HttpHeader {
    /// Header name, e.g. `Authorization`.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9!#$%&*+.^_`|~-]+$')").message("a header name is letters, digits and !#$%&*+.^_`|~- (an HTTP token)"))]
    pub name: String,
    /// Literal value (not secret: it is visible in the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub value: Option<String>,
    /// The value, from a Secret (e.g. `Bearer …`); never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// HTTP method of the requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HttpMethod {
    /// POST.
    #[default]
    Post,
    /// PUT.
    Put,
}

/// How records are grouped into requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HttpMode {
    /// One request per batch, a JSON array.
    #[default]
    Batch,
    /// One request per record.
    Single,
}

/// What represents a record in a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HttpPayload {
    /// The record value.
    #[default]
    Value,
    /// Topic, partition, offset, timestamp, key and value.
    Record,
}

fn default_timeout_seconds() -> u32 {
    30
}

#[cfg(test)]
mod tests {
    use kube::core::cel::validate_cel_schema;
    use serde_json::json;

    use super::*;

    fn check(spec: serde_json::Value) -> Result<HttpSink, String> {
        validate_cel_schema::<HttpSink>(&spec, None).map_err(|e| e.to_string())?;
        serde_json::from_value(spec).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_post_batches_of_values() {
        let sink = check(json!({"url": "https://hooks.example/x"})).unwrap();
        assert_eq!(sink.method, HttpMethod::Post);
        assert_eq!(sink.mode, HttpMode::Batch);
        assert_eq!(sink.payload, HttpPayload::Value);
        assert_eq!(sink.timeout_seconds, 30);
    }

    #[test]
    fn url_must_be_http() {
        let error = check(json!({"url": "ftp://x/y"})).unwrap_err();
        assert!(
            error.contains("spec.sink.http.url must be an absolute"),
            "{error}"
        );
    }

    #[test]
    fn a_header_has_exactly_one_value_source() {
        let both = json!({"url": "http://h", "headers": [
            {"name": "Authorization", "value": "x", "secretKeyRef": {"name": "s", "key": "k"}}]});
        assert!(
            check(both)
                .unwrap_err()
                .contains("exactly one of value or secretKeyRef")
        );
        let neither = json!({"url": "http://h", "headers": [{"name": "X-A"}]});
        assert!(
            check(neither)
                .unwrap_err()
                .contains("exactly one of value or secretKeyRef")
        );
        let bad_name = json!({"url": "http://h", "headers": [{"name": "X A", "value": "1"}]});
        assert!(check(bad_name).unwrap_err().contains("HTTP token"));
        let ok = json!({"url": "http://h", "headers": [
            {"name": "Authorization", "secretKeyRef": {"name": "s", "key": "k"}}, {"name": "X-Source", "value": "t"}]});
        assert_eq!(check(ok).unwrap().headers.len(), 2);
    }
}
