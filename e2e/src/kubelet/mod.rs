//! A kubelet for the e2e control plane: runs the pods scheduled on kwok's
//! fake nodes as local processes, so data really flows.
//!
//! # Model
//!
//! kwok marks every pod on its nodes `Running` and runs nothing. The
//! [`Kubelet`] watches pods in the namespaces it is given; a pod bound to a
//! kwok node (annotation `kwok.x-k8s.io/node: fake`) with a container whose
//! image names a workspace binary — the image's last path segment without
//! tag or digest, e.g. `ghcr.io/tributary-dev/tributary-worker:0.1.0` →
//! `tributary-worker` — is run here, each such container as one process:
//!
//! - **Command**: the binary with the container's `args` (or its `command`,
//!   whose first word is mapped to the binary by file name); `$(VAR)`
//!   references expanded. Working directory `workingDir` or `/`.
//! - **Environment**: only what a container would see — `env` (`value`,
//!   `secretKeyRef`, `configMapKeyRef`, `fieldRef`, `resourceFieldRef`),
//!   `envFrom`, `HOSTNAME` = pod name, the in-cluster variables
//!   `KUBERNETES_SERVICE_HOST`/`PORT` (the real API server), a `HOME` of
//!   its own. `status.podIP` reads `127.0.0.1`.
//! - **Network**: all processes share the host's. The ports a pod would
//!   have to itself — `TRIBUTARY_HTTP_ADDR`, `TRIBUTARY_METRICS_ADDR` and
//!   the flags `--http-addr`/`--metrics-addr`, default 8080 — are replaced
//!   by `127.0.0.1:<free port>`; [`ProcessInfo::ports`] maps container port
//!   to host port, and probes use the mapping.
//! - **Volumes** (configMap, secret, projected incl. service-account token,
//!   downwardAPI, emptyDir, hostPath) are directories on the host,
//!   bind-mounted at their `mountPath` in a private mount namespace of the
//!   process (`unshare -m`; needs root), read-only for API-object volumes.
//!   ConfigMap/Secret changes reach the files within `volume_sync`
//!   (kubelet's `..data` symlink swap). The default service-account volume
//!   gives a `TokenRequest` token bound to the pod, the cluster CA and the
//!   namespace at `/var/run/secrets/kubernetes.io/serviceaccount`, so kube
//!   clients in the process use the in-cluster configuration, with exactly
//!   the ServiceAccount's RBAC.
//! - **Lifecycle**: `restartPolicy` with kubelet's crash-loop back-off,
//!   startup/readiness/liveness probes (`httpGet`, `tcpSocket`), container
//!   states, `restartCount`, `ready` and the pod's `Ready` condition written
//!   to the pod's status subresource (after kwok's first status, which kwok
//!   then leaves alone). Deleting the pod sends SIGTERM, waits the grace
//!   period, then SIGKILL; kwok removes the pod object at once, so a
//!   replacement pod may start while the old process is still stopping.
//! - **Logs**: stdout and stderr of a pod's containers, with the harness's
//!   own start/exit lines, go to [`Kubelet::log_path`].
//!
//! Containers whose image maps to no binary are not run: they are reported
//! running and ready, as kwok would. Init containers, ephemeral containers,
//! lifecycle hooks, resource limits and `exec` probes (which pass) are not
//! emulated.
//!
//! Every process is killed when the [`Kubelet`] is dropped (and, through
//! `PR_SET_PDEATHSIG`, when the test process dies), so tests leave nothing
//! running. Serve each namespace from one harness only.
//!
//! # Use
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> Result<(), tributary_e2e::kubelet::KubeletError> {
//! use tributary_e2e::kubelet::{Kubelet, KubeletConfig};
//! let config = KubeletConfig::for_namespaces(["my-test-ns"]).fast();
//! let kubelet = Kubelet::start(client, config).await?;
//! // ... create a Deployment whose image is …/tributary-worker:<tag> ...
//! let running = kubelet.processes(); // namespace, pod, container, pid, restarts, ports, log
//! kubelet.kill("my-test-ns", &running[0].pod)?; // SIGKILL, for crash tests
//! println!("{}", kubelet.logs("my-test-ns", &running[0].pod));
//! # Ok(()) }
//! ```

mod build;
mod env;
mod pod;
mod probe;
mod process;
mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt as _};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use env::EnvError;
pub use volumes::VolumeError;

