//! Who gains access to what: the effective permissions of each group under
//! two compiled policies, compared column by column and action by action.
//! Each group is evaluated alone (an identity in exactly that group), with
//! the same engine the proxy runs; changes that reveal more are
//! escalations and come first.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::Engine;
use crate::engine::Identity;
use crate::engine::access::{Access, Perm, PrincipalAccess};

/// One change of one group's access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The group.
    pub group: String,
    /// `read`, `write`, `export`, `ddl`, `admin`, `filter` or `limit`.
    pub action: &'static str,
    /// `schema.table.column`, `schema.table` or `database`.
    pub object: String,
    /// Access before (`-` when the group did not exist).
    pub before: String,
    /// Access after.
    pub after: String,
    /// True when the change reveals more or allows more.
    pub escalation: bool,
}

pub(crate) fn read_text(a: &Access) -> String {
    match a {
        Access::Clear => "clear".to_owned(),
        Access::Masked(m) => format!("masked ({})", m.display()),
        Access::Approval { approvers, .. } => format!("approval by {approvers}"),
        Access::Denied { .. } => "denied".to_owned(),
    }
}

/// How much a read access reveals, for ordering: denied < approval < masked < clear.
fn read_rank(a: &Access) -> u8 {
    match a {
        Access::Denied { .. } => 0,
        Access::Approval { .. } => 1,
        Access::Masked(_) => 2,
        Access::Clear => 3,
    }
}

pub(crate) fn perm_text(p: &Perm) -> String {
    match p {
        Perm::Allowed => "allowed".to_owned(),
        Perm::Approval { approvers, .. } => format!("approval by {approvers}"),
        Perm::Denied(_) => "denied".to_owned(),
    }
}

fn perm_rank(p: &Perm) -> u8 {
    match p {
        Perm::Denied(_) => 0,
        Perm::Approval { .. } => 1,
        Perm::Allowed => 2,
    }
}

fn access(engine: &Engine, group: &str) -> Option<std::sync::Arc<PrincipalAccess>> {
    engine.plan().group_index(group)?;
    Some(engine.access_for(&Identity {
        subject: format!("group {group}"),
        groups: vec![group.to_owned()],
    }))
}

