//! Tributary's streaming SQL: parse, check and plan a `Stream` query, and the
//! pure pieces the worker executes (expression evaluation over JSON rows,
//! window assignment, aggregate accumulators).
//!
//! Data model: a row is the decoded value of a Kafka record (a
//! [`serde_json::Value`], usually an object; Debezium envelopes as they are,
//! so `after.rating` is a path into it) plus its metadata (key, event time,
//! partition, offset). Expressions read rows through the [`Row`] trait, so
//! the worker can hand them a parse that kept only the fields they read. A [`Plan`] is typed and resolved: every column
//! reference is a path into one input's row, every function is known, every
//! aggregate has a slot. Parsing uses `sqlparser` for tokens and standard
//! SQL, plus our own pass for the streaming clauses (`WINDOW …`, `EMIT …`),
//! so every error carries the line and column it refers to (see
//! `docs/sql.md` for the dialect and `docs/decisions/0002` for why not
//! `DataFusion`).
//!
//! Everything here is pure: no I/O, no clocks. The operator calls
//! [`parse_and_plan`] to report errors and lineage in a Stream's status; the
//! worker calls it before it starts.

mod agg;
mod compile;
mod error;
mod eval;
mod expr;
mod functions;
mod plan;
mod syntax;
mod types;
mod window;

pub use agg::{Accumulator, AggregateFunction};
pub use error::{EvalError, SqlError};
pub use eval::{Context, Row, cast, evaluate, is_true};
pub use expr::{BinaryOp, ColumnRef, Expr, Meta, SqlType, UnaryOp};
pub use functions::Function;
pub use plan::{
    AggregateCall, Aggregation, Emit, InputKind, Join, JoinInput, JoinKind, JoinWindow, OutputColumn, Plan,
    PlanOptions, Projection, Source,
};
pub use types::{TypedColumn, static_type};
pub use window::{Session, Window, merge_sessions};

/// Parses `sql`, checks it and returns its plan.
///
/// `options` carries what the query needs from outside the SQL (which inputs
/// hold event time in a field). Errors name the line and column they refer to
/// and what is allowed there.
pub fn parse_and_plan(sql: &str, options: &PlanOptions) -> Result<Plan, SqlError> {
    let parsed = syntax::parse(sql)?;
    plan::plan(parsed, options)
}
