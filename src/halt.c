/*-------------------------------------------------------------------------
 *
 * halt.c
 *	  Trading halts: the checks of the order trigger and of sign_request
 *	  against trading_guard.trading_halts, the cancel and read purposes of
 *	  a signature on a halted exchange, and the security events of the
 *	  incident-response functions.
 *
 * A halt is a row of trading_halts (halt_trading() inserts it,
 * resume_trading() deletes it).  Each backend caches the rows and follows
 * the table through src/own_tables.c: the statement trigger on the table
 * sends a relcache invalidation at commit, through PostgreSQL's shared
 * invalidation queue in shared memory, and in the commit record's WAL to
 * every streaming standby, whose startup process sends it on to the
 * standby's backends.  The callers take in invalidations before each check
 * (AcceptInvalidationMessages, a few instructions when there is nothing
 * new), so a committed halt stops the next order or signature of every
 * session -- in the middle of a transaction too -- on the primary and on
 * every standby as soon as it has replayed the commit.  A halt survives a
 * restart because it is a row.
 *
 * Scope: a row with NULL exchange, symbol and role halts everything; each
 * non-null field narrows it.  An order is in scope when its symbol, its
 * exchange (when the table has an exchange column: protect_orders'
 * exchange_col; a table without one is in the scope of every exchange
 * halt, erring on the side of stopping) and one of its roles (the current
 * user, and the session user) match.  A signature is in scope when its
 * credential's exchange and the caller's role match; symbol-only halts do
 * not stop signatures (the payload's symbol is the exchange's business).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "events.h"
#include "halt.h"
#include "risk_limits.h"
#include "own_tables.h"
#include "trading_guard.h"

#define HALT_NAME_LEN	64
#define HALT_REASON_LEN 201

typedef struct HaltRow
{
	int64		id;
	bool		any_exchange;
	char		exchange[HALT_NAME_LEN];
	bool		any_symbol;
	char		symbol[HALT_NAME_LEN];
	Oid			role;			/* InvalidOid: any */
	char		reason[HALT_REASON_LEN];
	char		halted_by[HALT_NAME_LEN];
} HaltRow;

typedef struct PurposeRow
{
	char		exchange[HALT_NAME_LEN];
	TgSignPurpose purpose;
	text	   *pattern;		/* in the cache's memory context */
} PurposeRow;

static TgOwnRows halts;			/* HaltRow */
static TgOwnRows purposes;		/* PurposeRow */

#define HALT(i)		(((const HaltRow *) halts.rows)[i])
#define PURPOSE(i)	(((const PurposeRow *) purposes.rows)[i])

static void
halt_fill(HeapTuple tup, TupleDesc desc, void *row)
{
	HaltRow    *h = row;
	bool		isnull;
	Datum		d;

	h->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	h->any_exchange = tg_own_text_col(tup, desc, 2, h->exchange, sizeof(h->exchange));
	h->any_symbol = tg_own_text_col(tup, desc, 3, h->symbol, sizeof(h->symbol));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	h->role = isnull ? InvalidOid : DatumGetObjectId(d);
	(void) tg_own_text_col(tup, desc, 5, h->reason, sizeof(h->reason));
	(void) tg_own_text_col(tup, desc, 6, h->halted_by, sizeof(h->halted_by));
}

/* Make sure the cached halts are current */
static void
halts_current(void)
{
	tg_own_rows_current(&halts, TG_OWN_TRADING_HALTS,
						"SELECT id, exchange, symbol, role::pg_catalog.oid, reason,"
						"       halted_by::pg_catalog.text"
						"  FROM trading_guard.trading_halts ORDER BY id",
						sizeof(HaltRow), halt_fill);
}

static void
purpose_fill(HeapTuple tup, TupleDesc desc, void *row)
{
	PurposeRow *p = row;
	char		purpose[16];
	bool		isnull;

	(void) tg_own_text_col(tup, desc, 1, p->exchange, sizeof(p->exchange));
	(void) tg_own_text_col(tup, desc, 2, purpose, sizeof(purpose));
	p->purpose = tg_sign_purpose_from_text(purpose);
	/* in the cache's context: tg_own_rows_current runs fill there */
	p->pattern = DatumGetTextPCopy(SPI_getbinval(tup, desc, 3, &isnull));
}

