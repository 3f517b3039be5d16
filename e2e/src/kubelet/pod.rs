//! One pod's life on the harness: volumes, one task per container that
//! starts, watches, probes and restarts its process, a task that reports
//! the containers' states in the pod's status, and termination.
//!
//! Container states follow kubelet: `waiting` (`ContainerCreating`,
//! `CreateContainerConfigError`, `CrashLoopBackOff`), `running`, and
//! `terminated` with the exit code (128 + signal when killed, so `kill -9`
//! reads 137) and reason `Completed`/`Error`; `lastState` keeps the previous
//! termination and `restartCount` counts restarts. With `restartPolicy:
//! Always` (and `OnFailure` after a failure) the first restart is immediate
//! and later ones wait 10 s, 20 s, 40 s… up to 5 minutes (configurable);
//! a container that ran for 10 minutes starts the sequence over.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::KubeletConfig;
use super::env::{container_env, expand};
use super::probe::Probes;
use super::process::{self, Launch, Mount};
use super::volumes::PodVolumes;

/// Variables the harness points at a free loopback port, because every
/// process shares the host's network (a pod would have its own).
pub(crate) const ADDRESS_VARIABLES: [(&str, &str); 2] = [
    ("TRIBUTARY_HTTP_ADDR", "--http-addr"),
    ("TRIBUTARY_METRICS_ADDR", "--metrics-addr"),
];
/// The port both binaries listen on by default (`0.0.0.0:8080`).
const DEFAULT_PORT: u16 = 8080;
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A container's termination, as in `state.terminated`.
#[derive(Debug, Clone)]
pub(crate) struct Termination {
    pub(crate) exit_code: i32,
    pub(crate) signal: Option<i32>,
    pub(crate) reason: String,
    pub(crate) message: Option<String>,
    pub(crate) started_at: Timestamp,
    pub(crate) finished_at: Timestamp,
    pub(crate) container_id: String,
}

#[derive(Debug, Clone)]
pub(crate) enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
        container_id: String,
    },
    Terminated(Termination),
}

/// What the harness knows about one container of the pod.
#[derive(Debug, Clone)]
pub(crate) struct ContainerRecord {
    pub(crate) name: String,
    pub(crate) image: String,
    /// The binary the image maps to; `None`: not run (reported running, as kwok does).
    pub(crate) binary: Option<PathBuf>,
    pub(crate) restart_count: i32,
    pub(crate) state: State,
    pub(crate) last_termination: Option<Termination>,
    pub(crate) ready: bool,
    pub(crate) started: bool,
    /// Will not run again (restart policy), so counts for the pod's phase.
    pub(crate) finished: bool,
    pub(crate) pid: Option<u32>,
    /// Container port → host port the process really listens on.
    pub(crate) ports: BTreeMap<u16, u16>,
}

/// State shared by a pod's tasks and the [`super::Kubelet`] handle.
pub(crate) struct PodContext {
    pub(crate) client: Client,
    pub(crate) config: Arc<KubeletConfig>,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) dir: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) pod: watch::Receiver<Arc<Pod>>,
    pub(crate) terminate: watch::Receiver<Option<Duration>>,
    pub(crate) records: Mutex<Vec<ContainerRecord>>,
    created: Timestamp,
    dirty: Notify,
}

impl std::fmt::Debug for PodContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodContext")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

