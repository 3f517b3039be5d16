//! The plan of a query: its inputs, filter, projection or aggregation, and
//! how results are emitted — checked, resolved and ready to execute.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use sqlparser::ast::{self, GroupByExpr, SelectItem, SetExpr, Statement, TableFactor};
use sqlparser::tokenizer::Location;

use crate::agg::AggregateFunction;
use crate::compile::{Compiler, InputName, location_of, span_start};
use crate::error::SqlError;
use crate::expr::{Expr, Meta};
use crate::syntax::Parsed;
use crate::window::Window;

/// What the query needs from outside its text.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Per input topic, the dotted path of the value field holding event
    /// time (`spec.inputs[].timestampField`); absent topics use the Kafka
    /// record timestamp.
    pub timestamp_fields: BTreeMap<String, String>,
    /// Input topics read as tables (`spec.inputs[].kind: Table`): keyed,
    /// compacted topics whose latest value per key is the current row.
    pub tables: BTreeSet<String>,
}

/// How results are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Every input change produces its updated result row (a changelog).
    Changes,
    /// One row per window, when the window closes (windowed aggregates only).
    Final,
}

/// How an input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Every record is an event.
    Stream,
    /// The latest record per key is the current row (a compacted topic).
    Table,
}

/// An input topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Kafka topic.
    pub topic: String,
    /// Alias in the query, if any.
    pub alias: Option<String>,
    /// Stream or table.
    pub kind: InputKind,
    /// Path of the event-time field; `None`: the record timestamp.
    pub timestamp_field: Option<Vec<String>>,
}

/// Join kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Rows with a match only.
    Inner,
    /// Every row of the FROM stream; the joined columns are NULL without a match.
    Left,
}

/// A stream-stream join's time bound: a joined row matches a FROM row when
/// its event time is at most `before_ms` earlier and at most `after_ms`
/// later (`WITHIN d` sets both to `d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindow {
    /// How much earlier than the FROM row the joined row may be.
    pub before_ms: u64,
    /// How much later than the FROM row the joined row may be.
    pub after_ms: u64,
    /// How far behind stream time a record may arrive and still join.
    pub grace_ms: u64,
}

impl JoinWindow {
    /// Whether rows at `left` (FROM) and `right` (joined) event times match.
    pub fn matches(&self, left: i64, right: i64) -> bool {
        right >= left.saturating_sub(ms(self.before_ms)) && right <= left.saturating_add(ms(self.after_ms))
    }

    /// Whether a record at `ts` arrives too late: more than the grace period
    /// behind `stream_time` (the largest event time its partition has seen).
    pub fn is_late(&self, ts: i64, stream_time: i64) -> bool {
        ts.saturating_add(ms(self.grace_ms)) < stream_time
    }

    /// The stream time beyond which a buffered row of input `side` (0: FROM,
    /// 1: joined) at `ts` can match no record that is not late: it is then
    /// dropped from the buffer, and an unmatched FROM row of a LEFT join is
    /// written with NULLs. (A later record that is not late is at most
    /// `grace` behind stream time; the row reaches `after` forward, or
    /// `before` for a joined row.)
    pub fn expires_after(&self, side: usize, ts: i64) -> i64 {
        let reach = if side == 0 { self.after_ms } else { self.before_ms };
        ts.saturating_add(ms(reach)).saturating_add(ms(self.grace_ms))
    }

    /// The bound as explain prints it.
    pub fn describe(&self) -> String {
        format!(
            "$1 event time within [$0 - {} ms, $0 + {} ms], grace {} ms",
            self.before_ms, self.after_ms, self.grace_ms
        )
    }
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// What the FROM stream is joined with.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinInput {
    /// A table (a keyed, compacted topic, `spec.inputs[].kind: Table`):
    /// the latest row whose key equals the FROM row's join key. `key_path`
    /// is empty when the whole (decoded) key is compared, else the path of
    /// the compared field in a JSON key (`c.ROWKEY.id`).
    Table {
        /// Path into the table's key.
        key_path: Vec<String>,
    },
    /// Another stream: its rows with an equal join key within a time bound.
    Stream {
        /// The joined row's join key (over input 1).
        right_key: Expr,
        /// The time bound.
        window: JoinWindow,
    },
}

/// A join of the FROM stream (input 0) with input 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    /// Inner or left.
    pub kind: JoinKind,
    /// The FROM row's join key (over input 0).
    pub left_key: Expr,
    /// The joined input and how its rows match.
    pub right: JoinInput,
}

