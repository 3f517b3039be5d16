//! Topic routing: by regular expression (Kafka Connect's `RegexRouter`) or
//! from a format with the record's timestamp (`TimestampRouter`). The format
//! is compiled into segments once; routing a record only writes strings.
//! Date patterns are [`DateFormat`]s, shared with `convertTimestamp`.

use jiff::Timestamp;
use regex::Regex;
use tributary_api::transform::Route;

use super::timestamp::DateFormat;
use super::{Failure, Transform, TransformConfigError};
use crate::record::Record;

/// Compiles a `route` block into the router it describes.
pub(crate) fn compile(spec: &Route, field: &str) -> Result<Transform, TransformConfigError> {
    match (&spec.regex, &spec.replacement, &spec.topic_format) {
        (Some(regex), Some(replacement), None) => {
            if spec.timestamp_format.is_some() {
                return Err(TransformConfigError::invalid(
                    format!("{field}.timestampFormat"),
                    "only used with topicFormat",
                ));
            }
            RegexRoute::new(regex, replacement, field).map(Transform::RegexRoute)
        }
        (None, None, Some(format)) => TimestampRoute::new(format, spec.timestamp_format.as_deref(), field)
            .map(Transform::TimestampRoute),
        _ => Err(TransformConfigError::invalid(
            field,
            "set either regex and replacement, or topicFormat (with timestampFormat)",
        )),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RegexRoute {
    regex: Regex,
    replacement: String,
}

impl RegexRoute {
    fn new(pattern: &str, replacement: &str, field: &str) -> Result<Self, TransformConfigError> {
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            TransformConfigError::invalid(format!("{field}.regex"), format!("not a regular expression: {e}"))
        })?;
        check_groups(&regex, replacement)
            .map_err(|message| TransformConfigError::invalid(format!("{field}.replacement"), message))?;
        if replacement.is_empty() {
            return Err(TransformConfigError::invalid(
                format!("{field}.replacement"),
                "must not be empty",
            ));
        }
        Ok(Self {
            regex,
            replacement: replacement.to_owned(),
        })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        if let Some(captures) = self.regex.captures(&record.topic) {
            let mut topic = String::with_capacity(record.topic.len());
            captures.expand(&self.replacement, &mut topic);
            if topic.is_empty() {
                return Err(Failure::record(format!(
                    "replacement made topic '{}' an empty name",
                    record.topic
                )));
            }
            record.topic = topic;
        }
        Ok(record)
    }
}

