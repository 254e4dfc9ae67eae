# test/t/008_conn_handshake.pl — what a client learns before the connection
# guard refuses it, seen on the wire by a small client of the protocol
# (libpq does not show the authentication messages it receives):
#
#  - a banned address and an address no rule admits are refused in the TLS
#    handshake: no authentication request at all (no AuthenticationSASL*,
#    so no password exchanged, and no SASLFinal that would say the password
#    was right); recorded as the guard's own refusal (banned,
#    no_matching_rule) and counted in connection_stats;
#  - a plaintext connection is still decided after authentication (the
#    documented limit): it does get SASLFinal with the right password;
#  - four roles probed with wrong passwords against the rules
#    "+traders 127.0.0.1; ops 127.0.0.1" (a member of traders, ops, a role
#    that exists but is not admitted, a role that does not exist) get the
#    same messages, and a byte-identical error, also with
#    log_min_messages = panic (when PostgreSQL calls no log hook);
#  - a FATAL with SQLSTATE 28000/28P01 raised in an authenticated session
#    is not counted as a failed login (six of them do not ban);
#  - a client that hangs up when asked for its password is neither recorded
#    nor counted, whether the allowlist admits its role or not (counting it
#    only for refused roles would tell the allowlist through the bans);
#  - role, database and application names that are not valid UTF-8 are
#    stored escaped, so connection_events reads under any client_encoding;
#    a backslash and a newline are escaped too, also in the guard's server
#    log lines, so a name cannot forge a log line or another name's escape.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use Digest::SHA qw(sha256 hmac_sha256);
use IO::Socket::IP;
use IO::Socket::SSL qw(SSL_VERIFY_NONE);
use MIME::Base64;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConnGuardTest;

my $certdir = PostgreSQL::Test::Utils::tempdir('certs');
make_certs($certdir);

my $node = PostgreSQL::Test::Cluster->new('conn_handshake');
$node->init;
$node->append_conf('postgresql.conf', ssl_conf($certdir));
$node->append_conf('postgresql.conf', q{
trading_guard.rules = '+traders 127.0.0.1; ops 127.0.0.1'
trading_guard.max_auth_failures = 5
trading_guard.failure_window = '1h'
trading_guard.ban_time = '10min'
});
open my $hba, '>', $node->data_dir . '/pg_hba.conf'
  or die "pg_hba.conf: $!";
print $hba <<'EOF';
local    all       all         trust
host     all       all         127.0.0.1/32  scram-sha-256
host     all       all         ::1/128       scram-sha-256
EOF
close $hba;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION trading_guard;
	CREATE ROLE traders NOLOGIN;
	CREATE ROLE trader1 LOGIN PASSWORD 'right' IN ROLE traders;
	CREATE ROLE ops LOGIN PASSWORD 'right';
	CREATE ROLE eve LOGIN PASSWORD 'right';
});

my $port = $node->port;

