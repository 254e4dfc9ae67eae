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

------------------------------------------------------------------------
-- Finding 5 and 6 (utility guard): audited_tables.triggers_intact also
-- covers inheritance children (and foreign partitions), which carry no
-- audit triggers, and the append-only guard of audit_log itself.
------------------------------------------------------------------------

CREATE OR REPLACE VIEW trading_guard.audited_tables AS
SELECT ac.table_name,
       ac.exclude_columns AS excluded,
       ac.mask_columns AS masked,
       ac.enabled_at AS enabled_since,
       ac.enabled_by,
       ac.updated_at,
       (SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 0
          FROM (WITH RECURSIVE members(relid) AS (
                    SELECT ac.table_name::pg_catalog.oid
                    UNION
                    SELECT i.inhrelid FROM pg_catalog.pg_inherits i, members
                     WHERE i.inhparent OPERATOR(pg_catalog.=) members.relid)
                SELECT relid FROM members) m
          CROSS JOIN (VALUES ('insert'), ('update'), ('delete'), ('truncate')) e(ev)
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid OPERATOR(pg_catalog.=) m.relid
                              AND t.tgname OPERATOR(pg_catalog.=)
                                  ('trading_guard_audit_' OPERATOR(pg_catalog.||) e.ev)::pg_catalog.name
                              AND t.tgenabled OPERATOR(pg_catalog.=) 'A'))
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                    WHERE g.tgrelid OPERATOR(pg_catalog.=) 'trading_guard.audit_log'::pg_catalog.regclass
                      AND g.tgname OPERATOR(pg_catalog.=) 'audit_log_append_only'
                      AND g.tgenabled OPERATOR(pg_catalog.=) 'A') AS triggers_intact
  FROM trading_guard.audit_config ac;

COMMENT ON VIEW trading_guard.audited_tables IS
'audited tables; triggers_intact is false if an audit trigger was dropped or disabled, a member of the table''s tree (an inheritance child, a foreign partition) has none, or the append-only guard of audit_log is not ENABLE ALWAYS';

-- ---------------------------------------------------------------------------
-- Code review: COMMENT ON for the user-facing functions added in 1.2 and 1.3
-- that had none (their views, mask_sensitive() and credential_store already
-- had one), and the three of 1.0 that lacked one.  Not commented, being
-- internal: the trigger and event-trigger functions, audit_record(),
-- audit_attach_triggers() / audit_detach_triggers() and
-- exchange_info_decimal() (sql/install.sql lists them); nor
-- credentials_changed(), dropped above.
-- ---------------------------------------------------------------------------

COMMENT ON FUNCTION trading_guard.validation_stats() IS
'refusals per validation rule since the last reset_validation_stats(); read it through the view of the same name';
COMMENT ON FUNCTION trading_guard.reset_validation_stats() IS
'zero the counters of validation_stats (superusers only unless granted)';
COMMENT ON VIEW trading_guard.protected_tables IS
'the tables protect_orders() guards, the columns its trigger checks, and whether it is enabled';

COMMENT ON FUNCTION trading_guard.connection_stats() IS
'connection attempts per decision and reason since the last reset_connection_stats(); read it through the view of the same name';
COMMENT ON FUNCTION trading_guard.connection_events() IS
'the last trading_guard.max_connection_events connection attempts, oldest first; read it through the view of the same name';
COMMENT ON FUNCTION trading_guard.banned_addresses() IS
'client addresses refused now because of too many failed or refused connection attempts; read it through the view of the same name';
COMMENT ON FUNCTION trading_guard.reset_connection_stats() IS
'zero the counters of connection_stats (superusers only unless granted)';
COMMENT ON FUNCTION trading_guard.unban(inet) IS
'lift the ban of a client address and forget its failures; false if it was not banned (superusers only unless granted)';

COMMENT ON FUNCTION trading_guard.key_versions() IS
'the versions of the loaded key ring with the key id (a fingerprint, never the key) of each, and which one encrypts';
COMMENT ON FUNCTION trading_guard.key_ring_status() IS
'whether a key ring is loaded, from which source and when, and the last failed load''s error';
COMMENT ON FUNCTION trading_guard.store_credential(text, text, text, text, text, interval) IS
'store an exchange API key and secret, the secret encrypted under the newest key; returns its id (bind the secret as a parameter: literals are refused)';
COMMENT ON FUNCTION trading_guard.rotate_credential(text, text, text, text) IS
'replace the API key and secret of an active credential, keeping its id and history';
COMMENT ON FUNCTION trading_guard.revoke_credential(text, text, text) IS
'revoke a credential: its row stays for the record, its ciphertext is destroyed; true if it was active';
COMMENT ON FUNCTION trading_guard.reveal_credential(text, text) IS
'the secret of an active credential, by exchange and label; recorded in audit_log and the server log (on the primary only)';
COMMENT ON FUNCTION trading_guard.reveal_credential(bigint) IS
'the secret of an active credential, by id; recorded in audit_log and the server log (on the primary only)';
COMMENT ON FUNCTION trading_guard.sign_request(text, text, text) IS
'lowercase hex HMAC-SHA256 of a request payload with a credential''s secret, made in the server (works on a standby too)';
COMMENT ON FUNCTION trading_guard.rekey(integer) IS
're-encrypt up to batch_size credentials stored under an older key version to the newest; call it until remaining is 0';
COMMENT ON FUNCTION trading_guard.credential_usage() IS
'signatures, reveals and refusals per credential id since this server started, and the last use';
