/*-------------------------------------------------------------------------
 *
 * utility_guard.c
 *	  The extension's own objects cannot be changed: not its tables,
 *	  sequences, views, indexes, triggers, rules, policies, functions,
 *	  types, schema or event triggers, by any role, superusers included.
 *
 * A ProcessUtility_hook looks at each DDL statement before it runs and
 * refuses (TG090) one that would alter, rename, re-own, move, drop, grant
 * on, label or re-assign an object of schema trading_guard or a member of
 * the extension, or put a trigger, rule or policy on one of its tables, or
 * create anything in its schema, or make a table inherit from (or a foreign
 * key reference) one of its tables, or add to (or drop from) one of its
 * operator families, also by an operator class made elsewhere for it.  An object_access_hook is the second
 * net: it refuses the drop of such an object however the drop was reached
 * (CASCADE from another object, DROP OWNED).  (Not for creation: a
 * post-create hook cannot look the new object up.)  Event triggers cannot
 * do this: a superuser can disable them.
 *
 * Allowed, as maintenance: CREATE INDEX and REINDEX on the extension's
 * tables, VACUUM, ANALYZE, CLUSTER, COMMENT, what ALTER EXTENSION
 * trading_guard UPDATE runs (its script), and what PostgreSQL drops
 * internally (transient heaps, old indexes).  The DDL that trading_guard
 * runs itself touches only users' tables.  Everything else needs
 * maintenance mode:
 * trading_guard.maintenance, which only a superuser can turn on, only with
 * SET or SET LOCAL (never from a configuration file or ALTER ROLE/DATABASE/
 * SYSTEM).  What runs in maintenance mode is logged (LOG, with the role).
 *
 * DROP EXTENSION trading_guard, DROP SCHEMA trading_guard and DROP OWNED BY
 * its owner would take the audit trail and every stored credential with
 * them: refused (TG091) while audit_log, security_events or
 * credential_store holds rows,
 * unless maintenance mode is on.
 *
 * A refusal rolls back whatever the transaction could have recorded, so it
 * is written to the server log (tg_log_refusal: rule, statement kind, roles,
 * never the statement text).
 *
 * The hooks only exist in a backend that has loaded the library: with
 * shared_preload_libraries, in every backend; without it, only once the
 * session has used trading_guard -- no protection at all.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_event_trigger.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "tcop/cmdtag.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "access/htup_details.h"

#include "run_sql.h"
#include "trading_guard.h"
#include "utility_guard.h"

/* GUC */
bool		tg_maintenance = false;

static ProcessUtility_hook_type prev_process_utility = NULL;
static object_access_hook_type prev_object_access = NULL;

/* The extension and its schema in this database (InvalidOid: not installed) */
typedef struct TgOwn
{
	Oid			ext;
	Oid			nsp;
} TgOwn;

/* Command tag of the statement running (for the log lines of the hooks) */
static const char *current_tag = NULL;

/* The statement running is a DROP the guard let through (see tg_check_trail) */
static bool drop_approved = false;

/* The statement running was logged as let through by maintenance mode */
static bool maintenance_logged = false;

/*
 * Look up the extension in this database.  False when it is not installed
 * there, or while its own script runs (CREATE EXTENSION, ALTER EXTENSION
 * UPDATE): then there is nothing to guard.
 */
static bool
tg_own_get(TgOwn *own)
{
	if (!IsTransactionState())
		return false;
	own->ext = get_extension_oid("trading_guard", true);
	if (!OidIsValid(own->ext))
		return false;
	if (creating_extension && CurrentExtensionObject == own->ext)
		return false;
	/* the control file fixes the schema (relocatable = false) */
	own->nsp = get_namespace_oid("trading_guard", true);
	return OidIsValid(own->nsp);
}