/// A named output column.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputColumn {
    /// Column name in the output record.
    pub name: String,
    /// Its value.
    pub expr: Expr,
}

/// One aggregate of an aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateCall {
    /// Function.
    pub function: AggregateFunction,
    /// Argument per row (`None`: `COUNT(*)`).
    pub arg: Option<Expr>,
}

/// `GROUP BY` with aggregates, optionally over windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    /// Grouping expressions over the input row.
    pub group_by: Vec<Expr>,
    /// Aggregates, by slot.
    pub calls: Vec<AggregateCall>,
    /// The window, if any.
    pub window: Option<Window>,
    /// `HAVING` over groups and aggregates.
    pub having: Option<Expr>,
    /// Output columns over groups ([`Expr::Group`]), aggregates
    /// ([`Expr::Aggregate`]) and `WINDOWSTART`/`WINDOWEND`.
    pub columns: Vec<OutputColumn>,
}

/// What a query produces per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    /// `SELECT *`: the input value as it is.
    Wildcard,
    /// Computed columns.
    Columns(Vec<OutputColumn>),
    /// Grouped aggregates.
    Aggregate(Aggregation),
}

/// A checked query.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Inputs: the FROM stream, then the joined input.
    pub sources: Vec<Source>,
    /// The join, when there are two inputs.
    pub join: Option<Join>,
    /// `WHERE`, over input rows.
    pub filter: Option<Expr>,
    /// The output.
    pub projection: Projection,
    /// When results are emitted.
    pub emit: Emit,
    output_topic: Option<String>,
}

impl Plan {
    /// Topics the query reads, in order.
    pub fn input_topics(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.topic.clone()).collect()
    }

    /// The topic of `INSERT INTO <topic>`, if the query names one.
    pub fn output_topic(&self) -> Option<&str> {
        self.output_topic.as_deref()
    }

    /// The aggregation, for aggregate queries.
    pub fn aggregation(&self) -> Option<&Aggregation> {
        match &self.projection {
            Projection::Aggregate(a) => Some(a),
            _ => None,
        }
    }

    /// Whether rows go through the internal repartition topic to meet on one
    /// partition, with state in the changelog: aggregates (by group) and
    /// stream-stream joins (by join key).
    pub fn repartitions(&self) -> bool {
        matches!(self.projection, Projection::Aggregate(_))
            || matches!(
                self.join,
                Some(Join {
                    right: JoinInput::Stream { .. },
                    ..
                })
            )
    }

    /// Output column names (empty for `SELECT *`).
    pub fn column_names(&self) -> Vec<&str> {
        match &self.projection {
            Projection::Wildcard => Vec::new(),
            Projection::Columns(c) => c.iter().map(|c| c.name.as_str()).collect(),
            Projection::Aggregate(a) => a.columns.iter().map(|c| c.name.as_str()).collect(),
        }
    }

    /// A human-readable description of how the query runs, one step a line.
    /// Columns print as `$<input>.<path>`.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for (i, source) in self.sources.iter().enumerate() {
            let time = source.timestamp_field.as_ref().map_or_else(
                || "the record timestamp".to_owned(),
                |p| format!("field {}", p.join(".")),
            );
            let kind = match source.kind {
                InputKind::Stream => "stream",
                InputKind::Table => "table (latest row per key)",
            };
            let _ = writeln!(
                out,
                "input ${i}: topic {} as {kind}, event time from {time}",
                source.topic
            );
        }
        if let Some(join) = &self.join {
            explain_join(join, &mut out);
        }
        if let Some(filter) = &self.filter {
            let _ = writeln!(out, "filter: {filter}");
        }
        match &self.projection {
            Projection::Wildcard => {
                let _ = writeln!(out, "project: * (the input value as it is)");
            }
            Projection::Columns(columns) => {
                let _ = writeln!(out, "project: {}", describe_columns(columns));
            }
            Projection::Aggregate(a) => {
                let groups: Vec<String> = a.group_by.iter().map(ToString::to_string).collect();
                if groups.is_empty() {
                    let _ = writeln!(out, "aggregate over all rows (one group)");
                } else {
                    let _ = writeln!(
                        out,
                        "repartition by [{}] through an internal topic (each group on one partition)",
                        groups.join(", ")
                    );
                }
                for (i, call) in a.calls.iter().enumerate() {
                    let arg = call
                        .arg
                        .as_ref()
                        .map_or_else(|| "*".to_owned(), ToString::to_string);
                    let _ = writeln!(out, "aggregate $agg{i} := {}({arg})", call.function.name());
                }
                match &a.window {
                    Some(window) => {
                        let _ = writeln!(
                            out,
                            "window: {} over event time; per-partition stream time; records for closed windows are dropped and counted",
                            window.describe()
                        );
                    }
                    None => {
                        let _ = writeln!(out, "window: none (running totals)");
                    }
                }
                let _ = writeln!(
                    out,
                    "state: per group{}, in memory, backed by a changelog topic",
                    if a.window.is_some() { " and window" } else { "" }
                );
                if let Some(having) = &a.having {
                    let _ = writeln!(out, "having: {having}");
                }
                let _ = writeln!(out, "project: {}", describe_columns(&a.columns));
            }
        }
        let emit = match self.emit {
            Emit::Changes => "CHANGES (a row per input change)",
            Emit::Final => "FINAL (a row per window once stream time passes its end + grace)",
        };
        let _ = writeln!(out, "emit: {emit}");
        match &self.output_topic {
            Some(topic) => {
                let _ = writeln!(out, "output: topic {topic}");
            }
            None => {
                let _ = writeln!(out, "output: spec.output.topic");
            }
        }
        out
    }
}

