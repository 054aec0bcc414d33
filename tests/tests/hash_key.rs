//! The `hash` mask's key never leaves the proxy in statement text: with
//! `log_statement = all` upstream, masked statements of every kind (simple
//! and extended protocol, cursors, SQL prepared statements, EXPLAIN, COPY)
//! leave no trace of the key in the server log in any encoding, while the
//! hashes stay keyed and stable; no client can read or change the settings
//! that carry it.

use clsf_tests::fixture;
use clsf_tests::psql;
use serde_json::json;

const KEY: &str = "s3cret-hash-key-0123456789";

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group ci { claim repository == "acme/shop" }
group dba-bot { claim groups contains "dba" }

table public.customers: internal {
  email:       confidential mask hash
  card_number: confidential mask last(4)
  ssn:         restricted
}
table public.orders: internal

rule ci_reads for ci {
  allow read <= internal
  allow export <= confidential
  mask  confidential
}
rule dba_reads for dba-bot {
  allow read, write, export <= restricted
  allow ddl, admin
}
"#;

/// Every encoding of the key (and of its HMAC pads) the log could hold.
fn encodings() -> Vec<String> {
    use base64::Engine as _;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (ipad, opad) = clsf_compiler::masks::hash_pads(KEY);
    let mut out = vec![
        KEY.to_owned(),
        hex(KEY.as_bytes()),
        hex(KEY.as_bytes()).to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(KEY),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(KEY),
    ];
    // The pads, whole and by their key-carrying prefix (the rest of each
    // pad is the padding byte repeated).
    for pad in [ipad, opad] {
        out.push(pad[..KEY.len() * 2].to_owned());
        out.push(pad.to_uppercase()[..KEY.len() * 2].to_owned());
        out.push(pad);
    }
    for byte in [0x36u8, 0x5c] {
        let xored: Vec<u8> = KEY.bytes().map(|b| b ^ byte).collect();
        out.push(base64::engine::general_purpose::STANDARD.encode(&xored));
        out.push(String::from_utf8_lossy(&xored).into_owned());
    }
    out
}

#[test]
fn the_hash_key_never_reaches_the_server_in_a_statement() {
    let q = fixture::quickstart(None);
    q.pg.restart_with("log_statement = all\nlog_min_error_statement = error");
    let config = fixture::config_with_policy(&q, POLICY);
    std::fs::write(q.dir.path().join("hash.key"), format!("{KEY}\n")).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[policy]\n", "[policy]\nhash_key_file = \"hash.key\"\n"),
    )
    .unwrap();
    let proxy = clsf_tests::proxy::Proxy::start(&config);
    let ci = q
        .issuer
        .sign(&q.issuer.claims("ci", json!({"repository": "acme/shop"})));

    // Simple protocol, every statement kind that reads the hashed column.
    let out = psql::run(
        proxy.addr,
        &ci,
        "SELECT email FROM customers WHERE id = 1;\n\
         BEGIN;\n\
         DECLARE c CURSOR FOR SELECT id, email FROM customers ORDER BY id;\n\
         FETCH FORWARD 2 FROM c;\n\
         CLOSE c;\n\
         COMMIT;\n\
         PREPARE p(int) AS SELECT email FROM customers WHERE id = $1;\n\
         EXECUTE p(1);\n\
         EXPLAIN (VERBOSE, COSTS OFF) SELECT email FROM customers;\n\
         COPY (SELECT id, email FROM customers WHERE id = 1) TO STDOUT;\n\
         SELECT count(*) FROM customers WHERE email = 'ada@example.com';\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let hashed = lines[0];
    assert_eq!(hashed.len(), 64, "a hex HMAC-SHA256: {}", out.stdout);
    assert!(
        lines.contains(&format!("1|{hashed}").as_str()) && lines.contains(&hashed),
        "the cursor and the prepared statement hash alike: {}",
        out.stdout
    );
    assert!(
        lines.contains(&format!("1\t{hashed}").as_str()),
        "COPY hashes alike: {}{}",
        out.stdout,
        out.stderr
    );
    // The plan shows the rewrite, which names the setting, not its value.
    assert!(
        out.stdout.contains("clsf.hash_opad"),
        "EXPLAIN VERBOSE shows the rewritten expression: {}",
        out.stdout
    );

    // Extended protocol (tokio-postgres prepares and binds).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let extended = runtime.block_on(async {
        let (c, conn) = clsf_tests::client::config(proxy.addr.port(), "w", &ci)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let row = c
            .query_one("SELECT email FROM customers WHERE id = $1", &[&1i32])
            .await
            .unwrap();
        // A setting named by a parameter is read, except the proxy's own.
        for (name, shown) in [
            ("clsf.hash_ipad", false),
            ("CLSF.HASH_OPAD", false),
            ("server_version_num", true),
        ] {
            let value: Option<String> = c
                .query_one("SELECT current_setting($1)", &[&name])
                .await
                .unwrap()
                .get(0);
            assert_eq!(value.is_some(), shown, "{name}: {value:?}");
        }
        row.get::<_, String>(0)
    });
    assert_eq!(extended, hashed, "a new session hashes under the same key");

    // No client reads or changes the settings that carry the key.
    for probe in [
        "SHOW clsf.hash_ipad;",
        "SELECT current_setting('clsf.hash_opad');",
        "SELECT current_setting('clsf.hash_opad', true);",
        "SELECT set_config('clsf.hash_ipad', '00', false);",
        "SET clsf.hash_ipad = '00';",
        "RESET clsf.hash_opad;",
        "SELECT setting FROM pg_settings WHERE name LIKE 'clsf%';",
    ] {
        let out = psql::run(proxy.addr, &ci, probe);
        assert!(
            out.stderr.contains("42501") || out.stdout.trim().is_empty(),
            "{probe} must be refused or show nothing: {}{}",
            out.stdout,
            out.stderr
        );
        for needle in encodings() {
            assert!(!out.stdout.contains(&needle), "{probe} showed the key");
        }
    }
    let all = psql::run(proxy.addr, &ci, "SHOW ALL;");
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert!(
        !all.stdout.contains("clsf."),
        "SHOW ALL lists no proxy setting"
    );
    // An identity that sees everything in clear needs no key and gets none.
    let dba = psql::run(proxy.addr, &q.issuer.dba_token(), "SHOW clsf.hash_ipad;");
    assert!(
        dba.stderr.contains("unrecognized configuration parameter"),
        "{}{}",
        dba.stdout,
        dba.stderr
    );

    let log = q.pg.log();
    assert!(
        log.contains("clsf.hash_opad") && log.contains("DECLARE") && log.contains("EXECUTE"),
        "the statement log is on and holds the rewritten statements"
    );
    for needle in encodings() {
        assert!(
            !log.contains(&needle),
            "the server log holds the key in some encoding ({} characters)",
            needle.len()
        );
    }
    // It is HMAC-SHA256 under the configured key (checked last: this
    // statement itself writes the key to the log).
    let expected = q.pg.superuser_sql(
        "shop",
        &format!(
            "CREATE EXTENSION IF NOT EXISTS pgcrypto; \
             SELECT encode(hmac(email, '{KEY}', 'sha256'), 'hex') FROM customers WHERE id = 1"
        ),
    );
    assert_eq!(hashed, expected.trim());
}
