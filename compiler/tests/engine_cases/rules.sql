-- policy: rules
-- The policy of rules.rs (patterns, categories, overrides, row filters,
-- approvals, usage grants, observe-only rules), each statement decided for
-- the verified claims above it: whole verdicts.

-- claims {"iss": "https://issuer.example", "repository": "acme/shop", "ref": "refs/heads/main"}
-- email and name are pii by pattern (the pattern's mask); card_number is
-- pci, masked `with first(2)` by the rule instead of its own last(4).

SELECT name, email, card_number FROM customers;

-- claims {"team": "support", "customer": 1}
-- email: pii, masked by hash for support, but an override reads it clear;
-- name is hashed with the session's pads, never the key.

SELECT email FROM customers;

SELECT name FROM customers;

-- pci needs approval: held; once approved the card number is read in
-- clear while the rest of the relation stays masked.

SELECT card_number FROM customers;

-- A query with no rows by its text that only projects the pci column (and
-- the denied ssn) is not held: both ride as NULLs. One that may return
-- rows is held for the card number, or refused for ssn.

SELECT * FROM customers LIMIT 0;

SELECT id, card_number FROM customers WHERE 1 = 0;

SELECT id, card_number FROM customers WHERE 1 = 1;

SELECT * FROM customers LIMIT 1;

-- Row filters bind the claim as a literal, quotes and all.
-- claims {"team": "support", "customer": "1' OR '1'='1"}

SELECT id FROM orders;

-- claims {"team": "support"}

SELECT id FROM orders;

-- claims {"kubernetes.io": {"namespace": "batch"}}
-- Usage grants: customers.id joined or filtered passes in clear, nothing
-- withheld is output; read, grouped or computed it is refused.

SELECT o.id, o.status FROM orders o JOIN customers c ON c.id = o.customer_id;

SELECT count(*) FROM customers WHERE id = 7;

SELECT o.id FROM orders o WHERE o.customer_id IN (SELECT c.id FROM customers c WHERE c.id BETWEEN $1 AND 9);

SELECT c.id FROM customers c;

SELECT k FROM customers AS c(k);

WITH x AS (SELECT id AS k FROM customers) SELECT o.id FROM orders o JOIN x ON x.k = o.customer_id ORDER BY x.k;

SELECT count(*) FROM customers GROUP BY id;

SELECT count(*) FROM customers WHERE id::text = 'x';

SELECT o.id FROM orders o JOIN customers c ON c.id + 0 = o.customer_id;

SELECT row_number() OVER w FROM customers c WINDOW w AS (ORDER BY c.id);

-- A write beside a read the grant passes: the read is pinned through
-- subqueries, the written table stays the table it writes.
-- claims {"kubernetes.io": {"namespace": "writer"}}

WITH d AS (DELETE FROM orders WHERE id = 9 RETURNING customer_id) SELECT count(*) FROM d JOIN customers c ON c.card_number = '4111' AND c.id = d.customer_id;

WITH u AS (UPDATE orders SET status = 'x' WHERE customer_id IN (SELECT id FROM customers WHERE card_number = '4111') RETURNING id) SELECT count(*) FROM u;

UPDATE orders o SET status = 'x' FROM customers c WHERE c.card_number = '4111' AND c.id = o.customer_id;

INSERT INTO orders (id, customer_id, total_cents, status) SELECT 9, c.id, 1, 'x' FROM customers c WHERE c.card_number = '4111';

WITH d AS (DELETE FROM orders o USING customers c WHERE c.card_number = '4111' AND c.id = o.customer_id RETURNING o.id) SELECT count(*) FROM d;

-- What a part returns is read by position: the written table's own
-- columns (all clear) may be; another relation's withheld ones may not.

WITH d AS (UPDATE orders o SET status = 'x' FROM customers c WHERE c.card_number = '4111' AND c.id = o.customer_id RETURNING o.*) SELECT * FROM d AS x(a, b, k);

WITH d AS (UPDATE orders o SET status = 'x' FROM customers c WHERE c.card_number = '4111' AND c.id = o.customer_id RETURNING *) SELECT count(*) FROM d;

-- claims {"kubernetes.io": {"namespace": "batch"}}

-- Aggregates only: summed yes, read no, computed no; max returns a stored
-- value as it is.

SELECT sum(total_cents), count(*) FROM orders;

SELECT id, total_cents FROM orders;

SELECT sum(total_cents / 0) FROM orders;

SELECT max(total_cents) FROM orders;

-- claims {"team": "trial"}
-- Observe-only rules deny nothing: email is read in clear.

SELECT email, id FROM customers;

SELECT status FROM orders;

-- trial reads orders in clear but may not write it: a write in a query's
-- body or in its CTE needs `write` like a plain one (an INSERT's target
-- is no FROM entry, and was once let through).

WITH x AS (SELECT 1) INSERT INTO orders (id, customer_id, total_cents, status) VALUES (9, 1, 1, 'x');

WITH x AS (INSERT INTO orders (id, customer_id, total_cents, status) VALUES (9, 1, 1, 'x') RETURNING id) SELECT * FROM x;

WITH x AS (SELECT 1) UPDATE orders SET status = 'y';

INSERT INTO orders (id, customer_id, total_cents, status) VALUES (9, 1, 1, 'x');

-- `COPY (INSERT … RETURNING …) TO STDOUT` is a write and an export of
-- what it returns: refused without `write` (trial) or without `export`
-- (ci, which may write orders), run with both (leads).

COPY (INSERT INTO orders (id, customer_id, total_cents, status) VALUES (9, 1, 1, 'x') RETURNING id) TO STDOUT;

-- claims {"iss": "https://issuer.example", "repository": "acme/shop", "ref": "refs/heads/main"}

COPY (INSERT INTO orders (id, customer_id, total_cents, status) VALUES (9, 1, 1, 'x') ON CONFLICT (id) DO UPDATE SET status = orders.status RETURNING *) TO STDOUT;

COPY (WITH d AS (DELETE FROM orders WHERE id = 9 RETURNING total_cents) SELECT * FROM d) TO STDOUT;

-- claims {"team": "leads"}

COPY (INSERT INTO orders (id, customer_id, total_cents, status) VALUES (9, 1, 1, 'x') RETURNING id) TO STDOUT;

-- claims {"kubernetes.io": {"namespace": "batch"}}
-- A CTE named like the row-limited relation it reads: the reference
-- inside is the relation, which would go uncounted; refused.

WITH orders AS (SELECT id, status FROM orders) SELECT id, status FROM orders;

-- NOTIFY is decided as a call of `pg_notify`: allowed by trusted_reads'
-- `allow function`, refused by its class for support, and by k8s_reads'
-- `deny function`.

-- claims {"iss": "https://issuer.example", "repository": "acme/shop", "ref": "refs/heads/main"}

NOTIFY jobs, 'run 7';

SELECT pg_notify('jobs', 'run 7');

-- claims {"team": "support", "customer": 1}

NOTIFY jobs;

-- claims {"kubernetes.io": {"namespace": "batch"}}

NOTIFY jobs;

SELECT pg_notify('jobs', 'run 7');

-- A procedure a rule allows by name may be called, with arguments that
-- read no relation.

-- claims {"iss": "https://issuer.example", "repository": "acme/shop", "ref": "refs/heads/main"}

CALL archive_orders(30);

CALL archive_orders((SELECT max(id) FROM orders));

CALL other_procedure();

-- A recursive CTE's SEARCH/CYCLE compares the CTE's values across rows, a
-- use the analysis without the clauses does not see: for an identity with
-- a `use` grant (here join and filter on customers.id) it stays refused as
-- unparsed, so a column passed in clear for joins never reaches it.
-- claims {"kubernetes.io": {"namespace": "batch"}}

WITH RECURSIVE t(id) AS (SELECT id FROM customers UNION ALL SELECT id FROM t WHERE false) CYCLE id SET is_cycle USING path SELECT count(*) FROM t;