/// The join's lines of [`Plan::explain`].
fn explain_join(join: &Join, out: &mut String) {
    let kind = match join.kind {
        JoinKind::Inner => "inner",
        JoinKind::Left => "left",
    };
    match &join.right {
        JoinInput::Table { key_path } => {
            let key = if key_path.is_empty() {
                "$1 key".to_owned()
            } else {
                format!("$1 key.{}", key_path.join("."))
            };
            let _ = writeln!(
                out,
                "join ({kind}, stream-table): {} = {key}; every worker reads the whole table (latest row per key, tombstones delete), no repartition",
                join.left_key
            );
        }
        JoinInput::Stream { right_key, window } => {
            let _ = writeln!(
                out,
                "repartition both inputs by the join key through an internal topic (each key on one partition)"
            );
            let _ = writeln!(
                out,
                "join ({kind}, stream-stream): {} = {right_key}, {}; records further behind stream time than the grace are dropped and counted",
                join.left_key,
                window.describe()
            );
            let unmatched = if join.kind == JoinKind::Left {
                "; unmatched $0 rows are written with NULLs once they can no longer match"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "state: rows of both inputs buffered per join key until they can no longer match, in memory, backed by a changelog topic{unmatched}"
            );
        }
    }
}

fn describe_columns(columns: &[OutputColumn]) -> String {
    columns
        .iter()
        .map(|c| format!("{} := {}", c.name, c.expr))
        .collect::<Vec<_>>()
        .join(", ")
}

const START: Location = Location { line: 1, column: 1 };

