/*-------------------------------------------------------------------------
 *
 * order_stats.h
 *	  Server-wide counters of accepted and rejected orders (shared memory).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_ORDER_STATS_H
#define TG_ORDER_STATS_H

#include "orders.h"

extern void tg_order_stats_init(void);
extern void tg_order_stats_count_accepted(void);
extern void tg_order_stats_count_rejected(TgRule rule);

#endif							/* TG_ORDER_STATS_H */
