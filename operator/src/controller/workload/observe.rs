//! From what a reconcile observed (Deployment, pods, the workers' own
//! reports, consumer-group lag) to the resource's status and health. Pure.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use tributary_api::{DesiredState, Health, Lag, Lineage, WorkloadStatus};
use tributary_kafka::{GroupLag, WorkerStatus};

/// Restarts after which a crash-looping worker is reported as Stalled (it
/// will not get better without a change).
pub const CRASH_LOOP_STALLED_AFTER: i32 = 5;

/// The facts of one worker pod that status reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodFacts {
    /// Container restarts.
    pub restarts: i32,
    /// Why the container is waiting (`CrashLoopBackOff`, `CreateContainerConfigError`, …).
    pub waiting_reason: Option<String>,
    /// The waiting message (e.g. which Secret key is missing).
    pub waiting_message: Option<String>,
}

impl PodFacts {
    /// The facts of a pod's worker container.
    pub fn of(pod: &Pod) -> Self {
        let status = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.iter().find(|c| c.name == "worker"));
        let waiting = status
            .and_then(|s| s.state.as_ref())
            .and_then(|s| s.waiting.as_ref());
        Self {
            restarts: status.map_or(0, |s| s.restart_count),
            waiting_reason: waiting.and_then(|w| w.reason.clone()),
            waiting_message: waiting.and_then(|w| w.message.clone()),
        }
    }
}

/// Everything observed in one reconcile.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// `spec.state`.
    pub desired: DesiredState,
    /// Workers wanted.
    pub desired_replicas: i32,
    /// The Deployment as the apiserver returned it.
    pub deployment: Option<Deployment>,
    /// The worker pods.
    pub pods: Vec<PodFacts>,
    /// The latest report of the workers.
    pub worker: Option<WorkerStatus>,
    /// Consumer-group lag (sinks and streams).
    pub group_lag: Option<GroupLag>,
    /// Records per second since the previous observation.
    pub records_per_second: Option<u64>,
    /// Topics read and written.
    pub lineage: Lineage,
    /// Label selector of the pods.
    pub selector: String,
    /// WAL bytes the replication slot retains, as the operator read it from
    /// Postgres (a Stopped CDC source: no worker reports it).
    pub slot_wal_bytes: Option<i64>,
    /// Why the operator could not read the slot.
    pub slot_error: Option<String>,
}

fn ready_replicas(deployment: Option<&Deployment>) -> (i32, i32) {
    let status = deployment.and_then(|d| d.status.as_ref());
    let current = deployment
        .zip(status)
        .is_some_and(|(d, s)| s.observed_generation >= d.metadata.generation);
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated = if current {
        status.and_then(|s| s.updated_replicas).unwrap_or(0)
    } else {
        0
    };
    (ready, updated)
}

