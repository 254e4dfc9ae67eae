#!/usr/bin/env bash
# test/bench/events.sh — do security events keep up with a flood, how fast
# does the events worker write, and what does a crash lose?
#
#   A. flood: FLOOD_ATTEMPTS refused connection attempts (plaintext TCP to a
#      server that requires TLS) from one address over FLOOD_SECONDS, from
#      FLOOD_PROCS client processes (test/bench/flood.py); then: the server
#      is up, every refusal the clients saw is a row of security_events or
#      counted as dropped, the address was banned, the table (and its batch
#      records and audit rows) grew by what the settings say: one row per
#      refusal;
#   B. the events worker's write rate when it is the bottleneck: with the
#      database marked as being restored (trading_guard.restoring = on, so
#      the worker writes nothing) FILL_EVENTS refusals fill the queue; then
#      the mark is reset and the time until the queue is written gives
#      events/s (THROUGHPUT_ROUNDS rounds, median);
#   C. loss on a crash: a steady flood of CRASH_RATE refusals a second for
#      CRASH_SECONDS, and halfway through a SIGKILL of the events worker
#      (PostgreSQL then restarts every process and shared memory, the queue
#      with it): refusals the clients saw minus rows written, against the
#      bound of README "How events get into the table" (what the queue
#      holds between two writes: rate x 2 flush intervals) (CRASH_ROUNDS);
#   D. a clean restart (pg_ctl restart -m fast) halfway through the same
#      flood: nothing may be lost.
#
# Usage (as root or as a user with sudo):
#   test/bench/events.sh
# Environment:
#   FLOOD_ATTEMPTS=50000 FLOOD_SECONDS=60 FLOOD_PROCS=8
#   FILL_EVENTS=20000 THROUGHPUT_ROUNDS=3
#   CRASH_RATE=500 CRASH_SECONDS=10 CRASH_ROUNDS=3
#   BENCH_SKIP_BUILD=1 (do not build/install first)
#
# One temporary cluster (fsync on, synchronous_commit off, the extension in
# database bench, which is trading_guard.events_database;
# connection_policy = enforce, ssl off, so every TCP attempt is refused;
# log_allowed_logins = none, so the script's own psql sessions add no
# events; event_queue_size = 65536 so that part B fits), removed at exit.
# Prints a markdown report and writes it to test/out/bench-events.md.  A
# missed target prints MISS and does not fail the script; a real error does.

set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FLOOD_ATTEMPTS=${FLOOD_ATTEMPTS:-50000}
FLOOD_SECONDS=${FLOOD_SECONDS:-60}
FLOOD_PROCS=${FLOOD_PROCS:-8}
FILL_EVENTS=${FILL_EVENTS:-20000}
THROUGHPUT_ROUNDS=${THROUGHPUT_ROUNDS:-3}
CRASH_RATE=${CRASH_RATE:-500}
CRASH_SECONDS=${CRASH_SECONDS:-10}
CRASH_ROUNDS=${CRASH_ROUNDS:-3}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
QUEUE_SIZE=65536
FLUSH_MS=100

positive_ints FLOOD_ATTEMPTS FLOOD_SECONDS FLOOD_PROCS FILL_EVENTS THROUGHPUT_ROUNDS CRASH_RATE CRASH_SECONDS CRASH_ROUNDS
min_rounds THROUGHPUT_ROUNDS CRASH_ROUNDS
[ "$FILL_EVENTS" -lt "$QUEUE_SIZE" ] || tg_die "FILL_EVENTS must be below the queue size ($QUEUE_SIZE)"
[[ $BENCH_SKIP_BUILD =~ ^[01]$ ]] || tg_die "BENCH_SKIP_BUILD must be 0 or 1"

T_START=$(date +%s)
LOAD_START=$(cut -d ' ' -f 1-3 /proc/loadavg)
CMD="FLOOD_ATTEMPTS=$FLOOD_ATTEMPTS FLOOD_SECONDS=$FLOOD_SECONDS FLOOD_PROCS=$FLOOD_PROCS FILL_EVENTS=$FILL_EVENTS THROUGHPUT_ROUNDS=$THROUGHPUT_ROUNDS CRASH_RATE=$CRASH_RATE CRASH_SECONDS=$CRASH_SECONDS CRASH_ROUNDS=$CRASH_ROUNDS test/bench/events.sh"