impl PodContext {
    pub(crate) fn new(
        client: Client,
        config: Arc<KubeletConfig>,
        pod: watch::Receiver<Arc<Pod>>,
        terminate: watch::Receiver<Option<Duration>>,
    ) -> Self {
        let current = pod.borrow().clone();
        let namespace = current.metadata.namespace.clone().unwrap_or_default();
        let name = current.metadata.name.clone().unwrap_or_default();
        let uid = current.metadata.uid.clone().unwrap_or_default();
        let previous = current
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        let records = current
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| {
                let image = c.image.clone().unwrap_or_default();
                let binary = config.binary_for_image(&image).map(Path::to_path_buf);
                ContainerRecord {
                    name: c.name.clone(),
                    restart_count: previous
                        .iter()
                        .find(|s| s.name == c.name)
                        .map_or(0, |s| s.restart_count),
                    state: State::Waiting {
                        reason: "ContainerCreating".to_owned(),
                        message: None,
                    },
                    last_termination: None,
                    ready: binary.is_none(),
                    started: binary.is_none(),
                    finished: false,
                    pid: None,
                    ports: BTreeMap::new(),
                    binary,
                    image,
                }
            })
            .collect();
        Self {
            dir: config
                .work_dir
                .join("pods")
                .join(format!("{namespace}_{name}_{uid}")),
            log: config.log_path(&namespace, &name),
            client,
            namespace,
            name,
            uid,
            pod,
            terminate,
            records: Mutex::new(records),
            created: Timestamp::now(),
            dirty: Notify::new(),
            config,
        }
    }

    pub(crate) fn records(&self) -> MutexGuard<'_, Vec<ContainerRecord>> {
        // A poisoned lock only means a task panicked mid-update; the data is
        // still the best we have.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut ContainerRecord)) {
        if let Some(record) = self.records().get_mut(index) {
            change(record);
        }
        self.dirty.notify_one();
    }

    fn terminating(&self) -> Option<Duration> {
        *self.terminate.borrow()
    }

    /// Returns once the pod is terminating (or the harness is gone).
    async fn terminated(&self) {
        let mut terminate = self.terminate.clone();
        // The guard wait_for returns must not live across an await.
        let _ = terminate.wait_for(Option::is_some).await.map(|_| ());
    }

    /// Sleeps `duration`; `true` when the pod started terminating meanwhile.
    async fn sleep_or_terminate(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => self.terminating().is_some(),
            () = self.terminated() => true,
        }
    }

    /// A line of the harness's own in the pod's log, between the processes' output.
    fn log_line(&self, line: &str) {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .and_then(|mut f| writeln!(f, "--- kubelet {}: {line}", Timestamp::now()));
        if let Err(error) = written {
            tracing::warn!(log = %self.log.display(), %error, "cannot write the pod log");
        }
    }

    /// The pids of the pod's running processes.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.records().iter().filter_map(|r| r.pid).collect()
    }
}

