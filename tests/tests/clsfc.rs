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
    let out = clsfc(&[
        "check",
        "examples/quickstart/policy",
        "--schema",
        LOCK,
        "--deny-warnings",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The standard library alone covers only the columns its patterns
    // match: the uncovered-column report is its one expected warning.
    let out = clsfc(&["check", "policies", "--schema", LOCK]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning[")).collect();
    assert!(warnings.iter().all(|w| w.contains("CLSF0206")), "{stderr}");
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

#[test]
fn explain_function_prints_its_class() {
    let out = clsfc(&["explain", "--function", "To_RegType"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("pg_catalog.to_regtype: metadata"),
        "{}",
        text(&out.stdout)
    );
    let out = clsfc(&[
        "explain",
        "--function",
        "information_schema._pg_expandarray",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["class"], "metadata");
    assert_eq!(v["callable_when_masked"], true);
    let out = clsfc(&["explain", "--function", "query_to_xml"]);
    assert!(
        text(&out.stdout).contains("value-exposing"),
        "{}",
        text(&out.stdout)
    );
    // Not built in: what it reads is unknown.
    let out = clsfc(&["explain", "--function", "public.my_report"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("not a built-in function"));
}

fn policy_copy(dir: &std::path::Path, name: &str, edit: impl Fn(String) -> String) -> String {
    let target = dir.join(name);
    std::fs::create_dir_all(&target).unwrap();
    let text =
        std::fs::read_to_string(repo_root().join("examples/quickstart/policy/quickstart.clsf"))
            .unwrap();
    std::fs::write(target.join("quickstart.clsf"), edit(text)).unwrap();
    target.to_str().unwrap().to_owned()
}

const CI_DENY: &str = "  deny  restricted\n";

#[test]
fn diff_reports_exactly_the_unmasked_column_as_an_escalation() {
    let dir = tempfile::tempdir().unwrap();
    let old = policy_copy(dir.path(), "old", |t| t);
    let new = policy_copy(dir.path(), "new", |t| {
        t.replace(
            CI_DENY,
            &format!(
                "{CI_DENY}  allow column public.customers.email override because \"receipts\"\n"
            ),
        )
    });
    let out = clsfc(&[
        "diff",
        &old,
        &new,
        "--schema",
        LOCK,
        "--format",
        "json",
        "--fail-on-escalation",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["changes"],
        serde_json::json!([{
            "group": "ci", "action": "read", "object": "public.customers.email",
            "before": "masked (email)", "after": "clear", "escalation": true
        }])
    );
    // The reverse change reduces access: no escalation, exit 0.
    let out = clsfc(&["diff", &new, &old, "--schema", LOCK, "--fail-on-escalation"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("1 change(s), 0 escalation(s)"));
}

#[test]
fn diff_between_git_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(&["init", "-q"]);
    policy_copy(repo, "policy", |t| t);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "old"]);
    // ci may now write customers too.
    policy_copy(repo, "policy", |t| {
        t.replace(
            "allow write table public.orders",
            "allow write <= confidential",
        )
    });
    git(&["commit", "-q", "-am", "new"]);
    let lock = repo_root().join(LOCK);
    let out = Command::new(bin("clsfc"))
        .args([
            "diff", "--git", "HEAD~1", "HEAD", "--policy", "policy", "--schema",
        ])
        .arg(&lock)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("ESCALATION ci: write public.customers.email: denied -> allowed"),
        "{t}"
    );
    assert!(
        !t.contains("public.customers.ssn"),
        "ssn stays restricted: {t}"
    );
}

#[test]
fn policy_tests_pass_fail_with_expected_and_actual_and_report_coverage() {
    let out = clsfc(&[
        "test",
        "examples/quickstart/policy",
        "--schema",
        LOCK,
        "--coverage",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("7 passed, 0 failed"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("labels not read:      restricted"),
        "{}",
        text(&out.stderr)
    );
    let out = clsfc(&[
        "test",
        "examples/quickstart/policy",
        "--schema",
        LOCK,
        "--min-coverage",
        "95",
    ]);
    assert_eq!(out.status.code(), Some(1), "coverage 87.5% is under 95");

    // A case that expects e-mail in clear fails, showing both decisions.
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_copy(dir.path(), "p", |t| t);
    std::fs::write(
        std::path::Path::new(&policy).join("wrong.test.toml"),
        "[[case]]\nname = \"ci reads e-mail in clear\"\n\
         identity = { iss = \"https://issuer.clsf.example\", aud = \"clsf-proxy\", sub = \"ci\", repository = \"acme/shop\" }\n\
         sql = \"SELECT email FROM customers\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = clsfc(&["test", &policy, "--schema", LOCK]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out.stdout);
    assert!(t.contains("FAILED ci reads e-mail in clear"), "{t}");
    assert!(t.contains("- expected: allow"), "{t}");
    assert!(
        t.contains("+ actual:   mask (masked: public.customers.email)"),
        "{t}"
    );
    let out = clsfc(&["test", &policy, "--schema", LOCK, "--format", "junit"]);
    let t = text(&out.stdout);
    assert!(
        t.contains("<testsuite name=\"clsf policy tests\" tests=\"1\" failures=\"1\">"),
        "{t}"
    );
    assert!(
        t.contains(
            "<failure message=\"expected allow, got mask (masked: public.customers.email)\">"
        ),
        "{t}"
    );
    // A malformed case file is a usage error naming the file.
    std::fs::write(
        std::path::Path::new(&policy).join("wrong.test.toml"),
        "[[case]]\nname = 1\n",
    )
    .unwrap();
    let out = clsfc(&["test", &policy, "--schema", LOCK]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("wrong.test.toml"),
        "{}",
        text(&out.stderr)
    );
}

/// `check --verify`, `who-can` and `diff --verify` as CI runs them, with
/// the solver command of the repository (tests/ensure-deps.sh installs
/// its cvc5 package).
#[test]
fn verification_commands_report_prove_and_fail_as_documented() {
    let solver = "compiler/solver/cvc5";
    let out = clsfc(&[
        "check",
        "examples/quickstart/policy",
        "--schema",
        LOCK,
        "--verify",
        "--solver",
        solver,
        "--deny-warnings",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("verify: 7 policies over 5 column classes"),
        "{stderr}"
    );

    // A shadowed clause, in JSON for CI: a warning, so exit 0, or 1 with
    // --deny-warnings.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    let quickstart =
        std::fs::read_to_string(repo_root().join("examples/quickstart/policy/quickstart.clsf"))
            .unwrap();
    std::fs::write(
        policy.join("p.clsf"),
        quickstart.replace(
            "  deny  restricted\n",
            "  deny  restricted\n  allow read restricted\n",
        ),
    )
    .unwrap();
    let dir_arg = policy.to_str().unwrap();
    let out = clsfc(&[
        "check", dir_arg, "--schema", LOCK, "--verify", "--solver", solver, "--format", "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["CLSF0303"], "{report:#}");
    assert_eq!(report["diagnostics"][0]["primary"]["line"], 36);
    let out = clsfc(&[
        "check",
        dir_arg,
        "--schema",
        LOCK,
        "--verify",
        "--solver",
        solver,
        "--deny-warnings",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    // No solver: exit 2, and how to install one.
    let out = clsfc(&[
        "check",
        "examples/quickstart/policy",
        "--schema",
        LOCK,
        "--verify",
        "--solver",
        "/nonexistent/cvc5",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pip install cvc5==1.3.1"),
        "{}",
        text(&out.stderr)
    );

    // who-can in each format.
    let who = |format: &str, extra: &[&str]| {
        let mut args = vec![
            "who-can",
            "examples/quickstart/policy",
            "--schema",
            LOCK,
            "--solver",
            solver,
            "--format",
            format,
        ];
        args.extend_from_slice(extra);
        let out = clsfc(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("solver proved"),
            "{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let csv = who("csv", &["--column", "customers.ssn"]);
    assert!(
        csv.starts_with("group,column,action,decision,via\n"),
        "{csv}"
    );
    assert!(
        csv.contains("ci,public.customers.ssn,read,denied,quickstart.clsf:35:3\n"),
        "{csv}"
    );
    assert!(
        csv.contains("dba-bot,public.customers.ssn,read,clear,quickstart.clsf:41:3\n"),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&who("json", &["--label", "confidential"])).unwrap();
    assert_eq!(
        json["columns"],
        serde_json::json!(["public.customers.email", "public.customers.card_number"])
    );
    assert!(json["proof"]["failures"].as_array().unwrap().is_empty());
    let md = who("markdown", &["--label", "restricted"]);
    assert!(md.contains("| action | ci | dba-bot |"), "{md}");
    let text_out = who("text", &["--column", "public.customers.email"]);
    assert!(
        text_out.contains("masked (email): ci (quickstart.clsf:34:3)"),
        "{text_out}"
    );
    let out = clsfc(&[
        "who-can",
        "examples/quickstart/policy",
        "--schema",
        LOCK,
        "--no-proof",
        "--label",
        "secret",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no label `secret`"),
        "{}",
        text(&out.stderr)
    );

    // diff --verify: a clause that unmasks is proved wider, with the
    // statement that shows it; --fail-on-escalation fails on the proof.
    let new = dir.path().join("new");
    std::fs::create_dir(&new).unwrap();
    std::fs::write(new.join("p.clsf"), quickstart.replace("  mask  confidential\n", "  allow read column public.customers.email override because \"CI checks addresses\"\n  mask  confidential\n")).unwrap();
    let out = clsfc(&[
        "diff",
        "examples/quickstart/policy",
        new.to_str().unwrap(),
        "--schema",
        LOCK,
        "--verify",
        "--solver",
        solver,
        "--fail-on-escalation",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("ci read: WIDER (allows more)"), "{stdout}");
    assert!(
        stdout.contains("column public.customers.email: `SELECT email FROM public.customers`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("new policy: forward")
            || stdout.contains("public.customers.email in clear"),
        "{stdout}"
    );
}

/// The `clsfc` lines of a CI example, with what the CI sets around them.
fn ci_commands(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("examples/ci").join(file)).unwrap();
    text.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- run: ").or_else(|| l.strip_prefix("- ")))
        .filter(|l| l.contains("clsfc "))
        .map(|l| {
            // GitLab's diff line sets BASE from its own variable first.
            l.split_once("; ").map_or(l, |(_, rest)| rest).to_owned()
        })
        .collect()
}

/// The CI examples run as written, in a repository with the quickstart
/// policy: they pass on a pull request that changes nothing of meaning,
/// and the semantic diff fails one that unmasks a column.
#[test]
fn the_ci_examples_pass_and_catch_an_escalation() {
    let github = ci_commands("github-actions.yml");
    let gitlab = ci_commands("gitlab-ci.yml");
    assert_eq!(github.len(), 4, "{github:#?}");
    assert_eq!(
        github
            .iter()
            .map(|c| c.replace(" --format github", ""))
            .collect::<Vec<_>>(),
        gitlab,
        "both examples run the same checks"
    );
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(repo.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    git(&["init", "-q"]);
    std::fs::create_dir(repo.path().join("policy")).unwrap();
    for f in ["quickstart.clsf", "quickstart.test.toml"] {
        std::fs::copy(
            repo_root().join("examples/quickstart/policy").join(f),
            repo.path().join("policy").join(f),
        )
        .unwrap();
    }
    std::fs::copy(repo_root().join(LOCK), repo.path().join("schema.lock.json")).unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "base"]);
    let base = git(&["rev-parse", "HEAD"]);
    let path = format!(
        "{}:{}",
        bin("clsfc").parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run_all = |commands: &[String]| -> Vec<(String, Output)> {
        commands
            .iter()
            .map(|c| {
                let out = Command::new("bash")
                    .args(["-c", c])
                    .current_dir(repo.path())
                    .env("PATH", &path)
                    .env("POLICY", "policy")
                    .env("LOCK", "schema.lock.json")
                    .env("BASE", &base)
                    .env("CVC5", repo_root().join("compiler/solver/cvc5"))
                    .output()
                    .unwrap();
                (c.clone(), out)
            })
            .collect()
    };
    // A comment-only change: everything passes.
    let policy = repo.path().join("policy/quickstart.clsf");
    let original = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, format!("// Reviewed.\n{original}")).unwrap();
    git(&["commit", "-qam", "comment"]);
    for (c, out) in run_all(&github).into_iter().chain(run_all(&gitlab)) {
        assert!(
            out.status.success(),
            "{c}\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // Unmasking e-mail for CI: the semantic diff fails the change.
    std::fs::write(
        &policy,
        original.replace(
            "  mask  confidential\n",
            "  allow read column public.customers.email override because \"CI checks addresses\"\n  mask  confidential\n",
        ),
    )
    .unwrap();
    git(&["commit", "-qam", "unmask"]);
    let results = run_all(&github);
    let (c, out) = results.last().unwrap();
    assert!(c.starts_with("clsfc diff"), "{c}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("| ci | read | WIDER (allows more)"),
        "{}",
        text(&out.stdout)
    );
}
