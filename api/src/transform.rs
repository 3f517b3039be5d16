//! Transforms: an ordered list of small, typed record rewrites applied
//! between Kafka and a connector's target (or between a source and Kafka),
//! as Kafka Connect's single message transforms and Debezium's
//! `ExtractNewRecordState` do.
//!
//! Data model: each entry of `spec.transforms` is one [`TransformSpec`] with
//! exactly one transform block set (`filter`, `insertField`, …), never a
//! free-form map, so a typo is refused at apply time. An entry may carry a
//! `predicate`: the transform then applies only to records the predicate
//! matches (Kafka Connect's predicates). A record flows through the entries
//! in order; `filter` and `unwrap` may drop it, which ends the chain.
//!
//! Field transforms work on the record value, a JSON tree; a field is named
//! by a path with dots into nested objects (`after.rating`). Tombstones
//! (null values) pass through them unchanged.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One step of a transform chain: exactly one transform block, optionally
/// applied only to records matching `predicate`.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("[has(self.filter), has(self.insertField), has(self.renameFields), has(self.dropFields), has(self.keepFields), has(self.maskFields), has(self.extractField), has(self.flatten), has(self.cast), has(self.convertTimestamp), has(self.route), has(self.valueToKey), has(self.unwrap)].filter(x, x).size() == 1").message("a transform must set exactly one of filter, insertField, renameFields, dropFields, keepFields, maskFields, extractField, flatten, cast, convertTimestamp, route, valueToKey or unwrap").reason(Reason::FieldValueInvalid))]
pub struct TransformSpec {
    /// Apply this transform only to records the predicate matches; other
    /// records pass through unchanged. Absent: every record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<PredicateSpec>,

    /// Keep only the records for which `expression` is true; drop the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterTransform>,

    /// Add one field to the value: a static string or a fact about the
    /// record (timestamp, topic, partition, offset). Kafka Connect's `InsertField`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_field: Option<InsertField>,

    /// Rename fields of the value, keeping their position. Kafka Connect's
    /// `ReplaceField` with `renames`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename_fields: Option<RenameFields>,

    /// Remove the listed fields from the value. Kafka Connect's
    /// `ReplaceField` with `exclude`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_fields: Option<FieldList>,

    /// Keep only the listed fields of the value. Kafka Connect's
    /// `ReplaceField` with `include`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_fields: Option<FieldList>,

    /// Replace the values of the listed fields with an empty value of their
    /// type (`""`, `0`, `false`, `[]`, `{}`) or with `replacement`. Kafka
    /// Connect's `MaskField`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_fields: Option<MaskFields>,

    /// Replace the value with one of its fields. Kafka Connect's `ExtractField`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract_field: Option<ExtractField>,

    /// Turn nested objects of the value into top-level fields named by
    /// joining the path with `delimiter` (`{"a": {"b": 1}}` → `{"a_b": 1}`).
    /// Kafka Connect's `Flatten`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten: Option<Flatten>,

    /// Convert fields of the value to another type. Kafka Connect's `Cast`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cast: Option<Cast>,

    /// Convert a timestamp field between epoch numbers and text. Kafka
    /// Connect's `TimestampConverter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert_timestamp: Option<ConvertTimestamp>,

    /// Change the record's topic: by regular expression (Kafka Connect's
    /// `RegexRouter`) or from a format with the record's timestamp (Kafka
    /// Connect's `TimestampRouter`). Sinks name their index or table after
    /// the topic, so this also routes records to another index or table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,

    /// Replace the key with an object of the listed value fields. Kafka
    /// Connect's `ValueToKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_to_key: Option<ValueToKey>,

    /// Replace a Debezium change event (`before`, `after`, `source`, `op`)
    /// with the row state after the change. Debezium's
    /// `ExtractNewRecordState`. Records that are not change events (e.g.
    /// heartbeats) pass through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unwrap: Option<Unwrap>,
}