/// Annotation kwok's nodes carry (`--manage-nodes-with-annotation-selector`).
const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// The binaries the workspace builds that pods can run.
pub const WORKSPACE_BINARIES: [&str; 2] = ["tributary-worker", "tributary-operator"];

/// Errors of the harness itself (a pod's problems show in its status).
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("binary {name} not found at {path}: build it first (`cargo build -p {name}`)")]
    MissingBinary { name: String, path: PathBuf },
    #[error("building the workspace binaries failed:\n{0}")]
    Build(String),
    #[error(
        "{tool} not found on PATH: the kubelet harness needs util-linux (setpriv, unshare, mount) and sh"
    )]
    MissingTool { tool: String },
    #[error("cannot create a private mount namespace (`unshare --mount` needs root): {0}")]
    NoMountNamespace(String),
    #[error("work directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no process of pod {namespace}/{pod} is running")]
    NoProcess { namespace: String, pod: String },
}

/// How the harness behaves. [`KubeletConfig::for_namespaces`] gives
/// kubelet's timings; [`KubeletConfig::fast`] shortens them for tests.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Namespaces whose pods this harness runs; empty: all namespaces.
    pub namespaces: Vec<String>,
    /// Image name (last path segment, no tag) → binary to run.
    pub binaries: BTreeMap<String, PathBuf>,
    /// Volumes, home directories and logs go below this directory.
    pub work_dir: PathBuf,
    /// The API server as processes reach it (`KUBERNETES_SERVICE_HOST`/`PORT`).
    pub apiserver_host: String,
    pub apiserver_port: u16,
    /// First crash-loop back-off delay (kubelet: 10 s; the first restart is immediate).
    pub backoff_initial: Duration,
    /// Longest back-off delay (kubelet: 5 min).
    pub backoff_max: Duration,
    /// A container that ran this long starts the back-off over (kubelet: 10 min).
    pub backoff_reset: Duration,
    /// How often ConfigMap/Secret volumes are refreshed.
    pub volume_sync: Duration,
    /// Caps probes' `initialDelaySeconds` and `periodSeconds` (none: as written).
    pub max_probe_period: Option<Duration>,
    /// Caps the termination grace period (none: as in the pod).
    pub max_grace_period: Option<Duration>,
    /// Variables every process gets before the pod's own (e.g. `RUST_LOG`).
    pub extra_env: Vec<(String, String)>,
    /// Run `cargo build` at start for workspace binaries that are missing
    /// or older than the workspace's sources.
    pub build_binaries: bool,
}

impl KubeletConfig {
    /// kubelet's timings for pods in `namespaces` (empty: all), the
    /// workspace's binaries next to the running test executable, and the
    /// API server of the local control plane's kubeconfig.
    pub fn for_namespaces<S: Into<String>>(namespaces: impl IntoIterator<Item = S>) -> Self {
        Self {
            namespaces: namespaces.into_iter().map(Into::into).collect(),
            binaries: workspace_binaries(),
            // Like kubelet's /var/lib/kubelet, and not under /tmp: pods
            // often mount an emptyDir at /tmp, which would hide the volume
            // sources of the same pod from its later bind mounts.
            work_dir: PathBuf::from("/var/lib/tributary-kubelet")
                .join(uuid::Uuid::new_v4().simple().to_string()),
            apiserver_host: "127.0.0.1".to_owned(),
            apiserver_port: 16443,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_mins(5),
            backoff_reset: Duration::from_mins(10),
            volume_sync: Duration::from_secs(1),
            max_probe_period: None,
            max_grace_period: None,
            extra_env: Vec::new(),
            build_binaries: true,
        }
    }

