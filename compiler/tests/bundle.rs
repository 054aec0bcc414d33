//! A bundle written by `clsfc build` loads back into an engine that decides
//! exactly as one compiled from the sources, and any edit of the bundle is
//! refused.

use clsf_compiler::engine::Identity;
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::schema;
use clsf_compiler::{Engine, bundle, resolve};

/// The quickstart policy and `more` sources, compiled against the
/// quickstart's lock; panics on any diagnostic.
fn quickstart_and(more: &[(&str, &str)]) -> Engine {
    let schema =
        schema::lock::from_str(include_str!("../../examples/quickstart/schema.lock.json")).unwrap();
    let mut parsed = Parsed::default();
    policy::add_source(
        &mut parsed,
        "quickstart.clsf",
        include_str!("../../examples/quickstart/policy/quickstart.clsf"),
    );
    for (name, text) in more {
        policy::add_source(&mut parsed, name, text);
    }
    let (plan, diagnostics) = resolve::compile(&parsed, &schema);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Engine::new(plan.unwrap()).unwrap()
}

fn compiled() -> Engine {
    quickstart_and(&[]).with_hash_key("0123456789abcdef".into())
}

const STATEMENTS: &[&str] = &[
    "SELECT name, email, card_number FROM customers",
    "SELECT ssn FROM customers",
    "UPDATE orders SET status = 'x' WHERE id = 10",
    "UPDATE customers SET name = 'x'",
    "SELECT c.email, o.status FROM customers c JOIN orders o ON o.customer_id = c.id",
];

#[test]
fn a_bundle_decides_as_the_sources_do_and_edits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = compiled();
    let hash = bundle::write(dir.path(), source.plan(), source.generated()).unwrap();
    let (loaded, loaded_hash) = bundle::load(dir.path()).unwrap();
    assert_eq!(hash, loaded_hash);
    let loaded = loaded.with_hash_key("0123456789abcdef".into());
    for groups in [vec!["ci".to_owned()], vec!["dba-bot".to_owned()], vec![]] {
        let identity = Identity {
            subject: "t".into(),
            groups,
        };
        let (a, b) = (source.access_for(&identity), loaded.access_for(&identity));
        for sql in STATEMENTS {
            assert_eq!(source.decide(&a, sql), loaded.decide(&b, sql), "{sql}");
        }
    }

    // Any edit breaks the manifest's digests; a consistent re-hash of an
    // edited policy file breaks the plan-to-Cedar check.
    let policies = dir.path().join("policies.cedar");
    let original = std::fs::read_to_string(&policies).unwrap();
    std::fs::write(&policies, original.replace("forbid", "permit")).unwrap();
    let err = bundle::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, bundle::BundleError::Digest(f) if f == "policies.cedar"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "bundle file policies.cedar does not match its digest in the manifest"
    );
    std::fs::write(&policies, &original).unwrap();
    bundle::load(dir.path()).unwrap();

    // Edited and re-hashed consistently: the Cedar no longer matches the plan.
    let edited = original.replace("forbid", "permit");
    std::fs::write(&policies, &edited).unwrap();
    let names = [
        "schema.cedarschema",
        "policies.cedar",
        "entities.json",
        "plan.json",
        "engine-plan.json",
    ];
    let files: Vec<(String, String)> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                std::fs::read_to_string(dir.path().join(n)).unwrap(),
            )
        })
        .collect();
    let (content_hash, listed) = bundle::digests(&files);
    let manifest = serde_json::json!({
        "format_version": 1,
        "compiler_version": env!("CARGO_PKG_VERSION"),
        "content_hash": content_hash,
        "files": listed,
    });
    let manifest_path = dir.path().join("manifest.json");
    let original_manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let err = bundle::load(dir.path()).unwrap_err();
    assert!(matches!(err, bundle::BundleError::CedarMismatch), "{err}");
    std::fs::write(&policies, &original).unwrap();
    std::fs::write(&manifest_path, &original_manifest).unwrap();
    bundle::load(dir.path()).unwrap();

    let plan_file = dir.path().join("engine-plan.json");
    let plan_text = std::fs::read_to_string(&plan_file).unwrap();
    std::fs::write(&plan_file, plan_text.replace("\"Deny\"", "\"Allow\"")).unwrap();
    let err = bundle::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, bundle::BundleError::Digest(f) if f == "engine-plan.json"),
        "{err}"
    );
}

#[test]
fn bundles_are_reproducible_and_round_trip_byte_for_byte() {
    // Two builds of the same policy are identical, and a loaded bundle
    // writes the same files again, so the proxy logs the manifest's hash.
    let source = compiled();
    let first = bundle::files(source.plan(), source.generated()).unwrap();
    let again = compiled();
    assert_eq!(
        first,
        bundle::files(again.plan(), again.generated()).unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    bundle::write(dir.path(), source.plan(), source.generated()).unwrap();
    let (loaded, _) = bundle::load(dir.path()).unwrap();
    assert_eq!(
        first,
        bundle::files(loaded.plan(), loaded.generated()).unwrap()
    );
}

/// The SQL fuzz target (tests/fuzz) loads its policy compiled, so that its
/// build needs the engine only: that file must be what the compiler makes
/// of the sources now. `CLSF_UPDATE_FIXTURES=1` writes a changed one.
#[test]
fn the_sql_fuzz_targets_plan_is_what_the_compiler_makes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let engine = quickstart_and(&[(
        "sql_decide.clsf",
        include_str!("../../tests/fuzz/sql_decide.clsf"),
    )]);
    let files = bundle::files(engine.plan(), engine.generated()).unwrap();
    let (_, made) = files
        .iter()
        .find(|(name, _)| name == "engine-plan.json")
        .unwrap();
    let fixture = root.join("tests/fuzz/sql_decide.engine-plan.json");
    if std::env::var_os("CLSF_UPDATE_FIXTURES").is_some() {
        std::fs::write(&fixture, made).unwrap();
    }
    let kept = std::fs::read_to_string(&fixture).unwrap_or_default();
    assert!(
        &kept == made,
        "{} is not what the compiler makes of quickstart.clsf and sql_decide.clsf; \
         rewrite it with CLSF_UPDATE_FIXTURES=1 cargo test -p clsf-compiler --test integration sql_fuzz",
        fixture.display()
    );
}
