//! Evaluation of [`Expr`] over a row, with SQL's NULL semantics: an
//! operation on NULL gives NULL, `AND`/`OR` use three-valued logic, and a
//! `WHERE` keeps a row only when its condition is true.
//!
//! Numbers: two integers give an integer (`/` divides integrally, overflow is
//! an error); anything with a float gives a float; division by zero gives
//! NULL (as ksqlDB does). Comparing values of different types (text with a
//! number) is an error for that row, not a silent false.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};

use crate::error::EvalError;
use crate::expr::{BinaryOp, Expr, Meta, SqlType, UnaryOp};

/// An input row as expressions read it: a column is a path of field
/// names (and array indexes) into it.
///
/// A decoded [`Value`] is one; the worker's parser has another that holds
/// only the fields a query reads, without building maps for them.
pub trait Row: fmt::Debug + Sync {
    /// The value at `path`; NULL when a step is missing.
    fn get(&self, path: &[String]) -> &Value;

    /// The row as a JSON value (what is kept of it).
    fn to_value(&self) -> Value;
}

impl Row for Value {
    fn get(&self, path: &[String]) -> &Value {
        lookup(self, path)
    }

    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// What an expression is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Row values per input (index 0: the `FROM` stream; 1: the joined
    /// input, `None` when a `LEFT JOIN` found no match).
    pub rows: [Option<&'a dyn Row>; 2],
    /// The record key, decoded.
    pub key: &'a Value,
    /// Event time (epoch ms).
    pub timestamp: i64,
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
    /// `GROUP BY` values (aggregate output only).
    pub groups: &'a [Value],
    /// Aggregate values (aggregate output only).
    pub aggregates: &'a [Value],
    /// `[start, end)` of the window (windowed aggregate output only).
    pub window: Option<(i64, i64)>,
}

impl<'a> Context<'a> {
    /// A context for one input row.
    pub fn row(value: &'a Value, key: &'a Value, timestamp: i64) -> Self {
        Self {
            rows: [Some(value), None],
            key,
            timestamp,
            partition: 0,
            offset: 0,
            groups: &[],
            aggregates: &[],
            window: None,
        }
    }
}

/// Follows `path` into `value` (NULL when a step is missing).
fn lookup<'v>(value: &'v Value, path: &[String]) -> &'v Value {
    let mut current = value;
    for step in path {
        current = match current {
            Value::Object(map) => map.get(step).unwrap_or(&Value::Null),
            Value::Array(items) => step
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    current
}

/// True when a condition's value keeps the row (NULL and false do not).
pub fn is_true(value: &Value) -> bool {
    matches!(value, Value::Bool(true))
}

/// Evaluates `expr`.
#[allow(clippy::too_many_lines)] // one arm per expression kind
pub fn evaluate(expr: &Expr, ctx: &Context<'_>) -> Result<Value, EvalError> {
    Ok(match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Column(c) => ctx.rows[c.input].map_or(Value::Null, |row| row.get(&c.path).clone()),
        Expr::Meta(meta) => match meta {
            Meta::RowTime => Value::from(ctx.timestamp),
            Meta::RowKey => ctx.key.clone(),
            Meta::RowPartition => Value::from(ctx.partition),
            Meta::RowOffset => Value::from(ctx.offset),
            Meta::WindowStart => ctx.window.map_or(Value::Null, |(s, _)| Value::from(s)),
            Meta::WindowEnd => ctx.window.map_or(Value::Null, |(_, e)| Value::from(e)),
        },
        Expr::Aggregate(n) => ctx.aggregates.get(*n).cloned().unwrap_or(Value::Null),
        Expr::Group(n) => ctx.groups.get(*n).cloned().unwrap_or(Value::Null),
        Expr::Unary(op, e) => {
            let v = evaluate(e, ctx)?;
            match (op, &v) {
                (_, Value::Null) => Value::Null,
                (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
                (UnaryOp::Neg, Value::Number(n)) => match n.as_i64() {
                    Some(i) => i.checked_neg().map(Value::from).ok_or_else(|| overflow("-"))?,
                    None => number(-n.as_f64().unwrap_or(0.0)),
                },
                (UnaryOp::Not, other) => {
                    return Err(EvalError(format!(
                        "NOT needs a boolean, got {}",
                        type_name(other)
                    )));
                }
                (UnaryOp::Neg, other) => {
                    return Err(EvalError(format!("- needs a number, got {}", type_name(other))));
                }
            }
        }
        Expr::Binary(op, a, b) => {
            match op {
                BinaryOp::And | BinaryOp::Or => return logic(*op, a, b, ctx),
                _ => {}
            }
            let (a, b) = (evaluate(a, ctx)?, evaluate(b, ctx)?);
            if a.is_null() || b.is_null() {
                return Ok(Value::Null);
            }
            match op {
                BinaryOp::Eq => Value::Bool(compare(&a, &b)? == Ordering::Equal),
                BinaryOp::NotEq => Value::Bool(compare(&a, &b)? != Ordering::Equal),
                BinaryOp::Lt => Value::Bool(compare(&a, &b)? == Ordering::Less),
                BinaryOp::LtEq => Value::Bool(compare(&a, &b)? != Ordering::Greater),
                BinaryOp::Gt => Value::Bool(compare(&a, &b)? == Ordering::Greater),
                BinaryOp::GtEq => Value::Bool(compare(&a, &b)? != Ordering::Less),
                BinaryOp::Concat => Value::String(format!("{}{}", value_text(&a), value_text(&b))),
                _ => arithmetic(*op, &a, &b)?,
            }
        }
        Expr::IsNull { expr, negated } => Value::Bool(evaluate(expr, ctx)?.is_null() != *negated),
        Expr::InList { expr, list, negated } => {
            let v = evaluate(expr, ctx)?;
            if v.is_null() {
                return Ok(Value::Null);
            }
            let mut saw_null = false;
            for item in list {
                let candidate = evaluate(item, ctx)?;
                if candidate.is_null() {
                    saw_null = true;
                } else if compare(&v, &candidate)? == Ordering::Equal {
                    return Ok(Value::Bool(!negated));
                }
            }
            if saw_null {
                Value::Null
            } else {
                Value::Bool(*negated)
            }
        }
        Expr::Between {
            expr,
            low,
            high,
            negated,
        } => {
            let (v, lo, hi) = (evaluate(expr, ctx)?, evaluate(low, ctx)?, evaluate(high, ctx)?);
            if v.is_null() || lo.is_null() || hi.is_null() {
                return Ok(Value::Null);
            }
            let inside = compare(&v, &lo)? != Ordering::Less && compare(&v, &hi)? != Ordering::Greater;
            Value::Bool(inside != *negated)
        }
        Expr::Like {
            expr,
            pattern,
            negated,
            case_insensitive,
        } => {
            let (v, p) = (evaluate(expr, ctx)?, evaluate(pattern, ctx)?);
            match (&v, &p) {
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (Value::String(s), Value::String(p)) => {
                    let matched = if *case_insensitive {
                        like(&s.to_lowercase(), &p.to_lowercase())
                    } else {
                        like(s, p)
                    };
                    Value::Bool(matched != *negated)
                }
                _ => {
                    return Err(EvalError(format!(
                        "LIKE needs text, got {} LIKE {}",
                        type_name(&v),
                        type_name(&p)
                    )));
                }
            }
        }
        Expr::Case {
            operand,
            whens,
            otherwise,
        } => {
            let subject = operand.as_ref().map(|o| evaluate(o, ctx)).transpose()?;
            for (when, then) in whens {
                let w = evaluate(when, ctx)?;
                let hit = match &subject {
                    Some(s) => sql_equal(s, &w) == Some(true),
                    None => is_true(&w),
                };
                if hit {
                    return evaluate(then, ctx);
                }
            }
            match otherwise {
                Some(e) => evaluate(e, ctx)?,
                None => Value::Null,
            }
        }
        Expr::Cast(e, ty) => cast(evaluate(e, ctx)?, *ty)?,
        Expr::Call(func, args) => {
            let values = args
                .iter()
                .map(|a| evaluate(a, ctx))
                .collect::<Result<Vec<_>, _>>()?;
            func.call(&values)?
        }
    })
}

fn logic(op: BinaryOp, a: &Expr, b: &Expr, ctx: &Context<'_>) -> Result<Value, EvalError> {
    let truth = |v: Value, side: &str| -> Result<Option<bool>, EvalError> {
        match v {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(b)),
            other => Err(EvalError(format!(
                "{side} of {op:?} must be a boolean, got {}",
                type_name(&other)
            ))),
        }
    };
    let left = truth(evaluate(a, ctx)?, "the left side")?;
    // Short-circuit as SQL engines do: FALSE AND x, TRUE OR x.
    match (op, left) {
        (BinaryOp::And, Some(false)) => return Ok(Value::Bool(false)),
        (BinaryOp::Or, Some(true)) => return Ok(Value::Bool(true)),
        _ => {}
    }
    let right = truth(evaluate(b, ctx)?, "the right side")?;
    Ok(match (op, left, right) {
        (BinaryOp::And, _, Some(false)) | (BinaryOp::Or, Some(false), Some(false)) => Value::Bool(false),
        (BinaryOp::And, Some(true), Some(true)) | (BinaryOp::Or, _, Some(true)) => Value::Bool(true),
        _ => Value::Null,
    })
}