/// Runs the pod until it is terminated; then removes its files and (if kwok
/// has not already) the pod object, as kubelet finishes a deletion.
///
/// Containers start once `gate` is done (see [`super::Inner::recreate_gate`]).
pub(crate) async fn run(ctx: Arc<PodContext>, gate: impl Future<Output = ()>) {
    ctx.dirty.notify_one();
    let mut tasks = JoinSet::new();
    tasks.spawn(report_status(ctx.clone()));
    let proceed = tokio::select! {
        () = gate => true,
        () = ctx.terminated() => false,
    };
    let volumes = if proceed {
        prepare_volumes(&ctx).await
    } else {
        None
    };
    if let Some(mut volumes) = volumes {
        let mut containers = JoinSet::new();
        let spec = ctx.pod.borrow().spec.clone().unwrap_or_default();
        let bin_dir = ctx.dir.join("bin");
        let linked = link_binaries(&ctx.config, &bin_dir);
        if let Err(error) = linked {
            tracing::warn!(pod = %ctx.name, %error, "cannot link the binaries into the pod's PATH");
        }
        let binaries: Vec<bool> = ctx.records().iter().map(|r| r.binary.is_some()).collect();
        for (index, container) in spec.containers.iter().enumerate() {
            if !binaries.get(index).copied().unwrap_or(false) {
                continue;
            }
            let mounts = container_mounts(&volumes, container, &spec.volumes.clone().unwrap_or_default());
            containers.spawn(run_container(ctx.clone(), index, container.clone(), mounts));
        }
        loop {
            tokio::select! {
                () = ctx.terminated() => break,
                () = tokio::time::sleep(ctx.config.volume_sync) => {
                    let pod = ctx.pod.borrow().clone();
                    match volumes.sync(&ctx.client, &pod).await {
                        Ok(written) if !written.is_empty() => {
                            tracing::debug!(pod = %ctx.name, volumes = ?written, "volumes updated");
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(pod = %ctx.name, %error, "volume update failed"),
                    }
                }
                Some(_) = containers.join_next(), if !containers.is_empty() => {}
            }
        }
        while containers.join_next().await.is_some() {}
    }
    tasks.abort_all();
    if let Err(error) = std::fs::remove_dir_all(&ctx.dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %ctx.dir.display(), %error, "cannot remove the pod's files");
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let delete = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(ctx.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    // Gone already when kwok removed it; a missing pod is not an error.
    let _ = api.delete(&ctx.name, &delete).await;
    ctx.log_line("pod terminated");
}

/// Fetches the volumes until they are complete (the containers wait in
/// `ContainerCreating` meanwhile); `None` if the pod is terminated first or
/// a volume can never work.
async fn prepare_volumes(ctx: &PodContext) -> Option<PodVolumes> {
    let pod = ctx.pod.borrow().clone();
    let mut volumes = match PodVolumes::new(&ctx.dir.join("volumes"), &pod) {
        Ok(volumes) => volumes,
        Err(error) => {
            set_waiting_all(ctx, "CreateContainerConfigError", &error.to_string());
            ctx.terminated().await;
            return None;
        }
    };
    loop {
        let pod = ctx.pod.borrow().clone();
        match volumes.sync(&ctx.client, &pod).await {
            Ok(_) => return Some(volumes),
            Err(error) => {
                tracing::info!(pod = %ctx.name, %error, "waiting for volumes");
                set_waiting_all(
                    ctx,
                    "ContainerCreating",
                    &format!("MountVolume.SetUp failed: {error}"),
                );
                if ctx.sleep_or_terminate(Duration::from_secs(1)).await {
                    return None;
                }
            }
        }
    }
}

fn set_waiting_all(ctx: &PodContext, reason: &str, message: &str) {
    for record in ctx.records().iter_mut().filter(|r| r.binary.is_some()) {
        record.state = State::Waiting {
            reason: reason.to_owned(),
            message: Some(message.to_owned()),
        };
    }
    ctx.dirty.notify_one();
}

/// Symlinks named like the binaries, first on the process's `PATH`, so a
/// `command: [tributary-worker, …]` or a shell script finds them.
fn link_binaries(config: &KubeletConfig, bin_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(bin_dir)?;
    for (name, path) in &config.binaries {
        let link = bin_dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(path, link)?;
        }
    }
    Ok(())
}

fn container_mounts(
    volumes: &PodVolumes,
    container: &Container,
    specs: &[k8s_openapi::api::core::v1::Volume],
) -> Vec<Mount> {
    container
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(|mount| {
            let mut source = volumes.host_path(&mount.name)?.to_path_buf();
            if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                source = source.join(sub);
            }
            // kubelet mounts API-object volumes read-only whatever the spec says.
            let api_volume = specs.iter().any(|v| {
                v.name == mount.name
                    && (v.config_map.is_some()
                        || v.secret.is_some()
                        || v.projected.is_some()
                        || v.downward_api.is_some())
            });
            Some(Mount {
                source,
                target: PathBuf::from(&mount.mount_path),
                read_only: api_volume || mount.read_only == Some(true),
            })
        })
        .collect()
}

/// The host ports standing in for the container's HTTP endpoint ports: one
/// per distinct port named by `TRIBUTARY_HTTP_ADDR`/`TRIBUTARY_METRICS_ADDR`
/// (or their flags), 8080 when unset.
fn plan_ports(container: &Container) -> BTreeMap<u16, u16> {
    let mut ports = BTreeMap::new();
    let mut wanted = vec![DEFAULT_PORT];
    let words: Vec<&String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .collect();
    for (variable, flag) in ADDRESS_VARIABLES {
        let from_env = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == variable)
            .and_then(|e| e.value.as_deref());
        let from_args = flag_value(&words, flag);
        for value in [from_env, from_args].into_iter().flatten() {
            if let Some(port) = address_port(value) {
                wanted.push(port);
            }
        }
    }
    for port in wanted {
        if ports.contains_key(&port) {
            continue;
        }
        match process::free_port() {
            Ok(host) => {
                ports.insert(port, host);
            }
            Err(error) => tracing::warn!(%error, "no free loopback port"),
        }
    }
    ports
}

fn flag_value<'a>(words: &[&'a String], flag: &str) -> Option<&'a str> {
    words.iter().enumerate().find_map(|(i, word)| {
        if word.as_str() == flag {
            words.get(i + 1).map(|w| w.as_str())
        } else {
            word.strip_prefix(flag).and_then(|rest| rest.strip_prefix('='))
        }
    })
}

fn address_port(value: &str) -> Option<u16> {
    value.rsplit_once(':').and_then(|(_, port)| port.parse().ok())
}

/// The loopback address replacing a container's `value` for an address.
fn remap(value: Option<&str>, ports: &BTreeMap<u16, u16>) -> Option<String> {
    if value == Some("off") {
        return None;
    }
    let port = value.and_then(address_port).unwrap_or(DEFAULT_PORT);
    ports.get(&port).map(|host| format!("127.0.0.1:{host}"))
}