/// Plans a parsed statement.
#[allow(clippy::too_many_lines)] // the clauses in the order SQL evaluates them, read top to bottom
pub(crate) fn plan(parsed: Parsed, options: &PlanOptions) -> Result<Plan, SqlError> {
    let Parsed {
        statement,
        window,
        emit,
        within,
    } = parsed;
    let (query, output_topic) = match statement {
        Statement::Query(query) => (query, None),
        Statement::Insert(insert) => {
            let at = span_start(insert.insert_token.0.span, START);
            let ast::TableObject::TableName(name) = &insert.table else {
                return Err(SqlError::at(at, "INSERT INTO needs a topic name"));
            };
            if !insert.columns.is_empty() || insert.overwrite || insert.or.is_some() || insert.on.is_some() {
                return Err(SqlError::at(
                    at,
                    "only INSERT INTO <topic> SELECT … is supported (no column list, OVERWRITE or ON CONFLICT)",
                ));
            }
            let Some(source) = insert.source else {
                return Err(SqlError::at(at, "INSERT INTO <topic> needs a SELECT"));
            };
            (source, Some(topic_name(name)))
        }
        other => {
            let at = location_of(&other, START);
            return Err(SqlError::at(
                at,
                "a Stream's query is SELECT … FROM <topic> or INSERT INTO <topic> SELECT …",
            ));
        }
    };
    let ast::Query {
        with,
        body,
        order_by,
        limit_clause,
        fetch,
        ..
    } = *query;
    if let Some(with) = &with {
        return Err(SqlError::at(location_of(with, START), "WITH is not supported"));
    }
    if let Some(order_by) = &order_by {
        return Err(SqlError::at(
            location_of(order_by, START),
            "ORDER BY is not supported: a stream is unbounded",
        ));
    }
    if limit_clause.is_some() || fetch.is_some() {
        return Err(SqlError::new(
            1,
            1,
            "LIMIT and FETCH are not supported: a stream is unbounded",
        ));
    }
    let select = match *body {
        SetExpr::Select(select) => select,
        other => {
            return Err(SqlError::at(
                location_of(&other, START),
                "expected one SELECT (UNION, VALUES and subqueries are not supported)",
            ));
        }
    };
    let at = span_start(select.select_token.0.span, START);
    if select.distinct.is_some() {
        return Err(SqlError::at(at, "SELECT DISTINCT is not supported; use GROUP BY"));
    }
    if select.top.is_some()
        || select.into.is_some()
        || !select.lateral_views.is_empty()
        || select.prewhere.is_some()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || !select.named_window.is_empty()
        || select.qualify.is_some()
        || !select.connect_by.is_empty()
    {
        return Err(SqlError::at(
            at,
            "allowed clauses: SELECT … FROM … [WINDOW …] [WHERE …] [GROUP BY …] [HAVING …] [EMIT CHANGES|FINAL]",
        ));
    }
    let from = match select.from.as_slice() {
        [one] => one,
        [] => return Err(SqlError::at(at, "expected FROM <topic>")),
        [_, second, ..] => {
            return Err(SqlError::at(
                location_of(&second.relation, at),
                "one input in FROM; combine topics with JOIN … ON",
            ));
        }
    };
    let (topic, alias) = table(&from.relation, at)?;
    let mut inputs = vec![input_name(&topic, alias.as_ref())];
    let mut sources = vec![source(topic, alias, options)];
    if sources[0].kind == InputKind::Table {
        let topic = &sources[0].topic;
        let message = if from.joins.is_empty() {
            format!(
                "{topic} is declared a table (spec.inputs[].kind: Table) but FROM reads a stream; join the table to a stream: FROM <stream> JOIN {topic} …"
            )
        } else {
            format!(
                "{topic} is declared a table (spec.inputs[].kind: Table): table-table joins are not supported; FROM takes a stream, JOIN the table"
            )
        };
        return Err(SqlError::at(location_of(&from.relation, at), message));
    }
    let join = match from.joins.as_slice() {
        [] => {
            if let Some((_, location)) = within {
                return Err(SqlError::at(
                    location,
                    "WITHIN bounds a stream-stream JOIN; this query has no JOIN",
                ));
            }
            None
        }
        [one] => {
            let (topic, alias) = table(&one.relation, at)?;
            if topic == sources[0].topic {
                return Err(SqlError::at(
                    location_of(&one.relation, at),
                    format!("{topic} is joined with itself; self-joins are not supported"),
                ));
            }
            inputs.push(input_name(&topic, alias.as_ref()));
            sources.push(source(topic, alias, options));
            Some(plan_join(one, &inputs, &sources, within, at)?)
        }
        [_, second, ..] => {
            return Err(SqlError::at(
                location_of(&second.relation, at),
                "one JOIN per query is supported",
            ));
        }
    };

    let filter = select
        .selection
        .as_ref()
        .map(|e| {
            Compiler {
                inputs: &inputs,
                aggregates: None,
                clause: "WHERE",
                fallback: at,
            }
            .compile(e)
        })
        .transpose()?;
    if let (Some(filter), Some(expr)) = (&filter, &select.selection) {
        reject_window_meta(filter, expr, at, "WHERE")?;
    }

    let group_by = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs.clone(),
        GroupByExpr::Expressions(..) | GroupByExpr::All(_) => {
            return Err(SqlError::at(
                at,
                "only GROUP BY <expressions> is supported (no ALL, ROLLUP, CUBE)",
            ));
        }
    };
    let mut calls = Vec::new();
    let mut items = Vec::new();
    let mut wildcard = None;
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => items.push((None, e)),
            SelectItem::ExprWithAlias { expr, alias } => items.push((Some(alias.value.clone()), expr)),
            SelectItem::Wildcard(options) => {
                if options.opt_exclude.is_some()
                    || options.opt_except.is_some()
                    || options.opt_rename.is_some()
                    || options.opt_replace.is_some()
                    || options.opt_ilike.is_some()
                {
                    return Err(SqlError::at(at, "SELECT * takes no options"));
                }
                wildcard = Some(at);
            }
            other => {
                return Err(SqlError::at(
                    location_of(other, at),
                    format!("`{other}` is not supported in SELECT; use * or expressions"),
                ));
            }
        }
    }
    let mut selected = Vec::with_capacity(items.len());
    for (alias, expr) in &items {
        let mut select_compiler = Compiler {
            inputs: &inputs,
            aggregates: Some(&mut calls),
            clause: "SELECT",
            fallback: at,
        };
        selected.push((alias.clone(), *expr, select_compiler.compile(expr)?));
    }
    let having = select
        .having
        .as_ref()
        .map(|e| {
            let mut having_compiler = Compiler {
                inputs: &inputs,
                aggregates: Some(&mut calls),
                clause: "HAVING",
                fallback: at,
            };
            having_compiler.compile(e).map(|c| (e, c))
        })
        .transpose()?;
    let aggregate = !group_by.is_empty() || !calls.is_empty() || having.is_some();
    let emit_mode = emit.map(|(e, _)| e);

    if !aggregate {
        if let Some((_, location)) = window {
            return Err(SqlError::at(
                location,
                "WINDOW needs GROUP BY with aggregates (COUNT, SUM, AVG, MIN, MAX)",
            ));
        }
        if let Some((Emit::Final, location)) = emit {
            return Err(SqlError::at(
                location,
                "EMIT FINAL needs a windowed aggregate; filters and projections EMIT CHANGES",
            ));
        }
        for (_, expr, c) in &selected {
            reject_window_meta(c, expr, at, "SELECT without a window")?;
        }
        let projection = match (wildcard, selected.is_empty()) {
            (Some(location), true) if join.is_some() => {
                return Err(SqlError::at(
                    location,
                    "SELECT * over a join: name the columns of both inputs (o.after.id AS order_id, c.name, …)",
                ));
            }
            (Some(_), true) => Projection::Wildcard,
            (Some(location), false) => {
                return Err(SqlError::at(
                    location,
                    "SELECT * cannot be combined with other columns",
                ));
            }
            (None, _) => Projection::Columns(name_columns(selected, at)?),
        };
        return Ok(Plan {
            sources,
            join,
            filter,
            projection,
            emit: Emit::Changes,
            output_topic,
        });
    }

    if let Some(location) = wildcard {
        return Err(SqlError::at(
            location,
            "SELECT * is not allowed with GROUP BY; name the columns",
        ));
    }
    if let Some(Join {
        right: JoinInput::Stream { .. },
        ..
    }) = &join
    {
        return Err(SqlError::at(
            location_of(&from.joins[0].relation, at),
            "aggregates (GROUP BY, COUNT, …) over a stream-stream join are not supported yet; write the join into a topic and aggregate that in a second Stream",
        ));
    }
    if let (None, Some((Emit::Final, location))) = (&window, &emit) {
        return Err(SqlError::at(
            *location,
            "EMIT FINAL needs a WINDOW (without one, a group never closes)",
        ));
    }
    let mut groups = Vec::with_capacity(group_by.len());
    for expr in &group_by {
        let group = Compiler {
            inputs: &inputs,
            aggregates: None,
            clause: "GROUP BY",
            fallback: at,
        }
        .compile(expr)?;
        reject_window_meta(&group, expr, at, "GROUP BY")?;
        groups.push(group);
    }
    let window = window.map(|(w, _)| w);
    let mut columns = Vec::with_capacity(selected.len());
    for (alias, expr, c) in selected {
        let rewritten = over_groups(c, &groups);
        check_grouped(&rewritten, expr, at, window.is_some())?;
        columns.push((alias, expr, rewritten));
    }
    let having = match having {
        Some((expr, c)) => {
            let rewritten = over_groups(c, &groups);
            check_grouped(&rewritten, expr, at, window.is_some())?;
            Some(rewritten)
        }
        None => None,
    };
    Ok(Plan {
        sources,
        join,
        filter,
        projection: Projection::Aggregate(Aggregation {
            group_by: groups,
            calls,
            window,
            having,
            columns: name_columns(columns, at)?,
        }),
        emit: emit_mode.unwrap_or(Emit::Changes),
        output_topic,
    })
}

