/*-------------------------------------------------------------------------
 *
 * risk_limits.c
 *	  Pre-trade limits of the order trigger (orders per second and per
 *	  minute, notional per order and per rolling window, per role or per
 *	  role and account) and signing limits of sign_request (requests per
 *	  second and per minute, per credential).
 *
 * The limits themselves are rows of trading_guard.order_limits and
 * trading_guard.sign_limits, cached per backend and followed through
 * src/own_tables.c.  What they have admitted lives in shared memory: one
 * entry per subject (a role, a role's account, a credential) per database,
 * found by hash; a full table gives a new subject the entry of one whose
 * windows are empty, and refuses it (fail closed) when none is.  So the counts are per server: a restart
 * starts every window empty, and a standby counts its own signatures.
 *
 * Windows: a window of length W is cut in 60 slots of W/60; a subject's use
 * is the sum of the current slot and the 60 before it.  An order therefore
 * counts against the limit for between W and W + W/60 after it was
 * admitted -- never less -- so in no interval of length W, wherever it
 * starts, are more than the limit admitted.  An order is admitted only if
 * every limit that applies to it has room, and then counts in all of them;
 * the check and the count happen under one spinlock, so two sessions can
 * never both take the last unit of room.  An order whose transaction later
 * rolls back has still used its room (as an exchange counts a request it
 * rejected).
 *
 * Notional amounts are counted in whole 10^-8 units of the quote asset: an
 * order's notional rounded up, a limit rounded down, so rounding can only
 * refuse early, never admit more.
 *
 * Halt refusals are counted here too (per subject), so that limit_usage
 * shows every refusal of the incident-response checks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "events.h"
#include "risk_limits.h"
#include "numeric_guard.h"
#include "own_tables.h"
#include "shmem.h"
#include "trading_guard.h"

#define LIMIT_SLOTS		61		/* 60 slots of W/60 and the current one */
#define LIMIT_ENTRIES	1024	/* subjects per server */
#define LIMIT_NAME_LEN	64
#define NOTIONAL_SCALE	8		/* notional counted in 10^-8 units */

#define USECS_PER_MINUTE_I ((int64) 60 * USECS_PER_SEC)

typedef struct LimitWindow
{
	int64		slot_us;		/* slot width: W / 60; 0 = never used */
	int64		head;			/* absolute number of the current slot */
	int64		total;			/* sum of slot[] */
	int64		slot[LIMIT_SLOTS];
} LimitWindow;

/* the windows of one subject */
enum
{
	WIN_SHORT,					/* per second */
	WIN_LONG,					/* per minute */
	WIN_NOTIONAL,				/* notional per notional_window */
	WIN_NUM
};

typedef enum SubjectKind
{
	SUBJECT_ORDER = 1,			/* roleid, and account when has_account */
	SUBJECT_SIGN = 2			/* a = exchange, b = label */
} SubjectKind;

typedef struct LimitKey
{
	Oid			dboid;
	Oid			roleid;
	int32		kind;			/* SubjectKind */
	bool		has_account;
	char		a[LIMIT_NAME_LEN];
	char		b[LIMIT_NAME_LEN];
} LimitKey;

typedef struct LimitEntry
{
	bool		used;
	uint32		hash;
	LimitKey	key;
	LimitWindow win[WIN_NUM];
	int64		admitted;
	int64		refused[TG_LIM_NUM];
	TimestampTz last_refused[TG_LIM_NUM];
	TimestampTz last_used;		/* by entry_find: never reused in the call
								 * (the critical section) that found it */
} LimitEntry;

typedef struct LimitShared
{
	slock_t		mutex;			/* everything below */
	LimitEntry	entries[LIMIT_ENTRIES];
} LimitShared;

static LimitShared *limit_shared = NULL;

static const char *const limit_names[TG_LIM_NUM] = {
	[TG_LIM_ORDERS_PER_SECOND] = "orders_per_second",
	[TG_LIM_ORDERS_PER_MINUTE] = "orders_per_minute",
	[TG_LIM_ORDER_NOTIONAL] = "max_order_notional",
	[TG_LIM_NOTIONAL_WINDOW] = "max_notional",
	[TG_LIM_REQUESTS_PER_SECOND] = "requests_per_second",
	[TG_LIM_REQUESTS_PER_MINUTE] = "requests_per_minute",
	[TG_LIM_HALT] = "halt",
};

/* ----------------------------------------------------------------------
 * Shared memory
 * ----------------------------------------------------------------------
 */
