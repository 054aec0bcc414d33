//! `clsfc diff`: the effective-permission change between two policies.

use std::path::{Path, PathBuf};
use std::process::Command;

use clsf_compiler::verify::compare::{self, Comparison, Relation};
use clsf_compiler::verify::{Prover, SolverConfig};
use clsf_compiler::{Engine, diff, load};

use super::Exit;

/// Output formats of `clsfc diff`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A line per change.
    Text,
    /// JSON.
    Json,
    /// Markdown, for a pull-request comment.
    Markdown,
}

fn engine(dir: &Path, schema: &Path, what: &str) -> Result<Engine, String> {
    let compiled = load::compile_dir(dir, schema).map_err(|e| e.to_string())?;
    let Some(plan) = compiled.plan else {
        eprint!(
            "{}",
            clsf_lang::render(&compiled.diagnostics, &compiled.sources, false)
        );
        return Err(format!("the {what} policy has errors"));
    };
    Engine::new(plan).map_err(|e| e.to_string())
}

/// The policy directory `path` as it is at git revision `rev`, extracted
/// into `into`.
fn checkout(rev: &str, path: &Path, into: &Path) -> Result<PathBuf, String> {
    let out = Command::new("git")
        .args(["archive", "--format=tar", rev, "--"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git archive {rev} {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::create_dir_all(into).map_err(|e| e.to_string())?;
    let mut tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    use std::io::Write as _;
    tar.stdin
        .take()
        .ok_or("tar has no stdin")?
        .write_all(&out.stdout)
        .map_err(|e| e.to_string())?;
    if !tar.wait().map_err(|e| e.to_string())?.success() {
        return Err("tar failed".to_owned());
    }
    Ok(into.join(path))
}

/// The two policies `clsfc diff` compares: two directories, or one
/// directory of a git repository at two revisions.
#[derive(Debug)]
pub struct Inputs {
    /// The old policy directory.
    pub old: Option<PathBuf>,
    /// The new policy directory.
    pub new: Option<PathBuf>,
    /// Two git revisions.
    pub git: Option<Vec<String>>,
    /// The policy directory in the repository (with `git`).
    pub policy: Option<PathBuf>,
}

/// Runs `clsfc diff`.
pub fn run(
    inputs: Inputs,
    schema: &Path,
    format: Format,
    fail_on_escalation: bool,
    verify: Option<SolverConfig>,
) -> Result<Exit, String> {
    let Inputs {
        old,
        new,
        git,
        policy,
    } = inputs;
    let mut scratch = None;
    let (old, new) = match (old, new, git) {
        (Some(o), Some(n), None) => (o, n),
        (None, None, Some(revs)) if revs.len() == 2 => {
            let policy = policy
                .ok_or("--git needs --policy PATH (the policy directory in the repository)")?;
            let dir = std::env::temp_dir().join(format!("clsfc-diff-{}", std::process::id()));
            scratch = Some(dir.clone());
            match checkout(&revs[0], &policy, &dir.join("old"))
                .and_then(|o| checkout(&revs[1], &policy, &dir.join("new")).map(|n| (o, n)))
            {
                Ok(pair) => pair,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            }
        }
        _ => {
            return Err(
                "give two policy directories, or --git OLD_REV NEW_REV with --policy PATH"
                    .to_owned(),
            );
        }
    };
    let engines =
        engine(&old, schema, "old").and_then(|o| engine(&new, schema, "new").map(|n| (o, n)));
    // Only what this command extracted is removed.
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    let (old, new) = engines?;
    let changes = diff::diff(&old, &new);
    let proved = match verify {
        None => None,
        Some(config) => {
            let mut prover = match Prover::start(&config) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(Exit::Usage);
                }
            };
            let started = std::time::Instant::now();
            let comparisons =
                compare::compare(&old, &new, &mut prover).map_err(|e| e.to_string())?;
            eprintln!(
                "verify: {} group × action comparisons, {} solver questions in {:.1} s",
                comparisons.len(),
                prover.questions,
                started.elapsed().as_secs_f64()
            );
            Some(comparisons)
        }
    };
    match format {
        Format::Text => {
            print!("{}", diff::to_text(&changes));
            if let Some(c) = &proved {
                print!("{}", proof_text(c));
            }
        }
        Format::Markdown => {
            print!("{}", diff::to_markdown(&changes));
            if let Some(c) = &proved {
                print!("{}", proof_markdown(c));
            }
        }
        Format::Json => {
            let changes = diff::to_json(&changes);
            let value = match &proved {
                None => changes,
                Some(c) => serde_json::json!({ "changes": changes, "verified": c }),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
            );
        }
    }
    if let Some(comparisons) = &proved {
        let unproved = comparisons.iter().filter(|c| c.unproved.is_some()).count();
        let widened = comparisons
            .iter()
            .filter(|c| matches!(c.relation, Some(Relation::Wider | Relation::Incomparable)))
            .count();
        if unproved > 0 {
            eprintln!("error: {unproved} comparison(s) not proved (see above)");
            return Ok(Exit::PolicyErrors);
        }
        if fail_on_escalation && widened > 0 {
            eprintln!(
                "error: the new policy is proved to allow more for {widened} group × action pair(s), and --fail-on-escalation is set"
            );
            return Ok(Exit::PolicyErrors);
        }
        return Ok(Exit::Ok);
    }
    let escalations = changes.iter().filter(|c| c.escalation).count();
    if fail_on_escalation && escalations > 0 {
        eprintln!("error: {escalations} escalation(s), and --fail-on-escalation is set");
        return Ok(Exit::PolicyErrors);
    }
    Ok(Exit::Ok)
}

fn relation_text(c: &Comparison) -> String {
    match (&c.relation, &c.unproved) {
        (Some(Relation::Equivalent), _) => "equivalent".into(),
        (Some(Relation::Wider), _) => "WIDER (allows more)".into(),
        (Some(Relation::Narrower), _) => "narrower (allows less)".into(),
        (Some(Relation::Incomparable), _) => "INCOMPARABLE (allows more and less)".into(),
        (None, Some(why)) => format!("not proved: {why}"),
        (None, None) => "not proved".into(),
    }
}

fn widening_lines(c: &Comparison) -> Vec<String> {
    let Some(w) = &c.widening else {
        return Vec::new();
    };
    let mut out = vec![format!(
        "identity in {} ({})",
        w.groups.join(", "),
        if w.credentials.is_empty() {
            "members of composed groups only".to_owned()
        } else {
            w.credentials.join(", ")
        }
    )];
    match (&w.sql, &w.column) {
        (Some(sql), Some(column)) => {
            out.push(format!("column {column}: `{sql}`"));
            out.push(format!(
                "old policy: {}; new policy: {}{}",
                w.old_engine.as_deref().unwrap_or("-"),
                w.new_engine.as_deref().unwrap_or("-"),
                if w.confirmed {
                    ""
                } else {
                    " (the engine refuses it for another reason: Cedar allows more, the statement does not yet)"
                }
            ));
        }
        _ => out.push("no column of the lock matches the counterexample".into()),
    }
    out
}

fn proof_text(comparisons: &[Comparison]) -> String {
    let mut out = String::from("\nproved, per group and action (old → new):\n");
    for c in comparisons {
        if c.relation == Some(Relation::Equivalent) {
            continue;
        }
        out.push_str(&format!(
            "  {} {}: {}\n",
            c.group,
            c.action,
            relation_text(c)
        ));
        for line in widening_lines(c) {
            out.push_str(&format!("      {line}\n"));
        }
    }
    let same = comparisons
        .iter()
        .filter(|c| c.relation == Some(Relation::Equivalent))
        .count();
    out.push_str(&format!(
        "  {same} of {} group × action pairs proved equivalent\n",
        comparisons.len()
    ));
    out
}

fn proof_markdown(comparisons: &[Comparison]) -> String {
    let mut out = String::from(
        "\n### Proved by the solver\n\n| group | action | relation | counterexample |\n|---|---|---|---|\n",
    );
    for c in comparisons
        .iter()
        .filter(|c| c.relation != Some(Relation::Equivalent))
    {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            c.group,
            c.action,
            relation_text(c),
            widening_lines(c).join("<br>").replace('|', "\\|")
        ));
    }
    out
}
