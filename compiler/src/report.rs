//! Machine-readable diagnostics for CI: clsf's own JSON (versioned, see
//! `spec/language.md`), SARIF 2.1.0 for code-scanning services, and GitHub
//! Actions workflow commands. The human format is `clsf_lang::render`.

use clsf_lang::{Diagnostic, Severity, SourceSet, Span};
use serde_json::{Value, json};

use crate::codes;

/// Version of the JSON report format. Incremented on any incompatible change.
pub const JSON_FORMAT_VERSION: u32 = 1;

/// 1-based line and column (in characters) of both ends of a span.
fn range(sources: &SourceSet, span: Span) -> (usize, usize, usize, usize) {
    let start = sources.location(span);
    let end = sources.location(Span::new(span.file, span.end, span.end));
    (start.line, start.column, end.line, end.column)
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn location_json(sources: &SourceSet, span: Span, label: &str) -> Value {
    let (line, column, end_line, end_column) = range(sources, span);
    json!({
        "file": sources.file(span.file).name,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "byte_start": span.start,
        "byte_end": span.end,
        "label": label,
    })
}

/// The JSON report: `{"version": 1, "errors": N, "warnings": N,
/// "diagnostics": [...]}`.
pub fn json(diags: &[Diagnostic], sources: &SourceSet) -> String {
    let items: Vec<Value> = diags
        .iter()
        .map(|d| {
            let mut v = json!({
                "code": d.code,
                "severity": severity(d.severity),
                "message": d.message,
                "labels": d.labels.iter().map(|(s, l)| location_json(sources, *s, l)).collect::<Vec<_>>(),
            });
            if let Some((span, label)) = &d.primary {
                v["primary"] = location_json(sources, *span, label);
            }
            if let Some(h) = &d.help {
                v["help"] = json!(h);
            }
            v
        })
        .collect();
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let report = json!({
        "version": JSON_FORMAT_VERSION,
        "errors": errors,
        "warnings": diags.len() - errors,
        "diagnostics": items,
    });
    let mut text = serde_json::to_string_pretty(&report).expect("report serializes");
    text.push('\n');
    text
}

fn sarif_location(sources: &SourceSet, base: &str, span: Span) -> Value {
    let (line, column, end_line, end_column) = range(sources, span);
    let name = &sources.file(span.file).name;
    let uri = if base.is_empty() || name.starts_with("std/") {
        name.clone()
    } else {
        format!("{}/{name}", base.trim_end_matches('/'))
    };
    json!({
        "physicalLocation": {
            "artifactLocation": { "uri": uri },
            "region": {
                "startLine": line,
                "startColumn": column,
                "endLine": end_line,
                "endColumn": end_column.max(if end_line == line { column } else { 1 }),
            }
        }
    })
}

/// A SARIF 2.1.0 log with one run. `base` is the policy directory as the
/// repository sees it, prefixed to file names so that code-scanning
/// services place results on the right files.
pub fn sarif(diags: &[Diagnostic], sources: &SourceSet, base: &str) -> String {
    let rules: Vec<Value> = codes::CODES
        .iter()
        .map(|c| {
            json!({
                "id": c.code,
                "name": c.summary,
                "shortDescription": { "text": c.summary },
                "fullDescription": { "text": c.explanation.replace('\n', " ") },
                "help": { "text": format!("Run `clsfc explain {}` for details.", c.code) },
                "defaultConfiguration": { "level": c.severity },
            })
        })
        .collect();
    let results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let rule_index = codes::CODES
                .iter()
                .position(|c| c.code == d.code)
                .unwrap_or(0);
            let mut text = d.message.clone();
            if let Some(h) = &d.help {
                text.push_str(". Help: ");
                text.push_str(h);
            }
            let mut v = json!({
                "ruleId": d.code,
                "ruleIndex": rule_index,
                "level": severity(d.severity),
                "message": { "text": text },
            });
            if let Some((span, _)) = &d.primary {
                v["locations"] = json!([sarif_location(sources, base, *span)]);
            }
            if !d.labels.is_empty() {
                v["relatedLocations"] = d
                    .labels
                    .iter()
                    .enumerate()
                    .map(|(i, (s, l))| {
                        let mut loc = sarif_location(sources, base, *s);
                        loc["id"] = json!(i);
                        loc["message"] = json!({ "text": l });
                        loc
                    })
                    .collect();
            }
            v
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "clsfc",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    });
    let mut text = serde_json::to_string_pretty(&log).expect("SARIF serializes");
    text.push('\n');
    text
}

/// Escapes a workflow-command property value (GitHub's rules).
fn gh_property(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
        .replace(':', "%3A")
        .replace(',', "%2C")
}

/// Escapes a workflow-command message.
fn gh_message(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub Actions annotations: `::error file=…,line=…,col=…,endLine=…,endColumn=…,title=CODE::message`.
pub fn github(diags: &[Diagnostic], sources: &SourceSet, base: &str) -> String {
    let mut out = String::new();
    for d in diags {
        let mut props = Vec::new();
        if let Some((span, _)) = &d.primary {
            let (line, column, end_line, end_column) = range(sources, *span);
            let name = &sources.file(span.file).name;
            let file = if base.is_empty() || name.starts_with("std/") {
                name.clone()
            } else {
                format!("{}/{name}", base.trim_end_matches('/'))
            };
            props.push(format!("file={}", gh_property(&file)));
            props.push(format!("line={line}"));
            props.push(format!("col={column}"));
            props.push(format!("endLine={end_line}"));
            props.push(format!("endColumn={end_column}"));
        }
        props.push(format!("title={}", gh_property(d.code)));
        let mut message = d.message.clone();
        if let Some(h) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(h);
        }
        out.push_str(&format!(
            "::{} {}::{}\n",
            severity(d.severity),
            props.join(","),
            gh_message(&message)
        ));
    }
    out
}