static void
limits_shmem_init(void *ptr, bool found)
{
	LimitShared *s = ptr;

	if (!found)
	{
		memset(s, 0, sizeof(LimitShared));
		SpinLockInit(&s->mutex);
	}
	limit_shared = s;
}

void
tg_limits_init(void)
{
	if (process_shared_preload_libraries_in_progress)
		tg_shmem_register("trading_guard limits", sizeof(LimitShared), limits_shmem_init);
}

static void
key_init(LimitKey *key, SubjectKind kind, Oid roleid)
{
	memset(key, 0, sizeof(LimitKey));
	key->dboid = MyDatabaseId;
	key->kind = kind;
	key->roleid = roleid;
}

static bool entry_idle(const LimitEntry *e, TimestampTz now);

/*
 * The entry of key, added when missing and add is true; NULL when it is
 * missing (or it cannot be added).  A full table makes room by forgetting a
 * subject whose windows hold nothing any more (as of now): it had admitted
 * nothing within any of its limits' windows, so forgetting it lets nothing
 * more through (only its refusal counts go with it).  Entries are never
 * emptied, so a lookup's probe never stops early; in a full table it goes
 * round once.  Caller holds the mutex.
 */
static LimitEntry *
entry_find(const LimitKey *key, uint32 hash, bool add, TimestampTz now)
{
	uint32		i = hash % LIMIT_ENTRIES;

	for (int probe = 0; probe < LIMIT_ENTRIES; probe++, i = (i + 1) % LIMIT_ENTRIES)
	{
		LimitEntry *e = &limit_shared->entries[i];

		if (!e->used)
		{
			if (!add)
				return NULL;
			break;
		}
		if (e->hash == hash && memcmp(&e->key, key, sizeof(LimitKey)) == 0)
		{
			if (now != 0)
				e->last_used = now;
			return e;
		}
		if (probe == LIMIT_ENTRIES - 1)
		{
			/* full, and not there */
			if (!add)
				return NULL;
			for (probe = 0; probe < LIMIT_ENTRIES; probe++, i = (i + 1) % LIMIT_ENTRIES)
				if (entry_idle(&limit_shared->entries[i], now))
					break;
			if (probe == LIMIT_ENTRIES)
				return NULL;
			break;
		}
	}
	{
		LimitEntry *e = &limit_shared->entries[i];

		memset(e, 0, sizeof(LimitEntry));
		e->used = true;
		e->hash = hash;
		e->key = *key;
		e->last_used = now;
		return e;
	}
}

static uint32
key_hash(const LimitKey *key)
{
	return hash_bytes((const unsigned char *) key, sizeof(LimitKey));
}

/* Move a window to the slot of now, dropping what left it */
static void
window_advance(LimitWindow *w, int64 slot_us, TimestampTz now)
{
	int64		now_slot = now / slot_us;

	if (w->slot_us != slot_us)
	{
		/* first use, or the limit's window changed: start empty */
		memset(w, 0, sizeof(LimitWindow));
		w->slot_us = slot_us;
		w->head = now_slot;
		return;
	}
	if (now_slot <= w->head)
		return;					/* same slot (or the clock went back) */
	if (now_slot - w->head >= LIMIT_SLOTS)
	{
		memset(w->slot, 0, sizeof(w->slot));
		w->total = 0;
	}
	else
	{
		for (int64 s = w->head + 1; s <= now_slot; s++)
		{
			int			i = (int) (s % LIMIT_SLOTS);

			w->total -= w->slot[i];
			w->slot[i] = 0;
		}
	}
	w->head = now_slot;
}

static void
window_add(LimitWindow *w, int64 amount)
{
	w->slot[w->head % LIMIT_SLOTS] += amount;
	w->total += amount;
}

/*
 * What a window holds as of now (window_advance's total, without moving
 * the window); 0 for a window of another slot width (it would restart).
 */
static int64
window_total_at(const LimitWindow *w, int64 slot_us, TimestampTz now)
{
	int64		now_slot;
	int64		total;

	if (w->slot_us == 0 || w->slot_us != slot_us)
		return 0;
	now_slot = now / slot_us;
	if (now_slot <= w->head)
		return w->total;
	if (now_slot - w->head >= LIMIT_SLOTS)
		return 0;
	total = w->total;
	for (int64 s = w->head + 1; s <= now_slot; s++)
		total -= w->slot[s % LIMIT_SLOTS];
	return total;
}

