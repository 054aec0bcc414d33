//! The SMT solver behind verification: finding cvc5, and asking Cedar's
//! symbolic compiler (cedar-policy-symcc) questions with a time bound.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet};

/// The solver version cedar-policy-symcc 0.8 is built and tested against.
pub const CVC5_VERSION: &str = "1.3.1";

/// How to install the solver, for the message when it is missing.
pub const INSTALL_HINT: &str = "verification needs the cvc5 SMT solver, version 1.3.1 (the one \
Cedar's symbolic compiler is tested with). Install it from PyPI with \
`python3 -m pip install cvc5==1.3.1` (clsfc then runs it through its own solver loop), or put a \
cvc5 1.3.1 executable on PATH, or give one with --solver or the CVC5 environment variable";

/// The solver loop over PyPI's cvc5 package (see the script's comment),
/// run with `python3 -c` when no cvc5 executable is found.
const PYTHON_LOOP: &str = include_str!("../../solver/cvc5");

/// A failure of clsf's own making (the symbolic compiler rejected what
/// clsf generated).
pub(crate) fn internal(e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Internal(e.to_string())
}

/// Where the solver is and how long one question may take.
#[derive(Clone, Debug)]
pub struct SolverConfig {
    /// The executable given on the command line, if any.
    pub path: Option<PathBuf>,
    /// Wall-clock bound per question.
    pub timeout: Duration,
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            path: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Why verification could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No solver executable was found.
    #[error("{tried}: no such solver executable. {INSTALL_HINT}")]
    SolverMissing {
        /// What was looked for.
        tried: String,
    },
    /// The solver did not start or answer a first question.
    #[error("the solver {path} does not work: {reason}. {INSTALL_HINT}")]
    SolverBroken {
        /// The executable.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The report's selection names nothing.
    #[error("{0}")]
    Selection(String),
    /// The generated Cedar could not be compiled symbolically (a clsf bug).
    #[error("internal error: Cedar's symbolic compiler rejected the generated policies: {0}")]
    Internal(String),
}

/// How the solver is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// A cvc5 executable (or a command that behaves as one).
    Executable(PathBuf),
    /// `python3` running clsf's solver loop over the cvc5 package.
    PythonPackage,
}

impl std::fmt::Display for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Launch::Executable(p) => write!(f, "{}", p.display()),
            Launch::PythonPackage => write!(f, "python3 with the cvc5 package"),
        }
    }
}

impl SolverConfig {
    /// How to start the solver: the executable given, else `$CVC5`, else
    /// `cvc5` on `PATH`, else PyPI's cvc5 package under `python3`.
    pub fn launch(&self) -> Result<Launch, VerifyError> {
        let explicit =
            self.path.is_some() || std::env::var_os("CVC5").is_some_and(|v| !v.is_empty());
        match self.executable() {
            Ok(path) => Ok(Launch::Executable(path)),
            Err(e) if explicit => Err(e),
            Err(e) => {
                let package = std::process::Command::new("python3")
                    .args(["-c", "import cvc5"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if package {
                    Ok(Launch::PythonPackage)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The solver executable: the one given, else `$CVC5`, else `cvc5` on
    /// `PATH`.
    pub fn executable(&self) -> Result<PathBuf, VerifyError> {
        let wanted = match (&self.path, std::env::var_os("CVC5")) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from("cvc5"),
        };
        if wanted.components().count() > 1 {
            return if wanted.is_file() {
                Ok(wanted)
            } else {
                Err(VerifyError::SolverMissing {
                    tried: wanted.display().to_string(),
                })
            };
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(&wanted))
            .find(|p| p.is_file())
            .ok_or_else(|| VerifyError::SolverMissing {
                tried: format!("{} (on PATH)", wanted.display()),
            })
    }
}

/// Why a question got no yes-or-no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unproved {
    /// The time bound passed.
    Timeout(Duration),
    /// The solver answered `unknown` (it gives up on its own bound too).
    Unknown,
}

impl std::fmt::Display for Unproved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unproved::Timeout(d) => write!(f, "the solver did not answer within {} s", d.as_secs()),
            Unproved::Unknown => write!(f, "the solver answered `unknown`"),
        }
    }
}

/// A yes-or-no answer, or why there is none; the outer error is a solver
/// that failed (it stops verification: nothing after it can be trusted).
pub type Answer = Result<Result<bool, Unproved>, VerifyError>;

/// Asks questions about compiled policy sets, one at a time, of one solver
/// process (started again after a timeout or a failure).
#[derive(Debug)]
pub struct Prover {
    launch: Launch,
    timeout: Duration,
    runtime: tokio::runtime::Runtime,
    compiler: Option<CedarSymCompiler<LocalSolver>>,
    /// Questions asked.
    pub questions: u64,
    /// Time spent waiting for answers.
    pub solving: Duration,
}

/// Runs one symbolic-compiler call with the prover's time bound.
macro_rules! ask {
    ($self:ident, |$c:ident| $call:expr) => {{
        let timeout = $self.timeout;
        let started = Instant::now();
        $self.questions += 1;
        let answer = match $self.ensure() {
            Err(e) => Err(e),
            Ok(()) => {
                let $c = $self.compiler.as_mut().expect("ensured");
                let outcome = $self
                    .runtime
                    .block_on(async { tokio::time::timeout(timeout, $call).await });
                match outcome {
                    Ok(Ok(yes)) => Ok(Ok(yes)),
                    Ok(Err(cedar_policy_symcc::err::Error::SolverUnknown)) => {
                        Ok(Err(Unproved::Unknown))
                    }
                    Ok(Err(e)) => Err($self.broken(e.to_string())),
                    Err(_) => Ok(Err(Unproved::Timeout(timeout))),
                }
            }
        };
        $self.solving += started.elapsed();
        if !matches!(answer, Ok(Ok(_))) {
            // The process may be mid-answer: start a fresh one next time.
            $self.compiler = None;
        }
        answer
    }};
}

impl Prover {
    /// Starts the solver and checks that it answers.
    pub fn start(config: &SolverConfig) -> Result<Prover, VerifyError> {
        let launch = config.launch()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| VerifyError::Internal(e.to_string()))?;
        let mut prover = Prover {
            launch,
            timeout: config.timeout,
            runtime,
            compiler: None,
            questions: 0,
            solving: Duration::ZERO,
        };
        prover.smoke_test()?;
        Ok(prover)
    }

