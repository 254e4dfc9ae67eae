/*-------------------------------------------------------------------------
 *
 * orders.h
 *	  Checking an order against the format rules and the symbol registry.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_ORDERS_H
#define TG_ORDERS_H

#include "nodes/pg_list.h"
#include "utils/relcache.h"
#include "utils/numeric.h"

/* Every rule an order can break; order_rules[] in orders.c describes each. */
typedef enum TgRule
{
	TG_RULE_SYMBOL,
	TG_RULE_QUOTE_ASSET,
	TG_RULE_UNKNOWN_SYMBOL,
	TG_RULE_STATUS,
	TG_RULE_SIDE,
	TG_RULE_QUANTITY,
	TG_RULE_MAX_QUANTITY,
	TG_RULE_LOT_SIZE_MIN,
	TG_RULE_LOT_SIZE_MAX,
	TG_RULE_LOT_SIZE_STEP,
	TG_RULE_PRICE,
	TG_RULE_PRICE_FILTER_MIN,
	TG_RULE_PRICE_FILTER_MAX,
	TG_RULE_PRICE_FILTER_TICK,
	TG_RULE_NOTIONAL_MIN,
	TG_RULE_NOTIONAL_MAX,
	TG_NUM_RULES
} TgRule;

/*
 * An order as the checks see it.  symbol and side point at raw bytes (not
 * NUL-terminated) or are NULL for SQL NULL; price NULL means a market order.
 * symbol_size is the full (untoasted) size, which may exceed what symbol
 * points at when the value was too long to be worth detoasting.
 */
typedef struct TgOrder
{
	const char *symbol;
	int			symbol_size;
	const char *side;
	int			side_len;
	Numeric		quantity;
	Numeric		price;
} TgOrder;

typedef struct TgViolation
{
	TgRule		rule;
	char	   *message;
	char	   *detail;
	char	   *hint;
} TgViolation;

extern void tg_order_set_symbol(TgOrder *o, Datum d);
extern void tg_order_set_side(TgOrder *o, Datum d);
extern List *tg_check_order(const TgOrder *order, bool all);
extern void tg_raise_violation(const TgViolation *v, Relation rel, int attnum);
extern const char *tg_rule_filter(TgRule rule);
extern int	tg_rule_sqlstate(TgRule rule);

#endif							/* TG_ORDERS_H */
