# test/t/004_conn_guard.pl — the connection guard (ClientAuthentication_hook
# + emit_log_hook): TLS required over TCP (every sslmode), Unix sockets and
# trading_guard.allow_local, trading_guard.ssl_min_protocol (TLS 1.2 vs 1.3),
# the allowlist trading_guard.rules (per role, +group with direct and
# indirect membership, *, networks, cert rules with a valid, a missing and an
# untrusted client certificate, no allowlist), log and off modes, malformed
# rules on reload (the old rules stay) and at start (rules_invalid), what the
# client is told (only the generic message) and what the server log says
# (SQLSTATE 28000, a DETAIL with the reason), logins PostgreSQL itself
# refuses (pg_hba reject, no pg_hba entry, wrong password, pg_hba's
# clientcert=verify-full), the views connection_events (one row per attempt,
# a ring of max_connection_events) and connection_stats (exact counts) and
# who may read them, and the SQL interface without preloading (55000).
#
# One cluster for the whole file; 127.0.0.1 and ::1 are the two client
# addresses.  Bans are off here (max_auth_failures = 0): 005_conn_bans.pl
# covers them.

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

# The rules the server starts with, numbered as the guard numbers them:
#   1  certuser needs a client certificate, from both addresses
#   2  alice from 127.0.0.1 only
#   3  members of traders (carol directly, bob through desk) from ::1 only
#   4  a quoted role name
#   5  any role from 127.0.0.0/8
my $rules =
  'certuser 127.0.0.1, ::1 cert; alice 127.0.0.1; +traders ::1/128; '
  . '"Mixed Case" ::1; * 127.0.0.0/8';

my $node = PostgreSQL::Test::Cluster->new('conn_guard');
$node->init;
$node->append_conf('postgresql.conf', ssl_conf($certdir));
$node->append_conf('postgresql.conf', qq{
trading_guard.max_auth_failures = 0
trading_guard.rules = '$rules'
});

# "host", not "hostssl": PostgreSQL lets plaintext TCP in, so that it is the
# guard that refuses it.  hbareject meets a reject line; the database
# template1 has no line at all over TCP; pwuser needs a password; certhba
# needs a client certificate whose CN is its name (clientcert=verify-full).
open my $hba, '>', $node->data_dir . '/pg_hba.conf'
  or die "pg_hba.conf: $!";
print $hba <<'EOF';
local    all       all         trust
host     all       hbareject   127.0.0.1/32  reject
host     postgres  pwuser      127.0.0.1/32  scram-sha-256
hostssl  postgres  certhba     127.0.0.1/32  trust  clientcert=verify-full
host     postgres  all         127.0.0.1/32  trust
host     postgres  all         ::1/128       trust
EOF
close $hba;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION trading_guard;
	CREATE ROLE alice LOGIN;
	CREATE ROLE eve LOGIN;
	CREATE ROLE certuser LOGIN;
	CREATE ROLE hbareject LOGIN;
	CREATE ROLE certhba LOGIN;
	CREATE ROLE "Mixed Case" LOGIN;
	CREATE ROLE "mixed case" LOGIN;
	CREATE ROLE pwuser LOGIN PASSWORD 'secret';
	CREATE ROLE traders NOLOGIN;
	CREATE ROLE desk NOLOGIN IN ROLE traders;
	CREATE ROLE carol LOGIN IN ROLE traders;
	CREATE ROLE bob LOGIN IN ROLE desk;
	CREATE ROLE monitor LOGIN IN ROLE pg_read_all_stats;
	CREATE ROLE plain LOGIN;
});

my $port = $node->port;