/* Do the windows of e hold nothing any more, as of now? */
static bool
entry_idle(const LimitEntry *e, TimestampTz now)
{
	if (e->last_used >= now)
		return false;			/* found by this very check */
	for (int w = 0; w < WIN_NUM; w++)
		if (window_total_at(&e->win[w], e->win[w].slot_us, now) != 0)
			return false;
	return true;
}

/* ----------------------------------------------------------------------
 * The limits (per backend caches of order_limits and sign_limits)
 * ----------------------------------------------------------------------
 */
typedef struct OrderLimitRow
{
	Oid			role;
	bool		has_account;
	char		account[LIMIT_NAME_LEN];
	int32		per_second;		/* 0 = none */
	int32		per_minute;
	int64		order_max;		/* notional units; 0 = none */
	int64		window_max;
	int64		window_us;
	LimitKey	key;			/* its shared-memory entry's key, and hash */
	uint32		hash;
} OrderLimitRow;

typedef struct SignLimitRow
{
	char		exchange[LIMIT_NAME_LEN];
	char		label[LIMIT_NAME_LEN];
	int32		per_second;
	int32		per_minute;
	LimitKey	key;
	uint32		hash;
} SignLimitRow;

static TgOwnRows order_limits;	/* OrderLimitRow */
static TgOwnRows sign_limits;	/* SignLimitRow */

#define ORDER_ROW(i)	(((OrderLimitRow *) order_limits.rows)[i])
#define SIGN_ROW(i)		(((SignLimitRow *) sign_limits.rows)[i])

static int32
int_col(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

static int64
int8_col(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

static void
order_limit_fill(HeapTuple tup, TupleDesc desc, void *row)
{
	OrderLimitRow *r = row;
	bool		isnull;

	r->role = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	r->has_account = !tg_own_text_col(tup, desc, 2, r->account, sizeof(r->account));
	r->per_second = int_col(tup, desc, 3);
	r->per_minute = int_col(tup, desc, 4);
	r->order_max = int8_col(tup, desc, 5);
	r->window_max = int8_col(tup, desc, 6);
	r->window_us = int8_col(tup, desc, 7);
	key_init(&r->key, SUBJECT_ORDER, r->role);
	r->key.has_account = r->has_account;
	strlcpy(r->key.a, r->account, sizeof(r->key.a));
	r->hash = key_hash(&r->key);
}

/* Make sure the cached order limits are current */
static void
order_limits_current(void)
{
	tg_own_rows_current(&order_limits, TG_OWN_ORDER_LIMITS,
						"SELECT role::pg_catalog.oid, account, orders_per_second, orders_per_minute,"
						"       pg_catalog.ceil(max_order_notional OPERATOR(pg_catalog.*) 100000000::pg_catalog.numeric)::pg_catalog.int8,"
						"       pg_catalog.floor(max_notional OPERATOR(pg_catalog.*) 100000000::pg_catalog.numeric)::pg_catalog.int8,"
						"       (pg_catalog.extract('epoch'::pg_catalog.text, notional_window) OPERATOR(pg_catalog.*) 1000000::pg_catalog.numeric)::pg_catalog.int8"
						"  FROM trading_guard.order_limits",
						sizeof(OrderLimitRow), order_limit_fill);
}

static void
sign_limit_fill(HeapTuple tup, TupleDesc desc, void *row)
{
	SignLimitRow *r = row;

	(void) tg_own_text_col(tup, desc, 1, r->exchange, sizeof(r->exchange));
	(void) tg_own_text_col(tup, desc, 2, r->label, sizeof(r->label));
	r->per_second = int_col(tup, desc, 3);
	r->per_minute = int_col(tup, desc, 4);
	key_init(&r->key, SUBJECT_SIGN, InvalidOid);
	strlcpy(r->key.a, r->exchange, sizeof(r->key.a));
	strlcpy(r->key.b, r->label, sizeof(r->key.b));
	r->hash = key_hash(&r->key);
}

static void
sign_limits_current(void)
{
	tg_own_rows_current(&sign_limits, TG_OWN_SIGN_LIMITS,
						"SELECT exchange, label, requests_per_second, requests_per_minute"
						"  FROM trading_guard.sign_limits",
						sizeof(SignLimitRow), sign_limit_fill);
}

/* ----------------------------------------------------------------------
 * Checks
 * ----------------------------------------------------------------------
 */

/* Notional amounts as numeric, for messages and limit_usage */
static char *
units_out(int64 units)
{
	return tg_num_out(DatumGetNumeric(DirectFunctionCall1(numeric_trim_scale,
														  NumericGetDatum(int64_div_fast_to_numeric(units, NOTIONAL_SCALE)))));
}

/*
 * quantity * price in 10^-8 units, rounded up; PG_INT64_MAX when it is
 * above every limit (limits are below 10^10).
 */
static int64
notional_units(Numeric quantity, Numeric price)
{
	Numeric		product;
	int64		units;
	Datum		d;

#ifdef HAVE_INT128
	{
		/*
		 * Usually both fit in an int64 at their own scale: multiply as
		 * integers, without a numeric product (they are positive: the
		 * exchange filters ran first).
		 */
		int			qs = tg_num_dscale(quantity);
		int			ps = tg_num_dscale(price);
		int64		q;
		int64		p;

		if (qs >= 0 && ps >= 0 && qs <= TG_SCALED_MAX_SCALE && ps <= TG_SCALED_MAX_SCALE &&
			tg_num_scaled(quantity, qs, &q) && tg_num_scaled(price, ps, &p) &&
			q >= 0 && p >= 0)
		{
			int128		prod = (int128) q * p;	/* scale qs + ps */
			int			scale = qs + ps;

			for (; scale < NOTIONAL_SCALE; scale++)
			{
				if (prod > PG_INT64_MAX)
					return PG_INT64_MAX;
				prod *= 10;
			}
			for (; scale > NOTIONAL_SCALE; scale--)
				prod = prod / 10 + (prod % 10 != 0);	/* round up */
			return prod > PG_INT64_MAX ? PG_INT64_MAX : (int64) prod;
		}
	}
#endif

	product = tg_num_mul(quantity, price);
	if (tg_num_scaled(product, NOTIONAL_SCALE, &units))
		return units;
	if (tg_num_cmp(product, int64_to_numeric(10000000000)) >= 0)
		return PG_INT64_MAX;
	/* more than 8 decimals: round up */
	d = DirectFunctionCall2(numeric_mul, NumericGetDatum(product),
							NumericGetDatum(int64_to_numeric(100000000)));
	d = DirectFunctionCall1(numeric_ceil, d);
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, d));
}