/// Everything needed to start the container's process once.
#[derive(Debug)]
struct Prepared {
    program: String,
    args: Vec<String>,
    env: Vec<(String, OsString)>,
    working_dir: PathBuf,
}

async fn prepare(
    ctx: &PodContext,
    pod: &Pod,
    container: &Container,
    ports: &BTreeMap<u16, u16>,
) -> Result<Prepared, String> {
    let config = &ctx.config;
    let home = ctx.dir.join("home").join(&container.name);
    std::fs::create_dir_all(&home).map_err(|e| format!("creating {}: {e}", home.display()))?;
    let path = format!("{}:{DEFAULT_PATH}", ctx.dir.join("bin").display());
    let host = config.apiserver_host.clone();
    let port = config.apiserver_port.to_string();
    let mut base: Vec<(String, OsString)> = vec![
        ("PATH".into(), path.into()),
        ("HOSTNAME".into(), ctx.name.clone().into()),
        // A home of its own: no ~/.kube/config of the host's root user, so
        // kube clients fall back to the in-cluster configuration.
        ("HOME".into(), home.into_os_string()),
        ("KUBERNETES_SERVICE_HOST".into(), host.clone().into()),
        ("KUBERNETES_SERVICE_PORT".into(), port.clone().into()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone().into()),
        ("KUBERNETES_PORT".into(), format!("tcp://{host}:{port}").into()),
    ];
    base.extend(config.extra_env.iter().map(|(k, v)| (k.clone(), v.into())));
    let mut env = container_env(&ctx.client, pod, container, base)
        .await
        .map_err(|e| e.to_string())?;
    for (variable, _) in ADDRESS_VARIABLES {
        let current = env.get(variable).map(|v| v.to_string_lossy().into_owned());
        if let Some(address) = remap(current.as_deref(), ports) {
            env.insert(variable.to_owned(), address.into());
        }
    }
    let lookup = |name: &str| env.get(name).map(|v| v.to_string_lossy().into_owned());
    let mut words: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|word| expand(word, lookup))
        .collect();
    rewrite_address_flags(&mut words, ports);
    let binary = ctx
        .records()
        .iter()
        .find(|r| r.name == container.name)
        .and_then(|r| r.binary.clone())
        .ok_or_else(|| format!("container {} has no binary", container.name))?;
    let program = match container.command.as_ref().and_then(|c| c.first()) {
        None => binary.to_string_lossy().into_owned(),
        Some(first) => {
            let given = words.remove(0);
            let base_name = Path::new(first)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            match base_name.and_then(|n| config.binaries.get(&n)) {
                Some(path) => path.to_string_lossy().into_owned(),
                None => given,
            }
        }
    };
    Ok(Prepared {
        program,
        args: words,
        env: env.into_iter().collect(),
        working_dir: container
            .working_dir
            .as_deref()
            .map_or_else(|| PathBuf::from("/"), PathBuf::from),
    })
}

fn rewrite_address_flags(words: &mut [String], ports: &BTreeMap<u16, u16>) {
    for (_, flag) in ADDRESS_VARIABLES {
        let mut index = 0;
        while index < words.len() {
            if words[index] == flag && index + 1 < words.len() {
                if let Some(address) = remap(Some(&words[index + 1]), ports) {
                    words[index + 1] = address;
                }
                index += 1;
            } else if let Some(value) = words[index].strip_prefix(flag).and_then(|r| r.strip_prefix('='))
                && let Some(address) = remap(Some(value), ports)
            {
                words[index] = format!("{flag}={address}");
            }
            index += 1;
        }
    }
}

/// How one run of the process ended.
struct Exit {
    status: Option<ExitStatus>,
    /// Stopped because the pod is terminating: do not restart.
    by_termination: bool,
    /// Why the harness stopped it, if it did (failed liveness probe).
    message: Option<String>,
}

