//! Resolving a resource's `clusterRef` to a `KafkaCluster` and turning that
//! into live connections: a Kafka admin client and, when configured, a
//! schema registry client. Secret values are read here, used to build the
//! clients, and never stored, logged or put into errors.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use tributary_api::{ClusterRef, KafkaCluster, SecretKeyRef};
use tributary_kafka::{KafkaAdmin, KafkaConnection};
use tributary_registry::{RegistryAuth, RegistryClient};

/// Why a resource's cluster could not be resolved or connected to.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `clusterRef` names a KafkaCluster that does not exist (yet).
    #[error("KafkaCluster {namespace}/{name} not found")]
    NotFound {
        /// Namespace searched.
        namespace: String,
        /// Name referenced.
        name: String,
    },
    /// No `clusterRef` and the namespace has no KafkaCluster.
    #[error("spec.clusterRef is not set and namespace {0} has no KafkaCluster")]
    NoneInNamespace(String),
    /// No `clusterRef` and the namespace has several KafkaClusters.
    #[error(
        "spec.clusterRef is not set and namespace {namespace} has {count} KafkaClusters ({names}); set spec.clusterRef.name"
    )]
    Ambiguous {
        /// Namespace searched.
        namespace: String,
        /// How many were found.
        count: usize,
        /// Their names.
        names: String,
    },
    /// A referenced Secret or key is missing.
    #[error("{0}")]
    Secret(String),
    /// The KafkaCluster spec cannot be turned into a client configuration.
    #[error("KafkaCluster {cluster}: {message}")]
    InvalidConnection {
        /// The KafkaCluster.
        cluster: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The KafkaCluster has no `spec.schemaRegistry`.
    #[error("KafkaCluster {0} has no spec.schemaRegistry; Schemas need one")]
    NoRegistry(String),
    /// Talking to the Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl ClusterError {
    /// True when retrying later may help without a spec change: the cluster
    /// or Secret may yet be created, the API may recover.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClusterError::NotFound { .. }
                | ClusterError::NoneInNamespace(_)
                | ClusterError::Secret(_)
                | ClusterError::Kube(_)
        )
    }

    /// Short machine-readable reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            ClusterError::NotFound { .. } | ClusterError::NoneInNamespace(_) => "KafkaClusterNotFound",
            ClusterError::Ambiguous { .. } => "KafkaClusterAmbiguous",
            ClusterError::Secret(_) => "SecretNotFound",
            ClusterError::InvalidConnection { .. } => "InvalidKafkaCluster",
            ClusterError::NoRegistry(_) => "NoSchemaRegistry",
            ClusterError::Kube(_) => "KubernetesApiError",
        }
    }
}

/// Finds the KafkaCluster a resource in `namespace` refers to.
pub async fn resolve(
    client: &kube::Client,
    namespace: &str,
    cluster_ref: Option<&ClusterRef>,
) -> Result<KafkaCluster, ClusterError> {
    let api: Api<KafkaCluster> = Api::namespaced(client.clone(), namespace);
    if let Some(reference) = cluster_ref {
        return api
            .get_opt(&reference.name)
            .await?
            .ok_or_else(|| ClusterError::NotFound {
                namespace: namespace.to_owned(),
                name: reference.name.clone(),
            });
    }
    let clusters = api.list(&ListParams::default()).await?.items;
    choose_default(namespace, clusters)
}

/// The namespace's only KafkaCluster, or why there is none to choose.
pub fn choose_default(
    namespace: &str,
    mut clusters: Vec<KafkaCluster>,
) -> Result<KafkaCluster, ClusterError> {
    match clusters.len() {
        0 => Err(ClusterError::NoneInNamespace(namespace.to_owned())),
        1 => Ok(clusters.remove(0)),
        count => {
            let mut names: Vec<String> = clusters.iter().map(ResourceExt::name_any).collect();
            names.sort();
            Err(ClusterError::Ambiguous {
                namespace: namespace.to_owned(),
                count,
                names: names.join(", "),
            })
        }
    }
}

/// The values of the Secret keys a KafkaCluster references, read once per reconcile.
#[derive(Default)]
pub struct SecretValues {
    values: BTreeMap<(String, String), String>,
    missing: BTreeMap<(String, String), String>,
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values never leave this struct through formatting.
        f.debug_struct("SecretValues")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("missing", &self.missing.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretValues {
    /// Reads every Secret key `cluster` references.
    pub async fn read(client: &kube::Client, cluster: &KafkaCluster) -> Result<Self, ClusterError> {
        let namespace = cluster.namespace().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let mut out = SecretValues::default();
        for reference in secret_refs(cluster) {
            let key = (reference.name.clone(), reference.key.clone());
            if out.values.contains_key(&key) || out.missing.contains_key(&key) {
                continue;
            }
            match api.get_opt(&reference.name).await? {
                None => {
                    out.missing
                        .insert(key, format!("Secret {namespace}/{} not found", reference.name));
                }
                Some(secret) => match secret_value(&secret, &reference.key) {
                    Some(value) => {
                        out.values.insert(key, value);
                    }
                    None => {
                        out.missing.insert(
                            key,
                            format!(
                                "Secret {namespace}/{} has no key {:?}",
                                reference.name, reference.key
                            ),
                        );
                    }
                },
            }
        }
        Ok(out)
    }

    /// The value of one reference, or the reason it is unavailable (no value in it).
    pub fn get(&self, reference: &SecretKeyRef) -> Result<String, String> {
        let key = (reference.name.clone(), reference.key.clone());
        if let Some(value) = self.values.get(&key) {
            return Ok(value.clone());
        }
        Err(self
            .missing
            .get(&key)
            .cloned()
            .unwrap_or_else(|| format!("Secret {} key {:?} was not read", reference.name, reference.key)))
    }
}

pub(crate) fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(bytes.0.clone()).ok();
    }
    secret.string_data.as_ref().and_then(|d| d.get(key)).cloned()
}

