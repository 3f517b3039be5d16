//! Scalar functions: string, math, null handling and date-time.
//!
//! Timestamps are epoch milliseconds (BIGINT), as `ROWTIME` is; text
//! timestamps are RFC 3339. Functions return NULL for a NULL argument unless
//! they exist to handle NULLs (`COALESCE`, `NULLIF`, `IFNULL`, `CONCAT`).

use serde_json::{Number, Value};

use crate::error::EvalError;
use crate::eval::{as_f64, as_i64, number, type_name, value_text};

/// A scalar function known to the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `UPPER(s)`
    Upper,
    /// `LOWER(s)`
    Lower,
    /// `LENGTH(s)` (characters)
    Length,
    /// `TRIM(s)`, also `TRIM([BOTH|LEADING|TRAILING] [chars] FROM s)` forms without chars
    Trim,
    /// `LTRIM(s)`
    LTrim,
    /// `RTRIM(s)`
    RTrim,
    /// `SUBSTRING(s, start [, length])` 1-based, also `SUBSTRING(s FROM a FOR b)`
    Substring,
    /// `CONCAT(a, b, …)` (NULLs skipped)
    Concat,
    /// `REPLACE(s, from, to)`
    Replace,
    /// `SPLIT_PART(s, delimiter, n)` 1-based
    SplitPart,
    /// `ABS(x)`
    Abs,
    /// `ROUND(x [, digits])` half away from zero
    Round,
    /// `FLOOR(x)`
    Floor,
    /// `CEIL(x)`
    Ceil,
    /// `SQRT(x)`
    Sqrt,
    /// `POWER(x, y)`
    Power,
    /// `MOD(a, b)`
    Mod,
    /// `LN(x)`
    Ln,
    /// `EXP(x)`
    Exp,
    /// `SIGN(x)`
    Sign,
    /// `COALESCE(a, b, …)` first non-NULL
    Coalesce,
    /// `NULLIF(a, b)` NULL when equal
    NullIf,
    /// `IFNULL(a, b)` = `COALESCE(a, b)`
    IfNull,
    /// `FORMAT_TIMESTAMP(ms [, strftime format])` → text (UTC; default RFC 3339)
    FormatTimestamp,
    /// `PARSE_TIMESTAMP(text [, strftime format])` → epoch ms (RFC 3339 or `YYYY-MM-DD HH:MM:SS` UTC by default)
    ParseTimestamp,
    /// `DATE_TRUNC(unit, ms)` → epoch ms at the start of the unit (UTC)
    DateTrunc,
    /// `EXTRACT(field FROM ms)` → number (YEAR … SECOND, MILLISECOND, DOW, DOY, EPOCH)
    Extract,
    /// `JSON_STRING(x)` → the value as JSON text
    JsonString,
}

/// Every function by its SQL name, with the allowed argument counts.
const FUNCTIONS: &[(&str, Function, usize, usize)] = &[
    ("UPPER", Function::Upper, 1, 1),
    ("LOWER", Function::Lower, 1, 1),
    ("LENGTH", Function::Length, 1, 1),
    ("CHAR_LENGTH", Function::Length, 1, 1),
    ("TRIM", Function::Trim, 1, 1),
    ("LTRIM", Function::LTrim, 1, 1),
    ("RTRIM", Function::RTrim, 1, 1),
    ("SUBSTRING", Function::Substring, 2, 3),
    ("SUBSTR", Function::Substring, 2, 3),
    ("CONCAT", Function::Concat, 1, 64),
    ("REPLACE", Function::Replace, 3, 3),
    ("SPLIT_PART", Function::SplitPart, 3, 3),
    ("ABS", Function::Abs, 1, 1),
    ("ROUND", Function::Round, 1, 2),
    ("FLOOR", Function::Floor, 1, 1),
    ("CEIL", Function::Ceil, 1, 1),
    ("CEILING", Function::Ceil, 1, 1),
    ("SQRT", Function::Sqrt, 1, 1),
    ("POWER", Function::Power, 2, 2),
    ("POW", Function::Power, 2, 2),
    ("MOD", Function::Mod, 2, 2),
    ("LN", Function::Ln, 1, 1),
    ("EXP", Function::Exp, 1, 1),
    ("SIGN", Function::Sign, 1, 1),
    ("COALESCE", Function::Coalesce, 1, 64),
    ("NULLIF", Function::NullIf, 2, 2),
    ("IFNULL", Function::IfNull, 2, 2),
    ("FORMAT_TIMESTAMP", Function::FormatTimestamp, 1, 2),
    ("PARSE_TIMESTAMP", Function::ParseTimestamp, 1, 2),
    ("DATE_TRUNC", Function::DateTrunc, 2, 2),
    ("EXTRACT", Function::Extract, 2, 2),
    ("JSON_STRING", Function::JsonString, 1, 1),
];

