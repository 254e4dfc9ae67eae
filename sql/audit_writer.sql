--
-- The writer of trading_guard.audit_log: rows as stored, and the check that
-- the installed audit_log has the columns the library writes (TG068)
--
\set SHOW_CONTEXT never
SELECT coalesce(max(id), 0) AS mark FROM trading_guard.audit_log \gset

-- Rows of every kind: INSERT (several per statement), UPDATE (with a key
-- change), DELETE, TRUNCATE, events with and without a table; NULLs, a
-- masked column, values short and long enough for a 4-byte varlena header,
-- with and without application_name and actor.
CREATE TABLE ledger (id int PRIMARY KEY, account int, amount numeric,
                     booked timestamptz, memo text, secret text, flags int[]);
SELECT trading_guard.enable_audit('ledger', mask_columns => '{secret}');
SET application_name = '';
INSERT INTO ledger VALUES
    (1, 7, 10.5, '2026-12-01 10:00+00', 'short', 's1', '{1,2}'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL),
    (3, 8, -1e-20, '2026-12-01 11:00+00', repeat('long memo ', 30), 's3', '{}');
SET application_name = 'writer test';
SET trading_guard.actor = 'desk-1/bob';
UPDATE ledger SET amount = amount * 2, memo = memo || '!' WHERE id IN (1, 3);
UPDATE ledger SET id = 20 WHERE id = 2;
DELETE FROM ledger WHERE id = 3;
RESET trading_guard.actor;
TRUNCATE ledger;
SELECT trading_guard.audit_record('NOTE', NULL, '{"note": "an event without a table"}');
SELECT trading_guard.audit_record('NOTE', 'ledger', NULL);
RESET application_name;

-- Each row is stored byte for byte as heap_form_tuple() would store it: a
-- copy made by INSERT ... SELECT has the same null bitmap, flags and data
-- area.  (The id + 0 makes the executor form each copied row anew from its
-- values, rather than copy the tuple as it is.)
CREATE EXTENSION pageinspect;
CREATE TABLE writer_copy (LIKE trading_guard.audit_log);
INSERT INTO writer_copy
SELECT id + 0, event_time, txid, table_oid, schema_name, table_name, operation,
       session_user_name, current_user_name, client_addr, application_name, actor,
       row_key, key_hash, old_key, old_row, new_row, changed_columns
  FROM trading_guard.audit_log WHERE id > :mark;
-- the stored form of each row of rel with an id above mark, by id
CREATE FUNCTION raw_rows(rel regclass, mark bigint)
RETURNS TABLE (id bigint, hoff smallint, bits text, flags int, natts int, data bytea)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT r.id, p.t_hoff, p.t_bits, p.t_infomask & 7, p.t_infomask2 & 2047, p.t_data
           FROM %s r, LATERAL heap_page_items(get_raw_page(%L, (r.ctid::text::point)[0]::int)) p
          WHERE p.lp = (r.ctid::text::point)[1]::int AND r.id > $1', rel, rel::text)
    USING mark;
END
$$;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE a.data IS NULL OR b.data IS NULL) AS unmatched,
       count(*) FILTER (WHERE (a.hoff, a.bits, a.flags, a.natts, a.data)
                              IS DISTINCT FROM (b.hoff, b.bits, b.flags, b.natts, b.data)) AS differ,
       count(*) FILTER (WHERE octet_length(a.data) > 400) AS long_rows
  FROM raw_rows('trading_guard.audit_log', :mark) a FULL JOIN raw_rows('writer_copy', :mark) b USING (id);
-- what was recorded
SELECT operation, table_name, row_key, key_hash, old_key, application_name, actor,
       changed_columns, length(old_row::text) AS old_len, length(new_row::text) AS new_len
  FROM trading_guard.audit_log WHERE id > :mark ORDER BY id;
SELECT new_row FROM trading_guard.audit_log
 WHERE id > :mark AND operation = 'INSERT' AND row_key = '{"id": 2}';
DROP FUNCTION raw_rows(regclass, bigint);
DROP TABLE writer_copy;
DROP EXTENSION pageinspect;

-- The columns the writer expects, checked before it writes (once per
-- backend, and again after audit_log changes): an audit_log of another
-- layout -- SQL objects of another version than the library, or a log
-- altered in maintenance mode with the DDL event trigger off -- refuses
-- every write with TG068, naming ALTER EXTENSION trading_guard UPDATE.
INSERT INTO ledger VALUES (5, 1, 1, now(), 'before', 'x', NULL);
-- a column added
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
ALTER TABLE trading_guard.audit_log ADD COLUMN extra int;
INSERT INTO ledger VALUES (6, 1, 1, now(), 'added', 'x', NULL);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a column of another type
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
ALTER TABLE trading_guard.audit_log ALTER COLUMN actor TYPE varchar;
UPDATE ledger SET memo = 'retyped' WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a column renamed; events are written by the same writer
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
ALTER TABLE trading_guard.audit_log RENAME COLUMN actor TO who;
SELECT trading_guard.audit_record('NOTE', 'ledger', NULL);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a column dropped (still counted: dropped columns keep their place)
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
ALTER EVENT TRIGGER trading_guard_audit_drop DISABLE;
ALTER TABLE trading_guard.audit_log DROP COLUMN changed_columns;
DELETE FROM ledger WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- the same columns in another order
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
ALTER TABLE trading_guard.audit_log RENAME COLUMN old_row TO tmp;
ALTER TABLE trading_guard.audit_log RENAME COLUMN new_row TO old_row;
ALTER TABLE trading_guard.audit_log RENAME COLUMN tmp TO new_row;
DELETE FROM ledger WHERE id = 5;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- nothing of it happened; the restored log is written to again
SELECT id, memo FROM ledger ORDER BY id;
UPDATE ledger SET memo = 'after' WHERE id = 5;
SELECT operation, row_key, old_row->>'memo' AS old_memo, new_row->>'memo' AS new_memo
  FROM trading_guard.audit_log WHERE id > :mark AND table_name = 'ledger'
   AND operation IN ('INSERT', 'UPDATE') AND row_key = '{"id": 5}' ORDER BY id;

SELECT trading_guard.disable_audit('ledger');
DROP TABLE ledger;
