//! Field transforms on the record value: insertField, renameFields,
//! dropFields, keepFields, maskFields, cast, and valueToKey (which builds
//! the key from value fields). Tombstones pass through unchanged.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};
use tributary_api::transform::{self as api, CastType, RecordFact};

use super::path::{FieldPath, excerpt, type_name};
use super::{Failure, TransformConfigError};
use crate::record::Record;

/// Parses a path from the spec, naming `field` when it is bad.
pub(crate) fn parse_path(text: &str, field: &str) -> Result<FieldPath, TransformConfigError> {
    FieldPath::parse(text).map_err(|message| TransformConfigError::invalid(field, message))
}

/// Parses a list of paths (`<field>[i]` in errors); refuses an empty list.
fn parse_paths(list: &[String], field: &str) -> Result<Vec<FieldPath>, TransformConfigError> {
    if list.is_empty() {
        return Err(TransformConfigError::invalid(field, "list at least one field"));
    }
    list.iter()
        .enumerate()
        .map(|(i, text)| parse_path(text, &format!("{field}[{i}]")))
        .collect()
}

/// The value as an object: `None` for a tombstone (nothing to do), a
/// failure for a value that is not an object.
pub(crate) fn value_object(record: &mut Record) -> Result<Option<&mut Map<String, Value>>, Failure> {
    match record.value.as_mut() {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(Failure::record(format!(
            "the value is {}, not an object",
            type_name(other)
        ))),
    }
}

// ---------------------------------------------------------------- insertField

#[derive(Debug, Clone)]
pub(crate) struct InsertField {
    path: FieldPath,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Static(Value),
    Fact(RecordFact),
}

impl InsertField {
    pub(crate) fn new(spec: &api::InsertField, field: &str) -> Result<Self, TransformConfigError> {
        let path = parse_path(&spec.field, &format!("{field}.field"))?;
        let source = match (&spec.value, spec.from) {
            (Some(value), None) => Source::Static(Value::String(value.clone())),
            (None, Some(fact)) => Source::Fact(fact),
            _ => {
                return Err(TransformConfigError::invalid(
                    field,
                    "set exactly one of value (a static string) or from (Timestamp, Topic, Partition or Offset)",
                ));
            }
        };
        Ok(Self { path, source })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let inserted = match &self.source {
            Source::Static(value) => value.clone(),
            Source::Fact(RecordFact::Timestamp) => record.timestamp_ms.map_or(Value::Null, Value::from),
            Source::Fact(RecordFact::Topic) => Value::String(record.topic.clone()),
            Source::Fact(RecordFact::Partition) => Value::from(record.partition),
            Source::Fact(RecordFact::Offset) => Value::from(record.offset),
        };
        if let Some(map) = value_object(&mut record)? {
            self.path
                .set(map, inserted)
                .map_err(|message| Failure::field(self.path.as_str(), message))?;
        }
        Ok(record)
    }
}

// ---------------------------------------------------------------- renameFields

#[derive(Debug, Clone)]
pub(crate) struct RenameFields {
    renames: Vec<(FieldPath, String)>,
}

