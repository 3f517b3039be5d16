//! Incremental snapshots: re-reading tables in primary-key chunks while the
//! stream keeps flowing, on a signal (Debezium's `execute-snapshot`).
//!
//! Each chunk is read, then a close watermark is written into the WAL as a
//! logical decoding message (a variant of the `DBLog` algorithm Debezium
//! uses):
//!
//! ```text
//!  stream: … [close w-1] │ change(k2) … change … [close w] … change …
//!  read:                 └ SELECT chunk (k1, k2, k3 buffered), then write [close w]
//!  output: on [close w]: r(k1), r(k3) — k2 changed in the window, so its
//!          streamed event (already written) wins over the read
//! ```
//!
//! The window is every change the stream delivers after the read was taken
//! and before its close watermark. Such a change may or may not be reflected
//! in the chunk (a transaction whose commit record precedes a watermark can
//! still be invisible to a query started just after it), so its key's row
//! is dropped from the chunk: the streamed event carries that key's state,
//! and whatever is newer comes later from the stream. Changes after the
//! close watermark are newer than the chunk and follow it. Progress lives in
//! memory: an incremental snapshot interrupted by a restart must be
//! signalled again.

use std::collections::{HashSet, VecDeque};

use serde::Deserialize;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::events::TableInfo;
use super::setup::quote_ident;
use crate::debezium::row::{self, Datum, RowError};

/// Prefix of the watermark messages.
pub const WATERMARK_PREFIX: &str = "tributary-watermark";

/// The `data` of an `execute-snapshot` signal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnapshotSignal {
    /// Tables as `<schema>.<table>`.
    #[serde(rename = "data-collections")]
    pub data_collections: Vec<String>,
    /// `incremental` (the default) or `blocking` (not supported).
    #[serde(rename = "type", default = "incremental")]
    pub kind: String,
}

fn incremental() -> String {
    "incremental".to_owned()
}

/// A signal row that cannot be acted on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignalError {
    /// `data` is not the expected JSON.
    #[error("signal {id}: data is not {{\"data-collections\": [...], \"type\": \"incremental\"}}: {message}")]
    Data {
        /// Signal id.
        id: String,
        /// serde's message.
        message: String,
    },
    /// Only incremental snapshots are supported.
    #[error("signal {id}: snapshot type {kind:?} is not supported (use \"incremental\")")]
    Kind {
        /// Signal id.
        id: String,
        /// The type given.
        kind: String,
    },
}

/// Parses an `execute-snapshot` signal's data (pure).
pub fn parse_signal(id: &str, data: &str) -> Result<SnapshotSignal, SignalError> {
    let signal: SnapshotSignal = serde_json::from_str(data).map_err(|e| SignalError::Data {
        id: id.to_owned(),
        message: e.to_string(),
    })?;
    if !signal.kind.eq_ignore_ascii_case("incremental") {
        return Err(SignalError::Kind {
            id: id.to_owned(),
            kind: signal.kind,
        });
    }
    Ok(signal)
}

/// The chunk being read between two watermarks.
#[derive(Debug)]
struct Window {
    id: String,
    rows: Vec<Vec<Option<String>>>,
    changed: HashSet<String>,
    truncated: bool,
}

/// One table being snapshotted incrementally.
#[derive(Debug)]
struct Chunking {
    oid: u32,
    table: TableInfo,
    /// Key of the last row emitted, in key-column order.
    last_key: Option<Vec<String>>,
    window: Option<Window>,
}

/// The incremental snapshot in progress, if any.
#[derive(Debug, Default)]
pub struct IncrementalSnapshot {
    queue: VecDeque<(u32, TableInfo)>,
    current: Option<Chunking>,
    counter: u64,
}

/// What the stream should do after a watermark.
#[derive(Debug)]
pub enum AfterClose {
    /// Emit these rows (snapshot reads) of `table`, then read the next chunk.
    Emit {
        /// The table.
        table: TableInfo,
        /// Rows in table column order (text format).
        rows: Vec<Vec<Option<String>>>,
    },
}

impl IncrementalSnapshot {
    /// True while tables remain to be read.
    pub fn active(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }

