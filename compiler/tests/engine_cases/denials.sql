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

-- as

SELECT email FROM customers;
