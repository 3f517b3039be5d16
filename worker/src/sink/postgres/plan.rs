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
use std::sync::Arc;

use serde_json::{Map, Value};
use tributary_api::sink::postgres::{DebeziumEnvelope, PostgresSink, PrimaryKeyMode};

use super::types::{self, FieldType, RowTypes};
use crate::record::Record;
use crate::sink::{ConnectSchemas, Rejected};

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
    /// Column types the records' Connect schemas give (first seen wins);
    /// columns absent here are typed from their JSON values.
    pub types: HashMap<String, String>,
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
#[cfg(test)]
pub fn plan(spec: &PostgresSink, batch: &[Record]) -> Plan {
    plan_typed(spec, batch, &[])
}

/// Plans `batch`, typing columns and converting values with the Connect
/// schemas of its records (`schemas[i]` of `batch[i]`; missing or empty:
/// typed from JSON).
pub fn plan_typed(spec: &PostgresSink, batch: &[Record], schemas: &[ConnectSchemas]) -> Plan {
    let mut typing = Typing::default();
    let mut plan = Plan::default();
    let mut table_index: HashMap<String, usize> = HashMap::new();
    // Per table: primary key (as JSON text) → position in its changes.
    let mut by_key: Vec<HashMap<String, usize>> = Vec::new();
    for (index, record) in batch.iter().enumerate() {
        let (mut key, mut op) = match record_op(spec, record) {
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
                types: HashMap::new(),
            });
            by_key.push(HashMap::new());
            plan.tables.len() - 1
        });
        if let Some(schemas) = schemas.get(index)
            && let Err(message) = typing.apply(
                spec,
                record,
                schemas,
                &mut key,
                &mut op,
                &mut plan.tables[slot].types,
            )
        {
            plan.rejected.push(Rejected {
                index,
                class: INVALID_RECORD.to_owned(),
                message,
            });
            continue;
        }
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

/// Column types from the records' Connect schemas, cached per distinct
/// schema (a topic's records repeat the same one).
#[derive(Default)]
struct Typing {
    /// (schema, is a Debezium envelope) → the row's field types.
    rows: Vec<(Arc<Value>, bool, Option<Arc<RowTypes>>)>,
    /// Key schema → the key's field types.
    keys: Vec<(Arc<Value>, Option<Arc<RowTypes>>)>,
}

impl Typing {
    /// Converts the values of `key` and `op`'s row to their columns' input
    /// syntax and notes the columns' types in `types`.
    fn apply(
        &mut self,
        spec: &PostgresSink,
        record: &Record,
        schemas: &ConnectSchemas,
        key: &mut Row,
        op: &mut Op,
        types: &mut HashMap<String, String>,
    ) -> Result<(), String> {
        let row_types = match (&schemas.value, &record.value) {
            (Some(schema), Some(value)) => {
                let enveloped = envelope(spec, value).is_some();
                self.row_types(schema, enveloped)
            }
            _ => None,
        };
        let key_types = schemas
            .key
            .as_ref()
            .and_then(|schema| self.key_types(spec, schema));
        let lookup = |column: &str, in_key: bool| -> Option<&FieldType> {
            let from_key = key_types.as_deref().and_then(|t| t.get(column));
            let from_row = row_types.as_deref().and_then(|t| t.get(column));
            if in_key {
                from_key.or(from_row)
            } else {
                from_row.or(from_key)
            }
        };
        let mut convert_row = |row: &mut Row, in_key: bool| -> Result<(), String> {
            for (column, value) in row.iter_mut() {
                let Some(field) = lookup(column, in_key) else {
                    continue;
                };
                if !types.contains_key(column) {
                    types.insert(column.clone(), field.sql.clone());
                }
                if let Some(converted) = types::convert(value, &field.conversion)
                    .map_err(|e| format!("field {column:?} ({}): {e}", field.sql))?
                {
                    *value = converted;
                }
            }
            Ok(())
        };
        convert_row(key, true)?;
        if let Op::Write(row) = op {
            convert_row(row, false)?;
        }
        Ok(())
    }