/* A window's length for messages: "1 hour", "90 seconds" */
static char *
window_text(int64 us)
{
	int64		s = us / USECS_PER_SEC;

	if (s % 3600 == 0)
		return psprintf(INT64_FORMAT " hour%s", s / 3600, s == 3600 ? "" : "s");
	if (s % 60 == 0)
		return psprintf(INT64_FORMAT " minute%s", s / 60, s == 60 ? "" : "s");
	return psprintf(INT64_FORMAT " second%s", s, s == 1 ? "" : "s");
}

static const char *
role_name(Oid role)
{
	const char *name = GetUserNameFromId(role, true);

	return name ? name : psprintf("%u", role);
}

/* The subject of an order limit row, for messages */
static char *
order_subject_text(const OrderLimitRow *r)
{
	if (r->has_account)
		return psprintf("role \"%s\" account \"%s\"", role_name(r->role), r->account);
	return psprintf("role \"%s\"", role_name(r->role));
}

/* A refusal: a security event, then the error */
static void pg_attribute_noreturn()
refuse(int sqlstate, TgLimitKind kind, const char *role, const char *exchange,
	   const char *label, const char *account, const char *message,
	   const char *detail, const char *hint)
{
	TgEvent		ev;

	tg_event_start(&ev, TG_EV_RATE_LIMIT, TG_OUT_REFUSED);
	if (role)
		tg_event_set(&ev, role, role);
	if (exchange)
		tg_event_set(&ev, exchange, exchange);
	if (label)
		tg_event_set(&ev, label, label);
	tg_event_set(&ev, reason, message);
	tg_event_detail(&ev, "limit", limit_names[kind]);
	tg_event_detail(&ev, "sqlstate", unpack_sql_state(sqlstate));
	if (account)
		tg_event_detail(&ev, "account", account);
	(void) tg_event_emit(&ev);

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg_internal("%s", message),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("%s", hint)));
	pg_unreachable();
}

static void
require_shared(const char *what)
{
	if (limit_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s need trading_guard in shared_preload_libraries", what),
				 errdetail("Limits count what they admit in shared memory."),
				 errhint("Add trading_guard to shared_preload_libraries and restart, or drop the limits.")));
}

static void count_refusal(const LimitKey *key, TgLimitKind kind);

/* Does limit row r apply to the order of subject s? */
static bool
order_row_applies(const OrderLimitRow *r, const TgOrderSubject *s)
{
	bool		role_match = false;

	for (int i = 0; i < s->nroles; i++)
		if (r->role == s->roles[i])
			role_match = true;
	if (!role_match)
		return false;
	if (!r->has_account)
		return true;
	return s->account != NULL && s->account_len == (int) strlen(r->account) &&
		memcmp(s->account, r->account, s->account_len) == 0;
}

