//! Where a statement is decided: from the analysis and the identity's
//! access table to a [`Verdict`] (forward unchanged, forward rewritten, or
//! deny with a SQLSTATE and a message that names the column, label and rule).

use std::collections::HashSet;

use sqlparser::ast as sql;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::engine::access::{Access, Perm, PrincipalAccess};
use crate::engine::analyze::{self, Analysis, TableRef, WildcardUse};
use crate::engine::denials;
use crate::engine::functions;
use crate::engine::rewrite::{self, Edit};
use crate::engine::scope::{self, Source, Usage};
use crate::engine::sql_lists;
use crate::masks::sql_string;
use crate::plan::Plan;
use crate::resolve::DEFAULT_SCHEMA;

/// SQLSTATE 42501 insufficient_privilege.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// SQLSTATE 0A000 feature_not_supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";

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
    Hold(Box<crate::engine::hold::Hold>),
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

/// The outcome of one statement, for the audit trail and `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementReport {
    /// The statement as written (or as sqlparser prints it, in a multi-statement string).
    pub text: String,
    /// `allow`, `mask` or `deny`.
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

/// What deciding needs besides the plan and the access table: the
/// session's verified claims (for row filters).
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// Verified token claims of the session, if it has a token.
    pub claims: Option<&'a serde_json::Value>,
}

/// Decides a simple-query string.
pub fn decide(plan: &Plan, access: &PrincipalAccess, env: &Env<'_>, text: &str) -> Decision {
    decide_with_edits(plan, access, env, text).0
}

/// Decides a simple-query string; also returns the splices a `Rewrite`
/// verdict was made of (for the shape cache).
pub(crate) fn decide_with_edits(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    text: &str,
) -> (Decision, Vec<Edit>) {
    let parsed = Parser::parse_sql(&PostgreSqlDialect {}, text);
    let statements = match parsed {
        Ok(s) => s,
        Err(e) => {
            if let Some(decided) = decide_unparsed(plan, access, env, text) {
                return decided;
            }
            let denial = denials::unparsable(&e.to_string());
            return (
                Decision {
                    statements: vec![report_denied(plan, text.to_owned(), &denial)],
                    verdict: Verdict::Deny(denial),
                },
                Vec::new(),
            );
        }
    };
    if statements.is_empty() {
        return (
            Decision {
                verdict: Verdict::Forward,
                statements: Vec::new(),
            },
            Vec::new(),
        );
    }
    let single = statements.len() == 1;
    let mut edits = Vec::new();
    let mut reports = Vec::new();
    let mut denial = None;
    for stmt in &statements {
        let stmt_text = if single {
            text.to_owned()
        } else {
            stmt.to_string()
        };
        match decide_statement(plan, access, env, stmt, text) {
            Ok(outcome) => {
                edits.extend(outcome.edits);
                reports.push(StatementReport {
                    text: stmt_text,
                    decision: if outcome.masked.is_empty() {
                        "allow"
                    } else {
                        "mask"
                    },
                    policies: outcome.policies,
                    masked: outcome.masked,
                    reason: None,
                    observed: outcome.observed,
                    columns: outcome.columns,
                    rules: Vec::new(),
                    row_limit: outcome.row_limit,
                    object: outcome.object,
                });
            }
            Err(d) => {
                reports.push(report_denied(plan, stmt_text, &d));
                denial.get_or_insert(d);
            }
        }
    }
    if let Some(d) = denial {
        // One refused statement refuses the whole string: nothing of it runs.
        for r in &mut reports {
            if r.decision != "deny" {
                r.decision = "deny";
                r.reason = Some("another statement in the same query string was denied".to_owned());
            }
        }
        return (
            Decision {
                verdict: Verdict::Deny(d),
                statements: reports,
            },
            Vec::new(),
        );
    }
    for r in &mut reports {
        r.rules = rule_names(plan, &r.policies);
    }
    let verdict = if edits.is_empty() {
        Verdict::Forward
    } else {
        match rewrite::splice(text, edits.clone()) {
            Some(new_text) => Verdict::Rewrite(new_text),
            None => {
                let d = denials::internal("overlapping rewrites");
                for r in &mut reports {
                    r.decision = "deny";
                    r.reason = Some(d.message.clone());
                }
                Verdict::Deny(d)
            }
        }
    };
    (
        Decision {
            verdict,
            statements: reports,
        },
        edits,
    )
}

/// Statements PostgreSQL accepts that sqlparser does not parse, read from
/// their tokens: `TABLE name …` (decided as `SELECT * FROM name …`, which
/// is what PostgreSQL runs, and forwarded in that form), `FETCH`/`MOVE`
/// forms sqlparser lacks, and schema statements, refused for what they are
/// rather than for the parser. `None`: refused as unparseable.
fn decide_unparsed(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    text: &str,
) -> Option<(Decision, Vec<Edit>)> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .ok()?;
    let index = analyze::LineIndex::new(text);
    let words: Vec<(&Token, Option<usize>, Option<usize>)> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| {
            (
                &t.token,
                index.offset(t.span.start),
                index.offset(t.span.end),
            )
        })
        .collect();
    let keyword = |i: usize| match words.get(i) {
        Some((Token::Word(w), ..)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    };
    let first = keyword(0)?;
    match first.as_str() {
        "TABLE" => {
            let (_, Some(start), Some(end)) = words[0] else {
                return None;
            };
            let normalized = format!("{}SELECT * FROM{}", &text[..start], &text[end..]);
            let (mut decision, _) = decide_with_edits(plan, access, env, &normalized);
            let forwarded = match &decision.verdict {
                Verdict::Forward => Some(normalized.clone()),
                Verdict::Rewrite(t) => Some(t.clone()),
                _ => None,
            };
            for r in &mut decision.statements {
                r.text = text.to_owned();
            }
            let edits = match forwarded {
                Some(t) => {
                    decision.verdict = Verdict::Rewrite(t.clone());
                    vec![Edit {
                        start: 0,
                        end: text.len(),
                        text: t,
                    }]
                }
                None => Vec::new(),
            };
            Some((decision, edits))
        }
        "FETCH" | "MOVE" => {
            // FETCH|MOVE [direction] [FROM|IN] cursor [;]: the direction is
            // keywords, a signed count or ALL; the last word is the cursor.
            let mut end = words.len();
            if matches!(words.last(), Some((Token::SemiColon, ..))) {
                end -= 1;
            }
            let Some((Token::Word(cursor), ..)) = words.get(end.checked_sub(1)?) else {
                return None;
            };
            let direction_ok = words[1..end - 1].iter().all(|(t, ..)| match t {
                Token::Word(w) => {
                    w.quote_style.is_none()
                        && matches!(
                            w.value.to_ascii_uppercase().as_str(),
                            "NEXT"
                                | "PRIOR"
                                | "FIRST"
                                | "LAST"
                                | "ABSOLUTE"
                                | "RELATIVE"
                                | "ALL"
                                | "FORWARD"
                                | "BACKWARD"
                                | "FROM"
                                | "IN"
                        )
                }
                Token::Number(..) | Token::Minus | Token::Plus => true,
                _ => false,
            });
            if end < 2 || !direction_ok {
                return None;
            }
            let name = analyze::fold(&sql::Ident {
                value: cursor.value.clone(),
                quote_style: cursor.quote_style,
                span: sqlparser::tokenizer::Span::empty(),
            });
            let report = StatementReport {
                text: text.to_owned(),
                decision: "allow",
                policies: Vec::new(),
                masked: Vec::new(),
                reason: None,
                observed: Vec::new(),
                columns: Vec::new(),
                rules: Vec::new(),
                row_limit: None,
                object: Some(SessionObject::UseCursor(name)),
            };
            Some((
                Decision {
                    verdict: Verdict::Forward,
                    statements: vec![report],
                },
                Vec::new(),
            ))
        }
        "CREATE" | "ALTER" | "DROP" | "COMMENT" | "GRANT" | "REVOKE" | "SECURITY" | "REINDEX"
        | "CLUSTER" | "VACUUM" | "ANALYZE" | "REFRESH" | "IMPORT" | "REASSIGN" => {
            let kind = match keyword(1) {
                Some(second) => format!("{first} {second}"),
                None => first.clone(),
            };
            let (perm, action) = if matches!(
                first.as_str(),
                "CREATE" | "ALTER" | "DROP" | "COMMENT" | "SECURITY" | "REFRESH" | "IMPORT"
            ) {
                (&access.ddl, "ddl")
            } else {
                (&access.admin, "admin")
            };
            let denial = match perm_denial(plan, perm, action, &format!("statement `{kind}`")) {
                Some(d) => d,
                None => denials::unparsable_kind(&kind),
            };
            Some((
                Decision {
                    statements: vec![report_denied(plan, text.to_owned(), &denial)],
                    verdict: Verdict::Deny(denial),
                },
                Vec::new(),
            ))
        }
        _ => None,
    }
}

