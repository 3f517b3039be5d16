//! Record serialisation: plain JSON, JSON inside the Kafka Connect envelope
//! `{"schema": …, "payload": …}` (Connect's `JsonConverter` with
//! `schemas.enable=true`, its default), or Avro in the Confluent wire format
//! with schemas registered in the schema registry ([`avro`]).
//!
//! Every key and value is described by a Kafka Connect schema. A schema
//! changes only with its table, so it is [`Serializer::prepare`]d once
//! (rendered, or translated to Avro and registered under the subject
//! `<topic>-key` / `<topic>-value`) and reused for every record.

pub mod avro;
pub mod decode;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tributary_api::connector::Format;
use tributary_registry::{RegistryClient, SchemaDefinition};

use self::avro::{AvroError, AvroWriter};

/// A Connect schema rendered to JSON text once (shared: table metadata is
/// cloned per row, and the text is kilobytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaText(Arc<str>);

impl SchemaText {
    /// Renders `schema`.
    pub fn new(schema: &Value) -> Self {
        Self(Arc::from(schema.to_string()))
    }
}

/// A schema prepared for one format.
#[derive(Clone, Debug)]
pub enum PreparedSchema {
    /// Plain JSON needs none.
    Json,
    /// The rendered Connect schema.
    JsonWithSchema(SchemaText),
    /// A registered Avro schema.
    Avro {
        /// The registry's id (the wire format's bytes 1-4).
        id: u32,
        /// The parsed schema.
        writer: Arc<AvroWriter>,
    },
}

/// Serialising failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FormatError {
    /// Avro translation or encoding.
    #[error(transparent)]
    Avro(#[from] AvroError),
    /// The value could not be serialised as JSON.
    #[error("json: {0}")]
    Json(String),
    /// The registry refused or could not be reached.
    #[error("schema registry, subject {subject}: {message}")]
    Registry {
        /// Subject.
        subject: String,
        /// The registry client's error.
        message: String,
    },
}

/// Serialises keys or values in one format.
#[derive(Clone, Debug)]
pub struct Serializer {
    format: Format,
    registry: Option<RegistryClient>,
    registered: Arc<Mutex<HashMap<(String, String), u32>>>,
}

