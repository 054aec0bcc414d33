//! Schema changes by an identity with something withheld: a `ddl` right is
//! a right to shape the schema, never a way around the labels. Three ways
//! a schema change could move or reveal protected values are closed here:
//!
//! - a derived relation (`CREATE [MATERIALIZED] VIEW … AS`) is decided like
//!   `CREATE TABLE … AS`: refused from masked, withheld or limited sources,
//!   since the new relation would carry their values without their labels;
//! - code that runs later with the gateway's rights, on other sessions'
//!   statements (`CREATE TRIGGER`, `CREATE RULE`, `CREATE PROCEDURE`), is
//!   refused: the proxy cannot analyse what it will read or copy;
//! - any other schema change that names a column the identity does not
//!   read in clear is refused, naming it: an index expression, a generated
//!   column, a default, a check, a row-level-security policy or a `USING`
//!   conversion over it could copy it elsewhere or turn it into an error
//!   or uniqueness oracle (`CREATE INDEX ON t ((1 / (ssn::int - 123)))`).

use crate::schema::SEARCH_PATH;
use sqlparser::ast as sql;

use crate::access::{Access, PrincipalAccess};
use crate::analyze;
use crate::denials;
use crate::plan::Plan;
use crate::verdict::Denial;

/// What a statement kind does, as far as this check goes.
enum Kind {
    /// Defines a relation from a query.
    Derived(&'static str),
    /// Defines code that runs later, unseen by the proxy.
    Code(&'static str),
    /// Anything else: checked on the columns it names.
    Other,
}

fn kind(stmt: &sql::Statement) -> Kind {
    match stmt {
        sql::Statement::CreateView(v) if v.materialized => {
            Kind::Derived("CREATE MATERIALIZED VIEW … AS")
        }
        sql::Statement::CreateView(_) => Kind::Derived("CREATE VIEW … AS"),
        sql::Statement::CreateTrigger(_) => Kind::Code("CREATE TRIGGER"),
        sql::Statement::CreateRule(_) => Kind::Code("CREATE RULE"),
        sql::Statement::CreateProcedure { .. } => Kind::Code("CREATE PROCEDURE"),
        // A function is code too: called later, by anyone, with the
        // gateway's rights.
        sql::Statement::CreateFunction(_) => Kind::Code("CREATE FUNCTION"),
        _ => Kind::Other,
    }
}

/// The check for a `ddl` statement the identity's rules permit. `derived`
/// decides a derived relation's query (the caller's `CREATE TABLE … AS`
/// path, so both are decided alike).
pub(super) fn check(
    plan: &Plan,
    access: &PrincipalAccess,
    stmt: &sql::Statement,
    text: &str,
    derived: impl FnOnce(&'static str) -> Result<(), Denial>,
) -> Result<(), Denial> {
    match kind(stmt) {
        Kind::Derived(what) => derived(what),
        Kind::Code(what) => Err(denials::ddl_code(what)),
        Kind::Other => {
            let a = analyze::analyze(stmt, text);
            for (parts, _) in a.relation_names() {
                // By the same search as a query's (pg_catalog first).
                let Some(ri) = plan.schema.lookup(parts, SEARCH_PATH) else {
                    continue;
                };
                let rel = plan.schema.relation(ri);
                for (ci, col) in rel.columns_with_ids() {
                    if access.columns[ri][ci] != Access::Clear && a.idents.contains(&col.name) {
                        return Err(denials::ddl_over_withheld(
                            &statement_words(stmt),
                            &format!("{}.{}", rel.qualified(), col.name),
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// The statement's first words, for messages (`CREATE INDEX`).
fn statement_words(stmt: &sql::Statement) -> String {
    let text = stmt.to_string();
    text.split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase()))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
