//! The Secret references of a workload and their versions.
//!
//! Workers get Secret values as environment variables
//! (`valueFrom.secretKeyRef`), so the operator never handles them here: it
//! only checks that each referenced key exists (a missing one is reported
//! naming the spec field, instead of a pod stuck in
//! `CreateContainerConfigError`) and records each Secret's
//! `resourceVersion`, whose change (a rotation) rolls the workers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use tributary_api::{KafkaCluster, SecretKeyRef};

use super::Workload;
use crate::controller::Failure;

/// Every Secret reference of `obj`'s spec and of its KafkaCluster, with the
/// field holding it (`spec.sink.postgres.password`).
///
/// The spec is walked as JSON: a reference is any object whose fields are
/// exactly `name` and `key` (strings), which is how [`SecretKeyRef`]
/// serialises (no other type in the API has that shape), so a reference
/// field added later is covered without touching this code.
pub fn references<K: Workload>(obj: &K, cluster: &KafkaCluster) -> Vec<(String, SecretKeyRef)> {
    let mut found = Vec::new();
    if let Ok(value) = serde_json::to_value(obj) {
        walk(&value["spec"], "spec", &mut found);
    }
    if let Ok(value) = serde_json::to_value(&cluster.spec) {
        walk(
            &value,
            &format!("KafkaCluster {} spec", cluster.name_any()),
            &mut found,
        );
    }
    found
}

fn walk(value: &serde_json::Value, path: &str, found: &mut Vec<(String, SecretKeyRef)>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.len() == 2
                && let (Some(serde_json::Value::String(name)), Some(serde_json::Value::String(key))) =
                    (map.get("name"), map.get("key"))
            {
                found.push((
                    path.to_owned(),
                    SecretKeyRef {
                        name: name.clone(),
                        key: key.clone(),
                    },
                ));
                return;
            }
            for (field, inner) in map {
                walk(inner, &format!("{path}.{field}"), found);
            }
        }
        serde_json::Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                walk(inner, &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

/// The referenced Secrets, read once per reconcile.
#[derive(Default)]
pub struct ReadSecrets {
    /// `<name>@<resourceVersion>` of each (rolls the pods when one changes).
    pub versions: Vec<String>,
    /// The referenced values by `(secret name, key)`: only to check the
    /// worker config as the worker will (never written anywhere).
    pub values: BTreeMap<(String, String), String>,
}

impl std::fmt::Debug for ReadSecrets {
    // Names and keys only: values never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadSecrets")
            .field("versions", &self.versions)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Reads each referenced Secret, after checking the referenced keys exist.
pub async fn read(
    client: &kube::Client,
    namespace: &str,
    refs: &[(String, SecretKeyRef)],
) -> Result<ReadSecrets, Failure> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secrets: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    for (field, reference) in refs {
        if !secrets.contains_key(&reference.name) {
            let secret = api
                .get_opt(&reference.name)
                .await
                .map_err(|e| Failure::transient("KubernetesApiError", e.to_string()))?;
            secrets.insert(reference.name.clone(), secret);
        }
        let has_key = secrets
            .get(&reference.name)
            .and_then(Option::as_ref)
            .map(|secret| {
                secret
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&reference.key))
                    || secret
                        .string_data
                        .as_ref()
                        .is_some_and(|d| d.contains_key(&reference.key))
            });
        match has_key {
            None => {
                return Err(Failure::transient(
                    "SecretNotFound",
                    format!("{field}: Secret {namespace}/{} not found", reference.name),
                ));
            }
            Some(false) => {
                return Err(Failure::transient(
                    "SecretNotFound",
                    format!(
                        "{field}: Secret {namespace}/{} has no key {:?}",
                        reference.name, reference.key
                    ),
                ));
            }
            Some(true) => {}
        }
    }
    let mut read = ReadSecrets::default();
    for (_, reference) in refs {
        let Some(Some(secret)) = secrets.get(&reference.name) else {
            continue;
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&reference.key))
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&reference.key))
                    .cloned()
            });
        if let Some(value) = value {
            read.values
                .insert((reference.name.clone(), reference.key.clone()), value);
        }
    }
    read.versions = secrets
        .into_iter()
        .filter_map(|(name, secret)| {
            secret.map(|s| format!("{name}@{}", s.resource_version().unwrap_or_default()))
        })
        .collect();
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references_anywhere_with_the_field_that_holds_them() {
        let spec = serde_json::json!({
            "sink": {
                "postgres": {"host": "db", "password": {"name": "pg", "key": "password"}},
                "http": {"headers": [{"name": "Authorization", "secretKeyRef": {"name": "hook", "key": "token"}}]},
            },
            "clusterRef": {"name": "main"},
        });
        let mut found = Vec::new();
        walk(&spec, "spec", &mut found);
        let fields: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|(f, r)| (f.as_str(), r.name.as_str(), r.key.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("spec.sink.postgres.password", "pg", "password"),
                ("spec.sink.http.headers[0].secretKeyRef", "hook", "token"),
            ]
        );
    }
}
