#!/usr/bin/env bash
# test/live.sh — set up a throwaway demo cluster with trading_guard, live.
#
#   test/live.sh          install what is missing, build, install, then (re)create
#                         and start the demo cluster in live/ and run a short demo
#   test/live.sh stop     stop the demo cluster (its files stay for inspection;
#                         the next start wipes them)
#
# Works on a fresh Debian 12 machine as root or as a normal user with sudo.
# Under root the server runs as the "postgres" system user (test/lib.sh).
#
# THIS IS A THROWAWAY DEMO, NOT A PRODUCTION SETUP: it listens on localhost
# only, refuses every non-TLS TCP connection in pg_hba.conf, trusts every
# local (Unix socket) user, asks TCP clients for a SCRAM password generated at
# each start (kept in live/pgpass, 0600), and its certificate is self-signed,
# generated at each start and never kept in the repository.

set -euo pipefail

# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BINDIR=$("$PG_CONFIG" --bindir)
RUNNER=$(tg_runner)
# Where the cluster lives when the runner cannot reach the checkout (root's
# checkout under /root while the server runs as "postgres").
FALLBACK_LIVE=/tmp/trading_guard-live-$RUNNER

# True when folder $1 is a demo folder of ours (the runner owns it); other
# users' demos are left alone.
ours() {
	[ -d "$1" ] && [ "$(stat -c %U "$1")" = "$RUNNER" ]
}

# Print the cluster folder: live/ in the checkout when the runner can reach it.
choose_live_dir() {
	if tg_as_runner test -x "$TG_REPO" -a -r "$TG_REPO"; then
		echo "$TG_REPO/live"
	else
		echo "$FALLBACK_LIVE"
	fi
}

# Stop the demo server in folder $1, if one runs there.
stop_cluster() {
	local live=$1
	[ -f "$live/data/postmaster.pid" ] || return 0
	tg_log "stopping the demo server in $live"
	(cd / && tg_as_runner "$BINDIR/pg_ctl" -D "$live/data" -m fast -w stop >&2) ||
		(cd / && tg_as_runner "$BINDIR/pg_ctl" -D "$live/data" -m immediate -w stop >&2) ||
		true
	# A stale pid file of a server that is long gone is no reason to fail.
	if [ -f "$live/data/postmaster.pid" ] &&
		kill -0 "$(head -n1 "$live/data/postmaster.pid")" 2>/dev/null; then
		tg_die "the server in $live/data is still running"
	fi
}

if [ "${1:-start}" = stop ]; then
	found=0
	for live in "$TG_REPO/live" "$FALLBACK_LIVE"; do
		if ! ours "$live" || [ ! -f "$live/data/postmaster.pid" ]; then
			continue
		fi
		stop_cluster "$live"
		found=1
		echo "stopped the demo server in $live/data"
	done
	[ "$found" -eq 1 ] || echo "no demo server is running"
	exit 0
elif [ "${1:-start}" != start ]; then
	echo "usage: $0 [start|stop]" >&2
	exit 2
fi

# shellcheck disable=SC2086 # a word list
tg_ensure_packages $TG_PACKAGES
tg_build_install

# Wipe the previous demo, wherever it was.
for live in "$TG_REPO/live" "$FALLBACK_LIVE"; do
	ours "$live" || continue
	stop_cluster "$live"
	rm -rf "$live"
done
[ ! -e "$TG_REPO/live" ] || tg_die "$TG_REPO/live exists and is not $RUNNER's: remove it"

LIVE=$(choose_live_dir)
[ "$LIVE" = "$TG_REPO/live" ] ||
	tg_log "user $RUNNER cannot reach $TG_REPO: the demo cluster goes to $LIVE instead"
mkdir -m 0755 "$LIVE"
[ "$(id -u)" -ne 0 ] || chown "$RUNNER:" "$LIVE"
cd "$LIVE"

