/*-------------------------------------------------------------------------
 *
 * audit_writer.c
 *	  The writer of trading_guard.audit_log.
 *
 * Every audit row -- of an audited table's statement, of DDL, of audit
 * settings, of a purge, of the vault -- is written here, below SQL: the
 * tuple is formed here and inserted through the table access method in
 * batches (heap multi-insert), with its index entries; no SPI, no planner,
 * no privilege on the log.  The id of an audit row comes from a sequence
 * that hands out blocks of 1024, so a backend calls nextval() once per 1024
 * rows.
 *
 * The log's column layout is defined once, in tg_audit_log_columns[] and the
 * AL_* enum of audit_writer.h.  Before it first writes (per backend, and
 * again after any relcache invalidation of audit_log) the writer checks
 * that the installed table has exactly those columns, so that a library
 * and SQL objects of different versions fail with a clear error instead of
 * writing rows the table does not describe.
 *
 * Forming a row: the columns from event_time to actor are the same for
 * every row of one subject (a statement on one table), and the id before
 * them has a fixed size, so their bytes are laid out once per subject and
 * copied into each row; only the row's own columns are laid out per row.
 * The result is byte for byte what heap_form_tuple() makes of the same
 * values (the regression test audit_writer compares the two), and the
 * slot that carries it has its values filled in, so the index entries are
 * formed without deforming the tuple again.
 *
 * Per-backend state: audit_log's OID and index list, the checked layout and
 * the block of ids are kept across transactions; the relcache callback
 * below forgets the first three when audit_log changes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/tupmacs.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "audit.h"
#include "audit_writer.h"
#include "trading_guard.h"

/*
 * The columns of trading_guard.audit_log, in order, as the writer forms its
 * rows.  Never reorder or retype them: the sealing of the log hashes rows as
 * stored, and the SQL scripts create the table to match.
 */
const TgAuditLogColumnDef tg_audit_log_columns[AL_NATTS] = {
	[AL_ID] = {"id", INT8OID},
	[AL_EVENT_TIME] = {"event_time", TIMESTAMPTZOID},
	[AL_TXID] = {"txid", XID8OID},
	[AL_TABLE_OID] = {"table_oid", OIDOID},
	[AL_SCHEMA_NAME] = {"schema_name", TEXTOID},
	[AL_TABLE_NAME] = {"table_name", TEXTOID},
	[AL_OPERATION] = {"operation", TEXTOID},
	[AL_SESSION_USER] = {"session_user_name", TEXTOID},
	[AL_CURRENT_USER] = {"current_user_name", TEXTOID},
	[AL_CLIENT_ADDR] = {"client_addr", INETOID},
	[AL_APPLICATION_NAME] = {"application_name", TEXTOID},
	[AL_ACTOR] = {"actor", TEXTOID},
	[AL_ROW_KEY] = {"row_key", TEXTOID},
	[AL_KEY_HASH] = {"key_hash", INT8OID},
	[AL_OLD_KEY] = {"old_key", TEXTOID},
	[AL_OLD_ROW] = {"old_row", JSONBOID},
	[AL_NEW_ROW] = {"new_row", JSONBOID},
	[AL_CHANGED_COLUMNS] = {"changed_columns", TEXTARRAYOID},
};

/* the row's own columns, laid out per row: row_key to changed_columns */
#define AL_FIRST_OWN	AL_ROW_KEY

/* ids handed out per nextval() of audit_log_id_seq (its INCREMENT BY) */
#define TG_AUDIT_ID_BLOCK	1024

/*
 * audit_log's indexes, as the writer maintains them: built once per backend
 * (and again after a relcache invalidation of audit_log, which any index
 * change sends), so a firing opens the indexes but builds nothing.  An index
 * the fast path cannot maintain (expressions, exclusion constraints,
 * deferred uniqueness) sends the writer down the executor's own path.
 */
typedef struct TgAuditIndexes
{
	bool		valid;
	bool		use_executor;
	MemoryContext cxt;
	int			n;
	Oid		   *oids;
	IndexInfo **info;
	ExprState **pred;			/* partial index predicate, or NULL */
	bool	   *per_block;		/* BRIN on columns that are the same for every
								 * row of a writer: one entry per heap block */
} TgAuditIndexes;

static TgAuditIndexes log_indexes;
static Oid	audit_log_oid = InvalidOid;
static Oid	audit_seq_oid = InvalidOid;
static bool layout_checked = false;

