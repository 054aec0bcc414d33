//! Schema discovery from a live PostgreSQL catalog.
//!
//! Every query runs in one `REPEATABLE READ` read-only transaction, so the
//! lock describes one consistent snapshot even while DDL runs.

use std::collections::HashMap;

use tokio_postgres::Client;

use clsf_engine::schema::model::{
    Column, ForeignKey, Function, OwnedBy, QualifiedName, Relation, RelationKind, Schema, TypeKind,
    UserType,
};

pub use crate::error::PullError;

/// Schemas that belong to PostgreSQL itself and are never pulled.
const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "information_schema", "pg_toast"];

/// The namespaces pulled: `$1` system schemas, `$2` the `--schema` list
/// (empty for all). `n` is the namespace of the object.
const NAMESPACE_FILTER: &str = "n.nspname <> ALL($1)
  AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
  AND (cardinality($2::text[]) = 0 OR n.nspname = ANY($2))";

fn relations_sql() -> String {
    format!(
        "SELECT n.nspname, c.relname, c.relkind::text, pg_catalog.pg_get_userbyid(c.relowner),
       c.relispartition,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid, true) END
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {NAMESPACE_FILTER}"
    )
}

fn columns_sql() -> String {
    format!(
        "SELECT n.nspname, c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
       NOT a.attnotnull, a.atttypid, t.typelem
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {NAMESPACE_FILTER}
ORDER BY n.nspname, c.relname, a.attnum"
    )
}

/// Every domain (wherever defined: a pulled column may use one from any
/// schema) with the type it resolves to through chains of domains. The
/// outermost type modifier wins, as in PostgreSQL's `getBaseTypeAndTypmod`.
const DOMAINS_SQL: &str = "
WITH RECURSIVE chain(oid, base, typmod, depth) AS (
  SELECT t.oid, t.typbasetype, t.typtypmod, 1 FROM pg_catalog.pg_type t WHERE t.typtype = 'd'
  UNION ALL
  SELECT c.oid, t.typbasetype, CASE WHEN c.typmod <> -1 THEN c.typmod ELSE t.typtypmod END, c.depth + 1
  FROM chain c JOIN pg_catalog.pg_type t ON t.oid = c.base AND t.typtype = 'd'
)
SELECT DISTINCT ON (c.oid) c.oid, pg_catalog.format_type(c.base, NULLIF(c.typmod, -1)),
       n.nspname, pg_catalog.format_type(c.oid, NULL), t.typnotnull
FROM chain c
JOIN pg_catalog.pg_type t ON t.oid = c.oid
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
ORDER BY c.oid, c.depth DESC";

fn enums_sql() -> String {
    format!(
        "SELECT n.nspname, pg_catalog.format_type(t.oid, NULL),
       COALESCE(array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                FILTER (WHERE e.enumlabel IS NOT NULL), '{{}}')
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_enum e ON e.enumtypid = t.oid
WHERE t.typtype = 'e' AND {NAMESPACE_FILTER}
GROUP BY 1, 2"
    )
}

fn composites_sql() -> String {
    format!(
        "SELECT n.nspname, pg_catalog.format_type(t.oid, NULL), a.attname,
       pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_class c ON c.oid = t.typrelid AND c.relkind = 'c'
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE {NAMESPACE_FILTER}
ORDER BY 1, 2, a.attnum"
    )
}

fn keys_sql() -> String {
    format!(
        "SELECT n.nspname, c.relname, con.conname, con.contype::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.i),
       fn.nspname, fc.relname,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
             ORDER BY k.i)
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.contype IN ('p', 'f') AND {NAMESPACE_FILTER}"
    )
}

fn inherits_sql() -> String {
    format!(
        "SELECT n.nspname, c.relname, pn.nspname, p.relname
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid AND c.relkind IN ('r', 'p', 'f')
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE {NAMESPACE_FILTER}
ORDER BY 1, 2, i.inhseqno"
    )
}

/// Sequences owned by a column: `serial` (an automatic dependency) and
/// identity columns (an internal one), or `ALTER SEQUENCE … OWNED BY`.
fn owned_sequences_sql() -> String {
    format!(
        "SELECT n.nspname, s.relname, tn.nspname, t.relname, a.attname
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
  AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 AND {NAMESPACE_FILTER}"
    )
}

fn functions_sql() -> String {
    format!(
        "SELECT n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
       COALESCE(pg_catalog.pg_get_function_result(p.oid), ''), pg_catalog.pg_get_userbyid(p.proowner)
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.prosecdef AND {NAMESPACE_FILTER}"
    )
}

/// Reads all user relations, types and `SECURITY DEFINER` functions
/// (optionally only those in `only_schemas`).
pub async fn pull(database_url: &str, only_schemas: &[String]) -> Result<Schema, PullError> {
    let client = crate::connect::connect(database_url).await?;
    let result = read_catalog(&client, only_schemas).await;
    drop(client);
    result
}

