//! Rules: each clause resolved to an effect, actions and a target.

use std::collections::HashMap;

use clsf_lang::Span;
use clsf_lang::ast::{self, Item};

use super::Cx;
use crate::diagnostics as diag;
use crate::masks::Mask;
use crate::plan::{
    Action, Approval, ApprovalScope, Clause, ClauseKind, Effect, Plan, Rule, Target,
};

/// Default time a held statement waits for approval: 15 minutes.
pub const DEFAULT_APPROVAL_TTL: u64 = 15 * 60;

impl Cx<'_> {
    pub(crate) fn rules(&mut self, items: &[&Item], plan: &Plan) -> Vec<Rule> {
        let mut rules = Vec::new();
        let mut seen: HashMap<String, Span> = HashMap::new();
        for item in items {
            let Item::Rule(r) = item else { continue };
            if !self.first_named(&mut seen, &r.name, "rule") {
                continue;
            }
            self.group_ref(&r.group, plan);
            let mut clauses = Vec::new();
            for (i, c) in r.clauses.iter().enumerate() {
                if let Some(kind) = self.clause(c, plan) {
                    clauses.push(Clause {
                        kind,
                        policy_id: format!("{}.{}", r.name.text, i),
                        location: self.sources.location(c.span).to_string(),
                        span: c.span,
                        text: self.text_of(c.span),
                    });
                }
            }
            rules.push(Rule {
                name: r.name.text.clone(),
                group: r.group.text.clone(),
                observe: r.observe,
                clauses,
                location: self.sources.location(r.name.span).to_string(),
            });
        }
        rules
    }

    fn group_ref(&mut self, name: &ast::Name, plan: &Plan) {
        self.used_groups.insert(name.text.clone());
        if plan.group_index(&name.text).is_none() && !self.is_broken("group", &name.text) {
            self.unknown_group(name, plan.groups.iter().map(|g| g.name.as_str()));
        }
    }

    fn target(&mut self, t: Option<&ast::Target>) -> Option<Target> {
        let Some(t) = t else {
            return Some(Target::All);
        };
        Some(match &t.kind {
            ast::TargetKind::Label { cmp, label } => {
                let level = self.level(label)?;
                let top = self.labels.len() - 1;
                let (min, max) = match cmp {
                    ast::LabelCmp::Eq => (level, level),
                    ast::LabelCmp::Le => (0, level),
                    ast::LabelCmp::Lt if level == 0 => {
                        self.diags.push(diag::never_matches(
                            t.span,
                            "this clause",
                            "no label is below the lowest one",
                        ));
                        return None;
                    }
                    ast::LabelCmp::Lt => (0, level - 1),
                    ast::LabelCmp::Ge => (level, top),
                    ast::LabelCmp::Gt if level >= top => {
                        self.diags.push(diag::never_matches(
                            t.span,
                            "this clause",
                            "no label is above the highest one",
                        ));
                        return None;
                    }
                    ast::LabelCmp::Gt => (level + 1, top),
                };
                Target::Levels(min, max)
            }
            ast::TargetKind::Categories(names) => Target::Categories(self.category_set(names)?),
            ast::TargetKind::Table(q) => Target::Relation(self.resolve_table(q)?),
            ast::TargetKind::Column(q) => {
                let (ri, ci) = self.resolve_column(q)?;
                Target::Column(ri, ci)
            }
            ast::TargetKind::Functions(names) => Target::Functions(
                names
                    .iter()
                    .map(|q| {
                        q.parts
                            .iter()
                            .map(|p| p.text.as_str())
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .collect(),
            ),
        })
    }

    fn clause(&mut self, c: &ast::RuleClause, plan: &Plan) -> Option<ClauseKind> {
        match &c.kind {
            ast::ClauseKind::Access {
                effect,
                actions,
                target,
                mask,
                reason,
            } => {
                let resolved = self.target(target.as_ref());
                let actions = self.actions(actions, target.as_ref());
                let effect = match effect {
                    ast::Effect::Allow => Effect::Allow,
                    ast::Effect::Mask => Effect::Mask,
                    ast::Effect::Deny => Effect::Deny,
                };
                if let Some(r) = reason
                    && effect != Effect::Allow
                {
                    self.diags.push(diag::not_applicable(
                        r.span,
                        "`override because`",
                        "only an `allow` clause can override a more protective rule",
                    ));
                }
                let is_functions = matches!(resolved, Some(Target::Functions(_)));
                if is_functions && effect == Effect::Mask {
                    self.diags.push(diag::not_applicable(
                        c.span,
                        "`mask`",
                        "functions are allowed or denied; masks apply to columns",
                    ));
                }
                if effect == Effect::Mask
                    && actions
                        .iter()
                        .any(|a| *a != Action::Read && *a != Action::Export)
                {
                    self.diags.push(diag::not_applicable(
                        c.span,
                        "`mask` with actions other than read and export",
                        "masks change what is read; write a separate `allow` or `deny` for other actions",
                    ));
                }
                let mask = match (mask, effect == Effect::Mask) {
                    (None, _) => None,
                    (Some(m), false) => {
                        self.diags.push(diag::not_applicable(
                            m.span,
                            "`with MASK`",
                            "only a `mask` clause chooses a mask",
                        ));
                        None
                    }
                    (Some(m), true) => self.clause_mask(m, resolved.as_ref(), plan),
                };
                Some(ClauseKind::Access {
                    effect,
                    actions,
                    target: resolved?,
                    mask,
                    override_reason: reason.as_ref().map(|r| r.value.clone()),
                })
            }
            ast::ClauseKind::Approval {
                actions,
                target,
                approvers,
                ttl,
                scope,
                quorum,
            } => {
                let resolved = self.target(target.as_ref());
                let actions = self.actions(actions, target.as_ref());
                self.group_ref(approvers, plan);
                let positive = |v: u64, span: Span, what: &str, cx: &mut Self| {
                    if v == 0 {
                        cx.diags.push(diag::bad_value(span, what));
                    }
                };
                if let Some(t) = ttl {
                    positive(t.seconds, t.span, "time-to-live", self);
                }
                if let Some(q) = quorum {
                    positive(q.value, q.span, "quorum", self);
                }
                let scope = match scope {
                    None | Some(ast::ApprovalScope::Statement) => ApprovalScope::Statement,
                    Some(ast::ApprovalScope::Session(d)) => {
                        if let Some(d) = d {
                            positive(d.seconds, d.span, "session duration", self);
                        }
                        ApprovalScope::Session(d.map_or(3600, |d| d.seconds))
                    }
                    Some(ast::ApprovalScope::Executions(n)) => {
                        positive(n.value, n.span, "number of executions", self);
                        ApprovalScope::Executions(n.value)
                    }
                };
                if actions.iter().any(|a| a.usage().is_some()) {
                    self.diags.push(diag::not_applicable(
                        c.span,
                        "approval of a usage action",
                        "usage actions are allowed or denied; approvals hold reads and writes",
                    ));
                }
                if matches!(resolved, Some(Target::Functions(_))) {
                    self.diags.push(diag::not_applicable(
                        c.span,
                        "approval of a function call",
                        "approvals hold statements that touch columns or need an action",
                    ));
                }
                Some(ClauseKind::Access {
                    effect: Effect::Approval(Approval {
                        approvers: approvers.text.clone(),
                        ttl_seconds: ttl.map_or(DEFAULT_APPROVAL_TTL, |t| t.seconds),
                        scope,
                        quorum: quorum.map_or(1, |q| q.value),
                    }),
                    actions,
                    target: resolved?,
                    mask: None,
                    override_reason: None,
                })
            }
            ast::ClauseKind::Filter { table, predicate } => {
                let ri = self.resolve_table(table)?;
                self.check_filter(predicate, ri)
                    .then(|| ClauseKind::Filter {
                        relation: ri,
                        predicate: predicate.value.clone(),
                    })
            }
            ast::ClauseKind::Limit { rows, target } => {
                if rows.value == 0 {
                    self.diags.push(diag::bad_value(rows.span, "row limit"));
                }
                let resolved = self.target(target.as_ref())?;
                if matches!(resolved, Target::Functions(_)) {
                    self.diags.push(diag::not_applicable(
                        c.span,
                        "a row limit on functions",
                        "limit rows of tables, labels or categories",
                    ));
                }
                Some(ClauseKind::Limit {
                    rows: rows.value,
                    target: resolved,
                })
            }
        }
    }

    /// Actions of a clause (`read` when none are written), checked against
    /// its target: `ddl` and `admin` apply to the database, not to columns;
    /// function targets take no actions.
    fn actions(&mut self, actions: &[ast::ActionRef], target: Option<&ast::Target>) -> Vec<Action> {
        if actions.is_empty() {
            return vec![Action::Read];
        }
        let column_target =
            target.is_some_and(|t| !matches!(t.kind, ast::TargetKind::Functions(_)));
        let function_target =
            target.is_some_and(|t| matches!(t.kind, ast::TargetKind::Functions(_)));
        let mut out = Vec::new();
        for a in actions {
            if function_target {
                self.diags.push(diag::not_applicable(
                    a.span,
                    &format!("action `{}`", a.action.as_str()),
                    "a function clause allows or denies calling the functions; it takes no action",
                ));
                continue;
            }
            if column_target && matches!(a.action, Action::Ddl | Action::Admin) {
                self.diags.push(diag::not_applicable(
                    a.span,
                    &format!("action `{}` on columns", a.action.as_str()),
                    "`ddl` and `admin` apply to the whole database: write them without a target",
                ));
                continue;
            }
            if !out.contains(&a.action) {
                out.push(a.action);
            }
        }
        // A usage action becomes one Cedar request with the usage in its
        // context; read, write and the others are requests of their own.
        if out.iter().any(|a| a.usage().is_some()) && out.iter().any(|a| a.usage().is_none()) {
            let (first, last) = (actions[0].span, actions[actions.len() - 1].span);
            let span = Span::new(first.file, first.start, last.end);
            self.diags.push(diag::not_applicable(
                span,
                "usage actions (`join`, `filter`, `group`, `order`, `aggregate`) beside other actions",
                "write usage actions in a clause of their own",
            ));
            out.retain(|a| a.usage().is_none());
        }
        if out.is_empty() {
            out.push(Action::Read);
        }
        out
    }

    /// The mask of a `mask … with M` clause, checked against the columns it
    /// covers: an error for a single column, a warning naming the misfits
    /// otherwise (they keep their classification's mask).
    fn clause_mask(
        &mut self,
        m: &ast::MaskExpr,
        target: Option<&Target>,
        plan: &Plan,
    ) -> Option<Mask> {
        let target = target?;
        let mut mask = None;
        let mut misfit: Option<(usize, String, String)> = None;
        for (ri, rel) in plan.schema.relations_with_ids() {
            for (ci, column) in rel.columns_with_ids() {
                if !target.covers_column(plan, ri, ci) {
                    continue;
                }
                let strict = matches!(target, Target::Column(..));
                match self.mask_for(m, column, &column.name, strict) {
                    Ok(built) => {
                        // The mask value is the same for every column it fits
                        // (it is rendered per column at run time).
                        mask.get_or_insert(built);
                    }
                    Err(super::classify::MaskProblem::Fatal) => return None,
                    Err(super::classify::MaskProblem::Type) => {
                        let e = misfit.get_or_insert_with(|| {
                            (
                                0,
                                format!("{}.{}", rel.qualified(), column.name),
                                column.type_name.clone(),
                            )
                        });
                        e.0 += 1;
                    }
                }
            }
        }
        if let Some((n, example, type_name)) = misfit
            && !matches!(target, Target::Column(..))
        {
            self.diags.push(diag::mask_partly_fits(
                m.span,
                &clsf_lang::format::mask(m),
                n,
                &example,
                &type_name,
            ));
        }
        mask
    }
}
