//! Every refusal the engine gives, one constructor each, with its fixed
//! SQLSTATE: `42501` when the policy withholds something, `0A000` when clsf
//! cannot analyse or rewrite a statement safely, and PostgreSQL's own code
//! where the statement names a column or `FROM` entry that is not there (a
//! tool probing for a column expects `42703`). Messages name relations,
//! columns, settings, functions and rules, never a stored value. The
//! snapshot test at the end of this file shows each one as a client reads
//! it.

use crate::scope::ScopeError;
use crate::verdict::{
    Denial, FEATURE_NOT_SUPPORTED, INSUFFICIENT_PRIVILEGE, UNDEFINED_COLUMN, UNDEFINED_TABLE,
};

fn refusal(sqlstate: &'static str, message: String, hint: Option<&str>) -> Denial {
    Denial {
        sqlstate,
        message,
        hint: hint.map(str::to_owned),
        policies: Vec::new(),
    }
}

/// A 42501 refusal decided by these Cedar policies, without a hint.
fn refused_by(message: String, policies: Vec<String>) -> Denial {
    Denial {
        policies,
        ..refusal(INSUFFICIENT_PRIVILEGE, message, None)
    }
}

/// The text could not be parsed (sqlparser's error).
pub(crate) fn unparsable(error: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!("clsf cannot analyse this statement, so it is refused: {error}"),
        Some("clsf forwards only statements it can parse and resolve"),
    )
}

/// A statement kind sqlparser does not parse, recognised by its first words.
pub(crate) fn unparsable_kind(kind: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!(
            "statement `{kind}` is refused: clsf cannot parse it, so it cannot check what it touches"
        ),
        Some(
            "run it as an identity with nothing withheld (every column clear and writable, `ddl` and `admin` allowed), or directly against the database",
        ),
    )
}

/// `DO` for an identity with anything withheld.
pub(crate) fn do_block() -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        "statement `DO` is not allowed for this identity: its code runs inside the server, where clsf cannot see what it reads or writes".to_owned(),
        Some("only identities with nothing withheld (every column clear and writable, `ddl` and `admin` allowed) may run anonymous code blocks"),
    )
}

/// A statement sqlparser does not parse, which an identity with nothing
/// withheld may run alone, sent with other statements in one text.
pub(crate) fn unparsable_not_alone(kind: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!(
            "statement `{kind}` is refused: clsf cannot parse it, and it is not alone in its query string, so what else the text runs is unknown"
        ),
        Some("send it as a query of its own"),
    )
}

/// A rewrite that could not be made safely.
pub(crate) fn internal(why: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!("clsf cannot rewrite this statement safely ({why}), so it is refused"),
        None,
    )
}

/// A statement kind not analysed for identities with anything withheld.
pub(crate) fn kind_not_analysed(kind: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!("statement `{kind}` is not allowed for this identity: clsf does not analyse it"),
        Some(
            "identities with masked or denied columns may run queries, writes to fully readable tables, cursors, prepared statements, EXPLAIN and session statements (spec/runtime.md, What a masked identity may run)",
        ),
    )
}

/// Two-phase commit (`PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK
/// PREPARED`): a prepared transaction outlives its session, and every
/// identity reaches the database as the proxy's one role, so any of them
/// could finish (or hold the locks of) another's.
pub(crate) fn two_phase_commit() -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        "two-phase commit is refused through the clsf proxy: a prepared transaction outlives its session, and every identity reaches the database as the proxy's one role, so one identity could commit or roll back another's".to_owned(),
        Some("commit or roll back the transaction in its own session"),
    )
}

/// A form of an analysed statement kind that is not.
pub(crate) fn form_not_analysed(kind: &str, why: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!("statement `{kind}` is refused: {why}"),
        None,
    )
}

/// A `DECLARE` of another form than `DECLARE name CURSOR FOR query`.
pub(crate) fn cursor_form() -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        "only `DECLARE name CURSOR FOR query` is supported".to_owned(),
        None,
    )
}

/// A cursor over row-limited relations.
pub(crate) fn limited_cursor(rows: u64, rule: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "a cursor over relations limited to {rows} rows per statement (rule `{rule}`) is refused: its FETCHes together could return more; use a query"
        ),
        None,
    )
}

