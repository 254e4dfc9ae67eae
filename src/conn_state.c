/*-------------------------------------------------------------------------
 *
 * conn_state.c
 *	  The connection guard's shared memory: counters per decision and
 *	  reason, a ring of the last trading_guard.max_connection_events
 *	  connection attempts, and per-address failure counts and bans; the
 *	  SQL functions behind the views connection_stats, connection_events
 *	  and banned_addresses, reset_connection_stats() and unban().
 *
 * Locking: one spinlock guards all of it.  It is a spinlock, not an LWLock,
 * because failed TLS handshakes are recorded from the log hook of a backend
 * that has no PGPROC yet.  Every critical section is straight-line code
 * with no allocation and no ereport: a few counters, one event copied into
 * the ring, and one scan of the address table (max_tracked_addresses
 * entries, 1024 by default) per failed attempt and per TCP connection.
 * Readers copy what they need under the lock and build tuples after
 * releasing it.
 *
 * Bans: an address is banned once it has more than max_auth_failures
 * failed or refused attempts within failure_window (a window that starts at
 * its first failure).  Attempts refused because of a ban do not count, so a
 * ban ends on time.  When the table is full the entry seen longest ago that
 * is not banned is reused (or, if every entry is banned, the one whose ban
 * ends first): a flood of addresses can make the guard forget failures,
 * never ban an address that did nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/timestamp.h"

#include "conn_state.h"
#include "events.h"
#include "shmem.h"

/*
 * A failed attempt without TLS that follows a failed TLS attempt from the
 * same address, role and database (or any role and database, when the TLS
 * attempt failed in the handshake, before they were sent) within this many
 * seconds is libpq's sslmode=prefer retry (or "allow"'s) and is not counted
 * a second time.
 */
#define TG_PREFER_RETRY_SECS 10

#define TG_SSL_VERSION_LEN	16
#define TG_SSL_CIPHER_LEN	64

typedef struct TgAddrEntry
{
	TgAddr		addr;			/* family 0 = free */
	int			failures;		/* in the window that started at window_start */
	int			ban_failures;	/* failures that caused the current ban */
	TimestampTz window_start;
	TimestampTz last_seen;
	TimestampTz banned_since;
	TimestampTz banned_until;	/* 0 = not banned */
	/* the last counted failure, to recognise an sslmode=prefer retry */
	TimestampTz last_fail_time;
	uint32		last_fail_who;	/* hash of role and database; 0 = not known
								 * (refused in the TLS handshake) */
	bool		last_fail_tls;
	bool		expiry_reported;	/* the ban's end is a ban_expired event */
} TgAddrEntry;

typedef struct TgConnEvent
{
	TimestampTz time;
	int			pid;
	TgAddr		addr;
	bool		has_role;		/* role and database known */
	bool		has_application;
	bool		client_cert;
	uint8		decision;
	uint8		reason;
	int			rule;
	char		role[NAMEDATALEN];
	char		database[NAMEDATALEN];
	char		application[NAMEDATALEN];
	char		ssl_version[TG_SSL_VERSION_LEN];	/* "" = no TLS */
	char		ssl_cipher[TG_SSL_CIPHER_LEN];
} TgConnEvent;

typedef struct TgConnShared
{
	slock_t		mutex;
	TimestampTz stats_reset;
	uint64		counts[TG_CONN_NUM_DECISIONS][TG_CONN_NUM_REASONS];
	uint64		nevents;		/* events ever recorded; the ring holds the last */
	/* then max_tracked_addresses TgAddrEntry, then max_connection_events TgConnEvent */
} TgConnShared;

/* postmaster GUCs */
static int	tg_max_connection_events = 1000;
static int	tg_max_tracked_addresses = 1024;

static TgConnShared *conn_shared = NULL;
static TgAddrEntry *conn_addrs = NULL;
static TgConnEvent *conn_events = NULL;

static const char *const decision_names[TG_CONN_NUM_DECISIONS] = {
	"allowed", "refused", "would_refuse"
};

static const char *const reason_names[TG_CONN_NUM_REASONS] = {
	"local", "rule", "no_allowlist",
	"local_not_allowed", "banned", "rules_invalid", "no_tls", "tls_version",
	"no_matching_rule", "client_cert_required",
	"hba_reject", "hba_no_entry", "password", "client_cert", "tls_handshake",
	"auth_failed"
};

