//! `schema.lock.json`: the schema as a sorted, stable, diffable artifact with
//! a content hash. Serde lives here, on the artifact types, and nowhere on
//! the model.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::{
    Column, ForeignKey, Function, OwnedBy, QualifiedName, Relation, RelationKind, Schema, TypeKind,
    UserType,
};

/// Lock file format version.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    format_version: u32,
    server_version: String,
    content_hash: String,
    relations: Vec<LockRelation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    types: Vec<LockType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    security_definer_functions: Vec<LockFunction>,
}

/// Everything the content hash covers besides the server version.
#[derive(Serialize)]
struct LockBody<'a> {
    relations: &'a [LockRelation],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    types: &'a [LockType],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    security_definer_functions: &'a [LockFunction],
}

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockRelation {
    schema: String,
    name: String,
    kind: String,
    owner: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    inherits: Vec<QualifiedName>,
    #[serde(default, skip_serializing_if = "is_false")]
    partition: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    primary_key: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    foreign_keys: Vec<LockForeignKey>,
    columns: Vec<LockColumn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    definition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owned_by: Option<OwnedBy>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockColumn {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_type: Option<String>,
    nullable: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockForeignKey {
    name: String,
    columns: Vec<String>,
    references: QualifiedName,
    referenced_columns: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockType {
    schema: String,
    name: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_type: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    not_null: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<LockAttribute>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockAttribute {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFunction {
    schema: String,
    name: String,
    arguments: String,
    result: String,
    owner: String,
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

type Parts = (Vec<LockRelation>, Vec<LockType>, Vec<LockFunction>);

fn parts_of(schema: &Schema) -> Parts {
    let relations = schema
        .relations
        .iter()
        .map(|r| LockRelation {
            schema: r.schema.clone(),
            name: r.name.clone(),
            kind: r.kind.as_str().to_owned(),
            owner: r.owner.clone(),
            inherits: r.parents.clone(),
            partition: r.partition,
            owned_by: r.owned_by.clone(),
            primary_key: r.primary_key.clone(),
            foreign_keys: r
                .foreign_keys
                .iter()
                .map(|f| LockForeignKey {
                    name: f.name.clone(),
                    columns: f.columns.clone(),
                    references: f.references.clone(),
                    referenced_columns: f.referenced_columns.clone(),
                })
                .collect(),
            columns: r
                .columns
                .iter()
                .map(|c| LockColumn {
                    name: c.name.clone(),
                    type_name: c.type_name.clone(),
                    base_type: c.base_type.clone(),
                    nullable: c.nullable,
                })
                .collect(),
            definition: r.definition.clone(),
        })
        .collect();
    let types = schema
        .types
        .iter()
        .map(|t| {
            let mut lt = LockType {
                schema: t.schema.clone(),
                name: t.name.clone(),
                kind: String::new(),
                base_type: None,
                not_null: false,
                labels: Vec::new(),
                attributes: Vec::new(),
            };
            match &t.kind {
                TypeKind::Enum(labels) => {
                    lt.kind = "enum".into();
                    lt.labels = labels.clone();
                }
                TypeKind::Domain { base, not_null } => {
                    lt.kind = "domain".into();
                    lt.base_type = Some(base.clone());
                    lt.not_null = *not_null;
                }
                TypeKind::Composite(attrs) => {
                    lt.kind = "composite".into();
                    lt.attributes = attrs
                        .iter()
                        .map(|(n, t)| LockAttribute {
                            name: n.clone(),
                            type_name: t.clone(),
                        })
                        .collect();
                }
            }
            lt
        })
        .collect();
    let security_definer_functions = schema
        .functions
        .iter()
        .map(|f| LockFunction {
            schema: f.schema.clone(),
            name: f.name.clone(),
            arguments: f.arguments.clone(),
            result: f.result.clone(),
            owner: f.owner.clone(),
        })
        .collect();
    (relations, types, security_definer_functions)
}

fn hash_of(
    server_version: &str,
    relations: &[LockRelation],
    types: &[LockType],
    functions: &[LockFunction],
) -> String {
    let body = LockBody {
        relations,
        types,
        security_definer_functions: functions,
    };
    let bytes = serde_json::to_vec(&(server_version, body)).expect("lock body serializes");
    hex::encode(Sha256::digest(&bytes))
}

/// Serializes a schema to lock-file text (pretty JSON, trailing newline).
pub fn to_string(schema: &Schema) -> String {
    let (relations, types, functions) = parts_of(schema);
    let lock = LockFile {
        format_version: FORMAT_VERSION,
        server_version: schema.server_version.clone(),
        content_hash: hash_of(&schema.server_version, &relations, &types, &functions),
        relations,
        types,
        security_definer_functions: functions,
    };
    let mut text = serde_json::to_string_pretty(&lock).expect("lock file serializes");
    text.push('\n');
    text
}

/// The content hash recorded for a schema.
pub fn content_hash(schema: &Schema) -> String {
    let (relations, types, functions) = parts_of(schema);
    hash_of(&schema.server_version, &relations, &types, &functions)
}

/// Parses lock-file text, checking its version and content hash.
pub fn from_str(text: &str) -> Result<Schema, LockError> {
    let lock: LockFile =
        serde_json::from_str(text).map_err(|e| LockError(format!("invalid lock file: {e}")))?;
    if lock.format_version != FORMAT_VERSION {
        return Err(LockError(format!(
            "unsupported lock file format version {} (this clsfc reads version {FORMAT_VERSION}; pull it again with `clsfc schema pull`)",
            lock.format_version
        )));
    }
    let expected = hash_of(
        &lock.server_version,
        &lock.relations,
        &lock.types,
        &lock.security_definer_functions,
    );
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
        let foreign_keys = r
            .foreign_keys
            .into_iter()
            .map(|f| ForeignKey {
                name: f.name,
                columns: f.columns,
                references: f.references,
                referenced_columns: f.referenced_columns,
            })
            .collect();
        relations.push(Relation {
            schema: r.schema,
            name: r.name,
            kind,
            owner: r.owner,
            parents: r.inherits,
            partition: r.partition,
            definition: r.definition,
            primary_key: r.primary_key,
            foreign_keys,
            owned_by: r.owned_by,
            columns: r
                .columns
                .into_iter()
                .map(|c| Column {
                    name: c.name,
                    type_name: c.type_name,
                    nullable: c.nullable,
                    base_type: c.base_type,
                })
                .collect(),
        });
    }
    let mut types = Vec::with_capacity(lock.types.len());
    for t in lock.types {
        let kind = match t.kind.as_str() {
            "enum" => TypeKind::Enum(t.labels),
            "domain" => TypeKind::Domain {
                base: t
                    .base_type
                    .ok_or_else(|| LockError(format!("domain {} has no base_type", t.name)))?,
                not_null: t.not_null,
            },
            "composite" => TypeKind::Composite(
                t.attributes
                    .into_iter()
                    .map(|a| (a.name, a.type_name))
                    .collect(),
            ),
            other => {
                return Err(LockError(format!(
                    "unknown type kind `{other}` for {}",
                    t.name
                )));
            }
        };
        types.push(UserType {
            schema: t.schema,
            name: t.name,
            kind,
        });
    }
    let functions = lock
        .security_definer_functions
        .into_iter()
        .map(|f| Function {
            schema: f.schema,
            name: f.name,
            arguments: f.arguments,
            result: f.result,
            owner: f.owner,
        })
        .collect();
    Ok(Schema::new(lock.server_version, relations).with_objects(types, functions))
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
                    base_type: None,
                }],
                owner: "postgres".into(),
                parents: vec![QualifiedName {
                    schema: "odd.schema".into(),
                    name: "parent".into(),
                }],
                ..Relation::default()
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
