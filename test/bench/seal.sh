#!/usr/bin/env bash
# test/bench/seal.sh — does sealing keep up, and how fast is verification?
#
#   A. a log of LOG_ROWS audit rows (an audited trades table, one INSERT ...
#      SELECT per million rows, then an UPDATE of UPDATED rows): the time of
#      one seal_audit() over all of it (seal throughput of one sealer), and
#      of verify_audit() (median of VERIFY_ROUNDS), as rows per second;
#   B. history(table, key) on that log: p50/p95 over HISTORY_KEYS random
#      keys that were inserted and updated (sealed rows), and over keys
#      whose rows are not sealed yet: TAIL_ROWS inserts and as many updates
#      written after the seal, worker off (the default, 2 x 2000 rows, is
#      what a 200 ms round sees at 20,000 audited rows a second; history()
#      reads the rows not in the key index from audit_log, so its time grows
#      with that backlog);
#   C. with the worker on (seal_interval = SEAL_INTERVAL ms): the time from
#      the end of a COPY of COPY_ROWS audited rows until seal_status shows
#      no backlog (polled every 20 ms);
#   D. with the worker on: pgbench, 2 clients, simple protocol, one audited
#      insert per transaction for TPS_SECONDS; then the sealing lag of every
#      row written (its batch's sealed_at - its event_time): p50, p99, max.
#   E. bytes per audited row (audit_log heap + indexes, audit_seal) against
#      the trades table's own bytes per row.
#
# Usage (as root or as a user with sudo):
#   test/bench/seal.sh
# Environment:
#   LOG_ROWS=10000000  UPDATED=1000000  VERIFY_ROUNDS=3  HISTORY_KEYS=300  TAIL_ROWS=2000
#   COPY_ROWS=1000000  TPS_SECONDS=20  SEAL_INTERVAL=200
#   PARTS="A B C D E"  BENCH_SKIP_BUILD=1 (do not build/install first)
#
# It creates its own temporary cluster (fsync on, synchronous_commit off,
# autovacuum on, shared_preload_libraries = 'trading_guard', a key ring made
# at run time), removes it at exit, prints a markdown report and writes it
# to test/out/bench-seal.md.  A missed target prints MISS and does not fail
# the script; any real error does.

set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LOG_ROWS=${LOG_ROWS:-10000000}
UPDATED=${UPDATED:-1000000}
VERIFY_ROUNDS=${VERIFY_ROUNDS:-3}
HISTORY_KEYS=${HISTORY_KEYS:-300}
TAIL_ROWS=${TAIL_ROWS:-2000}
COPY_ROWS=${COPY_ROWS:-1000000}
TPS_SECONDS=${TPS_SECONDS:-20}
SEAL_INTERVAL=${SEAL_INTERVAL:-200}
PARTS=${PARTS:-A B C D E}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}

positive_ints LOG_ROWS UPDATED VERIFY_ROUNDS HISTORY_KEYS TAIL_ROWS COPY_ROWS TPS_SECONDS SEAL_INTERVAL
min_rounds VERIFY_ROUNDS
[ "$UPDATED" -le "$LOG_ROWS" ] || tg_die "UPDATED must not exceed LOG_ROWS"
[[ $BENCH_SKIP_BUILD =~ ^[01]$ ]] || tg_die "BENCH_SKIP_BUILD must be 0 or 1"

T_START=$(date +%s)
LOAD_START=$(cut -d ' ' -f 1-3 /proc/loadavg)
CMD="LOG_ROWS=$LOG_ROWS UPDATED=$UPDATED VERIFY_ROUNDS=$VERIFY_ROUNDS HISTORY_KEYS=$HISTORY_KEYS TAIL_ROWS=$TAIL_ROWS COPY_ROWS=$COPY_ROWS TPS_SECONDS=$TPS_SECONDS SEAL_INTERVAL=$SEAL_INTERVAL PARTS=\"$PARTS\" test/bench/seal.sh"

# shellcheck disable=SC2086
tg_ensure_packages $TG_PACKAGES
[ "$BENCH_SKIP_BUILD" = 1 ] || tg_build_install
BIN=$("$PG_CONFIG" --bindir)

