// node-postgres (npm `pg`) through the clsf proxy (tests/tests/clients.rs
// runs it). Usage:
//   node node_pg_check.js HOST PORT DBNAME CA_FILE MASKED_TOKEN CLEAR_TOKEN
// Prints one `key value` line per check, like the other client programs.
'use strict';
const fs = require('fs');
const { Client } = require('pg');

const [host, port, database, ca, maskedToken, clearToken] = process.argv.slice(2, 8);

function client(token, extra) {
  return new Client({
    host, port: Number(port), database, user: 'workload', password: token,
    connectionTimeoutMillis: 10000,
    // Verify the proxy's certificate against the test CA, by name.
    ssl: { ca: fs.readFileSync(ca, 'utf8'), servername: 'localhost', rejectUnauthorized: true },
    ...extra,
  });
}

async function main() {
  const c = client(maskedToken);
  await c.connect();
  if (!c.connection.stream.encrypted) throw new Error('not TLS');
  // Parameters: the extended protocol with an unnamed statement.
  let r = await c.query({ text: 'SELECT email, card_number FROM customers WHERE id = $1', values: [1], rowMode: 'array' });
  console.log('masked', r.rows[0][0], r.rows[0][1]);
  const b = client(maskedToken, { binary: true });
  await b.connect();
  // node-postgres 8 decodes a binary int4 as text ("NaN\u0002", seen
  // directly against PostgreSQL too), so the id is cast to text here; the
  // whole row still travels in binary format.
  r = await b.query({ text: 'SELECT id::text, email FROM customers WHERE id = $1', values: [2], rowMode: 'array' });
  if (r.fields.some((f) => f.format !== 'binary')) throw new Error('not binary');
  console.log('binary', r.rows[0][0], r.rows[0][1]);
  await b.end();
  // A named prepared statement, executed several times.
  const emails = [];
  for (const i of [1, 2, 3]) {
    r = await c.query({ name: 'email_by_id', text: 'SELECT email FROM customers WHERE id = $1', values: [i], rowMode: 'array' });
    emails.push(r.rows[0][0]);
  }
  console.log('prepared', emails.join(' '));
  // node-postgres queues queries; sent together they pipeline on the socket.
  const [p1, p2] = await Promise.all([
    c.query({ text: 'SELECT count(*) FROM orders WHERE status = $1', values: ['shipped'], rowMode: 'array' }),
    c.query({ text: 'SELECT email FROM customers WHERE id = $1', values: [4], rowMode: 'array' }),
  ]);
  console.log('pipeline', p1.rows[0][0], p2.rows[0][0]);
  try {
    await c.query({ text: 'SELECT ssn FROM customers WHERE id = $1', values: [1] });
    console.log('denied', 'NOT-DENIED');
  } catch (e) {
    console.log('denied', e.code);
  }
  r = await c.query({ text: 'SELECT $1::int + 1', values: [41], rowMode: 'array' });
  console.log('after_denial', r.rows[0][0]);
  await c.query('BEGIN');
  try {
    await c.query('SELECT ssn FROM customers');
    console.log('in_tx', 'NOT-DENIED');
  } catch (e) {
    console.log('in_tx', e.code);
  }
  await c.query('ROLLBACK');
  r = await c.query({ text: 'SELECT count(*) FROM customers', rowMode: 'array' });
  console.log('after_rollback', r.rows[0][0]);
  await c.end();

  const d = client(clearToken);
  await d.connect();
  r = await d.query({ text: 'SELECT email, card_number FROM customers WHERE id = $1', values: [1], rowMode: 'array' });
  console.log('clear', r.rows[0][0], r.rows[0][1]);
  await d.end();
}

main().catch((e) => { console.error(e); process.exit(1); });
