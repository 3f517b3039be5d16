//! From a batch of records to the row changes per table (pure).
//!
//! Each record becomes at most one [`Change`] of one table: a row to write
//! (value fields plus key columns) or a key to delete. Within a batch the
//! changes of one primary key collapse to the last one, so a delete after an
//! upsert deletes and an upsert after a delete writes; every statement then
//! touches each key once, which lets them run in any order and be split
//! freely when a bad row has to be found.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::{Map, Value};
use tributary_api::sink::postgres::{DebeziumEnvelope, PostgresSink, PrimaryKeyMode};

use crate::record::Record;
use crate::sink::Rejected;

/// A row: column name → JSON value, in field order.
pub type Row = Map<String, Value>;

/// What one record does to its table.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Write this row (insert, upsert or update per `insertMode`); it
    /// includes the key columns.
    Write(Row),
    /// Delete the row with the change's key.
    Delete,
}

/// One change, with the record it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Index of the record in the batch (the last one, after collapsing).
    pub index: usize,
    /// Primary key columns and their values (empty without a primary key).
    pub key: Row,
    /// What to do.
    pub op: Op,
}

/// The changes of one table, at most one per primary key.
#[derive(Debug, Clone, PartialEq)]
pub struct TableChanges {
    /// Table name (unquoted).
    pub table: String,
    /// Changes in record order of their last record.
    pub changes: Vec<Change>,
}

