/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  The row-level audit trail: the trigger of audited tables and the
 *	  writer of trading_guard.audit_log.
 *
 * enable_audit() puts four AFTER ... FOR EACH STATEMENT triggers on a table
 * (and on each of its partitions), three of them with transition tables.
 * One firing records every row the statement changed: the row images are
 * built straight from the tuples as jsonb, and the audit rows are inserted
 * through the table access method in batches (heap multi-insert) with their
 * index entries, below SQL: no SPI, no planner, no privilege on the log.
 * The id of an audit row comes from a sequence that hands out blocks of
 * 1024, so a backend calls nextval() once per 1024 rows.
 *
 * Fail closed: anything that goes wrong raises an ERROR inside the
 * statement being audited, which then does not happen.
 *
 * Per-backend cache: what the trigger needs to know about an audited
 * relation (its columns, how to render each one, which are masked, excluded
 * or part of the primary key) is built on first use from audit_config and
 * the relation's descriptor.  An entry is stale after a relcache
 * invalidation of that relation, and after any change of audit_config,
 * which it follows as src/own_tables.c describes (so a column masked by
 * another session is masked in every audit row this backend writes once it
 * has taken in the change, whatever snapshot its transaction holds).  A
 * stale entry is only freed at the next lookup, never from the callback.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_am.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/hashfn.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/xid8.h"

#include "audit.h"
#include "own_tables.h"
#include "run_sql.h"
#include "trading_guard.h"

/* GUCs */
char	   *tg_audit_actor = NULL;
bool		tg_audit_unchanged_updates = true;

/* What a masked value is replaced by in the row images */
#define TG_AUDIT_MASK		"[masked]"

/* Audit rows inserted per heap multi-insert */
#define TG_AUDIT_BATCH		1000

/* ids handed out per nextval() of audit_log_id_seq (its INCREMENT BY) */
#define TG_AUDIT_ID_BLOCK	1024

/* Columns of trading_guard.audit_log, in order */
enum
{
	AL_ID = 0,
	AL_EVENT_TIME,
	AL_TXID,
	AL_TABLE_OID,
	AL_SCHEMA_NAME,
	AL_TABLE_NAME,
	AL_OPERATION,
	AL_SESSION_USER,
	AL_CURRENT_USER,
	AL_CLIENT_ADDR,
	AL_APPLICATION_NAME,
	AL_ACTOR,
	AL_ROW_KEY,
	AL_KEY_HASH,
	AL_OLD_KEY,
	AL_OLD_ROW,
	AL_NEW_ROW,
	AL_CHANGED_COLUMNS,
	AL_NATTS
};

/* How a column's value becomes a jsonb value (as to_jsonb() would do it) */
typedef enum TgColKind
{
	TG_COL_INT,					/* int2, int4, int8: number */
	TG_COL_NUMERIC,				/* number, or string for NaN and infinities */
	TG_COL_BOOL,
	TG_COL_TEXT,				/* text, varchar, bpchar: string, no copy */
	TG_COL_JSONB,				/* nested as it is */
	TG_COL_DATETIME,			/* date, timestamp, timestamptz: ISO 8601 */
	TG_COL_OUTPUT,				/* output function: string */
	TG_COL_GENERIC				/* anything else: to_jsonb() itself */
} TgColKind;

typedef struct TgAuditColumn
{
	AttrNumber	attnum;			/* in the relation's descriptor */
	char	   *name;
	int			namelen;
	Datum		name_text;		/* name as text, for changed_columns */
	TgColKind	kind;
	Oid			basetype;
	int16		typlen;
	bool		typbyval;
	bool		masked;
	bool		is_key;
	FmgrInfo	fn;				/* output function, or to_jsonb */
} TgAuditColumn;

typedef struct TgAuditRel
{
	Oid			relid;			/* hash key */
	bool		valid;
	MemoryContext cxt;			/* everything below */
	Datum		schema;			/* text */
	Datum		name;			/* text */
	int			ncols;			/* recorded (not excluded) columns */
	TgAuditColumn *cols;		/* in attnum order */
	int		   *jsonb_order;	/* indexes into cols, in jsonb key order */
	int			nkeys;			/* primary key columns (0: none) */
	uint64		config_generation;	/* of audit_config, when built */

	/*
	 * When every recorded column is a scalar (no json, jsonb, array,
	 * composite, float...), row images are written straight in jsonb's
	 * binary format: image_head is the part that is the same for every row
	 * (varlena header space, object header, the keys' JEntries and bytes,
	 * space for the values' JEntries).
	 */
	bool		flat;
	char	   *image_head;
	int			image_head_len;
	uint32		keys_len;		/* bytes of key data in image_head */
	JsonbValue *values;			/* per-row scratch, ncols long */
} TgAuditRel;

typedef struct TgAuditCacheEntry
{
	Oid			relid;			/* hash key */
	TgAuditRel *ar;
} TgAuditCacheEntry;

/* Values shared by every audit row of one firing */
typedef struct TgAuditCommon
{
	TimestampTz event_time;
	FullTransactionId fxid;
	Datum		session_user_name;
	Datum		current_user_name;
	Datum		client_addr;
	bool		client_addr_null;
	Datum		application_name;
	Datum		actor;
} TgAuditCommon;

/* An open audit_log and the batch of rows waiting to be inserted */
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

typedef struct TgAuditWriter
{
	Relation	rel;
	MemoryContext cxt;			/* lives as long as the writer */
	/* fast path */
	Relation   *indexes;
	BlockNumber *last_block;	/* per index: heap block of the last entry */
	ExprContext *econtext;
	/* executor path */
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	CommandId	cid;
	MemoryContext batch_cxt;
	int			n;
	int			nslots;
	TupleTableSlot *slots[TG_AUDIT_BATCH];
	TgAuditCommon common;
} TgAuditWriter;