/* Is the object the extension's: its schema, in its schema, or a member? */
static bool
tg_own_address(const TgOwn *own, const ObjectAddress *a)
{
	Oid			nsp;

	if (!OidIsValid(a->objectId))
		return false;
	switch (a->classId)
	{
		case NamespaceRelationId:
			return a->objectId == own->nsp;
		case ExtensionRelationId:
			return a->objectId == own->ext;
		case RelationRelationId:
			return get_rel_namespace(a->objectId) == own->nsp;
		default:
			break;
	}
	/* (get_object_namespace knows only the classes of ObjectProperty) */
	if (is_objectclass_supported(a->classId))
	{
		nsp = get_object_namespace(a);
		if (OidIsValid(nsp))
			return nsp == own->nsp;
	}
	return getExtensionOfObject(a->classId, a->objectId) == own->ext;
}

/*
 * The relation named rv, if it is the extension's.  No lock: the statement
 * itself takes the lock it needs; taking a weaker one here first would
 * make two concurrent ALTERs of one table deadlock.
 */
static ObjectAddress
tg_own_rangevar(const TgOwn *own, const RangeVar *rv)
{
	ObjectAddress a = InvalidObjectAddress;
	Oid			relid;

	if (rv == NULL)
		return a;
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (OidIsValid(relid) && get_rel_namespace(relid) == own->nsp)
		ObjectAddressSet(a, RelationRelationId, relid);
	return a;
}

/* The schema named name, if it is the extension's */
static ObjectAddress
tg_own_schema_name(const TgOwn *own, const char *name)
{
	ObjectAddress a = InvalidObjectAddress;

	if (name != NULL && get_namespace_oid(name, true) == own->nsp)
		ObjectAddressSet(a, NamespaceRelationId, own->nsp);
	return a;
}

/* The schema in which an object named names would be created, if the extension's */
static ObjectAddress
tg_own_creation(const TgOwn *own, List *names)
{
	char	   *objname;

	if (names == NIL)
		return InvalidObjectAddress;
	if (QualifiedNameGetCreationNamespace(names, &objname) == own->nsp)
		return tg_own_schema_name(own, get_namespace_name(own->nsp));
	return InvalidObjectAddress;
}

/* The same for a relation about to be created */
static ObjectAddress
tg_own_creation_rv(const TgOwn *own, const RangeVar *rv)
{
	if (rv == NULL || rv->relpersistence == RELPERSISTENCE_TEMP)
		return InvalidObjectAddress;
	if (rv->schemaname != NULL)
		return tg_own_schema_name(own, rv->schemaname);
	if (RangeVarGetCreationNamespace(rv) == own->nsp)
		return tg_own_schema_name(own, get_namespace_name(own->nsp));
	return InvalidObjectAddress;
}

/*
 * The object of type type named object (as in DropStmt and friends), if it
 * is the extension's.  Sub-objects of a relation (column, trigger, rule,
 * policy, constraint) count as the relation's.
 */
