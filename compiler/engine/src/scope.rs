//! Scope-correct resolution of a query's output columns to the relation
//! columns their values come from: through aliases, joins, subqueries at
//! every position, `LATERAL`, CTEs (recursive ones to a fixpoint), set
//! operations, `VALUES` and whole-row references.
//!
//! The compiler uses it for view lineage (a view column is as protected as
//! the columns it is computed from). It is conservative where it cannot be
//! exact: a value computed by a scalar subquery is said to come from every
//! column that subquery reads, and anything it does not understand is an
//! error, never a guess.

use crate::schema::{ColId, RelId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::ControlFlow;

use sqlparser::ast as sql;
use sqlparser::ast::{Visit, Visitor};

use super::analyze::{Recorder, fold};
use super::sql_lists;
use crate::schema::Schema;

/// A relation column: (relation index, column index) in the schema.
pub type Source = (RelId, ColId);

/// How a statement uses a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Usage {
    /// Its value reaches the result (directly or computed).
    Projected,
    /// In `WHERE` or `HAVING` (or a subquery there).
    Filtered,
    /// In a join condition (`ON`, `USING`, `NATURAL`).
    Joined,
    /// In `GROUP BY` or `DISTINCT ON`.
    Grouped,
    /// In `ORDER BY`.
    Ordered,
    /// Inside an aggregate whose result is returned.
    Aggregated,
    /// Assigned by `INSERT` or `UPDATE`.
    Written,
    /// In `RETURNING`.
    Returned,
    /// Its value enters an expression other than a plain comparison with a
    /// column, literal or parameter (`=`, `<`, `IN`, `BETWEEN`, `LIKE`,
    /// `IS NULL`) or a summarising aggregate's argument: a cast or function could
    /// echo it in an error. Not a usage class of its own; it keeps a `use`
    /// grant from applying.
    Computed,
}

impl Usage {
    /// Lower-case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Projected => "projected",
            Usage::Filtered => "filtered",
            Usage::Joined => "joined",
            Usage::Grouped => "grouped",
            Usage::Ordered => "ordered",
            Usage::Aggregated => "aggregated",
            Usage::Written => "written",
            Usage::Returned => "returned",
            Usage::Computed => "computed",
        }
    }

    /// The usage classes a `use` grant can permit.
    pub const GRANTABLE: [Usage; 5] = [
        Usage::Joined,
        Usage::Filtered,
        Usage::Grouped,
        Usage::Ordered,
        Usage::Aggregated,
    ];

    /// One bit per usage class, for sets of them.
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Every relation column a statement touches, with how.
pub type Usages = BTreeMap<Source, BTreeSet<Usage>>;

/// One output column of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputColumn {
    /// Its name (as PostgreSQL would name it).
    pub name: String,
    /// Every relation column its value is computed from.
    pub sources: BTreeSet<Source>,
    /// The relation column when the value is that column unchanged (a plain
    /// reference, through any number of aliases and subqueries).
    pub direct: Option<Source>,
    /// The value is an aggregate's result.
    pub aggregate: bool,
}

/// What a query produces and reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryColumns {
    /// Output columns in order.
    pub columns: Vec<OutputColumn>,
    /// Every relation column referenced anywhere in the query (filters,
    /// joins, grouping, ordering and the output).
    pub reads: BTreeSet<Source>,
}

/// Why a query could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeError {
    /// A column name nothing in scope has (PostgreSQL refuses it as well).
    UnknownColumn(String),
    /// The same, where it names a column of these schema relations (the
    /// one its qualifier names, or every one in scope): one the live table
    /// gained after the lock was pulled, or none at all.
    UnknownColumnIn(String, Vec<RelId>),
    /// A relation name neither the schema nor the catalogs have.
    UnknownRelation(String),
    /// `t.*` or `t.c` where no `FROM` entry is called `t`.
    MissingFromEntry(String),
    /// A construct the resolver does not follow, named.
    NotFollowed(String),
}

impl std::fmt::Display for ScopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScopeError::UnknownColumn(c) | ScopeError::UnknownColumnIn(c, _) => {
                write!(f, "column `{c}` cannot be resolved")
            }
            ScopeError::UnknownRelation(r) => write!(f, "relation `{r}` is not in the schema"),
            ScopeError::MissingFromEntry(t) => write!(f, "`{t}` names no FROM entry"),
            ScopeError::NotFollowed(what) => write!(f, "{what} is not followed by the resolver"),
        }
    }
}

impl std::error::Error for ScopeError {}

type Result<T> = std::result::Result<T, ScopeError>;

/// A construct the resolver does not follow (`what` reads after "… is not
/// followed by the resolver").
fn err<T>(what: impl Into<String>) -> Result<T> {
    Err(ScopeError::NotFollowed(what.into()))
}

/// Resolves the output columns of `query` against `schema`, looking
/// unqualified relation names up in `search_path` order.
pub fn query_columns(
    query: &sql::Query,
    schema: &Schema,
    search_path: &[&str],
) -> Result<QueryColumns> {
    let cx = Cx::new(schema, search_path);
    cx.query(query, None, &Ctes::default())
}

/// A system column (`ctid`, `xmin`, …) read through a relation's `FROM`
/// entry: a masking subquery that replaces the entry must carry it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SystemUse {
    /// The relation.
    pub relation: RelId,
    /// The entry's visible name (its alias, or the relation's name).
    pub entry: String,
    /// The system column.
    pub column: &'static str,
}

/// What a statement reads: its column uses, and the system columns it
/// reads through relation entries.
#[derive(Clone, Debug, Default)]
pub struct StatementReads {
    /// Every relation column it touches, and how.
    pub usages: Usages,
    /// Those of `usages` made inside its data-modifying parts (the whole
    /// of an `INSERT`, `UPDATE` or `DELETE`), CTEs they read included: the
    /// uses a write makes, which are forwarded as written.
    pub written: Usages,
    /// System columns read, by entry.
    pub system: BTreeSet<SystemUse>,
    /// Relations some entry of which is taken whole: by `*`, `t.*` or a
    /// whole-row reference `t`. The columns those yield are the live
    /// table's, which may be more than the schema knows.
    pub whole: BTreeSet<RelId>,
}

/// The columns a statement touches and how: queries, `INSERT`, `UPDATE`
/// and `DELETE`. Conservative where it cannot be exact (a scalar
/// subquery's value counts as coming from every column it reads).
pub fn statement_usages(
    statement: &sql::Statement,
    schema: &Schema,
    search_path: &[&str],
) -> Result<Usages> {
    statement_reads(statement, schema, search_path).map(|r| r.usages)
}

/// [`statement_usages`], and the system columns the statement reads.
pub fn statement_reads(
    statement: &sql::Statement,
    schema: &Schema,
    search_path: &[&str],
) -> Result<StatementReads> {
    let cx = Cx::new(schema, search_path);
    cx.statement(statement)?;
    Ok(cx.reads())
}

/// [`statement_reads`] and, from the same walk, the statement's inventory
/// (what [`crate::analyze::analyze`] collects of the statements this
/// resolver follows: relation references with their ranges, names in
/// other positions, calls, settings, schema-qualified columns); `text` is
/// the statement's text, which the ranges index.
pub(crate) fn statement_model(
    statement: &sql::Statement,
    schema: &Schema,
    search_path: &[&str],
    text: &str,
) -> Result<(StatementReads, crate::analyze::Analysis)> {
    let mut cx = Cx::new(schema, search_path);
    cx.record = Some(RefCell::new(Recorder::new(text)));
    cx.statement(statement)?;
    let inventory = match cx.record.take() {
        Some(r) => r.into_inner().finish(statement),
        None => crate::analyze::Analysis::default(),
    };
    Ok((cx.reads(), inventory))
}

struct Cx<'a> {
    /// Where the walk records the statement's inventory, when asked to.
    record: Option<RefCell<Recorder<'a>>>,
    schema: &'a Schema,
    search_path: &'a [&'a str],
    usages: RefCell<Usages>,
    /// The uses made inside data-modifying statements.
    written: RefCell<Usages>,
    /// While resolving a data-modifying statement: the columns it reads
    /// so far (its `reads` as a query).
    writing: RefCell<Option<BTreeSet<Source>>>,
    noted: Noted,
}

/// What name resolution notes beside the sources it returns.
#[derive(Default)]
struct Noted {
    system: RefCell<BTreeSet<SystemUse>>,
    whole: RefCell<BTreeSet<RelId>>,
}

impl Noted {
    /// `entry` is taken whole.
    fn whole(&self, entry: &Entry) {
        if let Some(id) = entry.id {
            self.whole.borrow_mut().insert(id);
        }
    }

    /// `*` over `scope`: each of its entries is taken whole.
    fn star(&self, scope: &Scope<'_>) {
        for e in &scope.entries {
            self.whole(e);
        }
    }
}

impl<'a> Cx<'a> {
    fn new(schema: &'a Schema, search_path: &'a [&'a str]) -> Cx<'a> {
        Cx {
            record: None,
            schema,
            search_path,
            usages: RefCell::default(),
            written: RefCell::default(),
            writing: RefCell::default(),
            noted: Noted::default(),
        }
    }
}

/// A column visible through a `FROM` entry.
#[derive(Clone, Debug)]
struct Col {
    name: String,
    sources: BTreeSet<Source>,
    direct: Option<Source>,
}

/// One `FROM` entry: a relation, subquery, CTE or function, under a name.
#[derive(Clone, Debug)]
struct Entry {
    /// The alias, or the relation's name.
    name: String,
    /// `(schema, name)` of a relation entry, for `schema.table.column`.
    relation: Option<(String, String)>,
    /// The schema's relation, for an entry that reads one.
    id: Option<RelId>,
    columns: Vec<Col>,
    /// A function whose columns are not known: any name resolves to the
    /// columns its arguments read.
    any_column: Option<BTreeSet<Source>>,
}

/// The entries of one query level, with the enclosing levels (for
/// correlated and lateral references).
struct Scope<'p> {
    entries: Vec<Entry>,
    parent: Option<&'p Scope<'p>>,
    /// What `*` yields, in PostgreSQL's order: the entries' columns, but a
    /// `JOIN … USING` or `NATURAL JOIN` lists its merged columns once,
    /// first (a rename list or an `INSERT … SELECT *` after it counts
    /// columns by position).
    star: Vec<StarItem>,
}

/// One position of `*`.
#[derive(Clone, Debug)]
enum StarItem {
    /// A known column.
    Col(Col),
    /// An entry whose columns are not known (see [`expand`]), by name:
    /// listed as one column.
    Any(String, BTreeSet<Source>),
    /// Columns that may follow an entry's known ones (a function's beyond
    /// the names its alias gives, `WITH ORDINALITY`'s): none listed, but
    /// the positions after it are not known.
    More(BTreeSet<Source>),
}

impl<'p> Scope<'p> {
    fn new(entries: Vec<Entry>, parent: Option<&'p Scope<'p>>) -> Scope<'p> {
        let star = entries.iter().flat_map(star_items).collect();
        Scope {
            entries,
            parent,
            star,
        }
    }
}