BDIR=$(tg_runner_dir tg-bench-seal)
DATA=$BDIR/data
LOG=$BDIR/server.log
PORT=$(tg_free_port 56400)
PM_PID=""

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_server "$DATA"
	if [ "$rc" -ne 0 ] && [ -f "$LOG" ]; then
		echo "---- last lines of the server log ----" >&2
		tail -n 30 "$LOG" >&2 || true
	fi
	[ -f "$DATA/postmaster.pid" ] || rm -rf "$BDIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tg_log "initdb in $DATA (port $PORT)"
tg_as_runner "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C >"$BDIR/initdb.log" 2>&1 ||
	{ cat "$BDIR/initdb.log" >&2; tg_die "initdb failed"; }
# shellcheck disable=SC2016
tg_as_runner bash -c 'umask 077 && { printf "1 "; openssl rand -hex 32; } >"$1"' _ "$DATA/trading_guard.key" ||
	tg_die "could not write the key file"
cat >>"$DATA/postgresql.conf" <<EOF

# --- test/bench/seal.sh ---
port = $PORT
listen_addresses = ''
unix_socket_directories = '$BDIR'
shared_preload_libraries = 'trading_guard'
trading_guard.key_file = 'trading_guard.key'
trading_guard.seal_databases = 'postgres'
trading_guard.seal_interval = 0
trading_guard.digest_interval = 0
fsync = on
synchronous_commit = off
jit = off
shared_buffers = 1GB
work_mem = 64MB
maintenance_work_mem = 512MB
checkpoint_timeout = 30min
max_wal_size = 8GB
EOF
tg_as_runner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 120 start >/dev/null || tg_die "the server did not start"
PM_PID=$(head -n 1 "$DATA/postmaster.pid")

psql_b() {
	tg_as_runner "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BDIR" -p "$PORT" -U postgres -d postgres "$@"
}
set_interval() {
	psql_b -c "ALTER SYSTEM SET trading_guard.seal_interval = $1" -c "SELECT pg_reload_conf()" >/dev/null
	# the worker has taken the setting in when it reports a round (or, for 0, after one more latch wake-up)
	sleep 0.5
}
# milliseconds of one SQL statement, measured inside the server
ms_of() {
	psql_b -c "DO \$\$ DECLARE t timestamptz := clock_timestamp(); BEGIN PERFORM $1; RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t) * 1000, 1); END \$\$" 2>&1 |
		sed -n 's/.*ms=\([0-9.]*\).*/\1/p'
}
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = (dir == "le") ? (v <= t) : (v >= t); print ok ? "met" : "MISS" }'; }

psql_b <<'EOF'
CREATE EXTENSION trading_guard;
CREATE TABLE trades (id bigint PRIMARY KEY, symbol text NOT NULL, side text NOT NULL,
                     quantity numeric NOT NULL, price numeric NOT NULL,
                     status text NOT NULL DEFAULT 'new', created_at timestamptz NOT NULL DEFAULT now());
SELECT trading_guard.enable_audit('trades');
EOF

REPORT=$BDIR/report.md
{
	echo "### Sealing benchmark (test/bench/seal.sh)"
	echo
	echo "Command: \`$CMD\`"
	echo
	echo "| measure | value | target | verdict |"
	echo "|---|---|---|---|"
} >"$REPORT"
row() { echo "| $1 | $2 | $3 | $4 |" >>"$REPORT"; }