/* the current block of ids */
static int64 next_id = 0;
static int	ids_left = 0;

/* session details that change rarely: looked up again when they change */
static Oid	cached_session_user = InvalidOid;
static Datum cached_session_user_name;
static Oid	cached_current_user = InvalidOid;
static Datum cached_current_user_name;
static bool client_addr_known = false;
static Datum cached_client_addr;
static bool cached_client_addr_null;

/*
 * Relcache callback: forget what was learnt about audit_log (its OID, its
 * indexes, that its columns match) when it changes, or on a cache reset.
 */
static void tg_writer_flush(TgAuditWriter *w);

static void
tg_writer_relcache_callback(Datum arg, Oid relid)
{
	if (OidIsValid(relid) && relid != audit_log_oid)
		return;
	audit_log_oid = InvalidOid;
	log_indexes.valid = false;
	layout_checked = false;
	if (!OidIsValid(relid))
		audit_seq_oid = InvalidOid;
}

/* Called once from _PG_init (through tg_audit_init) */
void
tg_audit_writer_init(void)
{
	CacheRegisterRelcacheCallback(tg_writer_relcache_callback, (Datum) 0);
}

/* OID of relation relname in schema trading_guard, or InvalidOid */
static Oid
tg_own_relation(const char *relname)
{
	Oid			nsp = get_namespace_oid("trading_guard", true);

	return OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;
}

Oid
tg_audit_log_oid(void)
{
	if (!OidIsValid(audit_log_oid))
		audit_log_oid = tg_own_relation("audit_log");
	return audit_log_oid;
}

/*
 * The index key of a row key's text: for {"name": <integer>} (one member
 * whose value is an integer that fits in 64 bits) the integer itself, so
 * that keys handed out by a sequence land at the right edge of the index;
 * for anything else a 64-bit hash of the text.  A function of the text
 * alone, so history() computes the same from the key it is given.
 */
int64
tg_key_hash(text *key)
{
	const char *s = VARDATA_ANY(key);
	int			len = VARSIZE_ANY_EXHDR(key);
	int			sep = -1;

	/* the last '": ' separates the last member's name from its value */
	for (int i = len - 3; i >= 2; i--)
		if (s[i] == '"' && s[i + 1] == ':' && s[i + 2] == ' ')
		{
			sep = i;
			break;
		}
	if (len >= 7 && s[0] == '{' && s[1] == '"' && s[len - 1] == '}' && sep > 0)
	{
		const char *v = s + sep + 3;
		const char *end = s + len - 1;
		bool		neg = (v < end && *v == '-');
		bool		single = true;
		uint64		n = 0;
		const char *p;

		for (int i = 2; i + 2 < sep && single; i++)
			single = !(s[i] == '"' && s[i + 1] == ',' && s[i + 2] == ' ');
		p = neg ? v + 1 : v;
		if (single && p < end && end - p <= 18)
		{
			for (; p < end && *p >= '0' && *p <= '9'; p++)
				n = n * 10 + (*p - '0');
			if (p == end)
				return neg ? -(int64) n : (int64) n;
		}
	}
	return (int64) hash_bytes_extended((const unsigned char *) s, len, 0);
}

/*
 * SQL: audit_key_hash(row_key text) returns bigint
 */
PG_FUNCTION_INFO_V1(tg_audit_key_hash);
Datum
tg_audit_key_hash(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(tg_key_hash(PG_GETARG_TEXT_PP(0)));
}

/*
 * The name of role roleid as a text datum (in TopMemoryContext), looked up
 * again only when the role changes.
 */
static Datum
tg_role_name(Oid roleid, Oid *cached_id, Datum *cached_name)
{
	if (roleid != *cached_id)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		Datum		name = CStringGetTextDatum(GetUserNameFromId(roleid, false));

		MemoryContextSwitchTo(old);
		if (OidIsValid(*cached_id))
			pfree(DatumGetPointer(*cached_name));
		*cached_name = name;
		*cached_id = roleid;
	}
	return *cached_name;
}

