//! The `_bulk` request body for a batch, and the classification of its
//! answer. Pure, so every rule is unit-tested without a cluster.
//!
//! One record becomes at most one action (NDJSON lines):
//!
//! ```text
//!   value / Debezium c,u,r  → {"index":{"_index","_id"[,"routing"]}}  + document      (Insert)
//!                           → {"update":{…,"retry_on_conflict":3}}   + {"doc","doc_as_upsert":true} (Upsert)
//!   tombstone / Debezium d  → {"delete":{"_index","_id"[,"routing"]}}                  (onTombstone Delete)
//!                           → nothing (Ignore) | refused (Fail)
//!   Debezium t (truncate)   → nothing
//! ```
//!
//! Answer items are matched to actions by position. Success, and a delete
//! of a missing document (404), count as written; 429, 5xx, version
//! conflicts and cluster blocks (a full disk) make the whole batch
//! retryable (every action is idempotent, so writing it again is safe);
//! any other item error (a mapping or parsing error) refuses that record.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tributary_api::sink::opensearch::{
    DebeziumEnvelope, DocumentId, OpenSearchSink, TombstoneBehavior, WriteMode,
};

use crate::record::Record;
use crate::sink::Rejected;

/// A `_bulk` body and which record each action came from.
#[derive(Debug, Default)]
pub struct BulkRequest {
    /// NDJSON, ending in a newline.
    pub body: Vec<u8>,
    /// Batch index of the record behind each action, in order.
    pub actions: Vec<usize>,
    /// Records refused before sending (e.g. not a JSON object).
    pub rejected: Vec<Rejected>,
}

/// What one record turns into.
#[derive(Debug, PartialEq)]
enum Operation<'a> {
    Write(&'a Map<String, Value>),
    Delete(Option<&'a Value>),
    Skip,
}

/// Builds the body for `batch`.
pub fn build(spec: &OpenSearchSink, batch: &[Record]) -> BulkRequest {
    let mut request = BulkRequest {
        body: Vec::with_capacity(batch.len() * 256),
        ..BulkRequest::default()
    };
    let (mut last_topic, mut topic_index): (Option<String>, String) = (None, String::new());
    for (index, record) in batch.iter().enumerate() {
        let reject = |class: &str, message: String| Rejected {
            index,
            class: class.to_owned(),
            message,
        };
        let operation = match operation(spec, record) {
            Ok(operation) => operation,
            Err((class, message)) => {
                request.rejected.push(reject(class, message));
                continue;
            }
        };
        let id = match (&operation, document_id(spec, record)) {
            (Operation::Skip, _) => continue,
            (Operation::Delete(_), None) => {
                request.rejected.push(reject(
                    "missing_key",
                    "a delete needs the record key as document id, and the key is null".to_owned(),
                ));
                continue;
            }
            (_, id) => id.unwrap_or_else(|| offset_id(record)),
        };
        // Index names repeat within a batch: lower-case each topic once.
        if spec.index.is_none() && last_topic.as_deref() != Some(record.topic.as_str()) {
            topic_index = record.topic.to_lowercase();
            last_topic = Some(record.topic.clone());
        }
        let index_name = spec.index.as_deref().unwrap_or(&topic_index);
        let routing_source = match &operation {
            Operation::Write(document) => Some(*document),
            Operation::Delete(before) => before.and_then(Value::as_object),
            Operation::Skip => None,
        };
        let routing = spec
            .routing_field
            .as_ref()
            .and_then(|field| routing_source.and_then(|d| d.get(field)))
            .and_then(scalar_text);
        let meta = Meta {
            index: index_name,
            id: &id,
            routing: routing.as_deref(),
            retry_on_conflict: None,
        };
        // Serialising into a Vec cannot fail; the document is written from
        // the decoded record as it is (no copy).
        let body = &mut request.body;
        match operation {
            Operation::Write(document) if spec.write_mode == WriteMode::Upsert => {
                let meta = Meta {
                    retry_on_conflict: Some(3),
                    ..meta
                };
                let _ = serde_json::to_writer(
                    &mut *body,
                    &Action {
                        update: Some(meta),
                        ..Action::default()
                    },
                );
                body.push(b'\n');
                let _ = serde_json::to_writer(
                    &mut *body,
                    &UpsertDoc {
                        doc: document,
                        doc_as_upsert: true,
                    },
                );
            }
            Operation::Write(document) => {
                let _ = serde_json::to_writer(
                    &mut *body,
                    &Action {
                        index: Some(meta),
                        ..Action::default()
                    },
                );
                body.push(b'\n');
                let _ = serde_json::to_writer(&mut *body, document);
            }
            Operation::Delete(_) => {
                let _ = serde_json::to_writer(
                    &mut *body,
                    &Action {
                        delete: Some(meta),
                        ..Action::default()
                    },
                );
            }
            Operation::Skip => continue,
        }
        body.push(b'\n');
        request.actions.push(index);
    }
    request
}

/// The action line: exactly one of the operations is set.
#[derive(Serialize, Default)]
struct Action<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<Meta<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update: Option<Meta<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delete: Option<Meta<'a>>,
}

