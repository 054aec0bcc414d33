-- policy: the live orders gained a column `extra` after the lock was pulled
-- (a migration ran; the lock and the policy were not rebuilt). `orders`
-- is all clear to `ci`, so without the comparison it would be forwarded
-- as written and `extra` read in clear, unclassified.
-- as ci

-- Read through the lock's columns: `*` and a whole row yield what the
-- policy knows.
SELECT * FROM orders;

SELECT o FROM orders o WHERE o.id = 1;

SELECT id, status FROM orders;

TABLE orders;

-- Naming the new column: it does not exist for the policy.
SELECT extra FROM orders;

SELECT o.extra FROM orders o;

-- A relation that did not drift is decided as before.
SELECT id, name FROM customers;

-- Writes are forwarded as written: one that takes the relation whole is
-- refused, one that names its columns goes.
UPDATE orders SET status = 'paid' WHERE id = 1;

UPDATE orders SET status = 'paid' WHERE id = 1 RETURNING *;

UPDATE orders SET status = 'paid' WHERE id = 1 RETURNING id, status;

INSERT INTO orders (customer_id, total_cents, status) VALUES (1, 100, 'new') RETURNING orders;

DELETE FROM orders WHERE id = 1;

WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) SELECT count(*) FROM d;

-- A data-modifying part that names what it returns writes the table
-- itself; the query's other reads of it go through the lock's columns.
WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING id) SELECT count(*) FROM d JOIN orders o ON o.customer_id = d.id;

-- A copy into a new relation could carry the new column.
CREATE TABLE o2 AS SELECT id FROM orders;

-- as dba-bot

-- An identity that reads everything in clear holds `ddl` and `admin`: it
-- is trusted with the schema entirely (it may add the column, and run
-- `DO` blocks that read it), so its statements pass unanalysed and its
-- migrations are not refused while the lock lags.
SELECT * FROM orders;

SELECT extra FROM orders;

UPDATE orders SET extra = 'x' RETURNING *;
