# test/t/011_seal_tamper.pl — sealing of the audit trail catches every kind
# of tampering that gets past the log's guards, and survives what a
# production server goes through (src/seal.c, src/seal_verify.c).
#
#   b. the heap file of audit_log edited on a stopped server: one byte of a
#      sealed row flipped (changed), one tuple's line pointer cleared
#      (missing), each naming its row
#   a. a superuser in maintenance mode, with the DDL event trigger and the
#      append-only trigger switched off: a column of a sealed row updated
#      (changed), a sealed row deleted (missing), forged back-dated rows
#      with an old txid and an id after every batch, in a gap between the
#      batches' ids, or repeating a sealed id (inserted), two rows swapped
#      by id across batches and by content within a batch (changed); and
#      plain DML on pg_catalog.pg_trigger that switches the append-only
#      guard off, then a DELETE (missing)
#   c. a complete rewrite by a key holder (rows changed, audit_seal emptied,
#      everything sealed again): verify_audit() alone says ok -- expected,
#      the key makes a consistent chain -- and verify_audit(digest => an
#      older signed digest) says 'rewritten'
#   f. key rotation: new batches use the new version, rekey() keeps the
#      chain verifiable, a removed version is reported as 'missing key
#      version' at the first position of its first batch, not as tampering
#   e. a long-running transaction's rows are sealed once it commits, while
#      everyone else's are sealed meanwhile; rolled-back rows never appear
#   g. purge_audit removes only whole sealed batches, keeps unsealed rows,
#      is itself sealed, and a row deleted from a batch it kept is missing;
#      a forged PURGE row, sealed or not, hides no deleted row (the cut
#      verify_audit() trusts is chained by purge_audit() itself)
#   h. a streaming standby verifies the primary's chain, reports the same
#      first bad row after tampering on the primary, refuses to seal (25006)
#   d. SIGKILL of the sealer worker (the postmaster's crash restart), then
#      of every server process (the postmaster frozen first, as in TAP 003:
#      killing it alone lets its children run on and a new one refuses to
#      start while they hold the shared memory), under a write load with
#      the worker sealing every 50 ms: after the restart every committed
#      audit row is sealed and the chain verifies
#
# After each tampering the clean state is put back (the data file, or the
# log and the chain copied aside) and verify_audit() must say ok again, so
# each case has its own first bad row.  Expected positions are computed
# here from audit_seal's id ranges, not taken from verify_audit().
#
# One cluster (streaming allowed) for the whole file, preloaded, with a key
# ring made at run time in a 0600 file outside the data directory;
# trading_guard.seal_interval = 0 (the worker idles, seal_audit() seals)
# except in d.  Waits are for conditions (poll_query_until), never sleeps.

use strict;
use warnings;

use File::Copy;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# The key ring must come only from what this test configures.
delete $ENV{TRADING_GUARD_MASTER_KEY};

my $keydir = PostgreSQL::Test::Utils::tempdir('keys');
my $scriptdir = PostgreSQL::Test::Utils::tempdir('scripts');
my $savedir = PostgreSQL::Test::Utils::tempdir('saved');

sub random_hex
{
	my ($n) = @_;
	open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
	my $got = read($fh, my $b, $n);
	die "short read from /dev/urandom" unless defined $got && $got == $n;
	close $fh;
	return unpack('H*', $b);
}

my %KEY = (1 => random_hex(32), 2 => random_hex(32));
my $ring = "$keydir/ring.keys";

# Write the ring file with the given key versions (mode 0600).
sub write_ring
{
	my (@versions) = @_;
	unlink $ring;
	open my $fh, '>', $ring or die "$ring: $!";
	print $fh "# trading_guard key ring (test)\n";
	print $fh "$_ $KEY{$_}\n" foreach @versions;
	close $fh;
	chmod 0600, $ring or die "chmod $ring: $!";
	return;
}
write_ring(1);

my $node = PostgreSQL::Test::Cluster->new('seal');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'trading_guard'
trading_guard.key_file = '$ring'
trading_guard.events_database = 'tg_events'
trading_guard.seal_interval = 0
restart_after_crash = on
log_line_prefix = '%m [%p] %e %q%a '
});
$node->start;
# The security events (this test's own logins) go to a database without the
# extension, where they wait: the audit rows this test counts are its own.
$node->safe_psql('postgres', 'CREATE DATABASE tg_events');

