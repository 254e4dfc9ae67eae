# test/t/005_conn_bans.pl — the connection guard's bans: more than
# trading_guard.max_auth_failures failed attempts from one address within
# failure_window ban that address for ban_time.  While banned, even a
# connection the rules allow is refused (reason banned; the client is told
# only "connection refused"), other addresses are not affected;
# banned_addresses lists the ban; unban() lifts it; a ban expires after
# ban_time.  libpq's sslmode=prefer retry (a TLS attempt, then a plaintext
# one) counts as one failure, not two, but a plaintext failure of another
# role counts; logins PostgreSQL itself refuses (wrong password, failed TLS
# handshake) count; IPv6 addresses are banned alike; only failures within
# failure_window count; Unix sockets never count; in log mode refusals are
# recorded as would_refuse and a banned address is let in.
#
# One cluster for the whole file; 127.0.0.1 is the address that gets banned,
# ::1 the one that must keep working.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConnGuardTest;

my $certdir = PostgreSQL::Test::Utils::tempdir('certs');
make_certs($certdir);

# alice and pwuser may connect from anywhere; eve only from ::1, so eve from
# 127.0.0.1 is a refusal (a failure) of the guard's own.
my $node = PostgreSQL::Test::Cluster->new('conn_bans');
$node->init;
$node->append_conf('postgresql.conf', ssl_conf($certdir));
$node->append_conf('postgresql.conf', q{
trading_guard.rules = 'alice, pwuser all; eve ::1'
trading_guard.max_auth_failures = 3
trading_guard.failure_window = '1h'
trading_guard.ban_time = '10min'
});
open my $hba, '>', $node->data_dir . '/pg_hba.conf'
  or die "pg_hba.conf: $!";
print $hba <<'EOF';
local    all       all         trust
host     postgres  pwuser      127.0.0.1/32  scram-sha-256
host     postgres  all         127.0.0.1/32  trust
host     postgres  all         ::1/128       trust
EOF
close $hba;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION trading_guard;
	CREATE ROLE alice LOGIN;
	CREATE ROLE eve LOGIN;
	CREATE ROLE pwuser LOGIN PASSWORD 'secret';
});

my $port = $node->port;

# A TCP connection string, sslmode=require unless $extra says otherwise.
sub tcp
{
	my ($host, $user, $app, $extra) = @_;
	return "host=$host port=$port dbname=postgres user=$user "
	  . "application_name=$app sslmode=require sslrootcert=$certdir/ca.crt "
	  . "sslcert=invalid sslkey=invalid "
	  . ($extra // '');
}

# One failed attempt that the test does not otherwise examine.
sub fail_once
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($connstr, $name) = @_;
	my $ret = $node->psql('postgres', undef, connstr => $connstr,
		extra_params => ['-w']);
	isnt($ret, 0, $name);
}

my $banned = 'SELECT host(client_addr) FROM trading_guard.banned_addresses ORDER BY 1';
my $BANNED_DETAIL = qr/address 127\.0\.0\.1 is banned until/;
my $app;

# ---------------------------------------------------------------------------
# More than max_auth_failures refusals ban the address
# ---------------------------------------------------------------------------

fail_once(tcp('127.0.0.1', 'eve', next_app('ban')), "eve from 127.0.0.1: failure $_ of 3")
  foreach 1 .. 3;
is($node->safe_psql('postgres', $banned), '',
	'three failures (= max_auth_failures) do not ban');

$app = next_app('ban');
refused($node, tcp('127.0.0.1', 'eve', $app), 'the fourth failure',
	details => [qr/no rule of trading_guard\.rules allows role "eve" from 127\.0\.0\.1/]);
is(events($node, $app), 'refused no_matching_rule 127.0.0.1 eve TLSv1.3 cert=f rule=-',
	'the fourth failure itself is refused for its own reason');
is( $node->safe_psql('postgres', q{
		SELECT format('%s failures=%s for %s', host(client_addr), failures,
		              banned_until - banned_since)
		FROM trading_guard.banned_addresses}),
	'127.0.0.1 failures=4 for 00:10:00',
	'the fourth failure bans 127.0.0.1 for ban_time (banned_addresses)');
my $until = $node->safe_psql('postgres',
	'SELECT banned_until FROM trading_guard.banned_addresses');
$node->safe_psql('postgres', 'SELECT trading_guard.reset_connection_stats()');
is($node->safe_psql('postgres', $banned), '127.0.0.1',
	'reset_connection_stats keeps the ban');

