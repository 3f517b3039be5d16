//! Kafka records for row changes (pure): topic, key and Debezium envelope
//! for one insert, update, delete, truncate or snapshot read.
//!
//! A [`TableInfo`] is what the worker knows about a captured table (columns
//! with types, primary key, rendered Connect schemas). [`EventBuilder`]
//! turns a change of that table into the records Debezium's Postgres
//! connector writes:
//!
//! | change | records |
//! |---|---|
//! | insert / snapshot read | `c` / `r` |
//! | update | `u`; if the primary key changed: `d`, tombstone, `c` |
//! | delete | `d`, then a tombstone (same key, null value) |
//! | truncate | `t` with a null key |

use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;

use crate::debezium::envelope::{Envelope, Op, SnapshotMarker, Source, TransactionBlock};
use crate::debezium::row::{self, Column, Datum, RowError};
use crate::debezium::schema::{envelope_schema, key_schema};
use crate::delivery::OutRecord;
use crate::format::{FormatError, PreparedSchema, Serializers, encode};

/// A record could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A column value does not fit the table's columns.
    #[error(transparent)]
    Row(#[from] RowError),
    /// Serialising failed.
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// A captured table.
#[derive(Clone, Debug)]
pub struct TableInfo {
    /// Schema (namespace).
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Columns in table order; `key` marks the primary key.
    pub columns: Vec<Column>,
    /// `<prefix>.<schema>.<table>`.
    pub topic: String,
    key_schema: PreparedSchema,
    value_schema: PreparedSchema,
}

impl TableInfo {
    /// Table metadata with its key and envelope schemas prepared (for Avro:
    /// registered) for `prefix`.
    pub async fn prepare(
        serializers: &Serializers,
        prefix: &str,
        schema: &str,
        table: &str,
        columns: Vec<Column>,
    ) -> Result<Self, FormatError> {
        let topic = format!("{prefix}.{schema}.{table}");
        let (key_schema, value_schema) = serializers
            .prepare(
                &topic,
                &key_schema(prefix, schema, table, &columns),
                &envelope_schema(prefix, schema, table, &columns),
            )
            .await?;
        Ok(Self {
            key_schema,
            value_schema,
            topic,
            schema: schema.to_owned(),
            table: table.to_owned(),
            columns,
        })
    }

    /// True when the table has a primary key (else records have a null key).
    pub fn has_key(&self) -> bool {
        self.columns.iter().any(|c| c.key)
    }
}

/// Position and timing of one change, for the `source` block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Commit time of the transaction (µs since epoch).
    pub commit_micros: i64,
    /// Transaction id.
    pub tx_id: Option<i64>,
    /// LSN of the change.
    pub lsn: Option<u64>,
    /// End LSN of the last transaction processed before this one.
    pub last_committed_lsn: Option<u64>,
    /// Snapshot marker.
    pub snapshot: Option<SnapshotMarker>,
    /// Transaction metadata of this event, when enabled.
    pub transaction: Option<TransactionBlock>,
}

/// Builds records for one connector.
#[derive(Debug)]
pub struct EventBuilder {
    /// Topic prefix (`source.name`).
    pub prefix: String,
    /// Database name (`source.db`).
    pub database: String,
    /// Key and value serializers.
    pub serializers: Serializers,
    heartbeat_schemas: OnceCell<(PreparedSchema, PreparedSchema)>,
    transaction_schemas: OnceCell<(PreparedSchema, PreparedSchema)>,
}

/// One side of a change: values by column position.
pub type Tuple<'a> = [Datum<'a>];

impl EventBuilder {
    /// A builder for the connector with topic prefix `prefix`.
    pub fn new(prefix: &str, database: &str, serializers: Serializers) -> Self {
        Self {
            prefix: prefix.to_owned(),
            database: database.to_owned(),
            serializers,
            heartbeat_schemas: OnceCell::new(),
            transaction_schemas: OnceCell::new(),
        }
    }

    /// Records for an insert (`Op::Create`) or a snapshot read (`Op::Read`).
    pub fn insert(
        &self,
        table: &TableInfo,
        op: Op,
        after: &Tuple<'_>,
        position: &Position,
        now_micros: i64,
    ) -> Result<Vec<OutRecord>, EventError> {
        let key = Self::key(table, after)?;
        let after = row::row_image(&table.columns, after)?;
        Ok(vec![self.record(
            table,
            key,
            None,
            Some(after),
            op,
            position,
            now_micros,
        )?])
    }

