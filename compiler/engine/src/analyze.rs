//! Analysis of one parsed statement: which relations it names (with the
//! source range of each name, for splicing), which functions it calls and
//! which names it mentions. Which columns it uses, and how, is the scope
//! resolver's answer (`scope.rs`), not a name match here.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast as sql;
use sqlparser::ast::{Visit, Visitor};

/// A relation named in a `FROM`/`JOIN` position.
#[derive(Debug, Clone)]
pub struct TableRef {
    /// Name parts, folded as PostgreSQL folds them.
    pub parts: Vec<String>,
    /// Byte range of the name in the statement text, if sqlparser located it.
    pub range: Option<(usize, usize)>,
    /// The alias, if one was written.
    pub alias: Option<String>,
    /// The alias's column list (`AS c (i, n)`), folded: it renames the
    /// first columns.
    pub alias_columns: Vec<String>,
    /// True for a table function such as `generate_series(…)`.
    pub is_function: bool,
    /// True when the name is a common table expression in scope where it
    /// is written (then it reads the CTE, not a relation of that name).
    pub cte: bool,
    /// `ONLY name`, `ONLY (name)` or `name *`, if written.
    pub inheritance: Option<Inheritance>,
    /// A `TABLESAMPLE` clause: `Some(None)` when written but not located
    /// among the tokens (then the reference cannot be rewritten). It moves
    /// into a masking subquery, since PostgreSQL samples tables only.
    pub sample: Option<Option<(usize, usize)>>,
}

/// An inheritance marker on a relation reference.
#[derive(Debug, Clone, Copy)]
pub struct Inheritance {
    /// `ONLY`: the relation without its descendants (pg_dump's
    /// `SELECT * FROM ONLY t`); otherwise `t *`, PostgreSQL's default.
    pub only: bool,
    /// Byte range of the marker and the name together, which a rewrite
    /// replaces whole; `None` when the tokens around the name do not read
    /// as the marker (then the reference cannot be rewritten).
    pub range: Option<(usize, usize)>,
}

/// What a statement touches.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Relations in table positions.
    pub tables: Vec<TableRef>,
    /// Relation names in other positions (`INSERT INTO t`, `COPY t`, `LOCK t`…).
    pub other_relations: Vec<Vec<String>>,
    /// Called functions: (folded name, folded schema if written).
    pub functions: Vec<(String, Option<String>)>,
    /// Calls that read or change a setting by name (`current_setting`,
    /// `set_config`): the function, and the setting's name when it is
    /// written as a string literal (`None`: computed, so unknown).
    pub settings: Vec<SettingCall>,
    /// Every identifier, folded.
    pub idents: HashSet<String>,
    /// Column references and `t.*` written with their relation's schema.
    pub schema_qualified: Vec<SchemaQualified>,
    /// True when a `SELECT … INTO` creates a table.
    pub select_into: bool,
    /// Statements visited, the analysed one included: more than one means
    /// a statement nested in another (such as `WITH x AS (UPDATE …)`).
    pub statements: usize,
}

impl Analysis {
    /// Every relation name of the statement: its relation references (not
    /// table functions), each with whether scope binds it to a CTE where it
    /// is written, then the names in other positions (an `INSERT`'s
    /// target, `COPY t`, `LOCK t`…), which a CTE never binds.
    pub fn relation_names(&self) -> impl Iterator<Item = (&[String], bool)> {
        self.tables
            .iter()
            .filter(|t| !t.is_function)
            .map(|t| (&t.parts[..], t.cte))
            .chain(self.other_relations.iter().map(|p| (&p[..], false)))
    }
}

/// A column reference or `t.*` qualified by schema and relation
/// (`s.t.c`, `db.s.t.c`, `s.t.*`), as ORMs and query builders write them
/// (Prisma, jOOQ). Once `s.t` is replaced by a masking subquery named
/// `t`, PostgreSQL no longer accepts the schema there, so the rewrite
/// drops the prefix.
#[derive(Debug, Clone)]
pub struct SchemaQualified {
    /// The schema, folded.
    pub schema: String,
    /// The relation, folded.
    pub relation: String,
    /// Byte range of what precedes the relation's name (`"public".`).
    pub prefix: (usize, usize),
}