/// The health the observation implies.
pub fn health(observation: &Observation) -> Health {
    let (ready, updated) = ready_replicas(observation.deployment.as_ref());
    let desired = observation.desired_replicas;
    let progressing = |reason: &str, message: String| Health::Progressing {
        reason: reason.to_owned(),
        message,
    };
    if let Some(stuck) = observation.pods.iter().find(|p| p.waiting_reason.is_some()) {
        let reason = stuck.waiting_reason.clone().unwrap_or_default();
        let message = match (&stuck.waiting_message, &observation.worker) {
            (_, Some(worker)) if worker.last_error.is_some() && reason == "CrashLoopBackOff" => {
                worker.last_error.clone().unwrap_or_default()
            }
            (Some(message), _) => message.clone(),
            (None, _) => format!("worker container is waiting: {reason}"),
        };
        if reason == "CrashLoopBackOff" && stuck.restarts >= CRASH_LOOP_STALLED_AFTER {
            return Health::Stalled {
                reason: "WorkerCrashLooping".to_owned(),
                message: format!("restarted {} times: {message}", stuck.restarts),
            };
        }
        if reason != "ContainerCreating" && reason != "PodInitializing" {
            return progressing("WorkerNotRunning", format!("{reason}: {message}"));
        }
    }
    let worker_state = observation.worker.as_ref().map(|w| w.state.as_str());
    if observation.desired != DesiredState::Stopped
        && worker_state == Some("Failed")
        && let Some(error) = observation.worker.as_ref().and_then(|w| w.last_error.clone())
    {
        return progressing("WorkerFailed", error);
    }
    match observation.desired {
        DesiredState::Stopped => {
            let running = observation
                .deployment
                .as_ref()
                .and_then(|d| d.status.as_ref())
                .and_then(|s| s.replicas)
                .unwrap_or(0);
            if running == 0 {
                Health::Ready {
                    reason: "Stopped".to_owned(),
                    message: "no workers run (spec.state: Stopped)".to_owned(),
                }
            } else {
                progressing("Stopping", format!("{running} workers still running"))
            }
        }
        _ if ready < desired || updated < desired => progressing(
            "WorkersStarting",
            format!("{ready}/{desired} workers ready, {updated}/{desired} on the current spec"),
        ),
        DesiredState::Paused if worker_state.is_some_and(|s| s != "Paused") => progressing(
            "Pausing",
            format!("workers report {}", worker_state.unwrap_or_default()),
        ),
        DesiredState::Paused => Health::Ready {
            reason: "Paused".to_owned(),
            message: format!("{ready} workers up, moving nothing (spec.state: Paused)"),
        },
        DesiredState::Running => match worker_state {
            Some("Completed") => Health::Ready {
                reason: "Completed".to_owned(),
                message: "the workers finished their work".to_owned(),
            },
            Some("Paused") => progressing("Resuming", "workers still report Paused".to_owned()),
            _ => Health::Ready {
                reason: "Running".to_owned(),
                message: format!(
                    "{ready}/{desired} workers ready{}",
                    worker_state.map(|s| format!(", {s}")).unwrap_or_default()
                ),
            },
        },
    }
}

/// The lag to report: the group's (sinks and streams) or the slot's (CDC:
/// as the operator read it when Stopped, else as the worker reports it).
pub fn lag(observation: &Observation) -> Option<Lag> {
    if let Some(group) = &observation.group_lag {
        return Some(
            Lag {
                records: Some(group.records),
                seconds: Some(group.seconds.unwrap_or(0)),
                ..Lag::default()
            }
            .summarised(),
        );
    }
    if let Some(bytes) = observation.slot_wal_bytes {
        return Some(
            Lag {
                wal_bytes: Some(bytes),
                ..Lag::default()
            }
            .summarised(),
        );
    }
    let worker = observation.worker.as_ref()?;
    if worker.lag_bytes.is_none() && worker.lag_millis.is_none() {
        return None;
    }
    Some(
        Lag {
            wal_bytes: worker.lag_bytes.and_then(|b| i64::try_from(b).ok()),
            seconds: worker
                .lag_millis
                .and_then(|m| i64::try_from(m / 1000).ok())
                .or(Some(0)),
            ..Lag::default()
        }
        .summarised(),
    )
}

