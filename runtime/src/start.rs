//! Building the shared state from a config: compile the policy, load the
//! JWKS, read the upstream password, open the audit trail.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use clsf_compiler::Engine;
use clsf_compiler::load;

use crate::audit::AuditLog;
use crate::auth::jwks::{KeySource, Keys};
use crate::auth::jwt::{Issuers, Verifier};
use crate::auth::scram::ScramVerifier;
use crate::config::{Config, PolicySource};
use crate::session::{ClientTls, Loaded, Shared};
use crate::tls;
use crate::upstream::{Target, UpstreamTls};

/// Compiles the policy of a config into an engine and its plan hash. Policy
/// diagnostics are rendered into the error. A bundle must be signed by a
/// trusted key when `[policy] trusted_keys` is set, and not older than
/// `in_force` (the version of the bundle in force) unless a downgrade is
/// allowed.
pub fn compile_policy(
    config: &Config,
    generation: u64,
    in_force: Option<u64>,
) -> Result<Loaded, String> {
    let mut bundle_version = None;
    let mut engine = match config.policy.source() {
        PolicySource::Sources { dir, lock } => {
            let compiled = load::compile_dir(dir, lock).map_err(|e| e.to_string())?;
            let Some(plan) = compiled.plan else {
                return Err(format!(
                    "the policy has errors:\n{}",
                    clsf_lang::render(&compiled.diagnostics, &compiled.sources, false)
                ));
            };
            Engine::new(plan).map_err(|e| e.to_string())?
        }
        // Verified against its signature and manifest, and its Cedar
        // against its plan.
        PolicySource::Bundle(dir) => {
            let trust = clsf_compiler::bundle::Trust {
                keys: config.policy.keys(),
                in_force,
                allow_downgrade: config.policy.allow_downgrade,
            };
            let loaded =
                clsf_compiler::bundle::load_with(dir, &trust).map_err(|e| e.to_string())?;
            if let Some(key) = &loaded.signed_by {
                tracing::info!(version = loaded.version, key = %key, "bundle signature verified");
            }
            bundle_version = Some(loaded.version);
            loaded.engine
        }
    };
    if let Some(path) = &config.policy.hash_key_file {
        let key = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read policy.hash_key_file {}: {e}", path.display()))?;
        let key = key.trim();
        if key.chars().count() < 16 {
            return Err(format!(
                "policy.hash_key_file {}: the key must be at least 16 characters",
                path.display()
            ));
        }
        engine = engine.with_hash_key(key.to_owned());
    }
    let files = clsf_compiler::bundle::files(engine.plan(), engine.generated())
        .map_err(|e| e.to_string())?;
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
pub fn check(config: &Config) -> Result<String, String> {
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
        return Err(format!(
            "the audit trail's directory {} does not exist",
            dir.display()
        ));
    }
    Ok(loaded.plan_hash)
}

/// Loads every issuer's keys (fetching URLs once). Called outside any
/// async runtime (at start and by `check-config`), so it runs its own.
fn issuers(config: &Config) -> Result<Issuers, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut verifiers = Vec::new();
    for i in &config.identity.issuer {
        let source = match (&i.jwks_file, &i.jwks_url) {
            (Some(file), _) => KeySource::File(file.clone()),
            (None, Some(url)) => KeySource::Url {
                url: url
                    .parse()
                    .map_err(|e| format!("issuer {}: jwks_url `{url}`: {e}", i.issuer))?,
                ca_file: i.jwks_ca_file.clone(),
            },
            (None, None) => return Err(format!("issuer {} has no JWKS", i.issuer)),
        };
        let keys = runtime
            .block_on(Keys::load(
                source,
                std::time::Duration::from_secs(i.jwks_min_refresh_seconds),
            ))
            .map_err(|e| format!("issuer {}: {e}", i.issuer))?;
        verifiers.push(Verifier::new(
            &i.issuer,
            &i.audience,
            keys,
            config.identity.leeway_seconds,
            i.claims.clone(),
        )?);
    }
    Ok(Issuers(verifiers))
}

fn accounts(config: &Config) -> Result<HashMap<String, ScramVerifier>, String> {
    config
        .identity
        .account
        .iter()
        .map(|a| {
            a.scram_verifier
                .parse()
                .map(|v| (a.name.clone(), v))
                .map_err(|e| format!("service account {}: {e}", a.name))
        })
        .collect()
}

/// TLS towards the database per `[upstream] sslmode`.
fn upstream_tls(config: &Config) -> Result<Option<UpstreamTls>, String> {
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
    let tls =
        clsf_compiler::schema::connect::tls_client_config(&u.sslmode, u.sslrootcert.as_deref())
            .map_err(|e| format!("[upstream] {e}"))?;
    let name = u.tls_server_name.clone().unwrap_or_else(|| u.host.clone());
    let server_name = rustls_pki_types::ServerName::try_from(name.clone())
        .map_err(|_| format!("[upstream] `{name}` is not a valid TLS server name"))?;
    Ok(Some(UpstreamTls {
        connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls)),
        server_name,
    }))
}

fn password(config: &Config) -> Result<String, String> {
    let u = &config.upstream;
    let (text, origin) = match (&u.password_file, &u.password_env) {
        (Some(file), _) => (
            std::fs::read_to_string(file).map_err(|e| {
                format!(
                    "cannot read the upstream password file {}: {e}",
                    file.display()
                )
            })?,
            format!("the upstream password file {}", file.display()),
        ),
        (None, Some(var)) => (
            // The variable's name may be logged, never its value.
            std::env::var(var)
                .map_err(|_| format!("the upstream password variable {var} is not set"))?,
            format!("the upstream password variable {var}"),
        ),
        (None, None) => return Err("[upstream] has no password".to_owned()),
    };
    let password = text.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        return Err(format!("{origin} is empty"));
    }
    Ok(password)
}

/// Compiles the policy and prepares everything a session needs; a bad
/// policy never starts.
pub fn shared_state(config: &Config) -> Result<Shared, String> {
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
    .map_err(|e| {
        format!(
            "cannot open the audit trail {}: {e}",
            config.audit.path.display()
        )
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
        approvals: crate::approvals::Approvals::default(),
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
        },
        audit,
        next_session: AtomicU64::new(1),
        cancel_keys: Mutex::new(HashMap::new()),
    })
}
