/*-------------------------------------------------------------------------
 *
 * validate.h
 *	  Stand-alone checks of a symbol, quantity or price, with no registry:
 *	  the functions behind is_valid_symbol() and friends.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_VALIDATE_H
#define TG_VALIDATE_H

#include "utils/numeric.h"

/* GUCs owned by validate.c */
extern char *tg_quote_assets;

typedef enum TgSymbolProblem
{
	TG_SYM_OK = 0,
	TG_SYM_NULL,
	TG_SYM_EMPTY,
	TG_SYM_TOO_LONG,
	TG_SYM_BAD_CHAR,			/* not A-Z / 0-9: whitespace, lower case, non-ASCII */
	TG_SYM_UNKNOWN_QUOTE,		/* does not end in a quote asset */
	TG_SYM_BAD_BASE				/* base asset shorter or longer than allowed */
} TgSymbolProblem;

extern void tg_validate_init(void);

extern TgSymbolProblem tg_symbol_problem(const char *sym, int len, int *bad_pos);
extern Numeric tg_max_quantity_value(void);

#endif							/* TG_VALIDATE_H */
