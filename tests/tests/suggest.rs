//! `clsfc suggest` against real databases: precision and recall on the four
//! vendored schemas (pagila and Chinook with their own data, AdventureWorks
//! and GitLab with generated rows of known kinds), the time budget on a
//! large and a locked table, and that no sampled value is ever printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clsf_compiler::engine::rewrite::quote_ident;
use clsf_compiler::load;
use clsf_compiler::plan::Origin;
use clsf_compiler::schema::{Schema, TypeFamily};
use clsf_compiler::suggest::is_suggested;
use clsf_tests::bins::{bin, repo_root};
use clsf_tests::fixture::pull_lock_from;
use clsf_tests::postgres::{GATEWAY_ROLE, Postgres};
use clsf_tests::shared;

/// One ground-truth rule of `tests/schemas/truth/NAME.toml`.
struct Rule {
    matches: regex::Regex,
    types: Vec<String>,
    kind: String,
}

fn truth(name: &str) -> Vec<Rule> {
    let path = shared::dir().join("truth").join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    doc["column"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Rule {
            matches: regex::Regex::new(r["match"].as_str().unwrap()).unwrap(),
            types: r
                .get("types")
                .and_then(|t| t.as_array())
                .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default(),
            kind: r["kind"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// The family names truth files use for a column type.
fn family(type_name: &str) -> &'static str {
    let base = type_name.split('(').next().unwrap_or("").trim();
    match (TypeFamily::of(type_name), base) {
        (_, "inet" | "cidr") => "inet",
        (_, "bytea") => "binary",
        (TypeFamily::Text, _) => "text",
        (TypeFamily::Number, _) => "number",
        (TypeFamily::Bool, _) => "boolean",
        (TypeFamily::Date | TypeFamily::Timestamp, _) => "time",
        (TypeFamily::Uuid, _) => "uuid",
        _ => "other",
    }
}

fn kind_of<'a>(rules: &'a [Rule], qualified: &str, type_name: &str) -> Option<&'a str> {
    rules
        .iter()
        .find(|r| {
            r.matches.is_match(qualified)
                && (r.types.is_empty() || r.types.iter().any(|t| t == family(type_name)))
        })
        .map(|r| r.kind.as_str())
}

/// A small deterministic generator (xorshift): the same rows every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

fn luhn_complete(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A Dutch BSN (11-proof) from a counter.
fn bsn(i: usize) -> String {
    for n in (100_000_000 + i * 9_973)..u32::MAX as usize {
        let s = n.to_string();
        let d: Vec<i64> = s.bytes().map(|b| i64::from(b - b'0')).collect();
        let sum: i64 = (0..8).map(|k| d[k] * (9 - k as i64)).sum::<i64>() - d[8];
        if sum % 11 == 0 {
            return s;
        }
    }
    unreachable!()
}

const FIRST: &[&str] = &[
    "Mary",
    "Patricia",
    "Linda",
    "Barbara",
    "Elizabeth",
    "James",
    "John",
];
const LAST: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller",
];
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A value of a ground-truth kind, as text.
fn sensitive_value(kind: &str, column: &str, i: usize, rng: &mut Rng) -> String {
    match kind {
        "email" => {
            format!("{}.{}{i}@example{}.com", FIRST[i % 7], LAST[i % 5], i % 3).to_lowercase()
        }
        "phone" => format!("+1 ({}) 555-{:04}", 201 + i % 700, (i * 37) % 10_000),
        "card" => luhn_complete(&format!("4{:014}", rng.next() % 100_000_000_000_000)),
        "national_id" if i.is_multiple_of(2) => bsn(i),
        "national_id" => format!("{:03}-{:02}-{:04}", 100 + i % 500, 10 + i % 80, 1000 + i),
        "password_hash" => format!(
            "$2b$12${}",
            rng.pick(
                b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                53
            )
        ),
        "token" => rng.pick(ALNUM, 40),
        "ip" => format!("10.{}.{}.{}", i % 200, (i * 7) % 250, 1 + i % 250),
        "person_name" if column.contains("first") || column.contains("middle") => {
            FIRST[i % 7].into()
        }
        "person_name" if column.contains("last") => LAST[i % 7].into(),
        "person_name" => format!("{} {}", FIRST[i % 7], LAST[(i + 3) % 7]),
        "username" => format!("adventure-works\\{}{i}", FIRST[i % 7].to_lowercase()),
        "address" => format!("{} {} Street", 10 + i, LAST[i % 7]),
        "postal_code" => format!("{:05}", 10_000 + i * 97),
        "birth_date" => format!("19{}-0{}-1{}", 60 + i % 30, 1 + i % 9, i % 9),
        "personal_document" => format!(
            "<resume><name>{} {}</name></resume>",
            FIRST[i % 7],
            LAST[i % 7]
        ),
        _ => format!("{kind} {i}"),
    }
}

/// A business-like value for a column nobody calls sensitive, by type and
/// name: order, account and product numbers, checksums, URLs, labels.
fn plain_value(
    column: &str,
    base: &str,
    enum_labels: &str,
    i: usize,
    rng: &mut Rng,
) -> Option<String> {
    let text = |s: String| Some(s);
    match base {
        "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision" | "money" => {
            text((i + 1).to_string())
        }
        "boolean" => text(i.is_multiple_of(2).to_string()),
        "date" => text(format!("2021-03-{:02}", 1 + i % 28)),
        b if b.starts_with("timestamp") => text(format!("2021-03-{:02} 10:00:00", 1 + i % 28)),
        b if b.starts_with("time") => text("12:00:00".into()),
        "interval" => text("1 day".into()),
        "uuid" => text(format!("00000000-0000-4000-8000-{:012}", i)),
        "json" | "jsonb" => text("{}".into()),
        "xml" => text("<a/>".into()),
        "inet" | "cidr" => text(format!("192.0.2.{}", i % 250)),
        "bytea" => text("\\x00".into()),
        "tsvector" => text("a".into()),
        "bit" | "bit varying" => text("1".into()),
        b if b.ends_with("[]") => text("{}".into()),
        _ if !enum_labels.is_empty() => enum_labels.split(',').next().map(str::to_owned),
        "text" | "character varying" | "character" | "citext" | "name" => {
            let c = column.to_lowercase();
            if c.contains("sha") || c.contains("checksum") || c.contains("fingerprint") {
                text(rng.pick(b"0123456789abcdef", 40))
            } else if c.contains("number") || c.ends_with("_no") || c.contains("reference") {
                text(format!("SO-{:06}", 43_659 + i))
            } else if c.contains("code") || c.contains("sku") {
                text(format!("BK-M{:02}B-{}", i % 90, 38 + i % 10))
            } else if c.contains("url") {
                text(format!("https://example.com/p/{i}"))
            } else {
                text(format!("{} {i}", column.replace('_', " ")))
            }
        }
        _ => None,
    }
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Rows per generated table.
const ROWS: usize = 40;

/// Fills every base table of `db` with generated rows: the truth file's
/// kinds where it names the column, business-like values elsewhere.
/// Constraints that would refuse generic values (checks, uniques, foreign
/// keys) are dropped first: they say nothing about what columns hold.
/// Returns (tables filled, tables that refused their rows).
fn generate(pg: &Postgres, db: &str, rules: &[Rule]) -> (usize, usize) {
    let setup = clsf_tests::psql::superuser_script(pg,
        db,
        "DO $$ DECLARE r record; BEGIN
           -- A partitioned table without partitions takes no rows: give each
           -- list- or range-partitioned one a default partition.
           FOR r IN SELECT c.oid::regclass AS t FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
                    WHERE p.partstrat <> 'h' AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) LOOP
             BEGIN
               EXECUTE format('CREATE TABLE %s PARTITION OF %s DEFAULT', r.t::text || '_clsf_default', r.t);
             EXCEPTION WHEN OTHERS THEN NULL;
             END;
           END LOOP;
           FOR r IN SELECT c.conrelid::regclass AS t, c.conname FROM pg_constraint c
                    JOIN pg_namespace n ON n.oid = c.connamespace
                    WHERE c.contype IN ('c', 'u', 'x', 'f') AND c.conrelid <> 0
                      AND n.nspname NOT IN ('pg_catalog', 'information_schema') LOOP
             BEGIN
               EXECUTE format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I CASCADE', r.t, r.conname);
             EXCEPTION WHEN OTHERS THEN NULL; -- inherited by a partition: dropped with its parent's
             END;
           END LOOP;
           FOR r IN SELECT x.indexrelid::regclass AS i FROM pg_index x
                    JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE x.indisunique AND NOT x.indisprimary
                      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) LOOP
             BEGIN
               EXECUTE format('DROP INDEX IF EXISTS %s', r.i);
             EXCEPTION WHEN OTHERS THEN NULL; -- a partition's index: dropped with its parent's
             END;
           END LOOP;
         END $$;",
    );
    assert!(!setup.stderr.contains("ERROR"), "{}", setup.stderr);
    let columns = pg.superuser_sql(
        db,
        "SELECT n.nspname, c.relname, a.attname,
                CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod)
                     ELSE format_type(a.atttypid, a.atttypmod) END,
                a.attgenerated <> '', a.attidentity = 'a', a.attnotnull,
                COALESCE((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                          FROM pg_enum e WHERE e.enumtypid = a.atttypid), '')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         JOIN pg_type t ON t.oid = a.atttypid
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_%'
         ORDER BY 1, 2, a.attnum",
    );
    type Col = (String, String, bool, bool, bool, String);
    let mut tables: BTreeMap<(String, String), Vec<Col>> = BTreeMap::new();
    for line in columns.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        tables.entry((f[0].into(), f[1].into())).or_default().push((
            f[2].into(),
            f[3].into(),
            f[4] == "t",
            f[5] == "t",
            f[6] == "t",
            f[7].into(),
        ));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut script = String::from("SET session_replication_role = replica;\n");
    let mut attempted = 0;
    'table: for ((schema, table), cols) in &tables {
        let mut names = Vec::new();
        let mut rows: Vec<Vec<String>> = vec![Vec::new(); ROWS];
        let overriding = cols.iter().any(|c| c.3);
        for (name, type_name, generated, _, not_null, labels) in cols {
            if *generated {
                continue;
            }
            let base = if type_name.ends_with("[]") {
                "array[]".to_owned()
            } else {
                type_name.split('(').next().unwrap_or("").trim().to_owned()
            };
            let max_len: Option<usize> = type_name
                .split_once('(')
                .filter(|_| base.starts_with("character") || base == "varchar")
                .and_then(|(_, n)| n.trim_end_matches(')').parse().ok());
            let kind = kind_of(rules, &format!("{schema}.{table}.{name}"), type_name);
            names.push(quote_ident(name));
            for (i, row) in rows.iter_mut().enumerate() {
                let value = match kind {
                    Some(k) if family(type_name) == "binary" => {
                        let token = sensitive_value(k, name, i, &mut rng);
                        Some(format!(
                            "\\x{}",
                            token
                                .bytes()
                                .map(|b| format!("{b:02x}"))
                                .collect::<String>()
                        ))
                    }
                    Some(k) if base == "json" || base == "jsonb" => Some(
                        serde_json::Value::String(sensitive_value(k, name, i, &mut rng))
                            .to_string(),
                    ),
                    Some(k)
                        if matches!(family(type_name), "text" | "inet" | "other")
                            || k == "birth_date" =>
                    {
                        Some(sensitive_value(k, name, i, &mut rng))
                    }
                    _ => plain_value(name, &base, labels, i, &mut rng),
                };
                let value = match (value, max_len) {
                    (Some(v), Some(n)) => Some(v.chars().take(n).collect()),
                    (v, _) => v,
                };
                match value {
                    Some(v) => row.push(quote_literal(&v)),
                    None if !not_null => row.push("NULL".into()),
                    None => continue 'table,
                }
            }
        }
        attempted += 1;
        let values: Vec<String> = rows.iter().map(|r| format!("({})", r.join(", "))).collect();
        let _ = writeln!(
            script,
            "INSERT INTO {}.{} ({}){} VALUES {};",
            quote_ident(schema),
            quote_ident(table),
            names.join(", "),
            if overriding {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            },
            values.join(", ")
        );
    }
    // From a file: a script this size through a pipe would fill psql's
    // output pipe while the test is still writing its input.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    let run = clsf_tests::postgres::psql()
        .arg(pg.superuser_conninfo(db))
        .args(["-X", "-q", "-f"])
        .arg(file.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let errors: std::collections::BTreeSet<&str> = stderr
        .lines()
        .filter_map(|l| l.split_once("ERROR:").map(|(_, e)| e.trim()))
        .collect();
    eprintln!("{db}: refused rows: {errors:#?}");
    let refused = stderr.matches("ERROR:").count();
    (attempted - refused, refused)
}

