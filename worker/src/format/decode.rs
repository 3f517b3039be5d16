//! Decoding Kafka bytes into JSON trees, the inverse of [`super::encode`],
//! for sinks.
//!
//! | format | bytes | decoded |
//! |---|---|---|
//! | `json` | any JSON text | the JSON tree |
//! | `json-with-schema` | `{"schema": …, "payload": …}` | `payload` (Connect's `JsonConverter`) |
//! | `avro` | `0x00`, schema id (4 bytes big-endian), Avro datum | the datum as the JSON formats write it |
//!
//! Null bytes decode to `None` (a null key, or a tombstone). Avro writer
//! schemas are fetched from the registry by id once and cached. Avro values
//! map as the JSON formats write them: records → objects, unions → their
//! branch, bytes and decimals → base64 (decimals of their unscaled
//! big-endian value, as Connect's `Decimal`), dates and times → numbers.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value as AvroValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tributary_api::connector::{Format, FormatSpec};
use tributary_registry::RegistryClient;

/// Bytes that cannot be decoded in the configured format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// JSON without the Connect envelope.
    #[error("json-with-schema expects an object with \"schema\" and \"payload\" fields")]
    NoEnvelope,
    /// Not in the Confluent wire format.
    #[error("not Avro in the Confluent wire format (magic byte 0 and a 4-byte schema id)")]
    NotWireFormat,
    /// The registry does not know the schema id, or could not be reached.
    #[error("schema registry, schema id {id}: {message}")]
    Registry {
        /// Schema id from the wire format.
        id: u32,
        /// Why.
        message: String,
        /// True when retrying may help (registry unreachable).
        transient: bool,
    },
    /// The datum does not match its writer schema.
    #[error("avro: {0}")]
    Avro(String),
}

impl DecodeError {
    /// A stable class for dead-letter headers.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Json(_) => "json_parse_error",
            Self::NoEnvelope => "json_missing_envelope",
            Self::NotWireFormat => "avro_not_wire_format",
            Self::Registry { .. } => "avro_unknown_schema",
            Self::Avro(_) => "avro_decode_error",
        }
    }

    /// True when the bytes may decode on a later attempt (the registry was
    /// down), so the record must not be treated as poison.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Registry { transient: true, .. })
    }
}

/// Decodes keys or values of one format.
#[derive(Clone, Debug)]
pub struct Deserializer {
    format: Format,
    registry: Option<RegistryClient>,
    schemas: Arc<Mutex<HashMap<u32, Arc<apache_avro::Schema>>>>,
}

impl Deserializer {
    /// A deserializer for `format`; Avro needs `registry`.
    pub fn new(format: Format, registry: Option<RegistryClient>) -> Self {
        Self {
            format,
            registry,
            schemas: Arc::default(),
        }
    }

    /// Decodes `bytes` (`None`: null).
    pub async fn decode(&self, bytes: Option<&[u8]>) -> Result<Option<Value>, DecodeError> {
        self.decode_with_schema(bytes).await.map(|(value, _)| value)
    }

    /// Decodes `bytes` (`None`: null), with the Connect schema that
    /// `json-with-schema` carries (`None` for the other formats and for a
    /// null schema).
    pub async fn decode_with_schema(
        &self,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Value>, Option<Arc<Value>>), DecodeError> {
        let Some(bytes) = bytes else {
            return Ok((None, None));
        };
        match self.format {
            Format::Json => parse_json(bytes).map(|v| (Some(v), None)),
            Format::JsonWithSchema => match parse_json(bytes)? {
                Value::Object(mut map) if map.contains_key("schema") && map.contains_key("payload") => {
                    let schema = map.remove("schema").filter(|s| !s.is_null()).map(Arc::new);
                    Ok((map.remove("payload").filter(|p| !p.is_null()), schema))
                }
                // Connect writes a null key or value as JSON null.
                Value::Null => Ok((None, None)),
                _ => Err(DecodeError::NoEnvelope),
            },
            Format::Avro => {
                let (id, mut datum) = split_wire_format(bytes)?;
                let schema = self.schema(id).await?;
                let value = read_datum(&schema, &mut datum)?;
                Ok((Some(avro_to_json(value)), None))
            }
        }
    }

    async fn schema(&self, id: u32) -> Result<Arc<apache_avro::Schema>, DecodeError> {
        let mut schemas = self.schemas.lock().await;
        if let Some(schema) = schemas.get(&id) {
            return Ok(Arc::clone(schema));
        }
        let registry = self.registry.as_ref().ok_or_else(|| DecodeError::Registry {
            id,
            message: "no schema registry configured".to_owned(),
            transient: false,
        })?;
        let definition = registry
            .schema_by_id(i64::from(id))
            .await
            .map_err(|e| DecodeError::Registry {
                id,
                transient: e.is_transient(),
                message: e.to_string(),
            })?;
        let schema =
            apache_avro::Schema::parse_str(&definition.schema).map_err(|e| DecodeError::Registry {
                id,
                message: format!("not an Avro schema: {e}"),
                transient: false,
            })?;
        let schema = Arc::new(schema);
        schemas.insert(id, Arc::clone(&schema));
        Ok(schema)
    }
}

/// The key and value deserializers of a connector.
#[derive(Clone, Debug)]
pub struct Deserializers {
    /// Keys.
    pub key: Deserializer,
    /// Values.
    pub value: Deserializer,
}

