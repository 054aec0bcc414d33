//! The MCP tools and the policy resource. What an agent may see is derived
//! from the compiled plan and the agent's access table (the same ones the
//! engine decides with), never guessed; statements go through a session of
//! the proxy (`local`).

use std::sync::Arc;

use clsf_engine::{ColumnAccess, Identity, PrincipalAccess, RelationView, Verdict};
use serde_json::{Value, json};
use sqlparser::ast as sql;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::{Call, RpcResult, local};
use crate::session::Loaded;

/// The URI of the agent's effective policy, as text.
pub(super) const POLICY_URI: &str = "clsf://policy";

/// Statements agents asked approval for, by request id: run in the
/// background, held by the proxy like any session's, their outcome kept
/// for the agent until it asks for it (`approval_status`, or the same
/// statement again through `query` or `execute`).
#[derive(Default)]
pub(super) struct Requests(std::sync::Mutex<std::collections::HashMap<String, Requested>>);

struct Requested {
    /// When it was asked for: results not asked for within a day go.
    asked: std::time::Instant,
    subject: String,
    statement: String,
    /// The answer once the statement was decided and ran (or failed).
    outcome: Option<Result<Value, NotRun>>,
}

/// A held statement that, once approved, failed: told to the agent that
/// asks for its result.
#[derive(Debug, thiserror::Error)]
#[error("not run ({sqlstate}): {message}")]
struct NotRun {
    sqlstate: String,
    message: String,
}

impl Requests {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Requested>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the finished outcome of `subject`'s request for `statement`.
    fn take_finished(&self, subject: &str, statement: &str) -> Option<Result<Value, NotRun>> {
        let mut map = self.lock();
        let id = map
            .iter()
            .find(|(_, r)| r.subject == subject && r.statement == statement && r.outcome.is_some())
            .map(|(id, _)| id.clone())?;
        map.remove(&id).and_then(|r| r.outcome)
    }
}

/// Rows a `query` returns when the call does not say.
const DEFAULT_ROWS: u64 = 100;

struct Who {
    loaded: Arc<Loaded>,
    identity: Identity,
    access: Arc<PrincipalAccess>,
}

fn who(call: &Call<'_>) -> Who {
    let loaded = call.mcp.shared.current();
    let identity = call.proven.identity(loaded.engine.plan());
    let access = loaded.engine.access_for(&identity);
    Who {
        loaded,
        identity,
        access,
    }
}

/// The tools, with their input schemas: those for approvals and writes
/// only for an identity a rule lets ask for approvals or write.
pub(super) fn list(call: &Call<'_>) -> Value {
    let sql_arg = json!({ "type": "string", "description": "one SQL statement (PostgreSQL)" });
    let sql_only = json!({ "sql": sql_arg });
    let mut tools = vec![
        tool(
            "list_tables",
            "The tables and views you may read at least one column of, with the row filter or row limit that applies to you.",
            json!({}),
            &[],
        ),
        tool(
            "describe_table",
            "A table's columns with their type and what you get when you read each: clear, masked (with which mask), denied, needs approval (by whom) or usage only; and the row filter and row limit in force for you.",
            json!({ "table": { "type": "string", "description": "schema.table, or a table of schema public" } }),
            &["table"],
        ),
        tool(
            "query",
            "Runs one read statement (SELECT, VALUES, TABLE, WITH … SELECT) in a read-only transaction and returns its rows as text values; masked columns come back masked, filtered rows never come back. At most max_rows rows (default 100); `truncated` says when there were more.",
            json!({
                "sql": sql_arg,
                "max_rows": { "type": "integer", "minimum": 1, "description": "the most rows to return" },
            }),
            &["sql"],
        ),
        tool(
            "explain",
            "What the proxy would do with a statement, without running it: allowed, which columns it would mask, refused and why, or held for whose approval.",
            sql_only.clone(),
            &["sql"],
        ),
    ];
    let access = who(call).access;
    if access.has_approvals {
        tools.push(tool(
            "request_approval",
            "Asks for approval of a statement a rule holds (query or explain says so): returns the request id and who must approve. The statement runs once approved; approval_status, or the same statement through query (or execute), then returns its result.",
            sql_only.clone(),
            &["sql"],
        ));
        tools.push(tool(
            "approval_status",
            "The state of one of your approval requests (pending, approved, denied, expired, withdrawn) and, once it ran, the statement's result.",
            json!({ "request_id": { "type": "string" } }),
            &["request_id"],
        ));
    }
    if access.may_write() {
        tools.push(tool(
            "execute",
            "Runs one write statement (INSERT, UPDATE, DELETE or MERGE) on a table a rule lets you write, committed when it succeeds; returns the rows affected and what RETURNING returned. No transaction control, one statement per call.",
            sql_only,
            &["sql"],
        ));
    }
    Value::Array(tools)
}