/* at most 2 roles (current, session) x (role-wide, account) rows apply */
#define MAX_APPLY 4

/*
 * Check an order against the limits of its roles (and account); raises the
 * first limit it would break, else counts it in every one.
 */
void
tg_limits_check_order(const TgOrder *o, const TgOrderSubject *s)
{
	const OrderLimitRow *apply[MAX_APPLY];
	LimitEntry *entries[MAX_APPLY];
	int			napply = 0;
	bool		need_notional = false;
	int64		notional = 0;
	TimestampTz now;
	TgLimitKind refused = TG_LIM_NUM;
	const OrderLimitRow *refused_row = NULL;
	int64		used = 0;
	bool		full = false;
	sigset_t	saved;
	bool		blocked;

	order_limits_current();
	if (order_limits.nrows == 0)
		return;
	for (int i = 0; i < order_limits.nrows && napply < MAX_APPLY; i++)
	{
		if (!order_row_applies(&ORDER_ROW(i), s))
			continue;
		apply[napply++] = &ORDER_ROW(i);
		if (ORDER_ROW(i).order_max > 0 || ORDER_ROW(i).window_max > 0)
			need_notional = true;
	}
	if (napply == 0)
		return;
	require_shared("order limits");

	if (need_notional)
	{
		if (o->price == NULL)
		{
			const OrderLimitRow *r = apply[0];

			for (int i = 0; i < napply; i++)
				if (apply[i]->order_max > 0 || apply[i]->window_max > 0)
					r = apply[i];
			count_refusal(&r->key, r->order_max > 0 ? TG_LIM_ORDER_NOTIONAL : TG_LIM_NOTIONAL_WINDOW);
			refuse(ERRCODE_TG_NOTIONAL_UNKNOWN, TG_LIM_ORDER_NOTIONAL,
				   role_name(r->role), NULL, NULL, r->has_account ? r->account : NULL,
				   psprintf("order without a price cannot be checked against the notional limits of %s",
							order_subject_text(r)),
				   NULL,
				   "Give the order a price (a limit order), or set the limits without notional ones.");
		}
		notional = notional_units(o->quantity, o->price);
	}

	now = GetCurrentTimestamp();
	blocked = tg_spin_acquire(&limit_shared->mutex, &saved);
	for (int i = 0; i < napply && refused == TG_LIM_NUM; i++)
	{
		const OrderLimitRow *r = apply[i];
		LimitEntry *e;

		e = entry_find(&r->key, r->hash, true, now);
		if (e == NULL)
		{
			full = true;
			break;
		}
		entries[i] = e;

		if (r->order_max > 0 && notional > r->order_max)
		{
			refused = TG_LIM_ORDER_NOTIONAL;
			used = notional;
		}
		if (refused == TG_LIM_NUM && r->per_second > 0)
		{
			window_advance(&e->win[WIN_SHORT], USECS_PER_SEC / 60, now);
			if (e->win[WIN_SHORT].total + 1 > r->per_second)
			{
				refused = TG_LIM_ORDERS_PER_SECOND;
				used = e->win[WIN_SHORT].total;
			}
		}
		if (refused == TG_LIM_NUM && r->per_minute > 0)
		{
			window_advance(&e->win[WIN_LONG], USECS_PER_MINUTE_I / 60, now);
			if (e->win[WIN_LONG].total + 1 > r->per_minute)
			{
				refused = TG_LIM_ORDERS_PER_MINUTE;
				used = e->win[WIN_LONG].total;
			}
		}
		if (refused == TG_LIM_NUM && r->window_max > 0)
		{
			window_advance(&e->win[WIN_NOTIONAL], Max(r->window_us / 60, 1), now);
			if (notional > r->window_max - e->win[WIN_NOTIONAL].total)
			{
				refused = TG_LIM_NOTIONAL_WINDOW;
				used = e->win[WIN_NOTIONAL].total;
			}
		}
		if (refused != TG_LIM_NUM)
		{
			e->refused[refused]++;
			e->last_refused[refused] = now;
			refused_row = r;
		}
	}
	if (refused == TG_LIM_NUM && !full)
	{
		for (int i = 0; i < napply; i++)
		{
			const OrderLimitRow *r = apply[i];
			LimitEntry *e = entries[i];

			if (r->per_second > 0)
				window_add(&e->win[WIN_SHORT], 1);
			if (r->per_minute > 0)
				window_add(&e->win[WIN_LONG], 1);
			if (r->window_max > 0)
				window_add(&e->win[WIN_NOTIONAL], notional);
			e->admitted++;
		}
	}
	tg_spin_release(&limit_shared->mutex, blocked, &saved);

	if (full)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many subjects with limits on this server (at most %d)", LIMIT_ENTRIES),
				 errdetail("The order is refused because its limits cannot be counted: every entry holds orders still inside a window."),
				 errhint("Entries make room by themselves once their windows are empty; see trading_guard.limit_usage.")));
	if (refused == TG_LIM_NUM)
		return;

	{
		const OrderLimitRow *r = refused_row;
		char	   *subject = order_subject_text(r);
		const char *account = r->has_account ? r->account : NULL;

		switch (refused)
		{
			case TG_LIM_ORDERS_PER_SECOND:
			case TG_LIM_ORDERS_PER_MINUTE:
				{
					bool		per_second = refused == TG_LIM_ORDERS_PER_SECOND;

					refuse(ERRCODE_TG_ORDER_RATE_LIMIT, refused, role_name(r->role), NULL, NULL, account,
						   psprintf("order rate limit of %s reached: %d orders per %s",
									subject, per_second ? r->per_second : r->per_minute,
									per_second ? "second" : "minute"),
						   psprintf("The limit has admitted " INT64_FORMAT " orders in the last %s on this server.",
									used, per_second ? "second" : "minute"),
						   "Orders are admitted again as the window moves on; see trading_guard.limit_usage.");
				}
				break;
			case TG_LIM_ORDER_NOTIONAL:
				refuse(ERRCODE_TG_ORDER_NOTIONAL_LIMIT, refused, role_name(r->role), NULL, NULL, account,
					   psprintf("order notional %s is above the limit %s per order of %s",
								units_out(used), units_out(r->order_max), subject),
					   NULL,
					   "Split the order, or raise the limit with trading_guard.set_order_limit().");
				break;
			case TG_LIM_NOTIONAL_WINDOW:
				refuse(ERRCODE_TG_EXPOSURE_LIMIT, refused, role_name(r->role), NULL, NULL, account,
					   psprintf("exposure limit of %s reached: notional %s per %s",
								subject, units_out(r->window_max),
								window_text(r->window_us)),
					   psprintf("Orders in the window total %s; this one adds %s.",
								units_out(used), units_out(notional)),
					   "Orders are admitted again as the window moves on; see trading_guard.limit_usage.");
				break;
			default:
				break;
		}
	}
}

