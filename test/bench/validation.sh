#!/usr/bin/env bash
# test/bench/validation.sh — what does order validation cost?
#
#   A. insert TPS (pgbench, 2 clients, simple protocol) into an orders table
#      with no check / regex + bounds CHECK constraints / an equivalent
#      PL/pgSQL trigger / trading_guard.protect_orders, interleaved rounds,
#      median per variant;
#   B. ns per evaluation of trading_guard.is_valid_symbol(symbol) against the
#      regular expression '^[A-Z0-9]{2,10}USDT$' over a table of >= 2M rows;
#   C. ns per row of a bulk INSERT ... SELECT into each of the tables of A,
#      which shows the CPU cost of each check without pgbench's noise;
#   D. instructions per one-order transaction under callgrind, which do not
#      depend on the machine's load at all; besides the variants of A, this
#      part runs "protect_orders + limits": the same trigger on its own
#      table, pgbench connected as a role with an order limit of every kind
#      (orders per second and per minute, notional per order and per hour)
#      set so high that it never refuses, so that every order goes through
#      the whole limit check; target: <= 1.03x the instructions per
#      transaction of protect_orders without limits.
#
# Usage (as root or as a user with sudo):
#   test/bench/validation.sh
# Environment:
#   BENCH_SECONDS=10   duration of each pgbench run
#   ROUNDS=3           interleaved rounds of the 4 insert variants (>= 3)
#   EVAL_ROWS=2000000  rows in the symbol table of part B (>= 2000000)
#   EVAL_ROUNDS=7      interleaved rounds of part B (>= 3)
#   EVAL_REPS=3        timings per expression per round of parts B and C (best kept)
#   BULK_ROWS=200000   rows of the bulk INSERT ... SELECT of part C
#   CG_SMALL=200 CG_LARGE=1200  transactions of the two callgrind runs of part D
#   CG_KEEP=DIR        copy the callgrind files of part D's last round there
#                      (keep.<variant>.<transactions>) for callgrind_annotate
#   BENCH_SKIP_BUILD=1 do not build/install the extension first
#
# It creates its own temporary cluster (fsync on, synchronous_commit off,
# shared_preload_libraries = 'trading_guard'), removes it at exit, prints a
# markdown report and writes it to test/out/bench-validation.md.  A missed
# target prints MISS and does not fail the script; any real error does.

set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BENCH_SECONDS=${BENCH_SECONDS:-10}
ROUNDS=${ROUNDS:-3}
EVAL_ROWS=${EVAL_ROWS:-2000000}
EVAL_ROUNDS=${EVAL_ROUNDS:-7}
EVAL_REPS=${EVAL_REPS:-3}
BULK_ROWS=${BULK_ROWS:-200000}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}

positive_ints BENCH_SECONDS ROUNDS EVAL_ROWS EVAL_ROUNDS EVAL_REPS BULK_ROWS
min_rounds ROUNDS EVAL_ROUNDS
[ "$EVAL_ROWS" -ge 2000000 ] || tg_die "EVAL_ROWS must be >= 2000000 (got $EVAL_ROWS)"

T_START=$(date +%s)
CG_SMALL=${CG_SMALL:-200}
CG_LARGE=${CG_LARGE:-1200}
positive_ints CG_SMALL CG_LARGE
[ "$CG_LARGE" -gt "$CG_SMALL" ] || tg_die "CG_LARGE must be > CG_SMALL (got $CG_LARGE, $CG_SMALL)"
CMD="BENCH_SECONDS=$BENCH_SECONDS ROUNDS=$ROUNDS EVAL_ROWS=$EVAL_ROWS EVAL_ROUNDS=$EVAL_ROUNDS EVAL_REPS=$EVAL_REPS BULK_ROWS=$BULK_ROWS CG_SMALL=$CG_SMALL CG_LARGE=$CG_LARGE test/bench/validation.sh"

# ---------------------------------------------------------------------------
# build, install, cluster
# ---------------------------------------------------------------------------
# shellcheck disable=SC2086
tg_ensure_packages $TG_PACKAGES valgrind
if [ "$BENCH_SKIP_BUILD" != 1 ]; then
	tg_build_install
fi

BIN=$("$PG_CONFIG" --bindir)
[ -x "$BIN/pgbench" ] || tg_die "pgbench not found in $BIN"

BDIR=$(tg_runner_dir tg-bench-validation)
PGDATA=$BDIR/data
PORT=$(tg_free_port 55700)
DB=bench

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_server "$PGDATA"
	if [ "$rc" -ne 0 ] && [ -f "$BDIR/server.log" ]; then
		echo "---- last lines of the server log ----" >&2
		tail -n 40 "$BDIR/server.log" >&2 || true
	fi
	rm -rf "$BDIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tg_log "initdb in $PGDATA (port $PORT)"
tg_as_runner "$BIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C \
	>"$BDIR/initdb.log" 2>&1 || { cat "$BDIR/initdb.log" >&2; tg_die "initdb failed"; }

cat >>"$PGDATA/postgresql.conf" <<EOF

# --- test/bench/validation.sh ---
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$BDIR'
shared_preload_libraries = 'trading_guard'
fsync = on
synchronous_commit = off
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 1h
autovacuum = off
jit = off
max_parallel_workers_per_gather = 0
EOF

tg_log "starting server"
tg_as_runner "$BIN/pg_ctl" -D "$PGDATA" -l "$BDIR/server.log" -w -t 120 start >/dev/null ||
	tg_die "server did not start"

# psql against the bench database: unaligned, tuples only, stop on error
# (as PSQL_USER, postgres unless set).
psql_db() {
	tg_as_runner "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BDIR" -p "$PORT" -U "${PSQL_USER:-postgres}" -d "${PSQL_DB:-$DB}" "$@"
}
PSQL_DB=postgres psql_db -c "CREATE DATABASE $DB"

