/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  is_valid_symbol(), is_valid_quantity(), is_valid_price() and the GUCs
 *	  they depend on (trading_guard.quote_assets, trading_guard.max_quantity).
 *
 * These functions are meant for CHECK constraints and domains, so they are
 * not STRICT (NULL is invalid, not unknown: a NULL result would let a CHECK
 * pass) and never raise an error for any input: they answer true or false.
 * They look at bytes, never normalise: a symbol is valid only if every byte
 * is A-Z or 0-9, so whitespace, NBSP, zero-width and bidi characters,
 * full-width letters and Cyrillic or Greek look-alikes are all refused.
 *
 * Both GUCs are parsed once, in their check hooks, into the "extra" data the
 * GUC machinery keeps for us; the functions read the parsed form only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "fmgr.h"
#include "utils/guc.h"
#include "utils/numeric.h"

#include "numeric_guard.h"
#include "trading_guard.h"
#include "validate.h"

#define TG_MAX_QUOTE_ASSETS 64

typedef struct TgQuoteAssets
{
	int			count;
	uint8		len[TG_MAX_QUOTE_ASSETS];
	char		asset[TG_MAX_QUOTE_ASSETS][TG_QUOTE_MAX_LEN + 1];
} TgQuoteAssets;

char	   *tg_quote_assets = NULL;
static char *tg_max_quantity = NULL;

/* parsed forms, owned by the GUC machinery (malloc'd "extra") */
static TgQuoteAssets *quote_assets = NULL;
static Numeric max_quantity = NULL;

static inline bool
is_symbol_byte(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* --- trading_guard.quote_assets --- */

static bool
check_quote_assets(char **newval, void **extra, GucSource source)
{
	TgQuoteAssets parsed;
	const char *p = *newval;
	TgQuoteAssets *result;

	memset(&parsed, 0, sizeof(parsed));
	while (*p)
	{
		const char *start;
		int			len;

		while (*p == ' ')
			p++;
		start = p;
		while (*p && *p != ',' && *p != ' ')
			p++;
		len = p - start;
		while (*p == ' ')
			p++;
		if (*p == ',')
			p++;
		else if (*p != '\0')
		{
			GUC_check_errdetail("Quote assets are separated by commas.");
			return false;
		}

		if (len < TG_QUOTE_MIN_LEN || len > TG_QUOTE_MAX_LEN)
		{
			GUC_check_errdetail("Each quote asset must be %d to %d characters long.",
								TG_QUOTE_MIN_LEN, TG_QUOTE_MAX_LEN);
			return false;
		}
		for (int i = 0; i < len; i++)
		{
			if (!is_symbol_byte(start[i]))
			{
				GUC_check_errdetail("Quote assets may contain only upper-case letters A-Z and digits.");
				return false;
			}
		}
		if (parsed.count >= TG_MAX_QUOTE_ASSETS)
		{
			GUC_check_errdetail("At most %d quote assets can be listed.", TG_MAX_QUOTE_ASSETS);
			return false;
		}
		memcpy(parsed.asset[parsed.count], start, len);
		parsed.len[parsed.count] = len;
		parsed.count++;
	}
	if (parsed.count == 0)
	{
		GUC_check_errdetail("At least one quote asset must be listed.");
		return false;
	}

	result = malloc(sizeof(TgQuoteAssets));
	if (result == NULL)
		return false;
	memcpy(result, &parsed, sizeof(TgQuoteAssets));
	*extra = result;
	return true;
}

static void
assign_quote_assets(const char *newval, void *extra)
{
	quote_assets = (TgQuoteAssets *) extra;
}

/* --- trading_guard.max_quantity --- */

static bool
check_max_quantity(char **newval, void **extra, GucSource source)
{
	const char *s = *newval;
	const char *p = s;
	int			int_digits = 0;
	int			decimals = 0;
	Numeric		num;
	Numeric		copy;

	/* plain decimal syntax only, so that numeric_in below cannot fail */
	while (*p >= '0' && *p <= '9')
		p++, int_digits++;
	if (*p == '.')
	{
		p++;
		while (*p >= '0' && *p <= '9')
			p++, decimals++;
	}
	if (*p != '\0' || int_digits == 0 || (p[-1] == '.'))
	{
		GUC_check_errdetail("The maximum quantity must be a plain decimal number such as 1000000 or 2500.5.");
		return false;
	}

	num = tg_num_in(s);
	if (tg_numeric_problem(num) != TG_NUM_OK)
	{
		GUC_check_errdetail("The maximum quantity must be positive, with at most %d digits before and %d after the decimal point.",
							TG_NUMERIC_MAX_INT_DIGITS, TG_NUMERIC_MAX_SCALE);
		return false;
	}

	copy = malloc(VARSIZE(num));
	if (copy == NULL)
		return false;
	memcpy(copy, num, VARSIZE(num));
	pfree(num);
	*extra = copy;
	return true;
}

static void
assign_max_quantity(const char *newval, void *extra)
{
	max_quantity = (Numeric) extra;
}

/* The parsed trading_guard.max_quantity; valid until the next GUC change */
Numeric
tg_max_quantity_value(void)
{
	return max_quantity;
}

/*
 * What is wrong with a symbol, or TG_SYM_OK.  For TG_SYM_BAD_CHAR, *bad_pos
 * gets the 1-based byte position of the first offending byte.  sym may be
 * NULL (a SQL NULL).  Callers refuse values longer than TG_SYMBOL_INSPECT_MAX
 * as too long without detoasting them, so len is small.
 */
TgSymbolProblem
tg_symbol_problem(const char *sym, int len, int *bad_pos)
{
	bool		base_too_short = false;

	if (sym == NULL)
		return TG_SYM_NULL;
	if (len == 0)
		return TG_SYM_EMPTY;
	/* a bad character is the more useful complaint, so look for one first */
	for (int i = 0; i < len; i++)
	{
		if (!is_symbol_byte(sym[i]))
		{
			if (bad_pos)
				*bad_pos = i + 1;
			return TG_SYM_BAD_CHAR;
		}
	}
	if (len > TG_SYMBOL_MAX_LEN)
		return TG_SYM_TOO_LONG;

	for (int q = 0; q < quote_assets->count; q++)
	{
		int			qlen = quote_assets->len[q];
		int			blen = len - qlen;

		if (qlen > len || memcmp(sym + blen, quote_assets->asset[q], qlen) != 0)
			continue;
		if (blen >= TG_BASE_MIN_LEN && blen <= TG_BASE_MAX_LEN)
			return TG_SYM_OK;
		base_too_short = true;
	}
	return base_too_short ? TG_SYM_BAD_BASE : TG_SYM_UNKNOWN_QUOTE;
}

/*
 * SQL: is_valid_symbol(text) returns boolean
 *
 * The length is read from the toast header, so a value longer than any
 * symbol (a 200 kB one, say) is refused without being detoasted.
 */
PG_FUNCTION_INFO_V1(tg_is_valid_symbol);
Datum
tg_is_valid_symbol(PG_FUNCTION_ARGS)
{
	Datum		d;
	Size		len;
	text	   *t;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	d = PG_GETARG_DATUM(0);
	len = toast_raw_datum_size(d) - VARHDRSZ;
	if (len > TG_SYMBOL_MAX_LEN)
		PG_RETURN_BOOL(false);
	t = PG_GETARG_TEXT_PP(0);
	PG_RETURN_BOOL(tg_symbol_problem(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), NULL) == TG_SYM_OK);
}

