//! The initial snapshot: every row of the captured tables as `op: r`
//! records, read in one REPEATABLE READ transaction.
//!
//! When the slot was just created, the transaction imports the snapshot the
//! slot exported (`SET TRANSACTION SNAPSHOT`), so it sees exactly the
//! database state at the slot's consistent point: every later change comes
//! from the stream, every earlier one is in the snapshot — no gap, no
//! duplicate. Rows are fetched through a cursor in batches, so memory stays
//! bounded whatever the table size. Records are marked as Debezium marks
//! them (`first`, `first_in_data_collection`, `true`,
//! `last_in_data_collection`, `last`; see `SnapshotMarker::of_read`).

use tokio_postgres::{Client, SimpleQueryMessage};

use super::events::EventError;
use super::events::{EventBuilder, Position, TableInfo};
use super::setup::quote_ident;
use crate::debezium::envelope::{Op, SnapshotMarker};
use crate::debezium::row::Datum;
use crate::delivery::{DeliveryError, Pipeline};

/// Rows fetched per round trip.
const FETCH_ROWS: usize = 2_000;

/// The snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A statement failed.
    #[error("snapshot of {table}: {source}")]
    Query {
        /// Table (or `transaction`).
        table: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A row could not be converted or serialised.
    #[error("snapshot of {table}: {source}")]
    Row {
        /// Table.
        table: String,
        /// Why.
        #[source]
        source: EventError,
    },
    /// Kafka did not take the records.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

/// What to snapshot and how to stamp the records.
#[derive(Debug)]
pub struct SnapshotPlan<'a> {
    /// Tables in order.
    pub tables: &'a [TableInfo],
    /// The snapshot exported by a just-created slot.
    pub exported_snapshot: Option<&'a str>,
    /// The slot's consistent point (`source.lsn` of every record).
    pub lsn: Option<u64>,
    /// Snapshot start (`source.ts_ms`).
    pub started_micros: i64,
}

/// Reads every table and sends its rows; returns the number of rows.
pub async fn run(
    client: &Client,
    plan: &SnapshotPlan<'_>,
    builder: &EventBuilder,
    pipeline: &Pipeline,
) -> Result<u64, SnapshotError> {
    let tx_error = |source| SnapshotError::Query {
        table: "transaction".to_owned(),
        source,
    };
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(tx_error)?;
    if let Some(name) = plan.exported_snapshot {
        client
            .batch_execute(&format!(
                "SET TRANSACTION SNAPSHOT '{}'",
                name.replace('\'', "''")
            ))
            .await
            .map_err(tx_error)?;
    }
    // Text output identical to what pgoutput sends, whatever the server's defaults.
    client
        .batch_execute(
            "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, MDY'; \
             SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'",
        )
        .await
        .map_err(tx_error)?;

    let mut sent = 0_u64;
    for (index, table) in plan.tables.iter().enumerate() {
        let name = format!("{}.{}", table.schema, table.table);
        let query_error = |source| SnapshotError::Query {
            table: name.clone(),
            source,
        };
        let columns: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
        client
            .batch_execute(&format!(
                "DECLARE tributary_snapshot NO SCROLL CURSOR FOR SELECT {} FROM {}.{}",
                columns.join(", "),
                quote_ident(&table.schema),
                quote_ident(&table.table)
            ))
            .await
            .map_err(query_error)?;
        // One row of look-ahead tells which row is the table's last.
        let mut pending: Option<Vec<Option<String>>> = None;
        let mut in_table = 0_u64;
        let marker = |in_table: u64, last_in_table: bool| {
            SnapshotMarker::of_read(index, plan.tables.len(), in_table == 0, last_in_table)
        };
        loop {
            let messages = client
                .simple_query(&format!("FETCH {FETCH_ROWS} FROM tributary_snapshot"))
                .await
                .map_err(query_error)?;
            let mut fetched = 0;
            for message in messages {
                let SimpleQueryMessage::Row(row) = message else {
                    continue;
                };
                fetched += 1;
                let values = (0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect();
                if let Some(previous) = pending.replace(values) {
                    send_row(plan, builder, pipeline, table, &previous, marker(in_table, false)).await?;
                    in_table += 1;
                }
            }
            if fetched < FETCH_ROWS {
                break;
            }
        }
        if let Some(last) = pending.take() {
            send_row(plan, builder, pipeline, table, &last, marker(in_table, true)).await?;
            in_table += 1;
        }
        sent += in_table;
        client
            .batch_execute("CLOSE tributary_snapshot")
            .await
            .map_err(query_error)?;
        tracing::info!(table = %name, rows = in_table, rows_so_far = sent, "snapshot of table read");
    }
    client.batch_execute("COMMIT").await.map_err(tx_error)?;
    Ok(sent)
}

async fn send_row(
    plan: &SnapshotPlan<'_>,
    builder: &EventBuilder,
    pipeline: &Pipeline,
    table: &TableInfo,
    values: &[Option<String>],
    marker: SnapshotMarker,
) -> Result<(), SnapshotError> {
    let datums: Vec<Datum<'_>> = values
        .iter()
        .map(|v| v.as_deref().map_or(Datum::Null, Datum::Text))
        .collect();
    let position = Position {
        commit_micros: plan.started_micros,
        lsn: plan.lsn,
        snapshot: Some(marker),
        ..Position::default()
    };
    let records = builder
        .insert(table, Op::Read, &datums, &position, crate::now_micros())
        .map_err(|source| SnapshotError::Row {
            table: format!("{}.{}", table.schema, table.table),
            source,
        })?;
    for record in records {
        pipeline.send(record).await?;
    }
    Ok(())
}