# ---------------------------------------------------------------------------
# registry: 20 tradable symbols + 1 halted one, Binance exchangeInfo format
# ---------------------------------------------------------------------------
BASES=(BTC ETH BNB SOL XRP ADA DOGE AVAX DOT LINK LTC TRX ATOM UNI NEAR APT ARB OP 1INCH PEPE)
NSYM=${#BASES[@]}

exchange_info_json() {
	local i b min_qty step sep=""
	printf '{"timezone":"UTC","symbols":['
	for i in "${!BASES[@]}"; do
		b=${BASES[$i]}
		# two LOT_SIZE flavours; every pgbench quantity (multiple of 0.001,
		# 0.001..1) satisfies both
		if [ $((i % 2)) -eq 0 ]; then min_qty=0.00001000 step=0.00001000
		else min_qty=0.00100000 step=0.00100000; fi
		printf '%s{"symbol":"%sUSDT","status":"TRADING","baseAsset":"%s","quoteAsset":"USDT","filters":[' "$sep" "$b" "$b"
		printf '{"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},'
		printf '{"filterType":"LOT_SIZE","minQty":"%s","maxQty":"9000.00000000","stepSize":"%s"},' "$min_qty" "$step"
		printf '{"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5}]}'
		sep=","
	done
	printf ',{"symbol":"HALTUSDT","status":"BREAK","baseAsset":"HALT","quoteAsset":"USDT","filters":['
	printf '{"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},'
	printf '{"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000","stepSize":"0.00001000"},'
	printf '{"filterType":"NOTIONAL","minNotional":"5.00000000","maxNotional":"9000000.00000000"}]}'
	printf ']}'
}

orders_ddl() { # $1 = table name, $2 = extra table constraints (may be empty)
	printf 'CREATE TABLE %s (id bigserial PRIMARY KEY, symbol text NOT NULL, side text NOT NULL, quantity numeric NOT NULL, price numeric, created_at timestamptz DEFAULT now()%s);\n' "$1" "$2"
}

VARIANTS=(plain check plpgsql tg)
# part D also measures protect_orders with limits
CG_VARIANTS=("${VARIANTS[@]}" tglim)
declare -A LABEL=(
	[plain]="no check"
	[check]="regex + bounds CHECK"
	[plpgsql]="PL/pgSQL trigger"
	[tg]="trading_guard.protect_orders"
	[tglim]="protect_orders + limits"
)
# The role pgbench connects as for variant tglim: a superuser like postgres
# (the same privilege checks, no SET ROLE: current_user = session_user),
# with an order limit of each kind, all too high to refuse anything here:
# every order is counted in all four windows under the limits' spinlock.
# (The notional limits need a price: every pgbench order has one.)
LIMIT_ROLE=tg_bench_limited
LIMIT_ARGS="orders_per_second => 1000000, orders_per_minute => 100000000, max_order_notional => 9999999999, max_notional => 9999999999, notional_window => '1 hour'"
declare -A PGB_USER=([tglim]=$LIMIT_ROLE)

tg_log "creating extension, loading registry, creating tables"
{
	echo "CREATE EXTENSION trading_guard;"
	# shellcheck disable=SC2016
	printf 'SELECT * FROM trading_guard.load_exchange_info($tgjson$%s$tgjson$::jsonb);\n' "$(exchange_info_json)"
	orders_ddl orders_plain ""
	orders_ddl orders_check ", CHECK (symbol ~ '^[A-Z0-9]{2,10}USDT\$'), CHECK (side IN ('BUY','SELL')), CHECK (quantity > 0 AND quantity <= 1000000), CHECK (price IS NULL OR price > 0)"
	orders_ddl orders_plpgsql ""
	orders_ddl orders_tg ""
	orders_ddl orders_tglim ""
	echo "CREATE ROLE $LIMIT_ROLE LOGIN SUPERUSER;"
	echo "SELECT trading_guard.protect_orders('orders_tglim');"
	echo "SELECT trading_guard.set_order_limit('$LIMIT_ROLE', $LIMIT_ARGS);"
	cat <<'EOF'
-- The same rules as trading_guard's order check, in PL/pgSQL, against the
-- same registry table.  0 in a numeric filter column means "rule off".
CREATE FUNCTION bench_check_order() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
	r trading_guard.symbols%ROWTYPE;
	notional numeric;
BEGIN
	IF NEW.symbol IS NULL OR NEW.symbol !~ '^[A-Z0-9]{2,10}USDT$' THEN
		RAISE EXCEPTION 'invalid symbol format: %', NEW.symbol USING ERRCODE = 'check_violation';
	END IF;
	SELECT * INTO r FROM trading_guard.symbols s WHERE s.symbol = NEW.symbol;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown symbol: %', NEW.symbol USING ERRCODE = 'check_violation';
	END IF;
	IF r.status IS DISTINCT FROM 'TRADING' THEN
		RAISE EXCEPTION 'symbol % is not trading (status %)', NEW.symbol, r.status USING ERRCODE = 'check_violation';
	END IF;
	IF NEW.side IS NULL OR NEW.side NOT IN ('BUY', 'SELL') THEN
		RAISE EXCEPTION 'invalid side: %', NEW.side USING ERRCODE = 'check_violation';
	END IF;
	IF NEW.quantity IS NULL OR NEW.quantity <= 0 THEN
		RAISE EXCEPTION 'quantity must be > 0: %', NEW.quantity USING ERRCODE = 'check_violation';
	END IF;
	-- LOT_SIZE
	IF r.min_qty > 0 AND NEW.quantity < r.min_qty THEN
		RAISE EXCEPTION 'LOT_SIZE: quantity % < min %', NEW.quantity, r.min_qty USING ERRCODE = 'check_violation';
	END IF;
	IF r.max_qty > 0 AND NEW.quantity > r.max_qty THEN
		RAISE EXCEPTION 'LOT_SIZE: quantity % > max %', NEW.quantity, r.max_qty USING ERRCODE = 'check_violation';
	END IF;
	IF r.step_size > 0 AND (NEW.quantity - r.min_qty) % r.step_size <> 0 THEN
		RAISE EXCEPTION 'LOT_SIZE: quantity % not a multiple of step %', NEW.quantity, r.step_size USING ERRCODE = 'check_violation';
	END IF;
	IF NEW.price IS NOT NULL THEN
		IF NEW.price <= 0 THEN
			RAISE EXCEPTION 'price must be > 0: %', NEW.price USING ERRCODE = 'check_violation';
		END IF;
		-- PRICE_FILTER
		IF r.min_price > 0 AND NEW.price < r.min_price THEN
			RAISE EXCEPTION 'PRICE_FILTER: price % < min %', NEW.price, r.min_price USING ERRCODE = 'check_violation';
		END IF;
		IF r.max_price > 0 AND NEW.price > r.max_price THEN
			RAISE EXCEPTION 'PRICE_FILTER: price % > max %', NEW.price, r.max_price USING ERRCODE = 'check_violation';
		END IF;
		IF r.tick_size > 0 AND (NEW.price - r.min_price) % r.tick_size <> 0 THEN
			RAISE EXCEPTION 'PRICE_FILTER: price % not a multiple of tick %', NEW.price, r.tick_size USING ERRCODE = 'check_violation';
		END IF;
		-- NOTIONAL
		notional := NEW.price * NEW.quantity;
		IF r.min_notional > 0 AND notional < r.min_notional THEN
			RAISE EXCEPTION 'NOTIONAL: % < min %', notional, r.min_notional USING ERRCODE = 'check_violation';
		END IF;
		IF r.max_notional > 0 AND notional > r.max_notional THEN
			RAISE EXCEPTION 'NOTIONAL: % > max %', notional, r.max_notional USING ERRCODE = 'check_violation';
		END IF;
	END IF;
	RETURN NEW;
END
$f$;
CREATE TRIGGER orders_plpgsql_check BEFORE INSERT OR UPDATE ON orders_plpgsql
	FOR EACH ROW EXECUTE FUNCTION bench_check_order();
SELECT trading_guard.protect_orders('orders_tg');
ANALYZE trading_guard.symbols;
EOF
} >"$BDIR/setup.sql"
psql_db -f "$BDIR/setup.sql" >"$BDIR/setup.out" ||
	{ cat "$BDIR/setup.out" >&2; tg_die "setup failed"; }

n=$(psql_db -c "SELECT count(*) FROM trading_guard.symbols WHERE status = 'TRADING'")
[ "$n" -eq "$NSYM" ] || tg_die "registry holds $n TRADING symbols after load_exchange_info, expected $NSYM"

# ---------------------------------------------------------------------------
# A. insert TPS
# ---------------------------------------------------------------------------
SYM_ARRAY=$(printf "'%sUSDT'," "${BASES[@]}")
SYM_ARRAY="ARRAY[${SYM_ARRAY%,}]"
for v in "${CG_VARIANTS[@]}"; do
	# quantity 0.001..1 (multiple of 0.001), price 5000.00..100000.00 (multiple
	# of 0.01): notional 5..100000, every filter passes.
	cat >"$BDIR/insert_$v.sql" <<EOF
\\set s random(1, $NSYM)
\\set b random(0, 1)
\\set q random(1, 1000)
\\set p random(500000, 10000000)
INSERT INTO orders_$v (symbol, side, quantity, price) VALUES ((${SYM_ARRAY})[:s], CASE WHEN :b = 0 THEN 'BUY' ELSE 'SELL' END, :q * 0.001, :p * 0.01);
EOF
done

PGBENCH_OPTS=(-n -M simple -c 2 -j 2)

# Run pgbench for variant $1 with extra options; output to stdout.  Fails
# (with pgbench's output on stderr) when pgbench fails or a transaction failed.
run_pgbench() {
	local v=$1 out rc=0 failed
	shift
	out=$(tg_as_runner "$BIN/pgbench" "${PGBENCH_OPTS[@]}" "$@" -f "$BDIR/insert_$v.sql" \
		-h "$BDIR" -p "$PORT" -U "${PGB_USER[$v]:-postgres}" "$DB" 2>&1) || rc=$?
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	if [ "$rc" -ne 0 ] || [ "${failed:-0}" != 0 ] || grep -q 'aborted' <<<"$out"; then
		printf '%s\n' "$out" >&2
		tg_die "pgbench on variant '${LABEL[$v]}' failed (exit $rc, failed transactions ${failed:-?})"
	fi
	printf '%s\n' "$out"
}

# CPU time of the server's backends, in clock ticks: the postmaster's
# cutime + cstime, to which every backend's CPU time is added when it exits
# and is reaped.  Unlike TPS it hardly moves with the load of other
# processes on a shared machine.
PM_PID=$(head -n 1 "$PGDATA/postmaster.pid")
pm_children() { pm_child_pids "$PM_PID" | wc -w; }
# Wait until the postmaster has reaped every backend beyond $1 children.
wait_reaped() {
	local i
	for i in $(seq 1 1200); do
		[ "$(pm_children)" -le "$1" ] && return 0
		sleep 0.05
	done
	tg_die "backends of the last pgbench run did not exit"
}

reset_tables() {
	psql_db -c "TRUNCATE orders_plain, orders_check, orders_plpgsql, orders_tg, orders_tglim RESTART IDENTITY" \
		-c "VACUUM ANALYZE orders_plain, orders_check, orders_plpgsql, orders_tg, orders_tglim" \
		-c "CHECKPOINT"
}

# An INSERT that variant $1 must reject; $2 = description, $3 = VALUES list
# (as the role pgbench uses for the variant).
expect_reject() {
	local v=$1 what=$2 vals=$3 err
	if err=$(PSQL_USER=${PGB_USER[$v]:-postgres} psql_db -c "INSERT INTO orders_$v (symbol, side, quantity, price) VALUES $vals" 2>&1); then
		tg_die "variant '${LABEL[$v]}' ACCEPTED a bad row ($what): $vals"
	fi
	tg_log "  ${LABEL[$v]}: rejects $what: $(head -n 1 <<<"$err")"
}

tg_log "sanity: every variant accepts the pgbench rows and rejects bad ones"
reset_tables
for v in "${CG_VARIANTS[@]}"; do
	run_pgbench "$v" -t 250 >"$BDIR/warmup_$v.out"
	read -r n ns nq < <(psql_db -F ' ' -c "SELECT count(*), count(DISTINCT symbol), count(DISTINCT quantity) FROM orders_$v")
	[ "$n" -eq 500 ] || tg_die "variant '${LABEL[$v]}': warm-up inserted $n rows, expected 500"
	if [ "$ns" -le 1 ] || [ "$nq" -le 1 ]; then tg_die "variant '${LABEL[$v]}': warm-up rows do not vary"; fi
	tg_log "  ${LABEL[$v]}: accepted 500/500 warm-up orders ($ns symbols, $nq quantities)"
done
# a good row inserted by hand, as a reference for the bad ones below
for v in "${VARIANTS[@]}"; do
	psql_db -c "INSERT INTO orders_$v (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.01, 60000.01), ('ETHUSDT', 'SELL', 1, NULL)"
done
for v in check plpgsql tg; do
	expect_reject "$v" "quantity 0" "('BTCUSDT', 'BUY', 0, 60000)"
	expect_reject "$v" "bad symbol format" "('btcusdt', 'BUY', 0.01, 60000)"
	expect_reject "$v" "bad side" "('BTCUSDT', 'HOLD', 0.01, 60000)"
	expect_reject "$v" "negative price" "('BTCUSDT', 'BUY', 0.01, -1)"
done
for v in plpgsql tg; do
	expect_reject "$v" "unknown symbol" "('ZZZZUSDT', 'BUY', 0.01, 60000)"
	expect_reject "$v" "symbol not TRADING" "('HALTUSDT', 'BUY', 0.01, 60000)"
	expect_reject "$v" "LOT_SIZE step" "('BTCUSDT', 'BUY', 0.000015, 60000)"
	expect_reject "$v" "LOT_SIZE max" "('BTCUSDT', 'BUY', 9001, 100)"
	expect_reject "$v" "PRICE_FILTER tick" "('BTCUSDT', 'BUY', 0.01, 60000.005)"
	expect_reject "$v" "NOTIONAL min" "('BTCUSDT', 'BUY', 0.001, 100)"
	expect_reject "$v" "NOTIONAL max" "('BTCUSDT', 'BUY', 9000, 1001)"
done

# The limits variant: pgbench's role is the one with the limits, and every
# one of its orders went through all four of them.
# admitted orders of LIMIT_ROLE and the number of its limit rows in limit_usage
limit_admitted() {
	psql_db -F ' ' -c "SELECT coalesce(max(admitted), 0), count(*) FROM trading_guard.limit_usage
		WHERE subject_kind = 'order' AND role = '$LIMIT_ROLE'::regrole AND account IS NULL"
}
read -r n nlim < <(limit_admitted)
[ "$nlim" -eq 4 ] || tg_die "limit_usage shows $nlim limits of $LIMIT_ROLE, expected 4"
[ "$n" -eq 500 ] || tg_die "the limits of $LIMIT_ROLE admitted $n orders of the warm-up, expected 500"
n=$(psql_db -c "SELECT count(*) FROM trading_guard.limit_usage WHERE role = 'postgres'::regrole")
[ "$n" -eq 0 ] || tg_die "limit_usage shows limits of postgres: variant '${LABEL[tg]}' would not be 'without limits'"
tg_log "  ${LABEL[tglim]}: the limits of $LIMIT_ROLE (pgbench's role) admitted the 500 warm-up orders; none refused"
PSQL_USER=$LIMIT_ROLE psql_db -c "INSERT INTO orders_tglim (symbol, side, quantity, price) VALUES ('BTCUSDT', 'BUY', 0.01, 60000.01)"
err=$(PSQL_USER=$LIMIT_ROLE psql_db -c "\\set VERBOSITY verbose" -c "INSERT INTO orders_tglim (symbol, side, quantity, price) VALUES ('ETHUSDT', 'SELL', 1, NULL)" 2>&1) &&
	tg_die "variant '${LABEL[tglim]}' ACCEPTED a market order (its notional limits cannot check it)"
grep -q 'TG106' <<<"$err" || { printf '%s\n' "$err" >&2; tg_die "a market order of $LIMIT_ROLE was refused, but not with TG106"; }
tg_log "  ${LABEL[tglim]}: rejects a market order (notional limits): $(grep -m 1 ERROR <<<"$err")"



declare -A TPS_RUNS=() CPU_RUNS=()
tg_log "insert TPS: $ROUNDS interleaved rounds x ${#VARIANTS[@]} variants x ${BENCH_SECONDS}s"
for r in $(seq 1 "$ROUNDS"); do
	for v in $(rotated "$r" "${VARIANTS[@]}"); do
		reset_tables
		n0=$(pm_children)
		t0=$(reaped_ticks "$PM_PID")
		out=$(run_pgbench "$v" -T "$BENCH_SECONDS")
		wait_reaped "$n0"
		t1=$(reaped_ticks "$PM_PID")
		tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' <<<"$out")
		txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
		[ -n "$tps" ] && [ -n "$txns" ] || { printf '%s\n' "$out" >&2; tg_die "no TPS in pgbench output"; }
		tps=$(printf '%.0f' "$tps")
		cpu=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$txns" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
		TPS_RUNS[$v]="${TPS_RUNS[$v]:-} $tps"
		CPU_RUNS[$v]="${CPU_RUNS[$v]:-} $cpu"
		tg_log "  round $r/$ROUNDS ${LABEL[$v]}: $tps TPS, $cpu µs backend CPU per transaction"
	done
done
reset_tables

# ---------------------------------------------------------------------------
# B. ns per evaluation: is_valid_symbol vs regex
# ---------------------------------------------------------------------------
tg_log "building the symbol table ($EVAL_ROWS rows)"
psql_db <<EOF
CREATE TABLE syms (id int, symbol text);
-- ~70 % valid USDT pairs; the rest lower case, other quote assets, a dash,
-- a trailing blank, a base too short or too long.
INSERT INTO syms
SELECT i,
	CASE WHEN i % 10 < 7 THEN base || 'USDT'
	     WHEN i % 10 = 7 THEN lower(base) || 'usdt'
	     WHEN i % 10 = 8 THEN base || (ARRAY['BTC', 'BUSD', 'ETH', 'FDUSD', 'TRY'])[1 + (i / 10) % 5]
	     ELSE (ARRAY[base || '-USDT', substr(base, 1, 1) || 'USDT', repeat(base, 4) || 'USDT',
	                 base || 'USDT ', 'USDT', base || 'USDC'])[1 + (i / 10) % 6]
	END
FROM generate_series(1, $EVAL_ROWS) AS i,
	LATERAL (SELECT (ARRAY['BTC','ETH','BNB','SOL','XRP','ADA','DOGE','AVAX','DOT','LINK','LTC','TRX',
	                       'ATOM','UNI','NEAR','APT','ARB','OP','1INCH','PEPE','SHIB','FET','INJ','SUI',
	                       'WLD','1000SATS','RNDR','FLOKI','TIA','SEI','JUP','WIF','ORDI','BONK','STX',
	                       'IMX','AAVE','MKR','LDO','GALA'])[1 + (hashint4(i)::bigint + 2147483648) % 40] AS base) AS b;
VACUUM (FREEZE, ANALYZE) syms;
CREATE FUNCTION bench_ms(q text) RETURNS float8 LANGUAGE plpgsql AS \$f\$
DECLARE
	t0 timestamptz;
	n bigint;
BEGIN
	t0 := clock_timestamp();
	EXECUTE q INTO n;
	RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END
\$f\$;
EOF

E_BASE="symbol IS NOT NULL"
E_REGEX="symbol ~ '^[A-Z0-9]{2,10}USDT\$'"
E_TG="trading_guard.is_valid_symbol(symbol)"
read -r n_rows n_regex n_tg < <(psql_db -F ' ' -c "SELECT count(*), count(*) FILTER (WHERE $E_REGEX), count(*) FILTER (WHERE $E_TG) FROM syms")
[ "$n_rows" -eq "$EVAL_ROWS" ] || tg_die "syms has $n_rows rows, expected $EVAL_ROWS"
# shellcheck disable=SC2015
[ "$n_regex" -gt 0 ] && [ "$n_regex" -lt "$n_rows" ] ||
	tg_die "regex matches $n_regex of $n_rows rows: not a mix"
EVAL_NOTE="both expressions accept the same $n_regex of $n_rows rows"
if [ "$n_tg" -ne "$n_regex" ]; then
	EVAL_NOTE="NOTE: the expressions disagree: regex accepts $n_regex, is_valid_symbol accepts $n_tg of $n_rows rows"
	tg_log "$EVAL_NOTE"
	psql_db -c "SELECT symbol, symbol ~ '^[A-Z0-9]{2,10}USDT\$' AS regex, trading_guard.is_valid_symbol(symbol) AS tg
		FROM (SELECT DISTINCT symbol FROM syms) s
		WHERE (symbol ~ '^[A-Z0-9]{2,10}USDT\$') IS DISTINCT FROM trading_guard.is_valid_symbol(symbol) LIMIT 10" >&2
fi

min_of() { printf '%s\n' "$@" | sort -g | head -n 1; }
timed() { # expression -> ms
	psql_db -c "SELECT bench_ms(\$q\$SELECT count(*) FILTER (WHERE $1) FROM syms\$q\$)"
}
# warm the cache and the regex cache
for e in "$E_BASE" "$E_REGEX" "$E_TG"; do timed "$e" >/dev/null; done

# Each round times baseline, regex and is_valid_symbol EVAL_REPS times,
# interleaved, and keeps each one's fastest time (load from other processes
# only ever adds time); ns/eval = (expression - baseline) / rows.
REGEX_RUNS="" TG_RUNS=""
tg_log "ns/eval: $EVAL_ROUNDS interleaved rounds (baseline, regex, is_valid_symbol; best of $EVAL_REPS each)"
for r in $(seq 1 "$EVAL_ROUNDS"); do
	tb="" tr="" tt=""
	for _ in $(seq 1 "$EVAL_REPS"); do
		tb="$tb $(timed "$E_BASE")"
		tr="$tr $(timed "$E_REGEX")"
		tt="$tt $(timed "$E_TG")"
	done
	# shellcheck disable=SC2086
	tb=$(min_of $tb) tr=$(min_of $tr) tt=$(min_of $tt)
	nr=$(awk -v a="$tr" -v b="$tb" -v n="$EVAL_ROWS" 'BEGIN { printf "%.2f", (a - b) * 1e6 / n }')
	nt=$(awk -v a="$tt" -v b="$tb" -v n="$EVAL_ROWS" 'BEGIN { printf "%.2f", (a - b) * 1e6 / n }')
	REGEX_RUNS="$REGEX_RUNS $nr"
	TG_RUNS="$TG_RUNS $nt"
	tg_log "  round $r/$EVAL_ROUNDS: baseline ${tb} ms, regex ${tr} ms (${nr} ns), is_valid_symbol ${tt} ms (${nt} ns)"
done

# ---------------------------------------------------------------------------
# C. CPU cost per row: one bulk INSERT ... SELECT per variant
# ---------------------------------------------------------------------------
# pgbench TPS moves by 10-20 % between runs on a shared machine, more than
# the whole cost of a check, so this part measures that cost directly: the
# same BULK_ROWS valid orders inserted in one statement into each table,
# interleaved, best of EVAL_REPS per round, median of ROUNDS rounds.
tg_log "bulk insert: $ROUNDS interleaved rounds x ${#VARIANTS[@]} variants x $BULK_ROWS rows"
psql_db <<EOF
CREATE TABLE bulk_src AS
SELECT syms[1 + g % cardinality(syms)] AS symbol,
       CASE WHEN g % 2 = 0 THEN 'BUY' ELSE 'SELL' END AS side,
       (1 + g % 1000) * 0.001 AS quantity,
       (1000000 + g % 1000) * 0.01 AS price
  FROM generate_series(1, $BULK_ROWS) AS g,
       (SELECT array_agg(symbol ORDER BY symbol) AS syms
          FROM trading_guard.symbols WHERE status = 'TRADING') AS s;
VACUUM ANALYZE bulk_src;
EOF
bulk_ms() { # variant -> ms for inserting bulk_src into its table
	psql_db -c "TRUNCATE orders_$1" >/dev/null
	psql_db -c "SELECT bench_ms(\$q\$WITH i AS (INSERT INTO orders_$1 (symbol, side, quantity, price) SELECT symbol, side, quantity, price FROM bulk_src RETURNING 1) SELECT count(*) FROM i\$q\$)"
}
for v in "${VARIANTS[@]}"; do bulk_ms "$v" >/dev/null; done	# warm up
declare -A BULK_RUNS=()
for r in $(seq 1 "$ROUNDS"); do
	for v in $(rotated "$r" "${VARIANTS[@]}"); do
		t=""
		for _ in $(seq 1 "$EVAL_REPS"); do t="$t $(bulk_ms "$v")"; done
		# shellcheck disable=SC2086
		ns=$(awk -v ms="$(min_of $t)" -v n="$BULK_ROWS" 'BEGIN { printf "%.0f", ms * 1e6 / n }')
		BULK_RUNS[$v]="${BULK_RUNS[$v]:-} $ns"
		tg_log "  round $r/$ROUNDS ${LABEL[$v]}: $ns ns/row"
	done
done
reset_tables

# ---------------------------------------------------------------------------
# D. instructions per transaction, under callgrind
# ---------------------------------------------------------------------------
# Instruction counts do not move with the machine's other load.  The server
# is restarted under valgrind --tool=callgrind; for each variant a one-client
# pgbench runs CG_SMALL and then CG_LARGE transactions (fixed random seed),
# and the difference of the two backends' totals divided by the difference
# of the transaction counts is the cost of one transaction, connection
# start-up excluded.
CG_DIR=$BDIR/callgrind
tg_as_runner mkdir -p "$CG_DIR"
tg_log "instructions per transaction: restarting the server under callgrind"
tg_as_runner "$BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
tg_as_runner valgrind --tool=callgrind --trace-children=yes \
	--callgrind-out-file="$CG_DIR/cg.%p" \
	"$BIN/postgres" -D "$PGDATA" >"$BDIR/callgrind-server.log" 2>&1 &
CG_SERVER=$!
for _ in $(seq 1 240); do
	tg_as_runner "$BIN/pg_isready" -q -h "$BDIR" -p "$PORT" && break
	kill -0 "$CG_SERVER" 2>/dev/null || { cat "$BDIR/callgrind-server.log" >&2; tg_die "the server did not start under callgrind"; }
	sleep 0.5
done
tg_as_runner "$BIN/pg_isready" -q -h "$BDIR" -p "$PORT" || tg_die "the server under callgrind is not ready"
PM_PID=$(head -n 1 "$PGDATA/postmaster.pid")

# Instructions executed by the backend of one pgbench run of variant $1 with
# $2 transactions.  Callgrind writes a backend's file when it exits; pgbench
# also opens a short set-up connection, so the busiest new backend is the
# one that ran the transactions.  Its file is kept as $CG_DIR/keep.$1.$2
# (the last round's, for the breakdown of the trigger's cost below).
#
# Under valgrind a backend takes a while to exit (it writes its file), so
# one may still be exiting when the next run starts: a count of children
# taken before a run would then include it, and the run would be taken as
# done as soon as that one went, while its own backend was still exiting
# (and the earlier backend's file taken for this run's).  So the children
# present before the run are listed, the run is done when every child not
# in that list has gone, and only the files of pids not in it count.  The
# files are named by pid, and pids are reused (pid_max may be 32768 on a
# busy machine): the files of earlier runs are removed first.
cg_run() {
	local v=$1 n=$2 before new f pid i
	find "$CG_DIR" -maxdepth 1 -name 'cg.*' -delete
	before=" $(pm_child_pids "$PM_PID" | tr '\n' ' ') "
	tg_as_runner "$BIN/pgbench" -n -M simple -c 1 -t "$n" --random-seed=1 \
		-f "$BDIR/insert_$v.sql" -h "$BDIR" -p "$PORT" -U "${PGB_USER[$v]:-postgres}" "$DB" >/dev/null 2>&1 ||
		tg_die "pgbench under callgrind failed for variant '${LABEL[$v]}'"
	# a reaped backend has written its file completely
	for i in $(seq 1 1200); do
		new=0
		for pid in $(pm_child_pids "$PM_PID"); do
			[[ $before == *" $pid "* ]] || new=1
		done
		[ "$new" -eq 0 ] && break
		[ "$i" -lt 1200 ] || tg_die "the backends of the pgbench run under callgrind did not exit"
		sleep 0.05
	done
	new=""
	for f in "$CG_DIR"/cg.*; do
		[ -f "$f" ] || continue
		[[ $before == *" ${f##*.} "* ]] || new="$new $f"
	done
	[ -n "$new" ] || tg_die "no callgrind output for the pgbench backend of variant '${LABEL[$v]}'"
	# shellcheck disable=SC2086
	read -r total file < <(awk '/^totals:/ { print $2, FILENAME }' $new | sort -n | tail -n 1)
	cp "$file" "$CG_DIR/keep.$v.$n"
	echo "$total"
}
cg_run plain "$CG_SMALL" >/dev/null	# warm up
read -r LIM_ADMITTED_D0 _ < <(limit_admitted)
declare -A CG_RUNS=()
for r in $(seq 1 3); do
	for v in $(rotated "$r" "${CG_VARIANTS[@]}"); do
		small=$(cg_run "$v" "$CG_SMALL")
		large=$(cg_run "$v" "$CG_LARGE")
		per=$(awk -v a="$large" -v b="$small" -v n=$((CG_LARGE - CG_SMALL)) 'BEGIN { printf "%.0f", (a - b) / n }')
		CG_RUNS[$v]="${CG_RUNS[$v]:-} $per"
		tg_log "  round $r/3 ${LABEL[$v]}: $per instructions per transaction"
	done
done
# every transaction of the limits variant went through its limits
read -r n _ < <(limit_admitted)
[ $((n - LIM_ADMITTED_D0)) -eq $((3 * (CG_SMALL + CG_LARGE))) ] ||
	tg_die "the limits of $LIMIT_ROLE admitted $((n - LIM_ADMITTED_D0)) orders under callgrind, expected $((3 * (CG_SMALL + CG_LARGE)))"
LIM_REFUSED=$(psql_db -c "SELECT sum(refused) FILTER (WHERE limit_name <> 'max_order_notional') FROM trading_guard.limit_usage WHERE role = '$LIMIT_ROLE'::regrole")
[ "$LIM_REFUSED" -eq 0 ] || tg_die "the limits of $LIMIT_ROLE refused $LIM_REFUSED orders"
tg_as_runner "$BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 300 stop >/dev/null
wait "$CG_SERVER" 2>/dev/null || true

if [ -n "${CG_KEEP:-}" ]; then
	mkdir -p "$CG_KEEP"
	cp "$CG_DIR"/keep.* "$CG_KEEP"/
	tg_log "callgrind files of the last round copied to $CG_KEEP"
fi

# Where the trigger's instructions go, per transaction: what a function and
# each of its callees cost (inclusive, from that function's calls only:
# callgrind_annotate --tree=calling) in the last round's CG_LARGE run minus
# its CG_SMALL run, over the difference of the transactions, so that the
# first order's cache loads are left out, as in the totals.
# "name<TAB>Ir" for function $2 in callgrind file $1: "(total)", its
# callees, and "(self)" (total minus the callees).  Code inlined from
# headers is listed as a function of its own (e.g. string_fortified.h:fn):
# every entry of the name counts.  callgrind_annotate runs in / because it
# lists a function once more under a relative file name when it can find
# the source from where it runs.
cg_callees() {
	(cd / && callgrind_annotate --inclusive=yes --tree=calling --threshold=100 --auto=no "$1" 2>/dev/null) | awk -v fn="$2" '
		function name(line) {
			sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +[*>] +/, "", line)
			sub(/ \[[^]]*\]$/, "", line)
			sub(/ \([0-9,]+x\)$/, "", line)
			sub(/^.*:/, "", line)
			return line
		}
		/^ *[0-9][0-9,]* +\( *[0-9.]+%\) +\* / { ir = $1; gsub(",", "", ir); inblock = (name($0) == fn); if (inblock) { total += ir }; next }
		/^ *[0-9][0-9,]* +\( *[0-9.]+%\) +> / { if (inblock) { ir = $1; gsub(",", "", ir); c[name($0)] += ir; sum += ir }; next }
		/^ *[0-9][0-9,]* +\( *[0-9.]+%\) +< / { next }
		/^$/ { inblock = 0 }
		END {
			printf "(total)\t%d\n", total
			for (k in c) printf "%s\t%d\n", k, c[k]
			printf "(self)\t%d\n", total - sum
		}'
}
# "name<TAB>instructions per transaction" of function $2 in variant $1's
# runs, largest first (absent in one run: 0 there)
cg_callees_per_txn() {
	join -t "$(printf '\t')" -a 1 -a 2 -e 0 -o 0,1.2,2.2 \
		<(cg_callees "$CG_DIR/keep.$1.$CG_LARGE" "$2" | sort -t "$(printf '\t')" -k 1,1) \
		<(cg_callees "$CG_DIR/keep.$1.$CG_SMALL" "$2" | sort -t "$(printf '\t')" -k 1,1) |
		awk -F '\t' -v n=$((CG_LARGE - CG_SMALL)) '{ printf "%s\t%.0f\n", $1, ($2 - $3) / n }' | sort -t "$(printf '\t')" -k 2,2nr
}
declare -A CG_TREE=() CG_FIRST=()
if command -v callgrind_annotate >/dev/null; then
	for v in tg tglim; do
		CG_TREE[$v.trigger]=$(cg_callees_per_txn "$v" tg_protect_orders_trigger)
	done
	CG_TREE[tglim.limits]=$(cg_callees_per_txn tglim tg_limits_check_order)
	CG_TREE[tglim.halts]=$(cg_callees_per_txn tglim tg_halt_check_order)
	# once per session: the first order's cost beyond a later one's (the
	# caches of trading_halts and order_limits are read then)
	for v in tg tglim; do
		for fn in tg_halt_check_order tg_limits_check_order; do
			CG_FIRST[$v.$fn]=$(awk -F '\t' -v n="$CG_SMALL" -v per="$(cg_callees_per_txn "$v" "$fn" | awk -F '\t' '$1 == "(total)" { print $2 }')" \
				'$1 == "(total)" { printf "%.0f", $2 - n * per }' <(cg_callees "$CG_DIR/keep.$v.$CG_SMALL" "$fn"))
		done
	done