impl RenameFields {
    pub(crate) fn new(spec: &api::RenameFields, field: &str) -> Result<Self, TransformConfigError> {
        if spec.fields.is_empty() {
            return Err(TransformConfigError::invalid(
                format!("{field}.fields"),
                "list at least one rename",
            ));
        }
        let renames = spec
            .fields
            .iter()
            .enumerate()
            .map(|(i, rename)| {
                let at = format!("{field}.fields[{i}]");
                let from = parse_path(&rename.from, &format!("{at}.from"))?;
                if rename.to.is_empty() || rename.to.contains('.') {
                    return Err(TransformConfigError::invalid(
                        format!("{at}.to"),
                        "must be a field name (the field stays in the same object as from), not empty or a path",
                    ));
                }
                Ok((from, rename.to.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { renames })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let Some(root) = value_object(&mut record)? else {
            return Ok(record);
        };
        for (from, to) in &self.renames {
            let Some((map, name)) = from.parent_mut(root) else {
                continue;
            };
            if !map.contains_key(name) || name == to {
                continue;
            }
            // Rebuild the object so the renamed field keeps its position; a
            // field already called `to` is replaced by the renamed one.
            let old = std::mem::take(map);
            for (key, value) in old {
                if key == name {
                    map.insert(to.clone(), value);
                } else if key != *to {
                    map.insert(key, value);
                }
            }
        }
        Ok(record)
    }
}

// ---------------------------------------------------------------- dropFields

#[derive(Debug, Clone)]
pub(crate) struct DropFields {
    paths: Vec<FieldPath>,
}

impl DropFields {
    pub(crate) fn new(spec: &api::FieldList, field: &str) -> Result<Self, TransformConfigError> {
        Ok(Self {
            paths: parse_paths(&spec.fields, &format!("{field}.fields"))?,
        })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        if let Some(map) = value_object(&mut record)? {
            for path in &self.paths {
                path.remove(map);
            }
        }
        Ok(record)
    }
}

// ---------------------------------------------------------------- keepFields

/// The kept paths as a tree: a leaf keeps the whole field, an inner node
/// keeps only the listed fields inside it.
#[derive(Debug, Clone, Default)]
struct KeepTree {
    children: BTreeMap<String, KeepTree>,
    whole: bool,
}

impl KeepTree {
    fn retain(&self, map: &mut Map<String, Value>) {
        map.retain(|name, value| match self.children.get(name) {
            None => false,
            Some(node) if node.whole => true,
            Some(node) => {
                // Only parts of this field are kept; a non-object (e.g. a
                // null `after`) has no parts and is kept as it is.
                if let Value::Object(inner) = value {
                    node.retain(inner);
                }
                true
            }
        });
    }
}

#[derive(Debug, Clone)]
pub(crate) struct KeepFields {
    tree: KeepTree,
}

impl KeepFields {
    pub(crate) fn new(spec: &api::FieldList, field: &str) -> Result<Self, TransformConfigError> {
        let mut tree = KeepTree::default();
        for path in parse_paths(&spec.fields, &format!("{field}.fields"))? {
            let mut node = &mut tree;
            for name in path.names() {
                node = node.children.entry(name.clone()).or_default();
            }
            node.whole = true;
        }
        Ok(Self { tree })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        if let Some(map) = value_object(&mut record)? {
            self.tree.retain(map);
        }
        Ok(record)
    }
}

// ---------------------------------------------------------------- maskFields

#[derive(Debug, Clone)]
pub(crate) struct MaskFields {
    paths: Vec<FieldPath>,
    replacement: Option<String>,
    /// The replacement as a number, when it is one (for number fields).
    replacement_number: Option<Number>,
}

impl MaskFields {
    pub(crate) fn new(spec: &api::MaskFields, field: &str) -> Result<Self, TransformConfigError> {
        let replacement_number = spec
            .replacement
            .as_deref()
            .and_then(|r| serde_json::from_str::<Number>(r.trim()).ok());
        Ok(Self {
            paths: parse_paths(&spec.fields, &format!("{field}.fields"))?,
            replacement: spec.replacement.clone(),
            replacement_number,
        })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let Some(map) = value_object(&mut record)? else {
            return Ok(record);
        };
        for path in &self.paths {
            let Some(value) = path.get_mut(map) else {
                continue;
            };
            *value = match value {
                Value::Null => Value::Null,
                Value::String(_) => Value::String(self.replacement.clone().unwrap_or_default()),
                Value::Number(n) => match (&self.replacement, &self.replacement_number) {
                    (None, _) if n.is_f64() => Value::from(0.0),
                    (None, _) => Value::from(0),
                    (Some(_), Some(number)) => Value::Number(number.clone()),
                    (Some(replacement), None) => {
                        return Err(Failure::field(
                            path.as_str(),
                            format!("is a number, and the replacement '{replacement}' is not"),
                        ));
                    }
                },
                Value::Bool(_) => Value::Bool(false),
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Object(_) => Value::Object(Map::new()),
            };
        }
        Ok(record)
    }
}

// ---------------------------------------------------------------- cast

#[derive(Debug, Clone)]
pub(crate) struct Cast {
    casts: Vec<(FieldPath, CastType)>,
}

impl Cast {
    pub(crate) fn new(spec: &api::Cast, field: &str) -> Result<Self, TransformConfigError> {
        if spec.fields.is_empty() {
            return Err(TransformConfigError::invalid(
                format!("{field}.fields"),
                "list at least one field",
            ));
        }
        let casts = spec
            .fields
            .iter()
            .enumerate()
            .map(|(i, cast)| {
                Ok((
                    parse_path(&cast.field, &format!("{field}.fields[{i}].field"))?,
                    cast.to,
                ))
            })
            .collect::<Result<_, TransformConfigError>>()?;
        Ok(Self { casts })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let Some(map) = value_object(&mut record)? else {
            return Ok(record);
        };
        for (path, to) in &self.casts {
            let Some(value) = path.get_mut(map) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            let cast = cast(value, *to).ok_or_else(|| {
                Failure::field(
                    path.as_str(),
                    format!("cannot cast {} to {}", excerpt(value), type_label(*to)),
                )
            })?;
            *value = cast;
        }
        Ok(record)
    }
}

fn type_label(to: CastType) -> &'static str {
    match to {
        CastType::Int => "Int",
        CastType::Float => "Float",
        CastType::String => "String",
        CastType::Bool => "Bool",
    }
}

/// The converted value, or `None` when it cannot be converted.
#[allow(clippy::cast_possible_truncation)] // truncation towards zero is the documented float → Int cast
fn cast(value: &Value, to: CastType) -> Option<Value> {
    /// 2^63 as a float: the first float that no longer fits an i64.
    const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match (to, value) {
        (CastType::Int, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Some(Value::from(i))
            } else {
                let f = n.as_f64()?.trunc();
                (f.is_finite() && (-I64_LIMIT..I64_LIMIT).contains(&f)).then(|| Value::from(f as i64))
            }
        }
        (CastType::Int, Value::String(s)) => s.trim().parse::<i64>().ok().map(Value::from),
        (CastType::Int, Value::Bool(b)) => Some(Value::from(i64::from(*b))),
        (CastType::Float, Value::Number(n)) => n.as_f64().map(Value::from),
        (CastType::Float, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        (CastType::Float, Value::Bool(b)) => Some(Value::from(if *b { 1.0 } else { 0.0 })),
        (CastType::String, Value::String(s)) => Some(Value::String(s.clone())),
        (CastType::String, other) => Some(Value::String(other.to_string())),
        (CastType::Bool, Value::Bool(b)) => Some(Value::Bool(*b)),
        (CastType::Bool, Value::Number(n)) => Some(Value::Bool(n.as_f64().is_some_and(|f| f != 0.0))),
        (CastType::Bool, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

// ---------------------------------------------------------------- valueToKey

#[derive(Debug, Clone)]
pub(crate) struct ValueToKey {
    paths: Vec<FieldPath>,
}

impl ValueToKey {
    pub(crate) fn new(spec: &api::ValueToKey, field: &str) -> Result<Self, TransformConfigError> {
        let paths = parse_paths(&spec.fields, &format!("{field}.fields"))?;
        for (i, path) in paths.iter().enumerate() {
            if let Some(first) = paths[..i].iter().position(|p| p.leaf() == path.leaf()) {
                return Err(TransformConfigError::invalid(
                    format!("{field}.fields[{i}]"),
                    format!(
                        "would be key field '{}', as fields[{first}] already is (key fields are named by the last part of the path)",
                        path.leaf()
                    ),
                ));
            }
        }
        Ok(Self { paths })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let Some(map) = value_object(&mut record)? else {
            return Ok(record);
        };
        let mut key = Map::with_capacity(self.paths.len());
        for path in &self.paths {
            let value = path
                .get(map)
                .ok_or_else(|| Failure::field(path.as_str(), "not found in the value"))?;
            key.insert(path.leaf().to_owned(), value.clone());
        }
        record.key = Some(Value::Object(key));
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(value: Value) -> Record {
        Record {
            topic: "shop.public.customers".into(),
            partition: 2,
            offset: 17,
            timestamp_ms: Some(1_700_000_000_123),
            key: Some(json!({"id": 1})),
            value: Some(value),
            headers: Vec::new(),
        }
    }

    fn tombstone() -> Record {
        Record {
            value: None,
            ..record(json!(null))
        }
    }

    fn spec<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_yaml::from_str(yaml).unwrap()
    }

    /// The value as compact JSON text, so field order is asserted too.
    fn text(record: &Record) -> String {
        serde_json::to_string(record.value.as_ref().unwrap()).unwrap()
    }

    const AT: &str = "spec.transforms[0].t";

    #[test]
    fn insert_field_static_and_record_facts() {
        let insert = |yaml: &str| InsertField::new(&spec(yaml), AT).unwrap();
        let r = insert("field: source\nvalue: pg")
            .apply(record(json!({"id": 1})))
            .unwrap();
        assert_eq!(text(&r), r#"{"id":1,"source":"pg"}"#);
        let r = insert("field: meta.ts\nfrom: Timestamp").apply(r).unwrap();
        let r = insert("field: meta.topic\nfrom: Topic").apply(r).unwrap();
        let r = insert("field: meta.partition\nfrom: Partition").apply(r).unwrap();
        let r = insert("field: meta.offset\nfrom: Offset").apply(r).unwrap();
        assert_eq!(
            r.value.unwrap()["meta"],
            json!({"ts": 1_700_000_000_123_i64, "topic": "shop.public.customers", "partition": 2, "offset": 17})
        );
        let untimed = Record {
            timestamp_ms: None,
            ..record(json!({}))
        };
        let r = insert("field: ts\nfrom: Timestamp").apply(untimed).unwrap();
        assert_eq!(text(&r), r#"{"ts":null}"#);
        assert_eq!(
            insert("field: x\nvalue: y").apply(tombstone()).unwrap(),
            tombstone()
        );
    }

    #[test]
    fn insert_field_failures() {
        let insert = InsertField::new(&spec("field: id.x\nvalue: v"), AT).unwrap();
        assert_eq!(
            insert.apply(record(json!({"id": 1}))).unwrap_err(),
            Failure::field("id.x", "cannot set id.x: id is a number, not an object")
        );
        assert_eq!(
            insert.apply(record(json!("plain text"))).unwrap_err(),
            Failure::record("the value is a string, not an object")
        );
        let error = InsertField::new(&spec("field: x"), AT).unwrap_err().to_string();
        assert_eq!(
            error,
            "spec.transforms[0].t: set exactly one of value (a static string) or from (Timestamp, Topic, Partition or Offset)"
        );
        let error = InsertField::new(&spec("field: 'a..b'\nvalue: v"), AT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "spec.transforms[0].t.field: 'a..b' is not a field path: names are separated by single dots, e.g. after.rating"
        );
    }

    #[test]
    fn rename_keeps_position_and_replaces_a_clash() {
        let rename = RenameFields::new(
            &spec("fields:\n- {from: cust_id, to: customer_id}\n- {from: addr.zip, to: postcode}\n- {from: missing, to: x}"),
            AT,
        )
        .unwrap();
        let r = rename
            .apply(record(
                json!({"a": 1, "cust_id": 7, "addr": {"zip": "1000", "city": "x"}, "z": 0}),
            ))
            .unwrap();
        assert_eq!(
            text(&r),
            r#"{"a":1,"customer_id":7,"addr":{"postcode":"1000","city":"x"},"z":0}"#
        );
        let clash = RenameFields::new(&spec("fields: [{from: new, to: old}]"), AT).unwrap();
        let r = clash.apply(record(json!({"old": 1, "new": 2}))).unwrap();
        assert_eq!(text(&r), r#"{"old":2}"#);
        assert_eq!(rename.apply(tombstone()).unwrap(), tombstone());
        let error = RenameFields::new(&spec("fields: [{from: a, to: b.c}]"), AT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "spec.transforms[0].t.fields[0].to: must be a field name (the field stays in the same object as from), not empty or a path"
        );
    }

    #[test]
    fn drop_and_keep_fields() {
        let value = json!({"id": 1, "email": "a@b", "after": {"id": 1, "ssn": "x", "name": "n"}, "op": "c"});
        let drop = DropFields::new(&spec("fields: [email, after.ssn, nothing.here]"), AT).unwrap();
        assert_eq!(
            text(&drop.apply(record(value.clone())).unwrap()),
            r#"{"id":1,"after":{"id":1,"name":"n"},"op":"c"}"#
        );
        let keep = KeepFields::new(&spec("fields: [op, after.name, after.id]"), AT).unwrap();
        assert_eq!(
            text(&keep.apply(record(value)).unwrap()),
            r#"{"after":{"id":1,"name":"n"},"op":"c"}"#
        );
        let keep_after = KeepFields::new(&spec("fields: [after.id]"), AT).unwrap();
        assert_eq!(
            text(
                &keep_after
                    .apply(record(json!({"after": null, "before": {"id": 1}})))
                    .unwrap()
            ),
            r#"{"after":null}"#
        );
        assert_eq!(keep.apply(tombstone()).unwrap(), tombstone());
        let error = DropFields::new(&spec("fields: []"), AT).unwrap_err().to_string();
        assert_eq!(error, "spec.transforms[0].t.fields: list at least one field");
        let error = KeepFields::new(&spec("fields: [a, '']"), AT)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "spec.transforms[0].t.fields[1]: must not be empty");
    }

    #[test]
    fn mask_with_empty_values_of_each_type() {
        let mask = MaskFields::new(&spec("fields: [s, i, f, b, a, o, n, missing]"), AT).unwrap();
        let r = mask
            .apply(record(
                json!({"s": "secret", "i": 42, "f": 4.2, "b": true, "a": [1], "o": {"x": 1}, "n": null}),
            ))
            .unwrap();
        assert_eq!(
            text(&r),
            r#"{"s":"","i":0,"f":0.0,"b":false,"a":[],"o":{},"n":null}"#
        );
    }

    #[test]
    fn mask_with_a_replacement() {
        let mask = MaskFields::new(&spec("fields: [card, pin, vip]\nreplacement: '****'"), AT).unwrap();
        let r = mask.apply(record(json!({"card": "4111", "vip": true}))).unwrap();
        assert_eq!(text(&r), r#"{"card":"****","vip":false}"#);
        assert_eq!(
            mask.apply(record(json!({"pin": 1234}))).unwrap_err(),
            Failure::field("pin", "is a number, and the replacement '****' is not")
        );
        let numeric = MaskFields::new(&spec("fields: [pin, card]\nreplacement: '-1'"), AT).unwrap();
        let r = numeric
            .apply(record(json!({"pin": 1234, "card": "4111"})))
            .unwrap();
        assert_eq!(text(&r), r#"{"pin":-1,"card":"-1"}"#);
    }

    #[test]
    fn cast_between_types() {
        let c = Cast::new(
            &spec(
                "fields:\n- {field: a, to: Int}\n- {field: b, to: Int}\n- {field: c, to: Int}\n- {field: d, to: Float}\n\
                 - {field: e, to: String}\n- {field: f, to: String}\n- {field: g, to: Bool}\n- {field: h, to: Bool}\n\
                 - {field: i, to: Float}\n- {field: j, to: String}\n- {field: n, to: Int}\n- {field: missing, to: Int}",
            ),
            AT,
        )
        .unwrap();
        let r = c
            .apply(record(json!({
                "a": "42", "b": -3.9, "c": true, "d": "2.5", "e": 7, "f": {"x": [1]},
                "g": "TRUE", "h": 0, "i": 3, "j": "same", "n": null
            })))
            .unwrap();
        assert_eq!(
            text(&r),
            r#"{"a":42,"b":-3,"c":1,"d":2.5,"e":"7","f":"{\"x\":[1]}","g":true,"h":false,"i":3.0,"j":"same","n":null}"#
        );
    }

    #[test]
    fn cast_failures_name_the_field_and_value() {
        let c = Cast::new(&spec("fields: [{field: after.rating, to: Int}]"), AT).unwrap();
        assert_eq!(
            c.apply(record(json!({"after": {"rating": "abc"}}))).unwrap_err(),
            Failure::field("after.rating", "cannot cast \"abc\" to Int")
        );
        assert!(c.apply(record(json!({"after": {"rating": "3.5"}}))).is_err());
        assert!(c.apply(record(json!({"after": {"rating": 1e300}}))).is_err());
        assert!(c.apply(record(json!({"after": {"rating": [1]}}))).is_err());
        let b = Cast::new(&spec("fields: [{field: x, to: Bool}]"), AT).unwrap();
        assert_eq!(
            b.apply(record(json!({"x": "yes"}))).unwrap_err(),
            Failure::field("x", "cannot cast \"yes\" to Bool")
        );
        let f = Cast::new(&spec("fields: [{field: x, to: Float}]"), AT).unwrap();
        assert!(f.apply(record(json!({"x": "NaN"}))).is_err());
    }

    #[test]
    fn value_to_key() {
        let v = ValueToKey::new(&spec("fields: [after.id, region]"), AT).unwrap();
        let r = v
            .apply(record(json!({"after": {"id": 9, "x": 1}, "region": "eu"})))
            .unwrap();
        assert_eq!(r.key, Some(json!({"id": 9, "region": "eu"})));
        assert_eq!(
            v.apply(record(json!({"after": {"id": 9}}))).unwrap_err(),
            Failure::field("region", "not found in the value")
        );
        assert_eq!(v.apply(tombstone()).unwrap(), tombstone());
        let error = ValueToKey::new(&spec("fields: [after.id, before.id]"), AT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "spec.transforms[0].t.fields[1]: would be key field 'id', as fields[0] already is (key fields are named by the last part of the path)"
        );
    }
}
