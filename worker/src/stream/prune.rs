//! Parsing only what a query reads.
//!
//! A JSON input value is parsed into a [`Value`] that holds just the fields
//! the query's expressions (and the event-time field) reference:
//! `after.rating` keeps `{"after": {"rating": …}}`, and everything else is
//! skipped by the parser without being allocated. Debezium envelopes carry a
//! `source` block, a `before` image and often wide rows, so most of each
//! record is never materialised. Lookups of the kept paths see exactly what
//! a full parse would give them; a path into an array keeps the array whole.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use tributary_sql::{Expr, JoinInput, Plan, Projection};

/// Every expression of `plan` evaluated on input rows: the filter, the
/// projection (or grouping, aggregate arguments, HAVING and result
/// columns) and the join keys.
pub(crate) fn expressions(plan: &Plan) -> Vec<&Expr> {
    let mut exprs: Vec<&Expr> = plan.filter.iter().collect();
    match &plan.projection {
        Projection::Wildcard => {}
        Projection::Columns(columns) => exprs.extend(columns.iter().map(|c| &c.expr)),
        Projection::Aggregate(aggregation) => {
            exprs.extend(aggregation.group_by.iter());
            exprs.extend(aggregation.calls.iter().filter_map(|c| c.arg.as_ref()));
            exprs.extend(aggregation.having.iter());
            exprs.extend(aggregation.columns.iter().map(|c| &c.expr));
        }
    }
    if let Some(join) = &plan.join {
        exprs.push(&join.left_key);
        if let JoinInput::Stream { right_key, .. } = &join.right {
            exprs.push(right_key);
        }
    }
    exprs
}

/// The fields of a value to keep: a tree of names; `whole` keeps a subtree as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    whole: bool,
    children: BTreeMap<String, Fields>,
}

impl Fields {
    /// Everything.
    pub fn whole() -> Self {
        Self {
            whole: true,
            children: BTreeMap::new(),
        }
    }

    /// Keeps `path` (and all below it).
    pub fn keep(&mut self, path: &[String]) {
        if self.whole {
            return;
        }
        match path.split_first() {
            None => *self = Self::whole(),
            Some((first, rest)) => self.children.entry(first.clone()).or_default().keep(rest),
        }
    }

    /// What the query reads of input `input` (`SELECT *` needs everything).
    pub fn of_input(plan: &Plan, input: usize) -> Self {
        if matches!(plan.projection, Projection::Wildcard) {
            return Self::whole();
        }
        let mut fields = Self::default();
        let exprs = expressions(plan);
        for expr in exprs {
            expr.walk(&mut |e| {
                if let Expr::Column(column) = e
                    && column.input == input
                {
                    fields.keep(&column.path);
                }
            });
        }
        if let Some(path) = plan.sources.get(input).and_then(|s| s.timestamp_field.as_ref()) {
            fields.keep(path);
        }
        fields
    }

    /// Parses JSON `bytes` keeping these fields.
    pub fn parse(&self, bytes: &[u8]) -> Result<Value, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = self.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }
}

impl<'de> DeserializeSeed<'de> for &Fields {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.whole {
            return Value::deserialize(deserializer);
        }
        deserializer.deserialize_any(Pruned(self))
    }
}

/// Visits a value keeping only the fields named.
struct Pruned<'a>(&'a Fields);

impl<'de> Visitor<'de> for Pruned<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match self.0.children.get(key.as_str()) {
                Some(child) => {
                    let value = map.next_value_seed(child)?;
                    out.insert(key.into_owned(), value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    // A path into an array (`items[0].sku`) keeps the array as it is.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// An object key, borrowed from the input when it has no escapes (most
/// keys are skipped, so they should cost no allocation).
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }

    fn into_owned(self) -> String {
        match self {
            Key::Borrowed(s) => s.to_owned(),
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }

            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tributary_sql::PlanOptions;

    use super::*;

    fn plan(sql: &str) -> Plan {
        let options = PlanOptions {
            timestamp_fields: BTreeMap::from([("t".to_owned(), "ts".to_owned())]),
            ..PlanOptions::default()
        };
        tributary_sql::parse_and_plan(sql, &options).unwrap()
    }

    #[test]
    fn keeps_only_referenced_paths_and_the_event_time() {
        let fields = Fields::of_input(
            &plan("SELECT after.id AS id, UPPER(after.region) AS region FROM t WHERE after.rating < 3"),
            0,
        );
        let record = br#"{"before":null,"after":{"id":7,"region":"eu","rating":2,"comment":"slow \"delivery\"","tags":["a"]},
            "source":{"version":"3.6","db":"shop","ts_ms":1},"op":"c","ts":1500}"#;
        assert_eq!(
            fields.parse(record).unwrap(),
            json!({"after": {"id": 7, "region": "eu", "rating": 2}, "ts": 1500})
        );
    }

    #[test]
    fn whole_subtrees_arrays_and_odd_shapes_match_a_full_parse() {
        let fields = Fields::of_input(
            &plan("SELECT JSON_STRING(after) AS a, items[0] AS first FROM t"),
            0,
        );
        let record =
            br#"{"after":{"x":{"y":[1,2.5,null,true]}},"items":[{"sku":"k"},2],"other":{"deep":[{}]}}"#;
        assert_eq!(
            fields.parse(record).unwrap(),
            json!({"after": {"x": {"y": [1, 2.5, null, true]}}, "items": [{"sku": "k"}, 2]})
        );
        // A scalar where an object was expected is kept (lookups below it are NULL either way).
        assert_eq!(
            fields.parse(br#"{"after":"text","items":3}"#).unwrap(),
            json!({"after": "text", "items": 3})
        );
        assert_eq!(fields.parse(b"42").unwrap(), json!(42));
        assert!(fields.parse(br#"{"after":"#).is_err());
        assert!(fields.parse(br#"{"after":1} trailing"#).is_err());
        assert_eq!(Fields::of_input(&plan("SELECT * FROM t"), 0), Fields::whole());
    }
}
