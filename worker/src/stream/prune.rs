//! Parsing only what a query reads.
//!
//! A JSON input value is parsed into a [`PrunedRow`] that holds just the
//! fields the query's expressions (and the event-time field) reference, and
//! everything else is skipped by the parser without being allocated.
//! Debezium envelopes carry a `source` block, a `before` image and often
//! wide rows, so most of each record is never materialised.
//!
//! Data model: [`Fields`] is the tree of kept paths (`after.rating` and
//! `after.region` give `after` → {`rating`, `region`}), its nodes numbered
//! in pre-order. A parsed row is one [`Slot`] per node: the value found at a
//! leaf (kept whole), "an object, see the children" at an inner node, or
//! absent. A record is thus one small vector, not a map per object level
//! with an allocated, hashed key per field; looking up a column walks the
//! tree by name. Lookups of the kept paths see exactly what a full parse
//! would give them; a path into an array keeps the array whole.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use tributary_sql::{Expr, JoinInput, Plan, Projection, Row};

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
///
/// Children are a short list, not a map: every key of every parsed object
/// is looked up here, and a query names a few fields per level, so a scan
/// comparing lengths first beats hashing or ordering the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    whole: bool,
    /// This node's slot in a parsed row.
    slot: usize,
    /// One past the last slot of this node's subtree.
    end: usize,
    children: Vec<(String, Fields)>,
}

/// What a parsed row holds at one node of [`Fields`].
#[derive(Debug, Clone, Default, PartialEq)]
enum Slot {
    /// Not in the record.
    #[default]
    Absent,
    /// An object: the kept fields are in the children's slots.
    Object,
    /// The value here, whole (a kept leaf, or an array or scalar where
    /// the tree expected an object).
    Value(Value),
}

static NULL: Value = Value::Null;

impl Fields {
    /// Everything.
    pub fn whole() -> Self {
        Self {
            whole: true,
            slot: 0,
            end: 1,
            children: Vec::new(),
        }
    }

    /// Keeps `path` (and all below it).
    fn keep(&mut self, path: &[String]) {
        if self.whole {
            return;
        }
        match path.split_first() {
            None => *self = Self::whole(),
            Some((first, rest)) => {
                let index = if let Some(index) = self.children.iter().position(|(name, _)| name == first) {
                    index
                } else {
                    self.children.push((first.clone(), Self::default()));
                    self.children.len() - 1
                };
                self.children[index].1.keep(rest);
            }
        }
    }

    /// Numbers the nodes in pre-order from `first`; returns the next free number.
    fn number(&mut self, first: usize) -> usize {
        self.slot = first;
        let mut next = first + 1;
        for (_, child) in &mut self.children {
            next = child.number(next);
        }
        self.end = next;
        next
    }

    /// The fields kept below `name`, if any.
    fn child(&self, name: &str) -> Option<&Self> {
        self.children
            .iter()
            .find_map(|(child, fields)| (child == name).then_some(fields))
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
        fields.number(0);
        fields
    }

    /// Parses JSON `bytes` keeping these fields.
    pub fn parse(&self, bytes: &[u8]) -> Result<PrunedRow<'_>, serde_json::Error> {
        let mut slots = vec![Slot::Absent; self.end];
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        Seed {
            node: self,
            slots: &mut slots,
        }
        .deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(PrunedRow { fields: self, slots })
    }
}

/// A JSON record parsed keeping only some [`Fields`].
///
/// Answers lookups of the paths the fields were built from (and any path
/// below one kept whole) as a full parse would.
#[derive(Debug)]
pub(crate) struct PrunedRow<'f> {
    fields: &'f Fields,
    slots: Vec<Slot>,
}

impl PrunedRow<'_> {
    fn slot(&self, node: &Fields) -> &Slot {
        self.slots.get(node.slot).unwrap_or(&Slot::Absent)
    }

    fn build(&self, node: &Fields) -> Option<Value> {
        match self.slot(node) {
            Slot::Absent => None,
            Slot::Value(value) => Some(value.clone()),
            Slot::Object => Some(Value::Object(
                node.children
                    .iter()
                    .filter_map(|(name, child)| Some((name.clone(), self.build(child)?)))
                    .collect::<Map<_, _>>(),
            )),
        }
    }
}

