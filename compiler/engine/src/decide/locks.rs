//! Locks: `LOCK TABLE` and row locks (`FOR UPDATE`, `FOR NO KEY UPDATE`,
//! `FOR SHARE`, `FOR KEY SHARE`). A lock reads nothing, but all except
//! `ACCESS SHARE` block the table's writers, and PostgreSQL grants them
//! only to roles that may write: clsf asks for the `write` action as
//! PostgreSQL asks for privileges, since every identity reaches the
//! database as the proxy's one role.

use super::*;

/// `LOCK TABLE`: `ACCESS SHARE` (pg_dump's) needs what reading does, which
/// the caller checks; every stronger mode (the default is `ACCESS
/// EXCLUSIVE`) needs the write right on every column of the table, as
/// PostgreSQL needs table-level `UPDATE`, `DELETE` or `TRUNCATE`.
pub(super) fn table_lock(cx: Cx<'_>, lock: &sql::Lock, ri: RelId) -> Result<(), Denial> {
    let mode = lock
        .lock_mode
        .as_ref()
        .unwrap_or(&sql::LockTableMode::AccessExclusive);
    if matches!(mode, sql::LockTableMode::AccessShare) {
        return Ok(());
    }
    let what = format!(
        "locking `{}` IN {mode} MODE",
        cx.plan.schema.relation(ri).qualified()
    );
    match cx.access.write[ri]
        .iter()
        .find_map(|p| perm_denial(cx.plan, cx.needs, p, "write", &what))
    {
        Some(d) => Err(d),
        None => Ok(()),
    }
}

/// Row locks of a query (at any level): each relation a locking clause
/// locks needs the write right on at least one of its columns, as
/// PostgreSQL needs `UPDATE` on one.
pub(super) fn row_locks(cx: Cx<'_>, stmt: &sql::Statement) -> Result<(), Denial> {
    let Cx { plan, access, .. } = cx;
    for parts in locked_relations(stmt) {
        let Resolved::Relation(ri) = resolve_real(plan, &parts) else {
            // Catalogs, CTEs and unknown names are decided by the read.
            continue;
        };
        let perms = &access.write[ri];
        if perms.iter().any(|p| matches!(p, Perm::Allowed)) {
            continue;
        }
        let what = format!(
            "locking rows of `{}` (FOR UPDATE or FOR SHARE)",
            plan.schema.relation(ri).qualified()
        );
        // Approval: the first column's clauses, as for any one column.
        if let Some(d) = perms
            .first()
            .and_then(|p| perm_denial(plan, cx.needs, p, "write", &what))
        {
            return Err(d);
        }
    }
    Ok(())
}

/// The relations the locking clauses of `stmt` lock, as name parts: those
/// of the `FROM` list of the query level that carries the clause (or those
/// its `OF` names), and every relation of a subquery or view there, as
/// PostgreSQL locks them; not those of subqueries elsewhere.
fn locked_relations(stmt: &sql::Statement) -> Vec<Vec<String>> {
    struct Locks(Vec<Vec<String>>);
    impl sql::Visitor for Locks {
        type Break = ();
        fn pre_visit_query(&mut self, q: &sql::Query) -> std::ops::ControlFlow<()> {
            if q.locks.is_empty() {
                return std::ops::ControlFlow::Continue(());
            }
            let sql::SetExpr::Select(select) = q.body.as_ref() else {
                // PostgreSQL refuses a locking clause on a set operation;
                // lock every relation named, to be safe.
                all_relations(q, &mut self.0);
                return std::ops::ControlFlow::Continue(());
            };
            for lock in &q.locks {
                let of = lock
                    .of
                    .as_ref()
                    .and_then(|n| analyze::folded_parts(n).last().cloned());
                for factor in analyze::from_factors(&select.from) {
                    match factor {
                        sql::TableFactor::Table { name, alias, .. } => {
                            let parts = analyze::folded_parts(name);
                            let visible = alias
                                .as_ref()
                                .map(|a| analyze::fold(&a.name))
                                .or_else(|| parts.last().cloned());
                            if of.is_none() || of == visible {
                                self.0.push(parts);
                            }
                        }
                        sql::TableFactor::Derived {
                            subquery, alias, ..
                        } => {
                            let visible = alias.as_ref().map(|a| analyze::fold(&a.name));
                            if of.is_none() || of == visible {
                                all_relations(subquery, &mut self.0);
                            }
                        }
                        _ => {}
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut locks = Locks(Vec::new());
    let _ = sql::Visit::visit(stmt, &mut locks);
    locks.0
}

/// Every relation named in `q`, `TABLE name` bodies included (sqlparser
/// keeps their names as identifiers, which `visit_relations` does not
/// visit, yet PostgreSQL locks their rows as it locks a `FROM` entry's).
fn all_relations(q: &sql::Query, out: &mut Vec<Vec<String>>) {
    struct Names<'o>(&'o mut Vec<Vec<String>>);
    impl sql::Visitor for Names<'_> {
        type Break = ();
        fn pre_visit_relation(&mut self, name: &sql::ObjectName) -> std::ops::ControlFlow<()> {
            self.0.push(analyze::folded_parts(name));
            std::ops::ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, q: &sql::Query) -> std::ops::ControlFlow<()> {
            self.0.extend(
                analyze::table_bodies(&q.body)
                    .into_iter()
                    .map(analyze::table_body_parts),
            );
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = sql::Visit::visit(q, &mut Names(out));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked(text: &str) -> Vec<Vec<String>> {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, text)
            .unwrap()
            .remove(0);
        locked_relations(&stmt)
    }

    #[test]
    fn a_table_body_under_a_row_lock_is_locked() {
        let orders = vec![vec!["orders".to_owned()]];
        assert_eq!(locked("SELECT * FROM (TABLE orders) o FOR UPDATE"), orders);
        assert_eq!(
            locked("SELECT * FROM (SELECT 1 UNION TABLE public.orders) o FOR SHARE"),
            vec![vec!["public".to_owned(), "orders".to_owned()]]
        );
        assert_eq!(locked("SELECT 1 UNION TABLE orders FOR UPDATE"), orders);
    }

    #[test]
    fn only_the_locked_level_is_locked() {
        assert_eq!(
            locked("SELECT o.id FROM orders o JOIN customers c ON true FOR UPDATE OF o"),
            vec![vec!["orders".to_owned()]]
        );
        assert!(locked("SELECT (SELECT 1 FROM (TABLE orders) x LIMIT 1)").is_empty());
    }
}