# shellcheck disable=SC2086
tg_ensure_packages $TG_PACKAGES
[ "$BENCH_SKIP_BUILD" = 1 ] || tg_build_install
BIN=$("$PG_CONFIG" --bindir)

BDIR=$(tg_runner_dir tg-bench-events)
DATA=$BDIR/data
LOG=$BDIR/server.log
PORT=$(tg_free_port 56500)

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
# the client, where the runner can read it
FLOOD=$BDIR/flood.py
cp "$TG_REPO/test/bench/flood.py" "$FLOOD"
chmod a+r "$FLOOD"

tg_log "initdb in $DATA (port $PORT)"
tg_as_runner "$BIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C >"$BDIR/initdb.log" 2>&1 ||
	{ cat "$BDIR/initdb.log" >&2; tg_die "initdb failed"; }
cat >"$DATA/pg_hba.conf" <<EOF
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
cat >>"$DATA/postgresql.conf" <<EOF

# --- test/bench/events.sh ---
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$BDIR'
max_connections = 100
shared_preload_libraries = 'trading_guard'
trading_guard.connection_policy = enforce
trading_guard.events_database = 'bench'
trading_guard.event_queue_size = $QUEUE_SIZE
trading_guard.event_flush_interval = '${FLUSH_MS}ms'
trading_guard.log_allowed_logins = none
trading_guard.seal_databases = 'bench'
fsync = on
synchronous_commit = off
jit = off
restart_after_crash = on
log_min_messages = warning
EOF
tg_as_runner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 120 start >/dev/null || tg_die "the server did not start"

psql_b() {
	tg_as_runner "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$BDIR" -p "$PORT" -U postgres -d bench "$@"
}
tg_as_runner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$BDIR" -p "$PORT" -U postgres -d postgres -c 'CREATE DATABASE bench'
psql_b -c 'CREATE EXTENSION trading_guard'

# Run flood.py as the runner: role attempts seconds; prints its JSON.
flood() {
	tg_as_runner python3 "$FLOOD" 127.0.0.1 "$PORT" "$1" "$2" "$3" "$FLOOD_PROCS" bench
}
# A count out of flood.py's JSON: answers of kind $2 (E:28000 = refused by the guard)
answers() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["answers"].get(sys.argv[2], 0))' "$1" "$2"; }
seconds_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"])' "$1"; }

# Wait (60 s at most) until the worker has written everything queued now.
wait_written() {
	local i
	for i in $(seq 1 600); do
		[ "$(psql_b -c 'SELECT queued = 0 FROM trading_guard.security_event_queue')" = t ] && return 0
		sleep 0.1
	done
	tg_die "the events worker did not write its queue within 60 s: $(psql_b -c 'SELECT * FROM trading_guard.security_event_queue')"
}
# Wait (60 s at most) until the server accepts connections again.
wait_up() {
	local i
	for i in $(seq 1 600); do
		tg_as_runner "$BIN/pg_isready" -q -h "$BDIR" -p "$PORT" && psql_b -c 'SELECT 1' >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	tg_die "the server did not come back within 60 s"
}
rows_of() { psql_b -c "SELECT count(*) FROM trading_guard.security_events WHERE event_type = 'login' AND outcome = 'refused' AND role_name = '$1'"; }
events_bytes() {
	psql_b -c "SELECT pg_total_relation_size('trading_guard.security_events') + pg_total_relation_size('trading_guard.security_event_batches')"
}
audit_bytes() { psql_b -c "SELECT pg_total_relation_size('trading_guard.audit_log')"; }
unban() { psql_b -c "SELECT trading_guard.unban('127.0.0.1')" >/dev/null; }

