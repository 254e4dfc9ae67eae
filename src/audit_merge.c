/*-------------------------------------------------------------------------
 *
 * audit_merge.c
 *	  Refuse a MERGE that could move rows of an audited partitioned table
 *	  without leaving an audit row.
 *
 * PostgreSQL 15 runs a row that a MERGE's UPDATE action moves to another
 * partition as a DELETE from the old partition and an INSERT into the new
 * one, and puts the two images in the statement's DELETE and INSERT
 * transition tables, not in its UPDATE ones (for a plain UPDATE it uses the
 * UPDATE ones).  But the AFTER ... FOR EACH STATEMENT triggers of DELETE and
 * INSERT fire only when the MERGE has a DELETE, resp. an INSERT, action.  So
 * a MERGE whose actions are only UPDATE moves rows, changing any of their
 * columns along the way, and the audit triggers see nothing; with only
 * UPDATE and DELETE the new image is lost, with only UPDATE and INSERT the
 * old one.  The audit trail would miss changes, so such a MERGE is refused
 * (TG067) when it is analysed (also when a prepared or cached one is
 * re-analysed after the table's triggers changed): a MERGE into an audited
 * partitioned table whose UPDATE action sets a column of a partition key,
 * of the target or of any partitioned table below it, unless the MERGE also
 * has an INSERT and a DELETE action (then both images are recorded, as a
 * DELETE and an INSERT).  Costs nothing for other statements.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parsetree.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"

#include "audit.h"
#include "trading_guard.h"

static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;

/*
 * Does rel carry the audit's UPDATE trigger, trading_guard.audit_trigger()
 * with transition tables?  (A disabled one counts: enable_audit repairs it.)
 */
static bool
has_audit_update_trigger(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	if (td == NULL || !td->trig_update_old_table)
		return false;
	for (int i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];
		char	   *fname;
		char	   *nspname;
		bool		ours;

		if (!TRIGGER_FOR_UPDATE(t->tgtype) || t->tgoldtable == NULL)
			continue;
		fname = get_func_name(t->tgfoid);
		nspname = fname ? get_namespace_name(get_func_namespace(t->tgfoid)) : NULL;
		ours = fname && nspname && strcmp(fname, "audit_trigger") == 0 &&
			strcmp(nspname, "trading_guard") == 0;
		if (ours)
			return true;
	}
	return false;
}

/*
 * The target's attribute numbers of every column in a partition key of
 * target or of a partitioned table below it.  The caller has target open.
 */
static Bitmapset *
partition_key_columns(Relation target)
{
	Bitmapset  *cols = NULL;
	List	   *tree = find_all_inheritors(RelationGetRelid(target), AccessShareLock, NULL);
	ListCell   *lc;

	foreach(lc, tree)
	{
		Oid			relid = lfirst_oid(lc);
		Relation	rel;
		PartitionKey key;
		Bitmapset  *attnos = NULL;
		int			attno;

		if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
			continue;
		rel = table_open(relid, NoLock);
		key = RelationGetPartitionKey(rel);
		for (int i = 0; i < key->partnatts; i++)
			if (key->partattrs[i] != 0)
				attnos = bms_add_member(attnos,
										key->partattrs[i] - FirstLowInvalidHeapAttributeNumber);
		pull_varattnos((Node *) key->partexprs, 1, &attnos);
		/* to the target's numbering, by name (columns may differ in order) */
		attno = -1;
		while ((attno = bms_next_member(attnos, attno)) >= 0)
		{
			AttrNumber	a = attno + FirstLowInvalidHeapAttributeNumber;
			char	   *name;
			AttrNumber	mapped;

			if (a <= 0)
				continue;
			name = get_attname(relid, a, false);
			mapped = get_attnum(RelationGetRelid(target), name);
			if (mapped != InvalidAttrNumber)
				cols = bms_add_member(cols, mapped);
		}
		table_close(rel, NoLock);
	}
	return cols;
}

/*
 * post_parse_analyze_hook: refuse a MERGE that could move rows of an
 * audited partitioned table unrecorded (see the file header).
 */
static void
audit_merge_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	RangeTblEntry *rte;
	Relation	target;
	bool		has_insert = false;
	bool		has_delete = false;
	List	   *updates = NIL;
	ListCell   *lc;

	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);

	if (query->commandType != CMD_MERGE || query->resultRelation <= 0)
		return;
	rte = rt_fetch(query->resultRelation, query->rtable);
	if (rte->relkind != RELKIND_PARTITIONED_TABLE)
		return;
	foreach(lc, query->mergeActionList)
	{
		MergeAction *action = lfirst_node(MergeAction, lc);

		if (action->commandType == CMD_INSERT)
			has_insert = true;
		else if (action->commandType == CMD_DELETE)
			has_delete = true;
		else if (action->commandType == CMD_UPDATE)
			updates = lappend(updates, action);
	}
	if (updates == NIL || (has_insert && has_delete))
		return;

	/* parse analysis holds RowExclusiveLock on the target */
	target = table_open(rte->relid, NoLock);
	if (has_audit_update_trigger(target))
	{
		Bitmapset  *keys = partition_key_columns(target);

		foreach(lc, updates)
		{
			MergeAction *action = lfirst_node(MergeAction, lc);
			ListCell   *tl;

			foreach(tl, action->targetList)
			{
				TargetEntry *tle = lfirst_node(TargetEntry, tl);

				if (!tle->resjunk && bms_is_member(tle->resno, keys))
					ereport(ERROR,
							(errcode(ERRCODE_TG_MERGE_MOVES_ROWS),
							 errmsg("MERGE cannot set partition key column \"%s\" of audited table \"%s\"",
									get_attname(rte->relid, tle->resno, false),
									RelationGetRelationName(target)),
							 errdetail("A row this MERGE moves to another partition would not be recorded: PostgreSQL 15 passes it to the DELETE and INSERT audit triggers, which fire only for a MERGE with DELETE and INSERT actions."),
							 errhint("Move rows between partitions with UPDATE, which is recorded as one UPDATE.")));
			}
		}
	}
	table_close(target, NoLock);
}

/* Install the hook; called once from _PG_init (through tg_audit_init) */
void
tg_audit_merge_init(void)
{
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = audit_merge_post_parse_analyze;
}