/* The values every audit row of this writer shares, into w */
static void
tg_audit_common(TgAuditWriter *w)
{
	w->event_time = GetCurrentTimestamp();
	w->fxid = GetTopFullTransactionId();
	w->session_user_name = tg_role_name(GetSessionUserId(), &cached_session_user,
										&cached_session_user_name);
	w->current_user_name = tg_role_name(GetUserId(), &cached_current_user,
										&cached_current_user_name);

	if (!client_addr_known)
	{
		LOCAL_FCINFO(fcinfo, 0);
		Datum		addr;
		MemoryContext old;

		InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
		addr = inet_client_addr(fcinfo);
		cached_client_addr_null = fcinfo->isnull;
		if (!cached_client_addr_null)
		{
			old = MemoryContextSwitchTo(TopMemoryContext);
			cached_client_addr = datumCopy(addr, false, -1);
			MemoryContextSwitchTo(old);
		}
		client_addr_known = true;
	}
	w->client_addr = cached_client_addr;
	w->client_addr_null = cached_client_addr_null;

	w->application_name = (application_name != NULL && application_name[0] != '\0') ?
		CStringGetTextDatum(application_name) : (Datum) 0;
	w->actor = (tg_audit_actor != NULL && tg_audit_actor[0] != '\0') ?
		CStringGetTextDatum(tg_audit_actor) : (Datum) 0;
}

static int64
tg_audit_next_id(void)
{
	if (ids_left == 0)
	{
		if (!OidIsValid(audit_seq_oid))
			audit_seq_oid = tg_own_relation("audit_log_id_seq");
		if (!OidIsValid(audit_seq_oid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("trading_guard.audit_log_id_seq does not exist")));
		next_id = nextval_internal(audit_seq_oid, false);
		ids_left = TG_AUDIT_ID_BLOCK;
	}
	ids_left--;
	return next_id++;
}

/* ------------------------------------------------------------------------
 * Checks of the log
 * ------------------------------------------------------------------------
 */

/*
 * Refuse to write into a table whose columns are not tg_audit_log_columns[]
 * (names, types, order; no added or dropped column): the SQL objects are of
 * another version than the library, or the log was altered.  Done once per
 * backend and again after any relcache invalidation of audit_log.
 */
static void
tg_check_log_layout(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *detail = NULL;

	if (layout_checked)
		return;
	if (desc->natts != AL_NATTS)
		detail = psprintf("It has %d columns (dropped ones included) instead of %d.",
						  desc->natts, AL_NATTS);
	for (int i = 0; detail == NULL && i < AL_NATTS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const TgAuditLogColumnDef *def = &tg_audit_log_columns[i];

		if (att->attisdropped)
			detail = psprintf("Its column %d, where \"%s\" is expected, was dropped.",
							  i + 1, def->name);
		else if (strcmp(NameStr(att->attname), def->name) != 0 ||
				 att->atttypid != def->type)
			detail = psprintf("Its column %d is \"%s\" of type %s where \"%s\" of type %s is expected.",
							  i + 1, NameStr(att->attname),
							  format_type_be(att->atttypid),
							  def->name, format_type_be(def->type));
	}
	if (detail != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_TG_AUDIT_LOG_LAYOUT),
				 errmsg("trading_guard.audit_log does not have the columns this version of trading_guard writes"),
				 errdetail("%s", detail),
				 errhint("Run ALTER EXTENSION trading_guard UPDATE if the library was upgraded without its SQL objects; an audit log altered by hand must be restored. Until then nothing can be audited.")));
	layout_checked = true;
}

/*
 * Refuse to write into a log that is no trail: unlogged (a crash empties
 * it), under row level security (policies could hide rows from auditors),
 * or whose append-only guard trigger is not in force as this backend sees
 * it (the executor fires triggers from the same relcache trigdesc, so a
 * guard switched off by DML on pg_trigger shows here as soon as it would
 * stop firing).  src/utility_guard.c refuses the DDL that would do this;
 * this catches what goes around it.
 */
#define TG_GUARD_EVENTS (TRIGGER_TYPE_BEFORE | TRIGGER_TYPE_UPDATE | \
						 TRIGGER_TYPE_DELETE | TRIGGER_TYPE_TRUNCATE)

