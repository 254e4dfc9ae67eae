--
-- Row-level audit: keys, column types, generated, dropped and toasted values
--
CREATE FUNCTION last_audit_rows(tbl text, n int)
RETURNS TABLE (operation text, row_key text, old_row jsonb, new_row jsonb, changed_columns text[])
LANGUAGE sql AS $$
    SELECT operation, row_key, old_row, new_row, changed_columns FROM (
        SELECT * FROM trading_guard.audit_log
         WHERE table_name = tbl AND operation IN ('INSERT', 'UPDATE', 'DELETE')
         ORDER BY id DESC LIMIT n) l
     ORDER BY id
$$;

-- no primary key: no row_key; history() matches the row images
CREATE TABLE fills (account int, symbol text, qty numeric);
SELECT trading_guard.enable_audit('fills');
INSERT INTO fills VALUES (1, 'BTCUSDT', 1), (1, 'BTCUSDT', 1), (2, 'ETHUSDT', 5);
UPDATE fills SET qty = 2 WHERE account = 2;
DELETE FROM fills WHERE account = 1;
SELECT * FROM last_audit_rows('fills', 10);
SELECT operation, old_row, new_row FROM trading_guard.history('fills', '{"account": 2}');

-- composite primary key
CREATE TABLE positions (account int, symbol text, venue text, qty numeric,
                        PRIMARY KEY (account, symbol, venue));
SELECT trading_guard.enable_audit('positions');
INSERT INTO positions VALUES (7, 'BTCUSDT', 'binance', 1), (7, 'BTCUSDT', 'kraken', 2);
UPDATE positions SET qty = qty + 1 WHERE venue = 'kraken';
UPDATE positions SET venue = 'coinbase' WHERE venue = 'binance';
SELECT * FROM last_audit_rows('positions', 10);
SELECT operation, row_key FROM trading_guard.history('positions',
    '{"account": 7, "symbol": "BTCUSDT", "venue": "kraken"}');
SELECT operation, row_key, old_key FROM trading_guard.history('positions',
    '{"venue": "binance", "symbol": "BTCUSDT", "account": 7}');

-- every common type, a domain and an enum
CREATE TYPE side AS ENUM ('BUY', 'SELL');
CREATE DOMAIN positive_qty AS numeric CHECK (VALUE > 0);
CREATE TYPE leg AS (symbol text, qty numeric);
CREATE TABLE typed (
    id int PRIMARY KEY,
    n numeric, i2 smallint, i8 bigint, f4 real, f8 double precision,
    b boolean, t text, vc varchar(10), c char(4), nm name,
    d date, ts timestamp, tz timestamptz, tm time, iv interval,
    j json, jb jsonb, ints int[], texts text[], by bytea, u uuid, ip inet,
    s side, q positive_qty, r int4range, l leg, big numeric,
    nan numeric, inf double precision
);
SELECT trading_guard.enable_audit('typed');
SET TimeZone = 'UTC';
INSERT INTO typed VALUES (
    1, 12345.678900, -7, 9007199254740993, 1.5, 0.1,
    true, 'tab	"quote" \ é', 'vc', 'ab', 'nm',
    '2026-11-30', '2026-11-30 12:34:56.789', '2026-11-30 12:34:56.789+02', '23:59:59', '1 day 2 hours',
    '{"b": [1, 2], "a": null}', '{"b": [1, 2], "a": null}', '{1,NULL,3}', '{"a b",c}', '\x00ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.0.0.1/32',
    'SELL', 0.5, '[1,5)', ROW('BTCUSDT', 2), 1e30,
    'NaN', '-Infinity');
