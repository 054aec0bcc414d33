//! Name resolution: a written relation name to a relation of the plan,
//! a CTE, a catalog relation or an unknown one, and the relations a
//! statement's column uses resolve to.

use super::*;
use crate::schema::RelId;

/// How a name in a relation position resolves.
pub(super) enum Resolved {
    Relation(RelId),
    Cte,
    Catalog(String),
    Unknown(String),
}

/// How a relation reference of a read's `FROM` resolves: a CTE where one
/// of its name is in scope (as PostgreSQL binds it: `WITH t AS (SELECT *
/// FROM t) SELECT … FROM t` reads relation `t` inside the definition and
/// the CTE outside), a relation otherwise.
pub(super) fn resolve(plan: &Plan, t: &analyze::TableRef) -> Resolved {
    if t.cte {
        return Resolved::Cte;
    }
    resolve_real(plan, &t.parts)
}

/// How a name resolves to a relation, CTEs aside: what a write's target,
/// `COPY`, `LOCK` or any position other than a read's `FROM` names (a CTE
/// is never one).
pub(super) fn resolve_real(plan: &Plan, parts: &[String]) -> Resolved {
    // The schema's one lookup (pg_catalog first, as PostgreSQL searches),
    // the same the scope resolver makes.
    match plan.schema.lookup(parts, SEARCH_PATH) {
        // A catalog relation the policy classifies is decided column by
        // column; any other is refused whole if it exposes values.
        Some(ri) if plan.is_decided(ri) => Resolved::Relation(ri),
        Some(ri) => Resolved::Catalog(plan.schema.relation(ri).name.clone()),
        None => match sql_lists::catalog_name(parts) {
            Some(name) => Resolved::Catalog(name.to_owned()),
            None => Resolved::Unknown(parts.join(".")),
        },
    }
}

pub(super) fn check_catalog(name: &str) -> Result<(), Denial> {
    if sql_lists::PROTECTED_CATALOGS.contains(&name) {
        return Err(denials::protected_catalog(name));
    }
    Ok(())
}

pub(super) use crate::schema::SEARCH_PATH;

/// What the scope resolver found a statement does with its columns.
pub(super) struct Resolution<'m> {
    /// Every relation column it touches, and how.
    pub(super) usages: &'m scope::Usages,
    /// Those made inside its data-modifying parts.
    pub(super) written: &'m scope::Usages,
    /// Columns not readable in clear whose every use a `use` grant covers:
    /// the masking subquery passes them in clear.
    pub(super) granted: HashSet<Source>,
    /// System columns read through relation entries.
    pub(super) system: &'m std::collections::BTreeSet<scope::SystemUse>,
    /// Relations taken whole (`*`, `t.*`, a whole-row `t`).
    pub(super) whole: &'m std::collections::BTreeSet<crate::schema::RelId>,
}

/// The refusal of a column name the resolver did not find where a drifted
/// relation gained a column of that name (`Drift`): it exists, but the
/// policy has not classified it.
pub(super) fn gained_column(cx: Cx<'_>, e: &scope::ScopeError) -> Option<Denial> {
    let (scope::ScopeError::UnknownColumn(c) | scope::ScopeError::UnknownColumnIn(c, _)) = e else {
        return None;
    };
    let ri = cx.env.drift.gained(c.rsplit('.').next().unwrap_or(c))?;
    Some(denials::drifted_column(
        c,
        &cx.plan.schema.relation(ri).qualified(),
    ))
}

/// A statement that names a column no relation of the lock in its scope
/// has is refused, whatever the identity may read (one that reads
/// everything never gets here): the live table may have gained it since
/// the lock was pulled, before the proxy's comparison of the catalog
/// found it, and the policy has not classified it. PostgreSQL would refuse
/// a name that is no column at all. Names over the built-in catalogs,
/// which the engine knows only in part, are left to PostgreSQL.
pub(super) fn no_unknown_lock_column(
    cx: Cx<'_>,
    reads: &Result<scope::StatementReads, scope::ScopeError>,
) -> Result<(), Denial> {
    let Err(e @ scope::ScopeError::UnknownColumnIn(c, relations)) = reads else {
        return Ok(());
    };
    if relations
        .iter()
        .any(|&ri| !crate::drift::built_in(&cx.plan.schema.relation(ri).schema))
    {
        return Err(gained_column(cx, e).unwrap_or_else(|| denials::column_not_in_lock(c)));
    }
    Ok(())
}

/// Resolves the statement's column uses and decides on them: a column
/// withheld from the identity (denied or needing approval) that the
/// statement uses in any way a `use` grant does not cover is refused,
/// naming how it is used. Where the resolver cannot follow the statement,
/// it is refused here when it reads a relation with anything withheld
/// (`restricted`) — the one place that happens — and otherwise `None`:
/// nothing is withheld, so nothing depends on which columns it uses.
/// `no_rows`: the statement returns no rows by its text (`empty::no_rows`)
/// or is an EXPLAIN's (`Cx::explained`), so a withheld column it only projects is carried as the masking
/// subquery's NULL rather than refused or held.
pub(super) fn resolve_uses<'m>(
    cx: Cx<'_>,
    reads: &'m Result<scope::StatementReads, scope::ScopeError>,
    restricted: bool,
    no_rows: bool,
) -> Result<Option<Resolution<'m>>, Denial> {
    let Cx { plan, access, .. } = cx;
    let scope::StatementReads {
        usages,
        written,
        system,
        whole,
    } = match reads {
        Ok(reads) => reads,
        Err(e) if let Some(d) = gained_column(cx, e) => return Err(d),
        Err(e) if restricted => return Err(denials::not_resolved(e)),
        Err(_) => return Ok(None),
    };
    let grantable = Usage::GRANTABLE.iter().fold(0u16, |b, u| b | u.bit());
    let mut granted = HashSet::new();
    for (&(ri, ci), how) in usages {
        if !plan.is_decided(ri) || access.columns[ri][ci] == Access::Clear {
            continue;
        }
        let bits = how.iter().fold(0u16, |b, u| b | u.bit());
        if bits & !grantable == 0 && bits & !access.uses(ri, ci) == 0 {
            granted.insert((ri, ci));
            continue;
        }
        match &access.columns[ri][ci] {
            Access::Masked(_) => continue,
            // Nothing to refuse or to approve: the masking subquery carries
            // the column as a NULL, and no row comes back.
            Access::Denied { .. } | Access::Approval { .. }
                if no_rows && bits == Usage::Projected.bit() =>
            {
                // Unless it is an EXPLAIN's, the statement has no rows by a
                // literal (`LIMIT 0`), which another one of its shape may not.
                if !cx.explained {
                    cx.on_literal.set(true);
                }
                continue;
            }
            Access::Approval { clauses, .. } => {
                cx.needs.add(clauses);
                continue;
            }
            _ => {}
        }
        let how: Vec<&str> = how.iter().map(|u| u.as_str()).collect();
        let mut denial = column_denial(plan, access, ri, ci, &format!(" ({})", how.join(", ")));
        // Only projected: naming other columns would do (`SELECT *`).
        if bits == Usage::Projected.bit() {
            denial.hint = readable_columns(plan, access, ri);
        }
        return Err(denial);
    }
    Ok(Some(Resolution {
        usages,
        written,
        granted,
        system,
        whole,
    }))
}