/// The status fields other than conditions.
pub fn status(observation: &Observation) -> WorkloadStatus {
    let (ready, _) = ready_replicas(observation.deployment.as_ref());
    let last_error = observation
        .worker
        .as_ref()
        .and_then(|w| w.last_error.clone())
        .or_else(|| observation.pods.iter().find_map(|p| p.waiting_message.clone()))
        .or_else(|| {
            observation
                .slot_error
                .as_ref()
                .map(|e| format!("cannot read the WAL the replication slot retains: {e}"))
        });
    WorkloadStatus {
        replicas: ready,
        desired_replicas: observation.desired_replicas,
        selector: Some(observation.selector.clone()),
        worker_state: observation.worker.as_ref().map(|w| w.state.clone()),
        lag: lag(observation),
        records_per_second: observation.records_per_second,
        restarts: observation.pods.iter().map(|p| p.restarts).sum(),
        last_error,
        topics: (!observation.lineage.reads.is_empty() || !observation.lineage.writes.is_empty())
            .then(|| observation.lineage.clone()),
        ..WorkloadStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn deployment(ready: i32, updated: i32, replicas: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(2),
                ..ObjectMeta::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                replicas: Some(replicas),
                ..DeploymentStatus::default()
            }),
            ..Deployment::default()
        }
    }

    fn worker(state: &str) -> WorkerStatus {
        WorkerStatus {
            state: state.to_owned(),
            ..WorkerStatus::default()
        }
    }

    fn running(ready: i32) -> Observation {
        Observation {
            desired_replicas: 2,
            deployment: Some(deployment(ready, 2, 2)),
            worker: Some(worker("Streaming")),
            ..Observation::default()
        }
    }

    #[test]
    fn ready_only_when_every_worker_is_ready_on_the_current_spec() {
        assert!(matches!(health(&running(2)), Health::Ready { reason, .. } if reason == "Running"));
        assert!(
            matches!(health(&running(1)), Health::Progressing { reason, .. } if reason == "WorkersStarting")
        );
        let mut stale = running(2);
        if let Some(status) = stale.deployment.as_mut().and_then(|d| d.status.as_mut()) {
            status.observed_generation = Some(1);
        }
        assert!(matches!(health(&stale), Health::Progressing { .. }));
    }

    #[test]
    fn a_failed_worker_shows_its_error_and_a_crash_loop_stalls() {
        let mut failed = running(2);
        failed.worker = Some(WorkerStatus {
            last_error: Some("sink refused record at ratings/0@17".to_owned()),
            ..worker("Failed")
        });
        match health(&failed) {
            Health::Progressing { reason, message } => {
                assert_eq!(reason, "WorkerFailed");
                assert!(message.contains("ratings/0@17"));
            }
            other => panic!("{other:?}"),
        }
        failed.pods = vec![PodFacts {
            restarts: 6,
            waiting_reason: Some("CrashLoopBackOff".to_owned()),
            waiting_message: Some("back-off 40s restarting failed container".to_owned()),
        }];
        match health(&failed) {
            Health::Stalled { reason, message } => {
                assert_eq!(reason, "WorkerCrashLooping");
                assert!(message.contains("ratings/0@17"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(status(&failed).restarts, 6);
    }

    #[test]
    fn stopped_and_paused_are_ready_once_they_took_effect() {
        let stopped = Observation {
            desired: DesiredState::Stopped,
            deployment: Some(deployment(0, 0, 0)),
            ..Observation::default()
        };
        assert!(matches!(health(&stopped), Health::Ready { reason, .. } if reason == "Stopped"));
        let mut pausing = running(2);
        pausing.desired = DesiredState::Paused;
        assert!(matches!(health(&pausing), Health::Progressing { reason, .. } if reason == "Pausing"));
        pausing.worker = Some(worker("Paused"));
        assert!(matches!(health(&pausing), Health::Ready { reason, .. } if reason == "Paused"));
    }

    #[test]
    fn lag_comes_from_the_group_for_sinks_and_from_the_slot_for_cdc() {
        let mut sink = running(2);
        sink.group_lag = Some(GroupLag {
            records: 120,
            committed: 5_000,
            seconds: Some(3),
            partitions: 6,
        });
        assert_eq!(lag(&sink).unwrap().summary, "120 records, 3s");
        let mut cdc = running(1);
        cdc.worker = Some(WorkerStatus {
            lag_bytes: Some(2048),
            lag_millis: Some(1500),
            ..worker("Streaming")
        });
        let cdc_lag = lag(&cdc).unwrap();
        assert_eq!((cdc_lag.wal_bytes, cdc_lag.seconds), (Some(2048), Some(1)));
        assert_eq!(cdc_lag.summary, "2 KiB WAL, 1s");
    }

    #[test]
    fn a_stopped_cdc_source_reports_the_wal_its_slot_retains_or_why_it_cannot() {
        // The worker's last report is stale once it stopped: the operator's
        // reading of the slot wins.
        let mut stopped = Observation {
            desired: DesiredState::Stopped,
            deployment: Some(deployment(0, 0, 0)),
            worker: Some(WorkerStatus {
                lag_bytes: Some(10),
                ..worker("Paused")
            }),
            slot_wal_bytes: Some(3 * 1024 * 1024),
            ..Observation::default()
        };
        let lag = status(&stopped).lag.unwrap();
        assert_eq!(
            (lag.wal_bytes, lag.summary.as_str()),
            (Some(3 * 1024 * 1024), "3 MiB WAL")
        );
        stopped.slot_wal_bytes = None;
        stopped.worker = None;
        stopped.slot_error = Some("connecting to Postgres at db:5432: refused".to_owned());
        let status = status(&stopped);
        assert_eq!(status.lag, None);
        assert!(
            status
                .last_error
                .unwrap()
                .contains("replication slot retains: connecting"),
        );
    }
}
