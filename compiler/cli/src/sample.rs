//! `clsfc suggest`'s database side: reading a bounded sample of each table's values, inside one read-only
//! transaction and a time budget, and counting what the validators accept.
//! Values go from the row straight into [`ColumnCounts::add`] and are
//! dropped: nothing here stores, logs or returns one.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

use clsf_catalog::PullError;
use clsf_compiler::engine::rewrite::quote_ident;
use clsf_compiler::schema::{Column, Schema, TypeFamily};
use clsf_compiler::suggest::{ColumnCounts, MIN_VALUES, Outcome, TableSample, is_suggested};

/// How much to read.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Rows read per table at most.
    pub rows: u32,
    /// Wall-clock time for all tables together.
    pub time: Duration,
    /// A seed for `TABLESAMPLE … REPEATABLE`, for reproducible samples.
    pub seed: Option<u32>,
}

/// No single table waits for less than this, unless less than this is
/// left of the whole budget.
const MIN_SLICE: Duration = Duration::from_millis(250);

/// Characters of a value read: enough for every kind detected (the longest,
/// a JWT, is checked by its header), bounded so a large document costs no
/// more than a short one.
const VALUE_PREFIX: u32 = 512;

/// Whether a column's values are sampled: text and numbers (card numbers
/// stored as `bigint` or `numeric`) and the network types. Dates, booleans,
/// uuids, binary and structured types hold none of the kinds detected.
fn is_sampled(column: &Column) -> bool {
    let base = column.value_type().split('(').next().unwrap_or("").trim();
    matches!(column.family(), TypeFamily::Text | TypeFamily::Number)
        || matches!(base, "inet" | "cidr" | "macaddr" | "citext")
}

/// Samples every table suggestions concern. Connection-level failures are
/// errors; a table that cannot be read in its share of the budget (or at
/// all) is recorded as skipped with the reason, never with the server's
/// message (which could quote a value).
pub async fn sample(
    client: &Client,
    schema: &Schema,
    budget: Budget,
) -> Result<Vec<TableSample>, PullError> {
    let started = Instant::now();
    let failed = |e: tokio_postgres::Error| {
        PullError(format!(
            "cannot sample: {}",
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.code().code().to_owned())
        ))
    };
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(failed)?;
    let estimates = row_estimates(client).await.map_err(failed)?;
    let tables: Vec<_> = schema
        .relations
        .iter()
        .filter(|r| is_suggested(r))
        .collect();
    let mut out = Vec::with_capacity(tables.len());
    for (done, relation) in tables.iter().enumerate() {
        let columns: Vec<&Column> = relation.columns.iter().filter(|c| is_sampled(c)).collect();
        let remaining = budget.time.saturating_sub(started.elapsed());
        let outcome = if columns.is_empty() {
            Outcome::Sampled {
                rows: 0,
                columns: Vec::new(),
            }
        } else if remaining.is_zero() {
            Outcome::Skipped("the time budget ran out before it was sampled".into())
        } else {
            let share = remaining / u32::try_from(tables.len() - done).unwrap_or(u32::MAX);
            let slice = share.max(MIN_SLICE).min(remaining);
            let estimate = estimates
                .iter()
                .find(|(s, n, _)| *s == relation.schema && *n == relation.name)
                .map_or(-1.0, |(_, _, e)| *e);
            let (schema_name, table_name) =
                (quote_ident(&relation.schema), quote_ident(&relation.name));
            let sql = select_sql(&schema_name, &table_name, &columns, estimate, budget);
            let sampled_at = Instant::now();
            let outcome = read_table(client, &sql, &columns, slice).await?;
            // A page sample of a table the planner's estimate overrates (rows
            // deleted since the last ANALYZE) can come back nearly empty:
            // read from the start instead, in what is left of the slice.
            let left = slice.saturating_sub(sampled_at.elapsed());
            match outcome {
                Outcome::Sampled { rows, .. }
                    if rows < MIN_VALUES && sql.contains("TABLESAMPLE") && !left.is_zero() =>
                {
                    let sql = select_sql(&schema_name, &table_name, &columns, -1.0, budget);
                    read_table(client, &sql, &columns, left).await?
                }
                outcome => outcome,
            }
        };
        out.push(TableSample {
            schema: relation.schema.clone(),
            name: relation.name.clone(),
            outcome,
        });
    }
    client.batch_execute("COMMIT").await.map_err(failed)?;
    Ok(out)
}

