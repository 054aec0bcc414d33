//! The build output of `clsfc build`: Cedar schema, Cedar policies, Cedar
//! entities, the masking plan, and a manifest with a content hash. The format
//! is described in `spec/plan.md`.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cedar::{self, Generated};
use crate::plan::{Effect, Origin, Plan};
use crate::schema::lock;

#[derive(Serialize)]
struct MaskingPlan<'a> {
    labels: &'a [String],
    unclassified_label: &'a str,
    schema_hash: String,
    relations: Vec<PlanRelation>,
    groups: Vec<PlanGroup>,
    rules: Vec<PlanRule>,
}

#[derive(Serialize)]
struct PlanRelation {
    relation: String,
    columns: Vec<PlanColumn>,
}

#[derive(Serialize)]
struct PlanColumn {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    label: String,
    origin: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mask_sql: Option<String>,
}

#[derive(Serialize)]
struct PlanGroup {
    name: String,
    conditions: Vec<String>,
}

#[derive(Serialize)]
struct PlanRule {
    name: String,
    group: String,
    location: String,
    clauses: Vec<PlanClause>,
}

#[derive(Serialize)]
struct PlanClause {
    policy_id: String,
    effect: &'static str,
    labels: Vec<String>,
    location: String,
}

#[derive(Serialize)]
struct Manifest {
    format_version: u32,
    compiler_version: &'static str,
    content_hash: String,
    files: Vec<(String, String)>,
}

/// The masking plan as JSON text.
pub fn masking_plan_json(plan: &Plan) -> String {
    let relations = plan
        .schema
        .relations
        .iter()
        .enumerate()
        .map(|(ri, rel)| PlanRelation {
            relation: rel.qualified(),
            columns: rel
                .columns
                .iter()
                .enumerate()
                .map(|(ci, col)| {
                    let class = &plan.classes[ri][ci];
                    PlanColumn {
                        name: col.name.clone(),
                        type_name: col.type_name.clone(),
                        label: plan.label(class.level).to_owned(),
                        origin: match class.origin {
                            Origin::Explicit => "explicit",
                            Origin::Table => "table",
                            Origin::Unclassified => "unclassified",
                        },
                        mask: class.mask.as_ref().map(|m| m.display()),
                        mask_sql: class.mask.as_ref().map(|m| {
                            m.to_sql(
                                &crate::engine::rewrite::quote_ident(&col.name),
                                &col.type_name,
                            )
                        }),
                    }
                })
                .collect(),
        })
        .collect();
    let groups = plan
        .groups
        .iter()
        .map(|g| PlanGroup {
            name: g.name.clone(),
            conditions: g.conditions.iter().map(|c| format!("{c:?}")).collect(),
        })
        .collect();
    let rules = plan
        .rules
        .iter()
        .map(|r| PlanRule {
            name: r.name.clone(),
            group: r.group.clone(),
            location: r.location.clone(),
            clauses: r
                .clauses
                .iter()
                .map(|c| PlanClause {
                    policy_id: c.policy_id.clone(),
                    effect: match c.effect {
                        Effect::Allow => "allow",
                        Effect::Mask => "mask",
                        Effect::Deny => "deny",
                    },
                    labels: (c.min_level..=c.max_level)
                        .map(|l| plan.label(l).to_owned())
                        .collect(),
                    location: c.location.clone(),
                })
                .collect(),
        })
        .collect();
    let mp = MaskingPlan {
        labels: &plan.labels,
        unclassified_label: plan.label(plan.unclassified_level),
        schema_hash: lock::content_hash(&plan.schema),
        relations,
        groups,
        rules,
    };
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
