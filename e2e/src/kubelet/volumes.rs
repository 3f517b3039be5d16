//! Pod volumes as host directories, written like kubelet writes them.
//!
//! Each volume is a directory `<pod dir>/volumes/<name>`; containers see it
//! bind-mounted at their `mountPath`. ConfigMap, Secret, projected and
//! downwardAPI volumes use kubelet's atomic-writer layout: the files live in
//! a timestamped directory `..<time>`, `..data` is a symlink to it and every
//! top-level name is a symlink `<name> -> ..data/<name>`. An update writes a
//! new timestamped directory and renames a fresh `..data` symlink over the
//! old one, so a reader sees either the old or the new set of files, never a
//! mix — which is what lets programs watch `..data` for changes.
//!
//! [`PodVolumes::sync`] is called periodically: it fetches the sources again
//! and rewrites a volume only when its content changed. Service-account
//! tokens come from the `TokenRequest` API, bound to the pod (deleting the pod
//! invalidates them), and are renewed at 80 % of their lifetime as kubelet
//! does.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, ServiceAccountTokenProjection,
    Volume,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

use super::env::field_value;

/// Mode of files without an explicit `mode`/`defaultMode` (kubelet's 0644).
const DEFAULT_MODE: u32 = 0o644;
/// Token lifetime when the projection names none (kubelet's 1 h 7 s).
const DEFAULT_TOKEN_SECONDS: i64 = 3607;

