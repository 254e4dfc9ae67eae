# test/t/015_checklist.pl — security_checklist() (1.8) on a configured
# server, for what a session cannot change (sql/checklist.sql covers the
# rest):
#
#   1. a server set up like test/live.sh's demo (TLS with a certificate made
#      here, the guard preloaded and enforcing, an allowlist, pg_hba.conf with
#      hostssl + scram-sha-256 and a final reject, a key file outside the
#      data directory, security events and sealing in this database,
#      log_connections, WAL archiving that works, a protected and audited
#      order table with a registry, order limits, an on-call role, the audit
#      trail verified): no check fails; the warn and skip rows are listed
#      (diag); security_checklist_json() counts what security_checklist()
#      returns
#   2. pg_hba.conf both ways: a host line before a hostssl line for the same
#      or a narrower network (with the guard enforcing, logging, off), a
#      hostssl trust line (also auth.md5_passwords: roles without a password
#      it lets in), a malformed line, a superuser allowed from the
#      network by name or as a member of a +group, the check's own remedy (a
#      reject line for the superuser first); the good file again
#   3. settings both ways (ALTER SYSTEM, reload): connection_policy log and
#      off, TLS older than 1.2 (ssl_min_protocol_version and the guard's
#      trading_guard.ssl_min_protocol), an empty allowlist and one of empty
#      rules only, open rules (also spelled "ALL", or * among other roles),
#      max_auth_failures 0, alert_events empty, archive_command empty and
#      failing
#   4. the key file both ways: mode 0640, then 0600 again (no reload: the
#      checklist stats the file itself); a key file inside the data directory
#   5. a non-superuser granted EXECUTE: skip, with the reason, for what it may
#      not read, no error, and no superuser-only value in what it sees
#   6. audit.verified: pass ("intact") after verify_audit(), fail after a
#      sealed audit row was changed and verify_audit() found it (and still
#      after a successful verify_security_events(), which says nothing of
#      the audit trail), pass again once the row is restored and verified
#
# One cluster for the whole file.  The key is made at run time and never
# printed; the last assertions check that no output and no server log line
# holds it.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t0 = time;

# The key ring must come only from the key file this test writes.
delete $ENV{TRADING_GUARD_MASTER_KEY};

my $certdir = PostgreSQL::Test::Utils::tempdir('certs');
my $keydir = PostgreSQL::Test::Utils::tempdir('keys');
my $archdir = PostgreSQL::Test::Utils::tempdir('archive');

# A self-signed server certificate for localhost, as test/lib.sh makes the
# demo's.
run_log([
		'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
		'-subj', '/CN=localhost',
		'-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
		'-keyout', "$certdir/server.key", '-out', "$certdir/server.crt"
	])
  or BAIL_OUT('openssl could not make the server certificate');
chmod 0600, "$certdir/server.key";

# The key ring: one random 256-bit key, in a 0600 file outside the data
# directory.
my $key_hex = do {
	open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
	read($fh, my $b, 32) == 32 or die 'short read from /dev/urandom';
	close $fh;
	unpack('H*', $b);
};

sub write_key_file
{
	my ($path) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh "1 $key_hex\n";
	close $fh;
	chmod 0600, $path or die "chmod $path: $!";
	return $path;
}
my $key_file = write_key_file("$keydir/trading_guard.keys");

my $node = PostgreSQL::Test::Cluster->new('checklist');
$node->init;
$node->append_conf('postgresql.conf', qq{
listen_addresses = '127.0.0.1'
ssl = on
ssl_cert_file = '$certdir/server.crt'
ssl_key_file = '$certdir/server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
log_connections = on
wal_level = replica
archive_mode = on
archive_command = 'cp "%p" "$archdir/%f"'
shared_preload_libraries = 'trading_guard'
trading_guard.connection_policy = enforce
trading_guard.ssl_min_protocol = 'TLSv1.3'
trading_guard.rules = 'bot 10.0.0.0/8, 127.0.0.1; oncall, auditor 127.0.0.1/32'
trading_guard.key_file = '$key_file'
trading_guard.environment = 'dev'
trading_guard.events_database = 'postgres'
trading_guard.seal_databases = 'postgres'
trading_guard.event_flush_interval = 50
});

my $pgdata = $node->data_dir;
my $superuser;    # the cluster's bootstrap superuser, known once started

