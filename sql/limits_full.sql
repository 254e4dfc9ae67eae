--
-- The shared-memory table of limit subjects (1024 per server, src/risk_limits.c)
-- when it is full: a new subject takes the entry of one whose windows are
-- empty; when every entry is busy, the order is refused (54000), never let
-- through uncounted.  This test fills the table with subjects busy for an
-- hour, so it runs last: nothing after it in this instance may need a new
-- limit subject.
--
CREATE SCHEMA lf;
CREATE TABLE lf.orders (id bigserial PRIMARY KEY, symbol text NOT NULL, side text NOT NULL,
                        quantity numeric NOT NULL, price numeric, account text);
SELECT trading_guard.protect_orders('lf.orders', account_col => 'account');
SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
 {"symbol": "DOTUSDT", "status": "TRADING", "baseAsset": "DOT", "quoteAsset": "USDT", "filters": []}]}');
CREATE ROLE lf_many;
GRANT USAGE ON SCHEMA lf TO lf_many;
GRANT INSERT ON lf.orders TO lf_many;
GRANT USAGE ON SEQUENCE lf.orders_id_seq TO lf_many;
-- an entry with no window: the count of a halt's refusals for lf_idle
CREATE ROLE lf_idle;
GRANT USAGE ON SCHEMA lf TO lf_idle;
GRANT INSERT ON lf.orders TO lf_idle;
GRANT USAGE ON SEQUENCE lf.orders_id_seq TO lf_idle;
SELECT trading_guard.halt_trading('lf_idle is idle', role => 'lf_idle') > 0 AS halted;
SET ROLE lf_idle;
INSERT INTO lf.orders (symbol, side, quantity, price) VALUES ('DOTUSDT', 'BUY', 1, 1);
RESET ROLE;
SELECT trading_guard.resume_trading(role => 'lf_idle') > 0 AS resumed;
SELECT role, limit_name, refused FROM trading_guard.limit_usage WHERE role = 'lf_idle'::regrole;
SELECT count(*) AS limits FROM (SELECT trading_guard.set_order_limit('lf_many', max_notional => 1000,
                                         notional_window => '1 hour', account => 'acct' || g)
                                  FROM generate_series(1, 1100) g) x;
SET ROLE lf_many;
CREATE TEMP TABLE lf_outcome (admitted int, refused int);
DO $$
DECLARE
    admitted int := 0;
    refused int := 0;
BEGIN
    FOR g IN 1 .. 1100 LOOP
        BEGIN
            INSERT INTO lf.orders (symbol, side, quantity, price, account)
            VALUES ('DOTUSDT', 'BUY', 1, 1, 'acct' || g);
            admitted := admitted + 1;
        EXCEPTION WHEN configuration_limit_exceeded THEN
            refused := refused + 1;
        END;
    END LOOP;
    INSERT INTO lf_outcome VALUES (admitted, refused);
END $$;
RESET ROLE;
-- (how many earlier entries were idle, and so made room, depends on the
-- tests before and how long they took: not shown)
SELECT admitted + refused AS orders, admitted > 1000 AS most_admitted, refused > 0 AS refused_when_full
  FROM lf_outcome;
SELECT count(*) = (SELECT admitted FROM lf_outcome) AS every_admitted_order_stored FROM lf.orders;
-- the idle entry made room before any order was refused
SELECT count(*) AS lf_idle_entries FROM trading_guard.limit_usage WHERE role = 'lf_idle'::regrole;
SET ROLE lf_many;
INSERT INTO lf.orders (symbol, side, quantity, price, account) VALUES ('DOTUSDT', 'BUY', 1, 1, 'acct1100');
RESET ROLE;

SELECT count(*) AS dropped FROM (SELECT trading_guard.drop_order_limit('lf_many', 'acct' || g)
                                   FROM generate_series(1, 1100) g) x;
SELECT trading_guard.unprotect_orders('lf.orders');
DROP SCHEMA lf CASCADE;
DROP TABLE lf_outcome;
DROP ROLE lf_many, lf_idle;
DELETE FROM trading_guard.symbols WHERE symbol = 'DOTUSDT';
