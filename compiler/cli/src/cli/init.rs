//! `clsfc init`: a starter policy repository for a live database — the lock,
//! the suggestions, a main policy with example workload groups and a rule,
//! its tests, a proxy configuration and CI workflows — that passes
//! `clsfc check` and `clsfc test` as written.

use std::fmt::Write as _;
use std::path::Path;

use clsf_compiler::engine::rewrite::quote_ident;
use clsf_compiler::schema::{self, Schema};
use clsf_compiler::suggest::{self, Header, Proposal, Suggestions};

use super::Exit;
use super::suggest::{Options, formatted, gather, summary};

/// The GitHub Actions and GitLab CI examples, as tested in this repository.
const GITHUB_WORKFLOW: &str = include_str!("../../../../examples/ci/github-actions.yml");
const GITLAB_JOB: &str = include_str!("../../../../examples/ci/gitlab-ci.yml");

/// The starter policy. The claims are the ones these issuers send:
/// GitHub Actions' `repository` and `ref`, GitLab's `project_path` and
/// `ref_protected`, a Kubernetes projected service-account token's `sub`
/// and `kubernetes.io.namespace`.
const MAIN_POLICY: &str = r#"// The starter policy `clsfc init` wrote. Classify what the suggestions
// leave open, adjust the groups to your repositories and clusters, and keep
// `clsfc check` and `clsfc test` green in CI.

use std::pii
use std::secrets

// A column nobody classified is treated as the most protected label, and
// `clsfc check` lists such columns as a warning.
unclassified restricted

// GitHub Actions jobs of one repository's main branch (the job asks for an
// OIDC token with audience "clsf-proxy" and uses it as its password).
group github-actions {
  issuer "https://token.actions.githubusercontent.com"
  audience "clsf-proxy"
  claim repository == "your-org/your-repo"
  claim ref == "refs/heads/main"
}

// GitLab CI jobs of one project on protected branches (an `id_tokens`
// entry with `aud: clsf-proxy`).
group gitlab-ci {
  issuer "https://gitlab.com"
  audience "clsf-proxy"
  claim project_path == "your-group/your-project"
  claim ref_protected == "true"
}

// One Kubernetes service account (a projected token with audience
// "clsf-proxy"); the issuer is your cluster's `--service-account-issuer`.
group reporting-pods {
  issuer "https://kubernetes.default.svc.cluster.local"
  audience "clsf-proxy"
  subject == "system:serviceaccount:reporting:report-writer"
  claim "kubernetes.io".namespace == "reporting"
}

group workloads = github-actions or gitlab-ci or reporting-pods

// Workloads read internal data in clear, confidential data masked, and
// nothing restricted.
rule workloads_read for workloads {
  allow <= internal
  mask confidential
  deny restricted
}
"#;

/// Runs `clsfc init`.
pub fn run(options: &Options, dir: &Path) -> Result<Exit, String> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!(
            "{} is not empty; `clsfc init` writes into a new or empty directory and never overwrites",
            dir.display()
        ));
    }
    let (schema, samples) = gather(options)?;
    let suggestions = suggest::propose(&schema, &samples, None);
    let write = |relative: &str, text: &str| -> Result<(), String> {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("schema.lock.json", &schema::lock::to_string(&schema))?;
    write("policy/main.clsf", &formatted(MAIN_POLICY)?)?;
    write(
        "policy/suggested.clsf",
        &formatted(&suggest::render(
            &suggestions,
            &Header {
                per_column: options.budget.rows,
                import_labels: false,
            },
        ))?,
    )?;
    write("policy/main.test.toml", &tests(&schema, &suggestions))?;
    write("proxy.toml", &proxy_config(options.database_url))?;
    // The audit trail's directory, kept out of git.
    write("audit/.gitignore", "*\n!.gitignore\n")?;
    write(".github/workflows/clsf.yml", GITHUB_WORKFLOW)?;
    write(".gitlab/clsf.gitlab-ci.yml", GITLAB_JOB)?;
    eprintln!("{}", summary(&suggestions));
    println!(
        "wrote {dir}: schema.lock.json, policy/ (main.clsf, suggested.clsf, main.test.toml), \
         proxy.toml, CI for GitHub and GitLab.\nNext:\n  \
         clsfc check {dir}/policy --schema {dir}/schema.lock.json\n  \
         clsfc test {dir}/policy --schema {dir}/schema.lock.json\n\
         then review policy/suggested.clsf, set the groups' repositories and \
         cluster, and give proxy.toml its TLS certificate.",
        dir = dir.display()
    );
    Ok(Exit::Ok)
}

