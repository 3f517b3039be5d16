//! The dead-letter topic: bad records, as they were read, with headers
//! saying where they came from and why they failed — Kafka Connect's
//! `DeadLetterQueueReporter` format, so tooling written for it works:
//!
//! | header | value (UTF-8 text) |
//! |---|---|
//! | `__connect.errors.topic` / `.partition` / `.offset` | where the record was read |
//! | `__connect.errors.connector.name` | the connector (`<namespace>/<name>`) |
//! | `__connect.errors.task.id` | `0` (one task per worker) |
//! | `__connect.errors.stage` | `KEY_CONVERTER`, `VALUE_CONVERTER`, `TRANSFORMATION` or `TASK_PUT` |
//! | `__connect.errors.class.name` | the component, e.g. `tributary.sink.opensearch` |
//! | `__connect.errors.exception.class.name` | the error class, e.g. `mapper_parsing_exception` |
//! | `__connect.errors.exception.message` | the message |
//!
//! The record's own headers come first, unchanged. A dead-letter record is
//! acknowledged by Kafka before the bad record's offset is committed.

use std::time::Duration;

use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::buffer::RawRecord;
use crate::delivery::{DeliveryError, TopicCreator};

/// Where in the pipeline a record failed (Connect's `Stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Decoding the key.
    KeyConverter,
    /// Decoding the value.
    ValueConverter,
    /// A transform of `spec.transforms`.
    Transformation,
    /// Writing into the target.
    TaskPut,
}

impl Stage {
    /// Connect's name of the stage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyConverter => "KEY_CONVERTER",
            Self::ValueConverter => "VALUE_CONVERTER",
            Self::Transformation => "TRANSFORMATION",
            Self::TaskPut => "TASK_PUT",
        }
    }
}

/// Why one record failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Stage.
    pub stage: Stage,
    /// The component that failed, e.g. `tributary.sink.opensearch`.
    pub component: String,
    /// A stable error class.
    pub class: String,
    /// The message.
    pub message: String,
}

/// The `__connect.errors.*` headers of a failed record (names and text values).
pub fn context_headers(
    record: &RawRecord,
    connector: &str,
    failure: &Failure,
) -> Vec<(&'static str, String)> {
    vec![
        ("__connect.errors.topic", record.topic.to_string()),
        ("__connect.errors.partition", record.partition.to_string()),
        ("__connect.errors.offset", record.offset.to_string()),
        ("__connect.errors.connector.name", connector.to_owned()),
        ("__connect.errors.task.id", "0".to_owned()),
        ("__connect.errors.stage", failure.stage.as_str().to_owned()),
        ("__connect.errors.class.name", failure.component.clone()),
        ("__connect.errors.exception.class.name", failure.class.clone()),
        ("__connect.errors.exception.message", failure.message.clone()),
    ]
}

/// Writes bad records to the dead-letter topic.
#[derive(Clone)]
pub struct DeadLetterTopic {
    /// Topic name.
    pub topic: String,
    /// Whether context headers are added.
    pub context_headers: bool,
    /// Connector id for the headers.
    pub connector: String,
    /// The producer (idempotent, `acks=all`).
    pub producer: FutureProducer,
    /// Creates the topic when missing.
    pub topics: TopicCreator,
}

impl std::fmt::Debug for DeadLetterTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterTopic")
            .field("topic", &self.topic)
            .field("context_headers", &self.context_headers)
            .finish_non_exhaustive()
    }
}

impl DeadLetterTopic {
    /// Writes `record` with its failure and waits for Kafka's acknowledgement.
    pub async fn send(&self, record: &RawRecord, failure: &Failure) -> Result<(), DeliveryError> {
        self.topics.ensure(&self.topic).await?;
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 9);
        for header in &record.headers {
            headers = headers.insert(KafkaHeader {
                key: &header.name,
                value: header.value.as_deref(),
            });
        }
        if self.context_headers {
            for (name, value) in context_headers(record, &self.connector, failure) {
                headers = headers.insert(KafkaHeader {
                    key: name,
                    value: Some(value.as_bytes()),
                });
            }
        }
        let mut out = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            out = out.payload(value.as_slice());
        }
        if let Some(timestamp) = record.timestamp_ms {
            out = out.timestamp(timestamp);
        }
        self.producer
            .send(out, Duration::from_mins(1))
            .await
            .map_err(|(e, _)| DeliveryError::Failed {
                topic: self.topic.clone(),
                message: e.to_string(),
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn headers_use_kafka_connect_names() {
        let record = RawRecord {
            topic: Arc::from("ratings"),
            partition: 3,
            offset: 42,
            timestamp_ms: None,
            key: None,
            value: None,
            headers: Vec::new(),
        };
        let failure = Failure {
            stage: Stage::TaskPut,
            component: "tributary.sink.opensearch".to_owned(),
            class: "mapper_parsing_exception".to_owned(),
            message: "failed to parse field [rating]".to_owned(),
        };
        let headers = context_headers(&record, "shop/ratings-search", &failure);
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("__connect.errors.topic"), Some("ratings"));
        assert_eq!(get("__connect.errors.partition"), Some("3"));
        assert_eq!(get("__connect.errors.offset"), Some("42"));
        assert_eq!(
            get("__connect.errors.connector.name"),
            Some("shop/ratings-search")
        );
        assert_eq!(get("__connect.errors.stage"), Some("TASK_PUT"));
        assert_eq!(
            get("__connect.errors.exception.class.name"),
            Some("mapper_parsing_exception")
        );
        assert_eq!(
            get("__connect.errors.exception.message"),
            Some("failed to parse field [rating]")
        );
    }
}