DATA=$LIVE/data
LOGFILE=$LIVE/server.log
PORT=$(tg_free_port 55432)
# A Unix socket path must stay under 108 bytes.
SOCKDIR=$LIVE/sock
if [ $(( ${#SOCKDIR} + ${#PORT} + 10 )) -gt 100 ]; then
	SOCKDIR=$(tg_runner_dir tg_live_sock)
	tg_log "the cluster path is too long for a Unix socket: socket in $SOCKDIR"
else
	tg_as_runner mkdir -m 0700 "$SOCKDIR"
fi

tg_log "initdb in $DATA (as $RUNNER)"
tg_as_runner "$BINDIR/initdb" -D "$DATA" -A trust -E UTF8 --locale=C.UTF-8 \
	--no-instructions 2>&1 | tg_as_runner tee "$LIVE/initdb.log" >/dev/null ||
	{ cat "$LIVE/initdb.log" >&2; tg_die "initdb failed"; }

tg_log "generating a self-signed TLS certificate for localhost"
tg_make_server_cert "$DATA"
[ "$(id -u)" -ne 0 ] || chown "$RUNNER:" "$DATA/server.crt" "$DATA/server.key"

tg_log "generating a key ring for the credential vault (one 256-bit key, mode 0600)"
# outside the data directory, which base backups copy
KEYDIR=$LIVE/keys
tg_as_runner mkdir -m 0700 "$KEYDIR"
(umask 077 && printf '1 %s\n' "$(openssl rand -hex 32)" >"$KEYDIR/trading_guard.keys") ||
	tg_die "could not write the key ring"
[ "$(id -u)" -ne 0 ] || chown "$RUNNER:" "$KEYDIR/trading_guard.keys"

tg_as_runner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# ---- trading_guard live demo (test/live.sh) ----
listen_addresses = 'localhost'
port = $PORT
unix_socket_directories = '$SOCKDIR'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
shared_preload_libraries = 'trading_guard'
# the connection guard: TLS 1.3 only, any role but only from this machine
trading_guard.connection_policy = enforce
trading_guard.ssl_min_protocol = 'TLSv1.3'
trading_guard.rules = '* 127.0.0.1, ::1'
# the credential vault's key ring: a file only the server's user can read
trading_guard.key_file = '$KEYDIR/trading_guard.keys'
trading_guard.environment = 'dev'
# the audit trail of the demo database is sealed, its security events kept there
trading_guard.seal_databases = 'demo'
trading_guard.events_database = 'demo'
# what security_checklist() asks of any server: connections logged, WAL archived
log_connections = on
archive_mode = on
archive_command = 'test ! -f $LIVE/wal_archive/%f && cp %p $LIVE/wal_archive/%f'
EOF
tg_as_runner mkdir -p "$LIVE/wal_archive"

# Throwaway demo: local users trusted; TCP only with TLS, a SCRAM password,
# and from this machine.
tg_as_runner tee "$DATA/pg_hba.conf" >/dev/null <<'EOF'
# trading_guard live demo (test/live.sh) -- a throwaway cluster, not a model:
# local users are trusted without a password; TCP needs TLS, a SCRAM
# password and localhost.
# TYPE    DATABASE  USER  ADDRESS       METHOD
local     all       all                 trust
hostssl   all       all   127.0.0.1/32  scram-sha-256
hostssl   all       all   ::1/128       scram-sha-256
host      all       all   0.0.0.0/0     reject
host      all       all   ::/0          reject
EOF

tg_log "starting the server on port $PORT (log: $LOGFILE)"
tg_as_runner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 start >&2 ||
	{ tail -n 30 "$LOGFILE" >&2; tg_die "the server did not start"; }

tg_as_runner "$BINDIR/createdb" -h "$SOCKDIR" -p "$PORT" demo

# The demo runs over TCP with TLS, the certificate checked against itself,
# with a password made now: set over the Unix socket (psql sends it in the
# ALTER ROLE; with log_statement = none it is logged nowhere) and kept in a
# passfile only the runner reads.  It only ever travels through pipes (the
# shell's printf is a builtin), never a command line that ps would show.
PGPASSWORD_DEMO=$(openssl rand -hex 24)
printf '*:*:*:*:%s\n' "$PGPASSWORD_DEMO" |
	tg_as_runner sh -c 'umask 077; cat > "$1"' sh "$LIVE/pgpass"
printf "ALTER ROLE CURRENT_USER PASSWORD '%s';\n" "$PGPASSWORD_DEMO" |
	tg_as_runner "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" demo
unset PGPASSWORD_DEMO
CONNINFO="host=localhost port=$PORT dbname=demo sslmode=verify-full sslrootcert=$DATA/server.crt passfile=$LIVE/pgpass"

# Each rejected order is its own statement; print its SQLSTATE, and flag it
# loudly should it be accepted.
reject() {
	printf '\\echo\n\\echo %s\n%s\n' "'-- $1'" "$2"
	printf '%s\n' '\if :ERROR' \
		'\echo '"'   -> rejected, SQLSTATE'"' :LAST_ERROR_SQLSTATE' \
		'\else' \
		'\echo '"'   -> UNEXPECTED: this order was accepted'"'' \
		'\endif'
}

demo_sql() {
	cat <<'SQL'
\set ON_ERROR_STOP on
\pset footer off
\echo '== TLS of this session'
SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid();

\echo '== CREATE EXTENSION trading_guard'
CREATE EXTENSION trading_guard;

\echo '== import test/exchange_info.json (Binance spot exchangeInfo format)'
SELECT * FROM trading_guard.load_exchange_info(:'info'::jsonb);
SELECT * FROM trading_guard.symbols ORDER BY 1;

\echo '== a protected order table'
CREATE TABLE public.orders (
    id          bigserial PRIMARY KEY,
    symbol      text NOT NULL,
    side        text NOT NULL,
    quantity    numeric NOT NULL,
    price       numeric,
    created_at  timestamptz DEFAULT now()
);
SELECT trading_guard.protect_orders('public.orders');

\echo '== ... and audited: every change recorded in trading_guard.audit_log'
SELECT trading_guard.enable_audit('public.orders');
SET trading_guard.actor = 'demo-bot-1';

\echo '== valid orders are accepted'
INSERT INTO public.orders (symbol, side, quantity, price) VALUES
    ('BTCUSDT', 'BUY',  0.00100, 65000.00),
    ('ETHUSDT', 'SELL', 0.5000,  3200.50),
    ('SOLUSDT', 'BUY',  1.500,   150.25),
    ('BTCUSDT', 'SELL', 0.00020, NULL)      -- a market order: no price
RETURNING id, symbol, side, quantity, price;

\echo
\echo '== invalid orders are rejected (one statement each)'
\set ON_ERROR_STOP off
\set SHOW_CONTEXT never
SQL
	reject "unknown symbol" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('DOGEUSDT', 'BUY', 100, 0.1);"
	reject "malformed symbol (lower case)" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('btcusdt', 'BUY', 0.001, 65000);"
	reject "symbol not trading (LUNAUSDT is in BREAK)" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('LUNAUSDT', 'BUY', 100, 0.5);"
	reject "invalid side" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'HOLD', 0.001, 65000);"
	reject "quantity below LOT_SIZE minQty" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.000001, 65000);"
	reject "quantity off the LOT_SIZE step" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.000015, 650000);"
	reject "price off the PRICE_FILTER tick" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.001, 65000.005);"
	reject "notional below NOTIONAL minNotional (0.0001 x 30000 = 3 USDT)" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.0001, 30000);"
	reject "notional below the old-style MIN_NOTIONAL (SOLUSDT)" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('SOLUSDT', 'BUY', 0.01, 150);"
	reject "NaN quantity" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('ETHUSDT', 'BUY', 'NaN', 3200);"
	reject "negative quantity" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('ETHUSDT', 'SELL', -1, 3200);"
	reject "an UPDATE is checked too" \
		"UPDATE public.orders SET price = 65000.001 WHERE symbol = 'BTCUSDT' AND price IS NOT NULL;"
	cat <<'SQL'

