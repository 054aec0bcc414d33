// node-postgres with pg-cursor and pg-copy-streams as a masked identity
// through the clsf proxy (tests/tests/tools.rs runs it). Usage:
//   node node_tools.js HOST PORT DBNAME CA_FILE TOKEN
// Prints one `key value` line per check.
'use strict';
const fs = require('fs');
const { Client } = require('pg');
const Cursor = require('pg-cursor');
const { to: copyTo } = require('pg-copy-streams');

const [host, port, database, ca, token] = process.argv.slice(2, 7);

function client() {
  return new Client({
    host, port: Number(port), database, user: 'workload', password: token,
    connectionTimeoutMillis: 10000,
    ssl: { ca: fs.readFileSync(ca, 'utf8'), servername: 'localhost', rejectUnauthorized: true },
  });
}

async function main() {
  const c = client();
  await c.connect();
  if (!c.connection.stream.encrypted) throw new Error('not TLS');
  let r = await c.query(
    "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
    ['customers']);
  console.log('columns', r.rows.map((x) => x.column_name).join(' '));
  r = await c.query({ text: 'SELECT email FROM customers WHERE id = $1', values: [3], rowMode: 'array' });
  console.log('masked', r.rows[0][0]);
  try {
    await c.query('SELECT ssn FROM customers');
    console.log('denied', 'NOT-DENIED');
  } catch (e) {
    console.log('denied', e.code);
  }
  r = await c.query('SELECT count(*)::int AS n FROM orders');
  console.log('after_denial', r.rows[0].n);

  // pg-cursor: a portal read in batches (Execute with a row limit).
  const cursor = c.query(new Cursor('SELECT id, contact FROM events ORDER BY id', [], { rowMode: 'array' }));
  let n = 0;
  let first = null;
  for (;;) {
    const rows = await cursor.read(1000);
    if (rows.length === 0) break;
    if (first === null) first = rows[0][1];
    n += rows.length;
  }
  await cursor.close();
  console.log('cursor', n, first);

  // pg-copy-streams: COPY TO STDOUT of a query, masked.
  const chunks = [];
  await new Promise((resolve, reject) => {
    const stream = c.query(copyTo('COPY (SELECT id, email FROM customers ORDER BY id) TO STDOUT'));
    stream.on('data', (d) => chunks.push(d));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const lines = Buffer.concat(chunks).toString('utf8').trim().split('\n');
  console.log('copy', lines.length, lines[0].replace('\t', ' '));

  // A refused COPY leaves the connection usable.
  try {
    await new Promise((resolve, reject) => {
      const stream = c.query(copyTo('COPY (SELECT ssn FROM customers) TO STDOUT'));
      stream.on('data', () => {});
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    console.log('copy_denied', 'NOT-DENIED');
  } catch (e) {
    console.log('copy_denied', e.code);
  }
  r = await c.query('SELECT 1 AS one');
  console.log('after_copy', r.rows[0].one);
  await c.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
