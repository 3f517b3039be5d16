//! Postgres change data capture over pgoutput logical replication.
//!
//! ```text
//!  start ─► publication (autocreate) ─► offsets from Kafka ─► slot exists?
//!    │                                                           │
//!    │     snapshot needed? ── yes ─► slot created with an exported snapshot
//!    │                                  (or, slot already there: a fresh one)
//!    │                                  rows → Kafka (op r) → offsets "snapshot done"
//!    ▼
//!  START_REPLICATION from the slot's confirmed position
//!    Begin → Insert/Update/Delete/Truncate (op c/u/d/t) → Commit ─► checkpoint(end LSN)
//!    heartbeat message ─► heartbeat record ─► checkpoint(message LSN)
//! ```
//!
//! A checkpoint confirms its LSN to Postgres only once Kafka acknowledged
//! every record before it ([`crate::delivery::Pipeline`]), so after a crash
//! the slot replays everything not yet durable in Kafka: no change is lost;
//! records of the unconfirmed window may be written twice.
//!
//! If the worker dies during a snapshot, the next start snapshots again
//! (offsets do not say "done") and then streams from the slot's start, which
//! can repeat changes the new snapshot already contains: consumers see
//! duplicates, never gaps (Debezium behaves the same).

pub mod catalog;
pub mod events;
pub mod incremental;
pub mod setup;
pub mod snapshot;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use pg_walstream::{
    CancellationToken, ChangeEvent, ColumnValue, EventType, LogicalReplicationStream, RelationColumn,
    ReplicationSlotOptions, ReplicationStreamConfig, RetryConfig, RowData, SharedLsnFeedback, StreamingMode,
};
use tokio_postgres::{Client, NoTls};
use tributary_api::connector::SnapshotMode;

use self::catalog::{Catalog, CatalogError};
use self::events::{EventBuilder, EventError, Position, TableInfo};
use self::incremental::IncrementalSnapshot;
use self::setup::SetupError;
use self::snapshot::{SnapshotError, SnapshotPlan};
use super::RunContext;
use crate::config::PostgresConfig;
use crate::debezium::envelope::{Op, SnapshotMarker, TransactionBlock};
use crate::debezium::row::{Column, Datum};
use crate::delivery::DeliveryError;
use crate::state_topic::{SourceOffsets, StateTopicError};

/// Prefix of the logical decoding messages the heartbeat writes.
pub const HEARTBEAT_PREFIX: &str = "tributary-heartbeat";

/// The CDC source failed.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// Connecting failed.
    #[error("connecting to Postgres at {host}:{port}: {source}")]
    Connect {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The replication protocol failed.
    #[error("replication ({what}): {message}")]
    Replication {
        /// What was being done.
        what: &'static str,
        /// The error.
        message: String,
    },
    /// Publication or slot setup failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The catalog could not be read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A change could not be converted or serialised.
    #[error("table {table}: {source}")]
    Row {
        /// Table.
        table: String,
        /// Why.
        #[source]
        source: EventError,
    },
    /// A heartbeat, transaction or schema record could not be serialised.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Kafka did not take the records.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// Offsets could not be read or written.
    #[error(transparent)]
    Offsets(#[from] StateTopicError),
    /// Another process streams from the slot.
    #[error(
        "spec.source.postgres.slotName: replication slot {0:?} is in use by another connection (another worker of this connector?)"
    )]
    SlotInUse(String),
}

impl PostgresError {
    /// True for failures a later attempt can get past without a config
    /// change: connections refused or cut, the slot still held by a worker
    /// that is going away, queries failing because the session died.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Replication { .. }
            | Self::SlotInUse(_)
            | Self::Catalog(_)
            | Self::Snapshot(SnapshotError::Query { .. }) => true,
            Self::Setup(SetupError::Statement { source, .. }) => source.is_closed(),
            Self::Setup(_)
            | Self::Snapshot(_)
            | Self::Row { .. }
            | Self::Event(_)
            | Self::Delivery(_)
            | Self::Offsets(_) => false,
        }
    }
}

fn replication(what: &'static str) -> impl FnOnce(pg_walstream::ReplicationError) -> PostgresError {
    move |e| PostgresError::Replication {
        what,
        message: e.to_string(),
    }
}

