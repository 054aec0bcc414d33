//! Row filters as security barriers.
//!
//! A row filter becomes the `WHERE` of the masking subquery that replaces
//! the relation. Left at that, PostgreSQL pulls the subquery up and orders
//! the filter and the client's own conditions by cost, so a cheap condition
//! that fails on a value (`status::bool`, a division by zero) can run on
//! rows the filter hides and name them in its error. PostgreSQL's answer
//! for views is `security_barrier`: outside conditions enter the barrier
//! only when they are leakproof. A statement cannot set that flag, so the
//! rewrite builds the same thing: `OFFSET 0` keeps the subquery from being
//! pulled up or having conditions pushed into it, and this module picks the
//! client's conditions that are safe to evaluate on hidden rows and copies
//! them inside, next to the filter, so a point query still uses its index.
//!
//! A condition is copied only when it is, exactly, a comparison of a column
//! of that relation the identity reads in clear with a constant or a
//! parameter, on a type whose comparison operators PostgreSQL marks
//! leakproof (`pg_proc.proleakproof`), and only from the `WHERE` of the
//! `SELECT` whose `FROM` holds the reference. Copied, never moved: the
//! client's condition stays where it was. Every copied form is strict (false
//! or null on a null column), so copying it into the nullable side of an
//! outer join keeps the statement's meaning.

use std::ops::ControlFlow;

use crate::schema::ColId;

use sqlparser::ast as sql;
use sqlparser::ast::{Visit, Visitor};

use crate::analyze::{LineIndex, fold, from_factors, name_range};
use crate::masks::sql_string;
use crate::rewrite::quote_ident;
use crate::schema::Relation;

/// The reference whose conditions are wanted: the byte range of its name
/// in the statement, the name the statement calls it by (alias, or the
/// relation's own name), and which of its columns the identity reads in
/// clear.
pub struct Reference<'a> {
    /// Byte range of the relation's name in the statement text.
    pub range: (usize, usize),
    /// The alias, or the relation's unqualified name when it has none.
    pub visible: &'a str,
    /// The relation.
    pub relation: &'a Relation,
    /// Per column: true when the identity reads it in clear here.
    pub clear: &'a [bool],
}

/// The client's conditions on `reference` that may run before its row
/// filter, as SQL over the relation's own column names.
pub fn leakproof_conditions(
    stmt: &sql::Statement,
    text: &str,
    reference: &Reference,
) -> Vec<String> {
    let mut finder = Finder {
        index: LineIndex::new(text),
        reference,
        out: Vec::new(),
    };
    let _ = stmt.visit(&mut finder);
    finder.out
}

struct Finder<'a, 'r> {
    index: LineIndex<'a>,
    reference: &'r Reference<'r>,
    out: Vec<String>,
}

impl Finder<'_, '_> {
    /// True when `name` is the table factor of this reference.
    fn is_reference(&self, name: &sql::ObjectName) -> bool {
        name_range(&self.index, name) == Some(self.reference.range)
    }

    /// Whether this `FROM` holds the reference, and whether it is all the
    /// `FROM` holds (then unqualified names can only mean its columns).
    fn holds(&self, from: &[sql::TableWithJoins]) -> Option<bool> {
        let factors = from_factors(from);
        let found = factors.iter().any(|f| {
            matches!(f, sql::TableFactor::Table { name, args: None, .. } if self.is_reference(name))
        });
        found.then_some(factors.len() == 1)
    }

    /// The column of the reference that `e` names, when it is one the
    /// identity reads in clear.
    fn column(&self, e: &sql::Expr, alone: bool) -> Option<ColId> {
        let name = match e {
            sql::Expr::Identifier(id) if alone => fold(id),
            sql::Expr::CompoundIdentifier(ids) => match ids.as_slice() {
                [q, c] if fold(q) == self.reference.visible => fold(c),
                _ => return None,
            },
            sql::Expr::Nested(inner) => return self.column(inner, alone),
            _ => return None,
        };
        let rel = self.reference.relation;
        let ci = rel.column_index(&name)?;
        self.reference
            .clear
            .get(ci.index())
            .copied()
            .unwrap_or(false)
            .then_some(ci)
    }