$app = next_app('ban');
refused_in_handshake($node, tcp('127.0.0.1', 'alice', $app),
	'banned: alice from 127.0.0.1, allowed by the rules, is refused',
	$BANNED_DETAIL);
is(last_tcp_event($node), 'refused banned 127.0.0.1 - - cert=f rule=-',
	'banned: recorded as refused banned, in the handshake (role not known yet)');
is($node->safe_psql('postgres', 'SELECT banned_until FROM trading_guard.banned_addresses'),
	$until, 'a refusal while banned does not extend the ban');

$app = next_app('ban');
$node->connect_ok(tcp('::1', 'alice', $app), 'while 127.0.0.1 is banned, alice from ::1 gets in');
is(events($node, $app), 'allowed rule ::1 alice TLSv1.3 cert=f rule=1',
	'::1 is not banned: allowed by rule 1');
$node->connect_ok(tcp('::1', 'eve', next_app('ban')),
	'and eve from ::1 too');

# ---------------------------------------------------------------------------
# unban()
# ---------------------------------------------------------------------------

is($node->safe_psql('postgres', q{SELECT trading_guard.unban('127.0.0.1')}),
	't', 'unban(127.0.0.1) returns true: it was banned');
is($node->safe_psql('postgres', $banned), '', 'banned_addresses is empty after unban');
$node->connect_ok(tcp('127.0.0.1', 'alice', next_app('unban')),
	'after unban, alice from 127.0.0.1 gets in');
is($node->safe_psql('postgres', q{SELECT trading_guard.unban('127.0.0.1')}),
	'f', 'unban(127.0.0.1) again returns false: not banned');
is($node->safe_psql('postgres', q{SELECT trading_guard.unban('::1')}),
	'f', 'unban(::1) returns false: never banned');

# ---------------------------------------------------------------------------
# sslmode=prefer: the TLS attempt and libpq's plaintext retry count once
# ---------------------------------------------------------------------------

# unban() forgot 127.0.0.1's failures, so it starts from zero here: three
# prefer attempts are six refusals but three failures, no ban.
for my $i (1 .. 3)
{
	$app = next_app('prefer');
	fail_once(tcp('127.0.0.1', 'eve', $app, 'sslmode=prefer'),
		"sslmode=prefer attempt $i is refused");
	is( events($node, $app),
		"refused no_matching_rule 127.0.0.1 eve TLSv1.3 cert=f rule=-\n"
		  . 'refused no_tls 127.0.0.1 eve - cert=f rule=-',
		"sslmode=prefer attempt $i: two events (TLS, then the plaintext retry)");
}
is($node->safe_psql('postgres', $banned), '',
	'three sslmode=prefer attempts (six refusals) count three failures: not banned');

$app = next_app('prefer');
refused($node, tcp('127.0.0.1', 'eve', $app, 'sslmode=prefer'),
	'the fourth sslmode=prefer attempt',
	messages => [ 'connection refused', 'connection refused' ],
	details => [
		qr/no rule of trading_guard\.rules allows role "eve" from 127\.0\.0\.1/,
		$BANNED_DETAIL
	]);
is( events($node, $app),
	"refused no_matching_rule 127.0.0.1 eve TLSv1.3 cert=f rule=-\n"
	  . 'refused banned 127.0.0.1 eve - cert=f rule=-',
	'the fourth prefer attempt: its TLS attempt is the fourth failure, its retry meets the ban');
is($node->safe_psql('postgres', $banned), '127.0.0.1',
	'the fourth sslmode=prefer attempt bans 127.0.0.1');
is($node->safe_psql('postgres', q{SELECT trading_guard.unban('127.0.0.1')}),
	't', 'unban after the prefer attempts');

# Only a plaintext retry of the same role and database is not counted again:
# a refused TLS attempt of eve followed by a refused plaintext attempt of
# alice are two failures.  Two such pairs ban.
for my $i (1 .. 2)
{
	fail_once(tcp('127.0.0.1', 'eve', next_app('pair')),
		"pair $i: eve over TLS from 127.0.0.1 is refused");
	fail_once(tcp('127.0.0.1', 'alice', next_app('pair'), 'sslmode=disable'),
		"pair $i: then alice in plaintext from 127.0.0.1 is refused");
}
is($node->safe_psql('postgres', $banned), '127.0.0.1',
	'a plaintext failure of another role after a TLS failure counts: four failures ban');
is($node->safe_psql('postgres', q{SELECT trading_guard.unban('127.0.0.1')}),
	't', 'unban after the pairs');

# ---------------------------------------------------------------------------
# Wrong passwords (refused by PostgreSQL) count
# ---------------------------------------------------------------------------

