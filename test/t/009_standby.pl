# test/t/009_standby.pl — trading_guard on a streaming standby (hot standby).
#
#   1. a primary and a standby made from its base backup, both preloaded and
#      given the same key ring (one key made at run time, in a 0600 file
#      outside both data directories)
#   2. sign_request works on the standby and gives the primary's signature
#      for the same payload (and Binance's documented vector)
#   3. reveal_credential, both forms, is refused up front on the standby
#      with 25006 and a message, detail and hint of its own — never
#      PostgreSQL's internal "cannot assign TransactionIds during recovery"
#      (XX000) — logged, and nothing decrypted or recorded
#   4. every other function and view of the extension on the standby: the
#      ones that only read work, the ones that write fail with a documented
#      SQLSTATE (25006), none with an internal error (XX000) or a lock error
#   5. a credential stored, rotated and revoked on the primary is seen on
#      the standby once replayed, also by a standby session opened before
#      (its per-session cache follows the replayed invalidations)
#
# Waits are for conditions (wait_for_catchup, poll_query_until), never
# sleeps.  Secrets reach the server only as bound parameters (pgbench -M
# extended -D), never as literals in SQL text.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use Digest::SHA qw(hmac_sha256_hex);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# The key ring must come only from what this test configures.
delete $ENV{TRADING_GUARD_MASTER_KEY};

my $keydir = PostgreSQL::Test::Utils::tempdir('keys');
my $scriptdir = PostgreSQL::Test::Utils::tempdir('scripts');

sub random_bytes
{
	my ($n) = @_;
	open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
	my $got = read($fh, my $b, $n);
	die "short read from /dev/urandom" unless defined $got && $got == $n;
	close $fh;
	return $b;
}

# An exchange API secret as exchanges issue them: 64 letters and digits.
sub new_secret
{
	my @c = ('A' .. 'Z', 'a' .. 'z', '0' .. '9');
	return join '', map { $c[ord($_) % 62] } split //, random_bytes(64);
}

sub write_file_mode
{
	my ($path, $content, $mode) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh $content;
	close $fh;
	chmod $mode, $path or die "chmod $path: $!";
	return $path;
}

# One ring for both servers: the standby's postgresql.conf comes with the
# base backup, and the key file sits outside the data directory (as README
# recommends), so it does not.
my $ring = write_file_mode("$keydir/ring.keys",
	"1 " . unpack('H*', random_bytes(32)) . "\n", 0600);

# ---------------------------------------------------------------------------
# The primary, with a registry, a protected and an audited table, credentials
# ---------------------------------------------------------------------------

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'trading_guard'
trading_guard.key_file = '$ring'
trading_guard.events_database = 'tg_events'
log_line_prefix = '%m [%p] %e %q%a '
});
$primary->start;
# The security events (this test's own logins) go to a database without the
# extension, where they wait: the audit rows this test counts are its own.
$primary->safe_psql('postgres', 'CREATE DATABASE tg_events');

# Run one statement with named values bound as parameters of the extended
# query protocol (pgbench -M extended turns ":name" into $1, $2, ...), so
# the values never appear in SQL text.  Dies unless it works.
my $nscript = 0;
sub bound
{
	my ($n, $sql, %vars) = @_;
	my $file = write_file_mode("$scriptdir/bound_" . ++$nscript . '.sql', "$sql\n", 0600);
	my @cmd = (
		'pgbench', '-n', '-t', '1', '-M', 'extended', '-f', $file,
		(map { ('-D', "$_=$vars{$_}") } sort keys %vars),
		'-h', $n->host, '-p', $n->port, 'postgres');
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err) or die "$sql failed: $err";
	return;
}

sub store
{
	my ($exchange, $label, $secret) = @_;
	bound($primary,
		"SELECT trading_guard.store_credential('$exchange', '$label', :api_key, :api_secret)",
		api_key => 'K' . new_secret(), api_secret => $secret);
	return;
}

sub rotate
{
	my ($exchange, $label, $secret) = @_;
	bound($primary,
		"SELECT trading_guard.rotate_credential('$exchange', '$label', :api_key, :api_secret)",
		api_key => 'K' . new_secret(), api_secret => $secret);
	return;
}

