//! `clsfc suggest`: classifications proposed from a live database's names,
//! types and a bounded sample of its values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clsf_compiler::load;
use clsf_compiler::schema::Schema;
use clsf_compiler::suggest::{self, Header, Suggestions};

use crate::sample::{self, Budget};

use super::Exit;

/// What `suggest` and `init` were asked to read.
pub struct Options<'a> {
    /// The database.
    pub database_url: &'a str,
    /// Only these schemas (all when empty).
    pub schemas: &'a [String],
    /// Rows per table and the time budget.
    pub budget: Budget,
}

/// Pulls the schema and samples it: one read-only snapshot each.
pub fn gather(options: &Options) -> Result<(Schema, Vec<suggest::TableSample>), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let schema = clsf_catalog::pull::pull(options.database_url, options.schemas)
            .await
            .map_err(|e| e.to_string())?;
        let client = clsf_catalog::connect::connect(options.database_url)
            .await
            .map_err(|e| e.to_string())?;
        let samples = sample::sample(&client, &schema, options.budget)
            .await
            .map_err(|e| e.to_string())?;
        Ok((schema, samples))
    })
}

/// Runs `clsfc suggest`.
pub fn run(options: &Options, policy: Option<&Path>, out: Option<PathBuf>) -> Result<Exit, String> {
    let (schema, samples) = gather(options)?;
    let existing = match policy {
        Some(dir) => {
            let compiled = load::compile_against(dir, &schema).map_err(|e| e.to_string())?;
            match compiled.plan {
                Some(plan) => Some(plan),
                None => {
                    return Err(format!(
                        "the policy in {} has errors against this database; \
                         run `clsfc check {} --database-url …` first",
                        dir.display(),
                        dir.display()
                    ));
                }
            }
        }
        None => None,
    };
    let suggestions = suggest::propose(&schema, &samples, existing.as_ref());
    let text = formatted(&suggest::render(
        &suggestions,
        &Header {
            per_column: options.budget.rows,
            import_labels: existing.is_none(),
        },
    ))?;
    match out {
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => print!("{text}"),
    }
    eprintln!("{}", summary(&suggestions));
    Ok(Exit::Ok)
}

/// One line for standard error: counts only.
pub fn summary(s: &Suggestions) -> String {
    format!(
        "{} proposal(s), {} disagreement(s) with the policy; {} relation(s) sampled, {} skipped",
        s.proposals.len(),
        s.disagreements.len(),
        s.sampled,
        s.skipped.len()
    )
}

/// The budget from the command line's numbers.
pub fn budget(rows: u32, seconds: f64, seed: Option<u32>) -> Result<Budget, String> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err("--budget must be a positive number of seconds".into());
    }
    if rows == 0 {
        return Err("--sample must be at least 1".into());
    }
    Ok(Budget {
        rows,
        time: Duration::from_secs_f64(seconds),
        seed,
    })
}

/// Formats generated policy text the way `clsfc fmt` does, so that a CI
/// job's `clsfc fmt --check` passes on it.
pub fn formatted(text: &str) -> Result<String, String> {
    let parsed = clsf_lang::parse(clsf_lang::FileId(0), text);
    if !parsed.diagnostics.is_empty() {
        return Err("internal error: generated policy text does not parse".into());
    }
    Ok(clsf_lang::format(&parsed.file, text))
}