static void
tg_check_log_safe(Relation rel)
{
	const char *why = NULL;
	bool		guard = false;

	if (rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT)
		why = "It is not a permanent, WAL-logged table: a crash would empty it.";
	else if (rel->rd_rel->relrowsecurity)
		why = "Row level security is enabled on it: policies could hide rows from auditors.";
	else
	{
		TriggerDesc *td = rel->trigdesc;

		for (int i = 0; td != NULL && i < td->numtriggers; i++)
		{
			Trigger    *t = &td->triggers[i];

			if (strcmp(t->tgname, "audit_log_append_only") == 0 &&
				t->tgenabled == TRIGGER_FIRES_ALWAYS &&
				(t->tgtype & TG_GUARD_EVENTS) == TG_GUARD_EVENTS)
				guard = true;
		}
		if (!guard)
			why = "Its append-only guard trigger audit_log_append_only is missing, disabled or not ENABLE ALWAYS.";
	}
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_TG_AUDIT_LOG_UNSAFE),
				 errmsg("trading_guard.audit_log cannot be trusted: nothing is recorded into it"),
				 errdetail("%s", why),
				 errhint("A superuser restores it in maintenance mode (SET LOCAL trading_guard.maintenance = on); until then audited changes are refused.")));
}

/* (Re)build log_indexes from audit_log, which the caller has open */
static void
tg_log_indexes_build(Relation rel)
{
	List	   *oids = RelationGetIndexList(rel);
	MemoryContext old;
	int			i = 0;
	ListCell   *lc;

	if (log_indexes.cxt == NULL)
		log_indexes.cxt = AllocSetContextCreate(TopMemoryContext,
												"trading_guard audit_log indexes",
												ALLOCSET_SMALL_SIZES);
	MemoryContextReset(log_indexes.cxt);
	log_indexes.valid = false;
	log_indexes.use_executor = false;

	old = MemoryContextSwitchTo(log_indexes.cxt);
	log_indexes.n = list_length(oids);
	log_indexes.oids = palloc(sizeof(Oid) * Max(log_indexes.n, 1));
	log_indexes.info = palloc(sizeof(IndexInfo *) * Max(log_indexes.n, 1));
	log_indexes.pred = palloc0(sizeof(ExprState *) * Max(log_indexes.n, 1));
	log_indexes.per_block = palloc0(sizeof(bool) * Max(log_indexes.n, 1));
	foreach(lc, oids)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *ii = BuildIndexInfo(index);

		if (ii->ii_Expressions != NIL || ii->ii_ExclusionOps != NULL ||
			!index->rd_index->indimmediate)
			log_indexes.use_executor = true;
		if (ii->ii_Predicate != NIL)
			log_indexes.pred[i] = ExecInitQual(ii->ii_Predicate, NULL);

		/*
		 * A BRIN summary of a block range only widens to take in a value.
		 * When every key column of a BRIN index holds a value that is the
		 * same for all the rows one writer inserts (its time, transaction,
		 * roles, ...), the first row placed in a heap block has already
		 * widened that block's summary for all the others.
		 */
		if (index->rd_rel->relam == BRIN_AM_OID && ii->ii_Predicate == NIL)
		{
			bool		constant = true;

			for (int k = 0; k < ii->ii_NumIndexAttrs; k++)
			{
				AttrNumber	a = ii->ii_IndexAttrNumbers[k] - 1;

				if (a != AL_EVENT_TIME && a != AL_TXID && a != AL_SESSION_USER &&
					a != AL_CURRENT_USER && a != AL_CLIENT_ADDR &&
					a != AL_APPLICATION_NAME && a != AL_ACTOR)
					constant = false;
			}
			log_indexes.per_block[i] = constant;
		}
		log_indexes.oids[i] = lfirst_oid(lc);
		log_indexes.info[i] = ii;
		index_close(index, NoLock);
		i++;
	}
	MemoryContextSwitchTo(old);
	list_free(oids);
	log_indexes.valid = true;
}

/* ------------------------------------------------------------------------
 * Forming rows
 *
 * What heap_compute_data_size() and heap_fill_tuple() do, column by column,
 * for the kinds of columns audit_log has (pass-by-value fixed length, and
 * varlena), on offsets from the start of the data area (which is MAXALIGNed,
 * so aligning offsets is aligning addresses).
 * ------------------------------------------------------------------------
 */

/*
 * A varlena value as the writer stores it: never an external TOAST pointer
 * or an expanded object (fetched and flattened first, into the current
 * memory context), so that a row depends on nothing outside itself.
 */
static inline Pointer
tg_plain_varlena(Datum value)
{
	Pointer		p = DatumGetPointer(value);

	if (VARATT_IS_EXTERNAL(p))
		p = (Pointer) detoast_external_attr((struct varlena *) p);
	return p;
}

