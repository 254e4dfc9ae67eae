/*-------------------------------------------------------------------------
 *
 * events.c
 *	  Durable security events (trading_guard.security_events).
 *
 * Who decides what is worth keeping -- the connection guard in a backend
 * that has not authenticated yet, the log hook of a statement that fails,
 * the key ring in the postmaster -- often cannot write a table: there is no
 * transaction, or the one there is will roll back.  So every event goes
 * into a ring in shared memory (tg_event_emit: a spinlock and a copy, never
 * a wait), and one background worker, in trading_guard.events_database,
 * drains the ring every trading_guard.event_flush_interval into the table,
 * in one transaction per batch that also
 *
 *	- records the batch in trading_guard.security_event_batches (its id
 *	  range and the Merkle root of its rows' canonical bytes, as the sealer
 *	  hashes audit rows) and in an audit_log row of operation EVENTS, which
 *	  the sealer seals into the audit chain: verify_security_events()
 *	  checks the events against those records;
 *	- sends the alerts the settings ask for (NOTIFY trading_guard_alerts).
 *
 * The worker takes events off the ring only after its transaction
 * committed, so an error (the table missing, a full disk) loses nothing:
 * the ring keeps them and the worker retries.  A full ring drops the newest
 * events and counts them (security_event_queue); nothing ever waits for the
 * worker.  What a crash loses is what the ring held: at most one flush
 * interval's worth of events (README "Durable security events").
 *
 * The worker also produces the events nobody else is there to produce:
 * bans that expired, signatures counted per credential, allowed logins
 * counted per minute (log_allowed_logins = refused_only), and changes of
 * the settings at a reload.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "audit.h"
#include "conn_state.h"
#include "events.h"
#include "keyring.h"
#include "run_sql.h"
#include "seal.h"
#include "restore.h"
#include "shmem.h"
#include "trading_guard.h"
#include "vault.h"

#define TG_EV_DRAIN_MAX		1000	/* events per worker transaction */
#define TG_EV_LOGIN_SLOTS	128		/* allowed logins counted between flushes */
#define TG_EV_LOGIN_FLUSH_S 60		/* how often those counts become rows */
#define TG_EV_SWEEP_MS		1000	/* bans expired, signatures counted */
#define TG_EV_ERRLEN		256
#define TG_EV_MAX_FAILURES	3		/* a batch that fails this often is split */

static const char *const event_type_names[TG_EV_NUM_TYPES] = {
	"login", "ban", "unban", "ban_expired", "vault_refused", "vault_reveal",
	"vault_sign", "key_ring", "config", "purge", "halt", "rate_limit",
	"revoke_all", "verify"
};

static const char *const outcome_names[TG_OUT_NUM] = {
	"allowed", "refused", "would_refuse", "error", "info"
};

/* log_allowed_logins */
enum
{
	LOG_LOGINS_ALL,
	LOG_LOGINS_REFUSED_ONLY,
	LOG_LOGINS_NONE
};

static const struct config_enum_entry log_logins_options[] = {
	{"all", LOG_LOGINS_ALL, false},
	{"refused_only", LOG_LOGINS_REFUSED_ONLY, false},
	{"none", LOG_LOGINS_NONE, false},
	{NULL, 0, false}
};

/* allowed logins of one role, database and address, counted */
typedef struct TgLoginCount
{
	bool		used;
	TgAddr		addr;
	char		role[TG_EV_NAME_LEN];
	char		database[TG_EV_NAME_LEN];
	uint64		count;
	TimestampTz first;
	TimestampTz last;
} TgLoginCount;

typedef struct TgEventShared
{
	slock_t		mutex;
	uint64		head;			/* events ever queued (next slot: head % size) */
	uint64		tail;			/* events ever taken off by the worker */
	uint64		dropped;		/* dropped on a full queue */
	uint64		dropped_by_type[TG_EV_NUM_TYPES];
	uint64		written;		/* rows the worker committed */
	uint64		batches;
	TimestampTz last_drain;
	TimestampTz last_drop;
	TimestampTz started;		/* shared memory set up (a crash resets it) */
	int			worker_pid;
	Latch	   *worker_latch;
	bool		waiting_for_table;
	char		last_error[TG_EV_ERRLEN];
	TimestampTz last_error_at;
	TimestampTz logins_since;
	TgLoginCount logins[TG_EV_LOGIN_SLOTS];
	TgEvent		ring[FLEXIBLE_ARRAY_MEMBER];
} TgEventShared;

/* GUCs */
static int	event_queue_size = 8192;
static char *events_database = NULL;
static int	event_flush_interval = 100;
static int	log_allowed_logins = LOG_LOGINS_ALL;
static char *alert_events = NULL;
static int	alert_refused_logins = 20;

static TgEventShared *ev_shared = NULL;

/* backend-local: purge_security_events is deleting (the append-only guard) */
static bool purging = false;

static emit_log_hook_type prev_emit_log_hook = NULL;

/* ----------------------------------------------------------------------
 * Shared memory and the queue
 * ----------------------------------------------------------------------
 */

static Size
events_shmem_size(void)
{
	return add_size(offsetof(TgEventShared, ring),
					mul_size(event_queue_size, sizeof(TgEvent)));
}

static void
events_shmem_init(void *ptr, bool found)
{
	ev_shared = (TgEventShared *) ptr;
	if (found)
		return;
	memset(ev_shared, 0, offsetof(TgEventShared, ring));
	SpinLockInit(&ev_shared->mutex);
	ev_shared->started = GetCurrentTimestamp();
	ev_shared->logins_since = ev_shared->started;
}

bool
tg_event_emit(const TgEvent *ev)
{
	sigset_t	saved;
	bool		blocked;
	bool		queued = false;
	bool		wake = false;
	Latch	   *latch = NULL;

	if (ev_shared == NULL || event_queue_size <= 0)
		return false;

	blocked = tg_spin_acquire(&ev_shared->mutex, &saved);
	if (ev_shared->head - ev_shared->tail < (uint64) event_queue_size)
	{
		ev_shared->ring[ev_shared->head % event_queue_size] = *ev;
		/* the first event since the last drain wakes the worker */
		wake = ev_shared->head == ev_shared->tail;
		ev_shared->head++;
		queued = true;
	}
	else
	{
		ev_shared->dropped++;
		ev_shared->dropped_by_type[ev->type]++;
		ev_shared->last_drop = ev->time;
	}
	latch = ev_shared->worker_latch;
	tg_spin_release(&ev_shared->mutex, blocked, &saved);

	if (wake && latch != NULL)
		SetLatch(latch);
	return queued;
}

/* ----------------------------------------------------------------------
 * Building events
 * ----------------------------------------------------------------------
 */

void
tg_event_copy(char *dst, const char *src, size_t len)
{
	tg_conn_copy_name(dst, src, len);
}

void
tg_event_start(TgEvent *ev, TgEventType type, TgEventOutcome outcome)
{
	memset(ev, 0, sizeof(*ev));
	ev->time = GetCurrentTimestamp();
	ev->pid = MyProcPid;
	ev->type = (uint8) type;
	ev->outcome = (uint8) outcome;
	if (MyProcPort == NULL)
		return;
	(void) tg_addr_from_sockaddr(&MyProcPort->raddr.addr, &ev->addr);
	tg_event_set(ev, role, MyProcPort->user_name);
	tg_event_set(ev, database, MyProcPort->database_name);
	tg_event_set(ev, application, MyProcPort->application_name);
#ifdef USE_SSL
	if (MyProcPort->ssl_in_use)
	{
		tg_event_set(ev, tls_version, be_tls_get_version(MyProcPort));
		tg_event_set(ev, tls_cipher, be_tls_get_cipher(MyProcPort));
		if (MyProcPort->peer_cert_valid && MyProcPort->peer_dn)
			tg_event_set(ev, cert_subject, MyProcPort->peer_dn);
	}
#endif
}