/// Connects a regular (non-replication) session.
pub async fn connect(pg: &PostgresConfig) -> Result<Client, PostgresError> {
    let (client, connection) = pg
        .tokio_postgres_config()
        .connect(NoTls)
        .await
        .map_err(|source| PostgresError::Connect {
            host: pg.spec.host.clone(),
            port: pg.spec.port,
            source,
        })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "postgres connection closed");
        }
    });
    Ok(client)
}

/// How a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Stopped on request (SIGTERM).
    Stopped,
    /// `InitialOnly`: the snapshot is done and nothing streams.
    SnapshotCompleted,
}

/// What the start-up checks decided.
struct Start {
    control: Client,
    slot_exists: bool,
    snapshot: bool,
}

/// Publication, offsets and slot: whether to snapshot (pure decision on what was read).
async fn prepare(ctx: &RunContext, pg: &PostgresConfig) -> Result<Start, PostgresError> {
    let control = connect(pg).await?;
    setup::ensure_publication(&control, pg).await?;
    let offsets: SourceOffsets = ctx.offsets.read(&ctx.id).await?.unwrap_or_default();
    let slot = setup::slot(&control, &pg.spec.slot_name).await?;
    if slot.as_ref().is_some_and(|s| s.active) {
        return Err(PostgresError::SlotInUse(pg.spec.slot_name.clone()));
    }
    let completed = offsets.snapshot_completed && offsets.slot.as_deref() == Some(pg.spec.slot_name.as_str());
    let snapshot = needs_snapshot(pg.spec.snapshot_mode, completed, slot.is_some());
    tracing::info!(
        slot = %pg.spec.slot_name,
        slot_exists = slot.is_some(),
        snapshot_completed = completed,
        snapshot,
        mode = ?pg.spec.snapshot_mode,
        "starting Postgres source"
    );
    Ok(Start {
        control,
        slot_exists: slot.is_some(),
        snapshot,
    })
}

/// Whether to read the tables before streaming.
pub fn needs_snapshot(mode: SnapshotMode, completed: bool, slot_exists: bool) -> bool {
    match mode {
        SnapshotMode::NoData => false,
        SnapshotMode::Initial | SnapshotMode::InitialOnly => !completed,
        SnapshotMode::WhenNeeded => !completed || !slot_exists,
    }
}

/// Runs the source until `shutdown` is cancelled or it fails.
pub async fn run(
    ctx: &RunContext,
    pg: &PostgresConfig,
    shutdown: CancellationToken,
) -> Result<Ending, PostgresError> {
    let start = prepare(ctx, pg).await?;
    let builder = EventBuilder::new(&pg.spec.topic_prefix, &pg.spec.database, ctx.serializers.clone());
    let mut catalog = Catalog::default();

    if pg.spec.snapshot_mode == SnapshotMode::InitialOnly {
        // No slot: nothing will stream, so nothing must retain WAL.
        if start.snapshot {
            take_snapshot(ctx, pg, &start.control, &mut catalog, &builder, None, None).await?;
        }
        return Ok(Ending::SnapshotCompleted);
    }

    let mut stream = open_stream(pg, start.snapshot && !start.slot_exists).await?;
    if start.snapshot {
        let exported = stream.exported_snapshot_name().map(str::to_owned);
        let consistent = match &exported {
            Some(_) => setup::slot(&start.control, &pg.spec.slot_name)
                .await?
                .and_then(|s| s.confirmed_flush)
                .and_then(|l| pg_walstream::parse_lsn(&l).ok()),
            None => None,
        };
        take_snapshot(
            ctx,
            pg,
            &start.control,
            &mut catalog,
            &builder,
            exported.as_deref(),
            consistent,
        )
        .await?;
    }

    stream.start(None).await.map_err(replication("start"))?;
    ctx.telemetry.set_state("Streaming");
    let background = tokio::spawn(housekeeping(
        pg.clone(),
        Arc::clone(&ctx.telemetry),
        (pg.spec.heartbeat_interval_seconds > 0)
            .then(|| Duration::from_secs(u64::from(pg.spec.heartbeat_interval_seconds))),
        shutdown.clone(),
    ));

    let mut streamer = Streamer {
        ctx,
        pg,
        builder,
        catalog,
        control: start.control,
        feedback: Arc::clone(&stream.shared_lsn_feedback),
        tables: HashMap::new(),
        transaction: None,
        last_committed_lsn: None,
        signal_oid: None,
        incremental: IncrementalSnapshot::default(),
    };
    let result = streamer.stream(&mut stream, &shutdown).await;
    background.abort();
    if result.is_ok() {
        // Graceful stop: confirm what Kafka already has, so a restart replays little.
        if tokio::time::timeout(Duration::from_secs(30), ctx.pipeline.flush())
            .await
            .is_ok()
        {
            let _ = stream.send_feedback().await;
        }
    }
    let _ = stream.stop().await;
    result
}

