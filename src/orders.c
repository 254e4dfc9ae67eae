/*-------------------------------------------------------------------------
 *
 * orders.c
 *	  Order checks against the symbol registry: check_order(),
 *	  order_violations(), round_quantity(), round_price().
 *
 * tg_check_order() is the one implementation of the rules; the SQL
 * functions here and the protect_orders trigger (protect.c) only differ in
 * how they report what it finds.  Rules run in a fixed order (symbol, side,
 * quantity, LOT_SIZE, price, PRICE_FILTER, NOTIONAL), so "the first
 * violation" is well defined.  Nothing here allocates on the path of an
 * order that passes, apart from numeric intermediates in the caller's
 * (per-row or per-call) memory context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/numeric.h"
#include "utils/rel.h"

#include "numeric_guard.h"
#include "order_stats.h"
#include "orders.h"
#include "registry.h"
#include "trading_guard.h"
#include "validate.h"

typedef struct TgRuleInfo
{
	const char *filter;			/* as order_violations() reports it */
	int			sqlstate;
} TgRuleInfo;

static const TgRuleInfo order_rules[TG_NUM_RULES] = {
	[TG_RULE_SYMBOL] = {"SYMBOL", ERRCODE_TG_INVALID_SYMBOL},
	[TG_RULE_QUOTE_ASSET] = {"QUOTE_ASSET", ERRCODE_TG_UNKNOWN_QUOTE_ASSET},
	[TG_RULE_UNKNOWN_SYMBOL] = {"REGISTRY", ERRCODE_TG_UNKNOWN_SYMBOL},
	[TG_RULE_STATUS] = {"STATUS", ERRCODE_TG_SYMBOL_NOT_TRADING},
	[TG_RULE_SIDE] = {"SIDE", ERRCODE_TG_INVALID_SIDE},
	[TG_RULE_QUANTITY] = {"QUANTITY", ERRCODE_TG_INVALID_QUANTITY},
	[TG_RULE_MAX_QUANTITY] = {"MAX_QUANTITY", ERRCODE_TG_QUANTITY_ABOVE_LIMIT},
	[TG_RULE_LOT_SIZE_MIN] = {"LOT_SIZE", ERRCODE_TG_LOT_SIZE_MIN},
	[TG_RULE_LOT_SIZE_MAX] = {"LOT_SIZE", ERRCODE_TG_LOT_SIZE_MAX},
	[TG_RULE_LOT_SIZE_STEP] = {"LOT_SIZE", ERRCODE_TG_LOT_SIZE_STEP},
	[TG_RULE_PRICE] = {"PRICE", ERRCODE_TG_INVALID_PRICE},
	[TG_RULE_PRICE_FILTER_MIN] = {"PRICE_FILTER", ERRCODE_TG_PRICE_FILTER_MIN},
	[TG_RULE_PRICE_FILTER_MAX] = {"PRICE_FILTER", ERRCODE_TG_PRICE_FILTER_MAX},
	[TG_RULE_PRICE_FILTER_TICK] = {"PRICE_FILTER", ERRCODE_TG_PRICE_FILTER_TICK},
	[TG_RULE_NOTIONAL_MIN] = {"NOTIONAL", ERRCODE_TG_NOTIONAL_MIN},
	[TG_RULE_NOTIONAL_MAX] = {"NOTIONAL", ERRCODE_TG_NOTIONAL_MAX},
};

const char *
tg_rule_filter(TgRule rule)
{
	return order_rules[rule].filter;
}

int
tg_rule_sqlstate(TgRule rule)
{
	return order_rules[rule].sqlstate;
}

static TgViolation *
make_violation(TgRule rule, char *message, char *detail, char *hint)
{
	TgViolation *v = palloc(sizeof(TgViolation));

	v->rule = rule;
	v->message = message;
	v->detail = detail;
	v->hint = hint;
	return v;
}