/*
 * Append one member to the detail object, JSON-escaped by hand (this runs
 * where palloc may not be safe: the ClientHello callback).  A member that
 * does not fit is left out whole, so the detail stays valid JSON.
 */
static void
detail_append(TgEvent *ev, const char *key, const char *value, bool quote)
{
	char		buf[TG_EV_DETAIL_LEN];
	size_t		n = 0;
	size_t		cur = strlen(ev->detail);
	const char *parts[2] = {key, value};

#define PUT(c) do { if (n + 1 >= sizeof(buf)) return; buf[n++] = (c); } while (0)
	PUT(cur == 0 ? '{' : ',');
	for (int p = 0; p < 2; p++)
	{
		bool		q = p == 0 || quote;

		if (p == 1)
			PUT(':');
		if (q)
			PUT('"');
		for (const unsigned char *s = (const unsigned char *) parts[p]; *s; s++)
		{
			if (*s == '"' || *s == '\\')
			{
				PUT('\\');
				PUT(*s);
			}
			else if (*s < 0x20)
			{
				char		esc[8];

				snprintf(esc, sizeof(esc), "\\u%04x", *s);
				for (char *e = esc; *e; e++)
					PUT(*e);
			}
			else
				PUT(*s);
		}
		if (q)
			PUT('"');
	}
	PUT('}');
#undef PUT
	buf[n] = '\0';
	/* replace the closing brace of the object so far */
	if (cur > 0)
		cur--;
	if (cur + n >= sizeof(ev->detail))
		return;
	memcpy(ev->detail + cur, buf, n + 1);
}

void
tg_event_detail(TgEvent *ev, const char *key, const char *value)
{
	char		clean[TG_EV_DETAIL_LEN];

	tg_event_copy(clean, value ? value : "", sizeof(clean));
	detail_append(ev, key, clean, true);
}

void
tg_event_detail_int(TgEvent *ev, const char *key, int64 value)
{
	char		num[32];

	snprintf(num, sizeof(num), INT64_FORMAT, value);
	detail_append(ev, key, num, false);
}

/*
 * Set the whole detail to a JSON object given as text (from jsonb_out, so
 * valid JSON); one too long for the event is replaced by a note saying so.
 */
void
tg_event_detail_json(TgEvent *ev, const char *object)
{
	if (strlen(object) < sizeof(ev->detail))
		strlcpy(ev->detail, object, sizeof(ev->detail));
	else
		strlcpy(ev->detail, "{\"truncated\": true}", sizeof(ev->detail));
}

/*
 * Events of the current transaction that are queued only if it commits (a
 * halt that is rolled back never happened).  Kept in TopTransactionContext,
 * so an abort just forgets them.
 */
static List *commit_events = NIL;
static bool commit_callback_registered = false;

static void
commit_events_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			foreach(lc, commit_events)
				(void) tg_event_emit((const TgEvent *) lfirst(lc));
			commit_events = NIL;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			commit_events = NIL;
			break;
		case XACT_EVENT_PREPARE:
			/* the events would outlive the session that knows them */
			commit_events = NIL;
			break;
		default:
			break;
	}
}

