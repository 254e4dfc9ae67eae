/*-------------------------------------------------------------------------
 *
 * seal_verify.c
 *	  Checking the sealed audit trail: verify_audit(), audit_digest() and
 *	  audit_proof().  Read-only, so they run on a physical standby too.
 *
 * verify_audit() reads audit_seal and then the whole of audit_log in one
 * sequential scan, under one snapshot; every row's leaf hash goes to its
 * position (found from its id through the batches' id ranges).  Then the
 * batches are walked in chain order: key version, chain link and HMAC,
 * each position's row (present, same 8-byte leaf tag), the Merkle root.
 * The first problem by position is reported.  A row that no batch holds
 * although its transaction is visible in the newest batch's snapshot was
 * not written by a transaction the sealer saw: inserted afterwards.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/crypto.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "audit.h"
#include "keyring.h"
#include "run_sql.h"
#include "events.h"
#include "seal.h"
#include "trading_guard.h"

/* One id range of a batch, and the position of its first id */
typedef struct IdRange
{
	int64		lo;
	int64		hi;
	int			batch;			/* index into the batches */
	int64		pos;			/* position of id lo */
} IdRange;

static int
idrange_cmp(const void *a, const void *b)
{
	const IdRange *x = a;
	const IdRange *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

/* The range holding id, or NULL */
static IdRange *
find_range(IdRange *r, int n, int64 id)
{
	int			l = 0;
	int			h = n - 1;

	while (l <= h)
	{
		int			m = (l + h) / 2;

		if (id < r[m].lo)
			h = m - 1;
		else if (id >= r[m].hi)
			l = m + 1;
		else
			return &r[m];
	}
	return NULL;
}

/* Every batch's ranges with their positions, sorted by id; *n gets how many */
static IdRange *
build_ranges(TgSealBatch *b, int nb, int *n)
{
	int			total = 0;
	IdRange    *r;
	int			k = 0;

	for (int i = 0; i < nb; i++)
		total += b[i].nranges;
	r = palloc_extended(sizeof(IdRange) * Max(total, 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < nb; i++)
	{
		int64		pos = b[i].first_position;

		for (int j = 0; j < b[i].nranges; j++)
		{
			r[k].lo = b[i].range_lo[j];
			r[k].hi = b[i].range_hi[j];
			r[k].batch = i;
			r[k].pos = pos;
			pos += r[k].hi - r[k].lo;
			k++;
		}
	}
	qsort(r, k, sizeof(IdRange), idrange_cmp);
	*n = k;
	return r;
}

/* The id at position pos of batch b */
static int64
id_at(const TgSealBatch *b, int64 pos)
{
	int64		off = pos - b->first_position;

	for (int j = 0; j < b->nranges; j++)
	{
		int64		len = b->range_hi[j] - b->range_lo[j];

		if (off < len)
			return b->range_lo[j] + off;
		off -= len;
	}
	return 0;
}

/* "key=value" out of a digest line (the value ends at white space), or NULL */
static char *
digest_field(const char *digest, const char *key)
{
	char	   *pat = psprintf(" %s=", key);
	const char *p = strstr(digest, pat);
	const char *e;

	if (p == NULL)
		return NULL;
	p += strlen(pat);
	e = p;
	while (*e && !isspace((unsigned char) *e))
		e++;
	return pnstrdup(p, e - p);
}

/*
 * A digest's batch or position: a decimal number of at least 1, nothing
 * else (a garbled digest is an error, never evidence of a rewrite).
 */
static bool
digest_number(const char *s, int64 *out)
{
	char	   *end;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	*out = strtoi64(s, &end, 10);
	return errno == 0 && *end == '\0' && *out >= 1;
}

/* The first problem found (by position) */
typedef struct Problem
{
	bool		found;
	int64		position;		/* -1: none */
	int64		id;				/* -1: none */
	const char *kind;
	char	   *detail;
} Problem;

static void
note(Problem *p, int64 position, int64 id, const char *kind, char *detail)
{
	if (p->found && position >= p->position)
		return;
	p->found = true;
	p->position = position;
	p->id = id;
	p->kind = kind;
	p->detail = detail;
}

/*
 * SQL: verify_audit(from_position bigint DEFAULT NULL, digest text DEFAULT NULL)
 *   returns (ok, rows_checked, batches_checked, first_bad_position,
 *            first_bad_id, problem, detail, head_position, unsealed_rows)
 */
PG_FUNCTION_INFO_V1(tg_verify_audit);
Datum
tg_verify_audit(PG_FUNCTION_ARGS)
{
	int64		from_position = PG_ARGISNULL(0) ? 1 : PG_GETARG_INT64(0);
	char	   *digest = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	TupleDesc	tupdesc;
	Datum		values[9];
	bool		nulls[9];
	Snapshot	snap;
	TgSealBatch *b = NULL;
	int			nb;
	int			start = 0;
	int			digest_batch = -1;
	IdRange    *ranges;
	int			nranges;
	int64		base;
	int64		npos;
	uint8	   *leaves;
	bool	   *present;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	TupleDesc	desc;
	Datum	   *vals;
	bool	   *nuls;
	int			id_att,
				txid_att;
	StringInfoData buf;
	TgFullSnapshot last_snap;
	int64		cut = 0;
	int64		unsealed = 0;
	int64		rows_checked = 0;
	int64		batches_checked = 0;
	Problem		prob = {false, -1, -1, NULL, NULL};
	TgKeyVersion *kv;
	uint8		chain[TG_HASH_LEN];
	uint8		layout[TG_LAYOUT_LEN];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (from_position < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_position must be at least 1")));
	tg_keyring_require();

	snap = RegisterSnapshot(IsolationUsesXactSnapshot() ? GetTransactionSnapshot() : GetLatestSnapshot());
	PushActiveSnapshot(snap);
	tg_sql_connect();
	nb = tg_seal_load_batches(&b, false, 0);
	tg_sql_finish();

	/* where to start, and the batch a digest names */
	while (start < nb && b[start].first_position + b[start].row_count - 1 < from_position)
		start++;
	if (digest != NULL)
	{
		char	   *bs = digest_field(digest, "batch");
		char	   *cs = digest_field(digest, "chain");
		char	   *ps = digest_field(digest, "position");
		int64		db;
		int64		dp;

		if (bs == NULL || cs == NULL || ps == NULL ||
			strstr(digest, "trading_guard audit digest v1") == NULL ||
			!digest_number(bs, &db) || !digest_number(ps, &dp) ||
			strlen(cs) != 2 * TG_HASH_LEN ||
			strspn(cs, "0123456789abcdef") != 2 * TG_HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("not a digest of trading_guard: expected a line \"trading_guard audit digest v1 batch=... position=... chain=...\"")));
		for (int i = 0; i < nb; i++)
			if (b[i].batch == db)
				digest_batch = i;
		if (digest_batch < 0)
			note(&prob, dp, -1, "rewritten",
				 psprintf("batch " INT64_FORMAT " of the digest is not in audit_seal", db));
		else
		{
			char	   *stored = tg_hex(b[digest_batch].chain, TG_HASH_LEN);

			if (strcmp(stored, cs) != 0 ||
				b[digest_batch].first_position + b[digest_batch].row_count - 1 != dp)
				note(&prob, b[digest_batch].first_position, -1, "rewritten",
					 psprintf("the chain at batch " INT64_FORMAT " is not the one the digest holds: the log was rewritten up to there", db));
			start = Min(start, digest_batch);
		}
	}

	ranges = build_ranges(b, nb, &nranges);
	base = start < nb ? b[start].first_position : 1;
	npos = nb > 0 ? b[nb - 1].first_position + b[nb - 1].row_count - base : 0;
	if (npos < 0)
		npos = 0;
	leaves = palloc_extended(TG_HASH_LEN * Max(npos, 1), MCXT_ALLOC_HUGE);
	present = palloc_extended(sizeof(bool) * Max(npos, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	if (nb > 0)
	{
		tg_seal_parse_snapshot(b[nb - 1].snapshot, &last_snap);
		/* checked below: every batch's HMAC covers its purged_through */
		cut = b[nb - 1].purged_through;
	}

	/* every row of the log */
	rel = table_open(tg_audit_log_oid(), AccessShareLock);
	desc = RelationGetDescr(rel);
	tg_seal_layout(desc, layout);
	id_att = tg_seal_attnum(desc, "id") - 1;
	txid_att = tg_seal_attnum(desc, "txid") - 1;
	vals = palloc(sizeof(Datum) * desc->natts);
	nuls = palloc(sizeof(bool) * desc->natts);
	initStringInfo(&buf);
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		int64		id;
		IdRange    *r;

		CHECK_FOR_INTERRUPTS();
		heap_deform_tuple(tuple, desc, vals, nuls);
		id = nuls[id_att] ? -1 : DatumGetInt64(vals[id_att]);
		r = find_range(ranges, nranges, id);
		if (r == NULL)
		{
			uint64		txid = nuls[txid_att] ? 0 :
			U64FromFullTransactionId(DatumGetFullTransactionId(vals[txid_att]));

			if (nb > 0 && tg_seal_batch_is_local(&b[nb - 1]) &&
				tg_seal_xid_visible(&last_snap, txid))
			{
				/* where it would have been sealed: the first batch seeing it */
				int64		pos = b[nb - 1].first_position;

				for (int i = 0; i < nb; i++)
				{
					TgFullSnapshot s;

					if (b[i].first_position >= pos)
						break;
					tg_seal_parse_snapshot(b[i].snapshot, &s);
					if (tg_seal_xid_visible(&s, txid))
					{
						pos = b[i].first_position;
						break;
					}
				}
				note(&prob, pos, id, "inserted",
					 psprintf("audit row " INT64_FORMAT " is in no sealed batch, but its transaction " UINT64_FORMAT " had committed before the last seal",
							  id, txid));
			}
			else
				unsealed++;
			continue;
		}
		{
			int64		pos = r->pos + (id - r->lo);

			if (b[r->batch].batch <= cut)
			{
				note(&prob, pos, id, "inserted",
					 psprintf("audit row " INT64_FORMAT " is in batch " INT64_FORMAT ", which was purged",
							  id, b[r->batch].batch));
				continue;
			}
			if (pos < base)
				continue;
			if (present[pos - base])
			{
				note(&prob, pos, id, "inserted",
					 psprintf("a second row with id " INT64_FORMAT " is in the log", id));
				continue;
			}
			tg_seal_canonical(&buf, desc, vals, nuls);
			tg_seal_leaf_hash(buf.data, buf.len, leaves + (pos - base) * TG_HASH_LEN);
			present[pos - base] = true;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	UnregisterSnapshot(snap);

	/* the batches, in chain order */
	kv = tg_seal_key_scratch();
	for (int i = start; i < nb; i++)
	{
		TgSealBatch *bt = &b[i];
		const uint8 *tags = (const uint8 *) VARDATA(bt->leaf_tags);
		bool		rows_ok = true;

		if (prob.found && prob.position < bt->first_position)
			break;
		batches_checked++;
		if (i > 0 && i > start && memcmp(bt->prev_chain, b[i - 1].chain, TG_HASH_LEN) != 0)
		{
			note(&prob, bt->first_position, -1, "out of order",
				 psprintf("batch " INT64_FORMAT " does not follow batch " INT64_FORMAT " in the chain",
						  bt->batch, b[i - 1].batch));
			break;
		}
		if (i == 0 && (bt->batch != 1 || bt->first_position != 1))
		{
			note(&prob, 1, -1, "missing",
				 psprintf("the chain starts at batch " INT64_FORMAT ", position " INT64_FORMAT,
						  bt->batch, bt->first_position));
			break;
		}
		if (i > 0 && (bt->batch != b[i - 1].batch + 1 ||
					  bt->first_position != b[i - 1].first_position + b[i - 1].row_count))
		{
			note(&prob, b[i - 1].first_position + b[i - 1].row_count, -1, "missing",
				 psprintf("batches between " INT64_FORMAT " and " INT64_FORMAT " are missing",
						  b[i - 1].batch, bt->batch));
			break;
		}
		if (memcmp(bt->layout, layout, TG_LAYOUT_LEN) != 0 && bt->batch > cut && bt->row_count > 0)
		{
			note(&prob, bt->first_position, -1, "seal changed",
				 psprintf("batch " INT64_FORMAT " was sealed with another layout of audit_log (%s, now %s)",
						  bt->batch, tg_hex(bt->layout, TG_LAYOUT_LEN), tg_hex(layout, TG_LAYOUT_LEN)));
			break;
		}
		if (!tg_keyring_get((uint32) bt->key_version, kv))
		{
			note(&prob, bt->first_position, -1, "missing key version",
				 psprintf("batch " INT64_FORMAT " was sealed with key version %d, which is not in the key ring",
						  bt->batch, bt->key_version));
			break;
		}
		tg_seal_chain_hash(bt, kv->subkeys[TG_KEY_SEALING], chain);
		OPENSSL_cleanse(kv, sizeof(TgKeyVersion));
		if (memcmp(chain, bt->chain, TG_HASH_LEN) != 0)
		{
			note(&prob, bt->first_position, -1, "seal changed",
				 psprintf("the seal of batch " INT64_FORMAT " does not match its contents", bt->batch));
			break;
		}
		if (i > 0 && bt->purged_through < b[i - 1].purged_through)
		{
			note(&prob, bt->first_position, -1, "seal changed",
				 psprintf("batch " INT64_FORMAT " purges less than the batch before it", bt->batch));
			break;
		}
		if (bt->batch <= cut)
			continue;			/* purged: its rows are gone by design */

		if (VARSIZE(bt->leaf_tags) - VARHDRSZ != bt->row_count * TG_TAG_LEN)
		{
			note(&prob, bt->first_position, -1, "seal changed",
				 psprintf("the leaf tags of batch " INT64_FORMAT " do not match its row count", bt->batch));
			break;
		}
		for (int64 p = bt->first_position; p < bt->first_position + bt->row_count; p++)
		{
			int64		k = p - base;

			if (!present[k])
			{
				note(&prob, p, id_at(bt, p), "missing",
					 psprintf("audit row " INT64_FORMAT " (batch " INT64_FORMAT ") is not in the log",
							  id_at(bt, p), bt->batch));
				rows_ok = false;
				break;
			}
			if (memcmp(leaves + k * TG_HASH_LEN, tags + (p - bt->first_position) * TG_TAG_LEN, TG_TAG_LEN) != 0)
			{
				note(&prob, p, id_at(bt, p), "changed",
					 psprintf("audit row " INT64_FORMAT " (batch " INT64_FORMAT ") is not the row that was sealed",
							  id_at(bt, p), bt->batch));
				rows_ok = false;
				break;
			}
		}
		if (!rows_ok)
			break;
		{
			TgSealLeaf *l = palloc_extended(sizeof(TgSealLeaf) * bt->row_count, MCXT_ALLOC_HUGE);
			uint8		root[TG_HASH_LEN];

			for (int64 j = 0; j < bt->row_count; j++)
				memcpy(l[j].hash, leaves + (bt->first_position - base + j) * TG_HASH_LEN, TG_HASH_LEN);
			tg_seal_merkle_root(l, bt->row_count, root);
			pfree(l);
			if (memcmp(root, bt->root, TG_HASH_LEN) != 0)
			{
				note(&prob, bt->first_position, -1, "changed",
					 psprintf("the rows of batch " INT64_FORMAT " are not the rows that were sealed", bt->batch));
				break;
			}
		}
		rows_checked += bt->row_count;
	}

	memset(nulls, false, sizeof(nulls));
	values[0] = BoolGetDatum(!prob.found);
	values[1] = Int64GetDatum(rows_checked);
	values[2] = Int64GetDatum(batches_checked);
	values[3] = Int64GetDatum(prob.position);
	nulls[3] = !prob.found || prob.position < 0;
	values[4] = Int64GetDatum(prob.id);
	nulls[4] = !prob.found || prob.id < 0;
	values[5] = prob.found ? CStringGetTextDatum(prob.kind) : (Datum) 0;
	nulls[5] = !prob.found;
	values[6] = prob.found ? CStringGetTextDatum(prob.detail) : (Datum) 0;
	nulls[6] = !prob.found;
	values[7] = Int64GetDatum(nb > 0 ? b[nb - 1].first_position + b[nb - 1].row_count - 1 : 0);
	values[8] = Int64GetDatum(unsealed);
	tg_event_verify("verify_audit", !prob.found, rows_checked, prob.found ? prob.kind : NULL);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * The message, signature and public key of batch b's digest, made again
 * with its key version and checked against the signature stored when b was
 * sealed (TG081 if they differ).  The caller has checked that a key ring is
 * loaded.
 */
static void
sign_batch(const TgSealBatch *b, char **msg, char **sig, char **pem)
{
	uint8		pub[TG_HASH_LEN];
	uint8		s[TG_SIG_LEN];

	*msg = tg_seal_digest_message(b);
	if (!tg_seal_signing_key(b->key_version, pub, s, *msg, strlen(*msg)))
		ereport(ERROR,
				(errcode(ERRCODE_TG_KEY_VERSION_MISSING),
				 errmsg("key version %d, which sealed batch " INT64_FORMAT ", is not in the key ring",
						b->key_version, b->batch)));

	/*
	 * Sign only what the sealer signed.  The batch's row in audit_seal may
	 * have been changed since (a Merkle root made to match changed rows):
	 * signing it again would hand out a valid signature of a forged digest.
	 * Ed25519 signatures are deterministic, so the message is the sealed
	 * one exactly when its signature is the stored one.
	 */
	if (memcmp(s, b->signature, TG_SIG_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_SEAL_BROKEN),
				 errmsg("the seal of batch " INT64_FORMAT " of the audit trail was changed", b->batch),
				 errdetail("Its digest is not the one signed when it was sealed."),
				 errhint("Run trading_guard.verify_audit() to find the first bad row.")));
	*sig = tg_base64(s, TG_SIG_LEN);
	*pem = tg_seal_public_key_pem(pub);
}

/*
 * SQL: audit_digest() returns (batch, position, sealed_at, key_version,
 *        root, chain, message, signature, public_key)
 * The signed head of the chain.
 */
PG_FUNCTION_INFO_V1(tg_audit_digest);
Datum
tg_audit_digest(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[9];
	bool		nulls[9] = {0};
	TgSealBatch *b;
	char	   *msg;
	char	   *sig;
	char	   *pem;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tg_keyring_require();
	PushActiveSnapshot(GetTransactionSnapshot());
	tg_sql_connect();
	if (tg_seal_load_batches(&b, true, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_NOT_SEALED),
				 errmsg("nothing in the audit trail is sealed yet"),
				 errhint("Call trading_guard.seal_audit(), or wait for the sealing worker.")));
	tg_sql_finish();
	PopActiveSnapshot();
	sign_batch(b, &msg, &sig, &pem);
	values[0] = Int64GetDatum(b->batch);
	values[1] = Int64GetDatum(b->first_position + b->row_count - 1);
	values[2] = TimestampTzGetDatum(b->sealed_at);
	values[3] = Int32GetDatum(b->key_version);
	values[4] = CStringGetTextDatum(tg_hex(b->root, TG_HASH_LEN));
	values[5] = CStringGetTextDatum(tg_hex(b->chain, TG_HASH_LEN));
	values[6] = CStringGetTextDatum(msg);
	values[7] = CStringGetTextDatum(sig);
	values[8] = CStringGetTextDatum(pem);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* Collecting the rows of one batch for a proof */
typedef struct ProofCollect
{
	TgSealBatch *batch;
	TgFullSnapshot snap;
	int64		target;
	StringInfoData buf;
	char	   *target_row;		/* hex of its canonical bytes */
	TgSealLeaf *leaves;
	int64		n;
} ProofCollect;

static bool
in_batch(const TgSealBatch *b, int64 id)
{
	for (int j = 0; j < b->nranges; j++)
		if (id >= b->range_lo[j] && id < b->range_hi[j])
			return true;
	return false;
}

static void
proof_row(void *arg, TupleDesc desc, Datum *values, bool *nulls, ItemPointer tid)
{
	ProofCollect *c = arg;
	int			id_att = tg_seal_attnum(desc, "id") - 1;
	int			txid_att = tg_seal_attnum(desc, "txid") - 1;
	int64		id = nulls[id_att] ? -1 : DatumGetInt64(values[id_att]);
	uint64		txid = nulls[txid_att] ? 0 :
		U64FromFullTransactionId(DatumGetFullTransactionId(values[txid_att]));
	MemoryContext old;

	if (!tg_seal_xid_visible(&c->snap, txid) || !in_batch(c->batch, id) ||
		c->n >= c->batch->row_count)
		return;
	tg_seal_canonical(&c->buf, desc, values, nulls);
	c->leaves[c->n].id = id;
	tg_seal_leaf_hash(c->buf.data, c->buf.len, c->leaves[c->n].hash);
	c->n++;
	if (id == c->target)
	{
		old = MemoryContextSwitchTo(GetMemoryChunkContext(c->leaves));
		c->target_row = tg_hex((const uint8 *) c->buf.data, c->buf.len);
		MemoryContextSwitchTo(old);
	}
}

static int
leaf_id_cmp(const void *a, const void *b)
{
	const TgSealLeaf *x = a;
	const TgSealLeaf *y = b;

	return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

/* RFC 6962 audit path of leaf m among leaves[0..n), appended as hex strings */
static void
merkle_path(const TgSealLeaf *leaves, int64 n, int64 m, StringInfo out, bool *first)
{
	int64		k;
	uint8		h[TG_HASH_LEN];

	if (n <= 1)
		return;
	k = 1;
	while (k * 2 < n)
		k *= 2;
	if (m < k)
	{
		merkle_path(leaves, k, m, out, first);
		tg_seal_merkle_root(leaves + k, n - k, h);
	}
	else
	{
		merkle_path(leaves + k, n - k, m - k, out, first);
		tg_seal_merkle_root(leaves, k, h);
	}
	appendStringInfo(out, "%s\"%s\"", *first ? "" : ", ", tg_hex(h, TG_HASH_LEN));
	*first = false;
}

/*
 * SQL: audit_proof(id bigint) returns jsonb
 * An inclusion proof of one sealed audit row: its canonical bytes, its
 * Merkle path to its batch's root, and that batch's signed digest.
 */
PG_FUNCTION_INFO_V1(tg_audit_proof);
Datum
tg_audit_proof(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	TgSqlArgs	args = {0};
	TgSealBatch *b;
	TgSealBatch *prev = NULL;
	TgFullSnapshot prev_snap;
	int64		batchno;
	ProofCollect c;
	Relation	rel;
	Snapshot	snap;
	StringInfoData out;
	uint8		root[TG_HASH_LEN];
	int64		m = -1;
	bool		first = true;
	char	   *msg;
	char	   *sig;
	char	   *pem;
	TupleDesc	desc;

	tg_keyring_require();
	/* a proof holds the row: only for those who may read the log */
	if (pg_class_aclcheck(tg_audit_log_oid(), GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table audit_log"),
				 errdetail("An inclusion proof holds the audit row itself.")));
	snap = RegisterSnapshot(GetLatestSnapshot());
	PushActiveSnapshot(snap);
	tg_sql_connect();
	tg_sql_arg(&args, INT8OID, Int64GetDatum(id));
	if (tg_sql("SELECT batch FROM trading_guard.audit_seal"
			   " WHERE ids OPERATOR(pg_catalog.@>) $1", &args,
			   TG_SQL_READ_ONLY | TG_SQL_AS_OWNER, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_NOT_SEALED),
				 errmsg("audit row " INT64_FORMAT " is not sealed", id),
				 errdetail("No batch of trading_guard.audit_seal holds it: it does not exist, or is not sealed yet."),
				 errhint("Call trading_guard.seal_audit() and try again.")));
	{
		bool		isnull;

		batchno = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	{
		TgSealBatch *last;

		if (tg_seal_load_batches(&last, true, 0) == 1 && batchno <= last->purged_through)
			ereport(ERROR,
					(errcode(ERRCODE_TG_NOT_SEALED),
					 errmsg("audit row " INT64_FORMAT " was purged", id),
					 errdetail("Batch " INT64_FORMAT ", which held it, was removed by purge_audit().", batchno)));
	}
	(void) tg_seal_load_batches(&b, false, batchno);
	if (batchno > 1 && tg_seal_load_batches(&prev, false, batchno - 1) == 1)
		tg_seal_parse_snapshot(prev->snapshot, &prev_snap);
	else
		prev = NULL;
	tg_sql_finish();

	memset(&c, 0, sizeof(c));
	c.batch = b;
	c.target = id;
	tg_seal_parse_snapshot(b->snapshot, &c.snap);
	initStringInfo(&c.buf);
	c.leaves = palloc_extended(sizeof(TgSealLeaf) * Max(b->row_count, 1), MCXT_ALLOC_HUGE);
	rel = table_open(tg_audit_log_oid(), AccessShareLock);
	desc = CreateTupleDescCopy(RelationGetDescr(rel));
	tg_seal_scan_after(rel, snap, prev ? &prev_snap : NULL, proof_row, &c);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	UnregisterSnapshot(snap);

	qsort(c.leaves, c.n, sizeof(TgSealLeaf), leaf_id_cmp);
	if (c.n > 0)
		tg_seal_merkle_root(c.leaves, c.n, root);
	if (c.n != b->row_count || c.target_row == NULL ||
		memcmp(root, b->root, TG_HASH_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_SEAL_BROKEN),
				 errmsg("batch " INT64_FORMAT " of the audit trail does not verify", b->batch),
				 errdetail("Its rows are not the rows that were sealed."),
				 errhint("Run trading_guard.verify_audit() to find the first bad row.")));
	for (int64 i = 0; i < c.n; i++)
		if (c.leaves[i].id == id)
			m = i;

	sign_batch(b, &msg, &sig, &pem);
	initStringInfo(&out);
	appendStringInfo(&out, "{\"format\": \"trading_guard-proof-v1\", \"id\": " INT64_FORMAT
					 ", \"batch\": " INT64_FORMAT ", \"position\": " INT64_FORMAT
					 ", \"leaf_index\": " INT64_FORMAT ", \"leaf_count\": " INT64_FORMAT
					 ", \"columns\": [",
					 id, b->batch, b->first_position + m, m, c.n);
	first = true;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		appendStringInfo(&out, "%s{\"name\": \"%s\", \"type\": \"%s\"}", first ? "" : ", ",
						 NameStr(att->attname), format_type_be(att->atttypid));
		first = false;
	}
	appendStringInfo(&out, "], \"row\": \"%s\", \"path\": [", c.target_row);
	first = true;
	merkle_path(c.leaves, c.n, m, &out, &first);
	appendStringInfo(&out, "], \"root\": \"%s\", \"digest\": {\"message\": ", tg_hex(b->root, TG_HASH_LEN));
	escape_json(&out, msg);
	appendStringInfo(&out, ", \"signature\": \"%s\", \"public_key\": ", sig);
	escape_json(&out, pem);
	appendStringInfoString(&out, "}}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
