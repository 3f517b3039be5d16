//! `tributary-worker`: runs one connector or stream. One folder per component.

pub mod debezium;
