/*-------------------------------------------------------------------------
 *
 * protect.c
 *	  The order-table trigger installed by protect_orders(): a C BEFORE
 *	  INSERT OR UPDATE row trigger that applies tg_check_order() to each row.
 *
 * Trigger arguments: symbol column, side column, quantity column, price
 * column ('' for none), and since 1.7 optionally account column and
 * exchange column ('' for none; a trigger of 1.0 to 1.6 has four).  protect_orders() (SQL) checks the columns when it
 * creates the trigger; we check again the first time a backend fires it
 * after the table's relcache entry was invalidated, because columns can be
 * renamed, dropped or retyped afterwards.  The resolved column numbers are
 * cached per backend (protect_cache) and per statement (fn_extra), so per
 * row we only fetch four attributes and run the checks.  The registry
 * lookup runs no SQL once the per-backend cache is warm (registry.c).
 *
 * After the exchange filters come the incident-response checks: a halt in
 * scope refuses the order (src/halt.c), and the pre-trade limits of its
 * roles (and account) must have room for it (src/risk_limits.c).  They apply to
 * a new order -- an INSERT, or an UPDATE that changes one of the columns
 * above -- and not to an UPDATE that leaves them as they were, so a halted
 * bot can still record that an order was cancelled.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "halt.h"
#include "risk_limits.h"
#include "order_stats.h"
#include "orders.h"
#include "trading_guard.h"

#define TG_PROTECT_NARGS_OLD 4
#define TG_PROTECT_NARGS 6

enum
{
	COL_SYMBOL,
	COL_SIDE,
	COL_QUANTITY,
	COL_PRICE,
	COL_ACCOUNT,
	COL_EXCHANGE
};

typedef struct ProtectState
{
	Oid			tgoid;			/* hash key */
	Oid			relid;
	AttrNumber	attnum[TG_PROTECT_NARGS];	/* 0 = no such column (price,
											 * account, exchange) */
} ProtectState;

/* Does a column hold text (text, varchar or a domain over either)? */
static bool
is_text_type(Oid typid)
{
	typid = getBaseType(typid);
	return typid == TEXTOID || typid == VARCHAROID;
}

static bool
is_numeric_type(Oid typid)
{
	return getBaseType(typid) == NUMERICOID;
}

/*
 * Column numbers of each protect_orders trigger, per backend, so that a
 * statement does not look up names and types again: keyed by trigger OID,
 * dropped when the trigger's table gets a relcache invalidation (a column
 * renamed, dropped or retyped).
 */
static HTAB *protect_cache = NULL;

static void
protect_cache_inval(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	ProtectState *entry;

	hash_seq_init(&seq, protect_cache);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		if (!OidIsValid(relid) || entry->relid == relid)
			hash_search(protect_cache, &entry->tgoid, HASH_REMOVE, NULL);
	}
}

/* Resolve and type-check the columns named by the trigger's arguments. */
static void
resolve_columns(TriggerData *td, ProtectState *st)
{
	Trigger    *tg = td->tg_trigger;
	TupleDesc	desc = RelationGetDescr(td->tg_relation);

	if (tg->tgnargs != TG_PROTECT_NARGS && tg->tgnargs != TG_PROTECT_NARGS_OLD)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on table \"%s\" needs %d or %d arguments",
						tg->tgname, RelationGetRelationName(td->tg_relation),
						TG_PROTECT_NARGS_OLD, TG_PROTECT_NARGS),
				 errhint("Create it with trading_guard.protect_orders().")));

	for (int i = 0; i < TG_PROTECT_NARGS; i++)
	{
		const char *col = i < tg->tgnargs ? tg->tgargs[i] : "";
		int			attnum;
		Oid			typid;

		st->attnum[i] = 0;
		if (i >= COL_PRICE && col[0] == '\0')
			continue;
		attnum = SPI_fnumber(desc, col);
		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of protected table \"%s\" does not exist",
							col, RelationGetRelationName(td->tg_relation)),
					 errhint("Run trading_guard.protect_orders() again with the current column names.")));
		typid = TupleDescAttr(desc, attnum - 1)->atttypid;
		if (((i <= COL_SIDE || i >= COL_ACCOUNT) && !is_text_type(typid)) ||
			((i == COL_QUANTITY || i == COL_PRICE) && !is_numeric_type(typid)))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of protected table \"%s\" has type %s",
							col, RelationGetRelationName(td->tg_relation),
							format_type_be(typid)),
					 errdetail("Symbol, side, account and exchange columns must be text or varchar, quantity and price columns numeric.")));
		st->attnum[i] = attnum;
	}
}