/// The replication connection, with the slot created if missing (exporting
/// a snapshot when `export_snapshot`).
async fn open_stream(
    pg: &PostgresConfig,
    export_snapshot: bool,
) -> Result<LogicalReplicationStream, PostgresError> {
    let mut stream_config = ReplicationStreamConfig::builder(&pg.spec.slot_name, &pg.spec.publication_name)
        // Protocol 1 without streaming: Postgres sends each transaction whole at
        // commit, in commit order, which is what Debezium consumers expect.
        .with_protocol_version(1)
        .with_streaming_mode(StreamingMode::Off)
        .with_feedback_interval(Duration::from_secs(1))
        .with_connection_timeout(Duration::from_secs(30))
        .with_retry_config(RetryConfig::default())
        .with_messages(true);
    if export_snapshot {
        stream_config = stream_config.with_slot_options(ReplicationSlotOptions {
            snapshot: Some("export".to_owned()),
            ..ReplicationSlotOptions::default()
        });
    }
    let mut stream = LogicalReplicationStream::new(&pg.replication_url(), stream_config)
        .await
        .map_err(replication("connect"))?;
    stream
        .ensure_replication_slot()
        .await
        .map_err(replication("create slot"))?;
    Ok(stream)
}

async fn take_snapshot(
    ctx: &RunContext,
    pg: &PostgresConfig,
    control: &Client,
    catalog: &mut Catalog,
    builder: &EventBuilder,
    exported: Option<&str>,
    lsn: Option<u64>,
) -> Result<(), PostgresError> {
    ctx.telemetry.set_state("Snapshotting");
    let mut tables = Vec::new();
    for (oid, schema, table) in catalog
        .publication_tables(control, &pg.spec.publication_name)
        .await?
    {
        if pg.captures(&schema, &table) {
            let described = catalog.table(control, oid).await?;
            tables.push(
                TableInfo::prepare(
                    &builder.serializers,
                    &pg.spec.topic_prefix,
                    &described.schema,
                    &described.table,
                    described.columns,
                )
                .await
                .map_err(EventError::from)?,
            );
        }
    }
    let reader = connect(pg).await?;
    let plan = SnapshotPlan {
        tables: &tables,
        exported_snapshot: exported,
        lsn,
        started_micros: crate::now_micros(),
    };
    tracing::info!(
        tables = tables.len(),
        exported_snapshot = exported.is_some(),
        "snapshot started"
    );
    let rows = snapshot::run(&reader, &plan, builder, &ctx.pipeline).await?;
    ctx.telemetry.snapshot_rows.inc_by(rows);
    ctx.pipeline.flush().await?;
    let offsets = SourceOffsets {
        slot: Some(pg.spec.slot_name.clone()),
        snapshot_completed: true,
        snapshot_lsn: lsn,
        generated: None,
    };
    ctx.offsets
        .write(ctx.pipeline.producer(), &ctx.id, &offsets)
        .await?;
    tracing::info!(rows, "snapshot completed and acknowledged by Kafka");
    Ok(())
}

/// The kind of a row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Insert,
    Update,
    Delete,
}

/// State of the transaction being streamed.
#[derive(Debug)]
struct Transaction {
    id: i64,
    commit_micros: i64,
    metadata_id: String,
    events: i64,
    per_table: BTreeMap<String, i64>,
}