/// SQL `=` of two values: `None` when either is NULL or they cannot be compared.
pub(crate) fn sql_equal(a: &Value, b: &Value) -> Option<bool> {
    if a.is_null() || b.is_null() {
        return None;
    }
    compare(a, b).ok().map(|o| o == Ordering::Equal)
}

/// Orders two non-NULL values of the same kind.
pub(crate) fn compare(a: &Value, b: &Value) -> Result<Ordering, EvalError> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Ok(if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
            x.cmp(&y)
        } else {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Array(_) | Value::Object(_), _) if a == b => Ok(Ordering::Equal),
        _ => Err(EvalError(format!(
            "cannot compare {} with {} (CAST one side)",
            type_name(a),
            type_name(b)
        ))),
    }
}

/// `+ - * / %` on two non-NULL values.
pub(crate) fn arithmetic(op: BinaryOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    let symbol = format!("{op:?}");
    let (Value::Number(x), Value::Number(y)) = (a, b) else {
        return Err(EvalError(format!(
            "{symbol} needs numbers, got {} and {}",
            type_name(a),
            type_name(b)
        )));
    };
    if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
        let result = match op {
            BinaryOp::Add => x.checked_add(y),
            BinaryOp::Sub => x.checked_sub(y),
            BinaryOp::Mul => x.checked_mul(y),
            BinaryOp::Div | BinaryOp::Mod if y == 0 => return Ok(Value::Null),
            BinaryOp::Div => x.checked_div(y),
            BinaryOp::Mod => x.checked_rem(y),
            _ => None,
        };
        return result.map(Value::from).ok_or_else(|| overflow(&symbol));
    }
    let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
    Ok(match op {
        BinaryOp::Add => number(x + y),
        BinaryOp::Sub => number(x - y),
        BinaryOp::Mul => number(x * y),
        BinaryOp::Div | BinaryOp::Mod if y == 0.0 => Value::Null,
        BinaryOp::Div => number(x / y),
        BinaryOp::Mod => number(x % y),
        _ => Value::Null,
    })
}

