#!/usr/bin/env bash
# test/bench/audit.sh — what does the row-level audit trail cost?
#
# Four identical trades tables: no audit / a PL/pgSQL row trigger writing
# to_jsonb() images into a plain audit table / pgaudit object-level write
# logging / trading_guard.enable_audit.
#
#   A. TPS (pgbench, 2 clients, simple protocol) of two workloads, insert-only
#      and insert+update ("mixed"), interleaved rounds, median per variant,
#      and the backends' CPU time per transaction;
#   B. seconds for a COPY of COPY_ROWS rows, then for an UPDATE of UPDATE_ROWS
#      of them, into / of the table without audit and the one audited by
#      trading_guard (and, for context, the PL/pgSQL one), interleaved rounds;
#   C. instructions per insert transaction under callgrind, which do not
#      depend on the machine's load at all;
#   D. bytes per row: trading_guard.audit_log (heap, TOAST and indexes) per
#      audited INSERT and per audited UPDATE, against the audited trades
#      table's own bytes per row, in a database of their own.
#
# Usage (as root or as a user with sudo):
#   test/bench/audit.sh
# Environment:
#   BENCH_SECONDS=10    duration of each pgbench run of part A
#   ROUNDS=5            interleaved rounds of part A, per workload (>= 3)
#   PRELOAD_ROWS=100000 rows in each table before a run of the mixed workload
#                       (the UPDATEs pick one of them at random)
#   COPY_ROWS=1000000   rows of the COPY of part B
#   UPDATE_ROWS=100000  rows of the UPDATE of part B (<= COPY_ROWS)
#   COPY_ROUNDS=3       interleaved rounds of part B
#   PLPGSQL_COPY=1      0: leave the (slow) PL/pgSQL table out of part B
#   CG_SMALL=200 CG_LARGE=1200  transactions of the two callgrind runs of part C
#   SIZE_ROWS=100000    rows inserted (then updated) by part D
#   PARTS="A B C D"     which parts to run
#   PGAUDIT_CLUSTER=auto  auto: one cluster for every variant if a check shows
#                       that pgaudit logs the pgaudit table's statements only,
#                       else a second cluster for pgaudit; "shared" or
#                       "separate" forces one of the two arrangements
#   BENCH_SKIP_BUILD=1  do not build/install the extension first
#
# It creates its own temporary cluster(s) (fsync on, synchronous_commit off,
# autovacuum on, shared_preload_libraries = 'pgaudit,trading_guard'), removes
# them at exit, prints a markdown report and writes it to
# test/out/bench-audit.md.  A missed target prints MISS and does not fail the
# script; any real error does (including an audit that did not record every
# row).

set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BENCH_SECONDS=${BENCH_SECONDS:-10}
ROUNDS=${ROUNDS:-5}
PRELOAD_ROWS=${PRELOAD_ROWS:-100000}
COPY_ROWS=${COPY_ROWS:-1000000}
UPDATE_ROWS=${UPDATE_ROWS:-100000}
COPY_ROUNDS=${COPY_ROUNDS:-3}
PLPGSQL_COPY=${PLPGSQL_COPY:-1}
CG_SMALL=${CG_SMALL:-200}
CG_LARGE=${CG_LARGE:-1200}
PARTS=${PARTS:-A B C D}
SIZE_ROWS=${SIZE_ROWS:-100000}
PGAUDIT_CLUSTER=${PGAUDIT_CLUSTER:-auto}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-0}

positive_ints BENCH_SECONDS ROUNDS PRELOAD_ROWS COPY_ROWS UPDATE_ROWS COPY_ROUNDS CG_SMALL CG_LARGE SIZE_ROWS
min_rounds ROUNDS
[ "$CG_LARGE" -gt "$CG_SMALL" ] || tg_die "CG_LARGE ($CG_LARGE) must be larger than CG_SMALL ($CG_SMALL)"
[[ $PLPGSQL_COPY =~ ^[01]$ ]] || tg_die "PLPGSQL_COPY must be 0 or 1 (got '$PLPGSQL_COPY')"
[[ $PGAUDIT_CLUSTER =~ ^(auto|shared|separate)$ ]] ||
	tg_die "PGAUDIT_CLUSTER must be auto, shared or separate (got '$PGAUDIT_CLUSTER')"
[[ $BENCH_SKIP_BUILD =~ ^[01]$ ]] || tg_die "BENCH_SKIP_BUILD must be 0 or 1 (got '$BENCH_SKIP_BUILD')"
PART_A=0 PART_B=0 PART_C=0 PART_D=0
for p in $PARTS; do
	case $p in
	A) PART_A=1 ;;
	B) PART_B=1 ;;
	C) PART_C=1 ;;
	D) PART_D=1 ;;
	*) tg_die "PARTS may contain only A, B, C and D (got '$PARTS')" ;;
	esac
done
[ $((PART_A + PART_B + PART_C + PART_D)) -gt 0 ] || tg_die "PARTS is empty"

T_START=$(date +%s)
CMD="BENCH_SECONDS=$BENCH_SECONDS ROUNDS=$ROUNDS PRELOAD_ROWS=$PRELOAD_ROWS COPY_ROWS=$COPY_ROWS UPDATE_ROWS=$UPDATE_ROWS COPY_ROUNDS=$COPY_ROUNDS PLPGSQL_COPY=$PLPGSQL_COPY CG_SMALL=$CG_SMALL CG_LARGE=$CG_LARGE SIZE_ROWS=$SIZE_ROWS PARTS=\"$PARTS\" PGAUDIT_CLUSTER=$PGAUDIT_CLUSTER BENCH_SKIP_BUILD=$BENCH_SKIP_BUILD test/bench/audit.sh"

# ---------------------------------------------------------------------------
# build, install
# ---------------------------------------------------------------------------
# shellcheck disable=SC2086
tg_ensure_packages $TG_PACKAGES "postgresql-$TG_PG_MAJOR-pgaudit" valgrind
if [ "$BENCH_SKIP_BUILD" != 1 ]; then
	tg_build_install
fi

BIN=$("$PG_CONFIG" --bindir)
[ -x "$BIN/pgbench" ] || tg_die "pgbench not found in $BIN"
[ -f "$("$PG_CONFIG" --pkglibdir)/pgaudit.so" ] || tg_die "pgaudit is not installed"

# ---------------------------------------------------------------------------
# clusters
# ---------------------------------------------------------------------------
# "main" always exists and holds every variant but, when the check below
# fails (or PGAUDIT_CLUSTER=separate), pgaudit's, which then gets a cluster
# "pga" of its own with the same settings.
BDIR=$(tg_runner_dir tg-bench-audit)
DB=bench
declare -A C_DIR=() C_PORT=() C_PM=()
CLUSTERS=()

