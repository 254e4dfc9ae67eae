/*-------------------------------------------------------------------------
 *
 * restore.c
 *	  Keeping the background workers out of a database being restored.
 *
 * The events worker and the sealer write tables that pg_dump dumps
 * (security_events and its batches, audit_log's EVENTS rows, audit_seal).
 * While pg_restore fills them, a row a worker writes takes an id that a
 * restored row then repeats: the restore fails on a duplicate key, or the
 * log ends up with two rows of one id.  So the workers leave a database
 * alone while it is being restored, which they learn in two ways:
 *
 *	- trading_guard.restoring = on set for the database (ALTER DATABASE ...
 *	  SET, like TimescaleDB's pre/post restore), which covers every kind of
 *	  restore, psql replaying a plain dump included;
 *	- a superuser's session of pg_restore connected to it (pg_restore names
 *	  its sessions "pg_restore" unless PGAPPNAME says otherwise; any role can
 *	  take the name, so only a superuser's session counts).
 *
 * Events meanwhile wait in the queue (and are counted when they overflow
 * it); rows wait to be sealed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_db_role_setting.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "restore.h"

static bool restoring = false;

void
tg_restore_init(void)
{
	DefineCustomBoolVariable("trading_guard.restoring",
							 "Set for a database (ALTER DATABASE ... SET) while a dump is restored into it.",
							 "The events worker and the sealer leave that database alone until it is reset.",
							 &restoring,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/* trading_guard.restoring in the settings of this database (any role) */
static bool
restoring_set_for_database(void)
{
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		on = false;

	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_db_role_setting_setdatabase,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(MyDatabaseId));
	ScanKeyInit(&key[1], Anum_pg_db_role_setting_setrole,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(InvalidOid));
	scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true, NULL, 2, key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
		{
			Datum	   *elems;
			int			n;

			deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, NULL, &n);
			for (int i = 0; i < n && !on; i++)
			{
				char	   *s = TextDatumGetCString(elems[i]);
				char	   *eq = strchr(s, '=');

				if (eq != NULL)
				{
					*eq = '\0';
					on = pg_strcasecmp(s, "trading_guard.restoring") == 0 &&
						parse_bool(eq + 1, &on) && on;
				}
			}
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return on;
}

/* a session of pg_restore in this database */
static bool
pg_restore_connected(void)
{
	int			n;
	bool		found = false;

	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n && !found; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be = local ? &local->backendStatus : NULL;

		/*
		 * Any role can call its session pg_restore: only a superuser's
		 * counts (restoring the extension's tables takes one), or a login
		 * could hold the workers off for as long as it stays connected.
		 */
		found = be != NULL && be->st_procpid != MyProcPid &&
			be->st_databaseid == MyDatabaseId &&
			be->st_backendType == B_BACKEND &&
			strcmp(be->st_appname, "pg_restore") == 0 &&
			superuser_arg(be->st_userid);
	}
	pgstat_clear_backend_activity_snapshot();
	return found;
}

/*
 * Is this database being restored?  For a background worker connected to
 * it; starts and ends a transaction of its own when not in one.
 */
bool
tg_database_being_restored(void)
{
	bool		own_xact = !IsTransactionState();
	bool		result;

	if (own_xact)
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
	}
	result = restoring_set_for_database() || pg_restore_connected();
	if (own_xact)
		CommitTransactionCommand();
	return result;
}