fn overflow(op: &str) -> EvalError {
    EvalError(format!("integer overflow in {op}"))
}

/// A float as a JSON number (NaN and infinities, which JSON cannot hold, as NULL).
pub(crate) fn number(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// The value as a float, when it is a number.
pub(crate) fn as_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The value as an integer, when it is an integral number.
pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| {
                    #[allow(clippy::cast_possible_truncation)] // integral and in range
                    let i = f as i64;
                    i
                })
        }),
        _ => None,
    }
}

/// The SQL type name of a JSON value, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Bool(_) => "BOOLEAN",
        Value::Number(n) if n.is_f64() => "DOUBLE",
        Value::Number(_) => "BIGINT",
        Value::String(_) => "VARCHAR",
        Value::Array(_) => "ARRAY",
        Value::Object(_) => "STRUCT",
    }
}

/// Text of a value as `||` and `CAST(… AS VARCHAR)` produce it.
pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `CAST(v AS ty)`: converts or fails naming the value (NULL stays NULL).
pub fn cast(v: Value, ty: SqlType) -> Result<Value, EvalError> {
    let fail = |v: &Value| EvalError(format!("cannot CAST {} {v} AS {}", type_name(v), ty.name()));
    Ok(match (ty, &v) {
        (_, Value::Null) => Value::Null,
        (SqlType::String, _) => Value::String(value_text(&v)),
        (SqlType::BigInt | SqlType::Timestamp, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                // Toward zero, as Java's (and ksqlDB's) cast does.
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() || f.abs() >= 9.2e18 {
                    return Err(fail(&v));
                }
                #[allow(clippy::cast_possible_truncation)] // checked range
                Value::from(f.trunc() as i64)
            }
        }
        (SqlType::BigInt, Value::String(s)) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => Value::from(i),
                Err(_) => match s.parse::<f64>() {
                    Ok(f) if f.is_finite() && f.abs() < 9.2e18 => {
                        #[allow(clippy::cast_possible_truncation)] // checked range
                        Value::from(f.trunc() as i64)
                    }
                    _ => return Err(fail(&v)),
                },
            }
        }
        (SqlType::BigInt, Value::Bool(b)) => Value::from(i64::from(*b)),
        (SqlType::Double, Value::Number(n)) => number(n.as_f64().unwrap_or(f64::NAN)),
        (SqlType::Double, Value::String(s)) => number(s.trim().parse::<f64>().map_err(|_| fail(&v))?),
        (SqlType::Double, Value::Bool(b)) => number(if *b { 1.0 } else { 0.0 }),
        (SqlType::Boolean, Value::Bool(_)) => v,
        (SqlType::Boolean, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "1" => Value::Bool(true),
            "false" | "f" | "no" | "0" => Value::Bool(false),
            _ => return Err(fail(&v)),
        },
        (SqlType::Boolean, Value::Number(n)) => Value::Bool(n.as_f64().is_some_and(|f| f != 0.0)),
        (SqlType::Timestamp, Value::String(s)) => Value::from(
            crate::functions::parse_timestamp_text(s.trim())
                .ok_or_else(|| fail(&v))?
                .as_millisecond(),
        ),
        _ => return Err(fail(&v)),
    })
}

