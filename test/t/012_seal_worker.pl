# test/t/012_seal_worker.pl — the sealing worker.
#
#   1. started without a key ring: the worker waits, says so once in the log
#      and in seal_status (waiting_for_key_ring), seals nothing, and
#      seal_audit() refuses with TG071
#   2. the key ring appears (key_file set, reload): the worker resumes, says
#      so, and seals the backlog by itself; seal_status shows its pid and no
#      backlog
#   3. rows written later are sealed by the worker without any call
#   4. digest lines in the server log every digest_interval: each one checks
#      with openssl (message, base64 signature, base64 DER public key) and
#      names a batch of audit_seal with the same chain hash
#   5. a database not in trading_guard.seal_databases has no worker
#      (worker_pid is null, the backlog stays) and seal_audit() seals it
#
# Waits are for conditions (poll_query_until, log lines), never sleeps.

use strict;
use warnings;

use MIME::Base64;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

delete $ENV{TRADING_GUARD_MASTER_KEY};

my $keydir = PostgreSQL::Test::Utils::tempdir('keys');
my $keyfile = "$keydir/ring.keys";
{
	open my $ur, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
	read($ur, my $raw, 32) == 32 or die "short read from /dev/urandom";
	close $ur;
	open my $fh, '>', $keyfile or die "$keyfile: $!";
	print $fh '1 ', unpack('H*', $raw), "\n";
	close $fh;
	chmod 0600, $keyfile or die "chmod $keyfile: $!";
}

my $node = PostgreSQL::Test::Cluster->new('sealer');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'trading_guard'
trading_guard.seal_databases = 'postgres'
trading_guard.events_database = 'tg_events'
trading_guard.seal_interval = 50
trading_guard.digest_interval = 1
});
$node->start;
# The security events (this test's own logins) go to a database without the
# extension, where they wait: the audit rows and batches here are this test's.
$node->safe_psql('postgres', 'CREATE DATABASE tg_events');

$node->safe_psql('postgres', q{
	CREATE EXTENSION trading_guard;
	CREATE TABLE trades (id bigint PRIMARY KEY, symbol text, qty numeric);
	SELECT trading_guard.enable_audit('trades');
	INSERT INTO trades SELECT g, 'BTCUSDT', g FROM generate_series(1, 100) g;
});

# 1. no key ring
ok($node->poll_query_until('postgres',
		'SELECT waiting_for_key_ring FROM trading_guard.seal_status'),
	'without a key ring the worker waits and seal_status says so');
is($node->safe_psql('postgres', 'SELECT rows_sealed IS NULL AND backlog_rows > 0 FROM trading_guard.seal_status'),
	't', 'nothing is sealed, the backlog is counted');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT trading_guard.seal_audit()',
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/TG071/, 'seal_audit() without a key ring fails with TG071');
my $log = slurp_file($node->logfile);
my @waits = ($log =~ /sealing of the audit trail of database "postgres" waits for the key ring/g);
is(scalar @waits, 1, 'the wait is logged once, not every round');

# 2. the ring appears
$node->append_conf('postgresql.conf', "trading_guard.key_file = '$keyfile'\n");
$node->reload;
ok($node->poll_query_until('postgres',
		q{SELECT NOT waiting_for_key_ring AND backlog_rows = 0 AND rows_sealed > 0
		    FROM trading_guard.seal_status}),
	'with the key ring back the worker resumes and seals the backlog by itself');
$node->wait_for_log(qr/sealing of the audit trail of database "postgres" resumes/);
pass('the resumption is logged');
@waits = (slurp_file($node->logfile) =~ /sealing of the audit trail of database "postgres" waits for the key ring/g);
is(scalar @waits, 1, 'the wait was logged once over all the rounds without a key ring');
is($node->safe_psql('postgres', q{SELECT worker_pid IS NOT NULL AND last_error IS NULL FROM trading_guard.seal_status}),
	't', 'seal_status shows the worker and no error');

# 3. later rows, sealed without a call
my $before = $node->safe_psql('postgres', 'SELECT rows_sealed FROM trading_guard.seal_status');
$node->safe_psql('postgres', q{UPDATE trades SET qty = qty + 1 WHERE id <= 10});
ok($node->poll_query_until('postgres',
		qq{SELECT rows_sealed >= $before + 10 AND backlog_rows = 0 FROM trading_guard.seal_status}),
	'rows written later are sealed by the worker');
is($node->safe_psql('postgres', 'SELECT ok, problem FROM trading_guard.verify_audit()'), 't|',
	'what the worker sealed verifies');

# 4. digest lines
my $offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO trades VALUES (1000, 'ETHUSDT', 1)});
ok($node->poll_query_until('postgres', 'SELECT backlog_rows = 0 FROM trading_guard.seal_status'),
	'the new row is sealed');
my $last = $node->safe_psql('postgres', 'SELECT last_batch FROM trading_guard.seal_status');
$node->wait_for_log(qr/trading_guard audit digest: .* batch=$last /, $offset);
my ($line) = grep { /batch=$last / } (slurp_file($node->logfile) =~ /trading_guard audit digest: (.*)$/mg);
my ($msg, $sig, $pub) = $line =~ /^(trading_guard audit digest v1 .*) signature=(\S+) public_key=(\S+)$/;
ok(defined $pub, 'the digest line has a message, a signature and a public key');
my $dir = PostgreSQL::Test::Utils::tempdir('digest');
{
	open my $m, '>', "$dir/msg" or die; print $m $msg; close $m;
	open my $s, '>:raw', "$dir/sig" or die; print $s decode_base64($sig); close $s;
	open my $p, '>', "$dir/pub.pem" or die;
	print $p "-----BEGIN PUBLIC KEY-----\n$pub\n-----END PUBLIC KEY-----\n";
	close $p;
}
command_ok([ 'openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', "$dir/pub.pem", '-rawin',
	'-in', "$dir/msg", '-sigfile', "$dir/sig" ], 'the logged digest checks with openssl alone');
my ($chain) = $msg =~ / chain=([0-9a-f]{64})$/;
is($node->safe_psql('postgres', qq{SELECT encode(chain_hash, 'hex') FROM trading_guard.audit_seal WHERE batch = $last}),
	$chain, 'and names the chain hash of its batch');
is($node->safe_psql('postgres', 'SELECT message FROM trading_guard.audit_digest()'), $msg,
	'audit_digest() gives the same message for the head');
{
	open my $m, '>', "$dir/msg2" or die; print $m $msg . ' '; close $m;
}
command_fails([ 'openssl', 'pkeyutl', '-verify', '-pubin', '-inkey', "$dir/pub.pem", '-rawin',
	'-in', "$dir/msg2", '-sigfile', "$dir/sig" ], 'a changed message does not check');

# 5. a database without a worker
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{
	CREATE EXTENSION trading_guard;
	CREATE TABLE t (id int PRIMARY KEY);
	SELECT trading_guard.enable_audit('t');
	INSERT INTO t VALUES (1), (2);
});
is($node->safe_psql('other', 'SELECT worker_pid IS NULL, backlog_rows FROM trading_guard.seal_status'),
	't|3', 'a database not in seal_databases has no worker, its backlog stays');
is($node->safe_psql('other', 'SELECT trading_guard.seal_audit()'), '3', 'seal_audit() seals it');
is($node->safe_psql('other', 'SELECT ok, rows_checked FROM trading_guard.verify_audit()'), 't|3',
	'and it verifies');

$node->stop;
done_testing();
