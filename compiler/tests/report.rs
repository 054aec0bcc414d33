//! `clsfc check`'s reports over a policy with ten distinct mistakes: every
//! one is reported with its code and span (error recovery), and the SARIF
//! log validates against the SARIF 2.1.0 JSON schema.

use std::path::Path;

use clsf_compiler::schema::{self, Schema};
use clsf_compiler::{policy, report, resolve};

fn quickstart_schema() -> Schema {
    schema::lock::from_str(include_str!("../../examples/quickstart/schema.lock.json")).unwrap()
}

fn compile() -> (Vec<clsf_lang::Diagnostic>, clsf_lang::SourceSet) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ten_mistakes");
    let parsed = policy::load_dir(&dir).unwrap();
    let (plan, diags) = resolve::compile(&parsed, &quickstart_schema());
    assert!(plan.is_none());
    (diags, parsed.sources)
}

#[test]
fn ten_mistakes_give_ten_diagnostics_with_codes_and_spans() {
    let (diags, sources) = compile();
    let mut codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        [
            "CLSF0001", "CLSF0101", "CLSF0102", "CLSF0103", "CLSF0104", "CLSF0105", "CLSF0106",
            "CLSF0107", "CLSF0112", "CLSF0113"
        ],
        "{}",
        clsf_lang::render(&diags, &sources, false)
    );
    assert!(diags.iter().all(|d| d.primary.is_some()));
    insta::assert_snapshot!(clsf_lang::render(&diags, &sources, false));
}

#[test]
fn json_report_lists_every_diagnostic_with_positions() {
    let (diags, sources) = compile();
    let v: serde_json::Value = serde_json::from_str(&report::json(&diags, &sources)).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["errors"], 10);
    let first = &v["diagnostics"][0];
    assert_eq!(first["primary"]["file"], "policy.clsf");
    assert!(first["primary"]["line"].as_u64().unwrap() > 0);
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/.deps/sarif-2.1.0.json");
    let schema_text = std::fs::read_to_string(&schema_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run tests/ensure-deps.sh (the README's test command does)",
            schema_path.display()
        )
    });
    // The published schema's `run.language` pattern ends in a stray `]`,
    // which strict regex checkers reject when compiling the schema itself;
    // it constrains a field clsfc does not write. Spell it as meant.
    let schema_text = schema_text.replace(
        "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$",
        "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$",
    );
    let schema: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::draft4::new(&schema).unwrap();
    let (diags, sources) = compile();
    let log: serde_json::Value =
        serde_json::from_str(&report::sarif(&diags, &sources, "policies/shop")).unwrap();
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 10);
    assert_eq!(
        log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "policies/shop/policy.clsf"
    );
    // A log that breaks the schema is caught: the validator is not vacuous.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = serde_json::json!("fatal");
    assert!(!validator.is_valid(&broken));
}

#[test]
fn github_annotations_carry_file_line_and_code() {
    let (diags, sources) = compile();
    let out = report::github(&diags, &sources, "policies/shop");
    assert_eq!(out.lines().count(), 10);
    assert!(
        out.lines()
            .all(|l| l.starts_with("::error file=policies/shop/policy.clsf,line=")),
        "{out}"
    );
}