async fn read_catalog(client: &Client, only_schemas: &[String]) -> Result<Schema, PullError> {
    let failed = |what: &'static str| {
        move |e: tokio_postgres::Error| PullError(format!("cannot read {what}: {e}"))
    };
    client
        // With only pg_catalog on the search path, `format_type` and
        // `pg_get_viewdef` qualify every user object, so the lock does not
        // depend on the pulling role's search path.
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = pg_catalog",
        )
        .await
        .map_err(failed("the catalog"))?;
    let server_version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .map_err(failed("server_version"))?
        .get(0);
    let system: Vec<String> = SYSTEM_SCHEMAS.iter().map(|s| (*s).to_owned()).collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&system, &only_schemas];

    // Domains: base types for columns, and lock entries for pulled schemas.
    let mut domain_base: HashMap<u32, String> = HashMap::new();
    let mut types: Vec<UserType> = Vec::new();
    let pulled = |schema: &str| {
        !SYSTEM_SCHEMAS.contains(&schema)
            && !schema.starts_with("pg_temp_")
            && !schema.starts_with("pg_toast_temp_")
            && (only_schemas.is_empty() || only_schemas.iter().any(|s| s == schema))
    };
    for row in client
        .query(DOMAINS_SQL, &[])
        .await
        .map_err(failed("domains"))?
    {
        let base: String = row.get(1);
        domain_base.insert(row.get(0), base.clone());
        let schema: String = row.get(2);
        if pulled(&schema) {
            types.push(UserType {
                schema,
                name: row.get(3),
                kind: TypeKind::Domain {
                    base,
                    not_null: row.get(4),
                },
            });
        }
    }
    for row in client
        .query(&enums_sql(), &params)
        .await
        .map_err(failed("enums"))?
    {
        types.push(UserType {
            schema: row.get(0),
            name: row.get(1),
            kind: TypeKind::Enum(row.get(2)),
        });
    }
    for row in client
        .query(&composites_sql(), &params)
        .await
        .map_err(failed("composite types"))?
    {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        let attribute = (row.get(2), row.get(3));
        match types.last_mut() {
            Some(UserType {
                schema: s,
                name: n,
                kind: TypeKind::Composite(attrs),
            }) if *s == schema && *n == name => attrs.push(attribute),
            _ => types.push(UserType {
                schema,
                name,
                kind: TypeKind::Composite(vec![attribute]),
            }),
        }
    }

    let mut relations: Vec<Relation> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for row in client
        .query(&relations_sql(), &params)
        .await
        .map_err(failed("relations"))?
    {
        let kind = match row.get::<_, String>(2).as_str() {
            "r" => RelationKind::Table,
            "p" => RelationKind::PartitionedTable,
            "v" => RelationKind::View,
            "m" => RelationKind::MaterializedView,
            "S" => RelationKind::Sequence,
            _ => RelationKind::ForeignTable,
        };
        let relation = Relation {
            schema: row.get(0),
            name: row.get(1),
            kind,
            owner: row.get(3),
            partition: row.get(4),
            definition: row.get(5),
            ..Relation::default()
        };
        index.insert(
            (relation.schema.clone(), relation.name.clone()),
            relations.len(),
        );
        relations.push(relation);
    }
    let find = |schema: String, name: String| index.get(&(schema, name)).copied();

    for row in client
        .query(&columns_sql(), &params)
        .await
        .map_err(failed("columns"))?
    {
        let Some(ri) = find(row.get(0), row.get(1)) else {
            continue;
        };
        let type_oid: u32 = row.get(5);
        let element: u32 = row.get(6);
        let base_type = domain_base.get(&type_oid).cloned().or_else(|| {
            domain_base
                .get(&element)
                .filter(|_| element != 0)
                .map(|b| format!("{b}[]"))
        });
        relations[ri].columns.push(Column {
            name: row.get(2),
            type_name: row.get(3),
            nullable: row.get(4),
            base_type,
        });
    }
    for row in client
        .query(&owned_sequences_sql(), &params)
        .await
        .map_err(failed("sequence owners"))?
    {
        let Some(ri) = find(row.get(0), row.get(1)) else {
            continue;
        };
        relations[ri].owned_by = Some(OwnedBy {
            relation: QualifiedName {
                schema: row.get(2),
                name: row.get(3),
            },
            column: row.get(4),
        });
    }
    for row in client
        .query(&keys_sql(), &params)
        .await
        .map_err(failed("keys"))?
    {
        let Some(ri) = find(row.get(0), row.get(1)) else {
            continue;
        };
        let columns: Vec<String> = row.get(4);
        if row.get::<_, String>(3) == "p" {
            relations[ri].primary_key = columns;
        } else {
            relations[ri].foreign_keys.push(ForeignKey {
                name: row.get(2),
                columns,
                references: QualifiedName {
                    schema: row.get(5),
                    name: row.get(6),
                },
                referenced_columns: row.get(7),
            });
        }
    }
    for row in client
        .query(&inherits_sql(), &params)
        .await
        .map_err(failed("inheritance"))?
    {
        if let Some(ri) = find(row.get(0), row.get(1)) {
            relations[ri].parents.push(QualifiedName {
                schema: row.get(2),
                name: row.get(3),
            });
        }
    }
    let mut functions = Vec::new();
    for row in client
        .query(&functions_sql(), &params)
        .await
        .map_err(failed("functions"))?
    {
        functions.push(Function {
            schema: row.get(0),
            name: row.get(1),
            arguments: row.get(2),
            result: row.get(3),
            owner: row.get(4),
        });
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(failed("the catalog"))?;
    for r in &mut relations {
        r.foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(Schema::new(server_version, relations).with_objects(types, functions))
}
