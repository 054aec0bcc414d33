//! Compiling a policy directory against a lock file: the file I/O shared by
//! `clsfc` and the proxy around the pure `resolve::compile`.

use std::path::{Path, PathBuf};

use clsf_lang::{Diagnostic, SourceSet};

use crate::plan::Plan;
use crate::policy;
use crate::resolve;
use crate::schema::lock::LockError;
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

/// Why a policy directory or a lock file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The lock file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadLock {
        /// The lock file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The lock file is not a valid lock.
    #[error("{}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What is wrong with it.
        source: LockError,
    },
    /// The policy directory (or a file in it) could not be read.
    #[error("{0}")]
    Policy(#[source] std::io::Error),
}

/// Reads a lock file.
pub fn read_lock(path: &Path) -> Result<Schema, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::ReadLock {
        path: path.to_owned(),
        source,
    })?;
    lock::from_str(&text).map_err(|source| LoadError::Lock {
        path: path.to_owned(),
        source,
    })
}

/// Reads, parses and compiles the policy in `dir` against the lock file at
/// `lock_path`. `Err` is an I/O or lock-file problem; policy errors are in
/// `Compiled::diagnostics`.
pub fn compile_dir(dir: &Path, lock_path: &Path) -> Result<Compiled, LoadError> {
    compile_against(dir, &read_lock(lock_path)?)
}

/// Reads, parses and compiles the policy in `dir` against `schema` (a lock
/// file's, or one pulled from a live database).
pub fn compile_against(dir: &Path, schema: &Schema) -> Result<Compiled, LoadError> {
    let parsed = policy::load_dir(dir).map_err(LoadError::Policy)?;
    let (plan, diagnostics) = resolve::compile(&parsed, schema);
    Ok(Compiled {
        plan,
        diagnostics,
        sources: parsed.sources,
    })
}
