//! Predicates: whether a transform applies to a record (Kafka Connect's
//! `TopicNameMatches`, `HasHeaderKey`, `RecordIsTombstone`, with `negate`).

use regex::Regex;
use tributary_api::transform::PredicateSpec;

use super::TransformConfigError;
use crate::record::Record;

/// A compiled predicate.
#[derive(Debug, Clone)]
pub(crate) struct Predicate {
    condition: Condition,
    negate: bool,
}

#[derive(Debug, Clone)]
enum Condition {
    /// Anchored at both ends: the whole topic name must match.
    TopicMatches(Regex),
    HasHeader(String),
    IsTombstone,
}

impl Predicate {
    /// Compiles `spec`; `field` is its place in the spec, e.g. `spec.transforms[1].predicate`.
    pub(crate) fn new(spec: &PredicateSpec, field: &str) -> Result<Self, TransformConfigError> {
        let set = [
            spec.topic_matches.is_some(),
            spec.has_header.is_some(),
            spec.is_tombstone.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(TransformConfigError::invalid(
                field,
                "set exactly one of topicMatches, hasHeader or isTombstone",
            ));
        }
        let condition = if let Some(pattern) = &spec.topic_matches {
            let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                TransformConfigError::invalid(
                    format!("{field}.topicMatches"),
                    format!("not a regular expression: {e}"),
                )
            })?;
            Condition::TopicMatches(regex)
        } else if let Some(name) = &spec.has_header {
            if name.is_empty() {
                return Err(TransformConfigError::invalid(
                    format!("{field}.hasHeader"),
                    "must not be empty",
                ));
            }
            Condition::HasHeader(name.clone())
        } else {
            if spec.is_tombstone == Some(false) {
                return Err(TransformConfigError::invalid(
                    format!("{field}.isTombstone"),
                    "may only be true: use negate to match records that are not tombstones",
                ));
            }
            Condition::IsTombstone
        };
        Ok(Self {
            condition,
            negate: spec.negate,
        })
    }

    /// True when the transform applies to `record`.
    pub(crate) fn test(&self, record: &Record) -> bool {
        let matched = match &self.condition {
            Condition::TopicMatches(regex) => regex.is_match(&record.topic),
            Condition::HasHeader(name) => record.header(name).is_some(),
            Condition::IsTombstone => record.is_tombstone(),
        };
        matched != self.negate
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::record::Header;

    fn record(topic: &str) -> Record {
        Record {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: Some(json!({})),
            headers: vec![Header {
                name: "trace".into(),
                value: None,
            }],
        }
    }

    fn predicate(yaml: &str) -> Result<Predicate, String> {
        let spec: PredicateSpec = serde_yaml::from_str(yaml).unwrap();
        Predicate::new(&spec, "spec.transforms[0].predicate").map_err(|e| e.to_string())
    }

    #[test]
    fn topic_matches_the_whole_name() {
        let p = predicate(r"topicMatches: shop\.public\.(orders|customers)").unwrap();
        assert!(p.test(&record("shop.public.orders")));
        assert!(!p.test(&record("shop.public.orders_archive")));
        assert!(!p.test(&record("xshop.public.orders")));
        let negated = predicate("topicMatches: shop\\..*\nnegate: true").unwrap();
        assert!(!negated.test(&record("shop.public.orders")));
        assert!(negated.test(&record("__debezium-heartbeat.shop")));
    }

    #[test]
    fn has_header_ignores_the_header_value() {
        assert!(predicate("hasHeader: trace").unwrap().test(&record("t")));
        assert!(!predicate("hasHeader: other").unwrap().test(&record("t")));
        assert!(
            predicate("hasHeader: other\nnegate: true")
                .unwrap()
                .test(&record("t"))
        );
    }

    #[test]
    fn is_tombstone() {
        let p = predicate("isTombstone: true").unwrap();
        let tombstone = Record {
            value: None,
            ..record("t")
        };
        assert!(p.test(&tombstone));
        assert!(!p.test(&record("t")));
        let not = predicate("isTombstone: true\nnegate: true").unwrap();
        assert!(not.test(&record("t")));
    }

    #[test]
    fn bad_predicates_name_the_field() {
        assert_eq!(
            predicate("topicMatches: 'shop.(orders'")
                .unwrap_err()
                .lines()
                .next()
                .unwrap(),
            "spec.transforms[0].predicate.topicMatches: not a regular expression: regex parse error:"
        );
        assert_eq!(
            predicate("negate: true").unwrap_err(),
            "spec.transforms[0].predicate: set exactly one of topicMatches, hasHeader or isTombstone"
        );
        assert_eq!(
            predicate("hasHeader: a\nisTombstone: true").unwrap_err(),
            "spec.transforms[0].predicate: set exactly one of topicMatches, hasHeader or isTombstone"
        );
        assert_eq!(
            predicate("isTombstone: false").unwrap_err(),
            "spec.transforms[0].predicate.isTombstone: may only be true: use negate to match records that are not tombstones"
        );
    }
}
