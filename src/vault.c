/*-------------------------------------------------------------------------
 *
 * vault.c
 *	  The credential vault: exchange API secrets stored encrypted in
 *	  trading_guard.credential_store, revealed on request or used to sign
 *	  exchange requests inside the server.
 *
 * Encryption: AES-256-GCM (OpenSSL EVP) under the key ring's encryption
 * subkey (src/keyring.c), a fresh random 96-bit nonce per encryption, in a
 * self-describing envelope:
 *
 *		format (1 byte, 1) | key version (4, big-endian) | nonce (12) |
 *		ciphertext (as long as the secret) | tag (16)
 *
 * The associated data are the envelope's first five bytes and a canonical
 * string naming the credential (id, exchange, label, environment) and the
 * field, so a ciphertext copied to another row or field does not decrypt.
 * A secret exists in plaintext only as the SQL argument it arrived in, in
 * this process's locked scratch page while it is used, and in the text
 * reveal_credential() returns; never in a table (the row is inserted with
 * its ciphertext), so never in WAL.
 *
 * Fingerprints: HMAC-SHA256 of the secret under the key ring's fingerprint
 * subkey, stored with the key version used, so the same secret offered for
 * another environment is recognised without decrypting anything.
 *
 * Per-backend state: a cache of credential rows by (environment, exchange,
 * label), holding ciphertexts and their associated data, that follows
 * credential_store as src/own_tables.c describes and also takes in other
 * sessions' invalidations at every call, so that a committed rotation or
 * revocation applies to the next call of every session, inside a running
 * transaction too; one AES-256-GCM and one
 * HMAC-SHA256 context, re-keyed with a zero key after every use and freed on
 * abort (resource release callback), so no key schedule outlives a call; a
 * locked, never-dumped scratch page for the subkeys and the plaintext of one
 * call, wiped after every use and on abort.
 *
 * Recording: store, rotate, revoke, rekey and each successful reveal write
 * a row to trading_guard.audit_log (with row_key {"id": N}, so history()
 * of credential_store shows a credential's life); a reveal also writes a
 * server log line, which a rollback cannot take back.  Refused reveals and
 * signatures raise an error, so their transaction cannot keep an audit row:
 * they are written to the server log and counted in shared memory.
 * Signatures are counted in shared memory (count and last use per
 * credential), not written as a row each: a row per signature would cost
 * more than the signature itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "audit.h"
#include "events.h"
#include "halt.h"
#include "keyring.h"
#include "risk_limits.h"
#include "own_tables.h"
#include "run_sql.h"
#include "shmem.h"
#include "trading_guard.h"
#include "vault.h"

#define ENV_FORMAT		1
#define ENV_NONCE_LEN	12
#define ENV_TAG_LEN		16
#define ENV_HDR_LEN		(1 + 4 + ENV_NONCE_LEN)
#define ENV_OVERHEAD	(ENV_HDR_LEN + ENV_TAG_LEN)

#define VAULT_MAX_SECRET	4096	/* bytes of an API secret */
#define VAULT_MAX_NAME		63		/* bytes of exchange and label */
#define VAULT_USAGE_SLOTS	1024	/* credentials whose use is counted */

enum
{
	TG_ENV_DEV,
	TG_ENV_STAGING,
	TG_ENV_PROD
};

static const struct config_enum_entry environment_options[] = {
	{"dev", TG_ENV_DEV, false},
	{"staging", TG_ENV_STAGING, false},
	{"prod", TG_ENV_PROD, false},
	{NULL, 0, false}
};

static int	tg_environment = TG_ENV_DEV;

/* ----------------------------------------------------------------------
 * Shared memory: use counters per credential
 * ----------------------------------------------------------------------
 */
typedef struct VaultUsage
{
	Oid			dbid;			/* InvalidOid = free */
	int64		credential_id;
	uint64		signatures;
	uint64		reveals;
	uint64		refusals;
	TimestampTz last_used;
} VaultUsage;

/*
 * Signatures not yet reported as vault_sign events, per credential and role
 * (the events say who signed); a slot is freed when reported.  When all are
 * taken, the last counts the rest without a role.
 */
typedef struct VaultSignCount
{
	Oid			dbid;			/* InvalidOid = free */
	int64		credential_id;
	Oid			roleid;
	uint64		count;
	TimestampTz last;
} VaultSignCount;

typedef struct VaultShared
{
	slock_t		mutex;
	VaultUsage	usage[VAULT_USAGE_SLOTS];
	VaultSignCount signs[VAULT_USAGE_SLOTS];
} VaultShared;

static VaultShared *vault_shared = NULL;

typedef enum UsageKind
{
	USAGE_SIGN,
	USAGE_REVEAL,
	USAGE_REFUSAL
} UsageKind;

static void
vault_shmem_init(void *ptr, bool found)
{
	vault_shared = (VaultShared *) ptr;
	if (!found)
	{
		memset(vault_shared, 0, sizeof(VaultShared));
		SpinLockInit(&vault_shared->mutex);
	}
}

/* One signature for the next vault_sign events; the caller holds the mutex */
static void
count_signature(int64 id, TimestampTz now)
{
	Oid			role = GetOuterUserId();
	uint32		h = (uint32) (id ^ (id >> 32)) ^ MyDatabaseId * 2654435761U ^ role * 40503U;
	VaultSignCount *c = NULL;

	for (int i = 0; i < VAULT_USAGE_SLOTS - 1; i++)
	{
		VaultSignCount *t = &vault_shared->signs[(h + i) % (VAULT_USAGE_SLOTS - 1)];

		if (t->dbid == InvalidOid ||
			(t->dbid == MyDatabaseId && t->credential_id == id && t->roleid == role))
		{
			c = t;
			break;
		}
	}
	if (c == NULL)
	{
		/* full: the last slot counts the others, without a role */
		c = &vault_shared->signs[VAULT_USAGE_SLOTS - 1];
		role = InvalidOid;
		if (c->count > 0 && (c->dbid != MyDatabaseId || c->credential_id != id))
			c->credential_id = 0;	/* and without a credential once mixed */
	}
	if (c->count == 0)
	{
		c->dbid = MyDatabaseId;
		c->credential_id = id;
		c->roleid = role;
	}
	c->count++;
	c->last = now;
}

/* Count one use of a credential (0 = a refusal naming no credential) */
static void
count_use(int64 id, UsageKind kind)
{
	TimestampTz now = GetCurrentTimestamp();
	uint32		h = (uint32) (id ^ (id >> 32)) ^ MyDatabaseId * 2654435761U;
	VaultUsage *u = NULL;

	if (vault_shared == NULL)
		return;
	SpinLockAcquire(&vault_shared->mutex);
	for (int i = 0; i < VAULT_USAGE_SLOTS; i++)
	{
		VaultUsage *c = &vault_shared->usage[(h + i) % VAULT_USAGE_SLOTS];

		if (c->dbid == MyDatabaseId && c->credential_id == id)
		{
			u = c;
			break;
		}
		if (c->dbid == InvalidOid)
		{
			c->dbid = MyDatabaseId;
			c->credential_id = id;
			u = c;
			break;
		}
	}
	if (kind == USAGE_SIGN)
		count_signature(id, now);
	if (u)						/* a full table stops counting new credentials */
	{
		if (kind == USAGE_SIGN)
			u->signatures++;
		else if (kind == USAGE_REVEAL)
			u->reveals++;
		else
			u->refusals++;
		if (kind != USAGE_REFUSAL)
			u->last_used = now;
	}
	SpinLockRelease(&vault_shared->mutex);
}

