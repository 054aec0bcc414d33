//! The documentation's relative links resolve: every `[text](target)` in a
//! Markdown file the repository ships names a file or folder that exists,
//! and a `#fragment` names a heading of the file it points into (as GitHub
//! derives anchors from headings). Links to other sites are not fetched:
//! tests stay on loopback.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clsf_tests::bins::repo_root;

/// Markdown files under version control, the vendored schemas' own notes
/// excluded (they describe their upstream repositories).
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files", "-z", "--", "*.md"])
        .current_dir(root)
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8(out.stdout)
        .expect("utf-8 paths")
        .split('\0')
        .filter(|p| !p.is_empty() && !p.starts_with("tests/schemas/"))
        .map(|p| root.join(p))
        .collect()
}

/// The text outside fenced code blocks and inline code spans, line by line
/// (line numbers kept), so that `[a](b)` inside code is not read as a link.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut prose = String::new();
        let mut in_code = false;
        for ch in line.chars() {
            if ch == '`' {
                in_code = !in_code;
            } else if !in_code {
                prose.push(ch);
            }
        }
        out.push((i + 1, prose));
    }
    out
}

/// The targets of inline links `[text](target)` and images on one line.
fn link_targets(line: &str) -> Vec<String> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = line[i..].find("](") {
        let start = i + at + 2;
        let mut depth = 1;
        let mut end = start;
        while end < bytes.len() {
            match bytes[end] {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            end += 1;
        }
        if end >= bytes.len() {
            break;
        }
        // `[text](target "title")`: the title is not part of the target.
        let target = line[start..end].split_whitespace().next().unwrap_or("");
        out.push(target.trim_matches(['<', '>']).to_string());
        i = end + 1;
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-`
/// and `_` dropped, spaces to `-`; repeated headings get `-1`, `-2`, ….
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while seen.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        seen.insert(candidate);
    }
    seen
}

/// Broken links in one file, as `file:line: target (why)`, and how many
/// relative links it has.
fn broken_links(root: &Path, file: &Path) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(file).expect("read markdown");
    let dir = file.parent().expect("file in a folder");
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut broken = Vec::new();
    let mut checked = 0;
    for (line_no, line) in prose_lines(&text) {
        for target in link_targets(&line) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.to_path_buf()
            } else {
                dir.join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{shown}:{line_no}: {target} (no such file)"));
                continue;
            }
            if let Some(fragment) = fragment
                && resolved.extension().is_some_and(|e| e == "md")
            {
                let into = std::fs::read_to_string(&resolved).expect("read link target");
                if !anchors(&into).contains(fragment) {
                    broken.push(format!(
                        "{shown}:{line_no}: {target} (no heading #{fragment})"
                    ));
                }
            }
        }
    }
    (broken, checked)
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = repo_root();
    let files = markdown_files(&root);
    assert!(
        files.iter().any(|f| f.ends_with("README.md")) && files.len() >= 15,
        "expected the repository's Markdown files, found {files:?}"
    );
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let (b, n) = broken_links(&root, file);
        broken.extend(b);
        checked += n;
    }
    assert!(checked > 20, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_finds_a_broken_file_link_and_a_broken_anchor() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("b.md"),
        "# Title here\n\n## Run it, twice!\n",
    )
    .expect("write");
    let a = dir.path().join("a.md");
    std::fs::write(
        &a,
        "See [b](b.md#run-it-twice), [top](#local) and [gone](c.md).\n\
         Also [bad anchor](b.md#nowhere) and `[code](x.md)`.\n\
         ```\n[fenced](y.md)\n```\n\
         # Local\n[site](https://example.com/z.md)\n",
    )
    .expect("write");
    let (broken, _) = broken_links(dir.path(), &a);
    assert_eq!(
        broken,
        vec![
            "a.md:1: c.md (no such file)".to_string(),
            "a.md:2: b.md#nowhere (no heading #nowhere)".to_string(),
        ],
    );
}

#[test]
fn the_readme_is_a_front_door() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    let lines = readme.lines().count();
    assert!(
        lines <= 150,
        "the README has {lines} lines; keep it a front door (≤ 150) and move detail to docs/"
    );
}
