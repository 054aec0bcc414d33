//! `clsfc check --verify` and `who-can` with the real solver: cvc5 1.3.1
//! through `compiler/solver/cvc5` (its Python package is installed into
//! tests/.deps by `tests/ensure-deps.sh`; a missing solver fails these
//! tests, it never skips them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clsf_compiler::cedar::{Generated, GeneratedPolicy};
use clsf_compiler::engine::{Identity, Verdict};
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::schema::{self, Schema};
use clsf_compiler::verify::who_can::{self, Selection};
use clsf_compiler::verify::{self, Prover, SolverConfig};
use clsf_compiler::{Engine, resolve};
use proptest::prelude::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn solver(timeout: Duration) -> SolverConfig {
    SolverConfig {
        path: Some(repo().join("compiler/solver/cvc5")),
        timeout,
    }
}

fn prover() -> Prover {
    Prover::start(&solver(Duration::from_secs(60))).unwrap_or_else(|e| {
        panic!("{e}\n(run `bash tests/ensure-deps.sh` to install the solver's Python package)")
    })
}

thread_local! {
    /// The prover of a property test's cases, which run on one thread.
    static SHARED_PROVER: std::cell::RefCell<Option<Prover>> = const { std::cell::RefCell::new(None) };
}

fn quickstart_schema() -> Schema {
    schema::lock::from_str(include_str!("../../examples/quickstart/schema.lock.json")).unwrap()
}

/// Compiles `text` (a directory of one file, so `use std::…` resolves).
fn compile(text: &str) -> (Engine, Parsed, Vec<clsf_lang::Diagnostic>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.clsf"), text).unwrap();
    let parsed = policy::load_dir(dir.path()).unwrap();
    let (plan, diags) = resolve::compile(&parsed, &quickstart_schema());
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(
        errors.is_empty(),
        "{}",
        clsf_lang::render(&diags, &parsed.sources, false)
    );
    (Engine::new(plan.unwrap()).unwrap(), parsed, diags)
}

fn verify(text: &str) -> String {
    let (engine, parsed, _) = compile(text);
    let report = verify::check(engine.plan(), engine.generated(), &mut prover()).unwrap();
    clsf_lang::render(&report.diagnostics, &parsed.sources, false)
}

const QUICKSTART: &str = include_str!("../../examples/quickstart/policy/quickstart.clsf");

#[test]
fn the_quickstart_and_the_standard_library_verify_clean() {
    assert_eq!(verify(QUICKSTART), "");
    let with_stdlib = format!("use std::pii\nuse std::secrets\n{QUICKSTART}");
    let with_stdlib =
        with_stdlib.replace("labels public < internal < confidential < restricted\n", "");
    assert_eq!(verify(&with_stdlib), "");
}

/// Each clause of this policy carries one defect `check --verify` proves.
const DEFECTS: &str = r#"labels public < internal < confidential < restricted
categories pii, payment
unclassified restricted

group ci {
  issuer "https://issuer.example"
  claim repository == "acme/shop"
}

group gitlab {
  issuer "https://gitlab.example"
}

group svc {
  account "reporting"
  account "billing"
}

// Two issuers at once: nobody.
group ci_on_gitlab = ci and gitlab

table public.customers: internal {
  email:       confidential [pii] mask email
  card_number: confidential mask last(4)
  ssn:         restricted
}

table public.orders: internal {
  status: public
}

rule ci_reads for ci {
  allow <= internal
  mask  confidential
  deny  restricted
  allow read restricted
  allow read table public.orders
}

rule nobody_reads for ci_on_gitlab {
  allow read <= internal
}

rule svc_reads for svc {
  allow read public
}
"#;

#[test]
fn policies_written_with_defects_get_the_proved_diagnostics() {
    insta::assert_snapshot!(verify(DEFECTS));
}