/// Lets the gateway role read every table, as `suggest`'s role must.
fn grant_reads(pg: &Postgres, db: &str) {
    clsf_tests::psql::superuser_script(pg,
        db,
        &format!(
            "DO $$ DECLARE s text; BEGIN
               FOR s IN SELECT nspname FROM pg_namespace
                        WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_%' LOOP
                 EXECUTE format('GRANT USAGE ON SCHEMA %I TO {GATEWAY_ROLE}', s);
                 EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {GATEWAY_ROLE}', s);
               END LOOP;
             END $$; ANALYZE;"
        ),
    );
}

/// Runs `clsfc suggest`, checks its output compiles against the lock, and
/// returns (the plan's explicitly classified columns, stdout+stderr+file).
fn suggest(url: &str, lock: &Path, dir: &Path, extra: &[&str]) -> (Vec<String>, String) {
    let policy = dir.join("suggested");
    std::fs::create_dir_all(&policy).unwrap();
    let file = policy.join("suggested.clsf");
    let out = Command::new(bin("clsfc"))
        .args(["suggest", "--database-url", url, "--seed", "7", "-o"])
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "clsfc suggest failed: {stderr}");
    let text = std::fs::read_to_string(&file).unwrap();
    let compiled = load::compile_dir(&policy, lock).unwrap();
    let errors: Vec<_> = compiled
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{text}");
    let plan = compiled.plan.unwrap();
    let mut proposed = Vec::new();
    for (ri, relation) in plan.schema.relations_with_ids() {
        for (ci, column) in relation.columns_with_ids() {
            if plan.classes[ri][ci].origin == Origin::Explicit {
                proposed.push(format!(
                    "{}.{}.{}",
                    relation.schema, relation.name, column.name
                ));
            }
        }
    }
    let all = format!("{}{stderr}{text}", String::from_utf8_lossy(&out.stdout));
    (proposed, all)
}

