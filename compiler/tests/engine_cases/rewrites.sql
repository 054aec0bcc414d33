-- Reads by the quickstart's `ci` (email and card_number masked, ssn
-- denied) and `dba-bot` (everything in clear): whole verdicts.
-- as ci

SELECT email, card_number FROM customers WHERE id = 1;

SELECT c.email FROM public."customers" AS c;

SELECT 'ünïcødé', email FROM customers;

SELECT x FROM (SELECT email AS x FROM customers) s JOIN orders o ON true;

SELECT * FROM orders WHERE customer_id IN (SELECT id FROM customers);

WITH recent AS (SELECT customer_id FROM orders) SELECT c.name, c.email FROM customers c JOIN recent r ON r.customer_id = c.id;

SELECT id, status FROM orders ORDER BY id;

SELECT count(*) FROM customers;

-- as dba-bot

SELECT ssn, email FROM customers;

-- Columns qualified by schema and relation, as Prisma and jOOQ write
-- them: once the relation is the masking subquery, the schema goes.
-- as ci

SELECT "public"."customers"."id", "public"."customers"."email" FROM "public"."customers" WHERE "public"."customers"."id" = $1 LIMIT $2 OFFSET $3;

SELECT public.orders.*, public.customers.name FROM customers JOIN public.orders ON public.orders.customer_id = public.customers.id;

SELECT c.email FROM public.customers c WHERE c.id IN (SELECT public.customers.id FROM public.customers);

-- Inheritance markers: the subquery replaces `ONLY t` (pg_dump's
-- `--inserts` reads `SELECT * FROM ONLY t`) and carries the `ONLY`;
-- `t *` is PostgreSQL's default and goes.

SELECT id, email FROM ONLY customers WHERE id = 1;

SELECT c.email FROM ONLY /* no descendants */ (public.customers) c;

SELECT email FROM customers * ORDER BY 1;

-- Operators written OPERATOR(pg_catalog.op), as pg_dump and psql write
-- their catalog queries (sqlparser does not take the form before ANY):
-- decided and forwarded with the plain operator.

SELECT c.oid FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']) AND c.relname OPERATOR(pg_catalog.~) '^(customers)$' COLLATE pg_catalog.default;

SELECT email FROM customers WHERE id OPERATOR(pg_catalog.=) ANY ('{1,2}');

SELECT email FROM customers WHERE id OPERATOR(public.=) ANY ('{1,2}');

-- TABLESAMPLE samples tables, not subqueries: it moves into the masking
-- subquery, after an alias and its column list too.

SELECT c.email, c.card_number FROM customers c TABLESAMPLE SYSTEM (100);

SELECT e FROM customers AS c (i, n, e) TABLESAMPLE BERNOULLI (50) REPEATABLE (42) JOIN orders o ON o.customer_id = c.i;

-- Row locks sqlparser does not parse (Hibernate's and Rails' `FOR NO KEY
-- UPDATE`, `FOR KEY SHARE`): decided as FOR UPDATE / FOR SHARE, the
-- client's lock strength forwarded. ci may lock rows of orders (it may
-- write them), not of customers (writes.sql).

select c1_0.id,c1_0.email from customers c1_0 join orders o1_0 on o1_0.customer_id=c1_0.id where c1_0.id=$1 for no key update of o1_0;

SELECT status FROM orders WHERE id = 10 FOR KEY SHARE OF orders NOWAIT;

SELECT ssn FROM customers FOR NO KEY UPDATE;

-- System columns of a masked relation ride in its subquery (CDC
-- connectors page keyless tables by `ctid`, ODBC re-reads rows by it,
-- EF Core reads `xmin`). Row expansions are in row_filters.sql.

SELECT ctid, email FROM customers WHERE ctid > $1 LIMIT 100;

SELECT o.id, c.tableoid::regclass, c.email FROM orders o JOIN customers c ON c.id = o.customer_id;

SELECT c.ctid, o.* FROM customers c JOIN orders o ON o.customer_id = c.id;

SELECT "public"."customers"."ctid", "public"."customers"."email" FROM "public"."customers";

