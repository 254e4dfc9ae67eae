# shellcheck shell=bash
# test/bench/common.sh — what every benchmark here shares: test/lib.sh, the
# checks of their knobs, the small statistics they report with, and the CPU
# time of a server's backends.  Source it; it defines functions and CLK_TCK.

# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# Median of the numbers given as arguments.
median() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) exit 1
		if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# a / b to three decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# (max - min) / median of the arguments, in %.
spread() {
	printf '%s\n' "$@" | sort -g | awk -v m="$(median "$@")" 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f", (hi - lo) * 100 / m }'
}

# The arguments joined with ", " (per-round figures in a table cell).
join_runs() { echo "$*" | sed 's/^ *//; s/ \+/, /g'; }

# Variants $2... in round $1, rotated by the round, so that no variant always
# runs first or last in a round (the machine's load drifts within a round too).
rotated() {
	local r=$1 i
	shift
	local vs=("$@")
	for i in "${!vs[@]}"; do
		echo "${vs[$(((i + r - 1) % ${#vs[@]}))]}"
	done
}

# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------

# Copy the report $1 to test/out/bench-$2.md and print it.
publish_report() {
	local out=$TG_REPO/test/out/bench-$2.md
	mkdir -p "$(dirname "$out")"
	cp "$1" "$out"
	echo
	cat "$out"
	tg_log "report written to $out"
}

# ---------------------------------------------------------------------------
# Knobs
# ---------------------------------------------------------------------------

# Refuse anything but a positive integer in each variable named.
positive_ints() {
	local v
	for v; do
		[[ ${!v} =~ ^[1-9][0-9]*$ ]] || tg_die "$v must be a positive integer (got '${!v}')"
	done
}

# A median wants at least three rounds: check each variable named.
min_rounds() {
	local v
	for v; do
		[ "${!v}" -ge 3 ] || tg_die "$v must be >= 3 (got ${!v})"
	done
}

# ---------------------------------------------------------------------------
# Server CPU time, read from the postmaster (pid $1)
# ---------------------------------------------------------------------------

# A postmaster's cutime + cstime grow by each backend's CPU time when it
# exits and is reaped; unlike TPS they hardly move with the load of other
# processes on a shared machine.  server_ticks adds the postmaster's own
# time (it forks every backend: what a connection benchmark wants).
# shellcheck disable=SC2034 # used by the benchmarks that source this file
CLK_TCK=$(getconf CLK_TCK)
reaped_ticks() { awk '{ print $16 + $17 }' "/proc/$1/stat"; }
server_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }
pm_child_pids() { cat /proc/"$1"/task/*/children; }

# CPU ticks (user + system) of postmaster $1's trading_guard workers (the
# events worker, the sealer): long-lived, so not in the postmaster's cutime.
tg_worker_ticks() {
	local pid title n=0
	for pid in $(pm_child_pids "$1"); do
		title=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)
		case $title in
		*"trading_guard sealer"* | *"trading_guard events"*)
			n=$((n + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0))) ;;
		esac
	done
	echo "$n"
}

# Backends of postmaster $1 not reaped yet: children that are neither one of
# its long-lived auxiliary processes (trading_guard's workers included: the
# sealer's CPU time is therefore not in the backends' figures, only in the
# TPS) nor an autovacuum worker.  One that has
# exited but is not reaped (a zombie, whose CPU time is not in cutime yet)
# has an empty cmdline and counts too.  (Under valgrind the titles show
# valgrind's command line: count children instead there.)
pending_backends() {
	local pid n=0 title
	for pid in $(pm_child_pids "$1"); do
		title=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)
		case $title in
		*"autovacuum worker"* | *checkpointer* | *"background writer"* | *walwriter* | \
			*"autovacuum launcher"* | *"logical replication launcher"* | *archiver* | \
			*"trading_guard key ring"* | *"trading_guard sealer"* | *"trading_guard events"*) ;;
		*) n=$((n + 1)) ;;
		esac
	done
	echo "$n"
}

# Wait until postmaster $1 (cluster $2, for the message) has reaped every
# backend: before a run, so that the CPU time of the sessions that prepared
# it is not counted; after it, so that all of the run's is.  (Comparing with
# a count of children taken before the run would be fooled by a backend that
# was still exiting then.)
wait_quiet() {
	local i
	for i in $(seq 1 1200); do
		[ "$(pending_backends "$1")" -eq 0 ] && return 0
		sleep 0.05
	done
	tg_die "backends on cluster $2 did not exit"
}

# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

# Stop the server of data directory $1, if it runs: fast, else immediate.
# For the cleanup traps: never fails ($BIN: the PostgreSQL binaries).
stop_server() {
	[ -f "$1/postmaster.pid" ] || return 0
	tg_as_runner "$BIN/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 ||
		tg_as_runner "$BIN/pg_ctl" -D "$1" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
}