if [[ " $PARTS " == *" A "* || " $PARTS " == *" B "* ]]; then
	tg_log "A: writing $LOG_ROWS audited rows and $UPDATED updates"
	done_rows=0
	while [ "$done_rows" -lt "$LOG_ROWS" ]; do
		n=$((LOG_ROWS - done_rows)); [ "$n" -gt 1000000 ] && n=1000000
		psql_b -c "INSERT INTO trades (id, symbol, side, quantity, price)
		           SELECT g, 'BTCUSDT', CASE WHEN g % 2 = 0 THEN 'BUY' ELSE 'SELL' END,
		                  (g % 1000) * 0.001 + 0.001, 50000 + (g % 5000) * 0.01
		             FROM generate_series($((done_rows + 1)), $((done_rows + n))) g"
		done_rows=$((done_rows + n))
	done
	psql_b -c "UPDATE trades SET status = 'filled' WHERE id <= $UPDATED"
	psql_b -c "VACUUM ANALYZE trading_guard.audit_log" -c "CHECKPOINT"
	total=$(psql_b -c "SELECT count(*) FROM trading_guard.audit_log")
	seal_ms=$(ms_of "trading_guard.seal_audit()")
	sealed=$(psql_b -c "SELECT rows_sealed FROM trading_guard.seal_status")
	[ "$sealed" = "$total" ] || tg_die "sealed $sealed of $total rows"
	seal_rate=$(awk -v n="$total" -v ms="$seal_ms" 'BEGIN { printf "%d", n / (ms / 1000) }')
	vs=()
	for _ in $(seq "$VERIFY_ROUNDS"); do
		vs+=("$(ms_of "trading_guard.verify_audit()")")
	done
	[ "$(psql_b -c "SELECT ok FROM trading_guard.verify_audit()")" = t ] || tg_die "verify_audit() is not ok"
	verify_ms=$(median "${vs[@]}")
	verify_rate=$(awk -v n="$total" -v ms="$verify_ms" 'BEGIN { printf "%d", n / (ms / 1000) }')
	row "log size" "$total rows" "" ""
	row "seal_audit() of the whole log" "$seal_ms ms = $seal_rate rows/s" "≥ 5× the highest audited insert rate (see D and the COPY of C)" "see below"
	row "verify_audit() (median of $VERIFY_ROUNDS: $(join_runs "${vs[@]}") ms)" "$verify_rate rows/s" "≥ 500000 rows/s" "$(verdict "$verify_rate" 500000 ge)"
fi

