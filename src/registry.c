/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  Per-backend cache of trading_guard.symbols, so that checking an order
 *	  runs no SQL.
 *
 * The first lookup in a backend reads the whole table through SPI into a
 * hash table in its own memory context.  The cache is dropped when the
 * table's relcache entry is invalidated.  Ordinary DML does not invalidate a
 * relcache entry, so the table carries a statement trigger,
 * symbols_changed(), that does: the invalidation then travels exactly like a
 * catalog change.  Our own backend sees it at the next command of the
 * changing transaction (and again if that transaction aborts); other
 * backends see it when they next accept invalidation messages, at the start
 * of their next transaction at the latest, which is when the committed
 * change becomes visible to them anyway.
 *
 * Lifetime: a TgSymbolRules pointer stays valid until the next call of
 * tg_registry_lookup(); the invalidation callback only marks the cache
 * stale, it never frees it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "registry.h"
#include "run_sql.h"

static MemoryContext registry_cxt = NULL;
static HTAB *registry = NULL;
static bool registry_valid = false;
static Oid	registry_relid = InvalidOid;
static bool callback_registered = false;

static void
registry_inval_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == registry_relid)
		registry_valid = false;
}

static Numeric
copy_numeric_column(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		elog(ERROR, "trading_guard.symbols has a null filter value");
	return DatumGetNumericCopy(d);
}

/*
 * (Re)load the registry.  The new hash table is built in a fresh context and
 * swapped in only when complete, so an error leaves the old state (marked
 * stale) and the next lookup simply tries again.
 */
static void
registry_load(void)
{
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext newcxt;
	HTAB	   *newtab;
	HASHCTL		ctl;
	Oid			nsp;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(registry_inval_callback, (Datum) 0);
		callback_registered = true;
	}

	nsp = get_namespace_oid("trading_guard", false);
	registry_relid = get_relname_relid("symbols", nsp);
	if (!OidIsValid(registry_relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table trading_guard.symbols does not exist"),
				 errhint("Run CREATE EXTENSION trading_guard.")));
	/* set before reading, so a change committed meanwhile is not missed */
	registry_valid = true;

	newcxt = AllocSetContextCreate(CacheMemoryContext,
								   "trading_guard symbol registry",
								   ALLOCSET_DEFAULT_SIZES);
	PG_TRY();
	{
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = TG_SYMBOL_MAX_LEN + 1;
		ctl.entrysize = sizeof(TgSymbolRules);
		ctl.hcxt = newcxt;
		newtab = hash_create("trading_guard symbol registry", 256, &ctl,
							 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

		tg_sql_connect();
		(void) tg_sql("SELECT symbol, status, min_qty, max_qty, step_size,"
					  " min_price, max_price, tick_size, min_notional, max_notional"
					  " FROM trading_guard.symbols", NULL, TG_SQL_READ_ONLY, SPI_OK_SELECT);

		MemoryContextSwitchTo(newcxt);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *sym = SPI_getvalue(tup, desc, 1);
			char	   *status = SPI_getvalue(tup, desc, 2);
			TgSymbolRules *r;
			bool		found;

			/* the table's CHECK constraints keep these within bounds */
			if (sym == NULL || strlen(sym) > TG_SYMBOL_MAX_LEN ||
				status == NULL || strlen(status) >= sizeof(r->status))
				elog(ERROR, "trading_guard.symbols holds a malformed row");

			r = hash_search(newtab, sym, HASH_ENTER, &found);
			strlcpy(r->status, status, sizeof(r->status));
			r->trading = strcmp(status, "TRADING") == 0;
			r->min_qty = copy_numeric_column(tup, desc, 3);
			r->max_qty = copy_numeric_column(tup, desc, 4);
			r->step_size = copy_numeric_column(tup, desc, 5);
			r->min_price = copy_numeric_column(tup, desc, 6);
			r->max_price = copy_numeric_column(tup, desc, 7);
			r->tick_size = copy_numeric_column(tup, desc, 8);
			r->min_notional = copy_numeric_column(tup, desc, 9);
			r->max_notional = copy_numeric_column(tup, desc, 10);
			tg_num_grid_init(&r->lot_size_grid, r->min_qty, r->max_qty, r->step_size);
			tg_num_grid_init(&r->price_filter_grid, r->min_price, r->max_price, r->tick_size);
		}
		MemoryContextSwitchTo(callercxt);
		tg_sql_finish();
	}
	PG_CATCH();
	{
		/* never delete the context we are in */
		MemoryContextSwitchTo(callercxt);
		registry_valid = false;
		MemoryContextDelete(newcxt);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (registry_cxt != NULL)
		MemoryContextDelete(registry_cxt);
	registry_cxt = newcxt;
	registry = newtab;
}

/*
 * The rules of one symbol, or NULL if the registry does not know it.
 * May run SQL (once per backend, and again after the table changed).
 */
const TgSymbolRules *
tg_registry_lookup(const char *symbol, int len)
{
	char		key[TG_SYMBOL_MAX_LEN + 1];

	if (!registry_valid || registry == NULL)
		registry_load();
	if (len <= 0 || len > TG_SYMBOL_MAX_LEN)
		return NULL;
	memcpy(key, symbol, len);
	key[len] = '\0';
	return hash_search(registry, key, HASH_FIND, NULL);
}

/*
 * SQL: symbols_changed() returns trigger
 *
 * AFTER ... FOR EACH STATEMENT trigger on trading_guard.symbols: tell every
 * backend's cache (ours included) that the registry changed.
 */
PG_FUNCTION_INFO_V1(tg_symbols_changed);
Datum
tg_symbols_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("symbols_changed: not called by trigger manager")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