impl Function {
    /// Looks a function up by name (any case), with its allowed argument counts.
    pub(crate) fn lookup(name: &str) -> Option<(Self, usize, usize)> {
        FUNCTIONS
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .map(|(_, f, min, max)| (*f, *min, *max))
    }

    /// Names of every function, for error messages.
    pub(crate) fn all_names() -> String {
        let names: Vec<&str> = FUNCTIONS.iter().map(|(n, ..)| *n).collect();
        names.join(", ")
    }

    /// The SQL name.
    pub fn name(self) -> &'static str {
        FUNCTIONS
            .iter()
            .find(|(_, f, ..)| *f == self)
            .map_or("?", |(n, ..)| *n)
    }

    /// Computes the function on evaluated arguments.
    #[allow(clippy::too_many_lines)] // one arm per function
    pub fn call(self, args: &[Value]) -> Result<Value, EvalError> {
        match self {
            Self::Coalesce | Self::IfNull => {
                return Ok(args.iter().find(|v| !v.is_null()).cloned().unwrap_or(Value::Null));
            }
            Self::NullIf => {
                return Ok(if crate::eval::sql_equal(&args[0], &args[1]) == Some(true) {
                    Value::Null
                } else {
                    args[0].clone()
                });
            }
            Self::Concat => {
                let mut out = String::new();
                for v in args.iter().filter(|v| !v.is_null()) {
                    out.push_str(&value_text(v));
                }
                return Ok(Value::String(out));
            }
            Self::JsonString => return Ok(Value::String(args[0].to_string())),
            _ => {}
        }
        if args.iter().any(Value::is_null) {
            return Ok(Value::Null);
        }
        let name = self.name();
        let text = |i: usize| -> Result<&str, EvalError> {
            args[i].as_str().ok_or_else(|| {
                EvalError(format!(
                    "{name}: argument {} must be text, got {}",
                    i + 1,
                    type_name(&args[i])
                ))
            })
        };
        let float = |i: usize| -> Result<f64, EvalError> {
            as_f64(&args[i]).ok_or_else(|| {
                EvalError(format!(
                    "{name}: argument {} must be a number, got {}",
                    i + 1,
                    type_name(&args[i])
                ))
            })
        };
        let int = |i: usize| -> Result<i64, EvalError> {
            as_i64(&args[i]).ok_or_else(|| {
                EvalError(format!(
                    "{name}: argument {} must be an integer, got {}",
                    i + 1,
                    type_name(&args[i])
                ))
            })
        };
        Ok(match self {
            Self::Upper => Value::String(text(0)?.to_uppercase()),
            Self::Lower => Value::String(text(0)?.to_lowercase()),
            Self::Length => Value::from(text(0)?.chars().count()),
            Self::Trim => Value::String(text(0)?.trim().to_owned()),
            Self::LTrim => Value::String(text(0)?.trim_start().to_owned()),
            Self::RTrim => Value::String(text(0)?.trim_end().to_owned()),
            Self::Substring => {
                let s = text(0)?;
                // SQL semantics: positions before 1 still count against the length.
                let start = int(1)?;
                let end = if args.len() == 3 {
                    let len = int(2)?;
                    if len < 0 {
                        return Err(EvalError(format!("{name}: negative length {len}")));
                    }
                    start.saturating_add(len)
                } else {
                    i64::MAX
                };
                let from = usize::try_from(start.max(1) - 1).unwrap_or(usize::MAX);
                let to = usize::try_from((end.max(1) - 1).max(0)).unwrap_or(usize::MAX);
                Value::String(s.chars().skip(from).take(to.saturating_sub(from)).collect())
            }
            Self::Replace => Value::String(text(0)?.replace(text(1)?, text(2)?)),
            Self::SplitPart => {
                let n = int(2)?;
                let index = usize::try_from(n - 1)
                    .map_err(|_| EvalError(format!("{name}: the part number must be 1 or more, got {n}")))?;
                Value::String(text(0)?.split(text(1)?).nth(index).unwrap_or_default().to_owned())
            }
            Self::Abs => match &args[0] {
                Value::Number(n) if n.is_i64() => n
                    .as_i64()
                    .and_then(i64::checked_abs)
                    .map_or(Value::Null, Value::from),
                _ => number(float(0)?.abs()),
            },
            Self::Round => {
                let digits = if args.len() == 2 { int(1)? } else { 0 };
                match &args[0] {
                    Value::Number(n) if n.is_i64() || n.is_u64() => args[0].clone(),
                    _ => {
                        let factor = 10f64.powi(i32::try_from(digits.clamp(-15, 15)).unwrap_or(0));
                        let rounded = (float(0)? * factor).round() / factor;
                        if digits <= 0 {
                            integral(rounded)
                        } else {
                            number(rounded)
                        }
                    }
                }
            }
            Self::Floor => integral_or_same(&args[0], float(0)?.floor()),
            Self::Ceil => integral_or_same(&args[0], float(0)?.ceil()),
            Self::Sqrt => {
                let x = float(0)?;
                if x < 0.0 {
                    return Err(EvalError(format!("{name}: cannot take the square root of {x}")));
                }
                number(x.sqrt())
            }
            Self::Power => number(float(0)?.powf(float(1)?)),
            Self::Mod => crate::eval::arithmetic(crate::expr::BinaryOp::Mod, &args[0], &args[1])?,
            Self::Ln => {
                let x = float(0)?;
                if x <= 0.0 {
                    return Err(EvalError(format!(
                        "{name}: the logarithm needs a positive number, got {x}"
                    )));
                }
                number(x.ln())
            }
            Self::Exp => number(float(0)?.exp()),
            Self::Sign => {
                let x = float(0)?;
                Value::from(if x > 0.0 {
                    1
                } else if x < 0.0 {
                    -1
                } else {
                    0
                })
            }
            Self::FormatTimestamp => {
                let ts = timestamp(int(0)?)?;
                if args.len() == 2 {
                    let zoned = ts.to_zoned(jiff::tz::TimeZone::UTC);
                    Value::String(
                        jiff::fmt::strtime::format(text(1)?, &zoned)
                            .map_err(|e| EvalError(format!("{name}: {e}")))?,
                    )
                } else {
                    Value::String(ts.to_string())
                }
            }
            Self::ParseTimestamp => {
                let s = text(0)?;
                let parsed = if args.len() == 2 {
                    jiff::fmt::strtime::parse(text(1)?, s)
                        .and_then(|tm| match tm.to_timestamp() {
                            Ok(ts) => Ok(ts),
                            Err(_) => tm
                                .to_datetime()
                                .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
                                .map(|z| z.timestamp()),
                        })
                        .map_err(|e| EvalError(format!("{name}: {s:?} does not match the format: {e}")))?
                } else {
                    parse_timestamp_text(s).ok_or_else(|| {
                        EvalError(format!(
                            "{name}: {s:?} is not an RFC 3339 timestamp or YYYY-MM-DD HH:MM:SS"
                        ))
                    })?
                };
                Value::from(parsed.as_millisecond())
            }
            Self::DateTrunc => {
                let unit = text(0)?.to_ascii_lowercase();
                let ms = int(1)?;
                Value::from(truncate(&unit, ms).map_err(|e| EvalError(format!("{name}: {e}")))?)
            }
            Self::Extract => {
                let field = text(0)?.to_ascii_lowercase();
                let ms = int(1)?;
                extract(&field, ms).map_err(|e| EvalError(format!("EXTRACT: {e}")))?
            }
            Self::Coalesce | Self::IfNull | Self::NullIf | Self::Concat | Self::JsonString => Value::Null,
        })
    }
}