/// `reltuples` of every table: the planner's row estimate (−1 before the
/// first ANALYZE or VACUUM).
async fn row_estimates(
    client: &Client,
) -> Result<Vec<(String, String, f64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname, c.reltuples::float8
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'f')",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The sampling query. A table the planner believes larger than four
/// samples is read through `TABLESAMPLE SYSTEM` at the percentage that
/// yields about four times the rows wanted, so only that share of its
/// pages is read; a small or never-analysed table is read from the start
/// with `LIMIT`, which reads no more than it returns.
fn select_sql(
    schema: &str,
    table: &str,
    columns: &[&Column],
    estimate: f64,
    budget: Budget,
) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|c| format!("left({}::text, {VALUE_PREFIX})", quote_ident(&c.name)))
        .collect();
    let wanted = f64::from(budget.rows.max(1));
    let sample = if estimate > 4.0 * wanted {
        let percent = (400.0 * wanted / estimate).clamp(0.0001, 100.0);
        let repeatable = budget
            .seed
            .map(|s| format!(" REPEATABLE ({s})"))
            .unwrap_or_default();
        format!(" TABLESAMPLE SYSTEM ({percent:.6}){repeatable}")
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM {schema}.{table}{sample} LIMIT {}",
        list.join(", "),
        budget.rows
    )
}

/// Runs one sampling query under a savepoint and a statement timeout of
/// `slice`, counting values column by column.
async fn read_table(
    client: &Client,
    sql: &str,
    columns: &[&Column],
    slice: Duration,
) -> Result<Outcome, PullError> {
    let ms = slice.as_millis().max(1);
    let setup = format!(
        "SAVEPOINT clsf_sample; SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}"
    );
    let connection = |e: tokio_postgres::Error| PullError(format!("cannot sample: {e}"));
    client.batch_execute(&setup).await.map_err(connection)?;
    let mut counts = vec![ColumnCounts::default(); columns.len()];
    let mut rows = 0;
    match client.simple_query(sql).await {
        Ok(messages) => {
            for message in messages {
                if let SimpleQueryMessage::Row(row) = message {
                    rows += 1;
                    for (i, c) in counts.iter_mut().enumerate() {
                        if let Some(value) = row.get(i) {
                            c.add(value);
                        }
                    }
                }
            }
            client
                .batch_execute("RELEASE SAVEPOINT clsf_sample")
                .await
                .map_err(connection)?;
            Ok(Outcome::Sampled {
                rows,
                columns: columns.iter().map(|c| c.name.clone()).zip(counts).collect(),
            })
        }
        Err(e) => {
            let Some(db) = e.as_db_error() else {
                return Err(connection(e));
            };
            let why = match db.code().code() {
                "57014" | "55P03" => format!("its share of the time budget ({ms} ms) ran out"),
                "42501" => "no SELECT privilege".to_owned(),
                code => format!("the database refused it (SQLSTATE {code})"),
            };
            client
                .batch_execute("ROLLBACK TO SAVEPOINT clsf_sample")
                .await
                .map_err(connection)?;
            Ok(Outcome::Skipped(why))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, type_name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: type_name.into(),
            nullable: true,
            base_type: None,
        }
    }

    #[test]
    fn large_tables_are_read_through_a_page_sample_small_ones_with_limit() {
        let email = col("Email", "text");
        let budget = Budget {
            rows: 500,
            time: Duration::from_secs(1),
            seed: Some(7),
        };
        assert_eq!(
            select_sql("public", "\"T\"", &[&email], 1_000_000.0, budget),
            "SELECT left(\"Email\"::text, 512) FROM public.\"T\" TABLESAMPLE SYSTEM (0.200000) REPEATABLE (7) LIMIT 500"
        );
        assert_eq!(
            select_sql("public", "t", &[&email], -1.0, budget),
            "SELECT left(\"Email\"::text, 512) FROM public.t LIMIT 500"
        );
    }

    #[test]
    fn only_columns_that_can_hold_a_detected_kind_are_read() {
        assert!(is_sampled(&col("a", "character varying(20)")));
        assert!(is_sampled(&col("a", "bigint")));
        assert!(is_sampled(&col("a", "inet")));
        assert!(!is_sampled(&col("a", "uuid")));
        assert!(!is_sampled(&col("a", "bytea")));
        assert!(!is_sampled(&col("a", "timestamp with time zone")));
        assert!(!is_sampled(&col("a", "text[]")));
    }
}
