//! Lineage: a view or materialized-view column is at least as protected as
//! the columns its definition computes it from (the most protective of
//! them); a partition's or inheritance child's column is at least as
//! protected as its parent's; a sequence's state as the column that owns
//! it. Then the report of columns nothing classifies.
//!
//! Definitions are resolved with the statement engine's scope resolver
//! (`engine::scope`). A definition it cannot resolve falls back to the most
//! protective label of every relation the definition names, and to the
//! highest label when one of them is unknown: never to a guess.

use crate::schema::{ColId, RelId};
use std::collections::{BTreeMap, BTreeSet};

use clsf_lang::ast::Report;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::Cx;
use crate::diagnostics as diag;
use crate::engine::analyze;
use crate::engine::scope::{self, Source};
use crate::plan::{Categories, ColumnClass, Origin};
use crate::schema::{Relation, RelationKind};

/// Definitions are pulled with only `pg_catalog` on the search path, so
/// every other relation in them is schema-qualified.
const DEFINITION_SEARCH_PATH: &[&str] = &["pg_catalog"];

/// Where one column's value comes from.
struct ColumnLineage {
    sources: BTreeSet<Source>,
    direct: Option<Source>,
}

/// A relation's lineage.
enum RelationLineage {
    /// Per column, in order.
    Columns(Vec<ColumnLineage>),
    /// Nothing usable is known: every column gets the highest label and
    /// every category.
    Top,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Todo,
    Busy,
    Done,
}