    /// Test timings: back-off 1 s doubling to 8 s, probes at least every
    /// second, grace periods of at most 10 s.
    #[must_use]
    pub fn fast(mut self) -> Self {
        self.backoff_initial = Duration::from_secs(1);
        self.backoff_max = Duration::from_secs(8);
        self.max_probe_period = Some(Duration::from_secs(1));
        self.max_grace_period = Some(Duration::from_secs(10));
        self
    }

    /// The binary an image runs, if any.
    pub fn binary_for_image(&self, image: &str) -> Option<&Path> {
        self.binaries.get(image_name(image)).map(PathBuf::as_path)
    }

    /// Where the pod's log goes (also after the pod is gone).
    pub fn log_path(&self, namespace: &str, pod: &str) -> PathBuf {
        self.work_dir.join("logs").join(format!("{namespace}_{pod}.log"))
    }
}

/// `registry/org/name:tag@digest` → `name`.
pub fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

/// The workspace binaries in the target directory of the running
/// executable (`target/<profile>/`, also when running from `deps/`);
/// [`Kubelet::start`] builds them when missing or stale.
pub fn workspace_binaries() -> BTreeMap<String, PathBuf> {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .map(|dir| {
            if dir.ends_with("deps") {
                dir.parent().map_or(dir.clone(), Path::to_path_buf)
            } else {
                dir
            }
        })
        .unwrap_or_default();
    WORKSPACE_BINARIES
        .iter()
        .map(|name| ((*name).to_owned(), dir.join(name)))
        .collect()
}

/// One running process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub pid: u32,
    pub restart_count: i32,
    pub ready: bool,
    /// Container port → host port where the process really listens.
    pub ports: BTreeMap<u16, u16>,
    pub log: PathBuf,
}

impl ProcessInfo {
    /// Where `path`, as the process sees it (with its volume mounts), can be
    /// read from the host: `/proc/<pid>/root/<path>`, with the host's
    /// symlinks in `path` (e.g. `/var/run` → `/run`) resolved first, because
    /// `/proc/<pid>/root` would resolve absolute links against the host's root.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        let mut existing = path;
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    existing = parent;
                }
                _ => break,
            }
        }
        let mut resolved = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
        resolved.extend(rest.iter().rev());
        let relative = resolved.strip_prefix("/").unwrap_or(&resolved);
        Path::new("/proc")
            .join(self.pid.to_string())
            .join("root")
            .join(relative)
    }
}

type PodKey = (String, String);

