/*-------------------------------------------------------------------------
 *
 * conn_state.h
 *	  What the connection guard keeps in shared memory: counters per
 *	  decision and reason, a ring of recent events, and per-address failure
 *	  counts and bans.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_CONN_STATE_H
#define TG_CONN_STATE_H

#include "datatype/timestamp.h"

#include "conn_rules.h"

typedef enum TgConnDecision
{
	TG_CONN_ALLOWED,
	TG_CONN_REFUSED,
	TG_CONN_WOULD_REFUSE,		/* connection_policy = log */
	TG_CONN_NUM_DECISIONS
} TgConnDecision;

/* Keep reason_names[] in conn_state.c and README.md in step */
typedef enum TgConnReason
{
	/* allowed */
	TG_REASON_LOCAL,
	TG_REASON_RULE,
	TG_REASON_NO_ALLOWLIST,
	/* refused by trading_guard */
	TG_REASON_LOCAL_NOT_ALLOWED,
	TG_REASON_BANNED,
	TG_REASON_RULES_INVALID,
	TG_REASON_NO_TLS,
	TG_REASON_TLS_VERSION,
	TG_REASON_NO_MATCHING_RULE,
	TG_REASON_CLIENT_CERT_REQUIRED,
	/* refused by PostgreSQL itself, seen in the server log */
	TG_REASON_HBA_REJECT,
	TG_REASON_HBA_NO_ENTRY,
	TG_REASON_PASSWORD,
	TG_REASON_CLIENT_CERT,
	TG_REASON_TLS_HANDSHAKE,
	TG_REASON_AUTH_FAILED,
	TG_CONN_NUM_REASONS
} TgConnReason;

/* One connection attempt, as the hooks saw it */
typedef struct TgConnAttempt
{
	TgAddr		addr;			/* family 0 for a Unix socket */
	const char *role;			/* may be NULL (TLS handshake failures) */
	const char *database;
	const char *application;
	bool		tls;			/* a TLS attempt (the handshake may have failed) */
	const char *ssl_version;	/* NULL without TLS */
	const char *ssl_cipher;
	bool		client_cert;
	TgConnDecision decision;
	TgConnReason reason;
	int			rule;			/* 1-based; 0 = none */
} TgConnAttempt;

extern void tg_conn_state_init(void);
extern void tg_conn_record(const TgConnAttempt *attempt, int max_failures,
						   int failure_window_s, int ban_time_s);
extern bool tg_conn_banned(const TgAddr *addr, TimestampTz *until);
extern char *tg_conn_escape_name(const char *name);
extern void tg_conn_copy_name(char *dst, const char *src, size_t len);
extern void tg_conn_report_expired_bans(void);

#endif							/* TG_CONN_STATE_H */
