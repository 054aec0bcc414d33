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
