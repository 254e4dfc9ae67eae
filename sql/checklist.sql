--
-- security_checklist() (1.8): the shape, and each check that a session can
-- put in both states (SET, objects, grants).  Checks that need a reload, a
-- pg_hba.conf, TLS, a key file or WAL archiving are in
-- test/t/015_checklist.pl.  It runs in a database of its own, so that
-- what other tests leave behind does not show in the checklist.
--
\set VERBOSITY default
\set regress_db :DBNAME
CREATE DATABASE tg_checklist;
\c tg_checklist
CREATE EXTENSION trading_guard;
CREATE FUNCTION ck(id text) RETURNS text LANGUAGE sql AS
$$ SELECT status FROM trading_guard.security_checklist() WHERE "check" = id $$;
CREATE FUNCTION ck_detail(id text) RETURNS text LANGUAGE sql AS
$$ SELECT status || ': ' || detail FROM trading_guard.security_checklist() WHERE "check" = id $$;

-- the shape: every check once, in its area, with a status from the list
-- and a remedy whenever it does not pass
SELECT area, "check" FROM trading_guard.security_checklist();
SELECT count(*) AS checks, count(DISTINCT "check") AS distinct_checks,
       count(*) FILTER (WHERE status NOT IN ('pass', 'warn', 'fail', 'skip')) AS bad_status,
       count(*) FILTER (WHERE status IN ('warn', 'fail') AND remedy IS NULL) AS failures_without_remedy,
       count(*) FILTER (WHERE detail IS NULL OR detail = '') AS without_detail
  FROM trading_guard.security_checklist();
-- the JSON form has the same rows and counts them
SELECT (j->>'pass')::int + (j->>'warn')::int + (j->>'fail')::int + (j->>'skip')::int AS counted,
       jsonb_array_length(j->'checks') AS listed,
       (SELECT count(*) FROM trading_guard.security_checklist() WHERE status = 'fail') = (j->>'fail')::int AS fails_agree,
       (j->'checks'->0) ?& ARRAY['area', 'check', 'status', 'detail', 'remedy'] AS keys
  FROM trading_guard.security_checklist_json() AS j;

-- what this test server is (no TLS, no allowlist, no archiving; preloaded,
-- a key ring from the environment, security events in another database)
SELECT "check", status FROM trading_guard.security_checklist()
 WHERE "check" IN ('tls.guard_preloaded', 'tls.guard_enforce', 'tls.min_protocol',
                   'network.allowlist', 'network.bans', 'audit.verified', 'secrets.key_ring',
                   'secrets.key_file', 'secrets.master_key_age', 'logging.pg_stat_statements_keys',
                   'dependencies.postgresql', 'dependencies.openssl', 'dependencies.extension',
                   'backups.archiving', 'backups.archiver')
 ORDER BY 1;
-- (test/valgrind.sh runs this suite on a server with TLS on)
SELECT ck('tls.ssl') = CASE current_setting('ssl') WHEN 'on' THEN 'pass' ELSE 'fail' END AS ssl_as_set;
SELECT ck_detail('audit.verified');
SELECT ck_detail('dependencies.extension');
SELECT ck('dependencies.openssl'), trading_guard.checklist_openssl() ~ '^OpenSSL \d' AS openssl_named;

------------------------------------------------------------------------
-- Each check both ways
------------------------------------------------------------------------
-- authentication
SET password_encryption = 'md5';
SELECT ck_detail('auth.password_encryption');
RESET password_encryption;
SELECT ck_detail('auth.password_encryption');

SELECT 'md5' || md5('a-test-password-never-used' || 'ck_md5') AS md5_hash \gset
CREATE ROLE ck_md5 LOGIN PASSWORD :'md5_hash';
SELECT ck_detail('auth.md5_passwords');
DROP ROLE ck_md5;
SELECT ck_detail('auth.md5_passwords');

-- validation: an order table nobody protects, then the registry
CREATE SCHEMA ck;
CREATE TABLE ck.trades (id bigserial PRIMARY KEY, symbol text, side text, quantity numeric,
                        price numeric, status text DEFAULT 'NEW');
