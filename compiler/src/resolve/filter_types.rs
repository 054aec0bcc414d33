//! Type checking of a row-filter predicate against the real column types:
//! the predicate must be a boolean condition; comparisons must be between
//! comparable types (a domain counts as its base type); `LIKE` needs text;
//! a string compared with an enum column must be one of the enum's labels.
//!
//! Claim values are bound at run time as string literals, which PostgreSQL
//! coerces to the other side's type, so a claim compares with anything.
//! Expressions it does not model (function calls, casts, operators on
//! arrays) are not checked further: PostgreSQL still checks them when the
//! proxy first uses the filter.

use sqlparser::ast as sql;

use crate::schema::{Column, Relation, Schema, TypeFamily, TypeKind};

/// What each `{claim.…}` reference becomes while the template is checked.
pub(crate) const CLAIM_PROBE: &str = "'{claim}'";

#[derive(Clone, Debug, PartialEq)]
enum Ty {
    /// A string literal, a claim or NULL: coerced to the other side.
    Unknown,
    /// A built-in family (numbers, text, …).
    Family(TypeFamily),
    /// An enum, by type name, with its labels.
    Enum(String, Vec<String>),
    /// Anything else, by type name (arrays, json, user types).
    Named(String),
}

impl Ty {
    fn of(column: &Column, schema: &Schema) -> Ty {
        let t = column.value_type();
        if let Some(u) = schema.user_type(t).filter(|_| !t.ends_with("[]"))
            && let TypeKind::Enum(labels) = &u.kind
        {
            return Ty::Enum(u.name.clone(), labels.clone());
        }
        match TypeFamily::of(t) {
            TypeFamily::Other => Ty::Named(t.to_owned()),
            f => Ty::Family(f),
        }
    }

    fn show(&self) -> String {
        match self {
            Ty::Unknown => "unknown".to_owned(),
            Ty::Family(f) => f.as_str().to_owned(),
            Ty::Enum(name, _) => format!("the enum {name}"),
            Ty::Named(name) => name.clone(),
        }
    }

    fn comparable(&self, other: &Ty) -> bool {
        use TypeFamily::{Date, Timestamp};
        match (self, other) {
            (Ty::Unknown, _) | (_, Ty::Unknown) => true,
            (Ty::Family(Date | Timestamp), Ty::Family(Date | Timestamp)) => true,
            (a, b) => a == b,
        }
    }

    fn is_bool(&self) -> bool {
        matches!(self, Ty::Unknown | Ty::Family(TypeFamily::Bool))
    }
}

/// A row filter whose types do not fit (the text of its diagnostic; types
/// as [`Ty::show`] writes them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TypeError {
    /// The whole filter is not a condition.
    #[error("a row filter must be a condition, but this is {0}")]
    NotCondition(String),
    /// One side of AND or OR is not a condition.
    #[error("`{side}` is {ty}, not a condition, on one side of {op}")]
    NotConditionSide {
        side: String,
        ty: String,
        op: String,
    },
    /// NOT of something that is not a condition.
    #[error("NOT of `{expr}`, which is {ty}")]
    NotOfNonCondition { expr: String, ty: String },
    /// LIKE, ILIKE or SIMILAR TO over something that is not text.
    #[error("pattern matching needs text, but `{side}` is {ty}")]
    PatternNotText { side: String, ty: String },
    /// A string compared with an enum that has no such label.
    #[error("'{literal}' is not a label of the enum {name} ({labels})")]
    NotALabel {
        literal: String,
        name: String,
        labels: String,
    },
    /// Two values of types that do not compare.
    #[error("`{left}` ({left_ty}) cannot be compared with `{right}` ({right_ty})")]
    NotComparable {
        left: String,
        left_ty: String,
        right: String,
        right_ty: String,
    },
}

/// Checks a parsed predicate over `relation`'s columns.
pub(crate) fn check(
    expr: &sql::Expr,
    relation: &Relation,
    schema: &Schema,
) -> Result<(), TypeError> {
    let cx = Cx { relation, schema };
    let ty = cx.ty(expr)?;
    if ty.is_bool() {
        Ok(())
    } else {
        Err(TypeError::NotCondition(ty.show()))
    }
}

struct Cx<'a> {
    relation: &'a Relation,
    schema: &'a Schema,
}

