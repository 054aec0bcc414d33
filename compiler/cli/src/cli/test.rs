//! `clsfc test`: run the policy's unit tests (`*.test.toml` next to it).

use std::path::Path;

use clsf_compiler::{Engine, load, policy_test};

use super::Exit;

/// Output formats of `clsfc test`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Text.
    Human,
    /// JUnit XML on standard output.
    Junit,
}

/// Runs `clsfc test`.
pub fn run(
    dir: &Path,
    schema: &Path,
    coverage: bool,
    min_coverage: Option<f64>,
    format: Format,
) -> Result<Exit, String> {
    let compiled = load::compile_dir(dir, schema).map_err(|e| e.to_string())?;
    let Some(plan) = compiled.plan else {
        eprint!(
            "{}",
            clsf_lang::render(&compiled.diagnostics, &compiled.sources, false)
        );
        return Ok(Exit::PolicyErrors);
    };
    let cases = policy_test::load(dir).map_err(|e| e.to_string())?;
    if cases.is_empty() {
        return Err(format!(
            "no *.test.toml files with cases under {}",
            dir.display()
        ));
    }
    let engine = Engine::new(plan).map_err(|e| e.to_string())?;
    let (outcomes, cov) = policy_test::run(&engine, cases);
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    match format {
        Format::Junit => print!("{}", policy_test::junit(&outcomes)),
        Format::Human => {
            for o in &outcomes {
                match &o.failure {
                    None => println!("ok     {}", o.case.name),
                    Some((expected, actual)) => {
                        println!("FAILED {} ({})", o.case.name, o.case.file.display());
                        println!("         sql:      {}", o.case.sql);
                        println!("       - expected: {expected}");
                        println!("       + actual:   {actual}");
                    }
                }
            }
            println!("{} passed, {failed} failed", outcomes.len() - failed);
        }
    }
    let percent = cov.percent();
    if coverage {
        let missing = |all: &std::collections::BTreeSet<String>,
                       hit: &std::collections::BTreeSet<String>| {
            all.difference(hit).cloned().collect::<Vec<_>>().join(", ")
        };
        eprintln!("coverage: {percent:.1}% of rules, groups and labels");
        eprintln!(
            "  rules not exercised:  {}",
            missing(&cov.all_rules, &cov.rules)
        );
        eprintln!(
            "  groups not exercised: {}",
            missing(&cov.all_groups, &cov.groups)
        );
        eprintln!(
            "  labels not read:      {}",
            missing(&cov.all_labels, &cov.labels)
        );
    }
    if failed > 0 {
        return Ok(Exit::PolicyErrors);
    }
    if let Some(min) = min_coverage
        && percent < min
    {
        eprintln!("error: coverage {percent:.1}% is under --min-coverage {min}");
        return Ok(Exit::PolicyErrors);
    }
    Ok(Exit::Ok)
}
