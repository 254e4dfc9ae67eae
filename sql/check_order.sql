--
-- check_order(), order_violations(), round_quantity(), round_price()
--
TRUNCATE trading_guard.symbols;
SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
 {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT", "filters": [
   {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
   {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
   {"filterType": "NOTIONAL", "minNotional": "5.00000000", "maxNotional": "9000000.00000000"}]},
 {"symbol": "ETHUSDT", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "USDT", "filters": [
   {"filterType": "PRICE_FILTER", "minPrice": "0.05", "maxPrice": "0", "tickSize": "0.10"},
   {"filterType": "LOT_SIZE", "minQty": "0.0005", "maxQty": "0", "stepSize": "0.001"}]},
 {"symbol": "FREEUSDT", "status": "TRADING", "baseAsset": "FREE", "quoteAsset": "USDT", "filters": []},
 {"symbol": "LUNAUSDT", "status": "BREAK", "baseAsset": "LUNA", "quoteAsset": "USDT", "filters": []},
 {"symbol": "HALTUSDT", "status": "HALT", "baseAsset": "HALT", "quoteAsset": "USDT", "filters": []}]}');

-- try() runs a statement and shows the SQLSTATE and message of its error
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- valid orders: limit, market (price NULL), on the step and tick grids
SELECT trading_guard.check_order('BTCUSDT', 'BUY', 0.001, 65000.01);
SELECT trading_guard.check_order('BTCUSDT', 'SELL', 0.5);
SELECT trading_guard.check_order('BTCUSDT', 'BUY', 9000, 1000);
SELECT trading_guard.check_order('ETHUSDT', 'SELL', 0.0015, 3000.05);
SELECT trading_guard.check_order('FREEUSDT', 'BUY', 123.456789, 0.000001);