/// Which records a transform applies to: exactly one condition, optionally negated.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("[has(self.topicMatches), has(self.hasHeader), has(self.isTombstone)].filter(x, x).size() == 1").message("a predicate must set exactly one of topicMatches, hasHeader or isTombstone").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!has(self.isTombstone) || self.isTombstone").message("isTombstone may only be true: use negate to match records that are not tombstones").reason(Reason::FieldValueInvalid))]
pub struct PredicateSpec {
    /// Regular expression matched against the whole topic name (Kafka
    /// Connect's `TopicNameMatches`), e.g. `shop\.public\.(orders|customers)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub topic_matches: Option<String>,
    /// Name of a header the record must carry, whatever its value (Kafka
    /// Connect's `HasHeaderKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub has_header: Option<String>,
    /// `true`: the record's value is null (Kafka Connect's `RecordIsTombstone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_tombstone: Option<bool>,
    /// Invert the condition: apply the transform to records that do not
    /// match. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// Keeps the records for which an expression is true.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterTransform {
    /// A condition over the record, e.g. `after.rating < 3`,
    /// `op == 'd'`, `value.region in ['eu', 'us'] and not deleted`.
    /// Names are paths into the value; `value`, `key`, `topic`,
    /// `partition`, `offset` and `timestamp` name the record itself.
    /// Operators: `==`, `!=`, `<`, `<=`, `>`, `>=`, `in [..]`, `not in [..]`,
    /// `is null`, `is not null`, `and`, `or`, `not`, parentheses. Literals:
    /// `'text'` or `"text"`, numbers, `true`, `false`, `null`. A missing field
    /// is null; comparing values of different types is false. A record is
    /// kept when the expression is true. See docs/transforms.md.
    #[schemars(length(min = 1, max = 4096))]
    pub expression: String,
}

/// Adds one field to the value.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.value) != has(self.from)").message("insertField must set exactly one of value or from").reason(Reason::FieldValueInvalid))]
pub struct InsertField {
    /// Path of the field to set, e.g. `source_system` or `after.ingested_at`.
    /// An existing field is overwritten; missing parent objects are created.
    #[schemars(length(min = 1, max = 1024))]
    pub field: String,
    /// A static string value (Kafka Connect's `static.value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    /// A fact about the record: `Timestamp` (its Kafka timestamp, ms since
    /// the epoch, or null), `Topic`, `Partition` or `Offset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<RecordFact>,
}

/// A fact about a record that `insertField` can insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RecordFact {
    /// The record's Kafka timestamp in ms since the epoch (null when absent).
    Timestamp,
    /// The topic the record was read from (or routed to by an earlier transform).
    Topic,
    /// The partition the record was read from.
    Partition,
    /// The record's offset in its partition.
    Offset,
}

/// Renames fields of the value.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenameFields {
    /// The renames, applied in order. A missing `from` field is ignored.
    #[schemars(length(min = 1, max = 256))]
    pub fields: Vec<Rename>,
}

/// One rename.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rename {
    /// Path of the field to rename, e.g. `after.cust_id`.
    #[schemars(length(min = 1, max = 1024))]
    pub from: String,
    /// New name of the field, in the same object as `from` (a name, not a path).
    #[schemars(length(min = 1, max = 256))]
    pub to: String,
}

/// Fields of the value, named by paths.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldList {
    /// Paths of the fields, e.g. `comment` or `after.comment`.
    #[schemars(length(min = 1, max = 256))]
    pub fields: Vec<String>,
}

/// Masks fields of the value.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaskFields {
    /// Paths of the fields to mask. Missing fields are ignored.
    #[schemars(length(min = 1, max = 256))]
    pub fields: Vec<String>,
    /// Written instead of the empty value: as is into string fields, as a
    /// number into number fields (a record whose masked field is a number
    /// fails when this is not a number). Other types get their empty value.
    /// Absent: the empty value of each field's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub replacement: Option<String>,
}

