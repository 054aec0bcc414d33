//! Writes (`INSERT`, `UPDATE`, `DELETE`, data-modifying CTEs) and
//! statements that create a relation from a query (`SELECT … INTO`,
//! `CREATE TABLE … AS`, views).

use super::*;

/// `SELECT … INTO` and `CREATE TABLE … AS` write what they read into a new
/// table that no policy classifies, where it could be read back in clear
/// (label laundering). From relations the identity reads in full they are
/// DDL like `CREATE TABLE`; from anything masked or withheld, refused.
pub(super) fn creates_table_from(
    cx: Cx<'_>,
    mut m: Model,
    stmt: &sql::Statement,
    text: &str,
    what: &str,
) -> Result<Outcome, Denial> {
    let Cx { plan, access, .. } = cx;
    // The relation being created is named, not read: it is new, so the
    // schema does not know it.
    let created = match stmt {
        sql::Statement::CreateTable(ct) => Some(&ct.name),
        sql::Statement::CreateView(v) => Some(&v.name),
        _ => None,
    };
    if let Some(name) = created {
        let parts = analyze::folded_parts(name);
        if let Some(i) = m.inventory.other_relations.iter().position(|r| *r == parts) {
            m.inventory.other_relations.remove(i);
        }
    }
    let m = &m;
    let a = &m.inventory;
    for t in a.tables.iter().filter(|t| !t.is_function) {
        if let Resolved::Relation(ri) = resolve(plan, t)
            && cx.env.drift.pins(ri)
        {
            return Err(denials::drifted_copy(
                what,
                &plan.schema.relation(ri).qualified(),
            ));
        }
        if let Resolved::Relation(ri) = resolve(plan, t)
            && (access.relation_restricted(ri) || row_limit(plan, access, ri).is_some())
        {
            return Err(denials::unlabelled_copy(
                what,
                &plan.schema.relation(ri).qualified(),
            ));
        }
    }
    let out = reads(cx, m, stmt, text)?;
    if !out.edits.is_empty() {
        return Err(denials::internal(what));
    }
    action_permitted(cx, &access.ddl, "ddl", stmt)
}

/// The table an INSERT, UPDATE, DELETE or MERGE writes, as name parts.
pub(super) fn write_target(stmt: &sql::Statement) -> Option<Vec<String>> {
    target_name(stmt).map(analyze::folded_parts)
}

/// The name of the table `stmt` writes, as written.
fn target_name(stmt: &sql::Statement) -> Option<&sql::ObjectName> {
    match stmt {
        sql::Statement::Insert(i) => match &i.table {
            sql::TableObject::TableName(n) => Some(n),
            _ => None,
        },
        sql::Statement::Update(u) => match &u.table.relation {
            sql::TableFactor::Table { name, .. } => Some(name),
            _ => None,
        },
        sql::Statement::Delete(d) => {
            let tables = match &d.from {
                sql::FromTable::WithFromKeyword(t) | sql::FromTable::WithoutKeyword(t) => t,
            };
            match tables.first().map(|t| &t.relation) {
                Some(sql::TableFactor::Table { name, .. }) => Some(name),
                _ => None,
            }
        }
        // MERGE's source is read, its target written: decided like
        // `UPDATE … FROM`, every relation it touches without anything
        // withheld (`writes`), so no condition or value can carry a
        // protected one into the target.
        sql::Statement::Merge(m) => match &m.table {
            sql::TableFactor::Table { name, .. } => Some(name),
            _ => None,
        },
        _ => None,
    }
}

