-- The bike store's tables with a few rows, for deploy/examples/bike-store-cdc.yaml:
--   psql "host=127.0.0.1 port=55432 user=postgres dbname=postgres" -f deploy/examples/bike-store.sql
DROP DATABASE IF EXISTS bikes WITH (FORCE);
CREATE DATABASE bikes;
\c bikes
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id),
                     status text NOT NULL, ordered_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE order_items (order_id int REFERENCES orders(id) ON DELETE CASCADE, item_no int,
                          product_id int NOT NULL REFERENCES products(id), quantity int NOT NULL,
                          PRIMARY KEY (order_id, item_no));
INSERT INTO customers (name, email) VALUES ('Ann', 'ann@example.com'), ('Bob', 'bob@example.com');
INSERT INTO products (name, price) VALUES ('Trek 520', 1299.99), ('Helmet', 59.50), ('Lock', 34.00);
INSERT INTO orders (customer_id, status) VALUES (1, 'new');
INSERT INTO order_items VALUES (1, 1, 1, 1), (1, 2, 2, 2);