/// Topic name of `a.b.c` (Debezium's `<prefix>.<schema>.<table>`): the parts joined by dots.
fn topic_name(name: &ast::ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ast::ObjectNamePart::Identifier(ident) => ident.value.clone(),
            function @ ast::ObjectNamePart::Function(_) => function.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn table(factor: &TableFactor, at: Location) -> Result<(String, Option<String>), SqlError> {
    match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            with_hints,
            version: None,
            partitions,
            ..
        } if with_hints.is_empty() && partitions.is_empty() => {
            if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                return Err(SqlError::at(
                    location_of(factor, at),
                    "column lists on an alias are not supported",
                ));
            }
            Ok((topic_name(name), alias.as_ref().map(|a| a.name.value.clone())))
        }
        other => Err(SqlError::at(
            location_of(other, at),
            "FROM takes a topic name (quote names with '-' as \"my-topic\"); subqueries and table functions are not supported",
        )),
    }
}

/// The names an input answers to in the query: its alias, then its topic.
fn input_name(topic: &str, alias: Option<&String>) -> InputName {
    let mut names = Vec::new();
    if let Some(alias) = alias {
        names.push(alias.clone());
    }
    names.push(topic.to_owned());
    InputName { names }
}

fn source(topic: String, alias: Option<String>, options: &PlanOptions) -> Source {
    Source {
        timestamp_field: options
            .timestamp_fields
            .get(&topic)
            .map(|p| p.split('.').map(str::to_owned).collect()),
        kind: if options.tables.contains(&topic) {
            InputKind::Table
        } else {
            InputKind::Stream
        },
        topic,
        alias,
    }
}

