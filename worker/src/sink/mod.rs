//! Sinks: write records read from Kafka into an outside system.
//!
//! Data model: the sink runtime consumes a batch of decoded, transformed
//! [`Record`]s and hands it to one [`SinkWriter`]. The writer answers for the
//! whole batch:
//!
//! ```text
//!   Ok(outcome)          every record is durable in the target, except the
//!                        ones in outcome.rejected (permanently refused, e.g.
//!                        a mapping error): those go to the dead-letter topic
//!                        or stop the connector, per spec.errors.tolerance
//!   Err(Retryable)       nothing may be assumed written: the runtime retries
//!                        the batch with backoff (honouring retry_after)
//!   Err(Fatal)           the connector stops with the message in its status
//! ```
//!
//! Offsets are committed only after `Ok`, so delivery is at-least-once, and
//! effectively once where the writer is idempotent by key.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use crate::record::Record;

/// The Kafka Connect schemas a record arrived with (`json-with-schema`
/// input; `None` otherwise, or once a transform changed the record).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectSchemas {
    /// The key's schema.
    pub key: Option<Arc<Value>>,
    /// The value's schema.
    pub value: Option<Arc<Value>>,
}

/// Writes batches into one target system.
pub trait SinkWriter: Send {
    /// Writes `batch` (in partition order). See the module docs for the contract.
    fn write(&mut self, batch: &[Record]) -> impl Future<Output = Result<WriteOutcome, SinkError>> + Send;
}

/// What a successful write left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Records the target refused for good, by index into the batch.
    pub rejected: Vec<Rejected>,
}

/// A record the target refused for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the record in the batch.
    pub index: usize,
    /// A stable class of the error, e.g. `mapper_parsing_exception` or `23502`.
    pub class: String,
    /// The target's message (never containing secret values).
    pub message: String,
}

/// A failed write of a whole batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The target is down, overloaded or timed out: retry the batch.
    #[error("{message}")]
    Retryable {
        /// What happened.
        message: String,
        /// The target's advice on when to retry (e.g. HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (e.g. authentication refused, bad configuration).
    #[error("{message}")]
    Fatal {
        /// What happened.
        message: String,
    },
}

pub mod http;
pub mod opensearch;
pub mod postgres;
pub mod runtime;
pub mod tls;

use crate::config::Target;

/// The writer of the configured target (one arm per target type).
#[derive(Debug)]
pub enum Writer {
    /// OpenSearch / Elasticsearch `_bulk`.
    OpenSearch(opensearch::OpenSearchWriter),
    /// A PostgreSQL table.
    Postgres(Box<postgres::PostgresWriter>),
    /// An HTTP endpoint.
    Http(http::HttpWriter),
}

impl Writer {
    /// A new writer (with its own connections) for `target`.
    pub async fn connect(target: &Target) -> Result<Self, SinkError> {
        Ok(match target {
            Target::OpenSearch(config) => {
                Self::OpenSearch(opensearch::OpenSearchWriter::new(config.clone())?)
            }
            Target::Postgres(config) => {
                Self::Postgres(Box::new(postgres::PostgresWriter::connect(config.clone()).await?))
            }
            Target::Http(config) => Self::Http(http::HttpWriter::new(config.clone())?),
        })
    }

    /// The component named in dead-letter headers (`__connect.errors.class.name`).
    pub fn component(target: &Target) -> &'static str {
        match target {
            Target::OpenSearch(_) => "tributary.sink.opensearch",
            Target::Postgres(_) => "tributary.sink.postgres",
            Target::Http(_) => "tributary.sink.http",
        }
    }
}

impl Writer {
    /// Writes `batch` with the Connect schemas of its records
    /// (`schemas[i]` of `batch[i]`): the Postgres sink types columns with
    /// them; the others write JSON as it is.
    pub async fn write_with_schemas(
        &mut self,
        batch: &[Record],
        schemas: &[ConnectSchemas],
    ) -> Result<WriteOutcome, SinkError> {
        match self {
            Self::Postgres(writer) => writer.write_typed(batch, schemas).await,
            other => other.write(batch).await,
        }
    }
}

impl SinkWriter for Writer {
    async fn write(&mut self, batch: &[Record]) -> Result<WriteOutcome, SinkError> {
        match self {
            Self::OpenSearch(writer) => writer.write(batch).await,
            Self::Postgres(writer) => writer.write(batch).await,
            Self::Http(writer) => writer.write(batch).await,
        }
    }
}