sub sign
{
	my ($n, $exchange, $label, $payload) = @_;
	return $n->safe_psql('postgres',
		"SELECT trading_guard.sign_request('$exchange', '$label', '$payload')");
}

$primary->safe_psql('postgres', q{
	CREATE EXTENSION trading_guard;
	SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
	  {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT", "filters": [
	    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
	    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"}]}]}');
	CREATE TABLE orders (symbol text, side text, quantity numeric, price numeric);
	SELECT trading_guard.protect_orders('orders');
	INSERT INTO orders VALUES ('BTCUSDT', 'BUY', 0.001, 65000.01);
	CREATE TABLE trades (id bigint PRIMARY KEY, qty numeric, note text);
	SELECT trading_guard.enable_audit('trades');
	INSERT INTO trades VALUES (1, 1, 'a');
	UPDATE trades SET qty = 2 WHERE id = 1;
});

# Binance's documented example (public documentation values).
my $BIN_SECRET = 'NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j';
my $BIN_PAYLOAD =
  'symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559';
my $BIN_SIG = 'c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71';
store('binance', 'main', $BIN_SECRET);
my $bot_secret = new_secret();
store('okx', 'bot', $bot_secret);

# ---------------------------------------------------------------------------
# The standby
# ---------------------------------------------------------------------------

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'the standby is in recovery');
is($standby->safe_psql('postgres', 'SELECT loaded FROM trading_guard.key_ring_status()'),
	't', 'the standby loaded the key ring');
is($standby->safe_psql('postgres', 'SELECT key_id FROM trading_guard.key_versions()'),
	$primary->safe_psql('postgres', 'SELECT key_id FROM trading_guard.key_versions()'),
	'the same key ring on both (same key id)');

# ---------------------------------------------------------------------------
# Signing on the standby
# ---------------------------------------------------------------------------

is(sign($standby, 'binance', 'main', $BIN_PAYLOAD), $BIN_SIG,
	'sign_request on the standby: Binance\'s documented signature');
my $payload = 'symbol=BTCUSDT&side=SELL&quantity=0.5&timestamp=' . time();
my $on_primary = sign($primary, 'okx', 'bot', $payload);
is(sign($standby, 'okx', 'bot', $payload), $on_primary,
	'sign_request on the standby equals the primary\'s for the same payload');
is($on_primary, hmac_sha256_hex($payload, $bot_secret),
	'and both are the HMAC-SHA256 of the payload with the stored secret');

# ---------------------------------------------------------------------------
# Every function on the standby: works, or a documented refusal
# ---------------------------------------------------------------------------

# Run SQL on node $n; returns (exit code, stdout, stderr) with SQLSTATEs in
# the error lines ("ERROR:  25006: ...").
sub run_sql
{
	my ($n, $sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $n->psql(
		'postgres', $sql,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $out, $err);
}

# A statement that must fail on the standby with $state, and whose error
# text matches each of @res.
sub fails_with
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($sql, $state, $name, @res) = @_;
	my ($ret, $out, $err) = run_sql($standby, $sql);
	ok($ret != 0 && $out eq '', "standby: $name fails and returns nothing")
	  or diag("exit $ret, stdout: $out");
	like($err, qr/^(?:psql:\S+: )?ERROR:  \Q$state\E: /m, "standby: $name: SQLSTATE $state")
	  or diag($err);
	like($err, $_, "standby: $name: the error says $_") foreach @res;
	return $err;
}

sub works
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($sql, $name) = @_;
	my ($ret, $out, $err) = run_sql($standby, $sql);
	is($ret, 0, "standby: $name works") or diag($err);
	return $out;
}

my $audit_rows = 'SELECT count(*) FROM trading_guard.audit_log';
my $rows_before = $primary->safe_psql('postgres', $audit_rows);
my $log_offset = -s $standby->logfile;

# 3. reveal: refused before anything is decrypted or recorded
for my $call (q{'binance', 'main'}, q{1})
{
	fails_with("SELECT trading_guard.reveal_credential($call)", '25006',
		"reveal_credential($call)",
		qr/ERROR:  25006: cannot reveal a credential on a standby$/m,
		qr/^DETAIL:  Every reveal is recorded in trading_guard\.audit_log, and a server in recovery cannot write\.$/m,
		qr/^HINT:  Reveal on the primary; sign_request works on a standby\.$/m);
}
ok($standby->log_contains(
		qr/LOG:  trading_guard: reveal of credential binance\/main refused to role "[^"]+" \(session user "[^"]+"\) from \S+: the server is a standby/,
		$log_offset),
	'standby: the refused reveal is in its server log, naming the credential and the caller');
