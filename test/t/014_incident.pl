# test/t/014_incident.pl — incident response (1.7: src/halt.c,
# src/risk_limits.c, src/protect.c, revoke_all_credentials, incident_report)
# on a running server, under load, across a restart and on a standby:
#
#   1. a halt is a row: it survives a restart, the order trigger refuses an
#      order in its scope (TG100; a table without an exchange column too),
#      trading_status lists it, TG107 / TG105 for a second halt / resume
#   2. under pgbench load (2 clients, role bot): orders_per_minute admits
#      exactly its limit, every other attempt is refused with TG101 and
#      counted in limit_usage and as a rate_limit security event; a halt of
#      role bot committed while pgbench runs stops each session at its next
#      order, and a later round is refused whole (TG100)
#   3. a halted exchange: an order signature is refused, a declared cancel or
#      read is signed (the HMAC checked independently), set_sign_purpose's
#      pattern refuses a "cancel" that carries side=; a status UPDATE of a
#      protected order is allowed, a quantity UPDATE refused; a signing limit
#      (TG104)
#   4. a streaming standby follows halts through the replayed commit record:
#      a new session and a session inside a REPEATABLE READ transaction are
#      refused once the halt is replayed, and sign again once the resume is;
#      a statement running on the standby sees the halt (the time from the
#      primary's commit to its first refusal is printed, never asserted)
#   5. revoke_all_credentials (the kill switch) and TG075; incident_report in
#      the events database with the counts this test made
#   6. no secret in security_events, in the server logs nor in this test's
#      own log
#
# One primary (and one standby made from it) for the whole file.  Waits are
# for conditions (poll_query_until, wait_for_catchup, the events queue's
# counters), never sleeps.  The key ring is TRADING_GUARD_MASTER_KEY, made at
# run time; secrets reach the server only as bound parameters (pgbench -M
# extended -D), never as literals in SQL text.

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_hex);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

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

# The key ring of both servers (each inherits this process's environment):
# one key made for this run.
my $master_key = unpack('H*', random_bytes(32));
$ENV{TRADING_GUARD_MASTER_KEY} = "1 $master_key";
my @secrets = ($master_key);    # for the leak checks of part 6

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

# Run SQL on $node; (exit code, stdout, stderr), SQLSTATEs in the error
# lines ("ERROR:  TG100: ...").
sub run_sql
{
	my ($node, $sql, $db) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql(
		$db // 'postgres', $sql,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $out, $err);
}

# The SQLSTATE a statement fails with, or "ok" when it works.
sub sqlstate
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = run_sql($node, $sql);
	return $1 if $err =~ /^(?:psql:\S+: )?ERROR:  ([0-9A-Z]{5}): /m;
	return 'ok' if $ret == 0;
	return "exit $ret";
}

sub fails_with
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($node, $sql, $state, $name, @res) = @_;
	my ($ret, $out, $err) = run_sql($node, $sql);
	my $got = $err =~ /^(?:psql:\S+: )?ERROR:  ([0-9A-Z]{5}): /m ? $1 : "exit $ret";
	is($got, $state, "$name: SQLSTATE $state") or diag($err);
	like($err, $_, "$name: the error says $_") foreach @res;
	return $err;
}

# Run one statement with named values bound as parameters of the extended
# query protocol (pgbench -M extended turns ":name" into $1, $2, ...), so
# the values never appear in SQL text.  Dies unless it works.
my $nscript = 0;

sub bound
{
	my ($node, $sql, %vars) = @_;
	my $file = write_file_mode("$scriptdir/bound_" . ++$nscript . '.sql', "$sql\n", 0600);
	my @cmd = (
		'pgbench', '-n', '-t', '1', '-M', 'extended', '-f', $file,
		(map { ('-D', "$_=$vars{$_}") } sort keys %vars),
		'-h', $node->host, '-p', $node->port, 'postgres');
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err) or die "$sql failed";
	return;
}

# pgbench as role bot: $clients clients, @how (-T / -R / -t ...), the order
# script with round number $round.  Returns (exit status, transactions
# processed, output).
my $order_script;

sub bench_cmd
{
	my ($node, $round, @how) = @_;
	return [
		'pgbench', '-n', '-c', '2', '-j', '2', @how,
		'-f', $order_script, '-D', "round=$round",
		'-h', $node->host, '-p', $node->port, '-U', 'bot', 'postgres'
	];
}

