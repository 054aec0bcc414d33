//! Reads: the columns a query reads, by usage class, against the
//! identity's access (clear, masked, approval, denied); the masking
//! rewrite, row filters and row limits; and the audit's column list.

use super::*;
use crate::schema::{ColId, RelId};

pub(super) fn column_denial(
    plan: &Plan,
    access: &PrincipalAccess,
    ri: RelId,
    ci: ColId,
    through: &str,
) -> Denial {
    let rel = plan.schema.relation(ri);
    let col = &rel.columns[ci];
    let class = &plan.classes[ri][ci];
    let label = plan.label(class.level);
    let (why, policies) = match &access.columns[ri][ci] {
        Access::Approval { approvers, clauses } => (
            format!("reading it needs approval by a member of group `{approvers}`"),
            clauses
                .iter()
                .map(|&c| plan.clause(c).1.policy_id.clone())
                .collect(),
        ),
        Access::Denied { no_mask: true, .. } => (
            "it may only be read masked and has no mask".to_owned(),
            access.policies[ri][ci].clone(),
        ),
        Access::Denied { policies, .. } if !policies.is_empty() => {
            let rules: Vec<String> = policies
                .iter()
                .map(|id| match plan.clause_by_policy(id) {
                    Some((rule, clause)) => format!(
                        "rule `{}` (`{}` at {})",
                        rule.name, clause.text, clause.location
                    ),
                    None => format!("policy `{id}`"),
                })
                .collect();
            (format!("denied by {}", rules.join(", ")), policies.clone())
        }
        _ => {
            let groups = if access.groups.is_empty() {
                "no groups".to_owned()
            } else {
                format!("group(s) {}", access.groups.join(", "))
            };
            (format!("no rule lets {groups} read it"), Vec::new())
        }
    };
    denials::column(&col.name, &rel.qualified(), through, label, &why, policies)
}

/// The most columns [`readable_columns`] names.
const READABLE_NAMED: usize = 24;

/// A hint for a refused column that a statement only projects (an ORM's
/// `SELECT t.*`, an agent's `SELECT *`): the columns of the relation the
/// identity may read, masked or in clear, so that the statement can name
/// those instead. Column names are in the catalogs the identity reads
/// anyway; `None` when it may read none.
pub(super) fn readable_columns(plan: &Plan, access: &PrincipalAccess, ri: RelId) -> Option<String> {
    let rel = plan.schema.relation(ri);
    let readable: Vec<String> = rel
        .columns
        .iter()
        .zip(&access.columns[ri])
        .filter_map(|(col, a)| match a {
            Access::Clear => Some(format!("`{}`", col.name)),
            Access::Masked(_) => Some(format!("`{}` (masked)", col.name)),
            _ => None,
        })
        .collect();
    if readable.is_empty() {
        return None;
    }
    let more = readable.len().saturating_sub(READABLE_NAMED);
    let mut list = readable[..readable.len() - more].join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    Some(format!(
        "this identity may read these columns of `{}`: {list}",
        rel.qualified()
    ))
}

