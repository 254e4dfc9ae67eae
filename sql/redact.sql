--
-- Keeping secrets out of logs (src/redact.c): mask_sensitive(jsonb),
-- trading_guard.reject_literal_secrets, and what the log hook's redaction
-- leaves the client to see.  What reaches the server log, pg_stat_activity
-- and pg_stat_statements is checked by TAP test 007_vault_logs.pl.
--
-- The literals below are made up; none is a real key or secret.
--
\set VERBOSITY default

--
-- mask_sensitive(jsonb)
--

-- the usual exchange, HTTP and application keys; others untouched
SELECT trading_guard.mask_sensitive('{"api_key": "k-1", "api_secret": "s-1", "symbol": "BTCUSDT", "quantity": 0.5}');
SELECT trading_guard.mask_sensitive('{"X-MBX-APIKEY": "k-2", "KC-API-PASSPHRASE": "p-2", "OK-ACCESS-KEY": "k-3", "Content-Type": "application/json"}');
SELECT trading_guard.mask_sensitive('{"password": "p", "passwd": "p", "passphrase": "p", "token": "t", "access_token": "t", "refreshToken": "t", "private_key": "k", "Authorization": "Bearer t", "signature": "s", "secretKey": "s"}');

-- case and separators do not matter; endings count
SELECT trading_guard.mask_sensitive('{"APIKEY": 1, "Api-Key": 2, "api__key": 3, "clientSecret": 4, "db_password": 5, "github-token": 6, "ssh_private_key": 7, "aws_secret_key": 8}');

-- near misses are not sensitive: "key" alone, plurals, words that only
-- contain a sensitive word, authorization and signature only as whole keys
SELECT trading_guard.mask_sensitive('{"key": 1, "keys": 2, "secrets": 3, "tokens": 4, "token_type": 5, "passwords_changed": 6, "x_signature": 7, "authorization_code": 8, "monkey": 9}');

-- any depth: objects in arrays in objects; the value is masked whatever
-- it is (null, number, object, array)
SELECT trading_guard.mask_sensitive('{"exchanges": [{"name": "binance", "credentials": {"apiKey": "k", "secret": null}}, {"name": "kraken", "secret": {"nested": {"api_key": "k"}}}], "token": [1, 2, 3], "depth": {"a": {"b": {"c": {"password": 42}}}}}');
SELECT trading_guard.mask_sensitive('[{"secret": "s"}, [{"token": "t"}], "secret", 1, null]');

-- keys with non-ASCII characters, empty keys, long keys
SELECT trading_guard.mask_sensitive('{"pässword": 1, "": 2, "a_very_long_key_name_that_ends_in_refresh_token": 3, "a_very_long_key_name_ending_in_authorization": 4}');

-- scalars and documents without sensitive keys come back as they were;
-- NULL in, NULL out (STRICT)
SELECT trading_guard.mask_sensitive('"secret"'), trading_guard.mask_sensitive('42'),
       trading_guard.mask_sensitive('null'), trading_guard.mask_sensitive('[]'),
       trading_guard.mask_sensitive('{}');
SELECT trading_guard.mask_sensitive('{"b": [1, {"c": "d"}], "a": "secret"}');
SELECT trading_guard.mask_sensitive(NULL) IS NULL AS is_null;

-- a pure function, for everyone
SELECT proname, proisstrict, provolatile, proparallel,
       has_function_privilege('public', oid, 'EXECUTE') AS public_may_call
  FROM pg_proc WHERE oid = 'trading_guard.mask_sensitive(jsonb)'::regprocedure;

--
-- trading_guard.reject_literal_secrets
--

-- on by default; only superusers may change it
SELECT name, setting, context, vartype
  FROM pg_settings WHERE name = 'trading_guard.reject_literal_secrets';
CREATE ROLE tg_redact_user;
SET ROLE tg_redact_user;
SET trading_guard.reject_literal_secrets = off;
RESET ROLE;
DROP ROLE tg_redact_user;

-- the API key or the secret written as a literal is refused before
-- anything runs, without the value in the message
SELECT trading_guard.store_credential('binance', 'main', 'key-literal', 'secret-literal');

\set VERBOSITY sqlstate
-- either argument; store_credential and rotate_credential
SELECT trading_guard.store_credential('binance', 'main', $$key-literal$$, NULL);
SELECT trading_guard.store_credential('binance', 'main', NULL, E'secret-literal', 'dev', '30 days');
SELECT trading_guard.rotate_credential('binance', 'main', 'key-literal', 'secret-literal');
SELECT trading_guard.rotate_credential('binance', 'main', NULL, 'secret-literal');
-- named notation, in any order
SELECT trading_guard.store_credential(api_secret => 'secret-literal', exchange => 'binance',
                                      label => 'main', api_key => NULL);
