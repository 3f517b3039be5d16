//! Timestamps: `SimpleDateFormat`-style patterns (compiled once, shared
//! with the timestamp router) and `convertTimestamp` (Kafka Connect's
//! `TimestampConverter`), which turns a field between epoch numbers and text.
//!
//! ```text
//!  number (in `unit`) ─┐                  ┌─► to: Epoch  → number in `unit`
//!                      ├─► instant (UTC) ─┤
//!  string (`format`,   ─┘                  └─► to: String → `format`, or
//!   or ISO 8601)                                             ISO 8601 (…Z)
//! ```

use std::fmt::Write as _;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::Offset;
use serde_json::{Number, Value};
use tributary_api::transform::{self as api, EpochUnit, TimestampType};

use super::fields::{parse_path, value_object};
use super::path::{FieldPath, excerpt, type_name};
use super::{Failure, TransformConfigError};
use crate::record::Record;

/// A compiled date pattern (always in UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DateFormat {
    parts: Vec<DatePart>,
    pattern: String,
}

impl DateFormat {
    /// Compiles a pattern: `yyyy` year (`yy`: two digits), `MM` month,
    /// `dd` day, `HH` hour, `mm` minute, `ss` second, `SSS` millisecond;
    /// text in single quotes (`''` for a quote) and non-letters are copied.
    pub(crate) fn parse(pattern: &str) -> Result<Self, String> {
        Ok(Self {
            parts: parse_parts(pattern)?,
            pattern: pattern.to_owned(),
        })
    }

    /// Appends `time`, in UTC, as the pattern says.
    pub(crate) fn write(&self, time: Timestamp, out: &mut String) {
        write_parts(&self.parts, time, out);
    }

    /// Reads a time written in this pattern (fields absent from it default
    /// to 1970-01-01 00:00:00.000; `yy` reads as 20yy). Numbers directly
    /// followed by another number take exactly their pattern width
    /// (`yyyyMMdd`), others any number of digits.
    pub(crate) fn read(&self, text: &str) -> Option<Timestamp> {
        let (mut year, mut month, mut day, mut hour, mut minute, mut second, mut milli) =
            (1970_i64, 1_i64, 1_i64, 0_i64, 0_i64, 0_i64, 0_i64);
        let mut rest = text;
        for (i, part) in self.parts.iter().enumerate() {
            let (slot, width) = match part {
                DatePart::Text(literal) => {
                    rest = rest.strip_prefix(literal.as_str())?;
                    continue;
                }
                DatePart::Year(2) => (&mut year, 2),
                DatePart::Year(_) => (&mut year, 4),
                DatePart::Month(n) => (&mut month, *n),
                DatePart::Day(n) => (&mut day, *n),
                DatePart::Hour(n) => (&mut hour, *n),
                DatePart::Minute(n) => (&mut minute, *n),
                DatePart::Second(n) => (&mut second, *n),
                DatePart::Milli(n) => (&mut milli, *n),
            };
            let adjacent = self
                .parts
                .get(i + 1)
                .is_some_and(|p| !matches!(p, DatePart::Text(_)));
            let run = rest.bytes().take_while(u8::is_ascii_digit).count();
            let take = if adjacent { width } else { run.min(9) };
            if take == 0 || run < take {
                return None;
            }
            *slot = rest[..take].parse().ok()?;
            rest = &rest[take..];
            if matches!(part, DatePart::Year(2)) {
                year += 2000;
            }
        }
        if !rest.is_empty() {
            return None;
        }
        let civil = DateTime::new(
            i16::try_from(year).ok()?,
            i8::try_from(month).ok()?,
            i8::try_from(day).ok()?,
            i8::try_from(hour).ok()?,
            i8::try_from(minute).ok()?,
            i8::try_from(second).ok()?,
            i32::try_from(milli).ok()?.checked_mul(1_000_000)?,
        )
        .ok()?;
        Offset::UTC.to_timestamp(civil).ok()
    }
}

/// One piece of a `SimpleDateFormat`-style pattern; the number is the
/// minimum width (zero-padded).
#[derive(Debug, Clone, PartialEq, Eq)]
enum DatePart {
    Text(String),
    Year(usize),
    Month(usize),
    Day(usize),
    Hour(usize),
    Minute(usize),
    Second(usize),
    Milli(usize),
}

