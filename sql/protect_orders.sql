--
-- protect_orders(): the C trigger on order tables
--
TRUNCATE trading_guard.symbols;
SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
 {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT", "filters": [
   {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
   {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
   {"filterType": "NOTIONAL", "minNotional": "5", "maxNotional": "9000000"}]},
 {"symbol": "LUNAUSDT", "status": "BREAK", "baseAsset": "LUNA", "quoteAsset": "USDT", "filters": []}]}');

CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    symbol text NOT NULL,
    side text NOT NULL,
    quantity numeric NOT NULL,
    price numeric,
    status text NOT NULL DEFAULT 'NEW'
);
SELECT trading_guard.protect_orders('orders');
SELECT * FROM trading_guard.protected_tables;

INSERT INTO orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.001, 65000.01);
INSERT INTO orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'SELL', 0.5, NULL);

-- a violation names the table and column, as a constraint error does
CREATE FUNCTION try_insert(s text, side text, q numeric, p numeric) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; tab text; col text;
BEGIN
    INSERT INTO orders (symbol, side, quantity, price) VALUES (s, side, q, p);
    RETURN 'inserted';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            tab = TABLE_NAME, col = COLUMN_NAME;
    RETURN format('%s %s.%s: %s', st, tab, col, msg);
END $$;

SELECT label, try_insert(s, side, q, p) FROM (VALUES
    ('null symbol',       NULL,       'BUY',  0.001,     65000::numeric),
    ('lower case',        'btcusdt',  'BUY',  0.001,     65000),
    ('zero-width',        'BTC' || U&'\200B' || 'USDT', 'BUY', 0.001, 65000),
    ('unknown quote',     'BTCEUR',   'BUY',  0.001,     65000),
    ('not in registry',   'XRPUSDT',  'BUY',  1,         1),
    ('status BREAK',      'LUNAUSDT', 'BUY',  1,         1),
    ('bad side',          'BTCUSDT',  'LONG', 0.001,     65000),
    ('null quantity',     'BTCUSDT',  'BUY',  NULL,      65000),
    ('NaN quantity',      'BTCUSDT',  'BUY',  'NaN',     65000),
    ('-Infinity',         'BTCUSDT',  'BUY',  '-Infinity', 65000),
    ('minus zero',        'BTCUSDT',  'BUY',  -0,        65000),
    ('1e-1000',           'BTCUSDT',  'BUY',  1e-1000,   65000),
    ('off the step',      'BTCUSDT',  'BUY',  0.000015,  650000),
    ('off the tick',      'BTCUSDT',  'BUY',  0.001,     65000.001),
    ('NaN price',         'BTCUSDT',  'BUY',  0.001,     'NaN'),
    ('notional too small','BTCUSDT',  'BUY',  0.00001,   65000)
) AS v(label, s, side, q, p);

-- nothing of the refused rows was written
SELECT symbol, side, quantity, price FROM orders ORDER BY id;

-- multi-row INSERT and COPY: one bad row refuses the whole statement
INSERT INTO orders (symbol, side, quantity, price)
VALUES ('BTCUSDT', 'BUY', 0.002, 65000), ('BTCUSDT', 'BUY', 0, 65000);
COPY orders (symbol, side, quantity, price) FROM stdin;
BTCUSDT	BUY	0.003	65000
BTCUSDT	SELL	0.004	\N
\.
COPY orders (symbol, side, quantity, price) FROM stdin;
BTCUSDT	BUY	0.005	65000
BTCUSDT	SELL	abc	\N
\.
COPY orders (symbol, side, quantity, price) FROM stdin;
BTCUSDT	BUY	0.005	65000
BTCUSDT	sell	0.006	\N
\.
SELECT count(*) FROM orders;

