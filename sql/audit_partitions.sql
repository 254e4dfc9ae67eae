--
-- Row-level audit of partitioned tables: enabled at the root, partitions
-- created or attached later are covered, a detached one stays audited
--
CREATE TABLE ptrades (id bigint, day date, symbol text, qty numeric, secret text,
                      PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE ptrades_2026_11 PARTITION OF ptrades FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
SELECT trading_guard.enable_audit('ptrades', mask_columns => '{secret}');
-- a partition is covered through its root and cannot be enabled on its own
SELECT trading_guard.enable_audit('ptrades_2026_11');

-- created later (also a sub-partitioned one), attached later
CREATE TABLE ptrades_2026_12 PARTITION OF ptrades FOR VALUES FROM ('2026-12-01') TO ('2027-01-01')
    PARTITION BY HASH (id);
CREATE TABLE ptrades_2026_12_a PARTITION OF ptrades_2026_12 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE ptrades_2026_12_b PARTITION OF ptrades_2026_12 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE ptrades_2027_01 (LIKE ptrades);
ALTER TABLE ptrades ATTACH PARTITION ptrades_2027_01 FOR VALUES FROM ('2027-01-01') TO ('2027-02-01');
SELECT c.relname, count(t.tgname) AS audit_triggers,
       bool_and(t.tgenabled = 'A') AS always
  FROM pg_partition_tree('ptrades') p
  JOIN pg_class c ON c.oid = p.relid
  LEFT JOIN pg_trigger t ON t.tgrelid = p.relid AND t.tgname LIKE 'trading\_guard\_audit\_%'
 GROUP BY c.relname ORDER BY c.relname;
SELECT table_name, triggers_intact FROM trading_guard.audited_tables
 WHERE table_name::text LIKE 'ptrades%';

-- through the root: recorded once, as the root
INSERT INTO ptrades VALUES (1, '2026-11-15', 'BTCUSDT', 1, 's1'), (2, '2026-12-15', 'ETHUSDT', 2, 's2'),
                           (3, '2027-01-15', 'SOLUSDT', 3, 's3');
-- moved to another partition: one UPDATE
UPDATE ptrades SET day = '2027-01-20' WHERE id = 1;
-- straight into a partition: recorded as the partition
INSERT INTO ptrades_2026_12_b VALUES (5, '2026-12-24', 'XRPUSDT', 5, 's5');
DELETE FROM ptrades_2026_12_b WHERE id = 5;
DELETE FROM ptrades WHERE id = 2;
SELECT table_name, operation, row_key, old_row, new_row, changed_columns
  FROM trading_guard.audit_log
 WHERE table_name LIKE 'ptrades%' AND operation IN ('INSERT', 'UPDATE', 'DELETE')
 ORDER BY id;
SELECT operation, table_name FROM trading_guard.history('ptrades', '{"id": 1, "day": "2026-11-15"}');
SELECT operation, table_name FROM trading_guard.history('ptrades', '{"id": 5, "day": "2026-12-24"}');

-- TRUNCATE of the root: one row per table truncated
TRUNCATE ptrades;
SELECT table_name, count(*) FROM trading_guard.audit_log
 WHERE operation = 'TRUNCATE' AND table_name LIKE 'ptrades%' GROUP BY 1 ORDER BY 1;

-- MERGE and rows moved between partitions (README, "Partitioned tables").
-- PostgreSQL 15 hands a row a MERGE moves to the DELETE and INSERT
-- transition tables, whose triggers fire only when the MERGE has those
-- actions: a MERGE that sets a partition key column is refused (TG067)
-- unless it has both; a plain UPDATE that moves a row is one UPDATE.
INSERT INTO ptrades VALUES (11, '2026-11-11', 'BTCUSDT', 1, 's11'), (12, '2026-11-12', 'ETHUSDT', 2, 's12'),
                           (13, '2026-11-13', 'SOLUSDT', 3, 's13');
SELECT max(id) AS merge_mark FROM trading_guard.audit_log \gset
UPDATE ptrades SET day = '2026-12-11' WHERE id = 11;
-- only an UPDATE action (it would have left no audit row at all), UPDATE and
-- DELETE, UPDATE and INSERT: refused, nothing changed
MERGE INTO ptrades t USING (VALUES (12, '2026-12-12'::date)) s(id, day) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET day = s.day, qty = 20;
MERGE INTO ptrades t USING (VALUES (12, '2026-12-12'::date)) s(id, day) ON t.id = s.id
  WHEN MATCHED AND s.day IS NULL THEN DELETE
  WHEN MATCHED THEN UPDATE SET day = s.day;
MERGE INTO ptrades t USING (VALUES (12, '2026-12-12'::date)) s(id, day) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET (qty, day) = (20, s.day)
  WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.day, 'XRPUSDT', 4, 's14');
