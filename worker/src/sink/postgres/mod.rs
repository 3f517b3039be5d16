//! Postgres sink: records as rows of PostgreSQL tables (Kafka Connect's JDBC
//! sink, for Postgres).
//!
//! Data model: a batch is planned ([`plan`]) into the changes of each table —
//! rows to write and keys to delete, at most one change per primary key (the
//! last record of a key wins). Then, per batch:
//!
//! ```text
//!   for each table: create it (autoCreate) or add missing columns
//!                   (autoEvolve) — DDL, committed on its own, idempotent
//!   BEGIN
//!     for each table: CREATE TEMP TABLE IF NOT EXISTS <stage> (its columns)
//!     for each table, for each group of changes (first: all of them):
//!       SAVEPOINT
//!       DELETE … USING json_populate_recordset($1)        (deletes)
//!       COPY <stage> FROM STDIN; INSERT … SELECT … FROM <stage>
//!              [ON CONFLICT (key) DO UPDATE SET …]        (writes, per column set)
//!       ok → RELEASE; a row-level error (SQLSTATE class 22 or 23) →
//!       ROLLBACK TO SAVEPOINT and retry both halves, down to the one bad
//!       row, which is rejected (dead-letter topic)
//!   COMMIT
//! ```
//!
//! So a batch is atomic: either everything but the rejected rows is
//! committed, or nothing is (retry). Rows reach Postgres through `COPY`
//! into a staging table and one merge statement (see [`sql`]). The first
//! version sent them as one JSON parameter read by `json_populate_recordset`;
//! side by side, over several runs, neither is consistently faster on this
//! machine (the spread between runs is larger than the difference), so the
//! COPY path stays: it streams, and COPY's text format is the one Postgres
//! loads fastest (`make bench-sink-postgres`, BENCHMARKS.md).
//!
//! Errors: a lost connection, serialization failure, deadlock, lock timeout
//! or server shutdown is retryable; refused authentication, a missing
//! database, missing privileges or a table that cannot take upserts (no
//! unique index on the key) stop the connector. The password is kept out of
//! `Debug` and every message.

mod plan;
mod sql;
mod types;

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::time::Duration;

use futures::SinkExt;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};
use tributary_api::sink::postgres::{InsertMode, PostgresSink, PrimaryKeyMode};

use self::plan::{Change, Op, Row, TableChanges};
use crate::config::secrets::{SecretError, SecretResolver};
use crate::record::Record;
use crate::sink::{ConnectSchemas, Rejected, SinkError, SinkWriter, WriteOutcome};

/// A Postgres sink block, validated, with its password resolved.
#[derive(Clone)]
pub struct PostgresSinkConfig {
    /// The block as declared.
    pub spec: PostgresSink,
    /// The password, if any (never logged: `Debug` redacts it).
    pub password: Option<String>,
}

impl std::fmt::Debug for PostgresSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSinkConfig")
            .field("spec", &self.spec)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A Postgres sink block that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PostgresSinkError {
    /// A field breaks a rule (the CRD states the same rules in CEL; a
    /// standalone file never passes an apiserver).
    #[error("spec.sink.postgres.{field}: {message}")]
    Invalid {
        /// The field, e.g. `primaryKeyFields`.
        field: &'static str,
        /// What is allowed.
        message: String,
    },
    /// The password Secret could not be resolved.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl PostgresSinkConfig {
    /// Validates `spec` and resolves its password.
    pub fn new(spec: PostgresSink, secrets: &SecretResolver) -> Result<Self, PostgresSinkError> {
        validate(&spec)?;
        let password = spec
            .password
            .as_ref()
            .map(|r| secrets.resolve("spec.sink.postgres.password", r))
            .transpose()?;
        Ok(Self { spec, password })
    }

    /// Connection settings for tokio-postgres.
    pub fn tokio_postgres_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.spec.host)
            .port(self.spec.port)
            .dbname(&self.spec.database)
            .user(&self.spec.user)
            .application_name("tributary-sink")
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }
}

