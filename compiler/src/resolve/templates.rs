//! SQL templates written in policies: user-defined masks and row filters.
//! Both are parsed with the same SQL parser the statement engine uses and
//! must be a single expression with no subquery, reading only what they
//! are allowed to read, and calling only functions known to be pure.

use crate::schema::RelId;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use clsf_lang::ast::{self, Item};
use sqlparser::ast as sql;
use sqlparser::ast::Visit;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::Cx;
use super::classify::family_of_declared;
use crate::diagnostics as diag;
use crate::masks::CustomMask;
use crate::resolve::{claim_placeholders, substitute};

/// The identifier a mask's `{param}` stands for while its template is checked.
const VALUE: &str = "__clsf_value";

/// Why a mask's template or a row filter is not an expression the
/// compiler accepts (the text of its diagnostic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// The tokenizer refused it.
    #[error("not SQL: {0}")]
    NotSql(String),
    /// The parser found no expression.
    #[error("not an expression: {0}")]
    NotExpression(String),
    /// Text after the first expression.
    #[error("more than one expression")]
    SeveralExpressions,
    /// A subquery, which could read any relation.
    #[error("subqueries are not allowed")]
    Subquery,
    /// `t.c`: only the column's own name means something here.
    #[error("qualified name `{0}` is not allowed; write the column name alone")]
    Qualified(String),
    /// A function that is not a pure or metadata built-in.
    #[error("function `{0}` is not known to be pure")]
    NotPure(String),
    /// A name the caller does not allow, with the caller's explanation.
    #[error("{0}")]
    UnknownName(String),
}

/// Parses one SQL expression and checks it: no subquery, identifiers only
/// from `allowed`, functions only pure built-ins.
pub fn check_expression(
    text: &str,
    allowed: &dyn Fn(&str) -> bool,
    unknown: &dyn Fn(&str) -> String,
) -> Result<sql::Expr, ExpressionError> {
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| ExpressionError::NotSql(e.to_string()))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| ExpressionError::NotExpression(e.to_string()))?;
    if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
        return Err(ExpressionError::SeveralExpressions);
    }
    let mut problem = None;
    let _ = expr.visit(&mut ExprCheck {
        allowed,
        unknown,
        problem: &mut problem,
    });
    match problem {
        Some(p) => Err(p),
        None => Ok(expr),
    }
}

struct ExprCheck<'a> {
    allowed: &'a dyn Fn(&str) -> bool,
    unknown: &'a dyn Fn(&str) -> String,
    problem: &'a mut Option<ExpressionError>,
}

impl sqlparser::ast::Visitor for ExprCheck<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &sql::Query) -> ControlFlow<()> {
        *self.problem = Some(ExpressionError::Subquery);
        ControlFlow::Break(())
    }

    fn pre_visit_expr(&mut self, expr: &sql::Expr) -> ControlFlow<()> {
        let name = match expr {
            sql::Expr::Identifier(id) => Some(crate::engine::analyze::fold(id)),
            sql::Expr::CompoundIdentifier(parts) => {
                *self.problem = Some(ExpressionError::Qualified(
                    parts
                        .iter()
                        .map(|p| p.value.as_str())
                        .collect::<Vec<_>>()
                        .join("."),
                ));
                return ControlFlow::Break(());
            }
            sql::Expr::Function(f) => {
                let fname = f.name.to_string().to_ascii_lowercase();
                let bare = fname.rsplit('.').next().unwrap_or(&fname).trim_matches('"');
                if !crate::engine::functions::class(bare, None)
                    .is_some_and(|c| c.callable_by_default())
                {
                    *self.problem = Some(ExpressionError::NotPure(fname));
                    return ControlFlow::Break(());
                }
                None
            }
            _ => None,
        };
        if let Some(name) = name
            && !(self.allowed)(&name)
        {
            *self.problem = Some(ExpressionError::UnknownName((self.unknown)(&name)));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

impl Cx<'_> {
    /// Checks user-defined masks and makes them available by name.
    pub(crate) fn user_masks(&mut self, items: &[&Item]) {
        let mut seen: HashMap<String, clsf_lang::Span> = HashMap::new();
        for item in items {
            let Item::Mask(m) = item else { continue };
            if let Some(prev) = seen.insert(m.name.text.clone(), m.name.span) {
                self.diags
                    .push(diag::duplicate(m.name.span, "mask", &m.name.text, prev));
                continue;
            }
            if crate::masks::spec(&m.name.text).is_some() {
                self.diags.push(diag::duplicate(
                    m.name.span,
                    "mask (built-in)",
                    &m.name.text,
                    m.name.span,
                ));
                continue;
            }
            if let Some(custom) = self.user_mask(m) {
                self.user_masks
                    .insert(m.name.text.clone(), Arc::new(custom));
            }
        }
    }

    fn user_mask(&mut self, m: &ast::MaskDecl) -> Option<CustomMask> {
        let mut accepts = Vec::new();
        let mut ok = true;
        for t in &m.inputs {
            match family_of_declared(&t.text) {
                Some(f) => accepts.push(f),
                None => {
                    ok = false;
                    self.diags.push(diag::unknown_type(t.span, &t.text));
                }
            }
        }
        let output = match family_of_declared(&m.output.text) {
            Some(f) => f,
            None => {
                self.diags
                    .push(diag::unknown_type(m.output.span, &m.output.text));
                return None;
            }
        };
        let placeholder = format!("{{{}}}", m.param.text);
        let template = &m.template.value;
        if !template.contains(&placeholder) {
            self.diags.push(diag::bad_mask_template(
                m.template.span,
                &format!("the template never uses `{placeholder}`"),
            ));
            return None;
        }
        let probe = template.replace(&placeholder, VALUE);
        let unknown =
            |name: &str| format!("`{name}` is not `{placeholder}`; a mask reads only its input");
        if let Err(why) = check_expression(&probe, &|name| name == VALUE, &unknown) {
            self.diags
                .push(diag::bad_mask_template(m.template.span, &why.to_string()));
            return None;
        }
        ok.then(|| CustomMask {
            name: m.name.text.clone(),
            param: m.param.text.clone(),
            template: template.clone(),
            accepts,
            output,
        })
    }

    /// Checks a row-filter template against its relation's columns.
    pub(crate) fn check_filter(&mut self, predicate: &ast::StringLit, ri: RelId) -> bool {
        if let Err(why) = claim_placeholders(&predicate.value) {
            self.diags
                .push(diag::bad_filter(predicate.span, &why.to_string()));
            return false;
        }
        // Claim values are bound as string literals at run time.
        let probe = substitute(&predicate.value, |_| {
            super::filter_types::CLAIM_PROBE.to_owned()
        });
        let relation = self.schema.relation(ri);
        let allowed = |name: &str| relation.column_index(name).is_some();
        let unknown =
            |name: &str| format!("`{name}` is not a column of `{}`", relation.qualified());
        let checked = check_expression(&probe, &allowed, &unknown)
            .map_err(|e| e.to_string())
            .and_then(|expr| {
                super::filter_types::check(&expr, relation, self.schema).map_err(|e| e.to_string())
            });
        match checked {
            Ok(()) => true,
            Err(why) => {
                self.diags
                    .push(diag::bad_filter(predicate.span, &why.to_string()));
                false
            }
        }
    }
}