fn integral(x: f64) -> Value {
    if x.is_finite() && x.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)] // checked to be integral and in range
        Value::from(x as i64)
    } else {
        number(x)
    }
}

fn integral_or_same(arg: &Value, x: f64) -> Value {
    match arg {
        Value::Number(n) if n.is_i64() || n.is_u64() => arg.clone(),
        _ => integral(x),
    }
}

fn timestamp(ms: i64) -> Result<jiff::Timestamp, EvalError> {
    jiff::Timestamp::from_millisecond(ms)
        .map_err(|e| EvalError(format!("{ms} is not a valid timestamp: {e}")))
}

/// RFC 3339 (with offset), or `YYYY-MM-DD[ T]HH:MM:SS[.fff]` read as UTC.
pub(crate) fn parse_timestamp_text(s: &str) -> Option<jiff::Timestamp> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    s.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

fn truncate(unit: &str, ms: i64) -> Result<i64, String> {
    let fixed = match unit {
        "millisecond" => Some(1),
        "second" => Some(1000),
        "minute" => Some(60_000),
        "hour" => Some(3_600_000),
        "day" => Some(86_400_000),
        _ => None,
    };
    if let Some(size) = fixed {
        return Ok(ms - ms.rem_euclid(size));
    }
    let zoned = jiff::Timestamp::from_millisecond(ms)
        .map_err(|e| e.to_string())?
        .to_zoned(jiff::tz::TimeZone::UTC);
    let date = zoned.date();
    let start = match unit {
        "week" => {
            let back = i64::from(date.weekday().to_monday_zero_offset());
            date.checked_sub(jiff::Span::new().days(back))
                .map_err(|e| e.to_string())?
        }
        "month" => date.first_of_month(),
        "quarter" => jiff::civil::date(date.year(), (date.month() - 1) / 3 * 3 + 1, 1),
        "year" => jiff::civil::date(date.year(), 1, 1),
        other => {
            return Err(format!(
                "unknown unit {other:?}; allowed: millisecond, second, minute, hour, day, week, month, quarter, year"
            ));
        }
    };
    start
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| e.to_string())
}

