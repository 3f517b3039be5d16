//! sqlparser expressions → our typed [`Expr`], resolving columns against the
//! query's inputs and collecting aggregate calls.

use serde_json::Value;
use sqlparser::ast::{
    self, AccessExpr, BinaryOperator, CastKind, CeilFloorKind, DuplicateTreatment, FunctionArg,
    FunctionArgExpr, FunctionArguments, Ident, Spanned, Subscript, UnaryOperator,
};
use sqlparser::tokenizer::Location;

use crate::agg::AggregateFunction;
use crate::error::SqlError;
use crate::eval::number;
use crate::expr::{BinaryOp, ColumnRef, Expr, Meta, SqlType, UnaryOp};
use crate::functions::Function;
use crate::plan::AggregateCall;

/// The names one input can be referred to by.
#[derive(Debug, Clone)]
pub(crate) struct InputName {
    /// Alias (`FROM ratings r`), else the topic name when it is one identifier.
    pub names: Vec<String>,
}

/// Resolves names and builds expressions for one part of the query.
pub(crate) struct Compiler<'a> {
    pub inputs: &'a [InputName],
    /// Where aggregate calls go; `None` where aggregates are not allowed
    /// (WHERE, GROUP BY, inside another aggregate).
    pub aggregates: Option<&'a mut Vec<AggregateCall>>,
    /// The clause being compiled, for messages ("WHERE", "GROUP BY").
    pub clause: &'static str,
    /// Used when sqlparser gives no position for a node.
    pub fallback: Location,
}

/// The start of a node, or `fallback` when sqlparser has none.
pub(crate) fn location_of(node: &impl Spanned, fallback: Location) -> Location {
    span_start(node.span(), fallback)
}

/// The start of `span`, or `fallback` when it is empty.
pub(crate) fn span_start(span: sqlparser::tokenizer::Span, fallback: Location) -> Location {
    let start = span.start;
    if start.line == 0 { fallback } else { start }
}

