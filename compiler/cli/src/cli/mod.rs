//! The `clsfc` commands and their exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

mod diff;
mod explain;
mod fmt;
mod init;
mod lsp;
mod publish;
mod suggest;
mod test;
mod who_can;

use clsf_compiler::load::{self, Compiled};
use clsf_compiler::{Engine, bundle, report, schema, verify};

/// Compile and check clsf data-classification policies.
#[derive(Parser, Debug)]
#[command(name = "clsfc", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Colour diagnostics.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    color: Color,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the Language Server Protocol on stdin and stdout for editors:
    /// diagnostics as you type (against the `schema.lock.json` next to the
    /// policy or above it), formatting and document symbols.
    Lsp,
    /// Propose classifications for a live database's columns from their
    /// names, types and a bounded random sample of their values (card
    /// numbers with Luhn, IBANs, e-mail, phone and national identifiers,
    /// IP addresses, tokens, password hashes). Writes a `.clsf` file of
    /// suggestions for review, each with its evidence; never a sampled value.
    Suggest {
        /// A libpq-style URL (as for `schema pull`). Sampling runs in a
        /// read-only transaction.
        #[arg(long)]
        database_url: String,
        /// Rows sampled per table at most.
        #[arg(long = "sample", default_value_t = 500)]
        rows: u32,
        /// Seconds all sampling may take; a table that does not finish in its
        /// share is skipped (its names and types still count).
        #[arg(long, default_value_t = 60.0)]
        budget: f64,
        /// Seed for reproducible samples (`TABLESAMPLE … REPEATABLE`).
        #[arg(long)]
        seed: Option<u32>,
        /// An existing policy: the columns it classifies are reported only
        /// where the evidence asks for more.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Only this schema (repeatable).
        #[arg(long = "schema")]
        schemas: Vec<String>,
        /// Output file (standard output when omitted).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Start a policy repository for a live database in DIR: the schema
    /// lock, the suggestions, a main policy with example groups for GitHub
    /// Actions, GitLab CI and a Kubernetes service account, its tests, a
    /// proxy configuration and CI workflows. Never overwrites: DIR must be
    /// new or empty.
    Init {
        /// A libpq-style URL (as for `schema pull`).
        #[arg(long)]
        database_url: String,
        /// The directory to create.
        dir: PathBuf,
        /// Rows sampled per table at most.
        #[arg(long = "sample", default_value_t = 500)]
        rows: u32,
        /// Seconds all sampling may take.
        #[arg(long, default_value_t = 60.0)]
        budget: f64,
        /// Only this schema (repeatable).
        #[arg(long = "schema")]
        schemas: Vec<String>,
    },
    /// Work with the schema lock file.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Parse, resolve and type-check a policy against a schema lock file
    /// (or the live catalog of a database).
    Check {
        /// The policy directory.
        policy_dir: PathBuf,
        /// The schema lock file.
        #[arg(long, required_unless_present = "database_url")]
        schema: Option<PathBuf>,
        /// Check against the live catalog of this database instead of a
        /// lock file (same URL forms as `schema pull`).
        #[arg(long, conflicts_with = "schema")]
        database_url: Option<String>,
        /// Output format (json, sarif and github go to standard output).
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Exit 1 on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// Also prove properties of the generated Cedar with the cvc5 SMT
        /// solver: forbids that can error or never match, clauses that are
        /// shadowed or redundant, groups with no possible member.
        #[arg(long)]
        verify: bool,
        /// The cvc5 executable (default: $CVC5, else `cvc5` on PATH, else
        /// PyPI's cvc5 package under python3).
        #[arg(long, requires = "verify")]
        solver: Option<PathBuf>,
        /// Seconds the solver may spend on one question.
        #[arg(long, default_value_t = 60, requires = "verify")]
        solver_timeout: u64,
    },
    /// Explain a diagnostic code (`clsfc explain CLSF0101`), a function's
    /// class (`clsfc explain --function to_regtype`), or what the statement
    /// engine does with a statement for an identity
    /// (`clsfc explain --policy DIR --schema LOCK --identity CLAIMS.json --sql "…"`).
    Explain {
        /// A diagnostic code, with or without the `CLSF` prefix.
        #[arg(required_unless_present_any = ["sql", "function"], conflicts_with_all = ["sql", "function"])]
        code: Option<String>,
        /// A function's name (`schema.name` or `name`): its class, and
        /// whether identities with masked or denied columns may call it.
        #[arg(long, conflicts_with = "sql")]
        function: Option<String>,
        /// The statement (one or more, as a client would send them).
        #[arg(long, requires_all = ["policy", "schema", "identity"])]
        sql: Option<String>,
        /// The policy directory.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The schema lock file.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// A JSON file with the identity's verified token claims.
        #[arg(long)]
        identity: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: ExplainFormat,
    },
    /// Who gains access to what: effective permissions per group, column
    /// and action under two policies (escalations first).
    Diff {
        /// The old policy directory.
        #[arg(required_unless_present = "git")]
        old: Option<PathBuf>,
        /// The new policy directory.
        #[arg(required_unless_present = "git")]
        new: Option<PathBuf>,
        /// Compare the policy directory at two git revisions instead.
        #[arg(long, num_args = 2, value_names = ["OLD_REV", "NEW_REV"], conflicts_with_all = ["old", "new"])]
        git: Option<Vec<String>>,
        /// The policy directory in the repository (with --git).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The schema lock file both are compiled against.
        #[arg(long)]
        schema: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: diff::Format,
        /// Exit 1 when any group's access grows (with --verify: when the
        /// solver proves that the new policy allows more for some group).
        #[arg(long)]
        fail_on_escalation: bool,
        /// Prove, per group and action, whether the new policy is
        /// equivalent, wider, narrower or incomparable, with a
        /// counterexample for every widening (needs the cvc5 solver).
        #[arg(long)]
        verify: bool,
        /// The cvc5 executable (default: $CVC5, else `cvc5` on PATH, else
        /// PyPI's cvc5 package under python3).
        #[arg(long, requires = "verify")]
        solver: Option<PathBuf>,
        /// Seconds the solver may spend on one question.
        #[arg(long, default_value_t = 60, requires = "verify")]
        solver_timeout: u64,
    },
    /// The exposure report: for each group, column and action, who can do
    /// it, how (clear, masked, with approval) and through which clause,
    /// every cell proved by the cvc5 solver.
    WhoCan {
        /// The policy directory.
        policy_dir: PathBuf,
        /// The schema lock file.
        #[arg(long)]
        schema: PathBuf,
        /// Only this column (`schema.table.column` or `table.column`).
        #[arg(long, conflicts_with_all = ["label", "category"])]
        column: Option<String>,
        /// Only columns with this label.
        #[arg(long, conflicts_with = "category")]
        label: Option<String>,
        /// Only columns tagged with this category.
        #[arg(long)]
        category: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: who_can::Format,
        /// Print the report without proving it (no solver needed).
        #[arg(long)]
        no_proof: bool,
        /// The cvc5 executable (default: $CVC5, else `cvc5` on PATH, else
        /// PyPI's cvc5 package under python3).
        #[arg(long, conflicts_with = "no_proof")]
        solver: Option<PathBuf>,
        /// Seconds the solver may spend on one question.
        #[arg(long, default_value_t = 60)]
        solver_timeout: u64,
    },
    /// Run the policy's unit tests (`*.test.toml` files under the policy directory).
    Test {
        /// The policy directory.
        policy_dir: PathBuf,
        /// The schema lock file.
        #[arg(long)]
        schema: PathBuf,
        /// Report the rules, groups and labels no case exercised.
        #[arg(long)]
        coverage: bool,
        /// Exit 1 when coverage (percent) is below this.
        #[arg(long)]
        min_coverage: Option<f64>,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: test::Format,
    },
    /// Format policy files canonically (in place), or check that they are.
    Fmt {
        /// Files or directories (every `.clsf` file below).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Change nothing; exit 1 and print a diff when a file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Compile a policy into Cedar policies and a masking plan.
    Build {
        /// The policy directory.
        policy_dir: PathBuf,
        /// The schema lock file.
        #[arg(long)]
        schema: PathBuf,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
        /// Sign the manifest with this secret key (from `clsfc keygen`).
        #[arg(long)]
        sign: Option<PathBuf>,
        /// The bundle's version (default: the current Unix time in
        /// seconds); a proxy refuses to replace a bundle with an older one.
        #[arg(long)]
        bundle_version: Option<u64>,
    },
    /// Make an ed25519 key pair for signing bundles: PREFIX.key (secret,
    /// mode 0600) and PREFIX.pub (the line for `[policy] trusted_keys`).
    Keygen {
        /// Path prefix of the two files.
        prefix: PathBuf,
    },
    /// Publish a bundle written by `clsfc build` to the control plane's
    /// database: replicas with `[control_plane] follow_bundles = true` fetch
    /// it, check its signature against their trusted keys and run it.
    /// Refused unless its version is above every one published before.
    Publish {
        /// The bundle folder.
        bundle: PathBuf,
        /// The control plane's PostgreSQL URL (`sslmode` and `sslrootcert`
        /// as libpq's).
        #[arg(long)]
        control_plane: String,
        /// A file whose first line is the password, when it is not in the
        /// URL or `PGPASSWORD`.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// rustc-style text on standard error.
    Human,
    /// clsf's JSON report (version 1).
    Json,
    /// SARIF 2.1.0.
    Sarif,
    /// GitHub Actions workflow commands.
    Github,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ExplainFormat {
    /// Text.
    Human,
    /// JSON.
    Json,
}

#[derive(Subcommand, Debug)]
enum SchemaCommand {
    /// Read the schema of a live database into a lock file.
    Pull {
        /// A libpq-style URL, e.g. postgres://user@127.0.0.1:5432/db (the password
        /// may be given in the URL or in PGPASSWORD).
        #[arg(long)]
        database_url: String,
        /// Output file (standard output when omitted).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Pull only this schema (repeatable).
        #[arg(long = "schema")]
        schemas: Vec<String>,
    },
    /// Show what changed between two lock files: relations, columns, keys,
    /// view definitions, types and SECURITY DEFINER functions.
    Diff {
        /// The old lock file.
        old: PathBuf,
        /// The new lock file.
        new: PathBuf,
        /// Exit 1 when there are changes (0 when there are none).
        #[arg(long)]
        exit_code: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: DriftFormat,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DriftFormat {
    /// One line per object, `+`/`-`/`~`, details indented.
    Text,
    /// A JSON array of changes.
    Json,
}

/// Exit status of `clsfc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The policy has errors.
    PolicyErrors = 1,
    /// Bad usage, unreadable input, unreachable database.
    Usage = 2,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Exit {
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let result = match cli.command {
        Command::Schema {
            command:
                SchemaCommand::Pull {
                    database_url,
                    out,
                    schemas,
                },
        } => pull(&database_url, out, &schemas),
        Command::Schema {
            command:
                SchemaCommand::Diff {
                    old,
                    new,
                    exit_code,
                    format,
                },
        } => schema_diff(&old, &new, exit_code, format),
        Command::Check {
            policy_dir,
            schema,
            database_url,
            format,
            deny_warnings,
            verify,
            solver,
            solver_timeout,
        } => {
            let source = match (schema, database_url) {
                (Some(lock), _) => SchemaSource::Lock(lock),
                (None, Some(url)) => SchemaSource::Database(url),
                (None, None) => unreachable!("clap requires --schema or --database-url"),
            };
            let verify = verify.then(|| verify::SolverConfig {
                path: solver,
                timeout: std::time::Duration::from_secs(solver_timeout.max(1)),
            });
            check(&policy_dir, &source, color, format, deny_warnings, verify)
        }
        Command::Explain {
            code,
            function: Some(function),
            format,
            ..
        } if code.is_none() => explain::function(&function, format == ExplainFormat::Json),
        Command::Explain {
            code,
            sql,
            policy,
            schema,
            identity,
            format,
            ..
        } => match (code, sql, policy, schema, identity) {
            (Some(code), ..) => explain::code(&code),
            (None, Some(sql), Some(policy), Some(schema), Some(identity)) => explain::statement(
                &policy,
                &schema,
                &identity,
                &sql,
                format == ExplainFormat::Json,
            ),
            _ => Err(
                "give a diagnostic code, or --sql with --policy, --schema and --identity"
                    .to_owned(),
            ),
        },
        Command::Suggest {
            database_url,
            rows,
            budget,
            seed,
            policy,
            schemas,
            out,
        } => suggest::budget(rows, budget, seed).and_then(|budget| {
            suggest::run(
                &suggest::Options {
                    database_url: &database_url,
                    schemas: &schemas,
                    budget,
                },
                policy.as_deref(),
                out,
            )
        }),
        Command::Init {
            database_url,
            dir,
            rows,
            budget,
            schemas,
        } => suggest::budget(rows, budget, None).and_then(|budget| {
            init::run(
                &suggest::Options {
                    database_url: &database_url,
                    schemas: &schemas,
                    budget,
                },
                &dir,
            )
        }),
        Command::Fmt { paths, check } => fmt::run(&paths, check),
        Command::Lsp => lsp::run(),
        Command::WhoCan {
            policy_dir,
            schema,
            column,
            label,
            category,
            format,
            no_proof,
            solver,
            solver_timeout,
        } => {
            let selection = match (column, label, category) {
                (Some(c), ..) => verify::who_can::Selection::Column(c),
                (_, Some(l), _) => verify::who_can::Selection::Label(l),
                (.., Some(c)) => verify::who_can::Selection::Category(c),
                _ => verify::who_can::Selection::All,
            };
            let solver = (!no_proof).then(|| verify::SolverConfig {
                path: solver,
                timeout: std::time::Duration::from_secs(solver_timeout.max(1)),
            });
            who_can::run(&policy_dir, &schema, &selection, format, solver)
        }
        Command::Test {
            policy_dir,
            schema,
            coverage,
            min_coverage,
            format,
        } => test::run(&policy_dir, &schema, coverage, min_coverage, format),
        Command::Diff {
            old,
            new,
            git,
            policy,
            schema,
            format,
            fail_on_escalation,
            verify,
            solver,
            solver_timeout,
        } => {
            let verify = verify.then(|| verify::SolverConfig {
                path: solver,
                timeout: std::time::Duration::from_secs(solver_timeout.max(1)),
            });
            diff::run(
                diff::Inputs {
                    old,
                    new,
                    git,
                    policy,
                },
                &schema,
                format,
                fail_on_escalation,
                verify,
            )
        }
        Command::Build {
            policy_dir,
            schema,
            out,
            sign,
            bundle_version,
        } => build(
            &policy_dir,
            &schema,
            &out,
            color,
            sign.as_deref(),
            bundle_version,
        ),
        Command::Keygen { prefix } => keygen(&prefix),
        Command::Publish {
            bundle,
            control_plane,
            password_file,
        } => publish::run(&bundle, &control_plane, password_file.as_deref()),
    };
    match result {
        Ok(exit) => exit,
        Err(message) => {
            eprintln!("error: {message}");
            Exit::Usage
        }
    }
}

/// Reads the live catalog of the database at `url`.
fn pull_schema(url: &str, schemas: &[String]) -> Result<schema::Schema, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(clsf_catalog::pull::pull(url, schemas))
        .map_err(|e| e.to_string())
}

fn pull(url: &str, out: Option<PathBuf>, schemas: &[String]) -> Result<Exit, String> {
    let schema = pull_schema(url, schemas)?;
    let text = schema::lock::to_string(&schema);
    match out {
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(Exit::Ok)
}

fn schema_diff(
    old: &std::path::Path,
    new: &std::path::Path,
    exit_code: bool,
    format: DriftFormat,
) -> Result<Exit, String> {
    let changes = {
        let read = |p: &std::path::Path| load::read_lock(p).map_err(|e| e.to_string());
        schema::drift::diff(&read(old)?, &read(new)?)
    };
    match format {
        DriftFormat::Text if changes.is_empty() => eprintln!("no changes"),
        DriftFormat::Text => {
            for c in &changes {
                println!("{c}");
            }
            eprintln!("{} change(s)", changes.len());
        }
        DriftFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&changes).map_err(|e| e.to_string())?
        ),
    }
    Ok(if exit_code && !changes.is_empty() {
        Exit::PolicyErrors
    } else {
        Exit::Ok
    })
}

/// Where `check` gets the schema from.
enum SchemaSource {
    Lock(PathBuf),
    Database(String),
}

/// Compiles and prints diagnostics; `None` when the policy has errors.
fn compile(
    policy_dir: &std::path::Path,
    lock: &std::path::Path,
    color: bool,
) -> Result<Option<Compiled>, String> {
    compile_as(
        policy_dir,
        &SchemaSource::Lock(lock.to_owned()),
        color,
        Format::Human,
    )
}

fn compile_as(
    policy_dir: &std::path::Path,
    source: &SchemaSource,
    color: bool,
    format: Format,
) -> Result<Option<Compiled>, String> {
    let compiled = compile_quiet(policy_dir, source)?;
    print_diagnostics(policy_dir, &compiled, color, format);
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = compiled.diagnostics.len() - errors;
    if errors > 0 {
        eprintln!("error: policy has {errors} error(s) and {warnings} warning(s)");
        return Ok(None);
    }
    Ok(Some(compiled))
}

fn compile_quiet(policy_dir: &std::path::Path, source: &SchemaSource) -> Result<Compiled, String> {
    match source {
        SchemaSource::Lock(lock) => load::compile_dir(policy_dir, lock).map_err(|e| e.to_string()),
        SchemaSource::Database(url) => {
            load::compile_against(policy_dir, &pull_schema(url, &[])?).map_err(|e| e.to_string())
        }
    }
}

/// Prints diagnostics in the chosen format (json, sarif and github on
/// standard output, human on standard error).
fn print_diagnostics(
    policy_dir: &std::path::Path,
    compiled: &Compiled,
    color: bool,
    format: Format,
) {
    let base = policy_dir.display().to_string();
    let base = base.trim_start_matches("./");
    match format {
        Format::Human if !compiled.diagnostics.is_empty() => eprint!(
            "{}",
            clsf_lang::render(&compiled.diagnostics, &compiled.sources, color)
        ),
        Format::Human => {}
        Format::Json => print!("{}", report::json(&compiled.diagnostics, &compiled.sources)),
        Format::Sarif => print!(
            "{}",
            report::sarif(&compiled.diagnostics, &compiled.sources, base)
        ),
        Format::Github => print!(
            "{}",
            report::github(&compiled.diagnostics, &compiled.sources, base)
        ),
    }
}

fn check(
    policy_dir: &std::path::Path,
    source: &SchemaSource,
    color: bool,
    format: Format,
    deny_warnings: bool,
    verify: Option<verify::SolverConfig>,
) -> Result<Exit, String> {
    let Some(config) = verify else {
        let Some(compiled) = compile_as(policy_dir, source, color, format)? else {
            return Ok(Exit::PolicyErrors);
        };
        let plan = compiled.plan.expect("no errors means a plan");
        // Generating Cedar validates it in strict mode; a failure is a compiler bug.
        Engine::new(plan).map_err(|e| e.to_string())?;
        return Ok(finish(compiled.diagnostics.len(), deny_warnings));
    };
    let mut compiled = compile_quiet(policy_dir, source)?;
    if let Some(plan) = compiled.plan.clone() {
        let engine = Engine::new(plan).map_err(|e| e.to_string())?;
        let mut prover = match verify::Prover::start(&config) {
            Ok(p) => p,
            Err(e) => {
                print_diagnostics(policy_dir, &compiled, color, format);
                eprintln!("error: {e}");
                return Ok(Exit::Usage);
            }
        };
        let started = std::time::Instant::now();
        let report = verify::check(engine.plan(), engine.generated(), &mut prover)
            .map_err(|e| e.to_string())?;
        eprintln!(
            "verify: {} policies over {} column classes, {} solver questions in {:.1} s ({})",
            report.policies,
            report.classes,
            prover.questions,
            started.elapsed().as_secs_f64(),
            prover.launch()
        );
        // A clause the resolver already found to target nothing (CLSF0202)
        // is not reported again as proved to match nothing.
        let known: Vec<_> = compiled
            .diagnostics
            .iter()
            .filter(|d| d.code == "CLSF0202")
            .filter_map(|d| d.primary.as_ref().map(|p| p.0))
            .collect();
        compiled
            .diagnostics
            .extend(report.diagnostics.into_iter().filter(|d| {
                d.code != "CLSF0302" || !d.primary.as_ref().is_some_and(|p| known.contains(&p.0))
            }));
    }
    print_diagnostics(policy_dir, &compiled, color, format);
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = compiled.diagnostics.len() - errors;
    if errors > 0 {
        eprintln!("error: policy has {errors} error(s) and {warnings} warning(s)");
        return Ok(Exit::PolicyErrors);
    }
    Ok(finish(warnings, deny_warnings))
}

/// The exit of a check without errors.
fn finish(warnings: usize, deny_warnings: bool) -> Exit {
    if deny_warnings && warnings > 0 {
        eprintln!("error: {warnings} warning(s), and --deny-warnings is set");
        return Exit::PolicyErrors;
    }
    eprintln!("ok: policy checked ({warnings} warning(s))");
    Exit::Ok
}

fn build(
    policy_dir: &std::path::Path,
    lock: &std::path::Path,
    out: &std::path::Path,
    color: bool,
    sign: Option<&std::path::Path>,
    version: Option<u64>,
) -> Result<Exit, String> {
    // The key is read first: a bad key path fails before anything is written.
    let key = match sign {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the signing key {}: {e}", path.display()))?;
            Some(
                clsf_compiler::signing::SecretKey::parse(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            )
        }
    };
    let Some(compiled) = compile(policy_dir, lock, color)? else {
        return Ok(Exit::PolicyErrors);
    };
    let engine =
        Engine::new(compiled.plan.expect("no errors means a plan")).map_err(|e| e.to_string())?;
    let version = match version {
        Some(v) => v,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs(),
    };
    let hash = bundle::write_signed(
        out,
        engine.plan(),
        engine.generated(),
        version,
        key.as_ref(),
    )
    .map_err(|e| e.to_string())?;
    match &key {
        Some(k) => eprintln!(
            "ok: wrote {} (version {version}, content hash {hash}, signed by key {})",
            out.display(),
            k.public().id()
        ),
        None => eprintln!(
            "ok: wrote {} (version {version}, content hash {hash}, unsigned)",
            out.display()
        ),
    }
    Ok(Exit::Ok)
}

fn keygen(prefix: &std::path::Path) -> Result<Exit, String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = clsf_compiler::signing::SecretKey::generate().map_err(|e| e.to_string())?;
    let secret = prefix.with_extension("key");
    let public = prefix.with_extension("pub");
    // Created with mode 0600, and never over an existing key.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret)
        .map_err(|e| format!("{}: {e}", secret.display()))?;
    file.write_all(key.to_file_text().as_bytes())
        .map_err(|e| format!("{}: {e}", secret.display()))?;
    std::fs::write(&public, format!("{}\n", key.public()))
        .map_err(|e| format!("{}: {e}", public.display()))?;
    eprintln!(
        "ok: wrote {} (secret) and {} (public, key id {}); trust it with\n    trusted_keys = [\"{}\"]",
        secret.display(),
        public.display(),
        key.public().id(),
        key.public()
    );
    Ok(Exit::Ok)
}