static TgAuditIndexes log_indexes;
static HTAB *audit_cache = NULL;
static MemoryContext audit_cache_cxt = NULL;
static Oid	audit_log_oid = InvalidOid;
static Oid	audit_seq_oid = InvalidOid;

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
 * Relcache callback: mark the cache entry of the relation stale, or all of
 * them on a cache reset.  (audit_config's changes are counted by
 * src/own_tables.c.)
 */
static void
tg_audit_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	TgAuditCacheEntry *entry;

	if (audit_cache == NULL)
		return;

	if (OidIsValid(relid))
	{
		entry = hash_search(audit_cache, &relid, HASH_FIND, NULL);
		if (entry != NULL)
			entry->ar->valid = false;
		if (relid == audit_log_oid)
		{
			audit_log_oid = InvalidOid;
			log_indexes.valid = false;
		}
		return;
	}

	log_indexes.valid = false;
	audit_log_oid = InvalidOid;
	audit_seq_oid = InvalidOid;
	hash_seq_init(&seq, audit_cache);
	while ((entry = hash_seq_search(&seq)) != NULL)
		entry->ar->valid = false;
}

void
tg_audit_init(void)
{
	HASHCTL		ctl;

	DefineCustomStringVariable("trading_guard.actor",
							   "Who the application says is acting; recorded in every audit row.",
							   "Set it per session or per transaction (SET LOCAL). "
							   "Empty means unknown and is recorded as NULL.",
							   &tg_audit_actor,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("trading_guard.audit_unchanged_updates",
							 "Record UPDATEs that change no recorded column.",
							 "When off, an updated row whose recorded columns are all unchanged "
							 "(excluded columns are not compared) leaves no audit row.",
							 &tg_audit_unchanged_updates,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	audit_cache_cxt = AllocSetContextCreate(TopMemoryContext,
											"trading_guard audit cache",
											ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(TgAuditCacheEntry);
	ctl.hcxt = audit_cache_cxt;
	audit_cache = hash_create("trading_guard audited relations", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(tg_audit_relcache_callback, (Datum) 0);
	tg_audit_merge_init();
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

Oid
tg_audit_config_oid(void)
{
	return tg_own_table_oid(TG_OWN_AUDIT_CONFIG, true);
}

/* ------------------------------------------------------------------------
 * The per-relation cache
 * ------------------------------------------------------------------------
 */

/* Order of jsonb object keys: shorter first, then bytewise */
static int
tg_jsonb_key_cmp(const TgAuditColumn *a, const TgAuditColumn *b)
{
	if (a->namelen != b->namelen)
		return a->namelen < b->namelen ? -1 : 1;
	return memcmp(a->name, b->name, a->namelen);
}

static TgAuditColumn *sort_cols;	/* for the qsort below */

static int
tg_jsonb_order_cmp(const void *a, const void *b)
{
	return tg_jsonb_key_cmp(&sort_cols[*(const int *) a],
							&sort_cols[*(const int *) b]);
}

/* Is name one of the elements of the text[] datum? */
static bool
tg_text_array_has(ArrayType *arr, const char *name)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && strcmp(TextDatumGetCString(elems[i]), name) == 0)
			return true;
	return false;
}

/*
 * Fail closed if a masked or excluded column named in the settings is not a
 * column of rel (renamed or dropped since): its values would be recorded.
 */
static void
tg_check_setting_columns(Relation rel, ArrayType *arr, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	TupleDesc	desc = RelationGetDescr(rel);

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *col = TextDatumGetCString(elems[i]);
		bool		found = false;

		for (int a = 0; a < desc->natts && !found; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			found = !att->attisdropped && strcmp(NameStr(att->attname), col) == 0;
		}
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_TG_AUDIT_SETTINGS_STALE),
					 errmsg("%s column \"%s\" of audited table \"%s\" does not exist",
							what, col, RelationGetRelationName(rel)),
					 errdetail("The audit settings name a column the table no longer has, so its values could be recorded in the clear."),
					 errhint("Call trading_guard.enable_audit() with the current column names.")));
	}
}

/* Decide how a column of type typid is rendered, and prepare the call */
static void
tg_prepare_column(TgAuditColumn *col, Oid typid, MemoryContext cxt)
{
	Oid			outfunc;
	bool		isvarlena;
	char		typtype;

	col->basetype = getBaseType(typid);
	typtype = get_typtype(col->basetype);

	switch (col->basetype)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			col->kind = TG_COL_INT;
			return;
		case NUMERICOID:
			col->kind = TG_COL_NUMERIC;
			break;				/* needs numeric_out for NaN */
		case BOOLOID:
			col->kind = TG_COL_BOOL;
			return;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			col->kind = TG_COL_TEXT;
			return;
		case JSONBOID:
			col->kind = TG_COL_JSONB;
			return;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			col->kind = TG_COL_DATETIME;
			return;
		default:
			if (typtype == TYPTYPE_ENUM ||
				(typtype == TYPTYPE_BASE &&
				 !OidIsValid(get_element_type(col->basetype)) &&
				 col->basetype != JSONOID &&
				 col->basetype != FLOAT4OID && col->basetype != FLOAT8OID))
				col->kind = TG_COL_OUTPUT;
			else
				col->kind = TG_COL_GENERIC;
			break;
	}

	if (col->kind == TG_COL_GENERIC)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		FuncExpr   *call;

		/* to_jsonb(anyelement) learns its argument's type from fn_expr */
		call = makeFuncExpr(F_TO_JSONB, JSONBOID,
							list_make1(makeNullConst(typid, -1, InvalidOid)),
							InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		fmgr_info_cxt(F_TO_JSONB, &col->fn, cxt);
		fmgr_info_set_expr((Node *) call, &col->fn);
		MemoryContextSwitchTo(old);
	}
	else
	{
		getTypeOutputInfo(typid, &outfunc, &isvarlena);
		fmgr_info_cxt(outfunc, &col->fn, cxt);
	}
}

