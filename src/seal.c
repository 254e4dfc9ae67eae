/*-------------------------------------------------------------------------
 *
 * seal.c
 *	  Sealing of the audit trail: every committed row of
 *	  trading_guard.audit_log is hashed into a keyed hash chain of batches
 *	  (trading_guard.audit_seal), by a background worker and by
 *	  seal_audit(); purge_audit() removes only sealed rows.
 *
 * Which rows a batch holds is decided by the sealer after commit, never by
 * the writers: batch N holds the rows whose transaction (the txid column)
 * is visible in batch N's snapshot and was not visible in batch N-1's — the
 * batches of PgQ.  So writers take no lock and wait for nothing; a
 * transaction that rolls back leaves no row to seal; a transaction that
 * stays open is in the xip list of every snapshot until it commits, and
 * its rows go into the first batch after that, while everyone else's are
 * sealed as usual.  The rows are found through the BRIN index on
 * (event_time, txid): the
 * new transactions (txid >= the previous xmax, the index's last ranges)
 * plus one equality probe per transaction that was in progress last time.
 *
 * Within a batch rows are ordered by id.  Each row's leaf hash is SHA-256
 * over its canonical bytes (tg_seal_canonical); the batch's Merkle root
 * (RFC 6962 shape) and header are chained by HMAC-SHA256 under the sealing
 * subkey of the newest key version, and the head is signed with an Ed25519
 * key derived from that subkey (src/seal_verify.c checks all of it).
 *
 * One sealer at a time per database: SHARE ROW EXCLUSIVE on audit_seal
 * (the worker only tries it, and skips a round when seal_audit() holds it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/crypto.h>

#include "access/brin.h"
#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/tidbitmap.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/xid8.h"

#include "audit.h"
#include "keyring.h"
#include "run_sql.h"
#include "seal.h"
#include "restore.h"
#include "shmem.h"
#include "trading_guard.h"

/* GUCs */
static int	seal_interval = 200;	/* ms between the worker's rounds; 0: off */
static int	digest_interval = 600;	/* s between digest lines in the log; 0: off */
static char *seal_databases = NULL;

#define TG_SEAL_MAX_DB		8

/* keys of a batch put into the key index in the sealing transaction */
#define TG_SEAL_KEYS_INLINE	20000
#define TG_SEAL_ERRLEN		256

/* What the worker of one database tells seal_status */
typedef struct TgSealSlot
{
	Oid			dboid;
	int			pid;
	bool		waiting_for_keyring;
	TimestampTz last_round_at;
	TimestampTz last_error_at;
	char		last_error[TG_SEAL_ERRLEN];
} TgSealSlot;

typedef struct TgSealShared
{
	slock_t		mutex;
	TgSealSlot	slots[TG_SEAL_MAX_DB];
} TgSealShared;

static TgSealShared *seal_shared = NULL;

static const char leaf_prefix = 0x00;
static const char node_prefix = 0x01;

/* SHA-256 context reused by a backend (holds no secret) */
static EVP_MD_CTX *md_ctx = NULL;
static EVP_MD *sha256 = NULL;

static void
tg_seal_md_init(void)
{
	if (sha256 == NULL)
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (md_ctx == NULL)
		md_ctx = EVP_MD_CTX_new();
	if (sha256 == NULL || md_ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("OpenSSL could not provide SHA-256")));
}

/* SHA-256(prefix || a || b) into out; b may be NULL */
static void
tg_sha256(char prefix, const void *a, size_t alen, const void *b, size_t blen, uint8 *out)
{
	unsigned int outlen = 0;

	tg_seal_md_init();
	if (EVP_DigestInit_ex2(md_ctx, sha256, NULL) != 1 ||
		EVP_DigestUpdate(md_ctx, &prefix, 1) != 1 ||
		EVP_DigestUpdate(md_ctx, a, alen) != 1 ||
		(b != NULL && EVP_DigestUpdate(md_ctx, b, blen) != 1) ||
		EVP_DigestFinal_ex(md_ctx, out, &outlen) != 1 || outlen != TG_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256")));
}

/*
 * Scratch space for one key version's subkeys, in locked memory that is
 * left out of core dumps: allocated once per process, wiped by the caller
 * after each use.
 */
TgKeyVersion *
tg_seal_key_scratch(void)
{
	static TgKeyVersion *kv = NULL;

	if (kv == NULL)
		kv = tg_secure_alloc(sizeof(TgKeyVersion));
	return kv;
}

/* Base64 of data, one line */
char *
tg_base64(const uint8 *data, int len)
{
	int			cap = pg_b64_enc_len(len) + 1;
	char	   *s = palloc(cap);
	int			n = pg_b64_encode((const char *) data, len, s, cap);

	if (n < 0)
		elog(ERROR, "could not encode base64");
	s[n] = '\0';
	return s;
}

/* Lowercase hex of data */
char *
tg_hex(const uint8 *data, int len)
{
	static const char digits[] = "0123456789abcdef";
	char	   *s = palloc(len * 2 + 1);

	for (int i = 0; i < len; i++)
	{
		s[2 * i] = digits[data[i] >> 4];
		s[2 * i + 1] = digits[data[i] & 15];
	}
	s[len * 2] = '\0';
	return s;
}

static void
append_be(StringInfo buf, uint64 v, int bytes)
{
	char		b[8];

	for (int i = 0; i < bytes; i++)
		b[i] = (char) (v >> (8 * (bytes - 1 - i)));
	appendBinaryStringInfo(buf, b, bytes);
}

/* ------------------------------------------------------------------------
 * Canonical rows, leaves, trees, chain
 * ------------------------------------------------------------------------
 */

/*
 * The canonical bytes of one audit row: for each column in order, a 4-byte
 * big-endian length (0xFFFFFFFF for NULL) then the value: fixed-length
 * pass-by-value types (int8, timestamptz, xid8, oid, ...) as big-endian
 * integers of their length, any other type as its bytes with TOAST and
 * compression undone (for varlena types the data without the header).
 * So the bytes are those of the row as stored, and the same after a dump
 * and restore.
 */
void
tg_seal_canonical(StringInfo buf, TupleDesc desc, Datum *values, bool *nulls)
{
	resetStringInfo(buf);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (nulls[i])
		{
			append_be(buf, 0xFFFFFFFF, 4);
			continue;
		}
		if (att->attbyval)
		{
			uint64		v;

			switch (att->attlen)
			{
				case 1:
					v = (uint8) DatumGetChar(values[i]);
					break;
				case 2:
					v = (uint16) DatumGetInt16(values[i]);
					break;
				case 4:
					v = (uint32) DatumGetInt32(values[i]);
					break;
				default:
					v = (uint64) DatumGetInt64(values[i]);
					break;
			}
			append_be(buf, att->attlen, 4);
			append_be(buf, v, att->attlen);
		}
		else if (att->attlen == -1)
		{
			struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(values[i]));

			append_be(buf, VARSIZE_ANY_EXHDR(v), 4);
			appendBinaryStringInfo(buf, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
			if ((Pointer) v != DatumGetPointer(values[i]))
				pfree(v);
		}
		else if (att->attlen == -2)
		{
			const char *s = DatumGetCString(values[i]);

			append_be(buf, strlen(s), 4);
			appendBinaryStringInfo(buf, s, strlen(s));
		}
		else
		{
			append_be(buf, att->attlen, 4);
			appendBinaryStringInfo(buf, DatumGetPointer(values[i]), att->attlen);
		}
	}
}

void
tg_seal_leaf_hash(const char *data, int len, uint8 *out)
{
	tg_sha256(leaf_prefix, data, len, NULL, 0, out);
}

/*
 * The layout of audit_log, which the canonical bytes do not carry: the
 * first 8 bytes of SHA-256 over "name type\n" for each column in order
 * (type as format_type() prints it).  In every batch's chain hash and
 * digest, so a proof's column names and types are covered by its
 * signature.
 */
