/*-------------------------------------------------------------------------
 *
 * own_tables.h
 *	  The extension's own tables that backends cache (the symbol registry,
 *	  the audit settings, the credential store): their OIDs, one
 *	  invalidation callback, and the one way to load a cache from them.
 *
 * A cache is stamped with the generation tg_own_table_load_begin()
 * returned; it is valid while tg_own_table_current() says that generation
 * is still the table's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_OWN_TABLES_H
#define TG_OWN_TABLES_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/palloc.h"

#include "run_sql.h"

typedef enum TgOwnTable
{
	TG_OWN_SYMBOLS,				/* trading_guard.symbols */
	TG_OWN_AUDIT_CONFIG,		/* trading_guard.audit_config */
	TG_OWN_CREDENTIAL_STORE,	/* trading_guard.credential_store */
	TG_OWN_TRADING_HALTS,		/* trading_guard.trading_halts */
	TG_OWN_ORDER_LIMITS,		/* trading_guard.order_limits */
	TG_OWN_SIGN_LIMITS,			/* trading_guard.sign_limits */
	TG_OWN_SIGN_PURPOSES,		/* trading_guard.sign_purposes */
	TG_OWN_TABLES
} TgOwnTable;

/* bumped by the invalidation callback; read through tg_own_table_current() */
extern uint64 tg_own_table_generation[TG_OWN_TABLES];

/*
 * Is a cache stamped with generation still valid?  The hot path of every
 * cache: no lock, no catalog access.
 */
static inline bool
tg_own_table_current(TgOwnTable table, uint64 generation)
{
	return generation == tg_own_table_generation[table];
}

extern Oid	tg_own_table_oid(TgOwnTable table, bool missing_ok);
extern uint64 tg_own_table_load_begin(TgOwnTable table);
extern uint64 tg_own_table_read(const char *sql, const TgSqlArgs *args);
extern void tg_own_table_load_end(void);

/* a cached copy of all the rows of one table (tg_own_rows_current) */
typedef struct TgOwnRows
{
	MemoryContext cxt;
	void	   *rows;			/* nrows structs of the caller's row type */
	int			nrows;
	uint64		generation;		/* 0: never loaded */
} TgOwnRows;

typedef void (*TgOwnRowFill) (HeapTuple tup, TupleDesc desc, void *row);

extern void tg_own_rows_current(TgOwnRows *cache, TgOwnTable table, const char *sql,
								Size row_size, TgOwnRowFill fill);
extern bool tg_own_text_col(HeapTuple tup, TupleDesc desc, int col, char *dst, Size size);

#endif							/* TG_OWN_TABLES_H */