impl Serializer {
    /// A serializer for `format`; Avro needs `registry`.
    pub fn new(format: Format, registry: Option<RegistryClient>) -> Self {
        Self {
            format,
            registry,
            registered: Arc::default(),
        }
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Prepares `connect_schema` for records of `subject` (registering it for Avro).
    pub async fn prepare(
        &self,
        subject: &str,
        connect_schema: &Value,
    ) -> Result<PreparedSchema, FormatError> {
        match self.format {
            Format::Json => Ok(PreparedSchema::Json),
            Format::JsonWithSchema => Ok(PreparedSchema::JsonWithSchema(SchemaText::new(connect_schema))),
            Format::Avro => {
                let writer = AvroWriter::new(avro::avro_schema(connect_schema)?)?;
                let text = writer.schema_text();
                let id = self.register(subject, text).await?;
                Ok(PreparedSchema::Avro {
                    id,
                    writer: Arc::new(writer),
                })
            }
        }
    }
}

impl Serializer {
    /// The id of `text` under `subject`, registering it on first use.
    async fn register(&self, subject: &str, text: String) -> Result<u32, FormatError> {
        let key = (subject.to_owned(), text);
        let mut registered = self.registered.lock().await;
        if let Some(id) = registered.get(&key) {
            return Ok(*id);
        }
        let registry_error = |message: String| FormatError::Registry {
            subject: subject.to_owned(),
            message,
        };
        let registry = self
            .registry
            .as_ref()
            .ok_or_else(|| registry_error("no schema registry configured".to_owned()))?;
        let schema = registry
            .register(subject, &SchemaDefinition::avro(key.1.clone()))
            .await
            .map_err(|e| registry_error(e.to_string()))?;
        let id = u32::try_from(schema.id)
            .map_err(|_| registry_error(format!("schema id {} out of range", schema.id)))?;
        tracing::info!(subject, id, "registered Avro schema");
        registered.insert(key, id);
        Ok(id)
    }
}

thread_local! {
    /// Scratch buffer for JSON payloads, reused across records.
    static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest scratch buffer kept between records.
const MAX_REUSED_PAYLOAD: usize = 1 << 20;

/// Serialises `payload` with a prepared schema. JSON formats write it
/// straight to bytes (no intermediate `Value`: this is the hot path).
pub fn encode(schema: &PreparedSchema, payload: &impl Serialize) -> Result<Vec<u8>, FormatError> {
    let json_error = |e: serde_json::Error| FormatError::Json(e.to_string());
    match schema {
        PreparedSchema::Json => serde_json::to_vec(payload).map_err(json_error),
        PreparedSchema::JsonWithSchema(text) => PAYLOAD.with_borrow_mut(|payload_json| {
            // The payload goes to a reused buffer first so the record is
            // allocated once at its exact size: growing a multi-kilobyte
            // buffer mid-payload cost a second large allocation and a copy
            // of the schema text per record.
            payload_json.clear();
            serde_json::to_writer(&mut *payload_json, payload).map_err(json_error)?;
            let (head, middle, tail) = (b"{\"schema\":", b",\"payload\":", b"}");
            let mut out = Vec::with_capacity(
                head.len() + text.0.len() + middle.len() + payload_json.len() + tail.len(),
            );
            out.extend_from_slice(head);
            out.extend_from_slice(text.0.as_bytes());
            out.extend_from_slice(middle);
            out.extend_from_slice(payload_json);
            out.extend_from_slice(tail);
            // A huge record must not pin its buffer for the thread's life.
            if payload_json.capacity() > MAX_REUSED_PAYLOAD {
                *payload_json = Vec::new();
            }
            Ok(out)
        }),
        PreparedSchema::Avro { id, writer } => {
            let value = serde_json::to_value(payload).map_err(json_error)?;
            Ok(avro::wire_format(*id, &writer.encode(&value)?))
        }
    }
}

/// The key and value serializers of a connector.
#[derive(Clone, Debug)]
pub struct Serializers {
    /// Keys.
    pub key: Serializer,
    /// Values.
    pub value: Serializer,
}

impl Serializers {
    /// Serializers for the connector's formats.
    pub fn new(formats: &tributary_api::connector::FormatSpec, registry: Option<&RegistryClient>) -> Self {
        Self {
            key: Serializer::new(formats.key, registry.cloned()),
            value: Serializer::new(formats.value, registry.cloned()),
        }
    }

    /// Key and value schemas of `topic`, prepared (subjects `<topic>-key`, `<topic>-value`).
    pub async fn prepare(
        &self,
        topic: &str,
        key_schema: &Value,
        value_schema: &Value,
    ) -> Result<(PreparedSchema, PreparedSchema), FormatError> {
        Ok((
            self.key.prepare(&format!("{topic}-key"), key_schema).await?,
            self.value
                .prepare(&format!("{topic}-value"), value_schema)
                .await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn json_with_schema_is_the_connect_envelope() {
        let connect = json!({"type": "int32", "optional": false});
        let with_schema = Serializer::new(Format::JsonWithSchema, None)
            .prepare("t-value", &connect)
            .await
            .unwrap();
        let bytes = encode(&with_schema, &json!(7)).unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            json!({"schema": {"type": "int32", "optional": false}, "payload": 7})
        );
        let plain = Serializer::new(Format::Json, None)
            .prepare("t-value", &connect)
            .await
            .unwrap();
        assert_eq!(encode(&plain, &json!({"a": 1})).unwrap(), br#"{"a":1}"#.to_vec());
    }

    #[tokio::test]
    async fn avro_without_a_registry_says_so() {
        let error = Serializer::new(Format::Avro, None)
            .prepare("t-value", &json!({"type": "int32", "optional": false}))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "schema registry, subject t-value: no schema registry configured"
        );
    }
}
