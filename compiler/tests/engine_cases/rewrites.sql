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
