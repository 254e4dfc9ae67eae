/* trading_guard--1.2--1.3.sql — 1.3 adds the key ring and the credential vault */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.3'" to load this file. \quit

------------------------------------------------------------------------
-- Keeping secrets out of logs (src/redact.c)
--
-- Two hooks keep the vault's secrets out of the server log and out of
-- pg_stat_activity (trading_guard.reject_literal_secrets and the log
-- redaction need no SQL objects).  mask_sensitive() is for applications
-- that log or return JSON documents (exchange requests, configuration):
-- a pure function, so PUBLIC may call it.
------------------------------------------------------------------------

CREATE FUNCTION trading_guard.mask_sensitive(doc jsonb)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'tg_mask_sensitive'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.mask_sensitive(jsonb) IS
'the document with the value of every sensitive key replaced by "********", at any depth; sensitive: a key that, lower-cased and without - and _, is authorization or signature or ends in apikey, secret, secretkey, password, passwd, passphrase, token, privatekey or accesskey';

GRANT EXECUTE ON FUNCTION trading_guard.mask_sensitive(jsonb) TO PUBLIC;

------------------------------------------------------------------------
-- Key ring (src/keyring.c; needs preloading)
------------------------------------------------------------------------

-- The key ring is loaded from outside SQL; SQL sees versions and key ids.
CREATE FUNCTION trading_guard.key_versions()
RETURNS TABLE (version integer, key_id text, newest boolean)
AS 'MODULE_PATHNAME', 'tg_key_versions'
LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE FUNCTION trading_guard.key_ring_status(
    OUT loaded boolean, OUT source text, OUT loaded_at timestamptz,
    OUT versions integer, OUT newest integer,
    OUT last_error text, OUT last_error_at timestamptz)
AS 'MODULE_PATHNAME', 'tg_key_ring_status'
LANGUAGE C VOLATILE PARALLEL SAFE;

REVOKE ALL ON FUNCTION trading_guard.key_versions() FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.key_ring_status() FROM PUBLIC;

------------------------------------------------------------------------
-- Credential vault (src/vault.c; needs preloading)
------------------------------------------------------------------------

-- This database's credentials.  Secrets are only here as AES-256-GCM
-- envelopes (src/vault.c); nothing on the table is granted to PUBLIC, and
-- the functions below are the only writers.
CREATE SEQUENCE trading_guard.credential_store_id_seq;

CREATE TABLE trading_guard.credential_store (
    id                  bigint PRIMARY KEY,
    exchange            text NOT NULL,
    label               text NOT NULL,
    environment         text NOT NULL CHECK (environment IN ('dev', 'staging', 'prod')),
    api_key             text NOT NULL,
    secret              bytea NOT NULL,        -- the envelope; empty once revoked
    key_version         integer NOT NULL,      -- the envelope's key version
    key_id              text NOT NULL,         -- ... and that key's id (key_versions())
    secret_fingerprint  bytea NOT NULL,        -- HMAC of the secret, for reuse checks
    fingerprint_version integer NOT NULL,      -- the key version of that HMAC
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by          name NOT NULL DEFAULT SESSION_USER,
    rotated_at          timestamptz,
    rotate_after        interval NOT NULL DEFAULT '90 days',
    revoked_at          timestamptz,
    revoked_by          name
);

ALTER SEQUENCE trading_guard.credential_store_id_seq
    OWNED BY trading_guard.credential_store.id;

-- one active credential per exchange, label and environment
CREATE UNIQUE INDEX credential_store_active
    ON trading_guard.credential_store (exchange, label, environment)
    WHERE revoked_at IS NULL;
CREATE INDEX credential_store_fingerprint
    ON trading_guard.credential_store (secret_fingerprint);
CREATE INDEX credential_store_key_version
    ON trading_guard.credential_store (key_version) WHERE revoked_at IS NULL;

COMMENT ON TABLE trading_guard.credential_store IS
'exchange API credentials, secrets encrypted under the key ring; use the vault functions, never write it directly';

-- a dump holds the ciphertexts as they are; they reveal again with the same key ring
SELECT pg_catalog.pg_extension_config_dump('trading_guard.credential_store', '');
SELECT pg_catalog.pg_extension_config_dump('trading_guard.credential_store_id_seq', '');

-- every backend's credential cache follows changes (ours included)
CREATE FUNCTION trading_guard.credentials_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'tg_symbols_changed'
LANGUAGE C;

CREATE TRIGGER credentials_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.credential_store
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.credentials_changed();
ALTER TABLE trading_guard.credential_store ENABLE ALWAYS TRIGGER credentials_changed;