# A TCP connection string: sslmode=require unless $extra says otherwise
# (later keywords win).  sslrootcert makes require check the server's chain
# too; sslcert=invalid keeps libpq from sending a certificate it might find
# in the home directory.
sub tcp
{
	my ($host, $user, $app, $extra) = @_;
	return "host=$host port=$port dbname=postgres user='$user' "
	  . "application_name=$app sslmode=require sslrootcert=$certdir/ca.crt "
	  . "sslcert=invalid sslkey=invalid "
	  . ($extra // '');
}

# A Unix-socket connection string.
sub unix
{
	my ($user, $app) = @_;
	return "host=" . $node->host . " port=$port dbname=postgres user=$user application_name=$app";
}

my $client_cert = "sslcert=$certdir/client.crt sslkey=$certdir/client.key";
my $TLS_REQUIRED = 'TLS is required for connections to this server';
my $app;

# The DETAIL of a refusal names the role and the address (or not, for a Unix
# socket) along with the reason words.
sub who
{
	my ($role, $addr) = @_;
	return qr/(?=[^\n]*"\Q$role\E")(?=[^\n]*\Q$addr\E)/;
}

# ---------------------------------------------------------------------------
# sslmode over TCP: TLS is required
# ---------------------------------------------------------------------------

$app = next_app('mode');
refused($node, tcp('127.0.0.1', 'alice', $app, 'sslmode=disable'),
	'sslmode=disable: plaintext TCP is refused',
	messages => [$TLS_REQUIRED],
	details => [ who('alice', '127.0.0.1') ]);
is(events($node, $app), 'refused no_tls 127.0.0.1 alice - cert=f rule=-',
	'sslmode=disable: one event, refused no_tls');

for my $mode ('prefer', 'require', 'verify-full')
{
	$app = next_app('mode');
	$node->connect_ok(tcp('127.0.0.1', 'alice', $app, "sslmode=$mode"),
		"sslmode=$mode: alice from 127.0.0.1 is allowed by rule 2");
	is( events($node, $app),
		'allowed rule 127.0.0.1 alice TLSv1.3 cert=f rule=2',
		"sslmode=$mode: one event, allowed by rule 2 over TLSv1.3");
}

# verify-full against ::1: the server certificate names IP ::1.
$app = next_app('mode');
$node->connect_ok(tcp('::1', 'carol', $app, 'sslmode=verify-full'),
	'sslmode=verify-full over ::1: carol is allowed (rule 3)');
is(events($node, $app), 'allowed rule ::1 carol TLSv1.3 cert=f rule=3',
	'sslmode=verify-full over ::1: allowed by rule 3');

# sslmode=prefer and a role no rule allows: libpq retries in plaintext after
# the refusal over TLS, so two attempts, two refusals, two events.
$app = next_app('mode');
refused($node, tcp('::1', 'eve', $app, 'sslmode=prefer'),
	'sslmode=prefer, eve from ::1: refused over TLS, then in plaintext',
	messages => [ 'connection refused', $TLS_REQUIRED ],
	details => [
		qr/no rule of trading_guard\.rules allows role "eve" from ::1/,
		who('eve', '::1')
	]);
is( events($node, $app),
	"refused no_matching_rule ::1 eve TLSv1.3 cert=f rule=-\n"
	  . 'refused no_tls ::1 eve - cert=f rule=-',
	'sslmode=prefer: the TLS attempt and the plaintext retry are both recorded');

# ---------------------------------------------------------------------------
# Unix sockets and allow_local
# ---------------------------------------------------------------------------

$app = next_app('local');
$node->connect_ok(unix('alice', $app), 'Unix socket: allowed (allow_local = on, no TLS there)');
is(events($node, $app), 'allowed local - alice - cert=f rule=-',
	'Unix socket: allowed with reason local, no address');

set_conf($node, 'trading_guard.allow_local' => 'off');
my $app_sock = next_app('local');
refused($node, unix('alice', $app_sock),
	'Unix socket with allow_local = off: refused',
	details => [qr/"alice"/]);
$app = next_app('local');
$node->connect_ok(tcp('127.0.0.1', 'alice', $app),
	'allow_local = off: TCP with TLS still works');
# The views are read over the Unix socket: allow it again first.
set_conf($node, 'trading_guard.allow_local' => 'on');
is(events($node, $app_sock), 'refused local_not_allowed - alice - cert=f rule=-',
	'allow_local = off: the Unix-socket attempt was refused local_not_allowed');
is(events($node, $app), 'allowed rule 127.0.0.1 alice TLSv1.3 cert=f rule=2',
	'allow_local = off: the TCP connection was allowed by rule 2');
$app = next_app('local');
$node->connect_ok(unix('alice', $app), 'allow_local back on: Unix socket allowed again');

# ---------------------------------------------------------------------------
# TLS versions and trading_guard.ssl_min_protocol
# ---------------------------------------------------------------------------

is($node->safe_psql('postgres', 'SHOW trading_guard.ssl_min_protocol'),
	'TLSv1.2', 'ssl_min_protocol defaults to TLSv1.2');
my $tls12 = 'ssl_max_protocol_version=TLSv1.2';
$app = next_app('tls');
$node->connect_ok(tcp('127.0.0.1', 'alice', $app, $tls12),
	'ssl_min_protocol = TLSv1.2: a TLS 1.2 client is allowed');
is(events($node, $app), 'allowed rule 127.0.0.1 alice TLSv1.2 cert=f rule=2',
	'the TLS 1.2 connection is recorded as TLSv1.2');

set_conf($node, 'trading_guard.ssl_min_protocol' => 'TLSv1.3');
$app = next_app('tls');
refused($node, tcp('127.0.0.1', 'alice', $app, $tls12),
	'ssl_min_protocol = TLSv1.3: a TLS 1.2 client is refused',
	details => [qr/TLSv1\.2 is older than trading_guard\.ssl_min_protocol \(TLSv1\.3\)/]);
is(events($node, $app), 'refused tls_version 127.0.0.1 alice TLSv1.2 cert=f rule=-',
	'ssl_min_protocol = TLSv1.3: refused tls_version');
$app = next_app('tls');
$node->connect_ok(tcp('127.0.0.1', 'alice', $app),
	'ssl_min_protocol = TLSv1.3: a TLS 1.3 client is allowed');
is(events($node, $app), 'allowed rule 127.0.0.1 alice TLSv1.3 cert=f rule=2',
	'the TLS 1.3 connection is recorded as TLSv1.3');

set_conf($node, 'trading_guard.ssl_min_protocol' => 'TLSv1.2');
$app = next_app('tls');
$node->connect_ok(tcp('127.0.0.1', 'alice', $app, $tls12),
	'ssl_min_protocol back to TLSv1.2: the TLS 1.2 client is allowed again');

# ---------------------------------------------------------------------------
# Rules: roles, groups, *, networks
# ---------------------------------------------------------------------------

# Each case: address, role, allowed rule number (undef: refused).
my @rule_cases = (
	[ '::1', 'alice', undef, 'alice is allowed from 127.0.0.1 only: refused from ::1' ],
	[ '::1', 'carol', 3, 'carol, a direct member of traders, from ::1: +traders' ],
	[ '::1', 'bob', 3, 'bob, a member of traders through desk, from ::1: +traders' ],
	[ '::1', 'eve', undef, 'eve, no member of traders, from ::1: refused' ],
	[ '::1', 'Mixed Case', 4, 'a quoted role name in a rule matches that role' ],
	[ '::1', 'mixed case', undef, 'a quoted role name matches case-sensitively' ],
	[ '127.0.0.1', 'eve', 5, 'eve from 127.0.0.1: the * rule' ],
	[ '127.0.0.1', 'bob', 5, 'bob from 127.0.0.1: +traders is ::1 only, the * rule allows' ],
	[ '127.0.0.1', 'Mixed Case', 5, 'the quoted role from 127.0.0.1: the * rule' ]);
for my $c (@rule_cases)
{
	my ($addr, $role, $rule, $name) = @$c;
	$app = next_app('rule');
	if (defined $rule)
	{
		$node->connect_ok(tcp($addr, $role, $app), $name);
		is(events($node, $app), "allowed rule $addr $role TLSv1.3 cert=f rule=$rule",
			"$name: event says rule $rule");
	}
	else
	{
		refused($node, tcp($addr, $role, $app), $name,
			details => [qr/no rule of trading_guard\.rules allows role "\Q$role\E" from \Q$addr\E/]);
		is(events($node, $app), "refused no_matching_rule $addr $role TLSv1.3 cert=f rule=-",
			"$name: event says no_matching_rule");
	}
}

# ---------------------------------------------------------------------------
# cert rules
# ---------------------------------------------------------------------------

$app = next_app('cert');
$node->connect_ok(tcp('127.0.0.1', 'certuser', $app, $client_cert),
	'cert rule: certuser with a client certificate signed by the CA is allowed');
is(events($node, $app), 'allowed rule 127.0.0.1 certuser TLSv1.3 cert=t rule=1',
	'cert rule: recorded with client_cert true, rule 1');

# Rule 1 matches certuser from 127.0.0.1 and decides, even though rule 5
# (*) would allow the address.
$app = next_app('cert');
refused($node, tcp('127.0.0.1', 'certuser', $app),
	'cert rule: certuser without a client certificate is refused',
	details => [qr/rule 1 \b[^\n]*requires a (?:valid )?client certificate/]);
is(events($node, $app),
	'refused client_cert_required 127.0.0.1 certuser TLSv1.3 cert=f rule=1',
	'cert rule: refused client_cert_required by rule 1');

# A certificate from a CA the server does not trust: PostgreSQL's TLS
# handshake fails before any role is known, and the log hook records it.
my $handshakes = q{SELECT count(*) FROM trading_guard.connection_events
	WHERE reason = 'tls_handshake' AND decision = 'refused' AND client_addr = '127.0.0.1'};
my $handshakes_before = $node->safe_psql('postgres', $handshakes);
# The server sends the TLS alert first and logs and records the failure
# after it: wait for the log line and the event rather than reading them
# once as soon as the client has its error.
my $handshake_offset = -s $node->logfile;
$node->connect_fails(
	tcp('127.0.0.1', 'certuser', next_app('cert'),
		"sslcert=$certdir/untrusted.crt sslkey=$certdir/untrusted.key"),
	'cert rule: a client certificate from an untrusted CA is refused',
	expected_stderr => qr/SSL error: tlsv1 alert unknown ca/);
ok($node->wait_for_log(qr/could not accept SSL connection: certificate verify failed/,
		$handshake_offset),
	'cert rule: the server logs the failed handshake');
ok($node->poll_query_until('postgres', "SELECT ($handshakes) >= $handshakes_before + 1"),
	'the failed handshake is recorded');
is($node->safe_psql('postgres', $handshakes), $handshakes_before + 1,
	'the failed handshake is recorded once, refused tls_handshake from 127.0.0.1');
is( $node->safe_psql('postgres', q{
		SELECT format('%s %s', coalesce(role_name, '-'), coalesce(rule::text, '-'))
		FROM trading_guard.connection_events WHERE reason = 'tls_handshake'
		ORDER BY event_time DESC LIMIT 1}),
	'- -', 'a failed handshake has no role yet, and no rule');

# ---------------------------------------------------------------------------
# Logins PostgreSQL itself refuses, seen by the log hook
# ---------------------------------------------------------------------------

$app = next_app('pg');
$node->connect_fails(tcp('127.0.0.1', 'hbareject', $app),
	'pg_hba reject line: refused by PostgreSQL',
	expected_stderr => qr/FATAL:  connection refused\n?\z/,
	log_like => [qr/28000 [^\n]*FATAL:  connection refused\n[^\n]*DETAIL:  trading_guard: PostgreSQL refused the login: pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "hbareject"/]);
is(events($node, $app), 'refused hba_reject 127.0.0.1 hbareject TLSv1.3 cert=f rule=-',
	'pg_hba reject: recorded as refused hba_reject');

$app = next_app('pg');
$node->connect_fails(tcp('127.0.0.1', 'alice', $app, 'dbname=template1'),
	'no pg_hba.conf entry: refused by PostgreSQL',
	expected_stderr => qr/FATAL:  connection refused\n?\z/,
	log_like => [qr/DETAIL:  trading_guard: PostgreSQL refused the login: no pg_hba\.conf entry for host "127\.0\.0\.1", user "alice", database "template1"/]);
is(events($node, $app), 'refused hba_no_entry 127.0.0.1 alice TLSv1.3 cert=f rule=-',
	'no pg_hba entry: recorded as refused hba_no_entry');

$app = next_app('pg');
$node->connect_fails(tcp('127.0.0.1', 'pwuser', $app, 'password=wrong'),
	'wrong password: refused by PostgreSQL',
	expected_stderr => qr/FATAL:  connection refused\n?\z/,
	log_like => [qr/28000 [^\n]*FATAL:  connection refused\n[^\n]*DETAIL:  trading_guard: PostgreSQL refused the login: password authentication failed for user "pwuser"/]);
is(events($node, $app), 'refused password 127.0.0.1 pwuser TLSv1.3 cert=f rule=-',
	'wrong password: recorded as refused password');

# pg_hba's client certificate check (clientcert=verify-full): no certificate,
# and a valid one whose CN (certuser) is not the role.
$app = next_app('pg');
$node->connect_fails(tcp('127.0.0.1', 'certhba', $app),
	'clientcert=verify-full without a certificate: refused by PostgreSQL',
	expected_stderr => qr/FATAL:  connection refused\n?\z/,
	log_like => [qr/DETAIL:  trading_guard: PostgreSQL refused the login: connection requires a valid client certificate/]);
is(events($node, $app), 'refused client_cert 127.0.0.1 certhba TLSv1.3 cert=f rule=-',
	'clientcert=verify-full without a certificate: recorded as refused client_cert');
$app = next_app('pg');
$node->connect_fails(tcp('127.0.0.1', 'certhba', $app, $client_cert),
	'clientcert=verify-full, CN certuser for role certhba: refused by PostgreSQL',
	expected_stderr => qr/FATAL:  connection refused\n?\z/,
	log_like => [qr/certificate validation \(clientcert=verify-full\) failed for user "certhba": CN mismatch/]);
is(events($node, $app), 'refused client_cert 127.0.0.1 certhba TLSv1.3 cert=t rule=-',
	'clientcert=verify-full, CN mismatch: recorded as refused client_cert');

$app = next_app('pg');
$node->connect_ok(tcp('127.0.0.1', 'pwuser', $app, 'password=secret'),
	'right password: pwuser is allowed (rule 5)');
is(events($node, $app), 'allowed rule 127.0.0.1 pwuser TLSv1.3 cert=f rule=5',
	'right password: one event, allowed by rule 5');

# ---------------------------------------------------------------------------
# connection_policy: log and off
# ---------------------------------------------------------------------------

set_conf($node, 'trading_guard.connection_policy' => 'log');
$app = next_app('policy');
$node->connect_ok(tcp('::1', 'alice', $app),
	'log mode: alice from ::1 gets in',
	log_like => [
		qr/LOG:  trading_guard: connection would be refused: [^\n]*no rule of trading_guard\.rules allows role "alice" from ::1/
	]);
is(events($node, $app), 'would_refuse no_matching_rule ::1 alice TLSv1.3 cert=f rule=-',
	'log mode: recorded as would_refuse no_matching_rule');
$app = next_app('policy');
$node->connect_ok(tcp('127.0.0.1', 'alice', $app, 'sslmode=disable'),
	'log mode: plaintext TCP gets in',
	log_like => [qr/LOG:  trading_guard: connection would be refused: [^\n]*"alice"/],
	log_unlike => [qr/FATAL:  (?:connection refused|TLS is required)/]);
is(events($node, $app), 'would_refuse no_tls 127.0.0.1 alice - cert=f rule=-',
	'log mode: recorded as would_refuse no_tls');

set_conf($node, 'trading_guard.connection_policy' => 'off');
$app = next_app('policy');
$node->connect_ok(tcp('::1', 'alice', $app, 'sslmode=disable'),
	'off: plaintext from a role no rule allows gets in',
	# Only the guard's own lines: other parts of trading_guard (the key ring
	# worker, reloading on the SIGHUP that set_conf sent) may still be
	# logging when this connection is made.
	log_unlike => [qr/trading_guard: (?:connection|client address)|FATAL:  (?:connection refused|TLS is required)/]);
is(events($node, $app), '', 'off: nothing recorded');

set_conf($node, 'trading_guard.connection_policy' => 'enforce');
$app = next_app('policy');
refused($node, tcp('::1', 'alice', $app), 'enforce again: alice from ::1 is refused',
	details => [qr/no rule of trading_guard\.rules allows role "alice" from ::1/]);

# ---------------------------------------------------------------------------
# Malformed rules on reload: refused by the check hook, the old rules stay
# ---------------------------------------------------------------------------

# Each case: the bad value, and what the DETAIL must show of it after the
# rule's number: the bad token, or what is missing.
my @bad_rules = (
	[ 'alice 10.0.0.0/33', qr{"10\.0\.0\.0/33"} ],
	[ 'alice "unterminated 127.0.0.1', qr/unterminated/ ],
	[ 'alice', qr/network/ ]);
for my $bad (@bad_rules)
{
	my ($value, $token) = @$bad;
	my $offset = -s $node->logfile;
	$node->append_conf('postgresql.conf', "trading_guard.rules = '$value'");
	$node->reload;
	# The postmaster logs the refused value, then, once done with the file,
	# that it contained errors.
	$node->wait_for_log(qr/contains errors/, $offset);
	like(
		slurp_file($node->logfile, $offset),
		qr/invalid value for parameter "trading_guard\.rules": "\Q$value\E"\n[^\n]*DETAIL:  Rule 1\b[^\n]*$token/,
		"malformed rules '$value': refused on reload, the DETAIL names the bad part");
	$node->connect_ok(tcp('127.0.0.1', 'alice', next_app('bad')),
		"after '$value': the old rules still allow alice from 127.0.0.1");
	$app = next_app('bad');
	refused($node, tcp('::1', 'alice', $app),
		"after '$value': the old rules still refuse alice from ::1",
		details => [qr/no rule of trading_guard\.rules allows role "alice" from ::1/]);
}
is($node->safe_psql('postgres', 'SHOW trading_guard.rules'), $rules,
	'after the malformed values, trading_guard.rules is the old value');
my ($ret, $out, $err) = $node->psql('postgres',
	q{ALTER SYSTEM SET trading_guard.rules = 'alice 10.0.0.0/33'});
like($err, qr/ERROR:  invalid value for parameter "trading_guard\.rules"/,
	'ALTER SYSTEM refuses a malformed value at once');

# A valid change takes effect: alice from ::1 only now.
set_conf($node, 'trading_guard.rules' => 'alice ::1');
$app = next_app('new');
$node->connect_ok(tcp('::1', 'alice', $app), 'new rules: alice from ::1 is allowed');
is(events($node, $app), 'allowed rule ::1 alice TLSv1.3 cert=f rule=1',
	'new rules: allowed by the new rule 1');
refused_in_handshake($node, tcp('127.0.0.1', 'alice', next_app('new')),
	'new rules: alice from 127.0.0.1 (no rule admits it) is refused',
	qr/no rule of trading_guard\.rules allows any role from 127\.0\.0\.1/);
is(last_tcp_event($node), 'refused no_matching_rule 127.0.0.1 - - cert=f rule=-',
	'new rules: refused no_matching_rule in the handshake, before the role is known');

# rules = '': no allowlist, any role from anywhere, TLS still required.
set_conf($node, 'trading_guard.rules' => '');
$app = next_app('new');
$node->connect_ok(tcp('127.0.0.1', 'eve', $app), 'no allowlist: eve from 127.0.0.1 is allowed');
is(events($node, $app), 'allowed no_allowlist 127.0.0.1 eve TLSv1.3 cert=f rule=-',
	'no allowlist: allowed with reason no_allowlist');
refused($node, tcp('127.0.0.1', 'eve', next_app('new'), 'sslmode=disable'),
	'no allowlist: plaintext is still refused',
	messages => [$TLS_REQUIRED],
	details => [ who('eve', '127.0.0.1') ]);
# nobody 127.0.0.1 lets 127.0.0.1 through the TLS handshake, so that the
# refusals below are decided after it.
set_conf($node, 'trading_guard.rules' => 'alice ::1; nobody 127.0.0.1');

# ---------------------------------------------------------------------------
# connection_stats: exact counts of a known set of attempts
# ---------------------------------------------------------------------------

# The session that resets is counted before the reset; nothing else connects
# until the query below, whose own session (Unix socket) is the one "local".
my ($t0, undef, $t1) = split /\n/, $node->safe_psql('postgres', q{
	SELECT clock_timestamp();
	SELECT trading_guard.reset_connection_stats();
	SELECT clock_timestamp();});
$node->connect_ok(tcp('::1', 'alice', next_app('stats')), 'stats: alice from ::1 allowed');
$node->connect_ok(tcp('::1', 'alice', next_app('stats')), 'stats: alice from ::1 allowed again');
my @stats_refused = (
	[ '127.0.0.1', 'alice', '', 'alice from 127.0.0.1 (no_matching_rule)' ],
	[ '127.0.0.1', 'alice', 'sslmode=disable', 'plaintext (no_tls)' ],
	[ '127.0.0.1', 'hbareject', '', 'the pg_hba reject line (hba_reject)' ],
	[ '127.0.0.1', 'alice', 'dbname=template1', 'no pg_hba entry (hba_no_entry)' ],
	# refused by the rules whatever the password: the guard's refusal hides
	# that the password was wrong (no password oracle for a refused address)
	[ '127.0.0.1', 'pwuser', 'password=wrong', 'a wrong password where no rule allows pwuser (no_matching_rule)' ]);
for my $c (@stats_refused)
{
	my ($addr, $role, $extra, $name) = @$c;
	my $ret = $node->psql('postgres', undef,
		connstr => tcp($addr, $role, next_app('stats'), $extra),
		extra_params => ['-w']);
	isnt($ret, 0, "stats: refused: $name");
}
is( $node->safe_psql('postgres', q{
		SELECT decision, reason, connections FROM trading_guard.connection_stats
		ORDER BY decision, reason}),
	join("\n",
		'allowed|local|1', 'allowed|rule|2',
		'refused|hba_no_entry|1', 'refused|hba_reject|1',
		'refused|no_matching_rule|2', 'refused|no_tls|1'),
	'connection_stats counts exactly the attempts made since the reset');
is(events($node, $app_sock), 'refused local_not_allowed - alice - cert=f rule=-',
	'reset_connection_stats keeps the events');
is( $node->safe_psql('postgres', qq{
		SELECT count(DISTINCT stats_reset) = 1 AND bool_and(stats_reset BETWEEN '$t0' AND '$t1')
		FROM trading_guard.connection_stats}),
	't', 'connection_stats: stats_reset is the time of the reset');

# ---------------------------------------------------------------------------
# Who may read the views
# ---------------------------------------------------------------------------

for my $view (qw(connection_events connection_stats banned_addresses))
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT count(*) FROM trading_guard.$view",
		connstr => unix('plain', 'perm'));
	like($err, qr/permission denied for view $view/,
		"$view: a plain role gets permission denied");
	($ret, $out, $err) = $node->psql('postgres',
		"SELECT count(*) >= 0 FROM trading_guard.$view",
		connstr => unix('monitor', 'perm'));
	is("$ret $out", '0 t', "$view: a member of pg_read_all_stats reads it");
}
for my $call ('reset_connection_stats()', q{unban('127.0.0.1')})
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT trading_guard.$call", connstr => unix('monitor', 'perm'));
	like($err, qr/permission denied for function/,
		"$call: not for a member of pg_read_all_stats (superuser only)");
}

