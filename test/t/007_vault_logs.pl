# test/t/007_vault_logs.pl — no API key, secret or master key of the
# credential vault reaches the server log, pg_stat_statements or
# pg_stat_activity, with everything logged that PostgreSQL can log: every
# statement (log_statement = all) and its duration
# (log_min_duration_statement = 0), bind parameters in full
# (log_parameter_max_length = -1) and on error
# (log_parameter_max_length_on_error = -1), the statement of every report
# (log_min_error_statement = info).
#
# Credentials are stored, rotated, revealed, used to sign, revoked and
# re-encrypted with their keys and secrets bound as parameters (pgbench's
# extended and prepared protocols; psql 15 has no \bind), once with
# log_statement = all and once with only the duration lines, which then
# carry the statement and its parameters.  Then errors on purpose: secrets
# written as literals (refused: TG070, directly and through EXECUTE, and in
# a syntax error), the same with trading_guard.reject_literal_secrets off
# (accepted), a duplicate store, a reveal of an unknown credential, a
# statement that fails after store_credential() ran with its parameters, a
# secret bound to a parameter of the wrong type.
#
# Then the ways around a text-based decision the security review found:
# the function's name written with U& escapes, quoted, with a comment
# before the parenthesis, or mistyped; a secret revealed into an error that
# is not a data exception (current_setting(reveal_credential(...)), 42704),
# also through an operator whose function is reveal_credential; literal
# secrets in a CREATE RULE action and a column DEFAULT (refused, so not in
# pg_stat_statements); an application's wrapper function that takes the
# secret as its own parameter, under auto_explain (what can and cannot be
# redacted: see there).  And what another module's emit_log_hook receives
# (a log shipper): tg_log_spy.c, built here and preloaded before
# trading_guard, writes down everything it is given.
#
# The master key and every key and secret are random, made at run time,
# and never printed: they go to pgbench's command line (not logged here) or
# to psql through the environment (\getenv), and a failed check names the
# value, not its text.
#
# One cluster, preloading the spy, trading_guard, pg_stat_statements and
# auto_explain.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use Digest::SHA qw(hmac_sha256_hex);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename qw(dirname);

# $bytes random bytes, in hex
sub random_hex
{
	my ($bytes) = @_;
	open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
	my $n = read($fh, my $buf, $bytes);
	close $fh;
	die "short read from /dev/urandom" unless defined $n && $n == $bytes;
	return unpack('H*', $buf);
}

# Every value that must appear nowhere, by what it is.
my %secret;

sub new_secret
{
	my ($what) = @_;
	die "two secrets named $what" if exists $secret{$what};
	return $secret{$what} = random_hex(24);
}

$secret{'the master key'} = random_hex(32);

my $node = PostgreSQL::Test::Cluster->new('vault_logs');
$node->init;

# The stand-in log shipper, built with the server's compiler and headers
my $spy_lib = $node->basedir . '/tg_log_spy.so';
my $spy_file = $node->basedir . '/tg_log_spy.txt';
system_or_bail(
	split(' ', $node->config_data('--cc')),
	split(' ', $node->config_data('--cflags')),
	split(' ', $node->config_data('--cflags_sl')),
	'-shared', '-I', $node->config_data('--includedir-server'),
	'-o', $spy_lib, dirname(__FILE__) . '/tg_log_spy.c');

$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$spy_lib,trading_guard,pg_stat_statements,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
auto_explain.log_verbose = on
});
$node->append_conf('postgresql.conf', q{
log_statement = all
log_min_duration_statement = 0
log_parameter_max_length = -1
log_parameter_max_length_on_error = -1
log_min_error_statement = info
lc_messages = 'C'
pg_stat_statements.track = all
});
{
	# the postmaster reads its key ring from here at start
	local $ENV{TRADING_GUARD_MASTER_KEY} = "1 $secret{'the master key'}";
	local $ENV{TG_LOG_SPY_FILE} = $spy_file;
	$node->start;
}

$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_stat_statements;
	CREATE EXTENSION trading_guard;
});
is($node->safe_psql('postgres', 'SELECT loaded FROM trading_guard.key_ring_status()'),
	't', 'the key ring is loaded from TRADING_GUARD_MASTER_KEY');

