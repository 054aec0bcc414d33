//! Statement kinds and database-wide actions (`ddl`, `admin`): the
//! kind's name for messages and whether the identity's rules permit it.

use super::*;

/// Which rules decide a statement that no arm of `decide_statement`
/// handles itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// A schema change: permitted by the `ddl` action, then checked by
    /// `ddl::check` for what it would move.
    Ddl,
    /// An administrative statement: permitted by the `admin` action.
    Admin,
    /// Decided by its own arm, or not analysed (refused for an identity
    /// with anything withheld).
    Other,
}

/// A statement's family and its leading keywords (for messages: never a
/// name or a value from the statement).
///
/// Every kind sqlparser knows is named, with no catch-all arm: a kind a
/// new sqlparser adds fails to compile here until someone decides which
/// rules apply to it, instead of falling silently into one family.
pub(super) fn kind(stmt: &sql::Statement) -> (Family, &'static str) {
    use sql::Statement as S;
    match stmt {
        S::CreateView(v) if v.materialized => (Family::Ddl, "CREATE MATERIALIZED VIEW"),
        S::CreateView(..) => (Family::Ddl, "CREATE VIEW"),
        S::CreateTable(..) => (Family::Ddl, "CREATE TABLE"),
        S::CreateVirtualTable { .. } => (Family::Ddl, "CREATE VIRTUAL TABLE"),
        S::CreateIndex(..) => (Family::Ddl, "CREATE INDEX"),
        S::CreateSecret { .. } => (Family::Ddl, "CREATE SECRET"),
        S::CreateServer(..) => (Family::Ddl, "CREATE SERVER"),
        S::CreateForeignTable(..) => (Family::Ddl, "CREATE FOREIGN TABLE"),
        S::CreateForeignDataWrapper(..) => (Family::Ddl, "CREATE FOREIGN DATA WRAPPER"),
        S::CreateUserMapping(..) => (Family::Ddl, "CREATE USER MAPPING"),
        S::CreatePolicy(..) => (Family::Ddl, "CREATE POLICY"),
        S::CreateRule(..) => (Family::Ddl, "CREATE RULE"),
        S::CreateConnector(..) => (Family::Ddl, "CREATE CONNECTOR"),
        S::CreateOperator(..) => (Family::Ddl, "CREATE OPERATOR"),
        S::CreateOperatorFamily(..) => (Family::Ddl, "CREATE OPERATOR FAMILY"),
        S::CreateOperatorClass(..) => (Family::Ddl, "CREATE OPERATOR CLASS"),
        S::CreateTextSearch(..) => (Family::Ddl, "CREATE TEXT SEARCH"),
        S::CreateAggregate(..) => (Family::Ddl, "CREATE AGGREGATE"),
        S::AlterTable(..) => (Family::Ddl, "ALTER TABLE"),
        S::AlterSchema(..) => (Family::Ddl, "ALTER SCHEMA"),
        S::AlterIndex { .. } => (Family::Ddl, "ALTER INDEX"),
        S::AlterView(..) => (Family::Ddl, "ALTER VIEW"),
        S::AlterFunction(..) => (Family::Ddl, "ALTER FUNCTION"),
        S::AlterType(..) => (Family::Ddl, "ALTER TYPE"),
        S::AlterCollation(..) => (Family::Ddl, "ALTER COLLATION"),
        S::AlterOperator(..) => (Family::Ddl, "ALTER OPERATOR"),
        S::AlterOperatorFamily(..) => (Family::Ddl, "ALTER OPERATOR FAMILY"),
        S::AlterOperatorClass(..) => (Family::Ddl, "ALTER OPERATOR CLASS"),
        S::AlterTextSearch(..) => (Family::Ddl, "ALTER TEXT SEARCH"),
        S::AlterRole { .. } => (Family::Ddl, "ALTER ROLE"),
        S::AlterPolicy(..) => (Family::Ddl, "ALTER POLICY"),
        S::AlterTrigger(..) => (Family::Ddl, "ALTER TRIGGER"),
        S::AlterConnector { .. } => (Family::Ddl, "ALTER CONNECTOR"),
        S::AlterSession { .. } => (Family::Ddl, "ALTER SESSION"),
        S::Drop { .. } => (Family::Ddl, "DROP"),
        S::DropFunction(..) => (Family::Ddl, "DROP FUNCTION"),
        S::DropDomain(..) => (Family::Ddl, "DROP DOMAIN"),
        S::DropProcedure { .. } => (Family::Ddl, "DROP PROCEDURE"),
        S::DropSecret { .. } => (Family::Ddl, "DROP SECRET"),
        S::DropPolicy(..) => (Family::Ddl, "DROP POLICY"),
        S::DropRule(..) => (Family::Ddl, "DROP RULE"),
        S::DropConnector { .. } => (Family::Ddl, "DROP CONNECTOR"),
        S::CreateExtension(..) => (Family::Ddl, "CREATE EXTENSION"),
        S::CreateCollation(..) => (Family::Ddl, "CREATE COLLATION"),
        S::DropExtension(..) => (Family::Ddl, "DROP EXTENSION"),
        S::DropOperator(..) => (Family::Ddl, "DROP OPERATOR"),
        S::DropOperatorFamily(..) => (Family::Ddl, "DROP OPERATOR FAMILY"),
        S::DropOperatorClass(..) => (Family::Ddl, "DROP OPERATOR CLASS"),
        S::Comment { .. } => (Family::Ddl, "COMMENT"),
        S::CreateSchema { .. } => (Family::Ddl, "CREATE SCHEMA"),
        S::CreateDatabase { .. } => (Family::Ddl, "CREATE DATABASE"),
        S::CreateTrigger(..) => (Family::Ddl, "CREATE TRIGGER"),
        S::DropTrigger(..) => (Family::Ddl, "DROP TRIGGER"),
        S::CreateProcedure { .. } => (Family::Ddl, "CREATE PROCEDURE"),
        S::CreateMacro { .. } => (Family::Ddl, "CREATE MACRO"),
        S::CreateStage { .. } => (Family::Ddl, "CREATE STAGE"),
        S::CreateFileFormat { .. } => (Family::Ddl, "CREATE FILE FORMAT"),
        S::CreateWarehouse(..) => (Family::Ddl, "CREATE WAREHOUSE"),
        S::AlterDefaultPrivileges(..) => (Family::Ddl, "ALTER DEFAULT PRIVILEGES"),
        S::CreateSequence { .. } => (Family::Ddl, "CREATE SEQUENCE"),
        S::CreateDomain(..) => (Family::Ddl, "CREATE DOMAIN"),
        S::CreateType { .. } => (Family::Ddl, "CREATE TYPE"),
        S::CreateUser(..) => (Family::Ddl, "CREATE USER"),
        S::AlterUser(..) => (Family::Ddl, "ALTER USER"),
        S::Analyze(..) => (Family::Admin, "ANALYZE"),
        S::CreateRole(..) => (Family::Admin, "CREATE ROLE"),
        S::Grant(..) => (Family::Admin, "GRANT"),
        S::GrantRole(..) => (Family::Admin, "GRANT"),
        S::Revoke(..) => (Family::Admin, "REVOKE"),
        S::RevokeRole(..) => (Family::Admin, "REVOKE"),
        S::Vacuum(..) => (Family::Admin, "VACUUM"),
        S::Set(..) => (Family::Other, "SET"),
        S::Truncate(..) => (Family::Other, "TRUNCATE"),
        S::Msck(..) => (Family::Other, "MSCK"),
        S::Query(..) => (Family::Other, "SELECT"),
        S::Insert(..) => (Family::Other, "INSERT"),
        S::Install { .. } => (Family::Other, "INSTALL"),
        // LOAD 'library' loads server code into the session.
        S::Load { .. } => (Family::Admin, "LOAD"),
        S::Directory { .. } => (Family::Other, "INSERT OVERWRITE DIRECTORY"),
        S::Case(..) => (Family::Other, "CASE"),
        S::If(..) => (Family::Other, "IF"),
        S::While(..) => (Family::Other, "WHILE"),
        S::Raise(..) => (Family::Other, "RAISE"),
        S::Call(..) => (Family::Other, "CALL"),
        S::Copy { .. } => (Family::Other, "COPY"),
        S::CopyIntoSnowflake { .. } => (Family::Other, "COPY INTO"),
        S::Open(..) => (Family::Other, "OPEN"),
        S::Close { .. } => (Family::Other, "CLOSE"),
        S::Update(..) => (Family::Other, "UPDATE"),
        S::Delete(..) => (Family::Other, "DELETE"),
        S::AttachDatabase { .. } => (Family::Other, "ATTACH DATABASE"),
        S::AttachDuckDBDatabase { .. } => (Family::Other, "ATTACH"),
        S::DetachDuckDBDatabase { .. } => (Family::Other, "DETACH"),
        S::Declare { .. } => (Family::Other, "DECLARE"),
        S::Fetch { .. } => (Family::Other, "FETCH"),
        S::Flush { .. } => (Family::Other, "FLUSH"),
        S::Discard { .. } => (Family::Other, "DISCARD"),
        S::ShowFunctions { .. } => (Family::Other, "SHOW FUNCTIONS"),
        S::ShowVariable { .. } => (Family::Other, "SHOW"),
        S::ShowStatus { .. } => (Family::Other, "SHOW STATUS"),
        S::ShowVariables { .. } => (Family::Other, "SHOW VARIABLES"),
        S::ShowCreate { .. } => (Family::Other, "SHOW CREATE"),
        S::ShowColumns { .. } => (Family::Other, "SHOW COLUMNS"),
        S::ShowCatalogs { .. } => (Family::Other, "SHOW CATALOGS"),
        S::ShowDatabases { .. } => (Family::Other, "SHOW DATABASES"),
        S::ShowProcessList { .. } => (Family::Other, "SHOW PROCESSLIST"),
        S::ShowSchemas { .. } => (Family::Other, "SHOW SCHEMAS"),
        S::ShowCharset(..) => (Family::Other, "SHOW CHARSET"),
        S::ShowObjects(..) => (Family::Other, "SHOW OBJECTS"),
        S::ShowTables { .. } => (Family::Other, "SHOW TABLES"),
        S::ShowViews { .. } => (Family::Other, "SHOW VIEWS"),
        S::ShowCollation { .. } => (Family::Other, "SHOW COLLATION"),
        S::Use(..) => (Family::Other, "USE"),
        S::StartTransaction { .. } => (Family::Other, "BEGIN"),
        S::Commit { .. } => (Family::Other, "COMMIT"),
        S::Rollback { .. } => (Family::Other, "ROLLBACK"),
        S::CreateFunction(..) => (Family::Ddl, "CREATE FUNCTION"),
        S::Assert { .. } => (Family::Other, "ASSERT"),
        S::Deny(..) => (Family::Other, "DENY"),
        S::Deallocate { .. } => (Family::Other, "DEALLOCATE"),
        S::Execute { .. } => (Family::Other, "EXECUTE"),
        S::Prepare { .. } => (Family::Other, "PREPARE"),
        S::Kill { .. } => (Family::Other, "KILL"),
        S::ExplainTable { .. } => (Family::Other, "DESCRIBE"),
        S::Explain { .. } => (Family::Other, "EXPLAIN"),
        S::Savepoint { .. } => (Family::Other, "SAVEPOINT"),
        S::ReleaseSavepoint { .. } => (Family::Other, "RELEASE SAVEPOINT"),
        S::Merge(..) => (Family::Other, "MERGE"),
        S::Cache { .. } => (Family::Other, "CACHE"),
        S::UNCache { .. } => (Family::Other, "UNCACHE"),
        S::Pragma { .. } => (Family::Other, "PRAGMA"),
        S::Lock(..) => (Family::Other, "LOCK"),
        S::LockTables { .. } => (Family::Other, "LOCK TABLES"),
        S::UnlockTables => (Family::Other, "UNLOCK TABLES"),
        S::Unload { .. } => (Family::Other, "UNLOAD"),
        S::OptimizeTable { .. } => (Family::Other, "OPTIMIZE TABLE"),
        S::LISTEN { .. } => (Family::Other, "LISTEN"),
        S::UNLISTEN { .. } => (Family::Other, "UNLISTEN"),
        S::NOTIFY { .. } => (Family::Other, "NOTIFY"),
        S::LoadData { .. } => (Family::Other, "LOAD DATA"),
        S::RenameTable(..) => (Family::Other, "RENAME TABLE"),
        S::List(..) => (Family::Other, "LIST"),
        S::Put { .. } => (Family::Other, "PUT"),
        S::Remove(..) => (Family::Other, "REMOVE"),
        S::RaisError { .. } => (Family::Other, "RAISERROR"),
        S::Throw(..) => (Family::Other, "THROW"),
        S::Print(..) => (Family::Other, "PRINT"),
        S::WaitFor(..) => (Family::Other, "WAITFOR"),
        S::Return(..) => (Family::Other, "RETURN"),
        S::ExportData(..) => (Family::Other, "EXPORT DATA"),
        S::Reset(..) => (Family::Other, "RESET"),
        // Recomputes a view from its stored definition: maintenance of the
        // schema, as the unparsed `REFRESH` forms are decided.
        S::RefreshMaterializedView(..) => (Family::Ddl, "REFRESH MATERIALIZED VIEW"),
    }
}