/// Identities of the three example groups, and one from another repository.
const GITHUB: &str = r#"{ iss = "https://token.actions.githubusercontent.com", aud = "clsf-proxy", sub = "repo:your-org/your-repo:ref:refs/heads/main", repository = "your-org/your-repo", ref = "refs/heads/main" }"#;
const GITLAB: &str = r#"{ iss = "https://gitlab.com", aud = "clsf-proxy", sub = "project_path:your-group/your-project:ref_type:branch:ref:main", project_path = "your-group/your-project", ref_protected = "true" }"#;
const KUBERNETES: &str = r#"{ iss = "https://kubernetes.default.svc.cluster.local", aud = "clsf-proxy", sub = "system:serviceaccount:reporting:report-writer", "kubernetes.io" = { namespace = "reporting" } }"#;
const STRANGER: &str = r#"{ iss = "https://token.actions.githubusercontent.com", aud = "clsf-proxy", sub = "repo:someone/else:ref:refs/heads/main", repository = "someone/else", ref = "refs/heads/main" }"#;

/// Test cases from what the database holds: each example group reads a
/// suggested masked column masked, a restricted one is refused, and a job
/// of another repository reads nothing.
fn tests(schema: &Schema, s: &Suggestions) -> String {
    let mut out = String::from(
        "# Policy tests `clsfc init` wrote from the suggestions (`clsfc test policy\n\
         # --schema schema.lock.json`). Add a case for every decision you rely on.\n",
    );
    let select = |p: &Proposal| {
        format!(
            "SELECT {} FROM {}.{}",
            quote_ident(&p.column),
            quote_ident(&p.schema),
            quote_ident(&p.table)
        )
    };
    let case = |out: &mut String, name: &str, identity: &str, sql: &str, expect: &str| {
        let _ = write!(
            out,
            "\n[[case]]\nname = {}\nidentity = {identity}\nsql = {}\nexpect = \"{expect}\"\n",
            toml_string(name),
            toml_string(sql)
        );
    };
    if let Some(p) = s
        .proposals
        .iter()
        .find(|p| p.mask.is_some() && p.label == "confidential")
    {
        let column = format!("{}.{}.{}", p.schema, p.table, p.column);
        for (group, identity) in [
            ("GitHub Actions", GITHUB),
            ("GitLab CI", GITLAB),
            ("the reporting pods", KUBERNETES),
        ] {
            case(
                &mut out,
                &format!("{group} read {column} masked"),
                identity,
                &select(p),
                "mask",
            );
            let _ = writeln!(out, "masked = [{}]", toml_string(&column));
        }
    }
    if let Some(p) = s.proposals.iter().find(|p| p.label == "restricted") {
        case(
            &mut out,
            &format!("workloads never read {}.{}.{}", p.schema, p.table, p.column),
            GITHUB,
            &select(p),
            "deny",
        );
    }
    if let Some(relation) = schema
        .relations
        .iter()
        .find(|r| suggest::is_suggested(r) && !r.columns.is_empty())
    {
        case(
            &mut out,
            "a job of another repository is nobody",
            STRANGER,
            &format!(
                "SELECT {} FROM {}.{}",
                quote_ident(&relation.columns[0].name),
                quote_ident(&relation.schema),
                quote_ident(&relation.name)
            ),
            "deny",
        );
    }
    out
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A proxy configuration for the database the lock came from: its host,
/// port, database and user, the password from the environment (never
/// written), the three issuers of the example groups, and an audit trail.
fn proxy_config(url: &str) -> String {
    let target = UrlParts::parse(url);
    format!(
        r#"# clsf-proxy configuration `clsfc init` wrote; every setting is described
# in examples/proxy.toml of the clsf repository. Check it with
# `clsf-proxy check-config proxy.toml`.

listen = "0.0.0.0:6432"

[upstream]
host = {host}
port = {port}
database = {database}
user = {user}                    # the role the proxy logs in as; give it only what the policy may grant
password_env = "CLSF_UPSTREAM_PASSWORD"   # its password; never written in this file
{tls}

[policy]
dir = "policy"
schema_lock = "schema.lock.json"

[[identity.issuer]]
issuer = "https://token.actions.githubusercontent.com"
audience = "clsf-proxy"
jwks_url = "https://token.actions.githubusercontent.com/.well-known/jwks"

[[identity.issuer]]
issuer = "https://gitlab.com"
audience = "clsf-proxy"
jwks_url = "https://gitlab.com/oauth/discovery/keys"

# Your cluster's service-account issuer and its keys (`kubectl get --raw
# /openid/v1/jwks > cluster-jwks.json`).
[[identity.issuer]]
issuer = "https://kubernetes.default.svc.cluster.local"
audience = "clsf-proxy"
jwks_file = "cluster-jwks.json"

[audit]
path = "audit/audit.jsonl"

# Clients send their token as a password: give the proxy a certificate
# before it leaves a test network.
# [tls]
# cert_file = "proxy.pem"
# key_file = "proxy.key"
# required = true
"#,
        host = toml_string(&target.host),
        port = target.port,
        database = toml_string(&target.database),
        user = toml_string(&target.user),
        tls = match (target.sslmode.as_deref(), &target.sslrootcert) {
            (Some(mode @ ("verify-full" | "verify-ca")), Some(root)) => format!(
                "sslmode = {}\nsslrootcert = {}",
                toml_string(mode),
                toml_string(root)
            ),
            (Some("disable"), _) => "sslmode = \"disable\"          \
                 # as the URL said; use verify-full with sslrootcert off loopback"
                .to_owned(),
            _ => "sslmode = \"require\"          \
                 # encrypted; verify-full with sslrootcert = \"ca.pem\" also checks the server"
                .to_owned(),
        },
    )
}

/// Host, port, database and user of a libpq URL or key/value string; the
/// password is never read out of it.
struct UrlParts {
    host: String,
    port: u16,
    database: String,
    user: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl UrlParts {
    fn parse(url: &str) -> UrlParts {
        let mut parts = UrlParts {
            host: "localhost".into(),
            port: 5432,
            database: "postgres".into(),
            user: "clsf_gateway".into(),
            sslmode: None,
            sslrootcert: None,
        };
        // tokio-postgres does not keep `sslrootcert`; read both TLS
        // parameters from the URL's query or the key/value string.
        let params = url.split_once('?').map_or(url, |(_, q)| q);
        for pair in params.split(['&', ' ']) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => parts.sslmode = Some(v.to_owned()),
                Some(("sslrootcert", v)) => parts.sslrootcert = Some(v.to_owned()),
                _ => {}
            }
        }
        if let Ok(config) = url.parse::<tokio_postgres::Config>() {
            if let Some(tokio_postgres::config::Host::Tcp(h)) = config.get_hosts().first() {
                parts.host.clone_from(h);
            }
            if let Some(p) = config.get_ports().first() {
                parts.port = *p;
            }
            if let Some(d) = config.get_dbname() {
                parts.database = d.to_owned();
            }
            if let Some(u) = config.get_user() {
                parts.user = u.to_owned();
            }
        }
        parts
    }
}