# Run SQL once through pgbench with :name variables bound as parameters
# ($mode: extended or prepared).  Returns (exit code, stderr).  The values
# are on pgbench's command line only: IPC::Run::run does not log it.  What
# the clients were told (stderr) is kept, to be searched for secrets too.
my $script = 0;
my $clients_told = '';

sub bound
{
	my ($sql, $vars, %opt) = @_;
	my $file = $node->basedir . '/bound_' . ++$script . '.sql';
	append_to_file($file, "$sql\n");
	my @cmd = (
		$node->installed_command('pgbench'), '-n', '-t', '1',
		'-M', $opt{mode} // 'extended',
		'-f', $file, '-h', $node->host, '-p', $node->port);
	push @cmd, '-D', "$_=$vars->{$_}" foreach sort keys %$vars;
	push @cmd, 'postgres';
	local $ENV{PGOPTIONS} = $opt{options} if defined $opt{options};
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
	$clients_told .= $err;
	return ($? >> 8, $err);
}

# Bound SQL that must succeed
sub bound_ok
{
	my ($sql, $vars, $name, %opt) = @_;
	my ($ret, $err) = bound($sql, $vars, %opt);
	is($ret, 0, $name) or diag($err);
}

# Bound SQL that must fail with an error matching $error
sub bound_fails
{
	my ($sql, $vars, $name, $error, %opt) = @_;
	my ($ret, $err) = bound($sql, $vars, %opt);
	isnt($ret, 0, $name);
	like($err, $error, "$name: the error") or diag($err);
}

my $STORE = 'SELECT trading_guard.store_credential(:exchange, :label, :api_key, :api_secret);';
my $ROTATE = 'SELECT trading_guard.rotate_credential(:exchange, :label, :api_key, :api_secret);';
my $payload = 'symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=65000&timestamp=1700000000000';

# The operations, bound; $options for the sessions (PGOPTIONS), $round
# names the credentials
sub operations
{
	my ($round, $options) = @_;
	my %o = (options => $options);
	my $main = "main_$round";
	my $bot = "bot_$round";

	my $key1 = new_secret("the first API key of binance/$main");
	my $secret1 = new_secret("the first secret of binance/$main");
	my $key2 = new_secret("the rotated API key of binance/$main");
	my $secret2 = new_secret("the rotated secret of binance/$main");
	my $bot_key = new_secret("the API key of kraken/$bot");
	my $bot_secret = new_secret("the secret of kraken/$bot");

	bound_ok($STORE,
		{ exchange => 'binance', label => $main, api_key => $key1, api_secret => $secret1 },
		"$round: store binance/$main (extended protocol)", %o);
	bound_ok($STORE,
		{ exchange => 'kraken', label => $bot, api_key => $bot_key, api_secret => $bot_secret },
		"$round: store kraken/$bot (prepared statement)", %o, mode => 'prepared');
	bound_ok($ROTATE,
		{ exchange => 'binance', label => $main, api_key => $key2, api_secret => $secret2 },
		"$round: rotate binance/$main", %o);
	bound_ok('SELECT trading_guard.reveal_credential(:exchange, :label) IS NOT NULL;',
		{ exchange => 'binance', label => $main },
		"$round: reveal binance/$main", %o);
	bound_ok('SELECT trading_guard.sign_request(:exchange, :label, :payload);',
		{ exchange => 'binance', label => $main, payload => $payload },
		"$round: sign a request with binance/$main", %o);
	bound_ok('SELECT trading_guard.revoke_credential(:exchange, :label);',
		{ exchange => 'kraken', label => $bot },
		"$round: revoke kraken/$bot", %o);

	# the vault did its work: reveal and sign give the rotated secret
	# (compared by digest, so that it is not printed either)
	is( $node->safe_psql('postgres',
			"SELECT md5(trading_guard.reveal_credential('binance', '$main'))"),
		md5_hex($secret2),
		"$round: reveal gives the rotated secret");
	is( $node->safe_psql('postgres',
			"SELECT trading_guard.sign_request('binance', '$main', '$payload')"),
		hmac_sha256_hex($payload, $secret2),
		"$round: sign_request is HMAC-SHA256 of the payload with the rotated secret");

	# errors on purpose, with bound secrets
	bound_fails($STORE,
		{
			exchange => 'binance', label => $main,
			api_key => new_secret("the API key of a duplicate of binance/$main"),
			api_secret => new_secret("the secret of a duplicate of binance/$main")
		},
		"$round: a duplicate store fails", qr/already exists/, %o);
	bound_fails('SELECT trading_guard.reveal_credential(:exchange, :label);',
		{ exchange => 'binance', label => "nope_$round" },
		"$round: a reveal of an unknown credential fails", qr/does not exist/, %o);
	bound_fails(
		'SELECT length(trading_guard.store_credential(:exchange, :label, :api_key, :api_secret)::text) / 0;',
		{
			exchange => 'binance', label => "then_fails_$round",
			api_key => new_secret("the API key stored by a failing statement ($round)"),
			api_secret => new_secret("the secret stored by a failing statement ($round)")
		},
		"$round: a statement that fails after store_credential() ran",
		qr/division by zero/, %o);
	# the secret lands in rotate_after: the bind-time input error quotes it
	bound_fails(
		'SELECT trading_guard.store_credential(:exchange, :label, :api_key, :api_secret, \'dev\', :api_secret);',
		{
			exchange => 'binance', label => "misplaced_$round",
			api_key => new_secret("the API key of a misplaced secret ($round)"),
			api_secret => new_secret("a secret bound to an interval ($round)")
		},
		"$round: a secret bound to the interval argument",
		qr/invalid input syntax for type interval: "<redacted>"/, %o);
}