/// A generated forbid edited so that it can error (an overflow): the
/// check must say so, since Cedar skips an erroring forbid (fails open).
#[test]
fn a_forbid_that_can_error_is_an_error() {
    let (engine, parsed, _) = compile(QUICKSTART);
    let g = engine.generated();
    let edited: Vec<GeneratedPolicy> = g
        .policies
        .iter()
        .map(|p| GeneratedPolicy {
            id: p.id.clone(),
            text: if p.id == "ci_reads.2" {
                p.text.replace(
                    "when { resource.level == 3 }",
                    "when { resource.level + 9223372036854775807 > 3 }",
                )
            } else {
                p.text.clone()
            },
        })
        .collect();
    assert_ne!(
        edited.iter().map(|p| &p.text).collect::<Vec<_>>(),
        g.policies.iter().map(|p| &p.text).collect::<Vec<_>>(),
        "the edit applied"
    );
    let mut set = cedar_policy::PolicySet::new();
    for p in &edited {
        set.add(
            cedar_policy::Policy::parse(Some(cedar_policy::PolicyId::new(&p.id)), &p.text).unwrap(),
        )
        .unwrap();
    }
    let generated = Generated {
        policies: edited,
        policy_set: set,
        observe_set: None,
        entities: g.entities.clone(),
        schema: g.schema.clone(),
    };
    let report = verify::check(engine.plan(), &generated, &mut prover()).unwrap();
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["CLSF0301"],
        "{}",
        clsf_lang::render(&report.diagnostics, &parsed.sources, false)
    );
    assert!(report.diagnostics[0].is_error());
}

/// A solver that answers the start-up questions and then never again:
/// every question it leaves open is an error, none passes.
#[test]
fn an_unanswered_question_is_an_error_never_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    let fake = dir.path().join("slow-cvc5");
    std::fs::write(
        &fake,
        format!(
            r#"#!/usr/bin/env python3
import os, subprocess, sys, time
real = subprocess.Popen([{shim:?}] + sys.argv[1:], stdin=subprocess.PIPE, stdout=sys.stdout)
count_file = {count:?}
for line in sys.stdin:
    if "(check-sat)" in line:
        n = int(open(count_file).read() or 0) if os.path.exists(count_file) else 0
        open(count_file, "w").write(str(n + 1))
        if n >= 2:
            time.sleep(3600)
    real.stdin.write(line.encode())
    real.stdin.flush()
"#,
            shim = repo().join("compiler/solver/cvc5").display().to_string(),
            count = count.display().to_string(),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (engine, parsed, _) = compile(
        "labels public < internal\ngroup ci { issuer \"i\" }\ntable public.orders: internal\nrule r for ci {\n  allow read <= internal\n}\nunclassified internal\n",
    );
    let mut prover = Prover::start(&SolverConfig {
        path: Some(fake),
        timeout: Duration::from_secs(1),
    })
    .unwrap();
    let report = verify::check(engine.plan(), engine.generated(), &mut prover).unwrap();
    let rendered = clsf_lang::render(&report.diagnostics, &parsed.sources, false);
    assert!(!report.diagnostics.is_empty(), "nothing reported");
    for d in &report.diagnostics {
        assert_eq!(d.code, "CLSF0306", "{rendered}");
        assert!(d.is_error());
        assert!(
            d.message.contains("did not answer within 1 s"),
            "{rendered}"
        );
    }
}

#[test]
fn a_missing_solver_is_named_with_how_to_install_it() {
    let e = Prover::start(&SolverConfig {
        path: Some("/nonexistent/cvc5".into()),
        timeout: Duration::from_secs(1),
    })
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("/nonexistent/cvc5: no such solver executable"),
        "{text}"
    );
    assert!(text.contains("pip install cvc5==1.3.1"), "{text}");
    // Something that is not a solver.
    let e = Prover::start(&SolverConfig {
        path: Some("/bin/cat".into()),
        timeout: Duration::from_secs(5),
    })
    .unwrap_err();
    assert!(e.to_string().contains("/bin/cat does not work"), "{e}");
}