static ObjectAddress
tg_own_named(const TgOwn *own, ObjectType type, Node *object)
{
	ObjectAddress a = InvalidObjectAddress;

	switch (type)
	{
		case OBJECT_TABLE:
		case OBJECT_SEQUENCE:
		case OBJECT_VIEW:
		case OBJECT_MATVIEW:
		case OBJECT_INDEX:
		case OBJECT_FOREIGN_TABLE:
			return tg_own_rangevar(own, makeRangeVarFromNameList(castNode(List, object)));
		case OBJECT_COLUMN:
		case OBJECT_DEFAULT:
		case OBJECT_TRIGGER:
		case OBJECT_RULE:
		case OBJECT_POLICY:
		case OBJECT_TABCONSTRAINT:
			{
				List	   *names = castNode(List, object);

				if (list_length(names) < 2)
					return InvalidObjectAddress;
				names = list_truncate(list_copy(names), list_length(names) - 1);
				return tg_own_rangevar(own, makeRangeVarFromNameList(names));
			}
		case OBJECT_SCHEMA:
			return tg_own_schema_name(own, strVal(object));
		case OBJECT_PUBLICATION_REL:
		case OBJECT_PUBLICATION_NAMESPACE:
		case OBJECT_USER_MAPPING:
		case OBJECT_ROLE:
		case OBJECT_DATABASE:
		case OBJECT_TABLESPACE:
		case OBJECT_PARAMETER_ACL:
			return InvalidObjectAddress;
		default:
			break;
	}

	/*
	 * The common kinds are looked up without a lock (as above); the rest
	 * through get_object_address, which always locks the object: a share
	 * lock, held to the end of the transaction like the statement's own.
	 */
	switch (type)
	{
		case OBJECT_FUNCTION:
		case OBJECT_PROCEDURE:
		case OBJECT_ROUTINE:
		case OBJECT_AGGREGATE:
			ObjectAddressSet(a, ProcedureRelationId,
							 LookupFuncWithArgs(type, castNode(ObjectWithArgs, object), true));
			break;
		case OBJECT_TYPE:
		case OBJECT_DOMAIN:
			/* a TypeName in DROP and COMMENT, a name list in ALTER */
			if (IsA(object, List))
				object = (Node *) makeTypeNameFromNameList((List *) object);
			ObjectAddressSet(a, TypeRelationId,
							 LookupTypeNameOid(NULL, castNode(TypeName, object), true));
			break;
		case OBJECT_EXTENSION:
			ObjectAddressSet(a, ExtensionRelationId, get_extension_oid(strVal(object), true));
			break;
		case OBJECT_EVENT_TRIGGER:
			ObjectAddressSet(a, EventTriggerRelationId, get_event_trigger_oid(strVal(object), true));
			break;
		default:
			{
				Relation	rel = NULL;

				a = get_object_address(type, object, &rel, AccessShareLock, true);
				if (rel != NULL)
					relation_close(rel, NoLock);
				break;
			}
	}
	return tg_own_address(own, &a) ? a : InvalidObjectAddress;
}

/* A FOREIGN KEY constraint that references one of the extension's tables */
static ObjectAddress
tg_own_fk(const TgOwn *own, Node *node)
{
	Constraint *con;

	if (node == NULL || !IsA(node, Constraint))
		return InvalidObjectAddress;
	con = (Constraint *) node;
	if (con->contype != CONSTR_FOREIGN)
		return InvalidObjectAddress;
	return tg_own_rangevar(own, con->pktable);
}

/* Does role roleid own the extension's schema? */
static bool
tg_owns_schema(const TgOwn *own, Oid roleid)
{
	HeapTuple	tup;
	bool		owns;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(own->nsp));
	if (!HeapTupleIsValid(tup))
		return false;
	owns = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner == roleid;
	ReleaseSysCache(tup);
	return owns;
}

/* GRANT / REVOKE on one of the extension's objects */
static ObjectAddress
tg_own_grant(const TgOwn *own, GrantStmt *s)
{
	ListCell   *lc;

	if (s->targtype == ACL_TARGET_ALL_IN_SCHEMA)
	{
		foreach(lc, s->objects)
		{
			ObjectAddress a = tg_own_schema_name(own, strVal(lfirst(lc)));

			if (OidIsValid(a.objectId))
				return a;
		}
		return InvalidObjectAddress;
	}
	if (s->targtype != ACL_TARGET_OBJECT)
		return InvalidObjectAddress;
	foreach(lc, s->objects)
	{
		Node	   *obj = lfirst(lc);
		ObjectAddress a = InvalidObjectAddress;

		switch (s->objtype)
		{
			case OBJECT_TABLE:
			case OBJECT_SEQUENCE:
				a = tg_own_rangevar(own, castNode(RangeVar, obj));
				break;
			case OBJECT_FUNCTION:
			case OBJECT_PROCEDURE:
			case OBJECT_ROUTINE:
			case OBJECT_SCHEMA:
				a = tg_own_named(own, s->objtype, obj);
				break;
			case OBJECT_TYPE:
			case OBJECT_DOMAIN:
				a = tg_own_named(own, s->objtype,
								 (Node *) makeTypeNameFromNameList(castNode(List, obj)));
				break;
			default:
				break;
		}
		if (OidIsValid(a.objectId))
			return a;
	}
	return InvalidObjectAddress;
}

