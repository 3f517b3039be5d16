//! How to reach one Kafka cluster: the librdkafka client properties a
//! `KafkaCluster` spec stands for, with its Secret references resolved.
//!
//! # Data model
//!
//! A [`KafkaConnection`] is a flat map of librdkafka property names to values
//! (`bootstrap.servers`, `security.protocol`, `ssl.*`, `sasl.*` and the
//! cluster's `clientProperties`). It is built from the spec in three layers,
//! later layers winning:
//!
//! 1. defaults (`socket.connection.setup.timeout.ms=10000`, so an unreachable
//!    broker is reported within seconds rather than librdkafka's 30 s);
//! 2. the spec's `clientProperties`, copied verbatim — except credentials,
//!    which are refused (they must come from Secret references);
//! 3. the typed fields: `bootstrapServers`, `tls` and `sasl`. A client
//!    property can never override what a typed field sets.
//!
//! | spec                         | `security.protocol` |
//! |------------------------------|---------------------|
//! | neither `tls` nor `sasl`     | `PLAINTEXT`         |
//! | `tls` only                   | `SSL`               |
//! | `sasl` only                  | `SASL_PLAINTEXT`    |
//! | `tls` and `sasl`             | `SASL_SSL`          |
//!
//! TLS material is passed inline as PEM (`ssl.ca.pem`, `ssl.certificate.pem`,
//! `ssl.key.pem`), so nothing secret is ever written to disk.
//! `insecureSkipVerify` sets `enable.ssl.certificate.verification=false` and
//! `ssl.endpoint.identification.algorithm=none`.
//!
//! # Secrets
//!
//! Secret values live only inside the map and inside the `ClientConfig`s
//! built from it. `KafkaConnection`'s `Debug` prints `<redacted>` for every
//! credential-bearing key, and [`ConnectionError`] names the field and the
//! Secret reference, never a value. Note that rdkafka's own `ClientConfig`
//! `Debug` hides `sasl.password` but *not* `ssl.key.pem`: do not log the
//! result of [`KafkaConnection::client_config`].

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;
use tributary_api::common::is_secret_property;
use tributary_api::{KafkaClusterSpec, SecretKeyRef};

/// The property librdkafka reads the brokers from.
pub const BOOTSTRAP_SERVERS: &str = "bootstrap.servers";

/// Default for `socket.connection.setup.timeout.ms` unless the cluster's
/// `clientProperties` set it.
pub const DEFAULT_CONNECTION_SETUP_TIMEOUT_MS: &str = "10000";

const REDACTED: &str = "<redacted>";

/// How long librdkafka waits before fetching again once its prefetch queue
/// was full (see [`KafkaConnection::consumer_config`]).
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// Why a `KafkaCluster` spec cannot be turned into client properties. Every
/// message names the offending spec field; none carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// `bootstrapServers` is empty.
    #[error("spec.bootstrapServers: at least one broker address is required")]
    NoBootstrapServers,
    /// A Secret reference could not be resolved.
    #[error("{field}: secret {secret} key {key}: {message}")]
    Secret {
        /// The spec field holding the reference, e.g. `spec.sasl.passwordSecretRef`.
        field: &'static str,
        /// Name of the referenced Secret.
        secret: String,
        /// Key within the Secret.
        key: String,
        /// The resolver's explanation (which must not contain secret values).
        message: String,
    },
    /// A field's value is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The spec field, e.g. `spec.tls` or `spec.clientProperties.sasl.password`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// librdkafka client properties for one `KafkaCluster`, with secrets resolved.
///
/// `Debug` redacts the values of credential-bearing properties
/// (`sasl.password`, `ssl.key.pem`, `ssl.key.password`, …).
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConnection {
    properties: BTreeMap<String, String>,
}

impl KafkaConnection {
    /// Client properties for a `KafkaCluster` spec. `secret` resolves a
    /// [`SecretKeyRef`] to its value (the operator reads Kubernetes Secrets,
    /// the standalone worker environment variables or files); its error
    /// message is embedded in [`ConnectionError::Secret`], so it must not
    /// contain secret values either.
    pub fn from_spec(
        spec: &KafkaClusterSpec,
        secret: impl Fn(&SecretKeyRef) -> Result<String, String>,
    ) -> Result<Self, ConnectionError> {
        let resolve = |field: &'static str, reference: &SecretKeyRef| {
            secret(reference).map_err(|message| ConnectionError::Secret {
                field,
                secret: reference.name.clone(),
                key: reference.key.clone(),
                message,
            })
        };

        let servers: Vec<&str> = spec
            .bootstrap_servers
            .iter()
            .map(|server| server.trim())
            .filter(|server| !server.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(ConnectionError::NoBootstrapServers);
        }