/// A call of `current_setting` or `set_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingCall {
    /// `current_setting` or `set_config`.
    pub function: String,
    /// The setting's name, lower-cased, when written as a literal.
    pub setting: Option<String>,
    /// For `set_config`, the new value when written as a literal.
    pub value: Option<String>,
    /// Where the name argument is, when it is a parameter (`$1`) or a
    /// column: an expression that can be repeated in a guard without
    /// reading anything (see `decide::guard_setting_name`).
    pub name_at: Option<(usize, usize)>,
    /// For `set_config`, where its value is when written as a literal
    /// (quotes included).
    pub value_at: Option<(usize, usize)>,
}

/// Folds an identifier the way PostgreSQL does: unquoted → lower case.
pub fn fold(ident: &sql::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// A name's identifier parts, folded; parts that are not identifiers are
/// left out (a relation name in a statement position never has any).
pub(crate) fn folded_parts(name: &sql::ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(fold)
        .collect()
}

fn name_parts(name: &sql::ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p.as_ident() {
            Some(i) => fold(i),
            // A dialect function in a name position: keep a marker that
            // resolves to nothing, so the relation counts as unknown.
            None => "\u{0}function".to_owned(),
        })
        .collect()
}

/// Converts sqlparser line/column locations (1-based, columns in
/// characters) into byte offsets of one text.
#[derive(Debug)]
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The byte offset of a location, or `None` for an empty or out-of-range one.
    pub fn offset(&self, loc: sqlparser::tokenizer::Location) -> Option<usize> {
        if loc.line == 0 || loc.column == 0 {
            return None;
        }
        let start = *self.starts.get(usize::try_from(loc.line - 1).ok()?)?;
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line = &self.text[start..line_end];
        let col = usize::try_from(loc.column - 1).ok()?;
        if col == line.chars().count() {
            return Some(line_end);
        }
        line.char_indices().nth(col).map(|(i, _)| start + i)
    }
}

/// The byte range of a written name (`s.t`, `"T"`) in `index`'s text.
pub(crate) fn name_range(index: &LineIndex<'_>, name: &sql::ObjectName) -> Option<(usize, usize)> {
    let first = name.0.first()?.as_ident()?;
    let last = name.0.last()?.as_ident()?;
    let start = index.offset(first.span.start)?;
    let end = index.offset(last.span.end)?;
    (start < end).then_some((start, end))
}

/// The entries of a `FROM` list, joins and parenthesised joins flattened.
pub(crate) fn from_factors(from: &[sql::TableWithJoins]) -> Vec<&sql::TableFactor> {
    fn tree<'a>(t: &'a sql::TableWithJoins, out: &mut Vec<&'a sql::TableFactor>) {
        for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            match f {
                sql::TableFactor::NestedJoin {
                    table_with_joins, ..
                } => tree(table_with_joins, out),
                other => out.push(other),
            }
        }
    }
    let mut out = Vec::new();
    for t in from {
        tree(t, &mut out);
    }
    out
}

