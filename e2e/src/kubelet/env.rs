//! A container's environment, built as kubelet builds it: `envFrom` sources
//! first, then `env` entries in order (later ones win), `$(VAR)` references
//! expanded against the variables defined before them.
//!
//! Values from Secrets are bytes and stay bytes (`OsString`), exactly what
//! the process would see in a real pod. Errors name the object and key like
//! kubelet's `CreateContainerConfigError` messages, and never a value.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStringExt as _;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVarSource, Pod, Secret};
use kube::{Api, Client};

/// The value of `status.podIP`/`status.hostIP`: every process shares the
/// host's loopback network.
pub(crate) const POD_IP: &str = "127.0.0.1";

/// Why a container's environment cannot be built (the container waits with
/// reason `CreateContainerConfigError`, as in kubelet, and is retried).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{name}\" not found")]
    ConfigMapNotFound { name: String },
    #[error("secret \"{name}\" not found")]
    SecretNotFound { name: String },
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("env {variable}: fieldRef {path} is not supported (allowed: {allowed})")]
    UnsupportedField {
        variable: String,
        path: String,
        allowed: &'static str,
    },
    #[error(
        "env {variable}: valueFrom has no source set (allowed: configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef)"
    )]
    EmptySource { variable: String },
    #[error("reading {kind} {name}: {source}")]
    Api {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

const FIELD_PATHS: &str = "metadata.name, metadata.namespace, metadata.uid, metadata.labels['<key>'], \
                           metadata.annotations['<key>'], spec.nodeName, spec.serviceAccountName, \
                           status.podIP, status.podIPs, status.hostIP, status.hostIPs";

/// Fetches each ConfigMap and Secret once per environment build.
struct Objects<'a> {
    client: &'a Client,
    namespace: &'a str,
    config_maps: BTreeMap<String, Option<ConfigMap>>,
    secrets: BTreeMap<String, Option<Secret>>,
}

impl Objects<'_> {
    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, EnvError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), self.namespace);
            let found = api.get_opt(name).await.map_err(|source| EnvError::Api {
                kind: "configmap",
                name: name.to_owned(),
                source,
            })?;
            self.config_maps.insert(name.to_owned(), found);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, EnvError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
            let found = api.get_opt(name).await.map_err(|source| EnvError::Api {
                kind: "secret",
                name: name.to_owned(),
                source,
            })?;
            self.secrets.insert(name.to_owned(), found);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// Builds the variables the pod spec gives `container`, on top of `base`
/// (variables the runtime defines first, which the spec may override and
/// reference with `$(NAME)`).
pub(crate) async fn container_env(
    client: &Client,
    pod: &Pod,
    container: &Container,
    base: Vec<(String, OsString)>,
) -> Result<BTreeMap<String, OsString>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut objects = Objects {
        client,
        namespace,
        config_maps: BTreeMap::new(),
        secrets: BTreeMap::new(),
    };
    let mut env: BTreeMap<String, OsString> = base.into_iter().collect();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or("");
        if let Some(reference) = &source.config_map_ref {
            let name = reference.name.as_str();
            match objects.config_map(name).await? {
                Some(config_map) => {
                    for (key, value) in config_map.data.iter().flatten() {
                        insert_valid(&mut env, format!("{prefix}{key}"), value.clone().into());
                    }
                }
                None if reference.optional == Some(true) => {}
                None => {
                    return Err(EnvError::ConfigMapNotFound {
                        name: name.to_owned(),
                    });
                }
            }
        }
        if let Some(reference) = &source.secret_ref {
            let name = reference.name.as_str();
            match objects.secret(name).await? {
                Some(secret) => {
                    for (key, value) in secret.data.iter().flatten() {
                        insert_valid(
                            &mut env,
                            format!("{prefix}{key}"),
                            OsString::from_vec(value.0.clone()),
                        );
                    }
                }
                None if reference.optional == Some(true) => {}
                None => {
                    return Err(EnvError::SecretNotFound {
                        name: name.to_owned(),
                    });
                }
            }
        }
    }
    for variable in container.env.iter().flatten() {
        let value = match &variable.value_from {
            None => Some(
                expand(variable.value.as_deref().unwrap_or(""), |name| {
                    env.get(name).map(|v| v.to_string_lossy().into_owned())
                })
                .into(),
            ),
            Some(source) => from_source(&mut objects, pod, container, &variable.name, source).await?,
        };
        if let Some(value) = value {
            env.insert(variable.name.clone(), value);
        }
    }
    Ok(env)
}

/// `envFrom` skips keys that are not valid variable names (kubelet records
/// an event for them); so does this.
fn insert_valid(env: &mut BTreeMap<String, OsString>, name: String, value: OsString) {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if valid {
        env.insert(name, value);
    } else {
        tracing::debug!(variable = %name, "envFrom key is not a valid variable name; skipped");
    }
}

