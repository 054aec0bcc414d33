//! Building the shared state from a config: compile the policy, load the
//! JWKS, read the upstream password, open the audit trail.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use clsf_compiler::load;
use clsf_engine::Engine;

use crate::audit::AuditLog;
use crate::auth::jwks::{KeySource, Keys};
use crate::auth::jwt::{Issuers, Verifier};
use crate::auth::scram::ScramVerifier;
use crate::config::{Config, PolicySource};
use crate::session::{ClientTls, Loaded, Shared};
use crate::tls;
use crate::upstream::{Target, UpstreamTls};

/// Why the shared state could not be built from a config: each variant
/// names the setting or file at fault. Messages never carry a secret (the
/// upstream password's variable may be named, never its value).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The policy directory or its lock file could not be read.
    #[error("{0}")]
    Load(#[from] load::LoadError),
    /// The policy has errors (its diagnostics, rendered).
    #[error("the policy has errors:\n{0}")]
    Policy(String),
    /// A bundle failed its signature, manifest or version check.
    #[error("{0}")]
    Bundle(#[from] clsf_compiler::bundle::BundleError),
    /// The plan could not be turned into Cedar.
    #[error("{0}")]
    Generate(#[from] clsf_engine::GenerateError),
    /// `policy.hash_key_file` could not be read.
    #[error("cannot read policy.hash_key_file {}: {source}", path.display())]
    HashKeyRead {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// `policy.hash_key_file` holds a key shorter than 16 characters.
    #[error("policy.hash_key_file {}: the key must be at least 16 characters", path.display())]
    HashKeyShort {
        /// The file.
        path: PathBuf,
    },
    /// An issuer's settings or keys.
    #[error("issuer {issuer}: {reason}")]
    Issuer {
        /// The issuer's `iss`.
        issuer: String,
        /// What is wrong.
        reason: String,
    },
    /// A service account's SCRAM verifier does not parse.
    #[error("service account {name}: {source}")]
    Account {
        /// The account.
        name: String,
        /// What is wrong with its verifier.
        source: crate::auth::scram::VerifierError,
    },
    /// `[upstream]`'s TLS settings.
    #[error("[upstream] {0}")]
    UpstreamTls(String),
    /// The upstream password file could not be read.
    #[error("cannot read the upstream password file {}: {source}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The upstream password's environment variable is not set.
    #[error("the upstream password variable {0} is not set")]
    PasswordVariable(String),
    /// Neither a password file nor a variable is configured.
    #[error("[upstream] has no password")]
    NoPassword,
    /// The password's first line is empty (`origin` names where it was read).
    #[error("{0} is empty")]
    EmptyPassword(String),
    /// The client TLS certificate, key or CA.
    #[error("{0}")]
    Tls(#[from] tls::AcceptorError),
    /// The audit trail's directory is missing.
    #[error("the audit trail's directory {} does not exist", .0.display())]
    AuditDirectory(PathBuf),
    /// The audit trail could not be opened.
    #[error("cannot open the audit trail {}: {source}", path.display())]
    Audit {
        /// The trail's path.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A runtime for fetching keys could not be built.
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
}

/// Compiles the policy of a config into an engine and its plan hash. Policy
/// diagnostics are rendered into the error. A bundle must be signed by a
/// trusted key when `[policy] trusted_keys` is set, and not older than
/// `in_force` (the version of the bundle in force) unless a downgrade is
/// allowed.
pub fn compile_policy(
    config: &Config,
    generation: u64,
    in_force: Option<u64>,
) -> Result<Loaded, SetupError> {
    let mut bundle_version = None;
    let engine = match config.policy.source() {
        PolicySource::Sources { dir, lock } => {
            let compiled = load::compile_dir(dir, lock)?;
            let Some(plan) = compiled.plan else {
                return Err(SetupError::Policy(clsf_lang::render(
                    &compiled.diagnostics,
                    &compiled.sources,
                    false,
                )));
            };
            Engine::new(plan)?
        }
        // Verified against its signature and manifest, and its Cedar
        // against its plan.
        PolicySource::Bundle(dir) => {
            let trust = clsf_compiler::bundle::Trust {
                keys: config.policy.keys(),
                in_force,
                allow_downgrade: config.policy.allow_downgrade,
            };
            let loaded = clsf_compiler::bundle::load_with(dir, &trust)?;
            if let Some(key) = &loaded.signed_by {
                tracing::info!(version = loaded.version, key = %key, "bundle signature verified");
            }
            bundle_version = Some(loaded.version);
            loaded.engine
        }
    };
    loaded_from(config, engine, generation, bundle_version)
}

/// The policy in force for `engine`: the configured hash key applied and
/// the plan's hash computed.
pub fn loaded_from(
    config: &Config,
    mut engine: Engine,
    generation: u64,
    bundle_version: Option<u64>,
) -> Result<Loaded, SetupError> {
    if let Some(path) = &config.policy.hash_key_file {
        let key = std::fs::read_to_string(path).map_err(|source| SetupError::HashKeyRead {
            path: path.clone(),
            source,
        })?;
        let key = key.trim();
        if key.chars().count() < 16 {
            return Err(SetupError::HashKeyShort { path: path.clone() });
        }
        engine = engine.with_hash_key(key.to_owned());
    }
    // Nothing is known of the live catalog until it is compared
    // (`crate::drift`): every relation is read through the lock's columns.
    let engine = engine.with_drift(clsf_engine::Drift::Unknown);
    let files = clsf_compiler::bundle::files(engine.plan(), engine.generated())?;
    // The same hash `clsfc build` writes into the bundle's manifest.
    let (plan_hash, _) = clsf_compiler::bundle::digests(&files);
    Ok(Loaded {
        engine,
        plan_hash,
        generation,
        bundle_version,
    })
}

/// Checks everything `shared_state` would load, without opening the audit
/// trail (only its directory must exist). Returns the plan hash.
pub fn check(config: &Config) -> Result<String, SetupError> {
    let loaded = compile_policy(config, 0, None)?;
    issuers(config)?;
    accounts(config)?;
    upstream_tls(config)?;
    password(config)?;
    if let Some(t) = &config.tls {
        tls::acceptor(
            &t.cert_file,
            &t.key_file,
            t.client_ca_file.as_deref(),
            &[tls::POSTGRESQL_ALPN],
        )?;
    }
    let dir = config
        .audit
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir
        && !dir.is_dir()
    {
        return Err(SetupError::AuditDirectory(dir.to_owned()));
    }
    Ok(loaded.plan_hash)
}

/// Loads every issuer's keys (fetching URLs once). Called outside any
/// async runtime (at start and by `check-config`), so it runs its own.
fn issuers(config: &Config) -> Result<Issuers, SetupError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SetupError::Runtime)?;
    let mut verifiers = Vec::new();
    for i in &config.identity.issuer {
        let failed = |reason: String| SetupError::Issuer {
            issuer: i.issuer.clone(),
            reason,
        };
        let source = match (&i.jwks_file, &i.jwks_url) {
            (Some(file), _) => KeySource::File(file.clone()),
            (None, Some(url)) => KeySource::Url {
                url: url
                    .parse()
                    .map_err(|e| failed(format!("jwks_url `{url}`: {e}")))?,
                ca_file: i.jwks_ca_file.clone(),
            },
            (None, None) => return Err(failed("no jwks_file or jwks_url".to_owned())),
        };
        let keys = runtime
            .block_on(Keys::load(
                source,
                std::time::Duration::from_secs(i.jwks_min_refresh_seconds),
            ))
            .map_err(|e| failed(e.to_string()))?;
        verifiers.push(
            Verifier::new(
                &i.issuer,
                &i.audience,
                keys,
                config.identity.leeway_seconds,
                i.claims.clone(),
            )
            .map_err(|e| failed(e.to_string()))?,
        );
    }
    Ok(Issuers(verifiers))
}

fn accounts(config: &Config) -> Result<HashMap<String, ScramVerifier>, SetupError> {
    config
        .identity
        .account
        .iter()
        .map(|a| {
            a.scram_verifier
                .parse()
                .map(|v| (a.name.clone(), v))
                .map_err(|source| SetupError::Account {
                    name: a.name.clone(),
                    source,
                })
        })
        .collect()
}

/// TLS towards the database per `[upstream] sslmode`.
fn upstream_tls(config: &Config) -> Result<Option<UpstreamTls>, SetupError> {
    let u = &config.upstream;
    if u.sslmode == "disable" {
        let loopback = u.host == "localhost"
            || u.host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            tracing::warn!(
                host = %u.host,
                "[upstream] sslmode = \"disable\": the connection to the database is not encrypted; use verify-full"
            );
        }
        return Ok(None);
    }
    let tls = clsf_catalog::connect::tls_client_config(&u.sslmode, u.sslrootcert.as_deref())
        .map_err(|e| SetupError::UpstreamTls(e.to_string()))?;
    let name = u.tls_server_name.clone().unwrap_or_else(|| u.host.clone());
    let server_name = rustls_pki_types::ServerName::try_from(name.clone())
        .map_err(|_| SetupError::UpstreamTls(format!("`{name}` is not a valid TLS server name")))?;
    Ok(Some(UpstreamTls {
        connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls)),
        server_name,
    }))
}

