# test/t/ConnGuardTest.pm — helpers shared by the connection guard TAP tests
# (004_conn_guard.pl, 005_conn_bans.pl): test certificates made on the fly,
# configuration changes that wait until the postmaster applied them,
# refused connections checked from both ends, and the guard's events of one
# connection attempt.
#
# Each attempt of a test carries its own application_name (next_app), so
# that connection_events can be searched for exactly the rows it produced.

package ConnGuardTest;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT =
  qw(make_certs ssl_conf set_conf next_app refused refused_in_handshake events last_tcp_event);

# Make, with the openssl command, into $dir (a tempdir of the test, never
# the repository):
#   ca.crt            the CA the server trusts (ssl_ca_file)
#   server.crt/.key   CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   client.crt/.key   CN=certuser, signed by ca
#   untrusted.crt/.key  CN=certuser too, signed by another CA the server
#                     does not know
# Keys are 0600: the server refuses a group-readable key file and libpq a
# group-readable client key.
sub make_certs
{
	my ($dir) = @_;

	my $openssl = sub {
		run_log([ 'openssl', @_ ])
		  or BAIL_OUT("openssl @_ failed");
	};
	my $ca = sub {
		my ($name, $cn) = @_;
		$openssl->(
			'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
			'-subj', "/CN=$cn", '-keyout', "$dir/$name.key",
			'-out', "$dir/$name.crt");
		chmod 0600, "$dir/$name.key";
	};
	my $cert = sub {
		my ($name, $cn, $ca_name, $ext) = @_;
		open my $fh, '>', "$dir/$name.ext" or die "$dir/$name.ext: $!";
		print $fh "$ext\n";
		close $fh;
		$openssl->(
			'req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', "/CN=$cn",
			'-keyout', "$dir/$name.key", '-out', "$dir/$name.csr");
		$openssl->(
			'x509', '-req', '-in', "$dir/$name.csr",
			'-CA', "$dir/$ca_name.crt", '-CAkey', "$dir/$ca_name.key",
			'-CAcreateserial', '-days', '2', '-extfile', "$dir/$name.ext",
			'-out', "$dir/$name.crt");
		chmod 0600, "$dir/$name.key";
	};

	$ca->('ca', 'trading_guard test CA');
	$ca->('otherca', 'trading_guard untrusted CA');
	$cert->('server', 'localhost', 'ca',
		'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1');
	$cert->('client', 'certuser', 'ca', 'extendedKeyUsage=clientAuth');
	$cert->('untrusted', 'certuser', 'otherca', 'extendedKeyUsage=clientAuth');
	return;
}

# postgresql.conf lines for a preloaded, TLS-enabled server listening on
# both loopback addresses, so that 127.0.0.1 and ::1 are two distinct client
# addresses.  %e in the log line prefix puts each message's SQLSTATE in the
# server log.
sub ssl_conf
{
	my ($certdir) = @_;
	return qq{
shared_preload_libraries = 'trading_guard'
ssl = on
ssl_cert_file = '$certdir/server.crt'
ssl_key_file = '$certdir/server.key'
ssl_ca_file = '$certdir/ca.crt'
listen_addresses = '127.0.0.1,::1'
log_line_prefix = '%m [%p] %e %q%a '
};
}

# Append "name = 'value'" lines to postgresql.conf, reload, and wait until
# the postmaster has applied every one of them: it logs
#   parameter "NAME" changed to "VALUE"
# once the new value is in place, and each backend forked after that
# inherits it.  Waiting on the log rather than on a query works while
# allow_local = off too, and opens no connection that the guard would count.
# Every value must differ from the current one (else nothing is logged).
sub set_conf
{
	my ($node, @settings) = @_;
	my $offset = -s $node->logfile;
	my @pairs;
	push @pairs, [ splice(@settings, 0, 2) ] while @settings;
	$node->append_conf('postgresql.conf',
		join('', map { "$_->[0] = '$_->[1]'\n" } @pairs));
	$node->reload;
	$node->wait_for_log(
		qr/parameter "\Q$_->[0]\E" changed to "\Q$_->[1]\E"/, $offset)
	  foreach @pairs;
	return;
}

# A fresh application_name for one connection attempt.
my $app_counter = 0;

sub next_app
{
	my ($prefix) = @_;
	return sprintf('%s_%03d', $prefix, ++$app_counter);
}

