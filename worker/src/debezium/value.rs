//! Postgres column values (text format, as pgoutput sends them) converted to
//! the JSON encoding of the Kafka Connect types Debezium's Postgres connector
//! uses by default, plus the matching Connect schemas.
//!
//! | Postgres | Connect type (logical name) | JSON value |
//! |---|---|---|
//! | `bool` | boolean | `true` |
//! | `int2` / `int4` / `int8` | int16 / int32 / int64 | number |
//! | `float4` / `float8` | float / double | number |
//! | `numeric(p,s)` | bytes (`org.apache.kafka.connect.data.Decimal`) | base64 of the unscaled value |
//! | `numeric` | struct (`io.debezium.data.VariableScaleDecimal`) | `{"scale", "value"}` |
//! | `text`, `varchar`, `char` | string | string |
//! | `date` | int32 (`io.debezium.time.Date`) | days since 1970-01-01 |
//! | `timestamp(p≤3)` / `timestamp` | int64 (`io.debezium.time.Timestamp` / `MicroTimestamp`) | ms / µs since epoch |
//! | `timestamptz` | string (`io.debezium.time.ZonedTimestamp`) | ISO-8601 in UTC |
//! | `time(p≤3)` / `time` | int32 `io.debezium.time.Time` / int64 `MicroTime` | ms / µs since midnight |
//! | `uuid` | string (`io.debezium.data.Uuid`) | string |
//! | `json`, `jsonb` | string (`io.debezium.data.Json`) | the JSON text |
//! | `bytea` | bytes | base64 |
//! | enum types | string (`io.debezium.data.Enum`) | label |
//! | one-dimensional arrays | array of the element type | array |

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use num_bigint::BigInt;
use serde_json::{Value, json};

/// A column's type, as far as the conversion needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgType {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric(precision, scale)`; `None` when declared without a scale.
    Numeric(Option<(u32, u32)>),
    /// `text`, `varchar`, `bpchar`, `name`.
    Text,
    /// `date`.
    Date,
    /// `timestamp` with its fractional-second precision (default 6).
    Timestamp(u32),
    /// `timestamptz` with its fractional-second precision (default 6).
    TimestampTz(u32),
    /// `time` with its fractional-second precision (default 6).
    Time(u32),
    /// `uuid`.
    Uuid,
    /// `json` or `jsonb`.
    Json,
    /// `bytea`.
    Bytea,
    /// A user-defined enum with its labels.
    Enum(Vec<String>),
    /// A one-dimensional array of the element type.
    Array(Box<PgType>),
}

