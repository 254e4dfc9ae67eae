# test/t/002_dump_restore.pl — pg_dump keeps the symbol registry (it is
# registered with pg_extension_config_dump) and a restored database checks
# orders exactly as the original did, protected tables included.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'trading_guard'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION trading_guard;
	SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
	  {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT", "filters": [
	    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
	    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"}]},
	  {"symbol": "LUNAUSDT", "status": "BREAK", "baseAsset": "LUNA", "quoteAsset": "USDT"}]}');
	CREATE TABLE orders (symbol text, side text, quantity numeric, price numeric);
	SELECT trading_guard.protect_orders('orders');
	INSERT INTO orders VALUES ('BTCUSDT', 'BUY', 0.001, 65000.01);
});

my $registry = q{SELECT symbol, status, min_qty, max_qty, step_size, min_price,
	max_price, tick_size, min_notional, max_notional FROM trading_guard.symbols ORDER BY 1};
my $before = $node->safe_psql('src', $registry);

my $dump = $node->basedir . '/src.dump';
command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ],
	'pg_dump of a database using trading_guard');

$node->safe_psql('postgres', 'CREATE DATABASE dst');
command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump ],
	'pg_restore into an empty database');

is($node->safe_psql('dst', $registry), $before, 'the registry is restored row for row');
is($node->safe_psql('dst', 'SELECT count(*) FROM orders'), '1', 'the orders are restored');
is($node->safe_psql('dst', 'SELECT table_name FROM trading_guard.protected_tables'),
	'orders', 'the restored table is still protected');

my ($ret, $out, $err) = $node->psql('dst',
	q{INSERT INTO orders VALUES ('LUNAUSDT', 'BUY', 1, 1)});
isnt($ret, 0, 'the restored registry refuses an order on a symbol in BREAK');
like($err, qr/symbol "LUNAUSDT" is not trading/, 'with the status message');

($ret, $out, $err) = $node->psql('dst',
	q{INSERT INTO orders VALUES ('BTCUSDT', 'BUY', 0.000015, 65000)});
like($err, qr/not a multiple of the step size/, 'and the restored LOT_SIZE filter applies');
is($node->safe_psql('dst', q{INSERT INTO orders VALUES ('BTCUSDT', 'SELL', 0.002, 65000.02) RETURNING quantity}),
	'0.002', 'a valid order is accepted after restore');

$node->stop;
done_testing();