/// Checks a JOIN (its kind, its ON equality, WITHIN for streams) and
/// orients its key expressions: `left_key` over the FROM input.
fn plan_join(
    join: &ast::Join,
    inputs: &[InputName],
    sources: &[Source],
    within: Option<(JoinWindow, Location)>,
    at: Location,
) -> Result<Join, SqlError> {
    use ast::{JoinConstraint, JoinOperator};
    let relation = location_of(&join.relation, at);
    let joined = &sources[1];
    let (kind, constraint) = match &join.join_operator {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, c),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, c),
        JoinOperator::Right(_) | JoinOperator::RightOuter(_) | JoinOperator::FullOuter(_) => {
            return Err(SqlError::at(
                relation,
                "RIGHT and FULL OUTER joins are not supported: [INNER] JOIN or LEFT [OUTER] JOIN, with the stream whose every row counts in FROM",
            ));
        }
        _ => {
            return Err(SqlError::at(
                relation,
                "only [INNER] JOIN and LEFT [OUTER] JOIN … ON <equality> are supported",
            ));
        }
    };
    let JoinConstraint::On(on) = constraint else {
        return Err(SqlError::at(
            relation,
            "a join needs ON <FROM input expression> = <joined input expression> (USING and NATURAL are not supported)",
        ));
    };
    let mut on = on;
    while let ast::Expr::Nested(inner) = on {
        on = inner;
    }
    let ast::Expr::BinaryOp {
        left,
        op: ast::BinaryOperator::Eq,
        right,
    } = on
    else {
        return Err(SqlError::at(
            location_of(on, relation),
            "ON takes one equality, <FROM input expression> = <joined input expression>; other conditions (<, >, AND, OR) belong in WHERE",
        ));
    };
    let (from_name, joined_name) = (display_name(&inputs[0]), display_name(&inputs[1]));
    let (left_key, right, right_node) = join_sides(left, right, inputs, joined.kind, relation)?;
    let right = match (joined.kind, right) {
        (InputKind::Table, Side::TableKey(key_path)) => {
            if let Some((_, location)) = within {
                return Err(SqlError::at(
                    location,
                    format!(
                        "WITHIN bounds a stream-stream join; {} is a table (its latest row per key joins, whatever its time)",
                        joined.topic
                    ),
                ));
            }
            JoinInput::Table { key_path }
        }
        (InputKind::Table, _) => {
            return Err(SqlError::at(
                location_of(right_node, relation),
                format!(
                    "{} is a table: a stream-table join looks rows up by the table's key; write ON <{from_name} expression> = {joined_name}.ROWKEY (or {joined_name}.ROWKEY.<field> for a field of a JSON key)",
                    joined.topic
                ),
            ));
        }
        (InputKind::Stream, Side::Joined(right_key)) => {
            let Some((window, _)) = within else {
                return Err(SqlError::at(
                    relation,
                    format!(
                        "a stream-stream join needs a time bound: add WITHIN <n> <unit> [GRACE PERIOD <n> <unit>] before ON, e.g. JOIN {} WITHIN 5 MINUTES ON …; for a table set spec.inputs[].kind: Table",
                        joined.topic
                    ),
                ));
            };
            JoinInput::Stream { right_key, window }
        }
        (InputKind::Stream, _) => {
            return Err(SqlError::at(
                relation,
                format!("ON must compare an expression of {from_name} with one of {joined_name}"),
            ));
        }
    };
    Ok(Join {
        kind,
        left_key,
        right,
    })
}

