// postgres.js (Porsager's `postgres`) as a masked identity through the clsf
// proxy (tests/tests/tools.rs runs it): named prepared statements, the
// array-type lookup it runs on connect, an enum, its helpers, a cursor,
// describe, a transaction, a multi-statement simple query and COPY TO.
// Usage: node postgresjs_tools.js HOST PORT DBNAME CA_FILE TOKEN
// Prints one `key value` line per check.
'use strict';
const fs = require('fs');
const postgres = require('postgres');
const [host, port, database, ca, token] = process.argv.slice(2, 7);
async function main() {
  const sql = postgres({ host, port: Number(port), database, username: 'workload', password: token,
    ssl: { ca: fs.readFileSync(ca, 'utf8'), servername: 'localhost', rejectUnauthorized: true }, connect_timeout: 10, max: 1 });
  let r = await sql`SELECT email, card_number FROM customers WHERE id = ${1}`;
  console.log('masked', r[0].email, r[0].card_number);
  r = await sql`SELECT id, state, requester FROM tickets ORDER BY id`;
  console.log('enum', r.length, r[0].state, r[0].requester);
  r = await sql`SELECT ${sql(['id', 'email'])} FROM customers WHERE id IN ${sql([2, 3])} ORDER BY id`;
  console.log('helpers', r.map((x) => x.email).join(' '));
  try { await sql`SELECT ssn FROM customers`; console.log('denied', 'NOT-DENIED'); }
  catch (e) { console.log('denied', e.code); }
  let n = 0, last;
  await sql`SELECT id, contact FROM events ORDER BY id`.cursor(100, (rows) => { n += rows.length; last = rows[rows.length - 1].contact; });
  console.log('cursor', n, last);
  const d = await sql`SELECT email FROM customers WHERE id = ${1}`.describe();
  console.log('describe', d.columns.map((c) => c.name).join(' '));
  r = await sql.begin(async (tx) => tx`SELECT json_agg(email) AS j FROM customers`);
  console.log('tx', r[0].j[0]);
  r = await sql.unsafe('SELECT email FROM customers WHERE id = 4; SELECT 1 AS one');
  console.log('unsafe', r[0][0].email, r[1][0].one);
  const chunks = [];
  const stream = await sql`COPY (SELECT id, email FROM customers ORDER BY id) TO STDOUT`.readable();
  for await (const c of stream) chunks.push(c);
  console.log('copy', Buffer.concat(chunks).toString().trim().split('\n').length);
  await sql.end();
}
main().catch((e) => { console.error(e); process.exit(1); });
