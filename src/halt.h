/*-------------------------------------------------------------------------
 *
 * halt.h
 *	  Trading halts (halt.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_HALT_H
#define TG_HALT_H

#include "postgres.h"

#include "risk_limits.h"
#include "orders.h"

/* What a caller of sign_request says a request is */
typedef enum TgSignPurpose
{
	TG_PURPOSE_ORDER,			/* the default: anything that may trade */
	TG_PURPOSE_CANCEL,
	TG_PURPOSE_READ
} TgSignPurpose;

extern void tg_halt_check_order(const TgOrder *o, const TgOrderSubject *s);
extern void tg_halt_check_sign(const char *exchange, const char *label,
							   const char *payload, int payload_len,
							   TgSignPurpose purpose);
extern TgSignPurpose tg_sign_purpose_from_text(const char *purpose);

#endif							/* TG_HALT_H */