/// Compiles the two sides of ON and orients them: the FROM input's key
/// expression, the joined input's side and the AST node of the latter.
fn join_sides<'a>(
    left: &'a ast::Expr,
    right: &'a ast::Expr,
    inputs: &[InputName],
    joined_kind: InputKind,
    relation: Location,
) -> Result<(Expr, Side, &'a ast::Expr), SqlError> {
    let (from_name, joined_name) = (display_name(&inputs[0]), display_name(&inputs[1]));
    let mut sides = Vec::with_capacity(2);
    for side in [left, right] {
        if let Some(path) = table_key_path(side, &inputs[1]) {
            if joined_kind == InputKind::Stream {
                return Err(SqlError::at(
                    location_of(side, relation),
                    format!(
                        "{joined_name} is a stream: {joined_name}.ROWKEY looks a table row up by key; declare the topic a table (spec.inputs[].kind: Table), or join the two streams on a value field WITHIN a time bound"
                    ),
                ));
            }
            sides.push((side, Side::TableKey(path)));
            continue;
        }
        let expr = Compiler {
            inputs,
            aggregates: None,
            clause: "ON",
            fallback: relation,
        }
        .compile(side)?;
        reject_window_meta(&expr, side, relation, "ON")?;
        let mut reads = [false, false];
        expr.walk(&mut |e| match e {
            Expr::Column(c) => reads[c.input] = true,
            Expr::Meta(_) => reads[0] = true,
            _ => {}
        });
        let side_kind = match reads {
            [true, false] => Side::From(expr),
            [false, true] => Side::Joined(expr),
            [true, true] => {
                return Err(SqlError::at(
                    location_of(side, relation),
                    format!(
                        "each side of ON reads one input; this one reads both {from_name} and {joined_name}"
                    ),
                ));
            }
            [false, false] => {
                return Err(SqlError::at(
                    location_of(side, relation),
                    "ON compares the two inputs' keys; a constant condition belongs in WHERE",
                ));
            }
        };
        sides.push((side, side_kind));
    }
    let (right_node, right_side) = sides
        .pop()
        .ok_or_else(|| SqlError::at(relation, "ON needs two sides"))?;
    let (left_node, left_side) = sides
        .pop()
        .ok_or_else(|| SqlError::at(relation, "ON needs two sides"))?;
    Ok(match (left_side, right_side) {
        (Side::From(l), other) if !matches!(other, Side::From(_)) => (l, other, right_node),
        (other, Side::From(r)) if !matches!(other, Side::From(_)) => (r, other, left_node),
        _ => {
            return Err(SqlError::at(
                location_of(left_node, relation),
                format!(
                    "ON must compare an expression of {from_name} with one of {joined_name}; both sides read the same input"
                ),
            ));
        }
    })
}

/// One side of a join's ON equality, by the input it reads.
enum Side {
    From(Expr),
    Joined(Expr),
    /// `c.ROWKEY[.path]` of a table.
    TableKey(Vec<String>),
}

/// How an input is named in messages: its alias or topic.
fn display_name(input: &InputName) -> String {
    input.names.first().cloned().unwrap_or_default()
}

/// `<table>.ROWKEY` (→ `[]`) or `<table>.ROWKEY.a.b` (→ `[a, b]`).
fn table_key_path(node: &ast::Expr, table: &InputName) -> Option<Vec<String>> {
    let ast::Expr::CompoundIdentifier(parts) = node else {
        return None;
    };
    let [qualifier, rowkey, path @ ..] = parts.as_slice() else {
        return None;
    };
    let named = table
        .names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&qualifier.value));
    (named && rowkey.quote_style.is_none() && rowkey.value.eq_ignore_ascii_case("ROWKEY"))
        .then(|| path.iter().map(|p| p.value.clone()).collect())
}

