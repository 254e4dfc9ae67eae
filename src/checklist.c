/*-------------------------------------------------------------------------
 *
 * checklist.c
 *	  What security_checklist() (SQL, trading_guard--1.7--1.8.sql) cannot
 *	  see from SQL: the OpenSSL library the server runs with, the key
 *	  file's owner, mode and place, and the allowlist as the connection
 *	  guard's own parser reads it.
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
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/guc.h"

#include "conn_rules.h"

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

/*
 * SQL: checklist_rules() returns table (rule integer, roles text[],
 *        networks text[], cert boolean, any_role boolean, any_network boolean)
 *
 * trading_guard.rules as the connection guard reads it (the same parser):
 * one row per rule; any_role for "*", any_network for "all", 0.0.0.0/0 or
 * ::/0.  Superusers only (the rules are a superuser-only setting).
 */
PG_FUNCTION_INFO_V1(tg_checklist_rules);
Datum
tg_checklist_rules(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *text = GetConfigOption("trading_guard.rules", true, false);
	char	   *error = NULL;
	TgRuleSet  *set;

	InitMaterializedSRF(fcinfo, 0);
	if (text == NULL)
		return (Datum) 0;		/* not loaded: no rules to read */
	set = tg_rules_parse(text, &error);
	if (set == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trading_guard.rules cannot be parsed: %s", error ? error : "out of memory")));

	/* set is malloc'd: freed on error too */
	PG_TRY();
	{
		for (int r = 0; r < set->nrules; r++)
		{
			const TgConnRule *rule = &set->rules[r];
			Datum	   *roles = palloc(sizeof(Datum) * Max(rule->nroles, 1));
			Datum	   *nets = palloc(sizeof(Datum) * Max(rule->nnets, 1));
			bool		any_role = false;
			bool		any_net = false;
			Datum		values[6];
			bool		nulls[6] = {false, false, false, false, false, false};

			for (int i = 0; i < rule->nroles; i++)
			{
				const TgRoleRef *ref = &set->roles[rule->first_role + i];

				if (ref->kind == TG_ROLE_ANY)
					any_role = true;
				roles[i] = CStringGetTextDatum(ref->kind == TG_ROLE_ANY ? "*" :
											   ref->kind == TG_ROLE_GROUP ? psprintf("+%s", ref->name) :
											   ref->name);
			}
			for (int i = 0; i < rule->nnets; i++)
			{
				const TgNet *net = &set->nets[rule->first_net + i];
				TgAddr		addr;
				char		buf[64];

				if (net->family == 0 || net->bits == 0)
					any_net = true;
				if (net->family == 0)
				{
					nets[i] = CStringGetTextDatum("all");
					continue;
				}
				memset(&addr, 0, sizeof(addr));
				addr.family = net->family;
				memcpy(addr.bytes, net->bytes, sizeof(addr.bytes));
				tg_addr_format(&addr, buf, sizeof(buf));
				nets[i] = CStringGetTextDatum(psprintf("%s/%d", buf, net->bits));
			}
			values[0] = Int32GetDatum(r + 1);
			values[1] = PointerGetDatum(construct_array(roles, rule->nroles, TEXTOID, -1, false, TYPALIGN_INT));
			values[2] = PointerGetDatum(construct_array(nets, rule->nnets, TEXTOID, -1, false, TYPALIGN_INT));
			values[3] = BoolGetDatum(rule->cert);
			values[4] = BoolGetDatum(any_role);
			values[5] = BoolGetDatum(any_net);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PG_FINALLY();
	{
		free(set);
	}
	PG_END_TRY();
	return (Datum) 0;
}