sub bench_result
{
	my ($ok, $out, $err) = @_;
	my ($processed) = $out =~ /number of transactions actually processed: (\d+)/;
	return ($ok ? 0 : 1, $processed // -1, "$out$err");
}

# Wait until the events worker has taken off its queue every event queued so
# far (they are then committed in the events database), and return how many
# the queue dropped (always 0 here: the queue holds 8192).
sub events_written
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($node, $name) = @_;
	my $head = $node->safe_psql('postgres',
		'SELECT queued_total FROM trading_guard.security_event_queue');
	ok( $node->poll_query_until('postgres',
			"SELECT queued_total - queued >= $head FROM trading_guard.security_event_queue"),
		"$name: the events worker wrote the queued events")
	  or diag($node->safe_psql('postgres', 'SELECT * FROM trading_guard.security_event_queue'));
	is( $node->safe_psql('postgres', 'SELECT dropped_total FROM trading_guard.security_event_queue'),
		'0', "$name: no event dropped");
	return;
}

# ---------------------------------------------------------------------------
# The primary
# ---------------------------------------------------------------------------

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'trading_guard'
track_commit_timestamp = on
log_line_prefix = '%m [%p] %e %q%a '
max_connections = 20
});
$node->start;

# The security events go to their own database (trading_guard.events_database
# is read at start: set it once the database is there, then restart).
$node->safe_psql('postgres', 'CREATE DATABASE tg_events');
$node->safe_psql('tg_events', 'CREATE EXTENSION trading_guard');
$node->append_conf('postgresql.conf', "trading_guard.events_database = 'tg_events'\n");
$node->restart;
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'trading_guard events' AND datname = 'tg_events'}),
	'the events worker runs in tg_events');

my $me = $node->safe_psql('postgres', 'SELECT current_user');