SELECT trading_guard.rotate_credential('binance', 'main', api_key => 'key-literal', api_secret => NULL);
-- under casts and collations
SELECT trading_guard.store_credential('binance', 'main', 'key-literal'::varchar, NULL);
SELECT trading_guard.store_credential('binance', 'main', 'key-literal'::name::text, NULL);
SELECT trading_guard.store_credential('binance', 'main', CAST('key-literal' AS varchar(20)), NULL);
SELECT trading_guard.store_credential('binance', 'main', NULL, 'secret-literal' COLLATE "C");
-- however the statement is spelled and wherever the call is
SELECT TRADING_GUARD.STORE_CREDENTIAL('binance', 'main', 'key-literal', NULL);
SELECT * FROM trading_guard.store_credential('binance', 'main', 'key-literal', NULL);
WITH c AS (SELECT trading_guard.store_credential('binance', 'main', 'key-literal', NULL))
SELECT * FROM c;
SELECT 1 WHERE EXISTS (SELECT trading_guard.rotate_credential('binance', 'main', NULL, 'secret-literal'));
SET search_path = trading_guard, public;
SELECT store_credential('binance', 'main', 'key-literal', NULL);
RESET search_path;
-- not executed, still refused
EXPLAIN (COSTS OFF) SELECT trading_guard.store_credential('binance', 'main', 'key-literal', NULL);
PREPARE tg_literal AS SELECT trading_guard.store_credential('binance', 'main', 'key-literal', NULL);
CREATE FUNCTION tg_store_literal() RETURNS bigint LANGUAGE sql
    AS $$ SELECT trading_guard.store_credential('binance', 'main', 'key-literal', NULL) $$;
-- in PL/pgSQL, when the statement is prepared
DO $$ BEGIN PERFORM trading_guard.store_credential('binance', 'main', 'key-literal', NULL); END $$;
-- the function is found by what the parser resolves, not by how its name
-- is written: quoted, U& escapes (with UESCAPE), a comment before the
-- parenthesis, a quoted schema
SELECT trading_guard.U&"store\005fcredential"('binance', 'main', 'key-literal', NULL);
SELECT trading_guard.U&"rotate!005fcredential" UESCAPE '!'('binance', 'main', NULL, 'secret-literal');
SELECT trading_guard."store_credential"('binance', 'main', 'key-literal', NULL);
SELECT trading_guard.store_credential /* a comment */ ('binance', 'main', 'key-literal', NULL);
SELECT "trading_guard" . "rotate_credential"
    -- a comment
    ('binance', 'main', NULL, 'secret-literal');
-- the arguments of CALL
CREATE PROCEDURE tg_proc(id bigint) LANGUAGE sql AS $$ SELECT 1 $$;
CALL tg_proc(trading_guard.store_credential('binance', 'main', 'key-literal', NULL));
-- utility statements that keep the expression in the catalog: a rule's
-- action, a column's default (also U&-spelled), a PL/pgSQL body (run
-- later; dollar-quoted or quoted), BEGIN ATOMIC, DO
CREATE TABLE tg_rule_target (id int);
CREATE RULE tg_store_on_insert AS ON INSERT TO tg_rule_target
    DO ALSO SELECT trading_guard.store_credential('binance', 'main', NULL, 'secret-literal');
CREATE TABLE tg_with_default (
    id bigint DEFAULT trading_guard.store_credential('binance', 'main', 'key-literal', NULL));
ALTER TABLE tg_rule_target ALTER COLUMN id
    SET DEFAULT trading_guard.U&"rotate\005fcredential"('binance', 'main', api_secret => 'secret-literal'::text, api_key => NULL);
CREATE FUNCTION tg_plpgsql_store() RETURNS void LANGUAGE plpgsql
    AS $body$ BEGIN PERFORM trading_guard.store_credential('binance', 'main', NULL, $$secret-literal$$); END $body$;
CREATE FUNCTION tg_plpgsql_store() RETURNS void LANGUAGE plpgsql
    AS 'BEGIN PERFORM trading_guard.rotate_credential(''binance'', ''main'', NULL, ''secret-literal''); END';
CREATE FUNCTION tg_atomic_store() RETURNS bigint LANGUAGE sql
    BEGIN ATOMIC SELECT trading_guard.store_credential('binance', 'main', 'key-literal', NULL); END;
DO 'BEGIN PERFORM trading_guard.store_credential(''binance'', ''main'', ''key-literal'', NULL); END';

-- EXECUTE of a prepared statement gives its parameters as literals, which
-- is refused for the ones that are the API key or the secret
PREPARE tg_store(text, text, text, text) AS
    SELECT trading_guard.store_credential($1, $2, $3, $4);
