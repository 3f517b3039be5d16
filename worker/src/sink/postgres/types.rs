//! Column types and values from Kafka Connect schemas (pure).
//!
//! With `json-with-schema` input every record carries its Connect schema,
//! so the sink knows what a field *is* rather than guessing from its JSON:
//! a Debezium `numeric(12,3)` arrives as base64 of its unscaled value and a
//! `timestamp` as microseconds since the epoch, which JSON alone would make
//! `text` and `bigint` columns. Here a field's schema gives its column type
//! (for creating and evolving tables) and a conversion of its JSON value to
//! Postgres's input syntax (a JSON string, copied into the column as text):
//!
//! | Connect schema (logical name) | column | value |
//! |---|---|---|
//! | `org.apache.kafka.connect.data.Decimal` | `numeric(p,s)` (`numeric` without `connect.decimal.precision`) | base64 of the unscaled two's-complement value, or a number |
//! | `io.debezium.data.VariableScaleDecimal` | `numeric` | `{"scale", "value"}` |
//! | `…connect.data.Date`, `io.debezium.time.Date` | `date` | days since 1970-01-01 |
//! | `…connect.data.Time`, `io.debezium.time.Time` / `MicroTime` / `NanoTime` | `time` | ms / µs / ns since midnight |
//! | `…connect.data.Timestamp`, `io.debezium.time.Timestamp` / `MicroTimestamp` / `NanoTimestamp` | `timestamp` | ms / µs / ns since the epoch (UTC) |
//! | `io.debezium.time.ZonedTimestamp` / `ZonedTime` | `timestamptz` / `timetz` | ISO-8601 text |
//! | `io.debezium.time.MicroDuration` | `interval` | µs |
//! | `io.debezium.time.Year` | `integer` | number |
//! | `io.debezium.data.Uuid` / `Json` / `Xml` | `uuid` / `jsonb` / `xml` | text |
//! | `io.debezium.data.Enum`, `string` | `text` | text |
//! | `int8`, `int16` / `int32` / `int64` | `smallint` / `integer` / `bigint` | number |
//! | `float` / `double` | `real` / `double precision` | number |
//! | `boolean` | `boolean` | boolean |
//! | `bytes`, `io.debezium.data.Bits` | `bytea` | base64 |
//! | `array` of any of the above | `<element>[]` | array |
//! | `struct`, `map`, anything else | `jsonb` | as is |
//!
//! A field without a schema (plain JSON input, a field added by a
//! transform) keeps the JSON inference of the parent module.

use std::collections::HashMap;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use num_bigint::BigInt;
use serde_json::Value;

/// How a field's JSON value becomes Postgres input text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversion {
    /// Written as the JSON module writes it (numbers, booleans, strings, JSON).
    AsIs,
    /// Base64 of the unscaled value (or a plain number) at this scale.
    Decimal(u32),
    /// `{"scale", "value"}`, value as in [`Conversion::Decimal`].
    VariableScaleDecimal,
    /// Days since 1970-01-01.
    Days,
    /// Time of day in units per second (1e3, 1e6, 1e9).
    TimeOfDay(u32),
    /// Instant since the epoch in units per second (1e3, 1e6, 1e9).
    Epoch(u32),
    /// Microseconds of a duration.
    MicroDuration,
    /// Base64 bytes.
    Bytes,
    /// Each element converted, written as a Postgres array literal.
    Array(Box<Conversion>),
}

/// A field's column type and value conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldType {
    /// The column type, e.g. `numeric(12,3)`.
    pub sql: String,
    /// How its values are written.
    pub conversion: Conversion,
}

impl FieldType {
    fn new(sql: impl Into<String>, conversion: Conversion) -> Self {
        Self {
            sql: sql.into(),
            conversion,
        }
    }
}

/// The field types of a struct schema, by field name.
pub type RowTypes = HashMap<String, FieldType>;

/// The field types of `schema` when it is a struct (`None` otherwise).
pub fn row_types(schema: &Value) -> Option<RowTypes> {
    if schema.get("type")?.as_str()? != "struct" {
        return None;
    }
    let fields = schema.get("fields")?.as_array()?;
    Some(
        fields
            .iter()
            .filter_map(|field| Some((field.get("field")?.as_str()?.to_owned(), field_type(field))))
            .collect(),
    )
}

/// The schema of field `name` of struct `schema`.
pub fn field_schema<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    schema
        .get("fields")?
        .as_array()?
        .iter()
        .find(|f| f.get("field").and_then(Value::as_str) == Some(name))
}