-- one violation per row; the first one is what check_order raises
SELECT label, try(format('SELECT trading_guard.check_order(%L, %L, %L, %L)', s, side, q, p))
  FROM (VALUES
    ('null symbol',          NULL,        'BUY',  '1',       '10'),
    ('empty symbol',         '',          'BUY',  '1',       '10'),
    ('lower-case symbol',    'btcusdt',   'BUY',  '0.001',   '65000'),
    ('NBSP in symbol',       'BTC' || U&'\00A0' || 'USDT', 'BUY', '0.001', '65000'),
    ('zero-width in symbol', 'BTC' || U&'\200B' || 'USDT', 'BUY', '0.001', '65000'),
    ('bidi in symbol',       U&'\202E' || 'BTCUSDT', 'BUY', '0.001', '65000'),
    ('full-width symbol',    U&'\FF22\FF34\FF23\FF35\FF33\FF24\FF34', 'BUY', '0.001', '65000'),
    ('Cyrillic look-alike',  U&'\0412' || 'TCUSDT', 'BUY', '0.001', '65000'),
    ('Greek look-alike',     'BTC' || U&'\03A4' || 'USDT', 'BUY', '0.001', '65000'),
    ('tab in symbol',        E'BTC\tUSDT', 'BUY', '0.001', '65000'),
    ('newline after symbol', E'BTCUSDT\n', 'BUY', '0.001', '65000'),
    ('200 kB symbol',        repeat('A', 204800), 'BUY', '0.001', '65000'),
    ('unknown quote asset',  'BTCEUR',    'BUY',  '0.001',   '65000'),
    ('base too short',       'BUSDT',     'BUY',  '0.001',   '65000'),
    ('not in registry',      'XRPUSDT',   'BUY',  '1',       '1'),
    ('status BREAK',         'LUNAUSDT',  'BUY',  '1',       '1'),
    ('status HALT',          'HALTUSDT',  'BUY',  '1',       '1'),
    ('null side',            'BTCUSDT',   NULL,   '0.001',   '65000'),
    ('lower-case side',      'BTCUSDT',   'buy',  '0.001',   '65000'),
    ('long side',            'BTCUSDT',   repeat('X', 5000), '0.001', '65000'),
    ('null quantity',        'BTCUSDT',   'BUY',  NULL,      '65000'),
    ('zero quantity',        'BTCUSDT',   'BUY',  '0',       '65000'),
    ('minus zero',           'BTCUSDT',   'BUY',  '-0',      '65000'),
    ('negative quantity',    'BTCUSDT',   'BUY',  '-0.001',  '65000'),
    ('NaN quantity',         'BTCUSDT',   'BUY',  'NaN',     '65000'),
    ('Infinity quantity',    'BTCUSDT',   'BUY',  'Infinity', '65000'),
    ('-Infinity quantity',   'BTCUSDT',   'BUY',  '-Infinity', '65000'),
    ('1e-1000 quantity',     'BTCUSDT',   'BUY',  '1e-1000', '65000'),
    ('1000-digit quantity',  'BTCUSDT',   'BUY',  '1' || repeat('0', 999), '65000'),
    ('scale 16383 quantity', 'BTCUSDT',   'BUY',  '0.' || repeat('0', 16382) || '1', '65000'),
    ('above max_quantity',   'FREEUSDT',  'BUY',  '1000001', '1'),
    ('below minQty',         'BTCUSDT',   'BUY',  '0.000001', '65000'),
    ('above maxQty',         'BTCUSDT',   'BUY',  '9000.00001', '1'),
    ('off the step',         'BTCUSDT',   'BUY',  '0.000015', '650000'),
    ('step from minQty',     'ETHUSDT',   'BUY',  '0.001',   '3000.05'),
    ('zero price',           'BTCUSDT',   'BUY',  '0.001',   '0'),
    ('negative price',       'BTCUSDT',   'BUY',  '0.001',   '-1'),
    ('NaN price',            'BTCUSDT',   'BUY',  '0.001',   'NaN'),
    ('Infinity price',       'BTCUSDT',   'BUY',  '0.001',   'Infinity'),
    ('1e-1000 price',        'BTCUSDT',   'BUY',  '0.001',   '1e-1000'),
    ('scale 16383 price',    'BTCUSDT',   'BUY',  '0.001',   '1.' || repeat('0', 16383)),
    ('below minPrice',       'BTCUSDT',   'BUY',  '1',       '0.005'),
    ('above maxPrice',       'BTCUSDT',   'BUY',  '0.001',   '1000000.01'),
    ('off the tick',         'BTCUSDT',   'BUY',  '0.001',   '65000.005'),
    ('tick from minPrice',   'ETHUSDT',   'BUY',  '0.0015',  '3000.10'),
    ('notional below min',   'BTCUSDT',   'BUY',  '0.0001',  '100'),
    ('notional above max',   'BTCUSDT',   'BUY',  '9000',    '1000.01')
  ) AS v(label, s, side, q, p);

-- the error itself: message, detail naming the filter, hint
\set VERBOSITY default
SELECT trading_guard.check_order('BTCUSDT', 'BUY', 0.000015, 65000);
SELECT trading_guard.check_order('BTCUSDT', 'BUY', 0.0001, 100);
SELECT trading_guard.check_order('BTCUSDT', 'BUY', 0.000001, 65000);
SELECT trading_guard.check_order('BTCUSDT', 'SELL', 0.001, 1000000.01);
SELECT trading_guard.check_order('BTCUSDT', 'SELL', 1000001, 1);

-- order_violations() lists every rule broken, in check order
SELECT * FROM trading_guard.order_violations('BTCUSDT', 'BUY', 0.000015, 65000.005);
SELECT filter, sqlstate, message FROM trading_guard.order_violations('LUNAUSDT', 'HOLD', 'NaN', -1);
SELECT filter, sqlstate, message FROM trading_guard.order_violations(NULL, NULL, NULL, NULL);
SELECT count(*) AS violations FROM trading_guard.order_violations('BTCUSDT', 'SELL', 0.01, 65000);

-- rounding: quantity truncates onto minQty + k * stepSize, price rounds
-- to the nearest minPrice + k * tickSize (halves up)
SELECT trading_guard.round_quantity('BTCUSDT', 0.123456789) AS q1,
       trading_guard.round_quantity('BTCUSDT', 1) AS q2,
       trading_guard.round_quantity('ETHUSDT', 0.0029) AS q3,
       trading_guard.round_quantity('FREEUSDT', 0.123456789) AS q_no_step;
