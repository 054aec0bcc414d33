-- policy: ci sees one customer's orders
-- Row filters are security barriers: the filtered subquery ends in
-- OFFSET 0 so no condition of the client's runs before the filter, except
-- the leakproof comparisons copied inside it (so indexes still serve).
-- as ci

SELECT id, status FROM orders WHERE id = 10;

SELECT id FROM orders WHERE status::bool;

SELECT id FROM orders WHERE id = 10 AND 1 / (total_cents - 770) = 0;

SELECT * FROM orders WHERE id = $1 AND status IN ('a', 'b') AND total_cents NOT BETWEEN -5 AND 100 AND customer_id IS NOT NULL;

SELECT id FROM orders WHERE (id = 10 AND status <> 'it''s') AND 10 <= total_cents;

SELECT id FROM orders WHERE id = 10 OR id = 11;

SELECT id FROM orders WHERE id = 10.5 AND id = 99999999999999999999 AND id = customer_id AND status = lower('X');

SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = 'shipped' AND c.id = 1 AND status = 'x';

SELECT c.name, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.total_cents > 100;

SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total_cents > 5000);

SELECT orders.id FROM orders AS o2, orders WHERE orders.id = 1 AND o2.id = 2;

UPDATE orders SET status = 'x' WHERE id = 13;

DELETE FROM orders WHERE id = 13;

INSERT INTO orders (id, customer_id, total_cents, status) VALUES (99, 2, 1, 'x');

UPDATE orders SET status = 'x' WHERE id = 13 RETURNING total_cents;

COPY orders TO STDOUT;

COPY orders FROM STDIN;

-- System columns of a filtered relation ride in its subquery; a `*` or
-- `t.*` over the relation is then written out as its columns (an
-- alias's column list renames the first ones), so the client gets the
-- row it asked for. A row expansion that cannot be written out would
-- carry them: refused.

SELECT ctid, * FROM orders WHERE ctid > $1 LIMIT 100;

SELECT o.*, o.xmin FROM public.orders AS o (i, c) WHERE o.i = 10;

SELECT "public"."orders".*, "public"."orders"."ctid" FROM "public"."orders";

SELECT *, orders.ctid FROM orders, generate_series(1, 2) g;

SELECT row_to_json(o), o.ctid FROM orders o;

SELECT json_agg(o.*), max(o.xmin::text) FROM orders o;

-- Under a row filter, conditions are copied into the filtered subquery
-- from the text decided: forms decided as another form are not taken
-- there (refused as unparsable, as before).
-- as ci

SELECT id FROM orders WHERE id BETWEEN SYMMETRIC 5 AND 1;

SELECT id FROM orders WHERE status = concat_ws(',', VARIADIC ARRAY['a']);
