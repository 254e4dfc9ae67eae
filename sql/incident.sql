--
-- Incident response (1.7): trading halts, order and signing limits, the
-- credential kill switch and the incident report.  Concurrent sessions are
-- in test/isolation/specs/halt_concurrent.spec and limit_concurrent.spec;
-- restarts, pgbench load, standbys and the security events in
-- test/t/014_incident.pl.
--
\set VERBOSITY default
SET trading_guard.reject_literal_secrets = off;

SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
 {"symbol": "SOLUSDT", "status": "TRADING", "baseAsset": "SOL", "quoteAsset": "USDT", "filters": []},
 {"symbol": "ADAUSDT", "status": "TRADING", "baseAsset": "ADA", "quoteAsset": "USDT", "filters": []}]}');

CREATE SCHEMA ir;
CREATE TABLE ir.orders (
    id bigserial PRIMARY KEY,
    symbol text NOT NULL,
    side text NOT NULL,
    quantity numeric NOT NULL,
    price numeric,
    status text NOT NULL DEFAULT 'NEW',
    account text,
    exchange text
);
-- the same orders without account and exchange columns
CREATE TABLE ir.plain_orders (LIKE ir.orders INCLUDING DEFAULTS);
ALTER TABLE ir.plain_orders DROP COLUMN account, DROP COLUMN exchange;
SELECT trading_guard.protect_orders('ir.orders', account_col => 'account', exchange_col => 'exchange');
SELECT trading_guard.protect_orders('ir.plain_orders');
SELECT table_name, account_column, exchange_column FROM trading_guard.protected_tables
 WHERE table_name::text LIKE 'ir.%' ORDER BY 1;
-- the new columns must be text
SELECT trading_guard.protect_orders('ir.orders', account_col => 'quantity');
SELECT trading_guard.protect_orders('ir.orders', account_col => 'symbol');
SELECT trading_guard.protect_orders('ir.orders', exchange_col => 'nope');

CREATE ROLE ir_bot;
CREATE ROLE ir_bot2;
CREATE ROLE ir_oncall;
GRANT ir_bot2 TO ir_bot;
GRANT USAGE ON SCHEMA ir TO ir_bot, ir_bot2;
GRANT ALL ON ALL TABLES IN SCHEMA ir TO ir_bot, ir_bot2;
GRANT ALL ON ALL SEQUENCES IN SCHEMA ir TO ir_bot, ir_bot2;

------------------------------------------------------------------------
-- halt_trading / resume_trading / trading_status
------------------------------------------------------------------------
-- bad calls
SELECT trading_guard.halt_trading(NULL);
SELECT trading_guard.halt_trading('  ');
SELECT trading_guard.halt_trading(repeat('x', 201));
SELECT trading_guard.halt_trading('r', exchange => '');
SELECT trading_guard.halt_trading('r', symbol => 'btc-usdt');
SELECT trading_guard.resume_trading();
SELECT trading_guard.resume_trading(exchange => 'binance');

-- a halt of everything
SELECT trading_guard.halt_trading('runbook drill') AS drill_id \gset
SELECT trading_guard.halt_trading('twice');
SELECT scope, exchange, symbol, role, reason, halted_by = current_user AS by_me
  FROM trading_guard.trading_status();
INSERT INTO ir.orders (symbol, side, quantity, price) VALUES ('SOLUSDT', 'BUY', 1, 150);
INSERT INTO ir.plain_orders (symbol, side, quantity, price) VALUES ('SOLUSDT', 'BUY', 1, 150);
COPY ir.plain_orders (symbol, side, quantity, price) FROM stdin;
SOLUSDT	SELL	2	151
\.
SELECT trading_guard.resume_trading() = :drill_id AS resumed;
SELECT count(*) FROM trading_guard.trading_status();

-- what counts as a new order during a halt: INSERT, and UPDATE of an
-- order column; a status change and DELETE are not
INSERT INTO ir.orders (symbol, side, quantity, price, exchange, account)
VALUES ('SOLUSDT', 'BUY', 1, 150, 'binance', 'desk1'),
       ('SOLUSDT', 'SELL', 2, 151, 'binance', 'desk1'),
       ('ADAUSDT', 'BUY', 10, 0.5, 'kraken', 'desk2');
