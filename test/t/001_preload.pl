# test/t/001_preload.pl — trading_guard with and without
# shared_preload_libraries, shared-memory counters across sessions, and the
# check hook of trading_guard.quote_assets on reload.
#
# One cluster, reused: first without preloading, then restarted with it.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->start;

# Run SQL in a new session; return (exit code, stdout, stderr).  The script
# stops at the first error (exit code 3) unless $keep_going; message lines
# carry their SQLSTATE ("ERROR:  55000: ...").
sub run_sql
{
	my ($sql, $keep_going) = @_;
	my ($out, $err);
	my $ret = $node->psql(
		'postgres', $sql,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => $keep_going ? 0 : 1,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $out, $err);
}

# The start of a psql message line of the given level: psql prefixes it with
# "psql:<stdin>:N: " as the SQL comes from standard input.
sub msg
{
	my ($level) = @_;
	return qr/^(?:psql:\S+: )?\Q$level\E:  /m;
}
my $WARNING = msg('WARNING');
my $ERROR = msg('ERROR');
my $DETAIL = msg('DETAIL');

# ---------------------------------------------------------------------------
# Without shared_preload_libraries
# ---------------------------------------------------------------------------

my ($ret, $out, $err) = run_sql('CREATE EXTENSION trading_guard');
is($ret, 0, 'CREATE EXTENSION works without shared_preload_libraries');
my @warnings = ($err =~ /${WARNING}/g);
is(scalar @warnings, 1, 'CREATE EXTENSION warns exactly once') or diag($err);
like($err, qr/${WARNING}.*shared_preload_libraries/,
	'the warning names shared_preload_libraries');

is($node->safe_psql('postgres', "SELECT trading_guard.is_valid_symbol('BTCUSDT')"),
	't', 'is_valid_symbol works without preloading: BTCUSDT');
is($node->safe_psql('postgres', "SELECT trading_guard.is_valid_symbol('btcusdt')"),
	'f', 'is_valid_symbol works without preloading: btcusdt is refused');

# The registry, check_order and the protect_orders trigger need no shared
# memory either.
$node->safe_psql('postgres', q{
	INSERT INTO trading_guard.symbols (symbol, base_asset, quote_asset, min_qty, step_size)
	VALUES ('ETHUSDT', 'ETH', 'USDT', 0.001, 0.001);
	CREATE TABLE orders (symbol text, side text, quantity numeric, price numeric);
	SELECT trading_guard.protect_orders('orders');
	INSERT INTO orders VALUES ('ETHUSDT', 'BUY', 0.002, NULL);
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), '1',
	'a protected table accepts a valid order without preloading');
($ret, $out, $err) = run_sql(q{INSERT INTO orders VALUES ('ETHUSDT', 'BUY', 0.0025, NULL)});
like($err, qr/${ERROR}TG013: /, 'and refuses one off the step (TG013) without preloading');
$node->safe_psql('postgres', q{
	DROP TABLE orders;
	DELETE FROM trading_guard.symbols;
});

($ret, $out, $err) = run_sql('SELECT * FROM trading_guard.validation_stats');
isnt($ret, 0, 'validation_stats fails without preloading');
like($err, qr/${ERROR}55000: /, 'with SQLSTATE 55000 (object_not_in_prerequisite_state)');
like($err, qr/shared_preload_libraries/, 'and says to set shared_preload_libraries');

# ---------------------------------------------------------------------------
# With shared_preload_libraries
# ---------------------------------------------------------------------------

$node->append_conf('postgresql.conf', "shared_preload_libraries = 'trading_guard'");
$node->restart;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'trading_guard', 'restarted with the library preloaded');

($ret, $out, $err) = run_sql('SELECT * FROM trading_guard.validation_stats');
is($ret, 0, 'validation_stats works once preloaded') or diag($err);

# Preloaded, CREATE EXTENSION has nothing to warn about.
$node->safe_psql('postgres', 'CREATE DATABASE preloaded');
my ($out2, $err2);
$node->psql('preloaded', 'CREATE EXTENSION trading_guard',
	stdout => \$out2, stderr => \$err2, on_error_stop => 1);
