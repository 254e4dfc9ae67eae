/* trading_guard--1.5--1.6.sql — 1.6 keeps security events in a table */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.6'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Durable security events (src/events.c; README "Durable security events").
-- Login attempts, bans, refused and allowed vault access, key ring loads
-- and changes of the settings are queued in shared memory by whoever
-- decides them and written here by the events worker (in the database
-- trading_guard.events_database), in batches.  Each batch is recorded in
-- security_event_batches and in an audit_log row (operation EVENTS) that
-- the sealer seals into the audit chain.
-- ---------------------------------------------------------------------------
CREATE SEQUENCE trading_guard.security_events_id_seq;
CREATE TABLE trading_guard.security_events (
    id                  bigint      NOT NULL DEFAULT pg_catalog.nextval('trading_guard.security_events_id_seq'::pg_catalog.regclass),
    event_time          timestamptz NOT NULL,
    event_type          text        NOT NULL,
    outcome             text        NOT NULL,
    role_name           text,
    database_name       text,
    client_addr         inet,
    application_name    text,
    tls_version         text,
    tls_cipher          text,
    client_cert_subject text,
    reason              text,
    rule                integer,
    credential_id       bigint,
    exchange            text,
    label               text,
    key_version         integer,
    key_id              text,
    backend_pid         integer,
    detail              jsonb,
    CONSTRAINT security_events_pkey PRIMARY KEY (id),
    CONSTRAINT security_events_type_check CHECK (event_type OPERATOR(pg_catalog.=) ANY
        ('{login,ban,unban,ban_expired,vault_refused,vault_reveal,vault_sign,key_ring,config,purge,halt,rate_limit}'::pg_catalog.text[])),
    CONSTRAINT security_events_outcome_check CHECK (outcome OPERATOR(pg_catalog.=) ANY
        ('{allowed,refused,would_refuse,error,info}'::pg_catalog.text[]))
);
ALTER SEQUENCE trading_guard.security_events_id_seq OWNED BY trading_guard.security_events.id;
CREATE INDEX security_events_time_idx ON trading_guard.security_events (event_time);
CREATE INDEX security_events_addr_idx ON trading_guard.security_events (client_addr, event_time)
    WHERE client_addr IS NOT NULL;
CREATE INDEX security_events_credential_idx ON trading_guard.security_events (credential_id, event_time)
    WHERE credential_id IS NOT NULL;
COMMENT ON TABLE trading_guard.security_events IS
'security events: login attempts, bans, vault access, key ring and configuration changes (append-only, sealed through the audit chain)';
REVOKE ALL ON trading_guard.security_events FROM PUBLIC;
REVOKE ALL ON SEQUENCE trading_guard.security_events_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.security_events', '');
SELECT pg_catalog.pg_extension_config_dump('trading_guard.security_events_id_seq', '');

-- One row per batch the worker wrote: the id range, the Merkle root of the
-- rows' canonical bytes, and the audit row (EVENTS) that records the same.
CREATE TABLE trading_guard.security_event_batches (
    first_id        bigint      NOT NULL PRIMARY KEY,
    last_id         bigint      NOT NULL,
    row_count       bigint      NOT NULL,
    max_event_time  timestamptz NOT NULL,
    merkle_root     bytea       NOT NULL,
    audit_id        bigint      NOT NULL
);
CREATE INDEX security_event_batches_time_idx ON trading_guard.security_event_batches (max_event_time);
COMMENT ON TABLE trading_guard.security_event_batches IS
'the batches of security_events the events worker wrote, as recorded in audit_log (verify_security_events checks them)';
REVOKE ALL ON trading_guard.security_event_batches FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.security_event_batches', '');

-- Where the last purge cut, and the audit row that recorded it.
CREATE TABLE trading_guard.security_event_state (
    purged_through  bigint NOT NULL,
    purge_audit_id  bigint
);
-- No row until the first purge: the table is dumped, and a row made here
-- would sit next to the restored one after pg_restore.
COMMENT ON TABLE trading_guard.security_event_state IS
'the last purge of security_events: the id it removed events up to, and its audit row (no row: never purged)';
REVOKE ALL ON trading_guard.security_event_state FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('trading_guard.security_event_state', '');

CREATE FUNCTION trading_guard.security_events_append_only()
RETURNS trigger
AS 'MODULE_PATHNAME', 'tg_security_events_append_only'
LANGUAGE C;
REVOKE ALL ON FUNCTION trading_guard.security_events_append_only() FROM PUBLIC;

CREATE TRIGGER security_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON trading_guard.security_events
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.security_events_append_only();
ALTER TABLE trading_guard.security_events ENABLE ALWAYS TRIGGER security_events_append_only;
CREATE TRIGGER security_event_batches_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON trading_guard.security_event_batches
    FOR EACH STATEMENT EXECUTE FUNCTION trading_guard.security_events_append_only();
ALTER TABLE trading_guard.security_event_batches ENABLE ALWAYS TRIGGER security_event_batches_append_only;

