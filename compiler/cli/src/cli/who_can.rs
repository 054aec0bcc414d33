//! `clsfc who-can`: the exposure report, printed as text, JSON, Markdown
//! or CSV, with the solver's proof of every cell summarised on standard
//! error.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use clap::ValueEnum;
use clsf_compiler::Engine;
use clsf_compiler::verify::who_can::{self, Report, Selection};
use clsf_compiler::verify::{Prover, SolverConfig};

use super::{Exit, compile};

/// Output format of the report.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One block per column: each action, and who can do it how.
    Text,
    /// The whole report as JSON.
    Json,
    /// A table per column with one column per group.
    Markdown,
    /// One row per cell: group, column, action, decision, via.
    Csv,
}

/// Runs the report.
pub fn run(
    policy_dir: &Path,
    lock: &Path,
    selection: &Selection,
    format: Format,
    solver: Option<SolverConfig>,
) -> Result<Exit, String> {
    let Some(compiled) = compile(policy_dir, lock, false)? else {
        return Ok(Exit::PolicyErrors);
    };
    let engine =
        Engine::new(compiled.plan.expect("no errors means a plan")).map_err(|e| e.to_string())?;
    let mut prover = match solver {
        Some(config) => match Prover::start(&config) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {e}");
                eprintln!("(--no-proof prints the report without proving it)");
                return Ok(Exit::Usage);
            }
        },
        None => None,
    };
    let started = std::time::Instant::now();
    let report =
        who_can::who_can(&engine, selection, prover.as_mut()).map_err(|e| e.to_string())?;
    // Written as it is formatted: GitLab's report is 2 million cells.
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = match format {
        Format::Text => text(&report, &mut out),
        Format::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
        Format::Markdown => markdown(&report, &mut out),
        Format::Csv => csv(&report, &mut out),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the report: {e}"))?;
    drop(out);
    let Some(proof) = &report.proof else {
        eprintln!("who-can: not proved (--no-proof)");
        return Ok(Exit::Ok);
    };
    eprintln!(
        "who-can: {} cells over {} columns; solver proved {} group × action × column-class cells with {} questions in {:.1} s",
        report.cells.len(),
        report.columns.len(),
        proof.cells,
        proof.questions,
        started.elapsed().as_secs_f64()
    );
    for f in &proof.failures {
        eprintln!("error: proof failed: {f}");
    }
    for u in &proof.unproved {
        eprintln!("error: not proved: {u}");
    }
    Ok(if proof.failures.is_empty() && proof.unproved.is_empty() {
        Exit::Ok
    } else {
        Exit::PolicyErrors
    })
}

/// One column's cells, by action.
type ColumnCells<'a> = (&'a str, Vec<(&'a str, Vec<&'a who_can::Cell>)>);

/// Cells grouped by column, then action (in report order).
fn by_column(report: &Report) -> Vec<ColumnCells<'_>> {
    let mut columns: Vec<ColumnCells<'_>> = report
        .columns
        .iter()
        .map(|c| (c.as_str(), Vec::new()))
        .collect();
    let index: BTreeMap<&str, usize> = report
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    for cell in &report.cells {
        let actions = &mut columns[index[cell.column.as_str()]].1;
        match actions.iter_mut().find(|(a, _)| *a == cell.action) {
            Some((_, cells)) => cells.push(cell),
            None => actions.push((cell.action.as_str(), vec![cell])),
        }
    }
    columns
}

fn text(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    for (column, actions) in by_column(report) {
        writeln!(out, "{column}")?;
        for (action, cells) in actions {
            let mut by_decision: Vec<(&str, Vec<String>)> = Vec::new();
            for cell in cells {
                let who = if cell.via.is_empty() {
                    cell.group.clone()
                } else {
                    format!("{} ({})", cell.group, cell.via.join(", "))
                };
                match by_decision.iter_mut().find(|(d, _)| *d == cell.decision) {
                    Some((_, groups)) => groups.push(who),
                    None => by_decision.push((cell.decision.as_str(), vec![who])),
                }
            }
            let parts: Vec<String> = by_decision
                .into_iter()
                .map(|(d, groups)| format!("{d}: {}", groups.join(", ")))
                .collect();
            writeln!(out, "  {action:<17} {}", parts.join(" · "))?;
        }
    }
    Ok(())
}

fn markdown(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let groups: Vec<&str> = report
        .groups
        .iter()
        .filter(|g| !g.member_of.is_empty())
        .map(|g| g.name.as_str())
        .collect();
    for (column, actions) in by_column(report) {
        writeln!(out, "### `{column}`\n")?;
        writeln!(out, "| action | {} |", groups.join(" | "))?;
        writeln!(out, "|---|{}", "---|".repeat(groups.len()))?;
        for (action, cells) in actions {
            let row: Vec<String> = groups
                .iter()
                .map(|g| {
                    cells
                        .iter()
                        .find(|c| c.group == *g)
                        .map(|c| c.decision.clone())
                        .unwrap_or_default()
                })
                .collect();
            writeln!(out, "| {action} | {} |", row.join(" | "))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "group,column,action,decision,via")?;
    for c in &report.cells {
        writeln!(
            out,
            "{},{},{},{},{}",
            csv_field(&c.group),
            csv_field(&c.column),
            csv_field(&c.action),
            csv_field(&c.decision),
            csv_field(&c.via.join(";"))
        )?;
    }
    Ok(())
}