SELECT jsonb_pretty(new_row) FROM last_audit_rows('typed', 1);
-- the images are what to_jsonb() makes of the row
SELECT new_row = to_jsonb(typed) AS same_as_to_jsonb FROM last_audit_rows('typed', 1), typed;
INSERT INTO typed (id) VALUES (2);
SELECT new_row = to_jsonb(typed) AS nulls_same_as_to_jsonb FROM last_audit_rows('typed', 1), typed WHERE typed.id = 2;
UPDATE typed SET jb = jb || '{"c": 3}', ints[2] = 2, q = 1.5, s = 'BUY' WHERE id = 1;
SELECT changed_columns FROM last_audit_rows('typed', 1);
RESET TimeZone;

-- generated and dropped columns
CREATE TABLE gen (id int PRIMARY KEY, qty numeric, price numeric,
                  notional numeric GENERATED ALWAYS AS (qty * price) STORED, gone text);
SELECT trading_guard.enable_audit('gen');
ALTER TABLE gen DROP COLUMN gone;
INSERT INTO gen (id, qty, price) VALUES (1, 2, 3);
UPDATE gen SET qty = 4;
SELECT * FROM last_audit_rows('gen', 2);

-- a 1 MB value (toasted) in, changed around, and out
CREATE TABLE docs (id int PRIMARY KEY, body text, other int);
SELECT trading_guard.enable_audit('docs');
INSERT INTO docs VALUES (1, repeat('x', 1024 * 1024) || 'end', 0);
UPDATE docs SET other = 1;
UPDATE docs SET body = repeat('y', 1024 * 1024);
DELETE FROM docs;
SELECT operation, length(old_row->>'body') AS old_len, right(old_row->>'body', 3) AS old_tail,
       length(new_row->>'body') AS new_len, changed_columns
  FROM last_audit_rows('docs', 4);

-- scalar-only tables get their images written directly in jsonb's format:
-- 40 columns (past jsonb's offset stride of 32), nulls, big and small
-- numbers, strings, a masked column; the image must be the very jsonb
-- value to_jsonb() builds, usable by every jsonb operator
SELECT format('CREATE TABLE wide (id int PRIMARY KEY, %s)',
              string_agg(format('c%s %s', g, CASE g % 4 WHEN 0 THEN 'numeric' WHEN 1 THEN 'text'
                                                  WHEN 2 THEN 'bigint' ELSE 'boolean' END), ', '))
  FROM generate_series(1, 39) g \gexec
SELECT trading_guard.enable_audit('wide', mask_columns => '{c5}');
INSERT INTO wide
SELECT i, 'text ' || i, 2, i::bool, 1e-20 * i, NULL, -9223372036854775808, NULL, 123456789012345678901234567890.5,
       repeat('é', 300), i, false, -0.000, 't', 0, true, 'NaN',
       '', 7, NULL, 42, 'z', 8, true, 1.5, NULL, 9, true, 1, 'x', 10, false, 2, 'y', 11, true, 3, 'w', 12, false
  FROM generate_series(1, 2) i;
SELECT count(*) AS images,
       bool_and(l.new_row = (to_jsonb(w) || '{"c5": "[masked]"}')) AS same_value,
       bool_and(l.new_row::text = (to_jsonb(w) || '{"c5": "[masked]"}')::text) AS same_text,
       bool_and(pg_column_size(l.new_row) = pg_column_size(to_jsonb(w) || '{"c5": "[masked]"}')) AS same_size,
       bool_and((SELECT count(*) FROM jsonb_each(l.new_row)) = 40) AS all_keys,
       bool_and(l.new_row @> jsonb_build_object('c39', w.c39, 'c1', w.c1)) AS contains,
       bool_and(l.new_row->'c8' = to_jsonb(w.c8) AND (l.new_row->>'c36')::numeric = w.c36) AS lookups
  FROM last_audit_rows('wide', 2) l JOIN wide w ON l.row_key = format('{"id": %s}', w.id);
SELECT new_row->'c16' AS nan, new_row->'c12' AS minus_zero, new_row->'c17' AS empty,
       new_row->'c6' AS min_bigint, new_row->'c7' AS null_bool
  FROM last_audit_rows('wide', 1);
