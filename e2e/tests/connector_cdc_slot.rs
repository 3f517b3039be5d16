//! The replication slot of a CDC Connector across its lifecycle, on the
//! real control plane with the operator in-process, the worker as a real
//! process (kubelet harness) and the local Postgres:
//!
//! - `slotDeletionPolicy: Delete`: deleting the Connector stops the worker,
//!   then drops the slot and the publication, then the Connector is gone;
//! - while the database cannot be reached, the deleted Connector stays,
//!   saying why in status and Events (without the password), until it can;
//! - `Retain` (default): `Stopped` shows in status the WAL the slot retains
//!   while nothing reads it, and deleting the Connector keeps the slot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use support::{Database, with_operator_and_kubelet};
use tributary_api::Connector;
use tributary_e2e::kubelet::Kubelet;
use tributary_testkit::eventually;

const WAIT: Duration = Duration::from_mins(2);

/// The test's database, with a table `items`; its name is also the slot's
/// and the publication's.
async fn database(prefix: &str, postgres: &str) -> Database {
    let db = Database::new(prefix, postgres).await;
    db.session()
        .await
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, note text)")
        .await
        .unwrap();
    db
}

fn connector(db: &Database, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Connector\nmetadata:\n  name: {name}\nspec:\n  source:\n    postgres:\n      host: {host}\n      port: {port}\n      database: {db}\n      user: postgres\n      topicPrefix: {prefix}\n      slotName: {db}\n      publicationName: {db}\n      snapshotMode: NoData\n{extra}",
        host = db.host,
        port = db.port,
        db = db.name,
        prefix = db.name.replace('_', "-"),
    )
}

async fn slot_exists(db: &Database) -> bool {
    db.admin
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&db.name],
        )
        .await
        .unwrap()
        .is_some()
}

async fn publication_exists(db: &Database) -> bool {
    db.session()
        .await
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&db.name])
        .await
        .unwrap()
        .is_some()
}