/// The rules of the CRD's CEL validations, plus the table name template.
pub fn validate(spec: &PostgresSink) -> Result<(), PostgresSinkError> {
    let invalid = |field, message: &str| {
        Err(PostgresSinkError::Invalid {
            field,
            message: message.to_owned(),
        })
    };
    if spec.insert_mode != InsertMode::Insert && spec.primary_key_mode == PrimaryKeyMode::None {
        return invalid(
            "primaryKeyMode",
            "insertMode Upsert and Update need a primary key: set primaryKeyMode to RecordKey or RecordValue, or use insertMode Insert",
        );
    }
    if spec.delete_enabled && spec.primary_key_mode != PrimaryKeyMode::RecordKey {
        return invalid(
            "deleteEnabled",
            "deleteEnabled needs primaryKeyMode RecordKey (a tombstone has only a key); set deleteEnabled: false otherwise",
        );
    }
    if spec.primary_key_mode == PrimaryKeyMode::RecordValue && spec.primary_key_fields.is_empty() {
        return invalid(
            "primaryKeyFields",
            "must name the key columns when primaryKeyMode is RecordValue",
        );
    }
    if spec.primary_key_mode == PrimaryKeyMode::None && !spec.primary_key_fields.is_empty() {
        return invalid("primaryKeyFields", "must be empty when primaryKeyMode is None");
    }
    let rest = spec.table.replace("${topic}", "").replace("${topicSuffix}", "");
    if rest.contains("${") {
        return invalid(
            "table",
            "may contain only the placeholders ${topic} and ${topicSuffix}",
        );
    }
    Ok(())
}

/// Writes batches into Postgres tables. Connects on first use and again
/// after a lost connection.
#[derive(Debug)]
pub struct PostgresWriter {
    config: PostgresSinkConfig,
    client: Option<Client>,
    /// Columns of the tables seen so far (absent: not looked up yet).
    columns: HashMap<String, HashSet<String>>,
    /// Staging table of each table written (temporary: one per session).
    stages: HashMap<String, String>,
}

/// Class of records whose fields have no column (`autoEvolve: false`).
const UNKNOWN_COLUMN: &str = "unknown_column";

impl PostgresWriter {
    /// A writer that connects on its first batch.
    pub fn new(config: PostgresSinkConfig) -> Self {
        Self {
            config,
            client: None,
            columns: HashMap::new(),
            stages: HashMap::new(),
        }
    }

    /// A writer connected now, so bad credentials fail before consuming.
    pub async fn connect(config: PostgresSinkConfig) -> Result<Self, SinkError> {
        let mut writer = Self::new(config);
        writer.client = Some(open(&writer.config).await?);
        Ok(writer)
    }

    /// Writes `batch`, typing columns and values with the Connect schemas
    /// of its records (`schemas[i]` of `batch[i]`; may be empty), as read
    /// from `json-with-schema` input (see [`types`]).
    pub async fn write_typed(
        &mut self,
        batch: &[Record],
        schemas: &[ConnectSchemas],
    ) -> Result<WriteOutcome, SinkError> {
        let plan = plan::plan_typed(&self.config.spec, batch, schemas);
        let mut rejected = plan.rejected;
        if plan.tables.is_empty() {
            return Ok(WriteOutcome { rejected });
        }
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(open(&self.config).await?);
        }
        let Some(client) = self.client.as_ref() else {
            return Err(retryable("no connection".to_owned()));
        };
        let spec = &self.config.spec;
        let mut tables = Vec::with_capacity(plan.tables.len());
        for changes in plan.tables {
            let next = format!("pg_temp.\"tributary_stage_{}\"", self.stages.len());
            let stage = self.stages.entry(changes.table.clone()).or_insert(next).clone();
            let prepared =
                prepare_table(client, spec, &mut self.columns, changes, stage, &mut rejected).await;
            match prepared {
                Ok(Some(table)) => tables.push(table),
                Ok(None) => {}
                Err(error) => return Err(self.failed(error)),
            }
        }
        let result = transaction(client, spec, &tables, &mut rejected).await;
        match result {
            Ok(()) => {
                rejected.sort_by_key(|r| r.index);
                Ok(WriteOutcome { rejected })
            }
            Err(error) => {
                if let Some(client) = self.client.as_ref()
                    && !client.is_closed()
                    && client.batch_execute("ROLLBACK").await.is_err()
                {
                    self.client = None;
                }
                Err(self.failed(error))
            }
        }
    }

    /// Turns a batch-level failure into the runtime's error, forgetting what
    /// may be stale (the connection, the table columns).
    fn failed(&mut self, error: Failure) -> SinkError {
        match error {
            Failure::Batch(error) => {
                if matches!(error, SinkError::Retryable { .. }) {
                    // The table may have changed under us: look it up again,
                    // with fresh staging tables (a new session).
                    self.columns.clear();
                    self.client = None;
                }
                if self.client.as_ref().is_some_and(Client::is_closed) {
                    self.client = None;
                }
                error
            }
            Failure::Row { message, .. } => retryable(message),
        }
    }
}