fn password(config: &Config) -> Result<String, SetupError> {
    let u = &config.upstream;
    let (text, origin) = match (&u.password_file, &u.password_env) {
        (Some(file), _) => (
            std::fs::read_to_string(file).map_err(|source| SetupError::PasswordFile {
                path: file.clone(),
                source,
            })?,
            format!("the upstream password file {}", file.display()),
        ),
        (None, Some(var)) => (
            // The variable's name may be logged, never its value.
            std::env::var(var).map_err(|_| SetupError::PasswordVariable(var.clone()))?,
            format!("the upstream password variable {var}"),
        ),
        (None, None) => return Err(SetupError::NoPassword),
    };
    let password = text.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        return Err(SetupError::EmptyPassword(origin));
    }
    Ok(password)
}

/// Compiles the policy and prepares everything a session needs; a bad
/// policy never starts.
pub fn shared_state(config: &Config) -> Result<Shared, SetupError> {
    let loaded = compile_policy(config, 0, None)?;
    let issuers = issuers(config)?;
    let accounts = accounts(config)?;
    let password = password(config)?;
    let audit = AuditLog::open(
        &config.audit.path,
        crate::audit::Options {
            fsync: config.audit.fsync,
            max_file_bytes: config.audit.max_file_bytes,
            mode: config.audit.mode,
        },
    )
    .map_err(|source| SetupError::Audit {
        path: config.audit.path.clone(),
        source,
    })?;
    let tls = match &config.tls {
        Some(t) => Some(ClientTls {
            acceptor: tls::acceptor(
                &t.cert_file,
                &t.key_file,
                t.client_ca_file.as_deref(),
                &[tls::POSTGRESQL_ALPN],
            )?,
            required: t.required,
            certificates: t.client_ca_file.is_some(),
        }),
        None => None,
    };
    Ok(Shared {
        tls,
        startup_timeout: std::time::Duration::from_secs(config.startup_timeout_seconds),
        idle_timeout: (config.idle_timeout_seconds > 0)
            .then(|| std::time::Duration::from_secs(config.idle_timeout_seconds)),
        approvals: Arc::new(crate::approvals::Approvals::default()),
        approval_url: config.admin.as_ref().map(crate::config::Admin::url),
        metrics: crate::metrics::Metrics::default(),
        audit_completions: config.audit.completions,
        max_statement_bytes: config.max_statement_bytes,
        statement_timeout: (config.statement_timeout_seconds > 0)
            .then(|| std::time::Duration::from_secs(config.statement_timeout_seconds)),
        loaded: RwLock::new(Arc::new(loaded)),
        issuers,
        accounts,
        throttle: crate::auth::limits::Throttle::new(
            config.identity.max_auth_failures,
            std::time::Duration::from_secs(config.identity.auth_failure_window_seconds),
        ),
        per_identity: crate::auth::limits::SessionCounts::new(
            config.identity.max_sessions_per_identity,
        ),
        on_token_expiry: config.identity.on_token_expiry,
        max_session: (config.identity.max_session_seconds > 0)
            .then(|| std::time::Duration::from_secs(config.identity.max_session_seconds)),
        upstream: Target {
            host: config.upstream.host.clone(),
            port: config.upstream.port,
            database: config.upstream.database.clone(),
            user: config.upstream.user.clone(),
            password,
            tls: upstream_tls(config)?,
            salted: Default::default(),
            pool: std::sync::Arc::new(crate::upstream::Pool::new(
                config.upstream.pool_size,
                std::time::Duration::from_secs(config.upstream.pool_idle_seconds),
            )),
        },
        schema_check: crate::session::Schedule::new(std::time::Duration::from_secs(
            config.policy.schema_check_seconds,
        )),
        audit,
        next_session: AtomicU64::new(1),
        cancel_keys: Mutex::new(HashMap::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/proxy.toml");
        crate::config::load(&path).unwrap()
    }

    /// Each setting at fault is its own variant, so callers (reload, the
    /// admin's metrics, `check-config`) can tell them apart without reading
    /// messages; no message carries the password.
    #[test]
    fn setup_errors_name_what_is_at_fault() {
        let mut config = example();
        assert!(matches!(
            password(&config),
            Err(SetupError::PasswordFile { ref path, .. }) if path.ends_with("secrets/upstream.pw")
        ));
        config.upstream.password_file = None;
        config.upstream.password_env = Some("CLSF_TEST_SURELY_UNSET_VARIABLE".into());
        let error = password(&config).unwrap_err();
        assert!(
            matches!(error, SetupError::PasswordVariable(ref v) if v == "CLSF_TEST_SURELY_UNSET_VARIABLE")
        );
        assert_eq!(
            error.to_string(),
            "the upstream password variable CLSF_TEST_SURELY_UNSET_VARIABLE is not set"
        );
        config.upstream.password_env = None;
        assert!(matches!(password(&config), Err(SetupError::NoPassword)));
        // The example's policy directory is not beside it.
        assert!(matches!(
            compile_policy(&config, 0, None),
            Err(SetupError::Load(_))
        ));
        config.identity.account[0].scram_verifier = "md5abc".into();
        assert!(matches!(
            accounts(&config),
            Err(SetupError::Account { ref name, .. }) if name == "reporting"
        ));
    }
}
