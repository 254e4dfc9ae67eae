/*-------------------------------------------------------------------------
 *
 * audit_ddl.c
 *	  Schema changes around the audit trail: the audit triggers of a table
 *	  and its partitions, and the event triggers that record DDL on audited
 *	  tables and on the audit objects themselves.
 *
 * The event triggers run as the user who issued the DDL.  What they record
 * goes through the C writer (src/audit.c, no privilege needed); what they
 * change (audit triggers on a new partition, settings of a detached one,
 * the settings row of a dropped table) is done as the owner of audit_config,
 * with the user id switched for those statements only, as the RI triggers
 * of core do.
 *
 * Statements that trading_guard itself runs (creating and dropping audit
 * triggers) set in_audit_ddl, so that the event triggers do not record
 * them as if a user had issued them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "catalog/pg_class.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/deparse_utility.h"
#include "tcop/tcopprot.h"
#include "utils/aclchk_internal.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "access/htup_details.h"

#include "audit.h"
#include "run_sql.h"
#include "trading_guard.h"
#include "utility_guard.h"

static bool in_audit_ddl = false;

static const char *const audit_events[] = {"insert", "update", "delete", "truncate"};

/*
 * Run one statement as the owner of schema trading_guard (src/run_sql.c).
 * Like every statement of this file it is not read-only, so that it sees
 * what the DDL being handled has just changed.
 */
static void
tg_sql_as_owner(const char *sql, const TgSqlArgs *args, int expected)
{
	(void) tg_sql(sql, args, TG_SQL_AS_OWNER, expected);
}

/* Schema-qualified, quoted name of relation relid */
static char *
tg_qualified_name(Oid relid)
{
	char	   *name = get_rel_name(relid);

	if (name == NULL)
		elog(ERROR, "cache lookup failed for relation %u", relid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  name);
}

/* Does relation relid have a trigger named tgname?  Caller has SPI. */
static bool
tg_has_trigger(Oid relid, const char *tgname)
{
	TgSqlArgs	args = {0};

	tg_sql_arg(&args, OIDOID, ObjectIdGetDatum(relid));
	tg_sql_arg_text(&args, tgname);
	return tg_sql("SELECT 1 FROM pg_catalog.pg_trigger"
				  " WHERE tgrelid OPERATOR(pg_catalog.=) $1"
				  "   AND tgname OPERATOR(pg_catalog.=) $2::pg_catalog.name",
				  &args, 0, SPI_OK_SELECT) > 0;
}

/*
 * Refuse to audit relid when its audit triggers would not see every row
 * that reads as its own: a foreign table (its triggers cannot have
 * transition tables) or a table with inheritance children (rows written
 * through a child appear in the parent without firing its triggers).
 */
static void
tg_check_coverable(Oid relid)
{
	List	   *children;
	ListCell   *lc;

	if (get_rel_relkind(relid) == RELKIND_FOREIGN_TABLE)
	{
		tg_log_refusal("a foreign table cannot be audited", get_rel_name(relid));
		ereport(ERROR,
				(errcode(ERRCODE_TG_FOREIGN_PARTITION),
				 errmsg("foreign table \"%s\" cannot be audited", get_rel_name(relid)),
				 errdetail("Its rows would not be recorded: triggers on a foreign table cannot have transition tables."),
				 errhint("Detach it from the audited partitioned table, or use a local partition.")));
	}
	children = find_inheritance_children(relid, NoLock);
	foreach(lc, children)
	{
		Oid			child = lfirst_oid(lc);

		if (get_rel_relispartition(child))
			continue;
		tg_log_refusal("a table with inheritance children cannot be audited",
					   get_rel_name(relid));
		ereport(ERROR,
				(errcode(ERRCODE_TG_INHERITANCE_CHILD),
				 errmsg("table \"%s\" cannot be audited: it has inheritance children", get_rel_name(relid)),
				 errdetail("Rows written through \"%s\" would appear in it without being recorded.",
						   get_rel_name(child)),
				 errhint("Remove the inheritance (ALTER TABLE ... NO INHERIT) or use a partitioned table.")));
	}
	list_free(children);
}

/*
 * Create the audit triggers of relid that are missing, ENABLE ALWAYS, so
 * they fire under session_replication_role = replica too.  Caller has SPI.
 */