void
tg_seal_layout(TupleDesc desc, uint8 *out)
{
	StringInfoData buf;
	uint8		h[TG_HASH_LEN];
	unsigned int len = 0;

	initStringInfo(&buf);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped)
			appendStringInfo(&buf, "%s %s\n", NameStr(att->attname), format_type_be(att->atttypid));
	}
	tg_seal_md_init();
	if (EVP_Digest(buf.data, buf.len, h, &len, sha256, NULL) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256")));
	memcpy(out, h, TG_LAYOUT_LEN);
	pfree(buf.data);
}

/* largest power of two smaller than n (n >= 2) */
static int64
split_point(int64 n)
{
	int64		k = 1;

	while (k * 2 < n)
		k *= 2;
	return k;
}

/* RFC 6962 Merkle tree hash of leaves[0..n) (n >= 1) */
void
tg_seal_merkle_root(const TgSealLeaf *leaves, int64 n, uint8 *out)
{
	TgHash		l;
	TgHash		r;
	int64		k;

	if (n == 0)
	{
		/* RFC 6962: the hash of an empty tree is the hash of nothing */
		unsigned int len = 0;

		tg_seal_md_init();
		if (EVP_Digest("", 0, out, &len, sha256, NULL) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compute SHA-256")));
		return;
	}
	if (n == 1)
	{
		memcpy(out, leaves[0].hash, TG_HASH_LEN);
		return;
	}
	k = split_point(n);
	tg_seal_merkle_root(leaves, k, l);
	tg_seal_merkle_root(leaves + k, n - k, r);
	tg_sha256(node_prefix, l, TG_HASH_LEN, r, TG_HASH_LEN, out);
}

/*
 * The chain hash of a batch: HMAC-SHA256 under the sealing subkey of its
 * key version, over "TGSEAL1", batch, first position, rows (8 bytes each),
 * purged_through (8), key version (4), layout (8), sealed_at (8, microseconds since
 * 2000-01-01 UTC), root,
 * previous chain hash, then the snapshot's length (4) and text.
 */
void
tg_seal_chain_hash(const TgSealBatch *b, const uint8 *seal_key, uint8 *out)
{
	StringInfoData buf;
	size_t		outlen = 0;
	bool		ok;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, "TGSEAL1", 7);
	append_be(&buf, (uint64) b->batch, 8);
	append_be(&buf, (uint64) b->first_position, 8);
	append_be(&buf, (uint64) b->row_count, 8);
	append_be(&buf, (uint64) b->purged_through, 8);
	append_be(&buf, (uint32) b->key_version, 4);
	appendBinaryStringInfo(&buf, (const char *) b->layout, TG_LAYOUT_LEN);
	append_be(&buf, (uint64) b->sealed_at, 8);
	appendBinaryStringInfo(&buf, (const char *) b->root, TG_HASH_LEN);
	appendBinaryStringInfo(&buf, (const char *) b->prev_chain, TG_HASH_LEN);
	append_be(&buf, strlen(b->snapshot), 4);
	appendStringInfoString(&buf, b->snapshot);
	ok = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, seal_key, TG_KEY_LEN,
				   (const unsigned char *) buf.data, buf.len,
				   out, TG_HASH_LEN, &outlen) != NULL && outlen == TG_HASH_LEN;
	pfree(buf.data);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute HMAC-SHA256")));
}

/* sealed_at as ISO 8601 in UTC, with microseconds */
static char *
iso_utc(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "timestamp out of range");
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
					tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

/*
 * The text a batch's signature is over (one line, no newline): what an
 * auditor keeps and checks with openssl.
 */
char *
tg_seal_digest_message(const TgSealBatch *b)
{
	return psprintf("trading_guard audit digest v1 batch=" INT64_FORMAT
					" position=" INT64_FORMAT " sealed_at=%s key_version=%d"
					" layout=%s root=%s chain=%s",
					b->batch, b->first_position + b->row_count - 1,
					iso_utc(b->sealed_at), b->key_version,
					tg_hex(b->layout, TG_LAYOUT_LEN),
					tg_hex(b->root, TG_HASH_LEN), tg_hex(b->chain, TG_HASH_LEN));
}

/*
 * The Ed25519 key pair of key version key_version: its private key is
 * HMAC-SHA256(sealing subkey, "trading_guard/v1/digest-signing-key").
 * Writes the public key into pub[32] and, if msg is not NULL, the
 * signature of msg into sig_out[64].  False if the version is not in the
 * ring (the caller has checked that a ring is loaded).  No key material
 * outlives the call; nothing is left allocated on any path.
 */
bool
tg_seal_signing_key(int32 key_version, uint8 *pub, uint8 *sig_out,
					const char *msg, int msglen)
{
	TgKeyVersion *kv = tg_seal_key_scratch();
	static uint8 *seed = NULL;
	static const char info[] = "trading_guard/v1/digest-signing-key";
	EVP_PKEY   *pkey = NULL;
	EVP_MD_CTX *sctx = NULL;
	size_t		len;
	bool		ok;

	if (seed == NULL)
		seed = tg_secure_alloc(TG_KEY_LEN);
	if (!tg_keyring_get((uint32) key_version, kv))
		return false;
	len = 0;
	ok = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL,
				   kv->subkeys[TG_KEY_SEALING], TG_KEY_LEN,
				   (const unsigned char *) info, sizeof(info) - 1,
				   seed, TG_KEY_LEN, &len) != NULL && len == TG_KEY_LEN;
	OPENSSL_cleanse(kv, sizeof(TgKeyVersion));
	if (ok)
		ok = (pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, TG_KEY_LEN)) != NULL;
	OPENSSL_cleanse(seed, TG_KEY_LEN);
	len = TG_HASH_LEN;
	if (ok)
		ok = EVP_PKEY_get_raw_public_key(pkey, pub, &len) == 1 && len == TG_HASH_LEN;
	if (ok && msg != NULL)
	{
		len = TG_SIG_LEN;
		ok = (sctx = EVP_MD_CTX_new()) != NULL &&
			EVP_DigestSignInit(sctx, NULL, NULL, NULL, pkey) == 1 &&
			EVP_DigestSign(sctx, sig_out, &len, (const unsigned char *) msg, msglen) == 1 &&
			len == TG_SIG_LEN;
	}
	EVP_MD_CTX_free(sctx);
	EVP_PKEY_free(pkey);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not make the Ed25519 signature of the audit digest")));
	return true;
}

/* The PEM text (SubjectPublicKeyInfo) of an Ed25519 public key */
char *
tg_seal_public_key_pem(const uint8 *pub)
{
	EVP_PKEY   *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, TG_HASH_LEN);
	BIO		   *bio = pkey ? BIO_new(BIO_s_mem()) : NULL;
	char	   *data;
	long		len;
	char	   *res = NULL;

	if (bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1)
	{
		len = BIO_get_mem_data(bio, &data);
		res = pnstrdup(data, len);
	}
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	if (res == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not write the public key of the audit digest")));
	return res;
}

/* ------------------------------------------------------------------------
 * Snapshots and batches
 * ------------------------------------------------------------------------
 */

/* Parse pg_snapshot text "xmin:xmax:xip1,xip2,..." */
void
tg_seal_parse_snapshot(const char *text, TgFullSnapshot *s)
{
	const char *p = text;
	char	   *end;
	int			cap = 8;

	s->xmin = strtou64(p, &end, 10);
	if (*end != ':')
		elog(ERROR, "invalid snapshot \"%s\" in audit_seal", text);
	s->xmax = strtou64(end + 1, &end, 10);
	if (*end != ':')
		elog(ERROR, "invalid snapshot \"%s\" in audit_seal", text);
	p = end + 1;
	s->nxip = 0;
	s->xip = palloc(sizeof(uint64) * cap);
	while (*p != '\0')
	{
		if (s->nxip == cap)
		{
			cap *= 2;
			s->xip = repalloc(s->xip, sizeof(uint64) * cap);
		}
		s->xip[s->nxip++] = strtou64(p, &end, 10);
		if (end == p || (*end != ',' && *end != '\0'))
			elog(ERROR, "invalid snapshot \"%s\" in audit_seal", text);
		p = *end == ',' ? end + 1 : end;
	}
}