/// An SQL `PREPARE` over row-limited relations.
pub(crate) fn limited_prepare(rows: u64, rule: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "a prepared statement over relations limited to {rows} rows per statement (rule `{rule}`) is refused with PREPARE: send it directly, or through the extended protocol"
        ),
        None,
    )
}

/// `SELECT INTO` or `CREATE TABLE AS` from a source with anything withheld.
pub(crate) fn unlabelled_copy(what: &str, relation: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "{what} from `{relation}` is refused for this identity: it has masked, withheld or limited columns, and the new table would carry them without their labels"
        ),
        Some("read the rows with a query; a copy with labels belongs in the policy"),
    )
}

/// A schema change that names a column the identity does not read in clear.
pub(crate) fn ddl_over_withheld(what: &str, column: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "`{what}` over `{column}` is refused for this identity: it does not read that column in clear, and a schema change over it (an index expression, a generated column, a default, a check, a policy) could copy or reveal its values"
        ),
        Some("run schema changes over protected columns as an identity that reads them in clear"),
    )
}

/// Code that runs later with the gateway's rights, defined by an identity
/// with something withheld.
pub(crate) fn ddl_code(what: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "`{what}` is refused for this identity: it has masked, withheld or limited columns, and the code would run later, on other sessions' statements, reading what the proxy cannot see"
        ),
        Some(
            "define triggers, rules, functions and procedures as an identity that reads everything in clear",
        ),
    )
}

/// `COPY table` inside a string of several statements.
pub(crate) fn copy_not_alone() -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        "COPY of a table must be sent on its own, not with other statements".to_owned(),
        None,
    )
}

/// `COPY` to or from a server-side file or program.
pub(crate) fn copy_server_side() -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        "COPY to or from a file or program on the database server is refused: its data would not pass through clsf".to_owned(),
        Some("use COPY … TO STDOUT or COPY … FROM STDIN (psql's \\copy)"),
    )
}

/// `COPY` of row-limited relations.
pub(crate) fn limited_copy(rows: u64, rule: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!(
            "COPY of relations limited to {rows} rows per statement (rule `{rule}`) is refused; use a query"
        ),
        None,
    )
}

/// An action a rule denies (`rules` names them).
pub(crate) fn action_denied(what: &str, rules: &str, policies: Vec<String>) -> Denial {
    refused_by(format!("{what} is denied by {rules}"), policies)
}

/// An action no rule allows.
pub(crate) fn action_not_allowed(what: &str, action: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!("{what} is not allowed: no rule allows `{action}` for this identity"),
        Some(&format!("a rule such as `allow {action}` grants it")),
    )
}

/// A relation missing from the schema lock.
pub(crate) fn unknown_relation(name: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "relation `{name}` is not in the schema clsf was compiled against, so it cannot be classified and is refused"
        ),
        Some(
            "pull the schema again (`clsfc schema pull`) and rebuild the policy if the relation is new",
        ),
    )
}

/// A catalog relation that exposes stored values or statement text.
pub(crate) fn protected_catalog(name: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "catalog relation `{name}` exposes stored values or statement text and is refused for this identity"
        ),
        None,
    )
}

/// A write to a catalog relation.
pub(crate) fn catalog_write(name: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!("writing the catalog relation `{name}` is refused"),
        None,
    )
}

/// A settings function called with a name computed at run time.
pub(crate) fn computed_setting_name(function: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!("`{function}` with a computed setting name is not allowed for this identity"),
        Some("write the setting's name as a string literal"),
    )
}

/// One of the proxy's own settings (`clsf.*`).
pub(crate) fn proxy_setting(name: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "setting `{name}` belongs to the proxy and is not readable or changeable by clients"
        ),
        None,
    )
}

/// A library named at startup (`local_preload_libraries`,
/// `session_preload_libraries`) for an identity without the `admin` right
/// outright: its code would run in the session out of the engine's sight,
/// as `LOAD`'s does, and a login cannot wait for an approval.
pub(crate) fn startup_library(name: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!("loading libraries at startup (`{name}`) is not allowed for this identity"),
        Some("it needs the `admin` right without approval, as `LOAD` does"),
    )
}

/// A setting the proxy pins (name resolution, statement text, identity).
pub(crate) fn protected_setting(name: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!("changing `{name}` is not allowed for this identity"),
        Some(
            "the proxy pins the settings that decide how names resolve, how statement text is read and who the session is",
        ),
    )
}