impl Compiler<'_> {
    fn error(&self, node: &impl Spanned, message: impl Into<String>) -> SqlError {
        SqlError::at(location_of(node, self.fallback), message)
    }

    #[allow(clippy::too_many_lines)] // one arm per SQL construct
    pub fn compile(&mut self, expr: &ast::Expr) -> Result<Expr, SqlError> {
        use ast::Expr as E;
        Ok(match expr {
            E::Identifier(ident) => self.column(std::slice::from_ref(ident), expr)?,
            E::CompoundIdentifier(parts) => self.column(parts, expr)?,
            E::CompoundFieldAccess { root, access_chain } => {
                let mut base = self.compile(root)?;
                for access in access_chain {
                    let step = match access {
                        AccessExpr::Dot(ast::Expr::Identifier(ident)) => Some(ident.value.clone()),
                        AccessExpr::Subscript(Subscript::Index { index: E::Value(v) }) => match &v.value {
                            ast::Value::Number(n, _) => Some(n.clone()),
                            ast::Value::SingleQuotedString(s) => Some(s.clone()),
                            _ => None,
                        },
                        _ => None,
                    };
                    let (Some(step), Expr::Column(column)) = (step, &mut base) else {
                        return Err(self.error(
                            expr,
                            "only field access with a constant is allowed here: a.b, a['b'] or a[0]",
                        ));
                    };
                    column.path.push(step);
                }
                base
            }
            E::Value(v) => Expr::Literal(self.literal(&v.value, expr)?),
            E::TypedString(typed) => {
                let text = match &typed.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    _ => {
                        return Err(self.error(
                            expr,
                            "expected a quoted timestamp, e.g. TIMESTAMP '2026-01-02 03:04:05'",
                        ));
                    }
                };
                if sql_type(&typed.data_type) != Some(SqlType::Timestamp) {
                    return Err(self.error(expr, "only TIMESTAMP '…' literals are allowed"));
                }
                let ts = crate::functions::parse_timestamp_text(&text).ok_or_else(|| {
                    self.error(
                        expr,
                        format!("{text:?} is not an RFC 3339 timestamp or YYYY-MM-DD HH:MM:SS"),
                    )
                })?;
                Expr::Literal(Value::from(ts.as_millisecond()))
            }
            E::Nested(inner) => self.compile(inner)?,
            E::UnaryOp { op, expr: inner } => {
                let operand = self.compile(inner)?;
                match op {
                    UnaryOperator::Not => Expr::Unary(UnaryOp::Not, Box::new(operand)),
                    UnaryOperator::Minus => match operand {
                        Expr::Literal(Value::Number(n)) => Expr::Literal(match n.as_i64() {
                            Some(i) => Value::from(-i),
                            None => number(-n.as_f64().unwrap_or(0.0)),
                        }),
                        other => Expr::Unary(UnaryOp::Neg, Box::new(other)),
                    },
                    UnaryOperator::Plus => operand,
                    other => {
                        return Err(self.error(
                            expr,
                            format!("operator {other} is not supported; allowed: NOT, -, +"),
                        ));
                    }
                }
            }
            E::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Plus => BinaryOp::Add,
                    BinaryOperator::Minus => BinaryOp::Sub,
                    BinaryOperator::Multiply => BinaryOp::Mul,
                    BinaryOperator::Divide => BinaryOp::Div,
                    BinaryOperator::Modulo => BinaryOp::Mod,
                    BinaryOperator::StringConcat => BinaryOp::Concat,
                    BinaryOperator::Eq => BinaryOp::Eq,
                    BinaryOperator::NotEq => BinaryOp::NotEq,
                    BinaryOperator::Lt => BinaryOp::Lt,
                    BinaryOperator::LtEq => BinaryOp::LtEq,
                    BinaryOperator::Gt => BinaryOp::Gt,
                    BinaryOperator::GtEq => BinaryOp::GtEq,
                    BinaryOperator::And => BinaryOp::And,
                    BinaryOperator::Or => BinaryOp::Or,
                    other => {
                        return Err(self.error(
                            expr,
                            format!(
                                "operator {other} is not supported; allowed: + - * / % ||, = <> != < <= > >=, AND, OR"
                            ),
                        ));
                    }
                };
                Expr::Binary(op, Box::new(self.compile(left)?), Box::new(self.compile(right)?))
            }
            E::IsNull(inner) => Expr::IsNull {
                expr: Box::new(self.compile(inner)?),
                negated: false,
            },
            E::IsNotNull(inner) => Expr::IsNull {
                expr: Box::new(self.compile(inner)?),
                negated: true,
            },
            E::In {
                expr: inner,
                target: ast::InTarget::List(list),
                negated,
                global: false,
            } => Expr::InList {
                expr: Box::new(self.compile(inner)?),
                list: list.iter().map(|e| self.compile(e)).collect::<Result<_, _>>()?,
                negated: *negated,
            },
            E::Between {
                expr: inner,
                negated,
                low,
                high,
            } => Expr::Between {
                expr: Box::new(self.compile(inner)?),
                low: Box::new(self.compile(low)?),
                high: Box::new(self.compile(high)?),
                negated: *negated,
            },
            E::Like {
                negated,
                any,
                expr: inner,
                pattern,
                escape_char,
            }
            | E::ILike {
                negated,
                any,
                expr: inner,
                pattern,
                escape_char,
            } => {
                if *any || escape_char.is_some() {
                    return Err(self.error(expr, "LIKE ANY and ESCAPE are not supported"));
                }
                Expr::Like {
                    expr: Box::new(self.compile(inner)?),
                    pattern: Box::new(self.compile(pattern)?),
                    negated: *negated,
                    case_insensitive: matches!(expr, E::ILike { .. }),
                }
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => Expr::Case {
                operand: operand
                    .as_ref()
                    .map(|o| self.compile(o).map(Box::new))
                    .transpose()?,
                whens: conditions
                    .iter()
                    .map(|w| Ok((self.compile(&w.condition)?, self.compile(&w.result)?)))
                    .collect::<Result<_, SqlError>>()?,
                otherwise: else_result
                    .as_ref()
                    .map(|e| self.compile(e).map(Box::new))
                    .transpose()?,
            },
            E::Cast {
                kind,
                expr: inner,
                data_type,
                format,
            } => {
                if !matches!(kind, CastKind::Cast | CastKind::DoubleColon) || format.is_some() {
                    return Err(self.error(expr, "only CAST(x AS type) and x::type are supported"));
                }
                let Some(ty) = sql_type(data_type) else {
                    return Err(self.error(
                        expr,
                        format!(
                            "cannot CAST to {data_type}; allowed: BIGINT (INT, INTEGER), DOUBLE (FLOAT, DECIMAL), VARCHAR (STRING, TEXT), BOOLEAN, TIMESTAMP"
                        ),
                    ));
                };
                Expr::Cast(Box::new(self.compile(inner)?), ty)
            }
            E::Substring {
                expr: inner,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.compile(inner)?];
                args.push(match substring_from {
                    Some(from) => self.compile(from)?,
                    None => Expr::Literal(Value::from(1)),
                });
                if let Some(length) = substring_for {
                    args.push(self.compile(length)?);
                }
                Expr::Call(Function::Substring, args)
            }
            E::Trim {
                expr: inner,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_what.is_some() || trim_characters.is_some() {
                    return Err(self.error(
                        expr,
                        "TRIM of given characters is not supported; TRIM(x) trims spaces",
                    ));
                }
                let function = match trim_where {
                    Some(ast::TrimWhereField::Leading) => Function::LTrim,
                    Some(ast::TrimWhereField::Trailing) => Function::RTrim,
                    _ => Function::Trim,
                };
                Expr::Call(function, vec![self.compile(inner)?])
            }
            E::Ceil { expr: inner, field } | E::Floor { expr: inner, field } => {
                if !matches!(
                    field,
                    CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime)
                ) {
                    return Err(self.error(expr, "CEIL/FLOOR take one argument"));
                }
                let function = if matches!(expr, E::Ceil { .. }) {
                    Function::Ceil
                } else {
                    Function::Floor
                };
                Expr::Call(function, vec![self.compile(inner)?])
            }
            E::Extract {
                field, expr: inner, ..
            } => Expr::Call(
                Function::Extract,
                vec![
                    Expr::Literal(Value::String(field.to_string().to_lowercase())),
                    self.compile(inner)?,
                ],
            ),
            E::Function(function) => self.function(function, expr)?,
            other => {
                return Err(self.error(
                    other,
                    format!(
                        "`{other}` is not supported in {}; see docs/sql.md for the expressions allowed",
                        self.clause
                    ),
                ));
            }
        })
    }

    fn literal(&self, value: &ast::Value, node: &ast::Expr) -> Result<Value, SqlError> {
        Ok(match value {
            ast::Value::Number(text, _) => match text.parse::<i64>() {
                Ok(i) => Value::from(i),
                Err(_) => match text.parse::<f64>() {
                    Ok(f) if f.is_finite() => number(f),
                    _ => {
                        return Err(self.error(node, format!("{text} is not a number this dialect can hold")));
                    }
                },
            },
            ast::Value::SingleQuotedString(s) => Value::String(s.clone()),
            ast::Value::Boolean(b) => Value::Bool(*b),
            ast::Value::Null => Value::Null,
            other => {
                return Err(self.error(
                    node,
                    format!("literal {other} is not supported; use numbers, 'text', TRUE, FALSE or NULL (\"…\" quotes a name)"),
                ));
            }
        })
    }

    /// Resolves `a.b.c` to a pseudo column or a path into one input.
    fn column(&self, parts: &[Ident], node: &ast::Expr) -> Result<Expr, SqlError> {
        let names: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
        if let [only] = parts
            && only.quote_style.is_none()
            && let Some(meta) = Meta::from_name(&only.value)
        {
            return Ok(Expr::Meta(meta));
        }
        if parts.len() >= 2 {
            let qualifier = names[0];
            if let Some(input) = self
                .inputs
                .iter()
                .position(|i| i.names.iter().any(|n| n.eq_ignore_ascii_case(qualifier)))
            {
                let rest = &parts[1..];
                if let [only] = rest
                    && only.quote_style.is_none()
                    && let Some(meta) = Meta::from_name(&only.value)
                {
                    if input != 0 && !matches!(meta, Meta::WindowStart | Meta::WindowEnd) {
                        return Err(self.error(
                            node,
                            format!("{} is available for the FROM input only", meta.name()),
                        ));
                    }
                    return Ok(Expr::Meta(meta));
                }
                return Ok(Expr::Column(ColumnRef {
                    input,
                    path: rest.iter().map(|p| p.value.clone()).collect(),
                }));
            }
        }
        if self.inputs.len() > 1 {
            let qualifiers: Vec<&str> = self
                .inputs
                .iter()
                .filter_map(|i| i.names.first().map(String::as_str))
                .collect();
            return Err(self.error(
                node,
                format!(
                    "`{}` is ambiguous in a join: qualify it with its input ({})",
                    names.join("."),
                    qualifiers
                        .iter()
                        .map(|q| format!("{q}.{}", names.join(".")))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            ));
        }
        Ok(Expr::Column(ColumnRef {
            input: 0,
            path: names.iter().map(|s| (*s).to_owned()).collect(),
        }))
    }

    fn function(&mut self, function: &ast::Function, node: &ast::Expr) -> Result<Expr, SqlError> {
        let name = function.name.to_string();
        if function.over.is_some() || function.filter.is_some() || !function.within_group.is_empty() {
            return Err(self.error(
                node,
                format!("{name}: OVER, FILTER and WITHIN GROUP are not supported"),
            ));
        }
        let list = match &function.args {
            FunctionArguments::List(list) => list,
            FunctionArguments::None => {
                return Err(self.error(
                    node,
                    format!(
                        "unknown function {name}; allowed: {}, COUNT, SUM, AVG, MIN, MAX",
                        Function::all_names()
                    ),
                ));
            }
            FunctionArguments::Subquery(_) => return Err(self.error(node, "subqueries are not supported")),
        };
        if !list.clauses.is_empty() {
            return Err(self.error(
                node,
                format!("{name}: clauses inside the argument list are not supported"),
            ));
        }
        if let Some(aggregate) = AggregateFunction::lookup(&name) {
            if list.duplicate_treatment == Some(DuplicateTreatment::Distinct) {
                return Err(self.error(node, format!("{name}(DISTINCT …) is not supported")));
            }
            if self.aggregates.is_none() {
                return Err(self.error(
                    node,
                    format!("aggregate {name} is not allowed in {}", self.clause),
                ));
            }
            let call = self.aggregate(aggregate, &name, &list.args, node)?;
            let Some(calls) = self.aggregates.as_deref_mut() else {
                return Err(self.error(
                    node,
                    format!("aggregate {name} is not allowed in {}", self.clause),
                ));
            };
            let index = if let Some(index) = calls.iter().position(|c| *c == call) {
                index
            } else {
                calls.push(call);
                calls.len() - 1
            };
            return Ok(Expr::Aggregate(index));
        }
        let Some((f, min, max)) = Function::lookup(&name) else {
            return Err(self.error(
                node,
                format!(
                    "unknown function {name}; allowed: {}, COUNT, SUM, AVG, MIN, MAX",
                    Function::all_names()
                ),
            ));
        };
        if list.duplicate_treatment.is_some() {
            return Err(self.error(node, format!("{name} does not take DISTINCT or ALL")));
        }
        let mut args = Vec::with_capacity(list.args.len());
        for arg in &list.args {
            match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(self.compile(e)?),
                _ => return Err(self.error(node, format!("{name} takes plain arguments (no *, no names)"))),
            }
        }
        if args.len() < min || args.len() > max {
            let expected = if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            };
            let noun = if max == 1 { "argument" } else { "arguments" };
            return Err(self.error(
                node,
                format!("{} takes {expected} {noun}, got {}", f.name(), args.len()),
            ));
        }
        Ok(Expr::Call(f, args))
    }

    fn aggregate(
        &self,
        function: AggregateFunction,
        name: &str,
        args: &[FunctionArg],
        node: &ast::Expr,
    ) -> Result<AggregateCall, SqlError> {
        match args {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if function == AggregateFunction::Count => {
                Ok(AggregateCall {
                    function: AggregateFunction::CountRows,
                    arg: None,
                })
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => {
                // An aggregate's argument is per row: no aggregates inside.
                let mut inner = Compiler {
                    inputs: self.inputs,
                    aggregates: None,
                    clause: "an aggregate's argument",
                    fallback: self.fallback,
                };
                Ok(AggregateCall {
                    function,
                    arg: Some(inner.compile(e)?),
                })
            }
            _ => Err(self.error(
                node,
                format!(
                    "{name} takes one argument{}",
                    if name.eq_ignore_ascii_case("COUNT") {
                        " or *"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }
}

/// Maps a SQL data type to the types `CAST` supports.
pub(crate) fn sql_type(data_type: &ast::DataType) -> Option<SqlType> {
    let text = data_type.to_string().to_ascii_uppercase();
    let base = text.split(['(', ' ']).next().unwrap_or_default();
    Some(match base {
        "BIGINT" | "INT" | "INTEGER" | "SMALLINT" | "TINYINT" | "INT64" | "INT8" | "INT4" | "LONG" => {
            SqlType::BigInt
        }
        "DOUBLE" | "FLOAT" | "REAL" | "DECIMAL" | "NUMERIC" | "FLOAT64" | "FLOAT8" | "FLOAT4" => {
            SqlType::Double
        }
        "VARCHAR" | "STRING" | "TEXT" | "CHAR" | "CHARACTER" => SqlType::String,
        "BOOLEAN" | "BOOL" => SqlType::Boolean,
        "TIMESTAMP" => SqlType::Timestamp,
        _ => return None,
    })
}
