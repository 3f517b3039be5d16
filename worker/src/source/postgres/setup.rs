//! Publication and slot lifecycle: created when missing, never dropped
//! except on an explicit request (`tributary-worker drop-slot`).

use tokio_postgres::Client;
use tributary_api::connector::PublicationAutocreate;

use crate::config::PostgresConfig;

/// Setting up or removing the publication or slot failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The publication is missing and may not be created.
    #[error(
        "spec.source.postgres.publicationName: publication {0:?} does not exist and publicationAutocreate is Disabled; create it (CREATE PUBLICATION … FOR TABLE …) or set publicationAutocreate"
    )]
    PublicationMissing(String),
    /// `Filtered` matched no table.
    #[error("spec.source.postgres.tableIncludeList: no table of the database matches")]
    NoTables,
    /// A statement failed.
    #[error("{what}: {source}")]
    Statement {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

fn statement(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SetupError {
    let what = what.into();
    move |source| SetupError::Statement { what, source }
}

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A replication slot as `pg_replication_slots` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// `confirmed_flush_lsn`.
    pub confirmed_flush: Option<String>,
    /// Another connection is streaming from it.
    pub active: bool,
}

/// The slot `name` in this database, if it exists.
pub async fn slot(client: &Client, name: &str) -> Result<Option<SlotInfo>, SetupError> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text, active FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&name],
        )
        .await
        .map_err(statement(format!("reading replication slot {name}")))?;
    Ok(row.map(|r| SlotInfo {
        confirmed_flush: r.get(0),
        active: r.get(1),
    }))
}

/// Makes sure the publication exists as `publicationAutocreate` says; with
/// `Filtered`, also keeps its table list equal to the include list.
pub async fn ensure_publication(client: &Client, config: &PostgresConfig) -> Result<(), SetupError> {
    let name = &config.spec.publication_name;
    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[name])
        .await
        .map_err(statement(format!("reading publication {name}")))?
        .is_some();
    match config.spec.publication_autocreate {
        PublicationAutocreate::Disabled if !exists => Err(SetupError::PublicationMissing(name.clone())),
        PublicationAutocreate::Disabled => Ok(()),
        PublicationAutocreate::AllTables if exists => Ok(()),
        PublicationAutocreate::AllTables => {
            let sql = format!("CREATE PUBLICATION {} FOR ALL TABLES", quote_ident(name));
            client
                .batch_execute(&sql)
                .await
                .map_err(statement(format!("creating publication {name}")))?;
            tracing::info!(publication = %name, "created publication for all tables");
            Ok(())
        }
        PublicationAutocreate::Filtered => {
            let rows = client
                .query(
                    "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') \
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                       AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
                    &[],
                )
                .await
                .map_err(statement("listing tables"))?;
            let tables: Vec<String> = rows
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .filter(|(schema, table)| config.captures(schema, table))
                .map(|(schema, table)| format!("{}.{}", quote_ident(&schema), quote_ident(&table)))
                .collect();
            if tables.is_empty() {
                return Err(SetupError::NoTables);
            }
            let sql = if exists {
                format!(
                    "ALTER PUBLICATION {} SET TABLE {}",
                    quote_ident(name),
                    tables.join(", ")
                )
            } else {
                format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    quote_ident(name),
                    tables.join(", ")
                )
            };
            client
                .batch_execute(&sql)
                .await
                .map_err(statement(format!("creating publication {name}")))?;
            tracing::info!(publication = %name, tables = tables.len(), "publication lists the included tables");
            Ok(())
        }
    }
}

/// Drops the slot (and the publication when `publication` is set): the
/// explicit cleanup, so a removed connector does not keep retaining WAL.
pub async fn drop_slot(
    client: &Client,
    config: &PostgresConfig,
    publication: bool,
) -> Result<Vec<String>, SetupError> {
    let mut done = Vec::new();
    let slot_name = &config.spec.slot_name;
    if slot(client, slot_name).await?.is_some() {
        client
            .execute("SELECT pg_drop_replication_slot($1)", &[slot_name])
            .await
            .map_err(statement(format!("dropping replication slot {slot_name}")))?;
        done.push(format!("dropped replication slot {slot_name}"));
    }
    if publication {
        let name = &config.spec.publication_name;
        client
            .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(name)))
            .await
            .map_err(statement(format!("dropping publication {name}")))?;
        done.push(format!("dropped publication {name}"));
    }
    Ok(done)
}

/// WAL bytes the slot keeps from being recycled.
pub async fn retained_wal_bytes(client: &Client, slot_name: &str) -> Result<Option<u64>, SetupError> {
    let row = client
        .query_opt(
            "SELECT (pg_current_wal_lsn() - restart_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot_name],
        )
        .await
        .map_err(statement("reading retained WAL"))?;
    Ok(row
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .map(|b| u64::try_from(b).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_ident("order items"), "\"order items\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
