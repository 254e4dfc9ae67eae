#!/bin/bash
# test/valgrind.sh — run the pg_regress suite against a server running under
# valgrind (memcheck), then a few TCP/TLS connections through the connection
# guard, and report any error valgrind found in trading_guard.
#
#   test/valgrind.sh            # about 5 minutes on 2 cores
#
# Debian's postgres is not built with USE_VALGRIND, so palloc'd chunks are
# not tracked individually; valgrind still catches uninitialised reads,
# reads and writes outside malloc'd/mmap'd memory, and bad frees.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tg_ensure_packages $TG_PACKAGES valgrind
tg_build_install

BINDIR=$($PG_CONFIG --bindir)
PGXS_DIR=$($PG_CONFIG --pkglibdir)/pgxs
WORK=$(tg_runner_dir tg-valgrind)
PORT=$(tg_free_port 56432)
cp -r "$TG_REPO"/{sql,expected,test,Makefile} "$WORK"/
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$WORK"
trap 'tg_as_runner "$BINDIR/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true' EXIT

tg_as_runner "$BINDIR/initdb" -D "$WORK/data" -A trust >/dev/null
cat "$TG_REPO/test/regress.conf" >> "$WORK/data/postgresql.conf"
cat >> "$WORK/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1,::1'
unix_socket_directories = '$WORK'
max_connections = 20
ssl = on
CONF
# TLS for the connection guard's TCP paths (certificate made now, not kept)
tg_make_server_cert "$WORK/data"
[ "$(id -u)" -eq 0 ] && chown postgres: "$WORK/data/server.crt" "$WORK/data/server.key"

# the vault's key ring: one key made for this run, never kept
TRADING_GUARD_MASTER_KEY="1 $(openssl rand -hex 32)"
export TRADING_GUARD_MASTER_KEY

tg_log "starting postgres under valgrind"
tg_as_runner valgrind --quiet --trace-children=yes --track-origins=yes \
	--read-var-info=yes --num-callers=30 \
	--suppressions="$TG_REPO/test/valgrind.supp" \
	--log-file="$WORK/valgrind.%p.log" \
	"$BINDIR/postgres" -D "$WORK/data" >"$WORK/server.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
	kill -0 "$server" 2>/dev/null || { cat "$WORK"/valgrind.*.log "$WORK/server.log"; tg_die "server did not start"; }
	tg_as_runner "$BINDIR/pg_isready" -q -h "$WORK" -p "$PORT" && break
	sleep 1
done

cd "$WORK"
tg_as_runner "$BINDIR/createdb" -h "$WORK" -p "$PORT" contrib_regression
tg_as_runner "$PGXS_DIR/src/test/regress/pg_regress" --inputdir=. --bindir="$BINDIR" \
	--host="$WORK" --port="$PORT" --use-existing --dbname=contrib_regression \
	$(make -s -C "$TG_REPO" print-REGRESS) || true

# The connection guard's TCP paths under valgrind: TLS allowed by a rule,
# plaintext refused, no rule for ::1 (then banned after 2 failures, refused
# as banned), an unknown role (seen by the log hook), rule reloads.  Whether
# a connection races a reload does not matter: only valgrind's verdict does.
tg_as_runner "$BINDIR/psql" -X -h "$WORK" -p "$PORT" -d contrib_regression -Atc \
	"ALTER SYSTEM SET trading_guard.rules = 'nobody 10.0.0.0/8; +pg_read_all_stats ::1 cert; * 127.0.0.1'" \
	-c "ALTER SYSTEM SET trading_guard.max_auth_failures = 2" -c 'SELECT pg_reload_conf()' >/dev/null
tcp() {
	tg_as_runner "$BINDIR/psql" -X -Atc 'SELECT 1' \
		"host=$1 port=$PORT dbname=contrib_regression $2" >/dev/null 2>&1 || true
}
tcp 127.0.0.1 sslmode=require
tcp 127.0.0.1 sslmode=disable
tcp ::1 sslmode=prefer
tcp ::1 sslmode=require
tcp ::1 sslmode=require
tcp 127.0.0.1 "sslmode=require user=no_such_role"
tg_as_runner "$BINDIR/psql" -X -h "$WORK" -p "$PORT" -d contrib_regression -Atc \
	"ALTER SYSTEM SET trading_guard.rules = '* all'" -c 'SELECT pg_reload_conf()' \
	-c 'SELECT count(*) FROM trading_guard.connection_events' \
	-c 'SELECT count(*) FROM trading_guard.banned_addresses' \
	-c "SELECT trading_guard.unban('::1')" >/dev/null
tcp ::1 sslmode=require

tg_as_runner "$BINDIR/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null || true
trap - EXIT

errors=$(cat "$WORK"/valgrind.*.log | grep -c '^==[0-9]*== [A-Z]' || true)
if [ "$errors" -gt 0 ]; then
	cat "$WORK"/valgrind.*.log | head -200
	echo "valgrind: $errors error lines (logs in $WORK)"
	exit 1
fi
echo "valgrind: no errors (logs in $WORK; regression results in $WORK/results)"