/// Compares the effective permissions of every group of either policy.
/// Both engines must have been compiled against the same schema lock.
pub fn diff(old: &Engine, new: &Engine) -> Vec<Change> {
    let groups: BTreeSet<String> = old
        .plan()
        .groups
        .iter()
        .chain(new.plan().groups.iter())
        .map(|g| g.name.clone())
        .collect();
    let plan = new.plan();
    let mut out = Vec::new();
    for group in groups {
        let (a, b) = (access(old, &group), access(new, &group));
        let mut push = |action, object: String, before: String, after: String, escalation| {
            if before != after {
                out.push(Change {
                    group: group.clone(),
                    action,
                    object,
                    before,
                    after,
                    escalation,
                });
            }
        };
        for (ri, rel) in plan.schema.relations_with_ids() {
            if !plan.is_decided(ri) && !old.plan().is_decided(ri) {
                continue;
            }
            for (ci, col) in rel.columns_with_ids() {
                let object = format!("{}.{}", rel.qualified(), col.name);
                let denied = Access::Denied {
                    policies: Vec::new(),
                    no_mask: false,
                };
                let ra = a.as_ref().map_or(&denied, |x| &x.columns[ri][ci]);
                let rb = b.as_ref().map_or(&denied, |x| &x.columns[ri][ci]);
                let more = read_rank(rb) > read_rank(ra)
                    // Another mask may reveal more than the old one.
                    || (matches!((ra, rb), (Access::Masked(x), Access::Masked(y)) if x != y));
                push("read", object.clone(), read_text(ra), read_text(rb), more);
                let none = Perm::Denied(Vec::new());
                for (action, pa, pb) in [
                    (
                        "write",
                        a.as_ref().map_or(&none, |x| &x.write[ri][ci]),
                        b.as_ref().map_or(&none, |x| &x.write[ri][ci]),
                    ),
                    (
                        "export",
                        a.as_ref().map_or(&none, |x| &x.export[ri][ci]),
                        b.as_ref().map_or(&none, |x| &x.export[ri][ci]),
                    ),
                ] {
                    push(
                        action,
                        object.clone(),
                        perm_text(pa),
                        perm_text(pb),
                        perm_rank(pb) > perm_rank(pa),
                    );
                }
            }
            let filter = |x: &Option<std::sync::Arc<PrincipalAccess>>| -> String {
                let mut f: Vec<String> = x
                    .iter()
                    .flat_map(|x| x.filters.iter())
                    .filter(|f| f.relation == ri)
                    .map(|f| f.predicate.clone())
                    .collect();
                f.sort();
                if f.is_empty() {
                    "none".to_owned()
                } else {
                    f.join(" AND ")
                }
            };
            let (fa, fb) = (filter(&a), filter(&b));
            // Fewer or other filters may let more rows through.
            let escalation = fb == "none" || (fa != "none" && fa != fb && !fb.contains(&fa));
            push("filter", rel.qualified(), fa, fb, escalation);
        }
        let none = Perm::Denied(Vec::new());
        for (action, pa, pb) in [
            (
                "ddl",
                a.as_ref().map_or(&none, |x| &x.ddl),
                b.as_ref().map_or(&none, |x| &x.ddl),
            ),
            (
                "admin",
                a.as_ref().map_or(&none, |x| &x.admin),
                b.as_ref().map_or(&none, |x| &x.admin),
            ),
        ] {
            push(
                action,
                "database".to_owned(),
                perm_text(pa),
                perm_text(pb),
                perm_rank(pb) > perm_rank(pa),
            );
        }
        let limits = |x: &Option<std::sync::Arc<PrincipalAccess>>| -> String {
            let mut l: Vec<String> = x
                .iter()
                .flat_map(|x| x.limits.iter())
                .map(|l| format!("{} rows", l.rows))
                .collect();
            l.sort();
            if l.is_empty() {
                "none".to_owned()
            } else {
                l.join(", ")
            }
        };
        let (la, lb) = (limits(&a), limits(&b));
        let escalation = lb == "none" && la != "none";
        push("limit", "statements".to_owned(), la, lb, escalation);
    }
    // Escalations first, then by group, action and object.
    out.sort_by(|x, y| {
        (!x.escalation, &x.group, x.action, &x.object).cmp(&(
            !y.escalation,
            &y.group,
            y.action,
            &y.object,
        ))
    });
    out
}

/// The changes as JSON: `{"escalations": N, "changes": [...]}`.
pub fn to_json(changes: &[Change]) -> Value {
    json!({
        "escalations": changes.iter().filter(|c| c.escalation).count(),
        "changes": changes.iter().map(|c| json!({
            "group": c.group,
            "action": c.action,
            "object": c.object,
            "before": c.before,
            "after": c.after,
            "escalation": c.escalation,
        })).collect::<Vec<_>>(),
    })
}

/// The changes as Markdown for a pull-request comment.
pub fn to_markdown(changes: &[Change]) -> String {
    let escalations = changes.iter().filter(|c| c.escalation).count();
    let mut out = format!(
        "### clsf: effective permission changes\n\n{} change(s), **{escalations} escalation(s)**.\n\n",
        changes.len()
    );
    if changes.is_empty() {
        out.push_str("No group's access changes.\n");
        return out;
    }
    out.push_str("| | group | action | object | before | after |\n|---|---|---|---|---|---|\n");
    for c in changes {
        out.push_str(&format!(
            "| {} | `{}` | {} | `{}` | {} | {} |\n",
            if c.escalation { "⚠️ more" } else { "less" },
            c.group,
            c.action,
            c.object,
            c.before,
            c.after
        ));
    }
    out
}

/// The changes as plain text.
pub fn to_text(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        out.push_str(&format!(
            "{} {}: {} {}: {} -> {}\n",
            if c.escalation {
                "ESCALATION"
            } else {
                "reduction "
            },
            c.group,
            c.action,
            c.object,
            c.before,
            c.after
        ));
    }
    let escalations = changes.iter().filter(|c| c.escalation).count();
    out.push_str(&format!(
        "{} change(s), {escalations} escalation(s)\n",
        changes.len()
    ));
    out
}
