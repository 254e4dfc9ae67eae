--
-- Sealing of the audit trail (src/seal.c, src/seal_verify.c) on a server
-- whose key ring is one key made for this run (TRADING_GUARD_MASTER_KEY, set
-- by the Makefile and test/run-tests.sh).  No sealing worker runs in this
-- database (it is not in trading_guard.seal_databases, and test/regress.conf
-- sets seal_interval = 0): every batch here is made by seal_audit().
-- Hashes, signatures, times, snapshots and ids change from run to run: they
-- are checked by their shape and against each other, never printed.
-- Concurrent sealers and writers: test/isolation/specs/seal_concurrent.spec;
-- tampering on disk, key rotation, the worker, standbys: the TAP tests.
--
\set regress_db :DBNAME

-- runs one statement; its SQLSTATE and message (row ids and batch numbers,
-- which depend on the tests before, as N), or 'done'
CREATE FUNCTION seal_try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'done';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || regexp_replace(SQLERRM, '(row|batch) -?\d+', '\1 N', 'g');
END
$$;

-- checks an inclusion proof of audit_proof() as an auditor would, without
-- the database's help: the leaf from the row's canonical bytes, then the
-- RFC 9162 section 2.1.3.2 walk up the path to the root
CREATE FUNCTION seal_proof_ok(p jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    fn bigint := (p->>'leaf_index')::bigint;
    sn bigint := (p->>'leaf_count')::bigint - 1;
    r bytea := sha256('\x00'::bytea || decode(p->>'row', 'hex'));
    h text;
BEGIN
    FOR h IN SELECT jsonb_array_elements_text(p->'path') LOOP
        IF sn = 0 THEN
            RETURN false;
        END IF;
        IF fn % 2 = 1 OR fn = sn THEN
            r := sha256('\x01'::bytea || decode(h, 'hex') || r);
            WHILE fn % 2 = 0 AND fn <> 0 LOOP
                fn := fn / 2;
                sn := sn / 2;
            END LOOP;
        ELSE
            r := sha256('\x01'::bytea || r || decode(h, 'hex'));
        END IF;
        fn := fn / 2;
        sn := sn / 2;
    END LOOP;
    RETURN sn = 0 AND encode(r, 'hex') = p->>'root';
END
$$;

-- no worker seals this database
SELECT current_setting('trading_guard.seal_interval') AS seal_interval,
       current_database() <> ALL (string_to_array(current_setting('trading_guard.seal_databases'), ','))
         AS not_in_seal_databases,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'trading_guard sealer' AND datname = current_database()) AS workers_here;

-- what the tests before left is sealed first; then there is nothing to seal
-- and no batch is written
SELECT trading_guard.seal_audit() >= 0 AS leftovers_sealed;
SELECT count(*) AS batches FROM trading_guard.audit_seal \gset
SELECT trading_guard.seal_audit() AS nothing;
SELECT count(*) - :batches AS new_batches FROM trading_guard.audit_seal;
SELECT ok, problem, unsealed_rows FROM trading_guard.verify_audit();
SELECT coalesce(rows_sealed, 0) AS p0, coalesce(last_batch, 0) AS b0 FROM trading_guard.seal_status \gset
SELECT backlog_rows, oldest_unsealed, backlog_age, key_version, key_ring_loaded,
       worker_pid, waiting_for_key_ring, worker_last_round, last_error, last_error_at
  FROM trading_guard.seal_status;

-- five audit rows, then one batch of them
CREATE TABLE seal_t (id int PRIMARY KEY, qty int);
SELECT trading_guard.enable_audit('seal_t');
INSERT INTO seal_t VALUES (1, 10), (2, 20);
INSERT INTO seal_t VALUES (3, 30), (100, 1000);
SELECT min(id) AS first_id FROM trading_guard.audit_log WHERE table_name = 'seal_t' \gset
SELECT rows_sealed - :p0 AS rows_sealed, last_batch - :b0 AS last_batch,
       backlog_rows, oldest_unsealed = (SELECT min(event_time) FROM trading_guard.audit_log
                                         WHERE id >= :first_id) AS oldest_unsealed,
       backlog_age >= '0' AS backlog_age
  FROM trading_guard.seal_status;