# The good pg_hba.conf: local users trusted (the test connects over the
# socket), TCP only with TLS and scram-sha-256, then nothing from elsewhere.
my $good_hba = <<'EOF';
# TYPE   DATABASE  USER  ADDRESS       METHOD
local    all       all                 trust
hostssl  all       all   127.0.0.1/32  scram-sha-256
hostssl  all       all   ::1/128       scram-sha-256
hostssl  all       bot   10.0.0.0/8    scram-sha-256
host     all       all   0.0.0.0/0     reject
host     all       all   ::/0          reject
EOF

sub write_hba_file
{
	my ($text) = @_;
	open my $fh, '>', "$pgdata/pg_hba.conf" or die "pg_hba.conf: $!";
	print $fh $text;
	close $fh;
	return;
}
write_hba_file($good_hba);
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

$superuser = sql('SELECT current_user');

my @outputs;    # everything the checklist returned, for the leak check
my $rows;       # how many rows the last checklist() returned

# The checklist as a hash: check => { status, detail, remedy, area, n }.
# As the superuser unless a role is given.
sub checklist
{
	my ($role) = @_;
	my %p;
	$p{connstr} = $node->connstr('postgres') . " user=$role" if defined $role;
	my $out = $node->safe_psql('postgres', q{
		SELECT concat_ws(chr(31), "check", status, area, coalesce(detail, ''), coalesce(remedy, ''))
		  FROM trading_guard.security_checklist()}, %p);
	push @outputs, $out;
	my %c;
	my $n = 0;
	$rows = 0;
	foreach my $line (split /\n/, $out)
	{
		$rows++;
		my ($check, $status, $area, $detail, $remedy) = split /\x1f/, $line, -1;
		$c{$check} = { status => $status, area => $area, detail => $detail, remedy => $remedy, n => ++$n };
	}
	return \%c;
}