#[derive(Debug)]
struct PodHandle {
    ctx: Arc<pod::PodContext>,
    pod_tx: watch::Sender<Arc<Pod>>,
    terminate_tx: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

impl PodHandle {
    fn terminate(&self, grace: Duration) {
        self.terminate_tx.send_if_modified(|current| match current {
            Some(existing) if *existing <= grace => false,
            _ => {
                *current = Some(grace);
                true
            }
        });
    }
}

struct Inner {
    client: Client,
    config: Arc<KubeletConfig>,
    pods: Mutex<HashMap<PodKey, PodHandle>>,
    kwok_nodes: Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn pods(&self) -> MutexGuard<'_, HashMap<PodKey, PodHandle>> {
        self.pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn is_kwok_node(&self, name: &str) -> bool {
        let known = self
            .kwok_nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .copied();
        if let Some(known) = known {
            return known;
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        match nodes.get_opt(name).await {
            Ok(node) => {
                let kwok = node.is_some_and(|n| {
                    n.annotations()
                        .get(KWOK_NODE_ANNOTATION)
                        .is_some_and(|v| v == "fake")
                });
                self.kwok_nodes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(name.to_owned(), kwok);
                kwok
            }
            Err(error) => {
                tracing::warn!(node = name, %error, "cannot read node");
                false
            }
        }
    }

    async fn on_pod(self: &Arc<Self>, pod: Pod) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        let runs_something = pod.spec.iter().flat_map(|s| s.containers.iter()).any(|c| {
            c.image
                .as_deref()
                .is_some_and(|image| self.config.binary_for_image(image).is_some())
        });
        if !runs_something || !self.is_kwok_node(&node).await {
            return;
        }
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        let uid = pod.uid().unwrap_or_default();
        let grace = pod::grace_period(&pod, &self.config);
        let mut pods = self.pods();
        if let Some(existing) = pods.get(&key) {
            if existing.ctx.uid == uid {
                if pod.metadata.deletion_timestamp.is_some() {
                    existing.terminate(grace);
                }
                existing.pod_tx.send_replace(Arc::new(pod));
                return;
            }
            // Same name, new pod (e.g. a StatefulSet's): the old one goes.
            if let Some(old) = pods.remove(&key) {
                old.terminate(grace);
            }
        }
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        if pod.metadata.deletion_timestamp.is_some() || finished {
            return;
        }
        tracing::info!(namespace = %key.0, pod = %key.1, "running pod");
        let (pod_tx, pod_rx) = watch::channel(Arc::new(pod));
        let (terminate_tx, terminate_rx) = watch::channel(None);
        let ctx = Arc::new(pod::PodContext::new(
            self.client.clone(),
            self.config.clone(),
            pod_rx,
            terminate_rx,
        ));
        let inner = Arc::downgrade(self);
        let task_ctx = ctx.clone();
        let task_key = key.clone();
        let gate = recreate_gate(Arc::downgrade(self), ctx.clone());
        let task = tokio::spawn(async move {
            pod::run(task_ctx.clone(), gate).await;
            if let Some(inner) = inner.upgrade() {
                let mut pods = inner.pods();
                if pods.get(&task_key).is_some_and(|h| h.ctx.uid == task_ctx.uid) {
                    pods.remove(&task_key);
                }
            }
        });
        pods.insert(
            key,
            PodHandle {
                ctx,
                pod_tx,
                terminate_tx,
                task,
            },
        );
    }

    fn on_deleted(&self, pod: &Pod) {
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        let grace = pod::grace_period(pod, &self.config);
        if let Some(handle) = self.pods().get(&key)
            && Some(handle.ctx.uid.as_str()) == pod.uid().as_deref()
        {
            handle.terminate(grace);
        }
    }

