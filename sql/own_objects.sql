--
-- The extension's own objects cannot be changed (src/utility_guard.c):
-- every statement below is refused for a superuser (TG090), and for a role
-- that a superuser handed audit_log to; DROP EXTENSION / SCHEMA / OWNED
-- is refused while the trail holds rows (TG091); maintenance operations
-- and maintenance mode are allowed
--
\set regress_db :DBNAME
CREATE TABLE own_ledger (id int PRIMARY KEY, amount numeric);
SELECT trading_guard.enable_audit('own_ledger');
INSERT INTO own_ledger VALUES (1, 10);
CREATE ROLE tg_log_owner;

-- runs one statement; its SQLSTATE and message, or 'done'
CREATE FUNCTION try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'done';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;

SELECT stmt, try(stmt) AS result FROM (VALUES
    ('ALTER TABLE trading_guard.audit_log SET UNLOGGED'),
    ('ALTER TABLE trading_guard.audit_log ENABLE ROW LEVEL SECURITY'),
    ('ALTER TABLE trading_guard.audit_log FORCE ROW LEVEL SECURITY'),
    ('ALTER TABLE trading_guard.audit_log DISABLE TRIGGER audit_log_append_only'),
    ('ALTER TABLE trading_guard.audit_log ENABLE TRIGGER audit_log_append_only'),
    ('ALTER TABLE trading_guard.audit_log DISABLE TRIGGER ALL'),
    ('ALTER TABLE trading_guard.audit_log DISABLE RULE r'),
    ('ALTER TABLE trading_guard.audit_log ADD COLUMN extra int'),
    ('ALTER TABLE trading_guard.audit_log ALTER COLUMN actor SET DEFAULT ''x'''),
    ('ALTER TABLE trading_guard.audit_log SET TABLESPACE pg_default'),
    ('ALTER TABLE trading_guard.audit_log OWNER TO tg_log_owner'),
    ('ALTER TABLE trading_guard.audit_log RENAME TO log2'),
    ('ALTER TABLE trading_guard.audit_log RENAME COLUMN actor TO who'),
    ('ALTER TABLE trading_guard.audit_log SET SCHEMA public'),
    ('ALTER TABLE trading_guard.credential_store DISABLE TRIGGER credentials_changed'),
    ('ALTER TRIGGER audit_log_append_only ON trading_guard.audit_log RENAME TO x'),
    ('ALTER INDEX trading_guard.audit_log_time_idx RENAME TO x'),
    ('ALTER SEQUENCE trading_guard.audit_log_id_seq RESTART'),
    ('ALTER VIEW trading_guard.audited_tables OWNER TO tg_log_owner'),
    ('CREATE POLICY hide ON trading_guard.audit_log USING (operation <> ''DDL'')'),
    ('CREATE RULE keep AS ON INSERT TO trading_guard.audit_log DO INSTEAD NOTHING'),
    ('CREATE TRIGGER t BEFORE INSERT ON trading_guard.audit_log FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.audit_log_append_only()'),
    ('CREATE TABLE log_child () INHERITS (trading_guard.audit_log)'),
    ('CREATE TABLE cred_ref (id bigint REFERENCES trading_guard.credential_store)'),
    ('ALTER TABLE own_ledger INHERIT trading_guard.audit_log'),
    ('GRANT SELECT ON trading_guard.audit_log TO PUBLIC'),
    ('REVOKE SELECT ON trading_guard.audit_log FROM tg_log_owner'),
    ('GRANT SELECT ON ALL TABLES IN SCHEMA trading_guard TO PUBLIC'),
    ('GRANT EXECUTE ON FUNCTION trading_guard.reveal_credential(bigint) TO PUBLIC'),
    ('GRANT CREATE ON SCHEMA trading_guard TO PUBLIC'),
    ('ALTER DEFAULT PRIVILEGES IN SCHEMA trading_guard GRANT SELECT ON TABLES TO PUBLIC'),
    ('SECURITY LABEL ON TABLE trading_guard.audit_log IS ''x'''),
    ('ALTER EXTENSION trading_guard DROP TABLE trading_guard.audit_log'),
    ('ALTER EXTENSION trading_guard ADD TABLE own_ledger'),
    ('ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE'),
    ('ALTER EVENT TRIGGER trading_guard_audit_drop ENABLE REPLICA'),
    ('ALTER EVENT TRIGGER trading_guard_audit_ddl RENAME TO x'),
    ('ALTER EVENT TRIGGER trading_guard_audit_ddl OWNER TO tg_log_owner'),
    ('DROP EVENT TRIGGER trading_guard_audit_drop'),
    ('DROP TRIGGER audit_log_append_only ON trading_guard.audit_log'),
    ('DROP INDEX trading_guard.audit_log_time_idx'),
    ('DROP TABLE trading_guard.audit_log'),
    ('DROP SEQUENCE trading_guard.audit_log_id_seq'),
    ('DROP VIEW trading_guard.audited_tables'),
    ('DROP FUNCTION trading_guard.audit_log_append_only() CASCADE'),
    ('DROP DOMAIN trading_guard.symbol CASCADE'),
    ('ALTER FUNCTION trading_guard.enable_audit(regclass, text[], text[]) SECURITY INVOKER'),
    ('ALTER FUNCTION trading_guard.history(regclass, jsonb) SET search_path = public'),
    ('ALTER FUNCTION trading_guard.purge_audit(interval) OWNER TO tg_log_owner'),
    ('ALTER FUNCTION trading_guard.preloaded() RENAME TO p'),
    ('CREATE OR REPLACE FUNCTION trading_guard.preloaded() RETURNS boolean LANGUAGE sql AS ''SELECT true'''),
    ('CREATE FUNCTION trading_guard.enable_audit(tbl regclass) RETURNS void LANGUAGE sql AS '''''),
    ('CREATE TABLE trading_guard.extra (id int)'),
    ('CREATE VIEW trading_guard.extra AS SELECT 1'),
    ('CREATE SEQUENCE trading_guard.extra'),
    ('CREATE TYPE trading_guard.extra AS (a int)'),
    ('CREATE OPERATOR trading_guard.= (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_catalog.texteq)'),
    ('ALTER DOMAIN trading_guard.symbol DROP NOT NULL'),
    ('ALTER DOMAIN trading_guard.symbol OWNER TO tg_log_owner'),
    ('ALTER SCHEMA trading_guard RENAME TO tg2'),
    ('ALTER SCHEMA trading_guard OWNER TO tg_log_owner'),
    ('REASSIGN OWNED BY CURRENT_USER TO tg_log_owner'),
    ('DROP EXTENSION trading_guard'),
    ('DROP EXTENSION trading_guard CASCADE'),
    ('DROP SCHEMA trading_guard CASCADE'),
    ('DROP OWNED BY CURRENT_USER')
) v(stmt);

-- the objects of 1.5 (sealing): the chain, its append-only trigger, the
-- BRIN index on audit_log.txid, its operator class and family (also
-- through ALTER OPERATOR FAMILY and an operator class made elsewhere that
-- joins the family), the view, the functions
SELECT stmt, try(stmt) AS result FROM (VALUES
    ('ALTER TABLE trading_guard.audit_seal DISABLE TRIGGER audit_seal_append_only'),
    ('ALTER TABLE trading_guard.audit_seal ENABLE TRIGGER audit_seal_append_only'),
    ('ALTER TABLE trading_guard.audit_seal DISABLE TRIGGER ALL'),
    ('ALTER TABLE trading_guard.audit_seal ADD COLUMN extra int'),
    ('ALTER TABLE trading_guard.audit_seal SET UNLOGGED'),
    ('ALTER TABLE trading_guard.audit_seal OWNER TO tg_log_owner'),
    ('ALTER TABLE trading_guard.audit_seal DROP CONSTRAINT audit_seal_pkey'),
    ('ALTER TRIGGER audit_seal_append_only ON trading_guard.audit_seal RENAME TO x'),
    ('CREATE RULE keep AS ON UPDATE TO trading_guard.audit_seal DO INSTEAD NOTHING'),
    ('CREATE TRIGGER t BEFORE INSERT ON trading_guard.audit_seal FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.audit_log_append_only()'),
    ('CREATE POLICY hide ON trading_guard.audit_seal USING (false)'),
    ('GRANT INSERT ON trading_guard.audit_seal TO tg_log_owner'),
    ('DROP TRIGGER audit_seal_append_only ON trading_guard.audit_seal'),
    ('DROP TABLE trading_guard.audit_seal'),
    ('ALTER INDEX trading_guard.audit_log_time_idx SET (pages_per_range = 1)'),
    ('ALTER INDEX trading_guard.audit_log_time_idx SET (autosummarize = off)'),
    ('ALTER INDEX trading_guard.audit_log_time_idx RENAME TO x'),
    ('DROP INDEX trading_guard.audit_log_time_idx'),
    ('DROP INDEX CONCURRENTLY trading_guard.audit_log_time_idx'),
    ('ALTER OPERATOR CLASS trading_guard.xid8_minmax_ops USING brin RENAME TO x'),
    ('ALTER OPERATOR CLASS trading_guard.xid8_minmax_ops USING brin OWNER TO tg_log_owner'),
    ('ALTER OPERATOR FAMILY trading_guard.xid8_minmax_ops USING brin SET SCHEMA public'),
    ('ALTER OPERATOR FAMILY trading_guard.xid8_minmax_ops USING brin ADD OPERATOR 3 pg_catalog.= (xid, xid)'),
    ('ALTER OPERATOR FAMILY trading_guard.xid8_minmax_ops USING brin DROP FUNCTION 1 (xid8, xid8)'),
    ('CREATE OPERATOR CLASS public.xid_minmax FOR TYPE xid USING brin FAMILY trading_guard.xid8_minmax_ops AS OPERATOR 3 pg_catalog.= (xid, xid)'),
    ('DROP OPERATOR CLASS trading_guard.xid8_minmax_ops USING brin CASCADE'),
    ('DROP OPERATOR FAMILY trading_guard.xid8_minmax_ops USING brin CASCADE'),
    ('DROP VIEW trading_guard.seal_status'),
    ('DROP FUNCTION trading_guard.verify_audit(bigint, text)'),
    ('ALTER FUNCTION trading_guard.seal_audit() SECURITY DEFINER'),
    ('GRANT EXECUTE ON FUNCTION trading_guard.audit_proof(bigint) TO PUBLIC')
) v(stmt);
-- the objects of 1.6 (security events): the tables, their append-only
-- triggers, the views, the functions; and their rows, for every role
SELECT stmt, try(stmt) AS result FROM (VALUES
    ('ALTER TABLE trading_guard.security_events DISABLE TRIGGER security_events_append_only'),
    ('ALTER TABLE trading_guard.security_event_batches DISABLE TRIGGER ALL'),
    ('ALTER TABLE trading_guard.security_events DROP CONSTRAINT security_events_type_check'),
    ('ALTER TABLE trading_guard.security_events ALTER COLUMN reason TYPE varchar(10)'),
    ('CREATE RULE keep AS ON INSERT TO trading_guard.security_events DO INSTEAD NOTHING'),
    ('GRANT INSERT ON trading_guard.security_events TO PUBLIC'),
    ('DROP TRIGGER security_event_batches_append_only ON trading_guard.security_event_batches'),
    ('DROP TABLE trading_guard.security_event_state'),
    ('DROP VIEW trading_guard.refused_logins_last_hour'),
    ('ALTER FUNCTION trading_guard.purge_security_events(interval) OWNER TO tg_log_owner'),
    ('UPDATE trading_guard.security_events SET reason = NULL'),
    ('DELETE FROM trading_guard.security_event_batches'),
    ('TRUNCATE trading_guard.security_events')
) v(stmt);

-- the family is as shipped
SELECT amopstrategy, amoplefttype::regtype, amoprighttype::regtype, amopopr::regoperator
  FROM pg_amop
 WHERE amopfamily = (SELECT oid FROM pg_opfamily WHERE opfname = 'xid8_minmax_ops'
                       AND opfnamespace = 'trading_guard'::regnamespace)
 ORDER BY 1, 2;
-- maintenance of them is allowed
REINDEX INDEX trading_guard.audit_log_time_idx;
REINDEX TABLE trading_guard.audit_seal;
VACUUM (ANALYZE) trading_guard.audit_seal;

-- a drop that reaches the extension's objects by CASCADE from elsewhere
-- (what it would cascade to depends on the tests before: not shown)
SET client_min_messages = warning;
SELECT left(try('DROP EXTENSION plpgsql CASCADE'), 5) AS cascade_from_plpgsql;
RESET client_min_messages;
SELECT count(*) AS plpgsql_functions_left FROM pg_proc
 WHERE prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql');

-- COMMENT and ALTER EXTENSION ... UPDATE are allowed, and so are index
-- builds, REINDEX, VACUUM, ANALYZE and CLUSTER
COMMENT ON TABLE trading_guard.symbols IS 'the symbol registry';
COMMENT ON TABLE trading_guard.symbols IS NULL;
ALTER EXTENSION trading_guard UPDATE;
CREATE INDEX own_actor_idx ON trading_guard.audit_log (actor);
REINDEX INDEX trading_guard.own_actor_idx;
REINDEX TABLE trading_guard.audit_log;
REINDEX TABLE CONCURRENTLY trading_guard.audit_log;
VACUUM (ANALYZE) trading_guard.audit_log;
VACUUM FULL trading_guard.credential_store;
CLUSTER trading_guard.symbols USING symbols_pkey;
ANALYZE trading_guard.audit_config;
-- dropping an index of the extension's tables needs maintenance mode
DROP INDEX trading_guard.own_actor_idx;

-- maintenance mode: superusers only, only with SET (LOCAL)
SET ROLE tg_log_owner;
SET trading_guard.maintenance = on;
RESET ROLE;
ALTER ROLE tg_log_owner SET trading_guard.maintenance = on;
ALTER DATABASE :"regress_db" SET trading_guard.maintenance = on;
ALTER SYSTEM SET trading_guard.maintenance = on;
-- in maintenance mode, the change goes through (and is recorded)
BEGIN;
SET LOCAL trading_guard.maintenance = on;
DROP INDEX trading_guard.own_actor_idx;
COMMIT;
SELECT operation, new_row->>'command_tag' AS tag, new_row->>'object_identity' AS object
  FROM trading_guard.audit_log WHERE id = (SELECT max(id) FROM trading_guard.audit_log);
SHOW trading_guard.maintenance;

-- a role a superuser handed audit_log to cannot change it either
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER TABLE trading_guard.audit_log OWNER TO tg_log_owner;
COMMIT;
SET ROLE tg_log_owner;
SELECT stmt, try(stmt) AS result FROM (VALUES
    ('ALTER TABLE trading_guard.audit_log SET UNLOGGED'),
    ('ALTER TABLE trading_guard.audit_log ENABLE ROW LEVEL SECURITY'),
    ('ALTER TABLE trading_guard.audit_log DISABLE TRIGGER audit_log_append_only'),
    ('ALTER TABLE trading_guard.audit_log DISABLE TRIGGER ALL'),
    ('ALTER TRIGGER audit_log_append_only ON trading_guard.audit_log RENAME TO x'),
    ('CREATE POLICY hide ON trading_guard.audit_log USING (operation <> ''DDL'')'),
    ('CREATE RULE keep AS ON INSERT TO trading_guard.audit_log DO INSTEAD NOTHING'),
    ('GRANT SELECT ON trading_guard.audit_log TO PUBLIC'),
    ('ALTER TABLE trading_guard.audit_log OWNER TO CURRENT_USER'),
    ('DROP TRIGGER audit_log_append_only ON trading_guard.audit_log'),
    ('DROP TABLE trading_guard.audit_log')
) v(stmt);
-- and its own row stays
DELETE FROM trading_guard.audit_log WHERE new_row->>'command_tag' = 'ALTER TABLE';
RESET ROLE;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER TABLE trading_guard.audit_log OWNER TO CURRENT_USER;
COMMIT;
SELECT count(*) AS owner_change_rows FROM trading_guard.audit_log
 WHERE operation = 'DDL' AND new_row->>'statement' LIKE '%OWNER TO%';

-- DROP EXTENSION with rows: refused (TG091) outside maintenance mode;
-- in maintenance mode it goes through (rolled back here)
DROP EXTENSION trading_guard CASCADE;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
SET LOCAL client_min_messages = warning;
DROP EXTENSION trading_guard CASCADE;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'trading_guard';
ROLLBACK;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'trading_guard';
-- with an empty trail it needs no maintenance mode
CREATE DATABASE tg_own_empty;
\c tg_own_empty
CREATE EXTENSION trading_guard;
DROP EXTENSION trading_guard;
CREATE EXTENSION trading_guard;
CREATE TABLE t (id int PRIMARY KEY);
SELECT trading_guard.enable_audit('t');
DROP EXTENSION trading_guard CASCADE;
DROP SCHEMA trading_guard CASCADE;
\c :regress_db
DROP DATABASE tg_own_empty;

DROP FUNCTION try(text);
DROP TABLE own_ledger;
DROP ROLE tg_log_owner;