impl TableChanges {
    /// Primary key columns, in key order (from the first change: every
    /// record of a table has the same key fields, or the statements
    /// refuse it).
    pub fn key_columns(&self) -> Vec<String> {
        self.changes
            .first()
            .map(|c| c.key.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The batch, planned.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Changes grouped by table, in order of first appearance.
    pub tables: Vec<TableChanges>,
    /// Records that cannot become a row (no key, value not an object, …).
    pub rejected: Vec<Rejected>,
}

/// Class of records refused before reaching the database.
pub const INVALID_RECORD: &str = "invalid_record";

/// Debezium's placeholder for an unchanged TOAST column.
const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

/// Postgres's identifier limit (`NAMEDATALEN - 1` bytes); longer names are
/// silently truncated, so they are refused instead.
const MAX_IDENTIFIER: usize = 63;

/// Plans `batch` per `spec` (validated: see `PostgresSinkConfig`).
pub fn plan(spec: &PostgresSink, batch: &[Record]) -> Plan {
    let mut plan = Plan::default();
    let mut table_index: HashMap<String, usize> = HashMap::new();
    // Per table: primary key (as JSON text) → position in its changes.
    let mut by_key: Vec<HashMap<String, usize>> = Vec::new();
    for (index, record) in batch.iter().enumerate() {
        let (key, op) = match record_op(spec, record) {
            Ok(Some(change)) => change,
            Ok(None) => continue,
            Err(message) => {
                plan.rejected.push(Rejected {
                    index,
                    class: INVALID_RECORD.to_owned(),
                    message,
                });
                continue;
            }
        };
        let table = table_name(&spec.table, &record.topic);
        if table.len() > MAX_IDENTIFIER {
            plan.rejected.push(Rejected {
                index,
                class: INVALID_RECORD.to_owned(),
                message: format!(
                    "table name {table:?} (spec.sink.postgres.table for topic {:?}) is longer than Postgres's 63 bytes",
                    record.topic
                ),
            });
            continue;
        }
        let slot = *table_index.entry(table.clone()).or_insert_with(|| {
            plan.tables.push(TableChanges {
                table,
                changes: Vec::new(),
            });
            by_key.push(HashMap::new());
            plan.tables.len() - 1
        });
        let changes = &mut plan.tables[slot].changes;
        let change = Change { index, key, op };
        if change.key.is_empty() {
            changes.push(change);
            continue;
        }
        let text = serde_json::to_string(&change.key).unwrap_or_default();
        match by_key[slot].entry(text) {
            Entry::Occupied(at) => changes[*at.get()] = change,
            Entry::Vacant(at) => {
                at.insert(changes.len());
                changes.push(change);
            }
        }
    }
    for table in &mut plan.tables {
        table.changes.sort_by_key(|c| c.index);
    }
    plan
}

/// The table a record of `topic` goes to.
pub fn table_name(format: &str, topic: &str) -> String {
    let sanitized: String = topic
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    let suffix = topic.rsplit('.').next().unwrap_or(topic);
    format
        .replace("${topic}", &sanitized)
        .replace("${topicSuffix}", suffix)
}

/// What `record` does (with its primary key), `None` when it changes
/// nothing (a tombstone with deletes off, a Debezium truncate or message).
fn record_op(spec: &PostgresSink, record: &Record) -> Result<Option<(Row, Op)>, String> {
    let (value, delete) = match &record.value {
        None => (None, true),
        Some(value) => match envelope(spec, value) {
            Some(Envelope::Row(after)) => (Some(after), false),
            Some(Envelope::Delete) => (None, true),
            Some(Envelope::Other) => return Ok(None),
            None => (Some(value), false),
        },
    };
    if delete {
        if !spec.delete_enabled {
            return Ok(None);
        }
        return key_of(spec, record, None).map(|key| Some((key, Op::Delete)));
    }
    let Some(Value::Object(fields)) = value else {
        return Err(format!(
            "the record value must be a JSON object (one field per column), found {}",
            kind(value.unwrap_or(&Value::Null))
        ));
    };
    let mut row = fields.clone();
    if spec.debezium_envelope == DebeziumEnvelope::Auto {
        // An unchanged TOAST column Debezium could not read: leave the
        // column as it is (the upsert sets only the fields present).
        row.retain(|_, v| v.as_str() != Some(UNAVAILABLE_VALUE));
    }
    let key = match spec.primary_key_mode {
        PrimaryKeyMode::None => Row::new(),
        PrimaryKeyMode::RecordValue => key_of(spec, record, Some(fields))?,
        PrimaryKeyMode::RecordKey => {
            let key = key_of(spec, record, None)?;
            // Key columns come from the key, even when the value repeats them.
            for (column, value) in &key {
                row.insert(column.clone(), value.clone());
            }
            key
        }
    };
    if row.is_empty() {
        return Err("the record value has no fields".to_owned());
    }
    Ok(Some((key, Op::Write(row))))
}

enum Envelope<'a> {
    Row(&'a Value),
    Delete,
    Other,
}

/// A Debezium change event's meaning, when `value` is one.
fn envelope<'a>(spec: &PostgresSink, value: &'a Value) -> Option<Envelope<'a>> {
    if spec.debezium_envelope == DebeziumEnvelope::Never {
        return None;
    }
    let object = value.as_object()?;
    let op = object.get("op")?.as_str()?;
    if !object.contains_key("after") {
        return None;
    }
    Some(match op {
        "c" | "r" | "u" => Envelope::Row(&object["after"]),
        "d" => Envelope::Delete,
        _ => Envelope::Other,
    })
}

