//! `proxy.toml`: what the proxy listens on, where the upstream database is,
//! which policy it enforces, whose tokens it trusts and where it audits.
//! Relative paths are resolved against the config file's directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The proxy configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, e.g. `127.0.0.1:6432`.
    pub listen: String,
    /// Most concurrent client connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has to finish TLS, startup and authentication
    /// before it is disconnected (a stalled handshake holds nothing else).
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout_seconds: u64,
    /// Close sessions that are idle outside a transaction for this many
    /// seconds (0 or absent: never).
    #[serde(default)]
    pub idle_timeout_seconds: u64,
    /// Cancel a statement still running after this many seconds (0 or
    /// absent: never). Enforced by the proxy, so a client cannot lift it.
    #[serde(default)]
    pub statement_timeout_seconds: u64,
    /// Longest statement text, in bytes, the proxy analyses: a longer
    /// `Query` or `Parse` is refused with 54000 (the session goes on).
    #[serde(default = "default_max_statement_bytes")]
    pub max_statement_bytes: usize,
    /// On shutdown, how long in-flight statements may take to finish.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Threads that run sessions (0 or absent: half the CPU cores, at
    /// least one).
    #[serde(default)]
    pub worker_threads: usize,
    /// The upstream database.
    pub upstream: Upstream,
    /// The policy enforced.
    pub policy: Policy,
    /// Whose tokens are trusted.
    pub identity: IdentityConfig,
    /// The audit trail.
    pub audit: Audit,
    /// TLS for clients (optional; without it clients connect in plaintext).
    #[serde(default)]
    pub tls: Option<Tls>,
    /// The admin listener: approvals API, approver page, metrics
    /// (optional; without it, statements that need approval are refused).
    #[serde(default)]
    pub admin: Option<Admin>,
    /// Shared state for several replicas (optional; without it approval
    /// requests live in this proxy's memory).
    #[serde(default)]
    pub control_plane: Option<ControlPlaneConfig>,
    /// The MCP listener for AI agents (optional).
    #[serde(default)]
    pub mcp: Option<Mcp>,
    /// OpenTelemetry export (optional): the audit events as OTLP logs and a
    /// span per statement, over OTLP/HTTP.
    #[serde(default)]
    pub otel: Option<Otel>,
}

/// The Model Context Protocol listener (streamable HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mcp {
    /// Address to listen on, e.g. `127.0.0.1:6490`.
    pub listen: String,
    /// Certificate chain (PEM); default: `[tls] cert_file`. Without a
    /// certificate the listener serves plain HTTP, on a loopback address
    /// only.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM); default: `[tls] key_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The most rows a `query` call returns (a call may ask for fewer).
    #[serde(default = "default_mcp_max_rows")]
    pub max_rows: u64,
}

fn default_mcp_max_rows() -> u64 {
    1000
}

impl Mcp {
    /// The certificate and key files, falling back to the client TLS ones.
    pub fn tls_files<'a>(&'a self, tls: Option<&'a Tls>) -> Option<(&'a Path, &'a Path)> {
        match (&self.cert_file, &self.key_file, tls) {
            (Some(c), Some(k), _) => Some((c, k)),
            (None, None, Some(t)) => Some((&t.cert_file, &t.key_file)),
            _ => None,
        }
    }
}

/// The database holding approval requests for all replicas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// A PostgreSQL URL (`sslmode` and `sslrootcert` as libpq's).
    pub url: String,
    /// File holding the password (first line), when not in the URL.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Take the policy bundles `clsfc publish` stores in the control plane
    /// (needs `[policy] bundle` and `trusted_keys`): each newer one is
    /// verified against the trusted keys, written over the bundle folder
    /// and put in force; one that does not verify is refused and the plan
    /// in force stays.
    #[serde(default)]
    pub follow_bundles: bool,
    /// Copy every audit event to the control plane (`clsf_audit_events`,
    /// which the proxy's role may only insert into and read): the local
    /// trail stays the one written before a statement runs, and the copy
    /// may lag (`clsf_audit_central_lag`).
    #[serde(default)]
    pub audit: bool,
    /// This replica's name in the central audit: one chain per name.
    #[serde(default)]
    pub replica: Option<String>,
    /// A `clsfc keygen` secret key: with it, the chain's head is signed
    /// and written to `clsf_audit_anchors` every `anchor_every_seconds`,
    /// so that a trail rewritten whole is found out.
    #[serde(default)]
    pub anchor_key: Option<PathBuf>,
    /// Seconds between anchors.
    #[serde(default = "default_anchor_every")]
    pub anchor_every_seconds: u64,
}

