#!/usr/bin/env bash
# test/run-tests.sh — build, install and run every test suite of trading_guard,
# exactly as CI does (.ci/run calls this script).
#
#   test/run-tests.sh
#
# Works on a fresh Debian 12 machine as root (CI) or as a normal user with sudo:
# installs the missing Debian packages, builds with warnings as errors, installs
# the extension, then, as the unprivileged runner user (see test/lib.sh) and in
# a runner-owned copy of the test inputs, runs
#   1. pg_regress             REGRESS / REGRESS_OPTS from the Makefile
#   2. pg_isolation_regress   ISOLATION / ISOLATION_OPTS from the Makefile
#   3. the TAP tests          PROVE_TESTS from the Makefile, through prove
# Every suite runs even when an earlier one failed.  Outputs (diffs, server
# logs, TAP logs) are copied to test/out/.  The last line printed is
#   N passed, N failed
# counted per pg_regress / isolation test and per TAP assertion.  The exit
# status is non-zero when anything failed or a suite ran no test at all.
#
# Environment: TG_SUITE_TIMEOUT (seconds per suite, default 420);
# TG_SUITES (default "regress isolation tap") to run only some suites while
# developing -- CI always runs all three; TG_REGRESS, TG_ISOLATION and
# TG_TAP_FILES (test names, spec names, file globs) to run only some tests of
# a suite instead of the Makefile's lists.

set -euo pipefail

# shellcheck source=test/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TG_SUITE_TIMEOUT=${TG_SUITE_TIMEOUT:-420}
TG_SUITES=${TG_SUITES:-regress isolation tap}
want() { [[ " $TG_SUITES " == *" $1 "* ]]; }

# perl: prove and Test::More (perl core); the rest comes from $TG_PACKAGES.
# shellcheck disable=SC2086 # a word list
tg_ensure_packages $TG_PACKAGES perl
tg_build_install

BINDIR=$("$PG_CONFIG" --bindir)
PGXS_DIR=$("$PG_CONFIG" --pkglibdir)/pgxs
PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PGXS_DIR/src/test/isolation/pg_isolation_regress
TAP_LIB=$PGXS_DIR/src/test/perl
[ -x "$PG_REGRESS" ] || tg_die "pg_regress not found at $PG_REGRESS"
[ -x "$PG_ISOLATION_REGRESS" ] || tg_die "pg_isolation_regress not found at $PG_ISOLATION_REGRESS"
[ -f "$TAP_LIB/PostgreSQL/Test/Cluster.pm" ] || tg_die "PostgreSQL::Test::Cluster not found under $TAP_LIB"

# The Makefile holds the only lists of tests and their options.
mkvar() {
	make -s --no-print-directory -C "$TG_REPO" PG_CONFIG="$PG_CONFIG" "print-$1"
}
REGRESS=${TG_REGRESS:-$(mkvar REGRESS)}
REGRESS_OPTS=$(mkvar REGRESS_OPTS)
ISOLATION=${TG_ISOLATION:-$(mkvar ISOLATION)}
ISOLATION_OPTS=$(mkvar ISOLATION_OPTS)
PROVE_TESTS=${TG_TAP_FILES:-$(mkvar PROVE_TESTS)}

# A stable UTF-8 locale for every server the tests start (initdb takes its
# encoding from the environment); messages stay in English.
unset LC_ALL LC_CTYPE LC_COLLATE LC_NUMERIC LC_MONETARY LC_TIME LANGUAGE
export LANG=C.UTF-8 LC_MESSAGES=C