#[derive(Serialize, Clone, Copy)]
struct Meta<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    routing: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_on_conflict: Option<u32>,
}

#[derive(Serialize)]
struct UpsertDoc<'a> {
    doc: &'a Map<String, Value>,
    doc_as_upsert: bool,
}

type Refusal = (&'static str, String);

fn operation<'a>(spec: &OpenSearchSink, record: &'a Record) -> Result<Operation<'a>, Refusal> {
    let tombstone = |before: Option<&'a Value>| match spec.on_tombstone {
        TombstoneBehavior::Delete => Ok(Operation::Delete(before)),
        TombstoneBehavior::Ignore => Ok(Operation::Skip),
        TombstoneBehavior::Fail => Err((
            "tombstone",
            "a tombstone or delete event, and onTombstone is Fail".to_owned(),
        )),
    };
    let Some(value) = &record.value else {
        return tombstone(None);
    };
    let document = match (spec.debezium_envelope, debezium_op(value)) {
        (DebeziumEnvelope::Unwrap, Some(op)) => match op {
            "c" | "u" | "r" => value.get("after").unwrap_or(&Value::Null),
            "d" => return tombstone(value.get("before").filter(|b| !b.is_null())),
            _ => return Ok(Operation::Skip), // t (truncate), m (message): no document
        },
        _ => value,
    };
    match document {
        Value::Object(map) => Ok(Operation::Write(map)),
        other => Err((
            "not_an_object",
            format!("a document must be a JSON object, got {}", kind(other)),
        )),
    }
}

/// `op` of a Debezium change event, if `value` is one.
fn debezium_op(value: &Value) -> Option<&str> {
    let map = value.as_object()?;
    if !(map.contains_key("before") || map.contains_key("after")) || !map.contains_key("source") {
        return None;
    }
    map.get("op").and_then(Value::as_str)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The id from the key, when the spec wants it and the key is not null.
fn document_id(spec: &OpenSearchSink, record: &Record) -> Option<String> {
    if spec.document_id == DocumentId::TopicPartitionOffset {
        return Some(offset_id(record));
    }
    match record.key.as_ref()? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => scalar_text(other).or_else(|| Some(canonical_json(other))),
    }
}

fn offset_id(record: &Record) -> String {
    format!("{}+{}+{}", record.topic, record.partition, record.offset)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// JSON with object keys sorted at every level and no spaces, so equal
/// keys give equal ids whatever order their fields were written in.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// The answer to a `_bulk` request.
#[derive(Debug, Deserialize)]
pub struct BulkResponse {
    /// True when at least one item failed.
    pub errors: bool,
    /// One entry per action, `{"<operation>": {status, error?}}`.
    #[serde(default)]
    pub items: Vec<Map<String, Value>>,
}

/// The verdict on a whole answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Written, except the refused records.
    Done(Vec<Rejected>),
    /// Some items failed for a transient reason: write the batch again.
    Retry(String),
}