/// Why a volume cannot be prepared (the pod waits in `ContainerCreating`,
/// as with kubelet's `FailedMount`, and is retried).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume}: configmap \"{name}\" not found")]
    ConfigMapNotFound { volume: String, name: String },
    #[error("volume {volume}: secret \"{name}\" not found")]
    SecretNotFound { volume: String, name: String },
    #[error("volume {volume}: configuration error: key {key} not found in {kind} {name}")]
    KeyNotFound {
        volume: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error(
        "volume {volume}: type {kind} is not supported by the kubelet harness (allowed: configMap, secret, projected, downwardAPI, emptyDir, hostPath)"
    )]
    Unsupported { volume: String, kind: String },
    #[error("volume {volume}: {what} is not supported (allowed: {allowed})")]
    UnsupportedField {
        volume: String,
        what: String,
        allowed: &'static str,
    },
    #[error("volume {volume}: requesting a token for service account {service_account}: {source}")]
    Token {
        volume: String,
        service_account: String,
        #[source]
        source: kube::Error,
    },
    #[error("volume {volume}: the TokenRequest for service account {service_account} returned no token")]
    TokenMissing { volume: String, service_account: String },
    #[error("volume {volume}: reading {kind} {name}: {source}")]
    Api {
        volume: String,
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("volume {volume}: writing {path}: {source}")]
    Io {
        volume: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Files of one volume: relative path → (content, mode).
type Payload = BTreeMap<String, (Vec<u8>, u32)>;

#[derive(Debug)]
enum Source {
    /// Written by the atomic writer from API objects.
    Projected { sources: Vec<Projection> },
    /// A plain directory the process owns.
    EmptyDir,
    /// A host path, bound as is.
    HostPath(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectKind {
    ConfigMap,
    Secret,
}

/// A ConfigMap or Secret whose keys become files.
#[derive(Debug)]
struct KeyedObject {
    kind: ObjectKind,
    name: String,
    items: Option<Vec<KeyToPath>>,
    optional: bool,
    mode: u32,
}

#[derive(Debug)]
enum Projection {
    Object(KeyedObject),
    DownwardApi {
        items: Vec<DownwardAPIVolumeFile>,
        mode: u32,
    },
    Token {
        projection: ServiceAccountTokenProjection,
        mode: u32,
        current: Option<IssuedToken>,
    },
}

#[derive(Debug, Clone)]
struct IssuedToken {
    token: String,
    issued: Timestamp,
    expires: Timestamp,
}

impl IssuedToken {
    /// kubelet renews a projected token at 80 % of its lifetime.
    fn needs_renewal(&self, now: Timestamp) -> bool {
        let lifetime = self.expires.duration_since(self.issued);
        now >= self.issued + lifetime.mul_f64(0.8).max(SignedDuration::ZERO)
    }
}

#[derive(Debug)]
struct VolumeState {
    name: String,
    dir: PathBuf,
    source: Source,
    written: Option<Payload>,
}

/// The volumes of one pod.
#[derive(Debug)]
pub(crate) struct PodVolumes {
    volumes: Vec<VolumeState>,
}

impl PodVolumes {
    /// Plans the pod's volumes under `root` (nothing is fetched yet).
    pub(crate) fn new(root: &Path, pod: &Pod) -> Result<Self, VolumeError> {
        let volumes = pod
            .spec
            .iter()
            .flat_map(|spec| spec.volumes.iter().flatten())
            .map(|volume| {
                Ok(VolumeState {
                    name: volume.name.clone(),
                    dir: root.join(&volume.name),
                    source: plan(volume)?,
                    written: None,
                })
            })
            .collect::<Result<_, VolumeError>>()?;
        Ok(Self { volumes })
    }

    /// The host directory to bind for volume `name`.
    pub(crate) fn host_path(&self, name: &str) -> Option<&Path> {
        self.volumes
            .iter()
            .find(|v| v.name == name)
            .map(|v| match &v.source {
                Source::HostPath(path) => path.as_path(),
                _ => v.dir.as_path(),
            })
    }

    /// Fetches every source and rewrites the volumes whose content changed;
    /// returns the names of the volumes written.
    pub(crate) async fn sync(&mut self, client: &Client, pod: &Pod) -> Result<Vec<String>, VolumeError> {
        let mut written = Vec::new();
        for volume in &mut self.volumes {
            let io_error = |path: &Path, source| VolumeError::Io {
                volume: volume.name.clone(),
                path: path.to_owned(),
                source,
            };
            match &mut volume.source {
                Source::HostPath(_) => {}
                Source::EmptyDir => {
                    if volume.written.is_none() {
                        std::fs::create_dir_all(&volume.dir).map_err(|e| io_error(&volume.dir, e))?;
                        volume.written = Some(Payload::new());
                    }
                }
                Source::Projected { sources } => {
                    let payload = collect(client, pod, &volume.name, sources).await?;
                    if volume.written.as_ref() != Some(&payload) {
                        write_atomic(&volume.dir, &payload).map_err(|(path, e)| io_error(&path, e))?;
                        volume.written = Some(payload);
                        written.push(volume.name.clone());
                    }
                }
            }
        }
        Ok(written)
    }
}

fn mode(value: Option<i32>, default: u32) -> u32 {
    value.and_then(|m| u32::try_from(m).ok()).unwrap_or(default) & 0o7777
}

fn plan(volume: &Volume) -> Result<Source, VolumeError> {
    if let Some(config_map) = &volume.config_map {
        return Ok(Source::Projected {
            sources: vec![Projection::Object(KeyedObject {
                kind: ObjectKind::ConfigMap,
                name: config_map.name.clone(),
                items: config_map.items.clone(),
                optional: config_map.optional == Some(true),
                mode: mode(config_map.default_mode, DEFAULT_MODE),
            })],
        });
    }
    if let Some(secret) = &volume.secret {
        return Ok(Source::Projected {
            sources: vec![Projection::Object(KeyedObject {
                kind: ObjectKind::Secret,
                name: secret.secret_name.clone().unwrap_or_default(),
                items: secret.items.clone(),
                optional: secret.optional == Some(true),
                mode: mode(secret.default_mode, DEFAULT_MODE),
            })],
        });
    }
    if let Some(downward) = &volume.downward_api {
        return Ok(Source::Projected {
            sources: vec![Projection::DownwardApi {
                items: downward.items.clone().unwrap_or_default(),
                mode: mode(downward.default_mode, DEFAULT_MODE),
            }],
        });
    }
    if let Some(projected) = &volume.projected {
        let default = mode(projected.default_mode, DEFAULT_MODE);
        let mut sources = Vec::new();
        for source in projected.sources.iter().flatten() {
            if let Some(c) = &source.config_map {
                sources.push(Projection::Object(KeyedObject {
                    kind: ObjectKind::ConfigMap,
                    name: c.name.clone(),
                    items: c.items.clone(),
                    optional: c.optional == Some(true),
                    mode: default,
                }));
            } else if let Some(s) = &source.secret {
                sources.push(Projection::Object(KeyedObject {
                    kind: ObjectKind::Secret,
                    name: s.name.clone(),
                    items: s.items.clone(),
                    optional: s.optional == Some(true),
                    mode: default,
                }));
            } else if let Some(d) = &source.downward_api {
                sources.push(Projection::DownwardApi {
                    items: d.items.clone().unwrap_or_default(),
                    mode: default,
                });
            } else if let Some(t) = &source.service_account_token {
                sources.push(Projection::Token {
                    projection: t.clone(),
                    mode: default,
                    current: None,
                });
            } else {
                return Err(VolumeError::UnsupportedField {
                    volume: volume.name.clone(),
                    what:
                        "a projected source other than configMap, secret, downwardAPI or serviceAccountToken"
                            .to_owned(),
                    allowed: "configMap, secret, downwardAPI, serviceAccountToken",
                });
            }
        }
        return Ok(Source::Projected { sources });
    }
    if volume.empty_dir.is_some() {
        return Ok(Source::EmptyDir);
    }
    if let Some(host) = &volume.host_path {
        return Ok(Source::HostPath(PathBuf::from(&host.path)));
    }
    let kind = serde_json::to_value(volume)
        .ok()
        .and_then(|v| {
            v.as_object()
                .and_then(|o| o.keys().find(|k| k.as_str() != "name").cloned())
        })
        .unwrap_or_else(|| "(none)".to_owned());
    Err(VolumeError::Unsupported {
        volume: volume.name.clone(),
        kind,
    })
}

/// The object's data (`None`: it does not exist).
async fn object_data(
    client: &Client,
    namespace: &str,
    volume: &str,
    object: &KeyedObject,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
    let api_error = |source| VolumeError::Api {
        volume: volume.to_owned(),
        kind: if object.kind == ObjectKind::ConfigMap {
            "configmap"
        } else {
            "secret"
        },
        name: object.name.clone(),
        source,
    };
    Ok(match object.kind {
        ObjectKind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            api.get_opt(&object.name)
                .await
                .map_err(api_error)?
                .map(|config_map| {
                    let text = config_map
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()));
                    let binary = config_map
                        .binary_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0));
                    text.chain(binary).collect()
                })
        }
        ObjectKind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            api.get_opt(&object.name).await.map_err(api_error)?.map(|secret| {
                secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect()
            })
        }
    })
}

