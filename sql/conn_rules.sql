--
-- trading_guard.rules: what the parser accepts and how it refuses the rest.
-- ALTER SYSTEM runs the setting's check hook, exactly as a reload of
-- postgresql.conf does, so every malformed value below is one that a reload
-- would refuse (keeping the previous rules); TAP test 004 checks the reload
-- itself and what the rules let in.
--
\set VERBOSITY default

-- accepted: roles, +groups, *, quoted names, IPv4 and IPv6 networks, bare
-- addresses, "all", the cert option, spaces around commas, empty rules
ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.0/8';
ALTER SYSTEM SET trading_guard.rules = 'alice, bob 10.1.0.0/16, 192.168.0.1; +traders ::1, 2001:db8::/32 cert; * all';
ALTER SYSTEM SET trading_guard.rules = '"Trading Bot" 127.0.0.1 CERT; +"Risk ""Desk""" 0.0.0.0/0;;';
ALTER SYSTEM SET trading_guard.rules = '  bot   10.0.0.0/8 ,  10.2.0.0/16  ;  ';
ALTER SYSTEM SET trading_guard.rules = '* ::/0';
ALTER SYSTEM SET trading_guard.rules = '';

-- refused, each with a detail naming the rule and what is wrong
ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.0/33';
ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.1/8';
ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.0/8; bob 300.1.2.3';
ALTER SYSTEM SET trading_guard.rules = 'alice 2001:db8::/129';
ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.0/';
ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.0/-1';
ALTER SYSTEM SET trading_guard.rules = 'alice';
ALTER SYSTEM SET trading_guard.rules = 'alice;';
ALTER SYSTEM SET trading_guard.rules = '10.0.0.0/8';
ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.0/8 10.1.0.0/16';
ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.0/8 cert cert2';
ALTER SYSTEM SET trading_guard.rules = 'alice, 10.0.0.0/8';
ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.0/8,';
ALTER SYSTEM SET trading_guard.rules = '"alice 10.0.0.0/8';
ALTER SYSTEM SET trading_guard.rules = '+ 10.0.0.0/8';
ALTER SYSTEM SET trading_guard.rules = 'a234567890123456789012345678901234567890123456789012345678901234 10.0.0.0/8';
ALTER SYSTEM SET trading_guard.rules = 'alice "10.0.0.0/8"';

-- nothing of the refused values reached postgresql.auto.conf
SELECT name, setting FROM pg_file_settings WHERE name = 'trading_guard.rules';
ALTER SYSTEM RESET trading_guard.rules;
SELECT count(*) FROM pg_file_settings WHERE name = 'trading_guard.rules';

-- the other settings' values are checked too
ALTER SYSTEM SET trading_guard.connection_policy = 'audit';
ALTER SYSTEM SET trading_guard.ssl_min_protocol = 'SSLv3';
ALTER SYSTEM SET trading_guard.max_auth_failures = -1;
ALTER SYSTEM SET trading_guard.ban_time = '0';
ALTER SYSTEM SET trading_guard.failure_window = '2h';
ALTER SYSTEM RESET trading_guard.failure_window;

-- the allowlist is for superusers' eyes only
CREATE ROLE tg_rules_reader;
SET ROLE tg_rules_reader;
SHOW trading_guard.rules;
SELECT count(*) FROM pg_settings WHERE name = 'trading_guard.rules';
RESET ROLE;
DROP ROLE tg_rules_reader;

-- the connection views are not for PUBLIC, but for pg_read_all_stats
CREATE ROLE tg_conn_nobody;
CREATE ROLE tg_conn_monitor IN ROLE pg_read_all_stats;
SET ROLE tg_conn_nobody;
SELECT count(*) FROM trading_guard.connection_events;
SELECT count(*) FROM trading_guard.connection_stats;
SELECT count(*) FROM trading_guard.banned_addresses;
SELECT trading_guard.reset_connection_stats();
SELECT trading_guard.unban('127.0.0.1');
SET ROLE tg_conn_monitor;
-- this session is in the ring: Unix socket, allowed
SELECT decision, reason, client_addr IS NULL AS local, role_name = session_user AS same_role
  FROM trading_guard.connection_events WHERE pid = pg_backend_pid();
SELECT count(*) >= 1 AS counted FROM trading_guard.connection_stats
 WHERE decision = 'allowed' AND reason = 'local';
SELECT count(*) FROM trading_guard.banned_addresses;
SELECT trading_guard.reset_connection_stats();
RESET ROLE;
DROP ROLE tg_conn_nobody;
DROP ROLE tg_conn_monitor;

-- reset zeroes the counters; unban takes one address, and says whether it
-- was banned
SELECT trading_guard.reset_connection_stats();
SELECT count(*) FROM trading_guard.connection_stats;
SELECT trading_guard.unban('127.0.0.1');
SELECT trading_guard.unban('::1');
SELECT trading_guard.unban('10.0.0.0/8');
SELECT trading_guard.unban(NULL);
