//! `COPY`: an export and a read (`TO STDOUT`, rebuilt as a masked query)
//! or a write (`FROM STDIN`); server-side files and programs refused.

use super::*;
use crate::schema::{ColId, RelId};

/// `COPY … TO STDOUT` is an export and a read: every column of the
/// relations it reads that is not denied must be exportable, and masks
/// apply as in a query (`COPY t TO` is rebuilt as `COPY (SELECT … FROM t)
/// TO`, since only a query can carry the masking subquery). `COPY … FROM
/// STDIN` is a write to its table. Server-side files and programs are
/// refused: their data would bypass the proxy.
pub(super) fn copy(cx: Cx<'_>, stmt: &sql::Statement, text: &str) -> Result<Outcome, Denial> {
    let sql::Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        payload,
    } = stmt
    else {
        return Err(denials::internal("COPY"));
    };
    match (*to, target, source) {
        (false, sql::CopyTarget::Stdin, sql::CopySource::Table { table_name, .. }) => {
            let parts = analyze::folded_parts(table_name);
            let m = model::build(stmt, text, &cx.plan.schema);
            writes(cx, &m, Some(&parts), Some(stmt))
        }
        (true, sql::CopyTarget::Stdout, sql::CopySource::Query(_)) => {
            let m = model::build(stmt, text, &cx.plan.schema);
            if m.inventory.statements > 1 {
                // `COPY (INSERT … RETURNING …) TO STDOUT` and `COPY (WITH
                // d AS (DELETE …) SELECT …) TO STDOUT` write: the writing
                // rules apply as well, as for a data-modifying CTE.
                writes(cx, &m, None, Some(stmt))?;
            }
            exports(cx, &m)?;
            let out = no_limit_in_copy(reads(cx, &m, stmt, text)?)?;
            row_locks(cx, stmt)?;
            Ok(out)
        }
        (
            true,
            sql::CopyTarget::Stdout,
            sql::CopySource::Table {
                table_name,
                columns,
            },
        ) => {
            // The whole text is replaced, so the COPY must be all of it.
            if Parser::parse_sql(&PostgreSqlDialect {}, text).map_or(0, |s| s.len()) != 1 {
                return Err(denials::copy_not_alone());
            }
            let list = if columns.is_empty() {
                "*".to_owned()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let query = match Parser::parse_sql(
                &PostgreSqlDialect {},
                &format!("SELECT {list} FROM {table_name}"),
            ) {
                Ok(mut s) if s.len() == 1 => match s.remove(0) {
                    sql::Statement::Query(q) => q,
                    _ => return Err(denials::internal("COPY")),
                },
                _ => return Err(denials::internal("COPY")),
            };
            let as_query = sql::Statement::Copy {
                source: sql::CopySource::Query(query),
                to: true,
                target: target.clone(),
                options: options.clone(),
                legacy_options: legacy_options.clone(),
                payload: payload.clone(),
            };
            let new_text = as_query.to_string();
            let reparsed = match Parser::parse_sql(&PostgreSqlDialect {}, &new_text) {
                Ok(s) if s.len() == 1 => s,
                _ => return Err(denials::internal("COPY")),
            };
            let mut inner = copy(cx, &reparsed[0], &new_text)?;
            let rewritten = rewrite::splice(&new_text, &mut inner.edits)
                .ok_or_else(|| denials::internal("COPY"))?;
            inner.edits = vec![Edit {
                start: 0,
                end: text.len(),
                text: rewritten,
            }];
            Ok(inner)
        }
        _ => Err(denials::copy_server_side()),
    }
}

/// Every column the statement reads that is not denied must be exportable
/// (the `export` action): the columns the scope resolver finds it uses, or,
/// where the resolver cannot follow the statement, every column of the
/// relations it names, in `FROM` or elsewhere.
pub(super) fn exports(cx: Cx<'_>, m: &Model) -> Result<(), Denial> {
    let Cx {
        plan,
        access,
        needs,
        ..
    } = cx;
    let check = |ri: RelId, ci: ColId| -> Result<(), Denial> {
        if matches!(access.columns[ri][ci], Access::Denied { .. }) {
            return Ok(());
        }
        let rel = plan.schema.relation(ri);
        let what = format!(
            "exporting column `{}` of `{}` (COPY TO)",
            rel.columns[ci].name,
            rel.qualified()
        );
        match perm_denial(plan, needs, &access.export[ri][ci], "export", &what) {
            Some(d) => Err(d),
            None => Ok(()),
        }
    };
    if let Ok(reads) = &m.reads {
        let mut read: Vec<&(RelId, ColId)> = reads.usages.keys().collect();
        read.sort_unstable();
        return read.into_iter().try_for_each(|&(ri, ci)| check(ri, ci));
    }
    // An `INSERT`'s target is no `FROM` entry, and its `RETURNING` can
    // return stored columns (`ON CONFLICT … DO UPDATE`, defaults,
    // triggers): every relation named counts, CTEs aside.
    let named = m
        .inventory
        .relation_names()
        .filter(|(_, cte)| !cte)
        .filter_map(|(parts, _)| match resolve_real(plan, parts) {
            Resolved::Relation(ri) => Some(ri),
            _ => None,
        });
    for ri in named {
        for ci in ColId::all(access.export[ri].len()) {
            check(ri, ci)?;
        }
    }
    Ok(())
}

/// COPY output is one stream the proxy cannot cut row by row (a binary
/// COPY's trailer would be lost): under a row limit it is refused.
pub(super) fn no_limit_in_copy(out: Outcome) -> Result<Outcome, Denial> {
    match &out.row_limit {
        None => Ok(out),
        Some((rows, rule)) => Err(denials::limited_copy(*rows, rule)),
    }
}
