"""psycopg 3's pipeline mode as a masked identity through the clsf proxy:
many statements sent before one Sync, a refused one among them, and the
session usable after (tests/tests/tools.rs runs it).

Usage: psycopg_pipeline.py HOST PORT DBNAME CA_FILE TOKEN

Prints one `key value` line per check. Exits non-zero on anything
unexpected.
"""
import sys

import psycopg

host, port, dbname, ca, token = sys.argv[1:6]

with psycopg.connect(
    host=host, hostaddr="127.0.0.1", port=port, dbname=dbname,
    user="workload", password=token, sslmode="verify-full",
    sslrootcert=ca, connect_timeout=10, autocommit=True,
) as conn:
    # Twenty queries in flight before the first result is read.
    with conn.pipeline():
        curs = [conn.execute("SELECT id, contact FROM events WHERE id = %s", (i,))
                for i in range(1, 21)]
    rows = [c.fetchone() for c in curs]
    print("pipelined", len(rows), rows[-1][0], rows[-1][1])

    # A refused statement in the middle of a pipeline: it fails, the ones
    # after it in the same batch are skipped, and the connection goes on.
    first = later = None
    try:
        with conn.pipeline() as p:
            first = conn.execute("SELECT email FROM customers WHERE id = %s", (1,))
            conn.execute("SELECT ssn FROM customers WHERE id = %s", (1,))
            later = conn.execute("SELECT email FROM customers WHERE id = %s", (2,))
            p.sync()
        print("refused", "NOT-REFUSED")
    except psycopg.errors.InsufficientPrivilege as e:
        print("refused", e.sqlstate, first.fetchone()[0])
    if later is None:
        # psycopg raised the refusal while queueing the statement after it
        # (the error had already arrived): that one is skipped as well, by
        # the server, until the Sync.
        print("skipped", "yes")
    else:
        try:
            later.fetchone()
            print("skipped", "NOT-SKIPPED")
        except psycopg.Error:
            print("skipped", "yes")
    print("after", conn.execute("SELECT count(*) FROM orders").fetchone()[0])

    # executemany pipelines its executions.
    with conn.cursor() as cur:
        cur.executemany("SELECT email FROM customers WHERE id = %s",
                        [(i,) for i in range(1, 5)], returning=True)
        emails = []
        while True:
            emails.append(cur.fetchone()[0])
            if not cur.nextset():
                break
    print("executemany", len(emails), emails[-1])