/* Describe what is wrong with a symbol; NULL when it is well formed. */
static TgViolation *
symbol_violation(const TgOrder *o)
{
	int			bad_pos = 0;
	TgSymbolProblem problem;

	if (o->symbol != NULL && o->symbol_size > TG_SYMBOL_INSPECT_MAX)
		problem = TG_SYM_TOO_LONG;
	else
		problem = tg_symbol_problem(o->symbol, o->symbol_size, &bad_pos);

	switch (problem)
	{
		case TG_SYM_OK:
			return NULL;
		case TG_SYM_NULL:
			return make_violation(TG_RULE_SYMBOL, pstrdup("order symbol is null"),
								  NULL, NULL);
		case TG_SYM_EMPTY:
			return make_violation(TG_RULE_SYMBOL, pstrdup("order symbol is empty"),
								  NULL, NULL);
		case TG_SYM_TOO_LONG:
			return make_violation(TG_RULE_SYMBOL, pstrdup("order symbol is too long"),
								  psprintf("The symbol is %d bytes long; at most %d are allowed.",
										   o->symbol_size, TG_SYMBOL_MAX_LEN),
								  NULL);
		case TG_SYM_BAD_CHAR:
			return make_violation(TG_RULE_SYMBOL,
								  pstrdup("order symbol contains a character other than A-Z and 0-9"),
								  psprintf("The first such byte is at position %d. Lower-case letters, whitespace, invisible, full-width and look-alike characters are refused, not normalized.",
										   bad_pos),
								  NULL);
		case TG_SYM_UNKNOWN_QUOTE:
			return make_violation(TG_RULE_QUOTE_ASSET,
								  psprintf("order symbol \"%.*s\" does not end in an accepted quote asset",
										   o->symbol_size, o->symbol),
								  psprintf("Accepted quote assets (trading_guard.quote_assets): %s.",
										   tg_quote_assets),
								  NULL);
		case TG_SYM_BAD_BASE:
			return make_violation(TG_RULE_SYMBOL,
								  psprintf("base asset of order symbol \"%.*s\" is not %d to %d characters long",
										   o->symbol_size, o->symbol,
										   TG_BASE_MIN_LEN, TG_BASE_MAX_LEN),
								  NULL, NULL);
	}
	return NULL;
}

/* A well-formed symbol that the registry does not know */
static TgViolation *
unknown_symbol_violation(const TgOrder *o)
{
	return make_violation(TG_RULE_UNKNOWN_SYMBOL,
						  psprintf("symbol \"%.*s\" is not in the registry",
								   o->symbol_size, o->symbol),
						  NULL,
						  pstrdup("Add it to trading_guard.symbols, for example with trading_guard.load_exchange_info()."));
}

/* Describe what is wrong with a quantity or price on its own, or NULL */
static TgViolation *
number_violation(TgRule rule, const char *what, Numeric num)
{
	TgNumericProblem problem = tg_numeric_problem(num);

	if (problem == TG_NUM_OK)
		return NULL;
	if (problem == TG_NUM_NOT_POSITIVE)
		return make_violation(rule, psprintf("order %s %s is not positive",
											 what, tg_num_out(num)),
							  NULL, NULL);
	return make_violation(rule, psprintf("order %s %s", what,
										 tg_numeric_problem_text(problem)),
						  problem == TG_NUM_TOO_MANY_DIGITS || problem == TG_NUM_TOO_MANY_DECIMALS ?
						  psprintf("Quantities and prices may have at most %d digits before and %d after the decimal point.",
								   TG_NUMERIC_MAX_INT_DIGITS, TG_NUMERIC_MAX_SCALE) : NULL,
						  NULL);
}

static bool
positive(Numeric n)
{
	return !tg_num_is_zero(n);
}

/*
 * A filter with a minimum, a maximum and a grid min + k * step: LOT_SIZE for
 * quantities, PRICE_FILTER for prices.  Field names are Binance's.
 */
typedef struct TgGridFilter
{
	const char *filter;
	const char *value;			/* what is checked: "quantity" */
	const char *min_field;
	const char *max_field;
	const char *step_field;
	const char *step_noun;
	const char *round_function;
	TgRule		rule_min;
	TgRule		rule_max;
	TgRule		rule_step;
} TgGridFilter;

static const TgGridFilter lot_size = {
	"LOT_SIZE", "quantity", "minQty", "maxQty", "stepSize", "step size",
	"round_quantity", TG_RULE_LOT_SIZE_MIN, TG_RULE_LOT_SIZE_MAX, TG_RULE_LOT_SIZE_STEP
};

static const TgGridFilter price_filter = {
	"PRICE_FILTER", "price", "minPrice", "maxPrice", "tickSize", "tick size",
	"round_price", TG_RULE_PRICE_FILTER_MIN, TG_RULE_PRICE_FILTER_MAX, TG_RULE_PRICE_FILTER_TICK
};

/*
 * Where x stands against a grid filter: below its minimum, above its
 * maximum, off its grid.  A zero min, max or step is a rule that is off.
 * Usually a few integer operations on the filter scaled at registry load;
 * otherwise exact numeric arithmetic decides.
 */