/*
 * The object of the extension that statement stmt would change, or
 * InvalidObjectAddress.  *drops_all is set for a statement that would drop
 * the extension as a whole (DROP EXTENSION, DROP SCHEMA, DROP OWNED BY its
 * owner): those are judged by tg_check_trail.
 */
static ObjectAddress
tg_own_target(const TgOwn *own, Node *stmt, bool *drops_all)
{
	ObjectAddress a = InvalidObjectAddress;
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			{
				AlterTableStmt *s = (AlterTableStmt *) stmt;

				a = tg_own_rangevar(own, s->relation);
				foreach(lc, s->cmds)
				{
					AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

					if (OidIsValid(a.objectId))
						break;
					if (cmd->subtype == AT_AddInherit)
						a = tg_own_rangevar(own, castNode(RangeVar, cmd->def));
					else if (cmd->subtype == AT_AddConstraint)
						a = tg_own_fk(own, cmd->def);
				}
				return a;
			}
		case T_RenameStmt:
			{
				RenameStmt *s = (RenameStmt *) stmt;

				if (s->relation != NULL)
					return tg_own_rangevar(own, s->relation);
				if (s->renameType == OBJECT_SCHEMA)
					return tg_own_schema_name(own, s->subname);
				if (s->object == NULL)
					return a;
				return tg_own_named(own, s->renameType, s->object);
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *s = (AlterObjectSchemaStmt *) stmt;

				a = s->relation != NULL ? tg_own_rangevar(own, s->relation) :
					tg_own_named(own, s->objectType, s->object);
				if (!OidIsValid(a.objectId))
					a = tg_own_schema_name(own, s->newschema);
				return a;
			}
		case T_AlterOwnerStmt:
			{
				AlterOwnerStmt *s = (AlterOwnerStmt *) stmt;

				if (s->relation != NULL)
					return tg_own_rangevar(own, s->relation);
				return tg_own_named(own, s->objectType, s->object);
			}
		case T_AlterObjectDependsStmt:
			{
				AlterObjectDependsStmt *s = (AlterObjectDependsStmt *) stmt;

				if (s->relation != NULL)
					return tg_own_rangevar(own, s->relation);
				return tg_own_named(own, s->objectType, s->object);
			}
		case T_DropStmt:
			{
				DropStmt   *s = (DropStmt *) stmt;

				foreach(lc, s->objects)
				{
					Node	   *obj = lfirst(lc);

					if (s->removeType == OBJECT_EXTENSION &&
						strcmp(strVal(obj), "trading_guard") == 0)
						*drops_all = true;
					else if (s->removeType == OBJECT_SCHEMA &&
							 OidIsValid(tg_own_schema_name(own, strVal(obj)).objectId))
						*drops_all = true;
					else
					{
						a = tg_own_named(own, s->removeType, obj);
						if (OidIsValid(a.objectId))
							return a;
					}
				}
				return a;
			}
		case T_DropOwnedStmt:
		case T_ReassignOwnedStmt:
			{
				List	   *roles = IsA(stmt, DropOwnedStmt) ?
				((DropOwnedStmt *) stmt)->roles : ((ReassignOwnedStmt *) stmt)->roles;

				foreach(lc, roles)
				{
					Oid			roleid = get_rolespec_oid(lfirst(lc), true);

					if (!tg_owns_schema(own, roleid))
						continue;
					if (IsA(stmt, DropOwnedStmt))
						*drops_all = true;
					else
						ObjectAddressSet(a, NamespaceRelationId, own->nsp);
				}
				return a;
			}
		case T_GrantStmt:
			return tg_own_grant(own, (GrantStmt *) stmt);
		case T_AlterDefaultPrivilegesStmt:
			{
				AlterDefaultPrivilegesStmt *s = (AlterDefaultPrivilegesStmt *) stmt;

				foreach(lc, s->options)
				{
					DefElem    *opt = lfirst_node(DefElem, lc);
					ListCell   *lc2;

					if (strcmp(opt->defname, "schemas") != 0)
						continue;
					foreach(lc2, castNode(List, opt->arg))
					{
						a = tg_own_schema_name(own, strVal(lfirst(lc2)));
						if (OidIsValid(a.objectId))
							return a;
					}
				}
				return a;
			}
		case T_SecLabelStmt:
			return tg_own_named(own, ((SecLabelStmt *) stmt)->objtype,
								((SecLabelStmt *) stmt)->object);
		case T_AlterExtensionContentsStmt:
			{
				AlterExtensionContentsStmt *s = (AlterExtensionContentsStmt *) stmt;

				if (strcmp(s->extname, "trading_guard") == 0)
				{
					ObjectAddressSet(a, ExtensionRelationId, own->ext);
					return a;
				}
				return tg_own_named(own, s->objtype, s->object);
			}
		case T_AlterEventTrigStmt:
			{
				Oid			evt = get_event_trigger_oid(((AlterEventTrigStmt *) stmt)->trigname, true);

				ObjectAddressSet(a, EventTriggerRelationId, evt);
				return tg_own_address(own, &a) ? a : InvalidObjectAddress;
			}
		case T_CreateTrigStmt:
			return tg_own_rangevar(own, ((CreateTrigStmt *) stmt)->relation);
		case T_CreatePolicyStmt:
			return tg_own_rangevar(own, ((CreatePolicyStmt *) stmt)->table);
		case T_AlterPolicyStmt:
			return tg_own_rangevar(own, ((AlterPolicyStmt *) stmt)->table);
		case T_RuleStmt:
			return tg_own_rangevar(own, ((RuleStmt *) stmt)->relation);
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			{
				CreateStmt *s = (CreateStmt *) stmt;

				a = tg_own_creation_rv(own, s->relation);
				if (OidIsValid(a.objectId))
					return a;
				foreach(lc, s->inhRelations)
				{
					a = tg_own_rangevar(own, lfirst_node(RangeVar, lc));
					if (OidIsValid(a.objectId))
						return a;
				}
				foreach(lc, s->constraints)
				{
					a = tg_own_fk(own, lfirst(lc));
					if (OidIsValid(a.objectId))
						return a;
				}
				foreach(lc, s->tableElts)
				{
					ListCell   *lc2;

					if (!IsA(lfirst(lc), ColumnDef))
						continue;
					foreach(lc2, ((ColumnDef *) lfirst(lc))->constraints)
					{
						a = tg_own_fk(own, lfirst(lc2));
						if (OidIsValid(a.objectId))
							return a;
					}
				}
				return a;
			}
		case T_CreateTableAsStmt:
			return tg_own_creation_rv(own, ((CreateTableAsStmt *) stmt)->into->rel);
		case T_ViewStmt:
			return tg_own_creation_rv(own, ((ViewStmt *) stmt)->view);
		case T_CreateSeqStmt:
			return tg_own_creation_rv(own, ((CreateSeqStmt *) stmt)->sequence);
		case T_AlterSeqStmt:
			return tg_own_rangevar(own, ((AlterSeqStmt *) stmt)->sequence);
		case T_CreateFunctionStmt:
			return tg_own_creation(own, ((CreateFunctionStmt *) stmt)->funcname);
		case T_DefineStmt:
			return tg_own_creation(own, ((DefineStmt *) stmt)->defnames);
		case T_CompositeTypeStmt:
			return tg_own_creation_rv(own, ((CompositeTypeStmt *) stmt)->typevar);
		case T_CreateEnumStmt:
			return tg_own_creation(own, ((CreateEnumStmt *) stmt)->typeName);
		case T_CreateRangeStmt:
			return tg_own_creation(own, ((CreateRangeStmt *) stmt)->typeName);
		case T_CreateDomainStmt:
			return tg_own_creation(own, ((CreateDomainStmt *) stmt)->domainname);
		case T_CreateConversionStmt:
			return tg_own_creation(own, ((CreateConversionStmt *) stmt)->conversion_name);
		case T_CreateOpClassStmt:
			{
				CreateOpClassStmt *s = (CreateOpClassStmt *) stmt;

				/* a new class in the schema, or one that joins our family */
				a = tg_own_creation(own, s->opclassname);
				if (!OidIsValid(a.objectId) && s->opfamilyname != NIL)
					a = tg_own_named(own, OBJECT_OPFAMILY,
									 (Node *) lcons(makeString(s->amname),
													list_copy(s->opfamilyname)));
				return a;
			}
		case T_AlterOpFamilyStmt:
			{
				AlterOpFamilyStmt *s = (AlterOpFamilyStmt *) stmt;

				/* ADD or DROP of operators and support functions */
				return tg_own_named(own, OBJECT_OPFAMILY,
									(Node *) lcons(makeString(s->amname),
												   list_copy(s->opfamilyname)));
			}
		case T_CreateOpFamilyStmt:
			return tg_own_creation(own, ((CreateOpFamilyStmt *) stmt)->opfamilyname);
		case T_CreateExtensionStmt:
			foreach(lc, ((CreateExtensionStmt *) stmt)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "schema") == 0)
					return tg_own_schema_name(own, defGetString(opt));
			}
			return a;
		case T_AlterFunctionStmt:
			return tg_own_named(own, ((AlterFunctionStmt *) stmt)->objtype,
								(Node *) ((AlterFunctionStmt *) stmt)->func);
		case T_CreateStatsStmt:
			a = tg_own_creation(own, ((CreateStatsStmt *) stmt)->defnames);
			if (OidIsValid(a.objectId))
				return a;
			foreach(lc, ((CreateStatsStmt *) stmt)->relations)
			{
				if (!IsA(lfirst(lc), RangeVar))
					continue;
				a = tg_own_rangevar(own, lfirst_node(RangeVar, lc));
				if (OidIsValid(a.objectId))
					return a;
			}
			return a;
		case T_AlterDomainStmt:
			return tg_own_named(own, OBJECT_DOMAIN,
								(Node *) makeTypeNameFromNameList(((AlterDomainStmt *) stmt)->typeName));
		case T_AlterEnumStmt:
			return tg_own_named(own, OBJECT_TYPE,
								(Node *) makeTypeNameFromNameList(((AlterEnumStmt *) stmt)->typeName));
		case T_AlterTypeStmt:
			return tg_own_named(own, OBJECT_TYPE,
								(Node *) makeTypeNameFromNameList(((AlterTypeStmt *) stmt)->typeName));
		default:
			return a;
	}
}