    /// `c` rewritten over the relation's own column names, when it is one
    /// of the leakproof forms.
    fn copy(&self, c: &sql::Expr, alone: bool) -> Option<String> {
        let rel = self.reference.relation;
        let typed = |ci: ColId| {
            let t = rel.columns[ci].value_type();
            leakproof_type(t).map(|kind| (quote_ident(&rel.columns[ci].name), kind))
        };
        match c {
            sql::Expr::Nested(inner) => self.copy(inner, alone),
            sql::Expr::BinaryOp { left, op, right } => {
                let op = comparison(op)?;
                if let Some(ci) = self.column(left, alone) {
                    let (col, kind) = typed(ci)?;
                    Some(format!("{col} {op} {}", constant(right, kind)?))
                } else {
                    let ci = self.column(right, alone)?;
                    let (col, kind) = typed(ci)?;
                    Some(format!("{} {op} {col}", constant(left, kind)?))
                }
            }
            sql::Expr::In {
                expr,
                target: sql::InTarget::List(list),
                negated,
                global: false,
            } if !list.is_empty() => {
                let (col, kind) = typed(self.column(expr, alone)?)?;
                let items: Option<Vec<String>> = list.iter().map(|e| constant(e, kind)).collect();
                let not = if *negated { "NOT " } else { "" };
                Some(format!("{col} {not}IN ({})", items?.join(", ")))
            }
            sql::Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (col, kind) = typed(self.column(expr, alone)?)?;
                let not = if *negated { "NOT " } else { "" };
                Some(format!(
                    "{col} {not}BETWEEN {} AND {}",
                    constant(low, kind)?,
                    constant(high, kind)?
                ))
            }
            sql::Expr::IsNotNull(inner) => {
                let (col, _) = typed(self.column(inner, alone)?)?;
                Some(format!("{col} IS NOT NULL"))
            }
            _ => None,
        }
    }
}

impl Visitor for Finder<'_, '_> {
    type Break = ();

    fn pre_visit_select(&mut self, select: &sql::Select) -> ControlFlow<()> {
        let Some(alone) = self.holds(&select.from) else {
            return ControlFlow::Continue(());
        };
        let mut conjuncts = Vec::new();
        if let Some(selection) = &select.selection {
            split_and(selection, &mut conjuncts);
        }
        for c in conjuncts {
            if let Some(copied) = self.copy(c, alone)
                && !self.out.contains(&copied)
            {
                self.out.push(copied);
            }
        }
        ControlFlow::Continue(())
    }
}

fn split_and<'a>(e: &'a sql::Expr, out: &mut Vec<&'a sql::Expr>) {
    match e {
        sql::Expr::BinaryOp {
            left,
            op: sql::BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        sql::Expr::Nested(inner)
            if matches!(
                **inner,
                sql::Expr::BinaryOp {
                    op: sql::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(inner, out);
        }
        other => out.push(other),
    }
}

fn comparison(op: &sql::BinaryOperator) -> Option<&'static str> {
    Some(match op {
        sql::BinaryOperator::Eq => "=",
        sql::BinaryOperator::NotEq => "<>",
        sql::BinaryOperator::Lt => "<",
        sql::BinaryOperator::LtEq => "<=",
        sql::BinaryOperator::Gt => ">",
        sql::BinaryOperator::GtEq => ">=",
        _ => return None,
    })
}

/// Which constants a column type compares with through a leakproof
/// operator (same-type, or integer against integer).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `smallint`, `integer`, `bigint`: integer literals too.
    Integer,
    /// `real`, `double precision`: any number literal too.
    Float,
    /// `boolean`: `true` and `false` too.
    Bool,
    /// Everything else leakproof: only a string literal (coerced to the
    /// column's type when the statement is planned) or a parameter.
    Other,
}

/// The leakproof types of PostgreSQL 15's `pg_operator` (`=`, `<>`, `<`,
/// `<=`, `>`, `>=` between two values of the type). `numeric` and `jsonb`
/// are not leakproof there, so they are not here.
fn leakproof_type(type_name: &str) -> Option<Kind> {
    let t = type_name.trim();
    if t.ends_with("[]") {
        return None;
    }
    let base = t.split('(').next().unwrap_or(t).trim();
    Some(match base {
        "smallint" | "integer" | "bigint" => Kind::Integer,
        "real" | "double precision" => Kind::Float,
        "boolean" => Kind::Bool,
        "text"
        | "character varying"
        | "character"
        | "name"
        | "uuid"
        | "date"
        | "bytea"
        | "oid"
        | "inet"
        | "interval"
        | "time without time zone"
        | "time"
        | "timestamp without time zone"
        | "timestamp with time zone"
        | "timestamp"
        | "money" => Kind::Other,
        _ => return None,
    })
}