        let mut properties = BTreeMap::new();
        properties.insert(
            "socket.connection.setup.timeout.ms".to_owned(),
            DEFAULT_CONNECTION_SETUP_TIMEOUT_MS.to_owned(),
        );
        for (key, value) in &spec.client_properties {
            if is_secret_property(key) {
                return Err(ConnectionError::Invalid {
                    field: format!("spec.clientProperties.{key}"),
                    message: "credentials must not be given as client properties: \
                              use spec.sasl and spec.tls with Secret references"
                        .to_owned(),
                });
            }
            properties.insert(key.clone(), value.clone());
        }

        // Typed fields last: they win over anything in clientProperties.
        let mut typed = BTreeMap::new();
        typed.insert(BOOTSTRAP_SERVERS, servers.join(","));

        if let Some(tls) = &spec.tls {
            let insecure = tls.insecure_skip_verify.unwrap_or(false);
            if insecure && tls.ca_secret_ref.is_some() {
                return Err(ConnectionError::Invalid {
                    field: "spec.tls".to_owned(),
                    message: "caSecretRef and insecureSkipVerify are mutually exclusive".to_owned(),
                });
            }
            if let Some(reference) = &tls.ca_secret_ref {
                typed.insert("ssl.ca.pem", resolve("spec.tls.caSecretRef", reference)?);
            }
            match (&tls.client_cert_secret_ref, &tls.client_key_secret_ref) {
                (Some(cert), Some(key)) => {
                    typed.insert(
                        "ssl.certificate.pem",
                        resolve("spec.tls.clientCertSecretRef", cert)?,
                    );
                    typed.insert("ssl.key.pem", resolve("spec.tls.clientKeySecretRef", key)?);
                }
                (None, None) => {}
                _ => {
                    return Err(ConnectionError::Invalid {
                        field: "spec.tls".to_owned(),
                        message: "clientCertSecretRef and clientKeySecretRef must be set together".to_owned(),
                    });
                }
            }
            if insecure {
                typed.insert("enable.ssl.certificate.verification", "false".to_owned());
                typed.insert("ssl.endpoint.identification.algorithm", "none".to_owned());
            }
        }

        if let Some(sasl) = &spec.sasl {
            if sasl.username.is_empty() {
                return Err(ConnectionError::Invalid {
                    field: "spec.sasl.username".to_owned(),
                    message: "must not be empty".to_owned(),
                });
            }
            typed.insert("sasl.mechanism", sasl.mechanism.as_str().to_owned());
            typed.insert("sasl.username", sasl.username.clone());
            typed.insert(
                "sasl.password",
                resolve("spec.sasl.passwordSecretRef", &sasl.password_secret_ref)?,
            );
        }

        let protocol = match (spec.tls.is_some(), spec.sasl.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        };
        typed.insert("security.protocol", protocol.to_owned());

        properties.extend(typed.into_iter().map(|(key, value)| (key.to_owned(), value)));
        Ok(Self { properties })
    }

    /// A plaintext, unauthenticated connection to `bootstrap` (`host:port[,host:port…]`),
    /// for tests and the standalone worker.
    pub fn plaintext(bootstrap: &str) -> Self {
        let properties = [
            (BOOTSTRAP_SERVERS, bootstrap),
            ("security.protocol", "PLAINTEXT"),
            (
                "socket.connection.setup.timeout.ms",
                DEFAULT_CONNECTION_SETUP_TIMEOUT_MS,
            ),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        Self { properties }
    }

    /// The brokers to bootstrap from, comma-separated.
    pub fn bootstrap_servers(&self) -> &str {
        self.properties.get(BOOTSTRAP_SERVERS).map_or("", String::as_str)
    }

    /// The value of one property, e.g. `security.protocol`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// A `ClientConfig` with every property set; callers add their own
    /// (`group.id`, `acks`, …). Do not log it: it holds the credentials.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// [`Self::client_config`] for a consumer that prefetches at most
    /// `prefetch_kbytes` (librdkafka's `queued.max.messages.kbytes`), so its
    /// memory stays bounded.
    ///
    /// With a bounded prefetch queue librdkafka postpones the next fetch by
    /// `fetch.queue.backoff.ms` (1 s by default) whenever the queue is full,
    /// so a consumer that drains the queue faster than that sits idle for
    /// most of each second: a small queue caps throughput at about one
    /// queue per second. A 10 ms backoff keeps the fetcher close behind.
    pub fn consumer_config(&self, prefetch_kbytes: u32) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("queued.max.messages.kbytes", prefetch_kbytes.to_string())
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
        config
    }

    /// `text` with every secret value this connection holds replaced by
    /// `<redacted>`: a last line of defence for error messages that echo
    /// configuration back.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (key, value) in &self.properties {
            if is_secret_property(key) && !value.is_empty() && text.contains(value.as_str()) {
                text = text.replace(value.as_str(), REDACTED);
            }
        }
        text
    }
}

