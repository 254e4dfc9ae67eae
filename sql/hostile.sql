--
-- Hostile objects on the caller's search_path.  Every SQL statement that
-- trading_guard runs -- in C (src/run_sql.c), in its SQL and PL/pgSQL
-- functions and in its event triggers -- pins search_path to pg_catalog,
-- pg_temp and qualifies its operators, so none of the operators and
-- functions below may ever run, and nothing may behave differently.
--
-- Each hostile function raises a WARNING naming itself (none may appear in
-- this file's output), answers wrongly, and tries to make its author a
-- superuser when it runs as one (the privilege escalation of the security
-- review: an operator =(oid, regclass) in a schema on a superuser's path
-- used to run inside the DDL event trigger).
--
SELECT current_user AS regress_superuser \gset
CREATE ROLE regress_hostile LOGIN;
CREATE SCHEMA hostile AUTHORIZATION regress_hostile;
GRANT CREATE ON SCHEMA public TO regress_hostile;
SET ROLE regress_hostile;

CREATE FUNCTION hostile.escalate(what text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE WARNING 'hostile % ran as %', what, current_user;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE regress_hostile SUPERUSER';
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'hostile % failed: %', what, SQLERRM;
END $$;

-- operators answering wrongly, for every pair of types that trading_guard's
-- statements compare, in the attacker's schema and in public
DO $$
DECLARE
    s text;
    o record;
    n int := 0;
BEGIN
    FOREACH s IN ARRAY ARRAY['hostile', 'public'] LOOP
        FOR o IN SELECT * FROM (VALUES
            ('=', 'oid', 'regclass', 'boolean'), ('=', 'regclass', 'oid', 'boolean'),
            ('=', 'oid', 'oid', 'boolean'), ('<>', 'oid', 'oid', 'boolean'),
            ('=', 'regclass', 'regclass', 'boolean'), ('<>', 'regclass', 'regclass', 'boolean'),
            ('=', 'text', 'text', 'boolean'), ('<>', 'text', 'text', 'boolean'),
            ('=', 'name', 'name', 'boolean'), ('=', 'name', 'text', 'boolean'),
            ('=', 'bigint', 'bigint', 'boolean'), ('<>', 'bigint', 'bigint', 'boolean'),
            ('=', 'integer', 'integer', 'boolean'), ('<>', 'integer', 'integer', 'boolean'),
            ('>', 'smallint', 'integer', 'boolean'), ('=', 'smallint', 'smallint', 'boolean'),
            ('=', '"char"', '"char"', 'boolean'), ('=', 'bytea', 'bytea', 'boolean'),
            ('=', 'jsonb', 'jsonb', 'boolean'), ('@>', 'jsonb', 'jsonb', 'boolean'),
            ('<', 'timestamptz', 'timestamptz', 'boolean'), ('=', 'numeric', 'numeric', 'boolean'),
            ('~~', 'text', 'text', 'boolean'), ('||', 'text', 'text', 'text'),
            ('||', 'text[]', 'text[]', 'text[]'), ('-', 'timestamptz', 'interval', 'timestamptz'),
            ('=', 'xid8', 'xid8', 'boolean'), ('>=', 'xid8', 'xid8', 'boolean'),
            ('@>', 'int8multirange', 'bigint', 'boolean'), ('=', 'bigint', 'integer', 'boolean'),
            ('-', 'timestamptz', 'timestamptz', 'interval'), ('<=', 'timestamptz', 'timestamptz', 'boolean'))
            AS t(op, l, r, ret)
        LOOP
            n := n + 1;
            EXECUTE format('CREATE FUNCTION %I.op_%s(a %s, b %s) RETURNS %s'
                           ' LANGUAGE plpgsql SET search_path = pg_catalog AS $f$'
                           ' BEGIN PERFORM hostile.escalate(%L); RETURN NULL; END $f$',
                           s, n, o.l, o.r, o.ret, format('%s(%s, %s)', o.op, o.l, o.r));
            EXECUTE format('CREATE OPERATOR %I.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %I.op_%s)',
                           s, o.op, o.l, o.r, s, n);
        END LOOP;
    END LOOP;
END $$;

-- functions with the names of functions trading_guard calls
CREATE FUNCTION hostile.now() RETURNS timestamptz
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM hostile.escalate('now()'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION hostile.nextval(regclass) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM hostile.escalate('nextval()'); RETURN 1; END $$;
CREATE FUNCTION hostile.unnest(text[]) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM hostile.escalate('unnest()'); END $$;
CREATE FUNCTION hostile.jsonb_build_object(text, text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM hostile.escalate('jsonb_build_object()'); RETURN '{}'; END $$;
CREATE FUNCTION hostile.lower(text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM hostile.escalate('lower()'); RETURN ''; END $$;
CREATE FUNCTION hostile.upper(text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM hostile.escalate('upper()'); RETURN ''; END $$;
CREATE FUNCTION hostile.quote_ident(text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN PERFORM hostile.escalate('quote_ident()'); RETURN ''; END $$;
-- the hostile operators do work when used directly
SET search_path = hostile, public, pg_catalog;
SELECT 'x'::text = 'x'::text AS hostile_equal;
RESET search_path;
RESET ROLE;

-- an audited table owned by the attacker, and a protected order table
CREATE TABLE hostile.trades (id int PRIMARY KEY, symbol text, side text,
                             quantity numeric, price numeric, card text);
ALTER TABLE hostile.trades OWNER TO regress_hostile;
CREATE TABLE hostile.book (id int, at date) PARTITION BY RANGE (at);
ALTER TABLE hostile.book OWNER TO regress_hostile;

-- every path runs with the attacker's objects first on the path, for the
-- superuser and for the attacker
SET search_path = hostile, public, pg_catalog;
SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
  {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
   "filters": [{"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "100", "stepSize": "0.001"},
               {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"}]},
  {"symbol": "SOLUSDT", "status": "BREAK", "baseAsset": "SOL", "quoteAsset": "USDT", "filters": []}]}');
SELECT trading_guard.enable_audit('hostile.trades', mask_columns => '{card}');
SELECT trading_guard.protect_orders('hostile.trades');
SELECT trading_guard.enable_audit('hostile.book');
CREATE TABLE hostile.book_2026 PARTITION OF hostile.book
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT c.relname, count(t.tgname) AS audit_triggers
  FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_trigger t
    ON t.tgrelid OPERATOR(pg_catalog.=) c.oid AND t.tgname OPERATOR(pg_catalog.~~) 'trading_guard_audit_%'
 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'hostile'::pg_catalog.regnamespace
   AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}')
 GROUP BY 1 ORDER BY 1;
-- any DDL by a superuser with the attacker's schema on its path
CREATE TABLE public.unrelated (id int);
DROP TABLE public.unrelated;

-- the attacker, owner of the audited table, in a new session
\c - regress_hostile
SET search_path = hostile, public, pg_catalog;
INSERT INTO trades VALUES (1, 'BTCUSDT', 'BUY', 1, 100, '4111111111111111');
INSERT INTO trades VALUES (2, 'SOLUSDT', 'BUY', 1, 100, '4111111111111111');
INSERT INTO trades VALUES (3, 'BTCUSDT', 'BUY', 0.0001, 100, '4111111111111111');
INSERT INTO book VALUES (1, '2026-06-01');
-- switching an audit trigger off and on is recorded, and a masked column
-- cannot be renamed away
ALTER TABLE trades DISABLE TRIGGER trading_guard_audit_update;
UPDATE trades SET price = 101 WHERE id OPERATOR(pg_catalog.=) 1;
ALTER TABLE trades ENABLE ALWAYS TRIGGER trading_guard_audit_update;
ALTER TABLE trades RENAME COLUMN card TO pan;
\c - :regress_superuser
SET search_path = hostile, public, pg_catalog;
SELECT a.table_name, a.triggers_intact
  FROM trading_guard.audited_tables a JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.table_name
 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'hostile'::pg_catalog.regnamespace
 ORDER BY a.table_name::pg_catalog.text;
SELECT operation, table_name, row_key, new_row->>'card' AS card,
       new_row->>'command_tag' AS tag, new_row->>'audit_triggers_intact' AS intact
  FROM trading_guard.audit_log
 WHERE schema_name OPERATOR(pg_catalog.=) 'hostile'
 ORDER BY id;
SELECT operation, row_key FROM trading_guard.history('hostile.trades', '{"id": 1}');
-- sealing: seal, status, verify (also against a digest), digest, proof
SELECT trading_guard.seal_audit() OPERATOR(pg_catalog.>) 0 AS sealed;
SELECT backlog_rows, oldest_unsealed, backlog_age, key_ring_loaded,
       rows_sealed OPERATOR(pg_catalog.=) last_position AS head
  FROM trading_guard.seal_status, (SELECT "position" AS last_position FROM trading_guard.audit_digest()) d;
SELECT ok, problem, unsealed_rows FROM trading_guard.verify_audit();
SELECT message AS digest FROM trading_guard.audit_digest() \gset
SELECT ok, problem FROM trading_guard.verify_audit(1, :'digest');
SELECT (trading_guard.audit_proof(l.id)->>'id')::bigint OPERATOR(pg_catalog.=) l.id AS proof
  FROM trading_guard.audit_log l
 WHERE l.schema_name OPERATOR(pg_catalog.=) 'hostile' AND l.row_key OPERATOR(pg_catalog.=) '{"id": 1}'
 ORDER BY l.id LIMIT 1;
SELECT trading_guard.purge_audit('100 years');

-- the vault
SET trading_guard.reject_literal_secrets = off;
SELECT trading_guard.store_credential('hostilex', 'main', 'k-hostile', 'hostile-secret-1') AS cred_id \gset
SELECT length(trading_guard.sign_request('hostilex', 'main', 'a=1')) AS signature_length;
SELECT trading_guard.reveal_credential('hostilex', 'main') OPERATOR(pg_catalog.=) 'hostile-secret-1' AS revealed;
SELECT trading_guard.reveal_credential(:cred_id) OPERATOR(pg_catalog.=) 'hostile-secret-1' AS revealed_by_id;
SELECT trading_guard.rotate_credential('hostilex', 'main', 'k-hostile-2', 'hostile-secret-2');
SELECT trading_guard.store_credential('hostilex', 'main', 'k', 'hostile-secret-2', 'paper');
SELECT * FROM trading_guard.rekey();
SELECT trading_guard.revoke_credential('hostilex', 'main');
RESET trading_guard.reject_literal_secrets;

-- security events (the events worker writes in another database: a row
-- inserted by hand is in no batch, which verification names)
INSERT INTO trading_guard.security_events (event_time, event_type, outcome, role_name, client_addr, reason)
VALUES (pg_catalog.now(), 'login', 'refused', 'hostile', '192.0.2.1', 'no_tls');
SELECT ok, problem, first_bad_id IS NOT NULL AS named FROM trading_guard.verify_security_events();
SELECT client_addr, refused, reasons FROM trading_guard.refused_logins_last_hour;
SELECT role_name, allowed, refused FROM trading_guard.login_sources;
SELECT count(*) AS credentials_accessed FROM trading_guard.credential_access();
SELECT capacity OPERATOR(pg_catalog.>) 0 AS queue FROM trading_guard.security_event_queue;
SELECT trading_guard.purge_security_events('1 day');
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER TABLE trading_guard.security_events DISABLE TRIGGER security_events_append_only;
DELETE FROM trading_guard.security_events WHERE role_name OPERATOR(pg_catalog.=) 'hostile';
ALTER TABLE trading_guard.security_events ENABLE ALWAYS TRIGGER security_events_append_only;
COMMIT;
SELECT ok, rows_checked FROM trading_guard.verify_security_events();

-- taking it all down again
SELECT trading_guard.unprotect_orders('hostile.trades');
SELECT trading_guard.disable_audit('hostile.trades');
DROP TABLE hostile.book;
SELECT operation, table_name, new_row->>'command_tag' AS tag
  FROM trading_guard.audit_log
 WHERE table_name OPERATOR(pg_catalog.=) ANY ('{book,book_2026,trades}') AND operation OPERATOR(pg_catalog.<>) 'INSERT'
 ORDER BY id;
RESET search_path;

-- the log verifies, the trail sealed with the attacker's objects on the path
SET search_path = hostile, public, pg_catalog;
SELECT trading_guard.seal_audit() OPERATOR(pg_catalog.>) 0 AS sealed;
SELECT ok, problem, unsealed_rows FROM trading_guard.verify_audit();
RESET search_path;

-- the attacker is no superuser
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_hostile';
DROP TABLE hostile.trades;
