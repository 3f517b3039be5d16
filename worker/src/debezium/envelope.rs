//! The change-event envelope of Debezium's Postgres connector: field names,
//! `op` codes and the `source` block exactly as Debezium writes them.

use serde::Serialize;
use serde_json::{Map, Value};

/// What happened to the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    /// Insert.
    #[serde(rename = "c")]
    Create,
    /// Update.
    #[serde(rename = "u")]
    Update,
    /// Delete (followed by a tombstone on the topic).
    #[serde(rename = "d")]
    Delete,
    /// Read during a snapshot.
    #[serde(rename = "r")]
    Read,
    /// Truncate.
    #[serde(rename = "t")]
    Truncate,
}

/// Snapshot marker of the `source` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMarker {
    /// Streaming, not a snapshot read.
    False,
    /// A snapshot read.
    True,
    /// The first record of a snapshot.
    First,
    /// The first record of a table, not of the whole snapshot.
    #[serde(rename = "first_in_data_collection")]
    FirstInDataCollection,
    /// The last record of a table, not of the whole snapshot.
    #[serde(rename = "last_in_data_collection")]
    LastInDataCollection,
    /// The last record of a snapshot.
    Last,
    /// A read of an incremental snapshot.
    Incremental,
}

impl SnapshotMarker {
    /// The marker of a snapshot read, as Debezium's relational snapshot sets
    /// it: `last` on the last row of the last table, `first` on the first row
    /// of the first table, else `last_in_data_collection` /
    /// `first_in_data_collection` on a table's last / first row, else `true`.
    /// (The last table's "last" wins over "first" for a table's only row.)
    /// `table` is the table's index among `tables` snapshotted.
    pub fn of_read(table: usize, tables: usize, first_in_table: bool, last_in_table: bool) -> Self {
        let (first_table, last_table) = (table == 0, table + 1 >= tables);
        if last_in_table && last_table {
            Self::Last
        } else if first_in_table && first_table {
            Self::First
        } else if last_in_table {
            Self::LastInDataCollection
        } else if first_in_table {
            Self::FirstInDataCollection
        } else {
            Self::True
        }
    }
}

/// Where a change came from: the `source` block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Version of the producing connector.
    pub version: String,
    /// Always `postgresql`, so Debezium consumers recognise the dialect.
    pub connector: String,
    /// The logical name (topic prefix).
    pub name: String,
    /// Commit time of the change in the database (ms since epoch).
    #[serde(rename = "ts_ms")]
    pub ts_ms: i64,
    /// Snapshot marker.
    pub snapshot: SnapshotMarker,
    /// Database name.
    pub db: String,
    /// `["<last committed LSN>","<this LSN>"]` as a JSON text, as Debezium writes it.
    pub sequence: Option<String>,
    /// Commit time in µs.
    #[serde(rename = "ts_us")]
    pub ts_us: i64,
    /// Commit time in ns.
    #[serde(rename = "ts_ns")]
    pub ts_ns: i64,
    /// Schema of the table.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Transaction id.
    pub tx_id: Option<i64>,
    /// LSN of the change.
    pub lsn: Option<i64>,
    /// xmin of the slot (Debezium leaves it null unless configured).
    pub xmin: Option<i64>,
    /// Replication origin of the transaction (Debezium 3.3+; null for
    /// transactions that were not applied from another origin).
    pub origin: Option<String>,
    /// LSN of the transaction at its origin.
    #[serde(rename = "origin_lsn")]
    pub origin_lsn: Option<i64>,
}

/// Transaction metadata of one event (`provide.transaction.metadata`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransactionBlock {
    /// `<txId>:<LSN>`.
    pub id: String,
    /// Position of the event among all events of the transaction (1-based).
    pub total_order: i64,
    /// Position among the transaction's events for this table (1-based).
    pub data_collection_order: i64,
}

/// One change event's value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Envelope {
    /// Row before the change (key columns only under REPLICA IDENTITY DEFAULT).
    pub before: Option<Map<String, Value>>,
    /// Row after the change.
    pub after: Option<Map<String, Value>>,
    /// Where the change came from.
    pub source: Source,
    /// Transaction metadata, when enabled.
    pub transaction: Option<TransactionBlock>,
    /// What happened.
    pub op: Op,
    /// When the connector processed the event (ms since epoch).
    pub ts_ms: i64,
    /// The same in µs.
    pub ts_us: i64,
    /// The same in ns.
    pub ts_ns: i64,
}

