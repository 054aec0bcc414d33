//! `clsfc explain`: a diagnostic code's explanation, or what the statement
//! engine — the one the proxy runs — does with a statement for an identity.

use std::path::Path;

use serde_json::{Value, json};

use clsf_compiler::engine::identity::identity_for;
use clsf_compiler::engine::{Decision, Verdict, scope};
use clsf_compiler::{Engine, Plan, codes, load};

use super::Exit;

/// Prints the explanation of a diagnostic code.
pub fn code(code: &str) -> Result<Exit, String> {
    let Some(c) = codes::find(code) else {
        return Err(format!(
            "no diagnostic code `{code}`; codes run from {} to {}",
            codes::CODES[0].code,
            codes::CODES[codes::CODES.len() - 1].code
        ));
    };
    println!(
        "{} ({}): {}\n\n{}",
        c.code, c.severity, c.summary, c.explanation
    );
    Ok(Exit::Ok)
}

/// Prints a function's class: `name` is `schema.name` or an unqualified
/// name (resolved in `pg_catalog`, as the engine resolves calls). Exit 1
/// for a function that is not built in (what it reads is unknown).
pub fn function(name: &str, json_out: bool) -> Result<Exit, String> {
    use clsf_compiler::engine::functions;
    let folded = name.trim().to_lowercase();
    let (schema, bare) = match folded.rsplit_once('.') {
        Some((s, n)) => (Some(s), n),
        None => (None, folded.as_str()),
    };
    let found = functions::builtin(bare, schema);
    if json_out {
        let report = match found {
            Some(b) => json!({
                "function": format!("{}.{}", b.schema, b.name),
                "class": b.class.as_str(),
                "why": b.why,
                "callable_when_masked": b.class.callable_by_default(),
            }),
            None => json!({ "function": folded, "class": null, "callable_when_masked": false }),
        };
        println!("{report}");
    } else {
        match found {
            Some(b) => println!(
                "{}.{}: {} ({})
{}",
                b.schema,
                b.name,
                b.class,
                b.why,
                if b.class.callable_by_default() {
                    "identities with masked or denied columns may call it"
                } else {
                    "identities with masked or denied columns may call it only where a rule says `allow function`"
                }
            ),
            None => println!(
                "{folded}: not a built-in function of pg_catalog or information_schema; identities with masked or denied columns may call it only where a rule says `allow function`"
            ),
        }
    }
    Ok(if found.is_some() {
        Exit::Ok
    } else {
        Exit::PolicyErrors
    })
}

/// Decides `sql` for the identity whose verified claims are in
/// `identity_file`, as the proxy would, and prints the decision.
pub fn statement(
    policy: &Path,
    schema: &Path,
    identity_file: &Path,
    sql: &str,
    json_out: bool,
) -> Result<Exit, String> {
    let compiled = load::compile_dir(policy, schema).map_err(|e| e.to_string())?;
    let Some(plan) = compiled.plan else {
        eprint!(
            "{}",
            clsf_lang::render(&compiled.diagnostics, &compiled.sources, false)
        );
        return Ok(Exit::PolicyErrors);
    };
    let text = std::fs::read_to_string(identity_file)
        .map_err(|e| format!("{}: {e}", identity_file.display()))?;
    let claims: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not JSON claims: {e}", identity_file.display()))?;
    if !claims.is_object() {
        return Err(format!(
            "{}: the claims must be a JSON object",
            identity_file.display()
        ));
    }
    let engine = Engine::new(plan).map_err(|e| e.to_string())?;
    let identity = identity_for(engine.plan(), &claims);
    let access = engine.access_for(&identity);
    let decision = engine.decide_with_claims(&access, Some(&claims), sql);
    let mut report = to_json(engine.plan(), &identity, access.full_clear, &decision);
    add_usages(engine.plan(), sql, &mut report);
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", human(&report));
    }
    Ok(Exit::Ok)
}

