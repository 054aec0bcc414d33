//! One fixture per diagnostic code (`data/diagnostics/CODE_name.clsf`),
//! compiled against the quickstart schema and snapshotted as plain text.

use std::path::Path;

use clsf_compiler::codes::CODES;
use clsf_compiler::resolve;
use clsf_compiler::schema::{Column, Relation, RelationKind, Schema};
use clsf_compiler::{Engine, policy, verify};

fn schema() -> Schema {
    let col = |name: &str, ty: &str| Column {
        name: name.into(),
        type_name: ty.into(),
        nullable: false,
        base_type: None,
    };
    Schema::new(
        "15".into(),
        vec![Relation {
            schema: "public".into(),
            name: "customers".into(),
            kind: RelationKind::Table,
            columns: vec![
                col("id", "integer"),
                col("email", "text"),
                col("card_number", "character varying(19)"),
                col("created_at", "timestamp with time zone"),
            ],
            ..Relation::default()
        },
        Relation {
            schema: "public".into(),
            name: "customer_emails".into(),
            kind: RelationKind::View,
            columns: vec![col("id", "integer"), col("email", "text"), col("domain", "text")],
            definition: Some(
                " SELECT c.id, c.email, split_part(c.email, '@'::text, 2) AS domain FROM public.customers c;"
                    .into(),
            ),
            ..Relation::default()
        },
        Relation {
            schema: "public".into(),
            name: "legacy_report".into(),
            kind: RelationKind::View,
            columns: vec![col("n", "bigint")],
            definition: Some(" SELECT count(*) AS n FROM public.dropped_table;".into()),
            ..Relation::default()
        },
        Relation {
            schema: "public".into(),
            name: "notes".into(),
            kind: RelationKind::Table,
            columns: vec![col("id", "integer"), col("body", "text")],
            ..Relation::default()
        }],
    )
}

#[test]
fn every_code_has_a_fixture_that_produces_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diagnostics");
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixtures.sort();
    // Produced by edited Cedar or a stalled solver, never by a policy
    // text: `verify::a_forbid_that_can_error_is_an_error` and
    // `verify::an_unanswered_question_is_an_error_never_a_pass`.
    const NOT_FROM_SOURCE: [&str; 3] = ["CLSF0301", "CLSF0306", "CLSF0307"];
    let mut prover = None;
    for code in CODES.iter().filter(|c| !NOT_FROM_SOURCE.contains(&c.code)) {
        let fixture = fixtures
            .iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(code.code)
            })
            .unwrap_or_else(|| panic!("no fixture for {}", code.code));
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        // Each fixture is a one-file policy directory, so that relative
        // imports resolve as they would for a real policy.
        let dir =
            std::env::temp_dir().join(format!("clsf-diag-{}-{}", std::process::id(), code.code));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixture, dir.join(&name)).unwrap();
        let parsed = policy::load_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let (plan, mut diags) = resolve::compile(&parsed, &schema());
        // Verification codes come from `check --verify`, with the solver.
        if code.code.starts_with("CLSF03") {
            let engine = Engine::new(plan.expect("the fixture compiles")).unwrap();
            let prover = prover.get_or_insert_with(|| {
                verify::Prover::start(&verify::SolverConfig {
                    path: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("solver/cvc5")),
                    ..verify::SolverConfig::default()
                })
                .expect("the solver (bash tests/ensure-deps.sh installs it)")
            });
            let report = verify::check(engine.plan(), engine.generated(), prover).unwrap();
            diags.extend(report.diagnostics);
        }
        // The schema-wide reports (uncovered columns, an untraceable view)
        // concern every fixture; only their own fixtures show them.
        diags.retain(|d| {
            !matches!(d.code, "CLSF0206" | "CLSF0207" | "CLSF0129") || d.code == code.code
        });
        assert!(
            diags.iter().any(|d| d.code == code.code),
            "{name} did not produce {}: {diags:?}",
            code.code
        );
        let rendered = clsf_lang::render(&diags, &parsed.sources, false);
        insta::assert_snapshot!(name.trim_end_matches(".clsf").to_owned(), rendered);
    }
}
