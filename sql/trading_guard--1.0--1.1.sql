/* trading_guard--1.0--1.1.sql — 1.1 adds the row-level audit trail */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.1'" to load this file. \quit

------------------------------------------------------------------------
-- Row-level audit (src/audit.c, src/audit_ddl.c)
--
-- The write path is C only: the triggers below build each audit row and
-- insert it through the table access method, below SQL, so no privilege on
-- audit_log is needed to be audited and none is granted.
------------------------------------------------------------------------

-- Which tables are audited, and how.  One row per table enabled by
-- enable_audit(); partitions are covered through their root's row.
CREATE TABLE trading_guard.audit_config (
    table_name      pg_catalog.regclass PRIMARY KEY,
    exclude_columns text[] NOT NULL DEFAULT '{}',
    mask_columns    text[] NOT NULL DEFAULT '{}',
    enabled_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    enabled_by      name NOT NULL DEFAULT CURRENT_USER,
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE trading_guard.audit_config IS
'tables audited by trading_guard; change it only through enable_audit() and disable_audit()';

-- Which columns are masked is no secret (pg_trigger is public too), and the
-- audit trigger reads this table as the user whose change it records.
GRANT SELECT ON trading_guard.audit_config TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.audit_config', '');

CREATE FUNCTION trading_guard.audit_config_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'tg_symbols_changed'
LANGUAGE C;

CREATE TRIGGER audit_config_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trading_guard.audit_config
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.audit_config_changed();
ALTER TABLE trading_guard.audit_config ENABLE ALWAYS TRIGGER audit_config_changed;

-- The log.  Append-only: rows are only ever inserted by trading_guard's C
-- code and removed by purge_audit().  Column order and types are part of the
-- API (and of the future seal, which hashes a canonical form of each row).
CREATE SEQUENCE trading_guard.audit_log_id_seq INCREMENT BY 1024;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.audit_log_id_seq', '');

CREATE TABLE trading_guard.audit_log (
    id                bigint      NOT NULL,
    event_time        timestamptz NOT NULL,
    txid              xid8        NOT NULL,
    table_oid         oid,
    schema_name       text,
    table_name        text,
    operation         text        NOT NULL,
    session_user_name text        NOT NULL,
    current_user_name text        NOT NULL,
    client_addr       inet,
    application_name  text,
    actor             text,
    row_key           text,
    key_hash          bigint,
    old_key           text,
    old_row           jsonb,
    new_row           jsonb,
    changed_columns   text[]
);

COMMENT ON TABLE trading_guard.audit_log IS
'append-only audit trail of audited tables (see trading_guard.enable_audit)';

REVOKE ALL ON trading_guard.audit_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE trading_guard.audit_log_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.audit_log', '');

-- How history() finds a row's versions: key_hash is the primary key value
-- itself for a single integer key (so the index grows at its right edge, as
-- the table's own key does) and a 64-bit hash of row_key otherwise; see
-- audit_key_hash().  The partial index holds only the rare updates that
-- changed a row's key.
CREATE FUNCTION trading_guard.audit_key_hash(row_key text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tg_audit_key_hash'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION trading_guard.audit_key_hash(text) IS
'index key of an audit row''s row_key: the integer of a one-integer key, else a hash';

CREATE INDEX audit_log_key_hash_idx
    ON trading_guard.audit_log (key_hash);
CREATE INDEX audit_log_old_key_idx
    ON trading_guard.audit_log (old_key) WHERE old_key IS NOT NULL;
-- Time ranges, and who changed what in one: BRIN costs almost nothing to
-- maintain on an append-only table whose rows arrive in time order.
CREATE INDEX audit_log_time_idx
    ON trading_guard.audit_log USING brin (event_time)
    WITH (autosummarize = on);

CREATE FUNCTION trading_guard.audit_log_append_only()
RETURNS trigger
AS 'MODULE_PATHNAME', 'tg_audit_log_append_only'
LANGUAGE C;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON trading_guard.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.audit_log_append_only();
ALTER TABLE trading_guard.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;

-- The trigger function of audited tables (statement level, transition
-- tables; see enable_audit).
CREATE FUNCTION trading_guard.audit_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'tg_audit_trigger'
LANGUAGE C;

-- Records an event that is not a row change (enable, disable, DDL) with the
-- caller's session details.  Internal: not for PUBLIC.
CREATE FUNCTION trading_guard.audit_record(operation text, tbl regclass, detail jsonb)
RETURNS void
AS 'MODULE_PATHNAME', 'tg_audit_record'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION trading_guard.audit_record(text, regclass, jsonb) FROM PUBLIC;

-- Create the missing audit triggers of one table (a root or one of its
-- partitions), ENABLE ALWAYS; drop them.  Internal: not for PUBLIC.
CREATE FUNCTION trading_guard.audit_attach_triggers(tbl regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'tg_audit_attach_triggers'
LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION trading_guard.audit_attach_triggers(regclass) FROM PUBLIC;

CREATE FUNCTION trading_guard.audit_detach_triggers(tbl regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'tg_audit_detach_triggers'
LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION trading_guard.audit_detach_triggers(regclass) FROM PUBLIC;

CREATE FUNCTION trading_guard.enable_audit(tbl regclass,
                                           exclude_columns text[] DEFAULT '{}',
                                           mask_columns text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind char;
    col text;
    key_cols text[];
    member regclass;
    was_enabled boolean;
BEGIN
    IF tbl IS NULL OR exclude_columns IS NULL OR mask_columns IS NULL THEN
        RAISE EXCEPTION 'arguments of enable_audit must not be null'
            USING ERRCODE = '22004';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl
            USING ERRCODE = '42809',
                  DETAIL = 'Only ordinary and partitioned tables can be audited.';
    END IF;
    IF tbl IN ('trading_guard.audit_log'::regclass, 'trading_guard.audit_config'::regclass) THEN
        RAISE EXCEPTION 'the audit tables of trading_guard cannot be audited'
            USING ERRCODE = '42809';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = tbl AND c.relispartition)
       AND EXISTS (SELECT 1 FROM pg_partition_ancestors(tbl) a
                     JOIN trading_guard.audit_config ac ON ac.table_name = a.relid
                    WHERE a.relid <> tbl) THEN
        RAISE EXCEPTION 'table "%" is already audited through its partitioned table', tbl
            USING ERRCODE = '42710',
                  HINT = 'Change the audit settings of the partitioned table instead.';
    END IF;

    FOREACH col IN ARRAY exclude_columns || mask_columns LOOP
        IF col IS NULL THEN
            RAISE EXCEPTION 'column names must not be null' USING ERRCODE = '22004';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = tbl AND a.attname = col
                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of relation "%" does not exist', col, tbl
                USING ERRCODE = '42703';
        END IF;
    END LOOP;
    IF exclude_columns && mask_columns THEN
        RAISE EXCEPTION 'a column cannot be both excluded and masked'
            USING ERRCODE = 'TG062';
    END IF;
    -- the key identifies a row in history(); it is recorded in the clear
    SELECT array_agg(a.attname::text) INTO key_cols
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = tbl AND i.indisprimary;
    IF key_cols && (exclude_columns || mask_columns) THEN
        RAISE EXCEPTION 'primary key columns of "%" cannot be excluded or masked', tbl
            USING ERRCODE = 'TG062',
                  DETAIL = 'The key identifies the row in the audit log and is recorded as it is.';
    END IF;

    was_enabled := EXISTS (SELECT 1 FROM trading_guard.audit_config WHERE table_name = tbl);
    INSERT INTO trading_guard.audit_config AS ac (table_name, exclude_columns, mask_columns)
    VALUES (tbl,
            ARRAY(SELECT DISTINCT c FROM unnest(exclude_columns) c ORDER BY 1),
            ARRAY(SELECT DISTINCT c FROM unnest(mask_columns) c ORDER BY 1))
    ON CONFLICT (table_name) DO UPDATE
       SET exclude_columns = excluded.exclude_columns,
           mask_columns = excluded.mask_columns,
           updated_at = now();

    FOR member IN SELECT relid FROM pg_partition_tree(tbl) UNION SELECT tbl LOOP
        PERFORM trading_guard.audit_attach_triggers(member);
    END LOOP;

    PERFORM trading_guard.audit_record(
        CASE WHEN was_enabled THEN 'AUDIT CHANGE' ELSE 'AUDIT ENABLE' END, tbl,
        jsonb_build_object('exclude_columns', exclude_columns,
                           'mask_columns', mask_columns));
END
$$;

COMMENT ON FUNCTION trading_guard.enable_audit(regclass, text[], text[]) IS
'record every change to the table (and its partitions) in trading_guard.audit_log';

CREATE FUNCTION trading_guard.disable_audit(tbl regclass)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    member regclass;
    was_enabled boolean;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be null' USING ERRCODE = '22004';
    END IF;
    was_enabled := EXISTS (SELECT 1 FROM trading_guard.audit_config WHERE table_name = tbl);
    IF was_enabled THEN
        -- recorded first, while the table's settings are still known
        PERFORM trading_guard.audit_record('AUDIT DISABLE', tbl, NULL);
        DELETE FROM trading_guard.audit_config WHERE table_name = tbl;
    END IF;
    -- also removes triggers left on a table that is no longer audited
    FOR member IN SELECT relid FROM pg_partition_tree(tbl) UNION SELECT tbl LOOP
        PERFORM trading_guard.audit_detach_triggers(member);
    END LOOP;
    RETURN was_enabled;
END
$$;

COMMENT ON FUNCTION trading_guard.disable_audit(regclass) IS
'stop auditing the table; false if it was not audited';

REVOKE ALL ON FUNCTION trading_guard.enable_audit(regclass, text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.disable_audit(regclass) FROM PUBLIC;

CREATE VIEW trading_guard.audited_tables AS
SELECT ac.table_name,
       ac.exclude_columns AS excluded,
       ac.mask_columns AS masked,
       ac.enabled_at AS enabled_since,
       ac.enabled_by,
       ac.updated_at,
       (SELECT pg_catalog.count(*) = 0
          FROM (SELECT relid FROM pg_catalog.pg_partition_tree(ac.table_name)
                UNION SELECT ac.table_name) m
          CROSS JOIN (VALUES ('insert'), ('update'), ('delete'), ('truncate')) e(ev)
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid = m.relid
                              AND t.tgname = 'trading_guard_audit_' || e.ev
                              AND t.tgenabled = 'A')) AS triggers_intact
  FROM trading_guard.audit_config ac;

COMMENT ON VIEW trading_guard.audited_tables IS
'audited tables; triggers_intact is false if an audit trigger was dropped or disabled';
GRANT SELECT ON trading_guard.audited_tables TO PUBLIC;

-- Retention: the only way rows leave the log.  Records itself.
CREATE FUNCTION trading_guard.purge_audit(older_than interval)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tg_purge_audit'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION trading_guard.purge_audit(interval) FROM PUBLIC;

COMMENT ON FUNCTION trading_guard.purge_audit(interval) IS
'remove audit rows older than the interval; returns how many';

-- Every version of one row, oldest first.  key holds the primary key columns
-- (all of them for a composite key); for a table without a primary key, any
-- columns that pick the row out (matched with @> against the row images).
-- Runs with the caller's privileges: SELECT on audit_log is what it needs.
CREATE FUNCTION trading_guard.history(tbl regclass, key jsonb)
RETURNS SETOF trading_guard.audit_log
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH members AS MATERIALIZED (
        SELECT pg_catalog.array_agg(relid) AS oids
          FROM (SELECT relid FROM pg_catalog.pg_partition_tree(tbl)
                UNION SELECT tbl) m)
    SELECT h.* FROM (
        SELECT l.* FROM trading_guard.audit_log l, members
         WHERE l.key_hash = trading_guard.audit_key_hash(key::text)
           AND l.row_key = key::text AND l.table_oid = ANY (members.oids)
        UNION ALL
        SELECT l.* FROM trading_guard.audit_log l, members
         WHERE l.old_key = key::text AND l.table_oid = ANY (members.oids)
        UNION ALL
        SELECT l.* FROM trading_guard.audit_log l, members
         WHERE l.table_oid = ANY (members.oids) AND l.row_key IS NULL
           AND l.operation IN ('INSERT', 'UPDATE', 'DELETE')
           AND (l.new_row @> key OR l.old_row @> key)) h
     ORDER BY h.event_time, h.id
$$;

COMMENT ON FUNCTION trading_guard.history(regclass, jsonb) IS
'every recorded version of one row of an audited table, oldest first';

-- DDL on audited tables and on the audit objects (src/audit_ddl.c)
CREATE FUNCTION trading_guard.audit_ddl_command_end()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'tg_audit_ddl_command_end'
LANGUAGE C;

CREATE FUNCTION trading_guard.audit_sql_drop()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'tg_audit_sql_drop'
LANGUAGE C;

CREATE EVENT TRIGGER trading_guard_audit_ddl ON ddl_command_end
    EXECUTE FUNCTION trading_guard.audit_ddl_command_end();
ALTER EVENT TRIGGER trading_guard_audit_ddl ENABLE ALWAYS;

CREATE EVENT TRIGGER trading_guard_audit_drop ON sql_drop
    EXECUTE FUNCTION trading_guard.audit_sql_drop();
ALTER EVENT TRIGGER trading_guard_audit_drop ENABLE ALWAYS;