/// The columns each statement touches and how (projected, filtered,
/// joined, …), resolved the way PostgreSQL resolves names (`pg_catalog`,
/// then `public`). A statement the resolver does not follow gets `usages:
/// null` and the reason.
fn add_usages(plan: &Plan, sql: &str, report: &mut Value) {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;
    let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return;
    };
    let Some(reports) = report["statements"].as_array_mut() else {
        return;
    };
    for (stmt, r) in statements.iter().zip(reports.iter_mut()) {
        match scope::statement_usages(stmt, &plan.schema, &["pg_catalog", "public"]) {
            Ok(usages) => {
                r["usages"] = usages
                    .iter()
                    .map(|(&(ri, ci), u)| {
                        let rel = plan.schema.relation(ri);
                        json!({
                            "column": format!("{}.{}", rel.qualified(), rel.columns[ci].name),
                            "usages": u.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
            }
            Err(e) => {
                r["usages"] = Value::Null;
                r["usages_unresolved"] = json!(e.to_string());
            }
        }
    }
}

fn policy_json(plan: &Plan, id: &str) -> Value {
    match plan.clause_by_policy(id.trim_end_matches(".forbid")) {
        Some((rule, clause)) => json!({
            "id": id,
            "rule": rule.name,
            "clause": clause.text,
            "source": clause.location,
        }),
        None => json!({ "id": id }),
    }
}

/// The decision as JSON (the `--format json` output).
fn to_json(
    plan: &Plan,
    identity: &clsf_compiler::engine::Identity,
    full_clear: bool,
    decision: &Decision,
) -> Value {
    let mut approval = Value::Null;
    let (verdict, rewritten, denial) = match &decision.verdict {
        Verdict::Forward => ("forward", None, None),
        Verdict::Rewrite(s) => ("rewrite", Some(s.clone()), None),
        Verdict::Hold(h) => {
            approval = json!({
                "approvers": h.approvers_text(),
                "scope": h.scope_text(),
                "ttl_seconds": h.ttl_seconds,
                "needs": h.needs.iter().map(|n| json!({
                    "rule": n.rule, "clause": n.clause, "approvers": n.approvers, "quorum": n.quorum,
                })).collect::<Vec<_>>(),
            });
            let rewritten = match &h.then {
                Verdict::Rewrite(s) => Some(s.clone()),
                _ => None,
            };
            ("hold", rewritten, None)
        }
        Verdict::Deny(d) => (
            "deny",
            None,
            Some(json!({
                "sqlstate": d.sqlstate,
                "message": d.message,
                "hint": d.hint,
                "policies": d.policies.iter().map(|p| policy_json(plan, p)).collect::<Vec<_>>(),
            })),
        ),
    };
    json!({
        "identity": { "subject": identity.subject, "groups": identity.groups, "reads_everything": full_clear },
        "verdict": verdict,
        "rewritten": rewritten,
        "denial": denial,
        "approval": approval,
        "statements": decision.statements.iter().map(|s| json!({
            "text": s.text,
            "decision": s.decision,
            "columns": s.columns.iter().map(|c| json!({
                "column": c.column, "label": c.label, "access": c.access,
            })).collect::<Vec<_>>(),
            "masked": s.masked,
            "observed": s.observed,
            "policies": s.policies.iter().map(|p| policy_json(plan, p)).collect::<Vec<_>>(),
            "reason": s.reason,
        })).collect::<Vec<_>>(),
    })
}

fn human(r: &Value) -> String {
    let mut out = String::new();
    let groups: Vec<&str> = r["identity"]["groups"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str(&format!(
        "identity: {} (groups: {})\n",
        r["identity"]["subject"].as_str().unwrap_or(""),
        if groups.is_empty() {
            "none".to_owned()
        } else {
            groups.join(", ")
        }
    ));
    if r["identity"]["reads_everything"] == true {
        out.push_str(
            "  reads every column in clear and may run every statement: nothing is withheld\n",
        );
    }
    out.push_str(&format!(
        "verdict: {}\n",
        r["verdict"].as_str().unwrap_or("")
    ));
    if let Some(d) = r["denial"].as_object() {
        out.push_str(&format!(
            "  ERROR {}: {}\n",
            d["sqlstate"].as_str().unwrap_or(""),
            d["message"].as_str().unwrap_or("")
        ));
        if let Some(h) = d["hint"].as_str() {
            out.push_str(&format!("  HINT: {h}\n"));
        }
    }
    if let Some(a) = r["approval"].as_object() {
        out.push_str(&format!(
            "  held until approved by {}; one approval releases {}; expires after {} s\n",
            a["approvers"].as_str().unwrap_or(""),
            a["scope"].as_str().unwrap_or(""),
            a["ttl_seconds"]
        ));
    }
    if let Some(s) = r["rewritten"].as_str() {
        out.push_str(&format!("rewritten:\n  {s}\n"));
    }
    for (i, s) in r["statements"].as_array().into_iter().flatten().enumerate() {
        out.push_str(&format!(
            "statement {}: {}\n  decision: {}\n",
            i + 1,
            s["text"].as_str().unwrap_or(""),
            s["decision"].as_str().unwrap_or("")
        ));
        for c in s["columns"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  column {}: {}, {}\n",
                c["column"].as_str().unwrap_or(""),
                c["label"].as_str().unwrap_or(""),
                c["access"].as_str().unwrap_or("")
            ));
        }
        for u in s["usages"].as_array().into_iter().flatten() {
            let how: Vec<&str> = u["usages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str(&format!(
                "  uses {}: {}\n",
                u["column"].as_str().unwrap_or(""),
                how.join(", ")
            ));
        }
        if let Some(why) = s["usages_unresolved"].as_str() {
            out.push_str(&format!("  usages not resolved: {why}\n"));
        }
        for o in s["observed"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  observe-only rule would: {}\n",
                o.as_str().unwrap_or("")
            ));
        }
        for p in s["policies"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  policy {}: rule {} `{}` at {}\n",
                p["id"].as_str().unwrap_or(""),
                p["rule"].as_str().unwrap_or("?"),
                p["clause"].as_str().unwrap_or(""),
                p["source"].as_str().unwrap_or("")
            ));
        }
        if let Some(reason) = s["reason"].as_str() {
            out.push_str(&format!("  reason: {reason}\n"));
        }
    }
    out
}