-- Refused: the row expansion would carry them (and reads ssn).

SELECT row_to_json(c), c.ctid FROM customers c;

-- SQL's value functions (the clock, the session's schema and user),
-- GROUPING, named arguments and normal forms are no column and no
-- unknown function.

SELECT email FROM customers WHERE created_at > CURRENT_TIMESTAMP - INTERVAL '1 day' AND created_at < current_date + 1;

SELECT LOCALTIMESTAMP(3), localtime, current_time, current_schema, current_user, email FROM customers;

SELECT status, GROUPING(status), count(*) FROM orders GROUP BY ROLLUP (status);

SELECT email FROM customers WHERE created_at > now() - make_interval(days => 30) AND normalize(name, NFC) = 'x';

-- A field of a composite value is no column: `(c).f` reads what `c`
-- stands for (here a whole row, so every column of it).

SELECT (o).status, (o).id FROM (SELECT orders AS o FROM orders) s;

SELECT (c).email FROM (SELECT customers AS c FROM customers) s;

-- Transaction modes sqlparser does not parse (`DEFERRABLE`, as reporting
-- jobs and pg_dump --serializable-deferrable begin): decided without the
-- mode, forwarded with it. Only a transaction statement's mode.

BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE;

START TRANSACTION DEFERRABLE, READ ONLY;

SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY NOT DEFERRABLE;

BEGIN DEFERRABLE; SELECT ssn FROM customers;

-- Settings the proxy pins, set to the pinned values as frameworks do on
-- connect (Rails): no change. Any other value stays refused.

SET standard_conforming_strings = on;

SET search_path TO public;

SET search_path TO "Public";

SET standard_conforming_strings = off;

-- A CTE's name is not in scope everywhere the statement names it (its
-- own definition reads the relation of that name), and never names a
-- write's target: a write is checked against the relation, and a read of
-- a name that is also a protected catalog or relation is checked as that.
-- as

WITH orders AS (SELECT 1) UPDATE orders SET status = 'x' WHERE id = 10;

-- as ci

WITH customers AS (SELECT 1) INSERT INTO customers (id, name, email) VALUES (99, 'a', 'b');

WITH customers AS (SELECT 1) DELETE FROM customers WHERE id = 1;

WITH pg_stat_activity AS (SELECT * FROM pg_stat_activity) SELECT query FROM pg_stat_activity;

WITH orders AS (SELECT * FROM orders WHERE status = 'shipped') SELECT count(*) FROM orders;

-- Forms sqlparser does not parse, decided as the form they read alike
-- and forwarded as written: `BETWEEN [A]SYMMETRIC` (the same bounds in
-- either order) and `COLLATION FOR (x)` (PostgreSQL's
-- `pg_collation_for`, decided like `pg_typeof`).
-- as ci

SELECT email FROM customers WHERE id NOT BETWEEN SYMMETRIC 5 AND 1;

SELECT c.id FROM customers c, orders o WHERE c.id BETWEEN ASYMMETRIC 1 AND 5 FOR NO KEY UPDATE OF o;

SELECT COLLATION FOR (email), COLLATION  FOR (name) FROM customers;

SELECT COLLATION FOR (ssn) FROM customers;

SELECT id FROM customers WHERE ssn BETWEEN SYMMETRIC 'a' AND 'b';

SELECT 'BETWEEN SYMMETRIC' AS "between", "collation" FROM (SELECT 1 AS "collation") s;

-- `VARIADIC` before a function's argument (the same function on the same
-- expressions) and a window frame's `EXCLUDE …` (which rows of the frame
-- an aggregate sees) are blanked out for the decision, and the client's
-- text is forwarded with them.

SELECT concat_ws(',', VARIADIC ARRAY[name, email]) FROM customers;

SELECT format('%s', VARIADIC ARRAY[ssn]) FROM customers;

SELECT sum(total_cents) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW EXCLUDE CURRENT ROW) FROM orders;

