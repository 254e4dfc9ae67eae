# test/t/003_audit_crash.pl — the row-level audit trail survives a crash in
# the middle of a concurrent write load exactly as the audited table does:
# after crash recovery, every change of every committed transaction has
# exactly one audit row, no transaction that rolled back or was cut short by
# the crash left any, no audit row is duplicated, and replaying the audit
# rows gives the table's content.
#
# The load: pgbench clients run transactions that insert, update and delete
# rows of the audited table "trades" (one part of each in a subtransaction
# rolled back to its savepoint), and record what they changed in ledger and
# ledger_ops, which are not audited, in the same transaction; a fifth of the
# transactions end in ROLLBACK.  So the ledger holds a row iff its
# transaction committed, and says which audit rows must exist.  Every
# server process is then killed at once with SIGKILL, while the clients are
# busy, and the server restarted.

use strict;
use warnings;

use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_crash');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'trading_guard'");
$node->start;

# Seed rows 1..200 (qty 0) are only ever updated, each update adding 1 to
# qty, so a seed row's qty counts its committed updates; rows inserted by the
# load get ids above 1000 and are only ever deleted.  Tag 0 is the seed.
$node->safe_psql('postgres', q{
	CREATE EXTENSION trading_guard;
	CREATE TABLE trades (id bigint PRIMARY KEY, account int, qty numeric, note text);
	CREATE INDEX ON trades (account, id);
	SELECT trading_guard.enable_audit('trades');
	CREATE SEQUENCE trade_id_seq START 1001;
	CREATE SEQUENCE tag_seq;
	CREATE TABLE ledger (tag bigint PRIMARY KEY, xid xid8 NOT NULL UNIQUE,
		client int, n int, UNIQUE (client, n));
	CREATE TABLE ledger_ops (tag bigint NOT NULL, op text NOT NULL, id bigint NOT NULL);

	BEGIN;
	WITH i AS (INSERT INTO trades
			SELECT g, g % 10 + 1, 0, 'seed' FROM generate_series(1, 200) g
			RETURNING id)
	INSERT INTO ledger_ops SELECT 0, 'INSERT', id FROM i;
	INSERT INTO ledger VALUES (0, pg_current_xact_id(), NULL, NULL);
	COMMIT;
});

# One pgbench transaction, ending in $end.  n counts the client's
# transactions (pgbench keeps variables from one transaction to the next; -D
# starts it at 0), as the transaction number of pgbench's log does, so that
# the log says which (client, n) saw its COMMIT succeed.  Each change writes
# its own row in ledger_ops in the same statement, only if it changed a row.
# Row locks are taken in one order (a seed row, then an inserted row; the
# savepoint only touches the transaction's own new row), so no deadlock.
sub script
{
	my ($end) = @_;
	return qq{\\set acct random(1, 10)
\\set upd random(1, 200)
\\set n :n + 1
BEGIN;
SELECT nextval('tag_seq') AS tag \\gset
WITH i AS (INSERT INTO trades VALUES (nextval('trade_id_seq'), :acct, 1, 't' || :tag) RETURNING id)
INSERT INTO ledger_ops SELECT :tag, 'INSERT', id FROM i RETURNING id AS ins \\gset
WITH u AS (UPDATE trades SET qty = qty + 1, note = 't' || :tag WHERE id = :upd RETURNING id)
INSERT INTO ledger_ops SELECT :tag, 'UPDATE', id FROM u;
SAVEPOINT s;
WITH u AS (UPDATE trades SET qty = -1, note = 'lost ' || :tag WHERE id = :ins RETURNING id),
     i AS (INSERT INTO trades VALUES (-:tag, :acct, -1, 'lost ' || :tag) RETURNING id)
INSERT INTO ledger_ops SELECT :tag, 'UPDATE', id FROM u UNION ALL SELECT :tag, 'INSERT', id FROM i;
ROLLBACK TO SAVEPOINT s;
WITH d AS (DELETE FROM trades
            WHERE id = (SELECT min(id) FROM trades WHERE account = :acct AND id > 1000)
           RETURNING id)
INSERT INTO ledger_ops SELECT :tag, 'DELETE', id FROM d;
INSERT INTO ledger VALUES (:tag, pg_current_xact_id(), :client_id, :n);
$end;
};
}
my $dir = $node->basedir;
append_to_file("$dir/commit.sql", script('COMMIT'));
append_to_file("$dir/rollback.sql", script('ROLLBACK'));