    /// How the solver in use is started.
    pub fn launch(&self) -> &Launch {
        &self.launch
    }

    /// The bound on each question.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn broken(&self, reason: String) -> VerifyError {
        VerifyError::SolverBroken {
            path: self.launch.to_string(),
            reason,
        }
    }

    /// Starts the solver process unless it runs.
    fn ensure(&mut self) -> Result<(), VerifyError> {
        if self.compiler.is_none() {
            let per_check = format!("--tlimit-per={}", self.timeout.as_millis());
            let _guard = self.runtime.enter();
            let mut command = match &self.launch {
                Launch::Executable(path) => tokio::process::Command::new(path),
                Launch::PythonPackage => {
                    let mut c = tokio::process::Command::new("python3");
                    c.args(["-c", PYTHON_LOOP]);
                    c
                }
            };
            let solver = LocalSolver::from_command(
                command
                    .args(["--lang", "smt", &per_check])
                    .kill_on_drop(true),
            )
            .map_err(|e| self.broken(format!("cannot start it: {e}")))?;
            let compiler = CedarSymCompiler::new(solver).map_err(|e| self.broken(e.to_string()))?;
            self.compiler = Some(compiler);
        }
        Ok(())
    }

    /// First questions with known answers, which the solver must work
    /// out (a trivial one is answered without it): a solver that is
    /// missing a library, too old, or not a solver at all fails here.
    fn smoke_test(&mut self) -> Result<(), VerifyError> {
        let (schema, _) = cedar_policy::Schema::from_cedarschema_str(
            "entity U; entity R = { n: Long }; action a appliesTo { principal: [U], resource: [R] };",
        )
        .map_err(|e| VerifyError::Internal(e.to_string()))?;
        let set: cedar_policy::PolicySet =
            "permit(principal, action, resource) when { resource.n > 3 };"
                .parse()
                .map_err(|e: cedar_policy::ParseErrors| VerifyError::Internal(e.to_string()))?;
        let env = schema
            .request_envs()
            .next()
            .ok_or_else(|| VerifyError::Internal("no request environment".into()))?;
        let compiled = CompiledPolicySet::compile(&set, &env, &schema)
            .map_err(|e| VerifyError::Internal(e.to_string()))?;
        let allows = self.always_allows(&compiled)?;
        let denies = self.always_denies(&compiled)?;
        match (allows, denies) {
            (Ok(false), Ok(false)) => Ok(()),
            (Err(e), _) | (_, Err(e)) => Err(self.broken(e.to_string())),
            _ => Err(self.broken("it answered a known question wrongly".into())),
        }
    }

    /// True when the set allows every request of its environment.
    pub fn always_allows(&mut self, set: &CompiledPolicySet) -> Answer {
        ask!(self, |c| c.check_always_allows_opt(set))
    }

    /// True when the set denies every request of its environment.
    pub fn always_denies(&mut self, set: &CompiledPolicySet) -> Answer {
        ask!(self, |c| c.check_always_denies_opt(set))
    }

    /// True when every request `a` allows, `b` allows.
    pub fn implies(&mut self, a: &CompiledPolicySet, b: &CompiledPolicySet) -> Answer {
        ask!(self, |c| c.check_implies_opt(a, b))
    }

    /// `None` when every request `a` allows, `b` allows; otherwise a
    /// request (and entities) `a` allows and `b` refuses.
    pub fn implies_counterexample(
        &mut self,
        a: &CompiledPolicySet,
        b: &CompiledPolicySet,
    ) -> Result<Result<Option<cedar_policy_symcc::Env>, Unproved>, VerifyError> {
        ask!(self, |c| c.check_implies_with_counterexample_opt(a, b))
    }

    /// True when no request is allowed by both.
    pub fn disjoint(&mut self, a: &CompiledPolicySet, b: &CompiledPolicySet) -> Answer {
        ask!(self, |c| c.check_disjoint_opt(a, b))
    }

    /// True when evaluating the policy never errors.
    pub fn never_errors(&mut self, policy: &CompiledPolicy) -> Answer {
        ask!(self, |c| c.check_never_errors_opt(policy))
    }
}