/// The `TABLE name` sides of a query body: the body itself, or the sides
/// of its set operations, in text order. sqlparser keeps their names as
/// identifiers, which its relation visitor does not visit.
pub(crate) fn table_bodies(body: &sql::SetExpr) -> Vec<&sql::Table> {
    fn walk<'q>(body: &'q sql::SetExpr, out: &mut Vec<&'q sql::Table>) {
        match body {
            sql::SetExpr::SetOperation { left, right, .. } => {
                walk(left, out);
                walk(right, out);
            }
            sql::SetExpr::Table(t) => out.push(t),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(body, &mut out);
    out
}

/// A `TABLE name` body's name, folded (`schema`, `name`). With no name,
/// which PostgreSQL would not run, a part no relation has, so it resolves
/// to nothing known.
pub(crate) fn table_body_parts(table: &sql::Table) -> Vec<String> {
    let mut parts: Vec<String> = table.schema_name.iter().map(fold).collect();
    match &table.table_name {
        Some(name) => parts.push(fold(name)),
        None => parts.push("\u{0}table".to_owned()),
    }
    parts
}

/// Analyses one statement with the collector: a walk over every node of
/// it, binding CTE names as PostgreSQL does. This is the inventory of a
/// statement the scope resolver does not follow (and of the statements it
/// has no part in: DDL, `EXECUTE`); where the resolver follows one, its own
/// walk records the same inventory (the statement model), and debug builds
/// check that the two agree.
pub fn analyze(statement: &sql::Statement, text: &str) -> Analysis {
    let mut collector = Collector {
        record: Recorder::new(text),
        idents: HashSet::new(),
        factor_names: HashSet::new(),
        cte_frames: Vec::new(),
        cte_definitions: std::collections::HashMap::new(),
        frames_pushed: Vec::new(),
        write_targets: HashSet::new(),
    };
    let _ = statement.visit(&mut collector);
    let mut out = collector.record.finish(statement);
    out.idents = collector.idents;
    out
}

/// The setting `set_config` changes in pg_dump's idiom (PostgreSQL ≥ 15.8
/// and its back-branches, for CVE-2024-7348):
/// `SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings
/// WHERE name = 'restrict_nonsystem_relation_kind'`. The name is computed,
/// but from the one row of `pg_settings` the literal picks, so it is that
/// literal. Only when every setting call of the statement is such a direct
/// projection of a plain `SELECT … FROM pg_settings WHERE name = '…'` (no
/// join, no other relation or subquery a `name` could come from).
fn pg_settings_row(statement: &sql::Statement, calls: usize) -> Option<String> {
    if calls == 0 {
        return None;
    }
    let sql::Statement::Query(q) = statement else {
        return None;
    };
    let sql::SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    if q.with.is_some() || select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return None;
    }
    let sql::TableFactor::Table {
        name, args: None, ..
    } = &select.from[0].relation
    else {
        return None;
    };
    // Unqualified, it is pg_catalog's: pg_catalog is searched first.
    let settings_view = match name_parts(name).as_slice() {
        [t] => t == "pg_settings",
        [s, t] => s == "pg_catalog" && t == "pg_settings",
        _ => false,
    };
    if !settings_view {
        return None;
    }
    let is_name = |e: &sql::Expr| matches!(e, sql::Expr::Identifier(id) if fold(id) == "name");
    let literal = match select.selection.as_ref()? {
        sql::Expr::BinaryOp {
            left,
            op: sql::BinaryOperator::Eq,
            right,
        } if is_name(left) => match right.as_ref() {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::SingleQuotedString(s) => s.to_lowercase(),
                _ => return None,
            },
            _ => return None,
        },
        _ => return None,
    };
    let direct = select
        .projection
        .iter()
        .filter(|item| {
            let expr = match item {
                sql::SelectItem::UnnamedExpr(e)
                | sql::SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => return false,
            };
            let sql::Expr::Function(f) = expr else {
                return false;
            };
            let sql::FunctionArguments::List(list) = &f.args else {
                return false;
            };
            matches!(
                name_parts(&f.name).last().map(String::as_str),
                Some("set_config")
            ) && matches!(
                list.args.first(),
                Some(sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e))) if is_name(e)
            ) && list.args[1..].iter().all(|a| {
                matches!(
                    a,
                    sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(sql::Expr::Value(_)))
                )
            })
        })
        .count();
    (direct == calls).then_some(literal)
}