/// A value Postgres sent that the mapping cannot represent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    /// The text is not a valid value of the column's type.
    #[error("invalid {type_name} value {text:?}: {reason}")]
    Invalid {
        /// The column type.
        type_name: &'static str,
        /// The text received (never a secret: it is row data the user streams).
        text: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(type_name: &'static str, text: &str, reason: impl Into<String>) -> ValueError {
    ValueError::Invalid {
        type_name,
        text: text.to_owned(),
        reason: reason.into(),
    }
}

/// Converts one non-null column value from Postgres text format.
pub fn convert(pg_type: &PgType, text: &str) -> Result<Value, ValueError> {
    Ok(match pg_type {
        PgType::Bool => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => return Err(invalid("bool", text, "expected t or f")),
        },
        PgType::Int2 | PgType::Int4 | PgType::Int8 => {
            json!(
                text.parse::<i64>()
                    .map_err(|e| invalid("integer", text, e.to_string()))?
            )
        }
        PgType::Float4 | PgType::Float8 => float(text)?,
        PgType::Numeric(Some((_, scale))) => {
            let unscaled = unscaled_decimal(text, *scale)?;
            Value::String(BASE64.encode(unscaled.to_signed_bytes_be()))
        }
        PgType::Numeric(None) => {
            let scale = text.split_once('.').map_or(0, |(_, fraction)| fraction.len());
            let scale = u32::try_from(scale).map_err(|_| invalid("numeric", text, "scale too large"))?;
            let unscaled = unscaled_decimal(text, scale)?;
            json!({"scale": scale, "value": BASE64.encode(unscaled.to_signed_bytes_be())})
        }
        PgType::Text | PgType::Uuid | PgType::Json | PgType::Enum(_) => Value::String(text.to_owned()),
        PgType::Date => json!(days_since_epoch(text)?),
        PgType::Timestamp(precision) => {
            let micros = timestamp_micros(text)?;
            if *precision <= 3 {
                json!(micros.div_euclid(1000))
            } else {
                json!(micros)
            }
        }
        PgType::TimestampTz(precision) => Value::String(zoned_timestamp(text, *precision)?),
        PgType::Time(precision) => {
            let micros = time_micros(text)?;
            if *precision <= 3 {
                json!(micros / 1000)
            } else {
                json!(micros)
            }
        }
        PgType::Bytea => Value::String(BASE64.encode(bytea(text)?)),
        PgType::Array(element) => Value::Array(
            parse_array(text)?
                .into_iter()
                .map(|item| item.map_or(Ok(Value::Null), |t| convert(element, &t)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// The Connect schema of a column of this type (for the JSON-with-schema
/// format), as Debezium declares it, with the column's default value.
/// Attributes are in the order Connect's `JsonConverter` writes them.
pub fn connect_schema(pg_type: &PgType, field: &str, optional: bool, default: Option<&Value>) -> Value {
    let (type_, name, parameters) = match pg_type {
        PgType::Bool => ("boolean", None, None),
        PgType::Int2 => ("int16", None, None),
        PgType::Int4 => ("int32", None, None),
        PgType::Int8 => ("int64", None, None),
        PgType::Float4 => ("float", None, None),
        PgType::Float8 => ("double", None, None),
        PgType::Numeric(Some((precision, scale))) => (
            "bytes",
            Some("org.apache.kafka.connect.data.Decimal"),
            Some(json!({"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()})),
        ),
        PgType::Numeric(None) => ("struct", Some("io.debezium.data.VariableScaleDecimal"), None),
        PgType::Text => ("string", None, None),
        PgType::Date => ("int32", Some("io.debezium.time.Date"), None),
        PgType::Timestamp(p) if *p <= 3 => ("int64", Some("io.debezium.time.Timestamp"), None),
        PgType::Timestamp(_) => ("int64", Some("io.debezium.time.MicroTimestamp"), None),
        PgType::TimestampTz(_) => ("string", Some("io.debezium.time.ZonedTimestamp"), None),
        PgType::Time(p) if *p <= 3 => ("int32", Some("io.debezium.time.Time"), None),
        PgType::Time(_) => ("int64", Some("io.debezium.time.MicroTime"), None),
        PgType::Uuid => ("string", Some("io.debezium.data.Uuid"), None),
        PgType::Json => ("string", Some("io.debezium.data.Json"), None),
        PgType::Bytea => ("bytes", None, None),
        PgType::Enum(labels) => (
            "string",
            Some("io.debezium.data.Enum"),
            Some(json!({"allowed": labels.join(",")})),
        ),
        PgType::Array(_) => ("array", None, None),
    };
    let mut schema = serde_json::Map::new();
    schema.insert("type".to_owned(), json!(type_));
    match pg_type {
        PgType::Array(element) => {
            schema.insert("items".to_owned(), connect_schema(element, "", true, None));
        }
        PgType::Numeric(None) => {
            schema.insert(
                "fields".to_owned(),
                json!([{"type": "int32", "optional": false, "field": "scale"},
                       {"type": "bytes", "optional": false, "field": "value"}]),
            );
        }
        _ => {}
    }
    schema.insert("optional".to_owned(), Value::Bool(optional));
    if let Some(name) = name {
        schema.insert("name".to_owned(), json!(name));
        schema.insert("version".to_owned(), json!(1));
    }
    if matches!(pg_type, PgType::Numeric(None)) {
        schema.insert("doc".to_owned(), json!("Variable scaled decimal"));
    }
    if let Some(parameters) = parameters {
        schema.insert("parameters".to_owned(), parameters);
    }
    if let Some(default) = default {
        schema.insert("default".to_owned(), default.clone());
    }
    if !field.is_empty() {
        schema.insert("field".to_owned(), Value::String(field.to_owned()));
    }
    Value::Object(schema)
}

/// The value Debezium writes for a NULL in a column that is not optional
/// (NOT NULL, or a key column missing from an old-key tuple) and has no
/// default: the type's zero.
pub fn fallback(pg_type: &PgType) -> Value {
    match pg_type {
        PgType::Bool => Value::Bool(false),
        PgType::Int2
        | PgType::Int4
        | PgType::Int8
        | PgType::Date
        | PgType::Timestamp(_)
        | PgType::Time(_) => json!(0),
        PgType::Float4 | PgType::Float8 => json!(0.0),
        // Unscaled zero as one big-endian byte.
        PgType::Numeric(Some(_)) => json!("AA=="),
        PgType::Numeric(None) => json!({"scale": 0, "value": "AA=="}),
        PgType::TimestampTz(_) => json!("1970-01-01T00:00:00Z"),
        PgType::Text | PgType::Uuid | PgType::Json | PgType::Bytea | PgType::Enum(_) => json!(""),
        PgType::Array(_) => json!([]),
    }
}

/// The schema default of a column, from its default expression as
/// `pg_get_expr` prints it, as Debezium derives it: a literal
/// (`'2024-03-01'::date`, `42`, `true`, `'-1'::integer`) is converted like a
/// value; anything else (`nextval(…)`, `now()`) has no value the connector
/// can know, so a non-optional column gets the type's zero and an optional
/// one no default.
pub fn column_default(pg_type: &PgType, expression: Option<&str>, optional: bool) -> Option<Value> {
    let zero = || (!optional).then(|| fallback(pg_type));
    match literal(expression?) {
        Some(Literal::Null) => None,
        Some(Literal::Text(text)) => convert(pg_type, &text).ok().or_else(zero),
        None => zero(),
    }
}

/// A literal default expression.
enum Literal {
    /// `NULL` (with or without a cast).
    Null,
    /// A value in text form, e.g. `2024-03-01` of `'2024-03-01'::date`.
    Text(String),
}

/// The literal a default expression is, if it is one.
fn literal(expression: &str) -> Option<Literal> {
    let expression = expression.trim();
    if expression.starts_with("NULL") {
        return Some(Literal::Null);
    }
    if let Some(quoted) = expression.strip_prefix('\'') {
        // 'text'::type, with '' for a quote inside; the cast must name a type, not call anything.
        let mut text = String::new();
        let mut chars = quoted.chars().peekable();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    text.push('\'');
                }
                Some('\'') => break,
                Some(c) => text.push(c),
                None => return None,
            }
        }
        let rest: String = chars.collect();
        return ((rest.is_empty() || rest.starts_with("::")) && !rest.contains('('))
            .then_some(Literal::Text(text));
    }
    let bare = expression.split("::").next().unwrap_or(expression);
    let is_literal = bare == "true"
        || bare == "false"
        || (!bare.is_empty()
            && bare
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')));
    is_literal.then(|| Literal::Text(bare.trim_matches(['(', ')']).to_owned()))
}

fn float(text: &str) -> Result<Value, ValueError> {
    // Debezium writes NaN and infinities as JSON numbers are unable to: keep
    // them as the strings Jackson would produce.
    match text {
        "NaN" => return Ok(Value::String("NaN".into())),
        "Infinity" => return Ok(Value::String("Infinity".into())),
        "-Infinity" => return Ok(Value::String("-Infinity".into())),
        _ => {}
    }
    let parsed: f64 = text
        .parse()
        .map_err(|e: std::num::ParseFloatError| invalid("float", text, e.to_string()))?;
    serde_json::Number::from_f64(parsed)
        .map(Value::Number)
        .ok_or_else(|| invalid("float", text, "not finite"))
}

/// `123.45` at scale 3 → 123450.
fn unscaled_decimal(text: &str, scale: u32) -> Result<BigInt, ValueError> {
    if text == "NaN" {
        return Err(invalid("numeric", text, "NaN has no decimal representation"));
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).map_err(|_| invalid("numeric", text, "scale too large"))?;
    if fraction.len() > scale {
        return Err(invalid(
            "numeric",
            text,
            format!("more than {scale} decimal places"),
        ));
    }
    let mut all = String::with_capacity(whole.len() + scale + 1);
    if negative {
        all.push('-');
    }
    all.push_str(if whole.is_empty() { "0" } else { whole });
    all.push_str(fraction);
    all.extend(std::iter::repeat_n('0', scale - fraction.len()));
    all.parse::<BigInt>()
        .map_err(|e| invalid("numeric", text, e.to_string()))
}

fn days_since_epoch(text: &str) -> Result<i32, ValueError> {
    let date: jiff::civil::Date = text
        .parse()
        .map_err(|e: jiff::Error| invalid("date", text, e.to_string()))?;
    let days = date
        .since(jiff::civil::date(1970, 1, 1))
        .map_err(|e| invalid("date", text, e.to_string()))?
        .get_days();
    Ok(days)
}

fn timestamp_micros(text: &str) -> Result<i64, ValueError> {
    let datetime: jiff::civil::DateTime = text
        .replace(' ', "T")
        .parse()
        .map_err(|e: jiff::Error| invalid("timestamp", text, e.to_string()))?;
    let instant = datetime
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| invalid("timestamp", text, e.to_string()))?;
    Ok(instant.timestamp().as_microsecond())
}

/// Postgres prints offsets as `+00`, `+05:30` or `-03:00:00`: make them RFC 3339.
fn normalise_offset(text: &str) -> String {
    let iso = text.replacen(' ', "T", 1);
    let Some(position) = iso.rfind(['+', '-']).filter(|p| *p > 10) else {
        return iso;
    };
    let (stamp, offset) = iso.split_at(position);
    let offset = match offset.len() {
        3 => format!("{offset}:00"),
        9 => offset[..6].to_owned(),
        _ => offset.to_owned(),
    };
    format!("{stamp}{offset}")
}

fn zoned_timestamp(text: &str, precision: u32) -> Result<String, ValueError> {
    let timestamp: jiff::Timestamp = normalise_offset(text)
        .parse()
        .map_err(|e: jiff::Error| invalid("timestamptz", text, e.to_string()))?;
    // ISO-8601 in UTC with as many fraction digits as the column's precision
    // (zeros kept), as Debezium's ZonedTimestamp prints it.
    let seconds = timestamp.strftime("%Y-%m-%dT%H:%M:%S");
    let digits = usize::try_from(precision.min(6)).unwrap_or(6);
    if digits == 0 {
        return Ok(format!("{seconds}Z"));
    }
    let micros = format!("{:06}", timestamp.subsec_microsecond());
    Ok(format!("{seconds}.{}Z", &micros[..digits]))
}

fn time_micros(text: &str) -> Result<i64, ValueError> {
    // Postgres allows 24:00:00 for time.
    if text.starts_with("24:00:00") {
        return Ok(86_400_000_000);
    }
    let time: jiff::civil::Time = text
        .parse()
        .map_err(|e: jiff::Error| invalid("time", text, e.to_string()))?;
    let since_midnight = time
        .since(jiff::civil::Time::midnight())
        .map_err(|e| invalid("time", text, e.to_string()))?;
    let micros = since_midnight
        .total(jiff::Unit::Microsecond)
        .map_err(|e| invalid("time", text, e.to_string()))?;
    #[allow(clippy::cast_possible_truncation)] // at most 86,400,000,000: fits
    Ok(micros.round() as i64)
}

/// bytea's hex output format: `\x0102ff`.
fn bytea(text: &str) -> Result<Vec<u8>, ValueError> {
    let hex = text
        .strip_prefix("\\x")
        .ok_or_else(|| invalid("bytea", text, "expected the hex format \\x…"))?;
    if hex.len() % 2 != 0 {
        return Err(invalid("bytea", text, "odd number of hex digits"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| invalid("bytea", text, e.to_string())))
        .collect()
}

/// A one-dimensional array literal: `{1,2,NULL}`, `{"a b","c\"d"}`.
fn parse_array(text: &str) -> Result<Vec<Option<String>>, ValueError> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| invalid("array", text, "expected {…}"))?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Ok(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => item.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => item.push(c),
                    None => return Err(invalid("array", text, "unterminated quoted element")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' {
                    return Err(invalid(
                        "array",
                        text,
                        "multi-dimensional arrays are not supported",
                    ));
                }
                item.push(c);
                chars.next();
            }
        }
        items.push(if !quoted && item == "NULL" {
            None
        } else {
            Some(item)
        });
        match chars.next() {
            Some(',') => {}
            None => return Ok(items),
            Some(c) => {
                return Err(invalid(
                    "array",
                    text,
                    format!("unexpected {c:?} after an element"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_defaults_as_debezium_derives_them() {
        let date = PgType::Date;
        assert_eq!(
            column_default(&date, Some("'2024-03-01'::date"), false),
            Some(json!(19783))
        );
        assert_eq!(column_default(&PgType::Int4, Some("42"), true), Some(json!(42)));
        assert_eq!(
            column_default(&PgType::Int4, Some("'-1'::integer"), true),
            Some(json!(-1))
        );
        assert_eq!(
            column_default(&PgType::Bool, Some("true"), true),
            Some(json!(true))
        );
        assert_eq!(
            column_default(&PgType::Text, Some("'it''s'::text"), true),
            Some(json!("it's"))
        );
        // A sequence or a function: the type's zero when NOT NULL, else none.
        let serial = Some("nextval('customers_id_seq'::regclass)");
        assert_eq!(column_default(&PgType::Int4, serial, false), Some(json!(0)));
        assert_eq!(column_default(&PgType::Int4, serial, true), None);
        assert_eq!(column_default(&PgType::TimestampTz(6), Some("now()"), true), None);
        assert_eq!(column_default(&PgType::Text, Some("NULL::text"), true), None);
        assert_eq!(column_default(&PgType::Int4, None, false), None);
    }

    #[test]
    fn schema_attributes_in_json_converter_order() {
        let schema = connect_schema(&PgType::Date, "day", false, Some(&json!(19783)));
        let keys: Vec<&str> = schema.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["type", "optional", "name", "version", "default", "field"]);
        let free = connect_schema(&PgType::Numeric(None), "free", true, None);
        let keys: Vec<&str> = free.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["type", "fields", "optional", "name", "version", "doc", "field"]
        );
    }

    #[test]
    fn scalars() {
        assert_eq!(convert(&PgType::Bool, "t").unwrap(), json!(true));
        assert_eq!(
            convert(&PgType::Int8, "-9007199254740993").unwrap(),
            json!(-9_007_199_254_740_993_i64)
        );
        assert_eq!(convert(&PgType::Float8, "1.5").unwrap(), json!(1.5));
        assert_eq!(convert(&PgType::Float4, "NaN").unwrap(), json!("NaN"));
        assert_eq!(
            convert(&PgType::Text, "wheel wobbles").unwrap(),
            json!("wheel wobbles")
        );
        assert!(convert(&PgType::Int4, "twelve").is_err());
    }

    #[test]
    fn decimals_are_unscaled_twos_complement_base64() {
        // 12.34 at scale 2 → 1234 = 0x04D2 → "BNI="
        assert_eq!(
            convert(&PgType::Numeric(Some((10, 2))), "12.34").unwrap(),
            json!("BNI=")
        );
        // 12.3 at scale 2 → 1230 = 0x04CE
        assert_eq!(
            convert(&PgType::Numeric(Some((10, 2))), "12.3").unwrap(),
            json!(BASE64.encode([0x04, 0xCE]))
        );
        // -1 at scale 0 → 0xFF
        assert_eq!(
            convert(&PgType::Numeric(Some((5, 0))), "-1").unwrap(),
            json!("/w==")
        );
        assert_eq!(
            convert(&PgType::Numeric(None), "3.14159").unwrap(),
            json!({"scale": 5, "value": BASE64.encode(BigInt::from(314_159).to_signed_bytes_be())})
        );
        assert!(convert(&PgType::Numeric(Some((10, 1))), "1.25").is_err());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(convert(&PgType::Date, "1970-01-02").unwrap(), json!(1));
        assert_eq!(convert(&PgType::Date, "1969-12-31").unwrap(), json!(-1));
        assert_eq!(
            convert(&PgType::Timestamp(6), "1970-01-01 00:00:01.000002").unwrap(),
            json!(1_000_002)
        );
        assert_eq!(
            convert(&PgType::Timestamp(3), "1970-01-01 00:00:01.5").unwrap(),
            json!(1500)
        );
        assert_eq!(
            convert(&PgType::TimestampTz(6), "2026-11-22 08:30:00.25+01").unwrap(),
            json!("2026-11-22T07:30:00.250000Z")
        );
        assert_eq!(
            convert(&PgType::TimestampTz(3), "2026-11-22 07:30:00+05:30").unwrap(),
            json!("2026-11-22T02:00:00.000Z")
        );
        assert_eq!(
            convert(&PgType::TimestampTz(0), "2026-11-22 07:30:00+05:30").unwrap(),
            json!("2026-11-22T02:00:00Z")
        );
        assert_eq!(
            convert(&PgType::Time(6), "00:00:01.000001").unwrap(),
            json!(1_000_001)
        );
        assert_eq!(convert(&PgType::Time(3), "00:00:01.5").unwrap(), json!(1500));
        assert_eq!(
            convert(&PgType::Time(6), "24:00:00").unwrap(),
            json!(86_400_000_000_i64)
        );
    }

    #[test]
    fn bytes_arrays_and_strings() {
        assert_eq!(
            convert(&PgType::Bytea, "\\x0102ff").unwrap(),
            json!(BASE64.encode([1, 2, 255]))
        );
        assert!(convert(&PgType::Bytea, "\\x012").is_err());
        let ints = PgType::Array(Box::new(PgType::Int4));
        assert_eq!(convert(&ints, "{1,2,NULL}").unwrap(), json!([1, 2, null]));
        assert_eq!(convert(&ints, "{}").unwrap(), json!([]));
        let texts = PgType::Array(Box::new(PgType::Text));
        assert_eq!(
            convert(&texts, r#"{"a b","c\"d",NULL,"NULL"}"#).unwrap(),
            json!(["a b", "c\"d", null, "NULL"])
        );
        assert!(convert(&ints, "{{1},{2}}").is_err());
        assert_eq!(
            convert(&PgType::Json, r#"{"a": 1}"#).unwrap(),
            json!(r#"{"a": 1}"#)
        );
        assert_eq!(
            convert(&PgType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap(),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
    }

    #[test]
    fn schemas_carry_debezium_logical_names() {
        assert_eq!(
            connect_schema(&PgType::Numeric(Some((10, 2))), "price", false, None),
            json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                   "parameters": {"scale": "2", "connect.decimal.precision": "10"},
                   "optional": false, "field": "price"})
        );
        assert_eq!(
            connect_schema(&PgType::Timestamp(6), "created_at", true, None)["name"],
            json!("io.debezium.time.MicroTimestamp")
        );
        let array = connect_schema(&PgType::Array(Box::new(PgType::Text)), "tags", true, None);
        assert_eq!(array["items"], json!({"type": "string", "optional": true}));
    }
}
