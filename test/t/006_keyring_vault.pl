# test/t/006_keyring_vault.pl — the key ring (src/keyring.c) and the
# credential vault (src/vault.c):
#
#   1. bad key sources at start: the server comes up without a ring,
#      key_ring_status() says why, store / reveal / sign / rotate / rekey
#      refuse with TG071; key_command over key_file over
#      TRADING_GUARD_MASTER_KEY, and no fallback to the next source
#   2. the same bad sources at reload: the ring in force stays, last_error is
#      set, a WARNING is logged, reveal and sign go on working
#   3. the rotation runbook: a second key version, rekey() in batches until
#      nothing remains, the old version removed, TG072 for a credential
#      still under a missing version (naming version and key id)
#   4. tampering: an envelope copied into another row, a row moved to
#      another label or environment, every byte of an envelope changed
#   5. sign_request against Binance's documented HMAC-SHA256 vector, also
#      after a key rotation and rekey
#   6. pg_dump / pg_restore: identical ciphertexts, reveal and sign work with
#      the same ring, TG072 naming version and key id with another ring
#   7. no plaintext secret (nor master key, nor subkey) in WAL or data files
#   8. the key ring worker and the key ring's memory (locked, not dumped)
#
# One cluster for the whole file (restarted for the start-time cases); a
# second node only as the restore target with other keys.
#
# Keys and secrets are random, made at run time.  Secrets reach the server
# only as bound parameters (pgbench -M extended -D, see bound()), never as
# literals in SQL text, so trading_guard.reject_literal_secrets (on by
# default) stays on; where the value of a secret does not matter (a store
# that must be refused) it is an expression (md5(random()::text)).

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use File::Find;
use IPC::Run;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# The key ring must come only from what this test configures.
delete $ENV{TRADING_GUARD_MASTER_KEY};

my $keydir = PostgreSQL::Test::Utils::tempdir('keys');
my $scriptdir = PostgreSQL::Test::Utils::tempdir('scripts');

# ---------------------------------------------------------------------------
# Keys, secrets and what the server derives from them
# ---------------------------------------------------------------------------

sub random_bytes
{
	my ($n) = @_;
	open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
	my $got = read($fh, my $b, $n);
	die "short read from /dev/urandom" unless defined $got && $got == $n;
	close $fh;
	return $b;
}

# A master key: raw bytes, and the two spellings a ring accepts.
sub new_key
{
	my $raw = random_bytes(32);
	return {
		raw => $raw,
		hex => unpack('H*', $raw),
		b64 => encode_base64($raw, ''),
	};
}

# An exchange API secret as exchanges issue them: 64 letters and digits.
sub new_secret
{
	my @c = ('A' .. 'Z', 'a' .. 'z', '0' .. '9');
	return join '', map { $c[ord($_) % 62] } split //, random_bytes(64);
}

# HKDF-SHA256 without salt, one block (RFC 5869), as OpenSSL's EVP_PKEY_HKDF
# computes it: the key id shown by key_versions() is its first 8 bytes with
# info "trading_guard/v1/key-id" (a value stored in every credential row, so
# its derivation is a stored format), the subkeys are 32 bytes per purpose.
sub hkdf
{
	my ($ikm, $info, $len) = @_;
	my $prk = hmac_sha256($ikm, "\0" x 32);
	return substr(hmac_sha256($info . "\x01", $prk), 0, $len);
}
sub key_id { return unpack('H*', hkdf($_[0]->{raw}, 'trading_guard/v1/key-id', 8)); }

my @all_keys;    # every master key made, for the leak checks
sub key
{
	my $k = new_key();
	push @all_keys, $k;
	return $k;
}

my @all_secrets;    # every API secret stored, for the leak checks
sub secret
{
	my $s = new_secret();
	push @all_secrets, $s;
	return $s;
}

my $K1 = key();
my $K2 = key();

sub write_file_mode
{
	my ($path, $content, $mode) = @_;
	unlink $path;
	open my $fh, '>', $path or die "$path: $!";
	print $fh $content;
	close $fh;
	chmod $mode, $path or die "chmod $path: $!";
	return $path;
}

# A ring file of (version => key) pairs, 0600 unless told.
sub ring_text
{
	my (%ring) = @_;
	return "# trading_guard key ring (test)\n\n"
	  . join('', map { "$_ $ring{$_}->{hex}\n" } sort { $a <=> $b } keys %ring);
}
sub write_ring
{
	my ($path, %ring) = @_;
	return write_file_mode($path, ring_text(%ring), 0600);
}

# key_versions() as the server should show a ring: "version:key_id:newest".
sub expected_versions
{
	my (%ring) = @_;
	my @v = sort { $a <=> $b } keys %ring;
	return join ' ', map { "$_:" . key_id($ring{$_}) . ':' . ($_ == $v[-1] ? 't' : 'f') } @v;
}

# ---------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------

my $node = PostgreSQL::Test::Cluster->new('keyring');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'trading_guard'
log_line_prefix = '%m [%p] %e %q%a '
trading_guard.key_command_timeout = 2
include 'tg_keys.conf'
});
my $pgdata = $node->data_dir;

# The key sources live in their own file, rewritten whole each time.
sub set_source
{
	my ($n, %s) = @_;
	open my $fh, '>', $n->data_dir . '/tg_keys.conf' or die "tg_keys.conf: $!";
	for my $g ('key_command', 'key_file')
	{
		my $v = $s{$g} // '';
		$v =~ s/'/''/g;
		print $fh "trading_guard.$g = '$v'\n";
	}
	close $fh;
	return;
}

my $ring_file = write_ring("$keydir/ring.keys", 1 => $K1);
set_source($node, key_file => $ring_file);
$node->start;

# Run SQL in a new session of node $n; returns (exit code, stdout, stderr).
# Stops at the first error (exit code 3); message lines carry their SQLSTATE
# ("ERROR:  TG071: ...").
sub run_sql
{
	my ($n, $db, $sql) = @_;
	my ($out, $err);
	my $ret = $n->psql(
		$db, $sql,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $out, $err);
}

# A statement that must fail with $state, return nothing, and whose error
# text (message, detail, hint) matches each of @res.
sub fails_with
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($n, $db, $sql, $state, $name, @res) = @_;
	my ($ret, $out, $err) = run_sql($n, $db, $sql);
	ok($ret != 0 && $out eq '', "$name: fails and returns nothing")
	  or diag("exit $ret, stdout: $out");
	like($err, qr/^(?:psql:\S+: )?ERROR:  \Q$state\E: /m, "$name: SQLSTATE $state")
	  or diag($err);
	like($err, $_, "$name: the error says $_") foreach @res;
	return $err;
}

# Run one statement with named values bound as parameters of the extended
# query protocol: pgbench -M extended turns ":name" into $1, $2, ... so the
# values never appear in the SQL text.  Returns (success, stderr).
my $nscript = 0;
sub bound
{
	my ($n, $db, $sql, %vars) = @_;
	my $file = "$scriptdir/bound_" . ++$nscript . '.sql';
	write_file_mode($file, "$sql\n", 0600);
	my @cmd = (
		'pgbench', '-n', '-t', '1', '-M', 'extended', '-f', $file,
		(map { ('-D', "$_=$vars{$_}") } sort keys %vars),
		'-h', $n->host, '-p', $n->port, $db);
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(\@cmd, '>', \$out, '2>', \$err);
	return ($ok, $err);
}