impl Cx<'_> {
    /// Applies lineage to every view, materialized view, partition and
    /// inheritance child, sources first.
    pub(crate) fn lineage(&mut self, classes: &mut [Vec<ColumnClass>]) {
        let mut state = vec![State::Todo; self.schema.relations.len()];
        for ri in self.schema.relation_ids() {
            self.derive(ri, classes, &mut state);
        }
    }

    fn derive(&mut self, ri: RelId, classes: &mut [Vec<ColumnClass>], state: &mut [State]) {
        if state[ri] != State::Todo {
            // Done, or a cycle (PostgreSQL forbids them; a hand-made lock
            // could have one): the relation keeps what it has.
            return;
        }
        state[ri] = State::Busy;
        let schema = self.schema;
        let rel = schema.relation(ri);
        match self.relation_lineage(rel) {
            None => {}
            Some(RelationLineage::Top) => {
                let top = self.labels.len() - 1;
                let all = Categories(match self.categories.len() {
                    64 => u64::MAX,
                    n => (1u64 << n) - 1,
                });
                for ci in rel.column_ids() {
                    self.apply(ri, ci, (top, all, None), &[], classes);
                }
            }
            Some(RelationLineage::Columns(lineage)) => {
                let inputs: BTreeSet<RelId> = lineage
                    .iter()
                    .flat_map(|c| c.sources.iter().map(|(r, _)| *r))
                    .collect();
                for input in inputs {
                    self.derive(input, classes, state);
                }
                for (ci, col) in rel.column_ids().zip(&lineage) {
                    if col.sources.is_empty() {
                        // Computed from no column (a constant, `count(*)`):
                        // the column's own classification stands.
                        continue;
                    }
                    let mut level = 0;
                    let mut categories = Categories::default();
                    for &(sr, sc) in &col.sources {
                        let c = &classes[sr][sc];
                        level = level.max(c.level);
                        categories.0 |= c.categories.0;
                    }
                    let family = rel.columns[ci].family();
                    let mask = col
                        .direct
                        .and_then(|(sr, sc)| classes[sr][sc].mask.clone())
                        .filter(|m| m.accepts(family));
                    let sources: Vec<Source> = col.sources.iter().copied().collect();
                    self.apply(ri, ci, (level, categories, mask), &sources, classes);
                }
            }
        }
        state[ri] = State::Done;
    }

    fn relation_lineage(&mut self, rel: &Relation) -> Option<RelationLineage> {
        let is_view = matches!(
            rel.kind,
            RelationKind::View | RelationKind::MaterializedView
        );
        if is_view && let Some(definition) = &rel.definition {
            return Some(match view_lineage(self.schema, rel, definition) {
                Ok(columns) => RelationLineage::Columns(columns),
                Err(reason) => {
                    let fallback = self.fallback(definition);
                    let how = match &fallback {
                        Some(_) => {
                            "its columns get the most protective classification of the relations it names"
                        }
                        None => "its columns get the highest label",
                    };
                    self.diags.push(diag::lineage_not_traced(
                        &rel.qualified(),
                        &reason.to_string(),
                        how,
                    ));
                    match fallback {
                        Some(sources) => RelationLineage::Columns(
                            rel.columns
                                .iter()
                                .map(|_| ColumnLineage {
                                    sources: sources.clone(),
                                    direct: None,
                                })
                                .collect(),
                        ),
                        None => RelationLineage::Top,
                    }
                }
            });
        }
        if rel.kind == RelationKind::Sequence {
            // A sequence issues the values of the column that owns it: its
            // state (the last value issued) is as protected as that column.
            // It carries no mask (its values are not the column's type).
            // One without an owner keeps its own classification.
            let owner = rel.owned_by.as_ref()?;
            let ri = self
                .schema
                .find(&owner.relation.schema, &owner.relation.name)?;
            let ci = self.schema.relation(ri).column_index(&owner.column)?;
            return Some(RelationLineage::Columns(
                rel.columns
                    .iter()
                    .map(|_| ColumnLineage {
                        sources: BTreeSet::from([(ri, ci)]),
                        direct: None,
                    })
                    .collect(),
            ));
        }
        if rel.parents.is_empty() {
            return None;
        }
        let parents: Vec<RelId> = rel
            .parents
            .iter()
            .filter_map(|p| self.schema.find(&p.schema, &p.name))
            .collect();
        Some(RelationLineage::Columns(
            rel.columns
                .iter()
                .map(|c| {
                    let sources: BTreeSet<Source> = parents
                        .iter()
                        .filter_map(|&pi| {
                            self.schema
                                .relation(pi)
                                .column_index(&c.name)
                                .map(|ci| (pi, ci))
                        })
                        .collect();
                    let direct = (sources.len() == 1)
                        .then(|| sources.first().copied())
                        .flatten();
                    ColumnLineage { sources, direct }
                })
                .collect(),
        ))
    }

    /// Every column of every relation a definition names, or `None` when it
    /// does not parse or names a relation the schema lacks.
    fn fallback(&self, definition: &str) -> Option<BTreeSet<Source>> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, definition).ok()?;
        let mut sources = BTreeSet::new();
        for statement in &statements {
            let a = analyze::analyze(statement, definition);
            let names = a
                .tables
                .iter()
                // A function in FROM reads no relation itself, a CTE in
                // scope none but those its definition names (walked too).
                .filter(|t| !t.is_function && !t.cte)
                .map(|t| &t.parts)
                .chain(a.other_relations.iter());
            for parts in names {
                let ri = self.schema.lookup(parts, DEFINITION_SEARCH_PATH)?;
                sources.extend(self.schema.relation(ri).column_ids().map(|ci| (ri, ci)));
            }
        }
        Some(sources)
    }

    /// Combines a column's own classification with what lineage requires
    /// (`sources` name where it comes from, for the message).
    fn apply(
        &mut self,
        ri: RelId,
        ci: ColId,
        (level, categories, mask): (usize, Categories, Option<crate::masks::Mask>),
        sources: &[Source],
        classes: &mut [Vec<ColumnClass>],
    ) {
        let own = &classes[ri][ci];
        let weaker = own.level < level || (categories.0 & !own.categories.0) != 0;
        let derived = ColumnClass {
            level,
            categories,
            mask,
            origin: Origin::Lineage,
        };
        match own.origin {
            Origin::Unclassified => classes[ri][ci] = derived,
            Origin::Explicit => {
                let (span, has_reason) = self.explicit_columns[&(ri, ci)];
                if weaker && !has_reason {
                    let rel = self.schema.relation(ri);
                    let name = format!("{}.{}", rel.qualified(), rel.columns[ci].name);
                    let from: Vec<String> = sources
                        .iter()
                        .take(3)
                        .map(|&(sr, sc)| {
                            let s = self.schema.relation(sr);
                            format!("{}.{}", s.qualified(), s.columns[sc].name)
                        })
                        .collect();
                    let what = self.describe(own.level, own.categories);
                    let needed = self.describe(level, categories);
                    self.diags.push(diag::weaker_than_lineage(
                        span, &name, &what, &needed, &from,
                    ));
                }
            }
            Origin::Table | Origin::Schema | Origin::Pattern | Origin::Lineage => {
                if weaker {
                    classes[ri][ci] = derived;
                }
            }
        }
    }

    fn describe(&self, level: usize, categories: Categories) -> String {
        let mut s = self.labels[level].clone();
        let cats: Vec<&str> = categories
            .indices()
            .map(|i| self.categories[i].as_str())
            .collect();
        if !cats.is_empty() {
            s.push_str(&format!(" [{}]", cats.join(", ")));
        }
        s
    }

    /// Reports the columns no classification covers (outside the catalog),
    /// as the `unclassified … report` setting says: one diagnostic listing
    /// them per relation.
    pub(crate) fn report_unclassified(&mut self, classes: &[Vec<ColumnClass>]) {
        let (report, span) = self.unclassified_report;
        if report == Report::None {
            return;
        }
        let mut by_relation: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (ri, rel) in self.schema.relations_with_ids() {
            if rel.schema == crate::schema::catalog::SCHEMA {
                continue;
            }
            for (ci, c) in rel.columns_with_ids() {
                if classes[ri][ci].origin == Origin::Unclassified {
                    by_relation
                        .entry(rel.qualified())
                        .or_default()
                        .push(c.name.as_str());
                }
            }
        }
        if by_relation.is_empty() {
            return;
        }
        let label = self.labels
            [classes_unclassified_level(classes, self.schema).unwrap_or(self.labels.len() - 1)]
        .clone();
        self.diags.push(diag::unclassified_columns(
            report == Report::Error,
            span,
            &by_relation,
            &label,
        ));
    }
}

