# test/t/013_security_events.pl — durable security events (src/events.c):
#
#   1. login events, allowed and refused, over TLS and the Unix socket:
#      the guard's refusals (no matching rule), PostgreSQL's own (a wrong
#      password, a pg_hba reject, an untrusted client certificate), with
#      role, database, address, TLS version and cipher, certificate subject
#   2. bans: ban, the banned attempt refused in the handshake, ban_expired,
#      unban
#   3. the vault: a reveal, signatures counted, refusals by environment and
#      for a missing EXECUTE grant (42501, which the vault never sees)
#   4. the key ring: a failed reload, a version added and removed; config
#      events at a reload (the key command's value never shown)
#   5. LISTEN trading_guard_alerts gets the ban and the vault refusal
#   6. verify_security_events: ok, then a changed, a deleted and a forged
#      row each named; purge_security_events and its record
#   7. a clean restart loses nothing queued; a crash (SIGKILL of a backend)
#      keeps what was written and the worker goes on; while the database is
#      being restored (trading_guard.restoring, a pg_restore session) the
#      worker waits
#   8. a full queue drops the newest events and counts them; a flood of
#      refusals is counted one by one
#   9. every query of tools/postgres_exporter_queries.yaml runs
#  10. no password, API secret or key in any column of security_events
#
# One cluster for the whole file.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConnGuardTest;

delete $ENV{TRADING_GUARD_MASTER_KEY};

my $certdir = PostgreSQL::Test::Utils::tempdir('certs');
my $keydir = PostgreSQL::Test::Utils::tempdir('keys');
make_certs($certdir);

sub random_hex
{
	my ($n) = @_;
	open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
	read($fh, my $b, $n) == $n or die "short read";
	close $fh;
	return unpack('H*', $b);
}

my @secrets;    # every secret of this test, for the leak check
my $password = 'pw_' . random_hex(8);
push @secrets, $password;
my ($key1, $key2) = (random_hex(32), random_hex(32));
push @secrets, $key1, $key2;

sub write_ring
{
	my ($path, %ring) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh join('', map { "$_ $ring{$_}\n" } sort keys %ring);
	close $fh;
	chmod 0600, $path;
	return $path;
}
my $ring = write_ring("$keydir/ring.keys", 1 => $key1);

my $node = PostgreSQL::Test::Cluster->new('events');
$node->init;
$node->append_conf('postgresql.conf', ssl_conf($certdir));
$node->append_conf('postgresql.conf', qq{
trading_guard.rules = 'alice, pwuser, certuser all; eve ::1'
trading_guard.max_auth_failures = 100
trading_guard.failure_window = '1h'
trading_guard.ban_time = '10min'
trading_guard.key_file = '$ring'
trading_guard.environment = 'prod'
trading_guard.event_flush_interval = 50
restart_after_crash = on
});
open my $hba, '>', $node->data_dir . '/pg_hba.conf' or die "pg_hba.conf: $!";
print $hba <<'EOF';
local    all       all         trust
host     postgres  rejected    127.0.0.1/32  reject
hostssl  postgres  certuser    127.0.0.1/32  cert clientcert=verify-full
host     postgres  pwuser      127.0.0.1/32  scram-sha-256
host     postgres  all         127.0.0.1/32  trust
host     postgres  all         ::1/128       trust
EOF
close $hba;
$node->start;

$ENV{TG_TEST_PW} = $password;    # into the server through a psql variable
$node->safe_psql('postgres', q{
	CREATE EXTENSION trading_guard;
	CREATE ROLE alice LOGIN;
	CREATE ROLE eve LOGIN;
	CREATE ROLE rejected LOGIN;
	CREATE ROLE certuser LOGIN;
	CREATE ROLE bot LOGIN;
	CREATE ROLE nogrant LOGIN;
	SET password_encryption = 'scram-sha-256';
	SET log_statement = 'none';    -- the statement holds the password
	\getenv pw TG_TEST_PW
	CREATE ROLE pwuser LOGIN PASSWORD :'pw';
	CREATE ROLE exporter IN ROLE pg_read_all_stats;
	BEGIN;
	SET LOCAL trading_guard.maintenance = on;
	GRANT EXECUTE ON FUNCTION trading_guard.reveal_credential(text, text),
	                          trading_guard.sign_request(text, text, text) TO bot;
	GRANT SELECT ON trading_guard.security_events TO exporter;
	COMMIT;
});
delete $ENV{TG_TEST_PW};
my $port = $node->port;

