--
-- The symbol registry and load_exchange_info()
--
\set info '{"timezone": "UTC", "serverTime": 1764288000000, "rateLimits": [], "exchangeFilters": [], "symbols": [{"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8, "quoteAsset": "USDT", "quotePrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": true, "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"}, {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"}, {"filterType": "ICEBERG_PARTS", "limit": 10}, {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "85.0", "stepSize": "0.00000000"}, {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": true, "maxNotional": "9000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5}, {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200}]}, {"symbol": "ETHUSDT", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "USDT", "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "100000.00000000", "tickSize": "0.01000000"}, {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "9000.00000000", "stepSize": "0.00010000"}, {"filterType": "MIN_NOTIONAL", "minNotional": "5.00000000", "applyToMarket": true, "avgPriceMins": 5}]}, {"symbol": "LUNAUSDT", "status": "BREAK", "baseAsset": "LUNA", "quoteAsset": "USDT", "filters": []}]}'

SELECT * FROM trading_guard.load_exchange_info(:'info') ORDER BY symbol;
SELECT symbol, base_asset, quote_asset, status, min_qty, max_qty, step_size,
       min_price, max_price, tick_size, min_notional, max_notional
  FROM trading_guard.symbols ORDER BY symbol;

-- loading the same document again changes nothing and reports nothing
SELECT * FROM trading_guard.load_exchange_info(:'info');

-- a change is reported with the columns it touched; JSON numbers work too
SELECT * FROM trading_guard.load_exchange_info('{"symbols": [{"symbol": "ETHUSDT", "status": "HALT", "baseAsset": "ETH", "quoteAsset": "USDT", "filters": [{"filterType": "PRICE_FILTER", "minPrice": 0.01, "maxPrice": 100000, "tickSize": 0.05}, {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "9000.00000000", "stepSize": "0.00010000"}, {"filterType": "MIN_NOTIONAL", "minNotional": "5.00000000"}]}, {"symbol": "SOLUSDT", "status": "TRADING", "baseAsset": "SOL", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "9000", "stepSize": "0.001"}]}]}');
SELECT symbol, status, tick_size FROM trading_guard.symbols ORDER BY symbol;

-- malformed documents: each refused with TG051, and nothing is written
CREATE FUNCTION load_fails(doc text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM trading_guard.load_exchange_info(doc::jsonb);
    RETURN 'loaded';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT count(*) AS symbols_before, max(updated_at) AS last_change_before
  FROM trading_guard.symbols \gset

SELECT load_fails(doc) FROM (VALUES
  ('null'),
  ('[]'),
  ('{"timezone": "UTC"}'),
  ('{"symbols": {}}'),
  ('{"symbols": [42]}'),
  ('{"symbols": [{"status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT"}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "baseAsset": "XRP", "quoteAsset": "USDT"}]}'),
  ('{"symbols": [{"symbol": 7, "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT"}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDC"}]}'),
  ('{"symbols": [{"symbol": "xrpusdt", "status": "TRADING", "baseAsset": "xrp", "quoteAsset": "usdt"}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "SLEEPING", "baseAsset": "XRP", "quoteAsset": "USDT"}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT"}, {"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT"}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": {}}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"minQty": "1"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "10"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "10", "stepSize": "-0.1"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "10", "stepSize": -0.1}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "one", "maxQty": "10", "stepSize": "0.1"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "1", "maxQty": true, "stepSize": "0.1"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "PRICE_FILTER", "minPrice": "NaN", "maxPrice": "10", "tickSize": "0.1"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "PRICE_FILTER", "minPrice": "1e5", "maxPrice": "10", "tickSize": "0.1"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "PRICE_FILTER", "minPrice": "", "maxPrice": "10", "tickSize": "0.1"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "10", "maxQty": "1", "stepSize": "0.1"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "NOTIONAL", "maxNotional": "10"}]}]}'),
  ('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "10", "stepSize": "0.00000000000000000000001"}]}]}')
) AS v(doc);

-- a valid symbol before a broken one is not written either (all or nothing)
SELECT load_fails('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT"}, {"symbol": "ADAUSDT", "status": "TRADING", "baseAsset": "ADA", "quoteAsset": "USDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "10", "stepSize": "x"}]}]}');
SELECT count(*) = :symbols_before AS same_count,
       max(updated_at) = :'last_change_before' AS nothing_touched,
       NOT EXISTS (SELECT 1 FROM trading_guard.symbols WHERE symbol = 'XRPUSDT') AS no_xrp
  FROM trading_guard.symbols;

-- the table's own constraints hold for hand-written rows too
\set VERBOSITY terse
INSERT INTO trading_guard.symbols (symbol, base_asset, quote_asset, tick_size)
VALUES ('DOGEUSDT', 'DOGE', 'USDT', 'NaN');
INSERT INTO trading_guard.symbols (symbol, base_asset, quote_asset, step_size)
VALUES ('DOGEUSDT', 'DOGE', 'USDT', -1);
INSERT INTO trading_guard.symbols (symbol, base_asset, quote_asset)
VALUES ('DOGEUSD', 'DOGE', 'USDT');
INSERT INTO trading_guard.symbols (symbol, base_asset, quote_asset, status)
VALUES ('DOGEUSDT', 'DOGE', 'USDT', 'OPEN');
INSERT INTO trading_guard.symbols (symbol, base_asset, quote_asset, min_price, max_price)
VALUES ('DOGEUSDT', 'DOGE', 'USDT', 2, 1);
\set VERBOSITY default

-- ordinary roles may read the registry but not change it
CREATE ROLE tg_reader;
SET ROLE tg_reader;
SELECT count(*) > 0 AS can_read FROM trading_guard.symbols;
SELECT load_fails('{"symbols": [{"symbol": "XRPUSDT", "status": "TRADING", "baseAsset": "XRP", "quoteAsset": "USDT"}]}');
RESET ROLE;
DROP ROLE tg_reader;