/* Is the transaction xid seen as completed by snapshot s? */
bool
tg_seal_xid_visible(const TgFullSnapshot *s, uint64 xid)
{
	if (xid < s->xmin)
		return true;
	if (xid >= s->xmax)
		return false;
	for (int i = 0; i < s->nxip; i++)
		if (s->xip[i] == xid)
			return false;
	return true;
}

Oid
tg_audit_seal_oid(void)
{
	Oid			nsp = get_namespace_oid("trading_guard", true);
	Oid			oid = OidIsValid(nsp) ? get_relname_relid("audit_seal", nsp) : InvalidOid;

	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("trading_guard.audit_seal does not exist"),
				 errhint("Run ALTER EXTENSION trading_guard UPDATE to install the sealing of the audit trail.")));
	return oid;
}

/* Parse int8multirange text "{[1,5),[7,9)}" into b's ranges */
static void
parse_ranges(const char *text, TgSealBatch *b)
{
	const char *p = text;
	int			cap = 4;

	b->nranges = 0;
	b->range_lo = palloc(sizeof(int64) * cap);
	b->range_hi = palloc(sizeof(int64) * cap);
	while ((p = strchr(p, '[')) != NULL)
	{
		char	   *end;

		if (b->nranges == cap)
		{
			cap *= 2;
			b->range_lo = repalloc(b->range_lo, sizeof(int64) * cap);
			b->range_hi = repalloc(b->range_hi, sizeof(int64) * cap);
		}
		b->range_lo[b->nranges] = strtoi64(p + 1, &end, 10);
		if (*end != ',')
			elog(ERROR, "invalid ids \"%s\" in audit_seal", text);
		b->range_hi[b->nranges] = strtoi64(end + 1, &end, 10);
		if (*end != ')')
			elog(ERROR, "invalid ids \"%s\" in audit_seal", text);
		b->nranges++;
		p = end;
	}
}

static void
copy_hash(HeapTuple tup, TupleDesc desc, int col, uint8 *out, int len)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	bytea	   *v;

	memset(out, 0, len);
	if (isnull)
		return;
	v = DatumGetByteaPP(d);
	memcpy(out, VARDATA_ANY(v), Min((Size) len, VARSIZE_ANY_EXHDR(v)));
}

/*
 * Load the batches of audit_seal in batch order (only the newest one with
 * last_only, only batch only_batch if > 0) with the active snapshot.  The
 * caller is connected to SPI; the results are allocated in the context
 * that was current at SPI_connect (they outlive SPI_finish).
 */
static int	load_batches(TgSealBatch **out, const char *sql, int64 arg);

int
tg_seal_load_batches(TgSealBatch **out, bool last_only, int64 only_batch)
{
	return load_batches(out, last_only ?
			   "SELECT batch, sealed_at, key_version, first_position, row_count,"
			   "       snapshot::pg_catalog.text, ids::pg_catalog.text, leaf_tags,"
			   "       merkle_root, prev_hash, chain_hash, signature, system_identifier, purged_through, layout"
			   "  FROM trading_guard.audit_seal"
			   " WHERE $1 OPERATOR(pg_catalog.=) 0"
			   " ORDER BY batch DESC LIMIT 1" :
			   "SELECT batch, sealed_at, key_version, first_position, row_count,"
			   "       snapshot::pg_catalog.text, ids::pg_catalog.text, leaf_tags,"
			   "       merkle_root, prev_hash, chain_hash, signature, system_identifier, purged_through, layout"
			   "  FROM trading_guard.audit_seal"
			   " WHERE $1 OPERATOR(pg_catalog.=) 0 OR batch OPERATOR(pg_catalog.=) $1"
			   " ORDER BY batch",
			   only_batch);
}

/* The batches from batch number from on, in batch order */
int
tg_seal_load_batches_from(TgSealBatch **out, int64 from)
{
	return load_batches(out,
						"SELECT batch, sealed_at, key_version, first_position, row_count,"
						"       snapshot::pg_catalog.text, ids::pg_catalog.text, leaf_tags,"
						"       merkle_root, prev_hash, chain_hash, signature, system_identifier, purged_through, layout"
						"  FROM trading_guard.audit_seal"
						" WHERE batch OPERATOR(pg_catalog.>=) $1"
						" ORDER BY batch",
						from);
}

static int
load_batches(TgSealBatch **out, const char *sql, int64 arg)
{
	TgSqlArgs	args = {0};
	uint64		n;
	TgSealBatch *b;
	MemoryContext upper;
	MemoryContext old;

	tg_sql_arg(&args, INT8OID, Int64GetDatum(arg));
	n = tg_sql(sql, &args, TG_SQL_READ_ONLY | TG_SQL_AS_OWNER, SPI_OK_SELECT);

	b = SPI_palloc(sizeof(TgSealBatch) * Max(n, 1));
	upper = GetMemoryChunkContext(b);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *snapshot = SPI_getvalue(tup, desc, 6);
		char	   *ids = SPI_getvalue(tup, desc, 7);
		bytea	   *tags = DatumGetByteaPP(SPI_getbinval(tup, desc, 8, &isnull));

		b[i].batch = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		b[i].sealed_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
		b[i].key_version = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		b[i].first_position = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		b[i].row_count = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		copy_hash(tup, desc, 9, b[i].root, TG_HASH_LEN);
		copy_hash(tup, desc, 10, b[i].prev_chain, TG_HASH_LEN);
		copy_hash(tup, desc, 11, b[i].chain, TG_HASH_LEN);
		copy_hash(tup, desc, 12, b[i].signature, TG_SIG_LEN);
		b[i].system_id = DatumGetInt64(SPI_getbinval(tup, desc, 13, &isnull));
		b[i].purged_through = DatumGetInt64(SPI_getbinval(tup, desc, 14, &isnull));
		copy_hash(tup, desc, 15, b[i].layout, TG_LAYOUT_LEN);

		old = MemoryContextSwitchTo(upper);
		b[i].snapshot = pstrdup(snapshot);
		parse_ranges(ids, &b[i]);
		b[i].leaf_tags = (bytea *) palloc_extended(VARSIZE_ANY_EXHDR(tags) + VARHDRSZ,
												   MCXT_ALLOC_HUGE);
		SET_VARSIZE(b[i].leaf_tags, VARSIZE_ANY_EXHDR(tags) + VARHDRSZ);
		memcpy(VARDATA(b[i].leaf_tags), VARDATA_ANY(tags), VARSIZE_ANY_EXHDR(tags));
		MemoryContextSwitchTo(old);
	}
	*out = b;
	return (int) n;
}

/* Is id in one of the (sorted, disjoint) ranges [lo[i], hi[i])? */
bool
tg_seal_id_in_ranges(int64 id, const int64 *lo, const int64 *hi, int n)
{
	int			l = 0;
	int			h = n - 1;

	while (l <= h)
	{
		int			m = (l + h) / 2;

		if (id < lo[m])
			h = m - 1;
		else if (id >= hi[m])
			l = m + 1;
		else
			return true;
	}
	return false;
}