/// Turns the nodes a walk meets into the inventory of [`Analysis`]: the
/// one place that says what a relation reference, a call or a qualified
/// column records, for both walks that make one (the scope resolver's over
/// the statements it follows, the collector's over the rest). A node is
/// recorded once however often a walk meets it (a recursive CTE is
/// resolved until it settles), and each list ends in the order the text
/// writes it, whatever order the walk met it in.
pub(crate) struct Recorder<'t> {
    index: LineIndex<'t>,
    /// The statement's tokens without whitespace and comments, with byte
    /// ranges: made only for an inheritance marker or a sample, which the
    /// syntax tree does not locate.
    tokens: Option<Vec<(sqlparser::tokenizer::Token, usize, usize)>>,
    out: Analysis,
    /// Addresses of the nodes recorded.
    seen: HashSet<usize>,
    /// Each relation reference's place in `out.tables`, by address.
    table_index: std::collections::HashMap<usize, usize>,
    /// `TABLE name` bodies: address, bound to a CTE, where, name parts.
    bodies: Vec<(usize, bool, usize, Vec<String>)>,
    /// Where each entry of the lists is written, for their order.
    table_at: Vec<usize>,
    other_at: Vec<usize>,
    function_at: Vec<usize>,
    setting_at: Vec<usize>,
}

/// A node's address, which identifies it within one parsed statement.
fn address<T>(node: &T) -> usize {
    std::ptr::from_ref(node) as usize
}

/// Sorts `items` by `at` (stable: entries written at the same place, or
/// located nowhere, keep the order they were met in).
fn in_text_order<T>(items: &mut Vec<T>, at: &[usize]) {
    let mut keyed: Vec<(usize, T)> = at.iter().copied().zip(items.drain(..)).collect();
    keyed.sort_by_key(|(at, _)| *at);
    items.extend(keyed.into_iter().map(|(_, t)| t));
}