is($err2, '', 'CREATE EXTENSION does not warn when preloaded');

# A tiny registry in the exchange-info format.
$node->safe_psql('postgres', q{
SELECT * FROM trading_guard.load_exchange_info('{
  "timezone": "UTC",
  "symbols": [
    {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
     "filters": [
       {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
       {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
       {"filterType": "NOTIONAL", "minNotional": "5.00000000", "maxNotional": "9000000.00000000"}]}
  ]}'::jsonb)
});

# The counters (filter, sqlstate, orders), read in a session of their own:
# returns a hash sqlstate => orders.
sub counters
{
	my %n = map { split /\|/ } split /\n/,
	  $node->safe_psql('postgres',
		'SELECT sqlstate, orders FROM trading_guard.validation_stats');
	return \%n;
}
my $before = counters();
ok(exists $before->{$_}, "validation_stats has a row for $_")
  foreach qw(00000 TG003 TG011 TG023);

# One accepted and three rejected orders, each in its own statement, in
# another session.
($ret, $out, $err) = run_sql(q{
SELECT trading_guard.check_order('BTCUSDT', 'BUY', 0.001, 65000);
SELECT trading_guard.check_order('BTCUSDT', 'BUY', 0.000001, 65000);
SELECT trading_guard.check_order('BTCUSDT', 'BUY', 0.001, 65000.005);
SELECT trading_guard.check_order('NOPEUSDT', 'BUY', 1, 1);
}, 1);
my @errors = ($err =~ /${ERROR}/g);
is(scalar @errors, 3, 'the three invalid orders are rejected') or diag($err);
like($err, qr/${ERROR}TG011: /, 'quantity below minQty: TG011');
like($err, qr/${DETAIL}.*LOT_SIZE/, 'its detail names the LOT_SIZE filter');
like($err, qr/${ERROR}TG023: /, 'price off the tick: TG023');
like($err, qr/${ERROR}TG003: /, 'unknown symbol: TG003');

# Shared memory: a third session sees what the second one counted.
my $after = counters();
is($after->{$_}, $before->{$_} + 1,
	"another session sees the $_ counter go up by one")
  foreach qw(00000 TG003 TG011 TG023);
my $total_before = 0;
$total_before += $_ foreach values %$before;
my $total_after = 0;
$total_after += $_ foreach values %$after;
is($total_after, $total_before + 4, 'and no other counter moved');

# ---------------------------------------------------------------------------
# trading_guard.quote_assets is checked on reload
# ---------------------------------------------------------------------------

$node->append_conf('postgresql.conf', "trading_guard.quote_assets = 'USDT,USDC'");
$node->reload;
$node->poll_query_until('postgres', 'SHOW trading_guard.quote_assets', 'USDT,USDC')
  or die 'the valid trading_guard.quote_assets was not applied';
is($node->safe_psql('postgres', "SELECT trading_guard.is_valid_symbol('ETHUSDC')"),
	't', 'a valid quote_assets is applied on reload');

my $log_offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "trading_guard.quote_assets = 'usdt'");
$node->reload;
ok( $node->wait_for_log(
		qr/invalid value for parameter "trading_guard\.quote_assets": "usdt"/,
		$log_offset),
	'the server log rejects quote_assets = usdt');
like(slurp_file($node->logfile, $log_offset),
	qr/upper-case/, 'and the log says why');
# The reload is over once the postmaster has logged about the file; a new
# session must still see the old value.
$node->wait_for_log(qr/contains errors; unaffected changes were applied/, $log_offset);
is($node->safe_psql('postgres', 'SHOW trading_guard.quote_assets'),
	'USDT,USDC', 'the old value stays');
is($node->safe_psql('postgres', "SELECT trading_guard.is_valid_symbol('ETHUSDC')"),
	't', 'and keeps being used');

$node->stop;
done_testing();
