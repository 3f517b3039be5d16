//! What the worker reads from Postgres' catalog: captured tables, their
//! columns and primary keys, and the types of those columns.
//!
//! The message key is the primary key from the catalog (as Debezium does),
//! not pgoutput's replica-identity flags, which mark every column under
//! REPLICA IDENTITY FULL. Type lookups are cached per (oid, typmod).

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::debezium::row::Column;
use crate::debezium::value::{PgType, column_default};

/// A catalog query failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The query failed.
    #[error("reading the catalog ({what}): {source}")]
    Query {
        /// What was being read.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The table does not exist (any more).
    #[error("table with oid {0} not found")]
    MissingTable(u32),
}

fn query(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> CatalogError {
    move |source| CatalogError::Query { what, source }
}

/// A table as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogTable {
    /// Relation oid.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub table: String,
    /// Columns in table order, primary key marked.
    pub columns: Vec<Column>,
}

/// Resolves types and tables, caching types.
#[derive(Debug, Default)]
pub struct Catalog {
    types: HashMap<(u32, i32), PgType>,
}

impl Catalog {
    /// The tables of `publication`, in schema/name order.
    pub async fn publication_tables(
        &mut self,
        client: &Client,
        publication: &str,
    ) -> Result<Vec<(u32, String, String)>, CatalogError> {
        let rows = client
            .query(
                "SELECT c.oid, p.schemaname::text, p.tablename::text \
                 FROM pg_publication_tables p \
                 JOIN pg_namespace n ON n.nspname = p.schemaname \
                 JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename \
                 WHERE p.pubname = $1 ORDER BY 2, 3",
                &[&publication],
            )
            .await
            .map_err(query("publication tables"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// The oid of `<schema>.<table>`, if it exists.
    pub async fn table_oid(
        &mut self,
        client: &Client,
        schema: &str,
        table: &str,
    ) -> Result<Option<u32>, CatalogError> {
        let row = client
            .query_opt(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &table],
            )
            .await
            .map_err(query("table oid"))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Columns (with types and primary key) of the table `oid`.
    pub async fn table(&mut self, client: &Client, oid: u32) -> Result<CatalogTable, CatalogError> {
        let names = client
            .query_opt(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                &[&oid],
            )
            .await
            .map_err(query("table name"))?
            .ok_or(CatalogError::MissingTable(oid))?;
        let rows = client
            .query(
                "SELECT a.attname::text, a.atttypid, a.atttypmod, \
                        COALESCE(a.attnum = ANY(i.indkey::int2[]), false), a.attnotnull, \
                        pg_get_expr(d.adbin, d.adrelid) \
                 FROM pg_attribute a \
                 LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
                 LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&oid],
            )
            .await
            .map_err(query("columns"))?;
        let mut columns = Vec::with_capacity(rows.len());
        for row in rows {
            let pg_type = self.pg_type(client, row.get(1), row.get(2)).await?;
            let key: bool = row.get(3);
            let optional = !key && !row.get::<_, bool>(4);
            let default = column_default(&pg_type, row.get::<_, Option<&str>>(5), optional);
            columns.push(Column {
                name: row.get(0),
                pg_type,
                key,
                optional,
                default,
            });
        }
        Ok(CatalogTable {
            oid,
            schema: names.get(0),
            table: names.get(1),
            columns,
        })
    }

    /// The type of a column declared with `oid` and `typmod`.
    pub async fn pg_type(&mut self, client: &Client, oid: u32, typmod: i32) -> Result<PgType, CatalogError> {
        if let Some(known) = self.types.get(&(oid, typmod)) {
            return Ok(known.clone());
        }
        let row = client
            .query_opt(
                "SELECT t.typname::text, t.typtype::text, t.typelem, t.typcategory::text, \
                        COALESCE((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
                                  FROM pg_enum e WHERE e.enumtypid = t.oid), '{}'::text[]) \
                 FROM pg_type t WHERE t.oid = $1",
                &[&oid],
            )
            .await
            .map_err(query("type"))?;
        let resolved = match row {
            None => PgType::Text,
            Some(row) => {
                let name: String = row.get(0);
                let kind: String = row.get(1);
                let element: u32 = row.get(2);
                let category: String = row.get(3);
                let labels: Vec<String> = row.get(4);
                if kind == "e" {
                    PgType::Enum(labels)
                } else if category == "A" && element != 0 {
                    // Boxed recursion: an array's element type, same typmod.
                    let element_type = Box::pin(self.pg_type(client, element, typmod)).await?;
                    PgType::Array(Box::new(element_type))
                } else {
                    type_from_name(&name, typmod)
                }
            }
        };
        self.types.insert((oid, typmod), resolved.clone());
        Ok(resolved)
    }
}

/// The mapping of a built-in type name and modifier (pure). Types without a
/// dedicated mapping are sent as their text form, like Debezium's strings.
pub fn type_from_name(name: &str, typmod: i32) -> PgType {
    let precision = || u32::try_from(typmod).unwrap_or(6);
    match name {
        "bool" => PgType::Bool,
        "int2" => PgType::Int2,
        "int4" | "oid" => PgType::Int4,
        "int8" => PgType::Int8,
        "float4" => PgType::Float4,
        "float8" => PgType::Float8,
        "numeric" => {
            // typmod = ((precision << 16) | scale) + 4; -1 when unconstrained.
            let numeric = u32::try_from(typmod - 4)
                .ok()
                .filter(|_| typmod >= 4)
                .map(|m| ((m >> 16) & 0xffff, m & 0xffff));
            PgType::Numeric(numeric)
        }
        "date" => PgType::Date,
        "timestamp" => PgType::Timestamp(precision()),
        "timestamptz" => PgType::TimestampTz(precision()),
        "time" => PgType::Time(precision()),
        "uuid" => PgType::Uuid,
        "json" | "jsonb" => PgType::Json,
        "bytea" => PgType::Bytea,
        _ => PgType::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_modifiers_give_precision_and_scale() {
        // numeric(10,2): ((10 << 16) | 2) + 4
        assert_eq!(
            type_from_name("numeric", (10 << 16 | 2) + 4),
            PgType::Numeric(Some((10, 2)))
        );
        assert_eq!(type_from_name("numeric", -1), PgType::Numeric(None));
    }

    #[test]
    fn timestamp_precision_defaults_to_microseconds() {
        assert_eq!(type_from_name("timestamp", -1), PgType::Timestamp(6));
        assert_eq!(type_from_name("timestamp", 3), PgType::Timestamp(3));
        assert_eq!(type_from_name("varchar", 44), PgType::Text);
    }
}