struct Score {
    name: &'static str,
    data: String,
    columns: usize,
    truth: usize,
    proposed: usize,
    true_positives: usize,
    false_positives: Vec<String>,
    false_negatives: Vec<String>,
}

fn score(
    name: &'static str,
    data: String,
    schema: &Schema,
    rules: &[Rule],
    proposed: &[String],
) -> Score {
    let mut s = Score {
        name,
        data,
        columns: 0,
        truth: 0,
        proposed: proposed.len(),
        true_positives: 0,
        false_positives: Vec::new(),
        false_negatives: Vec::new(),
    };
    for relation in schema.relations.iter().filter(|r| is_suggested(r)) {
        for column in &relation.columns {
            s.columns += 1;
            let q = format!("{}.{}.{}", relation.schema, relation.name, column.name);
            let sensitive = kind_of(rules, &q, column.value_type()).is_some();
            let flagged = proposed.contains(&q);
            s.truth += usize::from(sensitive);
            match (sensitive, flagged) {
                (true, true) => s.true_positives += 1,
                (false, true) => s.false_positives.push(q),
                (true, false) => s.false_negatives.push(q),
                (false, false) => {}
            }
        }
    }
    s
}

fn table(scores: &[Score]) -> String {
    let mut t = String::from(
        "| schema | data | columns | sensitive | proposed | precision | recall |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for s in scores {
        let precision = s.true_positives as f64 / s.proposed.max(1) as f64;
        let recall = s.true_positives as f64 / s.truth.max(1) as f64;
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} |",
            s.name, s.data, s.columns, s.truth, s.proposed, precision, recall
        );
    }
    t
}