/// What `*` yields of one entry.
fn star_items(entry: &Entry) -> Vec<StarItem> {
    let mut items: Vec<StarItem> = entry.columns.iter().cloned().map(StarItem::Col).collect();
    match &entry.any_column {
        Some(any) if items.is_empty() => items.push(StarItem::Any(entry.name.clone(), any.clone())),
        Some(any) => items.push(StarItem::More(any.clone())),
        None => {}
    }
    items
}

/// CTEs visible at a point, innermost last.
#[derive(Clone, Default)]
struct Ctes {
    defined: Vec<(String, Vec<Col>)>,
}

impl Ctes {
    fn find(&self, name: &str) -> Option<&Vec<Col>> {
        self.defined
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }
}

fn is_aggregate(e: &sql::Expr) -> bool {
    match e {
        sql::Expr::Function(f) => {
            f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                sql_lists::AGGREGATES.contains(&fold(i).as_str()) && f.over.is_none()
            })
        }
        sql::Expr::Nested(inner) | sql::Expr::Cast { expr: inner, .. } => is_aggregate(inner),
        _ => false,
    }
}

impl<'a> Cx<'a> {
    /// Records a node in the inventory, when one is being made.
    fn rec(&self, f: impl FnOnce(&mut Recorder<'a>)) {
        if let Some(r) = &self.record {
            f(&mut r.borrow_mut());
        }
    }

    /// Resolves a whole statement: a query (or `COPY (query) TO`), or an
    /// `INSERT`, `UPDATE`, `DELETE` or `MERGE`.
    fn statement(&self, statement: &sql::Statement) -> Result<()> {
        let none = Ctes::default();
        self.rec(|r| r.statement(statement));
        match statement {
            sql::Statement::Query(q)
            | sql::Statement::Copy {
                source: sql::CopySource::Query(q),
                to: true,
                ..
            } => {
                let out = self.query(q, None, &none)?;
                for c in out.columns.iter().filter(|c| !c.aggregate) {
                    self.note(&c.sources, Usage::Projected);
                }
            }
            sql::Statement::Insert(_)
            | sql::Statement::Update(_)
            | sql::Statement::Delete(_)
            | sql::Statement::Merge(_) => {
                self.write_statement(statement, &none)?;
            }
            _ => return err("a statement other than a query, INSERT, UPDATE or DELETE"),
        }
        Ok(())
    }

    /// What the walk found the statement reads.
    fn reads(self) -> StatementReads {
        StatementReads {
            usages: self.usages.into_inner(),
            written: self.written.into_inner(),
            system: self.noted.system.into_inner(),
            whole: self.noted.whole.into_inner(),
        }
    }
}

impl Cx<'_> {
    fn note<'s>(&self, sources: impl IntoIterator<Item = &'s Source>, usage: Usage) {
        let mut u = self.usages.borrow_mut();
        let mut writing = self.writing.borrow_mut();
        let mut written = self.written.borrow_mut();
        for s in sources {
            u.entry(*s).or_default().insert(usage);
            if let Some(reads) = writing.as_mut() {
                reads.insert(*s);
                written.entry(*s).or_default().insert(usage);
            }
        }
    }

    /// `INSERT`, `UPDATE` or `DELETE`, the statement itself or the body of
    /// a query (`WITH x AS (…) UPDATE …`, a data-modifying CTE) with the
    /// CTEs in scope there: notes its column uses, also as written uses
    /// (`StatementReads::written`), and gives what `RETURNING` returns as
    /// the query's columns.
    fn write_statement(&self, stmt: &sql::Statement, ctes: &Ctes) -> Result<QueryColumns> {
        self.rec(|r| r.statement(stmt));
        if self.writing.borrow().is_some() {
            return err("a data-modifying statement inside another");
        }
        *self.writing.borrow_mut() = Some(BTreeSet::new());
        let out = self.write_statement_in(stmt, ctes);
        let reads = self.writing.borrow_mut().take().unwrap_or_default();
        Ok(QueryColumns {
            columns: out?,
            reads,
        })
    }

    fn write_statement_in(&self, stmt: &sql::Statement, ctes: &Ctes) -> Result<Vec<OutputColumn>> {
        // The written table is never a CTE, whatever is in scope.
        let none = Ctes::default();
        match stmt {
            sql::Statement::Insert(insert) => {
                let sql::TableObject::TableName(name) = &insert.table else {
                    return err("INSERT into a table function");
                };
                self.rec(|r| r.other_relation(name));
                let mut target = self.relation_entry(&object_parts(name)?, None, &none)?;
                if let Some(alias) = &insert.table_alias {
                    target.name = fold(&alias.alias);
                }
                if !insert.assignments.is_empty() {
                    return err("INSERT … SET");
                }
                let written: Vec<&Col> = if insert.columns.is_empty() {
                    target.columns.iter().collect()
                } else {
                    let mut cols = Vec::new();
                    for c in &insert.columns {
                        let parts = object_parts(c)?;
                        let name = parts.last().cloned().unwrap_or_default();
                        cols.push(target.columns.iter().find(|t| t.name == name).ok_or_else(
                            || match target.id {
                                Some(ri) => ScopeError::UnknownColumnIn(name, vec![ri]),
                                None => ScopeError::UnknownColumn(name),
                            },
                        )?);
                    }
                    cols
                };
                for c in written {
                    self.note(&c.sources, Usage::Written);
                }
                let mut proposed = BTreeSet::new();
                if let Some(source) = &insert.source {
                    let out = self.query(source, None, ctes)?;
                    for c in &out.columns {
                        self.note(&c.sources, Usage::Projected);
                        proposed.extend(c.sources.iter().copied());
                    }
                }
                let scope = Scope::new(vec![target], None);
                match &insert.on {
                    None => {}
                    Some(sql::OnInsert::OnConflict(on)) => {
                        self.on_conflict(on, &scope, &proposed, ctes)?
                    }
                    Some(_) => return err("an INSERT's ON clause other than ON CONFLICT"),
                }
                self.returning(insert.returning.as_deref(), &scope, ctes)
            }
            sql::Statement::Update(update) => {
                let from = match &update.from {
                    Some(
                        sql::UpdateTableFromKind::AfterSet(from)
                        | sql::UpdateTableFromKind::BeforeSet(from),
                    ) => from.as_slice(),
                    None => &[],
                };
                let scope = self.write_scope(std::iter::once(&update.table), from, ctes)?;
                self.assignments(&update.assignments, &scope, &scope, ctes)?;
                self.filter_and_return(
                    update.selection.as_ref(),
                    update.returning.as_deref(),
                    &scope,
                    ctes,
                )
            }
            sql::Statement::Delete(delete) => {
                let (sql::FromTable::WithFromKeyword(from) | sql::FromTable::WithoutKeyword(from)) =
                    &delete.from;
                let using = delete.using.as_deref().unwrap_or_default();
                let scope = self.write_scope(from, using, ctes)?;
                self.filter_and_return(
                    delete.selection.as_ref(),
                    delete.returning.as_deref(),
                    &scope,
                    ctes,
                )
            }
            sql::Statement::Merge(merge) => self.merge(merge, ctes),
            _ => err("a data-modifying statement other than INSERT, UPDATE, DELETE or MERGE"),
        }
    }

    /// `MERGE`: the target (never a CTE) joined to the source on the `ON`
    /// condition; each `WHEN` condition filters; `UPDATE SET` writes the
    /// target with values computed from both; `INSERT` writes the columns
    /// it lists (all, without a list) with values computed from the
    /// source. It returns nothing (PostgreSQL 15 has no `RETURNING` here).
    fn merge(&self, merge: &sql::Merge, ctes: &Ctes) -> Result<Vec<OutputColumn>> {
        if merge.output.is_some() {
            return err("MERGE … OUTPUT");
        }
        let mut scope = Scope::new(Vec::new(), None);
        let mut reads = BTreeSet::new();
        self.factor(&merge.table, &mut scope, &mut reads, &Ctes::default())?;
        let Some(target) = scope.entries.first().cloned() else {
            return err("MERGE without a target");
        };
        self.factor(&merge.source, &mut scope, &mut reads, ctes)?;
        let r = self.expr(&merge.on, &scope, ctes)?;
        self.note(&r.sources, Usage::Joined);
        let target_scope = Scope::new(vec![target], None);
        for clause in &merge.clauses {
            if let Some(p) = &clause.predicate {
                let r = self.expr(p, &scope, ctes)?;
                self.note(&r.sources, Usage::Filtered);
            }
            match &clause.action {
                sql::MergeAction::Insert(insert) => {
                    if insert.insert_predicate.is_some() {
                        return err("a MERGE INSERT with a predicate");
                    }
                    let written: Vec<Source> = if insert.columns.is_empty() {
                        target_scope.entries[0]
                            .columns
                            .iter()
                            .flat_map(|c| c.sources.iter().copied())
                            .collect()
                    } else {
                        let mut out = Vec::new();
                        for c in &insert.columns {
                            let r = resolve_name(&self.noted, &target_scope, &object_parts(c)?)?;
                            out.extend(r.sources);
                        }
                        out
                    };
                    self.note(&written, Usage::Written);
                    let sql::MergeInsertKind::Values(values) = &insert.kind else {
                        return err("a MERGE INSERT other than VALUES");
                    };
                    for row in &values.rows {
                        for e in row.iter() {
                            let r = self.expr(e, &scope, ctes)?;
                            self.note(&r.sources, Usage::Projected);
                        }
                    }
                }
                sql::MergeAction::Update(update) => {
                    if update.update_predicate.is_some() || update.delete_predicate.is_some() {
                        return err("a MERGE UPDATE with a predicate");
                    }
                    let sql::MergeUpdateKind::Set(assignments) = &update.kind else {
                        return err("a MERGE UPDATE other than SET");
                    };
                    self.assignments(assignments, &target_scope, &scope, ctes)?;
                }
                sql::MergeAction::Delete { .. } | sql::MergeAction::DoNothing { .. } => {}
            }
        }
        Ok(Vec::new())
    }

    /// The scope of a write: its targets (never a CTE) and the other
    /// `FROM` (`USING`) entries, which may be CTEs in scope, at the top
    /// level.
    fn write_scope<'t>(
        &self,
        targets: impl IntoIterator<Item = &'t sql::TableWithJoins>,
        from: &[sql::TableWithJoins],
        ctes: &Ctes,
    ) -> Result<Scope<'static>> {
        let mut scope = Scope::new(Vec::new(), None);
        let mut reads = BTreeSet::new();
        for twj in targets {
            self.join_tree(twj, &mut scope, &mut reads, &Ctes::default())?;
        }
        for twj in from {
            self.join_tree(twj, &mut scope, &mut reads, ctes)?;
        }
        Ok(scope)
    }

    /// `INSERT … ON CONFLICT`: the arbiter's columns and predicate compare
    /// the target's stored values (filtered); `DO UPDATE` writes the target
    /// with values computed from its row and from `excluded`, the row
    /// proposed for insertion, whose every column may hold any value the
    /// INSERT's source computed (`proposed`). Without a column list the
    /// arbiter compares the proposed row's columns, which the INSERT
    /// writes or leaves to their defaults.
    fn on_conflict(
        &self,
        on: &sql::OnConflict,
        target: &Scope<'_>,
        proposed: &BTreeSet<Source>,
        ctes: &Ctes,
    ) -> Result<()> {
        if let Some(sql::ConflictTarget::Columns { columns, predicate }) = &on.conflict_target {
            for c in columns {
                let r = resolve_name(&self.noted, target, &[fold(c)])?;
                self.note(&r.sources, Usage::Filtered);
            }
            if let Some(p) = predicate {
                let r = self.expr(p, target, ctes)?;
                self.note(&r.sources, Usage::Filtered);
            }
        }
        let sql::OnConflictAction::DoUpdate(update) = &on.action else {
            return Ok(());
        };
        let Some(row) = target.entries.first() else {
            return err("ON CONFLICT without a target");
        };
        let excluded = Entry {
            name: "excluded".to_owned(),
            relation: None,
            id: None,
            columns: row
                .columns
                .iter()
                .map(|c| Col {
                    name: c.name.clone(),
                    sources: proposed.clone(),
                    direct: None,
                })
                .collect(),
            any_column: None,
        };
        let scope = Scope::new(vec![row.clone(), excluded], None);
        self.assignments(&update.assignments, target, &scope, ctes)?;
        if let Some(w) = &update.selection {
            let r = self.expr(w, &scope, ctes)?;
            self.note(&r.sources, Usage::Filtered);
        }
        Ok(())
    }

    /// `SET` assignments: each target column (named in `targets`) written,
    /// each value (computed in `values`) projected into it.
    fn assignments(
        &self,
        assignments: &[sql::Assignment],
        targets: &Scope<'_>,
        values: &Scope<'_>,
        ctes: &Ctes,
    ) -> Result<()> {
        for a in assignments {
            let names: Vec<&sql::ObjectName> = match &a.target {
                sql::AssignmentTarget::ColumnName(n) => vec![n],
                sql::AssignmentTarget::Tuple(ns) => ns.iter().collect(),
            };
            for n in names {
                let r = resolve_name(&self.noted, targets, &object_parts(n)?)?;
                self.note(&r.sources, Usage::Written);
            }
            let r = self.expr(&a.value, values, ctes)?;
            self.note(&r.sources, Usage::Projected);
        }
        Ok(())
    }

    /// A write's `WHERE` (filtered) and `RETURNING` (returned).
    fn filter_and_return(
        &self,
        selection: Option<&sql::Expr>,
        returning: Option<&[sql::SelectItem]>,
        scope: &Scope<'_>,
        ctes: &Ctes,
    ) -> Result<Vec<OutputColumn>> {
        if let Some(w) = selection {
            let r = self.expr(w, scope, ctes)?;
            self.note(&r.sources, Usage::Filtered);
        }
        self.returning(returning, scope, ctes)
    }

    /// `RETURNING`: each value noted as returned, and the columns it gives
    /// (`*` is every column of every entry: the target's and, for `UPDATE
    /// … FROM` and `DELETE … USING`, the others').
    fn returning(
        &self,
        items: Option<&[sql::SelectItem]>,
        scope: &Scope<'_>,
        ctes: &Ctes,
    ) -> Result<Vec<OutputColumn>> {
        let mut columns = Vec::new();
        let mut reads = BTreeSet::new();
        for item in items.unwrap_or_default() {
            match item {
                sql::SelectItem::UnnamedExpr(e)
                | sql::SelectItem::ExprWithAlias { expr: e, .. } => {
                    let r = self.expr(e, scope, ctes)?;
                    self.note(&r.sources, Usage::Returned);
                    let name = match item {
                        sql::SelectItem::ExprWithAlias { alias, .. } => fold(alias),
                        _ => figure_name(e),
                    };
                    columns.push(OutputColumn {
                        name,
                        sources: r.sources,
                        direct: r.direct,
                        aggregate: false,
                    });
                }
                sql::SelectItem::Wildcard(_) => {
                    self.noted.star(scope);
                    expand_star(&scope.star, &mut columns, &mut reads);
                }
                sql::SelectItem::QualifiedWildcard(kind, _) => {
                    let sql::SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                        return err("a RETURNING wildcard over an expression");
                    };
                    let parts = object_parts(name)?;
                    let entry = find_entry(scope, &parts)
                        .ok_or_else(|| ScopeError::MissingFromEntry(parts.join(".")))?;
                    self.noted.whole(entry);
                    expand(entry, &mut columns, &mut reads)?;
                }
                sql::SelectItem::ExprWithAliases { .. } => {
                    return err("a RETURNING item with several aliases");
                }
            }
        }
        self.note(&reads, Usage::Returned);
        Ok(columns)
    }

    fn query(
        &self,
        q: &sql::Query,
        outer: Option<&Scope<'_>>,
        ctes: &Ctes,
    ) -> Result<QueryColumns> {
        let mut ctes = ctes.clone();
        let mut reads = BTreeSet::new();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let name = fold(&cte.alias.name);
                let renames: Vec<String> =
                    cte.alias.columns.iter().map(|c| fold(&c.name)).collect();
                let result = if with.recursive {
                    self.recursive_cte(&name, &renames, &cte.query, outer, &ctes)?
                } else {
                    self.query(&cte.query, outer, &ctes)?
                };
                reads.extend(result.reads.iter().copied());
                ctes.defined
                    .push((name, rename(cols_of(&result), &renames)?));
            }
        }
        if !q.pipe_operators.is_empty()
            || q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
        {
            return err("a query clause PostgreSQL does not have");
        }
        // LIMIT, OFFSET and FETCH cannot name this level's columns, but a
        // subquery there decides how many rows come back: a filter.
        let bounds = Scope::new(Vec::new(), outer);
        let mut bound_exprs: Vec<&sql::Expr> = Vec::new();
        match &q.limit_clause {
            Some(sql::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                bound_exprs.extend(limit.iter());
                bound_exprs.extend(offset.iter().map(|o| &o.value));
                bound_exprs.extend(limit_by.iter());
            }
            Some(sql::LimitClause::OffsetCommaLimit { offset, limit }) => {
                bound_exprs.extend([offset, limit]);
            }
            None => {}
        }
        if let Some(f) = &q.fetch {
            bound_exprs.extend(f.quantity.iter());
        }
        for e in bound_exprs {
            let r = self.expr(e, &bounds, &ctes)?;
            self.note(&r.sources, Usage::Filtered);
            reads.extend(r.sources);
        }
        let order: &[sql::OrderByExpr] = match &q.order_by {
            Some(sql::OrderBy {
                kind: sql::OrderByKind::Expressions(exprs),
                ..
            }) => exprs,
            _ => &[],
        };
        if let sql::SetExpr::Select(select) = q.body.as_ref() {
            // ORDER BY of a plain SELECT sees its FROM entries and its
            // output names.
            let mut out = self.select(select, outer, &ctes, order)?;
            out.reads.extend(reads);
            return Ok(out);
        }
        let mut out = self.set_expr(&q.body, outer, &ctes)?;
        out.reads.extend(reads);
        // ORDER BY of a set operation names output columns; anything else
        // it reads counts as read.
        if !order.is_empty() {
            let exprs = order;
            let scope = Scope::new(
                vec![Entry {
                    name: String::new(),
                    relation: None,
                    id: None,
                    columns: cols_of(&out),
                    any_column: None,
                }],
                outer,
            );
            for e in exprs {
                let r = self.expr(&e.expr, &scope, &ctes)?;
                self.note(&r.sources, Usage::Ordered);
                out.reads.extend(r.sources);
            }
        }
        Ok(out)
    }

    /// `WITH RECURSIVE x AS (base UNION recursive)`: the columns grow until
    /// nothing changes (sources only accumulate, so this ends).
    fn recursive_cte(
        &self,
        name: &str,
        renames: &[String],
        query: &sql::Query,
        outer: Option<&Scope<'_>>,
        ctes: &Ctes,
    ) -> Result<QueryColumns> {
        let base = match query.body.as_ref() {
            sql::SetExpr::SetOperation { left, .. } => self.set_expr(left, outer, ctes)?,
            // No recursive term: the name is in scope all the same (as
            // PostgreSQL binds it, which then refuses a reference to it),
            // with no columns.
            _ => {
                let mut with_self = ctes.clone();
                with_self.defined.push((name.to_owned(), Vec::new()));
                return self.query(query, outer, &with_self);
            }
        };
        let mut current = rename(cols_of(&base), renames)?;
        for _ in 0..16 {
            let mut with_self = ctes.clone();
            with_self.defined.push((name.to_owned(), current.clone()));
            let result = self.query(query, outer, &with_self)?;
            let next = rename(cols_of(&result), renames)?;
            let same = next.len() == current.len()
                && next
                    .iter()
                    .zip(&current)
                    .all(|(a, b)| a.sources == b.sources);
            if same {
                return Ok(result);
            }
            current = next;
        }
        err(format!(
            "a recursive CTE (`{name}`) whose columns do not settle"
        ))
    }

    fn set_expr(
        &self,
        body: &sql::SetExpr,
        outer: Option<&Scope<'_>>,
        ctes: &Ctes,
    ) -> Result<QueryColumns> {
        match body {
            sql::SetExpr::Select(select) => self.select(select, outer, ctes, &[]),
            sql::SetExpr::Insert(stmt)
            | sql::SetExpr::Update(stmt)
            | sql::SetExpr::Delete(stmt)
            | sql::SetExpr::Merge(stmt) => self.write_statement(stmt, ctes),
            sql::SetExpr::Query(q) => self.query(q, outer, ctes),
            sql::SetExpr::SetOperation { left, right, .. } => {
                let l = self.set_expr(left, outer, ctes)?;
                let r = self.set_expr(right, outer, ctes)?;
                if l.columns.len() != r.columns.len() {
                    return err("a set operation whose sides have different numbers of columns");
                }
                let mut reads = l.reads;
                reads.extend(r.reads);
                let columns = l
                    .columns
                    .into_iter()
                    .zip(r.columns)
                    .map(|(a, b)| OutputColumn {
                        name: a.name,
                        sources: a.sources.union(&b.sources).copied().collect(),
                        direct: None,
                        aggregate: a.aggregate && b.aggregate,
                    })
                    .collect();
                Ok(QueryColumns { columns, reads })
            }
            sql::SetExpr::Values(values) => {
                let scope = Scope::new(Vec::new(), outer);
                let mut columns: Vec<OutputColumn> = Vec::new();
                let mut reads = BTreeSet::new();
                for row in &values.rows {
                    for (i, e) in row.iter().enumerate() {
                        let r = self.expr(e, &scope, ctes)?;
                        reads.extend(r.sources.iter().copied());
                        if columns.len() <= i {
                            columns.push(OutputColumn {
                                name: format!("column{}", i + 1),
                                sources: BTreeSet::new(),
                                direct: None,
                                aggregate: false,
                            });
                        }
                        columns[i].sources.extend(r.sources);
                    }
                }
                Ok(QueryColumns { columns, reads })
            }
            sql::SetExpr::Table(t) => {
                let cte = t.schema_name.is_none()
                    && t.table_name
                        .as_ref()
                        .is_some_and(|n| ctes.find(&fold(n)).is_some());
                self.rec(|r| r.table_body(t, cte));
                let Some(name) = &t.table_name else {
                    return err("TABLE without a name");
                };
                let mut parts: Vec<String> = Vec::new();
                if let Some(s) = &t.schema_name {
                    parts.push(fold(s));
                }
                parts.push(fold(name));
                let entry = self.relation_entry(&parts, None, ctes)?;
                // `TABLE t` is `SELECT * FROM t`.
                self.noted.whole(&entry);
                let columns = entry
                    .columns
                    .iter()
                    .map(|c| OutputColumn {
                        name: c.name.clone(),
                        sources: c.sources.clone(),
                        direct: c.direct,
                        aggregate: false,
                    })
                    .collect::<Vec<_>>();
                let reads = columns
                    .iter()
                    .flat_map(|c| c.sources.iter().copied())
                    .collect();
                Ok(QueryColumns { columns, reads })
            }
        }
    }

    fn select(
        &self,
        select: &sql::Select,
        outer: Option<&Scope<'_>>,
        ctes: &Ctes,
        order: &[sql::OrderByExpr],
    ) -> Result<QueryColumns> {
        self.rec(|r| r.select(select));
        unsupported_select_clauses(select)?;
        let mut reads = BTreeSet::new();
        let mut scope = Scope::new(Vec::new(), outer);
        for twj in &select.from {
            self.join_tree(twj, &mut scope, &mut reads, ctes)?;
        }
        let windows = self.named_windows(select, &scope, ctes)?;
        reads.extend(windows.iter().copied());
        // A value computed `OVER` a named window depends on what the
        // window partitions and orders by, as it would written inline.
        let over_window = |e: &sql::Expr, r: &mut Resolved| {
            if !windows.is_empty() && over_named_window(e) {
                r.sources.extend(windows.iter().copied());
                r.direct = None;
            }
        };
        let mut columns = Vec::new();
        for item in &select.projection {
            match item {
                sql::SelectItem::UnnamedExpr(e)
                | sql::SelectItem::ExprWithAlias { expr: e, .. } => {
                    let mut r = self.expr(e, &scope, ctes)?;
                    over_window(e, &mut r);
                    reads.extend(r.sources.iter().copied());
                    let aggregate = is_aggregate(e);
                    if aggregate {
                        self.note(&r.sources, Usage::Aggregated);
                    }
                    let name = match item {
                        sql::SelectItem::ExprWithAlias { alias, .. } => fold(alias),
                        _ => figure_name(e),
                    };
                    columns.push(OutputColumn {
                        name,
                        sources: r.sources,
                        direct: r.direct,
                        aggregate,
                    });
                }
                sql::SelectItem::Wildcard(_) => {
                    self.noted.star(&scope);
                    expand_star(&scope.star, &mut columns, &mut reads);
                }
                sql::SelectItem::QualifiedWildcard(kind, _) => {
                    let sql::SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                        return err("a wildcard over an expression");
                    };
                    let parts = object_parts(name)?;
                    let entry = find_entry(&scope, &parts)
                        .ok_or_else(|| ScopeError::MissingFromEntry(parts.join(".")))?;
                    self.noted.whole(entry);
                    expand(entry, &mut columns, &mut reads)?;
                }
                sql::SelectItem::ExprWithAliases { .. } => {
                    return err("a select item with several aliases");
                }
            }
        }
        let mut read = |e: &sql::Expr, usage: Usage| -> Result<()> {
            let mut r = self.expr_or_output(e, &scope, &columns, ctes)?;
            if over_named_window(e) {
                r.extend(windows.iter().copied());
            }
            self.note(&r, usage);
            reads.extend(r);
            Ok(())
        };
        if let Some(w) = &select.selection {
            read(w, Usage::Filtered)?;
        }
        if let sql::GroupByExpr::Expressions(exprs, _) = &select.group_by {
            for e in exprs {
                read(e, Usage::Grouped)?;
            }
        }
        if let Some(h) = &select.having {
            read(h, Usage::Filtered)?;
        }
        if let Some(sql::Distinct::On(exprs)) = &select.distinct {
            for e in exprs {
                read(e, Usage::Grouped)?;
            }
        }
        for o in order {
            read(&o.expr, Usage::Ordered)?;
        }
        Ok(QueryColumns { columns, reads })
    }

    /// What the `WINDOW` clause's definitions read (partitions, orderings
    /// and frame bounds), each use computed: ordering or partitioning by a
    /// value lets a window function's result reveal it.
    fn named_windows(
        &self,
        select: &sql::Select,
        scope: &Scope<'_>,
        ctes: &Ctes,
    ) -> Result<BTreeSet<Source>> {
        self.computed_from(&select.named_window, scope, ctes)
    }

    /// Every column a part of the statement reads, each use noted as
    /// computed (no position in it is a plain comparison).
    fn computed_from(
        &self,
        node: &impl Visit,
        scope: &Scope<'_>,
        ctes: &Ctes,
    ) -> Result<BTreeSet<Source>> {
        let mut refs = Refs {
            cx: self,
            scope,
            ctes,
            depth: 0,
            sources: BTreeSet::new(),
            plain: HashSet::new(),
            words: HashSet::new(),
        };
        match node.visit(&mut refs) {
            ControlFlow::Break(e) => Err(e),
            ControlFlow::Continue(()) => Ok(refs.sources),
        }
    }

    /// An expression in WHERE/GROUP BY/HAVING, where a bare name may also
    /// be an output column (PostgreSQL allows it in GROUP BY).
    fn expr_or_output(
        &self,
        e: &sql::Expr,
        scope: &Scope<'_>,
        outputs: &[OutputColumn],
        ctes: &Ctes,
    ) -> Result<BTreeSet<Source>> {
        match self.expr(e, scope, ctes) {
            Ok(r) => Ok(r.sources),
            Err(error) => match e {
                sql::Expr::Identifier(i) => outputs
                    .iter()
                    .find(|c| c.name == fold(i))
                    .map(|c| c.sources.clone())
                    .ok_or(error),
                sql::Expr::Value(_) => Ok(BTreeSet::new()),
                _ => Err(error),
            },
        }
    }

    fn join_tree(
        &self,
        twj: &sql::TableWithJoins,
        scope: &mut Scope<'_>,
        reads: &mut BTreeSet<Source>,
        ctes: &Ctes,
    ) -> Result<()> {
        let start = scope.star.len();
        self.factor(&twj.relation, scope, reads, ctes)?;
        for join in &twj.joins {
            let right = scope.star.len();
            self.factor(&join.relation, scope, reads, ctes)?;
            let constraint = match &join.join_operator {
                sql::JoinOperator::Join(c)
                | sql::JoinOperator::Inner(c)
                | sql::JoinOperator::Left(c)
                | sql::JoinOperator::LeftOuter(c)
                | sql::JoinOperator::Right(c)
                | sql::JoinOperator::RightOuter(c)
                | sql::JoinOperator::FullOuter(c)
                | sql::JoinOperator::CrossJoin(c) => c,
                _ => return err("this kind of join"),
            };
            match constraint {
                sql::JoinConstraint::On(e) => {
                    let r = self.expr(e, scope, ctes)?;
                    self.note(&r.sources, Usage::Joined);
                    reads.extend(r.sources);
                }
                sql::JoinConstraint::Using(names) | sql::JoinConstraint::UsingAlias(names, _) => {
                    let mut merged = Vec::new();
                    for n in names {
                        let parts = object_parts(n)?;
                        let Some(col) = parts.last() else { continue };
                        for entry in &scope.entries {
                            if let Some(c) = entry.columns.iter().find(|c| &c.name == col) {
                                self.note(&c.sources, Usage::Joined);
                                reads.extend(c.sources.iter().copied());
                            }
                        }
                        merged.push(col.clone());
                    }
                    let merged = merge_star(&mut scope.star, start, right, &merged);
                    // `USING (…) AS j`: `j` names the merged columns only.
                    if let sql::JoinConstraint::UsingAlias(_, alias) = constraint {
                        scope.entries.push(Entry {
                            name: fold(alias),
                            relation: None,
                            id: None,
                            columns: merged,
                            any_column: None,
                        });
                    }
                }
                sql::JoinConstraint::Natural => {
                    // The names both sides have are compared. With a side
                    // whose columns are not all known, every column counts.
                    let known = scope.entries.iter().all(|e| e.any_column.is_none());
                    let common: BTreeSet<String> = match scope.entries.split_last() {
                        Some((right, left)) if known => right
                            .columns
                            .iter()
                            .filter(|c| {
                                left.iter()
                                    .any(|e| e.columns.iter().any(|l| l.name == c.name))
                            })
                            .map(|c| c.name.clone())
                            .collect(),
                        _ => BTreeSet::new(),
                    };
                    for entry in &scope.entries {
                        for c in entry
                            .columns
                            .iter()
                            .filter(|c| !known || common.contains(&c.name))
                        {
                            self.note(&c.sources, Usage::Joined);
                            reads.extend(c.sources.iter().copied());
                        }
                    }
                    // `*` lists the common columns once, first; with a side
                    // whose columns are not known, which they are is not.
                    if !known {
                        return err("NATURAL JOIN with a side whose columns are not known");
                    }
                    let names: Vec<String> = scope.star[start..right]
                        .iter()
                        .filter_map(|i| match i {
                            StarItem::Col(c) if common.contains(&c.name) => Some(c.name.clone()),
                            _ => None,
                        })
                        .collect();
                    merge_star(&mut scope.star, start, right, &names);
                }
                sql::JoinConstraint::None => {}
            }
        }
        Ok(())
    }

    fn factor(
        &self,
        factor: &sql::TableFactor,
        scope: &mut Scope<'_>,
        reads: &mut BTreeSet<Source>,
        ctes: &Ctes,
    ) -> Result<()> {
        let entry = match factor {
            sql::TableFactor::Table {
                name,
                alias,
                args,
                sample,
                ..
            } => {
                let parts = object_parts(name)?;
                let cte = matches!(parts.as_slice(), [one] if ctes.find(one).is_some());
                self.rec(|r| r.table(factor, cte));
                // TABLESAMPLE's arguments are expressions (constants in
                // PostgreSQL, but calls are checked like any other).
                if let Some(sample) = sample {
                    reads.extend(self.computed_from(sample, scope, ctes)?);
                }
                match args {
                    None => self.relation_entry(&parts, alias.as_ref(), ctes)?,
                    Some(a) => {
                        let sources = self.function_args(&a.args, scope, ctes)?;
                        function_entry(&parts, alias.as_ref(), sources)
                    }
                }
            }
            sql::TableFactor::Derived {
                subquery, alias, ..
            } => {
                // A LATERAL subquery sees the entries before it; a plain one
                // cannot refer to them (PostgreSQL rejected the view
                // otherwise), so seeing them changes nothing.
                let result = self.query(subquery, Some(&*scope), ctes)?;
                reads.extend(result.reads.iter().copied());
                let renames: Vec<String> = alias
                    .as_ref()
                    .map(|a| a.columns.iter().map(|c| fold(&c.name)).collect())
                    .unwrap_or_default();
                Entry {
                    name: alias.as_ref().map(|a| fold(&a.name)).unwrap_or_default(),
                    relation: None,
                    id: None,
                    columns: rename(cols_of(&result), &renames)?,
                    any_column: None,
                }
            }
            sql::TableFactor::Function {
                name, args, alias, ..
            } => {
                let sources = self.function_args(args, scope, ctes)?;
                function_entry(&object_parts(name)?, alias.as_ref(), sources)
            }
            sql::TableFactor::UNNEST {
                alias, array_exprs, ..
            } => {
                let mut sources = BTreeSet::new();
                for e in array_exprs {
                    sources.extend(self.expr(e, scope, ctes)?.sources);
                }
                function_entry(&["unnest".to_owned()], alias.as_ref(), sources)
            }
            sql::TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let Some(alias) = alias else {
                    return self.join_tree(table_with_joins, scope, reads, ctes);
                };
                // `(a JOIN b …) AS j`: the join's columns under the one
                // name `j`; the names inside are hidden from the rest.
                let mut inner = Scope::new(Vec::new(), Some(&*scope));
                self.join_tree(table_with_joins, &mut inner, reads, ctes)?;
                // Its columns as `*` lists them: merged USING columns
                // once; from a part whose columns are not known on, each
                // position and any other name may be any of them.
                let mut listed = Vec::new();
                expand_star(&inner.star, &mut listed, &mut BTreeSet::new());
                let any_column: Option<BTreeSet<Source>> = inner
                    .star
                    .iter()
                    .position(|i| !matches!(i, StarItem::Col(..)))
                    .map(|first| {
                        inner.star[first..]
                            .iter()
                            .flat_map(|i| match i {
                                StarItem::Col(c) => c.sources.iter().copied(),
                                StarItem::Any(_, any) | StarItem::More(any) => any.iter().copied(),
                            })
                            .collect()
                    });
                let columns: Vec<Col> = listed
                    .into_iter()
                    .map(|c| Col {
                        name: c.name,
                        sources: c.sources,
                        direct: c.direct,
                    })
                    .collect();
                let renames: Vec<String> = alias.columns.iter().map(|c| fold(&c.name)).collect();
                Entry {
                    name: fold(&alias.name),
                    relation: None,
                    id: None,
                    columns: rename(columns, &renames)?,
                    any_column,
                }
            }
            sql::TableFactor::XmlTable { alias, .. }
            | sql::TableFactor::JsonTable { alias, .. } => {
                // Table functions with a syntax of their own: every column
                // is computed from everything the call reads.
                let sources = self.computed_from(factor, scope, ctes)?;
                let name = match factor {
                    sql::TableFactor::XmlTable { .. } => "xmltable",
                    _ => "json_table",
                };
                function_entry(&[name.to_owned()], alias.as_ref(), sources)
            }
            _ => return err("a FROM item other than a relation, subquery, join or table function"),
        };
        if let Some(any) = &entry.any_column {
            reads.extend(any.iter().copied());
        }
        scope.star.extend(star_items(&entry));
        scope.entries.push(entry);
        Ok(())
    }

    fn function_args(
        &self,
        args: &[sql::FunctionArg],
        scope: &Scope<'_>,
        ctes: &Ctes,
    ) -> Result<BTreeSet<Source>> {
        let mut sources = BTreeSet::new();
        for arg in args {
            let (sql::FunctionArg::Named { arg, .. }
            | sql::FunctionArg::ExprNamed { arg, .. }
            | sql::FunctionArg::Unnamed(arg)) = arg;
            if let sql::FunctionArgExpr::Expr(e) = arg {
                // A function in FROM computes on its arguments.
                let r = self.expr(e, scope, ctes)?;
                self.note(&r.sources, Usage::Computed);
                sources.extend(r.sources);
            } else {
                return err("a wildcard argument to a table function");
            }
        }
        Ok(sources)
    }

    fn relation_entry(
        &self,
        parts: &[String],
        alias: Option<&sql::TableAlias>,
        ctes: &Ctes,
    ) -> Result<Entry> {
        let renames: Vec<String> = alias
            .map(|a| a.columns.iter().map(|c| fold(&c.name)).collect())
            .unwrap_or_default();
        let alias_name = alias.map(|a| fold(&a.name));
        if let [name] = parts
            && let Some(cols) = ctes.find(name)
        {
            return Ok(Entry {
                name: alias_name.unwrap_or_else(|| name.clone()),
                relation: None,
                id: None,
                columns: rename(cols.clone(), &renames)?,
                any_column: None,
            });
        }
        let Some(ri) = self.schema.lookup(parts, self.search_path) else {
            // A catalog relation the schema does not carry holds no
            // classified values: any of its columns resolves, to nothing.
            // (Which catalogs a statement may read is the engine's check.)
            let Some(name) = sql_lists::catalog_name(parts) else {
                return Err(ScopeError::UnknownRelation(parts.join(".")));
            };
            return Ok(Entry {
                name: alias_name.unwrap_or_else(|| name.to_owned()),
                relation: Some((String::new(), name.to_owned())),
                id: None,
                columns: Vec::new(),
                any_column: Some(BTreeSet::new()),
            });
        };
        let rel = self.schema.relation(ri);
        let columns = rel
            .columns_with_ids()
            .map(|(ci, c)| Col {
                name: c.name.clone(),
                sources: BTreeSet::from([(ri, ci)]),
                direct: Some((ri, ci)),
            })
            .collect();
        Ok(Entry {
            name: alias_name.unwrap_or_else(|| rel.name.clone()),
            relation: Some((rel.schema.clone(), rel.name.clone())),
            id: Some(ri),
            columns: rename(columns, &renames)?,
            any_column: None,
        })
    }

    fn expr(&self, e: &sql::Expr, scope: &Scope<'_>, ctes: &Ctes) -> Result<Resolved> {
        // A plain reference keeps its column's identity (for masks).
        match e {
            sql::Expr::Identifier(_) | sql::Expr::CompoundIdentifier(_) => {
                self.rec(|r| r.expr(e));
                let parts = match e {
                    sql::Expr::Identifier(i) => vec![fold(i)],
                    sql::Expr::CompoundIdentifier(ids) => ids.iter().map(fold).collect(),
                    _ => unreachable!(),
                };
                return resolve_name(&self.noted, scope, &parts);
            }
            sql::Expr::Nested(inner) => return self.expr(inner, scope, ctes),
            _ => {}
        }
        let mut refs = Refs {
            cx: self,
            scope,
            ctes,
            depth: 0,
            sources: BTreeSet::new(),
            plain: HashSet::from([std::ptr::from_ref(e)]),
            words: HashSet::new(),
        };
        match e.visit(&mut refs) {
            ControlFlow::Break(error) => Err(error),
            ControlFlow::Continue(()) => Ok(Resolved {
                sources: refs.sources,
                direct: None,
            }),
        }
    }
}