impl fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Pem(usize);
        impl fmt::Debug for Pem {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "<PEM, {} bytes>", self.0)
            }
        }
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }

        let mut map = f.debug_map();
        for (key, value) in &self.properties {
            if is_secret_property(key) {
                map.entry(key, &Redacted);
            } else if key.rsplit_once('.').is_some_and(|(_, last)| last == "pem") {
                map.entry(key, &Pem(value.len()));
            } else {
                map.entry(key, value);
            }
        }
        map.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tributary_api::kafka_cluster::{KafkaSasl, KafkaTls, SaslMechanism};

    use super::*;

    const PASSWORD: &str = "hunter2-very-secret";
    const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----\n";
    const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nclient-cert\n-----END CERTIFICATE-----\n";
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nca-cert\n-----END CERTIFICATE-----\n";

    fn reference(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.to_owned(),
            key: key.to_owned(),
        }
    }

    /// Resolves the fixtures above; anything else is "not found".
    fn secrets(reference: &SecretKeyRef) -> Result<String, String> {
        match (reference.name.as_str(), reference.key.as_str()) {
            ("kafka-creds", "password") => Ok(PASSWORD.to_owned()),
            ("kafka-tls", "tls.key") => Ok(KEY_PEM.to_owned()),
            ("kafka-tls", "tls.crt") => Ok(CERT_PEM.to_owned()),
            ("kafka-tls", "ca.crt") => Ok(CA_PEM.to_owned()),
            (name, key) => Err(format!("key {key} not found in Secret {name}")),
        }
    }

    fn spec() -> KafkaClusterSpec {
        KafkaClusterSpec {
            bootstrap_servers: vec!["kafka-0.kafka:9092".to_owned(), "kafka-1.kafka:9092".to_owned()],
            ..KafkaClusterSpec::default()
        }
    }

    fn sasl(mechanism: SaslMechanism) -> KafkaSasl {
        KafkaSasl {
            mechanism,
            username: "tributary".to_owned(),
            password_secret_ref: reference("kafka-creds", "password"),
        }
    }

    fn mutual_tls() -> KafkaTls {
        KafkaTls {
            ca_secret_ref: Some(reference("kafka-tls", "ca.crt")),
            client_cert_secret_ref: Some(reference("kafka-tls", "tls.crt")),
            client_key_secret_ref: Some(reference("kafka-tls", "tls.key")),
            insecure_skip_verify: None,
        }
    }

    #[test]
    fn no_tls_no_sasl_is_plaintext() {
        let connection = KafkaConnection::from_spec(&spec(), secrets).unwrap();
        assert_eq!(
            connection.bootstrap_servers(),
            "kafka-0.kafka:9092,kafka-1.kafka:9092"
        );
        assert_eq!(connection.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(
            connection.get("socket.connection.setup.timeout.ms"),
            Some("10000")
        );
        assert_eq!(connection.get("sasl.mechanism"), None);
        assert_eq!(connection.get("ssl.ca.pem"), None);
    }

    #[test]
    fn tls_only_is_ssl_with_inline_pems() {
        let spec = KafkaClusterSpec {
            tls: Some(mutual_tls()),
            ..spec()
        };
        let connection = KafkaConnection::from_spec(&spec, secrets).unwrap();
        assert_eq!(connection.get("security.protocol"), Some("SSL"));
        assert_eq!(connection.get("ssl.ca.pem"), Some(CA_PEM));
        assert_eq!(connection.get("ssl.certificate.pem"), Some(CERT_PEM));
        assert_eq!(connection.get("ssl.key.pem"), Some(KEY_PEM));
        assert_eq!(connection.get("enable.ssl.certificate.verification"), None);
        assert_eq!(connection.get("sasl.username"), None);
    }

    #[test]
    fn tls_without_material_uses_the_system_trust_store() {
        let spec = KafkaClusterSpec {
            tls: Some(KafkaTls::default()),
            ..spec()
        };
        let connection = KafkaConnection::from_spec(&spec, secrets).unwrap();
        assert_eq!(connection.get("security.protocol"), Some("SSL"));
        assert_eq!(connection.get("ssl.ca.pem"), None);
        assert_eq!(connection.get("ssl.key.pem"), None);
    }

    #[test]
    fn insecure_skip_verify_disables_verification() {
        let tls = KafkaTls {
            insecure_skip_verify: Some(true),
            ..KafkaTls::default()
        };
        let spec = KafkaClusterSpec {
            tls: Some(tls),
            ..spec()
        };
        let connection = KafkaConnection::from_spec(&spec, secrets).unwrap();
        assert_eq!(connection.get("security.protocol"), Some("SSL"));
        assert_eq!(
            connection.get("enable.ssl.certificate.verification"),
            Some("false")
        );
        assert_eq!(
            connection.get("ssl.endpoint.identification.algorithm"),
            Some("none")
        );
    }

    #[test]
    fn sasl_only_is_sasl_plaintext() {
        for mechanism in [
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
        ] {
            let spec = KafkaClusterSpec {
                sasl: Some(sasl(mechanism)),
                ..spec()
            };
            let connection = KafkaConnection::from_spec(&spec, secrets).unwrap();
            assert_eq!(connection.get("security.protocol"), Some("SASL_PLAINTEXT"));
            assert_eq!(connection.get("sasl.mechanism"), Some(mechanism.as_str()));
            assert_eq!(connection.get("sasl.username"), Some("tributary"));
            assert_eq!(connection.get("sasl.password"), Some(PASSWORD));
            assert_eq!(connection.get("ssl.ca.pem"), None);
        }
    }

    #[test]
    fn tls_and_sasl_is_sasl_ssl() {
        let tls = KafkaTls {
            ca_secret_ref: Some(reference("kafka-tls", "ca.crt")),
            ..KafkaTls::default()
        };
        let spec = KafkaClusterSpec {
            tls: Some(tls),
            sasl: Some(sasl(SaslMechanism::ScramSha512)),
            ..spec()
        };
        let connection = KafkaConnection::from_spec(&spec, secrets).unwrap();
        assert_eq!(connection.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(connection.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(connection.get("sasl.password"), Some(PASSWORD));
        assert_eq!(connection.get("ssl.ca.pem"), Some(CA_PEM));
        assert_eq!(connection.get("ssl.key.pem"), None);
    }

    #[test]
    fn client_properties_are_copied_but_typed_fields_win() {
        let mut spec = KafkaClusterSpec {
            sasl: Some(sasl(SaslMechanism::Plain)),
            ..spec()
        };
        for (key, value) in [
            ("client.rack", "eu-west-1a"),
            ("socket.connection.setup.timeout.ms", "2500"),
            ("bootstrap.servers", "evil:9092"),
            ("security.protocol", "PLAINTEXT"),
            ("sasl.mechanism", "GSSAPI"),
            ("sasl.username", "someone-else"),
        ] {
            spec.client_properties.insert(key.to_owned(), value.to_owned());
        }
        let connection = KafkaConnection::from_spec(&spec, secrets).unwrap();
        assert_eq!(connection.get("client.rack"), Some("eu-west-1a"));
        assert_eq!(connection.get("socket.connection.setup.timeout.ms"), Some("2500"));
        assert_eq!(
            connection.bootstrap_servers(),
            "kafka-0.kafka:9092,kafka-1.kafka:9092"
        );
        assert_eq!(connection.get("security.protocol"), Some("SASL_PLAINTEXT"));
        assert_eq!(connection.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(connection.get("sasl.username"), Some("tributary"));
    }

    #[test]
    fn credentials_in_client_properties_are_refused_by_name() {
        let mut spec = spec();
        spec.client_properties
            .insert("sasl.password".to_owned(), "leaked-in-spec".to_owned());
        let error = KafkaConnection::from_spec(&spec, secrets).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("spec.clientProperties.sasl.password: "),
            "{message}"
        );
        assert!(!message.contains("leaked-in-spec"), "{message}");
    }

    #[test]
    fn empty_bootstrap_servers_are_refused() {
        let spec = KafkaClusterSpec {
            bootstrap_servers: vec![" ".to_owned()],
            ..spec()
        };
        let error = KafkaConnection::from_spec(&spec, secrets).unwrap_err();
        assert_eq!(error, ConnectionError::NoBootstrapServers);
        assert!(error.to_string().starts_with("spec.bootstrapServers:"));
    }

    #[test]
    fn unresolvable_password_names_the_field_and_reference() {
        let mut sasl = sasl(SaslMechanism::ScramSha256);
        sasl.password_secret_ref = reference("kafka-creds", "pasword");
        let spec = KafkaClusterSpec {
            sasl: Some(sasl),
            ..spec()
        };
        let error = KafkaConnection::from_spec(&spec, secrets).unwrap_err();
        assert_eq!(
            error.to_string(),
            "spec.sasl.passwordSecretRef: secret kafka-creds key pasword: \
             key pasword not found in Secret kafka-creds"
        );
    }

    #[test]
    fn unresolvable_tls_material_names_the_field() {
        for (tls, field) in [
            (
                KafkaTls {
                    ca_secret_ref: Some(reference("nope", "ca.crt")),
                    ..KafkaTls::default()
                },
                "spec.tls.caSecretRef: secret nope key ca.crt: ",
            ),
            (
                KafkaTls {
                    client_cert_secret_ref: Some(reference("nope", "tls.crt")),
                    ..mutual_tls()
                },
                "spec.tls.clientCertSecretRef: secret nope key tls.crt: ",
            ),
            (
                KafkaTls {
                    client_key_secret_ref: Some(reference("nope", "tls.key")),
                    ..mutual_tls()
                },
                "spec.tls.clientKeySecretRef: secret nope key tls.key: ",
            ),
        ] {
            let spec = KafkaClusterSpec {
                tls: Some(tls),
                ..spec()
            };
            let message = KafkaConnection::from_spec(&spec, secrets)
                .unwrap_err()
                .to_string();
            assert!(message.starts_with(field), "{message}");
        }
    }

    #[test]
    fn half_a_client_certificate_is_refused() {
        let tls = KafkaTls {
            client_key_secret_ref: None,
            ..mutual_tls()
        };
        let spec = KafkaClusterSpec {
            tls: Some(tls),
            ..spec()
        };
        let message = KafkaConnection::from_spec(&spec, secrets)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "spec.tls: clientCertSecretRef and clientKeySecretRef must be set together"
        );
    }

    #[test]
    fn ca_and_insecure_skip_verify_are_exclusive() {
        let tls = KafkaTls {
            insecure_skip_verify: Some(true),
            ..mutual_tls()
        };
        let spec = KafkaClusterSpec {
            tls: Some(tls),
            ..spec()
        };
        let message = KafkaConnection::from_spec(&spec, secrets)
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("spec.tls: "), "{message}");
    }

    #[test]
    fn empty_sasl_username_is_refused() {
        let mut sasl = sasl(SaslMechanism::Plain);
        sasl.username = String::new();
        let spec = KafkaClusterSpec {
            sasl: Some(sasl),
            ..spec()
        };
        let message = KafkaConnection::from_spec(&spec, secrets)
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("spec.sasl.username: "), "{message}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let spec = KafkaClusterSpec {
            tls: Some(mutual_tls()),
            sasl: Some(sasl(SaslMechanism::ScramSha512)),
            ..spec()
        };
        let connection = KafkaConnection::from_spec(&spec, secrets).unwrap();
        let debug = format!("{connection:?}");
        let pretty = format!("{connection:#?}");
        for text in [&debug, &pretty] {
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(!text.contains("secret-key-material"), "{text}");
            assert!(text.contains("\"sasl.password\": <redacted>"), "{text}");
            assert!(text.contains("\"ssl.key.pem\": <redacted>"), "{text}");
            assert!(text.contains("\"sasl.username\": \"tributary\""), "{text}");
            assert!(text.contains("SASL_SSL"), "{text}");
        }
    }

    #[test]
    fn redact_scrubs_secret_values_from_text() {
        let spec = KafkaClusterSpec {
            sasl: Some(sasl(SaslMechanism::Plain)),
            ..spec()
        };
        let connection = KafkaConnection::from_spec(&spec, secrets).unwrap();
        let text = connection.redact(&format!("login failed for tributary/{PASSWORD}"));
        assert_eq!(text, "login failed for tributary/<redacted>");
    }

    #[test]
    fn client_config_carries_every_property() {
        let spec = KafkaClusterSpec {
            sasl: Some(sasl(SaslMechanism::Plain)),
            ..spec()
        };
        let connection = KafkaConnection::from_spec(&spec, secrets).unwrap();
        let config = connection.client_config();
        assert_eq!(
            config.get("bootstrap.servers"),
            Some("kafka-0.kafka:9092,kafka-1.kafka:9092")
        );
        assert_eq!(config.get("sasl.password"), Some(PASSWORD));
        assert_eq!(config.get("security.protocol"), Some("SASL_PLAINTEXT"));
    }

    #[test]
    fn plaintext_connection() {
        let connection = KafkaConnection::plaintext("127.0.0.1:19092");
        assert_eq!(connection.bootstrap_servers(), "127.0.0.1:19092");
        assert_eq!(connection.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(
            connection.get("socket.connection.setup.timeout.ms"),
            Some("10000")
        );
    }
}