operations('logged');
operations('timed', '-c log_statement=none');

# rekey: everything re-encrypted under the newest key version
is($node->safe_psql('postgres', 'SELECT remaining FROM trading_guard.rekey()'),
	'0', 'rekey re-encrypts every credential');

# A control: an unrelated statement's bound parameters are logged as usual,
# so the checks below look at a log where parameters do get written.
my $canary = 'canary-' . random_hex(8);
bound_ok('SELECT :value::text AS unrelated;', { value => $canary },
	'an unrelated statement with a bound parameter');

# ---------------------------------------------------------------------------
# Secrets written as literals, from psql sessions that stay open, so that
# pg_stat_activity still shows their last statement
# ---------------------------------------------------------------------------

local $ENV{TG_LIT_KEY} = new_secret('a literal API key (refused)');
local $ENV{TG_LIT_SECRET} = new_secret('a literal secret (refused)');
local $ENV{TG_EXEC_SECRET} = new_secret('a literal secret given to EXECUTE (refused)');
local $ENV{TG_TYPO_SECRET} = new_secret('a literal secret in a syntax error');
local $ENV{TG_UNI_KEY} = new_secret('a literal API key in a U&-spelled call');
local $ENV{TG_QUOTED_SECRET} = new_secret('a literal secret in a quoted-name call');
local $ENV{TG_TYPO2_SECRET} = new_secret('a literal secret in a mistyped call');
local $ENV{TG_RULE_SECRET} = new_secret('a literal secret in a rule');
local $ENV{TG_DEFAULT_KEY} = new_secret('a literal API key in a default');
local $ENV{TG_OFF_KEY} = new_secret('a literal API key, check off');
local $ENV{TG_OFF_SECRET} = new_secret('a literal secret, check off');

# VERBOSITY=terse: psql itself would quote the statement around the error
# position (LINE 1: ...) into this test's output.
my @terse = (extra_params => [ '-v', 'VERBOSITY=terse' ]);
my $refused = $node->background_psql('postgres', on_error_stop => 0, @terse);
my $refused_pid = $refused->query_safe('SELECT pg_backend_pid()');
$refused->query_safe(
	"\\getenv lit_key TG_LIT_KEY\n\\getenv lit_secret TG_LIT_SECRET\n"
	  . "\\getenv exec_secret TG_EXEC_SECRET\n\\getenv typo_secret TG_TYPO_SECRET\n"
	  . "\\getenv uni_key TG_UNI_KEY\n\\getenv quoted_secret TG_QUOTED_SECRET\n"
	  . "\\getenv typo2_secret TG_TYPO2_SECRET\n\\getenv rule_secret TG_RULE_SECRET\n"
	  . "\\getenv default_key TG_DEFAULT_KEY");
# reveal_credential behind an operator: no credential function in the text
$node->safe_psql('postgres', q{
	CREATE OPERATOR public.=#> (LEFTARG = text, RIGHTARG = text,
	                            FUNCTION = trading_guard.reveal_credential)});