SELECT trading_guard.halt_trading('suspicious withdrawals', exchange => 'binance') AS h \gset
UPDATE ir.orders SET status = 'CANCELED' WHERE exchange = 'binance' AND side = 'BUY';
UPDATE ir.orders SET quantity = 3 WHERE exchange = 'binance' AND side = 'SELL';
UPDATE ir.orders SET quantity = quantity WHERE exchange = 'binance' AND side = 'SELL';
UPDATE ir.orders SET exchange = 'kraken' WHERE exchange = 'binance' AND side = 'SELL';
UPDATE ir.orders SET price = 0.6 WHERE exchange = 'kraken';
DELETE FROM ir.orders WHERE status = 'CANCELED';
-- scope: another exchange trades on; a table without an exchange column is
-- in the scope of every exchange halt; an order with no exchange value too
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
INSERT INTO ir.plain_orders (symbol, side, quantity, price) VALUES ('SOLUSDT', 'BUY', 1, 150);
INSERT INTO ir.orders (symbol, side, quantity, price) VALUES ('SOLUSDT', 'BUY', 1, 150);
-- an invalid order in scope: the halt speaks first
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('solusdt', 'BUY', 1, 150, 'binance');
SELECT trading_guard.resume_trading(exchange => 'binance') = :h AS resumed;

-- a symbol halt
SELECT trading_guard.halt_trading('delisting', symbol => 'ADAUSDT') > 0 AS halted;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('ADAUSDT', 'BUY', 10, 0.5, 'kraken');
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
SELECT trading_guard.resume_trading(symbol => 'ADAUSDT') > 0 AS resumed;

-- a role halt applies to the current user and to the session user
SELECT trading_guard.halt_trading('bot compromised', role => 'ir_bot') > 0 AS halted;
SELECT scope FROM trading_guard.trading_status;
SET ROLE ir_bot;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
RESET ROLE;
SET ROLE ir_bot2;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
RESET ROLE;
SET SESSION AUTHORIZATION ir_bot;
SET ROLE ir_bot2;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
RESET SESSION AUTHORIZATION;
SELECT trading_guard.resume_trading(role => 'ir_bot') > 0 AS resumed;

-- transactional: a halt rolled back never happened; in its own transaction
-- a halt applies from the next command
BEGIN;
SELECT trading_guard.halt_trading('oops') > 0 AS halted;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
ROLLBACK;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
SELECT count(*) FROM trading_guard.trading_halts;