struct Streamer<'a> {
    ctx: &'a RunContext,
    pg: &'a PostgresConfig,
    builder: EventBuilder,
    catalog: Catalog,
    control: Client,
    feedback: Arc<SharedLsnFeedback>,
    /// Relation oid → the table (`None`: not captured).
    /// Shared: each row change takes its table's metadata.
    tables: HashMap<u32, Option<Arc<TableInfo>>>,
    transaction: Option<Transaction>,
    last_committed_lsn: Option<u64>,
    /// Relation oid of `signalDataCollection`, once seen.
    signal_oid: Option<u32>,
    incremental: IncrementalSnapshot,
}

impl Streamer<'_> {
    /// Reads events until `shutdown` or an error.
    async fn stream(
        &mut self,
        stream: &mut LogicalReplicationStream,
        shutdown: &CancellationToken,
    ) -> Result<Ending, PostgresError> {
        loop {
            let event = match stream.next_event(shutdown).await {
                Ok(event) => event,
                Err(error) if error.is_cancelled() => return Ok(Ending::Stopped),
                Err(error) => return Err(replication("stream")(error)),
            };
            self.handle(event).await?;
            // The library sends feedback only every 128 frames on its own; an
            // idle database sends few, so ask at every event (throttled to 1 s).
            stream.maybe_send_feedback().await;
        }
    }

    async fn handle(&mut self, event: ChangeEvent) -> Result<(), PostgresError> {
        let lsn = event.lsn.value();
        match event.event_type {
            EventType::Begin {
                transaction_id,
                final_lsn,
                commit_timestamp,
            } => {
                self.begin(
                    transaction_id,
                    final_lsn.value(),
                    commit_timestamp.timestamp_micros(),
                )
                .await?;
            }
            EventType::Relation {
                relation_id,
                namespace,
                relation_name,
                columns,
                ..
            } => {
                if self.pg.spec.signal_data_collection.as_deref()
                    == Some(&format!("{namespace}.{relation_name}"))
                {
                    self.signal_oid = Some(relation_id);
                }
                let table = if self.pg.captures(&namespace, &relation_name) {
                    Some(
                        self.describe(relation_id, &namespace, &relation_name, &columns)
                            .await?,
                    )
                } else {
                    None
                };
                self.tables.insert(relation_id, table.map(Arc::new));
            }
            EventType::Insert {
                relation_oid, data, ..
            } if Some(relation_oid) == self.signal_oid => self.signal(&data).await?,
            EventType::Insert {
                relation_oid, data, ..
            } => {
                self.row_change(relation_oid, Change::Insert, None, Some(&data), lsn)
                    .await?;
            }
            EventType::Update {
                relation_oid,
                old_data,
                new_data,
                ..
            } => {
                self.row_change(
                    relation_oid,
                    Change::Update,
                    old_data.as_ref(),
                    Some(&new_data),
                    lsn,
                )
                .await?;
            }
            EventType::Delete {
                relation_oid,
                old_data,
                ..
            } => {
                self.row_change(relation_oid, Change::Delete, Some(&old_data), None, lsn)
                    .await?;
            }
            EventType::Truncate { tables, .. } => self.truncate(&tables, lsn).await?,
            EventType::Commit {
                end_lsn,
                commit_timestamp,
                ..
            } => {
                self.commit(end_lsn.value(), commit_timestamp.timestamp_micros())
                    .await?;
            }
            EventType::Message {
                prefix,
                message_lsn,
                content,
                ..
            } if &*prefix == incremental::WATERMARK_PREFIX => {
                self.watermark(&String::from_utf8_lossy(&content), message_lsn.value())
                    .await?;
            }
            EventType::Message {
                prefix, message_lsn, ..
            } if &*prefix == HEARTBEAT_PREFIX => {
                let record = self.builder.heartbeat(crate::now_micros()).await?;
                self.ctx.pipeline.send(record).await?;
                self.confirm_after_delivery(message_lsn.value()).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// An insert (`after` only), update (both; `before` when Postgres sent
    /// the old row) or delete (`before` only) of a captured table.
    async fn row_change(
        &mut self,
        oid: u32,
        change: Change,
        before: Option<&RowData>,
        after: Option<&RowData>,
        lsn: u64,
    ) -> Result<(), PostgresError> {
        let Some(table) = self.table(oid) else {
            return Ok(());
        };
        let position = self.position(&table, lsn);
        let now = crate::now_micros();
        let before = before.map(|old| tuple(&table, old, Datum::Null));
        let after = after.map(|new| tuple(&table, new, Datum::UnchangedToast));
        if self.incremental.windowed_table() == Some(oid) {
            for image in [&before, &after].into_iter().flatten() {
                self.incremental
                    .changed(oid, image)
                    .map_err(|source| row_error(&table, source.into()))?;
            }
        }
        let records = match (change, before, after) {
            (Change::Insert, _, Some(after)) => {
                self.builder.insert(&table, Op::Create, &after, &position, now)
            }
            (Change::Update, before, Some(after)) => {
                self.builder
                    .update(&table, before.as_deref(), &after, &position, now)
            }
            (Change::Delete, Some(before), _) => self.builder.delete(&table, &before, &position, now),
            _ => return Ok(()),
        }
        .map_err(|source| row_error(&table, source))?;
        self.send(records).await
    }

    /// A row inserted into the signal table.
    async fn signal(&mut self, data: &RowData) -> Result<(), PostgresError> {
        let text = |name: &str| {
            data.get(name)
                .and_then(ColumnValue::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (id, kind) = (text("id"), text("type"));
        if kind != "execute-snapshot" {
            tracing::warn!(signal = %id, kind = %kind, "ignoring signal of unknown type (supported: execute-snapshot)");
            return Ok(());
        }
        let signal = match incremental::parse_signal(&id, &text("data")) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "ignoring signal");
                return Ok(());
            }
        };
        let was_active = self.incremental.active();
        for name in &signal.data_collections {
            let Some((schema, table)) = name.split_once('.') else {
                tracing::warn!(signal = %id, table = %name, "ignoring data collection: expected <schema>.<table>");
                continue;
            };
            let Some(oid) = self.catalog.table_oid(&self.control, schema, table).await? else {
                tracing::warn!(signal = %id, table = %name, "ignoring data collection: no such table");
                continue;
            };
            let described = self.catalog.table(&self.control, oid).await?;
            if !self.pg.captures(schema, table) || !described.columns.iter().any(|c| c.key) {
                tracing::warn!(signal = %id, table = %name, "ignoring data collection: not captured or without primary key");
                continue;
            }
            let info = TableInfo::prepare(
                &self.builder.serializers,
                &self.pg.spec.topic_prefix,
                &described.schema,
                &described.table,
                described.columns,
            )
            .await
            .map_err(EventError::from)?;
            self.incremental.enqueue(oid, info);
        }
        if !was_active {
            self.next_chunk().await?;
        }
        Ok(())
    }

    /// A watermark: on the close of the current window, the chunk's rows that
    /// the stream did not change meanwhile become `op: r` records.
    async fn watermark(&mut self, content: &str, lsn: u64) -> Result<(), PostgresError> {
        let after = self
            .incremental
            .watermark(content)
            .map_err(|source| PostgresError::Event(source.into()))?;
        let Some(incremental::AfterClose::Emit { table, rows }) = after else {
            return Ok(());
        };
        let now = crate::now_micros();
        let position = Position {
            commit_micros: now,
            lsn: Some(lsn),
            last_committed_lsn: self.last_committed_lsn,
            snapshot: Some(SnapshotMarker::Incremental),
            ..Position::default()
        };
        for values in &rows {
            let datums: Vec<Datum<'_>> = values
                .iter()
                .map(|v| v.as_deref().map_or(Datum::Null, Datum::Text))
                .collect();
            let records = self
                .builder
                .insert(&table, Op::Read, &datums, &position, now)
                .map_err(|source| row_error(&table, source))?;
            self.send(records).await?;
        }
        self.ctx.telemetry.snapshot_rows.inc_by(rows.len() as u64);
        self.next_chunk().await
    }

    async fn next_chunk(&mut self) -> Result<(), PostgresError> {
        let chunk_size = self.pg.spec.incremental_snapshot_chunk_size.max(1);
        let more = self
            .incremental
            .next_chunk(&self.control, chunk_size)
            .await
            .map_err(|e| PostgresError::Replication {
                what: "incremental snapshot",
                message: e.to_string(),
            })?;
        if !more {
            tracing::info!("incremental snapshot completed");
        }
        Ok(())
    }

    async fn begin(
        &mut self,
        transaction_id: u32,
        final_lsn: u64,
        commit_micros: i64,
    ) -> Result<(), PostgresError> {
        let transaction = Transaction {
            id: i64::from(transaction_id),
            commit_micros,
            metadata_id: format!("{transaction_id}:{final_lsn}"),
            events: 0,
            per_table: BTreeMap::new(),
        };
        if self.pg.spec.provide_transaction_metadata {
            let record = self
                .builder
                .transaction(&transaction.metadata_id, None, commit_micros)
                .await?;
            self.ctx.pipeline.send(record).await?;
        }
        self.transaction = Some(transaction);
        Ok(())
    }

    async fn truncate(&mut self, tables: &[Arc<str>], lsn: u64) -> Result<(), PostgresError> {
        let truncated: Vec<(u32, Arc<TableInfo>)> = self
            .tables
            .iter()
            .filter_map(|(oid, t)| t.as_ref().map(|t| (*oid, t)))
            .filter(|(_, t)| {
                tables
                    .iter()
                    .any(|name| **name == format!("{}.{}", t.schema, t.table) || **name == t.table)
            })
            .map(|(oid, t)| (oid, t.clone()))
            .collect();
        for (oid, table) in truncated {
            self.incremental.truncated(oid);
            let position = self.position(&table, lsn);
            let record = self.builder.truncate(&table, &position, crate::now_micros())?;
            self.send(vec![record]).await?;
        }
        Ok(())
    }

    async fn commit(&mut self, end_lsn: u64, commit_micros: i64) -> Result<(), PostgresError> {
        if let Some(transaction) = self.transaction.take()
            && self.pg.spec.provide_transaction_metadata
        {
            let collections: Vec<(String, i64)> = transaction.per_table.into_iter().collect();
            let record = self
                .builder
                .transaction(
                    &transaction.metadata_id,
                    Some(&collections),
                    transaction.commit_micros,
                )
                .await?;
            self.ctx.pipeline.send(record).await?;
        }
        let behind = crate::now_micros().saturating_sub(commit_micros) / 1000;
        self.ctx.telemetry.lag_millis.set(behind.max(0));
        self.confirm_after_delivery(end_lsn).await?;
        self.last_committed_lsn = Some(end_lsn);
        Ok(())
    }

    fn table(&self, oid: u32) -> Option<Arc<TableInfo>> {
        // pgoutput sends a Relation message before a relation's first change
        // in each session, so a change of an unknown oid is not captured.
        self.tables.get(&oid).cloned().flatten()
    }

    async fn describe(
        &mut self,
        oid: u32,
        schema: &str,
        table: &str,
        columns: &[RelationColumn],
    ) -> Result<TableInfo, PostgresError> {
        // Columns and types as of this change (the Relation message); the
        // primary key, NOT NULL constraints and defaults from the catalog, as
        // Debezium does.
        let cataloged: Vec<Column> = match self.catalog.table(&self.control, oid).await {
            Ok(described) => described.columns,
            Err(CatalogError::MissingTable(_)) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let mut described = Vec::with_capacity(columns.len());
        for column in columns {
            let pg_type = self
                .catalog
                .pg_type(&self.control, column.type_id, column.type_modifier)
                .await?;
            let mut described_column = Column::new(column.name.to_string(), pg_type, false);
            if let Some(known) = cataloged.iter().find(|c| *c.name == *column.name) {
                described_column.key = known.key;
                described_column.optional = known.optional;
                described_column.default.clone_from(&known.default);
            }
            described.push(described_column);
        }
        tracing::info!(table = %format!("{schema}.{table}"), columns = described.len(), "table schema");
        Ok(TableInfo::prepare(
            &self.builder.serializers,
            &self.pg.spec.topic_prefix,
            schema,
            table,
            described,
        )
        .await
        .map_err(EventError::from)?)
    }

    fn position(&mut self, table: &TableInfo, lsn: u64) -> Position {
        let provide = self.pg.spec.provide_transaction_metadata;
        let (tx_id, commit_micros, block) = match self.transaction.as_mut() {
            Some(transaction) => {
                transaction.events += 1;
                let per_table = transaction
                    .per_table
                    .entry(format!("{}.{}", table.schema, table.table))
                    .or_default();
                *per_table += 1;
                let block = provide.then(|| TransactionBlock {
                    id: transaction.metadata_id.clone(),
                    total_order: transaction.events,
                    data_collection_order: *per_table,
                });
                (Some(transaction.id), transaction.commit_micros, block)
            }
            None => (None, crate::now_micros(), None),
        };
        Position {
            commit_micros,
            tx_id,
            lsn: Some(lsn),
            last_committed_lsn: self.last_committed_lsn,
            snapshot: None,
            transaction: block,
        }
    }

    async fn send(&self, records: Vec<crate::delivery::OutRecord>) -> Result<(), PostgresError> {
        for record in records {
            self.ctx.pipeline.send(record).await?;
        }
        Ok(())
    }

    async fn confirm_after_delivery(&self, lsn: u64) -> Result<(), PostgresError> {
        let feedback = Arc::clone(&self.feedback);
        self.ctx
            .pipeline
            .checkpoint(move || {
                feedback.update_flushed_lsn(lsn);
                feedback.update_applied_lsn(lsn);
            })
            .await?;
        Ok(())
    }
}

fn row_error(table: &TableInfo, source: EventError) -> PostgresError {
    PostgresError::Row {
        table: format!("{}.{}", table.schema, table.table),
        source,
    }
}

/// The values of `row` in the table's column order; a column Postgres did
/// not send is `missing` (an unchanged TOAST value in a new row).
fn tuple<'a>(table: &TableInfo, row: &'a RowData, missing: Datum<'a>) -> Vec<Datum<'a>> {
    table
        .columns
        .iter()
        .map(|column| match row.get(&column.name) {
            None => missing,
            Some(ColumnValue::Null) => Datum::Null,
            Some(value) => value.as_str().map_or(Datum::Null, Datum::Text),
        })
        .collect()
}

/// Every few seconds on its own session: publishes the WAL the slot retains
/// as a metric and, every `heartbeat` interval, writes a logical decoding
/// message. The stream turns that message into a heartbeat record and
/// confirms its LSN, so the slot advances even when no captured table changes.
async fn housekeeping(
    pg: PostgresConfig,
    telemetry: Arc<crate::telemetry::Telemetry>,
    heartbeat: Option<Duration>,
    shutdown: CancellationToken,
) {
    let tick = heartbeat.map_or(LAG_INTERVAL, |h| h.min(LAG_INTERVAL));
    let mut ticker = tokio::time::interval(tick);
    let mut client = None;
    let mut last_heartbeat: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if client.is_none() {
            client = connect(&pg).await.ok();
        }
        let Some(session) = &client else { continue };
        let result = async {
            if let Some(interval) = heartbeat
                && last_heartbeat.is_none_or(|at| at.elapsed() >= interval)
            {
                last_heartbeat = Some(tokio::time::Instant::now());
                session
                    .execute(
                        "SELECT pg_logical_emit_message(false, $1, '')",
                        &[&HEARTBEAT_PREFIX],
                    )
                    .await
                    .map_err(|e| format!("heartbeat: {e}"))?;
            }
            if let Some(bytes) = setup::retained_wal_bytes(session, &pg.spec.slot_name)
                .await
                .map_err(|e| e.to_string())?
            {
                telemetry.lag_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
            Ok::<(), String>(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "housekeeping query failed; reconnecting");
            client = None;
        }
    }
}

/// How often the retained WAL is measured.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_modes_decide_as_debezium_does() {
        use SnapshotMode::{Initial, InitialOnly, NoData, WhenNeeded};
        // (mode, completed, slot exists) → snapshot?
        assert!(needs_snapshot(Initial, false, false));
        assert!(
            needs_snapshot(Initial, false, true),
            "crash mid-snapshot: redo it"
        );
        assert!(
            !needs_snapshot(Initial, true, false),
            "initial never repeats a completed snapshot"
        );
        assert!(
            needs_snapshot(WhenNeeded, true, false),
            "slot lost: WAL is gone, snapshot again"
        );
        assert!(!needs_snapshot(WhenNeeded, true, true));
        assert!(!needs_snapshot(NoData, false, false));
        assert!(needs_snapshot(InitialOnly, false, true));
        assert!(!needs_snapshot(InitialOnly, true, true));
    }
}
