/*-------------------------------------------------------------------------
 *
 * seal_keys.c
 *	  The key index of the audit trail, off the write path: history() finds
 *	  a row's versions through trading_guard.audit_key_index (key_hash, id,
 *	  tid), which the sealer fills in bulk after each batch, instead of a
 *	  B-tree on audit_log that every audited write had to maintain.
 *
 * audit_key_state.indexed_through says up to which batch the index is
 * complete.  history() reads the rows of later batches, and the rows not
 * sealed yet, from audit_log itself: the rows whose transaction is not
 * visible in that batch's snapshot, found through the BRIN index on
 * (event_time, txid) — the same search the sealer makes, so its cost
 * follows the backlog, not the size of the log.
 *
 * The key index is derived data and not dumped: after a restore it is
 * empty (indexed_through = 0) and the sealer rebuilds it from the whole
 * log, while history() reads everything from audit_log.  A tid that no
 * longer holds its row (a purge) finds nothing, as history() also checks
 * the id.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"

#include "audit.h"
#include "run_sql.h"
#include "seal.h"

typedef TgKeyEntry KeyEntry;

typedef struct KeyCollect
{
	TgFullSnapshot *upto;		/* NULL: any committed row (full scan) */
	int			nranges;		/* ids of the batches being indexed */
	int64	   *lo;
	int64	   *hi;
	KeyEntry   *entries;
	int64		n;
	int64		cap;
	int			id_att;
	int			txid_att;
	int			hash_att;
} KeyCollect;

static int
entry_cmp(const void *a, const void *b)
{
	const KeyEntry *x = a;
	const KeyEntry *y = b;

	if (x->key_hash != y->key_hash)
		return x->key_hash < y->key_hash ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

static void
collect_key(KeyCollect *c, Datum *values, bool *nulls, ItemPointer tid)
{
	int64		id;
	KeyEntry   *e;

	if (nulls[c->hash_att] || nulls[c->id_att])
		return;
	id = DatumGetInt64(values[c->id_att]);
	if (!tg_seal_id_in_ranges(id, c->lo, c->hi, c->nranges))
		return;
	if (c->upto != NULL && !nulls[c->txid_att] &&
		!tg_seal_xid_visible(c->upto,
							 U64FromFullTransactionId(DatumGetFullTransactionId(values[c->txid_att]))))
		return;
	if (c->n == c->cap)
	{
		c->cap *= 2;
		c->entries = repalloc_huge(c->entries, sizeof(KeyEntry) * c->cap);
	}
	e = &c->entries[c->n++];
	e->key_hash = DatumGetInt64(values[c->hash_att]);
	e->id = id;
	e->tid = *tid;
}

static void
key_row(void *arg, TupleDesc desc, Datum *values, bool *nulls, ItemPointer tid)
{
	collect_key((KeyCollect *) arg, values, nulls, tid);
}

/*
 * Insert n entries into the key index (sorting them first) and record that
 * it is complete up to batch.  The caller holds the sealing lock and is
 * connected to SPI.
 */
static void
insert_entries(KeyEntry *entries, int64 n, int64 batch)
{
	TgSqlArgs	state = {0};

	if (n > 0)
	{
		Datum	   *hashes = palloc_extended(sizeof(Datum) * n, MCXT_ALLOC_HUGE);
		Datum	   *ids = palloc_extended(sizeof(Datum) * n, MCXT_ALLOC_HUGE);
		Datum	   *tids = palloc_extended(sizeof(Datum) * n, MCXT_ALLOC_HUGE);
		TgSqlArgs	args = {0};

		/* in key order: the B-tree is filled page by page */
		qsort(entries, n, sizeof(KeyEntry), entry_cmp);
		for (int64 i = 0; i < n; i++)
		{
			hashes[i] = Int64GetDatum(entries[i].key_hash);
			ids[i] = Int64GetDatum(entries[i].id);
			tids[i] = PointerGetDatum(&entries[i].tid);
		}
		tg_sql_arg(&args, INT8ARRAYOID,
				   PointerGetDatum(construct_array(hashes, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)));
		tg_sql_arg(&args, INT8ARRAYOID,
				   PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)));
		tg_sql_arg(&args, TIDARRAYOID,
				   PointerGetDatum(construct_array(tids, n, TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT)));
		(void) tg_sql("INSERT INTO trading_guard.audit_key_index (key_hash, id, tid)"
					  " SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]),"
					  "                          pg_catalog.unnest($2::pg_catalog.int8[]),"
					  "                          pg_catalog.unnest($3::pg_catalog.tid[]))",
					  &args, TG_SQL_AS_OWNER, SPI_OK_INSERT);
	}
	/* the lock on audit_seal makes us its only writer; see run_sql.c */
	tg_sql_arg(&state, INT8OID, Int64GetDatum(batch));
	(void) tg_sql("UPDATE trading_guard.audit_key_state SET indexed_through = $1",
				  &state, TG_SQL_AS_OWNER | TG_SQL_WRITE_LATEST, SPI_OK_UPDATE);
}

/* The batch up to which the key index is complete (connected to SPI) */
static int64
indexed_through(void)
{
	bool		isnull;

	if (tg_sql("SELECT indexed_through FROM trading_guard.audit_key_state", NULL,
			   TG_SQL_LATEST | TG_SQL_AS_OWNER, SPI_OK_SELECT) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("trading_guard.audit_key_state must hold one row")));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The sealer's shortcut: the keys of the batch it has just sealed, which it
 * collected while hashing the rows, go into the key index at once when the
 * index was complete up to the batch before; otherwise (a rebuild is under
 * way) tg_seal_index_keys() will take them.  Same caller as insert_entries.
 */
