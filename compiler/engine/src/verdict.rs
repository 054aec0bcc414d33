//! What the engine answers: a statement's verdict (forward, rewrite,
//! refuse, hold), the refusal as the client sees it, the held statement's
//! needs, and the report the audit trail and `explain` show. Data only, so
//! every part of the engine names these without depending on the part that
//! decides.

use std::sync::Arc;

use crate::plan::ApprovalScope;

/// SQLSTATE 42501 insufficient_privilege.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// SQLSTATE 0A000 feature_not_supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";

/// SQLSTATE 42703 undefined_column.
pub const UNDEFINED_COLUMN: &str = "42703";

/// SQLSTATE 42P01 undefined_table.
pub const UNDEFINED_TABLE: &str = "42P01";

/// What happens to a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it byte-identical.
    Forward,
    /// Forward this text instead.
    Rewrite(String),
    /// Refuse it.
    Deny(Denial),
    /// Hold it until approved, then run it as `Hold::then` says.
    Hold(Box<Hold>),
}

/// A refusal, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// SQLSTATE.
    pub sqlstate: &'static str,
    /// Primary message. Never contains a stored value.
    pub message: String,
    /// Optional hint.
    pub hint: Option<String>,
    /// Cedar policy ids that decided it.
    pub policies: Vec<String>,
}

/// The outcome of one statement, for the audit trail and `explain`: the
/// statement's text and what was found about it. The findings are shared,
/// not copied, by every text of one statement shape (the shape cache hands
/// out the same findings with the client's own text), so a cache hit
/// allocates nothing for them; reading goes through `Deref`, changing
/// through [`StatementReport::findings_mut`] (copied on write if shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementReport {
    /// The statement as written (or as sqlparser prints it, in a multi-statement string).
    pub text: String,
    /// What was decided about it.
    pub findings: Arc<Findings>,
}

impl StatementReport {
    /// A report of `text` with these findings.
    pub fn new(text: String, findings: Findings) -> StatementReport {
        StatementReport {
            text,
            findings: Arc::new(findings),
        }
    }

    /// The findings, to change (copied first if another report shares them).
    pub fn findings_mut(&mut self) -> &mut Findings {
        Arc::make_mut(&mut self.findings)
    }
}

impl std::ops::Deref for StatementReport {
    type Target = Findings;

    fn deref(&self) -> &Findings {
        &self.findings
    }
}

/// What the engine found about one statement, apart from its text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Findings {
    /// `allow`, `mask`, `hold` or `deny`.
    pub decision: &'static str,
    /// Cedar policy ids that decided the columns it reads.
    pub policies: Vec<String>,
    /// Columns read through a mask, as `schema.table.column`.
    pub masked: Vec<String>,
    /// Why it was denied.
    pub reason: Option<String>,
    /// What observe-only rules would have done (`mask schema.table.column`,
    /// `deny …`): recorded, not enforced.
    pub observed: Vec<String>,
    /// The columns it reads (for identities with anything withheld).
    pub columns: Vec<ColumnUse>,
    /// The names of the rules whose clauses decided it.
    pub rules: Vec<String>,
    /// The most rows it may return (the smallest `limit N rows` of the
    /// relations it reads), and the rule that set it: the proxy delivers
    /// that many and drops the rest.
    pub row_limit: Option<(u64, String)>,
    /// The cursor or SQL-level prepared statement it creates, uses or
    /// drops: the session allows a use only of what it saw created.
    pub object: Option<SessionObject>,
}

/// What a statement does with the session's named cursors and SQL-level
/// prepared statements. A cursor or prepared statement runs what was
/// decided when it was declared or prepared; the session lets `FETCH`,
/// `MOVE` and `EXECUTE` name only those it saw declared or prepared by SQL
/// (never a protocol-level portal or statement, which may be held for
/// approval or cut by a row limit at `Execute`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionObject {
    /// `DECLARE name CURSOR FOR …`.
    DeclareCursor(String),
    /// `FETCH` or `MOVE` on a cursor.
    UseCursor(String),
    /// `CLOSE name`.
    CloseCursor(String),
    /// `CLOSE ALL`.
    CloseAllCursors,
    /// `PREPARE name AS …`.
    Prepare(String),
    /// `EXECUTE name`.
    Execute(String),
    /// `DEALLOCATE name`.
    Deallocate(String),
    /// `DEALLOCATE ALL`.
    DeallocateAll,
    /// `DISCARD ALL`: every cursor and prepared statement is gone.
    DiscardAll,
}

/// A column a statement reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnUse {
    /// `schema.table.column`.
    pub column: String,
    /// Its label and categories.
    pub label: String,
    /// `clear`, `masked (MASK)`, `needs approval by G` or `denied`.
    pub access: String,
}

/// The decision for a whole query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// One report per statement.
    pub statements: Vec<StatementReport>,
}

/// A statement waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// One entry per approval clause the statement needs.
    pub needs: Vec<Need>,
    /// What one approval releases: the narrowest scope among the clauses.
    pub scope: ApprovalScope,
    /// Seconds the request waits before it expires: the shortest among the clauses.
    pub ttl_seconds: u64,
    /// What runs once approved: `Forward` or `Rewrite`.
    pub then: Verdict,
    /// The columns the statement reads, as `schema.table.column (label)`,
    /// for the approver to see what is asked.
    pub touches: Vec<String>,
}

impl Hold {
    /// The scope in words: `this statement once`, `this statement 3 times`,
    /// `the session for 3600 s`.
    pub fn scope_text(&self) -> String {
        match self.scope {
            ApprovalScope::Statement => "this statement once".to_owned(),
            ApprovalScope::Executions(n) => format!("this statement {n} times"),
            ApprovalScope::Session(s) => format!("the session for {s} s"),
        }
    }

    /// Who must approve, in words: `1 of group leads`, `2 of group dba and 1 of group leads`.
    pub fn approvers_text(&self) -> String {
        self.needs
            .iter()
            .map(|n| format!("{} of group `{}`", n.quorum, n.approvers))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// One approval clause a held statement needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The clause's Cedar policy id.
    pub policy_id: String,
    /// The rule's name.
    pub rule: String,
    /// The clause as written, with its location.
    pub clause: String,
    /// The group whose members may approve.
    pub approvers: String,
    /// How many distinct members must approve.
    pub quorum: u64,
}
