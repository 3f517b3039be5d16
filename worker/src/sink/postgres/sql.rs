//! SQL text for the Postgres sink (pure).
//!
//! Rows travel as one parameter: a JSON array of row objects, read back by
//! `json_populate_recordset(NULL::<table>, $1)`, which converts every field
//! to its column's type with Postgres's own input functions. One statement
//! writes a whole batch, whatever its size and the number of columns (no
//! 65,535-parameter limit), and identifiers are quoted, never interpolated
//! as values.

use serde_json::Value;

/// `name` as a quoted identifier (`"` doubled).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.table`, quoted.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

fn list(columns: &[String]) -> String {
    columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
}

fn source(table: &str) -> String {
    format!("json_populate_recordset(NULL::{table}, $1::text::json) AS x")
}

/// INSERT of the rows in `$1`; `conflict`: the key columns to upsert on.
pub fn insert(table: &str, columns: &[String], conflict: Option<&[String]>) -> String {
    let cols = list(columns);
    let select = columns
        .iter()
        .map(|c| format!("x.{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO {table} ({cols}) SELECT {select} FROM {}",
        source(table)
    );
    let Some(key) = conflict else { return sql };
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{0} = EXCLUDED.{0}", ident(c)))
        .collect();
    if updates.is_empty() {
        format!("{sql} ON CONFLICT ({}) DO NOTHING", list(key))
    } else {
        format!(
            "{sql} ON CONFLICT ({}) DO UPDATE SET {}",
            list(key),
            updates.join(", ")
        )
    }
}

fn key_match(key: &[String]) -> String {
    key.iter()
        .map(|c| format!("t.{0} = x.{0}", ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// UPDATE of the rows in `$1` matched by `key` (`None` when only key columns
/// are present: there is nothing to set).
pub fn update(table: &str, columns: &[String], key: &[String]) -> Option<String> {
    let sets: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{0} = x.{0}", ident(c)))
        .collect();
    if sets.is_empty() {
        return None;
    }
    Some(format!(
        "UPDATE {table} AS t SET {} FROM {} WHERE {}",
        sets.join(", "),
        source(table),
        key_match(key)
    ))
}

/// DELETE of the rows whose keys are in `$1`.
pub fn delete(table: &str, key: &[String]) -> String {
    format!(
        "DELETE FROM {table} AS t USING {} WHERE {}",
        source(table),
        key_match(key)
    )
}

/// CREATE TABLE with `columns` (name, type) and `key` as primary key.
pub fn create_table(table: &str, columns: &[(String, &str)], key: &[String]) -> String {
    let mut defs: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("{} {ty}", ident(name)))
        .collect();
    if !key.is_empty() {
        defs.push(format!("PRIMARY KEY ({})", list(key)));
    }
    format!("CREATE TABLE IF NOT EXISTS {table} ({})", defs.join(", "))
}

/// ALTER TABLE adding nullable `columns`.
pub fn add_columns(table: &str, columns: &[(String, &str)]) -> String {
    let adds: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("ADD COLUMN IF NOT EXISTS {} {ty}", ident(name)))
        .collect();
    format!("ALTER TABLE {table} {}", adds.join(", "))
}

/// The column type a JSON value asks for (`None` for null: unknown).
pub fn column_type(value: &Value) -> Option<&'static str> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => BOOLEAN,
        Value::Number(n) if n.is_i64() => BIGINT,
        Value::Number(n) if n.is_u64() => NUMERIC,
        Value::Number(_) => DOUBLE,
        Value::String(_) => TEXT,
        Value::Array(_) | Value::Object(_) => JSONB,
    })
}

/// The type that holds values of both `a` and `b`.
pub fn widen(a: &'static str, b: &'static str) -> &'static str {
    match (a, b) {
        _ if a == b => a,
        (JSONB, _) | (_, JSONB) => JSONB,
        (BIGINT | NUMERIC, NUMERIC) | (NUMERIC, BIGINT) => NUMERIC,
        (BIGINT | NUMERIC | DOUBLE, BIGINT | NUMERIC | DOUBLE) => DOUBLE,
        _ => TEXT,
    }
}

/// Type of a column whose values were all null.
pub const UNKNOWN_TYPE: &str = TEXT;

const BOOLEAN: &str = "boolean";
const BIGINT: &str = "bigint";
const NUMERIC: &str = "numeric";
const DOUBLE: &str = "double precision";
const TEXT: &str = "text";
const JSONB: &str = "jsonb";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("public", "Order Items"), "\"public\".\"Order Items\"");
    }

    #[test]
    fn upsert_updates_non_key_columns() {
        let t = qualified("s", "t");
        assert_eq!(
            insert(&t, &cols(&["id", "name"]), Some(&cols(&["id"]))),
            "INSERT INTO \"s\".\"t\" (\"id\", \"name\") SELECT x.\"id\", x.\"name\" FROM \
             json_populate_recordset(NULL::\"s\".\"t\", $1::text::json) AS x \
             ON CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\""
        );
        assert!(
            insert(&t, &cols(&["id"]), Some(&cols(&["id"]))).ends_with("ON CONFLICT (\"id\") DO NOTHING")
        );
        assert!(!insert(&t, &cols(&["id"]), None).contains("CONFLICT"));
    }

    #[test]
    fn update_and_delete_match_every_key_column() {
        let t = qualified("s", "t");
        assert_eq!(
            update(&t, &cols(&["a", "b", "v"]), &cols(&["a", "b"])).unwrap(),
            "UPDATE \"s\".\"t\" AS t SET \"v\" = x.\"v\" FROM json_populate_recordset(NULL::\"s\".\"t\", \
             $1::text::json) AS x WHERE t.\"a\" = x.\"a\" AND t.\"b\" = x.\"b\""
        );
        assert_eq!(update(&t, &cols(&["a"]), &cols(&["a"])), None);
        assert!(delete(&t, &cols(&["a"])).starts_with("DELETE FROM \"s\".\"t\" AS t USING"));
    }

    #[test]
    fn ddl() {
        let t = qualified("s", "t");
        let columns = [("id".to_owned(), "bigint"), ("doc".to_owned(), "jsonb")];
        assert_eq!(
            create_table(&t, &columns, &cols(&["id"])),
            "CREATE TABLE IF NOT EXISTS \"s\".\"t\" (\"id\" bigint, \"doc\" jsonb, PRIMARY KEY (\"id\"))"
        );
        assert_eq!(
            add_columns(&t, &columns[1..]),
            "ALTER TABLE \"s\".\"t\" ADD COLUMN IF NOT EXISTS \"doc\" jsonb"
        );
    }

    #[test]
    fn json_types_map_to_columns_and_widen() {
        assert_eq!(column_type(&json!(1)), Some("bigint"));
        assert_eq!(column_type(&json!(u64::MAX)), Some("numeric"));
        assert_eq!(column_type(&json!(1.5)), Some("double precision"));
        assert_eq!(column_type(&json!("x")), Some("text"));
        assert_eq!(column_type(&json!(true)), Some("boolean"));
        assert_eq!(column_type(&json!({"a": 1})), Some("jsonb"));
        assert_eq!(column_type(&json!([1])), Some("jsonb"));
        assert_eq!(column_type(&json!(null)), None);
        assert_eq!(widen("bigint", "double precision"), "double precision");
        assert_eq!(widen("bigint", "numeric"), "numeric");
        assert_eq!(widen("bigint", "text"), "text");
        assert_eq!(widen("boolean", "jsonb"), "jsonb");
    }
}