    fn row_types(&mut self, schema: &Arc<Value>, enveloped: bool) -> Option<Arc<RowTypes>> {
        if let Some((_, _, types)) = self
            .rows
            .iter()
            .find(|(s, e, _)| *e == enveloped && (Arc::ptr_eq(s, schema) || **s == **schema))
        {
            return types.clone();
        }
        let row_schema = if enveloped {
            types::field_schema(schema, "after")
        } else {
            Some(&**schema)
        };
        let types = row_schema.and_then(types::row_types).map(Arc::new);
        self.rows.push((Arc::clone(schema), enveloped, types.clone()));
        types
    }

    fn key_types(&mut self, spec: &PostgresSink, schema: &Arc<Value>) -> Option<Arc<RowTypes>> {
        if let Some((_, types)) = self
            .keys
            .iter()
            .find(|(s, _)| Arc::ptr_eq(s, schema) || **s == **schema)
        {
            return types.clone();
        }
        // A struct key types its fields; a scalar key its one column.
        let types = types::row_types(schema)
            .or_else(|| match spec.primary_key_fields.as_slice() {
                [column] => Some(RowTypes::from([(column.clone(), types::field_type(schema))])),
                _ => None,
            })
            .map(Arc::new);
        self.keys.push((Arc::clone(schema), types.clone()));
        types
    }
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
    fn connect_schemas_type_columns_and_convert_values() {
        use base64::Engine as _;
        let after = json!({"type": "struct", "optional": true, "fields": [
            {"field": "id", "type": "int32", "optional": false},
            {"field": "price", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
             "parameters": {"scale": "2", "connect.decimal.precision": "10"}},
            {"field": "day", "type": "int32", "optional": true, "name": "io.debezium.time.Date"}]});
        let envelope = Arc::new(json!({"type": "struct", "fields": [
            {"field": "before", "type": "struct", "optional": true, "fields": []},
            {"field": "after", "type": "struct", "optional": true, "fields": after["fields"]},
            {"field": "op", "type": "string"}]}));
        let key = Arc::new(json!({"type": "struct", "fields": [{"field": "id", "type": "int32"}]}));
        let schemas = ConnectSchemas {
            key: Some(Arc::clone(&key)),
            value: Some(Arc::clone(&envelope)),
        };
        let price = base64::engine::general_purpose::STANDARD.encode([0x04, 0xd2]); // 1234
        let batch = [
            record(
                "db.public.items",
                json!({"id": 1}),
                Some(json!({"op": "c", "before": null, "after": {"id": 1, "price": price, "day": 19_783}})),
            ),
            record(
                "db.public.items",
                json!({"id": 2}),
                Some(json!({"op": "c", "before": null, "after": {"id": 2, "price": 5, "day": "soon"}})),
            ),
            record("db.public.items", json!({"id": 3}), None),
        ];
        let plan = plan_typed(&spec(), &batch, &[schemas.clone(), schemas.clone(), schemas]);
        let items = &plan.tables[0];
        assert_eq!(
            items.changes[0].op,
            Op::Write(row(&json!({"id": 1, "price": "12.34", "day": "2024-03-01"})))
        );
        assert_eq!(items.changes[1].op, Op::Delete);
        assert_eq!(items.types["id"], "integer");
        assert_eq!(items.types["price"], "numeric(10,2)");
        assert_eq!(items.types["day"], "date");
        assert_eq!(plan.rejected.len(), 1);
        assert_eq!(plan.rejected[0].index, 1);
        assert!(
            plan.rejected[0].message.contains("field \"day\" (date)"),
            "{:?}",
            plan.rejected
        );
        // Without schemas, the same JSON stays as it is.
        let untyped = plan_typed(&spec(), &batch[..1], &[]);
        assert!(untyped.tables[0].types.is_empty());
        assert_eq!(
            untyped.tables[0].changes[0].op,
            Op::Write(row(&json!({"id": 1, "price": price, "day": 19_783})))
        );
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