fn report_denied(plan: &Plan, text: String, d: &Denial) -> StatementReport {
    StatementReport {
        text,
        decision: "deny",
        policies: d.policies.clone(),
        masked: Vec::new(),
        reason: Some(d.message.clone()),
        observed: Vec::new(),
        columns: Vec::new(),
        rules: rule_names(plan, &d.policies),
        row_limit: None,
        object: None,
    }
}

/// The rule names behind Cedar policy ids, without repeats.
fn rule_names(plan: &Plan, policies: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in policies {
        if let Some((rule, _)) = plan.clause_by_policy(id.trim_end_matches(".forbid"))
            && !out.contains(&rule.name)
        {
            out.push(rule.name.clone());
        }
    }
    out
}

struct Outcome {
    edits: Vec<Edit>,
    masked: Vec<String>,
    policies: Vec<String>,
    observed: Vec<String>,
    columns: Vec<ColumnUse>,
    row_limit: Option<(u64, String)>,
    object: Option<SessionObject>,
}

impl Outcome {
    fn pass() -> Outcome {
        Outcome {
            edits: Vec::new(),
            masked: Vec::new(),
            policies: Vec::new(),
            observed: Vec::new(),
            columns: Vec::new(),
            row_limit: None,
            object: None,
        }
    }

    fn with_object(mut self, object: SessionObject) -> Outcome {
        self.object = Some(object);
        self
    }

    /// Keeps the smaller of the current limit and `relation`'s.
    fn limit(&mut self, plan: &Plan, access: &PrincipalAccess, ri: usize) {
        if let Some(l) = row_limit(plan, access, ri)
            && self.row_limit.as_ref().is_none_or(|(n, _)| l.0 < *n)
        {
            self.row_limit = Some(l);
        }
    }
}

fn decide_statement(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    stmt: &sql::Statement,
    text: &str,
) -> Result<Outcome, Denial> {
    // An identity that may read everything in clear has nothing withheld:
    // its statements pass unchanged once they parse (the session still
    // learns its cursors and prepared statements).
    if access.full_clear {
        return Ok(match session_object(stmt) {
            Some(o) => Outcome::pass().with_object(o),
            None => Outcome::pass(),
        });
    }
    match stmt {
        sql::Statement::Query(_) => {
            let a = analyze::analyze(stmt, text);
            if a.select_into {
                return creates_table_from(plan, access, env, a, stmt, text, "SELECT … INTO");
            }
            if a.statements > 1 {
                // A data-modifying CTE: the writing rules apply as well.
                writes(plan, access, &a, None)?;
            }
            reads(plan, access, env, &a, stmt, text)
        }
        sql::Statement::Insert(_) | sql::Statement::Update(_) | sql::Statement::Delete(_) => {
            let target = write_target(stmt);
            writes(plan, access, &analyze::analyze(stmt, text), target.as_deref())
        }
        sql::Statement::Copy { .. } => copy(plan, access, env, stmt, text),
        sql::Statement::Set(set) => session_setting(set),
        sql::Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(analyze::fold)
                .collect::<Vec<_>>()
                .join(".")
                .to_lowercase();
            if sql_lists::is_proxy_setting(&name) {
                return Err(denials::proxy_setting(&name));
            }
            Ok(Outcome::pass())
        }
        sql::Statement::StartTransaction { .. }
        | sql::Statement::Commit { .. }
        | sql::Statement::Rollback { .. }
        | sql::Statement::Savepoint { .. }
        | sql::Statement::ReleaseSavepoint { .. }
        | sql::Statement::Discard { .. }
        | sql::Statement::Deallocate { .. }
        | sql::Statement::Close { .. }
        // Notifications carry no stored values in; NOTIFY is a function's
        // side effect and stays refused.
        | sql::Statement::LISTEN { .. }
        | sql::Statement::UNLISTEN { .. } => Ok(match session_object(stmt) {
            Some(o) => Outcome::pass().with_object(o),
            None => Outcome::pass(),
        }),
        // RESET returns a setting to its session default: the value the
        // proxy pinned at login for the protected ones. The proxy's own
        // settings are neither read nor touched by clients, so refused.
        sql::Statement::Reset(r) => match &r.reset {
            sql::Reset::ConfigurationParameter(name)
                if sql_lists::is_proxy_setting(&setting_name(name)) =>
            {
                Err(denials::proxy_setting(&setting_name(name)))
            }
            _ => Ok(Outcome::pass()),
        },
        sql::Statement::Fetch { name, into, .. } => match into {
            None => Ok(Outcome::pass().with_object(SessionObject::UseCursor(analyze::fold(name)))),
            Some(_) => Err(not_analysed(stmt, "FETCH … INTO is not PostgreSQL")),
        },
        sql::Statement::Declare { stmts, .. } => declare(plan, access, env, stmts, text),
        sql::Statement::Prepare {
            name, statement, ..
        } => prepare(plan, access, env, name, statement, text),
        sql::Statement::Execute {
            name: Some(name),
            immediate: false,
            into,
            using,
            ..
        } if into.is_empty() && using.is_empty() => {
            let a = analyze::analyze(stmt, text);
            check_functions(access, &a)?;
            if !a.tables.is_empty() {
                return Err(not_analysed(stmt, "EXECUTE parameters cannot read relations"));
            }
            let name = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(analyze::fold)
                .unwrap_or_default();
            Ok(Outcome::pass().with_object(SessionObject::Execute(name)))
        }
        sql::Statement::Explain { statement, .. } => {
            // EXPLAIN [ANALYZE] shows the plan of the statement as the
            // proxy forwards it (rewritten), so it is decided like that
            // statement; its rows are plan lines, never data rows.
            let mut inner = decide_statement(plan, access, env, statement, text)?;
            inner.row_limit = None;
            Ok(inner)
        }
        sql::Statement::Lock(lock) => {
            // A lock reads nothing; every table must be one the identity
            // may read some column of.
            for t in &lock.tables {
                let parts: Vec<String> = t.name.0.iter().filter_map(|p| p.as_ident()).map(analyze::fold).collect();
                match resolve(plan, &parts, &Default::default()) {
                    Resolved::Relation(ri) => {
                        if access.columns[ri].iter().all(|c| matches!(c, Access::Denied { .. } | Access::Approval { .. })) {
                            return Err(column_denial(plan, access, ri, 0, " (LOCK TABLE)"));
                        }
                    }
                    Resolved::Catalog(name) => check_catalog(&name)?,
                    Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
                    Resolved::Cte => {}
                }
            }
            Ok(Outcome::pass())
        }
        sql::Statement::CreateTable(ct) if ct.query.is_some() => {
            let a = analyze::analyze(stmt, text);
            creates_table_from(plan, access, env, a, stmt, text, "CREATE TABLE … AS")
        }
        other if is_ddl(other) => {
            let out = action_permitted(plan, &access.ddl, "ddl", other)?;
            crate::engine::ddl::check(plan, access, other, text, |a, what| {
                creates_table_from(plan, access, env, a, other, text, what).map(drop)
            })?;
            Ok(out)
        }
        other if is_admin(other) => action_permitted(plan, &access.admin, "admin", other),
        other => Err(denials::kind_not_analysed(&statement_kind(other))),
    }
}

