# test/t/002_dump_restore.pl — pg_dump keeps the symbol registry, the audit
# settings and the audit log (they are registered with
# pg_extension_config_dump); a restored database checks orders exactly as the
# original did, protected tables included, and goes on auditing the audited
# tables (a partitioned one included).  Restoring loads the rows as they
# were, without recording them as new changes; the DDL that re-creates the
# audited tables' keys and audit triggers once the settings are back is
# recorded, as any DDL on an audited table is.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# A key ring made now (sealing needs one), shared by both clusters below.
my $keyfile = PostgreSQL::Test::Utils::tempdir() . '/ring.keys';
{
	open my $fh, '>', $keyfile or die "$keyfile: $!";
	print $fh '1 ', unpack('H*', join('', map { chr(int(rand(256))) } 1 .. 32)), "\n";
	close $fh;
	chmod 0600, $keyfile or die "chmod $keyfile: $!";
}

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'trading_guard'
trading_guard.key_file = '$keyfile'
trading_guard.seal_interval = 0");
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

	CREATE TABLE trades (id bigint, day date, qty numeric, secret text,
	                     PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
	CREATE TABLE trades_2026 PARTITION OF trades FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
	SELECT trading_guard.enable_audit('trades', mask_columns => '{secret}');
	CREATE TABLE trades_2027 PARTITION OF trades FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
	INSERT INTO trades VALUES (1, '2026-05-01', 1, 's'), (2, '2027-05-01', 2, 's');
	UPDATE trades SET qty = 3 WHERE id = 2;
});

# Sealed before the dump, with one row written after the seal (unsealed).
is($node->safe_psql('src', 'SELECT trading_guard.seal_audit() > 0'), 't', 'the source log is sealed');
$node->safe_psql('src', q{UPDATE trades SET qty = 5 WHERE id = 1});

my $registry = q{SELECT symbol, status, min_qty, max_qty, step_size, min_price,
	max_price, tick_size, min_notional, max_notional FROM trading_guard.symbols ORDER BY 1};
my $before = $node->safe_psql('src', $registry);
my $audit = q{SELECT id, event_time, txid, table_name, operation, row_key, old_row, new_row,
	changed_columns FROM trading_guard.audit_log WHERE id <= %s ORDER BY id};
my $max_id = $node->safe_psql('src', 'SELECT max(id) FROM trading_guard.audit_log');
my $audit_before = $node->safe_psql('src', sprintf($audit, $max_id));

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

is($node->safe_psql('dst', sprintf($audit, $max_id)), $audit_before,
	'the audit log is restored as it was');
is($node->safe_psql('dst', qq{SELECT string_agg(DISTINCT operation || ' ' || (new_row->>'command_tag'), ', ')
	FROM trading_guard.audit_log WHERE id > $max_id}),
	'DDL ALTER INDEX, DDL ALTER TABLE, DDL CREATE TRIGGER',
	'restoring recorded only DDL on the audited tables, no row changes');
is($node->safe_psql('dst', q{SELECT table_name, masked, triggers_intact FROM trading_guard.audited_tables}),
	'trades|{secret}|t', 'the audit settings and triggers are restored');
$node->safe_psql('dst', q{INSERT INTO trades VALUES (3, '2027-06-01', 3, 'x');
	UPDATE trades SET qty = 4 WHERE id = 1;
	CREATE TABLE trades_2028 PARTITION OF trades FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
	INSERT INTO trades VALUES (4, '2028-06-01', 4, 'y');});
is($node->safe_psql('dst', q{SELECT operation, row_key, new_row->>'secret' FROM trading_guard.audit_log
	WHERE operation IN ('INSERT', 'UPDATE') ORDER BY id DESC LIMIT 3}),
	qq{INSERT|{"id": 4, "day": "2028-06-01"}|[masked]\nUPDATE|{"id": 1, "day": "2026-05-01"}|[masked]\nINSERT|{"id": 3, "day": "2027-06-01"}|[masked]},
	'the restored database audits, masks, and covers a new partition');

# Sealing across the restore: the same cluster (transaction ids go on) ...
my $verify = q{SELECT ok, problem, unsealed_rows > 0 FROM trading_guard.verify_audit()};
like($node->safe_psql('dst', $verify), qr/^t\|\|/, 'the restored log verifies in the same cluster');
$node->safe_psql('dst', 'SELECT trading_guard.seal_audit()');
is($node->safe_psql('dst', q{SELECT ok, problem, unsealed_rows FROM trading_guard.verify_audit()}),
	't||0', 'the rows written and restored since the last seal are sealed, the chain goes on');

# ... and another cluster, whose transaction ids have nothing to do with the
# ones in the restored snapshots of audit_seal.
my $other = PostgreSQL::Test::Cluster->new('other');
$other->init;
$other->append_conf('postgresql.conf', "shared_preload_libraries = 'trading_guard'
trading_guard.key_file = '$keyfile'
trading_guard.seal_interval = 0");
$other->start;
$other->safe_psql('postgres', 'CREATE DATABASE dst');
command_ok([ 'pg_restore', '--exit-on-error', '-d', $other->connstr('dst'), $dump ],
	'pg_restore into a database of another cluster');
like($other->safe_psql('dst', $verify), qr/^t\|\|t$/,
	'the restored log verifies in another cluster (its newest rows not sealed yet)');
is($other->safe_psql('dst', 'SELECT backlog_rows > 0 FROM trading_guard.seal_status'), 't',
	'seal_status counts the restored rows that were not sealed');
# history() before the key index is rebuilt (it is not dumped) and after
my $hist = q{SELECT string_agg(operation || ':' || coalesce(new_row->>'qty', '-'), ' ' ORDER BY id)
	FROM trading_guard.history('trades', '{"id": 1, "day": "2026-05-01"}')};
my $hist_src = $node->safe_psql('src', $hist);
is($other->safe_psql('dst', $hist), $hist_src, 'history() of a restored row, key index still empty');
$other->safe_psql('dst', q{INSERT INTO trades VALUES (9, '2026-09-09', 9, 'z')});
$other->safe_psql('dst', 'SELECT trading_guard.seal_audit()');
$other->safe_psql('dst', q{INSERT INTO trades VALUES (10, '2026-10-10', 10, 'z')});
$other->safe_psql('dst', 'SELECT trading_guard.seal_audit()');
is($other->safe_psql('dst', q{SELECT ok, problem, unsealed_rows FROM trading_guard.verify_audit()}),
	't||0', 'the new rows of the other cluster are sealed after the restored ones and verify');
is($other->safe_psql('dst', 'SELECT backlog_rows FROM trading_guard.seal_status'), '0',
	'no backlog in the other cluster');
is($other->safe_psql('dst', 'SELECT indexed_through > 0 FROM trading_guard.audit_key_state'), 't',
	'the sealer rebuilt the key index of the restored log');
is($other->safe_psql('dst', $hist), $hist_src, 'history() of a restored row through the rebuilt key index');
is($other->safe_psql('dst', q{SELECT count(*) FROM trading_guard.audit_log l
	WHERE NOT EXISTS (SELECT 1 FROM trading_guard.audit_seal s WHERE s.ids @> l.id)}),
	'0', 'every row of the restored and continued log is in a batch');
$other->stop;

$node->stop;
done_testing();