/*
 * Signatures made since the last call become vault_sign events, one per
 * credential and role with its count (the events worker calls this every
 * second, in a transaction: the database's and role's names are looked up).
 */
void
tg_vault_report_signatures(void)
{
	VaultSignCount *found;
	int			n = 0;

	if (vault_shared == NULL)
		return;
	found = palloc(sizeof(*found) * VAULT_USAGE_SLOTS);
	SpinLockAcquire(&vault_shared->mutex);
	for (int i = 0; i < VAULT_USAGE_SLOTS; i++)
	{
		VaultSignCount *c = &vault_shared->signs[i];

		if (c->dbid == InvalidOid || c->count == 0)
			continue;
		found[n++] = *c;
		memset(c, 0, sizeof(*c));
	}
	SpinLockRelease(&vault_shared->mutex);

	for (int i = 0; i < n; i++)
	{
		TgEvent		ev;
		char	   *db = get_database_name(found[i].dbid);
		char	   *role = OidIsValid(found[i].roleid) ? GetUserNameFromId(found[i].roleid, true) : NULL;

		tg_event_start(&ev, TG_EV_VAULT_SIGN, TG_OUT_ALLOWED);
		ev.pid = 0;
		ev.time = found[i].last;
		ev.credential_id = found[i].credential_id;
		tg_event_set(&ev, database, db ? db : "");
		if (role)
			tg_event_set(&ev, role, role);
		tg_event_set(&ev, reason, "signatures counted");
		tg_event_detail_int(&ev, "count", (int64) found[i].count);
		(void) tg_event_emit(&ev);
	}
	pfree(found);
}

/* ----------------------------------------------------------------------
 * Per-backend crypto state
 * ----------------------------------------------------------------------
 */
typedef struct VaultScratch
{
	TgKeyVersion key;
	uint8		plain[VAULT_MAX_SECRET];
	uint8		fingerprint_key[TG_KEY_LEN];
} VaultScratch;

static VaultScratch *scratch = NULL;
static int	plain_used = 0;		/* bytes of scratch->plain to wipe */

/*
 * OpenSSL contexts, made once per backend and reused: AES-256-GCM and
 * HMAC-SHA256.  After each use they are re-keyed with a zero key, which
 * overwrites the key schedule and HMAC pads in place, so no key outlives a
 * call; on abort they are freed (OpenSSL wipes them) and made again later.
 */
static EVP_CIPHER *aes_gcm = NULL;
static EVP_MAC *hmac = NULL;
static EVP_CIPHER_CTX *cipher_ctx = NULL;
static EVP_MAC_CTX *mac_ctx = NULL;
static bool crypto_in_use = false;
static const uint8 zero_key[TG_KEY_LEN];

/* the resource owner that was current when the crypto section began */
static ResourceOwner crypto_owner = NULL;

/*
 * On abort: no key schedule or plaintext left behind by an interrupted
 * call.  Only the abort of the (sub)transaction the call began in (or of
 * one around it, whose release comes to that owner first) counts: a
 * subtransaction that a trigger runs inside the call, committed or caught,
 * must leave the call's state alone.
 */
static void
vault_release(ResourceReleasePhase phase, bool isCommit, bool isTopLevel, void *arg)
{
	if (phase != RESOURCE_RELEASE_BEFORE_LOCKS || !crypto_in_use || isCommit ||
		CurrentResourceOwner != crypto_owner)
		return;
	EVP_CIPHER_CTX_free(cipher_ctx);
	cipher_ctx = NULL;
	EVP_MAC_CTX_free(mac_ctx);
	mac_ctx = NULL;
	OPENSSL_cleanse(scratch, sizeof(VaultScratch));
	plain_used = 0;
	crypto_in_use = false;
}