# A copy of the test inputs that the runner owns: the checkout may sit where
# the runner cannot read or write (/root).
WORK=$(tg_runner_dir trading_guard-tests)
tg_log "running the tests as $(tg_runner) in $WORK"
(cd "$TG_REPO" && tar -cf - --exclude=test/out Makefile ./*.control sql expected test tools) |
	(cd "$WORK" && tg_as_runner tar -xf -)

# The key ring of the pg_regress and isolation servers: one key made for
# this run, never kept (the Makefile does the same for make installcheck).
TRADING_GUARD_MASTER_KEY="1 $(openssl rand -hex 32)"
export TRADING_GUARD_MASTER_KEY

OUT=$TG_REPO/test/out
rm -rf "$OUT"
mkdir -p "$OUT"

TOTAL_PASS=0
TOTAL_FAIL=0
SUMMARY=()
FAILED_SUITES=()

# Record one suite's result: name, passed, failed.
record() {
	local name=$1 pass=$2 fail=$3
	TOTAL_PASS=$((TOTAL_PASS + pass))
	TOTAL_FAIL=$((TOTAL_FAIL + fail))
	SUMMARY+=("$(printf '%-12s %4d passed, %4d failed' "$name:" "$pass" "$fail")")
	[ "$fail" -eq 0 ] || FAILED_SUITES+=("$name")
	printf '==> %s: %d passed, %d failed\n' "$name" "$pass" "$fail"
}

# Run a command as the runner inside $WORK, bounded in time, its output shown
# and saved in log file $1; the exit status goes to $RC (this never fails, so
# that the later suites still run).
run_in_work() {
	local log=$1
	shift
	RC=0
	(cd "$WORK" && tg_as_runner timeout --kill-after=30 "$TG_SUITE_TIMEOUT" "$@") 2>&1 |
		tee "$log" || RC=${PIPESTATUS[0]}
	[ "$RC" -ne 124 ] || tg_log "timed out after ${TG_SUITE_TIMEOUT}s (TG_SUITE_TIMEOUT): $(basename "$log")"
	return 0
}

# Stop any server a killed suite left behind under $WORK.
stop_leftover_servers() {
	local pidfile
	while IFS= read -r pidfile; do
		tg_log "stopping leftover server $(dirname "$pidfile")"
		(cd "$WORK" && tg_as_runner "$BINDIR/pg_ctl" -D "$(dirname "$pidfile")" \
			-m immediate -w stop >/dev/null 2>&1) || true
	done < <(find "$WORK" -name postmaster.pid 2>/dev/null)
}

# However the script ends, leave no server running and no copy behind (the
# outputs worth keeping are in test/out).
trap 'stop_leftover_servers 2>/dev/null; rm -rf "$WORK"' EXIT

# Count pg_regress / pg_isolation_regress results in log $1 (PG 15 format
# "test name ... ok", and the TAP-like "ok N - name" of PG 16 and later).
# A "failed (ignored)" test counts as failed.  Prints "passed failed".
count_regress() {
	local log=$1 pass fail
	pass=$(grep -Ec '\.\.\. ok( |$)|^ok [0-9]+ ' "$log" || true)
	fail=$(grep -Eic '\.\.\. failed|^not ok [0-9]+ ' "$log" || true)
	echo "$pass $fail"
}

# Suite 1 and 2: a pg_regress-style driver.
#   name  driver  outdir-in-WORK  opts  tests
run_regress_suite() {
	local name=$1 driver=$2 outdir=$3 opts=$4 tests=$5
	local log=$OUT/$name.log rc pass fail
	tg_log "suite $name: $tests"
	if [ -z "$tests" ]; then
		echo "no tests listed in the Makefile" >"$log"
		record "$name" 0 1
		return
	fi
	# shellcheck disable=SC2086 # the option and test lists are word lists
	run_in_work "$log" "$driver" --bindir="$BINDIR" --inputdir=. $opts $tests
	rc=$RC
	stop_leftover_servers
	read -r pass fail < <(count_regress "$log")
	if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		tg_log "suite $name: driver exited with status $rc"
		fail=1
	fi
	if [ $((pass + fail)) -eq 0 ]; then
		tg_log "suite $name ran no test"
		fail=1
	fi
	# Keep what is needed to understand a failure.
	mkdir -p "$OUT/$name"
	local f
	for f in regression.diffs regression.out results log; do
		[ -e "$WORK/$outdir/$f" ] && cp -r "$WORK/$outdir/$f" "$OUT/$name/"
	done
	# The temporary instance is kept when a test failed: keep its server log.
	local inst
	inst=$(grep -Eo -- '--temp-instance=[^ ]+' <<<"$opts" | head -n1 | cut -d= -f2-)
	if [ -n "$inst" ] && [ -e "$WORK/$inst/log" ]; then
		cp -r "$WORK/$inst/log" "$OUT/$name/server-log"
	fi
	record "$name" "$pass" "$fail"
	if [ "$fail" -ne 0 ] && [ -s "$WORK/$outdir/regression.diffs" ]; then
		echo "---- $name: regression.diffs (first 200 lines) ----"
		head -n 200 "$WORK/$outdir/regression.diffs"
		echo "---- end of $name diffs ----"
	fi
	return 0
}

# Suite 3: TAP tests, one prove per file so each file's result is known.
# A file that dies, exits with an unexpected status or breaks its plan counts
# as one failure on top of its failed assertions.
run_tap_suite() {
	local name=tap pass=0 fail=0 files=() f log rc p n x pattern
	# PROVE_TESTS is a list of globs relative to the checkout.
	for pattern in $PROVE_TESTS; do
		while IFS= read -r f; do
			[ -n "$f" ] && files+=("$f")
		done < <(cd "$WORK" && compgen -G "$pattern" | sort)
	done
	tg_log "suite $name: ${files[*]:-none}"
	mkdir -p "$OUT/$name"
	# Like PGXS's prove_installcheck, on a clean tmp_check.
	rm -rf "$WORK/tmp_check"
	for f in "${files[@]}"; do
		log=$OUT/$name/$(basename "$f" .pl).prove.log
		run_in_work "$log" env \
			PATH="$BINDIR:$PATH" \
			PG_REGRESS="$PG_REGRESS" \
			TESTDIR="$WORK" \
			PERL5LIB="$TAP_LIB:$WORK/test${PERL5LIB:+:$PERL5LIB}" \
			PG_TEST_TIMEOUT_DEFAULT="${PG_TEST_TIMEOUT_DEFAULT:-120}" \
			prove -v -I "$TAP_LIB" -I test "$f"
		rc=$RC
		stop_leftover_servers
		p=$(grep -Ec '^ok [0-9]+' "$log" || true)
		n=$(grep -Ec '^not ok [0-9]+' "$log" || true)
		x=0
		if grep -q 'Parse errors:' "$log"; then
			x=1 # no plan, bad plan, ...
		elif grep -Eq '\(exited [0-9]+\)' "$log"; then
			local exited
			exited=$(grep -Eo '\(exited [0-9]+\)' "$log" | grep -Eo '[0-9]+' | head -n1)
			[ "$exited" -eq "$(( n > 254 ? 254 : n ))" ] || x=1 # died
		elif [ "$rc" -ne 0 ] && [ "$n" -eq 0 ]; then
			x=1 # prove failed for a reason we did not parse
		fi
		[ "$x" -eq 0 ] || tg_log "$f: the test script died or broke its plan (prove exit $rc)"
		pass=$((pass + p))
		fail=$((fail + n + x))
		if [ $((n + x)) -ne 0 ]; then
			echo "---- $f: failed; tail of its logs ----"
			tail -n 40 "$log"
			local rlog
			rlog=$WORK/tmp_check/log/regress_log_$(basename "$f" .pl)
			if [ -f "$rlog" ]; then
				echo "---- $(basename "$rlog") (last 80 lines) ----"
				tail -n 80 "$rlog"
			fi
			echo "---- end of $f ----"
		fi
	done
	[ -e "$WORK/tmp_check/log" ] && cp -r "$WORK/tmp_check/log" "$OUT/$name/"
	if [ $((pass + fail)) -eq 0 ]; then
		tg_log "suite $name ran no test"
		fail=1
	fi
	record "$name" "$pass" "$fail"
}

want regress && run_regress_suite regress "$PG_REGRESS" . "$REGRESS_OPTS" "$REGRESS"
want isolation &&
	run_regress_suite isolation "$PG_ISOLATION_REGRESS" output_iso "$ISOLATION_OPTS" "$ISOLATION"
want tap && run_tap_suite
[ ${#SUMMARY[@]} -gt 0 ] || tg_die "TG_SUITES=\"$TG_SUITES\" names no suite"

echo
echo "Summary (outputs in test/out/):"
printf '  %s\n' "${SUMMARY[@]}"
[ ${#FAILED_SUITES[@]} -eq 0 ] || echo "  failing suites: ${FAILED_SUITES[*]}"
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