/// Schema changes: permitted by the `ddl` action.
pub(super) fn is_ddl(stmt: &sql::Statement) -> bool {
    kind(stmt).0 == Family::Ddl
}

/// Administrative statements: permitted by the `admin` action.
pub(super) fn is_admin(stmt: &sql::Statement) -> bool {
    kind(stmt).0 == Family::Admin
}

/// The rule that decided a database-wide action, for messages.
pub(super) fn rules_text(plan: &Plan, ids: &[String]) -> String {
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

/// The refusal of an action `perm` does not permit; one that needs an
/// approval is noted in `needs` and decided as permitted.
pub(super) fn perm_denial(
    plan: &Plan,
    needs: &Needs,
    perm: &Perm,
    action: &str,
    what: &str,
) -> Option<Denial> {
    match perm {
        Perm::Allowed => None,
        Perm::Approval { clauses, .. } => {
            needs.add(clauses);
            None
        }
        Perm::Denied(ids) if !ids.is_empty() => Some(denials::action_denied(
            what,
            &rules_text(plan, ids),
            ids.clone(),
        )),
        Perm::Denied(_) => Some(denials::action_not_allowed(what, action)),
    }
}

pub(super) fn action_permitted(
    cx: Cx<'_>,
    perm: &Perm,
    action: &str,
    stmt: &sql::Statement,
) -> Result<Outcome, Denial> {
    match perm_denial(
        cx.plan,
        cx.needs,
        perm,
        action,
        &format!("statement `{}`", statement_kind(stmt)),
    ) {
        None => Ok(Outcome::pass()),
        Some(d) => Err(d),
    }
}

/// The leading keywords of a statement, for messages (never its values).
pub(super) fn statement_kind(stmt: &sql::Statement) -> &'static str {
    kind(stmt).1
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    #[test]
    fn each_statement_has_its_family_and_keywords() {
        // The families are those of the leading keyword (CREATE, ALTER,
        // DROP, COMMENT: ddl; GRANT, REVOKE, VACUUM, ANALYZE: admin), with
        // CREATE FUNCTION (decided as code, refused) and CREATE ROLE
        // (admin) apart.
        let cases = [
            ("CREATE TABLE t (a int)", Family::Ddl, "CREATE TABLE"),
            (
                "CREATE MATERIALIZED VIEW m AS SELECT 1",
                Family::Ddl,
                "CREATE MATERIALIZED VIEW",
            ),
            ("CREATE VIEW v AS SELECT 1", Family::Ddl, "CREATE VIEW"),
            ("ALTER TABLE t ADD COLUMN b int", Family::Ddl, "ALTER TABLE"),
            (
                "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r",
                Family::Ddl,
                "ALTER DEFAULT PRIVILEGES",
            ),
            ("DROP TABLE secret_customers", Family::Ddl, "DROP"),
            ("COMMENT ON TABLE t IS 'x'", Family::Ddl, "COMMENT"),
            ("CREATE USER u", Family::Ddl, "CREATE USER"),
            ("CREATE ROLE r", Family::Admin, "CREATE ROLE"),
            ("GRANT SELECT ON t TO r", Family::Admin, "GRANT"),
            ("GRANT r TO u", Family::Admin, "GRANT"),
            ("REVOKE SELECT ON t FROM r", Family::Admin, "REVOKE"),
            ("VACUUM t", Family::Admin, "VACUUM"),
            ("ANALYZE t", Family::Admin, "ANALYZE"),
            ("LOAD 'auto_explain'", Family::Admin, "LOAD"),
            (
                "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
                Family::Ddl,
                "CREATE FUNCTION",
            ),
            ("TRUNCATE customers", Family::Other, "TRUNCATE"),
            (
                "REFRESH MATERIALIZED VIEW m",
                Family::Ddl,
                "REFRESH MATERIALIZED VIEW",
            ),
            (
                "WITH x AS (SELECT 1) SELECT * FROM x",
                Family::Other,
                "SELECT",
            ),
            ("BEGIN", Family::Other, "BEGIN"),
        ];
        for (text, family, keywords) in cases {
            let stmt = &Parser::parse_sql(&PostgreSqlDialect {}, text).expect(text)[0];
            assert_eq!(kind(stmt), (family, keywords), "{text}");
        }
    }
}