# Four clients, for longer than the test needs: the crash ends them.  Script
# 0 commits, script 1 rolls back.
my ($pgb_out, $pgb_err) = ('', '');
my $pgbench = IPC::Run::start(
	[
		$node->installed_command('pgbench'), '-n', '-c', '4', '-j', '1',
		'-T', $PostgreSQL::Test::Utils::timeout_default,
		'-D', 'n=0', '-l', "--log-prefix=$dir/pgbench_log",
		'-f', "$dir/commit.sql\@4", '-f', "$dir/rollback.sql\@1",
		'-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$pgb_out, '2>', \$pgb_err,
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));

# Let a good number of transactions commit first.
$node->poll_query_until('postgres', 'SELECT count(*) >= 500 FROM ledger')
  or die 'the load did not commit 500 transactions';

# The crash: freeze the postmaster (it forks no new process, restarts none,
# and cannot react), kill every process it started, then itself, each with
# SIGKILL.  Killing the postmaster alone would let its backends finish what
# they are doing.  Children are found through /proc (Linux).
my $pm = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
kill('STOP', $pm) or die "could not stop the postmaster ($pm): $!";
my @children;
foreach my $stat (glob '/proc/[0-9]*/stat')
{
	my $line = eval { slurp_file($stat) } // next;
	# pid (comm) state ppid ...: comm may hold spaces and parentheses
	my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S+ (\d+) /s or next;
	push @children, $pid if $ppid == $pm;
}
cmp_ok(scalar @children, '>=', 4 + 3,
	'the server has its four client backends and its auxiliary processes')
  or diag("children of $pm: @children");
is(kill('KILL', @children), scalar @children, 'SIGKILL to every server process');
$node->kill9;

