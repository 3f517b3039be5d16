//! Schemas as the client hands them out, and their JSON forms on the wire.

use serde::{Deserialize, Serialize};
use tributary_api::schema::{SchemaReference, SchemaType};

use crate::error::RegistryError;

/// A schema as the registry stores it: language, text and references.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaDefinition {
    /// The schema language.
    pub schema_type: SchemaType,
    /// The schema text (Avro JSON, JSON Schema, or a .proto file).
    pub schema: String,
    /// Schemas under other subjects that this one uses.
    pub references: Vec<SchemaReference>,
}

impl SchemaDefinition {
    /// An Avro schema without references.
    pub fn avro(schema: impl Into<String>) -> Self {
        Self {
            schema_type: SchemaType::Avro,
            schema: schema.into(),
            references: Vec::new(),
        }
    }
}

/// One version of a subject.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisteredSchema {
    /// The subject holding the version.
    pub subject: String,
    /// The registry-wide schema id.
    pub id: i64,
    /// The version within the subject (1, 2, …).
    pub version: i64,
    /// The schema itself.
    pub schema: SchemaDefinition,
}

/// Body of register, lookup and compatibility requests.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaRequest<'a> {
    /// Omitted for Avro, the API's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_type: Option<&'static str>,
    schema: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    references: &'a [SchemaReference],
}

impl<'a> From<&'a SchemaDefinition> for SchemaRequest<'a> {
    fn from(definition: &'a SchemaDefinition) -> Self {
        Self {
            schema_type: match definition.schema_type {
                SchemaType::Avro => None,
                other => Some(other.as_str()),
            },
            schema: &definition.schema,
            references: &definition.references,
        }
    }
}

/// `GET /schemas/ids/{id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SchemaResponse {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
}

impl SchemaResponse {
    pub(crate) fn into_definition(self) -> Result<SchemaDefinition, RegistryError> {
        Ok(SchemaDefinition {
            schema_type: parse_schema_type(self.schema_type.as_deref())?,
            schema: self.schema,
            references: self.references.unwrap_or_default(),
        })
    }
}

/// `GET /subjects/{subject}/versions/{version}` and `POST /subjects/{subject}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SubjectSchemaResponse {
    subject: String,
    id: i64,
    version: i64,
    #[serde(flatten)]
    schema: SchemaResponse,
}

impl SubjectSchemaResponse {
    pub(crate) fn into_registered(self) -> Result<RegisteredSchema, RegistryError> {
        Ok(RegisteredSchema {
            subject: self.subject,
            id: self.id,
            version: self.version,
            schema: self.schema.into_definition()?,
        })
    }
}

/// `POST /subjects/{subject}/versions`. Confluent answers only the id; newer
/// releases and other registries may add the version.
#[derive(Debug, Deserialize)]
pub(crate) struct RegisterResponse {
    pub(crate) id: i64,
    #[serde(default)]
    pub(crate) version: Option<i64>,
}

/// `POST /compatibility/subjects/{subject}/versions/latest?verbose=true`.
#[derive(Debug, Deserialize)]
pub(crate) struct CompatibilityCheckResponse {
    pub(crate) is_compatible: bool,
    #[serde(default)]
    pub(crate) messages: Option<Vec<String>>,
}

/// `GET /config[/{subject}]` answers `compatibilityLevel`; some registries
/// (and `PUT /config`) use `compatibility`.
#[derive(Debug, Deserialize)]
pub(crate) struct ConfigResponse {
    #[serde(default, rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
    #[serde(default)]
    compatibility: Option<String>,
}

impl ConfigResponse {
    pub(crate) fn level(self) -> Option<String> {
        self.compatibility_level
            .or(self.compatibility)
            .filter(|level| !level.is_empty())
    }
}

