/* trading_guard--1.6--1.7.sql — 1.7: incident response (halts, limits, kill switch, report) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.7'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Trading halts (src/halt.c; README "Incident response").  A halt is a row
-- of trading_halts: every backend caches the table and follows it through
-- relcache invalidations (src/own_tables.c), which reach every session of
-- the server at its next order or signature -- inside a running transaction
-- too -- and every streaming standby through the commit record's WAL.
-- NULL in exchange, symbol or role means "any".
-- ---------------------------------------------------------------------------
CREATE SEQUENCE trading_guard.trading_halts_id_seq;
CREATE TABLE trading_guard.trading_halts (
    id          bigint PRIMARY KEY
                DEFAULT pg_catalog.nextval('trading_guard.trading_halts_id_seq'::pg_catalog.regclass),
    exchange    text,
    symbol      text,
    role        pg_catalog.regrole,
    reason      text NOT NULL,
    halted_by   name NOT NULL DEFAULT SESSION_USER,
    halted_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT trading_halts_scope UNIQUE NULLS NOT DISTINCT (exchange, symbol, role)
);
COMMENT ON TABLE trading_guard.trading_halts IS
'active trading halts; written by halt_trading() and resume_trading() only';
REVOKE ALL ON trading_guard.trading_halts FROM PUBLIC;
ALTER SEQUENCE trading_guard.trading_halts_id_seq OWNED BY trading_guard.trading_halts.id;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.trading_halts', '');
SELECT pg_catalog.pg_extension_config_dump('trading_guard.trading_halts_id_seq', '');

-- Pre-trade limits per role (account NULL: all of the role's orders) or per
-- (role, account column value).  Notional limits are in the quote asset.
CREATE TABLE trading_guard.order_limits (
    role                pg_catalog.regrole NOT NULL,
    account             text,
    orders_per_second   integer CHECK (orders_per_second > 0),
    orders_per_minute   integer CHECK (orders_per_minute > 0),
    max_order_notional  numeric CHECK (max_order_notional > 0 AND max_order_notional < 10000000000),
    max_notional        numeric CHECK (max_notional > 0 AND max_notional < 10000000000),
    notional_window     interval NOT NULL DEFAULT '1 hour'
                        CHECK (notional_window >= '1 second' AND notional_window <= '7 days'),
    set_by              name NOT NULL DEFAULT SESSION_USER,
    set_at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT order_limits_subject UNIQUE NULLS NOT DISTINCT (role, account),
    CONSTRAINT order_limits_some CHECK (orders_per_second IS NOT NULL OR orders_per_minute IS NOT NULL
        OR max_order_notional IS NOT NULL OR max_notional IS NOT NULL)
);
COMMENT ON TABLE trading_guard.order_limits IS
'order rate and exposure limits checked by the protect_orders trigger; written by set_order_limit()';
REVOKE ALL ON trading_guard.order_limits FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.order_limits', '');

-- Request limits per credential (exchange, label), checked by sign_request
CREATE TABLE trading_guard.sign_limits (
    exchange             text NOT NULL,
    label                text NOT NULL,
    requests_per_second  integer CHECK (requests_per_second > 0),
    requests_per_minute  integer CHECK (requests_per_minute > 0),
    set_by               name NOT NULL DEFAULT SESSION_USER,
    set_at               timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (exchange, label),
    CONSTRAINT sign_limits_some CHECK (requests_per_second IS NOT NULL OR requests_per_minute IS NOT NULL)
);
COMMENT ON TABLE trading_guard.sign_limits IS
'signing rate limits per credential, checked by sign_request(); written by set_sign_limit()';
REVOKE ALL ON trading_guard.sign_limits FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.sign_limits', '');

-- What a declared cancel or read must look like on a halted exchange: when
-- a row exists for (exchange, purpose), sign_request(..., purpose) honours
-- the purpose during a halt only if the payload matches the pattern
CREATE TABLE trading_guard.sign_purposes (
    exchange         text NOT NULL,
    purpose          text NOT NULL CHECK (purpose IN ('cancel', 'read')),
    payload_pattern  text NOT NULL,
    PRIMARY KEY (exchange, purpose)
);
COMMENT ON TABLE trading_guard.sign_purposes IS
'per exchange, the regular expression a payload declared a cancel or a read must match to be signed during a halt';
REVOKE ALL ON trading_guard.sign_purposes FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.sign_purposes', '');

-- every backend's caches follow these tables (src/own_tables.c)
CREATE TRIGGER trading_halts_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.trading_halts
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.cache_invalidate();
ALTER TABLE trading_guard.trading_halts ENABLE ALWAYS TRIGGER trading_halts_changed;
CREATE TRIGGER order_limits_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.order_limits
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.cache_invalidate();
ALTER TABLE trading_guard.order_limits ENABLE ALWAYS TRIGGER order_limits_changed;
CREATE TRIGGER sign_limits_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.sign_limits
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.cache_invalidate();
ALTER TABLE trading_guard.sign_limits ENABLE ALWAYS TRIGGER sign_limits_changed;
CREATE TRIGGER sign_purposes_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.sign_purposes
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.cache_invalidate();
ALTER TABLE trading_guard.sign_purposes ENABLE ALWAYS TRIGGER sign_purposes_changed;

-- A security event of an incident-response call, queued when (and only if)
-- the calling transaction commits.  Internal: for the functions below.
CREATE FUNCTION trading_guard.record_incident_event(event_type text, reason text,
                                                    exchange text, detail jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'tg_record_incident_event'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION trading_guard.record_incident_event(text, text, text, jsonb) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- halt_trading / resume_trading / trading_status
-- ---------------------------------------------------------------------------
CREATE FUNCTION trading_guard.halt_trading(reason text, exchange text DEFAULT NULL,
                                           symbol text DEFAULT NULL,
                                           role pg_catalog.regrole DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id bigint;
    scope jsonb;
BEGIN
    IF reason IS NULL OR btrim(reason) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a halt needs a reason' USING ERRCODE = '22004',
            HINT = 'Say why, for example halt_trading(''suspicious withdrawals'').';
    END IF;
    IF length(reason) OPERATOR(pg_catalog.>) 200 THEN
        RAISE EXCEPTION 'the reason of a halt is at most 200 characters' USING ERRCODE = '22001';
    END IF;
    IF exchange IS NOT NULL AND (exchange OPERATOR(pg_catalog.=) ''
                                 OR length(exchange) OPERATOR(pg_catalog.>) 63) THEN
        RAISE EXCEPTION 'exchange must be 1 to 63 characters' USING ERRCODE = '22023';
    END IF;
    IF symbol IS NOT NULL AND NOT trading_guard.is_valid_symbol(symbol) THEN
        RAISE EXCEPTION 'symbol "%" is not a valid symbol', symbol USING ERRCODE = 'TG001',
            HINT = 'Symbols are upper-case, like BTCUSDT.';
    END IF;
    scope := jsonb_strip_nulls(jsonb_build_object('exchange', exchange, 'symbol', symbol,
                                                  'role', role::text));
    INSERT INTO trading_guard.trading_halts AS h (exchange, symbol, role, reason)
    VALUES (halt_trading.exchange, halt_trading.symbol, halt_trading.role, halt_trading.reason)
    ON CONFLICT ON CONSTRAINT trading_halts_scope DO NOTHING
    RETURNING h.id INTO new_id;
    IF new_id IS NULL THEN
        RAISE EXCEPTION 'trading is already halted for this scope' USING ERRCODE = 'TG107',
            DETAIL = format('Scope: %s.', scope),
            HINT = 'See trading_guard.trading_status.';
    END IF;
    PERFORM trading_guard.audit_record('HALT', 'trading_guard.trading_halts'::regclass,
        scope OPERATOR(pg_catalog.||) jsonb_build_object('id', new_id, 'reason', reason));
    PERFORM trading_guard.record_incident_event('halt', reason, exchange,
        scope OPERATOR(pg_catalog.||) jsonb_build_object('action', 'halt', 'halt_id', new_id));
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION trading_guard.halt_trading(text, text, text, pg_catalog.regrole) IS
'halt trading (everything, or one exchange, symbol or role): new orders and signatures in scope are refused until resume_trading()';

CREATE FUNCTION trading_guard.resume_trading(exchange text DEFAULT NULL,
                                             symbol text DEFAULT NULL,
                                             role pg_catalog.regrole DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    h trading_guard.trading_halts;
    scope jsonb := jsonb_strip_nulls(jsonb_build_object('exchange', exchange, 'symbol', symbol,
                                                        'role', role::text));
BEGIN
    DELETE FROM trading_guard.trading_halts t
     WHERE t.exchange IS NOT DISTINCT FROM resume_trading.exchange
       AND t.symbol IS NOT DISTINCT FROM resume_trading.symbol
       AND t.role IS NOT DISTINCT FROM resume_trading.role
    RETURNING * INTO h;
    IF h.id IS NULL THEN
        RAISE EXCEPTION 'trading is not halted for this scope' USING ERRCODE = 'TG105',
            DETAIL = format('Scope: %s.', scope),
            HINT = 'resume_trading() takes the scope halt_trading() was given; see trading_guard.trading_status.';
    END IF;
    PERFORM trading_guard.audit_record('RESUME', 'trading_guard.trading_halts'::regclass,
        scope OPERATOR(pg_catalog.||) jsonb_build_object('id', h.id, 'reason', h.reason,
                                                          'halted_at', h.halted_at,
                                                          'halted_by', h.halted_by));
    PERFORM trading_guard.record_incident_event('halt', h.reason, exchange,
        scope OPERATOR(pg_catalog.||) jsonb_build_object('action', 'resume', 'halt_id', h.id,
                                                          'halted_at', h.halted_at));
    RETURN h.id;
END
$$;
COMMENT ON FUNCTION trading_guard.resume_trading(text, text, pg_catalog.regrole) IS
'lift the halt of exactly this scope (as given to halt_trading); returns its id';

CREATE VIEW trading_guard.trading_status AS
SELECT h.id, CASE WHEN h.exchange IS NULL AND h.symbol IS NULL AND h.role IS NULL
                  THEN 'everything'
                  ELSE pg_catalog.concat_ws(', ',
                         'exchange ' OPERATOR(pg_catalog.||) h.exchange,
                         'symbol ' OPERATOR(pg_catalog.||) h.symbol,
                         'role ' OPERATOR(pg_catalog.||) h.role::text) END AS scope,
       h.exchange, h.symbol, h.role, h.reason, h.halted_by, h.halted_at AS since
  FROM trading_guard.trading_halts h;
COMMENT ON VIEW trading_guard.trading_status IS 'the active trading halts';

CREATE FUNCTION trading_guard.trading_status()
RETURNS SETOF trading_guard.trading_status
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM trading_guard.trading_status ORDER BY id $$;
COMMENT ON FUNCTION trading_guard.trading_status() IS 'the active trading halts (for roles without SELECT on the view)';

REVOKE ALL ON FUNCTION trading_guard.halt_trading(text, text, text, pg_catalog.regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.resume_trading(text, text, pg_catalog.regrole) FROM PUBLIC;
REVOKE ALL ON trading_guard.trading_status FROM PUBLIC;
-- any role may see whether (and why) trading is halted: bots need to know
GRANT EXECUTE ON FUNCTION trading_guard.trading_status() TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Limits
-- ---------------------------------------------------------------------------
CREATE FUNCTION trading_guard.set_order_limit(role pg_catalog.regrole,
                                              orders_per_second integer DEFAULT NULL,
                                              orders_per_minute integer DEFAULT NULL,
                                              max_order_notional numeric DEFAULT NULL,
                                              max_notional numeric DEFAULT NULL,
                                              notional_window interval DEFAULT '1 hour',
                                              account text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    detail jsonb;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be null' USING ERRCODE = '22004';
    END IF;
    IF orders_per_second IS NULL AND orders_per_minute IS NULL
       AND max_order_notional IS NULL AND max_notional IS NULL THEN
        RAISE EXCEPTION 'set_order_limit() needs at least one limit' USING ERRCODE = '22023',
            HINT = 'To remove a role''s limits use drop_order_limit().';
    END IF;
    IF orders_per_second OPERATOR(pg_catalog.<=) 0 OR orders_per_minute OPERATOR(pg_catalog.<=) 0
       OR max_order_notional OPERATOR(pg_catalog.<=) 0 OR max_notional OPERATOR(pg_catalog.<=) 0 THEN
        RAISE EXCEPTION 'limits must be positive' USING ERRCODE = '22023';
    END IF;
    IF max_order_notional OPERATOR(pg_catalog.>=) 10000000000
       OR max_notional OPERATOR(pg_catalog.>=) 10000000000 THEN
        RAISE EXCEPTION 'notional limits must be below 10000000000' USING ERRCODE = '22023';
    END IF;
    IF notional_window IS NULL OR notional_window OPERATOR(pg_catalog.<) '1 second'::interval
       OR notional_window OPERATOR(pg_catalog.>) '7 days'::interval THEN
        RAISE EXCEPTION 'notional_window must be between 1 second and 7 days' USING ERRCODE = '22023';
    END IF;
    IF account IS NOT NULL AND (account OPERATOR(pg_catalog.=) '' OR length(account) OPERATOR(pg_catalog.>) 63) THEN
        RAISE EXCEPTION 'account must be 1 to 63 characters' USING ERRCODE = '22023';
    END IF;
    INSERT INTO trading_guard.order_limits AS l (role, account, orders_per_second, orders_per_minute,
                                                 max_order_notional, max_notional, notional_window)
    VALUES (set_order_limit.role, set_order_limit.account, set_order_limit.orders_per_second,
            set_order_limit.orders_per_minute, set_order_limit.max_order_notional,
            set_order_limit.max_notional, set_order_limit.notional_window)
    ON CONFLICT ON CONSTRAINT order_limits_subject DO UPDATE
       SET orders_per_second = EXCLUDED.orders_per_second,
           orders_per_minute = EXCLUDED.orders_per_minute,
           max_order_notional = EXCLUDED.max_order_notional,
           max_notional = EXCLUDED.max_notional,
           notional_window = EXCLUDED.notional_window,
           set_by = SESSION_USER, set_at = pg_catalog.now();
    detail := jsonb_strip_nulls(jsonb_build_object(
        'role', role::text, 'account', account, 'orders_per_second', orders_per_second,
        'orders_per_minute', orders_per_minute, 'max_order_notional', max_order_notional,
        'max_notional', max_notional, 'notional_window', notional_window::text));
    PERFORM trading_guard.audit_record('SET LIMIT', 'trading_guard.order_limits'::regclass, detail);
END
$$;
COMMENT ON FUNCTION trading_guard.set_order_limit(pg_catalog.regrole, integer, integer, numeric, numeric, interval, text) IS
'set (replace) the order rate and exposure limits of a role, or of one account of a role';

CREATE FUNCTION trading_guard.drop_order_limit(role pg_catalog.regrole, account text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM trading_guard.order_limits l
     WHERE l.role OPERATOR(pg_catalog.=) drop_order_limit.role
       AND l.account IS NOT DISTINCT FROM drop_order_limit.account;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM trading_guard.audit_record('DROP LIMIT', 'trading_guard.order_limits'::regclass,
        jsonb_strip_nulls(jsonb_build_object('role', role::text, 'account', account)));
    RETURN true;
END
$$;

CREATE FUNCTION trading_guard.set_sign_limit(exchange text, label text,
                                             requests_per_second integer DEFAULT NULL,
                                             requests_per_minute integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF exchange IS NULL OR label IS NULL THEN
        RAISE EXCEPTION 'exchange and label must not be null' USING ERRCODE = '22004';
    END IF;
    IF requests_per_second IS NULL AND requests_per_minute IS NULL THEN
        RAISE EXCEPTION 'set_sign_limit() needs at least one limit' USING ERRCODE = '22023',
            HINT = 'To remove a credential''s limits use drop_sign_limit().';
    END IF;
    IF requests_per_second OPERATOR(pg_catalog.<=) 0 OR requests_per_minute OPERATOR(pg_catalog.<=) 0 THEN
        RAISE EXCEPTION 'limits must be positive' USING ERRCODE = '22023';
    END IF;
    INSERT INTO trading_guard.sign_limits AS l (exchange, label, requests_per_second, requests_per_minute)
    VALUES (set_sign_limit.exchange, set_sign_limit.label, set_sign_limit.requests_per_second,
            set_sign_limit.requests_per_minute)
    ON CONFLICT ON CONSTRAINT sign_limits_pkey DO UPDATE
       SET requests_per_second = EXCLUDED.requests_per_second,
           requests_per_minute = EXCLUDED.requests_per_minute,
           set_by = SESSION_USER, set_at = pg_catalog.now();
    PERFORM trading_guard.audit_record('SET LIMIT', 'trading_guard.sign_limits'::regclass,
        jsonb_strip_nulls(jsonb_build_object('exchange', exchange, 'label', label,
                                             'requests_per_second', requests_per_second,
                                             'requests_per_minute', requests_per_minute)));
END
$$;
COMMENT ON FUNCTION trading_guard.set_sign_limit(text, text, integer, integer) IS
'set (replace) the signing rate limits of a credential, to stay inside the exchange''s own request limits';

CREATE FUNCTION trading_guard.drop_sign_limit(exchange text, label text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM trading_guard.sign_limits l
     WHERE l.exchange OPERATOR(pg_catalog.=) drop_sign_limit.exchange
       AND l.label OPERATOR(pg_catalog.=) drop_sign_limit.label;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM trading_guard.audit_record('DROP LIMIT', 'trading_guard.sign_limits'::regclass,
        jsonb_build_object('exchange', exchange, 'label', label));
    RETURN true;
END
$$;

CREATE FUNCTION trading_guard.set_sign_purpose(exchange text, purpose text, payload_pattern text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF exchange IS NULL OR purpose IS NULL THEN
        RAISE EXCEPTION 'exchange and purpose must not be null' USING ERRCODE = '22004';
    END IF;
    IF purpose NOT IN ('cancel', 'read') THEN
        RAISE EXCEPTION 'purpose must be cancel or read' USING ERRCODE = '22023';
    END IF;
    IF payload_pattern IS NULL THEN
        DELETE FROM trading_guard.sign_purposes p
         WHERE p.exchange OPERATOR(pg_catalog.=) set_sign_purpose.exchange
           AND p.purpose OPERATOR(pg_catalog.=) set_sign_purpose.purpose;
    ELSE
        PERFORM '' OPERATOR(pg_catalog.~) payload_pattern;   -- a bad pattern fails here (2201B)
        INSERT INTO trading_guard.sign_purposes AS p (exchange, purpose, payload_pattern)
        VALUES (set_sign_purpose.exchange, set_sign_purpose.purpose, set_sign_purpose.payload_pattern)
        ON CONFLICT ON CONSTRAINT sign_purposes_pkey DO UPDATE SET payload_pattern = EXCLUDED.payload_pattern;
    END IF;
    PERFORM trading_guard.audit_record('SET PURPOSE', 'trading_guard.sign_purposes'::regclass,
        jsonb_build_object('exchange', exchange, 'purpose', purpose, 'payload_pattern', payload_pattern));
END
$$;
COMMENT ON FUNCTION trading_guard.set_sign_purpose(text, text, text) IS
'the pattern a payload declared a cancel (or a read) must match to be signed while its exchange is halted; NULL removes it';

REVOKE ALL ON FUNCTION trading_guard.set_order_limit(pg_catalog.regrole, integer, integer, numeric, numeric, interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.drop_order_limit(pg_catalog.regrole, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.set_sign_limit(text, text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.drop_sign_limit(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.set_sign_purpose(text, text, text) FROM PUBLIC;

-- Usage of every limit and halt refusals, from shared memory (this server)
CREATE FUNCTION trading_guard.limit_usage(
    OUT subject_kind text, OUT role pg_catalog.regrole, OUT account text,
    OUT exchange text, OUT label text, OUT limit_name text, OUT limit_value numeric,
    OUT window_seconds double precision, OUT used numeric, OUT admitted bigint,
    OUT refused bigint, OUT last_refused timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tg_limit_usage'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION trading_guard.limit_usage() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading_guard.limit_usage() TO pg_read_all_stats;
CREATE VIEW trading_guard.limit_usage AS SELECT * FROM trading_guard.limit_usage();
COMMENT ON VIEW trading_guard.limit_usage IS
'each order and signing limit of this database with its current use and refusals, and refusals by a halt (limit_name halt); this server''s memory since its start';
REVOKE ALL ON trading_guard.limit_usage FROM PUBLIC;
GRANT SELECT ON trading_guard.limit_usage TO pg_read_all_stats;

CREATE VIEW trading_guard.over_limit AS
SELECT subject_kind, role, account, exchange, label, limit_name, limit_value, used,
       refused, last_refused
  FROM trading_guard.limit_usage()
 WHERE last_refused OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 minute'::interval)
    OR used OPERATOR(pg_catalog.>=) limit_value;
COMMENT ON VIEW trading_guard.over_limit IS
'roles and credentials at their limit now, or refused in the last minute';
REVOKE ALL ON trading_guard.over_limit FROM PUBLIC;
GRANT SELECT ON trading_guard.over_limit TO pg_read_all_stats;

-- ---------------------------------------------------------------------------
-- protect_orders: optional account and exchange columns
-- ---------------------------------------------------------------------------
DROP FUNCTION trading_guard.protect_orders(regclass, text, text, text, text);
CREATE FUNCTION trading_guard.protect_orders(tbl regclass,
                                             symbol_col text DEFAULT 'symbol',
                                             side_col text DEFAULT 'side',
                                             quantity_col text DEFAULT 'quantity',
                                             price_col text DEFAULT 'price',
                                             account_col text DEFAULT NULL,
                                             exchange_col text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text[] := ARRAY[symbol_col, side_col, quantity_col, price_col, account_col, exchange_col];
    typ oid;
    base oid;
    kind char;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '42809';
    END IF;
    FOR i IN 1..6 LOOP
        IF cols[i] IS NULL THEN
            IF i OPERATOR(pg_catalog.>=) 4 THEN
                CONTINUE;       -- no price column: market orders only; no account, exchange
            END IF;
            RAISE EXCEPTION 'column name must not be null' USING ERRCODE = '22004';
        END IF;
        SELECT a.atttypid INTO typ FROM pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attname OPERATOR(pg_catalog.=) cols[i]
           AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', cols[i], tbl
                USING ERRCODE = '42703';
        END IF;
        base := typ;
        WHILE (SELECT t.typtype FROM pg_type t WHERE t.oid OPERATOR(pg_catalog.=) base) OPERATOR(pg_catalog.=) 'd' LOOP
            SELECT t.typbasetype INTO base FROM pg_type t WHERE t.oid OPERATOR(pg_catalog.=) base;
        END LOOP;
        IF i IN (1, 2, 5, 6) AND base NOT IN ('text'::regtype, 'varchar'::regtype) THEN
            RAISE EXCEPTION 'column "%" of relation "%" has type %, not text or varchar',
                cols[i], tbl, format_type(typ, NULL)
                USING ERRCODE = '42804';
        END IF;
        IF i IN (3, 4) AND base OPERATOR(pg_catalog.<>) 'numeric'::regtype THEN
            RAISE EXCEPTION 'column "%" of relation "%" has type %, not numeric',
                cols[i], tbl, format_type(typ, NULL)
                USING ERRCODE = '42804';
        END IF;
    END LOOP;

    IF (SELECT count(DISTINCT c) OPERATOR(pg_catalog.<>) count(c) FROM unnest(cols) AS c) THEN
        RAISE EXCEPTION 'symbol, side, quantity, price, account and exchange must be different columns'
            USING ERRCODE = '42701';
    END IF;

    IF EXISTS (SELECT 1 FROM pg_trigger
                WHERE tgrelid OPERATOR(pg_catalog.=) tbl
                  AND tgname OPERATOR(pg_catalog.=) 'trading_guard_protect_orders') THEN
        EXECUTE format('DROP TRIGGER trading_guard_protect_orders ON %s', tbl);
    END IF;
    -- four arguments when there is neither an account nor an exchange column
    -- (the trigger of 1.0 to 1.6), six otherwise
    EXECUTE format('CREATE TRIGGER trading_guard_protect_orders'
                   ' BEFORE INSERT OR UPDATE OF %s ON %s FOR EACH ROW'
                   ' EXECUTE FUNCTION trading_guard.protect_orders_trigger(%L, %L, %L, %L%s)',
                   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) AS c WHERE c IS NOT NULL),
                   tbl, symbol_col, side_col, quantity_col, coalesce(price_col, ''),
                   CASE WHEN account_col IS NULL AND exchange_col IS NULL THEN ''
                        ELSE format(', %L, %L', coalesce(account_col, ''), coalesce(exchange_col, '')) END);
END
$$;
COMMENT ON FUNCTION trading_guard.protect_orders(regclass, text, text, text, text, text, text) IS
'check every order inserted into (or updated in) the table, in a C trigger: the exchange filters, halts and limits';

CREATE OR REPLACE VIEW trading_guard.protected_tables AS
SELECT t.tgrelid::pg_catalog.regclass AS table_name,
       a[1] AS symbol_column,
       a[2] AS side_column,
       a[3] AS quantity_column,
       NULLIF(a[4], '') AS price_column,
       t.tgenabled OPERATOR(pg_catalog.<>) 'D' AS enabled,
       NULLIF(a[5], '') AS account_column,
       NULLIF(a[6], '') AS exchange_column
  FROM pg_catalog.pg_trigger t,
       LATERAL (SELECT pg_catalog.string_to_array(
                    pg_catalog.encode(t.tgargs, 'escape'), '\000') AS a) args
 WHERE t.tgfoid OPERATOR(pg_catalog.=) 'trading_guard.protect_orders_trigger()'::pg_catalog.regprocedure
   AND NOT t.tgisinternal
   AND t.tgparentid OPERATOR(pg_catalog.=) 0;

-- ---------------------------------------------------------------------------
-- sign_request with a declared purpose (order, cancel, read)
-- ---------------------------------------------------------------------------
CREATE FUNCTION trading_guard.sign_request(exchange text, label text, payload text, purpose text)
RETURNS text
AS 'MODULE_PATHNAME', 'tg_sign_request_purpose'
LANGUAGE C VOLATILE SECURITY DEFINER;
REVOKE ALL ON FUNCTION trading_guard.sign_request(text, text, text, text) FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.sign_request(text, text, text, text) IS
'HMAC-SHA256 of the payload under the credential''s secret; purpose order, cancel or read (a halted exchange signs only cancels and reads)';

-- ---------------------------------------------------------------------------
-- revoke_all_credentials: the kill switch
-- ---------------------------------------------------------------------------
CREATE FUNCTION trading_guard.revoke_all_credentials(exchange text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
    n bigint := 0;
BEGIN
    FOR c IN SELECT s.exchange, s.label, s.environment
               FROM trading_guard.credential_store s
              WHERE s.revoked_at IS NULL
                AND (revoke_all_credentials.exchange IS NULL
                     OR s.exchange OPERATOR(pg_catalog.=) revoke_all_credentials.exchange)
              ORDER BY s.id
                FOR UPDATE
    LOOP
        PERFORM trading_guard.revoke_credential(c.exchange, c.label, c.environment);
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    PERFORM trading_guard.audit_record('REVOKE ALL', 'trading_guard.credential_store'::regclass,
        jsonb_strip_nulls(jsonb_build_object('exchange', exchange, 'revoked', n)));
    PERFORM trading_guard.record_incident_event('revoke_all', 'revoke_all_credentials()', exchange,
        jsonb_strip_nulls(jsonb_build_object('exchange', exchange, 'revoked', n)));
    RETURN n;
END
$$;
COMMENT ON FUNCTION trading_guard.revoke_all_credentials(text) IS
'revoke every active credential (of one exchange) in one transaction; returns how many';
REVOKE ALL ON FUNCTION trading_guard.revoke_all_credentials(text) FROM PUBLIC;

-- events of the incident-response calls
ALTER TABLE trading_guard.security_events DROP CONSTRAINT security_events_type_check;
ALTER TABLE trading_guard.security_events ADD CONSTRAINT security_events_type_check
    CHECK (event_type OPERATOR(pg_catalog.=) ANY
        ('{login,ban,unban,ban_expired,vault_refused,vault_reveal,vault_sign,key_ring,config,purge,halt,rate_limit,revoke_all}'::pg_catalog.text[]));

-- ---------------------------------------------------------------------------
-- incident_report: the runbook's "review recent trades and orders" and
-- "check for unauthorized access" in one call.  The audit sections read this
-- database's audit_log; the security-event sections read this database's
-- security_events, which the events worker fills in
-- trading_guard.events_database only (a 'report' row says so elsewhere).
-- ---------------------------------------------------------------------------
CREATE FUNCTION trading_guard.incident_report(since timestamptz,
                                              until timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (section text, subject text, count bigint, first timestamptz, last timestamptz,
               detail jsonb)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'since and until must not be null' USING ERRCODE = '22004';
    END IF;
    IF since OPERATOR(pg_catalog.>) until THEN
        RAISE EXCEPTION 'since must not be after until' USING ERRCODE = '22023';
    END IF;

    -- where the security events are
    IF current_setting('trading_guard.events_database', true) IS DISTINCT FROM current_database() THEN
        RETURN QUERY SELECT 'report'::text, 'security events'::text, 0::bigint,
            NULL::timestamptz, NULL::timestamptz,
            jsonb_build_object('note', 'security events are written in another database; run incident_report() there for logins, credential use, halts and limit hits',
                               'events_database', current_setting('trading_guard.events_database', true));
    END IF;

    -- orders written, per table and role / session user / application /
    -- actor (trading_guard.actor, what the application says it acts for)
    RETURN QUERY
    SELECT 'orders_written'::text,
           l.current_user_name,
           count(*) FILTER (WHERE l.operation OPERATOR(pg_catalog.=) 'INSERT'),
           min(l.event_time), max(l.event_time),
           jsonb_build_object('table', l.schema_name OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) l.table_name,
                              'session_user', l.session_user_name,
                              'application', l.application_name,
                              'actor', l.actor,
                              'updates', count(*) FILTER (WHERE l.operation OPERATOR(pg_catalog.=) 'UPDATE'),
                              'deletes', count(*) FILTER (WHERE l.operation OPERATOR(pg_catalog.=) 'DELETE'))
      FROM trading_guard.audit_log l
     WHERE l.event_time OPERATOR(pg_catalog.>=) since AND l.event_time OPERATOR(pg_catalog.<) until
       AND l.table_oid OPERATOR(pg_catalog.=) ANY (SELECT p.table_name::oid FROM trading_guard.protected_tables p)
       AND l.operation OPERATOR(pg_catalog.=) ANY ('{INSERT,UPDATE,DELETE}'::text[])
     GROUP BY l.current_user_name, l.session_user_name, l.application_name, l.actor, l.schema_name, l.table_name
     ORDER BY 3 DESC;

    -- order tables whose orders the report cannot count
    RETURN QUERY
    SELECT 'report'::text, p.table_name::text, 0::bigint, NULL::timestamptz, NULL::timestamptz,
           jsonb_build_object('note', 'protected order table is not audited: orders written to it are not in this report',
                              'remedy', format('SELECT trading_guard.enable_audit(%L);', p.table_name::text))
      FROM trading_guard.protected_tables p
     WHERE NOT EXISTS (SELECT 1 FROM trading_guard.audit_config c
                        WHERE c.table_name::oid OPERATOR(pg_catalog.=) p.table_name::oid);

    -- orders refused by halts and limits, per role and application
    RETURN QUERY
    SELECT 'orders_refused'::text, e.role_name, count(*), min(e.event_time), max(e.event_time),
           jsonb_build_object('application', e.application_name,
                              'refused_by', COALESCE(e.detail OPERATOR(pg_catalog.->>) 'limit', 'halt'))
      FROM trading_guard.security_events e
     WHERE e.event_time OPERATOR(pg_catalog.>=) since AND e.event_time OPERATOR(pg_catalog.<) until
       AND e.outcome OPERATOR(pg_catalog.=) 'refused'
       AND ((e.event_type OPERATOR(pg_catalog.=) 'halt' AND e.detail OPERATOR(pg_catalog.->>) 'refused' OPERATOR(pg_catalog.=) 'order')
            OR (e.event_type OPERATOR(pg_catalog.=) 'rate_limit' AND e.credential_id IS NULL AND e.label IS NULL))
     GROUP BY e.role_name, e.application_name, COALESCE(e.detail OPERATOR(pg_catalog.->>) 'limit', 'halt')
     ORDER BY 3 DESC;

    -- rows changed per audited table and operation
    RETURN QUERY
    SELECT 'rows_changed'::text,
           COALESCE(l.schema_name OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) l.table_name, '(none)'),
           count(*), min(l.event_time), max(l.event_time),
           jsonb_build_object('operation', l.operation,
                              'actors', jsonb_agg(DISTINCT l.current_user_name))
      FROM trading_guard.audit_log l
     WHERE l.event_time OPERATOR(pg_catalog.>=) since AND l.event_time OPERATOR(pg_catalog.<) until
     GROUP BY l.schema_name, l.table_name, l.operation
     ORDER BY 2, 3 DESC;

    -- credential use: reveals, signatures, refusals
    RETURN QUERY
    -- (signature counts carry the credential's id only: its name is in the store)
    SELECT 'credential_use'::text,
           COALESCE(a.exchange, c.exchange) OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) COALESCE(a.label, c.label),
           a.reveals OPERATOR(pg_catalog.+) a.signatures OPERATOR(pg_catalog.+) a.refusals,
           a.first_seen, a.last_seen,
           jsonb_build_object('credential_id', a.credential_id, 'reveals', a.reveals,
                              'signatures', a.signatures, 'refusals', a.refusals,
                              'roles', to_jsonb(a.roles))
      FROM trading_guard.credential_access(since, until) a
      LEFT JOIN trading_guard.credential_store c ON c.id OPERATOR(pg_catalog.=) a.credential_id;

    -- refused logins per client address
    RETURN QUERY
    SELECT 'refused_logins'::text, COALESCE(host(e.client_addr), 'local'), count(*),
           min(e.event_time), max(e.event_time),
           jsonb_build_object('roles', jsonb_agg(DISTINCT e.role_name),
                              'reasons', jsonb_agg(DISTINCT e.reason))
      FROM trading_guard.security_events e
     WHERE e.event_time OPERATOR(pg_catalog.>=) since AND e.event_time OPERATOR(pg_catalog.<) until
       AND e.event_type OPERATOR(pg_catalog.=) 'login' AND e.outcome OPERATOR(pg_catalog.=) 'refused'
     GROUP BY e.client_addr
     ORDER BY 3 DESC;

    -- halts set and lifted in the window, and those still active
    RETURN QUERY
    SELECT 'halts'::text, e.detail OPERATOR(pg_catalog.->>) 'action', 1::bigint, e.event_time, e.event_time,
           (e.detail OPERATOR(pg_catalog.-) 'action') OPERATOR(pg_catalog.||)
               jsonb_build_object('reason', e.reason, 'by', e.role_name)
      FROM trading_guard.security_events e
     WHERE e.event_time OPERATOR(pg_catalog.>=) since AND e.event_time OPERATOR(pg_catalog.<) until
       AND e.event_type OPERATOR(pg_catalog.=) 'halt' AND e.outcome OPERATOR(pg_catalog.=) 'info'
     ORDER BY e.event_time;
    RETURN QUERY
    SELECT 'active_halts'::text, s.scope, 1::bigint, s.since, s.since,
           jsonb_build_object('id', s.id, 'reason', s.reason, 'by', s.halted_by)
      FROM trading_guard.trading_status s
     ORDER BY s.id;

    -- limit hits (orders and signatures), per role or credential and limit
    RETURN QUERY
    SELECT 'limit_hits'::text,
           CASE WHEN e.label IS NOT NULL THEN e.exchange OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) e.label
                ELSE e.role_name END,
           count(*), min(e.event_time), max(e.event_time),
           jsonb_build_object('limit', e.detail OPERATOR(pg_catalog.->>) 'limit', 'roles', jsonb_agg(DISTINCT e.role_name))
      FROM trading_guard.security_events e
     WHERE e.event_time OPERATOR(pg_catalog.>=) since AND e.event_time OPERATOR(pg_catalog.<) until
       AND e.event_type OPERATOR(pg_catalog.=) 'rate_limit'
     GROUP BY 2, e.detail OPERATOR(pg_catalog.->>) 'limit'
     ORDER BY 3 DESC;

    -- signatures refused by a halt, per credential
    RETURN QUERY
    SELECT 'signatures_refused'::text, e.exchange OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) e.label,
           count(*), min(e.event_time), max(e.event_time),
           jsonb_build_object('roles', jsonb_agg(DISTINCT e.role_name),
                              'purposes', jsonb_agg(DISTINCT e.detail OPERATOR(pg_catalog.->>) 'purpose'))
      FROM trading_guard.security_events e
     WHERE e.event_time OPERATOR(pg_catalog.>=) since AND e.event_time OPERATOR(pg_catalog.<) until
       AND e.event_type OPERATOR(pg_catalog.=) 'halt' AND e.outcome OPERATOR(pg_catalog.=) 'refused'
       AND e.detail OPERATOR(pg_catalog.->>) 'refused' OPERATOR(pg_catalog.=) 'signature'
     GROUP BY e.exchange, e.label;

    -- kill switch
    RETURN QUERY
    SELECT 'credentials_revoked'::text, COALESCE(e.exchange, 'all exchanges'),
           COALESCE((e.detail OPERATOR(pg_catalog.->>) 'revoked')::bigint, 0), e.event_time, e.event_time,
           jsonb_build_object('by', e.role_name)
      FROM trading_guard.security_events e
     WHERE e.event_time OPERATOR(pg_catalog.>=) since AND e.event_time OPERATOR(pg_catalog.<) until
       AND e.event_type OPERATOR(pg_catalog.=) 'revoke_all'
     ORDER BY e.event_time;
END
$$;
COMMENT ON FUNCTION trading_guard.incident_report(timestamptz, timestamptz) IS
'one call for an incident review: orders written and refused, rows changed, credential use, refused logins, halts, limit hits and revocations in a window';
REVOKE ALL ON FUNCTION trading_guard.incident_report(timestamptz, timestamptz) FROM PUBLIC;

COMMENT ON FUNCTION trading_guard.drop_order_limit(pg_catalog.regrole, text) IS
'remove the limits of a role (or of one account of it); false if it had none';
COMMENT ON FUNCTION trading_guard.drop_sign_limit(text, text) IS
'remove the signing limits of a credential; false if it had none';
COMMENT ON FUNCTION trading_guard.limit_usage() IS
'each limit with its current use and refusals, from shared memory (the view limit_usage)';