# The worker writes in batches: wait until a query over security_events
# returns what we expect (never a fixed sleep).
sub wait_events
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($name, $where, $cmp, $what) = @_;
	$what //= 'count(*)';
	ok( $node->poll_query_until(
			'postgres', "SELECT $what $cmp FROM trading_guard.security_events WHERE $where"),
		$name)
	  or diag($node->safe_psql('postgres',
		  'SELECT id, event_type, outcome, role_name, client_addr, reason, detail FROM trading_guard.security_events ORDER BY id DESC LIMIT 10'));
	return;
}

sub one_row
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

sub tcp
{
	my ($host, $user, %extra) = @_;
	my $app = next_app('ev');
	my $s = "host=$host port=$port dbname=postgres user=$user application_name=$app";
	$s .= " $_=$extra{$_}" foreach sort keys %extra;
	return ($s, $app);
}

sub attempt
{
	my ($connstr) = @_;
	my ($ret) = $node->psql('postgres', 'SELECT 1',
		connstr => $connstr, extra_params => ['-w'], on_error_stop => 0);
	return $ret;
}

# ---------------------------------------------------------------------------
# 1. Logins
# ---------------------------------------------------------------------------
{
	my ($c, $app) = tcp('127.0.0.1', 'alice', sslmode => 'require');
	is(attempt($c), 0, 'alice connects over TLS');
	wait_events('an allowed TLS login becomes a row',
		"application_name = '$app'", "= 1");
	is( one_row(qq{SELECT format('%s %s %s %s %s %s %s', outcome, reason, role_name, database_name,
		host(client_addr), tls_version, tls_cipher IS NOT NULL)
		FROM trading_guard.security_events WHERE application_name = '$app'}),
		'allowed rule alice postgres 127.0.0.1 TLSv1.3 t',
		'the allowed login: outcome, reason, role, database, address, TLS');

	($c, $app) = tcp('127.0.0.1', 'eve', sslmode => 'require');
	isnt(attempt($c), 0, 'eve from 127.0.0.1 is refused');
	wait_events("the guard's refusal becomes a row",
		"application_name = '$app'", "= 1");
	is( one_row(qq{SELECT format('%s %s %s %s', event_type, outcome, reason, role_name)
		FROM trading_guard.security_events WHERE application_name = '$app'}),
		'login refused no_matching_rule eve', 'refused by the rules');

	($c, $app) = tcp('127.0.0.1', 'pwuser', sslmode => 'require', password => 'wrong');
	isnt(attempt($c), 0, 'a wrong password is refused');
	wait_events("PostgreSQL's refusal (a wrong password) becomes a row",
		"event_type = 'login' AND role_name = 'pwuser' AND reason = 'password'", "= 1");

	($c, $app) = tcp('127.0.0.1', 'rejected', sslmode => 'disable');
	isnt(attempt($c), 0, 'a pg_hba reject line refuses');
	wait_events('a pg_hba reject becomes a row',
		"role_name = 'rejected' AND outcome = 'refused'", ">= 1");

	($c, $app) = tcp('127.0.0.1', 'certuser', sslmode => 'require',
		sslcert => "$certdir/client.crt", sslkey => "$certdir/client.key");
	is(attempt($c), 0, 'certuser logs in with its certificate');
	wait_events('the certificate login becomes a row with the subject',
		"application_name = '$app' AND client_cert_subject = 'CN=certuser'", "= 1");

	($c, $app) = tcp('127.0.0.1', 'certuser', sslmode => 'require',
		sslcert => "$certdir/untrusted.crt", sslkey => "$certdir/untrusted.key");
	isnt(attempt($c), 0, 'a certificate of an unknown CA is refused');
	wait_events('the failed certificate check becomes a refused login',
		"event_type = 'login' AND outcome = 'refused' AND reason IN ('tls_handshake', 'client_cert')", ">= 1");

	my ($ret) = $node->psql('postgres', 'SELECT 1', extra_params => ['-w']);
	wait_events('a Unix-socket login becomes a row without an address',
		"event_type = 'login' AND client_addr IS NULL AND detail->>'transport' = 'unix'", ">= 1");
}