# One connection attempt on the wire.  Options: host, user, password, tls
# (send SSLRequest and do the handshake first), database, application,
# hangup (close the connection when asked for a password, as libpq does
# when it has none).
# Returns a hash: tls_failed (the handshake failed), msgs (each message
# received, as "R<code>" for an authentication message or its type letter
# for anything else), error (the raw bytes of the ErrorResponse, if any).
# The client speaks SCRAM-SHA-256 and nothing else.
sub wire
{
	my (%o) = @_;
	my %r = (msgs => [], tls_failed => 0, error => undef);
	my $sock = IO::Socket::IP->new(
		PeerHost => $o{host},
		PeerPort => $port,
		Proto => 'tcp') or die "connect to $o{host}: $!";
	my $readn = sub {
		my ($n) = @_;
		my $buf = '';
		while (length($buf) < $n)
		{
			my $got = $sock->sysread($buf, $n - length($buf), length($buf));
			return undef unless $got;
		}
		return $buf;
	};

	if ($o{tls} // 1)
	{
		$sock->syswrite(pack('NN', 8, 80877103));
		my $answer = $readn->(1);
		die "SSLRequest answered " . ($answer // 'nothing')
		  unless defined $answer && $answer eq 'S';
		if (!IO::Socket::SSL->start_SSL($sock, SSL_verify_mode => SSL_VERIFY_NONE))
		{
			$r{tls_failed} = 1;
			$r{tls_error} = $IO::Socket::SSL::SSL_ERROR;
			close $sock;
			return \%r;
		}
	}

	my $params = join('', map { "$_\0" }
		  user => $o{user},
		  database => $o{database} // 'postgres',
		  application_name => $o{application} // 'wire') . "\0";
	$sock->syswrite(pack('NN', 8 + length($params), 196608) . $params);

	my ($nonce, $client_first_bare, $server_signature);
	for (;;)
	{
		my $head = $readn->(5);
		last unless defined $head;
		my ($type, $len) = unpack('aN', $head);
		my $body = $len > 4 ? $readn->($len - 4) : '';
		last unless defined $body;
		if ($type eq 'R')
		{
			my $code = unpack('N', $body);
			push @{ $r{msgs} }, "R$code";
			last if $o{hangup} && $code == 10;
			if ($code == 10)		# AuthenticationSASL
			{
				$nonce = encode_base64(join('', map { chr(int(rand(256))) } 1 .. 18), '');
				$client_first_bare = "n=,r=$nonce";
				my $first = "n,,$client_first_bare";
				my $msg = "SCRAM-SHA-256\0" . pack('N', length($first)) . $first;
				$sock->syswrite('p' . pack('N', 4 + length($msg)) . $msg);
			}
			elsif ($code == 11)		# AuthenticationSASLContinue
			{
				my $server_first = substr($body, 4);
				my %f = map { /^(\w)=(.*)$/s ? ($1, $2) : () } split /,/, $server_first;
				my $salted = hi($o{password}, decode_base64($f{s}), $f{i});
				my $client_key = hmac_sha256('Client Key', $salted);
				my $without_proof = "c=biws,r=$f{r}";
				my $auth = "$client_first_bare,$server_first,$without_proof";
				my $signature = hmac_sha256($auth, sha256($client_key));
				my $proof = $client_key ^ $signature;
				my $final = "$without_proof,p=" . encode_base64($proof, '');
				$sock->syswrite('p' . pack('N', 4 + length($final)) . $final);
			}
		}
		else
		{
			push @{ $r{msgs} }, $type;
			if ($type eq 'E')
			{
				$r{error} = $head . $body;
				last;
			}
			if ($type eq 'Z')
			{
				$sock->syswrite('X' . pack('N', 4));
				last;
			}
		}
	}
	close $sock;
	return \%r;
}

# SCRAM's Hi(): PBKDF2 with HMAC-SHA-256, one block.
sub hi
{
	my ($password, $salt, $iterations) = @_;
	my $u = hmac_sha256($salt . pack('N', 1), $password);
	my $result = $u;
	for (2 .. $iterations)
	{
		$u = hmac_sha256($u, $password);
		$result ^= $u;
	}
	return $result;
}

# The fields of an ErrorResponse, for messages: "C=28000 M=connection refused".
sub fields
{
	my ($error) = @_;
	return 'none' unless defined $error;
	my %f = map { /^(.)(.*)$/s ? ($1, $2) : () } split /\0/, substr($error, 5);
	return "C=$f{C} M=$f{M}";
}

sub stat_count
{
	my ($decision, $reason) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT coalesce(sum(connections), 0) FROM trading_guard.connection_stats
		WHERE decision = '$decision' AND reason = '$reason'});
}

sub last_event
{
	return $node->safe_psql('postgres', q{
		SELECT format('%s %s %s %s', decision, reason, host(client_addr),
		              coalesce(role_name, '-'))
		FROM trading_guard.connection_events
		WHERE client_addr IS NOT NULL
		ORDER BY event_time DESC LIMIT 1});
}

# ---------------------------------------------------------------------------
# The right password over TLS from 127.0.0.1: the exchange ends in SASLFinal
# and the session starts (the client itself works)
# ---------------------------------------------------------------------------

my $r = wire(host => '127.0.0.1', user => 'ops', password => 'right');
is(join(' ', @{ $r->{msgs} }[0 .. 3]), 'R10 R11 R12 R0',
	'ops from 127.0.0.1 with the right password: SASL, SASLContinue, SASLFinal, OK');
is($r->{msgs}[-1], 'Z', 'ops from 127.0.0.1: the session starts');

# ---------------------------------------------------------------------------
# An address no rule admits: refused in the TLS handshake
# ---------------------------------------------------------------------------

my $offset = -s $node->logfile;
my $before = stat_count('refused', 'no_matching_rule');
$r = wire(host => '::1', user => 'ops', password => 'right');
ok($r->{tls_failed}, 'ops from ::1 (no rule admits ::1): the TLS handshake fails');
is(scalar @{ $r->{msgs} }, 0,
	'ops from ::1: no authentication request at all, so no SASLFinal either');
is(last_event(), 'refused no_matching_rule ::1 -',
	'ops from ::1: recorded as the guard\'s refusal (no_matching_rule), role unknown');
is(stat_count('refused', 'no_matching_rule'), $before + 1,
	'ops from ::1: counted in connection_stats');
is(stat_count('refused', 'tls_handshake'), 0,
	'ops from ::1: not counted as a generic handshake failure');
$node->log_check('::1 refused in the handshake', $offset,
	log_like => [qr/LOG:  trading_guard: connection refused in the TLS handshake\n[^\n]*DETAIL:  trading_guard: no rule of trading_guard\.rules allows any role from ::1/]);

# Plaintext is still decided after authentication: with the right password
# the client sees SASLFinal, then the refusal (README's threat model).
$r = wire(host => '::1', user => 'ops', password => 'right', tls => 0);
is(join(' ', @{ $r->{msgs} }), 'R10 R11 R12 E',
	'plaintext from ::1 (documented limit): SASLFinal, then the refusal');
is(fields($r->{error}), 'C=28000 M=TLS is required for connections to this server',
	'plaintext from ::1: refused as plaintext');

# ---------------------------------------------------------------------------
# Four roles probed with wrong passwords from 127.0.0.1 get the same answer
# ---------------------------------------------------------------------------

my %probe;
foreach my $role (qw(trader1 ops eve ghost))
{
	$probe{$role} = wire(host => '127.0.0.1', user => $role, password => 'wrong');
}
foreach my $role (qw(trader1 ops eve ghost))
{
	is(join(' ', @{ $probe{$role}{msgs} }), 'R10 R11 E',
		"probe $role: SASL, SASLContinue, then an error");
	is(fields($probe{$role}{error}), 'C=28000 M=connection refused',
		"probe $role: the guard's generic refusal");
}
foreach my $role (qw(ops eve ghost))
{
	ok( defined $probe{$role}{error}
		  && $probe{$role}{error} eq $probe{trader1}{error},
		"probe $role: the error is byte-identical to trader1's");
}

# ---------------------------------------------------------------------------
# A FATAL 28000/28P01 in an authenticated session is not a failed login
# ---------------------------------------------------------------------------

$before = stat_count('refused', 'password') + stat_count('refused', 'auth_failed');
foreach my $code (qw(28P01 28000 28P01 28000 28P01 28000))
{
	my ($ret, $out, $err) = $node->psql('postgres', qq{
		SET exit_on_error = on;
		DO \$\$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '$code'; END \$\$;},
		connstr => "host=127.0.0.1 port=$port dbname=postgres user=ops "
		  . "password=right sslmode=require sslcert=invalid sslkey=invalid");
	like($err, qr/FATAL:  x/, "authenticated session ends with FATAL $code");
}
is(stat_count('refused', 'password') + stat_count('refused', 'auth_failed'), $before,
	'six FATALs of SQLSTATE 28000/28P01 in sessions are not counted as failed logins');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM trading_guard.banned_addresses'),
	'0', 'six FATALs of 28000/28P01 in sessions do not ban the address');