impl<'t> Recorder<'t> {
    /// A recorder for a statement of `text`.
    pub(crate) fn new(text: &'t str) -> Recorder<'t> {
        Recorder {
            index: LineIndex::new(text),
            tokens: None,
            out: Analysis::default(),
            seen: HashSet::new(),
            table_index: std::collections::HashMap::new(),
            bodies: Vec::new(),
            table_at: Vec::new(),
            other_at: Vec::new(),
            function_at: Vec::new(),
            setting_at: Vec::new(),
        }
    }

    /// True the first time `node` is met.
    fn first<T>(&mut self, node: &T) -> bool {
        self.seen.insert(address(node))
    }

    /// Where an identifier is written, or past the end when unknown.
    fn at(&self, ident: Option<&sql::Ident>) -> usize {
        ident
            .and_then(|i| self.index.offset(i.span.start))
            .unwrap_or(usize::MAX)
    }

    /// The inventory, in text order.
    pub(crate) fn finish(mut self, statement: &sql::Statement) -> Analysis {
        let mut out = std::mem::take(&mut self.out);
        for (_, cte, at, parts) in std::mem::take(&mut self.bodies) {
            if !cte {
                self.other_at.push(at);
                out.other_relations.push(parts);
            }
        }
        in_text_order(&mut out.tables, &self.table_at);
        in_text_order(&mut out.other_relations, &self.other_at);
        in_text_order(&mut out.functions, &self.function_at);
        in_text_order(&mut out.settings, &self.setting_at);
        out.schema_qualified.sort_by_key(|q| q.prefix);
        if let Some(name) = pg_settings_row(statement, out.settings.len()) {
            for call in &mut out.settings {
                call.setting = Some(name.clone());
            }
        }
        out
    }

    /// A statement, the analysed one or one nested in it.
    pub(crate) fn statement(&mut self, statement: &sql::Statement) {
        if self.first(statement) {
            self.out.statements += 1;
        }
    }

    /// A relation reference in `FROM` (a table, view or table function);
    /// `cte`: scope binds its name to a CTE where it is written.
    pub(crate) fn table(&mut self, factor: &sql::TableFactor, cte: bool) {
        let sql::TableFactor::Table {
            name,
            alias,
            args,
            inheritance,
            sample,
            ..
        } = factor
        else {
            return;
        };
        if !self.first(factor) {
            // Met again: a recursive CTE's definition is resolved once
            // without its own name in scope, then with it, as PostgreSQL
            // binds it.
            if cte && let Some(&i) = self.table_index.get(&address(factor)) {
                self.out.tables[i].cte = true;
            }
            return;
        }
        self.table_index
            .insert(address(factor), self.out.tables.len());
        let sample = sample.as_ref().map(|_| self.sample_range(name));
        let inheritance = inheritance.map(|i| Inheritance {
            only: matches!(i, sql::TableInheritance::Only { .. }),
            range: self.marker_range(name, i),
        });
        let at = self.at(name.0.first().and_then(|p| p.as_ident()));
        self.table_at.push(at);
        self.out.tables.push(TableRef {
            cte,
            parts: name_parts(name),
            range: name_range(&self.index, name),
            alias: alias.as_ref().map(|a| fold(&a.name)),
            alias_columns: alias
                .iter()
                .flat_map(|a| a.columns.iter().map(|c| fold(&c.name)))
                .collect(),
            is_function: args.is_some(),
            inheritance,
            sample,
        });
    }

    /// A relation named outside `FROM` (`INSERT INTO t`, `x IN t`); a
    /// table reference's own name is not one.
    pub(crate) fn other_relation(&mut self, name: &sql::ObjectName) {
        if !self.first(name) {
            return;
        }
        let at = self.at(name.0.first().and_then(|p| p.as_ident()));
        self.other_at.push(at);
        self.out.other_relations.push(name_parts(name));
    }

    /// `TABLE name` as a query's body (a side of a set operation, or a
    /// parenthesised subquery): it reads the whole relation, yet sqlparser
    /// keeps its name as two identifiers, not a relation name, so it is
    /// recorded among the names in other positions, which a relation with
    /// anything withheld refuses and a catalog or an unknown name is
    /// checked in; `cte`: a CTE of the name binds it, as in `FROM`.
    pub(crate) fn table_body(&mut self, table: &sql::Table, cte: bool) {
        if !self.first(table) {
            // Met again (see `table`).
            if cte && let Some(body) = self.bodies.iter_mut().find(|b| b.0 == address(table)) {
                body.1 = true;
            }
            return;
        }
        let at = self.at(table.schema_name.as_ref().or(table.table_name.as_ref()));
        self.bodies
            .push((address(table), cte, at, table_body_parts(table)));
    }

    /// A `SELECT`: `SELECT … INTO`, and `s.t.*` in its list.
    pub(crate) fn select(&mut self, select: &sql::Select) {
        if !self.first(select) {
            return;
        }
        if select.into.is_some() {
            self.out.select_into = true;
        }
        for item in &select.projection {
            if let sql::SelectItem::QualifiedWildcard(
                sql::SelectItemQualifiedWildcardKind::ObjectName(name),
                _,
            ) = item
            {
                self.qualified_wildcard(name);
            }
        }
    }

    /// An expression node: a function call (with the settings it reads or
    /// changes, and `s.t.*` among its arguments), or a column written with
    /// its relation's schema. Other nodes record nothing.
    pub(crate) fn expr(&mut self, expr: &sql::Expr) {
        match expr {
            sql::Expr::CompoundIdentifier(ids) if self.first(expr) => {
                if let [qualifier @ .., _column] = ids.as_slice() {
                    self.schema_qualified(qualifier);
                }
            }
            sql::Expr::Function(f) if self.first(expr) => self.call(f),
            _ => {}
        }
    }

    fn call(&mut self, f: &sql::Function) {
        if let sql::FunctionArguments::List(list) = &f.args {
            for arg in &list.args {
                if let sql::FunctionArg::Unnamed(sql::FunctionArgExpr::QualifiedWildcard(name)) =
                    arg
                {
                    self.qualified_wildcard(name);
                }
            }
        }
        let parts = name_parts(&f.name);
        let (schema, name) = match parts.as_slice() {
            [name] => (None, name.clone()),
            [.., schema, name] => (Some(schema.clone()), name.clone()),
            [] => (None, String::new()),
        };
        let at = self.at(f.name.0.first().and_then(|p| p.as_ident()));
        if matches!(name.as_str(), "current_setting" | "set_config")
            && schema.as_deref().is_none_or(|s| s == "pg_catalog")
        {
            let literal = |i: usize| match &f.args {
                sql::FunctionArguments::List(list) => match list.args.get(i) {
                    Some(sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(
                        sql::Expr::Value(v),
                    ))) => match &v.value {
                        sql::Value::SingleQuotedString(s) => Some(s.clone()),
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            };
            let name_at = match &f.args {
                sql::FunctionArguments::List(list) => match list.args.first() {
                    Some(sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(e))) => {
                        self.plain_operand_range(e)
                    }
                    _ => None,
                },
                _ => None,
            };
            let value_at = match &f.args {
                sql::FunctionArguments::List(list) => match list.args.get(1) {
                    Some(sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(
                        sql::Expr::Value(v),
                    ))) if matches!(v.value, sql::Value::SingleQuotedString(_)) => self
                        .index
                        .offset(v.span.start)
                        .zip(self.index.offset(v.span.end)),
                    _ => None,
                },
                _ => None,
            };
            self.setting_at.push(at);
            self.out.settings.push(SettingCall {
                function: name.clone(),
                setting: literal(0).map(|s| s.to_lowercase()),
                value: literal(1),
                name_at,
                value_at,
            });
        }
        self.function_at.push(at);
        self.out.functions.push((name, schema));
    }