SELECT trading_guard.seal_audit() AS sealed;
SELECT rows_sealed - :p0 AS rows_sealed, last_batch - :b0 AS last_batch, key_version,
       backlog_rows, oldest_unsealed, backlog_age
  FROM trading_guard.seal_status;
-- the batch: its rows (exactly the five, by id), its position, 8 bytes of
-- leaf hash per row, the hashes' and the signature's lengths, the link to
-- the previous batch, the cluster and the snapshot it was taken in
SELECT s.batch - :b0 AS batch, s.first_position - :p0 AS first_position, s.row_count,
       s.ids = (SELECT range_agg(int8range(id, id + 1)) FROM trading_guard.audit_log
                 WHERE id >= :first_id) AS ids_are_the_rows,
       length(s.leaf_tags) AS leaf_tags, length(s.merkle_root) AS root,
       length(s.chain_hash) AS chain, length(s.signature) AS signature,
       s.prev_hash = coalesce((SELECT chain_hash FROM trading_guard.audit_seal p
                                WHERE p.batch = s.batch - 1), '\x'::bytea || decode(repeat('00', 32), 'hex'))
         AS linked,
       s.key_version,
       s.system_identifier = (SELECT system_identifier FROM pg_control_system()) AS this_cluster,
       s.max_event_time = (SELECT max(event_time) FROM trading_guard.audit_log
                            WHERE id >= :first_id) AS max_event_time,
       s.sealed_at <= now() AS sealed_at,
       pg_snapshot_xmax(s.snapshot) <= pg_snapshot_xmax(pg_current_snapshot()) AS snapshot
  FROM trading_guard.audit_seal s WHERE s.batch = :b0 + 1;
-- verify_audit(): every sealed row still in the log checked, every batch
SELECT ok, rows_checked = (SELECT count(*) FROM trading_guard.audit_log l
                            WHERE EXISTS (SELECT FROM trading_guard.audit_seal s WHERE s.ids @> l.id))
         AS rows_checked,
       batches_checked = (SELECT count(*) FROM trading_guard.audit_seal) AS batches_checked,
       first_bad_position, first_bad_id, problem, detail,
       head_position - :p0 AS head_position, unsealed_rows
  FROM trading_guard.verify_audit();