/// Classifies the items of `response` for the actions of `request`.
pub fn classify(request: &BulkRequest, response: &BulkResponse) -> Verdict {
    let mut rejected = request.rejected.clone();
    if !response.errors {
        return Verdict::Done(rejected);
    }
    if response.items.len() != request.actions.len() {
        return Verdict::Retry(format!(
            "_bulk answered {} items for {} actions",
            response.items.len(),
            request.actions.len()
        ));
    }
    for (item, &index) in response.items.iter().zip(&request.actions) {
        let Some((operation, result)) = item.iter().next() else {
            continue;
        };
        let status = result.get("status").and_then(Value::as_u64).unwrap_or(0);
        let error = result.get("error");
        let class = error
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let reason = error
            .and_then(|e| e.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if (200..300).contains(&status) || (operation == "delete" && status == 404) {
            continue;
        }
        if status == 429 || status >= 500 || status == 409 || class == "cluster_block_exception" {
            return Verdict::Retry(format!("{operation} answered {status} {class}: {reason}"));
        }
        rejected.push(Rejected {
            index,
            class: class.to_owned(),
            message: format!("{operation} answered {status}: {reason}"),
        });
    }
    rejected.sort_by_key(|r| r.index);
    Verdict::Done(rejected)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(offset: i64, key: Option<Value>, value: Option<Value>) -> Record {
        Record {
            topic: "Ratings".to_owned(),
            partition: 2,
            offset,
            timestamp_ms: None,
            key,
            value,
            headers: Vec::new(),
        }
    }

    fn spec() -> OpenSearchSink {
        OpenSearchSink {
            url: "http://os:9200".to_owned(),
            ..OpenSearchSink::default()
        }
    }

    fn lines(request: &BulkRequest) -> Vec<Value> {
        request
            .body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn ids_come_from_keys_and_objects_become_canonical_json() {
        let batch = [
            record(0, Some(json!("a-1")), Some(json!({"x": 1}))),
            record(1, Some(json!(42)), Some(json!({"x": 2}))),
            record(
                2,
                Some(json!({"b": 2, "a": {"d": 1, "c": 0}})),
                Some(json!({"x": 3})),
            ),
            record(3, None, Some(json!({"x": 4}))),
        ];
        let request = build(&spec(), &batch);
        let ids: Vec<Value> = lines(&request)
            .iter()
            .step_by(2)
            .map(|l| l["index"]["_id"].clone())
            .collect();
        assert_eq!(
            ids,
            vec![
                json!("a-1"),
                json!("42"),
                json!(r#"{"a":{"c":0,"d":1},"b":2}"#),
                json!("Ratings+2+3")
            ]
        );
        assert_eq!(
            lines(&request)[0]["index"]["_index"],
            "ratings",
            "topic lower-cased"
        );
        assert_eq!(request.actions, vec![0, 1, 2, 3]);
    }

    #[test]
    fn debezium_events_write_the_after_row_and_delete_on_d_and_tombstones() {
        let envelope = |op: &str, before: Value, after: Value| json!({"op": op, "before": before, "after": after, "source": {"table": "ratings"}, "ts_ms": 1});
        let batch = [
            record(
                0,
                Some(json!({"id": 1})),
                Some(envelope("c", Value::Null, json!({"id": 1, "rating": 5}))),
            ),
            record(
                1,
                Some(json!({"id": 1})),
                Some(envelope("d", json!({"id": 1}), Value::Null)),
            ),
            record(2, Some(json!({"id": 1})), None),
            record(3, None, Some(envelope("t", Value::Null, Value::Null))),
        ];
        let request = build(&spec(), &batch);
        let lines = lines(&request);
        assert_eq!(lines[0]["index"]["_id"], r#"{"id":1}"#);
        assert_eq!(lines[1], json!({"id": 1, "rating": 5}));
        assert_eq!(lines[2]["delete"]["_id"], r#"{"id":1}"#);
        assert_eq!(lines[3]["delete"]["_id"], r#"{"id":1}"#);
        assert_eq!(lines.len(), 4, "truncate writes nothing");
        assert_eq!(request.actions, vec![0, 1, 2]);

        let ignore = OpenSearchSink {
            on_tombstone: TombstoneBehavior::Ignore,
            ..spec()
        };
        assert_eq!(build(&ignore, &batch).actions, vec![0]);
        let fail = OpenSearchSink {
            on_tombstone: TombstoneBehavior::Fail,
            ..spec()
        };
        let refused = build(&fail, &batch).rejected;
        assert_eq!(refused.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(refused[0].class, "tombstone");
    }

    #[test]
    fn upserts_merge_with_routing_and_a_fixed_index() {
        let spec = OpenSearchSink {
            write_mode: WriteMode::Upsert,
            index: Some("all-ratings".to_owned()),
            routing_field: Some("region".to_owned()),
            ..spec()
        };
        let request = build(
            &spec,
            &[record(0, Some(json!(7)), Some(json!({"region": "eu", "r": 1})))],
        );
        let lines = lines(&request);
        assert_eq!(
            lines[0],
            json!({"update": {"_index": "all-ratings", "_id": "7", "routing": "eu", "retry_on_conflict": 3}})
        );
        assert_eq!(
            lines[1],
            json!({"doc": {"region": "eu", "r": 1}, "doc_as_upsert": true})
        );
    }

    #[test]
    fn non_objects_and_keyless_deletes_are_refused_before_sending() {
        let request = build(
            &spec(),
            &[
                record(0, Some(json!(1)), Some(json!("text"))),
                record(1, None, None),
            ],
        );
        assert!(request.actions.is_empty());
        assert_eq!(request.rejected[0].class, "not_an_object");
        assert_eq!(request.rejected[1].class, "missing_key");
    }

    #[test]
    fn item_errors_are_refusals_or_retries() {
        let batch = [
            record(0, Some(json!(1)), Some(json!({"a": 1}))),
            record(1, Some(json!(2)), Some(json!({"a": "x"}))),
            record(2, Some(json!(3)), None),
        ];
        let request = build(&spec(), &batch);
        let answer = |second: Value| BulkResponse {
            errors: true,
            items: vec![
                json!({"index": {"status": 201}}).as_object().unwrap().clone(),
                second.as_object().unwrap().clone(),
                json!({"delete": {"status": 404, "result": "not_found"}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ],
        };
        let mapping = answer(
            json!({"index": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [a]"}}}),
        );
        let Verdict::Done(rejected) = classify(&request, &mapping) else {
            panic!("a mapping error is a refusal")
        };
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].index, 1);
        assert_eq!(rejected[0].class, "mapper_parsing_exception");
        assert!(rejected[0].message.contains("failed to parse field [a]"));
        for transient in [
            json!({"index": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}}),
            json!({"index": {"status": 503, "error": {"type": "unavailable_shards_exception"}}}),
            json!({"index": {"status": 403, "error": {"type": "cluster_block_exception"}}}),
        ] {
            assert!(matches!(
                classify(&request, &answer(transient)),
                Verdict::Retry(_)
            ));
        }
    }
}
