//! Row images and message keys from a table's columns and one pgoutput tuple.

use serde_json::{Map, Value};

use super::envelope::UNAVAILABLE_VALUE;
use super::value::{PgType, ValueError, convert, fallback};

/// A table column as a Relation message describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Its type.
    pub pg_type: PgType,
    /// Part of the replica identity (the primary key under REPLICA IDENTITY DEFAULT).
    pub key: bool,
    /// May be NULL (not a key column, no NOT NULL constraint); Debezium
    /// marks the other fields non-optional.
    pub optional: bool,
    /// The schema default (see `value::column_default`), written for a NULL
    /// as Connect's `JsonConverter` does.
    pub default: Option<Value>,
}

impl Column {
    /// A column without a default, optional unless it is a key column.
    pub fn new(name: impl Into<String>, pg_type: PgType, key: bool) -> Self {
        Self {
            name: name.into(),
            pg_type,
            key,
            optional: !key,
            default: None,
        }
    }
}

/// One column value of a tuple as pgoutput sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datum<'a> {
    /// SQL NULL.
    Null,
    /// An unchanged TOAST value Postgres did not send.
    UnchangedToast,
    /// A value in text format.
    Text(&'a str),
}

/// A tuple that does not match its relation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RowError {
    /// Column count differs from the relation's.
    #[error("tuple has {values} values but the relation has {columns} columns")]
    Arity {
        /// Values in the tuple.
        values: usize,
        /// Columns in the relation.
        columns: usize,
    },
    /// A value could not be converted.
    #[error("column {column}: {source}")]
    Value {
        /// The column.
        column: String,
        /// Why.
        #[source]
        source: ValueError,
    },
}

/// The row image (`before` or `after`): every column, converted.
pub fn row_image(columns: &[Column], values: &[Datum<'_>]) -> Result<Map<String, Value>, RowError> {
    image(columns, values, |_| true)
}

/// The message key: the replica-identity columns only.
pub fn key(columns: &[Column], values: &[Datum<'_>]) -> Result<Map<String, Value>, RowError> {
    image(columns, values, |c| c.key)
}

fn image(
    columns: &[Column],
    values: &[Datum<'_>],
    include: impl Fn(&Column) -> bool,
) -> Result<Map<String, Value>, RowError> {
    if columns.len() != values.len() {
        return Err(RowError::Arity {
            values: values.len(),
            columns: columns.len(),
        });
    }
    columns
        .iter()
        .zip(values)
        .filter(|(column, _)| include(column))
        .map(|(column, datum)| {
            let value = match datum {
                // A NULL where the schema has a default (Connect writes the
                // default), or where it allows none (an old-key tuple's
                // non-key columns): Debezium's value, never a null the
                // schema forbids.
                Datum::Null => match &column.default {
                    Some(default) => default.clone(),
                    None if column.optional => Value::Null,
                    None => fallback(&column.pg_type),
                },
                Datum::UnchangedToast => unavailable(&column.pg_type),
                Datum::Text(text) => convert(&column.pg_type, text).map_err(|source| RowError::Value {
                    column: column.name.clone(),
                    source,
                })?,
            };
            Ok((column.name.clone(), value))
        })
        .collect()
}

/// Debezium's placeholder for an unchanged TOAST value, in the column's
/// encoding: the text itself for strings, its bytes for `bytea`, a
/// one-element array for arrays.
fn unavailable(pg_type: &PgType) -> Value {
    use base64::Engine as _;
    match pg_type {
        PgType::Bytea => Value::String(base64::engine::general_purpose::STANDARD.encode(UNAVAILABLE_VALUE)),
        PgType::Array(element) => Value::Array(vec![unavailable(element)]),
        _ => Value::String(UNAVAILABLE_VALUE.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order_items() -> Vec<Column> {
        vec![
            Column::new("order_id", PgType::Int4, true),
            Column::new("item_id", PgType::Int4, true),
            Column::new("price", PgType::Numeric(Some((10, 2))), false),
            Column::new("note", PgType::Text, false),
        ]
    }

    #[test]
    fn nulls_in_non_optional_columns_take_the_default_or_the_zero() {
        let mut quantity = Column::new("quantity", PgType::Int4, false);
        quantity.optional = false;
        let mut status = Column::new("status", PgType::Text, false);
        status.default = Some(json!("new"));
        let columns = [
            Column::new("id", PgType::Int4, true),
            quantity,
            status,
            Column::new("note", PgType::Text, false),
        ];
        // An old-key tuple (REPLICA IDENTITY DEFAULT): only the key is sent.
        let image = row_image(
            &columns,
            &[Datum::Text("7"), Datum::Null, Datum::Null, Datum::Null],
        )
        .unwrap();
        assert_eq!(
            Value::Object(image),
            json!({"id": 7, "quantity": 0, "status": "new", "note": null})
        );
    }

    #[test]
    fn composite_key_and_full_image() {
        let values = [
            Datum::Text("7"),
            Datum::Text("2"),
            Datum::Text("12.34"),
            Datum::Null,
        ];
        assert_eq!(
            Value::Object(key(&order_items(), &values).unwrap()),
            json!({"order_id": 7, "item_id": 2})
        );
        assert_eq!(
            Value::Object(row_image(&order_items(), &values).unwrap()),
            json!({"order_id": 7, "item_id": 2, "price": "BNI=", "note": null})
        );
    }

    #[test]
    fn unchanged_toast_becomes_debeziums_placeholder() {
        let values = [
            Datum::Text("7"),
            Datum::Text("2"),
            Datum::Text("1"),
            Datum::UnchangedToast,
        ];
        let image = row_image(&order_items(), &values).unwrap();
        assert_eq!(image["note"], json!("__debezium_unavailable_value"));
    }

    #[test]
    fn errors_name_the_column() {
        let values = [
            Datum::Text("seven"),
            Datum::Text("2"),
            Datum::Text("1"),
            Datum::Null,
        ];
        let error = row_image(&order_items(), &values).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("column order_id: invalid integer value \"seven\""),
            "{error}"
        );
        assert_eq!(
            row_image(&order_items(), &values[..2]).unwrap_err(),
            RowError::Arity {
                values: 2,
                columns: 4
            }
        );
    }
}
