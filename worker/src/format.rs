//! Record serialisation: plain JSON, or JSON inside the Kafka Connect
//! envelope `{"schema": …, "payload": …}` that Connect's `JsonConverter`
//! (with `schemas.enable=true`, its default) writes and reads.
//!
//! Schemas are per table and change only with the table, so callers render
//! them once ([`SchemaText`]) and every record reuses the text.

use serde_json::Value;
use tributary_api::connector::Format;

/// A Connect schema rendered to JSON text once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaText(String);

impl SchemaText {
    /// Renders `schema`.
    pub fn new(schema: &Value) -> Self {
        Self(schema.to_string())
    }
}

/// Serialises `payload` in `format`; `schema` is used by `json-with-schema`.
pub fn encode(format: Format, schema: &SchemaText, payload: &Value) -> Vec<u8> {
    let body = payload.to_string();
    match format {
        Format::Json => body.into_bytes(),
        Format::JsonWithSchema => {
            let mut out = Vec::with_capacity(schema.0.len() + body.len() + 24);
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(schema.0.as_bytes());
            out.extend_from_slice(b",\"payload\":");
            out.extend_from_slice(body.as_bytes());
            out.push(b'}');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_with_schema_is_the_connect_envelope() {
        let schema = SchemaText::new(&json!({"type": "int32", "optional": false}));
        let bytes = encode(Format::JsonWithSchema, &schema, &json!(7));
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            json!({"schema": {"type": "int32", "optional": false}, "payload": 7})
        );
        assert_eq!(
            encode(Format::Json, &schema, &json!({"a": 1})),
            br#"{"a":1}"#.to_vec()
        );
    }
}
