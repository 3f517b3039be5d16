//! Record-at-a-time execution of a planned query.
//!
//! Data flow (one consumer, one producer per worker; every worker of the
//! stream runs the same):
//!
//! ```text
//!  input topic ──► decode ─► WHERE ─► SELECT ─────────────────────────► output topic
//!                               └─► GROUP BY key + aggregate arguments ─► <group>-repartition
//!  <group>-repartition[p] ──► task p: windows, accumulators, stream time ─► output topic
//!                                          └─ changes at each commit ───► <group>-changelog[p]
//!
//!  stream-table join:  input ─► decode ─► the table's row for the join key (`table`) ─► WHERE ─► SELECT
//!  stream-stream join: both inputs ─► join key ─► <group>-repartition
//!  <group>-repartition[p] ──► task p: buffered rows of both inputs (`join`) ─► WHERE ─► SELECT ─► output
//! ```
//!
//! Aggregates always go through the repartition topic (keyed by the group
//! values), so each group is owned by exactly one partition and its worker,
//! whatever the input's key; its state moves with the partition. Windows
//! follow the partition's stream time (largest event time seen); a window
//! closes at `end + grace`, and a record for a closed window is late:
//! dropped and counted. `EMIT CHANGES` writes the groups changed since the
//! last commit at each commit (as Kafka Streams' record cache does); `EMIT
//! FINAL` writes a window once, when it closes.
//!
//! Commits: at-least-once flushes the producer, then commits the consumed
//! offsets; exactly-once commits output, repartition and changelog records
//! and the consumed offsets in one Kafka transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::Producer as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Map, Value};
use tributary_api::connector::Format;
use tributary_kafka::KafkaConnection;
use tributary_sql::{
    Context, Emit, Expr, InputKind, Join, JoinInput, JoinKind, OutputColumn, Plan, Projection, Row, Session,
    Window, evaluate, is_true, merge_sessions,
};

use super::StreamError;
use super::join::{BufferedRow, JoinTask, Routed};
use super::kafka::{self, DeliveryState, GroupCallbacks, Producer};
use super::output::OutputEncoders;
use super::positions::Positions;
use super::prune::Fields;
use super::state::{self, StateKey, StoredEntry, Task};
use super::table::{Table, TableSetup, canonical};
use crate::format::decode::Deserializer;
use crate::telemetry::StreamCounters;

/// How one input topic is read.
#[derive(Debug, Clone)]
pub(crate) struct InputSetup {
    pub key: Deserializer,
    pub value: Deserializer,
    pub key_format: Format,
    pub value_format: Format,
    pub timestamp_field: Option<Vec<String>>,
    /// What the query reads of JSON values (the rest is not parsed).
    pub fields: Fields,
}

/// The table of a stream-table join.
#[derive(Debug, Clone)]
pub(crate) struct TableInput {
    pub topic: String,
    /// Path into a JSON key (`c.ROWKEY.id`), empty for the whole key.
    pub key_path: Vec<String>,
    /// `spec.inputs[].maxTableBytes` (or its default).
    pub limit: u64,
    /// The field that sets `limit`, for the error naming it.
    pub limit_field: String,
}

/// What does not change while the stream runs.
#[derive(Debug)]
pub(crate) struct Setup {
    pub plan: Plan,
    pub output_topic: String,
    /// `Some` for aggregates.
    pub repartition_topic: Option<String>,
    /// `Some` for aggregates.
    pub changelog_topic: Option<String>,
    pub inputs: HashMap<String, InputSetup>,
    /// `spec.output.key`.
    pub output_key: Vec<String>,
    /// Key and value serialisation.
    pub output: OutputEncoders,
    /// Names of the GROUP BY values in the default key of aggregates.
    pub group_names: Vec<String>,
    pub exactly_once: bool,
    pub kafka: KafkaConnection,
    /// The query reads `ROWKEY` (else keys are not decoded).
    pub reads_row_key: bool,
    /// `Some` for stream-table joins.
    pub table: Option<TableInput>,
}