/// The primary key columns of `record`: from its key, or from `value` with
/// `RecordValue`.
fn key_of(spec: &PostgresSink, record: &Record, value: Option<&Row>) -> Result<Row, String> {
    let fields = &spec.primary_key_fields;
    let source = match (spec.primary_key_mode, value) {
        (PrimaryKeyMode::RecordValue, Some(value)) => value,
        _ => match &record.key {
            Some(Value::Object(key)) => key,
            None | Some(Value::Null) => {
                return Err("the record has no key (primaryKeyMode RecordKey needs one)".to_owned());
            }
            Some(scalar @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                return match fields.as_slice() {
                    [column] => Ok(Row::from_iter([(column.clone(), scalar.clone())])),
                    _ => Err(format!(
                        "the record key is a {}: spec.sink.postgres.primaryKeyFields must name its one column",
                        kind(scalar)
                    )),
                };
            }
            Some(other) => return Err(format!("the record key must be an object, found {}", kind(other))),
        },
    };
    let mut key = Row::new();
    if fields.is_empty() {
        key.clone_from(source);
    } else {
        for field in fields {
            key.insert(field.clone(), source.get(field).cloned().unwrap_or(Value::Null));
        }
    }
    if key.is_empty() {
        return Err("the record key has no fields".to_owned());
    }
    if let Some((field, _)) = key.iter().find(|(_, v)| v.is_null()) {
        return Err(format!("primary key field {field:?} is missing or null"));
    }
    Ok(key)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(topic: &str, key: Value, value: Option<Value>) -> Record {
        Record {
            topic: topic.to_owned(),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: if key.is_null() { None } else { Some(key) },
            value,
            headers: Vec::new(),
        }
    }

    fn spec() -> PostgresSink {
        PostgresSink::default()
    }

    fn row(value: &Value) -> Row {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn table_names_from_the_topic() {
        assert_eq!(table_name("${topicSuffix}", "shop.public.orders"), "orders");
        assert_eq!(table_name("${topicSuffix}", "orders"), "orders");
        assert_eq!(
            table_name("${topic}", "shop.public.order-items"),
            "shop_public_order_items"
        );
        assert_eq!(table_name("kafka_${topicSuffix}_v1", "a.b"), "kafka_b_v1");
        assert_eq!(table_name("fixed", "a.b"), "fixed");
    }

    #[test]
    fn last_change_of_a_key_wins_and_order_is_kept() {
        let batch = [
            record("t", json!({"id": 1}), Some(json!({"name": "a"}))),
            record("t", json!({"id": 2}), Some(json!({"name": "b"}))),
            record("t", json!({"id": 1}), Some(json!({"name": "c"}))),
            record("t", json!({"id": 2}), None),
            record("t", json!({"id": 3}), None),
            record("t", json!({"id": 3}), Some(json!({"name": "d"}))),
        ];
        let plan = plan(&spec(), &batch);
        assert!(plan.rejected.is_empty());
        let changes = &plan.tables[0].changes;
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[0].index, 2);
        assert_eq!(changes[0].op, Op::Write(row(&json!({"name": "c", "id": 1}))));
        assert_eq!((changes[1].index, &changes[1].op), (3, &Op::Delete));
        assert_eq!(changes[1].key, row(&json!({"id": 2})));
        assert_eq!(changes[2].index, 5);
        assert_eq!(plan.tables[0].key_columns(), ["id"]);
    }

    #[test]
    fn debezium_envelopes_write_after_and_delete_on_d() {
        let batch = [
            record(
                "db.public.ratings",
                json!({"id": 7}),
                Some(json!({"before": null, "after": {"id": 7, "stars": 2}, "op": "c", "source": {}})),
            ),
            record(
                "db.public.ratings",
                json!({"id": 8}),
                Some(json!({"before": {"id": 8}, "after": null, "op": "d"})),
            ),
            record("db.public.ratings", json!({"id": 8}), None),
            record(
                "db.public.ratings",
                json!({"id": 9}),
                Some(json!({"op": "t", "after": null})),
            ),
        ];
        let plan = plan(&spec(), &batch);
        assert!(plan.rejected.is_empty(), "{:?}", plan.rejected);
        assert_eq!(plan.tables[0].table, "ratings");
        let changes = &plan.tables[0].changes;
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].op, Op::Write(row(&json!({"id": 7, "stars": 2}))));
        assert_eq!((changes[1].index, &changes[1].op), (2, &Op::Delete));

        let never = PostgresSink {
            debezium_envelope: DebeziumEnvelope::Never,
            ..spec()
        };
        let plan = super::plan(&never, &batch[..1]);
        let Op::Write(written) = &plan.tables[0].changes[0].op else {
            panic!("a write")
        };
        assert!(written.contains_key("after"));
    }

    #[test]
    fn unavailable_toast_columns_are_left_alone_and_long_table_names_refused() {
        let batch = [
            record(
                "db.public.docs",
                json!({"id": 1}),
                Some(json!({"op": "u", "before": null,
                    "after": {"id": 1, "title": "t", "body": "__debezium_unavailable_value"}})),
            ),
            record(
                &format!("db.public.{}", "x".repeat(64)),
                json!({"id": 2}),
                Some(json!({"id": 2})),
            ),
        ];
        let plan = plan(&spec(), &batch);
        assert_eq!(
            plan.tables[0].changes[0].op,
            Op::Write(row(&json!({"id": 1, "title": "t"})))
        );
        assert_eq!(plan.rejected.len(), 1);
        assert!(
            plan.rejected[0]
                .message
                .contains("longer than Postgres's 63 bytes")
        );
    }

    #[test]
    fn deletes_off_skip_tombstones() {
        let off = PostgresSink {
            delete_enabled: false,
            ..spec()
        };
        let plan = plan(&off, &[record("t", json!({"id": 1}), None)]);
        assert!(plan.tables.is_empty() && plan.rejected.is_empty());
    }

    #[test]
    fn keys_from_value_fields_and_scalar_keys() {
        let by_value = PostgresSink {
            primary_key_mode: PrimaryKeyMode::RecordValue,
            primary_key_fields: vec!["region".into(), "day".into()],
            delete_enabled: false,
            ..spec()
        };
        let batch = [
            record("t", Value::Null, Some(json!({"region": "eu", "day": 1, "n": 1}))),
            record("t", Value::Null, Some(json!({"region": "eu", "day": 1, "n": 2}))),
            record("t", Value::Null, Some(json!({"region": "eu", "n": 3}))),
        ];
        let plan = plan(&by_value, &batch);
        assert_eq!(plan.tables[0].changes.len(), 1);
        assert_eq!(plan.tables[0].changes[0].index, 1);
        assert_eq!(plan.tables[0].key_columns(), ["region", "day"]);
        assert_eq!(plan.rejected.len(), 1);
        assert!(
            plan.rejected[0].message.contains("\"day\" is missing"),
            "{:?}",
            plan.rejected
        );

        let scalar = PostgresSink {
            primary_key_fields: vec!["sku".into()],
            ..spec()
        };
        let plan = super::plan(&scalar, &[record("t", json!("A-1"), Some(json!({"price": 3})))]);
        assert_eq!(
            plan.tables[0].changes[0].op,
            Op::Write(row(&json!({"price": 3, "sku": "A-1"})))
        );
        let plan = super::plan(&spec(), &[record("t", json!(5), Some(json!({"price": 3})))]);
        assert!(
            plan.rejected[0]
                .message
                .contains("primaryKeyFields must name its one column")
        );
    }

    #[test]
    fn records_that_cannot_be_rows_are_rejected() {
        let batch = [
            record("t", Value::Null, Some(json!({"a": 1}))),
            record("t", json!({"id": 1}), Some(json!([1, 2]))),
            record("t", json!({"id": null}), Some(json!({"a": 1}))),
        ];
        let plan = plan(&spec(), &batch);
        assert!(plan.tables.is_empty());
        let messages: Vec<_> = plan
            .rejected
            .iter()
            .map(|r| (r.index, r.message.as_str()))
            .collect();
        assert!(messages[0].1.contains("has no key"), "{messages:?}");
        assert!(messages[1].1.contains("must be a JSON object"), "{messages:?}");
        assert!(messages[2].1.contains("missing or null"), "{messages:?}");
    }

    #[test]
    fn without_a_key_every_record_is_a_row() {
        let none = PostgresSink {
            primary_key_mode: PrimaryKeyMode::None,
            insert_mode: tributary_api::sink::postgres::InsertMode::Insert,
            delete_enabled: false,
            ..spec()
        };
        let batch = [
            record("t", Value::Null, Some(json!({"a": 1}))),
            record("t", Value::Null, Some(json!({"a": 1}))),
        ];
        assert_eq!(plan(&none, &batch).tables[0].changes.len(), 2);
    }
}