/// The cursor or prepared statement a session statement names.
fn session_object(stmt: &sql::Statement) -> Option<SessionObject> {
    match stmt {
        sql::Statement::Declare { stmts, .. } => stmts
            .first()
            .and_then(|d| d.names.first())
            .map(|n| SessionObject::DeclareCursor(analyze::fold(n))),
        sql::Statement::Fetch { name, .. } => Some(SessionObject::UseCursor(analyze::fold(name))),
        sql::Statement::Close { cursor } => Some(match cursor {
            sql::CloseCursor::All => SessionObject::CloseAllCursors,
            sql::CloseCursor::Specific { name } => SessionObject::CloseCursor(analyze::fold(name)),
        }),
        sql::Statement::Prepare { name, .. } => Some(SessionObject::Prepare(analyze::fold(name))),
        sql::Statement::Execute {
            name: Some(name), ..
        } => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|n| SessionObject::Execute(analyze::fold(n))),
        sql::Statement::Deallocate { name, .. } => Some(
            if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                SessionObject::DeallocateAll
            } else {
                SessionObject::Deallocate(analyze::fold(name))
            },
        ),
        sql::Statement::Discard {
            object_type: sql::DiscardObject::ALL,
        } => Some(SessionObject::DiscardAll),
        sql::Statement::Explain { statement, .. } => session_object(statement),
        _ => None,
    }
}

fn not_analysed(stmt: &sql::Statement, why: &str) -> Denial {
    denials::form_not_analysed(&statement_kind(stmt), why)
}

/// `DECLARE … CURSOR FOR query`: decided and rewritten like the query. A
/// cursor's rows leave in several `FETCH`es, so a row limit (enforced per
/// statement) cannot hold and such a cursor is refused.
fn declare(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    stmts: &[sql::Declare],
    text: &str,
) -> Result<Outcome, Denial> {
    let [d] = stmts else {
        return Err(denials::internal("DECLARE of several names"));
    };
    let (Some(name), Some(query)) = (d.names.first(), &d.for_query) else {
        return Err(denials::cursor_form());
    };
    let inner = sql::Statement::Query(query.clone());
    let out = decide_statement(plan, access, env, &inner, text)?;
    if let Some((rows, rule)) = &out.row_limit {
        return Err(denials::limited_cursor(*rows, rule));
    }
    Ok(out.with_object(SessionObject::DeclareCursor(analyze::fold(name))))
}

/// `PREPARE name AS statement`: decided and rewritten like the statement.
/// Its `EXECUTE`s run what was decided here, any number of times, so a
/// statement that needs an approval (granted per execution) or is under a
/// row limit (enforced per statement) cannot be prepared this way.
fn prepare(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    name: &sql::Ident,
    statement: &sql::Statement,
    text: &str,
) -> Result<Outcome, Denial> {
    if !matches!(
        statement,
        sql::Statement::Query(_)
            | sql::Statement::Insert(_)
            | sql::Statement::Update(_)
            | sql::Statement::Delete(_)
    ) {
        return Err(not_analysed(
            statement,
            "only queries, INSERT, UPDATE and DELETE can be prepared",
        ));
    }
    let out = match decide_statement(plan, access, env, statement, text) {
        Ok(out) => out,
        Err(mut d) if !d.policies.is_empty() && d.message.contains("needs approval") => {
            // Not holdable: an approval releases executions, and EXECUTE
            // would repeat this one without asking.
            d.message = format!(
                "{}; a statement that needs approval cannot be prepared with PREPARE (send it directly, or through the extended protocol)",
                d.message
            );
            d.policies.clear();
            return Err(d);
        }
        Err(d) => return Err(d),
    };
    if let Some((rows, rule)) = &out.row_limit {
        return Err(denials::limited_prepare(*rows, rule));
    }
    Ok(out.with_object(SessionObject::Prepare(analyze::fold(name))))
}

