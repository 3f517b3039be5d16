//! Schemas and changes shared by the CDC tests, so every test (ours alone, or
//! ours next to Debezium) runs exactly the same SQL.

/// The bike store: four tables, one with a composite key, and a few rows.
pub const BIKE_STORE: &str = "
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, tags text[]);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id), status text NOT NULL,
                     ordered_on date NOT NULL DEFAULT DATE '2024-03-01');
CREATE TABLE order_items (order_id int REFERENCES orders(id) ON DELETE CASCADE, item_no int,
                          product_id int REFERENCES products(id), quantity int NOT NULL,
                          PRIMARY KEY (order_id, item_no));
INSERT INTO customers (name, email) VALUES ('Ann', 'ann@example.com'), ('Bob', NULL);
INSERT INTO products (name, price, tags) VALUES ('Trek 520', 1299.99, '{touring,steel}'), ('Helmet', 59.50, NULL);
INSERT INTO orders (customer_id, status) VALUES (1, 'new');
INSERT INTO order_items VALUES (1, 1, 1, 1), (1, 2, 2, 2);
";

/// Changes to the bike store after its snapshot: insert, update, delete
/// (+ tombstone), primary-key change, and an update under REPLICA IDENTITY FULL.
pub const BIKE_STORE_CHANGES: &str = "
INSERT INTO customers (name) VALUES ('Cy');
UPDATE customers SET email = 'bob@example.com' WHERE name = 'Bob';
DELETE FROM order_items WHERE order_id = 1 AND item_no = 2;
UPDATE order_items SET item_no = 9 WHERE order_id = 1 AND item_no = 1;
ALTER TABLE products REPLICA IDENTITY FULL;
UPDATE products SET price = 1199.00 WHERE id = 1;
";

/// One column of each type whose mapping Debezium defines (table `typed`).
pub const TYPED_TABLE: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE typed (
  id uuid PRIMARY KEY, flag boolean, small int2, big int8, ratio float8, amount numeric(12,3),
  free numeric, day date, at timestamp(3), at_us timestamp, at_tz timestamptz, clock time,
  doc jsonb, raw bytea, feeling mood, scores int4[], label varchar(20));
";

/// A row of `typed`, written in a session time zone other than UTC (to show
/// timestamptz is normalised).
pub const TYPED_ROW: &str = "
SET TimeZone = 'Europe/Paris';
INSERT INTO typed VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, -3, 9007199254740993, 0.5,
  -12.345, 3.14159, '2024-03-01', '2024-03-01 12:00:00.123', '2024-03-01 12:00:00.123456',
  '2024-03-01 13:00:00+01', '10:15:30', '{\"a\": [1, 2]}', '\\x01ff', 'happy', '{1,NULL,3}', 'bike');
";
