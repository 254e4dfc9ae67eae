/*-------------------------------------------------------------------------
 *
 * own_tables.c
 *	  The extension's own tables that backends cache -- trading_guard.symbols
 *	  (the symbol registry, src/registry.c), trading_guard.audit_config (the
 *	  audit settings, src/audit.c), trading_guard.credential_store (the
 *	  vault, src/vault.c), the halts, limits and sign purposes of
 *	  src/halt.c and src/risk_limits.c -- and the one way those caches follow
 *	  them.
 *
 * Ordinary DML does not invalidate a relcache entry, so each of these tables
 * carries a statement trigger, cache_invalidate(), that does: the
 * invalidation then travels exactly like a catalog change.  One relcache
 * callback counts, per table, the invalidations this backend has taken in
 * (a generation), and forgets the table's OID, which is looked up again on
 * the next use (the extension may have been dropped and created again).
 *
 * A cache is loaded by tg_own_table_load_begin(), tg_own_table_read() and
 * tg_own_table_load_end(), and stamped with the generation load_begin
 * returned; it is valid while tg_own_table_current() says that generation
 * is still the table's.  Why that never keeps a stale copy, whatever
 * snapshot the caller holds:
 *
 *	- load_begin locks the table (AccessShareLock), which takes in the
 *	  invalidations already sent, and only then reads the generation;
 *	- tg_own_table_read reads with the latest snapshot, taken after that,
 *	  never the caller's (a REPEATABLE READ transaction's, or that of one
 *	  long statement, can predate changes whose invalidations this backend
 *	  has already taken in: a load with it would be stamped current and
 *	  stay stale in every later transaction);
 *	- a committing transaction becomes visible before it sends its
 *	  invalidations, so a change that snapshot misses sends its invalidation
 *	  after the generation was read: when this backend takes it in --
 *	  during the load, or any time later -- the generation moves on and the
 *	  copy just made is no longer current.
 *
 * A hit costs one comparison: no lock, no catalog access.  When a backend
 * takes in invalidations is up to PostgreSQL (whenever it locks a relation
 * it has not locked yet in the transaction, and at the start of each
 * transaction); a cache that must see other sessions' changes sooner calls
 * AcceptInvalidationMessages() itself (the vault does).
 *
 * Lifetime: the callback never frees anything; each cache frees its stale
 * copy when it next finds it not current.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "own_tables.h"
#include "run_sql.h"

static const char *const own_table_names[] = {
	[TG_OWN_SYMBOLS] = "symbols",
	[TG_OWN_AUDIT_CONFIG] = "audit_config",
	[TG_OWN_CREDENTIAL_STORE] = "credential_store",
	[TG_OWN_TRADING_HALTS] = "trading_halts",
	[TG_OWN_ORDER_LIMITS] = "order_limits",
	[TG_OWN_SIGN_LIMITS] = "sign_limits",
	[TG_OWN_SIGN_PURPOSES] = "sign_purposes",
};

StaticAssertDecl(lengthof(own_table_names) == TG_OWN_TABLES,
				 "one name per own table");

/* starts at 1: a cache stamped 0 (never loaded) is never current */
uint64		tg_own_table_generation[TG_OWN_TABLES] = {1, 1, 1, 1, 1, 1, 1};

/* InvalidOid: not looked up since the last invalidation of the table */
static Oid	own_relid[TG_OWN_TABLES];

static bool callback_registered = false;

/*
 * Relcache callback: one more invalidation of a table (or of every table,
 * on a cache reset).  While a table's OID is unknown any relation's
 * invalidation may be its, so it counts.  Runs while invalidations are taken
 * in, possibly in the middle of a load: it must not fail, allocate or read
 * the catalogs.
 */
static void
own_tables_invalidate(Datum arg, Oid relid)
{
	for (int t = 0; t < TG_OWN_TABLES; t++)
	{
		if (OidIsValid(relid) && OidIsValid(own_relid[t]) && relid != own_relid[t])
			continue;
		tg_own_table_generation[t]++;
		own_relid[t] = InvalidOid;
	}
}

/*
 * The OID of one of the extension's own tables, looked up once and again
 * after each invalidation of it.  Missing (the extension is not installed
 * in this database): InvalidOid if missing_ok, else an error.  May take in
 * invalidations (a catalog lookup can).
 */
Oid
tg_own_table_oid(TgOwnTable table, bool missing_ok)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(own_tables_invalidate, (Datum) 0);
		callback_registered = true;
	}
	if (!OidIsValid(own_relid[table]))
	{
		Oid			nsp = get_namespace_oid("trading_guard", true);
		Oid			relid = InvalidOid;

		if (OidIsValid(nsp))
			relid = get_relname_relid(own_table_names[table], nsp);
		if (!OidIsValid(relid))
		{
			if (missing_ok)
				return InvalidOid;
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("table trading_guard.%s does not exist",
							own_table_names[table]),
					 errhint("Run CREATE EXTENSION trading_guard.")));
		}
		own_relid[table] = relid;
	}
	return own_relid[table];
}

