//! The editor grammar (`editors/vscode/syntaxes/clsf.tmLanguage.json`) scopes
//! every token as the parser reads it. The spec's examples, the standard
//! library and the example policies are tokenised with vscode-textmate and
//! Oniguruma (what VS Code runs), and each token is checked against the
//! parser's own classes (`clsf_lang::lexical`): keywords, comments,
//! strings, regexes, numbers and booleans scoped as such, and names never
//! scoped as a keyword, string, comment or constant.

use std::path::{Path, PathBuf};

use clsf_lang::lexical::{self, TokenClass};
use clsf_tests::bins::repo_root;
use clsf_tests::programs;
use serde_json::Value;

/// One token of a line as vscode-textmate gives it: UTF-16 start and end
/// columns, and the scopes from the outermost.
type LineToken = (usize, usize, Vec<String>);

/// The texts to tokenise: (where from, text).
fn corpus() -> Vec<(String, String)> {
    let root = repo_root();
    let mut out = Vec::new();
    let spec = std::fs::read_to_string(root.join("spec/language.md")).unwrap();
    for info in ["```clsf\n", "```clsf-parse\n"] {
        let mut rest = spec.as_str();
        let mut n = 0;
        while let Some(start) = rest.find(info) {
            let body = &rest[start + info.len()..];
            let end = body.find("```").expect("closed fence");
            n += 1;
            out.push((
                format!("spec/language.md {info}#{n}"),
                body[..end].to_owned(),
            ));
            rest = &body[end + 3..];
        }
    }
    let mut files = Vec::new();
    for dir in ["policies", "examples", "editors/tests"] {
        collect(&root.join(dir), &mut files);
    }
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        out.push((f.strip_prefix(&root).unwrap().display().to_string(), text));
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "clsf") {
            out.push(path);
        }
    }
}

fn expected(class: TokenClass) -> (&'static str, fn(&str) -> bool) {
    match class {
        TokenClass::Keyword => ("keyword", |s| s.starts_with("keyword.")),
        TokenClass::String => ("string", |s| s.starts_with("string.quoted.")),
        TokenClass::Regex => ("regex", |s| s.starts_with("string.regexp.")),
        TokenClass::Number => ("number", |s| s.starts_with("constant.numeric.")),
        TokenClass::Boolean => ("boolean", |s| s.starts_with("constant.language.")),
        TokenClass::Comment => ("comment", |s| s.starts_with("comment.")),
        TokenClass::Name => ("name", |s| {
            !["keyword.", "string.", "comment.", "constant."]
                .iter()
                .any(|p| s.starts_with(p))
        }),
    }
}

