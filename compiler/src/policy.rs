//! Reading a policy: every `.clsf` file below a directory, in a stable
//! order, plus the files they import with `use` (the standard library is
//! embedded; relative paths are read from disk). Each file is read once
//! however often it is imported; import cycles are errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clsf_lang::ast::{Item, UseTarget};
use clsf_lang::{Diagnostic, FileId, SourceSet, Span, ast};

use crate::diagnostics as diag;
use crate::stdlib;

/// A parsed policy: its files, their trees and their syntax errors.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The source text of every file.
    pub sources: SourceSet,
    /// One tree per file, parallel to `sources`.
    pub files: Vec<ast::File>,
    /// Syntax and import errors.
    pub diagnostics: Vec<Diagnostic>,
    /// (keyword, name) of declarations that did not parse.
    pub broken: Vec<(String, String)>,
    /// Where each file came from, parallel to `files`.
    origins: Vec<Origin>,
}

impl Parsed {
    /// True when the file is a standard-library module (warnings about what
    /// the policy leaves unused are not reported against it).
    pub fn is_library(&self, file: FileId) -> bool {
        matches!(self.origins.get(file.0 as usize), Some(Origin::Std(_)))
    }
}

/// Where a source file came from, for resolving its imports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Origin {
    /// A file on disk (canonical path).
    Disk(PathBuf),
    /// A standard-library module.
    Std(String),
    /// Text given directly (tests, `explain`); may import only `std::`.
    Text,
}

/// Adds one file's text to a parsed policy. Its imports are resolved by
/// [`resolve_imports`].
pub fn add_source(parsed: &mut Parsed, name: &str, text: &str) -> FileId {
    add(parsed, name, text, Origin::Text)
}

fn add(parsed: &mut Parsed, name: &str, text: &str, origin: Origin) -> FileId {
    let id = parsed.sources.add(name, text);
    let res = clsf_lang::parse(id, text);
    parsed.files.push(res.file);
    parsed.diagnostics.extend(res.diagnostics);
    parsed.broken.extend(res.broken);
    parsed.origins.push(origin);
    id
}

/// Reads and parses every `*.clsf` file under `dir` (sorted by path), then
/// everything they import.
pub fn load_dir(dir: &Path) -> std::io::Result<Parsed> {
    load_dir_with(dir, &|_| None)
}

/// [`load_dir`] where `open(path)` gives the text of a file that differs
/// from the disk (an editor's unsaved buffer), by its path as found.
pub fn load_dir_with(
    dir: &Path,
    open: &dyn Fn(&Path) -> Option<String>,
) -> std::io::Result<Parsed> {
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
        let text = match open(&path) {
            Some(text) => text,
            None => read(&path)?,
        };
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        // The standard library's own directory checked as a policy: its files
        // are the modules `use std::…` names, not copies of them.
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let origin = match stdlib::module(stem) {
            Some(embedded) if embedded == text => Origin::Std(stem.to_owned()),
            _ => Origin::Disk(path.canonicalize().unwrap_or(path)),
        };
        add(&mut parsed, &name, &text, origin);
    }
    resolve_imports(&mut parsed);
    Ok(parsed)
}

fn read(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Loads every imported file (transitively) and reports missing imports and
/// import cycles.
pub fn resolve_imports(parsed: &mut Parsed) {
    let mut index: HashMap<Origin, usize> = parsed
        .origins
        .iter()
        .enumerate()
        .filter(|(_, o)| **o != Origin::Text)
        .map(|(i, o)| (o.clone(), i))
        .collect();
    // Edges: importing file → (use span, imported files).
    let mut edges: Vec<Vec<(Span, Vec<usize>)>> = Vec::new();
    let mut next = 0;
    while next < parsed.files.len() {
        let uses: Vec<(Span, UseTarget)> = parsed.files[next]
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Use(u) => Some((u.span, u.target.clone())),
                _ => None,
            })
            .collect();
        let origin = parsed.origins[next].clone();
        let mut file_edges = Vec::new();
        for (span, target) in uses {
            let targets = match locate(&origin, &target) {
                Ok(t) => t,
                Err(NotFound(what)) => {
                    let known = if matches!(target, UseTarget::Std(_)) {
                        stdlib::names()
                    } else {
                        Vec::new()
                    };
                    parsed
                        .diagnostics
                        .push(diag::import_not_found(span, &what, &known));
                    continue;
                }
            };
            let mut imported = Vec::new();
            for (origin, name) in targets {
                if let Some(&i) = index.get(&origin) {
                    imported.push(i);
                    continue;
                }
                let text = match &origin {
                    Origin::Std(m) => stdlib::module(m).map(str::to_owned),
                    Origin::Disk(p) => std::fs::read_to_string(p).ok(),
                    Origin::Text => None,
                };
                let Some(text) = text else {
                    parsed
                        .diagnostics
                        .push(diag::import_not_found(span, &name, &[]));
                    continue;
                };
                let id = add(parsed, &name, &text, origin.clone());
                index.insert(origin, id.0 as usize);
                imported.push(id.0 as usize);
            }
            file_edges.push((span, imported));
        }
        edges.push(file_edges);
        next += 1;
    }
    report_cycles(parsed, &edges);
}