/// The columns an expression's value comes from.
struct Resolved {
    sources: BTreeSet<Source>,
    direct: Option<Source>,
}

/// Collects the column references of an expression; a subquery in it is
/// resolved in its own scope and contributes everything it reads.
struct Refs<'a, 's, 'c> {
    cx: &'a Cx<'c>,
    scope: &'a Scope<'s>,
    ctes: &'a Ctes,
    depth: usize,
    sources: BTreeSet<Source>,
    /// Column references and aggregate calls in plain positions (see
    /// [`Usage::Computed`]), by address: the visitor meets a comparison
    /// before its operands. The expression being resolved is one itself.
    plain: HashSet<*const sql::Expr>,
    /// Names that are not column references, by address: an argument's
    /// name (`make_interval(days => 1)`), the normal form of `normalize(s,
    /// NFC)` and a field of a composite value (`(c).email`).
    words: HashSet<*const sql::Expr>,
}

impl Refs<'_, '_, '_> {
    /// `name.*` inside an expression: every column of the entry, computed
    /// on (a function's argument, a cast, a composite value), as a
    /// whole-row reference `name` is.
    fn whole_row(&mut self, name: &sql::ObjectName) -> Result<()> {
        let parts = object_parts(name)?;
        let entry = find_entry(self.scope, &parts)
            .ok_or_else(|| ScopeError::MissingFromEntry(parts.join(".")))?;
        self.cx.noted.whole(entry);
        let mut sources: BTreeSet<Source> = BTreeSet::new();
        for c in &entry.columns {
            sources.extend(c.sources.iter().copied());
        }
        if let Some(any) = &entry.any_column {
            sources.extend(any.iter().copied());
        }
        self.cx.note(&sources, Usage::Computed);
        self.sources.extend(sources);
        Ok(())
    }

    /// Marks the column references of `e` that sit in plain positions.
    fn mark_plain(&mut self, e: &sql::Expr) {
        let in_plain_position = self.plain.contains(&std::ptr::from_ref(e));
        let mut mark = |operands: &[&sql::Expr]| {
            if operands.iter().all(|o| is_simple(o)) {
                for o in operands {
                    let o = unnest(o);
                    if is_name(o) || is_aggregate_of_names(o) {
                        self.plain.insert(std::ptr::from_ref(o));
                    }
                }
            }
        };
        match e {
            sql::Expr::BinaryOp {
                left,
                op:
                    sql::BinaryOperator::Eq
                    | sql::BinaryOperator::NotEq
                    | sql::BinaryOperator::Lt
                    | sql::BinaryOperator::LtEq
                    | sql::BinaryOperator::Gt
                    | sql::BinaryOperator::GtEq,
                right,
            } => {
                mark(&[left, right]);
            }
            sql::Expr::IsDistinctFrom(a, b) | sql::Expr::IsNotDistinctFrom(a, b) => mark(&[a, b]),
            sql::Expr::IsNull(a) | sql::Expr::IsNotNull(a) => mark(&[a]),
            sql::Expr::In {
                expr,
                target: sql::InTarget::List(list),
                ..
            } => {
                let mut all: Vec<&sql::Expr> = vec![expr];
                all.extend(list.iter());
                mark(&all);
            }
            // Compared with a subquery's rows, like a join.
            sql::Expr::In {
                expr,
                target: sql::InTarget::Subquery(_),
                ..
            } => mark(&[expr]),
            sql::Expr::Between {
                expr, low, high, ..
            } => mark(&[expr, low, high]),
            sql::Expr::Like {
                expr,
                pattern,
                escape_char: None,
                any: false,
                ..
            }
            | sql::Expr::ILike {
                expr,
                pattern,
                escape_char: None,
                any: false,
                ..
            } => mark(&[expr, pattern]),
            // An aggregate's result may be a stored value (`min`, `max`):
            // its arguments are plain only where the result itself is.
            sql::Expr::Function(_) if is_aggregate_of_names(e) && in_plain_position => {
                mark(&aggregate_args(e));
            }
            _ => {}
        }
    }
}

