//! `schema.lock.json`: the schema as a sorted, stable, diffable artifact with
//! a content hash. Serde lives here, on the artifact types, and nowhere on
//! the model.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::{Column, Relation, RelationKind, Schema};

/// Lock file format version.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    format_version: u32,
    server_version: String,
    content_hash: String,
    relations: Vec<LockRelation>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockRelation {
    schema: String,
    name: String,
    kind: String,
    columns: Vec<LockColumn>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockColumn {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    nullable: bool,
}

/// Why a lock file could not be read.
#[derive(Debug)]
pub struct LockError(String);

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LockError {}

fn relations_json(schema: &Schema) -> Vec<LockRelation> {
    schema
        .relations
        .iter()
        .map(|r| LockRelation {
            schema: r.schema.clone(),
            name: r.name.clone(),
            kind: r.kind.as_str().to_owned(),
            columns: r
                .columns
                .iter()
                .map(|c| LockColumn {
                    name: c.name.clone(),
                    type_name: c.type_name.clone(),
                    nullable: c.nullable,
                })
                .collect(),
        })
        .collect()
}

fn hash_of(server_version: &str, relations: &[LockRelation]) -> String {
    let body = serde_json::to_vec(&(server_version, relations)).expect("lock relations serialize");
    hex::encode(Sha256::digest(&body))
}

/// Serializes a schema to lock-file text (pretty JSON, trailing newline).
pub fn to_string(schema: &Schema) -> String {
    let relations = relations_json(schema);
    let lock = LockFile {
        format_version: FORMAT_VERSION,
        server_version: schema.server_version.clone(),
        content_hash: hash_of(&schema.server_version, &relations),
        relations,
    };
    let mut text = serde_json::to_string_pretty(&lock).expect("lock file serializes");
    text.push('\n');
    text
}

/// The content hash recorded for a schema.
pub fn content_hash(schema: &Schema) -> String {
    hash_of(&schema.server_version, &relations_json(schema))
}

/// Parses lock-file text, checking its version and content hash.
pub fn from_str(text: &str) -> Result<Schema, LockError> {
    let lock: LockFile =
        serde_json::from_str(text).map_err(|e| LockError(format!("invalid lock file: {e}")))?;
    if lock.format_version != FORMAT_VERSION {
        return Err(LockError(format!(
            "unsupported lock file format version {} (this clsfc reads version {FORMAT_VERSION})",
            lock.format_version
        )));
    }
    let expected = hash_of(&lock.server_version, &lock.relations);
    if expected != lock.content_hash {
        return Err(LockError(
            "lock file content hash does not match its content; it was edited by hand or corrupted (pull it again with `clsfc schema pull`)".to_owned(),
        ));
    }
    let mut relations = Vec::with_capacity(lock.relations.len());
    for r in lock.relations {
        let kind = RelationKind::parse(&r.kind).ok_or_else(|| {
            LockError(format!(
                "unknown relation kind `{}` for {}.{}",
                r.kind, r.schema, r.name
            ))
        })?;
        relations.push(Relation {
            schema: r.schema,
            name: r.name,
            kind,
            columns: r
                .columns
                .into_iter()
                .map(|c| Column {
                    name: c.name,
                    type_name: c.type_name,
                    nullable: c.nullable,
                })
                .collect(),
        });
    }
    Ok(Schema::new(lock.server_version, relations))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Schema {
        Schema::new(
            "15.0".into(),
            vec![Relation {
                schema: "public".into(),
                name: "t".into(),
                kind: RelationKind::Table,
                columns: vec![Column {
                    name: "a".into(),
                    type_name: "integer".into(),
                    nullable: false,
                }],
            }],
        )
    }

    #[test]
    fn round_trip_is_stable() {
        let text = to_string(&sample());
        let again = to_string(&from_str(&text).unwrap());
        assert_eq!(text, again);
    }

    #[test]
    fn tampered_lock_is_rejected() {
        let text = to_string(&sample()).replace("integer", "text");
        let err = from_str(&text).unwrap_err().to_string();
        assert!(err.contains("content hash"), "{err}");
    }
}
