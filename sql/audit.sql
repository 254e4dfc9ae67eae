--
-- Row-level audit: enable_audit(), the C trigger, the log's columns
--
-- Shows the audit rows of this file's tables, oldest first.  Times, ids,
-- transaction ids and the client address vary from run to run and are not
-- shown; what they are is checked once, below.
CREATE FUNCTION audit_rows(tbl text)
RETURNS TABLE (operation text, row_key text, old_row jsonb, new_row jsonb, changed_columns text[])
LANGUAGE sql AS $$
    SELECT operation, row_key, old_row, new_row, changed_columns
      FROM trading_guard.audit_log
     WHERE table_name = tbl AND operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
     ORDER BY id
$$;

CREATE TABLE deals (
    id bigserial PRIMARY KEY,
    symbol text NOT NULL,
    quantity numeric NOT NULL,
    price numeric,
    api_note text,
    internal text
);

-- unknown columns are refused, and so are nulls and non-tables
SELECT trading_guard.enable_audit('deals', exclude_columns => '{nope}');
SELECT trading_guard.enable_audit('deals', mask_columns => '{api_note, nope}');
SELECT trading_guard.enable_audit('deals', exclude_columns => '{internal}', mask_columns => '{internal}');
SELECT trading_guard.enable_audit('deals', mask_columns => '{id}');
SELECT trading_guard.enable_audit('deals', NULL);
SELECT trading_guard.enable_audit(NULL);
CREATE VIEW trades_view AS SELECT * FROM deals;
SELECT trading_guard.enable_audit('trades_view');
SELECT trading_guard.enable_audit('trading_guard.audit_log');
SELECT count(*) FROM trading_guard.audit_log WHERE table_name = 'deals';

SELECT trading_guard.enable_audit('deals', exclude_columns => '{internal}', mask_columns => '{api_note}');
SELECT table_name, excluded, masked, enabled_by = current_user AS by_me, triggers_intact
  FROM trading_guard.audited_tables;
-- four statement-level triggers, ENABLE ALWAYS (they fire on replicas too)
SELECT tgname, tgenabled, tgtype FROM pg_trigger
 WHERE tgrelid = 'deals'::regclass ORDER BY tgname;

INSERT INTO deals (symbol, quantity, price, api_note, internal)
VALUES ('BTCUSDT', 0.5, 65000.01, 'key abc', 'x'),
       ('ETHUSDT', 2, 3500, NULL, 'y');
UPDATE deals SET quantity = quantity * 2 WHERE symbol = 'BTCUSDT';
UPDATE deals SET api_note = 'key def' WHERE symbol = 'ETHUSDT';
-- only an excluded column changes: recorded, with no changed columns
UPDATE deals SET internal = 'z' WHERE symbol = 'ETHUSDT';
DELETE FROM deals WHERE symbol = 'ETHUSDT';
-- a statement that changes no row records nothing
UPDATE deals SET price = 1 WHERE false;
SELECT * FROM audit_rows('deals');

-- the common columns: who, from where, when, in which transaction
BEGIN;
SET LOCAL application_name = 'bot-7';
SET LOCAL trading_guard.actor = 'alice@desk';
INSERT INTO deals (symbol, quantity) VALUES ('SOLUSDT', 1);
SELECT operation, table_oid = 'deals'::regclass AS oid_ok, schema_name, table_name,
       session_user_name = session_user AS session_ok,
       current_user_name = current_user AS current_ok,
       client_addr IS NOT DISTINCT FROM inet_client_addr() AS addr_ok,
       application_name, actor,
       txid = pg_current_xact_id() AS same_xact,
       event_time BETWEEN transaction_timestamp() AND clock_timestamp() AS time_ok
  FROM trading_guard.audit_log WHERE id = (SELECT max(id) FROM trading_guard.audit_log);
COMMIT;
-- actor unset: NULL
INSERT INTO deals (symbol, quantity) VALUES ('XRPUSDT', 1);
SELECT actor, application_name FROM trading_guard.audit_log
 WHERE id = (SELECT max(id) FROM trading_guard.audit_log);
SET trading_guard.actor = 'bob';
UPDATE deals SET price = 2 WHERE symbol = 'XRPUSDT';
SELECT actor FROM trading_guard.audit_log WHERE id = (SELECT max(id) FROM trading_guard.audit_log);
RESET trading_guard.actor;