SELECT string_agg(email, ',') OVER (ORDER BY id RANGE UNBOUNDED PRECEDING EXCLUDE TIES), count(*) OVER (ORDER BY id GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE NO OTHERS) FROM customers;

SELECT max(ssn) OVER (ORDER BY id ROWS CURRENT ROW EXCLUDE GROUP) FROM customers;

-- `GROUP BY DISTINCT …` and `GROUP BY ALL …` (PostgreSQL 14: whether
-- duplicate grouping sets are removed) group the same columns; decided
-- without the quantifier, forwarded with it.

SELECT status, count(*) FROM orders GROUP BY DISTINCT ROLLUP (status), CUBE (customer_id);

SELECT email, count(*) FROM customers GROUP BY ALL email;

SELECT count(*) FROM customers GROUP BY DISTINCT ssn;

-- A recursive CTE's `SEARCH … SET c` and `CYCLE … SET c USING p`
-- (PostgreSQL 14) add columns computed from the CTE's own: decided
-- without the clauses, forwarded with them. Naming an added column is
-- followed only where nothing read is withheld; otherwise refused for
-- what clsf does not follow.

WITH RECURSIVE t(id, n) AS (SELECT id, 1 FROM orders UNION ALL SELECT id, n + 1 FROM t WHERE n < 3) SEARCH DEPTH FIRST BY id SET ord CYCLE id SET is_cycle USING path SELECT id, n, ord, is_cycle, path FROM t ORDER BY ord;

WITH RECURSIVE t(id, email) AS (SELECT id, email FROM customers UNION ALL SELECT id, email FROM t WHERE false) CYCLE id SET is_cycle TO 'Y' DEFAULT 'N' USING path SELECT id, email FROM t;

WITH RECURSIVE t(id, email) AS (SELECT id, email FROM customers UNION ALL SELECT id, email FROM t WHERE false) CYCLE id SET is_cycle USING path SELECT email, is_cycle FROM t;

WITH RECURSIVE t(id, s) AS (SELECT id, ssn FROM customers UNION ALL SELECT id, s FROM t WHERE false) CYCLE id SET is_cycle USING path SELECT id FROM t;

-- CTE names bind by scope, as PostgreSQL binds them: a reference reads
-- the CTE only where the CTE is in scope, never inside its own
-- (non-recursive) definition, and never as a write's target — also
-- inside a data-modifying CTE.
-- as

WITH orders AS (SELECT 1), d AS (UPDATE orders SET status = 'x' WHERE id = 10 RETURNING id) SELECT * FROM d;

WITH orders AS (SELECT 1 AS id) DELETE FROM orders WHERE id = 10;

WITH orders AS (SELECT 1 AS id), d AS (DELETE FROM orders USING orders o WHERE o.id = 10 RETURNING 1) SELECT * FROM d;

-- A data-modifying CTE whose returned rows the query reads, as PostgREST
-- and Hasura write: its name is the CTE's, not an unknown relation. A
-- write to a relation with anything withheld stays refused.
-- as ci

WITH upd AS (UPDATE orders SET status = 'x' WHERE id = 1 RETURNING *) SELECT * FROM upd;

WITH pgrst_source AS (INSERT INTO orders (id, customer_id, total_cents, status) VALUES (5, 1, 100, 'new') RETURNING orders.*) SELECT '' AS total_result_set, count(pgrst_source) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body FROM (SELECT pgrst_source.* FROM pgrst_source) _postgrest_t;

WITH upd AS (UPDATE customers SET name = 'x' WHERE id = 1 RETURNING *) SELECT * FROM upd;

WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING customer_id) SELECT c.email FROM customers c JOIN d ON d.customer_id = c.id;

-- MERGE is a write like UPDATE … FROM: the target must be writable and
-- nothing it touches may have anything withheld.

MERGE INTO orders o USING (VALUES (1, 'x')) v(id, s) ON o.id = v.id WHEN MATCHED THEN UPDATE SET status = v.s WHEN NOT MATCHED THEN INSERT (id, customer_id, total_cents, status) VALUES (v.id, 1, 0, v.s);

MERGE INTO orders o USING (SELECT id, email FROM customers) c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET status = c.email;

