/*-------------------------------------------------------------------------
 *
 * registry.h
 *	  Per-backend cache of the symbol registry (table trading_guard.symbols).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_REGISTRY_H
#define TG_REGISTRY_H

#include "utils/numeric.h"

#include "numeric_guard.h"

#include "trading_guard.h"

/* One symbol's exchange filters; a zero numeric means "rule off". */
typedef struct TgSymbolRules
{
	char		symbol[TG_SYMBOL_MAX_LEN + 1];	/* hash key */
	char		status[16];
	bool		trading;		/* status = 'TRADING' */
	Numeric		min_qty;		/* LOT_SIZE */
	Numeric		max_qty;
	Numeric		step_size;
	Numeric		min_price;		/* PRICE_FILTER */
	Numeric		max_price;
	Numeric		tick_size;
	Numeric		min_notional;	/* NOTIONAL / MIN_NOTIONAL */
	Numeric		max_notional;
	TgScaledGrid lot_size_grid;	/* the two grid filters, scaled at load */
	TgScaledGrid price_filter_grid;
} TgSymbolRules;

extern const TgSymbolRules *tg_registry_lookup(const char *symbol, int len);

#endif							/* TG_REGISTRY_H */
