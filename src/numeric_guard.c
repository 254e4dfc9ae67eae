/*-------------------------------------------------------------------------
 *
 * numeric_guard.c
 *	  Judge a numeric from its header, before any arithmetic, and do the
 *	  exact numeric arithmetic of the exchange filters.
 *
 * A numeric of 1000 digits or with a scale of 16383 is a valid PostgreSQL
 * value, and arithmetic on it costs time proportional to its size.  Order
 * validation refuses such values by reading the on-disk header only: sign
 * and special-value flags, weight (in base-10000 digits) and display scale.
 * The on-disk format of numeric cannot change without breaking pg_upgrade,
 * so reading it here is safe; the layout mirrors src/backend/utils/adt/
 * numeric.c and is kept to the few macros we need.
 *
 * All arithmetic goes through numeric.c (exact decimal), never through float.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "numeric_guard.h"
#include "trading_guard.h"

/* --- on-disk header of numeric (see numeric.c) --- */
typedef int16 TgNumericDigit;

typedef struct TgNumericHeader
{
	int32		vl_len_;
	uint16		n_header;		/* short form: sign, dscale, weight */
	int16		n_weight;		/* long form only */
} TgNumericHeader;

#define TGN_SIGN_MASK			0xC000
#define TGN_NEG					0x4000
#define TGN_SHORT				0x8000
#define TGN_SPECIAL				0xC000
#define TGN_NAN					0xC000
#define TGN_EXT_SIGN_MASK		0xF000
#define TGN_SHORT_SIGN_MASK		0x2000
#define TGN_SHORT_DSCALE_MASK	0x1F80
#define TGN_SHORT_DSCALE_SHIFT	7
#define TGN_SHORT_WEIGHT_SIGN	0x0040
#define TGN_SHORT_WEIGHT_MASK	0x003F
#define TGN_DSCALE_MASK			0x3FFF
#define TGN_DEC_DIGITS			4

/*
 * What is wrong with a quantity or price, judged from the header alone;
 * TG_NUM_OK means a finite, positive value of sane size.  num may be NULL.
 */
TgNumericProblem
tg_numeric_problem(Numeric num)
{
	TgNumericHeader *h = (TgNumericHeader *) num;
	uint16		flags;
	bool		is_short;
	bool		negative;
	int			weight;
	int			dscale;
	int			header_size;
	int			ndigits;

	if (num == NULL)
		return TG_NUM_NULL;

	flags = h->n_header & TGN_SIGN_MASK;
	if (flags == TGN_SPECIAL)
		return (h->n_header & TGN_EXT_SIGN_MASK) == TGN_NAN ? TG_NUM_NAN : TG_NUM_INFINITE;

	is_short = (flags == TGN_SHORT);
	if (is_short)
	{
		negative = (h->n_header & TGN_SHORT_SIGN_MASK) != 0;
		dscale = (h->n_header & TGN_SHORT_DSCALE_MASK) >> TGN_SHORT_DSCALE_SHIFT;
		weight = (h->n_header & TGN_SHORT_WEIGHT_MASK);
		if (h->n_header & TGN_SHORT_WEIGHT_SIGN)
			weight |= ~TGN_SHORT_WEIGHT_MASK;
		header_size = VARHDRSZ + sizeof(uint16);
	}
	else
	{
		negative = (flags == TGN_NEG);
		dscale = h->n_header & TGN_DSCALE_MASK;
		weight = h->n_weight;
		header_size = VARHDRSZ + sizeof(uint16) + sizeof(int16);
	}
	ndigits = (VARSIZE(num) - header_size) / sizeof(TgNumericDigit);

	if (dscale > TG_NUMERIC_MAX_SCALE)
		return TG_NUM_TOO_MANY_DECIMALS;
	if (ndigits > 0 && weight >= 0)
	{
		/* decimal digits before the point: 4 per full group plus the first */
		TgNumericDigit first = *(TgNumericDigit *) ((char *) num + header_size);
		int			int_digits = weight * TGN_DEC_DIGITS;

		if (weight >= (TG_NUMERIC_MAX_INT_DIGITS / TGN_DEC_DIGITS) + 1)
			return TG_NUM_TOO_MANY_DIGITS;
		int_digits += first >= 1000 ? 4 : first >= 100 ? 3 : first >= 10 ? 2 : 1;
		if (int_digits > TG_NUMERIC_MAX_INT_DIGITS)
			return TG_NUM_TOO_MANY_DIGITS;
	}
	if (ndigits == 0 || negative)
		return TG_NUM_NOT_POSITIVE;
	return TG_NUM_OK;
}

/* The end of a sentence "order quantity ..." describing the problem */
const char *
tg_numeric_problem_text(TgNumericProblem problem)
{
	switch (problem)
	{
		case TG_NUM_OK:
			return "is valid";
		case TG_NUM_NULL:
			return "is null";
		case TG_NUM_NAN:
			return "is NaN";
		case TG_NUM_INFINITE:
			return "is infinite";
		case TG_NUM_TOO_MANY_DIGITS:
			return "has more than 20 digits before the decimal point";
		case TG_NUM_TOO_MANY_DECIMALS:
			return "has more than 20 decimal places";
		case TG_NUM_NOT_POSITIVE:
			return "is not positive";
	}
	return "is invalid";
}

int
tg_num_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/* true for zero; our registry stores 0 for "this rule is off" */
bool
tg_num_is_zero(Numeric a)
{
	TgNumericHeader *h = (TgNumericHeader *) a;
	Size		header_size;

	if ((h->n_header & TGN_SIGN_MASK) == TGN_SPECIAL)
		return false;
	header_size = VARHDRSZ + sizeof(uint16) +
		((h->n_header & TGN_SIGN_MASK) == TGN_SHORT ? 0 : sizeof(int16));
	return VARSIZE(a) == header_size;
}

Numeric
tg_num_add(Numeric a, Numeric b)
{
	return numeric_add_opt_error(a, b, NULL);
}

Numeric
tg_num_sub(Numeric a, Numeric b)
{
	return numeric_sub_opt_error(a, b, NULL);
}

Numeric
tg_num_mul(Numeric a, Numeric b)
{
	return numeric_mul_opt_error(a, b, NULL);
}

/* a - trunc(a / b) * b, exact; sign follows a (as numeric's % does) */
Numeric
tg_num_mod(Numeric a, Numeric b)
{
	return numeric_mod_opt_error(a, b, NULL);
}

/*
 * The largest base + k * step (k an integer, possibly negative) that is not
 * above x.  step must be positive.
 */
Numeric
tg_num_floor_to_step(Numeric x, Numeric base, Numeric step)
{
	Numeric		offset = tg_num_sub(x, base);
	Numeric		rem = tg_num_mod(offset, step);

	/* numeric's mod truncates toward zero; make the remainder non-negative */
	if (tg_num_cmp(rem, int64_to_numeric(0)) < 0)
		rem = tg_num_add(rem, step);
	return tg_num_sub(x, rem);
}

/*
 * The base + k * step nearest to x, halves rounded up.  step must be positive.
 */
Numeric
tg_num_round_to_step(Numeric x, Numeric base, Numeric step)
{
	Numeric		floor = tg_num_floor_to_step(x, base, step);
	Numeric		rem = tg_num_sub(x, floor);

	if (tg_num_cmp(tg_num_add(rem, rem), step) >= 0)
		return tg_num_add(floor, step);
	return floor;
}

char *
tg_num_out(Numeric a)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(a)));
}

Numeric
tg_num_in(const char *str)
{
	return DatumGetNumeric(DirectFunctionCall3(numeric_in,
											   CStringGetDatum(str),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}
