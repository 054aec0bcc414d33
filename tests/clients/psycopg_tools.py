"""psycopg 3 as a masked identity through the clsf proxy, the way data jobs
stream (tests/tests/tools.rs runs it).

Usage: psycopg_tools.py HOST PORT DBNAME CA_FILE TOKEN

Prints one `key value` line per check. Exits non-zero on anything
unexpected.
"""
import sys
import threading
import time

import psycopg
from psycopg.types import TypeInfo

host, port, dbname, ca, token = sys.argv[1:6]


def connect(**extra):
    return psycopg.connect(
        host=host, hostaddr="127.0.0.1", port=port, dbname=dbname,
        user="workload", password=token, sslmode="verify-full",
        sslrootcert=ca, connect_timeout=10, **extra,
    )


print("libpq", "ge17" if psycopg.pq.version() >= 170000 else "lt17")
with connect(autocommit=True) as conn:
    assert conn.pgconn.ssl_in_use, "not TLS"
    # Type lookups (what adapters run at start-up: to_regtype on pg_type).
    info = TypeInfo.fetch(conn, "text")
    print("typeinfo", info.name, info.oid)
    row = conn.execute("SELECT email, card_number FROM customers WHERE id = %s", (1,)).fetchone()
    print("masked", *row)
    try:
        conn.execute("SELECT ssn FROM customers").fetchall()
        print("denied", "NOT-DENIED")
    except psycopg.Error as e:
        print("denied", e.sqlstate)
    print("after_denial", conn.execute("SELECT count(*) FROM orders").fetchone()[0])

    # COPY TO STDOUT of a query, masked.
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT id, email FROM customers ORDER BY id) TO STDOUT") as copy:
            rows = list(copy.rows())
    print("copy", len(rows), rows[0][1])

    # A WITH HOLD cursor outlives its transaction (autocommit here).
    with conn.cursor(name="held", withhold=True) as cur:
        cur.execute("SELECT id, contact FROM events ORDER BY id")
        print("withhold", len(cur.fetchmany(5)), cur.fetchone()[1])

    # cancel_safe(): libpq >= 17 sends the CancelRequest inside TLS.
    def cancel_soon():
        time.sleep(0.5)
        conn.cancel_safe(timeout=10)

    t = threading.Thread(target=cancel_soon)
    t.start()
    started = time.monotonic()
    try:
        conn.execute("SELECT pg_sleep(30)")
        print("cancel", "NOT-CANCELLED")
    except psycopg.errors.QueryCanceled as e:
        print("cancel", e.sqlstate, "fast" if time.monotonic() - started < 10 else "slow")
    t.join()
    print("after_cancel", conn.execute("SELECT 1").fetchone()[0])

# Direct TLS (libpq >= 17, sslnegotiation=direct): the connection and its
# cancel request both start with the TLS handshake.
with connect(autocommit=True, sslnegotiation="direct") as conn:
    assert conn.pgconn.ssl_in_use, "not TLS"

    def cancel_direct():
        time.sleep(0.5)
        conn.cancel_safe(timeout=10)

    t = threading.Thread(target=cancel_direct)
    t.start()
    try:
        conn.execute("SELECT pg_sleep(30)")
        print("direct_cancel", "NOT-CANCELLED")
    except psycopg.errors.QueryCanceled as e:
        print("direct_cancel", e.sqlstate)
    t.join()

with connect() as conn:
    # Named (server-side) cursors stream with DECLARE / FETCH FORWARD / CLOSE.
    with conn.cursor(name="stream") as cur:
        cur.itersize = 1000
        cur.execute("SELECT id, contact FROM events ORDER BY id")
        n, first = 0, None
        for r in cur:
            n += 1
            first = first or r[1]
    print("named", n, first)
    with conn.cursor(name="bin", binary=True, scrollable=True) as cur:
        cur.execute("SELECT id, contact FROM events WHERE id <= %s ORDER BY id", (100,))
        cur.scroll(10, mode="absolute")
        r = cur.fetchone()
        print("binary_scroll", r[0], r[1])
    try:
        with conn.cursor(name="secret") as cur:
            cur.execute("SELECT ssn FROM customers")
            cur.fetchall()
        print("named_denied", "NOT-DENIED")
    except psycopg.Error as e:
        print("named_denied", e.sqlstate)
    conn.rollback()
    print("after_rollback", conn.execute("SELECT count(*) FROM events").fetchone()[0])
