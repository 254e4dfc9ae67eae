/*-------------------------------------------------------------------------
 *
 * run_sql.c
 *	  The only way the C code of trading_guard runs SQL.
 *
 * Every statement runs with search_path pinned to pg_catalog, pg_temp
 * (pg_temp is never searched for functions and operators), as a
 * security-restricted operation, so that nothing a caller put on its path
 * -- an operator, a function, a cast -- can take part in it, and nothing
 * that does run can change the session's role or leave settings behind.
 * The SQL text itself still schema-qualifies every object and operator:
 * the pinned path is the second line of defence, not the first.
 *
 * Statements that touch the extension's own tables on behalf of a user who
 * may not (the event triggers that keep audit settings in step) run as the
 * owner of schema trading_guard, the user id switched for that statement
 * only, as core's RI triggers do.
 *
 * Caller: inside tg_sql_connect() / tg_sql_finish().  On error everything
 * set here (user id, security context, search_path) is undone by the
 * (sub)transaction abort.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "access/htup_details.h"

#include "run_sql.h"

/* SPI_connect, or an error */
void
tg_sql_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* SPI_finish, or an error */
void
tg_sql_finish(void)
{
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}

/* Append parameter $n+1 */
void
tg_sql_arg(TgSqlArgs *args, Oid type, Datum value)
{
	if (args->n >= TG_SQL_MAX_ARGS)
		elog(ERROR, "too many SQL parameters");
	args->types[args->n] = type;
	args->values[args->n] = value;
	args->nulls[args->n] = ' ';
	args->n++;
}

/* Append a null parameter of type type */
void
tg_sql_arg_null(TgSqlArgs *args, Oid type)
{
	tg_sql_arg(args, type, (Datum) 0);
	args->nulls[args->n - 1] = 'n';
}

/* Append a text parameter (value must not be NULL) */
void
tg_sql_arg_text(TgSqlArgs *args, const char *value)
{
	tg_sql_arg(args, TEXTOID, CStringGetTextDatum(value));
}

/* The owner of schema trading_guard */
static Oid
tg_schema_owner(void)
{
	Oid			nsp = get_namespace_oid("trading_guard", false);
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for schema %u", nsp);
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Run one statement; error unless SPI returns expected.  Returns
 * SPI_processed (results in SPI_tuptable, as after any SPI call).
 *
 * TG_SQL_LATEST reads with the latest snapshot rather than the statement's
 * or the transaction's: a cache must include every change whose
 * invalidation this backend has already processed, also inside a
 * REPEATABLE READ transaction.  TG_SQL_WRITE_LATEST writes against the
 * latest snapshot: for a row of the extension's bookkeeping that only a
 * caller holding a lock updates, which a REPEATABLE READ transaction older
 * than the last update must still update (not fail to serialize).
 * Without TG_SQL_READ_ONLY or TG_SQL_LATEST
 * the statement takes a new snapshot, so it sees what the command that
 * called us has just changed (DDL in an event trigger, the caller's own
 * rows).
 */
uint64
tg_sql(const char *sql, const TgSqlArgs *args, int flags, int expected)
{
	int			nargs = args ? args->n : 0;
	Oid		   *types = args ? (Oid *) args->types : NULL;
	Datum	   *values = args ? (Datum *) args->values : NULL;
	const char *nulls = args ? args->nulls : NULL;
	Oid			save_userid;
	int			save_sec;
	Oid			userid;
	int			sec;
	int			nestlevel;
	int			ret;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	userid = save_userid;
	sec = save_sec | SECURITY_RESTRICTED_OPERATION;
	if (flags & TG_SQL_AS_OWNER)
	{
		userid = tg_schema_owner();
		sec |= SECURITY_LOCAL_USERID_CHANGE;
	}

	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(userid, sec);

	if (flags & (TG_SQL_LATEST | TG_SQL_WRITE_LATEST))
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);
		bool		write = (flags & TG_SQL_WRITE_LATEST) != 0;

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		ret = SPI_execute_snapshot(plan, values, nulls, GetLatestSnapshot(),
								   InvalidSnapshot, !write, write, 0);
		SPI_freeplan(plan);
	}
	else
		ret = SPI_execute_with_args(sql, nargs, types, values, nulls,
									(flags & TG_SQL_READ_ONLY) != 0, 0);

	SetUserIdAndSecContext(save_userid, save_sec);
	AtEOXact_GUC(true, nestlevel);
	if (ret != expected)
		elog(ERROR, "SQL of trading_guard failed: %s", SPI_result_code_string(ret));
	return SPI_processed;
}
