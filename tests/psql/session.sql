-- A psql session against lanedb serve; tests/psql.rs runs it and compares the output with session.out.
\set ON_ERROR_STOP on
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(40) NOT NULL, amount DECIMAL(10,2) DEFAULT 0, placed TIMESTAMP);
PARTITION TABLE orders ON COLUMN id;
CREATE INDEX orders_customer ON orders (customer);
CREATE TABLE regions (code SMALLINT PRIMARY KEY, name TEXT UNIQUE);
\d
\dt
\d orders
\d regions
\di
\dn
CREATE PROCEDURE order_total PARTITION ON TABLE orders COLUMN id AS SELECT amount FROM orders WHERE id = $1;
\df
\l
\copy orders FROM 'orders.csv' WITH (FORMAT csv, HEADER true)
SELECT id, customer, amount, placed FROM orders ORDER BY id;
\copy (SELECT id, customer FROM orders WHERE amount > 1 ORDER BY id) TO STDOUT WITH (FORMAT csv)
\copy regions FROM STDIN
1	north
2	\N
\.
SELECT * FROM regions ORDER BY code;
CALL order_total(3);
SELECT current_user, current_database();
SHOW server_version;
\set ON_ERROR_STOP off
SELECT * FROM missing;
INSERT INTO orders VALUES (1, 'dup', 0, NULL);
\set ON_ERROR_STOP on
SELECT count(*) AS orders FROM orders;
CREATE TABLE stores (id INT PRIMARY KEY, region SMALLINT REFERENCES regions ON DELETE CASCADE);
\d stores
\d regions
INSERT INTO stores VALUES (1, 1);
\set ON_ERROR_STOP off
INSERT INTO stores VALUES (2, 9);
\set ON_ERROR_STOP on
DELETE FROM regions WHERE code = 1;
SELECT count(*) FROM stores;
CREATE VIEW big_orders AS SELECT id, customer, amount FROM orders WHERE amount > 1;
\dv
\d big_orders
SELECT * FROM big_orders ORDER BY id;