    /// The byte range of a parameter or a column reference: operands that
    /// read nothing and may be written twice.
    fn plain_operand_range(&self, e: &sql::Expr) -> Option<(usize, usize)> {
        let (start, end) = match e {
            sql::Expr::Value(v) if matches!(v.value, sql::Value::Placeholder(_)) => {
                (v.span.start, v.span.end)
            }
            sql::Expr::Identifier(id) => (id.span.start, id.span.end),
            sql::Expr::CompoundIdentifier(ids) => (ids.first()?.span.start, ids.last()?.span.end),
            // `$1::varchar` (SQLAlchemy's typed parameters): the operand
            // inside the cast is guarded, the cast stays around the guard.
            sql::Expr::Cast { expr, .. } | sql::Expr::Nested(expr) => {
                return self.plain_operand_range(expr);
            }
            _ => return None,
        };
        let start = self.index.offset(start)?;
        let end = self.index.offset(end)?;
        (start < end).then_some((start, end))
    }

    /// Records `[db.]schema.relation` qualifying a column or `*`:
    /// `qualifier` is every part before the column (or `*`).
    fn schema_qualified(&mut self, qualifier: &[sql::Ident]) {
        let ([first, ..], [.., schema, relation]) = (qualifier, qualifier) else {
            return;
        };
        let (Some(start), Some(end)) = (
            self.index.offset(first.span.start),
            self.index.offset(relation.span.start),
        ) else {
            return;
        };
        if start < end {
            self.out.schema_qualified.push(SchemaQualified {
                schema: fold(schema),
                relation: fold(relation),
                prefix: (start, end),
            });
        }
    }

    fn qualified_wildcard(&mut self, name: &sql::ObjectName) {
        if !self.first(name) {
            return;
        }
        let parts: Option<Vec<sql::Ident>> = name.0.iter().map(|p| p.as_ident().cloned()).collect();
        if let Some(parts) = parts {
            self.schema_qualified(&parts);
        }
    }

