//! Following `spec.state` live: the operator keeps a Paused workload's pods
//! (and their partitions, slot and state) and only rewrites the mounted
//! config, which kubelet updates in place. The worker polls its config files
//! for the resource's `spec.state`, stops moving records while it is not
//! `Running`, and starts again when it is — without a pod restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tributary_api::DesiredState;

/// `spec.state` of the Connector or Stream in `files`; `Running` when absent
/// or unreadable (the config was already validated at start; a file being
/// replaced must not pause a pipeline).
pub fn desired_state(files: &[PathBuf]) -> DesiredState {
    files.iter().find_map(|file| state_in(file)).unwrap_or_default()
}

fn state_in(file: &Path) -> Option<DesiredState> {
    let text = std::fs::read_to_string(file).ok()?;
    serde_yaml::Deserializer::from_str(&text).find_map(|document| {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(document).ok()?;
        let kind = value.get("kind")?.as_str()?;
        if kind != "Connector" && kind != "Stream" {
            return None;
        }
        let state = value.get("spec").and_then(|s| s.get("state"));
        Some(
            state
                .and_then(|s| serde_yaml::from_value(s.clone()).ok())
                .unwrap_or_default(),
        )
    })
}

/// A receiver of `spec.state`, re-read from `files` every `interval`.
pub fn follow(files: Vec<PathBuf>, interval: Duration) -> watch::Receiver<DesiredState> {
    let (sender, receiver) = watch::channel(desired_state(&files));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            if sender.is_closed() {
                return;
            }
            let state = desired_state(&files);
            sender.send_if_modified(|current| {
                let changed = *current != state;
                *current = state;
                changed
            });
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_state_of_the_workload_document_only() {
        let dir = std::env::temp_dir().join(format!("tributary-lifecycle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.yaml");
        std::fs::write(
            &file,
            "kind: KafkaCluster\nspec:\n  state: Paused\n---\nkind: Connector\nspec:\n  state: Paused\n",
        )
        .unwrap();
        assert_eq!(desired_state(std::slice::from_ref(&file)), DesiredState::Paused);
        std::fs::write(
            &file,
            "kind: KafkaCluster\nspec: {}\n---\nkind: Stream\nspec: {sql: x}\n",
        )
        .unwrap();
        assert_eq!(desired_state(std::slice::from_ref(&file)), DesiredState::Running);
        assert_eq!(desired_state(&[dir.join("missing.yaml")]), DesiredState::Running);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
