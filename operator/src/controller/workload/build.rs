//! The Kubernetes objects a Connector or Stream runs as, built from its spec
//! alone (pure: no client, no clock), so every field is unit-tested.
//!
//! | object | name | holds |
//! |---|---|---|
//! | ConfigMap | `<name>-<kind>` | `config.yaml`: the KafkaCluster and the resource, Secret *references* only |
//! | ServiceAccount | `<name>-<kind>` | nothing: workers never call the Kubernetes API (no token mounted) |
//! | Deployment | `<name>-<kind>` | the workers: config mounted at `/etc/tributary`, Secret values as environment |
//!
//! A hash of the config (without `spec.state`, which workers follow live)
//! and of the referenced Secrets' versions sits in the pod template, so an
//! edit of the spec or a rotated Secret rolls the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, ServiceAccount, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};
use tributary_api::{PodTemplate, SecretKeyRef};

/// Where the worker config is mounted.
pub const CONFIG_DIR: &str = "/etc/tributary";
/// The key (file name) of the worker config in the ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";
/// Pod template annotation holding the config hash.
pub const CONFIG_HASH_ANNOTATION: &str = "tributary.dev/config-hash";
/// Port of the worker's health and metrics endpoint.
pub const HTTP_PORT: i32 = 8080;
/// The UID workers run as (distroless `nonroot`).
pub const RUN_AS_USER: i64 = 65_532;

/// Labels every child carries; the first three select the worker pods.
pub fn selector_labels(kind: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "tributary-worker".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), name.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            kind.to_ascii_lowercase(),
        ),
    ])
}

/// Labels of children: the selector plus `managed-by` and the owner's uid
/// (which orphan pruning lists by).
pub fn child_labels(kind: &str, name: &str, uid: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(kind, name);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        crate::FIELD_MANAGER.to_owned(),
    );
    labels.insert(OWNER_UID_LABEL.to_owned(), uid.to_owned());
    labels
}

/// Label naming the uid of the resource that owns a child.
pub const OWNER_UID_LABEL: &str = "tributary.dev/owner-uid";

/// The label selector string of the worker pods (for `status.selector`).
pub fn selector_string(kind: &str, name: &str) -> String {
    selector_labels(kind, name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Name of every child of `name`: `<name>-<kind>`.
pub fn child_name(kind: &str, name: &str) -> String {
    format!("{name}-{}", kind.to_ascii_lowercase())
}

/// Everything the builders need, gathered by the reconcile.
#[derive(Clone, Debug)]
pub struct WorkloadInput {
    /// `Connector` or `Stream`.
    pub kind: &'static str,
    /// The resource's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its uid (owner references).
    pub uid: String,
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// The worker config file (multi-document YAML).
    pub config_yaml: String,
    /// The config as far as it restarts workers (without `spec.state`).
    pub config_for_hash: String,
    /// Secret references the worker resolves from its environment.
    pub secret_refs: Vec<SecretKeyRef>,
    /// `<secret name>@<resourceVersion>` of every referenced Secret (rotation rolls the pods).
    pub secret_versions: Vec<String>,
    /// Workers wanted (0 when Stopped).
    pub replicas: i32,
    /// Pod overrides.
    pub template: Option<PodTemplate>,
    /// The image when the template names none.
    pub default_image: String,
    /// Replace pods instead of rolling them (a CDC source must never run twice).
    pub recreate: bool,
    /// Value of the restart annotation, copied to the pods so a change rolls them.
    pub restarted_at: Option<String>,
}

/// The three children of a workload.
#[derive(Clone, Debug)]
pub struct Children {
    /// Worker config.
    pub config_map: ConfigMap,
    /// Identity of the worker pods.
    pub service_account: ServiceAccount,
    /// The workers.
    pub deployment: Deployment,
}

/// Builds the children of `input`.
pub fn build(input: &WorkloadInput) -> Children {
    Children {
        config_map: config_map(input),
        service_account: service_account(input),
        deployment: deployment(input),
    }
}

fn metadata(input: &WorkloadInput) -> ObjectMeta {
    ObjectMeta {
        name: Some(child_name(input.kind, &input.name)),
        namespace: Some(input.namespace.clone()),
        labels: Some(child_labels(input.kind, &input.name, &input.uid)),
        owner_references: Some(vec![OwnerReference {
            api_version: input.api_version.clone(),
            kind: input.kind.to_owned(),
            name: input.name.clone(),
            uid: input.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..ObjectMeta::default()
    }
}

fn config_map(input: &WorkloadInput) -> ConfigMap {
    ConfigMap {
        metadata: metadata(input),
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_owned(),
            input.config_yaml.clone(),
        )])),
        ..ConfigMap::default()
    }
}

fn service_account(input: &WorkloadInput) -> ServiceAccount {
    ServiceAccount {
        metadata: metadata(input),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// The hash that rolls the pods when it changes.
pub fn config_hash(input: &WorkloadInput) -> String {
    let mut hasher = Sha256::new();
    hasher.update(input.config_for_hash.as_bytes());
    for version in &input.secret_versions {
        hasher.update(b"\n");
        hasher.update(version.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(12)
        .fold(String::new(), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

fn env(input: &WorkloadInput) -> Vec<EnvVar> {
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.to_owned(),
            ..ObjectFieldSelector::default()
        }),
        ..EnvVarSource::default()
    };
    let mut env = vec![
        EnvVar {
            name: "HOSTNAME".to_owned(),
            value_from: Some(field("metadata.name")),
            ..EnvVar::default()
        },
        EnvVar {
            name: "TRIBUTARY_HTTP_ADDR".to_owned(),
            value: Some(format!("0.0.0.0:{HTTP_PORT}")),
            ..EnvVar::default()
        },
        EnvVar {
            name: "TRIBUTARY_LOG_JSON".to_owned(),
            value: Some("true".to_owned()),
            ..EnvVar::default()
        },
    ];
    let mut refs = input.secret_refs.clone();
    refs.sort_by(|a, b| (&a.name, &a.key).cmp(&(&b.name, &b.key)));
    refs.dedup();
    env.extend(refs.into_iter().map(|reference| EnvVar {
        name: reference.env_var(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: reference.name,
                key: reference.key,
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }));
    env
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("100m".to_owned())),
            ("memory".to_owned(), Quantity("128Mi".to_owned())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity("512Mi".to_owned()),
        )])),
        ..ResourceRequirements::default()
    }
}