cleanup() {
	local rc=$? c
	trap - EXIT INT TERM
	for c in "${CLUSTERS[@]}"; do
		stop_server "${C_DIR[$c]}/data"
		if [ "$rc" -ne 0 ] && [ -f "${C_DIR[$c]}/server.log" ]; then
			echo "---- last lines of the server log of cluster $c ----" >&2
			grep -v 'AUDIT: OBJECT,' "${C_DIR[$c]}/server.log" | tail -n 40 >&2 || true
		fi
	done
	[ -n "${CG_SERVER:-}" ] && wait "$CG_SERVER" 2>/dev/null
	rm -rf "$BDIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SERVER_SETTINGS="fsync on, synchronous_commit off, shared_buffers 512MB, autovacuum on, jit off, checkpoint_timeout 30min, max_wal_size 8GB"

# Create, configure and start cluster $1 preloading the libraries $2.
new_cluster() {
	local c=$1 preload=$2 port
	C_DIR[$c]=$BDIR/$c
	port=$(tg_free_port $((55800 + ${#CLUSTERS[@]} * 10)))
	C_PORT[$c]=$port
	CLUSTERS+=("$c")
	tg_as_runner mkdir "${C_DIR[$c]}"
	tg_log "cluster $c: initdb in ${C_DIR[$c]}/data (port $port), shared_preload_libraries = '$preload'"
	tg_as_runner "$BIN/initdb" -D "${C_DIR[$c]}/data" -U postgres -A trust -E UTF8 --locale=C \
		>"${C_DIR[$c]}/initdb.log" 2>&1 || { cat "${C_DIR[$c]}/initdb.log" >&2; tg_die "initdb failed"; }
	# autovacuum stays on: the BRIN indexes of trading_guard.audit_log are
	# summarized by autovacuum (autosummarize), which is part of their cost.
	# pgaudit.log stays 'none': only object-level logging, i.e. only the
	# statements on tables the auditor role has privileges on.
	cat >>"${C_DIR[$c]}/data/postgresql.conf" <<EOF

# --- test/bench/audit.sh ---
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '${C_DIR[$c]}'
shared_preload_libraries = '$preload'
fsync = on
synchronous_commit = off
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
autovacuum = on
jit = off
log_destination = 'stderr'
logging_collector = off
pgaudit.role = 'auditor'
pgaudit.log = 'none'
trading_guard.key_file = 'trading_guard.key'
trading_guard.seal_databases = '$DB'
trading_guard.seal_interval = 200
trading_guard.digest_interval = 0
EOF
	# the key ring the sealing worker needs: made now, never kept
	# shellcheck disable=SC2016
	tg_as_runner bash -c 'umask 077 && { printf "1 "; openssl rand -hex 32; } >"$1"' _ "${C_DIR[$c]}/data/trading_guard.key" ||
		tg_die "could not write the key file"
	start_cluster "$c"
}

start_cluster() {
	local c=$1
	tg_as_runner "$BIN/pg_ctl" -D "${C_DIR[$c]}/data" -l "${C_DIR[$c]}/server.log" -w -t 120 start >/dev/null ||
		tg_die "the server of cluster $c did not start"
	C_PM[$c]=$(head -n 1 "${C_DIR[$c]}/data/postmaster.pid")
}

stop_cluster() {
	tg_as_runner "$BIN/pg_ctl" -D "${C_DIR[$1]}/data" -m fast -w -t 300 stop >/dev/null ||
		tg_die "the server of cluster $1 did not stop"
}

# psql against a database of cluster $1: unaligned, tuples only, stop on error.
psql_c() {
	local c=$1
	shift
	tg_as_runner "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "${C_DIR[$c]}" -p "${C_PORT[$c]}" \
		-U postgres -d "${PSQL_DB:-$DB}" "$@"
}

# ---------------------------------------------------------------------------
# variants
# ---------------------------------------------------------------------------
VARIANTS=(none plpgsql pgaudit tg)
declare -A LABEL=(
	[none]="no audit"
	[plpgsql]="PL/pgSQL row trigger"
	[pgaudit]="pgaudit object-level"
	[tg]="trading_guard.enable_audit"
)
declare -A VCL=([none]=main [plpgsql]=main [pgaudit]=main [tg]=main)	# cluster of each variant
SYMBOLS="ARRAY['BTCUSDT','ETHUSDT','BNBUSDT','SOLUSDT','XRPUSDT','ADAUSDT','DOGEUSDT','AVAXUSDT']"
NSYM=8

psql_v() {
	local v=$1
	shift
	psql_c "${VCL[$v]}" "$@"
}

trades_ddl() { # $1 = table name
	printf 'CREATE TABLE %s (id bigserial PRIMARY KEY, account int NOT NULL, symbol text NOT NULL, side text NOT NULL, quantity numeric NOT NULL, price numeric NOT NULL, executed_at timestamptz NOT NULL DEFAULT now(), note text);\n' "$1"
}

# SQL that sets up variant $1 in an empty database of its cluster.
variant_sql() {
	local v=$1
	trades_ddl "trades_$v"
	case $v in
	plpgsql)
		# the audit trigger as it is commonly written
		cat <<'EOF'
CREATE TABLE bench_audit (id bigserial PRIMARY KEY, table_name text NOT NULL, op text NOT NULL,
	actor text NOT NULL, changed_at timestamptz NOT NULL, old_row jsonb, new_row jsonb);
CREATE FUNCTION bench_audit_row() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	INSERT INTO bench_audit (table_name, op, actor, changed_at, old_row, new_row)
	VALUES (TG_TABLE_NAME, TG_OP, current_user, now(),
	        CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
	        CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END);
	RETURN NULL;
END
$f$;
CREATE TRIGGER trades_plpgsql_audit AFTER INSERT OR UPDATE OR DELETE ON trades_plpgsql
	FOR EACH ROW EXECUTE FUNCTION bench_audit_row();
EOF
		;;
	pgaudit)
		cat <<'EOF'
CREATE EXTENSION IF NOT EXISTS pgaudit;
DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auditor') THEN
		CREATE ROLE auditor NOLOGIN;
	END IF;
END $$;
GRANT INSERT, UPDATE, DELETE ON trades_pgaudit TO auditor;
EOF
		;;
	tg)
		# (the extension itself is created by the caller: it exists in
		# every database of the main cluster)
		echo "SELECT trading_guard.enable_audit('public.trades_tg'::regclass);"
		;;
	esac
}

# The server log that pgaudit's lines go to, its size, and the number of
# pgaudit lines in it after byte offset $1 (all, or those about table $2).
pga_log() { echo "${C_DIR[${VCL[pgaudit]}]}/server.log"; }
log_size() { stat -c %s "$(pga_log)"; }
audit_lines() { # offset [table]
	local pat='AUDIT: OBJECT,'
	[ -n "${2:-}" ] && pat="AUDIT: OBJECT,[0-9]*,[0-9]*,WRITE,[A-Z]*,TABLE,public\\.$2,"
	tail -c +$(($1 + 1)) "$(pga_log)" | grep -c -- "$pat" || true
}

# ---------------------------------------------------------------------------
# pgaudit arrangement: one cluster if object-level logging of trades_pgaudit
# logs nothing for the other tables (their triggers write to tables of their
# own, which the auditor role has no privilege on), which keeps the
# interleaving fair: every variant runs on the same server at the same time.
# The check runs in a scratch database, so that a failure leaves no pgaudit
# objects behind in a cluster that will not preload it.
# ---------------------------------------------------------------------------
ARRANGEMENT=""
if [ "$PGAUDIT_CLUSTER" = separate ]; then
	new_cluster main trading_guard
else
	new_cluster main pgaudit,trading_guard
	PSQL_DB=postgres psql_c main -c "CREATE DATABASE audit_check"
	{
		echo "CREATE EXTENSION trading_guard;"
		for v in "${VARIANTS[@]}"; do variant_sql "$v"; done
	} |
		PSQL_DB=audit_check psql_c main >/dev/null
	check_ok=1 check_txt=""
	for v in "${VARIANTS[@]}"; do
		off=$(log_size)
		PSQL_DB=audit_check psql_c main \
			-c "INSERT INTO trades_$v (account, symbol, side, quantity, price) VALUES (1, 'BTCUSDT', 'BUY', 1, 60000)" \
			-c "UPDATE trades_$v SET quantity = quantity + 1, note = 'upd' WHERE id = 1"
		n_all=$(audit_lines "$off")
		n_own=$(audit_lines "$off" "trades_$v")
		check_txt="$check_txt${check_txt:+, }trades_$v $n_all"
		if [ "$v" = pgaudit ]; then
			if [ "$n_all" -ne 2 ] || [ "$n_own" -ne 2 ]; then check_ok=0; fi
		else
			if [ "$n_all" -ne 0 ]; then check_ok=0; fi
		fi
	done
	PSQL_DB=postgres psql_c main -c "DROP DATABASE audit_check"
	tg_log "pgaudit check (AUDIT lines for one INSERT + one UPDATE): $check_txt"
	if [ "$check_ok" = 1 ] && [ "$PGAUDIT_CLUSTER" != separate ]; then
		ARRANGEMENT="one cluster for all variants, \`shared_preload_libraries = 'pgaudit,trading_guard'\`, \`pgaudit.role = 'auditor'\`, \`pgaudit.log = 'none'\`, INSERT/UPDATE/DELETE on trades_pgaudit granted to auditor only; checked first: one INSERT + one UPDATE per table logged $check_txt AUDIT lines. So pgaudit's hooks are loaded (but log nothing) for the other variants too."
	else
		[ "$PGAUDIT_CLUSTER" = shared ] &&
			tg_die "pgaudit logs statements on other tables than trades_pgaudit ($check_txt) and PGAUDIT_CLUSTER=shared"
		tg_log "pgaudit does not log trades_pgaudit alone: a cluster of its own for pgaudit"
		stop_cluster main
		echo "shared_preload_libraries = 'trading_guard'" >>"${C_DIR[main]}/data/postgresql.conf"
		start_cluster main
	fi
fi
if [ -z "$ARRANGEMENT" ]; then
	new_cluster pga pgaudit
	VCL[pgaudit]=pga
	ARRANGEMENT="two clusters with the same settings, run interleaved: \`shared_preload_libraries = 'trading_guard'\` for the other variants, \`'pgaudit'\` with \`pgaudit.role = 'auditor'\`, \`pgaudit.log = 'none'\` and INSERT/UPDATE/DELETE on trades_pgaudit granted to auditor for pgaudit${check_txt:+ (one cluster was not used: one INSERT + one UPDATE per table logged $check_txt AUDIT lines)}${check_txt:- (PGAUDIT_CLUSTER=separate)}."
fi

tg_log "creating the bench database, extensions and tables"
for c in "${CLUSTERS[@]}"; do
	PSQL_DB=postgres psql_c "$c" -c "CREATE DATABASE $DB"
	{
		# trading_guard is preloaded in main, so its extension exists
		# there whichever variants the cluster holds
		[ "$c" = main ] && echo "CREATE EXTENSION trading_guard;"
		for v in "${VARIANTS[@]}"; do
			[ "${VCL[$v]}" = "$c" ] && variant_sql "$v"
		done
	} >"$BDIR/setup-$c.sql"
	psql_c "$c" -f "$BDIR/setup-$c.sql" >"$BDIR/setup-$c.out" ||
		{ cat "$BDIR/setup-$c.out" >&2; tg_die "setup of cluster $c failed"; }
done
n=$(psql_v tg -c "SELECT count(*) FROM trading_guard.audited_tables WHERE table_name = 'public.trades_tg'::regclass")
[ "$n" -eq 1 ] || tg_die "trades_tg is not in trading_guard.audited_tables after enable_audit"

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# Rows the audit of variant $1 has recorded so far: rows of trading_guard's
# log for trades_tg, rows of bench_audit, pgaudit lines in the server log.
# (pgaudit's count is the log's size: audit_lines counts from there.)
audit_mark() {
	case $1 in
	tg) psql_v tg -c "SELECT count(*) FROM trading_guard.audit_log WHERE table_oid = 'public.trades_tg'::regclass" ;;
	plpgsql) psql_v plpgsql -c "SELECT count(*) FROM bench_audit" ;;
	pgaudit) log_size ;;
	none) echo 0 ;;
	esac
}
# Fail unless the audit of variant $1 recorded $3 rows since audit_mark
# printed $2 (what: $4).  Also: no pgaudit line for another variant.
check_audit() {
	local v=$1 mark=$2 want=$3 what=$4 got
	case $v in
	tg) got=$(($(audit_mark tg) - mark)) ;;
	plpgsql) got=$(($(audit_mark plpgsql) - mark)) ;;
	pgaudit) got=$(audit_lines "$mark" trades_pgaudit) ;;
	none) got=0 want=0 ;;
	esac
	[ "$got" -eq "$want" ] ||
		tg_die "variant '${LABEL[$v]}' recorded $got audit rows for $what, expected $want"
}