static void
crypto_begin(void)
{
	if (scratch == NULL)
	{
		scratch = tg_secure_alloc(sizeof(VaultScratch));
		RegisterResourceReleaseCallback(vault_release, NULL);
	}
	if (aes_gcm == NULL)
		aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	if (hmac == NULL)
		hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (aes_gcm == NULL || hmac == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("OpenSSL could not provide AES-256-GCM and HMAC")));
	if (cipher_ctx == NULL)
	{
		cipher_ctx = EVP_CIPHER_CTX_new();
		if (cipher_ctx == NULL ||
			EVP_CipherInit_ex(cipher_ctx, aes_gcm, NULL, NULL, NULL, 1) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not set up AES-256-GCM")));
	}
	if (mac_ctx == NULL)
	{
		OSSL_PARAM params[2] = {
			OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
			OSSL_PARAM_construct_end()
		};

		mac_ctx = EVP_MAC_CTX_new(hmac);
		if (mac_ctx == NULL || EVP_MAC_CTX_set_params(mac_ctx, params) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not set up HMAC-SHA256")));
	}
	crypto_in_use = true;
	crypto_owner = CurrentResourceOwner;
}

static void
crypto_end(void)
{
	(void) EVP_CipherInit_ex(cipher_ctx, NULL, NULL, zero_key, NULL, -1);
	(void) EVP_MAC_init(mac_ctx, zero_key, sizeof(zero_key), NULL);
	OPENSSL_cleanse(&scratch->key, sizeof(scratch->key));
	OPENSSL_cleanse(scratch->plain, plain_used);
	plain_used = 0;
	crypto_in_use = false;
}

/* The canonical binding of a ciphertext (header hdr) to its credential and field */
static void
build_aad(StringInfo aad, const uint8 *hdr, int64 id, const char *exchange,
		  const char *label, const char *environment)
{
	initStringInfo(aad);
	appendBinaryStringInfo(aad, (const char *) hdr, 5);
	appendStringInfo(aad, "trading_guard credential v1|id=" INT64_FORMAT
					 "|exchange=%zu:%s|label=%zu:%s|environment=%zu:%s|field=10:api_secret",
					 id, strlen(exchange), exchange, strlen(label), label,
					 strlen(environment), environment);
}

/* One AES-256-GCM operation with the context set up in crypto_begin() */
static bool
gcm(int enc, const uint8 *key, const uint8 *nonce, const StringInfo aad,
	const uint8 *in, int len, uint8 *out, uint8 *tag)
{
	int			n1,
				n2;

	return EVP_CipherInit_ex(cipher_ctx, NULL, NULL, key, nonce, enc) == 1 &&
		EVP_CipherUpdate(cipher_ctx, NULL, &n1, (const uint8 *) aad->data, aad->len) == 1 &&
		EVP_CipherUpdate(cipher_ctx, out, &n1, in, len) == 1 &&
		(enc || EVP_CIPHER_CTX_ctrl(cipher_ctx, EVP_CTRL_GCM_SET_TAG, ENV_TAG_LEN, tag) == 1) &&
		EVP_CipherFinal_ex(cipher_ctx, out + n1, &n2) == 1 &&
		(!enc || EVP_CIPHER_CTX_ctrl(cipher_ctx, EVP_CTRL_GCM_GET_TAG, ENV_TAG_LEN, tag) == 1);
}

/*
 * Encrypt scratch->plain[len] under scratch->key into a new envelope.
 */
static bytea *
seal_secret(int len, int64 id, const char *exchange, const char *label,
			const char *environment)
{
	bytea	   *env = palloc(VARHDRSZ + ENV_OVERHEAD + len);
	uint8	   *p = (uint8 *) VARDATA(env);
	StringInfoData aad;
	bool		ok;

	SET_VARSIZE(env, VARHDRSZ + ENV_OVERHEAD + len);
	p[0] = ENV_FORMAT;
	p[1] = (uint8) (scratch->key.version >> 24);
	p[2] = (uint8) (scratch->key.version >> 16);
	p[3] = (uint8) (scratch->key.version >> 8);
	p[4] = (uint8) scratch->key.version;
	if (RAND_bytes(p + 5, ENV_NONCE_LEN) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random nonce")));
	build_aad(&aad, p, id, exchange, label, environment);
	ok = gcm(1, scratch->key.subkeys[TG_KEY_ENCRYPTION], p + 5, &aad,
			 scratch->plain, len, p + ENV_HDR_LEN, p + ENV_HDR_LEN + len);
	pfree(aad.data);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not encrypt the secret (OpenSSL AES-256-GCM failed)")));
	return env;
}

/* The key version an envelope names */
static uint32
envelope_version(const uint8 *p)
{
	return ((uint32) p[1] << 24) | ((uint32) p[2] << 16) | ((uint32) p[3] << 8) | p[4];
}

/*
 * Decrypt an envelope (its associated data in aad) into scratch->plain;
 * returns the secret's length.  Loads the key version it needs into
 * scratch->key.
 */
static int
open_secret(const uint8 *p, int envlen, int64 id, const char *key_id, const StringInfo aad)
{
	uint32		version;
	int			len = envlen - ENV_OVERHEAD;

	if (envlen < ENV_OVERHEAD || p[0] != ENV_FORMAT || len > VAULT_MAX_SECRET)
		ereport(ERROR,
				(errcode(ERRCODE_TG_DECRYPTION_FAILED),
				 errmsg("credential " INT64_FORMAT " could not be decrypted: not an envelope of a known format",
						id)));
	version = envelope_version(p);
	if (version == 0)			/* 0 asks the key ring for its newest key */
		ereport(ERROR,
				(errcode(ERRCODE_TG_DECRYPTION_FAILED),
				 errmsg("credential " INT64_FORMAT " could not be decrypted: its envelope names no key version",
						id)));
	if (!tg_keyring_get(version, &scratch->key))
		ereport(ERROR,
				(errcode(ERRCODE_TG_KEY_VERSION_MISSING),
				 errmsg("key version %u, needed to decrypt credential " INT64_FORMAT ", is not in the key ring",
						version, id),
				 key_id ? errdetail("The credential was encrypted under key version %u with key id %s.",
									version, key_id) : 0,
				 errhint("Add that version back to the key ring and reload; key_versions() shows the versions loaded.")));

	if (key_id && strcmp(key_id, scratch->key.key_id) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_KEY_VERSION_MISSING),
				 errmsg("key version %u in the key ring is not the key credential " INT64_FORMAT " was encrypted with",
						version, id),
				 errdetail("The credential needs key version %u with key id %s; the key ring's version %u has key id %s.",
						   version, key_id, version, scratch->key.key_id),
				 errhint("Load the key ring the credential was stored under; key_versions() shows the key ids loaded.")));

	plain_used = len;
	if (!gcm(0, scratch->key.subkeys[TG_KEY_ENCRYPTION], p + 5, aad,
			 p + ENV_HDR_LEN, len, scratch->plain, (uint8 *) (p + ENV_HDR_LEN + len)))
	{
		OPENSSL_cleanse(scratch->plain, len);
		ereport(ERROR,
				(errcode(ERRCODE_TG_DECRYPTION_FAILED),
				 errmsg("credential " INT64_FORMAT " could not be decrypted: authentication failed", id),
				 errdetail("The ciphertext does not match its key, its credential or its field: it was altered or copied from elsewhere.")));
	}
	return len;
}

/* The same, building the associated data from the credential's names */
static int
open_named_secret(const uint8 *p, int envlen, int64 id, const char *exchange,
				  const char *label, const char *environment, const char *key_id)
{
	StringInfoData aad;
	int			len;

	if (envlen < 5)
		return open_secret(p, envlen, id, key_id, NULL);	/* refuses */
	build_aad(&aad, p, id, exchange, label, environment);
	len = open_secret(p, envlen, id, key_id, &aad);
	pfree(aad.data);
	return len;
}

/* HMAC-SHA256(key, data) into out[32] */
static void
hmac_sha256(const uint8 *key, int keylen, const uint8 *data, size_t len, uint8 *out)
{
	size_t		outlen = 0;

	if (EVP_MAC_init(mac_ctx, key, keylen, NULL) != 1 ||
		EVP_MAC_update(mac_ctx, data, len) != 1 ||
		EVP_MAC_final(mac_ctx, out, &outlen, 32) != 1 || outlen != 32)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute HMAC-SHA256")));
}

/* ----------------------------------------------------------------------
 * Arguments and lookups
 * ----------------------------------------------------------------------
 */

static const char *
environment_name(void)
{
	return environment_options[tg_environment].name;
}

/* A required text argument, checked for NULL, emptiness and length */
static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *what, int maxlen)
{
	char	   *s;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	s = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (maxlen > 0 && strlen(s) > (size_t) maxlen)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is longer than %d bytes", what, maxlen)));
	return s;
}

/* The environment argument: one of dev, staging, prod */
static const char *
environment_arg(FunctionCallInfo fcinfo, int n)
{
	char	   *s = text_arg(fcinfo, n, "environment", 16);

	for (const struct config_enum_entry *e = environment_options; e->name; e++)
	{
		if (strcmp(e->name, s) == 0)
			return e->name;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown environment \"%s\"", s),
			 errhint("Environments are dev, staging and prod.")));
	return NULL;				/* keep the compiler quiet */
}

/* Copy the secret argument into the scratch page; returns its length */
static int
secret_arg(FunctionCallInfo fcinfo, int n)
{
	text	   *t;
	int			len;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("api_secret must not be null")));
	t = PG_GETARG_TEXT_PP(n);
	len = VARSIZE_ANY_EXHDR(t);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("api_secret must not be empty")));
	if (len > VAULT_MAX_SECRET)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("api_secret is longer than %d bytes", VAULT_MAX_SECRET)));
	memcpy(scratch->plain, VARDATA_ANY(t), len);
	plain_used = len;
	/* a detoasted copy is ours: wipe it rather than leave it to pfree */
	if ((Pointer) t != DatumGetPointer(PG_GETARG_DATUM(n)))
	{
		OPENSSL_cleanse(t, VARSIZE_ANY(t));
		pfree(t);
	}
	return len;
}

/* Members of a jsonb object being built (pushJsonbValue sorts them) */
static void
put_key(JsonbParseState **state, const char *name)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) name;
	k.val.string.len = strlen(name);
	pushJsonbValue(state, WJB_KEY, &k);
}

static void
put_string(JsonbParseState **state, const char *name, const char *value)
{
	JsonbValue	v;

	put_key(state, name);
	v.type = jbvString;
	v.val.string.val = (char *) value;
	v.val.string.len = strlen(value);
	pushJsonbValue(state, WJB_VALUE, &v);
}

