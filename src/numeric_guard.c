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

#include "common/int.h"
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

/* Fields of the header of a finite numeric; false for NaN and infinities */
static bool
numeric_fields(Numeric num, bool *negative, int *weight, int *dscale,
			   int *ndigits, const TgNumericDigit **digits)
{
	TgNumericHeader *h = (TgNumericHeader *) num;
	uint16		flags = h->n_header & TGN_SIGN_MASK;
	int			header_size;

	if (flags == TGN_SPECIAL)
		return false;
	if (flags == TGN_SHORT)
	{
		*negative = (h->n_header & TGN_SHORT_SIGN_MASK) != 0;
		*dscale = (h->n_header & TGN_SHORT_DSCALE_MASK) >> TGN_SHORT_DSCALE_SHIFT;
		*weight = (h->n_header & TGN_SHORT_WEIGHT_MASK);
		if (h->n_header & TGN_SHORT_WEIGHT_SIGN)
			*weight |= ~TGN_SHORT_WEIGHT_MASK;
		header_size = VARHDRSZ + sizeof(uint16);
	}
	else
	{
		*negative = (flags == TGN_NEG);
		*dscale = h->n_header & TGN_DSCALE_MASK;
		*weight = h->n_weight;
		header_size = VARHDRSZ + sizeof(uint16) + sizeof(int16);
	}
	*ndigits = (VARSIZE(num) - header_size) / sizeof(TgNumericDigit);
	*digits = (const TgNumericDigit *) ((char *) num + header_size);
	return true;
}

/*
 * What is wrong with a quantity or price, judged from the header alone;
 * TG_NUM_OK means a finite, positive value of sane size.  num may be NULL.
 */