fi
tg_as_runner "$BIN/pg_ctl" -D "$PGDATA" -l "$BDIR/server.log" -w -t 120 start >/dev/null ||
	tg_die "server did not restart"

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
PG_VERSION=$(psql_db -c "SHOW server_version")
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)

declare -A TPS_MED=()
for v in "${VARIANTS[@]}"; do
	# shellcheck disable=SC2086
	TPS_MED[$v]=$(median ${TPS_RUNS[$v]})
done
# shellcheck disable=SC2086
REGEX_MED=$(median $REGEX_RUNS)
# shellcheck disable=SC2086
TG_MED=$(median $TG_RUNS)

tg_ratio=$(awk -v a="${TPS_MED[tg]}" -v b="${TPS_MED[plain]}" 'BEGIN { printf "%.3f", a / b }')
tg_ok=$(awk -v r="$tg_ratio" 'BEGIN { print (r >= 0.97) ? "PASS" : "MISS" }')
spread_txt=""
for v in "${VARIANTS[@]}"; do
	# shellcheck disable=SC2086
	sp=$(printf '%s\n' ${TPS_RUNS[$v]} | sort -g | awk -v m="${TPS_MED[$v]}" 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f", (hi - lo) * 100 / m }')
	spread_txt="$spread_txt${spread_txt:+, }${LABEL[$v]} ${sp} %"
done
# for information: median of the per-round ratios (same round, so less
# sensitive to slow drifts of the machine's load)
read -ra _plain <<<"${TPS_RUNS[plain]}"
read -ra _tg <<<"${TPS_RUNS[tg]}"
_paired=()
for i in "${!_plain[@]}"; do
	_paired+=("$(awk -v a="${_tg[$i]}" -v b="${_plain[$i]}" 'BEGIN { printf "%.3f", a / b }')")
done
tg_paired=$(printf '%.3f' "$(median "${_paired[@]}")")
# part D: protect_orders with limits vs without
# shellcheck disable=SC2086
lim_ratio=$(ratio "$(median ${CG_RUNS[tglim]})" "$(median ${CG_RUNS[tg]})")
# shellcheck disable=SC2086
lim_extra=$(awk -v a="$(median ${CG_RUNS[tglim]})" -v b="$(median ${CG_RUNS[tg]})" 'BEGIN { print a - b }')
lim_ok=$(awk -v r="$lim_ratio" 'BEGIN { print (r <= 1.03) ? "PASS" : "MISS" }')
read -ra _t <<<"${CG_RUNS[tg]}"
read -ra _l <<<"${CG_RUNS[tglim]}"
_paired=()
for i in "${!_t[@]}"; do _paired+=("$(ratio "${_l[$i]}" "${_t[$i]}")"); done
lim_paired=$(printf '%.3f' "$(median "${_paired[@]}")")
if awk -v t="$TG_MED" 'BEGIN { exit !(t > 0) }'; then
	speedup=$(awk -v a="$REGEX_MED" -v b="$TG_MED" 'BEGIN { printf "%.1f", a / b }')
	speedup_ok=$(awk -v s="$speedup" 'BEGIN { print (s >= 8) ? "PASS" : "MISS" }')
	speedup_txt="${speedup}×"
else
	speedup_txt="∞ (is_valid_symbol cost below measurement noise)"
	speedup_ok="PASS"
fi

{
	echo "### Validation overhead"
	echo
	echo "Command: \`$CMD\`  "
	echo "Machine: $(nproc) CPUs ($CPU), Linux $(uname -r), PostgreSQL $PG_VERSION  "
	echo "Server: fsync on, synchronous_commit off, shared_buffers 512MB, autovacuum off, jit off, max_parallel_workers_per_gather 0  "
	echo "Insert load: \`pgbench ${PGBENCH_OPTS[*]} -T $BENCH_SECONDS\`, one valid order per transaction" \
		"(random symbol of $NSYM, side, quantity, price), $ROUNDS interleaved rounds (order rotated each round), tables truncated + CHECKPOINT before each run"
	echo
	echo "| variant | median TPS | runs | ratio vs no check | backend CPU µs/txn (median) | CPU ratio vs no check |"
	echo "|---|---:|---|---:|---:|---:|"
	for v in "${VARIANTS[@]}"; do
		ratio=$(awk -v a="${TPS_MED[$v]}" -v b="${TPS_MED[plain]}" 'BEGIN { printf "%.3f", a / b }')
		# shellcheck disable=SC2086
		cm=$(median ${CPU_RUNS[$v]})
		# shellcheck disable=SC2086
		cratio=$(awk -v a="$cm" -v b="$(median ${CPU_RUNS[plain]})" 'BEGIN { printf "%.3f", a / b }')
		printf '| %s | %.0f | %s | %s× | %.1f | %s× |\n' "${LABEL[$v]}" "${TPS_MED[$v]}" \
			"$(join_runs "${TPS_RUNS[$v]}")" "$ratio" "$cm" "$cratio"
	done
	echo
	echo "Run-to-run spread ((max - min) / median) of the same variant: $spread_txt  "
	echo "Backend CPU per transaction: CPU time of the backends that served pgbench (from the postmaster's cutime + cstime, $CLK_TCK ticks/s) divided by the transactions: what each check costs the server. It moves less than TPS with the machine's other load, but it does move (shared CPU caches); part D does not."
	echo
	echo "ns per evaluation over $EVAL_ROWS stored symbols (\`count(*) FILTER (WHERE expr)\` minus" \
		"\`count(*) FILTER (WHERE symbol IS NOT NULL)\`), $EVAL_ROUNDS interleaved rounds, best of $EVAL_REPS timings per round; $EVAL_NOTE"
	echo
	echo "| expression | median ns/eval | runs | speed-up (regex ns ÷ ns) |"
	echo "|---|---:|---|---:|"
	printf "| \`%s\` | %.1f | %s | 1.0× |\n" "$E_REGEX" "$REGEX_MED" "$(join_runs "$REGEX_RUNS")"
	printf "| \`%s\` | %.1f | %s | %s |\n" "$E_TG" "$TG_MED" "$(join_runs "$TG_RUNS")" "$speedup_txt"
	echo
	echo "CPU cost per row: one \`INSERT ... SELECT\` of $BULK_ROWS valid orders per variant, $ROUNDS interleaved rounds, best of $EVAL_REPS per round"
	echo
	echo "| variant | median ns/row | runs | cost of the check (ns/row) |"
	echo "|---|---:|---|---:|"
	for v in "${VARIANTS[@]}"; do
		# shellcheck disable=SC2086
		bm=$(median ${BULK_RUNS[$v]})
		# shellcheck disable=SC2086
		extra=$(awk -v a="$bm" -v b="$(median ${BULK_RUNS[plain]})" 'BEGIN { printf "%+.0f", a - b }')
		printf '| %s | %.0f | %s | %s |\n' "${LABEL[$v]}" "$bm" "$(join_runs "${BULK_RUNS[$v]}")" "$extra"
	done
	echo
	echo "Instructions per one-order transaction (callgrind, one pgbench client, $CG_LARGE minus $CG_SMALL transactions, 3 rotated rounds; machine load does not change these)." \
		"\"${LABEL[tglim]}\": the trigger on its own table, pgbench connected as $LIMIT_ROLE (a superuser, like postgres), which has the order limit \`$LIMIT_ARGS\`: never reached here, so every order is checked against and counted in all four limits (limit_usage: $((3 * (CG_SMALL + CG_LARGE))) orders admitted under callgrind, none refused). In \"${LABEL[tg]}\" pgbench's role (postgres) has no limit; the server has that one limit row all along."
	echo
	echo "| variant | median instructions/txn | runs | ratio vs no check | extra instructions/txn | ratio vs protect_orders without limits |"
	echo "|---|---:|---|---:|---:|---:|"
	# shellcheck disable=SC2086
	ib=$(median ${CG_RUNS[plain]})
	# shellcheck disable=SC2086
	it=$(median ${CG_RUNS[tg]})
	for v in "${CG_VARIANTS[@]}"; do
		# shellcheck disable=SC2086
		im=$(median ${CG_RUNS[$v]})
		printf '| %s | %.0f | %s | %s× | %+.0f | %s× |\n' "${LABEL[$v]}" "$im" "$(join_runs "${CG_RUNS[$v]}")" \
			"$(ratio "$im" "$ib")" "$(awk -v a="$im" -v b="$ib" 'BEGIN { print a - b }')" "$(ratio "$im" "$it")"
	done
	echo
	echo "Limits: ${LABEL[tglim]} ÷ ${LABEL[tg]} = **${lim_ratio}×** (median of per-round ratios: ${lim_paired}×; $(printf '%+.0f' "$lim_extra") instructions per transaction); target ≤ 1.03×: **$lim_ok**"
	if [ ${#CG_TREE[@]} -gt 0 ]; then
		# per transaction instructions of name $2 in tree $1 (0 if absent)
		tree_ir() { awk -F '\t' -v k="$2" '$1 == k { x = $2 } END { print x + 0 }' <<<"${CG_TREE[$1]}"; }
		echo
		echo "Where the trigger's instructions go: instructions per transaction of tg_protect_orders_trigger and of what it calls (inclusive, from the trigger's calls only: \`callgrind_annotate --inclusive=yes --tree=calling\`), last round's $CG_LARGE-transaction run minus its $CG_SMALL-transaction run over the $((CG_LARGE - CG_SMALL)) transactions in between, so the first order's cache loads are not in it; functions below 10 instructions per transaction in both variants left out"
		echo
		echo "| function (called by the trigger) | ${LABEL[tg]} | ${LABEL[tglim]} | difference |"
		echo "|---|---:|---:|---:|"
		while read -r fn; do
			a=$(tree_ir tg.trigger "$fn") b=$(tree_ir tglim.trigger "$fn")
			[ "${a#-}" -ge 10 ] || [ "${b#-}" -ge 10 ] || continue
			printf '| %s | %s | %s | %+d |\n' "$fn" "$a" "$b" "$((b - a))"
		done < <(printf '%s\n%s\n' "${CG_TREE[tglim.trigger]}" "${CG_TREE[tg.trigger]}" | cut -f 1 | awk 'NF && !seen[$0]++')
		echo
		echo "Inside tg_limits_check_order (${LABEL[tglim]}), per transaction, the same way; \"(self)\": its own instructions and the code the compiler inlined into it (window_add, key_init, order_row_applies, ...)"
		echo
		echo "| function (called by tg_limits_check_order) | instructions/txn |"
		echo "|---|---:|"
		while IFS=$'\t' read -r fn x; do
			[ -n "$fn" ] || continue
			printf '| %s | %s |\n' "$fn" "$x"
		done <<<"${CG_TREE[tglim.limits]}"
		echo
		echo "Inside tg_halt_check_order (${LABEL[tglim]}, no halt in force), per transaction: $(tr '\t\n' '=,' <<<"${CG_TREE[tglim.halts]}" | sed 's/,$//; s/,/, /g').  "
		echo "(The trigger's line for tg_limits_check_order leaves out the code callgrind shows apart as inlined from a header, string_fortified.h, which the table of tg_limits_check_order counts in its total and self.)  "
		echo "Once per session, on its first order (the caches of trading_halts and order_limits read through SPI; the first order's instructions in these functions beyond a later order's): tg_halt_check_order ${CG_FIRST[tg.tg_halt_check_order]} / ${CG_FIRST[tglim.tg_halt_check_order]}, tg_limits_check_order ${CG_FIRST[tg.tg_limits_check_order]} / ${CG_FIRST[tglim.tg_limits_check_order]} instructions (${LABEL[tg]} / ${LABEL[tglim]}); not in the per-transaction figures above."
	fi
	echo
	echo "| target | measured | result |"
	echo "|---|---:|---|"
	echo "| protect_orders ≥ 0.97× no-check TPS | ${tg_ratio}× (median of per-round ratios: ${tg_paired}×) | $tg_ok |"
	echo "| is_valid_symbol ≥ 8× faster than the regex | $speedup_txt | $speedup_ok |"
	echo "| protect_orders + limits (4 limits, none reached) ≤ 1.03× the instructions per transaction of protect_orders without limits | ${lim_ratio}× (median of per-round ratios: ${lim_paired}×) | $lim_ok |"
	# shellcheck disable=SC2086
	echo "| (for reference) protect_orders instructions per transaction vs no check | $(awk -v a="$(median ${CG_RUNS[tg]})" -v b="$(median ${CG_RUNS[plain]})" 'BEGIN { printf "%.3f", a / b }')× | — |"
	echo
	echo "Wall time: $(( $(date +%s) - T_START )) s"
} >"$BDIR/report.md"

publish_report "$BDIR/report.md" validation
