/*-------------------------------------------------------------------------
 *
 * run_sql.h
 *	  The one way trading_guard runs SQL: pinned search_path, security-
 *	  restricted, optionally against the latest snapshot or as the
 *	  extension's owner.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_RUN_SQL_H
#define TG_RUN_SQL_H

#include "postgres.h"

#include "executor/spi.h"

/* Parameters of one statement ($1, $2, ...), filled with tg_sql_arg() */
#define TG_SQL_MAX_ARGS 16

typedef struct TgSqlArgs
{
	int			n;
	Oid			types[TG_SQL_MAX_ARGS];
	Datum		values[TG_SQL_MAX_ARGS];
	char		nulls[TG_SQL_MAX_ARGS];
} TgSqlArgs;

/* flags of tg_sql() */
#define TG_SQL_READ_ONLY	0x01	/* read-only, the statement's snapshot */
#define TG_SQL_LATEST		0x02	/* read-only, the latest snapshot (caches) */
#define TG_SQL_AS_OWNER		0x04	/* as the owner of schema trading_guard */
#define TG_SQL_WRITE_LATEST	0x08	/* a write, against the latest snapshot */

extern void tg_sql_connect(void);
extern void tg_sql_finish(void);
extern void tg_sql_arg(TgSqlArgs *args, Oid type, Datum value);
extern void tg_sql_arg_null(TgSqlArgs *args, Oid type);
extern void tg_sql_arg_text(TgSqlArgs *args, const char *value);
extern uint64 tg_sql(const char *sql, const TgSqlArgs *args, int flags, int expected);

#endif							/* TG_RUN_SQL_H */