/*
 * The constant part of a flat row image, laid out as convertJsonbObject()
 * in jsonb_util.c lays out an object: header, the JEntries of the keys
 * (sorted) then of the values, the keys' bytes, then the values' bytes.
 * Every JB_OFFSET_STRIDE'th JEntry holds an end offset instead of a length.
 */
static void
tg_build_image_head(TgAuditRel *ar)
{
	int			n = ar->ncols;
	int			len = VARHDRSZ + sizeof(uint32) + 2 * n * sizeof(JEntry);
	char	   *head;
	JEntry	   *je;
	uint32		total = 0;

	for (int i = 0; i < n; i++)
		len += ar->cols[i].namelen;
	head = palloc0(len);
	*(uint32 *) (head + VARHDRSZ) = n | JB_FOBJECT;
	je = (JEntry *) (head + VARHDRSZ + sizeof(uint32));
	len = VARHDRSZ + sizeof(uint32) + 2 * n * sizeof(JEntry);
	for (int i = 0; i < n; i++)
	{
		TgAuditColumn *col = &ar->cols[ar->jsonb_order[i]];
		JEntry		meta = col->namelen;	/* JENTRY_ISSTRING is 0 */

		memcpy(head + len, col->name, col->namelen);
		len += col->namelen;
		total += col->namelen;
		if ((i % JB_OFFSET_STRIDE) == 0)
			meta = total | JENTRY_HAS_OFF;
		je[i] = meta;
	}
	ar->image_head = head;
	ar->image_head_len = len;
	ar->keys_len = total;
	ar->values = palloc(sizeof(JsonbValue) * Max(n, 1));
}

/*
 * Build the cache entry of an audited relation.  Its settings are those of
 * the relation itself or of its nearest audited ancestor (a partition), read
 * with the latest snapshot.  The caller holds a lock on rel.
 */
static void
tg_audit_rel_build(TgAuditRel *ar, Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	List	   *candidates = list_make1_oid(relid);
	ArrayType  *exclude = NULL;
	ArrayType  *mask = NULL;
	ArrayType  *keys = NULL;
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old;
	ListCell   *lc;
	int			n;

	if (rel->rd_rel->relispartition)
		candidates = list_concat(candidates, get_partition_ancestors(relid));

	ar->config_generation = tg_own_table_load_begin(TG_OWN_AUDIT_CONFIG);
	foreach(lc, candidates)
	{
		TgSqlArgs	args = {0};
		bool		isnull;

		tg_sql_arg(&args, OIDOID, ObjectIdGetDatum(lfirst_oid(lc)));
		if (tg_own_table_read("SELECT exclude_columns, mask_columns"
							  "  FROM trading_guard.audit_config"
							  " WHERE table_name OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
							  &args) == 0)
			continue;
		old = MemoryContextSwitchTo(ar->cxt);
		exclude = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
		mask = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 2, &isnull));
		MemoryContextSwitchTo(old);
		break;
	}
	if (exclude == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_TG_NOT_AUDITED),
				 errmsg("table \"%s\" has audit triggers but is not audited",
						RelationGetRelationName(rel)),
				 errdetail("Neither the table nor a partitioned table it belongs to is in trading_guard.audit_config."),
				 errhint("Call trading_guard.enable_audit() to audit the table, or trading_guard.disable_audit() to remove its audit triggers.")));

	/* the primary key of this relation (a partition has its root's) */
	{
		TgSqlArgs	args = {0};
		bool		isnull;
		Datum		d;

		tg_sql_arg(&args, OIDOID, ObjectIdGetDatum(relid));
		(void) tg_own_table_read("SELECT pg_catalog.array_agg(a.attname::pg_catalog.text)"
								 "  FROM pg_catalog.pg_index i"
								 "  JOIN pg_catalog.pg_attribute a"
								 "    ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid"
								 "   AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey)"
								 " WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisprimary",
								 &args);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
		{
			old = MemoryContextSwitchTo(ar->cxt);
			keys = DatumGetArrayTypePCopy(d);
			MemoryContextSwitchTo(old);
		}
	}
	tg_own_table_load_end();

	tg_check_setting_columns(rel, exclude, "excluded");
	tg_check_setting_columns(rel, mask, "masked");

	old = MemoryContextSwitchTo(ar->cxt);
	ar->schema = CStringGetTextDatum(get_namespace_name(RelationGetNamespace(rel)));
	ar->name = CStringGetTextDatum(RelationGetRelationName(rel));
	ar->cols = palloc0(sizeof(TgAuditColumn) * desc->natts);
	n = 0;
	ar->nkeys = 0;
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		TgAuditColumn *col = &ar->cols[n];

		if (att->attisdropped || tg_text_array_has(exclude, NameStr(att->attname)))
			continue;
		col->attnum = att->attnum;
		col->name = pstrdup(NameStr(att->attname));
		col->namelen = strlen(col->name);
		col->name_text = PointerGetDatum(cstring_to_text(col->name));
		col->typlen = att->attlen;
		col->typbyval = att->attbyval;
		col->masked = tg_text_array_has(mask, col->name);
		col->is_key = keys != NULL && tg_text_array_has(keys, col->name);
		if (col->is_key)
			ar->nkeys++;
		tg_prepare_column(col, att->atttypid, ar->cxt);
		n++;
	}
	ar->ncols = n;
	ar->jsonb_order = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
		ar->jsonb_order[i] = i;
	sort_cols = ar->cols;
	qsort(ar->jsonb_order, n, sizeof(int), tg_jsonb_order_cmp);

	ar->flat = true;
	for (int i = 0; i < n; i++)
		if (ar->cols[i].kind == TG_COL_JSONB || ar->cols[i].kind == TG_COL_GENERIC)
			ar->flat = false;
	if (ar->flat)
		tg_build_image_head(ar);
	MemoryContextSwitchTo(old);
	ar->valid = true;
}