/// One tool's entry: its input is an object with these properties, of
/// which `required` must be given.
fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    json!({ "name": name, "description": description, "inputSchema": schema })
}

/// The `resources/list` entry of the policy summary.
pub(super) fn policy_resource() -> Value {
    json!({
        "uri": POLICY_URI,
        "name": "policy",
        "title": "What you may read",
        "description": "Your effective policy: every table you may read, what you get from each column, the row filters and limits that apply to you.",
        "mimeType": "text/markdown",
    })
}

/// A successful tool result: the data as structured content and as text.
fn ok(data: Value) -> RpcResult {
    Ok(json!({
        "content": [{ "type": "text", "text": data.to_string() }],
        "structuredContent": data,
        "isError": false,
    }))
}

/// A tool error an agent can act on (a tool result, not a protocol error).
fn refused(text: String) -> RpcResult {
    Ok(json!({
        "content": [{ "type": "text", "text": text }],
        "isError": true,
    }))
}

pub(super) async fn call(call: &Call<'_>, name: &str, args: &Value) -> RpcResult {
    match name {
        "list_tables" => ok(list_tables(&who(call))),
        "describe_table" => {
            let Some(table) = args.get("table").and_then(Value::as_str) else {
                return Err((-32602, "describe_table needs `table`".to_owned()));
            };
            match describe(&who(call), table) {
                Some(d) => ok(d),
                None => refused(format!(
                    "no table `{table}` you may read: call list_tables for the ones you may"
                )),
            }
        }
        "explain" => {
            let sql = sql_arg(args)?;
            ok(explain(call, &who(call), sql))
        }
        "query" => {
            let sql = sql_arg(args)?;
            let asked = match args.get("max_rows") {
                None | Some(Value::Null) => DEFAULT_ROWS,
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .ok_or((-32602, "max_rows must be a positive integer".to_owned()))?,
            };
            query(call, sql, asked.min(call.mcp.max_rows)).await
        }
        "request_approval" => {
            let sql = sql_arg(args)?;
            request_approval(call, sql).await
        }
        "approval_status" => {
            let Some(id) = args.get("request_id").and_then(Value::as_str) else {
                return Err((-32602, "approval_status needs `request_id`".to_owned()));
            };
            approval_status(call, id).await
        }
        "execute" if who(call).access.may_write() => {
            let sql = sql_arg(args)?;
            execute(call, sql).await
        }
        other => Err((-32602, format!("no tool `{other}`"))),
    }
}

fn sql_arg(args: &Value) -> Result<&str, (i64, String)> {
    args.get("sql")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or((-32602, "`sql` (one SQL statement) is needed".to_owned()))
}

fn limit(view: &RelationView) -> Value {
    match &view.row_limit {
        Some((rows, rule)) => json!({ "rows": rows, "rule": rule }),
        None => Value::Null,
    }
}

fn list_tables(who: &Who) -> Value {
    let tables: Vec<Value> = who
        .loaded
        .engine
        .readable_relations(&who.access)
        .iter()
        .map(|view| {
            json!({
                "table": view.name,
                "kind": view.kind,
                "row_filter": view.row_filters,
                "row_limit": limit(view),
            })
        })
        .collect();
    json!({ "identity": who.identity.subject, "groups": who.identity.groups, "tables": tables })
}

fn describe(who: &Who, table: &str) -> Option<Value> {
    let view = who.loaded.engine.readable_relation(&who.access, table)?;
    let columns: Vec<Value> = view
        .columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.type_name,
                "label": c.label,
                "access": c.access.to_string(),
            })
        })
        .collect();
    Some(json!({
        "table": view.name,
        "columns": columns,
        "row_filter": view.row_filters,
        "row_limit": limit(&view),
    }))
}

