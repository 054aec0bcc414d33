//! Every built-in mask renders SQL that PostgreSQL runs, for every column
//! type it accepts, and keeps the column's type; `hash` is deterministic,
//! keyed and join-preserving.

use clsf_compiler::masks::{self, Arg, ArgKind, Mask};
use clsf_compiler::schema::TypeFamily;
use clsf_tests::postgres::Postgres;

const TYPES: &[(&str, &str, &str)] = &[
    // (column, type, a non-null value)
    ("c_text", "text", "'ada@example.com'"),
    ("c_varchar", "character varying(19)", "'4111111111111111'"),
    ("c_char", "character(11)", "'123-45-6789'"),
    ("c_int", "integer", "42"),
    ("c_small", "smallint", "7"),
    ("c_big", "bigint", "9000000000"),
    ("c_num", "numeric(10,2)", "1234.56"),
    ("c_float", "double precision", "3.14159"),
    ("c_bool", "boolean", "true"),
    ("c_date", "date", "'1815-12-10'"),
    (
        "c_ts",
        "timestamp without time zone",
        "'2024-05-06 07:08:09'",
    ),
    (
        "c_tstz",
        "timestamp with time zone",
        "'2024-05-06 07:08:09+02'",
    ),
    ("c_uuid", "uuid", "'6f1c1d3e-8f4a-4b7e-9a65-0c9b2f1e7d11'"),
];

fn args_for(kind: &[ArgKind], family: TypeFamily) -> Vec<Arg> {
    kind.iter()
        .map(|k| match (k, family) {
            (ArgKind::Value, TypeFamily::Text) => Arg::Str("n/a".into()),
            (ArgKind::Value, TypeFamily::Date) => Arg::Str("2000-01-01".into()),
            (ArgKind::Value, TypeFamily::Timestamp) => Arg::Str("2000-01-01 00:00:00".into()),
            (ArgKind::Value, TypeFamily::Uuid) => {
                Arg::Str("00000000-0000-0000-0000-000000000001".into())
            }
            (ArgKind::Value, TypeFamily::Bool) => Arg::Bool(false),
            (ArgKind::Int, _) => Arg::Int(-1),
            _ => Arg::Int(3),
        })
        .collect()
}

#[test]
fn every_mask_runs_in_postgres_and_keeps_the_column_type() {
    let pg = Postgres::start();
    let columns: Vec<String> = TYPES.iter().map(|(c, t, _)| format!("{c} {t}")).collect();
    let values: Vec<&str> = TYPES.iter().map(|(_, _, v)| *v).collect();
    pg.superuser_sql(
        "shop",
        &format!(
            "CREATE TABLE m ({}); INSERT INTO m VALUES ({}); INSERT INTO m DEFAULT VALUES;",
            columns.join(", "),
            values.join(", ")
        ),
    );
    let mut checked = 0;
    for spec in masks::CATALOGUE {
        for (column, type_name, _) in TYPES {
            let family = TypeFamily::of(type_name);
            let Ok(mask) = masks::build(spec, &args_for(spec.args, family), family) else {
                continue;
            };
            let sql = mask.to_sql(&format!("\"{column}\""), type_name);
            let out = pg.superuser_sql(
                "shop",
                &format!("{}SELECT pg_typeof({sql})::text = pg_typeof({column})::text, ({sql}) IS NOT DISTINCT FROM {column} FROM m", keyed("test-key")),
            );
            let rows: Vec<&str> = out.lines().collect();
            assert_eq!(rows.len(), 2, "{} on {type_name}: {out}", spec.name);
            for row in &rows {
                assert!(
                    row.starts_with("t|"),
                    "{} on {type_name} changed the type: {out}",
                    spec.name
                );
            }
            // The non-null value must change under every mask but those that
            // may keep short values (first/last with N ≥ length, round, year
            // on a value already at the year's start).
            if !matches!(
                mask,
                Mask::First(_) | Mask::Last(_) | Mask::Round(_) | Mask::Bucket(_) | Mask::Year
            ) {
                assert_eq!(rows[0], "t|f", "{} left {type_name} unchanged", spec.name);
            }
            checked += 1;
        }
    }
    assert!(checked >= 35, "only {checked} mask/type pairs checked");
}

#[test]
fn hash_is_keyed_deterministic_and_preserves_equality() {
    let pg = Postgres::start();
    pg.superuser_sql(
        "shop",
        "CREATE TABLE a (k integer, e text); CREATE TABLE b (k integer, e text); \
         INSERT INTO a VALUES (1, 'x@y'), (2, 'z@y'); INSERT INTO b VALUES (1, 'x@y'), (3, 'q@y');",
    );
    let hash = |col: &str, ty: &str| Mask::Hash.to_sql(col, ty);
    // Joining on the hashed key matches exactly the rows the clear join does.
    let joined = pg.superuser_sql(
        "shop",
        &format!(
            "{}SELECT count(*) FROM a JOIN b ON {} = {}",
            keyed("k1"),
            hash("a.k", "integer"),
            hash("b.k", "integer")
        ),
    );
    assert_eq!(joined.trim(), "1");
    let same = pg.superuser_sql(
        "shop",
        &format!(
            "{}SELECT {} = {} FROM a WHERE k = 1",
            keyed("k1"),
            hash("e", "text"),
            hash("'x@y'", "text")
        ),
    );
    assert_eq!(same.trim(), "t");
    // It is HMAC-SHA256 (RFC 2104): pgcrypto's hmac() agrees, for a short
    // key and for one longer than SHA-256's 64-byte block.
    let long_key = "k".repeat(100);
    for key in ["k1", long_key.as_str()] {
        let agree = pg.superuser_sql(
            "shop",
            &format!(
                "CREATE EXTENSION IF NOT EXISTS pgcrypto; {}SELECT {} = encode(hmac(e, '{key}', 'sha256'), 'hex') FROM a WHERE k = 1",
                keyed(key),
                hash("e", "text")
            ),
        );
        assert_eq!(agree.trim(), "t", "key of {} bytes", key.len());
    }
    // Another key gives other hashes.
    let under = |key: &str| {
        pg.superuser_sql(
            "shop",
            &format!(
                "{}SELECT {} FROM a WHERE k = 1",
                keyed(key),
                hash("e", "text")
            ),
        )
    };
    assert_ne!(under("k1"), under("k2"));
    assert_eq!(under("k1"), under("k1"));
    // The statement text carries no key, in any encoding the test knows.
    let sql = hash("e", "text");
    assert!(!sql.contains(&hex_of("k1")), "{sql}");
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// `SET` statements giving the session the `hash` mask's pads for `key`,
/// as the proxy does with startup parameters.
fn keyed(key: &str) -> String {
    let (ipad, opad) = masks::hash_pads(key);
    format!(
        "SET {} = '{ipad}'; SET {} = '{opad}'; ",
        masks::HASH_IPAD_SETTING,
        masks::HASH_OPAD_SETTING
    )
}
