//! Debezium's `ExtractNewRecordState`: a change event becomes the row it
//! describes.
//!
//! ```text
//!  op c / u / r  {before, after, source, op, …}  →  after (+ added fields)
//!  op d          Drop       → record removed
//!                Tombstone  → same key, null value
//!                Rewrite    → before + __deleted: "true"
//!  op t          truncate, no row                →  record removed
//!  tombstone     dropTombstones (default true)   →  record removed
//!  anything else (heartbeats, plain JSON, other ops) passes unchanged
//! ```
//!
//! With `Rewrite`, rows of other events get `__deleted: "false"`, so a sink
//! sees the flag on every record, as with Debezium.

use serde_json::{Map, Value};
use tributary_api::transform::{self as api, DeleteHandling};

use super::path::{FieldPath, type_name};
use super::{Failure, TransformConfigError};
use crate::record::Record;

/// The flag `Rewrite` adds (Debezium's name).
const DELETED: &str = "__deleted";

#[derive(Debug, Clone)]
pub(crate) struct Unwrap {
    delete_handling: DeleteHandling,
    drop_tombstones: bool,
    /// (name in the row, where in the envelope)
    add_fields: Vec<(String, FieldPath)>,
}

impl Unwrap {
    pub(crate) fn new(spec: &api::Unwrap, field: &str) -> Result<Self, TransformConfigError> {
        let add_fields = spec
            .add_fields
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let at = format!("{field}.addFields[{i}]");
                let path =
                    FieldPath::parse(name).map_err(|message| TransformConfigError::invalid(&at, message))?;
                // As Debezium resolves them: envelope fields by name,
                // `source.x` explicitly, and any other name inside `source`.
                let envelope = matches!(name.as_str(), "op" | "ts_ms" | "ts_us" | "ts_ns")
                    || name.starts_with("transaction.")
                    || name.starts_with("source.");
                let location = if envelope {
                    path
                } else {
                    FieldPath::parse(&format!("source.{name}"))
                        .map_err(|message| TransformConfigError::invalid(&at, message))?
                };
                Ok((
                    format!("{}{}", spec.add_fields_prefix, name.replace('.', "_")),
                    location,
                ))
            })
            .collect::<Result<_, TransformConfigError>>()?;
        Ok(Self {
            delete_handling: spec.delete_handling,
            drop_tombstones: spec.drop_tombstones,
            add_fields,
        })
    }

    pub(crate) fn apply(&self, mut record: Record) -> Result<Option<Record>, Failure> {
        let Some(Value::Object(envelope)) = record.value.as_mut() else {
            return Ok(if record.value.is_none() && self.drop_tombstones {
                None
            } else {
                Some(record)
            });
        };
        // A static name, so the envelope is free to be taken apart below.
        let op: &'static str = match envelope.get("op") {
            Some(Value::String(op)) if is_change_event(envelope) => match op.as_str() {
                "c" => "c",
                "u" => "u",
                "r" => "r",
                "d" => "d",
                "t" => "t",
                _ => return Ok(Some(record)),
            },
            _ => return Ok(Some(record)),
        };
        let (image, deleted) = match op {
            "c" | "u" | "r" => ("after", false),
            "d" => match self.delete_handling {
                DeleteHandling::Drop => return Ok(None),
                DeleteHandling::Tombstone => {
                    record.value = None;
                    return Ok(Some(record));
                }
                DeleteHandling::Rewrite => ("before", true),
            },
            _ => return Ok(None), // "t": a truncate has no row
        };
        let mut row = match envelope.get_mut(image).map(Value::take) {
            Some(Value::Object(row)) => row,
            other => {
                return Err(Failure::record(format!(
                    "change event with op '{op}' has {} as its {image} row, not an object",
                    other.as_ref().map_or("no field", type_name)
                )));
            }
        };
        for (name, location) in &self.add_fields {
            let value = location.get(envelope).cloned().unwrap_or(Value::Null);
            row.insert(name.clone(), value);
        }
        if self.delete_handling == DeleteHandling::Rewrite {
            row.insert(DELETED.to_owned(), Value::String(deleted.to_string()));
        }
        record.value = Some(Value::Object(row));
        Ok(Some(record))
    }
}