fn parse_parts(format: &str) -> Result<Vec<DatePart>, String> {
    let chars: Vec<char> = format.chars().collect();
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted text; '' is a literal quote, inside or outside quotes.
            if chars.get(i + 1) == Some(&'\'') {
                text.push('\'');
                i += 2;
                continue;
            }
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return Err(format!("quote at column {} is not closed", i + 1)),
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        text.push('\'');
                        j += 2;
                    }
                    Some('\'') => break,
                    Some(&other) => {
                        text.push(other);
                        j += 1;
                    }
                }
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            text.push(c);
            i += 1;
            continue;
        }
        let count = chars[i..].iter().take_while(|&&x| x == c).count();
        let part = match c {
            'y' => DatePart::Year(count),
            'M' if count <= 2 => DatePart::Month(count),
            'M' => {
                return Err(format!(
                    "month names ('{}') are not supported: use MM",
                    "M".repeat(count)
                ));
            }
            'd' => DatePart::Day(count),
            'H' => DatePart::Hour(count),
            'm' => DatePart::Minute(count),
            's' => DatePart::Second(count),
            'S' => DatePart::Milli(count),
            other => {
                return Err(format!(
                    "unsupported letter '{other}' at column {} (use y, M, d, H, m, s, S; quote text as 'T')",
                    i + 1
                ));
            }
        };
        if !text.is_empty() {
            parts.push(DatePart::Text(std::mem::take(&mut text)));
        }
        parts.push(part);
        i += count;
    }
    if !text.is_empty() {
        parts.push(DatePart::Text(text));
    }
    Ok(parts)
}

/// Writes `time` in UTC as `parts` say (`yy` is the last two digits of the
/// year, as in `SimpleDateFormat`).
fn write_parts(parts: &[DatePart], time: Timestamp, out: &mut String) {
    let civil = Offset::UTC.to_datetime(time);
    for part in parts {
        // Writing to a String cannot fail.
        let _ = match part {
            DatePart::Text(text) => {
                out.push_str(text);
                Ok(())
            }
            DatePart::Year(2) => write!(out, "{:02}", civil.year().rem_euclid(100)),
            DatePart::Year(n) => write!(out, "{:0n$}", civil.year()),
            DatePart::Month(n) => write!(out, "{:0n$}", civil.month()),
            DatePart::Day(n) => write!(out, "{:0n$}", civil.day()),
            DatePart::Hour(n) => write!(out, "{:0n$}", civil.hour()),
            DatePart::Minute(n) => write!(out, "{:0n$}", civil.minute()),
            DatePart::Second(n) => write!(out, "{:0n$}", civil.second()),
            DatePart::Milli(n) => write!(out, "{:0n$}", civil.millisecond()),
        };
    }
}

/// Reads ISO 8601: an instant with an offset (`2026-12-02T06:50:00.123Z`,
/// Debezium's `ZonedTimestamp`), or a date-time or date without one, taken as UTC.
fn read_iso(text: &str) -> Option<Timestamp> {
    if let Ok(instant) = text.parse::<Timestamp>() {
        return Some(instant);
    }
    let civil = match text.parse::<DateTime>() {
        Ok(civil) => civil,
        Err(_) => text
            .parse::<Date>()
            .ok()?
            .to_datetime(jiff::civil::Time::midnight()),
    };
    Offset::UTC.to_timestamp(civil).ok()
}

