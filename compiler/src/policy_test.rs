//! Policy unit tests (`clsfc test`): cases in `*.test.toml` files next to
//! the policy, each an identity (verified claims), a statement and the
//! expected decision, run through the engine the proxy uses. The format is
//! specified in `spec/language.md` ("Policy tests").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Engine;
use crate::engine::identity::identity_for;
use crate::engine::{Decision, Verdict};

/// One `*.test.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(rename = "case", default)]
    cases: Vec<Case>,
}

/// One test case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it checks.
    pub name: String,
    /// The identity's verified token claims.
    pub identity: toml::Table,
    /// The statement, as a client sends it.
    pub sql: String,
    /// `allow`, `mask`, `deny` or `approval`.
    pub expect: String,
    /// With `mask`: exactly these columns are masked (`schema.table.column`).
    #[serde(default)]
    pub masked: Option<Vec<String>>,
    /// With `deny`: the rule that denies it.
    #[serde(default)]
    pub rule: Option<String>,
    /// The file it came from.
    #[serde(skip)]
    pub file: PathBuf,
}

/// The outcome of one case.
#[derive(Debug)]
pub struct Outcome {
    /// The case.
    pub case: Case,
    /// `None` when it passed; otherwise expected and actual, as text.
    pub failure: Option<(String, String)>,
}

/// What the cases exercised, against what the policy has.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Rules some case's decision named.
    pub rules: BTreeSet<String>,
    /// All rules.
    pub all_rules: BTreeSet<String>,
    /// Groups some case's identity was in.
    pub groups: BTreeSet<String>,
    /// All groups.
    pub all_groups: BTreeSet<String>,
    /// Labels of columns some case read (in clear or masked; a refused
    /// statement reads nothing).
    pub labels: BTreeSet<String>,
    /// All labels.
    pub all_labels: BTreeSet<String>,
}

impl Coverage {
    /// Covered items over all items, in percent.
    pub fn percent(&self) -> f64 {
        let total = self.all_rules.len() + self.all_groups.len() + self.all_labels.len();
        if total == 0 {
            return 100.0;
        }
        let covered = self.rules.len() + self.groups.len() + self.labels.len();
        100.0 * covered as f64 / total as f64
    }
}

/// Why the policy's test cases could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A directory or file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file is not valid TOML of the case format.
    #[error("{}: {source}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The parser's message, with its location.
        source: toml::de::Error,
    },
    /// A case expects something other than a decision.
    #[error("{}: case `{case}`: expect must be allow, mask, deny or approval, not `{expect}`", path.display())]
    Expect {
        /// The file.
        path: PathBuf,
        /// The case's name.
        case: String,
        /// What it expects.
        expect: String,
    },
}