async fn run_container(ctx: Arc<PodContext>, index: usize, container: Container, mounts: Vec<Mount>) {
    let ports = plan_ports(&container);
    ctx.update(index, |r| r.ports = ports.clone());
    let policy = ctx
        .pod
        .borrow()
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".to_owned());
    let mut failures: u32 = 0;
    let mut first = true;
    loop {
        if ctx.terminating().is_some() {
            break;
        }
        let pod = ctx.pod.borrow().clone();
        let prepared = match prepare(&ctx, &pod, &container, &ports).await {
            Ok(prepared) => prepared,
            Err(message) => {
                tracing::info!(pod = %ctx.name, container = %container.name, %message, "cannot start");
                ctx.update(index, |r| {
                    r.state = State::Waiting {
                        reason: "CreateContainerConfigError".to_owned(),
                        message: Some(message),
                    };
                });
                if ctx.sleep_or_terminate(Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        if ctx.terminating().is_some() {
            break;
        }
        let (exit, started_at, container_id) =
            run_once(&ctx, index, &container, &mounts, &ports, &prepared, !first).await;
        first = false;
        let termination = termination(&exit, started_at, container_id);
        ctx.log_line(&format!(
            "container {} exited: code {}{}",
            container.name,
            termination.exit_code,
            termination
                .signal
                .map(|s| format!(" (signal {s})"))
                .unwrap_or_default()
        ));
        let failed = termination.exit_code != 0;
        let restart = !exit.by_termination
            && match policy.as_str() {
                "Never" => false,
                "OnFailure" => failed,
                _ => true,
            };
        let ran_for = Timestamp::now().duration_since(started_at);
        ctx.update(index, |r| {
            r.state = State::Terminated(termination.clone());
            r.last_termination = Some(termination.clone());
            r.pid = None;
            r.ready = false;
            r.finished = !restart && !exit.by_termination;
        });
        if !restart {
            break;
        }
        if ran_for.as_secs_f64() >= ctx.config.backoff_reset.as_secs_f64() {
            failures = 0;
        }
        let delay = backoff(&ctx.config, failures);
        failures = failures.saturating_add(1);
        if !delay.is_zero() {
            let message = format!(
                "back-off {}s restarting failed container={} pod={}_{}({})",
                delay.as_secs(),
                container.name,
                ctx.name,
                ctx.namespace,
                ctx.uid
            );
            ctx.update(index, |r| {
                r.state = State::Waiting {
                    reason: "CrashLoopBackOff".to_owned(),
                    message: Some(message),
                };
            });
            if ctx.sleep_or_terminate(delay).await {
                break;
            }
        }
    }
}

/// Starts the process once and waits for it to end; returns how it ended,
/// when it started and its container id.
async fn run_once(
    ctx: &PodContext,
    index: usize,
    container: &Container,
    mounts: &[Mount],
    ports: &BTreeMap<u16, u16>,
    prepared: &Prepared,
    restarted: bool,
) -> (Exit, Timestamp, String) {
    let launch = Launch {
        program: &prepared.program,
        args: &prepared.args,
        env: &prepared.env,
        mounts,
        working_dir: &prepared.working_dir,
        log: &ctx.log,
    };
    let started_at = Timestamp::now();
    let child = match process::spawn(&launch) {
        Ok(child) => child,
        Err(error) => {
            ctx.log_line(&format!("container {} failed to start: {error}", container.name));
            let exit = Exit {
                status: None,
                by_termination: false,
                message: Some(format!("starting {}: {error}", prepared.program)),
            };
            return (exit, started_at, String::new());
        }
    };
    let pid = child.id().unwrap_or_default();
    let container_id = format!("tributary-kubelet://{pid}");
    ctx.log_line(&format!(
        "container {} started: pid {pid}, {} {}",
        container.name,
        prepared.program,
        prepared.args.join(" ")
    ));
    tracing::info!(pod = %ctx.name, container = %container.name, pid, "container started");
    let probes = Probes::new(container, ports.clone(), ctx.config.max_probe_period);
    ctx.update(index, |r| {
        if restarted {
            r.restart_count += 1;
        }
        r.state = State::Running {
            started_at,
            container_id: container_id.clone(),
        };
        r.pid = Some(pid);
        r.started = true;
        r.ready = probes.ready();
    });
    let exit = supervise(ctx, index, child, pid, probes).await;
    (exit, started_at, container_id)
}

/// kubelet's crash-loop back-off: the first restart is immediate, then
/// `initial`, doubling, capped at `max`.
pub(crate) fn backoff(config: &KubeletConfig, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 2u32.saturating_pow(failures - 1);
    config
        .backoff_initial
        .saturating_mul(factor)
        .min(config.backoff_max)
}

fn termination(exit: &Exit, started_at: Timestamp, container_id: String) -> Termination {
    let (exit_code, signal) = match exit.status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => (code, None),
            (None, Some(signal)) => (128 + signal, Some(signal)),
            (None, None) => (-1, None),
        },
        None => (128, None),
    };
    Termination {
        exit_code,
        signal,
        reason: if exit.status.is_none() {
            "StartError".to_owned()
        } else if exit_code == 0 {
            "Completed".to_owned()
        } else {
            "Error".to_owned()
        },
        message: exit.message.clone(),
        started_at,
        finished_at: Timestamp::now(),
        container_id,
    }
}

/// Waits for the process to exit, running its probes, until the pod
/// terminates (SIGTERM, grace period, SIGKILL).
async fn supervise(
    ctx: &PodContext,
    index: usize,
    mut child: tokio::process::Child,
    pid: u32,
    mut probes: Probes,
) -> Exit {
    let mut terminate = ctx.terminate.clone();
    loop {
        let pending = *terminate.borrow_and_update();
        if let Some(grace) = pending {
            let status = stop(&mut child, pid, grace).await;
            return Exit {
                status,
                by_termination: true,
                message: None,
            };
        }
        let due = probes.next_due();
        tokio::select! {
            status = child.wait() => {
                return Exit { status: status.ok(), by_termination: false, message: None };
            }
            changed = terminate.changed() => {
                if changed.is_err() {
                    // The harness is gone: stop at once.
                    let status = stop(&mut child, pid, Duration::ZERO).await;
                    return Exit { status, by_termination: true, message: None };
                }
            }
            () = tokio::time::sleep_until(due) => {
                let outcome = probes.run_due().await;
                if let Some(ready) = outcome.ready {
                    ctx.update(index, |r| r.ready = ready);
                }
                if let Some(message) = outcome.restart {
                    ctx.log_line(&message);
                    let grace = grace_period(&ctx.pod.borrow(), &ctx.config);
                    let status = stop(&mut child, pid, grace).await;
                    return Exit { status, by_termination: false, message: Some(message) };
                }
            }
        }
    }
}

/// SIGTERM, then SIGKILL after `grace`.
async fn stop(child: &mut tokio::process::Child, pid: u32, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if !grace.is_zero() {
        process::signal(pid, "TERM").await;
        if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
            return status.ok();
        }
        tracing::info!(pid, "grace period over; killing");
    }
    process::signal(pid, "KILL").await;
    let _ = child.start_kill();
    child.wait().await.ok()
}