-- the sub-partitions' key (id, hash) counts too; a MERGE into a sub-partitioned
-- partition is checked like one into the root
MERGE INTO ptrades t USING (VALUES (12)) s(id) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET id = 112;
MERGE INTO ptrades_2026_12 t USING (VALUES (11)) s(id) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET id = 111;
-- prepared before the table was audited: checked again when it runs
CREATE TABLE pmerge (id int, part int, PRIMARY KEY (id, part)) PARTITION BY LIST (part);
CREATE TABLE pmerge_1 PARTITION OF pmerge FOR VALUES IN (1);
CREATE TABLE pmerge_2 PARTITION OF pmerge FOR VALUES IN (2);
INSERT INTO pmerge VALUES (1, 1);
PREPARE move_it AS MERGE INTO pmerge t USING (VALUES (1)) s(id) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET part = 3 - t.part;
EXECUTE move_it;
SELECT trading_guard.enable_audit('pmerge');
EXECUTE move_it;
SELECT tableoid::regclass, * FROM pmerge;
DEALLOCATE move_it;
SELECT trading_guard.disable_audit('pmerge');
DROP TABLE pmerge;
-- allowed: an UPDATE action that sets no key column (one UPDATE), a MERGE
-- into a leaf partition (it cannot move rows), and one with INSERT and
-- DELETE actions too: its moved row is recorded as a DELETE and an INSERT
MERGE INTO ptrades t USING (VALUES (12, 22)) s(id, qty) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET qty = s.qty;
MERGE INTO ptrades_2026_11 t USING (VALUES (12, 32)) s(id, qty) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET qty = s.qty;
MERGE INTO ptrades t
  USING (VALUES (13, '2026-12-13'::date), (14, '2026-11-14'::date), (12, NULL)) s(id, day)
  ON t.id = s.id
  WHEN MATCHED AND s.day IS NULL THEN DELETE
  WHEN MATCHED THEN UPDATE SET day = s.day
  WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.day, 'XRPUSDT', 4, 's14');
SELECT table_name, operation, row_key, old_key, old_row->>'day' AS old_day,
       new_row->>'day' AS new_day, old_row->>'qty' AS old_qty, new_row->>'qty' AS new_qty,
       changed_columns
  FROM trading_guard.audit_log
 WHERE id > :merge_mark AND table_name LIKE 'ptrades%'
 ORDER BY id;
SELECT operation, row_key FROM trading_guard.history('ptrades', '{"id": 13, "day": "2026-11-13"}');
SELECT operation, row_key FROM trading_guard.history('ptrades', '{"id": 13, "day": "2026-12-13"}');
TRUNCATE ptrades;

-- audit_log.id (README, "What each audit row holds"): no unique index
-- enforces it, and a superuser may still set its sequence (here to where it is)
SELECT count(*) AS unique_indexes FROM pg_index
 WHERE indrelid = 'trading_guard.audit_log'::regclass AND indisunique;
SELECT setval('trading_guard.audit_log_id_seq', last_value) = last_value AS settable
  FROM trading_guard.audit_log_id_seq;

-- detached: audited on its own, with the root's settings
ALTER TABLE ptrades DETACH PARTITION ptrades_2027_01;
SELECT table_name, masked FROM trading_guard.audited_tables
 WHERE table_name::text LIKE 'ptrades%' ORDER BY 1;
INSERT INTO ptrades_2027_01 VALUES (9, '2027-01-09', 'BTCUSDT', 9, 's9');
SELECT table_name, operation, new_row FROM trading_guard.audit_log
 WHERE table_name = 'ptrades_2027_01' AND operation = 'INSERT';

-- the DDL is on record
SELECT table_name, new_row->>'command_tag' AS tag, new_row->>'statement' AS statement
  FROM trading_guard.audit_log
 WHERE operation = 'DDL' AND table_name LIKE 'ptrades%' ORDER BY id;

-- disable at the root: every member loses its triggers
SELECT trading_guard.disable_audit('ptrades');
SELECT count(*) FROM pg_partition_tree('ptrades') p
  JOIN pg_trigger t ON t.tgrelid = p.relid AND t.tgname LIKE 'trading\_guard\_audit\_%';