    /// The statement's tokens, made on first use.
    fn tokens(&mut self) -> Option<&[(sqlparser::tokenizer::Token, usize, usize)]> {
        use sqlparser::tokenizer::{Token, Tokenizer};
        if self.tokens.is_none() {
            let index = &self.index;
            let tokens = Tokenizer::new(&sqlparser::dialect::PostgreSqlDialect {}, index.text)
                .tokenize_with_location()
                .ok()?
                .into_iter()
                .filter(|t| !matches!(t.token, Token::Whitespace(_)))
                .filter_map(|t| {
                    Some((
                        t.token,
                        index.offset(t.span.start)?,
                        index.offset(t.span.end)?,
                    ))
                })
                .collect();
            self.tokens = Some(tokens);
        }
        self.tokens.as_deref()
    }

    /// The byte range of `TABLESAMPLE method (args) [REPEATABLE (seed)]`
    /// written after relation `name` (and its alias).
    fn sample_range(&mut self, name: &sql::ObjectName) -> Option<(usize, usize)> {
        use sqlparser::keywords::Keyword;
        use sqlparser::tokenizer::Token;
        let (_, end) = name_range(&self.index, name)?;
        let tokens = self.tokens()?;
        let keyword = |i: usize, k: Keyword| matches!(tokens.get(i), Some((Token::Word(w), ..)) if w.keyword == k && w.quote_style.is_none());
        // The end of a parenthesised list opening at `open`.
        let closing = |open: usize| {
            if tokens.get(open)?.0 != Token::LParen {
                return None;
            }
            let mut depth = 0usize;
            for (j, t) in tokens.iter().enumerate().skip(open) {
                match t.0 {
                    Token::LParen => depth += 1,
                    Token::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j);
                        }
                    }
                    _ => {}
                }
            }
            None
        };
        let after = tokens.iter().position(|t| t.1 >= end)?;
        // Past the alias and its column list, the first TABLESAMPLE is
        // this reference's: the clause comes before anything that follows.
        let at = (after..tokens.len()).find(|&i| keyword(i, Keyword::TABLESAMPLE))?;
        let mut last = closing(at + 2)?;
        if keyword(last + 1, Keyword::REPEATABLE) {
            last = closing(last + 2)?;
        }
        Some((tokens[at].1, tokens[last].2))
    }

    /// The byte range of `ONLY name`, `ONLY (name)` or `name *`.
    fn marker_range(
        &mut self,
        name: &sql::ObjectName,
        marker: sql::TableInheritance,
    ) -> Option<(usize, usize)> {
        use sqlparser::keywords::Keyword;
        use sqlparser::tokenizer::Token;
        let (start, end) = name_range(&self.index, name)?;
        let tokens = self.tokens()?;
        let first = tokens.iter().position(|t| t.1 == start)?;
        let last = tokens.iter().position(|t| t.2 == end)?;
        match marker {
            sql::TableInheritance::Only { parenthesized } => {
                let (open, close) = if parenthesized {
                    let open = first.checked_sub(1)?;
                    let close = last + 1;
                    let parens = tokens[open].0 == Token::LParen
                        && tokens.get(close).is_some_and(|t| t.0 == Token::RParen);
                    (parens.then_some(open)?, close)
                } else {
                    (first, last)
                };
                let only = &tokens[open.checked_sub(1)?];
                match &only.0 {
                    Token::Word(w) if w.keyword == Keyword::ONLY && w.quote_style.is_none() => {
                        Some((only.1, tokens[close].2))
                    }
                    _ => None,
                }
            }
            sql::TableInheritance::IncludeDescendants => {
                let star = tokens.get(last + 1)?;
                (star.0 == Token::Mul).then_some((start, star.2))
            }
        }
    }
}

