-- Writes by the quickstart's `ci`, which may write orders but reads
-- customers with email and card_number masked and ssn denied. A write is
-- forwarded as written, so it may read a relation with something withheld
-- only through columns the identity reads in clear: as ORMs filter,
-- join and copy by keys and names.
-- as ci

INSERT INTO orders (id, customer_id, total_cents, status) SELECT 600, id, 1, 'x' FROM customers WHERE name = 'Ada Lovelace' RETURNING id;

UPDATE orders SET total_cents = total_cents + 1 WHERE customer_id IN (SELECT id FROM customers WHERE name LIKE 'A%') RETURNING id;

DELETE FROM orders USING customers c WHERE c.id = orders.customer_id AND c.name = 'Grace Hopper';

UPDATE orders o SET status = c.name FROM customers c WHERE c.id = o.customer_id;

UPDATE "orders" SET "status" = 'x' WHERE "orders"."id" IN (SELECT U0."id" FROM "orders" U0 INNER JOIN "customers" U1 ON (U0."customer_id" = U1."id") WHERE U1."name" = 'Ada Lovelace');

INSERT INTO orders AS o (id, customer_id, total_cents, status) VALUES (10, 1, 1, 'x') ON CONFLICT (id) DO UPDATE SET status = excluded.status WHERE o.status <> 'cancelled' RETURNING o.id;

INSERT INTO orders (id, customer_id, total_cents, status) SELECT 601, id, 1, 'y' FROM customers WHERE id = 1 ON CONFLICT ON CONSTRAINT orders_pkey DO NOTHING;

-- Refused: a masked column would be copied, compared or returned in clear.

INSERT INTO orders (id, customer_id, total_cents, status) SELECT 602, id, 1, email FROM customers WHERE id = 1;

DELETE FROM orders USING customers c WHERE c.id = orders.customer_id AND c.email = 'ada@example.com';

UPDATE orders o SET status = 'x' FROM customers c WHERE c.id = o.customer_id RETURNING c.card_number;

INSERT INTO orders (id, customer_id, total_cents, status) VALUES (10, 1, 1, 'x') ON CONFLICT (id) DO UPDATE SET status = (SELECT email FROM customers WHERE id = 1);

INSERT INTO orders (id, customer_id, total_cents, status) SELECT 10, id, 1, email FROM customers ON CONFLICT (id) DO UPDATE SET total_cents = 0;

-- Refused: a denied column, however it is used; a whole row carries it.

UPDATE orders SET status = 'x' WHERE customer_id IN (SELECT id FROM customers WHERE ssn LIKE '1%');

INSERT INTO orders (id, customer_id, total_cents, status) VALUES (10, 1, 1, 'x') ON CONFLICT (id) DO UPDATE SET status = 'y' WHERE EXISTS (SELECT 1 FROM customers WHERE ssn = '123-45-6789');

INSERT INTO orders (id, customer_id, total_cents, status) SELECT 603, 1, 1, c::text FROM customers c WHERE c.id = 1;

-- Refused: customers is not writable by ci.

UPDATE customers SET name = 'x' WHERE id = 1;

WITH d AS (DELETE FROM customers WHERE id = 1 RETURNING *) SELECT * FROM d;

-- Queries with data-modifying parts (PostgREST's and Hasura's writes,
-- which embed related rows in what they return): the parts that write may
-- use only clear columns, CTEs they read included; what the rest of the
-- query reads is masked as in any read.

WITH x AS (SELECT id FROM customers WHERE name LIKE 'A%') UPDATE orders SET status = 'z' WHERE customer_id IN (SELECT id FROM x);

WITH pgrst_source AS (UPDATE orders SET status = 'x' WHERE id = 10 RETURNING orders.*) SELECT s.id, s.status, c.email FROM pgrst_source s JOIN customers c ON c.id = s.customer_id;

WITH s AS (SELECT id, name FROM customers) INSERT INTO orders (id, customer_id, total_cents, status) SELECT 700, id, 1, name FROM s WHERE id = 1 RETURNING id;

WITH s AS (SELECT id, email FROM customers) INSERT INTO orders (id, customer_id, total_cents, status) SELECT 700, id, 1, email FROM s WHERE id = 1;

WITH u AS (UPDATE orders SET status = c.email FROM customers c WHERE c.id = orders.customer_id RETURNING orders.id) SELECT * FROM u;

-- Locks read nothing, but all but ACCESS SHARE block the table's writers:
-- like PostgreSQL's privileges, they need the write right (row locks on
-- one column of each table locked, LOCK TABLE on every column).

SELECT id, status FROM orders WHERE id = 10 FOR UPDATE;

SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.name = 'Ada Lovelace' FOR NO KEY UPDATE OF o SKIP LOCKED;

SELECT id FROM orders WHERE customer_id IN (SELECT id FROM customers) FOR SHARE;

SELECT id, name FROM customers WHERE id = 1 FOR UPDATE;

SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id FOR KEY SHARE;

SELECT * FROM (SELECT id FROM customers) s FOR UPDATE;

LOCK TABLE customers IN ACCESS SHARE MODE;

LOCK TABLE orders IN ROW EXCLUSIVE MODE NOWAIT;

LOCK TABLE customers;

LOCK TABLE public.customers IN SHARE MODE;

-- MERGE reads its source as UPDATE … FROM does.

MERGE INTO orders o USING customers c ON o.customer_id = c.id AND c.name = 'Ada Lovelace' WHEN MATCHED AND o.status <> 'cancelled' THEN UPDATE SET status = c.name WHEN NOT MATCHED THEN INSERT (id, customer_id, total_cents, status) VALUES (c.id + 100, c.id, 0, 'new');

MERGE INTO orders o USING (SELECT id, name FROM customers) c ON o.customer_id = c.id WHEN MATCHED THEN DELETE;

MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN NOT MATCHED THEN INSERT VALUES (c.id + 100, c.id, 0, c.card_number);

-- A positioned write (`WHERE CURRENT OF`, which sqlparser does not parse)
-- is decided as a write of the whole table and forwarded as written; the
-- session checks the cursor is one it declared with SQL.
-- as ci

UPDATE orders SET status = 'x' WHERE CURRENT OF c;

DELETE FROM orders WHERE CURRENT OF "C" RETURNING id;

UPDATE customers SET name = 'x' WHERE CURRENT OF c;

UPDATE orders SET status = (SELECT email FROM customers LIMIT 1) WHERE CURRENT OF c;

-- `RETURNING *` of the written table alone is written out as the lock's
-- columns: a column the live table gained a moment ago, before any
-- comparison of the catalog found it, is not returned. With `FROM` or
-- `USING`, `*` spans other tables too and is left as written.
-- as ci

UPDATE orders SET status = 'x' WHERE id = 1 RETURNING *;

DELETE FROM orders o WHERE o.id = 1 RETURNING o.*;

INSERT INTO orders AS o (id, customer_id, total_cents, status) VALUES (1, 1, 1, 'x') ON CONFLICT (id) DO NOTHING RETURNING *, o.id;

UPDATE orders o SET status = c.name FROM customers c WHERE c.id = o.customer_id RETURNING *;