/// The running query; shared with the consumer's rebalance callbacks.
pub(crate) struct Engine {
    setup: Arc<Setup>,
    producer: Producer,
    delivery: Arc<DeliveryState>,
    counters: StreamCounters,
    runtime: tokio::runtime::Handle,
    in_transaction: bool,
    /// Next offset to commit, per partition processed since the last commit.
    positions: Positions,
    /// Aggregate state per repartition partition owned.
    tasks: HashMap<i32, Task>,
    last_warning: Option<Instant>,
    suppressed_warnings: u64,
    /// The table of a stream-table join, once loaded.
    table: Option<Table>,
    /// Buffered rows of a stream-stream join per repartition partition owned.
    join_tasks: HashMap<i32, JoinTask>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(
        setup: Arc<Setup>,
        producer: Producer,
        delivery: Arc<DeliveryState>,
        counters: StreamCounters,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            setup,
            producer,
            delivery,
            counters,
            runtime,
            in_transaction: false,
            positions: Positions::default(),
            tasks: HashMap::new(),
            last_warning: None,
            suppressed_warnings: 0,
            table: None,
            join_tasks: HashMap::new(),
        }
    }

    /// Topics the consumer subscribes to (a table is read whole, outside the group).
    pub fn subscriptions(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .setup
            .plan
            .sources
            .iter()
            .filter(|s| s.kind == InputKind::Stream)
            .map(|s| s.topic.clone())
            .collect();
        if let Some(topic) = &self.setup.repartition_topic {
            topics.push(topic.clone());
        }
        topics
    }

    /// Reads the table of a stream-table join to its end (before the first
    /// stream record is processed).
    pub fn load_table(&mut self, client_id: &str) -> Result<(), StreamError> {
        let Some(spec) = self.setup.table.clone() else {
            return Ok(());
        };
        let input = self
            .setup
            .inputs
            .get(&spec.topic)
            .cloned()
            .ok_or_else(|| StreamError::Topic {
                topic: spec.topic.clone(),
                message: "no input setup for the table".to_owned(),
            })?;
        let mut table = Table::new(
            TableSetup {
                kafka: &self.setup.kafka,
                topic: &spec.topic,
                input,
                key_path: spec.key_path,
                limit: spec.limit,
                limit_field: spec.limit_field,
                client_id,
            },
            self.counters.clone(),
        )?;
        table.bootstrap(&self.runtime)?;
        self.table = Some(table);
        Ok(())
    }

    /// Whether the query joins a table (loaded by [`Engine::load_table`]).
    pub fn has_table(&self) -> bool {
        self.table.is_some()
    }

    /// Applies the table updates read since the last call.
    pub fn follow_table(&mut self) -> Result<(), StreamError> {
        if let Some(table) = &mut self.table {
            table.follow(&self.runtime, 10_000)?;
        }
        Ok(())
    }

    /// A record that cannot be processed: counted, and logged at most every
    /// few seconds (a bad input can be every record).
    fn skip(&mut self, message: &BorrowedMessage<'_>, why: &str) {
        self.counters.bad_records.inc();
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(5))
        {
            tracing::warn!(
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                error = why,
                skipped_since_last_warning = self.suppressed_warnings,
                "record skipped"
            );
            self.last_warning = Some(now);
            self.suppressed_warnings = 0;
        } else {
            self.suppressed_warnings += 1;
        }
    }

    fn begin(&mut self) -> Result<(), StreamError> {
        if self.setup.exactly_once && !self.in_transaction {
            self.producer
                .begin_transaction()
                .map_err(|e| StreamError::Kafka(format!("beginning a transaction: {e}")))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn send(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        ts: i64,
    ) -> Result<(), StreamError> {
        self.begin()?;
        kafka::send(&self.producer, topic, partition, key, value, ts)
    }

    /// Processes one consumed record.
    #[allow(clippy::too_many_lines)] // decode, filter, then one arm per projection kind
    pub fn process(&mut self, message: &BorrowedMessage<'_>) -> Result<(), StreamError> {
        let topic = message.topic();
        self.positions
            .record(topic, message.partition(), message.offset() + 1);
        if self.setup.repartition_topic.as_deref() == Some(topic) {
            return self.process_grouped(message);
        }
        self.counters.records_in.inc();
        let Some(payload) = message.payload() else {
            return Ok(()); // a tombstone deletes nothing in a stream
        };
        let setup = Arc::clone(&self.setup);
        let Some(input) = setup.inputs.get(topic) else {
            return Ok(());
        };
        // JSON is parsed keeping only what the query reads; other formats
        // are decoded whole.
        let pruned;
        let decoded;
        let value: &dyn Row = if input.value_format == Format::Json {
            match input.fields.parse(payload) {
                Ok(row) => {
                    pruned = row;
                    &pruned
                }
                Err(e) => {
                    self.skip(message, &format!("value: not JSON: {e}"));
                    return Ok(());
                }
            }
        } else {
            match decode(&self.runtime, &input.value, input.value_format, Some(payload)) {
                Ok(Some(value)) => {
                    decoded = value;
                    &decoded
                }
                Ok(None) => return Ok(()),
                Err(why) => {
                    self.skip(message, &format!("value: {why}"));
                    return Ok(());
                }
            }
        };
        let key = match message.key() {
            // Decoded only when the query reads ROWKEY (a JSON parse per record otherwise).
            _ if !setup.reads_row_key => Value::Null,
            None => Value::Null,
            Some(bytes) => match decode(&self.runtime, &input.key, input.key_format, Some(bytes)) {
                Ok(key) => key.unwrap_or(Value::Null),
                // Keys are often plain text: take them as a string.
                Err(_) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
            },
        };
        let record_time = message.timestamp().to_millis().unwrap_or(0);
        let timestamp = match &input.timestamp_field {
            None => record_time,
            Some(path) => match event_time(value, path) {
                Ok(Some(ts)) => ts,
                Ok(None) => record_time,
                Err(why) => {
                    self.skip(message, &why);
                    return Ok(());
                }
            },
        };
        let mut ctx = Context {
            rows: [Some(value), None],
            key: &key,
            timestamp,
            partition: message.partition(),
            offset: message.offset(),
            groups: &[],
            aggregates: &[],
            window: None,
        };
        if let Some(
            join @ Join {
                right: JoinInput::Stream { .. },
                ..
            },
        ) = &setup.plan.join
        {
            let side = usize::from(setup.plan.sources[0].topic != topic);
            return self.route(message, join, side, &ctx);
        }
        // A stream-table join: the table's current row for the join key,
        // which also keys the result.
        let mut joined_key = None;
        let joined;
        if let Some(join) = &setup.plan.join {
            let left = match evaluate(&join.left_key, &ctx) {
                Ok(v) => v,
                Err(e) => {
                    self.skip(message, &format!("ON: {e}"));
                    return Ok(());
                }
            };
            joined = self.table.as_ref().and_then(|t| t.lookup(&left));
            if joined.is_none() && join.kind == JoinKind::Inner {
                return Ok(());
            }
            joined_key = Some(canonical(&left));
            ctx.rows[1] = joined.as_deref().map(|row| row as &dyn Row);
        }
        if !self.keeps(message, &ctx) {
            return Ok(());
        }
        match &setup.plan.projection {
            Projection::Wildcard => {
                let out = if input.value_format == Format::Json {
                    payload.to_vec()
                } else {
                    serde_json::to_vec(&value.to_value()).unwrap_or_default()
                };
                self.send(&setup.output_topic, None, message.key(), Some(&out), timestamp)?;
                self.counters.records_out.inc();
            }
            Projection::Columns(columns) => {
                let default_key = joined_key.or_else(|| message.key().map(<[u8]>::to_vec));
                self.write_columns(message, &ctx, columns, default_key, timestamp)?;
            }
            Projection::Aggregate(aggregation) => {
                let mut groups = Vec::with_capacity(aggregation.group_by.len());
                for expr in &aggregation.group_by {
                    match evaluate(expr, &ctx) {
                        Ok(v) => groups.push(v),
                        Err(e) => {
                            self.skip(message, &format!("GROUP BY: {e}"));
                            return Ok(());
                        }
                    }
                }
                let mut args = Vec::with_capacity(aggregation.calls.len());
                for call in &aggregation.calls {
                    match call.arg.as_ref().map(|arg| evaluate(arg, &ctx)) {
                        None => args.push(Value::Bool(true)), // COUNT(*) counts the row
                        Some(Ok(v)) => args.push(v),
                        Some(Err(e)) => {
                            self.skip(message, &format!("{}: {e}", call.function.name()));
                            return Ok(());
                        }
                    }
                }
                let key_bytes = serde_json::to_vec(&groups).unwrap_or_default();
                let value_bytes = serde_json::to_vec(&args).unwrap_or_default();
                let topic = setup.repartition_topic.clone().unwrap_or_default();
                self.send(&topic, None, Some(&key_bytes), Some(&value_bytes), timestamp)?;
            }
        }
        Ok(())
    }

    /// Whether `WHERE` keeps the row of `ctx` (a row it fails on is skipped).
    fn keeps(&mut self, message: &BorrowedMessage<'_>, ctx: &Context<'_>) -> bool {
        let setup = Arc::clone(&self.setup);
        let Some(filter) = &setup.plan.filter else {
            return true;
        };
        match evaluate(filter, ctx) {
            Ok(v) => is_true(&v),
            Err(e) => {
                self.skip(message, &format!("WHERE: {e}"));
                false
            }
        }
    }

    /// Computes the SELECT columns over `ctx` and writes the row, keyed by
    /// `spec.output.key` or else `default_key`.
    fn write_columns(
        &mut self,
        message: &BorrowedMessage<'_>,
        ctx: &Context<'_>,
        columns: &[OutputColumn],
        default_key: Option<Vec<u8>>,
        timestamp: i64,
    ) -> Result<(), StreamError> {
        let mut values = Vec::with_capacity(columns.len());
        for column in columns {
            match evaluate(&column.expr, ctx) {
                Ok(v) => values.push(v),
                Err(e) => {
                    self.skip(message, &format!("column {}: {e}", column.name));
                    return Ok(());
                }
            }
        }
        let setup = Arc::clone(&self.setup);
        let names = columns.iter().map(|c| c.name.as_str());
        let encoded = if let Some(out) = setup.output.plain_row(names, &values) {
            Ok((None, out))
        } else {
            let row: Map<String, Value> = columns.iter().map(|c| c.name.clone()).zip(values).collect();
            setup
                .output
                .key(&row)
                .and_then(|key| Ok((key, setup.output.value(&row)?)))
        };
        let (key_bytes, out) = match encoded {
            Ok((key, value)) => (key.or(default_key), value),
            Err(e) => {
                self.skip(message, &e);
                return Ok(());
            }
        };
        self.send(
            &setup.output_topic,
            None,
            key_bytes.as_deref(),
            Some(&out),
            timestamp,
        )?;
        self.counters.records_out.inc();
        Ok(())
    }

    /// A stream-stream join's input row: to the repartition topic, keyed by
    /// its join key, so rows that can match meet on one partition.
    fn route(
        &mut self,
        message: &BorrowedMessage<'_>,
        join: &Join,
        side: usize,
        ctx: &Context<'_>,
    ) -> Result<(), StreamError> {
        let JoinInput::Stream { right_key, .. } = &join.right else {
            return Ok(());
        };
        let Some(row) = ctx.rows[0] else {
            return Ok(());
        };
        let (expr, mut side_ctx) = if side == 0 {
            (&join.left_key, *ctx)
        } else {
            (right_key, *ctx)
        };
        side_ctx.rows = if side == 0 {
            [Some(row), None]
        } else {
            [None, Some(row)]
        };
        let key = match evaluate(expr, &side_ctx) {
            Ok(v) => v,
            Err(e) => {
                self.skip(message, &format!("ON: {e}"));
                return Ok(());
            }
        };
        if key.is_null() {
            // Matches nothing; a LEFT join writes its FROM row at once.
            if side == 0 && join.kind == JoinKind::Left {
                return self.write_joined(message, ctx, b"null".to_vec(), ctx.timestamp);
            }
            return Ok(());
        }
        let routed = Routed {
            s: side,
            k: ctx.key.clone(),
            p: ctx.partition,
            o: ctx.offset,
            v: row.to_value(),
        };
        let value = serde_json::to_vec(&routed).unwrap_or_default();
        let topic = self.setup.repartition_topic.clone().unwrap_or_default();
        self.send(&topic, None, Some(&canonical(&key)), Some(&value), ctx.timestamp)
    }

    /// WHERE and SELECT over a joined row, keyed by the join key by default.
    fn write_joined(
        &mut self,
        message: &BorrowedMessage<'_>,
        ctx: &Context<'_>,
        join_key: Vec<u8>,
        timestamp: i64,
    ) -> Result<(), StreamError> {
        let setup = Arc::clone(&self.setup);
        let Projection::Columns(columns) = &setup.plan.projection else {
            return Ok(());
        };
        if !self.keeps(message, ctx) {
            return Ok(());
        }
        self.write_columns(message, ctx, columns, Some(join_key), timestamp)
    }

    /// A record of a stream-stream join's repartition topic: matched with
    /// the buffered rows of the other input, then buffered itself; rows that
    /// can no longer match leave the buffer (unmatched FROM rows of a LEFT
    /// join are written then).
    fn process_joined(&mut self, message: &BorrowedMessage<'_>) -> Result<(), StreamError> {
        let setup = Arc::clone(&self.setup);
        let Some(
            join @ Join {
                right: JoinInput::Stream { window, .. },
                ..
            },
        ) = &setup.plan.join
        else {
            return Ok(());
        };
        let (Some(key), Some(payload)) = (message.key(), message.payload()) else {
            return Ok(());
        };
        let routed: Routed = match serde_json::from_slice(payload) {
            Ok(routed) => routed,
            Err(e) => {
                self.skip(message, &format!("repartition record: {e}"));
                return Ok(());
            }
        };
        let ts = message.timestamp().to_millis().unwrap_or(0);
        let key = String::from_utf8_lossy(key).into_owned();
        let side = routed.s.min(1);
        let task = self.join_tasks.entry(message.partition()).or_default();
        if task.stream_time.is_some_and(|st| window.is_late(ts, st)) {
            self.counters.late_records.inc();
            return Ok(());
        }
        task.observe(ts);
        let mut pairs: Vec<(Routed, i64, Routed, i64)> = Vec::new();
        let partners = task.partners(side, &key, ts, window);
        for id in &partners {
            let Some(other) = task.get(*id).cloned() else {
                continue;
            };
            if side == 0 {
                pairs.push((routed.clone(), ts, other.row, other.ts));
            } else {
                task.set_matched(*id);
                pairs.push((other.row, other.ts, routed.clone(), ts));
            }
        }
        let row = BufferedRow {
            matched: side == 0 && !partners.is_empty(),
            row: routed,
            key,
            ts,
        };
        task.insert(message.offset(), row, window.expires_after(side, ts));
        let expired = task.expire();
        for (left, left_ts, right, right_ts) in pairs {
            let ctx = joined_context(&left, left_ts, Some(&right));
            self.write_joined(
                message,
                &ctx,
                message.key().map(<[u8]>::to_vec).unwrap_or_default(),
                left_ts.max(right_ts),
            )?;
        }
        if join.kind == JoinKind::Left {
            for row in expired.iter().filter(|r| r.row.s == 0 && !r.matched) {
                let ctx = joined_context(&row.row, row.ts, None);
                self.write_joined(message, &ctx, row.key.clone().into_bytes(), row.ts)?;
            }
        }
        Ok(())
    }

    /// A record of the repartition topic: `[group values]` → `[aggregate arguments]`.
    fn process_grouped(&mut self, message: &BorrowedMessage<'_>) -> Result<(), StreamError> {
        let setup = Arc::clone(&self.setup);
        if let Some(Join {
            right: JoinInput::Stream { .. },
            ..
        }) = &setup.plan.join
        {
            return self.process_joined(message);
        }
        let Some(aggregation) = setup.plan.aggregation() else {
            return Ok(());
        };
        let (Some(key), Some(payload)) = (message.key(), message.payload()) else {
            return Ok(());
        };
        let args: Vec<Value> = match serde_json::from_slice(payload) {
            Ok(args) => args,
            Err(e) => {
                self.skip(message, &format!("repartition record: {e}"));
                return Ok(());
            }
        };
        let ts = message.timestamp().to_millis().unwrap_or(0);
        let partition = message.partition();
        let window = aggregation.window;
        let group: Arc<[u8]> = Arc::from(key);
        if let Some(session @ Window::Session { gap_ms, .. }) = window {
            self.process_session(partition, &group, &args, ts, &session, gap_ms)?;
            return self.expire(partition, &session);
        }
        let task = self.tasks.entry(partition).or_default();
        let stream_time = task.observe(ts);
        let windows = match &window {
            Some(w) => w.assign(ts),
            None => vec![(0, i64::MAX)],
        };
        let mut late = false;
        for (start, end) in windows {
            if window.as_ref().is_some_and(|w| w.is_closed(end, stream_time)) {
                late = true;
                continue;
            }
            let state_key: StateKey = (Arc::clone(&group), start);
            if !task.entries.contains_key(&state_key) {
                let groups: Vec<Value> = serde_json::from_slice(key).unwrap_or_default();
                let entry = StoredEntry {
                    groups,
                    accs: aggregation.calls.iter().map(|c| c.function.start()).collect(),
                    start,
                    end,
                    ts,
                };
                task.insert(state_key.clone(), entry);
            }
            if let Some(entry) = task.entries.get_mut(&state_key) {
                for (acc, arg) in entry.accs.iter_mut().zip(&args) {
                    if let Err(e) = acc.add(arg) {
                        // The row's value is unusable for this aggregate (e.g. SUM of text).
                        tracing::debug!(error = %e, "aggregate input skipped");
                    }
                }
                entry.ts = entry.ts.max(ts);
            }
            task.dirty.insert(state_key);
        }
        if late {
            self.counters.late_records.inc();
        }
        if let Some(window) = window {
            self.expire(partition, &window)?;
        }
        Ok(())
    }

    /// A record of a session-windowed aggregate: it joins the group's open
    /// sessions within the gap (merging them) or starts one.
    fn process_session(
        &mut self,
        partition: i32,
        group: &Arc<[u8]>,
        args: &[Value],
        ts: i64,
        window: &Window,
        gap_ms: u64,
    ) -> Result<(), StreamError> {
        let setup = Arc::clone(&self.setup);
        let Some(aggregation) = setup.plan.aggregation() else {
            return Ok(());
        };
        let task = self.tasks.entry(partition).or_default();
        let stream_time = task.observe(ts);
        let open: Vec<Session> = task
            .starts
            .get(group)
            .into_iter()
            .flatten()
            .filter_map(|start| task.entries.get(&(Arc::clone(group), *start)))
            .map(|e| Session {
                start: e.start,
                end: e.end,
            })
            .collect();
        let (merging, merged) = merge_sessions(&open, ts, gap_ms);
        if window.is_closed(merged.end, stream_time) {
            self.counters.late_records.inc();
            return Ok(());
        }
        let mut accs: Vec<_> = aggregation.calls.iter().map(|c| c.function.start()).collect();
        let mut groups = None;
        let mut latest = ts;
        let mut replaced = Vec::new();
        for i in merging {
            let key: StateKey = (Arc::clone(group), open[i].start);
            if let Some(old) = task.remove(&key) {
                for (acc, previous) in accs.iter_mut().zip(&old.accs) {
                    if let Err(e) = acc.merge(previous) {
                        tracing::debug!(error = %e, "session merge skipped an accumulator");
                    }
                }
                latest = latest.max(old.ts);
                groups = Some(old.groups.clone());
                replaced.push((key, old));
            }
        }
        for (acc, arg) in accs.iter_mut().zip(args) {
            if let Err(e) = acc.add(arg) {
                tracing::debug!(error = %e, "aggregate input skipped");
            }
        }
        let groups = match groups {
            Some(groups) => groups,
            None => serde_json::from_slice(group).unwrap_or_default(),
        };
        let key: StateKey = (Arc::clone(group), merged.start);
        task.insert(
            key.clone(),
            StoredEntry {
                groups,
                accs,
                start: merged.start,
                end: merged.end,
                ts: latest,
            },
        );
        task.dirty.insert(key.clone());
        // Sessions merged away: gone from the changelog, and under EMIT
        // CHANGES their earlier results are retracted with a tombstone.
        for (old_key, old) in replaced {
            if old_key != key
                && let Some(changelog) = &setup.changelog_topic
            {
                self.send(
                    changelog,
                    Some(partition),
                    Some(&state::encode_key(&old_key)),
                    None,
                    ts,
                )?;
            }
            if setup.plan.emit == Emit::Changes
                && setup.output_key.is_empty()
                && (old.start, old.end) != (merged.start, merged.end)
            {
                match setup
                    .output
                    .key(&default_key_fields(&setup.group_names, &old, true))
                {
                    Ok(retracted) => {
                        self.send(&setup.output_topic, None, retracted.as_deref(), None, ts)?;
                    }
                    Err(error) => {
                        // The result it would retract could not have been written either.
                        tracing::warn!(%error, "the key of a merged session does not fit the output schema");
                    }
                }
            }
        }
        Ok(())
    }

    /// Closes the windows of task `partition` that stream time has passed.
    fn expire(&mut self, partition: i32, window: &Window) -> Result<(), StreamError> {
        let setup = Arc::clone(&self.setup);
        let emit = setup.plan.emit;
        loop {
            let Some(task) = self.tasks.get_mut(&partition) else {
                return Ok(());
            };
            let Some(stream_time) = task.stream_time else {
                return Ok(());
            };
            let Some((end, key)) = task.by_end.first().cloned() else {
                return Ok(());
            };
            if !window.is_closed(end, stream_time) {
                return Ok(());
            }
            let was_dirty = task.dirty.contains(&key);
            let Some(entry) = task.remove(&key) else {
                return Ok(());
            };
            if emit == Emit::Final || was_dirty {
                self.emit(&entry)?;
            }
            if let Some(changelog) = &setup.changelog_topic {
                self.send(
                    changelog,
                    Some(partition),
                    Some(&state::encode_key(&key)),
                    None,
                    entry.ts,
                )?;
            }
        }
    }

    /// Writes one aggregate result.
    fn emit(&mut self, entry: &StoredEntry) -> Result<(), StreamError> {
        let setup = Arc::clone(&self.setup);
        let Some(aggregation) = setup.plan.aggregation() else {
            return Ok(());
        };
        let values: Vec<Value> = entry.accs.iter().map(tributary_sql::Accumulator::value).collect();
        let windowed = aggregation.window.is_some();
        let ctx = Context {
            rows: [None, None],
            key: &Value::Null,
            timestamp: entry.ts,
            partition: 0,
            offset: 0,
            groups: &entry.groups,
            aggregates: &values,
            window: windowed.then_some((entry.start, entry.end)),
        };
        if let Some(having) = &aggregation.having {
            match evaluate(having, &ctx) {
                Ok(v) if is_true(&v) => {}
                Ok(_) => return Ok(()),
                Err(e) => {
                    self.counters.bad_records.inc();
                    tracing::warn!(error = %e, "HAVING failed on a group; result skipped");
                    return Ok(());
                }
            }
        }
        let mut row = Map::with_capacity(aggregation.columns.len());
        for column in &aggregation.columns {
            match evaluate(&column.expr, &ctx) {
                Ok(v) => {
                    row.insert(column.name.clone(), v);
                }
                Err(e) => {
                    self.counters.bad_records.inc();
                    tracing::warn!(column = %column.name, error = %e, "an output column failed on a group; result skipped");
                    return Ok(());
                }
            }
        }
        let default_fields;
        let key_fields = if setup.output_key.is_empty() {
            default_fields = default_key_fields(&setup.group_names, entry, windowed);
            &default_fields
        } else {
            &row
        };
        let encoded = setup
            .output
            .key(key_fields)
            .and_then(|key| Ok((key, setup.output.value(&row)?)));
        let (key, out) = match encoded {
            Ok(encoded) => encoded,
            Err(error) => {
                self.counters.bad_records.inc();
                tracing::warn!(%error, "a result does not fit the output schema; skipped");
                return Ok(());
            }
        };
        self.send(&setup.output_topic, None, key.as_deref(), Some(&out), entry.ts)?;
        self.counters.records_out.inc();
        Ok(())
    }

    /// Writes state changes (and, for `EMIT CHANGES`, the changed results),
    /// then commits the consumed offsets: in the transaction under
    /// exactly-once, after the producer's flush otherwise.
    pub fn commit(&mut self, consumer: &BaseConsumer<GroupCallbacks>) -> Result<(), StreamError> {
        self.flush_state()?;
        if self.positions.is_empty() && !self.in_transaction {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (topic, partition, next) in self.positions.iter() {
            offsets
                .add_partition_offset(topic, partition, Offset::Offset(next))
                .map_err(|e| StreamError::Kafka(e.to_string()))?;
        }
        let timeout = Duration::from_mins(1);
        let started = Instant::now();
        if self.setup.exactly_once {
            self.begin()?;
            if offsets.count() > 0 {
                let metadata = consumer
                    .group_metadata()
                    .ok_or_else(|| StreamError::Kafka("the consumer has no group metadata".to_owned()))?;
                self.producer
                    .send_offsets_to_transaction(&offsets, &metadata, timeout)
                    .map_err(|e| StreamError::Kafka(format!("adding offsets to the transaction: {e}")))?;
            }
            self.producer
                .commit_transaction(timeout)
                .map_err(|e| StreamError::Kafka(format!("committing the transaction: {e}")))?;
            self.in_transaction = false;
        } else {
            self.producer
                .flush(timeout)
                .map_err(|e| StreamError::Kafka(format!("flushing the producer: {e}")))?;
            if offsets.count() > 0 {
                consumer
                    .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
                    .map_err(|e| StreamError::Kafka(format!("committing offsets: {e}")))?;
            }
        }
        if self.delivery.failed.load(Ordering::Relaxed) > 0 {
            let first = self
                .delivery
                .first_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_default();
            return Err(StreamError::Kafka(format!(
                "a record could not be delivered: {first}"
            )));
        }
        tracing::debug!(
            partitions = offsets.count(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "committed"
        );
        self.positions.clear();
        self.counters.commits.inc();
        Ok(())
    }

    /// Writes dirty entries to the changelog (and results under `EMIT CHANGES`).
    fn flush_state(&mut self) -> Result<(), StreamError> {
        let setup = Arc::clone(&self.setup);
        let Some(changelog) = &setup.changelog_topic else {
            return Ok(());
        };
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        for partition in partitions {
            let Some(task) = self.tasks.get_mut(&partition) else {
                continue;
            };
            let dirty: Vec<StateKey> = task.dirty.drain().collect();
            let entries: Vec<(StateKey, StoredEntry)> = dirty
                .into_iter()
                .filter_map(|k| task.entries.get(&k).cloned().map(|e| (k, e)))
                .collect();
            let stream_time = task.stream_time.filter(|_| task.stream_time_dirty);
            task.stream_time_dirty = false;
            for (key, entry) in entries {
                if setup.plan.emit == Emit::Changes {
                    self.emit(&entry)?;
                }
                let value = serde_json::to_vec(&entry).unwrap_or_default();
                self.send(
                    changelog,
                    Some(partition),
                    Some(&state::encode_key(&key)),
                    Some(&value),
                    entry.ts,
                )?;
            }
            if let Some(time) = stream_time {
                let value = state::encode_stream_time(time);
                self.send(
                    changelog,
                    Some(partition),
                    Some(state::STREAM_TIME_KEY),
                    Some(&value),
                    time,
                )?;
            }
        }
        let partitions: Vec<i32> = self.join_tasks.keys().copied().collect();
        for partition in partitions {
            let changes = self
                .join_tasks
                .get_mut(&partition)
                .map(JoinTask::drain_changes)
                .unwrap_or_default();
            for (key, value) in changes {
                self.send(changelog, Some(partition), Some(&key), value.as_deref(), 0)?;
            }
        }
        Ok(())
    }

    /// Partitions leave this worker (after [`Engine::commit`]): forget their state.
    pub fn revoke(&mut self, partitions: &[(String, i32)]) {
        for (topic, partition) in partitions {
            self.positions.remove(topic, *partition);
            if self.setup.repartition_topic.as_deref() == Some(topic.as_str()) {
                self.tasks.remove(partition);
                self.join_tasks.remove(partition);
            }
        }
    }

    /// Partitions arrive: restore the state of repartition partitions from the changelog.
    pub fn assign(&mut self, partitions: &[(String, i32)]) -> Result<(), StreamError> {
        let (Some(repartition), Some(changelog)) =
            (&self.setup.repartition_topic, &self.setup.changelog_topic)
        else {
            return Ok(());
        };
        for (topic, partition) in partitions {
            if topic != repartition {
                continue;
            }
            let started = Instant::now();
            if let Some(Join {
                right: JoinInput::Stream { window, .. },
                ..
            }) = &self.setup.plan.join
            {
                let mut task = JoinTask::default();
                let mut bad = 0u64;
                let records =
                    kafka::read_partition(&self.setup.kafka, changelog, *partition, |key, value| {
                        if task.apply_changelog(key, value, window).is_err() {
                            bad += 1;
                        }
                    })?;
                if bad > 0 {
                    return Err(StreamError::State(format!(
                        "{changelog}[{partition}]: {bad} records are not join state this worker version understands"
                    )));
                }
                task.restored();
                tracing::info!(
                    partition,
                    records,
                    rows = task.len(),
                    stream_time = ?task.stream_time,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "join state restored from the changelog"
                );
                self.join_tasks.insert(*partition, task);
                continue;
            }
            let mut task = Task::default();
            let mut bad = 0u64;
            let records = kafka::read_partition(&self.setup.kafka, changelog, *partition, |key, value| {
                if task.apply_changelog(key, value).is_err() {
                    bad += 1;
                }
            })?;
            if bad > 0 {
                return Err(StreamError::State(format!(
                    "{changelog}[{partition}]: {bad} records are not state this worker version understands"
                )));
            }
            tracing::info!(
                partition,
                records,
                groups = task.entries.len(),
                stream_time = ?task.stream_time,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "state restored from the changelog"
            );
            self.tasks.insert(*partition, task);
        }
        Ok(())
    }

    /// Exactly-once: registers the transactional id, fencing an earlier
    /// instance of this worker and aborting its open transaction.
    pub fn init_transactions(&self) -> Result<(), StreamError> {
        if self.setup.exactly_once {
            self.producer
                .init_transactions(Duration::from_mins(1))
                .map_err(|e| StreamError::Kafka(format!("initialising transactions: {e}")))?;
        }
        Ok(())
    }
}

/// Decodes a key or value; plain JSON without a detour through async.
pub(crate) fn decode(
    runtime: &tokio::runtime::Handle,
    deserializer: &Deserializer,
    format: Format,
    bytes: Option<&[u8]>,
) -> Result<Option<Value>, String> {
    if format == Format::Json {
        return match bytes {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(bytes)
                .map(Some)
                .map_err(|e| format!("not JSON: {e}")),
        };
    }
    runtime
        .block_on(deserializer.decode(bytes))
        .map_err(|e| e.to_string())
}

/// Event time from a value field: epoch milliseconds or RFC 3339 text.
/// `Ok(None)` when the field is missing or null (the record timestamp is used).
fn event_time(row: &dyn Row, path: &[String]) -> Result<Option<i64>, String> {
    match row.get(path) {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                #[allow(clippy::cast_possible_truncation)] // epoch milliseconds fit
                n.as_f64().map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| format!("event time {} is not a number of milliseconds", path.join("."))),
        Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| Some(t.as_millisecond()))
            .map_err(|e| format!("event time {} = {s:?} is not RFC 3339: {e}", path.join("."))),
        other => Err(format!(
            "event time {} is {other}, expected milliseconds or RFC 3339 text",
            path.join(".")
        )),
    }
}

/// The fields of an aggregate result's default key: the group values by
/// name, and the window.
fn default_key_fields(group_names: &[String], entry: &StoredEntry, windowed: bool) -> Map<String, Value> {
    let mut key = Map::new();
    for (name, value) in group_names.iter().zip(&entry.groups) {
        key.insert(name.clone(), value.clone());
    }
    if windowed {
        key.insert("window_start".to_owned(), Value::from(entry.start));
        key.insert("window_end".to_owned(), Value::from(entry.end));
    }
    key
}

/// Whether any expression of `plan` reads `ROWKEY`.
pub(crate) fn reads_row_key(plan: &Plan) -> bool {
    let exprs = super::prune::expressions(plan);
    let mut found = false;
    for expr in exprs {
        expr.walk(&mut |e| found |= matches!(e, Expr::Meta(tributary_sql::Meta::RowKey)));
    }
    found
}

/// Names of GROUP BY values for the default key: the output column showing
/// the group, else `group<n>`.
pub(crate) fn group_names(plan: &Plan) -> Vec<String> {
    let Some(aggregation) = plan.aggregation() else {
        return Vec::new();
    };
    (0..aggregation.group_by.len())
        .map(|i| {
            aggregation
                .columns
                .iter()
                .find(|c| c.expr == Expr::Group(i))
                .map_or_else(|| format!("group{i}"), |c| c.name.clone())
        })
        .collect()
}

/// The context of a joined row: the FROM row's pseudo columns, both rows.
fn joined_context<'a>(left: &'a Routed, left_ts: i64, right: Option<&'a Routed>) -> Context<'a> {
    Context {
        rows: [Some(&left.v), right.map(|r| &r.v as &dyn Row)],
        key: &left.k,
        timestamp: left_ts,
        partition: left.p,
        offset: left.o,
        groups: &[],
        aggregates: &[],
        window: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn row_keys_are_decoded_only_for_queries_reading_them() {
        let plan =
            |sql: &str| tributary_sql::parse_and_plan(sql, &tributary_sql::PlanOptions::default()).unwrap();
        assert!(!reads_row_key(&plan(
            "SELECT after.a AS a FROM t WHERE after.b > 1"
        )));
        assert!(reads_row_key(&plan("SELECT ROWKEY AS k FROM t")));
        assert!(reads_row_key(&plan(
            "SELECT after.a AS a FROM t WHERE ROWKEY = 'x'"
        )));
        assert!(reads_row_key(&plan(
            "SELECT COUNT(*) AS n FROM t GROUP BY ROWKEY"
        )));
    }

    #[test]
    fn event_time_reads_milliseconds_or_rfc3339_and_falls_back_when_missing() {
        let path = vec!["after".to_owned(), "ts".to_owned()];
        assert_eq!(event_time(&json!({"after": {"ts": 1500}}), &path), Ok(Some(1500)));
        assert_eq!(
            event_time(&json!({"after": {"ts": "1970-01-01T00:00:02Z"}}), &path),
            Ok(Some(2000))
        );
        assert_eq!(event_time(&json!({"after": null}), &path), Ok(None));
        assert!(event_time(&json!({"after": {"ts": "yesterday"}}), &path).is_err());
    }
}
