# test/t/010_seal_proof.pl — inclusion proofs (audit_proof(), src/seal_verify.c)
# checked by the stand-alone verifier tools/tg_verify.py, without a database.
#
#   1. an audited table with many column types (numeric with many digits,
#      negative and tiny numbers, text with unicode, quotes, backslashes and
#      control characters, jsonb, bool, timestamptz, arrays, NULLs, a masked
#      column), a change over TCP (client_addr), the vault's rows and a DDL
#      row; sealed as three batches (seal_interval = 0: seal_audit() alone
#      decides): one of mixed rows, one of 13 rows (not a power of two),
#      one of a single row
#   2. the proof of every row of those batches (first, last, middle, the
#      one-row batch among them) verifies, with the trusted public key of
#      audit_digest(); the decoded row (--json) equals to_jsonb() of the row
#      column by column, and old_row / new_row print exactly as jsonb_out
#   3. the signed digest checks with plain `openssl pkeyutl -verify -rawin`
#      and with `tg_verify.py digest` (README's commands)
#   4. refused: a byte of the row flipped, a path element changed, dropped
#      or added, a wrong leaf_index or leaf_count, the digest message's root
#      edited, a proof forged with its own key and signature (passes without
#      --pubkey, with a warning: exactly why --pubkey exists), a proof of
#      another batch's digest, another key's public key (key version 2 of
#      the ring, and a key made by openssl), a relabelled column list
#   5. a sealed row changed in the database (maintenance mode, guards off):
#      audit_proof() of it fails with TG081, verify_audit() names it, the
#      old proof still verifies against the digest, and a proof assembled
#      from the row as it now is (checked to decode to exactly that row)
#      does not
#   6. the same row's batch re-sealed by hand: its Merkle root (and leaf
#      tag) in audit_seal set to what the changed rows give.  audit_proof()
#      must not sign that: TG081, not a proof that verifies with the
#      trusted key (the signing key is no oracle for audit_seal's contents)
#
# Keys are made at run time; waits are for conditions, never sleeps.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(sha256);
use File::Basename qw(dirname);
use IPC::Run;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

delete $ENV{TRADING_GUARD_MASTER_KEY};

my $verifier = ($ENV{TESTDIR} // dirname(abs_path(__FILE__)) . '/../..') . '/tools/tg_verify.py';
-f $verifier or BAIL_OUT("the verifier is not at $verifier");

my $dir = PostgreSQL::Test::Utils::tempdir('proof');
my $ring = "$dir/ring.keys";

sub random_hex
{
	open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
	read($fh, my $b, $_[0]) == $_[0] or die "short read from /dev/urandom";
	close $fh;
	return unpack('H*', $b);
}
my %KEY = (1 => random_hex(32), 2 => random_hex(32));

sub write_file_as
{
	my ($path, $data, $layer) = @_;
	open my $fh, '>' . ($layer // ':raw'), $path or die "$path: $!";
	print $fh $data;
	close $fh;
	return $path;
}

sub write_ring
{
	write_file_as($ring, join('', map { "$_ $KEY{$_}\n" } @_));
	chmod 0600, $ring or die "chmod $ring: $!";
	return;
}
write_ring(1);

my $node = PostgreSQL::Test::Cluster->new('proof');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'trading_guard'
trading_guard.key_file = '$ring'
trading_guard.events_database = 'tg_events'
trading_guard.seal_interval = 0
listen_addresses = '127.0.0.1'
trading_guard.connection_policy = off
});
$node->start;
# The security events (this test's own logins) go to a database without the
# extension, where they wait: the audit rows this test counts are its own.
$node->safe_psql('postgres', 'CREATE DATABASE tg_events');

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Run the verifier: (exit status, stdout, stderr)
sub run_verifier
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'python3', $verifier, @_ ], '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

my $json = JSON::PP->new->canonical;
my $nfile = 0;

# Write a proof (a hash) to a file of its own; its path
sub proof_file
{
	return write_file_as("$dir/proof_" . ++$nfile . '.json', $json->encode($_[0]), ':encoding(UTF-8)');
}