is($node->safe_psql('postgres', 'SHOW data_checksums'), 'off',
	'data checksums are off (the heap edits of part b do not need to fix them)');

sub sql { return $node->safe_psql('postgres', $_[0]); }

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

# verify_audit(args) on node n as "ok|problem|first_bad_position|first_bad_id"
# (empty for NULL), and its detail.
sub verify
{
	my ($n, $args) = @_;
	$args //= '';
	my $r = $n->safe_psql('postgres', qq{
		SELECT ok, coalesce(problem, ''), coalesce(first_bad_position::text, ''),
		       coalesce(first_bad_id::text, ''), unsealed_rows,
		       coalesce(detail, '')
		  FROM trading_guard.verify_audit($args)});
	my @f = split /\|/, $r, 6;
	return (join('|', @f[0 .. 3]), $f[5], $f[4]);
}

sub verify_is
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($expect, $name, %o) = @_;
	my ($got, $detail) = verify($o{node} // $node, $o{args});
	is($got, $expect, $name) or diag("detail: $detail");
	return $detail;
}

sub verify_ok
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($name, %o) = @_;
	return verify_is('t|||', $name, %o);
}

# id => position of every sealed id, from audit_seal's ranges (batch order,
# ids ascending within a batch), and id => batch.
sub positions
{
	my (%pos, %batch);
	foreach my $line (split /\n/, sql(q{
		SELECT batch, first_position, ids::text FROM trading_guard.audit_seal ORDER BY batch}))
	{
		my ($b, $p, $ids) = split /\|/, $line;
		while ($ids =~ /\[(\d+),(\d+)\)/g)
		{
			foreach my $id ($1 .. $2 - 1)
			{
				$batch{$id} = $b;
				$pos{$id} = $p++;
			}
		}
	}
	return (\%pos, \%batch);
}

# first_position of batch b
sub batch_start { return sql("SELECT first_position FROM trading_guard.audit_seal WHERE batch = $_[0]"); }

# The audit row id of the INSERT of trade $tid (trades.id)
sub insert_row_of
{
	my ($tid) = @_;
	return sql(qq{SELECT id FROM trading_guard.audit_log
		WHERE table_name = 'trades' AND operation = 'INSERT' AND row_key = '{"id": $tid}'});
}

# Run SQL as a superuser who switches off the log's guards: maintenance
# mode, the DDL event trigger (which would record, and so refuse, the
# ALTER TABLE below), the append-only trigger of audit_log (and of
# audit_seal with seal => 1).  Everything is switched back on and
# committed.
sub tamper
{
	my ($sql, %o) = @_;
	my ($off, $on) = ('', '');
	if ($o{seal})
	{
		$off = 'ALTER TABLE trading_guard.audit_seal DISABLE TRIGGER audit_seal_append_only;';
		$on = 'ALTER TABLE trading_guard.audit_seal ENABLE ALWAYS TRIGGER audit_seal_append_only;';
	}
	($o{node} // $node)->safe_psql('postgres', qq{
		BEGIN;
		SET LOCAL trading_guard.maintenance = on;
		ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
		ALTER TABLE trading_guard.audit_log DISABLE TRIGGER audit_log_append_only;
		$off
		$sql;
		$on
		ALTER TABLE trading_guard.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
		ALTER EVENT TRIGGER trading_guard_audit_ddl ENABLE ALWAYS;
		COMMIT;});
	return;
}

# The clean state: the log and the chain copied aside, put back after each
# tampering (then verify_audit() must say ok again).
sub save_clean
{
	sql(q{
		DROP TABLE IF EXISTS saved_log, saved_seal;
		CREATE TABLE saved_log AS SELECT * FROM trading_guard.audit_log;
		CREATE TABLE saved_seal AS SELECT * FROM trading_guard.audit_seal;});
	return;
}

sub restore_clean
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($name) = @_;
	tamper(q{
		DELETE FROM trading_guard.audit_log;
		INSERT INTO trading_guard.audit_log SELECT * FROM saved_log;
		DELETE FROM trading_guard.audit_seal;
		INSERT INTO trading_guard.audit_seal SELECT * FROM saved_seal},
		seal => 1);
	verify_ok("clean state put back after $name: ok");
	return;
}

