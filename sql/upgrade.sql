--
-- Upgrades: install the oldest version, walk every upgrade script, and
-- end with the same objects as a fresh install of the newest version
--
\set regress_db :DBNAME
-- both databases get, from their template, a function that sums up the
-- extension's objects and their columns as two checksums
CREATE DATABASE tg_template;
\c tg_template
CREATE FUNCTION ext_objects(OUT objects bigint, OUT names text, OUT columns text)
LANGUAGE sql AS $$
SELECT count(*),
       md5(string_agg(pg_describe_object(classid, objid, 0), ',' ORDER BY 1)),
       (SELECT md5(string_agg(attname || ':' || format_type(atttypid, atttypmod), ','
                              ORDER BY attrelid::regclass::text, attnum))
          FROM pg_attribute
         WHERE attrelid IN (SELECT objid FROM pg_depend
                             WHERE classid = 'pg_class'::regclass AND deptype = 'e'
                               AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'trading_guard'))
           AND attnum > 0 AND NOT attisdropped)
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'trading_guard')
$$;
\c :regress_db
CREATE DATABASE tg_upgrade TEMPLATE tg_template;
CREATE DATABASE tg_fresh TEMPLATE tg_template;
\c tg_upgrade
CREATE EXTENSION trading_guard VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'trading_guard';
-- data from 1.0 survives the upgrade
INSERT INTO trading_guard.symbols (symbol, base_asset, quote_asset)
VALUES ('BTCUSDT', 'BTC', 'USDT');
SELECT target, path
  FROM pg_extension_update_paths('trading_guard')
 WHERE source = '1.0' AND path IS NOT NULL ORDER BY target;
-- audit rows written before sealing existed (1.4) are sealed after the
-- upgrade, with the ones written after it
ALTER EXTENSION trading_guard UPDATE TO '1.4';
CREATE TABLE t (id int PRIMARY KEY);
SELECT trading_guard.enable_audit('t');
INSERT INTO t VALUES (1);
ALTER EXTENSION trading_guard UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'trading_guard';
SELECT symbol, status FROM trading_guard.symbols;
-- the upgraded extension audits
INSERT INTO t VALUES (2);
SELECT operation, row_key FROM trading_guard.audit_log WHERE table_name = 't' ORDER BY id;
SELECT trading_guard.seal_audit() AS sealed;
SELECT ok, rows_checked, batches_checked, unsealed_rows FROM trading_guard.verify_audit();
-- the upgraded extension reads what the connection guard recorded: this
-- session came in over the Unix socket
SELECT decision, reason, client_addr, ssl_version, rule
  FROM trading_guard.connection_events WHERE pid = pg_backend_pid();

-- the same objects, with the same columns, as a fresh install
SELECT * FROM ext_objects();
\c tg_fresh
CREATE EXTENSION trading_guard;
SELECT extversion FROM pg_extension WHERE extname = 'trading_guard';
SELECT * FROM ext_objects();
\c :regress_db
DROP DATABASE tg_upgrade;
DROP DATABASE tg_fresh;
DROP DATABASE tg_template;