fn extract(field: &str, ms: i64) -> Result<Value, String> {
    let zoned = jiff::Timestamp::from_millisecond(ms)
        .map_err(|e| e.to_string())?
        .to_zoned(jiff::tz::TimeZone::UTC);
    Ok(match field {
        "year" => Value::from(zoned.year()),
        "quarter" => Value::from((zoned.month() - 1) / 3 + 1),
        "month" => Value::from(zoned.month()),
        "week" => Value::from(zoned.date().iso_week_date().week()),
        "day" => Value::from(zoned.day()),
        "dow" => Value::from(zoned.weekday().to_sunday_zero_offset()),
        "doy" => Value::from(zoned.day_of_year()),
        "hour" => Value::from(zoned.hour()),
        "minute" => Value::from(zoned.minute()),
        "second" => Value::from(zoned.second()),
        "millisecond" => Value::from(zoned.millisecond()),
        "epoch" => Value::Number(Number::from(ms.div_euclid(1000))),
        other => {
            return Err(format!(
                "unknown field {other:?}; allowed: YEAR, QUARTER, MONTH, WEEK, DAY, DOW, DOY, HOUR, MINUTE, SECOND, MILLISECOND, EPOCH"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn string_functions_follow_sql() {
        assert_eq!(Function::Upper.call(&[json!("eu")]).unwrap(), json!("EU"));
        assert_eq!(
            Function::Substring
                .call(&[json!("hello"), json!(2), json!(3)])
                .unwrap(),
            json!("ell")
        );
        assert_eq!(
            Function::Substring
                .call(&[json!("hello"), json!(0), json!(2)])
                .unwrap(),
            json!("h")
        );
        assert_eq!(
            Function::Concat
                .call(&[json!("a"), Value::Null, json!(1)])
                .unwrap(),
            json!("a1")
        );
        assert_eq!(
            Function::SplitPart
                .call(&[json!("a.b.c"), json!("."), json!(2)])
                .unwrap(),
            json!("b")
        );
        assert_eq!(Function::Length.call(&[Value::Null]).unwrap(), Value::Null);
    }

    #[test]
    fn math_keeps_integers_integral() {
        assert_eq!(Function::Abs.call(&[json!(-3)]).unwrap(), json!(3));
        assert_eq!(Function::Round.call(&[json!(2.5)]).unwrap(), json!(3));
        assert_eq!(
            Function::Round.call(&[json!(2.345), json!(2)]).unwrap(),
            json!(2.35)
        );
        assert_eq!(Function::Floor.call(&[json!(-1.5)]).unwrap(), json!(-2));
        assert!(Function::Sqrt.call(&[json!(-1)]).is_err());
    }

    #[test]
    fn timestamps_are_epoch_milliseconds() {
        let ms: i64 = 1_767_323_045_123; // 2026-01-02T03:04:05.123Z
        assert_eq!(
            Function::FormatTimestamp.call(&[json!(ms)]).unwrap(),
            json!("2026-01-02T03:04:05.123Z")
        );
        assert_eq!(
            Function::ParseTimestamp
                .call(&[json!("2026-01-02T03:04:05.123Z")])
                .unwrap(),
            json!(ms)
        );
        assert_eq!(
            Function::ParseTimestamp
                .call(&[json!("2026-01-02 03:04:05.123")])
                .unwrap(),
            json!(ms)
        );
        assert_eq!(
            Function::DateTrunc.call(&[json!("minute"), json!(ms)]).unwrap(),
            json!(1_767_323_040_000_i64)
        );
        assert_eq!(
            Function::DateTrunc.call(&[json!("month"), json!(ms)]).unwrap(),
            json!(1_767_225_600_000_i64)
        );
        assert_eq!(
            Function::Extract.call(&[json!("hour"), json!(ms)]).unwrap(),
            json!(3)
        );
        assert!(
            Function::DateTrunc
                .call(&[json!("fortnight"), json!(ms)])
                .is_err()
        );
    }
}