# A forged copy of audit row $from with the fields of $json replaced
sub forge_sql
{
	my ($from, $json) = @_;
	return qq{INSERT INTO trading_guard.audit_log
		SELECT r.* FROM trading_guard.audit_log a,
		       jsonb_populate_record(NULL::trading_guard.audit_log, to_jsonb(a) || '$json') r
		 WHERE a.id = $from};
}

# ---------------------------------------------------------------------------
# The audited table, three sealed batches
# ---------------------------------------------------------------------------

my $MARK_FLIP = 'flipme' . random_hex(8);
my $MARK_GONE = 'goneme' . random_hex(8);

# Each safe_psql is a new backend, which draws a new block of 1024 audit
# ids: the batches' ids have gaps between them.
sql(q{
	CREATE EXTENSION trading_guard;
	CREATE TABLE trades (id bigint PRIMARY KEY, qty numeric, note text);
	SELECT trading_guard.enable_audit('trades');
	INSERT INTO trades SELECT g, g, 'first ' || g FROM generate_series(1, 5) g;
	UPDATE trades SET qty = 20 WHERE id = 2;
});
is(sql('SELECT trading_guard.seal_audit()'), '7', 'batch 1: AUDIT ENABLE, 5 inserts, 1 update');
my $digest1 = sql('SELECT message FROM trading_guard.audit_digest()');
sql(q{INSERT INTO trades SELECT g, g, 'second ' || g FROM generate_series(6, 10) g;
	DELETE FROM trades WHERE id = 1;});
is(sql('SELECT trading_guard.seal_audit()'), '6', 'batch 2: 5 inserts, 1 delete');
sql(qq{INSERT INTO trades VALUES (11, 11, '$MARK_FLIP'), (12, 12, 'third 12'), (13, 13, '$MARK_GONE');
	UPDATE trades SET qty = 30 WHERE id = 7;});