/// Adds the object's keys (those of `items` when set) to `payload`.
async fn object_files(
    client: &Client,
    namespace: &str,
    volume: &str,
    object: &KeyedObject,
    payload: &mut Payload,
) -> Result<(), VolumeError> {
    let Some(data) = object_data(client, namespace, volume, object).await? else {
        if object.optional {
            return Ok(());
        }
        return Err(match object.kind {
            ObjectKind::ConfigMap => VolumeError::ConfigMapNotFound {
                volume: volume.to_owned(),
                name: object.name.clone(),
            },
            ObjectKind::Secret => VolumeError::SecretNotFound {
                volume: volume.to_owned(),
                name: object.name.clone(),
            },
        });
    };
    let Some(items) = &object.items else {
        for (key, value) in data {
            payload.insert(key, (value, object.mode));
        }
        return Ok(());
    };
    for item in items {
        match data.get(&item.key) {
            Some(value) => {
                payload.insert(item.path.clone(), (value.clone(), mode(item.mode, object.mode)));
            }
            None if object.optional => {}
            None => {
                return Err(VolumeError::KeyNotFound {
                    volume: volume.to_owned(),
                    kind: if object.kind == ObjectKind::ConfigMap {
                        "ConfigMap"
                    } else {
                        "Secret"
                    },
                    name: object.name.clone(),
                    key: item.key.clone(),
                });
            }
        }
    }
    Ok(())
}

async fn collect(
    client: &Client,
    pod: &Pod,
    volume: &str,
    sources: &mut [Projection],
) -> Result<Payload, VolumeError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut payload = Payload::new();
    for source in sources {
        match source {
            Projection::Object(object) => {
                object_files(client, namespace, volume, object, &mut payload).await?;
            }
            Projection::DownwardApi { items, mode: default } => {
                for item in items.iter() {
                    let Some(field) = &item.field_ref else {
                        return Err(VolumeError::UnsupportedField {
                            volume: volume.to_owned(),
                            what: format!("downwardAPI item {} without fieldRef", item.path),
                            allowed: "fieldRef",
                        });
                    };
                    let value = field_value(pod, &field.field_path).ok_or_else(|| {
                        VolumeError::UnsupportedField {
                            volume: volume.to_owned(),
                            what: format!("fieldRef {}", field.field_path),
                            allowed: "metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations",
                        }
                    })?;
                    payload.insert(item.path.clone(), (value.into_bytes(), mode(item.mode, *default)));
                }
            }
            Projection::Token {
                projection,
                mode,
                current,
            } => {
                let now = Timestamp::now();
                let token = match current {
                    Some(token) if !token.needs_renewal(now) => token.clone(),
                    _ => {
                        let issued = request_token(client, pod, volume, projection).await?;
                        *current = Some(issued.clone());
                        issued
                    }
                };
                payload.insert(projection.path.clone(), (token.token.into_bytes(), *mode));
            }
        }
    }
    Ok(payload)
}