\set ON_ERROR_STOP on
\echo
\echo '== every violation at once, for a UI: order_violations(''BTCUSDT'', ''BUY'', 0.000001, 1.5)'
SELECT * FROM trading_guard.order_violations('BTCUSDT', 'BUY', 0.000001, 1.5);

\echo '== rounding to the LOT_SIZE step (truncates) and the PRICE_FILTER tick (rounds)'
SELECT trading_guard.round_quantity('BTCUSDT', 0.123456789) AS round_quantity,
       trading_guard.round_price('BTCUSDT', 65000.005)      AS round_price;

\echo '== the table holds only the valid orders'
SELECT id, symbol, side, quantity, price FROM public.orders ORDER BY id;

\echo '== an accepted change, then the audit trail: the refused orders left no trace'
UPDATE public.orders SET quantity = 0.002 WHERE id = 1;
SELECT operation, row_key, current_user_name, actor, client_addr, changed_columns
  FROM trading_guard.audit_log WHERE table_name = 'orders' ORDER BY id;
\echo '== history of order 1'
SELECT event_time, operation, old_row->>'quantity' AS old_quantity, new_row->>'quantity' AS new_quantity
  FROM trading_guard.history('public.orders', '{"id": 1}');
\echo '== the log is append-only, for the superuser too'
\set ON_ERROR_STOP off
DELETE FROM trading_guard.audit_log;
\set ON_ERROR_STOP on
SELECT * FROM trading_guard.audited_tables;