/* The cache entry of an audited relation, built or rebuilt as needed */
static TgAuditRel *
tg_audit_rel_get(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	TgAuditCacheEntry *entry;
	TgAuditRel *ar;
	bool		found;

	entry = hash_search(audit_cache, &relid, HASH_FIND, NULL);
	if (entry != NULL && entry->ar->valid &&
		tg_own_table_current(TG_OWN_AUDIT_CONFIG, entry->ar->config_generation))
		return entry->ar;
	if (entry != NULL)
	{
		MemoryContextDelete(entry->ar->cxt);
		hash_search(audit_cache, &relid, HASH_REMOVE, NULL);
	}

	/* build in a context of its own; drop it if building fails */
	{
		MemoryContext cxt = AllocSetContextCreate(audit_cache_cxt,
												  "trading_guard audited relation",
												  ALLOCSET_SMALL_SIZES);

		ar = MemoryContextAllocZero(cxt, sizeof(TgAuditRel));
		ar->cxt = cxt;
		ar->relid = relid;
		PG_TRY();
		{
			tg_audit_rel_build(ar, rel);
		}
		PG_CATCH();
		{
			MemoryContextDelete(cxt);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	entry = hash_search(audit_cache, &relid, HASH_ENTER, &found);
	entry->ar = ar;
	return ar;
}

/* ------------------------------------------------------------------------
 * Row images
 * ------------------------------------------------------------------------
 */

/* The jsonb value of one column's (non-null) value */
static void
tg_column_value(TgAuditColumn *col, Datum value, JsonbValue *v)
{
	switch (col->kind)
	{
		case TG_COL_INT:
			{
				int64		i = col->basetype == INT8OID ? DatumGetInt64(value) :
				col->basetype == INT4OID ? DatumGetInt32(value) : DatumGetInt16(value);

				v->type = jbvNumeric;
				v->val.numeric = int64_to_numeric(i);
				return;
			}
		case TG_COL_NUMERIC:
			{
				Numeric		num = DatumGetNumeric(value);

				if (numeric_is_nan(num) || numeric_is_inf(num))
					break;		/* JSON has no such numbers: a string */
				v->type = jbvNumeric;
				v->val.numeric = num;
				return;
			}
		case TG_COL_BOOL:
			v->type = jbvBool;
			v->val.boolean = DatumGetBool(value);
			return;
		case TG_COL_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				v->type = jbvString;
				v->val.string.val = VARDATA_ANY(t);
				v->val.string.len = VARSIZE_ANY_EXHDR(t);
				return;
			}
		case TG_COL_JSONB:
			{
				Jsonb	   *j = DatumGetJsonbP(value);

				v->type = jbvBinary;
				v->val.binary.data = &j->root;
				v->val.binary.len = VARSIZE(j) - VARHDRSZ;
				return;
			}
		case TG_COL_DATETIME:
			{
				char		buf[MAXDATELEN + 1];

				JsonEncodeDateTime(buf, value, col->basetype, NULL);
				v->type = jbvString;
				v->val.string.val = pstrdup(buf);
				v->val.string.len = strlen(buf);
				return;
			}
		case TG_COL_GENERIC:
			{
				Jsonb	   *j = DatumGetJsonbP(FunctionCall1(&col->fn, value));

				v->type = jbvBinary;
				v->val.binary.data = &j->root;
				v->val.binary.len = VARSIZE(j) - VARHDRSZ;
				return;
			}
		case TG_COL_OUTPUT:
			break;
	}

	/* TG_COL_OUTPUT, and numeric NaN or infinity */
	v->type = jbvString;
	v->val.string.val = OutputFunctionCall(&col->fn, value);
	v->val.string.len = strlen(v->val.string.val);
}

/*
 * The jsonb image of a row of a flat relation, written directly in jsonb's
 * binary format (what pushJsonbValue() and JsonbValueToJsonb() would make
 * of it, without their intermediate structures and sort).
 */
static Datum
tg_row_image_flat(TgAuditRel *ar, TupleTableSlot *slot)
{
	int			n = ar->ncols;
	JsonbValue *vals = ar->values;
	Size		cap = ar->image_head_len;
	char	   *res;
	char	   *p;
	JEntry	   *je;
	uint64		total = ar->keys_len;

	for (int i = 0; i < n; i++)
	{
		TgAuditColumn *col = &ar->cols[ar->jsonb_order[i]];
		int			att = col->attnum - 1;
		JsonbValue *v = &vals[i];

		if (col->masked)
		{
			v->type = jbvString;
			v->val.string.val = TG_AUDIT_MASK;
			v->val.string.len = sizeof(TG_AUDIT_MASK) - 1;
		}
		else if (slot->tts_isnull[att])
			v->type = jbvNull;
		else
			tg_column_value(col, slot->tts_values[att], v);
		if (v->type == jbvString)
			cap += v->val.string.len;
		else if (v->type == jbvNumeric)
			cap += VARSIZE(v->val.numeric) + sizeof(int32) - 1;	/* and padding */
	}

	res = palloc(cap);
	memcpy(res, ar->image_head, ar->image_head_len);
	je = (JEntry *) (res + VARHDRSZ + sizeof(uint32)) + n;
	p = res + ar->image_head_len;
	for (int i = 0; i < n; i++)
	{
		JsonbValue *v = &vals[i];
		JEntry		meta;

		switch (v->type)
		{
			case jbvNull:
				meta = JENTRY_ISNULL;
				break;
			case jbvBool:
				meta = v->val.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE;
				break;
			case jbvString:
				memcpy(p, v->val.string.val, v->val.string.len);
				p += v->val.string.len;
				meta = JENTRY_ISSTRING | v->val.string.len;
				break;
			case jbvNumeric:
				{
					int			pad = INTALIGN(p - res) - (p - res);
					int			numlen = VARSIZE(v->val.numeric);

					memset(p, 0, pad);
					memcpy(p + pad, v->val.numeric, numlen);
					p += pad + numlen;
					meta = JENTRY_ISNUMERIC | (pad + numlen);
					break;
				}
			default:
				elog(ERROR, "unexpected jsonb value type %d in a flat row image", v->type);
				meta = 0;		/* keep the compiler quiet */
		}
		total += JBE_OFFLENFLD(meta);
		if (total > JENTRY_OFFLENMASK)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("row image of audited table \"%s\" is too large for jsonb",
							text_to_cstring(DatumGetTextPP(ar->name)))));
		if (((i + n) % JB_OFFSET_STRIDE) == 0)
			meta = (meta & JENTRY_TYPEMASK) | (uint32) total | JENTRY_HAS_OFF;
		je[i] = meta;
	}
	SET_VARSIZE(res, p - res);
	return PointerGetDatum(res);
}