# ---------------------------------------------------------------------------
# 2. Bans
# ---------------------------------------------------------------------------
{
	# forget the failures of part 1, then ban after three
	is(one_row("SELECT trading_guard.unban('127.0.0.1')"), 'f', 'not banned yet');
	set_conf($node, 'trading_guard.max_auth_failures', '3');
	for my $i (1 .. 4)
	{
		my ($c) = tcp('127.0.0.1', 'eve', sslmode => 'disable');
		attempt($c);
	}
	wait_events('four refusals ban 127.0.0.1',
		"event_type = 'ban' AND host(client_addr) = '127.0.0.1'", "= 1");
	my ($c) = tcp('127.0.0.1', 'alice', sslmode => 'require');
	isnt(attempt($c), 0, 'the banned address is refused');
	wait_events('the banned attempt is a refused login (reason banned)',
		"reason = 'banned' AND host(client_addr) = '127.0.0.1'", ">= 1");
	is(one_row("SELECT trading_guard.unban('127.0.0.1')"), 't', 'unban');
	wait_events('unban is an event with who lifted it',
		"event_type = 'unban' AND host(client_addr) = '127.0.0.1' AND role_name IS NOT NULL", "= 1");

	# a ban that ends: ban_time 1s, then wait for the worker's event
	set_conf($node, 'trading_guard.ban_time', '1s');
	for my $i (1 .. 4)
	{
		my ($c2) = tcp('127.0.0.1', 'eve', sslmode => 'disable');
		attempt($c2);
	}
	wait_events('the second ban',
		"event_type = 'ban' AND host(client_addr) = '127.0.0.1'", "= 2");
	wait_events('its end becomes ban_expired',
		"event_type = 'ban_expired' AND host(client_addr) = '127.0.0.1'", "= 1");
	set_conf($node, 'trading_guard.ban_time', '10min');
}

# ---------------------------------------------------------------------------
# 3. The vault
# ---------------------------------------------------------------------------
my $api_secret = 'S' . random_hex(24);
push @secrets, $api_secret;
my $api_key = 'K' . random_hex(16);
push @secrets, $api_key;

# store with the values bound (pgbench -M extended), never in SQL text
sub bound
{
	my ($sql, %vars) = @_;
	my $script = "$keydir/bound.sql";
	open my $fh, '>', $script or die;
	print $fh "$sql;\n";
	close $fh;
	my @cmd = ('pgbench', '-n', '-t', '1', '-M', 'extended', '-f', $script,
		(map { ('-D', "$_=$vars{$_}") } sort keys %vars),
		'-h', $node->host, '-p', $port, 'postgres');
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err) or die "pgbench: $err";
	unlink $script;
	return;
}
bound("SELECT trading_guard.store_credential('binance', 'main', :k, :s)",
	k => $api_key, s => $api_secret);
bound("SELECT trading_guard.store_credential('kraken', 'stage', :k, :s, 'staging')",
	k => $api_key . 'x', s => $api_secret . 'y');
my $cred = one_row("SELECT id FROM trading_guard.credential_store WHERE exchange = 'binance'");