/* Queue ev when the current transaction commits */
void
tg_event_emit_at_commit(const TgEvent *ev)
{
	MemoryContext old;

	if (!commit_callback_registered)
	{
		RegisterXactCallback(commit_events_callback, NULL);
		commit_callback_registered = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	{
		TgEvent    *copy = palloc(sizeof(TgEvent));

		memcpy(copy, ev, sizeof(TgEvent));
		commit_events = lappend(commit_events, copy);
	}
	MemoryContextSwitchTo(old);
}

/*
 * A verification run (verify_audit, verify_security_events) and what it
 * found: security_checklist() asks when the trail was last verified.
 */
void
tg_event_verify(const char *what, bool ok, int64 rows, const char *problem)
{
	TgEvent		ev;

	tg_event_start(&ev, TG_EV_VERIFY, ok ? TG_OUT_INFO : TG_OUT_ERROR);
	tg_event_set(&ev, role, GetUserNameFromId(GetUserId(), false));
	tg_event_set(&ev, reason, ok ? "intact" : problem);
	tg_event_detail(&ev, "function", what);
	tg_event_detail_int(&ev, "rows_checked", rows);
	(void) tg_event_emit(&ev);
}

bool
tg_event_login_wanted(TgEventOutcome outcome)
{
	return outcome != TG_OUT_ALLOWED || log_allowed_logins == LOG_LOGINS_ALL;
}

void
tg_event_count_login(const TgEvent *ev)
{
	sigset_t	saved;
	bool		blocked;
	TgLoginCount *slot = NULL;
	uint32		h;

	if (ev_shared == NULL || log_allowed_logins != LOG_LOGINS_REFUSED_ONLY)
		return;
	h = hash_bytes((const unsigned char *) ev->role, strlen(ev->role)) ^
		hash_bytes(ev->addr.bytes, sizeof(ev->addr.bytes));

	blocked = tg_spin_acquire(&ev_shared->mutex, &saved);
	for (int i = 0; i < TG_EV_LOGIN_SLOTS; i++)
	{
		TgLoginCount *c = &ev_shared->logins[(h + i) % TG_EV_LOGIN_SLOTS];

		if (!c->used)
		{
			c->used = true;
			c->addr = ev->addr;
			memcpy(c->role, ev->role, sizeof(c->role));
			memcpy(c->database, ev->database, sizeof(c->database));
			c->first = ev->time;
			slot = c;
			break;
		}
		if (memcmp(&c->addr, &ev->addr, sizeof(TgAddr)) == 0 &&
			strcmp(c->role, ev->role) == 0 && strcmp(c->database, ev->database) == 0)
		{
			slot = c;
			break;
		}
	}
	if (slot == NULL)
	{
		/* full: the last slot counts everyone else, without names */
		slot = &ev_shared->logins[TG_EV_LOGIN_SLOTS - 1];
		memset(&slot->addr, 0, sizeof(TgAddr));
		strlcpy(slot->role, "*", sizeof(slot->role));
		strlcpy(slot->database, "*", sizeof(slot->database));
	}
	slot->count++;
	slot->last = ev->time;
	tg_spin_release(&ev_shared->mutex, blocked, &saved);
}

/* ----------------------------------------------------------------------
 * The log hook: EXECUTE refused on a credential function
 * ----------------------------------------------------------------------
 */

static const char *const credential_functions[] = {
	"reveal_credential", "sign_request", "store_credential", "rotate_credential",
	"revoke_credential", "rekey", "credential_usage", NULL
};

/*
 * PostgreSQL checks EXECUTE before the function runs, so a role without the
 * grant is refused where the vault never sees it; the error report is
 * where we can.  (It reaches this hook when it goes to the server log:
 * log_min_messages at ERROR or below, the default.)
 */
static void
events_emit_log(ErrorData *edata)
{
	if (edata->elevel == ERROR && ev_shared != NULL &&
		edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE &&
		edata->message_id != NULL && edata->message != NULL &&
		strcmp(edata->message_id, "permission denied for function %s") == 0)
	{
		for (int i = 0; credential_functions[i]; i++)
		{
			const char *f = strstr(edata->message, credential_functions[i]);
			size_t		l = strlen(credential_functions[i]);

			if (f == NULL || (f[l] != '\0' && f[l] != '"' && f[l] != ' '))
				continue;
			{
				TgEvent		ev;

				tg_event_start(&ev, TG_EV_VAULT_REFUSED, TG_OUT_REFUSED);
				tg_event_set(&ev, reason, "permission denied");
				tg_event_detail(&ev, "function", credential_functions[i]);
				tg_event_detail(&ev, "sqlstate", "42501");
				tg_event_detail_int(&ev, "user_oid", GetUserId());
				(void) tg_event_emit(&ev);
			}
			break;
		}
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* ----------------------------------------------------------------------
 * The worker
 * ----------------------------------------------------------------------
 */

static volatile sig_atomic_t shutdown_requested = false;

static void
events_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	shutdown_requested = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
set_error(const char *msg)
{
	SpinLockAcquire(&ev_shared->mutex);
	if (msg)
	{
		strlcpy(ev_shared->last_error, msg, sizeof(ev_shared->last_error));
		ev_shared->last_error_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&ev_shared->mutex);
}

static bool
alert_wanted(const char *what)
{
	char	   *list;
	List	   *names;
	ListCell   *lc;
	bool		found = false;

	if (alert_events == NULL || alert_events[0] == '\0')
		return false;
	list = pstrdup(alert_events);
	if (!SplitIdentifierString(list, ',', &names))
		return false;
	foreach(lc, names)
	{
		if (strcmp((char *) lfirst(lc), what) == 0 || strcmp((char *) lfirst(lc), "all") == 0)
			found = true;
	}
	return found;
}

/* refused logins counted in the current minute, for the alert */
static TimestampTz refused_window_start = 0;
static int64 refused_in_window = 0;
static bool refused_alerted = false;

static void
append_json_str(StringInfo buf, const char *key, const char *value, bool first)
{
	if (!first)
		appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	if (value == NULL || value[0] == '\0')
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, value);
}

static void
append_json_int(StringInfo buf, const char *key, int64 value, bool null)
{
	appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	if (null)
		appendStringInfoString(buf, ":null");
	else
		appendStringInfo(buf, ":" INT64_FORMAT, value);
}

/* one event as a JSON object with the table's column names */
static void
event_json(StringInfo buf, const TgEvent *ev)
{
	char		addr[64] = "";

	if (ev->addr.family != 0)
		tg_addr_format(&ev->addr, addr, sizeof(addr));
	appendStringInfoChar(buf, '{');
	append_json_str(buf, "event_time", timestamptz_to_str(ev->time), true);
	append_json_str(buf, "event_type", event_type_names[ev->type], false);
	append_json_str(buf, "outcome", outcome_names[ev->outcome], false);
	append_json_str(buf, "role_name", ev->role, false);
	append_json_str(buf, "database_name", ev->database, false);
	append_json_str(buf, "client_addr", addr, false);
	append_json_str(buf, "application_name", ev->application, false);
	append_json_str(buf, "tls_version", ev->tls_version, false);
	append_json_str(buf, "tls_cipher", ev->tls_cipher, false);
	append_json_str(buf, "client_cert_subject", ev->cert_subject, false);
	append_json_str(buf, "reason", ev->reason, false);
	append_json_int(buf, "rule", ev->rule, ev->rule == 0);
	append_json_int(buf, "credential_id", ev->credential_id, ev->credential_id == 0);
	append_json_str(buf, "exchange", ev->exchange, false);
	append_json_str(buf, "label", ev->label, false);
	append_json_int(buf, "key_version", ev->key_version, ev->key_version == 0);
	append_json_str(buf, "key_id", ev->key_id, false);
	append_json_int(buf, "backend_pid", ev->pid, ev->pid == 0);
	appendStringInfoString(buf, ",\"detail\":");
	appendStringInfoString(buf, ev->detail[0] ? ev->detail : "null");
	appendStringInfoChar(buf, '}');
}

/* The alert a drained event sends, if any (a JSON object), or NULL */
static char *
event_alert(const TgEvent *ev, int64 id)
{
	const char *what = NULL;
	StringInfoData buf;
	char		addr[64] = "";

	switch ((TgEventType) ev->type)
	{
		case TG_EV_BAN:
			what = "ban";
			break;
		case TG_EV_KEY_RING:
			if (ev->outcome == TG_OUT_ERROR)
				what = "key_ring";
			break;
		case TG_EV_VAULT_REFUSED:
			what = "vault_refused";
			break;
		case TG_EV_LOGIN:
			if (ev->outcome == TG_OUT_REFUSED && alert_refused_logins > 0)
			{
				TimestampTz now = GetCurrentTimestamp();

				if (refused_window_start == 0 ||
					TimestampDifferenceExceeds(refused_window_start, now, 60 * 1000))
				{
					refused_window_start = now;
					refused_in_window = 0;
					refused_alerted = false;
				}
				refused_in_window++;
				if (refused_in_window >= alert_refused_logins && !refused_alerted)
				{
					refused_alerted = true;
					what = "refused_logins";
				}
			}
			break;
		default:
			break;
	}
	if (what == NULL || !alert_wanted(what))
		return NULL;

	if (ev->addr.family != 0)
		tg_addr_format(&ev->addr, addr, sizeof(addr));
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_json_str(&buf, "alert", what, true);
	append_json_int(&buf, "event_id", id, false);
	append_json_str(&buf, "event_time", timestamptz_to_str(ev->time), false);
	append_json_str(&buf, "event_type", event_type_names[ev->type], false);
	append_json_str(&buf, "client_addr", addr, false);
	append_json_str(&buf, "role_name", ev->role, false);
	append_json_str(&buf, "reason", ev->reason, false);
	if (strcmp(what, "refused_logins") == 0)
		append_json_int(&buf, "refused_last_minute", refused_in_window, false);
	if (ev->credential_id != 0)
		append_json_int(&buf, "credential_id", ev->credential_id, false);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static Oid
events_table_oid(void)
{
	Oid			nsp = get_namespace_oid("trading_guard", true);

	if (!OidIsValid(nsp) || !OidIsValid(get_extension_oid("trading_guard", true)))
		return InvalidOid;
	return get_relname_relid("security_events", nsp);
}

/*
 * The Merkle root of the events with ids in [first, last], read back as
 * stored (the latest snapshot: this transaction's own rows, which the
 * caller made visible with CommandCounterIncrement); their count in *n and
 * the latest event time in *max_time.
 */
static void
events_root(int64 first, int64 last, uint8 *root, int64 *n, TimestampTz *max_time)
{
	TgSqlArgs	args = {0};
	StringInfoData buf;
	TgSealLeaf *leaves;
	uint64		rows;

	tg_sql_arg(&args, INT8OID, Int64GetDatum(first));
	tg_sql_arg(&args, INT8OID, Int64GetDatum(last));
	rows = tg_sql("SELECT * FROM trading_guard.security_events"
				  " WHERE id OPERATOR(pg_catalog.>=) $1 AND id OPERATOR(pg_catalog.<=) $2"
				  " ORDER BY id",
				  &args, TG_SQL_LATEST, SPI_OK_SELECT);
	initStringInfo(&buf);
	leaves = palloc(sizeof(TgSealLeaf) * Max(rows, 1));
	*max_time = DT_NOBEGIN;
	for (uint64 i = 0; i < rows; i++)
	{
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum	   *values = palloc(sizeof(Datum) * desc->natts);
		bool	   *nulls = palloc(sizeof(bool) * desc->natts);
		int			t = tg_seal_attnum(desc, "event_time") - 1;

		heap_deform_tuple(SPI_tuptable->vals[i], desc, values, nulls);
		leaves[i].id = DatumGetInt64(values[tg_seal_attnum(desc, "id") - 1]);
		tg_seal_canonical(&buf, desc, values, nulls);
		tg_seal_leaf_hash(buf.data, buf.len, leaves[i].hash);
		if (!nulls[t] && DatumGetTimestampTz(values[t]) > *max_time)
			*max_time = DatumGetTimestampTz(values[t]);
	}
	tg_seal_merkle_root(leaves, (int64) rows, root);
	*n = (int64) rows;
}

/*
 * Write up to max queued events in one transaction.  Returns how many were
 * written (0: none queued, or the table is not there).
 */
static int
drain(int max, bool *no_table)
{
	TgEvent    *events;
	int			n;
	uint64		tail;
	StringInfoData json;
	TgSqlArgs	args = {0};
	int64		first_id = PG_INT64_MAX;
	int64		last_id = PG_INT64_MIN;
	int64		rows;
	uint8		root[TG_HASH_LEN];
	TimestampTz max_time;
	Oid			relid;
	List	   *alerts = NIL;
	ListCell   *lc;

	*no_table = false;
	SpinLockAcquire(&ev_shared->mutex);
	tail = ev_shared->tail;
	n = (int) Min(ev_shared->head - tail, (uint64) max);
	SpinLockRelease(&ev_shared->mutex);
	if (n == 0)
		return 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "trading_guard: writing security events");

	relid = events_table_oid();
	if (!OidIsValid(relid))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
		*no_table = true;
		return 0;
	}

	/* copy the events out; they stay queued until this commits */
	events = palloc(sizeof(TgEvent) * n);
	SpinLockAcquire(&ev_shared->mutex);
	for (int i = 0; i < n; i++)
		events[i] = ev_shared->ring[(tail + i) % event_queue_size];
	SpinLockRelease(&ev_shared->mutex);

	initStringInfo(&json);
	appendStringInfoChar(&json, '[');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&json, ',');
		event_json(&json, &events[i]);
	}
	appendStringInfoChar(&json, ']');

	tg_sql_connect();
	tg_sql_arg(&args, JSONBOID,
			   DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
	if (tg_sql("INSERT INTO trading_guard.security_events"
			   " (event_time, event_type, outcome, role_name, database_name, client_addr,"
			   "  application_name, tls_version, tls_cipher, client_cert_subject, reason,"
			   "  rule, credential_id, exchange, label, key_version, key_id, backend_pid, detail)"
			   " SELECT r.event_time, r.event_type, r.outcome, r.role_name, r.database_name,"
			   "  r.client_addr, r.application_name, r.tls_version, r.tls_cipher,"
			   "  r.client_cert_subject, r.reason, r.rule, r.credential_id, r.exchange,"
			   "  r.label, r.key_version, r.key_id, r.backend_pid, r.detail"
			   " FROM pg_catalog.jsonb_to_recordset($1) AS r(event_time timestamptz,"
			   "  event_type text, outcome text, role_name text, database_name text,"
			   "  client_addr inet, application_name text, tls_version text, tls_cipher text,"
			   "  client_cert_subject text, reason text, rule integer, credential_id bigint,"
			   "  exchange text, label text, key_version integer, key_id text,"
			   "  backend_pid integer, detail jsonb)"
			   " RETURNING id",
			   &args, TG_SQL_AS_OWNER, SPI_OK_INSERT_RETURNING) != (uint64) n)
		elog(ERROR, "trading_guard: security_events took a different number of rows");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1, &isnull));

		first_id = Min(first_id, id);
		last_id = Max(last_id, id);
	}

	/* key ids seen for the first time (security_checklist's master key age) */
	for (int i = 0; i < n; i++)
	{
		if (events[i].type != TG_EV_KEY_RING || events[i].key_id[0] == '\0' ||
			!OidIsValid(get_relname_relid("key_version_history",
										  get_rel_namespace(relid))))
			continue;
		(void) tg_sql("INSERT INTO trading_guard.key_version_history (key_id, version, first_loaded)"
					  " SELECT r.key_id, pg_catalog.max(r.key_version), pg_catalog.min(r.event_time)"
					  " FROM pg_catalog.jsonb_to_recordset($1) AS r(event_type text, key_id text,"
					  "  key_version integer, event_time timestamptz)"
					  " WHERE r.event_type OPERATOR(pg_catalog.=) 'key_ring'"
					  "  AND r.key_id IS NOT NULL AND r.key_version IS NOT NULL"
					  " GROUP BY r.key_id"
					  " ON CONFLICT (key_id) DO NOTHING",
					  &args, TG_SQL_AS_OWNER, SPI_OK_INSERT);
		break;
	}

	/* the batch record, and the audit row the sealer seals */
	CommandCounterIncrement();
	events_root(first_id, last_id, root, &rows, &max_time);
	if (rows != n)
		elog(ERROR, "trading_guard: security_events ids %lld to %lld hold %lld rows, not %d",
			 (long long) first_id, (long long) last_id, (long long) rows, n);
	{
		char	   *hex = tg_hex(root, TG_HASH_LEN);
		char	   *detail = psprintf("{\"first_id\": " INT64_FORMAT ", \"last_id\": " INT64_FORMAT
									  ", \"rows\": " INT64_FORMAT ", \"root\": \"%s\"}",
									  first_id, last_id, rows, hex);
		int64		audit_id;
		TgSqlArgs	bargs = {0};

		audit_id = tg_audit_write_event("EVENTS", relid, NULL, NULL,
										   DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																			  CStringGetDatum(detail))));
		tg_sql_arg(&bargs, INT8OID, Int64GetDatum(first_id));
		tg_sql_arg(&bargs, INT8OID, Int64GetDatum(last_id));
		tg_sql_arg(&bargs, INT8OID, Int64GetDatum(rows));
		tg_sql_arg(&bargs, TIMESTAMPTZOID, TimestampTzGetDatum(max_time));
		tg_sql_arg(&bargs, BYTEAOID,
				   DirectFunctionCall1(byteain, CStringGetDatum(psprintf("\\x%s", hex))));
		tg_sql_arg(&bargs, INT8OID, Int64GetDatum(audit_id));
		(void) tg_sql("INSERT INTO trading_guard.security_event_batches"
					  " (first_id, last_id, row_count, max_event_time, merkle_root, audit_id)"
					  " VALUES ($1, $2, $3, $4, $5, $6)",
					  &bargs, TG_SQL_AS_OWNER, SPI_OK_INSERT);
	}

	/* alerts, delivered when this commits */
	for (int i = 0; i < n; i++)
	{
		char	   *payload = event_alert(&events[i], first_id + i);

		if (payload)
			alerts = lappend(alerts, payload);
	}
	foreach(lc, alerts)
	{
		TgSqlArgs	nargs = {0};

		tg_sql_arg_text(&nargs, (char *) lfirst(lc));
		(void) tg_sql("SELECT pg_catalog.pg_notify('trading_guard_alerts', $1)",
					  &nargs, 0, SPI_OK_SELECT);
	}
	tg_sql_finish();

	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	SpinLockAcquire(&ev_shared->mutex);
	ev_shared->tail = tail + n;
	ev_shared->written += n;
	ev_shared->batches++;
	ev_shared->last_drain = GetCurrentTimestamp();
	ev_shared->waiting_for_table = false;
	SpinLockRelease(&ev_shared->mutex);
	return n;						/* (events went with the transaction) */
}