/*
 * The jsonb image of a row: every recorded column, masked ones replaced by
 * the marker.  slot must hold all attributes (slot_getallattrs).
 */
static Datum
tg_row_image(TgAuditRel *ar, TupleTableSlot *slot)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	if (ar->flat)
		return tg_row_image_flat(ar, slot);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < ar->ncols; i++)
	{
		TgAuditColumn *col = &ar->cols[ar->jsonb_order[i]];
		int			att = col->attnum - 1;
		JsonbValue	k;
		JsonbValue	v;

		k.type = jbvString;
		k.val.string.val = col->name;
		k.val.string.len = col->namelen;
		pushJsonbValue(&state, WJB_KEY, &k);

		if (col->masked)
		{
			v.type = jbvString;
			v.val.string.val = TG_AUDIT_MASK;
			v.val.string.len = sizeof(TG_AUDIT_MASK) - 1;
		}
		else if (slot->tts_isnull[att])
			v.type = jbvNull;
		else
			tg_column_value(col, slot->tts_values[att], &v);
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}

/*
 * The primary key of a row as the text of its jsonb object, exactly as
 * jsonb_out() would print it ({"id": 42}, keys in jsonb order), written
 * directly rather than through a jsonb value.
 */
static Datum
tg_key_text(TgAuditRel *ar, TupleTableSlot *slot)
{
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < ar->ncols; i++)
	{
		TgAuditColumn *col = &ar->cols[ar->jsonb_order[i]];
		int			att = col->attnum - 1;
		JsonbValue	v;

		if (!col->is_key)
			continue;
		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		escape_json(&buf, col->name);
		appendStringInfoString(&buf, ": ");

		if (slot->tts_isnull[att])
		{
			appendStringInfoString(&buf, "null");
			continue;
		}
		if (col->kind == TG_COL_INT)
		{
			char		num[MAXINT8LEN + 1];
			Datum		d = slot->tts_values[att];

			pg_lltoa(col->basetype == INT8OID ? DatumGetInt64(d) :
					 col->basetype == INT4OID ? DatumGetInt32(d) : DatumGetInt16(d),
					 num);
			appendStringInfoString(&buf, num);
			continue;
		}
		tg_column_value(col, slot->tts_values[att], &v);
		switch (v.type)
		{
			case jbvString:
				{
					char	   *str = pnstrdup(v.val.string.val, v.val.string.len);

					escape_json(&buf, str);
					break;
				}
			case jbvNumeric:
				appendStringInfoString(&buf,
									   DatumGetCString(DirectFunctionCall1(numeric_out,
																		   NumericGetDatum(v.val.numeric))));
				break;
			case jbvBool:
				appendStringInfoString(&buf, v.val.boolean ? "true" : "false");
				break;
			case jbvBinary:
				(void) JsonbToCString(&buf, v.val.binary.data, v.val.binary.len);
				break;
			default:
				appendStringInfoString(&buf, "null");
				break;
		}
	}
	appendStringInfoChar(&buf, '}');
	return PointerGetDatum(cstring_to_text_with_len(buf.data, buf.len));
}

/*
 * The index key of a row key's text: for {"name": <integer>} (one member
 * whose value is an integer that fits in 64 bits) the integer itself, so
 * that keys handed out by a sequence land at the right edge of the index;
 * for anything else a 64-bit hash of the text.  A function of the text
 * alone, so history() computes the same from the key it is given.
 */
static int64
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

/* Are the values of column col equal in both slots? */
static bool
tg_same_value(TgAuditColumn *col, TupleTableSlot *a, TupleTableSlot *b)
{
	int			att = col->attnum - 1;

	if (a->tts_isnull[att] || b->tts_isnull[att])
		return a->tts_isnull[att] && b->tts_isnull[att];
	return datum_image_eq(a->tts_values[att], b->tts_values[att],
						  col->typbyval, col->typlen);
}

/* ------------------------------------------------------------------------
 * The writer
 * ------------------------------------------------------------------------
 */

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