static void
grid_position(Numeric x, Numeric min, Numeric max, Numeric step,
			  const TgScaledGrid *grid, bool *below, bool *above, bool *off_grid)
{
	if (tg_num_grid_position(grid, x, below, above, off_grid))
		return;
	*below = positive(min) && tg_num_cmp(x, min) < 0;
	*above = positive(max) && tg_num_cmp(x, max) > 0;
	*off_grid = positive(step) &&
		!tg_num_is_zero(tg_num_mod(tg_num_sub(x, min), step));
}

/*
 * Append what x breaks of a grid filter to result (stopping at the first
 * unless all).
 */
static List *
check_grid(const TgGridFilter *f, Numeric x, Numeric min, Numeric max,
		   Numeric step, const TgScaledGrid *grid, const char *symbol,
		   List *result, bool all)
{
	bool		below;
	bool		above;
	bool		off_grid;

	grid_position(x, min, max, step, grid, &below, &above, &off_grid);
	if (below)
	{
		result = lappend(result,
						 make_violation(f->rule_min,
										psprintf("%s %s is below the minimum %s for %s",
												 f->value, tg_num_out(x), tg_num_out(min), symbol),
										psprintf("Filter %s: %s must be at least %s.",
												 f->filter, f->value, f->min_field),
										NULL));
		if (!all)
			return result;
	}
	if (above)
	{
		result = lappend(result,
						 make_violation(f->rule_max,
										psprintf("%s %s is above the maximum %s for %s",
												 f->value, tg_num_out(x), tg_num_out(max), symbol),
										psprintf("Filter %s: %s must be at most %s.",
												 f->filter, f->value, f->max_field),
										NULL));
		if (!all)
			return result;
	}
	if (off_grid)
		result = lappend(result,
						 make_violation(f->rule_step,
										psprintf("%s %s is not a multiple of the %s %s for %s",
												 f->value, tg_num_out(x), f->step_noun,
												 tg_num_out(step), symbol),
										psprintf("Filter %s: (%s - %s) must be a multiple of %s.",
												 f->filter, f->value, f->min_field, f->step_field),
										psprintf("Round it with trading_guard.%s().",
												 f->round_function)));
	return result;
}

/*
 * Check an order.  Returns the list of violations (TgViolation *), empty when
 * the order is valid; with all = false it stops at the first one.
 */
List *
tg_check_order(const TgOrder *o, bool all)
{
	List	   *result = NIL;
	TgViolation *v;
	const TgSymbolRules *r = NULL;
	bool		qty_ok;
	bool		price_ok;

#define ADD(viol) \
	do { \
		result = lappend(result, (viol)); \
		if (!all) \
			return result; \
	} while (0)

	/* symbol: format, then the registry */
	if ((v = symbol_violation(o)) != NULL)
		ADD(v);
	else if ((r = tg_registry_lookup(o->symbol, o->symbol_size)) == NULL)
		ADD(unknown_symbol_violation(o));
	else if (!r->trading)
		ADD(make_violation(TG_RULE_STATUS,
						   psprintf("symbol \"%s\" is not trading", r->symbol),
						   psprintf("Its status in the registry is %s.", r->status),
						   NULL));

	/* side */
	if (o->side == NULL)
		ADD(make_violation(TG_RULE_SIDE, pstrdup("order side is null"),
						   pstrdup("The side must be BUY or SELL."), NULL));
	else if (!((o->side_len == 3 && memcmp(o->side, "BUY", 3) == 0) ||
			   (o->side_len == 4 && memcmp(o->side, "SELL", 4) == 0)))
		ADD(make_violation(TG_RULE_SIDE, pstrdup("order side must be BUY or SELL"),
						   NULL, NULL));

	/* quantity on its own, then LOT_SIZE */
	qty_ok = false;
	if ((v = number_violation(TG_RULE_QUANTITY, "quantity", o->quantity)) != NULL)
		ADD(v);
	else
	{
		Numeric		maxq = tg_max_quantity_value();

		qty_ok = true;
		if (tg_num_cmp(o->quantity, maxq) > 0)
		{
			qty_ok = false;
			ADD(make_violation(TG_RULE_MAX_QUANTITY,
							   psprintf("order quantity %s is above the limit %s",
										tg_num_out(o->quantity), tg_num_out(maxq)),
							   pstrdup("The limit is set by trading_guard.max_quantity."),
							   NULL));
		}
	}
	if (qty_ok && r != NULL)
	{
		result = check_grid(&lot_size, o->quantity, r->min_qty, r->max_qty,
							r->step_size, &r->lot_size_grid, r->symbol, result, all);
		if (!all && result != NIL)
			return result;
	}

	/* price (NULL = market order: no price, no PRICE_FILTER, no NOTIONAL) */
	if (o->price == NULL)
		return result;
	price_ok = false;
	if ((v = number_violation(TG_RULE_PRICE, "price", o->price)) != NULL)
		ADD(v);
	else
		price_ok = true;
	if (price_ok && r != NULL)
	{
		result = check_grid(&price_filter, o->price, r->min_price, r->max_price,
							r->tick_size, &r->price_filter_grid, r->symbol, result, all);
		if (!all && result != NIL)
			return result;
	}

	/* notional = quantity * price */
	if (qty_ok && price_ok && r != NULL &&
		(positive(r->min_notional) || positive(r->max_notional)))
	{
		bool		below;
		bool		above;

		if (!tg_num_product_position(o->quantity, o->price, r->min_notional,
									 r->max_notional, &below, &above))
		{
			Numeric		notional = tg_num_mul(o->quantity, o->price);

			below = positive(r->min_notional) && tg_num_cmp(notional, r->min_notional) < 0;
			above = positive(r->max_notional) && tg_num_cmp(notional, r->max_notional) > 0;
		}
		if (below)
			ADD(make_violation(TG_RULE_NOTIONAL_MIN,
							   psprintf("order notional %s is below the minimum %s for %s",
										tg_num_out(tg_num_mul(o->quantity, o->price)),
										tg_num_out(r->min_notional), r->symbol),
							   pstrdup("Filter NOTIONAL: quantity * price must be at least minNotional."),
							   NULL));
		if (above)
			ADD(make_violation(TG_RULE_NOTIONAL_MAX,
							   psprintf("order notional %s is above the maximum %s for %s",
										tg_num_out(tg_num_mul(o->quantity, o->price)),
										tg_num_out(r->max_notional), r->symbol),
							   pstrdup("Filter NOTIONAL: quantity * price must be at most maxNotional."),
							   NULL));
	}
#undef ADD
	return result;
}