/* Drop the oldest queued event (one that failed too often), counted */
static void
drop_oldest(void)
{
	TgEvent		ev;

	SpinLockAcquire(&ev_shared->mutex);
	if (ev_shared->head == ev_shared->tail)
	{
		SpinLockRelease(&ev_shared->mutex);
		return;
	}
	ev = ev_shared->ring[ev_shared->tail % event_queue_size];
	ev_shared->tail++;
	ev_shared->dropped++;
	ev_shared->dropped_by_type[ev.type]++;
	ev_shared->last_drop = GetCurrentTimestamp();
	SpinLockRelease(&ev_shared->mutex);
	ereport(LOG,
			(errmsg("trading_guard: dropped a %s security event of %s that could not be written",
					event_type_names[ev.type], timestamptz_to_str(ev.time))));
}

/*
 * drain(), with an error caught and logged (and kept for
 * security_event_queue): returns how many events were written, or -1.
 */
static int
drain_or_log(int max, bool *no_table, MemoryContext cxt)
{
	volatile int n = -1;

	PG_TRY();
	{
		n = drain(max, no_table);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		set_error(edata->message);
		ereport(LOG,
				(errmsg("trading_guard: could not write security events: %s",
						edata->message)));
		FreeErrorData(edata);
		n = -1;
	}
	PG_END_TRY();
	return n;
}

