/* trading_guard--1.7--1.8.sql — 1.8: security_checklist() */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.8'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- When each master key version was first loaded: the events worker records
-- every key id it sees in a key_ring event (src/events.c), so that "rotate
-- the master key every 90 days" can be checked.  Kept by pg_dump.
-- ---------------------------------------------------------------------------
CREATE TABLE trading_guard.key_version_history (
    key_id        text PRIMARY KEY,
    version       integer NOT NULL,
    first_loaded  timestamptz NOT NULL
);
COMMENT ON TABLE trading_guard.key_version_history IS
'each master key version (by key id) and when the server first loaded it; written by the events worker';
REVOKE ALL ON trading_guard.key_version_history FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.key_version_history', '');

-- verify_audit() and verify_security_events() runs are security events
ALTER TABLE trading_guard.security_events DROP CONSTRAINT security_events_type_check;
ALTER TABLE trading_guard.security_events ADD CONSTRAINT security_events_type_check
    CHECK (event_type OPERATOR(pg_catalog.=) ANY
        ('{login,ban,unban,ban_expired,vault_refused,vault_reveal,vault_sign,key_ring,config,purge,halt,rate_limit,revoke_all,verify}'::pg_catalog.text[]));

-- What SQL cannot see (src/checklist.c)
CREATE FUNCTION trading_guard.checklist_openssl()
RETURNS text
AS 'MODULE_PATHNAME', 'tg_checklist_openssl'
LANGUAGE C STABLE;
COMMENT ON FUNCTION trading_guard.checklist_openssl() IS
'the OpenSSL version the server runs with';

CREATE FUNCTION trading_guard.checklist_key_file(
    OUT path text, OUT present boolean, OUT mode text, OUT owned_by_server boolean,
    OUT group_or_world_access boolean, OUT in_data_directory boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'tg_checklist_key_file'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION trading_guard.checklist_key_file() FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.checklist_key_file() IS
'the key file (trading_guard.key_file) as the server sees it now: mode, owner, place';

-- A setting's value as the caller may see it (NULL when it may not)
CREATE FUNCTION trading_guard.checklist_setting(name text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT s.setting FROM pg_catalog.pg_settings s WHERE s.name OPERATOR(pg_catalog.=) $1 $$;
COMMENT ON FUNCTION trading_guard.checklist_setting(text) IS
'a setting as the caller may see it; NULL for a superuser-only one the caller may not read';


-- A pg_hba line's address as a network (NULL for all, samehost, samenet,
-- host names, and local lines)
CREATE FUNCTION trading_guard.checklist_hba_net(address text, netmask text)
RETURNS cidr
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a inet;
BEGIN
    IF address IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        a := address::inet;
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
    IF netmask IS NOT NULL THEN
        FOR bits IN 0 .. CASE WHEN family(a) OPERATOR(pg_catalog.=) 4 THEN 32 ELSE 128 END LOOP
            IF pg_catalog.netmask(set_masklen(a, bits)) OPERATOR(pg_catalog.=) netmask::inet THEN
                RETURN network(set_masklen(a, bits))::cidr;
            END IF;
        END LOOP;
    END IF;
    RETURN network(a)::cidr;
END
$$;
COMMENT ON FUNCTION trading_guard.checklist_hba_net(text, text) IS
'a pg_hba_file_rules address and netmask as a network; NULL for keywords and host names';

-- Is a pg_hba line's address the loopback interface only? (local lines:
-- yes; all, samehost, samenet, host names: no)
CREATE FUNCTION trading_guard.checklist_hba_loopback(address text, netmask text)
RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT address IS NULL
        OR coalesce(n OPERATOR(pg_catalog.<<=) '127.0.0.0/8'::cidr OR n OPERATOR(pg_catalog.=) '::1/128'::cidr, false)
      FROM (SELECT trading_guard.checklist_hba_net(address, netmask) AS n) x
$$;
COMMENT ON FUNCTION trading_guard.checklist_hba_loopback(text, text) IS
'true when a pg_hba_file_rules address and netmask cover the loopback interface only';

-- Does a pg_hba line's user list (all, names, +groups) take in this role?
-- Group membership as pg_hba.conf counts it (no superuser shortcut).
CREATE FUNCTION trading_guard.checklist_hba_user(role oid, user_name text[])
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'all' OPERATOR(pg_catalog.=) ANY (user_name)
        OR (SELECT r.rolname::text FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) role)
           OPERATOR(pg_catalog.=) ANY (user_name)
        OR EXISTS (WITH RECURSIVE groups(g) AS (
                       SELECT m.roleid FROM pg_catalog.pg_auth_members m WHERE m.member OPERATOR(pg_catalog.=) role
                       UNION
                       SELECT m.roleid FROM pg_catalog.pg_auth_members m, groups WHERE m.member OPERATOR(pg_catalog.=) groups.g)
                   SELECT 1 FROM groups JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) groups.g
                    WHERE ('+' OPERATOR(pg_catalog.||) r.rolname) OPERATOR(pg_catalog.=) ANY (user_name))
$$;
COMMENT ON FUNCTION trading_guard.checklist_hba_user(oid, text[]) IS
'true when a pg_hba_file_rules user list (all, names, +groups) takes in the role';

-- Does pg_hba line a take every connection line b would take? (its type
-- takes b's; its databases, users and address cover b's)
CREATE FUNCTION trading_guard.checklist_hba_covers(a pg_catalog.pg_hba_file_rules, b pg_catalog.pg_hba_file_rules)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.error IS NULL AND a.type OPERATOR(pg_catalog.<>) 'local'
       AND (a.type OPERATOR(pg_catalog.=) 'host' OR a.type OPERATOR(pg_catalog.=) b.type)
       AND ('all' OPERATOR(pg_catalog.=) ANY (a.database) OR a.database OPERATOR(pg_catalog.@>) b.database)
       AND ('all' OPERATOR(pg_catalog.=) ANY (a.user_name) OR a.user_name OPERATOR(pg_catalog.@>) b.user_name)
       AND coalesce(a.address OPERATOR(pg_catalog.=) 'all'
                    OR trading_guard.checklist_hba_net(a.address, a.netmask)
                       OPERATOR(pg_catalog.>>=) trading_guard.checklist_hba_net(b.address, b.netmask), false)
$$;
COMMENT ON FUNCTION trading_guard.checklist_hba_covers(pg_catalog.pg_hba_file_rules, pg_catalog.pg_hba_file_rules) IS
'true when the first pg_hba line takes every connection the second would';

