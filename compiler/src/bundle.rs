//! The build output of `clsfc build`: Cedar schema, Cedar policies, Cedar
//! entities, the masking plan, and a manifest with a content hash. The format
//! is described in `spec/plan.md`.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cedar::{self, Generated};
use serde_json::json;

use crate::masks::MaskContext;
use crate::plan::{ApprovalScope, Clause, ClauseKind, Effect, Plan, Target};

#[derive(Serialize)]
struct Manifest {
    format_version: u32,
    compiler_version: &'static str,
    content_hash: String,
    files: Vec<(String, String)>,
}

/// The key the plan file shows in place of the deployment's `hash` key.
pub const HASH_KEY_PLACEHOLDER: &str = "<hash key>";

fn target_json(plan: &Plan, target: &Target) -> serde_json::Value {
    match target {
        Target::All => json!({"all": true}),
        Target::Levels(min, max) => json!({
            "labels": (*min..=*max).map(|l| plan.label(l)).collect::<Vec<_>>()
        }),
        Target::Categories(set) => json!({"categories": plan.category_names(*set)}),
        Target::Relation(ri) => json!({"relation": plan.schema.relation(*ri).qualified()}),
        Target::Column(ri, ci) => {
            let rel = plan.schema.relation(*ri);
            json!({"relation": rel.qualified(), "column": rel.columns[*ci].name})
        }
        Target::Functions(names) => json!({"functions": names}),
    }
}

fn clause_json(plan: &Plan, c: &Clause) -> serde_json::Value {
    let mut v = match &c.kind {
        ClauseKind::Access {
            effect,
            actions,
            target,
            mask,
            override_reason,
        } => {
            let mut v = json!({
                "effect": effect.as_str(),
                "actions": actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "target": target_json(plan, target),
            });
            if let Some(m) = mask {
                v["mask"] = json!(m.display());
            }
            if let Some(r) = override_reason {
                v["override_reason"] = json!(r);
            }
            if let Effect::Approval(a) = effect {
                v["approval"] = json!({
                    "approvers": a.approvers,
                    "ttl_seconds": a.ttl_seconds,
                    "scope": match a.scope {
                        ApprovalScope::Statement => json!("statement"),
                        ApprovalScope::Session(s) => json!({"session_seconds": s}),
                        ApprovalScope::Executions(n) => json!({"executions": n}),
                    },
                    "quorum": a.quorum,
                });
            }
            v
        }
        ClauseKind::Filter {
            relation,
            predicate,
        } => json!({
            "effect": "filter",
            "target": {"relation": plan.schema.relation(*relation).qualified()},
            "predicate": predicate,
        }),
        ClauseKind::Limit { rows, target } => json!({
            "effect": "limit",
            "rows": rows,
            "target": target_json(plan, target),
        }),
    };
    v["policy_id"] = json!(c.policy_id);
    v["location"] = json!(c.location);
    v
}

/// The masking plan as JSON text.
pub fn masking_plan_json(plan: &Plan) -> String {
    let cx = MaskContext {
        hash_key: HASH_KEY_PLACEHOLDER.to_owned(),
    };
    let relations: Vec<serde_json::Value> = plan
        .schema
        .relations
        .iter()
        .enumerate()
        .map(|(ri, rel)| {
            let columns: Vec<serde_json::Value> = rel
                .columns
                .iter()
                .enumerate()
                .map(|(ci, col)| {
                    let class = &plan.classes[ri][ci];
                    let mut v = json!({
                        "name": col.name,
                        "type": col.type_name,
                        "label": plan.label(class.level),
                        "origin": class.origin.as_str(),
                    });
                    let cats = plan.category_names(class.categories);
                    if !cats.is_empty() {
                        v["categories"] = json!(cats);
                    }
                    if let Some(m) = &class.mask {
                        v["mask"] = json!(m.display());
                        v["mask_sql"] = json!(m.to_sql(
                            &crate::engine::rewrite::quote_ident(&col.name),
                            &col.type_name,
                            &cx
                        ));
                    }
                    v
                })
                .collect();
            json!({"relation": rel.qualified(), "columns": columns})
        })
        .collect();
    let groups: Vec<serde_json::Value> = plan
        .groups
        .iter()
        .map(|g| json!({"name": g.name, "membership": format!("{:?}", g.membership)}))
        .collect();
    let rules: Vec<serde_json::Value> = plan
        .rules
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "group": r.group,
                "observe": r.observe,
                "location": r.location,
                "clauses": r.clauses.iter().map(|c| clause_json(plan, c)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mp = json!({
        "labels": plan.labels,
        "categories": plan.categories,
        "unclassified_label": plan.label(plan.unclassified_level),
        "schema_hash": plan.schema_hash,
        "relations": relations,
        "groups": groups,
        "rules": rules,
    });
    let mut text = serde_json::to_string_pretty(&mp).expect("masking plan serializes");
    text.push('\n');
    text
}

/// The files of a bundle, as (name, content) in a fixed order.
pub fn files(plan: &Plan, generated: &Generated) -> Result<Vec<(String, String)>, String> {
    let entities = generated
        .entities
        .to_json_value()
        .map_err(|e| format!("cannot serialize entities: {e}"))?;
    let mut entities_text = serde_json::to_string_pretty(&entities).map_err(|e| e.to_string())?;
    entities_text.push('\n');
    Ok(vec![
        (
            "schema.cedarschema".to_owned(),
            cedar::SCHEMA_TEXT.to_owned(),
        ),
        ("policies.cedar".to_owned(), cedar::policies_text(generated)),
        ("entities.json".to_owned(), entities_text),
        ("plan.json".to_owned(), masking_plan_json(plan)),
    ])
}

/// The SHA-256 of each file and the bundle's content hash over (name, file
/// digest) pairs: the hash the manifest records and the proxy logs.
pub fn digests(files: &[(String, String)]) -> (String, Vec<(String, String)>) {
    let mut hasher = Sha256::new();
    let mut listed = Vec::with_capacity(files.len());
    for (name, content) in files {
        let digest = hex::encode(Sha256::digest(content.as_bytes()));
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(digest.as_bytes());
        listed.push((name.clone(), digest));
    }
    (hex::encode(hasher.finalize()), listed)
}

/// Writes a bundle into `dir` (created if missing), manifest last.
pub fn write(dir: &Path, plan: &Plan, generated: &Generated) -> Result<String, String> {
    let files = files(plan, generated)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, content) in &files {
        let path = dir.join(name);
        std::fs::write(&path, content).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let (content_hash, listed) = digests(&files);
    let manifest = Manifest {
        format_version: 1,
        compiler_version: env!("CARGO_PKG_VERSION"),
        content_hash: content_hash.clone(),
        files: listed,
    };
    let mut text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    text.push('\n');
    let path = dir.join("manifest.json");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(content_hash)
}