impl SinkWriter for PostgresWriter {
    fn write(&mut self, batch: &[Record]) -> impl Future<Output = Result<WriteOutcome, SinkError>> + Send {
        self.write_typed(batch, &[])
    }
}

/// A table ready for its changes: quoted name, key columns, changes whose
/// fields all have columns.
struct Table {
    name: String,
    stage: String,
    key: Vec<String>,
    changes: Vec<Change>,
}

/// Creates or evolves the table of `changes` as needed; `None` when there is
/// nothing to do (only deletes, and no table).
async fn prepare_table(
    client: &Client,
    spec: &PostgresSink,
    cache: &mut HashMap<String, HashSet<String>>,
    changes: TableChanges,
    stage: String,
    rejected: &mut Vec<Rejected>,
) -> Result<Option<Table>, Failure> {
    let name = sql::qualified(&spec.schema, &changes.table);
    let key = changes.key_columns();
    if !cache.contains_key(&changes.table) {
        let columns = table_columns(client, &spec.schema, &changes.table).await?;
        if columns.is_empty() {
            if changes.changes.iter().all(|c| c.op == Op::Delete) {
                return Ok(None);
            }
            if !spec.auto_create {
                return Err(Failure::Batch(SinkError::Fatal {
                    message: format!(
                        "table {name} does not exist and spec.sink.postgres.autoCreate is false: create it, or enable autoCreate"
                    ),
                }));
            }
            let types = with_schema_types(
                infer_types(changes.changes.iter().filter_map(write_row)),
                &changes.types,
            );
            let ddl = sql::create_table(&name, &types, &key);
            tracing::info!(table = %name, columns = types.len(), "creating table");
            client.batch_execute(&ddl).await.map_err(|e| classify(&e))?;
        }
        let columns = table_columns(client, &spec.schema, &changes.table).await?;
        cache.insert(changes.table.clone(), columns);
    }
    let known = cache.get(&changes.table).cloned().unwrap_or_default();
    let missing = with_schema_types(
        infer_types(
            changes
                .changes
                .iter()
                .filter_map(write_row)
                .map(|row| row.iter().filter(|(k, _)| !known.contains(*k))),
        ),
        &changes.types,
    );
    let mut kept = changes.changes;
    if !missing.is_empty() {
        if spec.auto_evolve {
            tracing::info!(table = %name, columns = ?missing.iter().map(|c| &c.0).collect::<Vec<_>>(), "adding columns");
            // The staging table is a copy of the old columns: recreate it.
            let ddl = format!(
                "{}; DROP TABLE IF EXISTS {stage}",
                sql::add_columns(&name, &missing)
            );
            client.batch_execute(&ddl).await.map_err(|e| classify(&e))?;
            let columns = table_columns(client, &spec.schema, &changes.table).await?;
            cache.insert(changes.table.clone(), columns);
        } else {
            kept.retain(|change| {
                let Some(row) = write_row(change) else { return true };
                let Some(field) = row.keys().find(|k| !known.contains(*k)) else {
                    return true;
                };
                rejected.push(Rejected {
                    index: change.index,
                    class: UNKNOWN_COLUMN.to_owned(),
                    message: format!(
                        "table {name} has no column {field:?} and spec.sink.postgres.autoEvolve is false"
                    ),
                });
                false
            });
        }
    }
    Ok(Some(Table {
        name,
        stage,
        key,
        changes: kept,
    }))
}

fn write_row(change: &Change) -> Option<&Row> {
    match &change.op {
        Op::Write(row) => Some(row),
        Op::Delete => None,
    }
}

