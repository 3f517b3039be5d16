//! The decoded record that flows from a Kafka topic through transforms into a
//! sink.
//!
//! Data model: key and value are JSON trees whatever the wire format was
//! (JSON, JSON with the Connect schema envelope — already unwrapped to its
//! payload — or Avro through the registry). `value: None` is a tombstone.
//! `topic`, `partition` and `offset` say where the record was read, so a
//! sink can derive ids from them and the runtime can commit offsets and
//! write dead-letter context.

use serde_json::Value;

/// One record read from Kafka, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Topic it was read from (a router transform may rename it).
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Kafka timestamp in milliseconds since the epoch, when the record has one.
    pub timestamp_ms: Option<i64>,
    /// Decoded key (`None`: null key).
    pub key: Option<Value>,
    /// Decoded value (`None`: tombstone).
    pub value: Option<Value>,
    /// Kafka headers in order (`value: None` is a null header value).
    pub headers: Vec<Header>,
}

/// One Kafka header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Name.
    pub name: String,
    /// Raw value (`None`: null).
    pub value: Option<Vec<u8>>,
}

impl Record {
    /// True for a tombstone (null value).
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The first header with this name, if any.
    pub fn header(&self, name: &str) -> Option<&Header> {
        self.headers.iter().find(|h| h.name == name)
    }
}
