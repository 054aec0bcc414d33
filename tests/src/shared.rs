//! The third-party schemas vendored in `tests/schemas` (see its README),
//! loaded into a harness cluster, one database each.

use std::path::PathBuf;

use crate::bins::repo_root;
use crate::postgres::Postgres;

/// The schemas, by folder name.
pub const SCHEMAS: &[&str] = &["pagila", "chinook", "adventureworks", "gitlab"];

/// `tests/schemas` in the repository.
pub fn dir() -> PathBuf {
    repo_root().join("tests/schemas")
}

/// Loads schema `name` into a new database and returns the database name.
pub fn load(pg: &Postgres, name: &str) -> String {
    let dir = dir().join(name);
    match name {
        "pagila" => {
            pg.superuser_sql("shop", "CREATE DATABASE pagila");
            pg.run_file("pagila", &dir.join("pagila-schema.sql"), true);
            "pagila".to_owned()
        }
        // The file creates and connects to its own database.
        "chinook" => {
            pg.run_file("shop", &dir.join("Chinook_PostgreSql.sql"), true);
            "chinook".to_owned()
        }
        // The DDL is complete; its `\copy` lines need CSV files the
        // repository does not ship, so their errors are skipped.
        "adventureworks" => {
            pg.superuser_sql("shop", "CREATE DATABASE adventureworks");
            pg.run_file("adventureworks", &dir.join("install.sql"), false);
            "adventureworks".to_owned()
        }
        "gitlab" => {
            pg.superuser_sql("shop", "CREATE DATABASE gitlab");
            pg.run_file("gitlab", &dir.join("structure.sql"), true);
            "gitlab".to_owned()
        }
        other => panic!("no shared schema `{other}`"),
    }
}
