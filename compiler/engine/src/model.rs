//! The statement model the engine decides on: what a statement names and
//! calls (its inventory: relation references with their ranges and how
//! each resolves, names in other positions, calls, settings) and which
//! columns it uses and how, from one walk.
//!
//! The scope resolver's walk makes both for the statements it follows
//! (queries, `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `COPY (query) TO`). For
//! a statement it does not follow, the model says why, and the inventory
//! is the collector's (`analyze::analyze`), a walk over every node: the
//! engine then refuses the statement where it reads a relation with
//! anything withheld (`decide::resolve_uses`, the one place), and decides
//! the rest from the inventory alone. Debug builds (the tests and the
//! fuzz targets) check that the resolver's inventory is the collector's
//! for every statement it follows: a construct the resolver's walk skipped
//! would otherwise go unchecked.

use sqlparser::ast as sql;

use crate::analyze::{self, Analysis};
use crate::schema::{SEARCH_PATH, Schema};
use crate::scope::{self, ScopeError, StatementReads};

/// One statement, analysed.
#[derive(Debug)]
pub(crate) struct Model {
    /// What it names and calls.
    pub(crate) inventory: Analysis,
    /// The columns it uses and how, or why the resolver could not tell.
    pub(crate) reads: Result<StatementReads, ScopeError>,
}

/// Builds the model of `statement`, whose text is `text`.
pub(crate) fn build(statement: &sql::Statement, text: &str, schema: &Schema) -> Model {
    match scope::statement_model(statement, schema, SEARCH_PATH, text) {
        Ok((reads, inventory)) => {
            #[cfg(debug_assertions)]
            agrees_with_collector(statement, text, &inventory);
            Model {
                inventory,
                reads: Ok(reads),
            }
        }
        Err(e) => Model {
            inventory: analyze::analyze(statement, text),
            reads: Err(e),
        },
    }
}

/// Panics when the resolver's inventory of a statement it followed is not
/// the collector's (identifiers aside, which only DDL checks read).
#[cfg(debug_assertions)]
fn agrees_with_collector(statement: &sql::Statement, text: &str, resolver: &Analysis) {
    let mut collector = analyze::analyze(statement, text);
    collector.idents.clear();
    let canonical = |a: &Analysis| {
        let mut lines = vec![
            format!("select_into {}", a.select_into),
            format!("statements {}", a.statements),
        ];
        lines.extend(a.tables.iter().map(|t| format!("{t:?}")));
        lines.extend(a.other_relations.iter().map(|r| format!("other {r:?}")));
        lines.extend(a.functions.iter().map(|f| format!("call {f:?}")));
        lines.extend(a.settings.iter().map(|s| format!("{s:?}")));
        lines.extend(a.schema_qualified.iter().map(|q| format!("{q:?}")));
        lines.sort();
        lines
    };
    let (walked, collected) = (canonical(resolver), canonical(&collector));
    assert!(
        walked == collected,
        "the scope resolver's inventory differs from the collector's for {text:?}:\n\
         resolver:  {walked:#?}\ncollector: {collected:#?}"
    );
}
