//! The third-party schemas vendored in `tests/schemas` (see its README),
//! loaded once per harness cluster as template databases, copied for each
//! test that uses one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::bins::repo_root;
use crate::postgres::Postgres;

/// The schemas, by folder name.
pub const SCHEMAS: &[&str] = &["pagila", "chinook", "adventureworks", "gitlab"];

/// `tests/schemas` in the repository.
pub fn dir() -> PathBuf {
    repo_root().join("tests/schemas")
}

/// The cluster the schemas are loaded into, shared by the tests of one
/// process that hold it at the same time: loading GitLab's schema costs
/// PostgreSQL about 9 CPU-seconds, and two tests read it. Each schema is
/// loaded once per cluster into a template database; every [`database`]
/// is a fresh copy of it. When the last holder drops it, the cluster stops.
pub fn cluster() -> Arc<Postgres> {
    static CLUSTER: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());
    let mut held = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pg) = held.upgrade() {
        return pg;
    }
    let pg = Postgres::start();
    // The lock table is shared by the cluster's sessions: the suggest
    // test's one transaction over GitLab's schema (thousands of
    // constraints dropped) ran out of the default 64 × max_connections
    // slots while another test read its copy (53200).
    pg.restart_with("max_locks_per_transaction = 1024");
    let pg = Arc::new(pg);
    *held = Arc::downgrade(&pg);
    pg
}

/// A new database of `pg` (from [`cluster`]) holding schema `name`, for
/// one test to read or change; returns its name.
pub fn database(pg: &Postgres, name: &str) -> String {
    // Held while a schema loads, so two tests never load the same one.
    static LOADING: Mutex<()> = Mutex::new(());
    static COPIES: AtomicUsize = AtomicUsize::new(0);
    assert!(SCHEMAS.contains(&name), "no shared schema `{name}`");
    let template = format!("template_{name}");
    {
        let _loading = LOADING.lock().unwrap_or_else(|e| e.into_inner());
        // Asked of the cluster, not remembered: a later cluster of this
        // process is a new one.
        let present = pg.superuser_sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{template}'"),
        );
        if present.trim() == "0" {
            load(pg, name, &template);
        }
    }
    let copy = format!("{name}_{}", COPIES.fetch_add(1, Ordering::Relaxed));
    // FILE_COPY: GitLab's template copied file by file took 0.21 CPU-seconds
    // against 0.45–0.53 through the WAL (PostgreSQL 15's default).
    pg.superuser_sql(
        "postgres",
        &format!("CREATE DATABASE {copy} TEMPLATE {template} STRATEGY FILE_COPY"),
    );
    copy
}

/// Loads schema `name` into database `template` of `pg`.
fn load(pg: &Postgres, name: &str, template: &str) {
    let dir = dir().join(name);
    match name {
        "pagila" => {
            pg.superuser_sql("postgres", &format!("CREATE DATABASE {template}"));
            pg.run_file(template, &dir.join("pagila-schema.sql"), true);
        }
        // The file creates and connects to its own database `chinook`.
        "chinook" => {
            pg.run_file("postgres", &dir.join("Chinook_PostgreSql.sql"), true);
            pg.superuser_sql(
                "postgres",
                &format!("ALTER DATABASE chinook RENAME TO {template}"),
            );
        }
        // The DDL is complete; its `\copy` lines need CSV files the
        // repository does not ship, so their errors are skipped.
        "adventureworks" => {
            pg.superuser_sql("postgres", &format!("CREATE DATABASE {template}"));
            pg.run_file(template, &dir.join("install.sql"), false);
        }
        "gitlab" => {
            pg.superuser_sql("postgres", &format!("CREATE DATABASE {template}"));
            pg.run_file(template, &dir.join("structure.sql"), true);
        }
        other => panic!("no shared schema `{other}`"),
    }
}