#[test]
fn who_can_is_proved_cell_by_cell_and_a_wrong_claim_is_caught() {
    let (engine, _, _) = compile(QUICKSTART);
    let mut prover = prover();
    let report = who_can::who_can(&engine, &Selection::All, Some(&mut prover)).unwrap();
    let proof = report.proof.as_ref().unwrap();
    assert!(
        proof.failures.is_empty() && proof.unproved.is_empty(),
        "{proof:?}"
    );
    assert!(proof.cells > 0);
    let cell = |group: &str, column: &str, action: &str| {
        report
            .cells
            .iter()
            .find(|c| c.group == group && c.column == column && c.action == action)
            .map(|c| (c.decision.as_str(), c.via.join(",")))
            .unwrap()
    };
    assert_eq!(
        cell("ci", "public.customers.email", "read"),
        ("masked (email)", "policy.clsf:34:3".into())
    );
    assert_eq!(
        cell("ci", "public.customers.ssn", "read"),
        ("denied", "policy.clsf:35:3".into())
    );
    assert_eq!(cell("dba-bot", "public.customers.ssn", "read").0, "clear");
    assert_eq!(cell("ci", "public.orders.status", "write").0, "allowed");
    assert_eq!(cell("ci", "public.customers.name", "write").0, "denied");

    // Flip one claim: the solver refutes exactly that question.
    let groups = report.groups.clone();
    let columns: Vec<_> = engine
        .plan()
        .schema
        .relation_ids()
        .filter(|&ri| engine.plan().is_decided(ri))
        .flat_map(|ri| {
            engine
                .plan()
                .schema
                .relation(ri)
                .column_ids()
                .map(move |ci| (ri, ci))
        })
        .collect();
    let (classes, mut claims) = who_can::claims(&engine, &groups, &columns).unwrap();
    let proof = who_can::prove_claims(&engine, &classes, &claims, &mut prover).unwrap();
    assert!(proof.failures.is_empty(), "{proof:?}");
    let flipped = claims
        .iter()
        .position(|c| c.group == "ci" && c.action == "read" && c.allowed)
        .unwrap();
    claims[flipped].allowed = false;
    let proof = who_can::prove_claims(&engine, &classes, &claims, &mut prover).unwrap();
    assert_eq!(proof.failures.len(), 1, "{proof:?}");
    assert!(proof.failures[0].contains("group ci, read"), "{proof:?}");
}

/// Small random policies over the quickstart schema.
fn clause() -> impl Strategy<Value = String> {
    let level = prop::sample::select(vec!["public", "internal", "confidential", "restricted"]);
    let target = prop_oneof![
        level.clone().prop_map(|l| format!("<= {l}")),
        level.prop_map(|l| l.to_owned()),
        Just("table public.orders".to_owned()),
        Just("table public.customers".to_owned()),
        Just("column public.customers.email".to_owned()),
        Just("[pii]".to_owned()),
    ];
    (
        prop::sample::select(vec![
            "allow read",
            "allow read, write",
            "allow read, export",
            "mask",
            "deny",
            "require approval read",
            "allow write",
        ]),
        target,
    )
        .prop_map(|(verb, target)| {
            if verb.starts_with("require") {
                format!("{verb} {target} by leads")
            } else {
                format!("{verb} {target}")
            }
        })
}

fn random_policy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(clause(), 1..4),
        prop::collection::vec(clause(), 1..4),
    )
        .prop_map(|(a, b)| {
            format!(
                "labels public < internal < confidential < restricted\ncategories pii\nunclassified restricted\n\
                 group ci {{ issuer \"i\" claim repository == \"a\" }}\n\
                 group bot {{ issuer \"i\" claim groups contains \"dba\" }}\n\
                 group leads {{ issuer \"i\" claim groups contains \"leads\" }}\n\
                 group both = ci or bot\n\
                 table public.customers: internal {{\n  email: confidential [pii] mask email\n  card_number: confidential mask last(4)\n  ssn: restricted\n}}\n\
                 table public.orders: internal {{ status: public }}\n\
                 rule r_ci for ci {{\n  {}\n}}\nrule r_both for both {{\n  {}\n}}\n",
                a.join("\n  "),
                b.join("\n  ")
            )
        })
}