/// Decides a writing statement: `target` is the table it writes (`None`
/// for a query with data-modifying parts); `stmt`, where given, is what the
/// scope resolver reads the statement's column uses from, so that it may
/// touch a relation with something withheld (below).
pub(super) fn writes(
    cx: Cx<'_>,
    m: &Model,
    target: Option<&[String]>,
    stmt: Option<&sql::Statement>,
) -> Result<Outcome, Denial> {
    let a = &m.inventory;
    let Cx {
        plan,
        access,
        needs,
        ..
    } = cx;
    check_functions(access, a)?;
    no_unknown_lock_column(cx, &m.reads)?;
    if let Some(parts) = target {
        match resolve_real(plan, parts) {
            Resolved::Relation(ri) => {
                // Every column of the written table must be writable: an
                // INSERT sets defaults and a DELETE removes whole rows.
                if let Some(d) = column_write_denial(cx, ri) {
                    return Err(d);
                }
                written_in_full(cx, ri)?;
                no_key_probe(cx, ri, stmt, m)?;
            }
            Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
            Resolved::Catalog(name) => {
                return Err(denials::catalog_write(&name.to_string()));
            }
            Resolved::Cte => {}
        }
    } else {
        // A query with data-modifying parts (`WITH d AS (UPDATE …) SELECT
        // …`, `WITH x AS (…) INSERT INTO t …`): the table each part writes
        // must be writable. Where a part's table cannot be named, every
        // relation the statement touches must be.
        let written: Vec<Vec<String>> = match stmt.and_then(nested_write_targets) {
            Some(targets) => targets,
            None => a.relation_names().map(|(p, _)| p.to_vec()).collect(),
        };
        for parts in &written {
            let Resolved::Relation(ri) = resolve_real(plan, parts) else {
                continue;
            };
            if let Some(d) = access.write[ri].iter().find_map(|p| {
                perm_denial(
                    plan,
                    needs,
                    p,
                    "write",
                    &format!("writing `{}`", plan.schema.relation(ri).qualified()),
                )
            }) {
                return Err(d);
            }
            written_in_full(cx, ri)?;
            no_key_probe(cx, ri, stmt, m)?;
        }
    }
    let all = a
        .relation_names()
        // The target itself, whether or not the analysis saw it as a
        // relation (it does not for `COPY … FROM STDIN`): copying rows in
        // is a write like INSERT, and a unique key's error would answer
        // whether a withheld value or a filtered row exists.
        .chain(target.map(|t| (t, false)));
    // Relations the statement touches with something withheld, and those
    // the live database has columns of that the lock lacks.
    let mut withheld: Vec<RelId> = Vec::new();
    let mut drifted: Vec<RelId> = Vec::new();
    for (parts, cte) in all {
        // A relation of the name counts even where a CTE is in scope (a
        // write is decided conservatively), but a CTE's name that is no
        // relation is not unknown: `WITH d AS (UPDATE … RETURNING *)
        // SELECT … FROM d` reads the rows the write returned (PostgREST
        // and Hasura write so).
        let this = match resolve_real(plan, parts) {
            Resolved::Unknown(_) if cte => continue,
            other => other,
        };
        if let Resolved::Relation(ri) = this
            && let Some((rows, rule)) = row_limit(plan, access, ri)
        {
            // Copying rows elsewhere would lift the limit.
            return Err(denials::limited_write(
                &plan.schema.relation(ri).qualified(),
                rows,
                &rule,
            ));
        }
        if let Resolved::Relation(ri) = this
            && cx.env.drift.pins(ri)
            && !drifted.contains(&ri)
        {
            drifted.push(ri);
        }
        match this {
            Resolved::Relation(ri) if access.relation_restricted(ri) && !withheld.contains(&ri) => {
                withheld.push(ri);
            }
            Resolved::Catalog(name) => check_catalog(&name)?,
            Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
            _ => {}
        }
    }
    if !withheld.is_empty() {
        uses_nothing_withheld(cx, stmt, m, &withheld)?;
    }
    if !drifted.is_empty() {
        nothing_drifted_taken_whole(cx, stmt, m, &drifted)?;
    }
    Ok(Outcome::pass())
}