/// Reads every `*.test.toml` file under `dir`, sorted by path.
pub fn load(dir: &Path) -> Result<Vec<Case>, LoadError> {
    let read = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Read { path, source }
    };
    let mut files = Vec::new();
    collect(dir, &mut files).map_err(read(dir))?;
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(read(&file))?;
        let parsed: CaseFile = toml::from_str(&text).map_err(|source| LoadError::Format {
            path: file.clone(),
            source,
        })?;
        for mut case in parsed.cases {
            if !matches!(case.expect.as_str(), "allow" | "mask" | "deny" | "approval") {
                return Err(LoadError::Expect {
                    path: file.clone(),
                    case: case.name,
                    expect: case.expect,
                });
            }
            case.file = file.clone();
            cases.push(case);
        }
    }
    Ok(cases)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.to_string_lossy().ends_with(".test.toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The decision as a case would state it.
fn actual(decision: &Decision) -> (String, Vec<String>, Option<String>) {
    // The columns the statement reads through a mask (not every masked
    // column of the relations it touches).
    let masked: Vec<String> = decision
        .statements
        .iter()
        .flat_map(|s| s.columns.iter())
        .filter(|c| c.access.starts_with("masked"))
        .map(|c| c.column.clone())
        .collect();
    match &decision.verdict {
        Verdict::Deny(d) => ("deny".to_owned(), masked, Some(d.message.clone())),
        Verdict::Hold(h) => (
            "approval".to_owned(),
            masked,
            Some(format!("held until approved by {}", h.approvers_text())),
        ),
        _ if masked.is_empty() => ("allow".to_owned(), masked, None),
        _ => ("mask".to_owned(), masked, None),
    }
}

fn describe(kind: &str, masked: &[String], rule: Option<&str>) -> String {
    let mut s = kind.to_owned();
    if !masked.is_empty() {
        s.push_str(&format!(" (masked: {})", masked.join(", ")));
    }
    if let Some(r) = rule {
        s.push_str(&format!(" (by rule {r})"));
    }
    s
}

/// Runs the cases; returns their outcomes and the coverage.
pub fn run(engine: &Engine, cases: Vec<Case>) -> (Vec<Outcome>, Coverage) {
    let plan = engine.plan();
    let mut coverage = Coverage {
        all_rules: plan.rules.iter().map(|r| r.name.clone()).collect(),
        all_groups: plan.groups.iter().map(|g| g.name.clone()).collect(),
        all_labels: plan.labels.iter().cloned().collect(),
        ..Coverage::default()
    };
    let mut outcomes = Vec::new();
    for case in cases {
        let claims = serde_json::to_value(&case.identity).unwrap_or_default();
        let identity = identity_for(plan, &claims);
        coverage.groups.extend(identity.groups.iter().cloned());
        let access = engine.access_for(&identity);
        let decision = engine.decide_with_claims(&access, Some(&claims), &case.sql);
        if access.full_clear {
            // Nothing is withheld, so no policy is consulted per statement:
            // the identity's rules are what let it through.
            coverage.rules.extend(
                plan.rules
                    .iter()
                    .filter(|r| identity.groups.contains(&r.group))
                    .map(|r| r.name.clone()),
            );
        }
        let mut ids: Vec<&String> = decision
            .statements
            .iter()
            .flat_map(|s| s.policies.iter())
            .collect();
        if let Verdict::Deny(d) = &decision.verdict {
            ids.extend(d.policies.iter());
        }
        let rules: Vec<String> = ids
            .iter()
            .filter_map(|id| plan.clause_by_policy(id.trim_end_matches(".forbid")))
            .map(|(r, _)| r.name.clone())
            .collect();
        coverage.rules.extend(rules.iter().cloned());
        for s in &decision.statements {
            for c in &s.columns {
                let level = c.label.split(' ').next().unwrap_or("").to_owned();
                coverage.labels.insert(level);
            }
        }
        let (kind, mut masked, _message) = actual(&decision);
        masked.sort();
        let mut failure = kind != case.expect;
        if let Some(expected) = &case.masked {
            let mut e = expected.clone();
            e.sort();
            failure |= e != masked;
        }
        if let Some(rule) = &case.rule {
            failure |= !rules.contains(rule);
        }
        let denying_rule = (kind == "deny").then(|| rules.first().cloned()).flatten();
        outcomes.push(Outcome {
            failure: failure.then(|| {
                (
                    describe(
                        &case.expect,
                        case.masked.as_deref().unwrap_or(&[]),
                        case.rule.as_deref(),
                    ),
                    describe(&kind, &masked, denying_rule.as_deref()),
                )
            }),
            case,
        });
    }
    (outcomes, coverage)
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The outcomes as JUnit XML.
pub fn junit(outcomes: &[Outcome]) -> String {
    let failures = outcomes.iter().filter(|o| o.failure.is_some()).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"clsf policy tests\" tests=\"{}\" failures=\"{failures}\">\n",
        outcomes.len()
    );
    for o in outcomes {
        out.push_str(&format!(
            "  <testcase classname=\"{}\" name=\"{}\">",
            xml(&o.case.file.display().to_string()),
            xml(&o.case.name)
        ));
        if let Some((expected, actual)) = &o.failure {
            out.push_str(&format!(
                "\n    <failure message=\"expected {}, got {}\">expected: {}\nactual:   {}</failure>\n  ",
                xml(expected),
                xml(actual),
                xml(expected),
                xml(actual)
            ));
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite>\n</testsuites>\n");
    out
}