ok($standby->log_contains(qr/LOG:  trading_guard: reveal of credential 1 refused/, $log_offset),
	'standby: the refused reveal by id too');
unlike(slurp_file($standby->logfile, $log_offset), qr/\Q$BIN_SECRET\E|\Q$bot_secret\E/,
	'standby: no secret in its server log');

# 4. what writes: refused with 25006 (PostgreSQL's read-only refusals, or the
# extension's own where PostgreSQL's would be internal)
fails_with(q{SELECT trading_guard.store_credential('kraken', 'x', md5(random()::text), md5(random()::text))},
	'25006', 'store_credential', qr/read-only transaction/);
fails_with(q{SELECT trading_guard.rotate_credential('okx', 'bot', md5(random()::text), md5(random()::text))},
	'25006', 'rotate_credential', qr/read-only transaction/);
fails_with(q{SELECT trading_guard.revoke_credential('okx', 'bot')},
	'25006', 'revoke_credential', qr/read-only transaction/);
fails_with(q{SELECT * FROM trading_guard.rekey(10)}, '25006', 'rekey', qr/read-only transaction/);
fails_with(q{SELECT trading_guard.enable_audit('trades', mask_columns => '{note}')},
	'25006', 'enable_audit', qr/read-only transaction/);
fails_with(q{SELECT trading_guard.disable_audit('trades')}, '25006', 'disable_audit',
	qr/ERROR:  25006: cannot write an audit row on a standby$/m,
	qr/^DETAIL:  What would be recorded is refused: a server in recovery cannot write to trading_guard\.audit_log\.$/m,
	qr/^HINT:  Run it on the primary\.$/m);
fails_with(q{SELECT trading_guard.audit_record('DDL', 'trades', NULL)}, '25006', 'audit_record',
	qr/cannot write an audit row on a standby/);
fails_with(q{SELECT trading_guard.purge_audit('1 day')}, '25006', 'purge_audit',
	qr/ERROR:  25006: cannot purge the audit log on a standby$/m,
	qr/^DETAIL:  A server in recovery cannot delete rows; the purge replays from the primary\.$/m,
	qr/^HINT:  Run purge_audit on the primary\.$/m);
fails_with(q{SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": []}')},
	'25006', 'load_exchange_info', qr/during recovery/);
fails_with(q{SELECT trading_guard.protect_orders('orders')}, '25006', 'protect_orders',
	qr/read-only transaction/);
fails_with(q{SELECT trading_guard.unprotect_orders('orders')}, '25006', 'unprotect_orders',
	qr/read-only transaction/);
fails_with(q{INSERT INTO orders VALUES ('BTCUSDT', 'BUY', 0.001, 65000.01)}, '25006',
	'an insert into a protected table', qr/read-only transaction/);
fails_with(q{UPDATE trades SET qty = 3}, '25006', 'an update of an audited table',
	qr/read-only transaction/);

is($primary->safe_psql('postgres', $audit_rows), $rows_before,
	'nothing the standby refused left an audit row');

# what only reads, or acts on this server's own shared memory: works
works(q{SELECT trading_guard.check_order('BTCUSDT', 'BUY', 0.001, 65000.01)}, 'check_order');
my $violations = q{SELECT * FROM trading_guard.order_violations('BTCUSDT', 'BUY', 0.000001, 65000.001)};
is(works($violations, 'order_violations'), $primary->safe_psql('postgres', $violations),
	'standby: order_violations gives what the primary gives');
is(works(q{SELECT trading_guard.round_price('BTCUSDT', 1.234)}, 'round_price'), '1.23',
	'standby: round_price reads the registry');
is(works(q{SELECT string_agg(operation, ' ' ORDER BY id) FROM trading_guard.history('trades', '{"id": 1}')},
		'history'), 'INSERT UPDATE', 'standby: history shows the replayed audit rows');
works(q{SELECT * FROM trading_guard.key_versions()}, 'key_versions');
works(q{SELECT * FROM trading_guard.key_ring_status()}, 'key_ring_status');
is(works(q{SELECT string_agg(exchange || '/' || label, ' ' ORDER BY id) FROM trading_guard.credentials},
		'the credentials view'), 'binance/main okx/bot', 'standby: credentials lists the replayed rows');
works(q{SELECT * FROM trading_guard.credentials_due_for_rotation}, 'credentials_due_for_rotation');
works(q{SELECT * FROM trading_guard.credential_usage()}, 'credential_usage');
works(q{SELECT * FROM trading_guard.audited_tables}, 'audited_tables');
works(q{SELECT * FROM trading_guard.protected_tables}, 'protected_tables');
works(q{SELECT * FROM trading_guard.validation_stats}, 'validation_stats');
works(q{SELECT trading_guard.reset_validation_stats()}, 'reset_validation_stats');
works(q{SELECT * FROM trading_guard.connection_events}, 'connection_events');
works(q{SELECT * FROM trading_guard.connection_stats}, 'connection_stats');
works(q{SELECT * FROM trading_guard.banned_addresses}, 'banned_addresses');
works(q{SELECT trading_guard.unban('192.0.2.1')}, 'unban');
works(q{SELECT trading_guard.reset_connection_stats()}, 'reset_connection_stats');
works(q{SELECT trading_guard.mask_sensitive('{"api_secret": "x"}')}, 'mask_sensitive');
works(q{SELECT trading_guard.is_valid_symbol('BTCUSDT')}, 'is_valid_symbol');

unlike(slurp_file($standby->logfile, $log_offset), qr/\] XX000 /,
	'standby: no internal error (XX000) in its server log');

