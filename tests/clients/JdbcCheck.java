// pgJDBC (Debian's libpostgresql-jdbc-java) through the clsf proxy
// (tests/tests/clients.rs compiles and runs it). Usage:
//   java JdbcCheck HOST PORT DBNAME CA_FILE MASKED_TOKEN CLEAR_TOKEN
// Prints one `key value` line per check, like the other client programs.
import java.sql.*;
import java.util.Properties;

public class JdbcCheck {
    static Connection connect(String[] a, String token) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "workload");
        p.setProperty("password", token);
        p.setProperty("sslmode", "verify-full");
        p.setProperty("sslrootcert", a[3]);
        p.setProperty("connectTimeout", "10");
        // Server-side prepared statements from the first execution, so the
        // named-statement and binary-transfer paths are used.
        p.setProperty("prepareThreshold", "1");
        return DriverManager.getConnection(
            "jdbc:postgresql://" + a[0] + ":" + a[1] + "/" + a[2], p);
    }

    static String one(Connection c, String sql, Object... params) throws SQLException {
        try (PreparedStatement s = c.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) s.setObject(i + 1, params[i]);
            try (ResultSet r = s.executeQuery()) {
                r.next();
                StringBuilder b = new StringBuilder();
                for (int i = 1; i <= r.getMetaData().getColumnCount(); i++) {
                    if (i > 1) b.append(' ');
                    b.append(r.getString(i));
                }
                return b.toString();
            }
        }
    }

    public static void main(String[] a) throws Exception {
        try (Connection c = connect(a, a[4])) {
            System.out.println("masked " + one(c, "SELECT email, card_number FROM customers WHERE id = ?", 1));
            System.out.println("binary " + one(c, "SELECT id, email FROM customers WHERE id = ?", 2));
            StringBuilder emails = new StringBuilder();
            try (PreparedStatement s = c.prepareStatement("SELECT email FROM customers WHERE id = ?")) {
                for (int i = 1; i <= 3; i++) {
                    s.setInt(1, i);
                    try (ResultSet r = s.executeQuery()) {
                        r.next();
                        if (i > 1) emails.append(' ');
                        emails.append(r.getString(1));
                    }
                }
            }
            System.out.println("prepared " + emails);
            // A batch sends every Bind/Execute before one Sync (pipelining).
            try (PreparedStatement s = c.prepareStatement("UPDATE orders SET total_cents = total_cents WHERE id = ?")) {
                for (int id : new int[] {10, 11, 12}) {
                    s.setInt(1, id);
                    s.addBatch();
                }
                int[] counts = s.executeBatch();
                StringBuilder b = new StringBuilder("batch");
                for (int n : counts) b.append(' ').append(n);
                System.out.println(b);
            }
            try {
                one(c, "SELECT ssn FROM customers WHERE id = ?", 1);
                System.out.println("denied NOT-DENIED");
            } catch (SQLException e) {
                System.out.println("denied " + e.getSQLState());
            }
            System.out.println("after_denial " + one(c, "SELECT ?::int + 1", 41));
            c.setAutoCommit(false);
            try {
                one(c, "SELECT ssn FROM customers");
                System.out.println("in_tx NOT-DENIED");
            } catch (SQLException e) {
                System.out.println("in_tx " + e.getSQLState());
            }
            c.rollback();
            System.out.println("after_rollback " + one(c, "SELECT count(*) FROM customers"));
            c.rollback();
        }
        try (Connection c = connect(a, a[5])) {
            System.out.println("clear " + one(c, "SELECT email, card_number FROM customers WHERE id = ?", 1));
        }
    }
}