/* Could statement stmt change an object of the extension?  (Cheap: its tag) */
static bool
tg_guard_relevant(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
		case T_RenameStmt:
		case T_AlterObjectSchemaStmt:
		case T_AlterOwnerStmt:
		case T_AlterObjectDependsStmt:
		case T_DropStmt:
		case T_DropOwnedStmt:
		case T_ReassignOwnedStmt:
		case T_GrantStmt:
		case T_AlterDefaultPrivilegesStmt:
		case T_SecLabelStmt:
		case T_AlterExtensionContentsStmt:
		case T_AlterEventTrigStmt:
		case T_CreateTrigStmt:
		case T_CreatePolicyStmt:
		case T_AlterPolicyStmt:
		case T_RuleStmt:
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
		case T_CreateTableAsStmt:
		case T_ViewStmt:
		case T_CreateSeqStmt:
		case T_AlterSeqStmt:
		case T_CreateFunctionStmt:
		case T_DefineStmt:
		case T_CompositeTypeStmt:
		case T_CreateEnumStmt:
		case T_CreateRangeStmt:
		case T_CreateDomainStmt:
		case T_CreateConversionStmt:
		case T_CreateOpClassStmt:
		case T_CreateOpFamilyStmt:
		case T_AlterOpFamilyStmt:
		case T_CreateExtensionStmt:
		case T_AlterFunctionStmt:
		case T_CreateStatsStmt:
		case T_AlterDomainStmt:
		case T_AlterEnumStmt:
		case T_AlterTypeStmt:
			return true;
		default:
			return false;
	}
}