fn probe(path: &str, initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

fn container(input: &WorkloadInput, template: &PodTemplate) -> Container {
    Container {
        name: "worker".to_owned(),
        image: Some(
            template
                .image
                .clone()
                .unwrap_or_else(|| input.default_image.clone()),
        ),
        image_pull_policy: template.image_pull_policy.map(|p| p.as_str().to_owned()),
        args: Some(vec![
            "run".to_owned(),
            "-f".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_KEY}"),
        ]),
        env: Some(env(input)),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: HTTP_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        resources: Some(template.resources.clone().unwrap_or_else(default_resources)),
        liveness_probe: Some(probe("/healthz", 10)),
        readiness_probe: Some(probe("/readyz", 2)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".to_owned(),
                mount_path: CONFIG_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

fn deployment(input: &WorkloadInput) -> Deployment {
    let template = input.template.clone().unwrap_or_default();
    let child = child_name(input.kind, &input.name);
    let mut pod_labels = template.labels.clone();
    pod_labels.extend(child_labels(input.kind, &input.name, &input.uid));
    let mut annotations = template.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash(input));
    if let Some(at) = &input.restarted_at {
        annotations.insert(tributary_api::workload::RESTART_ANNOTATION.to_owned(), at.clone());
    }
    let container = container(input, &template);
    let strategy = if input.recreate {
        DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            ..DeploymentStrategy::default()
        }
    } else {
        // Never more workers than asked for: a new pod starts once an old
        // one has left the consumer group.
        DeploymentStrategy {
            type_: Some("RollingUpdate".to_owned()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(0)),
                max_unavailable: Some(IntOrString::Int(1)),
            }),
        }
    };
    Deployment {
        metadata: metadata(input),
        spec: Some(DeploymentSpec {
            replicas: Some(input.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(input.kind, &input.name)),
                ..LabelSelector::default()
            },
            strategy: Some(strategy),
            revision_history_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(child.clone()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(30),
                    containers: vec![container],
                    node_selector: (!template.node_selector.is_empty()).then_some(template.node_selector),
                    tolerations: (!template.tolerations.is_empty()).then_some(template.tolerations),
                    affinity: template.affinity,
                    priority_class_name: template.priority_class_name,
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS_USER),
                        run_as_group: Some(RUN_AS_USER),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    volumes: Some(vec![
                        Volume {
                            name: "config".to_owned(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: child,
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        Volume {
                            name: "tmp".to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                size_limit: Some(Quantity("64Mi".to_owned())),
                                ..EmptyDirVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_api::workload::PullPolicy;

    fn input() -> WorkloadInput {
        WorkloadInput {
            kind: "Connector",
            name: "ratings-search".to_owned(),
            namespace: "shop".to_owned(),
            uid: "uid-1".to_owned(),
            api_version: "tributary.dev/v1alpha1".to_owned(),
            config_yaml: "kind: Connector\n".to_owned(),
            config_for_hash: "kind: Connector\n".to_owned(),
            secret_refs: vec![
                SecretKeyRef {
                    name: "os".to_owned(),
                    key: "password".to_owned(),
                },
                SecretKeyRef {
                    name: "os".to_owned(),
                    key: "password".to_owned(),
                },
            ],
            secret_versions: vec!["os@1".to_owned()],
            replicas: 2,
            template: None,
            default_image: "ghcr.io/tributary-dev/tributary-worker:0.1.0".to_owned(),
            recreate: false,
            restarted_at: None,
        }
    }

    fn pod_spec(children: &Children) -> PodSpec {
        children.deployment.spec.clone().unwrap().template.spec.unwrap()
    }

    #[test]
    fn secrets_reach_workers_only_through_secret_key_refs() {
        let children = build(&input());
        let env = pod_spec(&children).containers[0].env.clone().unwrap();
        let secret_env: Vec<_> = env
            .iter()
            .filter(|e| e.name.starts_with("TRIBUTARY_SECRET_"))
            .collect();
        assert_eq!(secret_env.len(), 1, "duplicates collapse: {secret_env:?}");
        assert_eq!(secret_env[0].name, "TRIBUTARY_SECRET_OS_PASSWORD");
        assert!(secret_env[0].value.is_none());
        let selector = secret_env[0].value_from.clone().unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (selector.name.as_str(), selector.key.as_str()),
            ("os", "password")
        );
        assert_eq!(children.config_map.data.unwrap()[CONFIG_KEY], "kind: Connector\n");
    }

    #[test]
    fn workers_run_locked_down_without_an_api_token() {
        let children = build(&input());
        let pod = pod_spec(&children);
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(
            children.service_account.automount_service_account_token,
            Some(false)
        );
        let security = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.capabilities.unwrap().drop.unwrap(), vec!["ALL"]);
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        assert_eq!(
            pod.containers[0].args.clone().unwrap(),
            vec!["run", "-f", "/etc/tributary/config.yaml"]
        );
    }

    #[test]
    fn children_are_owned_and_named_after_the_resource() {
        let children = build(&input());
        let meta = &children.deployment.metadata;
        assert_eq!(meta.name.as_deref(), Some("ratings-search-connector"));
        let owner = &meta.owner_references.clone().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Connector", "uid-1", Some(true))
        );
        assert_eq!(
            selector_string("Connector", "ratings-search"),
            "app.kubernetes.io/component=connector,app.kubernetes.io/instance=ratings-search,app.kubernetes.io/name=tributary-worker"
        );
    }

    #[test]
    fn spec_edits_and_secret_rotation_change_the_hash_but_state_does_not() {
        let base = config_hash(&input());
        let mut edited = input();
        edited.config_for_hash.push_str("spec: {}\n");
        assert_ne!(config_hash(&edited), base);
        let mut rotated = input();
        rotated.secret_versions = vec!["os@2".to_owned()];
        assert_ne!(config_hash(&rotated), base);
        let mut paused = input();
        paused.config_yaml.push_str("state: Paused\n"); // the live file changes...
        assert_eq!(config_hash(&paused), base); // ...the pods stay
    }

    #[test]
    fn sources_are_replaced_not_rolled_and_sinks_never_surge() {
        let mut source = input();
        source.recreate = true;
        let strategy = build(&source).deployment.spec.unwrap().strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
        let strategy = build(&input()).deployment.spec.unwrap().strategy.unwrap();
        assert_eq!(
            strategy.rolling_update.unwrap().max_surge,
            Some(IntOrString::Int(0))
        );
    }

    #[test]
    fn template_overrides_apply_but_operator_labels_win() {
        let mut with_template = input();
        with_template.template = Some(PodTemplate {
            image: Some("registry.local/worker:dev".to_owned()),
            image_pull_policy: Some(PullPolicy::Never),
            labels: BTreeMap::from([
                ("team".to_owned(), "search".to_owned()),
                ("app.kubernetes.io/instance".to_owned(), "hijack".to_owned()),
            ]),
            node_selector: BTreeMap::from([("pool".to_owned(), "data".to_owned())]),
            ..PodTemplate::default()
        });
        with_template.restarted_at = Some("2026-12-02T10:00:00Z".to_owned());
        let deployment = build(&with_template).deployment;
        let template = deployment.spec.unwrap().template;
        let labels = template.metadata.clone().unwrap().labels.unwrap();
        assert_eq!(labels["team"], "search");
        assert_eq!(labels["app.kubernetes.io/instance"], "ratings-search");
        let annotations = template.metadata.unwrap().annotations.unwrap();
        assert_eq!(
            annotations[tributary_api::workload::RESTART_ANNOTATION],
            "2026-12-02T10:00:00Z"
        );
        let pod = template.spec.unwrap();
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("registry.local/worker:dev")
        );
        assert_eq!(pod.containers[0].image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(pod.node_selector.unwrap()["pool"], "data");
    }
}