sub proof_of { return $json->decode(sql("SELECT trading_guard.audit_proof($_[0])")); }

# The canonical row (hex) with column k (from 0) set to text value v: the
# fields are a 4-byte big-endian length (0xFFFFFFFF: NULL) and the bytes
sub with_text_field
{
	my ($hex, $k, $v) = @_;
	my $bytes = pack('H*', $hex);
	my ($pos, @fields) = (0);
	while ($pos < length $bytes)
	{
		my $n = unpack('N', substr($bytes, $pos, 4));
		my $len = $n == 0xFFFFFFFF ? 0 : $n;
		push @fields, substr($bytes, $pos, 4 + $len);
		$pos += 4 + $len;
	}
	die 'the canonical row does not have 18 fields' unless @fields == 18 && $pos == length $bytes;
	$fields[$k] = pack('N', length $v) . $v;
	return unpack('H*', join('', @fields));
}

# ---------------------------------------------------------------------------
# 1. The rows and the batches
# ---------------------------------------------------------------------------

sql(q{
	CREATE EXTENSION trading_guard;
	CREATE TABLE trades (id bigint PRIMARY KEY, symbol text, price numeric, qty numeric,
	                     note text, meta jsonb, live bool, at timestamptz, api_hint text,
	                     tags text[], size real);
	SELECT trading_guard.enable_audit('trades', mask_columns => '{api_hint}');
});
sql(q{
	SET trading_guard.actor = 'desk-3/ålice "quant" \ 🚀';
	INSERT INTO trades VALUES
	  (1, 'BTCUSDT', 0.00001, 123456789.123456789, E'it''s "quoted" \\\\ tab\t nl\n ctl\x01 ✓ 日本',
	   '{"fee": -0.000100, "big": 1e30, "tiny": 1e-40, "neg": -42, "zero": 0.00, "s": "é\"\\/", "n": null,
	     "b": [true, false, [], {}], "deep": {"a": {"b": [1.5, "x"]}}}',
	   true, '2026-11-30 09:15:42.000001+00', 'AKIA-secret-hint', '{spot,NULL,"with space",""}', 1.5),
	  (2, NULL, -98765432109876543210.0123456789012345678901234567890, -0.5, NULL, NULL,
	   false, '1999-12-31 23:59:59.999999+00', NULL, '{}', NULL),
	  (3, 'ETHUSDT', 1e-300, 1e300, '', '"a raw string"', NULL, 'infinity', 'x', '{{a,b},{c,NULL}}', -0.0),
	  (4, 'SOLUSDT', 0, 10000, repeat('long ', 5000),
	   (SELECT jsonb_object_agg('k' || g, g / 7.0) FROM generate_series(1, 70) g),
	   true, '2000-01-01 00:00:00+00', 'y', NULL, 3e38);
	UPDATE trades SET price = price * -3, note = note || '!' WHERE id IN (1, 2);
	DELETE FROM trades WHERE id = 3;
});
$node->safe_psql('postgres', q{INSERT INTO trades (id, symbol, price) VALUES (5, 'over TCP', 1.25)},
	connstr => 'host=127.0.0.1 port=' . $node->port . ' dbname=postgres application_name=tcp_client');
sql(q{
	SELECT trading_guard.store_credential('binance', 'main', md5(random()::text), md5(random()::text));
	SELECT trading_guard.revoke_credential('binance', 'main');
	ALTER TABLE trades ADD COLUMN venue text;
});
my $n1 = sql('SELECT trading_guard.seal_audit()');
sql(q{INSERT INTO trades (id, symbol, qty) SELECT g, 'BULK', g * 1.1 FROM generate_series(100, 112) g});
is(sql('SELECT trading_guard.seal_audit()'), '13', 'batch 2: 13 rows');
sql(q{UPDATE trades SET live = NOT live WHERE id = 1});
is(sql('SELECT trading_guard.seal_audit()'), '1', 'batch 3: one row');

