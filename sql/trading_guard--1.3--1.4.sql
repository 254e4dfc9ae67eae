/* trading_guard--1.3--1.4.sql — 1.4 closes the findings of the security review */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.4'" to load this file. \quit


-- ---------------------------------------------------------------------------
-- Caches of the extension's own tables (review findings 3 and 4): one
-- trigger function, named for what it does, replaces the three that shared
-- the C function tg_symbols_changed (kept in the library for the older
-- scripts).  The backends' caches follow symbols, audit_config and
-- credential_store through it (src/own_tables.c); ENABLE ALWAYS, so that a
-- change made under session_replication_role = replica (logical replication
-- apply, pg_restore) is not missed either.
-- ---------------------------------------------------------------------------

CREATE FUNCTION trading_guard.cache_invalidate()
RETURNS trigger
AS 'MODULE_PATHNAME', 'tg_cache_invalidate'
LANGUAGE C;

COMMENT ON FUNCTION trading_guard.cache_invalidate() IS
'statement trigger of the extension''s cached tables: every backend reloads its cache of the table';

DROP TRIGGER symbols_changed ON trading_guard.symbols;
DROP TRIGGER audit_config_changed ON trading_guard.audit_config;
DROP TRIGGER credentials_changed ON trading_guard.credential_store;
DROP FUNCTION trading_guard.symbols_changed();
DROP FUNCTION trading_guard.audit_config_changed();
DROP FUNCTION trading_guard.credentials_changed();

CREATE TRIGGER cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.symbols
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.cache_invalidate();
ALTER TABLE trading_guard.symbols ENABLE ALWAYS TRIGGER cache_invalidate;

CREATE TRIGGER cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.audit_config
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.cache_invalidate();
ALTER TABLE trading_guard.audit_config ENABLE ALWAYS TRIGGER cache_invalidate;

CREATE TRIGGER cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.credential_store
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.cache_invalidate();
ALTER TABLE trading_guard.credential_store ENABLE ALWAYS TRIGGER cache_invalidate;