/* Allowed logins counted since the last flush become rows (refused_only) */
static void
flush_login_counts(void)
{
	TgLoginCount counts[TG_EV_LOGIN_SLOTS];
	TimestampTz since;

	SpinLockAcquire(&ev_shared->mutex);
	memcpy(counts, ev_shared->logins, sizeof(counts));
	memset(ev_shared->logins, 0, sizeof(counts));
	since = ev_shared->logins_since;
	ev_shared->logins_since = GetCurrentTimestamp();
	SpinLockRelease(&ev_shared->mutex);

	for (int i = 0; i < TG_EV_LOGIN_SLOTS; i++)
	{
		TgEvent		ev;

		if (!counts[i].used || counts[i].count == 0)
			continue;
		tg_event_start(&ev, TG_EV_LOGIN, TG_OUT_ALLOWED);
		ev.pid = 0;
		ev.time = counts[i].last;
		ev.addr = counts[i].addr;
		memcpy(ev.role, counts[i].role, sizeof(ev.role));
		memcpy(ev.database, counts[i].database, sizeof(ev.database));
		tg_event_set(&ev, reason, "allowed logins counted");
		tg_event_detail_int(&ev, "count", (int64) counts[i].count);
		tg_event_detail(&ev, "first", timestamptz_to_str(counts[i].first));
		tg_event_detail(&ev, "since", timestamptz_to_str(since));
		(void) tg_event_emit(&ev);
	}
}

/* The settings whose changes at a reload become config events */
static const char *const watched_settings[] = {
	"trading_guard.connection_policy", "trading_guard.ssl_min_protocol",
	"trading_guard.allow_local", "trading_guard.rules",
	"trading_guard.max_auth_failures", "trading_guard.failure_window",
	"trading_guard.ban_time", "trading_guard.reject_literal_secrets",
	"trading_guard.environment", "trading_guard.key_file",
	"trading_guard.key_command", "trading_guard.key_command_timeout",
	"trading_guard.log_allowed_logins", "trading_guard.alert_events",
	"trading_guard.alert_refused_logins", "trading_guard.event_flush_interval",
	"trading_guard.seal_interval", "trading_guard.digest_interval",
	"ssl", "ssl_min_protocol_version", "password_encryption",
	"log_min_messages", "log_statement", NULL
};

/* values that may hold a secret are recorded as changed, not shown */
static bool
setting_hidden(const char *name)
{
	return strcmp(name, "trading_guard.key_command") == 0;
}

static char **
settings_snapshot(void)
{
	int			n = 0;
	char	  **vals;

	while (watched_settings[n])
		n++;
	vals = palloc0(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		const char *v = GetConfigOption(watched_settings[i], true, false);

		vals[i] = v ? pstrdup(v) : NULL;
	}
	return vals;
}

static void
report_setting_changes(char **before, char **after)
{
	for (int i = 0; watched_settings[i]; i++)
	{
		TgEvent		ev;
		bool		same = (before[i] == NULL && after[i] == NULL) ||
			(before[i] && after[i] && strcmp(before[i], after[i]) == 0);

		if (same)
			continue;
		tg_event_start(&ev, TG_EV_CONFIG, TG_OUT_INFO);
		tg_event_set(&ev, reason, psprintf("%s changed", watched_settings[i]));
		tg_event_detail(&ev, "setting", watched_settings[i]);
		if (setting_hidden(watched_settings[i]))
			tg_event_detail(&ev, "new", "(not shown)");
		else
		{
			tg_event_detail(&ev, "old", before[i] ? before[i] : "");
			tg_event_detail(&ev, "new", after[i] ? after[i] : "");
		}
		(void) tg_event_emit(&ev);
	}
}

/* the worker is gone: producers must not set its latch any more */
static void
events_worker_exit(int code, Datum arg)
{
	SpinLockAcquire(&ev_shared->mutex);
	ev_shared->worker_pid = 0;
	ev_shared->worker_latch = NULL;
	SpinLockRelease(&ev_shared->mutex);
}