    /// Records for an update. `before` is the old row when Postgres sent one
    /// (REPLICA IDENTITY FULL, or the old key when the key changed).
    pub fn update(
        &self,
        table: &TableInfo,
        before: Option<&Tuple<'_>>,
        after: &Tuple<'_>,
        position: &Position,
        now_micros: i64,
    ) -> Result<Vec<OutRecord>, EventError> {
        let new_key = Self::key(table, after)?;
        let old_key = before.map(|b| Self::key(table, b)).transpose()?;
        let after_image = row::row_image(&table.columns, after)?;
        let before_image = before.map(|b| row::row_image(&table.columns, b)).transpose()?;
        match old_key {
            Some(old_key) if table.has_key() && old_key != new_key => {
                // A primary-key change is a delete of the old key and an insert
                // of the new one, so compacted topics keep no stale row.
                Ok(vec![
                    self.record(
                        table,
                        old_key.clone(),
                        before_image,
                        None,
                        Op::Delete,
                        position,
                        now_micros,
                    )?,
                    Self::tombstone(table, old_key)?,
                    self.record(
                        table,
                        new_key,
                        None,
                        Some(after_image),
                        Op::Create,
                        position,
                        now_micros,
                    )?,
                ])
            }
            _ => Ok(vec![self.record(
                table,
                new_key,
                before_image,
                Some(after_image),
                Op::Update,
                position,
                now_micros,
            )?]),
        }
    }

    /// Records for a delete: the event, then a tombstone.
    pub fn delete(
        &self,
        table: &TableInfo,
        before: &Tuple<'_>,
        position: &Position,
        now_micros: i64,
    ) -> Result<Vec<OutRecord>, EventError> {
        let key = Self::key(table, before)?;
        let before = row::row_image(&table.columns, before)?;
        Ok(vec![
            self.record(
                table,
                key.clone(),
                Some(before),
                None,
                Op::Delete,
                position,
                now_micros,
            )?,
            Self::tombstone(table, key)?,
        ])
    }

    /// The record for a truncate of `table`.
    pub fn truncate(
        &self,
        table: &TableInfo,
        position: &Position,
        now_micros: i64,
    ) -> Result<OutRecord, EventError> {
        self.record(table, None, None, None, Op::Truncate, position, now_micros)
    }

    /// The heartbeat record Debezium writes to `__debezium-heartbeat.<prefix>`.
    pub async fn heartbeat(&self, now_micros: i64) -> Result<OutRecord, EventError> {
        let topic = format!("__debezium-heartbeat.{}", self.prefix);
        let (key_schema, value_schema) = self
            .heartbeat_schemas
            .get_or_try_init(|| self.serializers.prepare(&topic, &HEARTBEAT_KEY, &HEARTBEAT_VALUE))
            .await?;
        Ok(OutRecord {
            key: Some(encode(key_schema, &json!({"serverName": self.prefix}))?),
            value: Some(encode(
                value_schema,
                &json!({"ts_ms": now_micros.div_euclid(1000)}),
            )?),
            topic,
        })
    }

    /// A BEGIN (`end: None`) or END record for `<prefix>.transaction`
    /// (`provide.transaction.metadata`); `end` lists events per table.
    pub async fn transaction(
        &self,
        id: &str,
        end: Option<&[(String, i64)]>,
        commit_micros: i64,
    ) -> Result<OutRecord, EventError> {
        let topic = format!("{}.transaction", self.prefix);
        let (key_schema, value_schema) = self
            .transaction_schemas
            .get_or_try_init(|| {
                self.serializers
                    .prepare(&topic, &TRANSACTION_KEY, &TRANSACTION_VALUE)
            })
            .await?;
        let value = match end {
            None => json!({"status": "BEGIN", "id": id, "event_count": null, "data_collections": null,
                           "ts_ms": commit_micros.div_euclid(1000)}),
            Some(collections) => json!({
                "status": "END", "id": id,
                "event_count": collections.iter().map(|(_, n)| n).sum::<i64>(),
                "data_collections": collections.iter()
                    .map(|(name, n)| json!({"data_collection": name, "event_count": n}))
                    .collect::<Vec<_>>(),
                "ts_ms": commit_micros.div_euclid(1000),
            }),
        };
        Ok(OutRecord {
            key: Some(encode(key_schema, &json!({"id": id}))?),
            value: Some(encode(value_schema, &value)?),
            topic,
        })
    }