/*
 * Start loading a cache of table: lock the table, connect to SPI.  Returns
 * the generation to stamp the cache with.  Then tg_own_table_read() (as
 * often as needed) and tg_own_table_load_end().  The lock is held until the
 * end of the transaction, as the read's own lock is.
 */
uint64
tg_own_table_load_begin(TgOwnTable table)
{
	for (;;)
	{
		Oid			relid = tg_own_table_oid(table, false);

		LockRelationOid(relid, AccessShareLock);
		if (own_relid[table] == relid)
			break;

		/*
		 * The lock took in an invalidation of the table, perhaps its drop:
		 * look its OID up again, under the lock this time (as
		 * RangeVarGetRelidExtended does).
		 */
		UnlockRelationOid(relid, AccessShareLock);
	}
	tg_sql_connect();
	return tg_own_table_generation[table];
}

/*
 * One SELECT of a load, with the latest snapshot, as the owner of the
 * extension's schema (a cache holds the table as it is, whoever happens to
 * load it: the halts and limits are read in the triggers of roles that may
 * not read those tables); results in SPI_tuptable until
 * tg_own_table_load_end().  Returns the number of rows.
 */
uint64
tg_own_table_read(const char *sql, const TgSqlArgs *args)
{
	return tg_sql(sql, args, TG_SQL_LATEST | TG_SQL_AS_OWNER, SPI_OK_SELECT);
}

/* End a load (the rows read are freed) */
void
tg_own_table_load_end(void)
{
	tg_sql_finish();
}

/* The trigger: every backend's caches of the table are to be reloaded */
static Datum
cache_invalidate(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s: not called by trigger manager", name)));

	/*
	 * Sent at commit (and to this backend at its next command, and again if
	 * the transaction aborts).
	 */
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * SQL: cache_invalidate() returns trigger
 *
 * AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT
 * trigger (ENABLE ALWAYS) on each table above.
 */
PG_FUNCTION_INFO_V1(tg_cache_invalidate);
Datum
tg_cache_invalidate(PG_FUNCTION_ARGS)
{
	return cache_invalidate(fcinfo, "cache_invalidate");
}

/*
 * SQL (before 1.4): symbols_changed(), audit_config_changed(),
 * credentials_changed() returns trigger
 *
 * The same trigger under the C name that the SQL scripts of 1.0 to 1.3
 * use; the 1.3--1.4 upgrade replaces those functions by cache_invalidate().
 */
PG_FUNCTION_INFO_V1(tg_symbols_changed);
Datum
tg_symbols_changed(PG_FUNCTION_ARGS)
{
	return cache_invalidate(fcinfo, "symbols_changed");
}

/*
 * A per-backend copy of all the rows of one of the extension's own tables,
 * as an array of fixed-size structs (halts, limits, sign purposes): made
 * current by tg_own_rows_current(), which reloads it (all rows, with sql)
 * when the table's generation has moved on.  fill turns one result row
 * into one struct, allocating anything it keeps in the cache's context (the
 * current one while it runs).  A table missing from this database (an
 * older version of the extension) is an empty cache.
 */
void
tg_own_rows_current(TgOwnRows *cache, TgOwnTable table, const char *sql,
					Size row_size, TgOwnRowFill fill)
{
	uint64		generation;
	uint64		n;
	MemoryContext old;

	if (cache->generation != 0 && tg_own_table_current(table, cache->generation))
		return;
	if (cache->cxt == NULL)
		cache->cxt = AllocSetContextCreate(CacheMemoryContext, "trading_guard own table rows",
										   ALLOCSET_SMALL_SIZES);
	if (!OidIsValid(tg_own_table_oid(table, true)))
	{
		MemoryContextReset(cache->cxt);
		cache->rows = NULL;
		cache->nrows = 0;
		cache->generation = tg_own_table_generation[table];
		return;
	}
	generation = tg_own_table_load_begin(table);
	n = tg_own_table_read(sql, NULL);
	MemoryContextReset(cache->cxt);
	cache->rows = NULL;
	cache->nrows = 0;
	old = MemoryContextSwitchTo(cache->cxt);
	if (n > 0)
		cache->rows = palloc0(row_size * n);
	for (uint64 i = 0; i < n; i++)
		fill(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, (char *) cache->rows + i * row_size);
	MemoryContextSwitchTo(old);
	cache->nrows = (int) n;
	tg_own_table_load_end();
	cache->generation = generation;
}

/* A text column into a fixed buffer ("" for NULL); returns whether it was NULL */
bool
tg_own_text_col(HeapTuple tup, TupleDesc desc, int col, char *dst, Size size)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	dst[0] = '\0';
	if (!isnull)
		strlcpy(dst, TextDatumGetCString(d), size);
	return isnull;
}