/// The pod's termination grace period (`terminationGracePeriodSeconds`,
/// default 30 s), capped by the harness's `max_grace_period`.
pub(crate) fn grace_period(pod: &Pod, config: &KubeletConfig) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    let grace = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    config.max_grace_period.map_or(grace, |max| grace.min(max))
}

fn time(t: Timestamp) -> Value {
    // Seconds, like the API server stores them.
    let seconds = Timestamp::from_second(t.as_second()).unwrap_or(t);
    Value::String(seconds.to_string())
}

fn terminated_json(t: &Termination) -> Value {
    let mut value = json!({
        "exitCode": t.exit_code,
        "reason": t.reason,
        "startedAt": time(t.started_at),
        "finishedAt": time(t.finished_at),
    });
    if let Some(signal) = t.signal {
        value["signal"] = json!(signal);
    }
    if let Some(message) = &t.message {
        value["message"] = json!(message);
    }
    if !t.container_id.is_empty() {
        value["containerID"] = json!(t.container_id);
    }
    value
}

fn container_status(record: &ContainerRecord, pod_started: Timestamp) -> Value {
    let (state, container_id) = match (&record.binary, &record.state) {
        (None, _) => (
            json!({"running": {"startedAt": time(pod_started)}}),
            String::new(),
        ),
        (Some(_), State::Waiting { reason, message }) => {
            let mut waiting = json!({"reason": reason});
            if let Some(message) = message {
                waiting["message"] = json!(message);
            }
            (json!({ "waiting": waiting }), String::new())
        }
        (
            Some(_),
            State::Running {
                started_at,
                container_id,
            },
        ) => (
            json!({"running": {"startedAt": time(*started_at)}}),
            container_id.clone(),
        ),
        (Some(_), State::Terminated(t)) => (
            json!({ "terminated": terminated_json(t) }),
            t.container_id.clone(),
        ),
    };
    let mut status = json!({
        "name": record.name,
        "image": record.image,
        "imageID": "",
        "ready": record.ready,
        "started": record.started && matches!(record.state, State::Running { .. }) || record.binary.is_none(),
        "restartCount": record.restart_count,
        "state": state,
        "lastState": {},
    });
    if !container_id.is_empty() {
        status["containerID"] = json!(container_id);
    }
    if let Some(last) = &record.last_termination
        && !matches!(record.state, State::Terminated(_))
    {
        status["lastState"] = json!({ "terminated": terminated_json(last) });
    }
    status
}