-- UPDATE of an order column is checked; UPDATE of other columns is not
UPDATE orders SET quantity = 0.000015 WHERE price IS NULL;
UPDATE orders SET price = 1 WHERE price IS NULL;
UPDATE orders SET quantity = quantity * 2 WHERE symbol = 'BTCUSDT';
UPDATE trading_guard.symbols SET status = 'HALT' WHERE symbol = 'BTCUSDT';
UPDATE orders SET status = 'CANCELED' WHERE price IS NULL;
UPDATE orders SET side = 'SELL' WHERE price IS NULL;
INSERT INTO orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.001, 65000.01);
UPDATE trading_guard.symbols SET status = 'TRADING' WHERE symbol = 'BTCUSDT';
SELECT symbol, side, quantity, price, status FROM orders ORDER BY id;

-- under session_replication_role = replica an ordinary trigger does not
-- fire (logical replication applies rows already checked upstream)
SET session_replication_role = replica;
INSERT INTO orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.0000001, 1);
RESET session_replication_role;
DELETE FROM orders WHERE quantity = 0.0000001;

-- protecting with other column names, types and domains
\set SHOW_CONTEXT never
CREATE TABLE trades (
    pair trading_guard.symbol,        -- a domain over text: accepted as text
    direction varchar(4),
    amount trading_guard.quantity,
    px numeric(20, 8)
);
SELECT trading_guard.protect_orders('trades', 'pair', 'direction', 'amount', 'px');
SELECT trading_guard.protect_orders('trades', symbol_col => 'pair', side_col => 'pair', quantity_col => 'amount', price_col => 'px');
SELECT trading_guard.protect_orders('trades', 'pair', 'pair', 'amount', NULL);
SELECT table_name, symbol_column, side_column, quantity_column, price_column
  FROM trading_guard.protected_tables ORDER BY 1::text;
INSERT INTO trades VALUES ('BTCUSDT', 'SELL', 0.001, 65000.00000000);
INSERT INTO trades VALUES ('BTCUSDT', 'SELL', 0.001, 65000.00000001);

-- a numeric(p,s) column rounds before the trigger sees the value
CREATE TABLE rounded_orders (symbol text, side text, quantity numeric(10, 2), price numeric);
SELECT trading_guard.protect_orders('rounded_orders');
INSERT INTO rounded_orders VALUES ('BTCUSDT', 'BUY', 0.001, 65000);
INSERT INTO rounded_orders VALUES ('BTCUSDT', 'BUY', 0.004, 65000);
INSERT INTO rounded_orders VALUES ('BTCUSDT', 'BUY', 0.005, 65000);
SELECT * FROM rounded_orders;

-- bad calls of protect_orders
CREATE TABLE wrong (symbol text, side text, quantity float8, price numeric, sym char(10), n int);
SELECT trading_guard.protect_orders('wrong');
SELECT trading_guard.protect_orders('wrong', 'sym', 'side', 'price', 'price');
SELECT trading_guard.protect_orders('wrong', 'symbol', 'n', 'price', 'price');
SELECT trading_guard.protect_orders('wrong', 'symbol', 'side', 'price', 'missing');
SELECT trading_guard.protect_orders('wrong', 'symbol', NULL, 'price', 'price');
SELECT trading_guard.protect_orders('wrong', 'Symbol', 'side', 'price', 'price');
SELECT trading_guard.protect_orders(NULL);
CREATE VIEW orders_view AS SELECT * FROM orders;
SELECT trading_guard.protect_orders('orders_view');
SELECT trading_guard.protect_orders('no_such_table');
\set SHOW_CONTEXT errors

-- identifiers are quoted
CREATE TABLE "odd ""name""; DROP TABLE orders" ("the symbol" text, "Side" text, "qty" numeric, "p" numeric);
SELECT trading_guard.protect_orders('"odd ""name""; DROP TABLE orders"', 'the symbol', 'Side', 'qty', 'p');
INSERT INTO "odd ""name""; DROP TABLE orders" VALUES ('BTCUSDT', 'BUY', 0.001, 65000);
INSERT INTO "odd ""name""; DROP TABLE orders" VALUES ('BTCUSDT', 'BUY', -1, 65000);
SELECT count(*) FROM orders;

