//! `clsf-proxy`: runs the enforcement proxy, and small tools around it
//! (demo keys and tokens, audit verification).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use clsf_runtime::{audit, config, keys, reload, start};

/// The clsf enforcement proxy for PostgreSQL.
#[derive(Parser, Debug)]
#[command(name = "clsf-proxy", version, about)]
struct Cli {
    /// The proxy configuration (runs the proxy).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Which key signs: its algorithm and id.
#[derive(clap::Args, Debug)]
struct KeyId {
    /// ES256 or RS256.
    #[arg(long, default_value = "ES256")]
    alg: String,
    /// Key id.
    #[arg(long, default_value = "demo")]
    kid: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a signing key pair and its JWKS (for demos and tests).
    Keygen {
        #[command(flatten)]
        key: KeyId,
        /// Where to write the private key (PKCS#8 PEM).
        #[arg(long)]
        private_key: PathBuf,
        /// Where to write the JWKS.
        #[arg(long)]
        jwks: PathBuf,
    },
    /// Sign a token (for demos and tests).
    MintToken {
        #[command(flatten)]
        key: KeyId,
        /// The private key (PKCS#8 PEM).
        #[arg(long)]
        private_key: PathBuf,
        /// `iss`.
        #[arg(long)]
        issuer: String,
        /// `aud`.
        #[arg(long)]
        audience: String,
        /// `sub`.
        #[arg(long)]
        subject: String,
        /// Lifetime in seconds (negative for an already expired token).
        #[arg(long, default_value_t = 3600, allow_hyphen_values = true)]
        ttl: i64,
        /// Extra string claim `NAME=VALUE` (repeatable).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Extra array claim `NAME=V1,V2` (repeatable).
        #[arg(long = "claim-list")]
        claim_lists: Vec<String>,
    },
    /// Check a proxy configuration: parse it, compile its policy, load its
    /// JWKS, password file and TLS files; start nothing.
    CheckConfig {
        /// The configuration file.
        path: PathBuf,
    },
    /// Print a SCRAM-SHA-256 verifier for a service account's password,
    /// read from standard input (first line), for `[[identity.account]]`.
    ScramVerifier,
    /// Check the hash chain of one audit file (see also `audit verify`).
    VerifyAudit {
        /// The audit file.
        path: PathBuf,
    },
    /// Verify or replay an audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Bridge an MCP client that speaks stdio to the proxy's MCP listener:
    /// JSON-RPC lines on stdin go to URL with your token; answers come
    /// back on stdout.
    McpStdio {
        /// The MCP listener's URL, e.g. https://proxy:6490/mcp.
        #[arg(long)]
        url: String,
        /// File holding your OIDC token (or the token in CLSF_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// PEM CA to verify the listener with (default: system roots).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Your client certificate (PEM), for a listener that accepts
        /// certificates: then no token is needed.
        #[arg(long, requires = "key_file")]
        cert_file: Option<PathBuf>,
        /// The client certificate's private key (PEM).
        #[arg(long, requires = "cert_file")]
        key_file: Option<PathBuf>,
    },
    /// List and decide approval requests through a proxy's admin API.
    Approvals {
        /// The admin listener's URL (or CLSF_ADMIN_URL).
        #[arg(long, env = "CLSF_ADMIN_URL")]
        url: String,
        /// File holding your OIDC token (or the token in CLSF_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// PEM CA to verify the admin listener with (default: system roots).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Print the API's JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: ApprovalAction,
    },
}

#[derive(Subcommand, Debug)]
enum AuditAction {
    /// Check the hash chain across the trail's files; names the first
    /// edited, missing or reordered event. With --control-plane alone:
    /// every replica's central copy (chains, gaps, anchors); with PATH,
    /// --control-plane and --replica: PATH against that replica's anchors,
    /// which finds a trail rewritten whole.
    Verify {
        /// A directory holding the trail, or its current file.
        path: Option<PathBuf>,
        /// The control plane's PostgreSQL URL.
        #[arg(long)]
        control_plane: Option<String>,
        /// A file whose first line is the control plane's password.
        #[arg(long, requires = "control_plane")]
        password_file: Option<PathBuf>,
        /// A key anchors must be signed by (`ed25519:…`, repeatable);
        /// without one, signatures are not checked.
        #[arg(long = "trusted-key", requires = "control_plane")]
        trusted_keys: Vec<String>,
        /// The replica whose anchors PATH is checked against.
        #[arg(long, requires_all = ["control_plane", "path"])]
        replica: Option<String>,
    },
    /// Replay sessions as readable timelines.
    Show {
        /// A directory holding the trail, or its current file.
        path: PathBuf,
        /// Only this session.
        #[arg(long)]
        session: Option<u64>,
        /// Only sessions of this subject.
        #[arg(long)]
        identity: Option<String>,
        /// Only events at or after this time (RFC 3339 or a prefix, e.g. 2026-11-30T10:15).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ApprovalAction {
    /// Pending requests (with --all, decided ones too).
    List {
        /// Include decided requests.
        #[arg(long)]
        all: bool,
    },
    /// One request.
    Show {
        /// Request id.
        id: String,
    },
    /// Approve a request.
    Approve {
        /// Request id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny a request.
    Deny {
        /// Request id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match (cli.command, cli.config) {
        (Some(command), _) => tool(command),
        (None, Some(config)) => serve(&config),
        (None, None) => {
            Err("give --config FILE to run the proxy, or a subcommand (see --help)".to_owned())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("clsf-proxy: error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr through `tracing`, filtered by `CLSF_LOG` (the
/// `RUST_LOG` syntax; `info` by default). The announcements that scripts
/// read (`clsf-proxy: listening on …`) are printed as plain lines.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLSF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

fn serve(path: &std::path::Path) -> Result<(), String> {
    init_logging();
    let config = config::load(path).map_err(|e| e.to_string())?;
    // Signals are the process's: handled on a runtime of main's own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (mut xfsz, mut hangup, mut terminate) = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        // Past a file-size limit, writes must fail (and statements be
        // refused for want of an audit trail) rather than the default
        // action of SIGXFSZ end the process.
        let xfsz =
            signal(SignalKind::from_raw(25)).map_err(|e| format!("cannot handle SIGXFSZ: {e}"))?;
        // SIGHUP forces a reload, for deployments that cannot rely on file
        // notifications (some network file systems).
        let hangup =
            signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
        // SIGTERM is how Kubernetes, systemd and `docker stop` ask a
        // process to stop: the same graceful, bounded stop as Ctrl-C.
        let terminate =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        Ok::<_, String>((xfsz, hangup, terminate))
    })?;
    let running = clsf_runtime::serve::start(config.clone()).map_err(|e| e.to_string())?;
    // These lines are read by scripts: keep their shape.
    eprintln!(
        "clsf-proxy: listening on {}, enforcing plan {}",
        running.addr,
        running.shared.current().plan_hash
    );
    if let (Some(admin), Some(addr)) = (&running.config.admin, running.admin) {
        eprintln!(
            "clsf-proxy: admin listening on {addr}; approvers use {}",
            admin.url()
        );
    }
    let shared = Arc::clone(&running.shared);
    let config = running.config.clone();
    runtime.block_on(async {
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                Some(()) = terminate.recv() => break,
                Some(()) = hangup.recv() => {
                    let (s, c) = (Arc::clone(&shared), config.clone());
                    let _ = tokio::task::spawn_blocking(move || reload::reload(&s, &c)).await;
                }
                Some(()) = xfsz.recv() => {}
            }
        }
    });
    running.shutdown();
    eprintln!("clsf-proxy: stopped");
    Ok(())
}

fn alg(name: &str) -> Result<keys::KeyAlg, String> {
    keys::parse_alg(name).ok_or_else(|| format!("unknown algorithm `{name}` (ES256 or RS256)"))
}

fn tool(command: Command) -> Result<(), String> {
    match command {
        Command::Keygen {
            key: KeyId { alg: a, kid },
            private_key,
            jwks,
        } => {
            let pair = keys::generate(alg(&a)?, &kid).map_err(|e| e.to_string())?;
            std::fs::write(&private_key, &pair.private_pem)
                .map_err(|e| format!("{}: {e}", private_key.display()))?;
            let text = serde_json::to_string_pretty(&pair.jwks).map_err(|e| e.to_string())?;
            std::fs::write(&jwks, text + "\n").map_err(|e| format!("{}: {e}", jwks.display()))?;
            Ok(())
        }
        Command::MintToken {
            key: KeyId { alg: a, kid },
            private_key,
            issuer,
            audience,
            subject,
            ttl,
            claims,
            claim_lists,
        } => {
            let pem = std::fs::read_to_string(&private_key)
                .map_err(|e| format!("{}: {e}", private_key.display()))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs() as i64;
            let mut body = json!({
                "iss": issuer, "aud": audience, "sub": subject,
                "iat": now, "exp": now + ttl,
            });
            for c in claims {
                let (k, v) = c
                    .split_once('=')
                    .ok_or_else(|| format!("--claim `{c}` is not NAME=VALUE"))?;
                body[k] = Value::String(v.to_owned());
            }
            for c in claim_lists {
                let (k, v) = c
                    .split_once('=')
                    .ok_or_else(|| format!("--claim-list `{c}` is not NAME=V1,V2"))?;
                body[k] = Value::Array(v.split(',').map(|s| Value::String(s.to_owned())).collect());
            }
            println!(
                "{}",
                keys::sign(alg(&a)?, &pem, &kid, &body).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Command::CheckConfig { path } => {
            let config = config::load(&path).map_err(|e| e.to_string())?;
            let plan_hash = start::check(&config).map_err(|e| e.to_string())?;
            println!(
                "ok: {} is valid; its policy compiles to plan {plan_hash}",
                path.display()
            );
            Ok(())
        }
        Command::ScramVerifier => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err("give the password on standard input".to_owned());
            }
            println!("{}", clsf_runtime::auth::scram::make_verifier(password));
            Ok(())
        }
        Command::McpStdio {
            url,
            token_file,
            ca_file,
            cert_file,
            key_file,
        } => {
            let identity = cert_file.as_deref().zip(key_file.as_deref()).map(|(c, k)| {
                clsf_runtime::auth::jwks::ClientIdentity {
                    cert_file: c,
                    key_file: k,
                }
            });
            // With a certificate, a token is optional (the listener takes the
            // certificate's identity first, as the wire protocol does).
            let token = match (&identity, &token_file, std::env::var_os("CLSF_TOKEN")) {
                (Some(_), None, None) => None,
                _ => Some(read_token(token_file.as_deref())?),
            };
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime
                .block_on(clsf_runtime::mcp::stdio::bridge(
                    &url,
                    token.as_deref(),
                    ca_file.as_deref(),
                    identity,
                ))
                .map_err(|e| e.to_string())
        }
        Command::Approvals {
            url,
            token_file,
            ca_file,
            json,
            action,
        } => approvals(
            &url,
            token_file.as_deref(),
            ca_file.as_deref(),
            json,
            action,
        ),
        Command::Audit {
            action:
                AuditAction::Verify {
                    path,
                    control_plane,
                    password_file,
                    trusted_keys,
                    replica,
                },
        } => {
            if let Some(path) = &path {
                let v = audit::verify_trail(path).map_err(|b| b.to_string())?;
                println!(
                    "ok: {} events in {} file(s), chain intact, head {}",
                    v.events, v.files, v.head
                );
            }
            match control_plane {
                Some(url) => verify_central(
                    &url,
                    password_file.as_deref(),
                    &trusted_keys,
                    path.as_deref().zip(replica.as_deref()),
                ),
                None if path.is_none() => {
                    Err("give a trail to verify, or --control-plane URL".to_owned())
                }
                None => Ok(()),
            }
        }
        Command::Audit {
            action:
                AuditAction::Show {
                    path,
                    session,
                    identity,
                    since,
                },
        } => {
            let filter = clsf_runtime::timeline::Filter {
                session,
                identity,
                since,
            };
            print!(
                "{}",
                clsf_runtime::timeline::show(&path, &filter).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Command::VerifyAudit { path } => {
            let text = audit::read_text(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            match audit::verify(&text) {
                Ok(n) => {
                    println!("ok: {n} events, chain intact, head {}", audit::head(&text));
                    Ok(())
                }
                Err(line) => Err(format!(
                    "the hash chain breaks at line {line}: the file was edited"
                )),
            }
        }
    }
}

/// The caller's token: from a file, or from `CLSF_TOKEN`.
/// `audit verify --control-plane`: every replica's central copy, or with
/// `local` (a trail and its replica's name) that trail against the
/// replica's anchors.
fn verify_central(
    url: &str,
    password_file: Option<&std::path::Path>,
    trusted: &[String],
    local: Option<(&std::path::Path, &str)>,
) -> Result<(), String> {
    use clsf_runtime::central_audit;
    let keys = trusted
        .iter()
        .map(|k| {
            clsf_compiler::signing::PublicKey::parse(k)
                .map_err(|e| format!("--trusted-key {k}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let password = password_file
        .map(|p| {
            clsf_catalog::connect::password_from_file(p)
                .map_err(|e| format!("{}: {e}", p.display()))
        })
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = clsf_catalog::connect::connect_with(url, password.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        if let Some((trail, replica)) = local {
            let n = central_audit::verify_local(&client, trail, replica, &keys)
                .await
                .map_err(|e| e.to_string())?;
            println!("ok: the trail holds the {n} events replica {replica} anchored, unchanged");
            return Ok(());
        }
        let reports = central_audit::verify(&client, &keys)
            .await
            .map_err(|e| format!("control plane: {e}"))?;
        if reports.is_empty() {
            return Err("the control plane holds no audit events".to_owned());
        }
        let mut broken = 0;
        for report in &reports {
            if report.intact() {
                println!("ok: {report}");
            } else {
                println!("BROKEN: {report}");
                broken += 1;
            }
        }
        if keys.is_empty() {
            println!("note: anchor signatures were not checked (give --trusted-key)");
        }
        if broken > 0 {
            Err(format!(
                "{broken} of {} replicas' trails are not intact",
                reports.len()
            ))
        } else {
            Ok(())
        }
    })
}

fn read_token(token_file: Option<&std::path::Path>) -> Result<String, String> {
    let token = match token_file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => std::env::var("CLSF_TOKEN")
            .map_err(|_| "give --token-file FILE or set CLSF_TOKEN".to_owned())?,
    };
    Ok(token.trim().to_owned())
}

fn approvals(
    url: &str,
    token_file: Option<&std::path::Path>,
    ca_file: Option<&std::path::Path>,
    json_out: bool,
    action: ApprovalAction,
) -> Result<(), String> {
    use clsf_runtime::admin::client;
    let token = read_token(token_file)?;
    let (path, body) = match &action {
        ApprovalAction::List { all } => (format!("/api/approvals?all={all}"), None),
        ApprovalAction::Show { id } => (format!("/api/approvals/{id}"), None),
        ApprovalAction::Approve { id, comment } => (
            format!("/api/approvals/{id}/approve"),
            Some(json!({ "comment": comment })),
        ),
        ApprovalAction::Deny { id, comment } => (
            format!("/api/approvals/{id}/deny"),
            Some(json!({ "comment": comment })),
        ),
    };
    if path.contains(['#', '?', ' ']) && !matches!(action, ApprovalAction::List { .. }) {
        return Err("a request id is hexadecimal".to_owned());
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let answer = runtime
        .block_on(client::call(url, &token, ca_file, &path, body))
        .map_err(|e| e.to_string())?;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    match action {
        ApprovalAction::List { .. } => {
            let requests = answer["requests"].as_array().cloned().unwrap_or_default();
            if requests.is_empty() {
                println!("no requests");
            }
            for r in &requests {
                print!("{}", client::describe(r));
            }
        }
        _ => print!("{}", client::describe(&answer)),
    }
    Ok(())
}