-- rows of the caller's own open transaction are not sealed, nor counted in
-- the backlog, until it commits; a batch made meanwhile (of another
-- transaction's committed rows) leaves them to the next one
INSERT INTO seal_t VALUES (4, 40);
BEGIN;
INSERT INTO seal_t VALUES (5, 50);
SELECT backlog_rows FROM trading_guard.seal_status;
SELECT trading_guard.seal_audit() AS sealed_committed_only;
SELECT trading_guard.seal_audit() AS own_rows_not_sealed;
SELECT ok, unsealed_rows FROM trading_guard.verify_audit();
COMMIT;
SELECT backlog_rows FROM trading_guard.seal_status;
SELECT trading_guard.seal_audit() AS sealed_after_commit;
-- and a transaction that seals (so it has a transaction id from then on),
-- then writes, then seals again
INSERT INTO seal_t VALUES (6, 60);
BEGIN;
SELECT trading_guard.seal_audit() AS sealed;
INSERT INTO seal_t VALUES (7, 70);
SELECT trading_guard.seal_audit() AS own_rows_not_sealed;
COMMIT;
SELECT trading_guard.seal_audit() AS sealed_after_commit;
-- two calls in one statement: the second sees the first one's batch
INSERT INTO seal_t VALUES (8, 80);
SELECT trading_guard.seal_audit() AS sealed FROM generate_series(1, 2);
-- a rolled-back transaction and a subtransaction rolled back to its
-- savepoint leave nothing to seal
BEGIN;
INSERT INTO seal_t VALUES (9, 90);
ROLLBACK;
BEGIN;
INSERT INTO seal_t VALUES (10, 100);
SAVEPOINT s;
INSERT INTO seal_t VALUES (11, 110);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT trading_guard.seal_audit() AS sealed;
-- a read-only transaction cannot seal
INSERT INTO seal_t VALUES (12, 120);
BEGIN READ ONLY;
SELECT seal_try('SELECT trading_guard.seal_audit()') AS read_only;
ROLLBACK;
SELECT trading_guard.seal_audit() AS sealed;
-- every row of the table's is in exactly one batch, each batch starts where
-- the one before ended, no batch is empty
SELECT count(*) AS audit_rows,
       count(*) FILTER (WHERE (SELECT count(*) FROM trading_guard.audit_seal s
                                WHERE s.ids @> l.id) = 1) AS in_one_batch
  FROM trading_guard.audit_log l WHERE id >= :first_id;
SELECT batch - :b0 AS batch, first_position - :p0 AS first_position, row_count,
       first_position = lag(first_position + row_count) OVER (ORDER BY batch) AS follows,
       prev_hash = lag(chain_hash) OVER (ORDER BY batch) AS linked,
       length(leaf_tags) = 8 * row_count AS leaf_tags
  FROM trading_guard.audit_seal WHERE batch > :b0 ORDER BY batch;
SELECT ok, problem, head_position - :p0 AS head_position, unsealed_rows
  FROM trading_guard.verify_audit();

-- verify_audit(from_position): only the batches from the one holding it
SELECT ok, rows_checked, batches_checked, head_position - :p0 AS head_position
  FROM trading_guard.verify_audit(from_position => :p0 + 5);
SELECT ok, rows_checked, batches_checked
  FROM trading_guard.verify_audit(from_position => :p0 + 1000);
SELECT ok, rows_checked > 0 AS rows_checked,
       batches_checked = (SELECT count(*) FROM trading_guard.audit_seal) AS batches_checked
  FROM trading_guard.verify_audit(NULL, NULL);
SELECT seal_try('SELECT trading_guard.verify_audit(0)') AS zero;
SELECT seal_try('SELECT trading_guard.verify_audit(-5)') AS negative;

-- audit_digest(): the head of the chain, signed; the message is one line
-- that holds the root and chain of the newest batch; the signature is the
-- one stored with the batch (Ed25519 is deterministic); the public key PEM
SELECT batch - :b0 AS batch, "position" - :p0 AS "position", key_version,
       root ~ '^[0-9a-f]{64}$' AS root_hex, chain ~ '^[0-9a-f]{64}$' AS chain_hex,
       message ~ ('^trading_guard audit digest v1 batch=' || batch || ' position=' || "position"
                  || ' sealed_at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z key_version=1 layout=[0-9a-f]{16} root='
                  || root || ' chain=' || chain || '$') AS message_shape,
       message = replace(message, E'\n', '') AS one_line,
       (SELECT s.chain_hash = decode(d.chain, 'hex') AND s.merkle_root = decode(d.root, 'hex')
               AND s.signature = decode(d.signature, 'base64') AND s.sealed_at = d.sealed_at
          FROM trading_guard.audit_seal s WHERE s.batch = d.batch) AS is_the_batch,
       length(decode(signature, 'base64')) AS signature_bytes,
       public_key ~ '^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=]{60}\n-----END PUBLIC KEY-----\n$' AS pem
  FROM trading_guard.audit_digest() d;
SELECT message AS digest, public_key AS pub FROM trading_guard.audit_digest() \gset
SELECT count(DISTINCT public_key) AS public_keys FROM (
    SELECT public_key FROM trading_guard.audit_digest()
    UNION ALL SELECT :'pub') k;

-- verify_audit(digest): the log extends the digest's (this one, and an
-- older one after more batches); a digest whose batch, position or chain
-- is not the log's: 'rewritten'
INSERT INTO seal_t VALUES (13, 130);
SELECT trading_guard.seal_audit() AS sealed;
SELECT ok, problem, batches_checked = (SELECT count(*) FROM trading_guard.audit_seal) AS batches_checked
  FROM trading_guard.verify_audit(digest => :'digest');
