//! The code's layout keeps its promises: within each crate, the top-level
//! modules depend on each other without cycles (a module that needs
//! another's types and is needed by it is one module, or the types move to
//! a third), so each can be read, tested and moved on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clsf_tests::bins::repo_root;
use regex::Regex;

/// The library and binary sources of every crate of the workspace.
const CRATES: &[&str] = &[
    "lang/src",
    "compiler/engine/src",
    "compiler/src",
    "compiler/catalog/src",
    "compiler/cli/src",
    "runtime/wire/src",
    "runtime/src",
    "tests/src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source folder") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path inside its crate (`decide/reads.rs` → `[decide,
/// reads]`, `decide/mod.rs` → `[decide]`, `lib.rs` → `[]`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The top-level modules each top-level module names, from `crate::x` and
/// from `super::…::x` paths that climb to the crate root. Unit-test modules
/// are left out: a test may use anything.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let crate_path = Regex::new(r"\bcrate::([a-z_][a-z0-9_]*)").expect("regex");
    let super_path = Regex::new(r"\b((?:super::)+)([a-z_][a-z0-9_]*)").expect("regex");
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let path = module_path(src, &file);
        let Some(top) = path.first().cloned() else {
            continue;
        };
        if path.last().is_some_and(|m| m == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        let deps = edges.entry(top.clone()).or_default();
        for c in crate_path.captures_iter(text) {
            deps.insert(c[1].to_owned());
        }
        for c in super_path.captures_iter(text) {
            let climbs = c[1].matches("super::").count();
            if climbs == path.len() {
                deps.insert(c[2].to_owned());
            }
        }
        deps.remove(&top);
    }
    edges
}

/// Every cycle's modules (strongly connected components of more than one).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Reachability by depth-first search per node: graphs here have a few
    // dozen nodes.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(n) = stack.pop() {
            for d in edges.get(&n).into_iter().flatten() {
                if edges.contains_key(d) && seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|k| (k, reach(k))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (node, from) in &reached {
        let component: Vec<String> = from
            .iter()
            .filter(|other| reached[other].contains(*node))
            .cloned()
            .collect();
        if component.len() > 1 && !out.iter().any(|c| c.contains(node)) {
            out.push(component);
        }
    }
    out
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = repo_root();
    let mut found = Vec::new();
    for krate in CRATES {
        let edges = graph(&root.join(krate));
        assert!(
            edges.len() >= 2,
            "{krate}: expected several modules, found {edges:?}"
        );
        for cycle in cycles(&edges) {
            found.push(format!("{krate}: {}", cycle.join(" ↔ ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle_through_super_paths() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir(src.join("a")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "mod a; mod b; mod c;").expect("write");
    std::fs::write(src.join("a/mod.rs"), "mod inner;").expect("write");
    std::fs::write(src.join("a/inner.rs"), "use super::super::b::X;").expect("write");
    std::fs::write(src.join("b.rs"), "use crate::c::Y;").expect("write");
    std::fs::write(
        src.join("c.rs"),
        "use crate::a::Z;\n#[cfg(test)]\nmod tests { use crate::b::W; }",
    )
    .expect("write");
    let edges = graph(src);
    assert_eq!(
        cycles(&edges),
        vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]
    );
    // Without the climb to the root, no cycle.
    std::fs::write(src.join("a/inner.rs"), "use super::helper;").expect("write");
    assert!(cycles(&graph(src)).is_empty());
}

/// The engine's public modules (`pub mod x;` in its lib.rs): the
/// compiler's view of the plan and the engine's internals.
fn engine_modules(root: &Path) -> BTreeSet<String> {
    let lib = std::fs::read_to_string(root.join("compiler/engine/src/lib.rs")).expect("engine lib");
    let module = Regex::new(r"(?m)^pub mod ([a-z_][a-z0-9_]*);").expect("regex");
    module
        .captures_iter(&lib)
        .map(|c| c[1].to_owned())
        .collect()
}

/// Paths in `text` that reach into an engine module instead of naming an
/// item of the engine's curated root: `clsf_engine::decide::X`,
/// `clsf_engine::{access::Access, …}`, or the compiler's re-exports of the
/// engine and its plan (`clsf_compiler::engine::…`, `clsf_compiler::plan::…`).
fn reaches_into_engine(text: &str, modules: &BTreeSet<String>) -> Vec<String> {
    let single = Regex::new(r"\bclsf_engine::([a-z_][a-z0-9_]*)\b").expect("regex");
    let group = Regex::new(r"\bclsf_engine::\{([^}]*)\}").expect("regex");
    let reexport = Regex::new(r"\bclsf_compiler::(engine|plan|cedar|masks|glob)\b").expect("regex");
    let mut out = Vec::new();
    for c in single.captures_iter(text) {
        if modules.contains(&c[1]) {
            out.push(c[0].to_owned());
        }
    }
    for c in group.captures_iter(text) {
        for item in c[1].split(',') {
            let head = item.trim().split("::").next().unwrap_or("").trim();
            if modules.contains(head) {
                out.push(format!("clsf_engine::{{{}}}", item.trim()));
            }
        }
    }
    out.extend(reexport.find_iter(text).map(|m| m.as_str().to_owned()));
    out
}

#[test]
fn the_proxy_uses_only_the_engines_curated_surface() {
    let root = repo_root();
    let modules = engine_modules(&root);
    assert!(
        modules.contains("decide") && modules.contains("plan"),
        "the engine's modules were not found: {modules:?}"
    );
    let mut files = Vec::new();
    rust_files(&root.join("runtime/src"), &mut files);
    rust_files(&root.join("runtime/benches"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for path in reaches_into_engine(&text, &modules) {
            found.push(format!("{}: {path}", file.display()));
        }
    }
    assert!(
        found.is_empty(),
        "the proxy reaches into the engine (name a root item of clsf_engine, \
         or add one there):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_surface_check_finds_paths_into_engine_modules() {
    let modules: BTreeSet<String> = ["access", "decide", "plan"].map(str::to_owned).into();
    let text = "use clsf_engine::{Decision, access::Access};\n\
                fn f(p: &clsf_compiler::plan::Plan) -> clsf_engine::decide::Verdict { todo!() }\n\
                use clsf_engine::{Engine, only_reads};";
    assert_eq!(
        reaches_into_engine(text, &modules),
        vec![
            "clsf_engine::decide".to_owned(),
            "clsf_engine::{access::Access}".to_owned(),
            "clsf_compiler::plan".to_owned(),
        ]
    );
}