for my $i (1 .. 3)
{
	$app = next_app('pw');
	$node->connect_fails(tcp('127.0.0.1', 'pwuser', $app, 'password=wrong'),
		"wrong password $i",
		expected_stderr => qr/FATAL:  connection refused\n?\z/);
	is(events($node, $app), 'refused password 127.0.0.1 pwuser TLSv1.3 cert=f rule=-',
		"wrong password $i: recorded as refused password");
}
is($node->safe_psql('postgres', $banned), '', 'three wrong passwords: not banned');
fail_once(tcp('127.0.0.1', 'pwuser', next_app('pw'), 'password=wrong'),
	'wrong password 4');
is($node->safe_psql('postgres', $banned), '127.0.0.1',
	'the fourth wrong password bans 127.0.0.1');
$app = next_app('pw');
refused_in_handshake($node, tcp('127.0.0.1', 'pwuser', $app, 'password=secret'),
	'banned: the right password does not help', $BANNED_DETAIL);
# ... and a wrong one is refused the same way: the refusal must not tell a
# banned client whether its password was right (no password oracle)
$app = next_app('pw');
refused_in_handshake($node, tcp('127.0.0.1', 'pwuser', $app, 'password=wrong'),
	'banned: a wrong password gets the same refusal as the right one',
	$BANNED_DETAIL);
is(last_tcp_event($node), 'refused banned 127.0.0.1 - - cert=f rule=-',
	'banned: the attempt recorded as a banned attempt');
is($node->safe_psql('postgres', q{SELECT trading_guard.unban('127.0.0.1')}),
	't', 'unban after the wrong passwords');

# ---------------------------------------------------------------------------
# Unix sockets never count
# ---------------------------------------------------------------------------

set_conf($node, 'trading_guard.allow_local' => 'off');
fail_once("host=" . $node->host . " port=$port dbname=postgres user=eve", "Unix socket refusal $_")
  foreach 1 .. 5;
set_conf($node, 'trading_guard.allow_local' => 'on');
is($node->safe_psql('postgres', 'SELECT count(*) FROM trading_guard.banned_addresses'),
	'0', 'five Unix-socket refusals ban nothing');

# ---------------------------------------------------------------------------
# IPv6 addresses are banned the same way
# ---------------------------------------------------------------------------

fail_once(tcp('::1', 'alice', next_app('v6'), 'sslmode=disable'),
	"plaintext from ::1: failure $_") foreach 1 .. 4;
is($node->safe_psql('postgres', $banned), '::1', 'four failures from ::1 ban ::1');
refused_in_handshake($node, tcp('::1', 'alice', next_app('v6')),
	'::1 banned: alice over TLS from ::1 is refused',
	qr/address ::1 is banned until/);
$node->connect_ok(tcp('127.0.0.1', 'alice', next_app('v6')),
	'::1 banned: 127.0.0.1 is not');
is($node->safe_psql('postgres', q{SELECT trading_guard.unban('::1')}),
	't', 'unban(::1) returns true');

# ---------------------------------------------------------------------------
# Failed TLS handshakes (a client certificate from an untrusted CA) count
# ---------------------------------------------------------------------------

my $untrusted = "sslcert=$certdir/untrusted.crt sslkey=$certdir/untrusted.key";
my $handshakes = q{SELECT count(*) FROM trading_guard.connection_events
	WHERE decision = 'refused' AND reason = 'tls_handshake' AND client_addr = '127.0.0.1'};
fail_once(tcp('127.0.0.1', 'alice', next_app('hs'), $untrusted),
	"untrusted client certificate: handshake failure $_") foreach 1 .. 3;
is($node->safe_psql('postgres', $handshakes), '3',
	'three handshake failures recorded as tls_handshake');
is($node->safe_psql('postgres', $banned), '', 'three handshake failures do not ban');
fail_once(tcp('127.0.0.1', 'alice', next_app('hs'), $untrusted),
	'untrusted client certificate: handshake failure 4');
is($node->safe_psql('postgres', $banned), '127.0.0.1',
	'the fourth handshake failure bans 127.0.0.1');
is($node->safe_psql('postgres', q{SELECT trading_guard.unban('127.0.0.1')}),
	't', 'unban after the handshake failures');

# ---------------------------------------------------------------------------
# Only failures within failure_window count (6 s: failures 4 to 7 must fit
# in it on a loaded machine)
# ---------------------------------------------------------------------------

my $offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM SET trading_guard.failure_window = '6s';
	SELECT pg_reload_conf()});