TgNumericProblem
tg_numeric_problem(Numeric num)
{
	TgNumericHeader *h = (TgNumericHeader *) num;
	bool		negative;
	int			weight;
	int			dscale;
	int			ndigits;
	const TgNumericDigit *digits;

	if (num == NULL)
		return TG_NUM_NULL;
	if (!numeric_fields(num, &negative, &weight, &dscale, &ndigits, &digits))
		return (h->n_header & TGN_EXT_SIGN_MASK) == TGN_NAN ? TG_NUM_NAN : TG_NUM_INFINITE;

	if (dscale > TG_NUMERIC_MAX_SCALE)
		return TG_NUM_TOO_MANY_DECIMALS;
	if (ndigits > 0 && weight >= 0)
	{
		/* decimal digits before the point: 4 per full group plus the first */
		TgNumericDigit first = digits[0];
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

/* Display scale of a finite numeric, from its header; -1 for NaN, infinities */
int
tg_num_dscale(Numeric num)
{
	bool		negative;
	int			weight;
	int			dscale;
	int			ndigits;
	const TgNumericDigit *digits;

	if (!numeric_fields(num, &negative, &weight, &dscale, &ndigits, &digits))
		return -1;
	return dscale;
}

/*
 * num as a whole number of 10^-scale units, when that is exact and fits in
 * an int64 (scale at most TG_SCALED_MAX_SCALE).  The fast path of the
 * exchange filters: comparing and taking remainders of such integers gives
 * the same answers as numeric arithmetic, without allocating.
 */
bool
tg_num_scaled(Numeric num, int scale, int64 *out)
{
	static const int64 pow10[] = {
		1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000,
		1000000000, 10000000000, 100000000000, 1000000000000,
		10000000000000, 100000000000000, 1000000000000000,
		10000000000000000, 100000000000000000, 1000000000000000000
	};
	bool		negative;
	int			weight;
	int			dscale;
	int			ndigits;
	const TgNumericDigit *digits;
	int64		acc = 0;
	int			exp10;

	if (scale < 0 || scale > TG_SCALED_MAX_SCALE ||
		!numeric_fields(num, &negative, &weight, &dscale, &ndigits, &digits))
		return false;
	if (ndigits == 0)
	{
		*out = 0;
		return true;
	}
	for (int i = 0; i < ndigits; i++)
	{
		if (pg_mul_s64_overflow(acc, 10000, &acc) ||
			pg_add_s64_overflow(acc, digits[i], &acc))
			return false;
	}
	/* acc counts units of 10000^(weight - ndigits + 1); rescale to 10^-scale */
	exp10 = TGN_DEC_DIGITS * (weight - ndigits + 1) + scale;
	if (exp10 > 18)
		return false;
	if (exp10 >= 0)
	{
		if (pg_mul_s64_overflow(acc, pow10[exp10], &acc))
			return false;
	}
	else
	{
		if (-exp10 > 18 || acc % pow10[-exp10] != 0)
			return false;		/* finer than the scale asked for */
		acc /= pow10[-exp10];
	}
	*out = negative ? -acc : acc;
	return true;
}

/* Scale a grid filter once, at registry load (see TgScaledGrid). */
void
tg_num_grid_init(TgScaledGrid *grid, Numeric min, Numeric max, Numeric step)
{
	grid->scale = Max(Max(tg_num_dscale(min), tg_num_dscale(max)), tg_num_dscale(step));
	grid->valid = tg_num_scaled(min, grid->scale, &grid->min) &&
		tg_num_scaled(max, grid->scale, &grid->max) &&
		tg_num_scaled(step, grid->scale, &grid->step);
}

/*
 * Where x stands against a scaled grid filter (zero bounds and step are
 * rules that are off), in integers; false when x does not fit at the grid's
 * scale, and the caller must decide with numeric arithmetic.
 */
bool
tg_num_grid_position(const TgScaledGrid *grid, Numeric x,
					 bool *below, bool *above, bool *off_grid)
{
	int64		xi;
	int64		offset;

	if (!grid->valid || !tg_num_scaled(x, grid->scale, &xi) ||
		pg_sub_s64_overflow(xi, grid->min, &offset))
		return false;
	*below = grid->min != 0 && xi < grid->min;
	*above = grid->max != 0 && xi > grid->max;
	*off_grid = grid->step != 0 && offset % grid->step != 0;
	return true;
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

/* -1, 0 or 1 as a is below, equal to or above b */
int
tg_num_cmp(Numeric a, Numeric b)
{
	int			scale = Max(tg_num_dscale(a), tg_num_dscale(b));
	int64		ai,
				bi;

	if (tg_num_scaled(a, scale, &ai) && tg_num_scaled(b, scale, &bi))
		return (ai > bi) - (ai < bi);
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a),
											 NumericGetDatum(b)));
}

/*
 * Compare q * p with min and max (zero = no bound) in 128-bit integers,
 * when all fit; false when the caller must use numeric arithmetic.
 */
bool
tg_num_product_position(Numeric q, Numeric p, Numeric min, Numeric max,
						bool *below, bool *above)
{
#ifdef HAVE_INT128
	int			qscale = tg_num_dscale(q);
	int			pscale = tg_num_dscale(p);
	int64		qi,
				pi,
				mini,
				maxi;
	int128		product;

	if (qscale < 0 || pscale < 0 || qscale + pscale > TG_SCALED_MAX_SCALE ||
		!tg_num_scaled(q, qscale, &qi) || !tg_num_scaled(p, pscale, &pi) ||
		!tg_num_scaled(min, qscale + pscale, &mini) ||
		!tg_num_scaled(max, qscale + pscale, &maxi))
		return false;
	product = (int128) qi * (int128) pi;	/* exact: |qi|, |pi| < 2^63 */
	*below = mini != 0 && product < mini;
	*above = maxi != 0 && product > maxi;
	return true;
#else
	return false;
#endif
}

/* true for zero; our registry stores 0 for "this rule is off" */
bool
tg_num_is_zero(Numeric a)
{
	bool		negative;
	int			weight;
	int			dscale;
	int			ndigits;
	const TgNumericDigit *digits;

	return numeric_fields(a, &negative, &weight, &dscale, &ndigits, &digits) &&
		ndigits == 0;
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