is(sql(q{SELECT count(*) FROM trading_guard.audit_log WHERE client_addr = '127.0.0.1'}), '1',
	'one audit row has a client address');
is(sql(q{SELECT string_agg(DISTINCT operation, ',' ORDER BY operation) FROM trading_guard.audit_log}),
	'AUDIT ENABLE,DDL,DELETE,INSERT,UPDATE,VAULT REVOKE,VAULT STORE',
	'the log holds every kind of row');

# the trusted public key, taken once from the database (an auditor keeps it)
my $trusted = write_file_as("$dir/trusted.pem", sql('SELECT public_key FROM trading_guard.audit_digest()') . "\n");

# ---------------------------------------------------------------------------
# 2. Every row's proof verifies; the decoded row is the row
# ---------------------------------------------------------------------------

my %proof;	  # id => proof
my %seen;	  # what the proofs covered: "batch:leaf_index/leaf_count"
foreach my $id (split /\n/, sql('SELECT id FROM trading_guard.audit_log ORDER BY id'))
{
	my $p = proof_of($id);
	$proof{$id} = $p;
	$seen{"$p->{batch}:$p->{leaf_index}/$p->{leaf_count}"} = $id;
	my $file = proof_file($p);

	my ($rc, $out, $err) = run_verifier('proof', $file, '--pubkey', $trusted, '--json');
	is($rc, 0, "proof of row $id (batch $p->{batch}, leaf $p->{leaf_index} of $p->{leaf_count}) verifies")
	  or diag($err);
	like($err, qr/^OK: audit row $id /m, "row $id: OK is printed");
	unlike($err, qr/WARNING/, "row $id: no warning with a trusted key");

	# column by column: each side's value as jsonb text (numbers keep their scale)
	my %got;
	my %want;
	my $rows = sql(qq{
		SET timezone = 'UTC';
		SELECT key, coalesce(to_jsonb(l) -> key, 'null')::text, coalesce(v -> key, '"<absent>"')::text
		  FROM trading_guard.audit_log l,
		       (SELECT \$tgv\$$out\$tgv\$::jsonb) AS x(v),
		       jsonb_object_keys(to_jsonb(l) || v) AS key
		 WHERE l.id = $id});
	foreach (split /\n/, $rows)
	{
		my ($k, $w, $g) = split /\|/, $_, 3;
		$want{$k} = $w;
		$got{$k} = $g;
	}
	is(scalar(keys %got), 18, "row $id: 18 columns");
	is_deeply(\%got, \%want, "row $id: the decoded row equals to_jsonb() of the row, column by column");

	# jsonb printed exactly as PostgreSQL prints it
	($rc, $out, $err) = run_verifier('proof', $file, '--pubkey', $trusted);
	my %printed = $out =~ /^  (old_row|new_row)\s+jsonb\s+(.*)$/mg;
	my ($old, $new) = split /\x1e/,
	  sql(qq{SELECT coalesce(old_row::text, 'NULL') || E'\\x1e' || coalesce(new_row::text, 'NULL')
	           FROM trading_guard.audit_log WHERE id = $id}), 2;
	ok($printed{old_row} eq $old && $printed{new_row} eq $new, "row $id: old_row and new_row print as jsonb_out")
	  or diag("got $printed{new_row}\nwant $new");
}
my @b1 = grep { /^1:/ } keys %seen;
is(scalar @b1, $n1, "batch 1: every one of its $n1 rows has a proof");
ok(($n1 & ($n1 - 1)) != 0, "batch 1's size ($n1) is not a power of two either");
ok(exists $seen{'1:0/' . $n1} && exists $seen{'1:' . ($n1 - 1) . "/$n1"}, 'first and last row of batch 1');
ok(exists $seen{'2:0/13'} && exists $seen{'2:6/13'} && exists $seen{'2:12/13'},
	'first, middle and last row of the 13-row batch');
ok(exists $seen{'3:0/1'}, 'the one-row batch');
is(scalar @{ $proof{ $seen{'3:0/1'} }{path} }, 0, 'a one-row batch has an empty path');

