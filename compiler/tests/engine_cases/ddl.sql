-- policy: ci may also change the schema
-- as ci

CREATE INDEX i ON customers ((1 / (ssn::int - 123456789)));

CREATE MATERIALIZED VIEW mv AS SELECT email FROM customers;

CREATE TRIGGER t AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION f();

CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;

CREATE INDEX i ON orders (status, customer_id);

CREATE TABLE t3 AS SELECT id, status FROM orders;

-- Maintenance of a materialized view is a schema change (`ddl`).

REFRESH MATERIALIZED VIEW mv;

REFRESH MATERIALIZED VIEW CONCURRENTLY public.mv WITH NO DATA;
