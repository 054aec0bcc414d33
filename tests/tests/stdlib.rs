//! The standard library against real schemas: each schema vendored
//! in tests/schemas is loaded into PostgreSQL, pulled with `clsfc schema
//! pull`, and checked with a policy made of `std::pii` and `std::secrets`;
//! the columns a reviewer would call personal data or secrets are
//! classified so, and no two patterns conflict.

use std::time::Instant;

use clsf_compiler::plan::Plan;
use clsf_compiler::{load, policy, resolve};
use clsf_tests::fixture::pull_lock_from;
use clsf_tests::postgres::Postgres;
use clsf_tests::shared;

const POLICY: &str = "use std::pii\nuse std::secrets\nunclassified internal\n";

fn compile(lock: &std::path::Path) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.clsf"), POLICY).unwrap();
    let parsed = policy::load_dir(dir.path()).unwrap();
    let schema = load::read_lock(lock).unwrap();
    let (plan, diags) = resolve::compile(&parsed, &schema);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(
        errors.is_empty(),
        "{}",
        clsf_lang::render(&diags, &parsed.sources, false)
    );
    // Every view of the shared schemas is traced column by column, except
    // GitLab's views over system catalogs clsf does not model (pg_class,
    // pg_index, …), which fall back to the highest label.
    let untraced: Vec<&str> = diags
        .iter()
        .filter(|d| d.code == "CLSF0207")
        .map(|d| d.message.as_str())
        .filter(|m| !(m.contains("relation `pg_") && m.contains("the highest label")))
        .collect();
    assert!(untraced.is_empty(), "{untraced:#?}");
    plan.expect("no errors")
}

/// `level [categories] mask` of `schema.table.column`, e.g.
/// `confidential [pii] mask email`.
fn class_of(plan: &Plan, schema: &str, table: &str, column: &str) -> String {
    let ri = plan
        .schema
        .find(schema, table)
        .unwrap_or_else(|| panic!("{schema}.{table} not pulled"));
    let ci = plan
        .schema
        .relation(ri)
        .column_index(column)
        .unwrap_or_else(|| panic!("{table}.{column}"));
    let class = &plan.classes[ri][ci];
    let mut s = plan.describe_class(class);
    if let Some(m) = &class.mask {
        s.push_str(&format!(" mask {}", m.display()));
    }
    s
}

fn pulled(pg: &Postgres, name: &str) -> (Plan, tempfile::TempDir) {
    let db = shared::database(pg, name);
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("schema.lock.json");
    let started = Instant::now();
    pull_lock_from(&pg.url_for(&db), &lock);
    let pulled = started.elapsed();
    let started = Instant::now();
    let plan = compile(&lock);
    let columns: usize = plan.schema.relations.iter().map(|r| r.columns.len()).sum();
    eprintln!(
        "{name}: {columns} columns, pull {pulled:?}, check {:?}",
        started.elapsed()
    );
    (plan, dir)
}

#[test]
fn the_standard_library_classifies_the_shared_schemas() {
    let pg = shared::cluster();

    let (plan, _dir) = pulled(&pg, "pagila");
    assert_eq!(
        class_of(&plan, "public", "customer", "email"),
        "confidential [pii] mask email"
    );
    assert_eq!(
        class_of(&plan, "public", "customer", "first_name"),
        "confidential [pii] mask first(1)"
    );
    assert_eq!(
        class_of(&plan, "public", "address", "phone"),
        "confidential [pii] mask last(4)"
    );
    assert_eq!(
        class_of(&plan, "public", "address", "postal_code"),
        "confidential [pii]"
    );
    assert_eq!(
        class_of(&plan, "public", "staff", "password"),
        "restricted [secrets]"
    );
    assert_eq!(class_of(&plan, "public", "film", "title"), "internal");
    // View lineage: a column passed through keeps its source's mask; one
    // computed from personal data is personal data, without a mask.
    assert_eq!(
        class_of(&plan, "public", "customer_list", "phone"),
        "confidential [pii] mask last(4)"
    );
    assert_eq!(
        class_of(&plan, "public", "customer_list", "name"),
        "confidential [pii]"
    );
    assert_eq!(class_of(&plan, "public", "film_list", "title"), "internal");
    // Partitions inherit their parent's classification.
    assert_eq!(
        class_of(&plan, "public", "payment_p2022_01", "amount"),
        class_of(&plan, "public", "payment", "amount")
    );

    let (plan, _dir) = pulled(&pg, "chinook");
    assert_eq!(
        class_of(&plan, "public", "customer", "email"),
        "confidential [pii] mask email"
    );
    assert_eq!(
        class_of(&plan, "public", "employee", "birth_date"),
        "confidential [pii] mask year"
    );
    assert_eq!(class_of(&plan, "public", "track", "name"), "internal");

    let (plan, _dir) = pulled(&pg, "adventureworks");
    assert_eq!(
        class_of(&plan, "person", "password", "passwordhash"),
        "restricted [secrets]"
    );
    assert_eq!(
        class_of(&plan, "person", "password", "passwordsalt"),
        "restricted [secrets]"
    );
    assert_eq!(
        class_of(&plan, "person", "emailaddress", "emailaddress"),
        "confidential [pii] mask email"
    );
    // A domain over varchar: checked as its base type, so the text mask fits.
    assert_eq!(
        class_of(&plan, "person", "personphone", "phonenumber"),
        "confidential [pii] mask last(4)"
    );

    let (plan, _dir) = pulled(&pg, "gitlab");
    assert_eq!(
        class_of(&plan, "public", "users", "encrypted_password"),
        "restricted [secrets]"
    );
    assert_eq!(
        class_of(&plan, "public", "users", "email"),
        "confidential [pii] mask email"
    );
    assert_eq!(
        class_of(&plan, "public", "users", "last_sign_in_ip"),
        "confidential [pii]"
    );
    assert_eq!(
        class_of(&plan, "public", "users", "encrypted_otp_secret"),
        "restricted [secrets]"
    );
    assert_eq!(
        class_of(&plan, "public", "personal_access_tokens", "token_digest"),
        "restricted [secrets]"
    );
    assert_eq!(class_of(&plan, "public", "projects", "name"), "internal");
    let secrets = plan
        .classes
        .iter()
        .flatten()
        .filter(|c| plan.category_names(c.categories).contains(&"secrets"))
        .count();
    assert!(secrets > 100, "only {secrets} gitlab columns are secrets");
}
