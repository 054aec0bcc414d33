//! Schema discovery from a live PostgreSQL catalog: the only code in this
//! crate that talks to a database.

use tokio_postgres::NoTls;

use super::model::{Column, Relation, RelationKind, Schema};

/// Why a pull failed. The message never contains the connection password.
#[derive(Debug)]
pub struct PullError(pub String);

impl std::fmt::Display for PullError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PullError {}

/// Schemas that belong to PostgreSQL itself and are never pulled.
const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "information_schema", "pg_toast"];

const RELATIONS_SQL: &str = "
SELECT n.nspname, c.relname, c.relkind::text, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname <> ALL($1)
  AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
  AND (cardinality($2::text[]) = 0 OR n.nspname = ANY($2))
ORDER BY n.nspname, c.relname, a.attnum";

/// Reads all user relations (optionally only those in `only_schemas`).
pub async fn pull(database_url: &str, only_schemas: &[String]) -> Result<Schema, PullError> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .map_err(|e| {
            PullError(format!(
                "cannot connect to the database: {}",
                redact(&e.to_string(), database_url)
            ))
        })?;
    let conn_task = tokio::spawn(connection);
    let server_version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|e| PullError(format!("cannot read server_version: {e}")))?
        .get(0);
    let system: Vec<String> = SYSTEM_SCHEMAS.iter().map(|s| (*s).to_owned()).collect();
    let rows = client
        .query(RELATIONS_SQL, &[&system, &only_schemas])
        .await
        .map_err(|e| PullError(format!("cannot read the catalog: {e}")))?;
    drop(client);
    let _ = conn_task.await;

    let mut relations: Vec<Relation> = Vec::new();
    for row in rows {
        let schema: String = row.get(0);
        let name: String = row.get(1);
        let kind = match row.get::<_, String>(2).as_str() {
            "r" => RelationKind::Table,
            "p" => RelationKind::PartitionedTable,
            "v" => RelationKind::View,
            "m" => RelationKind::MaterializedView,
            _ => RelationKind::ForeignTable,
        };
        let column = Column {
            name: row.get(3),
            type_name: row.get(4),
            nullable: row.get(5),
        };
        match relations.last_mut() {
            Some(last) if last.schema == schema && last.name == name => last.columns.push(column),
            _ => relations.push(Relation {
                schema,
                name,
                kind,
                columns: vec![column],
            }),
        }
    }
    Ok(Schema::new(server_version, relations))
}

/// Removes the password of `url` from a message, in case a driver echoes it.
fn redact(message: &str, url: &str) -> String {
    match password_of(url) {
        Some(pw) if !pw.is_empty() => message.replace(&pw, "********"),
        _ => message.to_owned(),
    }
}

fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    Some(userinfo.split_once(':')?.1.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted() {
        let url = "postgres://u:s3cret@127.0.0.1:5432/db";
        assert_eq!(redact("failed for s3cret", url), "failed for ********");
    }
}