/// `SELECT … INTO` and `CREATE TABLE … AS` write what they read into a new
/// table that no policy classifies, where it could be read back in clear
/// (label laundering). From relations the identity reads in full they are
/// DDL like `CREATE TABLE`; from anything masked or withheld, refused.
fn creates_table_from(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    mut a: Analysis,
    stmt: &sql::Statement,
    text: &str,
    what: &str,
) -> Result<Outcome, Denial> {
    // The relation being created is named, not read: it is new, so the
    // schema does not know it.
    let created = match stmt {
        sql::Statement::CreateTable(ct) => Some(&ct.name),
        sql::Statement::CreateView(v) => Some(&v.name),
        _ => None,
    };
    if let Some(name) = created {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(analyze::fold)
            .collect();
        if let Some(i) = a.other_relations.iter().position(|r| *r == parts) {
            a.other_relations.remove(i);
        }
    }
    let a = &a;
    for t in a.tables.iter().filter(|t| !t.is_function) {
        if let Resolved::Relation(ri) = resolve(plan, &t.parts, &a.ctes)
            && (access.relation_restricted(ri) || row_limit(plan, access, ri).is_some())
        {
            return Err(denials::unlabelled_copy(
                what,
                &plan.schema.relation(ri).qualified(),
            ));
        }
    }
    let out = reads(plan, access, env, a, stmt, text)?;
    if !out.edits.is_empty() {
        return Err(denials::internal(what));
    }
    action_permitted(plan, &access.ddl, "ddl", stmt)
}

/// `COPY … TO STDOUT` is an export and a read: every column of the
/// relations it reads that is not denied must be exportable, and masks
/// apply as in a query (`COPY t TO` is rebuilt as `COPY (SELECT … FROM t)
/// TO`, since only a query can carry the masking subquery). `COPY … FROM
/// STDIN` is a write to its table. Server-side files and programs are
/// refused: their data would bypass the proxy.
fn copy(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    stmt: &sql::Statement,
    text: &str,
) -> Result<Outcome, Denial> {
    let sql::Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        payload,
    } = stmt
    else {
        return Err(denials::internal("COPY"));
    };
    match (*to, target, source) {
        (false, sql::CopyTarget::Stdin, sql::CopySource::Table { table_name, .. }) => {
            let parts: Vec<String> = table_name
                .0
                .iter()
                .filter_map(|p| p.as_ident())
                .map(analyze::fold)
                .collect();
            writes(plan, access, &analyze::analyze(stmt, text), Some(&parts))
        }
        (true, sql::CopyTarget::Stdout, sql::CopySource::Query(_)) => {
            let a = analyze::analyze(stmt, text);
            exports(plan, access, &a, stmt)?;
            no_limit_in_copy(reads(plan, access, env, &a, stmt, text)?)
        }
        (
            true,
            sql::CopyTarget::Stdout,
            sql::CopySource::Table {
                table_name,
                columns,
            },
        ) => {
            // The whole text is replaced, so the COPY must be all of it.
            if Parser::parse_sql(&PostgreSqlDialect {}, text).map_or(0, |s| s.len()) != 1 {
                return Err(denials::copy_not_alone());
            }
            let list = if columns.is_empty() {
                "*".to_owned()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let query = match Parser::parse_sql(
                &PostgreSqlDialect {},
                &format!("SELECT {list} FROM {table_name}"),
            ) {
                Ok(mut s) if s.len() == 1 => match s.remove(0) {
                    sql::Statement::Query(q) => q,
                    _ => return Err(denials::internal("COPY")),
                },
                _ => return Err(denials::internal("COPY")),
            };
            let as_query = sql::Statement::Copy {
                source: sql::CopySource::Query(query),
                to: true,
                target: target.clone(),
                options: options.clone(),
                legacy_options: legacy_options.clone(),
                payload: payload.clone(),
            };
            let new_text = as_query.to_string();
            let reparsed = match Parser::parse_sql(&PostgreSqlDialect {}, &new_text) {
                Ok(s) if s.len() == 1 => s,
                _ => return Err(denials::internal("COPY")),
            };
            let mut inner = copy(plan, access, env, &reparsed[0], &new_text)?;
            let rewritten = rewrite::splice(&new_text, std::mem::take(&mut inner.edits))
                .ok_or_else(|| denials::internal("COPY"))?;
            inner.edits = vec![Edit {
                start: 0,
                end: text.len(),
                text: rewritten,
            }];
            Ok(inner)
        }
        _ => Err(denials::copy_server_side()),
    }
}

/// Every column the statement reads that is not denied must be exportable
/// (the `export` action): the columns the scope resolver finds it uses, or,
/// where the resolver cannot follow the statement, every column of the
/// relations it names.
fn exports(
    plan: &Plan,
    access: &PrincipalAccess,
    a: &Analysis,
    stmt: &sql::Statement,
) -> Result<(), Denial> {
    let check = |ri: usize, ci: usize| -> Result<(), Denial> {
        if matches!(access.columns[ri][ci], Access::Denied { .. }) {
            return Ok(());
        }
        let rel = plan.schema.relation(ri);
        let what = format!(
            "exporting column `{}` of `{}` (COPY TO)",
            rel.columns[ci].name,
            rel.qualified()
        );
        match perm_denial(plan, &access.export[ri][ci], "export", &what) {
            Some(d) => Err(d),
            None => Ok(()),
        }
    };
    if let Ok(usages) = scope::statement_usages(stmt, &plan.schema, SEARCH_PATH) {
        let mut read: Vec<&(usize, usize)> = usages.keys().collect();
        read.sort_unstable();
        return read.into_iter().try_for_each(|&(ri, ci)| check(ri, ci));
    }
    for t in a.tables.iter().filter(|t| !t.is_function) {
        if let Resolved::Relation(ri) = resolve(plan, &t.parts, &a.ctes) {
            for ci in 0..access.export[ri].len() {
                check(ri, ci)?;
            }
        }
    }
    Ok(())
}

