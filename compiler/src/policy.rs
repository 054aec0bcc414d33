//! Reading a policy directory: every `.clsf` file below it, in a stable order.

use std::path::Path;

use clsf_lang::{Diagnostic, SourceSet, ast};

/// A parsed policy: its files, their trees and their syntax errors.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The source text of every file.
    pub sources: SourceSet,
    /// One tree per file, parallel to `sources`.
    pub files: Vec<ast::File>,
    /// Syntax errors.
    pub diagnostics: Vec<Diagnostic>,
}

/// Adds one file's text to a parsed policy.
pub fn add_source(parsed: &mut Parsed, name: &str, text: &str) {
    let id = parsed.sources.add(name, text);
    let res = clsf_lang::parse(id, text);
    parsed.files.push(res.file);
    parsed.diagnostics.extend(res.diagnostics);
}

/// Reads and parses every `*.clsf` file under `dir` (sorted by path).
pub fn load_dir(dir: &Path) -> std::io::Result<Parsed> {
    let mut paths = Vec::new();
    collect(dir, &mut paths)?;
    if paths.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no .clsf files in {}", dir.display()),
        ));
    }
    paths.sort();
    let mut parsed = Parsed::default();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        add_source(&mut parsed, &name, &text);
    }
    Ok(parsed)
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "clsf") {
            out.push(path);
        }
    }
    Ok(())
}
