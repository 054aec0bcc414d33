//! Whole-policy checks once every name is resolved: ambiguous rules (an
//! error) and the warnings — unused groups and labels, groups and clauses
//! that can never apply, `mask` clauses over columns without a mask.

use crate::schema::{ColId, RelId};
use std::collections::HashMap;

use clsf_lang::Span;
use clsf_lang::ast::{self, Item};

use super::Cx;
use crate::diagnostics as diag;
use crate::plan::{ClauseKind, Effect, Membership, Plan, Target};

impl Cx<'_> {
    pub(crate) fn lint(&mut self, items: &[&Item], plan: &Plan) {
        let clause_spans = clause_spans(items);
        if !self.partial {
            self.groups_lint(items, plan);
            self.labels_lint(items, plan);
        }
        let mut masked: Vec<(Span, &crate::masks::Mask, &Target)> = Vec::new();
        for rule in &plan.rules {
            for clause in &rule.clauses {
                let Some(&span) = clause_spans.get(clause.policy_id.as_str()) else {
                    continue;
                };
                let ClauseKind::Access {
                    effect,
                    target,
                    mask,
                    ..
                } = &clause.kind
                else {
                    continue;
                };
                if matches!(target, Target::Functions(_) | Target::All) {
                    continue;
                }
                let covered = covered_columns(plan, target);
                if covered.is_empty() && !self.partial {
                    self.diags.push(diag::never_matches(
                        span,
                        "this clause",
                        "no column of the schema has what it targets",
                    ));
                }
                if covered.is_empty() {
                    continue;
                }
                if *effect == Effect::Mask {
                    match mask {
                        Some(m) => masked.push((span, m, target)),
                        None => {
                            let without: Vec<&(RelId, ColId)> = covered
                                .iter()
                                .filter(|(ri, ci)| plan.classes[*ri][*ci].mask.is_none())
                                .collect();
                            if let Some(&&(ri, ci)) = without.first() {
                                let rel = plan.schema.relation(ri);
                                let example =
                                    format!("{}.{}", rel.qualified(), rel.columns[ci].name);
                                self.diags.push(diag::mask_clause_without_mask(
                                    span,
                                    &rule.group,
                                    without.len(),
                                    &example,
                                ));
                            }
                        }
                    }
                }
            }
        }
        // Two `mask … with` clauses that choose different masks for the same
        // column: no precedence says which mask wins.
        for (i, (span_a, mask_a, target_a)) in masked.iter().enumerate() {
            for (span_b, mask_b, target_b) in &masked[i + 1..] {
                if mask_a == mask_b {
                    continue;
                }
                let both = covered_columns(plan, target_a)
                    .into_iter()
                    .find(|&(ri, ci)| target_b.covers_column(plan, ri, ci));
                if let Some((ri, ci)) = both {
                    let rel = plan.schema.relation(ri);
                    let column = format!("{}.{}", rel.qualified(), rel.columns[ci].name);
                    let what = format!(
                        "one masks it with `{}`, the other with `{}`",
                        mask_a.display(),
                        mask_b.display()
                    );
                    self.diags
                        .push(diag::ambiguous_rules(*span_b, *span_a, &column, &what));
                }
            }
        }
    }

    fn groups_lint(&mut self, items: &[&Item], plan: &Plan) {
        for item in items {
            let Item::Group(g) = item else { continue };
            if !self.used_groups.contains(&g.name.text) && !self.library.contains(&g.name.span.file)
            {
                self.diags
                    .push(diag::unused_group(g.name.span, &g.name.text));
            }
            let empty = plan
                .groups
                .iter()
                .find(|x| x.name == g.name.text)
                .is_some_and(|x| x.membership == Membership::Conditions(Vec::new()));
            if empty && matches!(g.body, ast::GroupBody::Conditions(_)) {
                self.diags.push(diag::never_matches(
                    g.name.span,
                    &format!("group `{}`", g.name.text),
                    "it has no conditions, so nobody is a member",
                ));
            }
        }
    }

    fn labels_lint(&mut self, items: &[&Item], plan: &Plan) {
        let Some(decl) = items.iter().find_map(|i| match i {
            Item::Labels(l) => Some(l),
            _ => None,
        }) else {
            return;
        };
        if self.library.contains(&decl.span.file) {
            return;
        }
        let mut has_columns = vec![false; plan.labels.len()];
        for rel in &plan.classes {
            for class in rel {
                has_columns[class.level] = true;
            }
        }
        for (level, name) in decl.labels.iter().enumerate() {
            if level < has_columns.len()
                && !has_columns[level]
                && !self.used_levels.contains(&level)
                && level != plan.unclassified_level
            {
                self.diags.push(diag::unused_label(name.span, &name.text));
            }
        }
    }
}

/// Source spans of the clauses, by Cedar policy id (`RULE.INDEX`).
fn clause_spans(items: &[&Item]) -> HashMap<String, Span> {
    let mut out = HashMap::new();
    for item in items {
        let Item::Rule(r) = item else { continue };
        for (i, c) in r.clauses.iter().enumerate() {
            out.entry(format!("{}.{}", r.name.text, i))
                .or_insert(c.span);
        }
    }
    out
}

/// Every (relation, column) a target covers.
pub(crate) fn covered_columns(plan: &Plan, target: &Target) -> Vec<(RelId, ColId)> {
    let mut out = Vec::new();
    for (ri, rel) in plan.schema.relations_with_ids() {
        if !plan.is_decided(ri) {
            continue;
        }
        for ci in rel.column_ids() {
            if target.covers_column(plan, ri, ci) {
                out.push((ri, ci));
            }
        }
    }
    out
}
