//! Where a statement is decided: from the analysis and the identity's
//! access table to a [`Verdict`] (forward unchanged, forward rewritten, or
//! deny with a SQLSTATE and a message that names the column, label and rule).

use crate::schema::{ColId, RelId};
use std::collections::HashSet;

use sqlparser::ast as sql;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::access::{Access, Perm, PrincipalAccess};
use crate::analyze::{self, Analysis};
use crate::barrier;
use crate::denials;
use crate::functions;
use crate::masks::sql_string;
use crate::model::{self, Model};
use crate::plan::{ClauseId, Plan};
use crate::rewrite::{self, Edit};
use crate::scope::{self, Source, Usage};
use crate::sql_lists;
use crate::system_columns;

mod calls;
mod copy;
mod empty;
mod kinds;
mod locks;
mod reads;
pub use reads::row_limit;
pub use writes::guarded_keys;
mod relations;
mod session;
pub use session::{StartupSetting, startup_setting};
mod writes;

use self::calls::*;
use self::copy::*;
use self::kinds::*;
use self::locks::*;
pub(crate) use self::reads::row_limit as reads_row_limit;
use self::reads::*;
use self::relations::*;
use self::session::*;
use self::writes::*;

pub use crate::verdict::{
    ColumnUse, Decision, Denial, FEATURE_NOT_SUPPORTED, Findings, INSUFFICIENT_PRIVILEGE,
    SessionObject, StatementReport, Verdict,
};

/// What deciding needs besides the plan and the access table: the
/// session's verified claims (for row filters).
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// Verified token claims of the session, if it has a token.
    pub claims: Option<&'a serde_json::Value>,
    /// The live relations' columns against the lock.
    pub drift: &'a crate::Drift,
}

/// What every part of a decision reads: the plan, the identity's access
/// and the session's environment, passed as one; and where it notes the
/// approvals the statement needs.
#[derive(Clone, Copy)]
pub(super) struct Cx<'a> {
    pub(super) plan: &'a Plan,
    pub(super) access: &'a PrincipalAccess,
    pub(super) env: &'a Env<'a>,
    pub(super) needs: &'a Needs,
    /// Set when the decision turned on a literal's value (a statement with
    /// no rows by its text, `empty::no_rows`): it is then not reused for
    /// the same statement with other literals.
    pub(super) on_literal: &'a std::cell::Cell<bool>,
    /// Deciding the statement of an `EXPLAIN`: no row of its result is
    /// sent (the client gets plan lines; `ANALYZE` discards the rows).
    pub(super) explained: bool,
}

/// The approval clauses a statement needs, gathered in the same pass that
/// decides it. Access is a lattice, clear < masked < needs approval <
/// denied: a column or action that needs an approval does not refuse the
/// statement but is noted here and decided as approved (what it gates is
/// read in clear, the action permitted). When nothing else refuses the
/// statement, it is held for exactly these clauses (`hold::held`); when
/// something does, that refusal is the answer and an approval could not
/// have released it.
#[derive(Default)]
pub(crate) struct Needs(std::cell::RefCell<Vec<ClauseId>>);

impl Needs {
    /// Notes the approval `clauses` (each once, in order).
    pub(super) fn add(&self, clauses: &[ClauseId]) {
        let mut needs = self.0.borrow_mut();
        for c in clauses {
            if !needs.contains(c) {
                needs.push(*c);
            }
        }
    }

    /// True when one of `clauses` is among those noted: what they gate is
    /// decided as approved.
    pub(super) fn opens(&self, clauses: &[ClauseId]) -> bool {
        let needs = self.0.borrow();
        clauses.iter().any(|c| needs.contains(c))
    }

    fn take(self) -> Vec<ClauseId> {
        self.0.into_inner()
    }
}

/// Decides a simple-query string.
pub fn decide(plan: &Plan, access: &PrincipalAccess, env: &Env<'_>, text: &str) -> Decision {
    decide_with_edits(plan, access, env, text).0
}

/// Decides a simple-query string; also returns the splices a `Rewrite`
/// verdict was made of (for the shape cache).
/// The edits come with the decision where it may be reused for the same
/// statement with other literals (`None`: it may not).
pub(crate) fn decide_with_edits(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    text: &str,
) -> (Decision, Option<Vec<Edit>>) {
    let needs = Needs::default();
    let on_literal = std::cell::Cell::new(false);
    let cx = Cx {
        plan,
        access,
        env,
        needs: &needs,
        on_literal: &on_literal,
        explained: false,
    };
    let (decision, edits) = decide_text(cx, text);
    let edits = (!on_literal.get()).then_some(edits);
    let needs = needs.take();
    if needs.is_empty() || matches!(decision.verdict, Verdict::Deny(_)) {
        return (decision, edits);
    }
    // Held: the edits are those of what runs once approved, not of a
    // verdict the shape cache could reuse.
    (crate::hold::held(plan, &needs, decision), None)
}