/// Every Secret reference in a KafkaCluster spec.
pub fn secret_refs(cluster: &KafkaCluster) -> Vec<&SecretKeyRef> {
    let spec = &cluster.spec;
    let mut refs = Vec::new();
    if let Some(tls) = &spec.tls {
        refs.extend(tls.ca_secret_ref.iter());
        refs.extend(tls.client_cert_secret_ref.iter());
        refs.extend(tls.client_key_secret_ref.iter());
    }
    if let Some(sasl) = &spec.sasl {
        refs.push(&sasl.password_secret_ref);
    }
    if let Some(registry) = &spec.schema_registry {
        refs.extend(registry.ca_secret_ref.iter());
        if let Some(auth) = &registry.basic_auth {
            refs.push(&auth.password_secret_ref);
        }
    }
    refs
}

/// Kafka connection settings for a cluster, secrets resolved.
pub fn kafka_connection(
    cluster: &KafkaCluster,
    secrets: &SecretValues,
) -> Result<KafkaConnection, ClusterError> {
    KafkaConnection::from_spec(&cluster.spec, |r| secrets.get(r)).map_err(|e| {
        ClusterError::InvalidConnection {
            cluster: cluster.name_any(),
            message: e.to_string(),
        }
    })
}

/// Admin clients kept per KafkaCluster: each holds connections and a polling
/// thread, far too costly to build per reconcile. An entry is rebuilt when the
/// cluster's connection settings (including Secret values) change.
#[derive(Default)]
pub struct AdminCache {
    entries: Mutex<HashMap<String, (KafkaConnection, Arc<KafkaAdmin>)>>,
}

impl std::fmt::Debug for AdminCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clusters = self.entries.lock().map(|e| e.len()).unwrap_or_default();
        f.debug_struct("AdminCache").field("clusters", &clusters).finish()
    }
}

/// A Kafka admin client for a cluster, shared across reconciles.
pub fn kafka_admin(
    cache: &AdminCache,
    cluster: &KafkaCluster,
    secrets: &SecretValues,
    timeout: Duration,
) -> Result<Arc<KafkaAdmin>, ClusterError> {
    let connection = kafka_connection(cluster, secrets)?;
    let key = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    let mut entries = cache
        .entries
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((cached, admin)) = entries.get(&key)
        && *cached == connection
        && admin.timeout() == timeout
    {
        return Ok(admin.clone());
    }
    let admin =
        Arc::new(
            KafkaAdmin::new(&connection, timeout).map_err(|e| ClusterError::InvalidConnection {
                cluster: cluster.name_any(),
                message: e.to_string(),
            })?,
        );
    entries.insert(key, (connection, admin.clone()));
    Ok(admin)
}

/// A registry client for a cluster; `Ok(None)` when it has no registry.
pub fn registry_client(
    cluster: &KafkaCluster,
    secrets: &SecretValues,
    timeout: Duration,
) -> Result<Option<RegistryClient>, ClusterError> {
    let Some(registry) = &cluster.spec.schema_registry else {
        return Ok(None);
    };
    let auth = match &registry.basic_auth {
        Some(basic) => Some(RegistryAuth {
            username: basic.username.clone(),
            password: secrets.get(&basic.password_secret_ref).map_err(|e| {
                ClusterError::Secret(format!("spec.schemaRegistry.basicAuth.passwordSecretRef: {e}"))
            })?,
        }),
        None => None,
    };
    let ca = match &registry.ca_secret_ref {
        Some(reference) => Some(
            secrets
                .get(reference)
                .map_err(|e| ClusterError::Secret(format!("spec.schemaRegistry.caSecretRef: {e}")))?,
        ),
        None => None,
    };
    RegistryClient::new(&registry.url, auth, ca.as_deref(), timeout)
        .map(Some)
        .map_err(|e| ClusterError::InvalidConnection {
            cluster: cluster.name_any(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str) -> KafkaCluster {
        let mut c = KafkaCluster::new(name, tributary_api::KafkaClusterSpec::default());
        c.metadata.namespace = Some("team-a".into());
        c
    }

    #[test]
    fn default_cluster_is_the_only_one() {
        let chosen = choose_default("team-a", vec![cluster("main")]).unwrap();
        assert_eq!(chosen.name_any(), "main");
    }

    #[test]
    fn no_cluster_or_several_is_reported_with_names() {
        let none = choose_default("team-a", vec![]).unwrap_err();
        assert!(none.is_transient());
        assert_eq!(
            none.to_string(),
            "spec.clusterRef is not set and namespace team-a has no KafkaCluster"
        );

        let several = choose_default("team-a", vec![cluster("b"), cluster("a")]).unwrap_err();
        assert!(!several.is_transient());
        assert_eq!(
            several.to_string(),
            "spec.clusterRef is not set and namespace team-a has 2 KafkaClusters (a, b); set spec.clusterRef.name"
        );
    }

    #[test]
    fn secret_values_never_print_their_values() {
        let mut secrets = SecretValues::default();
        secrets
            .values
            .insert(("creds".into(), "password".into()), "hunter2".into());
        assert!(!format!("{secrets:?}").contains("hunter2"));
        let reference = SecretKeyRef {
            name: "creds".into(),
            key: "password".into(),
        };
        assert_eq!(secrets.get(&reference).unwrap(), "hunter2");
        let missing = SecretKeyRef {
            name: "other".into(),
            key: "password".into(),
        };
        assert!(secrets.get(&missing).unwrap_err().contains("other"));
    }
}
