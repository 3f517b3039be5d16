//! Transforms: the ordered list `spec.transforms`, applied to each record
//! between decoding and the sink (or between a source and Kafka).
//!
//! Data model:
//!
//! ```text
//!  [TransformSpec] ──TransformChain::new──► [Step { predicate?, Transform }]
//!     (API, YAML)      validates everything     regexes compiled, paths split,
//!                      once, errors name        filter expressions parsed
//!                      spec.transforms[i].…
//!
//!  Record ──apply──► step 0 ──► step 1 ──► … ──► Ok(Some(record))
//!                      │ predicate false: record passes unchanged
//!                      │ filter false / unwrap drop: Ok(None), chain ends
//!                      └ bad data (cast "abc" to Int): Err(TransformError)
//!                        naming the step: the runtime sends the record to
//!                        the dead-letter topic or stops, per error tolerance
//! ```
//!
//! Records are [`Record`]s whose key and value are JSON trees; Debezium
//! change events are plain objects with `before`, `after`, `source`, `op`.
//! Field transforms work on the value and pass tombstones (null values)
//! through unchanged. Nothing is compiled or parsed per record.

mod expr;
mod fields;
mod path;
mod predicate;
mod route;
mod structure;
mod timestamp;
mod unwrap;

#[cfg(test)]
mod tests;

use tributary_api::transform::TransformSpec;

use self::predicate::Predicate;
use crate::record::Record;

/// Where transforms live in a Connector spec, for error messages.
const SPEC_FIELD: &str = "spec.transforms";

/// A transform list that cannot be used. The message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformConfigError {
    /// A field's value is not allowed.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `spec.transforms[2].filter.expression`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl TransformConfigError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A record a transform could not process (e.g. a cast of `"abc"` to `Int`).
/// Retrying cannot help: the runtime sends the record to the dead-letter
/// topic (tolerance `all`) or stops the connector (tolerance `none`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SPEC_FIELD}[{index}].{transform}: {message}")]
pub struct TransformError {
    /// Position of the failing transform in `spec.transforms`.
    pub index: usize,
    /// Its kind, as written in the spec (e.g. `cast`): the error class in
    /// dead-letter headers.
    pub transform: &'static str,
    /// The field of the record involved, when there is one (e.g. `after.rating`).
    pub field: Option<String>,
    /// What went wrong (naming the field, and the offending value shortened).
    pub message: String,
}

/// What one transform reports for a record it cannot process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    field: Option<String>,
    message: String,
}

impl Failure {
    /// A failure about the record as a whole.
    pub(crate) fn record(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }

    /// A failure about one field; the message is prefixed with the field.
    pub(crate) fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self {
            field: Some(field.to_owned()),
            message: format!("{field}: {message}"),
        }
    }
}

/// What a transform does to a record.
#[derive(Debug, Clone)]
enum Transform {
    Filter(expr::Expr),
    InsertField(fields::InsertField),
    RenameFields(fields::RenameFields),
    DropFields(fields::DropFields),
    KeepFields(fields::KeepFields),
    MaskFields(fields::MaskFields),
    ExtractField(structure::ExtractField),
    Flatten(structure::Flatten),
    Cast(fields::Cast),
    ConvertTimestamp(timestamp::ConvertTimestamp),
    RegexRoute(route::RegexRoute),
    TimestampRoute(route::TimestampRoute),
    ValueToKey(fields::ValueToKey),
    Unwrap(unwrap::Unwrap),
}

impl Transform {
    fn apply(&self, record: Record) -> Result<Option<Record>, Failure> {
        match self {
            Transform::Filter(expr) => Ok(expr.matches(&record).then_some(record)),
            Transform::InsertField(t) => t.apply(record).map(Some),
            Transform::RenameFields(t) => t.apply(record).map(Some),
            Transform::DropFields(t) => t.apply(record).map(Some),
            Transform::KeepFields(t) => t.apply(record).map(Some),
            Transform::MaskFields(t) => t.apply(record).map(Some),
            Transform::ExtractField(t) => t.apply(record).map(Some),
            Transform::Flatten(t) => Ok(Some(t.apply(record))),
            Transform::Cast(t) => t.apply(record).map(Some),
            Transform::ConvertTimestamp(t) => t.apply(record).map(Some),
            Transform::RegexRoute(t) => t.apply(record).map(Some),
            Transform::TimestampRoute(t) => t.apply(record).map(Some),
            Transform::ValueToKey(t) => t.apply(record).map(Some),
            Transform::Unwrap(t) => t.apply(record),
        }
    }
}

/// One entry of the list.
#[derive(Debug, Clone)]
struct Step {
    index: usize,
    /// The block's name in the spec (`filter`, `insertField`, …).
    kind: &'static str,
    predicate: Option<Predicate>,
    transform: Transform,
}

/// A validated, compiled transform list.
#[derive(Debug, Clone, Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