/*
 * Where the non-null value of column att goes when the data so far ends at
 * off: returns its start and sets *len to the bytes it takes there.  The
 * value must be plain (tg_plain_varlena) if it is a varlena.
 */
static inline Size
tg_col_place(Form_pg_attribute att, Datum value, Size off, Size *len)
{
	if (att->attlen == -1)
	{
		Pointer		p = DatumGetPointer(value);

		if (VARATT_IS_SHORT(p))
		{
			*len = VARSIZE_SHORT(p);
			return off;
		}
		if (att->attstorage != TYPSTORAGE_PLAIN && VARATT_CAN_MAKE_SHORT(p))
		{
			*len = VARATT_CONVERTED_SHORT_SIZE(p);
			return off;
		}
		*len = VARSIZE(p);
		return att_align_nominal(off, att->attalign);
	}
	Assert(att->attbyval && att->attlen > 0);
	*len = att->attlen;
	return att_align_nominal(off, att->attalign);
}

/*
 * Write the non-null value of column att at data + start (as placed by
 * tg_col_place) and return what deforming it would give.
 */
static inline Datum
tg_col_fill(Form_pg_attribute att, Datum value, char *data, Size start,
			uint16 *infomask)
{
	char	   *dst = data + start;

	if (att->attlen == -1)
	{
		Pointer		p = DatumGetPointer(value);

		*infomask |= HEAP_HASVARWIDTH;
		if (VARATT_IS_SHORT(p))
			memcpy(dst, p, VARSIZE_SHORT(p));
		else if (att->attstorage != TYPSTORAGE_PLAIN && VARATT_CAN_MAKE_SHORT(p))
		{
			Size		len = VARATT_CONVERTED_SHORT_SIZE(p);

			SET_VARSIZE_SHORT(dst, len);
			memcpy(dst + 1, VARDATA(p), len - 1);
		}
		else
			memcpy(dst, p, VARSIZE(p));
		return PointerGetDatum(dst);
	}
	store_att_byval(dst, value, att->attlen);
	return value;
}

/*
 * Set what the rows added next are about: lays out the columns event_time
 * to actor, which every row of the subject shares.
 */