-- (a digest copied with its line end, or with the signature after it)
SELECT ok, problem FROM trading_guard.verify_audit(digest => :'digest' || E'\n');
SELECT ok, problem FROM trading_guard.verify_audit(digest => :'digest' || ' signature=AAAA');
SELECT ok, problem FROM trading_guard.verify_audit(digest => (SELECT message FROM trading_guard.audit_digest()));
SELECT ok, problem, first_bad_position - :p0 AS first_bad_position, first_bad_id,
       regexp_replace(detail, 'batch \d+', 'batch N') AS detail
  FROM trading_guard.verify_audit(digest => regexp_replace(:'digest', 'chain=[0-9a-f]{64}', 'chain=' || repeat('0', 64)));
SELECT ok, problem, first_bad_position - :p0 AS first_bad_position
  FROM trading_guard.verify_audit(digest => regexp_replace(:'digest', 'position=\d+', 'position=' || :p0 + 3));
SELECT ok, problem, first_bad_position - :p0 AS first_bad_position, detail
  FROM trading_guard.verify_audit(digest => regexp_replace(:'digest', 'batch=\d+', 'batch=99999999'));
-- a digest that is not one: 22023, never 'rewritten'
SELECT what, seal_try(format('SELECT trading_guard.verify_audit(digest => %L)', d)) AS result
  FROM (VALUES ('empty', ''), ('garbage', 'garbage'),
               ('no fields', 'trading_guard audit digest v1'),
               ('no chain', 'trading_guard audit digest v1 batch=1 position=1'),
               ('batch not a number', regexp_replace(:'digest', 'batch=\d+', 'batch=x')),
               ('batch 0', regexp_replace(:'digest', 'batch=\d+', 'batch=0')),
               ('batch negative', regexp_replace(:'digest', 'batch=\d+', 'batch=-1')),
               ('batch too large', regexp_replace(:'digest', 'batch=\d+', 'batch=99999999999999999999')),
               ('position empty', regexp_replace(:'digest', 'position=\d+', 'position=')),
               ('position with a sign', regexp_replace(:'digest', 'position=\d+', 'position=+1')),
               ('chain not hex', regexp_replace(:'digest', 'chain=[0-9a-f]{64}', 'chain=xyz')),
               ('chain too short', regexp_replace(:'digest', 'chain=([0-9a-f]{63})[0-9a-f]', 'chain=\1')),
               ('chain in capitals', regexp_replace(:'digest', 'chain=[0-9a-f]{64}', 'chain=' || repeat('A', 64))),
               ('version 2', regexp_replace(:'digest', 'v1', 'v2'))) v(what, d);

-- audit_proof(id): the row's canonical bytes, its path to its batch's root
-- and that batch's signed digest; checked here without the server's help
SELECT trading_guard.audit_proof(:first_id + 1) AS proof \gset
SELECT p->>'format' AS format, (p->>'id')::bigint - :first_id AS id,
       (p->>'batch')::bigint - :b0 AS batch, (p->>'position')::bigint - :p0 AS "position",
       p->'leaf_index' AS leaf_index, p->'leaf_count' AS leaf_count,
       jsonb_array_length(p->'path') AS path_length,
       (SELECT string_agg(c->>'name' || ' ' || (c->>'type'), ', ')
          FROM jsonb_array_elements(p->'columns') c) AS columns,
       -- the canonical row starts with id: length 8, then 8 bytes big-endian
       left(p->>'row', 24) = '00000008' || lpad(to_hex((p->>'id')::bigint), 16, '0') AS row_starts_with_id,
       p->>'root' = (SELECT encode(merkle_root, 'hex') FROM trading_guard.audit_seal
                      WHERE batch = (p->>'batch')::bigint) AS root,
       p->'digest'->>'message' ~ ('^trading_guard audit digest v1 batch=' || (p->>'batch') || ' ') AS digest_of_its_batch,
       decode(p->'digest'->>'signature', 'base64') = (SELECT signature FROM trading_guard.audit_seal
                                                       WHERE batch = (p->>'batch')::bigint) AS signature,
       p->'digest'->>'public_key' = :'pub' AS public_key,
       seal_proof_ok(p) AS proof_ok
  FROM (SELECT :'proof'::jsonb AS p) x;