/// SQL `LIKE`: `%` matches any run of characters, `_` exactly one.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Greedy matching with backtracking to the last `%` (linear in practice).
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn like_matches_sql_wildcards() {
        assert!(like("hello", "h%o"));
        assert!(like("hello", "_ello"));
        assert!(like("hello", "%"));
        assert!(!like("hello", "h_o"));
        assert!(like("a%b", "a%b"));
        assert!(!like("", "_"));
    }

    #[test]
    fn casts_convert_or_fail_naming_the_value() {
        assert_eq!(cast(json!("42"), SqlType::BigInt).unwrap(), json!(42));
        assert_eq!(cast(json!(2.9), SqlType::BigInt).unwrap(), json!(2));
        assert_eq!(cast(json!(3), SqlType::String).unwrap(), json!("3"));
        assert_eq!(cast(json!("2.5"), SqlType::Double).unwrap(), json!(2.5));
        assert_eq!(
            cast(json!("1970-01-01T00:00:01Z"), SqlType::Timestamp).unwrap(),
            json!(1000)
        );
        let error = cast(json!("x"), SqlType::BigInt).unwrap_err().to_string();
        assert!(error.contains("cannot CAST VARCHAR \"x\" AS BIGINT"), "{error}");
    }

    #[test]
    fn integer_arithmetic_stays_integral_and_division_by_zero_is_null() {
        assert_eq!(arithmetic(BinaryOp::Div, &json!(7), &json!(2)).unwrap(), json!(3));
        assert_eq!(
            arithmetic(BinaryOp::Div, &json!(7.0), &json!(2)).unwrap(),
            json!(3.5)
        );
        assert_eq!(
            arithmetic(BinaryOp::Div, &json!(7), &json!(0)).unwrap(),
            Value::Null
        );
        assert!(arithmetic(BinaryOp::Mul, &json!(i64::MAX), &json!(2)).is_err());
        assert!(arithmetic(BinaryOp::Add, &json!("1"), &json!(2)).is_err());
    }
}