/*
 * The columns of this trigger: from fn_extra within a statement, else from
 * the backend cache, else resolved (and cached).
 */
static ProtectState *
protect_state(FunctionCallInfo fcinfo, TriggerData *td)
{
	ProtectState *st = (ProtectState *) fcinfo->flinfo->fn_extra;
	Oid			tgoid = td->tg_trigger->tgoid;
	ProtectState *cached;
	bool		found;

	if (st != NULL && st->tgoid == tgoid)
		return st;

	if (protect_cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ProtectState);
		protect_cache = hash_create("trading_guard protected tables", 16, &ctl,
									HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(protect_cache_inval, (Datum) 0);
	}

	cached = hash_search(protect_cache, &tgoid, HASH_FIND, NULL);
	if (cached == NULL)
	{
		ProtectState resolved;

		/* resolve first: an error must not leave a half-filled entry */
		resolve_columns(td, &resolved);
		cached = hash_search(protect_cache, &tgoid, HASH_ENTER, &found);
		memcpy(cached->attnum, resolved.attnum, sizeof(resolved.attnum));
		cached->relid = RelationGetRelid(td->tg_relation);
	}

	/* a copy: a cache entry may be removed by an invalidation mid-statement */
	st = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(ProtectState));
	memcpy(st, cached, sizeof(ProtectState));
	fcinfo->flinfo->fn_extra = st;
	return st;
}

/* Column of the row that a rule is about, for the error's column field */
static int
rule_column(const ProtectState *st, TgRule rule)
{
	switch (rule)
	{
		case TG_RULE_SYMBOL:
		case TG_RULE_QUOTE_ASSET:
		case TG_RULE_UNKNOWN_SYMBOL:
		case TG_RULE_STATUS:
			return st->attnum[COL_SYMBOL];
		case TG_RULE_SIDE:
			return st->attnum[COL_SIDE];
		case TG_RULE_QUANTITY:
		case TG_RULE_MAX_QUANTITY:
		case TG_RULE_LOT_SIZE_MIN:
		case TG_RULE_LOT_SIZE_MAX:
		case TG_RULE_LOT_SIZE_STEP:
			return st->attnum[COL_QUANTITY];
		case TG_RULE_PRICE:
		case TG_RULE_PRICE_FILTER_MIN:
		case TG_RULE_PRICE_FILTER_MAX:
		case TG_RULE_PRICE_FILTER_TICK:
			return st->attnum[COL_PRICE];
		default:
			return 0;			/* NOTIONAL: about two columns */
	}
}

/*
 * Does the UPDATE from oldslot to slot change the order itself (one of the
 * trigger's columns)?  Compared as stored bytes: 1.0 and 1.00 count as a
 * change, which can only make a halt or a limit apply, never lift one.
 */
static bool
order_changed(const ProtectState *st, TupleTableSlot *oldslot, TupleTableSlot *slot)
{
	for (int i = 0; i < TG_PROTECT_NARGS; i++)
	{
		Datum		a;
		Datum		b;
		bool		anull;
		bool		bnull;

		if (st->attnum[i] <= 0)
			continue;
		a = slot_getattr(oldslot, st->attnum[i], &anull);
		b = slot_getattr(slot, st->attnum[i], &bnull);
		if (anull != bnull || (!anull && !datum_image_eq(a, b, false, -1)))
			return true;
	}
	return false;
}

