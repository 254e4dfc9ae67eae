--
-- Row-level audit: append-only log, fail closed, replicas, privileges,
-- DDL on record, purge_audit()
--
CREATE TABLE book (id int PRIMARY KEY, qty numeric, secret text);
SELECT trading_guard.enable_audit('book', mask_columns => '{secret}');
INSERT INTO book VALUES (1, 10, 'k1');

-- append-only, for the superuser (the owner) too, even with triggers off
UPDATE trading_guard.audit_log SET actor = 'forged';
DELETE FROM trading_guard.audit_log;
DELETE FROM trading_guard.audit_log WHERE false;
TRUNCATE trading_guard.audit_log;
SET session_replication_role = replica;
DELETE FROM trading_guard.audit_log;
-- and the audit triggers fire on a replica too
INSERT INTO book VALUES (2, 20, 'k2');
RESET session_replication_role;
SELECT operation, row_key FROM trading_guard.audit_log
 WHERE table_name = 'book' AND operation = 'INSERT' ORDER BY id;

-- fail closed: when the audit row cannot be written, the change does not happen
-- (changing audit_log is refused outright, TG090 -- see own_objects; even in
-- maintenance mode it is refused while the DDL event trigger is on, because
-- the change could not be recorded)
ALTER TABLE trading_guard.audit_log ADD COLUMN extra int;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER TABLE trading_guard.audit_log ADD COLUMN extra int;
ROLLBACK;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
ALTER TABLE trading_guard.audit_log ADD COLUMN extra int;
INSERT INTO book VALUES (3, 30, 'k3');
ROLLBACK;
-- nor into a log that a crash would empty, or whose rows policies could
-- hide, or whose append-only guard is off (TG066)
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
ALTER TABLE trading_guard.audit_log SET UNLOGGED;
INSERT INTO book VALUES (3, 30, 'k3');
ROLLBACK;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
ALTER TABLE trading_guard.audit_log ENABLE ROW LEVEL SECURITY;
INSERT INTO book VALUES (3, 30, 'k3');
ROLLBACK;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER TABLE trading_guard.audit_log DISABLE TRIGGER audit_log_append_only;
ROLLBACK;
-- a superuser's DML on pg_trigger goes around every DDL check: the writer
-- sees the guard off (from a new session's relcache, as the executor does)
-- and refuses, and triggers_intact says so
UPDATE pg_catalog.pg_trigger SET tgenabled = 'D'
 WHERE tgrelid = 'trading_guard.audit_log'::regclass AND tgname = 'audit_log_append_only';
\c -
SELECT table_name, triggers_intact FROM trading_guard.audited_tables WHERE table_name = 'book'::regclass;
INSERT INTO book VALUES (3, 30, 'k3');
UPDATE pg_catalog.pg_trigger SET tgenabled = 'A'
 WHERE tgrelid = 'trading_guard.audit_log'::regclass AND tgname = 'audit_log_append_only';
\c -
SELECT table_name, triggers_intact FROM trading_guard.audited_tables WHERE table_name = 'book'::regclass;
SELECT count(*) AS book_rows FROM book;
-- a stale setting (the masked column is gone) also stops the change, and
-- the DDL that would cause it is refused
ALTER TABLE book RENAME COLUMN secret TO secret2;
ALTER TABLE book DROP COLUMN secret;
BEGIN;
SELECT trading_guard.enable_audit('book');
ALTER TABLE book RENAME COLUMN secret TO api_secret;
SELECT trading_guard.enable_audit('book', mask_columns => '{api_secret}');
COMMIT;
SELECT table_name, masked FROM trading_guard.audited_tables WHERE table_name = 'book'::regclass;
-- an audit trigger on a table that is not audited refuses to run
CREATE TABLE stray (id int);
CREATE TRIGGER stray_audit AFTER INSERT ON stray REFERENCING NEW TABLE AS n
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.audit_trigger();
INSERT INTO stray VALUES (1);
DROP TRIGGER stray_audit ON stray;
CREATE TRIGGER stray_audit_row AFTER INSERT ON stray
    FOR EACH ROW EXECUTE FUNCTION trading_guard.audit_trigger();
INSERT INTO stray VALUES (1);
DROP TABLE stray;

-- tampering with the audit triggers and DDL on audited tables is recorded
ALTER TABLE book DISABLE TRIGGER trading_guard_audit_update;
SELECT table_name, triggers_intact FROM trading_guard.audited_tables WHERE table_name = 'book'::regclass;
ALTER TABLE book ENABLE TRIGGER trading_guard_audit_update;
DROP TRIGGER trading_guard_audit_delete ON book;
ALTER TABLE book ADD COLUMN venue text;
CREATE INDEX ON book (qty);
-- enable_audit() repairs the triggers
SELECT trading_guard.enable_audit('book', mask_columns => '{api_secret}');
SELECT table_name, triggers_intact FROM trading_guard.audited_tables WHERE table_name = 'book'::regclass;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER TABLE trading_guard.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
COMMIT;
SELECT operation, table_name, new_row->>'command_tag' AS tag, new_row->>'object_type' AS type,
       new_row->>'object_identity' AS object, new_row->>'audit_triggers_intact' AS intact,
       new_row->>'statement' AS statement
  FROM trading_guard.audit_log
 WHERE operation IN ('DDL', 'AUDIT ENABLE', 'AUDIT CHANGE') AND table_name IN ('book', 'audit_log')
    OR (operation = 'DDL' AND table_name IS NULL AND new_row->>'object_identity' LIKE '% on public.book')
 ORDER BY id;
-- dropping an audited table is recorded and forgets its settings
DROP TABLE book;
SELECT operation, schema_name, table_name, new_row->>'command_tag' AS tag
  FROM trading_guard.audit_log WHERE id = (SELECT max(id) FROM trading_guard.audit_log);
SELECT count(*) FROM trading_guard.audit_config WHERE table_name::text = 'book';

-- privileges: an ordinary role is audited but can neither read nor write
-- the log, nor change what is audited
CREATE ROLE tg_trader;
CREATE ROLE tg_auditor;
-- (grants on the extension's objects need maintenance mode; they are recorded)
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT SELECT ON trading_guard.audit_log TO tg_auditor;
COMMIT;
SELECT operation, schema_name, table_name, new_row->>'command_tag' AS tag,
       new_row->>'object_type' AS type, new_row->>'object_identity' AS object
  FROM trading_guard.audit_log WHERE id = (SELECT max(id) FROM trading_guard.audit_log);
CREATE TABLE ledger (id int PRIMARY KEY, amount numeric);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ledger TO tg_trader;
SELECT trading_guard.enable_audit('ledger');
SET ROLE tg_trader;
INSERT INTO ledger VALUES (1, 100);
UPDATE ledger SET amount = 50;
SELECT count(*) FROM trading_guard.audit_log;
INSERT INTO trading_guard.audit_log (id, event_time, txid, operation, session_user_name, current_user_name)
    VALUES (1, now(), '1', 'INSERT', 'x', 'y');
SELECT trading_guard.enable_audit('ledger', mask_columns => '{amount}');
SELECT trading_guard.disable_audit('ledger');
SELECT trading_guard.purge_audit('1 day');
SELECT trading_guard.audit_record('INSERT', 'ledger', NULL);
SELECT count(*) FROM trading_guard.history('ledger', '{"id": 1}');
RESET ROLE;
-- the auditor reads, and history() works for it
SET ROLE tg_auditor;
SELECT operation, current_user_name, row_key FROM trading_guard.history('ledger', '{"id": 1}');
DELETE FROM trading_guard.audit_log;
RESET ROLE;

-- purge_audit(): the only way out, recorded, only for what is old enough
SELECT trading_guard.purge_audit('-1 day');
SELECT trading_guard.purge_audit(NULL);
SELECT trading_guard.purge_audit('100 years');
SELECT count(*) > 0 AS rows_left FROM trading_guard.audit_log;
-- only sealed rows leave (see sql/seal.sql)
SELECT trading_guard.seal_audit() > 0 AS sealed;
SELECT trading_guard.purge_audit('0') > 0 AS purged;
-- only the purge's own record is left
SELECT operation, table_name, new_row->>'older_than' AS older_than,
       (new_row->>'rows_removed')::int > 0 AS removed
  FROM trading_guard.audit_log ORDER BY id;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT EXECUTE ON FUNCTION trading_guard.purge_audit(interval) TO tg_auditor;
COMMIT;
SET ROLE tg_auditor;
SELECT trading_guard.purge_audit('1 hour');
RESET ROLE;
SELECT operation, current_user_name, (new_row->>'rows_removed')::int > 0 AS removed
  FROM trading_guard.audit_log WHERE operation = 'PURGE' ORDER BY id;

DROP TABLE ledger;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
REVOKE ALL ON FUNCTION trading_guard.purge_audit(interval) FROM tg_auditor;
REVOKE ALL ON trading_guard.audit_log FROM tg_auditor;
COMMIT;
DROP ROLE tg_trader;
DROP ROLE tg_auditor;

-- inheritance children of audited and protected tables are refused (TG064):
-- their rows would appear in the parent without firing its triggers
CREATE TABLE acct (id int PRIMARY KEY, balance numeric);
SELECT trading_guard.enable_audit('acct');
CREATE TABLE acct_child () INHERITS (acct);
CREATE TABLE acct_other (id int PRIMARY KEY, balance numeric);
ALTER TABLE acct_other INHERIT acct;
CREATE TABLE orders_p (symbol text, side text, quantity numeric, price numeric);
SELECT trading_guard.protect_orders('orders_p');
CREATE TABLE orders_child () INHERITS (orders_p);
-- nor can a table that has inheritance children be audited or protected
CREATE TABLE base (symbol text, side text, quantity numeric, price numeric);
CREATE TABLE base_child () INHERITS (base);
SELECT trading_guard.enable_audit('base');
SELECT trading_guard.protect_orders('base');
SELECT count(*) AS guarded FROM trading_guard.audited_tables WHERE table_name = 'base'::regclass;
SELECT count(*) AS guarded FROM trading_guard.protected_tables WHERE table_name = 'base'::regclass;
-- foreign-table partitions of an audited table are refused (TG065)
CREATE FOREIGN DATA WRAPPER tg_dummy_fdw;
CREATE SERVER tg_dummy FOREIGN DATA WRAPPER tg_dummy_fdw;
CREATE TABLE ug_fills (id int, day int) PARTITION BY RANGE (day);
SELECT trading_guard.enable_audit('ug_fills');
CREATE FOREIGN TABLE fills_remote PARTITION OF ug_fills FOR VALUES FROM (1) TO (10) SERVER tg_dummy;
CREATE FOREIGN TABLE fills_remote2 (id int, day int) SERVER tg_dummy;
ALTER TABLE ug_fills ATTACH PARTITION fills_remote2 FOR VALUES FROM (10) TO (20);
CREATE FOREIGN TABLE acct_remote () INHERITS (acct) SERVER tg_dummy;
-- nor can a tree with a foreign partition be audited
CREATE TABLE quotes (id int, day int) PARTITION BY RANGE (day);
ALTER TABLE quotes ATTACH PARTITION fills_remote2 FOR VALUES FROM (1) TO (10);
SELECT trading_guard.enable_audit('quotes');
-- a child made while the event trigger was off (in maintenance mode) shows
-- in triggers_intact
BEGIN;
SET LOCAL trading_guard.maintenance = on;
ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
CREATE TABLE acct_child () INHERITS (acct);
ALTER EVENT TRIGGER trading_guard_audit_ddl ENABLE ALWAYS;
SELECT table_name, triggers_intact FROM trading_guard.audited_tables WHERE table_name = 'acct'::regclass;
ROLLBACK;
SELECT table_name, triggers_intact FROM trading_guard.audited_tables
 WHERE table_name IN ('acct'::regclass, 'ug_fills'::regclass) ORDER BY table_name::text;
DROP TABLE acct, acct_other, orders_p, base, base_child, ug_fills, quotes;
DROP SERVER tg_dummy CASCADE;
DROP FOREIGN DATA WRAPPER tg_dummy_fdw;