static Size
conn_shmem_size(void)
{
	return add_size(add_size(MAXALIGN(sizeof(TgConnShared)),
							 MAXALIGN(mul_size(tg_max_tracked_addresses,
											   sizeof(TgAddrEntry)))),
					mul_size(tg_max_connection_events, sizeof(TgConnEvent)));
}

static void
conn_shmem_init(void *ptr, bool found)
{
	conn_shared = (TgConnShared *) ptr;
	conn_addrs = (TgAddrEntry *) ((char *) ptr + MAXALIGN(sizeof(TgConnShared)));
	conn_events = (TgConnEvent *) ((char *) conn_addrs +
								   MAXALIGN(tg_max_tracked_addresses * sizeof(TgAddrEntry)));
	if (!found)
	{
		memset(ptr, 0, conn_shmem_size());
		SpinLockInit(&conn_shared->mutex);
		conn_shared->stats_reset = GetCurrentTimestamp();
	}
}

/*
 * Define the two postmaster GUCs that size shared memory and ask for it.
 * Only while preloading: PostgreSQL refuses to define PGC_POSTMASTER
 * settings in a library loaded later, and there is no shared memory then.
 */
void
tg_conn_state_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("trading_guard.max_connection_events",
							"Number of recent connection attempts kept in the connection_events view.",
							NULL,
							&tg_max_connection_events,
							1000, 10, 10000,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("trading_guard.max_tracked_addresses",
							"Number of client addresses whose failed attempts and bans are tracked.",
							NULL,
							&tg_max_tracked_addresses,
							1024, 16, 16384,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	tg_shmem_register("trading_guard connection guard", conn_shmem_size(),
					  conn_shmem_init);
}

static bool
addr_equal(const TgAddr *a, const TgAddr *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

/* Find the address's entry; caller holds the spinlock */
static TgAddrEntry *
find_entry(const TgAddr *addr)
{
	for (int i = 0; i < tg_max_tracked_addresses; i++)
	{
		if (conn_addrs[i].addr.family != 0 && addr_equal(&conn_addrs[i].addr, addr))
			return &conn_addrs[i];
	}
	return NULL;
}

/*
 * Find the address's entry or make one, reusing a free slot, else the
 * least recently seen unbanned one, else the one whose ban ends first.
 * Caller holds the spinlock.
 */
static TgAddrEntry *
find_or_make_entry(const TgAddr *addr, TimestampTz now)
{
	TgAddrEntry *victim = NULL;
	bool		victim_banned = true;

	for (int i = 0; i < tg_max_tracked_addresses; i++)
	{
		TgAddrEntry *e = &conn_addrs[i];
		bool		banned;

		if (e->addr.family == 0)
		{
			if (victim == NULL || victim->addr.family != 0)
				victim = e;
			continue;
		}
		if (addr_equal(&e->addr, addr))
			return e;
		if (victim && victim->addr.family == 0)
			continue;
		banned = e->banned_until > now;
		if (victim == NULL ||
			(victim_banned && !banned) ||
			(!victim_banned && !banned && e->last_seen < victim->last_seen) ||
			(victim_banned && banned && e->banned_until < victim->banned_until))
		{
			victim = e;
			victim_banned = banned;
		}
	}
	memset(victim, 0, sizeof(*victim));
	victim->addr = *addr;
	return victim;
}

/*
 * Count one failed or refused attempt against its address.  Returns true
 * when this failure bans the address.  Caller holds the spinlock.
 */
static bool
count_failure(const TgConnAttempt *a, TimestampTz now, uint32 who,
			  int max_failures, int window_s, int ban_s)
{
	TgAddrEntry *e = find_or_make_entry(&a->addr, now);
	bool		tls = a->tls;

	e->last_seen = now;
	if (e->banned_until > now)
		return false;			/* already banned: no extension */

	if (!tls && e->last_fail_tls &&
		(e->last_fail_who == who || e->last_fail_who == 0) &&
		!TimestampDifferenceExceeds(e->last_fail_time, now,
									TG_PREFER_RETRY_SECS * 1000))
	{
		/* libpq retrying without TLS after a refused TLS attempt */
		e->last_fail_tls = false;
		return false;
	}

	if (e->failures == 0 ||
		TimestampDifferenceExceeds(e->window_start, now, window_s * 1000))
	{
		e->window_start = now;
		e->failures = 0;
	}
	e->failures++;
	e->last_fail_time = now;
	e->last_fail_tls = tls;
	e->last_fail_who = who;

	if (e->failures > max_failures)
	{
		e->banned_since = now;
		e->banned_until = TimestampTzPlusMilliseconds(now, (int64) ban_s * 1000);
		e->ban_failures = e->failures;
		e->expiry_reported = false;
		e->failures = 0;
		e->last_fail_tls = false;
		return true;
	}
	return false;
}

/*
 * Copy a name the client sent (role, database, application name) into dst
 * (len bytes), as valid UTF-8 that reads back unambiguously: a byte that
 * does not start a legal UTF-8 sequence, a control character and the
 * backslash itself become \xNN.  The client may send anything before it is
 * authenticated, and an invalid byte stored in connection_events would make
 * every later read of the view fail in conversions (for example with
 * client_encoding = LATIN1), a newline in a log line would forge a line,
 * and an unescaped backslash would let a name pass itself off as another
 * one's escapes.  Truncates at whole characters and whole escapes, so a long
 * name never ends in half a character.
 */
void
tg_conn_copy_name(char *dst, const char *src, size_t len)
{
	const unsigned char *p = (const unsigned char *) src;
	size_t		n = 0;

	if (src == NULL)
	{
		dst[0] = '\0';
		return;
	}
	while (*p != '\0')
	{
		int			l = pg_utf_mblen(p);
		bool		legal;

		if (l == 1)
			legal = *p >= 0x20 && *p < 0x7f && *p != '\\';
		else
		{
			/* a legal sequence must not run into the terminating zero */
			legal = true;
			for (int i = 1; i < l; i++)
			{
				if (p[i] == '\0')
				{
					legal = false;
					break;
				}
			}
			legal = legal && pg_utf8_islegal(p, l);
		}
		if (!legal)
		{
			if (n + 4 >= len)
				break;
			snprintf(dst + n, len - n, "\\x%02x", *p);
			n += 4;
			p++;
			continue;
		}
		if (n + l >= len)
			break;
		memcpy(dst + n, p, l);
		n += l;
		p += l;
	}
	dst[n] = '\0';
}

/*
 * A name the client sent, escaped as copy_name does, whole, in a palloc'd
 * string: for the guard's server-log lines.  NULL gives "".
 */
char *
tg_conn_escape_name(const char *name)
{
	size_t		len = name ? strlen(name) * 4 + 1 : 1;
	char	   *buf = palloc(len);

	tg_conn_copy_name(buf, name, len);
	return buf;
}

/*
 * The security event of one connection attempt (events.c): a row of
 * security_events, or, for an allowed one that log_allowed_logins does not
 * want as a row, a count.  Runs without a PGPROC: no palloc.
 */
static void
login_event(const TgConnAttempt *a, TimestampTz now)
{
	TgEvent		ev;
	TgEventOutcome outcome = a->decision == TG_CONN_ALLOWED ? TG_OUT_ALLOWED :
		a->decision == TG_CONN_REFUSED ? TG_OUT_REFUSED : TG_OUT_WOULD_REFUSE;

	tg_event_start(&ev, TG_EV_LOGIN, outcome);
	ev.time = now;
	ev.addr = a->addr;
	tg_event_set(&ev, role, a->role);
	tg_event_set(&ev, database, a->database);
	tg_event_set(&ev, application, a->application);
	if (!tg_event_login_wanted(outcome))
	{
		tg_event_count_login(&ev);
		return;
	}
	tg_event_set(&ev, tls_version, a->ssl_version);
	tg_event_set(&ev, tls_cipher, a->ssl_cipher);
	if (!a->client_cert)
		ev.cert_subject[0] = '\0';
	tg_event_set(&ev, reason, reason_names[a->reason]);
	ev.rule = a->rule;
	if (!a->tls)
		tg_event_detail(&ev, "transport", a->addr.family == 0 ? "unix" : "tcp");
	else
		tg_event_detail(&ev, "transport", "tls");
	(void) tg_event_emit(&ev);
}

/*
 * Record one connection attempt: count it, put it in the ring, and, for a
 * failed or refused TCP attempt, count it against its address (banning the
 * address when max_failures > 0 and it has too many).  Callable from a
 * backend without a PGPROC.
 */
void
tg_conn_record(const TgConnAttempt *a, int max_failures, int window_s, int ban_s)
{
	TimestampTz now;
	TgConnEvent ev;
	uint32		who = 0;
	bool		banned_now = false;
	TimestampTz until = 0;
	sigset_t	saved_mask;
	bool		blocked;

	if (conn_shared == NULL)
		return;

	now = GetCurrentTimestamp();
	memset(&ev, 0, sizeof(ev));
	ev.time = now;
	ev.pid = MyProcPid;
	ev.addr = a->addr;
	ev.has_role = a->role != NULL;
	ev.has_application = a->application != NULL && a->application[0] != '\0';
	ev.client_cert = a->client_cert;
	ev.decision = (uint8) a->decision;
	ev.reason = (uint8) a->reason;
	ev.rule = a->rule;
	tg_conn_copy_name(ev.role, a->role, NAMEDATALEN);
	tg_conn_copy_name(ev.database, a->database, NAMEDATALEN);
	tg_conn_copy_name(ev.application, a->application, NAMEDATALEN);
	tg_conn_copy_name(ev.ssl_version, a->ssl_version, TG_SSL_VERSION_LEN);
	tg_conn_copy_name(ev.ssl_cipher, a->ssl_cipher, TG_SSL_CIPHER_LEN);
	if (a->role)
		who = hash_bytes((const unsigned char *) a->role, strlen(a->role));
	if (a->database)
		who ^= hash_bytes((const unsigned char *) a->database, strlen(a->database)) * 31;

	blocked = tg_spin_acquire(&conn_shared->mutex, &saved_mask);
	conn_shared->counts[a->decision][a->reason]++;
	conn_events[conn_shared->nevents % tg_max_connection_events] = ev;
	conn_shared->nevents++;
	if (a->addr.family != 0 && a->decision != TG_CONN_ALLOWED &&
		a->reason != TG_REASON_BANNED && max_failures > 0)
	{
		banned_now = count_failure(a, now, who, max_failures, window_s, ban_s);
		if (banned_now)
			until = find_entry(&a->addr)->banned_until;
	}
	tg_spin_release(&conn_shared->mutex, blocked, &saved_mask);

	login_event(a, now);
	if (banned_now)
	{
		char		addrbuf[64];
		TgEvent		bev;

		tg_event_start(&bev, TG_EV_BAN, TG_OUT_INFO);
		bev.time = now;
		bev.addr = a->addr;
		tg_event_set(&bev, reason, "too many failed or refused connection attempts");
		tg_event_detail(&bev, "until", timestamptz_to_str(until));
		tg_event_detail_int(&bev, "max_auth_failures", max_failures);
		tg_event_detail_int(&bev, "failure_window_s", window_s);
		(void) tg_event_emit(&bev);

		tg_addr_format(&a->addr, addrbuf, sizeof(addrbuf));
		ereport(LOG,
				(errmsg("trading_guard: client address %s banned until %s after more than %d failed or refused connection attempts",
						addrbuf, timestamptz_to_str(until), max_failures)));
	}
}

/*
 * Bans that have ended since the last call become ban_expired events (the
 * events worker calls this every second).
 */
void
tg_conn_report_expired_bans(void)
{
	TgAddr		ended[64];
	TimestampTz ended_at[64];
	int			n = 0;
	TimestampTz now;

	if (conn_shared == NULL)
		return;
	now = GetCurrentTimestamp();
	SpinLockAcquire(&conn_shared->mutex);
	for (int i = 0; i < tg_max_tracked_addresses && n < (int) lengthof(ended); i++)
	{
		TgAddrEntry *e = &conn_addrs[i];

		if (e->addr.family != 0 && e->banned_until != 0 &&
			e->banned_until <= now && !e->expiry_reported)
		{
			e->expiry_reported = true;
			ended[n] = e->addr;
			ended_at[n] = e->banned_until;
			n++;
		}
	}
	SpinLockRelease(&conn_shared->mutex);

	for (int i = 0; i < n; i++)
	{
		TgEvent		ev;

		tg_event_start(&ev, TG_EV_BAN_EXPIRED, TG_OUT_INFO);
		ev.time = ended_at[i];
		ev.addr = ended[i];
		tg_event_set(&ev, reason, "ban ended");
		(void) tg_event_emit(&ev);
	}
}

/*
 * Is the address banned now?  If so, *until says until when.  Callable from
 * a backend without a PGPROC (the TLS handshake's ClientHello callback).
 */
bool
tg_conn_banned(const TgAddr *addr, TimestampTz *until)
{
	TimestampTz now;
	TgAddrEntry *e;
	bool		banned = false;
	sigset_t	saved_mask;
	bool		blocked;

	if (conn_shared == NULL || addr->family == 0)
		return false;

	now = GetCurrentTimestamp();
	blocked = tg_spin_acquire(&conn_shared->mutex, &saved_mask);
	e = find_entry(addr);
	if (e && e->banned_until > now)
	{
		banned = true;
		*until = e->banned_until;
	}
	tg_spin_release(&conn_shared->mutex, blocked, &saved_mask);
	return banned;
}

static Datum
addr_datum(const TgAddr *addr)
{
	char		buf[64];

	tg_addr_format(addr, buf, sizeof(buf));
	return DirectFunctionCall1(inet_in, CStringGetDatum(buf));
}

/*
 * SQL: connection_stats() returns table (decision text, reason text,
 *                                        connections bigint,
 *                                        stats_reset timestamptz)
 * One row per decision and reason seen since the last reset.
 */
PG_FUNCTION_INFO_V1(tg_connection_stats);
Datum
tg_connection_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	uint64		counts[TG_CONN_NUM_DECISIONS][TG_CONN_NUM_REASONS];
	TimestampTz reset;

	tg_require_preload("connection_stats");
	InitMaterializedSRF(fcinfo, 0);

	SpinLockAcquire(&conn_shared->mutex);
	memcpy(counts, conn_shared->counts, sizeof(counts));
	reset = conn_shared->stats_reset;
	SpinLockRelease(&conn_shared->mutex);

	for (int d = 0; d < TG_CONN_NUM_DECISIONS; d++)
	{
		for (int r = 0; r < TG_CONN_NUM_REASONS; r++)
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};

			if (counts[d][r] == 0)
				continue;
			values[0] = CStringGetTextDatum(decision_names[d]);
			values[1] = CStringGetTextDatum(reason_names[r]);
			values[2] = Int64GetDatum((int64) counts[d][r]);
			values[3] = TimestampTzGetDatum(reset);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

/*
 * SQL: connection_events() returns table (event_time timestamptz, pid int,
 *        client_addr inet, role_name text, database_name text,
 *        application_name text, ssl_version text, ssl_cipher text,
 *        client_cert boolean, decision text, reason text, rule int)
 * The ring, oldest first.
 */
PG_FUNCTION_INFO_V1(tg_connection_events);
Datum
tg_connection_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TgConnEvent *copy;
	uint64		total;
	int			n,
				first;

	tg_require_preload("connection_events");
	InitMaterializedSRF(fcinfo, 0);

	copy = palloc(sizeof(TgConnEvent) * tg_max_connection_events);
	SpinLockAcquire(&conn_shared->mutex);
	total = conn_shared->nevents;
	memcpy(copy, conn_events, sizeof(TgConnEvent) * tg_max_connection_events);
	SpinLockRelease(&conn_shared->mutex);

	n = total < (uint64) tg_max_connection_events ? (int) total : tg_max_connection_events;
	first = total < (uint64) tg_max_connection_events ? 0 :
		(int) (total % tg_max_connection_events);

	for (int i = 0; i < n; i++)
	{
		TgConnEvent *ev = &copy[(first + i) % tg_max_connection_events];
		Datum		values[12];
		bool		nulls[12];

		memset(nulls, 0, sizeof(nulls));
		values[0] = TimestampTzGetDatum(ev->time);
		values[1] = Int32GetDatum(ev->pid);
		if (ev->addr.family != 0)
			values[2] = addr_datum(&ev->addr);
		else
			nulls[2] = true;
		if (ev->has_role)
		{
			values[3] = CStringGetTextDatum(ev->role);
			values[4] = CStringGetTextDatum(ev->database);
		}
		else
			nulls[3] = nulls[4] = true;
		if (ev->has_application)
			values[5] = CStringGetTextDatum(ev->application);
		else
			nulls[5] = true;
		if (ev->ssl_version[0] != '\0')
		{
			values[6] = CStringGetTextDatum(ev->ssl_version);
			values[7] = CStringGetTextDatum(ev->ssl_cipher);
		}
		else
			nulls[6] = nulls[7] = true;
		values[8] = BoolGetDatum(ev->client_cert);
		values[9] = CStringGetTextDatum(decision_names[ev->decision]);
		values[10] = CStringGetTextDatum(reason_names[ev->reason]);
		if (ev->rule > 0)
			values[11] = Int32GetDatum(ev->rule);
		else
			nulls[11] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(copy);
	return (Datum) 0;
}

/*
 * SQL: banned_addresses() returns table (client_addr inet,
 *        banned_since timestamptz, banned_until timestamptz, failures int)
 * Addresses banned now.
 */
PG_FUNCTION_INFO_V1(tg_banned_addresses);
Datum
tg_banned_addresses(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TgAddrEntry *copy;
	int			n = 0;
	TimestampTz now = GetCurrentTimestamp();

	tg_require_preload("banned_addresses");
	InitMaterializedSRF(fcinfo, 0);

	copy = palloc(sizeof(TgAddrEntry) * tg_max_tracked_addresses);
	SpinLockAcquire(&conn_shared->mutex);
	for (int i = 0; i < tg_max_tracked_addresses; i++)
	{
		if (conn_addrs[i].addr.family != 0 && conn_addrs[i].banned_until > now)
			copy[n++] = conn_addrs[i];
	}
	SpinLockRelease(&conn_shared->mutex);

	for (int i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = addr_datum(&copy[i].addr);
		values[1] = TimestampTzGetDatum(copy[i].banned_since);
		values[2] = TimestampTzGetDatum(copy[i].banned_until);
		values[3] = Int32GetDatum(copy[i].ban_failures);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(copy);
	return (Datum) 0;
}

/* SQL: reset_connection_stats() returns void -- the counters only */
PG_FUNCTION_INFO_V1(tg_reset_connection_stats);
Datum
tg_reset_connection_stats(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTimestamp();

	tg_require_preload("reset_connection_stats");
	SpinLockAcquire(&conn_shared->mutex);
	memset(conn_shared->counts, 0, sizeof(conn_shared->counts));
	conn_shared->stats_reset = now;
	SpinLockRelease(&conn_shared->mutex);
	PG_RETURN_VOID();
}

/*
 * SQL: unban(address inet) returns boolean
 * Lift the address's ban and forget its failures; true if it was banned.
 * A network (a prefix shorter than the address) is refused: bans are per
 * address.
 */
PG_FUNCTION_INFO_V1(tg_unban);
Datum
tg_unban(PG_FUNCTION_ARGS)
{
	inet	   *ip = PG_GETARG_INET_PP(0);
	TgAddr		addr;
	TgAddrEntry *e;
	bool		was_banned = false;
	TimestampTz now = GetCurrentTimestamp();

	tg_require_preload("unban");
	if (ip_bits(ip) != (ip_family(ip) == PGSQL_AF_INET ? 32 : 128))
		goto network;
	tg_addr_set(&addr, ip_family(ip) != PGSQL_AF_INET, ip_addr(ip));

	SpinLockAcquire(&conn_shared->mutex);
	e = find_entry(&addr);
	if (e)
	{
		was_banned = e->banned_until > now;
		memset(e, 0, sizeof(*e));
	}
	SpinLockRelease(&conn_shared->mutex);

	if (was_banned)
	{
		char		buf[64];

		TgEvent		ev;

		tg_addr_format(&addr, buf, sizeof(buf));
		ereport(LOG,
				(errmsg("trading_guard: client address %s unbanned by %s",
						buf, GetUserNameFromId(GetUserId(), false))));
		tg_event_start(&ev, TG_EV_UNBAN, TG_OUT_INFO);
		ev.addr = addr;
		tg_event_set(&ev, role, GetUserNameFromId(GetUserId(), false));
		tg_event_set(&ev, reason, "unbanned by unban()");
		(void) tg_event_emit(&ev);
	}
	PG_RETURN_BOOL(was_banned);

network:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unban() takes one address, not a network"),
			 errhint("Pass the address with no prefix length, as banned_addresses shows it.")));
	PG_RETURN_NULL();			/* keep the compiler quiet */
}
