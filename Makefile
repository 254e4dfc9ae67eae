# trading_guard — PGXS build
#
#   make && sudo make install          build and install
#   make installcheck                  pg_regress + isolation + TAP, each on
#                                      its own temporary, preloaded instance
#   test/run-tests.sh                  everything, as CI runs it (see README)

EXTENSION  = trading_guard
EXTVERSION = $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(EXTENSION).control)

MODULE_big = trading_guard
OBJS = \
	src/trading_guard.o \
	src/shmem.o \
	src/numeric_guard.o \
	src/validate.o \
	src/registry.o \
	src/orders.o \
	src/order_stats.o \
	src/protect.o \
	src/audit.o \
	src/audit_writer.o \
	src/audit_ddl.o \
	src/audit_merge.o \
	src/utility_guard.o \
	src/run_sql.o \
	src/own_tables.o \
	src/conn_rules.o \
	src/conn_state.o \
	src/conn_guard.o \
	src/redact.o \
	src/keyring.o \
	src/vault.o \
	src/seal.o \
	src/seal_verify.o \
	src/seal_keys.o \
	src/events.o \
	src/restore.o \
	src/halt.o \
	src/risk_limits.o \
	src/checklist.o

# The 1.0 script stays as released; newer versions are reached through the
# upgrade scripts, by CREATE EXTENSION as well as by ALTER EXTENSION UPDATE.
DATA = sql/$(EXTENSION)--1.0.sql $(wildcard sql/$(EXTENSION)--*--*.sql)

PG_CPPFLAGS = -Isrc
# -Wextra minus unused parameters: fmgr and GUC hook signatures are fixed.
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter
ifeq ($(WERROR),1)
PG_CFLAGS += -Werror
endif
SHLIB_LINK += -lcrypto -lssl

# pg_regress: sql/*.sql against expected/*.out
REGRESS = \
	install \
	validate_symbol \
	validate_numeric \
	registry \
	check_order \
	protect_orders \
	audit \
	audit_types \
	audit_partitions \
	audit_guard \
	audit_writer \
	seal \
	own_objects \
	conn_rules \
	redact \
	vault \
	incident \
	hostile \
	upgrade \
	checklist \
	limits_full
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=test/regress.conf \
	--encoding=UTF8 --no-locale

# The regression servers' key ring: one key made for each run (never kept;
# test/run-tests.sh does the same)
installcheck: export TRADING_GUARD_MASTER_KEY = 1 $(shell openssl rand -hex 32)

# isolation specs: test/isolation/specs/*.spec
ISOLATION = registry_cache audit_concurrent audit_index_build vault_cache audit_cache halt_concurrent limit_concurrent \
	seal_concurrent
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=output_iso \
	--temp-instance=tmp_check_iso --temp-config=test/regress.conf \
	--encoding=UTF8 --no-locale

# TAP: test/t/*.pl
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = results regression.diffs regression.out tmp_check tmp_check_iso \
	output_iso log test/out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Used by test/run-tests.sh so that the lists above stay the only lists.
print-%:
	@echo $($*)