/*
 * Raise a violation as an ERROR.  With a relation (the trigger), the error
 * also names the table and column, as constraint violations do.
 */
void
tg_raise_violation(const TgViolation *v, Relation rel, int attnum)
{
	ereport(ERROR,
			(errcode(order_rules[v->rule].sqlstate),
			 errmsg_internal("%s", v->message),
			 v->detail ? errdetail_internal("%s", v->detail) : 0,
			 v->hint ? errhint("%s", v->hint) : 0,
			 rel && attnum > 0 ? errtablecol(rel, attnum) : 0));
}

/*
 * Point o->symbol at a (non-null) text datum.  A value longer than any
 * symbol is not detoasted: its size alone condemns it.
 */
void
tg_order_set_symbol(TgOrder *o, Datum d)
{
	o->symbol_size = toast_raw_datum_size(d) - VARHDRSZ;
	o->symbol = "";				/* too long: never looked at */
	if (o->symbol_size <= TG_SYMBOL_INSPECT_MAX)
	{
		text	   *t = DatumGetTextPP(d);

		o->symbol = VARDATA_ANY(t);
		o->symbol_size = VARSIZE_ANY_EXHDR(t);
	}
}

/* Point o->side at a (non-null) text datum; anything longer than SELL is wrong */
void
tg_order_set_side(TgOrder *o, Datum d)
{
	o->side = "";
	o->side_len = 0;
	if (toast_raw_datum_size(d) - VARHDRSZ <= 4)
	{
		text	   *t = DatumGetTextPP(d);

		o->side = VARDATA_ANY(t);
		o->side_len = VARSIZE_ANY_EXHDR(t);
	}
}

/* Fill a TgOrder from SQL arguments (symbol text, side text, qty, price) */
static void
order_from_args(FunctionCallInfo fcinfo, TgOrder *o)
{
	memset(o, 0, sizeof(TgOrder));
	if (!PG_ARGISNULL(0))
		tg_order_set_symbol(o, PG_GETARG_DATUM(0));
	if (!PG_ARGISNULL(1))
		tg_order_set_side(o, PG_GETARG_DATUM(1));
	if (!PG_ARGISNULL(2))
		o->quantity = PG_GETARG_NUMERIC(2);
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
		o->price = PG_GETARG_NUMERIC(3);
}

/*
 * SQL: check_order(symbol text, side text, quantity numeric,
 *                  price numeric DEFAULT NULL) returns void
 *
 * Raises the first violation; returns nothing when the order is valid.
 */