# The guard's events for application_name $app, oldest first, one line each:
#   "DECISION REASON ADDRESS ROLE TLS-VERSION cert=BOOL rule=N"
# with "-" for a NULL address (Unix socket), role, TLS version or rule.
sub events
{
	my ($node, $app) = @_;
	return $node->safe_psql(
		'postgres', qq{
		SELECT format('%s %s %s %s %s cert=%s rule=%s', decision, reason,
		              coalesce(host(client_addr), '-'), coalesce(role_name, '-'),
		              coalesce(ssl_version, '-'), client_cert,
		              coalesce(rule::text, '-'))
		FROM trading_guard.connection_events
		WHERE application_name = '$app'
		ORDER BY event_time});
}

# A connection attempt the guard must refuse; as $node->connect_fails, but
# the client's standard error is checked line by line.  libpq starts each
# attempt's line with its own words ('connection to server at "HOST", port N
# failed: ' or '... on socket "PATH" failed: '); what follows is what the
# server sent, and it must be exactly "FATAL:  <message>": no DETAIL, no
# HINT, nothing that names a rule, a network or the client's address.
#
#   messages => [ ... ]  the server's message of each attempt, in order
#                        (libpq's sslmode=prefer makes two); default one
#                        "connection refused"
#   details  => [ qr// ] for each attempt, what the server log's DETAIL line
#                        must match after "trading_guard: ".  The log line of
#                        the message must carry SQLSTATE 28000, and the
#                        DETAIL come from the same process.
sub refused
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($node, $connstr, $name, %p) = @_;
	my @messages = @{ $p{messages} // ['connection refused'] };
	my @details = @{ $p{details} // [] };
	die "refused: one detail per message" unless @details == @messages;

	my $offset = -s $node->logfile;
	my ($ret, $out, $err) = $node->psql(
		'postgres', undef,
		connstr => $connstr,
		extra_params => ['-w'],
		on_error_stop => 0);
	isnt($ret, 0, "$name: refused");

	my $sent = join "\n", map {
		s/^(?:psql: error: )?connection to server (?:at "[^"]*"(?: \([^)]*\))?, port \d+|on socket "[^"]*") failed: //r
	} split /\n/, $err;
	is($sent, join("\n", map { "FATAL:  $_" } @messages),
		"$name: the client gets only the generic message");
	unlike($sent, qr{rule|trading_guard|DETAIL|HINT|127\.0\.0\.1|::1|/\d},
		"$name: the client is told no rule, network or address");

	# One pattern for all attempts, in order (two attempts may get the same
	# message).
	my $log_re = join '[\s\S]*', map {
		qr/\[(?<pid$_>\d+)\] 28000 [^\n]*FATAL:  \Q$messages[$_]\E\n[^\n]*\[\k<pid$_>\] 28000 [^\n]*DETAIL:  trading_guard: [^\n]*$details[$_]/
	} 0 .. $#messages;
	$node->log_check($name, $offset, log_like => [qr/$log_re/]);
	return;
}

# A TLS attempt the guard refuses in the handshake (a banned address, or one
# no rule admits): the client gets a TLS "access denied" alert and nothing
# from PostgreSQL, so no password was exchanged; the server log has the
# guard's line, whose DETAIL must match $detail after "trading_guard: ".
sub refused_in_handshake
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($node, $connstr, $name, $detail) = @_;
	my $offset = -s $node->logfile;
	my ($ret, $out, $err) = $node->psql(
		'postgres', undef,
		connstr => $connstr,
		extra_params => ['-w'],
		on_error_stop => 0);
	isnt($ret, 0, "$name: refused");
	like($err, qr/SSL error: tlsv1 alert access denied/,
		"$name: refused in the TLS handshake");
	unlike($err, qr{FATAL|rule|trading_guard|DETAIL|HINT},
		"$name: the client is told nothing else");
	$node->log_check($name, $offset,
		log_like => [
			qr/LOG:  trading_guard: connection refused in the TLS handshake\n[^\n]*DETAIL:  trading_guard: [^\n]*$detail/
		]);
	return;
}

# The last event of a TCP attempt, as events() formats it: for attempts
# refused in the TLS handshake, which sent no application_name.
sub last_tcp_event
{
	my ($node) = @_;
	return $node->safe_psql(
		'postgres', q{
		SELECT format('%s %s %s %s %s cert=%s rule=%s', decision, reason,
		              coalesce(host(client_addr), '-'), coalesce(role_name, '-'),
		              coalesce(ssl_version, '-'), client_cert,
		              coalesce(rule::text, '-'))
		FROM trading_guard.connection_events
		WHERE client_addr IS NOT NULL
		ORDER BY event_time DESC LIMIT 1});
}

1;
