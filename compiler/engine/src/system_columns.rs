//! System columns (`ctid`, `xmin`, `tableoid`, …) of a relation read
//! through its masking subquery. A subquery has none of its own, so the
//! subquery carries each one the statement reads through the reference
//! (CDC connectors page keyless tables with `SELECT ctid, * FROM t WHERE
//! ctid > $1`, ODBC's updatable cursors re-read `WHERE ctid = …`, EF Core
//! uses `xmin` as its concurrency token). Carried columns would then also
//! come out of `*`, `t.*` and a whole-row `t`, which the client did not
//! ask for; so a `*` over the reference is written out as the relation's
//! columns, and a row expansion that cannot be written out is refused.

use std::ops::ControlFlow;

use sqlparser::ast as sql;
use sqlparser::ast::{Visit, Visitor};

use crate::analyze::{LineIndex, fold, from_factors, name_range};
use crate::rewrite::{Edit, quote_ident};
use crate::verdict::Denial;

/// The reference being replaced by a masking subquery.
pub(crate) struct Reference<'a> {
    /// Byte range of its relation name in the statement text.
    pub(crate) range: (usize, usize),
    /// Its visible name: the alias, or the relation's name.
    pub(crate) visible: &'a str,
    /// The names its columns have outside (an alias's column list renames
    /// the first ones), in order: what `*` expands to.
    pub(crate) columns: Vec<String>,
    /// The relation, qualified, for refusals.
    pub(crate) qualified: String,
}

/// The edits that write out every `*` and `t.*` over `reference`, or a
/// refusal when the row is expanded where it cannot be written out (a
/// whole-row `t`, `t.*` as a function argument, `*` over a join).
pub(crate) fn expand_rows(
    statement: &sql::Statement,
    text: &str,
    reference: &Reference<'_>,
) -> Result<Vec<Edit>, Denial> {
    let mut expander = Expander {
        index: LineIndex::new(text),
        reference,
        edits: Vec::new(),
    };
    match statement.visit(&mut expander) {
        ControlFlow::Continue(()) => Ok(expander.edits),
        ControlFlow::Break(()) => Err(crate::denials::system_columns_with_row(
            &reference.qualified,
        )),
    }
}

struct Expander<'a> {
    index: LineIndex<'a>,
    reference: &'a Reference<'a>,
    edits: Vec<Edit>,
}

impl Expander<'_> {
    /// Whether `factor` is the reference (its name is where the
    /// reference's is).
    fn is_reference(&self, factor: &sql::TableFactor) -> bool {
        matches!(factor, sql::TableFactor::Table { name, .. }
            if name_range(&self.index, name) == Some(self.reference.range))
    }

    fn names_reference(&self, name: &sql::ObjectName) -> bool {
        name.0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| fold(i) == self.reference.visible)
    }

    fn written_out(&self, qualifier: Option<&str>) -> String {
        self.reference
            .columns
            .iter()
            .map(|c| match qualifier {
                Some(q) => format!("{q}.{}", quote_ident(c)),
                None => quote_ident(c),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn replace(&mut self, start: Option<usize>, end: Option<usize>, text: String) -> bool {
        match (start, end) {
            (Some(start), Some(end)) if start < end => {
                self.edits.push(Edit { start, end, text });
                true
            }
            _ => false,
        }
    }
}

/// Options PostgreSQL does not have (`EXCLUDE`, `REPLACE`, …): a `*` with
/// any of them is not written out.
pub(crate) fn plain(o: &sql::WildcardAdditionalOptions) -> bool {
    o.opt_ilike.is_none()
        && o.opt_exclude.is_none()
        && o.opt_except.is_none()
        && o.opt_replace.is_none()
        && o.opt_rename.is_none()
        && o.opt_alias.is_none()
}

impl Visitor for Expander<'_> {
    type Break = ();

    fn pre_visit_select(&mut self, select: &sql::Select) -> ControlFlow<()> {
        // Whether the reference is one of this SELECT's entries (not one
        // inside a derived table, a scope of its own), and whether alone:
        // then `*` is its columns, unqualified.
        let factors = from_factors(&select.from);
        let holds = factors.iter().any(|f| self.is_reference(f));
        let alone = holds && factors.len() == 1;
        for item in &select.projection {
            match item {
                sql::SelectItem::Wildcard(o) if holds => {
                    if !(alone && plain(o)) {
                        return ControlFlow::Break(());
                    }
                    let span = o.wildcard_token.0.span;
                    let text = self.written_out(None);
                    if !self.replace(
                        self.index.offset(span.start),
                        self.index.offset(span.end),
                        text,
                    ) {
                        return ControlFlow::Break(());
                    }
                }
                sql::SelectItem::QualifiedWildcard(
                    sql::SelectItemQualifiedWildcardKind::ObjectName(name),
                    o,
                ) if self.names_reference(name) => {
                    // A `t.*` whose `t` is not this SELECT's entry may be
                    // the reference through correlation: not guessed.
                    if !(holds && plain(o)) {
                        return ControlFlow::Break(());
                    }
                    let start = name
                        .0
                        .first()
                        .and_then(|p| p.as_ident())
                        .and_then(|i| self.index.offset(i.span.start));
                    let end = self.index.offset(o.wildcard_token.0.span.end);
                    let text = self.written_out(Some(&quote_ident(self.reference.visible)));
                    if !self.replace(start, end, text) {
                        return ControlFlow::Break(());
                    }
                }
                sql::SelectItem::QualifiedWildcard(
                    sql::SelectItemQualifiedWildcardKind::Expr(_),
                    _,
                ) if holds => {
                    return ControlFlow::Break(());
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &sql::Expr) -> ControlFlow<()> {
        let visible = self.reference.visible;
        // A whole-row reference (`t`, `s.t`, `t.*` in an expression or as
        // a function's argument) would carry the system columns too. A
        // column of that name is taken for one: refused, never guessed.
        let whole_row = match expr {
            sql::Expr::Identifier(i) => {
                fold(i) == visible && !self.reference.columns.iter().any(|c| c == visible)
            }
            sql::Expr::CompoundIdentifier(ids) => ids.last().is_some_and(|i| fold(i) == visible),
            sql::Expr::QualifiedWildcard(name, _) => self.names_reference(name),
            sql::Expr::Function(f) => match &f.args {
                sql::FunctionArguments::List(list) => list.args.iter().any(|a| {
                    let (sql::FunctionArg::Named { arg, .. }
                    | sql::FunctionArg::ExprNamed { arg, .. }
                    | sql::FunctionArg::Unnamed(arg)) = a;
                    matches!(arg, sql::FunctionArgExpr::QualifiedWildcard(name)
                        if self.names_reference(name))
                }),
                _ => false,
            },
            _ => false,
        };
        if whole_row {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}
