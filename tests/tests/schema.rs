//! Schema discovery against a real PostgreSQL: every kind of catalog object
//! in the lock, byte-identical pulls, drift with `clsfc schema diff`,
//! `clsfc check --database-url`, TLS to the database, and passwords kept out
//! of errors.

use std::path::Path;
use std::process::{Command, Output};

use clsf_tests::bins::{bin, repo_root};
use clsf_tests::certs::write_test_ca;
use clsf_tests::fixture::pull_lock_from;
use clsf_tests::postgres::Postgres;
use serde_json::Value;

fn kinds() -> Postgres {
    let pg = Postgres::start();
    pg.run_file("shop", &repo_root().join("tests/sql/kinds.sql"), true);
    pg
}

fn clsfc(args: &[&str]) -> Output {
    Command::new(bin("clsfc"))
        .args(["--color", "never"])
        .args(args)
        .output()
        .expect("run clsfc")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn relation<'a>(lock: &'a Value, schema: &str, name: &str) -> &'a Value {
    lock["relations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["schema"] == schema && r["name"] == name)
        .unwrap_or_else(|| panic!("{schema}.{name} not in the lock"))
}

fn column<'a>(rel: &'a Value, name: &str) -> &'a Value {
    rel["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("column {name} not in {rel}"))
}