/// Keeps `status` of the pod object in line with the containers, through
/// the status subresource, like kubelet's status manager. Waits for kwok's
/// first status (it sets `podIP`): kwok's pod-ready stage only fires on pods
/// without one, so afterwards it leaves the status to the harness.
async fn report_status(ctx: Arc<PodContext>) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let mut pod_rx = ctx.pod.clone();
    let mut last_sent: Option<Value> = None;
    let mut transitions: BTreeMap<&'static str, (bool, Timestamp)> = BTreeMap::new();
    loop {
        ctx.dirty.notified().await;
        if pod_rx
            .wait_for(|pod| pod.status.as_ref().is_some_and(|s| s.pod_ip.is_some()))
            .await
            .is_err()
        {
            return;
        }
        // Coalesce bursts of changes into one patch.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let records = ctx.records().clone();
        let pod = pod_rx.borrow().clone();
        let body = status_body(&ctx, &pod, &records, &mut transitions);
        if last_sent.as_ref() == Some(&body) {
            continue;
        }
        match api
            .patch_status(&ctx.name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => last_sent = Some(body),
            Err(kube::Error::Api(response)) if response.code == 404 => return,
            Err(error) => {
                tracing::warn!(pod = %ctx.name, %error, "cannot update the pod status; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                ctx.dirty.notify_one();
            }
        }
    }
}

fn status_body(
    ctx: &PodContext,
    pod: &Pod,
    records: &[ContainerRecord],
    transitions: &mut BTreeMap<&'static str, (bool, Timestamp)>,
) -> Value {
    let pod_started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or(ctx.created, |t| t.0);
    let statuses: Vec<Value> = records.iter().map(|r| container_status(r, pod_started)).collect();
    let containers_ready = records.iter().all(|r| r.ready);
    let run: Vec<&ContainerRecord> = records.iter().filter(|r| r.binary.is_some()).collect();
    let phase = if !run.is_empty() && run.iter().all(|r| r.finished) {
        let succeeded = run
            .iter()
            .all(|r| matches!(&r.state, State::Terminated(t) if t.exit_code == 0));
        if succeeded { "Succeeded" } else { "Failed" }
    } else {
        "Running"
    };
    let mut conditions: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.type_ == "PodScheduled")
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    for (kind, value) in [
        ("Initialized", true),
        ("ContainersReady", containers_ready),
        ("Ready", containers_ready),
    ] {
        let entry = transitions.entry(kind).or_insert((value, Timestamp::now()));
        if entry.0 != value {
            *entry = (value, Timestamp::now());
        }
        conditions.push(json!({
            "type": kind,
            "status": if value { "True" } else { "False" },
            "lastTransitionTime": time(entry.1),
        }));
    }
    json!({"status": {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": statuses,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn address_flags_point_at_the_host_port() {
        let ports = BTreeMap::from([(8080, 40001), (9090, 40002)]);
        let mut args = words(&[
            "run",
            "--http-addr",
            "0.0.0.0:8080",
            "--metrics-addr=0.0.0.0:9090",
            "--x",
            "off",
        ]);
        rewrite_address_flags(&mut args, &ports);
        assert_eq!(
            args,
            words(&[
                "run",
                "--http-addr",
                "127.0.0.1:40001",
                "--metrics-addr=127.0.0.1:40002",
                "--x",
                "off"
            ])
        );
        let mut off = words(&["--http-addr", "off"]);
        rewrite_address_flags(&mut off, &ports);
        assert_eq!(off, words(&["--http-addr", "off"]));
        assert_eq!(remap(None, &ports).as_deref(), Some("127.0.0.1:40001"));
    }

    #[test]
    fn backoff_is_immediate_then_doubles_to_the_cap() {
        let config = KubeletConfig {
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_mins(5),
            ..KubeletConfig::for_namespaces(Vec::<String>::new())
        };
        let delays: Vec<u64> = (0..8).map(|n| backoff(&config, n).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
    }
}
