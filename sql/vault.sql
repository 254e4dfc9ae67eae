--
-- The credential vault (src/vault.c) on a server whose key ring is one key
-- made for this run (TRADING_GUARD_MASTER_KEY, set by the Makefile and
-- test/run-tests.sh).  Key ids and ciphertexts change with every run, so
-- they are checked by their shape, never printed.  Key sources, reloads,
-- rotation, dump/restore and WAL are in test/t/006_keyring_vault.pl; logs in
-- test/t/007_vault_logs.pl.
--
\set VERBOSITY default
-- literal secrets are refused by default (sql/redact.sql tests that); these
-- tests write the secrets inline, for readability
SET trading_guard.reject_literal_secrets = off;

SELECT loaded, source, versions, newest, last_error FROM trading_guard.key_ring_status();
SELECT version, newest, key_id ~ '^[0-9a-f]{16}$' AS key_id_is_hex FROM trading_guard.key_versions();

-- the Binance API documentation's example credential (public values)
SELECT trading_guard.store_credential('binance', 'main',
         'vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A',
         'NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j') AS main_id \gset
-- ... and its example signature
SELECT trading_guard.sign_request('binance', 'main',
         'symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559')
       = 'c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71' AS binance_signature;
SELECT trading_guard.sign_request('binance', 'main', '');
SELECT trading_guard.reveal_credential('binance', 'main');
SELECT trading_guard.reveal_credential(:main_id);

-- what is stored: an envelope (format 1, key version, nonce, ciphertext as
-- long as the secret, tag), never the secret; two encryptions of one
-- secret differ (fresh nonce)
SELECT get_byte(secret, 0) AS format,
       (get_byte(secret, 1) << 24) + (get_byte(secret, 2) << 16) + (get_byte(secret, 3) << 8) + get_byte(secret, 4) AS envelope_version,
       length(secret) = 1 + 4 + 12 + 64 + 16 AS envelope_length,
       position(convert_to('NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j', 'UTF8') IN secret) = 0 AS no_plaintext,
       key_version, key_id ~ '^[0-9a-f]{16}$' AS key_id_is_hex, length(secret_fingerprint) AS fingerprint_bytes
  FROM trading_guard.credential_store;
SELECT trading_guard.store_credential('binance', 'twin', 'k-twin', 'NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j') AS twin_id \gset
SELECT count(DISTINCT substr(secret, 6, 12)) AS nonces, count(DISTINCT secret) AS envelopes,
       count(DISTINCT secret_fingerprint) AS fingerprints
  FROM trading_guard.credential_store;

-- the view: API key shortened, no secret
SELECT id = :main_id AS is_main, exchange, label, environment, api_key, key_version,
       rotate_after, rotate_by = created_at + rotate_after AS rotate_by_ok,
       revoked_at IS NULL AS active, signatures, reveals, refusals
  FROM trading_guard.credentials ORDER BY id;
SELECT count(*) FROM trading_guard.credentials_due_for_rotation;
SELECT trading_guard.store_credential('kraken', 'old', 'short', 'kraken-secret-1', rotate_after => '0 seconds') AS old_id \gset
SELECT exchange, label, api_key FROM trading_guard.credentials_due_for_rotation;

-- bad arguments
SELECT trading_guard.store_credential('binance', 'main', 'k', 'another secret');
SELECT trading_guard.store_credential(NULL, 'x', 'k', 's');
SELECT trading_guard.store_credential('binance', 'x', 'k', NULL);
SELECT trading_guard.store_credential('binance', '', 'k', 's');
SELECT trading_guard.store_credential('binance', 'x', 'k', '');
SELECT trading_guard.store_credential(repeat('e', 64), 'x', 'k', 's');
SELECT trading_guard.store_credential('binance', 'x', 'k', repeat('s', 4097));
SELECT trading_guard.store_credential('binance', 'x', 'k', 's', 'production');
SELECT trading_guard.store_credential('binance', 'x', 'k', 's', rotate_after => NULL);
SELECT trading_guard.sign_request('binance', 'main', NULL);
SELECT trading_guard.reveal_credential(NULL::bigint);
SELECT trading_guard.rekey(0);
SELECT count(*) AS rows_after_refusals FROM trading_guard.credential_store;