static void
put_number(JsonbParseState **state, const char *name, int64 value)
{
	JsonbValue	v;

	put_key(state, name);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * Record a vault event in the audit log as the caller: inside these
 * SECURITY DEFINER functions the current user is the extension's owner,
 * so the row names the role that called (SET ROLE included) instead.
 */
static void
record_event(const char *operation, int64 id, const char *exchange,
			 const char *label, const char *environment, int32 key_version,
			 const char *reason)
{
	Oid			save_userid;
	int			save_sec;
	JsonbParseState *state = NULL;
	Jsonb	   *detail;
	char	   *row_key = NULL;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	if (id > 0)
	{
		put_number(&state, "credential_id", id);
		row_key = psprintf("{\"id\": " INT64_FORMAT "}", id);
	}
	if (environment)
		put_string(&state, "environment", environment);
	if (exchange)
		put_string(&state, "exchange", exchange);
	if (key_version > 0)
		put_number(&state, "key_version", key_version);
	if (label)
		put_string(&state, "label", label);
	if (reason)
		put_string(&state, "reason", reason);
	detail = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(GetOuterUserId(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	tg_audit_write_keyed_event(operation,
							   tg_own_table_oid(TG_OWN_CREDENTIAL_STORE, false), NULL, NULL,
							   row_key, detail);
	SetUserIdAndSecContext(save_userid, save_sec);
}

/*
 * A security event of the vault (events.c): who, which credential, what
 * for.  The role is the one the function runs for (GetOuterUserId), as in
 * the server log line; never the secret.
 */
static void
vault_event(TgEventType type, TgEventOutcome outcome, const char *what, int64 id,
			const char *exchange, const char *label, const char *reason, int sqlstate)
{
	TgEvent		ev;

	tg_event_start(&ev, type, outcome);
	tg_event_set(&ev, role, GetUserNameFromId(GetOuterUserId(), false));
	ev.credential_id = id;
	tg_event_set(&ev, exchange, exchange);
	tg_event_set(&ev, label, label);
	tg_event_set(&ev, reason, reason);
	tg_event_detail(&ev, "operation", what);
	tg_event_detail(&ev, "environment", environment_name());
	if (sqlstate != 0)
		tg_event_detail(&ev, "sqlstate", unpack_sql_state(sqlstate));
	(void) tg_event_emit(&ev);
}

/* Who is asking, for server log lines */
static char *
caller_description(void)
{
	const char *addr = MyProcPort && MyProcPort->remote_host ? MyProcPort->remote_host : "local";

	return psprintf("role \"%s\" (session user \"%s\") from %s",
					GetUserNameFromId(GetOuterUserId(), false),
					GetUserNameFromId(GetSessionUserId(), false), addr);
}

/*
 * A refused reveal or signature: a server log line (a rollback cannot take
 * it back) and a counter, then the error.
 */
static void
refuse(const char *what, int64 id, const char *exchange, const char *label,
	   int sqlstate, const char *reason, const char *hint)
{
	count_use(id, USAGE_REFUSAL);
	vault_event(TG_EV_VAULT_REFUSED, TG_OUT_REFUSED, what, id, exchange, label,
				reason, sqlstate);
	ereport(LOG,
			(errmsg("trading_guard: %s of credential %s/%s (%s) refused to %s: %s",
					what, exchange ? exchange : "?", label ? label : "?",
					environment_name(), caller_description(), reason),
			 errhidestmt(true)));
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("%s", reason),
			 hint ? errhint("%s", hint) : 0));
}

/* ----------------------------------------------------------------------
 * The credential cache (per backend)
 * ----------------------------------------------------------------------
 */
typedef struct CredKey
{
	int			environment;
	char		exchange[VAULT_MAX_NAME + 1];
	char		label[VAULT_MAX_NAME + 1];
} CredKey;

typedef enum CredStatus
{
	CRED_ACTIVE,				/* an active row in this environment */
	CRED_REVOKED,				/* only revoked rows in this environment */
	CRED_OTHER_ENVIRONMENT,		/* active only in another environment */
	CRED_NOT_FOUND
} CredStatus;

typedef struct CredEntry
{
	CredKey		key;
	CredStatus	status;
	int64		id;
	char		key_id[TG_KEY_ID_LEN + 1];
	int			envelope_len;
	uint8	   *envelope;		/* in cred_cxt */
	StringInfoData aad;			/* its associated data, in cred_cxt */
} CredEntry;

/* rows of credential_store, all read at generation cred_generation */
static HTAB *cred_cache = NULL;
static MemoryContext cred_cxt = NULL;
static uint64 cred_generation = 0;

static void
cred_key(CredKey *key, const char *exchange, const char *label)
{
	memset(key, 0, sizeof(*key));
	key->environment = tg_environment;
	strlcpy(key->exchange, exchange, sizeof(key->exchange));
	strlcpy(key->label, label, sizeof(key->label));
}

/*
 * Read (exchange, label)'s rows from credential_store into *e, which is not
 * in the cache.  The envelope is allocated in the caller's memory context.
 * Returns the generation of credential_store that *e belongs to.
 */
static uint64
cred_load(CredEntry *e, const char *exchange, const char *label)
{
	TgSqlArgs	args = {0};
	const char *env = environment_name();
	uint64		generation;

	tg_sql_arg_text(&args, exchange);
	tg_sql_arg_text(&args, label);
	e->status = CRED_NOT_FOUND;
	e->id = 0;
	e->key_id[0] = '\0';
	e->envelope = NULL;
	e->aad.data = NULL;
	e->envelope_len = 0;

	generation = tg_own_table_load_begin(TG_OWN_CREDENTIAL_STORE);
	(void) tg_own_table_read("SELECT id, environment, secret, key_id, revoked_at IS NOT NULL"
							 "  FROM trading_guard.credential_store"
							 " WHERE exchange OPERATOR(pg_catalog.=) $1 AND label OPERATOR(pg_catalog.=) $2",
							 &args);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *renv = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		bool		revoked = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		bool		mine = strcmp(renv, env) == 0;

		if (mine && !revoked)
		{
			bytea	   *b = DatumGetByteaPP(SPI_getbinval(tup, desc, 3, &isnull));
			char	   *kid = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));

			e->status = CRED_ACTIVE;
			e->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			strlcpy(e->key_id, kid, sizeof(e->key_id));
			e->envelope_len = VARSIZE_ANY_EXHDR(b);
			e->envelope = SPI_palloc(e->envelope_len);
			memcpy(e->envelope, VARDATA_ANY(b), e->envelope_len);
			break;
		}
		/* no active row here (yet): remember why, and which row says so */
		if (mine && revoked)
			e->status = CRED_REVOKED;
		else if (!revoked && e->status == CRED_NOT_FOUND)
			e->status = CRED_OTHER_ENVIRONMENT;
		else
			continue;
		e->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	}
	tg_own_table_load_end();
	return generation;
}