/// A Debezium change event has `op` and row images (possibly null); this
/// tells it apart from other JSON that merely has an `op` field.
fn is_change_event(value: &Map<String, Value>) -> bool {
    value.contains_key("source") && (value.contains_key("after") || value.contains_key("before"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[allow(clippy::needless_pass_by_value)] // json! serialises by reference; callers build rows inline
    fn envelope(op: &str, before: Value, after: Value) -> Value {
        json!({
            "before": before,
            "after": after,
            "source": {"version": "tributary-0.1.0", "connector": "postgresql", "name": "shop",
                       "ts_ms": 1_700_000_000_000_i64, "db": "shop", "schema": "public", "table": "ratings",
                       "txId": 770, "lsn": 200},
            "op": op,
            "ts_ms": 1_700_000_000_005_i64,
            "transaction": null
        })
    }

    fn record(value: Option<Value>) -> Record {
        Record {
            topic: "shop.public.ratings".into(),
            partition: 0,
            offset: 5,
            timestamp_ms: Some(1),
            key: Some(json!({"id": 1})),
            value,
            headers: Vec::new(),
        }
    }

    fn unwrap(yaml: &str) -> Unwrap {
        Unwrap::new(&serde_yaml::from_str(yaml).unwrap(), "spec.transforms[0].unwrap").unwrap()
    }

    #[test]
    fn creates_updates_and_reads_become_the_after_row() {
        let u = unwrap("{}");
        for op in ["c", "u", "r"] {
            let r = u
                .apply(record(Some(envelope(
                    op,
                    json!(null),
                    json!({"id": 1, "rating": 2}),
                ))))
                .unwrap()
                .unwrap();
            assert_eq!(r.value, Some(json!({"id": 1, "rating": 2})), "{op}");
            assert_eq!(r.key, Some(json!({"id": 1})));
        }
    }

    #[test]
    fn deletes_by_mode() {
        let delete = || record(Some(envelope("d", json!({"id": 1, "rating": 2}), json!(null))));
        assert_eq!(unwrap("{}").apply(delete()).unwrap(), None);
        let tombstone = unwrap("deleteHandling: Tombstone")
            .apply(delete())
            .unwrap()
            .unwrap();
        assert_eq!((tombstone.key, tombstone.value), (Some(json!({"id": 1})), None));
        let rewrite = unwrap("deleteHandling: Rewrite");
        let deleted = rewrite.apply(delete()).unwrap().unwrap();
        assert_eq!(
            deleted.value,
            Some(json!({"id": 1, "rating": 2, "__deleted": "true"}))
        );
        let created = rewrite
            .apply(record(Some(envelope("c", json!(null), json!({"id": 1})))))
            .unwrap()
            .unwrap();
        assert_eq!(created.value, Some(json!({"id": 1, "__deleted": "false"})));
    }

    #[test]
    fn tombstones_dropped_by_default() {
        assert_eq!(unwrap("{}").apply(record(None)).unwrap(), None);
        assert_eq!(
            unwrap("dropTombstones: false").apply(record(None)).unwrap(),
            Some(record(None))
        );
    }

    #[test]
    fn add_fields_as_debezium_names_them() {
        let u = unwrap("addFields: [op, source.ts_ms, table, lsn, ts_ms, transaction.id]");
        let r = u
            .apply(record(Some(envelope("u", json!(null), json!({"id": 1})))))
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_string(r.value.as_ref().unwrap()).unwrap(),
            r#"{"id":1,"__op":"u","__source_ts_ms":1700000000000,"__table":"ratings","__lsn":200,"__ts_ms":1700000000005,"__transaction_id":null}"#
        );
        let prefixed = unwrap("addFields: [op]\naddFieldsPrefix: 'cdc_'\ndeleteHandling: Rewrite");
        let r = prefixed
            .apply(record(Some(envelope("d", json!({"id": 1}), json!(null)))))
            .unwrap()
            .unwrap();
        assert_eq!(
            r.value,
            Some(json!({"id": 1, "cdc_op": "d", "__deleted": "true"}))
        );
    }

    #[test]
    fn other_records_pass_unchanged() {
        let u = unwrap("{}");
        let heartbeat = record(Some(json!({"ts_ms": 1_700_000_000_000_i64})));
        assert_eq!(u.apply(heartbeat.clone()).unwrap(), Some(heartbeat));
        let plain = record(Some(json!({"op": "c", "id": 1})));
        assert_eq!(u.apply(plain.clone()).unwrap(), Some(plain));
        let text = record(Some(json!("text")));
        assert_eq!(u.apply(text.clone()).unwrap(), Some(text));
        let message = record(Some(envelope("m", json!(null), json!(null))));
        assert_eq!(u.apply(message.clone()).unwrap(), Some(message));
        let truncate = record(Some(envelope("t", json!(null), json!(null))));
        assert_eq!(u.apply(truncate).unwrap(), None);
    }

    #[test]
    fn a_create_without_a_row_is_an_error() {
        let broken = record(Some(envelope("c", json!(null), json!(null))));
        assert_eq!(
            unwrap("{}").apply(broken).unwrap_err(),
            Failure::record("change event with op 'c' has null as its after row, not an object")
        );
    }

    #[test]
    fn bad_add_fields_name_the_entry() {
        let error = Unwrap::new(
            &serde_yaml::from_str("addFields: [op, 'source..x']").unwrap(),
            "spec.transforms[0].unwrap",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "spec.transforms[0].unwrap.addFields[1]: 'source..x' is not a field path: names are separated by single dots, e.g. after.rating"
        );
    }
}