pub(super) fn reads(
    cx: Cx<'_>,
    m: &Model,
    stmt: &sql::Statement,
    text: &str,
) -> Result<Outcome, Denial> {
    let a = &m.inventory;
    let Cx { plan, access, .. } = cx;
    let mut out = Outcome::pass();
    check_functions_guarded(access, a, Some((text, &mut out.edits)))?;
    no_unknown_lock_column(cx, &m.reads)?;
    // Each relation reference resolved once (None for table functions).
    let mut resolved: Vec<Option<Resolved>> = a
        .tables
        .iter()
        .map(|t| (!t.is_function).then(|| resolve(plan, t)))
        .collect();
    // A CTE named like a relation with anything withheld counts too: where
    // the scope resolver cannot follow the statement, the agreement check
    // below cannot run, so such a statement is refused as unfollowed.
    // So does a relation the live database has columns of that the lock
    // lacks (`Drift`): the statement must be followed to be rewritten.
    let drift = cx.env.drift;
    let relations: Vec<RelId> = a
        .tables
        .iter()
        .filter(|t| !t.is_function)
        .filter_map(|t| match resolve_real(plan, &t.parts) {
            Resolved::Relation(ri) => Some(ri),
            _ => None,
        })
        .collect();
    let restricted = relations.iter().any(|&ri| access.relation_restricted(ri));
    let drifted = relations.iter().find(|&&ri| drift.pins(ri));
    if !restricted
        && let Err(e) = &m.reads
        && let Some(&ri) = drifted
    {
        return Err(gained_column(cx, e).unwrap_or_else(|| {
            denials::drifted_unresolved(&plan.schema.relation(ri).qualified(), e)
        }));
    }
    let restricted = restricted || drifted.is_some();
    let resolution = resolve_uses(
        cx,
        &m.reads,
        restricted,
        cx.explained || empty::no_rows(stmt),
    )?;
    // A `use` grant passes a column in clear where the resolver saw it
    // only joined or filtered, which it may judge by position (a rename
    // list after `*`). Every relation is then read through a subquery,
    // one read in full listing the lock's columns: a column the live table
    // gained since would otherwise shift every position after it and pin
    // the grant on the wrong column.
    let pinned = resolution.as_ref().is_some_and(|r| !r.granted.is_empty());
    // The tables the data-modifying parts write stay the tables they write
    // (PostgreSQL takes no subquery there). `writes` found nothing withheld
    // in them and refuses a drifted one taken whole. Unpinned, their
    // columns' positions cannot carry a granted column: what a part
    // returns is read by position, and a part returning another
    // relation's granted column is refused for returning it.
    let written: Vec<(usize, usize)> = if a.statements > 1 {
        let index = analyze::LineIndex::new(text);
        nested_write_names(stmt)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| analyze::name_range(&index, n))
            .collect()
    } else {
        Vec::new()
    };
    let mut kept_written: HashSet<RelId> = HashSet::new();
    // Relations with anything withheld (or, `pinned`, every relation; or
    // drifted) that a reference of the statement reads through a subquery:
    // a drifted one's lists the lock's columns, so neither `*` nor a
    // whole-row reference reaches a column no policy classifies.
    let mut rewritten: HashSet<RelId> = HashSet::new();
    for (ti, t) in a.tables.iter().enumerate() {
        if t.is_function {
            let (name, schema) = match t.parts.as_slice() {
                [.., schema, name] => (name.as_str(), Some(schema.as_str())),
                [name] => (name.as_str(), None),
                [] => ("", None),
            };
            check_function(access, name, schema)?;
            continue;
        }
        let Some(this) = resolved[ti].take() else {
            return Err(denials::internal("a relation reference was not resolved"));
        };
        let ri = match this {
            Resolved::Relation(ri) => ri,
            // Bound by scope: what it reads is the CTE's definition, whose
            // own references are decided where they are written.
            Resolved::Cte => continue,
            Resolved::Catalog(name) => {
                check_catalog(&name)?;
                continue;
            }
            Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
        };
        let rel = plan.schema.relation(ri);
        for ci in rel.column_ids() {
            out.policies.extend(access.policies[ri][ci].iter().cloned());
        }
        // Unresolved (and so nothing withheld): the audit lists every
        // column of the relation rather than guess.
        let referenced: Vec<ColId> = match &resolution {
            Some(r) => rel
                .column_ids()
                .filter(|&ci| r.usages.contains_key(&(ri, ci)))
                .collect(),
            None => rel.column_ids().collect(),
        };
        let granted = |ci: ColId| {
            resolution
                .as_ref()
                .is_some_and(|r| r.granted.contains(&(ri, ci)))
        };
        observe(plan, access, ri, &referenced, &mut out);
        touched(plan, access, ri, &referenced, &granted, &mut out);
        out.limit(plan, access, ri);
        let must = access.relation_restricted(ri) || pinned || drift.pins(ri);
        if must && !access.relation_restricted(ri) && t.range.is_some_and(|r| written.contains(&r))
        {
            kept_written.insert(ri);
            continue;
        }
        // A relation read in clear but taken whole (`*`, `t.*`, a whole
        // row) is read through the lock's columns too where that can be
        // done as it is: what `*` yields is then the columns the policy
        // knows, even for a column a migration added a moment ago, before
        // any comparison of the catalog found it (`Drift`). Where it
        // cannot (a marker or sample the rewrite does not place, system
        // columns beside the whole row, a query with data-modifying parts,
        // whose written table is no subquery), it is forwarded as before.
        if !must {
            let whole = resolution.as_ref().is_some_and(|r| r.whole.contains(&ri));
            let placeable = a.statements == 1
                && t.range.is_some()
                && !matches!(
                    t.inheritance,
                    Some(analyze::Inheritance { range: None, .. })
                )
                && !matches!(t.sample, Some(None))
                && resolution
                    .as_ref()
                    .is_some_and(|r| !r.system.iter().any(|u| u.relation == ri));
            if !whole || !placeable {
                continue;
            }
        }
        rewritten.insert(ri);
        let Some((start, end)) = t.range else {
            return Err(denials::internal(
                "the relation's position in the statement is unknown",
            ));
        };
        // The subquery replaces `ONLY t` or `t *` whole and carries `ONLY`.
        let (replaced, only) = match t.inheritance {
            None => ((start, end), false),
            Some(analyze::Inheritance {
                only,
                range: Some(range),
            }) => (range, only),
            Some(_) => return Err(denials::inheritance_marker(&rel.qualified())),
        };
        // TABLESAMPLE samples a table, not a subquery: it moves inside.
        let sample = match t.sample {
            None => None,
            Some(Some((s, e))) => {
                out.edits.push(Edit {
                    start: s,
                    end: e,
                    text: String::new(),
                });
                Some(&text[s..e])
            }
            Some(None) => return Err(denials::sample_unplaced(&rel.qualified())),
        };
        let filter = row_filter(cx, ri)?;
        // What a `use` grant covers, and what an approval the statement
        // needs gates, is passed in clear.
        let opened = |acc: &Access| matches!(acc, Access::Approval { clauses, .. } if cx.needs.opens(clauses));
        let columns: std::borrow::Cow<'_, [Access]> =
            if rel.column_ids().any(granted) || access.columns[ri].iter().any(opened) {
                access.columns[ri]
                    .iter()
                    .zip(rel.column_ids())
                    .map(|(acc, ci)| {
                        if granted(ci) || opened(acc) {
                            Access::Clear
                        } else {
                            acc.clone()
                        }
                    })
                    .collect()
            } else {
                std::borrow::Cow::Borrowed(&access.columns[ri])
            };
        // The name the statement calls the reference by.
        let visible = t.alias.as_deref().or(t.parts.last().map(String::as_str));
        let copied = match &filter {
            Some(_) => {
                let clear: Vec<bool> = columns.iter().map(|a| *a == Access::Clear).collect();
                barrier::leakproof_conditions(
                    stmt,
                    text,
                    &barrier::Reference {
                        range: (start, end),
                        visible: visible.unwrap_or(""),
                        relation: rel,
                        clear: &clear,
                    },
                )
            }
            None => Vec::new(),
        };
        // System columns read through this reference ride in the
        // subquery; a `*` over it is then written out as its columns.
        let system: Vec<&str> = resolution
            .as_ref()
            .map(|r| {
                r.system
                    .iter()
                    .filter(|u| u.relation == ri && Some(u.entry.as_str()) == visible)
                    .map(|u| u.column)
                    .collect()
            })
            .unwrap_or_default();
        if !system.is_empty() {
            let reference = system_columns::Reference {
                range: (start, end),
                visible: visible.unwrap_or(""),
                // An alias's column list renames the first columns.
                columns: rel
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| t.alias_columns.get(i).unwrap_or(&c.name).clone())
                    .collect(),
                qualified: rel.qualified(),
            };
            out.edits
                .extend(system_columns::expand_rows(stmt, text, &reference)?);
        }
        let subquery = rewrite::masking_subquery(
            rel,
            &columns,
            filter.as_deref(),
            &copied,
            only,
            sample,
            &system,
        );
        let text = match &t.alias {
            Some(_) => subquery,
            None => format!(
                "{subquery} AS {}",
                rewrite::quote_ident(t.parts.last().map_or("", String::as_str))
            ),
        };
        out.edits.push(Edit {
            start: replaced.0,
            end: replaced.1,
            text,
        });
        if t.alias.is_none() {
            // `schema.t.c` no longer names anything once `schema.t` is the
            // subquery `t`: drop the schema (each prefix once, however many
            // references to the relation the statement has).
            for q in &a.schema_qualified {
                if q.schema == rel.schema
                    && t.parts.last() == Some(&q.relation)
                    && !out.edits.iter().any(|e| e.start == q.prefix.0)
                {
                    out.edits.push(Edit {
                        start: q.prefix.0,
                        end: q.prefix.1,
                        text: String::new(),
                    });
                }
            }
        }
        for (ci, acc) in columns.iter().enumerate() {
            if matches!(acc, Access::Masked(_)) {
                let col = format!("{}.{}", rel.qualified(), rel.columns[ci].name);
                if !out.masked.contains(&col) {
                    out.masked.push(col);
                }
            }
        }
    }
    // The two walks agree: every relation with anything withheld whose
    // columns the scope resolver finds read is read through a rewritten
    // reference. A reference taken for a CTE (or anything else not
    // rewritten) where the resolver saw the relation would pass its
    // values in clear: refused, whatever the cause.
    if let Some(r) = &resolution
        && let Some(&(ri, _)) = r.usages.keys().find(|(ri, _)| {
            (access.relation_restricted(*ri) || (drift.pins(*ri) && !kept_written.contains(ri)))
                && !rewritten.contains(ri)
        })
    {
        return Err(denials::internal(&format!(
            "`{}` is read where no reference to it is rewritten",
            plan.schema.relation(ri).qualified()
        )));
    }
    for parts in &a.other_relations {
        let this = resolve_real(plan, parts);
        if let Resolved::Relation(ri) = this {
            out.limit(plan, access, ri);
        }
        match this {
            Resolved::Relation(ri) if access.relation_restricted(ri) => {
                return Err(denials::internal(&format!(
                    "`{}` is used in a position clsf does not rewrite",
                    plan.schema.relation(ri).qualified()
                )));
            }
            Resolved::Catalog(name) => check_catalog(&name)?,
            Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
            _ => {}
        }
    }
    out.policies.sort();
    out.policies.dedup();
    Ok(out)
}