static int
id_range_cmp(const void *a, const void *b)
{
	int64		x = ((const int64 *) a)[0];
	int64		y = ((const int64 *) b)[0];

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The ids of batches b[from..to), as sorted, disjoint ranges [lo, hi)
 * (*lo, *hi, palloc'd; returns how many), for tg_seal_id_in_ranges().
 */
int
tg_seal_sorted_ranges(const TgSealBatch *b, int from, int to, int64 **lo, int64 **hi)
{
	int			n = 0;
	int64	   *pairs;

	for (int i = from; i < to; i++)
		n += b[i].nranges;
	pairs = palloc_extended(sizeof(int64) * 2 * Max(n, 1), MCXT_ALLOC_HUGE);
	n = 0;
	for (int i = from; i < to; i++)
		for (int r = 0; r < b[i].nranges; r++)
		{
			pairs[2 * n] = b[i].range_lo[r];
			pairs[2 * n + 1] = b[i].range_hi[r];
			n++;
		}
	qsort(pairs, n, 2 * sizeof(int64), id_range_cmp);
	*lo = palloc_extended(sizeof(int64) * Max(n, 1), MCXT_ALLOC_HUGE);
	*hi = palloc_extended(sizeof(int64) * Max(n, 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < n; i++)
	{
		(*lo)[i] = pairs[2 * i];
		(*hi)[i] = pairs[2 * i + 1];
	}
	pfree(pairs);
	return n;
}

/*
 * The sealed ids of every batch, as sorted ranges: for a log sealed in
 * another cluster (restored from a dump), whose batches' snapshots mean
 * nothing to this cluster's transaction ids.
 */
static int
all_sealed_ranges(int64 **lo, int64 **hi)
{
	TgSealBatch *all;
	int			nall = tg_seal_load_batches(&all, false, 0);

	return tg_seal_sorted_ranges(all, 0, nall, lo, hi);
}

/* Was batch b sealed by this cluster (so its snapshot speaks of our xids)? */
bool
tg_seal_batch_is_local(const TgSealBatch *b)
{
	return b->system_id == (int64) GetSystemIdentifier();
}

/* ------------------------------------------------------------------------
 * Finding the rows after a snapshot
 * ------------------------------------------------------------------------
 */

/* attribute number (1-based) of an audit_log column, by name */
AttrNumber
tg_seal_attnum(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped &&
			strcmp(NameStr(TupleDescAttr(desc, i)->attname), name) == 0)
			return i + 1;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("trading_guard.audit_log has no column \"%s\"", name),
			 errhint("Run ALTER EXTENSION trading_guard UPDATE.")));
	return InvalidAttrNumber;	/* keep the compiler quiet */
}

static Oid
txid_index_oid(void)
{
	Oid			nsp = get_namespace_oid("trading_guard", false);
	Oid			oid = get_relname_relid("audit_log_time_idx", nsp);

	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index trading_guard.audit_log_time_idx does not exist"),
				 errhint("Run ALTER EXTENSION trading_guard UPDATE.")));
	return oid;
}

/*
 * Summarize the complete block ranges of the BRIN index on (event_time,
 * txid) that have no summary yet (autovacuum does it only every
 * autovacuum_naptime): an unsummarized range is returned by every search,
 * so without this each round would read everything written since
 * autovacuum last came by.  Not the last, partial range: once summarized,
 * every transaction that adds a row to it would have to widen its summary
 * (a page update and a WAL record per audited transaction), while as it is
 * a writer's BRIN insert there finds no summary and returns.
 *
 * Ranges are summarized in block order; summarized_upto remembers where
 * this process got to (from 0 after a start: a summarized range costs only
 * a look in the revmap).  Only if SHARE UPDATE EXCLUSIVE on audit_log is
 * free at once (a VACUUM or a purge may hold it for long: this round then
 * reads a little more), and as the owner of the index, which
 * brin_summarize_range() requires.
 */
void
tg_seal_summarize_new_ranges(void)
{
	static BlockNumber summarized_upto = 0;
	static Oid	upto_relid = InvalidOid;
	Oid			logoid = tg_audit_log_oid();
	Oid			nsp = get_namespace_oid("trading_guard", false);
	Oid			idxoid = get_relname_relid("audit_log_time_idx", nsp);
	Relation	rel;
	Relation	idx;
	BlockNumber nblocks;
	BlockNumber ppr;
	BlockNumber complete;
	TgSqlArgs	args = {0};

	if (!OidIsValid(idxoid) ||
		!ConditionalLockRelationOid(logoid, ShareUpdateExclusiveLock))
		return;
	if (upto_relid != logoid)
	{
		summarized_upto = 0;
		upto_relid = logoid;
	}
	rel = table_open(logoid, NoLock);
	idx = index_open(idxoid, AccessShareLock);
	nblocks = RelationGetNumberOfBlocks(rel);
	ppr = BrinGetPagesPerRange(idx);
	index_close(idx, AccessShareLock);
	table_close(rel, NoLock);
	complete = (nblocks / ppr) * ppr;
	if (summarized_upto > complete)
		summarized_upto = 0;	/* the table was truncated: start again */
	if (summarized_upto >= complete)
		return;

	tg_sql_arg(&args, INT8OID, Int64GetDatum((int64) summarized_upto));
	tg_sql_arg(&args, INT8OID, Int64GetDatum((int64) complete - 1));
	tg_sql_arg(&args, INT8OID, Int64GetDatum((int64) ppr));
	(void) tg_sql("SELECT pg_catalog.sum(pg_catalog.brin_summarize_range("
				  "          'trading_guard.audit_log_time_idx'::pg_catalog.regclass, b))"
				  "  FROM pg_catalog.generate_series($1, $2, $3) b",
				  &args, TG_SQL_AS_OWNER, SPI_OK_SELECT);
	summarized_upto = complete;
}

/*
 * Call cb for every row of audit_log visible in snap whose transaction was
 * not yet visible in prev (NULL: every row): txid >= prev->xmax, or txid in
 * prev->xip.  Found through the BRIN index on txid, so the cost follows the
 * rows written since prev was taken, plus one probe per transaction that
 * was in progress then.  The caller holds a lock on rel.
 */
void
tg_seal_scan_after(Relation rel, Snapshot snap, const TgFullSnapshot *prev,
				   tg_seal_row_cb cb, void *arg)
{
	Relation	irel = index_open(txid_index_oid(), AccessShareLock);
	TIDBitmap  *tbm = tbm_create(work_mem * 1024L, NULL);
	IndexScanDesc iscan;
	ScanKeyData key;
	TableScanDesc scan;
	TBMIterator *it;
	TBMIterateResult *tbmres;
	TupleTableSlot *slot;
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	txid_att = InvalidAttrNumber;
	MemoryContext row_cxt;
	MemoryContext old;

	txid_att = tg_seal_attnum(desc, "txid");

	iscan = index_beginscan_bitmap(irel, snap, 1);
	/* txid is the second column of the BRIN index (event_time, txid) */
	ScanKeyEntryInitialize(&key, 0, 2, BTGreaterEqualStrategyNumber, XID8OID,
						   InvalidOid, F_XID8GE,
						   FullTransactionIdGetDatum(FullTransactionIdFromU64(prev ? prev->xmax : 0)));
	index_rescan(iscan, &key, 1, NULL, 0);
	(void) index_getbitmap(iscan, tbm);
	for (int i = 0; prev != NULL && i < prev->nxip; i++)
	{
		ScanKeyEntryInitialize(&key, 0, 2, BTEqualStrategyNumber, XID8OID,
							   InvalidOid, F_XID8EQ,
							   FullTransactionIdGetDatum(FullTransactionIdFromU64(prev->xip[i])));
		index_rescan(iscan, &key, 1, NULL, 0);
		(void) index_getbitmap(iscan, tbm);
	}
	index_endscan(iscan);
	index_close(irel, AccessShareLock);

	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "trading_guard seal row",
									ALLOCSET_DEFAULT_SIZES);
	scan = table_beginscan_bm(rel, snap, 0, NULL);
	slot = table_slot_create(rel, NULL);
	it = tbm_begin_iterate(tbm);
	while ((tbmres = tbm_iterate(it)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		if (!table_scan_bitmap_next_block(scan, tbmres))
			continue;
		while (table_scan_bitmap_next_tuple(scan, tbmres, slot))
		{
			uint64		txid;

			slot_getallattrs(slot);
			if (slot->tts_isnull[txid_att - 1])
				continue;
			txid = U64FromFullTransactionId(DatumGetFullTransactionId(slot->tts_values[txid_att - 1]));
			if (prev != NULL && tg_seal_xid_visible(prev, txid))
				continue;		/* sealed before (a lossy page's other rows) */
			old = MemoryContextSwitchTo(row_cxt);
			cb(arg, desc, slot->tts_values, slot->tts_isnull, &slot->tts_tid);
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
		}
	}
	tbm_end_iterate(it);
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	tbm_free(tbm);
	MemoryContextDelete(row_cxt);
}