void
tg_events_worker_main(Datum arg)
{
	TimestampTz last_sweep = 0;
	TimestampTz last_drain = 0;
	int			failures = 0;
	int			said_waiting = 0;	/* logged: 1 no table, 2 a restore */
	bool		more = false;	/* the last drain took a full batch */
	bool		restoring = false;	/* pg_restore is in events_database */
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, events_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(events_database, NULL, 0);
	pgstat_report_appname("trading_guard events");
	/* events leave the queue at commit: the commit must be on disk by then */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);

	cxt = AllocSetContextCreate(TopMemoryContext, "trading_guard events",
								ALLOCSET_DEFAULT_SIZES);

	SpinLockAcquire(&ev_shared->mutex);
	ev_shared->worker_pid = MyProcPid;
	ev_shared->worker_latch = MyLatch;
	SpinLockRelease(&ev_shared->mutex);
	before_shmem_exit(events_worker_exit, (Datum) 0);

	for (;;)
	{
		bool		no_table = false;
		bool		due;
		TimestampTz now;

		MemoryContextReset(cxt);
		MemoryContextSwitchTo(cxt);

		if (ConfigReloadPending)
		{
			char	  **before = settings_snapshot();

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			report_setting_changes(before, settings_snapshot());
		}

		now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(last_sweep, now, TG_EV_SWEEP_MS))
		{
			last_sweep = now;
			tg_conn_report_expired_bans();
			if (log_allowed_logins == LOG_LOGINS_REFUSED_ONLY &&
				TimestampDifferenceExceeds(ev_shared->logins_since, now, TG_EV_LOGIN_FLUSH_S * 1000))
				flush_login_counts();
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			tg_vault_report_signatures();
			CommitTransactionCommand();
			MemoryContextSwitchTo(cxt);
		}

		/*
		 * batch: one drain per flush interval, and more right away while
		 * each drain takes a full batch (a flood) or when shutting down
		 */
		due = shutdown_requested || more ||
			TimestampDifferenceExceeds(last_drain, GetCurrentTimestamp(), event_flush_interval);
		more = false;
		if (due)
			restoring = tg_database_being_restored();
		if (due && !restoring)
		{
			int			n = drain_or_log(failures >= TG_EV_MAX_FAILURES ? 1 : TG_EV_DRAIN_MAX,
										 &no_table, cxt);

			MemoryContextSwitchTo(cxt);

			last_drain = GetCurrentTimestamp();
			if (n >= 0)
				failures = 0;
			else if (++failures > TG_EV_MAX_FAILURES)
			{
				/* one event failed on its own, again: it goes */
				drop_oldest();
				failures = 0;
			}
			more = n == TG_EV_DRAIN_MAX;
		}

		/* waiting for the table, or for a restore to end: say so once */
		if (due && (no_table || restoring))
		{
			int			why = restoring ? 2 : 1;

			SpinLockAcquire(&ev_shared->mutex);
			ev_shared->waiting_for_table = true;
			SpinLockRelease(&ev_shared->mutex);
			if (said_waiting != why && restoring)
				ereport(LOG,
						(errmsg("trading_guard: security events wait in shared memory while database \"%s\" is being restored",
								events_database),
						 errdetail("trading_guard.restoring is on for the database, or pg_restore is connected to it.")));
			else if (said_waiting != why)
				ereport(LOG,
						(errmsg("trading_guard: security events wait in shared memory: the extension is not installed in database \"%s\"",
								events_database),
						 errhint("Run CREATE EXTENSION trading_guard there, or set trading_guard.events_database.")));
			said_waiting = why;
		}
		else if (due && failures == 0)
			said_waiting = 0;

		if (shutdown_requested)
		{
			bool		empty;

			SpinLockAcquire(&ev_shared->mutex);
			empty = ev_shared->head == ev_shared->tail;
			SpinLockRelease(&ev_shared->mutex);
			if (empty || no_table || restoring || failures > 0)
				proc_exit(0);
			continue;			/* write the rest before leaving */
		}
		if (more)
			continue;

		{
			bool		pending;
			long		timeout = TG_EV_SWEEP_MS;

			SpinLockAcquire(&ev_shared->mutex);
			pending = ev_shared->head != ev_shared->tail;
			SpinLockRelease(&ev_shared->mutex);
			if (pending)
			{
				long		since = (long) ((GetCurrentTimestamp() - last_drain) / 1000);

				timeout = Max(1, Min(timeout, event_flush_interval - since));
				if (no_table || restoring || failures > 0)
					timeout = TG_EV_SWEEP_MS;
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 timeout, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/* ----------------------------------------------------------------------
 * SQL functions
 * ----------------------------------------------------------------------
 */

/*
 * SQL: security_event_queue() returns one row (the view
 * trading_guard.security_event_queue)
 */
PG_FUNCTION_INFO_V1(tg_security_event_queue);
Datum
tg_security_event_queue(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[13];
	bool		nulls[13];
	TgEventShared copy;
	JsonbParseState *state = NULL;

	tg_require_preload("security_event_queue");
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SpinLockAcquire(&ev_shared->mutex);
	memcpy(&copy, ev_shared, offsetof(TgEventShared, logins));
	SpinLockRelease(&ev_shared->mutex);

	memset(nulls, false, sizeof(nulls));
	values[0] = Int32GetDatum(event_queue_size);
	values[1] = Int64GetDatum((int64) (copy.head - copy.tail));
	values[2] = Int64GetDatum((int64) copy.head);
	values[3] = Int64GetDatum((int64) copy.written);
	values[4] = Int64GetDatum((int64) copy.dropped);
	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < TG_EV_NUM_TYPES; i++)
	{
		JsonbValue	k,
					v;

		if (copy.dropped_by_type[i] == 0)
			continue;
		k.type = jbvString;
		k.val.string.val = (char *) event_type_names[i];
		k.val.string.len = strlen(event_type_names[i]);
		(void) pushJsonbValue(&state, WJB_KEY, &k);
		v.type = jbvNumeric;
		v.val.numeric = int64_to_numeric((int64) copy.dropped_by_type[i]);
		(void) pushJsonbValue(&state, WJB_VALUE, &v);
	}
	values[5] = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
	values[6] = TimestampTzGetDatum(copy.last_drop);
	nulls[6] = copy.last_drop == 0;
	values[7] = TimestampTzGetDatum(copy.last_drain);
	nulls[7] = copy.last_drain == 0;
	values[8] = Int32GetDatum(copy.worker_pid);
	nulls[8] = copy.worker_pid == 0;
	values[9] = BoolGetDatum(copy.waiting_for_table);
	copy.last_error[TG_EV_ERRLEN - 1] = '\0';
	values[10] = CStringGetTextDatum(copy.last_error);
	nulls[10] = copy.last_error_at == 0;
	values[11] = TimestampTzGetDatum(copy.last_error_at);
	nulls[11] = copy.last_error_at == 0;
	values[12] = TimestampTzGetDatum(copy.started);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * SQL: security_events_append_only() returns trigger
 *
 * BEFORE UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT, ENABLE ALWAYS,
 * on security_events and security_event_batches: refuses, for every role,
 * except the DELETE of purge_security_events().
 */
PG_FUNCTION_INFO_V1(tg_security_events_append_only);
Datum
tg_security_events_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *what;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("security_events_append_only: not called by trigger manager")));
	if (purging && TRIGGER_FIRED_BY_DELETE(td->tg_event))
		return PointerGetDatum(NULL);
	what = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? "UPDATE" :
		TRIGGER_FIRED_BY_DELETE(td->tg_event) ? "DELETE" : "TRUNCATE";
	ereport(ERROR,
			(errcode(ERRCODE_TG_AUDIT_APPEND_ONLY),
			 errmsg("%s of %s is not allowed", what,
					RelationGetRelationName(td->tg_relation)),
			 errdetail("Security events are append-only, for every role including their owner."),
			 errhint("Remove old security events with trading_guard.purge_security_events().")));
	PG_RETURN_NULL();
}

/*
 * SQL: purge_security_events(older_than interval) returns bigint
 *
 * Removes the events of whole batches whose newest event is older than the
 * interval, oldest batch first, with the batches' records, and records the
 * cut: an audit row (PURGE,
 * sealed with the rest) whose id security_event_state keeps, and a purge
 * event.  Never removes an event whose batch the worker has not recorded.
 */