impl Row for PrunedRow<'_> {
    fn get(&self, path: &[String]) -> &Value {
        let mut node = self.fields;
        let mut rest = path;
        loop {
            match self.slot(node) {
                Slot::Absent => return &NULL,
                Slot::Value(value) => return Row::get(value, rest),
                Slot::Object => {
                    let Some((first, tail)) = rest.split_first() else {
                        return &NULL; // not a kept path
                    };
                    match node.child(first) {
                        Some(child) => node = child,
                        None => return &NULL,
                    }
                    rest = tail;
                }
            }
        }
    }

    fn to_value(&self) -> Value {
        self.build(self.fields).unwrap_or(Value::Null)
    }
}

/// Parses the value at `node` into `slots`.
struct Seed<'f, 's> {
    node: &'f Fields,
    slots: &'s mut [Slot],
}

impl Seed<'_, '_> {
    fn set(self, slot: Slot) {
        if let Some(place) = self.slots.get_mut(self.node.slot) {
            *place = slot;
        }
    }

    fn value(self, value: Value) {
        self.set(Slot::Value(value));
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.node.whole {
            let value = Value::deserialize(deserializer)?;
            self.value(value);
            return Ok(());
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let node = self.node;
        // A repeated key replaces what an earlier one held, as in a full parse.
        if let Some(subtree) = self.slots.get_mut(node.slot..node.end) {
            subtree.fill(Slot::Absent);
        }
        if let Some(place) = self.slots.get_mut(node.slot) {
            *place = Slot::Object;
        }
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match node.child(key.as_str()) {
                Some(child) => map.next_value_seed(Seed {
                    node: child,
                    slots: &mut *self.slots,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    // A path into an array (`items[0].sku`) keeps the array as it is.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        self.value(Value::Array(items));
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.value(Value::Bool(v));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.value(Value::from(v));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.value(Value::from(v));
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.value(Number::from_f64(v).map_or(Value::Null, Value::Number));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.value(Value::String(v.to_owned()));
        Ok(())
    }

    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.value(Value::String(v));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.value(Value::Null);
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.value(Value::Null);
        Ok(())
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
    use std::collections::BTreeMap;

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
            fields.parse(record).unwrap().to_value(),
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
            fields.parse(record).unwrap().to_value(),
            json!({"after": {"x": {"y": [1, 2.5, null, true]}}, "items": [{"sku": "k"}, 2]})
        );
        // A scalar where an object was expected is kept (lookups below it are NULL either way).
        assert_eq!(
            fields.parse(br#"{"after":"text","items":3}"#).unwrap().to_value(),
            json!({"after": "text", "items": 3})
        );
        assert_eq!(fields.parse(b"42").unwrap().to_value(), json!(42));
        assert!(fields.parse(br#"{"after":"#).is_err());
        assert!(fields.parse(br#"{"after":1} trailing"#).is_err());
        assert_eq!(Fields::of_input(&plan("SELECT * FROM t"), 0), Fields::whole());
    }

    /// Every column of the query looked up in the pruned row equals the
    /// same lookup in a full parse, whatever shape the record has.
    #[test]
    fn column_lookups_equal_those_in_a_full_parse() {
        let plan = plan(
            "SELECT after.id AS id, after.region AS r, items[1] AS second, items[0].sku AS sku, a.b.c AS c, a.d AS d FROM t WHERE after.rating < 3",
        );
        let fields = Fields::of_input(&plan, 0);
        let mut paths = Vec::new();
        for expr in expressions(&plan) {
            expr.walk(&mut |e| {
                if let Expr::Column(column) = e {
                    paths.push(column.path.clone());
                }
            });
        }
        paths.push(vec!["ts".to_owned()]);
        let records: [&[u8]; 9] = [
            br#"{"after":{"id":7,"region":"eu","rating":2,"x":[1]},"items":[{"sku":"k"},{"n":2}],"a":{"b":{"c":1},"d":null},"ts":1}"#,
            br#"{"after":null,"items":"no array","a":{"b":[{"c":2}],"d":[1,2]}}"#,
            br#"{"after":{"id":{"nested":true}},"a":{"b":{"c":{"deep":[1]}}}}"#,
            br#"{"after":[1,2,3],"a":3}"#,
            // A repeated key: the last one counts, as in a full parse.
            br#"{"after":{"id":1,"region":"eu"},"after":{"rating":4}}"#,
            br#"{"a":{"b":{"c":1}},"a":{"d":"x"}}"#,
            b"{}",
            br#"[{"after":{"id":1}}]"#,
            br#""text""#,
        ];
        for record in records {
            let full: Value = serde_json::from_slice(record).unwrap();
            let pruned = fields.parse(record).unwrap();
            for path in &paths {
                assert_eq!(
                    pruned.get(path),
                    Row::get(&full, path),
                    "{} in {}",
                    path.join("."),
                    String::from_utf8_lossy(record)
                );
            }
        }
    }
}