-- every row of the first batch of five rows has a proof that checks, and
-- its leaf is the 8-byte tag stored for it
SELECT (p->>'id')::bigint - :first_id AS id, p->'leaf_index' AS leaf_index, p->'leaf_count' AS leaf_count,
       jsonb_array_length(p->'path') AS path_length, seal_proof_ok(p) AS proof_ok,
       substr(sha256('\x00'::bytea || decode(p->>'row', 'hex')), 1, 8)
         = (SELECT substr(leaf_tags, 8 * (p->>'leaf_index')::int + 1, 8) FROM trading_guard.audit_seal
             WHERE batch = (p->>'batch')::bigint) AS leaf_tag
  FROM (SELECT trading_guard.audit_proof(id) AS p FROM trading_guard.audit_log
         WHERE id >= :first_id AND id < :first_id + 5 ORDER BY id) x;
-- a proof does not check with a byte of the row changed, or at another index
SELECT seal_proof_ok(jsonb_set(:'proof'::jsonb, '{row}',
                               to_jsonb(overlay(:'proof'::jsonb->>'row' PLACING 'ff' FROM 40 FOR 2)))) AS changed_row,
       seal_proof_ok(jsonb_set(:'proof'::jsonb, '{leaf_index}', '0')) AS other_index;
-- not sealed (yet, or at all): TG080
INSERT INTO seal_t VALUES (14, 140);
SELECT max(id) AS unsealed_id FROM trading_guard.audit_log \gset
SELECT seal_try('SELECT trading_guard.audit_proof(' || :unsealed_id || ')') AS unsealed;
SELECT seal_try('SELECT trading_guard.audit_proof(-1)') AS no_such_row;
SELECT trading_guard.audit_proof(NULL) IS NULL AS null_id;
SELECT trading_guard.seal_audit() AS sealed;
SELECT (trading_guard.audit_proof(:unsealed_id)->>'id')::bigint = :unsealed_id AS now_sealed;

-- what sealing catches, each in a transaction rolled back: a sealed row
-- changed after the append-only guard was switched off by DML on pg_trigger
-- (ANALYZE makes this session see the catalog change), a second copy of a
-- sealed row, a forged batch, a row forged with an old transaction's id
BEGIN;
UPDATE pg_trigger SET tgenabled = 'D'
 WHERE tgrelid = 'trading_guard.audit_log'::regclass AND tgname = 'audit_log_append_only';
ANALYZE trading_guard.audit_log;
UPDATE trading_guard.audit_log SET actor = 'forged' WHERE id = :first_id + 2;
SELECT ok, problem, first_bad_position - :p0 AS first_bad_position, first_bad_id - :first_id AS first_bad_id
  FROM trading_guard.verify_audit();
SELECT seal_try('SELECT trading_guard.audit_proof(' || :first_id + 2 || ')') AS proof;
ROLLBACK;
BEGIN;
INSERT INTO trading_guard.audit_log SELECT * FROM trading_guard.audit_log WHERE id = :first_id + 2;
SELECT ok, problem, first_bad_position - :p0 AS first_bad_position, first_bad_id - :first_id AS first_bad_id
  FROM trading_guard.verify_audit();
ROLLBACK;
BEGIN;
INSERT INTO trading_guard.audit_seal
SELECT batch + 1, sealed_at, key_version, first_position + row_count, row_count, snapshot, ids,
       leaf_tags, merkle_root, chain_hash, chain_hash, signature, max_event_time, system_identifier,
       purged_through, layout
  FROM trading_guard.audit_seal ORDER BY batch DESC LIMIT 1;
SELECT ok, problem, first_bad_position = head_position - (SELECT row_count FROM trading_guard.audit_seal
                                                           ORDER BY batch DESC LIMIT 1) + 1 AS at_forged_batch
  FROM trading_guard.verify_audit();
ROLLBACK;
BEGIN;
INSERT INTO trading_guard.audit_log (id, event_time, txid, operation, session_user_name, current_user_name)
SELECT 0, event_time, txid, 'DELETE', 'nobody', 'nobody'
  FROM trading_guard.audit_log WHERE id = :first_id + 2;
SELECT ok, problem, first_bad_position - :p0 AS first_bad_position, first_bad_id
  FROM trading_guard.verify_audit();
SELECT trading_guard.seal_audit() AS forged_row_not_sealed;
ROLLBACK;
SELECT ok FROM trading_guard.verify_audit();

