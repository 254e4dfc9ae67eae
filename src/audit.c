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
#include "audit_writer.h"
#include "own_tables.h"
#include "run_sql.h"
#include "trading_guard.h"

/* GUCs */
char	   *tg_audit_actor = NULL;
bool		tg_audit_unchanged_updates = true;

/* What a masked value is replaced by in the row images */
#define TG_AUDIT_MASK		"[masked]"

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

static HTAB *audit_cache = NULL;
static MemoryContext audit_cache_cxt = NULL;
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
		return;
	}

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
	tg_audit_writer_init();
	tg_audit_merge_init();
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
static Jsonb *
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
	return (Jsonb *) res;
}

/*
 * The jsonb image of a row: every recorded column, masked ones replaced by
 * the marker.  slot must hold all attributes (slot_getallattrs).
 */
static Jsonb *
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
	return JsonbValueToJsonb(res);
}

/*
 * The primary key of a row as the text of its jsonb object, exactly as
 * jsonb_out() would print it ({"id": 42}, keys in jsonb order), written
 * directly rather than through a jsonb value.
 */
static text *
tg_key_text(TgAuditRel *ar, TupleTableSlot *slot)
{
	StringInfoData buf;
	bool		first = true;

	/* written behind room for the varlena header: the buffer is the text */
	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ);
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
	SET_VARSIZE(buf.data, buf.len);
	return (text *) buf.data;
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
tg_audit_rows(TgAuditWriter *w, TgAuditRel *ar, TriggerData *td)
{
	Relation	rel = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	Tuplestorestate *oldts = td->tg_oldtable;
	Tuplestorestate *newts = td->tg_newtable;
	TupleTableSlot *oldslot = NULL;
	TupleTableSlot *newslot = NULL;
	MemoryContext rowcxt;
	MemoryContext old;
	Datum	   *changed = palloc(sizeof(Datum) * Max(ar->ncols, 1));

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
		TgAuditRow	row = {0};

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
			row.changed_columns = construct_array(changed, nchanged, TEXTOID,
												  -1, false, TYPALIGN_INT);
		}

		if (have_old)
			row.old_row = tg_row_image(ar, oldslot);
		if (have_new)
			row.new_row = tg_row_image(ar, newslot);
		if (ar->nkeys > 0)
		{
			row.row_key = tg_key_text(ar, have_new ? newslot : oldslot);
			if (key_changed)
				row.old_key = tg_key_text(ar, oldslot);
		}

		MemoryContextSwitchTo(old);
		tg_writer_add(w, &row);
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
	tg_writer_subject(&w, RelationGetRelid(td->tg_relation),
					  DatumGetTextP(ar->schema), DatumGetTextP(ar->name),
					  cstring_to_text(operation));
	if (need_old || need_new)
		tg_audit_rows(&w, ar, td);
	else
	{
		TgAuditRow	row = {0};

		tg_writer_add(&w, &row);
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
			 strcmp(RelationGetRelationName(td->tg_relation), "audit_seal") == 0 ?
			 errdetail("The chain of seals of the audit log is append-only, for every role including its owner.") :
			 errdetail("The audit log is append-only, for every role including its owner."),
			 errhint("Remove old audit rows with trading_guard.purge_audit().")));
	PG_RETURN_NULL();
}

/*
 * SQL (1.1 to 1.4): purge_audit(older_than interval) returns bigint
 *
 * The 1.5 library removes sealed batches only (src/seal.c); until ALTER
 * EXTENSION UPDATE has created audit_seal, that fails and removes nothing.
 */
PG_FUNCTION_INFO_V1(tg_purge_audit);
Datum
tg_purge_audit(PG_FUNCTION_ARGS)
{
	return tg_purge_audit_sealed(fcinfo);
}