void
tg_writer_subject(TgAuditWriter *w, Oid relid, text *schema, text *name,
				  text *operation)
{
	TupleDesc	desc = RelationGetDescr(w->rel);
	Datum		values[AL_ACTOR + 1];
	bool		isnull[AL_ACTOR + 1];
	Size		off;
	Size		starts[AL_ACTOR + 1];
	MemoryContext old = MemoryContextSwitchTo(w->cxt);

	memset(isnull, false, sizeof(isnull));
	values[AL_ID] = Int64GetDatum(0);
	values[AL_EVENT_TIME] = TimestampTzGetDatum(w->event_time);
	values[AL_TXID] = FullTransactionIdGetDatum(w->fxid);
	values[AL_TABLE_OID] = ObjectIdGetDatum(relid);
	isnull[AL_TABLE_OID] = !OidIsValid(relid);
	values[AL_SCHEMA_NAME] = PointerGetDatum(schema);
	isnull[AL_SCHEMA_NAME] = schema == NULL;
	values[AL_TABLE_NAME] = PointerGetDatum(name);
	isnull[AL_TABLE_NAME] = name == NULL;
	values[AL_OPERATION] = PointerGetDatum(operation);
	values[AL_SESSION_USER] = w->session_user_name;
	values[AL_CURRENT_USER] = w->current_user_name;
	values[AL_CLIENT_ADDR] = w->client_addr;
	isnull[AL_CLIENT_ADDR] = w->client_addr_null;
	values[AL_APPLICATION_NAME] = w->application_name;
	isnull[AL_APPLICATION_NAME] = w->application_name == (Datum) 0;
	values[AL_ACTOR] = w->actor;
	isnull[AL_ACTOR] = w->actor == (Datum) 0;

	/* id: 8 bytes at offset 0 of every row, filled in per row */
	off = 0;
	w->head_hasnull = false;
	w->head_infomask = 0;
	memset(w->head_bits, 0, sizeof(w->head_bits));
	for (int i = 0; i <= AL_ACTOR; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Size		len;

		if (isnull[i])
		{
			w->head_hasnull = true;
			starts[i] = off;
			continue;
		}
		w->head_bits[i >> 3] |= 1 << (i & 7);
		if (att->attlen == -1)
			values[i] = PointerGetDatum(tg_plain_varlena(values[i]));
		starts[i] = tg_col_place(att, values[i], off, &len);
		off = starts[i] + len;
	}
	if (w->head != NULL)
		pfree(w->head);
	w->head = palloc0(off);
	w->head_len = off;
	for (int i = 0; i <= AL_ACTOR; i++)
	{
		w->head_isnull[i] = isnull[i];
		w->head_values[i] = isnull[i] ? (Datum) 0 :
			tg_col_fill(TupleDescAttr(desc, i), values[i], w->head, starts[i],
						&w->head_infomask);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Queue one audit row: formed here (what heap_form_tuple would make of it),
 * into a slot whose values are already filled in.
 */
void
tg_writer_add(TgAuditWriter *w, const TgAuditRow *row)
{
	TupleDesc	desc = RelationGetDescr(w->rel);
	Datum		values[AL_NATTS];
	bool		isnull[AL_NATTS];
	Size		starts[AL_NATTS];
	Size		off;
	Size		hoff;
	bool		hasnull;
	uint16		infomask;
	HeapTuple	tuple;
	HeapTupleHeader td;
	char	   *data;
	TupleTableSlot *slot;
	MemoryContext old;

	Assert(w->head != NULL);
	old = MemoryContextSwitchTo(w->batch_cxt);

	values[AL_ROW_KEY] = PointerGetDatum(row->row_key);
	values[AL_OLD_KEY] = PointerGetDatum(row->old_key);
	values[AL_OLD_ROW] = PointerGetDatum(row->old_row);
	values[AL_NEW_ROW] = PointerGetDatum(row->new_row);
	values[AL_CHANGED_COLUMNS] = PointerGetDatum(row->changed_columns);
	for (int i = AL_FIRST_OWN; i < AL_NATTS; i++)
	{
		isnull[i] = (i != AL_KEY_HASH && DatumGetPointer(values[i]) == NULL);
		if (!isnull[i] && i != AL_KEY_HASH)
			values[i] = PointerGetDatum(tg_plain_varlena(values[i]));
	}
	isnull[AL_KEY_HASH] = isnull[AL_ROW_KEY];
	if (!isnull[AL_ROW_KEY])
		values[AL_KEY_HASH] = Int64GetDatum(tg_key_hash((text *) DatumGetPointer(values[AL_ROW_KEY])));

	/* lay out the row's own columns after the shared ones */
	off = w->head_len;
	hasnull = w->head_hasnull;
	for (int i = AL_FIRST_OWN; i < AL_NATTS; i++)
	{
		Size		len;

		if (isnull[i])
		{
			hasnull = true;
			starts[i] = off;
			continue;
		}
		starts[i] = tg_col_place(TupleDescAttr(desc, i), values[i], off, &len);
		off = starts[i] + len;
	}

	hoff = offsetof(HeapTupleHeaderData, t_bits);
	if (hasnull)
		hoff += BITMAPLEN(AL_NATTS);
	hoff = MAXALIGN(hoff);
	tuple = (HeapTuple) palloc0(HEAPTUPLESIZE + hoff + off);
	tuple->t_data = td = (HeapTupleHeader) ((char *) tuple + HEAPTUPLESIZE);
	tuple->t_len = hoff + off;
	ItemPointerSetInvalid(&tuple->t_self);
	tuple->t_tableOid = InvalidOid;
	HeapTupleHeaderSetDatumLength(td, hoff + off);
	HeapTupleHeaderSetTypeId(td, desc->tdtypeid);
	HeapTupleHeaderSetTypMod(td, desc->tdtypmod);
	ItemPointerSetInvalid(&td->t_ctid);
	HeapTupleHeaderSetNatts(td, AL_NATTS);
	td->t_hoff = hoff;
	data = (char *) td + hoff;

	/* the id, then the shared columns as laid out for the subject */
	infomask = w->head_infomask;
	memcpy(data, w->head, w->head_len);
	values[AL_ID] = Int64GetDatum(tg_audit_next_id());
	w->last_id = DatumGetInt64(values[AL_ID]);
	isnull[AL_ID] = false;
	values[AL_ID] = tg_col_fill(TupleDescAttr(desc, AL_ID), values[AL_ID], data, 0, &infomask);
	for (int i = AL_ID + 1; i <= AL_ACTOR; i++)
	{
		isnull[i] = w->head_isnull[i];
		if (isnull[i])
			values[i] = (Datum) 0;
		else if (TupleDescAttr(desc, i)->attbyval)
			values[i] = w->head_values[i];
		else
			values[i] = PointerGetDatum(data + (DatumGetPointer(w->head_values[i]) - w->head));
	}
	for (int i = AL_FIRST_OWN; i < AL_NATTS; i++)
		if (!isnull[i])
			values[i] = tg_col_fill(TupleDescAttr(desc, i), values[i], data,
									starts[i], &infomask);
	if (hasnull)
	{
		infomask |= HEAP_HASNULL;
		memcpy(td->t_bits, w->head_bits, sizeof(w->head_bits));
		for (int i = AL_FIRST_OWN; i < AL_NATTS; i++)
			if (!isnull[i])
				td->t_bits[i >> 3] |= 1 << (i & 7);
	}
	td->t_infomask |= infomask;
	MemoryContextSwitchTo(old);

	if (w->n == w->nslots)
		w->slots[w->nslots++] = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	slot = w->slots[w->n++];

	/*
	 * The slot owns the tuple (so the insert need not copy it), and holds
	 * the values the tuple was made of, pointing into it, as deforming it
	 * would: the index entries are formed from them.
	 */
	ExecStoreHeapTuple(tuple, slot, true);
	memcpy(slot->tts_values, values, sizeof(values));
	memcpy(slot->tts_isnull, isnull, sizeof(isnull));
	slot->tts_nvalid = AL_NATTS;

	if (w->n == TG_AUDIT_BATCH)
		tg_writer_flush(w);
}

/* ------------------------------------------------------------------------
 * Opening, inserting, closing
 * ------------------------------------------------------------------------
 */

/*
 * Open audit_log for writing, after checking that it is a trail and has the
 * columns this library writes.  Opens its indexes for the fast path, or
 * the executor's machinery for the other; the caller closes the writer with
 * tg_writer_close in the same memory context and transaction.
 */
void
tg_writer_open(TgAuditWriter *w)
{
	Oid			logoid = tg_audit_log_oid();

	/* a standby cannot assign the transaction id an insert needs */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot write an audit row on a standby"),
				 errdetail("What would be recorded is refused: a server in recovery cannot write to trading_guard.audit_log."),
				 errhint("Run it on the primary.")));
	if (!OidIsValid(logoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("trading_guard.audit_log does not exist"),
				 errhint("Is the trading_guard extension installed in this database?")));

	memset(w, 0, offsetof(TgAuditWriter, slots));
	w->rel = table_open(logoid, RowExclusiveLock);
	tg_check_log_safe(w->rel);
	tg_check_log_layout(w->rel);
	w->cxt = AllocSetContextCreate(CurrentMemoryContext,
								   "trading_guard audit writer",
								   ALLOCSET_DEFAULT_SIZES);
	w->batch_cxt = AllocSetContextCreate(w->cxt,
										 "trading_guard audit batch",
										 ALLOCSET_DEFAULT_SIZES);
	w->cid = GetCurrentCommandId(true);

	/* opening audit_log has processed any invalidation of its indexes */
	if (!log_indexes.valid)
		tg_log_indexes_build(w->rel);

	if (log_indexes.use_executor)
	{
		w->estate = CreateExecutorState();
		w->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
		ExecOpenIndices(w->rri, false);
	}
	else
	{
		MemoryContext old = MemoryContextSwitchTo(w->cxt);

		/* each index is opened when it first takes an entry */
		w->indexes = palloc0(sizeof(Relation) * Max(log_indexes.n, 1));
		w->last_block = palloc(sizeof(BlockNumber) * Max(log_indexes.n, 1));
		for (int i = 0; i < log_indexes.n; i++)
			w->last_block[i] = InvalidBlockNumber;
		w->econtext = CreateStandaloneExprContext();
		MemoryContextSwitchTo(old);
	}
	tg_audit_common(w);
}