is(sql('SELECT trading_guard.seal_audit()'), '4', 'batch 3: 3 inserts, 1 update');
is(sql('SELECT trading_guard.seal_audit()'), '0', 'nothing left to seal: no batch');
is(sql('SELECT count(*) FROM trading_guard.audit_seal'), '3', 'three batches');
is(sql('SELECT key_version FROM trading_guard.audit_seal WHERE batch = 3'), '1', 'sealed with key version 1');
verify_ok('the sealed log verifies');
is(sql('SELECT rows_checked || \'/\' || batches_checked || \'/\' || head_position || \'/\' || unsealed_rows
		FROM trading_guard.verify_audit()'), '17/3/17/0',
	'17 rows, 3 batches checked, head at 17, nothing unsealed');
is(sql('SELECT backlog_rows FROM trading_guard.seal_status'), '0', 'seal_status: no backlog');

my ($pos, $bat) = positions();
is(scalar(keys %$pos), 17, 'audit_seal\'s ranges name 17 ids');

# ---------------------------------------------------------------------------
# b. The heap file of audit_log edited on a stopped server
# ---------------------------------------------------------------------------

my $flip_id = insert_row_of(11);
my $gone_id = insert_row_of(13);
my $heap = $node->data_dir . '/'
  . sql(q{SELECT pg_relation_filepath('trading_guard.audit_log')});
$node->stop;
copy($heap, "$savedir/audit_log.heap") or die "copy $heap: $!";

# The file's bytes, and the one offset of marker $m in them.
sub read_heap
{
	open my $fh, '<:raw', $heap or die "$heap: $!";
	local $/;
	my $data = <$fh>;
	close $fh;
	return $data;
}

sub write_heap
{
	my ($data) = @_;
	open my $fh, '+<:raw', $heap or die "$heap: $!";
	print $fh $data;
	close $fh;
	return;
}

sub marker_offset
{
	my ($data, $m) = @_;
	my @at;
	my $i = -1;
	push @at, $i while ($i = index($data, $m, $i + 1)) >= 0;
	is(scalar @at, 1, "marker $m is in the heap file once") or die;
	return $at[0];
}

# b1: flip one byte of the sealed row holding $MARK_FLIP
{
	my $data = read_heap();
	my $at = marker_offset($data, $MARK_FLIP) + 3;
	substr($data, $at, 1) = chr(ord(substr($data, $at, 1)) ^ 0x01);
	write_heap($data);
}
$node->start;
verify_is("f|changed|$pos->{$flip_id}|$flip_id",
	'b. one byte of a sealed row flipped in the heap file: changed, naming that row');
$node->stop;

# b2: the tuple holding $MARK_GONE disappears: its line pointer is cleared
# (LP_UNUSED), so scans skip it even on an all-visible page
{
	copy("$savedir/audit_log.heap", $heap) or die "copy back: $!";
	my $data = read_heap();
	my $at = marker_offset($data, $MARK_GONE);
	my $page = int($at / 8192) * 8192;
	my $lower = unpack('v', substr($data, $page + 12, 2));
	my $found = 0;
	for (my $lp = $page + 24; $lp < $page + $lower; $lp += 4)
	{
		my $w = unpack('V', substr($data, $lp, 4));
		my ($off, $flags, $len) = ($w & 0x7fff, ($w >> 15) & 3, $w >> 17);
		next unless $flags == 1 && $page + $off <= $at && $at < $page + $off + $len;
		substr($data, $lp, 4) = pack('V', 0);
		$found++;
	}
	is($found, 1, 'the line pointer of the marked tuple was found and cleared');
	write_heap($data);
}
$node->start;
verify_is("f|missing|$pos->{$gone_id}|$gone_id",
	'b. a tuple removed from the heap file: missing, naming that row');
$node->stop;
copy("$savedir/audit_log.heap", $heap) or die "copy back: $!";
$node->start;
verify_ok('b. the original heap file put back: ok');

# ---------------------------------------------------------------------------
# a. A superuser in maintenance mode
# ---------------------------------------------------------------------------

save_clean();

# a1. one column of one sealed row
my $id7 = insert_row_of(7);
tamper("UPDATE trading_guard.audit_log SET actor = 'mallory' WHERE id = $id7");
verify_is("f|changed|$pos->{$id7}|$id7", 'a. UPDATE of one column of a sealed row: changed');
restore_clean('the UPDATE');

# a2. a sealed row deleted
my $id8 = insert_row_of(8);
tamper("DELETE FROM trading_guard.audit_log WHERE id = $id8");
verify_is("f|missing|$pos->{$id8}|$id8", 'a. DELETE of a sealed row: missing');
restore_clean('the DELETE');

# a3. forged back-dated rows with the txid of a sealed transaction
my $id12 = insert_row_of(12);    # batch 3
my $id6 = insert_row_of(6);      # batch 2
my $forged = 900000;
tamper(forge_sql($id6,
	qq({"id": $forged, "event_time": "2020-01-02T03:04:05Z", "operation": "DELETE"})));
verify_is('f|inserted|' . batch_start(2) . "|$forged",
	'a. a forged row with an old txid and an id after every batch: inserted, at the batch that sealed its transaction');
restore_clean('the forged row after the batches');

my $gap = 500;                  # between batch 1's ids (1..) and batch 2's
ok(!exists $pos->{$gap} && $gap > (sort { $a <=> $b } keys %$pos)[0]
	  && $gap < $id6, "id $gap lies between the batches' ids, in none of them");
tamper(forge_sql($id12,
	qq({"id": $gap, "event_time": "2020-01-02T03:04:05Z", "operation": "DELETE"})));
verify_is('f|inserted|' . batch_start(3) . "|$gap",
	'a. a forged row with an old txid and an id in a gap between sealed ids: inserted');
restore_clean('the forged row in a gap');

tamper(forge_sql($id6, qq({"event_time": "2020-01-02T03:04:05Z", "actor": "forged"})));
verify_is("f|inserted|$pos->{$id6}|$id6",
	'a. a forged second row repeating a sealed id: inserted, at that id');
restore_clean('the forged repeat of an id');

# a4. two rows swapped: by id across batches, by content within a batch
my $id3 = insert_row_of(3);    # batch 1
tamper("UPDATE trading_guard.audit_log SET id = CASE id WHEN $id3 THEN $id8 ELSE $id3 END
		 WHERE id IN ($id3, $id8)");
verify_is("f|changed|$pos->{$id3}|$id3",
	'a. two rows of different batches swapped (ids exchanged): changed at the first');
restore_clean('the swap by id');

my $id9 = insert_row_of(9);
tamper("UPDATE trading_guard.audit_log a SET new_row = s.new_row, row_key = s.row_key
		  FROM saved_log s
		 WHERE (a.id, s.id) IN (($id7, $id9), ($id9, $id7))");
my ($first_of_79) = sort { $a <=> $b } ($pos->{$id7}, $pos->{$id9});
my %id_at = reverse %$pos;
verify_is("f|changed|$first_of_79|$id_at{$first_of_79}",
	'a. the contents of two rows of one batch swapped: changed at the first');
restore_clean('the swap of contents');

# a5. plain DML on pg_catalog.pg_trigger switches the guard off (no
# maintenance mode, no DDL), then a DELETE
my $id10 = insert_row_of(10);
sql(qq{
	UPDATE pg_catalog.pg_trigger SET tgenabled = 'D'
	 WHERE tgname = 'audit_log_append_only' AND tgrelid = 'trading_guard.audit_log'::regclass;
	DELETE FROM trading_guard.audit_log WHERE id = $id10;
	UPDATE pg_catalog.pg_trigger SET tgenabled = 'A'
	 WHERE tgname = 'audit_log_append_only' AND tgrelid = 'trading_guard.audit_log'::regclass;});
verify_is("f|missing|$pos->{$id10}|$id10",
	'a. append-only trigger disabled by DML on pg_trigger, then a DELETE: missing');
restore_clean('the DML on pg_trigger');

# ---------------------------------------------------------------------------
# c. A complete rewrite by someone who holds the key
# ---------------------------------------------------------------------------

my ($old_msg, $old_pos) = split /\|/, sql('SELECT message, position FROM trading_guard.audit_digest()');
like($old_msg, qr/^trading_guard audit digest v1 batch=3 position=17 /, 'the digest kept before the rewrite');
verify_ok('the log verifies against its own current digest', args => "digest => '$old_msg'");

tamper("UPDATE trading_guard.audit_log SET actor = 'rewritten' WHERE id = $id7;
		DELETE FROM trading_guard.audit_seal", seal => 1);
is(sql('SELECT trading_guard.seal_audit()'), '17', 'the rewriter seals every row again');
verify_ok('c. after a rewrite with the key, verify_audit() alone says ok: '
	  . 'expected, the key makes a consistent chain (that is what digests are for)');
isnt(sql('SELECT message FROM trading_guard.audit_digest()'), $old_msg, 'the new head differs from the old digest');
verify_is("f|rewritten|$old_pos|",
	'c. verify_audit(digest => the older digest): rewritten, at the digest\'s position',
	args => "digest => '$old_msg'");
verify_is('f|rewritten|1|',
	'c. verify_audit(digest => the digest of batch 1): rewritten, at batch 1',
	args => "digest => '$digest1'");
restore_clean('the rewrite');
verify_ok('the restored log verifies against the digest of batch 1', args => "digest => '$digest1'");
verify_ok('the restored log verifies against the old digest', args => "digest => '$old_msg'");

# ---------------------------------------------------------------------------
# f. Key rotation, rekey, a missing key version
# ---------------------------------------------------------------------------

# Reload the ring file and wait until key_ring_status shows it.
sub reload_ring
{
	my ($versions, $newest) = @_;
	$node->reload;
	$node->poll_query_until('postgres', qq{
		SELECT loaded AND versions = $versions AND newest = $newest AND last_error IS NULL
		  FROM trading_guard.key_ring_status()})
	  or die "the key ring did not reach $versions versions, newest $newest";
	return;
}

sql(q{SELECT trading_guard.store_credential('binance', 'main', md5(random()::text), md5(random()::text))});
is(sql('SELECT trading_guard.seal_audit()'), '1', 'batch 4: the vault\'s row, key version 1');
write_ring(1, 2);
reload_ring(2, 2);
sql(q{INSERT INTO trades VALUES (14, 14, 'after rotation')});
is(sql('SELECT trading_guard.seal_audit()'), '1', 'batch 5 sealed after the rotation');
is(sql('SELECT key_version FROM trading_guard.audit_seal ORDER BY batch DESC LIMIT 1'), '2',
	'f. the new batch records key version 2');
is(sql('SELECT key_version FROM trading_guard.seal_status'), '2', 'seal_status shows key version 2');
verify_ok('f. the chain of versions 1 and 2 verifies');
is(sql('SELECT rekeyed || \'/\' || remaining FROM trading_guard.rekey()'), '1/0', 'rekey() re-encrypts the credential');
sql('SELECT trading_guard.seal_audit()');
verify_ok('f. after rekey() (and its rows sealed): ok');
is(sql('SELECT count(*) FROM trading_guard.verify_audit() WHERE unsealed_rows = 0'), '1', 'nothing unsealed');

write_ring(2);
reload_ring(1, 2);
my $detail = verify_is('f|missing key version|1|',
	'f. version 1 removed from the ring: missing key version at the first position of the first batch');
like($detail, qr/key version 1\b/, 'the detail names key version 1');
write_ring(1, 2);
reload_ring(2, 2);
verify_ok('f. version 1 back in the ring: ok');
($pos, $bat) = positions();
save_clean();

# ---------------------------------------------------------------------------
# e. A long-running transaction; rollbacks
# ---------------------------------------------------------------------------

my $long = $node->background_psql('postgres');
$long->query_safe(q{BEGIN; INSERT INTO trades VALUES (100, 1, 'long'), (101, 1, 'long')});
my $long_xid = $long->query_safe('SELECT pg_current_xact_id()');
chomp $long_xid;

sql(q{INSERT INTO trades VALUES (102, 1, 'short')});
sql(q{BEGIN; INSERT INTO trades VALUES (103, 1, 'rolled back'); ROLLBACK;});
is(sql('SELECT backlog_rows FROM trading_guard.seal_status'), '1',
	'e. backlog: the committed short transaction only (the open one is not visible)');
is(sql('SELECT trading_guard.seal_audit()'), '1', 'e. the short transaction is sealed while the long one is open');
like(sql('SELECT snapshot::text FROM trading_guard.audit_seal ORDER BY batch DESC LIMIT 1'),
	qr/^\d+:\d+:(?:\d+,)*$long_xid(?:,|$)/, 'the batch\'s snapshot lists the open transaction as in progress');
verify_ok('e. ok while the long transaction is open');
sql(q{INSERT INTO trades VALUES (104, 1, 'short 2')});
is(sql('SELECT trading_guard.seal_audit()'), '1', 'e. and the next short one too');

$long->query_safe('COMMIT');
$long->quit;
is(sql('SELECT backlog_rows FROM trading_guard.seal_status'), '2',
	'e. once committed, the long transaction\'s two rows are the backlog');
is(sql('SELECT trading_guard.seal_audit()'), '2', 'e. the next seal_audit() seals them');
is(sql(qq{SELECT count(*) FROM trading_guard.audit_log a
	 WHERE a.txid = '$long_xid' AND EXISTS (SELECT 1 FROM trading_guard.audit_seal s
	                                         WHERE s.ids @> a.id)}), '2',
	'e. both rows of the long transaction are in a batch');
is(sql(q{SELECT count(*) FROM trading_guard.audit_log WHERE row_key = '{"id": 103}'}), '0',
	'e. the rolled-back transaction left no audit row');
verify_ok('e. ok after the long transaction is sealed');
is(sql('SELECT backlog_rows FROM trading_guard.seal_status'), '0', 'e. no backlog');

# ---------------------------------------------------------------------------
# g. Purge
# ---------------------------------------------------------------------------

# The purge's cutoff is its transaction's start: a batch sealed after that
# is too new to purge, without faking time.
my $purger = $node->background_psql('postgres');
$purger->query_safe('BEGIN; SELECT now()');
sql(q{INSERT INTO trades VALUES (200, 1, 'kept batch'), (201, 1, 'kept batch')});
is(sql('SELECT trading_guard.seal_audit()'), '2', 'g. a batch sealed after the purge began');
my $kept_batch = sql('SELECT max(batch) FROM trading_guard.audit_seal');
sql(q{INSERT INTO trades VALUES (202, 1, 'unsealed')});
my $unsealed_id = insert_row_of(202);
my $rows_before = sql('SELECT count(*) FROM trading_guard.audit_log');
my $removed = $purger->query_safe(q{SELECT trading_guard.purge_audit('0 seconds')});
$purger->query_safe('COMMIT');
$purger->quit;
chomp $removed;
ok($removed > 0 && $removed == $rows_before - 3, "g. purge removed the $removed rows of every batch but the newest")
  or diag("rows before $rows_before, removed $removed");
is(sql(qq{SELECT count(*) FROM trading_guard.audit_log WHERE id = $unsealed_id}), '1', 'g. the unsealed row remains');
is(sql(qq{SELECT count(*) FROM trading_guard.audit_log a JOIN trading_guard.audit_seal s ON s.ids @> a.id
	 WHERE s.batch = $kept_batch}), '2', 'g. the rows of the batch sealed after the cutoff remain');
my $purge_id = sql(q{SELECT id FROM trading_guard.audit_log WHERE operation = 'PURGE'});
is(sql(qq{SELECT (new_row->>'cut_batch')::int FROM trading_guard.audit_log WHERE id = $purge_id}),
	$kept_batch - 1, 'g. the PURGE row records the cut at the batch before');
verify_ok('g. ok after the purge');
is(sql('SELECT trading_guard.seal_audit()'), '2', 'g. the next seal_audit() seals the unsealed row and the PURGE row');
is(sql(qq{SELECT count(*) FROM trading_guard.audit_seal WHERE ids @> ${purge_id}::bigint}), '1',
	'g. the PURGE row is sealed');
verify_ok('g. ok with the PURGE row sealed');
($pos, $bat) = positions();
save_clean();

my $kept_id = insert_row_of(200);
tamper("DELETE FROM trading_guard.audit_log WHERE id = $kept_id");
verify_is("f|missing|$pos->{$kept_id}|$kept_id", 'g. a row deleted from a batch the purge kept: missing');
restore_clean('the DELETE after the purge');

# A forged, unsealed PURGE row whose cut covers the batch of a deleted row.
# Its txid is one no snapshot has seen yet, so it is not "inserted".
tamper("DELETE FROM trading_guard.audit_log WHERE id = $kept_id; "
	  . forge_sql($purge_id,
		qq({"id": 900001, "txid": "4000000000", "new_row": {"cut_batch": 1000}})));
verify_is("f|missing|$pos->{$kept_id}|$kept_id",
	'g. a sealed row deleted and hidden behind a forged unsealed PURGE row: missing');
restore_clean('the forged unsealed PURGE row');

# The same with a forged PURGE row that the sealer then seals like any row:
# the cut verify_audit() trusts is the one purge_audit() chained, not a row.
tamper("DELETE FROM trading_guard.audit_log WHERE id = $kept_id; "
	  . qq{INSERT INTO trading_guard.audit_log
		SELECT r.* FROM trading_guard.audit_log a,
		       jsonb_populate_record(NULL::trading_guard.audit_log, to_jsonb(a)
		         || jsonb_build_object('id', 900002, 'txid', pg_current_xact_id()::text,
		                               'new_row', '{"cut_batch": 1000}'::jsonb)) r
		 WHERE a.id = $purge_id});
is(sql('SELECT trading_guard.seal_audit()'), '1', 'g. the forged PURGE row, with the txid of its transaction, is sealed');
verify_is("f|missing|$pos->{$kept_id}|$kept_id",
	'g. a sealed row deleted and hidden behind a forged PURGE row that got sealed: missing');
restore_clean('the forged PURGE row');

# ---------------------------------------------------------------------------
# h. A streaming standby
# ---------------------------------------------------------------------------

$node->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'base', has_streaming => 1);
$standby->start;
sql(q{INSERT INTO trades VALUES (300, 1, 'for the standby')});
sql('SELECT trading_guard.seal_audit()');
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'h. the standby is in recovery');
is($standby->safe_psql('postgres', 'SELECT rows_checked || \'/\' || head_position FROM trading_guard.verify_audit()'),
	sql('SELECT rows_checked || \'/\' || head_position FROM trading_guard.verify_audit()'),
	'h. the standby checks as many rows as the primary, up to the same head');
verify_ok('h. verify_audit() on the standby: ok', node => $standby);
($pos, $bat) = positions();
save_clean();

my $id300 = insert_row_of(300);
tamper("UPDATE trading_guard.audit_log SET actor = 'mallory' WHERE id = $id300");
$node->wait_for_catchup($standby);
verify_is("f|changed|$pos->{$id300}|$id300", 'h. tampered on the primary: the primary names the row');
verify_is("f|changed|$pos->{$id300}|$id300", 'h. and the standby names the same first bad row', node => $standby);
{
	my ($ret, $out, $err) = ('', '', '');
	$ret = $standby->psql('postgres', 'SELECT trading_guard.seal_audit()',
		stdout => \$out, stderr => \$err, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:  25006: cannot seal the audit log on a standby/,
		'h. seal_audit() on the standby: 25006');
}
restore_clean('the tampering seen by the standby');
$node->wait_for_catchup($standby);
verify_ok('h. the standby: ok again', node => $standby);
$standby->stop;

# ---------------------------------------------------------------------------
# d. Crashes while the worker seals under a write load
# ---------------------------------------------------------------------------

sql(q{
	CREATE TABLE load (id bigserial PRIMARY KEY, client int, note text);
	SELECT trading_guard.enable_audit('load');
});
$node->append_conf('postgresql.conf', "trading_guard.seal_interval = '50ms'\n");
$node->reload;
$node->poll_query_until('postgres',
	q{SELECT worker_last_round IS NOT NULL AND backlog_rows = 0 FROM trading_guard.seal_status})
  or die 'the sealer did not start sealing';

my $script = "$scriptdir/load.sql";
open my $fh, '>', $script or die "$script: $!";
print $fh "INSERT INTO load (client, note) SELECT :client_id, 'row ' || g FROM generate_series(1, 5) g;\n";
close $fh;

sub start_load
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			$node->installed_command('pgbench'), '-n', '-c', '2', '-j', '1',
			'-T', $PostgreSQL::Test::Utils::timeout_default, '-f', $script,
			'-h', $node->host, '-p', $node->port, 'postgres'
		],
		'>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return $h;
}