/// The limit on rows per statement for relation `ri` (the smallest of the
/// identity's `limit` clauses covering it), with its rule's name.
pub fn row_limit(plan: &Plan, access: &PrincipalAccess, ri: RelId) -> Option<(u64, String)> {
    let rel = plan.schema.relation(ri);
    access
        .limits
        .iter()
        .filter(|l| match &l.target {
            crate::plan::Target::All => true,
            t => rel.column_ids().any(|ci| t.covers_column(plan, ri, ci)),
        })
        .min_by_key(|l| l.rows)
        .map(|l| {
            let rule = plan
                .clause_by_policy(&l.policy_id)
                .map_or_else(|| l.policy_id.clone(), |(r, _)| r.name.clone());
            (l.rows, rule)
        })
}

/// The row filter of relation `ri` with the session's claims bound as
/// string literals; refused when a claim it needs is missing or not a
/// string or number.
pub(super) fn row_filter(cx: Cx<'_>, ri: RelId) -> Result<Option<String>, Denial> {
    let Cx {
        plan, access, env, ..
    } = cx;
    let filters: Vec<&crate::access::RowFilter> =
        access.filters.iter().filter(|f| f.relation == ri).collect();
    if filters.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::new();
    for f in filters {
        let paths = crate::placeholders::claim_placeholders(&f.predicate).unwrap_or_default();
        let mut values = Vec::new();
        for path in &paths {
            let mut v = env.claims;
            for seg in path {
                v = v.and_then(|x| x.get(seg));
            }
            let literal = match v {
                Some(serde_json::Value::String(s)) => sql_string(s),
                Some(serde_json::Value::Number(n)) => sql_string(&n.to_string()),
                _ => {
                    return Err(denials::missing_filter_claim(
                        &plan.schema.relation(ri).qualified(),
                        &path.join("."),
                        f.policy_id.clone(),
                    ));
                }
            };
            values.push(literal);
        }
        let bound = crate::placeholders::substitute(&f.predicate, |i| values[i].clone());
        parts.push(format!("({bound})"));
    }
    Ok(Some(parts.join(" AND ")))
}