fn first_keyword(stmt: &sql::Statement) -> String {
    statement_kind(stmt)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// Schema changes: permitted by the `ddl` action.
fn is_ddl(stmt: &sql::Statement) -> bool {
    matches!(
        first_keyword(stmt).as_str(),
        "CREATE" | "ALTER" | "DROP" | "COMMENT"
    ) && !matches!(
        stmt,
        sql::Statement::CreateFunction { .. } | sql::Statement::CreateRole { .. }
    )
}

/// Administrative statements: permitted by the `admin` action.
fn is_admin(stmt: &sql::Statement) -> bool {
    matches!(
        first_keyword(stmt).as_str(),
        "GRANT" | "REVOKE" | "VACUUM" | "ANALYZE" | "CLUSTER" | "REINDEX"
    ) || matches!(stmt, sql::Statement::CreateRole { .. })
}

/// The rule that decided a database-wide action, for messages.
fn rules_text(plan: &Plan, ids: &[String]) -> String {
    ids.iter()
        .map(|id| match plan.clause_by_policy(id) {
            Some((rule, clause)) => format!(
                "rule `{}` (`{}` at {})",
                rule.name, clause.text, clause.location
            ),
            None => format!("policy `{id}`"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn perm_denial(plan: &Plan, perm: &Perm, action: &str, what: &str) -> Option<Denial> {
    match perm {
        Perm::Allowed => None,
        Perm::Approval {
            approvers,
            policies,
        } => Some(denials::action_needs_approval(
            what,
            action,
            approvers,
            policies.clone(),
        )),
        Perm::Denied(ids) if !ids.is_empty() => Some(denials::action_denied(
            what,
            &rules_text(plan, ids),
            ids.clone(),
        )),
        Perm::Denied(_) => Some(denials::action_not_allowed(what, action)),
    }
}

fn action_permitted(
    plan: &Plan,
    perm: &Perm,
    action: &str,
    stmt: &sql::Statement,
) -> Result<Outcome, Denial> {
    match perm_denial(
        plan,
        perm,
        action,
        &format!("statement `{}`", statement_kind(stmt)),
    ) {
        None => Ok(Outcome::pass()),
        Some(d) => Err(d),
    }
}

/// The table an INSERT, UPDATE or DELETE writes, as name parts.
fn write_target(stmt: &sql::Statement) -> Option<Vec<String>> {
    let name = match stmt {
        sql::Statement::Insert(i) => match &i.table {
            sql::TableObject::TableName(n) => n.clone(),
            _ => return None,
        },
        sql::Statement::Update(u) => match &u.table.relation {
            sql::TableFactor::Table { name, .. } => name.clone(),
            _ => return None,
        },
        sql::Statement::Delete(d) => {
            let tables = match &d.from {
                sql::FromTable::WithFromKeyword(t) | sql::FromTable::WithoutKeyword(t) => t,
            };
            match tables.first().map(|t| &t.relation) {
                Some(sql::TableFactor::Table { name, .. }) => name.clone(),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(
        name.0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(analyze::fold)
            .collect(),
    )
}

/// The leading keywords of a statement, for messages (never its values).
fn statement_kind(stmt: &sql::Statement) -> String {
    let printed = stmt.to_string();
    printed
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic() || c == '_'))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn session_setting(set: &sql::Set) -> Result<Outcome, Denial> {
    match set {
        sql::Set::SetRole { .. } => Err(denials::protected_setting("role")),
        sql::Set::SetSessionAuthorization(_) => {
            Err(denials::protected_setting("session_authorization"))
        }
        sql::Set::SingleAssignment {
            variable, values, ..
        } => {
            // The whole dotted name: `clsf.hash_ipad` is not `hash_ipad`.
            let name = setting_name(variable);
            if sql_lists::is_proxy_setting(&name) {
                return Err(denials::proxy_setting(&name));
            }
            if sql_lists::PROTECTED_SETTINGS.contains(&name.as_str()) {
                // `SET search_path = ''` (or pg_catalog alone) only narrows
                // what names resolve to, like set_config's.
                let narrows = name == "search_path"
                    && match values.as_slice() {
                        [sql::Expr::Value(v)] => match &v.value {
                            sql::Value::SingleQuotedString(s) => sql_lists::narrows_search_path(s),
                            _ => false,
                        },
                        [sql::Expr::Identifier(id)] => {
                            sql_lists::narrows_search_path(&analyze::fold(id))
                        }
                        _ => false,
                    };
                if !narrows {
                    return Err(denials::protected_setting(&name));
                }
            }
            Ok(Outcome::pass())
        }
        sql::Set::ParenthesizedAssignments { .. } | sql::Set::MultipleAssignments { .. } => {
            Err(denials::protected_setting("several settings at once"))
        }
        sql::Set::SetNames { .. } | sql::Set::SetNamesDefault {} => {
            Err(denials::protected_setting("client_encoding"))
        }
        _ => Ok(Outcome::pass()),
    }
}

/// A setting's name as the server reads it: parts folded, joined by dots.
fn setting_name(name: &sql::ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(analyze::fold)
        .collect::<Vec<_>>()
        .join(".")
        .to_lowercase()
}

/// How a name in a relation position resolves.
enum Resolved {
    Relation(usize),
    Cte,
    Catalog(String),
    Unknown(String),
}

fn resolve(plan: &Plan, parts: &[String], ctes: &std::collections::HashSet<String>) -> Resolved {
    let (schema, name) = match parts {
        [name] => {
            if ctes.contains(name) {
                return Resolved::Cte;
            }
            // pg_catalog is searched before the search path.
            if let Some(ri) = plan.classified_catalog_relation(name) {
                return Resolved::Relation(ri);
            }
            match plan.schema.find(DEFAULT_SCHEMA, name) {
                Some(ri) => return Resolved::Relation(ri),
                None if name.starts_with("pg_") => return Resolved::Catalog(name.clone()),
                None => return Resolved::Unknown(name.clone()),
            }
        }
        [schema, name] | [_, schema, name] => (schema, name),
        _ => return Resolved::Unknown(parts.join(".")),
    };
    if sql_lists::CATALOG_SCHEMAS.contains(&schema.as_str()) {
        // A catalog relation the policy classifies is decided column by
        // column; any other is refused whole if it exposes values.
        if schema == "pg_catalog"
            && let Some(ri) = plan.classified_catalog_relation(name)
        {
            return Resolved::Relation(ri);
        }
        return Resolved::Catalog(name.clone());
    }
    match plan.schema.find(schema, name) {
        Some(ri) => Resolved::Relation(ri),
        None => Resolved::Unknown(format!("{schema}.{name}")),
    }
}

fn check_catalog(name: &str) -> Result<(), Denial> {
    if sql_lists::PROTECTED_CATALOGS.contains(&name) {
        return Err(denials::protected_catalog(name));
    }
    Ok(())
}

fn check_functions(access: &PrincipalAccess, a: &Analysis) -> Result<(), Denial> {
    check_functions_guarded(access, a, None)
}

/// Like [`check_functions`]; with `guards`, a `current_setting` whose name
/// is a parameter or a column is allowed with a guard added to `guards`.
fn check_functions_guarded(
    access: &PrincipalAccess,
    a: &Analysis,
    mut guards: Option<(&str, &mut Vec<Edit>)>,
) -> Result<(), Denial> {
    a.functions
        .iter()
        .try_for_each(|(name, schema)| check_function(access, name, schema.as_deref()))?;
    for call in &a.settings {
        if call.setting.is_none()
            && call.function == "current_setting"
            && let (Some((start, end)), Some((text, edits))) = (call.name_at, guards.as_mut())
            && let Some(operand) = text.get(start..end)
        {
            edits.push(Edit {
                start,
                end,
                text: guard_setting_name(operand),
            });
            continue;
        }
        check_setting_call(call)?;
    }
    Ok(())
}

/// `current_setting(name)` with a name known only when the statement runs
/// (a bound parameter, as SQLAlchemy's reflection sends
/// `current_setting($1)`, or a column of `pg_settings`): the name is
/// replaced by one that is NULL when it names a proxy setting, and
/// `current_setting(NULL)` is NULL. The server compares setting names
/// ignoring ASCII case, as `lower` does for the prefix's letters.
fn guard_setting_name(operand: &str) -> String {
    format!(
        "CASE WHEN lower(CAST(({operand}) AS text)) LIKE '{}%' THEN NULL ELSE ({operand}) END",
        sql_lists::PROXY_SETTING_PREFIX
    )
}

/// `current_setting` and `set_config` name their setting in an argument:
/// the proxy's own settings are never read, protected ones never changed
/// (beyond narrowing `search_path`), and a name the engine cannot read is
/// refused.
fn check_setting_call(call: &analyze::SettingCall) -> Result<(), Denial> {
    let Some(setting) = &call.setting else {
        return Err(denials::computed_setting_name(&call.function));
    };
    if sql_lists::is_proxy_setting(setting) {
        return Err(denials::proxy_setting(setting));
    }
    if call.function == "set_config" && sql_lists::PROTECTED_SETTINGS.contains(&setting.as_str()) {
        let narrows = setting == "search_path"
            && call
                .value
                .as_deref()
                .is_some_and(sql_lists::narrows_search_path);
        if !narrows {
            return Err(denials::protected_setting(setting));
        }
    }
    Ok(())
}

/// A function a rule names is allowed or denied as the rule says; other
/// functions by their class (`engine::functions`): built-in pure and
/// metadata functions are allowed, the rest refused with the reason.
fn check_function(
    access: &PrincipalAccess,
    name: &str,
    schema: Option<&str>,
) -> Result<(), Denial> {
    let qualified = schema.map(|s| format!("{s}.{name}"));
    let explicit = qualified
        .as_ref()
        .and_then(|q| access.functions.get(q))
        .or_else(|| access.functions.get(name));
    let shown = qualified.as_deref().unwrap_or(name);
    match explicit {
        Some(true) => return Ok(()),
        Some(false) => {
            return Err(denials::function_denied(shown));
        }
        None => {}
    }
    match functions::builtin(name, schema) {
        Some(b) if b.class.callable_by_default() => Ok(()),
        // `set_config` is `SET` as a function: its setting decides
        // (`check_setting_call`), as for the statement.
        Some(b) if b.name == "set_config" => Ok(()),
        Some(b) => Err(denials::function_class(
            shown,
            name,
            &b.class.to_string(),
            b.why,
        )),
        None => Err(denials::function_unknown(shown)),
    }
}

fn column_denial(
    plan: &Plan,
    access: &PrincipalAccess,
    ri: usize,
    ci: usize,
    through: &str,
) -> Denial {
    let rel = plan.schema.relation(ri);
    let col = &rel.columns[ci];
    let class = &plan.classes[ri][ci];
    let label = plan.label(class.level);
    let (why, policies) = match &access.columns[ri][ci] {
        Access::Approval {
            approvers,
            policies,
        } => (
            format!("reading it needs approval by a member of group `{approvers}`"),
            policies.clone(),
        ),
        Access::Denied { no_mask: true, .. } => (
            "it may only be read masked and has no mask".to_owned(),
            access.policies[ri][ci].clone(),
        ),
        Access::Denied { policies, .. } if !policies.is_empty() => {
            let rules: Vec<String> = policies
                .iter()
                .map(|id| match plan.clause_by_policy(id) {
                    Some((rule, clause)) => format!(
                        "rule `{}` (`{}` at {})",
                        rule.name, clause.text, clause.location
                    ),
                    None => format!("policy `{id}`"),
                })
                .collect();
            (format!("denied by {}", rules.join(", ")), policies.clone())
        }
        _ => {
            let groups = if access.groups.is_empty() {
                "no groups".to_owned()
            } else {
                format!("group(s) {}", access.groups.join(", "))
            };
            (format!("no rule lets {groups} read it"), Vec::new())
        }
    };
    denials::column(&col.name, &rel.qualified(), through, label, &why, policies)
}

/// The name a table factor answers to in the rest of the statement.
fn visible_name(t: &TableRef) -> Option<&str> {
    t.alias
        .as_deref()
        .or_else(|| t.parts.last().map(String::as_str))
}

/// How unqualified relation names resolve for the scope resolver: catalog
/// relations first, as PostgreSQL does, then the pinned default schema.
const SEARCH_PATH: &[&str] = &[crate::schema::catalog::SCHEMA, DEFAULT_SCHEMA];

/// What the scope resolver found a statement does with withheld columns.
struct Resolution {
    /// Every relation column it touches, and how.
    usages: scope::Usages,
    /// Columns not readable in clear whose every use a `use` grant covers:
    /// the masking subquery passes them in clear.
    granted: HashSet<Source>,
}

/// Decides on the scope resolver's answer: a column withheld from the
/// identity (denied or needing approval) that the statement uses in any way
/// a `use` grant does not cover is refused, naming how it is used. `None`
/// when the resolver cannot follow the statement; the name-based check and
/// the masking subqueries (which never let a withheld value out) decide it
/// then, without grants.
fn resolve_uses(
    plan: &Plan,
    access: &PrincipalAccess,
    stmt: &sql::Statement,
) -> Result<Option<Resolution>, Denial> {
    let Ok(usages) = scope::statement_usages(stmt, &plan.schema, SEARCH_PATH) else {
        return Ok(None);
    };
    let grantable = Usage::GRANTABLE.iter().fold(0u16, |b, u| b | u.bit());
    let mut granted = HashSet::new();
    for (&(ri, ci), how) in &usages {
        if !plan.is_decided(ri) || access.columns[ri][ci] == Access::Clear {
            continue;
        }
        let bits = how.iter().fold(0u16, |b, u| b | u.bit());
        if bits & !grantable == 0 && bits & !access.uses(ri, ci) == 0 {
            granted.insert((ri, ci));
            continue;
        }
        if matches!(access.columns[ri][ci], Access::Masked(_)) {
            continue;
        }
        let how: Vec<&str> = how.iter().map(|u| u.as_str()).collect();
        return Err(column_denial(
            plan,
            access,
            ri,
            ci,
            &format!(" ({})", how.join(", ")),
        ));
    }
    Ok(Some(Resolution { usages, granted }))
}

fn reads(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    a: &Analysis,
    stmt: &sql::Statement,
    text: &str,
) -> Result<Outcome, Denial> {
    let mut out = Outcome::pass();
    check_functions_guarded(access, a, Some((text, &mut out.edits)))?;
    // Each relation reference resolved once (None for table functions).
    let mut resolved: Vec<Option<Resolved>> = a
        .tables
        .iter()
        .map(|t| (!t.is_function).then(|| resolve(plan, &t.parts, &a.ctes)))
        .collect();
    let restricted = resolved
        .iter()
        .any(|r| matches!(r, Some(Resolved::Relation(ri)) if access.relation_restricted(*ri)));
    let resolution = if restricted {
        resolve_uses(plan, access, stmt)?
    } else {
        None
    };
    for (ti, t) in a.tables.iter().enumerate() {
        if t.is_function {
            let (name, schema) = match t.parts.as_slice() {
                [.., schema, name] => (name.as_str(), Some(schema.as_str())),
                [name] => (name.as_str(), None),
                [] => ("", None),
            };
            check_function(access, name, schema)?;
            continue;
        }
        let Some(this) = resolved[ti].take() else {
            return Err(denials::internal("a relation reference was not resolved"));
        };
        let ri = match this {
            Resolved::Relation(ri) => ri,
            Resolved::Cte => {
                // A CTE that shadows a protected relation's name makes the
                // reference ambiguous to a scope-blind reader: refuse.
                if let Some(ri) = plan.schema.find(DEFAULT_SCHEMA, &t.parts[0])
                    && access.relation_restricted(ri)
                {
                    return Err(denials::shadowing_cte(&t.parts[0]));
                }
                continue;
            }
            Resolved::Catalog(name) => {
                check_catalog(&name)?;
                continue;
            }
            Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
        };
        let rel = plan.schema.relation(ri);
        for (ci, _) in rel.columns.iter().enumerate() {
            out.policies.extend(access.policies[ri][ci].iter().cloned());
        }
        let referenced = match &resolution {
            Some(r) => (0..rel.columns.len())
                .filter(|&ci| r.usages.contains_key(&(ri, ci)))
                .collect(),
            None => referenced_columns(a, ti, rel),
        };
        let granted = |ci: usize| {
            resolution
                .as_ref()
                .is_some_and(|r| r.granted.contains(&(ri, ci)))
        };
        observe(plan, access, ri, &referenced, &mut out);
        touched(plan, access, ri, &referenced, &granted, &mut out);
        out.limit(plan, access, ri);
        if !access.relation_restricted(ri) {
            continue;
        }
        if resolution.is_none() {
            check_denied_references(plan, access, a, ti, ri)?;
        }
        if t.inheritance_marker {
            return Err(denials::inheritance_marker(&rel.qualified()));
        }
        let Some((start, end)) = t.range else {
            return Err(denials::internal(
                "the relation's position in the statement is unknown",
            ));
        };
        let filter = row_filter(plan, access, env, ri)?;
        let columns: std::borrow::Cow<'_, [Access]> = if (0..rel.columns.len()).any(&granted) {
            access.columns[ri]
                .iter()
                .enumerate()
                .map(|(ci, acc)| {
                    if granted(ci) {
                        Access::Clear
                    } else {
                        acc.clone()
                    }
                })
                .collect()
        } else {
            std::borrow::Cow::Borrowed(&access.columns[ri])
        };
        let subquery = rewrite::masking_subquery(rel, &columns, filter.as_deref());
        let text = match &t.alias {
            Some(_) => subquery,
            None => format!(
                "{subquery} AS {}",
                rewrite::quote_ident(t.parts.last().map_or("", String::as_str))
            ),
        };
        out.edits.push(Edit { start, end, text });
        for (ci, acc) in columns.iter().enumerate() {
            if matches!(acc, Access::Masked(_)) {
                let col = format!("{}.{}", rel.qualified(), rel.columns[ci].name);
                if !out.masked.contains(&col) {
                    out.masked.push(col);
                }
            }
        }
    }
    for parts in &a.other_relations {
        let this = resolve(plan, parts, &a.ctes);
        if let Resolved::Relation(ri) = this {
            out.limit(plan, access, ri);
        }
        match this {
            Resolved::Relation(ri) if access.relation_restricted(ri) => {
                return Err(denials::internal(&format!(
                    "`{}` is used in a position clsf does not rewrite",
                    plan.schema.relation(ri).qualified()
                )));
            }
            Resolved::Catalog(name) => check_catalog(&name)?,
            Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
            _ => {}
        }
    }
    out.policies.sort();
    out.policies.dedup();
    Ok(out)
}

/// Refuses statements that name a denied column, directly, through `*` or
/// `t.*`, or through a whole-row reference. (The masking subquery turns
/// denied columns into NULLs anyway; this makes the refusal explicit.)
fn check_denied_references(
    plan: &Plan,
    access: &PrincipalAccess,
    a: &Analysis,
    ti: usize,
    ri: usize,
) -> Result<(), Denial> {
    let rel = plan.schema.relation(ri);
    let denied: Vec<usize> = access.columns[ri]
        .iter()
        .enumerate()
        .filter(|(_, acc)| matches!(acc, Access::Denied { .. } | Access::Approval { .. }))
        .map(|(ci, _)| ci)
        .collect();
    let Some(&first) = denied.first() else {
        return Ok(());
    };
    for &ci in &denied {
        if a.idents.contains(&rel.columns[ci].name) {
            return Err(column_denial(plan, access, ri, ci, ""));
        }
    }
    let t = &a.tables[ti];
    let visible = visible_name(t).unwrap_or("");
    for w in &a.wildcards {
        let hit = match w {
            WildcardUse::All(indices) => indices.contains(&ti),
            WildcardUse::Qualified(name) => name == visible,
        };
        if hit {
            let through = match w {
                WildcardUse::All(_) => " (through `*`)".to_owned(),
                WildcardUse::Qualified(name) => format!(" (through `{name}.*`)"),
            };
            return Err(column_denial(plan, access, ri, first, &through));
        }
    }
    if a.bare_idents.contains(visible) && rel.column_index(visible).is_none() {
        return Err(column_denial(
            plan,
            access,
            ri,
            first,
            &format!(" (through the whole-row reference `{visible}`)"),
        ));
    }
    Ok(())
}

fn writes(
    plan: &Plan,
    access: &PrincipalAccess,
    a: &Analysis,
    target: Option<&[String]>,
) -> Result<Outcome, Denial> {
    check_functions(access, a)?;
    if let Some(parts) = target {
        match resolve(plan, parts, &a.ctes) {
            Resolved::Relation(ri) => {
                let rel = plan.schema.relation(ri);
                // Every column of the written table must be writable: an
                // INSERT sets defaults and a DELETE removes whole rows.
                if let Some(d) = access.write[ri].iter().enumerate().find_map(|(ci, p)| {
                    let what = format!(
                        "writing column `{}` of `{}`",
                        rel.columns[ci].name,
                        rel.qualified()
                    );
                    perm_denial(plan, p, "write", &what)
                }) {
                    return Err(d);
                }
            }
            Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
            Resolved::Catalog(name) => {
                return Err(denials::catalog_write(&name.to_string()));
            }
            Resolved::Cte => {}
        }
    } else {
        // A data-modifying CTE: every relation it touches must be writable.
        for t in a.tables.iter().filter(|t| !t.is_function) {
            if let Resolved::Relation(ri) = resolve(plan, &t.parts, &a.ctes)
                && let Some(d) = access.write[ri].iter().find_map(|p| {
                    perm_denial(
                        plan,
                        p,
                        "write",
                        &format!("writing `{}`", plan.schema.relation(ri).qualified()),
                    )
                })
            {
                return Err(d);
            }
        }
    }
    let all = a
        .tables
        .iter()
        .filter(|t| !t.is_function)
        .map(|t| &t.parts)
        .chain(a.other_relations.iter());
    for parts in all {
        let this = resolve(plan, parts, &a.ctes);
        if let Resolved::Relation(ri) = this
            && let Some((rows, rule)) = row_limit(plan, access, ri)
        {
            // Copying rows elsewhere would lift the limit.
            return Err(denials::limited_write(
                &plan.schema.relation(ri).qualified(),
                rows,
                &rule,
            ));
        }
        match this {
            Resolved::Relation(ri) if access.relation_restricted(ri) => {
                return Err(denials::withheld_write(
                    &plan.schema.relation(ri).qualified(),
                ));
            }
            Resolved::Catalog(name) => check_catalog(&name)?,
            Resolved::Unknown(name) => return Err(denials::unknown_relation(&name)),
            _ => {}
        }
    }
    Ok(Outcome::pass())
}

/// The limit on rows per statement for relation `ri` (the smallest of the
/// identity's `limit` clauses covering it), with its rule's name.
fn row_limit(plan: &Plan, access: &PrincipalAccess, ri: usize) -> Option<(u64, String)> {
    let rel = plan.schema.relation(ri);
    access
        .limits
        .iter()
        .filter(|l| match &l.target {
            crate::plan::Target::All => true,
            t => (0..rel.columns.len()).any(|ci| t.covers_column(plan, ri, ci)),
        })
        .min_by_key(|l| l.rows)
        .map(|l| {
            let rule = plan
                .clause_by_policy(&l.policy_id)
                .map_or_else(|| l.policy_id.clone(), |(r, _)| r.name.clone());
            (l.rows, rule)
        })
}

/// COPY output is one stream the proxy cannot cut row by row (a binary
/// COPY's trailer would be lost): under a row limit it is refused.
fn no_limit_in_copy(out: Outcome) -> Result<Outcome, Denial> {
    match &out.row_limit {
        None => Ok(out),
        Some((rows, rule)) => Err(denials::limited_copy(*rows, rule)),
    }
}

/// The row filter of relation `ri` with the session's claims bound as
/// string literals; refused when a claim it needs is missing or not a
/// string or number.
fn row_filter(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    ri: usize,
) -> Result<Option<String>, Denial> {
    let filters: Vec<&crate::engine::access::RowFilter> =
        access.filters.iter().filter(|f| f.relation == ri).collect();
    if filters.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::new();
    for f in filters {
        let paths = crate::resolve::claim_placeholders(&f.predicate).unwrap_or_default();
        let mut values = Vec::new();
        for path in &paths {
            let mut v = env.claims;
            for seg in path {
                v = v.and_then(|x| x.get(seg));
            }
            let literal = match v {
                Some(serde_json::Value::String(s)) => sql_string(s),
                Some(serde_json::Value::Number(n)) => sql_string(&n.to_string()),
                _ => {
                    return Err(denials::missing_filter_claim(
                        &plan.schema.relation(ri).qualified(),
                        &path.join("."),
                        f.policy_id.clone(),
                    ));
                }
            };
            values.push(literal);
        }
        let bound = crate::resolve::substitute(&f.predicate, |i| values[i].clone());
        parts.push(format!("({bound})"));
    }
    Ok(Some(parts.join(" AND ")))
}

/// The columns of relation reference `ti` the statement names, directly or
/// through `*`/`t.*` (by name: a name shared by two relations counts for both).
fn referenced_columns(a: &Analysis, ti: usize, rel: &crate::schema::Relation) -> Vec<usize> {
    let visible = visible_name(&a.tables[ti]).unwrap_or("");
    let all = a.wildcards.iter().any(|w| match w {
        WildcardUse::All(indices) => indices.contains(&ti),
        WildcardUse::Qualified(name) => name == visible,
    }) || (a.bare_idents.contains(visible) && rel.column_index(visible).is_none());
    (0..rel.columns.len())
        .filter(|&ci| all || a.idents.contains(&rel.columns[ci].name))
        .collect()
}

/// Records what observe-only rules would have withheld from the columns
/// this reference reads.
fn observe(
    plan: &Plan,
    access: &PrincipalAccess,
    ri: usize,
    referenced: &[usize],
    out: &mut Outcome,
) {
    let Some(observed) = &access.observed else {
        return;
    };
    let rel = plan.schema.relation(ri);
    for &ci in referenced {
        let would = match (&access.columns[ri][ci], &observed[ri][ci]) {
            (Access::Clear, Access::Masked(_)) => "mask",
            (
                Access::Clear | Access::Masked(_),
                Access::Denied { .. } | Access::Approval { .. },
            ) => "deny",
            _ => continue,
        };
        let entry = format!("{would} {}.{}", rel.qualified(), rel.columns[ci].name);
        if !out.observed.contains(&entry) {
            out.observed.push(entry);
        }
    }
}

/// Records the columns a statement reads, with their labels and access.
fn touched(
    plan: &Plan,
    access: &PrincipalAccess,
    ri: usize,
    referenced: &[usize],
    granted: &dyn Fn(usize) -> bool,
    out: &mut Outcome,
) {
    let rel = plan.schema.relation(ri);
    for &ci in referenced {
        let column = format!("{}.{}", rel.qualified(), rel.columns[ci].name);
        if out.columns.iter().any(|c| c.column == column) {
            continue;
        }
        out.columns.push(ColumnUse {
            column,
            label: plan.describe_class(&plan.classes[ri][ci]),
            access: match &access.columns[ri][ci] {
                _ if granted(ci) => "used in clear, not read (use grant)".to_owned(),
                Access::Clear => "clear".to_owned(),
                Access::Masked(m) => format!("masked ({})", m.display()),
                Access::Approval { approvers, .. } => format!("needs approval by {approvers}"),
                Access::Denied { .. } => "denied".to_owned(),
            },
        });
    }
}
