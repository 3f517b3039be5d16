//! Static types of output columns, where the query fixes them.
//!
//! Inputs are schemaless JSON (or Avro decoded to JSON), so a bare field such
//! as `after.region` has no type until a row arrives. Everything the query
//! itself determines does: `CAST(x AS t)`, literals, comparisons,
//! string functions, `COUNT`, `AVG`, window bounds. Typed output formats
//! (Avro, JSON with a Connect schema) need a schema before the first record,
//! so they use these types and refuse a column whose type only the data
//! would tell — the error asks for a `CAST`, as ksqlDB's declared column
//! types would have fixed it.

use serde_json::Value;

use crate::agg::AggregateFunction;
use crate::expr::{BinaryOp, Expr, Meta, SqlType, UnaryOp};
use crate::functions::Function;
use crate::plan::{Aggregation, Plan, Projection};

/// One output column and its type (`None`: only the data would tell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedColumn {
    /// The column's name.
    pub name: String,
    /// Its static type.
    pub sql_type: Option<SqlType>,
}

impl Plan {
    /// Output columns with their static types; `None` for `SELECT *`
    /// (the input value passes through as it is).
    pub fn output_types(&self) -> Option<Vec<TypedColumn>> {
        let (columns, aggregation) = match &self.projection {
            Projection::Wildcard => return None,
            Projection::Columns(columns) => (columns, None),
            Projection::Aggregate(aggregation) => (&aggregation.columns, Some(aggregation)),
        };
        Some(
            columns
                .iter()
                .map(|c| TypedColumn {
                    name: c.name.clone(),
                    sql_type: static_type(&c.expr, aggregation),
                })
                .collect(),
        )
    }

    /// Static type of the `n`th `GROUP BY` expression.
    pub fn group_type(&self, n: usize) -> Option<SqlType> {
        let aggregation = self.aggregation()?;
        static_type(aggregation.group_by.get(n)?, Some(aggregation))
    }
}

/// The type `expr` always evaluates to (or NULL), if the query fixes it.
pub fn static_type(expr: &Expr, aggregation: Option<&Aggregation>) -> Option<SqlType> {
    let of = |e: &Expr| static_type(e, aggregation);
    match expr {
        Expr::Literal(value) => literal_type(value),
        Expr::Column(_) => None,
        Expr::Meta(meta) => match meta {
            Meta::RowTime | Meta::WindowStart | Meta::WindowEnd => Some(SqlType::Timestamp),
            Meta::RowPartition | Meta::RowOffset => Some(SqlType::BigInt),
            Meta::RowKey => None,
        },
        Expr::Unary(UnaryOp::Not, _)
        | Expr::IsNull { .. }
        | Expr::InList { .. }
        | Expr::Between { .. }
        | Expr::Like { .. } => Some(SqlType::Boolean),
        Expr::Unary(UnaryOp::Neg, inner) => numeric(of(inner)),
        Expr::Binary(op, left, right) => binary_type(*op, of(left), of(right)),
        Expr::Case { whens, otherwise, .. } => common_type(
            whens.iter().map(|(_, then)| then).chain(otherwise.as_deref()),
            aggregation,
        ),
        Expr::Cast(_, ty) => Some(*ty),
        Expr::Call(function, args) => function_type(*function, args, aggregation),
        Expr::Aggregate(slot) => {
            let call = aggregation?.calls.get(*slot)?;
            let arg = call.arg.as_ref().and_then(&of);
            match call.function {
                AggregateFunction::CountRows | AggregateFunction::Count => Some(SqlType::BigInt),
                AggregateFunction::Avg => Some(SqlType::Double),
                AggregateFunction::Sum => numeric(arg),
                AggregateFunction::Min | AggregateFunction::Max => arg,
            }
        }
        Expr::Group(n) => of(aggregation?.group_by.get(*n)?),
    }
}

