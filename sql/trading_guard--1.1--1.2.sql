/* trading_guard--1.1--1.2.sql — 1.2 adds the connection guard */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.2'" to load this file. \quit

------------------------------------------------------------------------
-- Connection guard (src/conn_guard.c, src/conn_state.c; needs preloading)
--
-- The guard itself is two hooks configured by trading_guard.* settings;
-- SQL only reads what it recorded in shared memory.  Who connected from
-- where is for DBAs and monitoring, not for PUBLIC: the views are granted
-- to pg_read_all_stats, as pg_stat_activity's details are.
------------------------------------------------------------------------

CREATE FUNCTION trading_guard.connection_stats()
RETURNS TABLE (decision text, reason text, connections bigint,
               stats_reset timestamptz)
AS 'MODULE_PATHNAME', 'tg_connection_stats'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW trading_guard.connection_stats AS
SELECT * FROM trading_guard.connection_stats();

COMMENT ON VIEW trading_guard.connection_stats IS
'connection attempts per decision and reason since the last reset_connection_stats()';

CREATE FUNCTION trading_guard.connection_events()
RETURNS TABLE (event_time timestamptz, pid integer, client_addr inet,
               role_name text, database_name text, application_name text,
               ssl_version text, ssl_cipher text, client_cert boolean,
               decision text, reason text, rule integer)
AS 'MODULE_PATHNAME', 'tg_connection_events'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW trading_guard.connection_events AS
SELECT * FROM trading_guard.connection_events();

COMMENT ON VIEW trading_guard.connection_events IS
'the last trading_guard.max_connection_events connection attempts, oldest first';

CREATE FUNCTION trading_guard.banned_addresses()
RETURNS TABLE (client_addr inet, banned_since timestamptz,
               banned_until timestamptz, failures integer)
AS 'MODULE_PATHNAME', 'tg_banned_addresses'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW trading_guard.banned_addresses AS
SELECT * FROM trading_guard.banned_addresses();

COMMENT ON VIEW trading_guard.banned_addresses IS
'client addresses refused now because of too many failed or refused connection attempts';

CREATE FUNCTION trading_guard.reset_connection_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'tg_reset_connection_stats'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION trading_guard.unban(address inet)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tg_unban'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

REVOKE ALL ON FUNCTION trading_guard.connection_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.connection_events() FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.banned_addresses() FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.reset_connection_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.unban(inet) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION trading_guard.connection_stats() TO pg_read_all_stats;
GRANT EXECUTE ON FUNCTION trading_guard.connection_events() TO pg_read_all_stats;
GRANT EXECUTE ON FUNCTION trading_guard.banned_addresses() TO pg_read_all_stats;
GRANT SELECT ON trading_guard.connection_stats TO pg_read_all_stats;
GRANT SELECT ON trading_guard.connection_events TO pg_read_all_stats;
GRANT SELECT ON trading_guard.banned_addresses TO pg_read_all_stats;