static void
tg_attach_triggers(Oid relid)
{
	char	   *rel;
	bool		save = in_audit_ddl;

	tg_check_coverable(relid);
	rel = tg_qualified_name(relid);

	in_audit_ddl = true;
	PG_TRY();
	{
		for (int i = 0; i < (int) lengthof(audit_events); i++)
		{
			const char *ev = audit_events[i];
			char	   *tgname = psprintf("trading_guard_audit_%s", ev);
			const char *ref;

			if (tg_has_trigger(relid, tgname))
			{
				/* there: make sure it fires always */
				tg_sql_as_owner(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER %s",
										 rel, quote_identifier(tgname)), NULL,
							SPI_OK_UTILITY);
				continue;
			}
			ref = i == 0 ? "REFERENCING NEW TABLE AS tg_new_rows" :
				i == 1 ? "REFERENCING OLD TABLE AS tg_old_rows NEW TABLE AS tg_new_rows" :
				i == 2 ? "REFERENCING OLD TABLE AS tg_old_rows" : "";
			tg_sql_as_owner(psprintf("CREATE TRIGGER %s AFTER %s ON %s %s FOR EACH STATEMENT"
									 " EXECUTE FUNCTION trading_guard.audit_trigger()",
									 quote_identifier(tgname),
									 i == 0 ? "INSERT" : i == 1 ? "UPDATE" :
									 i == 2 ? "DELETE" : "TRUNCATE",
									 rel, ref), NULL,
							SPI_OK_UTILITY);
			tg_sql_as_owner(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER %s",
									 rel, quote_identifier(tgname)), NULL,
							SPI_OK_UTILITY);
		}
	}
	PG_FINALLY();
	{
		in_audit_ddl = save;
	}
	PG_END_TRY();
}

/* Drop the audit triggers of relid.  Caller has SPI. */
static void
tg_detach_triggers(Oid relid)
{
	char	   *rel = tg_qualified_name(relid);
	bool		save = in_audit_ddl;

	in_audit_ddl = true;
	PG_TRY();
	{
		for (int i = 0; i < (int) lengthof(audit_events); i++)
		{
			char	   *tgname = psprintf("trading_guard_audit_%s", audit_events[i]);

			if (tg_has_trigger(relid, tgname))
				tg_sql_as_owner(psprintf("DROP TRIGGER %s ON %s",
										 quote_identifier(tgname), rel), NULL,
							SPI_OK_UTILITY);
		}
	}
	PG_FINALLY();
	{
		in_audit_ddl = save;
	}
	PG_END_TRY();
}

/*
 * SQL: audit_attach_triggers(tbl regclass) returns void
 * SQL: audit_detach_triggers(tbl regclass) returns void
 *
 * Used by enable_audit() and disable_audit().  Not granted to PUBLIC.
 */