/* ------------------------------------------------------------------------
 * Sealing
 * ------------------------------------------------------------------------
 */

typedef struct SealCollect
{
	TgFullSnapshot *cur;
	uint64		own_xid;		/* 0: none */
	StringInfoData buf;
	TgSealLeaf *leaves;
	int64		n;
	int64		cap;
	TimestampTz max_time;
	MemoryContext cxt;
	int			nexcl;			/* ids sealed in another cluster */
	int64	   *excl_lo;
	int64	   *excl_hi;
	TgKeyEntry *keys;			/* for the key index */
	int64		nkeys;
	int64		keycap;
} SealCollect;

static void
seal_collect_row(void *arg, TupleDesc desc, Datum *values, bool *nulls, ItemPointer tid)
{
	SealCollect *c = (SealCollect *) arg;
	uint64		txid;
	TgSealLeaf *leaf;
	int			id_att = tg_seal_attnum(desc, "id") - 1;
	int			time_att = tg_seal_attnum(desc, "event_time") - 1;
	int			hash_att = tg_seal_attnum(desc, "key_hash") - 1;

	txid = U64FromFullTransactionId(DatumGetFullTransactionId(values[tg_seal_attnum(desc, "txid") - 1]));

	/* committed after our snapshot, or ours (not committed yet) */
	if (!tg_seal_xid_visible(c->cur, txid) || txid == c->own_xid)
		return;
	if (c->nexcl > 0 && tg_seal_id_in_ranges(DatumGetInt64(values[id_att]), c->excl_lo, c->excl_hi, c->nexcl))
		return;					/* sealed before the restore */
	if (c->n == c->cap)
	{
		c->cap *= 2;
		c->leaves = repalloc_huge(c->leaves, sizeof(TgSealLeaf) * c->cap);
	}
	leaf = &c->leaves[c->n++];
	leaf->id = nulls[id_att] ? 0 : DatumGetInt64(values[id_att]);
	tg_seal_canonical(&c->buf, desc, values, nulls);
	tg_seal_leaf_hash(c->buf.data, c->buf.len, leaf->hash);
	if (!nulls[time_att] && DatumGetTimestampTz(values[time_att]) > c->max_time)
		c->max_time = DatumGetTimestampTz(values[time_att]);
	if (!nulls[hash_att] && !nulls[id_att])
	{
		if (c->nkeys == c->keycap)
		{
			c->keycap *= 2;
			c->keys = repalloc_huge(c->keys, sizeof(TgKeyEntry) * c->keycap);
		}
		c->keys[c->nkeys].key_hash = DatumGetInt64(values[hash_att]);
		c->keys[c->nkeys].id = DatumGetInt64(values[id_att]);
		c->keys[c->nkeys].tid = *tid;
		c->nkeys++;
	}
}

static int
leaf_cmp(const void *a, const void *b)
{
	const TgSealLeaf *x = a;
	const TgSealLeaf *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return memcmp(x->hash, y->hash, TG_HASH_LEN);
}

/* snapshot text of s, with xid added to its in-progress list (0: none) */
static char *
snapshot_text(const TgFullSnapshot *s, uint64 extra)
{
	StringInfoData buf;
	bool		first = true;
	bool		added = (extra == 0 || extra >= s->xmax);

	initStringInfo(&buf);
	appendStringInfo(&buf, UINT64_FORMAT ":" UINT64_FORMAT ":",
					 Min(s->xmin, extra == 0 ? s->xmin : extra), s->xmax);
	for (int i = 0; i <= s->nxip; i++)
	{
		if (!added && (i == s->nxip || s->xip[i] > extra))
		{
			appendStringInfo(&buf, "%s" UINT64_FORMAT, first ? "" : ",", extra);
			first = false;
			added = true;
		}
		if (i < s->nxip && s->xip[i] != extra)
		{
			appendStringInfo(&buf, "%s" UINT64_FORMAT, first ? "" : ",", s->xip[i]);
			first = false;
		}
	}
	return buf.data;
}

