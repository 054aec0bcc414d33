-- Refusals as the client reads them.
-- as ci

SELECT ssn FROM customers;

SELECT * FROM customers;

SELECT c FROM customers c;

SELECT row_to_json(c.*) FROM customers c;

SELECT id FROM customers WHERE ssn = '123-45-6789';

UPDATE customers SET name = 'x';

SELECT * FROM secret_table;

SELECT pg_read_file('/etc/passwd');

-- Where the scope resolver cannot tell which columns a statement uses, a
-- statement over a relation with anything withheld is refused in one
-- place: a column or FROM entry that is not there with PostgreSQL's code,
-- a construct the resolver does not follow as such. A column name no
-- relation of the lock in scope has is refused over relations read in
-- full (orders) too: the live table may have gained it after the lock was
-- pulled, before the proxy's comparison of the catalog found it.

SELECT c.emai FROM customers c;

SELECT o.* FROM customers c;

SELECT * FROM customers c JOIN orders o USING (id) AS j;

SELECT o.emai FROM orders o;

-- `TABLE name` as a side of a set operation or as a subquery reads the
-- whole relation: a protected catalog, a relation with anything withheld
-- or an unknown name is refused there as in FROM, whether or not the
-- sides' columns agree (a CTE of the name is what it reads). Relations
-- read in full pass.

SELECT 1 UNION TABLE pg_authid;

SELECT 1 UNION ALL (TABLE pg_catalog.pg_statistic);

SELECT * FROM (TABLE pg_stat_activity) a;

SELECT 1, 'a', 'b', 'c', 'd', now() UNION TABLE customers;

SELECT 1 UNION TABLE no_such_relation;

WITH pg_authid AS (SELECT 1) SELECT 2 UNION TABLE pg_authid;

SELECT 1, 2, 3, 'x' UNION TABLE orders;

-- Forms the resolver follows: named windows, a join under one alias,
-- XMLTABLE, catalogs beside a protected relation.

SELECT rank() OVER w FROM customers c WINDOW w AS (ORDER BY c.ssn);

SELECT j.status, j.email FROM (orders o JOIN customers c ON c.id = o.customer_id) AS j;

SELECT x.v FROM customers c, XMLTABLE('/a' PASSING c.ssn COLUMNS v text PATH 'b') x;

SELECT c.email, n.nspname FROM customers c, pg_namespace n;

-- as

SELECT email FROM customers;

-- NOTIFY is `pg_notify` as a statement: refused as that side-effecting
-- function is, while LISTEN and UNLISTEN (which read nothing) pass.
-- as ci

NOTIFY orders_changed, 'order 7';

LISTEN orders_changed;

UNLISTEN *;

-- An anonymous code block runs where clsf cannot see: refused for an
-- identity with anything withheld, run as written by one with nothing
-- withheld, as are schema statements sqlparser does not parse, each alone
-- in its text (two statements in one text stay refused).

DO $$ BEGIN PERFORM 1; END $$;

CREATE PROCEDURE tidy() LANGUAGE sql AS $$ DELETE FROM orders WHERE false $$;
-- as dba-bot

DO $$ BEGIN PERFORM 1; END $$;

DO LANGUAGE plpgsql 'BEGIN PERFORM 1; END';

CREATE PROCEDURE tidy() LANGUAGE sql AS $$ DELETE FROM orders WHERE false $$;

ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;

CHECKPOINT;

DO $$ BEGIN PERFORM 1; END $$; PREPARE TRANSACTION 'x';

CREATE PROCEDURE tidy() LANGUAGE sql AS $$ SELECT 1 $$; PREPARE TRANSACTION 'x';

-- CALL runs a procedure's code: decided as a call of a function that is
-- not built in (refused unless a rule allows it by name), and its
-- arguments may not read relations.
-- as ci

CALL tidy();

CALL tidy((SELECT count(*) FROM orders));

-- Statements for the `admin` action, whether sqlparser parses them or
-- they are read from their first words.

LOAD 'auto_explain';

CHECKPOINT;

-- CREATE FUNCTION is schema code: it needs `ddl`, and even with it an
-- identity with anything withheld may not define code that runs later.
-- as ci

CREATE FUNCTION ssn_of(id int) RETURNS text LANGUAGE sql AS 'SELECT ssn FROM customers WHERE id = $1';