PG_FUNCTION_INFO_V1(tg_audit_attach_triggers);
Datum
tg_audit_attach_triggers(PG_FUNCTION_ARGS)
{
	tg_sql_connect();
	tg_attach_triggers(PG_GETARG_OID(0));
	tg_sql_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(tg_audit_detach_triggers);
Datum
tg_audit_detach_triggers(PG_FUNCTION_ARGS)
{
	tg_sql_connect();
	tg_detach_triggers(PG_GETARG_OID(0));
	tg_sql_finish();
	PG_RETURN_VOID();
}

/* {"command_tag": ..., "object_type": ..., ...}: the detail of a DDL row */
static Jsonb *
tg_ddl_detail(const char *tag, const char *object_type, const char *identity,
			  int triggers_intact)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *res;
	const char *keys[] = {"command_tag", "object_type", "object_identity", "statement"};
	const char *vals[] = {tag, object_type, identity, debug_query_string};

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < (int) lengthof(keys); i++)
	{
		if (vals[i] == NULL)
			continue;
		v.type = jbvString;
		v.val.string.val = (char *) keys[i];
		v.val.string.len = strlen(keys[i]);
		pushJsonbValue(&state, WJB_KEY, &v);
		v.val.string.val = (char *) vals[i];
		v.val.string.len = strlen(vals[i]);
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	if (triggers_intact >= 0)
	{
		v.type = jbvString;
		v.val.string.val = "audit_triggers_intact";
		v.val.string.len = strlen(v.val.string.val);
		pushJsonbValue(&state, WJB_KEY, &v);
		v.type = jbvBool;
		v.val.boolean = triggers_intact > 0;
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/* Text of column col of SPI result row, or NULL */
static char *
tg_spi_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

static Oid
tg_spi_oid(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
								  col, &isnull);

	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/*
 * Bring the partitions of audited root up to date: audit triggers on every
 * member of its tree, and tables that carry audit triggers but are covered
 * by no settings any more (a partition just detached) keep being audited,
 * with root's settings.
 */
static void
tg_sync_partitions(Oid root)
{
	TgSqlArgs	args = {0};
	uint64		n;
	Oid		   *members;

	tg_sql_arg(&args, OIDOID, ObjectIdGetDatum(root));
	n = tg_sql("SELECT relid FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass)"
			   " WHERE relid OPERATOR(pg_catalog.<>) $1",
			   &args, 0, SPI_OK_SELECT);
	members = palloc(sizeof(Oid) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
		members[i] = tg_spi_oid(i, 1);
	for (uint64 i = 0; i < n; i++)
		tg_attach_triggers(members[i]);

	/* detached partitions: still audited, as they were */
	tg_sql_as_owner("INSERT INTO trading_guard.audit_config (table_name, exclude_columns, mask_columns)"
					" SELECT DISTINCT t.tgrelid::pg_catalog.regclass, ac.exclude_columns, ac.mask_columns"
					"   FROM pg_catalog.pg_trigger t, trading_guard.audit_config ac"
					"  WHERE ac.table_name OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
					"    AND t.tgfoid OPERATOR(pg_catalog.=) 'trading_guard.audit_trigger()'::pg_catalog.regprocedure"
					"    AND NOT EXISTS (SELECT 1 FROM trading_guard.audit_config c"
					"                     WHERE c.table_name OPERATOR(pg_catalog.=) t.tgrelid"
					"                        OR c.table_name OPERATOR(pg_catalog.=) ANY"
					"                           (SELECT a.relid FROM pg_catalog.pg_partition_ancestors(t.tgrelid) a))",
					&args, SPI_OK_INSERT);
}

/*
 * Does the ALTER TABLE command in column 8 of an SPI row of
 * pg_event_trigger_ddl_commands() attach or detach a partition?
 */
static bool
tg_changes_partitions(HeapTuple row, TupleDesc desc)
{
	bool		isnull;
	Datum		d = SPI_getbinval(row, desc, 8, &isnull);
	CollectedCommand *cmd;
	ListCell   *lc;

	if (isnull)
		return false;
	cmd = (CollectedCommand *) DatumGetPointer(d);
	if (cmd->type != SCT_AlterTable)
		return false;
	foreach(lc, cmd->d.alterTable.subcmds)
	{
		CollectedATSubcmd *sub = (CollectedATSubcmd *) lfirst(lc);
		AlterTableCmd *atc = (AlterTableCmd *) sub->parsetree;

		if (IsA(atc, AlterTableCmd) &&
			(atc->subtype == AT_AttachPartition || atc->subtype == AT_DetachPartition))
			return true;
	}
	return false;
}

/*
 * Refuse DDL that leaves a masked or excluded column of audited root
 * unknown (a rename or a drop): its values would be recorded in the clear.
 */
static void
tg_check_settings(Oid root, Oid relid)
{
	TgSqlArgs	args = {0};

	tg_sql_arg(&args, OIDOID, ObjectIdGetDatum(root));
	tg_sql_arg(&args, OIDOID, ObjectIdGetDatum(relid));
	if (tg_sql("SELECT col FROM trading_guard.audit_config ac,"
							  "       pg_catalog.unnest(ac.exclude_columns OPERATOR(pg_catalog.||) ac.mask_columns) col"
							  " WHERE ac.table_name OPERATOR(pg_catalog.=) $1::pg_catalog.regclass"
							  "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a"
							  "                    WHERE a.attrelid OPERATOR(pg_catalog.=) $2"
							  "                      AND a.attname OPERATOR(pg_catalog.=) col"
							  "                      AND NOT a.attisdropped AND a.attnum OPERATOR(pg_catalog.>) 0)",
			   &args, 0, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_AUDIT_SETTINGS_STALE),
				 errmsg("column \"%s\" of audited table \"%s\" is masked or excluded from the audit",
						tg_spi_text(0, 1), get_rel_name(relid)),
				 errdetail("Renaming or dropping it would let its values be recorded in the clear."),
				 errhint("Remove the column from the masked and excluded columns with trading_guard.enable_audit() first, in the same transaction.")));
}

/* SQL: is the table in $1 audited or protected?  (x: the expression of its OID) */
#define TG_GUARDED(x) \
	"(EXISTS (SELECT 1 FROM trading_guard.audit_config ac" \
	"          WHERE ac.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) " x ")" \
	" OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t" \
	"             WHERE t.tgrelid OPERATOR(pg_catalog.=) " x \
	"               AND (t.tgfoid OPERATOR(pg_catalog.=) 'trading_guard.audit_trigger()'::pg_catalog.regprocedure" \
	"                 OR t.tgfoid OPERATOR(pg_catalog.=) 'trading_guard.protect_orders_trigger()'::pg_catalog.regprocedure)))"

/*
 * Refuse what a DDL command did to table relid if rows could then reach an
 * audited or protected table without its triggers: relid now inherits
 * (not as a partition) from such a table; relid is such a table and has an
 * inheritance child (protect_orders() on it); a foreign table is now in the
 * partition tree of an audited table (CREATE FOREIGN TABLE ... PARTITION
 * OF, ATTACH PARTITION).  The refusal rolls the command back, so it is
 * recorded in the server log, not in audit_log.  Caller has SPI.
 */
static void
tg_check_inheritance(Oid relid)
{
	TgSqlArgs	args = {0};
	Oid			parent;
	Oid			child;
	Oid			foreign;

	tg_sql_arg(&args, OIDOID, ObjectIdGetDatum(relid));
	if (tg_sql("SELECT"
			   " (SELECT i.inhparent FROM pg_catalog.pg_inherits i"
			   "   WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid AND NOT c.relispartition"
			   "     AND " TG_GUARDED("i.inhparent") " LIMIT 1),"
			   " (SELECT i.inhrelid FROM pg_catalog.pg_inherits i, pg_catalog.pg_class k"
			   "   WHERE i.inhparent OPERATOR(pg_catalog.=) c.oid"
			   "     AND k.oid OPERATOR(pg_catalog.=) i.inhrelid AND NOT k.relispartition"
			   "     AND " TG_GUARDED("c.oid") " LIMIT 1),"
			   " (SELECT m.relid FROM pg_catalog.pg_partition_tree(c.oid::pg_catalog.regclass) m,"
			   "                      pg_catalog.pg_class k"
			   "   WHERE k.oid OPERATOR(pg_catalog.=) m.relid"
			   "     AND k.relkind OPERATOR(pg_catalog.=) 'f'"
			   "     AND EXISTS (SELECT 1 FROM trading_guard.audit_config ac"
			   "                  WHERE ac.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) c.oid"
			   "                     OR ac.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) ANY"
			   "                        (SELECT a.relid FROM pg_catalog.pg_partition_ancestors(c.oid::pg_catalog.regclass) a))"
			   "   LIMIT 1)"
			   " FROM pg_catalog.pg_class c"
			   " WHERE c.oid OPERATOR(pg_catalog.=) $1"
			   "   AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog.\"char\"[])",
			   &args, 0, SPI_OK_SELECT) == 0)
		return;
	parent = tg_spi_oid(0, 1);
	child = tg_spi_oid(0, 2);
	foreign = tg_spi_oid(0, 3);

	if (OidIsValid(parent))
	{
		tg_log_refusal("no inheritance children of audited or protected tables",
					   get_rel_name(relid));
		ereport(ERROR,
				(errcode(ERRCODE_TG_INHERITANCE_CHILD),
				 errmsg("table \"%s\" cannot inherit from \"%s\": it is audited or its orders are checked",
						get_rel_name(relid), get_rel_name(parent)),
				 errdetail("Rows written through an inheritance child appear in the parent without firing its audit or order triggers."),
				 errhint("Use a partitioned table: its partitions get the triggers.")));
	}
	if (OidIsValid(child))
	{
		tg_log_refusal("no inheritance children of audited or protected tables",
					   get_rel_name(relid));
		ereport(ERROR,
				(errcode(ERRCODE_TG_INHERITANCE_CHILD),
				 errmsg("table \"%s\" cannot be audited or protected: it has inheritance children",
						get_rel_name(relid)),
				 errdetail("Rows written through \"%s\" would appear in it without firing its triggers.",
						   get_rel_name(child)),
				 errhint("Remove the inheritance (ALTER TABLE ... NO INHERIT) or use a partitioned table.")));
	}
	if (OidIsValid(foreign))
	{
		tg_log_refusal("no foreign partitions of audited tables", get_rel_name(foreign));
		ereport(ERROR,
				(errcode(ERRCODE_TG_FOREIGN_PARTITION),
				 errmsg("foreign table \"%s\" cannot be a partition of an audited table",
						get_rel_name(foreign)),
				 errdetail("Its rows would not be recorded: triggers on a foreign table cannot have transition tables."),
				 errhint("Use a local partition, or stop auditing the partitioned table first.")));
	}
}

/*
 * GRANT or REVOKE on objects of schema trading_guard (which
 * src/utility_guard.c only lets through in maintenance mode): one DDL row
 * per object, since pg_event_trigger_ddl_commands() names none of them.
 */
static void
tg_record_grant(HeapTuple row, TupleDesc desc, const char *tag)
{
	bool		isnull;
	Datum		d = SPI_getbinval(row, desc, 8, &isnull);
	CollectedCommand *cmd;
	Oid			nsp = get_namespace_oid("trading_guard", true);
	Oid			classid;
	ListCell   *lc;

	if (isnull || !OidIsValid(nsp))
		return;
	cmd = (CollectedCommand *) DatumGetPointer(d);
	if (cmd->type != SCT_Grant)
		return;
	switch (cmd->d.grant.istmt->objtype)
	{
		case OBJECT_TABLE:
		case OBJECT_SEQUENCE:
			classid = RelationRelationId;
			break;
		case OBJECT_FUNCTION:
		case OBJECT_PROCEDURE:
		case OBJECT_ROUTINE:
			classid = ProcedureRelationId;
			break;
		case OBJECT_TYPE:
		case OBJECT_DOMAIN:
			classid = TypeRelationId;
			break;
		case OBJECT_SCHEMA:
			classid = NamespaceRelationId;
			break;
		default:
			return;
	}
	foreach(lc, cmd->d.grant.istmt->objects)
	{
		ObjectAddress a;

		ObjectAddressSet(a, classid, lfirst_oid(lc));
		if (classid == NamespaceRelationId ? a.objectId != nsp :
			get_object_namespace(&a) != nsp)
			continue;
		tg_audit_write_event("DDL",
							 classid == RelationRelationId ? a.objectId : InvalidOid,
							 "trading_guard", NULL,
							 tg_ddl_detail(tag, getObjectTypeDescription(&a, false),
										   getObjectIdentity(&a, false), -1));
	}
}

/*
 * Run handler for an event of an audit event trigger, unless trading_guard
 * itself is issuing the DDL (or installing itself): SPI connected, the
 * command's own catalog changes visible, in_audit_ddl set meanwhile.
 */
static Datum
tg_run_event_trigger(FunctionCallInfo fcinfo, const char *name,
					 void (*handler) (EventTriggerData *trigdata))
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s: not fired by event trigger manager", name)));
	if (in_audit_ddl || creating_extension || !OidIsValid(tg_audit_config_oid()))
		PG_RETURN_NULL();

	in_audit_ddl = true;
	PG_TRY();
	{
		CommandCounterIncrement();
		tg_sql_connect();
		handler((EventTriggerData *) fcinfo->context);
		tg_sql_finish();
	}
	PG_FINALLY();
	{
		in_audit_ddl = false;
	}
	PG_END_TRY();
	PG_RETURN_NULL();
}

/*
 * ddl_command_end: records DDL on audited tables (and their partitions,
 * indexes, triggers, rules and policies) and on the objects of schema
 * trading_guard, and keeps partitions created or attached later covered.
 */
static void
tg_ddl_command_end(EventTriggerData *trigdata)
{
	uint64		n;
	SPITupleTable *tuptable;

	n = tg_sql("WITH cmd AS ("
					" SELECT c.command_tag, c.object_type, c.object_identity, c.schema_name, c.command,"
					"  CASE"
					"   WHEN c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass THEN"
					"    (SELECT CASE WHEN r.relkind OPERATOR(pg_catalog.=) ANY ('{i,I}'::pg_catalog.\"char\"[])"
					"                 THEN (SELECT x.indrelid FROM pg_catalog.pg_index x"
					"                        WHERE x.indexrelid OPERATOR(pg_catalog.=) r.oid)"
					"                 ELSE r.oid END"
					"       FROM pg_catalog.pg_class r WHERE r.oid OPERATOR(pg_catalog.=) c.objid)"
					"   WHEN c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN"
					"    (SELECT t.tgrelid FROM pg_catalog.pg_trigger t WHERE t.oid OPERATOR(pg_catalog.=) c.objid)"
					"   WHEN c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN"
					"    (SELECT w.ev_class FROM pg_catalog.pg_rewrite w WHERE w.oid OPERATOR(pg_catalog.=) c.objid)"
					"   WHEN c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass THEN"
					"    (SELECT p.polrelid FROM pg_catalog.pg_policy p WHERE p.oid OPERATOR(pg_catalog.=) c.objid)"
					"  END AS relid"
					" FROM pg_catalog.pg_event_trigger_ddl_commands() c)"
					" SELECT cmd.command_tag, cmd.object_type, cmd.object_identity, cmd.relid,"
					"  (SELECT ac.table_name::pg_catalog.oid FROM trading_guard.audit_config ac"
					"    WHERE ac.table_name OPERATOR(pg_catalog.=) cmd.relid"
					"       OR ac.table_name OPERATOR(pg_catalog.=) ANY"
					"          (SELECT a.relid FROM pg_catalog.pg_partition_ancestors(cmd.relid) a)"
					"    LIMIT 1) AS root,"
					"  cmd.schema_name OPERATOR(pg_catalog.=) 'trading_guard' AS own_object,"
					"  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_trigger t"
					"    WHERE t.tgrelid OPERATOR(pg_catalog.=) cmd.relid"
					"      AND t.tgfoid OPERATOR(pg_catalog.=) 'trading_guard.audit_trigger()'::pg_catalog.regprocedure"
					"      AND t.tgenabled OPERATOR(pg_catalog.=) 'A')::pg_catalog.int4 AS enabled_triggers,"
					"  cmd.command"
					" FROM cmd",
			   NULL, 0, SPI_OK_SELECT);
	tuptable = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		bool		isnull;
		char	   *tag = SPI_getvalue(row, desc, 1);
		char	   *type = SPI_getvalue(row, desc, 2);
		char	   *identity = SPI_getvalue(row, desc, 3);
		Datum		d;
		Oid			relid = InvalidOid;
		Oid			root = InvalidOid;
		bool		own_object = false;
		int			enabled = 0;

		d = SPI_getbinval(row, desc, 4, &isnull);
		if (!isnull)
			relid = DatumGetObjectId(d);
		d = SPI_getbinval(row, desc, 5, &isnull);
		if (!isnull)
			root = DatumGetObjectId(d);
		d = SPI_getbinval(row, desc, 6, &isnull);
		own_object = !isnull && DatumGetBool(d);
		d = SPI_getbinval(row, desc, 7, &isnull);
		enabled = isnull ? 0 : DatumGetInt32(d);

		if (OidIsValid(relid))
			tg_check_inheritance(relid);
		if (strcmp(tag, "GRANT") == 0 || strcmp(tag, "REVOKE") == 0)
			tg_record_grant(row, desc, tag);

		if (OidIsValid(root))
		{
			tg_check_settings(root, relid);

			/*
			 * Partitions arrive by CREATE TABLE ... PARTITION OF and
			 * ALTER TABLE ... ATTACH (and leave by DETACH).  Not on other
			 * DDL: pg_restore creates the audit triggers of the root and
			 * of every partition itself, once the settings are back.
			 */
			if (strcmp(type, "table") == 0 &&
				(strcmp(tag, "CREATE TABLE") == 0 || tg_changes_partitions(row, desc)))
				tg_sync_partitions(root);
			tg_audit_write_event("DDL", relid, NULL, NULL,
								 tg_ddl_detail(tag, type, identity,
											   enabled == (int) lengthof(audit_events)));
		}
		else if (own_object)
			tg_audit_write_event("DDL", relid, NULL, NULL,
								 tg_ddl_detail(tag, type, identity, -1));
	}
}

