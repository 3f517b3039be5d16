//! The replication slot of a Postgres CDC source, seen from the operator.
//!
//! Two uses: the WAL the slot retains, reported in status while no worker
//! runs to report it (`spec.state: Stopped`), and dropping the slot and the
//! publication when a Connector with `slotDeletionPolicy: Delete` is deleted
//! (after its workers are gone, so the slot is inactive).
//!
//! The operator connects as the worker does: the spec's host, port,
//! database and user, and the password read from the Secret the spec
//! references. The password is only handed to the driver; it is never
//! logged, stored or put into an error.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tokio_postgres::NoTls;
use tributary_api::connector::{PostgresSource, PublicationAutocreate};
use tributary_worker::source::postgres::setup::quote_ident;

/// Talking to the source database failed.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// The password Secret or key is missing.
    #[error("spec.source.postgres.password: {0}")]
    Password(String),
    /// Reading the password Secret failed.
    #[error("reading spec.source.postgres.password: Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The database cannot be reached or refused the login.
    #[error("connecting to Postgres at {host}:{port}: {source}")]
    Connect {
        /// `spec.source.postgres.host`.
        host: String,
        /// `spec.source.postgres.port`.
        port: u16,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A statement failed.
    #[error("{what}: {source}")]
    Statement {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A connection still streams from the slot, so it cannot be dropped.
    #[error(
        "replication slot {slot:?} is still in use by backend process {pid}; waiting until it is released"
    )]
    Active {
        /// The slot.
        slot: String,
        /// `active_pid` of the connection holding it.
        pid: i32,
    },
}

fn statement(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SlotError {
    let what = what.into();
    move |source| SlotError::Statement { what, source }
}

/// Connects to the source database of `pg` (a Connector in `namespace`).
pub async fn connect(
    client: &kube::Client,
    namespace: &str,
    pg: &PostgresSource,
) -> Result<tokio_postgres::Client, SlotError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&pg.host)
        .port(pg.port)
        .dbname(&pg.database)
        .user(&pg.user)
        .application_name("tributary-operator")
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Some(reference) = &pg.password {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = secrets
            .get_opt(&reference.name)
            .await?
            .ok_or_else(|| SlotError::Password(format!("Secret {namespace}/{} not found", reference.name)))?;
        let password = crate::cluster::secret_value(&secret, &reference.key).ok_or_else(|| {
            SlotError::Password(format!(
                "Secret {namespace}/{} has no key {:?}",
                reference.name, reference.key
            ))
        })?;
        config.password(password);
    }
    let (db, connection) = config.connect(NoTls).await.map_err(|source| SlotError::Connect {
        host: pg.host.clone(),
        port: pg.port,
        source,
    })?;
    // The connection task ends when `db` is dropped.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "postgres connection closed");
        }
    });
    Ok(db)
}

/// WAL bytes the slot `slot` keeps from being recycled
/// (`pg_current_wal_lsn() - restart_lsn`); `None` when the slot does not
/// exist in this database.
pub async fn retained_wal_bytes(db: &tokio_postgres::Client, slot: &str) -> Result<Option<i64>, SlotError> {
    let row = db
        .query_opt(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(statement(format!(
            "reading the WAL retained by replication slot {slot}"
        )))?;
    Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).map(|b| b.max(0)))
}

/// Drops the slot of `pg` and, unless it was made by someone else
/// (`publicationAutocreate: Disabled`), its publication. Returns what was
/// dropped, for an Event; missing objects are not an error (a retry after a
/// partial cleanup goes on where it stopped).
pub async fn drop_slot_and_publication(
    db: &tokio_postgres::Client,
    pg: &PostgresSource,
) -> Result<Vec<String>, SlotError> {
    let slot = &pg.slot_name;
    let mut dropped = Vec::new();
    let row = db
        .query_opt(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
            &[slot],
        )
        .await
        .map_err(statement(format!("reading replication slot {slot}")))?;
    if let Some(row) = row {
        if let Some(pid) = row.get::<_, Option<i32>>(0) {
            return Err(SlotError::Active {
                slot: slot.clone(),
                pid,
            });
        }
        db.execute("SELECT pg_drop_replication_slot($1)", &[slot])
            .await
            .map_err(statement(format!("dropping replication slot {slot}")))?;
        dropped.push(format!("replication slot {slot}"));
    }
    if pg.publication_autocreate != PublicationAutocreate::Disabled {
        let name = &pg.publication_name;
        let exists = db
            .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[name])
            .await
            .map_err(statement(format!("reading publication {name}")))?
            .is_some();
        if exists {
            db.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(name)))
                .await
                .map_err(statement(format!("dropping publication {name}")))?;
            dropped.push(format!("publication {name}"));
        }
    }
    Ok(dropped)
}