-- who may halt: a dedicated grant, not superuser; anyone may see the status
SET ROLE ir_oncall;
SELECT trading_guard.halt_trading('not mine');
SELECT count(*) FROM trading_guard.trading_status();
SELECT count(*) FROM trading_guard.trading_status;
RESET ROLE;
-- (grants on the extension's objects are made in maintenance mode, recorded)
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT EXECUTE ON FUNCTION trading_guard.halt_trading(text, text, text, regrole),
                          trading_guard.resume_trading(text, text, regrole) TO ir_oncall;
COMMIT;
SET ROLE ir_oncall;
SELECT trading_guard.halt_trading('on-call drill', exchange => 'kraken') > 0 AS halted;
SELECT scope, reason FROM trading_guard.trading_status();
SELECT trading_guard.resume_trading(exchange => 'kraken') > 0 AS resumed;
RESET ROLE;

-- every halt and resume is in the audit trail, with who did it
SELECT operation, session_user_name, new_row->>'exchange' AS exchange, new_row->>'symbol' AS symbol,
       new_row->>'role' AS role, new_row->>'reason' AS reason
  FROM trading_guard.audit_log
 WHERE table_name = 'trading_halts' ORDER BY id;

------------------------------------------------------------------------
-- Order limits
------------------------------------------------------------------------
SELECT trading_guard.set_order_limit(NULL, orders_per_minute => 1);
SELECT trading_guard.set_order_limit('ir_bot');
SELECT trading_guard.set_order_limit('ir_bot', orders_per_minute => 0);
SELECT trading_guard.set_order_limit('ir_bot', max_notional => 10000000000);
SELECT trading_guard.set_order_limit('ir_bot', max_notional => 1, notional_window => '0.5 seconds');
SELECT trading_guard.set_order_limit('ir_bot', max_notional => 1, notional_window => '8 days');
SELECT trading_guard.set_order_limit('ir_bot', orders_per_minute => 1, account => '');

-- the seed's "100 per minute", replaced by 3 per minute; notional per order
SELECT trading_guard.set_order_limit('ir_bot', orders_per_minute => 100);
SELECT trading_guard.set_order_limit('ir_bot', orders_per_minute => 3, max_order_notional => 1000);
SELECT role, account, orders_per_second, orders_per_minute, max_order_notional, max_notional, notional_window
  FROM trading_guard.order_limits;
SET ROLE ir_bot;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 7, 150, 'kraken');
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 6.666, 150.01, 'kraken');
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
-- a rolled back order still used its room
BEGIN;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
ROLLBACK;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
-- a market order cannot be checked against a notional limit
INSERT INTO ir.orders (symbol, side, quantity, exchange) VALUES ('SOLUSDT', 'BUY', 1, 'kraken');
RESET ROLE;
-- another role is not limited by ir_bot's limits
SET ROLE ir_bot2;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 7, 150, 'kraken');
RESET ROLE;
SELECT subject_kind, role, account, limit_name, limit_value, window_seconds, used, admitted, refused,
       last_refused IS NOT NULL AS refused_recently
  FROM trading_guard.limit_usage WHERE role = 'ir_bot'::regrole ORDER BY limit_name;
SELECT role, limit_name, refused FROM trading_guard.over_limit WHERE role = 'ir_bot'::regrole ORDER BY 2;

-- orders per second: a multi-row statement is refused whole
SELECT trading_guard.set_order_limit('ir_bot2', orders_per_second => 3);
SET ROLE ir_bot2;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange)
SELECT 'SOLUSDT', 'BUY', 1, 150, 'kraken' FROM generate_series(1, 4);
RESET ROLE;
SELECT limit_name, admitted, refused FROM trading_guard.limit_usage WHERE role = 'ir_bot2'::regrole;

-- exposure: notional per rolling window, per account
SELECT trading_guard.drop_order_limit('ir_bot2');
SELECT trading_guard.drop_order_limit('ir_bot2');
SELECT trading_guard.set_order_limit('ir_bot2', max_notional => 1000, notional_window => '1 hour', account => 'desk1');
SET ROLE ir_bot2;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange, account) VALUES ('SOLUSDT', 'BUY', 4, 150, 'kraken', 'desk1');
INSERT INTO ir.orders (symbol, side, quantity, price, exchange, account) VALUES ('SOLUSDT', 'BUY', 2, 200, 'kraken', 'desk1');
INSERT INTO ir.orders (symbol, side, quantity, price, exchange, account) VALUES ('SOLUSDT', 'BUY', 0.00000001, 0.5, 'kraken', 'desk1');
-- another account, no account, and a table without an account column
INSERT INTO ir.orders (symbol, side, quantity, price, exchange, account) VALUES ('SOLUSDT', 'BUY', 10, 150, 'kraken', 'desk2');
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 10, 150, 'kraken');
INSERT INTO ir.plain_orders (symbol, side, quantity, price) VALUES ('SOLUSDT', 'BUY', 10, 150);
RESET ROLE;
SELECT account, limit_name, limit_value, window_seconds, used, admitted, refused
  FROM trading_guard.limit_usage WHERE role = 'ir_bot2'::regrole;

-- who may set limits: nobody but the owner and those granted
SET ROLE ir_oncall;
SELECT trading_guard.set_order_limit('ir_bot', orders_per_minute => 1000000);
SELECT count(*) FROM trading_guard.limit_usage;
RESET ROLE;
SELECT operation, new_row->>'role' AS role, new_row->>'account' AS account
  FROM trading_guard.audit_log WHERE table_name = 'order_limits' ORDER BY id;