/* Empty the cache (or make it, on first use) for rows of generation */
static void
cred_cache_reset(uint64 generation)
{
	HASHCTL		ctl;

	if (cred_cxt == NULL)
		cred_cxt = AllocSetContextCreate(CacheMemoryContext, "trading_guard credentials",
										 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(cred_cxt);
	ctl.keysize = sizeof(CredKey);
	ctl.entrysize = sizeof(CredEntry);
	ctl.hcxt = cred_cxt;
	cred_cache = hash_create("trading_guard credentials", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	cred_generation = generation;
}

/*
 * The cached row of (exchange, label) in this environment.  The entry is
 * valid until the next lookup.
 */
static CredEntry *
cred_lookup(const char *exchange, const char *label)
{
	CredKey		key;
	CredEntry  *e;
	CredEntry	loaded;
	bool		found;
	uint64		generation;

	/*
	 * Take in other sessions' committed changes first: a call that touches
	 * no table would otherwise not see a revocation until its transaction
	 * ends.  (Cheap when there is nothing new.)
	 */
	AcceptInvalidationMessages();

	cred_key(&key, exchange, label);
	if (cred_cache != NULL &&
		tg_own_table_current(TG_OWN_CREDENTIAL_STORE, cred_generation))
	{
		e = hash_search(cred_cache, &key, HASH_FIND, &found);
		if (found)
			return e;
	}

	/*
	 * Not cached, or the cache is stale.  A row read while an invalidation
	 * arrived belongs to an older generation than the table's: it serves
	 * this call, and the next lookup empties the cache.
	 */
	generation = cred_load(&loaded, exchange, label);
	if (cred_cache == NULL || cred_generation != generation)
		cred_cache_reset(generation);

	/* copy everything into the cache's context before the entry exists */
	loaded.key = key;
	loaded.aad.data = NULL;
	if (loaded.envelope != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(cred_cxt);
		uint8	   *envelope = palloc(loaded.envelope_len);

		memcpy(envelope, loaded.envelope, loaded.envelope_len);
		pfree(loaded.envelope);
		loaded.envelope = envelope;
		if (loaded.envelope_len >= 5)
			build_aad(&loaded.aad, loaded.envelope, loaded.id, exchange, label,
					  environment_name());
		MemoryContextSwitchTo(old);
	}
	e = hash_search(cred_cache, &key, HASH_ENTER, &found);
	*e = loaded;
	return e;
}

/* The active credential, or a refusal saying why there is none */
static CredEntry *
cred_require(const char *what, const char *exchange, const char *label)
{
	CredEntry  *e = cred_lookup(exchange, label);

	switch (e->status)
	{
		case CRED_ACTIVE:
			return e;
		case CRED_REVOKED:
			refuse(what, e->id, exchange, label, ERRCODE_TG_CREDENTIAL_REVOKED,
				   psprintf("credential %s/%s has been revoked", exchange, label),
				   "Store a new secret with store_credential().");
			break;
		case CRED_OTHER_ENVIRONMENT:
			refuse(what, e->id, exchange, label, ERRCODE_TG_WRONG_ENVIRONMENT,
				   psprintf("credential %s/%s belongs to another environment than this database's (%s)",
							exchange, label, environment_name()),
				   "A credential is revealed and used only where trading_guard.environment matches its environment.");
			break;
		case CRED_NOT_FOUND:
			refuse(what, 0, exchange, label, ERRCODE_TG_CREDENTIAL_NOT_FOUND,
				   psprintf("credential %s/%s does not exist", exchange, label), NULL);
			break;
	}
	return NULL;				/* keep the compiler quiet */
}

/* ----------------------------------------------------------------------
 * SQL functions
 * ----------------------------------------------------------------------
 */

/* Lowercase hex of n bytes */
static text *
hex_text(const uint8 *b, int n)
{
	static const char digits[] = "0123456789abcdef";
	text	   *t = palloc(VARHDRSZ + 2 * n);
	char	   *p = VARDATA(t);

	SET_VARSIZE(t, VARHDRSZ + 2 * n);
	for (int i = 0; i < n; i++)
	{
		p[2 * i] = digits[b[i] >> 4];
		p[2 * i + 1] = digits[b[i] & 15];
	}
	return t;
}

/*
 * Refuse a secret already stored for another environment: its
 * fingerprint under every key version in the ring is compared with the
 * stored fingerprints (each made under one version).  scratch->plain[len]
 * holds the secret.  Returns the fingerprint under the newest version,
 * which is in scratch->key when this is called.
 */
static bytea *
check_reuse(int len, const char *environment, int64 except_id)
{
	uint32		versions[TG_KEYRING_MAX_VERSIONS];
	int			n = tg_keyring_versions(versions, TG_KEYRING_MAX_VERSIONS);
	Datum	   *vers = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *fps = palloc(sizeof(Datum) * Max(n, 1));
	int			m = 0;
	bytea	   *newest_fp = NULL;
	uint32		newest = scratch->key.version;	/* no copy of its subkeys */
	TgSqlArgs	args = {0};

	for (int i = 0; i < n; i++)
	{
		bytea	   *fp;

		if (!tg_keyring_get(versions[i], &scratch->key))
			continue;			/* removed by a reload meanwhile */
		fp = palloc(VARHDRSZ + 32);
		SET_VARSIZE(fp, VARHDRSZ + 32);
		hmac_sha256(scratch->key.subkeys[TG_KEY_FINGERPRINT], TG_KEY_LEN,
					scratch->plain, len, (uint8 *) VARDATA(fp));
		vers[m] = Int32GetDatum((int32) versions[i]);
		fps[m] = PointerGetDatum(fp);
		m++;
		if (versions[i] == newest)
			newest_fp = fp;
	}
	/* back to the newest version, which encrypts */
	if (newest_fp == NULL || !tg_keyring_get(newest, &scratch->key))
		ereport(ERROR,
				(errcode(ERRCODE_TG_KEY_VERSION_MISSING),
				 errmsg("key version %u left the key ring during this call", newest),
				 errhint("The key ring was reloaded meanwhile; try again.")));

	tg_sql_arg(&args, INT4ARRAYOID,
			   PointerGetDatum(construct_array(vers, m, INT4OID, 4, true, TYPALIGN_INT)));
	tg_sql_arg(&args, BYTEAARRAYOID,
			   PointerGetDatum(construct_array(fps, m, BYTEAOID, -1, false, TYPALIGN_INT)));
	tg_sql_arg_text(&args, environment);
	tg_sql_arg(&args, INT8OID, Int64GetDatum(except_id));
	if (tg_sql("SELECT exchange, label, environment FROM trading_guard.credential_store s"
			   " WHERE environment OPERATOR(pg_catalog.<>) $3 AND id OPERATOR(pg_catalog.<>) $4"
			   "   AND EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
			   "                            AS u(version, fingerprint)"
			   "                WHERE u.version OPERATOR(pg_catalog.=) s.fingerprint_version"
			   "                  AND u.fingerprint OPERATOR(pg_catalog.=) s.secret_fingerprint)"
			   " LIMIT 1",
			   &args, TG_SQL_READ_ONLY, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_SECRET_REUSED),
				 errmsg("this secret is already stored for environment %s",
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3)),
				 errdetail("It was recognised by its keyed fingerprint; nothing was decrypted."),
				 errhint("Use a separate exchange API key for each environment.")));
	return newest_fp;
}

/* A secret argument encrypted for one credential, and what the row keeps of it */
typedef struct SealedSecret
{
	bytea	   *envelope;
	bytea	   *fingerprint;	/* under the same (newest) key version */
	int32		version;
	char		key_id[TG_KEY_ID_LEN + 1];
} SealedSecret;