-- unknown credentials
SELECT trading_guard.sign_request('binance', 'nope', 'x');
SELECT trading_guard.reveal_credential('binance', 'nope');
SELECT trading_guard.reveal_credential(-1);

-- environments: a credential of another environment is neither revealed
-- nor used, and one secret cannot serve two environments
SHOW trading_guard.environment;
SELECT trading_guard.store_credential('binance', 'prod-main', 'k-prod', 'prod-secret-1', 'prod') AS prod_id \gset
SELECT trading_guard.sign_request('binance', 'prod-main', 'x');
SELECT trading_guard.reveal_credential('binance', 'prod-main');
SELECT trading_guard.reveal_credential(:prod_id);
SET trading_guard.environment = prod;
SELECT trading_guard.reveal_credential('binance', 'prod-main');
SELECT trading_guard.sign_request('binance', 'main', 'x');
RESET trading_guard.environment;
SELECT trading_guard.store_credential('binance', 'copy', 'k', 'prod-secret-1');
SELECT trading_guard.store_credential('binance', 'copy', 'k', 'prod-secret-1', 'staging');
SELECT trading_guard.rotate_credential('binance', 'twin', 'k-twin', 'prod-secret-1');
-- the same label may exist once per environment
SELECT trading_guard.store_credential('binance', 'main', 'k-staging', 'staging-secret-1', 'staging') > 0 AS stored;

-- rotation: a new key and secret, same id, the old signature no longer
-- comes out; rotating to its own current secret is allowed
SELECT trading_guard.rotate_credential('binance', 'twin', 'k-twin-2', 'twin-secret-2');
SELECT trading_guard.reveal_credential('binance', 'twin');
SELECT api_key, rotated_at IS NOT NULL AS rotated FROM trading_guard.credentials WHERE id = :twin_id;
SELECT trading_guard.rotate_credential('binance', 'twin', 'k-twin-2', 'twin-secret-2');
SELECT trading_guard.rotate_credential('binance', 'nope', 'k', 's');

-- tampering: a ciphertext copied to another credential does not decrypt ...
BEGIN;
UPDATE trading_guard.credential_store
   SET secret = (SELECT secret FROM trading_guard.credential_store WHERE id = :main_id)
 WHERE id = :twin_id;
SELECT trading_guard.reveal_credential('binance', 'twin');
ROLLBACK;
SELECT trading_guard.reveal_credential('binance', 'twin');
-- ... and no byte of an envelope can change unnoticed
CREATE FUNCTION pg_temp.flip_every_byte(cred bigint) RETURNS TABLE (sqlstate text, bytes bigint)
LANGUAGE plpgsql AS $$
DECLARE
    orig bytea;
    codes text[] := '{}';