fn literal_type(value: &Value) -> Option<SqlType> {
    match value {
        Value::Bool(_) => Some(SqlType::Boolean),
        Value::Number(n) if n.is_f64() => Some(SqlType::Double),
        Value::Number(_) => Some(SqlType::BigInt),
        Value::String(_) => Some(SqlType::String),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Numbers keep their type; timestamps do arithmetic as their milliseconds.
fn numeric(ty: Option<SqlType>) -> Option<SqlType> {
    match ty? {
        SqlType::BigInt | SqlType::Timestamp => Some(SqlType::BigInt),
        SqlType::Double => Some(SqlType::Double),
        SqlType::String | SqlType::Boolean => None,
    }
}

fn binary_type(op: BinaryOp, left: Option<SqlType>, right: Option<SqlType>) -> Option<SqlType> {
    match op {
        BinaryOp::Eq
        | BinaryOp::NotEq
        | BinaryOp::Lt
        | BinaryOp::LtEq
        | BinaryOp::Gt
        | BinaryOp::GtEq
        | BinaryOp::And
        | BinaryOp::Or => Some(SqlType::Boolean),
        BinaryOp::Concat => Some(SqlType::String),
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
            match (numeric(left)?, numeric(right)?) {
                (SqlType::BigInt, SqlType::BigInt) => Some(SqlType::BigInt),
                _ => Some(SqlType::Double),
            }
        }
    }
}

/// The one type of several branches (NULL literals aside), if they agree.
fn common_type<'a>(
    branches: impl Iterator<Item = &'a Expr>,
    aggregation: Option<&Aggregation>,
) -> Option<SqlType> {
    let mut common = None;
    for branch in branches {
        if matches!(branch, Expr::Literal(Value::Null)) {
            continue;
        }
        let ty = static_type(branch, aggregation)?;
        common = match (common, ty) {
            (None, ty) => Some(ty),
            (Some(a), b) if a == b => Some(a),
            (Some(SqlType::BigInt), SqlType::Double) | (Some(SqlType::Double), SqlType::BigInt) => {
                Some(SqlType::Double)
            }
            _ => return None,
        };
    }
    common
}

fn function_type(function: Function, args: &[Expr], aggregation: Option<&Aggregation>) -> Option<SqlType> {
    let first = || args.first().and_then(|a| static_type(a, aggregation));
    match function {
        Function::Upper
        | Function::Lower
        | Function::Trim
        | Function::LTrim
        | Function::RTrim
        | Function::Substring
        | Function::Concat
        | Function::Replace
        | Function::SplitPart
        | Function::FormatTimestamp
        | Function::JsonString => Some(SqlType::String),
        Function::Length | Function::Sign | Function::Extract => Some(SqlType::BigInt),
        Function::Sqrt | Function::Power | Function::Ln | Function::Exp => Some(SqlType::Double),
        Function::Abs | Function::Floor | Function::Ceil | Function::Round => numeric(first()),
        Function::Mod => binary_type(
            BinaryOp::Mod,
            first(),
            args.get(1).and_then(|a| static_type(a, aggregation)),
        ),
        Function::ParseTimestamp | Function::DateTrunc => Some(SqlType::Timestamp),
        Function::Coalesce | Function::IfNull => common_type(args.iter(), aggregation),
        Function::NullIf => first(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PlanOptions, parse_and_plan};

    fn types(sql: &str) -> Vec<(String, Option<SqlType>)> {
        parse_and_plan(sql, &PlanOptions::default())
            .unwrap()
            .output_types()
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.sql_type))
            .collect()
    }

    #[test]
    fn casts_literals_and_functions_fix_types_and_bare_fields_do_not() {
        let got = types(
            "SELECT CAST(after.id AS BIGINT) AS id, after.region AS region, UPPER(after.region) AS upper, \
             after.rating < 3 AS low, 'x' AS tag, 1.5 AS half, ROWTIME AS at, \
             CAST(after.rating AS DOUBLE) / 2 AS halved, COALESCE(CAST(after.name AS VARCHAR), 'none') AS name \
             FROM ratings",
        );
        assert_eq!(
            got,
            vec![
                ("id".to_owned(), Some(SqlType::BigInt)),
                ("region".to_owned(), None),
                ("upper".to_owned(), Some(SqlType::String)),
                ("low".to_owned(), Some(SqlType::Boolean)),
                ("tag".to_owned(), Some(SqlType::String)),
                ("half".to_owned(), Some(SqlType::Double)),
                ("at".to_owned(), Some(SqlType::Timestamp)),
                ("halved".to_owned(), Some(SqlType::Double)),
                ("name".to_owned(), Some(SqlType::String)),
            ]
        );
    }

    #[test]
    fn aggregates_and_groups_have_their_types() {
        let got = types(
            "SELECT CAST(after.region AS VARCHAR) AS region, WINDOWSTART AS window_start, COUNT(*) AS n, \
             SUM(CAST(after.rating AS BIGINT)) AS stars, AVG(after.rating) AS mean, MAX(after.rating) AS best \
             FROM ratings WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY CAST(after.region AS VARCHAR) EMIT FINAL",
        );
        assert_eq!(
            got,
            vec![
                ("region".to_owned(), Some(SqlType::String)),
                ("window_start".to_owned(), Some(SqlType::Timestamp)),
                ("n".to_owned(), Some(SqlType::BigInt)),
                ("stars".to_owned(), Some(SqlType::BigInt)),
                ("mean".to_owned(), Some(SqlType::Double)),
                ("best".to_owned(), None),
            ]
        );
    }

    #[test]
    fn select_star_has_no_column_types() {
        let plan = parse_and_plan("SELECT * FROM ratings", &PlanOptions::default()).unwrap();
        assert_eq!(plan.output_types(), None);
    }
}