/*
 * Append the five parameters a row keeps of a sealed secret: secret,
 * key_version, key_id, secret_fingerprint, fingerprint_version.
 */
static void
sealed_args(TgSqlArgs *args, const SealedSecret *sealed)
{
	tg_sql_arg(args, BYTEAOID, PointerGetDatum(sealed->envelope));
	tg_sql_arg(args, INT4OID, Int32GetDatum(sealed->version));
	tg_sql_arg_text(args, sealed->key_id);
	tg_sql_arg(args, BYTEAOID, PointerGetDatum(sealed->fingerprint));
	tg_sql_arg(args, INT4OID, Int32GetDatum(sealed->version));
}

/*
 * Encrypt argument n, the API secret of credential id, under the newest
 * key version, after refusing a secret stored for another environment.
 * The plaintext and the key are wiped before this returns (and on error).
 */
static void
seal_secret_arg(FunctionCallInfo fcinfo, int n, int64 id, const char *exchange,
				const char *label, const char *environment, SealedSecret *out)
{
	int			len;

	crypto_begin();
	len = secret_arg(fcinfo, n);
	if (!tg_keyring_get(0, &scratch->key))
		tg_keyring_require();	/* emptied meanwhile: say why */
	out->fingerprint = check_reuse(len, environment, id);
	out->envelope = seal_secret(len, id, exchange, label, environment);
	out->version = (int32) scratch->key.version;
	strlcpy(out->key_id, scratch->key.key_id, sizeof(out->key_id));
	crypto_end();
}

/*
 * SQL: store_credential(exchange text, label text, api_key text,
 *        api_secret text, environment text, rotate_after interval)
 *        returns bigint
 */
PG_FUNCTION_INFO_V1(tg_store_credential);
Datum
tg_store_credential(PG_FUNCTION_ARGS)
{
	char	   *exchange,
			   *label,
			   *api_key;
	const char *environment;
	int64		id;
	SealedSecret sealed;
	TgSqlArgs	dup = {0};
	TgSqlArgs	args = {0};

	tg_keyring_require();
	exchange = text_arg(fcinfo, 0, "exchange", VAULT_MAX_NAME);
	label = text_arg(fcinfo, 1, "label", VAULT_MAX_NAME);
	api_key = text_arg(fcinfo, 2, "api_key", 1024);
	environment = environment_arg(fcinfo, 4);
	if (PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rotate_after must not be null")));

	tg_sql_connect();
	tg_sql_arg_text(&dup, exchange);
	tg_sql_arg_text(&dup, label);
	tg_sql_arg_text(&dup, environment);
	if (tg_sql("SELECT 1 FROM trading_guard.credential_store"
			   " WHERE exchange OPERATOR(pg_catalog.=) $1 AND label OPERATOR(pg_catalog.=) $2"
			   "   AND environment OPERATOR(pg_catalog.=) $3 AND revoked_at IS NULL",
			   &dup, TG_SQL_READ_ONLY, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_CREDENTIAL_EXISTS),
				 errmsg("credential %s/%s already exists in environment %s", exchange, label, environment),
				 errhint("Replace its secret with rotate_credential(), or revoke it first.")));

	(void) tg_sql("SELECT pg_catalog.nextval('trading_guard.credential_store_id_seq'::pg_catalog.regclass)",
				  NULL, 0, SPI_OK_SELECT);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool){false}));

	seal_secret_arg(fcinfo, 3, id, exchange, label, environment, &sealed);

	tg_sql_arg(&args, INT8OID, Int64GetDatum(id));
	tg_sql_arg_text(&args, exchange);
	tg_sql_arg_text(&args, label);
	tg_sql_arg_text(&args, environment);
	tg_sql_arg_text(&args, api_key);
	sealed_args(&args, &sealed);
	tg_sql_arg(&args, INTERVALOID, PG_GETARG_DATUM(5));

	(void) tg_sql("INSERT INTO trading_guard.credential_store"
				  " (id, exchange, label, environment, api_key, secret, key_version, key_id,"
				  "  secret_fingerprint, fingerprint_version, rotate_after)"
				  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
				  &args, 0, SPI_OK_INSERT);
	record_event("VAULT STORE", id, exchange, label, environment,
				 sealed.version, NULL);
	tg_sql_finish();
	PG_RETURN_INT64(id);
}

/*
 * SQL: rotate_credential(exchange text, label text, api_key text,
 *        api_secret text) returns void
 * A new API key and secret for the credential of this environment, under
 * the newest key version.
 */
PG_FUNCTION_INFO_V1(tg_rotate_credential);
Datum
tg_rotate_credential(PG_FUNCTION_ARGS)
{
	char	   *exchange,
			   *label,
			   *api_key;
	const char *environment = environment_name();
	int64		id;
	SealedSecret sealed;
	TgSqlArgs	find = {0};
	TgSqlArgs	args = {0};
	bool		isnull;

	tg_keyring_require();
	exchange = text_arg(fcinfo, 0, "exchange", VAULT_MAX_NAME);
	label = text_arg(fcinfo, 1, "label", VAULT_MAX_NAME);
	api_key = text_arg(fcinfo, 2, "api_key", 1024);

	tg_sql_connect();
	tg_sql_arg_text(&find, exchange);
	tg_sql_arg_text(&find, label);
	tg_sql_arg_text(&find, environment);
	if (tg_sql("SELECT id FROM trading_guard.credential_store"
			   " WHERE exchange OPERATOR(pg_catalog.=) $1 AND label OPERATOR(pg_catalog.=) $2"
			   "   AND environment OPERATOR(pg_catalog.=) $3 AND revoked_at IS NULL"
			   " FOR UPDATE",
			   &find, 0, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_CREDENTIAL_NOT_FOUND),
				 errmsg("credential %s/%s does not exist in environment %s", exchange, label, environment),
				 errhint("Store it with store_credential().")));
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	seal_secret_arg(fcinfo, 3, id, exchange, label, environment, &sealed);
	tg_sql_arg(&args, INT8OID, Int64GetDatum(id));
	tg_sql_arg_text(&args, api_key);
	sealed_args(&args, &sealed);

	(void) tg_sql("UPDATE trading_guard.credential_store"
				  "   SET api_key = $2, secret = $3, key_version = $4, key_id = $5,"
				  "       secret_fingerprint = $6, fingerprint_version = $7, rotated_at = pg_catalog.now()"
				  " WHERE id OPERATOR(pg_catalog.=) $1",
				  &args, 0, SPI_OK_UPDATE);
	record_event("VAULT ROTATE", id, exchange, label, environment,
				 sealed.version, NULL);
	tg_sql_finish();
	PG_RETURN_VOID();
}

/*
 * SQL: revoke_credential(exchange text, label text, environment text)
 *        returns boolean
 * Marks the credential revoked and destroys its ciphertext; false if there
 * was no such active credential.
 */