BEGIN
    SELECT secret INTO orig FROM trading_guard.credential_store WHERE id = cred;
    FOR i IN 0 .. length(orig) - 1 LOOP
        UPDATE trading_guard.credential_store
           SET secret = set_byte(orig, i, get_byte(orig, i) # 1) WHERE id = cred;
        BEGIN
            PERFORM trading_guard.reveal_credential(cred);
            codes := codes || 'revealed!'::text;
        EXCEPTION WHEN OTHERS THEN
            codes := codes || SQLSTATE;
        END;
    END LOOP;
    UPDATE trading_guard.credential_store SET secret = orig WHERE id = cred;
    RETURN QUERY SELECT c, count(*) FROM unnest(codes) c GROUP BY c ORDER BY c;
END $$;
-- 1 format byte, 4 key version bytes, 93 bytes of nonce, ciphertext and tag
SELECT * FROM pg_temp.flip_every_byte(:main_id);
SELECT trading_guard.reveal_credential(:main_id) = 'NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j' AS intact_again;

-- revocation destroys the ciphertext; the label can be stored again
-- (the caller's standard_conforming_strings does not change what revoking writes)
SET standard_conforming_strings = off;
SELECT trading_guard.revoke_credential('kraken', 'old');
RESET standard_conforming_strings;
SELECT trading_guard.revoke_credential('kraken', 'old');
SELECT length(secret) AS secret_bytes, revoked_by IS NOT NULL AS revoked FROM trading_guard.credential_store WHERE id = :old_id;
SELECT trading_guard.sign_request('kraken', 'old', 'x');
SELECT trading_guard.reveal_credential(:old_id);
SELECT trading_guard.store_credential('kraken', 'old', 'short', 'kraken-secret-2') > :old_id AS new_id;
SELECT trading_guard.reveal_credential('kraken', 'old');

-- a caller's search_path cannot reach into the SQL the functions run: an
-- "=" that matches everything, first in the path, changes nothing
CREATE SCHEMA tg_evil;
CREATE FUNCTION tg_evil.always(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR tg_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = tg_evil.always);
SET search_path = tg_evil, pg_catalog, public;
SELECT 'a' = 'b' AS shadowed_here;
SELECT trading_guard.sign_request('binance', 'not-there', 'x');
SELECT trading_guard.store_credential('binance', 'main', 'k', 'yet another secret');
RESET search_path;
DROP SCHEMA tg_evil CASCADE;

-- one key version: nothing to re-encrypt
SELECT * FROM trading_guard.rekey();

-- who may do what: nothing is granted to PUBLIC; sign, reveal and manage
-- are separate grants.  The audit rows name the caller, not the owner
-- these SECURITY DEFINER functions run as.
CREATE ROLE tg_vault_bot;
CREATE ROLE tg_vault_officer;
CREATE ROLE tg_vault_nobody;
-- (grants on the extension's objects need maintenance mode, see own_objects)
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT EXECUTE ON FUNCTION trading_guard.sign_request(text, text, text) TO tg_vault_bot;
GRANT EXECUTE ON FUNCTION trading_guard.reveal_credential(text, text) TO tg_vault_officer;
GRANT SELECT ON trading_guard.credentials TO tg_vault_officer;
COMMIT;
SET ROLE tg_vault_nobody;
SELECT trading_guard.sign_request('binance', 'main', 'x');
SELECT trading_guard.reveal_credential('binance', 'main');
SELECT trading_guard.store_credential('binance', 'mine', 'k', 's');
SELECT count(*) FROM trading_guard.credential_store;
SELECT count(*) FROM trading_guard.credentials;
SELECT * FROM trading_guard.key_versions();
SET ROLE tg_vault_bot;
SELECT length(trading_guard.sign_request('binance', 'main', 'x')) AS signature_length;
SELECT trading_guard.reveal_credential('binance', 'main');
SELECT count(*) FROM trading_guard.credentials;
SET ROLE tg_vault_officer;
SELECT trading_guard.reveal_credential('binance', 'main') IS NOT NULL AS revealed;
SELECT trading_guard.reveal_credential(:main_id);
SELECT exchange, label, api_key FROM trading_guard.credentials WHERE id = :main_id;
SELECT trading_guard.rotate_credential('binance', 'main', 'k', 's');
RESET ROLE;

-- the audit trail of the vault: one row per store, rotate, revoke and
-- reveal, keyed by credential, naming the caller; never a secret
SELECT operation, row_key = format('{"id": %s}', :main_id) AS is_main,
       current_user_name, new_row - 'credential_id' AS detail
  FROM trading_guard.audit_log
 WHERE table_name = 'credential_store' AND row_key = format('{"id": %s}', :main_id)
 ORDER BY id;
SELECT operation, count(*) FROM trading_guard.audit_log
 WHERE table_name = 'credential_store' GROUP BY operation ORDER BY operation;
SELECT count(*) AS rows_with_a_secret FROM trading_guard.audit_log
 WHERE new_row::text ~ '(NhqPtmd|secret-[12]|twin-secret)' OR old_row::text ~ '(NhqPtmd|secret-[12]|twin-secret)';
SELECT operation FROM trading_guard.history('trading_guard.credential_store', format('{"id": %s}', :twin_id)::jsonb);

-- use counts since the server started (signatures and refusals are counted
-- in shared memory, not written as rows)
SELECT label, environment, signatures, reveals, refusals, last_used_at IS NOT NULL AS used
  FROM trading_guard.credentials ORDER BY id;

DROP OWNED BY tg_vault_bot, tg_vault_officer, tg_vault_nobody;
DROP ROLE tg_vault_bot, tg_vault_officer, tg_vault_nobody;
RESET trading_guard.reject_literal_secrets;