/// A function a rule denies.
pub(crate) fn function_denied(shown: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!("function `{shown}` is denied for this identity by a rule"),
        None,
    )
}

/// A built-in function of a class masked identities may not call.
pub(crate) fn function_class(shown: &str, name: &str, class: &str, why: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!("function `{shown}` is not allowed for this identity: it is {class} ({why})"),
        Some(&format!(
            "identities with masked or denied columns may call pure and metadata functions; a rule's `allow function {name}` permits this one"
        )),
    )
}

/// `NOTIFY` for an identity that may not call `pg_notify`: the statement
/// is that function's side effect. `by_rule`: a rule denies the function.
pub(crate) fn notify(by_rule: bool) -> Denial {
    if by_rule {
        return refusal(
            INSUFFICIENT_PRIVILEGE,
            "statement `NOTIFY` is denied for this identity: a rule denies `pg_notify`, which it is as a statement".to_owned(),
            None,
        );
    }
    refusal(
        INSUFFICIENT_PRIVILEGE,
        "statement `NOTIFY` is not allowed for this identity: it signals other sessions, as the side-effecting function `pg_notify` does".to_owned(),
        Some("a rule's `allow function pg_notify` permits both"),
    )
}

/// A function that is not built in.
pub(crate) fn function_unknown(shown: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "function `{shown}` is not allowed for this identity: it is not a built-in function, so what it reads is unknown"
        ),
        Some(&format!("a rule's `allow function {shown}` permits it")),
    )
}

/// A column the identity may not read as the statement uses it.
pub(crate) fn column(
    column: &str,
    relation: &str,
    through: &str,
    label: &str,
    why: &str,
    policies: Vec<String>,
) -> Denial {
    refused_by(
        format!(
            "permission denied for column `{column}` of relation `{relation}`{through}: label `{label}`, {why}"
        ),
        policies,
    )
}

/// A statement reading a relation with withheld columns whose column uses
/// the scope resolver could not establish: the one place such a statement
/// is refused. Names a column or entry that does not exist as PostgreSQL
/// would.
pub(crate) fn not_resolved(error: &ScopeError) -> Denial {
    match error {
        ScopeError::UnknownColumn(column) | ScopeError::UnknownColumnIn(column, _) => refusal(
            UNDEFINED_COLUMN,
            format!("column `{column}` does not exist in what the statement reads"),
            Some(
                "if the column is new, pull the schema again (`clsfc schema pull`) and rebuild the policy",
            ),
        ),
        ScopeError::UnknownRelation(name) => unknown_relation(name),
        ScopeError::MissingFromEntry(name) => refusal(
            UNDEFINED_TABLE,
            format!("missing FROM-clause entry for `{name}`"),
            None,
        ),
        ScopeError::NotFollowed(what) => refusal(
            FEATURE_NOT_SUPPORTED,
            format!(
                "the statement reads a relation with columns withheld from this identity, and clsf does not follow {what}, so it cannot tell which columns it uses; refused"
            ),
            Some("write the statement without that construct"),
        ),
    }
}

/// A statement over `relation`, which the live database has columns of
/// that the schema lock lacks (`Drift`), that the scope resolver cannot
/// follow: it is read through the lock's columns, which needs the
/// statement followed.
pub(crate) fn drifted_unresolved(relation: &str, error: &ScopeError) -> Denial {
    match error {
        ScopeError::NotFollowed(what) => refusal(
            FEATURE_NOT_SUPPORTED,
            format!(
                "`{relation}` has columns the schema lock does not, which the policy in force has not classified; clsf reads it through the lock's columns, and it does not follow {what}; refused"
            ),
            Some(
                "pull the schema again (`clsfc schema pull`) and rebuild the policy, or write the statement without that construct",
            ),
        ),
        other => not_resolved(other),
    }
}

/// A column the live `relation` gained after the schema lock was pulled
/// (`Drift`), named by a statement.
pub(crate) fn drifted_column(column: &str, relation: &str) -> Denial {
    refusal(
        UNDEFINED_COLUMN,
        format!(
            "column `{column}` is not in the schema lock: `{relation}` gained it after the lock was pulled, and the policy in force has not classified it"
        ),
        Some("pull the schema again (`clsfc schema pull`) and rebuild the policy"),
    )
}

