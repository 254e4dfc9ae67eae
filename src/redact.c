/*-------------------------------------------------------------------------
 *
 * redact.c
 *	  Keeping credentials out of logs (being written: see redact.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "redact.h"

void
tg_redact_init(void)
{
}
