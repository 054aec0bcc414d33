-- Every kind of catalog object `clsfc schema pull` records: domains (also
-- over domains and in arrays), enums, composite types, partitions,
-- inheritance, views and materialized views, keys, a SECURITY DEFINER
-- function and quoted mixed-case names. Loaded by tests/tests/schema.rs.
CREATE SCHEMA app;
CREATE SCHEMA "Mixed Case";

CREATE DOMAIN app.email_address AS text CHECK (VALUE LIKE '%@%');
CREATE DOMAIN app.work_email AS app.email_address NOT NULL;
CREATE DOMAIN app.short_code AS varchar(8);
CREATE TYPE app.mood AS ENUM ('happy', 'sad', 'neutral');
CREATE TYPE app.money_pair AS (amount numeric(12,2), currency char(3));

CREATE TABLE app.people (
    id bigint PRIMARY KEY,
    email app.email_address,
    work app.work_email,
    code app.short_code,
    aliases app.email_address[],
    mood app.mood,
    tags text[],
    payload jsonb,
    balance app.money_pair
);

CREATE TABLE app.events (
    id bigint,
    person_id bigint REFERENCES app.people (id),
    at timestamptz NOT NULL,
    note text,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE app.events_2025 PARTITION OF app.events
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.events_2026 PARTITION OF app.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');

CREATE TABLE app.base_log (id bigint, secret text);
CREATE TABLE app.child_log (extra text) INHERITS (app.base_log);

CREATE VIEW app.contacts AS
    SELECT p.id, p.email, lower(p.email::text) || '/' || p.code AS handle
    FROM app.people p;
CREATE MATERIALIZED VIEW app.contact_counts AS
    SELECT mood, count(*) AS n, max(email) AS last_email
    FROM app.people GROUP BY mood;

CREATE TABLE "Mixed Case"."Odd Table" ("Id" int PRIMARY KEY, "E-mail" text);

CREATE FUNCTION app.lookup_email(p_id bigint) RETURNS text
    LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT email FROM app.people WHERE id = p_id $$;