void
tg_log_refusal(const char *rule, const char *what)
{
	ereport(LOG,
			(errmsg("trading_guard refused %s: %s: %s",
					current_tag ? current_tag : "a statement", rule, what),
			 errdetail("Role \"%s\", session user \"%s\".",
					   GetUserNameFromId(GetUserId(), true),
					   GetUserNameFromId(GetSessionUserId(), true)),
			 errhidestmt(true)));
}

/* The server-log line of a change let through by maintenance mode */
static void
tg_log_maintenance(const char *what)
{
	maintenance_logged = true;
	ereport(LOG,
			(errmsg("trading_guard maintenance mode: %s on %s",
					current_tag ? current_tag : "a statement", what),
			 errdetail("Role \"%s\", session user \"%s\".",
					   GetUserNameFromId(GetUserId(), true),
					   GetUserNameFromId(GetSessionUserId(), true)),
			 errhidestmt(true)));
}

/*
 * Refuse a change to object a of the extension, unless maintenance mode is
 * on (then log it).  verb: what the statement would do to it.
 */
static void
tg_refuse_change(const ObjectAddress *a, const char *verb)
{
	char	   *desc = getObjectDescription(a, true);

	if (desc == NULL)
		desc = pstrdup("an object of extension trading_guard");
	if (tg_maintenance)
	{
		tg_log_maintenance(desc);
		return;
	}
	tg_log_refusal("the extension's own objects cannot be changed", desc);
	ereport(ERROR,
			(errcode(ERRCODE_TG_OWN_OBJECT),
			 a->classId == ExtensionRelationId ?
			 errmsg("cannot change the objects of extension trading_guard") :
			 errmsg("cannot %s %s: it belongs to extension trading_guard", verb, desc),
			 errdetail("%s is refused on the extension's own objects for every role, superusers included.",
					   current_tag ? current_tag : "This statement"),
			 errhint("Index builds, REINDEX, VACUUM, ANALYZE, CLUSTER, COMMENT and ALTER EXTENSION trading_guard UPDATE are allowed; "
					 "anything else needs maintenance mode (a superuser runs SET LOCAL trading_guard.maintenance = on in the same transaction).")));
}

