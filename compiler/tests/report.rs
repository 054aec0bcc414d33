//! `clsfc check`'s reports over a policy with ten distinct mistakes: every
//! one is reported with its code and span (error recovery), and the SARIF
//! log validates against the SARIF 2.1.0 JSON schema.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

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

/// Validates each log against the SARIF 2.1.0 schema with Python's
/// `jsonschema` (the reference validator, installed by
/// tests/ensure-deps.sh) and returns one verdict line per log. Not the
/// `jsonschema` crate: it and its dependencies were about 25 CPU-seconds of
/// every build of the suite, for this one test.
fn sarif_verdicts(logs: &[serde_json::Value]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema_path = root.join("tests/.deps/sarif-2.1.0.json");
    assert!(
        schema_path.exists(),
        "{}: missing; run tests/ensure-deps.sh (the README's test command does)",
        schema_path.display()
    );
    let mut child = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/validate_sarif.py"))
        .arg(&schema_path)
        .env("PYTHONPATH", root.join("tests/.deps/python"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(logs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "validate_sarif.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let (diags, sources) = compile();
    let log: serde_json::Value =
        serde_json::from_str(&report::sarif(&diags, &sources, "policies/shop")).unwrap();
    assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 10);
    assert_eq!(
        log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "policies/shop/policy.clsf"
    );
    // A log that breaks the schema is caught: the validator is not vacuous.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = serde_json::json!("fatal");
    let verdicts = sarif_verdicts(&[log, broken]);
    assert_eq!(verdicts.len(), 2, "{verdicts:#?}");
    assert_eq!(verdicts[0], "valid");
    assert!(
        verdicts[1].starts_with("invalid runs/0/results/0/level: 'fatal' is not one of"),
        "{}",
        verdicts[1]
    );
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