/// For a refusal: what the agent may do with the columns of the tables the
/// statement names, in words ("`email` is masked for you; `ssn` is denied").
fn what_you_may(who: &Who, statement: Option<&sql::Statement>, text: &str) -> String {
    let Some(stmt) = statement else {
        return String::new();
    };
    let mut said = Vec::new();
    for view in who.loaded.engine.relations_named(&who.access, stmt, text) {
        for c in &view.columns {
            if c.access != ColumnAccess::Clear {
                said.push(format!(
                    "`{}.{}` is {} for you",
                    view.table, c.name, c.access
                ));
            }
        }
    }
    if said.is_empty() {
        String::new()
    } else {
        format!(" {}.", said.join("; "))
    }
}

/// Why a tool call's text is not one statement.
#[derive(Debug, thiserror::Error)]
enum NotOneStatement {
    /// It does not parse.
    #[error("the statement does not parse: {0}")]
    Parse(#[from] sqlparser::parser::ParserError),
    /// It is empty (or only comments).
    #[error("there is no statement")]
    Empty,
    /// Several statements.
    #[error(
        "{0} statements: send one statement per call (no `;` between statements, no transaction control)"
    )]
    Several(usize),
}

fn parse_one(text: &str) -> Result<sql::Statement, NotOneStatement> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, text)?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        0 => Err(NotOneStatement::Empty),
        n => Err(NotOneStatement::Several(n)),
    }
}

fn explain(call: &Call<'_>, who: &Who, text: &str) -> Value {
    let decision = who
        .loaded
        .engine
        .decide_with_claims(&who.access, call.proven.claims(), text);
    let statements: Vec<Value> = decision
        .statements
        .iter()
        .map(|s| {
            json!({
                "statement": s.text,
                "decision": s.decision,
                "masked": s.masked,
                "reason": s.reason,
                "rules": s.rules,
                "columns": s.columns.iter().map(|c| json!({
                    "column": c.column, "label": c.label, "access": c.access,
                })).collect::<Vec<_>>(),
                "row_limit": s.row_limit.as_ref().map(|(rows, rule)| json!({ "rows": rows, "rule": rule })),
            })
        })
        .collect();
    let (verdict, detail) = match &decision.verdict {
        Verdict::Forward => ("run as written", Value::Null),
        Verdict::Rewrite(_) => ("run with masks and filters applied", Value::Null),
        Verdict::Deny(d) => (
            "refused",
            json!({ "sqlstate": d.sqlstate, "message": d.message, "hint": d.hint }),
        ),
        Verdict::Hold(h) => (
            "held until approved",
            json!({
                "approvers": h.needs.iter().map(|n| json!({
                    "group": n.approvers, "quorum": n.quorum, "rule": n.rule,
                })).collect::<Vec<_>>(),
                "releases": h.scope_text(),
            }),
        ),
    };
    json!({ "verdict": verdict, "detail": detail, "statements": statements })
}

/// What `execute` runs: one data-changing statement.
fn is_write(stmt: &sql::Statement) -> bool {
    matches!(
        stmt,
        sql::Statement::Insert(_)
            | sql::Statement::Update { .. }
            | sql::Statement::Delete(_)
            | sql::Statement::Merge { .. }
    )
}

async fn query(call: &Call<'_>, text: &str, cap: u64) -> RpcResult {
    let who = who(call);
    let stmt = match parse_one(text) {
        Ok(s) => s,
        Err(e) => return refused(format!("not run: {e}")),
    };
    if !clsf_engine::only_reads(&stmt, text) {
        return refused(
            "not run: `query` runs one read statement (SELECT, VALUES, TABLE or WITH … SELECT without data-modifying parts)"
                .to_owned(),
        );
    }
    let decision = match decided(call, &who, &stmt, text) {
        Ok(d) => d,
        Err(refusal) => return refusal,
    };
    let via = json!({ "mcp": { "tool": "query", "call": call.id } });
    let trimmed = text.trim().trim_end_matches(';');
    let limited = decision.statements.iter().any(|s| s.row_limit.is_some());
    match local::read(
        &call.mcp.shared,
        &call.proven,
        call.peer,
        via,
        trimmed,
        cap,
        limited,
    )
    .await
    {
        Ok(rows) => ok(json!({
            "columns": rows.columns,
            "rows": rows.rows,
            "row_count": rows.rows.len(),
            "truncated": rows.truncated,
            "notices": rows.notices,
        })),
        Err(f) => failed(&who, &stmt, text, f),
    }
}