{
	my $revealed = $node->safe_psql('postgres',
		"SET ROLE bot; SELECT trading_guard.reveal_credential('binance', 'main') = '$api_secret'");
	is($revealed, 't', 'bot reveals');
	wait_events('the reveal is an event naming the credential and the role',
		"event_type = 'vault_reveal' AND credential_id = $cred AND role_name = 'bot' AND exchange = 'binance'", "= 1");

	$node->safe_psql('postgres',
		"SET ROLE bot; SELECT trading_guard.sign_request('binance', 'main', 'q=' || g) FROM generate_series(1, 7) g");
	wait_events('seven signatures are counted',
		"event_type = 'vault_sign' AND credential_id = $cred", "= 7", "coalesce(sum((detail->>'count')::int), 0)");
	# and said whose: three more by another role come as events of their own
	$node->safe_psql('postgres',
		"SELECT trading_guard.sign_request('binance', 'main', 'q=' || g) FROM generate_series(1, 3) g");
	ok( $node->poll_query_until('postgres', qq{
			SELECT string_agg(role_name || ' ' || n, ', ' ORDER BY role_name)
			  FROM (SELECT role_name, sum((detail->>'count')::int) n FROM trading_guard.security_events
			         WHERE event_type = 'vault_sign' AND credential_id = $cred GROUP BY role_name) r},
			'bot 7, postgres 3'),
		'signatures are counted per role');

	my ($ret, $out, $err) = $node->psql('postgres',
		"SET ROLE bot; SELECT trading_guard.reveal_credential('kraken', 'stage')");
	like($err, qr/TG076|environment/, 'a reveal for another environment is refused');
	wait_events('the refusal by environment is an event',
		"event_type = 'vault_refused' AND exchange = 'kraken' AND detail->>'sqlstate' = 'TG076'", "= 1");

	($ret, $out, $err) = $node->psql('postgres',
		"SET ROLE nogrant; SELECT trading_guard.reveal_credential('binance', 'main')");
	like($err, qr/permission denied for function reveal_credential/, 'a role without EXECUTE is refused');
	wait_events('the missing grant (42501) is a vault_refused event',
		"event_type = 'vault_refused' AND detail->>'sqlstate' = '42501' AND detail->>'function' = 'reveal_credential'", "= 1");

	is(one_row("SELECT format('%s %s %s', reveals, signatures, roles) FROM trading_guard.credential_access() WHERE credential_id = $cred"),
		'1 10 {bot,postgres}', 'credential_access() sums reveals and signatures of the credential, and names who');
}

# ---------------------------------------------------------------------------
# 4. Key ring and configuration
# ---------------------------------------------------------------------------
{
	write_ring($ring, 1 => 'nothex');
	$node->reload;
	wait_events('a failed reload of the key ring is an error event',
		"event_type = 'key_ring' AND outcome = 'error' AND reason = 'reload failed'", ">= 1");
	write_ring($ring, 1 => $key1, 2 => $key2);
	$node->reload;
	wait_events('a version added',
		"event_type = 'key_ring' AND reason = 'version added' AND key_version = 2 AND key_id IS NOT NULL", "= 1");
	write_ring($ring, 2 => $key2);
	$node->reload;
	wait_events('a version removed',
		"event_type = 'key_ring' AND reason = 'version removed' AND key_version = 1", "= 1");

	set_conf($node, 'trading_guard.max_auth_failures', '5');
	wait_events('a changed setting is a config event with old and new value',
		"event_type = 'config' AND detail->>'setting' = 'trading_guard.max_auth_failures' AND detail->>'old' = '3' AND detail->>'new' = '5'", "= 1");
	my $cmd = "/bin/cat $ring";
	$node->append_conf('postgresql.conf', "trading_guard.key_command = '$cmd'\n");
	$node->reload;
	wait_events('the key command changing is a config event',
		"event_type = 'config' AND detail->>'setting' = 'trading_guard.key_command'", "= 1");
	is(one_row("SELECT count(*) FROM trading_guard.security_events WHERE detail::text LIKE '%cat %'"),
		'0', "the key command's value is not shown");
}

# ---------------------------------------------------------------------------
# 5. Alerts
# ---------------------------------------------------------------------------
{
	my ($in, $out, $err) = ("LISTEN trading_guard_alerts;\n", '', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-h', $node->host, '-p', $port, '-d', 'postgres', '-qAt' ],
		'<', \$in, '>', \$out, '2>', \$err);
	$in .= "SELECT 'listening';\n";
	$h->pump until $out =~ /listening/ || !$h->pumpable;

	my ($ret, $o, $e) = $node->psql('postgres',
		"SET ROLE nogrant; SELECT trading_guard.sign_request('binance', 'main', 'x')");
	for my $i (1 .. 6)
	{
		my ($c) = tcp('::1', 'nobody_' . $i, sslmode => 'disable');
		attempt($c);
	}
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline && !($out =~ /"alert":"vault_refused"/ && $out =~ /"alert":"ban"/))
	{
		$in .= "SELECT 1;\n";
		$h->pump;
		select(undef, undef, undef, 0.1);
	}
	like($out, qr/Asynchronous notification "trading_guard_alerts" with payload "\{[^\n]*"alert":"vault_refused"/,
		'LISTEN gets the vault refusal');
	like($out, qr/"alert":"ban"[^\n]*"client_addr":"::1"/, 'LISTEN gets the ban of ::1');
	$in .= "\\q\n";
	$h->finish;
	is(one_row("SELECT trading_guard.unban('::1')"), 't', 'unban ::1');
}