$node->wait_for_log(qr/parameter "trading_guard\.failure_window" changed to "6s"/, $offset);
for my $i (1 .. 3)
{
	$app = next_app('window');
	fail_once(tcp('127.0.0.1', 'eve', $app), "window: failure $i");
}
# Wait (polling the clock, no fixed sleep) until the three failures are all
# more than failure_window old.
my $last = $node->safe_psql('postgres',
	qq{SELECT event_time FROM trading_guard.connection_events WHERE application_name = '$app'});
ok( $node->poll_query_until('postgres',
		qq{SELECT clock_timestamp() > '$last'::timestamptz + interval '6.5 s'}),
	'window: 6.5 s passed since the third failure');
fail_once(tcp('127.0.0.1', 'eve', next_app('window')), 'window: failure 4, after the window');
is($node->safe_psql('postgres', $banned), '',
	'window: failures older than failure_window do not count, no ban');
fail_once(tcp('127.0.0.1', 'eve', next_app('window')), "window: failure $_, within the window")
  foreach 5 .. 7;
is($node->safe_psql('postgres', $banned), '127.0.0.1',
	'window: four failures within failure_window ban');
is($node->safe_psql('postgres', q{SELECT trading_guard.unban('127.0.0.1')}),
	't', 'unban after the window test');
$offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM RESET trading_guard.failure_window;
	SELECT pg_reload_conf()});
$node->wait_for_log(qr/parameter "trading_guard\.failure_window" changed to "1h"/, $offset);

# ---------------------------------------------------------------------------
# Log mode: refusals are would_refuse, a banned address is let in
# ---------------------------------------------------------------------------

set_conf($node, 'trading_guard.connection_policy' => 'log');
for my $i (1 .. 4)
{
	$app = next_app('log');
	$node->connect_ok(tcp('127.0.0.1', 'eve', $app),
		"log mode: eve from 127.0.0.1 gets in ($i)",
		log_like => [qr/LOG:  trading_guard: connection would be refused: [^\n]*"eve"/]);
	is(events($node, $app),
		'would_refuse no_matching_rule 127.0.0.1 eve TLSv1.3 cert=f rule=-',
		"log mode: recorded as would_refuse ($i)");
}
is($node->safe_psql('postgres', $banned), '127.0.0.1',
	'log mode: four would-be refusals ban 127.0.0.1 in banned_addresses');
$app = next_app('log');
$node->connect_ok(tcp('127.0.0.1', 'alice', $app),
	'log mode: the banned address is let in',
	log_like => [qr/LOG:  trading_guard: connection would be refused: [^\n]*$BANNED_DETAIL/]);
is(events($node, $app), 'would_refuse banned 127.0.0.1 alice TLSv1.3 cert=f rule=-',
	'log mode: recorded as would_refuse banned');
is($node->safe_psql('postgres', q{SELECT trading_guard.unban('127.0.0.1')}),
	't', 'unban after log mode');

# ---------------------------------------------------------------------------
# A ban expires after ban_time (10 s: the checks made while it holds must
# fit in it on a loaded machine; the expiry itself is polled for)
# ---------------------------------------------------------------------------

set_conf($node, 'trading_guard.connection_policy' => 'enforce');
$node->safe_psql('postgres', q{ALTER SYSTEM SET trading_guard.ban_time = '10s'});
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->wait_for_log(qr/parameter "trading_guard\.ban_time" changed to "10s"/, $offset);

fail_once(tcp('127.0.0.1', 'eve', next_app('expire')), "expiry: failure $_")
  foreach 1 .. 4;
is( $node->safe_psql('postgres', q{
		SELECT format('%s %s', host(client_addr), banned_until - banned_since)
		FROM trading_guard.banned_addresses}),
	'127.0.0.1 00:00:10', 'expiry: 127.0.0.1 is banned for 10 s');
refused_in_handshake($node, tcp('127.0.0.1', 'alice', next_app('expire')),
	'expiry: while banned, alice from 127.0.0.1 is refused', $BANNED_DETAIL);
ok( $node->poll_query_until('postgres',
		'SELECT count(*) = 0 FROM trading_guard.banned_addresses'),
	'expiry: the ban is gone from banned_addresses after ban_time');
$app = next_app('expire');
$node->connect_ok(tcp('127.0.0.1', 'alice', $app),
	'expiry: alice from 127.0.0.1 gets in again');
is(events($node, $app), 'allowed rule 127.0.0.1 alice TLSv1.3 cert=f rule=1',
	'expiry: allowed by rule 1');

$node->stop;
done_testing();