/// Column types for the fields of `rows`, in order of first appearance,
/// widened over every value seen.
fn infer_types<'a, I, R>(rows: I) -> Vec<(String, &'static str)>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = (&'a String, &'a Value)>,
{
    let mut types: Vec<(String, Option<&'static str>)> = Vec::new();
    let mut at: HashMap<&'a String, usize> = HashMap::new();
    for row in rows {
        for (field, value) in row {
            let slot = *at.entry(field).or_insert_with(|| {
                types.push((field.clone(), None));
                types.len() - 1
            });
            let seen = sql::column_type(value);
            types[slot].1 = match (types[slot].1, seen) {
                (Some(a), Some(b)) => Some(sql::widen(a, b)),
                (a, b) => a.or(b),
            };
        }
    }
    types
        .into_iter()
        .map(|(name, ty)| (name, ty.unwrap_or(sql::UNKNOWN_TYPE)))
        .collect()
}

/// `inferred` column types, replaced by the Connect schema's type where
/// the records carried one.
fn with_schema_types(
    inferred: Vec<(String, &'static str)>,
    schema: &HashMap<String, String>,
) -> Vec<(String, String)> {
    inferred
        .into_iter()
        .map(|(name, inferred)| {
            let ty = schema.get(&name).map_or(inferred, String::as_str).to_owned();
            (name, ty)
        })
        .collect()
}

async fn table_columns(client: &Client, schema: &str, table: &str) -> Result<HashSet<String>, Failure> {
    let rows = client
        .query_typed(
            "SELECT a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[(&schema, Type::TEXT), (&table, Type::TEXT)],
        )
        .await
        .map_err(|e| classify(&e))?;
    Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
}

/// Writes every table's changes in one transaction, finding row-level
/// failures by halving (see the module docs).
async fn transaction(
    client: &Client,
    spec: &PostgresSink,
    tables: &[Table],
    rejected: &mut Vec<Rejected>,
) -> Result<(), Failure> {
    let mut begin = "BEGIN".to_owned();
    for table in tables
        .iter()
        .filter(|t| t.changes.iter().any(|c| c.op != Op::Delete))
    {
        begin.push_str("; ");
        begin.push_str(&sql::create_staging(&table.stage, &table.name));
    }
    client.batch_execute(&begin).await.map_err(|e| classify(&e))?;
    for table in tables {
        let mut pending = vec![table.changes.as_slice()];
        while let Some(group) = pending.pop() {
            if group.is_empty() {
                continue;
            }
            client
                .batch_execute("SAVEPOINT tributary_rows")
                .await
                .map_err(|e| classify(&e))?;
            match apply(client, spec, table, group).await {
                Ok(()) => client
                    .batch_execute("RELEASE SAVEPOINT tributary_rows")
                    .await
                    .map_err(|e| classify(&e))?,
                Err(Failure::Row { class, message }) => {
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT tributary_rows")
                        .await
                        .map_err(|e| classify(&e))?;
                    if let [change] = group {
                        tracing::debug!(table = %table.name, index = change.index, %class, "row rejected");
                        rejected.push(Rejected {
                            index: change.index,
                            class,
                            message,
                        });
                    } else {
                        let (first, second) = group.split_at(group.len() / 2);
                        pending.push(second);
                        pending.push(first);
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }
    client.batch_execute("COMMIT").await.map_err(|e| classify(&e))
}

/// The statements for `changes` of `table` (inside the transaction).
async fn apply(
    client: &Client,
    spec: &PostgresSink,
    table: &Table,
    changes: &[Change],
) -> Result<(), Failure> {
    let deletes: Vec<&Row> = changes
        .iter()
        .filter(|c| c.op == Op::Delete)
        .map(|c| &c.key)
        .collect();
    if !deletes.is_empty() {
        execute(client, &sql::delete(&table.name, &table.key), &deletes).await?;
    }
    // One statement per set of columns, so a field absent from a record
    // leaves its column alone (upsert, update) or to its default (insert).
    let mut groups: Vec<(Vec<String>, Vec<&Row>)> = Vec::new();
    let mut at: HashMap<Vec<&String>, usize> = HashMap::new();
    for row in changes.iter().filter_map(write_row) {
        let slot = *at.entry(row.keys().collect()).or_insert_with(|| {
            groups.push((row.keys().cloned().collect(), Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(row);
    }
    for (columns, rows) in groups {
        let (name, stage) = (&table.name, &table.stage);
        let merge = match spec.insert_mode {
            InsertMode::Insert => Some(sql::insert(name, stage, &columns, None)),
            InsertMode::Upsert => Some(sql::insert(name, stage, &columns, Some(&table.key))),
            InsertMode::Update => sql::update(name, stage, &columns, &table.key),
        };
        let Some(merge) = merge else { continue };
        let mut data = Vec::with_capacity(rows.len() * 128);
        sql::copy_rows(&rows, &columns, &mut data);
        copy(client, &sql::copy_into(stage, &columns), data).await?;
        client.batch_execute(&merge).await.map_err(|e| classify(&e))?;
    }
    Ok(())
}

async fn copy(client: &Client, statement: &str, data: Vec<u8>) -> Result<u64, Failure> {
    let sink = client
        .copy_in::<_, Cursor<Vec<u8>>>(statement)
        .await
        .map_err(|e| classify(&e))?;
    let mut sink = Box::pin(sink);
    sink.send(Cursor::new(data)).await.map_err(|e| classify(&e))?;
    sink.as_mut().finish().await.map_err(|e| classify(&e))
}

async fn execute(client: &Client, statement: &str, rows: &[&Row]) -> Result<u64, Failure> {
    let json = serde_json::to_string(rows).map_err(|e| Failure::Batch(retryable(e.to_string())))?;
    client
        .execute_typed(statement, &[(&json, Type::TEXT)])
        .await
        .map_err(|e| classify(&e))
}

/// Why a statement failed.
#[derive(Debug)]
enum Failure {
    /// A row broke a rule (SQLSTATE class 22 or 23): find and reject it.
    Row { class: String, message: String },
    /// The whole batch failed.
    Batch(SinkError),
}

fn retryable(message: String) -> SinkError {
    SinkError::Retryable {
        message,
        retry_after: None,
    }
}

/// Sorts a Postgres error into row-level, retryable or fatal.
fn classify(error: &tokio_postgres::Error) -> Failure {
    let Some(db) = error.as_db_error() else {
        // I/O, a closed connection, a timeout: the server may be back soon.
        return Failure::Batch(retryable(format!("postgres: {error}")));
    };
    let code = db.code().code();
    let mut message = format!("postgres {code}: {}", db.message());
    if let Some(detail) = db.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    if code.starts_with("22") || code.starts_with("23") || *db.code() == SqlState::PROGRAM_LIMIT_EXCEEDED {
        return Failure::Row {
            class: code.to_owned(),
            message,
        };
    }
    let transient = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        // The table changed under us (dropped, or a column dropped): look
        // it up again on the retry.
        SqlState::UNDEFINED_TABLE,
        SqlState::UNDEFINED_COLUMN,
        // Two replicas creating the same table at once.
        SqlState::DUPLICATE_TABLE,
        SqlState::DUPLICATE_COLUMN,
    ];
    if code.starts_with("08") || code.starts_with("53") || transient.contains(db.code()) {
        return Failure::Batch(retryable(message));
    }
    if *db.code() == SqlState::INVALID_COLUMN_REFERENCE {
        message.push_str(
            " (insertMode Upsert needs a primary key or unique index on the key columns of spec.sink.postgres.primaryKeyFields)",
        );
    }
    Failure::Batch(SinkError::Fatal { message })
}

async fn open(config: &PostgresSinkConfig) -> Result<Client, SinkError> {
    let spec = &config.spec;
    let (client, connection) = config
        .tokio_postgres_config()
        .connect(NoTls)
        .await
        .map_err(|error| {
            let message = format!("connecting to Postgres at {}:{}: {error}", spec.host, spec.port);
            match error.code() {
                Some(code) if code.code().starts_with("28") || *code == SqlState::INVALID_CATALOG_NAME => {
                    SinkError::Fatal { message }
                }
                _ => retryable(message),
            }
        })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "postgres sink connection closed");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn validation_names_the_field() {
        let spec = PostgresSink {
            primary_key_mode: PrimaryKeyMode::None,
            ..PostgresSink::default()
        };
        let error = validate(&spec).unwrap_err().to_string();
        assert!(
            error.starts_with("spec.sink.postgres.primaryKeyMode: "),
            "{error}"
        );
        let spec = PostgresSink {
            table: "${topic}_${partition}".into(),
            ..PostgresSink::default()
        };
        let error = validate(&spec).unwrap_err().to_string();
        assert!(error.starts_with("spec.sink.postgres.table: "), "{error}");
        assert!(validate(&PostgresSink::default()).is_ok());
    }

    #[test]
    fn the_password_is_redacted() {
        let config = PostgresSinkConfig {
            spec: PostgresSink::default(),
            password: Some("hunter2".into()),
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn types_are_inferred_over_all_rows() {
        let rows = [
            json!({"id": 1, "price": 2, "note": null}),
            json!({"id": 2, "price": 2.5, "tags": ["a"]}),
        ];
        let types = infer_types(rows.iter().map(|r| r.as_object().unwrap().iter()));
        assert_eq!(
            types,
            [
                ("id".to_owned(), "bigint"),
                ("price".to_owned(), "double precision"),
                ("note".to_owned(), "text"),
                ("tags".to_owned(), "jsonb"),
            ]
        );
    }
}
