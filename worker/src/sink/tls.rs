//! TLS of the HTTPS sinks (OpenSearch, the webhook): `spec.sink.<target>.tls`.
//!
//! Data model: PEM material read from Secrets when the connector's
//! configuration loads, parsed there (so a bad certificate stops the worker
//! at start with the field named, not at the first batch), then applied to
//! each writer's HTTP client:
//!
//! ```text
//!   caSecretRef                 → extra trusted roots (beside the system store)
//!   clientCertSecretRef + Key   → client identity (mutual TLS; PKCS#8 key)
//!   insecureSkipVerify          → no server verification (development only)
//! ```
//!
//! The key never reaches `Debug`, logs or errors.

use tributary_api::sink::SinkTls;

use crate::config::secrets::{SecretError, SecretResolver};

/// A `tls` block that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A field's value is not usable (not PEM, missing its pair, …).
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `spec.sink.opensearch.tls.caSecretRef`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A Secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// The parsed TLS material of one sink.
#[derive(Clone, Default)]
pub struct TlsMaterial {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
    insecure: bool,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("roots", &self.roots.len())
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl TlsMaterial {
    /// Reads and parses `spec` (the block at `field`, e.g.
    /// `spec.sink.opensearch.tls`); none: the system trust store only.
    pub fn resolve(field: &str, spec: Option<&SinkTls>, secrets: &SecretResolver) -> Result<Self, TlsError> {
        let Some(spec) = spec else {
            return Ok(Self::default());
        };
        let invalid = |name: &str, message: String| TlsError::Invalid {
            field: format!("{field}.{name}"),
            message,
        };
        if spec.ca_secret_ref.is_some() && spec.insecure_skip_verify {
            return Err(invalid(
                "insecureSkipVerify",
                "cannot be set with caSecretRef: trust a CA, or (for development) skip verification"
                    .to_owned(),
            ));
        }
        let roots = match &spec.ca_secret_ref {
            Some(reference) => {
                let name = "caSecretRef";
                let pem = secrets.resolve(&format!("{field}.{name}"), reference)?;
                let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .map_err(|e| invalid(name, format!("not a PEM certificate bundle: {e}")))?;
                if roots.is_empty() {
                    return Err(invalid(
                        name,
                        "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
                    ));
                }
                roots
            }
            None => Vec::new(),
        };
        let identity = match (&spec.client_cert_secret_ref, &spec.client_key_secret_ref) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let cert = secrets.resolve(&format!("{field}.clientCertSecretRef"), cert)?;
                let key = secrets.resolve(&format!("{field}.clientKeySecretRef"), key)?;
                // The parser's message never quotes the key.
                let identity = reqwest::Identity::from_pkcs8_pem(cert.as_bytes(), key.as_bytes()).map_err(|e| {
                    invalid(
                        "clientKeySecretRef",
                        format!(
                            "with clientCertSecretRef, not a PEM certificate and PKCS#8 private key (-----BEGIN PRIVATE KEY-----): {e}"
                        ),
                    )
                })?;
                Some(identity)
            }
            (Some(_), None) => {
                return Err(invalid(
                    "clientKeySecretRef",
                    "must be set with clientCertSecretRef".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "clientCertSecretRef",
                    "must be set with clientKeySecretRef".to_owned(),
                ));
            }
        };
        Ok(Self {
            roots,
            identity,
            insecure: spec.insecure_skip_verify,
        })
    }

    /// `builder` with this material applied.
    pub fn apply(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        if let Some(identity) = &self.identity {
            builder = builder.identity(identity.clone());
        }
        if self.insecure {
            tracing::warn!("TLS certificate verification is off (insecureSkipVerify)");
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use tributary_api::SecretKeyRef;

    use super::*;

    #[allow(clippy::unnecessary_wraps)] // reads as the field's Some(reference)
    fn reference(key: &str) -> Option<SecretKeyRef> {
        Some(SecretKeyRef {
            name: "tls".into(),
            key: key.into(),
        })
    }

    fn secrets(files: &[(&str, &str)]) -> (SecretResolver, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tributary-tls-{}", uuid_like()));
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        for (key, text) in files {
            std::fs::write(dir.join("tls").join(key), text).unwrap();
        }
        (
            SecretResolver {
                dir: Some(dir.clone()),
                ..SecretResolver::default()
            },
            dir,
        )
    }

    fn uuid_like() -> String {
        format!(
            "{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )
    }

    #[test]
    fn bad_material_names_the_field() {
        let (resolver, dir) = secrets(&[("ca", "not a certificate"), ("cert", "x")]);
        let field = "spec.sink.http.tls";
        let error = TlsMaterial::resolve(
            field,
            Some(&SinkTls {
                ca_secret_ref: reference("ca"),
                ..SinkTls::default()
            }),
            &resolver,
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("spec.sink.http.tls.caSecretRef: "), "{error}");
        let error = TlsMaterial::resolve(
            field,
            Some(&SinkTls {
                client_cert_secret_ref: reference("cert"),
                ..SinkTls::default()
            }),
            &resolver,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("spec.sink.http.tls.clientKeySecretRef: must be set"),
            "{error}"
        );
        let error = TlsMaterial::resolve(
            field,
            Some(&SinkTls {
                ca_secret_ref: reference("ca"),
                insecure_skip_verify: true,
                ..SinkTls::default()
            }),
            &resolver,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("insecureSkipVerify"), "{error}");
        let missing = TlsMaterial::resolve(
            field,
            Some(&SinkTls {
                ca_secret_ref: reference("absent"),
                ..SinkTls::default()
            }),
            &resolver,
        )
        .unwrap_err();
        assert!(matches!(missing, TlsError::Secret(_)), "{missing}");
        assert!(TlsMaterial::resolve(field, None, &resolver).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