impl TransformChain {
    /// Validates and compiles `specs` (the Connector's `spec.transforms`).
    /// Every regular expression, filter expression, path and format is
    /// checked here, so a chain that builds never fails on its own config.
    pub fn new(specs: &[TransformSpec]) -> Result<Self, TransformConfigError> {
        let steps = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| compile(index, spec))
            .collect::<Result<_, _>>()?;
        Ok(Self { steps })
    }

    /// True when there is nothing to do (records pass unchanged).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Number of transforms.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Runs `record` through every transform in order. `Ok(None)`: a filter
    /// or `unwrap` dropped it (commit its offset, write nothing).
    pub fn apply(&self, mut record: Record) -> Result<Option<Record>, TransformError> {
        for step in &self.steps {
            if step.predicate.as_ref().is_some_and(|p| !p.test(&record)) {
                continue;
            }
            match step.transform.apply(record) {
                Ok(Some(next)) => record = next,
                Ok(None) => return Ok(None),
                Err(failure) => {
                    return Err(TransformError {
                        index: step.index,
                        transform: step.kind,
                        field: failure.field,
                        message: failure.message,
                    });
                }
            }
        }
        Ok(Some(record))
    }
}

fn compile(index: usize, spec: &TransformSpec) -> Result<Step, TransformConfigError> {
    let at = format!("{SPEC_FIELD}[{index}]");
    let set = blocks_set(spec);
    if set.len() != 1 {
        let found = if set.is_empty() {
            "none".to_owned()
        } else {
            set.join(", ")
        };
        return Err(TransformConfigError::invalid(
            at,
            format!(
                "set exactly one of filter, insertField, renameFields, dropFields, keepFields, maskFields, \
                 extractField, flatten, cast, convertTimestamp, route, valueToKey or unwrap (found {found})"
            ),
        ));
    }
    let predicate = spec
        .predicate
        .as_ref()
        .map(|p| Predicate::new(p, &format!("{at}.predicate")))
        .transpose()?;
    let field = |kind: &str| format!("{at}.{kind}");
    let (kind, transform) = match spec {
        TransformSpec { filter: Some(t), .. } => (
            "filter",
            expr::parse(&t.expression).map(Transform::Filter).map_err(|e| {
                TransformConfigError::invalid(format!("{}.expression", field("filter")), e.to_string())
            })?,
        ),
        TransformSpec {
            insert_field: Some(t),
            ..
        } => (
            "insertField",
            Transform::InsertField(fields::InsertField::new(t, &field("insertField"))?),
        ),
        TransformSpec {
            rename_fields: Some(t),
            ..
        } => (
            "renameFields",
            Transform::RenameFields(fields::RenameFields::new(t, &field("renameFields"))?),
        ),
        TransformSpec {
            drop_fields: Some(t), ..
        } => (
            "dropFields",
            Transform::DropFields(fields::DropFields::new(t, &field("dropFields"))?),
        ),
        TransformSpec {
            keep_fields: Some(t), ..
        } => (
            "keepFields",
            Transform::KeepFields(fields::KeepFields::new(t, &field("keepFields"))?),
        ),
        TransformSpec {
            mask_fields: Some(t), ..
        } => (
            "maskFields",
            Transform::MaskFields(fields::MaskFields::new(t, &field("maskFields"))?),
        ),
        TransformSpec {
            extract_field: Some(t),
            ..
        } => (
            "extractField",
            Transform::ExtractField(structure::ExtractField::new(t, &field("extractField"))?),
        ),
        TransformSpec { flatten: Some(t), .. } => ("flatten", Transform::Flatten(structure::Flatten::new(t))),
        TransformSpec { cast: Some(t), .. } => {
            ("cast", Transform::Cast(fields::Cast::new(t, &field("cast"))?))
        }
        TransformSpec {
            convert_timestamp: Some(t),
            ..
        } => (
            "convertTimestamp",
            Transform::ConvertTimestamp(timestamp::ConvertTimestamp::new(t, &field("convertTimestamp"))?),
        ),
        TransformSpec { route: Some(t), .. } => ("route", route::compile(t, &field("route"))?),
        TransformSpec {
            value_to_key: Some(t),
            ..
        } => (
            "valueToKey",
            Transform::ValueToKey(fields::ValueToKey::new(t, &field("valueToKey"))?),
        ),
        TransformSpec { unwrap: Some(t), .. } => (
            "unwrap",
            Transform::Unwrap(unwrap::Unwrap::new(t, &field("unwrap"))?),
        ),
        _ => return Err(TransformConfigError::invalid(at, "no transform set")),
    };
    Ok(Step {
        index,
        kind,
        predicate,
        transform,
    })
}

/// The transform blocks set in `spec`, by their names in the spec.
fn blocks_set(spec: &TransformSpec) -> Vec<&'static str> {
    [
        ("filter", spec.filter.is_some()),
        ("insertField", spec.insert_field.is_some()),
        ("renameFields", spec.rename_fields.is_some()),
        ("dropFields", spec.drop_fields.is_some()),
        ("keepFields", spec.keep_fields.is_some()),
        ("maskFields", spec.mask_fields.is_some()),
        ("extractField", spec.extract_field.is_some()),
        ("flatten", spec.flatten.is_some()),
        ("cast", spec.cast.is_some()),
        ("convertTimestamp", spec.convert_timestamp.is_some()),
        ("route", spec.route.is_some()),
        ("valueToKey", spec.value_to_key.is_some()),
        ("unwrap", spec.unwrap.is_some()),
    ]
    .into_iter()
    .filter_map(|(kind, is_set)| is_set.then_some(kind))
    .collect()
}