/// A token for the pod's service account, bound to the pod, via the
/// `TokenRequest` API (what kubelet does for projected tokens).
async fn request_token(
    client: &Client,
    pod: &Pod,
    volume: &str,
    projection: &ServiceAccountTokenProjection,
) -> Result<IssuedToken, VolumeError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".to_owned());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: projection.audience.iter().cloned().collect(),
            expiration_seconds: Some(projection.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let issued = Timestamp::now();
    let response: TokenRequest = api
        .create_subresource("token", &service_account, &PostParams::default(), &request)
        .await
        .map_err(|source| VolumeError::Token {
            volume: volume.to_owned(),
            service_account: service_account.clone(),
            source,
        })?;
    let Some(status) = response.status else {
        return Err(VolumeError::TokenMissing {
            volume: volume.to_owned(),
            service_account,
        });
    };
    Ok(IssuedToken {
        token: status.token,
        issued,
        expires: status.expiration_timestamp.0,
    })
}

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Kubelet's atomic writer: a new timestamped directory, `..data` swapped by
/// rename, user-visible names as symlinks through `..data`.
fn write_atomic(dir: &Path, payload: &Payload) -> Result<(), (PathBuf, std::io::Error)> {
    let at = |path: &Path| {
        let path = path.to_owned();
        move |e| (path, e)
    };
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let stamp = format!(
        "..{}.{}",
        Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f"),
        GENERATION.fetch_add(1, Ordering::Relaxed)
    );
    let data_dir = dir.join(&stamp);
    std::fs::create_dir(&data_dir).map_err(at(&data_dir))?;
    for (relative, (content, file_mode)) in payload {
        let path = data_dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(at(parent))?;
        }
        std::fs::write(&path, content).map_err(at(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*file_mode)).map_err(at(&path))?;
    }
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).map_err(at(&data_dir))?;
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).map_err(at(&tmp))?;
    let data = dir.join("..data");
    std::fs::rename(&tmp, &data).map_err(at(&data))?;

    let visible: BTreeSet<&str> = payload
        .keys()
        .filter_map(|relative| relative.split('/').next())
        .collect();
    for name in &visible {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).map_err(at(&link))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(at(dir))? {
        let entry = entry.map_err(at(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name == "..data" || name == stamp {
            continue;
        }
        if name.starts_with("..") {
            std::fs::remove_dir_all(&path).map_err(at(&path))?;
        } else if !visible.contains(name.as_str()) {
            std::fs::remove_file(&path).map_err(at(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(name)).ok()
    }

    #[test]
    fn atomic_writer_swaps_data_and_prunes_removed_keys() {
        let dir = std::env::temp_dir().join(format!("kubelet-volume-{}", uuid::Uuid::new_v4().simple()));
        let first = Payload::from([
            ("a".to_owned(), (b"1".to_vec(), 0o644)),
            ("nested/b".to_owned(), (b"2".to_vec(), 0o600)),
        ]);
        write_atomic(&dir, &first).unwrap();
        assert_eq!(read(&dir, "a").as_deref(), Some("1"));
        assert_eq!(read(&dir, "nested/b").as_deref(), Some("2"));
        let mode = std::fs::metadata(dir.join("nested/b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let before = std::fs::read_link(dir.join("..data")).unwrap();

        let second = Payload::from([("a".to_owned(), (b"changed".to_vec(), 0o644))]);
        write_atomic(&dir, &second).unwrap();
        assert_eq!(read(&dir, "a").as_deref(), Some("changed"));
        assert!(
            std::fs::symlink_metadata(dir.join("nested")).is_err(),
            "removed key pruned"
        );
        let after = std::fs::read_link(dir.join("..data")).unwrap();
        assert_ne!(before, after);
        assert!(!dir.join(before).exists(), "old data directory removed");
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            PathBuf::from("..data/a"),
            "user-visible names go through ..data"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_renewal_at_eighty_percent() {
        let issued = Timestamp::from_second(1_000_000).unwrap();
        let token = IssuedToken {
            token: String::new(),
            issued,
            expires: issued + SignedDuration::from_secs(1000),
        };
        assert!(!token.needs_renewal(issued + SignedDuration::from_secs(799)));
        assert!(token.needs_renewal(issued + SignedDuration::from_secs(800)));
    }
}
