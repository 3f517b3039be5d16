//! Secret values for `SecretKeyRef`s, resolved the same way on Kubernetes and
//! in standalone mode.
//!
//! A reference `{name: pg, key: password}` is looked up as
//! 1. the environment variable `TRIBUTARY_SECRET_PG_PASSWORD`
//!    ([`SecretKeyRef::env_var`]); the operator sets it from the Secret with
//!    `valueFrom.secretKeyRef`, so values never pass through a ConfigMap;
//! 2. the file `<secrets dir>/pg/password`, the layout Kubernetes uses when a
//!    Secret is mounted as a volume (and easy to lay out by hand);
//! 3. values given in memory: the operator checks a Connector's config with
//!    the Secrets it read from the apiserver, before any worker starts.
//!
//! Errors name the reference and where it was looked for, never a value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tributary_api::SecretKeyRef;

/// Where secret values come from.
#[derive(Clone, Default)]
pub struct SecretResolver {
    /// Directory holding `<secret name>/<key>` files, if any.
    pub dir: Option<PathBuf>,
    /// Values by `(secret name, key)`, looked up first.
    pub values: BTreeMap<(String, String), String>,
}

impl std::fmt::Debug for SecretResolver {
    // Names and keys only: values never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretResolver")
            .field("dir", &self.dir)
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretResolver {
    /// A resolver of the given values only (no environment, no files).
    pub fn from_values(values: BTreeMap<(String, String), String>) -> Self {
        Self { dir: None, values }
    }
}

/// A secret reference that could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: Secret {name:?} key {key:?} not found: set environment variable {env_var}{file_hint}")]
pub struct SecretError {
    /// The config field holding the reference, e.g. `spec.source.postgres.password`.
    pub field: String,
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
    /// The environment variable that was checked.
    pub env_var: String,
    /// `" or create file …"` when a secrets directory is configured.
    pub file_hint: String,
}

impl SecretResolver {
    /// The value of `reference`, read for the config field `field`.
    pub fn resolve(&self, field: &str, reference: &SecretKeyRef) -> Result<String, SecretError> {
        if let Some(value) = self.values.get(&(reference.name.clone(), reference.key.clone())) {
            return Ok(value.clone());
        }
        let env_var = reference.env_var();
        if let Ok(value) = std::env::var(&env_var) {
            return Ok(value);
        }
        let file = self
            .dir
            .as_ref()
            .map(|dir| dir.join(&reference.name).join(&reference.key));
        if let Some(value) = file.as_ref().and_then(|path| std::fs::read_to_string(path).ok()) {
            // Files written by editors end in a newline that is not part of the secret.
            return Ok(value.strip_suffix('\n').unwrap_or(&value).to_owned());
        }
        Err(SecretError {
            field: field.to_owned(),
            name: reference.name.clone(),
            key: reference.key.clone(),
            env_var,
            file_hint: file
                .map(|p| format!(" or create file {}", p.display()))
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_mounted_secret_file_without_its_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("tributary-secrets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pg-file")).unwrap();
        std::fs::write(dir.join("pg-file").join("password"), "s3cret\n").unwrap();
        let resolver = SecretResolver {
            dir: Some(dir.clone()),
            ..SecretResolver::default()
        };
        let reference = SecretKeyRef {
            name: "pg-file".into(),
            key: "password".into(),
        };
        assert_eq!(resolver.resolve("spec.x", &reference).unwrap(), "s3cret");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_secret_names_the_field_and_where_it_was_looked_for() {
        let resolver = SecretResolver {
            dir: Some(PathBuf::from("/nonexistent")),
            ..SecretResolver::default()
        };
        let reference = SecretKeyRef {
            name: "absent-secret".into(),
            key: "password".into(),
        };
        let message = resolver
            .resolve("spec.source.postgres.password", &reference)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("spec.source.postgres.password: "),
            "{message}"
        );
        assert!(
            message.contains("TRIBUTARY_SECRET_ABSENT_SECRET_PASSWORD"),
            "{message}"
        );
        assert!(
            message.contains("/nonexistent/absent-secret/password"),
            "{message}"
        );
    }
}