CREATE FUNCTION trading_guard.security_event_queue(
    OUT capacity integer, OUT queued bigint, OUT queued_total bigint,
    OUT written_total bigint, OUT dropped_total bigint, OUT dropped_by_type jsonb,
    OUT last_drop timestamptz, OUT last_write timestamptz, OUT worker_pid integer,
    OUT waiting_for_table boolean, OUT last_error text, OUT last_error_at timestamptz,
    OUT since timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'tg_security_event_queue'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION trading_guard.security_event_queue() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading_guard.security_event_queue() TO pg_read_all_stats;

CREATE VIEW trading_guard.security_event_queue AS
SELECT * FROM trading_guard.security_event_queue();
COMMENT ON VIEW trading_guard.security_event_queue IS
'the shared-memory queue of security events: how full, written, dropped (when full), the worker';
REVOKE ALL ON trading_guard.security_event_queue FROM PUBLIC;
GRANT SELECT ON trading_guard.security_event_queue TO pg_read_all_stats;

CREATE FUNCTION trading_guard.purge_security_events(older_than interval)
RETURNS bigint
AS 'MODULE_PATHNAME', 'tg_purge_security_events'
LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION trading_guard.purge_security_events(interval) FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.purge_security_events(interval) IS
'remove the security events of whole batches older than the interval; records the cut; returns how many';

CREATE FUNCTION trading_guard.verify_security_events(
    OUT ok boolean, OUT rows_checked bigint, OUT batches_checked bigint,
    OUT first_bad_id bigint, OUT problem text, OUT detail text)
RETURNS record
AS 'MODULE_PATHNAME', 'tg_verify_security_events'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION trading_guard.verify_security_events() FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.verify_security_events() IS
'check security_events against the batches recorded in the (sealed) audit trail';

-- The incident runbook's questions (README "Durable security events").
CREATE VIEW trading_guard.refused_logins_last_hour AS
SELECT e.client_addr,
       pg_catalog.count(*) AS refused,
       pg_catalog.array_agg(DISTINCT e.reason) AS reasons,
       pg_catalog.array_agg(DISTINCT e.role_name) FILTER (WHERE e.role_name IS NOT NULL) AS roles,
       pg_catalog.min(e.event_time) AS first_seen,
       pg_catalog.max(e.event_time) AS last_seen
  FROM trading_guard.security_events e
 WHERE e.event_type OPERATOR(pg_catalog.=) 'login'
   AND e.outcome OPERATOR(pg_catalog.=) 'refused'
   AND e.event_time OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::pg_catalog.interval)
 GROUP BY e.client_addr
 ORDER BY pg_catalog.count(*) DESC;
COMMENT ON VIEW trading_guard.refused_logins_last_hour IS
'refused login attempts of the last hour, per client address';
REVOKE ALL ON trading_guard.refused_logins_last_hour FROM PUBLIC;

CREATE VIEW trading_guard.login_sources AS
SELECT e.role_name, e.database_name, e.client_addr,
       pg_catalog.sum(CASE WHEN e.outcome OPERATOR(pg_catalog.=) 'allowed'
                           THEN COALESCE((e.detail OPERATOR(pg_catalog.->>) 'count')::pg_catalog.int8, 1)
                           ELSE 0 END) AS allowed,
       pg_catalog.count(*) FILTER (WHERE e.outcome OPERATOR(pg_catalog.<>) 'allowed') AS refused,
       pg_catalog.array_agg(DISTINCT e.tls_version) FILTER (WHERE e.tls_version IS NOT NULL) AS tls_versions,
       pg_catalog.min(e.event_time) AS first_seen,
       pg_catalog.max(e.event_time) AS last_seen
  FROM trading_guard.security_events e
 WHERE e.event_type OPERATOR(pg_catalog.=) 'login'
 GROUP BY e.role_name, e.database_name, e.client_addr;
COMMENT ON VIEW trading_guard.login_sources IS
'who connected from where: login attempts per role, database and client address';
REVOKE ALL ON trading_guard.login_sources FROM PUBLIC;

CREATE FUNCTION trading_guard.credential_access(
    since timestamptz DEFAULT pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval,
    until timestamptz DEFAULT 'infinity',
    OUT credential_id bigint, OUT exchange text, OUT label text,
    OUT reveals bigint, OUT signatures bigint, OUT refusals bigint,
    OUT roles text[], OUT first_seen timestamptz, OUT last_seen timestamptz)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.credential_id,
           pg_catalog.max(e.exchange),
           pg_catalog.max(e.label),
           pg_catalog.count(*) FILTER (WHERE e.event_type OPERATOR(pg_catalog.=) 'vault_reveal'),
           COALESCE(pg_catalog.sum((e.detail OPERATOR(pg_catalog.->>) 'count')::pg_catalog.int8)
                    FILTER (WHERE e.event_type OPERATOR(pg_catalog.=) 'vault_sign'), 0)::pg_catalog.int8,
           pg_catalog.count(*) FILTER (WHERE e.event_type OPERATOR(pg_catalog.=) 'vault_refused'),
           pg_catalog.array_agg(DISTINCT e.role_name) FILTER (WHERE e.role_name IS NOT NULL),
           pg_catalog.min(e.event_time),
           pg_catalog.max(e.event_time)
      FROM trading_guard.security_events e
     WHERE e.event_type OPERATOR(pg_catalog.=) ANY ('{vault_reveal,vault_sign,vault_refused}'::pg_catalog.text[])
       AND e.event_time OPERATOR(pg_catalog.>=) since
       AND e.event_time OPERATOR(pg_catalog.<) until
     GROUP BY e.credential_id
     ORDER BY e.credential_id NULLS FIRST
$$;
REVOKE ALL ON FUNCTION trading_guard.credential_access(timestamptz, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION trading_guard.credential_access(timestamptz, timestamptz) IS
'every access to a credential in a window: reveals, signatures counted, refusals, by whom';

-- Monitoring (tools/postgres_exporter_queries.yaml) reads the seal backlog
-- as pg_read_all_stats, like the other status views: counts and times only.
GRANT EXECUTE ON FUNCTION trading_guard.seal_status() TO pg_read_all_stats;
GRANT SELECT ON trading_guard.seal_status TO pg_read_all_stats;