/// Replaces the value (or the key) with one of its fields.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtractField {
    /// Path of the field that becomes the value, e.g. `after`. A field that
    /// is present but null makes the record a tombstone; a missing field is
    /// an error (the record goes to the dead-letter topic).
    #[schemars(length(min = 1, max = 1024))]
    pub field: String,
    /// Which part of the record: `Value` (default) or `Key` (Kafka Connect's
    /// `ExtractField$Key`, e.g. key `{"id": 7}` → `7`). A null or missing key
    /// is left alone.
    #[serde(default)]
    pub part: RecordPart,
}

/// A part of a record that a transform works on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RecordPart {
    /// The record value.
    #[default]
    Value,
    /// The record key.
    Key,
}

/// Flattens nested objects.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flatten {
    /// Joins the names along a path. Default `_` (Kafka Connect's default is
    /// `.`, which OpenSearch would nest again and SQL would need to quote).
    #[serde(default = "default_delimiter")]
    #[schemars(length(max = 16))]
    pub delimiter: String,
}

impl Default for Flatten {
    fn default() -> Self {
        Self {
            delimiter: default_delimiter(),
        }
    }
}

fn default_delimiter() -> String {
    "_".to_owned()
}

/// Converts fields to other types.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cast {
    /// The conversions. Missing and null fields are left alone; a value that
    /// cannot be converted (e.g. `"abc"` to `Int`) fails the record.
    #[schemars(length(min = 1, max = 256))]
    pub fields: Vec<CastField>,
}

/// One conversion.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CastField {
    /// Path of the field, e.g. `after.price`.
    #[schemars(length(min = 1, max = 1024))]
    pub field: String,
    /// Target type: `Int` (64-bit; from a whole-number string, a number
    /// truncated towards zero, or a bool as 1/0), `Float` (64-bit), `String`
    /// (numbers and bools as text, objects and arrays as JSON text) or
    /// `Bool` (from `true`/`false`/`1`/`0` strings, or a number ≠ 0).
    pub to: CastType,
}

/// A type `cast` converts to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CastType {
    /// A 64-bit signed integer.
    #[default]
    Int,
    /// A 64-bit floating point number.
    Float,
    /// A string.
    String,
    /// `true` or `false`.
    Bool,
}

/// Converts a timestamp field, in UTC.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConvertTimestamp {
    /// Path of the field, e.g. `after.created_at`. Missing and null fields
    /// are left alone; a value that cannot be read fails the record.
    #[schemars(length(min = 1, max = 1024))]
    pub field: String,
    /// What the field becomes: `String` (written with `format`, or ISO 8601
    /// such as `2026-12-02T06:50:00.123Z` when absent) or `Epoch` (a whole
    /// number of `unit`s since 1970-01-01T00:00:00Z).
    pub to: TimestampType,
    /// Unit of epoch numbers, read and written: `Seconds`, `Milliseconds`
    /// (default), `Microseconds` (Debezium's timestamps), `Nanoseconds` or
    /// `Days` (Debezium's dates).
    #[serde(default)]
    pub unit: EpochUnit,
    /// Pattern of text values, read and written, with the letters of
    /// `route.timestampFormat` (e.g. `yyyy-MM-dd HH:mm:ss`). Absent: ISO 8601
    /// (text with an offset, a date-time or a date, read as UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub format: Option<String>,
}

/// What `convertTimestamp` turns a field into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TimestampType {
    /// Text.
    #[default]
    String,
    /// A number of `unit`s since the epoch.
    Epoch,
}

/// Unit of an epoch number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EpochUnit {
    /// Seconds.
    Seconds,
    /// Milliseconds (Kafka timestamps, Connect's `Timestamp`).
    #[default]
    Milliseconds,
    /// Microseconds (Debezium's `MicroTimestamp`).
    Microseconds,
    /// Nanoseconds (Debezium's `NanoTimestamp`).
    Nanoseconds,
    /// Days (Debezium's `Date`).
    Days,
}

