/*-------------------------------------------------------------------------
 *
 * risk_limits.h
 *	  Pre-trade order limits and per-credential signing limits (risk_limits.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_RISK_LIMITS_H
#define TG_RISK_LIMITS_H

#include "postgres.h"

#include "utils/relcache.h"

#include "orders.h"

/* What refused an order or a signature (limit_usage.limit_name) */
typedef enum TgLimitKind
{
	TG_LIM_ORDERS_PER_SECOND,
	TG_LIM_ORDERS_PER_MINUTE,
	TG_LIM_ORDER_NOTIONAL,
	TG_LIM_NOTIONAL_WINDOW,
	TG_LIM_REQUESTS_PER_SECOND,
	TG_LIM_REQUESTS_PER_MINUTE,
	TG_LIM_HALT,
	TG_LIM_NUM
} TgLimitKind;

/*
 * Who places an order, and where: the roles whose halts and limits apply
 * (the current user, and the session user when it is another role), the
 * order's account and exchange when the table has such columns.
 */
typedef struct TgOrderSubject
{
	Oid			roles[2];
	int			nroles;
	bool		has_account_col;
	const char *account;		/* NULL: no column, or a null value */
	int			account_len;
	bool		has_exchange_col;
	const char *exchange;		/* NULL: no column, or a null value */
	int			exchange_len;
} TgOrderSubject;

extern void tg_limits_init(void);
extern void tg_limits_check_order(const TgOrder *o, const TgOrderSubject *s);
extern void tg_limits_check_sign(const char *exchange, const char *label);
extern void tg_limits_count_halt_order(const TgOrderSubject *s);
extern void tg_limits_count_halt_sign(const char *exchange, const char *label);

#endif							/* TG_RISK_LIMITS_H */