/// Refuses references to groups the regex does not have: the regex crate
/// would silently insert nothing. Follows its syntax: `$$` is a dollar,
/// `${name}` is explicit, `$name` takes the longest run of letters, digits
/// and `_` (so `$1a` means a group called `1a`).
fn check_groups(regex: &Regex, replacement: &str) -> Result<(), String> {
    let groups = regex.captures_len() - 1;
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    let mut rest = replacement;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let (name, braced, consumed) = if let Some(stripped) = rest.strip_prefix('$') {
            rest = stripped;
            continue;
        } else if let Some(inner) = rest.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], true, end + 2),
                None => return Err("'${' is not closed by '}'".to_owned()),
            }
        } else {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..len], false, len)
        };
        rest = &rest[consumed..];
        if name.is_empty() {
            if braced {
                return Err("'${}' names no group".to_owned());
            }
            continue; // a lone '$' is copied as is
        }
        let known = match name.parse::<usize>() {
            Ok(number) => number <= groups,
            Err(_) => names.contains(&name),
        };
        if !known {
            let hint = if !braced
                && name.starts_with(|c: char| c.is_ascii_digit())
                && name.contains(|c: char| !c.is_ascii_digit())
            {
                let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
                format!(
                    " (write ${{{digits}}}{} to follow group {digits} with text)",
                    &name[digits.len()..]
                )
            } else {
                String::new()
            };
            let plural = if groups == 1 { "" } else { "s" };
            return Err(format!(
                "refers to group '{name}', but the regex has {groups} numbered group{plural}{}{hint}",
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" and named groups {}", names.join(", "))
                }
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub(crate) struct TimestampRoute {
    topic: Vec<TopicPart>,
    date: DateFormat,
    uses_timestamp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TopicPart {
    Text(String),
    Topic,
    Timestamp,
}

impl TimestampRoute {
    fn new(format: &str, timestamp_format: Option<&str>, field: &str) -> Result<Self, TransformConfigError> {
        let topic = parse_topic_format(format)
            .map_err(|message| TransformConfigError::invalid(format!("{field}.topicFormat"), message))?;
        let date = DateFormat::parse(timestamp_format.unwrap_or("yyyyMMdd"))
            .map_err(|message| TransformConfigError::invalid(format!("{field}.timestampFormat"), message))?;
        let uses_timestamp = topic.contains(&TopicPart::Timestamp);
        Ok(Self {
            topic,
            date,
            uses_timestamp,
        })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let date = if self.uses_timestamp {
            let ms = record
                .timestamp_ms
                .ok_or_else(|| Failure::record("the record has no timestamp for ${timestamp}"))?;
            let time = Timestamp::from_millisecond(ms)
                .map_err(|e| Failure::record(format!("timestamp {ms} is out of range: {e}")))?;
            let mut text = String::new();
            self.date.write(time, &mut text);
            text
        } else {
            String::new()
        };
        let mut topic = String::with_capacity(record.topic.len() + date.len() + 8);
        for part in &self.topic {
            match part {
                TopicPart::Text(text) => topic.push_str(text),
                TopicPart::Topic => topic.push_str(&record.topic),
                TopicPart::Timestamp => topic.push_str(&date),
            }
        }
        record.topic = topic;
        Ok(record)
    }
}

fn parse_topic_format(format: &str) -> Result<Vec<TopicPart>, String> {
    let mut parts = Vec::new();
    let mut rest = format;
    while let Some(at) = rest.find("${") {
        if at > 0 {
            parts.push(TopicPart::Text(rest[..at].to_owned()));
        }
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "'${' is not closed by '}'".to_owned())?;
        parts.push(match &after[..end] {
            "topic" => TopicPart::Topic,
            "timestamp" => TopicPart::Timestamp,
            other => {
                return Err(format!(
                    "unknown placeholder '${{{other}}}' (use ${{topic}} and ${{timestamp}})"
                ));
            }
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(TopicPart::Text(rest.to_owned()));
    }
    if parts.is_empty() {
        return Err("must not be empty".to_owned());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const AT: &str = "spec.transforms[4].route";

    fn record(topic: &str, timestamp_ms: Option<i64>) -> Record {
        Record {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            timestamp_ms,
            key: None,
            value: Some(json!({})),
            headers: Vec::new(),
        }
    }

    fn route(yaml: &str) -> Result<Transform, String> {
        compile(&serde_yaml::from_str(yaml).unwrap(), AT).map_err(|e| e.to_string())
    }

    fn topic(transform: &Transform, record: Record) -> Result<String, Failure> {
        match transform {
            Transform::RegexRoute(t) => t.apply(record),
            Transform::TimestampRoute(t) => t.apply(record),
            other => panic!("{other:?}"),
        }
        .map(|r| r.topic)
    }

    #[test]
    fn regex_route_renames_matching_topics() {
        let r = route("regex: 'shop\\.public\\.(.*)'\nreplacement: '$1'").unwrap();
        assert_eq!(topic(&r, record("shop.public.orders", None)).unwrap(), "orders");
        assert_eq!(topic(&r, record("other.orders", None)).unwrap(), "other.orders");
        let named = route(
            "regex: '(?P<db>[^.]+)\\.(?P<schema>[^.]+)\\.(?P<table>.+)'\nreplacement: 'idx-${table}-${1}$$'",
        )
        .unwrap();
        assert_eq!(
            topic(&named, record("shop.public.orders", None)).unwrap(),
            "idx-orders-shop$"
        );
        let empty = route("regex: 'x(.*)'\nreplacement: '$1'").unwrap();
        assert_eq!(
            topic(&empty, record("x", None)).unwrap_err(),
            Failure::record("replacement made topic 'x' an empty name")
        );
    }

    #[test]
    fn regex_route_errors_name_the_field() {
        assert!(
            route("regex: '(unclosed'\nreplacement: x")
                .unwrap_err()
                .starts_with("spec.transforms[4].route.regex: not a regular expression: regex parse error:")
        );
        assert_eq!(
            route("regex: 'a(.*)'\nreplacement: '$2'").unwrap_err(),
            "spec.transforms[4].route.replacement: refers to group '2', but the regex has 1 numbered group"
        );
        assert_eq!(
            route("regex: 'a(.*)'\nreplacement: '$1a'").unwrap_err(),
            "spec.transforms[4].route.replacement: refers to group '1a', but the regex has 1 numbered group \
             (write ${1}a to follow group 1 with text)"
        );
        assert_eq!(
            route("regex: '(?P<t>.*)'\nreplacement: '${table}'").unwrap_err(),
            "spec.transforms[4].route.replacement: refers to group 'table', but the regex has 1 numbered group \
             and named groups t"
        );
        assert_eq!(
            route("regex: 'a'\nreplacement: b\ntimestampFormat: yyyy").unwrap_err(),
            "spec.transforms[4].route.timestampFormat: only used with topicFormat"
        );
        assert_eq!(
            route("regex: 'a'").unwrap_err(),
            "spec.transforms[4].route: set either regex and replacement, or topicFormat (with timestampFormat)"
        );
    }

    #[test]
    fn timestamp_route_formats_in_utc() {
        // 2023-11-14T22:13:20.123Z
        let ms = Some(1_700_000_000_123);
        let daily = route("topicFormat: '${topic}-${timestamp}'").unwrap();
        assert_eq!(topic(&daily, record("ratings", ms)).unwrap(), "ratings-20231114");
        let detailed =
            route("topicFormat: 'archive.${timestamp}.${topic}'\ntimestampFormat: \"''yy-M-d'T'HH:mm:ss.SSS 'o''clock'\"")
                .unwrap();
        assert_eq!(
            topic(&detailed, record("ratings", ms)).unwrap(),
            "archive.'23-11-14T22:13:20.123 o'clock.ratings"
        );
        let hourly = route("topicFormat: '${topic}_${timestamp}'\ntimestampFormat: yyyyMMddHH").unwrap();
        assert_eq!(topic(&hourly, record("t", Some(0))).unwrap(), "t_1970010100");
        assert_eq!(
            topic(&daily, record("ratings", None)).unwrap_err(),
            Failure::record("the record has no timestamp for ${timestamp}")
        );
        let static_rename = route("topicFormat: 'all-${topic}'").unwrap();
        assert_eq!(topic(&static_rename, record("x", None)).unwrap(), "all-x");
    }

    #[test]
    fn timestamp_route_errors_name_the_field() {
        assert_eq!(
            route("topicFormat: '${topic}-${date}'").unwrap_err(),
            "spec.transforms[4].route.topicFormat: unknown placeholder '${date}' (use ${topic} and ${timestamp})"
        );
        assert_eq!(
            route("topicFormat: '${topic'").unwrap_err(),
            "spec.transforms[4].route.topicFormat: '${' is not closed by '}'"
        );
        assert_eq!(
            route("topicFormat: x\ntimestampFormat: yyyyMMMdd").unwrap_err(),
            "spec.transforms[4].route.timestampFormat: month names ('MMM') are not supported: use MM"
        );
        assert_eq!(
            route("topicFormat: x\ntimestampFormat: yyyy-ww").unwrap_err(),
            "spec.transforms[4].route.timestampFormat: unsupported letter 'w' at column 6 \
             (use y, M, d, H, m, s, S; quote text as 'T')"
        );
        assert_eq!(
            route("topicFormat: x\ntimestampFormat: \"yyyy'T\"").unwrap_err(),
            "spec.transforms[4].route.timestampFormat: quote at column 5 is not closed"
        );
    }
}