PG_FUNCTION_INFO_V1(tg_check_order_sql);
Datum
tg_check_order_sql(PG_FUNCTION_ARGS)
{
	TgOrder		o;
	List	   *violations;

	order_from_args(fcinfo, &o);
	violations = tg_check_order(&o, false);
	if (violations == NIL)
	{
		tg_order_stats_count_accepted();
		PG_RETURN_VOID();
	}
	tg_order_stats_count_rejected(((TgViolation *) linitial(violations))->rule);
	tg_raise_violation(linitial(violations), NULL, 0);
	PG_RETURN_VOID();
}

/*
 * SQL: order_violations(symbol text, side text, quantity numeric,
 *                       price numeric DEFAULT NULL)
 *      returns table (filter text, sqlstate text, message text, detail text)
 */
PG_FUNCTION_INFO_V1(tg_order_violations);
Datum
tg_order_violations(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TgOrder		o;
	List	   *violations;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	order_from_args(fcinfo, &o);
	violations = tg_check_order(&o, true);
	foreach(lc, violations)
	{
		TgViolation *v = lfirst(lc);
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = CStringGetTextDatum(order_rules[v->rule].filter);
		values[1] = CStringGetTextDatum(unpack_sql_state(order_rules[v->rule].sqlstate));
		values[2] = CStringGetTextDatum(v->message);
		if (v->detail)
			values[3] = CStringGetTextDatum(v->detail);
		else
			nulls[3] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Round x onto the grid base + k * step of one symbol's filter; shared by
 * round_quantity() (truncate) and round_price() (nearest).
 */
static Numeric
round_on_grid(FunctionCallInfo fcinfo, bool is_price)
{
	TgOrder		o;
	Numeric		x;
	TgViolation *v;
	const TgSymbolRules *r;
	Numeric		base;
	Numeric		step;
	Numeric		result;
	int			scale;
	const TgGridFilter *f = is_price ? &price_filter : &lot_size;

	/* symbol and number checked as check_order would */
	memset(&o, 0, sizeof(o));
	if (!PG_ARGISNULL(0))
		tg_order_set_symbol(&o, PG_GETARG_DATUM(0));
	if ((v = symbol_violation(&o)) != NULL)
		tg_raise_violation(v, NULL, 0);
	if (PG_ARGISNULL(1))
		x = NULL;
	else
		x = PG_GETARG_NUMERIC(1);
	if (is_price)
		v = number_violation(TG_RULE_PRICE, "price", x);
	else
		v = number_violation(TG_RULE_QUANTITY, "quantity", x);
	if (v != NULL)
		tg_raise_violation(v, NULL, 0);
	r = tg_registry_lookup(o.symbol, o.symbol_size);
	if (r == NULL)
		tg_raise_violation(unknown_symbol_violation(&o), NULL, 0);

	base = is_price ? r->min_price : r->min_qty;
	step = is_price ? r->tick_size : r->step_size;
	if (!positive(step))
		return x;				/* rule off: nothing to round to */

	if (is_price)
		result = tg_num_round_to_step(x, base, step);
	else
		result = tg_num_floor_to_step(x, base, step);

	if (tg_num_cmp(result, int64_to_numeric(0)) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_TG_ROUNDS_TO_ZERO),
				 errmsg("%s %s rounds to zero for %s",
						f->value, tg_num_out(x), r->symbol),
				 errdetail("Filter %s: %s is %s.", f->filter, f->step_field,
						   tg_num_out(step))));

	scale = Max(tg_num_dscale(step), tg_num_dscale(base));
	return DatumGetNumeric(DirectFunctionCall2(numeric_round,
											   NumericGetDatum(result),
											   Int32GetDatum(scale)));
}

/*
 * SQL: round_quantity(symbol text, quantity numeric) returns numeric
 *
 * Truncates onto the LOT_SIZE grid minQty + k * stepSize.
 */
PG_FUNCTION_INFO_V1(tg_round_quantity);
Datum
tg_round_quantity(PG_FUNCTION_ARGS)
{
	PG_RETURN_NUMERIC(round_on_grid(fcinfo, false));
}

/*
 * SQL: round_price(symbol text, price numeric) returns numeric
 *
 * Rounds to the nearest point of the PRICE_FILTER grid minPrice + k *
 * tickSize, halves up.
 */
PG_FUNCTION_INFO_V1(tg_round_price);
Datum
tg_round_price(PG_FUNCTION_ARGS)
{
	PG_RETURN_NUMERIC(round_on_grid(fcinfo, true));
}
