//! `clsfc fmt`: canonical formatting of policy files, in place or checked.

use std::path::{Path, PathBuf};

use clsf_lang::{FileId, SourceSet};

use super::Exit;

/// Formats (or with `check`, verifies) every `.clsf` file under `paths`.
pub fn run(paths: &[PathBuf], check: bool) -> Result<Exit, String> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err("no .clsf files to format".to_owned());
    }
    let mut unformatted = 0;
    let mut broken = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let parsed = clsf_lang::parse(FileId(0), &text);
        if !parsed.diagnostics.is_empty() {
            // Formatting a file with syntax errors would drop what did not
            // parse: report, change nothing.
            let mut sources = SourceSet::default();
            sources.add(path.display().to_string(), text.clone());
            eprint!(
                "{}",
                clsf_lang::render(&parsed.diagnostics, &sources, false)
            );
            broken += 1;
            continue;
        }
        let formatted = clsf_lang::format(&parsed.file, &text);
        if formatted == text {
            continue;
        }
        unformatted += 1;
        if check {
            let name = path.display().to_string();
            let diff = similar::TextDiff::from_lines(&text, &formatted);
            print!(
                "{}",
                diff.unified_diff()
                    .context_radius(2)
                    .header(&name, &format!("{name} (formatted)"))
            );
        } else {
            std::fs::write(path, &formatted).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("formatted {}", path.display());
        }
    }
    if broken > 0 {
        eprintln!("error: {broken} file(s) have syntax errors and were not formatted");
        return Ok(Exit::PolicyErrors);
    }
    if check && unformatted > 0 {
        eprintln!("error: {unformatted} file(s) are not formatted; run `clsfc fmt` on them");
        return Ok(Exit::PolicyErrors);
    }
    Ok(Exit::Ok)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for entry in entries {
        let p = entry.map_err(|e| e.to_string())?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "clsf") {
            out.push(p);
        }
    }
    Ok(())
}