SELECT ck_detail('validation.order_tables');
SELECT trading_guard.protect_orders('ck.trades');
SELECT ck_detail('validation.order_tables');
SELECT ck_detail('validation.registry');
SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
 {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT", "filters": []}]}');
SELECT ck('validation.registry');
UPDATE trading_guard.symbols SET updated_at = now() - interval '8 days';
SELECT ck('validation.registry');
UPDATE trading_guard.symbols SET updated_at = now();

-- audit: the protected table is not audited, then it is; its triggers
-- disabled; the event triggers disabled; the log readable by PUBLIC
SELECT ck_detail('audit.order_tables_audited');
SELECT trading_guard.enable_audit('ck.trades');
SELECT ck_detail('audit.order_tables_audited');
SELECT ck('audit.triggers_intact');
ALTER TABLE ck.trades DISABLE TRIGGER USER;
SELECT ck_detail('audit.triggers_intact');
ALTER TABLE ck.trades ENABLE TRIGGER USER;
SELECT trading_guard.enable_audit('ck.trades');
SELECT ck('audit.triggers_intact');
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_drop DISABLE;
SELECT ck_detail('audit.ddl_event_triggers');
ROLLBACK;
SELECT ck('audit.ddl_event_triggers');
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT SELECT ON trading_guard.audit_log TO PUBLIC;
COMMIT;
SELECT ck_detail('audit.log_readers');
BEGIN;
SET LOCAL trading_guard.maintenance = on;
REVOKE SELECT ON trading_guard.audit_log FROM PUBLIC;
COMMIT;
SELECT ck_detail('audit.log_readers');
-- no worker seals this database: not sealed until seal_audit() is called
SELECT ck('audit.sealing');
SELECT trading_guard.seal_audit() > 0 AS sealed;
SELECT ck('audit.sealing');

-- application roles: a bot that may write orders
CREATE ROLE ck_bot;
GRANT USAGE ON SCHEMA ck TO ck_bot;
GRANT INSERT ON ck.trades TO ck_bot;
SELECT ck_detail('auth.application_roles');
ALTER ROLE ck_bot CREATEROLE BYPASSRLS;
SELECT ck_detail('auth.application_roles');
ALTER ROLE ck_bot NOCREATEROLE NOBYPASSRLS;
SELECT ck('auth.application_roles');

-- limits: the bot has none, then it has; a halt in force; an on-call role
SELECT ck_detail('limits.order_roles');
SELECT trading_guard.set_order_limit('ck_bot', orders_per_minute => 100);
SELECT ck_detail('limits.order_roles');
SELECT trading_guard.halt_trading('checklist drill') > 0 AS halted;
SELECT ck('limits.halts'), (SELECT detail FROM trading_guard.security_checklist()
                             WHERE "check" = 'limits.halts') LIKE '1 halt(s) in force: everything (checklist drill, since %' AS named;
SELECT trading_guard.resume_trading() > 0 AS resumed;
SELECT ck('limits.halts');
SELECT ck_detail('limits.oncall');
CREATE ROLE ck_oncall;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT EXECUTE ON FUNCTION trading_guard.halt_trading(text, text, text, regrole) TO ck_oncall;
COMMIT;
SELECT ck_detail('limits.oncall');

-- secrets
SELECT ck_detail('secrets.key_ring');
SET trading_guard.environment = 'prod';
SELECT ck_detail('secrets.key_ring');
RESET trading_guard.environment;
SELECT ck_detail('secrets.key_readers');
GRANT pg_read_server_files TO ck_bot;
SELECT ck_detail('secrets.key_readers');
REVOKE pg_read_server_files FROM ck_bot;
SELECT ck('secrets.key_readers');
SET trading_guard.reject_literal_secrets = off;
SELECT ck_detail('secrets.reject_literals');
SELECT ck('secrets.credential_rotation'), ck('secrets.other_environments');
SELECT trading_guard.store_credential('binance', 'ck_old', 'k-ck-old', 'a-secret-for-the-checklist-test',
                                      rotate_after => '0 seconds') > 0 AS stored;
SELECT trading_guard.store_credential('binance', 'ck_prod', 'k-ck-prod', 'another-secret-for-the-checklist',
                                      environment => 'prod') > 0 AS stored;
SELECT ck_detail('secrets.other_environments');
SELECT ck('secrets.credential_rotation'),
       (SELECT detail FROM trading_guard.security_checklist() WHERE "check" = 'secrets.credential_rotation')
           LIKE '1 credential(s) due for rotation: binance/ck_old (dev, due %' AS named;
SELECT trading_guard.revoke_credential('binance', 'ck_old'), trading_guard.revoke_credential('binance', 'ck_prod', 'prod');
SELECT ck('secrets.credential_rotation'), ck('secrets.other_environments');
RESET trading_guard.reject_literal_secrets;
SELECT ck('secrets.reject_literals');
SELECT ck('secrets.reveal_and_sign');
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT EXECUTE ON FUNCTION trading_guard.reveal_credential(text, text), trading_guard.sign_request(text, text, text) TO ck_bot;
COMMIT;
SELECT ck_detail('secrets.reveal_and_sign');
BEGIN;
SET LOCAL trading_guard.maintenance = on;
REVOKE EXECUTE ON FUNCTION trading_guard.reveal_credential(text, text) FROM ck_bot;
COMMIT;
SELECT ck('secrets.reveal_and_sign');

-- logging: every statement logged is safe here (the redaction hook is
-- preloaded); failed logins hidden
SET log_statement = 'all';
SELECT ck_detail('logging.statements');
RESET log_statement;
SET log_min_messages = panic;
SELECT ck_detail('logging.failed_logins');
RESET log_min_messages;
SELECT ck('logging.failed_logins');

------------------------------------------------------------------------
-- A role granted the checklist sees what it may, and skip for the rest
------------------------------------------------------------------------
CREATE ROLE ck_auditor;
SET ROLE ck_auditor;
SELECT count(*) FROM trading_guard.security_checklist();
RESET ROLE;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT EXECUTE ON FUNCTION trading_guard.security_checklist(), trading_guard.security_checklist_json() TO ck_auditor;
COMMIT;
SET ROLE ck_auditor;
SELECT "check", status, detail FROM trading_guard.security_checklist() WHERE status = 'skip' ORDER BY 1;
SELECT count(*) FILTER (WHERE status <> 'skip') > 20 AS sees_the_rest FROM trading_guard.security_checklist();
SELECT (trading_guard.security_checklist_json()->>'skip')::int AS skipped_in_json;
SELECT trading_guard.checklist_key_file();
RESET ROLE;

-- hostile operators on the caller's path take no part
CREATE SCHEMA ck_evil;
CREATE FUNCTION ck_evil.eq(text, text) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hostile operator called'; END $$;
CREATE OPERATOR ck_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = ck_evil.eq);
CREATE OPERATOR ck_evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = ck_evil.eq);
CREATE FUNCTION ck_evil.lt(timestamptz, timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hostile operator called'; END $$;
CREATE OPERATOR ck_evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = ck_evil.lt);
SET search_path = ck_evil, pg_catalog, public;
SELECT count(*) AS checks FROM trading_guard.security_checklist();
SELECT (trading_guard.security_checklist_json()->>'fail')::int >= 0 AS json_ok;
RESET search_path;
DROP SCHEMA ck_evil CASCADE;

-- clean up what later tests do not expect
SELECT trading_guard.drop_order_limit('ck_bot');
BEGIN;
SET LOCAL trading_guard.maintenance = on;
REVOKE ALL ON FUNCTION trading_guard.halt_trading(text, text, text, regrole) FROM ck_oncall;
REVOKE ALL ON FUNCTION trading_guard.sign_request(text, text, text) FROM ck_bot;
REVOKE ALL ON FUNCTION trading_guard.security_checklist(), trading_guard.security_checklist_json() FROM ck_auditor;
COMMIT;
SELECT trading_guard.disable_audit('ck.trades');
SELECT trading_guard.unprotect_orders('ck.trades');
DROP SCHEMA ck CASCADE;
DROP ROLE ck_bot, ck_oncall, ck_auditor;
\c :regress_db
DROP DATABASE tg_checklist;
