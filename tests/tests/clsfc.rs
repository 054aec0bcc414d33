//! The `clsfc` binary as CI runs it: `check` (exit codes, formats,
//! `--deny-warnings`), `fmt` and `fmt --check`, and `explain`, on the
//! quickstart and the standard library.

use std::process::{Command, Output};

use clsf_tests::bins::{bin, repo_root};

fn clsfc(args: &[&str]) -> Output {
    Command::new(bin("clsfc"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run clsfc")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const LOCK: &str = "examples/quickstart/schema.lock.json";

#[test]
fn the_quickstart_and_the_standard_library_check_clean_and_are_formatted() {
    for dir in ["examples/quickstart/policy", "policies"] {
        let out = clsfc(&["check", dir, "--schema", LOCK, "--deny-warnings"]);
        assert!(out.status.success(), "{dir}: {}", text(&out.stderr));
    }
    let out = clsfc(&["fmt", "--check", "examples", "policies"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn fmt_check_prints_a_diff_and_fails_then_fmt_fixes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.clsf");
    std::fs::write(
        &file,
        "labels a<b ; // keep me\ntable t:a{x:b mask redact;}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let out = clsfc(&["fmt", "--check", path]);
    assert_eq!(out.status.code(), Some(1));
    let diff = text(&out.stdout);
    assert!(diff.contains("+labels a < b // keep me"), "{diff}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "labels a<b ; // keep me\ntable t:a{x:b mask redact;}\n",
        "--check must not write"
    );
    let out = clsfc(&["fmt", path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "labels a < b // keep me\ntable t: a {\n  x: b mask redact\n}\n"
    );
    assert!(clsfc(&["fmt", "--check", path]).status.success());
    // A file with a syntax error is reported and left alone.
    std::fs::write(&file, "labels a <\n").unwrap();
    let out = clsfc(&["fmt", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("CLSF0001"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "labels a <\n");
}

#[test]
fn check_exit_codes_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    let p = policy.to_str().unwrap();
    // A warning only: exit 0, or 1 with --deny-warnings.
    std::fs::write(
        policy.join("p.clsf"),
        "labels public < restricted\ngroup unused { claim sub == \"x\" }\ntable public.orders: public\n",
    )
    .unwrap();
    let out = clsfc(&["check", p, "--schema", LOCK]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("CLSF0201"));
    let out = clsfc(&["check", p, "--schema", LOCK, "--deny-warnings"]);
    assert_eq!(out.status.code(), Some(1));
    // An error: exit 1, with each format on standard output.
    std::fs::write(
        policy.join("p.clsf"),
        "labels public < restricted\ntable public.nope: public\n",
    )
    .unwrap();
    assert_eq!(
        clsfc(&["check", p, "--schema", LOCK]).status.code(),
        Some(1)
    );
    let out = clsfc(&["check", p, "--schema", LOCK, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["diagnostics"][0]["code"], "CLSF0101");
    let out = clsfc(&["check", p, "--schema", LOCK, "--format", "sarif"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let out = clsfc(&["check", p, "--schema", LOCK, "--format", "github"]);
    assert!(
        text(&out.stdout).starts_with("::error file="),
        "{}",
        text(&out.stdout)
    );
    // Usage and I/O problems: exit 2.
    assert_eq!(
        clsfc(&["check", p, "--schema", "/nonexistent.json"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(clsfc(&["check", p]).status.code(), Some(2));
}

#[test]
fn explain_prints_the_explanation_of_a_code() {
    let out = clsfc(&["explain", "clsf0115"]);
    assert!(out.status.success());
    let t = text(&out.stdout);
    assert!(
        t.starts_with("CLSF0115 (error): conflicting patterns"),
        "{t}"
    );
    assert!(t.contains("priority"), "{t}");
    let out = clsfc(&["explain", "CLSF9999"]);
    assert_eq!(out.status.code(), Some(2));
}
