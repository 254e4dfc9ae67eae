#!/usr/bin/env bash
# test/bench/connections.sh — what does the connection guard cost a new
# connection?
#
# New TLS connections per second, `pgbench -C` (a new connection for every
# transaction; 2 clients, 2 threads, simple protocol, the script `SELECT 1`),
# against three clusters that run side by side, identical but for:
#   A. shared_preload_libraries = '' (trading_guard not loaded at all);
#   B. shared_preload_libraries = 'trading_guard',
#      trading_guard.connection_policy = off;
#   C. shared_preload_libraries = 'trading_guard',
#      trading_guard.connection_policy = enforce and trading_guard.rules = a
#      50-rule allowlist whose LAST rule is the first that allows the benchmark
#      role from 127.0.0.1 (the 49 before it are for other roles and networks:
#      role names, a quoted name, +group, *, IPv4 and IPv6 CIDRs, bare
#      addresses, cert), i.e. the worst case of the rule walk; and every
#      attempt recorded in trading_guard.security_events
#      (trading_guard.log_allowed_logins = all, events_database = the
#      benchmark's database, where the extension is);
# and, for reference only, D. cluster A over plaintext (sslmode=disable).
# The runs are interleaved (ROUNDS rounds of A, B, C, D, the order rotated
# each round), after a warm-up run of each; the report gives the median
# connections/s of each configuration, its ratio to A, every round's value,
# pgbench's average connection time and the servers' CPU time per connection
# (postmaster + reaped backends + trading_guard workers), and checks the targets C >= 0.97x A (the
# connection guard's, set before C recorded its attempts) and C >= 0.95x A
# (the security events', every attempt recorded) (PASS/MISS; a miss does
# not fail the script, a real error does).
#
# Before timing it checks each configuration: the pgbench connection string
# really gives a TLS (D: a plaintext) session, and what is preloaded.  If the
# installed trading_guard has the connection guard (the parameter
# trading_guard.connection_policy exists), it also checks that C enforces:
# a plaintext connection and a TLS connection of a role no rule allows are
# refused, the benchmark role's TLS connection is allowed, and
# trading_guard.connection_events shows it as allowed, reason 'rule', rule 50
# (after the runs: every benchmark connection of the ring, and
# connection_stats counts at least every timed connection as allowed by a
# rule, none refused); and that B lets a plaintext connection through.  If
# the parameter does not exist (a build without the connection guard: the
# reserved prefix makes the servers ignore trading_guard.* settings, so B and
# C then behave like A), it prints a warning and skips those checks.
#
# Usage (as root or as a user with sudo):
#   test/bench/connections.sh
# Environment:
#   BENCH_SECONDS=10   duration of each timed pgbench run
#   ROUNDS=5           interleaved rounds (>= 3)
#   WARMUP_SECONDS=2   duration of the untimed warm-up run of each configuration
#   BENCH_SKIP_BUILD=1 do not build/install the extension first
# The default run takes about 4 minutes.
#
# It creates three temporary clusters (ports from 56100 up, listening on
# 127.0.0.1 and a Unix socket; ssl = on with a self-signed certificate made at
# run time; pg_hba.conf: local trust, hostssl 127.0.0.1/32 trust and, for D
# and the plaintext checks, hostnossl 127.0.0.1/32 trust; fsync on,
# synchronous_commit off, autovacuum off), stops and removes them at exit
# (and checks that every server is gone), prints a markdown report and writes
# it to test/out/bench-connections.md.

set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BENCH_SECONDS=${BENCH_SECONDS:-10}
ROUNDS=${ROUNDS:-5}
WARMUP_SECONDS=${WARMUP_SECONDS:-2}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}

positive_ints BENCH_SECONDS ROUNDS WARMUP_SECONDS
min_rounds ROUNDS
[[ $BENCH_SKIP_BUILD =~ ^[01]$ ]] || tg_die "BENCH_SKIP_BUILD must be 0 or 1 (got '$BENCH_SKIP_BUILD')"

T_START=$(date +%s)
LOAD_START=$(cut -d ' ' -f 1-3 /proc/loadavg)
CMD="BENCH_SECONDS=$BENCH_SECONDS ROUNDS=$ROUNDS WARMUP_SECONDS=$WARMUP_SECONDS BENCH_SKIP_BUILD=$BENCH_SKIP_BUILD test/bench/connections.sh"

# ---------------------------------------------------------------------------
# build, install
# ---------------------------------------------------------------------------
# shellcheck disable=SC2086
tg_ensure_packages $TG_PACKAGES
if [ "$BENCH_SKIP_BUILD" != 1 ]; then
	tg_build_install