    fn key(table: &TableInfo, values: &Tuple<'_>) -> Result<Option<Map<String, Value>>, RowError> {
        if !table.has_key() {
            return Ok(None);
        }
        row::key(&table.columns, values).map(Some)
    }

    fn encode_key(
        table: &TableInfo,
        key: Option<Map<String, Value>>,
    ) -> Result<Option<Vec<u8>>, FormatError> {
        key.map(|k| encode(&table.key_schema, &Value::Object(k)))
            .transpose()
    }

    fn tombstone(table: &TableInfo, key: Option<Map<String, Value>>) -> Result<OutRecord, EventError> {
        Ok(OutRecord {
            topic: table.topic.clone(),
            key: Self::encode_key(table, key)?,
            value: None,
        })
    }

    #[allow(clippy::too_many_arguments)] // one record's parts, all needed
    fn record(
        &self,
        table: &TableInfo,
        key: Option<Map<String, Value>>,
        before: Option<Map<String, Value>>,
        after: Option<Map<String, Value>>,
        op: Op,
        position: &Position,
        now_micros: i64,
    ) -> Result<OutRecord, EventError> {
        let envelope = Envelope {
            before,
            after,
            source: Source {
                version: crate::VERSION.to_owned(),
                connector: "postgresql".to_owned(),
                name: self.prefix.clone(),
                ts_ms: position.commit_micros.div_euclid(1000),
                ts_us: position.commit_micros,
                ts_ns: position.commit_micros.saturating_mul(1000),
                snapshot: position.snapshot.unwrap_or(SnapshotMarker::False),
                db: self.database.clone(),
                sequence: position
                    .lsn
                    .map(|lsn| crate::debezium::envelope::sequence(position.last_committed_lsn, lsn)),
                schema: table.schema.clone(),
                table: table.table.clone(),
                tx_id: position.tx_id,
                lsn: position.lsn.and_then(|l| i64::try_from(l).ok()),
                xmin: None,
                origin: None,
                origin_lsn: None,
            },
            op,
            ts_ms: now_micros.div_euclid(1000),
            ts_us: now_micros,
            ts_ns: now_micros.saturating_mul(1000),
            transaction: position.transaction.clone(),
        };
        Ok(OutRecord {
            topic: table.topic.clone(),
            key: Self::encode_key(table, key)?,
            value: Some(encode(&table.value_schema, &envelope)?),
        })
    }
}

static HEARTBEAT_KEY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        "type": "struct", "optional": false, "name": "io.debezium.connector.common.ServerNameKey",
        "fields": [{"type": "string", "optional": false, "field": "serverName"}]
    })
});

static HEARTBEAT_VALUE: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        "type": "struct", "optional": false, "name": "io.debezium.connector.common.Heartbeat",
        "fields": [{"type": "int64", "optional": false, "field": "ts_ms"}]
    })
});

static TRANSACTION_KEY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        "type": "struct", "optional": false, "name": "io.debezium.connector.common.TransactionMetadataKey",
        "fields": [{"type": "string", "optional": false, "field": "id"}]
    })
});

static TRANSACTION_VALUE: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        "type": "struct", "optional": false, "name": "io.debezium.connector.common.TransactionMetadataValue",
        "fields": [
            {"type": "string", "optional": false, "field": "status"},
            {"type": "string", "optional": false, "field": "id"},
            {"type": "int64", "optional": true, "field": "event_count"},
            {"type": "array", "optional": true, "field": "data_collections", "items": {
                "type": "struct", "optional": false,
                "name": "io.debezium.connector.common.TransactionMetadataDataCollection",
                "fields": [
                    {"type": "string", "optional": false, "field": "data_collection"},
                    {"type": "int64", "optional": false, "field": "event_count"}
                ]}},
            {"type": "int64", "optional": false, "field": "ts_ms"}
        ]
    })
});

#[cfg(test)]
mod tests {
    use tributary_api::connector::{Format, FormatSpec};

    use crate::debezium::value::PgType;

    use super::*;

