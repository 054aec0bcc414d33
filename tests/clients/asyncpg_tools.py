"""asyncpg as a masked identity through the clsf proxy: prepared statements
(asyncpg prepares every query), type introspection for a type it does not
know, portal-backed cursors, COPY of a query and a pool whose release
resets the session (tests/tests/tools.rs runs it).

Usage: asyncpg_tools.py HOST PORT DBNAME CA_FILE TOKEN

Prints one `key value` line per check. Exits non-zero on anything
unexpected.
"""
import asyncio
import io
import json
import ssl
import sys

import asyncpg

host, port, dbname, ca, token = sys.argv[1:6]
tls = ssl.create_default_context(cafile=ca)


def options():
    return dict(host=host, port=int(port), database=dbname, user="workload",
                password=token, ssl=tls, timeout=10)


async def main():
    conn = await asyncpg.connect(**options())
    row = await conn.fetchrow(
        "SELECT email, card_number FROM customers WHERE id = $1", 1)
    print("masked", row["email"], row["card_number"])

    # An enum asyncpg has no codec for: it introspects pg_type first.
    rows = await conn.fetch(
        "SELECT id, state, requester FROM tickets ORDER BY id")
    print("enum", len(rows), rows[0]["state"], rows[0]["requester"])

    # A codec set by name looks the type up in the catalogs.
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads,
                              schema="pg_catalog")
    doc = await conn.fetchval(
        "SELECT json_build_object('email', email) FROM customers WHERE id = 2")
    print("json", doc["email"])

    stmt = await conn.prepare("SELECT email FROM customers WHERE id = $1")
    print("prepared", [a.name for a in stmt.get_attributes()][0],
          await stmt.fetchval(3))

    try:
        await conn.fetch("SELECT ssn FROM customers")
        print("denied", "NOT-DENIED")
    except asyncpg.PostgresError as e:
        print("denied", e.sqlstate)
    print("after_denial", await conn.fetchval("SELECT count(*) FROM orders"))

    # A cursor is a portal read 100 rows per Execute.
    async with conn.transaction():
        contacts = [r["contact"] async for r in conn.cursor(
            "SELECT id, contact FROM events ORDER BY id", prefetch=100)]
    print("cursor", len(contacts), contacts[-1])

    # executemany pipelines its Bind/Execute pairs before one Sync.
    await conn.executemany(
        "SELECT email FROM customers WHERE id = $1", [(i,) for i in range(1, 5)])
    try:
        await conn.executemany(
            "SELECT ssn FROM customers WHERE id = $1", [(1,), (2,)])
        print("executemany", "NOT-DENIED")
    except asyncpg.PostgresError as e:
        print("executemany", e.sqlstate)

    out = io.BytesIO()
    await conn.copy_from_query(
        "SELECT id, email FROM customers ORDER BY id", output=out,
        format="csv")
    lines = out.getvalue().decode().splitlines()
    print("copy", len(lines), lines[0].split(",")[1])
    await conn.close()

    # A pool resets each connection it takes back (advisory locks, cursors,
    # listeners, settings) before handing it out again.
    pool = await asyncpg.create_pool(min_size=1, max_size=1, **options())
    counts = []
    for _ in range(3):
        async with pool.acquire() as c:
            counts.append(await c.fetchval("SELECT count(*) FROM customers"))
    print("pool", *counts)
    await pool.close()


asyncio.run(main())
