//! The `postgres` sink block: rows in PostgreSQL tables, as Kafka Connect's
//! JDBC sink writes them.
//!
//! Data model: each record becomes one row of the table named by `table`
//! (per topic). Its columns are the fields of the record value (a flat JSON
//! object, or the `after` image of a Debezium envelope) plus, with
//! `primaryKeyMode: RecordKey`, the fields of the record key. `insertMode`
//! says what happens when a row with the same primary key exists; a
//! tombstone (or a Debezium `op: d`) deletes the row when `deleteEnabled`.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::SecretKeyRef;

/// A PostgreSQL database the records are written into.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("(has(self.insertMode) && self.insertMode == 'Insert') || !has(self.primaryKeyMode) || self.primaryKeyMode != 'None'").message("spec.sink.postgres.insertMode Upsert and Update need a primary key: set primaryKeyMode to RecordKey or RecordValue, or use insertMode Insert").reason(Reason::FieldValueInvalid).field_path(".primaryKeyMode"))]
#[x_kube(validation = Rule::new("(has(self.deleteEnabled) && !self.deleteEnabled) || !has(self.primaryKeyMode) || self.primaryKeyMode == 'RecordKey'").message("spec.sink.postgres.deleteEnabled needs primaryKeyMode RecordKey (a tombstone has only a key); set deleteEnabled: false otherwise").reason(Reason::FieldValueInvalid).field_path(".deleteEnabled"))]
#[x_kube(validation = Rule::new("!has(self.primaryKeyMode) || self.primaryKeyMode != 'RecordValue' || (has(self.primaryKeyFields) && self.primaryKeyFields.size() > 0)").message("spec.sink.postgres.primaryKeyFields must name the key columns when primaryKeyMode is RecordValue").reason(Reason::FieldValueRequired).field_path(".primaryKeyFields"))]
pub struct PostgresSink {
    /// Host name or address of the database server.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port of the database server. Default 5432.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Database to write into.
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
    /// User to connect as (needs INSERT, UPDATE and DELETE on the tables,
    /// and CREATE on the schema when `autoCreate` is on).
    #[schemars(length(min = 1, max = 63))]
    pub user: String,
    /// The user's password, from a Secret. Absent: no password (trust or
    /// peer auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretKeyRef>,
    /// Schema holding the tables. Default `public`.
    #[serde(default = "default_schema")]
    #[schemars(length(min = 1, max = 63))]
    pub schema: String,
    /// Table name, per record (Kafka Connect's `table.name.format`). It may
    /// contain `${topic}` (the record's topic, every character other than a
    /// letter, digit or `_` replaced by `_`) and `${topicSuffix}` (the part
    /// of the topic after its last `.`, as is: Debezium's
    /// `<prefix>.<schema>.<table>` topics land in a table named like the
    /// source table). Default `${topicSuffix}`.
    #[serde(default = "default_table")]
    #[schemars(length(min = 1, max = 200))]
    pub table: String,
    /// What a record does to its row: `Insert` (plain INSERT; a row with the
    /// same key is a constraint violation, sent to the dead-letter topic),
    /// `Upsert` (default: INSERT … ON CONFLICT DO UPDATE, so replays are
    /// idempotent) or `Update` (UPDATE only; a record without a row changes
    /// nothing).
    #[serde(default)]
    pub insert_mode: InsertMode,
    /// Where the primary key comes from: `RecordKey` (default: the fields of
    /// the record key, as Debezium writes keys), `RecordValue` (the
    /// `primaryKeyFields` of the value) or `None` (no key; `Insert` only).
    #[serde(default)]
    pub primary_key_mode: PrimaryKeyMode,
    /// Primary key columns. `RecordKey`: the key fields used (absent: all
    /// fields of the key object; a key that is a single number or string
    /// needs exactly one name here, its column). `RecordValue`: required,
    /// the value fields forming the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub primary_key_fields: Vec<String>,
    /// Create a missing table from the fields of the first records (JSON
    /// integers → `bigint`, other numbers → `double precision`, integers too
    /// large for `bigint` → `numeric`, strings → `text`, booleans →
    /// `boolean`, objects and arrays → `jsonb`), with the primary key
    /// columns as its primary key. Default true. With false a missing table
    /// stops the connector with an error naming it.
    #[serde(default = "default_true")]
    pub auto_create: bool,
    /// Add a nullable column (typed as in `autoCreate`) when a record
    /// carries a field the table lacks. Default true. With false such
    /// records are refused (to the dead-letter topic, per `spec.errors`).
    /// Columns are never dropped or retyped.
    #[serde(default = "default_true")]
    pub auto_evolve: bool,
    /// Delete the row on a tombstone (null value) or a Debezium delete
    /// event (`op: d`). Default true; needs `primaryKeyMode: RecordKey`.
    /// With false, tombstones and delete events are skipped.
    #[serde(default = "default_true")]
    pub delete_enabled: bool,
    /// Whether values shaped like a Debezium change event (an object with
    /// `op` and `after`) are unwrapped: `Auto` (default: such a value writes
    /// its `after` image, and `op: d` deletes) or `Never` (every value is a
    /// row as is).
    #[serde(default)]
    pub debezium_envelope: DebeziumEnvelope,
}