    async fn orders(format: Format) -> TableInfo {
        TableInfo::prepare(
            &serializers(format),
            "shop",
            "public",
            "orders",
            vec![
                Column::new("id", PgType::Int4, true),
                Column::new("status", PgType::Text, false),
            ],
        )
        .await
        .unwrap()
    }

    fn serializers(format: Format) -> Serializers {
        Serializers::new(
            &FormatSpec {
                key: format,
                value: format,
            },
            None,
        )
    }

    fn builder(format: Format) -> EventBuilder {
        EventBuilder::new("shop", "shopdb", serializers(format))
    }

    fn json(bytes: Option<&Vec<u8>>) -> Value {
        bytes.map_or(Value::Null, |b| serde_json::from_slice(b).unwrap())
    }

    #[tokio::test]
    async fn a_delete_is_followed_by_a_tombstone_with_the_same_key() {
        let records = builder(Format::Json)
            .delete(
                &orders(Format::Json).await,
                &[Datum::Text("7"), Datum::Null],
                &Position {
                    lsn: Some(100),
                    tx_id: Some(5),
                    ..Position::default()
                },
                0,
            )
            .unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].topic, "shop.public.orders");
        assert_eq!(json(records[0].key.as_ref()), json!({"id": 7}));
        let value = json(records[0].value.as_ref());
        assert_eq!(value["op"], "d");
        assert_eq!(value["before"], json!({"id": 7, "status": null}));
        assert_eq!(value["after"], Value::Null);
        assert_eq!(value["source"]["db"], "shopdb");
        assert_eq!(value["source"]["lsn"], 100);
        assert_eq!(records[1].key, records[0].key);
        assert_eq!(records[1].value, None);
    }

    #[tokio::test]
    async fn a_primary_key_change_becomes_delete_tombstone_create() {
        let records = builder(Format::Json)
            .update(
                &orders(Format::Json).await,
                Some(&[Datum::Text("1"), Datum::Null]),
                &[Datum::Text("2"), Datum::Text("paid")],
                &Position::default(),
                0,
            )
            .unwrap();
        let ops: Vec<Value> = records
            .iter()
            .map(|r| json(r.value.as_ref())["op"].clone())
            .collect();
        assert_eq!(ops, vec![json!("d"), Value::Null, json!("c")]);
        assert_eq!(json(records[1].key.as_ref()), json!({"id": 1}));
        assert_eq!(json(records[2].key.as_ref()), json!({"id": 2}));
    }

    #[tokio::test]
    async fn an_update_without_old_row_has_a_null_before() {
        let records = builder(Format::JsonWithSchema)
            .update(
                &orders(Format::JsonWithSchema).await,
                None,
                &[Datum::Text("2"), Datum::UnchangedToast],
                &Position::default(),
                0,
            )
            .unwrap();
        assert_eq!(records.len(), 1);
        let value = json(records[0].value.as_ref());
        assert_eq!(value["schema"]["name"], "shop.public.orders.Envelope");
        assert_eq!(value["payload"]["op"], "u");
        assert_eq!(value["payload"]["before"], Value::Null);
        assert_eq!(
            value["payload"]["after"]["status"],
            "__debezium_unavailable_value"
        );
        let key = json(records[0].key.as_ref());
        assert_eq!(key["schema"]["name"], "shop.public.orders.Key");
        assert_eq!(key["payload"], json!({"id": 2}));
    }

    #[tokio::test]
    async fn a_table_without_primary_key_has_null_keys() {
        let mut table = orders(Format::Json).await;
        for column in &mut table.columns {
            column.key = false;
        }
        let records = builder(Format::Json)
            .insert(
                &table,
                Op::Create,
                &[Datum::Text("1"), Datum::Null],
                &Position::default(),
                0,
            )
            .unwrap();
        assert_eq!(records[0].key, None);
    }

    #[tokio::test]
    async fn transaction_end_counts_events_per_table() {
        let record = builder(Format::Json)
            .transaction(
                "770:1234",
                Some(&[("public.orders".into(), 2), ("public.order_items".into(), 3)]),
                1_000_000,
            )
            .await
            .unwrap();
        let value = json(record.value.as_ref());
        assert_eq!(record.topic, "shop.transaction");
        assert_eq!(value["status"], "END");
        assert_eq!(value["event_count"], 5);
        assert_eq!(value["data_collections"][1]["event_count"], 3);
    }
}