# store_credential with api_key and api_secret bound; dies unless it works.
sub store
{
	my ($n, $db, $exchange, $label, $api_key, $secret, $extra) = @_;
	my ($ok, $err) = bound($n, $db,
		"SELECT trading_guard.store_credential('$exchange', '$label', :api_key, :api_secret"
		  . ($extra ? ", $extra" : '') . ')',
		api_key => $api_key, api_secret => $secret);
	die "store_credential $exchange/$label failed: $err" unless $ok;
	return $n->safe_psql($db,
		"SELECT id FROM trading_guard.credential_store WHERE exchange = '$exchange' AND label = '$label' AND revoked_at IS NULL");
}

sub reveal
{
	my ($n, $db, $what) = @_;
	return $n->safe_psql($db, "SELECT trading_guard.reveal_credential($what)");
}

sub sign
{
	my ($n, $db, $exchange, $label, $payload) = @_;
	return $n->safe_psql($db,
		"SELECT trading_guard.sign_request('$exchange', '$label', '$payload')");
}

# key_ring_status() as a hash (JSON booleans: test them with ok / ok(!...)).
sub status
{
	my ($n) = @_;
	$n //= $node;
	return decode_json($n->safe_psql('postgres',
		'SELECT row_to_json(s) FROM trading_guard.key_ring_status() s'));
}

# key_versions() as "version:key_id:newest ...", ascending.
sub versions
{
	my ($n) = @_;
	$n //= $node;
	return $n->safe_psql('postgres', q{
		SELECT coalesce(string_agg(version || ':' || key_id || ':' || newest::text::char, ' '
		                           ORDER BY version), '')
		  FROM trading_guard.key_versions()});
}

# The key ring worker's log line of a load, once it is in the server log
# (from $offset): it sets loaded_at or last_error_at in shared memory
# first, and writes the line after, so a test that reads the log must wait
# for the line itself, not only for key_ring_status().
sub wait_for_ring_log
{
	my ($n, $expect, $offset) = @_;
	$n->wait_for_log(
		$expect eq 'ok'
		? qr/LOG:  trading_guard: key ring loaded from /
		: qr/WARNING:  trading_guard: could not load the key ring from .*\n.*DETAIL:  /,
		$offset);
	return;
}

# Reload and wait until the key ring worker has tried to load the ring:
# a success moves loaded_at, a failure moves last_error_at, and then its
# log line is written.  Never a blind sleep: the worker's outcome is polled
# in key_ring_status() and in the log.
sub reload_ring
{
	my ($n, $expect) = @_;
	my $offset = -s $n->logfile;
	my $s = status($n);
	my ($col, $prev) =
	  $expect eq 'ok'
	  ? ('loaded_at', $s->{loaded_at})
	  : ('last_error_at', $s->{last_error_at});
	$prev //= '';
	my $cond = $expect eq 'ok' ? ' AND last_error IS NULL' : '';
	$n->reload;
	$n->poll_query_until('postgres', qq{
		SELECT coalesce($col > nullif('$prev', '')::timestamptz, $col IS NOT NULL)$cond
		  FROM trading_guard.key_ring_status()})
	  or die "the key ring worker did not report a reload ($expect)";
	wait_for_ring_log($n, $expect, $offset);
	return status($n);
}

# The pid the hanging key_command wrote, once it is running.
sub wait_for_pidfile
{
	my ($file) = @_;
	for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
	{
		if (-s $file)
		{
			my $pid = slurp_file($file);
			chomp $pid;
			return $pid;
		}
		usleep(100_000);
	}
	die "the key_command never started ($file)";
}

# ---------------------------------------------------------------------------
# A ring of one key from key_file; credentials stored, revealed, signed
# ---------------------------------------------------------------------------

$node->safe_psql('postgres', 'CREATE EXTENSION trading_guard');

my $s = status();
ok($s->{loaded}, 'a ring of one key from key_file is loaded at start');
is($s->{source}, 'key_file', 'key_ring_status() names its source');
is($s->{versions} . '/' . $s->{newest}, '1/1', 'one version, version 1 the newest');
is($s->{last_error}, undef, 'no error recorded');
is(versions(), expected_versions(1 => $K1),
	'key_versions() shows version 1 with the key id derived from the key (HKDF)');

# Binance's documented example (public documentation values).
my $BIN_SECRET = 'NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j';
my $BIN_KEY = 'vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A';
my $BIN_PAYLOAD =
  'symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559';
my $BIN_SIG = 'c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71';
push @all_secrets, $BIN_SECRET;
is(hmac_sha256_hex($BIN_PAYLOAD, $BIN_SECRET), $BIN_SIG,
	'the Binance vector is HMAC-SHA256 (checked in Perl)');

my %cred;    # label => { id, secret }
$cred{doc} = { secret => $BIN_SECRET };
$cred{doc}{id} = store($node, 'postgres', 'binance', 'doc', $BIN_KEY, $BIN_SECRET);
for my $label ('a', 'b', 'c')
{
	my $sec = secret();
	$cred{$label} = { secret => $sec };
	$cred{$label}{id} = store($node, 'postgres', 'kraken', $label, "kraken-api-key-$label-0123456789", $sec);
}

is(sign($node, 'postgres', 'binance', 'doc', $BIN_PAYLOAD), $BIN_SIG,
	'sign_request gives the signature of the Binance documentation');
is(reveal($node, 'postgres', q{'binance', 'doc'}), $BIN_SECRET,
	'reveal_credential(exchange, label) returns the secret stored');
is(reveal($node, 'postgres', $cred{a}{id}), $cred{a}{secret},
	'reveal_credential(id) returns the secret stored');
is($node->safe_psql('postgres', q{
	SELECT api_key || ' ' || key_version FROM trading_guard.credentials
	 WHERE exchange = 'binance' AND label = 'doc'}),
	'vmPU…Eh8A 1', 'credentials shows the API key masked and the key version');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM information_schema.columns
	 WHERE table_schema = 'trading_guard' AND table_name = 'credentials'
	   AND column_name ~ 'secret'}),
	'0', 'the credentials view has no secret column');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM trading_guard.credential_store
	 WHERE position(convert_to(api_key, 'UTF8') in secret) > 0
	    OR length(secret) <> 1 + 4 + 12 + 64 + 16}),
	'0', 'each envelope is format + version + nonce + 64 bytes + tag');

# Due for rotation: rotate_after 0 is due at once, the default 90 days is not.
my $due_secret = secret();
$cred{due} = { secret => $due_secret,
	id => store($node, 'postgres', 'okx', 'due', 'okx-api-key-due-0123456789', $due_secret,
		q{rotate_after => '0 seconds'}) };
is($node->safe_psql('postgres',
	'SELECT string_agg(exchange || \'/\' || label, \',\') FROM trading_guard.credentials_due_for_rotation'),
	'okx/due', 'credentials_due_for_rotation lists only the credential whose rotate_after passed');

# Use counters: signatures and reveals of one credential, and a refusal.
my $usage = q{SELECT signatures || '/' || reveals FROM trading_guard.credentials WHERE label = 'c'};
my $before_usage = $node->safe_psql('postgres', $usage);
my ($sg, $rv) = split m{/}, $before_usage;
sign($node, 'postgres', 'kraken', 'c', 'x=1') for 1 .. 3;
reveal($node, 'postgres', q{'kraken', 'c'});
is($node->safe_psql('postgres', $usage), ($sg + 3) . '/' . ($rv + 1),
	'credentials counts 3 more signatures and 1 more reveal');