void
tg_seal_index_batch(int64 prev_batch, int64 batch, TgKeyEntry *entries, int64 n)
{
	if (indexed_through() != prev_batch)
		return;
	insert_entries(entries, n, batch);
}

/*
 * Put the keys of the batches sealed since audit_key_state.indexed_through
 * into audit_key_index; returns how many entries, or -1 if a sealer holds
 * the lock and !wait.  The caller is in a transaction on the primary.
 */
int64
tg_seal_index_keys(bool wait)
{
	Oid			seal_oid = tg_audit_seal_oid();
	Snapshot	snap;
	TgSealBatch *b;
	int			nb;
	int64		through;
	bool		full;
	KeyCollect	c;
	TgFullSnapshot base;
	TgFullSnapshot upto;
	Relation	rel;
	int64		result;

	if (wait)
		LockRelationOid(seal_oid, ShareRowExclusiveLock);
	else if (!ConditionalLockRelationOid(seal_oid, ShareRowExclusiveLock))
		return -1;

	snap = RegisterSnapshot(GetLatestSnapshot());
	PushActiveSnapshot(snap);
	tg_sql_connect();
	through = indexed_through();
	nb = tg_seal_load_batches_from(&b, through);	/* through itself, if > 0 */
	if (nb == 0 || b[nb - 1].batch <= through)
	{
		tg_sql_finish();
		PopActiveSnapshot();
		UnregisterSnapshot(snap);
		return 0;
	}

	memset(&c, 0, sizeof(c));
	{
		int			first = (through > 0 && b[0].batch == through) ? 1 : 0;

		/* a rebuild, or batches sealed in another cluster: every row */
		full = (first == 0);
		for (int i = 0; i < nb; i++)
			if (!tg_seal_batch_is_local(&b[i]))
				full = true;
		c.nranges = tg_seal_sorted_ranges(b, first, nb, &c.lo, &c.hi);
		if (!full)
		{
			tg_seal_parse_snapshot(b[0].snapshot, &base);
			tg_seal_parse_snapshot(b[nb - 1].snapshot, &upto);
			c.upto = &upto;
		}
	}
	c.cap = 1024;
	c.entries = palloc_extended(sizeof(KeyEntry) * c.cap, MCXT_ALLOC_HUGE);

	rel = table_open(tg_audit_log_oid(), AccessShareLock);
	c.id_att = tg_seal_attnum(RelationGetDescr(rel), "id") - 1;
	c.txid_att = tg_seal_attnum(RelationGetDescr(rel), "txid") - 1;
	c.hash_att = tg_seal_attnum(RelationGetDescr(rel), "key_hash") - 1;
	if (full)
	{
		TableScanDesc scan = table_beginscan(rel, snap, 0, NULL);
		TupleDesc	desc = RelationGetDescr(rel);
		Datum	   *values = palloc(sizeof(Datum) * desc->natts);
		bool	   *nulls = palloc(sizeof(bool) * desc->natts);
		HeapTuple	tuple;

		while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			CHECK_FOR_INTERRUPTS();
			heap_deform_tuple(tuple, desc, values, nulls);
			collect_key(&c, values, nulls, &tuple->t_self);
		}
		table_endscan(scan);
	}
	else
		tg_seal_scan_after(rel, snap, &base, key_row, &c);
	table_close(rel, AccessShareLock);

	insert_entries(c.entries, c.n, b[nb - 1].batch);
	result = c.n;
	tg_sql_finish();
	PopActiveSnapshot();
	UnregisterSnapshot(snap);
	return result;
}

/* history() may look only if the caller may read audit_log */
static void
require_log_select(void)
{
	if (pg_class_aclcheck(tg_audit_log_oid(), GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table audit_log")));
}

/*
 * SQL: audit_key_lookup(key_hash bigint) returns table (tid tid, id bigint)
 * The entries of the key index for one key hash.  For history(); needs
 * SELECT on audit_log.
 */
PG_FUNCTION_INFO_V1(tg_audit_key_lookup);
Datum
tg_audit_key_lookup(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TgSqlArgs	args = {0};
	uint64		n;

	require_log_select();
	InitMaterializedSRF(fcinfo, 0);
	tg_sql_connect();
	tg_sql_arg(&args, INT8OID, PG_GETARG_DATUM(0));
	n = tg_sql("SELECT tid, id FROM trading_guard.audit_key_index"
			   " WHERE key_hash OPERATOR(pg_catalog.=) $1", &args,
			   TG_SQL_READ_ONLY | TG_SQL_AS_OWNER, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2];

		values[0] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &nulls[0]);
		values[1] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &nulls[1]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	tg_sql_finish();
	return (Datum) 0;
}

/*
 * SQL: audit_key_tail() returns pg_snapshot
 * The snapshot of the last batch in the key index: the rows whose
 * transaction it does not see are not in the index.  NULL when the index
 * is empty or was built from batches of another cluster (every row then).
 */
PG_FUNCTION_INFO_V1(tg_audit_key_tail);
Datum
tg_audit_key_tail(PG_FUNCTION_ARGS)
{
	Datum		res = (Datum) 0;
	bool		isnull = true;

	require_log_select();
	tg_sql_connect();
	if (tg_sql("SELECT s.snapshot, s.system_identifier"
			   "  FROM trading_guard.audit_key_state k"
			   "  JOIN trading_guard.audit_seal s ON s.batch OPERATOR(pg_catalog.=) k.indexed_through",
			   NULL, TG_SQL_READ_ONLY | TG_SQL_AS_OWNER, SPI_OK_SELECT) == 1)
	{
		bool		n2;
		int64		sysid = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &n2));

		if (sysid == (int64) GetSystemIdentifier())
		{
			res = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				res = SPI_datumTransfer(res, false, -1);
		}
	}
	tg_sql_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(res);
}