fn default_anchor_every() -> u64 {
    10
}

/// `[otel]`: where audit events go as OpenTelemetry logs and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Otel {
    /// The collector's OTLP/HTTP base URL, e.g. `https://collector:4318`;
    /// `/v1/logs` and `/v1/traces` are appended. Plain `http` only to a
    /// loopback address: the events carry statements.
    pub endpoint: String,
    /// PEM CA the collector's certificate is verified with (default: the
    /// system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The resource's `service.name`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Export every audit event as a log record.
    #[serde(default = "default_true")]
    pub logs: bool,
    /// Export a span per statement, with its decision as attributes.
    #[serde(default = "default_true")]
    pub traces: bool,
}

fn default_service_name() -> String {
    "clsf-proxy".to_owned()
}

impl ControlPlaneConfig {
    /// The password from `password_file`, if one is configured.
    pub fn password(&self) -> Result<Option<String>, PasswordFileError> {
        match &self.password_file {
            None => Ok(None),
            Some(p) => clsf_catalog::connect::password_from_file(p)
                .map(Some)
                .map_err(|source| PasswordFileError {
                    path: p.clone(),
                    source,
                }),
        }
    }
}

/// `[control_plane] password_file` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read control_plane.password_file {}: {source}", path.display())]
pub struct PasswordFileError {
    /// The file.
    pub path: PathBuf,
    /// What the operating system said.
    pub source: std::io::Error,
}

/// The admin HTTPS listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Address to listen on, e.g. `127.0.0.1:9443`.
    pub listen: String,
    /// Certificate chain (PEM); default: `[tls] cert_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM); default: `[tls] key_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The URL approvers open (named in the notice a held client gets);
    /// default `https://` + `listen`.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Admin {
    /// The certificate and key files, falling back to the client TLS ones.
    pub fn tls_files<'a>(&'a self, tls: Option<&'a Tls>) -> Option<(&'a Path, &'a Path)> {
        match (&self.cert_file, &self.key_file, tls) {
            (Some(c), Some(k), _) => Some((c, k)),
            (None, None, Some(t)) => Some((&t.cert_file, &t.key_file)),
            _ => None,
        }
    }

    /// The URL approvers open.
    pub fn url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }
}

/// The proxy's TLS certificate for clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Private key (PEM).
    pub key_file: PathBuf,
    /// Refuse clients that do not ask for TLS: tokens must not cross the
    /// network in plaintext. On unless set to false.
    #[serde(default = "default_true")]
    pub required: bool,
    /// PEM CA whose client certificates are identities (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}

/// The most session threads `worker_threads` may ask for.
const MAX_WORKER_THREADS: usize = 256;

fn default_max_connections() -> usize {
    256
}

fn default_startup_timeout() -> u64 {
    30
}

fn default_max_statement_bytes() -> usize {
    16 * 1024 * 1024
}

fn default_grace() -> u64 {
    30
}

