/*-------------------------------------------------------------------------
 *
 * utility_guard.h
 *	  The extension's own objects cannot be changed: a ProcessUtility_hook
 *	  and an object_access_hook that refuse DDL on them, for every role.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_UTILITY_GUARD_H
#define TG_UTILITY_GUARD_H

/* GUC (src/utility_guard.c) */
extern bool tg_maintenance;

extern void tg_utility_guard_init(void);

/*
 * Write the server-log line of a refusal (the error rolls back anything the
 * transaction could have recorded): who, which kind of statement, what.
 */
extern void tg_log_refusal(const char *rule, const char *what);

#endif							/* TG_UTILITY_GUARD_H */
