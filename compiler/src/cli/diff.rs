//! `clsfc diff`: the effective-permission change between two policies.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    let compiled = load::compile_dir(dir, schema)?;
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

/// Runs `clsfc diff`.
pub fn run(
    old: Option<PathBuf>,
    new: Option<PathBuf>,
    git: Option<Vec<String>>,
    policy: Option<PathBuf>,
    schema: &Path,
    format: Format,
    fail_on_escalation: bool,
) -> Result<Exit, String> {
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
    match format {
        Format::Text => print!("{}", diff::to_text(&changes)),
        Format::Markdown => print!("{}", diff::to_markdown(&changes)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&diff::to_json(&changes)).map_err(|e| e.to_string())?
        ),
    }
    let escalations = changes.iter().filter(|c| c.escalation).count();
    if fail_on_escalation && escalations > 0 {
        eprintln!("error: {escalations} escalation(s), and --fail-on-escalation is set");
        return Ok(Exit::PolicyErrors);
    }
    Ok(Exit::Ok)
}