    /// After a re-list: pods that vanished while the watch was down.
    fn forget_missing(&self, namespace: Option<&str>, seen: &HashSet<PodKey>) {
        for (key, handle) in self.pods().iter() {
            if namespace.is_none_or(|ns| ns == key.0) && !seen.contains(key) {
                let grace = pod::grace_period(&handle.pod_tx.borrow(), &self.config);
                handle.terminate(grace);
            }
        }
    }
}

/// The Deployment that owns `pod` through a `ReplicaSet` named
/// `<deployment>-<pod-template-hash>`.
fn owning_deployment(pod: &Pod) -> Option<String> {
    let hash = pod.labels().get("pod-template-hash")?;
    let replica_set = pod
        .owner_references()
        .iter()
        .find(|o| o.kind == "ReplicaSet" && o.controller == Some(true))?;
    replica_set
        .name
        .strip_suffix(hash.as_str())
        .and_then(|n| n.strip_suffix('-'))
        .map(str::to_owned)
}

/// Waits, for a pod of a Deployment with strategy `Recreate`, until no
/// process of the Deployment's pods of other revisions runs any more.
///
/// A real kubelet keeps a deleted pod until its containers stopped, and the
/// Deployment controller creates the new pods of a `Recreate` rollout only
/// then; kwok removes deleted pods at once, so without this gate the new
/// process (say, a CDC source on the same replication slot) would start
/// while the old one is still in its grace period.
async fn recreate_gate(inner: std::sync::Weak<Inner>, ctx: Arc<pod::PodContext>) {
    let pod = ctx.pod.borrow().clone();
    let (Some(deployment), Some(hash)) = (owning_deployment(&pod), pod.labels().get("pod-template-hash"))
    else {
        return;
    };
    let Some(client) = inner.upgrade().map(|i| i.client.clone()) else {
        return;
    };
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client, &ctx.namespace);
    let recreate = match api.get_opt(&deployment).await {
        Ok(found) => found
            .and_then(|d| d.spec)
            .and_then(|s| s.strategy)
            .and_then(|s| s.type_)
            .is_some_and(|t| t == "Recreate"),
        Err(error) => {
            tracing::warn!(%deployment, %error, "cannot read the pod's Deployment");
            false
        }
    };
    if !recreate {
        return;
    }
    loop {
        let waiting = {
            let Some(inner) = inner.upgrade() else { return };
            let pods = inner.pods();
            // Pods of earlier revisions only: a ReplicaSet replaces its own
            // deleted pods at once on a real cluster too.
            pods.values().any(|other| {
                let other_pod = other.pod_tx.borrow();
                other.ctx.namespace == ctx.namespace
                    && other_pod.labels().get("pod-template-hash") != Some(hash)
                    && owning_deployment(&other_pod).as_deref() == Some(deployment.as_str())
                    && !other.task.is_finished()
            })
        };
        if !waiting {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn watch_pods(inner: Arc<Inner>, namespace: Option<String>) {
    let api: Api<Pod> = match &namespace {
        Some(ns) => Api::namespaced(inner.client.clone(), ns),
        None => Api::all(inner.client.clone()),
    };
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut seen = HashSet::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => seen.clear(),
            Ok(Event::InitApply(pod)) => {
                seen.insert((pod.namespace().unwrap_or_default(), pod.name_any()));
                inner.on_pod(pod).await;
            }
            Ok(Event::InitDone) => inner.forget_missing(namespace.as_deref(), &seen),
            Ok(Event::Apply(pod)) => inner.on_pod(pod).await,
            Ok(Event::Delete(pod)) => inner.on_deleted(&pod),
            Err(error) => tracing::warn!(%error, "pod watch failed; retrying"),
        }
    }
}

/// The harness: running while this value lives.
#[derive(Debug)]
pub struct Kubelet {
    inner: Arc<Inner>,
    watchers: Vec<JoinHandle<()>>,
}

impl Kubelet {
    /// Checks the prerequisites (binaries, util-linux, mount namespaces)
    /// and starts watching pods.
    pub async fn start(client: Client, config: KubeletConfig) -> Result<Self, KubeletError> {
        if config.build_binaries {
            build::ensure_built(&config.binaries).await?;
        }
        for (name, path) in &config.binaries {
            if !path.is_file() {
                return Err(KubeletError::MissingBinary {
                    name: name.clone(),
                    path: path.clone(),
                });
            }
        }
        for tool in process::REQUIRED_TOOLS {
            if process::find_tool(tool).is_none() {
                return Err(KubeletError::MissingTool {
                    tool: tool.to_owned(),
                });
            }
        }
        let probe = tokio::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "true"])
            .output()
            .await
            .map_err(|e| KubeletError::NoMountNamespace(e.to_string()))?;
        if !probe.status.success() {
            return Err(KubeletError::NoMountNamespace(
                String::from_utf8_lossy(&probe.stderr).trim().to_owned(),
            ));
        }
        let logs = config.work_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|source| KubeletError::WorkDir { path: logs, source })?;
        let namespaces: Vec<Option<String>> = if config.namespaces.is_empty() {
            vec![None]
        } else {
            config.namespaces.iter().cloned().map(Some).collect()
        };
        let inner = Arc::new(Inner {
            client,
            config: Arc::new(config),
            pods: Mutex::new(HashMap::new()),
            kwok_nodes: Mutex::new(HashMap::new()),
        });
        let watchers = namespaces
            .into_iter()
            .map(|namespace| tokio::spawn(watch_pods(inner.clone(), namespace)))
            .collect();
        Ok(Self { inner, watchers })
    }

    /// The configuration in use.
    pub fn config(&self) -> &KubeletConfig {
        &self.inner.config
    }

    /// The processes running now.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        let pods = self.inner.pods();
        let mut list: Vec<ProcessInfo> = pods
            .values()
            .flat_map(|handle| {
                let ctx = &handle.ctx;
                ctx.records()
                    .iter()
                    .filter_map(|r| {
                        Some(ProcessInfo {
                            namespace: ctx.namespace.clone(),
                            pod: ctx.name.clone(),
                            pod_uid: ctx.uid.clone(),
                            container: r.name.clone(),
                            pid: r.pid?,
                            restart_count: r.restart_count,
                            ready: r.ready,
                            ports: r.ports.clone(),
                            log: ctx.log.clone(),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        list.sort_by(|a, b| (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container)));
        list
    }

    /// SIGKILL to every process of the pod (a crash, for tests); returns how
    /// many were killed. The restart policy then applies.
    pub fn kill(&self, namespace: &str, pod: &str) -> Result<usize, KubeletError> {
        let pids = self
            .inner
            .pods()
            .get(&(namespace.to_owned(), pod.to_owned()))
            .map(|handle| handle.ctx.pids())
            .unwrap_or_default();
        if pids.is_empty() {
            return Err(KubeletError::NoProcess {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
            });
        }
        process::signal_now(&pids, "KILL");
        Ok(pids.len())
    }

    /// The pod's log file: its containers' stdout and stderr.
    pub fn log_path(&self, namespace: &str, pod: &str) -> PathBuf {
        self.inner.config.log_path(namespace, pod)
    }

    /// The pod's log (empty when it has none), for test failure messages.
    pub fn logs(&self, namespace: &str, pod: &str) -> String {
        std::fs::read(self.log_path(namespace, pod))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Every pod's log, each under a header, for test failure messages.
    pub fn all_logs(&self) -> String {
        let dir = self.inner.config.work_dir.join("logs");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().fold(String::new(), |mut out, path| {
            let text = std::fs::read(path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            // Writing to a String cannot fail.
            let _ = writeln!(out, "===== {}\n{text}", path.display());
            out
        })
    }

    /// Stops every pod as a node drain would (SIGTERM, grace, SIGKILL) and
    /// waits for them.
    pub async fn shutdown(mut self) {
        for watcher in self.watchers.drain(..) {
            watcher.abort();
        }
        let handles: Vec<PodHandle> = self.inner.pods().drain().map(|(_, h)| h).collect();
        for handle in &handles {
            let grace = pod::grace_period(&handle.pod_tx.borrow(), &self.inner.config);
            handle.terminate(grace);
        }
        for handle in handles {
            let _ = handle.task.await;
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for watcher in &self.watchers {
            watcher.abort();
        }
        let handles: Vec<PodHandle> = self.inner.pods().drain().map(|(_, h)| h).collect();
        // Terminating first, so no container task takes the kill below for
        // a crash and restarts; a process started meanwhile dies with its
        // aborted task (kill_on_drop).
        for handle in &handles {
            handle.terminate(Duration::ZERO);
            handle.task.abort();
        }
        let pids: Vec<u32> = handles.iter().flat_map(|h| h.ctx.pids()).collect();
        process::signal_now(&pids, "KILL");
        // Volumes hold Secret values: remove them; logs stay for post-mortems.
        let pod_files = self.inner.config.work_dir.join("pods");
        if let Err(error) = std::fs::remove_dir_all(&pod_files)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %pod_files.display(), %error, "cannot remove pod files");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert_eq!(
            image_name("ghcr.io/tributary-dev/tributary-worker:0.1.0"),
            "tributary-worker"
        );
        assert_eq!(image_name("tributary-operator"), "tributary-operator");
        assert_eq!(
            image_name("localhost:5000/x/tributary-worker@sha256:abc"),
            "tributary-worker"
        );
        assert_eq!(image_name("registry:5000/busybox:1"), "busybox");
    }
}