/// Decides a query string in `cx`, noting the approvals it needs.
fn decide_text(cx: Cx<'_>, text: &str) -> (Decision, Vec<Edit>) {
    let Cx { plan, .. } = cx;
    let parsed = Parser::parse_sql(&PostgreSqlDialect {}, text);
    let statements = match parsed {
        Ok(s) => s,
        Err(e) => {
            if let Some(decided) = decide_unparsed(cx, text) {
                return decided;
            }
            return refused_whole(plan, text, denials::unparsable(&e.to_string()));
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
        match decide_statement(cx, stmt, text) {
            Ok(outcome) => {
                edits.extend(outcome.edits);
                reports.push(StatementReport::new(
                    stmt_text,
                    Findings {
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
                    },
                ));
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
                let f = r.findings_mut();
                f.decision = "deny";
                f.reason = Some("another statement in the same query string was denied".to_owned());
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
        let rules = rule_names(plan, &r.policies);
        r.findings_mut().rules = rules;
    }
    let verdict = if edits.is_empty() {
        Verdict::Forward
    } else {
        match rewrite::splice(text, &mut edits) {
            Some(new_text) => Verdict::Rewrite(new_text),
            None => {
                let d = denials::internal("overlapping rewrites");
                for r in &mut reports {
                    let f = r.findings_mut();
                    f.decision = "deny";
                    f.reason = Some(d.message.clone());
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
/// is what PostgreSQL runs, and forwarded in that form), operators written
/// `OPERATOR(pg_catalog.op)` (pg_dump's and psql's catalog queries, which
/// sqlparser does not take before `ANY`/`ALL`: decided and forwarded with
/// the plain operator, the same one since pg_catalog is searched first and
/// the search path cannot be changed), `FETCH`/`MOVE` forms sqlparser
/// lacks, and schema statements, refused for what they are rather than for
/// the parser. `None`: refused as unparseable.
fn decide_unparsed(cx: Cx<'_>, text: &str) -> Option<(Decision, Vec<Edit>)> {
    let Cx { plan, access, .. } = cx;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .ok()?;
    let words = words_of(&tokens, text);
    let keyword = |i: usize| keyword_at(&words, i);
    if let Some(normalized) = plain_catalog_operators(text, &words) {
        return Some(decided_as(cx, text, &normalized));
    }
    if let Some((padded, spans)) = padded_forms(
        text,
        &words,
        access.filters.is_empty(),
        !access.has_use_grants(),
    ) {
        // The same statement with `FOR UPDATE`/`FOR SHARE` in place,
        // without `[NOT] DEFERRABLE`, `[A]SYMMETRIC` or a recursive CTE's
        // `SEARCH`/`CYCLE`, or with a function for `COLLATION FOR`,
        // padded to the same length: its rewrites
        // apply to the client's text, which is forwarded with its own
        // forms.
        let (mut decision, mut edits) = decide_text(cx, &padded);
        // A column `SEARCH` or `CYCLE` adds is unknown to the padded text:
        // where that mattered (a relation read has anything withheld), say
        // what was not followed rather than that the column is missing.
        if let Verdict::Deny(d) = &decision.verdict
            && d.sqlstate == crate::verdict::UNDEFINED_COLUMN
            && let Some(added) = search_cycle_clauses(&words)
                .into_iter()
                .flat_map(|(.., added)| added)
                .find(|c| d.message.contains(&format!("`{c}`")))
        {
            let what = format!("the columns SEARCH and CYCLE add (`{added}`)");
            return Some(refused_whole(
                plan,
                text,
                denials::not_resolved(&scope::ScopeError::NotFollowed(what)),
            ));
        }
        if edits
            .iter()
            .any(|e| spans.iter().any(|&(s, t)| e.start < t && s < e.end))
        {
            return None;
        }
        for r in &mut decision.statements {
            r.text = text.to_owned();
        }
        // The cursor a write names by `WHERE CURRENT OF` must be one the
        // session declared with SQL, as for `FETCH`.
        if let Some((cursor, ..)) = current_of(&words)
            && let [report] = decision.statements.as_mut_slice()
            && report.decision != "deny"
        {
            report.findings_mut().object = Some(SessionObject::UseCursor(cursor));
        }
        if let Verdict::Rewrite(_) = decision.verdict {
            decision.verdict = Verdict::Rewrite(rewrite::splice(text, &mut edits)?);
        }
        return Some((decision, edits));
    }
    let first = keyword(0)?;
    // The words after the first, up to an optional final `;`: a statement
    // read from its tokens must be the whole text.
    let rest = match words.last() {
        Some((Token::SemiColon, ..)) => &words[1..words.len() - 1],
        _ => &words[1..],
    };
    if let Some(normalized) = setting_alias(text, &words) {
        return Some(decided_as(cx, text, &normalized));
    }
    match (first.as_str(), keyword(1).as_deref()) {
        // SET CONSTRAINTS { ALL | name [, …] } { DEFERRED | IMMEDIATE }
        // (Django's and Rails' fixture loading): when the transaction's
        // constraints are checked. It names constraints, reads nothing.
        ("SET", Some("CONSTRAINTS")) => {
            let [_, names @ .., (Token::Word(mode), ..)] = rest else {
                return None;
            };
            let timing = mode.quote_style.is_none()
                && matches!(
                    mode.value.to_ascii_uppercase().as_str(),
                    "DEFERRED" | "IMMEDIATE"
                );
            // ALL, or names (qualified or not) separated by commas.
            let listed = names.iter().enumerate().all(|(i, (t, ..))| match t {
                Token::Word(_) => i % 2 == 0,
                Token::Period | Token::Comma => i % 2 == 1 && i + 1 < names.len(),
                _ => false,
            });
            if !timing || names.is_empty() || !listed {
                return None;
            }
            return Some(forwarded_whole(text, None));
        }
        ("PREPARE", Some("TRANSACTION")) | ("COMMIT" | "ROLLBACK", Some("PREPARED")) => {
            return Some(refused_whole(plan, text, denials::two_phase_commit()));
        }
        _ => {}
    }
    // One statement: no `;` but an optional final one (a body's semicolons
    // are inside its string token).
    let single = !rest.iter().any(|(t, ..)| matches!(t, Token::SemiColon));
    match first.as_str() {
        // DO [LANGUAGE name] 'code' [LANGUAGE name]: an anonymous block's
        // code runs inside the server, where clsf cannot see what it reads
        // or writes. An identity with nothing withheld runs it (what it
        // could do there it may do anyway); any other is refused for that
        // reason, not for the parser.
        "DO" => {
            let own = rest
                .split(|(t, ..)| matches!(t, Token::SemiColon))
                .next()
                .unwrap_or(&[]);
            let code = own
                .iter()
                .filter(|(t, ..)| {
                    matches!(
                        t,
                        Token::SingleQuotedString(_)
                            | Token::DollarQuotedString(_)
                            | Token::EscapedStringLiteral(_)
                    )
                })
                .count();
            if code != 1 {
                return None;
            }
            Some(match (access.full_clear, single) {
                (true, true) => forwarded_whole(text, None),
                (true, false) => refused_whole(plan, text, denials::unparsable_not_alone("DO")),
                (false, _) => refused_whole(plan, text, denials::do_block()),
            })
        }
        "TABLE" => {
            let (_, Some(start), Some(end)) = words[0] else {
                return None;
            };
            let normalized = format!("{}SELECT * FROM{}", &text[..start], &text[end..]);
            Some(decided_as(cx, text, &normalized))
        }
        "FETCH" | "MOVE" => {
            // FETCH|MOVE [direction] [FROM|IN] cursor [;]: the direction is
            // keywords, a signed count or ALL; the last word is the cursor.
            let mut end = words.len();
            if matches!(words.last(), Some((Token::SemiColon, ..))) {
                end -= 1;
            }
            // `FETCH` or `MOVE` alone names no cursor (found by fuzzing).
            if end < 2 {
                return None;
            }
            let Some((Token::Word(cursor), ..)) = words.get(end - 1) else {
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
            Some(forwarded_whole(text, Some(SessionObject::UseCursor(name))))
        }
        "CREATE" | "ALTER" | "DROP" | "COMMENT" | "GRANT" | "REVOKE" | "SECURITY" | "REINDEX"
        | "CLUSTER" | "VACUUM" | "ANALYZE" | "REFRESH" | "IMPORT" | "REASSIGN" | "CHECKPOINT" => {
            // Schema and maintenance statements sqlparser does not parse (a
            // `CREATE PROCEDURE`, `CREATE AGGREGATE`, `ALTER DEFAULT
            // PRIVILEGES`, …), alone in their text, for an identity with
            // nothing withheld: there is nothing for clsf to check in them.
            if access.full_clear && single {
                return Some(forwarded_whole(text, None));
            }
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
            let what = format!("statement `{kind}`");
            let denial = match perm_denial(plan, cx.needs, perm, action, &what) {
                Some(d) => d,
                // Alone, it would have been forwarded.
                None if access.full_clear => denials::unparsable_not_alone(&kind),
                None => denials::unparsable_kind(&kind),
            };
            Some(refused_whole(plan, text, denial))
        }
        _ => None,
    }
}

/// The whole of `text`, one statement read from its tokens, forwarded as
/// written (with the session object it makes or uses).
fn forwarded_whole(text: &str, object: Option<SessionObject>) -> (Decision, Vec<Edit>) {
    let report = StatementReport::new(
        text.to_owned(),
        Findings {
            decision: "allow",
            object,
            ..Findings::default()
        },
    );
    let decision = Decision {
        verdict: Verdict::Forward,
        statements: vec![report],
    };
    (decision, Vec::new())
}

/// The whole of `text` refused with `denial`.
fn refused_whole(plan: &Plan, text: &str, denial: Denial) -> (Decision, Vec<Edit>) {
    let decision = Decision {
        statements: vec![report_denied(plan, text.to_owned(), &denial)],
        verdict: Verdict::Deny(denial),
    };
    (decision, Vec::new())
}

/// Decides `text` as the equivalent `normalized`, which is what is
/// forwarded (the reports keep the client's text).
fn decided_as(cx: Cx<'_>, text: &str, normalized: &str) -> (Decision, Vec<Edit>) {
    let (mut decision, _) = decide_text(cx, normalized);
    let forwarded = match &decision.verdict {
        Verdict::Forward => Some(normalized.to_owned()),
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
    (decision, edits)
}

/// `SET [SESSION | LOCAL] SCHEMA 'name'` and `SET [SESSION | LOCAL] XML
/// OPTION {DOCUMENT | CONTENT}`, which sqlparser does not parse, written as
/// the settings PostgreSQL documents them as aliases of: `search_path` and
/// `xmloption` (the SQL standard's `SET SCHEMA`, which clients written
/// for other databases send).
fn setting_alias(text: &str, words: &Words<'_>) -> Option<String> {
    use sqlparser::tokenizer::Token;
    let keyword = |i: usize| keyword_at(words, i);
    if keyword(0).as_deref() != Some("SET") {
        return None;
    }
    let at = match keyword(1).as_deref() {
        Some("SESSION" | "LOCAL") => 2,
        _ => 1,
    };
    let end = match words.last() {
        Some((Token::SemiColon, ..)) => words.len() - 1,
        _ => words.len(),
    };
    let (replaced_to, setting) = match (keyword(at).as_deref(), keyword(at + 1).as_deref()) {
        (Some("SCHEMA"), _)
            if end == at + 2 && matches!(words[at + 1].0, Token::SingleQuotedString(_)) =>
        {
            (words[at].2?, "search_path TO")
        }
        (Some("XML"), Some("OPTION"))
            if end == at + 3
                && matches!(keyword(at + 2).as_deref(), Some("DOCUMENT" | "CONTENT")) =>
        {
            (words[at + 1].2?, "xmloption TO")
        }
        _ => return None,
    };
    let from = words[at].1?;
    Some(format!(
        "{}{setting}{}",
        &text[..from],
        &text[replaced_to..]
    ))
}

/// A statement's tokens without whitespace, each with its byte range.
type Words<'t> = [(
    &'t sqlparser::tokenizer::Token,
    Option<usize>,
    Option<usize>,
)];

/// `tokens` of `text` without whitespace, each with its byte range.
fn words_of<'t>(
    tokens: &'t [sqlparser::tokenizer::TokenWithSpan],
    text: &str,
) -> Vec<(
    &'t sqlparser::tokenizer::Token,
    Option<usize>,
    Option<usize>,
)> {
    let index = analyze::LineIndex::new(text);
    tokens
        .iter()
        .filter(|t| !matches!(t.token, sqlparser::tokenizer::Token::Whitespace(_)))
        .map(|t| {
            (
                &t.token,
                index.offset(t.span.start),
                index.offset(t.span.end),
            )
        })
        .collect()
}

/// The unquoted word at `i`, upper-cased (a keyword as the server reads it).
fn keyword_at(words: &Words<'_>, i: usize) -> Option<String> {
    match words.get(i) {
        Some((sqlparser::tokenizer::Token::Word(w), ..)) if w.quote_style.is_none() => {
            Some(w.value.to_ascii_uppercase())
        }
        _ => None,
    }
}

/// Every form sqlparser does not parse that reads the same values as one
/// it does, written as that one in place and padded to the same byte
/// length (so the rewrites of the padded text apply to the client's), with
/// the ranges written over; `None` when the statement has none.
///
/// `unfiltered`: no row filter applies to the identity. The expression
/// forms are only taken then: under a row filter, conditions of the
/// statement are copied into the filtered relation's subquery from the
/// padded text, where they would read differently from the client's.
/// `ungranted`: no `use` grant applies to the identity. `SEARCH`/`CYCLE`
/// are only taken then too: they compare the CTE's values across rows, a
/// use the padded text does not show, so a column a grant passes in clear
/// for joins or filters only must not reach them.
fn padded_forms(text: &str, words: &Words<'_>, unfiltered: bool, ungranted: bool) -> Padded {
    type Form = fn(&str, &Words<'_>) -> Padded;
    // Forms that change no condition: for every identity.
    const ALWAYS: [Form; 4] = [
        key_locks_padded,
        deferrable_padded,
        group_by_quantifier_padded,
        current_of_padded,
    ];
    // Expression forms: only without a row filter (above).
    const UNFILTERED: [Form; 4] = [
        between_symmetric_padded,
        collation_for_padded,
        variadic_padded,
        frame_exclusion_padded,
    ];
    // Only without a row filter or a `use` grant (above).
    const UNGRANTED: [Form; 1] = [search_cycle_padded];
    let forms = ALWAYS
        .iter()
        .chain(UNFILTERED.iter().filter(|_| unfiltered))
        .chain(UNGRANTED.iter().filter(|_| unfiltered && ungranted));
    let mut out: Padded = None;
    for form in forms {
        // Each form reads the client's tokens, whose ranges the padding
        // keeps, and writes over what the forms before it wrote.
        let current = out.as_ref().map_or(text, |(t, _)| t.as_str());
        if let Some((padded, spans)) = form(current, words) {
            let mut all = out.map(|(_, s)| s).unwrap_or_default();
            all.extend(spans);
            out = Some((padded, all));
        }
    }
    out
}

/// A statement's padded form, and the ranges written over.
type Padded = Option<(String, Vec<(usize, usize)>)>;

/// `text` with each match written over, padded with spaces to the same
/// byte length: `at(i)` says whether a match starts at word `i`, and if so
/// its first and last word and what the range becomes (`""` blanks it).
fn pad_matches(
    text: &str,
    words: &Words<'_>,
    at: impl Fn(usize) -> Option<(usize, usize, &'static str)>,
) -> Padded {
    let mut out = text.to_owned();
    let mut spans = Vec::new();
    for i in 0..words.len() {
        let Some((first, last, with)) = at(i) else {
            continue;
        };
        let (Some(start), Some(end)) = (words[first].1, words[last].2) else {
            return None;
        };
        out.replace_range(start..end, &format!("{with:<width$}", width = end - start));
        spans.push((start, end));
    }
    (!spans.is_empty()).then_some((out, spans))
}

/// `text` with the `DISTINCT` or `ALL` of each `GROUP BY DISTINCT …` or
/// `GROUP BY ALL …` (PostgreSQL 14) blanked out. The quantifier says
/// whether duplicate grouping sets are removed: the same columns grouped
/// the same way. Both words are reserved in PostgreSQL, so unquoted they
/// name nothing; a bare `GROUP BY ALL`, which sqlparser reads and
/// PostgreSQL refuses, is left as it is.
fn group_by_quantifier_padded(text: &str, words: &Words<'_>) -> Padded {
    use sqlparser::tokenizer::Token;
    let word = |i: usize| keyword_at(words, i);
    pad_matches(text, words, |i| {
        (i > 1
            && word(i - 2).as_deref() == Some("GROUP")
            && word(i - 1).as_deref() == Some("BY")
            && matches!(word(i).as_deref(), Some("DISTINCT" | "ALL"))
            && words
                .get(i + 1)
                .is_some_and(|(t, ..)| !matches!(t, Token::SemiColon | Token::RParen)))
        .then_some((i, i, ""))
    })
}

/// The `SEARCH … SET c` and `CYCLE … SET c … USING p` clauses of a
/// recursive CTE (PostgreSQL 14), each from its first word to its last;
/// with the columns they add to the CTE (`c`, `p`).
fn search_cycle_clauses(words: &Words<'_>) -> Vec<(usize, usize, Vec<String>)> {
    use sqlparser::tokenizer::Token;
    let word = |i: usize| keyword_at(words, i);
    // An identifier: a word, quoted or not (its name as PostgreSQL folds it).
    let ident = |i: usize| match words.get(i) {
        Some((Token::Word(w), ..)) if w.quote_style == Some('"') => Some(w.value.clone()),
        Some((Token::Word(w), ..)) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        _ => None,
    };
    // `a, b, …` from `i`: the index after the list.
    let list = |mut i: usize| -> Option<usize> {
        ident(i)?;
        i += 1;
        while matches!(words.get(i), Some((Token::Comma, ..))) {
            ident(i + 1)?;
            i += 2;
        }
        Some(i)
    };
    // A constant (`TO 'Y' DEFAULT 'N'`): one literal or word token.
    let constant = |i: usize| {
        matches!(
            words.get(i),
            Some((
                Token::SingleQuotedString(_) | Token::Number(..) | Token::Word(_),
                ..
            ))
        )
    };
    if !(word(0).as_deref() == Some("WITH") && word(1).as_deref() == Some("RECURSIVE")) {
        return Vec::new();
    }
    let mut out: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let mut i = 2;
    while i < words.len() {
        // After a CTE's closing parenthesis, or `CYCLE` right after `SEARCH`.
        let after_search = out.last().is_some_and(|&(_, last, _)| last + 1 == i);
        if !matches!(words[i - 1].0, Token::RParen) && !after_search {
            i += 1;
            continue;
        }
        let clause = match word(i).as_deref() {
            Some("SEARCH") => (|| {
                if !matches!(word(i + 1).as_deref(), Some("BREADTH" | "DEPTH"))
                    || word(i + 2).as_deref() != Some("FIRST")
                    || word(i + 3).as_deref() != Some("BY")
                {
                    return None;
                }
                let set = list(i + 4)?;
                (word(set).as_deref() == Some("SET")).then_some(())?;
                Some((set + 1, vec![ident(set + 1)?]))
            })(),
            Some("CYCLE") => (|| {
                let set = list(i + 1)?;
                (word(set).as_deref() == Some("SET")).then_some(())?;
                let mark = ident(set + 1)?;
                let mut using = set + 2;
                if word(using).as_deref() == Some("TO") {
                    (constant(using + 1)
                        && word(using + 2).as_deref() == Some("DEFAULT")
                        && constant(using + 3))
                    .then_some(())?;
                    using += 4;
                }
                (word(using).as_deref() == Some("USING")).then_some(())?;
                Some((using + 1, vec![mark, ident(using + 1)?]))
            })(),
            _ => None,
        };
        match clause {
            Some((last, added)) => {
                out.push((i, last, added));
                i = last + 1;
            }
            None => i += 1,
        }
    }
    out
}

/// `text` with the `SEARCH` and `CYCLE` clauses of its recursive CTEs
/// blanked out. They add columns computed from the CTE's own (a search
/// order, a cycle mark and path) and change no value it reads: a
/// statement that names none of the added columns reads what it reads
/// without the clauses. One that does cannot be followed without them,
/// which matters only where a relation it reads has anything withheld
/// (then `decide_unparsed` refuses it saying so).
fn search_cycle_padded(text: &str, words: &Words<'_>) -> Padded {
    let clauses = search_cycle_clauses(words);
    pad_matches(text, words, |i| {
        clauses
            .iter()
            .find(|(first, ..)| *first == i)
            .map(|&(first, last, _)| (first, last, ""))
    })
}

/// `text` with the `SYMMETRIC` or `ASYMMETRIC` of each `BETWEEN` blanked
/// out. `x BETWEEN SYMMETRIC a AND b` compares `x` with the same two
/// values as `x BETWEEN a AND b`, in either order: the same columns, used
/// the same way.
fn between_symmetric_padded(text: &str, words: &Words<'_>) -> Padded {
    let word = |i: usize| keyword_at(words, i);
    pad_matches(text, words, |i| {
        (i > 0
            && word(i - 1).as_deref() == Some("BETWEEN")
            && matches!(word(i).as_deref(), Some("SYMMETRIC" | "ASYMMETRIC")))
        .then_some((i, i, ""))
    })
}

/// `text` with each `VARIADIC` before a function's argument blanked out.
/// `f(a, VARIADIC b)` calls the same function on the same expressions as
/// `f(a, b)` (it passes the array `b` as the variadic parameter rather
/// than as one element of it): the same columns, used the same way, and
/// functions are decided by name. `VARIADIC` is reserved in PostgreSQL,
/// so unquoted it names nothing.
fn variadic_padded(text: &str, words: &Words<'_>) -> Padded {
    use sqlparser::tokenizer::Token;
    pad_matches(text, words, |i| {
        (i > 0
            && matches!(words[i - 1].0, Token::LParen | Token::Comma)
            && keyword_at(words, i).as_deref() == Some("VARIADIC"))
        .then_some((i, i, ""))
    })
}

/// `text` with a window frame's exclusion (`EXCLUDE CURRENT ROW`, `GROUP`,
/// `TIES` or `NO OTHERS`) blanked out: which rows of the frame an
/// aggregate sees, over the same columns used the same way. Only at the
/// end of a frame (after `ROW`, `PRECEDING` or `FOLLOWING`, before the
/// window's closing parenthesis): `exclude` is not reserved, and `SELECT
/// exclude ties` reads a column `exclude`.
fn frame_exclusion_padded(text: &str, words: &Words<'_>) -> Padded {
    use sqlparser::tokenizer::Token;
    let word = |i: usize| keyword_at(words, i);
    pad_matches(text, words, |i| {
        if i == 0
            || word(i).as_deref() != Some("EXCLUDE")
            || !matches!(
                word(i - 1).as_deref(),
                Some("ROW" | "PRECEDING" | "FOLLOWING")
            )
        {
            return None;
        }
        let last = match (word(i + 1).as_deref(), word(i + 2).as_deref()) {
            (Some("CURRENT"), Some("ROW")) | (Some("NO"), Some("OTHERS")) => i + 2,
            (Some("GROUP" | "TIES"), _) => i + 1,
            _ => return None,
        };
        matches!(words.get(last + 1), Some((Token::RParen, ..))).then_some((i, last, ""))
    })
}

/// `text` with each `COLLATION FOR (x)` written `pg_typeof (x)`, padded.
/// PostgreSQL runs `COLLATION FOR` as `pg_collation_for(x)`: like
/// `pg_typeof`, it computes on its argument and returns what the argument
/// is (its collation, its type), never its value; the two are classified
/// alike, so the decision is the one `pg_collation_for` would get.
fn collation_for_padded(text: &str, words: &Words<'_>) -> Padded {
    use sqlparser::tokenizer::Token;
    let word = |i: usize| keyword_at(words, i);
    pad_matches(text, words, |i| {
        (word(i).as_deref() == Some("COLLATION")
            && word(i + 1).as_deref() == Some("FOR")
            && matches!(words.get(i + 2), Some((Token::LParen, ..))))
        .then_some((i, i + 1, "pg_typeof"))
    })
}

/// `text` with each `FOR NO KEY UPDATE` written `FOR UPDATE` and each
/// `FOR KEY SHARE` written `FOR SHARE` (Hibernate's and Rails' row locks,
/// which sqlparser does not parse), padded with spaces to the same byte
/// length, and the replaced ranges; `None` when it has none. The lock
/// strength changes no value read.
fn key_locks_padded(text: &str, words: &Words<'_>) -> Padded {
    let word = |i: usize| keyword_at(words, i);
    pad_matches(text, words, |i| {
        if word(i).as_deref() != Some("FOR") {
            return None;
        }
        match (
            word(i + 1).as_deref(),
            word(i + 2).as_deref(),
            word(i + 3).as_deref(),
        ) {
            (Some("NO"), Some("KEY"), Some("UPDATE")) => Some((i, i + 3, "FOR UPDATE")),
            (Some("KEY"), Some("SHARE"), _) => Some((i, i + 2, "FOR SHARE")),
            _ => None,
        }
    })
}

/// The cursor of a write's `WHERE CURRENT OF cursor` (its whole text one
/// `UPDATE` or `DELETE`), folded as PostgreSQL folds it, with the index of
/// its `CURRENT` word and of its name.
fn current_of(words: &Words<'_>) -> Option<(String, usize, usize)> {
    use sqlparser::tokenizer::Token;
    let word = |i: usize| keyword_at(words, i);
    if !matches!(word(0).as_deref(), Some("UPDATE" | "DELETE")) {
        return None;
    }
    let mut end = words.len();
    if matches!(words.last(), Some((Token::SemiColon, ..))) {
        end -= 1;
    }
    // `… WHERE CURRENT OF name [RETURNING …]`: the clause ends the text or
    // is followed by `RETURNING`, and nothing else in it is a `;`.
    if words[..end]
        .iter()
        .any(|(t, ..)| matches!(t, Token::SemiColon))
    {
        return None;
    }
    let i = (1..end).find(|&i| {
        word(i - 1).as_deref() == Some("WHERE")
            && word(i).as_deref() == Some("CURRENT")
            && word(i + 1).as_deref() == Some("OF")
    })?;
    let name = i + 2;
    let Some((Token::Word(cursor), ..)) = words.get(name) else {
        return None;
    };
    if name + 1 != end && word(name + 1).as_deref() != Some("RETURNING") {
        return None;
    }
    let folded = analyze::fold(&sql::Ident {
        value: cursor.value.clone(),
        quote_style: cursor.quote_style,
        span: sqlparser::tokenizer::Span::empty(),
    });
    Some((folded, i, name))
}

/// `text` with a write's `WHERE CURRENT OF cursor` written as `WHERE
/// TRUE`: the row the cursor is on is written, which the statement names
/// by position, not by a value, so it reads no column the padded text
/// does not (sqlparser does not parse the clause). The session then checks
/// that the cursor is one the client declared with SQL
/// (`SessionObject::UseCursor`); a row filter refuses a write anyway.
fn current_of_padded(text: &str, words: &Words<'_>) -> Padded {
    let (_, first, last) = current_of(words)?;
    pad_matches(text, words, |i| {
        (i == first).then_some((first, last, "TRUE"))
    })
}

/// `text` with the `[NOT] DEFERRABLE` transaction mode of `BEGIN`, `START
/// TRANSACTION`, `SET TRANSACTION` or `SET SESSION CHARACTERISTICS` (and
/// the comma that separates it from another mode) blanked out, and the
/// blanked ranges; `None` when there is none. sqlparser does not parse the
/// mode, which only says whether a serializable read-only transaction
/// waits for a safe snapshot (reporting jobs, `pg_dump
/// --serializable-deferrable`): it changes no value read.
fn deferrable_padded(text: &str, words: &Words<'_>) -> Padded {
    use sqlparser::tokenizer::Token;
    let word = |i: usize| keyword_at(words, i);
    let transaction = matches!(
        (word(0).as_deref(), word(1).as_deref()),
        (Some("BEGIN" | "START"), _) | (Some("SET"), Some("TRANSACTION" | "SESSION"))
    );
    // One statement: a later one is not a transaction statement.
    let statement_end = words
        .iter()
        .position(|(t, ..)| matches!(t, Token::SemiColon))
        .unwrap_or(words.len());
    if !transaction || words[statement_end..].len() > 1 {
        return None;
    }
    pad_matches(text, words, |i| {
        if i >= statement_end || word(i).as_deref() != Some("DEFERRABLE") {
            return None;
        }
        let mut first = i;
        if first > 0 && word(first - 1).as_deref() == Some("NOT") {
            first -= 1;
        }
        let mut last = i;
        if first > 0 && matches!(words[first - 1].0, Token::Comma) {
            first -= 1;
        } else if matches!(words.get(last + 1), Some((Token::Comma, ..))) {
            last += 1;
        }
        Some((first, last, ""))
    })
}

/// `text` with every `OPERATOR(pg_catalog.op)` written as `op`, or `None`
/// when it has none (or one whose operator is not plain symbols).
fn plain_catalog_operators(text: &str, words: &Words<'_>) -> Option<String> {
    use sqlparser::tokenizer::Token;
    let is_word = |i: usize, value: &str| {
        matches!(words.get(i), Some((Token::Word(w), ..))
            if w.value.eq_ignore_ascii_case(value) && (w.quote_style.is_none() || w.value == value))
    };
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < words.len() {
        let opens = is_word(i, "operator")
            && matches!(words.get(i + 1), Some((Token::LParen, ..)))
            && is_word(i + 2, "pg_catalog")
            && matches!(words.get(i + 3), Some((Token::Period, ..)));
        if !opens {
            i += 1;
            continue;
        }
        let close = (i + 4..words.len()).find(|&j| matches!(words[j].0, Token::RParen))?;
        let (Some(start), Some(op_start), Some(op_end), Some(end)) =
            (words[i].1, words[i + 3].2, words[close].1, words[close].2)
        else {
            return None;
        };
        let op = text.get(op_start..op_end)?.trim();
        if op.is_empty() || !op.chars().all(|c| "+-*/<>=~!@#%^&|`?".contains(c)) {
            return None;
        }
        out.push_str(&text[copied..start]);
        out.push(' ');
        out.push_str(op);
        out.push(' ');
        copied = end;
        i = close + 1;
    }
    (copied > 0).then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

fn report_denied(plan: &Plan, text: String, d: &Denial) -> StatementReport {
    StatementReport::new(
        text,
        Findings {
            decision: "deny",
            policies: d.policies.clone(),
            reason: Some(d.message.clone()),
            rules: rule_names(plan, &d.policies),
            ..Findings::default()
        },
    )
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
    pub(super) edits: Vec<Edit>,
    pub(super) masked: Vec<String>,
    pub(super) policies: Vec<String>,
    pub(super) observed: Vec<String>,
    pub(super) columns: Vec<ColumnUse>,
    pub(super) row_limit: Option<(u64, String)>,
    pub(super) object: Option<SessionObject>,
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
    fn limit(&mut self, plan: &Plan, access: &PrincipalAccess, ri: RelId) {
        if let Some(l) = row_limit(plan, access, ri)
            && self.row_limit.as_ref().is_none_or(|(n, _)| l.0 < *n)
        {
            self.row_limit = Some(l);
        }
    }
}

fn decide_statement(cx: Cx<'_>, stmt: &sql::Statement, text: &str) -> Result<Outcome, Denial> {
    let Cx { plan, access, .. } = cx;
    // An identity that may read everything in clear has nothing withheld:
    // its statements pass unchanged once they parse (the session still
    // learns its cursors and prepared statements). It holds `ddl` and
    // `admin` too, so it is trusted with the schema entirely: columns the
    // live database gained since the lock (`Drift`) are its to read, as
    // they are its to add, and its migrations are not refused meanwhile.
    if access.full_clear {
        return Ok(match session_object(stmt) {
            Some(o) => Outcome::pass().with_object(o),
            None => Outcome::pass(),
        });
    }
    match stmt {
        sql::Statement::Query(_) => {
            let m = model::build(stmt, text, &plan.schema);
            if m.inventory.select_into {
                return creates_table_from(cx, m, stmt, text, "SELECT … INTO");
            }
            if m.inventory.statements > 1 {
                // A data-modifying CTE: the writing rules apply as well.
                writes(cx, &m, None, Some(stmt))?;
            }
            let out = reads(cx, &m, stmt, text)?;
            row_locks(cx, stmt)?;
            Ok(out)
        }
        sql::Statement::Insert(_)
        | sql::Statement::Update(_)
        | sql::Statement::Delete(_)
        | sql::Statement::Merge(_) => {
            let target = write_target(stmt);
            let m = model::build(stmt, text, &plan.schema);
            let mut out = writes(cx, &m, target.as_deref(), Some(stmt))?;
            out.edits = returning_written_out(plan, target.as_deref(), stmt, &m, text);
            Ok(out)
        }
        sql::Statement::Copy { .. } => copy(cx, stmt, text),
        sql::Statement::Truncate(t) => truncate(cx, t),
        sql::Statement::Set(set) => session_setting(set, text),
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
        // Listening carries no stored values in.
        | sql::Statement::LISTEN { .. }
        | sql::Statement::UNLISTEN { .. } => Ok(match session_object(stmt) {
            Some(o) => Outcome::pass().with_object(o),
            None => Outcome::pass(),
        }),
        // NOTIFY's payload is a literal, so it reads nothing; it is
        // `pg_notify` as a statement (it signals other sessions), and that
        // function's rule or class decides it.
        sql::Statement::NOTIFY { .. } => match check_function(access, "pg_notify", Some("pg_catalog")) {
            Ok(()) => Ok(Outcome::pass()),
            Err(_) => Err(denials::notify(
                function_rule(access, "pg_notify", Some("pg_catalog.pg_notify")) == Some(false),
            )),
        },
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
        sql::Statement::Declare { stmts, .. } => declare(cx, stmts, text),
        sql::Statement::Prepare {
            name, statement, ..
        } => prepare(cx, name, statement, text),
        sql::Statement::Execute {
            name: Some(name),
            immediate: false,
            into,
            using,
            ..
        } if into.is_empty() && using.is_empty() => {
            arguments_read_nothing(access, stmt, text, "EXECUTE parameters cannot read relations")?;
            let name = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(analyze::fold)
                .unwrap_or_default();
            Ok(Outcome::pass().with_object(SessionObject::Execute(name)))
        }
        // CALL p(args): a procedure runs code clsf cannot see into, as a
        // function that is not built in does, so the function rules decide
        // it (a rule's `allow function p` permits it); its arguments must
        // read no relation, as EXECUTE's.
        sql::Statement::Call(procedure) => {
            // The analysis lists the calls inside the arguments, not the
            // CALL's own procedure.
            let parts = analyze::folded_parts(&procedure.name);
            let (schema, name) = match parts.as_slice() {
                [name] => (None, name.as_str()),
                [.., schema, name] => (Some(schema.as_str()), name.as_str()),
                [] => return Err(not_analysed(stmt, "CALL names no procedure")),
            };
            check_function(access, name, schema)?;
            arguments_read_nothing(access, stmt, text, "CALL arguments cannot read relations")?;
            Ok(Outcome::pass())
        }
        sql::Statement::Explain { statement, .. } => {
            // EXPLAIN [ANALYZE] shows the plan of the statement as the
            // proxy forwards it (rewritten), so it is decided like that
            // statement; its rows are plan lines, never data rows. So what
            // the statement only projects is decided as for a statement
            // with no rows (`empty`): an ORM's `EXPLAIN SELECT t.* …` over
            // a table with a denied column plans (or, with ANALYZE, runs)
            // the masking subquery's NULL in its place. Any other use of a
            // withheld column stays refused: a plan's row estimates and
            // counts tell about the values it filters or joins on.
            let cx = Cx { explained: true, ..cx };
            let mut inner = decide_statement(cx, statement, text)?;
            inner.row_limit = None;
            Ok(inner)
        }
        sql::Statement::Lock(lock) => {
            // A lock reads nothing; every table must be one the identity
            // may read some column of.
            for t in &lock.tables {
                match resolve_real(plan, &analyze::folded_parts(&t.name)) {
                    Resolved::Relation(ri) => {
                        table_lock(cx, lock, ri)?;
                        let columns = &access.columns[ri];
                        if columns.iter().all(|c| matches!(c, Access::Denied { .. } | Access::Approval { .. })) {
                            // Locking needs approval when reading does.
                            match columns.iter().find_map(|c| match c {
                                Access::Approval { clauses, .. } => Some(clauses),
                                _ => None,
                            }) {
                                Some(clauses) => cx.needs.add(clauses),
                                None => return Err(column_denial(plan, access, ri, ColId(0), " (LOCK TABLE)")),
                            }
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
            let m = model::build(stmt, text, &plan.schema);
            creates_table_from(cx, m, stmt, text, "CREATE TABLE … AS")
        }
        other if is_ddl(other) => {
            let out = action_permitted(cx, &access.ddl, "ddl", other)?;
            crate::ddl::check(plan, access, other, text, |what| {
                let m = model::build(other, text, &plan.schema);
                creates_table_from(cx, m, other, text, what).map(drop)
            })?;
            Ok(out)
        }
        other if is_admin(other) => action_permitted(cx, &access.admin, "admin", other),
        other => Err(denials::kind_not_analysed(statement_kind(other))),
    }
}

/// The values a statement passes (`EXECUTE`'s parameters, `CALL`'s
/// arguments) call only functions the identity may call and read no
/// relation; `why` refuses the latter.
fn arguments_read_nothing(
    access: &PrincipalAccess,
    stmt: &sql::Statement,
    text: &str,
    why: &str,
) -> Result<(), Denial> {
    let a = analyze::analyze(stmt, text);
    check_functions(access, &a)?;
    if !a.tables.is_empty() {
        return Err(not_analysed(stmt, why));
    }
    Ok(())
}

fn not_analysed(stmt: &sql::Statement, why: &str) -> Denial {
    denials::form_not_analysed(statement_kind(stmt), why)
}

#[cfg(test)]
mod padded_tests {
    use super::*;

    fn padded(text: &str) -> Option<String> {
        let tokens = sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, text)
            .tokenize_with_location()
            .unwrap();
        padded_forms(text, &words_of(&tokens, text), true, true).map(|(t, _)| t)
    }

    #[test]
    fn a_frame_exclusion_is_blanked_at_a_frames_end_only() {
        assert_eq!(
            padded("SELECT sum(a) OVER (ROWS 1 PRECEDING EXCLUDE TIES) FROM t").as_deref(),
            Some("SELECT sum(a) OVER (ROWS 1 PRECEDING             ) FROM t")
        );
        // A column `exclude` with the alias `ties`, and the same words
        // elsewhere: not a frame's end.
        for text in [
            "SELECT exclude ties FROM t",
            "SELECT a preceding, exclude ties FROM t",
            "SELECT a FROM t WINDOW w AS (ROWS CURRENT ROW EXCLUDE CURRENT ROW, b)",
        ] {
            assert_eq!(padded(text), None, "{text}");
        }
    }

    #[test]
    fn a_group_by_quantifier_is_blanked_before_a_grouping_only() {
        assert_eq!(
            padded("SELECT a FROM t GROUP BY DISTINCT a, ROLLUP (b) HAVING (SELECT 1 GROUP BY ALL c) > 0").as_deref(),
            Some("SELECT a FROM t GROUP BY          a, ROLLUP (b) HAVING (SELECT 1 GROUP BY     c) > 0")
        );
        for text in [
            "SELECT a FROM t GROUP BY ALL",
            "SELECT (SELECT a FROM t GROUP BY ALL)",
            "SELECT a FROM t GROUP BY \"distinct\"",
            "SELECT DISTINCT a FROM t GROUP BY a",
        ] {
            assert_eq!(padded(text), None, "{text}");
        }
    }

    #[test]
    fn search_and_cycle_are_blanked_after_a_recursive_cte_only() {
        let text = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) \
                    SEARCH DEPTH FIRST BY n SET ord CYCLE n, \"N\" SET is_cycle TO 'Y' DEFAULT 'N' USING path, \
                    u AS (SELECT 1) SELECT * FROM t";
        let blanked = padded(text).expect("padded");
        assert_eq!(blanked.len(), text.len());
        assert_eq!(
            blanked.split_whitespace().collect::<Vec<_>>().join(" "),
            "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) , u AS (SELECT 1) SELECT * FROM t"
        );
        let tokens = sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, text)
            .tokenize_with_location()
            .unwrap();
        let added: Vec<Vec<String>> = search_cycle_clauses(&words_of(&tokens, text))
            .into_iter()
            .map(|(.., added)| added)
            .collect();
        assert_eq!(
            added,
            [
                vec!["ord".to_owned()],
                vec!["is_cycle".to_owned(), "path".to_owned()]
            ]
        );
        for text in [
            "WITH t(n) AS (SELECT 1) CYCLE n SET c USING p SELECT * FROM t",
            "WITH RECURSIVE t AS (SELECT 1) SELECT (a) cycle FROM t",
            "WITH RECURSIVE t AS (SELECT 1) SELECT (a) search FROM t",
            "WITH RECURSIVE t(n) AS (SELECT 1) CYCLE n SET c TO 'Y' USING p SELECT * FROM t",
        ] {
            assert_eq!(padded(text), None, "{text}");
        }
    }

    #[test]
    fn variadic_is_blanked_before_an_argument_only() {
        assert_eq!(
            padded("SELECT f(a, VARIADIC b), g(VARIADIC c)").as_deref(),
            Some("SELECT f(a,          b), g(         c)")
        );
        assert_eq!(padded("SELECT \"variadic\"(x) FROM t"), None);
    }
}