impl Cx<'_> {
    fn ty(&self, e: &sql::Expr) -> Result<Ty, TypeError> {
        use sql::BinaryOperator as B;
        Ok(match e {
            sql::Expr::Identifier(id) => {
                let name = crate::engine::analyze::fold(id);
                match self.relation.column_index(&name) {
                    Some(ci) => Ty::of(&self.relation.columns[ci], self.schema),
                    None => Ty::Unknown,
                }
            }
            sql::Expr::Nested(inner) => self.ty(inner)?,
            sql::Expr::Value(v) => match &v.value {
                sql::Value::Number(..) => Ty::Family(TypeFamily::Number),
                sql::Value::Boolean(_) => Ty::Family(TypeFamily::Bool),
                _ => Ty::Unknown,
            },
            sql::Expr::BinaryOp { left, op, right } => match op {
                B::And | B::Or => {
                    for side in [left, right] {
                        let t = self.ty(side)?;
                        if !t.is_bool() {
                            return Err(TypeError::NotConditionSide {
                                side: side.to_string(),
                                ty: t.show(),
                                op: op.to_string(),
                            });
                        }
                    }
                    Ty::Family(TypeFamily::Bool)
                }
                B::Eq | B::NotEq | B::Lt | B::Gt | B::LtEq | B::GtEq => {
                    self.compare(left, right)?;
                    Ty::Family(TypeFamily::Bool)
                }
                _ => Ty::Unknown,
            },
            sql::Expr::UnaryOp {
                op: sql::UnaryOperator::Not,
                expr,
            } => {
                let t = self.ty(expr)?;
                if !t.is_bool() {
                    return Err(TypeError::NotOfNonCondition {
                        expr: expr.to_string(),
                        ty: t.show(),
                    });
                }
                Ty::Family(TypeFamily::Bool)
            }
            sql::Expr::Like { expr, pattern, .. }
            | sql::Expr::ILike { expr, pattern, .. }
            | sql::Expr::SimilarTo { expr, pattern, .. } => {
                for side in [expr, pattern] {
                    let t = self.ty(side)?;
                    if !matches!(t, Ty::Unknown | Ty::Family(TypeFamily::Text)) {
                        return Err(TypeError::PatternNotText {
                            side: side.to_string(),
                            ty: t.show(),
                        });
                    }
                }
                Ty::Family(TypeFamily::Bool)
            }
            sql::Expr::In { expr, target, .. } => {
                if let sql::InTarget::List(list) = target {
                    for item in list {
                        self.compare(expr, item)?;
                    }
                }
                Ty::Family(TypeFamily::Bool)
            }
            sql::Expr::Between {
                expr, low, high, ..
            } => {
                self.compare(expr, low)?;
                self.compare(expr, high)?;
                Ty::Family(TypeFamily::Bool)
            }
            sql::Expr::IsNull(_)
            | sql::Expr::IsNotNull(_)
            | sql::Expr::IsTrue(_)
            | sql::Expr::IsFalse(_)
            | sql::Expr::IsNotTrue(_)
            | sql::Expr::IsNotFalse(_)
            | sql::Expr::IsDistinctFrom(..)
            | sql::Expr::IsNotDistinctFrom(..)
            | sql::Expr::AnyOp { .. }
            | sql::Expr::AllOp { .. } => Ty::Family(TypeFamily::Bool),
            _ => Ty::Unknown,
        })
    }

    fn compare(&self, left: &sql::Expr, right: &sql::Expr) -> Result<(), TypeError> {
        let (l, r) = (self.ty(left)?, self.ty(right)?);
        for (side, other) in [(&l, right), (&r, left)] {
            if let Ty::Enum(name, labels) = side
                && let Some(literal) = string_literal(other)
                && !labels.iter().any(|l| l == literal)
            {
                return Err(TypeError::NotALabel {
                    literal: literal.to_owned(),
                    name: name.to_string(),
                    labels: labels.join(", "),
                });
            }
        }
        if l.comparable(&r) {
            Ok(())
        } else {
            Err(TypeError::NotComparable {
                left: left.to_string(),
                left_ty: l.show(),
                right: right.to_string(),
                right_ty: r.show(),
            })
        }
    }
}

/// A string literal written in the policy (not a claim reference).
fn string_literal(e: &sql::Expr) -> Option<&str> {
    match e {
        sql::Expr::Value(v) => match &v.value {
            sql::Value::SingleQuotedString(s) if format!("'{s}'") != CLAIM_PROBE => Some(s),
            _ => None,
        },
        sql::Expr::Nested(inner) => string_literal(inner),
        _ => None,
    }
}