PG_FUNCTION_INFO_V1(tg_revoke_credential);
Datum
tg_revoke_credential(PG_FUNCTION_ARGS)
{
	char	   *exchange = text_arg(fcinfo, 0, "exchange", VAULT_MAX_NAME);
	char	   *label = text_arg(fcinfo, 1, "label", VAULT_MAX_NAME);
	const char *environment = environment_arg(fcinfo, 2);
	TgSqlArgs	args = {0};
	int64		id = 0;
	bool		isnull;
	bytea	   *empty = palloc(VARHDRSZ);

	tg_require_preload("revoke_credential");
	SET_VARSIZE(empty, VARHDRSZ);
	tg_sql_connect();
	tg_sql_arg_text(&args, exchange);
	tg_sql_arg_text(&args, label);
	tg_sql_arg_text(&args, environment);
	tg_sql_arg(&args, BYTEAOID, PointerGetDatum(empty));	/* the ciphertext, destroyed */
	if (tg_sql("UPDATE trading_guard.credential_store"
			   "   SET revoked_at = pg_catalog.now(), revoked_by = pg_catalog.session_user(),"
			   "       secret = $4"
			   " WHERE exchange OPERATOR(pg_catalog.=) $1 AND label OPERATOR(pg_catalog.=) $2"
			   "   AND environment OPERATOR(pg_catalog.=) $3 AND revoked_at IS NULL"
			   " RETURNING id",
			   &args, 0, SPI_OK_UPDATE_RETURNING) > 0)
	{
		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		record_event("VAULT REVOKE", id, exchange, label, environment, 0, NULL);
		ereport(LOG,
				(errmsg("trading_guard: credential " INT64_FORMAT " (%s/%s, %s) revoked by %s",
						id, exchange, label, environment, caller_description()),
				 errhidestmt(true)));
	}
	tg_sql_finish();
	PG_RETURN_BOOL(id != 0);
}

/* Reveal the active credential e: its secret as text */
static text *
reveal(CredEntry *e, const char *exchange, const char *label)
{
	int			len;
	text	   *result;
	int64		id = e->id;
	uint32		version;

	crypto_begin();
	len = open_secret(e->envelope, e->envelope_len, id, e->key_id,
					  e->aad.data ? &e->aad : NULL);
	version = envelope_version(e->envelope);
	result = cstring_to_text_with_len((char *) scratch->plain, len);
	crypto_end();

	tg_sql_connect();
	/* (e may be stale now: record_event can take in invalidations) */
	record_event("VAULT REVEAL", id, exchange, label, environment_name(), version, NULL);
	tg_sql_finish();
	count_use(id, USAGE_REVEAL);
	vault_event(TG_EV_VAULT_REVEAL, TG_OUT_ALLOWED, "reveal", id, exchange, label,
				"revealed", 0);
	ereport(LOG,
			(errmsg("trading_guard: credential " INT64_FORMAT " (%s/%s, %s) revealed to %s",
					id, exchange, label, environment_name(), caller_description()),
			 errhidestmt(true)));
	return result;
}

/*
 * Refuse a reveal on a server in recovery (a hot standby), before anything
 * is decrypted: every reveal writes its audit row, which needs a
 * transaction id, and a standby cannot assign one.  Logged like the other
 * refused reveals; what names the credential in that log line.  Signing
 * records nothing and works on a standby.
 */
static void
reveal_require_primary(const char *what)
{
	if (!RecoveryInProgress())
		return;
	vault_event(TG_EV_VAULT_REFUSED, TG_OUT_REFUSED, "reveal", 0, NULL, NULL,
				psprintf("reveal of %s on a standby", what), ERRCODE_READ_ONLY_SQL_TRANSACTION);
	ereport(LOG,
			(errmsg("trading_guard: reveal of credential %s refused to %s: the server is a standby",
					what, caller_description()),
			 errhidestmt(true)));
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("cannot reveal a credential on a standby"),
			 errdetail("Every reveal is recorded in trading_guard.audit_log, and a server in recovery cannot write."),
			 errhint("Reveal on the primary; sign_request works on a standby.")));
}

/* SQL: reveal_credential(exchange text, label text) returns text */
PG_FUNCTION_INFO_V1(tg_reveal_credential);
Datum
tg_reveal_credential(PG_FUNCTION_ARGS)
{
	char	   *exchange = text_arg(fcinfo, 0, "exchange", VAULT_MAX_NAME);
	char	   *label = text_arg(fcinfo, 1, "label", VAULT_MAX_NAME);

	reveal_require_primary(psprintf("%s/%s", exchange, label));
	tg_keyring_require();
	PG_RETURN_TEXT_P(reveal(cred_require("reveal", exchange, label), exchange, label));
}

/* SQL: reveal_credential(id bigint) returns text */
PG_FUNCTION_INFO_V1(tg_reveal_credential_by_id);
Datum
tg_reveal_credential_by_id(PG_FUNCTION_ARGS)
{
	int64		id;
	TgSqlArgs	args = {0};
	char	   *exchange = NULL;
	char	   *label = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be null")));
	id = PG_GETARG_INT64(0);
	reveal_require_primary(psprintf(INT64_FORMAT, id));
	tg_keyring_require();

	tg_sql_connect();
	tg_sql_arg(&args, INT8OID, Int64GetDatum(id));
	if (tg_sql("SELECT exchange, label FROM trading_guard.credential_store"
			   " WHERE id OPERATOR(pg_catalog.=) $1",
			   &args, TG_SQL_READ_ONLY, SPI_OK_SELECT) > 0)
	{
		exchange = MemoryContextStrdup(CurTransactionContext,
									   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		label = MemoryContextStrdup(CurTransactionContext,
									SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	}
	tg_sql_finish();
	if (exchange == NULL)
		refuse("reveal", 0, NULL, NULL, ERRCODE_TG_CREDENTIAL_NOT_FOUND,
			   psprintf("credential " INT64_FORMAT " does not exist", id), NULL);

	{
		CredEntry  *e = cred_require("reveal", exchange, label);

		if (e->id != id)		/* that id is revoked; another row is active */
			refuse("reveal", id, exchange, label, ERRCODE_TG_CREDENTIAL_REVOKED,
				   psprintf("credential " INT64_FORMAT " has been revoked", id), NULL);
		PG_RETURN_TEXT_P(reveal(e, exchange, label));
	}
}

/*
 * A signature: the credential, then the halts and the signing limits
 * (which refuse before anything is decrypted), then the HMAC.
 */
static Datum
sign_request(FunctionCallInfo fcinfo, TgSignPurpose purpose)
{
	char	   *exchange = text_arg(fcinfo, 0, "exchange", VAULT_MAX_NAME);
	char	   *label = text_arg(fcinfo, 1, "label", VAULT_MAX_NAME);
	text	   *payload;
	CredEntry  *e;
	int			len;
	uint8		mac[32];
	int64		id;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be null")));
	payload = PG_GETARG_TEXT_PP(2);
	tg_keyring_require();
	e = cred_require("signature", exchange, label);	/* takes in invalidations */
	id = e->id;
	tg_halt_check_sign(exchange, label, VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload),
					   purpose);
	tg_limits_check_sign(exchange, label);

	crypto_begin();
	len = open_secret(e->envelope, e->envelope_len, id, e->key_id,
					  e->aad.data ? &e->aad : NULL);
	hmac_sha256(scratch->plain, len, (const uint8 *) VARDATA_ANY(payload),
				VARSIZE_ANY_EXHDR(payload), mac);
	crypto_end();

	count_use(id, USAGE_SIGN);
	PG_RETURN_TEXT_P(hex_text(mac, sizeof(mac)));
}

/*
 * SQL: sign_request(exchange text, label text, payload text) returns text
 * Lowercase hex HMAC-SHA256 of the payload with the credential's secret,
 * as Binance and most exchanges sign requests.
 */
PG_FUNCTION_INFO_V1(tg_sign_request);
Datum
tg_sign_request(PG_FUNCTION_ARGS)
{
	return sign_request(fcinfo, TG_PURPOSE_ORDER);
}

/*
 * SQL: sign_request(exchange text, label text, payload text, purpose text)
 *      returns text
 * The same, declaring what the request is for: order (the default of the
 * three-argument form), cancel or read.  A halted exchange signs only
 * cancels and reads (src/halt.c).
 */
PG_FUNCTION_INFO_V1(tg_sign_request_purpose);
Datum
tg_sign_request_purpose(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("purpose must not be null")));
	return sign_request(fcinfo,
						tg_sign_purpose_from_text(text_to_cstring(PG_GETARG_TEXT_PP(3))));
}