/* Index entries of one inserted audit row, without the executor */
static void
tg_writer_index_row(TgAuditWriter *w, TupleTableSlot *slot)
{
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];

	for (int i = 0; i < log_indexes.n; i++)
	{
		IndexInfo  *ii = log_indexes.info[i];

		/* an index being built concurrently takes entries only once ready */
		if (!ii->ii_ReadyForInserts)
			continue;
		if (log_indexes.per_block[i])
		{
			BlockNumber blk = ItemPointerGetBlockNumber(&slot->tts_tid);

			if (blk == w->last_block[i])
				continue;
			w->last_block[i] = blk;
		}
		if (log_indexes.pred[i] != NULL)
		{
			bool		match;

			w->econtext->ecxt_scantuple = slot;
			match = ExecQual(log_indexes.pred[i], w->econtext);
			ResetExprContext(w->econtext);
			if (!match)
				continue;
		}

		/*
		 * Open the index now: a partial index that takes no entry from this
		 * writer (old_key's, for all but key-changing updates) is not opened
		 * at all.  An index we insert nothing into needs no lock: what keeps
		 * the index list right is the lock on audit_log itself.
		 */
		if (w->indexes[i] == NULL)
		{
			w->indexes[i] = index_open(log_indexes.oids[i], RowExclusiveLock);
			/* AM state (BRIN's descriptor) lives only as long as this writer */
			ii->ii_AmCache = NULL;
			ii->ii_Context = w->cxt;
		}
		FormIndexDatum(ii, slot, NULL, values, isnull);
		index_insert(w->indexes[i], values, isnull, &slot->tts_tid, w->rel,
					 w->indexes[i]->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
					 false, ii);
	}
}