-- The allowlist as the connection guard parses it (src/checklist.c)
CREATE FUNCTION trading_guard.checklist_rules(
    OUT rule integer, OUT roles text[], OUT networks text[], OUT cert boolean,
    OUT any_role boolean, OUT any_network boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'tg_checklist_rules'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION trading_guard.checklist_rules() FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.checklist_rules() IS
'trading_guard.rules as the connection guard reads it, one row per rule';

-- ---------------------------------------------------------------------------
-- security_checklist(): one row per check, each made by checklist_check().
-- SECURITY INVOKER: it sees what the caller may see, and says "skip" (and
-- why) for the rest.
-- ---------------------------------------------------------------------------
-- One check of security_checklist(), by id: its area, status, detail and
-- remedy.  A privilege the caller lacks (a superuser-only setting, a
-- catalog, a function not granted) makes it a skip that names what is
-- missing: each check is one call, so one check's skip cannot stop others.
CREATE FUNCTION trading_guard.checklist_check(id text, OUT area text, OUT status text,
                                              OUT detail text, OUT remedy text)
RETURNS record
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v text;
    v2 text;
    n bigint;
    names text;
    ok boolean;
    can_hba boolean := has_function_privilege('pg_catalog.pg_hba_file_rules()', 'EXECUTE');
    can_authid boolean := has_table_privilege('pg_catalog.pg_authid', 'SELECT');
    preloaded boolean := trading_guard.preloaded();
    events_here boolean;
    kf record;
    ks record;
BEGIN
    -- the pg_hba.conf checks read pg_hba_file_rules (superuser-only)
    IF id OPERATOR(pg_catalog.~~) 'tls.hba\_%' AND NOT can_hba THEN
        area := 'tls'; status := 'skip'; detail := 'pg_hba.conf cannot be read by this role';
        remedy := 'Run security_checklist() as a superuser (pg_hba_file_rules is superuser-only).';
        RETURN;
    END IF;

    IF id OPERATOR(pg_catalog.=) 'tls.ssl' THEN
        area := 'tls';
        IF current_setting('ssl') OPERATOR(pg_catalog.=) 'on' THEN
            status := 'pass'; detail := 'ssl = on'; remedy := NULL;
        ELSE
            status := 'fail'; detail := 'ssl = off: every TCP connection is plaintext';
            remedy := 'Set ssl_cert_file and ssl_key_file, then ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'tls.guard_preloaded' THEN
        area := 'tls';
        IF preloaded THEN
            status := 'pass'; detail := 'trading_guard is in shared_preload_libraries: the connection guard, bans and security events run'; remedy := NULL;
        ELSE
            status := 'fail'; detail := 'trading_guard is not preloaded: no connection guard, no limits, no security events';
            remedy := 'ALTER SYSTEM SET shared_preload_libraries = ''trading_guard''; (keep the libraries already listed) and restart';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'tls.guard_enforce' THEN
        area := 'tls';
        v := trading_guard.checklist_setting('trading_guard.connection_policy');
        IF NOT preloaded THEN
            status := 'fail'; detail := 'the connection guard is not running (not preloaded)';
            remedy := 'Preload trading_guard (tls.guard_preloaded), then ALTER SYSTEM SET trading_guard.connection_policy = ''enforce''; SELECT pg_reload_conf();';
        ELSIF v OPERATOR(pg_catalog.=) 'enforce' THEN
            status := 'pass'; detail := 'trading_guard.connection_policy = enforce'; remedy := NULL;
        ELSE
            status := CASE WHEN v OPERATOR(pg_catalog.=) 'log' THEN 'warn' ELSE 'fail' END;
            detail := format('trading_guard.connection_policy = %s: refusals are %s', v,
                             CASE WHEN v OPERATOR(pg_catalog.=) 'log' THEN 'only logged' ELSE 'not made' END);
            remedy := 'ALTER SYSTEM SET trading_guard.connection_policy = ''enforce''; SELECT pg_reload_conf();';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'tls.min_protocol' THEN
        area := 'tls';
        v := current_setting('ssl_min_protocol_version');
        v2 := trading_guard.checklist_setting('trading_guard.ssl_min_protocol');
        IF v OPERATOR(pg_catalog.=) ANY ('{TLSv1.2,TLSv1.3}'::text[])
           AND (v2 IS NULL OR v2 OPERATOR(pg_catalog.=) ANY ('{TLSv1.2,TLSv1.3}'::text[])) THEN
            status := 'pass'; remedy := NULL;
            detail := format('ssl_min_protocol_version = %s, trading_guard.ssl_min_protocol = %s', v, coalesce(v2, '(not visible)'));
        ELSE
            status := 'fail';
            detail := format('ssl_min_protocol_version = %s, trading_guard.ssl_min_protocol = %s: TLS older than 1.2 is accepted', v, coalesce(v2, '(not visible)'));
            remedy := 'ALTER SYSTEM SET ssl_min_protocol_version = ''TLSv1.2''; ALTER SYSTEM SET trading_guard.ssl_min_protocol = ''TLSv1.2''; SELECT pg_reload_conf();';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'tls.hba_plaintext' THEN
        area := 'tls';
        SELECT count(*), string_agg(format('line %s (%s %s %s %s)', r.line_number, r.type,
                                           array_to_string(r.database, ','), array_to_string(r.user_name, ','),
                                           coalesce(r.address, '')), '; ' ORDER BY r.line_number)
          INTO n, names
          FROM pg_catalog.pg_hba_file_rules r
         WHERE r.error IS NULL AND r.type OPERATOR(pg_catalog.=) ANY ('{host,hostnossl}'::text[])
           AND r.auth_method OPERATOR(pg_catalog.<>) 'reject'
           AND NOT trading_guard.checklist_hba_loopback(r.address, r.netmask);
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'pass'; detail := 'no pg_hba.conf line lets a non-local connection in without TLS'; remedy := NULL;
        ELSE
            status := CASE WHEN preloaded AND trading_guard.checklist_setting('trading_guard.connection_policy') OPERATOR(pg_catalog.=) 'enforce'
                           THEN 'warn' ELSE 'fail' END;
            detail := format('%s line(s) accept non-local connections without requiring TLS: %s%s', n, names,
                             CASE WHEN status OPERATOR(pg_catalog.=) 'warn' THEN ' (the connection guard refuses them, but pg_hba.conf should too)' ELSE '' END);
            remedy := 'Change those lines to hostssl (and add "host all all 0.0.0.0/0 reject" after them) in pg_hba.conf; SELECT pg_reload_conf();';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'tls.hba_trust_password' THEN
        area := 'tls';
        SELECT count(*), string_agg(format('line %s (%s %s)', r.line_number, r.type, r.auth_method), '; ' ORDER BY r.line_number)
          INTO n, names
          FROM pg_catalog.pg_hba_file_rules r
         WHERE r.error IS NULL AND r.type OPERATOR(pg_catalog.<>) 'local'
           AND r.auth_method OPERATOR(pg_catalog.=) ANY ('{trust,password}'::text[]);
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'pass'; detail := 'no TCP line uses trust or password'; remedy := NULL;
        ELSE
            status := 'fail';
            detail := format('%s TCP line(s) authenticate with trust (no password at all) or password (sent in clear): %s', n, names);
            remedy := 'Use scram-sha-256 (or cert) on those lines of pg_hba.conf; SELECT pg_reload_conf();';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'tls.hba_shadowed_hostssl' THEN
        area := 'tls';
        SELECT count(*), string_agg(format('line %s shadows hostssl line %s', h.line_number, s.line_number), '; ' ORDER BY s.line_number)
          INTO n, names
          FROM pg_catalog.pg_hba_file_rules s
          JOIN pg_catalog.pg_hba_file_rules h
            ON h.line_number OPERATOR(pg_catalog.<) s.line_number AND h.type OPERATOR(pg_catalog.=) 'host'
           AND trading_guard.checklist_hba_covers(h, s)
         WHERE s.error IS NULL AND s.type OPERATOR(pg_catalog.=) 'hostssl';
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'pass'; detail := 'no host line comes before a hostssl line it covers'; remedy := NULL;
        ELSE
            status := 'fail';
            detail := format('%s hostssl line(s) never match: an earlier host line takes their connections, TLS or not: %s', n, names);
            remedy := 'Move the hostssl lines above the host lines that cover them (or make those lines hostssl) in pg_hba.conf; SELECT pg_reload_conf();';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'tls.hba_errors' THEN
        area := 'tls';
        SELECT count(*), string_agg(format('line %s: %s', r.line_number, r.error), '; ' ORDER BY r.line_number)
          INTO n, names
          FROM pg_catalog.pg_hba_file_rules r WHERE r.error IS NOT NULL;
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'pass'; detail := 'pg_hba.conf has no line with an error'; remedy := NULL;
        ELSE
            status := 'fail';
            detail := format('%s line(s) of pg_hba.conf have errors (a reload keeps the old file in force): %s', n, names);
            remedy := 'Fix those lines of pg_hba.conf, check SELECT * FROM pg_hba_file_rules WHERE error IS NOT NULL; is empty, then SELECT pg_reload_conf();';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'auth.password_encryption' THEN
        area := 'authentication';
        v := current_setting('password_encryption');
        IF v OPERATOR(pg_catalog.=) 'scram-sha-256' THEN
            status := 'pass'; detail := 'password_encryption = scram-sha-256'; remedy := NULL;
        ELSE
            status := 'fail'; detail := format('password_encryption = %s: new passwords are stored as MD5 hashes', v);
            remedy := 'ALTER SYSTEM SET password_encryption = ''scram-sha-256''; SELECT pg_reload_conf(); then set every password again (ALTER ROLE ... PASSWORD)';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'auth.md5_passwords' THEN
        area := 'authentication';
        IF NOT can_authid THEN
            status := 'skip'; detail := 'pg_authid cannot be read by this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSE
            -- an MD5 hash; or no password at all while a TCP line lets the
            -- role in from the network without one (trust)
            SELECT count(*), string_agg(format('%s (%s)', a.rolname,
                       CASE WHEN a.rolpassword IS NULL THEN 'no password, admitted by trust' ELSE 'MD5' END), ', ' ORDER BY a.rolname)
              INTO n, names
              FROM pg_catalog.pg_authid a
             WHERE a.rolcanlogin
               AND (a.rolpassword LIKE 'md5%'
                    OR (a.rolpassword IS NULL AND can_hba
                        AND EXISTS (SELECT 1 FROM pg_catalog.pg_hba_file_rules r
                                     WHERE r.error IS NULL AND r.type OPERATOR(pg_catalog.<>) 'local'
                                       AND r.auth_method OPERATOR(pg_catalog.=) 'trust'
                                       AND NOT trading_guard.checklist_hba_loopback(r.address, r.netmask)
                                       AND ('all' OPERATOR(pg_catalog.=) ANY (r.user_name)
                                            OR a.rolname::text OPERATOR(pg_catalog.=) ANY (r.user_name)))));
            IF n OPERATOR(pg_catalog.=) 0 THEN
                status := 'pass'; detail := 'no login role has an MD5 password, or no password and a trust line over TCP'; remedy := NULL;
            ELSE
                status := 'fail'; detail := format('%s login role(s) with a weak or no password that TCP lets in: %s', n, names);
                remedy := 'With password_encryption = scram-sha-256, set their passwords again: \password ROLE in psql (never as a literal in SQL text); no trust lines over TCP.';
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'auth.superuser_network' THEN
        area := 'authentication';
        IF NOT (can_hba AND can_authid) THEN
            status := 'skip'; detail := 'pg_hba.conf or pg_authid cannot be read by this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSE
            -- a line that lets a superuser in from the network, unless an
            -- earlier line takes all its connections (PostgreSQL uses the first
            -- line that matches)
            SELECT count(DISTINCT a.rolname), string_agg(DISTINCT format('%s (line %s)', a.rolname, r.line_number), ', ')
              INTO n, names
              FROM pg_catalog.pg_authid a
              JOIN pg_catalog.pg_hba_file_rules r
                ON r.error IS NULL AND r.type OPERATOR(pg_catalog.<>) 'local'
               AND r.auth_method OPERATOR(pg_catalog.<>) 'reject'
               AND NOT trading_guard.checklist_hba_loopback(r.address, r.netmask)
               AND trading_guard.checklist_hba_user(a.oid, r.user_name)
             WHERE a.rolsuper AND a.rolcanlogin
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_hba_file_rules e
                                WHERE e.line_number OPERATOR(pg_catalog.<) r.line_number
                                  AND e.error IS NULL AND e.type OPERATOR(pg_catalog.<>) 'local'
                                  AND (e.type OPERATOR(pg_catalog.=) 'host' OR e.type OPERATOR(pg_catalog.=) r.type)
                                  AND ('all' OPERATOR(pg_catalog.=) ANY (e.database) OR e.database OPERATOR(pg_catalog.@>) r.database)
                                  AND trading_guard.checklist_hba_user(a.oid, e.user_name)
                                  AND coalesce(e.address OPERATOR(pg_catalog.=) 'all'
                                               OR trading_guard.checklist_hba_net(e.address, e.netmask)
                                                  OPERATOR(pg_catalog.>>=) trading_guard.checklist_hba_net(r.address, r.netmask), false));
            IF n OPERATOR(pg_catalog.=) 0 THEN
                status := 'pass'; detail := 'no superuser can log in from the network'; remedy := NULL;
            ELSE
                status := 'fail'; detail := format('superuser(s) %s can log in from non-local addresses', names);
                remedy := 'In pg_hba.conf, reject those roles on host/hostssl lines (or limit them to 127.0.0.1/32); administer over the Unix socket.';
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'auth.application_roles' THEN
        area := 'authentication';
        -- roles granted INSERT or UPDATE on a protected order table, or EXECUTE on sign_request
        SELECT count(*), string_agg(format('%s (%s)', x.rolname,
                   concat_ws(', ', CASE WHEN x.rolsuper THEN 'superuser' END,
                                   CASE WHEN x.rolbypassrls THEN 'BYPASSRLS' END,
                                   CASE WHEN x.rolcreaterole THEN 'CREATEROLE' END)), '; ' ORDER BY x.rolname)
          INTO n, names
          FROM (SELECT DISTINCT r.rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole
                  FROM pg_catalog.pg_roles r
                 WHERE (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole)
                   AND r.oid OPERATOR(pg_catalog.<>) 10
                   AND (EXISTS (SELECT 1 FROM trading_guard.protected_tables p, pg_catalog.pg_class c,
                                       LATERAL pg_catalog.aclexplode(c.relacl) acl
                                 WHERE c.oid OPERATOR(pg_catalog.=) p.table_name::oid
                                   AND acl.grantee OPERATOR(pg_catalog.=) r.oid
                                   AND acl.privilege_type OPERATOR(pg_catalog.=) ANY ('{INSERT,UPDATE}'::text[]))
                        OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc f, LATERAL pg_catalog.aclexplode(f.proacl) acl
                                    WHERE f.pronamespace OPERATOR(pg_catalog.=) 'trading_guard'::regnamespace
                                      AND f.proname OPERATOR(pg_catalog.=) 'sign_request'
                                      AND acl.grantee OPERATOR(pg_catalog.=) r.oid
                                      AND acl.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'))) x;
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'pass'; detail := 'no role that writes orders or signs is a superuser or has BYPASSRLS or CREATEROLE'; remedy := NULL;
        ELSE
            status := 'fail'; detail := format('application roles with too much power: %s', names);
            remedy := 'ALTER ROLE ... NOSUPERUSER NOBYPASSRLS NOCREATEROLE; for each (a bot needs INSERT on its order table and EXECUTE on sign_request, nothing more).';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'network.allowlist' THEN
        area := 'network';
        IF NOT has_function_privilege('trading_guard.checklist_rules()', 'EXECUTE') THEN
            status := 'skip'; detail := 'trading_guard.rules is a superuser-only setting';
            remedy := 'Run security_checklist() as a superuser.';
            RETURN;
        END IF;
        SELECT count(*), string_agg(format('rule %s (%s %s)', r.rule, array_to_string(r.roles, ','),
                                           array_to_string(r.networks, ',')), '; ') FILTER (WHERE r.any_role AND r.any_network)
          INTO n, names
          FROM trading_guard.checklist_rules() r;
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'fail'; detail := 'trading_guard.rules holds no rule: any role may connect from any address pg_hba.conf accepts';
            remedy := 'ALTER SYSTEM SET trading_guard.rules = ''bot_arb 10.0.1.0/24; dba 10.0.9.5/32 cert''; SELECT pg_reload_conf();';
        ELSE
            status := 'pass'; detail := format('%s rule(s) in trading_guard.rules', n); remedy := NULL;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'network.allowlist_open' THEN
        area := 'network';
        IF NOT has_function_privilege('trading_guard.checklist_rules()', 'EXECUTE') THEN
            status := 'skip'; detail := 'trading_guard.rules is a superuser-only setting';
            remedy := 'Run security_checklist() as a superuser.';
            RETURN;
        END IF;
        SELECT count(*), string_agg(format('rule %s (%s %s)', r.rule, array_to_string(r.roles, ','),
                                           array_to_string(r.networks, ',')), '; ') FILTER (WHERE r.any_role AND r.any_network)
          INTO n, names
          FROM trading_guard.checklist_rules() r;
        IF names IS NULL THEN
            status := 'pass'; detail := 'no rule lets every role in from every address'; remedy := NULL;
        ELSE
            status := 'fail'; detail := format('open rule(s): %s', names);
            remedy := 'Name the roles and the networks they connect from in trading_guard.rules; SELECT pg_reload_conf();';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'network.bans' THEN
        area := 'network';
        v := trading_guard.checklist_setting('trading_guard.max_auth_failures');
        IF NOT preloaded THEN
            status := 'fail'; detail := 'bans need the preloaded library'; remedy := 'Preload trading_guard (tls.guard_preloaded).';
        ELSIF v OPERATOR(pg_catalog.=) '0' THEN
            status := 'warn'; detail := 'trading_guard.max_auth_failures = 0: addresses are never banned';
            remedy := 'ALTER SYSTEM SET trading_guard.max_auth_failures = 5; SELECT pg_reload_conf();';
        ELSE
            status := 'pass'; detail := format('an address is banned after %s failures in %s', v, current_setting('trading_guard.failure_window')); remedy := NULL;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'validation.order_tables' THEN
        area := 'validation';
        SELECT count(*), string_agg(c.oid::regclass::text, ', ' ORDER BY c.oid::regclass::text)
          INTO n, names
          FROM pg_catalog.pg_class c
         WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND NOT c.relispartition
           AND c.relnamespace OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog'::regnamespace, 'information_schema'::regnamespace,
                                                                 'trading_guard'::regnamespace])
           AND c.relnamespace::text NOT LIKE 'pg_toast%' AND c.relnamespace::text NOT LIKE 'pg_temp%'
           AND (SELECT count(*) FROM pg_catalog.pg_attribute a
                 WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
                   AND a.attname OPERATOR(pg_catalog.=) ANY ('{symbol,side,quantity}'::name[])) OPERATOR(pg_catalog.=) 3
           AND NOT EXISTS (SELECT 1 FROM trading_guard.protected_tables p WHERE p.table_name::oid OPERATOR(pg_catalog.=) c.oid);
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'pass'; detail := 'every table with symbol, side and quantity columns is protected'; remedy := NULL;
        ELSE
            status := 'fail'; detail := format('%s order table(s) not protected: %s', n, names);
            remedy := format('SELECT trading_guard.protect_orders(%L);', split_part(names, ', ', 1));
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'validation.registry' THEN
        area := 'validation';
        SELECT count(*), max(s.updated_at)::text INTO n, v FROM trading_guard.symbols s;
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'fail'; detail := 'the symbol registry is empty: every order is refused (TG003)';
            remedy := 'SELECT * FROM trading_guard.load_exchange_info(<the exchange''s exchangeInfo document>::jsonb);';
        ELSE
            IF v::timestamptz OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) '7 days'::interval) THEN
                status := 'warn';
                detail := format('%s symbols, last loaded %s (%s days ago): filters and statuses may have changed', n, v::timestamptz::date,
                                 extract(day FROM now() OPERATOR(pg_catalog.-) v::timestamptz));
                remedy := 'Load exchangeInfo again every day: SELECT * FROM trading_guard.load_exchange_info(...);';
            ELSE
                status := 'pass'; detail := format('%s symbols, last loaded %s', n, v::timestamptz::date); remedy := NULL;
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'audit.order_tables_audited' THEN
        area := 'audit';
        SELECT count(*), string_agg(p.table_name::text, ', ' ORDER BY p.table_name::text) INTO n, names
          FROM trading_guard.protected_tables p
         WHERE NOT EXISTS (SELECT 1 FROM trading_guard.audit_config c WHERE c.table_name::oid OPERATOR(pg_catalog.=) p.table_name::oid);
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'pass'; detail := 'every protected order table is audited'; remedy := NULL;
        ELSE
            status := 'fail'; detail := format('%s protected table(s) not audited: %s', n, names);
            remedy := format('SELECT trading_guard.enable_audit(%L);', split_part(names, ', ', 1));
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'audit.triggers_intact' THEN
        area := 'audit';
        SELECT count(*), string_agg(t.table_name::text, ', ') INTO n, names
          FROM trading_guard.audited_tables t WHERE NOT t.triggers_intact;
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'pass'; detail := format('the audit triggers of %s table(s) are in place and enabled',
                                               (SELECT count(*) FROM trading_guard.audited_tables)); remedy := NULL;
        ELSE
            status := 'fail'; detail := format('audit triggers missing or disabled on: %s', names);
            remedy := format('SELECT trading_guard.enable_audit(%L); (re-creates them; see audit_log for who removed them)', split_part(names, ', ', 1));
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'audit.ddl_event_triggers' THEN
        area := 'audit';
        SELECT count(*) INTO n FROM pg_catalog.pg_event_trigger e
         WHERE e.evtname OPERATOR(pg_catalog.=) ANY ('{trading_guard_audit_ddl,trading_guard_audit_drop}'::name[])
           AND e.evtenabled OPERATOR(pg_catalog.=) ANY ('{O,A}'::"char"[]);
        IF n OPERATOR(pg_catalog.=) 2 THEN
            status := 'pass'; detail := 'the DDL and drop event triggers are enabled'; remedy := NULL;
        ELSE
            status := 'fail'; detail := 'an audit event trigger is disabled or missing: schema changes and grants go unrecorded';
            remedy := 'BEGIN; SET LOCAL trading_guard.maintenance = on; ALTER EVENT TRIGGER trading_guard_audit_ddl ENABLE ALWAYS; ALTER EVENT TRIGGER trading_guard_audit_drop ENABLE ALWAYS; COMMIT;';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'audit.sealing' THEN
        area := 'audit';
        IF NOT has_function_privilege('trading_guard.seal_status()', 'EXECUTE') THEN
            status := 'skip'; detail := 'seal_status() is not granted to this role'; remedy := 'Run as a superuser or a member of pg_read_all_stats.';
        ELSE
            SELECT * INTO ks FROM trading_guard.seal_status();
            IF ks.worker_pid IS NULL AND ks.last_sealed_at IS NULL THEN
                status := 'fail'; detail := 'the audit trail of this database is not sealed: a changed or removed row would go unnoticed';
                remedy := format('ALTER SYSTEM SET trading_guard.seal_databases = %L; and restart (or call trading_guard.seal_audit() on a schedule)', current_database());
            ELSIF ks.waiting_for_key_ring THEN
                status := 'fail'; detail := 'the sealing worker waits for a key ring: nothing is sealed';
                remedy := 'Load a key ring (secrets.key_ring); the worker resumes by itself.';
            ELSIF ks.oldest_unsealed IS NOT NULL AND ks.oldest_unsealed OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) '1 minute'::interval) THEN
                status := 'warn';
                detail := format('%s audit rows wait to be sealed, the oldest since %s%s', ks.backlog_rows, ks.oldest_unsealed,
                                 CASE WHEN ks.last_error IS NOT NULL THEN ' (last error: ' OPERATOR(pg_catalog.||) ks.last_error OPERATOR(pg_catalog.||) ')' ELSE '' END);
                remedy := 'See trading_guard.seal_status (waiting_for_key_ring, last_error) and the server log.';
            ELSE
                status := 'pass'; remedy := NULL;
                detail := CASE WHEN ks.last_batch IS NULL THEN format('nothing to seal yet (backlog %s rows)', ks.backlog_rows)
                               ELSE format('sealed up to batch %s (%s), backlog %s rows', ks.last_batch, ks.last_sealed_at, ks.backlog_rows) END;
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'audit.verified' THEN
        area := 'audit';
        events_here := current_setting('trading_guard.events_database', true) OPERATOR(pg_catalog.=) current_database();
        IF NOT events_here THEN
            status := 'skip'; detail := format('verifications are security events, kept in database %s', current_setting('trading_guard.events_database', true));
            remedy := 'Run security_checklist() in that database for this check.';
        ELSIF NOT has_table_privilege('trading_guard.security_events', 'SELECT') THEN
            status := 'skip'; detail := 'security_events cannot be read by this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSE
            SELECT e.event_time::text, e.outcome OPERATOR(pg_catalog.=) 'info' INTO v, ok
              FROM trading_guard.security_events e
             WHERE e.event_type OPERATOR(pg_catalog.=) 'verify' AND e.database_name OPERATOR(pg_catalog.=) current_database()
           AND e.detail OPERATOR(pg_catalog.->>) 'function' OPERATOR(pg_catalog.=) 'verify_audit'
             ORDER BY e.id DESC LIMIT 1;
            IF v IS NULL THEN
                status := 'warn'; detail := 'verify_audit() has never been run (no verify event)';
                remedy := 'SELECT * FROM trading_guard.verify_audit(); -- and schedule it daily, keeping audit_digest() lines off the server';
            ELSIF NOT ok THEN
                status := 'fail'; detail := format('the last verification (%s) found a problem', v);
                remedy := 'SELECT * FROM trading_guard.security_events WHERE event_type = ''verify'' ORDER BY id DESC LIMIT 1; then README "Incident review"';
            ELSIF v::timestamptz OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) '7 days'::interval) THEN
                status := 'warn'; detail := format('last verified %s, more than 7 days ago', v);
                remedy := 'SELECT * FROM trading_guard.verify_audit(); -- and schedule it daily';
            ELSE
                status := 'pass'; detail := format('last verified %s, intact', v); remedy := NULL;
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'audit.log_readers' THEN
        area := 'audit';
        SELECT string_agg(DISTINCT CASE WHEN acl.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE acl.grantee::regrole::text END, ', ')
          INTO names
          FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) acl
         WHERE c.oid OPERATOR(pg_catalog.=) 'trading_guard.audit_log'::regclass
           AND acl.privilege_type OPERATOR(pg_catalog.=) 'SELECT'
           AND (acl.grantee OPERATOR(pg_catalog.=) 0
                OR EXISTS (SELECT 1 FROM trading_guard.protected_tables p, pg_catalog.pg_class t,
                                  LATERAL pg_catalog.aclexplode(t.relacl) a2
                            WHERE t.oid OPERATOR(pg_catalog.=) p.table_name::oid AND a2.grantee OPERATOR(pg_catalog.=) acl.grantee
                              AND a2.privilege_type OPERATOR(pg_catalog.=) 'INSERT'
                              AND a2.grantee OPERATOR(pg_catalog.<>) t.relowner
                              AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) a2.grantee)));
        IF names IS NULL THEN
            status := 'pass'; detail := 'audit_log is readable neither by PUBLIC nor by a role that writes orders'; remedy := NULL;
        ELSE
            status := 'fail'; detail := format('audit_log is readable by %s', names);
            remedy := 'BEGIN; SET LOCAL trading_guard.maintenance = on; REVOKE SELECT ON trading_guard.audit_log FROM <them>; COMMIT; (grant it to an auditor role)';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'secrets.key_ring' THEN
        area := 'secrets';
        IF NOT has_function_privilege('trading_guard.key_ring_status()', 'EXECUTE') THEN
            status := 'skip'; detail := 'key_ring_status() is not granted to this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSE
            SELECT * INTO ks FROM trading_guard.key_ring_status();
            v := current_setting('trading_guard.environment', true);
            IF NOT coalesce(ks.loaded, false) THEN
                status := 'fail'; detail := format('no key ring is loaded%s: credentials can be neither stored nor used, the audit trail is not sealed',
                                                   coalesce(' (' OPERATOR(pg_catalog.||) ks.last_error OPERATOR(pg_catalog.||) ')', ''));
                remedy := 'Set trading_guard.key_file (a 0600 file owned by the server''s user, outside the data directory) or trading_guard.key_command; SELECT pg_reload_conf();';
            ELSIF ks.source OPERATOR(pg_catalog.=) 'environment' AND v OPERATOR(pg_catalog.=) 'prod' THEN
                status := 'fail'; detail := 'the key ring comes from the TRADING_GUARD_MASTER_KEY environment variable in production (visible in /proc of the server, inherited by every program it starts)';
                remedy := 'Move the key to trading_guard.key_file or trading_guard.key_command, unset the variable and restart.';
            ELSE
                status := 'pass'; detail := format('key ring loaded from %s, %s version(s), newest %s', ks.source, ks.versions, ks.newest); remedy := NULL;
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'secrets.key_file' THEN
        area := 'secrets';
        IF NOT has_function_privilege('trading_guard.checklist_key_file()', 'EXECUTE') THEN
            status := 'skip'; detail := 'the key file is a superuser-only setting'; remedy := 'Run security_checklist() as a superuser.';
        ELSE
            SELECT * INTO kf FROM trading_guard.checklist_key_file();
            IF kf.path IS NULL THEN
                status := 'skip'; detail := 'no trading_guard.key_file is set'; remedy := NULL;
            ELSIF NOT kf.present THEN
                status := 'fail'; detail := format('key file %s does not exist', kf.path); remedy := 'Restore the file, or point trading_guard.key_file at it; SELECT pg_reload_conf();';
            ELSIF NOT kf.owned_by_server OR kf.group_or_world_access OR kf.in_data_directory THEN
                status := 'fail';
                detail := format('key file %s (mode %s)%s%s%s', kf.path, kf.mode,
                                 CASE WHEN NOT kf.owned_by_server THEN ', not owned by the server''s user' ELSE '' END,
                                 CASE WHEN kf.group_or_world_access THEN ', readable by group or others' ELSE '' END,
                                 CASE WHEN kf.in_data_directory THEN ', inside the data directory (copied by pg_basebackup into every backup)' ELSE '' END);
                remedy := 'chown postgres: and chmod 0600 the file, keep it outside the data directory (e.g. /etc/trading_guard/keyring), update trading_guard.key_file; SELECT pg_reload_conf();';
            ELSE
                status := 'pass'; detail := format('key file %s: mode %s, owned by the server''s user, outside the data directory', kf.path, kf.mode); remedy := NULL;
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'secrets.key_readers' THEN
        area := 'secrets';
        SELECT string_agg(DISTINCT format('%s (%s)', m.member::regrole, m.roleid::regrole), ', ')
          INTO names
          FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.member
         WHERE m.roleid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_read_server_files'::regrole, 'pg_execute_server_program'::regrole,
                                                         'pg_write_server_files'::regrole]::oid[])
           AND NOT r.rolsuper;
        IF names IS NULL THEN
            status := 'pass'; detail := 'no role but superusers can read server files or run server programs'; remedy := NULL;
        ELSE
            status := 'fail'; detail := format('these roles can read the key file (or run a program that does): %s', names);
            remedy := 'REVOKE pg_read_server_files, pg_execute_server_program, pg_write_server_files FROM <them>;';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'secrets.credential_rotation' THEN
        area := 'secrets';
        IF NOT has_table_privilege('trading_guard.credentials_due_for_rotation', 'SELECT') THEN
            status := 'skip'; detail := 'credentials_due_for_rotation cannot be read by this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSE
            SELECT count(*), string_agg(format('%s/%s (%s, due %s)', d.exchange, d.label, d.environment, d.rotate_by::date), ', ')
              INTO n, names FROM trading_guard.credentials_due_for_rotation d;
            IF n OPERATOR(pg_catalog.=) 0 THEN
                status := 'pass'; detail := 'no credential is due for rotation'; remedy := NULL;
            ELSE
                status := 'warn'; detail := format('%s credential(s) due for rotation: %s', n, names);
                remedy := 'Make new API keys at the exchange, then trading_guard.rotate_credential(exchange, label, api_key, api_secret) with bound parameters.';
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'secrets.master_key_age' THEN
        area := 'secrets';
        IF NOT has_function_privilege('trading_guard.key_versions()', 'EXECUTE')
           OR NOT has_table_privilege('trading_guard.key_version_history', 'SELECT') THEN
            status := 'skip'; detail := 'key_versions() or key_version_history is not granted to this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSE
            SELECT h.first_loaded, k.version INTO v, n
              FROM trading_guard.key_versions() k
              LEFT JOIN trading_guard.key_version_history h ON h.key_id OPERATOR(pg_catalog.=) k.key_id
             WHERE k.newest;
            IF n IS NULL THEN
                status := 'skip'; detail := 'no key ring is loaded'; remedy := NULL;
            ELSIF v IS NULL THEN
                status := 'skip';
                detail := format('when key version %s was first loaded is not recorded here (the events worker records it in database %s)',
                                 n, current_setting('trading_guard.events_database', true));
                remedy := 'Run security_checklist() in the events database.';
            ELSIF v::timestamptz OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) '90 days'::interval) THEN
                status := 'warn'; detail := format('the newest master key (version %s) was first loaded %s, more than 90 days ago', n, v::timestamptz::date);
                remedy := 'Add a new key version to the key ring, SELECT pg_reload_conf(); then SELECT * FROM trading_guard.rekey(); until remaining = 0 (README "Key management").';
            ELSE
                status := 'pass'; detail := format('the newest master key (version %s) was first loaded %s', n, v::timestamptz::date); remedy := NULL;
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'secrets.reject_literals' THEN
        area := 'secrets';
        IF current_setting('trading_guard.reject_literal_secrets') OPERATOR(pg_catalog.=) 'on' THEN
            status := 'pass'; detail := 'secrets written as literals in SQL text are refused (TG070)'; remedy := NULL;
        ELSE
            status := 'fail'; detail := 'trading_guard.reject_literal_secrets = off: a secret written in SQL text reaches logs and pg_stat_statements';
            remedy := 'ALTER SYSTEM SET trading_guard.reject_literal_secrets = on; SELECT pg_reload_conf(); (and ALTER ROLE/DATABASE ... RESET it)';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'secrets.other_environments' THEN
        area := 'secrets';
        IF NOT has_table_privilege('trading_guard.credentials', 'SELECT') THEN
            status := 'skip'; detail := 'credentials cannot be read by this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSE
            SELECT count(*), string_agg(DISTINCT c.environment, ', ') INTO n, names
              FROM trading_guard.credentials c
             WHERE c.revoked_at IS NULL AND c.environment OPERATOR(pg_catalog.<>) current_setting('trading_guard.environment');
            IF n OPERATOR(pg_catalog.=) 0 THEN
                status := 'pass'; detail := format('every active credential belongs to this environment (%s)', current_setting('trading_guard.environment')); remedy := NULL;
            ELSE
                status := 'warn'; detail := format('%s active credential(s) of another environment (%s) are stored in this %s database', n, names, current_setting('trading_guard.environment'));
                remedy := 'Store each environment''s credentials in its own database; revoke these here with trading_guard.revoke_credential().';
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'secrets.reveal_and_sign' THEN
        area := 'secrets';
        SELECT string_agg(DISTINCT r.rolname::text, ', ') INTO names
          FROM pg_catalog.pg_roles r
         WHERE NOT r.rolsuper
           AND has_function_privilege(r.oid, 'trading_guard.reveal_credential(text, text)', 'EXECUTE')
           AND has_function_privilege(r.oid, 'trading_guard.sign_request(text, text, text)', 'EXECUTE');
        IF names IS NULL THEN
            status := 'pass'; detail := 'no role both signs and reveals secrets'; remedy := NULL;
        ELSE
            status := 'warn'; detail := format('roles that sign and may also reveal the secrets: %s', names);
            remedy := 'BEGIN; SET LOCAL trading_guard.maintenance = on; REVOKE EXECUTE ON FUNCTION trading_guard.reveal_credential(text, text), trading_guard.reveal_credential(bigint) FROM <them>; COMMIT;';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'logging.statements' THEN
        area := 'logging';
        v := current_setting('log_statement');
        n := trading_guard.checklist_setting('log_min_duration_statement')::bigint;
        IF v OPERATOR(pg_catalog.<>) ALL ('{all,mod}'::text[]) AND n OPERATOR(pg_catalog.<>) 0 THEN
            status := 'pass'; detail := format('log_statement = %s, log_min_duration_statement = %s: statements are not all logged', v, n); remedy := NULL;
        ELSIF preloaded THEN
            status := 'pass'; detail := format('log_statement = %s, log_min_duration_statement = %s, with trading_guard''s redaction of credential calls in every process (preloaded)', v, n); remedy := NULL;
        ELSE
            status := 'fail'; detail := format('log_statement = %s, log_min_duration_statement = %s without the preloaded redaction hook: secrets in statements reach the log', v, n);
            remedy := 'Preload trading_guard (shared_preload_libraries), or ALTER SYSTEM SET log_statement = ''ddl''; ALTER SYSTEM SET log_min_duration_statement = -1; SELECT pg_reload_conf();';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'logging.connections' THEN
        area := 'logging';
        IF current_setting('log_connections') OPERATOR(pg_catalog.=) 'on' THEN
            status := 'pass'; detail := 'log_connections = on'; remedy := NULL;
        ELSIF preloaded THEN
            status := 'warn'; detail := 'log_connections = off (security_events still records every login the guard decides)';
            remedy := 'ALTER SYSTEM SET log_connections = on; (takes effect for new connections)';
        ELSE
            status := 'fail'; detail := 'log_connections = off and no security events: logins leave no trace';
            remedy := 'ALTER SYSTEM SET log_connections = on; and preload trading_guard';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'logging.failed_logins' THEN
        area := 'logging';
        v := trading_guard.checklist_setting('log_min_messages');
        IF v IS NULL THEN
            status := 'skip'; detail := 'log_min_messages cannot be read by this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSIF v OPERATOR(pg_catalog.=) 'panic' THEN
            status := 'fail'; detail := 'log_min_messages = panic hides failed logins (FATAL)';
            remedy := 'ALTER SYSTEM SET log_min_messages = warning; SELECT pg_reload_conf();';
        ELSE
            status := 'pass'; detail := format('log_min_messages = %s: failed logins (FATAL) are logged', v); remedy := NULL;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'logging.pg_stat_statements_keys' THEN
        area := 'logging';
        IF to_regclass('pg_stat_statements') IS NULL THEN
            status := 'skip'; detail := 'pg_stat_statements is not installed in this database'; remedy := NULL;
        ELSIF NOT (pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')) THEN
            status := 'skip'; detail := 'other roles'' statements cannot be read by this role'; remedy := 'Run security_checklist() as a superuser or a member of pg_read_all_stats.';
        ELSE
            BEGIN
                EXECUTE $q$SELECT count(*) FROM pg_stat_statements s
                           WHERE s.query ~* '(pgp_sym_(en|de)crypt(_bytea)?|encrypt(_iv)?|decrypt(_iv)?|hmac)\s*\([^)]*''[^'']{6,}'''$q$
                   INTO n;
                IF n OPERATOR(pg_catalog.=) 0 THEN
                    status := 'pass'; detail := 'no pgcrypto call with a literal key in pg_stat_statements'; remedy := NULL;
                ELSE
                    status := 'fail'; detail := format('%s statement(s) in pg_stat_statements call pgcrypto with a key written in their text', n);
                    remedy := 'Move those secrets into the vault (store_credential, sign_request); then SELECT pg_stat_statements_reset();';
                END IF;
            EXCEPTION WHEN OTHERS THEN
                status := 'skip'; detail := format('pg_stat_statements could not be read: %s', SQLERRM); remedy := NULL;
            END;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'limits.order_roles' THEN
        area := 'limits';
        IF NOT has_table_privilege('trading_guard.order_limits', 'SELECT') THEN
            status := 'skip'; detail := 'order_limits cannot be read by this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSE
            SELECT count(DISTINCT acl.grantee), string_agg(DISTINCT acl.grantee::regrole::text, ', ')
              INTO n, names
              FROM trading_guard.protected_tables p, pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) acl
             WHERE c.oid OPERATOR(pg_catalog.=) p.table_name::oid
               AND acl.privilege_type OPERATOR(pg_catalog.=) 'INSERT'
               AND acl.grantee OPERATOR(pg_catalog.<>) c.relowner AND acl.grantee OPERATOR(pg_catalog.<>) 0
               AND NOT EXISTS (SELECT 1 FROM trading_guard.order_limits l
                                WHERE l.role::oid OPERATOR(pg_catalog.=) acl.grantee AND l.account IS NULL);
            IF n OPERATOR(pg_catalog.=) 0 THEN
                status := 'pass'; detail := 'every role granted INSERT on a protected order table has order limits'; remedy := NULL;
            ELSE
                status := 'warn'; detail := format('roles that write orders without limits: %s', names);
                remedy := format('SELECT trading_guard.set_order_limit(%L, orders_per_minute => 100, max_order_notional => ..., max_notional => ...);', split_part(names, ', ', 1));
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'limits.halts' THEN
        area := 'limits';
        SELECT count(*), string_agg(format('%s (%s, since %s)', s.scope, s.reason, s.since), '; ') INTO n, names
          FROM trading_guard.trading_status() s;
        IF n OPERATOR(pg_catalog.=) 0 THEN
            status := 'pass'; detail := 'no trading halt is in force'; remedy := NULL;
        ELSE
            status := 'warn'; detail := format('%s halt(s) in force: %s', n, names);
            remedy := 'When the incident is over: SELECT trading_guard.resume_trading(<the same scope>);';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'limits.oncall' THEN
        area := 'limits';
        SELECT string_agg(DISTINCT r.rolname::text, ', ') INTO names
          FROM pg_catalog.pg_roles r
         WHERE NOT r.rolsuper
           AND has_function_privilege(r.oid, 'trading_guard.halt_trading(text, text, text, regrole)', 'EXECUTE');
        IF names IS NULL THEN
            status := 'warn'; detail := 'only superusers can halt trading: the on-call engineer needs a superuser login in an incident';
            remedy := 'BEGIN; SET LOCAL trading_guard.maintenance = on; GRANT EXECUTE ON FUNCTION trading_guard.halt_trading(text, text, text, regrole), trading_guard.resume_trading(text, text, regrole), trading_guard.revoke_all_credentials(text) TO oncall; COMMIT;';
        ELSE
            status := 'pass'; detail := format('roles that can halt trading without being superusers: %s', names); remedy := NULL;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'monitoring.security_events' THEN
        area := 'monitoring';
        IF NOT preloaded THEN
            status := 'fail'; detail := 'no security events without the preloaded library'; remedy := 'Preload trading_guard (tls.guard_preloaded).';
        ELSIF NOT has_function_privilege('trading_guard.security_event_queue()', 'EXECUTE') THEN
            status := 'skip'; detail := 'security_event_queue() is not granted to this role'; remedy := 'Run as a superuser or a member of pg_read_all_stats.';
        ELSE
            SELECT * INTO ks FROM trading_guard.security_event_queue();
            IF ks.worker_pid IS NULL OR ks.waiting_for_table THEN
                status := 'fail'; detail := format('the events worker is not writing (%s)', coalesce(ks.last_error, 'no worker, or no security_events table in trading_guard.events_database'));
                remedy := format('CREATE EXTENSION trading_guard in database %s, or set trading_guard.events_database to a database that has it, and restart.', current_setting('trading_guard.events_database', true));
            ELSIF ks.dropped_total OPERATOR(pg_catalog.>) 0 THEN
                status := 'warn'; detail := format('%s security events were dropped (queue full) since %s, the last at %s', ks.dropped_total, ks.since, ks.last_drop);
                remedy := 'ALTER SYSTEM SET trading_guard.event_queue_size = 65536; and restart (or lower trading_guard.event_flush_interval)';
            ELSE
                status := 'pass'; detail := format('the events worker writes to %s (%s events written, none dropped)', current_setting('trading_guard.events_database', true), ks.written_total); remedy := NULL;
            END IF;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'monitoring.alerts' THEN
        area := 'monitoring';
        v := current_setting('trading_guard.alert_events', true);
        IF coalesce(v, '') OPERATOR(pg_catalog.=) '' THEN
            status := 'warn'; detail := 'trading_guard.alert_events is empty: no NOTIFY trading_guard_alerts';
            remedy := 'ALTER SYSTEM SET trading_guard.alert_events = ''ban,key_ring,vault_refused,refused_logins''; SELECT pg_reload_conf(); and LISTEN trading_guard_alerts in the alerting service';
        ELSE
            status := 'pass'; detail := format('alerts sent for: %s (NOTIFY trading_guard_alerts)', v); remedy := NULL;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'dependencies.postgresql' THEN
        area := 'dependencies';
        status := 'pass'; detail := format('PostgreSQL %s', current_setting('server_version'));
        remedy := 'Apply every minor release (security fixes): compare with the newest 15.x your distribution ships.';
    ELSIF id OPERATOR(pg_catalog.=) 'dependencies.openssl' THEN
        area := 'dependencies';
        v := trading_guard.checklist_openssl();
        IF v ~ '^OpenSSL (3\.|[4-9]\.)' THEN
            status := 'pass'; detail := v; remedy := 'Keep the distribution''s OpenSSL updates applied (restart the server after an update).';
        ELSE
            status := 'warn'; detail := format('%s: not a supported OpenSSL 3 release', v);
            remedy := 'Upgrade the system''s OpenSSL to a supported 3.x release and restart.';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'dependencies.extension' THEN
        area := 'dependencies';
        SELECT e.extversion INTO v FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'trading_guard';
        SELECT a.default_version INTO v2 FROM pg_catalog.pg_available_extensions a WHERE a.name OPERATOR(pg_catalog.=) 'trading_guard';
        IF v OPERATOR(pg_catalog.=) v2 THEN
            status := 'pass'; detail := format('trading_guard %s, the newest installed', v); remedy := NULL;
        ELSE
            status := 'warn'; detail := format('trading_guard %s is installed here; %s is available', v, v2);
            remedy := 'ALTER EXTENSION trading_guard UPDATE;';
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'backups.archiving' THEN
        area := 'backups';
        v := current_setting('archive_mode');
        v2 := coalesce(nullif(trading_guard.checklist_setting('archive_command'), ''), nullif(current_setting('archive_library'), ''));
        IF v OPERATOR(pg_catalog.=) 'off' THEN
            status := 'fail'; detail := 'archive_mode = off: no WAL archive, no point-in-time recovery';
            remedy := 'ALTER SYSTEM SET archive_mode = on; ALTER SYSTEM SET archive_command = ''...''; and restart (or use pgBackRest / barman)';
        ELSIF v2 IS NULL AND trading_guard.checklist_setting('archive_command') IS NULL THEN
            status := 'skip'; detail := 'archive_command cannot be read by this role'; remedy := 'Run security_checklist() as a superuser.';
        ELSIF v2 IS NULL THEN
            status := 'fail'; detail := 'archive_mode is on but neither archive_command nor archive_library is set: WAL piles up unarchived';
            remedy := 'ALTER SYSTEM SET archive_command = ''...''; SELECT pg_reload_conf();';
        ELSE
            status := 'pass'; detail := format('archive_mode = %s', v); remedy := NULL;
        END IF;
    ELSIF id OPERATOR(pg_catalog.=) 'backups.archiver' THEN
        area := 'backups';
        SELECT * INTO ks FROM pg_catalog.pg_stat_archiver;
        IF current_setting('archive_mode') OPERATOR(pg_catalog.=) 'off' THEN
            status := 'skip'; detail := 'archiving is off (backups.archiving)'; remedy := NULL;
        ELSIF ks.last_failed_time IS NOT NULL
              AND (ks.last_archived_time IS NULL OR ks.last_failed_time OPERATOR(pg_catalog.>) ks.last_archived_time) THEN
            status := 'fail'; detail := format('archiving fails: %s failures, the last at %s (WAL %s)', ks.failed_count, ks.last_failed_time, ks.last_failed_wal);
            remedy := 'Read the server log for the archive_command''s error and fix it; SELECT * FROM pg_stat_archiver;';
        ELSIF ks.last_archived_time IS NULL OR ks.last_archived_time OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) '1 day'::interval) THEN
            status := 'warn'; detail := format('last WAL archived: %s', coalesce(ks.last_archived_time::text, 'never'));
            remedy := 'Check that archiving runs (SELECT pg_switch_wal(); then pg_stat_archiver), and test a restore.';
        ELSE
            status := 'pass'; detail := format('last WAL archived %s (%s)', ks.last_archived_time, ks.last_archived_wal); remedy := NULL;
        END IF;
    ELSE
        RAISE EXCEPTION 'no check "%"', id USING ERRCODE = '22023';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    status := 'skip'; detail := SQLERRM;
    remedy := 'Run security_checklist() as a superuser, or grant this role what the detail names.';