/*
 * Check a signature against its credential's limits; raises the first it
 * would break, else counts it.
 */
void
tg_limits_check_sign(const char *exchange, const char *label)
{
	const SignLimitRow *r = NULL;
	LimitEntry *e;
	TimestampTz now;
	TgLimitKind refused = TG_LIM_NUM;
	int64		used = 0;
	sigset_t	saved;
	bool		blocked;

	sign_limits_current();
	for (int i = 0; i < sign_limits.nrows; i++)
	{
		if (strcmp(SIGN_ROW(i).exchange, exchange) == 0 &&
			strcmp(SIGN_ROW(i).label, label) == 0)
		{
			r = &SIGN_ROW(i);
			break;
		}
	}
	if (r == NULL)
		return;
	require_shared("signing limits");
	now = GetCurrentTimestamp();

	blocked = tg_spin_acquire(&limit_shared->mutex, &saved);
	e = entry_find(&r->key, r->hash, true, now);
	if (e != NULL)
	{
		if (r->per_second > 0)
		{
			window_advance(&e->win[WIN_SHORT], USECS_PER_SEC / 60, now);
			if (e->win[WIN_SHORT].total + 1 > r->per_second)
			{
				refused = TG_LIM_REQUESTS_PER_SECOND;
				used = e->win[WIN_SHORT].total;
			}
		}
		if (refused == TG_LIM_NUM && r->per_minute > 0)
		{
			window_advance(&e->win[WIN_LONG], USECS_PER_MINUTE_I / 60, now);
			if (e->win[WIN_LONG].total + 1 > r->per_minute)
			{
				refused = TG_LIM_REQUESTS_PER_MINUTE;
				used = e->win[WIN_LONG].total;
			}
		}
		if (refused == TG_LIM_NUM)
		{
			if (r->per_second > 0)
				window_add(&e->win[WIN_SHORT], 1);
			if (r->per_minute > 0)
				window_add(&e->win[WIN_LONG], 1);
			e->admitted++;
		}
		else
		{
			e->refused[refused]++;
			e->last_refused[refused] = now;
		}
	}
	tg_spin_release(&limit_shared->mutex, blocked, &saved);

	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many subjects with limits on this server (at most %d)", LIMIT_ENTRIES),
				 errdetail("The signature is refused because its limits cannot be counted: every entry holds requests still inside a window."),
				 errhint("Entries make room by themselves once their windows are empty; see trading_guard.limit_usage.")));
	if (refused == TG_LIM_NUM)
		return;
	{
		bool		per_second = refused == TG_LIM_REQUESTS_PER_SECOND;

		refuse(ERRCODE_TG_SIGN_RATE_LIMIT, refused,
			   GetUserNameFromId(GetOuterUserId(), false), exchange, label, NULL,
			   psprintf("signing rate limit of credential %s/%s reached: %d requests per %s",
						exchange, label, per_second ? r->per_second : r->per_minute,
						per_second ? "second" : "minute"),
			   psprintf("The limit has admitted " INT64_FORMAT " signatures in the last %s on this server.",
						used, per_second ? "second" : "minute"),
			   "Nothing was signed, so the exchange saw nothing; see trading_guard.limit_usage.");
	}
}