# Wait until the worker has sealed $n more batches of the load.
sub wait_batches
{
	my ($n) = @_;
	my $b = sql('SELECT coalesce(max(batch), 0) FROM trading_guard.audit_seal');
	$node->poll_query_until('postgres', qq{
		SELECT count(*) >= $n FROM trading_guard.audit_seal s
		 WHERE s.batch > $b AND EXISTS (SELECT 1 FROM trading_guard.audit_log a
		                                 WHERE a.table_name = 'load' AND s.ids @> a.id)})
	  or die "the worker did not seal $n batches of the load";
	return;
}

# After a crash: seal, no backlog, ok, every committed row sealed.
sub check_after_crash
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($what) = @_;
	sql('SELECT trading_guard.seal_audit()');
	is(sql('SELECT backlog_rows FROM trading_guard.seal_status'), '0', "d. $what: no backlog after seal_audit()");
	verify_ok("d. $what: the chain verifies");
	my $loaded = sql('SELECT count(*) FROM load');
	cmp_ok($loaded, '>', 0, "d. $what: the load committed rows");
	is(sql(q{SELECT count(*) FROM trading_guard.audit_log WHERE table_name = 'load' AND operation = 'INSERT'}),
		$loaded, "d. $what: one audit row per committed row");
	is(sql(q{SELECT count(*) FROM trading_guard.audit_log a
		 WHERE NOT EXISTS (SELECT 1 FROM trading_guard.audit_seal s WHERE s.ids @> a.id)}),
		'0', "d. $what: every audit row is in a batch");
	return;
}

