/*-------------------------------------------------------------------------
 *
 * trading_guard.c
 *	  Module entry point: _PG_init calls each part's init function.
 *
 * The library works loaded on demand (order validation) and preloaded
 * through shared_preload_libraries (also everything that needs shared
 * memory or hooks in the postmaster).  Each part's init function defines
 * its GUCs and, when preloading, registers its shared memory and hooks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "audit.h"
#include "conn_guard.h"
#include "events.h"
#include "keyring.h"
#include "risk_limits.h"
#include "order_stats.h"
#include "redact.h"
#include "restore.h"
#include "seal.h"
#include "shmem.h"
#include "utility_guard.h"
#include "validate.h"
#include "vault.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (process_shared_preload_libraries_in_progress)
		tg_shmem_init();

	/* first: the others emit security events, the key ring from the postmaster */
	tg_events_init();
	tg_validate_init();
	tg_order_stats_init();
	tg_audit_init();
	tg_conn_guard_init();
	tg_redact_init();
	tg_keyring_init();
	tg_vault_init();
	tg_limits_init();
	tg_seal_init();
	tg_restore_init();
	tg_utility_guard_init();

	MarkGUCPrefixReserved("trading_guard");
}