fails_with($node, 'postgres', q{SELECT trading_guard.reveal_credential('kraken', 'nosuch')},
	'TG074', 'reveal of an unknown credential', qr/credential kraken\/nosuch does not exist/);
is($node->safe_psql('postgres',
	'SELECT refusals > 0 FROM trading_guard.credential_usage() WHERE credential_id IS NULL'),
	't', 'credential_usage counts the refusal naming no credential');

# ---------------------------------------------------------------------------
# Bad key sources (used at reload, then at start)
# ---------------------------------------------------------------------------

# Key material of the malformed rings: never to be quoted in a message.
my ($B1, $B2, $B3) = (key(), key(), key());
my $hang_pidfile = "$keydir/hang.pid";
write_file_mode("$keydir/hang.sh",
	"#!/bin/sh\necho \$\$ > '$hang_pidfile'\nexec sleep 60\n", 0700);

# A regular file owned by another user (root) and readable to us: the owner
# check must refuse it before anything else (its mode would be refused too).
my ($foreign) = grep {
	my @st = lstat $_;
	@st && -f _ && -r _ && $st[4] != $>
} qw(/etc/passwd /etc/group /etc/hostname /etc/hosts);

my @bad = (
	{
		name => 'missing key_file',
		source => 'key_file',
		conf => { key_file => "$keydir/missing.keys" },
		error => qr/could not open key file "\Q$keydir\E\/missing\.keys": No such file or directory/,
	},
	{
		name => 'key_file of mode 0640',
		source => 'key_file',
		file => [ "$keydir/g.keys", ring_text(1 => $B1), 0640 ],
		conf => { key_file => "$keydir/g.keys" },
		error => qr/key file "\Q$keydir\E\/g\.keys" has group or world access \(mode 0640\)/,
	},
	{
		name => 'key_file of mode 0644',
		source => 'key_file',
		file => [ "$keydir/w.keys", ring_text(1 => $B1), 0644 ],
		conf => { key_file => "$keydir/w.keys" },
		error => qr/key file "\Q$keydir\E\/w\.keys" has group or world access \(mode 0644\)/,
	},
	{
		name => 'key_file owned by another user',
		source => 'key_file',
		skip => defined $foreign ? undef
		: 'no regular file owned by another user is readable here',
		conf => { key_file => $foreign // '' },
		error => qr/key file "\Q${\($foreign \/\/ '')}\E" must be owned by the database server's user/,
	},
	{
		name => 'ring with a bad hex digit',
		source => 'key_file',
		file => [ "$keydir/bad.keys", "# ring\n1 " . substr($B1->{hex}, 0, 63) . "g\n", 0600 ],
		conf => { key_file => "$keydir/bad.keys" },
		error => qr/key ring line 2: the key is not 256 bits as 64 hex digits or 44 base64 characters/,
	},
	{
		name => 'ring with a key of the wrong length',
		source => 'key_file',
		file => [ "$keydir/bad.keys", "1 $B1->{hex}\n2 " . substr($B2->{hex}, 0, 62) . "\n", 0600 ],
		conf => { key_file => "$keydir/bad.keys" },
		error => qr/key ring line 2: the key is not 256 bits/,
	},
	{
		name => 'ring with a base64 key of the wrong length',
		source => 'key_file',
		file => [ "$keydir/bad.keys", "1 " . substr($B1->{b64}, 0, 40) . "\n", 0600 ],
		conf => { key_file => "$keydir/bad.keys" },
		error => qr/key ring line 1: the key is not 256 bits/,
	},
	{
		name => 'ring with a duplicate version',
		source => 'key_file',
		file => [ "$keydir/bad.keys", "1 $B1->{hex}\n2 $B2->{hex}\n1 $B3->{hex}\n", 0600 ],
		conf => { key_file => "$keydir/bad.keys" },
		error => qr/key ring line 3: version 1 appears twice/,
	},
	{
		name => 'ring with version 0',
		source => 'key_file',
		file => [ "$keydir/bad.keys", "0 $B1->{hex}\n", 0600 ],
		conf => { key_file => "$keydir/bad.keys" },
		error => qr/key ring line 1: the version must be an integer from 1 to 2147483647/,
	},
	{
		name => 'empty key file',
		source => 'key_file',
		file => [ "$keydir/bad.keys", '', 0600 ],
		conf => { key_file => "$keydir/bad.keys" },
		error => qr/the key ring is empty/,
	},
	{
		name => 'ring of two keys without versions',
		source => 'key_file',
		file => [ "$keydir/bad.keys", "$B1->{hex}\n$B2->{hex}\n", 0600 ],
		conf => { key_file => "$keydir/bad.keys" },
		error => qr/key ring line 2: every key of a key ring with more than one key needs a version/,
	},
	{
		name => 'key_command exiting with 1',
		source => 'key_command',
		conf => { key_command => 'false' },
		error => qr/trading_guard\.key_command failed with exit code 1/,
	},
	{
		name => 'key_command not found',
		source => 'key_command',
		conf => { key_command => "$keydir/no-such-tool prod" },
		error => qr/trading_guard\.key_command could not be run \(program "\Q$keydir\E\/no-such-tool" not found or not executable\)/,
	},
	{
		name => 'key_command hanging',
		source => 'key_command',
		hang => 1,
		conf => { key_command => "$keydir/hang.sh" },
		error => qr/trading_guard\.key_command did not finish within 2 s and was killed/,
	},
);

sub prepare_bad
{
	my ($c) = @_;
	write_file_mode(@{ $c->{file} }) if $c->{file};
	unlink $hang_pidfile;
	set_source($node, %{ $c->{conf} });
	return;
}

# Key material of the bad rings, as it could be quoted.
my @bad_fragments = map { (substr($_->{hex}, 0, 16), substr($_->{b64}, 0, 16)) } $B1, $B2, $B3;

# ---------------------------------------------------------------------------
# 2. At reload: the ring in force stays
# ---------------------------------------------------------------------------

my $ring1 = expected_versions(1 => $K1);
for my $c (@bad)
{
	my $name = "$c->{name} at reload";
  SKIP:
	{
		skip "$name: $c->{skip}", 8 if $c->{skip};
		prepare_bad($c);
		my $before = status();
		my $offset = -s $node->logfile;
		if ($c->{hang})
		{
			# The worker waits for the command; the postmaster does not.
			$node->reload;
			my $pid = wait_for_pidfile($hang_pidfile);
			is($node->safe_psql('postgres', 'SELECT 1'), '1',
				"$name: the server accepts connections while key_command hangs");
			ok(kill(0, $pid), "$name: (the command was still running then)");
			$s = reload_ring_wait_failure($before, $offset);
			ok(!kill(0, $pid), "$name: the command was killed and reaped");
		}
		else
		{
			$s = reload_ring($node, 'fail');
		}
		like($s->{last_error}, $c->{error}, "$name: last_error says why");
		is(scalar(grep { index($s->{last_error} // '', $_) >= 0 } @bad_fragments), 0,
			"$name: last_error quotes no key material");
		ok($s->{loaded}, "$name: a ring is still loaded");
		is($s->{loaded_at} . ' ' . $s->{source}, $before->{loaded_at} . ' ' . $before->{source},
			"$name: it is the ring loaded before");
		is(versions(), $ring1, "$name: key_versions() unchanged");
		my $log = slurp_file($node->logfile, $offset);
		like($log,
			qr/WARNING:  trading_guard: could not load the key ring from $c->{source}: $c->{error}.*\n.*DETAIL:  The key ring loaded at .* stays in force\./,
			"$name: a WARNING in the server log, saying the old ring stays");
		is(reveal($node, 'postgres', q{'binance', 'doc'}), $BIN_SECRET,
			"$name: reveal still works");
		is(sign($node, 'postgres', 'binance', 'doc', $BIN_PAYLOAD), $BIN_SIG,
			"$name: sign_request still works");
	}
}

# The hang case waits on last_error_at like reload_ring, but the reload was
# already sent.
sub reload_ring_wait_failure
{
	my ($before, $offset) = @_;
	my $prev = $before->{last_error_at} // '';
	$node->poll_query_until('postgres', qq{
		SELECT coalesce(last_error_at > nullif('$prev', '')::timestamptz, last_error_at IS NOT NULL)
		  FROM trading_guard.key_ring_status()})
	  or die 'the key ring worker did not report the failed reload';
	wait_for_ring_log($node, 'fail', $offset);
	return status();
}

# Back to the good ring; a good reload clears the error.
set_source($node, key_file => $ring_file);
$s = reload_ring($node, 'ok');
is($s->{last_error}, undef, 'a good reload clears last_error');
is(versions(), $ring1, 'and loads the same ring');

# Good sources at reload: a 0400 file, a path relative to the data
# directory, base64 keys, and key_command with a quoted argument.
write_file_mode($ring_file, ring_text(1 => $K1), 0400);
$s = reload_ring($node, 'ok');
is(versions(), $ring1, 'a key file of mode 0400 is accepted');
write_file_mode("$pgdata/tg_test.keys", "1 $K1->{b64}\r\n", 0600);
set_source($node, key_file => 'tg_test.keys');
$s = reload_ring($node, 'ok');
is(versions(), $ring1,
	'a relative key_file is read from the data directory (base64 key, CRLF line)');
unlink "$pgdata/tg_test.keys";
write_file_mode("$keydir/get keys.sh", "#!/bin/sh\n[ \"\$1\" = 'prod ring' ] || exit 3\ncat '$ring_file'\n", 0700);
set_source($node, key_command => qq{"$keydir/get keys.sh" 'prod ring'});
$s = reload_ring($node, 'ok');
is($s->{source} . ' ' . versions(), "key_command $ring1",
	'key_command with a quoted program path and argument, run without a shell');
set_source($node, key_file => $ring_file);
$s = reload_ring($node, 'ok');
is($s->{source}, 'key_file', 'back on key_file');

# ---------------------------------------------------------------------------
# 1. At start: the server comes up without a ring, the vault refuses (TG071)
# ---------------------------------------------------------------------------

for my $c (@bad)
{
	my $name = "$c->{name} at start";
  SKIP:
	{
		skip "$name: $c->{skip}", 23 if $c->{skip};
		$node->stop;
		prepare_bad($c);
		my $offset = -s $node->logfile;
		$node->start(fail_ok => 1)
		  or BAIL_OUT("$name: the server did not start");
		if ($c->{hang})
		{
			my $pid = wait_for_pidfile($hang_pidfile);
			ok(!kill(0, $pid), "$name: the command was killed and reaped");
		}
		$s = status();
		ok(!$s->{loaded}, "$name: the server is up without a key ring");
		like($s->{last_error}, $c->{error}, "$name: last_error says why");
		is(scalar(grep { index($s->{last_error} // '', $_) >= 0 } @bad_fragments), 0,
			"$name: last_error quotes no key material");
		ok(!defined $s->{source} && !defined $s->{versions},
			"$name: no source and no versions reported");
		is(versions(), '', "$name: key_versions() is empty");
		like(slurp_file($node->logfile, $offset),
			qr/LOG:  trading_guard: could not load the key ring from $c->{source}: $c->{error}.*\n.*DETAIL:  The credential vault refuses to work until a key ring is loaded\./,
			"$name: the server log says why");

		my @why = (qr/ERROR:  TG071: no key ring is loaded/,
			qr/DETAIL:  The last attempt failed: (?:$c->{error})[^\n]*\./);
		fails_with($node, 'postgres', q{
			SELECT trading_guard.store_credential('kraken', 'new', md5(random()::text), md5(random()::text))},
			'TG071', "$name: store_credential refused", @why);
		fails_with($node, 'postgres', q{SELECT trading_guard.reveal_credential('binance', 'doc')},
			'TG071', "$name: reveal_credential(exchange, label) refused", @why);
		fails_with($node, 'postgres', "SELECT trading_guard.reveal_credential($cred{a}{id})",
			'TG071', "$name: reveal_credential(id) refused", @why);
		fails_with($node, 'postgres',
			"SELECT trading_guard.sign_request('binance', 'doc', '$BIN_PAYLOAD')",
			'TG071', "$name: sign_request refused", @why);
		is($node->safe_psql('postgres', 'SELECT 1'), '1',
			"$name: the server stays up and accepts connections");
	}
}
# rotate and rekey refuse too (the last case's server is still without a ring)
fails_with($node, 'postgres', q{
	SELECT trading_guard.rotate_credential('kraken', 'a', md5(random()::text), md5(random()::text))},
	'TG071', 'without a ring: rotate_credential refused', qr/no key ring is loaded/);
fails_with($node, 'postgres', 'SELECT * FROM trading_guard.rekey(10)',
	'TG071', 'without a ring: rekey refused', qr/no key ring is loaded/);

# No key source at all.
$node->stop;
set_source($node);
$node->start;
$s = status();
ok(!$s->{loaded}, 'no key source configured: no ring');
like($s->{last_error}, qr/no key source is configured/, 'and last_error says so');

# ---------------------------------------------------------------------------
# 1b. Which source wins: key_command, then key_file, then the environment;
#     a configured source that fails is not replaced by the next one
# ---------------------------------------------------------------------------

my ($E1, $E2, $F3, $C5) = (key(), key(), key(), key());
$ENV{TRADING_GUARD_MASTER_KEY} = "1 $E1->{b64}; 2 $E2->{hex}";
$node->restart;
$s = status();
is($s->{source}, 'environment', 'TRADING_GUARD_MASTER_KEY alone: the ring comes from the environment');
is(versions(), expected_versions(1 => $E1, 2 => $E2),
	'and has both keys (";" separates them, base64 and hex)');

my $file3 = write_ring("$keydir/three.keys", 3 => $F3);
set_source($node, key_file => $file3);
$node->restart;
$s = status();
is($s->{source} . ' ' . versions(), 'key_file ' . expected_versions(3 => $F3),
	'key_file and the environment: key_file wins');

my $file5 = write_ring("$keydir/five.keys", 5 => $C5);
set_source($node, key_file => $file3, key_command => "cat $file5");
$node->restart;
$s = status();
is($s->{source} . ' ' . versions(), 'key_command ' . expected_versions(5 => $C5),
	'key_command, key_file and the environment: key_command wins');

set_source($node, key_file => $file3, key_command => 'false');
$node->restart;
$s = status();
ok(!$s->{loaded}, 'a failing key_command is not replaced by key_file or the environment');
like($s->{last_error}, qr/key_command failed with exit code 1/, 'and last_error names key_command');

set_source($node, key_file => "$keydir/missing.keys");
$node->restart;
$s = status();
ok(!$s->{loaded}, 'a missing key_file is not replaced by the environment');

# The environment at reload is the postmaster's: from key_file back to it.
set_source($node, key_file => $file3);
$node->restart;
set_source($node);
$s = reload_ring($node, 'ok');
is($s->{source} . ' ' . versions(), 'environment ' . expected_versions(1 => $E1, 2 => $E2),
	'a reload without key_file falls back to the ring of the environment');

delete $ENV{TRADING_GUARD_MASTER_KEY};
write_ring($ring_file, 1 => $K1);
set_source($node, key_file => $ring_file);
$node->restart;
is(versions(), $ring1, 'restarted on the ring of version 1');
is(reveal($node, 'postgres', q{'binance', 'doc'}), $BIN_SECRET,
	'the credentials stored before reveal again');

# ---------------------------------------------------------------------------
# 3. Rotation runbook
# ---------------------------------------------------------------------------

my $md5s = q{SELECT string_agg(id || ':' || md5(secret), ' ' ORDER BY id)
	FROM trading_guard.credential_store WHERE revoked_at IS NULL};
my $v1_md5s = $node->safe_psql('postgres', $md5s);
my $n_v1 = $node->safe_psql('postgres',
	'SELECT count(*) FROM trading_guard.credential_store WHERE revoked_at IS NULL AND key_version = 1');
cmp_ok($n_v1, '>=', 5, "$n_v1 credentials under version 1 before the rotation");
# kraken/b's row as it is under version 1, to bring back later
my $old_b = $node->safe_psql('postgres',
	"SELECT encode(secret, 'hex') || ' ' || key_version || ' ' || key_id FROM trading_guard.credential_store WHERE id = $cred{b}{id}");

# Step 1 and 2: version 2 next to version 1, reload, wait for it.
write_ring($ring_file, 1 => $K1, 2 => $K2);
$node->reload;
$node->poll_query_until('postgres',
	'SELECT version FROM trading_guard.key_versions() WHERE newest', '2')
  or die 'version 2 never became the newest';
my $ring12 = expected_versions(1 => $K1, 2 => $K2);
is(versions(), $ring12, 'after the reload key_versions() shows 1 and 2, 2 the newest');
$s = status();
is("$s->{versions}/$s->{newest}", '2/2', 'key_ring_status(): two versions, newest 2');

# Step 3: new secrets go under version 2.
my $new_secret = secret();
$cred{new} = { secret => $new_secret,
	id => store($node, 'postgres', 'bybit', 'new', 'bybit-api-key-new-0123456789', $new_secret) };
is($node->safe_psql('postgres',
	"SELECT key_version || ' ' || key_id FROM trading_guard.credential_store WHERE id = $cred{new}{id}"),
	'2 ' . key_id($K2), 'a credential stored now is under version 2 and its key id');
is($node->safe_psql('postgres', "SELECT key_version FROM trading_guard.credentials WHERE id = $cred{new}{id}"),
	'2', 'credentials shows key version 2 for it');

# rekey(1) until nothing remains: one re-encrypted per call, remaining
# counting down to 0.
my @progress;
for my $i (1 .. $n_v1 + 1)
{
	push @progress, $node->safe_psql('postgres',
		"SELECT rekeyed || '/' || remaining || '/' || key_version FROM trading_guard.rekey(1)");
}
is( join(' ', @progress),
	join(' ', (map { '1/' . ($n_v1 - $_) . '/2' } 1 .. $n_v1), '0/0/2'),
	'rekey(1) re-encrypts one credential per call, remaining counts down to 0, then nothing to do');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT key_version || ' ' || key_id || ' ' || fingerprint_version, ',')
	  FROM trading_guard.credential_store WHERE revoked_at IS NULL}),
	'2 ' . key_id($K2) . ' 2', 'every credential is now under version 2 (envelope, key id and fingerprint)');
my %old = map { split /:/ } split / /, $v1_md5s;
my %now = map { split /:/ } split / /, $node->safe_psql('postgres', $md5s);
is(scalar(grep { defined $now{$_} && $now{$_} eq $old{$_} } keys %old), 0,
	'every ciphertext changed');
is($node->safe_psql('postgres',
	q{SELECT count(*) FROM trading_guard.audit_log WHERE operation = 'VAULT REKEY'}),
	$n_v1, 'each rekey call that re-encrypted something is in the audit log');

# Step 4: version 1 leaves the ring.
write_ring($ring_file, 2 => $K2);
$s = reload_ring($node, 'ok');
my $ring2 = expected_versions(2 => $K2);
is(versions(), $ring2, 'version 1 removed: key_versions() shows only 2');
for my $label (sort keys %cred)
{
	is(reveal($node, 'postgres', $cred{$label}{id}), $cred{$label}{secret},
		"after the rotation credential $label reveals its secret");
}
is(sign($node, 'postgres', 'binance', 'doc', $BIN_PAYLOAD), $BIN_SIG,
	'after the rotation and rekey sign_request still gives the Binance signature');

# A credential still under version 1 (an old row brought back).
my ($old_hex, $old_ver, $old_kid) = split / /, $old_b;
is($old_kid, key_id($K1), 'the old row of kraken/b names key id of version 1');
$node->safe_psql('postgres', qq{
	UPDATE trading_guard.credential_store
	   SET secret = '\\x$old_hex', key_version = $old_ver, key_id = '$old_kid'
	 WHERE id = $cred{b}{id}});
my $kid1 = key_id($K1);
my @missing = (qr/key version 1, needed to decrypt credential $cred{b}{id}, is not in the key ring/,
	qr/\Q$kid1\E/);
fails_with($node, 'postgres', "SELECT trading_guard.reveal_credential($cred{b}{id})",
	'TG072', 'reveal of a credential under removed version 1', @missing,
	qr/HINT:  Add that version back to the key ring/);
fails_with($node, 'postgres', "SELECT trading_guard.sign_request('kraken', 'b', 'x=1')",
	'TG072', 'sign with a credential under removed version 1', @missing);
fails_with($node, 'postgres', 'SELECT * FROM trading_guard.rekey(10)',
	'TG072', 'rekey stops at a credential it cannot decrypt instead of skipping it',
	qr/key version 1/);

# Put version 1 back: the old row reveals, rekey takes it to 2, remove 1.
write_ring($ring_file, 1 => $K1, 2 => $K2);
reload_ring($node, 'ok');
is(reveal($node, 'postgres', $cred{b}{id}), $cred{b}{secret},
	'version 1 back in the ring: the old row reveals again');
is($node->safe_psql('postgres',
	"SELECT rekeyed || '/' || remaining || '/' || key_version FROM trading_guard.rekey()"),
	'1/0/2', 'rekey() takes it to version 2');
write_ring($ring_file, 2 => $K2);
reload_ring($node, 'ok');
is(reveal($node, 'postgres', $cred{b}{id}), $cred{b}{secret},
	'and without version 1 it still reveals');

# rotate_credential: new secret, same id, newest version.
my $rot_secret = secret();
my ($ok, $err) = bound($node, 'postgres',
	q{SELECT trading_guard.rotate_credential('kraken', 'c', :api_key, :api_secret)},
	api_key => 'kraken-api-key-c-rotated-0123', api_secret => $rot_secret);
ok($ok, 'rotate_credential with bound api_key and api_secret') or diag($err);
$cred{c}{secret} = $rot_secret;
is(reveal($node, 'postgres', q{'kraken', 'c'}), $rot_secret,
	'the rotated credential reveals its new secret');
is($node->safe_psql('postgres',
	"SELECT id || ' ' || key_version || ' ' || (rotated_at IS NOT NULL) FROM trading_guard.credential_store WHERE label = 'c'"),
	"$cred{c}{id} 2 true", 'it kept its id, is under version 2 and has rotated_at');

# ---------------------------------------------------------------------------
# 4. Tampering
# ---------------------------------------------------------------------------

my $row = sub {
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SELECT encode(secret, 'hex') || ' ' || key_version || ' ' || key_id FROM trading_guard.credential_store WHERE id = $id");
};
my ($a_row, $b_row) = ($row->($cred{a}{id}), $row->($cred{b}{id}));

# kraken/a's envelope (with its key version and id) copied into kraken/b's row
$node->safe_psql('postgres', qq{
	UPDATE trading_guard.credential_store d
	   SET secret = s.secret, key_version = s.key_version, key_id = s.key_id
	  FROM trading_guard.credential_store s
	 WHERE s.id = $cred{a}{id} AND d.id = $cred{b}{id}});
my $auth = qr/could not be decrypted: authentication failed/;
fails_with($node, 'postgres', "SELECT trading_guard.reveal_credential($cred{b}{id})",
	'TG073', "an envelope copied into another credential's row does not reveal", $auth);
fails_with($node, 'postgres', "SELECT trading_guard.sign_request('kraken', 'b', 'x=1')",
	'TG073', "an envelope copied into another credential's row does not sign", $auth);
is(reveal($node, 'postgres', $cred{a}{id}), $cred{a}{secret}, 'the original row still reveals');
my ($bh) = split / /, $b_row;
$node->safe_psql('postgres',
	"UPDATE trading_guard.credential_store SET secret = '\\x$bh' WHERE id = $cred{b}{id}");
is(reveal($node, 'postgres', $cred{b}{id}), $cred{b}{secret},
	'with its own envelope back kraken/b reveals again');

# a row moved to another label, or to another environment
$node->safe_psql('postgres',
	"UPDATE trading_guard.credential_store SET label = 'moved' WHERE id = $cred{a}{id}");
fails_with($node, 'postgres', q{SELECT trading_guard.reveal_credential('kraken', 'moved')},
	'TG073', 'a row moved to another label does not reveal', $auth);
$node->safe_psql('postgres', qq{
	UPDATE trading_guard.credential_store SET label = 'a', environment = 'prod' WHERE id = $cred{a}{id}});
fails_with($node, 'postgres', q{
	SET trading_guard.environment = 'prod';
	SELECT trading_guard.reveal_credential('kraken', 'a')},
	'TG073', 'a row moved to another environment does not reveal there', $auth);
$node->safe_psql('postgres',
	"UPDATE trading_guard.credential_store SET environment = 'dev' WHERE id = $cred{a}{id}");
is(reveal($node, 'postgres', q{'kraken', 'a'}), $cred{a}{secret}, 'moved back, it reveals');

# Every byte of an envelope changed in turn (three ways), each time in a
# subtransaction: reveal and sign must fail, and never return a value.
$node->safe_psql('postgres', q{
CREATE TABLE public.flip_results (pos int, mask int, op text, result text);
CREATE FUNCTION public.flip_every_byte(p_id bigint, p_exchange text, p_label text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	orig bytea;
	m int;
	r text;
BEGIN
	SELECT secret INTO STRICT orig FROM trading_guard.credential_store WHERE id = p_id;
	FOR pos IN 0 .. length(orig) - 1 LOOP
		FOREACH m IN ARRAY ARRAY[1, 128, 255] LOOP
			BEGIN
				UPDATE trading_guard.credential_store
				   SET secret = set_byte(orig, pos, get_byte(orig, pos) # m) WHERE id = p_id;
				r := trading_guard.reveal_credential(p_id);
				r := 'RETURNED ' || (r IS NOT NULL);
			EXCEPTION WHEN OTHERS THEN
				r := SQLSTATE;
			END;
			INSERT INTO public.flip_results VALUES (pos, m, 'reveal', r);
			BEGIN
				UPDATE trading_guard.credential_store
				   SET secret = set_byte(orig, pos, get_byte(orig, pos) # m) WHERE id = p_id;
				r := trading_guard.sign_request(p_exchange, p_label, 'x=1');
				r := 'RETURNED ' || (r IS NOT NULL);
			EXCEPTION WHEN OTHERS THEN
				r := SQLSTATE;
			END;
			INSERT INTO public.flip_results VALUES (pos, m, 'sign', r);
		END LOOP;
	END LOOP;
	UPDATE trading_guard.credential_store SET secret = orig WHERE id = p_id;
END
$$;
});
$node->safe_psql('postgres', "SELECT public.flip_every_byte($cred{doc}{id}, 'binance', 'doc')");
my $envlen = $node->safe_psql('postgres',
	"SELECT length(secret) FROM trading_guard.credential_store WHERE id = $cred{doc}{id}");
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.flip_results'),
	$envlen * 3 * 2, "all $envlen bytes of the envelope were changed three ways, for reveal and for sign");
my $regions = sub {
	my ($where) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT coalesce(string_agg(DISTINCT result, ','), 'none') FROM public.flip_results WHERE $where});
};
is($regions->(q{result LIKE 'RETURNED%'}), 'none', 'no changed envelope returned a value');
is($regions->('pos = 0'), 'TG073', 'a changed format byte: TG073');
is($regions->('pos BETWEEN 1 AND 4'), 'TG072', 'a changed key version: TG072 (no such version)');
is($regions->('pos BETWEEN 5 AND 16'), 'TG073', 'a changed nonce: TG073');
is($regions->("pos BETWEEN 17 AND $envlen - 17"), 'TG073', 'a changed ciphertext byte: TG073');
is($regions->("pos > $envlen - 17"), 'TG073', 'a changed tag byte: TG073');
is(sign($node, 'postgres', 'binance', 'doc', $BIN_PAYLOAD), $BIN_SIG,
	'the envelope put back signs again');
$node->safe_psql('postgres', q{
	DROP FUNCTION public.flip_every_byte(bigint, text, text);
	DROP TABLE public.flip_results});

# ---------------------------------------------------------------------------
# revoke_credential
# ---------------------------------------------------------------------------

is($node->safe_psql('postgres', q{SELECT trading_guard.revoke_credential('okx', 'due')}), 't',
	'revoke_credential of an active credential: true');
is($node->safe_psql('postgres', q{SELECT trading_guard.revoke_credential('okx', 'due')}), 'f',
	'a second time: false');
is($node->safe_psql('postgres', "SELECT length(secret) FROM trading_guard.credential_store WHERE id = $cred{due}{id}"),
	'0', 'its ciphertext is destroyed');
fails_with($node, 'postgres', "SELECT trading_guard.reveal_credential($cred{due}{id})",
	'TG075', 'reveal of a revoked credential', qr/has been revoked/);
delete $cred{due};

# ---------------------------------------------------------------------------
# 6. pg_dump / pg_restore
# ---------------------------------------------------------------------------

my $all_md5 = q{SELECT string_agg(id || ' ' || exchange || '/' || label || ' ' || md5(secret) || ' ' || key_version || ' ' || key_id, E'\n' ORDER BY id)
	FROM trading_guard.credential_store};
my $src_rows = $node->safe_psql('postgres', $all_md5);
my $dump = $node->basedir . '/vault.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-Z0', '-d', $node->connstr('postgres'), '-f', $dump ],
	'pg_dump of a database with credentials');
my $dump_bytes = slurp_file($dump);
is(scalar(grep { index($dump_bytes, $_) >= 0 } @all_secrets), 0, 'the dump holds no secret in the clear');
my ($doc_hex) = split / /, $row->($cred{doc}{id});
ok(index($dump_bytes, $doc_hex) >= 0, 'it holds the ciphertext (the envelope in hex)');

$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'pg_restore into another database of the same server');
is($node->safe_psql('restored', $all_md5), $src_rows,
	'credential_store comes back with identical ciphertexts (md5), versions and key ids');