/*
 * SQL: rekey(batch_size int) returns table (rekeyed bigint,
 *        remaining bigint, key_version int)
 * Re-encrypt up to batch_size credentials stored under an older key
 * version to the newest one (rows locked by others are skipped, to be
 * picked up by a later call).  Call it until remaining is 0.
 */
PG_FUNCTION_INFO_V1(tg_rekey);
Datum
tg_rekey(PG_FUNCTION_ARGS)
{
	int32		batch = PG_ARGISNULL(0) ? 1000 : PG_GETARG_INT32(0);
	TupleDesc	tupdesc;
	Datum		out[3];
	bool		outnulls[3] = {false, false, false};
	uint32		newest;
	int64		done = 0;
	int64		remaining;
	TgSqlArgs	args = {0};
	TgSqlArgs	count_args = {0};
	SPITupleTable *rows;
	uint64		nrows;
	bool		isnull;

	if (batch < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be at least 1")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tg_keyring_require();

	crypto_begin();
	if (!tg_keyring_get(0, &scratch->key))
		tg_keyring_require();
	newest = scratch->key.version;

	tg_sql_connect();
	tg_sql_arg(&args, INT4OID, Int32GetDatum((int32) newest));
	tg_sql_arg(&args, INT4OID, Int32GetDatum(batch));
	nrows = tg_sql("SELECT id, exchange, label, environment, secret, key_id"
				   "  FROM trading_guard.credential_store"
				   " WHERE revoked_at IS NULL AND key_version OPERATOR(pg_catalog.<>) $1"
				   " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
				   &args, 0, SPI_OK_SELECT);
	rows = SPI_tuptable;

	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	tup = rows->vals[i];
		int64		id = DatumGetInt64(SPI_getbinval(tup, rows->tupdesc, 1, &isnull));
		char	   *exchange = SPI_getvalue(tup, rows->tupdesc, 2);
		char	   *label = SPI_getvalue(tup, rows->tupdesc, 3);
		char	   *environment = SPI_getvalue(tup, rows->tupdesc, 4);
		bytea	   *old = DatumGetByteaPP(SPI_getbinval(tup, rows->tupdesc, 5, &isnull));
		char	   *key_id = SPI_getvalue(tup, rows->tupdesc, 6);
		int			len;
		bytea	   *envelope;
		bytea	   *fp = palloc(VARHDRSZ + 32);
		TgSqlArgs	update = {0};
		SealedSecret sealed;

		len = open_named_secret((const uint8 *) VARDATA_ANY(old), VARSIZE_ANY_EXHDR(old),
								id, exchange, label, environment, key_id);
		if (!tg_keyring_get(newest, &scratch->key))
			ereport(ERROR,
					(errcode(ERRCODE_TG_KEY_VERSION_MISSING),
					 errmsg("key version %u left the key ring during rekey()", newest)));
		envelope = seal_secret(len, id, exchange, label, environment);
		SET_VARSIZE(fp, VARHDRSZ + 32);
		hmac_sha256(scratch->key.subkeys[TG_KEY_FINGERPRINT], TG_KEY_LEN,
					scratch->plain, len, (uint8 *) VARDATA(fp));
		OPENSSL_cleanse(scratch->plain, len);

		sealed.envelope = envelope;
		sealed.version = (int32) newest;
		strlcpy(sealed.key_id, scratch->key.key_id, sizeof(sealed.key_id));
		sealed.fingerprint = fp;
		tg_sql_arg(&update, INT8OID, Int64GetDatum(id));
		sealed_args(&update, &sealed);
		(void) tg_sql("UPDATE trading_guard.credential_store"
					  "   SET secret = $2, key_version = $3, key_id = $4,"
					  "       secret_fingerprint = $5, fingerprint_version = $6"
					  " WHERE id OPERATOR(pg_catalog.=) $1",
					  &update, 0, SPI_OK_UPDATE);
		done++;
	}
	crypto_end();

	/* not read-only: a new snapshot, which sees this call's updates */
	tg_sql_arg(&count_args, INT4OID, Int32GetDatum((int32) newest));
	(void) tg_sql("SELECT pg_catalog.count(*) FROM trading_guard.credential_store"
				  " WHERE revoked_at IS NULL AND key_version OPERATOR(pg_catalog.<>) $1",
				  &count_args, 0, SPI_OK_SELECT);
	remaining = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (done > 0)
		record_event("VAULT REKEY", 0, NULL, NULL, NULL, (int32) newest,
					 psprintf(INT64_FORMAT " re-encrypted, " INT64_FORMAT " remaining", done, remaining));
	tg_sql_finish();

	out[0] = Int64GetDatum(done);
	out[1] = Int64GetDatum(remaining);
	out[2] = Int32GetDatum((int32) newest);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, out, outnulls)));
}

/*
 * SQL: credential_usage() returns table (credential_id bigint,
 *        signatures bigint, reveals bigint, refusals bigint,
 *        last_used_at timestamptz)
 * This database's counters since the server started.
 */
PG_FUNCTION_INFO_V1(tg_credential_usage);
Datum
tg_credential_usage(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	VaultUsage *copy;
	int			n = 0;

	tg_require_preload("credential_usage");
	InitMaterializedSRF(fcinfo, 0);
	copy = palloc(sizeof(VaultUsage) * VAULT_USAGE_SLOTS);
	SpinLockAcquire(&vault_shared->mutex);
	for (int i = 0; i < VAULT_USAGE_SLOTS; i++)
	{
		if (vault_shared->usage[i].dbid == MyDatabaseId)
			copy[n++] = vault_shared->usage[i];
	}
	SpinLockRelease(&vault_shared->mutex);

	for (int i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		if (copy[i].credential_id == 0)
			nulls[0] = true;	/* refusals naming no credential */
		values[0] = Int64GetDatum(copy[i].credential_id);
		values[1] = Int64GetDatum((int64) copy[i].signatures);
		values[2] = Int64GetDatum((int64) copy[i].reveals);
		values[3] = Int64GetDatum((int64) copy[i].refusals);
		if (copy[i].last_used != 0)
			values[4] = TimestampTzGetDatum(copy[i].last_used);
		else
			nulls[4] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

void
tg_vault_init(void)
{
	DefineCustomEnumVariable("trading_guard.environment",
							 "This database's environment: credentials of another one are neither revealed nor used.",
							 NULL,
							 &tg_environment,
							 TG_ENV_DEV,
							 environment_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	if (process_shared_preload_libraries_in_progress)
		tg_shmem_register("trading_guard vault usage", sizeof(VaultShared),
						  vault_shmem_init);
}