------------------------------------------------------------------------
-- Signing: limits, and the cancel and read purposes on a halted exchange
------------------------------------------------------------------------
SELECT trading_guard.store_credential('binance', 'ir', 'k-ir',
         'NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j') > 0 AS stored;
SELECT trading_guard.store_credential('kraken', 'ir', 'k-ir2', 'kraken-secret-for-the-incident-test') > 0 AS stored;
SELECT trading_guard.set_sign_limit('binance', 'ir');
SELECT trading_guard.set_sign_limit('binance', 'ir', requests_per_minute => -1);
SELECT trading_guard.set_sign_limit('binance', 'ir', requests_per_minute => 2);
SELECT length(trading_guard.sign_request('binance', 'ir', 'a=1')) AS signed;
SELECT length(trading_guard.sign_request('binance', 'ir', 'a=2', 'read')) AS signed;
SELECT length(trading_guard.sign_request('binance', 'ir', 'a=3')) AS signed;
SELECT length(trading_guard.sign_request('kraken', 'ir', 'a=3')) AS signed;
SELECT exchange, label, limit_name, limit_value, used, admitted, refused
  FROM trading_guard.limit_usage WHERE subject_kind = 'sign';
SELECT trading_guard.drop_sign_limit('binance', 'ir');

SELECT trading_guard.sign_request('binance', 'ir', 'a=1', 'bogus');
SELECT trading_guard.sign_request('binance', 'ir', 'a=1', NULL);
SELECT trading_guard.halt_trading('exchange incident', exchange => 'binance') > 0 AS halted;
-- the Binance documentation's example order: refused; declared a cancel: signed
SELECT trading_guard.sign_request('binance', 'ir',
         'symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559');
SELECT trading_guard.sign_request('binance', 'ir',
         'symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559', 'order');
SELECT trading_guard.sign_request('binance', 'ir',
         'symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559', 'cancel')
       = 'c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71' AS a_lie_is_signed;
-- the exchange's pattern for a cancel closes that door
SELECT trading_guard.set_sign_purpose('binance', 'cancel', '(');
SELECT trading_guard.set_sign_purpose('binance', 'trade', '.');
SELECT trading_guard.set_sign_purpose('binance', 'cancel', '^(?!.*(side|quantity|price)=)');
SELECT trading_guard.sign_request('binance', 'ir',
         'symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559', 'cancel');
SELECT length(trading_guard.sign_request('binance', 'ir', 'symbol=LTCBTC&orderId=4&timestamp=1499827319559', 'cancel')) AS cancel_signed;
SELECT length(trading_guard.sign_request('binance', 'ir', 'symbol=LTCBTC&timestamp=1499827319559', 'read')) AS read_signed;
-- other exchanges sign on
SELECT length(trading_guard.sign_request('kraken', 'ir', 'pair=XBTUSD&type=buy')) AS other_exchange_signed;
SELECT trading_guard.set_sign_purpose('binance', 'cancel', NULL);
SELECT count(*) FROM trading_guard.sign_purposes;
SELECT trading_guard.resume_trading(exchange => 'binance') > 0 AS resumed;
SELECT length(trading_guard.sign_request('binance', 'ir', 'symbol=LTCBTC&side=BUY')) AS signed_again;
-- a role halt stops that role's signatures
SELECT trading_guard.halt_trading('signing bot compromised', role => current_user::regrole) > 0 AS halted;
SELECT trading_guard.sign_request('kraken', 'ir', 'pair=XBTUSD&type=buy');
SELECT trading_guard.resume_trading(role => current_user::regrole) > 0 AS resumed;
SELECT exchange, label, limit_name, refused FROM trading_guard.limit_usage
 WHERE subject_kind = 'sign' AND limit_name = 'halt' ORDER BY 1;

------------------------------------------------------------------------
-- Kill switch
------------------------------------------------------------------------
SELECT trading_guard.store_credential('binance', 'ir2', 'k-ir3', 'a-second-binance-secret-for-tests') > 0 AS stored;
SET ROLE ir_oncall;
SELECT trading_guard.revoke_all_credentials('binance');
RESET ROLE;
SELECT trading_guard.revoke_all_credentials('binance');
SELECT trading_guard.revoke_all_credentials('binance');
SELECT trading_guard.sign_request('binance', 'ir', 'a=1');
SELECT length(trading_guard.sign_request('kraken', 'ir', 'a=1')) AS kraken_still_signs;
SELECT exchange, label, revoked_at IS NOT NULL AS revoked FROM trading_guard.credential_store
 WHERE label LIKE 'ir%' ORDER BY id;