END
$fn$;
COMMENT ON FUNCTION trading_guard.checklist_check(text) IS
'one check of security_checklist(), by its id';

CREATE FUNCTION trading_guard.security_checklist()
RETURNS TABLE (area text, "check" text, status text, detail text, remedy text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    id text;
BEGIN
    FOREACH id IN ARRAY '{tls.ssl,tls.guard_preloaded,tls.guard_enforce,tls.min_protocol,tls.hba_plaintext,tls.hba_trust_password,tls.hba_shadowed_hostssl,tls.hba_errors,auth.password_encryption,auth.md5_passwords,auth.superuser_network,auth.application_roles,network.allowlist,network.allowlist_open,network.bans,validation.order_tables,validation.registry,audit.order_tables_audited,audit.triggers_intact,audit.ddl_event_triggers,audit.sealing,audit.verified,audit.log_readers,secrets.key_ring,secrets.key_file,secrets.key_readers,secrets.credential_rotation,secrets.master_key_age,secrets.reject_literals,secrets.other_environments,secrets.reveal_and_sign,logging.statements,logging.connections,logging.failed_logins,logging.pg_stat_statements_keys,limits.order_roles,limits.halts,limits.oncall,monitoring.security_events,monitoring.alerts,dependencies.postgresql,dependencies.openssl,dependencies.extension,backups.archiving,backups.archiver}'::text[] LOOP
        SELECT c.area, c.status, c.detail, c.remedy INTO area, status, detail, remedy
          FROM trading_guard.checklist_check(id) c;
        "check" := id;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION trading_guard.security_checklist() IS
'the security checklist, checked on this server: one row per check with status pass, warn, fail or skip, what was found and the remedy';

-- The same as JSON, for CI gating: {"pass": n, "warn": n, "fail": n, "skip": n, "checks": [...]}
CREATE FUNCTION trading_guard.security_checklist_json()
RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH c AS (SELECT * FROM trading_guard.security_checklist())
    SELECT jsonb_build_object(
        'pass', (SELECT count(*) FROM c WHERE c.status OPERATOR(pg_catalog.=) 'pass'),
        'warn', (SELECT count(*) FROM c WHERE c.status OPERATOR(pg_catalog.=) 'warn'),
        'fail', (SELECT count(*) FROM c WHERE c.status OPERATOR(pg_catalog.=) 'fail'),
        'skip', (SELECT count(*) FROM c WHERE c.status OPERATOR(pg_catalog.=) 'skip'),
        'checks', (SELECT jsonb_agg(jsonb_build_object('area', c.area, 'check', c."check", 'status', c.status,
                                                       'detail', c.detail, 'remedy', c.remedy)) FROM c))
$$;
COMMENT ON FUNCTION trading_guard.security_checklist_json() IS
'security_checklist() as one JSON document with counts per status, for CI gating';

-- the checklist says a lot about the server: for superusers, and for those
-- they grant it to (who see what they may, and skip for the rest)
REVOKE ALL ON FUNCTION trading_guard.security_checklist() FROM PUBLIC;
REVOKE ALL ON FUNCTION trading_guard.security_checklist_json() FROM PUBLIC;
