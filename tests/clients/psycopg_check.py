"""psycopg 3 through the clsf proxy (tests/tests/clients.rs runs it).

Usage: psycopg_check.py HOST PORT DBNAME CA_FILE MASKED_TOKEN CLEAR_TOKEN

Prints one `key value` line per check; the Rust test compares them with
what every other client printed. Exits non-zero on anything unexpected.
"""
import sys

import psycopg

host, port, dbname, ca, masked_token, clear_token = sys.argv[1:7]


def connect(token):
    return psycopg.connect(
        host=host, hostaddr="127.0.0.1", port=port, dbname=dbname,
        user="workload", password=token, sslmode="verify-full",
        sslrootcert=ca, connect_timeout=10, autocommit=True,
    )


with connect(masked_token) as conn:
    assert conn.pgconn.ssl_in_use, "not TLS"
    # Parameters make psycopg use the extended protocol (Parse/Bind/Execute).
    row = conn.execute(
        "SELECT email, card_number FROM customers WHERE id = %s", (1,)
    ).fetchone()
    print("masked", row[0], row[1])
    # Binary result format.
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT id, email FROM customers WHERE id = %s", (2,))
        print("binary", *cur.fetchone())
    # A server-side prepared statement, executed several times.
    emails = [
        conn.execute("SELECT email FROM customers WHERE id = %s", (i,), prepare=True).fetchone()[0]
        for i in (1, 2, 3)
    ]
    print("prepared", *emails)
    # Pipeline mode: several statements before one Sync.
    with conn.pipeline():
        a = conn.execute("SELECT count(*) FROM orders WHERE status = %s", ("shipped",))
        b = conn.execute("SELECT email FROM customers WHERE id = %s", (4,))
    print("pipeline", a.fetchone()[0], b.fetchone()[0])
    try:
        conn.execute("SELECT ssn FROM customers WHERE id = %s", (1,)).fetchall()
        print("denied", "NOT-DENIED")
    except psycopg.Error as e:
        print("denied", e.sqlstate)
    print("after_denial", conn.execute("SELECT %s::int + 1", (41,)).fetchone()[0])
    # A transaction that a denial aborts, rolled back, then used again.
    conn.autocommit = False
    try:
        conn.execute("SELECT ssn FROM customers")
        print("in_tx", "NOT-DENIED")
    except psycopg.Error as e:
        print("in_tx", e.sqlstate)
    conn.rollback()
    print("after_rollback", conn.execute("SELECT count(*) FROM customers").fetchone()[0])
    conn.rollback()

with connect(clear_token) as conn:
    row = conn.execute("SELECT email, card_number FROM customers WHERE id = %s", (1,)).fetchone()
    print("clear", row[0], row[1])