# ---------------------------------------------------------------------------
# A. the flood
# ---------------------------------------------------------------------------
tg_log "A. flood: $FLOOD_ATTEMPTS refused attempts over ${FLOOD_SECONDS}s from 127.0.0.1 ($FLOOD_PROCS client processes)"
ev0=$(events_bytes)
au0=$(audit_bytes)
w0=$(psql_b -c 'SELECT written_total FROM trading_guard.security_event_queue')
out=$(flood flood "$FLOOD_ATTEMPTS" "$FLOOD_SECONDS")
w1=$(psql_b -c 'SELECT written_total FROM trading_guard.security_event_queue')
tg_log "   $out"
A_SECS=$(seconds_of "$out")
A_REFUSED=$(answers "$out" E:28000)
A_OTHER=$((FLOOD_ATTEMPTS - A_REFUSED))
wait_written
A_UP=$(psql_b -c 'SELECT 1')
A_ROWS=$(rows_of flood)
read -r A_DROPPED A_DROPPED_LOGIN < <(psql_b -F ' ' -c "SELECT dropped_total, coalesce(dropped_by_type->>'login', '0') FROM trading_guard.security_event_queue")
A_BANS=$(psql_b -c "SELECT count(*) FROM trading_guard.security_events WHERE event_type = 'ban' AND client_addr = '127.0.0.1'")
A_REASONS=$(psql_b -c "SELECT string_agg(reason || ' ' || n, ', ' ORDER BY n DESC) FROM (SELECT reason, count(*) n FROM trading_guard.security_events WHERE role_name = 'flood' GROUP BY reason) r")
A_BATCHES=$(psql_b -c "SELECT count(*) FROM trading_guard.security_event_batches")
A_EV_BYTES=$(($(events_bytes) - ev0))
A_AU_BYTES=$(($(audit_bytes) - au0))
A_RATE=$(awk -v n="$FLOOD_ATTEMPTS" -v s="$A_SECS" 'BEGIN { printf "%.0f", n / s }')
A_WRATE=$(awk -v n="$((w1 - w0))" -v s="$A_SECS" 'BEGIN { printf "%.0f", n / s }')
A_VERIFY=$(psql_b -F ' ' -c 'SELECT ok, rows_checked FROM trading_guard.verify_security_events()')
unban