/// A write's `RETURNING *` (or `RETURNING t.*` of its table) written out
/// as the lock's columns of the table it writes, so that it returns what
/// the policy knows even when the live table gained a column a moment ago,
/// before any comparison of the catalog found it (`Drift`): a write is
/// otherwise forwarded as written. Only where `*` is the written table
/// alone — an `INSERT`, an `UPDATE` without `FROM`, a `DELETE` without
/// `USING` — and plain; elsewhere nothing is written out.
pub(super) fn returning_written_out(
    plan: &Plan,
    target: Option<&[String]>,
    stmt: &sql::Statement,
    m: &Model,
    text: &str,
) -> Vec<Edit> {
    let Some(Resolved::Relation(ri)) = target.map(|t| resolve_real(plan, t)) else {
        return Vec::new();
    };
    let Ok(reads) = &m.reads else {
        return Vec::new();
    };
    if !reads.whole.contains(&ri) {
        return Vec::new();
    }
    fn table_alias(t: &sql::TableWithJoins) -> Option<Option<&sql::Ident>> {
        match &t.relation {
            sql::TableFactor::Table { alias, .. } => Some(alias.as_ref().map(|a| &a.name)),
            _ => None,
        }
    }
    let (returning, alias) = match stmt {
        sql::Statement::Insert(i) => (&i.returning, i.table_alias.as_ref().map(|a| &a.alias)),
        sql::Statement::Update(u) if u.from.is_none() => {
            let Some(alias) = table_alias(&u.table) else {
                return Vec::new();
            };
            (&u.returning, alias)
        }
        sql::Statement::Delete(d) if d.using.is_none() => {
            let tables = match &d.from {
                sql::FromTable::WithFromKeyword(t) | sql::FromTable::WithoutKeyword(t) => t,
            };
            let [only] = tables.as_slice() else {
                return Vec::new();
            };
            let Some(alias) = table_alias(only) else {
                return Vec::new();
            };
            (&d.returning, alias)
        }
        _ => return Vec::new(),
    };
    let Some(items) = returning else {
        return Vec::new();
    };
    let rel = plan.schema.relation(ri);
    let visible = alias.map_or_else(|| rel.name.clone(), analyze::fold);
    let quoted = rewrite::quote_ident(&visible);
    let columns = rel
        .columns
        .iter()
        .map(|c| format!("{quoted}.{}", rewrite::quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ");
    let text = analyze::LineIndex::new(text);
    let mut edits = Vec::new();
    for item in items {
        let (start, end) = match item {
            sql::SelectItem::Wildcard(o) if crate::system_columns::plain(o) => (
                text.offset(o.wildcard_token.0.span.start),
                text.offset(o.wildcard_token.0.span.end),
            ),
            sql::SelectItem::QualifiedWildcard(
                sql::SelectItemQualifiedWildcardKind::ObjectName(name),
                o,
            ) if crate::system_columns::plain(o)
                && name.0.len() == 1
                && name.0[0]
                    .as_ident()
                    .is_some_and(|i| analyze::fold(i) == visible) =>
            {
                (
                    name.0[0].as_ident().and_then(|i| text.offset(i.span.start)),
                    text.offset(o.wildcard_token.0.span.end),
                )
            }
            _ => continue,
        };
        let (Some(start), Some(end)) = (start, end) else {
            return Vec::new();
        };
        edits.push(Edit {
            start,
            end,
            text: columns.clone(),
        });
    }
    edits
}

/// A write is forwarded as written, so it may not take a drifted relation
/// (one the live database has columns of that the lock lacks, `Drift`)
/// whole: `RETURNING *` or `INSERT … SELECT *` would return or copy the
/// columns no policy classifies. Naming them is refused where the resolver
/// does not find them, as a column that does not exist. `COPY … FROM
/// STDIN` reads nothing.
fn nothing_drifted_taken_whole(
    cx: Cx<'_>,
    stmt: Option<&sql::Statement>,
    m: &Model,
    drifted: &[RelId],
) -> Result<(), Denial> {
    let name = |ri: RelId| cx.plan.schema.relation(ri).qualified();
    if matches!(stmt, None | Some(sql::Statement::Copy { to: false, .. })) {
        return Ok(());
    }
    match &m.reads {
        Err(e) => Err(gained_column(cx, e)
            .unwrap_or_else(|| denials::drifted_unresolved(&name(drifted[0]), e))),
        Ok(reads) => match drifted.iter().find(|ri| reads.whole.contains(ri)) {
            Some(&ri) => Err(denials::drifted_whole("the write", &name(ri))),
            None => Ok(()),
        },
    }
}

/// The table a statement writes must have nothing withheld from the
/// identity: PostgreSQL's errors for a write show the whole row (`Failing
/// row contains (…)` of a NOT NULL or CHECK violation), and its triggers
/// see every column.
fn written_in_full(cx: Cx<'_>, ri: RelId) -> Result<(), Denial> {
    if cx.access.relation_restricted(ri) {
        return Err(denials::withheld_write(
            &cx.plan.schema.relation(ri).qualified(),
        ));
    }
    Ok(())
}

/// A foreign key checks the row it references whatever the writer may
/// read: setting its columns to a guessed value, a write's success or
/// error would tell whether a value the identity may not read in clear
/// (or a row a filter hides from it) exists in the referenced table. So a
/// write may not set the columns of a foreign key whose referenced
/// columns are not clear to the identity or whose referenced table a row
/// filter narrows. `stmt` says which columns it sets (`COPY … FROM` its
/// column list); without one, every column counts.
fn no_key_probe(
    cx: Cx<'_>,
    ri: RelId,
    stmt: Option<&sql::Statement>,
    m: &Model,
) -> Result<(), Denial> {
    let Cx { plan, access, .. } = cx;
    let schema = &plan.schema;
    let rel = schema.relation(ri);
    let guarded = guarded_keys(plan, access, ri);
    if guarded.is_empty() {
        return Ok(());
    }
    let set: Option<Vec<String>> = match stmt {
        Some(sql::Statement::Copy {
            source: sql::CopySource::Table { columns, .. },
            ..
        }) => (!columns.is_empty()).then(|| columns.iter().map(analyze::fold).collect()),
        Some(_) => match &m.reads {
            Ok(reads) => Some(
                reads
                    .written
                    .iter()
                    .filter(|((r, _), how)| *r == ri && how.contains(&Usage::Written))
                    .map(|(&(_, ci), _)| rel.columns[ci].name.clone())
                    .collect(),
            ),
            Err(_) => None,
        },
        None => None,
    };
    for (fk, target) in guarded {
        let column = fk
            .columns
            .iter()
            .find(|c| set.as_ref().is_none_or(|set| set.contains(c)));
        if let Some(column) = column {
            return Err(denials::key_probe(
                column,
                &rel.qualified(),
                &fk.name,
                &schema.relation(target).qualified(),
            ));
        }
    }
    Ok(())
}

/// The foreign keys of `ri` a write by the identity may not set (see
/// `no_key_probe`), each with the relation it references.
pub fn guarded_keys<'p>(
    plan: &'p Plan,
    access: &PrincipalAccess,
    ri: RelId,
) -> Vec<(&'p crate::schema::ForeignKey, RelId)> {
    let schema = &plan.schema;
    schema
        .relation(ri)
        .foreign_keys
        .iter()
        .filter_map(|fk| {
            let target = schema.find(&fk.references.schema, &fk.references.name)?;
            let hidden = access.filters.iter().any(|f| f.relation == target)
                || fk.referenced_columns.iter().any(|c| {
                    schema
                        .relation(target)
                        .column_index(c)
                        .is_none_or(|ci| access.columns[target][ci] != Access::Clear)
                });
            hidden.then_some((fk, target))
        })
        .collect()
}

/// A write may read a relation with something withheld from the identity
/// only where it uses nothing withheld: it is forwarded as written, so a
/// masked column would be compared, copied or returned in clear. The scope
/// resolver says which columns the statement uses and how; each must be
/// clear to the identity, covered by a `use` grant, or need an approval
/// (the write is then held). A row filter refuses outright: the write
/// would reach rows the identity cannot read, and its row count and errors
/// would tell of them.
fn uses_nothing_withheld(
    cx: Cx<'_>,
    stmt: Option<&sql::Statement>,
    m: &Model,
    withheld: &[RelId],
) -> Result<(), Denial> {
    let Cx { plan, access, .. } = cx;
    for &ri in withheld {
        if access.filters.iter().any(|f| f.relation == ri) {
            return Err(denials::filtered_write(
                &plan.schema.relation(ri).qualified(),
            ));
        }
    }
    if stmt.is_none() {
        return Err(denials::withheld_write(
            &plan.schema.relation(withheld[0]).qualified(),
        ));
    };
    // Denied columns and unresolved statements are refused there, and
    // columns needing approval noted.
    let Some(resolution) = resolve_uses(cx, &m.reads, true, false)? else {
        return Err(denials::internal("a write's column uses were not resolved"));
    };
    // Only the uses the data-modifying parts make: what the rest of a
    // query reads is masked by the read's rewrite.
    for (&(ri, ci), how) in resolution.written {
        if plan.is_decided(ri)
            && matches!(access.columns[ri][ci], Access::Masked(_))
            && !resolution.granted.contains(&(ri, ci))
        {
            let rel = plan.schema.relation(ri);
            let how: Vec<&str> = how.iter().map(|u| u.as_str()).collect();
            return Err(denials::masked_in_write(
                &rel.columns[ci].name,
                &rel.qualified(),
                &how.join(", "),
            ));
        }
    }
    Ok(())
}

/// The tables the data-modifying parts of a query write, as name parts;
/// `None` when one of them cannot be named.
fn nested_write_targets(stmt: &sql::Statement) -> Option<Vec<Vec<String>>> {
    nested_write_names(stmt).map(|names| names.iter().map(analyze::folded_parts).collect())
}

/// The names of the tables the data-modifying parts of a query write, as
/// written; `None` when one of them cannot be named.
pub(super) fn nested_write_names(stmt: &sql::Statement) -> Option<Vec<sql::ObjectName>> {
    struct Targets {
        top: bool,
        found: Vec<sql::ObjectName>,
        unnamed: bool,
    }
    impl sql::Visitor for Targets {
        type Break = ();
        fn pre_visit_statement(&mut self, s: &sql::Statement) -> std::ops::ControlFlow<()> {
            if std::mem::take(&mut self.top) {
                return std::ops::ControlFlow::Continue(());
            }
            if matches!(
                s,
                sql::Statement::Insert(_)
                    | sql::Statement::Update(_)
                    | sql::Statement::Delete(_)
                    | sql::Statement::Merge(_)
            ) {
                match target_name(s) {
                    Some(t) => self.found.push(t.clone()),
                    None => self.unnamed = true,
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut v = Targets {
        top: true,
        found: Vec::new(),
        unnamed: false,
    };
    let _ = sql::Visit::visit(stmt, &mut v);
    (!v.unnamed).then_some(v.found)
}

/// The refusal for the first column of `ri` that no rule lets the identity
/// write, if any.
fn column_write_denial(cx: Cx<'_>, ri: RelId) -> Option<Denial> {
    let Cx {
        plan,
        access,
        needs,
        ..
    } = cx;
    let rel = plan.schema.relation(ri);
    access.write[ri].iter().enumerate().find_map(|(ci, p)| {
        let what = format!(
            "writing column `{}` of `{}`",
            rel.columns[ci].name,
            rel.qualified()
        );
        perm_denial(plan, needs, p, "write", &what)
    })
}

/// `TRUNCATE` removes every row of the tables it names, of their
/// descendants (unless `ONLY`) and, with `CASCADE`, of every table that
/// references one of them by a foreign key (and of its descendants). As
/// PostgreSQL checks privileges, and as for `DELETE`, the named and the
/// cascaded tables must be ones the identity may write in every column;
/// a descendant's rows are the parent's rows, reached through the parent's
/// right. None of them may have anything withheld or a row limit.
pub(super) fn truncate(cx: Cx<'_>, t: &sql::Truncate) -> Result<Outcome, Denial> {
    let Cx { plan, access, .. } = cx;
    let schema = &plan.schema;
    // Those named or cascaded to (whose write right is checked), and those
    // emptied with their descendants; what is emptied is both.
    let mut written: Vec<RelId> = Vec::new();
    let mut with_descendants: Vec<RelId> = Vec::new();
    for target in &t.table_names {
        match resolve_real(plan, &analyze::folded_parts(&target.name)) {
            Resolved::Relation(ri) => {
                written.push(ri);
                if !target.only {
                    with_descendants.push(ri);
                }
            }
            Resolved::Catalog(name) => return Err(denials::catalog_write(&name)),
            Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
            Resolved::Cte => return Err(denials::internal("TRUNCATE of a CTE")),
        }
    }
    let cascade = matches!(t.cascade, Some(sql::CascadeOption::Cascade));
    let named = |q: &crate::schema::QualifiedName| schema.find(&q.schema, &q.name);
    // Grow both until they stop changing. A relation named with ONLY is
    // still emptied with its descendants when another named relation is
    // its ancestor (`TRUNCATE ONLY child, parent`).
    loop {
        let before = (with_descendants.len(), written.len());
        for (ri, rel) in schema.relations_with_ids() {
            let child = rel
                .parents
                .iter()
                .any(|p| named(p).is_some_and(|pi| with_descendants.contains(&pi)));
            let referencing = cascade
                && rel.foreign_keys.iter().any(|fk| {
                    named(&fk.references)
                        .is_some_and(|pi| written.contains(&pi) || with_descendants.contains(&pi))
                });
            if referencing && !written.contains(&ri) {
                written.push(ri);
            }
            if (child || referencing) && !with_descendants.contains(&ri) {
                with_descendants.push(ri);
            }
        }
        if (with_descendants.len(), written.len()) == before {
            break;
        }
    }
    for &ri in &written {
        if let Some(d) = column_write_denial(cx, ri) {
            return Err(d);
        }
    }
    let emptied = written
        .iter()
        .chain(with_descendants.iter().filter(|ri| !written.contains(ri)));
    for &ri in emptied {
        let rel = plan.schema.relation(ri);
        if let Some((rows, rule)) = row_limit(plan, access, ri) {
            return Err(denials::limited_write(&rel.qualified(), rows, &rule));
        }
        if access.relation_restricted(ri) {
            return Err(denials::withheld_write(&rel.qualified()));
        }
    }
    Ok(Outcome::pass())
}