\echo '== the credential vault: the key ring (versions and key ids, never a key)'
SELECT * FROM trading_guard.key_versions();
\set ON_ERROR_STOP off
SQL
	reject "a secret written as a literal is refused: it would reach logs and pg_stat_statements" \
		"SELECT trading_guard.store_credential('binance', 'demo', 'demo-api-key-000000001', 'a-secret-in-the-sql-text');"
	cat <<'SQL'
\set ON_ERROR_STOP on
\echo '== stored from values the client binds as parameters (psql 15 cannot bind: here they are made in the server)'
SELECT trading_guard.store_credential('binance', 'demo', concat('demo-api-key-', 1000000001),
                                      md5(random()::text) || md5(random()::text)) AS credential_id;
\echo '== a bot signs a request with it, never holding the secret'
SELECT trading_guard.sign_request('binance', 'demo',
         'symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.001&price=65000&timestamp=1764547200000') AS signature;
SELECT exchange, label, environment, api_key, key_version, rotate_by::date, signatures
  FROM trading_guard.credentials;

\echo '== incident response: halt the exchange, in every session at once'
SELECT trading_guard.halt_trading('demo: suspicious withdrawals', exchange => 'binance') AS halt_id;
SELECT * FROM trading_guard.trading_status();
\set ON_ERROR_STOP off
SQL
	reject "a new order during the halt" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.001, 65000);"
	reject "a signature for a new order on the halted exchange" \
		"SELECT trading_guard.sign_request('binance', 'demo', 'symbol=BTCUSDT&side=BUY&quantity=0.001');"
	cat <<'SQL'
\set ON_ERROR_STOP on
\echo '== ... but a cancel is signed (declared with sign_request''s purpose)'
SELECT left(trading_guard.sign_request('binance', 'demo', 'symbol=BTCUSDT&orderId=1', 'cancel'), 16) || '…' AS cancel_signature;
SELECT trading_guard.resume_trading(exchange => 'binance') AS resumed_halt;
\echo '== a pre-trade limit: 2 orders per minute for this role'
SELECT trading_guard.set_order_limit(current_user::regrole, orders_per_minute => 2, max_order_notional => 100000);
INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.001, 65000), ('BTCUSDT', 'SELL', 0.001, 65100);
\set ON_ERROR_STOP off
SQL
	reject "a third order within the minute" \
		"INSERT INTO public.orders (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.001, 65000);"
	cat <<'SQL'
\set ON_ERROR_STOP on
SELECT limit_name, limit_value, used, admitted, refused FROM trading_guard.limit_usage;
SELECT trading_guard.drop_order_limit(current_user::regrole);

\echo '== the connection guard recorded every attempt, the refused ones too'
SELECT client_addr, role_name, ssl_version, decision, reason, rule
  FROM trading_guard.connection_events ORDER BY event_time;
SELECT decision, reason, connections FROM trading_guard.connection_stats ORDER BY 1, 2;