/* ids, sorted, as int8multirange text */
static char *
ranges_text(const TgSealLeaf *leaves, int64 n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int64 i = 0; i < n;)
	{
		int64		j = i;

		while (j + 1 < n && leaves[j + 1].id == leaves[j].id + 1)
			j++;
		appendStringInfo(&buf, "%s[" INT64_FORMAT "," INT64_FORMAT ")",
						 i == 0 ? "" : ",", leaves[i].id, leaves[j].id + 1);
		i = j + 1;
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static bytea *
bytea_of(const void *data, Size len)
{
	bytea	   *b = palloc(len + VARHDRSZ);

	SET_VARSIZE(b, len + VARHDRSZ);
	memcpy(VARDATA(b), data, len);
	return b;
}

/*
 * Chain, sign and insert batch b (all but its key version, chain hash and
 * signature filled in) with the newest key version.  The caller holds the
 * sealing lock and is connected to SPI.
 */
static void
insert_batch(TgSealBatch *b, const char *ranges, bytea *tags, TimestampTz max_time)
{
	TgKeyVersion *kv = tg_seal_key_scratch();
	TgSqlArgs	args = {0};
	uint8		pub[TG_HASH_LEN];
	char	   *msg;

	if (!tg_keyring_get(0, kv))
		elog(ERROR, "the key ring has no key version");
	b->key_version = (int32) kv->version;
	tg_seal_chain_hash(b, kv->subkeys[TG_KEY_SEALING], b->chain);
	OPENSSL_cleanse(kv, sizeof(TgKeyVersion));
	msg = tg_seal_digest_message(b);
	(void) tg_seal_signing_key(b->key_version, pub, b->signature, msg, strlen(msg));

	tg_sql_arg(&args, INT8OID, Int64GetDatum(b->batch));
	tg_sql_arg(&args, TIMESTAMPTZOID, TimestampTzGetDatum(b->sealed_at));
	tg_sql_arg(&args, INT4OID, Int32GetDatum(b->key_version));
	tg_sql_arg(&args, INT8OID, Int64GetDatum(b->first_position));
	tg_sql_arg(&args, INT8OID, Int64GetDatum(b->row_count));
	tg_sql_arg_text(&args, b->snapshot);
	tg_sql_arg_text(&args, ranges);
	tg_sql_arg(&args, BYTEAOID, PointerGetDatum(tags));
	tg_sql_arg(&args, BYTEAOID, PointerGetDatum(bytea_of(b->root, TG_HASH_LEN)));
	tg_sql_arg(&args, BYTEAOID, PointerGetDatum(bytea_of(b->prev_chain, TG_HASH_LEN)));
	tg_sql_arg(&args, BYTEAOID, PointerGetDatum(bytea_of(b->chain, TG_HASH_LEN)));
	tg_sql_arg(&args, BYTEAOID, PointerGetDatum(bytea_of(b->signature, TG_SIG_LEN)));
	tg_sql_arg(&args, TIMESTAMPTZOID, TimestampTzGetDatum(max_time));
	tg_sql_arg(&args, INT8OID, Int64GetDatum(b->system_id));
	tg_sql_arg(&args, INT8OID, Int64GetDatum(b->purged_through));
	tg_sql_arg(&args, BYTEAOID, PointerGetDatum(bytea_of(b->layout, TG_LAYOUT_LEN)));
	(void) tg_sql("INSERT INTO trading_guard.audit_seal"
				  " (batch, sealed_at, key_version, first_position, row_count,"
				  "  snapshot, ids, leaf_tags, merkle_root, prev_hash, chain_hash,"
				  "  signature, max_event_time, system_identifier, purged_through, layout)"
				  " VALUES ($1, $2, $3, $4, $5, $6::pg_catalog.pg_snapshot,"
				  "  $7::pg_catalog.int8multirange, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
				  &args, TG_SQL_AS_OWNER, SPI_OK_INSERT);
}

/*
 * Seal every committed row not sealed yet, as one new batch.  Returns how
 * many rows, or -1 if another sealer holds the lock and !wait.  The caller
 * has checked that a key ring is loaded and is in a transaction on the
 * primary.
 */
static int64
tg_seal_run(bool wait)
{
	Oid			seal_oid = tg_audit_seal_oid();
	Oid			log_oid = tg_audit_log_oid();
	Relation	rel;
	Snapshot	snap;
	TgSealBatch *last = NULL;
	TgSealBatch b;
	TgFullSnapshot prev;
	TgFullSnapshot cur;
	SealCollect c;
	int			nlast;
	int64		result;
	bool		foreign;
	uint8		layout[TG_LAYOUT_LEN];

	if (!OidIsValid(log_oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("trading_guard.audit_log does not exist")));
	if (wait)
		LockRelationOid(seal_oid, ShareRowExclusiveLock);
	else if (!ConditionalLockRelationOid(seal_oid, ShareRowExclusiveLock))
		return -1;

	snap = RegisterSnapshot(GetLatestSnapshot());
	PushActiveSnapshot(snap);

	tg_sql_connect();
	nlast = tg_seal_load_batches(&last, true, 0);
	if (nlast > 0)
		tg_seal_parse_snapshot(last->snapshot, &prev);
	foreign = nlast > 0 && !tg_seal_batch_is_local(last);

	/* the snapshot, in full xids, as pg_current_snapshot() gives it */
	tg_seal_parse_snapshot(DatumGetCString(DirectFunctionCall1(pg_snapshot_out,
															   DirectFunctionCall1(pg_current_snapshot, (Datum) 0))),
						   &cur);

	memset(&c, 0, sizeof(c));
	c.cur = &cur;
	c.own_xid = FullTransactionIdIsValid(GetTopFullTransactionIdIfAny()) ?
		U64FromFullTransactionId(GetTopFullTransactionIdIfAny()) : 0;
	initStringInfo(&c.buf);
	c.cap = 1024;
	c.leaves = palloc_extended(sizeof(TgSealLeaf) * c.cap, MCXT_ALLOC_HUGE);
	c.max_time = DT_NOBEGIN;
	c.keycap = 1024;
	c.keys = palloc_extended(sizeof(TgKeyEntry) * c.keycap, MCXT_ALLOC_HUGE);
	if (foreign)
		c.nexcl = all_sealed_ranges(&c.excl_lo, &c.excl_hi);

	tg_seal_summarize_new_ranges();
	rel = table_open(log_oid, AccessShareLock);
	tg_seal_layout(RelationGetDescr(rel), layout);
	tg_seal_scan_after(rel, snap, (nlast > 0 && !foreign) ? &prev : NULL, seal_collect_row, &c);
	table_close(rel, AccessShareLock);

	/*
	 * Nothing to seal: no batch.  Except for the first sealing in this
	 * cluster of a log sealed elsewhere: an empty batch then anchors the
	 * chain to this cluster's transaction ids, so that the next rounds need
	 * not look at the whole log again.
	 */
	result = c.n;
	if (c.n > 0 || foreign)
	{
		uint8	   *tags;

		qsort(c.leaves, c.n, sizeof(TgSealLeaf), leaf_cmp);
		memset(&b, 0, sizeof(b));
		b.batch = nlast > 0 ? last->batch + 1 : 1;
		b.first_position = nlast > 0 ? last->first_position + last->row_count : 1;
		b.row_count = c.n;
		b.sealed_at = GetCurrentTimestamp();
		b.snapshot = snapshot_text(&cur, c.own_xid);
		b.system_id = (int64) GetSystemIdentifier();
		memcpy(b.layout, layout, TG_LAYOUT_LEN);
		b.purged_through = nlast > 0 ? last->purged_through : 0;
		if (nlast > 0)
			memcpy(b.prev_chain, last->chain, TG_HASH_LEN);
		tg_seal_merkle_root(c.leaves, c.n, b.root);
		tags = palloc_extended(TG_TAG_LEN * c.n, MCXT_ALLOC_HUGE);
		for (int64 i = 0; i < c.n; i++)
			memcpy(tags + i * TG_TAG_LEN, c.leaves[i].hash, TG_TAG_LEN);

		insert_batch(&b, ranges_text(c.leaves, c.n), bytea_of(tags, TG_TAG_LEN * c.n),
					 c.n > 0 ? c.max_time : b.sealed_at);
		/*
		 * The batch's keys, collected on the way, when the index is current
		 * and the batch is small: a big one (a COPY) is indexed by
		 * tg_seal_index_keys() in a transaction of its own, so that the
		 * seal is not held up by the key index's B-tree.
		 */
		if (!foreign && c.nkeys <= TG_SEAL_KEYS_INLINE)
			tg_seal_index_batch(nlast > 0 ? last->batch : 0, b.batch, c.keys, c.nkeys);
	}
	tg_sql_finish();
	PopActiveSnapshot();
	UnregisterSnapshot(snap);
	return result;
}

/*
 * SQL: seal_audit() returns bigint
 * Seal every committed audit row not sealed yet; how many rows.  Waits for
 * a sealer that is running.  Rows of the caller's own transaction are
 * sealed after it commits.
 */
PG_FUNCTION_INFO_V1(tg_seal_audit);
Datum
tg_seal_audit(PG_FUNCTION_ARGS)
{
	int64		n;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot seal the audit log on a standby"),
				 errhint("The primary seals; its seals replicate here.")));
	tg_keyring_require();
	n = tg_seal_run(true);
	(void) tg_seal_index_keys(true);
	PG_RETURN_INT64(n);
}

/* ------------------------------------------------------------------------
 * Purge
 * ------------------------------------------------------------------------
 */

/*
 * SQL: purge_audit(older_than interval) returns bigint
 *
 * Removes the rows of whole sealed batches whose rows are all older than
 * now() - older_than, oldest batches first, seals the cut into the chain
 * (a batch of no rows whose purged_through names the last batch removed:
 * how verify_audit() tells purged rows from removed ones), and records the
 * purge with the chain state at the cut (cut_batch, cut_position,
 * cut_chain).  Unsealed rows are
 * never removed (nor the sealed rows of a batch that has a newer row, nor
 * any batch after it).  One purge or sealer at a time (SHARE ROW EXCLUSIVE
 * on audit_seal); writers go on.
 */
