//! The build output of `clsfc build`: Cedar schema, Cedar policies, Cedar
//! entities, the masking plan, and a manifest with a content hash. The format
//! is described in `spec/plan.md`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cedar::{self, Generated};
use serde_json::json;

use crate::plan::{ApprovalScope, Clause, ClauseKind, Effect, Plan, Target};

#[derive(Serialize)]
struct Manifest {
    format_version: u32,
    compiler_version: &'static str,
    /// Increases with every bundle a team publishes; a proxy refuses to
    /// replace a bundle with an older one unless told to.
    bundle_version: u64,
    content_hash: String,
    files: Vec<(String, String)>,
}

fn target_json(plan: &Plan, target: &Target) -> serde_json::Value {
    match target {
        Target::All => json!({"all": true}),
        Target::Levels(min, max) => json!({
            "labels": (*min..=*max).map(|l| plan.label(l)).collect::<Vec<_>>()
        }),
        Target::Categories(set) => json!({"categories": plan.category_names(*set)}),
        Target::Relation(ri) => json!({"relation": plan.schema.relation(*ri).qualified()}),
        Target::Column(ri, ci) => {
            let rel = plan.schema.relation(*ri);
            json!({"relation": rel.qualified(), "column": rel.columns[*ci].name})
        }
        Target::Functions(names) => json!({"functions": names}),
    }
}

fn clause_json(plan: &Plan, c: &Clause) -> serde_json::Value {
    let mut v = match &c.kind {
        ClauseKind::Access {
            effect,
            actions,
            target,
            mask,
            override_reason,
        } => {
            let mut v = json!({
                "effect": effect.as_str(),
                "actions": actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                "target": target_json(plan, target),
            });
            if let Some(m) = mask {
                v["mask"] = json!(m.display());
            }
            if let Some(r) = override_reason {
                v["override_reason"] = json!(r);
            }
            if let Effect::Approval(a) = effect {
                v["approval"] = json!({
                    "approvers": a.approvers,
                    "ttl_seconds": a.ttl_seconds,
                    "scope": match a.scope {
                        ApprovalScope::Statement => json!("statement"),
                        ApprovalScope::Session(s) => json!({"session_seconds": s}),
                        ApprovalScope::Executions(n) => json!({"executions": n}),
                    },
                    "quorum": a.quorum,
                });
            }
            v
        }
        ClauseKind::Filter {
            relation,
            predicate,
        } => json!({
            "effect": "filter",
            "target": {"relation": plan.schema.relation(*relation).qualified()},
            "predicate": predicate,
        }),
        ClauseKind::Limit { rows, target } => json!({
            "effect": "limit",
            "rows": rows,
            "target": target_json(plan, target),
        }),
    };
    v["policy_id"] = json!(c.policy_id);
    v["location"] = json!(c.location);
    v
}