/* Count a refusal of kind against key (when shared memory is there) */
static void
count_refusal(const LimitKey *key, TgLimitKind kind)
{
	LimitEntry *e;
	sigset_t	saved;
	bool		blocked;
	TimestampTz now = GetCurrentTimestamp();

	if (limit_shared == NULL)
		return;
	blocked = tg_spin_acquire(&limit_shared->mutex, &saved);
	e = entry_find(key, key_hash(key), true, now);
	if (e != NULL)
	{
		e->refused[kind]++;
		e->last_refused[kind] = now;
	}
	tg_spin_release(&limit_shared->mutex, blocked, &saved);
}

/* An order refused by a halt: counted for its (first) role */
void
tg_limits_count_halt_order(const TgOrderSubject *s)
{
	LimitKey	key;

	key_init(&key, SUBJECT_ORDER, s->roles[0]);
	count_refusal(&key, TG_LIM_HALT);
}

/* A signature refused by a halt: counted for its credential */
void
tg_limits_count_halt_sign(const char *exchange, const char *label)
{
	LimitKey	key;

	key_init(&key, SUBJECT_SIGN, InvalidOid);
	strlcpy(key.a, exchange, sizeof(key.a));
	strlcpy(key.b, label, sizeof(key.b));
	count_refusal(&key, TG_LIM_HALT);
}

/* ----------------------------------------------------------------------
 * limit_usage()
 * ----------------------------------------------------------------------
 */
#define USAGE_COLS 12

/* Notional units as a numeric datum, without trailing zeros */
static Datum
notional_datum(int64 units)
{
	return DirectFunctionCall1(numeric_trim_scale,
							   NumericGetDatum(int64_div_fast_to_numeric(units, NOTIONAL_SCALE)));
}