/* SQL: is_valid_quantity(numeric) returns boolean */
PG_FUNCTION_INFO_V1(tg_is_valid_quantity);
Datum
tg_is_valid_quantity(PG_FUNCTION_ARGS)
{
	Numeric		qty;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	qty = PG_GETARG_NUMERIC(0);
	if (tg_numeric_problem(qty) != TG_NUM_OK)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(tg_num_cmp(qty, max_quantity) <= 0);
}

/* SQL: is_valid_price(numeric) returns boolean */
PG_FUNCTION_INFO_V1(tg_is_valid_price);
Datum
tg_is_valid_price(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(tg_numeric_problem(PG_GETARG_NUMERIC(0)) == TG_NUM_OK);
}

/*
 * Define this file's GUCs.  Both are PGC_SUSET: they decide what the
 * IMMUTABLE validation functions return, so changing them is a schema change
 * that only a superuser may make (see README).
 */
void
tg_validate_init(void)
{
	DefineCustomStringVariable("trading_guard.quote_assets",
							   "Quote assets accepted at the end of a symbol.",
							   "A comma-separated list such as 'USDT,USDC,BTC'.",
							   &tg_quote_assets,
							   "USDT",
							   PGC_SUSET,
							   0,
							   check_quote_assets,
							   assign_quote_assets,
							   NULL);

	DefineCustomStringVariable("trading_guard.max_quantity",
							   "Largest order quantity any symbol accepts.",
							   "An exact decimal number; checked before the registry's LOT_SIZE filter.",
							   &tg_max_quantity,
							   "1000000",
							   PGC_SUSET,
							   0,
							   check_max_quantity,
							   assign_max_quantity,
							   NULL);
}