\echo '== ... and security_events keeps them for good, with the vault and key ring events'
-- (the events worker writes every 100 ms; wait for the signature's count)
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        EXIT WHEN EXISTS (SELECT FROM trading_guard.security_events WHERE event_type = 'vault_sign');
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT event_type, outcome, role_name, client_addr, tls_version, reason, detail
  FROM trading_guard.security_events ORDER BY id;
SELECT * FROM trading_guard.verify_security_events();

\echo '== the incident report of the last hour'
SELECT section, subject, count, detail FROM trading_guard.incident_report(now() - interval '1 hour')
 WHERE section <> 'rows_changed' ORDER BY section, count DESC;

\echo '== the audit trail is sealed: verify it, and a signed digest an auditor keeps'
SELECT trading_guard.seal_audit() IS NOT NULL AS sealed;
SELECT ok, rows_checked, batches_checked, problem FROM trading_guard.verify_audit();
SELECT batch, position, key_version, left(signature, 16) || '…' AS signature FROM trading_guard.audit_digest();

\echo '== the security checklist of this server'
-- what it looks at: a verification (an event the worker writes), an on-call
-- role that may halt without being a superuser, a WAL segment archived
BEGIN;
SET LOCAL trading_guard.maintenance = on;
CREATE ROLE oncall;
GRANT EXECUTE ON FUNCTION trading_guard.halt_trading(text, text, text, regrole),
                          trading_guard.resume_trading(text, text, regrole),
                          trading_guard.revoke_all_credentials(text),
                          trading_guard.incident_report(timestamptz, timestamptz) TO oncall;
COMMIT;
SELECT pg_switch_wal() IS NOT NULL AS wal_switched;
DO $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        EXIT WHEN EXISTS (SELECT FROM trading_guard.security_events WHERE event_type = 'verify')
              AND (SELECT archived_count > 0 FROM pg_stat_archiver);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT area, "check", status, detail FROM trading_guard.security_checklist()
 ORDER BY status = 'pass', status = 'skip', area;
SELECT trading_guard.security_checklist_json() - 'checks' AS summary;
SQL
}

# Two connection attempts the demo expects to be refused, to show them
# recorded: plaintext (refused by pg_hba.conf's reject line) and TLS 1.2
# (refused by trading_guard.ssl_min_protocol).  The client sees no reason.
tg_log "connection guard: a plaintext and a TLS 1.2 attempt, both refused"
for opts in "sslmode=disable" "sslmode=verify-full sslrootcert=$DATA/server.crt ssl_max_protocol_version=TLSv1.2"; do
	if tg_as_runner "$BINDIR/psql" -X -Atc 'SELECT 1' \
		"host=localhost hostaddr=127.0.0.1 port=$PORT dbname=demo $opts" >/dev/null 2>"$LIVE/refused.err"; then
		tg_die "the connection guard let in a connection it should refuse ($opts)"
	fi
	printf '   %s -> %s\n' "$opts" "$(head -n 1 "$LIVE/refused.err")" >&2
done

tg_log "running the demo"
INFO=$(cat "$TG_REPO/test/exchange_info.json")
DEMO_OUT=$LIVE/demo.out
rc=0
# Line-buffered so that results and error messages keep their order.
demo_sql | tg_as_runner stdbuf -oL -eL "$BINDIR/psql" -X -v info="$INFO" "$CONNINFO" \
	2>&1 | tg_as_runner tee "$DEMO_OUT" || rc=$?

if [ "$(id -u)" -eq 0 ]; then
	AS_RUNNER="runuser -u $RUNNER -- "
	command -v sudo >/dev/null && AS_RUNNER="sudo -u $RUNNER "
else
	AS_RUNNER=""
fi
cat <<EOF

==============================================================================
trading_guard demo cluster is running (PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}'), port $PORT)
  data directory  $DATA
  server log      $LOGFILE
  demo output     $DEMO_OUT

Connect over TLS (certificate checked):
  ${AS_RUNNER}$BINDIR/psql "$CONNINFO"
or over the Unix socket:
  ${AS_RUNNER}$BINDIR/psql -h $SOCKDIR -p $PORT demo

Stop it:
  $TG_REPO/test/live.sh stop
(or ${AS_RUNNER}$BINDIR/pg_ctl -D $DATA stop)
==============================================================================
EOF

if [ "$rc" -ne 0 ]; then
	tg_die "the demo script failed (psql exit status $rc); see above"
fi
if grep -q 'UNEXPECTED' "$DEMO_OUT"; then
	tg_die "an invalid order was accepted; see above"
fi
