/*-------------------------------------------------------------------------
 *
 * checklist.c
 *	  What security_checklist() (SQL, trading_guard--1.7--1.8.sql) cannot
 *	  see from SQL: the OpenSSL library the server runs with, and the key
 *	  file's owner, mode and place.
 *
 * Everything else the checklist checks is read from the catalogs, the
 * settings and the extension's tables, in SQL, with the caller's rights.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

/*
 * SQL: checklist_openssl() returns text
 * The OpenSSL version this server process runs with (the library loaded,
 * not the headers it was built against).
 */
PG_FUNCTION_INFO_V1(tg_checklist_openssl);
Datum
tg_checklist_openssl(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(OpenSSL_version(OPENSSL_VERSION)));
}

/* Is path inside dir (after resolving both)? */
static bool
path_inside(const char *path, const char *dir)
{
	/* realpath() with NULL allocates a buffer as long as it needs */
	char	   *rpath = realpath(path, NULL);
	char	   *rdir = realpath(dir, NULL);
	bool		inside = false;

	if (rpath != NULL && rdir != NULL)
	{
		size_t		n = strlen(rdir);

		inside = strncmp(rpath, rdir, n) == 0 && (rpath[n] == '/' || rpath[n] == '\0');
	}
	free(rpath);
	free(rdir);
	return inside;
}

/*
 * SQL: checklist_key_file(OUT path text, OUT present boolean, OUT mode text,
 *        OUT owned_by_server boolean, OUT group_or_world_access boolean,
 *        OUT in_data_directory boolean) returns record
 *
 * The key file named by trading_guard.key_file as the server sees it now
 * (the loader checks owner and mode when it reads the file; this says what
 * they are today).  path NULL when no key file is set.  Superusers only
 * (the path is a superuser-only setting).
 */
PG_FUNCTION_INFO_V1(tg_checklist_key_file);
Datum
tg_checklist_key_file(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false, true, true, true, true, true};
	const char *path = GetConfigOption("trading_guard.key_file", true, false);
	struct stat st;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	if (path == NULL || path[0] == '\0')
	{
		memset(nulls, true, sizeof(nulls));
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	values[0] = CStringGetTextDatum(path);
	nulls[1] = false;
	values[1] = BoolGetDatum(stat(path, &st) == 0);
	if (DatumGetBool(values[1]))
	{
		values[2] = CStringGetTextDatum(psprintf("%04o", (unsigned) (st.st_mode & 07777)));
		values[3] = BoolGetDatum(st.st_uid == geteuid());
		values[4] = BoolGetDatum((st.st_mode & (S_IRWXG | S_IRWXO)) != 0);
		values[5] = BoolGetDatum(path_inside(path, DataDir));
		nulls[2] = nulls[3] = nulls[4] = nulls[5] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