/// The column type and conversion of a value of `schema`.
pub fn field_type(schema: &Value) -> FieldType {
    use Conversion::{AsIs, Bytes, Days, Epoch, TimeOfDay};
    let name = schema.get("name").and_then(Value::as_str).unwrap_or_default();
    let parameter = |key: &str| {
        schema
            .get("parameters")
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<u32>().ok())
    };
    match name {
        "org.apache.kafka.connect.data.Decimal" => {
            let scale = parameter("scale").unwrap_or(0);
            let sql = match parameter("connect.decimal.precision") {
                Some(precision) if precision > 0 && precision <= 1000 && scale <= precision => {
                    format!("numeric({precision},{scale})")
                }
                _ => "numeric".to_owned(),
            };
            return FieldType::new(sql, Conversion::Decimal(scale));
        }
        "io.debezium.data.VariableScaleDecimal" => {
            return FieldType::new("numeric", Conversion::VariableScaleDecimal);
        }
        "org.apache.kafka.connect.data.Date" | "io.debezium.time.Date" => {
            return FieldType::new("date", Days);
        }
        "org.apache.kafka.connect.data.Time" | "io.debezium.time.Time" => {
            return FieldType::new("time", TimeOfDay(1_000));
        }
        "io.debezium.time.MicroTime" => return FieldType::new("time", TimeOfDay(1_000_000)),
        "io.debezium.time.NanoTime" => return FieldType::new("time", TimeOfDay(1_000_000_000)),
        "org.apache.kafka.connect.data.Timestamp" | "io.debezium.time.Timestamp" => {
            return FieldType::new("timestamp", Epoch(1_000));
        }
        "io.debezium.time.MicroTimestamp" => return FieldType::new("timestamp", Epoch(1_000_000)),
        "io.debezium.time.NanoTimestamp" => return FieldType::new("timestamp", Epoch(1_000_000_000)),
        "io.debezium.time.ZonedTimestamp" => return FieldType::new("timestamptz", AsIs),
        "io.debezium.time.ZonedTime" => return FieldType::new("timetz", AsIs),
        "io.debezium.time.MicroDuration" => return FieldType::new("interval", Conversion::MicroDuration),
        "io.debezium.time.Year" => return FieldType::new("integer", AsIs),
        "io.debezium.data.Uuid" => return FieldType::new("uuid", AsIs),
        "io.debezium.data.Json" => return FieldType::new("jsonb", AsIs),
        "io.debezium.data.Xml" => return FieldType::new("xml", AsIs),
        "io.debezium.data.Bits" => return FieldType::new("bytea", Bytes),
        _ => {}
    }
    match schema.get("type").and_then(Value::as_str).unwrap_or_default() {
        "int8" | "int16" => FieldType::new("smallint", AsIs),
        "int32" => FieldType::new("integer", AsIs),
        "int64" => FieldType::new("bigint", AsIs),
        "float" => FieldType::new("real", AsIs),
        "double" => FieldType::new("double precision", AsIs),
        "boolean" => FieldType::new("boolean", AsIs),
        "string" => FieldType::new("text", AsIs),
        "bytes" => FieldType::new("bytea", Bytes),
        "array" => match schema.get("items").map(field_type) {
            // Postgres arrays hold scalars; nested arrays and structs stay JSON.
            Some(item) if !item.sql.ends_with("[]") && item.sql != "jsonb" => FieldType::new(
                format!("{}[]", item.sql),
                Conversion::Array(Box::new(item.conversion)),
            ),
            _ => FieldType::new("jsonb", AsIs),
        },
        _ => FieldType::new("jsonb", AsIs),
    }
}

/// `value` in the input syntax of its column (`Ok(None)`: unchanged).
pub fn convert(value: &Value, conversion: &Conversion) -> Result<Option<Value>, String> {
    if value.is_null() || *conversion == Conversion::AsIs {
        return Ok(None);
    }
    convert_text(value, conversion).map(|text| Some(Value::String(text)))
}