impl Deserializers {
    /// Deserializers for the connector's formats.
    pub fn new(formats: &FormatSpec, registry: Option<&RegistryClient>) -> Self {
        Self {
            key: Deserializer::new(formats.key, registry.cloned()),
            value: Deserializer::new(formats.value, registry.cloned()),
        }
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))
}

fn read_datum(schema: &apache_avro::Schema, datum: &mut &[u8]) -> Result<AvroValue, DecodeError> {
    apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .and_then(|reader| reader.read_value(datum))
        .map_err(|e| DecodeError::Avro(e.to_string()))
}

fn split_wire_format(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    match bytes {
        [0, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => Err(DecodeError::NotWireFormat),
    }
}

/// An Avro datum as the JSON formats write the same value.
pub fn avro_to_json(value: AvroValue) -> Value {
    match value {
        AvroValue::Null => Value::Null,
        AvroValue::Boolean(b) => Value::Bool(b),
        AvroValue::Int(n) | AvroValue::Date(n) | AvroValue::TimeMillis(n) => Value::from(n),
        AvroValue::Long(n)
        | AvroValue::TimeMicros(n)
        | AvroValue::TimestampMillis(n)
        | AvroValue::TimestampMicros(n)
        | AvroValue::TimestampNanos(n)
        | AvroValue::LocalTimestampMillis(n)
        | AvroValue::LocalTimestampMicros(n)
        | AvroValue::LocalTimestampNanos(n) => Value::from(n),
        AvroValue::Float(f) => Value::from(f64::from(f)),
        AvroValue::Double(f) => Value::from(f),
        AvroValue::Bytes(b) | AvroValue::Fixed(_, b) => Value::String(BASE64.encode(b)),
        AvroValue::String(s) | AvroValue::Enum(_, s) => Value::String(s),
        AvroValue::Union(_, inner) => avro_to_json(*inner),
        AvroValue::Array(items) => Value::Array(items.into_iter().map(avro_to_json).collect()),
        AvroValue::Map(entries) => {
            let mut sorted: Vec<_> = entries.into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(sorted.into_iter().map(|(k, v)| (k, avro_to_json(v))).collect())
        }
        AvroValue::Record(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, avro_to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        AvroValue::Decimal(decimal) => {
            Vec::<u8>::try_from(decimal).map_or(Value::Null, |bytes| Value::String(BASE64.encode(bytes)))
        }
        AvroValue::BigDecimal(big) => Value::String(big.to_string()),
        AvroValue::Duration(duration) => Value::String(format!("{duration:?}")),
        AvroValue::Uuid(uuid) => Value::String(uuid.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::avro::{AvroWriter, avro_schema, wire_format};
    use super::*;

    #[tokio::test]
    async fn json_with_schema_yields_the_payload_and_null_is_none() {
        let d = Deserializer::new(Format::JsonWithSchema, None);
        let bytes = br#"{"schema":{"type":"int32"},"payload":{"id":7}}"#;
        assert_eq!(d.decode(Some(bytes)).await.unwrap(), Some(json!({"id": 7})));
        let (value, schema) = d.decode_with_schema(Some(bytes)).await.unwrap();
        assert_eq!(value, Some(json!({"id": 7})));
        assert_eq!(schema.as_deref(), Some(&json!({"type": "int32"})));
        let schemaless = br#"{"schema":null,"payload":"a"}"#;
        assert_eq!(
            d.decode_with_schema(Some(schemaless)).await.unwrap(),
            (Some(json!("a")), None)
        );
        assert_eq!(d.decode(None).await.unwrap(), None);
        assert_eq!(
            d.decode(Some(br#"{"id":7}"#)).await.unwrap_err(),
            DecodeError::NoEnvelope
        );
        let plain = Deserializer::new(Format::Json, None);
        assert_eq!(
            plain.decode(Some(b"{\"a\":1}")).await.unwrap(),
            Some(json!({"a": 1}))
        );
        let error = plain.decode(Some(b"{not json")).await.unwrap_err();
        assert_eq!(error.class(), "json_parse_error");
    }

    #[tokio::test]
    async fn avro_that_is_not_wire_format_is_refused_before_the_registry() {
        let d = Deserializer::new(Format::Avro, None);
        assert_eq!(
            d.decode(Some(b"{\"a\":1}")).await.unwrap_err(),
            DecodeError::NotWireFormat
        );
        let unknown = d.decode(Some(&[0, 0, 0, 0, 9, 2])).await.unwrap_err();
        assert!(!unknown.is_transient(), "{unknown}");
    }

    #[test]
    fn avro_datums_map_back_to_the_json_the_encoder_took() {
        let connect = json!({"type": "struct", "name": "r.Value", "optional": false, "fields": [
            {"field": "id", "type": "int32", "optional": false},
            {"field": "name", "type": "string", "optional": true},
            {"field": "blob", "type": "bytes", "optional": true},
        ]});
        let writer = AvroWriter::new(avro_schema(&connect).unwrap()).unwrap();
        let value = json!({"id": 7, "name": "Ann", "blob": "AfvP"});
        let bytes = wire_format(1, &writer.encode(&value).unwrap());
        let (id, mut datum) = split_wire_format(&bytes).unwrap();
        assert_eq!(id, 1);
        let schema = apache_avro::Schema::parse_str(&writer.schema_text()).unwrap();
        let decoded = read_datum(&schema, &mut datum).unwrap();
        assert_eq!(avro_to_json(decoded), value);
    }
}