/// The masking plan as JSON text.
pub fn masking_plan_json(plan: &Plan) -> String {
    let relations: Vec<serde_json::Value> = plan
        .schema
        .relations
        .iter()
        .enumerate()
        .map(|(ri, rel)| {
            let columns: Vec<serde_json::Value> = rel
                .columns
                .iter()
                .enumerate()
                .map(|(ci, col)| {
                    let class = &plan.classes[ri][ci];
                    let mut v = json!({
                        "name": col.name,
                        "type": col.type_name,
                        "label": plan.label(class.level),
                        "origin": class.origin.as_str(),
                    });
                    let cats = plan.category_names(class.categories);
                    if !cats.is_empty() {
                        v["categories"] = json!(cats);
                    }
                    if let Some(m) = &class.mask {
                        v["mask"] = json!(m.display());
                        v["mask_sql"] = json!(m.to_sql(
                            &crate::engine::rewrite::quote_ident(&col.name),
                            &col.type_name
                        ));
                    }
                    v
                })
                .collect();
            json!({"relation": rel.qualified(), "columns": columns})
        })
        .collect();
    let groups: Vec<serde_json::Value> = plan
        .groups
        .iter()
        .map(|g| json!({"name": g.name, "membership": format!("{:?}", g.membership)}))
        .collect();
    let rules: Vec<serde_json::Value> = plan
        .rules
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "group": r.group,
                "observe": r.observe,
                "location": r.location,
                "clauses": r.clauses.iter().map(|c| clause_json(plan, c)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mp = json!({
        "labels": plan.labels,
        "categories": plan.categories,
        "unclassified_label": plan.label(plan.unclassified_level),
        "schema_hash": plan.schema_hash,
        "relations": relations,
        "groups": groups,
        "rules": rules,
    });
    let mut text = serde_json::to_string_pretty(&mp).expect("masking plan serializes");
    text.push('\n');
    text
}

/// Why a bundle could not be written or loaded. Each refusal names what
/// failed, so an operator can tell tampering from a stale build.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The signature is missing, by an untrusted key, or does not verify.
    #[error("bundle {}: {source}", dir.display())]
    Signature {
        /// The bundle.
        dir: PathBuf,
        /// What the check found.
        source: crate::signing::SigningError,
    },
    /// `manifest.json` is not a manifest.
    #[error("{}: not a bundle manifest: {source}", path.display())]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// Why it does not decode.
        source: serde_json::Error,
    },
    /// Another compiler version or bundle format wrote it.
    #[error("bundle {} was built by clsfc {built_by} (format {format}); this proxy needs one built by clsfc {}", dir.display(), env!("CARGO_PKG_VERSION"))]
    Compiler {
        /// The bundle.
        dir: PathBuf,
        /// The compiler version in its manifest.
        built_by: String,
        /// The format version in its manifest.
        format: u32,
    },
    /// Older than the bundle in force: a replay, unless rolled back on purpose.
    #[error("bundle {} has version {version}, older than the version in force ({in_force}): refused as a replay; set [policy] allow_downgrade = true to roll back on purpose", dir.display())]
    Downgrade {
        /// The bundle.
        dir: PathBuf,
        /// Its version.
        version: u64,
        /// The version in force.
        in_force: u64,
    },
    /// The manifest names a file outside the bundle's folder.
    #[error("bundle manifest names an unexpected file `{0}`")]
    UnexpectedFile(String),
    /// A file was changed after the manifest was written.
    #[error("bundle file {0} does not match its digest in the manifest")]
    Digest(String),
    /// The manifest's content hash is not the hash of its files.
    #[error("the bundle's content hash does not match its manifest")]
    ContentHash,
    /// A file the proxy needs is not listed.
    #[error("bundle has no {0}")]
    Missing(&'static str),
    /// `engine-plan.json` does not decode, or has another layout version.
    #[error("engine-plan.json: {0}")]
    EnginePlan(String),
    /// The plan does not generate Cedar (or its Cedar could not be
    /// serialized).
    #[error("{0}")]
    Generate(String),
    /// The bundle's Cedar is not what its plan generates.
    #[error("the bundle's Cedar is not what its plan generates; rebuild it with clsfc build")]
    CedarMismatch,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The files of a bundle, as (name, content) in a fixed order.
pub fn files(plan: &Plan, generated: &Generated) -> Result<Vec<(String, String)>, BundleError> {
    let mut entities = generated
        .entities
        .to_json_value()
        .map_err(|e| BundleError::Generate(format!("cannot serialize entities: {e}")))?;
    // Cedar lists entities (and parents) in hash order; sorted, the same
    // policy always builds the same bytes and the same content hash.
    let key = |v: &serde_json::Value| {
        (
            v["uid"]["type"].as_str().unwrap_or("").to_owned(),
            v["uid"]["id"].as_str().unwrap_or("").to_owned(),
        )
    };
    if let Some(list) = entities.as_array_mut() {
        for e in list.iter_mut() {
            if let Some(parents) = e["parents"].as_array_mut() {
                parents.sort_by_key(|p| {
                    (
                        p["type"].as_str().unwrap_or("").to_owned(),
                        p["id"].as_str().unwrap_or("").to_owned(),
                    )
                });
            }
        }
        list.sort_by_key(key);
    }
    let mut entities_text = serde_json::to_string_pretty(&entities)
        .map_err(|e| BundleError::Generate(e.to_string()))?;
    entities_text.push('\n');
    Ok(vec![
        (
            "schema.cedarschema".to_owned(),
            cedar::SCHEMA_TEXT.to_owned(),
        ),
        ("policies.cedar".to_owned(), cedar::policies_text(generated)),
        ("entities.json".to_owned(), entities_text),
        ("plan.json".to_owned(), masking_plan_json(plan)),
        ("engine-plan.json".to_owned(), engine_plan_json(plan)?),
    ])
}

fn engine_plan_json(plan: &Plan) -> Result<String, BundleError> {
    clsf_engine::plan_file::to_json(plan, env!("CARGO_PKG_VERSION"))
        .map_err(|e| BundleError::EnginePlan(e.to_string()))
}

#[derive(Deserialize)]
struct ManifestIn {
    format_version: u32,
    compiler_version: String,
    #[serde(default)]
    bundle_version: u64,
    content_hash: String,
    files: Vec<(String, String)>,
}

/// What a proxy requires of a bundle beyond its digests.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Keys one of which must have signed the manifest (empty: signatures
    /// are not required, and not checked).
    pub keys: Vec<crate::signing::PublicKey>,
    /// The version of the bundle in force, if any: an older one is refused.
    pub in_force: Option<u64>,
    /// Accept an older bundle (a deliberate roll-back).
    pub allow_downgrade: bool,
}