for my $label (sort keys %cred)
{
	is(reveal($node, 'restored', $cred{$label}{id}), $cred{$label}{secret},
		"restored: credential $label reveals");
}
is(sign($node, 'restored', 'binance', 'doc', $BIN_PAYLOAD), $BIN_SIG, 'restored: sign_request works');

# Another server with another key ring.
my ($X1, $X2, $X7) = (key(), key(), key());
my $node2 = PostgreSQL::Test::Cluster->new('other_keys');
$node2->init;
$node2->append_conf('postgresql.conf', q{
shared_preload_libraries = 'trading_guard'
include 'tg_keys.conf'
});
my $ring_file2 = write_ring("$keydir/other.keys", 1 => $X1, 2 => $X2);
set_source($node2, key_file => $ring_file2);
$node2->start;
{
	# as a user runs it: its sessions are named pg_restore, so the events
	# worker and the sealer of that database wait until it is done
	local $ENV{PGAPPNAME};
	delete $ENV{PGAPPNAME};
	$node2->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node2->connstr('postgres'), $dump ],
		'pg_restore on a server with another key ring');
}
is($node2->safe_psql('postgres', 'SELECT count(*) <= 1 FROM trading_guard.security_event_state'), 't',
	'the restored security_event_state holds one row at most');
is($node2->safe_psql('postgres', $all_md5), $src_rows, 'the same ciphertexts there');
my $kid2 = key_id($K2);
my @needs_v2 = (qr/key version 2 in the key ring is not the key credential $cred{a}{id} was encrypted with/,
	qr/\Q$kid2\E/);