# Wait (at most 5 min) for the autovacuum workers of every cluster to finish:
# a vacuum of the previous variant's tables would slow the next run down.
wait_autovacuum() {
	local c i n
	for c in "${CLUSTERS[@]}"; do
		for i in $(seq 1 600); do
			n=$(PSQL_DB=postgres psql_c "$c" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
			[ "$n" -eq 0 ] && break
			[ "$i" -eq 600 ] && tg_log "  (autovacuum still busy on cluster $c after 5 min; going on)"
			sleep 0.5
		done
	done
}

# Empty trades_$1 (and bench_audit): TRUNCATE ... RESTART IDENTITY.  The
# trading_guard log cannot be truncated (it is append-only by design) and
# keeps growing through the whole benchmark, as it would in production.
truncate_variant() {
	local v=$1
	psql_v "$v" -c "TRUNCATE trades_$v RESTART IDENTITY"
	[ "$v" = plpgsql ] && psql_v "$v" -c "TRUNCATE bench_audit RESTART IDENTITY"
	return 0
}
# The same PRELOAD_ROWS rows (ids 1..PRELOAD_ROWS) in trades_$1.  The audits
# of plpgsql and trading_guard record them too (trading_guard's triggers are
# ENABLE ALWAYS); bench_audit is emptied afterwards like before any run.
preload_variant() {
	local v=$1
	psql_v "$v" -c "INSERT INTO trades_$v (account, symbol, side, quantity, price)
		SELECT 1 + g % 1000, ($SYMBOLS)[1 + g % $NSYM], CASE WHEN g % 2 = 0 THEN 'BUY' ELSE 'SELL' END,
		       (1 + g % 100000) * 0.001, (100 + (g::bigint * 7919) % 9999900) * 0.01
		  FROM generate_series(1, $PRELOAD_ROWS) AS g"
	[ "$v" = plpgsql ] && psql_v "$v" -c "TRUNCATE bench_audit RESTART IDENTITY"
	return 0
}
# The state before every run of workload $2 on variant $1: an empty table
# for insert-only; for mixed a freshly preloaded one (re-created before every
# run rather than kept between runs, so that every run of every variant
# updates the same PRELOAD_ROWS fresh rows, not rows earlier runs updated);
# vacuumed (visibility map, hint bits), CHECKPOINT, autovacuum idle.
reset_variant() {
	local v=$1 w=$2
	truncate_variant "$v"
	[ "$w" = mixed ] && preload_variant "$v"
	psql_v "$v" -c "VACUUM ANALYZE trades_$v"
	[ "$v" = plpgsql ] && psql_v "$v" -c "VACUUM ANALYZE bench_audit"
	wait_autovacuum
	psql_v "$v" -c "CHECKPOINT"
}

# ---------------------------------------------------------------------------
# pgbench scripts
# ---------------------------------------------------------------------------
# one trade: random account 1..1000, symbol, side, quantity 0.001..100,
# price 1.00..100000.00
for v in "${VARIANTS[@]}"; do
	cat >"$BDIR/insert_$v.sql" <<EOF
\\set a random(1, 1000)
\\set s random(1, $NSYM)
\\set b random(0, 1)
\\set q random(1, 100000)
\\set p random(100, 10000000)
INSERT INTO trades_$v (account, symbol, side, quantity, price) VALUES (:a, (${SYMBOLS})[:s], CASE WHEN :b = 0 THEN 'BUY' ELSE 'SELL' END, :q * 0.001, :p * 0.01);
EOF
	# one transaction, as an application writes it: BEGIN, the new trade,
	# an update of an existing one (ids 1..maxid are preloaded), COMMIT
	{
		sed -n '/^\\set/p' "$BDIR/insert_$v.sql"
		echo "\\set id random(1, :maxid)"
		echo "BEGIN;"
		sed -n '/^INSERT/p' "$BDIR/insert_$v.sql"
		echo "UPDATE trades_$v SET quantity = quantity + 1, note = 'upd' WHERE id = :id;"
		echo "END;"
	} >"$BDIR/mixed_$v.sql"
done
chmod a+r "$BDIR"/*.sql
# rows each workload's transaction changes (and must leave in the audit)
declare -A ROWS_PER_TXN=([insert]=1 [mixed]=2)

PGBENCH_OPTS=(-n -M simple -c 2 -j 2)

# Run pgbench for variant $1, workload $2 with extra options; output to
# stdout.  Fails (with pgbench's output on stderr) when pgbench fails or a
# transaction failed.
run_pgbench() {
	local v=$1 w=$2 c=${VCL[$1]} out rc=0 failed
	shift 2
	out=$(tg_as_runner "$BIN/pgbench" "${PGBENCH_OPTS[@]}" "$@" -D maxid="$PRELOAD_ROWS" \
		-f "$BDIR/${w}_$v.sql" -h "${C_DIR[$c]}" -p "${C_PORT[$c]}" -U postgres "$DB" 2>&1) || rc=$?
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	if [ "$rc" -ne 0 ] || [ "${failed:-0}" != 0 ] || grep -q 'aborted' <<<"$out"; then
		printf '%s\n' "$out" >&2
		tg_die "pgbench ($w) on variant '${LABEL[$v]}' failed (exit $rc, failed transactions ${failed:-?})"
	fi
	printf '%s\n' "$out"
}
txns_of() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$1"; }

# ---------------------------------------------------------------------------
# sanity: every variant runs both workloads, and its audit records every row
# (and pgaudit logs nothing for the other tables)
# ---------------------------------------------------------------------------
if [ "$PART_A" = 1 ] || [ "$PART_C" = 1 ]; then
	tg_log "sanity: both workloads on every variant, and what each audit recorded"
	for v in "${VARIANTS[@]}"; do
		for w in insert mixed; do
			reset_variant "$v" "$w"
			m=$(audit_mark "$v")
			lm=$(log_size)
			run_pgbench "$v" "$w" -t 100 >/dev/null
			check_audit "$v" "$m" $((200 * ROWS_PER_TXN[$w])) "200 $w transactions"
			# pgaudit logs for its own table only
			if [ "$v" != pgaudit ] && [ "${VCL[$v]}" = "${VCL[pgaudit]}" ]; then
				n=$(audit_lines "$lm")
				[ "$n" -eq 0 ] || tg_die "pgaudit logged $n lines for variant '${LABEL[$v]}'"
			fi
			read -r n nu na < <(psql_v "$v" -F ' ' -c "SELECT count(*), count(*) FILTER (WHERE note = 'upd'), count(DISTINCT account) FROM trades_$v")
			if [ "$w" = insert ]; then
				[ "$n" -eq 200 ] || tg_die "variant '${LABEL[$v]}': 200 inserts left $n rows"
			else
				if [ "$n" -ne $((PRELOAD_ROWS + 200)) ] || [ "$nu" -eq 0 ]; then
					tg_die "variant '${LABEL[$v]}': 200 mixed transactions left $n rows ($nu updated), expected $((PRELOAD_ROWS + 200))"
				fi
			fi
			[ "$na" -gt 1 ] || tg_die "variant '${LABEL[$v]}': rows do not vary"
		done
		tg_log "  ${LABEL[$v]}: ok (insert: 200 rows audited; mixed: 200 inserts + 200 updates audited)"
	done
	# what one audit row looks like, for the report
	TG_SAMPLE=$(psql_v tg -c "SELECT operation || ' ' || row_key || ' ' || coalesce(old_row::text, '-') || ' -> ' || coalesce(new_row::text, '-') || ' ' || coalesce(changed_columns::text, '')
		FROM trading_guard.audit_log WHERE table_oid = 'public.trades_tg'::regclass AND operation = 'UPDATE' LIMIT 1")
	tg_log "  a trading_guard audit row: $TG_SAMPLE"
fi

# ---------------------------------------------------------------------------
# A. TPS of the two workloads
# ---------------------------------------------------------------------------
declare -A TPS_RUNS=() CPU_RUNS=()
SEAL_LAG=""
if [ "$PART_A" = 1 ]; then
	A_FROM=$(psql_v tg -c "SELECT coalesce(max(batch), 0) FROM trading_guard.audit_seal")
	for w in insert mixed; do
		tg_log "$w TPS: $ROUNDS interleaved rounds x ${#VARIANTS[@]} variants x ${BENCH_SECONDS}s"
		for r in $(seq 1 "$ROUNDS"); do
			for v in $(rotated "$r" "${VARIANTS[@]}"); do
				c=${VCL[$v]}
				reset_variant "$v" "$w"
				m=$(audit_mark "$v")
				wait_quiet "${C_PM[$c]}" "$c"
				t0=$(reaped_ticks "${C_PM[$c]}")
				out=$(run_pgbench "$v" "$w" -T "$BENCH_SECONDS")
				wait_quiet "${C_PM[$c]}" "$c"
				t1=$(reaped_ticks "${C_PM[$c]}")
				tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' <<<"$out")
				txns=$(txns_of "$out")
				if [ -z "$tps" ] || [ -z "$txns" ]; then
					printf '%s\n' "$out" >&2
					tg_die "no TPS in pgbench output"
				fi
				check_audit "$v" "$m" $((txns * ROWS_PER_TXN[$w])) "$txns $w transactions"
				tps=$(printf '%.0f' "$tps")
				cpu=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$txns" 'BEGIN { printf "%.1f", d * 1e6 / hz / n }')
				TPS_RUNS[$w.$v]="${TPS_RUNS[$w.$v]:-} $tps"
				CPU_RUNS[$w.$v]="${CPU_RUNS[$w.$v]:-} $cpu"
				tg_log "  $w round $r/$ROUNDS ${LABEL[$v]}: $tps TPS, $cpu µs backend CPU per transaction"
			done
		done
	done
	# The sealing worker ran through all of part A: how long did each audit
	# row of those runs wait for its batch (sealed_at - event_time)?
	until [ "$(psql_v tg -c "SELECT backlog_rows FROM trading_guard.seal_status")" = 0 ]; do sleep 0.1; done
	SEAL_LAG=$(psql_v tg -c "
		WITH ids AS (SELECT s.sealed_at, generate_series(lower(r), upper(r) - 1) AS id
		               FROM trading_guard.audit_seal s, unnest(s.ids) r
		              WHERE s.batch > $A_FROM)
		SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)::numeric, 3) || ' ' ||
		       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)::numeric, 3) || ' ' ||
		       round(max(lag)::numeric, 3) || ' ' || count(*) || ' ' ||
		       (SELECT count(*) FROM trading_guard.audit_seal WHERE batch > $A_FROM)
		  FROM (SELECT extract(epoch FROM ids.sealed_at - l.event_time) AS lag
		          FROM trading_guard.audit_log l JOIN ids USING (id)
		         WHERE l.operation IN ('INSERT', 'UPDATE')) x")
	[ "$(psql_v tg -c "SELECT ok FROM trading_guard.verify_audit()")" = t ] || tg_die "verify_audit() is not ok after part A"
fi

# ---------------------------------------------------------------------------
# B. COPY
# ---------------------------------------------------------------------------
COPY_VARIANTS=(none tg)
[ "$PLPGSQL_COPY" = 1 ] && COPY_VARIANTS+=(plpgsql)
declare -A COPY_RUNS=()
declare -A UPDATE_RUNS=()
if [ "$PART_B" = 1 ]; then
	CSV=$BDIR/trades.csv
	COPY_COLS="account, symbol, side, quantity, price, executed_at, note"
	tg_log "COPY: generating $CSV ($COPY_ROWS rows)"
	psql_v none -c "COPY (SELECT 1 + (g::bigint * 7919) % 1000, ($SYMBOLS)[1 + g % $NSYM],
			CASE WHEN g % 3 = 0 THEN 'SELL' ELSE 'BUY' END, (1 + g % 100000) * 0.001,
			(100 + (g::bigint * 104729) % 9999900) * 0.01,
			timestamptz '2024-01-01 00:00:00+00' + g * interval '10 ms',
			CASE WHEN g % 10 = 0 THEN 'block trade' END
		FROM generate_series(1, $COPY_ROWS) AS g) TO '$CSV' (FORMAT csv)"
	# Seconds for COPY of the file into trades_$1 (server-side, the wall
	# clock around psql: its start-up is a few ms of several seconds).
	copy_s() {
		local v=$1 m t0 t1 n
		truncate_variant "$v"
		wait_autovacuum
		psql_v "$v" -c "CHECKPOINT"
		m=$(audit_mark "$v")
		t0=$(date +%s%N)
		psql_v "$v" -c "COPY trades_$v ($COPY_COLS) FROM '$CSV' (FORMAT csv)"
		t1=$(date +%s%N)
		n=$(psql_v "$v" -c "SELECT count(*) FROM trades_$v")
		[ "$n" -eq "$COPY_ROWS" ] || tg_die "COPY into trades_$v left $n rows, expected $COPY_ROWS"
		check_audit "$v" "$m" "$COPY_ROWS" "a COPY of $COPY_ROWS rows"
		awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'
	}
	# Seconds for one UPDATE of UPDATE_ROWS of the rows just copied into
	# trades_$1 (after a CHECKPOINT, autovacuum idle).
	update_s() {
		local v=$1 m t0 t1
		wait_autovacuum
		psql_v "$v" -c "CHECKPOINT"
		m=$(audit_mark "$v")
		t0=$(date +%s%N)
		psql_v "$v" -c "UPDATE trades_$v SET quantity = quantity + 0.001, note = 'upd'
			WHERE id < (SELECT min(id) FROM trades_$v) + $UPDATE_ROWS"
		t1=$(date +%s%N)
		check_audit "$v" "$m" "$UPDATE_ROWS" "an UPDATE of $UPDATE_ROWS rows"
		awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'
	}
	tg_log "COPY: $COPY_ROUNDS interleaved rounds x ${#COPY_VARIANTS[@]} variants x $COPY_ROWS rows"
	for r in $(seq 1 "$COPY_ROUNDS"); do
		for v in $(rotated "$r" "${COPY_VARIANTS[@]}"); do
			s=$(copy_s "$v")
			COPY_RUNS[$v]="${COPY_RUNS[$v]:-} $s"
			u=$(update_s "$v")
			UPDATE_RUNS[$v]="${UPDATE_RUNS[$v]:-} $u"
			tg_log "  round $r/$COPY_ROUNDS ${LABEL[$v]}: COPY $s s, UPDATE $u s"
		done
	done
	for v in "${COPY_VARIANTS[@]}"; do truncate_variant "$v"; done
	tg_as_runner rm -f "$CSV"
fi

# ---------------------------------------------------------------------------
# D. bytes per row
# ---------------------------------------------------------------------------
# In a database of its own (its audit_log holds only these rows and the
# enable_audit event): SIZE_ROWS trades inserted by one statement (the same
# rows as part B's COPY), then every one of them updated once.  Sizes are
# pg_total_relation_size (heap, free space and visibility maps, TOAST and
# indexes) and pg_relation_size of the heap alone, after a VACUUM (which
# sets the maps and summarizes the BRIN ranges as autosummarize would).
declare -A SZ=()
if [ "$PART_D" = 1 ]; then
	tg_log "bytes per row: $SIZE_ROWS trades inserted, then updated, in database rowsize"
	PSQL_DB=postgres psql_c main -c "CREATE DATABASE rowsize"
	{
		echo "CREATE EXTENSION trading_guard;"
		variant_sql tg
	} | PSQL_DB=rowsize psql_c main >/dev/null
	# sizes of the trades table and of audit_log (total, heap, each index)
	sizes() {
		PSQL_DB=rowsize psql_c main -F ' ' -c "VACUUM trades_tg" -c "VACUUM trading_guard.audit_log" \
			-c "SELECT pg_total_relation_size('trades_tg'), pg_relation_size('trades_tg'),
				pg_total_relation_size('trading_guard.audit_log'), pg_relation_size('trading_guard.audit_log'),
				(SELECT count(*) FROM trading_guard.audit_log),
				(SELECT string_agg(c.relname || '=' || pg_relation_size(c.oid), ',' ORDER BY c.relname)
				   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
				  WHERE i.indrelid = 'trading_guard.audit_log'::regclass)"
	}
	read -r 'SZ[t0]' 'SZ[th0]' 'SZ[l0]' 'SZ[lh0]' 'SZ[n0]' 'SZ[i0]' < <(sizes)
	PSQL_DB=rowsize psql_c main -c "INSERT INTO trades_tg (account, symbol, side, quantity, price, executed_at, note)
		SELECT 1 + (g::bigint * 7919) % 1000, ($SYMBOLS)[1 + g % $NSYM],
			CASE WHEN g % 3 = 0 THEN 'SELL' ELSE 'BUY' END, (1 + g % 100000) * 0.001,
			(100 + (g::bigint * 104729) % 9999900) * 0.01,
			timestamptz '2024-01-01 00:00:00+00' + g * interval '10 ms',
			CASE WHEN g % 10 = 0 THEN 'block trade' END
		FROM generate_series(1, $SIZE_ROWS) AS g"
	read -r 'SZ[t1]' 'SZ[th1]' 'SZ[l1]' 'SZ[lh1]' 'SZ[n1]' 'SZ[i1]' < <(sizes)
	PSQL_DB=rowsize psql_c main -c "UPDATE trades_tg SET quantity = quantity + 0.001, note = 'upd'"
	read -r 'SZ[t2]' 'SZ[th2]' 'SZ[l2]' 'SZ[lh2]' 'SZ[n2]' 'SZ[i2]' < <(sizes)
	if [ $((SZ[n1] - SZ[n0])) -ne "$SIZE_ROWS" ] || [ $((SZ[n2] - SZ[n1])) -ne "$SIZE_ROWS" ]; then
		tg_die "part D: audit_log grew by $((SZ[n1] - SZ[n0])) and $((SZ[n2] - SZ[n1])) rows, expected $SIZE_ROWS each"
	fi
	PSQL_DB=postgres psql_c main -c "DROP DATABASE rowsize"
	tg_log "  trades: $(((SZ[t1] - SZ[t0]) / SIZE_ROWS)) B/row; audit_log per INSERT: $(((SZ[l1] - SZ[l0]) / SIZE_ROWS)) B, per UPDATE: $(((SZ[l2] - SZ[l1]) / SIZE_ROWS)) B"
fi

# ---------------------------------------------------------------------------
# C. instructions per transaction, under callgrind
# ---------------------------------------------------------------------------
# Instruction counts do not move with the machine's other load.  The main
# server is restarted under valgrind --tool=callgrind (autovacuum off, so
# that no worker's file is taken for the backend's); for each variant a
# one-client pgbench runs CG_SMALL and then CG_LARGE insert transactions
# (fixed random seed), and the difference of the two backends' totals
# divided by the difference of the transaction counts is the cost of one
# transaction, connection start-up excluded.
CG_VARIANTS=()
for v in "${VARIANTS[@]}"; do
	[ "${VCL[$v]}" = main ] && CG_VARIANTS+=("$v")
done
declare -A CG_RUNS=()
if [ "$PART_C" = 1 ]; then
	for v in "${CG_VARIANTS[@]}"; do truncate_variant "$v"; done
	CG_DIR=$BDIR/callgrind
	MDATA=${C_DIR[main]}/data
	tg_as_runner mkdir -p "$CG_DIR"
	tg_log "instructions per transaction: restarting the server under callgrind"
	stop_cluster main
	tg_as_runner valgrind --tool=callgrind --trace-children=yes \
		--callgrind-out-file="$CG_DIR/cg.%p" \
		"$BIN/postgres" -D "$MDATA" -c autovacuum=off >"$BDIR/callgrind-server.log" 2>&1 &
	CG_SERVER=$!
	for _ in $(seq 1 240); do
		tg_as_runner "$BIN/pg_isready" -q -h "${C_DIR[main]}" -p "${C_PORT[main]}" && break
		kill -0 "$CG_SERVER" 2>/dev/null || { cat "$BDIR/callgrind-server.log" >&2; tg_die "the server did not start under callgrind"; }
		sleep 0.5
	done
	tg_as_runner "$BIN/pg_isready" -q -h "${C_DIR[main]}" -p "${C_PORT[main]}" ||
		tg_die "the server under callgrind is not ready"
	C_PM[main]=$(head -n 1 "$MDATA/postmaster.pid")

	# Instructions executed by the backend of one pgbench run of variant $1
	# with $2 transactions, into CG_INSTR (not printed: cg_run must not run
	# in a subshell, CG_OLD_PIDS has to persist).  Callgrind writes a
	# process's file when it exits, named after its pid.  The files of the
	# run are those of pids that were not children of the postmaster before
	# it and whose file no earlier run took (a process that was still exiting
	# when a run began is never taken for one of the run's); pgbench also
	# opens a short set-up connection, so the busiest of them is the backend
	# that ran the transactions.  Process titles are of no use here: under
	# valgrind /proc/PID/cmdline shows valgrind's command line.
	CG_OLD_PIDS=" ${C_PM[main]} "	# the postmaster's file stays empty until it stops
	cg_run() {
		local v=$1 n=$2 pid f t i alive
		for pid in $(pm_child_pids "${C_PM[main]}"); do
			CG_OLD_PIDS="$CG_OLD_PIDS$pid "
		done
		tg_as_runner "$BIN/pgbench" -n -M simple -c 1 -t "$n" --random-seed=1 \
			-f "$BDIR/insert_$v.sql" -h "${C_DIR[main]}" -p "${C_PORT[main]}" -U postgres "$DB" >/dev/null 2>&1 ||
			tg_die "pgbench under callgrind failed for variant '${LABEL[$v]}'"
		# a reaped process has written its file completely
		for i in $(seq 1 2400); do
			alive=0
			for pid in $(pm_child_pids "${C_PM[main]}"); do
				case $CG_OLD_PIDS in *" $pid "*) ;; *) alive=1 ;; esac
			done
			[ "$alive" = 0 ] && break
			sleep 0.05
		done
		[ "$alive" = 0 ] || tg_die "the backends of pgbench under callgrind did not exit"
		CG_INSTR=0
		for f in "$CG_DIR"/cg.*; do
			[ -e "$f" ] || continue
			pid=${f##*.}
			case $CG_OLD_PIDS in *" $pid "*) continue ;; esac
			CG_OLD_PIDS="$CG_OLD_PIDS$pid "
			t=$(awk '/^totals:/ { print $2 }' "$f")
			[ -n "$t" ] || tg_die "callgrind file $f has no totals"
			[ "$t" -gt "$CG_INSTR" ] && CG_INSTR=$t
		done
		[ "$CG_INSTR" -gt 0 ] || tg_die "no callgrind output for the pgbench backend of variant '${LABEL[$v]}'"
	}
	cg_run none "$CG_SMALL"	# warm up; also takes the files of earlier processes
	for r in 1 2 3; do
		for v in $(rotated "$r" "${CG_VARIANTS[@]}"); do
			cg_run "$v" "$CG_SMALL"
			small=$CG_INSTR
			cg_run "$v" "$CG_LARGE"
			large=$CG_INSTR
			per=$(awk -v a="$large" -v b="$small" -v n=$((CG_LARGE - CG_SMALL)) 'BEGIN { printf "%.0f", (a - b) / n }')
			CG_RUNS[$v]="${CG_RUNS[$v]:-} $per"
			tg_log "  round $r/3 ${LABEL[$v]}: $per instructions per transaction"
		done
	done
	stop_cluster main
	wait "$CG_SERVER" 2>/dev/null || true
	CG_SERVER=""
	start_cluster main
fi

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
PG_VERSION=$(psql_v tg -c "SHOW server_version")
PGA_VERSION=$(psql_v pgaudit -c "SELECT extversion FROM pg_extension WHERE extname = 'pgaudit'")
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
read -r LOG_ROWS LOG_SIZE < <(psql_v tg -F ' ' -c "SELECT count(*), pg_size_pretty(pg_total_relation_size('trading_guard.audit_log')) FROM trading_guard.audit_log")
declare -A WL_TITLE=(
	[insert]="insert-only: one INSERT of a random trade per transaction"
	[mixed]="mixed: BEGIN; INSERT of a random trade; UPDATE ... SET quantity = quantity + 1, note = 'upd' of a random one of the $PRELOAD_ROWS preloaded rows; END"
)
# targets of issue 11
declare -A WL_TARGET=([insert]=0.93 [mixed]=0.90)
TARGETS=()

{
	echo "### Audit trail overhead"
	echo
	echo "Command: \`$CMD\`  "
	echo "Machine: $(nproc) CPUs ($CPU), Linux $(uname -r)  "
	echo "PostgreSQL $PG_VERSION, pgaudit $PGA_VERSION  "
	echo "Server: $SERVER_SETTINGS (the BRIN indexes of trading_guard.audit_log use autosummarize, i.e. autovacuum work items); logs to stderr, into the \`pg_ctl -l\` file  "
	echo "pgaudit arrangement: $ARRANGEMENT  "
	echo "Variants (identical trades tables): no audit; PL/pgSQL AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW trigger inserting (TG_TABLE_NAME, TG_OP, current_user, now(), to_jsonb(OLD), to_jsonb(NEW)) into a table with a bigserial primary key; pgaudit object-level write logging; \`trading_guard.enable_audit\` (C statement-level triggers with transition tables)  "
	echo "Every run of parts A and B checks the audit: trading_guard.audit_log rows for trades_tg, bench_audit rows and pgaudit log lines grew by exactly the rows the run changed.  "
	echo "trading_guard.audit_log is append-only, so it is never truncated: it grows through the whole benchmark (at the end: $LOG_ROWS rows, $LOG_SIZE with indexes).  "
	echo "Sealing: the sealing worker runs through every part (\`trading_guard.seal_interval = 200ms\`, a key ring made at run time)."
	if [ -n "$SEAL_LAG" ]; then
		read -r lag50 lag99 lagmax lagrows lagbatches <<<"$SEAL_LAG"
		echo
		echo "Sealing lag during part A (its batch's sealed_at - the row's event_time, over the $lagrows audit rows of the TPS runs, in $lagbatches batches): p50 ${lag50} s, p99 ${lag99} s, max ${lagmax} s; target p99 ≤ 1 s: $(awk -v v="$lag99" 'BEGIN { print (v <= 1) ? "met" : "MISS" }')."
	fi
	if [ "$PART_A" = 1 ]; then
		echo
		echo "#### A. TPS"
		echo
		echo "\`pgbench ${PGBENCH_OPTS[*]} -T $BENCH_SECONDS\`, $ROUNDS interleaved rounds per workload (order rotated each round)." \
			"Before each run the variant's table (and bench_audit) is truncated; for the mixed workload it is then reloaded with the same $PRELOAD_ROWS rows" \
			"(reloaded rather than kept, so that every run updates the same fresh rows); VACUUM ANALYZE, autovacuum idle, CHECKPOINT."
		for w in insert mixed; do
			echo
			echo "${WL_TITLE[$w]}"
			echo
			echo "| variant | median TPS | runs | ratio vs no audit | backend CPU µs/txn (median) | CPU ratio vs no audit |"
			echo "|---|---:|---|---:|---:|---:|"
			# shellcheck disable=SC2086
			base_tps=$(median ${TPS_RUNS[$w.none]})
			# shellcheck disable=SC2086
			base_cpu=$(median ${CPU_RUNS[$w.none]})
			spread_txt=""
			for v in "${VARIANTS[@]}"; do
				# shellcheck disable=SC2086
				tm=$(median ${TPS_RUNS[$w.$v]})
				# shellcheck disable=SC2086
				cm=$(median ${CPU_RUNS[$w.$v]})
				printf '| %s | %.0f | %s | %s× | %.1f | %s× |\n' "${LABEL[$v]}" "$tm" \
					"$(join_runs "${TPS_RUNS[$w.$v]}")" "$(ratio "$tm" "$base_tps")" "$cm" "$(ratio "$cm" "$base_cpu")"
				# shellcheck disable=SC2086
				spread_txt="$spread_txt${spread_txt:+, }${LABEL[$v]} $(spread ${TPS_RUNS[$w.$v]}) % (CPU $(spread ${CPU_RUNS[$w.$v]}) %)"
			done
			# for information: median of the per-round ratios (same round,
			# so less sensitive to slow drifts of the machine's load)
			read -ra _none <<<"${TPS_RUNS[$w.none]}"
			read -ra _tg <<<"${TPS_RUNS[$w.tg]}"
			_paired=()
			for i in "${!_none[@]}"; do _paired+=("$(ratio "${_tg[$i]}" "${_none[$i]}")"); done
			# shellcheck disable=SC2086
			tg_r=$(ratio "$(median ${TPS_RUNS[$w.tg]})" "$base_tps")
			tg_ok=$(awk -v r="$tg_r" -v t="${WL_TARGET[$w]}" 'BEGIN { print (r >= t) ? "PASS" : "MISS" }')
			TARGETS+=("| trading_guard ≥ ${WL_TARGET[$w]}× no-audit TPS, $w | ${tg_r}× (median of per-round ratios: $(printf '%.3f' "$(median "${_paired[@]}")")×) | $tg_ok |")
			echo
			echo "Run-to-run spread ((max - min) / median): $spread_txt"
		done
		echo
		echo "Backend CPU per transaction: CPU time of the backends that served pgbench (the postmaster's cutime + cstime, $CLK_TCK ticks/s; an autovacuum worker that ended during the run counts too) divided by the transactions. It moves less than TPS with the machine's other load, but it does move; part C does not."
	fi
	# A table of the seconds of part B's variants in the associative array
	# named $1, for $2 rows each, and the run-to-run spread under it.
	seconds_table() {
		local -n runs=$1
		local rows=$2 base v sm spread_txt=""
		echo "| variant | median s | runs | ratio vs no audit | µs/row |"
		echo "|---|---:|---|---:|---:|"
		# shellcheck disable=SC2086
		base=$(median ${runs[none]})
		for v in "${COPY_VARIANTS[@]}"; do
			# shellcheck disable=SC2086
			sm=$(median ${runs[$v]})
			printf '| %s | %.2f | %s | %s× | %.2f |\n' "${LABEL[$v]}" "$sm" "$(join_runs "${runs[$v]}")" \
				"$(ratio "$sm" "$base")" "$(awk -v s="$sm" -v n="$rows" 'BEGIN { print s * 1e6 / n }')"
			# shellcheck disable=SC2086
			spread_txt="$spread_txt${spread_txt:+, }${LABEL[$v]} $(spread ${runs[$v]}) %"
		done
		echo
		echo "Run-to-run spread ((max - min) / median): $spread_txt"
	}
	if [ "$PART_B" = 1 ]; then
		echo
		echo "#### B. COPY"
		echo
		echo "Server-side \`COPY trades_X ($COPY_COLS) FROM '<csv>' (FORMAT csv)\` of $COPY_ROWS rows (wall clock around psql), table truncated, autovacuum idle and CHECKPOINT before each (so the autovacuum of trading_guard.audit_log that a COPY sets off is not in any time), $COPY_ROUNDS interleaved rounds (order rotated)."
		echo
		seconds_table COPY_RUNS "$COPY_ROWS"
		echo
		echo "Then one \`UPDATE trades_X SET quantity = quantity + 0.001, note = 'upd'\` of $UPDATE_ROWS of the copied rows (CHECKPOINT and autovacuum idle first), in the same rounds:"
		echo
		seconds_table UPDATE_RUNS "$UPDATE_ROWS"
		# shellcheck disable=SC2086
		base_s=$(median ${COPY_RUNS[none]})
		# shellcheck disable=SC2086
		copy_r=$(ratio "$(median ${COPY_RUNS[tg]})" "$base_s")
		copy_ok=$(awk -v r="$copy_r" 'BEGIN { print (r <= 1.6) ? "PASS" : "MISS" }')
		TARGETS+=("| trading_guard COPY ≤ 1.6× no-audit time | ${copy_r}× | $copy_ok |")
		# shellcheck disable=SC2086
		upd_r=$(ratio "$(median ${UPDATE_RUNS[tg]})" "$(median ${UPDATE_RUNS[none]})")
		upd_ok=$(awk -v r="$upd_r" 'BEGIN { print (r <= 1.6) ? "PASS" : "MISS" }')
		TARGETS+=("| trading_guard UPDATE ≤ 1.6× no-audit time | ${upd_r}× | $upd_ok |")
	fi
	if [ "$PART_C" = 1 ]; then
		echo
		echo "#### C. Instructions per insert transaction"
		echo
		echo "callgrind, one pgbench client, $CG_LARGE minus $CG_SMALL insert-only transactions, 3 rotated rounds, autovacuum off; machine load does not change these."
		echo
		echo "| variant | median instructions/txn | runs | ratio vs no audit | extra instructions/txn |"
		echo "|---|---:|---|---:|---:|"
		# shellcheck disable=SC2086
		ib=$(median ${CG_RUNS[none]})
		for v in "${CG_VARIANTS[@]}"; do
			# shellcheck disable=SC2086
			im=$(median ${CG_RUNS[$v]})
			printf '| %s | %.0f | %s | %s× | %+.0f |\n' "${LABEL[$v]}" "$im" "$(join_runs "${CG_RUNS[$v]}")" \
				"$(ratio "$im" "$ib")" "$(awk -v a="$im" -v b="$ib" 'BEGIN { print a - b }')"
		done
		echo
		spread_txt=""
		for v in "${CG_VARIANTS[@]}"; do
			# shellcheck disable=SC2086
			spread_txt="$spread_txt${spread_txt:+, }${LABEL[$v]} $(spread ${CG_RUNS[$v]}) %"
		done
		echo "Run-to-run spread ((max - min) / median): $spread_txt"
		[ "${VCL[pgaudit]}" = main ] || echo "(pgaudit ran in a cluster of its own, so it is not in this part.)"
		# shellcheck disable=SC2086
		ins_r=$(ratio "$(median ${CG_RUNS[tg]})" "$ib")
		ins_ok=$(awk -v r="$ins_r" 'BEGIN { print (r <= 1.10) ? "PASS" : "MISS" }')
		TARGETS+=("| trading_guard instructions per insert transaction ≤ 1.10× no audit | ${ins_r}× | $ins_ok |")
	fi
	if [ "$PART_D" = 1 ]; then
		# bytes per row: difference of sizes $1 and $2 (keys of SZ) / SIZE_ROWS
		per_row() { awk -v a="${SZ[$2]}" -v b="${SZ[$1]}" -v n="$SIZE_ROWS" 'BEGIN { printf "%.0f", (a - b) / n }'; }
		# the same for one index of audit_log, from the name=size lists
		idx_per_row() {
			awk -v a="${SZ[$2]}" -v b="${SZ[$1]}" -v ix="$3" -v n="$SIZE_ROWS" 'BEGIN {
				split(a, A, ","); split(b, B, ",")
				for (i in A) { split(A[i], p, "="); if (p[1] == ix) va = p[2] }
				for (i in B) { split(B[i], p, "="); if (p[1] == ix) vb = p[2] }
				printf "%.0f", (va - vb) / n }'
		}
		trow=$(per_row t0 t1)
		lrow=$(per_row l0 l1)
		echo
		echo "#### D. Bytes per row"
		echo
		echo "$SIZE_ROWS trades (part B's rows) inserted by one INSERT ... SELECT, then all of them updated once (\`SET quantity = quantity + 0.001, note = 'upd'\`), into a trades table audited by trading_guard, in a database of their own; growth of the sizes after a VACUUM of both tables, divided by the rows. Total: \`pg_total_relation_size\` (heap, maps, TOAST, indexes); heap: \`pg_relation_size\`."
		echo
		echo "| what | total B/row | heap B/row | indexes |"
		echo "|---|---:|---:|---|"
		echo "| trades (the audited table, with its primary key) | $trow | $(per_row th0 th1) | |"
		ixtxt=""
		for ix in $(tr ',' '\n' <<<"${SZ[i1]}" | cut -d= -f1); do
			ixtxt="$ixtxt${ixtxt:+, }$ix $(idx_per_row i0 i1 "$ix")"
		done
		echo "| audit_log, per audited INSERT | $lrow | $(per_row lh0 lh1) | $ixtxt |"
		ixtxt=""
		for ix in $(tr ',' '\n' <<<"${SZ[i2]}" | cut -d= -f1); do
			ixtxt="$ixtxt${ixtxt:+, }$ix $(idx_per_row i1 i2 "$ix")"
		done
		echo "| audit_log, per audited UPDATE | $(per_row l1 l2) | $(per_row lh1 lh2) | $ixtxt |"
		size_r=$(ratio "$lrow" "$trow")
		size_ok=$(awk -v r="$size_r" 'BEGIN { print (r <= 2) ? "PASS" : "MISS" }')
		TARGETS+=("| audit row (INSERT) ≤ 2× the audited row, bytes | ${size_r}× ($lrow vs $trow B) | $size_ok |")
	fi
	if [ ${#TARGETS[@]} -gt 0 ]; then
		echo
		echo "| target | measured | result |"
		echo "|---|---:|---|"
		printf '%s\n' "${TARGETS[@]}"
	fi
	echo
	echo "Wall time: $(($(date +%s) - T_START)) s"
} >"$BDIR/report.md"

publish_report "$BDIR/report.md" audit