/// The upstream PostgreSQL and the credential the proxy holds for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name; clients must ask for this one.
    pub database: String,
    /// Role the proxy logs in as.
    pub user: String,
    /// File holding the role's password (first line). Never sent to clients.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Or: the environment variable holding it (for secrets injected by an
    /// orchestrator).
    #[serde(default)]
    pub password_env: Option<String>,
    /// TLS to the server, as libpq's `sslmode`: `disable`, `require`,
    /// `verify-ca` or `verify-full`.
    #[serde(default = "default_sslmode")]
    pub sslmode: String,
    /// The CA certificate (PEM) for `verify-ca`/`verify-full`.
    #[serde(default)]
    pub sslrootcert: Option<PathBuf>,
    /// The name the certificate must carry (default: `host`).
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Server connections kept for later sessions once their session
    /// ended cleanly, reset with `DISCARD ALL` (0: none; every session
    /// logs in anew).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Seconds a kept server connection may stay unused before it is
    /// closed.
    #[serde(default = "default_pool_idle_seconds")]
    pub pool_idle_seconds: u64,
}

fn default_pool_size() -> usize {
    20
}

fn default_pool_idle_seconds() -> u64 {
    60
}

fn default_schema_check_seconds() -> u64 {
    10
}

fn default_sslmode() -> String {
    "disable".to_owned()
}

/// The policy source and the schema it is checked against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Directory of `.clsf` files (with `schema_lock`; or give `bundle`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `schema.lock.json` (with `dir`).
    #[serde(default)]
    pub schema_lock: Option<PathBuf>,
    /// A bundle written by `clsfc build` (instead of `dir` and `schema_lock`).
    #[serde(default)]
    pub bundle: Option<PathBuf>,
    /// Public keys (`ed25519:…`, as `clsfc keygen` writes them) one of
    /// which must have signed the bundle; empty: bundles need no signature.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// Seconds between comparisons of the live catalog with the schema
    /// lock (also compared whenever a policy comes into force): a relation
    /// that gained columns the lock lacks is read through the lock's
    /// columns from the next comparison on.
    #[serde(default = "default_schema_check_seconds")]
    pub schema_check_seconds: u64,
    /// Accept, at a reload, a bundle older than the one in force (a
    /// deliberate roll-back); refused by default as a replay.
    #[serde(default)]
    pub allow_downgrade: bool,
    /// File holding the key of the `hash` mask (at least 16 characters;
    /// surrounding whitespace is ignored). Without it each process draws a
    /// random key, so hashes differ between restarts.
    #[serde(default)]
    pub hash_key_file: Option<PathBuf>,
}

/// Who may connect: token issuers, static service accounts, and what
/// happens when a session's token expires. (Client certificates are
/// enabled by `[tls] client_ca_file`.)
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// What happens to a session when its token expires.
    #[serde(default)]
    pub on_token_expiry: OnExpiry,
    /// Longest a session may last, in seconds, whatever its credential
    /// (0: no limit).
    #[serde(default)]
    pub max_session_seconds: u64,
    /// Failed authentications allowed per peer address, and per service
    /// account, in `auth_failure_window_seconds` before further attempts
    /// are refused unchecked until the window ends (0: no limit).
    #[serde(default = "default_max_auth_failures")]
    pub max_auth_failures: u32,
    /// The window of `max_auth_failures`, in seconds.
    #[serde(default = "default_auth_failure_window")]
    pub auth_failure_window_seconds: u64,
    /// Most open sessions per identity (token subject, account or
    /// certificate subject); 0: no limit beyond `max_connections`.
    #[serde(default)]
    pub max_sessions_per_identity: usize,
    /// Trusted token issuers.
    #[serde(default)]
    pub issuer: Vec<IssuerConfig>,
    /// Static service accounts.
    #[serde(default)]
    pub account: Vec<AccountConfig>,
}

fn default_max_auth_failures() -> u32 {
    20
}

fn default_auth_failure_window() -> u64 {
    60
}

/// What a session does when its token's `exp` passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// Close the session (FATAL 28000) at expiry.
    #[default]
    Close,
    /// Let it run (up to `max_session_seconds`).
    Continue,
}