# Its ring has a version 2 too, but another key (another key id): the key
# the credential needs is missing.
fails_with($node2, 'postgres', "SELECT trading_guard.reveal_credential($cred{a}{id})",
	'TG072', 'another ring with the same version numbers: reveal names the version and key id needed',
	@needs_v2, qr/the key ring's version 2 has key id/);
write_ring($ring_file2, 7 => $X7);
reload_ring($node2, 'ok');
fails_with($node2, 'postgres', "SELECT trading_guard.reveal_credential($cred{a}{id})",
	'TG072', 'another ring without version 2: reveal names the version and key id needed',
	qr/key version 2, needed to decrypt credential $cred{a}{id}, is not in the key ring/,
	qr/\Q$kid2\E/);
fails_with($node2, 'postgres', "SELECT trading_guard.sign_request('binance', 'doc', '$BIN_PAYLOAD')",
	'TG072', 'another ring without version 2: sign_request names the version and key id needed',
	qr/key version 2/, qr/\Q$kid2\E/);
write_ring($ring_file2, 2 => $K2);
reload_ring($node2, 'ok');
is(reveal($node2, 'postgres', $cred{a}{id}), $cred{a}{secret},
	'the same ring on the other server: the restored credential reveals');
is(sign($node2, 'postgres', 'binance', 'doc', $BIN_PAYLOAD), $BIN_SIG,
	'and signs the Binance vector');
$node2->stop;

# ---------------------------------------------------------------------------
# 7. WAL and data files hold no secret in the clear
# ---------------------------------------------------------------------------

my $dboid = $node->safe_psql('postgres', q{SELECT oid FROM pg_database WHERE datname = 'postgres'});
my $filenode = $node->safe_psql('postgres',
	q{SELECT pg_relation_filenode('trading_guard.credential_store')});
my $start_lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
my %wal_cred;
for my $label ('w1', 'w2', 'w3')
{
	my $sec = secret();
	$wal_cred{$label} = { secret => $sec,
		id => store($node, 'postgres', 'coinbase', $label, "coinbase-api-key-$label-0123456789", $sec) };
}
my $w_rot = secret();
($ok, $err) = bound($node, 'postgres',
	q{SELECT trading_guard.rotate_credential('coinbase', 'w2', :api_key, :api_secret)},
	api_key => 'coinbase-api-key-w2-rotated-01', api_secret => $w_rot);
ok($ok, 'WAL: rotate_credential of coinbase/w2') or diag($err);
is(reveal($node, 'postgres', $wal_cred{w2}{id}), $w_rot, 'WAL: w2 reveals its new secret');
my $end_lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_flush_lsn()');

my $waldump = join '', run_command([ 'pg_waldump', '-p', "$pgdata/pg_wal", '-s', $start_lsn, '-e', $end_lsn ]);
my $rel = "rel 1663/$dboid/$filenode";
my $inserts = () = $waldump =~ /^rmgr: Heap .*desc: INSERT .*\Q$rel\E blk/mg;
cmp_ok($inserts, '>=', 3, "pg_waldump: the three stores are INSERTs into credential_store ($inserts)");
like($waldump, qr/^rmgr: Heap .*desc: (?:HOT_)?UPDATE .*\Q$rel\E blk/m,
	'pg_waldump: the rotation is an UPDATE of credential_store');
is(scalar(grep { index($waldump, $_) >= 0 } @all_secrets), 0, 'pg_waldump output shows no secret');

# What to look for: every secret stored in this test (the first versions of
# rotated ones too), every master key (raw, hex, base64) and every subkey
# derived from them.
my @needles = map { [ "secret $_", $all_secrets[$_] ] } 0 .. $#all_secrets;
for my $i (0 .. $#all_keys)
{
	my $k = $all_keys[$i];
	push @needles, [ "master key $i (raw)", $k->{raw} ], [ "master key $i (hex)", $k->{hex} ],
	  [ "master key $i (base64)", $k->{b64} ];
	push @needles, [ "subkey $_ of master key $i", hkdf($k->{raw}, "trading_guard/v1/$_", 32) ]
	  foreach qw(encryption fingerprint sealing);
}

my $wal_block = $node->safe_psql('postgres', q{SELECT setting FROM pg_settings WHERE name = 'wal_block_size'});
# A WAL segment's records without the page headers between them (24 bytes,
# 40 on a segment's first page), so that nothing split across two WAL pages
# escapes the search.
sub strip_wal_pages
{
	my ($data) = @_;
	my $out = '';
	for (my $off = 0; $off < length($data); $off += $wal_block)
	{
		my $hdr = $off == 0 ? 40 : 24;
		$out .= substr($data, $off + $hdr, $wal_block - $hdr);
	}
	return $out;
}

# Files under $dir (recursively) holding one of @needles; pg_wal files are
# searched raw and without page headers.  Returns ([hits], number of files).
sub search_files
{
	my ($dir, $needles) = @_;
	my (@hits, $nfiles);
	find(
		{
			no_chdir => 1,
			wanted => sub {
				return unless -f $File::Find::name;
				my $data = slurp_file($File::Find::name);
				$nfiles++;
				my @views = ($data);
				push @views, strip_wal_pages($data)
				  if $File::Find::name =~ m{/pg_wal/[0-9A-F]{24}$};
				for my $n (@$needles)
				{
					push @hits, "$n->[0] in $File::Find::name"
					  if grep { index($_, $n->[1]) >= 0 } @views;
				}
			}
		},
		$dir);
	return (\@hits, $nfiles);
}

# The ciphertexts are there: the search would find them.
my @envelopes = map { [ "envelope of $_", pack('H*', (split / /, $row->($wal_cred{$_}{id}))[0]) ] }
  sort keys %wal_cred;
my ($hits, $nwal) = search_files("$pgdata/pg_wal", \@envelopes);
is(scalar(@$hits), scalar(@envelopes), "WAL: each new envelope is found in pg_wal ($nwal files searched)")
  or diag(join "\n", @$hits);
($hits) = search_files("$pgdata/pg_wal", \@needles);
is(scalar(@$hits), 0, 'WAL: no secret, master key or subkey in the raw bytes of pg_wal')
  or diag(join "\n", @$hits);

$node->safe_psql('postgres', 'CHECKPOINT');
my $heap = $node->safe_psql('postgres', q{SELECT pg_relation_filepath('trading_guard.credential_store')});
($hits) = search_files("$pgdata/$heap", \@envelopes);
is(scalar(@$hits), scalar(@envelopes), 'data files: after CHECKPOINT the envelopes are in credential_store\'s file');
my $nfiles;
($hits, $nfiles) = search_files($pgdata, \@needles);
is(scalar(@$hits), 0, "data files: no secret, master key or subkey anywhere in the data directory ($nfiles files)")
  or diag(join "\n", @$hits);

# ---------------------------------------------------------------------------
# 8. The key ring worker and the key ring's memory
# ---------------------------------------------------------------------------

# The worker has no database connection (it must run before the server is
# consistent, to reload keys on a standby too), so it is not in
# pg_stat_activity; its process title shows it.

my ($pm_pid) = split /\n/, slurp_file("$pgdata/postmaster.pid");
# The worker among the postmaster's children, by its process title.
my ($worker_pid) = grep {
	my $stat = -r "/proc/$_/stat" ? slurp_file("/proc/$_/stat") : '';
	my $cmd = -r "/proc/$_/cmdline" ? slurp_file("/proc/$_/cmdline") : '';
	$stat =~ /^\d+ \(.*\) \S (\d+) / && $1 == $pm_pid && $cmd =~ /trading_guard key ring/;
} map { m{/proc/(\d+)$} ? $1 : () } glob('/proc/[0-9]*');

SKIP:
{
	skip 'no /proc/<pid>/smaps here', 6 unless -r "/proc/$pm_pid/smaps";
	ok(defined $worker_pid, 'the key ring worker is a child of the postmaster (process title)');

	# Mappings of a process whose VmFlags have all of @want and none of
	# @refuse.
	my $vmas = sub {
		my ($pid, $want, $refuse) = @_;
		my @vmas = split /^(?=[0-9a-f]+-[0-9a-f]+ )/m, slurp_file("/proc/$pid/smaps");
		return grep {
			my ($flags) = /^VmFlags:(.*)$/m;
			$flags = ' ' . ($flags // '') . ' ';
			!(grep { $flags !~ / \Q$_\E / } @$want) && !(grep { $flags =~ / \Q$_\E / } @$refuse)
		} @vmas;
	};

	# The key ring's shared memory: a shared mapping of its own (madvise
	# splits it off the main segment) flagged dd (MADV_DONTDUMP) and lo
	# (mlock) in the postmaster.  Children inherit dd with the mapping; mlock
	# is not inherited by fork(), but the shared pages stay locked in RAM
	# through the postmaster's lock.
	my @pm = $vmas->($pm_pid, [ 'sh', 'dd' ], []);
	is(scalar(@pm), 1, 'postmaster: one shared mapping excluded from core dumps (dd), the key ring');
	like($pm[0] // '', qr/^VmFlags:.* lo\b/m, 'postmaster: and locked in RAM (lo)');
	is(scalar($vmas->($worker_pid // $pm_pid, [ 'sh', 'dd' ], [])), 1,
		'key ring worker: the same shared mapping, excluded from core dumps (dd)');

	# A backend that has signed: the key ring mapping, and its own locked,
	# never-dumped scratch page (private).
	my $bg = $node->background_psql('postgres');
	my $bpid = $bg->query_safe('SELECT pg_backend_pid()');
	chomp $bpid;
	my $sig = $bg->query_safe("SELECT trading_guard.sign_request('binance', 'doc', '$BIN_PAYLOAD')");
	chomp $sig;
	is($sig, $BIN_SIG, 'a backend signs');
	is(scalar($vmas->($bpid, [ 'sh', 'dd' ], [])), 1,
		'that backend: the key ring mapping, excluded from core dumps (dd)');
	cmp_ok(scalar($vmas->($bpid, [ 'dd', 'lo' ], ['sh'])), '>=', 1,
		'that backend: a private scratch mapping locked (lo) and excluded from core dumps (dd)');
	$bg->quit;
}

# ---------------------------------------------------------------------------
# rekey() under a row trigger that runs a subtransaction (a PL/pgSQL
# exception block): the trigger's subtransaction must leave rekey's cipher
# state alone between rows (it once freed it: a crash)
# ---------------------------------------------------------------------------

set_source($node, key_file => $ring_file);
my $K3 = key();
write_ring($ring_file, 2 => $K2, 3 => $K3);
reload_ring($node, 'ok');
$node->safe_psql('postgres', q{
	CREATE FUNCTION public.rekey_witness() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		BEGIN
			PERFORM 1 / 0;
		EXCEPTION WHEN division_by_zero THEN NULL;
		END;
		RETURN NULL;
	END $$;
	BEGIN;
	SET LOCAL trading_guard.maintenance = on;  -- a trigger on the extension's table
	CREATE TRIGGER rekey_witness AFTER UPDATE ON trading_guard.credential_store
		FOR EACH ROW EXECUTE FUNCTION public.rekey_witness();
	COMMIT;});
my $to_rekey = $node->safe_psql('postgres',
	'SELECT count(*) FROM trading_guard.credential_store WHERE revoked_at IS NULL AND key_version = 2');
cmp_ok($to_rekey, '>=', 2, 'several credentials to re-encrypt in one batch');
is($node->safe_psql('postgres',
	"SELECT rekeyed || '/' || remaining || '/' || key_version FROM trading_guard.rekey(100)"),
	"$to_rekey/0/3", 'rekey() re-encrypts them all in one batch despite the trigger');
is(sign($node, 'postgres', 'binance', 'doc', $BIN_PAYLOAD), $BIN_SIG,
	'after it the Binance credential still signs');
$node->safe_psql('postgres', 'BEGIN; SET LOCAL trading_guard.maintenance = on; DROP TRIGGER rekey_witness ON trading_guard.credential_store; DROP FUNCTION public.rekey_witness(); COMMIT');

# ---------------------------------------------------------------------------
# The server log never shows key material
# ---------------------------------------------------------------------------

my $log = slurp_file($node->logfile);
my @in_log = grep { index($log, $_->[1]) >= 0 }
  grep { $_->[0] =~ /master key|subkey/ } @needles;
is(scalar(@in_log), 0, 'the server log holds no master key or subkey')
  or diag(join "\n", map { $_->[0] } @in_log);
is(scalar(grep { index($log, $_) >= 0 } @bad_fragments), 0,
	'the server log quotes no key of a malformed ring');

$node->stop;
done_testing();
