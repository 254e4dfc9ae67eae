/*-------------------------------------------------------------------------
 *
 * seal.h
 *	  Tamper evidence of the audit trail: the sealed hash chain over
 *	  trading_guard.audit_log (src/seal.c writes it, src/seal_verify.c
 *	  checks it, gives digests and inclusion proofs).
 *
 * The format is documented in README.md ("How sealing works" and "Digests,
 * proofs and the stand-alone verifier"); the
 * stand-alone verifier tools/tg_verify.py implements the same.
 *
 *	leaf   = SHA-256(0x00 || canonical row)
 *	node   = SHA-256(0x01 || left || right)		(RFC 6962 tree shape)
 *	chain  = HMAC-SHA256(sealing subkey of key_version, header)
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_SEAL_H
#define TG_SEAL_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "storage/itemptr.h"
#include "lib/stringinfo.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

#define TG_HASH_LEN		32
#define TG_TAG_LEN		8		/* bytes of a leaf hash kept per row */
#define TG_SIG_LEN		64		/* Ed25519 */
#define TG_LAYOUT_LEN	8		/* bytes of the hash of audit_log's layout */

typedef uint8 TgHash[TG_HASH_LEN];

/* One row of trading_guard.audit_seal, as the C code uses it */
typedef struct TgSealBatch
{
	int64		batch;
	TimestampTz sealed_at;
	int32		key_version;
	int64		first_position;
	int64		row_count;
	int64		purged_through; /* batches up to this one were purged */
	int64		system_id;		/* of the cluster that sealed it */
	uint8		layout[TG_LAYOUT_LEN];	/* audit_log's columns when sealed */
	char	   *snapshot;		/* pg_snapshot text: xmin:xmax:xip,... */
	int			nranges;		/* ids, as half-open ranges [lo, hi) */
	int64	   *range_lo;
	int64	   *range_hi;
	bytea	   *leaf_tags;		/* TG_TAG_LEN bytes per row */
	TgHash		root;
	TgHash		prev_chain;
	TgHash		chain;
	uint8		signature[TG_SIG_LEN];
} TgSealBatch;

/* A pg_snapshot, in full transaction ids */
typedef struct TgFullSnapshot
{
	uint64		xmin;
	uint64		xmax;
	int			nxip;
	uint64	   *xip;			/* ascending */
} TgFullSnapshot;

/* a candidate (or verified) row: its id and leaf hash */
typedef struct TgSealLeaf
{
	int64		id;
	TgHash		hash;
} TgSealLeaf;

/* a key index entry: an audit row's key hash, id and place */
typedef struct TgKeyEntry
{
	int64		key_hash;
	int64		id;
	ItemPointerData tid;
} TgKeyEntry;

/* seal.c */
extern void tg_seal_init(void);
extern struct TgKeyVersion *tg_seal_key_scratch(void);
extern PGDLLEXPORT void tg_seal_worker_main(Datum arg);
extern int64 tg_seal_index_keys(bool wait);
extern void tg_seal_summarize_new_ranges(void);
extern void tg_seal_index_batch(int64 prev_batch, int64 batch, TgKeyEntry *entries, int64 n);
extern void tg_seal_canonical(StringInfo buf, TupleDesc desc, Datum *values, bool *nulls);
extern void tg_seal_leaf_hash(const char *data, int len, uint8 *out);
extern void tg_seal_merkle_root(const TgSealLeaf *leaves, int64 n, uint8 *out);
extern void tg_seal_chain_hash(const TgSealBatch *b, const uint8 *seal_key, uint8 *out);
extern char *tg_seal_digest_message(const TgSealBatch *b);
extern bool tg_seal_signing_key(int32 key_version, uint8 *pub, uint8 *sig_out,
								const char *msg, int msglen);
extern char *tg_seal_public_key_pem(const uint8 *pub);
extern void tg_seal_parse_snapshot(const char *text, TgFullSnapshot *s);
extern bool tg_seal_xid_visible(const TgFullSnapshot *s, uint64 xid);
extern int	tg_seal_load_batches(TgSealBatch **out, bool last_only, int64 only_batch);
extern int	tg_seal_load_batches_from(TgSealBatch **out, int64 from);
extern Oid	tg_audit_seal_oid(void);
extern bool tg_seal_batch_is_local(const TgSealBatch *b);
extern int	tg_seal_sorted_ranges(const TgSealBatch *b, int from, int to, int64 **lo, int64 **hi);
extern bool tg_seal_id_in_ranges(int64 id, const int64 *lo, const int64 *hi, int n);
extern AttrNumber tg_seal_attnum(TupleDesc desc, const char *name);
extern void tg_seal_layout(TupleDesc desc, uint8 *out);
extern char *tg_hex(const uint8 *data, int len);
extern char *tg_base64(const uint8 *data, int len);

typedef void (*tg_seal_row_cb) (void *arg, TupleDesc desc, Datum *values, bool *nulls,
								ItemPointer tid);
extern void tg_seal_scan_after(Relation rel, Snapshot snap, const TgFullSnapshot *prev,
							   tg_seal_row_cb cb, void *arg);

#endif							/* TG_SEAL_H */
