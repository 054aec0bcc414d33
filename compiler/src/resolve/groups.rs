//! Groups: conditions on verified identities, and groups composed of others.

use std::collections::HashMap;

use clsf_lang::Span;
use clsf_lang::ast::{self, Item};

use super::Cx;
use crate::diagnostics as diag;
use crate::plan::{ClaimMatch, Group, GroupCondition, GroupExpr, Membership, StrMatch};

impl Cx<'_> {
    pub(crate) fn groups(&mut self, items: &[&Item]) -> Vec<Group> {
        let decls: Vec<&ast::GroupDecl> = declarations!(items, Group);
        // Names first, so that composed groups may refer forward.
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut spans: Vec<Span> = Vec::new();
        let mut kept: Vec<&ast::GroupDecl> = Vec::new();
        for g in decls {
            if let Some(&prev) = index.get(&g.name.text) {
                self.diags.push(diag::duplicate(
                    g.name.span,
                    "group",
                    &g.name.text,
                    spans[prev],
                ));
                continue;
            }
            index.insert(g.name.text.clone(), kept.len());
            spans.push(g.name.span);
            kept.push(g);
        }
        let mut groups = Vec::with_capacity(kept.len());
        for g in &kept {
            let membership = match &g.body {
                ast::GroupBody::Conditions(conds) => {
                    Membership::Conditions(conds.iter().map(condition).collect())
                }
                ast::GroupBody::Expr(e) => match self.group_expr(e, &index) {
                    Some(expr) => Membership::Expr(expr),
                    // Unknown members: keep the group empty so that rules
                    // naming it still resolve; the error stops the build.
                    None => Membership::Conditions(Vec::new()),
                },
            };
            groups.push(Group {
                name: g.name.text.clone(),
                membership,
                span: g.name.span,
            });
        }
        self.group_cycles(&groups, &spans);
        groups
    }

    fn group_expr(
        &mut self,
        e: &ast::GroupExpr,
        index: &HashMap<String, usize>,
    ) -> Option<GroupExpr> {
        Some(match e {
            ast::GroupExpr::Ref(name) => match index.get(&name.text) {
                Some(&i) => {
                    self.used_groups.insert(name.text.clone());
                    GroupExpr::Group(i)
                }
                None => {
                    if !self.is_broken("group", &name.text) {
                        self.unknown_group(name, index.keys().map(String::as_str));
                    }
                    return None;
                }
            },
            ast::GroupExpr::Not(inner) => GroupExpr::Not(Box::new(self.group_expr(inner, index)?)),
            ast::GroupExpr::And(terms) => GroupExpr::And(
                terms
                    .iter()
                    .map(|t| self.group_expr(t, index))
                    .collect::<Option<Vec<_>>>()?,
            ),
            ast::GroupExpr::Or(terms) => GroupExpr::Or(
                terms
                    .iter()
                    .map(|t| self.group_expr(t, index))
                    .collect::<Option<Vec<_>>>()?,
            ),
        })
    }

    pub(crate) fn unknown_group<'n>(
        &mut self,
        name: &ast::Name,
        known: impl Iterator<Item = &'n str>,
    ) {
        let mut d = diag::unknown_group(name.span, &name.text);
        if let Some(s) = super::closest(&name.text, known) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.diags.push(d);
    }

    /// Reports each group that refers to itself through composition.
    fn group_cycles(&mut self, groups: &[Group], spans: &[Span]) {
        fn refs(e: &GroupExpr, out: &mut Vec<usize>) {
            match e {
                GroupExpr::Group(i) => out.push(*i),
                GroupExpr::Not(inner) => refs(inner, out),
                GroupExpr::And(t) | GroupExpr::Or(t) => t.iter().for_each(|x| refs(x, out)),
            }
        }
        let edges: Vec<Vec<usize>> = groups
            .iter()
            .map(|g| {
                let mut out = Vec::new();
                if let Membership::Expr(e) = &g.membership {
                    refs(e, &mut out);
                }
                out
            })
            .collect();
        for start in 0..groups.len() {
            // Depth-first search for a path back to `start`.
            let mut stack = vec![(start, vec![start])];
            let mut seen = vec![false; groups.len()];
            while let Some((node, path)) = stack.pop() {
                for &next in &edges[node] {
                    if next == start {
                        // Report each cycle once, at its smallest member.
                        if path.iter().all(|&p| p >= start) {
                            let mut names: Vec<&str> =
                                path.iter().map(|&p| groups[p].name.as_str()).collect();
                            names.push(&groups[start].name);
                            self.diags
                                .push(diag::group_cycle(spans[start], &names.join(" → ")));
                        }
                    } else if !seen[next] {
                        seen[next] = true;
                        let mut p = path.clone();
                        p.push(next);
                        stack.push((next, p));
                    }
                }
            }
        }
    }
}

fn str_match(t: &ast::StrTest) -> StrMatch {
    match t {
        ast::StrTest::Equals(s) => StrMatch::Equals(s.value.clone()),
        ast::StrTest::NotEquals(s) => StrMatch::NotEquals(s.value.clone()),
        ast::StrTest::Like(s) => StrMatch::Like(s.value.clone()),
        ast::StrTest::In(list) => StrMatch::In(list.iter().map(|s| s.value.clone()).collect()),
    }
}

fn condition(c: &ast::Condition) -> GroupCondition {
    match &c.kind {
        ast::ConditionKind::Issuer(t) => GroupCondition::Issuer(str_match(t)),
        ast::ConditionKind::Audience(s) => GroupCondition::Audience(s.value.clone()),
        ast::ConditionKind::Subject(t) => GroupCondition::Subject(str_match(t)),
        ast::ConditionKind::Account(s) => GroupCondition::Account(s.value.clone()),
        ast::ConditionKind::Certificate { field, test } => match field {
            ast::CertField::Subject => GroupCondition::CertSubject(str_match(test)),
            ast::CertField::San => GroupCondition::CertSan(str_match(test)),
        },
        ast::ConditionKind::Claim { path, test } => GroupCondition::Claim {
            path: path.iter().map(|s| s.value.clone()).collect(),
            test: match test {
                ast::ClaimTest::Contains(s) => ClaimMatch::Contains(s.value.clone()),
                ast::ClaimTest::Str(t) => ClaimMatch::Str(str_match(t)),
            },
        },
    }
}