# ---------------------------------------------------------------------------
# Changes on the primary, seen on the standby after replay
# ---------------------------------------------------------------------------

# A standby session opened before the changes: its credential cache must
# follow the replayed invalidations.
my $session = $standby->background_psql('postgres', on_error_stop => 0);
is($session->query_safe(qq{SELECT trading_guard.sign_request('okx', 'bot', '$payload')}),
	$on_primary, 'a long standby session signs with the first secret');

my $rotated = new_secret();
rotate('okx', 'bot', $rotated);
store('kraken', 'spot', my $kraken = new_secret());
$primary->wait_for_catchup($standby);
my $want = hmac_sha256_hex($payload, $rotated);
is(sign($primary, 'okx', 'bot', $payload), $want, 'primary: the rotated secret signs');
is(sign($standby, 'okx', 'bot', $payload), $want,
	'standby, new session: the rotation is replayed');
is($session->query_safe(qq{SELECT trading_guard.sign_request('okx', 'bot', '$payload')}),
	$want, 'standby, the session opened before: the rotation is replayed into its cache');
is(sign($standby, 'kraken', 'spot', $payload), hmac_sha256_hex($payload, $kraken),
	'standby: a credential stored on the primary signs once replayed');

$primary->safe_psql('postgres', q{SELECT trading_guard.revoke_credential('okx', 'bot')});
$primary->wait_for_catchup($standby);
my $revoked = $session->query(qq{SELECT trading_guard.sign_request('okx', 'bot', '$payload')});
like($session->{stderr}, qr/ERROR:  credential okx\/bot has been revoked/,
	'standby, the session opened before: the revocation is replayed, signing refused');
$session->quit;
fails_with(qq{SELECT trading_guard.sign_request('okx', 'bot', '$payload')}, 'TG075',
	'sign_request of a credential revoked on the primary', qr/has been revoked/);
is($standby->safe_psql('postgres',
		q{SELECT revoked_at IS NOT NULL FROM trading_guard.credentials WHERE exchange = 'okx'}),
	't', 'standby: credentials shows the revocation');

# The primary's own reveals still work and are recorded.
my $before = $primary->safe_psql('postgres', $audit_rows);
is($primary->safe_psql('postgres', q{SELECT md5(trading_guard.reveal_credential('kraken', 'spot'))}),
	md5_hex($kraken), 'primary: reveal_credential works');
is($primary->safe_psql('postgres', $audit_rows), $before + 1, 'primary: the reveal is recorded');

$standby->stop;
$primary->stop;
done_testing();
