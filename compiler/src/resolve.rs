//! Name resolution and type checking: a parsed policy plus a schema become a
//! [`Plan`], with a diagnostic for every name that does not resolve and every
//! mask that does not fit its column.

use std::collections::HashMap;

use clsf_lang::ast::{self, Item};
use clsf_lang::{Diagnostic, SourceSet, Span};

use crate::diagnostics as diag;
use crate::masks::{self, Mask};
use crate::plan::{Clause, ColumnClass, Effect, Group, GroupCondition, Origin, Plan, Rule};
use crate::policy::Parsed;
use crate::schema::Schema;

/// The schema searched for unqualified table names.
pub const DEFAULT_SCHEMA: &str = "public";

/// Compiles a parsed policy against a schema. Returns the plan when there
/// are no errors (warnings allowed), and every diagnostic found.
pub fn compile(parsed: &Parsed, schema: &Schema) -> (Option<Plan>, Vec<Diagnostic>) {
    let mut cx = Cx {
        sources: &parsed.sources,
        schema,
        diags: parsed.diagnostics.clone(),
    };
    // After a syntax error, the broken file's declarations are missing and
    // resolution would only report their absence: stop at syntax errors.
    if cx.diags.iter().any(Diagnostic::is_error) {
        return (None, cx.diags);
    }
    let items: Vec<&Item> = parsed.files.iter().flat_map(|f| f.items.iter()).collect();
    let plan = cx.compile(&items);
    let has_errors = cx.diags.iter().any(Diagnostic::is_error);
    (if has_errors { None } else { plan }, cx.diags)
}

