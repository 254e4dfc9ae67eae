/* trading_guard--1.0.sql — install script of trading_guard 1.0 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION trading_guard" to load this file. \quit

-- Every object is schema-qualified: this script must not depend on the
-- caller's search_path.  Functions written in SQL or PL/pgSQL pin theirs.

GRANT USAGE ON SCHEMA trading_guard TO PUBLIC;

------------------------------------------------------------------------
-- Loading
------------------------------------------------------------------------

CREATE FUNCTION trading_guard.preloaded()
RETURNS boolean
AS 'MODULE_PATHNAME', 'tg_preloaded_sql'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.preloaded() IS
'true when trading_guard is in shared_preload_libraries (needed for shared-memory features)';

DO $$
BEGIN
    IF NOT trading_guard.preloaded() THEN
        RAISE WARNING 'trading_guard is not loaded via shared_preload_libraries'
            USING DETAIL = 'Order validation works. Features that need shared memory, such as trading_guard.validation_stats, are unavailable.',
                  HINT = 'Add ''trading_guard'' to shared_preload_libraries in postgresql.conf and restart the server.';
    END IF;
END
$$;

------------------------------------------------------------------------
-- Stand-alone validation (src/validate.c)
--
-- Not STRICT: NULL is invalid (false), so a CHECK built on them refuses it.
-- IMMUTABLE: their result depends on trading_guard.quote_assets and
-- trading_guard.max_quantity, which only superusers can change; treat such
-- a change like a schema change (see README).
------------------------------------------------------------------------

CREATE FUNCTION trading_guard.is_valid_symbol(symbol text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tg_is_valid_symbol'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.is_valid_symbol(text) IS
'true if the symbol is 2-10 of A-Z0-9 followed by a quote asset of trading_guard.quote_assets';

CREATE FUNCTION trading_guard.is_valid_quantity(quantity numeric)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tg_is_valid_quantity'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.is_valid_quantity(numeric) IS
'true if the quantity is finite, positive, of sane size and at most trading_guard.max_quantity';

CREATE FUNCTION trading_guard.is_valid_price(price numeric)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tg_is_valid_price'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.is_valid_price(numeric) IS
'true if the price is finite, positive and of sane size';

CREATE DOMAIN trading_guard.symbol AS text
    CONSTRAINT symbol_valid CHECK (trading_guard.is_valid_symbol(VALUE));
CREATE DOMAIN trading_guard.quantity AS numeric
    CONSTRAINT quantity_valid CHECK (trading_guard.is_valid_quantity(VALUE));
CREATE DOMAIN trading_guard.price AS numeric
    CONSTRAINT price_valid CHECK (trading_guard.is_valid_price(VALUE));

------------------------------------------------------------------------
-- Symbol registry (src/registry.c caches it per backend)
------------------------------------------------------------------------

CREATE TABLE trading_guard.symbols (
    symbol       text PRIMARY KEY,
    base_asset   text NOT NULL,
    quote_asset  text NOT NULL,
    status       text NOT NULL DEFAULT 'TRADING',
    min_qty      numeric NOT NULL DEFAULT 0,   -- LOT_SIZE minQty
    max_qty      numeric NOT NULL DEFAULT 0,   -- LOT_SIZE maxQty
    step_size    numeric NOT NULL DEFAULT 0,   -- LOT_SIZE stepSize
    min_price    numeric NOT NULL DEFAULT 0,   -- PRICE_FILTER minPrice
    max_price    numeric NOT NULL DEFAULT 0,   -- PRICE_FILTER maxPrice
    tick_size    numeric NOT NULL DEFAULT 0,   -- PRICE_FILTER tickSize
    min_notional numeric NOT NULL DEFAULT 0,   -- NOTIONAL / MIN_NOTIONAL minNotional
    max_notional numeric NOT NULL DEFAULT 0,   -- NOTIONAL maxNotional
    updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT symbols_assets_valid CHECK (
        base_asset OPERATOR(pg_catalog.~) '^[A-Z0-9]{2,10}$'
        AND quote_asset OPERATOR(pg_catalog.~) '^[A-Z0-9]{2,10}$'
        AND symbol OPERATOR(pg_catalog.=) (base_asset OPERATOR(pg_catalog.||) quote_asset)),
    CONSTRAINT symbols_status_valid CHECK (status IN ('PRE_TRADING', 'TRADING',
        'POST_TRADING', 'END_OF_DAY', 'HALT', 'AUCTION_MATCH', 'BREAK')),
    -- each filter value is 0 (rule off) or a sane positive number
    CONSTRAINT symbols_filters_valid CHECK (
        (min_qty = 0 OR trading_guard.is_valid_price(min_qty))
        AND (max_qty = 0 OR trading_guard.is_valid_price(max_qty))
        AND (step_size = 0 OR trading_guard.is_valid_price(step_size))
        AND (min_price = 0 OR trading_guard.is_valid_price(min_price))
        AND (max_price = 0 OR trading_guard.is_valid_price(max_price))
        AND (tick_size = 0 OR trading_guard.is_valid_price(tick_size))
        AND (min_notional = 0 OR trading_guard.is_valid_price(min_notional))
        AND (max_notional = 0 OR trading_guard.is_valid_price(max_notional))),
    CONSTRAINT symbols_ranges_valid CHECK (
        (max_qty = 0 OR max_qty >= min_qty)
        AND (max_price = 0 OR max_price >= min_price)
        AND (max_notional = 0 OR max_notional >= min_notional))
);

COMMENT ON TABLE trading_guard.symbols IS
'symbol registry with Binance-style exchange filters; 0 turns a rule off';

-- the registry is public market data; checking an order reads it as the caller
GRANT SELECT ON trading_guard.symbols TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('trading_guard.symbols', '');

CREATE FUNCTION trading_guard.symbols_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'tg_symbols_changed'
LANGUAGE C;

-- DML does not invalidate relcache entries by itself; this trigger does, so
-- every backend's registry cache is dropped when the table changes.
CREATE TRIGGER symbols_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.symbols
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.symbols_changed();

-- One decimal value of an exchange-info filter: a JSON string (as Binance
-- sends them) or number holding a plain non-negative decimal.
CREATE FUNCTION trading_guard.exchange_info_decimal(filter jsonb, field text, context text)
RETURNS numeric
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text;
BEGIN
    IF NOT filter ? field THEN
        RAISE EXCEPTION 'invalid exchange info: % has no %', context, field
            USING ERRCODE = 'TG051';
    END IF;
    CASE jsonb_typeof(filter -> field)
        WHEN 'string' THEN v := filter ->> field;
        WHEN 'number' THEN v := (filter -> field)::text;
        ELSE
            RAISE EXCEPTION 'invalid exchange info: %.% is not a number', context, field
                USING ERRCODE = 'TG051';
    END CASE;
    IF v ~ '^-' THEN
        RAISE EXCEPTION 'invalid exchange info: %.% is negative', context, field
            USING ERRCODE = 'TG051';
    END IF;
    IF v !~ '^[0-9]{1,20}(\.[0-9]{1,20})?$' THEN
        RAISE EXCEPTION 'invalid exchange info: %.% is not a plain decimal number', context, field
            USING ERRCODE = 'TG051',
                  DETAIL = 'Filter values are decimals such as "0.00100000", with at most 20 digits before and after the point.';
    END IF;
    RETURN v::numeric;
END
$$;

CREATE FUNCTION trading_guard.load_exchange_info(info jsonb)
RETURNS TABLE (symbol text, action text, changed text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s jsonb;
    f jsonb;
    n integer := 0;
    ctx text;
    ftype text;
    r trading_guard.symbols;
    prev trading_guard.symbols;
    parsed trading_guard.symbols[] := '{}';
    seen text[] := '{}';
    has_notional boolean;
    diff text[];
BEGIN
    IF info IS NULL OR jsonb_typeof(info) <> 'object' THEN
        RAISE EXCEPTION 'invalid exchange info: not a JSON object' USING ERRCODE = 'TG051';
    END IF;
    IF jsonb_typeof(info -> 'symbols') IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'invalid exchange info: no "symbols" array' USING ERRCODE = 'TG051';
    END IF;

    -- 1. parse and check everything; nothing is written unless all is valid
    FOR s IN SELECT e.value FROM jsonb_array_elements(info -> 'symbols') AS e LOOP
        ctx := format('symbols[%s]', n);
        n := n + 1;
        IF jsonb_typeof(s) <> 'object' THEN
            RAISE EXCEPTION 'invalid exchange info: % is not an object', ctx USING ERRCODE = 'TG051';
        END IF;
        IF jsonb_typeof(s -> 'symbol') IS DISTINCT FROM 'string'
           OR jsonb_typeof(s -> 'status') IS DISTINCT FROM 'string'
           OR jsonb_typeof(s -> 'baseAsset') IS DISTINCT FROM 'string'
           OR jsonb_typeof(s -> 'quoteAsset') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'invalid exchange info: % lacks one of symbol, status, baseAsset, quoteAsset as strings', ctx
                USING ERRCODE = 'TG051';
        END IF;

        r := NULL;
        r.symbol := s ->> 'symbol';
        r.status := s ->> 'status';
        r.base_asset := s ->> 'baseAsset';
        r.quote_asset := s ->> 'quoteAsset';
        IF r.base_asset !~ '^[A-Z0-9]{2,10}$' OR r.quote_asset !~ '^[A-Z0-9]{2,10}$'
           OR r.symbol IS DISTINCT FROM r.base_asset || r.quote_asset THEN
            RAISE EXCEPTION 'invalid exchange info: % is not a base and a quote asset of 2 to 10 characters A-Z or 0-9', ctx
                USING ERRCODE = 'TG051';
        END IF;
        ctx := format('%s (%s)', ctx, r.symbol);
        IF r.symbol = ANY (seen) THEN
            RAISE EXCEPTION 'invalid exchange info: % appears twice', ctx USING ERRCODE = 'TG051';
        END IF;
        seen := seen || r.symbol;
        IF r.status NOT IN ('PRE_TRADING', 'TRADING', 'POST_TRADING', 'END_OF_DAY',
                            'HALT', 'AUCTION_MATCH', 'BREAK') THEN
            RAISE EXCEPTION 'invalid exchange info: % has an unknown status', ctx USING ERRCODE = 'TG051';
        END IF;

        r.min_qty := 0; r.max_qty := 0; r.step_size := 0;
        r.min_price := 0; r.max_price := 0; r.tick_size := 0;
        r.min_notional := 0; r.max_notional := 0;
        r.updated_at := now();
        has_notional := false;
        IF (s -> 'filters') IS NOT NULL AND jsonb_typeof(s -> 'filters') <> 'array' THEN
            RAISE EXCEPTION 'invalid exchange info: %.filters is not an array', ctx USING ERRCODE = 'TG051';
        END IF;
        FOR f IN SELECT e.value FROM jsonb_array_elements(coalesce(s -> 'filters', '[]')) AS e LOOP
            IF jsonb_typeof(f) <> 'object' OR jsonb_typeof(f -> 'filterType') IS DISTINCT FROM 'string' THEN
                RAISE EXCEPTION 'invalid exchange info: % has a filter without a filterType', ctx
                    USING ERRCODE = 'TG051';
            END IF;
            ftype := f ->> 'filterType';
            CASE ftype
                WHEN 'LOT_SIZE' THEN
                    r.min_qty := trading_guard.exchange_info_decimal(f, 'minQty', ctx || ' LOT_SIZE');
                    r.max_qty := trading_guard.exchange_info_decimal(f, 'maxQty', ctx || ' LOT_SIZE');
                    r.step_size := trading_guard.exchange_info_decimal(f, 'stepSize', ctx || ' LOT_SIZE');
                WHEN 'PRICE_FILTER' THEN
                    r.min_price := trading_guard.exchange_info_decimal(f, 'minPrice', ctx || ' PRICE_FILTER');
                    r.max_price := trading_guard.exchange_info_decimal(f, 'maxPrice', ctx || ' PRICE_FILTER');
                    r.tick_size := trading_guard.exchange_info_decimal(f, 'tickSize', ctx || ' PRICE_FILTER');
                WHEN 'NOTIONAL' THEN
                    has_notional := true;
                    r.min_notional := trading_guard.exchange_info_decimal(f, 'minNotional', ctx || ' NOTIONAL');
                    IF f ? 'maxNotional' THEN
                        r.max_notional := trading_guard.exchange_info_decimal(f, 'maxNotional', ctx || ' NOTIONAL');
                    END IF;
                WHEN 'MIN_NOTIONAL' THEN
                    -- the older filter; NOTIONAL wins when both are present
                    IF NOT has_notional THEN
                        r.min_notional := trading_guard.exchange_info_decimal(f, 'minNotional', ctx || ' MIN_NOTIONAL');
                    END IF;
                ELSE
                    NULL;       -- other filters are not ours to enforce
            END CASE;
        END LOOP;

        IF r.max_qty > 0 AND r.max_qty < r.min_qty THEN
            RAISE EXCEPTION 'invalid exchange info: % LOT_SIZE.maxQty is below minQty', ctx USING ERRCODE = 'TG051';
        END IF;
        IF r.max_price > 0 AND r.max_price < r.min_price THEN
            RAISE EXCEPTION 'invalid exchange info: % PRICE_FILTER.maxPrice is below minPrice', ctx USING ERRCODE = 'TG051';
        END IF;
        IF r.max_notional > 0 AND r.max_notional < r.min_notional THEN
            RAISE EXCEPTION 'invalid exchange info: % NOTIONAL.maxNotional is below minNotional', ctx USING ERRCODE = 'TG051';
        END IF;
        parsed := parsed || r;
    END LOOP;

    -- 2. upsert, reporting what changed (unchanged symbols are not reported).
    -- Concurrent loads queue here (the lock conflicts with itself, not with
    -- readers); each statement below then sees what the previous load wrote.
    LOCK TABLE trading_guard.symbols IN SHARE ROW EXCLUSIVE MODE;
    FOREACH r IN ARRAY parsed LOOP
        SELECT * INTO prev FROM trading_guard.symbols AS t
         WHERE t.symbol = r.symbol FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO trading_guard.symbols SELECT r.*;
            symbol := r.symbol; action := 'inserted'; changed := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        diff := array_remove(ARRAY[
            CASE WHEN prev.base_asset <> r.base_asset THEN 'base_asset' END,
            CASE WHEN prev.quote_asset <> r.quote_asset THEN 'quote_asset' END,
            CASE WHEN prev.status <> r.status THEN 'status' END,
            CASE WHEN prev.min_qty <> r.min_qty THEN 'min_qty' END,
            CASE WHEN prev.max_qty <> r.max_qty THEN 'max_qty' END,
            CASE WHEN prev.step_size <> r.step_size THEN 'step_size' END,
            CASE WHEN prev.min_price <> r.min_price THEN 'min_price' END,
            CASE WHEN prev.max_price <> r.max_price THEN 'max_price' END,
            CASE WHEN prev.tick_size <> r.tick_size THEN 'tick_size' END,
            CASE WHEN prev.min_notional <> r.min_notional THEN 'min_notional' END,
            CASE WHEN prev.max_notional <> r.max_notional THEN 'max_notional' END], NULL);
        IF cardinality(diff) > 0 THEN
            UPDATE trading_guard.symbols AS t
               SET base_asset = r.base_asset, quote_asset = r.quote_asset, status = r.status,
                   min_qty = r.min_qty, max_qty = r.max_qty, step_size = r.step_size,
                   min_price = r.min_price, max_price = r.max_price, tick_size = r.tick_size,
                   min_notional = r.min_notional, max_notional = r.max_notional,
                   updated_at = now()
             WHERE t.symbol = r.symbol;
            symbol := r.symbol; action := 'updated'; changed := diff;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;

COMMENT ON FUNCTION trading_guard.load_exchange_info(jsonb) IS
'upsert the registry from a Binance spot exchangeInfo document, all or nothing; returns the symbols inserted or updated';

------------------------------------------------------------------------
-- Order checks (src/orders.c)
------------------------------------------------------------------------

CREATE FUNCTION trading_guard.check_order(symbol text, side text, quantity numeric,
                                          price numeric DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'tg_check_order_sql'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.check_order(text, text, numeric, numeric) IS
'raise the first rule the order breaks (price NULL = market order)';

CREATE FUNCTION trading_guard.order_violations(symbol text, side text, quantity numeric,
                                               price numeric DEFAULT NULL)
RETURNS TABLE (filter text, sqlstate text, message text, detail text)
AS 'MODULE_PATHNAME', 'tg_order_violations'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.order_violations(text, text, numeric, numeric) IS
'every rule the order breaks, one row each';

CREATE FUNCTION trading_guard.round_quantity(symbol text, quantity numeric)
RETURNS numeric
AS 'MODULE_PATHNAME', 'tg_round_quantity'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.round_quantity(text, numeric) IS
'truncate a quantity onto the symbol''s LOT_SIZE step';

CREATE FUNCTION trading_guard.round_price(symbol text, price numeric)
RETURNS numeric
AS 'MODULE_PATHNAME', 'tg_round_price'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.round_price(text, numeric) IS
'round a price to the nearest PRICE_FILTER tick';

------------------------------------------------------------------------
-- Protected order tables (src/protect.c)
------------------------------------------------------------------------

CREATE FUNCTION trading_guard.protect_orders_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'tg_protect_orders_trigger'
LANGUAGE C;

CREATE FUNCTION trading_guard.protect_orders(tbl regclass,
                                             symbol_col text DEFAULT 'symbol',
                                             side_col text DEFAULT 'side',
                                             quantity_col text DEFAULT 'quantity',
                                             price_col text DEFAULT 'price')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text[] := ARRAY[symbol_col, side_col, quantity_col, price_col];
    typ oid;
    base oid;
    kind char;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '42809';
    END IF;
    FOR i IN 1..4 LOOP
        IF cols[i] IS NULL THEN
            IF i = 4 THEN
                CONTINUE;       -- no price column: market orders only
            END IF;
            RAISE EXCEPTION 'column name must not be null' USING ERRCODE = '22004';
        END IF;
        SELECT a.atttypid INTO typ FROM pg_attribute a
         WHERE a.attrelid = tbl AND a.attname = cols[i] AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', cols[i], tbl
                USING ERRCODE = '42703';
        END IF;
        base := typ;
        WHILE (SELECT t.typtype FROM pg_type t WHERE t.oid = base) = 'd' LOOP
            SELECT t.typbasetype INTO base FROM pg_type t WHERE t.oid = base;
        END LOOP;
        IF i <= 2 AND base NOT IN ('text'::regtype, 'varchar'::regtype) THEN
            RAISE EXCEPTION 'column "%" of relation "%" has type %, not text or varchar',
                cols[i], tbl, format_type(typ, NULL)
                USING ERRCODE = '42804';
        END IF;
        IF i >= 3 AND base <> 'numeric'::regtype THEN
            RAISE EXCEPTION 'column "%" of relation "%" has type %, not numeric',
                cols[i], tbl, format_type(typ, NULL)
                USING ERRCODE = '42804';
        END IF;
    END LOOP;

    IF (SELECT count(DISTINCT c) <> count(c) FROM unnest(cols) AS c) THEN
        RAISE EXCEPTION 'symbol, side, quantity and price must be different columns'
            USING ERRCODE = '42701';
    END IF;

    IF EXISTS (SELECT 1 FROM pg_trigger
                WHERE tgrelid = tbl AND tgname = 'trading_guard_protect_orders') THEN
        EXECUTE format('DROP TRIGGER trading_guard_protect_orders ON %s', tbl);
    END IF;
    EXECUTE format('CREATE TRIGGER trading_guard_protect_orders'
                   ' BEFORE INSERT OR UPDATE OF %s ON %s FOR EACH ROW'
                   ' EXECUTE FUNCTION trading_guard.protect_orders_trigger(%L, %L, %L, %L)',
                   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) AS c WHERE c IS NOT NULL),
                   tbl, symbol_col, side_col, quantity_col, coalesce(price_col, ''));
END
$$;

COMMENT ON FUNCTION trading_guard.protect_orders(regclass, text, text, text, text) IS
'check every order inserted into (or updated in) the table, in a C trigger';

CREATE FUNCTION trading_guard.unprotect_orders(tbl regclass)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgrelid = tbl AND tgname = 'trading_guard_protect_orders') THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TRIGGER trading_guard_protect_orders ON %s', tbl);
    RETURN true;
END
$$;

COMMENT ON FUNCTION trading_guard.unprotect_orders(regclass) IS
'remove the protect_orders trigger; false if the table was not protected';

CREATE VIEW trading_guard.protected_tables AS
SELECT t.tgrelid::pg_catalog.regclass AS table_name,
       a[1] AS symbol_column,
       a[2] AS side_column,
       a[3] AS quantity_column,
       NULLIF(a[4], '') AS price_column,
       t.tgenabled <> 'D' AS enabled
  FROM pg_catalog.pg_trigger t,
       LATERAL (SELECT pg_catalog.string_to_array(
                    pg_catalog.encode(t.tgargs, 'escape'), '\000') AS a) args
 WHERE t.tgfoid = 'trading_guard.protect_orders_trigger()'::pg_catalog.regprocedure
   AND NOT t.tgisinternal
   AND t.tgparentid = 0;

------------------------------------------------------------------------
-- Statistics (src/order_stats.c; shared memory, needs preloading)
------------------------------------------------------------------------

CREATE FUNCTION trading_guard.validation_stats()
RETURNS TABLE (filter text, sqlstate text, orders bigint)
AS 'MODULE_PATHNAME', 'tg_validation_stats'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW trading_guard.validation_stats AS
SELECT * FROM trading_guard.validation_stats();

COMMENT ON VIEW trading_guard.validation_stats IS
'orders accepted and rejected per rule since server start (check_order and protected tables)';

CREATE FUNCTION trading_guard.reset_validation_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'tg_reset_validation_stats'
LANGUAGE C VOLATILE PARALLEL SAFE;

REVOKE ALL ON FUNCTION trading_guard.validation_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.reset_validation_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading_guard.validation_stats() TO pg_read_all_stats;
GRANT SELECT ON trading_guard.validation_stats TO pg_read_all_stats;