SELECT trading_guard.round_price('BTCUSDT', 123.454) AS p1,
       trading_guard.round_price('BTCUSDT', 123.455) AS p2,
       trading_guard.round_price('ETHUSDT', 3000.1) AS p3,
       trading_guard.round_price('ETHUSDT', 3000.0) AS p4,
       trading_guard.round_price('ETHUSDT', 0.06) AS p5;
-- rounded values pass the checks
SELECT trading_guard.check_order('ETHUSDT', 'BUY',
         trading_guard.round_quantity('ETHUSDT', 1.23456),
         trading_guard.round_price('ETHUSDT', 2999.987));

SELECT try(stmt) FROM (VALUES
  ($$SELECT trading_guard.round_quantity('BTCUSDT', 0.000001)$$),
  ($$SELECT trading_guard.round_price('BTCUSDT', 0.004)$$),
  ($$SELECT trading_guard.round_quantity('BTCUSDT', 0)$$),
  ($$SELECT trading_guard.round_quantity('BTCUSDT', 'NaN')$$),
  ($$SELECT trading_guard.round_quantity('BTCUSDT', NULL)$$),
  ($$SELECT trading_guard.round_price('XRPUSDT', 1)$$),
  ($$SELECT trading_guard.round_price('btcusdt', 1)$$),
  ($$SELECT trading_guard.round_price(NULL, 1)$$)
) AS v(stmt);

-- the registry cache follows changes made in this session at once
SELECT try($$SELECT trading_guard.check_order('XRPUSDT', 'BUY', 1, 1)$$);
INSERT INTO trading_guard.symbols (symbol, base_asset, quote_asset) VALUES ('XRPUSDT', 'XRP', 'USDT');
SELECT try($$SELECT trading_guard.check_order('XRPUSDT', 'BUY', 1, 1)$$);
UPDATE trading_guard.symbols SET status = 'HALT' WHERE symbol = 'XRPUSDT';
SELECT try($$SELECT trading_guard.check_order('XRPUSDT', 'BUY', 1, 1)$$);
-- and forgets changes that were rolled back
BEGIN;
DELETE FROM trading_guard.symbols WHERE symbol = 'XRPUSDT';
SELECT try($$SELECT trading_guard.check_order('XRPUSDT', 'BUY', 1, 1)$$);
ROLLBACK;
SELECT try($$SELECT trading_guard.check_order('XRPUSDT', 'BUY', 1, 1)$$);
TRUNCATE trading_guard.symbols;
SELECT try($$SELECT trading_guard.check_order('BTCUSDT', 'BUY', 0.001, 65000)$$);

-- values beyond what fits a 64-bit integer take the exact numeric path and
-- get the same answers as the common case
INSERT INTO trading_guard.symbols (symbol, base_asset, quote_asset, min_qty, step_size,
                                   min_price, tick_size, min_notional, max_notional)
VALUES ('FINEUSDT', 'FINE', 'USDT', 0.00000000000000000003, 0.00000000000000000003,
        0.5, 0.5, 0.0000000001, 50000000000000000000),
       ('GRIDUSDT', 'GRID', 'USDT', 0.00001000, 0.00001000,
        0.01000000, 0.01000000, 5, 0);
SELECT label, try(format('SELECT trading_guard.check_order(%L, %L, %L, %L)', s, 'BUY', q, p))
  FROM (VALUES
    ('scale 20 on the step',        'FINEUSDT', '0.00000000000000000006', '12345678901234567890.5'),
    ('scale 20 off the step',       'FINEUSDT', '0.00000000000000000004', '12345678901234567890.5'),
    ('20-digit price on the tick',  'FINEUSDT', '0.3',                    '12345678901234567890.5'),
    ('20-digit price off the tick', 'FINEUSDT', '0.3',                    '12345678901234567890.25'),
    ('notional above a huge max',   'FINEUSDT', '999999.3',               '99999999999999.5'),
    ('notional of scale 21 below',  'FINEUSDT', '0.00000000000000000003', '0.5'),
    ('finer than the grid, on it',  'GRIDUSDT', '0.00100000000',          '65000.0000000000'),
    ('finer than the grid, off it', 'GRIDUSDT', '0.00100000001',          '65000'),
    ('finer than the tick, off it', 'GRIDUSDT', '0.001',                  '65000.0000000001')
  ) AS v(label, s, q, p);
