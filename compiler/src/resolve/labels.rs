//! Labels, categories and the unclassified default.

use std::collections::HashMap;

use clsf_lang::Span;
use clsf_lang::ast::{self, Item};

use super::Cx;
use crate::diagnostics as diag;
use crate::plan::Categories;

/// Words rule clauses read as keywords; a label or category with such a name
/// could not be written in a clause target.
const RESERVED: &[&str] = &[
    "read",
    "write",
    "ddl",
    "export",
    "admin",
    "table",
    "column",
    "function",
    "by",
    "with",
    "override",
    "all",
    "allow",
    "mask",
    "deny",
    "require",
    "filter",
    "limit",
    "join",
    "group",
    "order",
    "aggregate",
];

/// At most this many categories (one bit each in [`Categories`]).
pub const MAX_CATEGORIES: usize = 64;

impl Cx<'_> {
    /// Resolves the single `labels` declaration. False when there is none.
    pub(crate) fn labels(&mut self, items: &[&Item]) -> bool {
        let decls: Vec<&ast::LabelsDecl> = declarations!(items, Labels);
        let Some(first) = decls.first() else {
            if self.is_broken("labels", "") || self.broken.iter().any(|(k, _)| k == "labels") {
                return false;
            }
            let span = self
                .sources
                .iter()
                .next()
                .map(|(id, _)| Span::new(id, 0, 0))
                .unwrap_or_default();
            self.diags.push(diag::missing_labels(span));
            return false;
        };
        for extra in &decls[1..] {
            self.diags.push(diag::duplicate(
                extra.span,
                "declaration",
                "labels",
                first.span,
            ));
        }
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for l in &first.labels {
            if RESERVED.contains(&l.text.as_str()) {
                self.diags.push(diag::reserved_name(l.span, &l.text));
            }
            if let Some(prev) = seen.insert(&l.text, l.span) {
                self.diags
                    .push(diag::duplicate(l.span, "label", &l.text, prev));
            }
            self.labels.push(l.text.clone());
        }
        true
    }

    /// Collects every `categories` declaration (several files may add some).
    pub(crate) fn categories(&mut self, items: &[&Item]) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        for item in items {
            let Item::Categories(c) = item else { continue };
            for name in &c.categories {
                if RESERVED.contains(&name.text.as_str()) {
                    self.diags.push(diag::reserved_name(name.span, &name.text));
                }
                if self.labels.contains(&name.text) {
                    let d = diag::duplicate(name.span, "label or category", &name.text, name.span);
                    self.diags.push(d);
                    continue;
                }
                if !self.first_named(&mut seen, name, "category") {
                    continue;
                }
                if self.categories.len() == MAX_CATEGORIES {
                    self.diags
                        .push(diag::too_many_categories(name.span, MAX_CATEGORIES));
                    continue;
                }
                self.categories.push(name.text.clone());
            }
        }
    }

    /// The level of a label name, with a diagnostic when it is unknown.
    pub(crate) fn level(&mut self, name: &ast::Name) -> Option<usize> {
        let level = self.labels.iter().position(|l| *l == name.text);
        match level {
            Some(l) => {
                self.used_levels.insert(l);
            }
            None => {
                let mut d = diag::unknown_label(name.span, &name.text, &self.labels);
                if let Some(s) = super::closest(&name.text, self.labels.iter().map(String::as_str))
                {
                    d = d.with_help(format!(
                        "did you mean `{s}`? declared labels: {}",
                        self.labels.join(", ")
                    ));
                }
                self.diags.push(d);
            }
        }
        level
    }

    /// A category set, with a diagnostic for each unknown name.
    pub(crate) fn category_set(&mut self, names: &[ast::Name]) -> Option<Categories> {
        let mut set = 0u64;
        let mut ok = true;
        for n in names {
            match self.categories.iter().position(|c| *c == n.text) {
                Some(i) => set |= 1 << i,
                None => {
                    ok = false;
                    self.diags
                        .push(diag::unknown_category(n.span, &n.text, &self.categories));
                }
            }
        }
        ok.then_some(Categories(set))
    }

    /// `level [categories]`.
    pub(crate) fn label_ref(&mut self, l: &ast::LabelRef) -> Option<(usize, Categories)> {
        let level = self.level(&l.level);
        let cats = self.category_set(&l.categories);
        Some((level?, cats?))
    }

    /// The `unclassified` label; the highest level when not declared, so a
    /// column nobody classified is treated as the most protected.
    pub(crate) fn unclassified(&mut self, items: &[&Item]) -> (usize, Categories) {
        let mut result = (self.labels.len() - 1, Categories::default());
        let mut first: Option<Span> = None;
        for item in items {
            let Item::Unclassified(u) = item else {
                continue;
            };
            if let Some(prev) = first {
                self.diags
                    .push(diag::duplicate(u.span, "declaration", "unclassified", prev));
                continue;
            }
            first = Some(u.span);
            self.unclassified_report = (
                u.report.unwrap_or(clsf_lang::ast::Report::Warning),
                Some(u.span),
            );
            if let Some(r) = self.label_ref(&u.label) {
                result = r;
            }
        }
        result
    }
}
