//! Debezium compatibility: the change-event envelope and the default mapping
//! of Postgres values to Kafka Connect values, so consumers written for
//! Debezium's Postgres connector read Tributary's topics unchanged.
//!
//! Data model (one row change):
//!
//! ```text
//! key   = { <primary key columns> }                       (Connect struct)
//! value = { before, after, source, op, ts_ms, transaction } (Envelope)
//!           │       │      │       └ c | u | d | r | t
//!           │       │      └ Source: connector, name, db, schema, table,
//!           │       │        txId, lsn, xmin, snapshot, sequence, ts_ms
//!           └───────┴ row images: column name → converted value
//! ```
//!
//! pgoutput delivers column values in Postgres' text format; [`value`] turns
//! each into the JSON form of the Connect type Debezium uses by default
//! (`decimal.handling.mode=precise`, `time.precision.mode=adaptive`,
//! `binary.handling.mode=bytes`), and gives the matching Connect schema for
//! the JSON-with-schema format.

pub mod envelope;
pub mod row;
pub mod schema;
pub mod value;