# One check's status (and its detail against a pattern) in a new checklist.
sub check_is
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($check, $status, $detail_re, $name) = @_;
	my $c = checklist()->{$check};
	ok(defined $c && $c->{status} eq $status && $c->{detail} =~ $detail_re, "$name: $check is $status")
	  or diag(defined $c ? "got $c->{status}: $c->{detail}\nremedy: " . ($c->{remedy} // '') : 'no such check');
	return;
}

# Set postgresql.auto.conf values with ALTER SYSTEM, reload, and wait until a
# new session sees each of them; reset_settings undoes it.
sub set_settings
{
	my (%s) = @_;
	sql(join "\n", map { "ALTER SYSTEM SET $_ = '$s{$_}';" } sort keys %s);
	sql('SELECT pg_reload_conf()');
	my $cond = join ' AND ', map { "current_setting('$_') = '$s{$_}'" } sort keys %s;
	$node->poll_query_until('postgres', "SELECT $cond")
	  or die "the reload did not apply: $cond";
	return;
}

my %initial;    # each setting this test changes, as the server started

sub reset_settings
{
	my (@names) = @_;
	sql(join "\n", map { "ALTER SYSTEM RESET $_;" } @names);
	sql('SELECT pg_reload_conf()');
	my $cond = join ' AND ', map { "current_setting('$_') = '$initial{$_}'" } @names;
	$node->poll_query_until('postgres', "SELECT $cond")
	  or die "the reload did not restore: $cond";
	return;
}

foreach my $name (
	qw(trading_guard.connection_policy trading_guard.ssl_min_protocol
	ssl_min_protocol_version trading_guard.rules trading_guard.max_auth_failures
	trading_guard.alert_events trading_guard.key_file archive_command))
{
	$initial{$name} = sql("SELECT current_setting('$name')");
}

# Write pg_hba.conf, reload, and wait until pg_hba_file_rules shows the file
# (its lines, errors included, in order).
sub set_hba
{
	my ($text) = @_;
	write_hba_file($text);
	my @all = split /\n/, $text;
	my @lines = grep { !/^\s*(#|$)/ } @all;
	$node->reload;
	$node->poll_query_until('postgres',
		'SELECT count(*) = ' . scalar(@lines) . ' AND max(line_number) = ' . scalar(@all)
		  . ' FROM pg_hba_file_rules')
	  or die 'pg_hba_file_rules does not show the new pg_hba.conf';
	return;
}

# ---------------------------------------------------------------------------
# 1. The configured server
# ---------------------------------------------------------------------------

sql(q{
	CREATE EXTENSION trading_guard;
	SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
	  {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT", "filters": [
	    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
	    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"}]}]}');
	CREATE TABLE public.orders (
	    id bigserial PRIMARY KEY,
	    symbol text NOT NULL,
	    side text NOT NULL,
	    quantity numeric NOT NULL,
	    price numeric);
	SELECT trading_guard.protect_orders('public.orders');
	SELECT trading_guard.enable_audit('public.orders');
	CREATE ROLE bot LOGIN;
	CREATE ROLE oncall LOGIN;
	CREATE ROLE auditor LOGIN;
	CREATE ROLE dba NOLOGIN;
	GRANT SELECT, INSERT ON public.orders TO bot;
	GRANT USAGE ON SEQUENCE public.orders_id_seq TO bot;
	SELECT trading_guard.set_order_limit('bot', orders_per_minute => 100, max_order_notional => 100000);
	BEGIN;
	SET LOCAL trading_guard.maintenance = on;
	GRANT EXECUTE ON FUNCTION trading_guard.halt_trading(text, text, text, regrole),
	                          trading_guard.resume_trading(text, text, regrole) TO oncall;
	GRANT EXECUTE ON FUNCTION trading_guard.security_checklist(),
	                          trading_guard.security_checklist_json() TO auditor;
	COMMIT;
});
$node->safe_psql('postgres',
	q{INSERT INTO public.orders (symbol, side, quantity, price)
	  VALUES ('BTCUSDT', 'BUY', 0.001, 65000), ('BTCUSDT', 'SELL', 0.002, 65100.5)},
	connstr => $node->connstr('postgres') . ' user=bot');

# The sealing worker seals the new audit rows (every connection of this test
# adds one, its login's security events: wait for the rows older than now,
# not for an empty backlog); the events worker records the key ring's key
# (key_version_history, for secrets.master_key_age).
my $inserted = sql('SELECT clock_timestamp()');
$node->poll_query_until('postgres', qq{
	SELECT last_batch IS NOT NULL AND (oldest_unsealed IS NULL OR oldest_unsealed > '$inserted')
	  FROM trading_guard.seal_status()})
  or die 'the audit rows were not sealed';
$node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM trading_guard.key_version_history})
  or die 'key_version_history stayed empty';

# verify_audit(), and its event written
sub verify_and_wait
{
	my ($function) = @_;
	my $before = sql(q{SELECT coalesce(max(id), 0) FROM trading_guard.security_events WHERE event_type = 'verify'});
	my $res = sql("SELECT ok FROM trading_guard.$function()");
	$node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM trading_guard.security_events WHERE event_type = 'verify' AND id > $before")
	  or die "the verify event of $function() was not written";
	return $res;
}
is(verify_and_wait('verify_audit'), 't', 'verify_audit(): ok');

# Something archived
sql('SELECT pg_switch_wal()');
$node->poll_query_until('postgres', 'SELECT archived_count > 0 FROM pg_stat_archiver')
  or die 'nothing was archived';

my $c = checklist();
my @ids = qw(tls.ssl tls.guard_preloaded tls.guard_enforce tls.min_protocol tls.hba_plaintext
  tls.hba_trust_password tls.hba_shadowed_hostssl tls.hba_errors auth.password_encryption
  auth.md5_passwords auth.superuser_network auth.application_roles network.allowlist
  network.allowlist_open network.bans validation.order_tables validation.registry
  audit.order_tables_audited audit.triggers_intact audit.ddl_event_triggers audit.sealing
  audit.verified audit.log_readers secrets.key_ring secrets.key_file secrets.key_readers
  secrets.credential_rotation secrets.master_key_age secrets.reject_literals
  secrets.other_environments secrets.reveal_and_sign logging.statements logging.connections
  logging.failed_logins logging.pg_stat_statements_keys limits.order_roles limits.halts
  limits.oncall monitoring.security_events monitoring.alerts dependencies.postgresql
  dependencies.openssl dependencies.extension backups.archiving backups.archiver);
is($rows . ': ' . join(' ', sort { $c->{$a}{n} <=> $c->{$b}{n} } keys %$c), scalar(@ids) . ': ' . join(' ', @ids),
	'every check, once, in order');

sub rows_with
{
	my ($c, $status) = @_;
	return map { "$_: $c->{$_}{detail}" }
	  sort { $c->{$a}{n} <=> $c->{$b}{n} } grep { $c->{$_}{status} eq $status } keys %$c;
}

my @fails = rows_with($c, 'fail');
is(scalar(@fails), 0, 'the configured server: no check fails')
  or diag(join "\n", 'failing:', @fails);
diag(join "\n  ", 'the configured server, warn:', rows_with($c, 'warn') ? rows_with($c, 'warn') : '(none)');
diag(join "\n  ", 'the configured server, skip:', rows_with($c, 'skip') ? rows_with($c, 'skip') : '(none)');

# What this set-up is for: these pass, not merely "not fail"
my @must_pass = qw(tls.ssl tls.guard_enforce tls.min_protocol tls.hba_plaintext
  tls.hba_trust_password tls.hba_shadowed_hostssl tls.hba_errors auth.md5_passwords auth.superuser_network
  network.allowlist network.allowlist_open network.bans audit.sealing audit.verified
  secrets.key_ring secrets.key_file secrets.master_key_age logging.connections
  limits.order_roles limits.oncall monitoring.security_events monitoring.alerts
  backups.archiving backups.archiver);
is(join(' ', map { "$_=$c->{$_}{status}" } grep { $c->{$_}{status} ne 'pass' } @must_pass), '',
	'the configured server: the checks it was set up for pass');
like($c->{'secrets.key_file'}{detail}, qr/^key file \Q$key_file\E: mode 0600, owned by the server's user, outside the data directory$/,
	'secrets.key_file names the file, its mode, owner and place');
like($c->{'audit.verified'}{detail}, qr/^last verified .*, intact$/, 'audit.verified: intact');
like($c->{'backups.archiver'}{detail}, qr/^last WAL archived .*\([0-9A-F]{24}\)$/, 'backups.archiver names the WAL segment');
like($c->{'secrets.master_key_age'}{detail}, qr/^the newest master key \(version 1\) was first loaded \d{4}-\d\d-\d\d$/,
	'secrets.master_key_age: when version 1 was first loaded');

# The JSON form: the same rows, counted
{
	my $json = sql(q{
		SELECT concat_ws(' ', j->>'pass', j->>'warn', j->>'fail', j->>'skip', jsonb_array_length(j->'checks'),
		                 (SELECT string_agg(e->>'check', ',') FROM jsonb_array_elements(j->'checks') e))
		  FROM trading_guard.security_checklist_json() j});
	push @outputs, $json;
	my %n;
	$n{ $_->{status} }++ foreach values %$c;
	is($json,
		join(' ', (map { $n{$_} // 0 } qw(pass warn fail skip)), scalar(keys %$c), join(',', @ids)),
		'security_checklist_json(): counts per status and the checks agree with security_checklist()');
}

# ---------------------------------------------------------------------------
# 2. pg_hba.conf both ways
# ---------------------------------------------------------------------------

# A host line before a hostssl line for the same addresses: the hostssl line
# never matches, and the host line lets plaintext in (the guard, enforcing,
# refuses it: warn)
set_hba(<<'EOF');
local    all  all               trust
host     all  all  0.0.0.0/0    scram-sha-256
hostssl  all  all  0.0.0.0/0    scram-sha-256
host     all  all  ::/0         reject
EOF
$c = checklist();
is("$c->{'tls.hba_shadowed_hostssl'}{status}: $c->{'tls.hba_shadowed_hostssl'}{detail}",
	"fail: 1 hostssl line(s) never match: an earlier host line takes their connections, TLS or not: line 2 shadows hostssl line 3",
	'host 0.0.0.0/0 before hostssl 0.0.0.0/0: tls.hba_shadowed_hostssl fails, naming both lines');
like("$c->{'tls.hba_plaintext'}{status}: $c->{'tls.hba_plaintext'}{detail}",
	qr/^warn: 1 line\(s\) accept non-local connections without requiring TLS: line 2 \(host all all 0\.0\.0\.0\).*the connection guard refuses them/,
	'... tls.hba_plaintext warns (the guard enforces), naming line 2');
like("$c->{'auth.superuser_network'}{status}: $c->{'auth.superuser_network'}{detail}",
	qr/^fail: superuser\(s\) .*\Q$superuser\E.* can log in from non-local addresses$/,
	'... auth.superuser_network fails (all users from 0.0.0.0/0)');

# The same file with the guard only logging, then off
set_settings('trading_guard.connection_policy' => 'log');
$c = checklist();
is("$c->{'tls.guard_enforce'}{status}: $c->{'tls.guard_enforce'}{detail}",
	'warn: trading_guard.connection_policy = log: refusals are only logged',
	'connection_policy = log: tls.guard_enforce warns');
like("$c->{'tls.hba_plaintext'}{status}: $c->{'tls.hba_plaintext'}{detail}",
	qr/^fail: 1 line\(s\) accept non-local connections without requiring TLS: line 2 /,
	'... and the plaintext host line is a failure (nothing refuses it)');
unlike($c->{'tls.hba_plaintext'}{detail}, qr/connection guard/, '... whose detail no longer counts on the guard');
set_settings('trading_guard.connection_policy' => 'off');
check_is('tls.guard_enforce', 'fail', qr/^trading_guard\.connection_policy = off: refusals are not made$/,
	'connection_policy = off');
reset_settings('trading_guard.connection_policy');
check_is('tls.guard_enforce', 'pass', qr/^trading_guard\.connection_policy = enforce$/,
	'connection_policy reset to enforce');

# A broader host line before a hostssl line it covers (0.0.0.0/0 before
# 10.0.0.0/8): the hostssl line never matches either
set_hba(<<'EOF');
local    all  all               trust
host     all  all  0.0.0.0/0    scram-sha-256
hostssl  all  bot  10.0.0.0/8   scram-sha-256
host     all  all  ::/0         reject
EOF
check_is('tls.hba_shadowed_hostssl', 'fail', qr/line 2 shadows hostssl line 3/,
	'host 0.0.0.0/0 before hostssl bot 10.0.0.0/8 (covered, not equal)');

# trust over TCP
set_hba(<<'EOF');
local    all  all               trust
hostssl  all  bot  10.0.0.0/8   scram-sha-256
hostssl  all  all  0.0.0.0/0    trust
host     all  all  0.0.0.0/0    reject
EOF
$c = checklist();
is("$c->{'tls.hba_trust_password'}{status}: $c->{'tls.hba_trust_password'}{detail}",
	'fail: 1 TCP line(s) authenticate with trust (no password at all) or password (sent in clear): line 3 (hostssl trust)',
	'hostssl ... trust: tls.hba_trust_password fails, naming the line');
like("$c->{'auth.md5_passwords'}{status}: $c->{'auth.md5_passwords'}{detail}",
	qr/^fail: .*\bbot \(no password, admitted by trust\)/,
	'... auth.md5_passwords fails: login roles without a password, let in by the trust line');
is($c->{'tls.hba_plaintext'}{status}, 'pass', '... (a hostssl line is not plaintext)');
is($c->{'tls.hba_shadowed_hostssl'}{status}, 'pass', '... (no host line before the hostssl lines)');

# A malformed line
set_hba(<<'EOF');
local    all  all               trust
hostssl  all  bot  10.0.0.0/8   scram-sha-257
host     all  all  0.0.0.0/0    reject
EOF
check_is('tls.hba_errors', 'fail',
	qr/^1 line\(s\) of pg_hba\.conf have errors \(a reload keeps the old file in force\): line 2: invalid authentication method "scram-sha-257"$/,
	'a malformed line');

# A superuser allowed from the network, by name
set_hba(<<"EOF");
local    all  all                  trust
hostssl  all  $superuser  0.0.0.0/0  scram-sha-256
hostssl  all  bot  10.0.0.0/8      scram-sha-256
host     all  all  0.0.0.0/0       reject
EOF
$c = checklist();
is("$c->{'auth.superuser_network'}{status}: $c->{'auth.superuser_network'}{detail}",
	"fail: superuser(s) $superuser (line 2) can log in from non-local addresses",
	'the superuser by name from 0.0.0.0/0: auth.superuser_network fails');
is($c->{'tls.hba_plaintext'}{status} . ' ' . $c->{'tls.hba_trust_password'}{status} . ' '
	  . $c->{'tls.hba_errors'}{status},
	'pass pass pass', '... and only that check');

# A superuser allowed from the network as a member of a +group line
sql("GRANT dba TO \"$superuser\"");
set_hba(<<"EOF");
local    all  all                  trust
hostssl  all  +dba  0.0.0.0/0      scram-sha-256
hostssl  all  bot  10.0.0.0/8      scram-sha-256
host     all  all  0.0.0.0/0       reject
EOF
check_is('auth.superuser_network', 'fail', qr/^superuser\(s\) \Q$superuser\E \(line 2\) can log in from non-local addresses$/,
	'the superuser, a member of dba, from 0.0.0.0/0 on a +dba line');
sql("REVOKE dba FROM \"$superuser\"");

# The remedy the check gives ("reject those roles on host/hostssl lines"):
# a reject line for the superuser before the line for all users
set_hba(<<"EOF");
local    all  all                  trust
host     all  $superuser  0.0.0.0/0  reject
hostssl  all  all  0.0.0.0/0       scram-sha-256
host     all  all  0.0.0.0/0       reject
EOF
check_is('auth.superuser_network', 'pass', qr/^no superuser can log in from the network$/,
	'following the remedy (a reject line for the superuser first)');

# The good file again: every pg_hba check passes
set_hba($good_hba);
$c = checklist();
is(join(' ', map { "$_=$c->{$_}{status}" }
		qw(tls.hba_plaintext tls.hba_trust_password tls.hba_shadowed_hostssl tls.hba_errors auth.md5_passwords auth.superuser_network)),
	'tls.hba_plaintext=pass tls.hba_trust_password=pass tls.hba_shadowed_hostssl=pass tls.hba_errors=pass auth.md5_passwords=pass auth.superuser_network=pass',
	'the good pg_hba.conf again: every pg_hba check passes');

# ---------------------------------------------------------------------------
# 3. Settings both ways
# ---------------------------------------------------------------------------

set_settings(ssl_min_protocol_version => 'TLSv1');
check_is('tls.min_protocol', 'fail',
	qr/^ssl_min_protocol_version = TLSv1, trading_guard\.ssl_min_protocol = TLSv1\.3: TLS older than 1\.2 is accepted$/,
	'ssl_min_protocol_version = TLSv1');
reset_settings('ssl_min_protocol_version');
set_settings('trading_guard.ssl_min_protocol' => 'TLSv1.1');
check_is('tls.min_protocol', 'fail',
	qr/^ssl_min_protocol_version = TLSv1\.2, trading_guard\.ssl_min_protocol = TLSv1\.1: /,
	'trading_guard.ssl_min_protocol = TLSv1.1');
reset_settings('trading_guard.ssl_min_protocol');
check_is('tls.min_protocol', 'pass',
	qr/^ssl_min_protocol_version = TLSv1\.2, trading_guard\.ssl_min_protocol = TLSv1\.3$/,
	'TLS settings reset');

set_settings('trading_guard.rules' => '');
check_is('network.allowlist', 'fail', qr/^trading_guard\.rules holds no rule/, 'trading_guard.rules empty');
set_settings('trading_guard.rules' => '* 0.0.0.0/0');
$c = checklist();
is("$c->{'network.allowlist_open'}{status}: $c->{'network.allowlist_open'}{detail}",
	'fail: open rule(s): rule 1 (* 0.0.0.0/0)', "trading_guard.rules = '* 0.0.0.0/0': network.allowlist_open fails");
is($c->{'network.allowlist'}{status}, 'pass', '... (an allowlist is set)');
set_settings('trading_guard.rules' => 'auditor 127.0.0.1; * ::/0');
check_is('network.allowlist_open', 'fail', qr/^open rule\(s\): rule 2 \(\* ::\/0\)$/, "trading_guard.rules with '* ::/0' second");

# Open rules written otherwise (the guard's parser takes "all" in any case,
# and * anywhere in the list of roles)
set_settings('trading_guard.rules' => '* ALL');
check_is('network.allowlist_open', 'fail', qr/^open rule/, "trading_guard.rules = '* ALL'");
set_settings('trading_guard.rules' => 'bot, * all');
check_is('network.allowlist_open', 'fail', qr/^open rule/, "trading_guard.rules = 'bot, * all'");
# Only empty rules: no allowlist, as the guard sees it
set_settings('trading_guard.rules' => ';');
check_is('network.allowlist', 'fail', qr/./, "trading_guard.rules = ';' (no rule)");
reset_settings('trading_guard.rules');
$c = checklist();
is("$c->{'network.allowlist'}{status} $c->{'network.allowlist_open'}{status}: $c->{'network.allowlist'}{detail}",
	'pass pass: 2 rule(s) in trading_guard.rules', 'trading_guard.rules reset: both pass');

set_settings('trading_guard.max_auth_failures' => '0');
check_is('network.bans', 'warn', qr/^trading_guard\.max_auth_failures = 0: addresses are never banned$/,
	'max_auth_failures = 0');
reset_settings('trading_guard.max_auth_failures');
check_is('network.bans', 'pass', qr/^an address is banned after 5 failures in 1min$/, 'max_auth_failures reset');

set_settings('trading_guard.alert_events' => '');
check_is('monitoring.alerts', 'warn', qr/^trading_guard\.alert_events is empty/, 'alert_events empty');
reset_settings('trading_guard.alert_events');
check_is('monitoring.alerts', 'pass', qr/^alerts sent for: /, 'alert_events reset');

# Archiving: no archive_command, then one that fails
set_settings(archive_command => '');
check_is('backups.archiving', 'fail', qr/^archive_mode is on but neither archive_command nor archive_library is set/,
	'archive_command empty');
set_settings(archive_command => 'false');
sql('CREATE TABLE wal_filler AS SELECT 1 AS x');
sql('SELECT pg_switch_wal()');
$node->poll_query_until('postgres',
	'SELECT failed_count > 0 AND last_failed_time > coalesce(last_archived_time, \'-infinity\') FROM pg_stat_archiver')
  or die 'the failing archive_command did not fail';
check_is('backups.archiver', 'fail', qr/^archiving fails: \d+ failures, the last at .* \(WAL [0-9A-F]{24}\)$/,
	'archive_command = false');
reset_settings('archive_command');
$node->poll_query_until('postgres', 'SELECT last_archived_time > last_failed_time FROM pg_stat_archiver')
  or die 'archiving did not resume';
check_is('backups.archiver', 'pass', qr/^last WAL archived /, 'archive_command reset: archived again');
check_is('backups.archiving', 'pass', qr/^archive_mode = on$/, 'archive_command reset');

# ---------------------------------------------------------------------------
# 4. The key file both ways (no reload between: the loader would refuse a
#    group-readable file; the checklist stats the file itself)
# ---------------------------------------------------------------------------

chmod 0640, $key_file or die "chmod $key_file: $!";
check_is('secrets.key_file', 'fail', qr/^key file \Q$key_file\E \(mode 0640\), readable by group or others$/,
	'key file of mode 0640');
chmod 0600, $key_file or die "chmod $key_file: $!";
check_is('secrets.key_file', 'pass', qr/mode 0600, owned by the server's user, outside the data directory$/,
	'key file back to 0600');

# A copy of the key file inside the data directory, named absolutely and
# relatively (relative paths are read from the data directory)
my $inside = write_key_file("$pgdata/tg_inside.keys");
foreach my $path ($inside, 'tg_inside.keys')
{
	my $how = $path eq $inside ? 'absolute' : 'relative';
	set_settings('trading_guard.key_file' => $path);
	$node->poll_query_until('postgres', 'SELECT loaded AND last_error IS NULL FROM trading_guard.key_ring_status()')
	  or die 'the key ring did not load from the file in the data directory';
	check_is('secrets.key_file', 'fail',
		qr/^key file \Q$path\E \(mode 0600\), inside the data directory \(copied by pg_basebackup into every backup\)$/,
		"a key file in the data directory, $how path");
}
reset_settings('trading_guard.key_file');
unlink $inside or die "$inside: $!";
check_is('secrets.key_file', 'pass', qr/^key file \Q$key_file\E: mode 0600/, 'key file outside the data directory again');
check_is('secrets.key_ring', 'pass', qr/^key ring loaded from key_file, 1 version\(s\), newest 1$/,
	'the key ring is loaded from it');

# ---------------------------------------------------------------------------
# 5. A non-superuser granted EXECUTE
# ---------------------------------------------------------------------------

{
	my $a = checklist('auditor');
	is("$rows " . scalar(keys %$a), scalar(@ids) . ' ' . scalar(@ids), 'auditor: every check once, no error');
	my @must_skip = qw(tls.hba_plaintext tls.hba_trust_password tls.hba_shadowed_hostssl tls.hba_errors
	  auth.md5_passwords auth.superuser_network network.allowlist network.allowlist_open
	  secrets.key_ring secrets.key_file audit.verified secrets.master_key_age);
	is(join(' ', map { "$_=" . ($a->{$_}{status} // 'missing') } grep { ($a->{$_}{status} // '') ne 'skip' } @must_skip),
		'', 'auditor: skip for pg_hba.conf, pg_authid, trading_guard.rules, the key ring and key file, '
		  . 'security_events, key_version_history');
	is(join(' ', grep { $a->{$_}{status} eq 'skip' && $a->{$_}{detail} !~ /\S/ } keys %$a), '',
		'auditor: every skip says why');
	like($a->{'tls.hba_errors'}{detail}, qr/pg_hba\.conf cannot be read by this role/, 'auditor: why pg_hba is skipped');
	like($a->{'auth.md5_passwords'}{detail}, qr/pg_authid cannot be read/, 'auditor: why pg_authid is skipped');
	like($a->{'network.allowlist'}{detail}, qr/trading_guard\.rules is a superuser-only setting/,
		'auditor: why the allowlist is skipped');
	like($a->{'secrets.key_ring'}{detail}, qr/key_ring_status\(\) is not granted/, 'auditor: why the key ring is skipped');
	like($a->{'secrets.key_file'}{detail}, qr/superuser-only/, 'auditor: why the key file is skipped');
	my $seen = join "\n", map { "$a->{$_}{detail} $a->{$_}{remedy}" } keys %$a;
	unlike($seen, qr/\Q$keydir\E|10\.0\.0\.0/,
		'auditor: no superuser-only value (key file path, rules) in any detail or remedy');
	is(join(' ', map { "$_=$a->{$_}{status}" } grep { $a->{$_}{status} eq 'fail' } sort keys %$a), '',
		'auditor: nothing fails on the configured server either');
	my $json = $node->safe_psql('postgres',
		'SELECT (j->>\'skip\')::int > 0 AND jsonb_array_length(j->\'checks\') = ' . scalar(@ids)
		  . ' FROM trading_guard.security_checklist_json() j',
		connstr => $node->connstr('postgres') . ' user=auditor');
	is($json, 't', 'auditor: security_checklist_json() too');
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM trading_guard.security_checklist()',
		connstr => $node->connstr('postgres') . ' user=bot');
	like($err, qr/permission denied for function security_checklist/, 'a role not granted EXECUTE: refused');
}

# ---------------------------------------------------------------------------
# 6. audit.verified
# ---------------------------------------------------------------------------

check_is('audit.verified', 'pass', qr/^last verified .*, intact$/, 'after verify_audit()');

# A sealed audit row changed (the audit trail's own triggers disabled, as an
# attacker with superuser rights would)
my ($row_id, $row_user) = split /\|/, sql(q{
	SELECT id, current_user_name FROM trading_guard.audit_log WHERE table_name = 'orders' ORDER BY id LIMIT 1});
sub rewrite_audit_user
{
	my ($user) = @_;
	sql(qq{
		BEGIN;
		SET LOCAL trading_guard.maintenance = on;
		ALTER EVENT TRIGGER trading_guard_audit_ddl DISABLE;
		ALTER TABLE trading_guard.audit_log DISABLE TRIGGER audit_log_append_only;
		UPDATE trading_guard.audit_log SET current_user_name = '$user' WHERE id = $row_id;
		ALTER TABLE trading_guard.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
		ALTER EVENT TRIGGER trading_guard_audit_ddl ENABLE ALWAYS;
		COMMIT;
	});
	return;
}
rewrite_audit_user('mallory');
is(verify_and_wait('verify_audit'), 'f', 'verify_audit() finds the changed row');
check_is('audit.verified', 'fail', qr/^the last verification \(.*\) found a problem$/,
	'after verify_audit() found a changed row');
# verify_security_events() checks the security events, not the audit trail:
# its success says nothing of the audit trail
is(verify_and_wait('verify_security_events'), 't', 'verify_security_events(): ok');
check_is('audit.verified', 'fail', qr/found a problem/,
	'after a successful verify_security_events() (the audit trail is still changed)');
rewrite_audit_user($row_user);
is(verify_and_wait('verify_audit'), 't', 'the row restored: verify_audit() ok again');
check_is('audit.verified', 'pass', qr/, intact$/, 'the row restored and verified');

# ---------------------------------------------------------------------------
# No key anywhere
# ---------------------------------------------------------------------------

unlike(join("\n", @outputs), qr/\Q$key_hex\E/i, 'no checklist output holds the key');
unlike(slurp_file($node->logfile), qr/\Q$key_hex\E/i, 'the server log does not hold the key');
unlike(slurp_file($PostgreSQL::Test::Utils::test_logfile), qr/\Q$key_hex\E/i, "this test's log does not hold the key");

$node->stop;
diag(sprintf('015_checklist: %.1f s', time - $t0));
done_testing();