# ---------------------------------------------------------------------------
# Hanging up when asked for the password is not a failed login, for a role
# the allowlist admits (ops) as for one it refuses (eve): were it counted for
# eve only, five hang-ups and one known failure would ban the address exactly
# when eve is not admitted.
# ---------------------------------------------------------------------------

my $events_before = $node->safe_psql('postgres', q{
	SELECT count(*) FROM trading_guard.connection_events
	WHERE client_addr IS NOT NULL});
foreach my $role (qw(eve ops eve ops eve ops eve))
{
	$r = wire(host => '127.0.0.1', user => $role, hangup => 1);
	is(join(' ', @{ $r->{msgs} }), 'R10', "$role hangs up when asked for a password");
}
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM trading_guard.connection_events
	WHERE client_addr IS NOT NULL}), $events_before,
	'hang-ups are not recorded, for admitted and refused roles alike');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM trading_guard.banned_addresses'),
	'0', 'hang-ups do not count towards a ban');

# ---------------------------------------------------------------------------
# Invalid UTF-8 in names is stored escaped
# ---------------------------------------------------------------------------

$r = wire(host => '127.0.0.1', user => "bad\xff\xferole", database => "db\xc3",
	application => "app\xe9x", password => 'wrong');
is(fields($r->{error}), 'C=28000 M=connection refused',
	'invalid UTF-8 role: refused');