/// Changes the topic of a record: set either `regex` and `replacement`, or
/// `topicFormat` (with `timestampFormat`).
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.regex) == has(self.replacement)").message("route.regex and route.replacement must be set together").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("has(self.regex) != has(self.topicFormat)").message("route must set either regex and replacement, or topicFormat").reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new("!has(self.timestampFormat) || has(self.topicFormat)").message("route.timestampFormat needs topicFormat").reason(Reason::FieldValueInvalid))]
pub struct Route {
    /// Regular expression matched against the whole topic name; a topic
    /// that does not match keeps its name (Kafka Connect's `RegexRouter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub regex: Option<String>,
    /// The new topic name; `$1` or `${1}` insert a numbered capture group,
    /// `${name}` a named one, `$$` a dollar sign. E.g. regex
    /// `shop\.public\.(.*)` with replacement `$1` routes
    /// `shop.public.orders` to `orders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub replacement: Option<String>,
    /// The new topic name, in which `${topic}` is the current topic and
    /// `${timestamp}` the record's timestamp formatted by `timestampFormat`
    /// (Kafka Connect's `TimestampRouter`), e.g. `${topic}-${timestamp}`.
    /// A record without a timestamp fails when `${timestamp}` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub topic_format: Option<String>,
    /// How `${timestamp}` is written, in UTC, with the letters of Java's
    /// `SimpleDateFormat` as Kafka Connect uses them: `yyyy` year, `MM`
    /// month, `dd` day, `HH` hour, `mm` minute, `ss` second, `SSS`
    /// millisecond; text in single quotes and other characters are copied.
    /// Default `yyyyMMdd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub timestamp_format: Option<String>,
}

/// Builds the key from fields of the value.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueToKey {
    /// Paths of the value fields that make up the key, in order. Each
    /// becomes a key field named by the last part of its path
    /// (`after.id` → `{"id": …}`). A missing field fails the record.
    #[schemars(length(min = 1, max = 64))]
    pub fields: Vec<String>,
}

/// Debezium's new-record-state extraction.
#[derive(KubeSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Unwrap {
    /// What a delete event (`op: d`) becomes: `Drop` (default, as in
    /// Debezium: the record is removed), `Tombstone` (a null value with the
    /// same key, which sinks turn into a delete) or `Rewrite` (the `before`
    /// row plus `__deleted: "true"`; other events get `__deleted: "false"`).
    #[serde(default)]
    pub delete_handling: DeleteHandling,
    /// Drop the tombstones that follow deletes on the topic. Default true,
    /// as in Debezium (`drop.tombstones`).
    #[serde(default = "default_true")]
    pub drop_tombstones: bool,
    /// Envelope fields copied into the row, named `<addFieldsPrefix><field>`
    /// with dots as `_` (Debezium's `add.fields`): `op`, `ts_ms`, `ts_us`,
    /// `ts_ns` and `transaction.*` from the envelope, any other name from the
    /// `source` block (`table`, `lsn`, or written as `source.ts_ms`). E.g.
    /// `[op, source.ts_ms, table]` adds `__op`, `__source_ts_ms`, `__table`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub add_fields: Vec<String>,
    /// Prefix of the added field names. Default `__`.
    #[serde(default = "default_prefix")]
    #[schemars(length(max = 64))]
    pub add_fields_prefix: String,
}