# ---------------------------------------------------------------------------
# 6. Verification and purge
# ---------------------------------------------------------------------------
sub verify
{
	return one_row(q{SELECT format('%s %s %s', ok, coalesce(problem, '-'), coalesce(first_bad_id::text, '-'))
		FROM trading_guard.verify_security_events()});
}
{
	is(verify(), 't - -', 'verify_security_events: ok');
	is(one_row(q{SELECT count(*) > 0 AND count(*) = count(l.id)
		FROM trading_guard.security_event_batches b
		LEFT JOIN trading_guard.audit_log l ON l.id = b.audit_id AND l.operation = 'EVENTS'}),
		't', 'every batch has its EVENTS audit row');
	my ($ret, $out, $err) = $node->psql('postgres',
		"UPDATE trading_guard.security_events SET reason = 'x'");
	like($err, qr/UPDATE of security_events is not allowed/, 'UPDATE is refused');
	($ret, $out, $err) = $node->psql('postgres', 'DELETE FROM trading_guard.security_events');
	like($err, qr/DELETE of security_events is not allowed/, 'DELETE is refused');

	my $victim = one_row("SELECT min(id) FROM trading_guard.security_events WHERE event_type = 'vault_reveal'");
	my $batch = one_row("SELECT first_id FROM trading_guard.security_event_batches WHERE $victim BETWEEN first_id AND last_id");
	my $tamper = sub {
		my ($sql) = @_;
		$node->safe_psql('postgres', qq{
			BEGIN;
			SET LOCAL trading_guard.maintenance = on;
			ALTER TABLE trading_guard.security_events DISABLE TRIGGER security_events_append_only;
			$sql;
			ALTER TABLE trading_guard.security_events ENABLE ALWAYS TRIGGER security_events_append_only;
			COMMIT;});
	};
	$tamper->("UPDATE trading_guard.security_events SET role_name = 'alice' WHERE id = $victim");
	is(verify(), "f changed $batch", 'a changed row is found (its batch named)');
	$tamper->("UPDATE trading_guard.security_events SET role_name = 'bot' WHERE id = $victim");
	is(verify(), 't - -', 'changed back: ok again');

	my $saved = one_row("SELECT row_to_json(e) FROM trading_guard.security_events e WHERE id = $victim");
	$tamper->("DELETE FROM trading_guard.security_events WHERE id = $victim");
	is(verify(), "f missing $batch", 'a deleted row is found');
	$tamper->("INSERT INTO trading_guard.security_events SELECT * FROM json_populate_record(NULL::trading_guard.security_events, '$saved')");
	is(verify(), 't - -', 'put back: ok again');

	$tamper->(q{INSERT INTO trading_guard.security_events (id, event_time, event_type, outcome, role_name)
		VALUES (1000000, now(), 'login', 'allowed', 'ghost')});
	is(verify(), 'f inserted 1000000', 'a forged row is found');
	$tamper->('DELETE FROM trading_guard.security_events WHERE id = 1000000');
	is(verify(), 't - -', 'removed: ok again');

	my $before = one_row('SELECT count(*) FROM trading_guard.security_events');
	my $purged = one_row("SELECT trading_guard.purge_security_events('0')");
	cmp_ok($purged, '>', 0, "purge_security_events('0') removes the written batches");
	is(one_row(q{SELECT count(*) FROM trading_guard.audit_log
		WHERE operation = 'PURGE' AND table_name = 'security_events'}), '1',
		'the purge is an audit row');
	wait_events('and a purge event', "event_type = 'purge'", "= 1");
	is(verify(), 't - -', 'after the purge: ok');
	$node->safe_psql('postgres',
		'UPDATE trading_guard.security_event_state SET purged_through = purged_through + 1000000');
	like(verify(), qr/^f changed/, 'a moved purge cut is found');
	$node->safe_psql('postgres',
		'UPDATE trading_guard.security_event_state SET purged_through = purged_through - 1000000');
	is(verify(), 't - -', 'and put back: ok');
}