# trading_guard.rules is superuser-only: a plain role may not even read it.
($ret, $out, $err) = $node->psql('postgres', 'SHOW trading_guard.rules',
	connstr => unix('plain', 'perm'));
like($err, qr/to examine "trading_guard\.rules"/,
	'a plain role cannot SHOW trading_guard.rules');

# All the refusals above came from two addresses, far more than the default
# max_auth_failures each: with max_auth_failures = 0 nothing is banned.
is($node->safe_psql('postgres', 'SELECT count(*) FROM trading_guard.banned_addresses'),
	'0', 'max_auth_failures = 0: no address banned');

# ---------------------------------------------------------------------------
# Malformed rules at server start: every TCP connection refused until fixed
# ---------------------------------------------------------------------------

# A small ring of events too (a postmaster setting), checked below.
$node->append_conf('postgresql.conf', q{
trading_guard.rules = 'alice 10.0.0.0/33'
trading_guard.max_connection_events = 10
});
$node->restart;
$app = next_app('start');
refused($node, tcp('127.0.0.1', 'alice', $app),
	'malformed rules at start: TCP refused',
	details => [ who('alice', '127.0.0.1') ]);
is(events($node, $app), 'refused rules_invalid 127.0.0.1 alice TLSv1.3 cert=f rule=-',
	'malformed rules at start: refused rules_invalid');
