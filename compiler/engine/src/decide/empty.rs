//! Statements whose result has no rows by their own text: `LIMIT 0`,
//! `FETCH FIRST 0 ROWS ONLY`, or a plain `SELECT` whose `WHERE` is a
//! constant false (`false`, `1 = 0`). Tools send them to learn a result's
//! columns and types without reading a row (Spark's and many JDBC tools'
//! `SELECT * FROM t WHERE 1=0`, Python tools' `LIMIT 0`).
//!
//! Such a statement may name a denied column, or one that needs an
//! approval, in its result (through `*`) without being refused or held:
//! the masking subquery carries that column as a typed NULL, so its values
//! could not leave the database even if rows came back, and no rows come
//! back. Refusing it would protect nothing; the column's type is in the
//! catalogs the identity reads anyway.

use super::*;

/// Whether the top-level query's result is empty by its text alone.
pub(super) fn no_rows(stmt: &sql::Statement) -> bool {
    let sql::Statement::Query(q) = stmt else {
        return false;
    };
    if limit_zero(q) {
        return true;
    }
    let sql::SetExpr::Select(select) = q.body.as_ref() else {
        return false;
    };
    // Without GROUP BY, an aggregate (or a HAVING) makes one row of no input.
    let grouped = match &select.group_by {
        sql::GroupByExpr::Expressions(exprs, modifiers) => {
            !exprs.is_empty() || !modifiers.is_empty()
        }
        sql::GroupByExpr::All(_) => true,
    };
    !grouped && select.having.is_none() && select.selection.as_ref().is_some_and(constant_false)
}

/// `LIMIT 0` or `FETCH FIRST 0 ROWS ONLY` on the query itself.
fn limit_zero(q: &sql::Query) -> bool {
    let limit = match &q.limit_clause {
        Some(sql::LimitClause::LimitOffset { limit: Some(e), .. }) => Some(e),
        Some(sql::LimitClause::OffsetCommaLimit { limit, .. }) => Some(limit),
        _ => None,
    };
    let fetch = q
        .fetch
        .as_ref()
        .filter(|f| !f.percent && !f.with_ties)
        .and_then(|f| f.quantity.as_ref());
    limit.or(fetch).is_some_and(|e| integer(e) == Some(0))
}

/// `false`, `NOT true`, or a comparison of two different integer literals
/// (`1 = 0`), parenthesised or not.
fn constant_false(e: &sql::Expr) -> bool {
    match e {
        sql::Expr::Nested(inner) => constant_false(inner),
        sql::Expr::Value(v) => matches!(v.value, sql::Value::Boolean(false)),
        sql::Expr::UnaryOp {
            op: sql::UnaryOperator::Not,
            expr,
        } => {
            matches!(expr.as_ref(), sql::Expr::Value(v) if matches!(v.value, sql::Value::Boolean(true)))
        }
        sql::Expr::BinaryOp {
            left,
            op: sql::BinaryOperator::Eq,
            right,
        } => matches!((integer(left), integer(right)), (Some(a), Some(b)) if a != b),
        _ => false,
    }
}

/// An integer literal's value.
fn integer(e: &sql::Expr) -> Option<i64> {
    match e {
        sql::Expr::Nested(inner) => integer(inner),
        sql::Expr::Value(v) => match &v.value {
            sql::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(text: &str) -> bool {
        no_rows(&Parser::parse_sql(&PostgreSqlDialect {}, text).unwrap()[0])
    }

    #[test]
    fn statements_empty_by_their_text() {
        for text in [
            "SELECT * FROM t LIMIT 0",
            "SELECT * FROM t ORDER BY a LIMIT 0 OFFSET 5",
            "SELECT * FROM t FETCH FIRST 0 ROWS ONLY",
            "SELECT * FROM t WHERE 1=0",
            "SELECT * FROM t WHERE (0 = 1)",
            "SELECT * FROM t WHERE false",
            "SELECT * FROM t WHERE NOT true",
            "SELECT a FROM t UNION SELECT b FROM u LIMIT 0",
        ] {
            assert!(empty(text), "{text}");
        }
    }

    #[test]
    fn statements_that_may_return_rows() {
        for text in [
            "SELECT * FROM t",
            "SELECT * FROM t LIMIT 1",
            "SELECT * FROM t LIMIT $1",
            "SELECT * FROM t LIMIT ALL",
            "SELECT * FROM t WHERE 1=1",
            "SELECT * FROM t WHERE 1=0 OR a = 1",
            "SELECT count(*) FROM t WHERE false HAVING true",
            "SELECT a, count(*) FROM t WHERE 1=0 GROUP BY ROLLUP (a)",
            "SELECT a FROM t WHERE false UNION SELECT b FROM u",
            "SELECT * FROM (SELECT * FROM t LIMIT 0) s",
            "INSERT INTO t SELECT * FROM u LIMIT 0",
            "SELECT * FROM t FETCH FIRST 0 PERCENT ROWS ONLY",
        ] {
            assert!(!empty(text), "{text}");
        }
    }
}