/// A bundle that passed every check.
#[derive(Debug)]
pub struct LoadedBundle {
    /// The engine built from its plan.
    pub engine: crate::Engine,
    /// Its content hash.
    pub content_hash: String,
    /// Its version.
    pub version: u64,
    /// The id of the key that signed it, when signatures are required.
    pub signed_by: Option<String>,
}

/// Loads a bundle written by `clsfc build`: checks the manifest's digest of
/// every file and its content hash, that this compiler wrote it, rebuilds
/// the engine from the plan and checks that the Cedar it generates is the
/// Cedar in the bundle (what was reviewed is what runs). Returns the engine
/// and the content hash.
pub fn load(dir: &Path) -> Result<(crate::Engine, String), BundleError> {
    load_with(dir, &Trust::default()).map(|b| (b.engine, b.content_hash))
}

/// Loads a bundle as `load` does, and first checks its signature against
/// `trust.keys` (when there are any) and its version against the one in
/// force. Every refusal names what failed: unsigned, signed by another key,
/// a manifest changed after signing, a file that does not match the
/// manifest, an older version.
pub fn load_with(dir: &Path, trust: &Trust) -> Result<LoadedBundle, BundleError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(io(&path))
    };
    let manifest_text = read("manifest.json")?;
    let signed_by = if trust.keys.is_empty() {
        None
    } else {
        let sig_path = dir.join(crate::signing::SIGNATURE_FILE);
        let signature = match std::fs::read_to_string(&sig_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&sig_path)(e)),
        };
        let key =
            crate::signing::verify(manifest_text.as_bytes(), signature.as_deref(), &trust.keys)
                .map_err(|source| BundleError::Signature {
                    dir: dir.to_owned(),
                    source,
                })?;
        Some(key.id())
    };
    let manifest: ManifestIn =
        serde_json::from_str(&manifest_text).map_err(|source| BundleError::Manifest {
            path: dir.join("manifest.json"),
            source,
        })?;
    if manifest.format_version != 1 || manifest.compiler_version != env!("CARGO_PKG_VERSION") {
        return Err(BundleError::Compiler {
            dir: dir.to_owned(),
            built_by: manifest.compiler_version,
            format: manifest.format_version,
        });
    }
    if let Some(in_force) = trust.in_force
        && manifest.bundle_version < in_force
        && !trust.allow_downgrade
    {
        return Err(BundleError::Downgrade {
            dir: dir.to_owned(),
            version: manifest.bundle_version,
            in_force,
        });
    }
    let mut files = Vec::new();
    for (name, digest) in &manifest.files {
        if name.contains('/') || name.contains("..") {
            return Err(BundleError::UnexpectedFile(name.clone()));
        }
        let text = read(name)?;
        let actual = hex::encode(Sha256::digest(text.as_bytes()));
        if actual != *digest {
            return Err(BundleError::Digest(name.clone()));
        }
        files.push((name.clone(), text));
    }
    let (content_hash, _) = digests(&files);
    if content_hash != manifest.content_hash {
        return Err(BundleError::ContentHash);
    }
    let find = |name: &'static str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .ok_or(BundleError::Missing(name))
    };
    let plan = clsf_engine::plan_file::from_json(find("engine-plan.json")?)
        .map_err(BundleError::EnginePlan)?;
    let engine = crate::Engine::new(plan).map_err(|e| BundleError::Generate(e.to_string()))?;
    if find("schema.cedarschema")? != cedar::SCHEMA_TEXT
        || find("policies.cedar")? != cedar::policies_text(engine.generated())
    {
        return Err(BundleError::CedarMismatch);
    }
    Ok(LoadedBundle {
        engine,
        content_hash,
        version: manifest.bundle_version,
        signed_by,
    })
}

