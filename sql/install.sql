--
-- Installing the extension: objects, defaults, privileges
--
CREATE EXTENSION trading_guard;

-- the temp instance preloads the library (test/regress.conf)
SELECT trading_guard.preloaded();

-- everything lives in schema trading_guard
SELECT e.extname, n.nspname, e.extrelocatable, e.extversion
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'trading_guard';

SELECT pg_describe_object(classid, objid, 0) AS object
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'trading_guard')
   AND deptype = 'e'
 ORDER BY 1;

-- GUCs and their defaults (test/regress.conf sets seal_interval)
SELECT name, boot_val AS default, context, vartype
  FROM pg_settings WHERE name LIKE 'trading_guard.%' ORDER BY name;

-- the prefix is reserved: a typo is an error, not a silent placeholder
SET trading_guard.max_quantiy = '5';

-- validation functions: not STRICT, immutable, parallel safe
SELECT proname, proisstrict, provolatile, proparallel
  FROM pg_proc
 WHERE pronamespace = 'trading_guard'::regnamespace
   AND proname LIKE 'is_valid_%'
 ORDER BY proname;

-- the registry is kept by pg_dump
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'trading_guard';

-- privileges: the registry is readable by all, the stats only by monitors
SELECT has_table_privilege('public', 'trading_guard.symbols', 'SELECT') AS symbols_select,
       has_table_privilege('public', 'trading_guard.symbols', 'INSERT') AS symbols_insert,
       has_function_privilege('public', 'trading_guard.reset_validation_stats()', 'EXECUTE') AS reset_stats,
       has_table_privilege('pg_read_all_stats', 'trading_guard.validation_stats', 'SELECT') AS stats_monitor;

-- the stats view works when preloaded and starts with every rule
SELECT filter, sqlstate FROM trading_guard.validation_stats ORDER BY sqlstate;

-- every function and view has a comment (\df+ and \dv+ say what it is for),
-- but the internal ones: trigger and event-trigger functions, the audit's
-- helpers called by enable_audit/disable_audit and the event triggers, and
-- load_exchange_info's exchange_info_decimal
SELECT pg_describe_object(d.classid, d.objid, 0) AS without_comment
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'trading_guard')
   AND d.deptype = 'e'
   AND d.classid IN ('pg_proc'::regclass, 'pg_class'::regclass)
   AND (d.classid <> 'pg_class'::regclass
        OR (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'v')
   AND obj_description(d.objid, d.classid::regclass::name) IS NULL
 ORDER BY 1;