/* SQL: audit_ddl_command_end() returns event_trigger */
PG_FUNCTION_INFO_V1(tg_audit_ddl_command_end);
Datum
tg_audit_ddl_command_end(PG_FUNCTION_ARGS)
{
	return tg_run_event_trigger(fcinfo, "audit_ddl_command_end", tg_ddl_command_end);
}

/*
 * sql_drop: records the drop of an audited table (or of one of its
 * partitions) and of an audit trigger or an object of schema trading_guard;
 * forgets the settings of a dropped audited table.
 */
static void
tg_sql_drop(EventTriggerData *trigdata)
{
	uint64		n;
	SPITupleTable *tuptable;
	const char *tag = GetCommandTagName(trigdata->tag);

	/*
	 * A dropped table was audited if it has settings, or if one of its
	 * audit triggers went with it (a partition).  An audit trigger
	 * dropped on its own is recorded as such.
	 */
	n = tg_sql("WITH d AS (SELECT * FROM pg_catalog.pg_event_trigger_dropped_objects())"
					" SELECT d.object_type, d.object_identity, d.schema_name, d.object_name, d.objid,"
					"        EXISTS (SELECT 1 FROM trading_guard.audit_config ac"
					"                 WHERE ac.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid) AS configured"
					"   FROM d"
					"  WHERE (d.object_type OPERATOR(pg_catalog.=) 'table'"
					"         AND (EXISTS (SELECT 1 FROM trading_guard.audit_config ac"
					"                       WHERE ac.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid)"
					"              OR EXISTS (SELECT 1 FROM d t WHERE t.object_type OPERATOR(pg_catalog.=) 'trigger'"
					"                          AND t.object_identity OPERATOR(pg_catalog.=)"
					"                              ('trading_guard_audit_insert on ' OPERATOR(pg_catalog.||) d.object_identity))))"
					"     OR (d.object_type OPERATOR(pg_catalog.=) 'trigger' AND d.original"
					"         AND d.object_identity OPERATOR(pg_catalog.~~) 'trading\\_guard\\_audit\\_%')"
					"     OR (d.schema_name OPERATOR(pg_catalog.=) 'trading_guard' AND d.original)",
			   NULL, 0, SPI_OK_SELECT);
	tuptable = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		char	   *type = SPI_getvalue(row, desc, 1);
		char	   *identity = SPI_getvalue(row, desc, 2);
		char	   *schema = SPI_getvalue(row, desc, 3);
		char	   *name = SPI_getvalue(row, desc, 4);
		bool		isnull;
		Oid			objid = DatumGetObjectId(SPI_getbinval(row, desc, 5, &isnull));
		bool		configured = DatumGetBool(SPI_getbinval(row, desc, 6, &isnull));

		if (strcmp(type, "table") == 0)
		{
			tg_audit_write_event("DDL", objid, schema, name,
								 tg_ddl_detail(tag, type, identity, -1));
			if (configured)
			{
				TgSqlArgs	args = {0};

				tg_sql_arg(&args, OIDOID, ObjectIdGetDatum(objid));
				tg_sql_as_owner("DELETE FROM trading_guard.audit_config"
								" WHERE table_name::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
								&args, SPI_OK_DELETE);
			}
		}
		else
			tg_audit_write_event("DDL", InvalidOid, schema, NULL,
								 tg_ddl_detail(tag, type, identity, -1));
	}
}

/* SQL: audit_sql_drop() returns event_trigger */
PG_FUNCTION_INFO_V1(tg_audit_sql_drop);
Datum
tg_audit_sql_drop(PG_FUNCTION_ARGS)
{
	return tg_run_event_trigger(fcinfo, "audit_sql_drop", tg_sql_drop);
}