async fn wait_slot(db: &Database, kubelet: &Kubelet) {
    eventually("the worker created its slot", WAIT, || async {
        Ok(slot_exists(db).await.then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_delete_the_slot_and_publication_go_after_the_worker_stopped() {
    let (harness, kubelet) = with_operator_and_kubelet("e2e-slot-delete").await;
    let postgres = harness.endpoints.postgres.clone();
    let db = database("e2e_slot_delete", &postgres).await;
    harness
        .apply(&connector(&db, "cdc", "      slotDeletionPolicy: Delete\n"))
        .await
        .unwrap();
    let connector = harness
        .wait_for::<Connector>("cdc", "finalizer added", |c| {
            c.finalizers()
                .iter()
                .any(|f| f == "tributary.dev/replication-slot")
        })
        .await;
    assert!(connector.spec.source.is_some());
    wait_slot(&db, &kubelet).await;
    assert!(publication_exists(&db).await);

    let connectors = harness.api::<Connector>();
    connectors.delete("cdc", &DeleteParams::default()).await.unwrap();
    eventually("the Connector is gone", WAIT, || async {
        Ok(connectors.get_opt("cdc").await?.is_none().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    assert!(!slot_exists(&db).await, "slot dropped");
    assert!(!publication_exists(&db).await, "publication dropped");
    // kwok removes a deleted pod from the API at once, so the harness may
    // still be stopping the process; Postgres refusing to drop an active
    // slot is what guarantees the worker had let go of it.
    eventually("no worker process left", WAIT, || async {
        Ok(kubelet
            .processes()
            .iter()
            .all(|p| p.namespace != harness.namespace)
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));
    assert!(
        harness
            .event_reasons("cdc")
            .await
            .iter()
            .any(|r| r == "SlotDropped"),
        "an Event says what was dropped"
    );

    drop(kubelet);
    db.drop().await;
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_retain_stopped_shows_the_retained_wal_and_deletion_keeps_the_slot() {
    let (harness, kubelet) = with_operator_and_kubelet("e2e-slot-retain").await;
    let postgres = harness.endpoints.postgres.clone();
    let db = database("e2e_slot_retain", &postgres).await;
    harness.apply(&connector(&db, "cdc", "")).await.unwrap();
    wait_slot(&db, &kubelet).await;
    let connector = harness.wait_ready::<Connector>("cdc").await;
    assert!(connector.finalizers().is_empty(), "{:?}", connector.finalizers());

    // Stopped: no worker, the slot stays and retains what is written now.
    let connectors = harness.api::<Connector>();
    connectors
        .patch(
            "cdc",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"state": "Stopped"}})),
        )
        .await
        .unwrap();
    let ns = harness.namespace.clone();
    eventually("the worker stopped", WAIT, || async {
        Ok(kubelet
            .processes()
            .iter()
            .all(|p| p.namespace != ns)
            .then_some(()))
    })
    .await
    .unwrap();
    // About 2 MiB of rows, so the WAL retained is well above what the
    // worker confirmed before it stopped.
    db.session()
        .await
        .batch_execute("INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 10000) g")
        .await
        .unwrap();
    let stopped = harness
        .wait_for::<Connector>("cdc", "status shows > 1 MiB of WAL retained", |c| {
            c.status
                .as_ref()
                .and_then(|s| s.lag.as_ref())
                .and_then(|l| l.wal_bytes)
                .is_some_and(|b| b > 1024 * 1024)
        })
        .await;
    let status = stopped.status.unwrap();
    assert_eq!(status.replicas, 0);
    assert!(status.lag.unwrap().summary.contains("MiB WAL"));

    // Retain: the Connector goes at once, the slot stays.
    connectors.delete("cdc", &DeleteParams::default()).await.unwrap();
    eventually("the Connector is gone", WAIT, || async {
        Ok(connectors.get_opt("cdc").await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    assert!(slot_exists(&db).await, "slot kept");

    drop(kubelet);
    db.drop().await;
    harness.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_database_keeps_the_connector_until_the_slot_can_be_dropped() {
    let (harness, kubelet) = with_operator_and_kubelet("e2e-slot-unreachable").await;
    let postgres = harness.endpoints.postgres.clone();
    let db = database("e2e_slot_unreachable", &postgres).await;
    harness
        .apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: pg\nstringData:\n  password: s3cret-value\n")
        .await
        .unwrap();
    // Nothing listens on port 1: the worker cannot start, the cleanup cannot connect.
    let unreachable = connector(
        &db,
        "cdc",
        "      slotDeletionPolicy: Delete\n      password: {name: pg, key: password}\n",
    )
    .replace(&format!("port: {}", db.port), "port: 1");
    harness.apply(&unreachable).await.unwrap();
    harness
        .wait_for::<Connector>("cdc", "finalizer added", |c| {
            c.finalizers()
                .iter()
                .any(|f| f == "tributary.dev/replication-slot")
        })
        .await;
    let connectors = harness.api::<Connector>();
    connectors.delete("cdc", &DeleteParams::default()).await.unwrap();
    let stuck = harness
        .wait_for::<Connector>("cdc", "Reconciling: SlotCleanupFailed", |c| {
            c.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Reconciling" && c.reason == "SlotCleanupFailed")
            })
        })
        .await;
    let (_, _, message) = support::condition(Some(&stuck.status.unwrap().conditions), "Reconciling").unwrap();
    assert!(
        message.contains("cannot drop replication slot") && message.contains(":1:"),
        "{message}"
    );
    assert!(!message.contains("s3cret-value"), "{message}");
    assert!(
        harness
            .event_reasons("cdc")
            .await
            .iter()
            .any(|r| r == "SlotCleanupFailed"),
        "a Warning Event says why"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        connectors.get_opt("cdc").await.unwrap().is_some(),
        "kept while unreachable"
    );

    // Reachable again (here: the right port): the cleanup completes.
    let port: u16 = db.port.parse().unwrap();
    connectors
        .patch(
            "cdc",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"source": {"postgres": {"port": port}}}})),
        )
        .await
        .unwrap();
    eventually("the Connector is gone", WAIT, || async {
        Ok(connectors.get_opt("cdc").await?.is_none().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kubelet.all_logs()));

    drop(kubelet);
    db.drop().await;
    harness.cleanup().await;
}
