//! Client for the Confluent Schema Registry REST API (and registries that
//! implement it), used by the operator's `Schema` controller and by the
//! worker's Avro serializer.
//!
//! # Data model
//!
//! ```text
//!  subject "ratings-value" ── version 1 ──► schema id 7  ◄── version 3 ── subject "ratings-archive"
//!                          └─ version 2 ──► schema id 9
//! ```
//!
//! - A **schema** is a text in one of three languages ([`SchemaType`]: Avro,
//!   JSON Schema, Protobuf) plus the [`SchemaReference`]s it imports. Together
//!   they form a [`SchemaDefinition`]. The registry gives every distinct
//!   definition a registry-wide **id** (an `i64` here); serializers write this
//!   id in front of each Kafka record, so the id alone identifies the schema
//!   ([`RegistryClient::schema_by_id`]).
//! - A **subject** is a named, append-only list of **versions** (1, 2, …), each
//!   pointing at a schema id. By convention a topic's values use the subject
//!   `<topic>-value` and its keys `<topic>-key`. The same id can appear under
//!   several subjects, and registering a definition the subject already holds
//!   returns the existing version instead of adding one
//!   ([`RegistryClient::register`] is idempotent). A [`RegisteredSchema`] is
//!   one (subject, version, id, definition) entry.
//! - A **reference** names another subject's version, so a schema can use a
//!   type defined elsewhere: for Avro the `name` is the referenced record's
//!   full name, for JSON Schema the `$ref` URL, for Protobuf the import path.
//! - Each subject has a **compatibility level** ([`Compatibility`]; absent: the
//!   registry's global level, `BACKWARD` by default) that the registry
//!   enforces when a new version is registered: an incompatible schema is
//!   refused with HTTP 409 ([`RegistryError::Incompatible`]).
//! - Deleting a subject is a **soft delete** first (the versions are hidden but
//!   the ids stay resolvable); a **permanent** delete afterwards removes them.
//!
//! # Wire format
//!
//! Requests carry `application/vnd.schemaregistry.v1+json`. A definition is
//! sent as `{"schema": "<text>", "schemaType": "JSON", "references": [...]}`,
//! where `schemaType` is left out for Avro (the API's default, and what
//! Confluent itself answers) and `references` when there are none. Errors come
//! as `{"error_code": 40401, "message": "..."}`: the HTTP status plus a finer
//! five-digit code, which [`RegistryError`] turns into variants the caller can
//! act on (see [`RegistryError::is_transient`] for retries).
//!
//! # Credentials
//!
//! Basic-auth credentials ([`RegistryAuth`]) are sent on every request and
//! appear nowhere else: not in `Debug` output, not in error messages (the
//! password is scrubbed from any text a registry echoes back), and a base URL
//! with credentials in it (`https://user:pass@host`) is refused.

mod client;
mod error;
mod model;

pub use client::{RegistryAuth, RegistryClient};
pub use error::RegistryError;
pub use model::{RegisteredSchema, SchemaDefinition};
pub use tributary_api::schema::{Compatibility, SchemaReference, SchemaType};