/// `source.sequence`: a JSON array of two strings, itself encoded as a string.
pub fn sequence(last_committed_lsn: Option<u64>, lsn: u64) -> String {
    let last = last_committed_lsn.map_or_else(|| "null".to_owned(), |l| format!("\"{l}\""));
    format!("[{last},\"{lsn}\"]")
}

/// The value Debezium writes for a column it cannot send because Postgres
/// omitted an unchanged TOAST value from the change.
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn serializes_with_debeziums_field_names() {
        let envelope = Envelope {
            before: None,
            after: Some(json!({"id": 1, "rating": 2}).as_object().cloned().unwrap()),
            source: Source {
                version: "tributary-0.1.0".into(),
                connector: "postgresql".into(),
                name: "shop".into(),
                ts_ms: 1_700_000_000_000,
                ts_us: 1_700_000_000_000_000,
                ts_ns: 1_700_000_000_000_000_000,
                snapshot: SnapshotMarker::False,
                db: "shop".into(),
                sequence: Some(sequence(Some(100), 200)),
                schema: "public".into(),
                table: "ratings".into(),
                tx_id: Some(770),
                lsn: Some(200),
                xmin: None,
                origin: None,
                origin_lsn: None,
            },
            op: Op::Create,
            ts_ms: 1_700_000_000_005,
            ts_us: 1_700_000_000_005_000,
            ts_ns: 1_700_000_000_005_000_000,
            transaction: None,
        };
        let value = serde_json::to_value(&envelope).unwrap();
        assert_eq!(value["op"], json!("c"));
        assert_eq!(value["source"]["txId"], json!(770));
        assert_eq!(value["source"]["ts_ms"], json!(1_700_000_000_000_i64));
        assert_eq!(value["source"]["snapshot"], json!("false"));
        assert_eq!(value["source"]["sequence"], json!("[\"100\",\"200\"]"));
        // Debezium 3.3+ writes the replication origin fields, null when absent.
        assert_eq!(value["source"]["origin"], Value::Null);
        assert_eq!(value["source"]["origin_lsn"], Value::Null);
        let source_fields: Vec<&str> = value["source"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            source_fields,
            [
                "version",
                "connector",
                "name",
                "ts_ms",
                "snapshot",
                "db",
                "sequence",
                "ts_us",
                "ts_ns",
                "schema",
                "table",
                "txId",
                "lsn",
                "xmin",
                "origin",
                "origin_lsn"
            ]
        );
        assert_eq!(value["before"], Value::Null);
        assert_eq!(value["transaction"], Value::Null);
        // Field order as Debezium writes it (the order of its Connect schema).
        let text = serde_json::to_string(&envelope).unwrap();
        let positions: Vec<usize> = [
            "\"before\"",
            "\"after\"",
            "\"source\"",
            "\"transaction\"",
            "\"op\"",
            "\"ts_ms\":1700000000005",
        ]
        .iter()
        .map(|key| text.find(key).unwrap())
        .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn snapshot_markers_as_debezium_sets_them() {
        use SnapshotMarker as M;
        // Three tables of 2, 1 and 3 rows: (table, first in table, last in table).
        let rows = [
            (0, true, false),
            (0, false, true),
            (1, true, true),
            (2, true, false),
            (2, false, false),
            (2, false, true),
        ];
        let markers: Vec<M> = rows
            .iter()
            .map(|&(table, first, last)| M::of_read(table, 3, first, last))
            .collect();
        assert_eq!(
            markers,
            [
                M::First,
                M::LastInDataCollection,
                M::LastInDataCollection,
                M::FirstInDataCollection,
                M::True,
                M::Last
            ]
        );
        // A single table with a single row: last wins.
        assert_eq!(M::of_read(0, 1, true, true), M::Last);
        let names: Vec<Value> = [M::FirstInDataCollection, M::LastInDataCollection]
            .iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                json!("first_in_data_collection"),
                json!("last_in_data_collection")
            ]
        );
    }

    #[test]
    fn sequence_without_a_previous_commit() {
        assert_eq!(sequence(None, 42), "[null,\"42\"]");
    }
}