PG_FUNCTION_INFO_V1(tg_purge_security_events);
Datum
tg_purge_security_events(PG_FUNCTION_ARGS)
{
	Interval   *older = PG_GETARG_INTERVAL_P(0);
	TimestampTz cutoff;
	TgSqlArgs	args = {0};
	int64		through = 0;
	int64		removed = 0;
	bool		isnull;
	Oid			relid;

	if (older->month < 0 || older->day < 0 || older->time < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot purge security events on a standby")));
	cutoff = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
													 TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
													 IntervalPGetDatum(older)));
	relid = events_table_oid();
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("trading_guard.security_events does not exist")));

	tg_sql_connect();
	/* one purge at a time; writers (the worker) go on */
	(void) tg_sql("LOCK TABLE trading_guard.security_event_state IN EXCLUSIVE MODE",
				  NULL, TG_SQL_AS_OWNER, SPI_OK_UTILITY);
	tg_sql_arg(&args, TIMESTAMPTZOID, TimestampTzGetDatum(cutoff));
	/*
	 * The last batch of the run of batches, from the oldest, all older than
	 * the cutoff (a batch newer than it ends the run).
	 */
	(void) tg_sql("SELECT pg_catalog.max(b.last_id) FROM trading_guard.security_event_batches b"
				  " WHERE b.last_id OPERATOR(pg_catalog.>) COALESCE((SELECT purged_through FROM trading_guard.security_event_state), 0)"
				  "   AND b.first_id OPERATOR(pg_catalog.<) COALESCE((SELECT pg_catalog.min(n.first_id)"
				  "        FROM trading_guard.security_event_batches n"
				  "        WHERE n.max_event_time OPERATOR(pg_catalog.>=) $1), 9223372036854775807)",
				  &args, TG_SQL_WRITE_LATEST | TG_SQL_AS_OWNER, SPI_OK_SELECT);
	through = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!isnull && through > 0)
	{
		TgSqlArgs	dargs = {0};
		char	   *detail;
		int64		audit_id;
		TgEvent		ev;

		tg_sql_arg(&dargs, INT8OID, Int64GetDatum(through));
		purging = true;
		PG_TRY();
		{
			removed = (int64) tg_sql("DELETE FROM trading_guard.security_events"
									 " WHERE id OPERATOR(pg_catalog.<=) $1",
									 &dargs, TG_SQL_WRITE_LATEST | TG_SQL_AS_OWNER, SPI_OK_DELETE);
			/* their batches too: verification starts after the cut */
			(void) tg_sql("DELETE FROM trading_guard.security_event_batches"
						  " WHERE last_id OPERATOR(pg_catalog.<=) $1",
						  &dargs, TG_SQL_WRITE_LATEST | TG_SQL_AS_OWNER, SPI_OK_DELETE);
		}
		PG_FINALLY();
		{
			purging = false;
		}
		PG_END_TRY();

		detail = psprintf("{\"through_id\": " INT64_FORMAT ", \"rows\": " INT64_FORMAT
						  ", \"older_than\": \"%s\"}",
						  through, removed,
						  DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(older))));
		audit_id = tg_audit_write_event("PURGE", relid, NULL, NULL,
										   DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																			  CStringGetDatum(detail))));
		{
			TgSqlArgs	sargs = {0};

			tg_sql_arg(&sargs, INT8OID, Int64GetDatum(through));
			tg_sql_arg(&sargs, INT8OID, Int64GetDatum(audit_id));
			/* one row, made by the first purge (see the table's comment) */
			(void) tg_sql("DELETE FROM trading_guard.security_event_state",
						  NULL, TG_SQL_WRITE_LATEST | TG_SQL_AS_OWNER, SPI_OK_DELETE);
			(void) tg_sql("INSERT INTO trading_guard.security_event_state VALUES ($1, $2)",
						  &sargs, TG_SQL_WRITE_LATEST | TG_SQL_AS_OWNER, SPI_OK_INSERT);
		}

		tg_event_start(&ev, TG_EV_PURGE, TG_OUT_INFO);
		tg_event_set(&ev, role, GetUserNameFromId(GetUserId(), false));
		tg_event_set(&ev, reason, "security events purged");
		tg_event_detail_int(&ev, "through_id", through);
		tg_event_detail_int(&ev, "rows", removed);
		(void) tg_event_emit(&ev);
	}
	tg_sql_finish();
	PG_RETURN_INT64(removed);
}

typedef struct VerifyState
{
	MemoryContext cxt;			/* the caller's: SPI's goes at tg_sql_finish */
	int64		checked;
	int64		batches;
	int64		bad_id;
	const char *problem;
	char	   *detail;
} VerifyState;

static void
verify_fail(VerifyState *v, int64 id, const char *problem, char *detail)
{
	if (v->problem == NULL)
	{
		v->bad_id = id;
		v->problem = problem;
		v->detail = MemoryContextStrdup(v->cxt, detail);
	}
}

/*
 * SQL: verify_security_events() returns (ok, rows_checked, batches_checked,
 * first_bad_id, problem, detail)
 *
 * Each batch the worker recorded must hold exactly its rows (by the Merkle
 * root of their canonical bytes), and agree with its audit row (sealed:
 * verify_audit checks those); no event may lie outside every batch; below
 * the recorded purge cut there must be none.
 */
