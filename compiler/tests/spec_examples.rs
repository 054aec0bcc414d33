//! `spec/language.md` stays true: every example parses and compiles against
//! the quickstart schema, the EBNF defines every production of the pest
//! grammar, and the code table lists exactly the codes clsfc emits.

use clsf_compiler::codes::CODES;
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::resolve;
use clsf_compiler::schema;

const SPEC: &str = include_str!("../../spec/language.md");
const GRAMMAR: &str = include_str!("../../lang/src/grammar.pest");

/// Fenced blocks with the given info string.
fn blocks<'a>(info: &str) -> Vec<&'a str> {
    let fence = format!("```{info}\n");
    let mut out = Vec::new();
    let mut rest = SPEC;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```").expect("closed fence");
        out.push(&body[..end]);
        rest = &body[end + 3..];
    }
    out
}

const PRELUDE: &str =
    "use std::labels\ngroup ci { claim sub == \"ci\" }\ngroup leads { claim sub == \"leads\" }\n";

#[test]
fn every_example_parses_and_compiles() {
    let schema =
        schema::lock::from_str(include_str!("../../examples/quickstart/schema.lock.json")).unwrap();
    let examples = blocks("clsf");
    assert!(examples.len() >= 6, "found {} examples", examples.len());
    for example in examples {
        let parsed = clsf_lang::parse(clsf_lang::FileId(0), example);
        assert!(
            parsed.diagnostics.is_empty(),
            "{example}\n{:?}",
            parsed.diagnostics
        );
        let mut p = Parsed::default();
        policy::add_source(&mut p, "prelude.clsf", PRELUDE);
        policy::add_source(&mut p, "example.clsf", example);
        policy::resolve_imports(&mut p);
        let (plan, diags) = resolve::compile(&p, &schema);
        assert!(
            plan.is_some(),
            "{example}\n{}",
            clsf_lang::render(&diags, &p.sources, false)
        );
    }
    for example in blocks("clsf-parse") {
        let parsed = clsf_lang::parse(clsf_lang::FileId(0), example);
        assert!(
            parsed.diagnostics.is_empty(),
            "{example}\n{:?}",
            parsed.diagnostics
        );
    }
}

#[test]
fn the_ebnf_defines_every_grammar_production() {
    let ebnf = blocks("ebnf").concat();
    let defined: Vec<&str> = ebnf
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, _)| n.trim()))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    for line in GRAMMAR.lines() {
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_uppercase())
            || name.starts_with("kw_")
            || name == "WHITESPACE"
            || name == "COMMENT"
        {
            continue;
        }
        assert!(
            defined.contains(&name),
            "`{name}` of grammar.pest is not in the spec's EBNF"
        );
    }
}

#[test]
fn the_code_table_matches_the_compiler() {
    let start = SPEC.find("<!-- codes:").expect("code table marker");
    let rows: Vec<(String, String, String)> = SPEC[start..]
        .lines()
        .filter(|l| l.starts_with("| CLSF"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (
                cells[0].to_owned(),
                cells[1].to_owned(),
                cells[2].to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = CODES
        .iter()
        .map(|c| {
            (
                c.code.to_owned(),
                c.severity.to_owned(),
                c.summary.to_owned(),
            )
        })
        .collect();
    assert_eq!(rows, expected);
}