fn kind(v: &Verdict) -> &'static str {
    match v {
        Verdict::Forward => "forward",
        Verdict::Rewrite(_) => "rewrite",
        Verdict::Deny(_) => "deny",
        Verdict::Hold(_) => "hold",
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every cell of the report is what the statement engine does with a
    /// statement that exercises it, and the solver proves every cell.
    #[test]
    fn who_can_agrees_with_the_engine_and_the_solver(text in random_policy()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.clsf"), &text).unwrap();
        let parsed = policy::load_dir(dir.path()).unwrap();
        let (plan, diags) = resolve::compile(&parsed, &quickstart_schema());
        // Random clauses may be ambiguous (an error): those policies never
        // reach a proxy, so there is nothing to report on.
        prop_assume!(!diags.iter().any(|d| d.is_error()));
        let engine = Engine::new(plan.unwrap()).unwrap();
        // One solver for every case, as `clsfc who-can` asks all its
        // questions of one: starting one (Python importing cvc5 twice, a
        // smoke test) was a third of each case's CPU.
        let report = SHARED_PROVER.with_borrow_mut(|slot| {
            let prover = slot.get_or_insert_with(prover);
            who_can::who_can(&engine, &Selection::All, Some(prover)).unwrap()
        });
        let proof = report.proof.as_ref().unwrap();
        prop_assert!(proof.failures.is_empty() && proof.unproved.is_empty(), "{proof:?}\n{text}");
        for row in &report.groups {
            let access = engine.access_for(&Identity { subject: "p".into(), groups: row.member_of.clone() });
            let plan = engine.plan();
            for cell in report.cells.iter().filter(|c| c.group == row.name) {
                let (table, column) = cell.column.rsplit_once('.').unwrap();
                let short = table.trim_start_matches("public.");
                let ri = plan.schema.find("public", short).unwrap();
                let sql = match cell.action.as_str() {
                    "read" => format!("SELECT {column} FROM {short}"),
                    "write" => format!("INSERT INTO {short} ({column}) VALUES (NULL)"),
                    "export" => format!("COPY {short} ({column}) TO STDOUT"),
                    _ => continue,
                };
                let decision = engine.decide(&access, &sql);
                let got = kind(&decision.verdict);
                let masked = decision
                    .statements
                    .first()
                    .is_some_and(|r| r.masked.contains(&cell.column));
                let d = cell.decision.as_str();
                let ok = match cell.action.as_str() {
                    // Clear: forwarded, or rewritten for other columns of
                    // the relation with this one passed through unmasked.
                    "read" if d == "clear" => got == "forward" || (got == "rewrite" && !masked),
                    "read" if d.starts_with("masked") => got == "rewrite" && masked,
                    "read" if d.starts_with("approval") => got == "hold",
                    "read" => got == "deny",
                    "write" if d.starts_with("denied") => got == "deny",
                    "write" if d.starts_with("approval") => got == "hold",
                    "write" => got == "forward",
                    "export" if d == "denied" => got == "deny" || got == "hold",
                    _ => got != "deny"
                        || !matches!(access.columns[ri][plan.schema.relation(ri).columns.iter().position(|c| c.name == column).unwrap()], clsf_compiler::engine::access::Access::Clear | clsf_compiler::engine::access::Access::Masked(_)),
                };
                prop_assert!(ok, "{} {} {}: report says {d}, engine {got} for `{sql}`\n{text}", row.name, cell.column, cell.action);
            }
        }
    }
}