impl Default for PostgresSink {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: default_port(),
            database: String::new(),
            user: String::new(),
            password: None,
            schema: default_schema(),
            table: default_table(),
            insert_mode: InsertMode::default(),
            primary_key_mode: PrimaryKeyMode::default(),
            primary_key_fields: Vec::new(),
            auto_create: true,
            auto_evolve: true,
            delete_enabled: true,
            debezium_envelope: DebeziumEnvelope::default(),
        }
    }
}

/// What a record does to its row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum InsertMode {
    /// Plain INSERT.
    Insert,
    /// INSERT, or UPDATE the row with the same primary key.
    #[default]
    Upsert,
    /// UPDATE the row with the same primary key; nothing when there is none.
    Update,
}

/// Where the primary key of a row comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PrimaryKeyMode {
    /// The record key.
    #[default]
    RecordKey,
    /// Fields of the record value.
    RecordValue,
    /// No primary key.
    None,
}

/// Whether Debezium change events are unwrapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DebeziumEnvelope {
    /// A value with `op` and `after` is a change event.
    #[default]
    Auto,
    /// Values are rows as they are.
    Never,
}

fn default_port() -> u16 {
    5432
}
fn default_schema() -> String {
    "public".to_owned()
}
fn default_table() -> String {
    "${topicSuffix}".to_owned()
}
fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use kube::core::cel::validate_cel_schema;
    use serde_json::json;

    use super::*;

    fn check(spec: serde_json::Value) -> Result<PostgresSink, String> {
        validate_cel_schema::<PostgresSink>(&spec, None).map_err(|e| e.to_string())?;
        serde_json::from_value(spec).map_err(|e| e.to_string())
    }

    fn base() -> serde_json::Value {
        json!({"host": "db", "database": "app", "user": "writer"})
    }

    #[test]
    fn defaults_upsert_by_record_key_with_deletes() {
        let sink = check(base()).unwrap();
        assert_eq!(sink.insert_mode, InsertMode::Upsert);
        assert_eq!(sink.primary_key_mode, PrimaryKeyMode::RecordKey);
        assert!(sink.delete_enabled && sink.auto_create && sink.auto_evolve);
        assert_eq!(sink.table, "${topicSuffix}");
        assert_eq!(sink.schema, "public");
        assert_eq!(sink.port, 5432);
    }

    #[test]
    fn upsert_without_a_key_is_refused() {
        let mut spec = base();
        spec["primaryKeyMode"] = json!("None");
        spec["deleteEnabled"] = json!(false);
        let error = check(spec.clone()).unwrap_err();
        assert!(error.contains("need a primary key"), "{error}");
        spec["insertMode"] = json!("Insert");
        assert!(check(spec).is_ok());
    }

    #[test]
    fn deletes_need_the_record_key() {
        let mut spec = base();
        spec["primaryKeyMode"] = json!("RecordValue");
        spec["primaryKeyFields"] = json!(["id"]);
        let error = check(spec.clone()).unwrap_err();
        assert!(
            error.contains("deleteEnabled needs primaryKeyMode RecordKey"),
            "{error}"
        );
        spec["deleteEnabled"] = json!(false);
        assert!(check(spec).is_ok());
    }

    #[test]
    fn record_value_keys_need_fields() {
        let mut spec = base();
        spec["primaryKeyMode"] = json!("RecordValue");
        spec["deleteEnabled"] = json!(false);
        let error = check(spec).unwrap_err();
        assert!(error.contains("primaryKeyFields must name"), "{error}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut spec = base();
        spec["tableName"] = json!("x");
        assert!(check(spec).unwrap_err().contains("tableName"));
    }
}