MERGE INTO customers c USING orders o ON o.customer_id = c.id WHEN MATCHED THEN DELETE;

MERGE INTO orders o USING orders p ON o.id = p.id WHEN MATCHED AND p.status = 'x' THEN DO NOTHING;

MERGE INTO orders o USING (VALUES (1)) v(x) ON o.id = v.x AND EXISTS (SELECT 1 FROM customers WHERE ssn LIKE '1%') WHEN MATCHED THEN DELETE;

WITH s AS (SELECT ssn AS id FROM customers) MERGE INTO orders o USING s ON o.id = s.id::int WHEN MATCHED THEN DELETE;

-- PostgreSQL 15 prepares MERGE too; TRUNCATE it does not prepare.

PREPARE m1 AS MERGE INTO orders o USING (VALUES (1)) v(id) ON o.id = v.id WHEN MATCHED THEN DELETE;

PREPARE m2 AS MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN DELETE;

PREPARE t1 AS TRUNCATE orders;

REFRESH MATERIALIZED VIEW mv;

WITH customers AS (SELECT * FROM customers) SELECT email FROM customers;

WITH c AS (WITH customers AS (SELECT 1 AS email) SELECT email FROM customers) SELECT c.email, customers.email FROM c, customers;

SELECT email FROM customers UNION ALL (WITH customers AS (SELECT 'q' AS email) SELECT email FROM customers);

WITH customers AS MATERIALIZED (SELECT * FROM customers) SELECT email FROM customers;

-- In scope, a CTE's name reads the CTE (nothing protected); inside its
-- own definition it is the relation (dbt's import CTEs), whose denied
-- columns stay refused through the CTE; a subquery's CTE does not reach
-- the outer FROM; a later CTE is not in scope in an earlier one's
-- definition; a recursive one is in its own.

WITH customers AS (SELECT 1 AS email) SELECT email FROM customers;

WITH customers AS (SELECT * FROM customers) SELECT ssn FROM customers;

SELECT email FROM customers WHERE id IN (WITH customers AS (SELECT 1 AS id) SELECT id FROM customers);

WITH a AS (SELECT email FROM customers), customers AS (SELECT 1 AS email) SELECT email FROM a;

WITH RECURSIVE customers AS (SELECT 1 AS id UNION ALL SELECT id + 1 FROM customers WHERE id < 3) SELECT id FROM customers;

-- A recursive CTE's own name is in scope in its whole definition, as
-- PostgreSQL binds it (which refuses this one: it has no recursive term):
-- what it reads cannot be told, and a relation of the name has something
-- withheld, so it is refused.

WITH RECURSIVE customers AS (SELECT * FROM customers) SELECT email FROM customers;

-- Where the scope resolver cannot follow a statement (here a `NATURAL
-- JOIN` with a function whose columns it does not know), a CTE named like
-- a relation with anything withheld is refused as that relation would be:
-- the agreement check above needs the resolver. (`JOIN USING … AS` is
-- followed: the CTE is read.)

WITH customers AS (SELECT 1 AS id, 2 AS x) SELECT x FROM customers c NATURAL JOIN generate_series(1, 2) g;

WITH c AS (SELECT 1 AS id, 2 AS x) SELECT x FROM c NATURAL JOIN generate_series(1, 2) g;

WITH customers AS (SELECT 1 AS id, 2 AS x) SELECT x, j.id FROM customers c JOIN (SELECT 1 AS id) s USING (id) AS j;

-- Statements that return no rows by their text, as tools send them to
-- learn a result's columns: a denied column they only project is carried
-- in the masking subquery as a NULL. Any other use of it, or a statement
-- that may return rows, is refused as before, also right after one of
-- the same shape was let through (the decision turned on a literal, so the
-- shape cache does not reuse it).
-- as ci

SELECT * FROM customers WHERE 1=0;

SELECT * FROM customers WHERE 1=1;

SELECT * FROM customers LIMIT 0;

SELECT * FROM customers LIMIT 1;

SELECT c.* FROM customers c JOIN orders o ON o.customer_id = c.id FETCH FIRST 0 ROWS ONLY;

SELECT * FROM customers WHERE 1=0 OR id = 1;

SELECT * FROM customers WHERE ssn IS NULL LIMIT 0;

SELECT length(ssn) FROM customers LIMIT 0;

SELECT * FROM customers ORDER BY ssn LIMIT 0;

SELECT * FROM (SELECT * FROM customers LIMIT 0) s;

-- EXPLAIN sends plan lines, never the statement's rows (ANALYZE runs it
-- and discards them): a denied column it only projects is planned as the
-- masking subquery's NULL, as ORMs' `explain` sends `SELECT t.*`. A filter,
-- a join or an ordering on it stays refused (row estimates and counts tell
-- about its values), and so does the statement without EXPLAIN, also
-- right after (the decision did not turn on a literal, but on EXPLAIN).
-- as ci