#[test]
fn the_textmate_grammar_scopes_every_token_as_the_parser_reads_it() {
    let corpus = corpus();
    assert!(corpus.len() >= 10, "{} texts", corpus.len());
    assert!(
        corpus
            .iter()
            .any(|(from, _)| from.ends_with("hard-cases.clsf"))
    );
    let grammar = repo_root().join("editors/vscode/syntaxes/clsf.tmLanguage.json");
    let texts: Vec<&str> = corpus.iter().map(|(_, t)| t.as_str()).collect();
    let out = programs::node("tokenize_clsf.js")
        .arg(&grammar)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(serde_json::to_string(&texts).unwrap().as_bytes())?;
            child.wait_with_output()
        })
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokenised: Vec<Vec<Vec<LineToken>>> =
        serde_json::from_slice(&out.stdout).expect("the tokeniser prints JSON");

    let mut wrong = Vec::new();
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for ((from, text), lines) in corpus.iter().zip(&tokenised) {
        let truth = lexical::tokens(text).unwrap_or_else(|| panic!("{from} does not parse"));
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        for token in truth {
            let (what, ok) = expected(token.class);
            *seen.entry(what).or_default() += 1;
            // A token may span lines (a block comment): check each piece.
            let mut at = token.range.start;
            while at < token.range.end {
                let line = line_starts.partition_point(|&s| s <= at) - 1;
                let line_end = text[line_starts[line]..]
                    .find('\n')
                    .map_or(text.len(), |n| line_starts[line] + n);
                let end = token.range.end.min(line_end);
                let line_text = &text[line_starts[line]..line_end];
                let col =
                    |byte: usize| line_text[..byte - line_starts[line]].encode_utf16().count();
                let (from_col, to_col) = (col(at), col(end));
                for (start, stop, scopes) in &lines[line] {
                    if *stop <= from_col || *start >= to_col {
                        continue;
                    }
                    // A name: no scope of its stack says otherwise; else
                    // some scope says what it is (an escape inside a string
                    // is still in the string's scope).
                    let good = if token.class == TokenClass::Name {
                        scopes.iter().all(|s| ok(s))
                    } else {
                        scopes.iter().any(|s| ok(s))
                    };
                    if !good {
                        wrong.push(format!(
                            "{from}:{}: `{}` is a {what}, scoped {scopes:?}",
                            line + 1,
                            &text[at..end]
                        ));
                    }
                }
                at = end + 1;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} tokens mis-scoped:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    for what in [
        "keyword", "string", "regex", "number", "boolean", "comment", "name",
    ] {
        assert!(
            seen.get(what).copied().unwrap_or(0) > 0,
            "no {what} in the corpus: {seen:?}"
        );
    }
}

#[test]
fn the_textmate_grammar_knows_every_keyword_of_the_parser() {
    let root = repo_root();
    let pest = std::fs::read_to_string(root.join("lang/src/grammar.pest")).unwrap();
    let grammar =
        std::fs::read_to_string(root.join("editors/vscode/syntaxes/clsf.tmLanguage.json")).unwrap();
    let grammar: Value = serde_json::from_str(&grammar).unwrap();
    let keywords: String = grammar["repository"]["keywords"]["patterns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["match"].as_str().unwrap().to_owned())
        .collect();
    let words: Vec<&str> = keywords
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .collect();
    let mut missing = Vec::new();
    for line in pest.lines() {
        // `kw_table = @{ "table" ~ … }` and the literal alternatives of
        // `verb`, `action`, `report_level`, `scope_statement`.
        let Some((name, body)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if !(name.starts_with("kw_")
            || ["verb", "action", "report_level", "scope_statement"].contains(&name))
        {
            continue;
        }
        for word in body.split('"').skip(1).step_by(2) {
            if !words.contains(&word) {
                missing.push(word.to_owned());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keywords the editor grammar lacks: {missing:?}"
    );
}

/// The extension folder is a working client of `clsfc lsp`: its manifest
/// activates on the language and names a main script that node accepts,
/// the script starts the configured executable with `lsp` over stdio, and
/// the executable setting defaults to `clsfc`. (VS Code itself does not run
/// here; `tests/tests/lsp.rs` speaks to the server the script starts.)
#[test]
fn the_vscode_extension_starts_the_language_server() {
    let dir = repo_root().join("editors/vscode");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    assert_eq!(manifest["activationEvents"][0], "onLanguage:clsf");
    assert_eq!(
        manifest["contributes"]["configuration"]["properties"]["clsf.server.path"]["default"],
        "clsfc"
    );
    assert!(manifest["dependencies"]["vscode-languageclient"].is_string());
    let main = dir.join(manifest["main"].as_str().unwrap());
    let check = std::process::Command::new("node")
        .arg("--check")
        .arg(&main)
        .output()
        .expect("node is installed");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let script = std::fs::read_to_string(&main).unwrap();
    for needle in [
        "require(\"vscode-languageclient/node\")",
        "config.get(\"server.path\", \"clsfc\")",
        "args: [\"lsp\"]",
        "TransportKind.stdio",
        "language: \"clsf\"",
    ] {
        assert!(script.contains(needle), "extension.js lacks {needle}");
    }
}