impl Default for Unwrap {
    fn default() -> Self {
        Self {
            delete_handling: DeleteHandling::default(),
            drop_tombstones: true,
            add_fields: Vec::new(),
            add_fields_prefix: default_prefix(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_prefix() -> String {
    "__".to_owned()
}

/// What `unwrap` makes of a delete event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeleteHandling {
    /// Remove the record (Debezium's default).
    #[default]
    Drop,
    /// A tombstone: same key, null value.
    Tombstone,
    /// The row before the delete with `__deleted: "true"`.
    Rewrite,
}

#[cfg(test)]
mod tests {
    use kube::core::cel::validate_cel_schema;
    use serde_json::json;

    use super::*;

    fn check(spec: serde_json::Value) -> Result<TransformSpec, String> {
        validate_cel_schema::<TransformSpec>(&spec, None).map_err(|e| e.to_string())?;
        serde_json::from_value(spec).map_err(|e| e.to_string())
    }

    #[test]
    fn exactly_one_transform_per_entry() {
        assert!(check(json!({"filter": {"expression": "rating < 3"}})).is_ok());
        let none = check(json!({"predicate": {"isTombstone": true}})).unwrap_err();
        assert!(
            none.contains("a transform must set exactly one of filter"),
            "{none}"
        );
        let two = check(json!({"flatten": {}, "unwrap": {}})).unwrap_err();
        assert!(two.contains("exactly one of"), "{two}");
    }

    #[test]
    fn predicates_set_one_condition() {
        let ok = json!({"predicate": {"topicMatches": "shop\\..*", "negate": true}, "flatten": {}});
        assert!(check(ok).is_ok());
        let two = json!({"predicate": {"topicMatches": "a", "hasHeader": "b"}, "flatten": {}});
        assert!(
            check(two)
                .unwrap_err()
                .contains("a predicate must set exactly one")
        );
        let false_tombstone = json!({"predicate": {"isTombstone": false}, "flatten": {}});
        assert!(check(false_tombstone).unwrap_err().contains("use negate"));
    }

    #[test]
    fn insert_field_takes_a_value_or_a_fact() {
        assert!(check(json!({"insertField": {"field": "f", "value": "x"}})).is_ok());
        assert!(check(json!({"insertField": {"field": "f", "from": "Offset"}})).is_ok());
        let both = json!({"insertField": {"field": "f", "value": "x", "from": "Topic"}});
        assert!(check(both).unwrap_err().contains("exactly one of value or from"));
        let bad_fact = json!({"insertField": {"field": "f", "from": "Key"}});
        assert!(check(bad_fact).is_err());
    }

    #[test]
    fn route_is_regex_or_timestamp() {
        assert!(check(json!({"route": {"regex": "a(.*)", "replacement": "$1"}})).is_ok());
        assert!(check(json!({"route": {"topicFormat": "${topic}-${timestamp}"}})).is_ok());
        let half = check(json!({"route": {"regex": "a(.*)"}})).unwrap_err();
        assert!(half.contains("must be set together"), "{half}");
        let mixed = json!({"route": {"regex": "a", "replacement": "b", "topicFormat": "c"}});
        assert!(
            check(mixed)
                .unwrap_err()
                .contains("either regex and replacement, or topicFormat")
        );
        let orphan = check(json!({"route": {"regex": "a", "replacement": "b", "timestampFormat": "yyyy"}}));
        assert!(orphan.unwrap_err().contains("timestampFormat needs topicFormat"));
    }

    #[test]
    fn defaults_follow_debezium_and_yaml_reads_naturally() {
        let spec: Vec<TransformSpec> = serde_yaml::from_str(
            "- unwrap: {}\n\
             - filter:\n    expression: rating < 3\n\
             - flatten: {}\n\
             - cast:\n    fields: [{field: rating, to: Float}]\n\
             - convertTimestamp: {field: after.created_at, to: String, unit: Microseconds}\n",
        )
        .unwrap();
        let unwrap = spec[0].unwrap.as_ref().unwrap();
        assert_eq!(unwrap.delete_handling, DeleteHandling::Drop);
        assert!(unwrap.drop_tombstones);
        assert_eq!(unwrap.add_fields_prefix, "__");
        assert_eq!(spec[2].flatten.as_ref().unwrap().delimiter, "_");
        assert_eq!(spec[3].cast.as_ref().unwrap().fields[0].to, CastType::Float);
        let convert = spec[4].convert_timestamp.as_ref().unwrap();
        assert_eq!(
            (convert.to, convert.unit),
            (TimestampType::String, EpochUnit::Microseconds)
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let error = serde_yaml::from_str::<TransformSpec>("unwrap:\n  deleteMode: Drop\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `deleteMode`"), "{error}");
    }
}
