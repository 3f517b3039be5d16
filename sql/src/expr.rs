//! Typed, resolved expressions: what a query computes per row.

use std::fmt;

use serde_json::Value;

use crate::functions::Function;

/// A column: a path into one input's row value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    /// Which input (0: the `FROM` stream, 1: the joined table or stream).
    pub input: usize,
    /// Field names from the row's top level down, e.g. `["after", "rating"]`.
    pub path: Vec<String>,
}

/// Values every row has besides its fields (ksqlDB's pseudo columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// Event time, epoch milliseconds (`ROWTIME`).
    RowTime,
    /// The record key, decoded (`ROWKEY`).
    RowKey,
    /// Partition (`ROWPARTITION`).
    RowPartition,
    /// Offset (`ROWOFFSET`).
    RowOffset,
    /// Start of the window, epoch milliseconds (`WINDOWSTART`, windowed aggregates).
    WindowStart,
    /// End of the window, exclusive (`WINDOWEND`).
    WindowEnd,
}

impl Meta {
    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RowTime => "ROWTIME",
            Self::RowKey => "ROWKEY",
            Self::RowPartition => "ROWPARTITION",
            Self::RowOffset => "ROWOFFSET",
            Self::WindowStart => "WINDOWSTART",
            Self::WindowEnd => "WINDOWEND",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "ROWTIME" => Self::RowTime,
            "ROWKEY" => Self::RowKey,
            "ROWPARTITION" => Self::RowPartition,
            "ROWOFFSET" => Self::RowOffset,
            "WINDOWSTART" => Self::WindowStart,
            "WINDOWEND" => Self::WindowEnd,
            _ => return None,
        })
    }
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `NOT`
    Not,
    /// `-`
    Neg,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (integer division for two integers)
    Div,
    /// `%`
    Mod,
    /// `||`
    Concat,
    /// `=`
    Eq,
    /// `<>` / `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `AND`
    And,
    /// `OR`
    Or,
}

impl BinaryOp {
    fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Mod => "%",
            Self::Concat => "||",
            Self::Eq => "=",
            Self::NotEq => "<>",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
            Self::And => "AND",
            Self::Or => "OR",
        }
    }
}

/// Target types of `CAST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    /// 64-bit integer (`BIGINT`, `INT`, `INTEGER`, `SMALLINT`).
    BigInt,
    /// 64-bit float (`DOUBLE`, `FLOAT`, `REAL`, `DECIMAL`, `NUMERIC`).
    Double,
    /// Text (`VARCHAR`, `STRING`, `TEXT`, `CHAR`).
    String,
    /// `BOOLEAN`
    Boolean,
    /// Epoch milliseconds (`TIMESTAMP`), from a number or an RFC 3339 string.
    Timestamp,
}

impl SqlType {
    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::BigInt => "BIGINT",
            Self::Double => "DOUBLE",
            Self::String => "VARCHAR",
            Self::Boolean => "BOOLEAN",
            Self::Timestamp => "TIMESTAMP",
        }
    }
}