/* Insert the batched rows and their index entries */
static void
tg_writer_flush(TgAuditWriter *w)
{
	if (w->n == 0)
		return;
	if (w->n == 1)
		table_tuple_insert(w->rel, w->slots[0], w->cid, 0, NULL);
	else
	{
		if (w->bistate == NULL)
			w->bistate = GetBulkInsertState();
		table_multi_insert(w->rel, w->slots, w->n, w->cid, 0, w->bistate);
	}
	for (int i = 0; i < w->n; i++)
	{
		if (w->rri != NULL)
		{
			List	   *recheck;

			recheck = ExecInsertIndexTuples(w->rri, w->slots[i], w->estate,
											false, false, NULL, NIL);
			list_free(recheck);
			ResetPerTupleExprContext(w->estate);
		}
		else
			tg_writer_index_row(w, w->slots[i]);
		ExecClearTuple(w->slots[i]);
	}
	w->n = 0;
	MemoryContextReset(w->batch_cxt);
}

void
tg_writer_close(TgAuditWriter *w)
{
	tg_writer_flush(w);
	if (w->bistate != NULL)
		FreeBulkInsertState(w->bistate);
	for (int i = 0; i < w->nslots; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
	if (w->rri != NULL)
	{
		ExecCloseIndices(w->rri);
		FreeExecutorState(w->estate);
	}
	else
	{
		for (int i = 0; i < log_indexes.n; i++)
		{
			if (w->indexes[i] == NULL)
				continue;
			log_indexes.info[i]->ii_AmCache = NULL;
			index_close(w->indexes[i], NoLock);
		}
		FreeExprContext(w->econtext, true);
	}
	table_close(w->rel, NoLock);
	MemoryContextDelete(w->cxt);
}

/* ------------------------------------------------------------------------
 * Events that are not row changes
 * ------------------------------------------------------------------------
 */

int64
tg_audit_write_event(const char *operation, Oid relid,
					 const char *schema, const char *name, Jsonb *detail)
{
	return tg_audit_write_keyed_event(operation, relid, schema, name, NULL, detail);
}

/*
 * The same for an event about one row of a table (a credential of the
 * vault): row_key, in the form tg_key_text writes ({"id": 5}), makes the
 * event part of that row's history().
 */
int64
tg_audit_write_keyed_event(const char *operation, Oid relid,
						   const char *schema, const char *name,
						   const char *row_key, Jsonb *detail)
{
	TgAuditWriter w;
	TgAuditRow	row = {0};
	int64		id;

	if (OidIsValid(relid))
	{
		char	   *relname = get_rel_name(relid);

		if (relname != NULL)
		{
			name = relname;
			schema = get_namespace_name(get_rel_namespace(relid));
		}
	}
	if (row_key != NULL)
		row.row_key = cstring_to_text(row_key);
	row.new_row = detail;

	tg_writer_open(&w);
	tg_writer_subject(&w, relid,
					  schema != NULL ? cstring_to_text(schema) : NULL,
					  name != NULL ? cstring_to_text(name) : NULL,
					  cstring_to_text(operation));
	tg_writer_add(&w, &row);
	id = w.last_id;
	tg_writer_close(&w);
	return id;
}