static void
tg_audit_common(TgAuditCommon *c)
{
	c->event_time = GetCurrentTimestamp();
	c->fxid = GetTopFullTransactionId();
	c->session_user_name = tg_role_name(GetSessionUserId(), &cached_session_user,
										&cached_session_user_name);
	c->current_user_name = tg_role_name(GetUserId(), &cached_current_user,
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
	c->client_addr = cached_client_addr;
	c->client_addr_null = cached_client_addr_null;

	c->application_name = (application_name != NULL && application_name[0] != '\0') ?
		CStringGetTextDatum(application_name) : (Datum) 0;
	c->actor = (tg_audit_actor != NULL && tg_audit_actor[0] != '\0') ?
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

static void
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
	if (RelationGetDescr(w->rel)->natts != AL_NATTS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("trading_guard.audit_log does not have the columns this version of trading_guard writes"),
				 errdetail("It has %d columns (dropped ones included) instead of %d.",
						   RelationGetDescr(w->rel)->natts, AL_NATTS),
				 errhint("The audit log is not to be altered; nothing can be audited until it is restored.")));
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

		w->indexes = palloc(sizeof(Relation) * Max(log_indexes.n, 1));
		w->last_block = palloc(sizeof(BlockNumber) * Max(log_indexes.n, 1));
		for (int i = 0; i < log_indexes.n; i++)
		{
			w->indexes[i] = index_open(log_indexes.oids[i], RowExclusiveLock);
			w->last_block[i] = InvalidBlockNumber;
			/* AM state (BRIN's descriptor) lives only as long as this writer */
			log_indexes.info[i]->ii_AmCache = NULL;
			log_indexes.info[i]->ii_Context = w->cxt;
		}
		w->econtext = CreateStandaloneExprContext();
		MemoryContextSwitchTo(old);
	}
	tg_audit_common(&w->common);
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

static void
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
			log_indexes.info[i]->ii_AmCache = NULL;
			index_close(w->indexes[i], NoLock);
		}
		FreeExprContext(w->econtext, true);
	}
	table_close(w->rel, NoLock);
	MemoryContextDelete(w->cxt);
}

/*
 * Queue one audit row.  values/nulls are indexed by the AL_* columns; the
 * writer fills in the id and the session details.  Datums must stay valid
 * until the call returns (the tuple is formed here, in the batch context).
 */
static void
tg_writer_add(TgAuditWriter *w, Datum *values, bool *nulls)
{
	TgAuditCommon *c = &w->common;
	TupleTableSlot *slot;
	HeapTuple	tuple;
	MemoryContext old;

	values[AL_ID] = Int64GetDatum(tg_audit_next_id());
	values[AL_EVENT_TIME] = TimestampTzGetDatum(c->event_time);
	values[AL_TXID] = FullTransactionIdGetDatum(c->fxid);
	values[AL_SESSION_USER] = c->session_user_name;
	values[AL_CURRENT_USER] = c->current_user_name;
	values[AL_CLIENT_ADDR] = c->client_addr;
	values[AL_APPLICATION_NAME] = c->application_name;
	values[AL_ACTOR] = c->actor;
	nulls[AL_ID] = nulls[AL_EVENT_TIME] = nulls[AL_TXID] = false;
	nulls[AL_SESSION_USER] = nulls[AL_CURRENT_USER] = false;
	nulls[AL_CLIENT_ADDR] = c->client_addr_null;
	nulls[AL_APPLICATION_NAME] = c->application_name == (Datum) 0;
	nulls[AL_ACTOR] = c->actor == (Datum) 0;

	if (w->n == w->nslots)
		w->slots[w->nslots++] = MakeSingleTupleTableSlot(RelationGetDescr(w->rel),
														 &TTSOpsHeapTuple);
	slot = w->slots[w->n++];

	old = MemoryContextSwitchTo(w->batch_cxt);
	tuple = heap_form_tuple(RelationGetDescr(w->rel), values, nulls);
	MemoryContextSwitchTo(old);
	ExecStoreHeapTuple(tuple, slot, false);

	if (w->n == TG_AUDIT_BATCH)
		tg_writer_flush(w);
}

void
tg_audit_write_event(const char *operation, Oid relid,
					 const char *schema, const char *name, Jsonb *detail)
{
	tg_audit_write_keyed_event(operation, relid, schema, name, NULL, detail);
}

/*
 * The same for an event about one row of a table (a credential of the
 * vault): row_key, in the form tg_key_text writes ({"id": 5}), makes the
 * event part of that row's history().
 */
void
tg_audit_write_keyed_event(const char *operation, Oid relid,
						   const char *schema, const char *name,
						   const char *row_key, Jsonb *detail)
{
	TgAuditWriter w;
	Datum		values[AL_NATTS];
	bool		nulls[AL_NATTS];

	memset(nulls, true, sizeof(nulls));
	if (row_key != NULL)
	{
		values[AL_ROW_KEY] = CStringGetTextDatum(row_key);
		values[AL_KEY_HASH] = Int64GetDatum(tg_key_hash(DatumGetTextPP(values[AL_ROW_KEY])));
		nulls[AL_ROW_KEY] = nulls[AL_KEY_HASH] = false;
	}
	if (OidIsValid(relid))
	{
		char	   *relname = get_rel_name(relid);

		if (relname != NULL)
		{
			name = relname;
			schema = get_namespace_name(get_rel_namespace(relid));
		}
		values[AL_TABLE_OID] = ObjectIdGetDatum(relid);
		nulls[AL_TABLE_OID] = false;
	}
	if (schema != NULL)
	{
		values[AL_SCHEMA_NAME] = CStringGetTextDatum(schema);
		nulls[AL_SCHEMA_NAME] = false;
	}
	if (name != NULL)
	{
		values[AL_TABLE_NAME] = CStringGetTextDatum(name);
		nulls[AL_TABLE_NAME] = false;
	}
	values[AL_OPERATION] = CStringGetTextDatum(operation);
	nulls[AL_OPERATION] = false;
	if (detail != NULL)
	{
		values[AL_NEW_ROW] = JsonbPGetDatum(detail);
		nulls[AL_NEW_ROW] = false;
	}

	tg_writer_open(&w);
	tg_writer_add(&w, values, nulls);
	tg_writer_close(&w);
}

