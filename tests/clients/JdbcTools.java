// pgJDBC (Debian's libpostgresql-jdbc-java) as a masked identity through
// the clsf proxy, the way IDEs, BI and ETL tools use it (tests/tests/tools.rs
// compiles and runs it). Usage:
//   java JdbcTools HOST PORT DBNAME CA_FILE TOKEN
// Prints one `key value` line per check.
import java.io.StringWriter;
import java.sql.*;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;
import org.postgresql.copy.CopyManager;
import org.postgresql.core.BaseConnection;

public class JdbcTools {
    static List<String> column(ResultSet r, String name) throws SQLException {
        List<String> out = new ArrayList<>();
        try (r) {
            while (r.next()) out.add(r.getString(name));
        }
        return out;
    }

    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        p.setProperty("user", "workload");
        p.setProperty("password", a[4]);
        p.setProperty("sslmode", "verify-full");
        p.setProperty("sslrootcert", a[3]);
        p.setProperty("connectTimeout", "10");
        // Sent at startup: `currentSchema` as the `search_path` parameter,
        // `options` with a `-c` switch (ORMs' connection strings carry both).
        p.setProperty("currentSchema", "public");
        p.setProperty("options", "-c statement_timeout=61s");
        try (Connection c = DriverManager.getConnection(
                "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[2], p)) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product " + md.getDatabaseProductName());
            try (Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SELECT current_setting('statement_timeout'), current_schema()")) {
                rs.next();
                System.out.println("startup " + rs.getString(1) + " " + rs.getString(2));
            }
            System.out.println("tables " + String.join(" ", new TreeSet<>(column(
                md.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"}), "TABLE_NAME"))));
            System.out.println("columns " + String.join(" ", column(
                md.getColumns(null, "public", "customers", "%"), "COLUMN_NAME")));
            System.out.println("primary_keys " + String.join(" ", column(
                md.getPrimaryKeys(null, "public", "customers"), "COLUMN_NAME")));
            System.out.println("index_info " + String.join(" ", new TreeSet<>(column(
                md.getIndexInfo(null, "public", "events", false, false), "INDEX_NAME"))));
            System.out.println("imported_keys " + String.join(" ", column(
                md.getImportedKeys(null, "public", "orders"), "PKTABLE_NAME")));
            System.out.println("schemas " + column(md.getSchemas(), "TABLE_SCHEM").contains("public"));
            // What IDEs (DBeaver, DataGrip) and ETL tools ask besides: types,
            // functions, privileges, row identifiers and version columns
            // (pgJDBC answers `ctid` for the latter).
            System.out.println("type_info " + column(md.getTypeInfo(), "TYPE_NAME").contains("int4"));
            System.out.println("functions " + column(
                md.getFunctions(null, "pg_catalog", "lower"), "FUNCTION_NAME").contains("lower"));
            System.out.println("procedure_columns " + !column(
                md.getProcedureColumns(null, "pg_catalog", "lower", "%"), "COLUMN_NAME").isEmpty());
            System.out.println("table_privileges " + column(
                md.getTablePrivileges(null, "public", "customers"), "PRIVILEGE").contains("SELECT"));
            System.out.println("column_privileges " + !column(
                md.getColumnPrivileges(null, "public", "customers", "email"), "PRIVILEGE").isEmpty());
            System.out.println("best_row " + String.join(" ", column(
                md.getBestRowIdentifier(null, "public", "customers", DatabaseMetaData.bestRowSession, true),
                "COLUMN_NAME")));
            System.out.println("version_columns " + String.join(" ", column(
                md.getVersionColumns(null, "public", "customers"), "COLUMN_NAME")));
            System.out.println("udts " + column(md.getUDTs(null, "public", "%", null), "TYPE_NAME").size());
            System.out.println("catalogs " + column(md.getCatalogs(), "TABLE_CAT").size());
            // Connection.setSchema (Flyway, Liquibase and Hibernate call
            // it at connect) sends `SET SESSION search_path TO '…'`.
            c.setSchema("public");
            System.out.println("set_schema " + c.getSchema());

            // pgJDBC turns a statement executed a fifth time into a named
            // server-side prepared statement (prepareThreshold): the same
            // masked answers before and after the switch.
            try (PreparedStatement s = c.prepareStatement("SELECT email FROM customers WHERE id = ?")) {
                List<String> seen = new ArrayList<>();
                for (int i = 0; i < 8; i++) {
                    s.setInt(1, 1 + i % 4);
                    try (ResultSet r = s.executeQuery()) {
                        r.next();
                        seen.add(r.getString(1));
                    }
                }
                System.out.println("server_prepared " + seen.get(7) + " "
                    + s.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare());
            }

            try (PreparedStatement s = c.prepareStatement("SELECT email FROM customers WHERE id = ?")) {
                s.setInt(1, 1);
                try (ResultSet r = s.executeQuery()) {
                    r.next();
                    System.out.println("masked " + r.getString(1));
                }
            }
            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT ssn FROM customers").close();
                System.out.println("denied NOT-DENIED");
            } catch (SQLException e) {
                System.out.println("denied " + e.getSQLState());
            }
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT count(*) FROM orders")) {
                r.next();
                System.out.println("after_denial " + r.getInt(1));
            }

            // A fetch size streams through a portal (Execute with a row
            // limit), which needs a transaction.
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.setFetchSize(1000);
                int n = 0;
                String first = null;
                try (ResultSet r = s.executeQuery("SELECT id, contact FROM events ORDER BY id")) {
                    while (r.next()) {
                        n++;
                        if (first == null) first = r.getString(2);
                    }
                }
                System.out.println("fetch_size " + n + " " + first);
            }
            c.commit();
            c.setAutoCommit(true);

            CopyManager copy = new CopyManager((BaseConnection) c);
            StringWriter w = new StringWriter();
            long rows = copy.copyOut("COPY (SELECT id, email FROM customers ORDER BY id) TO STDOUT", w);
            System.out.println("copy " + rows + " " + w.toString().split("\n")[0].replace('\t', ' '));

            // Statement.cancel() sends a CancelRequest on a new connection.
            try (Statement s = c.createStatement()) {
                Thread t = new Thread(() -> {
                    try {
                        Thread.sleep(500);
                        s.cancel();
                    } catch (Exception e) {
                        throw new RuntimeException(e);
                    }
                });
                t.start();
                long started = System.nanoTime();
                try {
                    s.execute("SELECT pg_sleep(30)");
                    System.out.println("cancel NOT-CANCELLED");
                } catch (SQLException e) {
                    long ms = (System.nanoTime() - started) / 1_000_000;
                    System.out.println("cancel " + e.getSQLState() + (ms < 10_000 ? " fast" : " slow"));
                }
                t.join();
            }
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT 1")) {
                r.next();
                System.out.println("after_cancel " + r.getInt(1));
            }
        }
    }
}