my ($ret, $out, $err) = $node->psql('postgres', q{
	SET client_encoding = LATIN1;
	SELECT role_name, database_name, application_name
	FROM trading_guard.connection_events
	WHERE role_name LIKE 'bad%'});
is($ret, 0, 'connection_events reads under client_encoding LATIN1')
  or diag $err;
is($out, 'bad\xff\xferole|db\xc3|app?x',
	'invalid bytes are stored as \xNN escapes (PostgreSQL itself makes the application name ASCII)');

# A backslash would make a name ambiguous with another's escapes, a newline
# would forge a server log line.  (This is the sixth failure from 127.0.0.1
# in the window: it bans the address, which the next section expects.)
$offset = -s $node->logfile;
$r = wire(host => '127.0.0.1', user => "x\\x41y\nLOG:  forged", password => 'wrong');
is(fields($r->{error}), 'C=28000 M=connection refused', 'role with a newline: refused');
is($node->safe_psql('postgres', q{
	SELECT role_name FROM trading_guard.connection_events
	WHERE role_name LIKE 'x%forged'}),
	'x\x5cx41y\x0aLOG:  forged',
	'a backslash and a newline are stored as escapes');
$node->log_check('names escaped in the guard\'s log lines', $offset,
	log_like => [qr/role "x\\x5cx41y\\x0aLOG:  forged"/],
	log_unlike => [qr/^LOG:  forged/m]);

# ---------------------------------------------------------------------------
# A banned address: refused in the TLS handshake, even with the right password
# ---------------------------------------------------------------------------

# eve is not admitted: each attempt is a refusal that counts; more than
# five in the window ban (the address may be banned already).
wire(host => '127.0.0.1', user => 'eve', password => 'right') foreach 1 .. 6;
is($node->safe_psql('postgres',
		'SELECT host(client_addr) FROM trading_guard.banned_addresses'),
	'127.0.0.1', '127.0.0.1 is banned');

$offset = -s $node->logfile;
$before = stat_count('refused', 'banned');
$r = wire(host => '127.0.0.1', user => 'ops', password => 'right');
ok($r->{tls_failed}, 'banned: ops from 127.0.0.1 fails in the TLS handshake');
is(scalar @{ $r->{msgs} }, 0,
	'banned: no authentication request, no SASLFinal for the right password');
is(last_event(), 'refused banned 127.0.0.1 -', 'banned: recorded as refused banned');
is(stat_count('refused', 'banned'), $before + 1,
	'banned: the refusal during the ban is counted in connection_stats');
$node->log_check('banned refused in the handshake', $offset,
	log_like => [qr/LOG:  trading_guard: connection refused in the TLS handshake\n[^\n]*DETAIL:  trading_guard: address 127\.0\.0\.1 is banned until/]);

# ---------------------------------------------------------------------------
# log_min_messages = panic: PostgreSQL calls no emit_log_hook for a FATAL it
# does not log, so the guard's hook refuses a failed authentication itself
# and the four roles still get identical answers
# ---------------------------------------------------------------------------

$node->safe_psql('postgres', q{SELECT trading_guard.unban('127.0.0.1')});
$node->append_conf('postgresql.conf', "log_min_messages = panic\n");
$node->reload;
$node->poll_query_until('postgres',
	q{SELECT current_setting('log_min_messages') = 'panic'})
  or die 'log_min_messages = panic was not applied';

$before = stat_count('refused', 'password');
foreach my $role (qw(trader1 ops eve ghost))
{
	$probe{$role} = wire(host => '127.0.0.1', user => $role, password => 'wrong');
	is(join(' ', @{ $probe{$role}{msgs} }), 'R10 R11 E',
		"log_min_messages = panic, probe $role: SASL, SASLContinue, then an error");
	is(fields($probe{$role}{error}), 'C=28000 M=connection refused',
		"log_min_messages = panic, probe $role: the guard's generic refusal");
}
foreach my $role (qw(ops eve ghost))
{
	ok( defined $probe{$role}{error}
		  && $probe{$role}{error} eq $probe{trader1}{error},
		"log_min_messages = panic, probe $role: byte-identical to trader1's");
}
is(stat_count('refused', 'password'), $before + 2,
	'log_min_messages = panic: the wrong passwords of admitted roles are recorded');

$node->stop;
done_testing();