/* ------------------------------------------------------------------------
 * The trigger
 * ------------------------------------------------------------------------
 */

/* A slot reading transition table ts from its start, with a read pointer of its own */
static TupleTableSlot *
tg_transition_reader(Tuplestorestate *ts, TupleDesc desc)
{
	int			ptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(ts, ptr);
	tuplestore_rescan(ts);
	return MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
}

/*
 * Record every row of one statement's transition table(s): INSERT reads the
 * new rows, DELETE the old, UPDATE both in step (the trigger manager appends
 * each updated row's old and new versions together).
 */
static void
tg_audit_rows(TgAuditWriter *w, TgAuditRel *ar, TriggerData *td,
			  const char *operation)
{
	Relation	rel = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	Tuplestorestate *oldts = td->tg_oldtable;
	Tuplestorestate *newts = td->tg_newtable;
	TupleTableSlot *oldslot = NULL;
	TupleTableSlot *newslot = NULL;
	MemoryContext rowcxt;
	MemoryContext old;
	Datum		values[AL_NATTS];
	bool		nulls[AL_NATTS];
	Datum		op = CStringGetTextDatum(operation);
	Datum	   *changed = palloc(sizeof(Datum) * Max(ar->ncols, 1));
	Oid			relid = RelationGetRelid(rel);

	if (oldts != NULL)
		oldslot = tg_transition_reader(oldts, desc);
	if (newts != NULL)
		newslot = tg_transition_reader(newts, desc);

	rowcxt = AllocSetContextCreate(CurrentMemoryContext,
								   "trading_guard audit row",
								   ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		bool		have_old = false;
		bool		have_new = false;
		bool		key_changed = false;
		int			nchanged = 0;

		if (oldslot != NULL)
			have_old = tuplestore_gettupleslot(oldts, true, false, oldslot);
		if (newslot != NULL)
			have_new = tuplestore_gettupleslot(newts, true, false, newslot);
		if (oldslot != NULL && newslot != NULL && have_old != have_new)
			elog(ERROR, "transition tables of \"%s\" are out of step",
				 RelationGetRelationName(rel));
		if (!have_old && !have_new)
			break;
		CHECK_FOR_INTERRUPTS();

		if (have_old)
			slot_getallattrs(oldslot);
		if (have_new)
			slot_getallattrs(newslot);

		old = MemoryContextSwitchTo(rowcxt);
		memset(nulls, true, sizeof(nulls));

		if (have_old && have_new)
		{
			for (int i = 0; i < ar->ncols; i++)
			{
				TgAuditColumn *col = &ar->cols[i];

				if (!tg_same_value(col, oldslot, newslot))
				{
					changed[nchanged++] = col->name_text;
					if (col->is_key)
						key_changed = true;
				}
			}
			if (nchanged == 0 && !tg_audit_unchanged_updates)
			{
				MemoryContextSwitchTo(old);
				MemoryContextReset(rowcxt);
				continue;
			}
			values[AL_CHANGED_COLUMNS] =
				PointerGetDatum(construct_array(changed, nchanged, TEXTOID,
												-1, false, TYPALIGN_INT));
			nulls[AL_CHANGED_COLUMNS] = false;
		}

		values[AL_TABLE_OID] = ObjectIdGetDatum(relid);
		values[AL_SCHEMA_NAME] = ar->schema;
		values[AL_TABLE_NAME] = ar->name;
		values[AL_OPERATION] = op;
		nulls[AL_TABLE_OID] = nulls[AL_SCHEMA_NAME] = false;
		nulls[AL_TABLE_NAME] = nulls[AL_OPERATION] = false;

		if (have_old)
		{
			values[AL_OLD_ROW] = tg_row_image(ar, oldslot);
			nulls[AL_OLD_ROW] = false;
		}
		if (have_new)
		{
			values[AL_NEW_ROW] = tg_row_image(ar, newslot);
			nulls[AL_NEW_ROW] = false;
		}
		if (ar->nkeys > 0)
		{
			values[AL_ROW_KEY] = tg_key_text(ar, have_new ? newslot : oldslot);
			values[AL_KEY_HASH] = Int64GetDatum(tg_key_hash(DatumGetTextPP(values[AL_ROW_KEY])));
			nulls[AL_ROW_KEY] = nulls[AL_KEY_HASH] = false;
			if (key_changed)
			{
				values[AL_OLD_KEY] = tg_key_text(ar, oldslot);
				nulls[AL_OLD_KEY] = false;
			}
		}

		MemoryContextSwitchTo(old);
		tg_writer_add(w, values, nulls);
		MemoryContextReset(rowcxt);
	}

	MemoryContextDelete(rowcxt);
	if (oldslot != NULL)
		ExecDropSingleTupleTableSlot(oldslot);
	if (newslot != NULL)
		ExecDropSingleTupleTableSlot(newslot);
}

/*
 * SQL: audit_trigger() returns trigger
 *
 * AFTER INSERT / UPDATE / DELETE / TRUNCATE ... FOR EACH STATEMENT, the
 * first three with transition tables, as enable_audit() creates them.
 */