static void
purposes_current(void)
{
	tg_own_rows_current(&purposes, TG_OWN_SIGN_PURPOSES,
						"SELECT exchange, purpose, payload_pattern FROM trading_guard.sign_purposes",
						sizeof(PurposeRow), purpose_fill);
}

static const char *
halt_role_name(Oid role)
{
	const char *name = GetUserNameFromId(role, true);

	return name ? name : psprintf("%u", role);
}

/* "everything", or "exchange binance, symbol BTCUSDT" */
static char *
scope_text(const HaltRow *h)
{
	StringInfoData buf;

	if (h->any_exchange && h->any_symbol && !OidIsValid(h->role))
		return pstrdup("everything");
	initStringInfo(&buf);
	if (!h->any_exchange)
		appendStringInfo(&buf, "exchange %s", h->exchange);
	if (!h->any_symbol)
		appendStringInfo(&buf, "%ssymbol %s", buf.len ? ", " : "", h->symbol);
	if (OidIsValid(h->role))
		appendStringInfo(&buf, "%srole %s", buf.len ? ", " : "", halt_role_name(h->role));
	return buf.data;
}

static bool
role_in(Oid role, const Oid *roles, int nroles)
{
	for (int i = 0; i < nroles; i++)
		if (roles[i] == role)
			return true;
	return false;
}

/* A refusal by a halt: a security event, then the error */
static void pg_attribute_noreturn()
refuse(const HaltRow *h, const char *what, const char *exchange, const char *label,
	   const char *symbol, const char *purpose, const char *extra_detail)
{
	TgEvent		ev;
	char	   *scope = scope_text(h);
	char	   *message = psprintf("trading is halted (%s): %s", scope, h->reason);

	tg_event_start(&ev, TG_EV_HALT, TG_OUT_REFUSED);
	tg_event_set(&ev, role, GetUserNameFromId(GetOuterUserId(), false));
	if (exchange)
		tg_event_set(&ev, exchange, exchange);
	if (label)
		tg_event_set(&ev, label, label);
	tg_event_set(&ev, reason, message);
	tg_event_detail(&ev, "refused", what);
	tg_event_detail_int(&ev, "halt_id", h->id);
	if (symbol)
		tg_event_detail(&ev, "symbol", symbol);
	if (purpose)
		tg_event_detail(&ev, "purpose", purpose);
	(void) tg_event_emit(&ev);

	ereport(ERROR,
			(errcode(ERRCODE_TG_TRADING_HALTED),
			 errmsg_internal("%s", message),
			 errdetail_internal("Halted by %s. %s", h->halted_by, extra_detail),
			 errhint("See trading_guard.trading_status(); resume_trading() lifts the halt.")));
	pg_unreachable();
}

/*
 * Refuse an order in the scope of a halt.  The caller has taken in
 * invalidations.
 */
void
tg_halt_check_order(const TgOrder *o, const TgOrderSubject *s)
{
	halts_current();
	for (int i = 0; i < halts.nrows; i++)
	{
		const HaltRow *h = &HALT(i);

		if (!h->any_symbol &&
			(o->symbol == NULL || o->symbol_size != (int) strlen(h->symbol) ||
			 memcmp(o->symbol, h->symbol, o->symbol_size) != 0))
			continue;
		if (!h->any_exchange && s->has_exchange_col && s->exchange != NULL &&
			(s->exchange_len != (int) strlen(h->exchange) ||
			 memcmp(s->exchange, h->exchange, s->exchange_len) != 0))
			continue;
		if (OidIsValid(h->role) && !role_in(h->role, s->roles, s->nroles))
			continue;
		tg_limits_count_halt_order(s);
		refuse(h, "order", NULL, NULL,
			   o->symbol ? pnstrdup(o->symbol, Min(o->symbol_size, 32)) : NULL, NULL,
			   "New orders and changes to an order's symbol, side, quantity, price, account or exchange are refused; other changes (a status, a cancellation) are not.");
	}
}

