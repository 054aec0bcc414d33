-- Demo data for the clsf quickstart: customers with personal data, and orders.
CREATE TABLE customers (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL,
    ssn         character(11) NOT NULL,
    card_number character varying(19) NOT NULL,
    created_at  timestamp with time zone NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers(id),
    total_cents integer NOT NULL,
    status      text NOT NULL
);

INSERT INTO customers (id, name, email, ssn, card_number) VALUES
    (1, 'Ada Lovelace',   'ada@example.com',    '123-45-6789', '4111111111111111'),
    (2, 'Alan Turing',    'alan@turing.org',    '987-65-4321', '5500000000000004'),
    (3, 'Grace Hopper',   'grace@navy.mil',     '555-12-3456', '340000000000009'),
    (4, 'Edsger Dijkstra','edsger@tue.nl',      '222-33-4444', '6011000000000004');

INSERT INTO orders (id, customer_id, total_cents, status) VALUES
    (10, 1, 1999, 'shipped'),
    (11, 1, 4500, 'pending'),
    (12, 2, 1250, 'shipped'),
    (13, 3, 9900, 'cancelled');
