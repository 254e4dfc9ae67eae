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
