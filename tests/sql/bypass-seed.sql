-- The bypass suite's database: every protected value contains the canary
-- CANARY (and nothing else does), so a leak is a byte match. Loaded into
-- `shop` next to the quickstart tables by tests/tests/bypass.rs.
CREATE TABLE people (
    id    integer PRIMARY KEY,
    name  text NOT NULL,
    email text NOT NULL,
    ssn   text NOT NULL,
    note  text
);
INSERT INTO people VALUES
    (1, 'Ada',   'ada.CANARY@example.com',   'CANARY-111-11', 'n1'),
    (2, 'Alan',  'alan.CANARY@example.com',  'CANARY-222-22', 'n2'),
    (3, 'Grace', 'grace.CANARY@example.com', 'CANARY-333-33', NULL);

CREATE TABLE tokens (
    id        integer PRIMARY KEY,
    person_id integer NOT NULL REFERENCES people (id),
    secret    text NOT NULL
);
INSERT INTO tokens VALUES (1, 1, 'tok-CANARY-a'), (2, 2, 'tok-CANARY-b');

-- Partitioned and inherited copies, a view, a SECURITY DEFINER function
-- and a procedure
-- over the protected values: other paths to the same bytes.
CREATE TABLE audit_log (id integer, at date NOT NULL, ssn text) PARTITION BY RANGE (at);
CREATE TABLE audit_log_2026 PARTITION OF audit_log FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO audit_log VALUES (1, '2026-05-01', 'CANARY-log-1');
CREATE VIEW people_view AS SELECT id, name, ssn FROM people;
CREATE FUNCTION ssn_of(p integer) RETURNS text LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT ssn FROM people WHERE id = p $$;
CREATE PROCEDURE show_ssn(p integer) LANGUAGE plpgsql
    AS $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM people WHERE id = p); END $$;

-- A schema named as the gateway role, whose `people` and `orders` show
-- ssn under a clear column's name: a search_path with `"$user"` resolves
-- them there, before `public`, for a session of the gateway role. The
-- engine forwards `orders` (nothing withheld) by its unqualified name.
-- (Not for the superuser, whose default path is `"$user", public`: a
-- schema `postgres` would shadow them in every direct proof.)
CREATE SCHEMA clsf_gateway;
CREATE VIEW clsf_gateway.people AS SELECT id, ssn AS name FROM public.people;
CREATE VIEW clsf_gateway.orders AS
    SELECT o.id, o.customer_id, o.total_cents, p.ssn AS status
    FROM public.orders o CROSS JOIN public.people p;
GRANT USAGE ON SCHEMA clsf_gateway TO clsf_gateway;
GRANT SELECT ON ALL TABLES IN SCHEMA clsf_gateway TO clsf_gateway;

-- Planner statistics copy values into pg_statistic / pg_stats.
ANALYZE people;
ANALYZE tokens;