/// A column name the statement uses that no relation of the schema lock in
/// its scope has: a column a migration added after the lock was pulled
/// (before the proxy's comparison found it), or none at all.
pub(crate) fn column_not_in_lock(column: &str) -> Denial {
    refusal(
        UNDEFINED_COLUMN,
        format!(
            "column `{column}` is not in the schema lock: if a migration added it after the lock was pulled, the policy in force has not classified it; refused"
        ),
        Some(
            "check the name; if the column is new, pull the schema again (`clsfc schema pull`) and rebuild the policy",
        ),
    )
}

/// A write that takes `relation` whole (`*`, `t.*`, a whole-row `t`, `TABLE
/// t`) where the live relation has columns the schema lock lacks: writes
/// are forwarded as written, so those columns would be returned or copied.
pub(crate) fn drifted_whole(what: &str, relation: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "{what} takes `{relation}` whole, and the live relation has columns the schema lock does not, which the policy in force has not classified; refused"
        ),
        Some(
            "name the columns instead of `*` or a whole-row reference, or pull the schema again (`clsfc schema pull`) and rebuild the policy",
        ),
    )
}

/// `SELECT … INTO`, `CREATE TABLE … AS` or a view over `relation`, which
/// the live database has columns of that the schema lock lacks: the new
/// relation could carry them, unclassified.
pub(crate) fn drifted_copy(what: &str, relation: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "{what} from `{relation}` is refused: the live relation has columns the schema lock does not, which the policy in force has not classified, and the new relation could carry them"
        ),
        Some("pull the schema again (`clsfc schema pull`) and rebuild the policy"),
    )
}

/// `ONLY t` or `t *` on a protected relation, written so that the marker
/// cannot be located among the statement's tokens (replaced with the name
/// otherwise).
pub(crate) fn inheritance_marker(relation: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!(
            "clsf cannot locate the `ONLY` or `*` written with the protected relation `{relation}`, so it cannot rewrite the reference"
        ),
        Some("write the relation as `ONLY name` or `name *`"),
    )
}

/// A `TABLESAMPLE` on a protected relation that cannot be located among
/// the statement's tokens (moved into the masking subquery otherwise).
pub(crate) fn sample_unplaced(relation: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!(
            "clsf cannot locate the TABLESAMPLE clause written with the protected relation `{relation}`, so it cannot rewrite the reference"
        ),
        Some("write it as `TABLESAMPLE method (arguments) [REPEATABLE (seed)]`"),
    )
}

/// A system column (`ctid`, `xmin`, …) of a masked relation read beside
/// an expansion of its row that cannot be written out as its columns (a
/// whole-row reference, `t.*` as an argument, `*` over a join): the
/// masking subquery carries the system column, so the row would too.
pub(crate) fn system_columns_with_row(relation: &str) -> Denial {
    refusal(
        FEATURE_NOT_SUPPORTED,
        format!(
            "clsf cannot read a system column of the protected relation `{relation}` in a statement that also expands its whole row there"
        ),
        Some("list the columns you need instead of `*`, `t.*` or the row `t`"),
    )
}

/// A write touching a row-limited relation.
pub(crate) fn limited_write(relation: &str, rows: u64, rule: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "writing statements that touch `{relation}` are refused for this identity: reading it is limited to {rows} rows per statement (rule `{rule}`)"
        ),
        None,
    )
}

/// A write to a table with masked or denied columns or a row filter.
pub(crate) fn withheld_write(relation: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "writing `{relation}` is refused for this identity: it has masked or denied columns, or a row filter, and a write's errors and triggers can show its whole row"
        ),
        None,
    )
}

/// A write touching a relation that a row filter narrows for the identity.
pub(crate) fn filtered_write(relation: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "writing statements that touch `{relation}` are refused for this identity: a row filter hides some of its rows, and the write would reach them"
        ),
        None,
    )
}

/// A write using a column the identity reads masked: it is forwarded as
/// written, so it would use the clear value.
pub(crate) fn masked_in_write(column: &str, relation: &str, how: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "a writing statement may not use column `{column}` of `{relation}` ({how}): it is masked for this identity, and the write would use its clear value"
        ),
        Some("leave the column out of the write, or read it masked with a SELECT"),
    )
}