my $tcp = sql(q{SELECT id FROM trading_guard.audit_log WHERE client_addr IS NOT NULL});
my (undef, $tcp_out) = run_verifier('proof', proof_file($proof{$tcp}), '--pubkey', $trusted);
like($tcp_out, qr/^  client_addr\s+inet\s+"127\.0\.0\.1"$/m, 'client_addr decodes as 127.0.0.1');

my $mid = $seen{'2:6/13'};
my $P = $proof{$mid};
my ($rc, $out, $err) = run_verifier('proof', proof_file($P));
is($rc, 0, 'without --pubkey the proof verifies with its own key');
like($err, qr/WARNING: the signature was checked with the public key carried by the proof itself/,
	'and says that this proves nothing about who signed it');

# ---------------------------------------------------------------------------
# 3. The digest with openssl alone, and with tg_verify.py digest
# ---------------------------------------------------------------------------

my ($msg, $sig, $pub) = split /\x1e/,
  sql(q{SELECT message || E'\x1e' || signature || E'\x1e' || public_key FROM trading_guard.audit_digest()});
write_file_as("$dir/m", $msg);
write_file_as("$dir/s.b64", "$sig\n");
write_file_as("$dir/s", decode_base64($sig));
write_file_as("$dir/pub.pem", "$pub\n");
command_ok([ 'openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', "$dir/pub.pem", '-rawin',
	'-in', "$dir/m", '-sigfile', "$dir/s" ], 'audit_digest() checks with openssl pkeyutl -rawin');
($rc, $out) = run_verifier('digest', "$dir/m", "$dir/s.b64", $trusted);
is($rc, 0, 'tg_verify.py digest: ok');
like($out, qr/^OK: digest of batch 3, /, 'and names the batch');
write_file_as("$dir/m_nl", "$msg\n");
is((run_verifier('digest', "$dir/m_nl", "$dir/s.b64", $trusted))[0], 0,
	'a message saved with its newline checks too (the signature is over the line)');
(my $forged = $msg) =~ s/position=(\d+)/'position=' . ($1 + 1)/e;
write_file_as("$dir/m_bad", $forged);
command_fails([ 'openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', "$dir/pub.pem", '-rawin',
	'-in', "$dir/m_bad", '-sigfile', "$dir/s" ], 'an edited digest fails with openssl');
($rc, undef, $err) = run_verifier('digest', "$dir/m_bad", "$dir/s.b64", $trusted);
is($rc, 1, 'and with tg_verify.py digest');
like($err, qr/^FAILED: the signature does not verify/, 'with a reason');
# the proof's digest is a digest too
write_file_as("$dir/pm", $P->{digest}{message});
write_file_as("$dir/ps", decode_base64($P->{digest}{signature}));
command_ok([ 'openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', $trusted, '-rawin',
	'-in', "$dir/pm", '-sigfile', "$dir/ps" ], "the proof's digest checks with openssl");

# ---------------------------------------------------------------------------
# 4. What must fail
# ---------------------------------------------------------------------------

sub copy_of { return $json->decode($json->encode($_[0])); }

# The verifier must refuse the proof: exit 1, FAILED and reason matching $re
sub refused
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($p, $re, $name, @opt) = @_;
	my ($rc, $out, $err) = run_verifier('proof', proof_file($p), '--pubkey', $trusted, @opt);
	is($rc, 1, "refused: $name") or diag($out, $err);
	like($err, qr/^FAILED: $re/m, "$name: the reason") or diag($err);
	unlike($out . $err, qr/^OK/m, "$name: no OK");
	return;
}