/// Replaces every subexpression equal to a GROUP BY expression with its slot.
fn over_groups(expr: Expr, groups: &[Expr]) -> Expr {
    if let Some(i) = groups.iter().position(|g| *g == expr) {
        return Expr::Group(i);
    }
    let boxed = |e: Box<Expr>| Box::new(over_groups(*e, groups));
    match expr {
        Expr::Unary(op, e) => Expr::Unary(op, boxed(e)),
        Expr::Binary(op, a, b) => Expr::Binary(op, boxed(a), boxed(b)),
        Expr::IsNull { expr, negated } => Expr::IsNull {
            expr: boxed(expr),
            negated,
        },
        Expr::InList { expr, list, negated } => Expr::InList {
            expr: boxed(expr),
            list: list.into_iter().map(|e| over_groups(e, groups)).collect(),
            negated,
        },
        Expr::Between {
            expr,
            low,
            high,
            negated,
        } => Expr::Between {
            expr: boxed(expr),
            low: boxed(low),
            high: boxed(high),
            negated,
        },
        Expr::Like {
            expr,
            pattern,
            negated,
            case_insensitive,
        } => Expr::Like {
            expr: boxed(expr),
            pattern: boxed(pattern),
            negated,
            case_insensitive,
        },
        Expr::Case {
            operand,
            whens,
            otherwise,
        } => Expr::Case {
            operand: operand.map(boxed),
            whens: whens
                .into_iter()
                .map(|(w, t)| (over_groups(w, groups), over_groups(t, groups)))
                .collect(),
            otherwise: otherwise.map(boxed),
        },
        Expr::Cast(e, t) => Expr::Cast(boxed(e), t),
        Expr::Call(f, args) => Expr::Call(f, args.into_iter().map(|e| over_groups(e, groups)).collect()),
        other => other,
    }
}

/// An aggregate's output may only use groups, aggregates, constants and the window bounds.
fn check_grouped(expr: &Expr, node: &ast::Expr, at: Location, windowed: bool) -> Result<(), SqlError> {
    let mut problem = None;
    expr.walk(&mut |e| match e {
        Expr::Column(c) if problem.is_none() => {
            problem = Some(format!(
                "`{}` must appear in GROUP BY or be inside an aggregate (COUNT, SUM, AVG, MIN, MAX)",
                c.path.join(".")
            ));
        }
        Expr::Meta(m @ (Meta::WindowStart | Meta::WindowEnd)) if !windowed && problem.is_none() => {
            problem = Some(format!("{} needs a WINDOW clause", m.name()));
        }
        Expr::Meta(m @ (Meta::RowTime | Meta::RowKey | Meta::RowPartition | Meta::RowOffset))
            if problem.is_none() =>
        {
            problem = Some(format!(
                "{} must appear in GROUP BY or be inside an aggregate (e.g. MAX({}))",
                m.name(),
                m.name()
            ));
        }
        _ => {}
    });
    match problem {
        Some(message) => Err(SqlError::at(location_of(node, at), message)),
        None => Ok(()),
    }
}

fn reject_window_meta(expr: &Expr, node: &ast::Expr, at: Location, clause: &str) -> Result<(), SqlError> {
    let mut found = None;
    expr.walk(&mut |e| {
        if let Expr::Meta(m @ (Meta::WindowStart | Meta::WindowEnd)) = e {
            found = Some(*m);
        }
    });
    match found {
        Some(m) => Err(SqlError::at(
            location_of(node, at),
            format!(
                "{} is only available in the SELECT and HAVING of a windowed aggregate, not in {clause}",
                m.name()
            ),
        )),
        None => Ok(()),
    }
}

/// Names output columns: the alias, else the last field name of a column,
/// the pseudo column's name, the aggregate's name, or `col<n>`.
fn name_columns(
    columns: Vec<(Option<String>, &ast::Expr, Expr)>,
    at: Location,
) -> Result<Vec<OutputColumn>, SqlError> {
    let mut out: Vec<OutputColumn> = Vec::with_capacity(columns.len());
    for (i, (alias, node, expr)) in columns.into_iter().enumerate() {
        let name = alias.unwrap_or_else(|| match node {
            ast::Expr::Identifier(ident) => ident.value.clone(),
            ast::Expr::CompoundIdentifier(parts) => parts
                .last()
                .map_or_else(|| format!("col{i}"), |p| p.value.clone()),
            ast::Expr::Function(f) => f.name.to_string().to_lowercase(),
            _ => format!("col{i}"),
        });
        if out.iter().any(|c| c.name == name) {
            return Err(SqlError::at(
                location_of(node, at),
                format!("two output columns are named {name:?}; give one another name with AS"),
            ));
        }
        out.push(OutputColumn { name, expr });
    }
    Ok(out)
}
