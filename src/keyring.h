/*-------------------------------------------------------------------------
 *
 * keyring.h
 *	  The key ring: numbered 256-bit master keys loaded from outside SQL,
 *	  and the subkeys derived from each, for the parts of trading_guard
 *	  that encrypt, fingerprint or (later) seal.
 *
 * The API other parts use:
 *
 *	tg_keyring_get(0, &kv)			the newest version's subkeys
 *	tg_keyring_get(n, &kv)			version n's (false if it is not loaded)
 *	kv->subkeys[TG_KEY_ENCRYPTION]	a subkey for one purpose
 *
 * kv must point into memory from tg_secure_alloc() (locked, out of core
 * dumps); the caller wipes it with OPENSSL_cleanse when done.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_KEYRING_H
#define TG_KEYRING_H

#define TG_KEY_LEN			32		/* 256-bit keys and subkeys */
#define TG_KEY_ID_LEN		16		/* hex characters of a key's fingerprint */
#define TG_KEYRING_MAX_VERSIONS	32

typedef enum TgKeyPurpose
{
	TG_KEY_ENCRYPTION,			/* credential vault: AES-256-GCM */
	TG_KEY_FINGERPRINT,			/* vault: keyed fingerprints of secrets */
	TG_KEY_SEALING,				/* audit sealing (a later part) */
	TG_KEY_NUM_PURPOSES
} TgKeyPurpose;

typedef struct TgKeyVersion
{
	uint32		version;
	char		key_id[TG_KEY_ID_LEN + 1];	/* fingerprint of the master key */
	uint8		subkeys[TG_KEY_NUM_PURPOSES][TG_KEY_LEN];
} TgKeyVersion;

extern void tg_keyring_init(void);
extern bool tg_keyring_get(uint32 version, TgKeyVersion *kv);
extern int	tg_keyring_versions(uint32 *versions, int max);
extern void tg_keyring_require(void);
extern bool tg_keyring_loaded(void);
extern uint64 tg_keyring_generation(void);
extern void *tg_secure_alloc(Size size);

#endif							/* TG_KEYRING_H */
