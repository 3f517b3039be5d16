//! SQL text and COPY data for the Postgres sink (pure).
//!
//! Rows to write go through a temporary staging table: `COPY` of the rows
//! (text format, see [`copy_rows`]), then one `INSERT … SELECT … ON CONFLICT`
//! (or `UPDATE … FROM`) from it. Postgres converts every value to its column
//! type with its own input functions. Keys to delete go as one JSON
//! parameter read by `json_populate_recordset(NULL::<table>, $1)`. Either way
//! one statement handles a whole batch whatever its size (no 65,535-parameter
//! limit), and identifiers are quoted, never interpolated as values.

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

/// The staging table of `table`: same columns, no constraints (a column the
/// records do not carry is NULL there and left out of the merge), emptied
/// at commit.
pub fn create_staging(staging: &str, table: &str) -> String {
    format!(
        "CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS SELECT * FROM {table} WITH NO DATA"
    )
}

/// COPY into the staging table.
pub fn copy_into(staging: &str, columns: &[String]) -> String {
    format!("COPY {staging} ({}) FROM STDIN", list(columns))
}

/// INSERT of the staged rows, then emptying the stage for the next group;
/// `conflict`: the key columns to upsert on.
pub fn insert(table: &str, staging: &str, columns: &[String], conflict: Option<&[String]>) -> String {
    format!(
        "{}; DELETE FROM {staging}",
        insert_from(table, staging, columns, conflict)
    )
}

fn insert_from(table: &str, staging: &str, columns: &[String], conflict: Option<&[String]>) -> String {
    let cols = list(columns);
    let select = columns
        .iter()
        .map(|c| format!("x.{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("INSERT INTO {table} ({cols}) SELECT {select} FROM {staging} AS x");
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

/// UPDATE from the staged rows matched by `key`, then emptying the stage
/// (`None` when only key columns are present: there is nothing to set).
pub fn update(table: &str, staging: &str, columns: &[String], key: &[String]) -> Option<String> {
    let sets: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{0} = x.{0}", ident(c)))
        .collect();
    if sets.is_empty() {
        return None;
    }
    Some(format!(
        "UPDATE {table} AS t SET {} FROM {staging} AS x WHERE {}; DELETE FROM {staging}",
        sets.join(", "),
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
pub fn create_table<T: AsRef<str>>(table: &str, columns: &[(String, T)], key: &[String]) -> String {
    let mut defs: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("{} {}", ident(name), ty.as_ref()))
        .collect();
    if !key.is_empty() {
        defs.push(format!("PRIMARY KEY ({})", list(key)));
    }
    format!("CREATE TABLE IF NOT EXISTS {table} ({})", defs.join(", "))
}

/// ALTER TABLE adding nullable `columns`.
pub fn add_columns<T: AsRef<str>>(table: &str, columns: &[(String, T)]) -> String {
    let adds: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("ADD COLUMN IF NOT EXISTS {} {}", ident(name), ty.as_ref()))
        .collect();
    format!("ALTER TABLE {table} {}", adds.join(", "))
}

/// Appends `rows` (each holding every one of `columns`) in COPY's text
/// format: tab-separated, `\\N` for NULL, backslash escapes; strings as
/// they are, objects and arrays as JSON text, numbers and booleans as JSON
/// writes them (all valid input for the matching column types).
pub fn copy_rows(rows: &[&serde_json::Map<String, Value>], columns: &[String], out: &mut Vec<u8>) {
    let mut text = String::new();
    for row in rows {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match row.get(column).unwrap_or(&Value::Null) {
                Value::Null => out.extend_from_slice(b"\\N"),
                Value::String(s) => escape(s, out),
                other => {
                    text.clear();
                    text.push_str(&other.to_string());
                    escape(&text, out);
                }
            }
        }
        out.push(b'\n');
    }
}

fn escape(text: &str, out: &mut Vec<u8>) {
    for byte in text.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(byte),
        }
    }
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
        let st = "pg_temp.\"st\"";
        assert_eq!(
            insert(&t, st, &cols(&["id", "name"]), Some(&cols(&["id"]))),
            "INSERT INTO \"s\".\"t\" (\"id\", \"name\") SELECT x.\"id\", x.\"name\" FROM pg_temp.\"st\" AS x \
             ON CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\"; DELETE FROM pg_temp.\"st\""
        );
        assert!(
            insert(&t, st, &cols(&["id"]), Some(&cols(&["id"])))
                .ends_with("ON CONFLICT (\"id\") DO NOTHING; DELETE FROM pg_temp.\"st\"")
        );
        assert!(!insert(&t, st, &cols(&["id"]), None).contains("CONFLICT"));
        assert_eq!(
            create_staging(st, &t),
            "CREATE TEMP TABLE IF NOT EXISTS pg_temp.\"st\" ON COMMIT DELETE ROWS AS SELECT * FROM \"s\".\"t\" WITH NO DATA"
        );
        assert_eq!(
            copy_into(st, &cols(&["id"])),
            "COPY pg_temp.\"st\" (\"id\") FROM STDIN"
        );
    }

    #[test]
    fn update_and_delete_match_every_key_column() {
        let t = qualified("s", "t");
        assert_eq!(
            update(&t, "st", &cols(&["a", "b", "v"]), &cols(&["a", "b"])).unwrap(),
            "UPDATE \"s\".\"t\" AS t SET \"v\" = x.\"v\" FROM st AS x \
             WHERE t.\"a\" = x.\"a\" AND t.\"b\" = x.\"b\"; DELETE FROM st"
        );
        assert_eq!(update(&t, "st", &cols(&["a"]), &cols(&["a"])), None);
        assert!(delete(&t, &cols(&["a"])).starts_with("DELETE FROM \"s\".\"t\" AS t USING"));
    }

    #[test]
    fn copy_text_escapes_and_writes_json() {
        let row = json!({"id": 1, "note": "a\tb\\c\nd", "doc": {"k": "v\n"}, "ok": true, "gone": null});
        let row = row.as_object().unwrap();
        let mut out = Vec::new();
        copy_rows(&[row, row], &cols(&["id", "note", "doc", "ok", "gone"]), &mut out);
        let line = "1\ta\\tb\\\\c\\nd\t{\"k\":\"v\\\\n\"}\ttrue\t\\N\n";
        assert_eq!(String::from_utf8(out).unwrap(), format!("{line}{line}"));
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