-- audit_seal is append-only like audit_log: TG060 for every role, also
-- under session_replication_role = replica
SELECT stmt, seal_try(stmt) AS result FROM (VALUES
    ('UPDATE trading_guard.audit_seal SET key_version = 2'),
    ('DELETE FROM trading_guard.audit_seal'),
    ('TRUNCATE trading_guard.audit_seal')
) v(stmt);
SET session_replication_role = replica;
SELECT seal_try('DELETE FROM trading_guard.audit_seal') AS as_replica;
RESET session_replication_role;

-- purge_audit() removes the rows of whole sealed batches only, and records
-- the cut; unsealed rows stay, whatever their age
SELECT trading_guard.purge_audit('1 hour') AS purged_nothing;
SELECT new_row->>'rows_removed' AS rows_removed, new_row ? 'cut_batch' AS has_cut
  FROM trading_guard.audit_log WHERE id = (SELECT max(id) FROM trading_guard.audit_log);
SELECT trading_guard.seal_audit() AS sealed;
INSERT INTO seal_t VALUES (15, 150);
SELECT max(id) AS unsealed_id FROM trading_guard.audit_log \gset
SELECT max(batch) AS last_batch, max(first_position + row_count - 1) AS last_position,
       (SELECT encode(chain_hash, 'hex') FROM trading_guard.audit_seal ORDER BY batch DESC LIMIT 1) AS last_chain
  FROM trading_guard.audit_seal \gset
SELECT count(*) AS sealed_rows FROM trading_guard.audit_log WHERE id <> :unsealed_id \gset
SELECT trading_guard.purge_audit('0') = :sealed_rows AS purged_all_sealed;
SELECT id = :unsealed_id AS unsealed_row_kept, operation FROM trading_guard.audit_log ORDER BY id;
SELECT (new_row->>'cut_batch')::bigint = :last_batch AS cut_batch,
       (new_row->>'cut_position')::bigint = :last_position AS cut_position,
       new_row->>'cut_chain' = :'last_chain' AS cut_chain,
       (new_row->>'rows_removed')::bigint > 0 AS removed
  FROM trading_guard.audit_log WHERE operation = 'PURGE';
-- the purged batches still link up; the rows left verify; the PURGE row is
-- sealed like any other
SELECT ok, rows_checked, batches_checked = (SELECT count(*) FROM trading_guard.audit_seal) AS all_batches,
       unsealed_rows
  FROM trading_guard.verify_audit();
SELECT trading_guard.seal_audit() AS sealed;
SELECT ok, rows_checked, unsealed_rows FROM trading_guard.verify_audit();
SELECT ok, rows_checked, batches_checked FROM trading_guard.verify_audit(from_position => :last_position + 1);
-- a sealed row removed without a purge: 'missing'
BEGIN;
UPDATE pg_trigger SET tgenabled = 'D'
 WHERE tgrelid = 'trading_guard.audit_log'::regclass AND tgname = 'audit_log_append_only';
ANALYZE trading_guard.audit_log;
DELETE FROM trading_guard.audit_log WHERE id = :unsealed_id;
SELECT ok, problem, first_bad_position = :last_position + 1 AS first_bad_position,
       first_bad_id = :unsealed_id AS first_bad_id
  FROM trading_guard.verify_audit();
ROLLBACK;