/// A statement the database or the proxy's session refused, in the
/// agent's terms.
fn failed(who: &Who, stmt: &sql::Statement, text: &str, f: local::Failure) -> RpcResult {
    refused(format!(
        "refused ({}): {}.{}{}",
        f.sqlstate,
        f.message,
        f.hint.map(|h| format!(" Hint: {h}.")).unwrap_or_default(),
        what_you_may(who, Some(stmt), text)
    ))
}

async fn execute(call: &Call<'_>, text: &str) -> RpcResult {
    let who = who(call);
    let stmt = match parse_one(text) {
        Ok(s) => s,
        Err(e) => return refused(format!("not run: {e}")),
    };
    if !is_write(&stmt) {
        return refused(
            "not run: `execute` runs one INSERT, UPDATE, DELETE or MERGE; use `query` to read"
                .to_owned(),
        );
    }
    if let Err(refusal) = decided(call, &who, &stmt, text) {
        return refusal;
    }
    let via = json!({ "mcp": { "tool": "execute", "call": call.id } });
    match local::write(&call.mcp.shared, &call.proven, call.peer, via, text).await {
        Ok(w) => ok(json!({
            "affected": w.affected,
            "columns": w.columns,
            "returning": w.rows,
        })),
        Err(f) => failed(&who, &stmt, text, f),
    }
}

/// The engine's decision for the agent; a refusal or a hold comes back
/// as the tool's answer, so that it is explained in the agent's terms and
/// no session is held open waiting for an approver.
fn decided(
    call: &Call<'_>,
    who: &Who,
    stmt: &sql::Statement,
    text: &str,
) -> Result<clsf_engine::Decision, RpcResult> {
    let decision = who
        .loaded
        .engine
        .decide_with_claims(&who.access, call.proven.claims(), text);
    match &decision.verdict {
        Verdict::Deny(d) => Err(refused(format!(
            "refused ({}): {}.{}{} Call describe_table to see what you may read.",
            d.sqlstate,
            d.message,
            d.hint
                .as_ref()
                .map(|h| format!(" Hint: {h}."))
                .unwrap_or_default(),
            what_you_may(who, Some(stmt), text)
        ))),
        Verdict::Hold(h) => {
            // Asked for and approved before: its result, once.
            if let Some(outcome) = call.mcp.requests.take_finished(&who.identity.subject, text) {
                return Err(match outcome {
                    Ok(data) => ok(data),
                    Err(not_run) => refused(not_run.to_string()),
                });
            }
            let by: Vec<String> = h
                .needs
                .iter()
                .map(|n| format!("a member of `{}` (rule `{}`)", n.approvers, n.rule))
                .collect();
            Err(refused(format!(
                "held: this statement needs approval by {}; it was not run. Call request_approval with the same sql to ask for it; once approved, approval_status (or this call again) gives its result.{}",
                by.join(" and "),
                what_you_may(who, Some(stmt), text)
            )))
        }
        Verdict::Forward | Verdict::Rewrite(_) => Ok(decision),
    }
}

/// The agent's effective policy as text for its context.
pub(super) fn policy_summary(call: &Call<'_>) -> String {
    let who = who(call);
    let mut out = format!(
        "# What `{}` may read (groups: {})\n\n",
        who.identity.subject,
        if who.identity.groups.is_empty() {
            "none".to_owned()
        } else {
            who.identity.groups.join(", ")
        }
    );
    for view in who.loaded.engine.readable_relations(&who.access) {
        out.push_str(&format!("## {}\n\n", view.name));
        for c in &view.columns {
            out.push_str(&format!("- `{}` ({}): {}\n", c.name, c.type_name, c.access));
        }
        for f in &view.row_filters {
            out.push_str(&format!("- rows: only those where `{f}`\n"));
        }
        if let Some((rows, rule)) = &view.row_limit {
            out.push_str(&format!(
                "- at most {rows} rows per statement (rule `{rule}`)\n"
            ));
        }
        out.push('\n');
    }
    out
}