if [[ " $PARTS " == *" B "* ]]; then
	tg_log "B: history() of $HISTORY_KEYS sealed keys and $HISTORY_KEYS unsealed ones"
	max=$(psql_b -c "SELECT max(id) FROM trades")
	psql_b -c "INSERT INTO trades (id, symbol, side, quantity, price)
	           SELECT $max + g, 'ETHUSDT', 'BUY', 1, 2000 FROM generate_series(1, $TAIL_ROWS) g" \
		-c "UPDATE trades SET status = 'filled' WHERE id > $max"
	timings() {
		psql_b <<EOF
CREATE TEMP TABLE t (ms float8);
DO \$\$
DECLARE k bigint; t0 timestamptz; n int;
BEGIN
  FOR i IN 1..$HISTORY_KEYS LOOP
    k := $1;
    t0 := clock_timestamp();
    SELECT count(*) INTO n FROM trading_guard.history('trades', jsonb_build_object('id', k));
    INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
    IF n < 1 THEN RAISE EXCEPTION 'history of % found nothing', k; END IF;
  END LOOP;
END \$\$;
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2) || ' / ' ||
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2) FROM t;
EOF
	}
	h_sealed=$(timings "1 + (random() * ($UPDATED - 1))::bigint")
	h_unsealed=$(timings "$max + 1 + (random() * ($TAIL_ROWS - 1))::bigint")
	p95s=${h_sealed##* / }
	p95u=${h_unsealed##* / }
	row "history(), sealed keys (inserted + updated): p50 / p95 ms" "$h_sealed" "p95 ≤ 10 ms" "$(verdict "$p95s" 10 le)"
	row "history(), keys not sealed yet: p50 / p95 ms" "$h_unsealed" "p95 ≤ 10 ms" "$(verdict "$p95u" 10 le)"
	psql_b -c "SELECT trading_guard.seal_audit()" >/dev/null
fi

if [[ " $PARTS " == *" C "* ]]; then
	tg_log "C: COPY of $COPY_ROWS rows with the worker on; time until the backlog is 0"
	psql_b -c "CREATE TABLE copy_src AS SELECT g + 100000000 AS id, 'SOLUSDT' AS symbol, 'BUY' AS side,
	                  1.5 AS quantity, 150.25 AS price FROM generate_series(1, $COPY_ROWS) g" \
		-c "COPY copy_src TO '$BDIR/copy.data'"
	psql_b -c "SELECT trading_guard.seal_audit()" >/dev/null
	set_interval "$SEAL_INTERVAL"
	start=$(date +%s.%N)
	psql_b -c "COPY trades (id, symbol, side, quantity, price) FROM '$BDIR/copy.data'"
	copy_end=$(date +%s.%N)
	while [ "$(psql_b -c "SELECT backlog_rows FROM trading_guard.seal_status")" != 0 ]; do
		sleep 0.02
	done
	drained=$(date +%s.%N)
	copy_s=$(awk -v a="$start" -v b="$copy_end" 'BEGIN { printf "%.2f", b - a }')
	drain_s=$(awk -v a="$copy_end" -v b="$drained" 'BEGIN { printf "%.2f", b - a }')
	copy_rate=$(awk -v n="$COPY_ROWS" -v s="$copy_s" 'BEGIN { printf "%d", n / s }')
	row "COPY of $COPY_ROWS audited rows" "$copy_s s = $copy_rate rows/s" "" ""
	row "backlog back to 0 after the COPY ended" "$drain_s s" "≤ 2 s" "$(verdict "$drain_s" 2 le)"
	if [ -n "${seal_rate:-}" ]; then
		r=$(ratio "$seal_rate" "$copy_rate")
		row "seal throughput / audited COPY rate" "${r}×" "≥ 5×" "$(verdict "$r" 5 ge)"
	fi
	set_interval 0
fi

if [[ " $PARTS " == *" D "* ]]; then
	tg_log "D: pgbench $TPS_SECONDS s, 2 clients, worker on; sealing lag of every row"
	psql_b -c "CREATE SEQUENCE bench_ids START 200000000" -c "SELECT trading_guard.seal_audit()" >/dev/null
	first=$(psql_b -c "SELECT coalesce(max(id), 0) FROM trading_guard.audit_log")
	cat >"$BDIR/insert.sql" <<'EOF'
INSERT INTO trades (id, symbol, side, quantity, price) VALUES (nextval('bench_ids'), 'BTCUSDT', 'BUY', 0.01, 50000);
EOF
	chmod 644 "$BDIR/insert.sql"
	set_interval "$SEAL_INTERVAL"
	tps=$(tg_as_runner "$BIN/pgbench" -n -M simple -c 2 -j 2 -T "$TPS_SECONDS" -h "$BDIR" -p "$PORT" -U postgres \
		-f "$BDIR/insert.sql" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
	while [ "$(psql_b -c "SELECT backlog_rows FROM trading_guard.seal_status")" != 0 ]; do sleep 0.05; done
	lag=$(psql_b -c "
		WITH ids AS (SELECT s.sealed_at, generate_series(lower(r), upper(r) - 1) AS id
		               FROM trading_guard.audit_seal s, unnest(s.ids) r
		              WHERE upper(s.ids) > $first)
		SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)::numeric, 3) || ' / ' ||
		       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)::numeric, 3) || ' / ' ||
		       round(max(lag)::numeric, 3) || ' / ' || count(*)
		  FROM (SELECT extract(epoch FROM ids.sealed_at - l.event_time) AS lag
		          FROM trading_guard.audit_log l JOIN ids USING (id)
		         WHERE l.id > $first AND l.operation = 'INSERT') x")
	p99=$(echo "$lag" | awk -F ' / ' '{ print $2 }')
	row "pgbench insert-only, worker on (seal_interval $SEAL_INTERVAL ms)" "$tps TPS" "" ""
	row "sealing lag p50 / p99 / max s / rows" "$lag" "p99 ≤ 1 s" "$(verdict "$p99" 1 le)"
	if [ -n "${seal_rate:-}" ]; then
		r=$(ratio "$seal_rate" "$tps")
		row "seal throughput / audited insert TPS" "${r}×" "≥ 5×" "$(verdict "$r" 5 ge)"
	fi
	set_interval 0
fi

if [[ " $PARTS " == *" E "* ]]; then
	sizes=$(psql_b -c "VACUUM ANALYZE trades" -c "VACUUM ANALYZE trading_guard.audit_log" -c "
		SELECT round(pg_table_size('trading_guard.audit_log')::numeric / n, 1) || ' / ' ||
		       round(pg_indexes_size('trading_guard.audit_log')::numeric / n, 1) || ' / ' ||
		       round(pg_total_relation_size('trading_guard.audit_seal')::numeric / n, 1) || ' / ' ||
		       round(pg_table_size('trades')::numeric / t, 1)
		  FROM (SELECT (SELECT count(*) FROM trading_guard.audit_log) AS n,
		               (SELECT count(*) FROM trades) AS t) c")
	row "bytes per audit row: heap / indexes / audit_seal; the trades table's own bytes per row" "$sizes" "audit row ≤ 2× the trades row" "see figures"
fi

{
	echo
	echo "Machine load at start / end: $LOAD_START / $(cut -d ' ' -f 1-3 /proc/loadavg); $(($(date +%s) - T_START)) s in all."
} >>"$REPORT"
publish_report "$REPORT" seal
