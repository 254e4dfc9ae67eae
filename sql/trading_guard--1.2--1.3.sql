/* trading_guard--1.2--1.3.sql — 1.3 adds the key ring and the credential vault */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.3'" to load this file. \quit

------------------------------------------------------------------------
-- Keeping secrets out of logs (src/redact.c)
------------------------------------------------------------------------

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