fn convert_text(value: &Value, conversion: &Conversion) -> Result<String, String> {
    let integer = || {
        value
            .as_i64()
            .ok_or_else(|| format!("expected an integer, found {value}"))
    };
    match conversion {
        Conversion::AsIs => Ok(match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        Conversion::Decimal(scale) => decimal(value, *scale),
        Conversion::VariableScaleDecimal => {
            let scale = value
                .get("scale")
                .and_then(Value::as_u64)
                .and_then(|s| u32::try_from(s).ok())
                .ok_or_else(|| format!("expected {{\"scale\", \"value\"}}, found {value}"))?;
            decimal(value.get("value").unwrap_or(&Value::Null), scale)
        }
        Conversion::Days => {
            let days = integer()?;
            jiff::civil::date(1970, 1, 1)
                .checked_add(jiff::Span::new().try_days(days).map_err(|e| e.to_string())?)
                .map(|d| d.to_string())
                .map_err(|e| format!("date {days} days after 1970-01-01: {e}"))
        }
        Conversion::TimeOfDay(per_second) => {
            let units = integer()?;
            let per_second = i64::from(*per_second);
            let seconds = units.div_euclid(per_second);
            if !(0..=86_400).contains(&seconds) {
                return Err(format!("time of day {units} is outside one day"));
            }
            let nanos = units.rem_euclid(per_second) * (1_000_000_000 / per_second);
            Ok(format!(
                "{:02}:{:02}:{:02}.{nanos:09}",
                seconds / 3600,
                seconds / 60 % 60,
                seconds % 60
            ))
        }
        Conversion::Epoch(per_second) => {
            let units = integer()?;
            let nanos = i128::from(units) * i128::from(1_000_000_000 / per_second);
            let instant = jiff::Timestamp::from_nanosecond(nanos).map_err(|e| e.to_string())?;
            // A civil date-time (no offset): the column is `timestamp`, and
            // Debezium's value is the column's wall-clock time read as UTC.
            Ok(instant.to_zoned(jiff::tz::TimeZone::UTC).datetime().to_string())
        }
        Conversion::MicroDuration => Ok(format!("{} microseconds", integer()?)),
        Conversion::Bytes => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("expected base64 bytes, found {value}"))?;
            let bytes = BASE64.decode(text).map_err(|e| format!("not base64: {e}"))?;
            let mut hex = String::with_capacity(2 + bytes.len() * 2);
            hex.push_str("\\x");
            for byte in bytes {
                let _ = write!(hex, "{byte:02x}");
            }
            Ok(hex)
        }
        Conversion::Array(item) => {
            let items = value
                .as_array()
                .ok_or_else(|| format!("expected an array, found {value}"))?;
            let mut literal = String::from("{");
            for (i, element) in items.iter().enumerate() {
                if i > 0 {
                    literal.push(',');
                }
                if element.is_null() {
                    literal.push_str("NULL");
                    continue;
                }
                literal.push('"');
                for c in convert_text(element, item)?.chars() {
                    if c == '"' || c == '\\' {
                        literal.push('\\');
                    }
                    literal.push(c);
                }
                literal.push('"');
            }
            literal.push('}');
            Ok(literal)
        }
    }
}

