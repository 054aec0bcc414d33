//! Compiling a policy directory against a lock file: the file I/O shared by
//! `clsfc` and the proxy around the pure `resolve::compile`.

use std::path::Path;

use clsf_lang::{Diagnostic, SourceSet};

use crate::plan::Plan;
use crate::policy;
use crate::resolve;
use crate::schema::{Schema, lock};

/// The result of compiling a directory.
#[derive(Debug)]
pub struct Compiled {
    /// The plan, when there were no errors.
    pub plan: Option<Plan>,
    /// Every diagnostic (errors and warnings).
    pub diagnostics: Vec<Diagnostic>,
    /// The sources, for rendering diagnostics.
    pub sources: SourceSet,
}

/// Reads a lock file.
pub fn read_lock(path: &Path) -> Result<Schema, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    lock::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads, parses and compiles the policy in `dir` against the lock file at
/// `lock_path`. `Err` is an I/O or lock-file problem; policy errors are in
/// `Compiled::diagnostics`.
pub fn compile_dir(dir: &Path, lock_path: &Path) -> Result<Compiled, String> {
    compile_against(dir, &read_lock(lock_path)?)
}

/// Reads, parses and compiles the policy in `dir` against `schema` (a lock
/// file's, or one pulled from a live database).
pub fn compile_against(dir: &Path, schema: &Schema) -> Result<Compiled, String> {
    let parsed = policy::load_dir(dir).map_err(|e| e.to_string())?;
    let (plan, diagnostics) = resolve::compile(&parsed, schema);
    Ok(Compiled {
        plan,
        diagnostics,
        sources: parsed.sources,
    })
}