# ---------------------------------------------------------------------------
# B. the worker's write rate
# ---------------------------------------------------------------------------
declare -a B_RATES=()
for r in $(seq 1 "$THROUGHPUT_ROUNDS"); do
	psql_b -c 'ALTER DATABASE bench SET trading_guard.restoring = on'
	# the worker takes the mark in before the fill begins: a refusal made
	# now stays queued
	out=$(flood "fill$r" 10 1)
	for i in $(seq 1 100); do
		[ "$(psql_b -c 'SELECT waiting_for_table FROM trading_guard.security_event_queue')" = t ] && break
		sleep 0.1
	done
	[ "$(psql_b -c 'SELECT waiting_for_table FROM trading_guard.security_event_queue')" = t ] ||
		tg_die "B: the events worker does not wait with trading_guard.restoring = on"
	out=$(flood "fill$r" "$FILL_EVENTS" 1)
	queued=$(psql_b -c 'SELECT queued FROM trading_guard.security_event_queue')
	[ "$queued" -ge "$FILL_EVENTS" ] || tg_die "B: only $queued events queued after $FILL_EVENTS refusals ($out)"
	mark=$(psql_b -c 'SELECT coalesce(max(id), 0) FROM trading_guard.security_events')
	psql_b -c 'ALTER DATABASE bench RESET trading_guard.restoring'
	wait_written
	# the worker's own pace: each batch's EVENTS audit row is written at the
	# end of the batch, so the rows of all batches but the first over the
	# time from the first batch's end to the last's
	rate=$(psql_b -c "SELECT round((sum(n) - (array_agg(n ORDER BY t))[1]) / nullif(extract(epoch FROM max(t) - min(t)), 0))
		FROM (SELECT event_time t, (new_row->>'rows')::bigint n FROM trading_guard.audit_log
		      WHERE operation = 'EVENTS' AND (new_row->>'first_id')::bigint > $mark) b")
	nb=$(psql_b -c "SELECT count(*) FROM trading_guard.audit_log WHERE operation = 'EVENTS' AND (new_row->>'first_id')::bigint > $mark")
	[ -n "$rate" ] || tg_die "B: the queue was written in one batch: no rate (raise FILL_EVENTS)"
	B_RATES+=("$rate")
	tg_log "B. round $r: $queued events queued, written in $nb batches at $rate events/s"
	unban
done
B_MED=$(median "${B_RATES[@]}")

# ---------------------------------------------------------------------------
# C. a crash under a flood, D. a clean restart under a flood
# ---------------------------------------------------------------------------
BOUND=$(awk -v r="$CRASH_RATE" -v f="$FLUSH_MS" 'BEGIN { printf "%.0f", r * 2 * f / 1000 }')
declare -a C_LOST=() C_SEEN=() C_WIN=()
stop_half() { # what to do halfway: crash | restart
	sleep "$(awk -v s="$CRASH_SECONDS" 'BEGIN { print s / 2 }')"
	if [ "$1" = crash ]; then
		pid=$(psql_b -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'trading_guard events'")
		[ -n "$pid" ] || tg_die "no events worker to kill"
		kill -KILL "$pid"
	else
		tg_as_runner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -m fast -w -t 60 restart >/dev/null || tg_die "restart failed"
	fi
}
for r in $(seq 1 "$CRASH_ROUNDS") restart; do
	role="crash$r" how=crash
	[ "$r" = restart ] && role=restart how=restart
	tg_log "C/D. $how halfway through ${CRASH_SECONDS}s of $CRASH_RATE refusals/s ($role)"
	flood "$role" "$((CRASH_RATE * CRASH_SECONDS))" "$CRASH_SECONDS" >"$BDIR/flood.out" &
	fpid=$!
	stop_half "$how"
	wait "$fpid" || tg_die "flood.py failed"
	out=$(cat "$BDIR/flood.out")
	wait_up
	wait_written
	seen=$(answers "$out" E:28000)
	rows=$(rows_of "$role")
	tg_log "   clients: $out; rows: $rows"
	if [ "$how" = crash ]; then
		C_LOST+=("$((seen - rows))")
		C_SEEN+=("$seen/$rows")
		# the lost events as time: how long the refusals that were lost took to arrive
		C_WIN+=("$(awk -v l="$((seen - rows))" -v n="$seen" -v s="$CRASH_SECONDS" 'BEGIN { printf "%.0f", l * 1000 * s / n }')")
	else
		D_SEEN=$seen D_ROWS=$rows
	fi
	unban
done
C_MAX=$(printf '%s\n' "${C_LOST[@]}" | sort -n | tail -n 1)
C_MED=$(median "${C_LOST[@]}")
C_VERIFY=$(psql_b -F ' ' -c 'SELECT ok, rows_checked FROM trading_guard.verify_security_events()')

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo MISS; fi; }
PG_VERSION=$(psql_b -c 'SHOW server_version')
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
per_row() { awk -v b="$1" -v n="$2" 'BEGIN { printf "%.0f", (n > 0) ? b / n : 0 }'; }
{
	echo "### Security events: a flood, the worker's write rate, loss on a crash"
	echo
	echo "Command: \`$CMD\`  "
	echo "Machine: $(nproc) CPUs ($CPU), Linux $(uname -r); load average at start $LOAD_START, at end $(cut -d ' ' -f 1-3 /proc/loadavg)  "
	echo "PostgreSQL $PG_VERSION; one cluster: fsync on, synchronous_commit off, connection_policy = enforce, ssl off (every TCP attempt is refused: TLS is required), events_database = bench, event_queue_size = $QUEUE_SIZE, event_flush_interval = ${FLUSH_MS}ms, log_allowed_logins = none (refusals are always rows), max_auth_failures 5 (the default: the address is banned at the 6th refusal), the sealer on.  "
	echo "Clients: test/bench/flood.py, $FLOOD_PROCS processes, each attempt a plaintext TCP connection and a startup packet, its answer read."
	echo
	echo "| A. flood | value |"
	echo "|---|---:|"
	echo "| attempts / seconds / rate | $FLOOD_ATTEMPTS / $A_SECS s / $A_RATE a second |"
	echo "| refused (clients saw 28000) / other answers | $A_REFUSED / $A_OTHER |"
	echo "| rows in security_events (login, refused) | $A_ROWS |"
	echo "| dropped from the queue (login) | $A_DROPPED ($A_DROPPED_LOGIN) |"
	echo "| by reason | $A_REASONS |"
	echo "| ban events for 127.0.0.1 | $A_BANS |"
	echo "| batches written / worker write rate during the flood | $A_BATCHES / $A_WRATE events a second |"
	echo "| growth: security_events + batches, bytes per refusal | $(per_row "$A_EV_BYTES" "$A_ROWS") |"
	echo "| growth: audit_log (one EVENTS row per batch), bytes per refusal | $(per_row "$A_AU_BYTES" "$A_ROWS") |"
	echo "| verify_security_events() | $A_VERIFY |"
	echo
	echo "| B. worker write rate (queue filled with $FILL_EVENTS, then written) | events/s |"
	echo "|---|---:|"
	echo "| median of $THROUGHPUT_ROUNDS | $B_MED |"
	echo "| rounds | $(join_runs "${B_RATES[*]}") |"
	echo
	echo "| C/D. $CRASH_RATE refusals/s for ${CRASH_SECONDS}s, halfway: | refusals seen / rows | lost | lost, as ms of refusals |"
	echo "|---|---|---:|---:|"
	for i in "${!C_LOST[@]}"; do
		echo "| SIGKILL of the events worker, round $((i + 1)) | ${C_SEEN[$i]} | ${C_LOST[$i]} | ${C_WIN[$i]} |"
	done
	echo "| pg_ctl restart -m fast | $D_SEEN/$D_ROWS | $((D_SEEN - D_ROWS)) | |"
	echo
	echo "After C and D: verify_security_events() $C_VERIFY."
	echo
	echo "| target | measured | result |"
	echo "|---|---:|---|"
	echo "| server up after $FLOOD_ATTEMPTS refusals in ${A_SECS}s | $( [ "$A_UP" = 1 ] && echo up || echo down) | $(verdict "$([ "$A_UP" = 1 ] && echo 1)") |"
	echo "| every refusal counted: rows + dropped = refusals seen | $A_ROWS + $A_DROPPED_LOGIN = $A_REFUSED | $(verdict "$([ $((A_ROWS + A_DROPPED_LOGIN)) -eq "$A_REFUSED" ] && echo 1)") |"
	echo "| none dropped | $A_DROPPED | $(verdict "$([ "$A_DROPPED" -eq 0 ] && echo 1)") |"
	echo "| bans work (the flooding address banned) | $A_BANS ban event(s) | $(verdict "$([ "$A_BANS" -ge 1 ] && echo 1)") |"
	echo "| the table grows by one row per refusal (log_allowed_logins = none) | $A_ROWS rows for $A_REFUSED refusals | $(verdict "$([ "$A_ROWS" -eq "$A_REFUSED" ] && echo 1)") |"
	echo "| 50,000 attempts within a minute | $A_SECS s | $(verdict "$(awk -v s="$A_SECS" 'BEGIN { if (s <= 61) print 1 }')") |"
	echo "| loss on SIGKILL ≤ the queue between two writes: rate × 2 flush intervals ($BOUND at $CRASH_RATE/s, $((2 * FLUSH_MS)) ms) | max $C_MAX (median $C_MED); max $(printf '%s\n' "${C_WIN[@]}" | sort -n | tail -n 1) ms | $(verdict "$([ "$C_MAX" -le "$BOUND" ] && echo 1)") |"
	echo "| 0 lost across a clean restart | $((D_SEEN - D_ROWS)) | $(verdict "$([ "$D_SEEN" -eq "$D_ROWS" ] && echo 1)") |"
	echo
	echo "Wall time: $(($(date +%s) - T_START)) s"
} >"$BDIR/report.md"

publish_report "$BDIR/report.md" events