/// A Connect decimal: base64 of the unscaled big-endian two's-complement
/// value, or already a number (`decimal.format: NUMERIC`).
fn decimal(value: &Value, scale: u32) -> Result<String, String> {
    let text = match value {
        Value::Number(n) => return Ok(n.to_string()),
        Value::String(s) => s,
        other => return Err(format!("expected a base64 decimal, found {other}")),
    };
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("decimal {text:?} is not base64: {e}"))?;
    let unscaled = BigInt::from_signed_bytes_be(&bytes).to_string();
    let (sign, digits) = match unscaled.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", unscaled.as_str()),
    };
    let scale = usize::try_from(scale).map_err(|e| e.to_string())?;
    if scale == 0 {
        return Ok(format!("{sign}{digits}"));
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    Ok(format!("{sign}{whole}.{fraction}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(n: i64) -> Value {
        json!(BASE64.encode(BigInt::from(n).to_signed_bytes_be()))
    }

    fn text(value: &Value, schema: &Value) -> Value {
        let conversion = field_type(schema).conversion;
        convert(value, &conversion)
            .unwrap()
            .unwrap_or_else(|| value.clone())
    }

    #[test]
    fn decimals_become_numeric_with_their_precision_and_scale() {
        let schema = json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "3", "connect.decimal.precision": "12"}});
        assert_eq!(field_type(&schema).sql, "numeric(12,3)");
        assert_eq!(text(&b64(-12_345), &schema), "-12.345");
        assert_eq!(text(&b64(5), &schema), "0.005");
        assert_eq!(text(&b64(129_999), &schema), "129.999");
        assert_eq!(text(&json!(1.5), &schema), "1.5", "decimal.format NUMERIC");
        let no_precision = json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "0"}});
        assert_eq!(field_type(&no_precision).sql, "numeric");
        assert_eq!(text(&b64(-7), &no_precision), "-7");
        let variable = json!({"type": "struct", "name": "io.debezium.data.VariableScaleDecimal"});
        assert_eq!(field_type(&variable).sql, "numeric");
        assert_eq!(
            text(&json!({"scale": 5, "value": b64(314_159)}), &variable),
            "3.14159"
        );
        let error = convert(&json!("%%"), &Conversion::Decimal(2)).unwrap_err();
        assert!(error.contains("not base64"), "{error}");
    }

    #[test]
    fn dates_times_and_timestamps() {
        let named = |name: &str, type_: &str| json!({"type": type_, "name": name});
        let date = named("io.debezium.time.Date", "int32");
        assert_eq!(field_type(&date).sql, "date");
        assert_eq!(text(&json!(19_783), &date), "2024-03-01");
        assert_eq!(text(&json!(-1), &date), "1969-12-31");
        let millis = named("io.debezium.time.Timestamp", "int64");
        assert_eq!(field_type(&millis).sql, "timestamp");
        assert_eq!(
            text(&json!(1_709_294_400_123_i64), &millis),
            "2024-03-01T12:00:00.123"
        );
        let micros = named("io.debezium.time.MicroTimestamp", "int64");
        assert_eq!(
            text(&json!(1_709_294_400_123_456_i64), &micros),
            "2024-03-01T12:00:00.123456"
        );
        let connect = named("org.apache.kafka.connect.data.Timestamp", "int64");
        assert_eq!(text(&json!(0), &connect), "1970-01-01T00:00:00");
        let zoned = named("io.debezium.time.ZonedTimestamp", "string");
        assert_eq!(field_type(&zoned).sql, "timestamptz");
        assert_eq!(
            text(&json!("2024-03-01T12:00:00Z"), &zoned),
            "2024-03-01T12:00:00Z"
        );
        let micro_time = named("io.debezium.time.MicroTime", "int64");
        assert_eq!(field_type(&micro_time).sql, "time");
        assert_eq!(
            text(&json!(36_930_000_001_i64), &micro_time),
            "10:15:30.000001000"
        );
        let time = named("org.apache.kafka.connect.data.Time", "int32");
        assert_eq!(text(&json!(1_500), &time), "00:00:01.500000000");
        let duration = named("io.debezium.time.MicroDuration", "int64");
        assert_eq!(field_type(&duration).sql, "interval");
        assert_eq!(text(&json!(90), &duration), "90 microseconds");
        assert!(
            convert(&json!("x"), &Conversion::Days)
                .unwrap_err()
                .contains("integer")
        );
    }

    #[test]
    fn primitives_bytes_arrays_and_structs() {
        let of = |type_: &str| field_type(&json!({"type": type_})).sql;
        assert_eq!(of("int16"), "smallint");
        assert_eq!(of("int32"), "integer");
        assert_eq!(of("int64"), "bigint");
        assert_eq!(of("float"), "real");
        assert_eq!(of("double"), "double precision");
        assert_eq!(of("boolean"), "boolean");
        assert_eq!(of("string"), "text");
        assert_eq!(of("struct"), "jsonb");
        assert_eq!(of("map"), "jsonb");
        let bytes = json!({"type": "bytes"});
        assert_eq!(of("bytes"), "bytea");
        assert_eq!(text(&json!("Af8="), &bytes), "\\x01ff");
        for (name, sql) in [
            ("io.debezium.data.Uuid", "uuid"),
            ("io.debezium.data.Json", "jsonb"),
            ("io.debezium.data.Enum", "text"),
        ] {
            assert_eq!(field_type(&json!({"type": "string", "name": name})).sql, sql);
        }
        let ints = json!({"type": "array", "items": {"type": "int32", "optional": true}});
        assert_eq!(field_type(&ints).sql, "integer[]");
        assert_eq!(text(&json!([1, null, 3]), &ints), "{\"1\",NULL,\"3\"}");
        let strings = json!({"type": "array", "items": {"type": "string"}});
        assert_eq!(text(&json!(["a\"b", "c\\d"]), &strings), r#"{"a\"b","c\\d"}"#);
        let dates = json!({"type": "array", "items": {"type": "int32", "name": "io.debezium.time.Date"}});
        assert_eq!(field_type(&dates).sql, "date[]");
        assert_eq!(text(&json!([0]), &dates), "{\"1970-01-01\"}");
        let nested = json!({"type": "array", "items": {"type": "array", "items": {"type": "int32"}}});
        assert_eq!(field_type(&nested).sql, "jsonb");
        assert_eq!(convert(&json!(null), &Conversion::Bytes), Ok(None));
    }

    #[test]
    fn row_types_of_a_debezium_envelope_after_field() {
        let envelope = json!({"type": "struct", "fields": [
            {"field": "before", "type": "struct", "optional": true, "fields": []},
            {"field": "after", "type": "struct", "optional": true, "fields": [
                {"field": "id", "type": "int32"},
                {"field": "price", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                 "parameters": {"scale": "2", "connect.decimal.precision": "10"}}]},
            {"field": "op", "type": "string"}]});
        let after = field_schema(&envelope, "after").unwrap();
        let types = row_types(after).unwrap();
        assert_eq!(types["id"].sql, "integer");
        assert_eq!(types["price"].sql, "numeric(10,2)");
        assert!(row_types(&json!({"type": "string"})).is_none());
    }
}