TgSignPurpose
tg_sign_purpose_from_text(const char *purpose)
{
	if (strcmp(purpose, "order") == 0)
		return TG_PURPOSE_ORDER;
	if (strcmp(purpose, "cancel") == 0)
		return TG_PURPOSE_CANCEL;
	if (strcmp(purpose, "read") == 0)
		return TG_PURPOSE_READ;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("purpose must be order, cancel or read")));
	return TG_PURPOSE_ORDER;	/* keep the compiler quiet */
}

static const char *
purpose_name(TgSignPurpose p)
{
	return p == TG_PURPOSE_CANCEL ? "cancel" : p == TG_PURPOSE_READ ? "read" : "order";
}

/*
 * Refuse a signature in the scope of a halt, unless it is declared a
 * cancel or a read (and its payload matches the exchange's pattern for
 * that purpose, when one is set).  The caller has taken in invalidations.
 */
void
tg_halt_check_sign(const char *exchange, const char *label,
				   const char *payload, int payload_len, TgSignPurpose purpose)
{
	Oid			roles[2];
	int			nroles = 0;

	halts_current();
	if (halts.nrows == 0)
		return;
	roles[nroles++] = GetOuterUserId();
	if (GetSessionUserId() != roles[0])
		roles[nroles++] = GetSessionUserId();

	for (int i = 0; i < halts.nrows; i++)
	{
		const HaltRow *h = &HALT(i);
		const PurposeRow *p = NULL;

		if (!h->any_symbol)
			continue;			/* symbol halts stop orders, not signatures */
		if (!h->any_exchange && strcmp(h->exchange, exchange) != 0)
			continue;
		if (OidIsValid(h->role) && !role_in(h->role, roles, nroles))
			continue;
		if (purpose == TG_PURPOSE_ORDER)
		{
			tg_limits_count_halt_sign(exchange, label);
			refuse(h, "signature", exchange, label, NULL, purpose_name(purpose),
				   "Only requests declared a cancel or a read (sign_request's purpose) are signed during a halt.");
		}
		purposes_current();
		for (int j = 0; j < purposes.nrows; j++)
			if (PURPOSE(j).purpose == purpose && strcmp(PURPOSE(j).exchange, exchange) == 0)
				p = &PURPOSE(j);
		if (p != NULL &&
			!RE_compile_and_execute(p->pattern, unconstify(char *, payload), payload_len,
									REG_ADVANCED, C_COLLATION_OID, 0, NULL))
		{
			tg_limits_count_halt_sign(exchange, label);
			refuse(h, "signature", exchange, label, NULL, purpose_name(purpose),
				   psprintf("The payload does not match the pattern set for a %s on this exchange (trading_guard.sign_purposes).",
							purpose_name(purpose)));
		}
		return;					/* a cancel or a read: signed */
	}
}

/*
 * SQL: record_incident_event(event_type text, reason text, exchange text,
 *                            detail jsonb) returns void
 *
 * A security event of halt_trading, resume_trading or
 * revoke_all_credentials, queued when the calling transaction commits.
 */
PG_FUNCTION_INFO_V1(tg_record_incident_event);
Datum
tg_record_incident_event(PG_FUNCTION_ARGS)
{
	TgEvent		ev;
	char	   *type;
	TgEventType t;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event_type must not be null")));
	type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (strcmp(type, "halt") == 0)
		t = TG_EV_HALT;
	else if (strcmp(type, "revoke_all") == 0)
		t = TG_EV_REVOKE_ALL;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event_type must be halt or revoke_all")));

	tg_event_start(&ev, t, TG_OUT_INFO);
	tg_event_set(&ev, role, GetUserNameFromId(GetOuterUserId(), false));
	if (!PG_ARGISNULL(1))
		tg_event_set(&ev, reason, text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (!PG_ARGISNULL(2))
		tg_event_set(&ev, exchange, text_to_cstring(PG_GETARG_TEXT_PP(2)));
	if (!PG_ARGISNULL(3))
		tg_event_detail_json(&ev, JsonbToCString(NULL, &PG_GETARG_JSONB_P(3)->root,
												 VARSIZE(PG_GETARG_JSONB_P(3))));
	tg_event_emit_at_commit(&ev);
	PG_RETURN_VOID();
}