/// An expression over one row (and, in aggregates, its group and aggregate values).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant.
    Literal(Value),
    /// A field of an input row.
    Column(ColumnRef),
    /// A pseudo column.
    Meta(Meta),
    /// `NOT x`, `-x`.
    Unary(UnaryOp, Box<Expr>),
    /// `a op b`.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `x IS [NOT] NULL`.
    IsNull {
        /// Tested value.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `x [NOT] IN (a, b, …)`.
    InList {
        /// Tested value.
        expr: Box<Expr>,
        /// Candidates.
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `x [NOT] BETWEEN low AND high`.
    Between {
        /// Tested value.
        expr: Box<Expr>,
        /// Lower bound (inclusive).
        low: Box<Expr>,
        /// Upper bound (inclusive).
        high: Box<Expr>,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `x [NOT] LIKE|ILIKE pattern` (`%` any run, `_` one character).
    Like {
        /// Tested text.
        expr: Box<Expr>,
        /// Pattern.
        pattern: Box<Expr>,
        /// `NOT LIKE`.
        negated: bool,
        /// `ILIKE`.
        case_insensitive: bool,
    },
    /// `CASE [operand] WHEN … THEN … [ELSE …] END`.
    Case {
        /// Simple CASE's operand.
        operand: Option<Box<Expr>>,
        /// `(WHEN, THEN)` pairs.
        whens: Vec<(Expr, Expr)>,
        /// `ELSE` (absent: NULL).
        otherwise: Option<Box<Expr>>,
    },
    /// `CAST(x AS type)`.
    Cast(Box<Expr>, SqlType),
    /// A scalar function.
    Call(Function, Vec<Expr>),
    /// Value of the aggregate in slot `n` (aggregate queries only).
    Aggregate(usize),
    /// Value of the `n`th `GROUP BY` expression (aggregate queries only).
    Group(usize),
}

impl Expr {
    /// Calls `f` on this expression and every expression inside it.
    pub fn walk(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Self::Literal(_) | Self::Column(_) | Self::Meta(_) | Self::Aggregate(_) | Self::Group(_) => {}
            Self::Unary(_, e) | Self::IsNull { expr: e, .. } | Self::Cast(e, _) => e.walk(f),
            Self::Binary(_, a, b)
            | Self::Like {
                expr: a, pattern: b, ..
            } => {
                a.walk(f);
                b.walk(f);
            }
            Self::InList { expr, list, .. } => {
                expr.walk(f);
                for e in list {
                    e.walk(f);
                }
            }
            Self::Between { expr, low, high, .. } => {
                expr.walk(f);
                low.walk(f);
                high.walk(f);
            }
            Self::Case {
                operand,
                whens,
                otherwise,
            } => {
                if let Some(o) = operand {
                    o.walk(f);
                }
                for (w, t) in whens {
                    w.walk(f);
                    t.walk(f);
                }
                if let Some(o) = otherwise {
                    o.walk(f);
                }
            }
            Self::Call(_, args) => args.iter().for_each(|e| e.walk(f)),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Literal(Value::String(s)) => write!(f, "'{}'", s.replace('\'', "''")),
            Self::Literal(v) => write!(f, "{v}"),
            Self::Column(c) => write!(f, "${}.{}", c.input, c.path.join(".")),
            Self::Meta(m) => f.write_str(m.name()),
            Self::Unary(UnaryOp::Not, e) => write!(f, "NOT {e}"),
            Self::Unary(UnaryOp::Neg, e) => write!(f, "-{e}"),
            Self::Binary(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            Self::IsNull { expr, negated } => {
                write!(f, "{expr} IS {}NULL", if *negated { "NOT " } else { "" })
            }
            Self::InList { expr, list, negated } => {
                let items: Vec<String> = list.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "{expr} {}IN ({})",
                    if *negated { "NOT " } else { "" },
                    items.join(", ")
                )
            }
            Self::Between {
                expr,
                low,
                high,
                negated,
            } => write!(
                f,
                "{expr} {}BETWEEN {low} AND {high}",
                if *negated { "NOT " } else { "" }
            ),
            Self::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => write!(
                f,
                "{expr} {}{} {pattern}",
                if *negated { "NOT " } else { "" },
                if *case_insensitive { "ILIKE" } else { "LIKE" }
            ),
            Self::Case {
                operand,
                whens,
                otherwise,
            } => {
                f.write_str("CASE")?;
                if let Some(o) = operand {
                    write!(f, " {o}")?;
                }
                for (w, t) in whens {
                    write!(f, " WHEN {w} THEN {t}")?;
                }
                if let Some(o) = otherwise {
                    write!(f, " ELSE {o}")?;
                }
                f.write_str(" END")
            }
            Self::Cast(e, t) => write!(f, "CAST({e} AS {})", t.name()),
            Self::Call(func, args) => {
                let items: Vec<String> = args.iter().map(ToString::to_string).collect();
                write!(f, "{}({})", func.name(), items.join(", "))
            }
            Self::Aggregate(n) => write!(f, "$agg{n}"),
            Self::Group(n) => write!(f, "$group{n}"),
        }
    }
}