/* Point *p, *len at a text column of the row (NULL for none or null) */
static void
text_column(TupleTableSlot *slot, AttrNumber attnum, const char **p, int *len)
{
	Datum		d;
	bool		isnull;

	*p = NULL;
	*len = 0;
	if (attnum <= 0)
		return;
	d = slot_getattr(slot, attnum, &isnull);
	if (!isnull)
	{
		text	   *t = DatumGetTextPP(d);

		*p = VARDATA_ANY(t);
		*len = VARSIZE_ANY_EXHDR(t);
	}
}

/*
 * Check one row; raises the first violation.  The row is read from the
 * trigger's slot, which the executor usually holds already deformed, rather
 * than from the heap tuple (which would be walked column by column again).
 * oldslot is the row before an UPDATE (NULL for an INSERT).
 */
static void
tg_protect_row(const ProtectState *st, Relation rel, TupleTableSlot *slot,
			   TupleTableSlot *oldslot)
{
	TgOrder		o;
	Datum		d;
	bool		isnull;
	List	   *violations;
	TgViolation *v;
	TgOrderSubject subject;
	bool		new_order;

	memset(&o, 0, sizeof(o));

	d = slot_getattr(slot, st->attnum[COL_SYMBOL], &isnull);
	if (!isnull)
		tg_order_set_symbol(&o, d);

	d = slot_getattr(slot, st->attnum[COL_SIDE], &isnull);
	if (!isnull)
		tg_order_set_side(&o, d);

	d = slot_getattr(slot, st->attnum[COL_QUANTITY], &isnull);
	if (!isnull)
		o.quantity = DatumGetNumeric(d);

	if (st->attnum[COL_PRICE] > 0)
	{
		d = slot_getattr(slot, st->attnum[COL_PRICE], &isnull);
		if (!isnull)
			o.price = DatumGetNumeric(d);
	}

	/* a halt refuses a new order, whatever else is wrong with it */
	new_order = oldslot == NULL || order_changed(st, oldslot, slot);
	if (new_order)
	{
		memset(&subject, 0, sizeof(subject));
		subject.roles[subject.nroles++] = GetUserId();
		if (GetSessionUserId() != GetUserId())
			subject.roles[subject.nroles++] = GetSessionUserId();
		subject.has_account_col = st->attnum[COL_ACCOUNT] > 0;
		text_column(slot, st->attnum[COL_ACCOUNT], &subject.account, &subject.account_len);
		subject.has_exchange_col = st->attnum[COL_EXCHANGE] > 0;
		text_column(slot, st->attnum[COL_EXCHANGE], &subject.exchange, &subject.exchange_len);

		/* other sessions' committed halts, also in a running transaction */
		AcceptInvalidationMessages();
		tg_halt_check_order(&o, &subject);
	}

	violations = tg_check_order(&o, false);
	if (violations == NIL)
	{
		if (new_order)
			tg_limits_check_order(&o, &subject);
		tg_order_stats_count_accepted();
		return;
	}
	v = linitial(violations);
	tg_order_stats_count_rejected(v->rule);
	tg_raise_violation(v, rel, rule_column(st, v->rule));
}

/*
 * SQL: protect_orders_trigger() returns trigger
 *
 * BEFORE INSERT OR UPDATE ... FOR EACH ROW; created by protect_orders().
 */
PG_FUNCTION_INFO_V1(tg_protect_orders_trigger);
Datum
tg_protect_orders_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleTableSlot *slot;
	TupleTableSlot *oldslot;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("protect_orders_trigger: not called by trigger manager")));
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("protect_orders_trigger: must be fired BEFORE ... FOR EACH ROW")));

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		tuple = td->tg_trigtuple;
		slot = td->tg_trigslot;
		oldslot = NULL;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		tuple = td->tg_newtuple;
		slot = td->tg_newslot;
		oldslot = td->tg_trigslot;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("protect_orders_trigger: must be fired for INSERT or UPDATE")));

	tg_protect_row(protect_state(fcinfo, td), td->tg_relation, slot, oldslot);
	return PointerGetDatum(tuple);
}
