/*-------------------------------------------------------------------------
 *
 * registry.c
 *	  Per-backend cache of trading_guard.symbols, so that checking an order
 *	  runs no SQL.
 *
 * The first lookup in a backend reads the whole table into a hash table in
 * its own memory context; the cache follows the table as src/own_tables.c
 * describes: our own backend sees a change at the next command of the
 * changing transaction (and again if that transaction aborts); another
 * backend as soon as it takes in the invalidation -- whenever it locks a
 * relation it has not locked yet in its transaction (a first INSERT into a
 * protected table does), and at the start of its next transaction at the
 * latest -- and then reads the latest committed state, whatever snapshot
 * its transaction or statement holds.
 *
 * Lifetime: a TgSymbolRules pointer stays valid until the next call of
 * tg_registry_lookup(); a stale copy is freed there, never from an
 * invalidation callback.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "own_tables.h"
#include "registry.h"

static MemoryContext registry_cxt = NULL;
static HTAB *registry = NULL;
static uint64 registry_generation = 0;	/* of trading_guard.symbols */

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
 * swapped in only when complete, so an error leaves the old state (stale)
 * and the next lookup simply tries again.  An invalidation taken in during
 * the load leaves the new table stale too: it serves this lookup, and the
 * next one loads again.
 */
static void
registry_load(void)
{
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext newcxt;
	HTAB	   *newtab;
	HASHCTL		ctl;
	uint64		generation;

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

		generation = tg_own_table_load_begin(TG_OWN_SYMBOLS);
		(void) tg_own_table_read("SELECT symbol, status, min_qty, max_qty, step_size,"
								 " min_price, max_price, tick_size, min_notional, max_notional"
								 " FROM trading_guard.symbols", NULL);

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
		tg_own_table_load_end();
	}
	PG_CATCH();
	{
		/* never delete the context we are in */
		MemoryContextSwitchTo(callercxt);
		MemoryContextDelete(newcxt);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (registry_cxt != NULL)
		MemoryContextDelete(registry_cxt);
	registry_cxt = newcxt;
	registry = newtab;
	registry_generation = generation;
}

/*
 * The rules of one symbol, or NULL if the registry does not know it.
 * May run SQL (once per backend, and again after the table changed).
 */
const TgSymbolRules *
tg_registry_lookup(const char *symbol, int len)
{
	char		key[TG_SYMBOL_MAX_LEN + 1];

	if (registry == NULL || !tg_own_table_current(TG_OWN_SYMBOLS, registry_generation))
		registry_load();
	if (len <= 0 || len > TG_SYMBOL_MAX_LEN)
		return NULL;
	memcpy(key, symbol, len);
	key[len] = '\0';
	return hash_search(registry, key, HASH_FIND, NULL);
}