/// Old: `ssn` restricted by a pattern. New: one more, innocent-looking
/// pattern of higher priority makes it internal; no rule changes.
const HIDDEN_OLD: &str = r#"labels public < internal < confidential < restricted
categories pii
unclassified restricted
group ci {
  issuer "https://issuer.clsf.example"
  claim repository == "acme/shop"
}
classify columns named /^ssn$/ as restricted [pii] priority 10
table public.customers {
  id: internal
  name: internal
  email: confidential mask email
  card_number: confidential mask last(4)
}
table public.orders: internal {
  status: public
}
rule ci_reads for ci {
  allow <= internal
  mask  confidential
  deny  restricted
}
"#;

fn relations(old: &str, new: &str) -> Vec<verify::compare::Comparison> {
    let (old, _, _) = compile(old);
    let (new, _, _) = compile(new);
    verify::compare::compare(&old, &new, &mut prover()).unwrap()
}

#[test]
fn diff_proves_an_escalation_hidden_by_a_patterns_priority_with_a_counterexample() {
    use verify::compare::Relation;
    let new = HIDDEN_OLD.replace(
        "classify columns named /^ssn$/ as restricted [pii] priority 10\n",
        "classify columns named /^ssn$/ as restricted [pii] priority 10\nclassify columns like \"public.customers.s*\" as internal priority 20\n",
    );
    let comparisons = relations(HIDDEN_OLD, &new);
    let wider: Vec<_> = comparisons
        .iter()
        .filter(|c| c.relation != Some(Relation::Equivalent))
        .collect();
    assert_eq!(
        wider
            .iter()
            .map(|c| (c.group.as_str(), c.action.as_str(), c.relation))
            .collect::<Vec<_>>(),
        [
            ("ci", "read", Some(Relation::Wider)),
            ("ci", "read_masked", Some(Relation::Wider))
        ],
        "{comparisons:#?}"
    );
    let w = wider[0].widening.as_ref().unwrap();
    assert_eq!(w.groups, ["ci"]);
    assert_eq!(w.column.as_deref(), Some("public.customers.ssn"));
    assert_eq!(w.sql.as_deref(), Some("SELECT ssn FROM public.customers"));
    assert!(
        w.old_engine.as_deref().unwrap().starts_with("deny"),
        "{w:?}"
    );
    assert_eq!(
        w.new_engine.as_deref(),
        Some("rewrite (public.customers.ssn in clear)")
    );
    assert!(w.confirmed);
    assert!(
        w.credentials
            .iter()
            .any(|c| c == "token repository = \"acme/shop\""),
        "{w:?}"
    );

    // The same policy is equivalent to itself; taking the pattern away
    // again is a narrowing, with no counterexample.
    assert!(
        relations(HIDDEN_OLD, HIDDEN_OLD)
            .iter()
            .all(|c| c.relation == Some(Relation::Equivalent))
    );
    let back = relations(&new, HIDDEN_OLD);
    assert!(back.iter().all(|c| c.widening.is_none()), "{back:#?}");
    assert!(
        back.iter().any(|c| c.relation == Some(Relation::Narrower)),
        "{back:#?}"
    );
}

#[test]
fn diff_proves_a_group_widened_by_its_definition() {
    use verify::compare::Relation;
    // Same rules; the group now admits every repository of the org.
    let new = HIDDEN_OLD.replace(
        "claim repository == \"acme/shop\"",
        "claim repository like \"acme/*\"",
    );
    let comparisons = relations(HIDDEN_OLD, &new);
    let read = comparisons
        .iter()
        .find(|c| c.group == "ci" && c.action == "read")
        .unwrap();
    // An identity of another acme repository is in the new `ci` and not
    // the old one: it gains what `ci` reads.
    assert_eq!(read.relation, Some(Relation::Wider), "{comparisons:#?}");
}
