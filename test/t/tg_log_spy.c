/*-------------------------------------------------------------------------
 *
 * tg_log_spy.c
 *	  A stand-in for a log shipper, for TAP test 007_vault_logs.pl: an
 *	  emit_log_hook that appends every text of every report (and the
 *	  statement, unless the report hides it) to the file named by the
 *	  environment variable TG_LOG_SPY_FILE.  Listed before trading_guard in
 *	  shared_preload_libraries, it is the hook trading_guard's calls after
 *	  redacting: it shows what other modules' log hooks receive.
 *
 *	  Built by the test itself; not part of the extension.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "fmgr.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static emit_log_hook_type prev_emit_log_hook = NULL;

/* Append one labelled text, if any */
static void
spy_field(FILE *f, const char *label, const char *text)
{
	if (text != NULL)
		fprintf(f, "%s: %s\n", label, text);
}

/* emit_log_hook: write everything down, then the previous hook */
static void
spy_emit_log(ErrorData *edata)
{
	const char *path = getenv("TG_LOG_SPY_FILE");
	FILE	   *f = path ? fopen(path, "a") : NULL;

	if (f != NULL)
	{
		spy_field(f, "message", edata->message);
		spy_field(f, "detail", edata->detail);
		spy_field(f, "detail_log", edata->detail_log);
		spy_field(f, "hint", edata->hint);
		spy_field(f, "context", edata->context);
		spy_field(f, "internalquery", edata->internalquery);
		if (!edata->hide_stmt)
			spy_field(f, "statement", debug_query_string);
		fclose(f);
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
_PG_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = spy_emit_log;
}