/// One trusted token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Expected `iss`; tokens are routed to the issuer they name.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// A JWKS file with the issuer's public keys (or `jwks_url`).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// An https URL serving the issuer's JWKS (or `jwks_file`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM trust anchors for `jwks_url` (default: the system's roots).
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// Least time between two refetches of `jwks_url` caused by tokens
    /// naming an unknown key id, in seconds.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_min_refresh_seconds: u64,
    /// Claims added from other claims: `name = "path.in.token"`, so that
    /// groups can be written once for issuers that name things differently.
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, String>,
}

fn default_jwks_refresh() -> u64 {
    60
}

/// A static service account, authenticated with SCRAM-SHA-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The user name the client logs in with; `account "NAME"` groups match it.
    pub name: String,
    /// The verifier (`clsf-proxy scram-verifier` prints one); never a password.
    pub scram_verifier: String,
}

fn default_leeway() -> u64 {
    30
}

/// Where audit events go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// JSON-lines file, appended to.
    pub path: PathBuf,
    /// fsync after every event (slower, survives power loss).
    #[serde(default)]
    pub fsync: bool,
    /// Record each statement's completion (rows returned or changed,
    /// duration, outcome) on the session's next event.
    #[serde(default = "default_true")]
    pub completions: bool,
    /// Rotate the file once it holds this many bytes (0: never). Rotated
    /// files are `PATH.NNNNNNNNNNNN`, numbered by their first event.
    #[serde(default)]
    pub max_file_bytes: u64,
    /// How events reach the file: `mapped` (copied into a pre-allocated,
    /// memory-mapped segment: no system call per event) or `append` (one
    /// `write` per event, for readers that follow the file as it grows).
    #[serde(default)]
    pub mode: crate::audit::Mode,
}

/// Where the policy comes from.
#[derive(Debug, Clone, Copy)]
pub enum PolicySource<'a> {
    /// `.clsf` sources compiled against a schema lock.
    Sources {
        /// The policy directory.
        dir: &'a Path,
        /// The schema lock.
        lock: &'a Path,
    },
    /// A bundle built by `clsfc build`.
    Bundle(&'a Path),
}

impl Policy {
    /// The trusted keys, parsed (`load` has checked each).
    pub fn keys(&self) -> Vec<clsf_compiler::signing::PublicKey> {
        self.trusted_keys
            .iter()
            .filter_map(|k| clsf_compiler::signing::PublicKey::parse(k).ok())
            .collect()
    }

    /// The policy's source; `load` guarantees exactly one is configured.
    pub fn source(&self) -> PolicySource<'_> {
        match (&self.dir, &self.schema_lock, &self.bundle) {
            (_, _, Some(b)) => PolicySource::Bundle(b),
            (Some(dir), Some(lock), None) => PolicySource::Sources { dir, lock },
            // `load` refuses any other combination.
            _ => PolicySource::Bundle(Path::new("")),
        }
    }
}

/// Why `[otel] endpoint` is refused.
#[derive(Debug, thiserror::Error)]
enum EndpointError {
    #[error("`{endpoint}` is not a URL: {source}")]
    NotAUrl {
        endpoint: String,
        source: hyper::http::uri::InvalidUri,
    },
    #[error(
        "`{0}`: use https (plain http only to a loopback address): the events carry statements"
    )]
    Cleartext(String),
    #[error("`{0}` is not an http(s) URL")]
    NotHttp(String),
}