struct Cx<'a> {
    sources: &'a SourceSet,
    schema: &'a Schema,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn compile(&mut self, items: &[&Item]) -> Option<Plan> {
        let labels = self.labels(items)?;
        let label_names: Vec<String> = labels.iter().map(|n| n.text.clone()).collect();
        let level_of = |name: &ast::Name, cx: &mut Cx<'_>| -> Option<usize> {
            let level = label_names.iter().position(|l| *l == name.text);
            if level.is_none() {
                cx.diags
                    .push(diag::unknown_label(name.span, &name.text, &label_names));
            }
            level
        };

        let mut unclassified_level = label_names.len() - 1;
        let mut seen_unclassified: Option<Span> = None;
        for item in items {
            if let Item::Unclassified(u) = item {
                if let Some(first) = seen_unclassified {
                    self.diags.push(diag::duplicate(
                        u.span,
                        "declaration",
                        "unclassified",
                        first,
                    ));
                    continue;
                }
                seen_unclassified = Some(u.span);
                if let Some(level) = level_of(&u.label, self) {
                    unclassified_level = level;
                }
            }
        }

        let groups = self.groups(items);
        let classes = self.classes(items, unclassified_level, &level_of);
        let rules = self.rules(items, &groups, label_names.len(), &level_of);
        let plan = Plan {
            labels: label_names.clone(),
            unclassified_level,
            groups,
            rules,
            schema: self.schema.clone(),
            classes,
        };
        self.check_mask_clauses(&plan, items);
        Some(plan)
    }

    fn labels(&mut self, items: &[&Item]) -> Option<Vec<ast::Name>> {
        let decls: Vec<&ast::LabelsDecl> = items
            .iter()
            .filter_map(|i| match i {
                Item::Labels(l) => Some(l),
                _ => None,
            })
            .collect();
        let Some(first) = decls.first() else {
            let span = self
                .sources
                .iter()
                .next()
                .map(|(id, _)| Span::new(id, 0, 0))
                .unwrap_or_default();
            self.diags.push(diag::missing_labels(span));
            return None;
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
            if let Some(prev) = seen.insert(&l.text, l.span) {
                self.diags
                    .push(diag::duplicate(l.span, "label", &l.text, prev));
            }
        }
        Some(first.labels.clone())
    }

    fn groups(&mut self, items: &[&Item]) -> Vec<Group> {
        let mut groups = Vec::new();
        let mut seen: HashMap<String, Span> = HashMap::new();
        for item in items {
            let Item::Group(g) = item else { continue };
            if let Some(prev) = seen.insert(g.name.text.clone(), g.name.span) {
                self.diags
                    .push(diag::duplicate(g.name.span, "group", &g.name.text, prev));
                continue;
            }
            let conditions = g
                .conditions
                .iter()
                .map(|c| match c {
                    ast::Condition::Issuer(s) => GroupCondition::Issuer(s.value.clone()),
                    ast::Condition::Audience(s) => GroupCondition::Audience(s.value.clone()),
                    ast::Condition::Claim(c) => match c.op {
                        ast::ClaimOp::Equals => GroupCondition::ClaimEquals(
                            c.claim.value.clone(),
                            c.value.value.clone(),
                        ),
                        ast::ClaimOp::Contains => GroupCondition::ClaimContains(
                            c.claim.value.clone(),
                            c.value.value.clone(),
                        ),
                    },
                })
                .collect();
            groups.push(Group {
                name: g.name.text.clone(),
                conditions,
            });
        }
        groups
    }

    fn classes(
        &mut self,
        items: &[&Item],
        unclassified_level: usize,
        level_of: &dyn Fn(&ast::Name, &mut Cx<'_>) -> Option<usize>,
    ) -> Vec<Vec<ColumnClass>> {
        let mut classes: Vec<Vec<ColumnClass>> = self
            .schema
            .relations
            .iter()
            .map(|r| {
                r.columns
                    .iter()
                    .map(|_| ColumnClass {
                        level: unclassified_level,
                        mask: None,
                        origin: Origin::Unclassified,
                    })
                    .collect()
            })
            .collect();
        let mut seen_tables: HashMap<usize, Span> = HashMap::new();
        for item in items {
            let Item::Table(t) = item else { continue };
            let Some(rel_index) = self.resolve_table(t) else {
                continue;
            };
            if let Some(prev) = seen_tables.insert(rel_index, t.name_span) {
                let name = self.schema.relation(rel_index).qualified();
                self.diags.push(diag::duplicate(
                    t.name_span,
                    "classification of table",
                    &name,
                    prev,
                ));
                continue;
            }
            let relation = self.schema.relation(rel_index).clone();
            if let Some(label) = &t.default_label
                && let Some(level) = level_of(label, self)
            {
                for class in &mut classes[rel_index] {
                    class.level = level;
                    class.origin = Origin::Table;
                }
            }
            let mut seen_columns: HashMap<String, Span> = HashMap::new();
            for col in &t.columns {
                let Some(ci) = relation.column_index(&col.name.text) else {
                    let names = relation.columns.iter().map(|c| c.name.as_str());
                    let suggestion = closest(&col.name.text, names);
                    self.diags.push(diag::unknown_column(
                        col.name.span,
                        &relation.qualified(),
                        &col.name.text,
                        suggestion.as_deref(),
                    ));
                    continue;
                };
                if let Some(prev) = seen_columns.insert(col.name.text.clone(), col.name.span) {
                    self.diags.push(diag::duplicate(
                        col.name.span,
                        "classification of column",
                        &col.name.text,
                        prev,
                    ));
                    continue;
                }
                let level = level_of(&col.label, self);
                let mask = col
                    .mask
                    .as_ref()
                    .and_then(|m| self.check_mask(m, &relation.columns[ci]));
                if let Some(level) = level {
                    classes[rel_index][ci] = ColumnClass {
                        level,
                        mask,
                        origin: Origin::Explicit,
                    };
                }
            }
        }
        classes
    }

    fn resolve_table(&mut self, t: &ast::TableDecl) -> Option<usize> {
        let parts: Vec<&str> = t.name.iter().map(|n| n.text.as_str()).collect();
        let (schema, name) = match parts.as_slice() {
            [name] => (DEFAULT_SCHEMA, *name),
            [schema, name] => (*schema, *name),
            // `database.schema.table`: the database is the one the proxy serves.
            [_, schema, name] => (*schema, *name),
            _ => {
                self.diags
                    .push(diag::bad_table_name(t.name_span, &parts.join(".")));
                return None;
            }
        };
        if let Some(i) = self.schema.find(schema, name) {
            return Some(i);
        }
        let qualified = format!("{schema}.{name}");
        let candidates: Vec<String> = self
            .schema
            .relations
            .iter()
            .map(|r| r.qualified())
            .collect();
        let suggestion = closest(&qualified, candidates.iter().map(String::as_str));
        self.diags.push(diag::unknown_table(
            t.name_span,
            &qualified,
            suggestion.as_deref(),
        ));
        None
    }

    fn check_mask(&mut self, m: &ast::MaskExpr, column: &crate::schema::Column) -> Option<Mask> {
        let Some(spec) = masks::spec(&m.name.text) else {
            let names: Vec<&str> = masks::CATALOGUE.iter().map(|s| s.name).collect();
            self.diags
                .push(diag::unknown_mask(m.name.span, &m.name.text, &names));
            return None;
        };
        if m.args.len() != spec.arity {
            self.diags.push(diag::mask_arity(
                m.span,
                spec.name,
                spec.arity,
                m.args.len(),
            ));
            return None;
        }
        let family = column.family();
        if !spec.accepts.is_empty() && !spec.accepts.contains(&family) {
            let accepts: Vec<&str> = spec.accepts.iter().map(|f| f.as_str()).collect();
            self.diags.push(diag::mask_type_mismatch(
                m.span,
                spec.name,
                &column.name,
                &column.type_name,
                &accepts,
            ));
            return None;
        }
        let args: Vec<u64> = m.args.iter().map(|(v, _)| *v).collect();
        Mask::from_parts(spec.name, &args)
    }

    fn rules(
        &mut self,
        items: &[&Item],
        groups: &[Group],
        label_count: usize,
        level_of: &dyn Fn(&ast::Name, &mut Cx<'_>) -> Option<usize>,
    ) -> Vec<Rule> {
        let mut rules = Vec::new();
        let mut seen: HashMap<String, Span> = HashMap::new();
        for item in items {
            let Item::Rule(r) = item else { continue };
            if let Some(prev) = seen.insert(r.name.text.clone(), r.name.span) {
                self.diags
                    .push(diag::duplicate(r.name.span, "rule", &r.name.text, prev));
                continue;
            }
            if !groups.iter().any(|g| g.name == r.group.text) {
                self.diags
                    .push(diag::unknown_group(r.group.span, &r.group.text));
            }
            let mut clauses = Vec::new();
            for (i, c) in r.clauses.iter().enumerate() {
                let Some(level) = level_of(&c.label, self) else {
                    continue;
                };
                let top = label_count.saturating_sub(1);
                let (min_level, max_level) = match c.cmp {
                    ast::LabelCmp::Eq => (level, level),
                    ast::LabelCmp::Le => (0, level),
                    ast::LabelCmp::Lt if level == 0 => continue,
                    ast::LabelCmp::Lt => (0, level - 1),
                    ast::LabelCmp::Ge => (level, top),
                    ast::LabelCmp::Gt if level >= top => continue,
                    ast::LabelCmp::Gt => (level + 1, top),
                };
                let effect = match c.action {
                    ast::RuleAction::Allow => Effect::Allow,
                    ast::RuleAction::Mask => Effect::Mask,
                    ast::RuleAction::Deny => Effect::Deny,
                };
                let text = self.sources.file(c.span.file).text[c.span.start..c.span.end]
                    .trim_end_matches(';')
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                clauses.push(Clause {
                    effect,
                    min_level,
                    max_level,
                    policy_id: format!("{}.{}", r.name.text, i),
                    location: self.sources.location(c.span).to_string(),
                    text,
                });
            }
            rules.push(Rule {
                name: r.name.text.clone(),
                group: r.group.text.clone(),
                clauses,
                location: self.sources.location(r.name.span).to_string(),
            });
        }
        rules
    }

    /// Warns about `mask` clauses that cover columns without a mask: those
    /// columns end up denied, which is rarely what the author meant.
    fn check_mask_clauses(&mut self, plan: &Plan, items: &[&Item]) {
        for item in items {
            let Item::Rule(r) = item else { continue };
            let Some(rule) = plan.rules.iter().find(|x| x.name == r.name.text) else {
                continue;
            };
            for (clause, c) in rule.clauses.iter().zip(r.clauses.iter()) {
                if clause.effect != Effect::Mask {
                    continue;
                }
                let mut n = 0;
                let mut example = None;
                for (ri, rel) in plan.schema.relations.iter().enumerate() {
                    for (ci, class) in plan.classes[ri].iter().enumerate() {
                        if class.mask.is_none()
                            && (clause.min_level..=clause.max_level).contains(&class.level)
                        {
                            n += 1;
                            example.get_or_insert_with(|| {
                                format!("{}.{}", rel.qualified(), rel.columns[ci].name)
                            });
                        }
                    }
                }
                if let Some(example) = example {
                    self.diags.push(diag::mask_clause_without_mask(
                        c.span,
                        &rule.group,
                        n,
                        &example,
                    ));
                }
            }
        }
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough
/// to be a likely typo.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (name.len() / 3).max(1);
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
