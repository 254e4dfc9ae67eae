/*-------------------------------------------------------------------------
 *
 * events.h
 *	  Durable security events: what the guard, the vault and the key ring
 *	  decide, queued in shared memory by the process that decides it (which
 *	  may have no transaction, or one about to fail) and written to
 *	  trading_guard.security_events by a background worker in batches, each
 *	  batch recorded in the sealed audit trail.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_EVENTS_H
#define TG_EVENTS_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "conn_rules.h"

/* Keep event_type_names[] in events.c and README.md in step */
typedef enum TgEventType
{
	TG_EV_LOGIN,
	TG_EV_BAN,
	TG_EV_UNBAN,
	TG_EV_BAN_EXPIRED,
	TG_EV_VAULT_REFUSED,
	TG_EV_VAULT_REVEAL,
	TG_EV_VAULT_SIGN,
	TG_EV_KEY_RING,
	TG_EV_CONFIG,
	TG_EV_PURGE,
	TG_EV_HALT,					/* a halt set or lifted, or an order or
								 * signature it refused */
	TG_EV_RATE_LIMIT,			/* an order or signature a limit refused */
	TG_EV_REVOKE_ALL,			/* revoke_all_credentials() */
	TG_EV_VERIFY,				/* a verify_audit() / verify_security_events() run */
	TG_EV_NUM_TYPES
} TgEventType;

typedef enum TgEventOutcome
{
	TG_OUT_ALLOWED,
	TG_OUT_REFUSED,
	TG_OUT_WOULD_REFUSE,
	TG_OUT_ERROR,
	TG_OUT_INFO,				/* neither: a ban, a change, a summary */
	TG_OUT_NUM
} TgEventOutcome;

#define TG_EV_NAME_LEN		64	/* NAMEDATALEN, without depending on it here */
#define TG_EV_TLS_VERSION_LEN 16
#define TG_EV_TLS_CIPHER_LEN 64
#define TG_EV_SUBJECT_LEN	256
#define TG_EV_REASON_LEN	200
#define TG_EV_KEY_ID_LEN	40
#define TG_EV_DETAIL_LEN	600

/*
 * One event as it waits in the queue.  Strings are zero-terminated, valid
 * UTF-8 without control characters ("" = NULL); detail is "" or the text of
 * one JSON object (tg_event_detail builds it).  Never a password, secret or
 * key: only what README.md lists for the table's columns.
 */
typedef struct TgEvent
{
	TimestampTz time;
	int32		pid;
	uint8		type;			/* TgEventType */
	uint8		outcome;		/* TgEventOutcome */
	TgAddr		addr;			/* family 0: none (Unix socket, or not a
								 * connection's event) */
	int32		rule;			/* 0 = none */
	int32		key_version;	/* 0 = none */
	int64		credential_id;	/* 0 = none */
	char		role[TG_EV_NAME_LEN];
	char		database[TG_EV_NAME_LEN];
	char		application[TG_EV_NAME_LEN];
	char		tls_version[TG_EV_TLS_VERSION_LEN];
	char		tls_cipher[TG_EV_TLS_CIPHER_LEN];
	char		cert_subject[TG_EV_SUBJECT_LEN];
	char		reason[TG_EV_REASON_LEN];
	char		exchange[TG_EV_NAME_LEN];
	char		label[TG_EV_NAME_LEN];
	char		key_id[TG_EV_KEY_ID_LEN];
	char		detail[TG_EV_DETAIL_LEN];
} TgEvent;

extern void tg_events_init(void);
extern PGDLLEXPORT void tg_events_worker_main(Datum arg);

/*
 * Start an event: zeroes it, sets type, outcome, time and pid, and, in a
 * backend with a client connection, the client's address, TLS details and
 * certificate subject, and the session's role, database and application
 * name where they are known.  Callable without a transaction or PGPROC.
 */
extern void tg_event_start(TgEvent *ev, TgEventType type, TgEventOutcome outcome);

/* Copy a string into an event field, escaped as connection_events does */
extern void tg_event_copy(char *dst, const char *src, size_t len);
#define tg_event_set(ev, field, src) tg_event_copy((ev)->field, (src), sizeof((ev)->field))

/* Append "key": value pairs to ev->detail (a JSON object); value is text */
extern void tg_event_detail(TgEvent *ev, const char *key, const char *value);
extern void tg_event_detail_int(TgEvent *ev, const char *key, int64 value);

/*
 * Queue the event for the worker.  Never blocks on a full queue: the event
 * is dropped and counted.  Returns false when it was dropped (or events are
 * off: the library is not preloaded).  Callable without a transaction or
 * PGPROC, and from the postmaster.
 */
extern void tg_event_detail_json(TgEvent *ev, const char *object);

extern bool tg_event_emit(const TgEvent *ev);
extern void tg_event_emit_at_commit(const TgEvent *ev);
extern void tg_event_verify(const char *what, bool ok, int64 rows, const char *problem);

/* Is a login event with this outcome to be a row?  (log_allowed_logins) */
extern bool tg_event_login_wanted(TgEventOutcome outcome);

/* Count an allowed login that is not a row of its own (refused_only) */
extern void tg_event_count_login(const TgEvent *ev);

#endif							/* TG_EVENTS_H */