/// The walk over every node of a statement (see [`analyze`]).
struct Collector<'a> {
    record: Recorder<'a>,
    idents: HashSet<String>,
    /// Addresses of the table factors' `ObjectName`s: a relation name
    /// elsewhere is one of `other_relations`.
    factor_names: HashSet<usize>,
    /// CTE scope, as PostgreSQL (and the scope resolver) binds it: the CTE
    /// names visible where the walk is, one whole set per frame, innermost
    /// last.
    cte_frames: Vec<HashSet<String>>,
    /// The names visible inside each CTE's definition, by the address of
    /// its query: the enclosing scope's, the CTEs written before it in its
    /// `WITH`, and its own name when the `WITH` is `RECURSIVE`.
    cte_definitions: std::collections::HashMap<usize, HashSet<String>>,
    /// How many frames each query being walked pushed, to pop on leaving.
    frames_pushed: Vec<usize>,
    /// Addresses of the names of `UPDATE`, `DELETE` and `MERGE` targets:
    /// a CTE never binds a write's target, whatever is in scope.
    write_targets: HashSet<usize>,
}

impl Collector<'_> {
    /// True when `parts` is one name a CTE in scope has.
    fn bound_to_cte(&self, parts: &[String]) -> bool {
        matches!(parts, [one] if self.cte_frames.last().is_some_and(|f| f.contains(one)))
    }

    /// The `TABLE name` sides of a query's body (see [`Recorder::table_body`]).
    fn table_bodies(&mut self, body: &sql::SetExpr) {
        for t in table_bodies(body) {
            let parts: Vec<String> = t.table_name.iter().map(fold).collect();
            let cte = t.schema_name.is_none() && self.bound_to_cte(&parts);
            self.record.table_body(t, cte);
        }
    }
}

impl Visitor for Collector<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &sql::Query) -> ControlFlow<()> {
        let mut pushed = 0;
        if let Some(visible) = self.cte_definitions.remove(&address(query)) {
            self.cte_frames.push(visible);
            pushed += 1;
        }
        if let Some(with) = &query.with {
            let outer = self.cte_frames.last().cloned().unwrap_or_default();
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|c| fold(&c.alias.name))
                .collect();
            for (i, cte) in with.cte_tables.iter().enumerate() {
                let mut visible = outer.clone();
                visible.extend(names[..i].iter().cloned());
                if with.recursive {
                    visible.insert(names[i].clone());
                }
                self.cte_definitions.insert(address(&*cte.query), visible);
            }
            let mut body = outer;
            body.extend(names);
            self.cte_frames.push(body);
            pushed += 1;
        }
        self.frames_pushed.push(pushed);
        self.table_bodies(&query.body);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &sql::Query) -> ControlFlow<()> {
        for _ in 0..self.frames_pushed.pop().unwrap_or(0) {
            self.cte_frames.pop();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &sql::Select) -> ControlFlow<()> {
        self.record.select(select);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &sql::TableFactor) -> ControlFlow<()> {
        if let sql::TableFactor::Table { name, .. } = factor {
            self.factor_names.insert(address(name));
            let target = self.write_targets.contains(&address(name));
            let cte = !target && self.bound_to_cte(&name_parts(name));
            self.record.table(factor, cte);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &sql::ObjectName) -> ControlFlow<()> {
        if !self.factor_names.contains(&address(relation)) {
            self.record.other_relation(relation);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &sql::Expr) -> ControlFlow<()> {
        self.record.expr(expr);
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &sql::Statement) -> ControlFlow<()> {
        self.record.statement(statement);
        let mut target = |factor: &sql::TableFactor| {
            if let sql::TableFactor::Table { name, .. } = factor {
                self.write_targets.insert(address(name));
            }
        };
        match statement {
            sql::Statement::Update(u) => target(&u.table.relation),
            sql::Statement::Delete(d) => {
                let (sql::FromTable::WithFromKeyword(from) | sql::FromTable::WithoutKeyword(from)) =
                    &d.from;
                for t in from {
                    target(&t.relation);
                }
            }
            sql::Statement::Merge(m) => target(&m.table),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_ident(&mut self, ident: &sql::Ident) -> ControlFlow<()> {
        self.idents.insert(fold(ident));
        ControlFlow::Continue(())
    }
}
