/*-------------------------------------------------------------------------
 *
 * audit.h
 *	  Row-level audit trail: the trigger of audited tables, the settings it
 *	  uses, and what the rest of trading_guard needs to record an event
 *	  (the writer itself is src/audit_writer.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TG_AUDIT_H
#define TG_AUDIT_H

#include "fmgr.h"
#include "utils/jsonb.h"

/* GUCs (src/audit.c) */
extern char *tg_audit_actor;
extern bool tg_audit_unchanged_updates;

extern void tg_audit_init(void);
extern void tg_audit_merge_init(void);

/*
 * (src/audit_writer.c) Write one audit row that is not a row change (enable, disable, DDL,
 * purge): the session details are filled in, the table is named by relid or,
 * for one that no longer exists, by schema and name.  detail may be NULL.
 * Returns the row's id.
 */
extern int64 tg_audit_write_event(const char *operation, Oid relid,
								 const char *schema, const char *name,
								 Jsonb *detail);
extern int64 tg_audit_write_keyed_event(const char *operation, Oid relid,
									   const char *schema, const char *name,
									   const char *row_key, Jsonb *detail);

/* OIDs of the extension's objects in schema trading_guard (InvalidOid if absent) */
extern Oid	tg_audit_log_oid(void);	/* src/audit_writer.c */
extern Oid	tg_audit_config_oid(void);

/* src/seal.c */
extern Datum tg_purge_audit_sealed(PG_FUNCTION_ARGS);

#endif							/* TG_AUDIT_H */