EXECUTE tg_store('binance', 'main', 'key-literal', NULL);
EXECUTE tg_store('binance', 'main', NULL, 'secret-literal'::text);
EXPLAIN (COSTS OFF) EXECUTE tg_store('binance', 'main', NULL, 'secret-literal');
\set VERBOSITY default
EXECUTE tg_store('binance', 'main', NULL, 'secret-literal');
\set VERBOSITY sqlstate

-- let through (planned, not run: EXPLAIN): parameters, NULL, any other
-- expression (a guard against accidents, not against someone determined),
-- the exchange and label as literals, literals in other arguments
EXPLAIN (COSTS OFF) EXECUTE tg_store('binance', 'main', NULL, NULL);
EXPLAIN (COSTS OFF) SELECT trading_guard.store_credential('binance', 'main', NULL, NULL, 'dev', '30 days');
EXPLAIN (COSTS OFF) SELECT trading_guard.store_credential('binance', 'main', upper('key-literal'), 'secret-' || 'literal');
EXPLAIN (COSTS OFF) SELECT trading_guard.rotate_credential('binance', 'main', (SELECT 'key-literal'), NULL);
DEALLOCATE tg_store;
-- functions of the same name elsewhere are not trading_guard's
CREATE SCHEMA tg_elsewhere;
CREATE FUNCTION tg_elsewhere.store_credential(text, text, text, text) RETURNS text
    LANGUAGE sql AS $$ SELECT 'not the vault' $$;
SELECT tg_elsewhere.store_credential('binance', 'main', 'key-literal', 'secret-literal');
-- nor in utility statements, where the text is what is looked at
CREATE TABLE tg_elsewhere_default (
    id text DEFAULT tg_elsewhere.store_credential('binance', 'main', 'key-literal', 'secret-literal'));
DROP TABLE tg_elsewhere_default;
DROP FUNCTION tg_elsewhere.store_credential(text, text, text, text);
DROP SCHEMA tg_elsewhere;
-- in utility statements too: parameters, NULL and other expressions
ALTER TABLE tg_rule_target ALTER COLUMN id
    SET DEFAULT trading_guard.store_credential('binance', 'main', NULL, NULL);
ALTER TABLE tg_rule_target ALTER COLUMN id
    SET DEFAULT trading_guard.store_credential('binance', 'main', upper('key-literal'), 'secret-' || 'literal');
ALTER TABLE tg_rule_target ALTER COLUMN id DROP DEFAULT;
-- a statement that only mentions the name is not a call
SELECT 'trading_guard.store_credential(''binance'', ''main'', ''key'', ''secret'')' AS not_a_call;

-- a superuser may turn the check off (for this session here)
SET trading_guard.reject_literal_secrets = off;
EXPLAIN (COSTS OFF) SELECT trading_guard.store_credential('binance', 'main', 'key-literal', 'secret-literal');
RESET trading_guard.reject_literal_secrets;
EXPLAIN (COSTS OFF) SELECT trading_guard.store_credential('binance', 'main', 'key-literal', 'secret-literal');

--
-- The log hook rewrites reports about statements that call credential
-- functions; the client gets the same rewritten message, detail and query
--
\set VERBOSITY default
-- errors that quote a literal back
SELECT trading_guard.store_credential('binance', 'main', 'key-literal' 'secret-literal');
SELECT trading_guard.store_credential('binance', 'main', NULL, NULL, 'dev', 'secret-literal');
-- the internal query of a PL/pgSQL statement
DO $$ BEGIN EXECUTE 'SELECT trading_guard.rotate_credential(''binance'', ''main'', NULL, '
                     || quote_literal('secret-literal') || ')'; END $$;
-- any error's quoted values, whatever its SQLSTATE (42704 here), in a
-- statement that calls a credential function
SELECT trading_guard.sign_request('binance', 'main', current_setting('tg.secret-literal'));
-- a typo in the name: nothing to resolve, the name is near enough
SELECT trading_guard.store_credentail('binance', 'main', 'secret-literal'::interval);
SELECT trading_guard.sing_request('binance', 'main', 'secret-literal'::interval);
-- a call the text does not name: a credential function behind an operator
CREATE OPERATOR public.=#> (LEFTARG = text, RIGHTARG = text,
                            FUNCTION = trading_guard.reveal_credential);
SELECT 'binance' =#> current_setting('tg.secret-literal');
DROP OPERATOR public.=#> (text, text);
-- reports about other statements are left alone
SELECT 'not-a-secret'::interval;
SELECT current_setting('tg.not-a-secret');
DROP TABLE tg_rule_target;
DROP PROCEDURE tg_proc(bigint);
