/* trading_guard--1.3--1.4.sql — 1.4 closes the findings of the security review */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.4'" to load this file. \quit


------------------------------------------------------------------------
-- Finding 5 and 6 (utility guard): audited_tables.triggers_intact also
-- covers inheritance children (and foreign partitions), which carry no
-- audit triggers, and the append-only guard of audit_log itself.
------------------------------------------------------------------------

CREATE OR REPLACE VIEW trading_guard.audited_tables AS
SELECT ac.table_name,
       ac.exclude_columns AS excluded,
       ac.mask_columns AS masked,
       ac.enabled_at AS enabled_since,
       ac.enabled_by,
       ac.updated_at,
       (SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 0
          FROM (WITH RECURSIVE members(relid) AS (
                    SELECT ac.table_name::pg_catalog.oid
                    UNION
                    SELECT i.inhrelid FROM pg_catalog.pg_inherits i, members
                     WHERE i.inhparent OPERATOR(pg_catalog.=) members.relid)
                SELECT relid FROM members) m
          CROSS JOIN (VALUES ('insert'), ('update'), ('delete'), ('truncate')) e(ev)
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                            WHERE t.tgrelid OPERATOR(pg_catalog.=) m.relid
                              AND t.tgname OPERATOR(pg_catalog.=)
                                  ('trading_guard_audit_' OPERATOR(pg_catalog.||) e.ev)::pg_catalog.name
                              AND t.tgenabled OPERATOR(pg_catalog.=) 'A'))
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                    WHERE g.tgrelid OPERATOR(pg_catalog.=) 'trading_guard.audit_log'::pg_catalog.regclass
                      AND g.tgname OPERATOR(pg_catalog.=) 'audit_log_append_only'
                      AND g.tgenabled OPERATOR(pg_catalog.=) 'A') AS triggers_intact
  FROM trading_guard.audit_config ac;

COMMENT ON VIEW trading_guard.audited_tables IS
'audited tables; triggers_intact is false if an audit trigger was dropped or disabled, a member of the table''s tree (an inheritance child, a foreign partition) has none, or the append-only guard of audit_log is not ENABLE ALWAYS';