EXPLAIN SELECT "customers".* FROM "customers" WHERE "customers"."id" = 1;

SELECT "customers".* FROM "customers" WHERE "customers"."id" = 1;

EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id;

EXPLAIN ANALYZE SELECT * FROM customers WHERE ssn = '123-45-6789';

EXPLAIN SELECT * FROM customers ORDER BY ssn;

EXPLAIN SELECT length(ssn) FROM customers;

EXPLAIN ANALYZE UPDATE orders SET status = (SELECT ssn FROM customers LIMIT 1);

-- `SET SCHEMA 'name'` (the SQL standard's form) and `SET XML OPTION`
-- are PostgreSQL's spellings of `search_path` and `xmloption`: decided and
-- forwarded as those settings, so the pinned path is kept and any other
-- is refused as for `SET search_path`.

SET SESSION SCHEMA 'public';

SET LOCAL SCHEMA 'public';

SET SCHEMA 'pg_temp';

SET XML OPTION DOCUMENT;

-- PostgreSQL's default path, `"$user", public`, which tools set to
-- restore the default: `$user` is the session's role upstream (the
-- gateway's), not the identity, and a schema of that name would come
-- before `public`. Forwarded without it, so names resolve as the engine
-- reads them whether or not such a schema exists; any other path stays
-- refused. A string constant in `SET` is one schema's name, not a list.
-- as ci

SET search_path = "$user", public;

SET search_path TO "$user",public;

SET LOCAL search_path = pg_catalog, "$user", public;

SET search_path = "$user";

SET search_path = "$user", public, extensions;

SET search_path = '"$user", public';

SELECT set_config('search_path', '"$user", public', false);

SELECT pg_catalog.set_config('search_path', '$user,public', true), 1;

SELECT set_config('search_path', '"$user", extensions', false);

-- Statements that run a query (a cursor, a prepared statement, a plan,
-- `TABLE`) are decided and rewritten like the query; a setting named by
-- a parameter (SQLAlchemy's reflection) or a column is guarded, a proxy
-- setting's name becoming NULL.
-- as ci

DECLARE c1 BINARY SCROLL CURSOR WITH HOLD FOR SELECT email FROM customers;

PREPARE p(int) AS SELECT email FROM customers WHERE id = $1;

EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) SELECT email FROM customers;

TABLE customers;

TABLE orders;

SELECT current_setting($1);

SELECT current_setting($1::VARCHAR);

SELECT name, current_setting(name) FROM pg_settings;

-- A data-modifying CTE under EXPLAIN ANALYZE or LIMIT 0 still writes what
-- it computes, so what it reads is not carried as a NULL.
-- as ci

EXPLAIN ANALYZE WITH d AS (UPDATE orders SET status = (SELECT ssn FROM customers LIMIT 1) RETURNING id) SELECT * FROM d;

WITH d AS (UPDATE orders SET status = (SELECT ssn FROM customers LIMIT 1) RETURNING id) SELECT * FROM d LIMIT 0;

WITH s AS (SELECT ssn FROM customers), d AS (UPDATE orders SET status = s.ssn FROM s RETURNING orders.id) SELECT * FROM d LIMIT 0;