-- a column renamed after protecting: the trigger refuses rather than skips
ALTER TABLE rounded_orders RENAME COLUMN side TO direction;
INSERT INTO rounded_orders VALUES ('BTCUSDT', 'BUY', 0.01, 65000);
SELECT trading_guard.protect_orders('rounded_orders', side_col => 'direction');
INSERT INTO rounded_orders VALUES ('BTCUSDT', 'BUY', 0.01, 65000);

-- partitioned tables: the trigger is cloned onto every partition,
-- including those created or attached later
CREATE TABLE porders (symbol text, side text, quantity numeric, price numeric, day date)
    PARTITION BY RANGE (day);
CREATE TABLE porders_1 PARTITION OF porders FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
SELECT trading_guard.protect_orders('porders');
CREATE TABLE porders_2 PARTITION OF porders FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE porders_3 (LIKE porders);
ALTER TABLE porders ATTACH PARTITION porders_3 FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
INSERT INTO porders VALUES ('BTCUSDT', 'BUY', 0.001, 65000, '2026-01-05');
INSERT INTO porders VALUES ('BTCUSDT', 'BUY', 0, 65000, '2026-01-05');
INSERT INTO porders VALUES ('BTCUSDT', 'BUY', 0, 65000, '2026-02-05');
INSERT INTO porders VALUES ('BTCUSDT', 'BUY', 0, 65000, '2026-03-05');
INSERT INTO porders_3 VALUES ('BTCUSDT', 'BUY', 0, 65000, '2026-03-05');
SELECT count(*) FROM porders;
SELECT table_name FROM trading_guard.protected_tables WHERE table_name::text LIKE 'porders%';

-- a BEFORE trigger that sorts before ours and changes the row: the check
-- sees the changed row, which is the one stored
CREATE TABLE chained (symbol text, side text, quantity numeric, price numeric);
CREATE FUNCTION lots_to_units() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.quantity := round(NEW.quantity / 1000, 8);
    RETURN NEW;
END $$;
CREATE TRIGGER a_lots_to_units BEFORE INSERT OR UPDATE ON chained
    FOR EACH ROW EXECUTE FUNCTION lots_to_units();
SELECT trading_guard.protect_orders('chained');
INSERT INTO chained VALUES ('BTCUSDT', 'BUY', 1, 65000);
INSERT INTO chained VALUES ('BTCUSDT', 'BUY', 10000000, 1);
UPDATE chained SET quantity = 0.015;
SELECT * FROM chained;

-- the trigger function refuses to be used the wrong way
CREATE TRIGGER misuse AFTER INSERT ON wrong FOR EACH ROW
    EXECUTE FUNCTION trading_guard.protect_orders_trigger('symbol', 'side', 'price', 'price');
INSERT INTO wrong (symbol) VALUES ('x');
DROP TRIGGER misuse ON wrong;
CREATE TRIGGER misuse BEFORE INSERT ON wrong FOR EACH ROW
    EXECUTE FUNCTION trading_guard.protect_orders_trigger('symbol');
INSERT INTO wrong (symbol) VALUES ('x');
DROP TRIGGER misuse ON wrong;
SELECT trading_guard.protect_orders_trigger();

-- unprotect
SELECT trading_guard.unprotect_orders('orders');
SELECT trading_guard.unprotect_orders('orders');
INSERT INTO orders (symbol, side, quantity, price) VALUES ('whatever', 'x', -1, -1);
SELECT count(*) FROM trading_guard.protected_tables WHERE table_name = 'orders'::regclass;

-- the counters in shared memory saw the orders of this file
SELECT orders > 0 AS counted FROM trading_guard.validation_stats WHERE filter = 'ACCEPTED';
SELECT trading_guard.reset_validation_stats();
SELECT sum(orders) FROM trading_guard.validation_stats;