/// Nanoseconds in one `unit`.
fn nanos_per(unit: EpochUnit) -> i128 {
    match unit {
        EpochUnit::Seconds => 1_000_000_000,
        EpochUnit::Milliseconds => 1_000_000,
        EpochUnit::Microseconds => 1_000,
        EpochUnit::Nanoseconds => 1,
        EpochUnit::Days => 86_400 * 1_000_000_000,
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ConvertTimestamp {
    path: FieldPath,
    to: TimestampType,
    unit: EpochUnit,
    format: Option<DateFormat>,
}

impl ConvertTimestamp {
    pub(crate) fn new(spec: &api::ConvertTimestamp, field: &str) -> Result<Self, TransformConfigError> {
        let format = spec
            .format
            .as_deref()
            .map(DateFormat::parse)
            .transpose()
            .map_err(|message| TransformConfigError::invalid(format!("{field}.format"), message))?;
        Ok(Self {
            path: parse_path(&spec.field, &format!("{field}.field"))?,
            to: spec.to,
            unit: spec.unit,
            format,
        })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let Some(map) = value_object(&mut record)? else {
            return Ok(record);
        };
        let Some(value) = self.path.get_mut(map) else {
            return Ok(record);
        };
        if value.is_null() {
            return Ok(record);
        }
        let instant = self.read(value)?;
        *value = match self.to {
            TimestampType::String => {
                let mut text = String::with_capacity(32);
                match &self.format {
                    Some(format) => format.write(instant, &mut text),
                    None => {
                        // Writing to a String cannot fail.
                        let _ = write!(text, "{instant}");
                    }
                }
                Value::String(text)
            }
            TimestampType::Epoch => {
                let count = instant.as_nanosecond().div_euclid(nanos_per(self.unit));
                let count = i64::try_from(count).map_err(|_| {
                    Failure::field(
                        self.path.as_str(),
                        format!("{instant} does not fit a 64-bit number"),
                    )
                })?;
                Value::Number(Number::from(count))
            }
        };
        Ok(record)
    }

    fn read(&self, value: &Value) -> Result<Timestamp, Failure> {
        let fail = |expected: String| {
            Failure::field(
                self.path.as_str(),
                format!("cannot read {} as a timestamp ({expected})", excerpt(value)),
            )
        };
        match value {
            Value::Number(n) => {
                let per = nanos_per(self.unit);
                // `per` is at most 8.64e13, exact in an f64; fractions below a nanosecond are dropped.
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                let nanos = match n.as_i64() {
                    Some(count) => i128::from(count).checked_mul(per),
                    None => n
                        .as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| (f * per as f64) as i128),
                };
                nanos
                    .and_then(|nanos| Timestamp::from_nanosecond(nanos).ok())
                    .ok_or_else(|| fail(format!("out of range for {}", unit_name(self.unit))))
            }
            Value::String(text) => match &self.format {
                Some(format) => format
                    .read(text)
                    .ok_or_else(|| fail(format!("expected the format {}", format.pattern))),
                None => read_iso(text)
                    .ok_or_else(|| fail("expected ISO 8601, e.g. 2026-12-02T06:50:00Z".to_owned())),
            },
            other => Err(Failure::field(
                self.path.as_str(),
                format!("is {}, not a timestamp number or string", type_name(other)),
            )),
        }
    }
}

fn unit_name(unit: EpochUnit) -> &'static str {
    match unit {
        EpochUnit::Seconds => "Seconds",
        EpochUnit::Milliseconds => "Milliseconds",
        EpochUnit::Microseconds => "Microseconds",
        EpochUnit::Nanoseconds => "Nanoseconds",
        EpochUnit::Days => "Days",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(value: Value) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: Some(value),
            headers: Vec::new(),
        }
    }

    #[allow(clippy::needless_pass_by_value)] // json! serialises by reference; callers build values inline
    fn convert(yaml: &str, value: Value) -> Result<Value, Failure> {
        let spec: api::ConvertTimestamp = serde_yaml::from_str(yaml).unwrap();
        let t = ConvertTimestamp::new(&spec, "spec.transforms[0].convertTimestamp").unwrap();
        t.apply(record(json!({ "ts": value })))
            .map(|r| r.value.unwrap()["ts"].clone())
    }

    fn config_error(yaml: &str) -> String {
        let spec: api::ConvertTimestamp = serde_yaml::from_str(yaml).unwrap();
        ConvertTimestamp::new(&spec, "spec.transforms[0].convertTimestamp")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn debezium_numbers_to_iso_text() {
        // Debezium: timestamp → µs since the epoch, date → days since the epoch.
        let micros = convert(
            "{field: ts, to: String, unit: Microseconds}",
            json!(1_700_000_000_123_456_i64),
        );
        assert_eq!(micros.unwrap(), json!("2023-11-14T22:13:20.123456Z"));
        let days = convert(
            "{field: ts, to: String, unit: Days, format: yyyy-MM-dd}",
            json!(19_783),
        );
        assert_eq!(days.unwrap(), json!("2024-03-01"));
        let millis = convert("{field: ts, to: String}", json!(1_700_000_000_000_i64));
        assert_eq!(millis.unwrap(), json!("2023-11-14T22:13:20Z"));
        let seconds = convert("{field: ts, to: String, unit: Seconds}", json!(1.5));
        assert_eq!(seconds.unwrap(), json!("1970-01-01T00:00:01.5Z"));
    }

    #[test]
    fn text_to_epoch_numbers() {
        let zoned = convert("{field: ts, to: Epoch}", json!("2023-11-14T23:13:20.123+01:00"));
        assert_eq!(zoned.unwrap(), json!(1_700_000_000_123_i64));
        let civil = convert(
            "{field: ts, to: Epoch, unit: Seconds}",
            json!("2023-11-14T22:13:20"),
        );
        assert_eq!(civil.unwrap(), json!(1_700_000_000_i64));
        let date = convert("{field: ts, to: Epoch, unit: Days}", json!("2024-03-01"));
        assert_eq!(date.unwrap(), json!(19_783));
        let formatted = convert(
            "{field: ts, to: Epoch, format: \"yyyyMMdd'T'HHmmss.SSS\"}",
            json!("20231114T221320.123"),
        );
        assert_eq!(formatted.unwrap(), json!(1_700_000_000_123_i64));
        let loose = convert(
            "{field: ts, to: Epoch, unit: Seconds, format: d/M/yyyy H:mm}",
            json!("5/3/2024 7:05"),
        );
        assert_eq!(loose.unwrap(), json!(1_709_622_300_i64));
        let before_epoch = convert(
            "{field: ts, to: Epoch, unit: Days}",
            json!("1969-12-31T23:00:00Z"),
        );
        assert_eq!(before_epoch.unwrap(), json!(-1));
    }

    #[test]
    fn normalise_text_and_leave_null_alone() {
        // One format reads and writes, as in Kafka Connect; without one, ISO
        // text is normalised to UTC.
        let iso = convert("{field: ts, to: String}", json!("2026-12-02T07:50:00+01:00"));
        assert_eq!(iso.unwrap(), json!("2026-12-02T06:50:00Z"));
        let short = convert(
            "{field: ts, to: Epoch, unit: Days, format: dd.MM.yy}",
            json!("02.12.26"),
        );
        assert_eq!(short.unwrap(), json!(20_789));
        assert_eq!(
            convert("{field: ts, to: Epoch}", Value::Null).unwrap(),
            Value::Null
        );
        let spec: api::ConvertTimestamp = serde_yaml::from_str("{field: missing, to: Epoch}").unwrap();
        let t = ConvertTimestamp::new(&spec, "x").unwrap();
        assert_eq!(
            t.apply(record(json!({"a": 1}))).unwrap().value,
            Some(json!({"a": 1}))
        );
    }

    #[test]
    fn unreadable_values_name_the_field() {
        assert_eq!(
            convert("{field: ts, to: Epoch}", json!("yesterday")).unwrap_err(),
            Failure::field(
                "ts",
                "cannot read \"yesterday\" as a timestamp (expected ISO 8601, e.g. 2026-12-02T06:50:00Z)"
            )
        );
        assert_eq!(
            convert("{field: ts, to: Epoch, format: yyyyMMdd}", json!("2023-11-14")).unwrap_err(),
            Failure::field(
                "ts",
                "cannot read \"2023-11-14\" as a timestamp (expected the format yyyyMMdd)"
            )
        );
        assert_eq!(
            convert("{field: ts, to: Epoch, format: yyyyMMdd}", json!("20231341")).unwrap_err(),
            Failure::field(
                "ts",
                "cannot read \"20231341\" as a timestamp (expected the format yyyyMMdd)"
            )
        );
        assert_eq!(
            convert(
                "{field: ts, to: String, unit: Days}",
                json!(9_000_000_000_000_i64)
            )
            .unwrap_err(),
            Failure::field(
                "ts",
                "cannot read 9000000000000 as a timestamp (out of range for Days)"
            )
        );
        assert_eq!(
            convert("{field: ts, to: String}", json!(true)).unwrap_err(),
            Failure::field("ts", "is a bool, not a timestamp number or string")
        );
    }

    #[test]
    fn bad_formats_name_the_field() {
        assert_eq!(
            config_error("{field: ts, to: String, format: yyyy-ww}"),
            "spec.transforms[0].convertTimestamp.format: unsupported letter 'w' at column 6 \
             (use y, M, d, H, m, s, S; quote text as 'T')"
        );
        assert_eq!(
            config_error("{field: 'a..b', to: String}"),
            "spec.transforms[0].convertTimestamp.field: 'a..b' is not a field path: names are separated by single \
             dots, e.g. after.rating"
        );
    }
}
