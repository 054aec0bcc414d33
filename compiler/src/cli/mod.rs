//! The `clsfc` commands and their exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use clsf_compiler::load::{self, Compiled};
use clsf_compiler::{Engine, bundle, schema};

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
    /// Work with the schema lock file.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Parse, resolve and type-check a policy against a schema lock file.
    Check {
        /// The policy directory.
        policy_dir: PathBuf,
        /// The schema lock file.
        #[arg(long)]
        schema: PathBuf,
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
    },
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
        Command::Check { policy_dir, schema } => check(&policy_dir, &schema, color),
        Command::Build {
            policy_dir,
            schema,
            out,
        } => build(&policy_dir, &schema, &out, color),
    };
    match result {
        Ok(exit) => exit,
        Err(message) => {
            eprintln!("error: {message}");
            Exit::Usage
        }
    }
}

fn pull(url: &str, out: Option<PathBuf>, schemas: &[String]) -> Result<Exit, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let schema = runtime
        .block_on(schema::pull::pull(url, schemas))
        .map_err(|e| e.to_string())?;
    let text = schema::lock::to_string(&schema);
    match out {
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(Exit::Ok)
}

/// Compiles and prints diagnostics; `None` when the policy has errors.
fn compile(
    policy_dir: &std::path::Path,
    lock: &std::path::Path,
    color: bool,
) -> Result<Option<Compiled>, String> {
    let compiled = load::compile_dir(policy_dir, lock)?;
    if !compiled.diagnostics.is_empty() {
        eprint!(
            "{}",
            clsf_lang::render(&compiled.diagnostics, &compiled.sources, color)
        );
    }
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = compiled.diagnostics.len() - errors;
    if errors > 0 {
        eprintln!("error: policy has {errors} error(s) and {warnings} warning(s)");
        return Ok(None);
    }
    Ok(Some(compiled))
}

fn check(
    policy_dir: &std::path::Path,
    lock: &std::path::Path,
    color: bool,
) -> Result<Exit, String> {
    let Some(compiled) = compile(policy_dir, lock, color)? else {
        return Ok(Exit::PolicyErrors);
    };
    let plan = compiled.plan.expect("no errors means a plan");
    // Generating Cedar validates it in strict mode; a failure is a compiler bug.
    Engine::new(plan).map_err(|e| e.to_string())?;
    eprintln!(
        "ok: policy checked ({} warning(s))",
        compiled.diagnostics.len()
    );
    Ok(Exit::Ok)
}

fn build(
    policy_dir: &std::path::Path,
    lock: &std::path::Path,
    out: &std::path::Path,
    color: bool,
) -> Result<Exit, String> {
    let Some(compiled) = compile(policy_dir, lock, color)? else {
        return Ok(Exit::PolicyErrors);
    };
    let engine =
        Engine::new(compiled.plan.expect("no errors means a plan")).map_err(|e| e.to_string())?;
    let hash = bundle::write(out, engine.plan(), engine.generated())?;
    eprintln!("ok: wrote {} (content hash {hash})", out.display());
    Ok(Exit::Ok)
}
