//! `engine-plan.json`: a compiled plan exactly as the engine uses it, so
//! a proxy (or the SQL fuzz target) builds an engine without the policy
//! sources or the compiler.

use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::schema::{Relation, Schema};

/// Version of the file's layout.
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct PlanFile {
    format_version: u32,
    compiler_version: String,
    server_version: String,
    /// The plan's relations in plan order (the lock's plus the catalog's).
    relations: Vec<Relation>,
    plan: Plan,
}

/// `plan` as `engine-plan.json`, one line, written by `compiler_version`.
pub fn to_json(plan: &Plan, compiler_version: &str) -> serde_json::Result<String> {
    let file = PlanFile {
        format_version: FORMAT_VERSION,
        compiler_version: compiler_version.to_owned(),
        server_version: plan.schema.server_version.clone(),
        relations: plan.schema.relations.clone(),
        plan: plan.clone(),
    };
    let mut text = serde_json::to_string(&file)?;
    text.push('\n');
    Ok(text)
}

/// The plan of an `engine-plan.json`; the error says why it is not one
/// (it does not decode, or has another layout version).
pub fn from_json(text: &str) -> Result<Plan, String> {
    let file: PlanFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.format_version != FORMAT_VERSION {
        return Err(format!(
            "format {} is not {FORMAT_VERSION}",
            file.format_version
        ));
    }
    let mut plan = file.plan;
    plan.schema = Schema::new(file.server_version, file.relations);
    Ok(plan)
}
