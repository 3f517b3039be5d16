//! Kafka Connect schemas of Debezium's Postgres change events, for the
//! JSON-with-schema format (`{"schema": …, "payload": …}`), named as Debezium
//! names them: `<prefix>.<schema>.<table>.Key`, `.Value` and `.Envelope`.

use serde_json::{Value, json};

use super::row::Column;
use super::value::connect_schema;

/// Schema of the message key: the replica-identity columns.
pub fn key_schema(prefix: &str, schema: &str, table: &str, columns: &[Column]) -> Value {
    let fields: Vec<Value> = columns
        .iter()
        .filter(|c| c.key)
        .map(|c| connect_schema(&c.pg_type, &c.name, false, c.default.as_ref()))
        .collect();
    json!({"type": "struct", "fields": fields, "optional": false, "name": format!("{prefix}.{schema}.{table}.Key")})
}

/// Schema of the envelope (message value) for one table.
pub fn envelope_schema(prefix: &str, schema: &str, table: &str, columns: &[Column]) -> Value {
    let row_fields: Vec<Value> = columns
        .iter()
        .map(|c| connect_schema(&c.pg_type, &c.name, c.optional, c.default.as_ref()))
        .collect();
    let row = |field: &str| {
        json!({"type": "struct", "fields": row_fields, "optional": true,
               "name": format!("{prefix}.{schema}.{table}.Value"), "field": field})
    };
    let field =
        |type_: &str, optional: bool, name: &str| json!({"type": type_, "optional": optional, "field": name});
    json!({
        "type": "struct",
        "fields": [
            row("before"),
            row("after"),
            {
                "type": "struct",
                "fields": [
                    field("string", false, "version"),
                    field("string", false, "connector"),
                    field("string", false, "name"),
                    field("int64", false, "ts_ms"),
                    {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
                     "parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
                     "default": "false", "field": "snapshot"},
                    field("string", false, "db"),
                    field("string", true, "sequence"),
                    field("int64", true, "ts_us"),
                    field("int64", true, "ts_ns"),
                    field("string", false, "schema"),
                    field("string", false, "table"),
                    field("int64", true, "txId"),
                    field("int64", true, "lsn"),
                    field("int64", true, "xmin"),
                    field("string", true, "origin"),
                    field("int64", true, "origin_lsn"),
                ],
                "optional": false,
                "name": "io.debezium.connector.postgresql.Source",
                "version": 1,
                "field": "source"
            },
            {
                "type": "struct",
                "fields": [
                    field("string", false, "id"),
                    field("int64", false, "total_order"),
                    field("int64", false, "data_collection_order"),
                ],
                "optional": true,
                "name": "event.block",
                "version": 1,
                "field": "transaction"
            },
            field("string", false, "op"),
            field("int64", true, "ts_ms"),
            field("int64", true, "ts_us"),
            field("int64", true, "ts_ns"),
        ],
        "optional": false,
        "name": format!("{prefix}.{schema}.{table}.Envelope"),
        "version": 2
    })
}

/// The JSON-with-schema wrapper Kafka Connect's `JsonConverter` writes
/// (`schemas.enable=true`).
pub fn with_schema(schema: Value, payload: Value) -> Value {
    let mut wrapper = serde_json::Map::with_capacity(2);
    wrapper.insert("schema".to_owned(), schema);
    wrapper.insert("payload".to_owned(), payload);
    Value::Object(wrapper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debezium::value::PgType;

    fn columns() -> Vec<Column> {
        vec![
            Column::new("id", PgType::Int4, true),
            Column::new("rating", PgType::Int2, false),
        ]
    }

    #[test]
    fn key_schema_names_the_table_and_lists_key_columns() {
        let schema = key_schema("shop", "public", "ratings", &columns());
        assert_eq!(schema["name"], json!("shop.public.ratings.Key"));
        assert_eq!(
            schema["fields"],
            json!([{"type": "int32", "optional": false, "field": "id"}])
        );
    }

    #[test]
    fn envelope_schema_has_debeziums_shape() {
        let schema = envelope_schema("shop", "public", "ratings", &columns());
        assert_eq!(schema["name"], json!("shop.public.ratings.Envelope"));
        let names: Vec<&str> = schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "before",
                "after",
                "source",
                "transaction",
                "op",
                "ts_ms",
                "ts_us",
                "ts_ns"
            ]
        );
        assert_eq!(schema["fields"][0]["name"], json!("shop.public.ratings.Value"));
        assert_eq!(
            schema["fields"][0]["fields"][1],
            json!({"type": "int16", "optional": true, "field": "rating"})
        );
        assert_eq!(
            schema["fields"][2]["name"],
            json!("io.debezium.connector.postgresql.Source")
        );
        let wrapped = with_schema(json!({"type": "int32"}), json!(1));
        assert_eq!(wrapped, json!({"schema": {"type": "int32"}, "payload": 1}));
    }
}