# A new postmaster refuses to start while the old one's PID still exists,
# and the dead ones exist until their parent, now init, reaps them: on some
# machines that takes a second or so.
my $reaped = 0;
foreach (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
{
	last if $reaped = !grep { kill(0, $_) } $pm, @children;
	usleep(100_000);
}
ok($reaped, 'the killed server processes are gone');

# The clients see their connections go and stop.
$pgbench->finish;
my @pgb_logs = glob "$dir/pgbench_log.*";
unlike($pgb_err, qr/ERROR:/, 'no client got an SQL error before the crash')
  or diag($pgb_err);
my @aborted = $pgb_err =~ /client \d+ aborted/g;
is(scalar @aborted, 4, 'the crash cut the four clients short');

my $log_offset = -s $node->logfile;
$node->start;
like(
	slurp_file($node->logfile, $log_offset),
	qr/database system was not properly shut down; automatic recovery in progress.*redo done/s,
	'the restart went through crash recovery');

# Run a query; its rows as a list of strings ('|' between columns).
sub rows
{
	my ($sql) = @_;
	my $out = $node->safe_psql('postgres', $sql);
	return $out eq '' ? () : split /\n/, $out;
}
# Assert that the query returns no row; show what it returned otherwise.
sub no_rows
{
	my ($sql, $name) = @_;
	my @r = rows($sql);
	is(scalar @r, 0, $name)
	  or diag(join("\n", @r[ 0 .. ($#r < 19 ? $#r : 19) ]));
}

# What the audit log says happened to trades, and what the ledger says.
$node->safe_psql('postgres', q{
	CREATE VIEW audited AS
		SELECT a.id AS audit_id, a.txid, a.operation AS op,
		       (a.row_key::jsonb ->> 'id')::bigint AS k,
		       a.old_key, a.old_row, a.new_row,
		       (a.old_row ->> 'qty')::numeric AS old_qty,
		       (a.new_row ->> 'qty')::numeric AS new_qty
		  FROM trading_guard.audit_log a
		 WHERE a.table_oid = 'trades'::regclass
		   AND a.operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE');
	CREATE VIEW expected AS
		SELECT l.tag, l.xid, o.op, o.id AS k
		  FROM ledger_ops o JOIN ledger l USING (tag);
});

my ($committed, $changes, $aborted) = split /\|/, $node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM ledger), (SELECT count(*) FROM expected),
	       (SELECT last_value FROM tag_seq) - (SELECT count(*) - 1 FROM ledger)});
note("$committed committed transactions with $changes changes; $aborted tags never committed");
cmp_ok($committed, '>=', 500, 'the ledger kept the committed transactions');
cmp_ok($aborted, '>', 0, 'and some transactions did not commit');

# The clients' view: every transaction pgbench saw commit is in the ledger,
# none it saw roll back is; the ledger may hold one more per client, whose
# COMMIT went through as the crash cut the answer off.
my (%saw_commit, %saw_rollback, %last_n);
foreach my $line (map { split /\n/, slurp_file($_) } @pgb_logs)
{
	# client_id transaction_no time script_no time_epoch time_us
	my ($client, $n, $time, $script) = split / /, $line;
	die "unexpected pgbench log line: $line" unless $time =~ /^\d+$/;
	($script == 0 ? \%saw_commit : \%saw_rollback)->{"$client|$n"} = 1;
	$last_n{$client} = $n if !defined $last_n{$client} || $n > $last_n{$client};
}
my %ledger = map { $_ => 1 } rows('SELECT client, n FROM ledger WHERE tag <> 0');
cmp_ok(scalar keys %saw_commit, '>', 0, 'pgbench logged committed transactions');
cmp_ok(scalar keys %saw_rollback, '>', 0, 'and rolled-back ones');
note(($aborted - scalar keys %saw_rollback)
	  . ' transaction(s) with a tag were in flight when the crash ended them');
is_deeply([ sort grep { !$ledger{$_} } keys %saw_commit ],
	[], 'every commit a client saw is in the ledger');
is_deeply([ sort grep { $ledger{$_} } keys %saw_rollback ],
	[], 'no rolled-back transaction is');
my @unseen = grep { !$saw_commit{$_} } keys %ledger;
note(scalar(@unseen) . ' committed transaction(s) whose COMMIT the crash hid from the client');
is_deeply(
	[
		sort grep {
			my ($c, $n) = split /\|/;
			$n != ($last_n{$c} // 0) + 1
		} @unseen
	],
	[],
	'the ledger holds nothing else but the transaction of each client in flight at the crash'
);

# (a) every change of a committed transaction: exactly one audit row
is($node->safe_psql('postgres', 'SELECT count(*) FROM audited'),
	$changes, 'as many audit rows as committed changes');
no_rows(q{
	SELECT e.* FROM expected e
	 WHERE (SELECT count(*) FROM audited a
	         WHERE a.txid = e.xid AND a.op = e.op AND a.k = e.k) <> 1},
	'each committed change has exactly one audit row');

# (b) nothing of a transaction that did not commit
no_rows(q{
	SELECT a.audit_id, a.op, a.k FROM audited a
	 WHERE NOT EXISTS (SELECT FROM expected e
	                    WHERE e.xid = a.txid AND e.op = a.op AND e.k = a.k)},
	'each audit row is a committed change');
no_rows(q{
	SELECT a.audit_id, a.op, a.k FROM audited a
	 WHERE a.txid NOT IN (SELECT xid FROM ledger)},
	'no audit row of a transaction that rolled back or died in the crash');
no_rows(q{
	SELECT a.audit_id, a.op, a.k FROM audited a
	 WHERE a.k < 0 OR a.old_row ->> 'note' LIKE 'lost%' OR a.new_row ->> 'note' LIKE 'lost%'},
	'no audit row of a subtransaction rolled back to its savepoint');
no_rows(q{
	SELECT a.audit_id, a.op, a.k, a.new_row ->> 'note', l.tag FROM audited a
	  JOIN ledger l ON l.xid = a.txid
	 WHERE a.op <> 'DELETE'
	   AND a.new_row ->> 'note' <> CASE l.tag WHEN 0 THEN 'seed' ELSE 't' || l.tag END},
	'the row images of each audit row are those its transaction wrote');

# (c) no duplicates
no_rows(q{
	SELECT txid, op, k, count(*) FROM audited GROUP BY 1, 2, 3 HAVING count(*) > 1},
	'no duplicate audit row per transaction, operation and key');
is($node->safe_psql('postgres',
	'SELECT count(*) - count(DISTINCT id) FROM trading_guard.audit_log'),
	'0', 'audit row ids are unique');

# (d) replaying the audit rows gives the table.  Each key was inserted once
# and deleted at most once; a seed row's updates form one chain of qty 0, 1,
# ..., m, each starting from the image the previous one left.
no_rows(q{
	SELECT k FROM audited GROUP BY k
	HAVING count(*) FILTER (WHERE op = 'INSERT') <> 1
	    OR count(*) FILTER (WHERE op = 'DELETE') > 1
	    OR count(*) FILTER (WHERE op = 'UPDATE' AND k > 1000) > 0},
	'each key was inserted once, deleted at most once');
no_rows(q{
	SELECT k FROM audited WHERE op = 'UPDATE' GROUP BY k
	HAVING count(*) <> count(DISTINCT old_qty) OR min(old_qty) <> 0
	    OR max(old_qty) <> count(*) - 1 OR NOT bool_and(new_qty = old_qty + 1)},
	'the updates of each row form one unbroken chain');
no_rows(q{
	SELECT u.audit_id, u.op, u.k FROM audited u
	 WHERE u.op IN ('UPDATE', 'DELETE')
	   AND (u.old_key IS NOT NULL
	        OR NOT EXISTS (SELECT FROM audited p
	                        WHERE p.k = u.k AND p.op IN ('INSERT', 'UPDATE')
	                          AND p.new_row = u.old_row))},
	'each update and delete starts from the image an earlier audit row left');
no_rows(q{
	WITH last AS (
		SELECT DISTINCT ON (k) k, op, new_row FROM audited
		 ORDER BY k, op = 'DELETE' DESC, new_qty DESC)
	SELECT k, l.new_row, t.img
	  FROM (SELECT k, new_row FROM last WHERE op <> 'DELETE') l
	  FULL JOIN (SELECT id AS k, to_jsonb(t) AS img FROM trades t) t USING (k)
	 WHERE l.new_row IS DISTINCT FROM t.img},
	'replaying the audit rows gives the table row for row');

# The audit rows and their index entries are written below SQL: after WAL
# replay, each btree index of audit_log must hold every row (amcheck,
# postgresql-contrib).
is( $node->safe_psql('postgres', q{
	CREATE EXTENSION amcheck;
	SELECT count(bt_index_check(i.indexrelid, true))
	  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	  JOIN pg_am am ON am.oid = c.relam
	 WHERE i.indrelid = 'trading_guard.audit_log'::regclass AND am.amname = 'btree'}),
	'2', 'the btree indexes of audit_log are intact and complete');

# After recovery the audit goes on, with ids not used before the crash.
$node->safe_psql('postgres', q{
	SET trading_guard.actor = 'after the crash';
	UPDATE trades SET qty = qty + 1 WHERE id = 1});
is( $node->safe_psql('postgres', q{
	SELECT count(*) FROM trading_guard.audit_log a
	 WHERE a.id = (SELECT id FROM trading_guard.audit_log WHERE actor = 'after the crash')}),
	'1', 'an audit row written after recovery gets an id of its own');

$node->stop;
done_testing();