# [what, SQL, the error]
my @literal = (
	[
		'a literal key and secret',
		q{SELECT trading_guard.store_credential('okx', 'typed', :'lit_key', :'lit_secret')},
		qr/ERROR:  the api_key argument of trading_guard\.store_credential\(\) must not be written as a literal/
	],
	[
		'a literal secret in named notation',
		q{SELECT trading_guard.rotate_credential(api_secret => :'lit_secret', exchange => 'binance', label => 'main_logged', api_key => NULL)},
		qr/ERROR:  the api_secret argument of trading_guard\.rotate_credential\(\) must not be written as a literal/
	],
	[
		'a literal secret given to EXECUTE',
		qq{PREPARE store_it(text, text) AS SELECT trading_guard.store_credential('okx', 'prepared', \$1, \$2);\n}
		  . q{EXECUTE store_it(NULL, :'exec_secret')},
		qr/ERROR:  the api_secret argument of trading_guard\.store_credential\(\) must not be written as a literal/
	],
	[
		'a literal secret in a syntax error',
		q{SELECT trading_guard.store_credential('okx', 'typo', NULL :'typo_secret')},
		qr/ERROR:  syntax error at or near "<redacted>"/
	],
	[
		'a literal key in a call spelled with U& escapes',
		q{SELECT trading_guard.U&"store\005fcredential"('okx', 'unicode', :'uni_key', NULL)},
		qr/ERROR:  the api_key argument of trading_guard\.store_credential\(\) must not be written as a literal/
	],
	[
		'a literal secret in a call with a quoted name and a comment',
		q{SELECT "trading_guard"."rotate_credential" /* ( */ ('binance', 'main_logged', NULL, :'quoted_secret')},
		qr/ERROR:  the api_secret argument of trading_guard\.rotate_credential\(\) must not be written as a literal/
	],
	[
		'a literal secret in a call whose name is mistyped',
		q{SELECT trading_guard.store_credentail('okx', 'typo', NULL, :'typo2_secret')},
		qr/ERROR:  function trading_guard\.store_credentail\(unknown, unknown, unknown, unknown\) does not exist/
	],
	[
		'a revealed secret quoted by a 42704 error',
		q{SELECT current_setting(trading_guard.reveal_credential('binance', 'main_logged'))},
		qr/ERROR:  unrecognized configuration parameter "<redacted>"/
	],
	[
		'a revealed secret quoted by a 42704 error, through an operator',
		q{SELECT current_setting('binance' =#> 'main_timed')},
		qr/ERROR:  unrecognized configuration parameter "<redacted>"/
	],
	[
		'a literal secret in a CREATE RULE action',
		qq{CREATE TABLE rule_target (id int);\n}
		  . q{CREATE RULE store_on_insert AS ON INSERT TO rule_target DO ALSO SELECT trading_guard.store_credential('okx', 'rule', NULL, :'rule_secret')},
		qr/ERROR:  the api_secret argument of trading_guard\.store_credential\(\) must not be written as a literal/
	],
	[
		'a literal key in a column DEFAULT',
		q{CREATE TABLE with_default (id bigint DEFAULT trading_guard.store_credential('okx', 'default', :'default_key', NULL))},
		qr/ERROR:  the api_key argument of trading_guard\.store_credential\(\) must not be written as a literal/
	]);
for my $case (@literal)
{
	my ($what, $sql, $error) = @$case;
	$refused->{stderr} = '';
	$refused->query($sql);
	$clients_told .= $refused->{stderr};
	like($refused->{stderr}, $error, "$what: refused");
	my $shown = $node->safe_psql('postgres',
		"SELECT query FROM pg_stat_activity WHERE pid = $refused_pid");
	my @leaked = grep { index($shown, $secret{$_}) >= 0 } sort keys %secret;
	is(join('; ', @leaked), '', "$what: not in pg_stat_activity");
	like($shown, qr/'<redacted>'/, "$what: pg_stat_activity shows the statement redacted");
}
$refused->{stderr} = '';

# With the check off (a superuser's choice), the same is accepted; the
# statement is still redacted everywhere.
my $accepted = $node->background_psql('postgres', on_error_stop => 0, @terse);
my $accepted_pid = $accepted->query_safe('SELECT pg_backend_pid()');
$accepted->query_safe("\\getenv off_key TG_OFF_KEY\n\\getenv off_secret TG_OFF_SECRET");
$accepted->query_safe('SET trading_guard.reject_literal_secrets = off');
is( $accepted->query_safe(
		q{SELECT trading_guard.store_credential('okx', 'typed_anyway', :'off_key', :'off_secret') IS NOT NULL}),
	't',
	'with reject_literal_secrets off, a literal secret is accepted');

# ---------------------------------------------------------------------------
# An application's wrapper function that takes the secret as its own
# parameter.  Its call names no credential function, so nothing tells
# before it runs that it is about a secret: trading_guard learns it when
# reveal_credential starts inside it (fmgr_hook).  From then on the
# statement's log lines (auto_explain's plan, log_min_duration_statement's
# line, an error) and pg_stat_activity are redacted, and so is every later
# run of the same text in this session.  What was logged before it ran is
# not: with log_statement = all, the first run's "statement:" line has the
# literal.  That value is kept out of %secret ($limit) and checked to be
# in exactly that line and nowhere else.
# ---------------------------------------------------------------------------

$node->safe_psql('postgres', q{
	CREATE SCHEMA app;
	CREATE FUNCTION app.secret_matches(label text, secret text) RETURNS boolean
	    LANGUAGE plpgsql AS $$
	    BEGIN
	        RETURN trading_guard.reveal_credential('binance', label) = secret;
	    END $$});
local $ENV{TG_WRAPPED_SECRET} = new_secret('a literal secret given to a wrapper function');
my $limit = 'wrapped-' . random_hex(24);
local $ENV{TG_LIMIT_SECRET} = $limit;

my $wrapper = $node->background_psql('postgres', on_error_stop => 0, @terse);
my $wrapper_pid = $wrapper->query_safe('SELECT pg_backend_pid()');
$wrapper->query_safe(
	"\\getenv wrapped_secret TG_WRAPPED_SECRET\n\\getenv limit_secret TG_LIMIT_SECRET");
$wrapper->query_safe(q{SET log_statement = 'none'});
is( $wrapper->query_safe(
		q{SELECT app.secret_matches('main_logged', :'wrapped_secret')}),
	'f', 'a wrapper function called with a literal secret, log_statement = none');
like(
	$node->safe_psql('postgres',
		"SELECT query FROM pg_stat_activity WHERE pid = $wrapper_pid"),
	qr/^SELECT app\.secret_matches\('<redacted>', '<redacted>'\)/,
	'pg_stat_activity shows the wrapper call redacted once it has run');

$wrapper->query_safe(q{SET log_statement = 'all'});
for my $run (1, 2)
{
	is( $wrapper->query_safe(
			q{SELECT app.secret_matches('main_logged', :'limit_secret')}),
		'f', "a wrapper function called with a literal secret, log_statement = all (run $run)");
}

# ---------------------------------------------------------------------------
# pg_stat_activity and pg_stat_statements
# ---------------------------------------------------------------------------

# Look for each secret in a text; one test per text, naming what leaked.
sub no_secret_in
{
	my ($text, $where) = @_;
	my @leaked = grep { index($text, $secret{$_}) >= 0 } sort keys %secret;
	is(join('; ', @leaked), '', "no secret in $where");
}

no_secret_in($clients_told, 'the errors the clients were told');

my $activity = $node->safe_psql('postgres',
	'SELECT pid, query FROM pg_stat_activity WHERE query IS NOT NULL');
no_secret_in($activity, 'pg_stat_activity');
like(
	$node->safe_psql('postgres',
		"SELECT query FROM pg_stat_activity WHERE pid = $accepted_pid"),
	qr/^SELECT trading_guard\.store_credential\('<redacted>', '<redacted>', '<redacted>', '<redacted>'\) IS NOT NULL\n;$/,
	'pg_stat_activity shows the accepted statement with its literals redacted');

my $statements = $node->safe_psql('postgres',
	'SELECT query FROM pg_stat_statements ORDER BY query');
no_secret_in($statements, 'pg_stat_statements');
like($statements, qr/^SELECT trading_guard\.store_credential\(\$1, \$2, \$3, \$4\)$/m,
	'pg_stat_statements has the bound store_credential() call');
like($statements, qr/^SELECT trading_guard\.store_credential\(\$1, \$2, \$3, \$4\) IS NOT NULL$/m,
	'and the accepted literal one, normalised');

unlike($statements, qr/\Q$limit\E/, 'pg_stat_statements has the wrapper call normalised');
like($statements, qr/^SELECT app\.secret_matches\(\$1, \$2\)$/m,
	'pg_stat_statements has the wrapper call with its constants as parameters');

$refused->quit;
$accepted->quit;
$wrapper->quit;

# ---------------------------------------------------------------------------
# The server log, whole, once the server has stopped writing to it
# ---------------------------------------------------------------------------

$node->stop;
my $log = slurp_file($node->logfile);
no_secret_in($log, 'the server log');

# ... which is a log where the statements and parameters were written
ok(index($log, $canary) >= 0, 'the log has the parameter of the unrelated statement');
like($log, qr/LOG:  execute <unnamed>: SELECT trading_guard\.store_credential\(\$1, \$2, \$3, \$4\);\n[^\n]*DETAIL:  parameters: \(redacted by trading_guard\)\n/,
	'log_statement: the extended-protocol store, its parameters redacted');
like($log, qr/LOG:  duration: [0-9.]+ ms  execute P_0: SELECT trading_guard\.store_credential\(\$1, \$2, \$3, \$4\);\n[^\n]*DETAIL:  parameters: \(redacted by trading_guard\)\n/,
	'log_min_duration_statement: the prepared-statement store, its parameters redacted');
like($log, qr/ERROR:  division by zero\n(?:[^\n]*\n)*?[^\n]*CONTEXT:  unnamed portal with parameters: \(redacted by trading_guard\)\n/,
	'the parameters of the failed statement are redacted in its context');
like($log, qr/ERROR:  the api_key argument of trading_guard\.store_credential\(\) must not be written as a literal/,
	'the refusal of the literal secret is logged');
like($log, qr/statement \(literals redacted\): SELECT trading_guard\.store_credential\('<redacted>', '<redacted>', '<redacted>', '<redacted>'\)/,
	'with its statement, literals redacted');
like($log, qr/LOG:  statement: EXECUTE store_it\(NULL, '<redacted>'\)/,
	'the EXECUTE with a literal secret is logged redacted');
like($log, qr/LOG:  statement: SELECT trading_guard\.store_credentail\('<redacted>', '<redacted>', NULL, '<redacted>'\)/,
	'the mistyped call is logged redacted');
like($log, qr/LOG:  statement: CREATE RULE store_on_insert AS ON INSERT TO rule_target DO ALSO SELECT trading_guard\.store_credential\('<redacted>', '<redacted>', NULL, '<redacted>'\)/,
	'the CREATE RULE with a literal secret is logged redacted');

# the wrapper function: after it ran, its lines are redacted
like($log, qr/LOG:  duration: [0-9.]+ ms  statement: SELECT app\.secret_matches\('<redacted>', '<redacted>'\)/,
	'log_min_duration_statement: the wrapper call, redacted');
like($log, qr/LOG:  duration: [0-9.]+ ms  plan:\n[^\n]*Query Text: SELECT app\.secret_matches\('<redacted>', '<redacted>'\)/,
	'auto_explain: the wrapper call, redacted');
# the known limit: its first statement line, and nothing else
my @limit_lines = grep { index($_, $limit) >= 0 } split /\n/, $log;
is(scalar(@limit_lines), 1, 'known limit: the literal given to a wrapper is in one log line');
like($limit_lines[0] // '', qr/LOG:  statement: SELECT app\.secret_matches\('main_logged', '\Q$limit\E'\)$/,
	'known limit: the statement line of its first run, written before the wrapper ran');
like($log, qr/LOG:  statement: SELECT app\.secret_matches\('<redacted>', '<redacted>'\)/,
	'the second run of the same text is logged redacted');

# What the log hook installed before trading_guard's was given: the same
# redacted reports
my $spy = slurp_file($spy_file);
ok(index($spy, $canary) >= 0, 'the log spy received the reports (the unrelated parameter)');
no_secret_in($spy, 'what the log hook before trading_guard\'s received');
is(scalar(grep { index($_, $limit) >= 0 } split /\n/, $spy), 1,
	'known limit: the log spy got the wrapper literal in that statement line only');

done_testing();