/// A constant written so that it means what it meant in the client's
/// text: a parameter, a string (quoted again; `standard_conforming_strings`
/// is pinned on), or a number or boolean the column's type compares with
/// leakproof.
fn constant(e: &sql::Expr, kind: Kind) -> Option<String> {
    match e {
        sql::Expr::Nested(inner) => constant(inner, kind),
        sql::Expr::UnaryOp {
            op: sql::UnaryOperator::Minus,
            expr,
        } if matches!(kind, Kind::Integer | Kind::Float) => {
            constant(expr, kind).map(|n| format!("-{n}"))
        }
        sql::Expr::Value(v) => match &v.value {
            sql::Value::Placeholder(p) if is_parameter(p) => Some(p.clone()),
            sql::Value::SingleQuotedString(s) => Some(sql_string(s)),
            sql::Value::Number(n, false) => {
                // At most 18 digits is an `integer` or `bigint` literal; more
                // would be `numeric`, whose comparisons are not leakproof.
                let digits = (1..=18).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit());
                let number = n.parse::<f64>().is_ok_and(f64::is_finite);
                match kind {
                    Kind::Integer if digits => Some(n.clone()),
                    Kind::Float if number => Some(n.clone()),
                    _ => None,
                }
            }
            sql::Value::Boolean(b) if kind == Kind::Bool => Some(b.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// `$1`, `$2`…: PostgreSQL's parameters.
fn is_parameter(p: &str) -> bool {
    p.strip_prefix('$')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn relation() -> Relation {
        let col = |name: &str, t: &str| Column {
            name: name.into(),
            type_name: t.into(),
            nullable: true,
            base_type: None,
        };
        Relation {
            schema: "public".into(),
            name: "t".into(),
            columns: vec![
                col("id", "integer"),
                col("secret", "text"),
                col("amount", "numeric(10,2)"),
                col("doc", "jsonb"),
                col("Mixed", "double precision"),
                col("tags", "text[]"),
                col("flag", "boolean"),
            ],
            ..Relation::default()
        }
    }

    /// The conditions copied for the first `t` in `sql`; `secret` is the
    /// one column not read in clear.
    fn copied(sql: &str) -> Vec<String> {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let start = sql.find(" t").unwrap() + 1;
        let rel = relation();
        let clear = [true, false, true, true, true, true, true];
        let visible = if sql.contains(" t x") { "x" } else { "t" };
        leakproof_conditions(
            &stmt,
            sql,
            &Reference {
                range: (start, start + 1),
                visible,
                relation: &rel,
                clear: &clear,
            },
        )
    }

    #[test]
    fn only_leakproof_comparisons_of_clear_columns_with_constants_are_copied() {
        assert_eq!(
            copied(
                "SELECT 1 FROM t WHERE id = 1 AND secret = 'a' AND amount = 1 AND doc = '{}' \
                 AND tags = '{}' AND \"Mixed\" >= -1.5 AND flag = true AND id < $2"
            ),
            [
                "\"id\" = 1",
                "\"Mixed\" >= -1.5",
                "\"flag\" = true",
                "\"id\" < $2"
            ]
        );
        // A column compared with anything but a constant, a cast, a
        // function, a disjunction: none of them.
        assert!(
            copied(
                "SELECT 1 FROM t WHERE id = id + 1 AND id::text = '1' AND abs(id) = 1 \
                 AND (id = 1 OR id = 2) AND id = 1.5 AND flag = 1 AND id = '1' || '2'"
            )
            .is_empty()
        );
    }

    #[test]
    fn names_are_matched_by_their_scope() {
        // Qualified by its alias only; unqualified only when alone in FROM.
        assert_eq!(
            copied("SELECT 1 FROM t x JOIN u ON true WHERE x.id = 1 AND t.id = 2 AND id = 3"),
            ["\"id\" = 1"]
        );
        assert_eq!(copied("SELECT 1 FROM t WHERE id = 3"), ["\"id\" = 3"]);
        // A condition of another SELECT is not this reference's.
        assert!(copied("SELECT 1 FROM u WHERE u.id IN (SELECT 1 FROM t) AND id = 1").is_empty());
        assert_eq!(
            copied("SELECT 1 FROM u WHERE EXISTS (SELECT 1 FROM t WHERE id = 4)"),
            ["\"id\" = 4"]
        );
    }

    #[test]
    fn strings_are_quoted_again() {
        assert_eq!(
            copied("SELECT 1 FROM t WHERE id = '1'' OR true --'"),
            ["\"id\" = '1'' OR true --'"]
        );
    }
}