/* Does audit_log, security_events or credential_store hold a row?  Read as their owner. */
static bool
tg_trail_holds_rows(const TgOwn *own)
{
	static const char *const tables[] = {"audit_log", "security_events", "credential_store"};
	StringInfoData sql;
	bool		holds = false;
	bool		isnull;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT false");
	for (int i = 0; i < (int) lengthof(tables); i++)
		if (OidIsValid(get_relname_relid(tables[i], own->nsp)))
			appendStringInfo(&sql, " OR EXISTS (SELECT 1 FROM %s)",
							 quote_qualified_identifier(get_namespace_name(own->nsp),
														tables[i]));
	tg_sql_connect();
	if (tg_sql(sql.data, NULL, TG_SQL_AS_OWNER, SPI_OK_SELECT) == 1)
		holds = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	tg_sql_finish();
	pfree(sql.data);
	return holds;
}

/*
 * DROP EXTENSION trading_guard (or its schema, or DROP OWNED BY its owner):
 * refused while the trail holds rows, outside maintenance mode.  Returns
 * true: the drops of the extension's objects that follow are approved.
 */
static bool
tg_check_trail(const TgOwn *own)
{
	if (tg_maintenance)
	{
		tg_log_maintenance("extension trading_guard");
		return true;
	}
	if (!tg_trail_holds_rows(own))
		return true;
	tg_log_refusal("the audit trail and the credential store are not empty",
				   "extension trading_guard");
	ereport(ERROR,
			(errcode(ERRCODE_TG_TRAIL_NOT_EMPTY),
			 errmsg("cannot drop extension trading_guard while its audit log, security events or credential store hold rows"),
			 errdetail("Dropping it would destroy the audit trail and every stored credential."),
			 errhint("Export them first (COPY trading_guard.audit_log TO ..., or pg_dump -t trading_guard.audit_log -t trading_guard.credential_store), "
					 "then drop in a transaction that runs SET LOCAL trading_guard.maintenance = on (superusers only).")));
	return false;				/* keep compiler quiet */
}