async fn request_approval(call: &Call<'_>, text: &str) -> RpcResult {
    let who = who(call);
    let stmt = match parse_one(text) {
        Ok(s) => s,
        Err(e) => return refused(format!("not asked: {e}")),
    };
    let read = clsf_engine::only_reads(&stmt, text);
    let write = who.access.may_write() && is_write(&stmt);
    if !read && !write {
        return refused(
            "not asked: approval is for one statement `query` or `execute` would run".to_owned(),
        );
    }
    let decision = who
        .loaded
        .engine
        .decide_with_claims(&who.access, call.proven.claims(), text);
    match &decision.verdict {
        Verdict::Hold(_) => {}
        Verdict::Deny(d) => {
            return refused(format!(
                "refused ({}): {}; no approval can release it.",
                d.sqlstate, d.message
            ));
        }
        Verdict::Forward | Verdict::Rewrite(_) => {
            return refused(format!(
                "this statement needs no approval: run it with `{}`",
                if read { "query" } else { "execute" }
            ));
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let requests = Arc::clone(&call.mcp.requests);
    let subject = who.identity.subject.clone();
    let statement = text.to_owned();
    let on_held: local::OnHeld = {
        let requests = Arc::clone(&requests);
        Box::new(move |id: String| {
            let mut map = requests.lock();
            map.retain(|_, r| r.asked.elapsed() < std::time::Duration::from_secs(86_400));
            map.insert(
                id.clone(),
                Requested {
                    asked: std::time::Instant::now(),
                    subject,
                    statement,
                    outcome: None,
                },
            );
            let _ = tx.send(id);
        })
    };
    let via = json!({ "mcp": { "tool": "request_approval", "call": call.id } });
    let (shared, proven, peer, cap) = (
        Arc::clone(&call.mcp.shared),
        call.proven.clone(),
        call.peer,
        call.mcp.max_rows,
    );
    let sql = text.trim().trim_end_matches(';').to_owned();
    let (id_tx, id_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let result = local::held(
            &shared,
            &proven,
            peer,
            via,
            &sql,
            read.then_some(cap),
            on_held,
        )
        .await;
        // The id arrived before the statement could end.
        let Ok(id) = id_rx.await else { return };
        let outcome = match result {
            Ok(w) if read => Ok(json!({
                "columns": w.columns,
                "row_count": w.rows.len(),
                "rows": w.rows,
            })),
            Ok(w) => {
                Ok(json!({ "affected": w.affected, "columns": w.columns, "returning": w.rows }))
            }
            Err(f) => Err(NotRun {
                sqlstate: f.sqlstate.to_string(),
                message: f.message,
            }),
        };
        if let Some(r) = requests.lock().get_mut(&id) {
            r.outcome = Some(outcome);
        }
    });
    let id = match tokio::time::timeout(std::time::Duration::from_secs(10), rx).await {
        Ok(Ok(id)) => id,
        _ => {
            return refused(
                "the proxy did not hold the statement for approval (is its admin listener configured?)"
                    .to_owned(),
            );
        }
    };
    let _ = id_tx.send(id.clone());
    let Verdict::Hold(h) = &decision.verdict else {
        return refused("the decision changed".to_owned());
    };
    ok(json!({
        "request_id": id,
        "state": "pending",
        "approvers": h.needs.iter().map(|n| json!({
            "group": n.approvers, "quorum": n.quorum, "rule": n.rule,
        })).collect::<Vec<_>>(),
        "releases": h.scope_text(),
        "expires_in_seconds": h.ttl_seconds,
        "next": "call approval_status with this request_id; once approved it returns the result",
    }))
}

async fn approval_status(call: &Call<'_>, id: &str) -> RpcResult {
    let who = who(call);
    let mine = call
        .mcp
        .requests
        .lock()
        .get(id)
        .is_some_and(|r| r.subject == who.identity.subject);
    if !mine {
        return refused(format!("no request `{id}` of yours"));
    }
    let state = match call.mcp.shared.approvals.store().get(id).await {
        Ok(Some(r)) => r.state,
        Ok(None) => return refused(format!("no request `{id}` of yours")),
        Err(e) => return refused(format!("the approval store cannot be read: {e}")),
    };
    let outcome = {
        let mut map = call.mcp.requests.lock();
        let done = map.get(id).is_some_and(|r| r.outcome.is_some());
        if done {
            map.remove(id).and_then(|r| r.outcome)
        } else {
            None
        }
    };
    let mut out = json!({ "request_id": id, "state": state.name() });
    match outcome {
        Some(Ok(result)) => out["result"] = result,
        Some(Err(e)) => out["error"] = json!(e.to_string()),
        None => {}
    }
    ok(out)
}
