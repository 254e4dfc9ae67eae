/* trading_guard--1.4--1.5.sql — 1.5 seals the audit trail (tamper evidence) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.5'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Sealing of the audit trail (src/seal.c, src/seal_verify.c; README
-- "Tamper evidence").  Batches of committed audit rows are chained with
-- HMAC-SHA256 under the key ring's sealing subkey and signed with Ed25519.
-- ---------------------------------------------------------------------------

-- The sealer finds the rows of the transactions that committed since the
-- last batch through a BRIN index on txid; PostgreSQL has no BRIN operator
-- class for xid8, so this is one (the minmax support functions of core).
CREATE OPERATOR FAMILY trading_guard.xid8_minmax_ops USING brin;
CREATE OPERATOR CLASS trading_guard.xid8_minmax_ops
    FOR TYPE pg_catalog.xid8 USING brin FAMILY trading_guard.xid8_minmax_ops AS
    OPERATOR 1 pg_catalog.< (pg_catalog.xid8, pg_catalog.xid8),
    OPERATOR 2 pg_catalog.<= (pg_catalog.xid8, pg_catalog.xid8),
    OPERATOR 3 pg_catalog.= (pg_catalog.xid8, pg_catalog.xid8),
    OPERATOR 4 pg_catalog.>= (pg_catalog.xid8, pg_catalog.xid8),
    OPERATOR 5 pg_catalog.> (pg_catalog.xid8, pg_catalog.xid8),
    FUNCTION 1 pg_catalog.brin_minmax_opcinfo(internal),
    FUNCTION 2 pg_catalog.brin_minmax_add_value(internal, internal, internal, internal),
    FUNCTION 3 pg_catalog.brin_minmax_consistent(internal, internal, internal),
    FUNCTION 4 pg_catalog.brin_minmax_union(internal, internal, internal);

-- One index for time ranges and for the sealer: the BRIN on event_time of
-- 1.1 gains txid as a second column.  One writer's rows share both values,
-- so the writer updates it once per heap block, not per row, and one index
-- costs an audited transaction one open and one revmap lookup, not two
-- (src/audit_writer.c, per_block).
DROP INDEX trading_guard.audit_log_time_idx;
CREATE INDEX audit_log_time_idx
    ON trading_guard.audit_log
    USING brin (event_time, txid trading_guard.xid8_minmax_ops)
    WITH (pages_per_range = 32, autosummarize = on);

-- The chain: one row per batch.  Append-only like audit_log.
CREATE TABLE trading_guard.audit_seal (
    batch           bigint      PRIMARY KEY,
    sealed_at       timestamptz NOT NULL,
    key_version     integer     NOT NULL,
    first_position  bigint      NOT NULL,
    row_count       bigint      NOT NULL,
    snapshot        pg_catalog.pg_snapshot NOT NULL,
    ids             pg_catalog.int8multirange NOT NULL,
    leaf_tags       bytea       NOT NULL,
    merkle_root     bytea       NOT NULL,
    prev_hash       bytea       NOT NULL,
    chain_hash      bytea       NOT NULL,
    signature       bytea       NOT NULL,
    max_event_time  timestamptz NOT NULL,
    system_identifier bigint    NOT NULL,
    purged_through  bigint      NOT NULL
);
COMMENT ON TABLE trading_guard.audit_seal IS
'the sealed hash chain over trading_guard.audit_log: one row per batch of sealed audit rows';
REVOKE ALL ON trading_guard.audit_seal FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.audit_seal', '');

CREATE TRIGGER audit_seal_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON trading_guard.audit_seal
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.audit_log_append_only();
ALTER TABLE trading_guard.audit_seal ENABLE ALWAYS TRIGGER audit_seal_append_only;

CREATE FUNCTION trading_guard.seal_audit()
RETURNS bigint
AS 'MODULE_PATHNAME', 'tg_seal_audit'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION trading_guard.seal_audit() FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.seal_audit() IS
'seal every committed audit row not sealed yet, as one batch; returns how many rows';

CREATE FUNCTION trading_guard.verify_audit(from_position bigint DEFAULT NULL,
                                           digest text DEFAULT NULL,
    OUT ok boolean, OUT rows_checked bigint, OUT batches_checked bigint,
    OUT first_bad_position bigint, OUT first_bad_id bigint,
    OUT problem text, OUT detail text,
    OUT head_position bigint, OUT unsealed_rows bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'tg_verify_audit'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION trading_guard.verify_audit(bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.verify_audit(bigint, text) IS
'check the sealed audit trail (from a position; against an older signed digest); the first bad row if any';

CREATE FUNCTION trading_guard.audit_digest(
    OUT batch bigint, OUT "position" bigint, OUT sealed_at timestamptz,
    OUT key_version integer, OUT root text, OUT chain text,
    OUT message text, OUT signature text, OUT public_key text)
RETURNS record
AS 'MODULE_PATHNAME', 'tg_audit_digest'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION trading_guard.audit_digest() FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.audit_digest() IS
'the head of the audit chain, signed with Ed25519 (message, base64 signature, PEM public key)';

CREATE FUNCTION trading_guard.audit_proof(id bigint)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'tg_audit_proof'
LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION trading_guard.audit_proof(bigint) FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.audit_proof(bigint) IS
'inclusion proof of one sealed audit row (tools/tg_verify.py checks it without a database)';

CREATE FUNCTION trading_guard.seal_status(
    OUT last_position bigint, OUT last_batch bigint, OUT last_sealed_at timestamptz,
    OUT key_version integer, OUT backlog_rows bigint, OUT oldest_unsealed timestamptz,
    OUT worker_pid integer, OUT waiting_for_key_ring boolean,
    OUT worker_last_round timestamptz, OUT last_error text, OUT last_error_at timestamptz,
    OUT key_ring_loaded boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'tg_seal_status'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION trading_guard.seal_status() FROM PUBLIC;

CREATE VIEW trading_guard.seal_status AS
SELECT s.last_position AS rows_sealed,
       s.last_batch,
       s.last_sealed_at,
       s.key_version,
       s.backlog_rows,
       s.oldest_unsealed,
       pg_catalog.now() OPERATOR(pg_catalog.-) s.oldest_unsealed AS backlog_age,
       s.worker_pid,
       s.waiting_for_key_ring,
       s.key_ring_loaded,
       s.worker_last_round,
       s.last_error,
       s.last_error_at
  FROM trading_guard.seal_status() s;
COMMENT ON VIEW trading_guard.seal_status IS
'sealing of the audit trail: rows sealed, last batch, unsealed backlog, the worker, the last error';
REVOKE ALL ON trading_guard.seal_status FROM PUBLIC;

-- Retention removes whole sealed batches only, and records the cut.
CREATE OR REPLACE FUNCTION trading_guard.purge_audit(older_than interval)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tg_purge_audit_sealed'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION trading_guard.purge_audit(interval) IS
'remove the sealed audit rows of whole batches older than the interval (never unsealed rows); returns how many';

-- ---------------------------------------------------------------------------
-- history(): the rows of tables without a primary key (row_key IS NULL) are
-- found through a partial index instead of a scan of the whole log, which
-- the third branch of 1.1's history() did for every call, keyed or not.
-- ---------------------------------------------------------------------------
CREATE INDEX audit_log_unkeyed_idx
    ON trading_guard.audit_log (table_oid) WHERE row_key IS NULL;

CREATE OR REPLACE FUNCTION trading_guard.history(tbl regclass, key jsonb)
RETURNS SETOF trading_guard.audit_log
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
    WITH members AS MATERIALIZED (
        SELECT pg_catalog.array_agg(relid) AS oids
          FROM (SELECT relid FROM pg_catalog.pg_partition_tree(tbl)
                UNION SELECT tbl) m)
    SELECT h.* FROM (
        SELECT l.* FROM trading_guard.audit_log l, members
         WHERE l.key_hash OPERATOR(pg_catalog.=) trading_guard.audit_key_hash(key::text)
           AND l.row_key OPERATOR(pg_catalog.=) key::text
           AND l.table_oid OPERATOR(pg_catalog.=) ANY (members.oids)
        UNION ALL
        SELECT l.* FROM trading_guard.audit_log l, members
         WHERE l.old_key OPERATOR(pg_catalog.=) key::text
           AND l.table_oid OPERATOR(pg_catalog.=) ANY (members.oids)
        UNION ALL
        SELECT l.* FROM trading_guard.audit_log l, members
         WHERE l.table_oid OPERATOR(pg_catalog.=) ANY (members.oids) AND l.row_key IS NULL
           AND l.operation OPERATOR(pg_catalog.=) ANY ('{INSERT,UPDATE,DELETE}'::text[])
           AND (l.new_row OPERATOR(pg_catalog.@>) key OR l.old_row OPERATOR(pg_catalog.@>) key)) h
     ORDER BY h.event_time, h.id
$$;