/*
 * ProcessUtility_hook: judge the statement, then run it (through the
 * previous hook, if any).
 */
static void
tg_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	const char *save_tag = current_tag;
	bool		save_approved = drop_approved;
	bool		save_logged = maintenance_logged;
	TgOwn		own;

	PG_TRY();
	{
		current_tag = GetCommandTagName(CreateCommandTag(stmt));
		drop_approved = false;
		maintenance_logged = false;
		if (tg_guard_relevant(stmt) && tg_own_get(&own))
		{
			bool		drops_all = false;
			ObjectAddress a = tg_own_target(&own, stmt, &drops_all);

			if (OidIsValid(a.objectId))
				tg_refuse_change(&a, "change");
			if (drops_all)
				drop_approved = tg_check_trail(&own);
		}

		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		current_tag = save_tag;
		drop_approved = save_approved;
		maintenance_logged = save_logged;
	}
	PG_END_TRY();
}

/*
 * object_access_hook: refuse the drop of one of the extension's objects
 * that no approved statement asked for (a CASCADE from elsewhere, DROP
 * OWNED) -- but what PostgreSQL drops internally (the transient heaps of
 * CLUSTER and VACUUM FULL, the old indexes of REINDEX CONCURRENTLY).
 */
static void
tg_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	ObjectAddress a;
	TgOwn		own;

	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);

	if (access != OAT_DROP)
		return;
	if ((((ObjectAccessDrop *) arg)->dropflags & PERFORM_DELETION_INTERNAL) ||
		drop_approved)
		return;

	if (!tg_own_get(&own))
		return;
	ObjectAddressSubSet(a, classId, objectId, subId);
	if (!tg_own_address(&own, &a))
		return;
	if (tg_maintenance && maintenance_logged)
		return;
	tg_refuse_change(&a, "drop");
}

/*
 * trading_guard.maintenance is turned on with SET or SET LOCAL only: never
 * from a file, the command line or ALTER ROLE / DATABASE / SYSTEM, where it
 * would stay on for sessions nobody turned it on in.
 */
static bool
tg_maintenance_check(bool *newval, void **extra, GucSource source)
{
	if (*newval && source != PGC_S_SESSION)
	{
		GUC_check_errdetail("trading_guard.maintenance can only be turned on with SET LOCAL (or SET) in a session.");
		return false;
	}
	return true;
}

void
tg_utility_guard_init(void)
{
	DefineCustomBoolVariable("trading_guard.maintenance",
							 "Allows changes to the extension's own objects (and dropping it with its audit trail).",
							 "Superusers only, with SET LOCAL for one transaction; every change it lets through is logged.",
							 &tg_maintenance,
							 false,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							 tg_maintenance_check, NULL, NULL);

	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = tg_process_utility;
	prev_object_access = object_access_hook;
	object_access_hook = tg_object_access;
}