# ---------------------------------------------------------------------------
# 7. Restart and crash
# ---------------------------------------------------------------------------
{
	# events queued right before a clean shutdown are written before the
	# worker exits
	my $restart_rows = "SELECT count(*) FROM trading_guard.security_events WHERE event_type = 'login' AND role_name LIKE 'restart%'";
	my $n = one_row($restart_rows);
	for my $i (1 .. 20)
	{
		my ($c) = tcp('::1', "restart$i", sslmode => 'disable');
		attempt($c);
	}
	$node->restart;
	is(one_row($restart_rows),
		$n + 20, 'a clean restart loses none of the 20 refusals just made');
	is(verify(), 't - -', 'after the restart: ok');

	# a crash: what was written stays, the worker comes back and writes
	my $written = one_row('SELECT count(*) FROM trading_guard.security_events');
	my $pid = one_row(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'trading_guard events'});
	kill 'KILL', $pid;
	ok( $node->poll_query_until('postgres',
			q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'trading_guard events'}),
		'the events worker is back after a crash');
	cmp_ok(one_row('SELECT count(*) FROM trading_guard.security_events'), '>=', $written,
		'what was written before the crash stays');
	my ($c) = tcp('::1', 'aftercrash', sslmode => 'disable');
	attempt($c);
	wait_events('events are written after the crash',
		"role_name = 'aftercrash'", "= 1");
	is(verify(), 't - -', 'after the crash: ok');
}

# ---------------------------------------------------------------------------
# 7b. A restore in progress: the worker leaves the database alone (a row it
# wrote would take an id that a restored row repeats)
# ---------------------------------------------------------------------------
{
	my $waits = q{SELECT waiting_for_table AND queued >= 1 FROM trading_guard.security_event_queue};
	my $rows = q{SELECT count(*) FROM trading_guard.security_events WHERE role_name = 'restoring'};

	# trading_guard.restoring = on for the database (any kind of restore)
	$node->safe_psql('postgres', 'ALTER DATABASE postgres SET trading_guard.restoring = on');
	my $offset = -s $node->logfile;
	my ($c) = tcp('::1', 'restoring', sslmode => 'disable');
	attempt($c);
	ok($node->poll_query_until('postgres', $waits),
		'restoring = on: the events worker waits, the event stays queued');
	is(one_row($rows), '0', 'restoring = on: nothing is written');
	ok($node->log_contains('security events wait in shared memory while database "postgres" is being restored', $offset),
		'restoring = on: the log says why the events wait');
	$node->safe_psql('postgres', 'ALTER DATABASE postgres RESET trading_guard.restoring');
	wait_events('reset: the queued event is written', "role_name = 'restoring'", '= 1');

	# a session named pg_restore by a role that is no superuser holds
	# nothing off (any role can take the name)
	my $fake;
	{
		local $ENV{PGAPPNAME} = 'pg_restore';
		local $ENV{PGUSER} = 'alice';
		$fake = $node->background_psql('postgres');
	}
	$fake->query_safe('SELECT 1');
	($c) = tcp('::1', 'restoring', sslmode => 'disable');
	attempt($c);
	wait_events("a non-superuser's pg_restore session: the event is written", "role_name = 'restoring'", '= 2');
	$fake->quit;

	# a superuser's session of pg_restore (as pg_restore names its sessions)
	my $restore;
	{
		local $ENV{PGAPPNAME} = 'pg_restore';
		$restore = $node->background_psql('postgres');
	}
	$restore->query_safe('SELECT 1');
	($c) = tcp('::1', 'restoring', sslmode => 'disable');
	attempt($c);
	ok($node->poll_query_until('postgres', $waits),
		'pg_restore connected: the events worker waits');
	is(one_row($rows), '2', 'pg_restore connected: nothing is written');
	$restore->quit;
	wait_events('pg_restore gone: the event is written', "role_name = 'restoring'", '= 3');
	is(verify(), 't - -', 'after the restore pauses: ok');
}