PG_FUNCTION_INFO_V1(tg_purge_audit_sealed);
Datum
tg_purge_audit_sealed(PG_FUNCTION_ARGS)
{
	Interval   *older_than = PG_GETARG_INTERVAL_P(0);
	Interval	zero;
	TimestampTz cutoff;
	Oid			logoid = tg_audit_log_oid();
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	int64		removed = 0;
	TgSealBatch *batches = NULL;
	int			nbatches;
	int			cut = -1;
	int			nranges = 0;
	int64	   *lo;
	int64	   *hi;
	int			id_att;
	StringInfoData detail;

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

	/* the cut is sealed into the chain: that needs the key ring */
	tg_keyring_require();
	LockRelationOid(tg_audit_seal_oid(), ShareRowExclusiveLock);
	PushActiveSnapshot(GetLatestSnapshot());
	tg_sql_connect();
	nbatches = tg_seal_load_batches(&batches, false, 0);
	/* the batches' newest row times */
	{
		uint64		n = tg_sql("SELECT batch, max_event_time FROM trading_guard.audit_seal"
							   " ORDER BY batch", NULL,
							   TG_SQL_READ_ONLY | TG_SQL_AS_OWNER, SPI_OK_SELECT);

		for (uint64 i = 0; i < n && (int) i < nbatches; i++)
		{
			bool		isnull;
			Datum		t = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

			if (isnull || DatumGetTimestampTz(t) >= cutoff)
				break;
			cut = (int) i;
		}
	}
	tg_sql_finish();
	PopActiveSnapshot();

	nranges = tg_seal_sorted_ranges(batches, 0, cut + 1, &lo, &hi);

	if (nranges > 0)
	{
		rel = table_open(logoid, ShareUpdateExclusiveLock);
		id_att = tg_seal_attnum(RelationGetDescr(rel), "id");
		scan = table_beginscan(rel, GetTransactionSnapshot(), 0, NULL);
		while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;
			Datum		id = heap_getattr(tuple, id_att, RelationGetDescr(rel), &isnull);

			CHECK_FOR_INTERRUPTS();
			if (!isnull && tg_seal_id_in_ranges(DatumGetInt64(id), lo, hi, nranges))
			{
				simple_heap_delete(rel, &tuple->t_self);
				removed++;
			}
		}
		table_endscan(scan);
		table_close(rel, NoLock);
		CommandCounterIncrement();

		/* the key index's entries of the rows removed */
		PushActiveSnapshot(GetLatestSnapshot());
		tg_sql_connect();
		(void) tg_sql("DELETE FROM trading_guard.audit_key_index k"
					  " WHERE NOT EXISTS (SELECT 1 FROM trading_guard.audit_log l"
					  "                    WHERE l.ctid OPERATOR(pg_catalog.=) k.tid"
					  "                      AND l.id OPERATOR(pg_catalog.=) k.id)",
					  NULL, TG_SQL_AS_OWNER, SPI_OK_DELETE);
		tg_sql_finish();
		PopActiveSnapshot();
	}

	/*
	 * The cut goes into the chain: a batch of no rows, with the snapshot of
	 * the one before (it changes nothing of what is sealed) and the new
	 * purged_through, chained and signed in this transaction.  That is what
	 * verify_audit() trusts, not the PURGE row (which anyone who can insert
	 * into audit_log could forge).
	 */
	if (cut >= 0 && batches[cut].batch > batches[nbatches - 1].purged_through)
	{
		TgSealBatch *last = &batches[nbatches - 1];
		TgSealBatch b;

		memset(&b, 0, sizeof(b));
		b.batch = last->batch + 1;
		b.first_position = last->first_position + last->row_count;
		b.row_count = 0;
		b.sealed_at = GetCurrentTimestamp();
		b.snapshot = last->snapshot;
		b.system_id = last->system_id;
		memcpy(b.layout, last->layout, TG_LAYOUT_LEN);
		b.purged_through = batches[cut].batch;
		memcpy(b.prev_chain, last->chain, TG_HASH_LEN);
		tg_seal_merkle_root(NULL, 0, b.root);
		PushActiveSnapshot(GetLatestSnapshot());
		tg_sql_connect();
		insert_batch(&b, "{}", bytea_of("", 0), b.sealed_at);
		tg_sql_finish();
		PopActiveSnapshot();
	}

	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"older_than\": \"%s\", \"cutoff\": \"%s\", \"rows_removed\": " INT64_FORMAT,
					 DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(older_than))),
					 iso_utc(cutoff), removed);
	if (cut >= 0)
		appendStringInfo(&detail, ", \"cut_batch\": " INT64_FORMAT ", \"cut_position\": " INT64_FORMAT
						 ", \"cut_chain\": \"%s\"",
						 batches[cut].batch,
						 batches[cut].first_position + batches[cut].row_count - 1,
						 tg_hex(batches[cut].chain, TG_HASH_LEN));
	appendStringInfoChar(&detail, '}');
	tg_audit_write_event("PURGE", logoid, NULL, NULL,
						 DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(detail.data))));
	PG_RETURN_INT64(removed);
}

/* ------------------------------------------------------------------------
 * The worker, its shared state, seal_status
 * ------------------------------------------------------------------------
 */

static void
seal_shmem_init(void *ptr, bool found)
{
	seal_shared = (TgSealShared *) ptr;
	if (!found)
	{
		memset(seal_shared, 0, sizeof(TgSealShared));
		SpinLockInit(&seal_shared->mutex);
	}
}

/* The slot of database dboid (claimed if create), or NULL */
static TgSealSlot *
seal_slot(Oid dboid, bool create)
{
	TgSealSlot *res = NULL;

	if (seal_shared == NULL)
		return NULL;
	SpinLockAcquire(&seal_shared->mutex);
	for (int i = 0; i < TG_SEAL_MAX_DB && res == NULL; i++)
		if (seal_shared->slots[i].dboid == dboid)
			res = &seal_shared->slots[i];
	for (int i = 0; i < TG_SEAL_MAX_DB && res == NULL && create; i++)
		if (!OidIsValid(seal_shared->slots[i].dboid))
		{
			res = &seal_shared->slots[i];
			memset(res, 0, sizeof(*res));
			res->dboid = dboid;
		}
	SpinLockRelease(&seal_shared->mutex);
	return res;
}

static void
slot_set_error(TgSealSlot *slot, const char *msg)
{
	if (slot == NULL)
		return;
	SpinLockAcquire(&seal_shared->mutex);
	if (msg != NULL)
	{
		strlcpy(slot->last_error, msg, TG_SEAL_ERRLEN);
		slot->last_error_at = GetCurrentTimestamp();
	}
	slot->last_round_at = GetCurrentTimestamp();
	SpinLockRelease(&seal_shared->mutex);
}

/* Write the digest of the chain head to the server log */
static void
log_digest(void)
{
	TgSealBatch *last;
	uint8		pub[TG_HASH_LEN];
	char	   *msg;

	PushActiveSnapshot(GetTransactionSnapshot());
	tg_sql_connect();
	if (tg_seal_load_batches(&last, true, 0) > 0)
	{
		msg = tg_seal_digest_message(last);
		if (tg_seal_signing_key(last->key_version, pub, NULL, NULL, 0))
		{
			/* the PEM's base64 line: DER SubjectPublicKeyInfo */
			char	   *pem = tg_seal_public_key_pem(pub);
			char	   *b = strchr(pem, '\n');
			char	   *e = b ? strchr(b + 1, '\n') : NULL;

			ereport(LOG,
					(errmsg("trading_guard audit digest: %s signature=%s public_key=%s",
							msg, tg_base64(last->signature, TG_SIG_LEN),
							(b && e) ? pnstrdup(b + 1, e - b - 1) : pem)));
		}
	}
	tg_sql_finish();
	PopActiveSnapshot();
}