/// Records what observe-only rules would have withheld from the columns
/// this reference reads.
pub(super) fn observe(
    plan: &Plan,
    access: &PrincipalAccess,
    ri: RelId,
    referenced: &[ColId],
    out: &mut Outcome,
) {
    let Some(observed) = &access.observed else {
        return;
    };
    let rel = plan.schema.relation(ri);
    for &ci in referenced {
        let would = match (&access.columns[ri][ci], &observed[ri][ci]) {
            (Access::Clear, Access::Masked(_)) => "mask",
            (
                Access::Clear | Access::Masked(_),
                Access::Denied { .. } | Access::Approval { .. },
            ) => "deny",
            _ => continue,
        };
        let entry = format!("{would} {}.{}", rel.qualified(), rel.columns[ci].name);
        if !out.observed.contains(&entry) {
            out.observed.push(entry);
        }
    }
}

/// Records the columns a statement reads, with their labels and access.
pub(super) fn touched(
    plan: &Plan,
    access: &PrincipalAccess,
    ri: RelId,
    referenced: &[ColId],
    granted: &dyn Fn(ColId) -> bool,
    out: &mut Outcome,
) {
    let rel = plan.schema.relation(ri);
    for &ci in referenced {
        let column = format!("{}.{}", rel.qualified(), rel.columns[ci].name);
        if out.columns.iter().any(|c| c.column == column) {
            continue;
        }
        out.columns.push(ColumnUse {
            column,
            label: plan.describe_class(&plan.classes[ri][ci]),
            access: match &access.columns[ri][ci] {
                _ if granted(ci) => "used in clear, not read (use grant)".to_owned(),
                Access::Clear => "clear".to_owned(),
                Access::Masked(m) => format!("masked ({})", m.display()),
                Access::Approval { approvers, .. } => format!("needs approval by {approvers}"),
                Access::Denied { .. } => "denied".to_owned(),
            },
        });
    }
}