/// An OTLP/HTTP endpoint: `https`, or `http` to a loopback address.
fn check_otel_endpoint(endpoint: &str) -> Result<(), EndpointError> {
    let uri: hyper::Uri = endpoint.parse().map_err(|source| EndpointError::NotAUrl {
        endpoint: endpoint.to_owned(),
        source,
    })?;
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http")
            if host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback()) =>
        {
            Ok(())
        }
        Some("http") => Err(EndpointError::Cleartext(endpoint.to_owned())),
        _ => Err(EndpointError::NotHttp(endpoint.to_owned())),
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses a config file, resolving relative paths.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    let mut config: Config =
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(tls) = &mut config.tls {
        for p in [&mut tls.cert_file, &mut tls.key_file]
            .into_iter()
            .chain(tls.client_ca_file.as_mut())
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
    if let Some(admin) = &mut config.admin {
        for p in [admin.cert_file.as_mut(), admin.key_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if admin.tls_files(config.tls.as_ref()).is_none() {
            return Err(ConfigError(format!(
                "{}: [admin] serves HTTPS only: give both `cert_file` and `key_file`, or neither to use [tls]'s (then [tls] is needed)",
                path.display()
            )));
        }
    }
    if let Some(mcp) = &mut config.mcp {
        for p in [mcp.cert_file.as_mut(), mcp.key_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if mcp.cert_file.is_some() != mcp.key_file.is_some() {
            return Err(ConfigError(format!(
                "{}: [mcp] give both `cert_file` and `key_file`, or neither (then [tls]'s pair, or plain HTTP on loopback)",
                path.display()
            )));
        }
    }
    if let Some(cp) = config.control_plane.as_mut() {
        for p in [cp.password_file.as_mut(), cp.anchor_key.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let named = cp.replica.as_deref().is_some_and(|r| {
            !r.is_empty()
                && r.len() <= 64
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        });
        if cp.audit && !named {
            return Err(ConfigError(format!(
                "{}: [control_plane] audit needs `replica`, this replica's name (letters, digits, `.`, `-`, `_`; at most 64)",
                path.display()
            )));
        }
        if cp.anchor_key.is_some() && !cp.audit {
            return Err(ConfigError(format!(
                "{}: [control_plane] anchor_key signs the central audit's chain heads; it needs audit = true",
                path.display()
            )));
        }
        if cp.anchor_every_seconds == 0 {
            return Err(ConfigError(format!(
                "{}: [control_plane] anchor_every_seconds must be at least 1",
                path.display()
            )));
        }
    }
    if let Some(otel) = config.otel.as_mut() {
        if let Some(p) = otel.ca_file.as_mut()
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
        check_otel_endpoint(&otel.endpoint)
            .map_err(|why| ConfigError(format!("{}: [otel] endpoint: {why}", path.display())))?;
    }
    check_identity(path, &mut config.identity, base)?;
    if let Some(p) = &mut config.policy.hash_key_file
        && p.is_relative()
    {
        *p = base.join(&*p);
    }
    match (
        &config.policy.dir,
        &config.policy.schema_lock,
        &config.policy.bundle,
    ) {
        (Some(_), Some(_), None) | (None, None, Some(_)) => {}
        (_, _, Some(_)) => {
            return Err(ConfigError(format!(
                "{}: [policy] takes either `bundle` or `dir` and `schema_lock`, not both",
                path.display()
            )));
        }
        _ => {
            return Err(ConfigError(format!(
                "{}: [policy] needs `dir` and `schema_lock` (sources), or `bundle` (a clsfc build output)",
                path.display()
            )));
        }
    }
    if config
        .control_plane
        .as_ref()
        .is_some_and(|c| c.follow_bundles)
        && (config.policy.bundle.is_none() || config.policy.trusted_keys.is_empty())
    {
        return Err(ConfigError(format!(
            "{}: [control_plane] follow_bundles needs [policy] bundle and trusted_keys: a bundle from the control plane runs only if a trusted key signed it",
            path.display()
        )));
    }
    if !config.policy.trusted_keys.is_empty() && config.policy.bundle.is_none() {
        return Err(ConfigError(format!(
            "{}: [policy] trusted_keys applies to a signed `bundle`; the sources in `dir` carry no signature",
            path.display()
        )));
    }
    for (i, key) in config.policy.trusted_keys.iter().enumerate() {
        clsf_compiler::signing::PublicKey::parse(key).map_err(|e| {
            ConfigError(format!(
                "{}: [policy] trusted_keys[{i}]: {e}",
                path.display()
            ))
        })?;
    }
    for p in [
        config.policy.dir.as_mut(),
        config.policy.schema_lock.as_mut(),
        config.policy.bundle.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    if config.worker_threads > MAX_WORKER_THREADS {
        return Err(ConfigError(format!(
            "{}: worker_threads = {} is more than {MAX_WORKER_THREADS}; 0 means half the CPU cores",
            path.display(),
            config.worker_threads
        )));
    }
    if config.policy.schema_check_seconds == 0 {
        return Err(ConfigError(format!(
            "{}: [policy] schema_check_seconds must be at least 1: the live catalog must be compared with the schema lock",
            path.display()
        )));
    }
    if config.startup_timeout_seconds == 0 {
        return Err(ConfigError(format!(
            "{}: startup_timeout_seconds must be at least 1: a client that never finishes its handshake would hold its connection forever",
            path.display()
        )));
    }
    if config.max_statement_bytes == 0 || config.max_statement_bytes > crate::wire::frame::MAX_FRAME
    {
        return Err(ConfigError(format!(
            "{}: max_statement_bytes = {} must be between 1 and {} (the largest message the proxy reads)",
            path.display(),
            config.max_statement_bytes,
            crate::wire::frame::MAX_FRAME
        )));
    }
    if let Some(mcp) = &config.mcp {
        if mcp.max_rows == 0 {
            return Err(ConfigError(format!(
                "{}: [mcp] max_rows must be at least 1",
                path.display()
            )));
        }
        let loopback = {
            use std::net::ToSocketAddrs;
            mcp.listen
                .to_socket_addrs()
                .is_ok_and(|mut a| a.all(|a| a.ip().is_loopback()))
        };
        if mcp.tls_files(config.tls.as_ref()).is_none() && !loopback {
            return Err(ConfigError(format!(
                "{}: [mcp] listen = \"{}\" is not a loopback address and no certificate is configured: agents' bearer tokens would cross the network in clear",
                path.display(),
                mcp.listen
            )));
        }
    }
    if config.max_connections == 0 {
        return Err(ConfigError(format!(
            "{}: max_connections must be at least 1",
            path.display()
        )));
    }
    if config.upstream.password_file.is_some() == config.upstream.password_env.is_some() {
        return Err(ConfigError(format!(
            "{}: [upstream] needs exactly one of password_file and password_env",
            path.display()
        )));
    }
    for p in [&mut config.audit.path]
        .into_iter()
        .chain(config.upstream.sslrootcert.as_mut())
        .chain(config.upstream.password_file.as_mut())
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    Ok(config)
}

fn check_identity(
    path: &Path,
    identity: &mut IdentityConfig,
    base: &Path,
) -> Result<(), ConfigError> {
    let err = |what: String| Err(ConfigError(format!("{}: {what}", path.display())));
    if identity.issuer.is_empty() && identity.account.is_empty() {
        return err(
            "[identity] trusts nobody: add an [[identity.issuer]] or an [[identity.account]]"
                .to_owned(),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for issuer in &mut identity.issuer {
        if !seen.insert(issuer.issuer.clone()) {
            return err(format!("issuer `{}` is configured twice", issuer.issuer));
        }
        match (&issuer.jwks_file, &issuer.jwks_url) {
            (Some(_), None) => {}
            (None, Some(url)) if url.starts_with("https://") => {}
            (None, Some(url)) => {
                return err(format!(
                    "issuer `{}`: jwks_url must be an https:// URL, not `{url}`",
                    issuer.issuer
                ));
            }
            _ => {
                return err(format!(
                    "issuer `{}` needs exactly one of jwks_file and jwks_url",
                    issuer.issuer
                ));
            }
        }
        for p in [issuer.jwks_file.as_mut(), issuer.jwks_ca_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for account in &identity.account {
        if account.name.is_empty() || !names.insert(account.name.clone()) {
            return err(format!(
                "service account name `{}` is empty or configured twice",
                account.name
            ));
        }
        if let Err(e) = account
            .scram_verifier
            .parse::<crate::auth::scram::ScramVerifier>()
        {
            return err(format!("service account `{}`: {e}", account.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/proxy.toml")
    }

    #[test]
    fn the_annotated_example_is_a_valid_configuration() {
        let config = load(&example()).unwrap();
        assert_eq!(config.identity.issuer.len(), 3);
        assert_eq!(config.identity.account.len(), 1);
        assert_eq!(config.identity.on_token_expiry, OnExpiry::Close);
        assert_eq!(config.statement_timeout_seconds, 300);
        assert_eq!(config.worker_threads, 0);
        assert_eq!(config.upstream.sslmode, "verify-full");
        let base = example().parent().unwrap().to_path_buf();
        assert_eq!(
            config.upstream.sslrootcert,
            Some(base.join("secrets/db-ca.pem"))
        );
        assert_eq!(
            config.tls.unwrap().client_ca_file,
            Some(base.join("secrets/clients-ca.pem"))
        );
    }

    /// Each mistake is reported with the file and what is wrong.
    #[test]
    fn mistakes_are_named() {
        let text = std::fs::read_to_string(example()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let cases = [
            (
                "fsync = true",
                "fsync = true\nfsnyc = true",
                "unknown field `fsnyc`",
            ),
            (
                "jwks_file = \"secrets/cluster-jwks.json\"",
                "jwks_file = \"x\"\njwks_url = \"https://k/jwks\"",
                "needs exactly one of jwks_file and jwks_url",
            ),
            (
                "jwks_url = \"https://token.actions.githubusercontent.com/.well-known/jwks\"",
                "jwks_url = \"http://plain.example/jwks\"",
                "must be an https:// URL",
            ),
            (
                "scram_verifier = \"SCRAM",
                "scram_verifier = \"md5",
                "not a SCRAM-SHA-256 verifier",
            ),
            (
                "on_token_expiry = \"close\"",
                "on_token_expiry = \"never\"",
                "unknown variant `never`",
            ),
            (
                "password_file = \"secrets/upstream.pw\"",
                "password_file = \"a\"\npassword_env = \"B\"",
                "exactly one of password_file and password_env",
            ),
            (
                "worker_threads = 0",
                "worker_threads = 100000",
                "worker_threads = 100000 is more than 256",
            ),
            (
                "startup_timeout_seconds = 30",
                "startup_timeout_seconds = 0",
                "startup_timeout_seconds must be at least 1",
            ),
            (
                "max_connections = 256",
                "max_connections = 0",
                "max_connections must be at least 1",
            ),
            (
                "max_connections = 256",
                "max_connections = 256\nmax_statement_bytes = 0",
                "max_statement_bytes = 0 must be between 1 and 67108864",
            ),
            (
                "max_connections = 256",
                "max_connections = 256\nmax_statement_bytes = 67108865",
                "max_statement_bytes = 67108865 must be between 1 and 67108864",
            ),
            (
                "password_file = \"secrets/control.pw\"",
                "password_file = \"secrets/control.pw\"\nfollow_bundles = true",
                "follow_bundles needs [policy] bundle and trusted_keys",
            ),
            (
                "password_file = \"secrets/control.pw\"",
                "password_file = \"secrets/control.pw\"\naudit = true",
                "audit needs `replica`",
            ),
            (
                "password_file = \"secrets/control.pw\"",
                "password_file = \"secrets/control.pw\"\naudit = true\nreplica = \"a/b\"",
                "audit needs `replica`",
            ),
            (
                "password_file = \"secrets/control.pw\"",
                "password_file = \"secrets/control.pw\"\nanchor_key = \"k.key\"",
                "it needs audit = true",
            ),
            (
                "# [otel]\n# endpoint = \"https://otel-collector.observability:4318\"",
                "[otel]\nendpoint = \"http://collector.example:4318\"",
                "plain http only to a loopback address",
            ),
        ];
        for (from, to, expected) in cases {
            let path = dir.join("proxy.toml");
            assert!(text.contains(from), "{from}");
            std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
            let err = load(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
            assert!(err.contains("proxy.toml"), "{err}");
        }
    }
}