/// A `use` that names nothing: what it names, as written.
struct NotFound(String);

/// The files a `use` names: (origin, display name).
fn locate(from: &Origin, target: &UseTarget) -> Result<Vec<(Origin, String)>, NotFound> {
    match target {
        UseTarget::Std(parts) => {
            let names: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
            let what = names.join("::");
            match names.as_slice() {
                ["std", module] if stdlib::module(module).is_some() => Ok(vec![(
                    Origin::Std((*module).to_owned()),
                    format!("std/{module}.clsf"),
                )]),
                _ => Err(NotFound(what)),
            }
        }
        UseTarget::Path(p) => {
            let base = match from {
                Origin::Disk(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
                // Standard-library modules import each other by `std::`.
                Origin::Std(_) | Origin::Text => return Err(NotFound(p.value.clone())),
            };
            let path = base.join(&p.value);
            let not_found = |_| NotFound(p.value.clone());
            let canonical = path.canonicalize().map_err(not_found)?;
            if canonical.is_dir() {
                let mut files = Vec::new();
                collect(&canonical, &mut files).map_err(not_found)?;
                files.sort();
                Ok(files
                    .into_iter()
                    .map(|f| {
                        let c = f.canonicalize().unwrap_or(f.clone());
                        (Origin::Disk(c), f.display().to_string())
                    })
                    .collect())
            } else {
                Ok(vec![(Origin::Disk(canonical), path.display().to_string())])
            }
        }
    }
}

fn report_cycles(parsed: &mut Parsed, edges: &[Vec<(Span, Vec<usize>)>]) {
    let n = edges.len();
    // Colour-marking depth-first search; a back edge closes a cycle.
    let mut state = vec![0u8; n];
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        node: usize,
        edges: &[Vec<(Span, Vec<usize>)>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        found: &mut Vec<(Span, Vec<usize>)>,
    ) {
        state[node] = 1;
        stack.push(node);
        for (span, targets) in &edges[node] {
            for &t in targets {
                if t >= edges.len() {
                    continue;
                }
                if state[t] == 1 {
                    let from = stack.iter().position(|&s| s == t).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(t);
                    found.push((*span, cycle));
                } else if state[t] == 0 {
                    visit(t, edges, state, stack, found);
                }
            }
        }
        stack.pop();
        state[node] = 2;
    }
    let mut found = Vec::new();
    for start in 0..n {
        if state[start] == 0 {
            visit(start, edges, &mut state, &mut stack, &mut found);
        }
    }
    for (span, cycle) in found {
        let names: Vec<String> = cycle
            .iter()
            .map(|&i| parsed.sources.file(FileId(i as u32)).name.clone())
            .collect();
        parsed
            .diagnostics
            .push(diag::import_cycle(span, &names.join(" → ")));
    }
}

/// The `.clsf` files under `dir`, skipping hidden entries: a Kubernetes
/// ConfigMap volume keeps each version in a `..TIMESTAMP` directory behind
/// a `..data` symlink (the visible files link into it), and editors and git
/// keep their own files under dot names. Reading those too would load every
/// declaration twice.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "clsf") {
            out.push(path);
        }
    }
    Ok(())
}