$node->connect_ok(unix('alice', next_app('start')),
	'malformed rules at start: the Unix socket follows allow_local');
set_conf($node, 'trading_guard.rules' => 'alice 127.0.0.1');
$app = next_app('start');
$node->connect_ok(tcp('127.0.0.1', 'alice', $app),
	'a valid value loaded by reload ends rules_invalid');
is(events($node, $app), 'allowed rule 127.0.0.1 alice TLSv1.3 cert=f rule=1',
	'after the fix: allowed by the new rule 1');

# ---------------------------------------------------------------------------
# max_connection_events: the ring keeps the latest events, oldest first
# ---------------------------------------------------------------------------

my @ring_apps = map { next_app('ring') } 1 .. 11;
$node->connect_ok(tcp('127.0.0.1', 'alice', $_), "ring: connection $_")
  foreach @ring_apps;
# The session reading the view is itself the latest event: the ring of 10
# (the smallest allowed) holds the last nine ring connections and it.
is( $node->safe_psql('postgres', q{
		SELECT string_agg(CASE WHEN application_name LIKE 'ring%'
		                       THEN application_name ELSE 'reader' END, ',' ORDER BY n)
		FROM (SELECT application_name, row_number() OVER () AS n
		      FROM trading_guard.connection_events) e}),
	join(',', @ring_apps[ 2 .. 10 ], 'reader'),
	'max_connection_events = 10: the last ten events, oldest first');

# ---------------------------------------------------------------------------
# Without shared_preload_libraries the SQL interface says so
# ---------------------------------------------------------------------------

$node->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$node->restart;
for my $sql (
	'SELECT * FROM trading_guard.connection_events',
	'SELECT * FROM trading_guard.connection_stats',
	'SELECT * FROM trading_guard.banned_addresses',
	'SELECT trading_guard.reset_connection_stats()',
	q{SELECT trading_guard.unban('127.0.0.1')})
{
	($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:  55000: [\s\S]*HINT:  [^\n]*shared_preload_libraries/,
		"not preloaded: $sql fails with 55000 and a hint");
}

$node->stop;
done_testing();