/// The unnamed expression arguments of a function call.
fn aggregate_args(e: &sql::Expr) -> Vec<&sql::Expr> {
    match e {
        sql::Expr::Function(sql::Function {
            args: sql::FunctionArguments::List(list),
            ..
        }) => list
            .args
            .iter()
            .filter_map(|a| match a {
                sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// An aggregate over column references alone (`count(*)` included).
fn is_aggregate_of_names(e: &sql::Expr) -> bool {
    match e {
        sql::Expr::Function(f) => {
            is_plain_aggregate(f) && aggregate_args(e).iter().all(|a| is_name(unnest(a)))
        }
        _ => false,
    }
}

/// `(e)` is `e`.
fn unnest(e: &sql::Expr) -> &sql::Expr {
    match e {
        sql::Expr::Nested(inner) => unnest(inner),
        other => other,
    }
}

fn is_name(e: &sql::Expr) -> bool {
    matches!(
        e,
        sql::Expr::Identifier(_) | sql::Expr::CompoundIdentifier(_)
    )
}

/// A column reference, an aggregate of column references, or a constant
/// (literals, parameters and what is computed from them alone): an operand
/// that cannot make PostgreSQL echo a column's value.
fn is_simple(e: &sql::Expr) -> bool {
    is_name(unnest(e)) || is_aggregate_of_names(unnest(e)) || is_constant(e)
}

/// No column reference and no subquery anywhere in `e`.
fn is_constant(e: &sql::Expr) -> bool {
    struct Constant;
    impl Visitor for Constant {
        type Break = ();
        fn pre_visit_query(&mut self, _: &sql::Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
        fn pre_visit_expr(&mut self, e: &sql::Expr) -> ControlFlow<()> {
            match e {
                sql::Expr::Identifier(_) | sql::Expr::CompoundIdentifier(_) => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut Constant).is_continue()
}

/// A summarising aggregate ([`sql_lists::SUMMARY_AGGREGATES`], unqualified
/// or in `pg_catalog`) over plain arguments, without `FILTER`, ordering or
/// a window.
fn is_plain_aggregate(f: &sql::Function) -> bool {
    let parts: Vec<String> = f
        .name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(fold)
        .collect();
    let named = match parts.as_slice() {
        [name] => sql_lists::SUMMARY_AGGREGATES.contains(&name.as_str()),
        [schema, name] => {
            schema == "pg_catalog" && sql_lists::SUMMARY_AGGREGATES.contains(&name.as_str())
        }
        _ => false,
    };
    let plain_args = match &f.args {
        sql::FunctionArguments::List(list) => list.clauses.is_empty(),
        _ => false,
    };
    named && plain_args && f.over.is_none() && f.filter.is_none() && f.within_group.is_empty()
}

/// Whether `e` calls a function over a named window (`OVER w`, or
/// `OVER (w ORDER BY …)`), anywhere inside it.
fn over_named_window(e: &sql::Expr) -> bool {
    sql::visit_expressions(e, |x| match x {
        sql::Expr::Function(sql::Function {
            over:
                Some(
                    sql::WindowType::NamedWindow(_)
                    | sql::WindowType::WindowSpec(sql::WindowSpec {
                        window_name: Some(_),
                        ..
                    }),
                ),
            ..
        }) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// Clauses of a `SELECT` the resolver does not follow (other dialects'):
/// an error, so the engine does not rely on its answer.
fn unsupported_select_clauses(select: &sql::Select) -> Result<()> {
    let clause = if select.qualify.is_some() {
        "QUALIFY"
    } else if select.prewhere.is_some() {
        "PREWHERE"
    } else if !select.connect_by.is_empty() {
        "CONNECT BY"
    } else if !select.lateral_views.is_empty() {
        "LATERAL VIEW"
    } else if !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
    {
        "CLUSTER, DISTRIBUTE or SORT BY"
    } else if select.top.is_some() {
        "TOP"
    } else if select.value_table_mode.is_some() || select.exclude.is_some() {
        "a SELECT modifier PostgreSQL does not have"
    } else {
        return Ok(());
    };
    err(clause)
}

impl Visitor for Refs<'_, '_, '_> {
    type Break = ScopeError;

    fn pre_visit_query(&mut self, query: &sql::Query) -> ControlFlow<ScopeError> {
        if self.depth == 0 {
            match self.cx.query(query, Some(self.scope), self.ctes) {
                Ok(r) => {
                    self.sources.extend(r.reads);
                    for c in r.columns {
                        self.sources.extend(c.sources);
                    }
                }
                Err(e) => return ControlFlow::Break(e),
            }
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &sql::Query) -> ControlFlow<ScopeError> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &sql::ObjectName) -> ControlFlow<ScopeError> {
        // A relation named inside an expression (`x IN t`); one inside a
        // subquery is the subquery's walk's.
        if self.depth == 0 {
            self.cx.rec(|r| r.other_relation(relation));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &sql::Expr) -> ControlFlow<ScopeError> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        self.cx.rec(|r| r.expr(expr));
        if self.words.contains(&std::ptr::from_ref(expr)) {
            return ControlFlow::Continue(());
        }
        self.mark_plain(expr);
        let parts = match expr {
            sql::Expr::Identifier(i) => vec![fold(i)],
            sql::Expr::CompoundIdentifier(ids) => ids.iter().map(fold).collect(),
            // `(c).field`: the field names a part of the value `c` already
            // stands for (every column it comes from), not a column.
            sql::Expr::CompoundFieldAccess { access_chain, .. } => {
                for access in access_chain {
                    if let sql::AccessExpr::Dot(e @ sql::Expr::Identifier(_)) = access {
                        self.words.insert(std::ptr::from_ref(e));
                    }
                }
                return ControlFlow::Continue(());
            }
            sql::Expr::Function(f) => {
                if let sql::FunctionArguments::List(list) = &f.args {
                    let normalize = matches!(object_parts(&f.name).as_deref(),
                        Ok([.., n]) if n == "normalize");
                    for (i, arg) in list.args.iter().enumerate() {
                        match arg {
                            sql::FunctionArg::ExprNamed { name, .. } => {
                                self.words.insert(std::ptr::from_ref(name));
                            }
                            sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(
                                e @ sql::Expr::Identifier(form),
                            )) if normalize
                                && i == 1
                                && form.quote_style.is_none()
                                && NORMAL_FORMS.contains(&fold(form).as_str()) =>
                            {
                                self.words.insert(std::ptr::from_ref(e));
                            }
                            _ => {}
                        }
                    }
                    for arg in &list.args {
                        let (sql::FunctionArg::Named { arg, .. }
                        | sql::FunctionArg::ExprNamed { arg, .. }
                        | sql::FunctionArg::Unnamed(arg)) = arg;
                        if let sql::FunctionArgExpr::QualifiedWildcard(name) = arg {
                            // `f(c.*)`: the whole row, as `f(c)` passes it.
                            if let Err(e) = self.whole_row(name) {
                                return ControlFlow::Break(e);
                            }
                        }
                    }
                }
                return ControlFlow::Continue(());
            }
            // `(c.*)`, `ARRAY[c.*]`: the whole row, as `c` is.
            sql::Expr::QualifiedWildcard(name, _) => {
                return match self.whole_row(name) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => ControlFlow::Break(e),
                };
            }
            _ => return ControlFlow::Continue(()),
        };
        match resolve_name(&self.cx.noted, self.scope, &parts) {
            Ok(r) => {
                if !self.plain.contains(&std::ptr::from_ref(expr)) {
                    self.cx.note(&r.sources, Usage::Computed);
                }
                self.sources.extend(r.sources);
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    }
}

/// The normal forms `normalize(s, form)` and `s IS form NORMALIZED` take.
const NORMAL_FORMS: [&str; 4] = ["nfc", "nfd", "nfkc", "nfkd"];

/// SQL's value functions written without parentheses that sqlparser reads
/// as names: where no column has the name they are the session's facts
/// (its schema, user, clock), never a stored value.
const VALUE_KEYWORDS: [&str; 12] = [
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "localtime",
    "localtimestamp",
    "session_user",
    "system_user",
    "user",
];

/// Every table's system columns: row positions, transaction and table ids,
/// never a stored value.
pub(crate) const SYSTEM_COLUMNS: [&str; 6] = ["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"];

/// Resolves `c`, `t.c`, `s.t.c` (or a whole-row `t`) innermost level
/// first; a system column is recorded in `system` with its entry.
fn resolve_name(noted: &Noted, scope: &Scope<'_>, parts: &[String]) -> Result<Resolved> {
    let mut level = Some(scope);
    while let Some(s) = level {
        if let Some(r) = resolve_in(noted, s, parts) {
            return Ok(r);
        }
        level = s.parent;
    }
    if let [word] = parts
        && VALUE_KEYWORDS.contains(&word.as_str())
    {
        return Ok(Resolved {
            sources: BTreeSet::new(),
            direct: None,
        });
    }
    // The schema relations the name could be a column of: its qualifier's,
    // or, unqualified, every one in scope.
    let mut relations: Vec<RelId> = Vec::new();
    match parts {
        [.., _] if parts.len() > 1 => {
            relations.extend(find_entry(scope, &parts[..parts.len() - 1]).and_then(|e| e.id));
        }
        _ => {
            let mut level = Some(scope);
            while let Some(s) = level {
                relations.extend(s.entries.iter().filter_map(|e| e.id));
                level = s.parent;
            }
        }
    }
    let name = parts.join(".");
    if relations.is_empty() {
        Err(ScopeError::UnknownColumn(name))
    } else {
        Err(ScopeError::UnknownColumnIn(name, relations))
    }
}

fn resolve_in(noted: &Noted, scope: &Scope<'_>, parts: &[String]) -> Option<Resolved> {
    let note_system = |entry: &Entry, column: &str| {
        if let (Some(relation), Some(&column)) =
            (entry.id, SYSTEM_COLUMNS.iter().find(|&&c| c == column))
        {
            noted.system.borrow_mut().insert(SystemUse {
                relation,
                entry: entry.name.clone(),
                column,
            });
        }
    };
    match parts {
        [column] => {
            let matches: Vec<&Col> = scope
                .entries
                .iter()
                .filter_map(|e| e.columns.iter().find(|c| &c.name == column))
                .collect();
            if !matches.is_empty() {
                return Some(Resolved {
                    direct: if matches.len() == 1 {
                        matches[0].direct
                    } else {
                        None
                    },
                    sources: matches
                        .iter()
                        .flat_map(|c| c.sources.iter().copied())
                        .collect(),
                });
            }
            if SYSTEM_COLUMNS.contains(&column.as_str())
                && scope.entries.iter().any(|e| e.relation.is_some())
            {
                // PostgreSQL takes it from the one relation entry (more
                // than one is its "ambiguous" error).
                for e in &scope.entries {
                    note_system(e, column);
                }
                return Some(Resolved {
                    sources: BTreeSet::new(),
                    direct: None,
                });
            }
            if let Some(entry) = scope.entries.iter().find(|e| e.any_column.is_some()) {
                return Some(Resolved {
                    sources: entry.any_column.clone().unwrap_or_default(),
                    direct: None,
                });
            }
            // A whole-row reference: every column of the entry.
            scope
                .entries
                .iter()
                .find(|e| &e.name == column)
                .inspect(|e| noted.whole(e))
                .map(|e| Resolved {
                    sources: e
                        .columns
                        .iter()
                        .flat_map(|c| c.sources.iter().copied())
                        .collect(),
                    direct: None,
                })
        }
        [qualifier @ .., column] => {
            let entry = find_in(scope, qualifier)?;
            if let Some(c) = entry.columns.iter().find(|c| &c.name == column) {
                return Some(Resolved {
                    sources: c.sources.clone(),
                    direct: c.direct,
                });
            }
            if entry.relation.is_some() && SYSTEM_COLUMNS.contains(&column.as_str()) {
                note_system(entry, column);
                return Some(Resolved {
                    sources: BTreeSet::new(),
                    direct: None,
                });
            }
            entry.any_column.as_ref().map(|s| Resolved {
                sources: s.clone(),
                direct: None,
            })
        }
        [] => None,
    }
}

fn find_in<'s>(scope: &'s Scope<'_>, qualifier: &[String]) -> Option<&'s Entry> {
    scope.entries.iter().find(|e| match qualifier {
        [name] => &e.name == name,
        [schema, name] | [_, schema, name] => {
            e.relation.as_ref() == Some(&(schema.clone(), name.clone())) && &e.name == name
        }
        _ => false,
    })
}

fn find_entry<'s>(scope: &'s Scope<'_>, qualifier: &[String]) -> Option<&'s Entry> {
    let mut level = Some(scope);
    while let Some(s) = level {
        if let Some(e) = find_in(s, qualifier) {
            return Some(e);
        }
        level = s.parent;
    }
    None
}

fn function_entry(
    parts: &[String],
    alias: Option<&sql::TableAlias>,
    sources: BTreeSet<Source>,
) -> Entry {
    let name = alias
        .map(|a| fold(&a.name))
        .or_else(|| parts.last().cloned())
        .unwrap_or_default();
    let named: Vec<String> = alias
        .map(|a| a.columns.iter().map(|c| fold(&c.name)).collect())
        .unwrap_or_default();
    if named.is_empty() {
        Entry {
            name,
            relation: None,
            id: None,
            columns: Vec::new(),
            any_column: Some(sources),
        }
    } else {
        Entry {
            name,
            relation: None,
            id: None,
            columns: named
                .into_iter()
                .map(|n| Col {
                    name: n,
                    sources: sources.clone(),
                    direct: None,
                })
                .collect(),
            // The alias may name fewer columns than the function has (the
            // rest keep their names), and `WITH ORDINALITY` adds one.
            any_column: Some(sources),
        }
    }
}

/// Rewrites the star of a join (`star[start..]`, its left side up to
/// `right`) as PostgreSQL lists a `USING (names)` or `NATURAL` join's
/// columns: each merged column once, first (computed from both sides'
/// columns of that name, as a full join's `COALESCE` is), then the left
/// side's other columns, then the right side's. Returns the merged
/// columns.
fn merge_star(star: &mut Vec<StarItem>, start: usize, right: usize, names: &[String]) -> Vec<Col> {
    let side = |items: &[StarItem], name: &str| -> BTreeSet<Source> {
        items
            .iter()
            .filter_map(|i| match i {
                StarItem::Col(c) if c.name == name => Some(c.sources.clone()),
                // A side whose columns are not known may have it.
                StarItem::Any(_, any) | StarItem::More(any) => Some(any.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let merged: Vec<Col> = names
        .iter()
        .map(|n| {
            let mut sources = side(&star[start..right], n);
            sources.extend(side(&star[right..], n));
            Col {
                name: n.clone(),
                sources,
                direct: None,
            }
        })
        .collect();
    let rest: Vec<StarItem> = star[start..]
        .iter()
        .filter(|i| !matches!(i, StarItem::Col(c) if names.contains(&c.name)))
        .cloned()
        .collect();
    star.truncate(start);
    star.extend(merged.iter().cloned().map(StarItem::Col));
    star.extend(rest);
    merged
}

/// `*` over a scope's star (see [`Scope::star`]), as [`expand`] does per
/// entry.
/// An entry whose columns are not known is listed as one column, but
/// PostgreSQL lists as many as it has: every position from it on may hold
/// any column from it up to that position, so each is computed from all
/// of them (a rename list or `INSERT … SELECT *` counts by position).
fn expand_star(star: &[StarItem], columns: &mut Vec<OutputColumn>, reads: &mut BTreeSet<Source>) {
    let mut shifted: Option<BTreeSet<Source>> = None;
    for item in star {
        let (name, sources, direct) = match item {
            StarItem::Col(c) => (&c.name, &c.sources, c.direct),
            StarItem::Any(name, any) => (name, any, None),
            StarItem::More(any) => {
                reads.extend(any.iter().copied());
                shifted.get_or_insert_default().extend(any.iter().copied());
                continue;
            }
        };
        reads.extend(sources.iter().copied());
        if matches!(item, StarItem::Any(..)) {
            shifted.get_or_insert_default();
        }
        let (sources, direct) = match &mut shifted {
            Some(all) => {
                all.extend(sources.iter().copied());
                (all.clone(), None)
            }
            None => (sources.clone(), direct),
        };
        columns.push(OutputColumn {
            name: name.clone(),
            sources,
            direct,
            aggregate: false,
        });
    }
}

fn expand(
    entry: &Entry,
    columns: &mut Vec<OutputColumn>,
    reads: &mut BTreeSet<Source>,
) -> Result<()> {
    // A function (or catalog relation) whose columns are not known is one
    // column under its name (what PostgreSQL gives a function of a scalar
    // type), computed from everything its arguments read; one whose alias
    // names columns has those and maybe more. A function with more columns
    // makes the count differ, which set operations and view lineage
    // refuse, and the positions after it are blurred (`expand_star`),
    // never a value unaccounted for.
    expand_star(&star_items(entry), columns, reads);
    Ok(())
}

fn cols_of(q: &QueryColumns) -> Vec<Col> {
    q.columns
        .iter()
        .map(|c| Col {
            name: c.name.clone(),
            sources: c.sources.clone(),
            direct: c.direct,
        })
        .collect()
}

/// Applies an alias column list (`AS x(a, b)`): the first names change.
fn rename(mut cols: Vec<Col>, names: &[String]) -> Result<Vec<Col>> {
    if names.len() > cols.len() {
        return err("an alias naming more columns than there are");
    }
    for (c, n) in cols.iter_mut().zip(names) {
        c.name = n.clone();
    }
    Ok(cols)
}

fn object_parts(name: &sql::ObjectName) -> Result<Vec<String>> {
    name.0
        .iter()
        .map(|p| {
            p.as_ident().map(fold).ok_or_else(|| {
                ScopeError::NotFollowed("a name that is not an identifier".to_owned())
            })
        })
        .collect()
}

/// The name PostgreSQL gives an unaliased output column (`FigureColname`).
fn figure_name(e: &sql::Expr) -> String {
    match e {
        sql::Expr::Identifier(i) => fold(i),
        sql::Expr::CompoundIdentifier(ids) => ids.last().map(fold).unwrap_or_default(),
        sql::Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(fold)
            .unwrap_or_else(|| "?column?".to_owned()),
        sql::Expr::Cast { expr, .. } | sql::Expr::Nested(expr) => figure_name(expr),
        sql::Expr::Case { .. } => "case".to_owned(),
        _ => "?column?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Relation, RelationKind};
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn schema() -> Schema {
        let rel = |schema: &str, name: &str, cols: &[&str]| Relation {
            schema: schema.into(),
            name: name.into(),
            kind: RelationKind::Table,
            columns: cols
                .iter()
                .map(|c| Column {
                    name: (*c).into(),
                    type_name: "text".into(),
                    ..Column::default()
                })
                .collect(),
            ..Relation::default()
        };
        Schema::new(
            "15".into(),
            vec![
                rel("app", "people", &["id", "email", "name"]),
                rel("app", "orders", &["id", "person_id", "card"]),
            ],
        )
    }

    /// Output columns as `name <- [table.column, …] (direct)`, sources in
    /// schema order (relations sorted by name, columns by position).
    fn lineage(sql_text: &str) -> Result<Vec<String>> {
        let s = schema();
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql_text)
            .unwrap()
            .remove(0);
        let sql::Statement::Query(q) = stmt else {
            panic!("not a query")
        };
        let r = query_columns(&q, &s, &["app"])?;
        Ok(r.columns
            .iter()
            .map(|c| {
                let srcs: Vec<String> = c
                    .sources
                    .iter()
                    .map(|&(ri, ci)| {
                        let rel = s.relation(ri);
                        format!("{}.{}", rel.name, rel.columns[ci].name)
                    })
                    .collect();
                format!(
                    "{} <- [{}]{}",
                    c.name,
                    srcs.join(", "),
                    if c.direct.is_some() { " direct" } else { "" }
                )
            })
            .collect())
    }

    #[test]
    fn aliases_joins_and_expressions() {
        assert_eq!(
            lineage("SELECT p.id, lower(p.email) AS e, o.card FROM app.people p JOIN orders o ON o.person_id = p.id").unwrap(),
            ["id <- [people.id] direct", "e <- [people.email]", "card <- [orders.card] direct"]
        );
    }

    #[test]
    fn subqueries_ctes_and_set_operations() {
        assert_eq!(
            lineage("WITH x AS (SELECT email AS m FROM people) SELECT m FROM (SELECT m FROM x) s")
                .unwrap(),
            ["m <- [people.email] direct"]
        );
        assert_eq!(
            lineage("SELECT (SELECT max(card) FROM orders o WHERE o.person_id = p.id) AS c FROM people p").unwrap(),
            ["c <- [orders.person_id, orders.card, people.id]"]
        );
        assert_eq!(
            lineage("SELECT name FROM people UNION SELECT card FROM orders").unwrap(),
            ["name <- [orders.card, people.name]"]
        );
        assert_eq!(
            lineage("WITH RECURSIVE r(n) AS (SELECT id FROM people UNION ALL SELECT email FROM people, r) SELECT n FROM r").unwrap(),
            ["n <- [people.id, people.email]"]
        );
    }

    #[test]
    fn whole_rows_wildcards_and_lateral() {
        assert_eq!(
            lineage("SELECT row_to_json(p) AS j FROM people p").unwrap(),
            ["j <- [people.id, people.email, people.name]"]
        );
        assert_eq!(lineage("SELECT o.* FROM orders o").unwrap().len(), 3);
        assert_eq!(
            lineage("SELECT p.name AS n FROM people p ORDER BY p.email, n").unwrap(),
            ["n <- [people.name] direct"]
        );
        assert_eq!(
            lineage("SELECT l.c FROM people p, LATERAL (SELECT p.email AS c) l").unwrap(),
            ["c <- [people.email] direct"]
        );
    }

    /// `table.column: usages` of a statement.
    fn usages(sql_text: &str) -> Vec<String> {
        let s = schema();
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql_text)
            .unwrap()
            .remove(0);
        statement_usages(&stmt, &s, &["app"])
            .unwrap()
            .iter()
            .map(|(&(ri, ci), u)| {
                let rel = s.relation(ri);
                let names: Vec<&str> = u.iter().map(|x| x.as_str()).collect();
                format!("{}.{}: {}", rel.name, rel.columns[ci].name, names.join(" "))
            })
            .collect()
    }

    #[test]
    fn usage_classes_per_clause() {
        assert_eq!(
            usages(
                "SELECT p.name, count(o.card) FROM people p JOIN orders o ON o.person_id = p.id \
                 WHERE p.email LIKE '%x' GROUP BY p.name ORDER BY p.name"
            ),
            [
                "orders.person_id: joined",
                "orders.card: aggregated",
                "people.id: joined",
                "people.email: filtered",
                "people.name: projected grouped ordered",
            ]
        );
        assert_eq!(
            usages("UPDATE people SET name = email WHERE id = 1 RETURNING id"),
            [
                "people.id: filtered returned",
                "people.email: projected",
                "people.name: written",
            ]
        );
        assert_eq!(
            usages("INSERT INTO orders (id, card) SELECT id, email FROM people"),
            [
                "orders.id: written",
                "orders.card: written",
                "people.id: projected",
                "people.email: projected",
            ]
        );
        assert_eq!(
            usages(
                "DELETE FROM orders o USING people p WHERE p.id = o.person_id AND p.email = 'x'"
            ),
            [
                "orders.person_id: filtered",
                "people.id: filtered",
                "people.email: filtered",
            ]
        );
    }

    #[test]
    fn values_that_enter_expressions_are_computed() {
        // Plain comparisons, IN lists, BETWEEN, IS NULL and plain aggregate
        // arguments are not; casts, functions and arithmetic are.
        assert_eq!(
            usages(
                "SELECT count(p.email) FROM people p JOIN orders o ON o.person_id = p.id \
                 WHERE p.name IN ('a', $1) AND p.id BETWEEN 1 AND 2 + 3 AND o.card IS NULL"
            ),
            [
                "orders.person_id: joined",
                "orders.card: filtered",
                "people.id: filtered joined",
                "people.email: aggregated",
                "people.name: filtered",
            ]
        );
        assert_eq!(
            usages(
                "SELECT count(*) FROM people p JOIN orders o ON o.person_id + 0 = p.id \
                 WHERE p.name::int = 1 OR upper(p.email) = 'X' GROUP BY lower(p.name)"
            ),
            [
                "orders.person_id: joined computed",
                // Compared with a computed value: not a plain comparison.
                "people.id: joined computed",
                "people.email: filtered computed",
                "people.name: filtered grouped computed",
            ]
        );
        // A summary's result compared plainly keeps its argument plain;
        // cast, it does not; `max` returns a stored value: never plain.
        assert_eq!(
            usages(
                "SELECT 1 FROM people GROUP BY id \
                 HAVING count(email) > 1 AND sum(id)::text = 'x' AND max(name) > 'a'"
            ),
            [
                "people.id: filtered grouped computed",
                "people.email: filtered",
                "people.name: filtered computed",
            ]
        );
        // A table function computes on its arguments; LIMIT's subquery filters.
        assert_eq!(
            usages(
                "SELECT 1 FROM people p, LATERAL generate_series(1, p.id) g \
                 LIMIT (SELECT count(*) FROM orders WHERE card = 'x')"
            ),
            ["orders.card: filtered", "people.id: computed"]
        );
    }

    #[test]
    fn named_windows_feed_what_is_computed_over_them() {
        assert_eq!(
            lineage(
                "SELECT row_number() OVER w AS r, name FROM people \
                 WINDOW w AS (PARTITION BY name ORDER BY email)"
            )
            .unwrap(),
            [
                "r <- [people.email, people.name]",
                "name <- [people.name] direct"
            ]
        );
        assert_eq!(
            usages(
                "SELECT sum(id) OVER (w ROWS 1 PRECEDING) FROM people \
                 WINDOW w AS (ORDER BY email) ORDER BY rank() OVER w"
            ),
            [
                "people.id: projected computed",
                "people.email: projected ordered computed",
            ]
        );
    }

    #[test]
    fn aliased_joins_catalogs_system_columns_and_table_functions() {
        // `(a JOIN b) AS j` hides `a` and `b` behind `j`.
        assert_eq!(
            lineage(
                "SELECT j.email, j.card FROM (people p JOIN orders o ON o.person_id = p.id) AS j"
            )
            .unwrap(),
            [
                "email <- [people.email] direct",
                "card <- [orders.card] direct"
            ]
        );
        assert!(lineage("SELECT p.email FROM (people p JOIN orders o ON true) AS j").is_err());
        // Catalog relations and system columns carry no classified value.
        assert_eq!(
            usages(
                "SELECT p.email, c.relname, p.ctid FROM people p \
                 JOIN pg_catalog.pg_class c ON c.oid = p.tableoid, pg_namespace n \
                 WHERE xmin <> '0'"
            ),
            ["people.email: projected"]
        );
        // XMLTABLE computes on what it is passed; `*` over a function
        // whose columns are unknown is one column computed from its inputs.
        assert_eq!(
            lineage(
                "SELECT x.v FROM people p, XMLTABLE('/a' PASSING p.email COLUMNS v text PATH 'b') x"
            )
            .unwrap(),
            ["v <- [people.email]"]
        );
        assert_eq!(
            lineage("SELECT e.* FROM people p, jsonb_array_elements(to_jsonb(p.name)) e").unwrap(),
            ["e <- [people.name]"]
        );
    }

    /// `*` over `JOIN … USING` or `NATURAL JOIN` lists each merged column
    /// once, first, as PostgreSQL does: a rename list after it counts the
    /// columns the way the server does (a miscount would attribute one
    /// column's use to its neighbour).
    #[test]
    fn star_over_a_using_join_lists_merged_columns_once() {
        let merged = [
            "id <- [orders.id, people.id]",
            "email <- [people.email] direct",
            "name <- [people.name] direct",
            "person_id <- [orders.person_id] direct",
            "card <- [orders.card] direct",
        ];
        for sql_text in [
            "SELECT * FROM people p JOIN orders o USING (id)",
            "SELECT * FROM people p NATURAL JOIN orders o",
            "SELECT * FROM (people p JOIN orders o USING (id))",
            "SELECT j.* FROM (people p JOIN orders o USING (id)) AS j",
        ] {
            assert_eq!(lineage(sql_text).unwrap(), merged, "{sql_text}");
        }
        // Three columns, as PostgreSQL counts them (four names are its
        // error too).
        assert!(
            lineage("SELECT x.c2 FROM (SELECT * FROM (SELECT 1 AS id) o JOIN people USING (id)) x(c1, c2, c3, c4)")
                .is_err()
        );
        assert_eq!(
            lineage(
                "SELECT x.c3 FROM (SELECT * FROM (SELECT 1 AS id) o JOIN people USING (id)) x(c1, c2, c3)"
            )
            .unwrap(),
            ["c3 <- [people.name] direct"]
        );
        // `USING (…) AS j`: `j` names the merged columns, and only them.
        assert_eq!(
            lineage("SELECT j.id, name FROM people p JOIN orders o USING (id) AS j").unwrap(),
            [
                "id <- [orders.id, people.id]",
                "name <- [people.name] direct"
            ]
        );
        assert!(lineage("SELECT j.card FROM people p JOIN orders o USING (id) AS j").is_err());
    }

    /// A function whose columns are not known is one column to the
    /// resolver and as many as it has to PostgreSQL: every position after
    /// it under `*` may be any column from it on.
    #[test]
    fn star_after_a_function_of_unknown_columns_blurs_the_positions() {
        assert_eq!(
            lineage("SELECT * FROM people p, jsonb_each(p.name::jsonb) j, orders o").unwrap(),
            [
                "id <- [people.id] direct",
                "email <- [people.email] direct",
                "name <- [people.name] direct",
                "j <- [people.name]",
                "id <- [orders.id, people.name]",
                "person_id <- [orders.id, orders.person_id, people.name]",
                "card <- [orders.id, orders.person_id, orders.card, people.name]",
            ]
        );
        // An alias may name fewer columns than the function has (and WITH
        // ORDINALITY adds one): the named ones are known, what follows not.
        assert_eq!(
            lineage("SELECT * FROM unnest(ARRAY[1]) WITH ORDINALITY AS u(v), orders o").unwrap(),
            [
                "v <- []",
                "id <- [orders.id]",
                "person_id <- [orders.id, orders.person_id]",
                "card <- [orders.id, orders.person_id, orders.card]",
            ]
        );
        // The same in a parenthesised join's alias, whose other names may
        // be any of those columns too.
        assert_eq!(
            lineage(
                "SELECT x.c2, x.card FROM (jsonb_each('{}') j JOIN orders ON true) AS x(c1, c2)"
            )
            .unwrap(),
            [
                "c2 <- [orders.id]",
                "card <- [orders.id, orders.person_id, orders.card]",
            ]
        );
    }

    #[test]
    fn clauses_the_resolver_does_not_follow_are_errors() {
        let schema = schema();
        for sql_text in [
            "SELECT name FROM people QUALIFY true",
            "SELECT * FROM people p NATURAL JOIN generate_series(1, 2) g",
        ] {
            let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql_text).unwrap();
            assert!(
                statement_usages(&stmt[0], &schema, &["app"]).is_err(),
                "{sql_text}"
            );
        }
    }

    #[test]
    fn unknown_names_are_errors_that_say_which() {
        let people = schema().find("app", "people").unwrap();
        assert_eq!(
            lineage("SELECT nope FROM people"),
            Err(ScopeError::UnknownColumnIn("nope".into(), vec![people]))
        );
        assert_eq!(
            lineage("SELECT nope FROM (VALUES (1)) v(n)"),
            Err(ScopeError::UnknownColumn("nope".into()))
        );
        assert_eq!(
            lineage("SELECT x FROM missing"),
            Err(ScopeError::UnknownRelation("missing".into()))
        );
        assert_eq!(
            lineage("SELECT q.* FROM people"),
            Err(ScopeError::MissingFromEntry("q".into()))
        );
    }
}