async fn from_source(
    objects: &mut Objects<'_>,
    pod: &Pod,
    container: &Container,
    variable: &str,
    source: &EnvVarSource,
) -> Result<Option<OsString>, EnvError> {
    let namespace = objects.namespace.to_owned();
    if let Some(selector) = &source.config_map_key_ref {
        let optional = selector.optional == Some(true);
        return match objects.config_map(&selector.name).await? {
            None if optional => Ok(None),
            None => Err(EnvError::ConfigMapNotFound {
                name: selector.name.clone(),
            }),
            Some(config_map) => {
                let value = config_map
                    .data
                    .as_ref()
                    .and_then(|data| data.get(&selector.key))
                    .map(|value| OsString::from(value.clone()))
                    .or_else(|| {
                        config_map
                            .binary_data
                            .as_ref()
                            .and_then(|data| data.get(&selector.key))
                            .map(|value| OsString::from_vec(value.0.clone()))
                    });
                match value {
                    Some(value) => Ok(Some(value)),
                    None if optional => Ok(None),
                    None => Err(EnvError::KeyNotFound {
                        kind: "ConfigMap",
                        namespace,
                        name: selector.name.clone(),
                        key: selector.key.clone(),
                    }),
                }
            }
        };
    }
    if let Some(selector) = &source.secret_key_ref {
        let optional = selector.optional == Some(true);
        return match objects.secret(&selector.name).await? {
            None if optional => Ok(None),
            None => Err(EnvError::SecretNotFound {
                name: selector.name.clone(),
            }),
            Some(secret) => match secret.data.as_ref().and_then(|data| data.get(&selector.key)) {
                Some(value) => Ok(Some(OsString::from_vec(value.0.clone()))),
                None if optional => Ok(None),
                None => Err(EnvError::KeyNotFound {
                    kind: "Secret",
                    namespace,
                    name: selector.name.clone(),
                    key: selector.key.clone(),
                }),
            },
        };
    }
    if let Some(field) = &source.field_ref {
        return field_value(pod, &field.field_path)
            .map(|value| Some(value.into()))
            .ok_or_else(|| EnvError::UnsupportedField {
                variable: variable.to_owned(),
                path: field.field_path.clone(),
                allowed: FIELD_PATHS,
            });
    }
    if let Some(resource) = &source.resource_field_ref {
        return Ok(Some(resource_value(container, &resource.resource).into()));
    }
    Err(EnvError::EmptySource {
        variable: variable.to_owned(),
    })
}

/// The downward API's pod fields (also used by downwardAPI volumes).
pub(crate) fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = path
            .strip_prefix(prefix)?
            .strip_prefix("['")
            .and_then(|rest| rest.strip_suffix("']"))?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => Some(format_map(meta.labels.as_ref())),
        "metadata.annotations" => Some(format_map(meta.annotations.as_ref())),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" | "status.podIPs" | "status.hostIP" | "status.hostIPs" => Some(POD_IP.to_owned()),
        _ => keyed("metadata.labels", meta.labels.as_ref())
            .or_else(|| keyed("metadata.annotations", meta.annotations.as_ref())),
    }
}

/// `key="value"` lines, sorted: the downward API's format for label and
/// annotation maps.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .fold(String::new(), |mut out, (key, value)| {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{key}={value:?}");
            out
        })
}

/// `resourceFieldRef` without a divisor: the container's quantity as written,
/// or the fake node's capacity for an unset limit (kubelet uses the node's
/// allocatable there too).
fn resource_value(container: &Container, resource: &str) -> String {
    let resources = container.resources.as_ref();
    let (map, name) = match resource.split_once('.') {
        Some(("limits", name)) => (resources.and_then(|r| r.limits.as_ref()), name),
        Some(("requests", name)) => (resources.and_then(|r| r.requests.as_ref()), name),
        _ => (None, resource),
    };
    let unset = if name == "cpu" { "32" } else { "0" };
    map.and_then(|m| m.get(name))
        .map_or_else(|| unset.to_owned(), |q| q.0.clone())
}

/// Expands `$(NAME)` references in `raw` with `lookup`; `$$` is a literal
/// `$`, and a reference to an unknown variable stays as written (kubelet's
/// rules, `third_party/forked/golang/expansion`).
pub(crate) fn expand(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(position) = rest.find('$') {
        out.push_str(&rest[..position]);
        let after = &rest[position + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            let Some(end) = inner.find(')') else {
                out.push_str("$(");
                rest = inner;
                continue;
            };
            let name = &inner[..end];
            if let Some(value) = lookup(name) {
                out.push_str(&value);
            } else {
                out.push_str("$(");
                out.push_str(name);
                out.push(')');
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubelet_rules() {
        let lookup = |name: &str| (name == "A").then(|| "x".to_owned());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", lookup), "x-$(B)-$(A)-$");
        assert_eq!(expand("pre$(A", lookup), "pre$(A");
        assert_eq!(expand("no refs", lookup), "no refs");
    }

    #[test]
    fn downward_api_fields() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.labels = Some(BTreeMap::from([("app".into(), "w".into())]));
        assert_eq!(field_value(&pod, "metadata.name").as_deref(), Some("p"));
        assert_eq!(field_value(&pod, "metadata.labels['app']").as_deref(), Some("w"));
        assert_eq!(
            field_value(&pod, "metadata.labels").as_deref(),
            Some("app=\"w\"\n")
        );
        assert_eq!(field_value(&pod, "status.podIP").as_deref(), Some(POD_IP));
        assert_eq!(field_value(&pod, "spec.containers"), None);
    }
}
