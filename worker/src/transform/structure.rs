//! Transforms that change the shape of the value: extractField (value :=
//! value.<field>) and flatten (nested objects → `a_b` fields).

use serde_json::{Map, Value};
use tributary_api::transform::{self as api, RecordPart};

use super::fields::parse_path;
use super::path::{FieldPath, type_name};
use super::{Failure, TransformConfigError};
use crate::record::Record;

#[derive(Debug, Clone)]
pub(crate) struct ExtractField {
    path: FieldPath,
    part: RecordPart,
}

impl ExtractField {
    pub(crate) fn new(spec: &api::ExtractField, field: &str) -> Result<Self, TransformConfigError> {
        Ok(Self {
            path: parse_path(&spec.field, &format!("{field}.field"))?,
            part: spec.part,
        })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Record, Failure> {
        let (slot, part) = match self.part {
            RecordPart::Value => (&mut record.value, "value"),
            RecordPart::Key => (&mut record.key, "key"),
        };
        let map = match slot.as_mut() {
            None => return Ok(record),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(Failure::record(format!(
                    "the {part} is {}, not an object",
                    type_name(other)
                )));
            }
        };
        // Taken, not cloned: the rest of the object is discarded anyway.
        let extracted = self
            .path
            .get_mut(map)
            .map(Value::take)
            .ok_or_else(|| Failure::field(self.path.as_str(), format!("not found in the {part}")))?;
        *slot = match extracted {
            Value::Null => None,
            other => Some(other),
        };
        Ok(record)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Flatten {
    delimiter: String,
}

impl Flatten {
    pub(crate) fn new(spec: &api::Flatten) -> Self {
        Self {
            delimiter: spec.delimiter.clone(),
        }
    }

    /// Values that are not objects (and tombstones) pass unchanged.
    pub(crate) fn apply(&self, mut record: Record) -> Record {
        if let Some(Value::Object(map)) = record.value.as_mut()
            && map.values().any(Value::is_object)
        {
            let nested = std::mem::take(map);
            let mut flat = Map::with_capacity(nested.len());
            let mut prefix = String::new();
            self.flatten_into(&mut flat, &mut prefix, nested);
            *map = flat;
        }
        record
    }

    /// Moves the fields of `map` into `out`, named `<prefix><name>`; nested
    /// objects recurse with a longer prefix (an empty one leaves nothing,
    /// as in Kafka Connect). Arrays are kept as they are.
    fn flatten_into(&self, out: &mut Map<String, Value>, prefix: &mut String, map: Map<String, Value>) {
        for (name, value) in map {
            let before = prefix.len();
            if before > 0 {
                prefix.push_str(&self.delimiter);
            }
            prefix.push_str(&name);
            match value {
                Value::Object(inner) => self.flatten_into(out, prefix, inner),
                other => {
                    out.insert(prefix.clone(), other);
                }
            }
            prefix.truncate(before);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(value: Option<Value>) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value,
            headers: Vec::new(),
        }
    }

    const AT: &str = "spec.transforms[1].extractField";

    fn value_field(field: &str) -> api::ExtractField {
        api::ExtractField {
            field: field.into(),
            part: RecordPart::Value,
        }
    }

    #[test]
    fn extract_field_from_the_key() {
        let spec = api::ExtractField {
            field: "id".into(),
            part: RecordPart::Key,
        };
        let extract = ExtractField::new(&spec, AT).unwrap();
        let keyed = |key: Option<Value>| Record {
            key,
            ..record(Some(json!({"id": 7, "x": 1})))
        };
        let r = extract.apply(keyed(Some(json!({"id": 7})))).unwrap();
        assert_eq!((r.key, r.value), (Some(json!(7)), Some(json!({"id": 7, "x": 1}))));
        assert_eq!(extract.apply(keyed(None)).unwrap(), keyed(None));
        assert_eq!(
            extract.apply(keyed(Some(json!({"other": 1})))).unwrap_err(),
            Failure::field("id", "not found in the key")
        );
        assert_eq!(
            extract.apply(keyed(Some(json!("7")))).unwrap_err(),
            Failure::record("the key is a string, not an object")
        );
    }

    #[test]
    fn extract_field_replaces_the_value() {
        let extract = ExtractField::new(&value_field("after"), AT).unwrap();
        let r = extract
            .apply(record(Some(
                json!({"before": null, "after": {"id": 1}, "op": "c"}),
            )))
            .unwrap();
        assert_eq!(r.value, Some(json!({"id": 1})));
        // A delete's null `after` becomes a tombstone, as in Kafka Connect.
        let r = extract
            .apply(record(Some(
                json!({"before": {"id": 1}, "after": null, "op": "d"}),
            )))
            .unwrap();
        assert_eq!(r.value, None);
        assert_eq!(extract.apply(record(None)).unwrap(), record(None));
        assert_eq!(
            extract.apply(record(Some(json!({"ts_ms": 1})))).unwrap_err(),
            Failure::field("after", "not found in the value")
        );
        let nested = ExtractField::new(&value_field("after.id"), AT).unwrap();
        let r = nested.apply(record(Some(json!({"after": {"id": 5}})))).unwrap();
        assert_eq!(r.value, Some(json!(5)));
        let error = ExtractField::new(&value_field(""), AT).unwrap_err().to_string();
        assert_eq!(error, "spec.transforms[1].extractField.field: must not be empty");
    }

    #[test]
    fn flatten_joins_nested_names() {
        let flatten = Flatten::new(&api::Flatten::default());
        let r = flatten.apply(record(Some(json!({
            "id": 1,
            "address": {"city": "Ghent", "geo": {"lat": 51.0, "lon": 3.7}},
            "tags": [{"a": 1}],
            "empty": {},
            "last": null
        }))));
        assert_eq!(
            serde_json::to_string(r.value.as_ref().unwrap()).unwrap(),
            r#"{"id":1,"address_city":"Ghent","address_geo_lat":51.0,"address_geo_lon":3.7,"tags":[{"a":1}],"last":null}"#
        );
        let dotted = Flatten::new(&api::Flatten {
            delimiter: ".".into(),
        });
        let r = dotted.apply(record(Some(json!({"a": {"b": 1}}))));
        assert_eq!(r.value, Some(json!({"a.b": 1})));
        assert_eq!(dotted.apply(record(None)), record(None));
        assert_eq!(dotted.apply(record(Some(json!(3)))), record(Some(json!(3))));
    }
}