my $rowlen = length($P->{row}) / 2;
foreach my $at (20, int($rowlen / 2), $rowlen - 1)
{
	my $q = copy_of($P);
	my $b = hex(substr($q->{row}, 2 * $at, 2)) ^ 0x01;
	substr($q->{row}, 2 * $at, 2) = sprintf('%02x', $b);
	refused($q, qr/.+/, "a flipped byte at $at of $rowlen of the row");
}
{
	# a flipped byte inside a text value: decodes, but leads elsewhere
	my $q = copy_of($P);
	my $hexop = unpack('H*', 'INSERT');
	$q->{row} =~ s/$hexop/unpack('H*', 'INSERS')/e or die 'no INSERT in the row';
	refused($q, qr/the row and its path do not lead to the proof's root/, "'INSERT' changed to 'INSERS' in the row");
	# and the id (the first column) changed to another row's
	$q = copy_of($P);
	substr($q->{row}, 8, 16) = sprintf('%016x', $mid + 1);
	refused($q, qr/the row's id is/, "the row's id changed");
}
foreach my $i (0, $#{ $P->{path} })
{
	my $q = copy_of($P);
	substr($q->{path}[$i], 10, 1) = substr($q->{path}[$i], 10, 1) eq '0' ? '1' : '0';
	refused($q, qr/the row and its path do not lead/, "path element $i changed");
}
{
	my $q = copy_of($P);
	pop @{ $q->{path} };
	refused($q, qr/the path is shorter/, 'a path element dropped');
	$q = copy_of($P);
	push @{ $q->{path} }, $q->{path}[0];
	refused($q, qr/the path is longer/, 'a path element added');
	$q = copy_of($P);
	@{ $q->{path} }[ 0, 1 ] = @{ $q->{path} }[ 1, 0 ];
	refused($q, qr/the row and its path do not lead/, 'two path elements swapped');
}
foreach my $li ($P->{leaf_index} - 1, $P->{leaf_index} + 1, 13, 1000)
{
	my $q = copy_of($P);
	$q->{leaf_index} = $li;
	refused($q, qr/(the row and its path do not lead|leaf_index \d+ is not below|the path is)/, "leaf_index $li");
}
{
	my $q = copy_of($P);
	$q->{leaf_count} = 16;
	# (index 6 has the same path in a tree of 16: the position gives it away)
	refused($q, qr/(the row and its path do not lead|the path is|position \d+ does not match)/, 'leaf_count 16');
	$q = copy_of($P);
	$q->{position}++;
	refused($q, qr/position \d+ does not match the digest/, 'a wrong position');
	$q = copy_of($P);
	$q->{digest}{message} =~ s/root=([0-9a-f])/'root=' . ($1 eq '0' ? '1' : '0')/e;
	refused($q, qr/the digest message names root/, "the digest message's root edited");
	# root edited in the proof and the message alike
	$q = copy_of($P);
	substr($q->{root}, 0, 1) = substr($q->{root}, 0, 1) eq '0' ? '1' : '0';
	$q->{digest}{message} =~ s/root=[0-9a-f]{64}/root=$q->{root}/;
	refused($q, qr/the row and its path do not lead/, 'root edited in the proof and the message');
	# another batch's digest
	$q = copy_of($P);
	$q->{digest} = $proof{ $seen{'3:0/1'} }{digest};
	refused($q, qr/the digest message names root/, "the digest of another batch");
	$q = copy_of($P);
	$q->{digest}{signature} = $proof{ $seen{'3:0/1'} }{digest}{signature};
	refused($q, qr/the digest's signature does not verify/, "another digest's signature");
	# the column names and types are signed (layout=): a relabelled list is refused
	$q = copy_of($P);
	@{ $q->{columns} }[ 7, 8 ] = @{ $q->{columns} }[ 8, 7 ];
	refused($q, qr/the proof's columns are not the audit_log layout its digest signs/, 'session_user_name and current_user_name swapped in the column list');
}

# A forgery with the forger's own key: a made-up row as a one-row batch,
# signed by a key made here
{
	my $q = copy_of($P);
	$q->{row} = with_text_field($q->{row}, 8, 'mallory');
	$q->{leaf_index} = 0;
	$q->{leaf_count} = 1;
	$q->{path} = [];
	my $leaf = sql("SELECT encode(sha256('\\x00$q->{row}'::bytea), 'hex')");
	$q->{root} = $leaf;
	$q->{digest}{message} =~ s/root=[0-9a-f]{64}/root=$leaf/;
	$q->{digest}{message} =~ s/position=\d+/'position=' . $q->{position}/e;
	command_ok([ 'openssl', 'genpkey', '-algorithm', 'ed25519', '-out', "$dir/forger.key" ], 'a forger\'s key');
	command_ok([ 'openssl', 'pkey', '-in', "$dir/forger.key", '-pubout', '-out', "$dir/forger.pem" ], 'its public key');
	write_file_as("$dir/fm", $q->{digest}{message});
	command_ok([ 'openssl', 'pkeyutl', '-sign', '-inkey', "$dir/forger.key", '-rawin', '-in', "$dir/fm",
		'-out', "$dir/fs" ], 'the forged digest signed');
	$q->{digest}{signature} = MIME::Base64::encode_base64(slurp_file("$dir/fs"), '');
	$q->{digest}{public_key} = slurp_file("$dir/forger.pem");
	my ($rc, $out, $err) = run_verifier('proof', proof_file($q));
	is($rc, 0, 'a self-signed forgery passes when the proof\'s own key is trusted');
	like($err, qr/WARNING: the signature was checked with the public key carried by the proof/,
		'but the verifier warns');
	like($out, qr/^  current_user_name\s+text\s+"mallory"$/m, '(the forged row)');
	refused($q, qr/the digest's signature does not verify with the trusted public key/,
		'the self-signed forgery, with --pubkey');
	my $r = copy_of($P);
	($rc, $out, $err) = run_verifier('proof', proof_file($r), '--pubkey', "$dir/forger.pem");
	is($rc, 1, "the real proof against the forger's key (--pubkey): refused");
}

# Key version 2 of the ring: new batches are signed with its key
write_ring(1, 2);
$node->reload;
$node->poll_query_until('postgres', q{
	SELECT loaded AND versions = 2 AND newest = 2 AND last_error IS NULL FROM trading_guard.key_ring_status()})
  or die 'the key ring did not gain version 2';
sql(q{INSERT INTO trades (id) VALUES (200)});
is(sql('SELECT trading_guard.seal_audit()'), '1', 'batch 4, sealed with key version 2');
my $v2 = write_file_as("$dir/v2.pem", sql('SELECT public_key FROM trading_guard.audit_digest()') . "\n");
isnt(slurp_file($v2), slurp_file($trusted), 'key version 2 has another public key');
($rc, $out, $err) = run_verifier('proof', proof_file($P), '--pubkey', $v2);
is($rc, 1, "a proof of batch 2 checked against key version 2's public key: refused");
like($err, qr/^FAILED: the digest's signature does not verify with the trusted public key/m, 'with the reason');
is((run_verifier('proof', proof_file($P), '--pubkey', $v2, '--pubkey', $trusted))[0], 0,
	'with both trusted keys given: verifies');
my $p200 = proof_of(sql(q{SELECT id FROM trading_guard.audit_log WHERE row_key = '{"id": 200}'}));
like($p200->{digest}{message}, qr/ key_version=2 /, 'the new row\'s digest names key version 2');
is((run_verifier('proof', proof_file($p200), '--pubkey', $v2))[0], 0, 'and verifies with its key');
is((run_verifier('proof', proof_file($p200), '--pubkey', $trusted))[0], 1, 'but not with version 1\'s');

# ---------------------------------------------------------------------------
# 5. A sealed row changed in the database
# ---------------------------------------------------------------------------

my $old_file = proof_file($P);
sql(qq{
	BEGIN;
	SET LOCAL trading_guard.maintenance = on;
	ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
	ALTER TABLE trading_guard.audit_log DISABLE TRIGGER audit_log_append_only;
	UPDATE trading_guard.audit_log SET current_user_name = 'mallory' WHERE id = $mid;
	ALTER TABLE trading_guard.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
	ALTER EVENT TRIGGER trading_guard_audit_ddl ENABLE ALWAYS;
	COMMIT;
});
my ($prc, undef, $perr) = $node->psql('postgres', "SELECT trading_guard.audit_proof($mid)",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($perr, qr/TG081/, 'audit_proof() of the changed row fails with TG081');
is(sql('SELECT problem, first_bad_id FROM trading_guard.verify_audit()'), "changed|$mid",
	'verify_audit() names the row');
($rc, $out, $err) = run_verifier('proof', $old_file, '--pubkey', $trusted);
is($rc, 0, 'the old proof still verifies against its digest');
like($out, qr/^OK: audit row $mid /m, 'OK');

# the proof assembled from the row as it is now: current_user_name (the 9th
# column) replaced in the canonical bytes
my $now = copy_of($P);
$now->{row} = with_text_field($now->{row}, 8, 'mallory');
my $now_file = proof_file($now);
($rc, $out, $err) = run_verifier('proof', $now_file, '--pubkey', $trusted, '--json');
is($rc, 1, 'the proof assembled from the changed row does not verify');
like($err, qr/^FAILED: the row and its path do not lead to the proof's root/m, 'its reason');
is(sql(qq{SET timezone = 'UTC';
	SELECT to_jsonb(l) = \$tgv\$$out\$tgv\$::jsonb FROM trading_guard.audit_log l WHERE id = $mid}), 't',
	'(and it is the row as it is now in the database)');

# ---------------------------------------------------------------------------
# 6. The batch's seal changed to match the changed row
# ---------------------------------------------------------------------------

# RFC 9162 2.1.3.2, in Perl: the root a leaf hash and a path give
sub fold
{
	my ($r, $fn, $n, @path) = @_;
	my $sn = $n - 1;
	foreach my $p (@path)
	{
		if (($fn & 1) || $fn == $sn)
		{
			$r = sha256("\x01" . $p . $r);
			until (($fn & 1) || $fn == 0) { $fn >>= 1; $sn >>= 1; }
		}
		else
		{
			$r = sha256("\x01" . $r . $p);
		}
		$fn >>= 1;
		$sn >>= 1;
	}
	return unpack('H*', $r);
}
my @path = map { pack('H*', $_) } @{ $P->{path} };
is(fold(sha256("\x00" . pack('H*', $P->{row})), $P->{leaf_index}, $P->{leaf_count}, @path), $P->{root},
	'the path folds to the root in Perl too');
my $new_leaf = sha256("\x00" . pack('H*', $now->{row}));
my $new_root = fold($new_leaf, $P->{leaf_index}, $P->{leaf_count}, @path);
sql(qq{
	BEGIN;
	SET LOCAL trading_guard.maintenance = on;
	ALTER TABLE trading_guard.audit_seal DISABLE TRIGGER audit_seal_append_only;
	UPDATE trading_guard.audit_seal
	   SET merkle_root = '\\x$new_root',
	       leaf_tags = overlay(leaf_tags placing '\\x} . unpack('H*', substr($new_leaf, 0, 8)) . qq{'::bytea
	                           from } . (8 * $P->{leaf_index} + 1) . qq{)
	 WHERE batch = $P->{batch};
	ALTER TABLE trading_guard.audit_seal ENABLE ALWAYS TRIGGER audit_seal_append_only;
	COMMIT;
});
is(sql('SELECT problem FROM trading_guard.verify_audit()'), 'seal changed',
	'verify_audit(): seal changed');
($prc, my $forged_proof, $perr) = $node->psql('postgres', "SELECT trading_guard.audit_proof($mid)",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($perr, qr/TG081/, 'audit_proof() of the row in the re-sealed batch fails with TG081');
if ($forged_proof ne '')
{
	($rc, $out, $err) = run_verifier('proof', write_file_as("$dir/forged.json", $forged_proof), '--pubkey', $trusted);
	isnt($rc, 0, 'the proof it gave must not verify with the trusted key') or diag($out);
}

$node->stop;
done_testing();
