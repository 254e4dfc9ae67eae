--
-- is_valid_quantity(), is_valid_price(), the domains and
-- trading_guard.max_quantity
--
SHOW trading_guard.max_quantity;

SELECT label, trading_guard.is_valid_quantity(q) AS quantity_ok,
       trading_guard.is_valid_price(q) AS price_ok
  FROM (VALUES
    ('one', 1::numeric),
    ('small step', 0.00000001),
    ('exactly max_quantity', 1000000),
    ('above max_quantity', 1000000.00000001),
    ('large price', 123456789012.5),
    ('20 decimal places', 0.00000000000000000001),
    ('null', NULL),
    ('zero', 0),
    ('zero with scale', 0.000),
    ('minus zero', -0),
    ('negative', -1),
    ('tiny negative', -0.00000001),
    ('NaN', 'NaN'),
    ('Infinity', 'Infinity'),
    ('-Infinity', '-Infinity'),
    ('1e-1000', 1e-1000),
    ('21 decimal places', 0.000000000000000000001),
    ('trailing zeros beyond 20 places', 1.0000000000000000000000),
    ('1000 digits', ('1' || repeat('0', 999))::numeric),
    ('21 integer digits', 100000000000000000000),
    ('20 integer digits', 99999999999999999999),
    ('scale 16383', ('0.' || repeat('0', 16382) || '1')::numeric)
  ) AS v(label, q)
 ORDER BY label;

-- as CHECK constraints: NULL, NaN and Infinity are refused, unlike qty > 0
CREATE TABLE qty_plain (q numeric CHECK (q > 0));
INSERT INTO qty_plain VALUES ('NaN'), ('Infinity'), (NULL);
SELECT count(*) AS accepted_by_plain_check FROM qty_plain;
CREATE TABLE qty_checked (q numeric CHECK (trading_guard.is_valid_quantity(q)));
INSERT INTO qty_checked VALUES ('NaN');
INSERT INTO qty_checked VALUES ('Infinity');
INSERT INTO qty_checked VALUES (NULL);
INSERT INTO qty_checked VALUES (0.5);
SELECT * FROM qty_checked;

-- domains
SELECT 2.5::trading_guard.quantity, 0.01::trading_guard.price;
SELECT 0::trading_guard.quantity;
SELECT 'NaN'::trading_guard.price;
SELECT '-Infinity'::trading_guard.price;
SELECT 1e-1000::trading_guard.quantity;

-- a numeric(p,s) column rounds before any check sees the value
CREATE TABLE rounded (q numeric(10,2) CHECK (trading_guard.is_valid_quantity(q)));
INSERT INTO rounded VALUES (0.004);
INSERT INTO rounded VALUES (0.005);
SELECT * FROM rounded;

-- max_quantity
SET trading_guard.max_quantity = '2500.5';
SELECT trading_guard.is_valid_quantity(2500.5), trading_guard.is_valid_quantity(2500.51);
RESET trading_guard.max_quantity;
SET trading_guard.max_quantity = '-5';
SET trading_guard.max_quantity = '0';
SET trading_guard.max_quantity = 'NaN';
SET trading_guard.max_quantity = '1e6';
SET trading_guard.max_quantity = '5.';
SET trading_guard.max_quantity = '123456789012345678901';
SHOW trading_guard.max_quantity;