/// A write setting a foreign key whose referenced columns the identity
/// does not read in clear (or whose referenced table a row filter
/// narrows): its outcome would tell whether a value exists there.
pub(crate) fn key_probe(column: &str, relation: &str, key: &str, referenced: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "writing column `{column}` of `{relation}` is refused for this identity: its foreign key `{key}` checks `{referenced}`, which this identity may not read in full, so the write's outcome would tell whether a value exists there"
        ),
        Some("leave the column out of the write (or to its default)"),
    )
}

/// A row filter whose claim the token does not carry.
pub(crate) fn missing_filter_claim(relation: &str, claim: &str, policy: String) -> Denial {
    refused_by(
        format!(
            "the row filter of `{relation}` needs the claim `{claim}`, which this identity's token does not carry as a string or number"
        ),
        vec![policy],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal as a client reads it: SQLSTATE, message and hint.
    #[test]
    fn every_refusal() {
        let all = [
            unparsable("Expected: an expression, found: EOF"),
            unparsable_kind("CREATE STATISTICS"),
            internal("a masked column in a rewritten join"),
            kind_not_analysed("OPEN"),
            two_phase_commit(),
            do_block(),
            unparsable_not_alone("CREATE PROCEDURE"),
            form_not_analysed("COPY", "a COPY with a WHERE clause is not analysed"),
            cursor_form(),
            limited_cursor(100, "ci_reads"),
            limited_prepare(100, "ci_reads"),
            unlabelled_copy("SELECT INTO", "public.customers"),
            ddl_over_withheld("CREATE INDEX", "public.customers.ssn"),
            ddl_code("CREATE TRIGGER"),
            copy_not_alone(),
            copy_server_side(),
            limited_copy(100, "ci_reads"),
            action_denied(
                "exporting `public.customers`",
                "rule `ci_reads`",
                vec!["p2".into()],
            ),
            action_not_allowed("writing `public.orders`", "write"),
            unknown_relation("public.audit_new"),
            protected_catalog("pg_catalog.pg_statistic"),
            catalog_write("pg_catalog.pg_class"),
            computed_setting_name("set_config"),
            proxy_setting("clsf.hash_ipad"),
            protected_setting("search_path"),
            startup_library("local_preload_libraries"),
            function_denied("pg_sleep"),
            notify(false),
            notify(true),
            function_class(
                "pg_read_file",
                "pg_read_file",
                "side-effecting",
                "reads server files",
            ),
            function_unknown("public.leak"),
            column(
                "ssn",
                "public.customers",
                " (through view `v`)",
                "restricted",
                "denied by rule `ci_reads`",
                vec!["p3".into()],
            ),
            not_resolved(&ScopeError::UnknownColumn("c.emai".into())),
            not_resolved(&ScopeError::UnknownRelation("public.custmers".into())),
            not_resolved(&ScopeError::MissingFromEntry("o".into())),
            not_resolved(&ScopeError::NotFollowed("JOIN USING … AS".into())),
            drifted_unresolved(
                "public.orders",
                &ScopeError::NotFollowed("ROWS FROM".into()),
            ),
            drifted_column("o.extra", "public.orders"),
            column_not_in_lock("o.extra"),
            drifted_whole("the write", "public.orders"),
            drifted_copy("CREATE TABLE … AS", "public.orders"),
            inheritance_marker("public.customers"),
            sample_unplaced("public.customers"),
            system_columns_with_row("public.customers"),
            limited_write("public.orders", 100, "ci_reads"),
            withheld_write("public.customers"),
            filtered_write("public.orders"),
            masked_in_write("email", "public.customers", "filtered"),
            key_probe(
                "customer_ssn",
                "public.orders",
                "orders_ssn_fkey",
                "public.customers",
            ),
            missing_filter_claim("public.orders", "tenant.id", "p4".into()),
        ];
        let text: Vec<String> = all
            .iter()
            .map(|d| {
                let mut s = format!("{} {}", d.sqlstate, d.message);
                if let Some(h) = &d.hint {
                    s.push_str(&format!("\n      hint: {h}"));
                }
                if !d.policies.is_empty() {
                    s.push_str(&format!("\n      policies: {}", d.policies.join(", ")));
                }
                s
            })
            .collect();
        insta::assert_snapshot!(text.join("\n"));
    }
}