SELECT operation, new_row FROM trading_guard.audit_log WHERE operation = 'REVOKE ALL' ORDER BY id;

------------------------------------------------------------------------
-- incident_report
------------------------------------------------------------------------
SELECT * FROM trading_guard.incident_report(NULL);
SELECT * FROM trading_guard.incident_report(now(), now() - interval '1 second');
SELECT section, subject, count, detail
  FROM trading_guard.incident_report(now() - interval '1 hour')
 WHERE (section = 'report' AND (subject LIKE 'ir.%' OR subject = 'security events'))
    OR section = 'active_halts'
    OR (section = 'rows_changed' AND subject LIKE 'trading_guard.%'
        AND detail->>'operation' IN ('HALT', 'RESUME', 'SET LIMIT', 'REVOKE ALL'))
 ORDER BY section, subject, detail->>'operation';
-- orders written are counted from the audit trail of the order tables
SELECT trading_guard.enable_audit('ir.orders');
SET ROLE ir_bot2;
SET trading_guard.actor = 'desk-7';
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'SELL', 1, 150, 'kraken');
UPDATE ir.orders SET status = 'FILLED' WHERE side = 'SELL' AND status = 'NEW';
RESET trading_guard.actor;
RESET ROLE;
SELECT section, subject, count, detail
  FROM trading_guard.incident_report(now() - interval '1 hour')
 WHERE section = 'orders_written' OR (section = 'report' AND subject LIKE 'ir.%') ORDER BY 1, 2;
-- only the grant makes the report
SET ROLE ir_oncall;
SELECT count(*) FROM trading_guard.incident_report(now() - interval '1 hour');
RESET ROLE;

------------------------------------------------------------------------
-- Hostile operators on the caller's path take no part
------------------------------------------------------------------------
CREATE SCHEMA ir_evil;
CREATE FUNCTION ir_evil.eq(text, text) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hostile operator called'; END $$;
CREATE OPERATOR ir_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = ir_evil.eq);
CREATE FUNCTION ir_evil.gt(timestamptz, timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hostile operator called'; END $$;
CREATE OPERATOR ir_evil.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = ir_evil.gt);
SET search_path = ir_evil, pg_catalog, public;
SELECT trading_guard.halt_trading('hostile path', exchange => 'kraken') > 0 AS halted;
INSERT INTO ir.orders (symbol, side, quantity, price, exchange) VALUES ('SOLUSDT', 'BUY', 1, 150, 'kraken');
SELECT trading_guard.resume_trading(exchange => 'kraken') > 0 AS resumed;
SELECT trading_guard.set_sign_limit('kraken', 'ir', requests_per_minute => 1000);
SELECT length(trading_guard.sign_request('kraken', 'ir', 'a=1', 'read')) AS signed;
SELECT trading_guard.drop_sign_limit('kraken', 'ir');
SELECT count(*) > 0 AS reported FROM trading_guard.incident_report(now() - interval '1 hour');
SELECT count(*) > 0 AS listed FROM trading_guard.over_limit;
RESET search_path;

-- clean up what later tests do not expect
SELECT trading_guard.drop_order_limit('ir_bot'), trading_guard.drop_order_limit('ir_bot2', 'desk1');
SELECT trading_guard.disable_audit('ir.orders');
DROP SCHEMA ir CASCADE;
DROP SCHEMA ir_evil CASCADE;
DROP ROLE ir_bot, ir_bot2;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
REVOKE ALL ON FUNCTION trading_guard.halt_trading(text, text, text, regrole),
                       trading_guard.resume_trading(text, text, regrole) FROM ir_oncall;
COMMIT;
DROP ROLE ir_oncall;
DELETE FROM trading_guard.symbols WHERE symbol IN ('SOLUSDT', 'ADAUSDT');