#[test]
fn pull_records_every_kind_of_object_and_is_byte_identical() {
    let pg = kinds();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    pull_lock_from(&pg.gateway_url(), &a);
    pull_lock_from(&pg.gateway_url(), &b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    let lock: Value = serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    assert!(lock["server_version"].as_str().unwrap().starts_with("15"));
    assert_eq!(lock["content_hash"].as_str().unwrap().len(), 64);

    let people = relation(&lock, "app", "people");
    assert_eq!(people["kind"], "table");
    assert_eq!(people["owner"], "postgres");
    assert_eq!(people["primary_key"], serde_json::json!(["id"]));
    let email = column(people, "email");
    assert_eq!(email["type"], "app.email_address");
    assert_eq!(email["base_type"], "text");
    // A domain over a domain resolves to the innermost base type.
    assert_eq!(column(people, "work")["base_type"], "text");
    assert_eq!(column(people, "code")["base_type"], "character varying(8)");
    assert_eq!(column(people, "aliases")["type"], "app.email_address[]");
    assert_eq!(column(people, "aliases")["base_type"], "text[]");
    assert_eq!(column(people, "mood")["type"], "app.mood");
    assert_eq!(column(people, "tags")["type"], "text[]");
    assert!(column(people, "tags").get("base_type").is_none());
    assert_eq!(column(people, "id")["nullable"], false);

    let types = lock["types"].as_array().unwrap();
    let ty = |name: &str| types.iter().find(|t| t["name"] == name).unwrap();
    assert_eq!(ty("app.mood")["kind"], "enum");
    assert_eq!(
        ty("app.mood")["labels"],
        serde_json::json!(["happy", "sad", "neutral"])
    );
    assert_eq!(ty("app.work_email")["kind"], "domain");
    assert_eq!(ty("app.work_email")["not_null"], true);
    assert_eq!(ty("app.money_pair")["kind"], "composite");
    assert_eq!(
        ty("app.money_pair")["attributes"][1]["type"],
        "character(3)"
    );

    let events = relation(&lock, "app", "events");
    assert_eq!(events["kind"], "partitioned_table");
    assert_eq!(events["primary_key"], serde_json::json!(["id", "at"]));
    assert_eq!(events["foreign_keys"][0]["references"]["name"], "people");
    assert_eq!(
        events["foreign_keys"][0]["columns"],
        serde_json::json!(["person_id"])
    );
    let part = relation(&lock, "app", "events_2025");
    assert_eq!(part["partition"], true);
    assert_eq!(part["inherits"][0]["name"], "events");
    let child = relation(&lock, "app", "child_log");
    assert!(child.get("partition").is_none());
    assert_eq!(child["inherits"][0]["name"], "base_log");

    let view = relation(&lock, "app", "contacts");
    assert_eq!(view["kind"], "view");
    // Pulled with only pg_catalog on the search path: names are qualified.
    assert!(
        view["definition"]
            .as_str()
            .unwrap()
            .contains("FROM app.people p"),
        "{view}"
    );
    assert_eq!(
        relation(&lock, "app", "contact_counts")["kind"],
        "materialized_view"
    );
    let odd = relation(&lock, "Mixed Case", "Odd Table");
    assert_eq!(column(odd, "E-mail")["type"], "text");
    let f = &lock["security_definer_functions"][0];
    assert_eq!(f["name"], "lookup_email");
    assert_eq!(f["arguments"], "p_id bigint");
    assert_eq!(f["result"], "text");

    // `--schema` limits the pull.
    let only = dir.path().join("only.json");
    let out = clsfc(&[
        "schema",
        "pull",
        "--database-url",
        &pg.gateway_url(),
        "--schema",
        "Mixed Case",
        "-o",
        only.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let only: Value = serde_json::from_str(&std::fs::read_to_string(&only).unwrap()).unwrap();
    assert_eq!(only["relations"].as_array().unwrap().len(), 1);
    assert!(only.get("types").is_none());
}

#[test]
fn schema_diff_shows_drift_and_exit_codes_follow_it() {
    let pg = kinds();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    pull_lock_from(&pg.gateway_url(), &a);
    pg.superuser_sql(
        "shop",
        "ALTER TABLE app.people ADD COLUMN phone text;
         ALTER TABLE app.people ALTER COLUMN payload SET NOT NULL;
         ALTER TYPE app.mood ADD VALUE 'angry';
         DROP MATERIALIZED VIEW app.contact_counts;",
    );
    pull_lock_from(&pg.gateway_url(), &b);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    let same = clsfc(&["schema", "diff", a, a, "--exit-code"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(text(&same).contains("no changes"));

    let out = clsfc(&["schema", "diff", a, b]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("+ column app.people.phone\n    type: text"),
        "{stdout}"
    );
    assert!(
        stdout.contains("~ column app.people.payload\n    nullable: true → false"),
        "{stdout}"
    );
    assert!(stdout.contains("- relation app.contact_counts"), "{stdout}");
    assert!(stdout.contains("~ type app.mood"), "{stdout}");

    let strict = clsfc(&["schema", "diff", a, b, "--exit-code"]);
    assert_eq!(strict.status.code(), Some(1));
    let json = clsfc(&["schema", "diff", a, b, "--format", "json"]);
    let changes: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        changes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["change"] == "added" && c["name"] == "app.people.phone")
    );

    // A hand-edited lock is refused, not diffed.
    let edited = std::fs::read_to_string(b)
        .unwrap()
        .replace("\"phone\"", "\"fone\"");
    let edited_path = dir.path().join("edited.json");
    std::fs::write(&edited_path, edited).unwrap();
    let out = clsfc(&["schema", "diff", a, edited_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("content hash"), "{}", text(&out));
}

#[test]
fn check_reads_the_live_catalog() {
    let pg = kinds();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    std::fs::write(
        policy.join("p.clsf"),
        "use std::labels\nunclassified internal report none\ntable app.people { email: confidential mask email }\n",
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let out = clsfc(&["check", p, "--database-url", &pg.gateway_url()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    pg.superuser_sql("shop", "ALTER TABLE app.people RENAME COLUMN email TO mail");
    let out = clsfc(&["check", p, "--database-url", &pg.gateway_url()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("CLSF0102"), "{}", text(&out));
}

fn tls_pg(dir: &Path) -> Postgres {
    write_test_ca(dir);
    let pg = Postgres::start();
    pg.enable_tls(&dir.join("server.pem"), &dir.join("server.key"));
    pg
}

#[test]
fn pull_verifies_the_database_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pg = tls_pg(dir.path());
    let ca = dir.path().join("ca.pem");
    let base = pg.gateway_url();
    let url = |q: &str| format!("{base}?{q}");

    let full = url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    let out = clsfc(&["schema", "pull", "--database-url", &full]);
    assert!(out.status.success(), "{}", text(&out));
    let ssl_used = pg.log();
    assert!(ssl_used.contains("SSL enabled"), "{ssl_used}");

    // A certificate from another CA is refused, for verify-ca as well.
    let other = tempfile::tempdir().unwrap();
    write_test_ca(other.path());
    for mode in ["verify-full", "verify-ca"] {
        let wrong = url(&format!(
            "sslmode={mode}&sslrootcert={}",
            other.path().join("ca.pem").display()
        ));
        let out = clsfc(&["schema", "pull", "--database-url", &wrong]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("certificate"), "{}", text(&out));
        assert!(!text(&out).contains(&password(&base)));
    }
    // verify-full without a root certificate is a usage error, not a silent downgrade.
    let out = clsfc(&[
        "schema",
        "pull",
        "--database-url",
        &url("sslmode=verify-full"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("sslrootcert"), "{}", text(&out));
    // require encrypts without checking, as libpq does.
    let out = clsfc(&["schema", "pull", "--database-url", &url("sslmode=require")]);
    assert!(out.status.success(), "{}", text(&out));

    // A certificate from the trusted CA for another host name: verify-full
    // refuses it for the name, verify-ca accepts it (the chain is checked,
    // the name is not, as libpq does).
    let renamed = tempfile::tempdir().unwrap();
    clsf_tests::certs::write_test_ca_for(renamed.path(), &["db.internal.example"]);
    pg.enable_tls(
        &renamed.path().join("server.pem"),
        &renamed.path().join("server.key"),
    );
    let with_ca = |mode: &str| {
        url(&format!(
            "sslmode={mode}&sslrootcert={}",
            renamed.path().join("ca.pem").display()
        ))
    };
    // The reload that serves the new certificate is asynchronous: wait
    // (bounded) until verify-full fails for the name, not the issuer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        let out = clsfc(&["schema", "pull", "--database-url", &with_ca("verify-full")]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        if text(&out).contains("not valid for name") || std::time::Instant::now() > deadline {
            break text(&out);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(refused.contains("not valid for name"), "{refused}");
    let out = clsfc(&["schema", "pull", "--database-url", &with_ca("verify-ca")]);
    assert!(out.status.success(), "{}", text(&out));
}

fn password(url: &str) -> String {
    let userinfo = url.split("://").nth(1).unwrap().split('@').next().unwrap();
    userinfo.split(':').nth(1).unwrap().to_owned()
}

#[test]
fn the_password_never_appears_in_errors() {
    let pg = Postgres::start();
    let good = pg.gateway_url();
    let secret = password(&good);
    let cases = [
        good.replace(&secret, &format!("{secret}-wrong")),
        format!("{good}?sslmode=bogus"),
        format!("{good}?no_such_option=1"),
        good.replace("127.0.0.1:", "127.0.0.1:1"),
    ];
    for url in cases {
        let out = clsfc(&["schema", "pull", "--database-url", &url]);
        assert_eq!(out.status.code(), Some(2), "{url}: {}", text(&out));
        assert!(!text(&out).contains(&secret), "{}", text(&out));
    }
    // PGPASSWORD is used when the URL has none, and kept out of errors too.
    let without = good.replace(&format!(":{secret}@"), "@");
    let out = Command::new(bin("clsfc"))
        .args(["schema", "pull", "--database-url", &without])
        .env("PGPASSWORD", &secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The diagnostics drift produces, against a real pulled schema: a column
/// the policy names was dropped, a mask does not fit an enum or an array
/// (but does fit a domain over text), row filters that do not type-check
/// against the real column types, and a new column nobody classified.
#[test]
fn drift_diagnostics_against_a_pulled_schema() {
    let pg = kinds();
    pg.superuser_sql(
        "shop",
        "ALTER TABLE app.people DROP COLUMN payload; ALTER TABLE app.people ADD COLUMN phone text;",
    );
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("schema.lock.json");
    pull_lock_from(&pg.gateway_url(), &lock);
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    std::fs::write(
        policy.join("policy.clsf"),
        r#"use std::labels

unclassified restricted report error

schema app: internal
schema "Mixed Case": internal

table app.people {
  email:   confidential [pii] mask email
  payload: confidential
  mood:    confidential mask email
  aliases: confidential mask email
  phone:   confidential mask last(4)
}

group tenant { claim team == "tenant" }
rule by_mood for tenant {
  allow <= internal
  filter table app.people where "mood = 'angry' and email = {claim.email}"
}
rule by_person for tenant {
  filter table app.events where "person_id = note"
}
rule by_id_pattern for tenant {
  filter table app.child_log where "id like 'x%'"
}
rule fine for tenant {
  filter table app.base_log where "secret = {claim.s} and id between 1 and {claim.max}"
}
"#,
    )
    .unwrap();
    let check = |policy: &Path| {
        let out = Command::new(bin("clsfc"))
            .args(["--color", "never", "check"])
            .arg(policy)
            .arg("--schema")
            .arg(&lock)
            .current_dir(policy)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = check(&policy);
    assert_eq!(code, Some(1), "{stderr}");
    let stderr = stderr.replace(&policy.display().to_string(), "<policy>");
    insta::assert_snapshot!("dropped_column_and_mask_types", stderr);

    // Everything classified but the column added since: only it is reported.
    let text = r#"use std::labels

unclassified restricted report error

schema "Mixed Case": internal
table app.base_log: internal
table app.child_log: internal
table app.events: internal
table app.contact_counts: internal

table app.people {
  id:      internal
  email:   confidential [pii] mask email
  work:    confidential [pii]
  code:    internal
  aliases: confidential [pii]
  mood:    internal
  tags:    internal
  balance: internal
}
"#;
    std::fs::write(policy.join("policy.clsf"), text).unwrap();
    let (code, stderr) = check(&policy);
    assert_eq!(code, Some(1), "{stderr}");
    insta::assert_snapshot!("unclassified_new_column", stderr);
}