-- updates that change nothing: recorded by default, skipped when off
UPDATE deals SET price = price WHERE symbol = 'XRPUSDT';
SET trading_guard.audit_unchanged_updates = off;
UPDATE deals SET price = price WHERE symbol = 'XRPUSDT';
UPDATE deals SET price = 3 WHERE symbol IN ('XRPUSDT', 'SOLUSDT');
RESET trading_guard.audit_unchanged_updates;
SELECT operation, row_key, changed_columns FROM audit_rows('deals') WHERE operation = 'UPDATE';

-- enabling twice updates the settings (and is recorded as a change)
SELECT trading_guard.enable_audit('deals', mask_columns => '{api_note, internal}');
SELECT table_name, excluded, masked FROM trading_guard.audited_tables;
UPDATE deals SET internal = 'w' WHERE symbol = 'SOLUSDT';
SELECT new_row, changed_columns FROM trading_guard.audit_log
 WHERE id = (SELECT max(id) FROM trading_guard.audit_log);

-- TRUNCATE is one row
TRUNCATE deals;
SELECT operation, row_key, old_row, new_row FROM audit_rows('deals') WHERE operation = 'TRUNCATE';

-- a multi-row statement, and INSERT ... ON CONFLICT (an insert and an update)
INSERT INTO deals (id, symbol, quantity) SELECT g, 'BTCUSDT', g FROM generate_series(101, 103) g;
INSERT INTO deals (id, symbol, quantity) VALUES (103, 'BTCUSDT', 30), (104, 'BTCUSDT', 40)
    ON CONFLICT (id) DO UPDATE SET quantity = excluded.quantity;
SELECT operation, row_key, changed_columns FROM audit_rows('deals')
 WHERE row_key LIKE '{"id": 10_}' ORDER BY row_key, operation;

-- history() of one row, oldest first
UPDATE deals SET quantity = 31 WHERE id = 103;
SELECT operation, old_row->>'quantity' AS old_q, new_row->>'quantity' AS new_q
  FROM trading_guard.history('deals', '{"id": 103}');
-- a key that changes: both keys find the update
UPDATE deals SET id = 130 WHERE id = 103;
SELECT operation, row_key, old_key FROM trading_guard.history('deals', '{"id": 103}');
SELECT operation, row_key, old_key FROM trading_guard.history('deals', '{"id": 130}');
SELECT count(*) FROM trading_guard.history('deals', '{"id": 999}');
-- the same key written differently is the same key
SELECT count(*) FROM trading_guard.history('deals', '{ "id" :130 }');

-- identifiers are quoted everywhere
CREATE SCHEMA "odd schema";
CREATE TABLE "odd schema"."x; DROP TABLE deals" ("a b" int PRIMARY KEY, "Sécret ""q""" text);
SELECT trading_guard.enable_audit('"odd schema"."x; DROP TABLE deals"', mask_columns => '{"Sécret \"q\""}');
SELECT trading_guard.enable_audit('"odd schema"."x; DROP TABLE deals"', mask_columns => ARRAY['Sécret "q"']);
INSERT INTO "odd schema"."x; DROP TABLE deals" VALUES (1, 'hidden');
SELECT schema_name, table_name, row_key, new_row FROM trading_guard.audit_log
 WHERE table_name = 'x; DROP TABLE deals' AND operation = 'INSERT';
SELECT operation, new_row FROM trading_guard.history('"odd schema"."x; DROP TABLE deals"', '{"a b": 1}');
SELECT to_regclass('deals') IS NOT NULL AS trades_still_there;

-- disable_audit(): recorded, triggers gone, the log stays
SELECT trading_guard.disable_audit('"odd schema"."x; DROP TABLE deals"');
SELECT trading_guard.disable_audit('"odd schema"."x; DROP TABLE deals"');
INSERT INTO "odd schema"."x; DROP TABLE deals" VALUES (2, 'not audited');
SELECT operation, row_key FROM trading_guard.audit_log
 WHERE table_name = 'x; DROP TABLE deals' ORDER BY id;
SELECT count(*) FROM pg_trigger WHERE tgrelid = '"odd schema"."x; DROP TABLE deals"'::regclass;
SELECT table_name FROM trading_guard.audited_tables;

-- the non-row events carry their settings
SELECT operation, new_row FROM trading_guard.audit_log
 WHERE table_name IN ('deals', 'x; DROP TABLE deals') AND operation LIKE 'AUDIT%' ORDER BY id;