PG_FUNCTION_INFO_V1(tg_verify_security_events);
Datum
tg_verify_security_events(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6];
	VerifyState v = {0};
	int64		purged_through = 0;
	uint64		nstate;
	int64		purge_audit_id = 0;
	uint64		nbatches;
	SPITupleTable *batches;
	int64		covered_rows = 0;
	bool		isnull;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (!OidIsValid(events_table_oid()))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("trading_guard.security_events does not exist")));

	v.cxt = CurrentMemoryContext;
	tg_sql_connect();
	nstate = tg_sql("SELECT purged_through, purge_audit_id FROM trading_guard.security_event_state",
					NULL, TG_SQL_READ_ONLY, SPI_OK_SELECT);
	if (nstate == 1)
	{
		purged_through = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		purge_audit_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull)
			purge_audit_id = 0;
	}
	else if (nstate > 1)
		verify_fail(&v, 0, "changed", pstrdup("security_event_state holds more than one row"));

	/* the purge cut must be the one its sealed audit row records */
	if (purged_through > 0)
	{
		TgSqlArgs	args = {0};
		char	   *through = NULL;

		tg_sql_arg(&args, INT8OID, Int64GetDatum(purge_audit_id));
		if (tg_sql("SELECT l.new_row OPERATOR(pg_catalog.->>) 'through_id'"
				   " FROM trading_guard.audit_log l"
				   " WHERE l.id OPERATOR(pg_catalog.=) $1 AND l.operation OPERATOR(pg_catalog.=) 'PURGE'"
				   "   AND l.schema_name OPERATOR(pg_catalog.=) 'trading_guard'"
				   "   AND l.table_name OPERATOR(pg_catalog.=) 'security_events'",
				   &args, TG_SQL_READ_ONLY, SPI_OK_SELECT) == 1)
			through = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (through == NULL || strtoi64(through, NULL, 10) != purged_through)
			verify_fail(&v, purged_through, "changed",
						psprintf("the purge cut (id " INT64_FORMAT ") is not the one audit row " INT64_FORMAT " records",
								 purged_through, purge_audit_id));
		{
			TgSqlArgs	a2 = {0};

			tg_sql_arg(&a2, INT8OID, Int64GetDatum(purged_through));
			if (tg_sql("SELECT pg_catalog.min(id) FROM trading_guard.security_events"
					   " WHERE id OPERATOR(pg_catalog.<=) $1",
					   &a2, TG_SQL_READ_ONLY, SPI_OK_SELECT) == 1)
			{
				int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

				if (!isnull)
					verify_fail(&v, id, "inserted",
								psprintf("event " INT64_FORMAT " lies below the purge cut (" INT64_FORMAT ")",
										 id, purged_through));
			}
		}
	}

	/* every batch: its audit row, then its rows */
	{
		TgSqlArgs	args = {0};

		tg_sql_arg(&args, INT8OID, Int64GetDatum(purged_through));
		nbatches = tg_sql("SELECT b.first_id, b.last_id, b.row_count, b.merkle_root, b.audit_id,"
						  "       l.new_row, l.operation, l.table_name"
						  " FROM trading_guard.security_event_batches b"
						  " LEFT JOIN trading_guard.audit_log l ON l.id OPERATOR(pg_catalog.=) b.audit_id"
						  " WHERE b.last_id OPERATOR(pg_catalog.>) $1"
						  " ORDER BY b.first_id",
						  &args, TG_SQL_READ_ONLY, SPI_OK_SELECT);
		batches = SPI_tuptable;
	}
	for (uint64 i = 0; i < nbatches; i++)
	{
		HeapTuple	t = batches->vals[i];
		TupleDesc	d = batches->tupdesc;
		int64		first = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		int64		last = DatumGetInt64(SPI_getbinval(t, d, 2, &isnull));
		int64		count = DatumGetInt64(SPI_getbinval(t, d, 3, &isnull));
		bytea	   *root = DatumGetByteaPP(SPI_getbinval(t, d, 4, &isnull));
		int64		audit_id = DatumGetInt64(SPI_getbinval(t, d, 5, &isnull));
		char	   *record = SPI_getvalue(t, d, 6);
		char	   *op = SPI_getvalue(t, d, 7);
		char	   *expect;
		char	   *hex = tg_hex((uint8 *) VARDATA_ANY(root), VARSIZE_ANY_EXHDR(root));
		uint8		got[TG_HASH_LEN];
		int64		n;
		TimestampTz maxt;

		v.batches++;
		expect = psprintf("{\"root\": \"%s\", \"rows\": " INT64_FORMAT ", \"last_id\": " INT64_FORMAT
						  ", \"first_id\": " INT64_FORMAT "}", hex, count, last, first);
		if (record == NULL || op == NULL || strcmp(op, "EVENTS") != 0)
		{
			verify_fail(&v, first, "missing",
						psprintf("the audit row " INT64_FORMAT " recording events " INT64_FORMAT " to " INT64_FORMAT " is missing",
								 audit_id, first, last));
			continue;
		}
		if (DatumGetInt32(DirectFunctionCall2(jsonb_cmp,
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(record)),
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(expect)))) != 0)
		{
			verify_fail(&v, first, "changed",
						psprintf("the batch record of events " INT64_FORMAT " to " INT64_FORMAT " differs from its audit row " INT64_FORMAT,
								 first, last, audit_id));
			continue;
		}
		{
			SPITupleTable *save = SPI_tuptable;

			events_root(first, last, got, &n, &maxt);
			SPI_tuptable = save;
		}
		covered_rows += count;
		v.checked += n;
		if (n < count)
			verify_fail(&v, first, "missing",
						psprintf("events " INT64_FORMAT " to " INT64_FORMAT ": " INT64_FORMAT " rows recorded, " INT64_FORMAT " found",
								 first, last, count, n));
		else if (n > count)
			verify_fail(&v, first, "inserted",
						psprintf("events " INT64_FORMAT " to " INT64_FORMAT ": " INT64_FORMAT " rows recorded, " INT64_FORMAT " found",
								 first, last, count, n));
		else if (memcmp(got, VARDATA_ANY(root), TG_HASH_LEN) != 0)
			verify_fail(&v, first, "changed",
						psprintf("events " INT64_FORMAT " to " INT64_FORMAT " are not what was recorded",
								 first, last));
	}

	/* rows outside every batch */
	{
		TgSqlArgs	args = {0};

		tg_sql_arg(&args, INT8OID, Int64GetDatum(purged_through));
		if (tg_sql("SELECT e.id FROM trading_guard.security_events e"
				   " WHERE e.id OPERATOR(pg_catalog.>) $1 AND NOT EXISTS ("
				   "   SELECT FROM trading_guard.security_event_batches b"
				   "   WHERE e.id OPERATOR(pg_catalog.>=) b.first_id AND e.id OPERATOR(pg_catalog.<=) b.last_id)"
				   " ORDER BY e.id LIMIT 1",
				   &args, TG_SQL_READ_ONLY, SPI_OK_SELECT) == 1)
		{
			int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

			verify_fail(&v, id, "inserted",
						psprintf("event " INT64_FORMAT " is in no batch the worker recorded", id));
		}
	}
	tg_sql_finish();
	(void) covered_rows;

	memset(nulls, false, sizeof(nulls));
	values[0] = BoolGetDatum(v.problem == NULL);
	values[1] = Int64GetDatum(v.checked);
	values[2] = Int64GetDatum(v.batches);
	values[3] = Int64GetDatum(v.bad_id);
	nulls[3] = v.problem == NULL;
	values[4] = v.problem ? CStringGetTextDatum(v.problem) : (Datum) 0;
	nulls[4] = v.problem == NULL;
	values[5] = v.detail ? CStringGetTextDatum(v.detail) : (Datum) 0;
	nulls[5] = v.detail == NULL;
	tg_event_verify("verify_security_events", v.problem == NULL, v.checked, v.problem);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ----------------------------------------------------------------------
 * Init
 * ----------------------------------------------------------------------
 */

void
tg_events_init(void)
{
	DefineCustomIntVariable("trading_guard.event_flush_interval",
							"Time between two writes of queued security events by the events worker.",
							"Events that a crash catches in the queue are lost: at most this long's worth.",
							&event_flush_interval,
							100, 10, 60 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("trading_guard.log_allowed_logins",
							 "Which allowed logins become rows of security_events (refusals always do).",
							 "all: each one; refused_only: counted per role, database and address, one row a minute; none: not recorded.",
							 &log_allowed_logins,
							 LOG_LOGINS_ALL, log_logins_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("trading_guard.alert_events",
							   "Which security events send NOTIFY trading_guard_alerts.",
							   "A comma-separated list of: ban, key_ring, vault_refused, refused_logins, all; empty: none.",
							   &alert_events,
							   "ban,key_ring,vault_refused,refused_logins",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("trading_guard.alert_refused_logins",
							"Refused logins within a minute that send a refused_logins alert (0: never).",
							NULL,
							&alert_refused_logins,
							20, 0, INT_MAX,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("trading_guard.event_queue_size",
							"Security events the shared-memory queue holds until the events worker writes them.",
							"When it is full, new events are dropped and counted (security_event_queue).",
							&event_queue_size,
							8192, 16, 1024 * 1024,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomStringVariable("trading_guard.events_database",
							   "The database whose trading_guard.security_events the events worker writes.",
							   NULL,
							   &events_database,
							   "postgres",
							   PGC_POSTMASTER, 0,
							   NULL, NULL, NULL);

	tg_shmem_register("trading_guard security events", events_shmem_size(), events_shmem_init);

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = events_emit_log;

	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = 5;
		strlcpy(worker.bgw_library_name, "trading_guard", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "tg_events_worker_main", BGW_MAXLEN);
		strlcpy(worker.bgw_name, "trading_guard events", BGW_MAXLEN);
		strlcpy(worker.bgw_type, "trading_guard events", BGW_MAXLEN);
		RegisterBackgroundWorker(&worker);
	}
}
