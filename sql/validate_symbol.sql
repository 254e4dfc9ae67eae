--
-- is_valid_symbol(), the symbol domain and trading_guard.quote_assets
--
SHOW trading_guard.quote_assets;

-- valid: base of 2 to 10 of A-Z0-9, then a quote asset
SELECT s, trading_guard.is_valid_symbol(s)
  FROM (VALUES ('BTCUSDT'), ('ETHUSDT'), ('1000SATSUSDT'), ('ABUSDT'),
               ('ABCDEFGHIJUSDT')) AS v(s);

-- invalid: each row is one kind of bad input
SELECT label, trading_guard.is_valid_symbol(s)
  FROM (VALUES
    ('null', NULL),
    ('empty', ''),
    ('lower case', 'btcusdt'),
    ('mixed case', 'BtcUSDT'),
    ('leading space', ' BTCUSDT'),
    ('trailing space', 'BTCUSDT '),
    ('inner space', 'BTC USDT'),
    ('NBSP', 'BTC' || U&'\00A0' || 'USDT'),
    ('tab', E'BTC\tUSDT'),
    ('newline', E'BTCUSDT\n'),
    ('zero-width space', 'BTC' || U&'\200B' || 'USDT'),
    ('zero-width joiner', U&'\200D' || 'BTCUSDT'),
    ('bidi override', U&'\202E' || 'BTCUSDT'),
    ('bidi isolate', 'BTC' || U&'\2066' || 'USDT'),
    ('BOM', U&'\FEFF' || 'BTCUSDT'),
    ('full-width letters', U&'\FF22\FF34\FF23' || 'USDT'),
    ('Cyrillic look-alike', U&'\0412' || 'TCUSDT'),
    ('Greek look-alike', U&'\0392' || 'TCUSDT'),
    ('dash', 'BTC-USDT'),
    ('slash', 'BTC/USDT'),
    ('underscore', 'BTC_USDT'),
    ('quote asset only', 'USDT'),
    ('base too short', 'BUSDT'),
    ('base too long', 'ABCDEFGHIJKUSDT'),
    ('unknown quote asset', 'BTCEUR'),
    ('quote asset in lower case', 'BTCusdt'),
    ('NUL-free control char', E'BTC\x01USDT')
  ) AS v(label, s)
 ORDER BY label;

-- 200 kB: refused from its length, without reading it all
SELECT trading_guard.is_valid_symbol(repeat('A', 200 * 1024));
CREATE TEMP TABLE big AS SELECT repeat('B', 200 * 1024) || 'USDT' AS s;
SELECT pg_column_size(s) < 200 * 1024 AS stored_compressed,
       trading_guard.is_valid_symbol(s) FROM big;

-- as a CHECK constraint: NULL is refused too (a NULL result would pass)
CREATE TABLE sym_check (s text CHECK (trading_guard.is_valid_symbol(s)));
INSERT INTO sym_check VALUES ('BTCUSDT');
INSERT INTO sym_check VALUES (NULL);
INSERT INTO sym_check VALUES ('btcusdt');
INSERT INTO sym_check VALUES ('BTC' || U&'\200B' || 'USDT');
SELECT * FROM sym_check;

-- the domain
SELECT 'ETHUSDT'::trading_guard.symbol;
SELECT ' ETHUSDT'::trading_guard.symbol;
SELECT NULL::trading_guard.symbol;

-- more quote assets
SET trading_guard.quote_assets = 'USDT, USDC,BTC';
SELECT s, trading_guard.is_valid_symbol(s)
  FROM (VALUES ('ETHBTC'), ('ETHUSDC'), ('ETHUSDT'), ('ETHEUR'), ('BTC')) AS v(s);
RESET trading_guard.quote_assets;
SELECT trading_guard.is_valid_symbol('ETHBTC');

-- bad settings are refused and leave the old value in place
SET trading_guard.quote_assets = 'usdt';
SET trading_guard.quote_assets = '';
SET trading_guard.quote_assets = 'USDT,,BTC';
SET trading_guard.quote_assets = 'USDT BTC';
SET trading_guard.quote_assets = 'U';
SET trading_guard.quote_assets = 'ABCDEFGHIJK';
SELECT set_config('trading_guard.quote_assets', 'US' || U&'\00A0' || 'DT', false);
SHOW trading_guard.quote_assets;

-- only superusers may change what the validators accept
CREATE ROLE tg_plain_user;
SET ROLE tg_plain_user;
SET trading_guard.quote_assets = 'EUR';
RESET ROLE;
DROP ROLE tg_plain_user;