/// The precision/recall table in the README is the one this test computes
/// (set `CLSF_UPDATE_README=1` to write a changed one).
#[test]
fn suggestions_on_the_vendored_schemas_match_the_readme_table() {
    let pg = shared::cluster();
    let work = tempfile::tempdir().unwrap();
    let mut scores = Vec::new();
    // CLSF_SUGGEST_ONLY=gitlab measures one schema (and then fails on the
    // table: it is for reading the false positives and negatives).
    let only = std::env::var("CLSF_SUGGEST_ONLY").ok();
    for name in shared::SCHEMAS
        .iter()
        .filter(|n| only.as_deref().is_none_or(|o| o == **n))
    {
        let started = Instant::now();
        let db = shared::database(&pg, name);
        let rules = truth(name);
        let data = match *name {
            "pagila" => {
                pg.run_file(&db, &shared::dir().join("pagila/pagila-data.sql"), true);
                "its own".to_owned()
            }
            "chinook" => "its own".to_owned(),
            _ => {
                let (filled, refused) = generate(&pg, &db, &rules);
                eprintln!("{name}: {filled} tables filled, {refused} refused generated rows");
                format!("generated, {ROWS} rows × {filled} tables")
            }
        };
        grant_reads(&pg, &db);
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let lock = dir.join("schema.lock.json");
        pull_lock_from(&pg.url_for(&db), &lock);
        let (proposed, _) = suggest(
            &pg.url_for(&db),
            &lock,
            &dir,
            &["--sample", "200", "--budget", "120"],
        );
        let schema = load::read_lock(&lock).unwrap();
        let s = score(name, data, &schema, &rules, &proposed);
        eprintln!(
            "{name} ({:?}): false positives {:#?}\nfalse negatives {:#?}",
            started.elapsed(),
            s.false_positives,
            s.false_negatives
        );
        scores.push(s);
    }
    let computed = table(&scores);
    let readme_path = repo_root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (start, end) = ("<!-- suggest-table -->\n", "<!-- /suggest-table -->");
    let from = readme
        .find(start)
        .expect("README has the suggest table markers")
        + start.len();
    let to = readme.find(end).expect("README has the end marker");
    if readme[from..to] != computed {
        if std::env::var_os("CLSF_UPDATE_README").is_some() {
            std::fs::write(
                &readme_path,
                format!("{}{computed}{}", &readme[..from], &readme[to..]),
            )
            .unwrap();
        } else {
            panic!("the README's suggest table differs from the measured one:\n{computed}");
        }
    }
}