/// The SHA-256 of each file and the bundle's content hash over (name, file
/// digest) pairs: the hash the manifest records and the proxy logs.
pub fn digests(files: &[(String, String)]) -> (String, Vec<(String, String)>) {
    let mut hasher = Sha256::new();
    let mut listed = Vec::with_capacity(files.len());
    for (name, content) in files {
        let digest = hex::encode(Sha256::digest(content.as_bytes()));
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(digest.as_bytes());
        listed.push((name.clone(), digest));
    }
    (hex::encode(hasher.finalize()), listed)
}

/// Writes a bundle into `dir` (created if missing), manifest last, with
/// version 0 and no signature.
pub fn write(dir: &Path, plan: &Plan, generated: &Generated) -> Result<String, BundleError> {
    write_signed(dir, plan, generated, 0, None)
}

/// The names of the files a manifest lists (not the manifest itself, nor
/// its signature).
pub fn listed_files(manifest: &str) -> Result<Vec<String>, serde_json::Error> {
    let manifest: ManifestIn = serde_json::from_str(manifest)?;
    Ok(manifest.files.into_iter().map(|(name, _)| name).collect())
}

/// A bundle's files as a publisher sends them — `manifest.json`, the files
/// it lists and `manifest.sig` when signed — after the checks a proxy makes
/// of any bundle (digests, content hash, compiler, Cedar against the plan;
/// the signature is the replicas' to check against the keys they trust).
/// Returns its version and the files.
pub fn read_for_publication(dir: &Path) -> Result<(u64, Vec<(String, String)>), BundleError> {
    let loaded = load_with(dir, &Trust::default())?;
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(io(&path))
    };
    let manifest = read("manifest.json")?;
    let names = listed_files(&manifest).map_err(|source| BundleError::Manifest {
        path: dir.join("manifest.json"),
        source,
    })?;
    let mut files = Vec::with_capacity(names.len() + 2);
    for name in names {
        let content = read(&name)?;
        files.push((name, content));
    }
    files.push(("manifest.json".to_owned(), manifest));
    match std::fs::read_to_string(dir.join(crate::signing::SIGNATURE_FILE)) {
        Ok(sig) => files.push((crate::signing::SIGNATURE_FILE.to_owned(), sig)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&dir.join(crate::signing::SIGNATURE_FILE))(e)),
    }
    Ok((loaded.version, files))
}

/// Writes a bundle with `version`, and, with a key, `manifest.sig` (a
/// signature over the manifest's exact bytes) after the manifest. A
/// signature left from an earlier build is removed first.
pub fn write_signed(
    dir: &Path,
    plan: &Plan,
    generated: &Generated,
    version: u64,
    key: Option<&crate::signing::SecretKey>,
) -> Result<String, BundleError> {
    let files = files(plan, generated)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let sig_path = dir.join(crate::signing::SIGNATURE_FILE);
    match std::fs::remove_file(&sig_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&sig_path)(e)),
    }
    for (name, content) in &files {
        let path = dir.join(name);
        std::fs::write(&path, content).map_err(io(&path))?;
    }
    let (content_hash, listed) = digests(&files);
    let manifest = Manifest {
        format_version: 1,
        compiler_version: env!("CARGO_PKG_VERSION"),
        bundle_version: version,
        content_hash: content_hash.clone(),
        files: listed,
    };
    let mut text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| BundleError::Generate(e.to_string()))?;
    text.push('\n');
    let path = dir.join("manifest.json");
    std::fs::write(&path, &text).map_err(io(&path))?;
    if let Some(key) = key {
        std::fs::write(&sig_path, key.sign(text.as_bytes())).map_err(io(&sig_path))?;
    }
    Ok(content_hash)
}
