//! Postgres smoke test: the server runs with `wal_level=logical` and a
//! pgoutput replication slot can be created and dropped, which is all CDC needs.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tokio_postgres::NoTls;
use tributary_testkit::{Endpoints, unique_name};

#[tokio::test]
async fn logical_replication_slot_lifecycle() {
    let endpoints = Endpoints::from_env();
    let (client, connection) =
        tokio_postgres::connect(&format!("{} connect_timeout=5", endpoints.postgres), NoTls)
            .await
            .unwrap_or_else(|e| panic!("Postgres at {:?} unreachable: {e}", endpoints.postgres));
    tokio::spawn(connection);

    let wal_level: String = client.query_one("SHOW wal_level", &[]).await.unwrap().get(0);
    assert_eq!(wal_level, "logical");

    let slot = unique_name("smoke").replace('-', "_");
    let row = client
        .query_one(
            "SELECT slot_name::text, lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), slot);
    assert!(
        row.get::<_, String>(1).contains('/'),
        "an LSN looks like 0/16B3748"
    );

    let plugin: String = client
        .query_one(
            "SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plugin, "pgoutput");

    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
    let remaining = client
        .query(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    assert!(remaining.is_empty(), "slot {slot} still exists after drop");
}