# ---------------------------------------------------------------------------
# 8. A full queue, and a flood
# ---------------------------------------------------------------------------
{
	# every refusal of a flood is counted: the table and connection_stats agree
	$node->safe_psql('postgres', 'SELECT trading_guard.reset_connection_stats()');
	my $n = 200;
	for my $i (1 .. $n)
	{
		my ($c) = tcp('::1', 'flood', sslmode => 'disable');
		attempt($c);
	}
	wait_events("$n refusals from one address are $n rows",
		"role_name = 'flood' AND outcome = 'refused'", "= $n");
	is(one_row(q{SELECT dropped_total FROM trading_guard.security_event_queue}), '0',
		'nothing dropped');
	$node->safe_psql('postgres', q{SELECT trading_guard.unban('::1')});

	# a queue of 16 that nobody drains (the events database does not exist)
	$node->append_conf('postgresql.conf', qq{
trading_guard.event_queue_size = 16
trading_guard.events_database = 'nowhere'
});
	$node->safe_psql('postgres', 'CREATE DATABASE nowhere');
	$node->restart;
	for my $i (1 .. 30)
	{
		my ($c) = tcp('::1', "full$i", sslmode => 'disable');
		attempt($c);
	}
	my $q = one_row(q{SELECT format('%s %s %s %s', capacity, queued, dropped_total,
		dropped_by_type->>'login') FROM trading_guard.security_event_queue});
	my ($cap, $queued, $dropped, $login) = split / /, $q;
	is($cap, 16, 'capacity 16');
	is($queued, 16, 'the queue is full');
	cmp_ok($dropped, '>=', 14, 'the newest events are dropped and counted');
	is($login, $dropped, '... by type');
	my ($ok) = $node->psql('postgres', 'SELECT 1');
	is($ok, 0, 'a full queue blocks no connection');
	$node->safe_psql('postgres', q{
		ALTER SYSTEM SET trading_guard.event_queue_size = 8192;
		ALTER SYSTEM SET trading_guard.events_database = 'postgres'});
	$node->restart;
}

# ---------------------------------------------------------------------------
# 9. The exporter's queries
# ---------------------------------------------------------------------------
{
	my $file = "$FindBin::RealBin/../../tools/postgres_exporter_queries.yaml";
	open my $fh, '<', $file or die "$file: $!";
	my $yaml = do { local $/; <$fh> };
	close $fh;
	my $nq = 0;
	while ($yaml =~ /^(\w+):\n  query: \|\n((?:    [^\n]*\n)+)  metrics:\n((?:    [^\n]*\n)+)/mg)
	{
		my ($name, $query, $metrics) = ($1, $2, $3);
		my @cols = $metrics =~ /^    - (\w+):$/mg;
		$nq++;
		# as a role with just what the file's header asks for
		my ($ret, $out, $err) = $node->psql('postgres', qq{
			SET ROLE exporter;
			$query;
			CREATE TEMP VIEW tg_q AS $query;
			SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
			 WHERE attrelid = 'tg_q'::regclass AND attnum > 0;
			DROP VIEW tg_q;}, on_error_stop => 1);
		is($ret, 0, "exporter query $name runs") or diag($err);
		my $got = (split /\n/, $out)[-1] // '';
		is(join(',', sort split /,/, $got), join(',', sort @cols),
			"exporter query $name: its columns are its metrics");
	}
	cmp_ok($nq, '>=', 8, 'every query of the exporter file was found');
}

# ---------------------------------------------------------------------------
# 10. Nothing sensitive
# ---------------------------------------------------------------------------
{
	my $all = one_row('SELECT string_agg(e::text, E\'\n\') FROM trading_guard.security_events e');
	cmp_ok(length($all), '>', 1000, 'the table holds the events of this test');
	for my $s (@secrets)
	{
		unlike($all, qr/\Q$s\E/, 'no secret, password or key in security_events');
	}
	my $log = slurp_file($node->logfile);
	unlike($log, qr/\Q$_\E/, 'no secret in the server log') foreach @secrets;
}

done_testing();