    /// Queues tables (primary key required: chunks are key ranges).
    pub fn enqueue(&mut self, oid: u32, table: TableInfo) {
        self.queue.push_back((oid, table));
    }

    /// The table whose chunk is in its window, if any.
    pub fn windowed_table(&self) -> Option<u32> {
        self.current
            .as_ref()
            .filter(|c| c.window.is_some())
            .map(|c| c.oid)
    }

    /// A change of `oid` seen in the stream with the row `values` (either
    /// image): its key no longer takes the chunk's row.
    pub fn changed(&mut self, oid: u32, values: &[Datum<'_>]) -> Result<(), RowError> {
        if let Some(chunking) = self.current.as_mut()
            && chunking.oid == oid
            && let Some(window) = chunking.window.as_mut()
        {
            let key = row::key(&chunking.table.columns, values)?;
            window.changed.insert(serde_json::Value::Object(key).to_string());
        }
        Ok(())
    }

    /// A truncate of `oid` inside the window drops the whole chunk.
    pub fn truncated(&mut self, oid: u32) {
        if let Some(chunking) = self.current.as_mut()
            && chunking.oid == oid
            && let Some(window) = chunking.window.as_mut()
        {
            window.truncated = true;
        }
    }

    /// A watermark message arrived. Returns rows to emit on a close.
    pub fn watermark(&mut self, content: &str) -> Result<Option<AfterClose>, RowError> {
        let Some(chunking) = self.current.as_mut() else {
            return Ok(None);
        };
        let Some(window) = chunking.window.as_ref() else {
            return Ok(None);
        };
        match content.split_once(':') {
            Some(("close", id)) if id == window.id => {
                let Some(window) = chunking.window.take() else {
                    return Ok(None);
                };
                let mut rows = Vec::with_capacity(window.rows.len());
                for values in window.rows {
                    let datums: Vec<Datum<'_>> = values
                        .iter()
                        .map(|v| v.as_deref().map_or(Datum::Null, Datum::Text))
                        .collect();
                    let key =
                        serde_json::Value::Object(row::key(&chunking.table.columns, &datums)?).to_string();
                    if !window.truncated && !window.changed.contains(&key) {
                        rows.push(values);
                    }
                }
                Ok(Some(AfterClose::Emit {
                    table: chunking.table.clone(),
                    rows,
                }))
            }
            _ => Ok(None),
        }
    }

    /// Reads the next chunk between two watermarks (written through
    /// `client`); moves to the next table when one is exhausted. Returns
    /// false when nothing remains.
    pub async fn next_chunk(
        &mut self,
        client: &Client,
        chunk_size: u32,
    ) -> Result<bool, tokio_postgres::Error> {
        loop {
            if self.current.is_none() {
                let Some((oid, table)) = self.queue.pop_front() else {
                    return Ok(false);
                };
                tracing::info!(table = %format!("{}.{}", table.schema, table.table), "incremental snapshot of table started");
                self.current = Some(Chunking {
                    oid,
                    table,
                    last_key: None,
                    window: None,
                });
            }
            let Some(chunking) = self.current.as_mut() else {
                continue;
            };
            self.counter += 1;
            let id = format!("{}-{}", std::process::id(), self.counter);
            let rows = read_chunk(client, &chunking.table, chunking.last_key.as_deref(), chunk_size).await?;
            emit(client, &format!("close:{id}")).await?;
            if rows.is_empty() {
                tracing::info!(table = %chunking.table.table, "incremental snapshot of table completed");
                self.current = None;
                continue;
            }
            let key_positions: Vec<usize> = chunking
                .table
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.key)
                .map(|(i, _)| i)
                .collect();
            chunking.last_key = rows.last().map(|row| {
                key_positions
                    .iter()
                    .map(|i| row[*i].clone().unwrap_or_default())
                    .collect()
            });
            chunking.window = Some(Window {
                id,
                rows,
                changed: HashSet::new(),
                truncated: false,
            });
            return Ok(true);
        }
    }
}

async fn emit(client: &Client, content: &str) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "SELECT pg_logical_emit_message(false, $1, $2)",
            &[&WATERMARK_PREFIX, &content],
        )
        .await
        .map(|_| ())
}