-- The functions are SECURITY DEFINER (they read and write credential_store,
-- which nobody else may) but have no SET search_path clause: that clause
-- would cost every signature a fifth of its time, and the only SQL they run
-- is issued from C with search_path pinned to pg_catalog, pg_temp (see
-- spi_exec() in src/vault.c).
CREATE FUNCTION trading_guard.store_credential(
    exchange text, label text, api_key text, api_secret text,
    environment text DEFAULT pg_catalog.current_setting('trading_guard.environment'),
    rotate_after interval DEFAULT '90 days')
RETURNS bigint
AS 'MODULE_PATHNAME', 'tg_store_credential'
LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION trading_guard.rotate_credential(
    exchange text, label text, api_key text, api_secret text)
RETURNS void
AS 'MODULE_PATHNAME', 'tg_rotate_credential'
LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION trading_guard.revoke_credential(
    exchange text, label text,
    environment text DEFAULT pg_catalog.current_setting('trading_guard.environment'))
RETURNS boolean
AS 'MODULE_PATHNAME', 'tg_revoke_credential'
LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION trading_guard.reveal_credential(exchange text, label text)
RETURNS text
AS 'MODULE_PATHNAME', 'tg_reveal_credential'
LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION trading_guard.reveal_credential(id bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'tg_reveal_credential_by_id'
LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION trading_guard.sign_request(exchange text, label text, payload text)
RETURNS text
AS 'MODULE_PATHNAME', 'tg_sign_request'
LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION trading_guard.rekey(batch_size integer DEFAULT 1000,
    OUT rekeyed bigint, OUT remaining bigint, OUT key_version integer)
AS 'MODULE_PATHNAME', 'tg_rekey'
LANGUAGE C VOLATILE SECURITY DEFINER;

CREATE FUNCTION trading_guard.credential_usage()
RETURNS TABLE (credential_id bigint, signatures bigint, reveals bigint,
               refusals bigint, last_used_at timestamptz)
AS 'MODULE_PATHNAME', 'tg_credential_usage'
LANGUAGE C VOLATILE PARALLEL SAFE;

-- The credentials, never their secrets; the API key shortened to its ends.
CREATE VIEW trading_guard.credentials AS
SELECT c.id, c.exchange, c.label, c.environment,
       CASE WHEN pg_catalog.length(c.api_key) > 12
            THEN pg_catalog.left(c.api_key, 4) OPERATOR(pg_catalog.||) '…'
                 OPERATOR(pg_catalog.||) pg_catalog.right(c.api_key, 4)
            ELSE '…' END AS api_key,
       c.key_version, c.created_at, c.created_by, c.rotated_at, c.rotate_after,
       COALESCE(c.rotated_at, c.created_at) OPERATOR(pg_catalog.+) c.rotate_after AS rotate_by,
       c.revoked_at, c.revoked_by,
       u.last_used_at,
       COALESCE(u.signatures, 0) AS signatures,
       COALESCE(u.reveals, 0) AS reveals,
       COALESCE(u.refusals, 0) AS refusals
  FROM trading_guard.credential_store c
  LEFT JOIN trading_guard.credential_usage() u ON u.credential_id OPERATOR(pg_catalog.=) c.id;

COMMENT ON VIEW trading_guard.credentials IS
'stored exchange credentials with the API key masked and never the secret; use counts since server start';

CREATE VIEW trading_guard.credentials_due_for_rotation AS
SELECT id, exchange, label, environment, api_key, created_at, rotated_at,
       rotate_after, rotate_by
  FROM trading_guard.credentials
 WHERE revoked_at IS NULL AND rotate_by OPERATOR(pg_catalog.<=) pg_catalog.now();

COMMENT ON VIEW trading_guard.credentials_due_for_rotation IS
'active credentials whose rotate_after has passed since they were stored or last rotated';

REVOKE ALL ON trading_guard.credential_store FROM PUBLIC;
REVOKE ALL ON trading_guard.credentials FROM PUBLIC;
REVOKE ALL ON trading_guard.credentials_due_for_rotation FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.store_credential(text, text, text, text, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.rotate_credential(text, text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.revoke_credential(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.reveal_credential(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.reveal_credential(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.sign_request(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.rekey(integer) FROM PUBLIC;
-- use counts by credential id, no names: callable by everyone, because a
-- view's functions run with the rights of whoever reads the view
GRANT EXECUTE ON FUNCTION trading_guard.credential_usage() TO PUBLIC;
