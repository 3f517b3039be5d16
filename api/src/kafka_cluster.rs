//! `KafkaCluster`: how to reach an existing Kafka-compatible cluster (and,
//! optionally, its schema registry). Tributary never deploys brokers; Topics,
//! Schemas, Connectors and Streams point at a `KafkaCluster` through
//! `clusterRef`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Properties, SecretKeyRef};

/// Connection to an existing Kafka cluster.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    namespaced,
    status = "KafkaClusterStatus",
    shortname = "kc",
    category = "tributary",
    doc = "A Kafka cluster (and optional schema registry) that Tributary resources connect to.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Brokers", type_ = "integer", json_path = ".status.brokers"),
    printcolumn(name = "Registry", type_ = "string", json_path = ".status.registryReachable"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// Bootstrap brokers as `host:port`, e.g. `my-kafka-bootstrap.kafka:9092`.
    #[schemars(schema_with = "bootstrap_servers_schema")]
    pub bootstrap_servers: Vec<String>,

    /// TLS to the brokers. Absent: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,

    /// SASL authentication to the brokers. Absent: no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,

    /// Confluent-compatible schema registry used by Schemas and by Avro formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<SchemaRegistry>,

    /// Extra librdkafka client properties (e.g. `client.rack`, `socket.keepalive.enable`).
    /// Credentials are refused here: use `sasl` and `tls` with Secret references.
    #[serde(default, skip_serializing_if = "Properties::is_empty")]
    #[schemars(schema_with = "crate::common::properties_schema")]
    #[x_kube(validation = Rule::new("self.all(k, !k.lowerAscii().matches('password|secret|sasl[.]jaas|ssl[.]key|token') && !(k in ['bootstrap.servers', 'security.protocol', 'sasl.mechanism', 'sasl.username']))").message("clientProperties must not carry credentials or connection settings (bootstrap.servers, security.protocol, sasl.*): use the typed fields and Secret references"))]
    pub client_properties: Properties,
}

/// `host:port` entries, checked by an OpenAPI pattern (free of CEL cost).
fn bootstrap_servers_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 32,
        "items": {
            "type": "string",
            "maxLength": 255,
            "pattern": "^([A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}$"
        }
    })
}

/// TLS settings for broker connections. All material comes from Secrets.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.clientCertSecretRef) == has(self.clientKeySecretRef)").message("tls.clientCertSecretRef and tls.clientKeySecretRef must be set together"))]
#[x_kube(validation = Rule::new("!(has(self.caSecretRef) && has(self.insecureSkipVerify) && self.insecureSkipVerify)").message("tls.caSecretRef and tls.insecureSkipVerify are mutually exclusive"))]
pub struct KafkaTls {
    /// PEM CA bundle to verify the brokers. Absent: the system trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// PEM client certificate for mutual TLS (requires `clientKeySecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret_ref: Option<SecretKeyRef>,
    /// PEM private key for mutual TLS (requires `clientCertSecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_secret_ref: Option<SecretKeyRef>,
    /// Skip broker certificate verification. For development only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// SASL mechanisms Tributary speaks.
#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// `PLAIN` (use with TLS).
    #[serde(rename = "PLAIN")]
    Plain,
    /// `SCRAM-SHA-256`.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512` (the default).
    #[default]
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The value librdkafka's `sasl.mechanism` expects.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials; the password only through a Secret.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSasl {
    /// SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default)]
    pub mechanism: SaslMechanism,
    /// User name.
    #[schemars(length(min = 1))]
    pub username: String,
    /// Secret key holding the password.
    pub password_secret_ref: SecretKeyRef,
}

/// A Confluent-compatible schema registry.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRegistry {
    /// Base URL, e.g. `http://schema-registry.kafka:8081`.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
    /// HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// PEM CA bundle to verify an https registry. Absent: the system trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// HTTP basic authentication; the password only through a Secret.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// User name (an API key for Confluent Cloud).
    #[schemars(length(min = 1))]
    pub username: String,
    /// Secret key holding the password (an API secret for Confluent Cloud).
    pub password_secret_ref: SecretKeyRef,
}

/// Observed state of a `KafkaCluster`.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// `Ready`, `Reconciling` and `Stalled` (kstatus). Ready is True when the
    /// brokers answer (and the registry, when one is configured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Kafka's cluster id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Number of brokers in the cluster metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers: Option<i32>,
    /// Whether the schema registry answered; absent when none is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_reachable: Option<bool>,
}

crate::common::impl_has_conditions!(KafkaCluster);

#[cfg(test)]
mod tests {
    use kube::core::cel::validate_cel;
    use serde_json::json;

    use super::*;

    fn check(spec: serde_json::Value) -> Result<(), String> {
        let cluster = KafkaCluster::new("main", serde_json::from_value(spec).unwrap());
        validate_cel(&cluster).map_err(|e| e.to_string())
    }

    #[test]
    fn credentials_are_refused_in_client_properties() {
        assert!(
            check(json!({"bootstrapServers": ["k:9092"], "clientProperties": {"client.rack": "a"}})).is_ok()
        );
        for key in [
            "sasl.password",
            "ssl.key.password",
            "sasl.jaas.config",
            "security.protocol",
        ] {
            let error =
                check(json!({"bootstrapServers": ["k:9092"], "clientProperties": {key: "x"}})).unwrap_err();
            assert!(
                error.contains("clientProperties must not carry credentials"),
                "{key}: {error}"
            );
        }
    }

    #[test]
    fn tls_client_cert_and_key_go_together() {
        let cert_only = json!({"bootstrapServers": ["k:9093"], "tls": {"clientCertSecretRef": {"name": "s", "key": "crt"}}});
        let error = check(cert_only).unwrap_err();
        assert!(error.contains("must be set together"), "{error}");
        let both = json!({"bootstrapServers": ["k:9093"], "tls": {
            "clientCertSecretRef": {"name": "s", "key": "crt"}, "clientKeySecretRef": {"name": "s", "key": "key"}}});
        assert!(check(both).is_ok());
        let exclusive = json!({"bootstrapServers": ["k:9093"], "tls": {
            "caSecretRef": {"name": "s", "key": "ca"}, "insecureSkipVerify": true}});
        assert!(check(exclusive).unwrap_err().contains("mutually exclusive"));
    }
}