/// The level uncovered columns got (they all share it).
fn classes_unclassified_level(
    classes: &[Vec<ColumnClass>],
    schema: &crate::schema::Schema,
) -> Option<usize> {
    schema
        .relations
        .iter()
        .enumerate()
        .filter(|(_, r)| r.schema != crate::schema::catalog::SCHEMA)
        .flat_map(|(ri, _)| classes[ri].iter())
        .find(|c| c.origin == Origin::Unclassified)
        .map(|c| c.level)
}

/// Why a view's columns could not be traced to the columns they come from
/// (the reason its diagnostic gives).
#[derive(Debug, thiserror::Error)]
enum LineageError {
    #[error("its definition does not parse: {0}")]
    Unparsed(sqlparser::parser::ParserError),
    #[error("its definition is not a single query")]
    NotAQuery,
    #[error(transparent)]
    NotResolved(#[from] scope::ScopeError),
    #[error("its definition yields {yields} columns, the view has {has}")]
    ColumnCount { yields: usize, has: usize },
}

/// Resolves a view definition's output columns, which must match the
/// view's columns one for one.
fn view_lineage(
    schema: &crate::schema::Schema,
    rel: &Relation,
    definition: &str,
) -> Result<Vec<ColumnLineage>, LineageError> {
    let statements =
        Parser::parse_sql(&PostgreSqlDialect {}, definition).map_err(LineageError::Unparsed)?;
    let [sqlparser::ast::Statement::Query(query)] = statements.as_slice() else {
        return Err(LineageError::NotAQuery);
    };
    let resolved = scope::query_columns(query, schema, DEFINITION_SEARCH_PATH)?;
    if resolved.columns.len() != rel.columns.len() {
        return Err(LineageError::ColumnCount {
            yields: resolved.columns.len(),
            has: rel.columns.len(),
        });
    }
    Ok(resolved
        .columns
        .into_iter()
        .map(|c| ColumnLineage {
            sources: c.sources,
            direct: c.direct,
        })
        .collect())
}