fi

BIN=$("$PG_CONFIG" --bindir)
[ -x "$BIN/pgbench" ] || tg_die "pgbench not found in $BIN"

# ---------------------------------------------------------------------------
# clusters
# ---------------------------------------------------------------------------
BDIR=$(tg_runner_dir tg-bench-connections)
DB=bench
ROLE=bench_trader	# the role pgbench connects as
CLUSTERS=(A B C)
declare -A C_DIR=() C_PORT=() C_PM=()
STARTED=()

# True once process $1 has exited (gone or a zombie), waiting up to 10 s.
pid_exited() {
	local i state
	for i in $(seq 1 100); do
		state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
		[ -z "$state" ] || [ "$state" = Z ] && return 0
		sleep 0.1
	done
	return 1
}

cleanup() {
	local rc=$? c pid alive=""
	trap - EXIT INT TERM
	for c in "${STARTED[@]}"; do
		stop_server "${C_DIR[$c]}/data"
		if [ "$rc" -ne 0 ] && [ -f "${C_DIR[$c]}/server.log" ]; then
			echo "---- last lines of the server log of cluster $c ----" >&2
			tail -n 30 "${C_DIR[$c]}/server.log" >&2 || true
		fi
	done
	# every server must be gone: no postmaster.pid, and the postmaster has
	# exited (pg_ctl returns when the pid file is gone, an instant before
	# the process is; an exited process waiting to be reaped is a zombie)
	for c in "${STARTED[@]}"; do
		pid=${C_PM[$c]:-}
		if [ -f "${C_DIR[$c]}/data/postmaster.pid" ] || { [ -n "$pid" ] && ! pid_exited "$pid"; }; then
			alive="$alive $c(port ${C_PORT[$c]}, pid ${pid:-?})"
		fi
	done
	if [ -n "$alive" ]; then
		printf 'error: server(s) still running after stop:%s; left %s in place\n' "$alive" "$BDIR" >&2
		[ "$rc" -ne 0 ] || rc=1
	else
		[ ${#STARTED[@]} -gt 0 ] && tg_log "all servers stopped (${STARTED[*]})"
		rm -rf "$BDIR"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One server certificate for the three clusters, made now, never kept.
tg_make_server_cert "$BDIR"
[ "$(id -u)" -eq 0 ] && chown postgres: "$BDIR/server.key" "$BDIR/server.crt"

# ---------------------------------------------------------------------------
# the allowlist of C: 49 rules that do not allow ROLE from 127.0.0.1, then
# the one that does.  Every kind of rule is there: other roles from our
# address, our role from other networks, groups ROLE is not a member of from
# our address (a membership check), *, quoted names, IPv6, cert.
# ---------------------------------------------------------------------------
PEOPLE=(alice bob carol dave erin frank grace heidi ivan judy mallory svc_feed svc_risk)
RGROUPS=(traders risk ops auditors)
rule_roles_sql() {
	local p
	for p in "${PEOPLE[@]}" outsider "$ROLE"; do
		printf 'CREATE ROLE %s LOGIN;\n' "$p"
	done
	echo "CREATE ROLE \"Risk Desk\" LOGIN;"
	for p in "${RGROUPS[@]}" readers; do
		printf 'CREATE ROLE %s NOLOGIN;\n' "$p"
	done
	cat <<EOF
GRANT traders TO alice, bob, carol;
GRANT risk TO dave, "Risk Desk";
GRANT risk TO ops;
GRANT ops TO frank;
GRANT auditors TO grace, heidi;
GRANT readers TO $ROLE, ivan;
GRANT readers TO auditors;
EOF
}
make_rules() {
	local i p g rules="" r
	for i in $(seq 1 49); do
		p=${PEOPLE[$((i % ${#PEOPLE[@]}))]}
		g=${RGROUPS[$((i % ${#RGROUPS[@]}))]}
		case $(((i - 1) % 7)) in
		0) r="$p 10.$i.0.0/16" ;;
		1) r="+$g 127.0.0.0/8, ::1/128" ;;
		2) r="$ROLE 192.168.$i.0/24, 2001:db8:$i::/48" ;;
		3) r="$p, \"Risk Desk\", +$g 127.0.0.1, fd00:$i::/64" ;;
		4) r="* 172.16.$i.0/24, fe80::/10" ;;
		5) r="+$g,$p 2001:db8:$i::/48 cert" ;;
		6) r="$p 127.0.0.1/32 cert" ;;
		esac
		rules="$rules$r; "
	done
	echo "${rules}$ROLE 127.0.0.1/32"
}
RULES=$(make_rules)
N_RULES=$(awk -F';' '{ print NF }' <<<"$RULES")
[ "$N_RULES" -eq 50 ] || tg_die "the allowlist has $N_RULES rules, expected 50"

# Create, configure and start cluster $1.
new_cluster() {
	local c=$1 port preload=trading_guard
	[ "$c" = A ] && preload=""
	C_DIR[$c]=$BDIR/$c
	port=$(tg_free_port $((56100 + ${#STARTED[@]} * 10)))
	C_PORT[$c]=$port
	tg_as_runner mkdir "${C_DIR[$c]}"
	tg_log "cluster $c: initdb in ${C_DIR[$c]}/data (port $port), shared_preload_libraries = '$preload'"
	tg_as_runner "$BIN/initdb" -D "${C_DIR[$c]}/data" -U postgres -A trust -E UTF8 --locale=C \
		>"${C_DIR[$c]}/initdb.log" 2>&1 || { cat "${C_DIR[$c]}/initdb.log" >&2; tg_die "initdb failed"; }
	cat >"${C_DIR[$c]}/data/pg_hba.conf" <<EOF
# --- test/bench/connections.sh ---
local     all all                trust
hostssl   all all 127.0.0.1/32   trust
hostnossl all all 127.0.0.1/32   trust
EOF
	cat >>"${C_DIR[$c]}/data/postgresql.conf" <<EOF

# --- test/bench/connections.sh ---
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '${C_DIR[$c]}'
shared_preload_libraries = '$preload'
ssl = on
ssl_cert_file = '$BDIR/server.crt'
ssl_key_file = '$BDIR/server.key'
fsync = on
synchronous_commit = off
autovacuum = off
jit = off
log_destination = 'stderr'
logging_collector = off
EOF
	case $c in
	B) echo "trading_guard.connection_policy = off" >>"${C_DIR[$c]}/data/postgresql.conf" ;;
	C)
		{
			echo "trading_guard.connection_policy = enforce"
			echo "trading_guard.rules = '${RULES//\'/\'\'}'"
			echo "trading_guard.log_allowed_logins = all"
			echo "trading_guard.events_database = '$DB'"
		} >>"${C_DIR[$c]}/data/postgresql.conf"
		;;
	esac
	STARTED+=("$c")
	tg_as_runner "$BIN/pg_ctl" -D "${C_DIR[$c]}/data" -l "${C_DIR[$c]}/server.log" -w -t 120 start >/dev/null ||
		tg_die "the server of cluster $c did not start"
	C_PM[$c]=$(head -n 1 "${C_DIR[$c]}/data/postmaster.pid")
}

# psql against a database of cluster $1 over its Unix socket, as postgres:
# unaligned, tuples only, stop on error.
psql_c() {
	local c=$1
	shift
	tg_as_runner "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "${C_DIR[$c]}" -p "${C_PORT[$c]}" \
		-U postgres -d "${PSQL_DB:-$DB}" "$@"
}

for c in "${CLUSTERS[@]}"; do
	new_cluster "$c"
	PSQL_DB=postgres psql_c "$c" -c "CREATE DATABASE $DB"
	rule_roles_sql | psql_c "$c" >/dev/null
	# the views of the connection guard live in the extension's schema
	if [ "$c" != A ]; then
		psql_c "$c" -c "CREATE EXTENSION trading_guard"
	fi
done

# ---------------------------------------------------------------------------
# configurations
# ---------------------------------------------------------------------------
CONFIGS=(A B C D)
declare -A CCL=([A]=A [B]=B [C]=C [D]=A)	# cluster of each configuration
declare -A SSLMODE=([A]=require [B]=require [C]=require [D]=disable)
declare -A LABEL=(
	[A]="A. not preloaded, TLS"
	[B]="B. preloaded, connection_policy = off, TLS"
	[C]="C. preloaded, enforce, 50 rules (match: last), every attempt a security event, TLS"
	[D]="D. = A over plaintext (reference)"
)
conninfo() { # configuration [user [sslmode]]
	echo "host=127.0.0.1 port=${C_PORT[${CCL[$1]}]} sslmode=${3:-${SSLMODE[$1]}} dbname=$DB user=${2:-$ROLE}"
}
# psql over TCP with configuration $1's connection string, as user $2, with
# sslmode $3 (empty: the configuration's); output (and errors) to stdout,
# psql's exit status.
psql_tcp() {
	local cfg=$1 user=$2 mode=$3
	shift 3
	tg_as_runner "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$(conninfo "$cfg" "$user" "$mode")" "$@" 2>&1
}

# Wait until the events worker of cluster $1 has written every event queued
# so far (polled, 60 s at most; each poll is a login, an event, of its own).
wait_events_written() {
	local target written
	target=$(psql_c "$1" -c "SELECT queued_total FROM trading_guard.security_event_queue")
	for _ in $(seq 1 600); do
		written=$(psql_c "$1" -c "SELECT written_total FROM trading_guard.security_event_queue")
		[ "$written" -ge "$target" ] && return 0
		sleep 0.1
	done
	tg_die "cluster $1: the events worker has written $written of the $target events queued, after 60 s"
}

# Is the connection guard in the installed build?  Without it the reserved
# prefix makes the server drop every trading_guard.* setting with a warning.
POLICY_C=$(psql_c C -c "SELECT current_setting('trading_guard.connection_policy', true)")
if [ -n "$POLICY_C" ]; then
	FEATURE=1
	EXT_VERSION=$(psql_c C -c "SELECT extversion FROM pg_extension WHERE extname = 'trading_guard'")
	FEATURE_TXT="installed (extension $EXT_VERSION)"
else
	FEATURE=0
	EXT_VERSION=$(psql_c C -c "SELECT extversion FROM pg_extension WHERE extname = 'trading_guard'")
	FEATURE_TXT="NOT installed (extension $EXT_VERSION has no trading_guard.connection_policy): B and C ran without the connection guard, so they measure nothing but preloading; C's enforcement and connection_events checks were skipped"
	tg_log "WARNING: the installed trading_guard has no connection guard (trading_guard.connection_policy is not a parameter):"
	tg_log "WARNING:   B and C run without it (like A, plus preloading); the enforcement and connection_events checks of C are SKIPPED"
fi

# ---------------------------------------------------------------------------
# checks before timing
# ---------------------------------------------------------------------------
tg_log "checks: every configuration's connection string, what is preloaded"
declare -A TLS_INFO=()
for cfg in "${CONFIGS[@]}"; do
	c=${CCL[$cfg]}
	want_pl=trading_guard
	[ "$c" = A ] && want_pl=""
	pl=$(psql_c "$c" -c "SHOW shared_preload_libraries")
	[ "$pl" = "$want_pl" ] || tg_die "cluster $c: shared_preload_libraries = '$pl', expected '$want_pl'"
	[ "$cfg" = C ] && continue	# C's own sequence below
	out=$(psql_tcp "$cfg" "$ROLE" "" -F ' ' -c "SELECT ssl, coalesce(version, '-'), coalesce(cipher, '-') FROM pg_stat_ssl WHERE pid = pg_backend_pid()") ||
		{ printf '%s\n' "$out" >&2; tg_die "configuration ${LABEL[$cfg]}: cannot connect with '$(conninfo "$cfg")'"; }
	read -r ssl ver cipher <<<"$out"
	if [ "${SSLMODE[$cfg]}" = require ]; then
		[ "$ssl" = t ] || tg_die "configuration ${LABEL[$cfg]}: the connection is not TLS"
	else
		[ "$ssl" = f ] || tg_die "configuration ${LABEL[$cfg]}: the connection is not plaintext"
	fi
	TLS_INFO[$cfg]="$ver $cipher"
	tg_log "  ${LABEL[$cfg]}: ssl=$ssl $ver $cipher"
done

if [ "$FEATURE" = 1 ]; then
	pol_b=$(psql_c B -c "SHOW trading_guard.connection_policy")
	[ "$pol_b" = off ] || tg_die "cluster B: trading_guard.connection_policy = '$pol_b', expected off"
	[ "$POLICY_C" = enforce ] || tg_die "cluster C: trading_guard.connection_policy = '$POLICY_C', expected enforce"
	rules_c=$(psql_c C -c "SHOW trading_guard.rules")
	[ -n "$rules_c" ] || tg_die "cluster C: trading_guard.rules is empty"
	# policy off: B lets a plaintext connection through (pg_hba allows it)
	out=$(psql_tcp B "$ROLE" disable -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") ||
		{ printf '%s\n' "$out" >&2; tg_die "cluster B (connection_policy = off) refused a plaintext connection"; }
	[ "$out" = f ] || tg_die "cluster B: the plaintext check got a TLS session"
	tg_log "  B: connection_policy = off, a plaintext connection goes through"

	# C enforces: plaintext refused, a role no rule allows refused, the
	# benchmark role allowed by rule 50 -- in this order, checked in the
	# event ring right after.
	if out=$(psql_tcp C "$ROLE" disable -c "SELECT 1"); then
		tg_die "cluster C (enforce) ACCEPTED a plaintext connection"
	fi
	grep -q 'TLS is required' <<<"$out" || { printf '%s\n' "$out" >&2; tg_die "cluster C refused a plaintext connection, but not with 'TLS is required'"; }
	tg_log "  C: plaintext refused: $(grep -m 1 FATAL <<<"$out" || head -n 1 <<<"$out")"
	if out=$(psql_tcp C outsider "" -c "SELECT 1"); then
		tg_die "cluster C (enforce) ACCEPTED role outsider, whom no rule allows"
	fi
	grep -q 'connection refused' <<<"$out" || { printf '%s\n' "$out" >&2; tg_die "cluster C refused role outsider, but not with 'connection refused'"; }
	tg_log "  C: TLS connection of a role no rule allows refused: $(grep -m 1 FATAL <<<"$out" || head -n 1 <<<"$out")"
fi
out=$(psql_tcp C "$ROLE" "" -F ' ' -c "SELECT ssl, coalesce(version, '-'), coalesce(cipher, '-') FROM pg_stat_ssl WHERE pid = pg_backend_pid()") ||
	{ printf '%s\n' "$out" >&2; tg_die "configuration ${LABEL[C]}: cannot connect with '$(conninfo C)'"; }
read -r ssl ver cipher <<<"$out"
[ "$ssl" = t ] || tg_die "configuration ${LABEL[C]}: the connection is not TLS"
TLS_INFO[C]="$ver $cipher"
tg_log "  ${LABEL[C]}: ssl=$ssl $ver $cipher"

if [ "$FEATURE" = 1 ]; then
	[ -n "$(psql_c C -c "SELECT to_regclass('trading_guard.connection_events')")" ] ||
		tg_die "cluster C: the connection guard is loaded but trading_guard.connection_events does not exist (extension $EXT_VERSION)"
	got=$(psql_c C -F ' ' -c "SELECT decision, reason, coalesce(rule::text, '-'), role_name, host(client_addr), ssl_version IS NOT NULL
		FROM (SELECT *, row_number() OVER () AS n FROM trading_guard.connection_events WHERE client_addr IS NOT NULL) e
		ORDER BY n DESC LIMIT 3" | tac)
	want="refused no_tls - $ROLE 127.0.0.1 f
refused no_matching_rule - outsider 127.0.0.1 t
allowed rule 50 $ROLE 127.0.0.1 t"
	if [ "$got" != "$want" ]; then
		printf 'connection_events (last 3 TCP events: decision reason rule role address tls):\n%s\nexpected:\n%s\n' "$got" "$want" >&2
		tg_die "cluster C: connection_events does not show the three check connections as expected"
	fi
	tg_log "  C: connection_events: no_tls and no_matching_rule refused, $ROLE allowed by rule 50"
	# forget the two failures of the checks (no ban can come of them anyway)
	psql_c C -c "SELECT trading_guard.unban('127.0.0.1')" >/dev/null
fi

# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------
echo 'SELECT 1;' >"$BDIR/select1.sql"
chmod a+r "$BDIR/select1.sql"
PGBENCH_OPTS=(-n -C -M simple -c 2 -j 2)

# Run pgbench -C against configuration $1 for $2 seconds; output to stdout.
# Fails (with pgbench's output on stderr) when pgbench fails, a client
# aborted (a refused connection does that) or a transaction failed.
run_pgbench() {
	local cfg=$1 secs=$2 out rc=0 failed
	out=$(tg_as_runner "$BIN/pgbench" "${PGBENCH_OPTS[@]}" -T "$secs" -f "$BDIR/select1.sql" \
		"$(conninfo "$cfg")" 2>&1) || rc=$?
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	if [ "$rc" -ne 0 ] || [ "${failed:-0}" != 0 ] || grep -q 'aborted' <<<"$out"; then
		printf '%s\n' "$out" >&2
		tg_die "pgbench on configuration '${LABEL[$cfg]}' failed (exit $rc, failed transactions ${failed:-?})"
	fi
	printf '%s\n' "$out"
}

tg_log "warm-up: ${WARMUP_SECONDS}s of pgbench -C per configuration"
for cfg in "${CONFIGS[@]}"; do
	out=$(run_pgbench "$cfg" "$WARMUP_SECONDS")
	tg_log "  ${LABEL[$cfg]}: $(sed -n 's/^tps = \([0-9]*\.[0-9]\).*/\1/p' <<<"$out") conn/s"
done
if [ "$FEATURE" = 1 ]; then
	# counters from here on: the timed runs only (and the psql sessions over
	# the Unix socket, reason local)
	psql_c C -c "SELECT trading_guard.reset_connection_stats()" >/dev/null
	psql_c B -c "SELECT trading_guard.reset_connection_stats()" >/dev/null
	# the security events of the timed runs: those after this id, once the
	# warm-up's are written
	wait_events_written C
	EV_MARK=$(psql_c C -c "SELECT coalesce(max(id), 0) FROM trading_guard.security_events")
fi

declare -A CPS_RUNS=() CT_RUNS=() CPU_RUNS=() TXNS=()
tg_log "timing: $ROUNDS interleaved rounds x ${#CONFIGS[@]} configurations x ${BENCH_SECONDS}s"
for r in $(seq 1 "$ROUNDS"); do
	for cfg in $(rotated "$r" "${CONFIGS[@]}"); do
		c=${CCL[$cfg]}
		wait_quiet "${C_PM[$c]}" "$c"
		t0=$(($(server_ticks "${C_PM[$c]}") + $(tg_worker_ticks "${C_PM[$c]}")))
		out=$(run_pgbench "$cfg" "$BENCH_SECONDS")
		wait_quiet "${C_PM[$c]}" "$c"
		t1=$(($(server_ticks "${C_PM[$c]}") + $(tg_worker_ticks "${C_PM[$c]}")))
		cps=$(sed -n 's/^tps = \([0-9.]*\) (including reconnection times).*/\1/p' <<<"$out")
		txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
		ct=$(sed -n 's/^average connection time = \([0-9.]*\) ms.*/\1/p' <<<"$out")
		if [ -z "$cps" ] || [ -z "$txns" ] || [ -z "$ct" ] || [ "$txns" -eq 0 ]; then
			printf '%s\n' "$out" >&2
			tg_die "no connections/s in pgbench output"
		fi
		cps=$(printf '%.1f' "$cps")
		cpu=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$txns" 'BEGIN { printf "%.0f", d * 1e6 / hz / n }')
		CPS_RUNS[$cfg]="${CPS_RUNS[$cfg]:-} $cps"
		CT_RUNS[$cfg]="${CT_RUNS[$cfg]:-} $ct"
		CPU_RUNS[$cfg]="${CPU_RUNS[$cfg]:-} $cpu"
		TXNS[$cfg]=$((${TXNS[$cfg]:-0} + txns))
		tg_log "  round $r/$ROUNDS ${LABEL[$cfg]}: $cps conn/s, connection time $ct ms, server CPU $cpu µs/conn"
	done
done

# ---------------------------------------------------------------------------
# checks after timing: C's guard saw every timed connection, allowed by rule 50
# ---------------------------------------------------------------------------
NOTES=()
if [ "$FEATURE" = 1 ]; then
	read -r n_ev n_rule50 < <(psql_c C -F ' ' -c "SELECT count(*), count(*) FILTER (WHERE decision = 'allowed' AND reason = 'rule' AND rule = 50)
		FROM trading_guard.connection_events WHERE client_addr IS NOT NULL AND role_name = '$ROLE' AND ssl_version IS NOT NULL")
	if [ "$n_ev" -eq 0 ] || [ "$n_rule50" -ne "$n_ev" ]; then
		psql_c C -c "SELECT decision, reason, rule, role_name, count(*) FROM trading_guard.connection_events GROUP BY 1, 2, 3, 4" >&2
		tg_die "cluster C: of the $n_ev TLS connections of $ROLE in connection_events, $n_rule50 are 'allowed, rule, rule 50'"
	fi
	read -r n_allowed n_refused < <(psql_c C -F ' ' -c "SELECT coalesce(sum(connections) FILTER (WHERE decision = 'allowed' AND reason = 'rule'), 0),
		coalesce(sum(connections) FILTER (WHERE decision <> 'allowed'), 0) FROM trading_guard.connection_stats")
	if [ "$n_allowed" -lt "${TXNS[C]}" ] || [ "$n_refused" -ne 0 ]; then
		psql_c C -c "SELECT * FROM trading_guard.connection_stats" >&2
		tg_die "cluster C: connection_stats counts $n_allowed connections allowed by a rule (the timed runs made ${TXNS[C]}) and $n_refused not allowed"
	fi
	CHECK_TXT="C enforced: before timing a plaintext connection was refused (no_tls) and a TLS connection of a role no rule allows (no_matching_rule), the benchmark role's TLS connection was allowed by rule 50; after timing, all $n_ev TLS connections of $ROLE in connection_events (the ring's last ones) were allowed by rule 50, and connection_stats counted $n_allowed connections allowed by a rule (timed runs: ${TXNS[C]} transactions), none refused. B (policy off) let a plaintext connection through."
	# every connection allowed by a rule is a row of security_events once
	# the events worker has written what was queued until now
	wait_events_written C
	ev_dropped=$(psql_c C -c "SELECT dropped_total FROM trading_guard.security_event_queue")
	n_ev_rule=$(psql_c C -c "SELECT count(*) FROM trading_guard.security_events
		WHERE id > $EV_MARK AND event_type = 'login' AND outcome = 'allowed' AND reason = 'rule' AND rule = 50 AND role_name = '$ROLE'")
	if [ "$n_ev_rule" -ne "$n_allowed" ] || [ "$ev_dropped" -ne 0 ]; then
		tg_die "cluster C: security_events holds $n_ev_rule logins of $ROLE allowed by rule 50 since the timed runs began, connection_stats counts $n_allowed; the queue dropped $ev_dropped"
	fi
	EV_VERIFY=$(psql_c C -F ' ' -c "SELECT ok, rows_checked FROM trading_guard.verify_security_events()")
	[ "${EV_VERIFY%% *}" = t ] || tg_die "cluster C: verify_security_events() after the runs: $EV_VERIFY"
	CHECK_TXT="$CHECK_TXT Security events: every one of the $n_allowed connections allowed by a rule in the timed runs is a row of trading_guard.security_events (login, allowed, rule 50), none dropped from the queue; verify_security_events() ok over ${EV_VERIFY#* } rows."
	tg_log "  C: $n_ev_rule allowed logins in security_events, none dropped, verify_security_events ok"
	n_b=$(psql_c B -c "SELECT coalesce(sum(connections), 0) FROM trading_guard.connection_stats")
	[ "$n_b" -eq 0 ] || NOTES+=("NOTE: cluster B (connection_policy = off) counted $n_b connections in connection_stats during the timed runs; off should record nothing.")
	tg_log "  C: $n_ev TLS connections of $ROLE in connection_events, all allowed by rule 50; connection_stats: $n_allowed allowed by a rule, none refused"
else
	CHECK_TXT="**WARNING: the connection guard is not in the installed build** (no parameter trading_guard.connection_policy): the trading_guard.* settings of B and C were ignored, so B and C measure preloading only, and C's enforcement and connection_events checks were skipped."
fi

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
PG_VERSION=$(psql_c A -c "SHOW server_version")
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
SSL_LIB=$(openssl version | awk '{ print $1, $2 }')

declare -A MED=()
for cfg in "${CONFIGS[@]}"; do
	# shellcheck disable=SC2086
	MED[$cfg]=$(median ${CPS_RUNS[$cfg]})
done
# median of the per-round ratios to A, for information (same round, so
# less sensitive to slow drifts of the machine's load)
paired_ratio() {
	local _a _x i p=()
	read -ra _a <<<"${CPS_RUNS[A]}"
	read -ra _x <<<"${CPS_RUNS[$1]}"
	for i in "${!_a[@]}"; do p+=("$(ratio "${_x[$i]}" "${_a[$i]}")"); done
	printf '%.3f' "$(median "${p[@]}")"
}
C_RATIO=$(ratio "${MED[C]}" "${MED[A]}")
C_OK=$(awk -v r="$C_RATIO" 'BEGIN { print (r >= 0.97) ? "PASS" : "MISS" }')
C_EV_OK=$(awk -v r="$C_RATIO" 'BEGIN { print (r >= 0.95) ? "PASS" : "MISS" }')

{
	echo "### Connection guard: cost of a new TLS connection"
	echo
	echo "Command: \`$CMD\`  "
	echo "Machine: $(nproc) CPUs ($CPU), Linux $(uname -r); load average (1, 5, 15 min) at start $LOAD_START, at end $(cut -d ' ' -f 1-3 /proc/loadavg)  "
	echo "PostgreSQL $PG_VERSION, $SSL_LIB; TLS: ${TLS_INFO[A]} (self-signed RSA 2048 server certificate made at run time)  "
	echo "Connection guard: $FEATURE_TXT  "
	echo "Three clusters side by side, identical but for the settings below: fsync on, synchronous_commit off, autovacuum off, jit off, ssl on;" \
		"pg_hba.conf \`local all all trust\`, \`hostssl all all 127.0.0.1/32 trust\`, \`hostnossl all all 127.0.0.1/32 trust\` (for D and the plaintext checks).  "
	echo "Load: \`pgbench ${PGBENCH_OPTS[*]} -T $BENCH_SECONDS -f select1.sql \"host=127.0.0.1 port=N sslmode=require dbname=$DB user=$ROLE\"\` (select1.sql: \`SELECT 1;\`, one new connection per transaction, so conn/s = pgbench's tps including reconnection times);" \
		"a ${WARMUP_SECONDS}s warm-up of each, then $ROUNDS interleaved rounds (order rotated each round)."
	echo
	echo "| config | median conn/s | ratio vs A | per-round conn/s | connection time ms (median) | server CPU µs/conn (median) |"
	echo "|---|---:|---:|---|---:|---:|"
	for cfg in "${CONFIGS[@]}"; do
		# shellcheck disable=SC2086
		printf '| %s | %.1f | %s× | %s | %.3f | %.0f |\n' "${LABEL[$cfg]}" "${MED[$cfg]}" "$(ratio "${MED[$cfg]}" "${MED[A]}")" \
			"$(join_runs "${CPS_RUNS[$cfg]}")" "$(median ${CT_RUNS[$cfg]})" "$(median ${CPU_RUNS[$cfg]})"
	done
	echo
	spread_txt="" max_spread=0
	for cfg in "${CONFIGS[@]}"; do
		# shellcheck disable=SC2086
		sp=$(spread ${CPS_RUNS[$cfg]})
		spread_txt="$spread_txt${spread_txt:+, }${cfg} $sp %"
		[ "$sp" -gt "$max_spread" ] && max_spread=$sp
	done
	echo "Run-to-run spread of conn/s ((max - min) / median): $spread_txt  "
	if [ "$max_spread" -gt 10 ]; then
		echo "**The conn/s of one configuration varied by more than 10 % between rounds: other load on the machine. The server CPU per connection is the steadier comparison; rerun on a quiet machine for the conn/s target.**  "
	fi
	echo "Connection time: pgbench's average connection time (client side: TCP + TLS handshake + authentication + backend start-up, as the client waits for it).  "
	echo "Server CPU per connection: CPU time of the postmaster (the fork), of the reaped backends (its cutime + cstime) and of trading_guard's events worker and sealer ($CLK_TCK ticks/s), divided by the transactions; it moves less than conn/s with the machine's other load.  "
	echo "For comparison, the issue quotes \"TLS connection setup ≈ 200 conn/s vs 390 plaintext on this machine\" (TLS = 0.51× plaintext); here A (TLS) = $(ratio "${MED[A]}" "${MED[D]}")× D (plaintext)."
	echo
	echo "Allowlist of C (\`trading_guard.rules\`, 50 rules; the benchmark role $ROLE, which is a member of no group named in the rules, is first allowed by rule 50):"
	echo
	echo '```'
	tr ';' '\n' <<<"$RULES" | sed 's/^ *//' | awk '{ printf "%2d  %s\n", NR, $0 }'
	echo '```'
	echo
	echo "$CHECK_TXT"
	for n in "${NOTES[@]}"; do
		echo
		echo "$n"
	done
	echo
	echo "| target | measured | result |"
	echo "|---|---:|---|"
	echo "| C (enforce, 50 rules, every attempt recorded) ≥ 0.95× A (not preloaded) conn/s (security events) | ${C_RATIO}× (median of per-round ratios: $(paired_ratio C)×) | $C_EV_OK |"
	echo "| C ≥ 0.97× A (the connection guard's target, set before the events) | ${C_RATIO}× | $C_OK |"
	echo "| (for reference) B (preloaded, policy off) vs A | $(ratio "${MED[B]}" "${MED[A]}")× (per-round: $(paired_ratio B)×) | — |"
	# shellcheck disable=SC2086
	echo "| (for reference) C vs A, server CPU per connection | $(ratio "$(median ${CPU_RUNS[C]})" "$(median ${CPU_RUNS[A]})")× | — |"
	echo
	echo "Wall time: $(($(date +%s) - T_START)) s"
} >"$BDIR/report.md"

publish_report "$BDIR/report.md" connections