-- privileges: a role without grants may use none of it (42501)
CREATE ROLE regress_seal_nobody;
CREATE ROLE regress_seal_verifier;
SET ROLE regress_seal_nobody;
SELECT stmt, seal_try(stmt) AS result FROM (VALUES
    ('SELECT trading_guard.seal_audit()'),
    ('SELECT trading_guard.verify_audit()'),
    ('SELECT trading_guard.audit_digest()'),
    ('SELECT trading_guard.audit_proof(1)'),
    ('SELECT trading_guard.seal_status()'),
    ('SELECT trading_guard.purge_audit(''1 year'')'),
    ('SELECT * FROM trading_guard.seal_status'),
    ('SELECT * FROM trading_guard.audit_seal'),
    ('INSERT INTO trading_guard.audit_seal SELECT * FROM trading_guard.audit_seal')
) v(stmt);
RESET ROLE;
-- a verifier: EXECUTE on verify_audit is enough (it reads the log as the
-- extension's owner and returns only the verdict); the rows, the chain and
-- proofs stay out of its reach.  seal_status needs SELECT on the view and
-- EXECUTE on the function under it.
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT EXECUTE ON FUNCTION trading_guard.verify_audit(bigint, text) TO regress_seal_verifier;
GRANT EXECUTE ON FUNCTION trading_guard.audit_digest() TO regress_seal_verifier;
GRANT EXECUTE ON FUNCTION trading_guard.audit_proof(bigint) TO regress_seal_verifier;
GRANT SELECT ON trading_guard.seal_status TO regress_seal_verifier;
COMMIT;
SET ROLE regress_seal_verifier;
SELECT ok, problem, unsealed_rows FROM trading_guard.verify_audit();
SELECT ok, problem FROM trading_guard.verify_audit(digest => (SELECT message FROM trading_guard.audit_digest()));
SELECT stmt, seal_try(stmt) AS result FROM (VALUES
    ('SELECT * FROM trading_guard.audit_log'),
    ('SELECT * FROM trading_guard.audit_seal'),
    ('SELECT trading_guard.audit_proof(1)'),
    ('SELECT * FROM trading_guard.seal_status'),
    ('SELECT trading_guard.seal_audit()')
) v(stmt);
RESET ROLE;
BEGIN;
SET LOCAL trading_guard.maintenance = on;
GRANT EXECUTE ON FUNCTION trading_guard.seal_status() TO regress_seal_verifier;
COMMIT;
SET ROLE regress_seal_verifier;
SELECT backlog_rows, key_ring_loaded FROM trading_guard.seal_status;
RESET ROLE;
-- the grants are on record
SELECT operation, new_row->>'command_tag' AS tag, new_row->>'object_identity' AS object
  FROM trading_guard.audit_log
 WHERE operation = 'DDL' AND new_row->>'command_tag' = 'GRANT' ORDER BY id;

-- a database whose trail was never sealed: nothing to digest or prove
CREATE DATABASE tg_seal_empty;
\c tg_seal_empty
SET client_min_messages = warning;
CREATE EXTENSION trading_guard;
RESET client_min_messages;
CREATE TABLE t (id int PRIMARY KEY);
SELECT trading_guard.enable_audit('t');
INSERT INTO t VALUES (1);
SELECT rows_sealed, last_batch, last_sealed_at, key_version, backlog_rows, oldest_unsealed IS NOT NULL AS oldest
  FROM trading_guard.seal_status;
SELECT ok, rows_checked, batches_checked, head_position, unsealed_rows FROM trading_guard.verify_audit();
SELECT * FROM trading_guard.audit_digest();
SELECT trading_guard.audit_proof(1);
\set VERBOSITY sqlstate
SELECT * FROM trading_guard.audit_digest();
SELECT trading_guard.audit_proof(1);
\set VERBOSITY default
SELECT trading_guard.seal_audit() AS sealed;
SELECT batch, first_position, row_count FROM trading_guard.audit_seal;
SELECT ok, rows_checked, batches_checked, head_position, unsealed_rows FROM trading_guard.verify_audit();
\c :regress_db
DROP DATABASE tg_seal_empty;

BEGIN;
SET LOCAL trading_guard.maintenance = on;
REVOKE ALL ON FUNCTION trading_guard.verify_audit(bigint, text) FROM regress_seal_verifier;
REVOKE ALL ON FUNCTION trading_guard.audit_digest() FROM regress_seal_verifier;
REVOKE ALL ON FUNCTION trading_guard.audit_proof(bigint) FROM regress_seal_verifier;
REVOKE ALL ON FUNCTION trading_guard.seal_status() FROM regress_seal_verifier;
REVOKE ALL ON trading_guard.seal_status FROM regress_seal_verifier;
COMMIT;
DROP ROLE regress_seal_nobody;
DROP ROLE regress_seal_verifier;
DROP TABLE seal_t;
DROP FUNCTION seal_try(text);
DROP FUNCTION seal_proof_ok(jsonb);