static void
usage_row(ReturnSetInfo *rsinfo, const LimitEntry *e, bool sign, TgLimitKind kind,
		  Datum limit_value, bool has_limit, double window_s, Datum used, bool has_used)
{
	Datum		values[USAGE_COLS];
	bool		nulls[USAGE_COLS];

	memset(nulls, true, sizeof(nulls));
	values[0] = CStringGetTextDatum(sign ? "sign" : "order");
	nulls[0] = false;
	if (!sign)
	{
		values[1] = ObjectIdGetDatum(e->key.roleid);
		nulls[1] = false;
		if (e->key.has_account)
		{
			values[2] = CStringGetTextDatum(e->key.a);
			nulls[2] = false;
		}
	}
	else
	{
		values[3] = CStringGetTextDatum(e->key.a);
		values[4] = CStringGetTextDatum(e->key.b);
		nulls[3] = nulls[4] = false;
	}
	values[5] = CStringGetTextDatum(limit_names[kind]);
	nulls[5] = false;
	if (has_limit)
	{
		values[6] = limit_value;
		nulls[6] = false;
	}
	if (window_s > 0)
	{
		values[7] = Float8GetDatum(window_s);
		nulls[7] = false;
	}
	if (has_used)
	{
		values[8] = used;
		nulls[8] = false;
	}
	if (kind != TG_LIM_HALT)
	{
		values[9] = Int64GetDatum(e->admitted);
		nulls[9] = false;
	}
	values[10] = Int64GetDatum(e->refused[kind]);
	nulls[10] = false;
	if (e->last_refused[kind] != 0)
	{
		values[11] = TimestampTzGetDatum(e->last_refused[kind]);
		nulls[11] = false;
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* A snapshot of key's entry (zeros when it has none yet) */
static void
entry_copy(const LimitKey *key, LimitEntry *out)
{
	LimitEntry *e;
	sigset_t	saved;
	bool		blocked;

	memset(out, 0, sizeof(LimitEntry));
	out->key = *key;
	blocked = tg_spin_acquire(&limit_shared->mutex, &saved);
	e = entry_find(key, key_hash(key), false, 0);
	if (e != NULL)
		*out = *e;
	tg_spin_release(&limit_shared->mutex, blocked, &saved);
}

/*
 * SQL: limit_usage() returns setof record (see the view limit_usage)
 *
 * One row per limit of this database (whether used yet or not) and per
 * subject a halt has refused.
 */
PG_FUNCTION_INFO_V1(tg_limit_usage);
Datum
tg_limit_usage(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	LimitEntry *copy;
	sigset_t	saved;
	bool		blocked;

	InitMaterializedSRF(fcinfo, 0);
	require_shared("limit_usage");
	order_limits_current();
	sign_limits_current();
	copy = palloc(sizeof(LimitEntry));

	for (int i = 0; i < order_limits.nrows; i++)
	{
		const OrderLimitRow *r = &ORDER_ROW(i);

		entry_copy(&r->key, copy);
		if (r->per_second > 0)
			usage_row(rsinfo, copy, false, TG_LIM_ORDERS_PER_SECOND,
					  NumericGetDatum(int64_to_numeric(r->per_second)), true, 1,
					  NumericGetDatum(int64_to_numeric(window_total_at(&copy->win[WIN_SHORT], USECS_PER_SEC / 60, now))), true);
		if (r->per_minute > 0)
			usage_row(rsinfo, copy, false, TG_LIM_ORDERS_PER_MINUTE,
					  NumericGetDatum(int64_to_numeric(r->per_minute)), true, 60,
					  NumericGetDatum(int64_to_numeric(window_total_at(&copy->win[WIN_LONG], USECS_PER_MINUTE_I / 60, now))), true);
		if (r->order_max > 0)
			usage_row(rsinfo, copy, false, TG_LIM_ORDER_NOTIONAL,
					  notional_datum(r->order_max), true, 0,
					  (Datum) 0, false);
		if (r->window_max > 0)
			usage_row(rsinfo, copy, false, TG_LIM_NOTIONAL_WINDOW,
					  notional_datum(r->window_max), true,
					  (double) r->window_us / USECS_PER_SEC,
					  notional_datum(window_total_at(&copy->win[WIN_NOTIONAL], Max(r->window_us / 60, 1), now)), true);
	}
	for (int i = 0; i < sign_limits.nrows; i++)
	{
		const SignLimitRow *r = &SIGN_ROW(i);

		entry_copy(&r->key, copy);
		if (r->per_second > 0)
			usage_row(rsinfo, copy, true, TG_LIM_REQUESTS_PER_SECOND,
					  NumericGetDatum(int64_to_numeric(r->per_second)), true, 1,
					  NumericGetDatum(int64_to_numeric(window_total_at(&copy->win[WIN_SHORT], USECS_PER_SEC / 60, now))), true);
		if (r->per_minute > 0)
			usage_row(rsinfo, copy, true, TG_LIM_REQUESTS_PER_MINUTE,
					  NumericGetDatum(int64_to_numeric(r->per_minute)), true, 60,
					  NumericGetDatum(int64_to_numeric(window_total_at(&copy->win[WIN_LONG], USECS_PER_MINUTE_I / 60, now))), true);
	}

	/* refusals by halts: every subject of this database that has some */
	for (int i = 0; i < LIMIT_ENTRIES; i++)
	{
		LimitEntry *e = &limit_shared->entries[i];
		bool		match;

		blocked = tg_spin_acquire(&limit_shared->mutex, &saved);
		match = e->used && e->key.dboid == MyDatabaseId && e->refused[TG_LIM_HALT] > 0;
		if (match)
			*copy = *e;
		tg_spin_release(&limit_shared->mutex, blocked, &saved);
		if (match)
			usage_row(rsinfo, copy, copy->key.kind == SUBJECT_SIGN, TG_LIM_HALT,
					  (Datum) 0, false, 0, (Datum) 0, false);
	}
	return (Datum) 0;
}
