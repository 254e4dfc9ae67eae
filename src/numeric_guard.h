/*-------------------------------------------------------------------------
 *
 * numeric_guard.h
 *	  Judge a numeric from its header before doing arithmetic with it, and
 *	  the few exact numeric operations order validation needs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_NUMERIC_GUARD_H
#define TG_NUMERIC_GUARD_H

#include "utils/numeric.h"

typedef enum TgNumericProblem
{
	TG_NUM_OK = 0,
	TG_NUM_NULL,
	TG_NUM_NAN,
	TG_NUM_INFINITE,
	TG_NUM_TOO_MANY_DIGITS,		/* more than TG_NUMERIC_MAX_INT_DIGITS */
	TG_NUM_TOO_MANY_DECIMALS,	/* scale above TG_NUMERIC_MAX_SCALE */
	TG_NUM_NOT_POSITIVE
} TgNumericProblem;

extern TgNumericProblem tg_numeric_problem(Numeric num);
extern const char *tg_numeric_problem_text(TgNumericProblem problem);

/* tg_num_scaled() works up to this scale (10^18 still fits in an int64) */
#define TG_SCALED_MAX_SCALE 18

/*
 * A filter's minimum, maximum and step as whole numbers of 10^-scale units,
 * computed once when the registry is loaded; valid = false when they do
 * not fit, and callers then use numeric arithmetic.
 */
typedef struct TgScaledGrid
{
	bool		valid;
	int			scale;
	int64		min;
	int64		max;
	int64		step;
} TgScaledGrid;

extern void tg_num_grid_init(TgScaledGrid *grid, Numeric min, Numeric max, Numeric step);
extern bool tg_num_grid_position(const TgScaledGrid *grid, Numeric x,
								 bool *below, bool *above, bool *off_grid);
extern int	tg_num_dscale(Numeric num);
extern bool tg_num_scaled(Numeric num, int scale, int64 *out);
extern int	tg_num_cmp(Numeric a, Numeric b);
extern bool tg_num_product_position(Numeric q, Numeric p, Numeric min,
									Numeric max, bool *below, bool *above);
extern bool tg_num_is_zero(Numeric a);
extern Numeric tg_num_sub(Numeric a, Numeric b);
extern Numeric tg_num_add(Numeric a, Numeric b);
extern Numeric tg_num_mul(Numeric a, Numeric b);
extern Numeric tg_num_mod(Numeric a, Numeric b);
extern Numeric tg_num_floor_to_step(Numeric x, Numeric base, Numeric step);
extern Numeric tg_num_round_to_step(Numeric x, Numeric base, Numeric step);
extern char *tg_num_out(Numeric a);
extern Numeric tg_num_in(const char *str);

#endif							/* TG_NUMERIC_GUARD_H */