/// A large table is read through a page sample, a locked table is skipped
/// when its share of the budget runs out, the whole run stays within the
/// budget, and no sampled value reaches standard output, standard error or
/// the written file.
#[test]
fn sampling_keeps_its_budget_and_never_prints_a_value() {
    let pg = Postgres::start();
    clsf_tests::psql::superuser_script(&pg,
        "shop",
        &format!(
            "CREATE TABLE big (id bigint, email text, note text);
             INSERT INTO big SELECT g, 'person' || g || '@secret-domain-' || g || '.example', 'plain note ' || g
               FROM generate_series(1, 300000) g;
             CREATE TABLE cards (id int, card text, pin text);
             INSERT INTO cards VALUES (1, '4111 1111 1111 1111', 'zq7-canary-8812'),
               (2, '4012888888881881', 'zq7-canary-8813'), (3, '5105-1051-0510-5100', 'zq7-canary-8814'),
               (4, '378282246310005', 'zq7-canary-8815');
             CREATE TABLE shrunk (id int, contact text) WITH (autovacuum_enabled = false);
             INSERT INTO shrunk SELECT g, 'shrunk' || g || '@example.org' FROM generate_series(1, 100000) g;
             CREATE TABLE held (id int, email text);
             INSERT INTO held VALUES (1, 'held-canary@example.org');
             GRANT SELECT ON big, cards, held, shrunk TO {GATEWAY_ROLE};
             ANALYZE;
             DELETE FROM shrunk WHERE id > 10;"
        ),
    );
    // Another session holds an exclusive lock on `held` for the whole run.
    let mut holder = clsf_tests::postgres::psql()
        .arg(pg.superuser_conninfo("shop"))
        .args([
            "-X",
            "-q",
            "-c",
            "BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg
        .superuser_sql("shop", "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'held' AND l.granted")
        .trim()
        == "0"
    {
        assert!(Instant::now() < deadline, "the lock was not taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let work = tempfile::tempdir().unwrap();
    let lock = work.path().join("schema.lock.json");
    pull_lock_from(&pg.gateway_url(), &lock);
    let started = Instant::now();
    let (proposed, printed) = suggest(
        &pg.gateway_url(),
        &lock,
        work.path(),
        &["--sample", "100", "--budget", "2"],
    );
    let elapsed = started.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        elapsed < Duration::from_secs(6),
        "suggest took {elapsed:?} with a 2 s budget"
    );
    assert!(
        proposed.contains(&"public.big.email".to_owned()),
        "{printed}"
    );
    assert!(
        proposed.contains(&"public.cards.card".to_owned()),
        "{printed}"
    );
    // Its statistics still say 100 000 rows, its pages are nearly all dead:
    // the page sample finds almost nothing and the fallback reads the ten.
    assert!(
        proposed.contains(&"public.shrunk.contact".to_owned()),
        "{printed}"
    );
    assert!(
        printed.contains("100 % of 10 sampled values are e-mail addresses"),
        "{printed}"
    );
    assert!(
        printed.contains("public.held: its share of the time budget"),
        "the locked table is reported as skipped:\n{printed}"
    );
    assert!(
        printed.contains("of 100 sampled values are e-mail addresses"),
        "{printed}"
    );
    for secret in [
        "@secret-domain-",
        "1111 1111",
        "4012888888881881",
        "5105-1051",
        "378282246310005",
        "zq7-canary",
        "held-canary",
        "plain note",
        "shrunk1",
    ] {
        assert!(
            !printed.contains(secret),
            "a sampled value was printed: {secret}\n{printed}"
        );
    }
}

/// `clsfc init` on a fresh database writes a starter that `clsfc check`,
/// `clsfc test`, `clsfc fmt --check` and `clsf-proxy check-config` accept
/// unchanged, with test cases drawn from the suggestions, and refuses to
/// write into a directory that is not empty.
#[test]
fn init_writes_a_starter_that_checks_and_tests_green() {
    let pg = Postgres::start();
    clsf_tests::psql::superuser_script(&pg,
        "shop",
        &format!(
            "CREATE TABLE customers (id int PRIMARY KEY, contact text, card text, notes text);
             INSERT INTO customers SELECT g, 'c' || g || '@shop.example', '4111 1111 1111 1111', 'note ' || g
               FROM generate_series(1, 50) g;
             CREATE TABLE orders (id int PRIMARY KEY, status text);
             GRANT SELECT ON customers, orders TO {GATEWAY_ROLE};"
        ),
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("starter");
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(bin(program))
            .args(args)
            .env("CLSF_UPSTREAM_PASSWORD", "not-used-by-check-config")
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let out = Command::new(bin("clsfc"))
        .args(["init", "--database-url", &pg.gateway_url()])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in [
        "schema.lock.json",
        "policy/main.clsf",
        "policy/suggested.clsf",
        "policy/main.test.toml",
        "proxy.toml",
        ".github/workflows/clsf.yml",
        ".gitlab/clsf.gitlab-ci.yml",
    ] {
        assert!(dir.join(file).is_file(), "{file} written");
    }
    let suggested = std::fs::read_to_string(dir.join("policy/suggested.clsf")).unwrap();
    // `clsfc fmt` aligns the classifications; compare them word by word.
    let suggested = suggested
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        suggested.contains("contact: confidential [pii] mask email"),
        "{suggested}"
    );
    assert!(
        suggested.contains("card: restricted [pci] mask last(4)"),
        "{suggested}"
    );
    assert!(
        !suggested.contains("shop.example") && !suggested.contains("4111"),
        "{suggested}"
    );
    let cases = std::fs::read_to_string(dir.join("policy/main.test.toml")).unwrap();
    assert_eq!(cases.matches("[[case]]").count(), 5, "{cases}");

    let (code, text) = run(
        "clsfc",
        &["check", "policy", "--schema", "schema.lock.json"],
    );
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run("clsfc", &["test", "policy", "--schema", "schema.lock.json"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("5 passed") || text.contains("5/5"), "{text}");
    let (code, text) = run("clsfc", &["fmt", "--check", "policy"]);
    assert_eq!(code, Some(0), "{text}");
    // check-config fetches each issuer's keys, and tests reach nothing but
    // loopback: the hosted issuers' key URLs become the local key file.
    clsf_tests::identity::Issuer::new("k1").write_jwks(&dir.join("cluster-jwks.json"));
    let config = std::fs::read_to_string(dir.join("proxy.toml")).unwrap();
    let offline: String = config
        .lines()
        .map(|l| {
            if l.starts_with("jwks_url") {
                "jwks_file = \"cluster-jwks.json\""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        offline.matches("cluster-jwks.json\"").count(),
        3,
        "{offline}"
    );
    std::fs::write(dir.join("proxy-offline.toml"), offline).unwrap();
    let (code, text) = run("clsf-proxy", &["check-config", "proxy-offline.toml"]);
    assert_eq!(code, Some(0), "{text}");

    // With the starter as the existing policy, nothing is left to propose
    // and nothing disagrees.
    let (code, text) = run(
        "clsfc",
        &[
            "suggest",
            "--database-url",
            &pg.gateway_url(),
            "--policy",
            "policy",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("0 proposal(s), 0 disagreement(s)"), "{text}");

    let again = Command::new(bin("clsfc"))
        .args(["init", "--database-url", &pg.gateway_url()])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
}