# d1. SIGKILL of the sealer worker: the postmaster restarts every process
my $load = start_load();
wait_batches(3);
my $worker = sql('SELECT worker_pid FROM trading_guard.seal_status');
ok($worker > 0, 'd. the sealer worker runs') or die;
is(kill('KILL', $worker), 1, 'd. SIGKILL to the sealer worker');
$load->finish;
$node->poll_query_until('postgres', qq{
	SELECT worker_pid IS NOT NULL AND worker_pid <> $worker AND worker_last_round IS NOT NULL
	  FROM trading_guard.seal_status})
  or die 'the sealer worker did not come back';
check_after_crash('sealer killed');

# d2. SIGKILL of every server process (freeze the postmaster, kill its
# children, then it: killing the postmaster alone lets them finish)
$load = start_load();
wait_batches(3);
my $pm = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
kill('STOP', $pm) or die "could not stop the postmaster ($pm): $!";
my @children;
foreach my $stat (glob '/proc/[0-9]*/stat')
{
	my $line = eval { slurp_file($stat) } // next;
	my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S+ (\d+) /s or next;
	push @children, $pid if $ppid == $pm;
}
is(kill('KILL', @children), scalar @children, 'd. SIGKILL to every server process');
$node->kill9;
my $reaped = 0;
foreach (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
{
	last if $reaped = !grep { kill(0, $_) } $pm, @children;
	usleep(100_000);
}
ok($reaped, 'd. the killed server processes are gone') or die;
$load->finish;
$node->start;
$node->poll_query_until('postgres',
	q{SELECT worker_pid IS NOT NULL AND worker_last_round IS NOT NULL FROM trading_guard.seal_status})
  or die 'the sealer worker did not start after the crash';
check_after_crash('every process killed');

$node->stop;
done_testing();