/* One round of the worker: seal (if the extension and a key ring are there) */
static void
seal_round(TgSealSlot *slot, TimestampTz *last_digest)
{
	MemoryContext cxt = CurrentMemoryContext;
	bool		logged_wait = slot->waiting_for_keyring;

	/* pg_restore fills audit_log and audit_seal: seal once it is done */
	if (tg_database_being_restored())
		return;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		if (OidIsValid(get_extension_oid("trading_guard", true)) &&
			OidIsValid(get_namespace_oid("trading_guard", true)) &&
			OidIsValid(get_relname_relid("audit_seal", get_namespace_oid("trading_guard", true))))
		{
			if (!tg_keyring_loaded())
			{
				if (!logged_wait)
					ereport(LOG,
							(errmsg("trading_guard: sealing of the audit trail of database \"%s\" waits for the key ring",
									get_database_name(MyDatabaseId))));
				slot->waiting_for_keyring = true;
			}
			else
			{
				if (logged_wait)
					ereport(LOG,
							(errmsg("trading_guard: sealing of the audit trail of database \"%s\" resumes",
									get_database_name(MyDatabaseId))));
				slot->waiting_for_keyring = false;
				pgstat_report_activity(STATE_RUNNING, "sealing");
				(void) tg_seal_run(false);
				if (digest_interval > 0 &&
					TimestampDifferenceExceeds(*last_digest, GetCurrentTimestamp(),
											   digest_interval * 1000))
				{
					log_digest();
					*last_digest = GetCurrentTimestamp();
				}
			}
		}
		CommitTransactionCommand();

		/* then the key index, in a transaction of its own */
		if (!slot->waiting_for_keyring)
		{
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			if (OidIsValid(get_extension_oid("trading_guard", true)))
				(void) tg_seal_index_keys(false);
			CommitTransactionCommand();
		}
		slot_set_error(slot, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		slot_set_error(slot, edata->message);
		ereport(LOG,
				(errmsg("trading_guard: sealing failed: %s", edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
tg_seal_worker_main(Datum arg)
{
	TgSealSlot *slot;
	TimestampTz last_digest = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(MyBgworkerEntry->bgw_extra, NULL, 0);
	pgstat_report_appname("trading_guard sealer");

	slot = seal_slot(MyDatabaseId, true);
	if (slot == NULL)
		ereport(FATAL,
				(errmsg("trading_guard: no room for the sealer of database \"%s\"",
						MyBgworkerEntry->bgw_extra)));
	slot->pid = MyProcPid;
	slot->waiting_for_keyring = false;

	for (;;)
	{
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (seal_interval > 0)
			seal_round(slot, &last_digest);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH |
						 (seal_interval > 0 ? WL_TIMEOUT : 0),
						 seal_interval > 0 ? seal_interval : -1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

typedef struct SealBacklog
{
	int64		rows;
	TimestampTz oldest;
	int			nexcl;			/* ids sealed in another cluster */
	int64	   *excl_lo;
	int64	   *excl_hi;
} SealBacklog;

/* seal_status's callback: a visible row not sealed yet, if committed */
static void
backlog_row(void *arg, TupleDesc desc, Datum *values, bool *nulls, ItemPointer tid)
{
	SealBacklog *b = arg;
	int			t = tg_seal_attnum(desc, "event_time") - 1;
	int			x = tg_seal_attnum(desc, "txid") - 1;

	if (TransactionIdIsCurrentTransactionId(XidFromFullTransactionId(DatumGetFullTransactionId(values[x]))))
		return;
	if (b->nexcl > 0 &&
		tg_seal_id_in_ranges(DatumGetInt64(values[tg_seal_attnum(desc, "id") - 1]), b->excl_lo, b->excl_hi, b->nexcl))
		return;
	b->rows++;
	if (!nulls[t] && DatumGetTimestampTz(values[t]) < b->oldest)
		b->oldest = DatumGetTimestampTz(values[t]);
}

/*
 * SQL: seal_status() returns one row (see the view trading_guard.seal_status)
 */
PG_FUNCTION_INFO_V1(tg_seal_status);
Datum
tg_seal_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[12];
	bool		nulls[12];
	TgSealBatch *last = NULL;
	int			nlast;
	TgFullSnapshot prev;
	Snapshot	snap;
	Relation	rel;
	TgSealSlot *slot = seal_slot(MyDatabaseId, false);
	TgSealSlot copy;
	SealBacklog backlog;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, true, sizeof(nulls));

	snap = RegisterSnapshot(GetLatestSnapshot());
	PushActiveSnapshot(snap);
	tg_sql_connect();
	nlast = tg_seal_load_batches(&last, true, 0);
	backlog.nexcl = 0;
	if (nlast > 0 && !tg_seal_batch_is_local(last))
	{
		backlog.nexcl = all_sealed_ranges(&backlog.excl_lo, &backlog.excl_hi);
		nlast = -nlast;			/* no snapshot of ours: look at every row */
	}
	tg_sql_finish();
	if (nlast > 0)
		tg_seal_parse_snapshot(last->snapshot, &prev);

	backlog.rows = 0;
	backlog.oldest = DT_NOEND;
	rel = table_open(tg_audit_log_oid(), AccessShareLock);
	tg_seal_scan_after(rel, snap, nlast > 0 ? &prev : NULL, backlog_row, &backlog);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	UnregisterSnapshot(snap);

	if (nlast != 0)
	{
		values[0] = Int64GetDatum(last->first_position + last->row_count - 1);
		values[1] = Int64GetDatum(last->batch);
		values[2] = TimestampTzGetDatum(last->sealed_at);
		values[3] = Int32GetDatum(last->key_version);
		nulls[0] = nulls[1] = nulls[2] = nulls[3] = false;
	}
	values[4] = Int64GetDatum(backlog.rows);
	nulls[4] = false;
	if (backlog.rows > 0)
	{
		values[5] = TimestampTzGetDatum(backlog.oldest);
		nulls[5] = false;
	}
	if (slot != NULL)
	{
		SpinLockAcquire(&seal_shared->mutex);
		copy = *slot;
		SpinLockRelease(&seal_shared->mutex);
		values[6] = Int32GetDatum(copy.pid);
		values[7] = BoolGetDatum(copy.waiting_for_keyring);
		nulls[6] = nulls[7] = false;
		if (copy.last_round_at != 0)
		{
			values[8] = TimestampTzGetDatum(copy.last_round_at);
			nulls[8] = false;
		}
		if (copy.last_error_at != 0)
		{
			copy.last_error[TG_SEAL_ERRLEN - 1] = '\0';
			values[9] = CStringGetTextDatum(copy.last_error);
			values[10] = TimestampTzGetDatum(copy.last_error_at);
			nulls[9] = nulls[10] = false;
		}
	}
	values[11] = BoolGetDatum(tg_preloaded() && tg_keyring_loaded());
	nulls[11] = false;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * Define the GUCs; when preloading, ask for shared memory and register one
 * sealer per database of trading_guard.seal_databases.
 */
void
tg_seal_init(void)
{
	char	   *list;
	List	   *names;
	ListCell   *lc;

	DefineCustomIntVariable("trading_guard.seal_interval",
							"Time between two rounds of the sealing worker (0: the worker does not seal).",
							NULL,
							&seal_interval,
							200, 0, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("trading_guard.digest_interval",
							"Time between two signed digests of the audit chain written to the server log (0: none).",
							NULL,
							&digest_interval,
							600, 0, 7 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	/* PostgreSQL refuses to define PGC_POSTMASTER variables after startup */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomStringVariable("trading_guard.seal_databases",
							   "Databases whose audit trail a background worker seals.",
							   "A comma-separated list; each needs a worker process (max_worker_processes).",
							   &seal_databases,
							   "postgres",
							   PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);

	tg_shmem_register("trading_guard sealing", sizeof(TgSealShared), seal_shmem_init);

	list = pstrdup(seal_databases);
	if (!SplitIdentifierString(list, ',', &names))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in trading_guard.seal_databases")));
	if (list_length(names) > TG_SEAL_MAX_DB)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trading_guard.seal_databases names more than %d databases", TG_SEAL_MAX_DB)));
	foreach(lc, names)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 5;
		strlcpy(worker.bgw_library_name, "trading_guard", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "tg_seal_worker_main", BGW_MAXLEN);
		snprintf(worker.bgw_name, BGW_MAXLEN, "trading_guard sealer %s", (char *) lfirst(lc));
		strlcpy(worker.bgw_type, "trading_guard sealer", BGW_MAXLEN);
		strlcpy(worker.bgw_extra, (char *) lfirst(lc), BGW_EXTRALEN);
		RegisterBackgroundWorker(&worker);
	}
}