$node->safe_psql('postgres', q{
	CREATE EXTENSION trading_guard;
	SELECT count(*) FROM trading_guard.load_exchange_info('{"symbols": [
	  {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT", "filters": [
	    {"filterType": "LOT_SIZE", "minQty": "0.00100000", "maxQty": "9000.00000000", "stepSize": "0.00100000"},
	    {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"}]}]}');
	CREATE TABLE orders (
	    id bigserial PRIMARY KEY,
	    symbol text NOT NULL,
	    side text NOT NULL,
	    quantity numeric NOT NULL,
	    price numeric,
	    status text NOT NULL DEFAULT 'NEW',
	    exchange text,
	    placed_by name NOT NULL DEFAULT current_user);
	SELECT trading_guard.protect_orders('orders', exchange_col => 'exchange');
	CREATE TABLE plain_orders (symbol text, side text, quantity numeric, price numeric);
	SELECT trading_guard.protect_orders('plain_orders');

	-- every order attempt of the pgbench rounds, with its outcome
	CREATE TABLE attempts (
	    id bigserial PRIMARY KEY,
	    round int NOT NULL,
	    pid int NOT NULL,
	    outcome text NOT NULL);
	CREATE FUNCTION try_order(qty numeric, rnd int) RETURNS text
	LANGUAGE plpgsql AS $$
	BEGIN
	    INSERT INTO orders (symbol, side, quantity, price, exchange)
	    VALUES ('BTCUSDT', 'BUY', qty, 65000.01, 'binance');
	    INSERT INTO attempts (round, pid, outcome) VALUES (rnd, pg_backend_pid(), 'ok');
	    RETURN 'ok';
	EXCEPTION WHEN SQLSTATE 'TG101' OR SQLSTATE 'TG100' THEN
	    -- the refused INSERT is rolled back; its count in shared memory stays
	    INSERT INTO attempts (round, pid, outcome) VALUES (rnd, pg_backend_pid(), SQLSTATE);
	    RETURN SQLSTATE;
	END
	$$;

	-- on the standby: sign until a halt refuses, then say when (and how
	-- many were signed before); application_name says the first one worked
	CREATE FUNCTION sign_until_refused(max_wait interval) RETURNS text
	LANGUAGE plpgsql AS $$
	DECLARE
	    deadline timestamptz := clock_timestamp() + max_wait;
	    n int := 0;
	BEGIN
	    LOOP
	        BEGIN
	            PERFORM trading_guard.sign_request('binance', 'main', 'symbol=BTCUSDT&side=BUY&quantity=1&n=' || n);
	            n := n + 1;
	            IF n = 1 THEN
	                PERFORM set_config('application_name', 'probe_signed', false);
	            END IF;
	        EXCEPTION WHEN SQLSTATE 'TG100' THEN
	            RETURN n || ' ' || extract(epoch FROM clock_timestamp());
	        END;
	        IF clock_timestamp() > deadline THEN
	            RETURN n || ' timeout';
	        END IF;
	        PERFORM pg_sleep(0.001);
	    END LOOP;
	END
	$$;

	CREATE ROLE bot LOGIN;
	GRANT SELECT, INSERT ON orders, attempts TO bot;
	GRANT USAGE ON SEQUENCE orders_id_seq, attempts_id_seq TO bot;
});

$order_script = write_file_mode("$scriptdir/order.sql", q{\set q random(1, 1000)
SELECT try_order(:q * 0.001, :round);
}, 0600);

my $insert_binance = q{INSERT INTO orders (symbol, side, quantity, price, exchange) VALUES ('BTCUSDT', 'BUY', 0.5, 65000.01, 'binance')};
my $insert_kraken = q{INSERT INTO orders (symbol, side, quantity, price, exchange) VALUES ('BTCUSDT', 'BUY', 0.5, 65000.01, 'kraken')};
my $insert_plain = q{INSERT INTO plain_orders VALUES ('BTCUSDT', 'SELL', 0.5, 65000.01)};

# What the incident report must find at the end (this test's own counts).
my %halt_actions = (halt => 0, resume => 0);
my $my_halt_refusals = 0;    # orders of $me refused by a halt

# ---------------------------------------------------------------------------
# 1. A halt survives a restart
# ---------------------------------------------------------------------------
{
	is(sqlstate($node, $insert_binance), 'ok', 'before the halt: an order is admitted');
	my $hid = $node->safe_psql('postgres',
		q{SELECT trading_guard.halt_trading('exchange incident', exchange => 'binance')});
	like($hid, qr/^\d+$/, 'halt_trading(exchange => binance) returns the halt id');
	$halt_actions{halt}++;
	fails_with($node,
		q{SELECT trading_guard.halt_trading('again', exchange => 'binance')},
		'TG107', 'a second halt of the same scope');

	$node->restart;

	fails_with($node, $insert_binance, 'TG100', 'after the restart: an order on binance',
		qr/ERROR:  TG100: trading is halted \(exchange binance\): exchange incident$/m);
	$my_halt_refusals++;
	fails_with($node, $insert_plain, 'TG100',
		'after the restart: an order in a table without an exchange column');
	$my_halt_refusals++;
	is(sqlstate($node, $insert_kraken), 'ok', 'after the restart: another exchange trades on');
	is( $node->safe_psql('postgres',
			q{SELECT string_agg(format('%s|%s|%s|%s', id, scope, exchange, reason), ' ')
			    FROM trading_guard.trading_status()}),
		"$hid|exchange binance|binance|exchange incident",
		'after the restart: trading_status() lists the halt');
	is( $node->safe_psql('postgres', 'SELECT count(*) FROM trading_guard.trading_status'),
		'1', 'after the restart: so does the view');

	is( $node->safe_psql('postgres',
			q{SELECT trading_guard.resume_trading(exchange => 'binance')}),
		$hid, 'resume_trading returns the id of the halt it lifts');
	$halt_actions{resume}++;
	is(sqlstate($node, $insert_binance), 'ok', 'resumed: an order on binance is admitted');
	is(sqlstate($node, $insert_plain), 'ok', 'resumed: the table without an exchange column too');
	fails_with($node, q{SELECT trading_guard.resume_trading(exchange => 'binance')},
		'TG105', 'a resume with nothing halted');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM trading_guard.trading_status()'),
		'0', 'trading_status() is empty');
}

# ---------------------------------------------------------------------------
# 2. Limits and a halt under pgbench load
# ---------------------------------------------------------------------------
my $limit = 50;
my ($rate_refusals, $bot_halt_refusals);
{
	$node->safe_psql('postgres',
		"SELECT trading_guard.set_order_limit('bot', orders_per_minute => $limit)");

	# round 1: about 600 attempts in 3 s, far more than the limit, well inside
	# its minute
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(bench_cmd($node, 1, '-T', '3', '-R', '200'),
		'>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	my ($rc, $processed, $text) = bench_result($ok, $out, $err);
	is($rc, 0, 'round 1: pgbench ran without an aborted client') or diag($text);

	my ($attempts, $admitted, $refused, $other) = split /\|/, $node->safe_psql('postgres', q{
		SELECT format('%s|%s|%s|%s', count(*), count(*) FILTER (WHERE outcome = 'ok'),
		              count(*) FILTER (WHERE outcome = 'TG101'),
		              count(*) FILTER (WHERE outcome NOT IN ('ok', 'TG101')))
		  FROM attempts WHERE round = 1});
	is($attempts, $processed, 'round 1: each pgbench transaction is one recorded attempt');
	cmp_ok($attempts, '>', 2 * $limit, "round 1: more than twice the limit was attempted ($attempts)");
	is($admitted, $limit, "round 1: exactly $limit orders admitted (the limit, and no more)");
	is($refused, $attempts - $limit, 'round 1: every other attempt refused with TG101');
	is($other, 0, 'round 1: no other outcome');
	is( $node->safe_psql('postgres', q{SELECT count(*) FROM orders WHERE placed_by = 'bot'}),
		$limit, "round 1: the table holds exactly $limit orders of bot");
	$rate_refusals = $refused;

	is( $node->safe_psql('postgres', q{
			SELECT format('%s %s %s %s %s', limit_value, window_seconds, used, admitted, refused)
			  FROM trading_guard.limit_usage
			 WHERE subject_kind = 'order' AND role = 'bot'::regrole AND limit_name = 'orders_per_minute'}),
		"$limit 60 $limit $limit $rate_refusals",
		'round 1: limit_usage: used and admitted are the limit, refused the TG101 count');
	is( $node->safe_psql('postgres', q{
			SELECT count(*) FROM trading_guard.over_limit
			 WHERE role = 'bot'::regrole AND limit_name = 'orders_per_minute'}),
		'1', 'round 1: bot is in over_limit');

	events_written($node, 'round 1');
	is( $node->safe_psql('tg_events', q{
			SELECT count(*) FROM trading_guard.security_events
			 WHERE event_type = 'rate_limit' AND outcome = 'refused' AND role_name = 'bot'
			   AND detail->>'limit' = 'orders_per_minute' AND detail->>'sqlstate' = 'TG101'}),
		$rate_refusals, 'round 1: one rate_limit security event per refusal');

	# round 2: room again (a higher limit), then a halt of role bot committed
	# while both clients are placing orders
	$node->safe_psql('postgres',
		"SELECT trading_guard.set_order_limit('bot', orders_per_minute => 1000000)");
	($out, $err) = ('', '');
	my $h = IPC::Run::start(bench_cmd($node, 2, '-T', '4', '-R', '200'),
		'>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	ok( $node->poll_query_until('postgres',
			q{SELECT count(*) >= 20 FROM attempts WHERE round = 2 AND outcome = 'ok'}),
		'round 2: orders are admitted again');
	my $hid = $node->safe_psql('postgres',
		q{SELECT trading_guard.halt_trading('bot compromised', role => 'bot')});
	$halt_actions{halt}++;
	# every attempt numbered after this was numbered after the halt committed;
	# at most one per client can have been checked just before
	my $cut = $node->safe_psql('postgres', 'SELECT last_value FROM attempts_id_seq');
	$ok = $h->finish;
	($rc, $processed, $text) = bench_result($ok, $out, $err);
	is($rc, 0, 'round 2: pgbench ran without an aborted client') or diag($text);

	my ($ok2, $halted2, $late_ok, $after_halt) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT format('%s|%s|%s|%s',
		    count(*) FILTER (WHERE outcome = 'ok'),
		    count(*) FILTER (WHERE outcome = 'TG100'),
		    count(*) FILTER (WHERE outcome <> 'TG100' AND id > $cut),
		    (SELECT count(*) FROM attempts a
		      WHERE a.round = 2 AND a.outcome <> 'TG100'
		        AND EXISTS (SELECT 1 FROM attempts b
		                     WHERE b.round = 2 AND b.pid = a.pid AND b.outcome = 'TG100' AND b.id < a.id)))
		  FROM attempts WHERE round = 2});
	cmp_ok($ok2, '>=', 20, "round 2: orders were admitted before the halt ($ok2)");
	cmp_ok($halted2, '>', 0, "round 2: the running sessions are refused with TG100 after it ($halted2)");
	is($after_halt, 0, 'round 2: in each session, once refused by the halt, nothing is admitted again');
	cmp_ok($late_ok, '<=', 2,
		'round 2: after the halt committed at most the one order in flight per client was admitted');
	is( $node->safe_psql('postgres', q{SELECT count(*) FROM orders WHERE placed_by = 'bot'}),
		$limit + $ok2, 'round 2: every admitted attempt, and only those, is an order');

	# round 3: the halt stays, everything is refused
	($out, $err) = ('', '');
	$ok = IPC::Run::run(bench_cmd($node, 3, '-t', '20'), '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	($rc, $processed, $text) = bench_result($ok, $out, $err);
	is($rc, 0, 'round 3: pgbench ran without an aborted client') or diag($text);
	is( $node->safe_psql('postgres', q{
			SELECT format('%s %s', count(*), count(*) FILTER (WHERE outcome = 'TG100'))
			  FROM attempts WHERE round = 3}),
		'40 40', 'round 3: 40 attempts, all refused by the halt');
	is( $node->safe_psql('postgres', q{SELECT count(*) FROM orders WHERE placed_by = 'bot'}),
		$limit + $ok2, 'round 3: no order of bot written');

	$bot_halt_refusals = $node->safe_psql('postgres',
		q{SELECT count(*) FROM attempts WHERE outcome = 'TG100'});
	is( $node->safe_psql('postgres', q{
			SELECT format('%s %s', admitted, refused) FROM trading_guard.limit_usage
			 WHERE role = 'bot'::regrole AND limit_name = 'orders_per_minute'}),
		($limit + $ok2) . " $rate_refusals",
		'limit_usage: the halt refusals are not counted against the rate limit');
	is( $node->safe_psql('postgres', q{
			SELECT refused FROM trading_guard.limit_usage
			 WHERE subject_kind = 'order' AND role = 'bot'::regrole AND limit_name = 'halt'}),
		$bot_halt_refusals, 'limit_usage: the halt row of bot counts each TG100');

	# other roles trade on
	is(sqlstate($node, $insert_binance), 'ok', 'a role halt leaves other roles alone');
	is( $node->safe_psql('postgres', q{SELECT trading_guard.resume_trading(role => 'bot')}),
		$hid, 'resume the role');
	$halt_actions{resume}++;
	$node->safe_psql('postgres', q{SELECT trading_guard.drop_order_limit('bot')});

	events_written($node, 'rounds 2 and 3');
	is( $node->safe_psql('tg_events', q{
			SELECT count(*) FROM trading_guard.security_events
			 WHERE event_type = 'halt' AND outcome = 'refused' AND role_name = 'bot'
			   AND detail->>'refused' = 'order'}),
		$bot_halt_refusals, 'one halt refusal event per TG100 of bot');
}

# ---------------------------------------------------------------------------
# 3. A halted exchange: cancels and reads are signed, orders are not
# ---------------------------------------------------------------------------
my %secret;
my $sign_halt_refusals = 0;
{
	for my $cred ([ 'binance', 'main' ], [ 'binance', 'sub' ], [ 'kraken', 'spot' ])
	{
		my ($exchange, $label) = @$cred;
		my ($key, $s) = ('K' . new_secret(), new_secret());
		push @secrets, $key, $s;
		$secret{"$exchange/$label"} = $s;
		bound($node,
			"SELECT trading_guard.store_credential('$exchange', '$label', :api_key, :api_secret)",
			api_key => $key, api_secret => $s);
	}
	my $sign = sub {
		my ($n, $exchange, $label, $payload, $purpose) = @_;
		my $p = defined $purpose ? ", '$purpose'" : '';
		return $n->safe_psql('postgres',
			"SELECT trading_guard.sign_request('$exchange', '$label', '$payload'$p)");
	};
	my $order_payload = 'symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=65000.01&timestamp=1';
	my $cancel_payload = 'symbol=BTCUSDT&orderId=1&timestamp=2';
	my $read_payload = 'symbol=BTCUSDT&timestamp=3';

	is($sign->($node, 'binance', 'main', $order_payload),
		hmac_sha256_hex($order_payload, $secret{'binance/main'}),
		'before the halt: an order is signed (HMAC-SHA256 of the stored secret)');

	my $order_id = $node->safe_psql('postgres', qq{$insert_binance RETURNING id});
	$node->safe_psql('postgres',
		q{SELECT trading_guard.halt_trading('withdrawals look wrong', exchange => 'binance')});
	$halt_actions{halt}++;

	fails_with($node,
		"SELECT trading_guard.sign_request('binance', 'main', '$order_payload')",
		'TG100', 'halted: an order signature',
		qr/trading is halted \(exchange binance\): withdrawals look wrong/);
	$sign_halt_refusals++;
	is($sign->($node, 'binance', 'main', $cancel_payload, 'cancel'),
		hmac_sha256_hex($cancel_payload, $secret{'binance/main'}),
		'halted: a declared cancel is signed, and right');
	is($sign->($node, 'binance', 'main', $read_payload, 'read'),
		hmac_sha256_hex($read_payload, $secret{'binance/main'}),
		'halted: a declared read is signed, and right');
	is($sign->($node, 'kraken', 'spot', $order_payload),
		hmac_sha256_hex($order_payload, $secret{'kraken/spot'}),
		'halted binance: an order on kraken is signed');

	$node->safe_psql('postgres',
		q{SELECT trading_guard.set_sign_purpose('binance', 'cancel', '^(?!.*(side|quantity)=)')});
	fails_with($node,
		"SELECT trading_guard.sign_request('binance', 'main', 'symbol=BTCUSDT&orderId=1&side=BUY', 'cancel')",
		'TG100', 'halted, with a cancel pattern: a "cancel" carrying side=',
		qr/does not match the pattern set for a cancel/);
	$sign_halt_refusals++;
	is($sign->($node, 'binance', 'main', $cancel_payload, 'cancel'),
		hmac_sha256_hex($cancel_payload, $secret{'binance/main'}),
		'halted, with a cancel pattern: a real cancel is signed');

	# the protected order table: a status change is not a new order
	is( $node->safe_psql('postgres',
			"UPDATE orders SET status = 'CANCELED' WHERE id = $order_id RETURNING status"),
		'CANCELED', 'halted: an UPDATE of the status of an order is allowed');
	fails_with($node, "UPDATE orders SET quantity = 0.7 WHERE id = $order_id",
		'TG100', 'halted: an UPDATE of the quantity of an order');
	$my_halt_refusals++;
	is($node->safe_psql('postgres', "SELECT quantity FROM orders WHERE id = $order_id"),
		'0.5', 'the refused UPDATE changed nothing');

	# a signing limit: 3 a minute
	$node->safe_psql('postgres',
		q{SELECT trading_guard.set_sign_limit('kraken', 'spot', requests_per_minute => 3)});
	my ($ret, $out, $err) = ('', '', '');
	$ret = $node->psql('postgres',
		join('', map { "SELECT length(trading_guard.sign_request('kraken', 'spot', 'n=$_'));\n" } 1 .. 5),
		stdout => \$out, stderr => \$err, on_error_stop => 0,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	is($out, "64\n64\n64", 'requests_per_minute 3: three signatures');
	is(scalar(() = $err =~ /ERROR:  TG104: signing rate limit of credential kraken\/spot reached/g),
		2, 'requests_per_minute 3: the next two refused with TG104');
	is( $node->safe_psql('postgres', q{
			SELECT format('%s %s %s', used, admitted, refused) FROM trading_guard.limit_usage
			 WHERE subject_kind = 'sign' AND exchange = 'kraken' AND label = 'spot'
			   AND limit_name = 'requests_per_minute'}),
		'3 3 2', 'limit_usage of the signing limit');
	is( $node->safe_psql('postgres', q{
			SELECT refused FROM trading_guard.limit_usage
			 WHERE subject_kind = 'sign' AND exchange = 'binance' AND label = 'main'
			   AND limit_name = 'halt'}),
		$sign_halt_refusals, 'limit_usage: the halt row of binance/main counts the refused signatures');

	is( $node->safe_psql('postgres', q{SELECT trading_guard.resume_trading(exchange => 'binance') > 0}),
		't', 'resume binance');
	$halt_actions{resume}++;
	is($sign->($node, 'binance', 'main', $order_payload),
		hmac_sha256_hex($order_payload, $secret{'binance/main'}),
		'resumed: an order is signed again');
}

# ---------------------------------------------------------------------------
# 4. A streaming standby
# ---------------------------------------------------------------------------
my $standby;
{
	$node->backup('base');
	$standby = PostgreSQL::Test::Cluster->new('standby');
	$standby->init_from_backup($node, 'base', has_streaming => 1);
	$standby->start;
	$node->wait_for_catchup($standby);
	is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

	my $payload = 'symbol=BTCUSDT&side=SELL&quantity=0.5&timestamp=4';
	my $want = hmac_sha256_hex($payload, $secret{'binance/main'});
	my $sign_sql = "SELECT trading_guard.sign_request('binance', 'main', '$payload')";
	is($standby->safe_psql('postgres', $sign_sql), $want, 'standby: signs (the same HMAC)');

	# a session inside a transaction, whose snapshot predates the halt
	my $session = $standby->background_psql('postgres', on_error_stop => 0);
	$session->query_safe('\set VERBOSITY verbose');
	$session->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	is($session->query_safe($sign_sql), $want, 'standby, a transaction: signs before the halt');

	# a statement that signs in a loop until refused
	my ($pout, $perr) = ('', '');
	my $probe = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $standby->connstr('postgres'),
		  '-c', q{SELECT sign_until_refused('60 s')} ],
		'>', \$pout, '2>', \$perr,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	ok( $standby->poll_query_until('postgres',
			q{SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'probe_signed'}),
		'standby: a running statement is signing');

	my $hid = $node->safe_psql('postgres',
		q{SELECT trading_guard.halt_trading('standby drill', exchange => 'binance')});
	$halt_actions{halt}++;
	my $commit_epoch = $node->safe_psql('postgres',
		"SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM trading_guard.trading_halts WHERE id = $hid");
	$probe->finish;
	like($pout, qr/^[1-9]\d* \d+(\.\d+)?$/,
		'standby: the running statement signed, then was refused by the replayed halt')
	  or diag("stdout: $pout\nstderr: $perr");
	if ($pout =~ /^\d+ (\d+(?:\.\d+)?)$/)
	{
		diag(sprintf('standby: first refusal %.1f ms after the halt committed on the primary',
				($1 - $commit_epoch) * 1000));
	}

	$node->wait_for_catchup($standby);
	fails_with($standby, $sign_sql, 'TG100', 'standby, a new session, the halt replayed',
		qr/trading is halted \(exchange binance\): standby drill/);
	$session->{stderr} = '';
	$session->query($sign_sql);
	like($session->{stderr}, qr/ERROR:  TG100: trading is halted \(exchange binance\)/,
		'standby, the transaction opened before the halt: refused in the same transaction');
	$session->{stderr} = '';    # BackgroundPsql keeps the stderr of a failed query
	$session->query_safe('ROLLBACK');
	is( $standby->safe_psql('postgres',
			"SELECT trading_guard.sign_request('binance', 'main', 'symbol=BTCUSDT&orderId=7', 'cancel')"),
		hmac_sha256_hex('symbol=BTCUSDT&orderId=7', $secret{'binance/main'}),
		'standby, halted: a cancel is signed');
	fails_with($standby,
		"SELECT trading_guard.sign_request('binance', 'main', 'symbol=BTCUSDT&side=BUY', 'cancel')",
		'TG100', "standby, halted: the primary's cancel pattern applies");
	is( $standby->safe_psql('postgres',
			q{SELECT string_agg(scope, ' ') FROM trading_guard.trading_status()}),
		'exchange binance', 'standby: trading_status() shows the halt');

	# the resume, seen inside a REPEATABLE READ transaction begun before it
	$session->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	$session->query_safe('SELECT count(*) FROM trading_guard.trading_status()');
	$node->safe_psql('postgres', q{SELECT trading_guard.resume_trading(exchange => 'binance')});
	$halt_actions{resume}++;
	$node->wait_for_catchup($standby);
	$session->{stderr} = '';
	my $got = $session->query($sign_sql);
	is($got, $want, 'standby, a transaction begun before the resume: signs again')
	  or diag($session->{stderr});
	$session->query_safe('COMMIT');
	is($standby->safe_psql('postgres', $sign_sql), $want, 'standby, a new session: signs again');
	$session->quit;
}

# ---------------------------------------------------------------------------
# 5. The kill switch and the incident report
# ---------------------------------------------------------------------------
{
	my $active = $node->safe_psql('postgres',
		q{SELECT count(*) FROM trading_guard.credentials WHERE exchange = 'binance' AND revoked_at IS NULL});
	is($active, '2', 'two active binance credentials');
	is( $node->safe_psql('postgres', q{SELECT trading_guard.revoke_all_credentials('binance')}),
		$active, 'revoke_all_credentials(binance) returns how many it revoked');
	fails_with($node, q{SELECT trading_guard.sign_request('binance', 'main', 'a=1')},
		'TG075', 'a revoked credential does not sign', qr/has been revoked/);
	fails_with($node, q{SELECT trading_guard.sign_request('binance', 'sub', 'a=1', 'cancel')},
		'TG075', 'nor does the other one, not even a cancel');
	is( $node->safe_psql('postgres',
			q{SELECT string_agg(exchange || '/' || label || ' ' || (revoked_at IS NOT NULL), ', ' ORDER BY id)
			    FROM trading_guard.credentials}),
		'binance/main true, binance/sub true, kraken/spot false',
		'kraken is left alone');
	is( $node->safe_psql('postgres', q{SELECT trading_guard.revoke_all_credentials('binance')}),
		'0', 'a second kill switch finds nothing left');
	$node->wait_for_catchup($standby);
	fails_with($standby, q{SELECT trading_guard.sign_request('binance', 'main', 'a=1')},
		'TG075', 'standby: the revocation is replayed');

	events_written($node, 'the kill switch');
	my %report;
	for my $line (split /\n/, $node->safe_psql('tg_events', q{
			SELECT section, subject, count,
			       coalesce(detail->>'refused_by', detail->>'limit', '')
			  FROM trading_guard.incident_report(now() - interval '1 hour')}))
	{
		my ($section, $subject, $count, $key) = split /\|/, $line, 4;
		$report{"$section|$subject|$key"} += $count;
	}
	note(join("\n", map { "$_ => $report{$_}" } sort keys %report));
	is($report{"orders_refused|bot|orders_per_minute"}, $rate_refusals,
		'incident_report orders_refused: bot by orders_per_minute');
	is($report{"orders_refused|bot|halt"}, $bot_halt_refusals,
		'incident_report orders_refused: bot by the halt');
	is($report{"orders_refused|$me|halt"}, $my_halt_refusals,
		"incident_report orders_refused: $me by halts (inserts after the restart, the quantity UPDATE)");
	is($report{"limit_hits|bot|orders_per_minute"}, $rate_refusals,
		'incident_report limit_hits: bot, orders_per_minute');
	is($report{"limit_hits|kraken/spot|requests_per_minute"}, 2,
		'incident_report limit_hits: kraken/spot, requests_per_minute');
	is($report{"signatures_refused|binance/main|"}, $sign_halt_refusals,
		'incident_report signatures_refused: binance/main (on the primary)');
	is($report{"halts|halt|"}, $halt_actions{halt},
		"incident_report halts: $halt_actions{halt} halts (the restarted one too; no TG107)");
	is($report{"halts|resume|"}, $halt_actions{resume},
		"incident_report halts: $halt_actions{resume} resumes (no TG105)");
	is(scalar(grep { /^active_halts\|/ } keys %report), 0, 'incident_report: no active halt');
	is($report{"credentials_revoked|binance|"}, 2,
		'incident_report credentials_revoked: binance, 2 (the empty second call counts 0)');
	is( $node->safe_psql('tg_events', q{
			SELECT count(*) FROM trading_guard.incident_report(now() - interval '1 hour')
			 WHERE section = 'credentials_revoked'}),
		'2', 'incident_report: both kill switch calls are listed');
}

# ---------------------------------------------------------------------------
# 6. Nothing sensitive
# ---------------------------------------------------------------------------
{
	my $all = $node->safe_psql('tg_events',
		q{SELECT string_agg(e::text, E'\n') FROM trading_guard.security_events e});
	cmp_ok(length($all), '>', 10000, 'security_events holds the events of this test');
	my $leaks = grep { index($all, $_) >= 0 } @secrets;
	is($leaks, 0, 'no secret, API key or master key in security_events');
	for my $n ($node, $standby)
	{
		my $log = slurp_file($n->logfile);
		$leaks = grep { index($log, $_) >= 0 } @secrets;
		is($leaks, 0, 'no secret, API key or master key in the server log of ' . $n->name);
	}
	# this test's own output (commands, query results, notes)
	my $own = slurp_file($PostgreSQL::Test::Utils::test_logfile);
	cmp_ok(length($own), '>', 1000, "this test's log is there");
	$leaks = grep { index($own, $_) >= 0 } @secrets;
	is($leaks, 0, "no secret, API key or master key in this test's own log");
}

$standby->stop;
$node->stop;
done_testing();
