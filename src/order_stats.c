/*-------------------------------------------------------------------------
 *
 * order_stats.c
 *	  Server-wide counters of orders accepted and rejected (per rule) by
 *	  check_order() and the protect_orders trigger; view validation_stats.
 *
 * The counters live in shared memory, so they exist only when the library
 * is preloaded; without it counting is silently skipped and the view refuses
 * with a hint.  They are atomics: no lock, and a reader may see a count a
 * few increments old, which is fine for statistics.  They start at zero
 * when the server starts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "order_stats.h"
#include "shmem.h"

typedef struct TgOrderStats
{
	pg_atomic_uint64 accepted;
	pg_atomic_uint64 rejected[TG_NUM_RULES];
} TgOrderStats;

static TgOrderStats *order_stats = NULL;

static void
order_stats_shmem_init(void *ptr, bool found)
{
	TgOrderStats *s = (TgOrderStats *) ptr;

	if (!found)
	{
		pg_atomic_init_u64(&s->accepted, 0);
		for (int i = 0; i < TG_NUM_RULES; i++)
			pg_atomic_init_u64(&s->rejected[i], 0);
	}
	order_stats = s;
}

void
tg_order_stats_init(void)
{
	if (process_shared_preload_libraries_in_progress)
		tg_shmem_register("trading_guard order stats", sizeof(TgOrderStats),
						  order_stats_shmem_init);
}

void
tg_order_stats_count_accepted(void)
{
	if (order_stats)
		pg_atomic_fetch_add_u64(&order_stats->accepted, 1);
}

void
tg_order_stats_count_rejected(TgRule rule)
{
	if (order_stats)
		pg_atomic_fetch_add_u64(&order_stats->rejected[rule], 1);
}

/*
 * SQL: validation_stats() returns table (filter text, sqlstate text,
 *                                         orders bigint)
 *
 * One row for accepted orders (filter ACCEPTED, sqlstate 00000), then one per
 * rule.
 */
PG_FUNCTION_INFO_V1(tg_validation_stats);
Datum
tg_validation_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	tg_require_preload("validation_stats");
	InitMaterializedSRF(fcinfo, 0);

	for (int i = -1; i < TG_NUM_RULES; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		uint64		n;

		if (i < 0)
		{
			values[0] = CStringGetTextDatum("ACCEPTED");
			values[1] = CStringGetTextDatum("00000");
			n = pg_atomic_read_u64(&order_stats->accepted);
		}
		else
		{
			values[0] = CStringGetTextDatum(tg_rule_filter(i));
			values[1] = CStringGetTextDatum(unpack_sql_state(tg_rule_sqlstate(i)));
			n = pg_atomic_read_u64(&order_stats->rejected[i]);
		}
		values[2] = Int64GetDatum((int64) n);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* SQL: reset_validation_stats() returns void */
PG_FUNCTION_INFO_V1(tg_reset_validation_stats);
Datum
tg_reset_validation_stats(PG_FUNCTION_ARGS)
{
	tg_require_preload("reset_validation_stats");
	pg_atomic_write_u64(&order_stats->accepted, 0);
	for (int i = 0; i < TG_NUM_RULES; i++)
		pg_atomic_write_u64(&order_stats->rejected[i], 0);
	PG_RETURN_VOID();
}

/* SQL: preloaded() returns boolean */
PG_FUNCTION_INFO_V1(tg_preloaded_sql);
Datum
tg_preloaded_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(tg_preloaded());
}