PG_FUNCTION_INFO_V1(tg_audit_trigger);
Datum
tg_audit_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TgAuditRel *ar;
	TgAuditWriter w;
	const char *operation;
	bool		need_old = false;
	bool		need_new = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("audit_trigger: not called by trigger manager")));
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("audit_trigger: must be fired AFTER ... FOR EACH STATEMENT"),
				 errhint("Create audit triggers with trading_guard.enable_audit().")));

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		operation = "INSERT";
		need_new = true;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		operation = "UPDATE";
		need_old = need_new = true;
	}
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		operation = "DELETE";
		need_old = true;
	}
	else
		operation = "TRUNCATE";

	if ((need_old && td->tg_oldtable == NULL) || (need_new && td->tg_newtable == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("audit_trigger: transition tables are missing"),
				 errhint("Create audit triggers with trading_guard.enable_audit().")));

	ar = tg_audit_rel_get(td->tg_relation);
	tg_writer_open(&w);
	if (need_old || need_new)
		tg_audit_rows(&w, ar, td, operation);
	else
	{
		Datum		values[AL_NATTS];
		bool		nulls[AL_NATTS];

		memset(nulls, true, sizeof(nulls));
		values[AL_TABLE_OID] = ObjectIdGetDatum(RelationGetRelid(td->tg_relation));
		values[AL_SCHEMA_NAME] = ar->schema;
		values[AL_TABLE_NAME] = ar->name;
		values[AL_OPERATION] = CStringGetTextDatum(operation);
		nulls[AL_TABLE_OID] = nulls[AL_SCHEMA_NAME] = false;
		nulls[AL_TABLE_NAME] = nulls[AL_OPERATION] = false;
		tg_writer_add(&w, values, nulls);
	}
	tg_writer_close(&w);

	return PointerGetDatum(NULL);
}

/*
 * SQL: audit_record(operation text, tbl regclass, detail jsonb) returns void
 *
 * An audit row for an event that is not a row change.  Not granted to PUBLIC.
 */
PG_FUNCTION_INFO_V1(tg_audit_record);
Datum
tg_audit_record(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("operation must not be null")));
	tg_audit_write_event(text_to_cstring(PG_GETARG_TEXT_PP(0)),
						 PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1),
						 NULL, NULL,
						 PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2));
	PG_RETURN_VOID();
}

/*
 * SQL: audit_log_append_only() returns trigger
 *
 * BEFORE UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT on audit_log,
 * ENABLE ALWAYS: refuses, for every role.  purge_audit() deletes below SQL.
 */
PG_FUNCTION_INFO_V1(tg_audit_log_append_only);
Datum
tg_audit_log_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *what;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("audit_log_append_only: not called by trigger manager")));
	what = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? "UPDATE" :
		TRIGGER_FIRED_BY_DELETE(td->tg_event) ? "DELETE" : "TRUNCATE";
	ereport(ERROR,
			(errcode(ERRCODE_TG_AUDIT_APPEND_ONLY),
			 errmsg("%s of %s is not allowed", what,
					RelationGetRelationName(td->tg_relation)),
			 errdetail("The audit log is append-only, for every role including its owner."),
			 errhint("Remove old audit rows with trading_guard.purge_audit().")));
	PG_RETURN_NULL();
}

/*
 * SQL: purge_audit(older_than interval) returns bigint
 *
 * Deletes the audit rows whose event_time is older than now() - older_than,
 * below SQL (the append-only trigger stays in force for everything else),
 * then records the purge itself.  Not granted to PUBLIC.  Takes
 * SHARE UPDATE EXCLUSIVE on audit_log: one purge at a time, writers go on.
 */
PG_FUNCTION_INFO_V1(tg_purge_audit);
Datum
tg_purge_audit(PG_FUNCTION_ARGS)
{
	Interval   *older_than = PG_GETARG_INTERVAL_P(0);
	Interval	zero;
	TimestampTz cutoff;
	Oid			logoid = tg_audit_log_oid();
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	int64		removed = 0;
	JsonbParseState *state = NULL;
	JsonbValue	k;
	JsonbValue	v;
	JsonbValue *res;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot purge the audit log on a standby"),
				 errdetail("A server in recovery cannot delete rows; the purge replays from the primary."),
				 errhint("Run purge_audit on the primary.")));
	memset(&zero, 0, sizeof(zero));
	if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(older_than),
										 IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative")));
	if (!OidIsValid(logoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("trading_guard.audit_log does not exist")));

	cutoff = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													 TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
													 IntervalPGetDatum(older_than)));

	rel = table_open(logoid, ShareUpdateExclusiveLock);
	scan = table_beginscan(rel, GetTransactionSnapshot(), 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		t = heap_getattr(tuple, AL_EVENT_TIME + 1,
									 RelationGetDescr(rel), &isnull);

		CHECK_FOR_INTERRUPTS();
		if (!isnull && DatumGetTimestampTz(t) < cutoff)
		{
			simple_heap_delete(rel, &tuple->t_self);
			removed++;
		}
	}
	table_endscan(scan);
	table_close(rel, NoLock);
	CommandCounterIncrement();

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "older_than";
	k.val.string.len = strlen(k.val.string.val);
	pushJsonbValue(&state, WJB_KEY, &k);
	v.type = jbvString;
	v.val.string.val = DatumGetCString(DirectFunctionCall1(interval_out,
														   IntervalPGetDatum(older_than)));
	v.val.string.len = strlen(v.val.string.val);
	pushJsonbValue(&state, WJB_VALUE, &v);
	k.val.string.val = "cutoff";
	k.val.string.len = strlen(k.val.string.val);
	pushJsonbValue(&state, WJB_KEY, &k);
	{
		char		buf[MAXDATELEN + 1];

		JsonEncodeDateTime(buf, TimestampTzGetDatum(cutoff), TIMESTAMPTZOID, NULL);
		v.val.string.val = pstrdup(buf);
		v.val.string.len = strlen(buf);
	}
	pushJsonbValue(&state, WJB_VALUE, &v);
	k.val.string.val = "rows_removed";
	k.val.string.len = strlen(k.val.string.val);
	pushJsonbValue(&state, WJB_KEY, &k);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(removed);
	pushJsonbValue(&state, WJB_VALUE, &v);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);

	tg_audit_write_event("PURGE", logoid, NULL, NULL, JsonbValueToJsonb(res));
	PG_RETURN_INT64(removed);
}