/// `SELECT … WHERE (key) > (last) ORDER BY key LIMIT n`, values as text.
async fn read_chunk(
    client: &Client,
    table: &TableInfo,
    after: Option<&[String]>,
    limit: u32,
) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let sql = chunk_query(table, after, limit);
    let mut rows = Vec::new();
    for message in client.simple_query(&sql).await? {
        if let SimpleQueryMessage::Row(row) = message {
            rows.push((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect());
        }
    }
    Ok(rows)
}

/// The chunk query (pure).
pub fn chunk_query(table: &TableInfo, after: Option<&[String]>, limit: u32) -> String {
    let columns: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let keys: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.key)
        .map(|c| quote_ident(&c.name))
        .collect();
    let condition = after.map_or_else(String::new, |values| {
        let literals: Vec<String> = values
            .iter()
            .map(|v| format!("'{}'", v.replace('\'', "''")))
            .collect();
        format!(" WHERE ({}) > ({})", keys.join(", "), literals.join(", "))
    });
    format!(
        "SELECT {} FROM {}.{}{condition} ORDER BY {} LIMIT {limit}",
        columns.join(", "),
        quote_ident(&table.schema),
        quote_ident(&table.table),
        keys.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debezium::row::Column;
    use crate::debezium::value::PgType;
    use crate::format::Serializers;

    async fn items() -> TableInfo {
        let column = |name: &str, key| Column::new(name, PgType::Int4, key);
        TableInfo::prepare(
            &Serializers::new(&tributary_api::connector::FormatSpec::default(), None),
            "shop",
            "public",
            "order_items",
            vec![
                column("order_id", true),
                column("item_no", true),
                column("qty", false),
            ],
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn chunks_continue_after_the_last_key_in_key_order() {
        let table = items().await;
        assert_eq!(
            chunk_query(&table, None, 10),
            "SELECT \"order_id\", \"item_no\", \"qty\" FROM \"public\".\"order_items\" ORDER BY \"order_id\", \"item_no\" LIMIT 10"
        );
        assert!(
            chunk_query(&table, Some(&["7".into(), "it's".into()]), 10)
                .contains("WHERE (\"order_id\", \"item_no\") > ('7', 'it''s')")
        );
    }

    #[tokio::test]
    async fn rows_changed_inside_the_window_are_dropped() {
        let table = items().await;
        let mut snapshot = IncrementalSnapshot {
            current: Some(Chunking {
                oid: 1,
                table,
                last_key: None,
                window: Some(Window {
                    id: "w".into(),
                    rows: vec![
                        vec![Some("1".into()), Some("1".into()), Some("5".into())],
                        vec![Some("1".into()), Some("2".into()), Some("5".into())],
                    ],
                    changed: HashSet::new(),
                    truncated: false,
                }),
            }),
            ..IncrementalSnapshot::default()
        };
        let row_1_2 = [Datum::Text("1"), Datum::Text("2"), Datum::Text("9")];
        snapshot.changed(1, &row_1_2).unwrap();
        assert!(
            snapshot.watermark("close:other").unwrap().is_none(),
            "another window's watermark"
        );
        snapshot.changed(2, &row_1_2).unwrap(); // another table: no effect
        let Some(AfterClose::Emit { rows, .. }) = snapshot.watermark("close:w").unwrap() else {
            panic!()
        };
        assert_eq!(
            rows,
            vec![vec![Some("1".into()), Some("1".into()), Some("5".into())]]
        );
    }

    #[test]
    fn signals_parse_as_debezium_writes_them() {
        let signal = parse_signal(
            "s1",
            r#"{"data-collections": ["public.orders"], "type": "incremental"}"#,
        )
        .unwrap();
        assert_eq!(signal.data_collections, vec!["public.orders"]);
        assert_eq!(
            parse_signal("s2", r#"{"data-collections": ["a.b"], "type": "blocking"}"#).unwrap_err(),
            SignalError::Kind {
                id: "s2".into(),
                kind: "blocking".into()
            }
        );
        assert!(matches!(
            parse_signal("s3", "nope"),
            Err(SignalError::Data { .. })
        ));
    }
}
