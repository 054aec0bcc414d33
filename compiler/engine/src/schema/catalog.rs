//! The PostgreSQL catalog relations that expose stored values or statement
//! text, as the policy language sees them (PostgreSQL 15 column lists; a
//! test compares them with a live server). They are not in a pulled lock
//! file; the compiler adds them to the schema it checks against, so that
//! `std::postgres-catalog` (or a policy) can classify them column by column.
//!
//! A catalog relation that no `table` declaration classifies is refused
//! whole by the engine, as before; once classified, its columns are
//! decided like any other (and its unclassified columns get the highest
//! label whatever `unclassified` says).

use super::model::{Column, Relation, RelationKind};

/// (relation, [(column, type)]) in `pg_catalog`.
pub const RELATIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "pg_largeobject",
        &[("loid", "oid"), ("pageno", "integer"), ("data", "bytea")],
    ),
    (
        "pg_stat_activity",
        &[
            ("datid", "oid"),
            ("datname", "name"),
            ("pid", "integer"),
            ("leader_pid", "integer"),
            ("usesysid", "oid"),
            ("usename", "name"),
            ("application_name", "text"),
            ("client_addr", "inet"),
            ("client_hostname", "text"),
            ("client_port", "integer"),
            ("backend_start", "timestamp with time zone"),
            ("xact_start", "timestamp with time zone"),
            ("query_start", "timestamp with time zone"),
            ("state_change", "timestamp with time zone"),
            ("wait_event_type", "text"),
            ("wait_event", "text"),
            ("state", "text"),
            ("backend_xid", "xid"),
            ("backend_xmin", "xid"),
            ("query_id", "bigint"),
            ("query", "text"),
            ("backend_type", "text"),
        ],
    ),
    (
        "pg_statistic",
        &[
            ("starelid", "oid"),
            ("staattnum", "smallint"),
            ("stainherit", "boolean"),
            ("stanullfrac", "real"),
            ("stawidth", "integer"),
            ("stadistinct", "real"),
            ("stakind1", "smallint"),
            ("stakind2", "smallint"),
            ("stakind3", "smallint"),
            ("stakind4", "smallint"),
            ("stakind5", "smallint"),
            ("staop1", "oid"),
            ("staop2", "oid"),
            ("staop3", "oid"),
            ("staop4", "oid"),
            ("staop5", "oid"),
            ("stacoll1", "oid"),
            ("stacoll2", "oid"),
            ("stacoll3", "oid"),
            ("stacoll4", "oid"),
            ("stacoll5", "oid"),
            ("stanumbers1", "real[]"),
            ("stanumbers2", "real[]"),
            ("stanumbers3", "real[]"),
            ("stanumbers4", "real[]"),
            ("stanumbers5", "real[]"),
            ("stavalues1", "anyarray"),
            ("stavalues2", "anyarray"),
            ("stavalues3", "anyarray"),
            ("stavalues4", "anyarray"),
            ("stavalues5", "anyarray"),
        ],
    ),
    (
        "pg_statistic_ext_data",
        &[
            ("stxoid", "oid"),
            ("stxdinherit", "boolean"),
            ("stxdndistinct", "pg_ndistinct"),
            ("stxddependencies", "pg_dependencies"),
            ("stxdmcv", "pg_mcv_list"),
            ("stxdexpr", "pg_statistic[]"),
        ],
    ),
    (
        "pg_stats",
        &[
            ("schemaname", "name"),
            ("tablename", "name"),
            ("attname", "name"),
            ("inherited", "boolean"),
            ("null_frac", "real"),
            ("avg_width", "integer"),
            ("n_distinct", "real"),
            ("most_common_vals", "anyarray"),
            ("most_common_freqs", "real[]"),
            ("histogram_bounds", "anyarray"),
            ("correlation", "real"),
            ("most_common_elems", "anyarray"),
            ("most_common_elem_freqs", "real[]"),
            ("elem_count_histogram", "real[]"),
        ],
    ),
    (
        "pg_stats_ext",
        &[
            ("schemaname", "name"),
            ("tablename", "name"),
            ("statistics_schemaname", "name"),
            ("statistics_name", "name"),
            ("statistics_owner", "name"),
            ("attnames", "name[]"),
            ("exprs", "text[]"),
            ("kinds", "\"char\"[]"),
            ("inherited", "boolean"),
            ("n_distinct", "pg_ndistinct"),
            ("dependencies", "pg_dependencies"),
            ("most_common_vals", "text[]"),
            ("most_common_val_nulls", "boolean[]"),
            ("most_common_freqs", "double precision[]"),
            ("most_common_base_freqs", "double precision[]"),
        ],
    ),
    (
        "pg_stats_ext_exprs",
        &[
            ("schemaname", "name"),
            ("tablename", "name"),
            ("statistics_schemaname", "name"),
            ("statistics_name", "name"),
            ("statistics_owner", "name"),
            ("expr", "text"),
            ("inherited", "boolean"),
            ("null_frac", "real"),
            ("avg_width", "integer"),
            ("n_distinct", "real"),
            ("most_common_vals", "anyarray"),
            ("most_common_freqs", "real[]"),
            ("histogram_bounds", "anyarray"),
            ("correlation", "real"),
            ("most_common_elems", "anyarray"),
            ("most_common_elem_freqs", "real[]"),
            ("elem_count_histogram", "real[]"),
        ],
    ),
];

/// The schema the relations live in.
pub const SCHEMA: &str = "pg_catalog";

/// The catalog relations as schema relations.
pub fn relations() -> Vec<Relation> {
    RELATIONS
        .iter()
        .map(|(name, columns)| Relation {
            schema: SCHEMA.to_owned(),
            name: (*name).to_owned(),
            kind: if name.starts_with("pg_stat")
                && *name != "pg_statistic"
                && *name != "pg_statistic_ext_data"
            {
                RelationKind::View
            } else {
                RelationKind::Table
            },
            columns: columns
                .iter()
                .map(|(c, t)| Column {
                    name: (*c).to_owned(),
                    type_name: (*t).to_owned(),
                    nullable: true,
                    base_type: None,
                })
                .collect(),
            owner: "postgres".to_owned(),
            ..Relation::default()
        })
        .collect()
}

/// True for a type that cannot be the target of a cast (a pseudo-type):
/// a withheld column of such a type is rendered as a NULL of type text.
pub fn is_pseudo_type(type_name: &str) -> bool {
    matches!(
        type_name,
        "anyarray" | "pg_mcv_list" | "pg_ndistinct" | "pg_dependencies"
    )
}