/// `schemaType` as answered: absent (or empty) means Avro.
pub(crate) fn parse_schema_type(value: Option<&str>) -> Result<SchemaType, RegistryError> {
    match value.map(str::to_ascii_uppercase).as_deref() {
        None | Some("" | "AVRO") => Ok(SchemaType::Avro),
        Some("JSON") => Ok(SchemaType::Json),
        Some("PROTOBUF") => Ok(SchemaType::Protobuf),
        Some(other) => Err(RegistryError::UnexpectedResponse(format!(
            "unknown schemaType {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(definition: &SchemaDefinition) -> serde_json::Value {
        serde_json::to_value(SchemaRequest::from(definition)).unwrap()
    }

    #[test]
    fn avro_body_omits_schema_type_and_empty_references() {
        let definition = SchemaDefinition::avro(r#"{"type":"string"}"#);
        assert_eq!(body(&definition), json!({"schema": r#"{"type":"string"}"#}));
    }

    #[test]
    fn other_languages_name_their_schema_type() {
        for (schema_type, name) in [(SchemaType::Json, "JSON"), (SchemaType::Protobuf, "PROTOBUF")] {
            let definition = SchemaDefinition {
                schema_type,
                schema: "text".into(),
                references: Vec::new(),
            };
            assert_eq!(body(&definition), json!({"schemaType": name, "schema": "text"}));
        }
    }

    #[test]
    fn references_are_sent_in_camel_case() {
        let definition = SchemaDefinition {
            schema_type: SchemaType::Avro,
            schema: r#"{"type":"record","name":"Order","fields":[{"name":"c","type":"dev.Customer"}]}"#
                .into(),
            references: vec![SchemaReference {
                name: "dev.Customer".into(),
                subject: "customer-value".into(),
                version: 3,
            }],
        };
        assert_eq!(
            body(&definition),
            json!({
                "schema": definition.schema,
                "references": [{"name": "dev.Customer", "subject": "customer-value", "version": 3}]
            })
        );
    }

    #[test]
    fn subject_schema_defaults_to_avro_without_references() {
        let response: SubjectSchemaResponse = serde_json::from_value(json!({
            "subject": "s", "id": 4, "version": 2, "schema": "\"string\""
        }))
        .unwrap();
        assert_eq!(
            response.into_registered().unwrap(),
            RegisteredSchema {
                subject: "s".into(),
                id: 4,
                version: 2,
                schema: SchemaDefinition::avro("\"string\"")
            }
        );
    }

    #[test]
    fn subject_schema_reads_type_and_references() {
        let response: SubjectSchemaResponse = serde_json::from_value(json!({
            "subject": "s", "id": 4, "version": 2, "schemaType": "PROTOBUF", "schema": "syntax = \"proto3\";",
            "references": [{"name": "a.proto", "subject": "a", "version": 1}], "guid": "ignored"
        }))
        .unwrap();
        let registered = response.into_registered().unwrap();
        assert_eq!(registered.schema.schema_type, SchemaType::Protobuf);
        assert_eq!(
            registered.schema.references,
            vec![SchemaReference {
                name: "a.proto".into(),
                subject: "a".into(),
                version: 1
            }]
        );
    }

    #[test]
    fn schema_by_id_tolerates_null_references_and_rejects_unknown_types() {
        let response: SchemaResponse =
            serde_json::from_value(json!({"schema": "{}", "schemaType": "json", "references": null}))
                .unwrap();
        assert_eq!(
            response.into_definition().unwrap(),
            SchemaDefinition {
                schema_type: SchemaType::Json,
                schema: "{}".into(),
                references: Vec::new()
            }
        );
        let response: SchemaResponse =
            serde_json::from_value(json!({"schema": "{}", "schemaType": "XML"})).unwrap();
        assert!(matches!(
            response.into_definition(),
            Err(RegistryError::UnexpectedResponse(_))
        ));
    }

    #[test]
    fn config_reads_either_key() {
        let global: ConfigResponse = serde_json::from_value(json!({"compatibilityLevel": "FULL"})).unwrap();
        assert_eq!(global.level().as_deref(), Some("FULL"));
        let put: ConfigResponse = serde_json::from_value(json!({"compatibility": "NONE"})).unwrap();
        assert_eq!(put.level().as_deref(), Some("NONE"));
        let empty: ConfigResponse = serde_json::from_value(json!({"normalize": false})).unwrap();
        assert_eq!(empty.level(), None);
    }
}
