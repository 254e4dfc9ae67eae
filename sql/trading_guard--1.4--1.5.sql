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
    WITH (autosummarize = on);

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
    purged_through  bigint      NOT NULL,
    layout          bytea       NOT NULL
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
-- history() without a B-tree on the write path (src/seal_keys.c).  The
-- B-tree on audit_log.key_hash cost every audited row an index insert; the
-- sealer now fills audit_key_index in bulk, sorted, after each batch, and
-- history() reads the rows not indexed yet (later batches, unsealed rows)
-- from audit_log through the BRIN index on (event_time, txid).  Derived
-- data: not dumped, rebuilt by the sealer after a restore.  The rows of
-- tables without a primary key (row_key IS NULL) have a partial index of
-- their own, instead of 1.1's scan of the whole log in every call.
-- ---------------------------------------------------------------------------
DROP INDEX trading_guard.audit_log_key_hash_idx;
CREATE INDEX audit_log_unkeyed_idx
    ON trading_guard.audit_log (table_oid)
    WHERE row_key IS NULL
      AND operation OPERATOR(pg_catalog.=) ANY ('{INSERT,UPDATE,DELETE}'::pg_catalog.text[]);

CREATE TABLE trading_guard.audit_key_index (
    key_hash bigint NOT NULL,
    id       bigint NOT NULL,
    tid      tid    NOT NULL
);
CREATE INDEX audit_key_index_key_hash_idx ON trading_guard.audit_key_index (key_hash);
REVOKE ALL ON trading_guard.audit_key_index FROM PUBLIC;
COMMENT ON TABLE trading_guard.audit_key_index IS
'where history() finds the versions of a row among the sealed audit rows (filled by the sealer; not dumped)';

CREATE TABLE trading_guard.audit_key_state (
    indexed_through bigint NOT NULL
);
INSERT INTO trading_guard.audit_key_state VALUES (0);
REVOKE ALL ON trading_guard.audit_key_state FROM PUBLIC;
COMMENT ON TABLE trading_guard.audit_key_state IS
'the batch of audit_seal up to which audit_key_index is complete';

CREATE FUNCTION trading_guard.audit_key_lookup(key_hash bigint, OUT tid tid, OUT id bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tg_audit_key_lookup'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION trading_guard.audit_key_lookup(bigint) IS
'the key index entries of one key hash (for history(); needs SELECT on audit_log)';

CREATE FUNCTION trading_guard.audit_key_tail()
RETURNS pg_catalog.pg_snapshot
AS 'MODULE_PATHNAME', 'tg_audit_key_tail'
LANGUAGE C STABLE;
COMMENT ON FUNCTION trading_guard.audit_key_tail() IS
'the snapshot of the last batch in the key index: rows whose transaction it does not see are not indexed (for history())';

-- Runs with the caller's rights: SELECT on audit_log is what it needs.
-- Every branch has an index; enable_seqscan = off keeps the planner from
-- a scan of the log when it cannot estimate the tail's size.
CREATE OR REPLACE FUNCTION trading_guard.history(tbl regclass, key jsonb)
RETURNS SETOF trading_guard.audit_log
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET enable_seqscan = off
AS $$
    -- the table and its partitions, by OID and, for rows recorded before a
    -- dump and restore (which gives the tables new OIDs), by name
    -- (with search_path = pg_catalog, pg_temp a regclass prints as
    -- schema.name, each part quoted as quote_ident does)
    WITH members AS MATERIALIZED (
        SELECT pg_catalog.array_agg(m.relid) AS oids,
               pg_catalog.array_agg(m.relid::pg_catalog.regclass::pg_catalog.text) AS names
          FROM (SELECT relid FROM pg_catalog.pg_partition_tree(tbl)
                UNION SELECT tbl) m),
    tail AS MATERIALIZED (
        SELECT trading_guard.audit_key_tail() AS snap)
    -- a row can come from two branches (a log restored from another
    -- cluster has transaction ids this cluster's snapshots do not order):
    -- each row once
    SELECT DISTINCT ON (h.event_time, h.id) h.* FROM (
        -- sealed and indexed
        SELECT l.* FROM trading_guard.audit_key_lookup(trading_guard.audit_key_hash(key::text)) k
          JOIN trading_guard.audit_log l ON l.ctid OPERATOR(pg_catalog.=) k.tid
         WHERE l.id OPERATOR(pg_catalog.=) k.id
           AND l.row_key OPERATOR(pg_catalog.=) key::text
        UNION ALL
        -- not indexed yet: the transactions the last indexed batch did not see
        SELECT l.* FROM trading_guard.audit_log l, tail
         WHERE l.txid OPERATOR(pg_catalog.>=)
               (SELECT COALESCE(pg_catalog.pg_snapshot_xmin(t.snap), '0'::pg_catalog.xid8) FROM tail t)
           AND (tail.snap IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(l.txid, tail.snap))
           AND l.key_hash OPERATOR(pg_catalog.=) trading_guard.audit_key_hash(key::text)
           AND l.row_key OPERATOR(pg_catalog.=) key::text
        UNION ALL
        SELECT l.* FROM trading_guard.audit_log l
         WHERE l.old_key OPERATOR(pg_catalog.=) key::text
        UNION ALL
        SELECT l.* FROM trading_guard.audit_log l
         WHERE l.row_key IS NULL
           AND l.operation OPERATOR(pg_catalog.=) ANY ('{INSERT,UPDATE,DELETE}'::pg_catalog.text[])
           AND (l.new_row OPERATOR(pg_catalog.@>) key OR l.old_row OPERATOR(pg_catalog.@>) key)) h,
         members
     WHERE h.table_oid OPERATOR(pg_catalog.=) ANY (members.oids)
        OR pg_catalog.quote_ident(h.schema_name) OPERATOR(pg_catalog.||) '.'
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(h.table_name)
           OPERATOR(pg_catalog.=) ANY (members.names)
     ORDER BY h.event_time, h.id
$$;

-- ---------------------------------------------------------------------------
-- Tests of sealing (sql/seal.sql): the function under the view seal_status
-- says what it is for in \df+ like every other function of the extension.
-- ---------------------------------------------------------------------------
COMMENT ON FUNCTION trading_guard.seal_status() IS
'what the view trading_guard.seal_status shows (a role needs SELECT on the view and EXECUTE on this function)';
