//! Test support for Tributary's integration (real services) and end-to-end
//! (real control plane) tiers.
//!
//! The services are started by `scripts/infra` (`make infra-up`) on fixed
//! loopback ports. [`Endpoints`] holds the same defaults, so `cargo test` needs
//! no environment; each can be overridden with the variable that
//! `scripts/infra/lib.sh` writes to `$TRIBUTARY_RUN/env.sh`.

use std::path::PathBuf;
use std::time::Duration;

/// Where the local test infrastructure listens.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// libpq-style connection string of the Postgres superuser.
    pub postgres: String,
    /// Kafka bootstrap servers.
    pub kafka_bootstrap: String,
    /// Base URL of the Confluent-compatible schema registry.
    pub registry_url: String,
    /// Base URL of OpenSearch's REST API.
    pub opensearch_url: String,
    /// Admin kubeconfig of the local control plane.
    pub kubeconfig: PathBuf,
    /// Directory holding the tools built by the infra scripts (helm, kubectl).
    pub bin_dir: PathBuf,
}

impl Endpoints {
    /// Endpoints from the environment, defaulting to the ports the infra scripts use.
    pub fn from_env() -> Self {
        let cache = std::env::var_os("TRIBUTARY_CACHE")
            .map_or_else(|| home_dir().join(".cache").join("tributary"), PathBuf::from);
        let run = std::env::var_os("TRIBUTARY_RUN").map_or_else(|| cache.join("run"), PathBuf::from);
        Self {
            postgres: env_or(
                "TRIBUTARY_PG_URL",
                "host=127.0.0.1 port=55432 user=postgres dbname=postgres",
            ),
            kafka_bootstrap: env_or("TRIBUTARY_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
            registry_url: env_or("TRIBUTARY_REGISTRY_URL", "http://127.0.0.1:18081/apis/ccompat/v7"),
            opensearch_url: env_or("TRIBUTARY_OPENSEARCH_URL", "http://127.0.0.1:19200"),
            kubeconfig: std::env::var_os("TRIBUTARY_KUBECONFIG")
                .map_or_else(|| run.join("kubeconfig"), PathBuf::from),
            bin_dir: std::env::var_os("TRIBUTARY_BIN").map_or_else(|| cache.join("bin"), PathBuf::from),
        }
    }

    /// Path of a tool built by the infra scripts, e.g. `helm`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// A name no other test (or earlier run) uses: `<prefix>-<8 hex chars>`.
/// Lowercase and DNS-safe, so it serves for topics, subjects, indices and namespaces.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..8])
}

/// Polls `check` until it returns `Ok(Some(value))` or `timeout` elapses.
///
/// `Ok(None)` means "not yet"; an `Err` is remembered and reported if time runs out,
/// so a timeout says what was last seen instead of just "timed out".
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match last_error {
                Some(error) => error.context(format!("{what}: not reached within {timeout:?}")),
                None => anyhow::anyhow!("{what}: not reached within {timeout:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_dns_safe_and_distinct() {
        let a = unique_name("smoke");
        let b = unique_name("smoke");
        assert_ne!(a, b);
        assert!(a.starts_with("smoke-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }

    #[tokio::test]
    async fn eventually_reports_the_last_error_on_timeout() {
        let result: anyhow::Result<()> = eventually("never", Duration::from_millis(300), || async {
            anyhow::bail!("still broken")
        })
        .await;
        let message = format!("{:#}", result.unwrap_err());
        assert!(message.contains("never: not reached"), "{message}");
        assert!(message.contains("still broken"), "{message}");
    }
}
