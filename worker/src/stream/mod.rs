//! Streams: a `Stream` resource's SQL query run over Kafka topics.
//!
//! `config` checks the manifest and plans its query with `tributary_sql`.

pub mod config;
